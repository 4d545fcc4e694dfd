/* test_store_redis_fault.c - the Redis store when Redis fails, through the
 * real csession-demo program (4 worker threads) on a redis-server of the
 * test's own, with a password and db 2:
 *
 *   redis://:PASSWORD@127.0.0.1:P/2?timeout=500&connect_timeout=500&pool=2
 *
 * Redis runs with appendonly yes, appendfsync always: every write Redis
 * acknowledged is on disk, so a 200 from /inc (the demo answers only after
 * the store's write succeeded) is a promise that survives kill -9.
 *
 * The scenario is tests/demo_fault.c's, shared with the other server
 * stores:
 *
 *   a. 20 sessions, each incremented a few times; counters recorded.
 *   b. 4 client threads run /inc on those sessions for about 5 s; Redis is
 *      killed with SIGKILL in the middle and restarted (same port, same
 *      directory) a second later. Every request is answered (200, or 500
 *      while Redis is away) within 5 s, never a curl timeout; each 200's
 *      counter is above every earlier 200's for that session (no
 *      acknowledged write lost); the demo stays up; service is back within
 *      seconds of the restart (measured and printed) and full afterwards.
 *   c. After the run every session still holds at least what was
 *      acknowledged, and increments on from there.
 *   d. SIGSTOP: 8 parallel /inc (more than the pool of 2 and the demo's 4
 *      workers) come back 500 within 5 s each (printed: the slowest);
 *      /health answers 200 meanwhile; none of them wrote anything late;
 *      after SIGCONT service is back within seconds.
 *   e. The demo's stderr (captured) names Redis and holds neither the
 *      password nor any session id; the demo exits cleanly.
 *
 * Client threads only record; the main thread asserts. The fixture's
 * teardown kills Redis and the demo whatever happened.
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
#include "redis_proc.h"

#define SECRET "redis fault secret"
#define PASSWORD "s3cr3t-pw"
#define DB 2
#define TIMEOUT_MS 500
#define POOL 2

typedef struct fixture {
  demo_fault df;
  redis_proc rs;
  char err_path[128];
  char url[256];
} fixture;

static int rs_crash(void *ctx) { return redis_proc_crash(ctx); }
static int rs_restart(void *ctx) { return redis_proc_restart(ctx); }
static int rs_freeze(void *ctx) { return redis_proc_freeze(ctx); }
static int rs_thaw(void *ctx) { return redis_proc_thaw(ctx); }
static const char *rs_error(void *ctx) { return ((redis_proc *)ctx)->err; }

static void rs_kill_now(void *ctx) {
  redis_proc *r = ctx;
  if (r->pid != 0)
    kill(r->pid, SIGKILL);
}

/* The store writes where this test looks: key sess:<id> in db 2. */
static int rs_has_session(void *ctx, const char *sid) {
  char key[128];
  snprintf(key, sizeof key, "sess:%s", sid);
  return redis_proc_exists(ctx, DB, key);
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
  redis_proc_cleanup(&f->rs);
  free(f);
  return 0;
}

static void test_redis_faults(void **state) {
  static const char *const aof[] = {"--appendonly", "yes", "--appendfsync",
                                    "always", NULL};
  static const char *const names[] = {"redis", NULL};
  fixture *f = *state;
  demo_fault *df = &f->df;

  if (redis_proc_start(&f->rs, aof, PASSWORD) != 0)
    fail_msg("cannot start a redis-server: %s", f->rs.err);
  snprintf(f->url, sizeof f->url,
           "redis://:%s@127.0.0.1:%u/%d?timeout=%d&connect_timeout=%d&pool=%d",
           PASSWORD, f->rs.port, DB, TIMEOUT_MS, TIMEOUT_MS, POOL);
  snprintf(f->err_path, sizeof f->err_path, "%s/demo.err", f->rs.dir);
  df->srv.probe.name = "Redis";
  df->srv.probe.ctx = &f->rs;
  df->srv.crash = rs_crash;
  df->srv.restart = rs_restart;
  df->srv.freeze = rs_freeze;
  df->srv.thaw = rs_thaw;
  df->srv.kill_now = rs_kill_now;
  df->srv.probe.error = rs_error;
  df->srv.probe.has_session = rs_has_session;
  df->secret = SECRET;
  df->store_url = f->url;
  df->store_label = "Redis (db 2)";
  df->err_path = f->err_path;
  df->timeout_ms = TIMEOUT_MS;
  df->pool = POOL;
  df->outage_s = 1.0;
  /* "Not a hang": far above the configured 500 ms, far below curl's 20 s. */
  df->max_request_s = 5.0;
  df->recovery_max_s = 5.0;
  df->log_names = names;
  df->password = PASSWORD;
  demo_fault_run(df);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_redis_faults, setup, teardown),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
