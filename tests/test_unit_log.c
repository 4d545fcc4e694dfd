/* csn_ctx_log(): a log hook gets every message; without one, stderr gets at
 * most 20 lines a second, and the count of the lines left out is written
 * before the next line that is (src/core/ctx.c). stderr is redirected to a
 * file for the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csn/csn.h"
#include "csn/csn_store.h"

/* Wait for a second of the monotonic clock to begin (the limit counts per
 * second of it), so that a burst of lines falls in one second. */
static void next_second(void) {
  int64_t s = csn_mono_ms() / 1000;
  while (csn_mono_ms() / 1000 == s) usleep(1000);
}

static int count_lines(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p++) n++;
  return n;
}

static void unit_log_stderr_limit(void **state) {
  (void)state;
  FILE *out = tmpfile();
  assert_non_null(out);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(out), 2) >= 0);

  next_second();
  for (int i = 0; i < 100; i++) csn_ctx_log(NULL, CSN_EIO, "failure %d", i);
  next_second();
  csn_ctx_log(NULL, CSN_EIO, "after the burst");
  csn_ctx_log(NULL, CSN_EIO, "and one more");

  fflush(stderr);
  assert_true(dup2(saved, 2) >= 0);
  close(saved);
  long size = ftell(out);
  assert_true(size > 0);
  char *text = calloc(1, (size_t)size + 1);
  assert_non_null(text);
  rewind(out);
  assert_int_equal(fread(text, 1, (size_t)size, out), (size_t)size);
  fclose(out);

  assert_int_equal(count_lines(text, "csession: failure "), 20);
  assert_non_null(strstr(text, "csession: failure 19 (EIO)\n"));
  assert_null(strstr(text, "failure 20 "));
  const char *dropped = strstr(
      text, "csession: 80 more errors were not logged (at most 20 lines a "
            "second)\ncsession: after the burst (EIO)\n");
  assert_non_null(dropped);
  /* The count is written once. */
  assert_int_equal(count_lines(text, "more errors were not logged"), 1);
  assert_non_null(strstr(text, "after the burst (EIO)\ncsession: and one more"));
  free(text);
}

static int hook_calls;
static void counting_log(int err, const char *msg, void *ud) {
  (void)err;
  (void)ud;
  if (strncmp(msg, "hooked ", 7) == 0) hook_calls++;
}

/* The hook is not limited. */
static void unit_log_hook_gets_all(void **state) {
  (void)state;
  static const char *const secrets[] = {"log-test-secret"};
  csn_options o;
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.log = counting_log;
  csn_ctx *ctx = NULL;
  char err[200] = "";
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_OK);
  next_second();
  for (int i = 0; i < 100; i++) csn_ctx_log(ctx, CSN_EIO, "hooked %d", i);
  assert_int_equal(hook_calls, 100);
  csn_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(unit_log_stderr_limit),
      cmocka_unit_test(unit_log_hook_gets_all),
  };
  return cmocka_run_group_tests_name("unit_log", tests, NULL, NULL);
}
