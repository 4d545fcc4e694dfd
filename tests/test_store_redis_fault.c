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

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "demo_client.h"
#include "redis_proc.h"

#define SECRET "redis fault secret"
#define PASSWORD "s3cr3t-pw"
#define DB 2
#define TIMEOUT_MS 500
#define POOL 2
#define N_SESS 20
#define N_CLIENTS 4
#define N_FROZEN 8
/* "Not a hang": far above the configured 500 ms, far below curl's 20 s. */
#define MAX_REQUEST_S 5.0
/* How long the service may take to come back after Redis does. */
#define RECOVERY_MAX_S 5.0

typedef struct fixture {
  redis_proc rs;
  demo_proc d;
  char err_path[128];
  char url[256];
  char *cookie[N_SESS + 1]; /* [N_SESS]: the main thread's probe */
  char *sid[N_SESS + 1];
  long long recorded[N_SESS]; /* after a. */
  long long acked[N_SESS + 1]; /* the highest counter a 200 reported */
  int finished;
} fixture;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf;
  long n;
  size_t got;
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  if (buf == NULL) {
    fclose(f);
    return NULL;
  }
  got = fread(buf, 1, (size_t)n, f);
  buf[got] = '\0';
  fclose(f);
  return buf;
}

static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay != '\0'; hay++) {
    size_t k = 0;
    while (k < n && hay[k] != '\0' &&
           tolower((unsigned char)hay[k]) == tolower((unsigned char)needle[k]))
      k++;
    if (k == n)
      return 1;
  }
  return 0;
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
  /* Redis first: a frozen Redis would make the demo's shutdown wait for
   * its in-flight requests' timeouts. */
  if (f->rs.pid != 0)
    kill(f->rs.pid, SIGKILL);
  demo_stop_quiet(&f->d, 1);
  if (!f->finished && f->err_path[0] != '\0') {
    /* Whatever the demo said (an ASan report, the store's errors). */
    char *log = slurp(f->err_path);
    if (log != NULL) {
      size_t n = strlen(log);
      fprintf(stderr, "---- demo stderr (last 6000 bytes) ----\n%s\n----\n",
              n > 6000 ? log + n - 6000 : log);
      free(log);
    }
  }
  redis_proc_cleanup(&f->rs);
  for (i = 0; i <= N_SESS; i++) {
    free(f->cookie[i]);
    free(f->sid[i]);
  }
  free(f);
  return 0;
}

/* The demo is still running: not exited, not killed by a signal. */
static void assert_demo_alive(fixture *f, const char *when) {
  int status;
  pid_t w = waitpid(f->d.pid, &status, WNOHANG);
  if (w == f->d.pid) {
    f->d.pid = 0;
    fail_msg("%s: the demo died (%s %d)", when,
             WIFSIGNALED(status) ? "signal" : "exit status",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
  assert_int_equal(kill(f->d.pid, 0), 0);
}

/* "n: N" from /inc, or -1. */
static long long inc_value(const demo_answer *a) {
  long long v;
  if (a->status != 200 || sscanf(a->body, "n: %lld", &v) != 1)
    return -1;
  return v;
}

/* The counter n of a session as /session shows it (asserting 200). */
static long long session_n(fixture *f, int i) {
  json_t *j = demo_read_session(f->d.base, f->cookie[i]), *n;
  long long v;
  n = json_object_get(j, "n");
  if (n == NULL || !json_is_integer(n)) {
    char *text = json_dumps(j, JSON_COMPACT);
    print_error("session %d has no counter any more: %s\n", i,
                text ? text : "?");
    free(text);
    json_decref(j);
    fail();
  }
  v = json_integer_value(n);
  json_decref(j);
  return v;
}

/* Create a session with one /inc and keep its cookie and id. */
static void new_session(fixture *f, int i) {
  f->cookie[i] =
      demo_new_session(f->d.base, "/inc?k=n", "n: 1\n", SECRET, &f->sid[i]);
  f->acked[i] = 1;
}

/* ------------------------------------------------------------------------ */
/* b. Load while Redis is killed and restarted                              */
/* ------------------------------------------------------------------------ */

typedef struct client {
  fixture *f;
  int id;
  http_client *http;
  atomic_int *stop;
  double t_zero;
  /* what happened */
  int ok, other;
  atomic_int errors500;
  int ok_late, err500_late; /* started after late_after_us */
  atomic_int progress;      /* requests answered so far */
  double max_secs;
  char first_other[200];
  char regress[200]; /* the first counter that went backwards */
} client;

/* Requests started after this (microseconds of mono_now_s()) must succeed:
 * the main thread sets it once service is back. */
static atomic_llong late_after_us;

static void *client_run(void *arg) {
  client *c = arg;
  fixture *f = c->f;
  int round = 0;
  while (!atomic_load(c->stop)) {
    int i = c->id + N_CLIENTS * (round++ % (N_SESS / N_CLIENTS));
    double started = mono_now_s();
    int late = started * 1e6 >= (double)atomic_load(&late_after_us);
    demo_answer a;
    long long v;
    demo_answer_get(c->http, f->d.base, "/inc?k=n", f->cookie[i], &a);
    if (a.secs > c->max_secs)
      c->max_secs = a.secs;
    if (a.status == 200 && (v = inc_value(&a)) > 0) {
      c->ok++;
      c->ok_late += late;
      if (v <= f->acked[i] && c->regress[0] == '\0')
        snprintf(c->regress, sizeof c->regress,
                 "session %d answered n: %lld after an earlier 200 with n: "
                 "%lld (at %.2f s)",
                 i, v, f->acked[i], started - c->t_zero);
      if (v > f->acked[i])
        f->acked[i] = v; /* each session belongs to one client */
    } else if (a.status == 500) {
      atomic_fetch_add(&c->errors500, 1);
      c->err500_late += late;
    } else if (c->other++ == 0) {
      snprintf(c->first_other, sizeof c->first_other,
               "%ld %.120s after %.2f s (at %.2f s)", a.status, a.body, a.secs,
               started - c->t_zero);
    }
    atomic_fetch_add(&c->progress, 1);
  }
  return NULL;
}

static int total_progress(client *cl) {
  int i, n = 0;
  for (i = 0; i < N_CLIENTS; i++)
    n += atomic_load(&cl[i].progress);
  return n;
}

/* ------------------------------------------------------------------------ */
/* d. Parallel requests while Redis is frozen                               */
/* ------------------------------------------------------------------------ */

/* Poll /inc on the probe session until a 200, RECOVERY_MAX_S at most;
 * returns the seconds it took from `since`. */
static double wait_service(fixture *f, http_client *c, double since,
                           const char *what) {
  demo_answer a;
  for (;;) {
    long long v;
    demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[N_SESS], &a);
    if (a.secs > MAX_REQUEST_S)
      fail_msg("%s: a request took %.2f s", what, a.secs);
    if (a.status == 200) {
      v = inc_value(&a);
      if (v <= f->acked[N_SESS])
        fail_msg("%s: the probe session answered %s after an earlier n: "
                 "%lld", what, a.body, f->acked[N_SESS]);
      f->acked[N_SESS] = v;
      return mono_now_s() - since;
    }
    if (a.status != 500)
      fail_msg("%s: /inc answered %ld %s", what, a.status, a.body);
    if (mono_now_s() - since > RECOVERY_MAX_S)
      fail_msg("%s: still no service %.1f s later (last: %ld %s)", what,
               mono_now_s() - since, a.status, a.body);
    demo_sleep_s(0.02);
  }
}

static void test_redis_faults(void **state) {
  fixture *f = *state;
  static const char *const aof[] = {"--appendonly", "yes", "--appendfsync",
                                    "always", NULL};
  http_client *c;
  client cl[N_CLIENTS];
  pthread_t t[N_CLIENTS];
  demo_slow fq[N_FROZEN + 1];
  atomic_int stop = 0;
  double t0, t_kill, t_restart, t_up, rec_restart, rec_cont, worst;
  int i, before_kill, during_outage, outage500 = 0, n_started;
  long long frozen_before[N_FROZEN];
  char *log;

  signal(SIGPIPE, SIG_IGN);
  if (redis_proc_start(&f->rs, aof, PASSWORD) != 0)
    fail_msg("cannot start a redis-server: %s", f->rs.err);
  snprintf(f->url, sizeof f->url,
           "redis://:%s@127.0.0.1:%u/%d?timeout=%d&connect_timeout=%d&pool=%d",
           PASSWORD, f->rs.port, DB, TIMEOUT_MS, TIMEOUT_MS, POOL);
  snprintf(f->err_path, sizeof f->err_path, "%s/demo.err", f->rs.dir);
  /* When it does not start, the teardown shows what it wrote there. */
  demo_start_store(&f->d, SECRET, 4, f->url, f->err_path, "Redis (db 2)");
  c = http_client_new(0);
  assert_non_null(c);

  /* a. Sessions with known counters. */
  for (i = 0; i <= N_SESS; i++) {
    int k, extra = i % 3 + 1;
    new_session(f, i);
    for (k = 0; k < extra; k++) {
      demo_answer a;
      demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[i], &a);
      if (inc_value(&a) != f->acked[i] + 1)
        fail_msg("session %d: /inc answered %ld %s, expected n: %lld", i,
                 a.status, a.body, f->acked[i] + 1);
      f->acked[i]++;
    }
    if (i < N_SESS)
      f->recorded[i] = f->acked[i];
  }
  /* The store writes where this test looks: key sess:<id> in db 2. */
  for (i = 0; i <= N_SESS; i++) {
    char key[128];
    snprintf(key, sizeof key, "sess:%s", f->sid[i]);
    if (redis_proc_exists(&f->rs, DB, key) != 1)
      fail_msg("%s is not in Redis db %d: %s", key, DB, f->rs.err);
  }

  /* b. Load, kill -9, restart. */
  atomic_store(&late_after_us, LLONG_MAX);
  t0 = mono_now_s();
  for (i = 0; i < N_CLIENTS; i++) {
    memset(&cl[i], 0, sizeof cl[i]);
    cl[i].f = f;
    cl[i].id = i;
    cl[i].http = http_client_new(0);
    assert_non_null(cl[i].http);
    cl[i].stop = &stop;
    cl[i].t_zero = t0;
  }
  for (i = 0; i < N_CLIENTS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, client_run, &cl[i]), 0);
  demo_sleep_s(1.5);
  before_kill = total_progress(cl);
  t_kill = mono_now_s();
  if (redis_proc_crash(&f->rs) != 0) {
    atomic_store(&stop, 1); /* the threads use f: join them first */
    for (i = 0; i < N_CLIENTS; i++)
      pthread_join(t[i], NULL);
    fail_msg("kill -9: %s", f->rs.err);
  }
  demo_sleep_s(1.0);
  during_outage = total_progress(cl) - before_kill;
  for (i = 0; i < N_CLIENTS; i++)
    outage500 += atomic_load(&cl[i].errors500);
  t_restart = mono_now_s();
  if (redis_proc_restart(&f->rs) != 0) {
    atomic_store(&stop, 1);
    for (i = 0; i < N_CLIENTS; i++)
      pthread_join(t[i], NULL);
    fail_msg("redis-server did not come back: %s", f->rs.err);
  }
  t_up = mono_now_s();
  /* The clients keep going; the main thread waits for its own probe. */
  {
    demo_answer a;
    double first_ok = 0;
    for (;;) {
      demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[N_SESS], &a);
      if (a.status == 200) {
        first_ok = mono_now_s();
        break;
      }
      if (a.status != 500 || mono_now_s() - t_up > RECOVERY_MAX_S ||
          a.secs > MAX_REQUEST_S)
        break;
      demo_sleep_s(0.02);
    }
    rec_restart = first_ok > 0 ? first_ok - t_up : -1;
    if (first_ok > 0) {
      long long v = inc_value(&a);
      if (v <= f->acked[N_SESS])
        rec_restart = -2;
      f->acked[N_SESS] = v;
    }
    /* From one second after the first success on, everything must work. */
    atomic_store(&late_after_us,
                 (long long)(((first_ok > 0 ? first_ok : mono_now_s()) + 1.0) *
                             1e6));
    demo_sleep_s(2.5);
    atomic_store(&stop, 1);
    for (i = 0; i < N_CLIENTS; i++)
      pthread_join(t[i], NULL);
    if (rec_restart == -2)
      fail_msg("after the restart the probe session answered %s: an "
               "acknowledged write was lost", a.body);
    if (rec_restart < 0)
      fail_msg("no service %.1f s after Redis restarted (last answer %ld %s "
               "after %.2f s)",
               mono_now_s() - t_up, a.status, a.body, a.secs);
  }
  assert_demo_alive(f, "after kill -9 and restart");
  print_message("load: %d requests before kill -9, %d during the %.2f s "
                "outage (%d answered 500 by the end of it); Redis back "
                "%.3f s after the restart began; service %.3f s after Redis "
                "answered PING\n",
                before_kill, during_outage, t_restart - t_kill, outage500,
                t_up - t_restart, rec_restart);
  worst = 0;
  for (i = 0; i < N_CLIENTS; i++) {
    print_message("  client %d: %d ok, %d x 500 (%d ok and %d x 500 from 1 s "
                  "after recovery), slowest %.3f s\n",
                  i, cl[i].ok, atomic_load(&cl[i].errors500), cl[i].ok_late,
                  cl[i].err500_late, cl[i].max_secs);
    if (cl[i].max_secs > worst)
      worst = cl[i].max_secs;
  }
  for (i = 0; i < N_CLIENTS; i++) {
    http_client_free(cl[i].http);
    cl[i].http = NULL;
  }
  if (before_kill < N_CLIENTS)
    fail_msg("the load did not run before the kill (%d requests)",
             before_kill);
  if (outage500 == 0)
    fail_msg("no request failed while Redis was down: the outage was not "
             "observed (%d requests during it)", during_outage);
  for (i = 0; i < N_CLIENTS; i++) {
    if (cl[i].other != 0)
      fail_msg("client %d: %d answers neither 200 nor 500; first: %s", i,
               cl[i].other, cl[i].first_other);
    if (cl[i].regress[0] != '\0')
      fail_msg("client %d: an acknowledged write was lost: %s", i,
               cl[i].regress);
    if (cl[i].ok_late == 0 || cl[i].err500_late != 0)
      fail_msg("client %d: service not full after recovery: %d ok, %d x 500 "
               "from 1 s after the first success on",
               i, cl[i].ok_late, cl[i].err500_late);
  }
  if (worst > MAX_REQUEST_S)
    fail_msg("a request took %.2f s (more than %.1f s: a hang)", worst,
             MAX_REQUEST_S);

  /* c. Nothing acknowledged was lost; the counters go on from there. */
  for (i = 0; i < N_SESS; i++) {
    long long n = session_n(f, i);
    demo_answer a;
    if (n < f->recorded[i] || n < f->acked[i])
      fail_msg("session %d: n is %lld after the restart; %lld was recorded "
               "before the load and %lld acknowledged during it",
               i, n, f->recorded[i], f->acked[i]);
    demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[i], &a);
    if (inc_value(&a) != n + 1)
      fail_msg("session %d: /inc after the restart answered %ld %s, "
               "expected n: %lld",
               i, a.status, a.body, n + 1);
    f->acked[i] = n + 1;
  }

  /* d. SIGSTOP: bounded failures, /health unaffected, then recovery. */
  for (i = 0; i < N_FROZEN; i++)
    frozen_before[i] = f->acked[i];
  if (redis_proc_freeze(&f->rs) != 0)
    fail_msg("%s", f->rs.err);
  /* /health last, 0.1 s later: once the /inc requests hold workers. */
  for (n_started = 0; n_started <= N_FROZEN; n_started++) {
    int health = n_started == N_FROZEN;
    if (demo_slow_start(&fq[n_started], f->d.base,
                        health ? "/health" : "/inc?k=n",
                        health ? NULL : f->cookie[n_started],
                        health ? 0.1 : 0) != 0)
      break;
  }
  for (i = 0; i < n_started; i++)
    demo_slow_join(&fq[i]);
  if (n_started <= N_FROZEN)
    fail_msg("could not start request %d while Redis was stopped",
             n_started);
  /* Answers first, then SIGCONT: the checks below need Redis running, and
   * a failed assertion's teardown kills it anyway. */
  {
    double slowest = 0;
    for (i = 0; i < N_FROZEN; i++)
      if (fq[i].a.secs > slowest)
        slowest = fq[i].a.secs;
    char each[N_FROZEN * 8 + 1];
    size_t used = 0;
    for (i = 0; i < N_FROZEN; i++)
      used += (size_t)snprintf(each + used, sizeof each - used, " %.2f",
                               fq[i].a.secs);
    print_message("Redis stopped: %d parallel /inc answered in %.3f s at "
                  "most (timeout %d ms, pool %d, 4 workers; each:%s); "
                  "/health %ld in %.3f s\n",
                  N_FROZEN, slowest, TIMEOUT_MS, POOL, each,
                  fq[N_FROZEN].a.status, fq[N_FROZEN].a.secs);
    for (i = 0; i < N_FROZEN; i++) {
      if (fq[i].a.status != 500)
        fail_msg("/inc %d while Redis was stopped answered %ld %s after "
                 "%.2f s, expected 500",
                 i, fq[i].a.status, fq[i].a.body, fq[i].a.secs);
      if (fq[i].a.secs > MAX_REQUEST_S)
        fail_msg("/inc %d while Redis was stopped took %.2f s", i,
                 fq[i].a.secs);
    }
    if (fq[N_FROZEN].a.status != 200 || fq[N_FROZEN].a.secs > MAX_REQUEST_S)
      fail_msg("/health while Redis was stopped: %ld %s after %.2f s",
               fq[N_FROZEN].a.status, fq[N_FROZEN].a.body,
               fq[N_FROZEN].a.secs);
  }
  assert_demo_alive(f, "while Redis was stopped");
  {
    double t_cont = mono_now_s();
    if (redis_proc_thaw(&f->rs) != 0)
      fail_msg("%s", f->rs.err);
    rec_cont = wait_service(f, c, t_cont, "after SIGCONT");
    print_message("service back %.3f s after SIGCONT\n", rec_cont);
  }
  /* The failed requests wrote nothing, not even late (commands queued in
   * a stopped Redis run when it resumes). Let any such write land first. */
  demo_sleep_s(0.3);
  for (i = 0; i < N_FROZEN; i++) {
    long long n = session_n(f, i);
    if (n != frozen_before[i])
      fail_msg("session %d: n is %lld after SIGCONT, %lld before the "
               "failed request",
               i, n, frozen_before[i]);
  }
  assert_demo_alive(f, "after SIGCONT");
  http_client_free(c);

  /* e. What the demo logged. */
  assert_int_equal(demo_proc_stop(&f->d), 0);
  log = slurp(f->err_path);
  assert_non_null(log);
  if (!contains_nocase(log, "redis"))
    fail_msg("the demo's errors do not name Redis:\n%s", log);
  if (strstr(log, PASSWORD) != NULL)
    fail_msg("the demo's stderr shows the Redis password:\n%s", log);
  for (i = 0; i <= N_SESS; i++)
    if (strstr(log, f->sid[i]) != NULL)
      fail_msg("the demo's stderr shows session id %s:\n%s", f->sid[i], log);
  {
    /* A sample for the reader: the first line and the number of lines. */
    size_t lines = 0;
    const char *p;
    for (p = log; *p != '\0'; p++)
      lines += *p == '\n';
    print_message("demo stderr: %zu lines; first: %.*s\n", lines,
                  (int)strcspn(log, "\n"), log);
  }
  free(log);
  f->finished = 1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_redis_faults, setup, teardown),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
