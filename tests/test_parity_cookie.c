/* test_parity_cookie.c - express-session test/cookie.js (cases 1-18).
 *
 * Upstream constructs `new Cookie(options)` directly. csession has no
 * separate cookie object: the cookie of a new session is built from the
 * context's cookie options, so each case configures those options, serves a
 * request through a real server, and checks the session's cookie as the
 * handler sees it (csn_session_cookie_*) and as the browser gets it
 * (Set-Cookie). */
#include "test_parity_common.h"

#include <stdlib.h>
#include <string.h>

static const char *const KEYBOARD[] = {"keyboard cat"};

/* The handler reports the new session's cookie: "expires,maxAge,orig". */
static void report_cookie(pt_call *c) {
  int64_t exp = PT_NONE, age = PT_NONE, orig = PT_NONE;
  csn_cookie_options co;
  if (c->s == NULL) {
    pt_printf(c, "no session");
    return;
  }
  assert_int_equal(csn_session_cookie_get(c->s, &co), CSN_OK);
  csn_session_cookie_expires(c->s, &exp);
  csn_session_cookie_max_age(c->s, &age);
  csn_session_cookie_original_max_age(c->s, &orig);
  pt_printf(c, "%lld,%lld,%lld,%d,%s", (long long)exp, (long long)age,
            (long long)orig, co.http_only, co.path ? co.path : "-");
}

/* Serve one request with the given options and parse the report. */
static pt_server *one(pt_server *p, const char *path, int64_t v[3]) {
  long long a, b, c;
  pt_start(p, report_cookie, 0);
  pt_get(p, path, NULL);
  assert_int_equal(p->res.status, 200);
  assert_int_equal(sscanf(p->res.body, "%lld,%lld,%lld", &a, &b, &c), 3);
  v[0] = a;
  v[1] = b;
  v[2] = c;
  return p;
}

static pt_server *browser_session(void) {
  pt_server *p = pt_new();
  csn_options_init(&p->o);
  p->o.secrets = KEYBOARD;
  p->o.n_secrets = 1;
  p->o.store = &p->store->base;
  p->o.log = NULL;
  return p;
}

/* 1 */
static void parity_cookie_new_should_create_a_new_cookie_object(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  one(p, "/", v);
  assert_non_null(pt_set_cookie(p));
  assert_true(strstr(p->res.body, "no session") == NULL);
  pt_free(p);
}

/* 2 */
static void parity_cookie_new_should_default_expires_to_null(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  one(p, "/", v);
  assert_true(v[0] == PT_NONE);
  assert_true(pt_expires(pt_set_cookie(p)) == PT_NONE);
  pt_free(p);
}

/* 3 */
static void parity_cookie_new_should_default_httpOnly_to_true(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  one(p, "/", v);
  assert_true(pt_attr(pt_set_cookie(p), "HttpOnly"));
  assert_non_null(strstr(p->res.body, ",1,/"));
  pt_free(p);
}

/* 4 */
static void parity_cookie_new_should_default_path_to_root(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  one(p, "/", v);
  assert_true(pt_attr(pt_set_cookie(p), "Path=/"));
  pt_free(p);
}

/* 5 */
static void parity_cookie_new_should_default_maxAge_to_null(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  one(p, "/", v);
  assert_true(v[1] == PT_NONE);
  assert_true(v[2] == PT_NONE);
  pt_free(p);
}

/* 6: `new Cookie({})` - options initialised but nothing set. */
static void parity_cookie_with_options_should_create_a_new_cookie_object(
    void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  one(p, "/", v);
  assert_non_null(pt_set_cookie(p));
  assert_non_null(strstr(p->res.body, ",1,/"));
  assert_true(v[0] == PT_NONE);
  pt_free(p);
}

/* 7: non-object options cannot be written in C; the equivalent misuse is an
 * out-of-range value in the typed options, refused at creation. */
static void parity_cookie_with_options_should_reject_non_objects(void **st) {
  int bad[3][2] = {{1, 7}, {2, 42}, {3, -1}};
  size_t i;
  (void)st;
  for (i = 0; i < 3; i++) {
    pt_server *p = pt_new();
    csn_ctx *ctx = NULL;
    char err[128] = "";
    if (bad[i][0] == 1)
      p->o.cookie.secure = bad[i][1];
    else if (bad[i][0] == 2)
      p->o.cookie.same_site = bad[i][1];
    else
      p->o.cookie.priority = bad[i][1];
    assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_EINVAL);
    assert_null(ctx);
    assert_true(err[0] != '\0');
    pt_free(p);
  }
}

/* 8: the cookie carries only its own attributes; `data` has no C field, so
 * the check is that the stored cookie holds exactly the computed keys with
 * the configured path. */
static void parity_cookie_with_options_should_ignore_data_option(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  const char *rec;
  (void)st;
  p->o.cookie.path = "/foo";
  one(p, "/foo", v);
  rec = pt_stored(p, pt_sid(p));
  assert_non_null(rec);
  assert_string_equal(rec, "{\"cookie\":{\"originalMaxAge\":null,\"expires\":"
                           "null,\"httpOnly\":true,\"path\":\"/foo\"}}");
  pt_free(p);
}

/* 9 */
static void parity_cookie_expires_should_set_expires(void **st) {
  pt_server *p = browser_session();
  int64_t v[3], when = (pt_now_ms() / 1000 + 3600) * 1000;
  (void)st;
  p->o.cookie.expires_ms = when;
  one(p, "/", v);
  assert_true(v[0] == when);
  assert_true(pt_expires(pt_set_cookie(p)) == when);
  pt_free(p);
}

/* 10 */
static void parity_cookie_expires_should_set_maxAge(void **st) {
  pt_server *p = browser_session();
  int64_t v[3], when = pt_now_ms() + 3600000;
  (void)st;
  p->o.cookie.expires_ms = when;
  one(p, "/", v);
  assert_true(v[1] > 3600000 - 2000 && v[1] <= 3600000);
  pt_free(p);
}

/* 11 */
static void parity_cookie_httpOnly_should_set_httpOnly(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  p->o.cookie.http_only = 0;
  one(p, "/", v);
  assert_false(pt_attr(pt_set_cookie(p), "HttpOnly"));
  assert_non_null(strstr(p->res.body, ",0,/"));
  pt_free(p);
}

/* 12 */
static void parity_cookie_maxAge_should_set_expires(void **st) {
  pt_server *p = browser_session();
  int64_t v[3], before = pt_now_ms();
  (void)st;
  p->o.cookie.max_age_ms = 60000;
  one(p, "/", v);
  assert_true(v[0] >= before + 60000 && v[0] <= pt_now_ms() + 60000);
  pt_free(p);
}

/* 13 */
static void parity_cookie_maxAge_should_set_maxAge(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  p->o.cookie.max_age_ms = 60000;
  one(p, "/", v);
  assert_true(v[1] > 59000 && v[1] <= 60000);
  assert_true(v[2] == 60000);
  pt_free(p);
}

/* 14: maxAge as a Date is the absolute-expiry option in C. */
static void parity_cookie_maxAge_should_accept_Date_object(void **st) {
  pt_server *p = browser_session();
  int64_t v[3], when = pt_now_ms() + 60000;
  (void)st;
  p->o.cookie.expires_ms = when;
  one(p, "/", v);
  assert_true(v[0] == when);
  assert_true(v[1] > 58000 && v[1] <= 60000);
  pt_free(p);
}

/* 15: a maxAge that is no valid duration is refused at creation. */
static void parity_cookie_maxAge_should_reject_invalid_types(void **st) {
  int64_t bad[2] = {INT64_MAX, INT64_MIN + 1};
  size_t i;
  (void)st;
  for (i = 0; i < 2; i++) {
    pt_server *p = pt_new();
    csn_ctx *ctx = NULL;
    char err[128] = "";
    p->o.cookie.max_age_ms = bad[i];
    assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_EINVAL);
    assert_null(ctx);
    assert_true(http_regex_match("maxAge", err));
    pt_free(p);
  }
}

/* 16 */
static void parity_cookie_partitioned_should_set_partitioned(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  p->o.cookie.partitioned = 1;
  one(p, "/", v);
  assert_true(pt_attr(pt_set_cookie(p), "Partitioned"));
  pt_free(p);
}

/* 17 */
static void parity_cookie_path_should_set_path(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  p->o.cookie.path = "/foo";
  one(p, "/foo", v);
  assert_true(pt_attr(pt_set_cookie(p), "Path=/foo"));
  assert_non_null(strstr(p->res.body, ",/foo"));
  pt_free(p);
}

/* 18 */
static void parity_cookie_priority_should_set_priority(void **st) {
  pt_server *p = browser_session();
  int64_t v[3];
  (void)st;
  p->o.cookie.priority = CSN_PRIORITY_HIGH;
  one(p, "/", v);
  assert_true(pt_attr(pt_set_cookie(p), "Priority=High"));
  pt_free(p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parity_cookie_new_should_create_a_new_cookie_object),
      cmocka_unit_test(parity_cookie_new_should_default_expires_to_null),
      cmocka_unit_test(parity_cookie_new_should_default_httpOnly_to_true),
      cmocka_unit_test(parity_cookie_new_should_default_path_to_root),
      cmocka_unit_test(parity_cookie_new_should_default_maxAge_to_null),
      cmocka_unit_test(
          parity_cookie_with_options_should_create_a_new_cookie_object),
      cmocka_unit_test(parity_cookie_with_options_should_reject_non_objects),
      cmocka_unit_test(parity_cookie_with_options_should_ignore_data_option),
      cmocka_unit_test(parity_cookie_expires_should_set_expires),
      cmocka_unit_test(parity_cookie_expires_should_set_maxAge),
      cmocka_unit_test(parity_cookie_httpOnly_should_set_httpOnly),
      cmocka_unit_test(parity_cookie_maxAge_should_set_expires),
      cmocka_unit_test(parity_cookie_maxAge_should_set_maxAge),
      cmocka_unit_test(parity_cookie_maxAge_should_accept_Date_object),
      cmocka_unit_test(parity_cookie_maxAge_should_reject_invalid_types),
      cmocka_unit_test(parity_cookie_partitioned_should_set_partitioned),
      cmocka_unit_test(parity_cookie_path_should_set_path),
      cmocka_unit_test(parity_cookie_priority_should_set_priority),
  };
  return PT_RUN("parity_cookie", tests);
}
