/* test_store_file.c - FileStore: the shared conformance suite, the
 * session-file-store layout and expiry rule, corrupt files, permission
 * faults and a kill -9 in the middle of a write burst. Everything runs on
 * real directories under $TMPDIR (or /tmp). */
/* nftw() is an XSI interface. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "csn/csn.h"
#include "csn/csn_store_file.h"
#include "csn_int.h"
#ifdef CSN_HAVE_CONFORMANCE
#include "store_conformance.h"
#endif

static const char REC[] =
    "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00."
    "000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":3}";

/* ------------------------------------------------------------------------ */
/* Scratch directories                                                      */
/* ------------------------------------------------------------------------ */

static char root[256];

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw) {
  (void)sb, (void)ftw;
  /* Never chmod through a symlink: a test plants one pointing at a system
   * file, and chmod follows links. Only directories need the bit back. */
  if (flag == FTW_DP || flag == FTW_D)
    chmod(p, 0700);
  return remove(p);
}

static void rm_rf(const char *dir) {
  chmod(dir, 0700);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new empty directory under root. */
static void new_dir(char *buf, size_t size) {
  static unsigned n;
  snprintf(buf, size, "%s/d%u", root, n++);
  assert_int_equal(mkdir(buf, 0755), 0);
}

static csn_store *open_dir(const char *dir, const char *query) {
  char url[1024], err[256] = "";
  csn_store *st = NULL;
  snprintf(url, sizeof url, "file://%s%s", dir, query ? query : "");
  int rc = csn_store_file_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", url, csn_strerror(rc), err);
  return st;
}

static void write_raw(const char *dir, const char *name, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static char *read_raw(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  if (f == NULL) return NULL;
  static char buf[65536];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static int file_exists(const char *dir, const char *name) {
  char path[1024];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &st) == 0;
}

/* Run fn(arg) in a child process that cannot write `dir`: as root, the
 * child drops to "nobody" (root ignores permission bits); otherwise the
 * directory is made read-only. The child's exit status is the result. */
static int as_unprivileged(const char *dir, mode_t mode, int (*fn)(void *),
                           void *arg) {
  int root_user = geteuid() == 0;
  if (!root_user) assert_int_equal(chmod(dir, mode), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (root_user && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
    _exit(fn(arg));
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!root_user) chmod(dir, 0755);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* ------------------------------------------------------------------------ */
/* Conformance                                                              */
/* ------------------------------------------------------------------------ */

#ifdef CSN_HAVE_CONFORMANCE
static csn_store *conf_open(void *ud) {
  char dir[300];
  (void)ud;
  new_dir(dir, sizeof dir);
  /* reap=0: no reaper thread, the suite checks expiry on read. */
  return open_dir(dir, "?reap=0");
}
#endif

/* ------------------------------------------------------------------------ */
/* Layout and round trips                                                   */
/* ------------------------------------------------------------------------ */

static void store_file_layout(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0");
  int64_t before = csn__now_ms();
  assert_int_equal(csn_store_set(st, "abc", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  /* <dir>/<id>.json holds the record with __lastAccess appended, compact,
   * no newline: what session-file-store writes. */
  char *raw = read_raw(dir, "abc.json");
  assert_non_null(raw);
  size_t reclen = strlen(REC);
  assert_memory_equal(raw, REC, reclen - 1);
  long long stamp = 0;
  assert_int_equal(sscanf(raw + reclen - 1, ",\"__lastAccess\":%lld}", &stamp),
                   1);
  assert_true(stamp >= before && stamp <= csn__now_ms());
  assert_int_equal(raw[strlen(raw) - 1], '}');

  /* get hands back exactly what was set (no bookkeeping member). */
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, "abc", &json, &len), CSN_OK);
  assert_string_equal(json, REC);
  assert_int_equal(len, reclen);
  csn_free(json);

  /* No temporary file is left behind. */
  size_t count = 0;
  DIR *d = opendir(dir);
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] != '.') count++;
  closedir(d);
  assert_int_equal(count, 1);

  assert_int_equal(csn_store_length(st, &count), CSN_OK);
  assert_int_equal(count, 1);
  assert_int_equal(csn_store_destroy(st, "abc"), CSN_OK);
  assert_false(file_exists(dir, "abc.json"));
  assert_int_equal(csn_store_destroy(st, "abc"), CSN_OK);
  assert_int_equal(csn_store_get(st, "abc", &json, &len), CSN_ENOENT);
  csn_store_free(st);
}

static void store_file_ext_option(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0&ext=.sess");
  assert_int_equal(csn_store_set(st, "x1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  assert_true(file_exists(dir, "x1.sess"));
  /* Files without the extension are not sessions. */
  write_raw(dir, "notes.txt", "hello");
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_true(file_exists(dir, "notes.txt"));
  assert_false(file_exists(dir, "x1.sess"));
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* Expiry: __lastAccess + (originalMaxAge || ttl) < now                     */
/* ------------------------------------------------------------------------ */

static void store_file_expiry_rule(void **state) {
  (void)state;
  char dir[300], text[512];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0&ttl=10");
  int64_t now = csn__now_ms();
  char *json = NULL;
  size_t len;

  /* originalMaxAge 60 s, last access 59 s ago: live; 61 s ago: expired,
   * whatever cookie.expires says. */
  snprintf(text, sizeof text,
           "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2099-01-01T00:"
           "00:00.000Z\"},\"__lastAccess\":%lld}",
           (long long)(now - 59000));
  write_raw(dir, "live.json", text);
  snprintf(text, sizeof text,
           "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2099-01-01T00:"
           "00:00.000Z\"},\"__lastAccess\":%lld}",
           (long long)(now - 61000));
  write_raw(dir, "old.json", text);
  /* No originalMaxAge: ttl (10 s) applies. */
  snprintf(text, sizeof text,
           "{\"cookie\":{\"originalMaxAge\":null},\"__lastAccess\":%lld}",
           (long long)(now - 11000));
  write_raw(dir, "ttl.json", text);

  assert_int_equal(csn_store_get(st, "live", &json, &len), CSN_OK);
  assert_null(strstr(json, "__lastAccess"));
  csn_free(json);
  assert_int_equal(csn_store_get(st, "old", &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_get(st, "ttl", &json, &len), CSN_ENOENT);
  /* An expired file stays until reaped; length counts live records. */
  assert_true(file_exists(dir, "old.json"));
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);

  size_t removed = 0;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 2);
  assert_false(file_exists(dir, "old.json"));
  assert_true(file_exists(dir, "live.json"));
  csn_store_free(st);
}

/* The reaper thread removes expired files on its own, and close() stops it
 * at once even with a long interval. */
static void store_file_reaper_thread(void **state) {
  (void)state;
  char dir[300], text[256];
  new_dir(dir, sizeof dir);
  snprintf(text, sizeof text,
           "{\"cookie\":{\"originalMaxAge\":1000},\"__lastAccess\":%lld}",
           (long long)(csn__now_ms() - 5000));
  for (int i = 0; i < 30; i++) {
    char name[32];
    snprintf(name, sizeof name, "old%d.json", i);
    write_raw(dir, name, text);
  }
  csn_file_options o = {0};
  o.dir = dir;
  o.reap_interval_ms = 50;
  o.reap_batch = 7; /* several steps per pass */
  csn_store *st = NULL;
  assert_int_equal(csn_store_file_new(&o, &st, NULL, 0), CSN_OK);
  size_t n = 1;
  for (int i = 0; i < 200 && n != 0; i++) {
    usleep(20000);
    assert_int_equal(csn_store_length(st, &n), CSN_OK);
  }
  assert_int_equal(n, 0);
  csn_store_free(st);

  o.reap_interval_ms = 3600000;
  assert_int_equal(csn_store_file_new(&o, &st, NULL, 0), CSN_OK);
  int64_t t0 = csn__now_ms();
  csn_store_free(st);
  assert_true(csn__now_ms() - t0 < 1000);
}

/* ------------------------------------------------------------------------ */
/* touch: re-read, replace the cookie, restamp                              */
/* ------------------------------------------------------------------------ */

static void store_file_touch_rereads(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0");
  /* Another process wrote newer data; our touch carries stale data and a
   * new cookie: the stored data must survive, the cookie must change. */
  write_raw(dir, "t.json",
            "{\"cookie\":{\"originalMaxAge\":60000},\"views\":9,"
            "\"__lastAccess\":1}");
  const char *mine =
      "{\"cookie\":{\"originalMaxAge\":120000,\"path\":\"/\"},\"views\":1}";
  /* __lastAccess 1 is long expired: touch restarts from {cookie}. */
  assert_int_equal(csn_store_touch(st, "t", mine, strlen(mine), CSN_TIME_NONE),
                   CSN_OK);
  char *json = NULL;
  size_t len;
  assert_int_equal(csn_store_get(st, "t", &json, &len), CSN_OK);
  assert_string_equal(json, "{\"cookie\":{\"originalMaxAge\":120000,\"path\":"
                            "\"/\"}}");
  csn_free(json);

  char text[256];
  snprintf(text, sizeof text,
           "{\"cookie\":{\"originalMaxAge\":60000},\"views\":9,"
           "\"__lastAccess\":%lld}",
           (long long)csn__now_ms());
  write_raw(dir, "t.json", text);
  assert_int_equal(csn_store_touch(st, "t", mine, strlen(mine), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(csn_store_get(st, "t", &json, &len), CSN_OK);
  assert_string_equal(json, "{\"cookie\":{\"originalMaxAge\":120000,\"path\":"
                            "\"/\"},\"views\":9}");
  csn_free(json);

  /* Touching a missing session is not an error and creates nothing. */
  assert_int_equal(
      csn_store_touch(st, "nope", mine, strlen(mine), CSN_TIME_NONE), CSN_OK);
  assert_false(file_exists(dir, "nope.json"));
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* Hostile input                                                            */
/* ------------------------------------------------------------------------ */

static void store_file_bad_ids(void **state) {
  (void)state;
  char dir[300], inner[400];
  new_dir(dir, sizeof dir);
  snprintf(inner, sizeof inner, "%s/inner", dir);
  assert_int_equal(mkdir(inner, 0755), 0);
  csn_store *st = open_dir(inner, "?reap=0");
  static const char *const bad[] = {"../x", "a/b", "..", ".", "", "a\\b",
                                    "a\nb"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(
        csn_store_set(st, bad[i], REC, strlen(REC), CSN_TIME_NONE),
        CSN_EINVAL);
    assert_int_equal(csn_store_destroy(st, bad[i]), CSN_EINVAL);
  }
  assert_false(file_exists(dir, "x.json"));
  char longid[CSN_ID_MAX + 2];
  memset(longid, 'a', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  assert_int_equal(csn_store_set(st, longid, REC, strlen(REC), CSN_TIME_NONE),
                   CSN_EINVAL);
  /* Not JSON, or not an object: refused, nothing written. */
  assert_int_equal(csn_store_set(st, "ok", "[1]", 3, CSN_TIME_NONE),
                   CSN_EINVAL);
  assert_int_equal(csn_store_set(st, "ok", "{", 1, CSN_TIME_NONE), CSN_EINVAL);
  assert_false(file_exists(inner, "ok.json"));
  csn_store_free(st);
}

static void store_file_corrupt(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0");
  write_raw(dir, "bad.json", "{\"cookie\":{\"originalMaxAge\":600");
  write_raw(dir, "arr.json", "[1,2,3]");
  char *json = NULL;
  size_t len = 0;
  /* Reported, treated as not found, left in place for inspection. */
  assert_int_equal(csn_store_get(st, "bad", &json, &len), CSN_ENOENT);
  assert_non_null(strstr(csn_store_errmsg(st), "corrupt"));
  assert_int_equal(csn_store_get(st, "arr", &json, &len), CSN_ENOENT);
  assert_non_null(strstr(csn_store_errmsg(st), "corrupt"));
  assert_true(file_exists(dir, "bad.json"));
  /* all() skips it; set() replaces it. */
  assert_int_equal(csn_store_set(st, "bad", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(csn_store_get(st, "bad", &json, &len), CSN_OK);
  assert_string_equal(json, REC);
  csn_free(json);
  /* A directory or a symlink under a session name is not followed. */
  char sub[400];
  snprintf(sub, sizeof sub, "%s/sub.json", dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(csn_store_get(st, "sub", &json, &len), CSN_ENOENT);
  char link[400];
  snprintf(link, sizeof link, "%s/ln.json", dir);
  assert_int_equal(symlink("/etc/passwd", link), 0);
  assert_int_equal(csn_store_get(st, "ln", &json, &len), CSN_ENOENT);
  csn_store_free(st);
}

static void store_file_url(void **state) {
  (void)state;
  char err[256] = "";
  csn_store *st = NULL;
  /* secret= is supported now (tests/test_store_file_crypt.c); an empty
   * one is refused. */
  assert_int_equal(csn_store_file_open("file:///tmp/x?secret=", &st, err,
                                       sizeof err),
                   CSN_EINVAL);
  assert_null(st);
  assert_non_null(strstr(err, "secret"));
  assert_int_equal(
      csn_store_file_open("file:///tmp/x?bogus=1", &st, err, sizeof err),
      CSN_EINVAL);
  assert_int_equal(
      csn_store_file_open("file:///tmp/x?ttl=abc", &st, err, sizeof err),
      CSN_EINVAL);
  assert_int_equal(csn_store_file_open("redis://x", &st, err, sizeof err),
                   CSN_EINVAL);
  /* csn_store_open() knows the scheme, relative paths included. */
  char dir[300], cwd[512], url[600];
  new_dir(dir, sizeof dir);
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(dir), 0);
  assert_int_equal(csn_store_open("file://./rel?reap=0", &st, err, sizeof err),
                   CSN_OK);
  assert_string_equal(csn_store_name(st), "file");
  assert_int_equal(csn_store_set(st, "r", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  csn_store_free(st);
  assert_int_equal(chdir(cwd), 0);
  snprintf(url, sizeof url, "%s/rel", dir);
  assert_true(file_exists(url, "r.json"));
}

/* An id too long for a file name is stored under its hash, and all()
 * still reports the real id. */
static int long_seen;
static int long_each(const char *sid, const char *json, size_t len, void *ud) {
  (void)ud;
  if (strlen(sid) == CSN_ID_MAX && len == strlen(REC) &&
      memcmp(json, REC, len) == 0)
    long_seen++;
  return 0;
}

static void store_file_long_id(void **state) {
  (void)state;
  char dir[300], id[CSN_ID_MAX + 1];
  new_dir(dir, sizeof dir);
  memset(id, 'L', CSN_ID_MAX);
  id[CSN_ID_MAX] = '\0';
  csn_store *st = open_dir(dir, "?reap=0");
  assert_int_equal(csn_store_set(st, id, REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  DIR *d = opendir(dir);
  struct dirent *de;
  int hashed = 0;
  while ((de = readdir(d)) != NULL)
    if (de->d_name[0] == '~' && strlen(de->d_name) == 1 + 64 + 5) hashed++;
  closedir(d);
  assert_int_equal(hashed, 1);
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, id, &json, &len), CSN_OK);
  assert_string_equal(json, REC);
  csn_free(json);
  long_seen = 0;
  assert_int_equal(csn_store_all(st, long_each, NULL), CSN_OK);
  assert_int_equal(long_seen, 1);
  assert_int_equal(csn_store_destroy(st, id), CSN_OK);
  size_t n = 1;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

static const char *fault_dir;

/* In the unprivileged child: the old record reads back, a write fails with
 * an error message, and the old record is still there afterwards. */
static int readonly_child(void *arg) {
  (void)arg;
  csn_store *st = NULL;
  char url[1024], err[256];
  snprintf(url, sizeof url, "file://%s?reap=0", fault_dir);
  if (csn_store_file_open(url, &st, err, sizeof err) != CSN_OK) return 10;
  char *json = NULL;
  size_t len = 0;
  if (csn_store_get(st, "keep", &json, &len) != CSN_OK) return 11;
  if (strcmp(json, REC) != 0) return 12;
  csn_free(json);
  const char *nw = "{\"cookie\":{},\"views\":99}";
  if (csn_store_set(st, "keep", nw, strlen(nw), CSN_TIME_NONE) != CSN_EIO)
    return 13;
  if (strstr(csn_store_errmsg(st), "cannot") == NULL) return 14;
  if (csn_store_get(st, "keep", &json, &len) != CSN_OK) return 15;
  if (strcmp(json, REC) != 0) return 16;
  csn_free(json);
  if (csn_store_set(st, "new", nw, strlen(nw), CSN_TIME_NONE) != CSN_EIO)
    return 17;
  csn_store_free(st);
  return 0;
}

static void store_file_readonly_dir(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0");
  assert_int_equal(csn_store_set(st, "keep", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  csn_store_free(st);
  char path[400];
  snprintf(path, sizeof path, "%s/keep.json", dir);
  assert_int_equal(chmod(path, 0644), 0); /* readable by the child */
  fault_dir = dir;
  assert_int_equal(as_unprivileged(dir, 0555, readonly_child, NULL), 0);
  assert_false(file_exists(dir, "new.json"));
}

static int unreadable_child(void *arg) {
  (void)arg;
  csn_store *st = NULL;
  char url[1024], err[256] = "";
  snprintf(url, sizeof url, "file://%s?reap=0", fault_dir);
  int rc = csn_store_file_open(url, &st, err, sizeof err);
  if (rc != CSN_EIO || st != NULL) return 20;
  if (strstr(err, fault_dir) == NULL) return 21;
  return 0;
}

static void store_file_unreadable_dir(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  assert_int_equal(chmod(dir, 0700), 0); /* owner only */
  fault_dir = dir;
  assert_int_equal(as_unprivileged(dir, 0000, unreadable_child, NULL), 0);
}

/* kill -9 during a write burst: every file that was completely written
 * before the kill (and every other file) still parses as a whole record. */
static void store_file_kill9_burst(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(pfd[0]);
    csn_store *st = open_dir(dir, "?reap=0");
    /* A big record makes each write take a while, so the kill lands inside
     * one. Ids cycle so files are also overwritten in place. */
    char *big = malloc(200000);
    if (big == NULL) _exit(1);
    for (unsigned long i = 0;; i++) {
      char sid[32];
      int n = snprintf(big, 200000, "{\"cookie\":{},\"n\":%lu,\"pad\":\"", i);
      memset(big + n, 'x', 150000);
      strcpy(big + n + 150000, "\"}");
      snprintf(sid, sizeof sid, "s%lu", i % 50);
      if (csn_store_set(st, sid, big, strlen(big), CSN_TIME_NONE) != CSN_OK)
        _exit(2);
      /* Tell the parent this one is complete. */
      if (write(pfd[1], &i, sizeof i) != (ssize_t)sizeof i) _exit(3);
    }
  }
  close(pfd[1]);
  unsigned long done = 0, v;
  while (done < 120 && read(pfd[0], &v, sizeof v) == (ssize_t)sizeof v)
    done = v + 1;
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  close(pfd[0]);
  assert_true(WIFSIGNALED(status));
  assert_true(done >= 120);

  csn_store *st = open_dir(dir, "?reap=0");
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 50);
  for (int i = 0; i < 50; i++) {
    char sid[16];
    char *json = NULL;
    size_t len = 0;
    snprintf(sid, sizeof sid, "s%d", i);
    assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
    json_t *o = json_loadb(json, len, 0, NULL);
    assert_non_null(o);
    assert_int_equal(strlen(json_string_value(json_object_get(o, "pad"))),
                     150000);
    json_decref(o);
    csn_free(json);
  }
  csn_store_free(st);
}

/* Several threads hammer overlapping ids: no error, every file whole. */
#include <pthread.h>
static csn_store *mt_store;
static void *mt_worker(void *arg) {
  long t = (long)arg;
  char rec[128], sid[16];
  for (int i = 0; i < 200; i++) {
    snprintf(sid, sizeof sid, "m%d", i % 10);
    snprintf(rec, sizeof rec, "{\"cookie\":{},\"t\":%ld,\"i\":%d}", t, i);
    if (csn_store_set(mt_store, sid, rec, strlen(rec), CSN_TIME_NONE) != 0)
      return (void *)1;
    if (i % 3 == 0 &&
        csn_store_touch(mt_store, sid, rec, strlen(rec), CSN_TIME_NONE) != 0)
      return (void *)1;
    char *json = NULL;
    size_t len;
    int rc = csn_store_get(mt_store, sid, &json, &len);
    if (rc != CSN_OK) return (void *)1;
    csn_free(json);
  }
  return NULL;
}

static void store_file_threads(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  mt_store = open_dir(dir, "?reap=0");
  pthread_t th[6];
  for (long i = 0; i < 6; i++)
    assert_int_equal(pthread_create(&th[i], NULL, mt_worker, (void *)i), 0);
  for (int i = 0; i < 6; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  size_t n = 0;
  assert_int_equal(csn_store_length(mt_store, &n), CSN_OK);
  assert_int_equal(n, 10);
  csn_store_free(mt_store);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-filestore-XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) return 1;
  /* The unprivileged child must be able to reach the scratch tree. */
  chmod(root, 0755);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_file_layout),
      cmocka_unit_test(store_file_ext_option),
      cmocka_unit_test(store_file_expiry_rule),
      cmocka_unit_test(store_file_reaper_thread),
      cmocka_unit_test(store_file_touch_rereads),
      cmocka_unit_test(store_file_bad_ids),
      cmocka_unit_test(store_file_corrupt),
      cmocka_unit_test(store_file_url),
      cmocka_unit_test(store_file_long_id),
      cmocka_unit_test(store_file_readonly_dir),
      cmocka_unit_test(store_file_unreadable_dir),
      cmocka_unit_test(store_file_kill9_burst),
      cmocka_unit_test(store_file_threads),
  };
  int failed = cmocka_run_group_tests_name("store_file", tests, NULL, NULL);
#ifdef CSN_HAVE_CONFORMANCE
  /* The shared suite runs as its own cmocka group. */
  csn_conformance c = {0};
  c.open = conf_open;
  failed += csn_conformance_run("store_file_conformance", &c);
#endif
  rm_rf(root);
  return failed;
}
