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
#include <stdatomic.h>
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

/* get() returns exactly `want`. */
static void get_is(csn_store *st, const char *sid, const char *want) {
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
  assert_int_equal(len, strlen(want));
  assert_string_equal(json, want);
  csn_free(json);
}

/* Run fn(arg) in a child process that cannot write `dir`: as root, the
 * child drops to "nobody" (root ignores permission bits); otherwise the
 * directory is made read-only. The child's exit status is the result. */
static int as_unprivileged(const char *dir, mode_t mode, int (*fn)(void *),
                           void *arg) {
  int root_user = geteuid() == 0;
  /* The store refuses a directory another user owns, so as root the
   * directory is handed to the unprivileged user first. */
  if (root_user) assert_int_equal(chown(dir, 65534, 65534), 0);
  assert_int_equal(chmod(dir, mode), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (root_user && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
    _exit(fn(arg));
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  chmod(dir, 0755);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* ------------------------------------------------------------------------ */
/* Conformance                                                              */
/* ------------------------------------------------------------------------ */

#ifdef CSN_HAVE_CONFORMANCE
static char conf_dir[300]; /* the directory conf_open last made */

static csn_store *conf_open(void *ud) {
  (void)ud;
  new_dir(conf_dir, sizeof conf_dir);
  /* reap=0: no reaper thread, the suite checks expiry on read. */
  return open_dir(conf_dir, "?reap=0");
}

/* A second handle on the same directory. */
static csn_store *conf_open_again(void *ud) {
  (void)ud;
  return open_dir(conf_dir, "?reap=0");
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

/* Issue 15, finding 3: a directory another user owns, or one that group
 * or others may write, is refused at open (whoever can write it can plant
 * a session file and become any user); the store never fixes it up. */
static void open_refused(const char *dir, const char *why) {
  char url[1024], err[256] = "";
  csn_store *st = NULL;
  snprintf(url, sizeof url, "file://%s?reap=0", dir);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_EPERM);
  assert_null(st);
  if (strstr(err, why) == NULL) fail_msg("message: %s", err);
}

static void store_file_foreign_dir(void **state) {
  (void)state;
  char dir[300];
  struct stat sb;
  new_dir(dir, sizeof dir);
  assert_int_equal(chmod(dir, 0777), 0);
  open_refused(dir, "writable by others");
  assert_int_equal(stat(dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0777); /* left as it was */
  assert_int_equal(chmod(dir, 01777), 0);    /* sticky like /tmp: still */
  open_refused(dir, "writable by others");
  assert_int_equal(chmod(dir, 0775), 0);
  open_refused(dir, "writable by its group");
  assert_int_equal(chmod(dir, 0755), 0);
  csn_store_free(open_dir(dir, "?reap=0")); /* ours, 0755: fine */
  if (geteuid() == 0) {
    assert_int_equal(chown(dir, 65534, 65534), 0);
    open_refused(dir, "owned by another user");
    assert_int_equal(chown(dir, 0, 0), 0);
  } else {
    print_message("not root: the other-owner case needs chown, skipped\n");
  }
}

/* In a child with an alarm, so that a regression hangs the child (killed
 * by SIGALRM, a failed test) rather than the test run. */
static const char *planted_dir;
static int planted_child(void) {
  csn_store *st = NULL;
  char url[1024], err[256] = "";
  char *json = NULL;
  size_t len = 0, n = 0, removed = 0;
  alarm(10);
  snprintf(url, sizeof url, "file://%s?reap=0", planted_dir);
  if (csn_store_file_open(url, &st, err, sizeof err) != CSN_OK) return 10;
  /* A FIFO under a session's name: refused at once, not waited on. */
  if (csn_store_get(st, "fifo", &json, &len) != CSN_ENOENT) return 11;
  if (strstr(csn_store_errmsg(st), "not a session file") == NULL) return 12;
  /* A second link to a file elsewhere. */
  if (csn_store_get(st, "linked", &json, &len) != CSN_ENOENT) return 13;
  if (strstr(csn_store_errmsg(st), "more than one link") == NULL) return 14;
  if (geteuid() == 0) {
    if (csn_store_get(st, "foreign", &json, &len) != CSN_ENOENT) return 15;
    if (strstr(csn_store_errmsg(st), "owned by another user") == NULL)
      return 16;
  }
  /* The good record still reads; the walks and the reaper pass by. */
  if (csn_store_get(st, "good", &json, &len) != CSN_OK) return 17;
  csn_free(json);
  if (csn_store_length(st, &n) != CSN_OK) return 18;
  if (csn_store_prune(st, &removed) != CSN_OK) return 19;
  /* A record written over the FIFO's name replaces it (rename). */
  if (csn_store_set(st, "fifo", REC, strlen(REC), CSN_TIME_NONE) != CSN_OK)
    return 20;
  if (csn_store_get(st, "fifo", &json, &len) != CSN_OK) return 21;
  csn_free(json);
  csn_store_free(st);
  return 0;
}

/* Issue 15, findings 3 and 4: files planted in the store's directory. Only
 * a regular file with one link, owned by this user, is read as a session:
 * a FIFO blocked the open for ever (and the bucket lock with it), a file
 * owned by another user or hard-linked from elsewhere could be a forged
 * session. */
static void store_file_planted_files(void **state) {
  (void)state;
  char dir[300], path[400], outside[400];
  new_dir(dir, sizeof dir);
  write_raw(dir, "good.json", REC);
  snprintf(path, sizeof path, "%s/fifo.json", dir);
  assert_int_equal(mkfifo(path, 0600), 0);
  snprintf(outside, sizeof outside, "%s/outside-%u.json", root,
           (unsigned)getpid());
  FILE *f = fopen(outside, "w");
  assert_non_null(f);
  fputs(REC, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/linked.json", dir);
  assert_int_equal(link(outside, path), 0);
  if (geteuid() == 0) {
    write_raw(dir, "foreign.json", REC);
    snprintf(path, sizeof path, "%s/foreign.json", dir);
    assert_int_equal(chown(path, 65534, 65534), 0);
  }
  planted_dir = dir;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(planted_child());
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status))
    fail_msg("the store hung on a planted file (signal %d)", WTERMSIG(status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  unlink(outside);
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

/* The query goes through csn_url_parse_query(): repeated options are
 * refused, values are percent-decoded, and no message shows a value. */
static void store_file_url_options(void **state) {
  (void)state;
  /* Repeated, out of range, too long, decoding to a '/', undecodable (the
   * value must not be shown), unknown, without '=', a trailing '&'. */
  static const char *const bad[] = {
      "?ttl=5&ttl=6", "?reap=-2", "?ttl=0",
      "?ext=.12345678901234567890123456789012345678901234567890123456789012345",
      "?ext=%2Fx", "?secret=hunter2%zz", "?hunter2=1", "?secret", "?reap=0&",
      "?fsync=maybe", "?fsync=", "?fsync=0&fsync=1"};
  static const char *const named[] = {"ttl",    "reap",  "ttl",  "ext",
                                      "ext",    "secret", NULL,  NULL,
                                      NULL,     "fsync", "fsync", "fsync"};
  char dir[300], url[1024], err[256];
  csn_store *st = NULL;
  new_dir(dir, sizeof dir);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    snprintf(url, sizeof url, "file://%s%s", dir, bad[i]);
    assert_int_equal(csn_store_file_open(url, &st, err, sizeof err),
                     CSN_EINVAL);
    assert_null(st);
    if (named[i] != NULL && strstr(err, named[i]) == NULL)
      fail_msg("%s: message '%s' does not name %s", bad[i], err, named[i]);
    assert_null(strstr(err, "hunter2%"));
    assert_null(strstr(csn_last_error(), "hunter2%"));
  }

  /* The relaxed mode (no fsync) stores and reads like the durable one. */
  static const char *const relaxed[] = {"?fsync=0", "?fsync=off&reap=0",
                                        "?fsync=1"};
  for (size_t i = 0; i < sizeof relaxed / sizeof relaxed[0]; i++) {
    char d2[300];
    new_dir(d2, sizeof d2);
    snprintf(url, sizeof url, "file://%s%s", d2, relaxed[i]);
    assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_OK);
    assert_int_equal(
        csn_store_set(st, "rx", REC, strlen(REC), CSN_TIME_NONE), CSN_OK);
    get_is(st, "rx", REC);
    assert_int_equal(csn_store_destroy(st, "rx"), CSN_OK);
    char *json = NULL;
    assert_int_equal(csn_store_get(st, "rx", &json, NULL), CSN_ENOENT);
    csn_store_free(st);
  }

  /* "a%26b" is the secret "a&b": a store given it directly reads the
   * file. */
  snprintf(url, sizeof url, "file://%s?reap=0&secret=a%%26b&ttl=60", dir);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_OK);
  assert_int_equal(csn_store_set(st, "enc", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  csn_store_free(st);
  csn_file_options o = {0};
  o.dir = dir;
  o.reap_interval_ms = -1;
  o.secret = "a&b";
  assert_int_equal(csn_store_file_new(&o, &st, NULL, 0), CSN_OK);
  get_is(st, "enc", REC);
  csn_store_free(st);

  /* secret_file= (issue 15, finding 1): the same key from a private file,
   * so the URL can be shown anywhere; a file others may read is refused
   * (CSN_EPERM, naming the file, never its content), and so is giving
   * both forms. */
  char key[300];
  snprintf(key, sizeof key, "%s/key", root);
  FILE *f = fopen(key, "w");
  assert_non_null(f);
  fputs("a&b\n", f);
  fclose(f);
  assert_int_equal(chmod(key, 0600), 0);
  snprintf(url, sizeof url, "file://%s?reap=0&secret_file=%s", dir, key);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_OK);
  get_is(st, "enc", REC);
  csn_store_free(st);
  assert_int_equal(chmod(key, 0644), 0);
  err[0] = '\0';
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_EPERM);
  assert_null(st);
  assert_non_null(strstr(err, key));
  assert_null(strstr(err, "a&b"));
  assert_int_equal(chmod(key, 0600), 0);
  snprintf(url, sizeof url, "file://%s?reap=0&secret_file=%s&secret=x", dir,
           key);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_EINVAL);
  unlink(key);
}

/* A directory that cannot be created is an I/O error with the path in the
 * message (it used to be reported as "out of memory": make_dirs() returned
 * -1, which is CSN_ENOMEM). */
static void store_file_uncreatable_dir(void **state) {
  (void)state;
  char dir[300], url[700], err[256] = "";
  csn_store *st = NULL;
  new_dir(dir, sizeof dir);
  write_raw(dir, "plain", "x");
  snprintf(url, sizeof url, "file://%s/plain/sub", dir);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_EIO);
  assert_null(st);
  assert_non_null(strstr(err, "cannot create"));
  assert_non_null(strstr(err, "plain/sub"));
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
  /* ...and the child's own: a session file someone else owns is refused. */
  if (geteuid() == 0) assert_int_equal(chown(path, 65534, 65534), 0);
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

/* ------------------------------------------------------------------------ */
/* Compare-and-set                                                          */
/* ------------------------------------------------------------------------ */

static const char REC2[] =
    "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00."
    "000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":4}";

/* The whole file as bytes (the raw text, or the ciphertext). */
static char *slurp(const char *dir, const char *name) {
  char *r = read_raw(dir, name);
  return r != NULL ? strdup(r) : NULL;
}

static int cas_s(csn_store *st, const char *sid, const char *expected,
                 const char *json) {
  return csn_store_cas(st, sid, expected, strlen(expected), json, strlen(json),
                       CSN_TIME_NONE);
}

/* Equal: written (with a fresh __lastAccess, like set); different:
 * CSN_ECONFLICT and not a byte changed; missing or expired: CSN_ENOENT and
 * nothing created or rewritten. Run plain and encrypted. */
static void cas_cases(const char *query) {
  char dir[300], text[512];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, query);
  int encrypted = strstr(query, "secret=") != NULL;
  assert_true(csn_store_has_cas(st));

  /* Missing: nothing to compare with, nothing created. */
  assert_int_equal(cas_s(st, "c1", REC, REC2), CSN_ENOENT);
  assert_false(file_exists(dir, "c1.json"));

  assert_int_equal(csn_store_set(st, "c1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  int64_t before = csn__now_ms();
  assert_int_equal(cas_s(st, "c1", REC, REC2), CSN_OK);
  get_is(st, "c1", REC2);
  if (!encrypted) {
    long long stamp = 0;
    char *raw = read_raw(dir, "c1.json");
    size_t n = strlen(REC2);
    assert_memory_equal(raw, REC2, n - 1);
    assert_int_equal(
        sscanf(raw + n - 1, ",\"__lastAccess\":%lld}", &stamp), 1);
    assert_true(stamp >= before);
  } else {
    /* Sealed like every other write. */
    assert_null(strstr(read_raw(dir, "c1.json"), "views"));
  }

  /* Stale expectation, a prefix, and the text with its bookkeeping: all
   * conflicts, the file untouched to the byte. */
  char *was = slurp(dir, "c1.json");
  assert_non_null(was);
  assert_int_equal(cas_s(st, "c1", REC, REC), CSN_ECONFLICT);
  assert_int_equal(csn_store_cas(st, "c1", REC2, strlen(REC2) - 1, REC,
                                 strlen(REC), CSN_TIME_NONE),
                   CSN_ECONFLICT);
  if (!encrypted)
    assert_int_equal(cas_s(st, "c1", read_raw(dir, "c1.json"), REC),
                     CSN_ECONFLICT);
  assert_string_equal(read_raw(dir, "c1.json"), was);
  free(was);
  get_is(st, "c1", REC2);

  /* Destroyed: stays destroyed. */
  assert_int_equal(csn_store_destroy(st, "c1"), CSN_OK);
  assert_int_equal(cas_s(st, "c1", REC2, REC), CSN_ENOENT);
  assert_false(file_exists(dir, "c1.json"));

  /* Expired (__lastAccess long past): CSN_ENOENT even with the exact text,
   * and the file is left as it was (for the reaper). */
  if (!encrypted) {
    const char *old = "{\"cookie\":{\"originalMaxAge\":1000},\"k\":1}";
    snprintf(text, sizeof text,
             "{\"cookie\":{\"originalMaxAge\":1000},\"k\":1,"
             "\"__lastAccess\":%lld}",
             (long long)(csn__now_ms() - 60000));
    write_raw(dir, "c2.json", text);
    assert_int_equal(cas_s(st, "c2", old, REC), CSN_ENOENT);
    assert_string_equal(read_raw(dir, "c2.json"), text);
  } else {
    /* An expired cookie in a sealed record. */
    const char *old =
        "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2001-01-01T00:"
        "00:00.000Z\"},\"k\":1}";
    assert_int_equal(csn_store_set(st, "c2", old, strlen(old), CSN_TIME_NONE),
                     CSN_OK);
    was = slurp(dir, "c2.json");
    assert_int_equal(cas_s(st, "c2", old, REC), CSN_ENOENT);
    assert_string_equal(read_raw(dir, "c2.json"), was);
    free(was);
  }

  /* A corrupt file is "not found" to get(), so to cas() as well. */
  write_raw(dir, "c3.json", "{\"cookie\":");
  assert_int_equal(cas_s(st, "c3", "{\"cookie\":", REC), CSN_ENOENT);
  assert_string_equal(read_raw(dir, "c3.json"), "{\"cookie\":");

  /* get() and cas() agree on a record written by Node: __lastAccess in
   * the middle, 0.1 and an escape kept as written. */
  if (!encrypted) {
    snprintf(text, sizeof text,
             "{\"cookie\":{\"originalMaxAge\":60000},\"a\":0.1,"
             "\"__lastAccess\":%lld,\"s\":\"\\u00e9\"}",
             (long long)csn__now_ms());
    write_raw(dir, "node.json", text);
    get_is(st, "node",
           "{\"cookie\":{\"originalMaxAge\":60000},\"a\":0.1,\"s\":\"\\u00e9\"}");
    assert_int_equal(cas_s(st, "node",
                           "{\"cookie\":{\"originalMaxAge\":60000},\"a\":0.1,"
                           "\"s\":\"\\u00e9\"}",
                           REC),
                     CSN_OK);
    get_is(st, "node", REC);
  }

  /* A hashed name (an id too long for a file name). */
  char id[CSN_ID_MAX + 1];
  memset(id, 'H', CSN_ID_MAX);
  id[CSN_ID_MAX] = '\0';
  assert_int_equal(csn_store_set(st, id, REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(cas_s(st, id, REC2, REC), CSN_ECONFLICT);
  assert_int_equal(cas_s(st, id, REC, REC2), CSN_OK);
  get_is(st, id, REC2);

  /* Not an object: refused before anything is read or written. */
  assert_int_equal(cas_s(st, id, REC2, "[1]"), CSN_EINVAL);
  get_is(st, id, REC2);
  csn_store_free(st);
}

static void store_file_cas(void **state) {
  (void)state;
  cas_cases("?reap=0");
}

static void store_file_cas_encrypted(void **state) {
  (void)state;
  cas_cases("?reap=0&secret=cas-secret");
}

/* The lock file: hidden, 0600, empty, never a session to length, all,
 * clear or prune, even when every name counts (an empty extension). */
static int lock_seen;
static int lock_each(const char *sid, const char *json, size_t len,
                     void *ud) {
  (void)json, (void)len, (void)ud;
  if (strstr(sid, "lock") != NULL) lock_seen++;
  return 0;
}

static void store_file_lock_file(void **state) {
  (void)state;
  char dir[300];
  struct stat sb;
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0&ext=");
  assert_int_equal(csn_store_set(st, "a", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  char path[400];
  snprintf(path, sizeof path, "%s/.csn.lock", dir);
  assert_int_equal(lstat(path, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(sb.st_size, 0);
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  lock_seen = 0;
  assert_int_equal(csn_store_all(st, lock_each, NULL), CSN_OK);
  assert_int_equal(lock_seen, 0);
  /* An id whose file name would be the lock file is stored elsewhere. */
  assert_int_equal(
      csn_store_set(st, ".csn.lock", REC, strlen(REC), CSN_TIME_NONE), CSN_OK);
  assert_int_equal(lstat(path, &sb), 0);
  assert_int_equal(sb.st_size, 0);
  get_is(st, ".csn.lock", REC);
  assert_int_equal(csn_store_prune(st, &n), CSN_OK);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_true(file_exists(dir, ".csn.lock"));
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  csn_store_free(st);
}

/* A write waits for a lock held by another process: while a child holds
 * the whole lock file, set() in a thread cannot finish; once the child
 * lets go, it does. */
typedef struct set_job {
  csn_store *st;
  atomic_int rc; /* read by the test while the thread may still run */
} set_job;

static void *set_thread(void *arg) {
  set_job *j = arg;
  atomic_store(&j->rc, csn_store_set(j->st, "held", REC, strlen(REC),
                                     CSN_TIME_NONE));
  return NULL;
}

static void store_file_lock_excludes_processes(void **state) {
  (void)state;
  char dir[300], path[400];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "?reap=0");
  snprintf(path, sizeof path, "%s/.csn.lock", dir);
  int go[2], done[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(done), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char c = 0;
    /* Only the parent holds done's write end: if it fails and exits, the
     * read below ends instead of keeping this child (and the test runner's
     * output pipe) alive. The alarm is the backstop. */
    close(go[0]);
    close(done[1]);
    alarm(60);
    int fd = open(path, O_RDWR);
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET; /* l_len 0: the whole file, every slot */
    if (fd < 0 || fcntl(fd, F_SETLKW, &fl) != 0) _exit(1);
    if (write(go[1], "x", 1) != 1) _exit(2);
    if (read(done[0], &c, 1) != 1) _exit(3); /* hold until told */
    _exit(0);
  }
  char c;
  assert_int_equal(read(go[0], &c, 1), 1);
  set_job j = {st, 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, set_thread, &j), 0);
  usleep(200000);
  /* Still waiting: nothing written yet. */
  assert_int_equal(atomic_load(&j.rc), 1);
  assert_false(file_exists(dir, "held.json"));
  assert_int_equal(write(done[1], "x", 1), 1);
  pthread_join(th, NULL);
  assert_int_equal(atomic_load(&j.rc), CSN_OK);
  get_is(st, "held", REC);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(go[0]), close(go[1]), close(done[0]), close(done[1]);
  csn_store_free(st);
}

/* Processes sharing the directory: each does read-modify-cas loops on one
 * id (get, increment its own member, cas, retry on a conflict); no
 * increment may be lost. `inherited`: the children use a store the parent
 * opened before fork() (a pre-forking server), which shares the parent's
 * lock file description unless the store reopens it. */
#define CAS_PROCS 4
#define CAS_ROUNDS 100

static int cas_loop(csn_store *st, int index, long *conflicts) {
  char key[16];
  snprintf(key, sizeof key, "p%d", index);
  for (int round = 0; round < CAS_ROUNDS; round++) {
    for (;;) {
      char *cur = NULL;
      size_t len = 0;
      if (csn_store_get(st, "shared", &cur, &len) != CSN_OK) return 20;
      json_t *j = json_loadb(cur, len, 0, NULL);
      if (j == NULL) return 21;
      json_object_set_new(
          j, key,
          json_integer(json_integer_value(json_object_get(j, key)) + 1));
      char *next = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
      json_decref(j);
      if (next == NULL) return 22;
      int rc = csn_store_cas(st, "shared", cur, len, next, strlen(next),
                             CSN_TIME_NONE);
      csn_free(cur);
      free(next);
      if (rc == CSN_OK) break;
      if (rc != CSN_ECONFLICT) return 23;
      (*conflicts)++;
    }
  }
  return 0;
}

static void cas_processes(const char *query, int inherited) {
  char dir[300], url[600];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, query);
  assert_int_equal(csn_store_set(st, "shared", REC, strlen(REC),
                                 CSN_TIME_NONE),
                   CSN_OK);
  snprintf(url, sizeof url, "file://%s%s", dir, query);
  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t pids[CAS_PROCS];
  for (int i = 0; i < CAS_PROCS; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      csn_store *mine = st;
      long conflicts = 0;
      if (!inherited && csn_store_file_open(url, &mine, NULL, 0) != CSN_OK)
        _exit(10);
      int rc = cas_loop(mine, i, &conflicts);
      if (write(pfd[1], &conflicts, sizeof conflicts) !=
          (ssize_t)sizeof conflicts)
        _exit(11);
      if (!inherited) csn_store_free(mine);
      _exit(rc);
    }
  }
  close(pfd[1]);
  long total = 0, c;
  for (int i = 0; i < CAS_PROCS; i++) {
    int status = 0;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  while (read(pfd[0], &c, sizeof c) == (ssize_t)sizeof c) total += c;
  close(pfd[0]);
  print_message("cas across %d processes (%s%s): %ld conflicts resolved by "
                "retry\n",
                CAS_PROCS, inherited ? "inherited store" : "own stores",
                strstr(query, "secret") ? ", encrypted" : "", total);

  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, "shared", &json, &len), CSN_OK);
  json_t *j = json_loadb(json, len, 0, NULL);
  csn_free(json);
  assert_non_null(j);
  for (int i = 0; i < CAS_PROCS; i++) {
    char key[16];
    snprintf(key, sizeof key, "p%d", i);
    assert_int_equal(json_integer_value(json_object_get(j, key)), CAS_ROUNDS);
  }
  assert_non_null(json_object_get(j, "cookie"));
  json_decref(j);
  csn_store_free(st);
}

static void store_file_cas_processes(void **state) {
  (void)state;
  cas_processes("?reap=0", 0);
}

static void store_file_cas_processes_encrypted(void **state) {
  (void)state;
  cas_processes("?reap=0&secret=cas-secret", 0);
}

static void store_file_cas_processes_inherited(void **state) {
  (void)state;
  cas_processes("?reap=0", 1);
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
      cmocka_unit_test(store_file_foreign_dir),
      cmocka_unit_test(store_file_planted_files),
      cmocka_unit_test(store_file_url),
      cmocka_unit_test(store_file_url_options),
      cmocka_unit_test(store_file_uncreatable_dir),
      cmocka_unit_test(store_file_long_id),
      cmocka_unit_test(store_file_readonly_dir),
      cmocka_unit_test(store_file_unreadable_dir),
      cmocka_unit_test(store_file_kill9_burst),
      cmocka_unit_test(store_file_threads),
      cmocka_unit_test(store_file_cas),
      cmocka_unit_test(store_file_cas_encrypted),
      cmocka_unit_test(store_file_lock_file),
      cmocka_unit_test(store_file_lock_excludes_processes),
      cmocka_unit_test(store_file_cas_processes),
      cmocka_unit_test(store_file_cas_processes_encrypted),
      cmocka_unit_test(store_file_cas_processes_inherited),
  };
  int failed = cmocka_run_group_tests_name("store_file", tests, NULL, NULL);
#ifdef CSN_HAVE_CONFORMANCE
  /* The shared suite runs as its own cmocka group. */
  csn_conformance c = {0};
  c.open = conf_open;
  c.open_again = conf_open_again;
  c.cas = 1;
  c.all_expired = 1;
  failed += csn_conformance_run("store_file_conformance", &c);
#endif
  rm_rf(root);
  return failed;
}
