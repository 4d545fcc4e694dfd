/* metrics_check.h - hand a Prometheus text to tests/metrics_parse.py, which
 * parses it with prometheus_client (the real parser, Debian's
 * python3-prometheus-client under /usr/bin/python3) and checks the
 * expectations given as "NAME{LABELS}=VALUE". Shared by test_metrics.c and
 * test_http_metrics.c; CSN_METRICS_PARSE is the script's path (CMake). */
#ifndef CSN_TEST_METRICS_CHECK_H
#define CSN_TEST_METRICS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define METRICS_PYTHON "/usr/bin/python3"

/* Run the parser on `text` (prefix NULL: "csession") with the NULL-ended
 * expectations. Returns its exit status (0: parsed and all held), or -1
 * when it could not be run. */
static inline int metrics_parse_check(const char *text, const char *prefix,
                                      const char *const *expect) {
  char path[] = "/tmp/csn-metrics-XXXXXX";
  const char *argv[64];
  size_t n = 0, len = strlen(text);
  int fd = mkstemp(path), status = -1;
  pid_t pid;

  if (fd < 0)
    return -1;
  if (write(fd, text, len) != (ssize_t)len) {
    close(fd);
    unlink(path);
    return -1;
  }
  close(fd);
  argv[n++] = METRICS_PYTHON;
  argv[n++] = CSN_METRICS_PARSE;
  if (prefix != NULL) {
    argv[n++] = "--prefix";
    argv[n++] = prefix;
  }
  argv[n++] = path;
  for (; expect != NULL && *expect != NULL && n < 63; expect++)
    argv[n++] = *expect;
  argv[n] = NULL;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    execv(METRICS_PYTHON, (char *const *)argv);
    _exit(127);
  }
  if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
    status = WEXITSTATUS(status);
  else
    status = -1;
  unlink(path);
  return status;
}

#endif /* CSN_TEST_METRICS_CHECK_H */
