/* test_harden_mhd.c - the libmicrohttpd adapter reads every Cookie header
 * and tells each failure with its own message (issue 15, "Also" list).
 *
 * Cookie headers: Node's http module joins repeated Cookie headers with
 * "; " (other repeated headers get ", "), and express-session then reads
 * the first connect.sid of the joined value. The adapter used only the
 * first header, so a session cookie sent in a second one (an HTTP/2 front
 * end may split cookies so) was not seen and the user got a new session.
 * Here libcurl sends two real Cookie header lines.
 *
 * Error messages: csn_mhd_error() logs csn_last_error(), the thread's last
 * failure text. A failure that leaves no text of its own (the
 * application's own error passed to csn_mhd_error()) used to be logged
 * with the text of an earlier, unrelated failure of the same worker
 * thread. The server here runs one thread, so every request shares it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>

#include "csn_int.h"
#include "http_harness.h"

/* ---------------------------------------------------------------------- */
/* The log and the fault                                                  */
/* ---------------------------------------------------------------------- */

#define LOG_MAX 16
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  int err;
  char msg[512];
} log_lines[LOG_MAX];
static int log_n;

static void log_hook(int err, const char *message, void *ud) {
  (void)ud;
  pthread_mutex_lock(&log_lock);
  if (log_n < LOG_MAX) {
    log_lines[log_n].err = err;
    snprintf(log_lines[log_n].msg, sizeof log_lines[log_n].msg, "%s",
             message);
    log_n++;
  }
  pthread_mutex_unlock(&log_lock);
}

/* The only log line since the last call (copied into out), or fail. */
static int take_log(char *out, size_t size) {
  int err;
  pthread_mutex_lock(&log_lock);
  if (log_n != 1) {
    int n = log_n;
    pthread_mutex_unlock(&log_lock);
    fail_msg("expected one log line, got %d", n);
  }
  err = log_lines[0].err;
  snprintf(out, size, "%s", log_lines[0].msg);
  log_n = 0;
  pthread_mutex_unlock(&log_lock);
  return err;
}

/* Fail the named store operation with the given code while armed. */
static const char *_Atomic fault_op;
static _Atomic int fault_code;

static int fault(csn_store *st, const char *op, void *ud) {
  const char *want = fault_op;
  (void)st;
  (void)ud;
  if (want == NULL)
    return 0;
  /* A save is a compare-and-set when the store has one. */
  if (strcmp(op, want) == 0 ||
      (strcmp(want, "set") == 0 && strcmp(op, "cas") == 0))
    return fault_code;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Server                                                                 */
/* ---------------------------------------------------------------------- */

/* "/" counts visits. "/apperr": the session begins fine, then the
 * application fails on its own (a database of its own timed out, say) and
 * answers with csn_mhd_error(). */
static csn_mhd_result handler(const http_req *r) {
  csn_request *req;
  csn_session *s;
  int64_t views = 0;
  char body[64];
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &req);
  if (rc < 0)
    return csn_mhd_error(r->ctx, r->conn, rc);
  if (strcmp(r->url, "/apperr") == 0) {
    csn_request_free(req);
    return csn_mhd_error(r->ctx, r->conn, CSN_ETIMEDOUT);
  }
  s = csn_request_session(req);
  if (s != NULL)
    csn_session_incr(s, "views", 1, &views);
  snprintf(body, sizeof body, "views=%lld", (long long)views);
  return http_reply(r->conn, req, MHD_HTTP_OK, body, NULL);
}

typedef struct fixture {
  csn_ctx *ctx;
  http_server *srv;
} fixture;

static void start(fixture *f) {
  http_server_opts so;
  csn_options o;
  memset(f, 0, sizeof *f);
  csn_options_init(&o);
  o.resave = 0;
  o.save_uninitialized = 0;
  o.log = log_hook;
  f->ctx = http_ctx_new(&o);
  memset(&so, 0, sizeof so);
  so.ctx = f->ctx;
  so.handler = handler;
  so.threads = 1; /* one thread: every request shares csn_last_error() */
  so.memory_limit = 512 * 1024;
  assert_int_equal(http_server_start(&so, &f->srv), 0);
  pthread_mutex_lock(&log_lock);
  log_n = 0;
  pthread_mutex_unlock(&log_lock);
}

static void stop(fixture *f) {
  http_server_stop(f->srv);
  csn_ctx_free(f->ctx);
}

/* GET path with the given header lines (NULL-ended, may be NULL). */
static http_response get(fixture *f, const char *path,
                         const char *const *headers) {
  http_client *c = http_client_new(0);
  http_request_opts o;
  http_response r;
  char url[128];
  memset(&o, 0, sizeof o);
  o.url = http_server_url(f->srv, path, url, sizeof url);
  o.headers = headers;
  if (http_request(c, &o, &r) != 0)
    fail_msg("GET %s: %s", url, r.error);
  http_client_free(c);
  return r;
}

/* A session with views=1; its cookie "connect.sid=..." in out. */
static void new_session(fixture *f, char *out, size_t size) {
  http_response r = get(f, "/", NULL);
  char *v;
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=1");
  v = http_set_cookie_value(&r, "connect.sid");
  assert_non_null(v);
  snprintf(out, size, "connect.sid=%s", v);
  free(v);
  http_response_free(&r);
}

static void expect_views(fixture *f, const char *const *headers,
                         const char *views) {
  http_response r = get(f, "/", headers);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, views);
  http_response_free(&r);
}

/* ---------------------------------------------------------------------- */
/* Cookie headers                                                         */
/* ---------------------------------------------------------------------- */

static void harden_mhd_second_cookie_header(void **state) {
  fixture f;
  char sess[256], line[300], bogus[300];
  (void)state;
  start(&f);
  new_session(&f, sess, sizeof sess);
  snprintf(line, sizeof line, "Cookie: %s", sess);

  /* The session cookie in the second header is seen: joined with "; "
   * (joined with ", " the first pair would swallow it). */
  {
    const char *h[] = {"Cookie: theme=dark", line, NULL};
    expect_views(&f, h, "views=2");
  }
  /* In the first, as before. */
  {
    const char *h[] = {line, "Cookie: theme=dark", NULL};
    expect_views(&f, h, "views=3");
  }
  /* Three headers, the session in the last. */
  {
    const char *h[] = {"Cookie: a=1", "Cookie: b=2; c=3", line, NULL};
    expect_views(&f, h, "views=4");
  }
  /* Two session cookies: the first wins, as in Node, even when it is not
   * valid - a fresh session, the real one untouched. */
  snprintf(bogus, sizeof bogus, "Cookie: connect.sid=s%%3Anot-signed.x");
  {
    const char *h[] = {bogus, line, NULL};
    expect_views(&f, h, "views=1");
  }
  {
    const char *h[] = {line, NULL};
    expect_views(&f, h, "views=5");
  }
  stop(&f);
}

/* The join is bounded (64 KiB): a huge first header keeps the second out,
 * and the request is still served. */
static void harden_mhd_cookie_join_bounded(void **state) {
  fixture f;
  char sess[256], line[300];
  size_t big = 70 * 1024;
  char *first = malloc(big + 32);
  (void)state;
  assert_non_null(first);
  start(&f);
  new_session(&f, sess, sizeof sess);
  snprintf(line, sizeof line, "Cookie: %s", sess);
  strcpy(first, "Cookie: pad=");
  memset(first + strlen(first), 'x', big);
  first[12 + big] = '\0';
  {
    const char *h[] = {first, line, NULL};
    expect_views(&f, h, "views=1");
  }
  /* Within the bound it is joined. */
  first[12 + 1024] = '\0';
  {
    const char *h[] = {first, line, NULL};
    expect_views(&f, h, "views=2");
  }
  free(first);
  stop(&f);
}

/* ---------------------------------------------------------------------- */
/* Error messages                                                         */
/* ---------------------------------------------------------------------- */

static void harden_mhd_error_message_is_this_failures(void **state) {
  fixture f;
  char sess[256], line[300], msg[512];
  http_response r;
  int err;
  (void)state;
  start(&f);
  new_session(&f, sess, sizeof sess);
  snprintf(line, sizeof line, "Cookie: %s", sess);
  const char *h[] = {line, NULL};

  /* 1. The store fails the load: logged with the store's words. */
  csn__store_set_fault(fault, NULL);
  fault_code = CSN_EIO;
  fault_op = "get";
  r = get(&f, "/", h);
  fault_op = NULL;
  assert_int_equal(r.status, 500);
  http_response_free(&r);
  err = take_log(msg, sizeof msg);
  assert_int_equal(err, CSN_EIO);
  assert_non_null(strstr(msg, "get"));
  assert_non_null(strstr(msg, "injected fault"));

  /* 2. The application's own failure, after a good begin: nothing in the
   * library failed, so the message is the code's, not step 1's. */
  r = get(&f, "/apperr", h);
  assert_int_equal(r.status, 500);
  http_response_free(&r);
  err = take_log(msg, sizeof msg);
  assert_int_equal(err, CSN_ETIMEDOUT);
  if (strcmp(msg, csn_strerror(CSN_ETIMEDOUT)) != 0)
    fail_msg("the application's failure was logged as \"%s\"", msg);

  /* 3. A failed save: its own message, naming "set", not step 1's "get". */
  fault_code = CSN_ESTORE;
  fault_op = "set";
  r = get(&f, "/", h);
  fault_op = NULL;
  assert_int_equal(r.status, 500);
  http_response_free(&r);
  err = take_log(msg, sizeof msg);
  assert_int_equal(err, CSN_ESTORE);
  assert_true(strstr(msg, " set") != NULL || strstr(msg, " cas") != NULL);
  assert_non_null(strstr(msg, "injected fault"));
  assert_null(strstr(msg, " get"));

  /* 4. And again an application failure after step 3. */
  r = get(&f, "/apperr", h);
  assert_int_equal(r.status, 500);
  http_response_free(&r);
  err = take_log(msg, sizeof msg);
  assert_string_equal(msg, csn_strerror(CSN_ETIMEDOUT));

  csn__store_set_fault(NULL, NULL);
  stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(harden_mhd_second_cookie_header),
      cmocka_unit_test(harden_mhd_cookie_join_bounded),
      cmocka_unit_test(harden_mhd_error_message_is_this_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
