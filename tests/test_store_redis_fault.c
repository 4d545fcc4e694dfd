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
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "demo_proc.h"
#include "http_harness.h"
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

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

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
  if (f->d.pid != 0 && demo_proc_stop(&f->d) != 0)
    fprintf(stderr, "the demo did not stop cleanly\n");
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

/* One GET: status (0 when no HTTP answer), body (or curl's error) and how
 * long it took. */
typedef struct answer {
  long status;
  char body[160];
  double secs;
} answer;

static void get(http_client *c, const char *base, const char *path,
                const char *cookie, answer *a) {
  char url[256];
  http_response r;
  double t0 = now_s();
  snprintf(url, sizeof url, "%s%s", base, path);
  if (http_get(c, url, cookie, &r) != 0)
    r.status = 0;
  a->secs = now_s() - t0;
  a->status = r.status;
  snprintf(a->body, sizeof a->body, "%.150s", r.status ? r.body : r.error);
  http_response_free(&r);
}

/* "n: N" from /inc, or -1. */
static long long inc_value(const answer *a) {
  long long v;
  if (a->status != 200 || sscanf(a->body, "n: %lld", &v) != 1)
    return -1;
  return v;
}

/* The counter n of a session as /session shows it (asserting 200). */
static long long session_n(fixture *f, http_client *c, int i) {
  char url[256];
  http_response r;
  json_error_t err;
  json_t *j, *n;
  long long v;
  snprintf(url, sizeof url, "%s/session", f->d.base);
  if (http_get(c, url, f->cookie[i], &r) != 0)
    fail_msg("GET /session: %s", r.error);
  if (r.status != 200)
    fail_msg("GET /session for session %d: %ld %s", i, r.status, r.body);
  j = json_loads(r.body, 0, &err);
  if (j == NULL)
    fail_msg("/session is not JSON: %s", r.body);
  n = json_object_get(j, "n");
  if (n == NULL || !json_is_integer(n))
    fail_msg("session %d has no counter any more: %s", i, r.body);
  v = json_integer_value(n);
  json_decref(j);
  http_response_free(&r);
  return v;
}

/* Create a session with one /inc and keep its cookie and id. */
static void new_session(fixture *f, http_client *c, int i) {
  char url[256], *value;
  http_response r;
  snprintf(url, sizeof url, "%s/inc?k=n", f->d.base);
  if (http_get(c, url, NULL, &r) != 0)
    fail_msg("GET %s: %s", url, r.error);
  if (r.status != 200 || strcmp(r.body, "n: 1\n") != 0)
    fail_msg("a first /inc answered %ld %s", r.status, r.body);
  value = http_set_cookie_value(&r, "connect.sid");
  if (value == NULL)
    fail_msg("a first /inc set no cookie");
  f->cookie[i] = malloc(strlen(value) + sizeof "connect.sid=");
  assert_non_null(f->cookie[i]);
  sprintf(f->cookie[i], "connect.sid=%s", value);
  f->sid[i] = http_cookie_sid(value, SECRET);
  assert_non_null(f->sid[i]);
  free(value);
  http_response_free(&r);
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

/* Requests started after this (microseconds of now_s()) must succeed:
 * the main thread sets it once service is back. */
static atomic_llong late_after_us;

static void *client_run(void *arg) {
  client *c = arg;
  fixture *f = c->f;
  int round = 0;
  while (!atomic_load(c->stop)) {
    int i = c->id + N_CLIENTS * (round++ % (N_SESS / N_CLIENTS));
    double started = now_s();
    int late = started * 1e6 >= (double)atomic_load(&late_after_us);
    answer a;
    long long v;
    get(c->http, f->d.base, "/inc?k=n", f->cookie[i], &a);
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

typedef struct frozen_req {
  const char *base;
  const char *path;
  const char *cookie;
  http_client *http;
  answer a;
} frozen_req;

static void *frozen_run(void *arg) {
  frozen_req *q = arg;
  if (q->cookie == NULL) /* /health: once the /inc requests hold workers */
    sleep_s(0.1);
  get(q->http, q->base, q->path, q->cookie, &q->a);
  return NULL;
}

/* Poll /inc on the probe session until a 200, RECOVERY_MAX_S at most;
 * returns the seconds it took from `since`. */
static double wait_service(fixture *f, http_client *c, double since,
                           const char *what) {
  answer a;
  for (;;) {
    long long v;
    get(c, f->d.base, "/inc?k=n", f->cookie[N_SESS], &a);
    if (a.secs > MAX_REQUEST_S)
      fail_msg("%s: a request took %.2f s", what, a.secs);
    if (a.status == 200) {
      v = inc_value(&a);
      if (v <= f->acked[N_SESS])
        fail_msg("%s: the probe session answered %s after an earlier n: "
                 "%lld", what, a.body, f->acked[N_SESS]);
      f->acked[N_SESS] = v;
      return now_s() - since;
    }
    if (a.status != 500)
      fail_msg("%s: /inc answered %ld %s", what, a.status, a.body);
    if (now_s() - since > RECOVERY_MAX_S)
      fail_msg("%s: still no service %.1f s later (last: %ld %s)", what,
               now_s() - since, a.status, a.body);
    sleep_s(0.02);
  }
}

static void test_redis_faults(void **state) {
  fixture *f = *state;
  static const char *const aof[] = {"--appendonly", "yes", "--appendfsync",
                                    "always", NULL};
  http_client *c;
  client cl[N_CLIENTS];
  pthread_t t[N_FROZEN + 1];
  frozen_req fq[N_FROZEN + 1];
  atomic_int stop = 0;
  double t0, t_kill, t_restart, t_up, rec_restart, rec_cont, worst;
  int i, before_kill, during_outage, outage500 = 0;
  long long frozen_before[N_FROZEN];
  char *log;

  signal(SIGPIPE, SIG_IGN);
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  if (redis_proc_start(&f->rs, aof, PASSWORD) != 0)
    fail_msg("cannot start a redis-server: %s", f->rs.err);
  snprintf(f->url, sizeof f->url,
           "redis://:%s@127.0.0.1:%u/%d?timeout=%d&connect_timeout=%d&pool=%d",
           PASSWORD, f->rs.port, DB, TIMEOUT_MS, TIMEOUT_MS, POOL);
  snprintf(f->err_path, sizeof f->err_path, "%s/demo.err", f->rs.dir);
  {
    const char *args[] = {"--port",    "0", "--secret", SECRET,
                          "--threads", "4", "--store",  f->url, NULL};
    if (demo_proc_start_stderr(&f->d, args, NULL, NULL, f->err_path) != 0) {
      char *e = slurp(f->err_path);
      fail_msg("the demo did not start on Redis: %s / %s", f->d.line,
               e ? e : "");
    }
  }
  c = http_client_new(0);
  assert_non_null(c);

  /* a. Sessions with known counters. */
  for (i = 0; i <= N_SESS; i++) {
    int k, extra = i % 3 + 1;
    new_session(f, c, i);
    for (k = 0; k < extra; k++) {
      answer a;
      get(c, f->d.base, "/inc?k=n", f->cookie[i], &a);
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
  t0 = now_s();
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
  sleep_s(1.5);
  before_kill = total_progress(cl);
  t_kill = now_s();
  if (redis_proc_crash(&f->rs) != 0) {
    atomic_store(&stop, 1); /* the threads use f: join them first */
    for (i = 0; i < N_CLIENTS; i++)
      pthread_join(t[i], NULL);
    fail_msg("kill -9: %s", f->rs.err);
  }
  sleep_s(1.0);
  during_outage = total_progress(cl) - before_kill;
  for (i = 0; i < N_CLIENTS; i++)
    outage500 += atomic_load(&cl[i].errors500);
  t_restart = now_s();
  if (redis_proc_restart(&f->rs) != 0) {
    atomic_store(&stop, 1);
    for (i = 0; i < N_CLIENTS; i++)
      pthread_join(t[i], NULL);
    fail_msg("redis-server did not come back: %s", f->rs.err);
  }
  t_up = now_s();
  /* The clients keep going; the main thread waits for its own probe. */
  {
    answer a;
    double first_ok = 0;
    for (;;) {
      get(c, f->d.base, "/inc?k=n", f->cookie[N_SESS], &a);
      if (a.status == 200) {
        first_ok = now_s();
        break;
      }
      if (a.status != 500 || now_s() - t_up > RECOVERY_MAX_S ||
          a.secs > MAX_REQUEST_S)
        break;
      sleep_s(0.02);
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
                 (long long)(((first_ok > 0 ? first_ok : now_s()) + 1.0) *
                             1e6));
    sleep_s(2.5);
    atomic_store(&stop, 1);
    for (i = 0; i < N_CLIENTS; i++)
      pthread_join(t[i], NULL);
    if (rec_restart == -2)
      fail_msg("after the restart the probe session answered %s: an "
               "acknowledged write was lost", a.body);
    if (rec_restart < 0)
      fail_msg("no service %.1f s after Redis restarted (last answer %ld %s "
               "after %.2f s)",
               now_s() - t_up, a.status, a.body, a.secs);
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
    long long n = session_n(f, c, i);
    answer a;
    if (n < f->recorded[i] || n < f->acked[i])
      fail_msg("session %d: n is %lld after the restart; %lld was recorded "
               "before the load and %lld acknowledged during it",
               i, n, f->recorded[i], f->acked[i]);
    get(c, f->d.base, "/inc?k=n", f->cookie[i], &a);
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
  memset(fq, 0, sizeof fq);
  for (i = 0; i <= N_FROZEN; i++) {
    fq[i].base = f->d.base;
    fq[i].path = i < N_FROZEN ? "/inc?k=n" : "/health";
    fq[i].cookie = i < N_FROZEN ? f->cookie[i] : NULL;
    fq[i].http = http_client_new(0);
    assert_non_null(fq[i].http);
  }
  for (i = 0; i <= N_FROZEN; i++)
    assert_int_equal(pthread_create(&t[i], NULL, frozen_run, &fq[i]), 0);
  for (i = 0; i <= N_FROZEN; i++)
    pthread_join(t[i], NULL);
  for (i = 0; i <= N_FROZEN; i++)
    http_client_free(fq[i].http);
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
    double t_cont = now_s();
    if (redis_proc_thaw(&f->rs) != 0)
      fail_msg("%s", f->rs.err);
    rec_cont = wait_service(f, c, t_cont, "after SIGCONT");
    print_message("service back %.3f s after SIGCONT\n", rec_cont);
  }
  /* The failed requests wrote nothing, not even late (commands queued in
   * a stopped Redis run when it resumes). Let any such write land first. */
  sleep_s(0.3);
  for (i = 0; i < N_FROZEN; i++) {
    long long n = session_n(f, c, i);
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
