/* test_interop_lifetime.c - the absolute timeout (lifetime_ms) with a real
 * Node express-session app on the same store: the creation stamp
 * (CSN_CREATED_MEMBER) must survive Node loading, changing and saving the
 * session, and the C side must still end the session at the lifetime.
 *
 * The Node side is tests/interop/app.js (express-session with the real
 * session-file-store / connect-sqlite3 / connect-redis), whose /inc?k=n adds
 * one to member n and saves. The C side needs no HTTP: requests go straight
 * through csn_request_begin/commit with the Cookie header the Node app
 * set, on the test's clock (wall clock at the start plus a fake offset, so
 * Node's and the stores' real-time expiry stays consistent: the offsets
 * stay well within app.js's one-hour maxAge).
 *
 *   c_first:    C creates the session (stamp S), Node saves it twice, C
 *               changes it in between; the stamp stays S in the stored
 *               record; C keeps the id at S + lifetime - 1 and gets a new
 *               session at S + lifetime, the old record gone (Node, given
 *               the old cookie, then starts a new session as well).
 *   node_first: Node creates the session (no stamp); the first C load
 *               stamps it (T) and saves it once, data kept; Node saves it
 *               again and the stamp survives; C ends it at T + lifetime.
 *
 * Usage: test_interop_lifetime file|sqlite|redis|pg|mongo <node> <app.js>
 * (redis, pg, mongo: CSN_TEST_REDIS_URL, CSN_TEST_PG_URL or
 * CSN_TEST_MONGO_URL, else exit 77). pg: a table of this run's own in the
 * URL's database, made by the C store (create_table=1, connect-pg-simple's
 * DDL) and dropped at the end; mongo: a collection of this run's own in
 * the URL's database, connect-mongo's default JSON text. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef CSN_LIFE_PG
#include "pg_drop.h"
#endif

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_stores.h"
#include "http_harness.h"
#include "request_rig.h"
#include "test_clock.h"

#define SECRET "interop lifetime cat"
#define MAX_AGE_MS INT64_C(3600000) /* app.js's cookie.maxAge */
#define LIFETIME INT64_C(600000)    /* ten minutes */

static const char *kind, *node_bin, *app_js;
static char root[256];
static char c_url[1024], node_path[512], prefix[64];
/* pg: PG_TABLE for app.js; mongo: MONGO_COLLECTION. Empty otherwise. */
static char table[64];
static int64_t fake_now;

static int64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

/* ---------------------------------------------------------------------- */
/* The Node app                                                           */
/* ---------------------------------------------------------------------- */

static pid_t node_pid;
static int node_port;

static int node_start(void) {
  int out[2];
  char line[128];
  size_t len = 0;
  if (pipe(out) != 0)
    return -1;
  node_pid = fork();
  if (node_pid < 0)
    return -1;
  if (node_pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    setenv("STORE", kind, 1);
    setenv("STORE_PATH", node_path, 1);
    setenv("SECRET", SECRET, 1);
    setenv("PORT", "0", 1);
    if (prefix[0] != '\0')
      setenv("PREFIX", prefix, 1);
    if (table[0] != '\0')
      setenv(strcmp(kind, "pg") == 0 ? "PG_TABLE" : "MONGO_COLLECTION",
             table, 1);
    execl(node_bin, node_bin, app_js, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  /* "listening <port>\n", 30 s at most */
  while (len < sizeof line - 1) {
    struct pollfd pfd = {out[0], POLLIN, 0};
    ssize_t r;
    if (poll(&pfd, 1, 30000) <= 0)
      break;
    r = read(out[0], line + len, 1);
    if (r <= 0)
      break;
    if (line[len++] == '\n')
      break;
  }
  line[len] = '\0';
  close(out[0]);
  if (sscanf(line, "listening %d", &node_port) != 1) {
    fprintf(stderr, "node app did not start: '%s'\n", line);
    return -1;
  }
  return 0;
}

static void node_stop(void) {
  int status;
  if (node_pid <= 0)
    return;
  kill(node_pid, SIGTERM);
  for (int i = 0; i < 1000; i++) {
    if (waitpid(node_pid, &status, WNOHANG) != 0) {
      node_pid = 0;
      return;
    }
    sleep_ms(10);
  }
  kill(node_pid, SIGKILL);
  waitpid(node_pid, &status, 0);
  node_pid = 0;
}

/* GET /inc?k=n on the Node app with `cookie` (may be ""): the body must be
 * "n: <want>". A Set-Cookie replaces the cookie. */
static void node_inc(char *cookie, size_t size, long want) {
  http_client *cl = http_client_new(0);
  http_response resp;
  char url[128], body[64];
  char *value;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/inc?k=n", node_port);
  if (http_get(cl, url, cookie[0] ? cookie : NULL, &resp) != 0 ||
      resp.status != 200)
    fail_msg("node /inc: status %ld %s", resp.status, resp.error);
  snprintf(body, sizeof body, "n: %ld", want);
  if (strcmp(resp.body, body) != 0)
    fail_msg("node /inc answered '%s', want '%s'", resp.body, body);
  value = http_set_cookie_value(&resp, "connect.sid");
  if (value != NULL)
    snprintf(cookie, size, "connect.sid=%s", value);
  free(value);
  http_response_free(&resp);
  http_client_free(cl);
}

/* ---------------------------------------------------------------------- */
/* The C side                                                             */
/* ---------------------------------------------------------------------- */

static csn_store *st;
static csn_ctx *ctx;

static void c_open(void) {
  static const char *const secrets[] = {SECRET};
  char err[512] = "";
  csn_options o;
  if (csn_store_open(c_url, &st, err, sizeof err) != CSN_OK)
    fail_msg("open %s: %s", kind, err);
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.resave = 0; /* app.js's options */
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = MAX_AGE_MS;
  o.store = st;
  o.clock = fake_clock;
  o.lifetime_ms = LIFETIME;
  if (csn_ctx_new(&ctx, &o, err, sizeof err) != CSN_OK)
    fail_msg("csn_ctx_new: %s", err);
}

static void c_close(void) {
  csn_ctx_free(ctx);
  ctx = NULL;
  csn_store_free(st);
  st = NULL;
}

/* One C request with `cookie`; change: add one to member c. Returns the
 * session id (into id) and n (-1 when absent); a Set-Cookie replaces the
 * cookie. */
static long c_request(char *cookie, size_t size, int change, char *id) {
  csn_request *r = rig_begin(ctx, cookie[0] ? cookie : NULL);
  csn_session *s = csn_request_session(r);
  int64_t n = -1;
  char *sc = NULL;
  (void)csn_session_get_int(s, "n", &n);
  if (change)
    assert_int_equal(csn_session_incr(s, "c", 1, NULL), CSN_OK);
  snprintf(id, CSN_ID_MAX + 1, "%s", csn_request_session_id(r));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  if (sc != NULL)
    rig_cookie_of(sc, cookie, size);
  csn_free(sc);
  return (long)n;
}

/* The stored record's stamp (CSN_TIME_NONE without one; the record must
 * exist), read through the C store. */
static int64_t stored_stamp(const char *sid, char **text_out) {
  char *text = NULL;
  size_t len = 0;
  const char *p;
  long long v;
  int rc = csn_store_get(st, sid, &text, &len);
  if (rc != CSN_OK)
    fail_msg("%s: no stored record for the session (%s)", kind,
             csn_strerror(rc));
  p = strstr(text, "\"" CSN_CREATED_MEMBER "\":");
  v = p ? strtoll(p + strlen(CSN_CREATED_MEMBER) + 3, NULL, 10)
        : (long long)CSN_TIME_NONE;
  if (text_out)
    *text_out = text;
  else
    csn_free(text);
  return v;
}

static int is_stored(const char *sid) {
  char *text = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, sid, &text, &len);
  csn_free(text);
  if (rc != CSN_OK && rc != CSN_ENOENT)
    fail_msg("get: %s", csn_strerror(rc));
  return rc == CSN_OK;
}

static int cookie_sid_eq(const char *cookie, const char *sid) {
  char *id = http_cookie_sid(cookie + strlen("connect.sid="), SECRET);
  int eq = id != NULL && strcmp(id, sid) == 0;
  free(id);
  return eq;
}

/* ---------------------------------------------------------------------- */

static void lifetime_c_first(void **state) {
  char cookie[512] = "", old[512], sid[CSN_ID_MAX + 1], id[CSN_ID_MAX + 1];
  char *text = NULL;
  int64_t S;
  (void)state;
  c_open();
  assert_int_equal(node_start(), 0);

  S = fake_now = wall_ms();
  assert_int_equal(c_request(cookie, sizeof cookie, 1, sid), -1);
  assert_int_equal(stored_stamp(sid, NULL), S);

  /* Node loads, changes and saves: the stamp is still there. */
  node_inc(cookie, sizeof cookie, 1);
  assert_true(cookie_sid_eq(cookie, sid));
  assert_int_equal(stored_stamp(sid, &text), S);
  assert_non_null(strstr(text, "\"n\":1"));
  assert_non_null(strstr(text, "\"c\":1"));
  csn_free(text);

  fake_now = S + LIFETIME / 2;
  assert_int_equal(c_request(cookie, sizeof cookie, 1, id), 1);
  assert_string_equal(id, sid);
  assert_int_equal(stored_stamp(sid, NULL), S);

  node_inc(cookie, sizeof cookie, 2);
  assert_int_equal(stored_stamp(sid, &text), S);
  assert_non_null(strstr(text, "\"c\":2"));
  csn_free(text);

  fake_now = S + LIFETIME - 1;
  assert_int_equal(c_request(cookie, sizeof cookie, 0, id), 2);
  assert_string_equal(id, sid);

  /* The end: C starts afresh and the record is gone, for Node too. */
  snprintf(old, sizeof old, "%s", cookie);
  fake_now = S + LIFETIME;
  assert_int_equal(c_request(cookie, sizeof cookie, 1, id), -1);
  assert_string_not_equal(id, sid);
  assert_false(is_stored(sid));
  node_inc(old, sizeof old, 1);
  assert_false(cookie_sid_eq(old, sid));
  assert_false(is_stored(sid));

  node_stop();
  c_close();
}

static void lifetime_node_first(void **state) {
  char cookie[512] = "", sid[CSN_ID_MAX + 1], id[CSN_ID_MAX + 1];
  char *nsid, *text = NULL;
  int64_t T;
  (void)state;
  c_open();
  assert_int_equal(node_start(), 0);

  node_inc(cookie, sizeof cookie, 1);
  nsid = http_cookie_sid(cookie + strlen("connect.sid="), SECRET);
  assert_non_null(nsid);
  snprintf(sid, sizeof sid, "%s", nsid);
  free(nsid);
  assert_int_equal(stored_stamp(sid, NULL), CSN_TIME_NONE);

  /* The first C load stamps it, without any change by the handler. */
  T = fake_now = wall_ms();
  assert_int_equal(c_request(cookie, sizeof cookie, 0, id), 1);
  assert_string_equal(id, sid);
  assert_int_equal(stored_stamp(sid, &text), T);
  assert_non_null(strstr(text, "\"n\":1"));
  csn_free(text);

  node_inc(cookie, sizeof cookie, 2);
  assert_int_equal(stored_stamp(sid, NULL), T);

  fake_now = T + LIFETIME - 1;
  assert_int_equal(c_request(cookie, sizeof cookie, 0, id), 2);
  assert_string_equal(id, sid);
  assert_int_equal(stored_stamp(sid, NULL), T);

  fake_now = T + LIFETIME;
  assert_int_equal(c_request(cookie, sizeof cookie, 0, id), -1);
  assert_string_not_equal(id, sid);
  assert_false(is_stored(sid));

  node_stop();
  c_close();
}

static int teardown(void **state) {
  (void)state;
  node_stop();
  if (ctx != NULL || st != NULL)
    c_close();
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(lifetime_c_first, teardown),
      cmocka_unit_test_teardown(lifetime_node_first, teardown),
  };
  int rc;
  if (argc != 4) {
    fprintf(stderr, "usage: %s file|sqlite|redis|pg|mongo <node> <app.js>\n",
            argv[0]);
    return 2;
  }
  kind = argv[1];
  node_bin = argv[2];
  app_js = argv[3];
  csn_stores_register_all();
  if (strcmp(kind, "redis") == 0) {
    const char *u = getenv("CSN_TEST_REDIS_URL");
    if (u == NULL || u[0] == '\0') {
      fprintf(stderr, "interop_lifetime redis: CSN_TEST_REDIS_URL not set\n");
      return 77;
    }
    snprintf(prefix, sizeof prefix, "csnlt%ld:", (long)getpid());
    snprintf(node_path, sizeof node_path, "%s", u);
    snprintf(c_url, sizeof c_url, "%s%sprefix=%s", u,
             strchr(u, '?') ? "&" : "?", prefix);
  } else if (strcmp(kind, "pg") == 0 || strcmp(kind, "mongo") == 0) {
    int pg = strcmp(kind, "pg") == 0;
    const char *u = getenv(pg ? "CSN_TEST_PG_URL" : "CSN_TEST_MONGO_URL");
#ifndef CSN_LIFE_PG
    if (pg) {
      fprintf(stderr, "interop_lifetime pg: built without the pg store\n");
      return 77;
    }
#endif
    if (u == NULL || u[0] == '\0') {
      fprintf(stderr, "interop_lifetime %s: %s not set\n", kind,
              pg ? "CSN_TEST_PG_URL" : "CSN_TEST_MONGO_URL");
      return 77;
    }
    snprintf(table, sizeof table, "csnlt_%ld", (long)getpid());
    snprintf(node_path, sizeof node_path, "%s", u);
    if (pg)
      snprintf(c_url, sizeof c_url, "%s%stable=%s&create_table=1&prune=0", u,
               strchr(u, '?') ? "&" : "?", table);
    else
      snprintf(c_url, sizeof c_url,
               "%s%scollection=%s&stringify=1&auto_remove=native", u,
               strchr(u, '?') ? "&" : "?", table);
  } else {
    snprintf(root, sizeof root, "/tmp/csn-interop-life-XXXXXX");
    if (mkdtemp(root) == NULL)
      return 1;
    if (strcmp(kind, "file") == 0) {
      snprintf(node_path, sizeof node_path, "%s/sessions", root);
      snprintf(c_url, sizeof c_url, "file://%s?reap=0", node_path);
    } else if (strcmp(kind, "sqlite") == 0) {
      snprintf(node_path, sizeof node_path, "%s/sessions.db", root);
      snprintf(c_url, sizeof c_url, "sqlite://%s?prune=0", node_path);
    } else {
      fprintf(stderr, "unknown store %s\n", kind);
      return 2;
    }
  }
  rc = cmocka_run_group_tests_name(kind, tests, NULL, NULL);
#ifdef CSN_LIFE_PG
  if (strcmp(kind, "pg") == 0 && test_pg_drop_table(node_path, table) != 0 &&
      rc == 0)
    rc = 1;
#endif
  if (root[0] != '\0') {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", root);
  }
  return rc;
}
