/* test_http_hostile.c - hostile Cookie headers over real HTTP.
 *
 * Every malformed, forged, oversized or duplicated session cookie must
 * end in a fresh session (or in no cookie at all when saveUninitialized is
 * off and the handler does not touch the session), never in a store lookup
 * with an unverified id, and never in a crash. A counting store proves the
 * "no lookup" part: its get counter must not move for these requests. A
 * few well-formed variants (a valid cookie behind padding, the first of two
 * duplicates, a quoted value) are the controls: they must load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_harness.h"

#define SECRET "keyboard cat"

typedef struct fixture {
  counting_store *store;
  csn_ctx *ctx;
  http_server *srv;
  http_client *plain; /* no jar: sends exactly the Cookie header given */
} fixture;

/* "/" counts visits (a modification, so the session is saved and its
 * cookie sent); "/peek" only reports whether a session was loaded. */
static csn_mhd_result handler(const http_req *r) {
  csn_request *req;
  csn_session *s;
  int64_t views = 0;
  char body[96];
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &req);
  if (rc < 0)
    return csn_mhd_error(r->ctx, r->conn, rc);
  s = csn_request_session(req);
  if (strcmp(r->url, "/") == 0) {
    if (s != NULL)
      csn_session_incr(s, "views", 1, &views);
    snprintf(body, sizeof body, "views=%lld", (long long)views);
  } else {
    if (s != NULL)
      csn_session_get_int(s, "views", &views);
    snprintf(body, sizeof body, "peek=%lld", (long long)views);
  }
  return http_reply(r->conn, req, MHD_HTTP_OK, body, NULL);
}

static int setup_with(void **state, int save_uninitialized) {
  fixture *f = calloc(1, sizeof *f);
  http_server_opts so;
  csn_options o;

  assert_non_null(f);
  f->store = counting_store_new(NULL, 1);
  csn_options_init(&o);
  o.resave = 0;
  o.save_uninitialized = save_uninitialized;
  o.cookie.max_age_ms = 60000;
  o.store = &f->store->base;
  f->ctx = http_ctx_new(&o);
  memset(&so, 0, sizeof so);
  so.ctx = f->ctx;
  so.handler = handler;
  so.threads = 2;
  assert_int_equal(http_server_start(&so, &f->srv), 0);
  f->plain = http_client_new(0);
  *state = f;
  return 0;
}

static int setup(void **state) { return setup_with(state, 1); }
static int setup_no_uninit(void **state) { return setup_with(state, 0); }

static int teardown(void **state) {
  fixture *f = *state;
  http_client_free(f->plain);
  http_server_stop(f->srv);
  csn_ctx_free(f->ctx);
  csn_store_free(&f->store->base);
  free(f);
  return 0;
}

/* A real session with views=1; returns its id and the cookie value as the
 * server sent it ("s%3A<id>.<sig>"). */
static void seed(fixture *f, char **sid, char **value) {
  http_client *c = http_client_new(1);
  char url[128];
  http_response r;
  assert_int_equal(
      http_get(c, http_server_url(f->srv, "/", url, sizeof url), NULL, &r),
      0);
  assert_string_equal(r.body, "views=1");
  *value = http_set_cookie_value(&r, "connect.sid");
  assert_non_null(*value);
  *sid = http_cookie_sid(*value, SECRET);
  assert_non_null(*sid);
  http_response_free(&r);
  http_client_free(c);
}

static char *str_cat(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s%s%s", a, b, c);
  return p;
}

/* "s:<id>.<sig>" signed with `secret` (unencoded, as express accepts). */
static char *signed_value(const char *id, const char *secret) {
  char out[512];
  size_t outlen = sizeof out;
  assert_int_equal(csn_cookie_sign(id, strlen(id), secret, strlen(secret),
                                   out, &outlen),
                   CSN_OK);
  return str_cat("s:", out, "");
}

/* Send `cookie` to path; return the response after the common checks. */
static http_response send_cookie(fixture *f, const char *path,
                                 const char *cookie) {
  char url[128];
  http_response r;
  counting_store_reset(f->store);
  if (http_get(f->plain, http_server_url(f->srv, path, url, sizeof url),
               cookie, &r) != 0)
    fail_msg("request failed: %s", r.error);
  assert_int_equal(r.status, 200);
  return r;
}

/* The cookie must be ignored: a fresh session, and not one store get. */
static void expect_fresh(fixture *f, const char *what, const char *cookie,
                         const char *seeded_sid) {
  http_response r = send_cookie(f, "/", cookie);
  char *v;
  char *sid;
  if (strcmp(r.body, "views=1") != 0)
    fail_msg("%s: expected a fresh session, got '%s'", what, r.body);
  if (atomic_load(&f->store->gets) != 0)
    fail_msg("%s: %lu store get(s) for an unverified cookie", what,
             (unsigned long)atomic_load(&f->store->gets));
  /* The new session is saved under a new id and announced by cookie. */
  v = http_set_cookie_value(&r, "connect.sid");
  if (v == NULL)
    fail_msg("%s: no Set-Cookie for the new session", what);
  sid = http_cookie_sid(v, SECRET);
  assert_non_null(sid);
  if (seeded_sid != NULL)
    assert_string_not_equal(sid, seeded_sid);
  assert_true(counting_store_has(f->store, sid));
  free(sid);
  free(v);
  http_response_free(&r);
}

/* The cookie must load the seeded session, which then counts `views`,
 * with one store get. */
static void expect_loaded(fixture *f, const char *what, const char *cookie,
                          int views) {
  http_response r = send_cookie(f, "/", cookie);
  char want[32];
  snprintf(want, sizeof want, "views=%d", views);
  if (strcmp(r.body, want) != 0)
    fail_msg("%s: expected the seeded session, got '%s'", what, r.body);
  assert_int_equal(atomic_load(&f->store->gets), 1);
  http_response_free(&r);
}

/* Padding of n bytes made of many small cookies ("c0=v; c1=v; ..."). */
static char *many_cookies(size_t count) {
  size_t cap = count * 16 + 1, i, off = 0;
  char *p = malloc(cap);
  assert_non_null(p);
  p[0] = '\0';
  for (i = 0; i < count; i++)
    off += (size_t)snprintf(p + off, cap - off, "c%zu=v%zu; ", i, i);
  return p;
}

static char *repeat(char ch, size_t n) {
  char *p = malloc(n + 1);
  assert_non_null(p);
  memset(p, ch, n);
  p[n] = '\0';
  return p;
}

static void test_forged_signatures(void **state) {
  fixture *f = *state;
  char *sid, *val, *c, *tmp, *forty3 = repeat('A', 43);
  seed(f, &sid, &val);

  /* A well-formed signature that is simply wrong. */
  tmp = str_cat("connect.sid=s%3A", sid, ".");
  c = str_cat(tmp, forty3, "");
  expect_fresh(f, "forged signature", c, sid);
  free(tmp);
  free(c);

  /* The real cookie with its last three characters changed. */
  tmp = str_cat("connect.sid=", val, "");
  memcpy(tmp + strlen(tmp) - 3, "xyz", 3);
  expect_fresh(f, "tampered signature", tmp, sid);
  free(tmp);

  /* Signed with a secret the server does not have. */
  tmp = signed_value(sid, "not the secret");
  c = str_cat("connect.sid=", tmp, "");
  expect_fresh(f, "wrong secret", c, sid);
  free(tmp);
  free(c);

  /* The bare id, and the prefix without any signature. */
  c = str_cat("connect.sid=", sid, "");
  expect_fresh(f, "unsigned id", c, sid);
  free(c);
  c = str_cat("connect.sid=s:", sid, "");
  expect_fresh(f, "prefix, no signature", c, sid);
  free(c);
  c = str_cat("connect.sid=s:", sid, ".");
  expect_fresh(f, "empty signature", c, sid);
  free(c);

  expect_fresh(f, "empty value", "connect.sid=", sid);
  expect_fresh(f, "name only", "connect.sid", sid);
  expect_fresh(f, "just s:", "connect.sid=s%3A", sid);

  /* Control: the genuine cookie still works after all that. */
  c = str_cat("connect.sid=", val, "");
  expect_loaded(f, "genuine", c, 2);
  free(c);
  free(forty3);
  free(sid);
  free(val);
}

static void test_signed_hostile_id(void **state) {
  fixture *f = *state;
  static const char *const ids[] = {"../../etc/passwd", "a/b", "..", "."};
  size_t i;
  /* Correctly signed (someone holding the secret, or a genid bug) but not
   * an acceptable key: it must never reach a store as a path or key. */
  for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    char *v = signed_value(ids[i], SECRET);
    char *c = str_cat("connect.sid=", v, "");
    expect_fresh(f, ids[i], c, NULL);
    free(v);
    free(c);
  }
}

static void test_oversized(void **state) {
  fixture *f = *state;
  char *sid, *val, *big, *c, *pad;
  seed(f, &sid, &val);

  /* A 10 KB session cookie value. */
  big = repeat('x', 10240);
  c = str_cat("connect.sid=s%3A", big, "");
  expect_fresh(f, "10 KB value", c, sid);
  free(c);

  /* 10 KB of other cookies in front of the genuine one: still found. */
  pad = str_cat("pad=", big, "; connect.sid=");
  c = str_cat(pad, val, "");
  expect_loaded(f, "valid after 10 KB", c, 2);
  free(pad);
  free(c);
  free(big);

  /* 500 cookies, then a forged session cookie, then the genuine one
   * (600 bytes more would not change the parse; the first copy wins). */
  pad = many_cookies(500);
  c = str_cat(pad, "connect.sid=s%3Aforged.sig", "");
  expect_fresh(f, "500 cookies + forged", c, sid);
  free(c);
  c = str_cat(pad, "connect.sid=", val);
  expect_loaded(f, "500 cookies + valid", c, 3);
  free(c);
  free(pad);

  /* Beyond the connection's memory: libmicrohttpd refuses the request
   * itself (431) before any session code runs, and keeps serving. */
  {
    char url[128];
    http_response r;
    big = repeat('y', 200 * 1024);
    c = str_cat("connect.sid=", big, "");
    counting_store_reset(f->store);
    assert_int_equal(http_get(f->plain,
                              http_server_url(f->srv, "/", url, sizeof url), c,
                              &r),
                     0);
    assert_int_equal(r.status, 431);
    assert_int_equal(atomic_load(&f->store->gets), 0);
    http_response_free(&r);
    free(c);
    free(big);
    c = str_cat("connect.sid=", val, "");
    expect_loaded(f, "after a 200 KB header", c, 4);
    free(c);
  }
  free(sid);
  free(val);
}

static void test_duplicates(void **state) {
  fixture *f = *state;
  char *sid, *val, *c;
  seed(f, &sid, &val);

  /* The first copy wins, as in cookie@0.7 parse(): a bad first copy means
   * a new session even though a good one follows. */
  c = str_cat("connect.sid=garbage; connect.sid=", val, "");
  expect_fresh(f, "bad first duplicate", c, sid);
  free(c);
  c = str_cat("connect.sid=", val, "; connect.sid=garbage");
  expect_loaded(f, "valid first duplicate", c, 2);
  free(c);
  free(sid);
  free(val);
}

static void test_encoding(void **state) {
  fixture *f = *state;
  char *sid, *val, *c, *tmp, *v;
  size_t n;
  seed(f, &sid, &val);

  /* Broken escapes: decoding fails and the raw text, which does not start
   * with "s:", is not a signed value. */
  c = str_cat("connect.sid=s%3A", sid, ".%ZZ%");
  expect_fresh(f, "bad escape", c, sid);
  free(c);
  expect_fresh(f, "truncated UTF-8", "connect.sid=%E0%A4%A", sid);
  expect_fresh(f, "lone surrogate", "connect.sid=s%3A%ED%A0%80.x", sid);
  c = str_cat("connect.sid=", val, "%");
  expect_fresh(f, "trailing %", c, sid);
  free(c);

  /* A NUL byte smuggled in by percent-encoding, before the signature and
   * inside it: the signed text is not what was signed. */
  v = signed_value(sid, SECRET); /* "s:<sid>.<sig>" */
  tmp = str_cat("connect.sid=s%3A", sid, "%00");
  c = str_cat(tmp, strchr(v + 2, '.'), "");
  expect_fresh(f, "%00 before the signature", c, sid);
  free(tmp);
  free(c);
  c = str_cat("connect.sid=", val, "%00");
  expect_fresh(f, "%00 after the signature", c, sid);
  free(c);
  n = strlen(val);
  tmp = str_cat("connect.sid=", val, "");
  tmp[12 + n / 2] = '\0'; /* cut in the middle */
  c = str_cat(tmp, "%00", val + n / 2);
  expect_fresh(f, "%00 in the middle", c, sid);
  free(tmp);
  free(c);
  free(v);

  /* Control: quoted and unencoded forms of the genuine value load. */
  v = signed_value(sid, SECRET);
  c = str_cat("connect.sid=\"", v, "\"");
  expect_loaded(f, "quoted genuine", c, 2);
  free(c);
  free(v);
  free(sid);
  free(val);
}

/* A raw NUL byte inside the header line itself, which curl cannot send:
 * libmicrohttpd may refuse the request (400) or cut the value at the NUL;
 * either way no lookup and no crash, and the server keeps serving. */
static void test_raw_nul_header(void **state) {
  fixture *f = *state;
  char *sid, *val, req[1024];
  http_response r;
  const char *sig;
  int n;
  seed(f, &sid, &val);
  sig = strrchr(val, '.');
  n = snprintf(req, sizeof req,
               "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: connect.sid=s%%3A"
               "%s",
               sid);
  req[n++] = '\0';
  n += snprintf(req + n, sizeof req - (size_t)n,
                "%s\r\nConnection: close\r\n\r\n", sig);
  counting_store_reset(f->store);
  assert_int_equal(http_raw(http_server_port(f->srv), req, (size_t)n, &r), 0);
  assert_true(r.status == 200 || r.status == 400);
  if (r.status == 200)
    assert_string_equal(r.body, "views=1");
  assert_int_equal(atomic_load(&f->store->gets), 0);
  http_response_free(&r);

  /* A NUL in the header name position, and a bare CR in the value. */
  {
    static const char nul_name[] =
        "GET / HTTP/1.1\r\nCoo\0kie: a=b\r\nConnection: close\r\n\r\n";
    assert_int_equal(http_raw(http_server_port(f->srv), nul_name,
                              sizeof nul_name - 1, &r),
                     0);
  }
  assert_true(r.status == 200 || r.status == 400);
  http_response_free(&r);
  n = snprintf(req, sizeof req,
               "GET / HTTP/1.1\r\nHost: x\r\nCookie: connect.sid=%s\rX"
               "\r\nConnection: close\r\n\r\n",
               val);
  assert_int_equal(http_raw(http_server_port(f->srv), req, (size_t)n, &r), 0);
  assert_true(r.status == 200 || r.status == 400);
  http_response_free(&r);

  /* Still alive and still correct. */
  {
    char *c = str_cat("connect.sid=", val, "");
    expect_loaded(f, "after raw garbage", c, 2);
    free(c);
  }
  free(sid);
  free(val);
}

/* saveUninitialized off and a handler that does not change the session:
 * a hostile cookie yields neither a cookie nor a stored session. */
static void test_no_cookie_when_uninitialized(void **state) {
  fixture *f = *state;
  static const char *const cookies[] = {
      "connect.sid=s%3Aabc.def",
      "connect.sid=abc",
      "connect.sid=",
      "connect.sid=%E0%A4%A",
      "connect.sid=s%3Aabc%00.def",
      "connect.sid=garbage; connect.sid=s%3Aabc.def",
  };
  size_t i;
  for (i = 0; i < sizeof cookies / sizeof cookies[0]; i++) {
    http_response r = send_cookie(f, "/peek", cookies[i]);
    assert_string_equal(r.body, "peek=0");
    if (r.n_set_cookie != 0)
      fail_msg("%s: unexpected Set-Cookie %s", cookies[i], r.set_cookie[0]);
    assert_int_equal(atomic_load(&f->store->gets), 0);
    assert_int_equal(atomic_load(&f->store->sets), 0);
    assert_int_equal(counting_store_length(f->store), 0);
    http_response_free(&r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_forged_signatures, setup, teardown),
      cmocka_unit_test_setup_teardown(test_signed_hostile_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_encoding, setup, teardown),
      cmocka_unit_test_setup_teardown(test_raw_nul_header, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_cookie_when_uninitialized,
                                      setup_no_uninit, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
