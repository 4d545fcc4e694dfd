/* FileStore: when a new session's save skips the directory fsync
 * (src/stores/file_dirsync.c), and when new sessions saved at once share
 * one syncfs (src/stores/file.c, share_fresh()). Syncs are counted by an
 * fsync() (and fdatasync(), sync_file_range(), syncfs()) of this
 * program's own, which the static library's calls resolve to; each
 * forwards every call to the kernel. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_store_file.h"
#include "stores/file_dirsync.h"

static atomic_int dir_fsyncs;
/* A file's own sync: with a cache flush (fsync, fdatasync), or a write-out
 * that leaves the flush to the directory fsync (sync_file_range). */
static atomic_int file_syncs, write_outs;

int fsync(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
    atomic_fetch_add(&dir_fsyncs, 1);
  else
    atomic_fetch_add(&file_syncs, 1);
  return (int)syscall(SYS_fsync, fd);
}

/* An fdatasync of an empty file is the store's bare cache flush (of its
 * lock file, which is never written); records are never empty. */
static atomic_int flushes;
/* Set to fail the next bare flush, or the next write-out, with EIO. */
static atomic_int fail_flush, fail_write_out;

int fdatasync(int fd) {
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size == 0) {
    atomic_fetch_add(&flushes, 1);
    if (atomic_exchange(&fail_flush, 0)) {
      errno = EIO;
      return -1;
    }
  } else {
    atomic_fetch_add(&file_syncs, 1);
  }
  return (int)syscall(SYS_fdatasync, fd);
}

#ifdef SYS_sync_file_range
#define COUNTS_WRITE_OUTS 1
int sync_file_range(int fd, off64_t offset, off64_t nbytes,
                    unsigned int flags) {
  atomic_fetch_add(&write_outs, 1);
  if (atomic_exchange(&fail_write_out, 0)) {
    errno = EIO;
    return -1;
  }
  return (int)syscall(SYS_sync_file_range, fd, offset, nbytes, flags);
}
#else
#define COUNTS_WRITE_OUTS 0
#endif

/* syncfs() calls; slow_syncfs_ms, when set, delays the next one;
 * all_slow_ms, while set, every one. */
static atomic_int syncfs_calls, slow_syncfs_ms, all_slow_ms;

int syncfs(int fd) {
  atomic_fetch_add(&syncfs_calls, 1);
  int ms = atomic_exchange(&slow_syncfs_ms, 0);
  if (ms == 0) ms = atomic_load(&all_slow_ms);
  if (ms > 0) usleep((useconds_t)ms * 1000);
  return (int)syscall(SYS_syncfs, fd);
}

static char root[256];
static unsigned ndirs;

static void new_dir_in(const char *base, char *buf, size_t size) {
  snprintf(buf, size, "%s/d%u", base, ndirs++);
  assert_int_equal(mkdir(buf, 0700), 0);
}

static csn_store *open_dir(const char *dir, const char *query) {
  char url[700], err[256] = "";
  csn_store *st = NULL;
  snprintf(url, sizeof url, "file://%s?reap=0%s", dir, query);
  int rc = csn_store_file_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", url, csn_strerror(rc), err);
  return st;
}

static const char REC[] =
    "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2030-01-01T00:00:"
    "00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"n\":1}";

/* Directory fsyncs made by `count` new sessions, then by their second
 * save (a replace). */
static void save_sessions(csn_store *st, int count, int *new_syncs,
                          int *replace_syncs) {
  char sid[64];
  atomic_store(&dir_fsyncs, 0);
  for (int i = 0; i < count; i++) {
    snprintf(sid, sizeof sid, "dirsync-session-%04d", i);
    assert_int_equal(csn_store_set(st, sid, REC, strlen(REC), CSN_TIME_NONE),
                     CSN_OK);
  }
  *new_syncs = atomic_load(&dir_fsyncs);
  atomic_store(&dir_fsyncs, 0);
  for (int i = 0; i < count; i++) {
    snprintf(sid, sizeof sid, "dirsync-session-%04d", i);
    assert_int_equal(csn_store_set(st, sid, REC, strlen(REC), CSN_TIME_NONE),
                     CSN_OK);
  }
  *replace_syncs = atomic_load(&dir_fsyncs);
}

static int dir_covered(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(fd >= 0);
  int c = csn__fdirsync_covered(fd);
  close(fd);
  return c;
}

/* A store on a new directory under base with the URL options `query`:
 * the directory fsyncs of save_sessions(). */
static void run_store(const char *base, const char *query, int count,
                      int *new_syncs, int *replace_syncs, int *covered) {
  char dir[512];
  new_dir_in(base, dir, sizeof dir);
  csn_store *st = open_dir(dir, query);
  save_sessions(st, count, new_syncs, replace_syncs);
  csn_store_free(st);
  if (covered != NULL) *covered = dir_covered(dir);
}

static void store_file_dirsync_mount_type(void **state) {
  (void)state;
  char t[16];
  assert_int_equal(csn__fdirsync_mount_type(
                       "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n",
                       254, 0, t, sizeof t),
                   1);
  assert_string_equal(t, "ext4");
  /* Another device. */
  assert_int_equal(csn__fdirsync_mount_type(
                       "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n", 254,
                       1, t, sizeof t),
                   0);
  assert_int_equal(csn__fdirsync_mount_type(
                       "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n", 8, 0,
                       t, sizeof t),
                   0);
  /* Optional fields before the separator, and a mount point whose
   * escaped spaces and dashes look like one. */
  assert_int_equal(csn__fdirsync_mount_type(
                       "36 35 8:17 / /mnt/a\\040-\\040b rw,noatime master:1 "
                       "shared:2 - xfs /dev/sdb1 rw,attr2\n",
                       8, 17, t, sizeof t),
                   1);
  assert_string_equal(t, "xfs");
  /* jbd2's names: a journal inside the file system, or elsewhere. */
  assert_int_equal(csn__fdirsync_journal_inside("vda", "vda-8"), 1);
  assert_int_equal(csn__fdirsync_journal_inside("sda1", "sda1-12"), 1);
  assert_int_equal(csn__fdirsync_journal_inside("sda1", "sdb1"), 0);
  assert_int_equal(csn__fdirsync_journal_inside("sda", "sda1-8"), 0);
  assert_int_equal(csn__fdirsync_journal_inside("vda", "vda-"), 0);
  assert_int_equal(csn__fdirsync_journal_inside("vda", "vda-8x"), 0);
  assert_int_equal(csn__fdirsync_journal_inside("", "-8"), 0);
  /* What does not parse, or does not fit, is no answer. */
  assert_int_equal(csn__fdirsync_mount_type("", 0, 0, t, sizeof t), 0);
  assert_int_equal(csn__fdirsync_mount_type("garbage", 0, 0, t, sizeof t), 0);
  assert_int_equal(csn__fdirsync_mount_type("1 2 3:4 / / rw no-separator", 3,
                                            4, t, sizeof t),
                   0);
  assert_int_equal(csn__fdirsync_mount_type("1 2 3:4 / / rw - ", 3, 4, t,
                                            sizeof t),
                   0);
  assert_int_equal(csn__fdirsync_mount_type(
                       "1 2 3:4 / / rw - averyveryverylongtype x rw", 3, 4, t,
                       sizeof t),
                   0);
}

/* The rule on a real directory (whatever its file system, as if covered):
 * no skip before a directory fsync has succeeded, skip while the size is
 * unchanged, no skip once the directory has grown. */
static void store_file_dirsync_growth(void **state) {
  (void)state;
  char dir[512], path[800];
  new_dir_in(root, dir, sizeof dir);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(fd >= 0);
  csn__fdirsync ds;
  csn__fdirsync_init(&ds, fd, 1);
  ds.covered = 1;
  assert_int_equal(csn__fdirsync_needed(&ds, fd), 1);
  int64_t size = csn__fdirsync_size(fd);
  assert_true(size >= 0);
  csn__fdirsync_done(&ds, size);
  assert_int_equal(csn__fdirsync_needed(&ds, fd), 0);
  /* Long names until the directory needs another block. */
  int grown = 0;
  for (int i = 0; i < 4000 && !grown; i++) {
    snprintf(path, sizeof path, "%s/%0200d", dir, i);
    int f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(f >= 0);
    close(f);
    grown = csn__fdirsync_size(fd) != size;
  }
  if (!grown) {
    close(fd);
    skip(); /* a file system whose directories report no size */
  }
  assert_int_equal(csn__fdirsync_needed(&ds, fd), 1);
  csn__fdirsync_done(&ds, csn__fdirsync_size(fd));
  assert_int_equal(csn__fdirsync_needed(&ds, fd), 0);
  /* A stale, smaller size never lowers what is known durable. */
  csn__fdirsync_done(&ds, size);
  assert_int_equal(csn__fdirsync_needed(&ds, fd), 0);
  /* Not covered: always needed. */
  ds.covered = 0;
  assert_int_equal(csn__fdirsync_needed(&ds, fd), 1);
  close(fd);
}

/* The store: on ext4 new sessions skip nearly every directory fsync (one
 * for the first save, one per growth of the directory), elsewhere or with
 * dirsync=always none does; a replace always fsyncs the directory. */
static void store_file_dirsync_saves(void **state) {
  (void)state;
  const int n = 30;
  int fresh = 0, replace = 0, covered = 0;

  run_store(root, "", n, &fresh, &replace, &covered);
  if (covered) {
    assert_in_range(fresh, 1, 3);
  } else {
    assert_int_equal(fresh, n);
  }
  assert_int_equal(replace, n);

  run_store(root, "&dirsync=always", n, &fresh, &replace, NULL);
  assert_int_equal(fresh, n);
  assert_int_equal(replace, n);

  /* No fsync at all stays no fsync. */
  run_store(root, "&fsync=0", n, &fresh, &replace, NULL);
  assert_int_equal(fresh + replace, 0);

  /* tmpfs is not ext4: every new session fsyncs the directory. */
  char shm[256];
  snprintf(shm, sizeof shm, "/dev/shm/csn-dirsync-XXXXXX");
  if (mkdtemp(shm) != NULL) {
    run_store(shm, "", 5, &fresh, &replace, &covered);
    assert_int_equal(covered, 0);
    assert_int_equal(fresh, 5);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", shm);
    assert_int_equal(system(cmd), 0);
  }
}

static const char LONGER[] =
    "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2030-01-01T00:00:"
    "00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"n\":12345}";

/* Saves of `count` sessions (already saved at least twice, so each has a
 * spare to rewrite) with record `rec`: the file syncs and write-outs. */
static void resave(csn_store *st, int count, const char *rec, int *syncs,
                   int *outs, int *dirs) {
  char sid[64];
  atomic_store(&flushes, 0);
  atomic_store(&file_syncs, 0);
  atomic_store(&write_outs, 0);
  atomic_store(&dir_fsyncs, 0);
  for (int i = 0; i < count; i++) {
    snprintf(sid, sizeof sid, "dirsync-session-%04d", i);
    assert_int_equal(csn_store_set(st, sid, rec, strlen(rec), CSN_TIME_NONE),
                     CSN_OK);
  }
  *syncs = atomic_load(&file_syncs);
  *outs = atomic_load(&write_outs);
  *dirs = atomic_load(&dir_fsyncs);
}

/* A spare rewritten at its own size on ext4 is written out without a
 * cache flush of its own (the directory fsync after the swap flushes);
 * a size change, or dirsync=always, takes an fdatasync. Every rewrite
 * still fsyncs the directory, and reads back what was saved. */
static void store_file_dirsync_rewrites(void **state) {
  (void)state;
  if (!COUNTS_WRITE_OUTS) skip();
  const int n = 20;
  const char *queries[] = {"", "&dirsync=always"};
  for (int q = 0; q < 2; q++) {
    char dir[512];
    int fresh = 0, replace = 0, syncs = 0, outs = 0, dirs = 0;
    new_dir_in(root, dir, sizeof dir);
    csn_store *st = open_dir(dir, queries[q]);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    int journal = csn__fdirsync_journal(fd);
    int shortcut = q == 0 && journal >= 0;
    /* Without a journal a flush of their own (shared by the rewrites in
     * flight: here one at a time) comes before the swap. */
    int own_flush = shortcut && journal == CSN_FDIRSYNC_NOJOURNAL;
    close(fd);
    /* On ext4 with sysfs the journal must be recognised, or the shortcut
     * would go untested here (only a journal on another device, which no
     * test machine of ours has, is rightly left out). */
    if (dir_covered(dir) && access("/sys/fs/ext4", R_OK) == 0)
      assert_true(journal >= 0);
    save_sessions(st, n, &fresh, &replace); /* each now has a spare */

    resave(st, n, REC, &syncs, &outs, &dirs);
    assert_int_equal(outs, shortcut ? n : 0);
    assert_int_equal(syncs, shortcut ? 0 : n);
    assert_int_equal(atomic_load(&flushes), own_flush ? n : 0);
    assert_int_equal(dirs, n);

    /* Longer twice (the spare is the shorter version both times), then
     * shorter: each changes the rewritten file's size, which only a sync
     * with its inode makes durable. */
    for (int k = 0; k < 3; k++) {
      resave(st, n, k < 2 ? LONGER : REC, &syncs, &outs, &dirs);
      assert_int_equal(outs, 0);
      assert_int_equal(syncs, n);
      assert_int_equal(atomic_load(&flushes), 0);
      assert_int_equal(dirs, n);
    }

    char *got = NULL;
    size_t len = 0;
    assert_int_equal(csn_store_get(st, "dirsync-session-0007", &got, &len),
                     CSN_OK);
    assert_non_null(strstr(got, "\"n\":1}"));
    csn_free(got);
    csn_store_free(st);
  }
}

/* The text get() returns for sid. */
static char *get_text(csn_store *st, const char *sid) {
  char *got = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &got, &len), CSN_OK);
  return got;
}

/* A save of rec with a failure armed in *armed: it must reach that
 * failure, return CSN_EIO with a message naming `what`, and leave the
 * session as `before`. */
static void save_fails(csn_store *st, const char *sid, const char *rec,
                       atomic_int *armed, const char *what,
                       const char *before) {
  assert_int_equal(csn_store_set(st, sid, rec, strlen(rec), CSN_TIME_NONE),
                   CSN_EIO);
  assert_int_equal(atomic_load(armed), 0); /* the failure was hit */
  assert_non_null(strstr(csn_store_errmsg(st), what));
  char *now = get_text(st, sid);
  assert_string_equal(now, before);
  csn_free(now);
}

/* A rewrite whose write-out or shared flush fails is reported, and the
 * session keeps the version saved before it (nothing was swapped in); the
 * next save works. */
static void store_file_dirsync_rewrite_fails(void **state) {
  (void)state;
  if (!COUNTS_WRITE_OUTS) skip();
  char dir[512];
  new_dir_in(root, dir, sizeof dir);
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(fd >= 0);
  int journal = csn__fdirsync_journal(fd);
  close(fd);
  if (journal < 0) skip(); /* not ext4: rewrites keep their fdatasync */
  csn_store *st = open_dir(dir, "");
  const char *sid = "dirsync-session-0000";
  int fresh = 0, replace = 0;
  save_sessions(st, 1, &fresh, &replace); /* REC twice: a spare now */
  char *before = get_text(st, sid);
  const char *same_size =
      "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2030-01-01T00:00:"
      "00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"n\":2}";
  assert_int_equal(strlen(same_size), strlen(REC));

  atomic_store(&fail_write_out, 1);
  save_fails(st, sid, same_size, &fail_write_out, "fsync", before);
  /* With a journal there is no flush of its own to fail. */
  if (journal == CSN_FDIRSYNC_NOJOURNAL) {
    atomic_store(&fail_flush, 1);
    save_fails(st, sid, same_size, &fail_flush, "flush", before);
  }
  assert_int_equal(
      csn_store_set(st, sid, same_size, strlen(same_size), CSN_TIME_NONE),
      CSN_OK);
  char *after = get_text(st, sid);
  assert_non_null(strstr(after, "\"n\":2"));
  csn_free(after);
  csn_free(before);
  csn_store_free(st);
}

static void store_file_dirsync_bad_option(void **state) {
  (void)state;
  char url[400], err[256] = "";
  csn_store *st = NULL;
  snprintf(url, sizeof url, "file://%s/bad?dirsync=sometimes", root);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_EINVAL);
  assert_null(st);
  assert_non_null(strstr(err, "'dirsync'"));
}

/* New sessions saved by several threads at once (a barrier starts each
 * round), as an HTTP server's workers do. */
#define BURST_THREADS 8
static csn_store *burst_store;
static pthread_barrier_t burst_bar;
static int burst_rounds;
static atomic_int burst_round0; /* rounds before this burst: unique ids */
static int burst_mixed;         /* rewrites and destroys among the saves */

static void burst_sid(char *buf, size_t n, long t, int round) {
  snprintf(buf, n, "burst-%ld-%04d", t, round);
}

/* Version k of that session's record (one size for every k). */
static void burst_rec(char *buf, size_t n, long t, int round, int k) {
  snprintf(buf, n, "{\"cookie\":{},\"t\":%ld,\"r\":%d,\"k\":%d}", t, round,
           k);
}

/* The store's message (errors are per thread) for the main thread's
 * failure. */
static void *burst_fail(const char *sid, int rc) {
  print_error("%s: %s: %s\n", sid, csn_strerror(rc),
              csn_store_errmsg(burst_store));
  return (void *)1;
}

/* Save version k of session (t, round); 0 or the burst_fail(). */
static void *burst_save(long t, int round, int k) {
  char sid[64], rec[200];
  burst_sid(sid, sizeof sid, t, round);
  burst_rec(rec, sizeof rec, t, round, k);
  int rc = csn_store_set(burst_store, sid, rec, strlen(rec), CSN_TIME_NONE);
  return rc != 0 ? burst_fail(sid, rc) : NULL;
}

/* Each round saves a new session. Mixed, it also rewrites the one of the
 * round before twice at one size, the second time reusing the first
 * version's file as its spare (a swap for the group's leader to make
 * after its flush), and destroys an older one. The second rewrites of
 * half the threads start with the new saves of the others, so that groups
 * hold both. */
static void *burst_worker(void *arg) {
  long t = (long)arg;
  void *err = NULL;
  /* After a failure, on to the barriers only: the others wait there. */
  for (int i = 0; i < burst_rounds; i++) {
    int r = atomic_load(&burst_round0) + i;
    int mixed = burst_mixed && r >= 2 && err == NULL;
    if (mixed) err = burst_save(t, r - 1, 1);
    if (err == NULL && mixed && r % 3 == 0) {
      char sid[64];
      burst_sid(sid, sizeof sid, t, r - 2);
      int rc = csn_store_destroy(burst_store, sid);
      if (rc != 0) err = burst_fail(sid, rc);
    }
    pthread_barrier_wait(&burst_bar);
    if (err == NULL && mixed && t % 2 == 1) err = burst_save(t, r - 1, 2);
    if (err == NULL) err = burst_save(t, r, 0);
    if (err == NULL && mixed && t % 2 == 0) err = burst_save(t, r - 1, 2);
  }
  return err;
}

/* `rounds` rounds of BURST_THREADS saves of new sessions. */
static void burst(int rounds, int mixed) {
  pthread_t th[BURST_THREADS];
  burst_rounds = rounds;
  burst_mixed = mixed;
  assert_int_equal(pthread_barrier_init(&burst_bar, NULL, BURST_THREADS), 0);
  for (long t = 0; t < BURST_THREADS; t++)
    assert_int_equal(pthread_create(&th[t], NULL, burst_worker, (void *)t), 0);
  for (int t = 0; t < BURST_THREADS; t++) {
    void *r = NULL;
    pthread_join(th[t], &r);
    assert_null(r);
  }
  pthread_barrier_destroy(&burst_bar);
  atomic_fetch_add(&burst_round0, rounds);
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

static void sleep_until(int64_t t) {
  while (csn_mono_ms() < t) usleep(10000);
}

/* Bursts until a syncfs that takes 400 ms (over FILE_FRESH_SLOW_MS)
 * happened; returns the time just after. */
static int64_t slow_burst(void) {
  atomic_store(&slow_syncfs_ms, 400);
  for (int k = 0; k < 50 && atomic_load(&slow_syncfs_ms) != 0; k++)
    burst(1, 0);
  assert_int_equal(atomic_load(&slow_syncfs_ms), 0);
  return csn_mono_ms();
}

/* Bursts until more than `calls` syncfs calls were made; returns the time
 * just after. */
static int64_t bursts_to_syncfs(int calls) {
  for (int k = 0; k < 50 && atomic_load(&syncfs_calls) <= calls; k++)
    burst(1, 0);
  assert_true(atomic_load(&syncfs_calls) > calls);
  return csn_mono_ms();
}

/* The pause after n slow syncfs calls in a row (file.c). */
static int64_t pause_after(int n) {
  int64_t ms = 1000;
  while (--n > 0 && ms < 30000) ms *= 2;
  return ms < 30000 ? ms : 30000;
}

/* `at` ms after t, new files are fsynced alone. */
static void unshared_burst(int64_t t, int at) {
  sleep_until(t + at);
  atomic_store(&syncfs_calls, 0);
  atomic_store(&file_syncs, 0);
  burst(3, 0);
  assert_int_equal(atomic_load(&syncfs_calls), 0);
  assert_int_equal(atomic_load(&file_syncs), 3 * BURST_THREADS);
}

/* `at` ms after t, new files share syncs again. */
static void shared_burst(int64_t t, int at) {
  sleep_until(t + at);
  atomic_store(&syncfs_calls, 0);
  burst(20, 0);
  assert_true(atomic_load(&syncfs_calls) >= 1);
}

/* On ext4 without a journal, new sessions saved at once share a syncfs
 * (and one flush) instead of an fsync each; a lone one keeps its fsync;
 * elsewhere every new file has its own. Mixed with rewrites and destroys,
 * every session reads back as saved and no descriptor is left open. A
 * syncfs slower than FILE_FRESH_SLOW_MS puts writers back on their own
 * fsyncs for a second, and for twice as long when the next one is slow
 * too. */
static void store_file_dirsync_shared_new(void **state) {
  (void)state;
  char dir[512];
  new_dir_in(root, dir, sizeof dir);
  csn_store *st = open_dir(dir, "");
  burst_store = st;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(fd >= 0);
  int shared = csn__fdirsync_journal(fd) == CSN_FDIRSYNC_NOJOURNAL;
  close(fd);
  int fds = open_fds();

  const int rounds = 20, n = rounds * BURST_THREADS;
  atomic_store(&syncfs_calls, 0);
  atomic_store(&file_syncs, 0);
  burst(rounds, 0);
  int sfs = atomic_load(&syncfs_calls), own = atomic_load(&file_syncs);
  if (shared) {
    /* Each new file is in exactly one sync: its own fsync or a syncfs of
     * at least two. */
    assert_true(sfs >= 1);
    assert_true(own + 2 * sfs <= n);
  } else {
    assert_int_equal(sfs, 0);
    assert_int_equal(own, n);
  }

  burst(rounds, 1);
  char sid[64], want[100];
  for (long t = 0; t < BURST_THREADS; t++)
    for (int r = 0; r < 2 * rounds; r++) {
      burst_sid(sid, sizeof sid, t, r);
      char *json = NULL;
      size_t len = 0;
      int rc = csn_store_get(st, sid, &json, &len);
      /* Destroyed by round r + 2 of the mixed burst. */
      int gone = r + 2 >= rounds && r + 2 < 2 * rounds && (r + 2) % 3 == 0;
      if (gone) {
        assert_int_equal(rc, CSN_ENOENT);
        continue;
      }
      assert_int_equal(rc, CSN_OK);
      /* Rewritten by round r + 1 of the mixed burst. */
      int k = r + 1 >= rounds && r + 1 < 2 * rounds ? 2 : 0;
      burst_rec(want, sizeof want, t, r, k);
      assert_string_equal(json, want);
      csn_free(json);
    }
  assert_int_equal(open_fds(), fds);

  if (shared) {
    /* A slow syncfs (a neighbour's backlog): new files are fsynced for a
     * second; then shared again. */
    int64_t t = slow_burst();
    unshared_burst(t, 500);
    shared_burst(t, 1100);
    /* While every syncfs is slow, each pause is twice the last. */
    atomic_store(&all_slow_ms, 400);
    atomic_store(&syncfs_calls, 0);
    t = bursts_to_syncfs(0);
    int slow = atomic_load(&syncfs_calls); /* one or more, in a row */
    int64_t first = pause_after(slow);
    sleep_until(t + first + 100);
    t = bursts_to_syncfs(slow);
    int64_t second = pause_after(atomic_load(&syncfs_calls));
    unshared_burst(t, (int)(first + first / 2));
    atomic_store(&all_slow_ms, 0);
    shared_burst(t, (int)second + 100);
  }
  csn_store_free(st);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-dirsync-XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_file_dirsync_mount_type),
      cmocka_unit_test(store_file_dirsync_growth),
      cmocka_unit_test(store_file_dirsync_saves),
      cmocka_unit_test(store_file_dirsync_rewrites),
      cmocka_unit_test(store_file_dirsync_rewrite_fails),
      cmocka_unit_test(store_file_dirsync_bad_option),
      cmocka_unit_test(store_file_dirsync_shared_new),
  };
  int failed = cmocka_run_group_tests_name("store_file_dirsync", tests, NULL,
                                           NULL);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) failed++;
  return failed;
}
