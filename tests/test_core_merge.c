/* test_core_merge.c - concurrent requests on one session lose nothing.
 *
 * Requests are interleaved by hand (begin, begin, change, commit, commit)
 * so that every race of src/core/merge.c happens deterministically: two
 * writers of different members, a member deleted while another changes, a
 * logout racing a slow request, a regenerate after a logout, an explicit
 * save() between, a Node-style whole-record write, the last-write-wins
 * option, a store that never stops conflicting, and a version 1 method
 * table whose cas member must never be read.
 *
 * The store is a real MemoryStore (compare-and-set under its shard lock)
 * behind the harness's counting store, which counts a cas as a save. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"
#include "http_harness.h"
#include "request_rig.h"

static const char *const SECRETS[] = {"merge secret"};

typedef struct fx {
  csn_store *mem;
  counting_store *cs;
  csn_ctx *ctx;
  char cookie[256]; /* "connect.sid=..." of the session under test */
  char sid[CSN_ID_MAX + 1];
} fx;

static void fx_open(fx *f, int last_write_wins, csn_store *custom) {
  csn_options o;
  char err[256];
  memset(f, 0, sizeof *f);
  if (custom == NULL) {
    assert_int_equal(csn_store_open("memory://", &f->mem, err, sizeof err),
                     CSN_OK);
    f->cs = counting_store_new(f->mem, 1);
  }
  csn_options_init(&o);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  o.cookie.max_age_ms = 3600000;
  o.store = custom != NULL ? custom : &f->cs->base;
  o.last_write_wins = last_write_wins;
  assert_int_equal(csn_ctx_new(&f->ctx, &o, err, sizeof err), CSN_OK);
}

static void fx_close(fx *f) {
  csn_ctx_free(f->ctx);
  if (f->cs != NULL)
    csn_store_free(&f->cs->base);
}

/* A stored session with the given members ("{...}" as csn_session_set_json
 * members, set one by one), and the cookie that names it. */
static void seed(fx *f, const char *const *kv, size_t n) {
  csn_request *r = rig_begin(f->ctx, NULL);
  csn_session *s = csn_request_session(r);
  char *sc = NULL;
  size_t i;
  for (i = 0; i + 1 < n; i += 2)
    assert_int_equal(csn_session_set_json(s, kv[i], kv[i + 1]), CSN_OK);
  snprintf(f->sid, sizeof f->sid, "%s", csn_session_id(s));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  rig_cookie_of(sc, f->cookie, sizeof f->cookie);
  csn_free(sc);
}

/* The stored record, parsed (NULL when absent). */
static json_t *stored(fx *f) {
  char *json = NULL;
  size_t len = 0;
  json_t *j;
  if (csn_store_get(csn_ctx_store(f->ctx), f->sid, &json, &len) != CSN_OK)
    return NULL;
  j = json_loadb(json, len, 0, NULL);
  csn_free(json);
  assert_non_null(j);
  return j;
}

static long long member_int(json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Set a member in a request's session; the test fails if that fails. */
static void put_int(csn_request *r, const char *k, int64_t v) {
  assert_int_equal(csn_session_set_int(csn_request_session(r), k, v), CSN_OK);
}

static void put_str(csn_request *r, const char *k, const char *v) {
  assert_int_equal(csn_session_set_str(csn_request_session(r), k, v), CSN_OK);
}

/* ---------------------------------------------------------------------- */

static void merge_two_requests_different_members(void **state) {
  static const char *const kv[] = {"views", "7"};
  fx f;
  csn_request *a, *b;
  json_t *j;
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 2);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  put_int(a, "a", 1);
  put_int(b, "b", 2);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  j = stored(&f);
  assert_non_null(j);
  assert_int_equal(member_int(j, "a"), 1);
  assert_int_equal(member_int(j, "b"), 2);
  assert_int_equal(member_int(j, "views"), 7);
  json_decref(j);
  fx_close(&f);
}

static void merge_delete_and_change(void **state) {
  static const char *const kv[] = {"x", "1", "y", "1"};
  fx f;
  csn_request *a, *b;
  json_t *j;
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 4);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  put_int(b, "y", 2);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  assert_int_equal(csn_session_del(csn_request_session(a), "x"), CSN_OK);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  j = stored(&f);
  assert_null(json_object_get(j, "x"));
  assert_int_equal(member_int(j, "y"), 2);
  json_decref(j);
  fx_close(&f);
}

/* A member this request only read keeps the other writer's value, in
 * either commit order; a member both changed ends with the later save's
 * value. */
static void merge_read_only_member_not_restored(void **state) {
  static const char *const kv[] = {"k", "1", "same", "0"};
  fx f;
  csn_request *a, *b;
  int64_t v = 0;
  json_t *j;
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 4);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_session_get_int(csn_request_session(a), "k", &v),
                   CSN_OK);
  put_int(a, "other", 5);
  put_int(a, "same", 1);
  put_int(b, "k", 9);
  put_int(b, "same", 2);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  j = stored(&f);
  assert_int_equal(member_int(j, "k"), 9);
  assert_int_equal(member_int(j, "other"), 5);
  assert_int_equal(member_int(j, "same"), 1);
  json_decref(j);
  fx_close(&f);
}

static void merge_logout_wins(void **state) {
  static const char *const kv[] = {"user", "\"ada\""};
  fx f;
  csn_request *slow, *logout;
  char *sc = (char *)"x";
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 2);
  slow = rig_begin(f.ctx, f.cookie);
  logout = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_session_destroy(csn_request_session(logout)), CSN_OK);
  assert_int_equal(rig_commit(logout, NULL), CSN_OK);
  put_int(slow, "x", 1);
  assert_int_equal(rig_commit(slow, &sc), CSN_OK);
  assert_null(sc); /* no cookie for a session that does not exist */
  assert_null(stored(&f));
  fx_close(&f);
}

/* resave (the default) saves an unchanged session: that save must not
 * bring a destroyed session back either. */
static void merge_logout_wins_over_resave(void **state) {
  static const char *const kv[] = {"user", "\"ada\""};
  fx f;
  csn_request *slow, *logout;
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 2);
  slow = rig_begin(f.ctx, f.cookie);
  logout = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_session_destroy(csn_request_session(logout)), CSN_OK);
  assert_int_equal(rig_commit(logout, NULL), CSN_OK);
  assert_int_equal(rig_commit(slow, NULL), CSN_OK);
  assert_null(stored(&f));
  fx_close(&f);
}

/* A request that regenerates (a login) writes its new session even though
 * the old one was destroyed meanwhile. */
static void merge_regenerate_still_writes(void **state) {
  static const char *const kv[] = {"n", "1"};
  fx f;
  csn_request *login, *logout;
  char *sc = NULL;
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 2);
  login = rig_begin(f.ctx, f.cookie);
  logout = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_session_destroy(csn_request_session(logout)), CSN_OK);
  assert_int_equal(rig_commit(logout, NULL), CSN_OK);
  assert_int_equal(csn_session_regenerate(csn_request_session(login)),
                   CSN_OK);
  snprintf(f.sid, sizeof f.sid, "%s",
           csn_session_id(csn_request_session(login)));
  put_str(login, "user", "ada");
  assert_int_equal(rig_commit(login, &sc), CSN_OK);
  assert_non_null(sc);
  csn_free(sc);
  {
    json_t *j = stored(&f);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "user")), "ada");
    json_decref(j);
  }
  fx_close(&f);
}

/* save() in the middle of a request merges too, and the end-of-request
 * save builds on what it wrote. */
static void merge_explicit_save(void **state) {
  static const char *const kv[] = {"n", "1"};
  fx f;
  csn_request *a, *b;
  json_t *j;
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 2);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  put_int(b, "b", 1);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  put_int(a, "a", 1);
  assert_int_equal(csn_session_save(csn_request_session(a)), CSN_OK);
  put_int(a, "c", 1);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  j = stored(&f);
  assert_int_equal(member_int(j, "a"), 1);
  assert_int_equal(member_int(j, "b"), 1);
  assert_int_equal(member_int(j, "c"), 1);
  assert_int_equal(member_int(j, "n"), 1);
  json_decref(j);
  fx_close(&f);
}

/* A Node writer saves the whole record between this request's load and
 * save: its members survive, with their text (0.1 stays 0.1). */
static void merge_node_whole_record_write(void **state) {
  static const char *const kv[] = {"n", "1"};
  fx f;
  csn_request *a;
  char *json = NULL, *p;
  size_t len = 0;
  char node[512];
  (void)state;
  fx_open(&f, 0, NULL);
  seed(&f, kv, 2);
  a = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_store_get(csn_ctx_store(f.ctx), f.sid, &json, &len),
                   CSN_OK);
  /* Node's record: the same cookie, its own members. */
  p = strstr(json, "},");
  assert_non_null(p);
  snprintf(node, sizeof node, "%.*s},\"n\":1,\"cart\":[1,2],\"ratio\":0.1}",
           (int)(p - json), json);
  csn_free(json);
  assert_int_equal(csn_store_set(csn_ctx_store(f.ctx), f.sid, node,
                                 strlen(node), CSN_TIME_NONE),
                   CSN_OK);
  put_str(a, "c", "yes");
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(csn_store_get(csn_ctx_store(f.ctx), f.sid, &json, &len),
                   CSN_OK);
  assert_non_null(strstr(json, "\"cart\":[1,2]"));
  assert_non_null(strstr(json, "\"ratio\":0.1"));
  assert_non_null(strstr(json, "\"c\":\"yes\""));
  csn_free(json);
  fx_close(&f);
}

/* last_write_wins: express-session's behaviour, on purpose. */
static void merge_off_last_write_wins(void **state) {
  static const char *const kv[] = {"n", "1"};
  fx f;
  csn_request *a, *b;
  json_t *j;
  (void)state;
  fx_open(&f, 1, NULL);
  seed(&f, kv, 2);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  put_int(a, "a", 1);
  put_int(b, "b", 1);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  j = stored(&f);
  assert_null(json_object_get(j, "a")); /* lost, as in express-session */
  assert_int_equal(member_int(j, "b"), 1);
  json_decref(j);
  fx_close(&f);
}

/* ---------------------------------------------------------------------- */
/* Stores that misbehave on purpose                                        */
/* ---------------------------------------------------------------------- */

/* A store whose record changes between every read and write: the merge
 * gives up after a bounded number of attempts with CSN_ECONFLICT. */
typedef struct restless {
  csn_store base;
  int cas_calls;
  int cas_called_v1; /* for the version 1 table below */
} restless;

static const char RECORD[] =
    "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"httpOnly\":true,"
    "\"path\":\"/\"},\"n\":1}";

static int r_get(csn_store *st, const char *sid, char **json, size_t *len) {
  (void)st;
  (void)sid;
  *json = csn_malloc(sizeof RECORD);
  if (*json == NULL)
    return CSN_ENOMEM;
  memcpy(*json, RECORD, sizeof RECORD);
  *len = sizeof RECORD - 1;
  return CSN_OK;
}
static int r_set(csn_store *st, const char *sid, const char *json,
                 size_t len, int64_t exp) {
  (void)st;
  (void)sid;
  (void)json;
  (void)len;
  (void)exp;
  return CSN_OK;
}
static int r_destroy(csn_store *st, const char *sid) {
  (void)st;
  (void)sid;
  return CSN_OK;
}
static int r_cas(csn_store *st, const char *sid, const char *e, size_t el,
                 const char *json, size_t len, int64_t exp) {
  restless *r = (restless *)st;
  (void)sid;
  (void)e;
  (void)el;
  (void)json;
  (void)len;
  (void)exp;
  r->cas_calls++;
  r->cas_called_v1++;
  return CSN_ECONFLICT;
}
static void r_close(csn_store *st) { (void)st; }

static const csn_store_methods restless_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "restless",
    .get = r_get,
    .set = r_set,
    .destroy = r_destroy,
    .close = r_close,
    .cas = r_cas,
};

static void merge_gives_up_with_econflict(void **state) {
  restless st = {{&restless_methods}, 0, 0};
  fx f;
  csn_request *a;
  char *sc = (char *)"x";
  char cookie[256];
  char sig[64];
  size_t n = sizeof sig;
  (void)state;
  fx_open(&f, 0, &st.base);
  assert_int_equal(csn_cookie_sign("restless-id", 11, SECRETS[0],
                                   strlen(SECRETS[0]), sig, &n),
                   CSN_OK);
  snprintf(cookie, sizeof cookie, "connect.sid=s:%s", sig);
  a = rig_begin(f.ctx, cookie);
  assert_string_equal(csn_session_id(csn_request_session(a)), "restless-id");
  put_int(a, "x", 1);
  assert_int_equal(rig_commit(a, &sc), CSN_ECONFLICT);
  assert_null(sc);
  assert_true(st.cas_calls > 1 && st.cas_calls <= 256);
  assert_non_null(strstr(csn_last_error(), "concurrently"));
  fx_close(&f);
}

/* A table built against 0.1's header has version 1: whatever lies where
 * cas would be is never read, and saves are whole-record sets. Here the
 * member is set, to prove it is the version that is checked. */
static const csn_store_methods v1_methods = {
    .version = 1,
    .name = "v1",
    .get = r_get,
    .set = r_set,
    .destroy = r_destroy,
    .close = r_close,
    .cas = r_cas,
};

static void merge_v1_table_never_calls_cas(void **state) {
  restless st = {{&v1_methods}, 0, 0};
  fx f;
  csn_request *a;
  char cookie[256];
  char sig[64];
  size_t n = sizeof sig;
  (void)state;
  assert_int_equal(csn_store_has_cas(&st.base), 0);
  fx_open(&f, 0, &st.base);
  assert_int_equal(csn_cookie_sign("v1-id", 5, SECRETS[0], strlen(SECRETS[0]),
                                   sig, &n),
                   CSN_OK);
  snprintf(cookie, sizeof cookie, "connect.sid=s:%s", sig);
  a = rig_begin(f.ctx, cookie);
  put_int(a, "x", 1);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(st.cas_called_v1, 0);
  assert_int_equal(csn_store_cas(&st.base, "v1-id", "a", 1, "b", 1, 0),
                   CSN_ENOTSUP);
  fx_close(&f);
}

/* A table from a newer library (unknown version) is refused up front. */
static void merge_unknown_version_refused(void **state) {
  static const csn_store_methods future = {
      .version = CSN_STORE_METHODS_VERSION + 1,
      .name = "future",
      .get = r_get,
      .set = r_set,
      .destroy = r_destroy,
      .close = r_close,
  };
  restless st = {{&future}, 0, 0};
  csn_options o;
  csn_ctx *ctx = NULL;
  char err[256];
  (void)state;
  csn_options_init(&o);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  o.store = &st.base;
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_ENOTSUP);
  assert_null(ctx);
  assert_non_null(strstr(err, "method table"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(merge_two_requests_different_members),
      cmocka_unit_test(merge_delete_and_change),
      cmocka_unit_test(merge_read_only_member_not_restored),
      cmocka_unit_test(merge_logout_wins),
      cmocka_unit_test(merge_logout_wins_over_resave),
      cmocka_unit_test(merge_regenerate_still_writes),
      cmocka_unit_test(merge_explicit_save),
      cmocka_unit_test(merge_node_whole_record_write),
      cmocka_unit_test(merge_off_last_write_wins),
      cmocka_unit_test(merge_gives_up_with_econflict),
      cmocka_unit_test(merge_v1_table_never_calls_cas),
      cmocka_unit_test(merge_unknown_version_refused),
  };
  return cmocka_run_group_tests_name("core_merge", tests, NULL, NULL);
}
