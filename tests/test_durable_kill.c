/* test_durable_kill.c - a save acknowledged by a group commit is on disk.
 *
 * usage: test_durable_kill URL-QUERY-KIND [query]
 *   kind  "sqlite" or "file": the store, on a fresh scratch path
 *   query appended to the store URL ("?synchronous=normal", "?fsync=0")
 *
 * A child process opens the store and saves sessions from several threads
 * at once, so that saves meet in group commits (the SQLite store's batched
 * transactions, the file store's shared directory fsyncs). Each thread
 * runs, per session: set, cas on top of it, touch with a new cookie, and
 * now and then destroys the session it finished before; only after the
 * store returned does it report the save on a pipe ("A sid" for the
 * finished session, "D sid" for a destroyed one, announced by "d sid"
 * before the destroy starts; one write() each, atomic below PIPE_BUF). The parent reads reports until it has seen enough, kills
 * the child with SIGKILL at once - in the middle of other threads' batches
 * - reads what the child had reported before it died, reopens the store and
 * checks that every acknowledged session is there with exactly the text
 * its last acknowledged save wrote (or, for one whose destroy had begun,
 * is absent), and every acknowledged destroy stuck.
 *
 * SIGKILL loses what a process holds in memory, not what the kernel has:
 * this test catches a store that acknowledges a save before the write is
 * handed to the file system (a batch answered before it was committed, a
 * waiter woken by the wrong commit). A power cut is another matter, which
 * the fsyncs (synchronous=FULL, file and directory fsync) are for; those
 * are checked by reading the code paths, not by this test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_stores.h"

#define DK_THREADS 8
#define DK_ACKS 400      /* kill after this many reports */
#define DK_MAX_IDS 20000 /* sessions one run can report */

static const char *kind;
static const char *query = "";
static char scratch[256];
static char url[512];

/* The three texts a session goes through, and what touch leaves. */
static void rec_v1(char *buf, size_t n, const char *sid) {
  snprintf(buf, n,
           "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2030-01-01T"
           "00:00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"sid\":\"%.31s\","
           "\"v\":1}",
           sid);
}
static void rec_v2(char *buf, size_t n, const char *sid) {
  snprintf(buf, n,
           "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2030-01-01T"
           "00:00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"sid\":\"%.31s\","
           "\"v\":2,\"pad\":\"%0200d\"}",
           sid, 7);
}
static const char TOUCH[] =
    "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2031-06-01T00:00:"
    "00.000Z\",\"httpOnly\":true,\"path\":\"/\"}}";

static int64_t far_expiry(void) { return csn_now_ms() + INT64_C(600000); }

/* ------------------------------------------------------------------------ */
/* The child                                                                */
/* ------------------------------------------------------------------------ */

static csn_store *child_store;
static int child_pipe;

static void report(char tag, const char *sid) {
  char line[64];
  int n = snprintf(line, sizeof line, "%c %s\n", tag, sid);
  if (write(child_pipe, line, (size_t)n) != n) _exit(3);
}

static void *child_thread(void *arg) {
  long t = (long)arg;
  char sid[32], prev[32] = "", a[512], b[512];
  for (long k = 0;; k++) {
    snprintf(sid, sizeof sid, "dk%ldx%ld", t, k);
    rec_v1(a, sizeof a, sid);
    rec_v2(b, sizeof b, sid);
    if (csn_store_set(child_store, sid, a, strlen(a), far_expiry()) != CSN_OK)
      _exit(4);
    if (csn_store_cas(child_store, sid, a, strlen(a), b, strlen(b),
                      far_expiry()) != CSN_OK)
      _exit(5);
    if (csn_store_touch(child_store, sid, TOUCH, strlen(TOUCH),
                        far_expiry()) != CSN_OK)
      _exit(6);
    report('A', sid);
    if (k % 4 == 3 && prev[0] != '\0') {
      /* Announced first: killed between the destroy and its report, the
       * session may be gone without a 'D'. */
      report('d', prev);
      if (csn_store_destroy(child_store, prev) != CSN_OK) _exit(7);
      report('D', prev);
    }
    memcpy(prev, sid, sizeof prev);
  }
  return NULL;
}

static void child(int fd) {
  char err[256] = "";
  child_pipe = fd;
  if (csn_store_open(url, &child_store, err, sizeof err) != CSN_OK) {
    fprintf(stderr, "child: open %s: %s\n", url, err);
    _exit(2);
  }
  pthread_t th[DK_THREADS];
  for (long i = 0; i < DK_THREADS; i++)
    if (pthread_create(&th[i], NULL, child_thread, (void *)i) != 0) _exit(8);
  for (;;) pause(); /* until SIGKILL */
}

/* ------------------------------------------------------------------------ */
/* The parent                                                               */
/* ------------------------------------------------------------------------ */

typedef struct ack {
  char sid[32];
  int destroyed; /* 1: destroy begun ('d'), 2: acknowledged ('D') */
} ack;

static ack acks[DK_MAX_IDS];
static size_t n_acks;

static ack *find(const char *sid) {
  for (size_t i = 0; i < n_acks; i++)
    if (strcmp(acks[i].sid, sid) == 0) return &acks[i];
  return NULL;
}

/* One report line. */
static void take(const char *line) {
  char tag = line[0];
  const char *sid = line + 2;
  assert_true((tag == 'A' || tag == 'D' || tag == 'd') && line[1] == ' ');
  assert_true(strlen(sid) < sizeof acks[0].sid);
  if (tag == 'A') {
    assert_null(find(sid)); /* each session is finished once */
    assert_true(n_acks < DK_MAX_IDS);
    snprintf(acks[n_acks].sid, sizeof acks[n_acks].sid, "%s", sid);
    acks[n_acks++].destroyed = 0;
  } else {
    ack *a = find(sid);
    assert_non_null(a); /* destroyed after it was reported finished */
    a->destroyed = tag == 'D' ? 2 : 1;
  }
}

static void durable_kill(void **state) {
  (void)state;
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(pfd[0]);
    child(pfd[1]);
  }
  close(pfd[1]);

  /* Read lines until enough, kill at once, then drain what was written. */
  char buf[8192], line[64];
  size_t ll = 0, lines = 0;
  int killed = 0;
  for (;;) {
    ssize_t r = read(pfd[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    assert_true(r >= 0);
    if (r == 0) break; /* every writer is dead */
    for (ssize_t i = 0; i < r; i++) {
      if (buf[i] != '\n') {
        assert_true(ll + 1 < sizeof line);
        line[ll++] = buf[i];
        continue;
      }
      line[ll] = '\0';
      ll = 0;
      take(line);
      if (++lines >= DK_ACKS && !killed) {
        kill(pid, SIGKILL);
        killed = 1;
      }
    }
  }
  close(pfd[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!killed || !WIFSIGNALED(status))
    fail_msg("the child ended by itself (status %d): it failed a save",
             status);
  assert_int_equal(WTERMSIG(status), SIGKILL);
  assert_true(n_acks >= DK_ACKS / 2);

  /* Reopen: every acknowledged save is there, exactly. */
  char err[256] = "";
  csn_store *st = NULL;
  assert_int_equal(csn_store_open(url, &st, err, sizeof err), CSN_OK);
  size_t present = 0, gone = 0;
  for (size_t i = 0; i < n_acks; i++) {
    char *json = NULL, v2[512];
    size_t len = 0;
    int rc = csn_store_get(st, acks[i].sid, &json, &len);
    if (acks[i].destroyed == 1 && rc == CSN_ENOENT) {
      gone++; /* the destroy was under way: either answer is right */
      csn_free(json);
      continue;
    }
    if (acks[i].destroyed == 2) {
      if (rc != CSN_ENOENT)
        fail_msg("%s: destroy was acknowledged, get says %s", acks[i].sid,
                 csn_strerror(rc));
      gone++;
      continue;
    }
    if (rc != CSN_OK)
      fail_msg("%s: save was acknowledged, get says %s (%s)", acks[i].sid,
               csn_strerror(rc), csn_store_errmsg(st));
    char *want = NULL;
    size_t wlen = 0;
    rec_v2(v2, sizeof v2, acks[i].sid);
    assert_int_equal(csn_record_splice_cookie(v2, strlen(v2), TOUCH,
                                              strlen(TOUCH), &want, &wlen),
                     CSN_OK);
    if (len != wlen || memcmp(json, want, len) != 0)
      fail_msg("%s: stored %.*s, acknowledged %s", acks[i].sid, (int)len,
               json, want);
    csn_free(want);
    csn_free(json);
    present++;
  }
  print_message("%s%s: %zu acknowledged sessions present, %zu acknowledged "
                "destroys kept\n",
                kind, query, present, gone);
  csn_store_free(st);
}

static int rm_tree(const char *dir) {
  char cmd[600];
  /* Only our own mkdtemp() directory. */
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "sqlite") != 0 &&
                   strcmp(argv[1], "file") != 0)) {
    fprintf(stderr, "usage: %s sqlite|file [?query]\n", argv[0]);
    return 2;
  }
  kind = argv[1];
  if (argc > 2) query = argv[2];
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/csn-durable-XXXXXX",
           tmp && tmp[0] ? tmp : "/tmp");
  if (mkdtemp(scratch) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  if (strcmp(kind, "sqlite") == 0)
    snprintf(url, sizeof url, "sqlite://%s/s.db%s%sprune=0", scratch, query,
             query[0] ? "&" : "?");
  else
    snprintf(url, sizeof url, "file://%s/files%s%sreap=0", scratch, query,
             query[0] ? "&" : "?");
  csn_stores_register_all();
  const struct CMUnitTest tests[] = {cmocka_unit_test(durable_kill)};
  int failed = cmocka_run_group_tests_name("durable_kill", tests, NULL, NULL);
  rm_tree(scratch);
  return failed;
}
