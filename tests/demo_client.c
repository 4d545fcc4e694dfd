/* demo_client.c - see demo_client.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <time.h>

#include <cmocka.h>

#include "demo_client.h"

double mono_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void demo_sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------------ */
/* Fixture and processes                                                    */
/* ------------------------------------------------------------------------ */

int demo_fixture_new(void **state, size_t size,
                     void (*cleanup)(demo_fixture *df)) {
  demo_fixture *df;
  if (size < sizeof *df)
    return -1;
  df = calloc(1, size);
  if (df == NULL)
    return -1;
  df->cleanup = cleanup;
  *state = df;
  return 0;
}

void demo_stop_quiet(demo_proc *d, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (demo_proc_stop(&d[i]) != 0)
      fprintf(stderr, "a demo did not stop cleanly\n");
}

int demo_fixture_teardown(void **state) {
  demo_fixture *df = *state;
  if (df == NULL)
    return 0;
  demo_stop_quiet(df->d, 2);
  if (df->cleanup != NULL)
    df->cleanup(df);
  free(df->cookie);
  free(df->sid);
  free(df);
  *state = NULL;
  return 0;
}

void demo_start_store(demo_proc *d, const char *secret, int threads,
                      const char *store_url, const char *err_path,
                      const char *label) {
  char nthreads[16];
  /* The secret and the store URL (which may hold a password) travel in
   * the environment, never on the command line. */
  const char *args[] = {"--port", "0", "--threads", nthreads, NULL};
  snprintf(nthreads, sizeof nthreads, "%d", threads);
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  if (demo_proc_start_env(d, args, secret, store_url, NULL, err_path) != 0)
    fail_msg("%s: the demo did not start; it said: %s", label, d->line);
}

/* ------------------------------------------------------------------------ */
/* Requests, cookies, sessions                                              */
/* ------------------------------------------------------------------------ */

http_response demo_get(const char *base, const char *path,
                       const char *cookie) {
  http_client *c = http_client_new(0);
  http_response r;
  char url[256];
  assert_non_null(c);
  snprintf(url, sizeof url, "%s%s", base, path);
  if (http_get(c, url, cookie, &r) != 0) {
    http_client_free(c);
    fail_msg("GET %s: %s", url, r.error);
  }
  http_client_free(c);
  return r;
}

char *demo_cookie_of(const http_response *r, const char *secret, char **sid) {
  char *value = http_set_cookie_value(r, "connect.sid"), *cookie;
  if (value == NULL)
    fail_msg("no session cookie in the response (%ld %s)", r->status,
             r->body);
  cookie = malloc(strlen(value) + sizeof "connect.sid=");
  assert_non_null(cookie);
  sprintf(cookie, "connect.sid=%s", value);
  if (sid != NULL) {
    *sid = http_cookie_sid(value, secret);
    assert_non_null(*sid);
  }
  free(value);
  return cookie;
}

char *demo_new_session(const char *base, const char *path,
                       const char *want_body, const char *secret,
                       char **sid) {
  http_response r = demo_get(base, path, NULL);
  char *cookie;
  if (r.status != 200 ||
      (want_body != NULL && strcmp(r.body, want_body) != 0))
    fail_msg("GET %s%s answered %ld %s", base, path, r.status, r.body);
  cookie = demo_cookie_of(&r, secret, sid);
  http_response_free(&r);
  return cookie;
}

json_t *demo_read_session(const char *base, const char *cookie) {
  http_response r = demo_get(base, "/session", cookie);
  json_error_t err;
  json_t *j;
  if (r.status != 200)
    fail_msg("GET %s/session: %ld %s", base, r.status, r.body);
  j = json_loads(r.body, 0, &err);
  if (j == NULL || !json_is_object(j))
    fail_msg("/session is not a JSON object: %s", r.body);
  http_response_free(&r);
  return j;
}

void demo_assert_session_lacks(const char *base, const char *cookie,
                               const char *const *keys, const char *what) {
  json_t *sess = demo_read_session(base, cookie);
  size_t i;
  for (i = 0; keys[i] != NULL; i++) {
    if (json_object_get(sess, keys[i]) != NULL) {
      char *text = json_dumps(sess, JSON_COMPACT);
      print_error("%s: %s\n", what, text ? text : "?");
      free(text);
      json_decref(sess);
      fail();
    }
  }
  json_decref(sess);
}

/* ------------------------------------------------------------------------ */
/* Answers recorded, for threads                                            */
/* ------------------------------------------------------------------------ */

void demo_answer_get(http_client *c, const char *base, const char *path,
                     const char *cookie, demo_answer *a) {
  char url[256];
  http_response r;
  http_client *own = c == NULL ? http_client_new(0) : NULL;
  double t0 = mono_now_s();
  snprintf(url, sizeof url, "%s%s", base, path);
  if (c == NULL && own == NULL) {
    memset(a, 0, sizeof *a);
    snprintf(a->body, sizeof a->body, "cannot make a curl handle");
    return;
  }
  if (http_get(c != NULL ? c : own, url, cookie, &r) != 0)
    r.status = 0;
  a->secs = mono_now_s() - t0;
  a->status = r.status;
  snprintf(a->body, sizeof a->body, "%.150s", r.status ? r.body : r.error);
  http_response_free(&r);
  http_client_free(own);
}

static void *slow_run(void *arg) {
  demo_slow *s = arg;
  if (s->delay_s > 0)
    demo_sleep_s(s->delay_s);
  demo_answer_get(s->client, s->base, s->path, s->cookie, &s->a);
  return NULL;
}

int demo_slow_start(demo_slow *s, const char *base, const char *path,
                    const char *cookie, double delay_s) {
  memset(s, 0, sizeof *s);
  s->base = base;
  s->path = path;
  s->cookie = cookie;
  s->delay_s = delay_s;
  s->client = http_client_new(0);
  if (s->client == NULL)
    return -1;
  if (pthread_create(&s->thread, NULL, slow_run, s) != 0) {
    http_client_free(s->client);
    s->client = NULL;
    return -1;
  }
  s->started = 1;
  return 0;
}

void demo_slow_join(demo_slow *s) {
  if (!s->started)
    return;
  pthread_join(s->thread, NULL);
  s->started = 0;
  http_client_free(s->client);
  s->client = NULL;
}

/* ------------------------------------------------------------------------ */
/* Lost updates and logout                                                  */
/* ------------------------------------------------------------------------ */

void *demo_hammer_run(void *arg) {
  static const char *const close_conn[] = {"Connection: close", NULL};
  demo_hammer *h = arg;
  char url[200], want[16];
  int i;

  snprintf(want, sizeof want, "k%d: ", h->key);
  for (i = 0; i < h->rounds; i++) {
    http_request_opts o;
    http_response r;
    double t0 = mono_now_s(), took;
    int rc;
    snprintf(url, sizeof url, "%s/inc?k=k%d&delay=%d",
             h->bases[(size_t)(h->key + i) % h->n_bases], h->key,
             h->delay_ms);
    memset(&o, 0, sizeof o);
    o.url = url;
    o.cookie = h->cookie;
    o.headers = close_conn;
    rc = http_request(h->client, &o, &r);
    took = mono_now_s() - t0;
    if (took > h->slowest)
      h->slowest = took;
    if (rc == 0 && r.status == 200 &&
        strncmp(r.body, want, strlen(want)) == 0) {
      h->answered_ok++;
    } else if (h->failed++ == 0) {
      snprintf(h->first_error, sizeof h->first_error, "%ld %.120s", r.status,
               rc != 0 ? r.error : r.body);
    }
    http_response_free(&r);
    /* A dead transport would make every later request wait for its
     * timeout too: stop this client, the count shows it. */
    if (rc != 0)
      break;
  }
  return NULL;
}

double demo_hammer_all(demo_hammer *h, size_t n, const char *const *bases,
                       size_t n_bases, const char *cookie, int rounds,
                       int delay_ms, double *slowest) {
  pthread_t *t = calloc(n, sizeof *t);
  size_t i, started = 0;
  double t0, took;

  assert_non_null(t);
  for (i = 0; i < n; i++) {
    memset(&h[i], 0, sizeof h[i]);
    h[i].bases = bases;
    h[i].n_bases = n_bases;
    h[i].cookie = cookie;
    h[i].key = (int)i;
    h[i].rounds = rounds;
    h[i].delay_ms = delay_ms;
    h[i].client = http_client_new(0);
    assert_non_null(h[i].client);
  }
  t0 = mono_now_s();
  /* Nothing may assert while a thread runs: the hammers are the caller's
   * (on its stack). */
  for (started = 0; started < n; started++)
    if (pthread_create(&t[started], NULL, demo_hammer_run, &h[started]) != 0)
      break;
  for (i = 0; i < started; i++)
    pthread_join(t[i], NULL);
  took = mono_now_s() - t0;
  free(t);
  if (slowest != NULL)
    *slowest = 0;
  for (i = 0; i < n; i++) {
    http_client_free(h[i].client);
    h[i].client = NULL;
    if (slowest != NULL && h[i].slowest > *slowest)
      *slowest = h[i].slowest;
  }
  if (started < n)
    fail_msg("could not start hammer thread %zu of %zu", started + 1, n);
  return took;
}

/* What a counter's value is when it is no number. */
static const char *value_note(const json_t *v) {
  if (v == NULL)
    return " (missing)";
  return json_is_integer(v) ? "" : " (not an integer)";
}

int demo_hammer_judge(const demo_hammer *h, size_t n, json_t *const *sess,
                      size_t n_sess, char *report, size_t size, long *lost) {
  size_t used = 0, i, p;
  int bad = 0;

  report[0] = '\0';
  *lost = 0;
  for (i = 0; i < n; i++) {
    char key[16], shows[160];
    size_t sh = 0;
    int ok = h[i].failed == 0, m;
    snprintf(key, sizeof key, "k%d", h[i].key);
    shows[0] = '\0';
    for (p = 0; p < n_sess; p++) {
      json_t *v = json_object_get(sess[p], key);
      json_int_t got = v != NULL && json_is_integer(v) ? json_integer_value(v)
                                                       : 0;
      if (v == NULL || !json_is_integer(v) || got != h[i].rounds)
        ok = 0;
      if (p == 0 && !ok)
        *lost += h[i].rounds - (long)got;
      if (n_sess == 1)
        m = snprintf(shows + sh, sizeof shows - sh, "got %lld%s",
                     (long long)got, value_note(v));
      else
        m = snprintf(shows + sh, sizeof shows - sh, "%sdemo %zu shows %lld%s",
                     p > 0 ? ", " : "", p + 1, (long long)got, value_note(v));
      if (m > 0 && (size_t)m < sizeof shows - sh)
        sh += (size_t)m;
    }
    if (ok)
      continue;
    bad++;
    m = snprintf(report + used, size - used,
                 "\n  %s: expected %d, %s (%d of %d requests answered 200%s%s)",
                 key, h[i].rounds, shows, h[i].answered_ok, h[i].rounds,
                 h[i].failed ? "; first other answer: " : "",
                 h[i].failed ? h[i].first_error : "");
    if (m > 0 && (size_t)m < size - used)
      used += (size_t)m;
  }
  return bad;
}

void demo_logout_race(const char *slow_base, const char *logout_base,
                      const char *cookie, int delay_ms, double pause_s,
                      const char *label) {
  char slow_path[64];
  demo_slow s;
  demo_answer out;

  double t0, t_logout, t_slow;
  snprintf(slow_path, sizeof slow_path, "/inc?k=x&delay=%d", delay_ms);
  t0 = mono_now_s();
  if (demo_slow_start(&s, slow_base, slow_path, cookie, 0) != 0)
    fail_msg("%s: cannot start the slow request", label);
  /* The slow /inc has loaded the session by now and sleeps on. Nothing
   * may assert until the thread is joined: it uses s. */
  demo_sleep_s(pause_s);
  demo_answer_get(NULL, logout_base, "/logout", cookie, &out);
  t_logout = mono_now_s() - t0;
  demo_slow_join(&s);
  t_slow = mono_now_s() - t0;
  if (out.status == 0)
    fail_msg("%s: /logout: %s", label, out.body);
  if (out.status != 200 || strcmp(out.body, "Logged out\n") != 0)
    fail_msg("%s: /logout answered %ld %s", label, out.status, out.body);
  if (s.a.status == 0)
    fail_msg("%s: %s got no answer: %s", label, slow_path, s.a.body);
  /* The race really happened: the slow request ran its whole delay and
   * answered as a normal /inc, and the logout was done while it slept. */
  if (s.a.status != 200 || strcmp(s.a.body, "x: 1\n") != 0)
    fail_msg("%s: %s answered %ld %s", label, slow_path, s.a.status,
             s.a.body);
  if (t_slow < delay_ms / 1000.0 || t_logout >= delay_ms / 1000.0)
    fail_msg("%s: no overlap: /logout done after %.3f s, %s after %.3f s",
             label, t_logout, slow_path, t_slow);
  print_message("%s: the slow %s answered %ld %s", label, slow_path,
                s.a.status, s.a.body);
}

/* ------------------------------------------------------------------------ */
/* Two processes on one store                                               */
/* ------------------------------------------------------------------------ */

int demo_probe_has(const demo_store_probe *p, const char *sid) {
  int rc = p->has_session(p->ctx, sid);
  if (rc < 0)
    fail_msg("looking for a session in %s: %s", p->name, p->error(p->ctx));
  return rc;
}

void demo_procs_one_session(demo_fixture *df, const char *secret,
                            const demo_store_probe *p) {
  char *old_sid = NULL, *old_cookie;
  char expect[96];
  http_response r;
  json_t *j;
  int i;

  /* A visit on demo 2 makes a session... */
  old_cookie = demo_new_session(df->d[1].base, "/", NULL, secret, &old_sid);
  assert_int_equal(demo_probe_has(p, old_sid), 1);
  /* ...and a login on demo 1 replaces it with a new id. */
  r = demo_get(df->d[0].base, "/login?user=alice", old_cookie);
  free(old_cookie);
  if (r.status != 200 || strcmp(r.body, "Logged in as alice\n") != 0)
    fail_msg("/login answered %ld %s", r.status, r.body);
  df->cookie = demo_cookie_of(&r, secret, &df->sid);
  http_response_free(&r);
  if (strcmp(df->sid, old_sid) == 0)
    fail_msg("the login kept the session id");
  if (demo_probe_has(p, old_sid) != 0)
    fail_msg("the session before the login is still in %s", p->name);
  free(old_sid);
  assert_int_equal(demo_probe_has(p, df->sid), 1);

  /* One visit counter, whichever process answers. */
  for (i = 1; i <= 12; i++) {
    const char *base = df->d[i % 2].base;
    r = demo_get(base, "/", df->cookie);
    if (i == 1)
      snprintf(expect, sizeof expect,
               "Welcome! Refresh the page to count visits.\n");
    else
      snprintf(expect, sizeof expect, "You've visited this page %d times\n",
               i);
    if (r.status != 200 || strcmp(r.body, expect) != 0)
      fail_msg("visit %d on demo %d answered %ld %s, expected %s", i,
               i % 2 + 1, r.status, r.body, expect);
    http_response_free(&r);
  }
  for (i = 0; i < 2; i++) {
    j = demo_read_session(df->d[i].base, df->cookie);
    if (json_integer_value(json_object_get(j, "views")) != 12 ||
        json_string_value(json_object_get(j, "user")) == NULL ||
        strcmp(json_string_value(json_object_get(j, "user")), "alice") != 0)
      fail_msg("demo %d's /session: %s", i + 1, json_dumps(j, JSON_COMPACT));
    json_decref(j);
  }
}

/* The hammers above, as in tests/test_http_concurrency.c: each request on
 * a new connection ("Connection: close"), so libmicrohttpd deals it to a
 * free worker and the requests really overlap. */
void demo_procs_no_lost_updates(demo_fixture *df, const char *secret,
                                int clients, int rounds,
                                const demo_store_probe *p) {
  demo_hammer *h = calloc((size_t)clients, sizeof *h);
  const char *bases[2];
  char report[2048];
  long lost;
  double took, slowest;
  json_t *sess[2];
  int bad;

  assert_non_null(h);
  df->cookie = demo_new_session(df->d[0].base, "/", NULL, secret, &df->sid);
  bases[0] = df->d[0].base;
  bases[1] = df->d[1].base;
  took = demo_hammer_all(h, (size_t)clients, bases, 2, df->cookie, rounds, 1,
                         &slowest);

  /* Both processes must see the same, complete record. */
  sess[0] = demo_read_session(df->d[0].base, df->cookie);
  sess[1] = demo_read_session(df->d[1].base, df->cookie);
  bad = demo_hammer_judge(h, (size_t)clients, sess, 2, report, sizeof report,
                          &lost);
  free(h);
  if (json_integer_value(json_object_get(sess[0], "views")) != 1)
    bad = 1;
  json_decref(sess[0]);
  json_decref(sess[1]);
  print_message("two processes on one %s: %d clients x %d increments on "
                "one session in %.2f s (slowest request %.3f s), %ld lost\n",
                p->name, clients, rounds, took, slowest, lost);
  if (bad)
    fail_msg("lost %ld of %d increments (or the first visit's views) on one "
             "session across two processes:%s",
             lost, clients * rounds, report);
}

void demo_procs_logout_wins(demo_fixture *df, const char *secret,
                            const demo_store_probe *p) {
  static const char *const gone[] = {"x", "user", NULL};
  char what[128];
  int i;

  df->cookie = demo_new_session(df->d[0].base, "/login?user=bob", NULL,
                                secret, &df->sid);
  /* The check below is worth something only if it can see the session. */
  if (demo_probe_has(p, df->sid) != 1)
    fail_msg("the session is not in %s after the login", p->name);

  /* The slow /inc on demo 1 has loaded the session 200 ms in and sleeps
   * 600 ms more when /logout runs on demo 2. */
  demo_logout_race(df->d[0].base, df->d[1].base, df->cookie, 800, 0.2,
                   "slow /inc on demo 1, /logout on demo 2");

  if (demo_probe_has(p, df->sid) != 0)
    fail_msg("after /logout on demo 2, %s holds the session again (the "
             "slow /inc on demo 1 re-created it)",
             p->name);
  for (i = 0; i < 2; i++) {
    snprintf(what, sizeof what,
             "after /logout the old cookie still finds the session on demo %d",
             i + 1);
    demo_assert_session_lacks(df->d[i].base, df->cookie, gone, what);
  }
  /* Reading /session with the old cookie saved nothing either. */
  if (demo_probe_has(p, df->sid) != 0)
    fail_msg("reading /session with the logged-out cookie stored the "
             "session in %s",
             p->name);
}
