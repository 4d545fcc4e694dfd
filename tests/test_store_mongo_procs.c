/* test_store_mongo_procs.c - two csession-demo processes (8 workers each)
 * on one MongoDB collection: what "C app servers on several machines
 * behind one load balancer" needs from the MongoDB store. The program
 * starts one MongoDB test server of its own (tests/mongo_proc.c: the
 * in-memory tests/mongo/mongo_server.py); each case has a collection of
 * its own (collection=...) and two fresh demos on it.
 *
 *   one session   a visit on demo 2, a login on demo 1 with that cookie
 *                 (the id changes, the old document is deleted), then
 *                 requests alternating between the demos count on in one
 *                 session; the document holds connect-mongo's form:
 *                 session the record's JSON text, expires a BSON Date
 *                 about a day ahead (its cookie.expires, or a little
 *                 later after the touches of the last reads).
 *   no lost updates
 *                 8 clients share ONE cookie, each adds 1 to its own member
 *                 k<i> 50 times (/inc?k=k<i>&delay=1), requests dealt
 *                 round-robin to the two demos: every k<i> ends at exactly
 *                 50, as both demos and the document itself show. A store
 *                 that wrote last-write-wins (connect-mongo's plain upsert)
 *                 loses increments here; only the store's compare-and-set
 *                 (one conditional single-document update, atomic on the
 *                 server) and the core's merge keep them all.
 *   logout wins   /inc?k=x&delay=800 in flight on demo 1 while /logout runs
 *                 on demo 2: afterwards the document is gone (read with
 *                 libmongoc) and the old cookie finds no session on either
 *                 demo.
 *
 * The three cases are tests/demo_client.c's (demo_procs_*), shared with
 * the other server stores; this file adds what is MongoDB's own.
 * Client threads only record; the main thread asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <signal.h>

#include <cmocka.h>
#include <jansson.h>
#include <mongoc/mongoc.h>

#include "demo_client.h"
#include "mongo_proc.h"

#define SECRET "mongo procs secret"
#define CLIENTS 8
#define ROUNDS 50
#define DAY_MS 86400000LL /* the demo's default --max-age */

/* The server all cases share (group setup and teardown), and the raw
 * client the test reads documents with (main thread only). */
static mongo_proc server;
static mongoc_client_t *raw;
static char raw_err[BSON_ERROR_BUFFER_SIZE + 16];

typedef struct fixture {
  demo_fixture df; /* first */
  char coll[64];
  char url[256];
} fixture;

static int group_setup(void **state) {
  (void)state;
  bson_error_t err;
  mongoc_uri_t *uri;
  if (mongo_proc_start(&server, 0) != 0) {
    print_error("cannot start a MongoDB test server: %s\n", server.err);
    mongo_proc_cleanup(&server);
    return -1;
  }
  uri = mongoc_uri_new_with_error(mongo_proc_url(&server), &err);
  if (uri != NULL) {
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                   5000);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 10000);
    raw = mongoc_client_new_from_uri_with_error(uri, &err);
    mongoc_uri_destroy(uri);
  }
  if (raw == NULL) {
    print_error("libmongoc: %s\n", err.message);
    mongo_proc_cleanup(&server);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (raw != NULL)
    mongoc_client_destroy(raw);
  raw = NULL;
  mongo_proc_cleanup(&server);
  return 0;
}

static int setup(void **state) {
  return demo_fixture_new(state, sizeof(fixture), NULL);
}

/* Two demos on collection `coll` of the server's database. */
static void start_all(fixture *f, const char *coll) {
  char label[400];
  size_t i;
  snprintf(f->coll, sizeof f->coll, "%s", coll);
  snprintf(f->url, sizeof f->url, "%s?collection=%s&pool=8",
           mongo_proc_url(&server), coll);
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

/* The document of session sid in the case's collection: 1 and a copy in
 * *out (when out is not NULL; bson_destroy() it), 0 when there is none,
 * -1 on an error (in raw_err). The database is the URL's (csn_test). */
static int find_doc(fixture *f, const char *sid, bson_t **out) {
  mongoc_collection_t *c = mongoc_client_get_collection(raw, "csn_test",
                                                        f->coll);
  bson_t *filter = BCON_NEW("_id", BCON_UTF8(sid));
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, NULL,
                                                          NULL);
  const bson_t *doc;
  bson_error_t err;
  int rc = 0;
  if (mongoc_cursor_next(cur, &doc)) {
    rc = 1;
    if (out != NULL)
      *out = bson_copy(doc);
  } else if (mongoc_cursor_error(cur, &err)) {
    snprintf(raw_err, sizeof raw_err, "find: %s", err.message);
    rc = -1;
  }
  mongoc_cursor_destroy(cur);
  bson_destroy(filter);
  mongoc_collection_destroy(c);
  return rc;
}

static int mongo_has_session(void *ctx, const char *sid) {
  return find_doc(ctx, sid, NULL);
}

static const char *mongo_error(void *ctx) {
  (void)ctx;
  return raw_err;
}

static demo_store_probe probe(fixture *f) {
  demo_store_probe p = {"MongoDB", f, mongo_has_session, mongo_error};
  return p;
}

/* The session's document: its session member parsed as JSON (the test
 * fails when there is no document or session is not JSON text), and its
 * expires (a BSON Date, or the test fails) in *expires_ms. */
static json_t *doc_session(fixture *f, int64_t *expires_ms) {
  bson_t *doc = NULL;
  bson_iter_t it;
  json_t *j = NULL;
  char *dump;
  int rc = find_doc(f, f->df.sid, &doc);
  if (rc != 1)
    fail_msg("no document for the session in %s (%s)", f->coll,
             rc < 0 ? raw_err : "none");
  dump = bson_as_relaxed_extended_json(doc, NULL);
  if (bson_iter_init_find(&it, doc, "session") && BSON_ITER_HOLDS_UTF8(&it))
    j = json_loads(bson_iter_utf8(&it, NULL), 0, NULL);
  if (j == NULL || !json_is_object(j)) {
    print_error("session of the document is not JSON text: %s\n", dump);
    bson_free(dump);
    bson_destroy(doc);
    fail();
  }
  if (!bson_iter_init_find(&it, doc, "expires") ||
      !BSON_ITER_HOLDS_DATE_TIME(&it)) {
    print_error("expires of the document is not a Date: %s\n", dump);
    bson_free(dump);
    bson_destroy(doc);
    json_decref(j);
    fail();
  }
  *expires_ms = bson_iter_date_time(&it);
  bson_free(dump);
  bson_destroy(doc);
  return j;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* One session across two processes                                         */
/* ------------------------------------------------------------------------ */

static void test_one_session(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  json_t *j, *cookie;
  int64_t expires, ahead;
  const char *cexp;

  start_all(f, "csn_procs_one");
  p = probe(f);
  demo_procs_one_session(&f->df, SECRET, &p);

  /* connect-mongo's document: session the record, expires its
   * cookie.expires (a day ahead) as a Date. */
  j = doc_session(f, &expires);
  cookie = json_object_get(j, "cookie");
  cexp = json_string_value(json_object_get(cookie, "expires"));
  if (json_integer_value(json_object_get(j, "views")) != 12 ||
      !json_is_object(cookie) ||
      json_integer_value(json_object_get(cookie, "originalMaxAge")) != DAY_MS ||
      cexp == NULL)
    fail_msg("session of the document: %s", json_dumps(j, JSON_COMPACT));
  {
    /* cookie.expires, "YYYY-MM-DDTHH:MM:SS.mmmZ", to ms. */
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof tm);
    if (sscanf(cexp, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
      fail_msg("cookie.expires is %s", cexp);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    /* A save writes cookie.expires; the touches of the last reads (the
     * demos' /session) move expires on, as connect-mongo's touch does,
     * without rewriting session: never earlier, and only by the seconds
     * the case took. */
    int64_t saved = (int64_t)timegm(&tm) * 1000 + ms;
    if (expires < saved || expires - saved > 60000)
      fail_msg("expires is %lld ms, cookie.expires %s (%lld ms)",
               (long long)expires, cexp, (long long)saved);
  }
  json_decref(j);
  ahead = expires - now_ms();
  if (ahead < DAY_MS - 400000 || ahead > DAY_MS)
    fail_msg("expires of the session is %lld ms ahead, expected about a day",
             (long long)ahead);
  stop_all(f);
}

/* ------------------------------------------------------------------------ */
/* No lost updates across processes                                         */
/* ------------------------------------------------------------------------ */

static void test_no_lost_updates(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  json_t *j;
  int64_t expires;
  int i;

  start_all(f, "csn_procs_lost");
  p = probe(f);
  demo_procs_no_lost_updates(&f->df, SECRET, CLIENTS, ROUNDS, &p);
  /* And the document itself, past the store's get. */
  j = doc_session(f, &expires);
  for (i = 0; i < CLIENTS; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    if (json_integer_value(json_object_get(j, key)) != ROUNDS)
      fail_msg("the document holds %s = %lld, expected %d: %s", key,
               (long long)json_integer_value(json_object_get(j, key)), ROUNDS,
               json_dumps(j, JSON_COMPACT));
  }
  json_decref(j);
  stop_all(f);
}

/* ------------------------------------------------------------------------ */
/* Logout on one process wins over a slow request on the other              */
/* ------------------------------------------------------------------------ */

static void test_logout_wins(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  start_all(f, "csn_procs_logout");
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
  int rc;
  signal(SIGPIPE, SIG_IGN);
  mongoc_init();
  rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
  mongoc_cleanup();
  return rc;
}
