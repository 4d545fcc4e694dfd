/* test_harden_corrupt.c - a stored record that cannot be read is no
 * session, in every store (issue 15, "Also" list).
 *
 * Before: the file store reported a corrupt file as absent (a fresh
 * session), while with the memory and SQLite stores csn_request_begin()
 * failed with CSN_ECORRUPT, so that user got a 500 on every request until
 * the record expired. Now the core treats text that is no record at all
 * (not JSON, not an object; or the store's own CSN_ECORRUPT) as a missing
 * record: a fresh session with a new id starts, the context's log hook
 * hears of it with the store's name and never the id, and the record is
 * left where it is. A JSON object without a usable "cookie" member is a
 * record and still fails as express-session's inflate fails it (its test
 * 47) - in every store alike.
 *
 * Each record is planted directly: in the memory store with
 * csn_store_set() (it keeps bytes as given), in SQLite with SQL, in the
 * file store as a file written beside the store's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "csn_int.h"
#include "csn/csn_store_file.h"
#include "request_rig.h"
#ifdef CSN_TEST_HAVE_SQLITE
#include <sqlite3.h>

#include "csn/csn_store_sqlite.h"
#endif

static const char *const KEYS[] = {"keyboard cat"};

/* What the log hook heard. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[4096];
static int log_corrupt;

static void log_hook(int err, const char *message, void *ud) {
  (void)ud;
  pthread_mutex_lock(&log_lock);
  if (err == CSN_ECORRUPT)
    log_corrupt++;
  strncat(log_text, message, sizeof log_text - strlen(log_text) - 2);
  strcat(log_text, "\n");
  pthread_mutex_unlock(&log_lock);
}

static void log_reset(void) {
  pthread_mutex_lock(&log_lock);
  log_text[0] = '\0';
  log_corrupt = 0;
  pthread_mutex_unlock(&log_lock);
}

static csn_ctx *new_ctx(csn_store *st) {
  csn_options o;
  csn_ctx *ctx = NULL;
  char err[256];
  csn_options_init(&o);
  o.secrets = KEYS;
  o.n_secrets = 1;
  o.cookie.max_age_ms = 60000;
  o.store = st;
  o.log = log_hook;
  if (csn_ctx_new(&ctx, &o, err, sizeof err) != CSN_OK)
    fail_msg("csn_ctx_new: %s", err);
  return ctx;
}

static void cookie_for(const char *sid, char *out, size_t size) {
  char v[192];
  size_t n = sizeof v;
  assert_int_equal(csn_cookie_sign(sid, strlen(sid), KEYS[0], strlen(KEYS[0]),
                                   v, &n),
                   CSN_OK);
  snprintf(out, size, "connect.sid=s%%3A%s", v);
}

/* Texts that are no session record at all. `store_judges` marks the ones
 * the file store itself calls corrupt and reports as absent without
 * telling the core, so nothing is logged for them there. */
static const struct {
  const char *text;
  int store_judges;
} BAD[] = {
    {"this is not JSON", 1},
    {"[1,2,3]", 1},
    {"\"a string\"", 1},
    {"{\"cookie\":{\"path\":\"/\"},", 1}, /* cut short */
    {"", 1},
};

/* JSON objects without a usable cookie: records, which fail as
 * express-session's inflate fails them (its test 47), in every store. */
static const char *const NO_COOKIE[] = {
    "{\"views\":3}",
    "{\"cookie\":5,\"views\":3}",
};

/* The planted record under `sid` must give a fresh session, logged
 * (unless the store hid it, `logged` 0) without the id, and stay in the
 * store (`still_there` tells whether it does). */
static void expect_fresh(csn_ctx *ctx, const char *sid, int logged,
                         int (*still_there)(void *), void *ud) {
  char cookie[256], *sc = NULL;
  csn_request *r;
  csn_session *s;
  csn_request_info in;
  int rc;

  cookie_for(sid, cookie, sizeof cookie);
  log_reset();
  memset(&in, 0, sizeof in);
  in.cookie_header = cookie;
  in.url = "/";
  r = NULL;
  rc = csn_request_begin(ctx, &in, &r);
  if (rc != CSN_OK)
    fail_msg("%s: a corrupt record failed the request: %s (%s)",
             csn_store_name(csn_ctx_store(ctx)), csn_err_name(rc),
             csn_last_error());
  s = csn_request_session(r);
  assert_non_null(s);
  /* A new id, nothing of the planted data. */
  assert_string_not_equal(csn_session_id(s), sid);
  assert_int_equal(csn_session_count(s), 0);
  assert_int_equal(csn_session_incr(s, "views", 1, NULL), CSN_OK);
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  /* The new session is saved and its cookie sent. */
  assert_non_null(sc);
  assert_null(strstr(sc, sid));
  csn_free(sc);

  pthread_mutex_lock(&log_lock);
  if (logged) {
    assert_int_equal(log_corrupt, 1);
    assert_non_null(strstr(log_text, csn_store_name(csn_ctx_store(ctx))));
  }
  /* Never the id (a credential), whatever was logged. */
  assert_null(strstr(log_text, sid));
  pthread_mutex_unlock(&log_lock);
  if (still_there != NULL)
    assert_true(still_there(ud));
}

/* A record without a usable cookie fails the request (CSN_ECORRUPT). */
static void expect_inflate_error(csn_ctx *ctx, const char *sid) {
  char cookie[256];
  csn_request *r = NULL;
  csn_request_info in;
  cookie_for(sid, cookie, sizeof cookie);
  memset(&in, 0, sizeof in);
  in.cookie_header = cookie;
  in.url = "/";
  assert_int_equal(csn_request_begin(ctx, &in, &r), CSN_ECORRUPT);
  assert_null(r);
  assert_non_null(strstr(csn_last_error(), "cookie"));
}

/* ---------------------------------------------------------------------- */

typedef struct held {
  csn_store *st;
  const char *sid;
} held;

static int store_has(void *ud) {
  held *h = ud;
  char *json = NULL;
  size_t n = 0;
  int rc = csn_store_get(h->st, h->sid, &json, &n);
  csn_free(json);
  /* Present, as a record (OK) or as something the store calls corrupt. */
  return rc == CSN_OK || rc == CSN_ECORRUPT;
}

static void harden_corrupt_memory(void **state) {
  csn_store *st = NULL;
  csn_ctx *ctx;
  char err[256];
  (void)state;
  assert_int_equal(csn_store_open("memory://", &st, err, sizeof err), CSN_OK);
  ctx = new_ctx(st);
  for (size_t i = 0; i < CSN__ARRAY_SIZE(BAD); i++) {
    char sid[64];
    held h;
    snprintf(sid, sizeof sid, "planted-memory-%zu", i);
    assert_int_equal(csn_store_set(st, sid, BAD[i].text, strlen(BAD[i].text),
                                   csn__now_ms() + 600000),
                     CSN_OK);
    h.st = st;
    h.sid = sid;
    expect_fresh(ctx, sid, 1, store_has, &h);
  }
  for (size_t i = 0; i < CSN__ARRAY_SIZE(NO_COOKIE); i++) {
    char sid[64];
    snprintf(sid, sizeof sid, "nocookie-memory-%zu", i);
    assert_int_equal(csn_store_set(st, sid, NO_COOKIE[i],
                                   strlen(NO_COOKIE[i]),
                                   csn__now_ms() + 600000),
                     CSN_OK);
    expect_inflate_error(ctx, sid);
  }
  csn_ctx_free(ctx);
  csn_store_free(st);
}

/* ---------------------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void) {
  strcpy(tmpdir, "/tmp/csn-harden-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  char cmd[128];
  /* Test data only: the directory mkdtemp made. */
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmpdir);
}

typedef struct file_held {
  const char *dir;
  const char *sid;
} file_held;

static int file_exists(void *ud) {
  file_held *h = ud;
  char path[256];
  struct stat sb;
  snprintf(path, sizeof path, "%s/%s.json", h->dir, h->sid);
  return stat(path, &sb) == 0;
}

static void plant_file(const char *dir, const char *sid, const char *text) {
  char path[256];
  int fd;
  snprintf(path, sizeof path, "%s/%s.json", dir, sid);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static void harden_corrupt_file(void **state) {
  csn_store *st = NULL;
  csn_ctx *ctx;
  char err[256], url[160], dir[128];
  (void)state;
  make_tmpdir();
  snprintf(dir, sizeof dir, "%s/sessions", tmpdir);
  snprintf(url, sizeof url, "file://%s", dir);
  if (csn_store_open(url, &st, err, sizeof err) != CSN_OK)
    fail_msg("file store: %s", err);
  ctx = new_ctx(st);
  for (size_t i = 0; i < CSN__ARRAY_SIZE(BAD); i++) {
    char sid[64];
    file_held h;
    snprintf(sid, sizeof sid, "planted-file-%zu", i);
    plant_file(dir, sid, BAD[i].text);
    h.dir = dir;
    h.sid = sid;
    expect_fresh(ctx, sid, !BAD[i].store_judges, file_exists, &h);
  }
  for (size_t i = 0; i < CSN__ARRAY_SIZE(NO_COOKIE); i++) {
    char sid[64];
    snprintf(sid, sizeof sid, "nocookie-file-%zu", i);
    plant_file(dir, sid, NO_COOKIE[i]);
    expect_inflate_error(ctx, sid);
  }
  csn_ctx_free(ctx);
  csn_store_free(st);
  remove_tmpdir();
}

/* ---------------------------------------------------------------------- */

#ifdef CSN_TEST_HAVE_SQLITE
typedef struct sq_held {
  const char *path;
  const char *sid;
} sq_held;

static int sq_exec(const char *path, const char *sql, int want_row) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int rc, row = 0;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
  while ((rc = sqlite3_step(q)) == SQLITE_ROW)
    row = 1;
  assert_int_equal(rc, SQLITE_DONE);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return want_row ? row : 1;
}

static int sq_has(void *ud) {
  sq_held *h = ud;
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT 1 FROM sessions WHERE sid = '%s'",
           h->sid);
  return sq_exec(h->path, sql, 1);
}

static void harden_corrupt_sqlite(void **state) {
  csn_store *st = NULL;
  csn_ctx *ctx;
  char err[256], url[160], path[128];
  (void)state;
  make_tmpdir();
  snprintf(path, sizeof path, "%s/sessions.db", tmpdir);
  snprintf(url, sizeof url, "sqlite://%s?prune=0", path);
  if (csn_store_sqlite_open(url, &st, err, sizeof err) != CSN_OK)
    fail_msg("sqlite store: %s", err);
  ctx = new_ctx(st);
  /* The planted texts, and a row whose sess is NULL: the store itself
   * answers CSN_ECORRUPT for that one. */
  for (size_t i = 0; i <= CSN__ARRAY_SIZE(BAD); i++) {
    char sid[64], sql[512];
    sq_held h;
    snprintf(sid, sizeof sid, "planted-sqlite-%zu", i);
    if (i < CSN__ARRAY_SIZE(BAD)) {
      char *q = sqlite3_mprintf(
          "INSERT INTO sessions VALUES ('%q', %lld, '%q')", sid,
          (long long)(csn__now_ms() + 600000), BAD[i].text);
      snprintf(sql, sizeof sql, "%s", q);
      sqlite3_free(q);
    } else {
      snprintf(sql, sizeof sql,
               "INSERT INTO sessions VALUES ('%s', %lld, NULL)", sid,
               (long long)(csn__now_ms() + 600000));
    }
    sq_exec(path, sql, 0);
    h.path = path;
    h.sid = sid;
    expect_fresh(ctx, sid, 1, sq_has, &h);
  }
  for (size_t i = 0; i < CSN__ARRAY_SIZE(NO_COOKIE); i++) {
    char sid[64], *q;
    snprintf(sid, sizeof sid, "nocookie-sqlite-%zu", i);
    q = sqlite3_mprintf("INSERT INTO sessions VALUES ('%q', %lld, '%q')", sid,
                        (long long)(csn__now_ms() + 600000), NO_COOKIE[i]);
    sq_exec(path, q, 0);
    sqlite3_free(q);
    expect_inflate_error(ctx, sid);
  }
  csn_ctx_free(ctx);
  csn_store_free(st);
  remove_tmpdir();
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(harden_corrupt_memory),
      cmocka_unit_test(harden_corrupt_file),
#ifdef CSN_TEST_HAVE_SQLITE
      cmocka_unit_test(harden_corrupt_sqlite),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
