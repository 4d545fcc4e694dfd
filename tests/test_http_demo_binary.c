/* test_http_demo_binary.c - the HTTP suite of a real demo program, over
 * loopback with libcurl. The program is whichever CSN_DEMO_BIN names:
 * csession-demo (libmicrohttpd), csession-ulfius-demo or
 * csession-civetweb-demo. They share their flags, routes and texts
 * (examples/demo_app.h), so one suite checks all three; nothing here names
 * a program, and where a check needs the name it is the binary's basename.
 *
 *   counts            the visit counter with a cookie jar, two browsers
 *                     apart, one session id throughout; SIGTERM exits 0
 *   restart           the default store (SQLite) outlives the process
 *   sigint            SIGINT exits 0 too; the banner names the program
 *   login             /login regenerates: a new id in Set-Cookie, the user
 *                     in /session, and the old cookie finds nothing
 *   logout            /logout destroys: no cookie sent, the old cookie
 *                     finds nothing, the next visit is a fresh session
 *   forged            bad signature, another secret's cookie (on a shared
 *                     store, so the id exists), no signature, malformed and
 *                     oversized cookies: 200 and a fresh session, never 500
 *                     and never the session the forgery named
 *   health_404        /health sets no cookie even when every other route
 *                     would (--save-uninitialized --rolling); 404 body
 *   inc               /inc counts per key, waits its delay, rejects bad
 *                     arguments with 400
 *   in flight         SIGTERM while a slow request runs: exit 0 within
 *                     seconds; the request answered in full or closed
 *   store_failure     (built with the Redis store) the demo on a private
 *                     redis-server: count, kill Redis, the next requests
 *                     answer 500 "Internal Server Error\n" within a few
 *                     seconds (no cookie, /health still 200); restart
 *                     Redis (AOF, fsync always): the same session counts on
 *   usage / help      bad command lines exit 2 naming the problem (and
 *                     never echo a store URL's password); a taken port
 *                     exits non-zero; --help exits 0 with the usage
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "demo_proc.h"
#include "http_harness.h"
#ifdef CSN_TEST_HAVE_REDIS
#include "redis_proc.h"
#endif

#define SECRET "s3cret"
#define WELCOME "Welcome! Refresh the page to count visits.\n"
#define ISE "Internal Server Error\n"

/* What a test started, where the teardown finds it even after a failed
 * assertion (which longjmps out of the test): demos still running would
 * hold ctest's output pipe open, a scratch directory would stay behind. */
static demo_proc demos[2];
static char scratch[64];
#ifdef CSN_TEST_HAVE_REDIS
static redis_proc redis;
#endif

static int teardown(void **state) {
  size_t i;
  (void)state;
  for (i = 0; i < sizeof demos / sizeof demos[0]; i++)
    if (demos[i].pid != 0) {
      kill(demos[i].pid, SIGKILL);
      demo_proc_wait(&demos[i], 10000);
    }
#ifdef CSN_TEST_HAVE_REDIS
  redis_proc_cleanup(&redis);
  memset(&redis, 0, sizeof redis);
#endif
  if (scratch[0] != '\0') {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", scratch);
    scratch[0] = '\0';
  }
  return 0;
}

static const char *need_bin(void) {
  const char *bin = demo_proc_bin();
  if (bin == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  return bin;
}

/* The program's name as its banner says it: the binary's basename. */
static const char *prog_name(void) {
  const char *bin = need_bin(), *slash = strrchr(bin, '/');
  return slash != NULL ? slash + 1 : bin;
}

/* A fresh scratch directory for this test (removed by the teardown). */
static const char *make_scratch(void) {
  snprintf(scratch, sizeof scratch, "/tmp/csn-demo-bin-XXXXXX");
  if (mkdtemp(scratch) == NULL) {
    scratch[0] = '\0';
    fail_msg("mkdtemp failed");
  }
  return scratch;
}

/* Start demos[i] with args; the store URL goes in CSN_STORE (NULL: the
 * program's default), stderr to err_path (NULL: the test's own). */
static void start_demo(int i, const char *const *args, const char *store,
                       const char *cwd, const char *err_path) {
  need_bin();
  if (demo_proc_start_env(&demos[i], args, SECRET, store, cwd, err_path) !=
      0)
    fail_msg("the demo did not start; it said: %s", demos[i].line);
}

/* SIGKILL, for the tests that do not check the exit: a clean stop takes
 * CivetWeb a second or two (its master thread's poll), which adds up. */
static void kill_demo(int i) {
  kill(demos[i].pid, SIGKILL);
  demo_proc_wait(&demos[i], 10000);
}

static void stop_demo_ok(int i) {
  assert_int_equal(kill(demos[i].pid, SIGTERM), 0);
  if (demo_proc_wait(&demos[i], 10000) != 0)
    fail_msg("the demo did not exit 0 after SIGTERM");
}

/* GET base+path with cookie (NULL: the jar's, if any). Fails the test when
 * no HTTP answer came; the caller frees *r. */
static void get(http_client *c, const char *base, const char *path,
                const char *cookie, http_response *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", base, path);
  if (http_get(c, url, cookie, r) != 0) {
    char why[256];
    snprintf(why, sizeof why, "%s", r->error);
    http_response_free(r);
    fail_msg("GET %s: %s", url, why);
  }
}

/* GET and expect exactly status and body. */
static void get_body(http_client *c, const char *base, const char *path,
                     const char *cookie, long status, const char *want) {
  http_response r;
  get(c, base, path, cookie, &r);
  if (r.status != status || strcmp(r.body, want) != 0)
    fail_msg("GET %s: %ld '%s', want %ld '%s'", path, r.status, r.body,
             status, want);
  http_response_free(&r);
}

/* The session id the response's Set-Cookie carries (malloc'd), or NULL
 * when it set no session cookie. A cookie that does not unsign with
 * SECRET fails the test. */
static char *set_sid(const http_response *r) {
  char *v = http_set_cookie_value(r, "connect.sid"), *sid;
  if (v == NULL)
    return NULL;
  sid = http_cookie_sid(v, SECRET);
  if (sid == NULL)
    fail_msg("Set-Cookie connect.sid=%s does not unsign", v);
  free(v);
  return sid;
}

/* The jar's session cookie as a Cookie header ("connect.sid=..."), and
 * its id, both malloc'd. */
static char *jar_cookie(http_client *c, char **sid) {
  char *v = http_client_cookie(c, "connect.sid"), *h;
  size_t n;
  if (v == NULL)
    fail_msg("no connect.sid in the jar");
  if (sid != NULL) {
    *sid = http_cookie_sid(v, SECRET);
    assert_non_null(*sid);
  }
  n = strlen(v) + sizeof "connect.sid=";
  h = malloc(n);
  assert_non_null(h);
  snprintf(h, n, "connect.sid=%s", v);
  free(v);
  return h;
}

/* GET path with cookie must be a fresh session: 200 WELCOME (from "/") and
 * a Set-Cookie with an id other than each of `not` (NULL-ended). */
static void expect_fresh(const char *base, const char *cookie,
                         const char *const *not, const char *what) {
  http_client *c = http_client_new(0);
  http_response r;
  char *sid;
  size_t i;

  get(c, base, "/", cookie, &r);
  if (r.status != 200 || strcmp(r.body, WELCOME) != 0)
    fail_msg("%s: %ld '%s', want 200 and a fresh session", what, r.status,
             r.body);
  sid = set_sid(&r);
  if (sid == NULL)
    fail_msg("%s: no session cookie for the fresh session", what);
  for (i = 0; not != NULL && not[i] != NULL; i++)
    if (strcmp(sid, not[i]) == 0)
      fail_msg("%s: the session id %s was reused", what, sid);
  free(sid);
  http_response_free(&r);
  http_client_free(c);
}

/* /session with cookie must not mention any of `words` (NULL-ended). */
static void session_lacks(const char *base, const char *cookie,
                          const char *const *words, const char *what) {
  http_client *c = http_client_new(0);
  http_response r;
  size_t i;
  get(c, base, "/session", cookie, &r);
  assert_int_equal(r.status, 200);
  for (i = 0; words[i] != NULL; i++)
    if (strstr(r.body, words[i]) != NULL)
      fail_msg("%s: /session still shows %s: %s", what, words[i], r.body);
  http_response_free(&r);
  http_client_free(c);
}

/* ------------------------------------------------------------------------ */
/* Counting, restarting, stopping                                           */
/* ------------------------------------------------------------------------ */

static void test_counts_and_stops_cleanly(void **state) {
  static const char *const args[] = {"--port", "0", "--threads", "3", NULL};
  const char *base;
  http_client *a, *b;
  char *ca, *cb, *sid_a, *sid_b, *sid;
  (void)state;

  start_demo(0, args, "memory://", NULL, NULL);
  base = demos[0].base;
  a = http_client_new(1);
  b = http_client_new(1);
  get_body(a, base, "/health", NULL, 200, "ok\n");
  get_body(a, base, "/", NULL, 200, WELCOME);
  ca = jar_cookie(a, &sid_a);
  get_body(a, base, "/", NULL, 200, "You've visited this page 2 times\n");
  get_body(b, base, "/", NULL, 200, WELCOME);
  cb = jar_cookie(b, &sid_b);
  assert_string_not_equal(sid_a, sid_b);
  get_body(a, base, "/", NULL, 200, "You've visited this page 3 times\n");
  get_body(b, base, "/", NULL, 200, "You've visited this page 2 times\n");
  /* One session throughout: the jar's id never changed. */
  free(jar_cookie(a, &sid));
  assert_string_equal(sid, sid_a);
  free(sid);
  /* The cookie, not the connection, carries the session. */
  {
    http_client *n = http_client_new(0); /* no jar: only this cookie */
    get_body(n, base, "/", ca, 200, "You've visited this page 4 times\n");
    get_body(n, base, "/", cb, 200, "You've visited this page 3 times\n");
    http_client_free(n);
  }
  http_client_free(a);
  http_client_free(b);
  free(ca);
  free(cb);
  free(sid_a);
  free(sid_b);
  stop_demo_ok(0);
}

/* The default store persists: a restarted demo still knows the browser. */
static void test_restart_keeps_visits(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  http_client *a;
  (void)state;

  make_scratch();
  a = http_client_new(1);
  start_demo(0, args, NULL, scratch, NULL);
  get_body(a, demos[0].base, "/", NULL, 200, WELCOME);
  get_body(a, demos[0].base, "/", NULL, 200,
           "You've visited this page 2 times\n");
  stop_demo_ok(0);

  start_demo(0, args, NULL, scratch, NULL); /* a new port, same jar */
  get_body(a, demos[0].base, "/", NULL, 200,
           "You've visited this page 3 times\n");
  stop_demo_ok(0);
  http_client_free(a);
}

static void test_sigint_stops_too(void **state) {
  static const char *const args[] = {"--port", "0", "--threads", "1", NULL};
  char want[128];
  (void)state;
  need_bin();
  /* The secret from CSN_SECRET. */
  assert_int_equal(demo_proc_spawn(&demos[0], args, "from-env", NULL), 0);
  assert_int_equal(demo_proc_read_line(&demos[0], 10000), 0);
  snprintf(want, sizeof want, "%s listening on http://127.0.0.1:",
           prog_name());
  if (strncmp(demos[0].line, want, strlen(want)) != 0)
    fail_msg("banner '%s', want it to start with '%s'", demos[0].line, want);
  assert_int_equal(kill(demos[0].pid, SIGINT), 0);
  assert_int_equal(demo_proc_wait(&demos[0], 10000), 0);
}

/* ------------------------------------------------------------------------ */
/* Login, logout, forged cookies                                            */
/* ------------------------------------------------------------------------ */

static void test_login_regenerates(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  static const char *const gone[] = {"views", "alice", NULL};
  const char *base;
  http_client *a;
  http_response r;
  char *old_cookie, *old_sid, *new_sid, *jar_sid;
  const char *not[3];
  (void)state;

  start_demo(0, args, "memory://", NULL, NULL);
  base = demos[0].base;
  a = http_client_new(1);
  get_body(a, base, "/", NULL, 200, WELCOME);
  get_body(a, base, "/", NULL, 200, "You've visited this page 2 times\n");
  old_cookie = jar_cookie(a, &old_sid);

  get_body(a, base, "/login", NULL, 400, "Missing ?user=NAME\n");
  get(a, base, "/login?user=alice", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Logged in as alice\n");
  new_sid = set_sid(&r);
  if (new_sid == NULL)
    fail_msg("/login sent no session cookie");
  if (strcmp(new_sid, old_sid) == 0)
    fail_msg("/login kept the session id %s", old_sid);
  http_response_free(&r);
  free(jar_cookie(a, &jar_sid));
  assert_string_equal(jar_sid, new_sid);

  /* The new session holds the user and nothing of the old one (regenerate
   * starts empty, as express-session's does). */
  get(a, base, "/session", NULL, &r);
  assert_int_equal(r.status, 200);
  if (strstr(r.body, "\"user\":\"alice\"") == NULL ||
      strstr(r.body, "views") != NULL)
    fail_msg("/session after login: %s", r.body);
  http_response_free(&r);

  /* The old id is worth nothing now (session fixation). */
  session_lacks(base, old_cookie, gone, "the cookie from before the login");
  not[0] = old_sid;
  not[1] = new_sid;
  not[2] = NULL;
  expect_fresh(base, old_cookie, not, "the cookie from before the login");

  /* The browser's own session counts on, still logged in. */
  get_body(a, base, "/", NULL, 200, WELCOME);
  get_body(a, base, "/", NULL, 200, "You've visited this page 2 times\n");
  get(a, base, "/session", NULL, &r);
  assert_non_null(strstr(r.body, "\"user\":\"alice\""));
  http_response_free(&r);

  free(old_cookie);
  free(old_sid);
  free(new_sid);
  free(jar_sid);
  http_client_free(a);
  kill_demo(0);
}

static void test_logout_destroys(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  static const char *const gone[] = {"views", "bob", NULL};
  const char *base;
  http_client *a, *fresh;
  http_response r;
  char *cookie, *sid;
  const char *not[2];
  (void)state;

  start_demo(0, args, "memory://", NULL, NULL);
  base = demos[0].base;
  a = http_client_new(1);
  get_body(a, base, "/login?user=bob", NULL, 200, "Logged in as bob\n");
  get_body(a, base, "/", NULL, 200, WELCOME);
  get_body(a, base, "/", NULL, 200, "You've visited this page 2 times\n");
  cookie = jar_cookie(a, &sid);

  /* express-session sends no cookie for a destroyed session. */
  get(a, base, "/logout", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Logged out\n");
  if (r.n_set_cookie != 0)
    fail_msg("/logout set a cookie: %s", r.set_cookie[0]);
  http_response_free(&r);

  /* The record is gone: the cookie the browser still holds finds nothing,
   * and its next visit starts over under another id. */
  session_lacks(base, cookie, gone, "the cookie after logout");
  not[0] = sid;
  not[1] = NULL;
  get(a, base, "/", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, WELCOME);
  {
    char *n = set_sid(&r);
    if (n == NULL || strcmp(n, sid) == 0)
      fail_msg("the visit after logout did not get a new session id");
    free(n);
  }
  http_response_free(&r);
  expect_fresh(base, cookie, not, "the cookie after logout (again)");

  /* Logging out without a session is fine too, and sets nothing. */
  fresh = http_client_new(0);
  get(fresh, base, "/logout", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Logged out\n");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  http_client_free(fresh);

  free(cookie);
  free(sid);
  http_client_free(a);
  kill_demo(0);
}

/* A Cookie header made of parts (malloc'd). */
static char *cookie_of(const char *fmt, ...) {
  va_list ap;
  char *s = malloc(16384);
  assert_non_null(s);
  va_start(ap, fmt);
  vsnprintf(s, 16384, fmt, ap);
  va_end(ap);
  return s;
}

static void test_forged_cookies(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  static const char *const other_args[] = {"--port", "0", "--secret",
                                           "another secret", NULL};
  char store[128], *good, *value, *sid, *other_value, *big;
  const char *base;
  http_client *c;
  http_response r;
  size_t i, n;
  const char *not[3];
  char *forged[16];
  size_t n_forged = 0;
  (void)state;

  /* Both demos on one file store: the other secret's cookie names a
   * session that exists, so only the signature check can refuse it. */
  make_scratch();
  snprintf(store, sizeof store, "file://%s/sessions", scratch);
  start_demo(0, args, store, NULL, NULL);
  start_demo(1, other_args, store, NULL, NULL);
  base = demos[0].base;

  c = http_client_new(0);
  get(c, base, "/", NULL, &r);
  assert_string_equal(r.body, WELCOME);
  value = http_set_cookie_value(&r, "connect.sid");
  assert_non_null(value);
  sid = http_cookie_sid(value, SECRET);
  assert_non_null(sid);
  http_response_free(&r);
  good = cookie_of("connect.sid=%s", value);
  get_body(c, base, "/", good, 200, "You've visited this page 2 times\n");

  get(c, demos[1].base, "/", NULL, &r);
  assert_string_equal(r.body, WELCOME);
  other_value = http_set_cookie_value(&r, "connect.sid");
  assert_non_null(other_value);
  http_response_free(&r);
  /* Sanity: the other demo knows its own cookie. */
  {
    char *own = cookie_of("connect.sid=%s", other_value);
    get_body(c, demos[1].base, "/", own, 200,
             "You've visited this page 2 times\n");
    free(own);
  }

  /* The signature's last character changed. */
  n = strlen(value);
  forged[n_forged] = cookie_of("connect.sid=%s", value);
  forged[n_forged][strlen("connect.sid=") + n - 1] =
      value[n - 1] == 'A' ? 'B' : 'A';
  n_forged++;
  /* Another secret's cookie, for a session in the same store. */
  forged[n_forged++] = cookie_of("connect.sid=%s", other_value);
  /* No signature, no prefix, an empty one. */
  forged[n_forged++] = cookie_of("connect.sid=s%%3A%s", sid);
  forged[n_forged++] = cookie_of("connect.sid=s%%3A%s.", sid);
  forged[n_forged++] = cookie_of("connect.sid=%s", sid);
  /* Malformed. */
  forged[n_forged++] = cookie_of("connect.sid=");
  forged[n_forged++] = cookie_of("connect.sid=%%zz%%; other=%%");
  forged[n_forged++] = cookie_of("connect.sid=s%%3A%%ff%%fe.%%00x");
  forged[n_forged++] = cookie_of("connect.sid=\"s%%3A%s\"", sid);
  forged[n_forged++] = cookie_of("connect.sid==; ==; ;;; connect.sid");
  /* Oversized: a 6000-byte id with a signature, within what every demo's
   * server reads (a header the server itself refuses would not reach the
   * session at all). */
  big = malloc(6001);
  assert_non_null(big);
  memset(big, 'A', 6000);
  big[6000] = '\0';
  forged[n_forged++] = cookie_of("connect.sid=s%%3A%s.%s", big,
                                 strchr(value, '.') + 1);
  /* Many cookies, none of them ours. */
  {
    char *many = malloc(8192);
    size_t off = 0;
    assert_non_null(many);
    for (i = 0; i < 300 && off < 8000; i++)
      off += (size_t)snprintf(many + off, 8192 - off, "%sc%zu=v%zu",
                              i ? "; " : "", i, i);
    forged[n_forged++] = many;
  }

  not[0] = sid;
  not[2] = NULL;
  {
    char *other_sid = http_cookie_sid(other_value, "another secret");
    assert_non_null(other_sid);
    not[1] = other_sid;
    for (i = 0; i < n_forged; i++) {
      char what[64];
      snprintf(what, sizeof what, "forged cookie %zu", i + 1);
      expect_fresh(base, forged[i], not, what);
      free(forged[i]);
    }
    free(other_sid);
  }

  /* None of that touched the real session. */
  get_body(c, base, "/", good, 200, "You've visited this page 3 times\n");

  free(big);
  free(good);
  free(value);
  free(other_value);
  free(sid);
  http_client_free(c);
  kill_demo(0);
  kill_demo(1);
}

/* ------------------------------------------------------------------------ */
/* Routes: /health, 404, /inc                                               */
/* ------------------------------------------------------------------------ */

static void test_health_and_404(void **state) {
  /* With these flags every session route sends a cookie... */
  static const char *const args[] = {"--port", "0", "--save-uninitialized",
                                     "--rolling", NULL};
  static const char *const plain[] = {"--port", "0", NULL};
  http_client *c;
  http_response r;
  (void)state;

  start_demo(0, args, "memory://", NULL, NULL);
  c = http_client_new(0);
  get(c, demos[0].base, "/nope", NULL, &r);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.body, "Not Found\n");
  if (r.n_set_cookie != 1)
    fail_msg("404 with --save-uninitialized sent %zu cookies, want 1",
             r.n_set_cookie);
  http_response_free(&r);
  /* ...but /health opens no session. */
  get(c, demos[0].base, "/health", NULL, &r);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  if (r.n_set_cookie != 0)
    fail_msg("/health set a cookie: %s", r.set_cookie[0]);
  http_response_free(&r);
  kill_demo(0);

  /* By default an untouched new session sends nothing either. */
  start_demo(0, plain, "memory://", NULL, NULL);
  get(c, demos[0].base, "/no/such/page", NULL, &r);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.body, "Not Found\n");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  http_client_free(c);
  kill_demo(0);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_inc_delay(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  const char *base;
  http_client *a;
  double t0, took;
  (void)state;

  start_demo(0, args, "memory://", NULL, NULL);
  base = demos[0].base;
  a = http_client_new(1);
  get_body(a, base, "/inc?k=a", NULL, 200, "a: 1\n");
  t0 = now_s();
  get_body(a, base, "/inc?k=a&delay=400", NULL, 200, "a: 2\n");
  took = now_s() - t0;
  if (took < 0.39 || took > 5)
    fail_msg("/inc with delay=400 took %.3f s", took);
  get_body(a, base, "/inc?k=b&delay=0", NULL, 200, "b: 1\n");
  get_body(a, base, "/", NULL, 200, WELCOME); /* views apart from a, b */
  get_body(a, base, "/inc?k=views", NULL, 200, "views: 2\n");

  get_body(a, base, "/inc", NULL, 400,
           "Need ?k=NAME (1-64 characters, not \"cookie\")\n");
  get_body(a, base, "/inc?k=cookie", NULL, 400,
           "Need ?k=NAME (1-64 characters, not \"cookie\")\n");
  get_body(a, base, "/inc?k=a&delay=1e3", NULL, 400,
           "delay: expected milliseconds (digits only)\n");
  get_body(a, base, "/inc?k=a&delay=-5", NULL, 400,
           "delay: expected milliseconds (digits only)\n");
  get_body(a, base, "/login?user=x", NULL, 200, "Logged in as x\n");
  get_body(a, base, "/inc?k=user", NULL, 400, "Not an integer member\n");
  /* The rejected requests changed nothing. */
  get_body(a, base, "/inc?k=a", NULL, 200, "a: 1\n"); /* login: new session */
  http_client_free(a);
  kill_demo(0);
}

/* A slow request in a thread: it only records (no cmocka there). */
typedef struct slow_req {
  http_client *c;
  char url[256];
  long status;
  char body[64];
  char error[256];
  double secs;
} slow_req;

static void *slow_run(void *arg) {
  slow_req *s = arg;
  http_response r;
  double t0 = now_s();
  if (http_get(s->c, s->url, NULL, &r) == 0) {
    s->status = r.status;
    snprintf(s->body, sizeof s->body, "%s", r.body);
  } else {
    snprintf(s->error, sizeof s->error, "%s", r.error);
  }
  s->secs = now_s() - t0;
  http_response_free(&r);
  return NULL;
}

/* SIGTERM while a request sleeps in /inc: the program exits 0 within
 * seconds, not when some timeout fires, and the request is either
 * answered in full (200 "x: 1") or its connection closed - never a 500,
 * never left hanging. (libmicrohttpd's MHD_stop_daemon closes the
 * connection under a request still in its handler: the demos do not
 * promise to drain.) */
static void test_sigterm_with_request_in_flight(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  slow_req s;
  pthread_t t;
  struct timespec pause = {0, 300 * 1000 * 1000};
  double t0;
  int rc;
  (void)state;

  start_demo(0, args, "memory://", NULL, NULL);
  memset(&s, 0, sizeof s);
  s.c = http_client_new(0);
  snprintf(s.url, sizeof s.url, "%s/inc?k=x&delay=1000", demos[0].base);
  assert_int_equal(pthread_create(&t, NULL, slow_run, &s), 0);
  nanosleep(&pause, NULL);
  t0 = now_s();
  assert_int_equal(kill(demos[0].pid, SIGTERM), 0);
  rc = demo_proc_wait(&demos[0], 10000);
  pthread_join(t, NULL);
  http_client_free(s.c);
  printf("# in flight at SIGTERM: %ld '%s' %s after %.2f s; exit %d after "
         "%.2f s\n",
         s.status, s.body, s.error, s.secs, rc, now_s() - t0);
  if (rc != 0)
    fail_msg("exit %d with a request in flight, want 0", rc);
  if (s.secs > 5)
    fail_msg("the request in flight hung for %.2f s", s.secs);
  if (s.status != 0 && (s.status != 200 || strcmp(s.body, "x: 1\n") != 0))
    fail_msg("the request in flight at SIGTERM: %ld '%s'", s.status, s.body);
}

/* ------------------------------------------------------------------------ */
/* Store failure                                                            */
/* ------------------------------------------------------------------------ */

#ifdef CSN_TEST_HAVE_REDIS
/* GET / with cookie until it answers `status` (5 s at most); the last
 * answer stays in *r. */
static double until_status(const char *base, const char *cookie, long status,
                           http_response *r, const char *what) {
  http_client *c = http_client_new(0);
  double t0 = now_s();
  for (;;) {
    get(c, base, "/", cookie, r);
    if (r->status == status)
      break;
    if (now_s() - t0 > 5) {
      char body[128];
      long got = r->status;
      snprintf(body, sizeof body, "%s", r->body);
      http_response_free(r);
      http_client_free(c);
      fail_msg("%s: still %ld '%s' after 5 s, want %ld", what, got, body,
               status);
    }
    http_response_free(r);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  http_client_free(c);
  return now_s() - t0;
}

static void test_store_failure_500(void **state) {
  static const char *const extra[] = {"--appendonly", "yes", "--appendfsync",
                                      "always", NULL};
  static const char *const args[] = {"--port", "0", "--threads", "2", NULL};
  char url[160], err_path[128], log[4096];
  http_response r;
  char *value, *cookie;
  const char *base;
  double took;
  (void)state;

  make_scratch();
  if (redis_proc_start(&redis, extra, NULL) != 0)
    fail_msg("redis-server: %s", redis.err);
  snprintf(url, sizeof url,
           "redis://127.0.0.1:%u/0?timeout=500&connect_timeout=500",
           redis.port);
  snprintf(err_path, sizeof err_path, "%s/demo.err", scratch);
  start_demo(0, args, url, NULL, err_path);
  base = demos[0].base;

  {
    http_client *c = http_client_new(0);
    get(c, base, "/", NULL, &r);
    http_client_free(c);
  }
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, WELCOME);
  value = http_set_cookie_value(&r, "connect.sid");
  assert_non_null(value);
  http_response_free(&r);
  cookie = cookie_of("connect.sid=%s", value);
  {
    http_client *c = http_client_new(0);
    get_body(c, base, "/", cookie, 200, "You've visited this page 2 times\n");
    http_client_free(c);
  }

  /* Redis dies: the session cannot be loaded or saved. */
  if (redis_proc_crash(&redis) != 0)
    fail_msg("kill redis: %s", redis.err);
  took = until_status(base, cookie, 500, &r, "with Redis down");
  printf("# 500 after %.2f s without Redis\n", took);
  assert_string_equal(r.body, ISE);
  if (r.n_set_cookie != 0)
    fail_msg("the 500 set a cookie: %s", r.set_cookie[0]);
  http_response_free(&r);
  /* A new visitor fails alike, and the program itself is fine. */
  until_status(base, NULL, 500, &r, "a new visitor with Redis down");
  assert_string_equal(r.body, ISE);
  http_response_free(&r);
  {
    http_client *c = http_client_new(0);
    get_body(c, base, "/health", NULL, 200, "ok\n");
    http_client_free(c);
  }

  /* Redis is back with its data (fsync always): the same session counts
   * on from where it was. */
  if (redis_proc_restart(&redis) != 0)
    fail_msg("restart redis: %s", redis.err);
  took = until_status(base, cookie, 200, &r, "with Redis back");
  printf("# 200 again %.2f s after Redis answered\n", took);
  assert_string_equal(r.body, "You've visited this page 3 times\n");
  http_response_free(&r);

  stop_demo_ok(0);
  /* The failure was logged, without the session id. */
  {
    char *sid = http_cookie_sid(value, SECRET);
    FILE *f = fopen(err_path, "r");
    size_t n;
    assert_non_null(sid);
    assert_non_null(f);
    n = fread(log, 1, sizeof log - 1, f);
    log[n] = '\0';
    fclose(f);
    if (n == 0)
      fail_msg("the store failure was not logged");
    if (strstr(log, sid) != NULL)
      fail_msg("the log shows the session id: %s", log);
    free(sid);
  }
  free(cookie);
  free(value);
}
#endif /* CSN_TEST_HAVE_REDIS */

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

/* Run the program with args to its end (10 s at most): its exit status
 * (-1: killed by a signal or timed out) and its stdout and stderr
 * (truncated to the buffers). secret_env as demo_proc_spawn. */
static int run_capture(const char *const *args, const char *secret_env,
                       char *out, size_t out_size, char *err,
                       size_t err_size) {
  char out_path[] = "/tmp/csn-demo-out-XXXXXX";
  char err_path[] = "/tmp/csn-demo-err-XXXXXX";
  const char *argv[32];
  int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path), status = 0;
  double t0 = now_s();
  size_t i;
  pid_t pid, w;
  ssize_t n;

  assert_true(out_fd >= 0 && err_fd >= 0);
  argv[0] = need_bin();
  for (i = 0; args[i] != NULL && i < 30; i++)
    argv[i + 1] = args[i];
  argv[i + 1] = NULL;
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    unsetenv("CSN_STORE");
    if (secret_env != NULL)
      setenv("CSN_SECRET", secret_env, 1);
    else
      unsetenv("CSN_SECRET");
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_s() - t0 < 10) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (w == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    status = -1;
  } else {
    status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  n = pread(out_fd, out, out_size - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  n = pread(err_fd, err, err_size - 1, 0);
  err[n > 0 ? n : 0] = '\0';
  close(out_fd);
  close(err_fd);
  unlink(out_path);
  unlink(err_path);
  return status;
}

/* Exit status 2 and a message on stderr holding `phrase`. */
static void expect_usage_error(const char *const *args, const char *env,
                               const char *phrase) {
  char out[4096], err[4096];
  int rc = run_capture(args, env, out, sizeof out, err, sizeof err);
  if (rc != 2 || strstr(err, phrase) == NULL)
    fail_msg("%s ...: exit %d, stderr '%s'; want 2 and '%s'",
             args[0] != NULL ? args[0] : "(no arguments)", rc, err, phrase);
}

static void test_usage_errors(void **state) {
  static const char *const no_secret[] = {"--port", "0", NULL};
  static const char *const bad_age[] = {"--secret", "x", "--max-age", "1e3",
                                        NULL};
  static const char *const neg_age[] = {"--secret", "x", "--max-age", "-5",
                                        NULL};
  static const char *const bad_port[] = {"--secret", "x", "--port", "70000",
                                         NULL};
  static const char *const bad_threads[] = {"--secret", "x", "--threads",
                                            "0", NULL};
  static const char *const unknown[] = {"--secret", "x", "--frobnicate",
                                        NULL};
  static const char *const missing[] = {"--secret", NULL};
  static const char *const bad_store[] = {
      "--secret", "x", "--store", "nosuch://user:hunter2@host/x", NULL};
  static const char *const bad_bind[] = {"--secret", "x", "--bind", "nowhere",
                                         NULL};
  char out[4096], err[4096];
  int rc;
  (void)state;
  expect_usage_error(no_secret, NULL, "secret");
  expect_usage_error(no_secret, "", "secret"); /* empty is no secret */
  expect_usage_error(bad_age, NULL, "--max-age");
  expect_usage_error(neg_age, NULL, "--max-age");
  expect_usage_error(bad_port, NULL, "--port");
  expect_usage_error(bad_threads, NULL, "--threads");
  expect_usage_error(unknown, NULL, "unknown option");
  expect_usage_error(missing, NULL, "needs a value");
  expect_usage_error(bad_store, NULL, "--store");
  expect_usage_error(bad_bind, NULL, "--bind");
  /* A store URL's password never reaches the terminal. */
  rc = run_capture(bad_store, NULL, out, sizeof out, err, sizeof err);
  assert_int_equal(rc, 2);
  if (strstr(err, "hunter2") != NULL || strstr(out, "hunter2") != NULL)
    fail_msg("the password was shown: %s", err);
}

/* A port already taken: the program says so and exits, never a banner
 * for a server that is not listening. */
static void test_port_taken(void **state) {
  static const char *const args[] = {"--port", "0", NULL};
  const char *colon;
  char port[16], out[4096], err[4096];
  int rc;
  (void)state;
  start_demo(0, args, "memory://", NULL, NULL);
  colon = strrchr(demos[0].base, ':');
  snprintf(port, sizeof port, "%s", colon + 1);
  {
    const char *const taken[] = {"--port", port, "--store", "memory://",
                                 NULL};
    rc = run_capture(taken, SECRET, out, sizeof out, err, sizeof err);
  }
  if (rc <= 0 || strstr(out, "listening") != NULL)
    fail_msg("a second demo on port %s: exit %d, stdout '%s'", port, rc,
             out);
  {
    http_client *c = http_client_new(0);
    get_body(c, demos[0].base, "/health", NULL, 200, "ok\n");
    http_client_free(c);
  }
  kill_demo(0);
}

static void test_help(void **state) {
  static const char *const args[] = {"--help", NULL};
  char out[8192], err[4096];
  int rc;
  (void)state;
  rc = run_capture(args, NULL, out, sizeof out, err, sizeof err);
  assert_int_equal(rc, 0);
  if (strncmp(out, "usage: ", 7) != 0 || strstr(out, "--secret") == NULL ||
      strstr(out, "GET /login?user=NAME") == NULL)
    fail_msg("--help printed: %s", out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_counts_and_stops_cleanly, teardown),
      cmocka_unit_test_teardown(test_restart_keeps_visits, teardown),
      cmocka_unit_test_teardown(test_sigint_stops_too, teardown),
      cmocka_unit_test_teardown(test_login_regenerates, teardown),
      cmocka_unit_test_teardown(test_logout_destroys, teardown),
      cmocka_unit_test_teardown(test_forged_cookies, teardown),
      cmocka_unit_test_teardown(test_health_and_404, teardown),
      cmocka_unit_test_teardown(test_inc_delay, teardown),
      cmocka_unit_test_teardown(test_sigterm_with_request_in_flight, teardown),
#ifdef CSN_TEST_HAVE_REDIS
      cmocka_unit_test_teardown(test_store_failure_500, teardown),
#endif
      cmocka_unit_test_teardown(test_usage_errors, teardown),
      cmocka_unit_test_teardown(test_port_taken, teardown),
      cmocka_unit_test_teardown(test_help, teardown),
  };
  if (demo_proc_bin() == NULL) {
    fprintf(stderr, "CSN_DEMO_BIN is not set: run through ctest, or set it "
                    "to a demo program\n");
    return 1;
  }
  /* A child that dies early must not kill the test with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
