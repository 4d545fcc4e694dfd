/* test_unit_store_kit.c - the store-author kit of csn/csn_store.h: the
 * cookie splice, the URL helpers, the constructor error helper, the
 * sweeper thread and the connection pool. Only public headers: this is what a store author sees. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "csn/csn.h"
#include "csn/csn_store.h"

/* ---------------------------------------------------------------------- */
/* csn_record_splice_cookie                                               */
/* ---------------------------------------------------------------------- */

static void splice_eq(const char *stored, const char *fresh, const char *want) {
  char *out = NULL;
  size_t len = 0;
  assert_int_equal(csn_record_splice_cookie(stored, strlen(stored), fresh,
                                            strlen(fresh), &out, &len),
                   CSN_OK);
  assert_non_null(out);
  assert_int_equal(len, strlen(want));
  assert_string_equal(out, want);
  csn_free(out);
}

static void kit_splice_keeps_every_other_byte(void **state) {
  (void)state;
  /* Node's number forms, spacing and escapes survive untouched. */
  splice_eq("{\"cookie\":{\"a\":1}, \"n\": 0.1,\"big\":1e+21,\"s\":\"\\u00e9\"}",
            "{\"cookie\":{\"a\":2}}",
            "{\"cookie\":{\"a\":2}, \"n\": 0.1,\"big\":1e+21,\"s\":\"\\u00e9\"}");
  /* cookie not first, nested objects and strings with braces around it. */
  splice_eq("{\"x\":{\"cookie\":{}},\"cookie\":{\"a\":1},\"y\":\"}{\"}",
            "{\"cookie\":{\"b\":[1,{\"c\":2}]}}",
            "{\"x\":{\"cookie\":{}},\"cookie\":{\"b\":[1,{\"c\":2}]},"
            "\"y\":\"}{\"}");
  /* An escaped key is still the cookie; the last duplicate counts. */
  splice_eq("{\"\\u0063ookie\":{\"a\":1},\"v\":1}", "{\"cookie\":{\"a\":3}}",
            "{\"\\u0063ookie\":{\"a\":3},\"v\":1}");
  splice_eq("{\"cookie\":{\"a\":1},\"cookie\":{\"a\":2}}",
            "{\"cookie\":{\"a\":3}}",
            "{\"cookie\":{\"a\":1},\"cookie\":{\"a\":3}}");
}

static void kit_splice_adds_a_missing_cookie_first(void **state) {
  (void)state;
  splice_eq("{\"v\":1}", "{\"cookie\":{\"a\":1}}",
            "{\"cookie\":{\"a\":1},\"v\":1}");
  splice_eq("{ }", "{\"cookie\":{\"a\":1}}", "{\"cookie\":{\"a\":1} }");
}

static void kit_splice_rejects_bad_input(void **state) {
  char *out = (char *)"untouched";
  (void)state;
  /* fresh without a cookie object */
  assert_int_equal(csn_record_splice_cookie("{}", 2, "{\"v\":1}", 7, &out,
                                            NULL),
                   CSN_EINVAL);
  assert_null(out);
  assert_int_equal(csn_record_splice_cookie("{}", 2, "{\"cookie\":1}", 12,
                                            &out, NULL),
                   CSN_EINVAL);
  /* stored not an object, or not JSON at all, or cut short */
  assert_int_equal(csn_record_splice_cookie("[1]", 3, "{\"cookie\":{}}", 13,
                                            &out, NULL),
                   CSN_ECORRUPT);
  assert_int_equal(csn_record_splice_cookie("{\"a\":", 5, "{\"cookie\":{}}",
                                            13, &out, NULL),
                   CSN_ECORRUPT);
  assert_int_equal(csn_record_splice_cookie(NULL, 0, "{\"cookie\":{}}", 13,
                                            &out, NULL),
                   CSN_EINVAL);
}

/* ---------------------------------------------------------------------- */
/* URLs                                                                   */
/* ---------------------------------------------------------------------- */

static void kit_url_split(void **state) {
  const char *rest, *query;
  size_t n;
  (void)state;
  assert_int_equal(csn_url_split("x:///a/b?k=v", "x", &rest, &n, &query),
                   CSN_OK);
  assert_int_equal(n, 4);
  assert_memory_equal(rest, "/a/b", 4);
  assert_string_equal(query, "k=v");
  assert_int_equal(csn_url_split("x://", "x", &rest, &n, &query), CSN_OK);
  assert_int_equal(n, 0);
  assert_null(query);
  assert_int_equal(csn_url_split("x://h?", "x", &rest, &n, &query), CSN_OK);
  assert_string_equal(query, "");
  assert_int_equal(csn_url_split("xy://h", "x", &rest, &n, &query),
                   CSN_EINVAL);
  assert_int_equal(csn_url_split("x:/h", "x", &rest, &n, &query),
                   CSN_EINVAL);
}

typedef struct parsed {
  int64_t ttl;
  int on;
  char *prefix;
} parsed;

static int parse(const char *q, parsed *p, char *err, size_t errlen) {
  const csn_url_option opts[] = {
      {.key = "ttl", .type = CSN_URL_INT, .min = 1, .max = 86400,
       .out = &p->ttl},
      {.key = "on", .type = CSN_URL_BOOL, .out = &p->on},
      {.key = "prefix", .type = CSN_URL_STR, .out = &p->prefix},
  };
  return csn_url_parse_query(q, opts, 3, "test store", err, errlen);
}

static void kit_url_parse_query(void **state) {
  parsed p = {5, 0, NULL};
  char err[256];
  (void)state;
  assert_int_equal(parse(NULL, &p, err, sizeof err), CSN_OK);
  assert_int_equal(p.ttl, 5); /* absent: left alone */
  assert_int_equal(parse("ttl=60&on=yes&prefix=sess%3A%26x", &p, err,
                         sizeof err),
                   CSN_OK);
  assert_int_equal(p.ttl, 60);
  assert_int_equal(p.on, 1);
  assert_string_equal(p.prefix, "sess:&x");
  /* A second string value replaces (and frees) the first. */
  assert_int_equal(parse("prefix=a", &p, err, sizeof err), CSN_OK);
  assert_string_equal(p.prefix, "a");

  assert_int_equal(parse("ttl=0", &p, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "test store"));
  assert_non_null(strstr(err, "'ttl'"));
  assert_int_equal(parse("ttl=1&ttl=2", &p, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "twice"));
  assert_int_equal(parse("nope=1", &p, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "unknown"));
  assert_int_equal(parse("on=maybe", &p, err, sizeof err), CSN_EINVAL);
  assert_int_equal(parse("ttl", &p, err, sizeof err), CSN_EINVAL);
  assert_int_equal(parse("ttl=1&", &p, err, sizeof err), CSN_EINVAL);
  /* A NUL or a broken escape cannot be a string option. */
  assert_int_equal(parse("prefix=a%00b", &p, err, sizeof err), CSN_EINVAL);
  assert_int_equal(parse("prefix=%zz", &p, err, sizeof err), CSN_EINVAL);
  /* Values never appear in messages (they may be passwords). */
  assert_int_equal(parse("ttl=hunter2", &p, err, sizeof err), CSN_EINVAL);
  assert_null(strstr(err, "hunter2"));
  assert_string_equal(csn_last_error(), err);
  csn_free(p.prefix);
}

/* A store's own parameters out, the driver's URL kept as it was. */
static void partition_is(const char *url, const char *scheme,
                         const char *want_own, const char *want_rest) {
  static const char *const keys[] = {"table", "pool"};
  const char *rest, *query;
  size_t rlen;
  char *own = NULL, *drv = NULL;
  assert_int_equal(csn_url_split(url, scheme, &rest, &rlen, &query), CSN_OK);
  assert_int_equal(csn_url_partition(url, query, keys, 2, &own, &drv), CSN_OK);
  assert_string_equal(own, want_own);
  assert_string_equal(drv, want_rest);
  csn_free_secret(own);
  csn_free_secret(drv);
}

static void kit_url_partition(void **state) {
  static const char *const keys[] = {"table"};
  char *own = (char *)"x", *drv = (char *)"x";
  (void)state;
  partition_is("pg://u:p@h/db", "pg", "", "pg://u:p@h/db");
  partition_is("pg://h/db?", "pg", "", "pg://h/db");
  partition_is("pg://h/db?table=t", "pg", "table=t", "pg://h/db");
  partition_is("pg://h/db?sslmode=require&table=t&pool=3&connect_timeout=5",
               "pg", "table=t&pool=3",
               "pg://h/db?sslmode=require&connect_timeout=5");
  partition_is("m://a,b:2/d?replicaSet=r&pool=2", "m", "pool=2",
               "m://a,b:2/d?replicaSet=r");
  /* Malformed: refused, nothing returned. */
  static const char bad[] = "pg://h/db?table=t&&x=1";
  assert_int_equal(
      csn_url_partition(bad, strchr(bad, '?') + 1, keys, 1, &own, &drv),
      CSN_EINVAL);
  assert_null(own);
  assert_null(drv);
  assert_int_equal(csn_url_partition(NULL, NULL, keys, 1, &own, &drv),
                   CSN_EINVAL);
}

static void kit_store_fail_fills_both(void **state) {
  char err[16];
  (void)state;
  assert_int_equal(csn_store_fail(err, sizeof err, CSN_EIO, "x store: %s",
                                  "cannot open the database"),
                   CSN_EIO);
  /* Truncated to the buffer, never overflowed; csn_last_error has it all. */
  assert_int_equal(strlen(err), sizeof err - 1);
  assert_string_equal(csn_last_error(), "x store: cannot open the database");
  assert_int_equal(csn_store_fail(NULL, 0, CSN_ENOMEM, NULL), CSN_ENOMEM);
  assert_string_equal(csn_last_error(), "out of memory");
}

/* ---------------------------------------------------------------------- */
/* Sweeper                                                                */
/* ---------------------------------------------------------------------- */

typedef struct sweep_count {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int runs;
} sweep_count;

static void count_sweep(csn_sweeper *sw, void *ud) {
  sweep_count *c = ud;
  (void)sw;
  pthread_mutex_lock(&c->lock);
  c->runs++;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

static void wait_runs(sweep_count *c, int n) {
  pthread_mutex_lock(&c->lock);
  while (c->runs < n)
    pthread_cond_wait(&c->cond, &c->lock);
  pthread_mutex_unlock(&c->lock);
}

static void kit_sweeper_runs_and_stops(void **state) {
  sweep_count c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  csn_sweeper *sw = NULL;
  (void)state;
  /* A short interval runs by itself (with jitter). */
  assert_int_equal(csn_sweeper_start(&sw, 5, 50, count_sweep, &c), CSN_OK);
  wait_runs(&c, 3);
  csn_sweeper_stop(sw);

  /* An hour-long interval: wake() runs a sweep now, and stop() returns at
   * once instead of waiting the hour out (a hang would time the test out). */
  c.runs = 0;
  assert_int_equal(csn_sweeper_start(&sw, 3600000, 0, count_sweep, &c),
                   CSN_OK);
  csn_sweeper_wake(sw);
  wait_runs(&c, 1);
  assert_int_equal(csn_sweeper_stopping(sw), 0);
  csn_sweeper_stop(sw);
  csn_sweeper_stop(NULL);
}

/* ------------------------------------------------------------------------ */
/* Group commit                                                             */
/* ------------------------------------------------------------------------ */

/* A writer's record of one write, as a store keeps it. */
typedef struct gwrite {
  csn_group_member member; /* first */
  pthread_t thread;
  int seq;   /* which write of its thread */
  int ran;   /* set by the run that took it */
  int batch; /* that run's number */
} gwrite;

typedef struct gstate {
  _Atomic int in_run; /* runs in progress: never more than one */
  _Atomic int runs;
  _Atomic int taken;  /* members taken by runs */
  _Atomic int biggest;
  _Atomic int bad;    /* a check inside a run failed */
  int delay_us;       /* each run lasts this long (batches form) */
  /* For the order test: the first run waits until `release` is set; the
   * ids of the second batch's members, in the order the run saw them. */
  _Atomic int hold;
  _Atomic int release;
  int order[8];
  _Atomic int norder;
} gstate;

static void sleep_us(long us) {
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void group_run(csn_group_member *batch, void *ud) {
  gstate *g = ud;
  int n = 0, leader_in = 0, run;
  if (atomic_fetch_add(&g->in_run, 1) != 0) atomic_store(&g->bad, 1);
  run = atomic_fetch_add(&g->runs, 1) + 1;
  if (run == 1 && atomic_load(&g->hold))
    while (!atomic_load(&g->release)) sleep_us(1000);
  for (csn_group_member *m = batch; m != NULL; m = m->next) {
    gwrite *w = (gwrite *)(void *)m;
    if (w->ran) atomic_store(&g->bad, 2); /* taken twice */
    w->ran = 1;
    w->batch = run;
    if (pthread_equal(w->thread, pthread_self())) leader_in = 1;
    if (run == 2 && atomic_load(&g->hold)) {
      int k = atomic_fetch_add(&g->norder, 1);
      if (k < 8) g->order[k] = w->seq;
    }
    n++;
  }
  /* The leader is one of the batch's own writers. */
  if (!leader_in) atomic_store(&g->bad, 3);
  if (g->delay_us > 0) sleep_us(g->delay_us);
  atomic_fetch_add(&g->taken, n);
  if (n > atomic_load(&g->biggest)) atomic_store(&g->biggest, n);
  atomic_fetch_sub(&g->in_run, 1);
}

typedef struct gthread {
  csn_group *grp;
  gstate *g;
  int writes;
  int seq0;
  int late; /* a write returned before a run took it */
} gthread;

static void *group_writer(void *arg) {
  gthread *t = arg;
  for (int i = 0; i < t->writes; i++) {
    gwrite w;
    memset(&w, 0, sizeof w);
    w.thread = pthread_self();
    w.seq = t->seq0 + i;
    csn_group_join(t->grp, &w.member);
    /* Returned: the run that took it has finished. */
    if (!w.ran || atomic_load(&t->g->runs) < w.batch) t->late = 1;
  }
  return NULL;
}

static void start_writer(gthread *t, pthread_t *th, csn_group *grp,
                         gstate *g, int writes, int seq0) {
  *t = (gthread){.grp = grp, .g = g, .writes = writes, .seq0 = seq0};
  assert_int_equal(pthread_create(th, NULL, group_writer, t), 0);
}

/* Join n writers; none may have returned before its write's run ended. */
static void join_writers(gthread *t, pthread_t *th, int n) {
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(t[i].late, 0);
  }
}

/* Eight threads, 40 writes each, runs of 2 ms: every write is taken by
 * exactly one run, returns only after it, runs never overlap, each run is
 * led by one of its own writers, and writes that wait share runs. */
static void kit_group_batches_concurrent_writes(void **state) {
  gstate g;
  csn_group *grp = NULL;
  gthread t[8];
  pthread_t th[8];
  (void)state;
  memset(&g, 0, sizeof g);
  g.delay_us = 2000;
  assert_int_equal(csn_group_new(&grp, group_run, &g), CSN_OK);
  for (int i = 0; i < 8; i++)
    start_writer(&t[i], &th[i], grp, &g, 40, i * 1000);
  join_writers(t, th, 8);
  assert_int_equal(atomic_load(&g.bad), 0);
  assert_int_equal(atomic_load(&g.taken), 320);
  /* 320 writes in at most 320 runs; with eight writers and 2 ms runs they
   * must have shared: far fewer runs than writes. */
  assert_true(atomic_load(&g.biggest) > 1);
  assert_true(atomic_load(&g.runs) < 160);
  csn_group_free(grp);
}

/* A writer that joins while a run is in flight waits for the next batch,
 * and a batch keeps arrival order: writer 1 leads a run that waits; 2, 3
 * and 4 join in that order meanwhile; the second run sees 2, 3, 4. */
static void kit_group_keeps_arrival_order(void **state) {
  gstate g;
  csn_group *grp = NULL;
  gthread t[4];
  pthread_t th[4];
  (void)state;
  memset(&g, 0, sizeof g);
  atomic_store(&g.hold, 1);
  assert_int_equal(csn_group_new(&grp, group_run, &g), CSN_OK);
  for (int i = 0; i < 4; i++) {
    start_writer(&t[i], &th[i], grp, &g, 1, i + 1);
    /* The first must be leading before the others come; each of them
     * queued before the next (generous: a late one only makes the test
     * fail, never pass wrongly). */
    if (i == 0)
      while (atomic_load(&g.runs) == 0) sleep_us(1000);
    else
      sleep_us(50000);
  }
  atomic_store(&g.release, 1);
  join_writers(t, th, 4);
  assert_int_equal(atomic_load(&g.bad), 0);
  assert_int_equal(atomic_load(&g.runs), 2);
  assert_int_equal(atomic_load(&g.norder), 3);
  assert_int_equal(g.order[0], 2);
  assert_int_equal(g.order[1], 3);
  assert_int_equal(g.order[2], 4);
  csn_group_free(grp);
}

static void kit_group_rejects_bad_arguments(void **state) {
  csn_group *grp = (csn_group *)(void *)&grp;
  (void)state;
  assert_int_equal(csn_group_new(NULL, group_run, NULL), CSN_EINVAL);
  assert_int_equal(csn_group_new(&grp, NULL, NULL), CSN_EINVAL);
  assert_null(grp);
  csn_group_free(NULL);
}

/* A long sweep sees the stop request and returns early. */
static void long_sweep(csn_sweeper *sw, void *ud) {
  sweep_count *c = ud;
  count_sweep(sw, ud);
  while (!csn_sweeper_stopping(sw)) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  pthread_mutex_lock(&c->lock);
  c->runs = 100;
  pthread_mutex_unlock(&c->lock);
}

static void kit_sweeper_stop_interrupts_a_long_sweep(void **state) {
  sweep_count c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  csn_sweeper *sw = NULL;
  (void)state;
  assert_int_equal(csn_sweeper_start(&sw, 3600000, 0, long_sweep, &c),
                   CSN_OK);
  csn_sweeper_wake(sw);
  wait_runs(&c, 1);
  csn_sweeper_stop(sw);
  assert_int_equal(c.runs, 100);
}

static void kit_sweeper_rejects_bad_arguments(void **state) {
  sweep_count c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  csn_sweeper *sw = (csn_sweeper *)&c;
  (void)state;
  assert_int_equal(csn_sweeper_start(&sw, 0, 0, count_sweep, &c), CSN_EINVAL);
  assert_null(sw);
  assert_int_equal(csn_sweeper_start(&sw, 10, 101, count_sweep, &c),
                   CSN_EINVAL);
  assert_int_equal(csn_sweeper_start(&sw, 10, 0, NULL, &c), CSN_EINVAL);
  assert_int_equal(csn_sweeper_start(NULL, 10, 0, count_sweep, &c),
                   CSN_EINVAL);
}

static void kit_url_redact(void **state) {
  (void)state;
  char b[128];
  assert_string_equal(csn_url_redact("redis://:pw@h:6379/0", b, sizeof b),
                      "redis://:***@h:6379/0");
  assert_string_equal(csn_url_redact("redis://u:p@w@h/1?prefix=a", b, sizeof b),
                      "redis://u:***@h/1?prefix=a");
  assert_string_equal(csn_url_redact("redis://:a/b@c@h/2", b, sizeof b),
                      "redis://:***@h/2");
  assert_string_equal(csn_url_redact("postgres://u:pa?ss@h/db", b, sizeof b),
                      "postgres://u:***@h/db");
  assert_string_equal(
      csn_url_redact("postgres://h/db?sslpassword=x&API_KEY=y&sslmode=z", b,
                     sizeof b),
      "postgres://h/db?sslpassword=***&API_KEY=***&sslmode=z");
  assert_string_equal(csn_url_redact("redis://user@h", b, sizeof b),
                      "redis://user@h");
  assert_string_equal(
      csn_url_redact("unix:///run/r.sock?db=1&password=x%40y&Secret=z", b,
                     sizeof b),
      "unix:///run/r.sock?db=1&password=***&Secret=***");
  assert_string_equal(csn_url_redact("file:///d?secret=s&ttl=5", b, sizeof b),
                      "file:///d?secret=***&ttl=5");
  assert_string_equal(csn_url_redact("memory://", b, sizeof b), "memory://");
  assert_string_equal(csn_url_redact("no scheme:x@y", b, sizeof b),
                      "no scheme:x@y");
  /* Cut short, never overrun, never the password. */
  assert_string_equal(csn_url_redact("redis://:pw@h", b, 12), "redis://:**");
  assert_string_equal(csn_url_redact("redis://:pw@h", b, 1), "");
  assert_null(csn_url_redact("x", NULL, 0));
}

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */
/* ---------------------------------------------------------------------- */

static void kit_helpers(void **state) {
  (void)state;
  char *d = csn_strdup("abc");
  assert_string_equal(d, "abc");
  csn_free(d);
  assert_null(csn_strdup(NULL));
  csn_free_secret(csn_strdup("hunter2"));
  csn_free_secret(NULL);
  int64_t wall = csn_now_ms();
  assert_true(wall > INT64_C(1577836800000)); /* after 2020 */
  int64_t a = csn_mono_ms();
  struct timespec ts = {0, 20 * 1000000L};
  nanosleep(&ts, NULL);
  int64_t b = csn_mono_ms();
  assert_true(b - a >= 19 && b - a < 5000);
}

/* ---------------------------------------------------------------------- */
/* csn_pool_*, on a fake client                                           */
/* ---------------------------------------------------------------------- */

typedef struct fake_conn {
  int id;
  int dead; /* idle_ok() says no */
  int err;  /* usable() says no */
} fake_conn;

typedef struct fake_client {
  csn_store st; /* receives the pool's messages */
  pthread_mutex_t mu;
  int connects, closes, idle_checks, fail_connect;
  int busy, max_busy; /* connections inside an op at once */
  int calls;          /* op calls */
  int last_reused;
  fake_conn *last;
} fake_client;

static void fake_init(fake_client *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
}

static int fake_connect(void *ud, void **handle) {
  fake_client *f = ud;
  pthread_mutex_lock(&f->mu);
  if (f->fail_connect) {
    pthread_mutex_unlock(&f->mu);
    return csn_store_set_error(&f->st, CSN_EIO, "fake: connection refused");
  }
  fake_conn *c = csn_malloc(sizeof *c);
  assert_non_null(c);
  memset(c, 0, sizeof *c);
  c->id = ++f->connects;
  pthread_mutex_unlock(&f->mu);
  *handle = c;
  return CSN_OK;
}

static int fake_idle_ok(void *ud, void *handle) {
  fake_client *f = ud;
  pthread_mutex_lock(&f->mu);
  f->idle_checks++;
  pthread_mutex_unlock(&f->mu);
  return !((fake_conn *)handle)->dead;
}

static int fake_usable(void *ud, void *handle) {
  (void)ud;
  return !((fake_conn *)handle)->err;
}

static void fake_close(void *ud, void *handle) {
  fake_client *f = ud;
  assert_non_null(handle);
  pthread_mutex_lock(&f->mu);
  f->closes++;
  pthread_mutex_unlock(&f->mu);
  csn_free(handle);
}

static const csn_pool_methods fake_methods = {
    .connect = fake_connect,
    .idle_ok = fake_idle_ok,
    .usable = fake_usable,
    .close = fake_close,
};

static csn_pool *fake_pool(fake_client *f, unsigned max, int64_t wait_ms,
                           int64_t check_after_ms) {
  csn_pool *p = NULL;
  assert_int_equal(csn_pool_new(&p, &fake_methods, f, &f->st, "fake 10.0.0.1:7",
                                max, wait_ms, check_after_ms),
                   CSN_OK);
  assert_non_null(p);
  return p;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* What an op does, chosen by its arg. */
enum {
  OP_OK,        /* nothing */
  OP_BROKEN,    /* marks the connection broken */
  OP_ERR,       /* leaves it in the client's error state (usable: no) */
  OP_STALE,     /* on a reused connection, fails as found dead: stale and
                   broken; works on a new one */
  OP_STALE_ALL, /* claims stale even on a new connection */
  OP_HOLD       /* holds the connection a while (threads) */
};

static int fake_op(void *ud, csn_pool_conn *c, void *arg) {
  fake_client *f = ud;
  int what = *(int *)arg;
  assert_non_null(c->handle);
  pthread_mutex_lock(&f->mu);
  f->calls++;
  f->last = c->handle;
  f->last_reused = c->reused;
  if (++f->busy > f->max_busy) f->max_busy = f->busy;
  pthread_mutex_unlock(&f->mu);
  int rc = CSN_OK;
  switch (what) {
  case OP_BROKEN:
    c->broken = 1;
    break;
  case OP_ERR:
    ((fake_conn *)c->handle)->err = 1;
    break;
  case OP_STALE:
    if (!c->reused) break; /* a new connection works */
    c->stale = 1;
    c->broken = 1;
    rc = csn_store_set_error(&f->st, CSN_EIO, "fake: connection reset");
    break;
  case OP_STALE_ALL:
    c->stale = 1;
    rc = csn_store_set_error(&f->st, CSN_EIO, "fake: connection reset");
    break;
  case OP_HOLD:
    sleep_ms(1);
    break;
  }
  pthread_mutex_lock(&f->mu);
  f->busy--;
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int run(csn_pool *p, int what, int idempotent) {
  return csn_pool_run(p, fake_op, &what, idempotent);
}

typedef struct pool_worker {
  csn_pool *p;
  int failures;
} pool_worker;

static void *pool_thread(void *arg) {
  pool_worker *w = arg;
  for (int i = 0; i < 40; i++)
    if (run(w->p, OP_HOLD, i % 2) != CSN_OK) w->failures++;
  return NULL;
}

static void kit_pool_bounds_connections_under_threads(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 3, 10000, 0);
  pthread_t t[8];
  pool_worker w[8];
  for (int i = 0; i < 8; i++) {
    w[i].p = p;
    w[i].failures = 0;
    assert_int_equal(pthread_create(&t[i], NULL, pool_thread, &w[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(w[i].failures, 0);
  }
  assert_int_equal(f.calls, 8 * 40);
  assert_true(f.max_busy >= 1 && f.max_busy <= 3);
  assert_true(f.connects >= 1 && f.connects <= 3);
  assert_int_equal(f.closes, 0);
  csn_pool_free(p);
  assert_int_equal(f.closes, f.connects); /* free closes every idle one */
}

/* An op that runs another operation on the same pool: with max 1, the
 * inner one finds every connection busy. */
typedef struct nested {
  csn_pool *p;
  int inner_rc;
} nested;

static int nested_op(void *ud, csn_pool_conn *c, void *arg) {
  nested *n = arg;
  (void)ud;
  (void)c;
  n->inner_rc = run(n->p, OP_OK, 1);
  return CSN_OK;
}

static void kit_pool_busy_wait_times_out(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 1, 60, 100);
  nested n = {p, 0};
  int64_t t0 = csn_mono_ms();
  assert_int_equal(csn_pool_run(p, nested_op, &n, 1), CSN_OK);
  int64_t waited = csn_mono_ms() - t0;
  assert_int_equal(n.inner_rc, CSN_ETIMEDOUT);
  assert_true(waited >= 55 && waited < 5000);
  assert_string_equal(csn_store_errmsg(&f.st),
                      "fake 10.0.0.1:7: all 1 connections busy for 60 ms "
                      "(raise pool=)");
  assert_int_equal(f.connects, 1);
  /* The slot came back: the next operation reuses the connection. */
  assert_int_equal(run(p, OP_OK, 1), CSN_OK);
  assert_int_equal(f.connects, 1);
  assert_int_equal(f.last_reused, 1);
  csn_pool_free(p);
  assert_int_equal(f.closes, 1);
}

static void kit_pool_failed_connect_frees_its_slot(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 1, 10000, 100);
  f.fail_connect = 1;
  assert_int_equal(run(p, OP_OK, 1), CSN_EIO);
  assert_string_equal(csn_store_errmsg(&f.st), "fake: connection refused");
  assert_int_equal(f.calls, 0); /* the op never ran */
  f.fail_connect = 0;
  int64_t t0 = csn_mono_ms();
  assert_int_equal(run(p, OP_OK, 1), CSN_OK); /* no wait for the slot */
  assert_true(csn_mono_ms() - t0 < 5000);
  assert_int_equal(f.connects, 1);
  csn_pool_free(p);
  assert_int_equal(f.closes, 1);
}

static void kit_pool_drops_broken_connections(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 2, 1000, 100);
  assert_int_equal(run(p, OP_BROKEN, 1), CSN_OK);
  assert_int_equal(f.connects, 1);
  assert_int_equal(f.closes, 1); /* closed, not given back */
  assert_int_equal(run(p, OP_ERR, 1), CSN_OK);
  assert_int_equal(f.last_reused, 0);
  assert_int_equal(f.connects, 2);
  assert_int_equal(f.closes, 2); /* usable() said no */
  assert_int_equal(run(p, OP_OK, 1), CSN_OK);
  assert_int_equal(f.last_reused, 0);
  fake_conn *kept = f.last;
  assert_int_equal(f.connects, 3);
  assert_int_equal(f.closes, 2);
  assert_int_equal(run(p, OP_OK, 1), CSN_OK); /* a good one is reused */
  assert_int_equal(f.last_reused, 1);
  assert_ptr_equal(f.last, kept);
  assert_int_equal(f.connects, 3);
  csn_pool_free(p);
  assert_int_equal(f.closes, 3);
}

static void kit_pool_checks_idle_connections(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 2, 1000, 80);
  assert_int_equal(run(p, OP_OK, 1), CSN_OK); /* connects */
  assert_int_equal(f.idle_checks, 0);
  /* Idempotent, idle for less than check_after_ms: not checked. */
  assert_int_equal(run(p, OP_OK, 1), CSN_OK);
  assert_int_equal(f.last_reused, 1);
  assert_int_equal(f.idle_checks, 0);
  /* Not idempotent: always checked. */
  assert_int_equal(run(p, OP_OK, 0), CSN_OK);
  assert_int_equal(f.last_reused, 1);
  assert_int_equal(f.idle_checks, 1);
  /* Idempotent after check_after_ms idle: checked. */
  sleep_ms(100);
  assert_int_equal(run(p, OP_OK, 1), CSN_OK);
  assert_int_equal(f.last_reused, 1);
  assert_int_equal(f.idle_checks, 2);
  /* A dead idle one is closed and replaced before the op sees it. */
  f.last->dead = 1;
  assert_int_equal(run(p, OP_OK, 0), CSN_OK);
  assert_int_equal(f.idle_checks, 3);
  assert_int_equal(f.last_reused, 0);
  assert_int_equal(f.last->id, 2);
  assert_int_equal(f.connects, 2);
  assert_int_equal(f.closes, 1);
  assert_int_equal(f.calls, 5);
  csn_pool_free(p);
  assert_int_equal(f.closes, 2);
}

static void kit_pool_retries_stale_idempotent_once(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 2, 1000, 100000);
  assert_int_equal(run(p, OP_OK, 1), CSN_OK);
  f.calls = 0;
  /* Reused (unchecked: idle briefly), found dead: runs again, fresh. */
  assert_int_equal(run(p, OP_STALE, 1), CSN_OK);
  assert_int_equal(f.calls, 2);
  assert_int_equal(f.last_reused, 0);
  assert_int_equal(f.connects, 2);
  assert_int_equal(f.closes, 1);
  /* Stale again on the retry: no third attempt. */
  f.calls = 0;
  assert_int_equal(run(p, OP_STALE_ALL, 1), CSN_EIO);
  assert_int_equal(f.calls, 2);
  assert_int_equal(f.last_reused, 0);
  /* The retry never takes an idle connection: it replaced the one the
   * first attempt gave back. */
  assert_int_equal(f.connects, 3);
  assert_int_equal(f.closes, 2);
  csn_pool_free(p);
  assert_int_equal(f.closes, 3);
}

static void kit_pool_never_replays_non_idempotent(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 2, 1000, 100000);
  assert_int_equal(run(p, OP_OK, 1), CSN_OK);
  f.calls = 0;
  assert_int_equal(run(p, OP_STALE, 0), CSN_EIO);
  assert_string_equal(csn_store_errmsg(&f.st), "fake: connection reset");
  assert_int_equal(f.calls, 1);
  assert_int_equal(f.last_reused, 1);
  assert_int_equal(f.connects, 1);
  assert_int_equal(f.closes, 1); /* broken: dropped */
  csn_pool_free(p);
  assert_int_equal(f.closes, f.connects);
}

static void kit_pool_free_closes_every_idle_connection(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = fake_pool(&f, 4, 1000, 100);
  /* Two at once (nested), both given back. */
  nested n2 = {p, 0};
  assert_int_equal(csn_pool_run(p, nested_op, &n2, 1), CSN_OK);
  assert_int_equal(n2.inner_rc, CSN_OK);
  assert_int_equal(csn_pool_run(p, nested_op, &n2, 1), CSN_OK);
  assert_int_equal(f.connects, 2);
  assert_int_equal(f.closes, 0);
  csn_pool_free(p);
  assert_int_equal(f.closes, 2);
  csn_pool_free(NULL);
}

static void kit_pool_rejects_bad_arguments(void **state) {
  (void)state;
  fake_client f;
  fake_init(&f);
  csn_pool *p = (csn_pool *)&f;
  assert_int_equal(csn_pool_new(&p, &fake_methods, &f, &f.st, "x", 0, 1, 1),
                   CSN_EINVAL);
  assert_null(p);
  assert_int_equal(csn_pool_new(&p, &fake_methods, &f, &f.st, "x", 1, -1, 1),
                   CSN_EINVAL);
  assert_int_equal(csn_pool_new(&p, &fake_methods, &f, &f.st, NULL, 1, 1, 1),
                   CSN_EINVAL);
  assert_int_equal(csn_pool_new(&p, NULL, &f, &f.st, "x", 1, 1, 1),
                   CSN_EINVAL);
  csn_pool_methods m = fake_methods;
  m.connect = NULL;
  assert_int_equal(csn_pool_new(&p, &m, &f, &f.st, "x", 1, 1, 1), CSN_EINVAL);
  m = fake_methods;
  m.usable = NULL; /* optional */
  assert_int_equal(csn_pool_new(&p, &m, &f, &f.st, "x", 1, 1, 1), CSN_OK);
  assert_int_equal(csn_pool_run(p, NULL, NULL, 1), CSN_EINVAL);
  csn_pool_free(p);
  assert_int_equal(f.connects, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kit_splice_keeps_every_other_byte),
      cmocka_unit_test(kit_splice_adds_a_missing_cookie_first),
      cmocka_unit_test(kit_splice_rejects_bad_input),
      cmocka_unit_test(kit_url_split),
      cmocka_unit_test(kit_url_parse_query),
      cmocka_unit_test(kit_url_partition),
      cmocka_unit_test(kit_url_redact),
      cmocka_unit_test(kit_store_fail_fills_both),
      cmocka_unit_test(kit_sweeper_runs_and_stops),
      cmocka_unit_test(kit_sweeper_stop_interrupts_a_long_sweep),
      cmocka_unit_test(kit_sweeper_rejects_bad_arguments),
      cmocka_unit_test(kit_group_batches_concurrent_writes),
      cmocka_unit_test(kit_group_keeps_arrival_order),
      cmocka_unit_test(kit_group_rejects_bad_arguments),
      cmocka_unit_test(kit_helpers),
      cmocka_unit_test(kit_pool_bounds_connections_under_threads),
      cmocka_unit_test(kit_pool_busy_wait_times_out),
      cmocka_unit_test(kit_pool_failed_connect_frees_its_slot),
      cmocka_unit_test(kit_pool_drops_broken_connections),
      cmocka_unit_test(kit_pool_checks_idle_connections),
      cmocka_unit_test(kit_pool_retries_stale_idempotent_once),
      cmocka_unit_test(kit_pool_never_replays_non_idempotent),
      cmocka_unit_test(kit_pool_free_closes_every_idle_connection),
      cmocka_unit_test(kit_pool_rejects_bad_arguments),
  };
  return cmocka_run_group_tests_name("unit_store_kit", tests, NULL, NULL);
}
