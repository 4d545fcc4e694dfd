/* test_http_demo_binary.c - the real csession-demo program: start it on a
 * free port, count visits through it with curl, stop it with SIGTERM and
 * check that it exits 0. Also its command-line errors (exit 2). The path
 * comes from CMake in CSN_DEMO_BIN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "demo_proc.h"
#include "http_harness.h"

/* Working directory for the next spawned demo (NULL: inherit). */
static const char *spawn_cwd;

/* Start the demo with argv (NULL-ended, argv[0] excluded), stdout piped.
 * `secret_env` sets CSN_SECRET in the child, or unsets it when NULL. */
static void demo_spawn(demo_proc *d, const char *const *args,
                       const char *secret_env) {
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  assert_int_equal(demo_proc_spawn(d, args, secret_env, spawn_cwd), 0);
}

/* Read the child's first stdout line (10 s at most). */
static int demo_read_line(demo_proc *d) {
  return demo_proc_read_line(d, 10000);
}

/* Wait for the child (10 s at most); returns its exit status or -1 if it
 * did not exit normally. */
static int demo_wait(demo_proc *d) {
  int rc = demo_proc_wait(d, 10000);
  if (rc == -2)
    fail_msg("the demo did not exit");
  return rc;
}

/* Start the demo, return its base URL in base. */
static void demo_start(demo_proc *d, const char *const *args, char *base,
                       size_t size) {
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  if (demo_proc_start(d, args, NULL, spawn_cwd) != 0)
    fail_msg("the demo did not start; it said: %s", d->line);
  snprintf(base, size, "%s", d->base);
}

static void get_body(http_client *c, const char *base, const char *path,
                     long status, const char *want) {
  char url[256];
  http_response r;
  snprintf(url, sizeof url, "%s%s", base, path);
  if (http_get(c, url, NULL, &r) != 0)
    fail_msg("GET %s: %s", url, r.error);
  assert_int_equal(r.status, status);
  assert_string_equal(r.body, want);
  http_response_free(&r);
}

static void test_counts_and_stops_cleanly(void **state) {
  static const char *const args[] = {"--port", "0", "--secret", "s3cret",
                                     "--threads", "3", NULL};
  demo_proc d;
  char base[64];
  http_client *a, *b;
  (void)state;

  demo_start(&d, args, base, sizeof base);

  a = http_client_new(1);
  b = http_client_new(1);
  get_body(a, base, "/health", 200, "ok\n");
  get_body(a, base, "/", 200, "Welcome! Refresh the page to count visits.\n");
  get_body(a, base, "/", 200, "You've visited this page 2 times\n");
  get_body(b, base, "/", 200, "Welcome! Refresh the page to count visits.\n");
  get_body(a, base, "/", 200, "You've visited this page 3 times\n");
  get_body(a, base, "/login?user=carol", 200, "Logged in as carol\n");
  get_body(a, base, "/logout", 200, "Logged out\n");
  get_body(a, base, "/", 200, "Welcome! Refresh the page to count visits.\n");
  http_client_free(a);
  http_client_free(b);

  assert_int_equal(kill(d.pid, SIGTERM), 0);
  assert_int_equal(demo_wait(&d), 0);
}

/* The default store persists: a restarted demo still knows the browser. */
static void test_restart_keeps_visits(void **state) {
  static const char *const args[] = {"--port", "0", "--secret", "s3cret",
                                     NULL};
  char dir[] = "/tmp/csn-demo-XXXXXX", base[64], cmd[128];
  demo_proc d;
  http_client *a;
  (void)state;

  assert_non_null(mkdtemp(dir));
  spawn_cwd = dir;
  a = http_client_new(1);
  demo_start(&d, args, base, sizeof base);
  get_body(a, base, "/", 200, "Welcome! Refresh the page to count visits.\n");
  get_body(a, base, "/", 200, "You've visited this page 2 times\n");
  assert_int_equal(kill(d.pid, SIGTERM), 0);
  assert_int_equal(demo_wait(&d), 0);

  demo_start(&d, args, base, sizeof base); /* a new port, same jar */
  get_body(a, base, "/", 200, "You've visited this page 3 times\n");
  assert_int_equal(kill(d.pid, SIGTERM), 0);
  assert_int_equal(demo_wait(&d), 0);
  http_client_free(a);
  spawn_cwd = NULL;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_sigint_stops_too(void **state) {
  static const char *const args[] = {"--port", "0", "--threads", "1", NULL};
  demo_proc d;
  (void)state;
  demo_spawn(&d, args, "from-env"); /* the secret from CSN_SECRET */
  assert_int_equal(demo_read_line(&d), 0);
  assert_non_null(strstr(d.line, "listening on http://127.0.0.1:"));
  assert_int_equal(kill(d.pid, SIGINT), 0);
  assert_int_equal(demo_wait(&d), 0);
}

static void expect_usage_error(const char *const *args, const char *env) {
  demo_proc d;
  demo_spawn(&d, args, env);
  assert_int_equal(demo_wait(&d), 2);
}

static void test_usage_errors(void **state) {
  static const char *const no_secret[] = {"--port", "0", NULL};
  static const char *const bad_age[] = {"--secret", "x", "--max-age", "1e3",
                                        NULL};
  static const char *const neg_age[] = {"--secret", "x", "--max-age", "-5",
                                        NULL};
  static const char *const bad_port[] = {"--secret", "x", "--port", "70000",
                                         NULL};
  static const char *const unknown[] = {"--secret", "x", "--frobnicate",
                                        NULL};
  static const char *const missing[] = {"--secret", NULL};
  static const char *const bad_store[] = {"--secret", "x", "--store",
                                          "nosuch://x", NULL};
  static const char *const bad_bind[] = {"--secret", "x", "--bind", "nowhere",
                                         NULL};
  (void)state;
  expect_usage_error(no_secret, NULL);
  expect_usage_error(no_secret, ""); /* empty CSN_SECRET is no secret */
  expect_usage_error(bad_age, NULL);
  expect_usage_error(neg_age, NULL);
  expect_usage_error(bad_port, NULL);
  expect_usage_error(unknown, NULL);
  expect_usage_error(missing, NULL);
  expect_usage_error(bad_store, NULL);
  expect_usage_error(bad_bind, NULL);
}

static void test_help(void **state) {
  static const char *const args[] = {"--help", NULL};
  demo_proc d;
  (void)state;
  demo_spawn(&d, args, NULL);
  assert_int_equal(demo_read_line(&d), 0);
  assert_non_null(strstr(d.line, "usage: csession-demo"));
  assert_int_equal(demo_wait(&d), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counts_and_stops_cleanly),
      cmocka_unit_test(test_restart_keeps_visits),
      cmocka_unit_test(test_sigint_stops_too),
      cmocka_unit_test(test_usage_errors),
      cmocka_unit_test(test_help),
  };
  /* A child that dies early must not kill the test with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
