/* test_http_demo.c - the demo's routes, served by a real libmicrohttpd
 * server and driven by libcurl with real cookie jars. The routes are the
 * demo's own code (examples/demo.c, included below without its main()),
 * served over a counting store so the tests can see what reached it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "http_harness.h"

#define CSN_DEMO_NO_MAIN
#include "../examples/demo.c"

#define SECRET "demo secret"
#define DAY_MS INT64_C(86400000)

typedef struct fixture {
  counting_store *store;
  csn_ctx *ctx;
  http_server *srv;
} fixture;

static csn_mhd_result demo_handler(const http_req *r) {
  return demo_dispatch(r->ctx, r->conn, r->url);
}

/* The demo's own defaults: resave and saveUninitialized off, one day. */
static int setup(void **state) {
  static const char *const secrets[] = {SECRET};
  fixture *f = calloc(1, sizeof *f);
  http_server_opts so;
  csn_options o;

  assert_non_null(f);
  f->store = counting_store_new(NULL, 1);
  assert_non_null(f->store);
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.resave = 0;
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = DAY_MS;
  o.store = &f->store->base;
  f->ctx = http_ctx_new(&o);
  memset(&so, 0, sizeof so);
  so.ctx = f->ctx;
  so.handler = demo_handler;
  so.threads = 2;
  assert_int_equal(http_server_start(&so, &f->srv), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  http_server_stop(f->srv);
  csn_ctx_free(f->ctx);
  csn_store_free(&f->store->base);
  free(f);
  return 0;
}

/* GET base+path with the client's jar; asserts a 200 and returns the
 * response (caller frees). */
static http_response get_ok(fixture *f, http_client *c, const char *path) {
  char url[256];
  http_response r;
  int rc = http_get(c, http_server_url(f->srv, path, url, sizeof url), NULL,
                    &r);
  if (rc != 0)
    fail_msg("GET %s: %s", path, r.error);
  assert_int_equal(r.status, 200);
  return r;
}

static void expect_body(fixture *f, http_client *c, const char *path,
                        const char *want) {
  http_response r = get_ok(f, c, path);
  assert_string_equal(r.body, want);
  http_response_free(&r);
}

/* "Wdy, DD Mon YYYY HH:MM:SS GMT" -> epoch seconds, or -1. */
static int64_t parse_imf(const char *s) {
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  char wday[4], mon[4];
  struct tm tm;
  const char *m;
  memset(&tm, 0, sizeof tm);
  if (sscanf(s, "%3s, %d %3s %d %d:%d:%d GMT", wday, &tm.tm_mday, mon,
             &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 7)
    return -1;
  m = strstr(months, mon);
  if (m == NULL || strlen(mon) != 3)
    return -1;
  tm.tm_mon = (int)((m - months) / 3);
  tm.tm_year -= 1900;
  return (int64_t)timegm(&tm);
}

/* The sid inside the client's jar cookie (malloc'd) or NULL. */
static char *jar_sid(http_client *c) {
  char *v = http_client_cookie(c, "connect.sid");
  char *sid = v ? http_cookie_sid(v, SECRET) : NULL;
  free(v);
  return sid;
}

static void test_first_visit_cookie(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  http_response r;
  const char *sc, *exp;
  int64_t now = (int64_t)time(NULL), when;

  r = get_ok(f, c, "/");
  assert_string_equal(r.body, "Welcome! Refresh the page to count visits.\n");
  assert_int_equal(r.n_set_cookie, 1);
  sc = r.set_cookie[0];
  /* express-session's exact shape: signed, URL-encoded id and signature
   * (43 base64 chars, '+' and '/' percent-encoded), Path, Expires,
   * HttpOnly, and nothing else (no Max-Age, ever). */
  if (!http_regex_match(
          "^connect\\.sid=s%3A[A-Za-z0-9_-]{32}\\.([A-Za-z0-9]|%2B|%2F){43}; "
          "Path=/; Expires=(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
          "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
          "[0-9]{2}:[0-9]{2}:[0-9]{2} GMT; HttpOnly$",
          sc))
    fail_msg("unexpected Set-Cookie: %s", sc);
  exp = strstr(sc, "Expires=") + 8;
  when = parse_imf(exp);
  assert_true(when >= now + 86400 - 5 && when <= now + 86400 + 5);
  /* The one stored session is the one the cookie names. */
  {
    char *v = http_set_cookie_value(&r, "connect.sid");
    char *sid = http_cookie_sid(v, SECRET);
    assert_non_null(sid);
    assert_true(counting_store_has(f->store, sid));
    assert_int_equal(counting_store_length(f->store), 1);
    free(v);
    free(sid);
  }
  /* A new visitor has no cookie: the store was never asked for one. */
  assert_int_equal(atomic_load(&f->store->gets), 0);
  assert_int_equal(atomic_load(&f->store->sets), 1);
  http_response_free(&r);
  http_client_free(c);
}

static void test_jars_count_independently(void **state) {
  fixture *f = *state;
  http_client *a = http_client_new(1), *b = http_client_new(1);
  char *sa, *sb;

  expect_body(f, a, "/", "Welcome! Refresh the page to count visits.\n");
  expect_body(f, a, "/", "You've visited this page 2 times\n");
  expect_body(f, a, "/", "You've visited this page 3 times\n");
  expect_body(f, b, "/", "Welcome! Refresh the page to count visits.\n");
  expect_body(f, b, "/", "You've visited this page 2 times\n");
  expect_body(f, a, "/", "You've visited this page 4 times\n");
  sa = jar_sid(a);
  sb = jar_sid(b);
  assert_non_null(sa);
  assert_non_null(sb);
  assert_string_not_equal(sa, sb);
  assert_int_equal(counting_store_length(f->store), 2);
  /* Every visit after the first loaded its session from the store. */
  assert_int_equal(atomic_load(&f->store->gets), 4);
  free(sa);
  free(sb);
  http_client_free(a);
  http_client_free(b);
}

static void test_login_regenerates(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  http_response r;
  char *before, *after;
  json_t *j, *cookie;
  json_error_t jerr;

  expect_body(f, c, "/", "Welcome! Refresh the page to count visits.\n");
  before = jar_sid(c);
  assert_non_null(before);

  r = get_ok(f, c, "/login?user=alice");
  assert_string_equal(r.body, "Logged in as alice\n");
  assert_int_equal(r.n_set_cookie, 1);
  http_response_free(&r);
  after = jar_sid(c);
  assert_non_null(after);
  /* A new id, the old record gone: a planted id is useless after login. */
  assert_string_not_equal(before, after);
  assert_false(counting_store_has(f->store, before));
  assert_true(counting_store_has(f->store, after));
  assert_int_equal(counting_store_length(f->store), 1);

  /* The record: regenerate emptied the data, then "user" was set. */
  r = get_ok(f, c, "/session");
  j = json_loads(r.body, 0, &jerr);
  if (j == NULL)
    fail_msg("bad JSON %s: %s", r.body, jerr.text);
  assert_string_equal(json_string_value(json_object_get(j, "user")), "alice");
  assert_null(json_object_get(j, "views"));
  cookie = json_object_get(j, "cookie");
  assert_true(json_is_object(cookie));
  assert_int_equal(json_integer_value(json_object_get(cookie,
                                                      "originalMaxAge")),
                   DAY_MS);
  assert_true(json_is_string(json_object_get(cookie, "expires")));
  assert_true(json_is_true(json_object_get(cookie, "httpOnly")));
  assert_string_equal(json_string_value(json_object_get(cookie, "path")), "/");
  /* express's key order: cookie first. */
  assert_string_equal(json_object_iter_key(json_object_iter(j)), "cookie");
  json_decref(j);
  http_response_free(&r);

  /* The counter restarts in the new session. */
  expect_body(f, c, "/", "Welcome! Refresh the page to count visits.\n");
  free(before);
  free(after);
  http_client_free(c);
}

static void test_login_needs_user(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  char url[256];
  http_response r;
  assert_int_equal(http_get(c, http_server_url(f->srv, "/login", url,
                                               sizeof url),
                            NULL, &r),
                   0);
  assert_int_equal(r.status, 400);
  assert_int_equal(r.n_set_cookie, 0);
  assert_int_equal(counting_store_length(f->store), 0);
  http_response_free(&r);
  http_client_free(c);
}

static void test_logout_destroys(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1), *other = http_client_new(1);
  http_response r;
  char *sid, *fresh;

  expect_body(f, other, "/", "Welcome! Refresh the page to count visits.\n");
  expect_body(f, c, "/login?user=bob", "Logged in as bob\n");
  sid = jar_sid(c);
  assert_non_null(sid);
  assert_int_equal(counting_store_length(f->store), 2);

  r = get_ok(f, c, "/logout");
  assert_string_equal(r.body, "Logged out\n");
  /* No "clear cookie" header: express-session never sends one. */
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(counting_store_length(f->store), 1);
  assert_false(counting_store_has(f->store, sid));

  /* The browser still holds the old cookie; it now names nothing, so the
   * next visit starts over with a new id. */
  expect_body(f, c, "/", "Welcome! Refresh the page to count visits.\n");
  fresh = jar_sid(c);
  assert_non_null(fresh);
  assert_string_not_equal(fresh, sid);
  expect_body(f, c, "/", "You've visited this page 2 times\n");
  /* The other visitor was not affected. */
  expect_body(f, other, "/", "You've visited this page 2 times\n");
  free(sid);
  free(fresh);
  http_client_free(c);
  http_client_free(other);
}

static void test_session_json_new_visitor(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  http_response r = get_ok(f, c, "/session");
  json_t *j = json_loads(r.body, 0, NULL);

  assert_non_null(j);
  /* Only the cookie: an untouched new session with saveUninitialized off
   * is neither stored nor given a cookie. */
  assert_int_equal(json_object_size(j), 1);
  assert_true(json_is_object(json_object_get(j, "cookie")));
  assert_int_equal(r.n_set_cookie, 0);
  assert_int_equal(counting_store_length(f->store), 0);
  assert_non_null(strstr(r.headers, "application/json"));
  json_decref(j);
  http_response_free(&r);
  http_client_free(c);
}

static void test_health_has_no_session(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  http_response r = get_ok(f, c, "/health");
  assert_string_equal(r.body, "ok\n");
  assert_int_equal(r.n_set_cookie, 0);
  assert_int_equal(atomic_load(&f->store->gets) +
                       atomic_load(&f->store->sets),
                   0);
  http_response_free(&r);
  http_client_free(c);
}

static void test_not_found(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  char url[256];
  http_response r;
  assert_int_equal(http_get(c, http_server_url(f->srv, "/nope", url,
                                               sizeof url),
                            NULL, &r),
                   0);
  assert_int_equal(r.status, 404);
  http_response_free(&r);
  http_client_free(c);
}

/* GET path with the client's jar; returns the status (the body must be
 * text either way). */
static long status_of(fixture *f, http_client *c, const char *path) {
  char url[512];
  http_response r;
  long status;
  if (http_get(c, http_server_url(f->srv, path, url, sizeof url), NULL,
               &r) != 0)
    fail_msg("GET %s: %s", path, r.error);
  status = r.status;
  http_response_free(&r);
  return status;
}

/* /inc: the probe tests/test_http_concurrency.c races on. It counts per
 * key, next to the other members, and is a stored change like any other. */
static void test_inc_counts(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  http_response r;
  json_t *j;

  expect_body(f, c, "/inc?k=a", "a: 1\n");
  expect_body(f, c, "/inc?k=a", "a: 2\n");
  expect_body(f, c, "/inc?k=b&delay=0", "b: 1\n");
  expect_body(f, c, "/inc?k=a&delay=20", "a: 3\n");
  expect_body(f, c, "/", "Welcome! Refresh the page to count visits.\n");
  r = get_ok(f, c, "/session");
  j = json_loads(r.body, 0, NULL);
  assert_non_null(j);
  assert_int_equal(json_integer_value(json_object_get(j, "a")), 3);
  assert_int_equal(json_integer_value(json_object_get(j, "b")), 1);
  assert_int_equal(json_integer_value(json_object_get(j, "views")), 1);
  json_decref(j);
  http_response_free(&r);
  assert_int_equal(counting_store_length(f->store), 1);
  http_client_free(c);
}

/* A bad key or delay is the client's mistake (400), never a 500 or a
 * changed session; nor is a member that is not a number. */
static void test_inc_rejects_bad_input(void **state) {
  fixture *f = *state;
  http_client *c = http_client_new(1);
  char path[128];

  assert_int_equal(status_of(f, c, "/inc"), 400);
  assert_int_equal(status_of(f, c, "/inc?k="), 400);
  assert_int_equal(status_of(f, c, "/inc?k=cookie"), 400);
  assert_int_equal(status_of(f, c, "/inc?k=a%01b"), 400);
  snprintf(path, sizeof path, "/inc?k=%065d", 0); /* 65 characters */
  assert_int_equal(status_of(f, c, path), 400);
  assert_int_equal(status_of(f, c, "/inc?k=a&delay="), 400);
  assert_int_equal(status_of(f, c, "/inc?k=a&delay=-5"), 400);
  assert_int_equal(status_of(f, c, "/inc?k=a&delay=1e3"), 400);
  assert_int_equal(status_of(f, c, "/inc?k=a&delay=10ms"), 400);
  assert_int_equal(counting_store_length(f->store), 0);

  snprintf(path, sizeof path, "/inc?k=%064d", 0); /* 64: the longest */
  assert_int_equal(status_of(f, c, path), 200);
  expect_body(f, c, "/login?user=ann", "Logged in as ann\n");
  assert_int_equal(status_of(f, c, "/inc?k=user"), 400);
  http_client_free(c);
}

/* The delay is clamped, not refused, above a minute; digits only. */
static void test_inc_delay_parse(void **state) {
  long ms = -1;
  (void)state;
  assert_int_equal(demo_inc_delay_parse(NULL, &ms), 0);
  assert_int_equal(ms, 0);
  assert_int_equal(demo_inc_delay_parse("250", &ms), 0);
  assert_int_equal(ms, 250);
  assert_int_equal(demo_inc_delay_parse("60000", &ms), 0);
  assert_int_equal(ms, 60000);
  assert_int_equal(demo_inc_delay_parse("60001", &ms), 0);
  assert_int_equal(ms, 60000);
  assert_int_equal(demo_inc_delay_parse("99999999999999999999999", &ms), 0);
  assert_int_equal(ms, 60000);
  assert_int_equal(demo_inc_delay_parse("", &ms), -1);
  assert_int_equal(demo_inc_delay_parse("+5", &ms), -1);
  assert_int_equal(demo_inc_delay_parse(" 5", &ms), -1);
}

/* Many visitors interleaved over the thread pool: each counts its own. */
static void test_interleaved_clients(void **state) {
  fixture *f = *state;
  enum { N = 8, VISITS = 5 };
  http_client *c[N];
  char want[64];
  int i, v;
  for (i = 0; i < N; i++)
    c[i] = http_client_new(1);
  for (v = 1; v <= VISITS; v++)
    for (i = 0; i < N; i++) {
      if (v == 1)
        snprintf(want, sizeof want,
                 "Welcome! Refresh the page to count visits.\n");
      else
        snprintf(want, sizeof want, "You've visited this page %d times\n", v);
      expect_body(f, c[i], "/", want);
    }
  assert_int_equal(counting_store_length(f->store), N);
  for (i = 0; i < N; i++)
    http_client_free(c[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_first_visit_cookie, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_jars_count_independently, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_login_regenerates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_login_needs_user, setup, teardown),
      cmocka_unit_test_setup_teardown(test_logout_destroys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_session_json_new_visitor, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_health_has_no_session, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_interleaved_clients, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inc_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inc_rejects_bad_input, setup,
                                      teardown),
      cmocka_unit_test(test_inc_delay_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
