/* test_store_pg_fault.c - the PostgreSQL store when PostgreSQL fails,
 * through the real csession-demo program (12 worker threads) on a
 * PostgreSQL server of the test's own (tests/pg_proc.c: the postmaster
 * and all its backends are killed and stopped together):
 *
 *   postgresql://postgres:PASSWORD@127.0.0.1:P/csn_test?timeout=1000
 *     &connect_timeout=1&create_table=1&pool=4&application_name=csn_fault
 *
 * connect_timeout (libpq's, in seconds) as well as the store's timeout:
 * with a stopped server a request may have to connect afresh (its pooled
 * connection timed out and was dropped), and the store's default connect
 * timeout is 5 s.
 *
 * The server runs with fsync=on (and synchronous_commit on, the default):
 * a commit PostgreSQL acknowledged is in the WAL on disk, so a 200 from
 * /inc (the demo answers only after the store's write committed) is a
 * promise that survives kill -9 of every server process; the restart
 * replays the WAL (crash recovery).
 *
 * The scenario is tests/demo_fault.c's, shared with the other server
 * stores:
 *
 *   a. 20 sessions, each incremented a few times; counters recorded; each
 *      one is a row of table "session" (looked up with SQL).
 *   b. 4 client threads run /inc on those sessions for about 6 s; the
 *      whole server (postmaster and backends) is killed with SIGKILL in the middle and
 *      restarted (same port, same data directory) a second later. Every
 *      request is answered (200, or 500 while PostgreSQL is away) within
 *      6 s, never a curl failure; at least one 500; each 200's counter is
 *      above every earlier 200's for that session (no acknowledged write
 *      lost); the demo stays up; service is back within 8 s of
 *      PostgreSQL accepting connections (measured and printed) and full
 *      two seconds later.
 *   c. After the run every session still holds at least what was
 *      acknowledged, and increments on from there.
 *   d. SIGSTOP of the whole server: 8 parallel /inc (more than the pool of
 *      4; each on a worker of its own) come back 500 within 6 s each
 *      (printed: each one's time); /health answers 200 meanwhile; none of
 *      them wrote anything late; after SIGCONT service is back within 8 s.
 *   e. The demo's stderr (captured) names PostgreSQL and holds neither the
 *      password (in the URL; trust authentication never asks for it) nor
 *      any session id; the demo exits cleanly.
 *
 * Client threads only record; the main thread asserts. The fixture's
 * teardown kills PostgreSQL and the demo whatever happened.
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

#include "demo_fault.h"
#include "pg_proc.h"

#define SECRET "pg fault secret"
#define PASSWORD "pg-s3cr3t-pw"
#define TIMEOUT_MS 1000
#define POOL 4

typedef struct fixture {
  demo_fault df;
  pg_proc pg;
  char err_path[128];
  char url[320];
} fixture;

static int pg_crash(void *ctx) { return pg_proc_crash(ctx); }
static int pg_restart(void *ctx) { return pg_proc_restart(ctx); }
static int pg_freeze(void *ctx) { return pg_proc_pause(ctx); }
static int pg_thaw(void *ctx) { return pg_proc_resume(ctx); }
static const char *pg_error(void *ctx) { return ((pg_proc *)ctx)->err; }

static void pg_kill_now(void *ctx) {
  pg_proc *p = ctx;
  if (p->pid != 0 && pg_proc_crash(p) != 0)
    fprintf(stderr, "teardown: %s\n", p->err);
}

/* The store writes where this test looks: a row of "session". */
static int pg_has_session(void *ctx, const char *sid) {
  const char *const params[] = {sid, NULL};
  char out[32];
  if (pg_proc_exec(ctx, "SELECT count(*) FROM \"session\" WHERE sid = $1",
                   params, out, sizeof out, 10000) != 1)
    return -1;
  return atoi(out);
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
  pg_proc_cleanup(&f->pg);
  free(f);
  return 0;
}

static void test_pg_faults(void **state) {
  static const char *const names[] = {"postgres", NULL};
  fixture *f = *state;
  demo_fault *df = &f->df;

  if (pg_proc_start(&f->pg, NULL) != 0) /* fsync=on */
    fail_msg("cannot start a PostgreSQL server: %s", f->pg.err);
  /* Trust authentication never asks for the password: it is there to be
   * kept out of the log. */
  snprintf(f->url, sizeof f->url,
           "postgresql://postgres:" PASSWORD "@127.0.0.1:%u/%s?timeout=%d"
           "&connect_timeout=%d&create_table=1&pool=%d"
           "&application_name=csn_fault",
           f->pg.port, f->pg.dbname, TIMEOUT_MS, TIMEOUT_MS / 1000, POOL);
  snprintf(f->err_path, sizeof f->err_path, "%s/demo.err", f->pg.dir);
  df->srv.probe.name = "PostgreSQL";
  df->srv.probe.ctx = &f->pg;
  df->srv.crash = pg_crash;
  df->srv.restart = pg_restart;
  df->srv.freeze = pg_freeze;
  df->srv.thaw = pg_thaw;
  df->srv.kill_now = pg_kill_now;
  df->srv.probe.error = pg_error;
  df->srv.probe.has_session = pg_has_session;
  df->secret = SECRET;
  df->store_url = f->url;
  df->store_label = "PostgreSQL";
  df->err_path = f->err_path;
  /* More workers than the 8 requests of d. (started 20 ms apart, each on
   * a worker of its own): 4 hold the pool's connections, 4 wait for one,
   * and /health still finds a free worker. With as many workers as
   * connections the pool would never be waited for, and requests queued
   * in libmicrohttpd behind a stuck worker would measure the queue, not
   * the store. */
  df->threads = 12;
  df->stagger_s = 0.02;
  df->timeout_ms = TIMEOUT_MS;
  df->pool = POOL;
  df->outage_s = 1.0;
  /* "Not a hang": well above the 1 s timeout (a request may wait for a
   * pooled connection, then for its statement, then reconnect), far below
   * curl's 20 s. */
  df->max_request_s = 6.0;
  /* Generous for a loaded machine (ASan, ctest -j): the check is that
   * the store reconnects by itself, not how fast. */
  df->recovery_max_s = 8.0;
  df->log_names = names;
  df->password = PASSWORD;
  demo_fault_run(df);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_pg_faults, setup, teardown),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
