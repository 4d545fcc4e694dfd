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

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#ifdef CSN_TEST_HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "demo_proc.h"
#include "http_harness.h"

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

/* What a case starts, kept where the teardown finds it: a failed assertion
 * jumps out of the test, and a demo left running would hold the test's
 * stderr open (ctest would wait for it) and its port for ever. */
typedef struct fixture {
  store_case sc;
  demo_proc d[2];
  char *cookie;
  char *sid;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  size_t i;
  for (i = 0; i < 2; i++)
    if (demo_proc_stop(&f->d[i]) != 0)
      fprintf(stderr, "a demo did not stop cleanly\n");
  store_case_cleanup(&f->sc);
  free(f->cookie);
  free(f->sid);
  free(f);
  return 0;
}

/* Start a demo on the store with enough workers for requests to overlap. */
static void demo_up(demo_proc *d, const store_case *sc) {
  const char *args[] = {"--port",   "0", "--secret", SECRET, "--threads",
                        "8",        "--store", sc->url, NULL};
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  if (demo_proc_start(d, args, NULL, NULL) != 0)
    fail_msg("the demo did not start on %s; it said: %s", sc->url, d->line);
}

/* A clean exit is part of the check: a demo that crashed under the load
 * would show here. */
static void demo_down(demo_proc *d) {
  assert_int_equal(demo_proc_stop(d), 0);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A first visit to "/" stores a session (views: 1) and returns the cookie
 * every later request sends: "connect.sid=s%3A...". The id goes to *sid
 * when sid is not NULL. Both malloc'd. */
static char *first_visit(const char *base, char **sid) {
  http_client *c = http_client_new(0);
  http_response r;
  char url[128], *value, *cookie;

  snprintf(url, sizeof url, "%s/", base);
  if (http_get(c, url, NULL, &r) != 0)
    fail_msg("GET %s: %s", url, r.error);
  assert_int_equal(r.status, 200);
  value = http_set_cookie_value(&r, "connect.sid");
  if (value == NULL)
    fail_msg("the first visit set no session cookie");
  cookie = malloc(strlen(value) + sizeof "connect.sid=");
  assert_non_null(cookie);
  sprintf(cookie, "connect.sid=%s", value);
  if (sid != NULL) {
    *sid = http_cookie_sid(value, SECRET);
    assert_non_null(*sid);
  }
  free(value);
  http_response_free(&r);
  http_client_free(c);
  return cookie;
}

/* GET base+path with the cookie; asserts an answer arrived and returns
 * it (caller frees). */
static http_response get_with(const char *base, const char *path,
                              const char *cookie) {
  http_client *c = http_client_new(0);
  http_response r;
  char url[256];
  snprintf(url, sizeof url, "%s%s", base, path);
  if (http_get(c, url, cookie, &r) != 0)
    fail_msg("GET %s: %s", url, r.error);
  http_client_free(c);
  return r;
}

/* The session as /session shows it (the stored record plus its cookie). */
static json_t *read_session(const char *base, const char *cookie) {
  http_response r = get_with(base, "/session", cookie);
  json_error_t err;
  json_t *j;
  assert_int_equal(r.status, 200);
  j = json_loads(r.body, 0, &err);
  if (j == NULL || !json_is_object(j))
    fail_msg("/session is not a JSON object: %s", r.body);
  http_response_free(&r);
  return j;
}

/* ------------------------------------------------------------------------ */
/* Clients hammering one session                                            */
/* ------------------------------------------------------------------------ */

/* One client thread: ROUNDS requests /inc?k=k<key>&delay=INC_DELAY_MS,
 * all with the shared cookie, on one easy handle. With two servers its
 * requests alternate between them. It records, the main thread judges.
 *
 * Each request asks for "Connection: close". libmicrohttpd's thread pool
 * keeps a connection on the worker that accepted it, and 8 connections
 * opened at once can all land on one or two workers: then the requests
 * run one after the other and nothing races (on the unmerged core, the
 * SQLite case once lost 0 of 800 that way). A new connection per request
 * is dealt to whichever worker is free, so the requests really overlap. */
typedef struct hammer {
  const char *const *bases;
  size_t n_bases;
  const char *cookie;
  int key;
  http_client *client; /* made on the main thread: curl_global_init is not
                          thread-safe */
  int answered_ok;     /* 200 with "k<key>: N" */
  int failed;          /* anything else */
  char first_error[160];
} hammer;

static void *hammer_run(void *arg) {
  static const char *const close_conn[] = {"Connection: close", NULL};
  hammer *h = arg;
  char url[160], want[16];
  http_request_opts o;
  int i;

  snprintf(want, sizeof want, "k%d: ", h->key);
  for (i = 0; i < ROUNDS; i++) {
    http_response r;
    int rc;
    snprintf(url, sizeof url, "%s/inc?k=k%d&delay=%d",
             h->bases[(size_t)(h->key + i) % h->n_bases], h->key,
             INC_DELAY_MS);
    memset(&o, 0, sizeof o);
    o.url = url;
    o.cookie = h->cookie;
    o.headers = close_conn;
    rc = http_request(h->client, &o, &r);
    if (rc == 0 && r.status == 200 &&
        strncmp(r.body, want, strlen(want)) == 0) {
      h->answered_ok++;
    } else if (h->failed++ == 0) {
      snprintf(h->first_error, sizeof h->first_error, "%ld %.120s", r.status,
               rc != 0 ? r.error : r.body);
    }
    http_response_free(&r);
    /* A dead transport would make every later request wait for its
     * timeout too: stop this client, the count shows it. */
    if (rc != 0)
      break;
  }
  return NULL;
}

/* Run CLIENTS hammers, client i on key k<i>, then read the session from
 * bases[0] and fail with one line per key that did not reach ROUNDS:
 * which key, expected, got, and how its requests were answered. */
static void hammer_and_check(const char *label, const char *const *bases,
                             size_t n_bases, const char *cookie) {
  hammer h[CLIENTS];
  pthread_t t[CLIENTS];
  char report[2048];
  size_t used = 0;
  long lost = 0;
  double t0 = now_s(), took;
  json_t *sess;
  int i, bad = 0;

  for (i = 0; i < CLIENTS; i++) {
    memset(&h[i], 0, sizeof h[i]);
    h[i].bases = bases;
    h[i].n_bases = n_bases;
    h[i].cookie = cookie;
    h[i].key = i;
    h[i].client = http_client_new(0);
    assert_non_null(h[i].client);
  }
  for (i = 0; i < CLIENTS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
  for (i = 0; i < CLIENTS; i++)
    pthread_join(t[i], NULL);
  took = now_s() - t0;
  for (i = 0; i < CLIENTS; i++)
    http_client_free(h[i].client);

  sess = read_session(bases[0], cookie);
  report[0] = '\0';
  for (i = 0; i < CLIENTS; i++) {
    char key[16];
    json_t *v;
    json_int_t got = 0;
    int n;
    snprintf(key, sizeof key, "k%d", i);
    v = json_object_get(sess, key);
    if (v != NULL && json_is_integer(v))
      got = json_integer_value(v);
    if (got == ROUNDS && h[i].failed == 0)
      continue;
    bad = 1;
    lost += ROUNDS - (long)got;
    n = snprintf(report + used, sizeof report - used,
                 "\n  %s: expected %d, got %lld%s (%d of %d requests "
                 "answered 200%s%s)",
                 key, ROUNDS, (long long)got,
                 v != NULL && !json_is_integer(v) ? " (not an integer)" : "",
                 h[i].answered_ok, ROUNDS,
                 h[i].failed ? "; first other answer: " : "",
                 h[i].failed ? h[i].first_error : "");
    if (n > 0 && (size_t)n < sizeof report - used)
      used += (size_t)n;
  }
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
  demo_up(&f->d[0], &f->sc);
  f->cookie = first_visit(f->d[0].base, NULL);
  bases[0] = f->d[0].base;
  hammer_and_check(f->sc.url, bases, 1, f->cookie);
  demo_down(&f->d[0]);
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

typedef struct slow_inc {
  const char *base;
  const char *cookie;
  http_client *client;
  long status;
  char body[128];
} slow_inc;

static void *slow_inc_run(void *arg) {
  slow_inc *s = arg;
  char url[160];
  http_response r;
  snprintf(url, sizeof url, "%s/inc?k=x&delay=500", s->base);
  http_get(s->client, url, s->cookie, &r);
  s->status = r.status;
  snprintf(s->body, sizeof s->body, "%.100s", r.status ? r.body : r.error);
  http_response_free(&r);
  return NULL;
}

static void logout_race(fixture *f, store_kind kind) {
  const store_case *sc = &f->sc;
  slow_inc s;
  pthread_t t;
  http_client *c;
  http_response out;
  struct timespec pause = {0, 100 * 1000 * 1000};
  int out_rc;
  json_t *sess;

  store_case_init(&f->sc, kind);
  demo_up(&f->d[0], &f->sc);
  f->cookie = first_visit(f->d[0].base, &f->sid);
  /* The check below is only worth something if it can see the record. */
  if (store_has(sc, f->sid) == 0)
    fail_msg("%s: the first visit's record for %s is not in the store",
             sc->url, f->sid);

  memset(&s, 0, sizeof s);
  s.base = f->d[0].base;
  s.cookie = f->cookie;
  s.client = http_client_new(0);
  c = http_client_new(0);
  assert_int_equal(pthread_create(&t, NULL, slow_inc_run, &s), 0);
  /* /inc has loaded the session by now and sleeps 400 ms more. Nothing
   * may assert until the thread is joined: it uses s. */
  nanosleep(&pause, NULL);
  {
    char url[160];
    snprintf(url, sizeof url, "%s/logout", f->d[0].base);
    out_rc = http_get(c, url, f->cookie, &out);
  }
  pthread_join(t, NULL);
  http_client_free(s.client);
  http_client_free(c);
  if (out_rc != 0)
    fail_msg("%s: /logout: %s", sc->url, out.error);
  assert_int_equal(out.status, 200);
  assert_string_equal(out.body, "Logged out\n");
  http_response_free(&out);
  /* How /inc is answered once logout wins (200, or an error) is the
   * core's choice; it must have been answered. */
  if (s.status == 0)
    fail_msg("%s: /inc?delay=500 got no answer: %s", sc->url, s.body);
  print_message("%s: the slow /inc answered %ld %s", sc->url, s.status,
                s.body);

  if (store_has(sc, f->sid) == 1)
    fail_msg("%s: after /logout the store holds session %s again (the "
             "slow /inc re-created it)",
             sc->url, f->sid);
  /* Through HTTP: the old cookie must find no session (it gets a fresh,
   * empty one), neither the first visit's "views" nor the "x". */
  sess = read_session(f->d[0].base, f->cookie);
  if (json_object_get(sess, "x") != NULL ||
      json_object_get(sess, "views") != NULL) {
    char *text = json_dumps(sess, JSON_COMPACT);
    print_error("%s: after /logout the old cookie still finds the session "
                "(resurrected by the slow /inc): %s\n",
                sc->url, text ? text : "?");
    free(text);
    json_decref(sess);
    fail();
  }
  json_decref(sess);
  demo_down(&f->d[0]);
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
  demo_up(&f->d[0], &f->sc);
  demo_up(&f->d[1], &f->sc);
  f->cookie = first_visit(f->d[0].base, NULL);
  bases[0] = f->d[0].base;
  bases[1] = f->d[1].base;
  snprintf(label, sizeof label, "%s (two processes)", f->sc.url);
  hammer_and_check(label, bases, 2, f->cookie);
  demo_down(&f->d[0]);
  demo_down(&f->d[1]);
}

static void test_two_processes_file(void **state) {
  two_processes(*state, STORE_FILE);
}

#ifdef CSN_TEST_HAVE_SQLITE
static void test_two_processes_sqlite(void **state) {
  two_processes(*state, STORE_SQLITE);
}
#endif

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

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
