/* test_store_pg_procs.c - two csession-demo processes (8 workers each) on
 * one PostgreSQL database: what "C app servers on several machines behind
 * one load balancer" needs from the PostgreSQL store. The program starts
 * one PostgreSQL server of its own (tests/pg_proc.c; one initdb for all
 * cases); each case has a table of its own (table=..., create_table=1, so
 * the store's CREATE TABLE runs too) and two fresh demos on it.
 *
 *   one session   a visit on demo 2, a login on demo 1 with that cookie
 *                 (the id changes, the old row is deleted), then requests
 *                 alternating between the demos count on in one session;
 *                 the row holds connect-pg-simple's form: sess the
 *                 record's JSON, expire about a day ahead.
 *   no lost updates
 *                 8 clients share ONE cookie, each adds 1 to its own member
 *                 k<i> 50 times (/inc?k=k<i>&delay=1), requests dealt
 *                 round-robin to the two demos: every k<i> ends at exactly
 *                 50, as both demos and the row itself show. A store that
 *                 wrote last-write-wins (a plain upsert) loses increments
 *                 here; only the store's compare-and-set (one statement,
 *                 row-locked) and the core's merge keep them all.
 *   logout wins   /inc?k=x&delay=800 in flight on demo 1 while /logout runs
 *                 on demo 2: afterwards the row is gone (SQL) and the old
 *                 cookie finds no session on either demo.
 *
 * The three cases are tests/demo_client.c's (demo_procs_*), shared with
 * the other server stores; this file adds what is PostgreSQL's own.
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
#include "pg_proc.h"

#define SECRET "pg procs secret"
#define CLIENTS 8
#define ROUNDS 50

/* The server all cases share (group setup and teardown). */
static pg_proc server;

typedef struct fixture {
  demo_fixture df; /* first */
  char table[64];
  char url[320];
} fixture;

static int group_setup(void **state) {
  (void)state;
  if (pg_proc_start(&server, NULL) != 0) {
    print_error("cannot start a PostgreSQL server: %s\n", server.err);
    pg_proc_cleanup(&server);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  pg_proc_cleanup(&server);
  return 0;
}

static int setup(void **state) {
  return demo_fixture_new(state, sizeof(fixture), NULL);
}

/* Two demos on table `table` of the database. */
static void start_all(fixture *f, const char *table) {
  char label[400];
  size_t i;
  snprintf(f->table, sizeof f->table, "%s", table);
  snprintf(f->url, sizeof f->url, "%s?table=%s&create_table=1&pool=8",
           server.url, table);
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

/* The first column of the row of session sid in the case's table, by
 * `select` (an SQL expression over the row): 1 and *out when there is a
 * row, 0 when not, -1 on an error (in server.err). */
static int row_value(fixture *f, const char *select, const char *sid,
                     char *out, size_t size) {
  const char *const params[] = {sid, NULL};
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT %s FROM \"%s\" WHERE sid = $1", select,
           f->table);
  return pg_proc_exec(&server, sql, params, out, size, 10000);
}

static int pg_has_session(void *ctx, const char *sid) {
  char out[16];
  return row_value(ctx, "1", sid, out, sizeof out);
}

static const char *pg_error(void *ctx) {
  (void)ctx;
  return server.err;
}

static demo_store_probe probe(fixture *f) {
  demo_store_probe p = {"PostgreSQL", f, pg_has_session, pg_error};
  return p;
}

/* The row's sess column as JSON (the test fails when there is none). */
static json_t *row_sess(fixture *f) {
  char text[8192];
  json_t *j;
  if (row_value(f, "sess::text", f->df.sid, text, sizeof text) != 1)
    fail_msg("no row for the session in \"%s\" (%s)", f->table,
             server.err);
  j = json_loads(text, 0, NULL);
  if (j == NULL || !json_is_object(j))
    fail_msg("sess of the session is not a JSON object: %s", text);
  return j;
}

/* ------------------------------------------------------------------------ */
/* One session across two processes                                         */
/* ------------------------------------------------------------------------ */

static void test_one_session(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  char ahead[64];
  json_t *j, *cookie;
  long secs;

  start_all(f, "csn_procs_one");
  p = probe(f);
  demo_procs_one_session(&f->df, SECRET, &p);

  /* connect-pg-simple's row: sess the record, expire a day ahead (as the
   * server's clock sees it: expire is a timestamp in the server's zone). */
  j = row_sess(f);
  cookie = json_object_get(j, "cookie");
  if (json_integer_value(json_object_get(j, "views")) != 12 ||
      !json_is_object(cookie) ||
      json_integer_value(json_object_get(cookie, "originalMaxAge")) !=
          86400000)
    fail_msg("sess of the session: %s", json_dumps(j, JSON_COMPACT));
  json_decref(j);
  if (row_value(f, "extract(epoch FROM expire - localtimestamp)::bigint",
                f->df.sid, ahead, sizeof ahead) != 1)
    fail_msg("expire of the session: %s", server.err);
  secs = strtol(ahead, NULL, 10);
  if (secs < 86000 || secs > 86401)
    fail_msg("expire of the session is %s s ahead, expected about 86400",
             ahead);
  stop_all(f);
}

/* ------------------------------------------------------------------------ */
/* No lost updates across processes                                         */
/* ------------------------------------------------------------------------ */

static void test_no_lost_updates(void **state) {
  fixture *f = *state;
  demo_store_probe p;
  json_t *j;
  int i;

  start_all(f, "csn_procs_lost");
  p = probe(f);
  demo_procs_no_lost_updates(&f->df, SECRET, CLIENTS, ROUNDS, &p);
  /* And the row itself, past the store's get. */
  j = row_sess(f);
  for (i = 0; i < CLIENTS; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    if (json_integer_value(json_object_get(j, key)) != ROUNDS)
      fail_msg("the row holds %s = %lld, expected %d: %s", key,
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
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
