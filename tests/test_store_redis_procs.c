/* test_store_redis_procs.c - two csession-demo processes (8 workers each)
 * on one Redis: what "C app servers on several machines behind one load
 * balancer" needs from the Redis store. Each case has a redis-server of
 * its own (tests/redis_proc.c) and two fresh demos on it.
 *
 *   one session   a visit on demo 2, a login on demo 1 with that cookie
 *                 (the id changes, the old key is deleted from Redis), then
 *                 requests alternating between the demos count on in one
 *                 session; the stored value is connect-redis's JSON with a
 *                 TTL.
 *   no lost updates
 *                 8 clients share ONE cookie, each adds 1 to its own member
 *                 k<i> 50 times (/inc?k=k<i>&delay=1), requests dealt
 *                 round-robin to the two demos: every k<i> ends at exactly
 *                 50. A store that wrote last-write-wins (plain SET) loses
 *                 increments here: each demo's write would erase the
 *                 other's concurrent one; only the store's compare-and-set
 *                 (atomic in Redis) and the core's merge keep them all.
 *   logout wins   /inc?k=x&delay=800 in flight on demo 1 while /logout runs
 *                 on demo 2: afterwards the old cookie finds no session on
 *                 either demo, and the key is gone from Redis.
 *
 * Client threads only record; the main thread asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>

#include <cmocka.h>
#include <jansson.h>

#include "demo_client.h"
#include "redis_proc.h"

#define SECRET "redis procs secret"
#define CLIENTS 8
#define ROUNDS 50

/* The demos and the session (tests/demo_client.h; the shared teardown
 * stops and frees them) and the Redis they share. */
typedef struct fixture {
  demo_fixture df; /* first */
  redis_proc rs;
  char url[160];
} fixture;

static void fixture_cleanup(demo_fixture *df) {
  redis_proc_cleanup(&((fixture *)df)->rs);
}

static int setup(void **state) {
  return demo_fixture_new(state, sizeof(fixture), fixture_cleanup);
}

/* A Redis of our own and two demos on it. */
static void start_all(fixture *f) {
  char label[200];
  size_t i;
  if (redis_proc_start(&f->rs, NULL, NULL) != 0)
    fail_msg("cannot start a redis-server: %s", f->rs.err);
  snprintf(f->url, sizeof f->url, "redis://127.0.0.1:%u", f->rs.port);
  for (i = 0; i < 2; i++) {
    snprintf(label, sizeof label, "demo %zu on %s", i + 1, f->url);
    demo_start_store(&f->df.d[i], SECRET, 8, f->url, NULL, label);
  }
}

/* A clean exit is part of the check (a crash, or an ASan report). */
static void stop_all(fixture *f) {
  assert_int_equal(demo_proc_stop(&f->df.d[0]), 0);
  assert_int_equal(demo_proc_stop(&f->df.d[1]), 0);
}

static int key_exists(fixture *f, const char *sid) {
  char key[160];
  int rc;
  snprintf(key, sizeof key, "sess:%s", sid);
  rc = redis_proc_exists(&f->rs, 0, key);
  if (rc < 0)
    fail_msg("EXISTS %s: %s", key, f->rs.err);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* One session across two processes                                         */
/* ------------------------------------------------------------------------ */

static void test_one_session(void **state) {
  fixture *f = *state;
  char *old_sid = NULL, *old_cookie;
  const char *path_login = "/login?user=alice";
  char expect[96], cmd[200], value[4096];
  http_response r;
  json_t *j, *cookie;
  int i;

  start_all(f);
  /* A visit on demo 2 makes a session... */
  old_cookie = demo_new_session(f->df.d[1].base, "/", NULL, SECRET, &old_sid);
  assert_int_equal(key_exists(f, old_sid), 1);
  /* ...and a login on demo 1 replaces it with a new id. */
  r = demo_get(f->df.d[0].base, path_login, old_cookie);
  free(old_cookie);
  if (r.status != 200 || strcmp(r.body, "Logged in as alice\n") != 0)
    fail_msg("/login answered %ld %s", r.status, r.body);
  f->df.cookie = demo_cookie_of(&r, SECRET, &f->df.sid);
  http_response_free(&r);
  if (strcmp(f->df.sid, old_sid) == 0)
    fail_msg("the login kept the session id");
  if (key_exists(f, old_sid) != 0)
    fail_msg("the session before the login is still in Redis");
  free(old_sid);
  assert_int_equal(key_exists(f, f->df.sid), 1);

  /* One visit counter, whichever process answers. */
  for (i = 1; i <= 12; i++) {
    const char *base = f->df.d[i % 2].base;
    r = demo_get(base, "/", f->df.cookie);
    if (i == 1)
      snprintf(expect, sizeof expect,
               "Welcome! Refresh the page to count visits.\n");
    else
      snprintf(expect, sizeof expect, "You've visited this page %d times\n",
               i);
    if (r.status != 200 || strcmp(r.body, expect) != 0)
      fail_msg("visit %d on demo %d answered %ld %s, expected %s", i,
               i % 2 + 1, r.status, r.body, expect);
    http_response_free(&r);
  }
  for (i = 0; i < 2; i++) {
    j = demo_read_session(f->df.d[i].base, f->df.cookie);
    if (json_integer_value(json_object_get(j, "views")) != 12 ||
        json_string_value(json_object_get(j, "user")) == NULL ||
        strcmp(json_string_value(json_object_get(j, "user")), "alice") != 0)
      fail_msg("demo %d's /session: %s", i + 1, json_dumps(j, JSON_COMPACT));
    json_decref(j);
  }

  /* In Redis: connect-redis's value (the record's JSON) with a TTL. */
  snprintf(cmd, sizeof cmd, "GET sess:%s", f->df.sid);
  if (redis_proc_cmd(&f->rs, 0, cmd, value, sizeof value, 5000) != 0)
    fail_msg("%s: %s", cmd, f->rs.err);
  j = json_loads(value, 0, NULL);
  if (j == NULL || json_integer_value(json_object_get(j, "views")) != 12)
    fail_msg("sess:%s holds %s", f->df.sid, value);
  cookie = json_object_get(j, "cookie");
  if (!json_is_object(cookie) ||
      json_integer_value(json_object_get(cookie, "originalMaxAge")) !=
          86400000)
    fail_msg("sess:%s has no connect-style cookie: %s", f->df.sid, value);
  json_decref(j);
  snprintf(cmd, sizeof cmd, "TTL sess:%s", f->df.sid);
  if (redis_proc_cmd(&f->rs, 0, cmd, value, sizeof value, 5000) != 0)
    fail_msg("%s: %s", cmd, f->rs.err);
  {
    long ttl = value[0] == ':' ? strtol(value + 1, NULL, 10) : -9;
    if (ttl < 86000 || ttl > 86400)
      fail_msg("TTL of the session is %s, expected about 86400", value);
  }
  stop_all(f);
}

/* ------------------------------------------------------------------------ */
/* No lost updates across processes                                         */
/* ------------------------------------------------------------------------ */

/* The hammers of tests/demo_client.h, as in tests/test_http_concurrency.c:
 * each request on a new connection ("Connection: close"), so
 * libmicrohttpd deals it to a free worker and the requests really
 * overlap. */
static void test_no_lost_updates(void **state) {
  fixture *f = *state;
  demo_hammer h[CLIENTS];
  const char *bases[2];
  char report[2048];
  long lost;
  double took, slowest;
  json_t *sess[2];
  int bad;

  start_all(f);
  f->df.cookie =
      demo_new_session(f->df.d[0].base, "/", NULL, SECRET, &f->df.sid);
  bases[0] = f->df.d[0].base;
  bases[1] = f->df.d[1].base;
  took = demo_hammer_all(h, CLIENTS, bases, 2, f->df.cookie, ROUNDS, 1,
                         &slowest);

  /* Both processes must see the same, complete record. */
  sess[0] = demo_read_session(f->df.d[0].base, f->df.cookie);
  sess[1] = demo_read_session(f->df.d[1].base, f->df.cookie);
  bad = demo_hammer_judge(h, CLIENTS, sess, 2, report, sizeof report, &lost);
  if (json_integer_value(json_object_get(sess[0], "views")) != 1)
    bad = 1;
  json_decref(sess[0]);
  json_decref(sess[1]);
  print_message("two processes on one Redis: %d clients x %d increments on "
                "one session in %.2f s (slowest request %.3f s), %ld lost\n",
                CLIENTS, ROUNDS, took, slowest, lost);
  if (bad)
    fail_msg("lost %ld of %d increments (or the first visit's views) on one "
             "session across two processes:%s",
             lost, CLIENTS * ROUNDS, report);
  stop_all(f);
}

/* ------------------------------------------------------------------------ */
/* Logout on one process wins over a slow request on the other              */
/* ------------------------------------------------------------------------ */

static void test_logout_wins(void **state) {
  fixture *f = *state;
  static const char *const gone[] = {"x", "user", NULL};
  char what[128];
  int i;

  start_all(f);
  f->df.cookie = demo_new_session(f->df.d[0].base, "/login?user=bob", NULL,
                                  SECRET, &f->df.sid);
  /* The check below is worth something only if it can see the key. */
  if (key_exists(f, f->df.sid) != 1)
    fail_msg("sess:%s is not in Redis after the login", f->df.sid);

  /* The slow /inc on demo 1 has loaded the session 200 ms in and sleeps
   * 600 ms more when /logout runs on demo 2. */
  demo_logout_race(f->df.d[0].base, f->df.d[1].base, f->df.cookie, 800, 0.2,
                   "slow /inc on demo 1, /logout on demo 2");

  if (key_exists(f, f->df.sid) != 0)
    fail_msg("after /logout on demo 2, Redis holds sess:%s again (the slow "
             "/inc on demo 1 re-created it)",
             f->df.sid);
  for (i = 0; i < 2; i++) {
    snprintf(what, sizeof what,
             "after /logout the old cookie still finds the session on demo %d",
             i + 1);
    demo_assert_session_lacks(f->df.d[i].base, f->df.cookie, gone, what);
  }
  /* Reading /session with the old cookie saved nothing either. */
  if (key_exists(f, f->df.sid) != 0)
    fail_msg("reading /session with the logged-out cookie stored sess:%s",
             f->df.sid);
  stop_all(f);
}

#define CASE(fn) \
  cmocka_unit_test_setup_teardown(fn, setup, demo_fixture_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_one_session),
      CASE(test_no_lost_updates),
      CASE(test_logout_wins),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
