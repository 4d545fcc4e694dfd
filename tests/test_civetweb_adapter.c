/* test_civetweb_adapter.c - the CivetWeb adapter (csn/csn_civetweb.h) in a
 * real CivetWeb server on loopback, driven with libcurl and raw sockets:
 *
 *   counter        a cookie jar counts 1, 2, 3: the cookie the adapter
 *                  wrote is the one it reads back
 *   two_cookies    two Cookie header lines are joined as Node.js joins
 *                  them: a session cookie in the second line is found
 *   own_cookie     the handler's own Set-Cookie is kept, the session's
 *                  comes after it, and the response is whole
 *   head           HEAD gets the headers (Content-Length included) and no
 *                  body
 *   commit_fails   a store failing at save: 500 from the default
 *                  responder, no Set-Cookie, the stored record untouched,
 *                  the store's message logged; then a custom responder;
 *                  then the store recovers and the count goes on
 *   bad_header     a header value with CR LF is refused: 500, nothing
 *                  committed, no injected header on the wire
 *   proxy_secure   with proxy trust and a Secure cookie: no cookie over
 *                  plain HTTP, a Secure one with X-Forwarded-Proto: https
 *
 * Store faults are injected with csn__store_set_fault() into a real memory
 * store, as in test_http_store_error.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <civetweb.h>

#include "csn/csn_civetweb.h"
#include "csn_int.h"
#include "http_harness.h"

#define SECRET "keyboard cat"

typedef struct fixture {
  csn_store *store;
  csn_ctx *ctx;       /* plain: resave and save_uninitialized off */
  csn_ctx *ctx_proxy; /* proxy trust, Secure cookie */
  struct mg_context *mg;
  unsigned int port;
  http_client *jar;
  atomic_int fail_set;
  atomic_int logs, hook_calls, hook_err;
  char log_msg[512];
  char hook_msg[512];
} fixture;

static int fault(csn_store *st, const char *op, void *ud) {
  fixture *f = ud;
  if ((strcmp(op, "set") == 0 || strcmp(op, "cas") == 0) &&
      atomic_load(&f->fail_set))
    return csn_store_set_error(st, CSN_ESTORE, "disk on fire (set)");
  return CSN_OK;
}

/* One request at a time in these tests: the buffer is written by one
 * worker and read after the response. */
static void log_hook(int err, const char *message, void *ud) {
  fixture *f = ud;
  (void)err;
  snprintf(f->log_msg, sizeof f->log_msg, "%s", message);
  atomic_fetch_add(&f->logs, 1);
}

static int custom_error(struct mg_connection *conn, int err,
                        const char *message, void *ud) {
  static const char body[] = "try again later\n";
  fixture *f = ud;
  snprintf(f->hook_msg, sizeof f->hook_msg, "%s", message);
  atomic_store(&f->hook_err, err);
  atomic_fetch_add(&f->hook_calls, 1);
  mg_response_header_start(conn, 503);
  mg_response_header_add(conn, "Content-Type", "text/plain", -1);
  mg_response_header_add(conn, "Content-Length", "16", -1);
  mg_response_header_send(conn);
  mg_write(conn, body, sizeof body - 1);
  return 503;
}

/* Every path: count views, then answer according to the path. */
static int handler(struct mg_connection *conn, void *cbdata) {
  static const char *const own[] = {"Set-Cookie", "lang=fr; Path=/",
                                    "Cache-Control", "no-store", NULL};
  static const char *const evil[] = {"X-Note",
                                     "a\r\nSet-Cookie: evil=1", NULL};
  fixture *f = cbdata;
  const struct mg_request_info *ri = mg_get_request_info(conn);
  const char *path = ri->local_uri_raw ? ri->local_uri_raw : "";
  csn_ctx *ctx = strncmp(path, "/proxy", 6) == 0 ? f->ctx_proxy : f->ctx;
  const char *const *headers = NULL;
  csn_request *req;
  csn_session *s;
  int64_t views = 0;
  char body[64];
  int rc;

  rc = csn_civetweb_begin(ctx, conn, &req);
  if (rc < 0)
    return csn_civetweb_error(ctx, conn, rc);
  s = csn_request_session(req);
  if (s != NULL && csn_session_incr(s, "views", 1, &views) < 0) {
    csn_request_free(req);
    return csn_civetweb_error(ctx, conn, CSN_EIO);
  }
  if (strcmp(path, "/own") == 0)
    headers = own;
  else if (strcmp(path, "/evil") == 0)
    headers = evil;
  snprintf(body, sizeof body, "views=%lld\n", (long long)views);
  return csn_civetweb_send(req, conn, 200, "text/plain", headers, body,
                           strlen(body));
}

/* One server for the whole group (mg_stop waits out CivetWeb's one-second
 * poll, twice); each test gets an empty store and a new cookie jar. */
static int group_setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads",
                           "2", NULL};
  struct mg_callbacks cb;
  struct mg_server_port port;
  csn_options o;

  assert_non_null(f);
  assert_int_equal(csn_store_memory_new(NULL, &f->store), CSN_OK);
  csn_options_init(&o);
  o.resave = 0;
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = 60000;
  o.store = f->store;
  o.log = log_hook;
  o.log_userdata = f;
  f->ctx = http_ctx_new(&o);
  o.proxy = CSN_PROXY_TRUST;
  o.cookie.secure = CSN_SECURE_ON;
  f->ctx_proxy = http_ctx_new(&o);

  (void)mg_init_library(0);
  memset(&cb, 0, sizeof cb);
  f->mg = mg_start(&cb, NULL, options);
  assert_non_null(f->mg);
  mg_set_request_handler(f->mg, "/", handler, f);
  memset(&port, 0, sizeof port);
  assert_int_equal(mg_get_server_ports(f->mg, 1, &port), 1);
  assert_true(port.port > 0);
  f->port = (unsigned int)port.port;
  csn__store_set_fault(fault, f);
  *state = f;
  return 0;
}

static int group_teardown(void **state) {
  fixture *f = *state;
  csn__store_set_fault(NULL, NULL);
  mg_stop(f->mg);
  mg_exit_library();
  csn_ctx_free(f->ctx_proxy);
  csn_ctx_free(f->ctx);
  csn_store_free(f->store);
  free(f);
  return 0;
}

static int setup(void **state) {
  fixture *f = *state;
  assert_int_equal(csn_store_clear(f->store), CSN_OK);
  atomic_store(&f->fail_set, 0);
  atomic_store(&f->logs, 0);
  atomic_store(&f->hook_calls, 0);
  f->log_msg[0] = '\0';
  f->hook_msg[0] = '\0';
  f->jar = http_client_new(1);
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  http_client_free(f->jar);
  f->jar = NULL;
  return 0;
}

static const char *url(const fixture *f, const char *path, char *buf,
                       size_t size) {
  snprintf(buf, size, "http://127.0.0.1:%u%s", f->port, path);
  return buf;
}

/* GET path with the jar; the response must have arrived. */
static void jar_get(fixture *f, const char *path, http_response *r) {
  char u[128];
  int rc = http_get(f->jar, url(f, path, u, sizeof u), NULL, r);
  if (rc != 0)
    fail_msg("GET %s: %s", path, r->error);
}

/* Raw request bytes; the response must have a status line. */
static void raw(fixture *f, const char *req, http_response *r) {
  assert_int_equal(http_raw((uint16_t)f->port, req, strlen(req), r), 0);
  assert_true(r->status != 0);
}

/* The stored record of the jar's session (malloc'd), or NULL. */
static char *stored_record(fixture *f) {
  char *cookie = http_client_cookie(f->jar, "connect.sid");
  char *sid, *json = NULL, *copy = NULL;
  size_t len = 0;
  if (cookie == NULL)
    return NULL;
  sid = http_cookie_sid(cookie, SECRET);
  free(cookie);
  assert_non_null(sid);
  if (csn_store_get(f->store, sid, &json, &len) == CSN_OK) {
    copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, json, len);
    copy[len] = '\0';
    csn_free(json);
  }
  free(sid);
  return copy;
}

static void test_counter(void **state) {
  fixture *f = *state;
  http_response r;
  char *c1, *c2;

  jar_get(f, "/", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=1\n");
  assert_int_equal(r.n_set_cookie, 1);
  assert_true(http_regex_match(
      "^connect\\.sid=s%3A[A-Za-z0-9_-]{32}\\.[A-Za-z0-9%]+; Path=/; "
      "Expires=[^;]+; HttpOnly$",
      r.set_cookie[0]));
  http_response_free(&r);
  c1 = http_client_cookie(f->jar, "connect.sid");
  assert_non_null(c1);

  jar_get(f, "/", &r);
  assert_string_equal(r.body, "views=2\n");
  http_response_free(&r);
  jar_get(f, "/", &r);
  assert_string_equal(r.body, "views=3\n");
  http_response_free(&r);

  /* The same session all along (rolling is off: the id never changes). */
  c2 = http_client_cookie(f->jar, "connect.sid");
  assert_non_null(c2);
  assert_string_equal(c1, c2);
  free(c1);
  free(c2);
}

static void test_two_cookie_headers(void **state) {
  fixture *f = *state;
  http_response r;
  char *cookie, req[1024];

  jar_get(f, "/", &r);
  assert_string_equal(r.body, "views=1\n");
  http_response_free(&r);
  cookie = http_client_cookie(f->jar, "connect.sid");
  assert_non_null(cookie);

  /* The session cookie only in the second line: read only the first and
   * the session is lost (views=1 again, a new cookie). */
  snprintf(req, sizeof req,
           "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\n"
           "Cookie: connect.sid=%s\r\nConnection: close\r\n\r\n",
           cookie);
  raw(f, req, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=2\n");
  http_response_free(&r);

  /* Node joins the lines and takes the first cookie of a name: a bogus
   * connect.sid in the first line hides the good one in the second. */
  snprintf(req, sizeof req,
           "GET / HTTP/1.1\r\nHost: x\r\nCookie: connect.sid=s%%3Abogus.x\r\n"
           "Cookie: connect.sid=%s\r\nConnection: close\r\n\r\n",
           cookie);
  raw(f, req, &r);
  assert_string_equal(r.body, "views=1\n");
  http_response_free(&r);

  /* One line: borrowed as it is. */
  snprintf(req, sizeof req,
           "GET / HTTP/1.1\r\nHost: x\r\nCookie: b=2; connect.sid=%s\r\n"
           "Connection: close\r\n\r\n",
           cookie);
  raw(f, req, &r);
  assert_string_equal(r.body, "views=3\n");
  http_response_free(&r);
  free(cookie);
}

static void test_own_cookie_kept(void **state) {
  fixture *f = *state;
  http_response r;

  jar_get(f, "/own", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=1\n");
  assert_int_equal(r.n_set_cookie, 2);
  assert_string_equal(r.set_cookie[0], "lang=fr; Path=/");
  assert_true(strncmp(r.set_cookie[1], "connect.sid=s%3A", 16) == 0);
  assert_non_null(strstr(r.headers, "Cache-Control: no-store\r\n"));
  assert_non_null(strstr(r.headers, "Content-Type: text/plain\r\n"));
  assert_non_null(strstr(r.headers, "Content-Length: 8\r\n"));
  http_response_free(&r);

  /* Both cookies came back. */
  jar_get(f, "/", &r);
  assert_string_equal(r.body, "views=2\n");
  http_response_free(&r);
  {
    char *lang = http_client_cookie(f->jar, "lang");
    assert_non_null(lang);
    assert_string_equal(lang, "fr");
    free(lang);
  }
}

static void test_head_has_no_body(void **state) {
  fixture *f = *state;
  http_response r;

  raw(f, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.headers, "Content-Length: 8\r\n"));
  assert_int_equal(r.body_len, 0);
  /* The session was made (views incremented), so its cookie is sent. */
  assert_int_equal(r.n_set_cookie, 1);
  http_response_free(&r);
}

static void test_commit_fails(void **state) {
  fixture *f = *state;
  http_response r;
  char *before, *after;

  jar_get(f, "/", &r);
  assert_string_equal(r.body, "views=1\n");
  http_response_free(&r);
  before = stored_record(f);
  assert_non_null(before);

  /* Default responder. */
  atomic_store(&f->fail_set, 1);
  atomic_store(&f->logs, 0);
  jar_get(f, "/", &r);
  assert_int_equal(r.status, 500);
  assert_string_equal(r.body, "Internal Server Error\n");
  assert_int_equal(r.n_set_cookie, 0);
  assert_non_null(strstr(r.headers, "Content-Type: text/plain\r\n"));
  http_response_free(&r);
  assert_true(atomic_load(&f->logs) >= 1);
  assert_non_null(strstr(f->log_msg, "disk on fire"));
  after = stored_record(f);
  assert_non_null(after);
  assert_string_equal(before, after);
  free(after);

  /* A responder of the application's. */
  csn_civetweb_set_error_handler(f->ctx, custom_error, f);
  jar_get(f, "/", &r);
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "try again later\n");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->hook_calls), 1);
  assert_int_equal(atomic_load(&f->hook_err), CSN_ESTORE);
  assert_non_null(strstr(f->hook_msg, "disk on fire"));
  after = stored_record(f);
  assert_string_equal(before, after);
  free(after);
  csn_civetweb_set_error_handler(f->ctx, NULL, NULL);

  /* Recovered: the count goes on from the stored 1. */
  atomic_store(&f->fail_set, 0);
  jar_get(f, "/", &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=2\n");
  http_response_free(&r);
  free(before);
}

static void test_bad_header_refused(void **state) {
  fixture *f = *state;
  http_response r;

  raw(f, "GET /evil HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
  assert_int_equal(r.status, 500);
  assert_string_equal(r.body, "Internal Server Error\n");
  /* Neither the injected cookie nor the session's. */
  assert_int_equal(r.n_set_cookie, 0);
  assert_null(strstr(r.headers, "X-Note"));
  http_response_free(&r);
  /* Nothing committed: the new, modified session was not saved. */
  {
    size_t n = 99;
    assert_int_equal(csn_store_length(f->store, &n), CSN_OK);
    assert_int_equal(n, 0);
  }
  assert_non_null(strstr(f->log_msg, "bad status or header"));
}

static void test_proxy_secure(void **state) {
  fixture *f = *state;
  static const char *const https[] = {"X-Forwarded-Proto: https", NULL};
  static const char *const http[] = {"X-Forwarded-Proto: http", NULL};
  http_request_opts o;
  http_response r;
  char u[128];

  memset(&o, 0, sizeof o);
  o.url = url(f, "/proxy", u, sizeof u);

  /* Plain HTTP: a Secure cookie is not sent (express-session's "not
   * secured"). */
  assert_int_equal(http_request(f->jar, &o, &r), 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  o.headers = http;
  assert_int_equal(http_request(f->jar, &o, &r), 0);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);

  /* The proxy says the client came over HTTPS. */
  o.headers = https;
  assert_int_equal(http_request(f->jar, &o, &r), 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.n_set_cookie, 1);
  assert_true(http_regex_match("^connect\\.sid=s%3A[^;]+; Path=/; "
                               "Expires=[^;]+; HttpOnly; Secure$",
                               r.set_cookie[0]));
  http_response_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_counter, setup, teardown),
      cmocka_unit_test_setup_teardown(test_two_cookie_headers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_own_cookie_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_head_has_no_body, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_commit_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_header_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_proxy_secure, setup, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
