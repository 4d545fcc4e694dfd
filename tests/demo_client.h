/* demo_client.h - the client side of the tests that drive csession-demo
 * processes over HTTP (http_concurrency, store_redis_procs,
 * store_redis_fault): a demo started on a store, one GET and its answer,
 * the session cookie a response set, the session as /session shows it,
 * a lost-update hammer on /inc, a request in a thread of its own and the
 * logout race.
 *
 * Built on tests/http_harness.h (the curl client) and tests/demo_proc.h
 * (the demo process). Unlike those two, most helpers here assert (cmocka's
 * fail_msg), which longjmps: they must run on the test's main thread. The
 * ones that threads run, or that may run beside threads, only record and
 * say so: demo_answer_get, demo_hammer_run, demo_slow_start/_join.
 */
#ifndef CSN_DEMO_CLIENT_H
#define CSN_DEMO_CLIENT_H

#include <pthread.h>
#include <stddef.h>

#include <jansson.h>

#include "demo_proc.h"
#include "http_harness.h"

/* Seconds on the monotonic clock. */
double mono_now_s(void);
/* Sleep s seconds (resumed after a signal). */
void demo_sleep_s(double s);

/* ------------------------------------------------------------------------ */
/* Fixture and processes                                                    */
/* ------------------------------------------------------------------------ */

/* What the tests that start demos keep where their teardown finds it: a
 * failed assertion jumps out of the test, and a demo left running would
 * hold the test's stderr open (ctest would wait for it) and its port for
 * ever. A test's fixture starts with one (first member) and adds its own;
 * its cleanup hook undoes the rest. */
typedef struct demo_fixture {
  demo_proc d[2]; /* the demos; pid 0: not running */
  char *cookie;   /* the session the test drives: "connect.sid=..." */
  char *sid;      /* and its id (both malloc'd, or NULL) */
  void (*cleanup)(struct demo_fixture *df); /* the test's own part, run
                                               after the demos stop */
} demo_fixture;

/* A cmocka setup's body: *state = a zeroed fixture of `size` bytes (at
 * least sizeof(demo_fixture)) that starts with a demo_fixture, with the
 * given cleanup hook (may be NULL). 0, or -1 when out of memory. */
int demo_fixture_new(void **state, size_t size,
                     void (*cleanup)(demo_fixture *df));

/* The matching cmocka teardown: stop the demos still running (saying so on
 * stderr when one does not stop cleanly: a teardown must not assert), run
 * the cleanup hook, free cookie, sid and the fixture. */
int demo_fixture_teardown(void **state);

/* Stop each of the n demos still running, quietly as the teardown does. */
void demo_stop_quiet(demo_proc *d, size_t n);

/* Start the demo with --threads `threads` on --store store_url, signing
 * with secret; err_path as demo_proc_start_stderr() (NULL: inherit). Fails
 * the test, naming `label`, when CSN_DEMO_BIN is not set or the demo does
 * not start. */
void demo_start_store(demo_proc *d, const char *secret, int threads,
                      const char *store_url, const char *err_path,
                      const char *label);

/* ------------------------------------------------------------------------ */
/* Requests, cookies, sessions                                              */
/* ------------------------------------------------------------------------ */

/* GET base+path with the Cookie header `cookie` (NULL: none) on a fresh
 * client. Fails the test when no HTTP answer arrived; the caller frees the
 * response with http_response_free(). */
http_response demo_get(const char *base, const char *path,
                       const char *cookie);

/* The Cookie header value ("connect.sid=s%3A...") for the session cookie
 * the response set, malloc'd; the id, unsigned with secret, goes to *sid
 * (malloc'd) when sid is not NULL. Fails the test when there is none. */
char *demo_cookie_of(const http_response *r, const char *secret, char **sid);

/* A new session: GET base+path without a cookie must answer 200 (and the
 * body want_body, when not NULL) and set the session cookie; returns it as
 * demo_cookie_of() does. */
char *demo_new_session(const char *base, const char *path,
                       const char *want_body, const char *secret, char **sid);

/* The session as the demo's /session shows it (the stored record plus its
 * cookie): 200 and a JSON object, or the test fails. json_decref() it. */
json_t *demo_read_session(const char *base, const char *cookie);

/* /session with `cookie` must hold none of the members `keys` (NULL-ended):
 * otherwise print "<what>: <the session>" and fail. */
void demo_assert_session_lacks(const char *base, const char *cookie,
                               const char *const *keys, const char *what);

/* ------------------------------------------------------------------------ */
/* Answers recorded, for threads                                            */
/* ------------------------------------------------------------------------ */

/* One GET as a thread records it: status (0 when no HTTP answer), the
 * body's start (or curl's error) and how long it took. */
typedef struct demo_answer {
  long status;
  char body[160];
  double secs;
} demo_answer;

/* GET base+path with cookie on client c (NULL: a fresh client) into *a.
 * Never asserts: threads call it. */
void demo_answer_get(http_client *c, const char *base, const char *path,
                     const char *cookie, demo_answer *a);

/* One request in a thread of its own: GET base+path with cookie, after
 * waiting delay_s. Start it, do something else meanwhile, join it, then
 * look at s->a. Nothing may assert between start and join (the thread
 * uses s). */
typedef struct demo_slow {
  const char *base;
  const char *path;
  const char *cookie;
  double delay_s;
  demo_answer a; /* after demo_slow_join */
  http_client *client;
  pthread_t thread;
  int started;
} demo_slow;

/* Fill s and start its thread (the client is made here, on the calling
 * thread: curl_global_init is not thread-safe). 0, or -1 (no thread). */
int demo_slow_start(demo_slow *s, const char *base, const char *path,
                    const char *cookie, double delay_s);
/* Wait for the thread and free the client. A no-op when not started. */
void demo_slow_join(demo_slow *s);

/* ------------------------------------------------------------------------ */
/* Lost updates and logout                                                  */
/* ------------------------------------------------------------------------ */

/* One client hammering a session: `rounds` requests
 * /inc?k=k<key>&delay=<delay_ms> with the shared cookie, on one easy
 * handle, alternating between the bases (request i goes to
 * bases[(key + i) % n_bases]). It records, the main thread judges.
 *
 * Each request asks for "Connection: close". libmicrohttpd's thread pool
 * keeps a connection on the worker that accepted it, and 8 connections
 * opened at once can all land on one or two workers: then the requests
 * run one after the other and nothing races (on the unmerged core, the
 * SQLite case of http_concurrency once lost 0 of 800 that way). A new
 * connection per request is dealt to whichever worker is free, so the
 * requests really overlap. */
typedef struct demo_hammer {
  const char *const *bases;
  size_t n_bases;
  const char *cookie;
  int key;
  int rounds;
  int delay_ms;
  http_client *client; /* made on the main thread: curl_global_init is
                          not thread-safe */
  int answered_ok;     /* 200 with "k<key>: N" */
  int failed;          /* anything else */
  double slowest;      /* the slowest request, seconds */
  char first_error[160];
} demo_hammer;

/* A thread body: run the hammer `arg` (a demo_hammer *). */
void *demo_hammer_run(void *arg);

/* Run n hammers at once, h[i] on key k<i>, each `rounds` requests with a
 * pause of delay_ms in /inc, and wait for all. Returns the seconds they
 * took; *slowest (when not NULL) gets the slowest request's. */
double demo_hammer_all(demo_hammer *h, size_t n, const char *const *bases,
                       size_t n_bases, const char *cookie, int rounds,
                       int delay_ms, double *slowest);

/* Judge the hammers against what the session shows on each of n_sess
 * demos (sess[p], as demo_read_session() read it there): every k<i> must
 * be h[i].rounds and every request of h[i] answered 200. Writes one line
 * per bad key into report (which key, expected, got, how its requests
 * were answered) and the increments missing from sess[0] into *lost.
 * Returns the number of bad keys. */
int demo_hammer_judge(const demo_hammer *h, size_t n, json_t *const *sess,
                      size_t n_sess, char *report, size_t size, long *lost);

/* Logout against a slow request that loaded the session before it:
 * /inc?k=x&delay=<delay_ms> on slow_base in a thread, pause_s later
 * /logout on logout_base, both with cookie. Then /logout must have
 * answered 200 "Logged out\n", and the slow /inc must have been answered
 * (how - 200 or an error - is the core's choice; printed). Messages start
 * with label. */
void demo_logout_race(const char *slow_base, const char *logout_base,
                      const char *cookie, int delay_ms, double pause_s,
                      const char *label);

/* ------------------------------------------------------------------------ */
/* Two processes on one store                                               */
/* ------------------------------------------------------------------------ */

/* How a test looks into the store's server, past the store under test. */
typedef struct demo_store_probe {
  const char *name; /* "Redis", "PostgreSQL": for messages */
  void *ctx;        /* the callbacks' argument */
  /* Is the session with this id stored: 1, 0, or -1 (then error()). */
  int (*has_session)(void *ctx, const char *sid);
  const char *(*error)(void *ctx); /* why the last call failed */
} demo_store_probe;

/* has_session, failing the test on an error. */
int demo_probe_has(const demo_store_probe *p, const char *sid);

/* The cases of "C app servers on several machines behind one load
 * balancer", on the two demos df->d[0] and df->d[1] (running, on one
 * store) with the session's cookie and id left in df->cookie, df->sid:
 *
 * One session: a visit on demo 2, a login (alice) on demo 1 with that
 * cookie (the id changes, the old one is gone from the store), then 12
 * visits alternating between the demos count on in one session; both
 * demos' /session show views 12 and user alice. The test then checks the
 * stored form (the record with "views": 12). */
void demo_procs_one_session(demo_fixture *df, const char *secret,
                            const demo_store_probe *p);

/* No lost updates: `clients` clients share ONE cookie, each adds 1 to its
 * own member k<i> `rounds` times (/inc?k=k<i>&delay=1), requests dealt
 * round-robin to the two demos: every k<i> ends at exactly `rounds` on
 * both. A store that wrote last-write-wins loses increments here; only
 * the store's compare-and-set and the core's merge keep them all. */
void demo_procs_no_lost_updates(demo_fixture *df, const char *secret,
                                int clients, int rounds,
                                const demo_store_probe *p);

/* Logout wins: /inc?k=x&delay=800 in flight on demo 1 while /logout runs
 * on demo 2: afterwards the session is gone from the store and the old
 * cookie finds no session on either demo (and reading saves nothing). */
void demo_procs_logout_wins(demo_fixture *df, const char *secret,
                            const demo_store_probe *p);

#endif /* CSN_DEMO_CLIENT_H */
