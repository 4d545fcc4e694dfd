/* test_store_example.c - the worked example store (examples/store_example.c)
 * tested as a store author outside this tree would test theirs: only
 * public headers, the shared conformance suite, and the middleware driven
 * without HTTP to show that the core merges concurrent requests through
 * the store's compare-and-set.
 *
 * The first argument picks a group (all by default), so that each is its
 * own CTest test: store_example_conformance, ..._url, ..._e2e, ... */
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

#include <csn/csn.h>
#include <csn/csn_store.h>

#include "store_conformance.h"
#include "test_clock.h"
#include "request_rig.h"
#include "store_example.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Conformance --------------------------------------------------------- */

static csn_store *conf_open(void *ud) {
  csn_store *st = NULL;
  char err[256];
  /* Through the registry, as an application opens it. */
  if (csn_store_open((const char *)ud, &st, err, sizeof err) != CSN_OK)
    return NULL;
  return st;
}

static int run_conformance(const char *group, const char *url) {
  csn_conformance c = {.open = conf_open, .ud = (void *)url, .cas = 1};
  return csn_conformance_run(group, &c);
}

/* ---- URL and opener errors ----------------------------------------------- */

static void test_url_good(void **state) {
  const char *good[] = {"listmap://", "listmap://?", "listmap://?sweep=0",
                        "listmap://?sweep=250"};
  size_t i;
  (void)state;
  for (i = 0; i < COUNT(good); i++) {
    csn_store *st = NULL;
    char err[256] = "";
    assert_int_equal(csn_store_open(good[i], &st, err, sizeof err), CSN_OK);
    assert_non_null(st);
    assert_string_equal(csn_store_name(st), "listmap");
    assert_true(csn_store_has_cas(st));
    csn_store_free(st);
  }
  /* errbuf is optional. */
  {
    csn_store *st = NULL;
    assert_int_equal(example_store_open("listmap://", &st, NULL, 0), CSN_OK);
    csn_store_free(st);
  }
}

static void test_url_bad(void **state) {
  const char *bad[] = {
      "listmap://x",           "listmap://?sweep=-1",
      "listmap://?sweep=abc",  "listmap://?sweep=99999999999999",
      "listmap://?nope=1",     "listmap://?sweep=1&sweep=2",
      "listmap://?sweep",      "listmap://?sweep=1&",
      "memory://",             "listmap:/",
  };
  size_t i;
  (void)state;
  for (i = 0; i < COUNT(bad); i++) {
    static char junk;
    csn_store *st = (csn_store *)(void *)&junk; /* the opener must clear it */
    char err[256] = "";
    int rc = example_store_open(bad[i], &st, err, sizeof err);
    if (rc != CSN_EINVAL)
      print_error("%s: %d (%s)\n", bad[i], rc, err);
    assert_int_equal(rc, CSN_EINVAL);
    assert_null(st);
    /* One message, in both places, naming the store. */
    assert_true(strncmp(err, "listmap:", 8) == 0);
    assert_string_equal(csn_last_error(), err);
  }
  assert_int_equal(example_store_open("listmap://", NULL, NULL, 0),
                   CSN_EINVAL);
  assert_int_equal(example_store_open(NULL, &(csn_store *){NULL}, NULL, 0),
                   CSN_EINVAL);
}

/* A value may be a secret in other stores' URLs: it is never echoed. */
static void test_url_no_echo(void **state) {
  csn_store *st = NULL;
  char err[256] = "";
  (void)state;
  assert_int_equal(
      example_store_open("listmap://?password=hunter2", &st, err, sizeof err),
      CSN_EINVAL);
  assert_null(strstr(err, "hunter2"));
  assert_null(strstr(csn_last_error(), "hunter2"));
  assert_int_equal(
      example_store_open("listmap://?sweep=hunter2", &st, err, sizeof err),
      CSN_EINVAL);
  assert_null(strstr(err, "hunter2"));
}

/* ---- Method errors carry a message --------------------------------------- */

static const char *const REC =
    "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,"
    "\"httpOnly\":true,\"path\":\"/\"},\"n\":0.1}";

static void test_touch_errors(void **state) {
  csn_store *st = NULL;
  const char *nocookie = "{\"a\":1}", *junk = "not json at all";
  char *json = NULL;
  size_t len = 0;
  (void)state;
  assert_int_equal(csn_store_open("listmap://?sweep=0", &st, NULL, 0),
                   CSN_OK);
  assert_int_equal(
      csn_store_set(st, "e1", REC, strlen(REC), CSN_TIME_NONE), CSN_OK);
  /* A new record without a cookie cannot be spliced in. */
  assert_int_equal(csn_store_touch(st, "e1", nocookie, strlen(nocookie),
                                   CSN_TIME_NONE),
                   CSN_EINVAL);
  assert_non_null(strstr(csn_store_errmsg(st), "cookie"));
  assert_non_null(strstr(csn_last_error(), "listmap touch"));
  /* A stored record that is not an object is reported, and kept. */
  assert_int_equal(
      csn_store_set(st, "e2", junk, strlen(junk), CSN_TIME_NONE), CSN_OK);
  assert_int_equal(
      csn_store_touch(st, "e2", REC, strlen(REC), CSN_TIME_NONE),
      CSN_ECORRUPT);
  assert_non_null(strstr(csn_store_errmsg(st), "not an object"));
  assert_int_equal(csn_store_get(st, "e2", &json, &len), CSN_OK);
  assert_int_equal(len, strlen(junk));
  assert_memory_equal(json, junk, len);
  csn_free(json);
  csn_store_free(st);
}

/* ---- The sweeper --------------------------------------------------------- */

/* An expired record disappears without anyone reading it: prune() then
 * finds nothing left to remove. Retried rather than timed, so a slow
 * machine only makes it take longer (the store sweeps every millisecond). */
static void test_sweeper_removes(void **state) {
  csn_store *st = NULL;
  int attempt, swept = 0;
  (void)state;
  assert_int_equal(csn_store_open("listmap://?sweep=1", &st, NULL, 0),
                   CSN_OK);
  for (attempt = 0; attempt < 200 && !swept; attempt++) {
    size_t removed = 1;
    assert_int_equal(csn_store_set(st, "old", REC, strlen(REC),
                                   wall_ms() - 1000),
                     CSN_OK);
    sleep_ms(20);
    assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
    swept = removed == 0;
  }
  assert_true(swept);
  /* Without the thread, prune() is what removes it. */
  csn_store_free(st);
  assert_int_equal(csn_store_open("listmap://?sweep=0", &st, NULL, 0),
                   CSN_OK);
  {
    size_t removed = 0;
    assert_int_equal(csn_store_set(st, "old", REC, strlen(REC),
                                   wall_ms() - 1000),
                     CSN_OK);
    sleep_ms(20);
    assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
    assert_int_equal(removed, 1);
  }
  csn_store_free(st);
}

/* A long interval must not hold up close(): the kit's stop wakes it. */
static void test_sweeper_close(void **state) {
  csn_store *st = NULL;
  (void)state;
  assert_int_equal(csn_store_open("listmap://?sweep=31536000000", &st, NULL,
                                  0),
                   CSN_OK);
  csn_store_free(st);
  csn_store_free(NULL);
}

/* ---- End to end: the middleware on this store ---------------------------- */

static const char *const SECRETS[] = {"store example secret"};

typedef struct e2e {
  csn_store *st;
  csn_ctx *ctx;
  char cookie[512]; /* what the browser sends back */
  char sid[CSN_ID_MAX + 1];
} e2e;


/* A context on a fresh listmap store and one session in it. */
static void e2e_open(e2e *f, int last_write_wins) {
  csn_options o;
  csn_request *r;
  char err[256], *sc = NULL;
  memset(f, 0, sizeof *f);
  assert_int_equal(csn_store_open("listmap://", &f->st, err, sizeof err),
                   CSN_OK);
  csn_options_init(&o);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  o.cookie.max_age_ms = 3600000;
  o.store = f->st;
  o.last_write_wins = last_write_wins;
  assert_int_equal(csn_ctx_new(&f->ctx, &o, err, sizeof err), CSN_OK);

  r = rig_begin(f->ctx, NULL);
  assert_non_null(csn_request_session_id(r));
  snprintf(f->sid, sizeof f->sid, "%s", csn_request_session_id(r));
  assert_int_equal(csn_session_set_str(csn_request_session(r), "user", "ann"),
                   CSN_OK);
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  /* "connect.sid=s%3A...; Path=/; ..." -> "connect.sid=s%3A..." */
  rig_cookie_of(sc, f->cookie, sizeof f->cookie);
  csn_free(sc);
}

static void e2e_close(e2e *f) {
  csn_ctx_free(f->ctx);
  csn_store_free(f->st); /* borrowed by the context: freed after it */
}

/* Two requests load the same session, each changes its own member, both
 * commit: the second save is a conflict, and the core re-reads the record,
 * applies its own change to it and writes through cas again. */
static void test_e2e_merge(void **state) {
  e2e f;
  csn_request *a, *b, *c;
  int64_t v = 0;
  const char *user = NULL;
  (void)state;
  e2e_open(&f, 0);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  assert_string_equal(csn_request_session_id(a), f.sid);
  assert_string_equal(csn_request_session_id(b), f.sid);
  assert_int_equal(csn_session_set_int(csn_request_session(a), "a", 1),
                   CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(b), "b", 2),
                   CSN_OK);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);

  /* Both members are in the store, and so is the one neither touched. */
  c = rig_begin(f.ctx, f.cookie);
  assert_string_equal(csn_request_session_id(c), f.sid);
  assert_int_equal(csn_session_get_int(csn_request_session(c), "a", &v),
                   CSN_OK);
  assert_int_equal(v, 1);
  assert_int_equal(csn_session_get_int(csn_request_session(c), "b", &v),
                   CSN_OK);
  assert_int_equal(v, 2);
  assert_int_equal(
      csn_session_get_str(csn_request_session(c), "user", &user, NULL),
      CSN_OK);
  assert_string_equal(user, "ann");
  csn_request_free(c);
  e2e_close(&f);
}

/* The control: with last_write_wins the later save overwrites the record,
 * as express-session does, and the first request's change is lost. */
static void test_e2e_last_write_wins(void **state) {
  e2e f;
  csn_request *a, *b;
  char *json = NULL;
  size_t len = 0;
  (void)state;
  e2e_open(&f, 1);
  a = rig_begin(f.ctx, f.cookie);
  b = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_session_set_int(csn_request_session(a), "a", 1),
                   CSN_OK);
  assert_int_equal(csn_session_set_int(csn_request_session(b), "b", 2),
                   CSN_OK);
  assert_int_equal(rig_commit(a, NULL), CSN_OK);
  assert_int_equal(rig_commit(b, NULL), CSN_OK);
  assert_int_equal(csn_store_get(f.st, f.sid, &json, &len), CSN_OK);
  assert_non_null(strstr(json, "\"b\":2"));
  assert_null(strstr(json, "\"a\":1"));
  csn_free(json);
  e2e_close(&f);
}

/* A logout racing a slow request: the slow request's save finds the record
 * gone (cas answers CSN_ENOENT) and does not bring it back. */
static void test_e2e_logout_wins(void **state) {
  e2e f;
  csn_request *slow, *logout;
  char *json = NULL, *sc = NULL;
  size_t len = 0;
  (void)state;
  e2e_open(&f, 0);
  slow = rig_begin(f.ctx, f.cookie);
  logout = rig_begin(f.ctx, f.cookie);
  assert_int_equal(csn_session_destroy(csn_request_session(logout)), CSN_OK);
  assert_int_equal(rig_commit(logout, NULL), CSN_OK);
  assert_int_equal(csn_store_get(f.st, f.sid, &json, &len), CSN_ENOENT);

  assert_int_equal(csn_session_set_int(csn_request_session(slow), "late", 1),
                   CSN_OK);
  assert_int_equal(rig_commit(slow, &sc), CSN_OK);
  assert_null(sc); /* no cookie for a session that no longer exists */
  assert_int_equal(csn_store_get(f.st, f.sid, &json, &len), CSN_ENOENT);
  e2e_close(&f);
}

/* ---- Out of memory ------------------------------------------------------- */

/* Allocations left before the allocator fails; -1: no limit. Installed for
 * the whole program (csn_set_allocator must come first), it only fails
 * while test_oom runs, with no other thread alive. */
static _Atomic long alloc_budget = -1;

static int take(void) {
  long b = atomic_load(&alloc_budget);
  if (b < 0) return 1;
  if (b == 0) return 0;
  atomic_store(&alloc_budget, b - 1);
  return 1;
}
static void *f_malloc(size_t n) { return take() ? malloc(n) : NULL; }
static void *f_calloc(size_t n, size_t m) {
  return take() ? calloc(n, m) : NULL;
}
static void *f_realloc(void *p, size_t n) {
  return take() ? realloc(p, n) : NULL;
}

static void oom_record(int i, char *buf, size_t size) {
  snprintf(buf, size, "%.*s,\"i\":%d}", (int)strlen(REC) - 1, REC, i);
}

static int count_cb(const char *sid, const char *json, size_t len, void *ud) {
  (void)sid, (void)json, (void)len;
  ++*(int *)ud;
  return 0;
}

/* Every method once, enough sets to grow the table twice. Touch and cas
 * write back the same text, so every record keeps its oom_record(). */
#define OOM_RECORDS 40
static int oom_steps(csn_store *st, int *stored) {
  char sid[32], rec[256], *json = NULL;
  size_t len, n;
  int i, rc, seen = 0;
  for (i = 0; i < OOM_RECORDS; i++) {
    snprintf(sid, sizeof sid, "oom-%d", i);
    oom_record(i, rec, sizeof rec);
    if ((rc = csn_store_set(st, sid, rec, strlen(rec), CSN_TIME_NONE)) != 0)
      return rc;
    ++*stored;
  }
  if ((rc = csn_store_get(st, "oom-0", &json, &len)) != CSN_OK) return rc;
  csn_free(json);
  rc = csn_store_touch(st, "oom-1", REC, strlen(REC), CSN_TIME_NONE);
  if (rc != CSN_OK) return rc;
  oom_record(2, rec, sizeof rec);
  rc = csn_store_cas(st, "oom-2", rec, strlen(rec), rec, strlen(rec),
                     CSN_TIME_NONE);
  if (rc != CSN_OK) return rc;
  if ((rc = csn_store_all(st, count_cb, &seen)) != CSN_OK) return rc;
  if ((rc = csn_store_length(st, &n)) != CSN_OK) return rc;
  return csn_store_prune(st, &n);
}

/* Rising budgets: each run fails at a later allocation, until one has
 * enough. Every failure is CSN_ENOMEM with a message, nothing written
 * before it is damaged, and (under ASan or valgrind) nothing leaks. */
static void test_oom(void **state) {
  long budget;
  int done = 0;
  (void)state;
  for (budget = 0; !done && budget < 100000; budget++) {
    csn_store *st = NULL;
    int rc, i, stored = 0;
    atomic_store(&alloc_budget, budget);
    rc = example_store_open("listmap://?sweep=0", &st, NULL, 0);
    if (rc != CSN_OK) {
      atomic_store(&alloc_budget, -1);
      assert_int_equal(rc, CSN_ENOMEM);
      assert_null(st);
      continue;
    }
    rc = oom_steps(st, &stored);
    atomic_store(&alloc_budget, -1);
    if (rc != CSN_OK) {
      if (rc != CSN_ENOMEM)
        print_error("budget %ld: %s\n", budget, csn_last_error());
      assert_int_equal(rc, CSN_ENOMEM);
      assert_true(csn_store_errmsg(st)[0] != '\0');
    }
    done = rc == CSN_OK;
    for (i = 0; i < stored; i++) {
      char sid[32], rec[256], *json = NULL;
      size_t len = 0;
      snprintf(sid, sizeof sid, "oom-%d", i);
      oom_record(i, rec, sizeof rec);
      assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
      assert_int_equal(len, strlen(rec));
      assert_memory_equal(json, rec, len);
      csn_free(json);
    }
    csn_store_free(st);
  }
  assert_true(done);
  print_message("every failure clean up to %ld allocations\n", budget - 1);
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  const struct CMUnitTest url[] = {
      cmocka_unit_test(test_url_good),
      cmocka_unit_test(test_url_bad),
      cmocka_unit_test(test_url_no_echo),
  };
  const struct CMUnitTest errors[] = {
      cmocka_unit_test(test_touch_errors),
  };
  const struct CMUnitTest sweeper[] = {
      cmocka_unit_test(test_sweeper_removes),
      cmocka_unit_test(test_sweeper_close),
  };
  const struct CMUnitTest e2e_tests[] = {
      cmocka_unit_test(test_e2e_merge),
      cmocka_unit_test(test_e2e_last_write_wins),
      cmocka_unit_test(test_e2e_logout_wins),
  };
  const struct CMUnitTest oom[] = {
      cmocka_unit_test(test_oom),
  };
  const csn_allocator failing = {f_malloc, f_calloc, f_realloc, free};
  const char *g = argc > 1 ? argv[1] : "all";
  int all = strcmp(g, "all") == 0, failed = 0, ran = 0;

  /* What an application does once at start-up: the allocator first, then
   * the stores it will open by URL. */
  if (csn_set_allocator(&failing) != CSN_OK) return 1;
  if (csn_store_register("listmap", example_store_open) != CSN_OK) {
    fprintf(stderr, "register: %s\n", csn_last_error());
    return 1;
  }
  if (all || strcmp(g, "conformance") == 0) {
    failed +=
        run_conformance("store_example_conformance", "listmap://?sweep=0");
    ran = 1;
  }
  /* Again with the sweeper running every millisecond beside the suite's
   * concurrent writers. */
  if (all || strcmp(g, "conformance_sweeping") == 0) {
    failed += run_conformance("store_example_conformance_sweeping",
                              "listmap://?sweep=1");
    ran = 1;
  }
#define GROUP(name, arr)                                                      \
  if (all || strcmp(g, #name) == 0) {                                         \
    failed += _cmocka_run_group_tests("store_example_" #name, arr,            \
                                      COUNT(arr), NULL, NULL);                \
    ran = 1;                                                                  \
  }
  GROUP(url, url)
  GROUP(errors, errors)
  GROUP(sweeper, sweeper)
  GROUP(e2e, e2e_tests)
  GROUP(oom, oom)
#undef GROUP
  if (!ran) {
    fprintf(stderr, "unknown group '%s'\n", g);
    return 2;
  }
  return failed != 0;
}
