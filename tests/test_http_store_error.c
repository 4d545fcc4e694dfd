/* test_http_store_error.c - a failing store over real HTTP: the adapter
 * answers 500 through the default error responder (or the configured one),
 * logs the store's message, leaves the stored record as it was, and the
 * next request works once the store recovers. Faults are injected with
 * csn__store_set_fault() into a real memory store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"
#include "http_harness.h"

typedef struct fixture {
  csn_store *store;
  csn_ctx *ctx;
  http_server *srv;
  http_client *jar;
  /* Fault switch read by the worker threads. */
  atomic_int fail_get, fail_set;
  /* What the log hook and the custom error responder saw. */
  atomic_int logs, log_err, hook_calls, hook_err;
  char log_msg[512];
  char hook_msg[512];
} fixture;


static int fault(csn_store *st, const char *op, void *ud) {
  fixture *f = ud;
  (void)st;
  if (strcmp(op, "get") == 0 && atomic_load(&f->fail_get))
    return csn_store_set_error(st, CSN_ESTORE, "disk on fire (get)");
  /* A save is a set, or a compare-and-set for a session that was loaded
   * from the store (src/core/merge.c). */
  if ((strcmp(op, "set") == 0 || strcmp(op, "cas") == 0) &&
      atomic_load(&f->fail_set))
    return csn_store_set_error(st, CSN_ESTORE, "disk on fire (set)");
  return CSN_OK;
}

/* Only one request is in flight at a time in these tests, so the text
 * buffers are written by one worker and read after the response. */
static void log_hook(int err, const char *message, void *ud) {
  fixture *f = ud;
  snprintf(f->log_msg, sizeof f->log_msg, "%s", message);
  atomic_store(&f->log_err, err);
  atomic_fetch_add(&f->logs, 1);
}

static csn_mhd_result custom_error(struct MHD_Connection *conn, int err,
                                   const char *message, void *ud) {
  fixture *f = ud;
  snprintf(f->hook_msg, sizeof f->hook_msg, "%s", message);
  atomic_store(&f->hook_err, err);
  atomic_fetch_add(&f->hook_calls, 1);
  return http_reply(conn, NULL, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "try again later\n", NULL);
}

static csn_mhd_result handler(const http_req *r) {
  csn_request *req;
  csn_session *s;
  int64_t views = 0;
  char body[64];
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &req);
  if (rc < 0)
    return csn_mhd_error(r->ctx, r->conn, rc);
  s = csn_request_session(req);
  if (s != NULL)
    csn_session_incr(s, "views", 1, &views);
  snprintf(body, sizeof body, "views=%lld", (long long)views);
  return http_reply(r->conn, req, MHD_HTTP_OK, body, NULL);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  http_server_opts so;
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
  memset(&so, 0, sizeof so);
  so.ctx = f->ctx;
  so.handler = handler;
  assert_int_equal(http_server_start(&so, &f->srv), 0);
  f->jar = http_client_new(1);
  csn__store_set_fault(fault, f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  csn__store_set_fault(NULL, NULL);
  http_client_free(f->jar);
  http_server_stop(f->srv);
  csn_ctx_free(f->ctx);
  csn_store_free(f->store);
  free(f);
  return 0;
}

static http_response visit(fixture *f) {
  char url[128];
  http_response r;
  if (http_get(f->jar, http_server_url(f->srv, "/", url, sizeof url), NULL,
               &r) != 0)
    fail_msg("request failed: %s", r.error);
  return r;
}

static void expect_views(fixture *f, const char *want) {
  http_response r = visit(f);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, want);
  http_response_free(&r);
}

static size_t stored_count(fixture *f) {
  size_t n = 0;
  assert_int_equal(csn_store_length(f->store, &n), CSN_OK);
  return n;
}

static void expect_default_500(http_response *r) {
  assert_int_equal(r->status, 500);
  assert_string_equal(r->body, "Internal Server Error\n");
  assert_non_null(strstr(r->headers, "text/plain"));
  /* Nothing was saved, so no cookie may point at it. */
  assert_int_equal(r->n_set_cookie, 0);
}

static void test_set_fails_new_session(void **state) {
  fixture *f = *state;
  http_response r;

  atomic_store(&f->fail_set, 1);
  r = visit(f);
  expect_default_500(&r);
  http_response_free(&r);
  assert_int_equal(stored_count(f), 0);
  /* Logged once, with the store's own words. */
  assert_int_equal(atomic_load(&f->logs), 1);
  assert_int_equal(atomic_load(&f->log_err), CSN_ESTORE);
  if (strstr(f->log_msg, "disk on fire (set)") == NULL)
    fail_msg("log message lacks the store's message: %s", f->log_msg);

  /* The store recovers: the next request works from scratch. */
  atomic_store(&f->fail_set, 0);
  expect_views(f, "views=1");
  expect_views(f, "views=2");
  assert_int_equal(stored_count(f), 1);
}

static void test_set_fails_keeps_record(void **state) {
  fixture *f = *state;
  http_response r;

  expect_views(f, "views=1");
  expect_views(f, "views=2");
  atomic_store(&f->fail_set, 1);
  r = visit(f);
  expect_default_500(&r);
  http_response_free(&r);
  /* The failed write changed nothing: the record still says 2. */
  atomic_store(&f->fail_set, 0);
  expect_views(f, "views=3");
}

static void test_get_fails(void **state) {
  fixture *f = *state;
  http_response r;

  expect_views(f, "views=1");
  atomic_store(&f->fail_get, 1);
  r = visit(f);
  expect_default_500(&r);
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->log_err), CSN_ESTORE);
  if (strstr(f->log_msg, "disk on fire (get)") == NULL)
    fail_msg("log message lacks the store's message: %s", f->log_msg);
  /* The session was not replaced by a fresh one behind the user's back. */
  assert_int_equal(stored_count(f), 1);
  atomic_store(&f->fail_get, 0);
  expect_views(f, "views=2");
}

static void test_custom_error_handler(void **state) {
  fixture *f = *state;
  http_response r;

  csn_mhd_set_error_handler(f->ctx, custom_error, f);
  expect_views(f, "views=1");
  atomic_store(&f->fail_get, 1);
  r = visit(f);
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "try again later\n");
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->hook_calls), 1);
  assert_int_equal(atomic_load(&f->hook_err), CSN_ESTORE);
  if (strstr(f->hook_msg, "disk on fire (get)") == NULL)
    fail_msg("hook message lacks the store's message: %s", f->hook_msg);
  /* The error is logged whoever answers it. */
  assert_int_equal(atomic_load(&f->logs), 1);

  /* A failing commit goes through the same hook. */
  atomic_store(&f->fail_get, 0);
  atomic_store(&f->fail_set, 1);
  r = visit(f);
  assert_int_equal(r.status, 503);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->hook_calls), 2);
  if (strstr(f->hook_msg, "disk on fire (set)") == NULL)
    fail_msg("hook message lacks the store's message: %s", f->hook_msg);

  /* Back to normal; then back to the default responder. */
  atomic_store(&f->fail_set, 0);
  expect_views(f, "views=2");
  csn_mhd_set_error_handler(f->ctx, NULL, NULL);
  atomic_store(&f->fail_set, 1);
  r = visit(f);
  expect_default_500(&r);
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->hook_calls), 2);
}

/* The adapter's argument checks, without a server. */
static void test_adapter_arguments(void **state) {
  fixture *f = *state;
  csn_request *req = (csn_request *)&req;
  assert_int_equal(csn_mhd_begin(f->ctx, NULL, "/", &req), CSN_EINVAL);
  assert_null(req);
  assert_int_equal(csn_mhd_begin(NULL, NULL, "/", NULL), CSN_EINVAL);
  assert_int_equal(csn_mhd_commit(NULL, NULL), CSN_EINVAL);
  assert_int_equal(csn_mhd_queue_response(NULL, NULL, 200, NULL), MHD_NO);
  csn_mhd_set_error_handler(NULL, custom_error, NULL); /* a no-op */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_set_fails_new_session, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_set_fails_keeps_record, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_get_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_custom_error_handler, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_adapter_arguments, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
