/* test_metrics.c - a context's counters (csn/csn_metrics.h) in process.
 *
 *   metrics counters   a scripted set of requests through a real MemoryStore
 *                      (new, loaded, saved, touched, regenerate, destroy, a
 *                      record that is no session, injected store faults, a
 *                      merge and a logout race): every counter equals what
 *                      was done; threads counting at once give exact totals;
 *                      the API's argument checks.
 *   metrics parse      the Prometheus text of such a context, parsed by the
 *                      real parser (tests/metrics_parse.py, prometheus_client)
 *                      with the values expected, under two prefixes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "core/metrics.h"
#include "csn/csn_metrics.h"
#include "csn_int.h"
#include "metrics_check.h"
#include "request_rig.h"

static const char *const SECRETS[] = {"metrics secret"};

static csn_ctx *new_ctx(void) {
  csn_options o;
  csn_ctx *ctx = NULL;
  csn_options_init(&o);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  /* resave off (express's default is on): an unchanged session is touched,
   * not saved again. No store: the context opens (and owns) a
   * MemoryStore. */
  o.resave = 0;
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  return ctx;
}

static csn_metrics snap(const csn_ctx *ctx) {
  csn_metrics m;
  memset(&m, 0xff, sizeof m); /* every member must be written */
  m.version = CSN_METRICS_VERSION;
  assert_int_equal(csn_ctx_metrics(ctx, &m), CSN_OK);
  return m;
}

/* A request with `cookie` that sets "n" (when set >= 0), then commits;
 * the browser's cookie afterwards goes to `next` (when a Set-Cookie came)
 * and the commit's code is returned. */
static int req_set(csn_ctx *ctx, const char *cookie, int64_t set,
                   char *next, size_t size) {
  csn_request *r = rig_begin(ctx, cookie);
  char *sc = NULL;
  int rc;
  if (set >= 0)
    assert_int_equal(csn_session_set_int(csn_request_session(r), "n", set),
                     CSN_OK);
  rc = rig_commit(r, &sc);
  if (sc != NULL && next != NULL)
    rig_cookie_of(sc, next, size);
  csn_free(sc);
  return rc;
}

/* Fault hook: fail the named store operation with CSN_ESTORE. */
static int fail_op(csn_store *st, const char *op, void *ud) {
  (void)st;
  return strcmp(op, (const char *)ud) == 0 ? CSN_ESTORE : CSN_OK;
}

/* The scripted requests (saveUninitialized on, express's default; resave
 * off). Returns
 * the context (caller frees); test_scripted_counts lists what it did. */
static csn_ctx *scripted(void) {
  csn_ctx *ctx = new_ctx();
  char c1[256], c2[256], *id;
  csn_request *r;
  csn_request_info in;

  /* 1. A new visitor whose session gets data: created, set. */
  assert_int_equal(req_set(ctx, NULL, 1, c1, sizeof c1), CSN_OK);
  /* 2. It comes back and changes it: get, loaded, cas (saved). */
  assert_int_equal(req_set(ctx, c1, 2, NULL, 0), CSN_OK);
  /* 3. Back again, changing nothing: get, loaded, touch. */
  assert_int_equal(req_set(ctx, c1, -1, NULL, 0), CSN_OK);
  /* 4. Login: get, loaded; regenerate destroys the old record (destroy)
   *    and generates a new one (created), saved with set. */
  r = rig_begin(ctx, c1);
  assert_int_equal(csn_session_regenerate(csn_request_session(r)), CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(r), "user", 7),
                   CSN_OK);
  {
    char *sc = NULL;
    assert_int_equal(rig_commit(r, &sc), CSN_OK);
    assert_non_null(sc);
    rig_cookie_of(sc, c2, sizeof c2);
    csn_free(sc);
  }
  /* 5. Logout: get, loaded, destroy. */
  r = rig_begin(ctx, c2);
  assert_int_equal(csn_session_destroy(csn_request_session(r)), CSN_OK);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  /* 6. The logged-out cookie again: get answers "not found" (no error);
   *    a fresh session is created and, uninitialized, saved (set). */
  assert_int_equal(req_set(ctx, c2, -1, NULL, 0), CSN_OK);

  /* 7. A record that is no session under a live cookie: get succeeds, the
   *    core counts it unreadable. Written behind the core's back (not
   *    counted). First a session to hold the cookie: created, set. */
  assert_int_equal(req_set(ctx, NULL, 3, c1, sizeof c1), CSN_OK);
  memset(&in, 0, sizeof in);
  in.cookie_header = c1;
  in.url = "/";
  assert_int_equal(csn_request_begin(ctx, &in, &r), CSN_OK);
  id = csn_session_id_dup(csn_request_session(r));
  assert_non_null(id);
  csn_request_free(r); /* not committed: begin loaded it (get, loaded) */
  assert_int_equal(csn_store_set(csn_ctx_store(ctx), id, "not json", 8,
                                 csn__now_ms() + 60000),
                   CSN_OK);
  csn_free(id);
  /* get: unreadable; a fresh session is created and saved (set). */
  assert_int_equal(req_set(ctx, c1, -1, NULL, 0), CSN_OK);

  /* 8. Faults: a failed get fails the request (get error); a failed set
   *    fails the commit of a new session (created, set error). */
  csn__store_set_fault(fail_op, (void *)"get");
  memset(&in, 0, sizeof in);
  in.cookie_header = c1;
  in.url = "/";
  r = NULL;
  assert_int_equal(csn_request_begin(ctx, &in, &r), CSN_ESTORE);
  csn_request_free(r);
  csn__store_set_fault(fail_op, (void *)"set");
  assert_int_equal(req_set(ctx, NULL, 4, NULL, 0), CSN_ESTORE);
  csn__store_set_fault(NULL, NULL);
  return ctx;
}

static void test_scripted_counts(void **state) {
  csn_ctx *ctx;
  csn_metrics m;
  int op;
  (void)state;

  ctx = scripted();
  m = snap(ctx);
  assert_int_equal(m.version, CSN_METRICS_VERSION);
  /* created: 1, 4 (regenerate), 6, 7 twice (new, after unreadable), 8
   * (set fault) */
  assert_int_equal(m.sessions_created, 6);
  /* loaded: 2, 3, 4, 5, 7 (before the overwrite) */
  assert_int_equal(m.sessions_loaded, 5);
  /* saved: 1 (set), 2 (cas), 4, 6, 7 twice (set) */
  assert_int_equal(m.sessions_saved, 6);
  assert_int_equal(m.sessions_touched, 1);
  assert_int_equal(m.touches_skipped, 0);
  assert_int_equal(m.sessions_destroyed, 2);
  assert_int_equal(m.sessions_expired, 0);
  assert_int_equal(m.sessions_rotated, 0);
  assert_int_equal(m.records_unreadable, 1);
  assert_int_equal(m.merges, 0);
  assert_int_equal(m.merges_gone, 0);
  assert_int_equal(m.cas_conflicts, 0);

  /* get: 2, 3, 4, 5, 6 (not found), 7 twice, 8 (fault) */
  assert_int_equal(m.store[CSN_METRICS_OP_GET].calls, 8);
  assert_int_equal(m.store[CSN_METRICS_OP_GET].errors, 1);
  /* set: 1, 4, 6, 7 twice, 8 (fault) */
  assert_int_equal(m.store[CSN_METRICS_OP_SET].calls, 6);
  assert_int_equal(m.store[CSN_METRICS_OP_SET].errors, 1);
  assert_int_equal(m.store[CSN_METRICS_OP_CAS].calls, 1);
  assert_int_equal(m.store[CSN_METRICS_OP_TOUCH].calls, 1);
  assert_int_equal(m.store[CSN_METRICS_OP_DESTROY].calls, 2);
  for (op = 0; op < CSN_METRICS_OPS; op++) {
    const csn_metrics_store *st = &m.store[op];
    size_t i;
    if (op != CSN_METRICS_OP_GET && op != CSN_METRICS_OP_SET)
      assert_int_equal(st->errors, 0);
    /* Cumulative, and a MemoryStore call never takes 10 s. */
    for (i = 1; i < CSN_METRICS_BUCKETS; i++)
      assert_true(st->buckets[i] >= st->buckets[i - 1]);
    assert_int_equal(st->buckets[CSN_METRICS_BUCKETS - 1], st->calls);
    assert_true(st->calls == 0 || st->sum_ns > 0);
    assert_true(st->sum_ns < st->calls * UINT64_C(10000000000));
  }
  csn_ctx_free(ctx);
}

/* Two requests on one session at once: the later save meets the earlier
 * one's write (a cas conflict) and is merged; a save racing a logout is
 * dropped. */
static void test_merge_counts(void **state) {
  csn_ctx *ctx = new_ctx();
  char c[256];
  csn_request *a, *b;
  csn_metrics m;
  (void)state;

  assert_int_equal(req_set(ctx, NULL, 1, c, sizeof c), CSN_OK);
  a = rig_begin(ctx, c);
  b = rig_begin(ctx, c);
  assert_int_equal(csn_session_set_int(csn_request_session(a), "a", 1),
                   CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(b), "b", 1),
                   CSN_OK);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  m = snap(ctx);
  assert_int_equal(m.cas_conflicts, 1);
  assert_int_equal(m.merges, 1);
  assert_int_equal(m.merges_gone, 0);
  /* set 1, cas: a, b (conflict), b again (merged) */
  assert_int_equal(m.sessions_saved, 3);
  assert_int_equal(m.store[CSN_METRICS_OP_CAS].calls, 3);
  assert_int_equal(m.store[CSN_METRICS_OP_CAS].errors, 0);

  a = rig_begin(ctx, c);
  b = rig_begin(ctx, c);
  assert_int_equal(csn_session_destroy(csn_request_session(a)), CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(b), "b", 2),
                   CSN_OK);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  m = snap(ctx);
  assert_int_equal(m.merges_gone, 1);
  assert_int_equal(m.merges, 1);
  assert_int_equal(m.sessions_destroyed, 1);
  assert_int_equal(m.sessions_saved, 3);
  csn_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

#define THREADS 8
#define EVENTS 20000
#define REQUESTS 300

typedef struct worker {
  csn_ctx *ctx;
  pthread_t t;
  int failures;
} worker;

static void *count_events(void *arg) {
  worker *w = arg;
  char *json = NULL;
  size_t len;
  for (int i = 0; i < EVENTS; i++) {
    csn__metrics_event(w->ctx, CSN__EV_LOADED);
    csn__metrics_event(w->ctx, CSN__EV_TOUCH_SKIPPED);
    /* A store call too: "not found" from the real MemoryStore. */
    if (i % 10 == 0 &&
        csn__m_store_get(w->ctx, "nosuchsessionxxxxxxxxxxxxxxxxxxx", &json,
                         &len) != CSN_ENOENT)
      w->failures++;
  }
  return NULL;
}

static void test_threads_events(void **state) {
  csn_ctx *ctx = new_ctx();
  worker w[THREADS];
  csn_metrics m;
  int i;
  (void)state;

  for (i = 0; i < THREADS; i++) {
    w[i].ctx = ctx;
    w[i].failures = 0;
    assert_int_equal(pthread_create(&w[i].t, NULL, count_events, &w[i]), 0);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(w[i].t, NULL);
    assert_int_equal(w[i].failures, 0);
  }
  m = snap(ctx);
  assert_int_equal(m.sessions_loaded, (uint64_t)THREADS * EVENTS);
  assert_int_equal(m.touches_skipped, (uint64_t)THREADS * EVENTS);
  assert_int_equal(m.store[CSN_METRICS_OP_GET].calls,
                   (uint64_t)THREADS * (EVENTS / 10));
  assert_int_equal(m.store[CSN_METRICS_OP_GET].errors, 0);
  assert_int_equal(m.sessions_created, 0);
  csn_ctx_free(ctx);
}

/* Whole requests from threads, read while they run: every snapshot is at
 * most the final count, and the final count is exact. */
static void *run_requests(void *arg) {
  worker *w = arg;
  for (int i = 0; i < REQUESTS; i++) {
    csn_request_info in;
    csn_request *r = NULL;
    char *sc = NULL;
    memset(&in, 0, sizeof in);
    in.url = "/";
    if (csn_request_begin(w->ctx, &in, &r) != CSN_OK ||
        csn_session_set_int(csn_request_session(r), "i", i) != CSN_OK ||
        csn_request_commit(r, &sc) != CSN_OK)
      w->failures++;
    csn_free(sc);
    csn_request_free(r);
  }
  return NULL;
}

static void test_threads_requests(void **state) {
  csn_ctx *ctx = new_ctx();
  worker w[THREADS];
  csn_metrics m;
  uint64_t last = 0;
  int i;
  (void)state;

  for (i = 0; i < THREADS; i++) {
    w[i].ctx = ctx;
    w[i].failures = 0;
    assert_int_equal(pthread_create(&w[i].t, NULL, run_requests, &w[i]), 0);
  }
  for (i = 0; i < 50; i++) {
    m = snap(ctx);
    assert_true(m.sessions_created >= last);
    assert_true(m.sessions_created <= (uint64_t)THREADS * REQUESTS);
    assert_int_equal(m.store[CSN_METRICS_OP_SET].buckets
                         [CSN_METRICS_BUCKETS - 1] <=
                         m.store[CSN_METRICS_OP_SET].calls,
                     1);
    last = m.sessions_created;
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(w[i].t, NULL);
    assert_int_equal(w[i].failures, 0);
  }
  m = snap(ctx);
  assert_int_equal(m.sessions_created, (uint64_t)THREADS * REQUESTS);
  assert_int_equal(m.sessions_saved, (uint64_t)THREADS * REQUESTS);
  assert_int_equal(m.store[CSN_METRICS_OP_SET].calls,
                   (uint64_t)THREADS * REQUESTS);
  assert_int_equal(m.store[CSN_METRICS_OP_GET].calls, 0);
  csn_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* The API's edges                                                          */
/* ------------------------------------------------------------------------ */

static void test_api_args(void **state) {
  csn_ctx *ctx = new_ctx();
  csn_metrics m;
  char *text = (char *)1;
  (void)state;

  memset(&m, 0, sizeof m);
  assert_int_equal(csn_ctx_metrics(NULL, &m), CSN_EINVAL);
  assert_int_equal(csn_ctx_metrics(ctx, NULL), CSN_EINVAL);
  assert_int_equal(csn_ctx_metrics(ctx, &m), CSN_EINVAL); /* version 0 */
  m.version = CSN_METRICS_VERSION + 1;
  assert_int_equal(csn_ctx_metrics(ctx, &m), CSN_ENOTSUP);
  m.version = CSN_METRICS_VERSION;
  assert_int_equal(csn_ctx_metrics(ctx, &m), CSN_OK);

  assert_int_equal(csn_metrics_prometheus(NULL, NULL, &text), CSN_EINVAL);
  assert_null(text);
  assert_int_equal(csn_metrics_prometheus(&m, NULL, NULL), CSN_EINVAL);
  assert_int_equal(csn_metrics_prometheus(&m, "", &text), CSN_EINVAL);
  assert_int_equal(csn_metrics_prometheus(&m, "9lives", &text), CSN_EINVAL);
  assert_int_equal(csn_metrics_prometheus(&m, "bad-name", &text),
                   CSN_EINVAL);
  assert_int_equal(csn_metrics_prometheus(&m, "a\nb", &text), CSN_EINVAL);
  assert_int_equal(
      csn_metrics_prometheus(&m,
                             "a_prefix_that_is_much_longer_than_sixty_four_"
                             "characters_which_is_the_limit",
                             &text),
      CSN_EINVAL);
  assert_null(text);
  assert_int_equal(csn_metrics_prometheus(&m, "app:sub_2", &text), CSN_OK);
  assert_non_null(strstr(text, "\napp:sub_2_sessions_created_total 0\n"));
  csn_free(text);
  m.version = 0;
  assert_int_equal(csn_metrics_prometheus(&m, NULL, &text), CSN_EINVAL);
  assert_int_equal(csn_ctx_metrics_prometheus(NULL, NULL, &text),
                   CSN_EINVAL);
  assert_null(text);

  assert_int_equal(csn_metrics_bucket_ns(0), 50000);
  assert_int_equal(csn_metrics_bucket_ns(CSN_METRICS_BUCKETS - 1),
                   UINT64_C(10000000000));
  assert_int_equal(csn_metrics_bucket_ns(CSN_METRICS_BUCKETS), 0);
  for (size_t i = 1; i < CSN_METRICS_BUCKETS; i++)
    assert_true(csn_metrics_bucket_ns(i) > csn_metrics_bucket_ns(i - 1));
  assert_string_equal(csn_metrics_op_name(CSN_METRICS_OP_GET), "get");
  assert_string_equal(csn_metrics_op_name(CSN_METRICS_OP_DESTROY),
                      "destroy");
  assert_null(csn_metrics_op_name(CSN_METRICS_OPS));
  assert_null(csn_metrics_op_name(-1));
  csn_ctx_free(ctx);
}

/* The text writer under a failing allocator: CSN_ENOMEM until it has the
 * memory, never a partial text. */
static int alloc_budget;
static void *limited_malloc(size_t n) {
  return alloc_budget-- > 0 ? malloc(n) : NULL;
}
static void *limited_calloc(size_t n, size_t s) {
  return alloc_budget-- > 0 ? calloc(n, s) : NULL;
}
static void *limited_realloc(void *p, size_t n) {
  return alloc_budget-- > 0 ? realloc(p, n) : NULL;
}

static void test_prometheus_oom(void **state) {
  csn_allocator a = {limited_malloc, limited_calloc, limited_realloc, free};
  csn_allocator std = {malloc, calloc, realloc, free};
  csn_metrics m;
  char *text = NULL;
  int limit, rc = CSN_ENOMEM;
  (void)state;

  memset(&m, 0, sizeof m);
  m.version = CSN_METRICS_VERSION;
  m.sessions_created = 12345;
  assert_int_equal(csn_set_allocator(&a), CSN_OK);
  for (limit = 0; limit < 100 && rc == CSN_ENOMEM; limit++) {
    alloc_budget = limit;
    rc = csn_metrics_prometheus(&m, NULL, &text);
    if (rc == CSN_ENOMEM)
      assert_null(text);
  }
  assert_int_equal(csn_set_allocator(&std), CSN_OK);
  assert_int_equal(rc, CSN_OK);
  assert_true(limit > 1);
  assert_non_null(strstr(text, "\ncsession_sessions_created_total 12345\n"));
  csn_free(text);
}

/* ------------------------------------------------------------------------ */
/* The real parser                                                          */
/* ------------------------------------------------------------------------ */

static void test_parse_scripted(void **state) {
  static const char *const expect[] = {
      "csession_sessions_created_total=6",
      "csession_sessions_loaded_total=5",
      "csession_sessions_saved_total=6",
      "csession_sessions_touched_total=1",
      "csession_sessions_destroyed_total=2",
      "csession_sessions_unreadable_total=1",
      "csession_sessions_expired_total=0",
      "csession_store_errors_total{op=\"get\"}=1",
      "csession_store_errors_total{op=\"set\"}=1",
      "csession_store_errors_total{op=\"cas\"}=0",
      "csession_store_seconds_count{op=\"get\"}=8",
      "csession_store_seconds_count{op=\"set\"}=6",
      "csession_store_seconds_count{op=\"destroy\"}=2",
      "csession_store_seconds_bucket{op=\"touch\",le=\"+Inf\"}=1",
      NULL};
  static const char *const expect_app[] = {"myapp_sessions_created_total=6",
                                           NULL};
  csn_ctx *ctx = scripted();
  char *text = NULL;
  (void)state;

  assert_int_equal(csn_ctx_metrics_prometheus(ctx, NULL, &text), CSN_OK);
  assert_int_equal(metrics_parse_check(text, NULL, expect), 0);
  csn_free(text);
  assert_int_equal(csn_ctx_metrics_prometheus(ctx, "myapp", &text), CSN_OK);
  assert_int_equal(metrics_parse_check(text, "myapp", expect_app), 0);
  /* The checker itself must be able to fail: a wrong value. */
  {
    static const char *const wrong[] = {"myapp_sessions_created_total=7",
                                        NULL};
    assert_int_equal(metrics_parse_check(text, "myapp", wrong), 1);
  }
  csn_free(text);
  csn_ctx_free(ctx);
}

/* A fresh context (all zero) and large values (64-bit, exact, sum in
 * seconds with nanosecond digits) parse too. */
static void test_parse_extremes(void **state) {
  static const char *const expect[] = {
      "csession_sessions_saved_total=18446744073709551615",
      "csession_store_seconds_sum{op=\"cas\"}=1.000000001",
      "csession_store_seconds_count{op=\"cas\"}=3", NULL};
  csn_ctx *ctx = new_ctx();
  csn_metrics m;
  char *text = NULL;
  (void)state;

  assert_int_equal(csn_ctx_metrics_prometheus(ctx, NULL, &text), CSN_OK);
  assert_int_equal(metrics_parse_check(text, NULL, NULL), 0);
  csn_free(text);
  m = snap(ctx);
  m.sessions_saved = UINT64_MAX;
  m.store[CSN_METRICS_OP_CAS].calls = 3;
  m.store[CSN_METRICS_OP_CAS].buckets[CSN_METRICS_BUCKETS - 1] = 2;
  m.store[CSN_METRICS_OP_CAS].buckets[CSN_METRICS_BUCKETS - 2] = 1;
  m.store[CSN_METRICS_OP_CAS].sum_ns = UINT64_C(1000000001);
  assert_int_equal(csn_metrics_prometheus(&m, NULL, &text), CSN_OK);
  assert_non_null(strstr(text, "csession_store_seconds_sum{op=\"cas\"} "
                               "1.000000001\n"));
  assert_int_equal(metrics_parse_check(text, NULL, expect), 0);
  csn_free(text);
  csn_ctx_free(ctx);
}

int main(int argc, char **argv) {
  const struct CMUnitTest counters[] = {
      cmocka_unit_test(test_scripted_counts),
      cmocka_unit_test(test_merge_counts),
      cmocka_unit_test(test_threads_events),
      cmocka_unit_test(test_threads_requests),
      cmocka_unit_test(test_api_args),
      cmocka_unit_test(test_prometheus_oom),
  };
  const struct CMUnitTest parse[] = {
      cmocka_unit_test(test_parse_scripted),
      cmocka_unit_test(test_parse_extremes),
  };
  if (argc > 1 && strcmp(argv[1], "parse") == 0)
    return cmocka_run_group_tests_name("metrics_parse", parse, NULL, NULL);
  if (argc > 1 && strcmp(argv[1], "counters") != 0) {
    fprintf(stderr, "usage: %s [counters|parse]\n", argv[0]);
    return 2;
  }
  return cmocka_run_group_tests_name("metrics_counters", counters, NULL,
                                     NULL);
}
