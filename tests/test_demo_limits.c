/* test_demo_limits.c - the demo's connection limits (issue 15, finding 7).
 *
 * 250 connections that trickle their headers (slowloris) held every slot
 * of the demo for as long as they liked, and /health timed out throughout.
 * The demo now limits the connections one client address may hold
 * (--per-ip, default 64) and closes idle ones (--timeout, default 15 s).
 * The flood comes from 127.0.0.2 (still loopback) so that the health check
 * from 127.0.0.1 is another client. The program is CSN_DEMO_BIN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "demo_proc.h"
#include "http_harness.h"

#define FLOOD 100

static unsigned port_of(const demo_proc *d) {
  const char *colon = strrchr(d->base, ':');
  return colon != NULL ? (unsigned)atoi(colon + 1) : 0;
}

/* A connection from 127.0.0.2 that starts a request and never ends it. */
static int slow_conn(unsigned port) {
  struct sockaddr_in src, dst;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
  assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
    close(fd);
    return -1;
  }
  static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\n";
  if (send(fd, start, sizeof start - 1, MSG_NOSIGNAL) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Has the server closed fd (EOF or reset) within ms? */
static int closed_within(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  char c;
  if (poll(&p, 1, ms) <= 0)
    return 0;
  return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void health_ok(const demo_proc *d) {
  char url[128];
  http_response r;
  http_client *c = http_client_new(0);
  snprintf(url, sizeof url, "%s/health", d->base);
  assert_int_equal(http_get(c, url, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  http_response_free(&r);
  http_client_free(c);
}

/* Open FLOOD slow connections; return how many the server closed. */
static int flood(const demo_proc *d, int *fds) {
  int i, closed = 0;
  for (i = 0; i < FLOOD; i++)
    fds[i] = slow_conn(port_of(d));
  for (i = 0; i < FLOOD; i++)
    if (fds[i] < 0 || closed_within(fds[i], i == 0 ? 500 : 20))
      closed++;
  return closed;
}

static void unflood(int *fds) {
  for (int i = 0; i < FLOOD; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

static void test_per_ip_limit(void **state) {
  static const char *const args[] = {"--port", "0", "--store", "memory://",
                                     "--per-ip", "16", NULL};
  int fds[FLOOD];
  demo_proc d;
  (void)state;
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  assert_int_equal(demo_proc_start(&d, args, "s", NULL), 0);
  int closed = flood(&d, fds);
  /* 16 stay; the other 84 are turned away at once. */
  if (closed != FLOOD - 16)
    fail_msg("%d of %d slow connections closed, expected %d", closed, FLOOD,
             FLOOD - 16);
  health_ok(&d); /* another client is served meanwhile */
  unflood(fds);
  assert_int_equal(demo_proc_stop(&d), 0);
}

/* The default is a limit too (64), and 0 turns it off. */
static void test_per_ip_default_and_off(void **state) {
  static const char *const dflt[] = {"--port", "0", "--store", "memory://",
                                     NULL};
  static const char *const off[] = {"--port", "0", "--store", "memory://",
                                    "--per-ip", "0", NULL};
  int fds[FLOOD];
  demo_proc d;
  (void)state;
  assert_int_equal(demo_proc_start(&d, dflt, "s", NULL), 0);
  assert_int_equal(flood(&d, fds), FLOOD - 64);
  unflood(fds);
  assert_int_equal(demo_proc_stop(&d), 0);
  assert_int_equal(demo_proc_start(&d, off, "s", NULL), 0);
  assert_int_equal(flood(&d, fds), 0);
  unflood(fds);
  assert_int_equal(demo_proc_stop(&d), 0);
}

/* An idle connection is closed after --timeout seconds, not kept. */
static void test_idle_timeout(void **state) {
  static const char *const args[] = {"--port", "0", "--store", "memory://",
                                     "--timeout", "1", NULL};
  demo_proc d;
  (void)state;
  assert_int_equal(demo_proc_start(&d, args, "s", NULL), 0);
  int fd = slow_conn(port_of(&d));
  assert_true(fd >= 0);
  assert_false(closed_within(fd, 200)); /* open at first */
  assert_true(closed_within(fd, 5000)); /* then closed by the server */
  close(fd);
  assert_int_equal(demo_proc_stop(&d), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_per_ip_limit),
      cmocka_unit_test(test_per_ip_default_and_off),
      cmocka_unit_test(test_idle_timeout),
  };
  return cmocka_run_group_tests_name("harden_demo_limits", tests, NULL, NULL);
}
