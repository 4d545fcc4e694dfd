/* test_http_concurrency.c - no lost updates, through HTTP, with the real
 * csession-demo program (issue 9).
 *
 * express-session saves the whole record at the end of each request, so two
 * requests that load one session at the same time each write back their own
 * copy and the later one erases the earlier one's change; a slow request
 * that loaded the session before a logout writes it back after the logout.
 * These cases drive the demo's /inc route (a read-modify-write with an
 * optional pause between the load and the change) the way a browser with
 * many tabs would, for each store that shares sessions:
 *
 *   parallel    8 clients share one cookie, each adds 1 to its own key 100
 *               times: every key must end at 100;
 *   logout      /inc?delay=500 is in flight when /logout arrives: the
 *               session must stay destroyed, over HTTP and in the store;
 *   two procs   the same as "parallel" with each client's requests
 *               alternating between two demo processes on one file
 *               directory or one SQLite database.
 *
 * The demo runs with 8 worker threads so requests really overlap. Client
 * threads only record what happened (cmocka's assertions longjmp and must
 * stay on the main thread); the main thread checks and reports which key
 * lost how many increments. Everything is on 127.0.0.1 and every request
 * is bounded by the harness's curl timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#ifdef CSN_TEST_HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "demo_client.h"

#define SECRET "concurrency secret"
#define CLIENTS 8
#define ROUNDS 100
/* Each /inc pauses this long between loading the session and changing it.
 * The race is in that window, and a memory store's window is a few
 * microseconds: without the pause, 800 increments through the memory
 * store lost none on a 2-CPU machine before compare-and-set existed, so
 * the case could not fail. One millisecond makes the clients' requests
 * overlap for certain and adds about 0.1 s per case. */
#define INC_DELAY_MS 1

typedef enum store_kind { STORE_MEMORY, STORE_FILE, STORE_SQLITE } store_kind;

/* One store under test: its URL and, for file and SQLite, the temporary
 * directory that holds it (removed afterwards). */
typedef struct store_case {
  store_kind kind;
  char dir[64];
  char url[160];
  char db[128]; /* SQLite: the database file */
} store_case;

static void store_case_init(store_case *sc, store_kind kind) {
  memset(sc, 0, sizeof *sc);
  sc->kind = kind;
  if (kind == STORE_MEMORY) {
    snprintf(sc->url, sizeof sc->url, "memory://");
    return;
  }
  snprintf(sc->dir, sizeof sc->dir, "/tmp/csn-conc-XXXXXX");
  assert_non_null(mkdtemp(sc->dir));
  if (kind == STORE_FILE) {
    snprintf(sc->url, sizeof sc->url, "file://%s", sc->dir);
  } else {
    snprintf(sc->db, sizeof sc->db, "%s/s.db", sc->dir);
    snprintf(sc->url, sizeof sc->url, "sqlite://%s", sc->db);
  }
}

static void store_case_cleanup(store_case *sc) {
  char cmd[128];
  if (sc->dir[0] == '\0')
    return;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sc->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", sc->dir);
  sc->dir[0] = '\0';
}

/* A case's fixture: the demos and the session (tests/demo_client.h; the
 * shared teardown stops and frees them) and the store's directory. */
typedef struct fixture {
  demo_fixture df; /* first */
  store_case sc;
} fixture;

static void fixture_cleanup(demo_fixture *df) {
  store_case_cleanup(&((fixture *)df)->sc);
}

static int setup(void **state) {
  return demo_fixture_new(state, sizeof(fixture), fixture_cleanup);
}

/* Start a demo on the store with enough workers for requests to overlap. */
static void demo_up(demo_proc *d, const store_case *sc) {
  demo_start_store(d, SECRET, 8, sc->url, NULL, sc->url);
}

/* A clean exit is part of the check: a demo that crashed under the load
 * would show here. */
static void demo_down(demo_proc *d) {
  assert_int_equal(demo_proc_stop(d), 0);
}

/* A first visit to "/" stores a session (views: 1) and returns the cookie
 * every later request sends: "connect.sid=s%3A...". The id goes to *sid
 * when sid is not NULL. Both malloc'd. */
static char *first_visit(const char *base, char **sid) {
  return demo_new_session(base, "/", NULL, SECRET, sid);
}

/* ------------------------------------------------------------------------ */
/* Clients hammering one session                                            */
/* ------------------------------------------------------------------------ */

/* Run CLIENTS hammers (tests/demo_client.h), client i on key k<i> with
 * ROUNDS requests /inc?k=k<i>&delay=INC_DELAY_MS, then read the session
 * from bases[0] and fail with one line per key that did not reach ROUNDS:
 * which key, expected, got, and how its requests were answered. */
static void hammer_and_check(const char *label, const char *const *bases,
                             size_t n_bases, const char *cookie) {
  demo_hammer h[CLIENTS];
  char report[2048];
  long lost;
  double took;
  json_t *sess;
  int bad;

  took = demo_hammer_all(h, CLIENTS, bases, n_bases, cookie, ROUNDS,
                         INC_DELAY_MS, NULL);
  sess = demo_read_session(bases[0], cookie);
  bad = demo_hammer_judge(h, CLIENTS, &sess, 1, report, sizeof report, &lost);
  json_decref(sess);
  print_message("%s: %d clients x %d increments in %.2f s, %ld lost\n", label,
                CLIENTS, ROUNDS, took, lost);
  if (bad)
    fail_msg("%s: lost %ld of %d increments on one session:%s", label, lost,
             CLIENTS * ROUNDS, report);
}

/* ------------------------------------------------------------------------ */
/* a. Eight clients, one session, one process                               */
/* ------------------------------------------------------------------------ */

static void parallel_incr(fixture *f, store_kind kind) {
  const char *bases[1];

  store_case_init(&f->sc, kind);
  demo_up(&f->df.d[0], &f->sc);
  f->df.cookie = first_visit(f->df.d[0].base, NULL);
  bases[0] = f->df.d[0].base;
  hammer_and_check(f->sc.url, bases, 1, f->df.cookie);
  demo_down(&f->df.d[0]);
}

static void test_parallel_incr_memory(void **state) {
  parallel_incr(*state, STORE_MEMORY);
}

static void test_parallel_incr_file(void **state) {
  parallel_incr(*state, STORE_FILE);
}

#ifdef CSN_TEST_HAVE_SQLITE
static void test_parallel_incr_sqlite(void **state) {
  parallel_incr(*state, STORE_SQLITE);
}
#endif

/* ------------------------------------------------------------------------ */
/* b. Logout wins over a slow request that loaded the session before it     */
/* ------------------------------------------------------------------------ */

/* Does the store hold a record for sid? Asked of the store's own files, not
 * through the demo, so a record the demo would not show still counts.
 * -1 for the memory store, which lives inside the demo process. */
static int store_has(const store_case *sc, const char *sid) {
  if (sc->kind == STORE_FILE) {
    /* session-file-store's layout: <dir>/<id>.json (an id this short is
     * the file name as it is). */
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.json", sc->dir, sid);
    return stat(path, &st) == 0;
  }
#ifdef CSN_TEST_HAVE_SQLITE
  if (sc->kind == STORE_SQLITE) {
    /* connect-sqlite3's table, "sessions" (sid, expired, sess). The demo
     * keeps its own connections open; WAL lets this one read beside
     * them, and the busy timeout covers a checkpoint. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(sc->db, &db, SQLITE_OPEN_READWRITE, NULL) !=
        SQLITE_OK) {
      print_error("cannot open %s: %s\n", sc->db, sqlite3_errmsg(db));
      sqlite3_close(db);
      fail();
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sessions WHERE sid = ?",
                           -1, &st, NULL) == SQLITE_OK) {
      sqlite3_bind_text(st, 1, sid, -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    }
    if (n < 0)
      print_error("%s: cannot count the rows for %s: %s\n", sc->db, sid,
                  sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (n < 0)
      fail();
    return n > 0;
  }
#endif
  return -1;
}

static void logout_race(fixture *f, store_kind kind) {
  const store_case *sc = &f->sc;
  static const char *const gone[] = {"x", "views", NULL};
  char what[256];

  store_case_init(&f->sc, kind);
  demo_up(&f->df.d[0], &f->sc);
  f->df.cookie = first_visit(f->df.d[0].base, &f->df.sid);
  /* The check below is only worth something if it can see the record. */
  if (store_has(sc, f->df.sid) == 0)
    fail_msg("%s: the first visit's record for %s is not in the store",
             sc->url, f->df.sid);

  /* /inc has loaded the session 100 ms in and sleeps 400 ms more. */
  demo_logout_race(f->df.d[0].base, f->df.d[0].base, f->df.cookie, 500, 0.1,
                   sc->url);

  if (store_has(sc, f->df.sid) == 1)
    fail_msg("%s: after /logout the store holds session %s again (the "
             "slow /inc re-created it)",
             sc->url, f->df.sid);
  /* Through HTTP: the old cookie must find no session (it gets a fresh,
   * empty one), neither the first visit's "views" nor the "x". */
  snprintf(what, sizeof what,
           "%s: after /logout the old cookie still finds the session "
           "(resurrected by the slow /inc)",
           sc->url);
  demo_assert_session_lacks(f->df.d[0].base, f->df.cookie, gone, what);
  demo_down(&f->df.d[0]);
}

static void test_logout_race_memory(void **state) {
  logout_race(*state, STORE_MEMORY);
}

static void test_logout_race_file(void **state) {
  logout_race(*state, STORE_FILE);
}

#ifdef CSN_TEST_HAVE_SQLITE
static void test_logout_race_sqlite(void **state) {
  logout_race(*state, STORE_SQLITE);
}
#endif

/* ------------------------------------------------------------------------ */
/* c. Two processes on one store                                            */
/* ------------------------------------------------------------------------ */

/* A lock inside one process is not enough: two demos on one directory or
 * one database must not lose each other's increments either. Each client
 * alternates its requests between the two processes, so both race on
 * every key. */
static void two_processes(fixture *f, store_kind kind) {
  const char *bases[2];
  char label[192];

  store_case_init(&f->sc, kind);
  demo_up(&f->df.d[0], &f->sc);
  demo_up(&f->df.d[1], &f->sc);
  f->df.cookie = first_visit(f->df.d[0].base, NULL);
  bases[0] = f->df.d[0].base;
  bases[1] = f->df.d[1].base;
  snprintf(label, sizeof label, "%s (two processes)", f->sc.url);
  hammer_and_check(label, bases, 2, f->df.cookie);
  demo_down(&f->df.d[0]);
  demo_down(&f->df.d[1]);
}

static void test_two_processes_file(void **state) {
  two_processes(*state, STORE_FILE);
}

#ifdef CSN_TEST_HAVE_SQLITE
static void test_two_processes_sqlite(void **state) {
  two_processes(*state, STORE_SQLITE);
}
#endif

#define CASE(fn) \
  cmocka_unit_test_setup_teardown(fn, setup, demo_fixture_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_parallel_incr_memory),
      CASE(test_parallel_incr_file),
#ifdef CSN_TEST_HAVE_SQLITE
      CASE(test_parallel_incr_sqlite),
#endif
      CASE(test_logout_race_memory),
      CASE(test_logout_race_file),
#ifdef CSN_TEST_HAVE_SQLITE
      CASE(test_logout_race_sqlite),
#endif
      CASE(test_two_processes_file),
#ifdef CSN_TEST_HAVE_SQLITE
      CASE(test_two_processes_sqlite),
#endif
  };
  /* A demo that dies early must not kill the test with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
