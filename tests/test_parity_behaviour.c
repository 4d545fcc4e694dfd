/* test_parity_behaviour.c - express-session test/session.js behaviour
 * options (cases 87-116): rolling, resave, saveUninitialized, secret, unset
 * and the res.end patch block.
 *
 * Store failures at commit answer 500 with the record left as it was, the
 * lead's deliberate divergence from express's "200, then report the error"
 * (docs/PARITY.md); the cases that cover them assert the C behaviour. */
#include "test_parity_common.h"

#include <stdlib.h>
#include <string.h>

static void h_none(pt_call *c) { (void)c; }

/* req.session.user = 'bob' on every request (same value after the first). */
static void h_bob(pt_call *c) {
  assert_int_equal(csn_session_set_str(c->s, "user", "bob"), CSN_OK);
}

/* Two requests: the second carries the first's cookie. Store counters are
 * reset in between, so they describe the second request alone. */
static void two(pt_server *p, pt_handler h) {
  const char *ck;
  pt_start(p, h, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  counting_store_reset(p->store);
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 200);
}

/* 87 */
static void parity_behaviour_rolling_should_default_to_false(void **st) {
  pt_server *p = pt_new();
  (void)st;
  two(p, h_bob);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

/* 88 */
static void parity_behaviour_rolling_should_force_cookie_on_unmodified_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.rolling = 1;
  two(p, h_bob);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

/* 89 */
static void
parity_behaviour_rolling_should_not_force_cookie_on_uninitialized_session_if_saveUninitialized_false(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.rolling = 1;
  p->o.save_uninitialized = 0;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 0);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

/* 90 */
static void
parity_behaviour_rolling_should_force_cookie_and_save_uninitialized_session_if_saveUninitialized_true(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.rolling = 1;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 1);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

/* 91 */
static void
parity_behaviour_rolling_should_force_cookie_and_save_modified_session_even_if_saveUninitialized_false(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.rolling = 1;
  p->o.save_uninitialized = 0;
  pt_start(p, h_bob, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 1);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

/* 92, 93 */
static void parity_behaviour_resave_should_default_to_true(void **st) {
  pt_server *p = pt_new();
  (void)st;
  two(p, h_bob);
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

static void parity_behaviour_resave_true_should_force_save_on_unmodified_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.resave = 1;
  two(p, h_bob);
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

/* 94 */
static void parity_behaviour_resave_false_should_prevent_save_on_unmodified_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.resave = 0;
  two(p, h_bob);
  assert_int_equal(PT_SETS(p), 0);
  pt_free(p);
}

/* PUT stores the body as the token, GET reads it. */
static void h_token(pt_call *c) {
  const char *tok = NULL;
  if (strcmp(c->method, "PUT") == 0) {
    assert_int_equal(csn_session_set_str(c->s, "token", c->hr->body), CSN_OK);
    return;
  }
  if (csn_session_get_str(c->s, "token", &tok, NULL) == CSN_OK)
    pt_printf(c, "%s", tok);
}

static void put(pt_server *p, const char *ck, const char *body) {
  http_request_opts r;
  char url[256];
  http_response_free(&p->res);
  memset(&r, 0, sizeof r);
  r.method = "PUT";
  r.url = http_server_url(p->http, "/", url, sizeof url);
  r.cookie = ck;
  r.body = body;
  r.body_len = strlen(body);
  assert_int_equal(http_request(p->client, &r, &p->res), 0);
}

/* 95 */
static void parity_behaviour_resave_false_should_still_save_modified_session(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  p->o.resave = 0;
  pt_start(p, h_token, 0);
  put(p, NULL, "token1");
  ck = pt_cookie(p);
  assert_int_equal(PT_SETS(p), 1);
  counting_store_reset(p->store);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "token1");
  assert_int_equal(PT_SETS(p), 0);
  put(p, ck, "token2");
  assert_int_equal(PT_SETS(p), 1);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "token2");
  pt_free(p);
}

/* A nested member named "cookie": user.cookie.count++. */
static void h_nested_cookie(pt_call *c) {
  char *json = NULL;
  long long n = 0;
  if (csn_session_get_json(c->s, "user", &json) == CSN_OK) {
    const char *q = strstr(json, "\"count\":");
    if (q)
      n = strtoll(q + 8, NULL, 10);
    csn_free(json);
  }
  {
    char buf[64];
    snprintf(buf, sizeof buf, "{\"cookie\":{\"count\":%lld}}", n + 1);
    assert_int_equal(csn_session_set_json(c->s, "user", buf), CSN_OK);
  }
}

/* 96 */
static void parity_behaviour_resave_false_should_detect_a_cookie_property_as_modified(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.resave = 0;
  two(p, h_nested_cookie);
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

/* 97: divergence - 500 and the record intact. */
static void parity_behaviour_resave_false_should_pass_session_touch_error(
    void **st) {
  pt_server *p = pt_new();
  const char *ck, *before, *sid;
  (void)st;
  p->o.resave = 0;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  sid = pt_sid(p);
  before = pt_stored(p, sid);
  counting_store_reset(p->store);
  pt_fault(p, "touch", CSN_EIO, 0);
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 500);
  assert_non_null(strstr(p->res.body, "boom!"));
  /* The fault sits in front of the store, so the failed touch never
   * reached it; nothing but the touch was attempted. */
  assert_int_equal(PT_SETS(p), 0);
  pt_fault_clear();
  assert_string_equal(pt_stored(p, sid), before);
  pt_free(p);
}

/* 98, 99 */
static void parity_behaviour_saveUninitialized_should_default_to_true(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 1);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

static void parity_behaviour_saveUninitialized_should_force_save_of_uninitialized_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.save_uninitialized = 1;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 1);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

/* 100 */
static void parity_behaviour_saveUninitialized_should_prevent_save_of_uninitialized_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.save_uninitialized = 0;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 0);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

/* 101 */
static void parity_behaviour_saveUninitialized_should_still_save_modified_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.save_uninitialized = 0;
  pt_start(p, h_bob, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_SETS(p), 1);
  assert_non_null(pt_set_cookie(p));
  pt_free(p);
}

static void h_saved(pt_call *c) {
  csn_session_set_str(c->s, "user", "bob");
  pt_printf(c, "session saved");
}

/* 102: divergence - 500, nothing stored, no cookie for a session that does
 * not exist. */
static void parity_behaviour_saveUninitialized_should_pass_session_save_error(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.save_uninitialized = 0;
  pt_start(p, h_saved, 0);
  pt_fault(p, "set", CSN_EIO, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 500);
  assert_non_null(strstr(p->res.body, "boom!"));
  assert_null(pt_set_cookie(p));
  pt_fault_clear();
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

/* 103 */
static void
parity_behaviour_saveUninitialized_should_prevent_uninitialized_session_from_being_touched(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.save_uninitialized = 0;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  pt_get(p, "/", NULL);
  assert_int_equal(PT_TOUCHES(p), 0);
  assert_int_equal(PT_SETS(p), 0);
  pt_free(p);
}

/* 104: an empty secret list is refused at creation. */
static void parity_behaviour_secret_should_reject_empty_arrays(void **st) {
  static const char *const none[] = {NULL};
  pt_server *p = pt_new();
  csn_ctx *ctx = NULL;
  char err[128] = "";
  (void)st;
  p->o.secrets = none;
  p->o.n_secrets = 1;
  assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_ENOSECRET);
  assert_true(http_regex_match("secret option array", err));
  p->o.n_secrets = 0;
  assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_ENOSECRET);
  assert_null(ctx);
  pt_free(p);
}

/* GET /set stores user=bob, GET /get answers get:"<user>". */
static void h_getset(pt_call *c) {
  const char *u = NULL;
  if (strcmp(c->url, "/set") == 0) {
    csn_session_set_str(c->s, "user", "bob");
    return;
  }
  if (csn_session_get_str(c->s, "user", &u, NULL) == CSN_OK)
    pt_printf(c, "get:\"%s\"", u);
  else
    pt_printf(c, "get:undefined");
}

static void round_trip(pt_server *p) {
  const char *ck;
  pt_start(p, h_getset, 0);
  pt_get(p, "/set", NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  pt_get(p, "/get", ck);
  assert_string_equal(p->res.body, "get:\"bob\"");
}

/* 105 */
static void parity_behaviour_secret_should_sign_and_unsign_with_a_string(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  round_trip(p);
  pt_free(p);
}

/* 106 */
static void parity_behaviour_secret_should_sign_and_unsign_with_a_Buffer(
    void **st) {
  static unsigned char key[32];
  static const char *secrets[1];
  static size_t lens[1] = {32};
  pt_server *p = pt_new();
  (void)st;
  assert_int_equal(csn__random_bytes(key, sizeof key), CSN_OK);
  key[5] = 0; /* a NUL byte inside: really binary */
  secrets[0] = (const char *)key;
  p->o.secrets = secrets;
  p->o.secret_lens = lens;
  round_trip(p);
  pt_free(p);
}

static const char *const KC_NC[] = {"keyboard cat", "nyan cat"};
static const char *const NC[] = {"nyan cat"};

/* 107 */
static void parity_behaviour_secret_array_should_sign_cookies(void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.secrets = KC_NC;
  p->o.n_secrets = 2;
  pt_start(p, h_getset, 0);
  pt_get(p, "/set", NULL);
  assert_non_null(pt_set_cookie(p));
  assert_non_null(pt_sid(p)); /* verifies with "keyboard cat" */
  pt_free(p);
}

/* Set on a server with secrets a, read on one with secrets b (same store). */
static const char *cross(const char *const *a, size_t na,
                         const char *const *b, size_t nb) {
  pt_server *p = pt_new(), *q = pt_new();
  const char *ck;
  static char body[64];
  p->o.secrets = a;
  p->o.n_secrets = na;
  q->o.secrets = b;
  q->o.n_secrets = nb;
  q->o.store = &p->store->base;
  pt_start(p, h_getset, 0);
  pt_start(q, h_getset, 0);
  pt_get(p, "/set", NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  pt_get(q, "/get", ck);
  snprintf(body, sizeof body, "%s", q->res.body);
  pt_free(q);
  pt_free(p);
  return body;
}

/* 108 */
static void parity_behaviour_secret_array_should_sign_cookies_with_first_element(
    void **st) {
  (void)st;
  assert_string_equal(cross(KC_NC, 2, NC, 1), "get:undefined");
}

/* 109 */
static void parity_behaviour_secret_array_should_read_cookies_using_all_elements(
    void **st) {
  (void)st;
  assert_string_equal(cross(NC, 1, KC_NC, 2), "get:\"bob\"");
}

/* 110 */
static void parity_behaviour_unset_should_reject_unknown_values(void **st) {
  pt_server *p = pt_new();
  csn_ctx *ctx = NULL;
  char err[128] = "";
  (void)st;
  p->o.unset = 7;
  assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_EINVAL);
  assert_null(ctx);
  assert_true(http_regex_match("unset.*must", err));
  pt_free(p);
}

/* First request stores user=bob; a request to /null drops the session. */
static void h_unset(pt_call *c) {
  if (strcmp(c->url, "/null") == 0) {
    assert_int_equal(csn_request_unset(c->req), CSN_OK);
    pt_printf(c, "session destroyed");
    return;
  }
  csn_session_set_str(c->s, "user", "bob");
}

static void unset_second(pt_server *p) {
  const char *ck;
  pt_start(p, h_unset, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  assert_int_equal(pt_store_len(p), 1);
  pt_get(p, "/null", ck);
}

/* 111 */
static void parity_behaviour_unset_should_default_to_keep(void **st) {
  pt_server *p = pt_new();
  (void)st;
  unset_second(p);
  assert_int_equal(p->res.status, 200);
  assert_int_equal(pt_store_len(p), 1);
  pt_free(p);
}

/* 112 */
static void parity_behaviour_unset_should_allow_destroy_on_req_session_null(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.unset = CSN_UNSET_DESTROY;
  unset_second(p);
  assert_int_equal(p->res.status, 200);
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

/* 113 */
static void parity_behaviour_unset_should_not_set_cookie_if_initial_session_destroyed(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.unset = CSN_UNSET_DESTROY;
  pt_start(p, h_unset, 0);
  pt_get(p, "/null", NULL);
  assert_null(pt_set_cookie(p));
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

/* 114: divergence - 500 and the record intact. */
static void parity_behaviour_unset_should_pass_session_destroy_error(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  p->o.unset = CSN_UNSET_DESTROY;
  pt_start(p, h_unset, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  pt_fault(p, "destroy", CSN_EIO, 0);
  pt_get(p, "/null", ck);
  assert_int_equal(p->res.status, 500);
  assert_non_null(strstr(p->res.body, "boom!"));
  pt_fault_clear();
  assert_int_equal(pt_store_len(p), 1);
  pt_free(p);
}

static void h_hello(pt_call *c) {
  pt_printf(c, "hello, ");
  pt_printf(c, "world");
}

/* 115, 116: no res.end to patch in C; the full body arrives and the store
 * was written once. */
static void parity_behaviour_res_end_patch_should_correctly_handle_res_end_write_patched_prior(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_hello, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "hello, world");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

static void parity_behaviour_res_end_patch_should_correctly_handle_res_end_write_patched_after(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_hello, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "hello, world");
  assert_string_equal(pt_header(p, "Content-Length"), "12");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parity_behaviour_rolling_should_default_to_false),
      cmocka_unit_test(parity_behaviour_rolling_should_force_cookie_on_unmodified_session),
      cmocka_unit_test(parity_behaviour_rolling_should_not_force_cookie_on_uninitialized_session_if_saveUninitialized_false),
      cmocka_unit_test(parity_behaviour_rolling_should_force_cookie_and_save_uninitialized_session_if_saveUninitialized_true),
      cmocka_unit_test(parity_behaviour_rolling_should_force_cookie_and_save_modified_session_even_if_saveUninitialized_false),
      cmocka_unit_test(parity_behaviour_resave_should_default_to_true),
      cmocka_unit_test(parity_behaviour_resave_true_should_force_save_on_unmodified_session),
      cmocka_unit_test(parity_behaviour_resave_false_should_prevent_save_on_unmodified_session),
      cmocka_unit_test(parity_behaviour_resave_false_should_still_save_modified_session),
      cmocka_unit_test(parity_behaviour_resave_false_should_detect_a_cookie_property_as_modified),
      cmocka_unit_test(parity_behaviour_resave_false_should_pass_session_touch_error),
      cmocka_unit_test(parity_behaviour_saveUninitialized_should_default_to_true),
      cmocka_unit_test(parity_behaviour_saveUninitialized_should_force_save_of_uninitialized_session),
      cmocka_unit_test(parity_behaviour_saveUninitialized_should_prevent_save_of_uninitialized_session),
      cmocka_unit_test(parity_behaviour_saveUninitialized_should_still_save_modified_session),
      cmocka_unit_test(parity_behaviour_saveUninitialized_should_pass_session_save_error),
      cmocka_unit_test(parity_behaviour_saveUninitialized_should_prevent_uninitialized_session_from_being_touched),
      cmocka_unit_test(parity_behaviour_secret_should_reject_empty_arrays),
      cmocka_unit_test(parity_behaviour_secret_should_sign_and_unsign_with_a_string),
      cmocka_unit_test(parity_behaviour_secret_should_sign_and_unsign_with_a_Buffer),
      cmocka_unit_test(parity_behaviour_secret_array_should_sign_cookies),
      cmocka_unit_test(parity_behaviour_secret_array_should_sign_cookies_with_first_element),
      cmocka_unit_test(parity_behaviour_secret_array_should_read_cookies_using_all_elements),
      cmocka_unit_test(parity_behaviour_unset_should_reject_unknown_values),
      cmocka_unit_test(parity_behaviour_unset_should_default_to_keep),
      cmocka_unit_test(parity_behaviour_unset_should_allow_destroy_on_req_session_null),
      cmocka_unit_test(parity_behaviour_unset_should_not_set_cookie_if_initial_session_destroyed),
      cmocka_unit_test(parity_behaviour_unset_should_pass_session_destroy_error),
      cmocka_unit_test(parity_behaviour_res_end_patch_should_correctly_handle_res_end_write_patched_prior),
      cmocka_unit_test(parity_behaviour_res_end_patch_should_correctly_handle_res_end_write_patched_after),
  };
  return PT_RUN("parity_behaviour", tests);
}
