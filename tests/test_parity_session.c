/* test_parity_session.c - express-session test/session.js, the top-level
 * "session()" block and the store-lifecycle blocks after it (cases 19-47):
 * creating and loading sessions, fetch errors, response completion, ids
 * missing from the store, bad signatures, expiry and corrupt records. */
#include "test_parity_common.h"

#include <stdlib.h>
#include <string.h>

/* The upstream "count" handler:
 *   req.session.num = req.session.num || ++count
 *   res.end('session ' + req.session.num) */
static void h_count(pt_call *c) {
  int64_t num = 0;
  if (csn_session_get_int(c->s, "num", &num) != CSN_OK || num == 0) {
    num = atomic_fetch_add(&c->p->counter, 1) + 1;
    assert_int_equal(csn_session_set_int(c->s, "num", num), CSN_OK);
  }
  pt_printf(c, "session %lld", (long long)num);
}

static void h_none(pt_call *c) { (void)c; }

/* 19: the constructors of the module are the C API's constructors. */
static void parity_session_should_export_constructors(void **st) {
  csn_store *m = NULL;
  csn_options o;
  csn_ctx *ctx = NULL;
  static const char *const sec[] = {"keyboard cat"};
  (void)st;
  assert_int_equal(csn_store_memory_new(NULL, &m), CSN_OK);
  csn_options_init(&o);
  o.secrets = sec;
  o.n_secrets = 1;
  o.store = m;
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  assert_ptr_equal(csn_ctx_store(ctx), m);
  assert_string_equal(csn_store_name(m), "memory");
  csn_ctx_free(ctx);
  csn_store_free(m);
}

/* 20: a request whose session is already provided (here: the handler does
 * not run the middleware) gets no cookie and no store calls. */
static void parity_session_should_do_nothing_if_req_session_exists(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->no_middleware = 1;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_null(pt_set_cookie(p));
  assert_int_equal(PT_GETS(p) + PT_SETS(p), 0);
  pt_free(p);
}

/* 21: no secret is an error at creation with express's message. */
static void parity_session_should_error_without_secret(void **st) {
  pt_server *p = pt_new();
  csn_ctx *ctx = NULL;
  char err[128] = "";
  (void)st;
  p->o.secrets = NULL;
  p->o.n_secrets = 0;
  assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_ENOSECRET);
  assert_null(ctx);
  assert_true(http_regex_match("secret.*required", err));
  pt_free(p);
}

/* 23 */
static void parity_session_should_create_a_new_session(void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "session 1");
  assert_non_null(pt_set_cookie(p));
  assert_int_equal(pt_store_len(p), 1);
  pt_free(p);
}

/* 24 */
static void parity_session_should_load_session_from_cookie_sid(void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "session 1");
  pt_free(p);
}

/* 25 */
static void parity_session_should_pass_session_fetch_error(void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  pt_fault(p, "get", CSN_EIO, 0);
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 500);
  assert_non_null(strstr(p->res.body, "boom!"));
  pt_free(p);
}

/* 26 */
static void parity_session_should_treat_ENOENT_session_fetch_error_as_not_found(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  pt_fault(p, "get", CSN_ENOENT, 0);
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "session 2");
  pt_free(p);
}

/* 27 */
static void parity_session_should_create_multiple_sessions(void **st) {
  pt_server *p = pt_new();
  const char *a, *b;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  a = pt_sid(p);
  pt_get(p, "/", NULL);
  b = pt_sid(p);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_not_equal(a, b);
  assert_int_equal(pt_store_len(p), 2);
  pt_free(p);
}

/* 28: the adapter reports an empty URL. */
static void parity_session_should_handle_empty_req_url(void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->url_override = "";
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

static void h_hello(pt_call *c) {
  pt_printf(c, "Hello, world!");
}

/* 29: a C handler ends once; the body and Content-Type arrive whole. */
static void parity_session_should_handle_multiple_res_end_calls(void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_hello, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "Hello, world!");
  assert_string_equal(pt_header(p, "Content-Type"), "text/plain");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

/* 30 */
static void parity_session_should_handle_res_end_null_calls(void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_int_equal(p->res.body_len, 0);
  pt_free(p);
}

/* 31: a record holding keys named like Session methods still loads. */
static void parity_session_should_handle_reserved_properties_in_storage(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_count, 0);
  pt_store_put(p, "reserved1",
               "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,"
               "\"httpOnly\":true,\"path\":\"/\"},\"save\":\"nope\","
               "\"touch\":1,\"id\":\"x\",\"num\":7}");
  pt_get(p, "/", pt_signed(p, "connect.sid", "reserved1", "keyboard cat"));
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "session 7");
  pt_free(p);
}

static void h_enumerable(pt_call *c) {
  char *json = NULL;
  json_t *root;
  const char *key;
  json_t *v;
  int first = 1;
  csn_session_set_str(c->s, "test1", "1");
  csn_session_set_str(c->s, "test2", "b");
  assert_int_equal(csn_session_to_json(c->s, &json), CSN_OK);
  root = json_loads(json, JSON_PRESERVE_ORDER, NULL);
  json_object_foreach(root, key, v) {
    pt_printf(c, "%s%s", first ? "" : ",", key);
    first = 0;
  }
  json_decref(root);
  csn_free(json);
}

/* 32 */
static void parity_session_should_only_have_session_data_enumerable_and_cookie(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_enumerable, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "cookie,test1,test2");
  pt_free(p);
}

static void h_bogus_id(pt_call *c) {
  /* req.sessionID = function () {}: the session is no longer the
   * request's; csn_request_unset is the C way to drop it. */
  assert_int_equal(csn_request_unset(c->req), CSN_OK);
}

/* 33 */
static void parity_session_should_not_save_with_bogus_req_sessionID(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_bogus_id, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_null(pt_set_cookie(p));
  assert_int_equal(PT_SETS(p), 0);
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

static void h_slow(pt_call *c) {
  pt_printf(c, "hello, ");
  pt_sleep_ms(200);
  pt_printf(c, "world");
}

/* 34 */
static void parity_session_should_update_cookie_expiration_when_slow_write(
    void **st) {
  pt_server *p = pt_new();
  const char *ck, *sc1;
  (void)st;
  p->o.rolling = 1;
  pt_start(p, h_slow, 0);
  pt_get(p, "/", NULL);
  sc1 = pt_set_cookie(p);
  ck = pt_cookie(p);
  assert_non_null(sc1);
  assert_string_equal(p->res.body, "hello, world");
  pt_sleep_ms(1100);
  pt_get(p, "/", ck);
  assert_non_null(pt_set_cookie(p));
  assert_true(pt_expires(pt_set_cookie(p)) > pt_expires(sc1));
  pt_free(p);
}

/* 35: the store write takes 200 ms; the response waits for it. */
static void parity_session_when_response_ended_should_have_saved_session(
    void **st) {
  pt_server *p = pt_new();
  int64_t t0;
  (void)st;
  pt_start(p, h_hello, 0);
  pt_fault(p, "set", 0, 200);
  t0 = pt_now_ms();
  pt_get(p, "/", NULL);
  assert_true(pt_now_ms() - t0 >= 200);
  assert_string_equal(p->res.body, "Hello, world!");
  assert_int_equal(PT_SETS(p), 1);
  assert_non_null(pt_stored(p, pt_sid(p)));
  pt_free(p);
}

/* 36 */
static void
parity_session_when_response_ended_should_have_saved_session_even_with_empty_response(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(pt_header(p, "Content-Length"), "0");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

static void h_multi(pt_call *c) {
  pt_printf(c, "hello, ");
  pt_printf(c, "world");
}

/* 37 */
static void
parity_session_when_response_ended_should_have_saved_session_even_with_multi_write(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_multi, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "hello, world");
  assert_string_equal(pt_header(p, "Content-Length"), "12");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

static void h_saved(pt_call *c) { pt_printf(c, "session saved"); }

/* 38 */
static void
parity_session_when_response_ended_should_have_saved_session_even_with_non_chunked_response(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_saved, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "session saved");
  assert_string_equal(pt_header(p, "Content-Length"), "13");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

/* 39 */
static void
parity_session_when_response_ended_should_have_saved_session_with_updated_cookie_expiration(
    void **st) {
  pt_server *p = pt_new();
  const char *sid, *ck;
  int64_t e1, e2;
  (void)st;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  sid = pt_sid(p);
  ck = pt_cookie(p);
  e1 = pt_stored_expires(p, sid);
  assert_true(e1 != PT_NONE);
  assert_true(e1 / 1000 * 1000 == pt_expires(pt_set_cookie(p)));
  pt_sleep_ms(1100);
  pt_get(p, "/", ck);
  e2 = pt_stored_expires(p, sid);
  assert_true(e2 > e1 + 1000);
  pt_free(p);
}

/* 40, 41 */
static void parity_session_when_sid_not_in_store_should_create_a_new_session(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  assert_int_equal(csn_store_clear(p->store->inner), CSN_OK);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "session 2");
  pt_free(p);
}

static void parity_session_when_sid_not_in_store_should_have_a_new_sid(
    void **st) {
  pt_server *p = pt_new();
  const char *ck, *sid1;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  sid1 = pt_sid(p);
  assert_int_equal(csn_store_clear(p->store->inner), CSN_OK);
  pt_get(p, "/", ck);
  assert_non_null(pt_sid(p));
  assert_string_not_equal(pt_sid(p), sid1);
  pt_free(p);
}

/* 42: `key: 'sessid'` is the name option in C. */
static void parity_session_when_sid_not_properly_signed_should_generate_new_session(
    void **st) {
  pt_server *p = pt_new();
  const char *sid1;
  (void)st;
  p->o.name = "sessid";
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  sid1 = pt_sid(p);
  assert_non_null(sid1);
  pt_get(p, "/", pt_fmt(p, "sessid=%s", sid1));
  assert_string_equal(p->res.body, "session 2");
  assert_string_not_equal(pt_sid(p), sid1);
  pt_free(p);
}

/* 43 */
static void
parity_session_when_sid_not_properly_signed_should_not_attempt_fetch_from_store(
    void **st) {
  pt_server *p = pt_new();
  char *ck;
  (void)st;
  pt_start(p, h_count, 0);
  pt_get(p, "/", NULL);
  ck = strdup(pt_cookie(p));
  pt_keep(p, ck);
  /* Alter the id before the dot: connect.sid=s%3A<id>.<sig> */
  ck[strlen("connect.sid=s%3A")] ^= 1;
  counting_store_reset(p->store);
  pt_get(p, "/", ck);
  assert_int_equal(PT_GETS(p), 0);
  assert_string_equal(p->res.body, "session 2");
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

static pt_server *expiring(void) {
  pt_server *p = pt_new();
  p->o.cookie.max_age_ms = 5;
  pt_start(p, h_count, 0);
  return p;
}

/* 44 */
static void parity_session_when_session_expired_in_store_should_create_a_new_session(
    void **st) {
  pt_server *p = expiring();
  const char *ck;
  (void)st;
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  assert_string_equal(p->res.body, "session 1");
  pt_sleep_ms(20);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "session 2");
  pt_free(p);
}

/* 45 */
static void parity_session_when_session_expired_in_store_should_have_a_new_sid(
    void **st) {
  pt_server *p = expiring();
  const char *ck, *sid1;
  (void)st;
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  sid1 = pt_sid(p);
  pt_sleep_ms(20);
  pt_get(p, "/", ck);
  assert_non_null(pt_sid(p));
  assert_string_not_equal(pt_sid(p), sid1);
  pt_free(p);
}

/* 46 */
static void parity_session_when_session_expired_in_store_should_not_exist_in_store(
    void **st) {
  pt_server *p = expiring();
  (void)st;
  pt_get(p, "/", NULL);
  pt_sleep_ms(10);
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

/* 47: inflating a record without "cookie" fails the request. */
static void
parity_session_when_session_without_cookie_property_in_store_should_pass_error_from_inflate(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_count, 0);
  pt_store_put(p, "nocookie", "{\"foo\":\"bar\"}");
  pt_get(p, "/", pt_signed(p, "connect.sid", "nocookie", "keyboard cat"));
  assert_int_equal(p->res.status, 500);
  assert_true(http_regex_match("cookie", p->res.body));
  pt_free(p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parity_session_should_export_constructors),
      cmocka_unit_test(parity_session_should_do_nothing_if_req_session_exists),
      cmocka_unit_test(parity_session_should_error_without_secret),
      cmocka_unit_test(parity_session_should_create_a_new_session),
      cmocka_unit_test(parity_session_should_load_session_from_cookie_sid),
      cmocka_unit_test(parity_session_should_pass_session_fetch_error),
      cmocka_unit_test(parity_session_should_treat_ENOENT_session_fetch_error_as_not_found),
      cmocka_unit_test(parity_session_should_create_multiple_sessions),
      cmocka_unit_test(parity_session_should_handle_empty_req_url),
      cmocka_unit_test(parity_session_should_handle_multiple_res_end_calls),
      cmocka_unit_test(parity_session_should_handle_res_end_null_calls),
      cmocka_unit_test(parity_session_should_handle_reserved_properties_in_storage),
      cmocka_unit_test(parity_session_should_only_have_session_data_enumerable_and_cookie),
      cmocka_unit_test(parity_session_should_not_save_with_bogus_req_sessionID),
      cmocka_unit_test(parity_session_should_update_cookie_expiration_when_slow_write),
      cmocka_unit_test(parity_session_when_response_ended_should_have_saved_session),
      cmocka_unit_test(parity_session_when_response_ended_should_have_saved_session_even_with_empty_response),
      cmocka_unit_test(parity_session_when_response_ended_should_have_saved_session_even_with_multi_write),
      cmocka_unit_test(parity_session_when_response_ended_should_have_saved_session_even_with_non_chunked_response),
      cmocka_unit_test(parity_session_when_response_ended_should_have_saved_session_with_updated_cookie_expiration),
      cmocka_unit_test(parity_session_when_sid_not_in_store_should_create_a_new_session),
      cmocka_unit_test(parity_session_when_sid_not_in_store_should_have_a_new_sid),
      cmocka_unit_test(parity_session_when_sid_not_properly_signed_should_generate_new_session),
      cmocka_unit_test(parity_session_when_sid_not_properly_signed_should_not_attempt_fetch_from_store),
      cmocka_unit_test(parity_session_when_session_expired_in_store_should_create_a_new_session),
      cmocka_unit_test(parity_session_when_session_expired_in_store_should_have_a_new_sid),
      cmocka_unit_test(parity_session_when_session_expired_in_store_should_not_exist_in_store),
      cmocka_unit_test(parity_session_when_session_without_cookie_property_in_store_should_pass_error_from_inflate),
  };
  return PT_RUN("parity_session", tests);
}
