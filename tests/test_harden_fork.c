/* test_harden_fork.c - a forked child never hands out its parent's ids
 * (issue 15, finding 8).
 *
 * Each thread draws its ids from a pool of random bytes. A child inherits
 * the pool; the library used to notice the fork only by comparing getpid()
 * with the pid that filled the pool, and pid reuse defeats that: a
 * grandchild that was given its dead grandparent's pid issued exactly the
 * grandparent's next ids. The pid reuse is simulated here: this program is
 * linked with -Wl,--wrap=getpid, so the library's calls of getpid() (and
 * only those: libc and OpenSSL keep the real one) come to __wrap_getpid(),
 * which can answer the same fake pid in the parent and in the child - what
 * a reused pid looks like from inside the library. Without the fork
 * handler the child then draws its parent's next ids and the test fails.
 *
 * The library now tells a fork by a word the kernel zeroes in every child
 * (MADV_WIPEONFORK), and calls getpid() only where that page cannot be had.
 * This file is built twice: harden_fork, where it can, and
 * harden_fork_nowipe (HARDEN_NO_WIPE), where the test's __wrap_madvise
 * refuses it, so the getpid() fallback and the fork handler are tested
 * alone. harden_fork_raw forks with _Fork(), which runs no fork handler:
 * with the wiped word the child is caught even when told its parent's pid.
 *
 * A child reports its ids through a pipe; the parent draws its own next
 * ids after the fork and compares. */
#define _GNU_SOURCE /* _Fork() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "csn/csn.h"

pid_t __real_getpid(void);
pid_t __wrap_getpid(void);

/* 0: the real pid; otherwise the pid the library is told it runs as. */
static atomic_int fake_pid;
static atomic_int wrap_calls;

pid_t __wrap_getpid(void) {
  int fake = atomic_load(&fake_pid);
  atomic_fetch_add(&wrap_calls, 1);
  return fake != 0 ? (pid_t)fake : __real_getpid();
}

int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);

int __wrap_madvise(void *addr, size_t len, int advice) {
#ifdef HARDEN_NO_WIPE
  (void)addr;
  (void)len;
  (void)advice;
  errno = EINVAL; /* a kernel before 4.14 */
  return -1;
#else
  return __real_madvise(addr, len, advice);
#endif
}

#define N_IDS 4

/* fork(), or _Fork() (no fork handlers) when raw is set. */
static int use_raw_fork;

static pid_t do_fork(void) { return use_raw_fork ? _Fork() : fork(); }

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r <= 0)
      return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Fork; the child draws N_IDS ids and sends them; the parent draws its
 * next N_IDS ids and checks that no id of one is an id of the other. Run
 * from whatever thread calls it (the pool is per thread), so it reports
 * instead of asserting: NULL when all is well, else what went wrong (in
 * `why`). */
static const char *fork_and_compare(char *why, size_t size) {
  char parent_ids[N_IDS][33], child_ids[N_IDS][33], first[33];
  int fds[2], status = 0;
  pid_t pid;

  /* The pool is filled now: the child inherits unused bytes. */
  if (csn_generate_id(first, sizeof first) != CSN_OK || pipe(fds) != 0)
    return "setup failed";
  pid = do_fork();
  if (pid < 0)
    return "fork failed";
  if (pid == 0) {
    char ids[N_IDS][33];
    int ok = 1;
    close(fds[0]);
    for (int i = 0; i < N_IDS; i++)
      ok &= csn_generate_id(ids[i], 33) == CSN_OK;
    if (!ok || write_all(fds[1], ids, sizeof ids) != 0)
      _exit(2);
    _exit(0);
  }
  close(fds[1]);
  for (int i = 0; i < N_IDS; i++)
    if (csn_generate_id(parent_ids[i], 33) != CSN_OK)
      return "the parent could not draw an id";
  if (read_all(fds[0], child_ids, sizeof child_ids) != 0)
    return "the child sent no ids";
  close(fds[0]);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    return "the child failed";

  for (int i = 0; i < N_IDS; i++) {
    if (strlen(child_ids[i]) != 32 || strcmp(child_ids[i], first) == 0)
      return "the child's id is malformed or its parent's last";
    for (int j = 0; j < N_IDS; j++)
      if (strcmp(child_ids[i], parent_ids[j]) == 0) {
        snprintf(why, size,
                 "the child's id %d is the parent's id %d after the fork: %s",
                 i, j, child_ids[i]);
        return why;
      }
  }
  return NULL;
}

static void check_fork(void) {
  char why[128];
  const char *bad = fork_and_compare(why, sizeof why);
  if (bad != NULL)
    fail_msg("%s", bad);
}

/* A real fork: the pids differ, as they usually do. */
static void harden_fork_child_ids_differ(void **state) {
  (void)state;
  atomic_store(&fake_pid, 0);
  check_fork();
}

/* The child is told its parent's pid, as a process given a reused pid
 * would see it: only the fork handler can tell the pool is inherited. */
static void harden_fork_pid_reuse(void **state) {
  (void)state;
  atomic_store(&fake_pid, 4242);
  atomic_store(&wrap_calls, 0);
  check_fork();
#ifdef HARDEN_NO_WIPE
  /* The wrap is in effect (else the simulation would prove nothing). */
  assert_true(atomic_load(&wrap_calls) > 0);
#else
  /* The wiped word tells the fork: no system call per id. */
  assert_int_equal(atomic_load(&wrap_calls), 0);
#endif
  atomic_store(&fake_pid, 0);
}

/* _Fork(): no fork handler empties the pool. With the wiped word the
 * child is caught even when it sees its parent's pid; without it, only
 * the pid can tell, so the child is given its real one. */
static void harden_fork_raw(void **state) {
  (void)state;
#ifdef HARDEN_NO_WIPE
  atomic_store(&fake_pid, 0);
#else
  atomic_store(&fake_pid, 4245);
#endif
  use_raw_fork = 1;
  check_fork();
  use_raw_fork = 0;
  atomic_store(&fake_pid, 0);
}

static char thread_why[128];

static void *thread_main(void *arg) {
  (void)arg;
  return (void *)fork_and_compare(thread_why, sizeof thread_why);
}

/* The same from another thread than main: its own pool, forked from it. */
static void harden_fork_pid_reuse_in_thread(void **state) {
  pthread_t t;
  void *bad = NULL;
  (void)state;
  atomic_store(&fake_pid, 4243);
  assert_int_equal(pthread_create(&t, NULL, thread_main, NULL), 0);
  assert_int_equal(pthread_join(t, &bad), 0);
  atomic_store(&fake_pid, 0);
  if (bad != NULL)
    fail_msg("in a thread: %s", (const char *)bad);
}

/* A grandchild, as in the finding: the child forks again after drawing,
 * and the grandchild (told the same pid throughout) must not repeat the
 * child's next ids either. */
static void harden_fork_grandchild(void **state) {
  int status = 0;
  pid_t pid;
  (void)state;
  atomic_store(&fake_pid, 4244);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child: draw, fork a grandchild, compare as a parent would. With
     * cmocka's assertions unusable here, report through the exit code. */
    char mine[N_IDS][33], theirs[N_IDS][33], first[33];
    int g[2], st = 0;
    pid_t gp;
    if (csn_generate_id(first, 33) != CSN_OK || pipe(g) != 0)
      _exit(2);
    gp = fork();
    if (gp < 0)
      _exit(2);
    if (gp == 0) {
      char ids[N_IDS][33];
      close(g[0]);
      for (int i = 0; i < N_IDS; i++)
        if (csn_generate_id(ids[i], 33) != CSN_OK)
          _exit(2);
      _exit(write_all(g[1], ids, sizeof ids) == 0 ? 0 : 2);
    }
    close(g[1]);
    for (int i = 0; i < N_IDS; i++)
      if (csn_generate_id(mine[i], 33) != CSN_OK)
        _exit(2);
    if (read_all(g[0], theirs, sizeof theirs) != 0 ||
        waitpid(gp, &st, 0) != gp || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      _exit(2);
    for (int i = 0; i < N_IDS; i++)
      for (int j = 0; j < N_IDS; j++)
        if (strcmp(mine[i], theirs[j]) == 0)
          _exit(3);
    _exit(0);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 3)
    fail_msg("the grandchild handed out the child's next ids");
  assert_int_equal(WEXITSTATUS(status), 0);
  atomic_store(&fake_pid, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(harden_fork_child_ids_differ),
      cmocka_unit_test(harden_fork_pid_reuse),
      cmocka_unit_test(harden_fork_pid_reuse_in_thread),
      cmocka_unit_test(harden_fork_grandchild),
      cmocka_unit_test(harden_fork_raw),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
