/* test_http_metrics.c - GET /metrics of a demo program over HTTP.
 *
 * The demo named by CSN_DEMO_BIN (csession-demo, csession-ulfius-demo or
 * csession-civetweb-demo; tests/metrics.cmake registers one test per
 * binary) runs on a MemoryStore; libcurl makes a scripted set of requests,
 * then /metrics must answer the Prometheus text (its Content-Type, no
 * session cookie) whose counters equal what the script did, parsed by the
 * real parser (tests/metrics_parse.py, prometheus_client). A scrape must
 * not count itself: two scrapes in a row are the same text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "demo_client.h"
#include "metrics_check.h"

#define SECRET "metrics over http"

static void get_ok(const char *base, const char *path, const char *cookie,
                   long status, const char *body_start) {
  http_response r = demo_get(base, path, cookie);
  if (r.status != status ||
      (body_start != NULL &&
       strncmp(r.body, body_start, strlen(body_start)) != 0))
    fail_msg("GET %s: %ld %s", path, r.status, r.body);
  http_response_free(&r);
}

/* GET /metrics: 200, the exposition format's type, no cookie; the text
 * (malloc'd). */
static char *scrape(const char *base) {
  http_response r = demo_get(base, "/metrics", NULL);
  char *text;
  assert_int_equal(r.status, 200);
  assert_non_null(r.headers);
  if (strstr(r.headers, "Content-Type: text/plain; version=0.0.4") == NULL)
    fail_msg("/metrics headers: %s", r.headers);
  assert_int_equal(r.n_set_cookie, 0);
  text = strdup(r.body);
  assert_non_null(text);
  http_response_free(&r);
  return text;
}

static void test_metrics_scripted(void **state) {
  static const char *const zero[] = {
      "csession_sessions_created_total=0",
      "csession_store_seconds_count{op=\"get\"}=0", NULL};
  static const char *const expect[] = {
      "csession_sessions_created_total=3",
      "csession_sessions_loaded_total=5",
      "csession_sessions_saved_total=4",
      "csession_sessions_touched_total=1",
      "csession_sessions_destroyed_total=2",
      "csession_sessions_unreadable_total=0",
      "csession_merge_conflicts_resolved_total=0",
      "csession_store_errors_total{op=\"get\"}=0",
      "csession_store_errors_total{op=\"set\"}=0",
      "csession_store_errors_total{op=\"cas\"}=0",
      "csession_store_errors_total{op=\"touch\"}=0",
      "csession_store_errors_total{op=\"destroy\"}=0",
      "csession_store_seconds_count{op=\"get\"}=6",
      "csession_store_seconds_count{op=\"set\"}=2",
      "csession_store_seconds_count{op=\"cas\"}=2",
      "csession_store_seconds_count{op=\"touch\"}=1",
      "csession_store_seconds_count{op=\"destroy\"}=2",
      "csession_store_seconds_bucket{op=\"get\",le=\"+Inf\"}=6",
      NULL};
  demo_fixture *df = *state;
  const char *base;
  char *c1, *c2, *text, *again;
  http_response r;

  demo_start_store(&df->d[0], SECRET, 2, "memory://", NULL, "metrics");
  base = df->d[0].base;

  /* Before any request: all zero, and /health counts nothing either. */
  get_ok(base, "/health", NULL, 200, "ok");
  text = scrape(base);
  assert_int_equal(metrics_parse_check(text, NULL, zero), 0);
  free(text);

  /* 1. new visitor: created, set */
  c1 = demo_new_session(base, "/", NULL, SECRET, NULL);
  /* 2., 3. two more visits: get, loaded, cas (saved) each */
  get_ok(base, "/", c1, 200, "You've visited this page 2 times");
  get_ok(base, "/", c1, 200, "You've visited this page 3 times");
  /* 4. a read that changes nothing: get, loaded, touch */
  get_ok(base, "/session", c1, 200, "{");
  /* 5. login: get, loaded, destroy (old id), created, set (new id) */
  r = demo_get(base, "/login?user=ann", c1);
  assert_int_equal(r.status, 200);
  c2 = demo_cookie_of(&r, SECRET, NULL);
  http_response_free(&r);
  /* 6. logout: get, loaded, destroy */
  get_ok(base, "/logout", c2, 200, "Logged out");
  /* 7. the dead cookie: get (not found), created, not saved */
  get_ok(base, "/session", c2, 200, "{");

  text = scrape(base);
  if (metrics_parse_check(text, NULL, expect) != 0)
    fail_msg("/metrics after the script:\n%s", text);
  /* A scrape counts nothing: the next one is the same text. */
  again = scrape(base);
  assert_string_equal(again, text);
  free(again);
  free(text);
  free(c1);
  free(c2);
  assert_int_equal(demo_proc_stop(&df->d[0]), 0);
}

static int setup(void **state) {
  return demo_fixture_new(state, sizeof(demo_fixture), NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_metrics_scripted, setup,
                                      demo_fixture_teardown),
  };
  return cmocka_run_group_tests_name("http_metrics", tests, NULL, NULL);
}
