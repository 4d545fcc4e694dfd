/* test_fault_store.c - store-failure injection.
 *
 * Two instruments:
 *   - csn__store_set_fault(): the core's own hook in front of every store
 *     call, made to fail get / set / touch / destroy;
 *   - a wrapper store in front of a MemoryStore that can return garbage from
 *     get (text that is not JSON, a JSON array, a record whose cookie is a
 *     string, a multi-megabyte record, ...) or sleep in set.
 * In every case the request must end in an error the adapter turns into a
 * 500 (or, where express-session does so, a new session), nothing may crash
 * or leak, the stored record must be exactly what it was, and the next
 * request, with the fault gone, must work normally. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "csn_int.h"

#define NOW INT64_C(1735689600000)
#define SID "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf"
#define RECORD                                                            \
  "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2025-01-01T00:01:00." \
  "000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":1}"

static int64_t frozen(void *ud) {
  (void)ud;
  return NOW;
}

/* Store failures are logged by the middleware; count them instead. */
static int log_calls;
static void counting_log(int err, const char *msg, void *ud) {
  (void)err;
  (void)msg;
  (void)ud;
  log_calls++;
}

/* ------------------------------------------------------------------------ */
/* The wrapper store                                                        */
/* ------------------------------------------------------------------------ */

typedef struct wrap_store {
  csn_store base; /* first member, as for every store */
  csn_store *inner;
  const char *garbage; /* non-NULL: get answers this text */
  size_t garbage_len;
  int slow_set_ms;     /* sleep this long in set */
  int sets;
} wrap_store;

static int w_get(csn_store *st, const char *sid, char **json, size_t *len) {
  wrap_store *w = (wrap_store *)st;
  if (w->garbage != NULL) {
    /* Store contract: the text is allocated with the csession allocator. */
    char *p = csn__malloc(w->garbage_len + 1);
    if (p == NULL)
      return CSN_ENOMEM;
    memcpy(p, w->garbage, w->garbage_len);
    p[w->garbage_len] = '\0';
    *json = p;
    *len = w->garbage_len;
    return CSN_OK;
  }
  return csn_store_get(w->inner, sid, json, len);
}

static int w_set(csn_store *st, const char *sid, const char *json, size_t len,
                 int64_t expires_ms) {
  wrap_store *w = (wrap_store *)st;
  w->sets++;
  if (w->slow_set_ms > 0) {
    struct timespec ts = {0, (long)w->slow_set_ms * 1000000L};
    nanosleep(&ts, NULL);
  }
  return csn_store_set(w->inner, sid, json, len, expires_ms);
}

static int w_destroy(csn_store *st, const char *sid) {
  return csn_store_destroy(((wrap_store *)st)->inner, sid);
}

static int w_touch(csn_store *st, const char *sid, const char *json,
                   size_t len, int64_t expires_ms) {
  return csn_store_touch(((wrap_store *)st)->inner, sid, json, len,
                         expires_ms);
}

static int w_cas(csn_store *st, const char *sid, const char *expected,
                 size_t elen, const char *json, size_t len,
                 int64_t expires_ms) {
  wrap_store *w = (wrap_store *)st;
  w->sets++;
  return csn_store_cas(w->inner, sid, expected, elen, json, len, expires_ms);
}

static void w_close(csn_store *st) { (void)st; }

static const csn_store_methods wrap_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "wrap",
    .get = w_get,
    .set = w_set,
    .destroy = w_destroy,
    .touch = w_touch,
    .close = w_close,
    .cas = w_cas,
};

/* ------------------------------------------------------------------------ */
/* Fault hook                                                               */
/* ------------------------------------------------------------------------ */

typedef struct fault {
  const char *op; /* the method to fail, NULL: none */
  int err;
  int hits; /* how often it fired */
  int calls[4]; /* get, set, destroy, touch seen (failing or not) */
} fault;

static int fault_fn(csn_store *st, const char *op, void *ud) {
  static const char *const ops[] = {"get", "set", "destroy", "touch"};
  fault *f = ud;
  (void)st;
  /* The save of a session loaded from the store is a compare-and-set
   * (src/core/merge.c): for these tests it is the "set". */
  if (strcmp(op, "cas") == 0)
    op = "set";
  for (size_t i = 0; i < CSN__ARRAY_SIZE(ops); i++)
    if (strcmp(op, ops[i]) == 0)
      f->calls[i]++;
  if (f->op != NULL && strcmp(op, f->op) == 0) {
    f->hits++;
    return f->err;
  }
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fixture {
  csn_store *mem;
  wrap_store wrap;
  csn_ctx *ctx;
  char cookie[160];
} fixture;

static void fixture_open(fixture *f, int resave, int64_t max_age) {
  static const char *const secrets[] = {"keyboard cat"};
  csn_memory_options mo;
  csn_options o;
  char signed_id[128];
  size_t n = sizeof signed_id;

  memset(f, 0, sizeof *f);
  memset(&mo, 0, sizeof mo);
  mo.prune_interval_ms = -1;
  mo.clock = frozen;
  assert_int_equal(csn_store_memory_new(&mo, &f->mem), CSN_OK);
  f->wrap.base.m = &wrap_methods;
  f->wrap.inner = f->mem;
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.store = &f->wrap.base;
  o.clock = frozen;
  o.log = counting_log;
  o.resave = resave;
  o.cookie.max_age_ms = max_age;
  assert_int_equal(csn_ctx_new(&f->ctx, &o, NULL, 0), CSN_OK);
  assert_int_equal(csn_cookie_sign(SID, strlen(SID), secrets[0],
                                   strlen(secrets[0]), signed_id, &n),
                   CSN_OK);
  snprintf(f->cookie, sizeof f->cookie, "connect.sid=s:%s", signed_id);
  assert_int_equal(
      csn_store_set(f->mem, SID, RECORD, strlen(RECORD), NOW + 60000),
      CSN_OK);
}

static void fixture_close(fixture *f) {
  csn__store_set_fault(NULL, NULL);
  csn_ctx_free(f->ctx);
  csn_store_free(f->mem);
}

static char *stored(fixture *f) {
  char *json = NULL;
  size_t len;
  assert_int_equal(csn_store_get(f->mem, SID, &json, &len), CSN_OK);
  return json;
}

static void assert_record_is(fixture *f, const char *want) {
  char *got = stored(f);
  assert_string_equal(got, want);
  csn_free(got);
}

static csn_request *begin(fixture *f, int *rc) {
  csn_request_info info;
  csn_request *r = (csn_request *)&info;
  memset(&info, 0, sizeof info);
  info.cookie_header = f->cookie;
  info.url = "/";
  *rc = csn_request_begin(f->ctx, &info, &r);
  if (*rc != CSN_OK)
    assert_null(r);
  return r;
}

/* The healthy path after a fault: the stored session loads, takes a change
 * and saves it. */
static void assert_next_request_works(fixture *f, int64_t views) {
  csn_request *r;
  csn_session *s;
  char *set_cookie = NULL;
  int64_t v = 0;
  int rc;

  r = begin(f, &rc);
  assert_int_equal(rc, CSN_OK);
  s = csn_request_session(r);
  assert_non_null(s);
  assert_string_equal(csn_session_id(s), SID);
  assert_int_equal(csn_session_get_int(s, "views", &v), CSN_OK);
  assert_int_equal(v, views);
  assert_int_equal(csn_session_incr(s, "views", 1, NULL), CSN_OK);
  assert_int_equal(csn_request_commit(r, &set_cookie), CSN_OK);
  csn_free(set_cookie);
  csn_request_free(r);
  v = 0;
  {
    char *got = stored(f);
    char want[32];
    snprintf(want, sizeof want, "\"views\":%lld", (long long)views + 1);
    assert_non_null(strstr(got, want));
    csn_free(got);
  }
}

/* ------------------------------------------------------------------------ */
/* Failing methods                                                          */
/* ------------------------------------------------------------------------ */

static void fault_store_get_fails(void **state) {
  static const int errs[] = {CSN_ESTORE, CSN_EIO, CSN_ETIMEDOUT,
                             CSN_ENOMEM};
  (void)state;
  for (size_t i = 0; i < CSN__ARRAY_SIZE(errs); i++) {
    fixture f;
    fault ft = {"get", errs[i], 0, {0}};
    int rc;
    fixture_open(&f, 1, 60000);
    csn__store_set_fault(fault_fn, &ft);
    (void)begin(&f, &rc);
    csn__store_set_fault(NULL, NULL);
    /* Not a new session: a store that cannot answer is a 500, or the user
     * would silently lose the session. */
    assert_int_equal(rc, errs[i]);
    assert_int_equal(ft.hits, 1);
    assert_int_equal(ft.calls[1], 0); /* nothing written */
    assert_string_not_equal(csn_last_error(), "");
    assert_record_is(&f, RECORD);
    assert_next_request_works(&f, 1);
    fixture_close(&f);
  }
}

/* ENOENT is "not found", not a failure: a new session (express). */
static void fault_store_get_not_found(void **state) {
  fixture f;
  fault ft = {"get", CSN_ENOENT, 0, {0}};
  csn_request *r;
  char *set_cookie = NULL;
  int rc;
  (void)state;
  fixture_open(&f, 1, 60000);
  csn__store_set_fault(fault_fn, &ft);
  r = begin(&f, &rc);
  assert_int_equal(rc, CSN_OK);
  assert_string_not_equal(csn_session_id(csn_request_session(r)), SID);
  assert_int_equal(csn_request_commit(r, &set_cookie), CSN_OK);
  assert_non_null(set_cookie);
  csn_free(set_cookie);
  csn_request_free(r);
  csn__store_set_fault(NULL, NULL);
  assert_record_is(&f, RECORD);
  assert_next_request_works(&f, 1);
  fixture_close(&f);
}

static void fault_store_set_fails(void **state) {
  fixture f;
  fault ft = {"set", CSN_EIO, 0, {0}};
  csn_request *r;
  char *set_cookie = (char *)&ft;
  int rc;
  (void)state;
  fixture_open(&f, 0, 60000);
  r = begin(&f, &rc);
  assert_int_equal(rc, CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(r), "views", 7),
                   CSN_OK);
  csn__store_set_fault(fault_fn, &ft);
  rc = csn_request_commit(r, &set_cookie);
  csn__store_set_fault(NULL, NULL);
  assert_int_equal(rc, CSN_EIO);
  assert_null(set_cookie); /* no cookie on a failed save */
  assert_int_equal(ft.hits, 1);
  csn_request_free(r);
  assert_record_is(&f, RECORD);
  assert_next_request_works(&f, 1);
  fixture_close(&f);
}

/* A concurrent writer changed the record, and re-reading it for the merge
 * fails: the error is reported, no cookie is sent, and the other writer's
 * record stays as it is. */
static void fault_store_merge_reread_fails(void **state) {
  static const char other[] =
      "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2025-01-01T00:"
      "01:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":1,"
      "\"other\":true}";
  fixture f;
  fault ft = {"get", CSN_ESTORE, 0, {0}};
  csn_request *r;
  char *set_cookie = (char *)&ft;
  int rc;
  (void)state;
  fixture_open(&f, 0, 60000);
  r = begin(&f, &rc);
  assert_int_equal(rc, CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(r), "views", 7),
                   CSN_OK);
  assert_int_equal(csn_store_set(f.mem, SID, other, strlen(other),
                                 NOW + 60000),
                   CSN_OK);
  csn__store_set_fault(fault_fn, &ft);
  rc = csn_request_commit(r, &set_cookie);
  csn__store_set_fault(NULL, NULL);
  assert_int_equal(rc, CSN_ESTORE);
  assert_null(set_cookie);
  /* The compare-and-set (through the wrapper and the store it wraps)
   * conflicted, then the re-read failed, and nothing more was tried. */
  assert_int_equal(ft.calls[1], 2);
  assert_int_equal(ft.hits, 1);
  csn_request_free(r);
  assert_record_is(&f, other);
  fixture_close(&f);
}

/* An explicit save() that fails reports it and leaves the record alone. */
static void fault_store_explicit_save_fails(void **state) {
  fixture f;
  fault ft = {"set", CSN_ESTORE, 0, {0}};
  csn_request *r;
  csn_session *s;
  int rc;
  (void)state;
  fixture_open(&f, 0, 60000);
  r = begin(&f, &rc);
  s = csn_request_session(r);
  assert_int_equal(csn_session_set_int(s, "views", 9), CSN_OK);
  csn__store_set_fault(fault_fn, &ft);
  assert_int_equal(csn_session_save(s), CSN_ESTORE);
  csn__store_set_fault(NULL, NULL);
  csn_request_free(r); /* the handler gives up: no commit */
  assert_record_is(&f, RECORD);
  assert_next_request_works(&f, 1);
  fixture_close(&f);
}

/* resave=false and an untouched session: commit touches, and the touch
 * fails. */
static void fault_store_touch_fails(void **state) {
  fixture f;
  fault ft = {"touch", CSN_ESTORE, 0, {0}};
  csn_request *r;
  char *set_cookie = NULL;
  int rc;
  (void)state;
  fixture_open(&f, 0, 60000);
  r = begin(&f, &rc);
  assert_int_equal(rc, CSN_OK);
  csn__store_set_fault(fault_fn, &ft);
  rc = csn_request_commit(r, &set_cookie);
  csn__store_set_fault(NULL, NULL);
  assert_int_equal(ft.hits, 1);
  assert_int_equal(rc, CSN_ESTORE);
  assert_null(set_cookie);
  assert_int_equal(ft.calls[1], 0); /* not turned into a set */
  csn_request_free(r);
  assert_record_is(&f, RECORD);
  assert_next_request_works(&f, 1);
  fixture_close(&f);
}

/* destroy() fails: the caller hears about it and the session is still
 * there for the next request (the user can retry the logout). */
static void fault_store_destroy_fails(void **state) {
  fixture f;
  fault ft = {"destroy", CSN_EIO, 0, {0}};
  csn_request *r;
  char *set_cookie = NULL;
  int rc, crc;
  (void)state;
  fixture_open(&f, 1, 60000);
  r = begin(&f, &rc);
  assert_int_equal(rc, CSN_OK);
  csn__store_set_fault(fault_fn, &ft);
  rc = csn_session_destroy(csn_request_session(r));
  crc = csn_request_commit(r, &set_cookie);
  csn__store_set_fault(NULL, NULL);
  assert_true(ft.hits >= 1);
  assert_true(rc == CSN_EIO || crc == CSN_EIO);
  assert_null(set_cookie);
  assert_int_equal(ft.calls[1], 0);
  csn_request_free(r);
  assert_record_is(&f, RECORD);
  assert_next_request_works(&f, 1);
  fixture_close(&f);
}

/* regenerate() while destroy fails: the error is reported, a new session
 * exists, and the old record is still intact. */
static void fault_store_regenerate_destroy_fails(void **state) {
  fixture f;
  fault ft = {"destroy", CSN_ESTORE, 0, {0}};
  csn_request *r;
  csn_session *s;
  char *set_cookie = NULL;
  int rc;
  (void)state;
  fixture_open(&f, 1, 60000);
  r = begin(&f, &rc);
  s = csn_request_session(r);
  csn__store_set_fault(fault_fn, &ft);
  assert_int_equal(csn_session_regenerate(s), CSN_ESTORE);
  csn__store_set_fault(NULL, NULL);
  assert_string_not_equal(csn_session_id(s), SID);
  assert_int_equal(csn_request_commit(r, &set_cookie), CSN_OK);
  assert_non_null(set_cookie);
  csn_free(set_cookie);
  csn_request_free(r);
  assert_record_is(&f, RECORD);
  fixture_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Garbage from get                                                         */
/* ------------------------------------------------------------------------ */

/* garbage_case()'s `want` for text that is not a session record at all
 * (not JSON, not an object, too deep or too big): the request starts a
 * fresh session under a new id, and the stored record stays untouched for
 * its owner or the operator (issue 15: one behaviour for every store). */
#define FRESH 1

static void fresh_case(fixture *f, csn_request *r) {
  char *set_cookie = NULL;
  csn_session *s = csn_request_session(r);
  assert_non_null(s);
  assert_string_not_equal(csn_session_id(s), SID);
  assert_int_equal(csn_session_set_int(s, "views", 5), CSN_OK);
  assert_int_equal(csn_request_commit(r, &set_cookie), CSN_OK);
  assert_non_null(set_cookie); /* the new id goes to the browser */
  csn_free(set_cookie);
  csn_request_free(r);
  assert_int_equal(f->wrap.sets, 1); /* the new session, once */
  assert_record_is(f, RECORD);
  assert_next_request_works(f, 1);
}

static void garbage_case(const char *text, size_t len, int want) {
  fixture f;
  int rc, loaded;
  csn_request *r;
  fixture_open(&f, 1, 60000);
  f.wrap.garbage = text;
  f.wrap.garbage_len = len;
  r = begin(&f, &rc);
  f.wrap.garbage = NULL;
  if (want == FRESH) {
    assert_int_equal(rc, CSN_OK);
    fresh_case(&f, r);
    fixture_close(&f);
    return;
  }
  if (want != CSN_OK)
    assert_int_equal(rc, want);
  else
    assert_true(rc == CSN_OK || rc == CSN_ECORRUPT);
  loaded = rc == CSN_OK;
  if (loaded) {
    char *set_cookie = NULL;
    assert_int_equal(csn_session_set_int(csn_request_session(r), "views", 5),
                     CSN_OK);
    assert_int_equal(csn_request_commit(r, &set_cookie), CSN_OK);
    /* Attributes from a foreign record never smuggle a control byte (a
     * CR LF header injection) into Set-Cookie. */
    for (const char *p = set_cookie; p != NULL && *p != '\0'; p++)
      assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    csn_free(set_cookie);
    csn_request_free(r);
  }
  /* The text loaded (the garbage) is not what the store holds, so the
   * save's compare-and-set conflicts once, and the merge on the re-read
   * record is written: two save attempts. */
  assert_int_equal(f.wrap.sets, loaded ? 2 : 0);
  if (!loaded)
    assert_record_is(&f, RECORD);
  assert_next_request_works(&f, loaded ? 5 : 1);
  fixture_close(&f);
}

#define GARBAGE(s, want) garbage_case(s, sizeof(s) - 1, want)

static void fault_store_garbage_not_json(void **state) {
  (void)state;
  GARBAGE("", FRESH);
  GARBAGE("{\"cookie\":{", FRESH);
  GARBAGE("not json at all", FRESH);
  GARBAGE("{\"cookie\":{}} trailing", FRESH);
  GARBAGE("\xff\xfe{\"cookie\":{}}", FRESH);
  GARBAGE("{\"cookie\":{},\"s\":\"\xc3\"}", FRESH); /* bad UTF-8 */
  /* A NUL inside the text: the length, not strlen, is what counts. */
  GARBAGE("{\"cookie\":{}}\0{\"x\":1}", FRESH);
}

/* Not an object: not a record, a fresh session. An object whose cookie is
 * unusable is a record gone wrong: 500, as express-session answers (its
 * test 47), and the record stays. */
static void fault_store_garbage_wrong_shape(void **state) {
  (void)state;
  GARBAGE("[1,2,3]", FRESH);
  GARBAGE("[{\"cookie\":{}}]", FRESH);
  GARBAGE("\"a string\"", FRESH);
  GARBAGE("42", FRESH);
  GARBAGE("null", FRESH);
  GARBAGE("{\"cookie\":\"s:abc\",\"views\":1}", CSN_ECORRUPT);
  GARBAGE("{\"cookie\":[],\"views\":1}", CSN_ECORRUPT);
  GARBAGE("{\"cookie\":null,\"views\":1}", CSN_ECORRUPT);
  GARBAGE("{\"views\":1}", CSN_ECORRUPT);
}

/* Odd but loadable records: they load (or fail cleanly), never crash. */
static void fault_store_garbage_odd_values(void **state) {
  (void)state;
  GARBAGE("{\"cookie\":{\"originalMaxAge\":\"x\",\"expires\":true,"
          "\"httpOnly\":[],\"path\":5,\"domain\":{}}}",
          CSN_OK);
  GARBAGE("{\"cookie\":{\"originalMaxAge\":1e400,\"expires\":"
          "\"garbage\"},\"n\":123456789012345678901234567890}",
          CSN_OK);
  GARBAGE("{\"cookie\":{\"domain\":\"a\\r\\nX-Evil: 1\",\"path\":\"/\","
          "\"originalMaxAge\":1000,\"expires\":\"2025-01-01T00:00:01.000Z\"}}",
          CSN_OK);
}

/* A record of several megabytes, and one nested a thousand deep. */
static void fault_store_garbage_huge(void **state) {
  static const char head[] = "{\"cookie\":{\"path\":\"/\"},\"big\":\"";
  size_t big = (size_t)8 << 20, depth = 1000, i, n;
  char *text = malloc(sizeof head + big + 4);
  (void)state;
  assert_non_null(text);
  memcpy(text, head, sizeof head - 1);
  memset(text + sizeof head - 1, 'x', big);
  memcpy(text + sizeof head - 1 + big, "\"}", 3);
  garbage_case(text, strlen(text), CSN_OK);
  free(text);

  text = malloc(32 + 2 * depth);
  assert_non_null(text);
  n = (size_t)sprintf(text, "{\"cookie\":{},\"d\":");
  for (i = 0; i < depth; i++)
    text[n++] = '[';
  for (i = 0; i < depth; i++)
    text[n++] = ']';
  text[n++] = '}';
  text[n] = '\0';
  garbage_case(text, n, FRESH); /* deeper than any record may be */
  free(text);
}

/* ------------------------------------------------------------------------ */
/* Slow store                                                               */
/* ------------------------------------------------------------------------ */

static void fault_store_slow_set(void **state) {
  fixture f;
  (void)state;
  fixture_open(&f, 1, 60000);
  f.wrap.slow_set_ms = 50;
  assert_next_request_works(&f, 1);
  assert_next_request_works(&f, 2);
  assert_int_equal(f.wrap.sets, 2);
  fixture_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fault_store_get_fails),
      cmocka_unit_test(fault_store_get_not_found),
      cmocka_unit_test(fault_store_set_fails),
      cmocka_unit_test(fault_store_explicit_save_fails),
      cmocka_unit_test(fault_store_merge_reread_fails),
      cmocka_unit_test(fault_store_touch_fails),
      cmocka_unit_test(fault_store_destroy_fails),
      cmocka_unit_test(fault_store_regenerate_destroy_fails),
      cmocka_unit_test(fault_store_garbage_not_json),
      cmocka_unit_test(fault_store_garbage_wrong_shape),
      cmocka_unit_test(fault_store_garbage_odd_values),
      cmocka_unit_test(fault_store_garbage_huge),
      cmocka_unit_test(fault_store_slow_set),
  };
  return cmocka_run_group_tests_name("fault_store", tests, NULL, NULL);
}
