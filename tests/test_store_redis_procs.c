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
 * The three cases are tests/demo_client.c's (demo_procs_*), shared with
 * the other server stores; this file adds what is Redis's own.
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

static int rs_has_session(void *ctx, const char *sid) {
  char key[160];
  snprintf(key, sizeof key, "sess:%s", sid);
  return redis_proc_exists(ctx, 0, key);
}

static const char *rs_error(void *ctx) { return ((redis_proc *)ctx)->err; }

static demo_store_probe probe(fixture *f) {
  demo_store_probe p = {"Redis", &f->rs, rs_has_session, rs_error};
  return p;
}

/* ------------------------------------------------------------------------ */
/* One session across two processes                                         */
/* ------------------------------------------------------------------------ */

static void test_one_session(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  char cmd[200], value[4096];
  json_t *j, *cookie;

  start_all(f);
  p = probe(f);
  demo_procs_one_session(&f->df, SECRET, &p);

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

static void test_no_lost_updates(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  start_all(f);
  p = probe(f);
  demo_procs_no_lost_updates(&f->df, SECRET, CLIENTS, ROUNDS, &p);
  stop_all(f);
}

static void test_logout_wins(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  start_all(f);
  p = probe(f);
  demo_procs_logout_wins(&f->df, SECRET, &p);
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
