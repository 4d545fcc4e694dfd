/* demo_fault.c - see demo_fault.h. */
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

#include "demo_fault.h"

#define N_SESS DEMO_FAULT_SESSIONS
#define N_CLIENTS DEMO_FAULT_CLIENTS
#define N_FROZEN DEMO_FAULT_FROZEN
/* Service must be full this long after the first success (see there). */
#define FULL_AFTER_S 2.0

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

void demo_fault_teardown(demo_fault *f) {
  size_t i;
  /* The server first: a frozen one would make the demo's shutdown wait
   * for its in-flight requests' timeouts. */
  if (f->srv.kill_now != NULL)
    f->srv.kill_now(f->srv.probe.ctx);
  demo_stop_quiet(&f->d, 1);
  if (!f->finished && f->err_path != NULL) {
    /* Whatever the demo said (an ASan report, the store's errors). */
    char *log = slurp(f->err_path);
    if (log != NULL) {
      size_t n = strlen(log);
      fprintf(stderr, "---- demo stderr (last 6000 bytes) ----\n%s\n----\n",
              n > 6000 ? log + n - 6000 : log);
      free(log);
    }
  }
  for (i = 0; i <= N_SESS; i++) {
    free(f->cookie[i]);
    free(f->sid[i]);
    free(f->lost_sid[i]);
    f->cookie[i] = f->sid[i] = f->lost_sid[i] = NULL;
  }
}

static int threads(const demo_fault *f) {
  return f->threads > 0 ? f->threads : 4;
}

/* The demo is still running: not exited, not killed by a signal. */
static void assert_demo_alive(demo_fault *f, const char *when) {
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
static long long session_n(demo_fault *f, int i) {
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

/* ------------------------------------------------------------------------ */
/* a. Sessions with known counters                                          */
/* ------------------------------------------------------------------------ */

static void make_sessions(demo_fault *f, http_client *c) {
  int i;
  for (i = 0; i <= N_SESS; i++) {
    int k, extra = i % 3 + 1;
    f->cookie[i] = demo_new_session(f->d.base, "/inc?k=n", "n: 1\n",
                                    f->secret, &f->sid[i]);
    f->acked[i] = 1;
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
  /* The store writes where this test looks. */
  for (i = 0; i <= N_SESS; i++)
    if (demo_probe_has(&f->srv.probe, f->sid[i]) != 1)
      fail_msg("session %d is not in %s where the test looks", i,
               f->srv.probe.name);
}

/* ------------------------------------------------------------------------ */
/* b. Load while the server is killed and restarted                         */
/* ------------------------------------------------------------------------ */

typedef struct client {
  demo_fault *f;
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
/* From when the server is killed (microseconds of mono_now_s()): with
 * data_lost_on_crash a request answered after it may find its session
 * gone and start a fresh one (n: 1). */
static atomic_llong crashed_at_us;

/* v is what a 200 may answer for a session last acknowledged at `acked`:
 * more than that, or (the data lost in the crash) a fresh session's 1. */
static int inc_plausible(const demo_fault *f, long long v, long long acked,
                         double answered) {
  if (v > acked)
    return 1;
  return f->data_lost_on_crash && v == 1 &&
         answered * 1e6 >= (double)atomic_load(&crashed_at_us);
}

static void *client_run(void *arg) {
  client *c = arg;
  demo_fault *f = c->f;
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
      if (!inc_plausible(f, v, f->acked[i], mono_now_s()) &&
          c->regress[0] == '\0')
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

static void stop_clients(atomic_int *stop, pthread_t *t) {
  int i;
  atomic_store(stop, 1); /* the threads use f: join them before asserting */
  for (i = 0; i < N_CLIENTS; i++)
    pthread_join(t[i], NULL);
}

static void load_through_crash(demo_fault *f, http_client *c) {
  client cl[N_CLIENTS];
  pthread_t t[N_CLIENTS];
  atomic_int stop = 0;
  double t0, t_kill, t_restart, t_up, rec_restart, worst, first_ok = 0;
  int i, before_kill, during_outage, outage500 = 0;
  demo_answer a;

  atomic_store(&late_after_us, LLONG_MAX);
  atomic_store(&crashed_at_us, LLONG_MAX);
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
  atomic_store(&crashed_at_us, (long long)(t_kill * 1e6));
  if (f->srv.crash(f->srv.probe.ctx) != 0) {
    stop_clients(&stop, t);
    fail_msg("kill -9: %s", f->srv.probe.error(f->srv.probe.ctx));
  }
  demo_sleep_s(f->outage_s);
  during_outage = total_progress(cl) - before_kill;
  for (i = 0; i < N_CLIENTS; i++)
    outage500 += atomic_load(&cl[i].errors500);
  t_restart = mono_now_s();
  if (f->srv.restart(f->srv.probe.ctx) != 0) {
    stop_clients(&stop, t);
    fail_msg("%s did not come back: %s", f->srv.probe.name,
             f->srv.probe.error(f->srv.probe.ctx));
  }
  t_up = mono_now_s();
  /* The clients keep going; the main thread waits for its own probe. */
  for (;;) {
    demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[N_SESS], &a);
    if (a.status == 200) {
      first_ok = mono_now_s();
      break;
    }
    if (a.status != 500 || mono_now_s() - t_up > f->recovery_max_s ||
        a.secs > f->max_request_s)
      break;
    demo_sleep_s(0.02);
  }
  rec_restart = first_ok > 0 ? first_ok - t_up : -1;
  if (first_ok > 0) {
    long long v = inc_value(&a);
    if (!inc_plausible(f, v, f->acked[N_SESS], first_ok))
      rec_restart = -2;
    f->acked[N_SESS] = v;
  }
  /* From FULL_AFTER_S after the first success on, everything must work.
   * Not sooner: a server just back from a crash may still stall for a
   * second (PostgreSQL's checkpoint after its recovery, fsync=on, on a disk
   * ctest -j keeps busy: three 1 s statement timeouts at once, once). */
  atomic_store(&late_after_us,
               (long long)(((first_ok > 0 ? first_ok : mono_now_s()) +
                            FULL_AFTER_S) *
                           1e6));
  demo_sleep_s(FULL_AFTER_S + 1.5);
  stop_clients(&stop, t);
  if (rec_restart == -2)
    fail_msg("after the restart the probe session answered %s: an "
             "acknowledged write was lost",
             a.body);
  if (rec_restart < 0)
    fail_msg("no service %.1f s after %s restarted (last answer %ld %s "
             "after %.2f s)",
             mono_now_s() - t_up, f->srv.probe.name, a.status, a.body, a.secs);
  assert_demo_alive(f, "after kill -9 and restart");
  print_message("load: %d requests before kill -9, %d during the %.2f s "
                "outage (%d answered 500 by the end of it); %s back "
                "%.3f s after the restart began; service %.3f s after %s "
                "answered\n",
                before_kill, during_outage, t_restart - t_kill, outage500,
                f->srv.probe.name, t_up - t_restart, rec_restart, f->srv.probe.name);
  worst = 0;
  for (i = 0; i < N_CLIENTS; i++) {
    print_message("  client %d: %d ok, %d x 500 (%d ok and %d x 500 from %.0f "
                  "s after recovery), slowest %.3f s\n",
                  i, cl[i].ok, atomic_load(&cl[i].errors500), cl[i].ok_late,
                  cl[i].err500_late, FULL_AFTER_S, cl[i].max_secs);
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
    fail_msg("no request failed while %s was down: the outage was not "
             "observed (%d requests during it)",
             f->srv.probe.name, during_outage);
  for (i = 0; i < N_CLIENTS; i++) {
    if (cl[i].other != 0)
      fail_msg("client %d: %d answers neither 200 nor 500; first: %s", i,
               cl[i].other, cl[i].first_other);
    if (cl[i].regress[0] != '\0')
      fail_msg("client %d: an acknowledged write was lost: %s", i,
               cl[i].regress);
    if (cl[i].ok_late == 0 || cl[i].err500_late != 0)
      fail_msg("client %d: service not full after recovery: %d ok, %d x 500 "
               "from %.0f s after the first success on",
               i, cl[i].ok_late, cl[i].err500_late, FULL_AFTER_S);
  }
  if (worst > f->max_request_s)
    fail_msg("a request took %.2f s (more than %.1f s: a hang)", worst,
             f->max_request_s);
}

/* c. Nothing acknowledged was lost; the counters go on from there. */
static void check_counters(demo_fault *f, http_client *c) {
  int i;
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
}

/* c. with data_lost_on_crash: the restarted server is empty. Every old
 * cookie finds no session (and no counter), and new sessions made now
 * count from 1 on (they replace the lost ones for d.; the lost ids are
 * kept for e.'s log check). */
static void check_sessions_lost(demo_fault *f, http_client *c) {
  int i;
  for (i = 0; i <= N_SESS; i++) {
    json_t *j = demo_read_session(f->d.base, f->cookie[i]);
    demo_answer a;
    if (json_object_get(j, "n") != NULL) {
      char *text = json_dumps(j, JSON_COMPACT);
      print_error("session %d survived the crash of a server that keeps "
                  "its data in memory: %s\n", i, text ? text : "?");
      free(text);
      json_decref(j);
      fail();
    }
    json_decref(j);
    free(f->cookie[i]);
    f->lost_sid[i] = f->sid[i];
    f->sid[i] = NULL;
    f->cookie[i] = demo_new_session(f->d.base, "/inc?k=n", "n: 1\n",
                                    f->secret, &f->sid[i]);
    demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[i], &a);
    if (inc_value(&a) != 2)
      fail_msg("new session %d after the restart: /inc answered %ld %s, "
               "expected n: 2",
               i, a.status, a.body);
    f->acked[i] = 2;
    if (i < N_SESS)
      f->recorded[i] = 2;
    if (demo_probe_has(&f->srv.probe, f->sid[i]) != 1)
      fail_msg("new session %d is not in %s where the test looks", i,
               f->srv.probe.name);
  }
}

/* ------------------------------------------------------------------------ */
/* d. Parallel requests while the server is stopped                         */
/* ------------------------------------------------------------------------ */

/* Poll /inc on the probe session until a 200, recovery_max_s at most;
 * returns the seconds it took from `since`. */
static double wait_service(demo_fault *f, http_client *c, double since,
                           const char *what) {
  demo_answer a;
  for (;;) {
    long long v;
    demo_answer_get(c, f->d.base, "/inc?k=n", f->cookie[N_SESS], &a);
    if (a.secs > f->max_request_s)
      fail_msg("%s: a request took %.2f s", what, a.secs);
    if (a.status == 200) {
      v = inc_value(&a);
      if (v <= f->acked[N_SESS])
        fail_msg("%s: the probe session answered %s after an earlier n: "
                 "%lld",
                 what, a.body, f->acked[N_SESS]);
      f->acked[N_SESS] = v;
      return mono_now_s() - since;
    }
    if (a.status != 500)
      fail_msg("%s: /inc answered %ld %s", what, a.status, a.body);
    if (mono_now_s() - since > f->recovery_max_s)
      fail_msg("%s: still no service %.1f s later (last: %ld %s)", what,
               mono_now_s() - since, a.status, a.body);
    demo_sleep_s(0.02);
  }
}

static void stopped_server(demo_fault *f, http_client *c) {
  demo_slow fq[N_FROZEN + 1];
  long long frozen_before[N_FROZEN];
  char each[N_FROZEN * 8 + 1];
  size_t used = 0;
  double slowest = 0, t_cont, rec_cont;
  int i, n_started;

  for (i = 0; i < N_FROZEN; i++)
    frozen_before[i] = f->acked[i];
  if (f->srv.freeze(f->srv.probe.ctx) != 0)
    fail_msg("%s", f->srv.probe.error(f->srv.probe.ctx));
  /* /health last, 0.1 s after the last /inc: once they hold workers. */
  for (n_started = 0; n_started <= N_FROZEN; n_started++) {
    int health = n_started == N_FROZEN;
    if (demo_slow_start(&fq[n_started], f->d.base,
                        health ? "/health" : "/inc?k=n",
                        health ? NULL : f->cookie[n_started],
                        n_started * f->stagger_s + (health ? 0.1 : 0)) != 0)
      break;
  }
  for (i = 0; i < n_started; i++)
    demo_slow_join(&fq[i]);
  if (n_started <= N_FROZEN)
    fail_msg("could not start request %d while %s was stopped", n_started,
             f->srv.probe.name);
  /* Answers first, then SIGCONT: the checks below need the server running,
   * and a failed assertion's teardown kills it anyway. */
  for (i = 0; i < N_FROZEN; i++) {
    if (fq[i].a.secs > slowest)
      slowest = fq[i].a.secs;
    used += (size_t)snprintf(each + used, sizeof each - used, " %.2f",
                             fq[i].a.secs);
  }
  print_message("%s stopped: %d parallel /inc answered in %.3f s at most "
                "(timeout %d ms, pool %u, %d workers; each:%s); /health %ld "
                "in %.3f s\n",
                f->srv.probe.name, N_FROZEN, slowest, f->timeout_ms, f->pool,
                threads(f), each,
                fq[N_FROZEN].a.status, fq[N_FROZEN].a.secs);
  for (i = 0; i < N_FROZEN; i++) {
    if (fq[i].a.status != 500)
      fail_msg("/inc %d while %s was stopped answered %ld %s after %.2f s, "
               "expected 500",
               i, f->srv.probe.name, fq[i].a.status, fq[i].a.body, fq[i].a.secs);
    if (fq[i].a.secs > f->max_request_s)
      fail_msg("/inc %d while %s was stopped took %.2f s", i, f->srv.probe.name,
               fq[i].a.secs);
  }
  if (fq[N_FROZEN].a.status != 200 ||
      fq[N_FROZEN].a.secs > f->max_request_s)
    fail_msg("/health while %s was stopped: %ld %s after %.2f s",
             f->srv.probe.name, fq[N_FROZEN].a.status, fq[N_FROZEN].a.body,
             fq[N_FROZEN].a.secs);
  assert_demo_alive(f, "while the server was stopped");
  t_cont = mono_now_s();
  if (f->srv.thaw(f->srv.probe.ctx) != 0)
    fail_msg("%s", f->srv.probe.error(f->srv.probe.ctx));
  rec_cont = wait_service(f, c, t_cont, "after SIGCONT");
  print_message("service back %.3f s after SIGCONT\n", rec_cont);
  /* The failed requests wrote nothing, not even late (commands queued in
   * a stopped server run when it resumes). Let any such write land first. */
  demo_sleep_s(0.3);
  for (i = 0; i < N_FROZEN; i++) {
    long long n = session_n(f, i);
    if (n != frozen_before[i])
      fail_msg("session %d: n is %lld after SIGCONT, %lld before the "
               "failed request",
               i, n, frozen_before[i]);
  }
  assert_demo_alive(f, "after SIGCONT");
}

/* e. What the demo logged. */
static void check_log(demo_fault *f) {
  char *log;
  size_t i, lines = 0;
  int named = 0;
  const char *p;

  assert_int_equal(demo_proc_stop(&f->d), 0);
  log = slurp(f->err_path);
  assert_non_null(log);
  for (i = 0; f->log_names[i] != NULL; i++)
    named |= contains_nocase(log, f->log_names[i]);
  if (!named)
    fail_msg("the demo's errors do not name %s:\n%s", f->srv.probe.name, log);
  if (f->password != NULL && strstr(log, f->password) != NULL) {
    /* Say where, without repeating it. */
    size_t at = (size_t)(strstr(log, f->password) - log);
    fail_msg("the demo's stderr shows the %s password at byte %zu",
             f->srv.probe.name, at);
  }
  for (i = 0; i <= N_SESS; i++) {
    if (strstr(log, f->sid[i]) != NULL)
      fail_msg("the demo's stderr shows session id %s:\n%s", f->sid[i], log);
    if (f->lost_sid[i] != NULL && strstr(log, f->lost_sid[i]) != NULL)
      fail_msg("the demo's stderr shows session id %s:\n%s", f->lost_sid[i],
               log);
  }
  /* A sample for the reader: the first line and the number of lines. */
  for (p = log; *p != '\0'; p++)
    lines += *p == '\n';
  print_message("demo stderr: %zu lines; first: %.*s\n", lines,
                (int)strcspn(log, "\n"), log);
  free(log);
}

void demo_fault_run(demo_fault *f) {
  http_client *c;

  signal(SIGPIPE, SIG_IGN);
  /* When it does not start, the teardown shows what it wrote. */
  demo_start_store(&f->d, f->secret, threads(f), f->store_url, f->err_path,
                   f->store_label);
  c = http_client_new(0);
  assert_non_null(c);
  make_sessions(f, c);
  load_through_crash(f, c);
  if (f->data_lost_on_crash)
    check_sessions_lost(f, c);
  else
    check_counters(f, c);
  stopped_server(f, c);
  http_client_free(c);
  check_log(f);
  f->finished = 1;
}
