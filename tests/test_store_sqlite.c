/* test_store_sqlite.c - SQLite store: the shared conformance suite, the
 * connect-sqlite3 table and its rules (read back with plain SQL), pruning,
 * a read-only database, concurrent workers with no "database is locked",
 * byte-preserving touch, and compare-and-set within one process and across
 * processes sharing the database file.
 */
#define _XOPEN_SOURCE 700 /* nftw() is an XSI interface */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "csn/csn.h"
#include "csn/csn_store_sqlite.h"
#include "csn_int.h"
#ifdef CSN_HAVE_CONFORMANCE
#include "store_conformance.h"
#endif

static const char REC[] =
    "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00."
    "000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":3}";

static char root[256];

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

/* usleep() left POSIX in 2008. */
static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, us % 1000000 * 1000};
  nanosleep(&ts, NULL);
}

static void new_db(char *buf, size_t size) {
  static unsigned n;
  snprintf(buf, size, "%s/t%u.db", root, n++);
}

static csn_store *open_db(const char *path, const char *query) {
  char url[1024], err[256] = "";
  csn_store *st = NULL;
  snprintf(url, sizeof url, "sqlite://%s%s", path, query ? query : "");
  int rc = csn_store_sqlite_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", url, csn_strerror(rc), err);
  return st;
}

/* One value from plain SQL on a separate connection (what Node would see). */
static long long sql_int(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  long long v = -1;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
  if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

static void sql_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("%s: %s", sql, msg);
  sqlite3_close(db);
}

#ifdef CSN_HAVE_CONFORMANCE
static char conf_path[300]; /* the database conf_open last made */

static csn_store *conf_open(void *ud) {
  (void)ud;
  new_db(conf_path, sizeof conf_path);
  return open_db(conf_path, "?prune=0");
}

/* A second handle on the same database file. */
static csn_store *conf_open_again(void *ud) {
  (void)ud;
  return open_db(conf_path, "?prune=0");
}
#endif

static void store_sqlite_schema_and_rows(void **state) {
  (void)state;
  char path[300];
  new_db(path, sizeof path);
  csn_store *st = open_db(path, "?prune=0");
  int64_t exp = csn__now_ms() + 60000;
  assert_int_equal(csn_store_set(st, "a1", REC, strlen(REC), exp), CSN_OK);
  /* connect-sqlite3's table, WAL mode, our index, expiry in ms. */
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE "
                                 "name='sessions' AND sql LIKE '%sid PRIMARY "
                                 "KEY, expired, sess%'"),
                   1);
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE "
                                 "type='index' AND tbl_name='sessions' AND "
                                 "sql LIKE '%expired%'"),
                   1);
  char q[256];
  snprintf(q, sizeof q,
           "SELECT expired = %lld FROM sessions WHERE sid='a1' AND sess = '%s'",
           (long long)exp, REC);
  assert_int_equal(sql_int(path, q), 1);
  {
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
  }
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, "a1", &json, &len), CSN_OK);
  assert_string_equal(json, REC);
  assert_int_equal(len, strlen(REC));
  csn_free(json);

  /* A browser-session cookie: now + 1 day. */
  int64_t t0 = csn__now_ms();
  assert_int_equal(csn_store_set(st, "b1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  long long e = sql_int(path, "SELECT expired FROM sessions WHERE sid='b1'");
  assert_true(e >= t0 + 86400000 && e <= csn__now_ms() + 86400000);

  assert_int_equal(csn_store_destroy(st, "a1"), CSN_OK);
  assert_int_equal(csn_store_destroy(st, "a1"), CSN_OK);
  assert_int_equal(csn_store_get(st, "a1", &json, &len), CSN_ENOENT);
  csn_store_free(st);
}

static void store_sqlite_expiry_touch_prune(void **state) {
  (void)state;
  char path[300];
  new_db(path, sizeof path);
  csn_store *st = open_db(path, "?prune=0");
  int64_t now = csn__now_ms();
  char *json = NULL;
  size_t len;
  assert_int_equal(csn_store_set(st, "live", REC, strlen(REC), now + 60000),
                   CSN_OK);
  assert_int_equal(csn_store_set(st, "dead", REC, strlen(REC), now - 1),
                   CSN_OK);
  /* A row written by Node (expired as a REAL, as node-sqlite3 binds it). */
  char sql[512];
  snprintf(sql, sizeof sql,
           "INSERT INTO sessions VALUES ('node', %lld.0, '%s')",
           (long long)(now + 60000), REC);
  sql_exec(path, sql);
  assert_int_equal(csn_store_get(st, "dead", &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_get(st, "node", &json, &len), CSN_OK);
  csn_free(json);
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 2);

  /* touch: new expiry and the new cookie inside sess, data untouched; an
   * expired row is not revived. */
  const char *t = "{\"cookie\":{\"originalMaxAge\":99000,\"path\":\"/x\"},"
                  "\"views\":100}";
  assert_int_equal(csn_store_touch(st, "live", t, strlen(t), now + 99000),
                   CSN_OK);
  assert_int_equal(csn_store_get(st, "live", &json, &len), CSN_OK);
  assert_string_equal(json, "{\"cookie\":{\"originalMaxAge\":99000,\"path\":"
                            "\"/x\"},\"views\":3}");
  csn_free(json);
  snprintf(sql, sizeof sql,
           "SELECT expired = %lld FROM sessions WHERE sid = 'live'",
           (long long)(now + 99000));
  assert_int_equal(sql_int(path, sql), 1);
  assert_int_equal(csn_store_touch(st, "dead", t, strlen(t), now + 99000),
                   CSN_OK);
  assert_int_equal(csn_store_get(st, "dead", &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_touch(st, "none", t, strlen(t), now + 99000),
                   CSN_OK);

  size_t removed = 0;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 1);
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sessions"), 2);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sessions"), 0);
  csn_store_free(st);
}

/* The background pruner removes a large backlog in batches and close()
 * does not wait for the interval. */
static void store_sqlite_prune_thread(void **state) {
  (void)state;
  char path[300];
  new_db(path, sizeof path);
  csn_store *st = open_db(path, "?prune=0");
  csn_store_free(st);
  sql_exec(path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM "
                 "n WHERE i < 2500) INSERT INTO sessions SELECT 'x' || i, 1, "
                 "'{}' FROM n");
  csn_sqlite_options o = {0};
  o.path = path;
  o.prune_interval_ms = 50;
  assert_int_equal(csn_store_sqlite_new(&o, &st, NULL, 0), CSN_OK);
  long long n = 1;
  for (int i = 0; i < 200 && n != 0; i++) {
    sleep_us(20000);
    n = sql_int(path, "SELECT count(*) FROM sessions");
  }
  assert_int_equal(n, 0);
  csn_store_free(st);
  o.prune_interval_ms = 3600000;
  assert_int_equal(csn_store_sqlite_new(&o, &st, NULL, 0), CSN_OK);
  int64_t t0 = csn__now_ms();
  csn_store_free(st);
  assert_true(csn__now_ms() - t0 < 1000);
}

static void store_sqlite_url_and_ids(void **state) {
  (void)state;
  char err[256] = "";
  csn_store *st = NULL;
  assert_int_equal(csn_store_sqlite_open("sqlite:///tmp/x.db?table=a;b", &st,
                                         err, sizeof err),
                   CSN_EINVAL);
  assert_int_equal(
      csn_store_sqlite_open("sqlite:///tmp/x.db?nope=1", &st, err, sizeof err),
      CSN_EINVAL);
  assert_int_equal(csn_store_sqlite_open("file:///x", &st, err, sizeof err),
                   CSN_EINVAL);
  assert_null(st);
  /* The accepted parameters and their bounds; each refusal happens before
   * any file is created, and says which parameter (in errbuf and in
   * csn_last_error()). */
  static const char *const bad[] = {
      "?pool=0",     "?pool=1025", "?busy=0",      "?busy=2147483648",
      "?prune=-2",   "?prune=x",   "?table=",      "?table=1abc",
      /* 65 characters, one more than a table name may have */
      "?table=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "?pool=2&pool=3", "?pool",   "?pool=2&",     "?&",
      /* the relaxed mode is asked for in words the store knows */
      "?synchronous=off", "?synchronous=", "?synchronous=FULLY",
      "?synchronous=normal&synchronous=full",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char url[512], p[400];
    snprintf(p, sizeof p, "%s/never.db", root);
    snprintf(url, sizeof url, "sqlite://%s%s", p, bad[i]);
    err[0] = '\0';
    assert_int_equal(csn_store_sqlite_open(url, &st, err, sizeof err),
                     CSN_EINVAL);
    assert_null(st);
    assert_true(strncmp(err, "sqlite store", 12) == 0);
    assert_string_equal(csn_last_error(), err);
    assert_int_equal(access(p, F_OK), -1);
  }
  static const char *const good[] = {"", "?", "?pool=1024&busy=1&prune=-1",
                                     "?prune=0&table=_T9",
                                     "?prune=9000000000000",
                                     "?synchronous=full",
                                     "?synchronous=normal&prune=0"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    char path[300];
    new_db(path, sizeof path);
    csn_store_free(open_db(path, good[i]));
  }
  /* A custom table via csn_store_open (the scheme is registered), with a
   * relative path. */
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(root), 0);
  assert_int_equal(csn_store_register("sqlite", csn_store_sqlite_open), CSN_OK);
  assert_int_equal(csn_store_open("sqlite://./rel.db?table=web_sess&prune=0",
                                  &st, err, sizeof err),
                   CSN_OK);
  assert_string_equal(csn_store_name(st), "sqlite");
  assert_int_equal(csn_store_set(st, "r", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(csn_store_set(st, "x'; DROP TABLE web_sess; --", REC,
                                 strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(
      csn_store_set(st, "../etc", REC, strlen(REC), CSN_TIME_NONE),
      CSN_EINVAL);
  csn_store_free(st);
  assert_int_equal(chdir(cwd), 0);
  char p[400];
  snprintf(p, sizeof p, "%s/rel.db", root);
  assert_int_equal(sql_int(p, "SELECT count(*) FROM web_sess"), 2);
}

/* Read-only database: reads still work; a write fails with the store's
 * message and the old record is intact. */
static const char *ro_path;
static int ro_child(void) {
  csn_store *st = NULL;
  char url[1024], err[256];
  snprintf(url, sizeof url, "sqlite://%s?prune=0", ro_path);
  if (csn_store_sqlite_open(url, &st, err, sizeof err) != CSN_OK) {
    fprintf(stderr, "ro open: %s\n", err);
    return 10;
  }
  char *json = NULL;
  size_t len = 0;
  if (csn_store_get(st, "keep", &json, &len) != CSN_OK) return 11;
  if (strcmp(json, REC) != 0) return 12;
  csn_free(json);
  const char *nw = "{\"cookie\":{},\"views\":99}";
  int rc = csn_store_set(st, "keep", nw, strlen(nw), csn__now_ms() + 60000);
  if (rc != CSN_EIO) return 13;
  if (strstr(csn_store_errmsg(st), "readonly") == NULL &&
      strstr(csn_store_errmsg(st), "read-only") == NULL) {
    fprintf(stderr, "ro message: %s\n", csn_store_errmsg(st));
    return 14;
  }
  if (csn_store_get(st, "keep", &json, &len) != CSN_OK) return 15;
  if (strcmp(json, REC) != 0) return 16;
  csn_free(json);
  csn_store_free(st);
  return 0;
}

static void store_sqlite_readonly_db(void **state) {
  (void)state;
  char dir[300], path[400];
  snprintf(dir, sizeof dir, "%s/ro", root);
  assert_int_equal(mkdir(dir, 0777), 0);
  assert_int_equal(chmod(dir, 0777), 0); /* -wal/-shm may be created */
  snprintf(path, sizeof path, "%s/ro.db", dir);
  csn_store *st = open_db(path, "?prune=0");
  assert_int_equal(
      csn_store_set(st, "keep", REC, strlen(REC), csn__now_ms() + 60000),
      CSN_OK);
  csn_store_free(st);
  assert_int_equal(chmod(path, 0444), 0);
  ro_path = path;
  int root_user = geteuid() == 0;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (root_user && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(90);
    _exit(ro_child());
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  chmod(path, 0644);
}

/* A new database and its -wal and -shm files are private to the process
 * owner (0600) whatever the umask lets through (issue 15, finding 2: they
 * were 0644 and every local user could read every session). A file that
 * exists keeps the mode its owner gave it. */
static void store_sqlite_private_files(void **state) {
  (void)state;
  char path[400], side[420];
  struct stat sb;
  mode_t old = umask(022);
  new_db(path, sizeof path);
  csn_store *st = open_db(path, "?prune=0");
  assert_int_equal(
      csn_store_set(st, "p1", REC, strlen(REC), csn__now_ms() + 60000),
      CSN_OK);
  /* While the store is open the WAL files exist. */
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  snprintf(side, sizeof side, "%s-wal", path);
  assert_int_equal(stat(side, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  snprintf(side, sizeof side, "%s-shm", path);
  assert_int_equal(stat(side, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  csn_store_free(st);

  /* An existing database is not re-moded behind its owner's back. */
  assert_int_equal(chmod(path, 0640), 0);
  st = open_db(path, "?prune=0");
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0640);
  csn_store_free(st);
  umask(old);
}

/* Many workers on a small pool plus a second "process" (another store on
 * the same file): no error at all. */
static csn_store *mt_a, *mt_b;
static void *mt_worker(void *arg) {
  long t = (long)arg;
  csn_store *st = (t % 2) ? mt_a : mt_b;
  char rec[128], sid[16];
  for (int i = 0; i < 300; i++) {
    snprintf(sid, sizeof sid, "m%d", (int)((t * 7 + i) % 40));
    snprintf(rec, sizeof rec, "{\"cookie\":{},\"t\":%ld,\"i\":%d}", t, i);
    int64_t exp = csn__now_ms() + 60000;
    if (csn_store_set(st, sid, rec, strlen(rec), exp) != CSN_OK) {
      fprintf(stderr, "set: %s\n", csn_store_errmsg(st));
      return (void *)1;
    }
    if (csn_store_touch(st, sid, rec, strlen(rec), exp + 1) != CSN_OK) {
      fprintf(stderr, "touch: %s\n", csn_store_errmsg(st));
      return (void *)1;
    }
    char *json = NULL;
    size_t len;
    if (csn_store_get(st, sid, &json, &len) != CSN_OK) {
      fprintf(stderr, "get: %s\n", csn_store_errmsg(st));
      return (void *)1;
    }
    csn_free(json);
    if (i % 50 == 0 && csn_store_prune(st, NULL) != CSN_OK) return (void *)1;
  }
  return NULL;
}

static void store_sqlite_threads(void **state) {
  (void)state;
  char path[300];
  new_db(path, sizeof path);
  mt_a = open_db(path, "?prune=0&pool=3");
  mt_b = open_db(path, "?prune=0&pool=2");
  pthread_t th[8];
  for (long i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&th[i], NULL, mt_worker, (void *)i), 0);
  for (int i = 0; i < 8; i++) {
    void *r;
    pthread_join(th[i], &r);
    assert_null(r);
  }
  size_t n = 0;
  assert_int_equal(csn_store_length(mt_a, &n), CSN_OK);
  assert_int_equal(n, 40);
  csn_store_free(mt_a);
  csn_store_free(mt_b);
}

/* Group commit: saves from many threads meet in batches (one transaction
 * each). Triggers make some of them fail inside a batch: RAISE(ABORT) fails
 * one statement (the savepoint path), RAISE(ROLLBACK) rolls the whole
 * transaction back (the batch runs again without it). Every failing save
 * must fail alone, with its own message in its own thread, and leave no
 * row; every other save must be there, and a cas queued behind its set
 * must see the set's text. */
#define GC_THREADS 8
#define GC_ROUNDS 150
static csn_store *gc_store;

static void *gc_worker(void *arg) {
  long t = (long)arg;
  for (long k = 0; k < GC_ROUNDS; k++) {
    char sid[48], v1[256], v2[256];
    snprintf(sid, sizeof sid, "ok%ldx%ld", t, k);
    snprintf(v1, sizeof v1, "{\"cookie\":{},\"t\":%ld,\"k\":%ld}", t, k);
    snprintf(v2, sizeof v2, "{\"cookie\":{},\"t\":%ld,\"k\":%ld,\"v\":2}", t,
             k);
    int64_t exp = csn__now_ms() + 600000;
    if (csn_store_set(gc_store, sid, v1, strlen(v1), exp) != CSN_OK)
      return "set failed";
    if (csn_store_cas(gc_store, sid, v1, strlen(v1), v2, strlen(v2), exp) !=
        CSN_OK)
      return "cas did not see the set before it";
    if (k % 5 == 0) {
      const char *kind = k % 10 == 0 ? "abort" : "rollback";
      snprintf(sid, sizeof sid, "%s%ldx%ld", kind, t, k);
      if (csn_store_set(gc_store, sid, v1, strlen(v1), exp) != CSN_EIO)
        return "a refused set succeeded";
      /* Its own message, in its own thread. */
      if (strstr(csn_store_errmsg(gc_store), "refused") == NULL)
        return "the refusal's message is not the caller's";
    }
  }
  return NULL;
}

static void store_sqlite_group_commit(void **state) {
  (void)state;
  char path[300];
  new_db(path, sizeof path);
  gc_store = open_db(path, "?prune=0");
  sql_exec(path,
           "CREATE TRIGGER refuse_one BEFORE INSERT ON sessions "
           "WHEN NEW.sid LIKE 'abort%' "
           "BEGIN SELECT RAISE(ABORT, 'refused: one'); END;"
           "CREATE TRIGGER refuse_all BEFORE INSERT ON sessions "
           "WHEN NEW.sid LIKE 'rollback%' "
           "BEGIN SELECT RAISE(ROLLBACK, 'refused: all'); END;");
  pthread_t th[GC_THREADS];
  for (long i = 0; i < GC_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, gc_worker, (void *)i), 0);
  for (int i = 0; i < GC_THREADS; i++) {
    void *r = NULL;
    pthread_join(th[i], &r);
    if (r != NULL) fail_msg("worker %d: %s", i, (const char *)r);
  }
  /* Read back with plain SQL, as another process would. */
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sessions"),
                   GC_THREADS * GC_ROUNDS);
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sessions WHERE "
                                 "sess LIKE '%\"v\":2}'"),
                   GC_THREADS * GC_ROUNDS);
  /* The writer is back in autocommit mode: another connection can write. */
  sql_exec(path, "DELETE FROM sessions WHERE sid = 'ok0x0'");
  char *json = NULL;
  assert_int_equal(csn_store_get(gc_store, "ok0x0", &json, NULL),
                   CSN_ENOENT);
  assert_int_equal(csn_store_set(gc_store, "ok0x0", REC, strlen(REC),
                                 csn__now_ms() + 60000),
                   CSN_OK);
  assert_int_equal(csn_store_get(gc_store, "ok0x0", &json, NULL), CSN_OK);
  assert_string_equal(json, REC);
  csn_free(json);
  csn_store_free(gc_store);
}

/* touch replaces the cookie member and keeps every other byte of the
 * stored text: Node's spacing, number spellings JSON.stringify would not
 * produce, escapes. (SQLite's json_set, used before, minified the record.) */
static void store_sqlite_touch_keeps_bytes(void **state) {
  (void)state;
  char path[300], sql[1024];
  new_db(path, sizeof path);
  csn_store *st = open_db(path, "?prune=0");
  int64_t now = csn__now_ms();
  static const char stored[] =
      "{ \"a\" : 0.1,\"big\":1e21, \"cookie\" : {\"path\":\"/\"} ,"
      "\"s\":\"\\u00e9\\/\", \"n\": [1 ,2 ],\"e\":1E+2 }";
  static const char fresh[] =
      "{\"cookie\":{\"originalMaxAge\":5000,\"path\":\"/\"},\"a\":9}";
  static const char want[] =
      "{ \"a\" : 0.1,\"big\":1e21, \"cookie\" : {\"originalMaxAge\":5000,"
      "\"path\":\"/\"} ,\"s\":\"\\u00e9\\/\", \"n\": [1 ,2 ],\"e\":1E+2 }";
  snprintf(sql, sizeof sql,
           "INSERT INTO sessions VALUES ('odd', %lld, '%s'),"
           "('nocookie', %lld, '{\"v\": 0.1}'), ('junk', %lld, 'not json')",
           (long long)(now + 60000), stored, (long long)(now + 60000),
           (long long)(now + 60000));
  sql_exec(path, sql);

  char *json = NULL;
  size_t len = 0;
  assert_int_equal(
      csn_store_touch(st, "odd", fresh, strlen(fresh), now + 120000), CSN_OK);
  assert_int_equal(csn_store_get(st, "odd", &json, &len), CSN_OK);
  assert_string_equal(json, want);
  assert_int_equal(len, strlen(want));
  csn_free(json);
  snprintf(sql, sizeof sql, "SELECT expired = %lld FROM sessions WHERE sid "
           "= 'odd'", (long long)(now + 120000));
  assert_int_equal(sql_int(path, sql), 1);

  /* No cookie yet: it becomes the first member, the rest as stored. */
  assert_int_equal(
      csn_store_touch(st, "nocookie", fresh, strlen(fresh), now + 120000),
      CSN_OK);
  assert_int_equal(csn_store_get(st, "nocookie", &json, &len), CSN_OK);
  assert_string_equal(json, "{\"cookie\":{\"originalMaxAge\":5000,\"path\":"
                            "\"/\"},\"v\": 0.1}");
  csn_free(json);

  /* A record that is not JSON keeps its text; its expiry still moves. */
  assert_int_equal(
      csn_store_touch(st, "junk", fresh, strlen(fresh), now + 120000), CSN_OK);
  assert_int_equal(sql_int(path, "SELECT sess = 'not json' FROM sessions "
                                 "WHERE sid = 'junk'"),
                   1);
  snprintf(sql, sizeof sql, "SELECT expired = %lld FROM sessions WHERE sid "
           "= 'junk'", (long long)(now + 120000));
  assert_int_equal(sql_int(path, sql), 1);
  /* Every connection went back to the pool out of its transaction. */
  assert_int_equal(csn_store_set(st, "after", REC, strlen(REC), now + 60000),
                   CSN_OK);
  csn_store_free(st);
}

/* Compare-and-set: equal text -> written; other text -> ECONFLICT and
 * unchanged; missing or expired -> ENOENT and nothing written. */
static void store_sqlite_cas(void **state) {
  (void)state;
  char path[300], sql[1024];
  new_db(path, sizeof path);
  csn_store *st = open_db(path, "?prune=0");
  assert_true(csn_store_has_cas(st));
  int64_t now = csn__now_ms();
  static const char v2[] = "{\"cookie\":{},\"views\":4}";
  static const char v3[] = "{\"cookie\":{},\"views\":5}";
  char *json = NULL;
  size_t len = 0;

  assert_int_equal(csn_store_set(st, "c1", REC, strlen(REC), now + 60000),
                   CSN_OK);
  assert_int_equal(csn_store_get(st, "c1", &json, &len), CSN_OK);
  assert_int_equal(
      csn_store_cas(st, "c1", json, len, v2, strlen(v2), now + 90000), CSN_OK);
  csn_free(json);
  assert_int_equal(csn_store_get(st, "c1", &json, &len), CSN_OK);
  assert_string_equal(json, v2);
  csn_free(json);
  snprintf(sql, sizeof sql,
           "SELECT expired = %lld FROM sessions WHERE sid = 'c1'",
           (long long)(now + 90000));
  assert_int_equal(sql_int(path, sql), 1);

  /* Stale expectation, and a prefix of the stored text: a conflict, and
   * the row is as it was. */
  assert_int_equal(
      csn_store_cas(st, "c1", REC, strlen(REC), v3, strlen(v3), now + 1),
      CSN_ECONFLICT);
  assert_int_equal(
      csn_store_cas(st, "c1", v2, strlen(v2) - 1, v3, strlen(v3), now + 1),
      CSN_ECONFLICT);
  assert_int_equal(csn_store_get(st, "c1", &json, &len), CSN_OK);
  assert_string_equal(json, v2);
  csn_free(json);
  assert_int_equal(sql_int(path, sql), 1);

  /* Missing: nothing inserted. */
  assert_int_equal(
      csn_store_cas(st, "none", REC, strlen(REC), v3, strlen(v3), now + 60000),
      CSN_ENOENT);
  assert_int_equal(
      sql_int(path, "SELECT count(*) FROM sessions WHERE sid = 'none'"), 0);

  /* Expired (even with the expected text): not revived, row untouched. */
  assert_int_equal(csn_store_set(st, "dead", REC, strlen(REC), now - 1),
                   CSN_OK);
  assert_int_equal(
      csn_store_cas(st, "dead", REC, strlen(REC), v3, strlen(v3), now + 60000),
      CSN_ENOENT);
  snprintf(sql, sizeof sql,
           "SELECT expired = %lld AND sess = '%s' FROM sessions WHERE sid = "
           "'dead'",
           (long long)(now - 1), REC);
  assert_int_equal(sql_int(path, sql), 1);

  /* A row written by Node (expired as a REAL, its own spacing): get hands
   * back its exact text, and cas on that text succeeds. */
  static const char node_rec[] = "{\"cookie\": {\"path\":\"/\"}, \"x\": 0.1}";
  snprintf(sql, sizeof sql, "INSERT INTO sessions VALUES ('node', %lld.0, "
           "'%s')", (long long)(now + 60000), node_rec);
  sql_exec(path, sql);
  assert_int_equal(csn_store_get(st, "node", &json, &len), CSN_OK);
  assert_string_equal(json, node_rec);
  assert_int_equal(csn_store_cas(st, "node", json, len, v3, strlen(v3),
                                 CSN_TIME_NONE),
                   CSN_OK);
  csn_free(json);
  /* A browser-session cookie: now + 1 day, as set() does. */
  long long e = sql_int(path, "SELECT expired FROM sessions WHERE sid='node'");
  assert_true(e >= now + 86400000 && e <= csn__now_ms() + 86400000);
  assert_int_equal(sql_int(path, "SELECT count(*) FROM sessions"), 3);
  csn_store_free(st);
}

/* Four processes, each with its own store on one database file, each
 * incrementing its own member of one record 100 times by read-modify-cas:
 * no increment is lost. */
#define CAS_PROCS 4
#define CAS_ROUNDS 100
static const char cas_fmt[] =
    "{\"cookie\":{\"path\":\"/\"},\"k0\":%d,\"k1\":%d,\"k2\":%d,\"k3\":%d}";

static int cas_child(const char *path, int me, int ready_fd, int go_fd,
                     int out_fd) {
  char url[1024], err[256], b = 'r';
  csn_store *st = NULL;
  long conflicts = 0;
  snprintf(url, sizeof url, "sqlite://%s?prune=0&pool=2", path);
  if (csn_store_sqlite_open(url, &st, err, sizeof err) != CSN_OK) {
    fprintf(stderr, "child %d open: %s\n", me, err);
    return 3;
  }
  /* Opened: tell the parent, then wait for its go (EOF), so that the four
   * loops run at the same time. */
  if (write(ready_fd, &b, 1) != 1 || read(go_fd, &b, 1) < 0) return 2;
  for (int i = 0; i < CAS_ROUNDS; i++) {
    for (;;) {
      char *json = NULL, next[256];
      size_t len = 0;
      int k[CAS_PROCS];
      int rc = csn_store_get(st, "shared", &json, &len);
      if (rc != CSN_OK) {
        fprintf(stderr, "child %d get: %s\n", me, csn_store_errmsg(st));
        return 4;
      }
      if (sscanf(json, cas_fmt, &k[0], &k[1], &k[2], &k[3]) != 4) return 5;
      k[me]++;
      snprintf(next, sizeof next, cas_fmt, k[0], k[1], k[2], k[3]);
      /* A request does some work between load and save: widen the window
       * in which another process can write first. */
      sleep_us(100);
      rc = csn_store_cas(st, "shared", json, len, next, strlen(next),
                         csn__now_ms() + 600000);
      csn_free(json);
      if (rc == CSN_OK) break;
      if (rc != CSN_ECONFLICT) {
        fprintf(stderr, "child %d cas: %s (%s)\n", me, csn_strerror(rc),
                csn_store_errmsg(st));
        return 6;
      }
      conflicts++;
    }
  }
  csn_store_free(st);
  if (write(out_fd, &conflicts, sizeof conflicts) != sizeof conflicts)
    return 7;
  return 0;
}

static void store_sqlite_cas_processes(void **state) {
  (void)state;
  char path[300], first[256];
  new_db(path, sizeof path);
  /* Create the file and the record, then close: no connection is carried
   * across fork(). */
  csn_store *st = open_db(path, "?prune=0");
  snprintf(first, sizeof first, cas_fmt, 0, 0, 0, 0);
  assert_int_equal(csn_store_set(st, "shared", first, strlen(first),
                                 csn__now_ms() + 600000),
                   CSN_OK);
  csn_store_free(st);

  int ready[2], go[2], out[2];
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(out), 0);
  pid_t pids[CAS_PROCS];
  for (int i = 0; i < CAS_PROCS; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      close(ready[0]);
      close(go[1]);
      close(out[0]);
      _exit(cas_child(path, i, ready[1], go[0], out[1]));
    }
  }
  close(ready[1]);
  close(go[0]);
  close(out[1]);
  /* Every child has opened its store (or died: then read() sees EOF early
   * and waitpid() below reports it). */
  char b;
  for (int i = 0; i < CAS_PROCS && read(ready[0], &b, 1) == 1; i++) {
  }
  close(ready[0]);
  close(go[1]); /* go */
  long conflicts = 0;
  for (int i = 0; i < CAS_PROCS; i++) {
    int status = 0;
    assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  for (long c; read(out[0], &c, sizeof c) == sizeof c;) conflicts += c;
  close(out[0]);
  print_message("cas across %d processes: %d increments, %ld conflicts "
                "retried\n",
                CAS_PROCS, CAS_PROCS * CAS_ROUNDS, conflicts);

  st = open_db(path, "?prune=0");
  char *json = NULL;
  size_t len = 0;
  int k[CAS_PROCS];
  assert_int_equal(csn_store_get(st, "shared", &json, &len), CSN_OK);
  assert_int_equal(sscanf(json, cas_fmt, &k[0], &k[1], &k[2], &k[3]), 4);
  for (int i = 0; i < CAS_PROCS; i++) assert_int_equal(k[i], CAS_ROUNDS);
  csn_free(json);
  csn_store_free(st);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-sqlite-XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) return 1;
  chmod(root, 0755);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_sqlite_schema_and_rows),
      cmocka_unit_test(store_sqlite_expiry_touch_prune),
      cmocka_unit_test(store_sqlite_prune_thread),
      cmocka_unit_test(store_sqlite_url_and_ids),
      cmocka_unit_test(store_sqlite_readonly_db),
      cmocka_unit_test(store_sqlite_private_files),
      cmocka_unit_test(store_sqlite_threads),
      cmocka_unit_test(store_sqlite_group_commit),
      cmocka_unit_test(store_sqlite_touch_keeps_bytes),
      cmocka_unit_test(store_sqlite_cas),
      cmocka_unit_test(store_sqlite_cas_processes),
  };
  int failed = cmocka_run_group_tests_name("store_sqlite", tests, NULL, NULL);
#ifdef CSN_HAVE_CONFORMANCE
  csn_conformance c = {0};
  c.open = conf_open;
  c.open_again = conf_open_again;
  c.cas = 1;
  c.all_expired = 1;
  failed += csn_conformance_run("store_sqlite_conformance", &c);
#endif
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return failed;
}
