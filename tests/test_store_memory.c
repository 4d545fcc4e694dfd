/* test_store_memory.c - the MemoryStore and the store layer.
 *
 * One program, several ctest tests: the first argument picks the group
 * (conformance, expiry, prune, evict, url, errors; compare-and-set is in
 * expiry, with the other record semantics). Expiry is driven by a
 * fake clock, never by sleeping; only the background-sweep test waits, and
 * it polls with a bound instead of sleeping a fixed time. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_setaffinity */
#endif
#include <pthread.h>
#include <sched.h>
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

#include "csn_int.h"
#include "store_conformance.h"
#include "test_clock.h"

/* ------------------------------------------------------------------------ */
/* A fake clock                                                             */
/* ------------------------------------------------------------------------ */

#define T0 INT64_C(1700000000000)

static _Atomic int64_t fake_ms = T0;

static int64_t fake_clock(void *ud) {
  (void)ud;
  return atomic_load(&fake_ms);
}

static csn_store *open_fake(size_t max, int64_t prune_ms) {
  csn_memory_options o;
  csn_store *st = NULL;
  memset(&o, 0, sizeof o);
  o.max_entries = max;
  o.prune_interval_ms = prune_ms;
  o.clock = fake_clock;
  assert_int_equal(csn_store_memory_new(&o, &st), CSN_OK);
  assert_non_null(st);
  return st;
}

static void put(csn_store *st, const char *sid, int64_t exp) {
  char rec[128];
  snprintf(rec, sizeof rec, "{\"cookie\":{},\"sid\":\"%s\"}", sid);
  assert_int_equal(csn_store_set(st, sid, rec, strlen(rec), exp), CSN_OK);
}

static int present(csn_store *st, const char *sid) {
  char *json = NULL;
  size_t len;
  int rc = csn_store_get(st, sid, &json, &len);
  csn_free(json);
  assert_true(rc == CSN_OK || rc == CSN_ENOENT);
  return rc == CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Conformance, on the fake clock and on the system clock                   */
/* ------------------------------------------------------------------------ */

static csn_store *conf_open_fake(void *ud) {
  csn_memory_options o;
  csn_store *st = NULL;
  (void)ud;
  memset(&o, 0, sizeof o);
  o.clock = fake_clock;
  return csn_store_memory_new(&o, &st) == CSN_OK ? st : NULL;
}

static int64_t conf_now(void *ud) { return fake_clock(ud); }

static void conf_advance(void *ud, int64_t ms) {
  (void)ud;
  atomic_fetch_add(&fake_ms, ms);
}

static csn_store *conf_open_url(void *ud) {
  csn_store *st = NULL;
  char err[128];
  return csn_store_open(ud, &st, err, sizeof err) == CSN_OK ? st : NULL;
}

static int run_conformance(void) {
  csn_conformance fake = {.open = conf_open_fake,
                          .now = conf_now,
                          .advance = conf_advance,
                          .cas = 1,
                          .all_expired = 1};
  csn_conformance real = {.open = conf_open_url,
                          .ud = (void *)"memory://",
                          .cas = 1,
                          .all_expired = 1};
  int failed = csn_conformance_run("store_memory_conformance_fake_clock", &fake);
  failed += csn_conformance_run("store_memory_conformance_system_clock", &real);
  return failed;
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */
/* ------------------------------------------------------------------------ */

static void test_expiry_fake_clock(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t now = atomic_load(&fake_ms);
  size_t n = 99, removed = 99;
  (void)state;
  put(st, "soon", now + 1000);
  put(st, "later", now + 5000);
  put(st, "never", CSN_TIME_NONE);
  assert_true(present(st, "soon"));
  atomic_fetch_add(&fake_ms, 999);
  assert_true(present(st, "soon")); /* 1 ms left */
  atomic_fetch_add(&fake_ms, 1);
  assert_false(present(st, "soon")); /* expires <= now: gone */
  assert_int_equal(csn__store_memory_raw_count(st), 2); /* removed on read */
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 2);
  atomic_fetch_add(&fake_ms, 10000);
  assert_int_equal(csn__store_memory_raw_count(st), 2); /* nothing swept */
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 1);
  assert_int_equal(csn__store_memory_raw_count(st), 1);
  assert_true(present(st, "never"));
  csn_store_free(st);
}

/* An id that expired while other ids follow it in its hash chain: every
 * method must see it as gone, never the next entry of the chain (mt_lock()
 * once returned that one, so a get of an expired session could hand out
 * another session's record). 300 short-lived ids go in first and 3,000
 * long-lived ones after them, so most short ones have a successor in their
 * chain; the shard sweep on insert cannot have removed them yet, since
 * they are still live then. */
/* n_short ids "<s>-NNNN" expiring at short_exp, then 10 times as many
 * "<l>-NNNN" expiring at now + 100000. */
static void fill_chains(csn_store *st, const char *s, const char *l,
                        int n_short, int64_t short_exp, int64_t now) {
  char sid[32];
  for (int i = 0; i < n_short; i++) {
    snprintf(sid, sizeof sid, "%s-%04d", s, i);
    put(st, sid, short_exp);
  }
  for (int i = 0; i < 10 * n_short; i++) {
    snprintf(sid, sizeof sid, "%s-%04d", l, i);
    put(st, sid, now + 100000);
  }
}

static void test_expired_in_chain(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t now = atomic_load(&fake_ms);
  char sid[32];
  (void)state;
  fill_chains(st, "short", "long", 300, now + 1000, now);
  atomic_fetch_add(&fake_ms, 2000);
  for (int i = 0; i < 300; i++) {
    char *json = NULL;
    size_t len = 0;
    snprintf(sid, sizeof sid, "short-%04d", i);
    int rc = csn_store_get(st, sid, &json, &len);
    if (rc != CSN_ENOENT)
      fail_msg("get %s: %d, %s", sid, rc, json != NULL ? json : "(null)");
  }
  /* The same through cas (fresh ones: get removed the above). */
  fill_chains(st, "s2", "l2", 300, now + 3000, now);
  atomic_fetch_add(&fake_ms, 2000);
  for (int i = 0; i < 300; i++) {
    char rec[128];
    snprintf(sid, sizeof sid, "s2-%04d", i);
    snprintf(rec, sizeof rec, "{\"cookie\":{},\"sid\":\"%s\"}", sid);
    assert_int_equal(csn_store_cas(st, sid, rec, strlen(rec), rec,
                                   strlen(rec), now + 100000),
                     CSN_ENOENT);
  }
  for (int i = 0; i < 3000; i++) {
    snprintf(sid, sizeof sid, "long-%04d", i);
    assert_true(present(st, sid));
  }
  csn_store_free(st);
}

/* The table against a model of itself: many sets, destroys, reads and clock
 * steps over a few thousand ids, so that slots are emptied, turned into
 * tombstones, reused and rebuilt (growing and shrinking) many times over,
 * and probe runs wrap around the array. Every read must agree with the
 * model, and at the end so must every id and the count. */
static uint64_t churn_rng = 88172645463325252u;
static uint32_t churn_next(void) {
  churn_rng ^= churn_rng << 13;
  churn_rng ^= churn_rng >> 7;
  churn_rng ^= churn_rng << 17;
  return (uint32_t)(churn_rng >> 11);
}

/* max 0: the model is exact. max > 0: the table evicts, so an id the model
 * holds may be gone (the model then forgets it), but no id may come back,
 * and the table never holds more than max. */
static void table_churn(size_t max) {
  enum { IDS = 1500, OPS = 60000 };
  static int64_t model[IDS]; /* expiry, or INT64_MIN when absent */
  csn_store *st = open_fake(max, -1);
  size_t live = 0, n;
  char sid[32];
  for (int i = 0; i < IDS; i++) model[i] = INT64_MIN;
  for (int op = 0; op < OPS; op++) {
    uint32_t r = churn_next(), k = churn_next() % IDS, what = r % 100;
    int64_t now = atomic_load(&fake_ms);
    snprintf(sid, sizeof sid, "churn-%05u", (unsigned)k);
    if (what < 40) {
      /* Fewer live ids in the second half: the array shrinks too. */
      if (op > OPS / 2 && k % 3 != 0) continue;
      model[k] = now + 1 + (int64_t)(churn_next() % 5000);
      put(st, sid, model[k]);
    } else if (what < 60) {
      assert_int_equal(csn_store_destroy(st, sid), CSN_OK);
      model[k] = INT64_MIN;
    } else if (what < 95) {
      int want = model[k] != INT64_MIN && model[k] > now, got = present(st, sid);
      if (got && !want)
        fail_msg("op %d: %s is back", op, sid);
      if (!got && want && max == 0)
        fail_msg("op %d: %s is missing", op, sid);
      if (!got) model[k] = INT64_MIN; /* expired (a read removes it) or evicted */
    } else {
      atomic_fetch_add(&fake_ms, (int64_t)(churn_next() % 400));
    }
    if (max > 0 && csn__store_memory_raw_count(st) > max)
      fail_msg("op %d: %zu entries, max %zu", op, csn__store_memory_raw_count(st), max);
  }
  for (int i = 0; i < IDS; i++) {
    int64_t now = atomic_load(&fake_ms);
    int want = model[i] != INT64_MIN && model[i] > now, got;
    snprintf(sid, sizeof sid, "churn-%05d", i);
    got = present(st, sid);
    if (got != want && (got || max == 0))
      fail_msg("end: %s is %s", sid, want ? "missing" : "back");
    live += (size_t)got;
  }
  assert_int_equal(csn_store_prune(st, &n), CSN_OK);
  assert_int_equal(csn__store_memory_raw_count(st), live);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, live);
  csn_store_free(st);
}

static void test_table_churn(void **state) {
  (void)state;
  table_churn(0);
}

/* The same with a cap, so that inserts evict (the probation queue, the
 * eviction under the insert's own lock) all along. */
static void test_table_churn_capped(void **state) {
  (void)state;
  table_churn(300);
}

/* touch splices the cookie text into the stored text; these are the cases
 * the conformance suite does not reach. */
static void touch_case(const char *stored, const char *fresh,
                       const char *want, int want_rc) {
  csn_store *st = open_fake(0, -1);
  int64_t exp = atomic_load(&fake_ms) + 60000;
  char *json = NULL;
  size_t len;
  assert_int_equal(csn_store_set(st, "t", stored, strlen(stored), exp), CSN_OK);
  assert_int_equal(csn_store_touch(st, "t", fresh, strlen(fresh), exp),
                   want_rc);
  assert_int_equal(csn_store_get(st, "t", &json, &len), CSN_OK);
  assert_string_equal(json, want);
  csn_free(json);
  csn_store_free(st);
}

static void test_touch_splice(void **state) {
  (void)state;
  touch_case("{\"a\":1}", "{\"cookie\":{\"x\":1}}",
             "{\"cookie\":{\"x\":1},\"a\":1}", CSN_OK);
  touch_case("{ }", "{\"cookie\":{\"x\":1}}", "{\"cookie\":{\"x\":1} }",
             CSN_OK);
  touch_case("{\"\\u0063ookie\":{\"old\":1},\"b\":2}",
             "{\"z\":0,\"cookie\":{\"new\":[1,\"}\"]}}",
             "{\"\\u0063ookie\":{\"new\":[1,\"}\"]},\"b\":2}", CSN_OK);
  touch_case("{ \"a\" : 1.10 , \"cookie\" : {\"o\":[1,{\"p\":\"}\\\"\"}]} , "
             "\"z\":\"\\\"}\" }",
             "{\"cookie\":{}}",
             "{ \"a\" : 1.10 , \"cookie\" : {} , \"z\":\"\\\"}\" }", CSN_OK);
  /* Duplicate keys: the last one counts, as in JSON.parse. */
  touch_case("{\"cookie\":1,\"cookie\":2}", "{\"cookie\":{\"n\":3}}",
             "{\"cookie\":1,\"cookie\":{\"n\":3}}", CSN_OK);
  /* The new cookie must be an object (the kit's rule, csn_store.h). */
  touch_case("{\"a\":1}", "{\"cookie\":null}", "{\"a\":1}", CSN_EINVAL);
  touch_case("{\"a\":1}", "{\"cookie\":3}", "{\"a\":1}", CSN_EINVAL);
  /* Bad input leaves the record alone. */
  touch_case("{\"a\":1}", "{\"nocookie\":1}", "{\"a\":1}", CSN_EINVAL);
  touch_case("{\"a\":1}", "not json", "{\"a\":1}", CSN_EINVAL);
  touch_case("[1,2]", "{\"cookie\":{}}", "[1,2]", CSN_ECORRUPT);
  touch_case("{\"a\":", "{\"cookie\":{}}", "{\"a\":", CSN_ECORRUPT);
}

/* ------------------------------------------------------------------------ */
/* Compare-and-set                                                          */
/* ------------------------------------------------------------------------ */

static int cas_s(csn_store *st, const char *sid, const char *expected,
                 const char *json, int64_t exp) {
  return csn_store_cas(st, sid, expected, strlen(expected), json, strlen(json),
                       exp);
}

static void assert_stored(csn_store *st, const char *sid, const char *want,
                          size_t want_len) {
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
  assert_int_equal(len, want_len);
  assert_memory_equal(json, want, want_len);
  assert_int_equal(json[len], '\0');
  csn_free(json);
}

static void test_cas_written(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t now = atomic_load(&fake_ms);
  const char *a = "{\"cookie\":{},\"v\":\"a\"}", *b = "{\"cookie\":{},\"v\":\"b\"}";
  (void)state;
  assert_true(csn_store_has_cas(st));
  assert_int_equal(csn_store_set(st, "c", a, strlen(a), now + 1000), CSN_OK);
  assert_int_equal(cas_s(st, "c", a, b, now + 5000), CSN_OK);
  assert_stored(st, "c", b, strlen(b));
  assert_int_equal(csn__store_memory_raw_count(st), 1);
  /* The new expiry is the one in force, as with set(). */
  atomic_fetch_add(&fake_ms, 2000);
  assert_stored(st, "c", b, strlen(b));
  assert_int_equal(cas_s(st, "c", b, a, CSN_TIME_NONE), CSN_OK);
  atomic_fetch_add(&fake_ms, INT64_C(100000000));
  assert_stored(st, "c", a, strlen(a));
  csn_store_free(st);
}

static void test_cas_conflict(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t exp = atomic_load(&fake_ms) + 60000;
  const char *a = "{\"cookie\":{},\"v\":\"a\"}";
  const char *same_len = "{\"cookie\":{},\"v\":\"x\"}";
  const char *longer = "{\"cookie\":{},\"v\":\"a\"} ";
  const char *c = "{\"cookie\":{},\"v\":\"c\"}";
  (void)state;
  assert_int_equal(csn_store_set(st, "c", a, strlen(a), exp), CSN_OK);
  assert_int_equal(cas_s(st, "c", same_len, c, exp), CSN_ECONFLICT);
  assert_int_equal(cas_s(st, "c", longer, c, exp), CSN_ECONFLICT);
  assert_int_equal(csn_store_cas(st, "c", a, strlen(a) - 1, c, strlen(c), exp),
                   CSN_ECONFLICT); /* a prefix */
  assert_int_equal(cas_s(st, "c", "", c, exp), CSN_ECONFLICT);
  assert_stored(st, "c", a, strlen(a));
  assert_int_equal(csn__store_memory_raw_count(st), 1);
  /* A conflict is an answer, not a failure: it leaves no error behind. */
  csn_store_set_error(st, CSN_EIO, "before");
  assert_int_equal(cas_s(st, "c", c, a, exp), CSN_ECONFLICT);
  assert_string_equal(csn_store_errmsg(st), "before");
  csn_store_free(st);
}

static void test_cas_missing(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t now = atomic_load(&fake_ms);
  const char *a = "{\"cookie\":{},\"v\":\"a\"}", *b = "{\"cookie\":{},\"v\":\"b\"}";
  (void)state;
  /* Never stored: nothing compared, nothing created. */
  assert_int_equal(cas_s(st, "m", a, b, now + 1000), CSN_ENOENT);
  assert_false(present(st, "m"));
  assert_int_equal(csn__store_memory_raw_count(st), 0);
  /* Destroyed (a logout): stays destroyed. */
  assert_int_equal(csn_store_set(st, "m", a, strlen(a), now + 1000), CSN_OK);
  assert_int_equal(csn_store_destroy(st, "m"), CSN_OK);
  assert_int_equal(cas_s(st, "m", a, b, now + 1000), CSN_ENOENT);
  assert_false(present(st, "m"));
  /* Expired, with the very text expected: gone, and removed on the way. */
  assert_int_equal(csn_store_set(st, "m", a, strlen(a), now + 1000), CSN_OK);
  assert_int_equal(csn__store_memory_raw_count(st), 1);
  atomic_fetch_add(&fake_ms, 1000);
  assert_int_equal(cas_s(st, "m", a, b, now + 100000), CSN_ENOENT);
  assert_int_equal(csn__store_memory_raw_count(st), 0);
  assert_false(present(st, "m"));
  csn_store_free(st);
}

/* get() hands back the stored bytes, whatever they are, and cas compares
 * all of them (length and content, a NUL included). */
static void test_cas_bytes(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t exp = atomic_load(&fake_ms) + 60000;
  static const char odd[] = "{ \"cookie\" : {\"expires\":null} ,\n\t\"n\":0.1,"
                            "\"e\":1e+21,\"s\":\"\\u00e9\xc3\xa9\",\"z\":\"\0\"}";
  static const char other[] = "{ \"cookie\" : {\"expires\":null} ,\n\t\"n\":0.1,"
                              "\"e\":1e+21,\"s\":\"\\u00e9\xc3\xa9\",\"z\":\"\0!";
  const char *b = "{\"cookie\":{},\"v\":\"b\"}";
  char *json = NULL;
  size_t len = 0;
  (void)state;
  assert_int_equal(csn_store_set(st, "o", odd, sizeof odd - 1, exp), CSN_OK);
  assert_stored(st, "o", odd, sizeof odd - 1);
  /* Differs only after the NUL. */
  assert_int_equal(csn_store_cas(st, "o", other, sizeof other - 1, b,
                                 strlen(b), exp),
                   CSN_ECONFLICT);
  assert_int_equal(csn_store_get(st, "o", &json, &len), CSN_OK);
  assert_int_equal(csn_store_cas(st, "o", json, len, b, strlen(b), exp),
                   CSN_OK);
  csn_free(json);
  assert_stored(st, "o", b, strlen(b));
  csn_store_free(st);
}

/* A record that fits the memory of the one it replaces is written over it;
 * one that grew past it, or shrank far below it, gets new memory. Every
 * size on the way - a byte more at a time, then a big jump up and down -
 * must read back exactly (under ASan: with no write past the memory), with
 * the new expiry, and the text it replaced must no longer compare equal. */
static void test_cas_sizes(void **state) {
  csn_store *st = open_fake(0, -1);
  int64_t now = atomic_load(&fake_ms);
  static const size_t jumps[] = {5000, 4999, 20, 21, 3000, 60, 59, 1};
  char *prev = malloc(6000), *next = malloc(6000);
  size_t plen, n, k;
  (void)state;
  assert_true(prev != NULL && next != NULL);
  plen = 20;
  memset(prev, 'a', plen);
  assert_int_equal(csn_store_set(st, "g", prev, plen, now + 1000), CSN_OK);
  for (k = 0; k < 200 + sizeof jumps / sizeof jumps[0]; k++) {
    n = k < 200 ? plen + 1 : jumps[k - 200];
    memset(next, (int)('b' + k % 20), n);
    next[0] = (char)('A' + k % 26); /* differs from prev at the start too */
    assert_int_equal(
        csn_store_cas(st, "g", prev, plen, next, n, now + 1000 + (int64_t)k),
        CSN_OK);
    assert_stored(st, "g", next, n);
    assert_int_equal(csn_store_cas(st, "g", prev, plen, prev, plen, now),
                     CSN_ECONFLICT);
    assert_stored(st, "g", next, n);
    memcpy(prev, next, n);
    plen = n;
  }
  assert_int_equal(csn__store_memory_raw_count(st), 1);
  /* The expiry of the last write is the one in force. */
  atomic_fetch_add(&fake_ms, 1000 + 200 + (int64_t)(sizeof jumps /
                                                    sizeof jumps[0]) - 2);
  assert_stored(st, "g", prev, plen);
  atomic_fetch_add(&fake_ms, 1);
  assert_false(present(st, "g"));
  free(prev);
  free(next);
  csn_store_free(st);
}

/* cas replaces in place: at capacity it evicts nobody and takes no slot. */
static void test_cas_capacity(void **state) {
  csn_store *st = open_fake(2, -1);
  int64_t now = atomic_load(&fake_ms);
  const char *a = "{\"cookie\":{},\"v\":\"a\"}", *b = "{\"cookie\":{},\"v\":\"b\"}";
  int i;
  (void)state;
  assert_int_equal(csn_store_set(st, "x", a, strlen(a), now + 1000), CSN_OK);
  assert_int_equal(csn_store_set(st, "y", a, strlen(a), now + 2000), CSN_OK);
  for (i = 0; i < 10; i++) {
    assert_int_equal(cas_s(st, "x", i % 2 ? b : a, i % 2 ? a : b, now + 3000),
                     CSN_OK);
    assert_int_equal(cas_s(st, "z", a, b, now + 3000), CSN_ENOENT);
    assert_int_equal(csn__store_memory_raw_count(st), 2);
  }
  assert_stored(st, "x", a, strlen(a));
  assert_stored(st, "y", a, strlen(a));
  csn_store_free(st);
}

/* Eight writers on one session, each adding 1 to its own member 200 times
 * by get / change / cas, retrying on a conflict; a ninth thread touches the
 * session meanwhile. No increment may be lost, and the touches must not
 * undo any (touch keeps the data, replacing only the cookie). */
#define RACE_THREADS 8
#define RACE_ROUNDS 200

typedef struct race_worker {
  csn_store *st;
  int index;
  int64_t exp;
  int failed;
  long conflicts;
} race_worker;

static _Atomic int race_done;
static pthread_barrier_t race_start; /* all threads begin together */

static void *race_main(void *arg) {
  race_worker *w = arg;
  char key[16];
  int round;
  snprintf(key, sizeof key, "k%d", w->index);
  pthread_barrier_wait(&race_start);
  for (round = 0; round < RACE_ROUNDS && !w->failed; round++) {
    for (;;) {
      char *cur = NULL, *next;
      size_t len = 0;
      json_t *j;
      int rc = csn_store_get(w->st, "race", &cur, &len);
      if (rc != CSN_OK || (j = json_loadb(cur, len, 0, NULL)) == NULL) {
        csn_free(cur);
        w->failed = 1;
        break;
      }
      json_object_set_new(
          j, key, json_integer(json_integer_value(json_object_get(j, key)) + 1));
      next = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
      json_decref(j);
      /* Widen the read-to-write window, so that writers overtake each
       * other even on one core. */
      sched_yield();
      rc = next == NULL ? CSN_ENOMEM
                        : csn_store_cas(w->st, "race", cur, len, next,
                                        strlen(next), w->exp);
      csn_free(cur);
      free(next);
      if (rc == CSN_OK) break;
      if (rc != CSN_ECONFLICT) {
        w->failed = 1;
        break;
      }
      w->conflicts++;
    }
  }
  return NULL;
}

static void *toucher_main(void *arg) {
  race_worker *w = arg;
  long n = 0;
  pthread_barrier_wait(&race_start);
  while (!atomic_load(&race_done)) {
    char cookie[64];
    snprintf(cookie, sizeof cookie, "{\"cookie\":{\"touch\":%ld}}", n++);
    if (csn_store_touch(w->st, "race", cookie, strlen(cookie), w->exp) !=
        CSN_OK) {
      w->failed = 1;
      break;
    }
  }
  w->conflicts = n;
  return NULL;
}

static void test_cas_threads(void **state) {
  csn_store *st = open_fake(0, 1);
  int64_t exp = atomic_load(&fake_ms) + INT64_C(3600000000);
  pthread_t th[RACE_THREADS + 1];
  race_worker w[RACE_THREADS + 1];
  char *json = NULL;
  size_t len = 0;
  json_t *j;
  long conflicts = 0;
  int i;
  (void)state;
  assert_int_equal(csn_store_set(st, "race", "{\"cookie\":{}}", 13, exp),
                   CSN_OK);
  atomic_store(&race_done, 0);
  assert_int_equal(pthread_barrier_init(&race_start, NULL, RACE_THREADS + 1),
                   0);
  for (i = 0; i <= RACE_THREADS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].st = st;
    w[i].index = i;
    w[i].exp = exp;
    assert_int_equal(pthread_create(&th[i], NULL,
                                    i < RACE_THREADS ? race_main : toucher_main,
                                    &w[i]),
                     0);
  }
  for (i = 0; i < RACE_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].failed, 0);
    conflicts += w[i].conflicts;
  }
  atomic_store(&race_done, 1);
  pthread_join(th[RACE_THREADS], NULL);
  pthread_barrier_destroy(&race_start);
  assert_int_equal(w[RACE_THREADS].failed, 0);

  assert_int_equal(csn_store_get(st, "race", &json, &len), CSN_OK);
  j = json_loadb(json, len, 0, NULL);
  assert_non_null(j);
  for (i = 0; i < RACE_THREADS; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(json_integer_value(json_object_get(j, key)), RACE_ROUNDS);
  }
  assert_true(json_is_object(json_object_get(j, "cookie")));
  json_decref(j);
  csn_free(json);
  print_message("cas race: %ld conflicts retried, %ld touches\n", conflicts,
                w[RACE_THREADS].conflicts);
  csn_store_free(st);
}

/* The background thread removes expired entries with nobody reading. */
static void test_prune_background(void **state) {
  csn_store *st = open_fake(0, 5);
  int64_t now = atomic_load(&fake_ms), deadline;
  int i;
  (void)state;
  for (i = 0; i < 200; i++) {
    char sid[32];
    snprintf(sid, sizeof sid, "bg-%d", i);
    put(st, sid, i < 190 ? now + 1000 : CSN_TIME_NONE);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 200);
  atomic_fetch_add(&fake_ms, 2000);
  deadline = mono_ms() + 10000;
  while (csn__store_memory_raw_count(st) != 10 && mono_ms() < deadline)
    sleep_ms(5);
  assert_int_equal(csn__store_memory_raw_count(st), 10);
  csn_store_free(st);
}

/* 2000 entries that then expire (the fake clock moves 2 s), then 2000
 * live ones: what the insert path does with the expired ones. */
static void old_then_new(csn_store *st) {
  int64_t now = atomic_load(&fake_ms);
  char sid[32];
  int i;
  for (i = 0; i < 2000; i++) {
    snprintf(sid, sizeof sid, "old-%d", i);
    put(st, sid, now + 1000);
  }
  atomic_fetch_add(&fake_ms, 2000);
  for (i = 0; i < 2000; i++) {
    snprintf(sid, sizeof sid, "new-%d", i);
    put(st, sid, now + 100000);
  }
}

/* Without the thread, inserts sweep a few buckets of their shard each. */
static void test_prune_amortised(void **state) {
  csn_store *st = open_fake(0, -1);
  size_t raw;
  (void)state;
  old_then_new(st);
  raw = csn__store_memory_raw_count(st);
  /* Most of the 2000 expired entries went without any read or prune. */
  assert_true(raw < 2000 + 500);
  csn_store_free(st);
}

/* With the thread, inserts leave the sweeping to it (their sweep would
 * only add cold entries to every insert): nothing expired goes until a
 * sweep, a read of it, or a full table. */
static void test_prune_thread_only(void **state) {
  csn_store *st = open_fake(0, 3600000);
  size_t n;
  (void)state;
  old_then_new(st);
  assert_int_equal(csn__store_memory_raw_count(st), 4000);
  assert_int_equal(csn_store_prune(st, &n), CSN_OK);
  assert_int_equal(n, 2000);
  assert_int_equal(csn__store_memory_raw_count(st), 2000);
  csn_store_free(st);
}

/* close wakes the sweeper instead of waiting out its 60 s interval. */
static void test_prune_close_prompt(void **state) {
  csn_store *st = NULL;
  int64_t t;
  (void)state;
  assert_int_equal(csn_store_memory_new(NULL, &st), CSN_OK);
  sleep_ms(20); /* let the thread reach its wait */
  t = mono_ms();
  csn_store_free(st);
  assert_true(mono_ms() - t < 10000);
}

/* A sweep skips a shard none of whose entries can have expired
 * (memory_table.c, Sweeping): every way of writing an expiry must lower
 * that bound, or the entry would outlive its expiry in the table. One
 * entry at a time is moved to a near expiry, by each write in turn, and
 * the next prune must remove exactly it; a bound raised by a complete
 * sweep must still let everything go once the far expiry comes. */
static void prune_removes_only(csn_store *st, const char *sid) {
  size_t removed = 99;
  atomic_fetch_add(&fake_ms, 20);
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 1);
  assert_false(present(st, sid));
}

static void test_prune_bound(void **state) {
  /* The thread's interval is an hour: only csn_store_prune() sweeps here,
   * and inserts leave sweeping to the thread. */
  csn_store *st = open_fake(0, 3600000);
  int64_t base = atomic_load(&fake_ms), now;
  char rec[128], sid[32];
  char *json = NULL;
  size_t removed = 99, len = 0;
  int i;
  (void)state;
  for (i = 0; i < 200; i++) {
    snprintf(sid, sizeof sid, "b-%03d", i);
    put(st, sid, base + 100000);
  }
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 0);

  now = atomic_load(&fake_ms);
  put(st, "b-007", now + 10); /* set over an entry */
  prune_removes_only(st, "b-007");

  now = atomic_load(&fake_ms);
  assert_int_equal(csn_store_get(st, "b-042", &json, &len), CSN_OK);
  memcpy(rec, json, len + 1); /* the same size: written over in place */
  rec[len - 3] = 'X'; /* "b-042" becomes "b-04X" */
  assert_int_equal(cas_s(st, "b-042", json, rec, now + 10), CSN_OK);
  csn_free(json);
  prune_removes_only(st, "b-042");

  now = atomic_load(&fake_ms);
  snprintf(rec, sizeof rec, "{\"cookie\":{\"t\":1}}");
  assert_int_equal(csn_store_touch(st, "b-123", rec, strlen(rec), now + 10),
                   CSN_OK);
  prune_removes_only(st, "b-123");

  now = atomic_load(&fake_ms);
  put(st, "fresh", now + 10); /* a new entry */
  prune_removes_only(st, "fresh");

  atomic_store(&fake_ms, base + 100000);
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 197);
  assert_int_equal(csn__store_memory_raw_count(st), 0);
  csn_store_free(st);
}

/* A burst of sessions grows the arrays; once they have expired, the sweep
 * that removes them gives the arrays back (memory_table.c,
 * shrink_if_sparse), and the sessions that stay are still found. */
static void test_prune_shrinks(void **state) {
  csn_store *st = open_fake(0, 3600000);
  int64_t now = atomic_load(&fake_ms);
  size_t before = csn__store_memory_slots(st), grown, after, removed = 0;
  char sid[32];
  int i;
  (void)state;
  for (i = 0; i < 20000; i++) {
    snprintf(sid, sizeof sid, "burst-%05d", i);
    put(st, sid, now + 1000);
  }
  for (i = 0; i < 10; i++) {
    snprintf(sid, sizeof sid, "keep-%d", i);
    put(st, sid, CSN_TIME_NONE);
  }
  grown = csn__store_memory_slots(st);
  assert_true(grown >= 2 * 20000); /* at most half full */
  atomic_fetch_add(&fake_ms, 2000);
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 20000);
  after = csn__store_memory_slots(st);
  /* Every shard back at an array fit for what it kept: the smallest (16
   * slots, so before / 16 is the shard count) or, for a shard that kept
   * c of the 10, the power of two at or above 4 (c + 1), at most 8 (c + 1)
   * slots. Which shard keeps how many follows the table's random hash
   * key; the bound holds for any spread. The burst's arrays are gone. */
  assert_true(after >= before);
  assert_true(after <= before + 8 * (10 + before / 16));
  assert_true(after * 50 < grown);
  for (i = 0; i < 10; i++) {
    snprintf(sid, sizeof sid, "keep-%d", i);
    assert_true(present(st, sid));
  }
  csn_store_free(st);
}

/* The table's shard count follows the CPUs the process may run on: four
 * per CPU, a power of two, from 8 to 64 (memory_table.c, Shards). A fresh
 * table has 16 slots a shard, so its slot count tells the shard count. */
static size_t shards_expected(long cpus) {
  size_t n = 8;
  while (n < 64 && (long)n < 4 * cpus) n *= 2;
  return n;
}

static size_t fresh_shards(void) {
  csn_store *st = open_fake(0, -1);
  size_t n = csn__store_memory_slots(st) / 16;
  csn_store_free(st);
  return n;
}

static void test_shard_count(void **state) {
  (void)state;
  assert_int_equal(shards_expected(1), 8);
  assert_int_equal(shards_expected(2), 8);
  assert_int_equal(shards_expected(3), 16);
  assert_int_equal(shards_expected(16), 64);
  assert_int_equal(shards_expected(1000), 64);
#ifdef __linux__
  {
    cpu_set_t all, one;
    int cpu;
    assert_int_equal(sched_getaffinity(0, sizeof all, &all), 0);
    assert_int_equal(fresh_shards(), shards_expected(CPU_COUNT(&all)));
    for (cpu = 0; !CPU_ISSET(cpu, &all); cpu++) {
    }
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    assert_int_equal(fresh_shards(), 8);
    assert_int_equal(sched_setaffinity(0, sizeof all, &all), 0);
  }
#endif
}

/* ------------------------------------------------------------------------ */
/* Capacity                                                                 */
/* ------------------------------------------------------------------------ */

static void test_evict_max_one(void **state) {
  csn_store *st = open_fake(1, -1);
  int64_t now = atomic_load(&fake_ms);
  size_t n;
  (void)state;
  put(st, "a", now + 100000);
  put(st, "b", now + 50000);
  assert_false(present(st, "a"));
  assert_true(present(st, "b"));
  put(st, "b", now + 1); /* overwriting never evicts */
  assert_true(present(st, "b"));
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  csn_store_free(st);
}

static void test_evict_bounded(void **state) {
  csn_store *st = open_fake(100, -1);
  int64_t now = atomic_load(&fake_ms);
  size_t n;
  int i;
  (void)state;
  for (i = 0; i < 1000; i++) {
    char sid[32];
    snprintf(sid, sizeof sid, "e-%d", i);
    put(st, sid, now + 100000 + i);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 100);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 100);
  assert_true(present(st, "e-999")); /* the newest write is kept */
  csn_store_free(st);
}

/* When full, expired entries make room before any live one is evicted. */
static void test_evict_expired_first(void **state) {
  csn_store *st = open_fake(64, -1);
  int64_t now = atomic_load(&fake_ms);
  int i;
  (void)state;
  for (i = 0; i < 64; i++) {
    char sid[32];
    snprintf(sid, sizeof sid, "stale-%d", i);
    put(st, sid, now + 1000);
  }
  atomic_fetch_add(&fake_ms, 5000);
  for (i = 0; i < 64; i++) {
    char sid[32];
    snprintf(sid, sizeof sid, "fresh-%d", i);
    put(st, sid, now + 100000);
  }
  for (i = 0; i < 64; i++) {
    char sid[32];
    snprintf(sid, sizeof sid, "fresh-%d", i);
    assert_true(present(st, sid));
  }
  assert_int_equal(csn__store_memory_raw_count(st), 64);
  csn_store_free(st);
}

/* Issue 15, finding 5: a flood of visitors seen once must not evict the
 * sessions of returning users. 20 users come back (their records are read
 * again), and their records expire soonest, which made them the victims of
 * "evict the soonest to expire": 1,200 anonymous requests left 3 of 20.
 * Now visitors seen once make room for each other, and a returning user's
 * record goes only when nothing else is left (no outage either way). */
static void test_evict_spares_returning(void **state) {
  csn_store *st = open_fake(40, -1);
  int64_t now = atomic_load(&fake_ms);
  char sid[32];
  int i;
  (void)state;
  for (i = 0; i < 20; i++) {
    snprintf(sid, sizeof sid, "user-%d", i);
    put(st, sid, now + 50000 + i);
    assert_true(present(st, sid)); /* the user's next request */
  }
  for (i = 0; i < 1200; i++) {
    snprintf(sid, sizeof sid, "anon-%d", i);
    put(st, sid, now + 100000 + i);
    if (i % 100 == 0) assert_true(present(st, "user-0"));
  }
  for (i = 0; i < 20; i++) {
    snprintf(sid, sizeof sid, "user-%d", i);
    if (!present(st, sid)) fail_msg("%s was evicted by anonymous traffic", sid);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 40);
  csn_store_free(st);

  /* Twenty users and twenty anonymous visitors in a table of 30: the
   * anonymous ones make room, the users all stay. */
  st = open_fake(30, -1);
  for (i = 0; i < 20; i++) {
    snprintf(sid, sizeof sid, "user-%d", i);
    put(st, sid, now + 50000 + i);
    assert_true(present(st, sid));
  }
  for (i = 0; i < 20; i++) {
    snprintf(sid, sizeof sid, "anon-%d", i);
    put(st, sid, now + 100000 + i);
  }
  for (i = 0; i < 20; i++) {
    snprintf(sid, sizeof sid, "user-%d", i);
    assert_true(present(st, sid));
  }
  assert_int_equal(csn__store_memory_raw_count(st), 30);
  csn_store_free(st);

  /* Only returning users left: a new visitor still gets in, rather than
   * being refused, and one user makes room (the soonest to expire of a
   * shard's, so which one depends on the table's random hash key). */
  st = open_fake(4, -1);
  for (i = 0; i < 4; i++) {
    snprintf(sid, sizeof sid, "user-%d", i);
    put(st, sid, now + 50000 + i);
    assert_true(present(st, sid));
  }
  put(st, "newcomer", now + 90000);
  assert_true(present(st, "newcomer"));
  int users = 0;
  for (i = 0; i < 4; i++) {
    snprintf(sid, sizeof sid, "user-%d", i);
    users += present(st, sid);
  }
  assert_int_equal(users, 3);
  assert_int_equal(csn__store_memory_raw_count(st), 4);
  csn_store_free(st);
}

/* The probation queue stays whole while its entries leave from the middle:
 * destroyed, read back (protected), expired and swept, evicted. Under
 * AddressSanitizer a stale link is a use after free. Entries read back and
 * not expired are all that may not go. */
static void test_evict_queue_unlinks(void **state) {
  csn_store *st = open_fake(40, -1);
  int64_t now = atomic_load(&fake_ms);
  char sid[32];
  size_t n;
  int i;
  (void)state;
  for (i = 0; i < 40; i++) {
    snprintf(sid, sizeof sid, "q-%d", i);
    put(st, sid, i % 3 == 0 ? now + 1000 : now + 100000 + i);
  }
  for (i = 0; i < 40; i += 4) {
    snprintf(sid, sizeof sid, "q-%d", i);
    assert_int_equal(csn_store_destroy(st, sid), CSN_OK);
  }
  for (i = 1; i < 40; i += 4) {
    snprintf(sid, sizeof sid, "q-%d", i);
    assert_true(present(st, sid)); /* read back: protected */
  }
  atomic_fetch_add(&fake_ms, 5000); /* the q-<multiple of 3> expire */
  for (i = 0; i < 2000; i++) {
    snprintf(sid, sizeof sid, "anon-%d", i);
    put(st, sid, now + 200000 + i);
  }
  for (i = 1; i < 40; i += 4) {
    snprintf(sid, sizeof sid, "q-%d", i);
    if (i % 3 != 0 && !present(st, sid))
      fail_msg("%s was read back, yet evicted by anonymous traffic", sid);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 40);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  /* After the clear the queue is empty and works again. */
  for (i = 0; i < 100; i++) {
    snprintf(sid, sizeof sid, "again-%d", i);
    put(st, sid, now + 300000 + i);
  }
  assert_true(present(st, "again-99"));
  assert_int_equal(csn__store_memory_raw_count(st), 40);
  csn_store_free(st);
}

/* A set over a present id puts a new entry in the old one's place (one
 * block holds an entry, its id and its text): the queue and the read-back
 * mark must carry over. Sessions seen once and read back, at the head,
 * middle and tail of their shard's queue, are set over with a text of
 * another size; then anonymous traffic evicts, the read-back ones must
 * all stay with their new text, and every entry is destroyed (a stale
 * queue link would be a use after free under AddressSanitizer). Some
 * texts also grow past their block through cas (a block of their own)
 * before the set over them, whose free must take that block too. */
static char *text_of(csn_store *st, const char *sid) {
  char *json = NULL;
  size_t len = 0;
  if (csn_store_get(st, sid, &json, &len) != CSN_OK) return NULL;
  assert_int_equal(strlen(json), len);
  return json;
}

static void test_set_over_keeps_place(void **state) {
  csn_store *st = open_fake(60, -1);
  int64_t now = atomic_load(&fake_ms);
  char sid[32], rec[600], big[600];
  int i;
  (void)state;
  for (i = 0; i < 60; i++) {
    snprintf(sid, sizeof sid, "s-%d", i);
    put(st, sid, now + 100000 + i);
  }
  for (i = 0; i < 60; i += 3) {
    snprintf(sid, sizeof sid, "s-%d", i);
    assert_true(present(st, sid)); /* read back: protected */
  }
  for (i = 0; i < 60; i += 5) { /* cas to a text past the block */
    char *old;
    snprintf(sid, sizeof sid, "s-%d", i);
    old = text_of(st, sid);
    assert_non_null(old);
    snprintf(big, sizeof big, "{\"cookie\":{},\"pad\":\"%0400d\"}", i);
    assert_int_equal(csn_store_cas(st, sid, old, strlen(old), big,
                                   strlen(big), now + 100000 + i),
                     CSN_OK);
    csn_free(old);
  }
  for (i = 0; i < 60; i++) { /* the set over each */
    snprintf(sid, sizeof sid, "s-%d", i);
    snprintf(rec, sizeof rec, "{\"cookie\":{},\"again\":%d%s}", i,
             i % 2 ? ",\"more\":\"0123456789012345678901234567890123\"" : "");
    assert_int_equal(
        csn_store_set(st, sid, rec, strlen(rec), now + 100000 + i), CSN_OK);
  }
  for (i = 0; i < 3000; i++) {
    snprintf(sid, sizeof sid, "anon-%d", i);
    put(st, sid, now + 200000 + i);
  }
  for (i = 0; i < 60; i += 3) {
    char *got;
    snprintf(sid, sizeof sid, "s-%d", i);
    got = text_of(st, sid);
    if (got == NULL)
      fail_msg("%s was read back, set over, then evicted by anonymous "
               "traffic: the set lost its mark", sid);
    snprintf(rec, sizeof rec, "{\"cookie\":{},\"again\":%d%s}", i,
             i % 2 ? ",\"more\":\"0123456789012345678901234567890123\"" : "");
    assert_string_equal(got, rec);
    csn_free(got);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 60);
  for (i = 0; i < 60; i++) {
    snprintf(sid, sizeof sid, "s-%d", i);
    assert_int_equal(csn_store_destroy(st, sid), CSN_OK);
  }
  for (i = 0; i < 3000; i++) {
    snprintf(sid, sizeof sid, "anon-%d", i);
    assert_int_equal(csn_store_destroy(st, sid), CSN_OK);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 0);
  for (i = 0; i < 200; i++) { /* the emptied queues work again */
    snprintf(sid, sizeof sid, "again-%d", i);
    put(st, sid, now + 300000 + i);
  }
  assert_int_equal(csn__store_memory_raw_count(st), 60);
  csn_store_free(st);
}

/* Issue 15, finding 6: the MemoryStore a context makes when given no
 * store is bounded (express-session's grows without limit: 30,000
 * anonymous requests made 30,000 sessions in 5.6 s). */
static void test_ctx_default_bounded(void **state) {
  static const char *const secrets[] = {"s"};
  csn_options o;
  csn_ctx *ctx = NULL;
  char sid[32];
  int i;
  (void)state;
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  csn_store *st = csn_ctx_store(ctx);
  assert_non_null(st);
  for (i = 0; i < CSN_DEFAULT_MEMORY_MAX + 50; i++) {
    snprintf(sid, sizeof sid, "anon-%d", i);
    assert_int_equal(
        csn_store_set(st, sid, "{\"cookie\":{}}", 11, CSN_TIME_NONE), CSN_OK);
  }
  assert_int_equal(csn__store_memory_raw_count(st), CSN_DEFAULT_MEMORY_MAX);
  csn_ctx_free(ctx);
}

typedef struct evict_worker {
  csn_store *st;
  int id;
  int64_t base; /* the fake clock moves in other tests: expire after it */
  int errors;
} evict_worker;

static void *evict_main(void *arg) {
  evict_worker *w = arg;
  int i;
  for (i = 0; i < 3000; i++) {
    char sid[32], rec[64];
    snprintf(sid, sizeof sid, "w%d-%d", w->id, i);
    snprintf(rec, sizeof rec, "{\"cookie\":{},\"i\":%d}", i);
    if (csn_store_set(w->st, sid, rec, strlen(rec), w->base + i) != CSN_OK)
      w->errors++;
  }
  return NULL;
}

static void test_evict_concurrent(void **state) {
  csn_store *st = open_fake(500, 1);
  pthread_t th[8];
  evict_worker w[8];
  size_t n;
  int i, errors = 0;
  (void)state;
  for (i = 0; i < 8; i++) {
    w[i].st = st;
    w[i].id = i;
    w[i].errors = 0;
    w[i].base = atomic_load(&fake_ms) + 100000;
    assert_int_equal(pthread_create(&th[i], NULL, evict_main, &w[i]), 0);
  }
  for (i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    errors += w[i].errors;
  }
  assert_int_equal(errors, 0);
  /* The cap holds, up to one in-flight insert per thread. */
  assert_true(csn__store_memory_raw_count(st) <= 500 + 8);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_true(n >= 400 && n <= 508);
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* URLs and the registry                                                    */
/* ------------------------------------------------------------------------ */

static void test_url_good(void **state) {
  const char *good[] = {"memory://", "memory://?max=10", "memory://?prune=-1",
                        "memory://?max=5&prune=100", "memory://?prune=250&max=0"};
  size_t i;
  (void)state;
  for (i = 0; i < CSN__ARRAY_SIZE(good); i++) {
    csn_store *st = NULL;
    char err[128] = "x";
    assert_int_equal(csn_store_open(good[i], &st, err, sizeof err), CSN_OK);
    assert_non_null(st);
    assert_string_equal(err, "");
    assert_string_equal(csn_store_name(st), "memory");
    csn_store_free(st);
  }
}

static void test_url_options_apply(void **state) {
  csn_store *st = NULL;
  size_t n;
  (void)state;
  assert_int_equal(csn_store_open("memory://?max=1&prune=-1", &st, NULL, 0),
                   CSN_OK);
  put(st, "a", CSN_TIME_NONE);
  put(st, "b", CSN_TIME_NONE);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  csn_store_free(st);
}

static void test_url_bad(void **state) {
  static char huge[5000];
  const char *bad[] = {"", "memory", "memory:", "memory:/", "memory://host",
                       "memory:///path", "memory://?", "memory://?max",
                       "memory://?max=", "memory://?max=abc", "memory://?max=-1",
                       "memory://?max=1&max=2", "memory://?foo=1",
                       "memory://?max=1&", "memory://?&max=1", "memory://?max=1x",
                       "MEMORY://", "Memory://", "mem ory://", "://x", "1abc://",
                       "memory://?max=1234567890123456", "memory://\n",
                       "memory://?prune=--1", "memory://#frag", huge};
  size_t i;
  (void)state;
  memcpy(huge, "memory://?max=", 14);
  memset(huge + 14, '1', sizeof huge - 15);
  for (i = 0; i < CSN__ARRAY_SIZE(bad); i++) {
    csn_store *st = (csn_store *)1;
    char err[128] = "";
    int rc = csn_store_open(bad[i], &st, err, sizeof err);
    if (rc != CSN_EINVAL) print_error("URL #%zu accepted: %d\n", i, rc);
    assert_int_equal(rc, CSN_EINVAL);
    assert_null(st);
    assert_true(err[0] != '\0');
  }
  assert_int_equal(csn_store_open(NULL, NULL, NULL, 0), CSN_EINVAL);
  /* A tiny errbuf is truncated, not overrun. */
  {
    csn_store *st;
    char err[4];
    assert_int_equal(csn_store_open("bad", &st, err, sizeof err), CSN_EINVAL);
    assert_int_equal(strlen(err), 3);
  }
}

static void test_url_unknown_scheme(void **state) {
  csn_store *st = (csn_store *)1;
  char err[128];
  (void)state;
  assert_int_equal(csn_store_open("nosuch://x", &st, err, sizeof err),
                   CSN_ENOTSUP);
  assert_null(st);
  assert_string_equal(err, "unknown store scheme 'nosuch'");
  assert_non_null(strstr(csn_last_error(), "nosuch"));
}

static const char *last_opened_url;

static int fake_opener(const char *url, csn_store **out, char *errbuf,
                       size_t errlen) {
  last_opened_url = url;
  (void)errbuf;
  (void)errlen;
  return csn_store_memory_new(NULL, out);
}

static int other_opener(const char *url, csn_store **out, char *errbuf,
                        size_t errlen) {
  (void)url;
  (void)out;
  snprintf(errbuf, errlen, "other opener");
  return CSN_EIO;
}

static void test_url_register(void **state) {
  csn_store *st = NULL;
  char err[64];
  (void)state;
  assert_int_equal(csn_store_register("Bad", fake_opener), CSN_EINVAL);
  assert_int_equal(csn_store_register("", fake_opener), CSN_EINVAL);
  assert_int_equal(csn_store_register("x/y", fake_opener), CSN_EINVAL);
  assert_int_equal(csn_store_register("ok", NULL), CSN_EINVAL);
  assert_int_equal(csn_store_register("conf-test+v1", fake_opener), CSN_OK);
  assert_int_equal(csn_store_open("conf-test+v1://a/b?c", &st, err, sizeof err),
                   CSN_OK);
  assert_string_equal(last_opened_url, "conf-test+v1://a/b?c");
  csn_store_free(st);
  /* Re-registering replaces the opener. */
  assert_int_equal(csn_store_register("conf-test+v1", other_opener), CSN_OK);
  assert_int_equal(csn_store_open("conf-test+v1://", &st, err, sizeof err),
                   CSN_EIO);
  assert_string_equal(err, "other opener");
}

/* ------------------------------------------------------------------------ */
/* Errors, fault injection, NULL handling                                   */
/* ------------------------------------------------------------------------ */

typedef struct thread_msg {
  csn_store *a;
  char seen_before[64];
  char seen_after[64];
} thread_msg;

static void *msg_thread(void *arg) {
  thread_msg *t = arg;
  snprintf(t->seen_before, sizeof t->seen_before, "%s", csn_store_errmsg(t->a));
  csn_store_set_error(t->a, CSN_EIO, "thread %s", "two");
  snprintf(t->seen_after, sizeof t->seen_after, "%s", csn_store_errmsg(t->a));
  return NULL;
}

static void test_errmsg_per_thread(void **state) {
  csn_store *a = open_fake(0, -1), *b = open_fake(0, -1);
  pthread_t th;
  thread_msg t;
  (void)state;
  assert_string_equal(csn_store_errmsg(a), "");
  assert_int_equal(csn_store_set_error(a, CSN_EIO, "boom %d", 1), CSN_EIO);
  assert_string_equal(csn_store_errmsg(a), "boom 1");
  assert_string_equal(csn_store_errmsg(b), ""); /* keyed by store */
  assert_string_equal(csn_store_errmsg(NULL), "");
  t.a = a;
  assert_int_equal(pthread_create(&th, NULL, msg_thread, &t), 0);
  pthread_join(th, NULL);
  assert_string_equal(t.seen_before, ""); /* not this thread's message */
  assert_string_equal(t.seen_after, "thread two");
  assert_string_equal(csn_store_errmsg(a), "boom 1");
  /* The store's own failure reaches errmsg and csn_last_error. */
  assert_int_equal(csn_store_touch(b, "t", "nope", 4, CSN_TIME_NONE), CSN_OK);
  put(b, "t", CSN_TIME_NONE);
  assert_int_equal(csn_store_touch(b, "t", "nope", 4, CSN_TIME_NONE),
                   CSN_EINVAL);
  assert_non_null(strstr(csn_store_errmsg(b), "cookie"));
  assert_non_null(strstr(csn_last_error(), "memory touch: "));
  assert_string_equal(csn_store_errmsg(a), ""); /* b failed last */
  csn_store_free(a);
  csn_store_free(b);
}

typedef struct fault_log {
  char ops[256];
  const char *fail_op;
  int with_message;
} fault_log;

static int fault_hook(csn_store *st, const char *op, void *ud) {
  fault_log *l = ud;
  strcat(l->ops, op);
  strcat(l->ops, ",");
  if (l->fail_op != NULL && strcmp(op, l->fail_op) == 0)
    return l->with_message ? csn_store_set_error(st, CSN_ESTORE, "disk on fire")
                           : CSN_EIO;
  return 0;
}

static int count_cb(const char *sid, const char *json, size_t len, void *ud) {
  (void)sid;
  (void)json;
  (void)len;
  (*(int *)ud)++;
  return 0;
}

static void test_fault_injection(void **state) {
  csn_store *st = open_fake(0, -1);
  fault_log l;
  size_t n;
  int seen = 0;
  char *json;
  (void)state;
  memset(&l, 0, sizeof l);
  csn__store_set_fault(fault_hook, &l);
  put(st, "f", CSN_TIME_NONE);
  assert_true(present(st, "f"));
  assert_int_equal(csn_store_touch(st, "f", "{\"cookie\":{}}", 13, CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(csn_store_all(st, count_cb, &seen), CSN_OK);
  assert_int_equal(csn_store_prune(st, NULL), CSN_OK);
  assert_int_equal(csn_store_destroy(st, "f"), CSN_OK);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_string_equal(l.ops, "set,get,touch,length,all,prune,destroy,clear,");

  /* A failing set returns the fault and writes nothing. */
  l.fail_op = "set";
  assert_int_equal(csn_store_set(st, "g", "{}", 2, CSN_TIME_NONE), CSN_EIO);
  assert_string_equal(csn_last_error(),
                      "memory set: injected fault: input/output error");
  assert_string_equal(csn_store_errmsg(st), "injected fault: input/output error");
  l.fail_op = "get";
  l.with_message = 1;
  assert_int_equal(csn_store_get(st, "g", &json, NULL), CSN_ESTORE);
  assert_null(json);
  assert_string_equal(csn_last_error(), "memory get: disk on fire");
  csn__store_set_fault(NULL, NULL);
  assert_false(present(st, "g"));
  csn_store_free(st);
}

/* A store with only the required methods: optional calls say ENOTSUP. */
static int min_get(csn_store *st, const char *sid, char **json, size_t *len) {
  (void)st;
  (void)sid;
  (void)json;
  (void)len;
  return CSN_ENOENT;
}
static int min_set(csn_store *st, const char *sid, const char *json,
                   size_t len, int64_t exp) {
  (void)sid;
  (void)json;
  (void)len;
  (void)exp;
  return csn_store_set_error(st, CSN_EIO, "read-only medium");
}
static int min_destroy(csn_store *st, const char *sid) {
  (void)st;
  (void)sid;
  return CSN_EIO; /* no message: the layer supplies one */
}
static int min_closed;
static void min_close(csn_store *st) {
  (void)st;
  min_closed++;
}

static void test_dispatch_checks(void **state) {
  static const csn_store_methods m = {
      .version = 1 /* a table built against 0.1's header */,
      .name = "minimal",
      .get = min_get,
      .set = min_set,
      .destroy = min_destroy,
      .close = min_close,
  };
  csn_store st = {&m};
  size_t n;
  char *json;
  (void)state;
  assert_int_equal(csn_store_get(&st, "x", &json, &n), CSN_ENOENT);
  assert_int_equal(csn_store_touch(&st, "x", "{}", 2, 0), CSN_ENOTSUP);
  assert_string_equal(csn_last_error(), "minimal touch: operation not supported");
  assert_int_equal(csn_store_clear(&st), CSN_ENOTSUP);
  assert_int_equal(csn_store_length(&st, &n), CSN_ENOTSUP);
  assert_int_equal(csn_store_all(&st, count_cb, NULL), CSN_ENOTSUP);
  assert_int_equal(csn_store_prune(&st, &n), CSN_ENOTSUP);
  assert_int_equal(csn_store_all_expired(&st, count_cb, NULL), CSN_ENOTSUP);
  assert_string_equal(csn_last_error(),
                      "minimal all_expired: operation not supported");
  assert_int_equal(csn_store_set(&st, "x", "{}", 2, 0), CSN_EIO);
  assert_string_equal(csn_last_error(), "minimal set: read-only medium");
  assert_int_equal(csn_store_destroy(&st, "x"), CSN_EIO);
  assert_string_equal(csn_store_errmsg(&st), "input/output error");
  /* Ids are checked before the store sees them. */
  assert_int_equal(csn_store_get(&st, "../etc/passwd", &json, &n), CSN_EINVAL);
  assert_int_equal(csn_store_get(NULL, "x", &json, &n), CSN_EINVAL);
  assert_int_equal(csn_store_get(&st, "x", NULL, &n), CSN_EINVAL);
  assert_int_equal(csn_store_set(&st, "x", NULL, 0, 0), CSN_EINVAL);
  csn_store_free(&st);
  assert_int_equal(min_closed, 1);
}

/* all_expired is a version 3 member: a version 2 table's is never read,
 * even when the member is set (here, to prove the version is checked). */
static int v2_all_expired_calls;
static int v2_all_expired(csn_store *st, csn_store_each_fn fn, void *ud) {
  (void)st;
  (void)fn;
  (void)ud;
  v2_all_expired_calls++;
  return CSN_OK;
}

static void test_all_expired_needs_v3(void **state) {
  static const csn_store_methods v2 = {
      .version = 2,
      .name = "v2",
      .get = min_get,
      .set = min_set,
      .destroy = min_destroy,
      .close = min_close,
      .all_expired = v2_all_expired,
  };
  static const csn_store_methods v3 = {
      .version = 3,
      .name = "v3",
      .get = min_get,
      .set = min_set,
      .destroy = min_destroy,
      .close = min_close,
      .all_expired = v2_all_expired,
  };
  csn_store a = {&v2}, b = {&v3};
  (void)state;
  assert_int_equal(csn_store_all_expired(&a, count_cb, NULL), CSN_ENOTSUP);
  assert_int_equal(v2_all_expired_calls, 0);
  assert_int_equal(csn_store_all_expired(&b, count_cb, NULL), CSN_OK);
  assert_int_equal(v2_all_expired_calls, 1);
}

static void test_free_null(void **state) {
  (void)state;
  csn_store_free(NULL);
  assert_string_equal(csn_store_name(NULL), "");
  assert_int_equal(csn_store_memory_new(NULL, NULL), CSN_EINVAL);
}

static void test_id_valid(void **state) {
  char id[CSN_ID_MAX + 2];
  (void)state;
  assert_true(csn_store_id_valid("abc_DEF-123"));
  assert_true(csn_store_id_valid("...")); /* only "." and ".." are special */
  assert_true(csn_store_id_valid("s\xc3\xa9"));
  assert_false(csn_store_id_valid(NULL));
  assert_false(csn_store_id_valid(""));
  assert_false(csn_store_id_valid("."));
  assert_false(csn_store_id_valid(".."));
  assert_false(csn_store_id_valid("a/b"));
  assert_false(csn_store_id_valid("a\\b"));
  assert_false(csn_store_id_valid("a\x1f"));
  assert_false(csn_store_id_valid("a\x7f"));
  memset(id, 'a', CSN_ID_MAX);
  id[CSN_ID_MAX] = '\0';
  assert_true(csn_store_id_valid(id));
  id[CSN_ID_MAX] = 'a';
  id[CSN_ID_MAX + 1] = '\0';
  assert_false(csn_store_id_valid(id));
}

/* The validation reads an id a word or sixteen bytes at a time; this is
 * the rule byte by byte, for every byte value at every position of ids of
 * the lengths where the block and tail handling change (below 8, 8 to 16,
 * 16 to 32 with overlapping last blocks, and near CSN_ID_MAX). */
static int id_valid_reference(const char *s) {
  size_t n = strlen(s), i;
  if (n == 0 || n > CSN_ID_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
      return 0;
  }
  return 1;
}

static void test_id_valid_every_byte(void **state) {
  static const size_t lens[] = {1,  2,  3,  7,  8,  9,  15, 16,  17,  24,
                                31, 32, 33, 40, 47, 48, 49, 250, 254, 255};
  char id[CSN_ID_MAX + 2];
  size_t li, pos;
  int c, refused = 0;
  (void)state;
  for (li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    size_t n = lens[li];
    for (pos = 0; pos < n; pos++) {
      for (c = 1; c < 256; c++) {
        memset(id, 'a', n);
        id[n] = '\0';
        id[pos] = (char)c;
        if (csn_store_id_valid(id) != id_valid_reference(id))
          fail_msg("id of %zu bytes with 0x%02x at %zu", n, c, pos);
        refused += !id_valid_reference(id);
      }
    }
  }
  /* Not vacuous: 36 refused byte values per position were met. */
  assert_true(refused > 1000);
  /* Ids that differ only past CSN_ID_MAX: refused for their length. */
  memset(id, 'a', CSN_ID_MAX + 1);
  id[CSN_ID_MAX + 1] = '\0';
  assert_false(csn_store_id_valid(id));
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  /* Record semantics: expiry, touch and compare-and-set. */
  const struct CMUnitTest expiry[] = {
      cmocka_unit_test(test_expiry_fake_clock),
      cmocka_unit_test(test_expired_in_chain),
      cmocka_unit_test(test_table_churn),
      cmocka_unit_test(test_table_churn_capped),
      cmocka_unit_test(test_touch_splice),
      cmocka_unit_test(test_cas_written),
      cmocka_unit_test(test_cas_conflict),
      cmocka_unit_test(test_cas_missing),
      cmocka_unit_test(test_cas_bytes),
      cmocka_unit_test(test_cas_sizes),
      cmocka_unit_test(test_cas_capacity),
      cmocka_unit_test(test_cas_threads),
  };
  const struct CMUnitTest prune[] = {
      cmocka_unit_test(test_prune_background),
      cmocka_unit_test(test_prune_amortised),
      cmocka_unit_test(test_prune_thread_only),
      cmocka_unit_test(test_prune_close_prompt),
      cmocka_unit_test(test_prune_bound),
      cmocka_unit_test(test_prune_shrinks),
      cmocka_unit_test(test_shard_count),
  };
  const struct CMUnitTest evict[] = {
      cmocka_unit_test(test_evict_max_one),
      cmocka_unit_test(test_evict_queue_unlinks),
      cmocka_unit_test(test_set_over_keeps_place),
      cmocka_unit_test(test_evict_bounded),
      cmocka_unit_test(test_evict_expired_first),
      cmocka_unit_test(test_evict_spares_returning),
      cmocka_unit_test(test_ctx_default_bounded),
      cmocka_unit_test(test_evict_concurrent),
  };
  const struct CMUnitTest url[] = {
      cmocka_unit_test(test_url_good),
      cmocka_unit_test(test_url_options_apply),
      cmocka_unit_test(test_url_bad),
      cmocka_unit_test(test_url_unknown_scheme),
      cmocka_unit_test(test_url_register),
  };
  const struct CMUnitTest errors[] = {
      cmocka_unit_test(test_errmsg_per_thread),
      cmocka_unit_test(test_fault_injection),
      cmocka_unit_test(test_dispatch_checks),
      cmocka_unit_test(test_all_expired_needs_v3),
      cmocka_unit_test(test_free_null),
      cmocka_unit_test(test_id_valid),
      cmocka_unit_test(test_id_valid_every_byte),
  };
  const char *g = argc > 1 ? argv[1] : "all";
  int all = strcmp(g, "all") == 0, failed = 0, ran = 0;
  if (all || strcmp(g, "conformance") == 0) {
    failed += run_conformance();
    ran = 1;
  }
#define GROUP(name, arr)                                                    \
  if (all || strcmp(g, #name) == 0) {                                       \
    failed += _cmocka_run_group_tests("store_memory_" #name, arr,           \
                                      CSN__ARRAY_SIZE(arr), NULL, NULL);    \
    ran = 1;                                                                \
  }
  GROUP(expiry, expiry)
  GROUP(prune, prune)
  GROUP(evict, evict)
  GROUP(url, url)
  GROUP(errors, errors)
#undef GROUP
  if (!ran) {
    fprintf(stderr, "unknown group '%s'\n", g);
    return 2;
  }
  return failed != 0;
}
