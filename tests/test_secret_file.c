/* test_secret_file.c - secrets off the command line (issue 15, finding 1).
 *
 * csn_secret_read_file() takes a secret only from a file private to this
 * user, and the demo (any of them: CSN_DEMO_BIN) signs with a secret read
 * through --secret-file or CSN_SECRET_FILE, which therefore never shows in
 * /proc/PID/cmdline, where every local user could read it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "demo_proc.h"
#include "http_harness.h"

static char dir[] = "/tmp/csn-secret-XXXXXX";

static void put(const char *name, const char *text, mode_t mode, char *path,
                size_t size) {
  snprintf(path, size, "%s/%s", dir, name);
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  assert_int_equal(chmod(path, mode), 0);
}

static int read_secret(const char *path, char **out, char *err, size_t n) {
  err[0] = '\0';
  return csn_secret_read_file(path, out, err, n);
}

static void test_read_rules(void **state) {
  char path[300], link_path[300], err[256];
  char *s = NULL;
  (void)state;

  put("ok", "keyboard cat\n", 0600, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_OK);
  assert_string_equal(s, "keyboard cat"); /* the editor's newline dropped */
  csn_free_secret(s);
  put("crlf", "a b\r\n", 0400, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_OK);
  assert_string_equal(s, "a b");
  csn_free_secret(s);
  put("inner", "line1\nline2", 0600, path, sizeof path); /* kept whole */
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_OK);
  assert_string_equal(s, "line1\nline2");
  csn_free_secret(s);

  /* Any group or other bit: refused, and the message says what to do but
   * never what the file holds. */
  put("shared", "topsecret-value\n", 0640, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EPERM);
  assert_null(s);
  assert_non_null(strstr(err, "chmod 600"));
  assert_null(strstr(err, "topsecret"));
  put("world", "x", 0604, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EPERM);

  /* A symbolic link is judged by its target (Kubernetes mounts secrets
   * that way). */
  put("target", "linked\n", 0600, path, sizeof path);
  snprintf(link_path, sizeof link_path, "%s/link", dir);
  assert_int_equal(symlink(path, link_path), 0);
  assert_int_equal(read_secret(link_path, &s, err, sizeof err), CSN_OK);
  assert_string_equal(s, "linked");
  csn_free_secret(s);
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(read_secret(link_path, &s, err, sizeof err), CSN_EPERM);

  /* Empty, NUL inside, too long, missing, not a regular file (a FIFO must
   * not block start-up). */
  put("empty", "\n", 0600, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "empty"));
  snprintf(path, sizeof path, "%s/nul", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_int_equal(write(fd, "a\0b", 3), 3);
  close(fd);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EINVAL);
  char big[5000];
  memset(big, 'k', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  put("big", big, 0600, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EINVAL);
  big[4096] = '\0'; /* exactly the limit: fine */
  put("big", big, 0600, path, sizeof path);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_OK);
  assert_int_equal(strlen(s), 4096);
  csn_free_secret(s);
  snprintf(path, sizeof path, "%s/missing", dir);
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EIO);
  assert_non_null(strstr(err, "missing"));
  snprintf(path, sizeof path, "%s/fifo", dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  alarm(10); /* a regression blocks here: SIGALRM fails the test */
  assert_int_equal(read_secret(path, &s, err, sizeof err), CSN_EINVAL);
  alarm(0);
  assert_int_equal(read_secret(NULL, &s, err, sizeof err), CSN_EINVAL);
}

/* The whole command line of a running process, NULs turned to spaces. */
static void cmdline_of(pid_t pid, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, size - 1, f);
  fclose(f);
  for (size_t i = 0; i < n; i++)
    if (out[i] == '\0')
      out[i] = ' ';
  out[n] = '\0';
}

static void count_twice(const char *base) {
  char url[128];
  http_response r;
  http_client *c = http_client_new(1);
  snprintf(url, sizeof url, "%s/", base);
  assert_int_equal(http_get(c, url, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  http_response_free(&r);
  assert_int_equal(http_get(c, url, NULL, &r), 0);
  assert_string_equal(r.body, "You've visited this page 2 times\n");
  http_response_free(&r);
  http_client_free(c);
}

static void test_demo_secret_file(void **state) {
  char path[300], args_line[4096];
  const char *args[] = {"--port", "0", "--store", "memory://", "--secret-file",
                        path, NULL};
  demo_proc d;
  (void)state;
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");

  put("demo-secret", "s3cret-not-on-argv\n", 0600, path, sizeof path);
  assert_int_equal(demo_proc_start(&d, args, NULL, NULL), 0);
  cmdline_of(d.pid, args_line, sizeof args_line);
  assert_non_null(strstr(args_line, "--secret-file"));
  assert_null(strstr(args_line, "s3cret-not-on-argv"));
  count_twice(d.base);
  assert_int_equal(demo_proc_stop(&d), 0);

  /* A secret file others may read is refused at start-up (exit 2). */
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(demo_proc_spawn(&d, args, NULL, NULL), 0);
  assert_int_equal(demo_proc_wait(&d, 10000), 2);
}

/* CSN_SECRET_FILE: nothing about the secret on the command line at all. */
static void test_demo_secret_file_env(void **state) {
  char path[300];
  const char *args[] = {"--port", "0", "--store", "memory://", NULL};
  demo_proc d;
  (void)state;
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  put("env-secret", "from-the-environment\n", 0600, path, sizeof path);
  /* The child inherits it, as from a service manager's environment. */
  assert_int_equal(setenv("CSN_SECRET_FILE", path, 1), 0);
  assert_int_equal(demo_proc_start_env(&d, args, NULL, NULL, NULL, NULL), 0);
  count_twice(d.base);
  assert_int_equal(demo_proc_stop(&d), 0);
  unsetenv("CSN_SECRET_FILE");
}

static int rm_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_rules),
      cmocka_unit_test(test_demo_secret_file),
      cmocka_unit_test(test_demo_secret_file_env),
  };
  if (mkdtemp(dir) == NULL)
    return 1;
  int failed = cmocka_run_group_tests_name("harden_secret_file", tests, NULL,
                                           NULL);
  (void)rm_dir();
  return failed;
}
