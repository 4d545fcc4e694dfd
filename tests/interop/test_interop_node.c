/* test_interop_node.c - one browser, two servers, one store.
 *
 * A C server (csession + libmicrohttpd) and a Node express app (app.js, with
 * the real session-file-store or connect-sqlite3) share the secret and the
 * store. A libcurl client with a cookie jar alternates between them; the
 * express-session README's visit counter must go up by one on every request,
 * whichever server answers, in both orders (C first, Node first), and after
 * each server has read the other's record.
 *
 * "file-secret" is the file store with session-file-store's `secret` on both
 * sides (encrypted files; app.js reads FILE_SECRET).
 *
 * The race: a slow C request (it loads the session, then waits) and Node
 * requests that save the whole record meanwhile. The C save must merge its
 * own change into Node's record, not overwrite it: Node's writes survive.
 * (The other way round cannot be fixed from C: a slow Node request's save
 * overwrites whatever was written since it loaded, as express-session
 * always does.)
 *
 * Usage: test_interop_node file|file-secret|sqlite <node> <app.js>
 */
#define _XOPEN_SOURCE 700 /* nftw() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "csn/csn.h"
#include "csn/csn_store_file.h"
#ifdef CSN_INTEROP_SQLITE
#include "csn/csn_store_sqlite.h"
#endif
#include "http_harness.h"

#define SECRET "interop keyboard cat"
#define WELCOME "Welcome! Refresh the page to count visits."
/* The store's secret, deliberately not the cookie secret; URL-safe. */
#define FILE_SECRET "interop-file-secret"

/* kind is the Node app's STORE ("file" or "sqlite"); encrypted is set for
 * "file-secret". */
static const char *kind, *node_bin, *app_js;
static int encrypted;
static char root[256];

typedef struct node_app {
  pid_t pid;
  int port;
} node_app;

/* Global so that teardown stops it even when an assertion fails midway. */
static node_app node;

/* ------------------------------------------------------------------------ */
/* The C server: the same counter as app.js                                 */
/* ------------------------------------------------------------------------ */

static csn_mhd_result counter(const http_req *r) {
  csn_request *sr = NULL;
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &sr);
  if (rc != CSN_OK) return csn_mhd_error(r->ctx, r->conn, rc);
  csn_session *s = csn_request_session(sr);
  char body[128];
  int64_t views = 0;
  if (csn_session_get_int(s, "views", &views) == CSN_OK && views != 0) {
    csn_session_incr(s, "views", 1, &views);
    snprintf(body, sizeof body, "You've visited this page %lld times",
             (long long)views);
  } else {
    csn_session_set_int(s, "views", 1);
    snprintf(body, sizeof body, WELCOME);
  }
  return http_reply(r->conn, sr, 200, body, NULL);
}

/* "/inc?k=NAME&delay=MS": wait after loading, then add 1 to NAME (what
 * the demo's route does, with the delay that opens the race). */
static csn_mhd_result inc(const http_req *r) {
  csn_request *sr = NULL;
  const char *k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                              "k");
  const char *d = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                              "delay");
  char body[128];
  int64_t v = 0;
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &sr);
  if (rc != CSN_OK) return csn_mhd_error(r->ctx, r->conn, rc);
  if (d != NULL) {
    long ms = atol(d);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  csn_session_incr(csn_request_session(sr), k ? k : "x", 1, &v);
  snprintf(body, sizeof body, "%s: %lld", k ? k : "x", (long long)v);
  return http_reply(r->conn, sr, 200, body, NULL);
}

static csn_mhd_result route(const http_req *r) {
  if (strncmp(r->url, "/inc", 4) == 0) return inc(r);
  return counter(r);
}

/* ------------------------------------------------------------------------ */
/* The Node app                                                             */
/* ------------------------------------------------------------------------ */

static int node_start(node_app *n, const char *store_path) {
  int out[2];
  if (pipe(out) != 0) return -1;
  n->pid = fork();
  if (n->pid < 0) return -1;
  if (n->pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    setenv("STORE", kind, 1);
    setenv("STORE_PATH", store_path, 1);
    setenv("SECRET", SECRET, 1);
    if (encrypted) setenv("FILE_SECRET", FILE_SECRET, 1);
    setenv("PORT", "0", 1);
    execl(node_bin, node_bin, app_js, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  /* Wait for "listening <port>\n" (node prints nothing else on stdout). */
  char line[128];
  size_t len = 0;
  while (len < sizeof line - 1) {
    ssize_t r = read(out[0], line + len, 1);
    if (r <= 0) break;
    if (line[len++] == '\n') break;
  }
  line[len] = '\0';
  close(out[0]);
  if (sscanf(line, "listening %d", &n->port) != 1) {
    fprintf(stderr, "node app did not start: '%s'\n", line);
    return -1;
  }
  return 0;
}

static void node_stop(node_app *n) {
  if (n->pid <= 0) return;
  kill(n->pid, SIGTERM);
  int status;
  waitpid(n->pid, &status, 0);
  n->pid = 0;
}

/* ------------------------------------------------------------------------ */
/* The walk                                                                 */
/* ------------------------------------------------------------------------ */

static csn_store *open_store(char *store_path, size_t size) {
  char url[512], err[256] = "";
  csn_store *st = NULL;
  int rc;
  if (strcmp(kind, "file") == 0) {
    snprintf(store_path, size, "%s/sessions", root);
    snprintf(url, sizeof url, "file://%s?reap=0%s", store_path,
             encrypted ? "&secret=" FILE_SECRET : "");
    rc = csn_store_file_open(url, &st, err, sizeof err);
  } else {
#ifdef CSN_INTEROP_SQLITE
    snprintf(store_path, size, "%s/sessions.db", root);
    snprintf(url, sizeof url, "sqlite://%s?prune=0", store_path);
    rc = csn_store_sqlite_open(url, &st, err, sizeof err);
#else
    rc = CSN_ENOTSUP;
#endif
  }
  if (rc != CSN_OK) fail_msg("open %s: %s", url, err);
  return st;
}

/* Alternate `steps` requests starting with the C server (c_first) or the
 * Node app, with a fresh browser; the counter must never break. */
/* Both servers on one store: the C server (the same options as app.js)
 * and the Node app. */
typedef struct pair {
  csn_store *st;
  csn_ctx *ctx;
  http_server *srv;
  char store_path[300];
} pair;

static void pair_start(pair *p) {
  static const char *const secrets[] = {SECRET};
  csn_options o;
  http_server_opts so = {0};
  p->st = open_store(p->store_path, sizeof p->store_path);
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.resave = 0;
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = 3600000;
  o.store = p->st;
  p->ctx = http_ctx_new(&o);
  so.ctx = p->ctx;
  so.handler = route;
  so.threads = 2;
  p->srv = NULL;
  assert_int_equal(http_server_start(&so, &p->srv), 0);
  assert_int_equal(node_start(&node, p->store_path), 0);
}

static void pair_stop(pair *p) {
  node_stop(&node);
  http_server_stop(p->srv);
  csn_ctx_free(p->ctx);
  csn_store_free(p->st);
}

static void walk(int c_first) {
  pair p;
  pair_start(&p);
  csn_store *st = p.st;
  http_server *srv = p.srv;
  const char *store_path = p.store_path;

  char c_url[128], n_url[128];
  http_server_url(srv, "/", c_url, sizeof c_url);
  snprintf(n_url, sizeof n_url, "http://127.0.0.1:%d/", node.port);

  http_client *cl = http_client_new(1);
  char *first_sid = NULL;
  for (int i = 0; i < 8; i++) {
    int on_c = (i % 2 == 0) == (c_first != 0);
    http_response resp;
    int rc = http_get(cl, on_c ? c_url : n_url, NULL, &resp);
    if (rc != 0 || resp.status != 200)
      fail_msg("request %d to %s: status %ld %s %s", i, on_c ? "C" : "Node",
               resp.status, resp.error, resp.body ? resp.body : "");
    char want[128];
    if (i == 0)
      snprintf(want, sizeof want, WELCOME);
    else
      snprintf(want, sizeof want, "You've visited this page %d times", i + 1);
    if (strcmp(resp.body, want) != 0)
      fail_msg("request %d to %s: got '%s', want '%s'", i, on_c ? "C" : "Node",
               resp.body, want);
    http_response_free(&resp);
    /* One session throughout: the id in the jar never changes. */
    char *cookie = http_client_cookie(cl, "connect.sid");
    assert_non_null(cookie);
    char *sid = http_cookie_sid(cookie, SECRET);
    assert_non_null(sid);
    if (first_sid == NULL)
      first_sid = sid;
    else {
      assert_string_equal(sid, first_sid);
      free(sid);
    }
    free(cookie);
  }

  /* The stored record is the last writer's, readable by the C store. */
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, first_sid, &json, &len), CSN_OK);
  assert_non_null(strstr(json, "\"views\":8"));
  csn_free(json);
  if (strcmp(kind, "file") == 0) {
    /* session-file-store's layout: <dir>/<id>.json with __lastAccess. */
    char path[600];
    snprintf(path, sizeof path, "%s/%s.json", store_path, first_sid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (encrypted) {
      /* kruptein's envelope, and nothing of the record in clear. */
      assert_int_equal(strncmp(buf, "{\"hmac\":\"", 9), 0);
      assert_null(strstr(buf, "__lastAccess"));
    } else {
      assert_non_null(strstr(buf, "\"__lastAccess\":"));
    }
  }

  free(first_sid);
  http_client_free(cl);
  pair_stop(&p);
}

/* A slow C request races Node requests on one session. */
typedef struct slow_call {
  char url[256];
  char cookie[512];
  http_response resp;
  int rc;
} slow_call;

static void *slow_main(void *arg) {
  slow_call *c = arg;
  http_client *cl = http_client_new(0);
  c->rc = http_get(cl, c->url, c->cookie, &c->resp);
  http_client_free(cl);
  return NULL;
}

static void race(void) {
  pair p;
  pair_start(&p);
  csn_store *st = p.st;
  http_server *srv = p.srv;

  /* A session made by C. */
  char url[256];
  http_client *cl = http_client_new(1);
  http_response resp;
  assert_int_equal(http_get(cl, http_server_url(srv, "/", url, sizeof url),
                            NULL, &resp),
                   0);
  assert_int_equal(resp.status, 200);
  http_response_free(&resp);
  char *value = http_client_cookie(cl, "connect.sid");
  assert_non_null(value);
  char *sid = http_cookie_sid(value, SECRET);
  assert_non_null(sid);

  /* The slow C request loads it and waits... */
  slow_call slow;
  memset(&slow, 0, sizeof slow);
  http_server_url(srv, "/inc?k=c&delay=1500", slow.url, sizeof slow.url);
  snprintf(slow.cookie, sizeof slow.cookie, "connect.sid=%s", value);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, slow_main, &slow), 0);
  struct timespec pause = {0, 300 * 1000000L};
  nanosleep(&pause, NULL);

  /* ...while Node saves the whole record three times. */
  char n_url[128];
  snprintf(n_url, sizeof n_url, "http://127.0.0.1:%d/inc?k=n", node.port);
  for (int i = 1; i <= 3; i++) {
    char want[32];
    assert_int_equal(http_get(cl, n_url, NULL, &resp), 0);
    snprintf(want, sizeof want, "n: %d", i);
    if (resp.status != 200 || strcmp(resp.body, want) != 0)
      fail_msg("Node /inc %d: status %ld '%s'", i, resp.status,
               resp.body ? resp.body : "");
    http_response_free(&resp);
  }
  pthread_join(th, NULL);
  assert_int_equal(slow.rc, 0);
  if (slow.resp.status != 200 || strcmp(slow.resp.body, "c: 1") != 0)
    fail_msg("slow C /inc: status %ld '%s'", slow.resp.status,
             slow.resp.body ? slow.resp.body : "");
  http_response_free(&slow.resp);

  /* Both sides' changes are in the record: the C save merged. */
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
  if (strstr(json, "\"n\":3") == NULL || strstr(json, "\"c\":1") == NULL ||
      strstr(json, "\"views\":1") == NULL)
    fail_msg("a write was lost: %s", json);
  csn_free(json);

  free(sid);
  free(value);
  http_client_free(cl);
  pair_stop(&p);
}

static void interop_node_writes_survive_slow_c_save(void **state) {
  (void)state;
  race();
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static int fresh_root(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-interop-XXXXXX", tmp ? tmp : "/tmp");
  return mkdtemp(root) == NULL ? -1 : 0;
}

static int drop_root(void **state) {
  (void)state;
  node_stop(&node);
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

static void interop_c_first(void **state) {
  (void)state;
  walk(1);
}

static void interop_node_first(void **state) {
  (void)state;
  walk(0);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s file|file-secret|sqlite <node> <app.js>\n",
            argv[0]);
    return 2;
  }
  kind = argv[1];
  if (strcmp(kind, "file-secret") == 0) {
    kind = "file";
    encrypted = 1;
  }
  node_bin = argv[2];
  app_js = argv[3];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(interop_c_first, fresh_root, drop_root),
      cmocka_unit_test_setup_teardown(interop_node_first, fresh_root,
                                      drop_root),
      cmocka_unit_test_setup_teardown(interop_node_writes_survive_slow_c_save,
                                      fresh_root, drop_root),
  };
  char group[64];
  snprintf(group, sizeof group, "store_%s_interop_node",
           encrypted ? "file_crypt" : kind);
  return cmocka_run_group_tests_name(group, tests, NULL, NULL);
}
