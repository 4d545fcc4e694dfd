/* test_fault_http.c - real store failures seen through real HTTP.
 *
 * Issue 4 asks that a store whose directory turns read-only, or whose disk
 * stops taking writes, in the middle of a run answers HTTP 500 while the
 * record saved before stays intact, and that the server recovers once the
 * fault is gone. The store tests prove the store half; these tests prove
 * the whole chain: libmicrohttpd -> adapter -> core -> store -> kernel.
 *
 * No fault hook is used. The failures are the kernel's own:
 *   - EACCES: the FileStore's directory made read-only (chmod 0500);
 *   - "attempt to write a readonly database": the SQLite file made 0400;
 *   - EFBIG: RLIMIT_FSIZE lowered on the running server, so the next
 *     write past a few bytes fails as it would on a full quota.
 *
 * Why a child process. The tests run as root, and root ignores permission
 * bits, so a chmod would change nothing. The server therefore runs in a
 * forked child that drops to "nobody" (setgroups/setgid/setuid) and owns
 * the data directory; the parent stays root and plays two parts: the
 * browser (a libcurl client with a cookie jar) and the operator, who breaks
 * the store from outside (chmod, file-size limit), reads the record back
 * through csn_store_get() and repairs it. Run as another user, the child
 * keeps that user and the chmod alone does the job.
 *
 * The file-size limit belongs to the server process, so the parent asks
 * the child over a pipe to set it on itself (prlimit(2) from outside would
 * need CAP_SYS_RESOURCE across users, which containers often drop). The
 * child ignores SIGXFSZ, so the write fails with EFBIG instead of killing
 * it.
 *
 * Each child also answers GET /state with what its handler last saw (did
 * the session load, what the counter became, the last logged error), so a
 * 500 is shown to come from the failing write and not from, say, a read
 * that could not open the file.
 *
 * Everything lives under one mkdtemp() directory that the teardown removes;
 * a child still running after a failed assertion is killed by its pid. */
#define _GNU_SOURCE /* setgroups(), nftw() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

/* Under -DCSN_SANITIZE=ON the child checks itself for leaks before its
 * _exit() (which skips LeakSanitizer's exit-time check): the failing-write
 * paths it ran live only there. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define CHILD_LEAKED() (__lsan_do_recoverable_leak_check() != 0)
#else
#define CHILD_LEAKED() 0
#endif

#include "csn/csn.h"
#include "csn/csn_store_file.h"
#ifdef CSN_HAVE_SQLITE_STORE
#include "csn/csn_store_sqlite.h"
#endif
#include "http_harness.h"

#define SECRET "keyboard cat"

/* ------------------------------------------------------------------------ */
/* The server child                                                         */
/* ------------------------------------------------------------------------ */

/* What the child's handler last saw; worker threads write, /state reads. */
static struct {
  pthread_mutex_t mu;
  int begin_rc;
  long long views;
  int logs;
  char log_msg[512];
} seen = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0, ""};

static void child_log(int err, const char *message, void *ud) {
  (void)err;
  (void)ud;
  pthread_mutex_lock(&seen.mu);
  seen.logs++;
  snprintf(seen.log_msg, sizeof seen.log_msg, "%s", message);
  pthread_mutex_unlock(&seen.mu);
}

static csn_mhd_result child_handler(const http_req *r) {
  csn_request *req = NULL;
  int64_t views = 0;
  char body[700];
  int rc;

  if (strcmp(r->url, "/state") == 0) {
    pthread_mutex_lock(&seen.mu);
    snprintf(body, sizeof body, "begin=%d views=%lld logs=%d msg=%s",
             seen.begin_rc, seen.views, seen.logs, seen.log_msg);
    pthread_mutex_unlock(&seen.mu);
    return http_reply(r->conn, NULL, MHD_HTTP_OK, body, NULL);
  }
  rc = csn_mhd_begin(r->ctx, r->conn, r->url, &req);
  if (rc == CSN_OK && csn_request_session(req) != NULL)
    rc = csn_session_incr(csn_request_session(req), "views", 1, &views);
  pthread_mutex_lock(&seen.mu);
  seen.begin_rc = rc;
  seen.views = (long long)views;
  pthread_mutex_unlock(&seen.mu);
  if (rc != CSN_OK) {
    csn_request_free(req);
    return csn_mhd_error(r->ctx, r->conn, rc);
  }
  snprintf(body, sizeof body, "views=%lld", (long long)views);
  /* The commit (the store's set) happens in here; if it fails, the
   * adapter queues the default error response instead. */
  return http_reply(r->conn, req, MHD_HTTP_OK, body, NULL);
}

/* The child's whole life: become `uid`, open the store, serve, report the
 * port on `rep`, obey commands on `ctl` until end-of-file, clean up. A
 * command is 'F' and an rlim_t: set RLIMIT_FSIZE's soft limit, answer one
 * byte ('0' done, '1' refused) on `rep`. The exit
 * status says which step failed. No server or store thread runs in the
 * parent when it forks, so the child may allocate and start threads. */
static int child_main(const char *url, uid_t uid, gid_t gid, int ctl,
                      int rep) {
  csn_store *st = NULL;
  csn_ctx *ctx;
  http_server *srv = NULL;
  http_server_opts so;
  csn_options o;
  char err[256] = "", byte;
  uint16_t port;

  /* A write past RLIMIT_FSIZE raises SIGXFSZ, whose default action kills
   * the process; ignored, the write fails with EFBIG like any I/O error. */
  signal(SIGXFSZ, SIG_IGN);
  if (getuid() == 0 &&
      (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
    return 90;
  if (csn_store_open(url, &st, err, sizeof err) != CSN_OK) {
    fprintf(stderr, "child: open %s: %s\n", url, err);
    return 91;
  }
  csn_options_init(&o);
  o.store = st;
  o.log = child_log;
  o.cookie.max_age_ms = 600000;
  ctx = http_ctx_new(&o);
  memset(&so, 0, sizeof so);
  so.ctx = ctx;
  so.handler = child_handler;
  if (http_server_start(&so, &srv) != 0)
    return 92;
  port = http_server_port(srv);
  if (write(rep, &port, sizeof port) != (ssize_t)sizeof port)
    return 93;
  /* Serve until the parent closes its end (or dies). */
  while (read(ctl, &byte, 1) > 0) {
    struct rlimit lim;
    rlim_t soft;
    char ok = '1';
    if (byte != 'F' || read(ctl, &soft, sizeof soft) != (ssize_t)sizeof soft)
      return 94;
    if (getrlimit(RLIMIT_FSIZE, &lim) == 0) {
      lim.rlim_cur = soft <= lim.rlim_max ? soft : lim.rlim_max;
      if (setrlimit(RLIMIT_FSIZE, &lim) == 0)
        ok = '0';
    }
    if (write(rep, &ok, 1) != 1)
      return 95;
  }
  http_server_stop(srv);
  csn_ctx_free(ctx);
  csn_store_free(st);
  return CHILD_LEAKED() ? 96 : 0;
}

/* ------------------------------------------------------------------------ */
/* Fixture (the parent: browser and operator)                               */
/* ------------------------------------------------------------------------ */

typedef struct fixture {
  char base[64];   /* our mkdtemp() directory */
  char data[128];  /* the store's directory, owned by the server's user */
  char db[160];    /* SQLite: the database file */
  char url[256];   /* the store URL, for the child and the parent alike */
  uid_t uid;       /* the server's user: nobody when we are root */
  gid_t gid;
  pid_t child;     /* the running server, or 0 */
  int ctl;         /* commands to the child; closing it stops the child */
  int rep;         /* the child's answers */
  uint16_t port;
  http_client *jar;
} fixture;

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static uid_t chown_uid;
static gid_t chown_gid;
static int chown_one(const char *p, const struct stat *sb, int flag,
                     struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return lchown(p, chown_uid, chown_gid);
}

/* Files the parent's own store access created as root (SQLite's -wal and
 * -shm) would lock the unprivileged server out of its own database: give
 * everything in the data directory back to the server's user. */
static void hand_back(fixture *f) {
  if (getuid() != 0)
    return;
  chown_uid = f->uid;
  chown_gid = f->gid;
  assert_int_equal(nftw(f->data, chown_one, 16, FTW_PHYS), 0);
}

/* The other way: the parent (root) reads the store itself, and the file
 * store trusts only a directory and files of its own user, so it takes
 * them over for the read; hand_back() returns them afterwards. */
static void take_over(fixture *f) {
  if (getuid() != 0)
    return;
  chown_uid = 0;
  chown_gid = 0;
  assert_int_equal(nftw(f->data, chown_one, 16, FTW_PHYS), 0);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  struct passwd *pw;

  assert_non_null(f);
  snprintf(f->base, sizeof f->base, "/tmp/csn-fault-http-XXXXXX");
  assert_non_null(mkdtemp(f->base));
  f->uid = getuid();
  f->gid = getgid();
  if (getuid() == 0) {
    /* The unprivileged server must be able to reach its directory. */
    pw = getpwnam("nobody");
    f->uid = pw ? pw->pw_uid : 65534;
    f->gid = pw ? pw->pw_gid : 65534;
    assert_int_equal(chmod(f->base, 0711), 0);
  }
  snprintf(f->data, sizeof f->data, "%s/data", f->base);
  assert_int_equal(mkdir(f->data, 0700), 0);
  hand_back(f);
  f->jar = http_client_new(1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->child > 0) {
    /* A failed assertion left the server running: end it by its pid. */
    kill(f->child, SIGKILL);
    waitpid(f->child, NULL, 0);
    close(f->ctl);
    close(f->rep);
    f->child = 0;
  }
  http_client_free(f->jar);
  /* Restore what a failed test may have left read-only before removing. */
  chmod(f->data, 0700);
  if (f->db[0] != '\0')
    chmod(f->db, 0600);
  nftw(f->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(f);
  return 0;
}

/* Start a server child on f->url; returns once it listens. */
static void server_start(fixture *f) {
  int ctl[2], rep[2];
  ssize_t n;
  pid_t pid;

  assert_int_equal(pipe(ctl), 0);
  assert_int_equal(pipe(rep), 0);
  fflush(NULL); /* nothing buffered may be written twice */
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(ctl[1]);
    close(rep[0]);
    /* _exit: the parent's atexit handlers and cmocka's state are not the
     * child's to run. */
    _exit(child_main(f->url, f->uid, f->gid, ctl[0], rep[1]));
  }
  close(ctl[0]);
  close(rep[1]);
  f->child = pid;
  f->ctl = ctl[1];
  f->rep = rep[0];
  n = read(f->rep, &f->port, sizeof f->port);
  if (n != (ssize_t)sizeof f->port) {
    int status = 0;
    waitpid(pid, &status, 0);
    f->child = 0;
    close(f->ctl);
    close(f->rep);
    fail_msg("server child did not start (status %d)", status);
  }
}

/* Ask the child to finish and check that it shut down cleanly. */
static void server_stop(fixture *f) {
  int status = 0;
  close(f->ctl);
  close(f->rep);
  assert_int_equal(waitpid(f->child, &status, 0), f->child);
  f->child = 0;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static http_response get_path(fixture *f, const char *path) {
  char url[128];
  http_response r;
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)f->port,
           path);
  if (http_get(f->jar, url, NULL, &r) != 0)
    fail_msg("GET %s failed: %s", url, r.error);
  return r;
}

/* One browser visit that must answer 200 with the given counter. */
static void expect_views(fixture *f, long long want) {
  char body[64];
  http_response r = get_path(f, "/");
  snprintf(body, sizeof body, "views=%lld", want);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, body);
  http_response_free(&r);
}

/* One visit while the store is broken: the default error response, no
 * cookie; /state shows that the session did load (the counter went from 2
 * to 3 in memory) and that the logged error carries `why` (the kernel's or
 * SQLite's words), so the failure was the write. */
static void expect_write_500(fixture *f, const char *why) {
  http_response r = get_path(f, "/");
  assert_int_equal(r.status, 500);
  assert_string_equal(r.body, "Internal Server Error\n");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);

  r = get_path(f, "/state");
  assert_int_equal(r.status, 200);
  print_message("server state after the 500: %s\n", r.body);
  if (strstr(r.body, why) == NULL)
    fail_msg("expected \"%s\" in the child's state: %s", why, r.body);
  assert_non_null(strstr(r.body, "begin=0 views=3 "));
  http_response_free(&r);
}

/* The counter of the browser's session as the store holds it, read by the
 * parent through its own store handle (taking the files over for it). */
static long long stored_views(fixture *f) {
  csn_store *st = NULL;
  char err[256] = "", *value, *sid, *rec = NULL;
  size_t len = 0;
  json_t *j, *v;
  long long views;
  int rc;

  value = http_client_cookie(f->jar, "connect.sid");
  assert_non_null(value);
  sid = http_cookie_sid(value, SECRET);
  assert_non_null(sid);
  take_over(f);
  rc = csn_store_open(f->url, &st, err, sizeof err);
  if (rc != CSN_OK)
    fail_msg("parent open %s: %s", f->url, err);
  rc = csn_store_get(st, sid, &rec, &len);
  if (rc != CSN_OK)
    fail_msg("parent get: %s: %s", csn_err_name(rc), csn_store_errmsg(st));
  j = json_loadb(rec, len, 0, NULL);
  assert_non_null(j);
  v = json_object_get(j, "views");
  assert_true(json_is_integer(v));
  views = (long long)json_integer_value(v);
  json_decref(j);
  csn_free(rec);
  csn_store_free(st);
  free(sid);
  free(value);
  hand_back(f);
  return views;
}

/* Lower (or restore) the running child's file-size limit. */
static void limit_child_fsize(fixture *f, rlim_t soft) {
  char cmd[1 + sizeof soft], ok = 0;
  cmd[0] = 'F';
  memcpy(cmd + 1, &soft, sizeof soft);
  assert_int_equal(write(f->ctl, cmd, sizeof cmd), (ssize_t)sizeof cmd);
  assert_int_equal(read(f->rep, &ok, 1), 1);
  assert_int_equal(ok, '0');
}

/* Number of entries in the data directory (a failed write must leave no
 * temporary file behind). */
static int dir_entries(const char *dir) {
  char cmd[256], line[64];
  FILE *p;
  int n = -1;
  /* Not the store's lock file and spare directory: only sessions and
   * temporary files count. */
  snprintf(cmd, sizeof cmd,
           "ls -A '%s' | grep -vx -e '.csn.lock' -e '.csn-spare' | wc -l", dir);
  p = popen(cmd, "r");
  assert_non_null(p);
  if (fgets(line, sizeof line, p) != NULL)
    n = atoi(line);
  pclose(p);
  return n;
}

/* ------------------------------------------------------------------------ */
/* FileStore                                                                */
/* ------------------------------------------------------------------------ */

static void file_url(fixture *f) {
  /* reap=0: no reaper thread, nothing but the requests touches the files */
  snprintf(f->url, sizeof f->url, "file://%s?reap=0", f->data);
}

/* The directory becomes read-only while the server runs. */
static void fault_http_file_readonly_dir(void **state) {
  fixture *f = *state;
  file_url(f);
  server_start(f);
  expect_views(f, 1);
  expect_views(f, 2);

  assert_int_equal(chmod(f->data, 0500), 0);
  expect_write_500(f, "Permission denied");
  /* Still read-only: the record the browser saw last is on disk. */
  assert_int_equal(stored_views(f), 2);
  assert_int_equal(dir_entries(f->data), 1);

  assert_int_equal(chmod(f->data, 0700), 0);
  expect_views(f, 3);
  server_stop(f);
  assert_int_equal(stored_views(f), 3);
}

/* Writes start failing with EFBIG mid-run (a full quota, as far as the
 * store can tell), then succeed again. */
static void fault_http_file_disk_full(void **state) {
  fixture *f = *state;
  file_url(f);
  server_start(f);
  expect_views(f, 1);
  expect_views(f, 2);

  /* A record is ~150 bytes: the first write is cut short at 8, the retry
   * of the rest fails with EFBIG. */
  limit_child_fsize(f, 8);
  expect_write_500(f, strerror(EFBIG));
  assert_int_equal(stored_views(f), 2);
  /* The half-written temporary file was removed. */
  assert_int_equal(dir_entries(f->data), 1);

  limit_child_fsize(f, RLIM_INFINITY);
  expect_views(f, 3);
  server_stop(f);
  assert_int_equal(stored_views(f), 3);
}

/* ------------------------------------------------------------------------ */
/* SQLite                                                                   */
/* ------------------------------------------------------------------------ */

#ifdef CSN_HAVE_SQLITE_STORE
static void sqlite_url(fixture *f) {
  /* Registered by hand: a static link keeps no self-registering
   * constructor. prune=0: no prune thread; busy: fail fast. */
  assert_int_equal(csn_store_register("sqlite", csn_store_sqlite_open),
                   CSN_OK);
  snprintf(f->db, sizeof f->db, "%s/s.db", f->data);
  snprintf(f->url, sizeof f->url, "sqlite://%s?prune=0&busy=200", f->db);
}

/* The repair: the database file writable again, and its -wal and -shm
 * too. SQLite creates those with the database file's mode, so a server
 * that ran against the 0400 file leaves a 0400 -shm behind, and while it
 * exists every later connection is read-only even after the main file is
 * fixed (as root the parent's own read happens to delete them; as any
 * other user they stay). An operator has to fix all three. */
static void sqlite_restore(fixture *f) {
  static const char *const suffix[] = {"", "-wal", "-shm"};
  char path[200];
  for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
    snprintf(path, sizeof path, "%s%s", f->db, suffix[i]);
    if (chmod(path, 0600) != 0)
      assert_true(i > 0 && errno == ENOENT);
  }
}

/* The database file turns read-only. An open SQLite connection keeps its
 * read-write descriptor and would not notice a chmod, so the fault is met
 * the way a real deployment meets it: the server restarts and finds the
 * file read-only. SQLite then opens it read-only, reads work (the session
 * loads) and the write fails. */
static void fault_http_sqlite_readonly_db(void **state) {
  fixture *f = *state;
  sqlite_url(f);
  server_start(f);
  expect_views(f, 1);
  expect_views(f, 2);
  server_stop(f);

  assert_int_equal(chmod(f->db, 0400), 0);
  server_start(f);
  expect_write_500(f, "readonly");
  server_stop(f);

  sqlite_restore(f);
  assert_int_equal(stored_views(f), 2);
  server_start(f);
  expect_views(f, 3);
  server_stop(f);
  assert_int_equal(stored_views(f), 3);
}

/* Writes to the WAL fail with EFBIG mid-run; the transaction rolls back,
 * the committed record stays, and the same connection recovers. */
static void fault_http_sqlite_disk_full(void **state) {
  fixture *f = *state;
  sqlite_url(f);
  server_start(f);
  expect_views(f, 1);
  expect_views(f, 2);

  /* Every WAL frame is 24 + 4096 bytes, so any frame write ends past
   * 1 KiB, wherever the log restarts. */
  limit_child_fsize(f, 1024);
  expect_write_500(f, "disk I/O error");
  assert_int_equal(stored_views(f), 2);

  limit_child_fsize(f, RLIM_INFINITY);
  expect_views(f, 3);
  assert_int_equal(stored_views(f), 3);
  server_stop(f);
  assert_int_equal(stored_views(f), 3);
}
#endif

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(fault_http_file_readonly_dir, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(fault_http_file_disk_full, setup,
                                      teardown),
#ifdef CSN_HAVE_SQLITE_STORE
      cmocka_unit_test_setup_teardown(fault_http_sqlite_readonly_db, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(fault_http_sqlite_disk_full, setup,
                                      teardown),
#endif
  };
  /* Optional filter ("fault_http_file_*"): one ctest entry per store. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  /* A server child killed by the teardown must not take us with it. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests_name("fault_http", tests, NULL, NULL);
}
