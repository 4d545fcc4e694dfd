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

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "demo_proc.h"
#include "http_harness.h"
#include "redis_proc.h"

#define SECRET "redis procs secret"
#define CLIENTS 8
#define ROUNDS 50

typedef struct fixture {
  redis_proc rs;
  demo_proc d[2];
  char url[160];
  char *cookie;
  char *sid;
} fixture;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  size_t i;
  for (i = 0; i < 2; i++)
    if (demo_proc_stop(&f->d[i]) != 0)
      fprintf(stderr, "a demo did not stop cleanly\n");
  redis_proc_cleanup(&f->rs);
  free(f->cookie);
  free(f->sid);
  free(f);
  return 0;
}

/* A Redis of our own and two demos on it. */
static void start_all(fixture *f) {
  const char *args[] = {"--port",    "0", "--secret", SECRET,
                        "--threads", "8", "--store",  NULL, NULL};
  size_t i;
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  if (redis_proc_start(&f->rs, NULL, NULL) != 0)
    fail_msg("cannot start a redis-server: %s", f->rs.err);
  snprintf(f->url, sizeof f->url, "redis://127.0.0.1:%u", f->rs.port);
  args[7] = f->url;
  for (i = 0; i < 2; i++)
    if (demo_proc_start(&f->d[i], args, NULL, NULL) != 0)
      fail_msg("demo %zu did not start on %s; it said: %s", i + 1, f->url,
               f->d[i].line);
}

/* A clean exit is part of the check (a crash, or an ASan report). */
static void stop_all(fixture *f) {
  assert_int_equal(demo_proc_stop(&f->d[0]), 0);
  assert_int_equal(demo_proc_stop(&f->d[1]), 0);
}

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

/* The cookie ("connect.sid=s%3A...") a response set, and its id. */
static char *cookie_of(const http_response *r, char **sid) {
  char *value = http_set_cookie_value(r, "connect.sid"), *cookie;
  if (value == NULL)
    fail_msg("no session cookie in the response (%ld %s)", r->status,
             r->body);
  cookie = malloc(strlen(value) + sizeof "connect.sid=");
  assert_non_null(cookie);
  sprintf(cookie, "connect.sid=%s", value);
  if (sid != NULL) {
    *sid = http_cookie_sid(value, SECRET);
    assert_non_null(*sid);
  }
  free(value);
  return cookie;
}

static json_t *read_session(const char *base, const char *cookie) {
  http_response r = get_with(base, "/session", cookie);
  json_error_t err;
  json_t *j;
  if (r.status != 200)
    fail_msg("GET /session: %ld %s", r.status, r.body);
  j = json_loads(r.body, 0, &err);
  if (j == NULL || !json_is_object(j))
    fail_msg("/session is not a JSON object: %s", r.body);
  http_response_free(&r);
  return j;
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
  r = get_with(f->d[1].base, "/", NULL);
  assert_int_equal(r.status, 200);
  old_cookie = cookie_of(&r, &old_sid);
  http_response_free(&r);
  assert_int_equal(key_exists(f, old_sid), 1);
  /* ...and a login on demo 1 replaces it with a new id. */
  r = get_with(f->d[0].base, path_login, old_cookie);
  free(old_cookie);
  if (r.status != 200 || strcmp(r.body, "Logged in as alice\n") != 0)
    fail_msg("/login answered %ld %s", r.status, r.body);
  f->cookie = cookie_of(&r, &f->sid);
  http_response_free(&r);
  if (strcmp(f->sid, old_sid) == 0)
    fail_msg("the login kept the session id");
  if (key_exists(f, old_sid) != 0)
    fail_msg("the session before the login is still in Redis");
  free(old_sid);
  assert_int_equal(key_exists(f, f->sid), 1);

  /* One visit counter, whichever process answers. */
  for (i = 1; i <= 12; i++) {
    const char *base = f->d[i % 2].base;
    r = get_with(base, "/", f->cookie);
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
    j = read_session(f->d[i].base, f->cookie);
    if (json_integer_value(json_object_get(j, "views")) != 12 ||
        json_string_value(json_object_get(j, "user")) == NULL ||
        strcmp(json_string_value(json_object_get(j, "user")), "alice") != 0)
      fail_msg("demo %d's /session: %s", i + 1, json_dumps(j, JSON_COMPACT));
    json_decref(j);
  }

  /* In Redis: connect-redis's value (the record's JSON) with a TTL. */
  snprintf(cmd, sizeof cmd, "GET sess:%s", f->sid);
  if (redis_proc_cmd(&f->rs, 0, cmd, value, sizeof value, 5000) != 0)
    fail_msg("%s: %s", cmd, f->rs.err);
  j = json_loads(value, 0, NULL);
  if (j == NULL || json_integer_value(json_object_get(j, "views")) != 12)
    fail_msg("sess:%s holds %s", f->sid, value);
  cookie = json_object_get(j, "cookie");
  if (!json_is_object(cookie) ||
      json_integer_value(json_object_get(cookie, "originalMaxAge")) !=
          86400000)
    fail_msg("sess:%s has no connect-style cookie: %s", f->sid, value);
  json_decref(j);
  snprintf(cmd, sizeof cmd, "TTL sess:%s", f->sid);
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

/* As in tests/test_http_concurrency.c: each request on a new connection
 * ("Connection: close"), so libmicrohttpd deals it to a free worker and
 * the requests really overlap. */
typedef struct hammer {
  const char *bases[2];
  const char *cookie;
  int key;
  http_client *client;
  int answered_ok;
  int failed;
  double slowest;
  char first_error[160];
} hammer;

static void *hammer_run(void *arg) {
  static const char *const close_conn[] = {"Connection: close", NULL};
  hammer *h = arg;
  char url[200], want[16];
  int i;

  snprintf(want, sizeof want, "k%d: ", h->key);
  for (i = 0; i < ROUNDS; i++) {
    http_request_opts o;
    http_response r;
    double t0 = now_s();
    int rc;
    snprintf(url, sizeof url, "%s/inc?k=k%d&delay=1",
             h->bases[(h->key + i) % 2], h->key);
    memset(&o, 0, sizeof o);
    o.url = url;
    o.cookie = h->cookie;
    o.headers = close_conn;
    rc = http_request(h->client, &o, &r);
    if (now_s() - t0 > h->slowest)
      h->slowest = now_s() - t0;
    if (rc == 0 && r.status == 200 &&
        strncmp(r.body, want, strlen(want)) == 0) {
      h->answered_ok++;
    } else if (h->failed++ == 0) {
      snprintf(h->first_error, sizeof h->first_error, "%ld %.120s", r.status,
               rc != 0 ? r.error : r.body);
    }
    http_response_free(&r);
    if (rc != 0)
      break;
  }
  return NULL;
}

static void test_no_lost_updates(void **state) {
  fixture *f = *state;
  hammer h[CLIENTS];
  pthread_t t[CLIENTS];
  char report[2048];
  size_t used = 0;
  long lost = 0;
  double t0, took, slowest = 0;
  http_response r;
  json_t *sess[2];
  int i, bad = 0;

  start_all(f);
  r = get_with(f->d[0].base, "/", NULL);
  assert_int_equal(r.status, 200);
  f->cookie = cookie_of(&r, &f->sid);
  http_response_free(&r);

  for (i = 0; i < CLIENTS; i++) {
    memset(&h[i], 0, sizeof h[i]);
    h[i].bases[0] = f->d[0].base;
    h[i].bases[1] = f->d[1].base;
    h[i].cookie = f->cookie;
    h[i].key = i;
    h[i].client = http_client_new(0);
    assert_non_null(h[i].client);
  }
  t0 = now_s();
  for (i = 0; i < CLIENTS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
  for (i = 0; i < CLIENTS; i++)
    pthread_join(t[i], NULL);
  took = now_s() - t0;
  for (i = 0; i < CLIENTS; i++) {
    http_client_free(h[i].client);
    if (h[i].slowest > slowest)
      slowest = h[i].slowest;
  }

  /* Both processes must see the same, complete record. */
  sess[0] = read_session(f->d[0].base, f->cookie);
  sess[1] = read_session(f->d[1].base, f->cookie);
  report[0] = '\0';
  for (i = 0; i < CLIENTS; i++) {
    char key[16];
    json_int_t got[2];
    int n, p;
    snprintf(key, sizeof key, "k%d", i);
    for (p = 0; p < 2; p++) {
      json_t *v = json_object_get(sess[p], key);
      got[p] = v != NULL && json_is_integer(v) ? json_integer_value(v) : -1;
    }
    if (got[0] == ROUNDS && got[1] == ROUNDS && h[i].failed == 0)
      continue;
    bad = 1;
    lost += ROUNDS - (long)got[0];
    n = snprintf(report + used, sizeof report - used,
                 "\n  %s: expected %d, demo 1 shows %lld, demo 2 shows %lld "
                 "(%d of %d requests answered 200%s%s)",
                 key, ROUNDS, (long long)got[0], (long long)got[1],
                 h[i].answered_ok, ROUNDS,
                 h[i].failed ? "; first other answer: " : "",
                 h[i].failed ? h[i].first_error : "");
    if (n > 0 && (size_t)n < sizeof report - used)
      used += (size_t)n;
  }
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
  snprintf(url, sizeof url, "%s/inc?k=x&delay=800", s->base);
  http_get(s->client, url, s->cookie, &r);
  s->status = r.status;
  snprintf(s->body, sizeof s->body, "%.100s", r.status ? r.body : r.error);
  http_response_free(&r);
  return NULL;
}

static void test_logout_wins(void **state) {
  fixture *f = *state;
  slow_inc s;
  pthread_t t;
  http_client *c;
  http_response out, r;
  struct timespec pause = {0, 200 * 1000 * 1000};
  char url[160];
  int out_rc, i;

  start_all(f);
  r = get_with(f->d[0].base, "/login?user=bob", NULL);
  assert_int_equal(r.status, 200);
  f->cookie = cookie_of(&r, &f->sid);
  http_response_free(&r);
  /* The check below is worth something only if it can see the key. */
  if (key_exists(f, f->sid) != 1)
    fail_msg("sess:%s is not in Redis after the login", f->sid);

  memset(&s, 0, sizeof s);
  s.base = f->d[0].base;
  s.cookie = f->cookie;
  s.client = http_client_new(0);
  c = http_client_new(0);
  assert_int_equal(pthread_create(&t, NULL, slow_inc_run, &s), 0);
  /* The slow /inc has loaded the session by now and sleeps 600 ms more.
   * Nothing may assert until the thread is joined: it uses s. */
  nanosleep(&pause, NULL);
  snprintf(url, sizeof url, "%s/logout", f->d[1].base);
  out_rc = http_get(c, url, f->cookie, &out);
  pthread_join(t, NULL);
  http_client_free(s.client);
  http_client_free(c);
  if (out_rc != 0)
    fail_msg("/logout on demo 2: %s", out.error);
  if (out.status != 200 || strcmp(out.body, "Logged out\n") != 0)
    fail_msg("/logout on demo 2 answered %ld %s", out.status, out.body);
  http_response_free(&out);
  if (s.status == 0)
    fail_msg("the slow /inc on demo 1 got no answer: %s", s.body);
  print_message("the slow /inc on demo 1 answered %ld %s", s.status, s.body);

  if (key_exists(f, f->sid) != 0)
    fail_msg("after /logout on demo 2, Redis holds sess:%s again (the slow "
             "/inc on demo 1 re-created it)",
             f->sid);
  for (i = 0; i < 2; i++) {
    json_t *sess = read_session(f->d[i].base, f->cookie);
    if (json_object_get(sess, "x") != NULL ||
        json_object_get(sess, "user") != NULL) {
      char *text = json_dumps(sess, JSON_COMPACT);
      print_error("after /logout the old cookie still finds the session on "
                  "demo %d: %s\n",
                  i + 1, text ? text : "?");
      free(text);
      json_decref(sess);
      fail();
    }
    json_decref(sess);
  }
  /* Reading /session with the old cookie saved nothing either. */
  if (key_exists(f, f->sid) != 0)
    fail_msg("reading /session with the logged-out cookie stored sess:%s",
             f->sid);
  stop_all(f);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(test_one_session),
      CASE(test_no_lost_updates),
      CASE(test_logout_wins),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
