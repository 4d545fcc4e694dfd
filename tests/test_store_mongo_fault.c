/* test_store_mongo_fault.c - the MongoDB store when MongoDB fails, through
 * the real csession-demo program (12 worker threads) on a MongoDB test
 * server of the test's own (tests/mongo_proc.c: the in-memory
 * tests/mongo/mongo_server.py):
 *
 *   mongodb://127.0.0.1:P/csn_test?collection=sessions&timeout=500
 *     &connect_timeout=500&pool=2
 *
 * The scenario is tests/demo_fault.c's, shared with the other server
 * stores, with one honest difference: the test server keeps its data in
 * memory only (there is no mongod on these machines), so kill -9 loses
 * every session, where Redis (AOF, fsync always) and PostgreSQL (WAL) keep
 * what they acknowledged. For a store whose server lost its data, the
 * right behaviour is a fresh session, never an error or a stale counter;
 * that is what is checked (demo_fault's data_lost_on_crash):
 *
 *   a. 20 sessions, each incremented a few times; each one is a document
 *      of collection "sessions" (looked up with libmongoc).
 *   b. 4 client threads run /inc on those sessions for about 5 s; the
 *      server is killed with SIGKILL in the middle and restarted (same
 *      port, empty) a second later. Every request is answered (200, or
 *      500 while MongoDB is away) within 5 s, never a curl failure; at
 *      least one 500; each 200's counter is above every earlier 200's for
 *      that session, or (answered after the kill) a fresh session's 1;
 *      the demo stays up; service is back within 8 s of the server
 *      answering (measured and printed) and full two seconds later.
 *   c. After the run every old cookie finds no session (the data is
 *      gone: nothing is resurrected from the demo's memory), and new
 *      sessions count from 1 and are stored where the test looks.
 *   d. SIGSTOP: 8 parallel /inc (more than the pool of 2; each on a
 *      worker of its own) come back 500 within 5 s each (printed: each
 *      one's time); /health answers 200 meanwhile; none of them wrote
 *      anything late; after SIGCONT service is back within 8 s.
 *   e. The demo's stderr (captured) names MongoDB and holds no session id
 *      (old or new); the demo exits cleanly. (No password: the test
 *      server has no authentication; tests/test_store_mongo.c checks that
 *      messages never show one.)
 *
 * With a real mongod (MONGODB_URI) this test still runs on the test
 * server: it must kill and freeze a server of its own.
 *
 * Client threads only record; the main thread asserts. The fixture's
 * teardown kills the server and the demo whatever happened.
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
#include <mongoc/mongoc.h>

#include "demo_fault.h"
#include "mongo_proc.h"

#define SECRET "mongo fault secret"
#define COLL "sessions"
#define TIMEOUT_MS 500
#define POOL 2

typedef struct fixture {
  demo_fault df;
  mongo_proc m;
  char err_path[128];
  char url[256];
  char probe_err[BSON_ERROR_BUFFER_SIZE + 16];
} fixture;

static int m_crash(void *ctx) { return mongo_proc_kill9(&((fixture *)ctx)->m); }
static int m_restart(void *ctx) {
  return mongo_proc_restart(&((fixture *)ctx)->m);
}
static int m_freeze(void *ctx) {
  return mongo_proc_freeze(&((fixture *)ctx)->m);
}
static int m_thaw(void *ctx) { return mongo_proc_thaw(&((fixture *)ctx)->m); }

/* The last failure: the server's, or the probe's own. */
static const char *m_error(void *ctx) {
  fixture *f = ctx;
  return f->probe_err[0] != '\0' ? f->probe_err : f->m.err;
}

static void m_kill_now(void *ctx) {
  fixture *f = ctx;
  if (mongo_proc_pid(&f->m) != 0)
    kill(mongo_proc_pid(&f->m), SIGKILL);
}

/* The store writes where this test looks: a document of "sessions" with
 * _id the session id. A client of its own per call (only the main thread
 * calls it, with the server running), so no connection outlives a
 * restart. 1, 0, or -1 (probe_err says why). */
static int m_has_session(void *ctx, const char *sid) {
  fixture *f = ctx;
  bson_error_t err;
  mongoc_uri_t *uri;
  mongoc_client_t *c = NULL;
  mongoc_collection_t *coll;
  bson_t *filter;
  int64_t n;

  f->probe_err[0] = '\0';
  uri = mongoc_uri_new_with_error(mongo_proc_url(&f->m), &err);
  if (uri != NULL) {
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   5000);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 10000);
    c = mongoc_client_new_from_uri_with_error(uri, &err);
    mongoc_uri_destroy(uri);
  }
  if (c == NULL) {
    snprintf(f->probe_err, sizeof f->probe_err, "libmongoc: %s", err.message);
    return -1;
  }
  coll = mongoc_client_get_collection(c, "csn_test", COLL);
  filter = BCON_NEW("_id", BCON_UTF8(sid));
  n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &err);
  if (n < 0)
    snprintf(f->probe_err, sizeof f->probe_err, "count: %s", err.message);
  bson_destroy(filter);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(c);
  return n < 0 ? -1 : n > 0;
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
  demo_fault_teardown(&f->df);
  mongo_proc_cleanup(&f->m);
  free(f);
  return 0;
}

static void test_mongo_faults(void **state) {
  static const char *const names[] = {"mongo", NULL};
  fixture *f = *state;
  demo_fault *df = &f->df;

  if (mongo_proc_start(&f->m, 0) != 0)
    fail_msg("cannot start a MongoDB test server: %s", f->m.err);
  snprintf(f->url, sizeof f->url,
           "%s?collection=" COLL "&timeout=%d&connect_timeout=%d&pool=%d",
           mongo_proc_url(&f->m), TIMEOUT_MS, TIMEOUT_MS, POOL);
  snprintf(f->err_path, sizeof f->err_path, "%s/demo.err", f->m.dir);
  df->srv.probe.name = "MongoDB";
  df->srv.probe.ctx = f;
  df->srv.crash = m_crash;
  df->srv.restart = m_restart;
  df->srv.freeze = m_freeze;
  df->srv.thaw = m_thaw;
  df->srv.kill_now = m_kill_now;
  df->srv.probe.error = m_error;
  df->srv.probe.has_session = m_has_session;
  df->secret = SECRET;
  df->store_url = f->url;
  df->store_label = "MongoDB";
  df->err_path = f->err_path;
  /* More workers than the 8 requests of d. (started 20 ms apart, each on
   * a worker of its own): 2 hold the pool's clients, the others wait for
   * one (at most the timeout), and /health still finds a free worker. */
  df->threads = 12;
  df->stagger_s = 0.02;
  df->timeout_ms = TIMEOUT_MS;
  df->pool = POOL;
  df->outage_s = 1.0;
  /* "Not a hang": far above the 500 ms timeout (a wait for a client, then
   * the operation, then its one retry after a network error), far below
   * curl's 20 s. */
  df->max_request_s = 5.0;
  /* Generous for a loaded machine (ASan, ctest -j): the check is that the
   * store reconnects by itself, not how fast. */
  df->recovery_max_s = 8.0;
  df->log_names = names;
  df->password = NULL;
  df->data_lost_on_crash = 1;
  demo_fault_run(df);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_mongo_faults, setup, teardown),
  };
  int rc;
  signal(SIGPIPE, SIG_IGN);
  mongoc_init();
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  mongoc_cleanup();
  return rc;
}
