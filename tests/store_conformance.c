/* store_conformance.c - the behaviour every csn_store must show.
 *
 * Only public calls are used, so the suite knows nothing about any one
 * store. Records look like what express-session writes (a "cookie" object
 * first, then the application's members), because some stores read the
 * cookie. Threads never call cmocka's assertions (they longjmp): they count
 * failures, and the main thread asserts on the counts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "store_conformance.h"
#include "test_clock.h"

typedef struct fixture {
  const csn_conformance *c;
  csn_store *st;
} fixture;

/* Is `needle` inside json[0..len)? (The text may lack a NUL.) */
static const char *find(const char *json, size_t len, const char *needle) {
  size_t n = strlen(needle), i;
  for (i = 0; i + n <= len; i++)
    if (memcmp(json + i, needle, n) == 0) return json + i;
  return NULL;
}

static int64_t fx_now(const fixture *f) {
  return f->c->now != NULL ? f->c->now(f->c->ud) : wall_ms();
}

/* "expires" as Date#toISOString writes it, for the record text. */
static void iso(int64_t ms, char *out, size_t size) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  /* Years 0..9999 only: records here are near "now". */
  snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ms % 1000));
}

/* An express-style record (malloc'd). `members` is ",..." text or "". */
static char *record(int64_t expires, const char *members) {
  char when[64], *out;
  size_t n;
  if (expires == CSN_TIME_NONE)
    snprintf(when, sizeof when, "null");
  else {
    when[0] = '"';
    iso(expires, when + 1, sizeof when - 2);
    strcat(when, "\"");
  }
  n = strlen(members) + 200;
  out = malloc(n);
  if (out == NULL) return NULL;
  snprintf(out, n,
           "{\"cookie\":{\"originalMaxAge\":%s,\"expires\":%s,"
           "\"httpOnly\":true,\"path\":\"/\"}%s}",
           expires == CSN_TIME_NONE ? "null" : "60000", when, members);
  return out;
}

static int setup(void **state) {
  fixture *f = *state;
  if (f->c->reset != NULL) f->c->reset(f->c->ud);
  f->st = f->c->open(f->c->ud);
  if (f->st == NULL) {
    print_error("could not open the store: %s\n", csn_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  csn_store_free(f->st);
  f->st = NULL;
  return 0;
}

static void set_ok(csn_store *st, const char *sid, const char *json,
                   int64_t exp) {
  int rc = csn_store_set(st, sid, json, strlen(json), exp);
  if (rc != CSN_OK) print_error("set %s: %s\n", sid, csn_last_error());
  assert_int_equal(rc, CSN_OK);
}

/* get must succeed and return exactly `want`. */
static void get_eq(csn_store *st, const char *sid, const char *want) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, sid, &json, &len);
  assert_int_equal(rc, CSN_OK);
  assert_non_null(json);
  assert_int_equal(len, strlen(want));
  assert_memory_equal(json, want, len);
  csn_free(json);
}

static void get_missing(csn_store *st, const char *sid) {
  char *json = (char *)"untouched";
  size_t len = 7;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_ENOENT);
  assert_null(json);
}

/* ------------------------------------------------------------------------ */

static void t_round_trip(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char *r = record(exp, ",\"views\":3");
  assert_non_null(r);
  set_ok(f->st, "conf-rt", r, exp);
  get_eq(f->st, "conf-rt", r);
  /* get hands out a copy: scribbling on it must not change the store. */
  {
    char *json;
    size_t len;
    assert_int_equal(csn_store_get(f->st, "conf-rt", &json, &len), CSN_OK);
    memset(json, 'x', len);
    csn_free(json);
    get_eq(f->st, "conf-rt", r);
  }
  assert_int_equal(csn_store_destroy(f->st, "conf-rt"), CSN_OK);
  get_missing(f->st, "conf-rt");
  free(r);
}

static void t_len_not_strlen(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char *r = record(exp, ",\"a\":1");
  char *buf;
  size_t n;
  assert_non_null(r);
  n = strlen(r);
  /* The store must take exactly len bytes, not read up to a NUL. */
  buf = malloc(n + 16);
  assert_non_null(buf);
  memcpy(buf, r, n);
  memcpy(buf + n, "GARBAGE-GARBAGE", 16);
  assert_int_equal(csn_store_set(f->st, "conf-len", buf, n, exp), CSN_OK);
  get_eq(f->st, "conf-len", r);
  free(buf);
  free(r);
}

static void t_overwrite(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char *a = record(exp, ",\"v\":\"first, a longer value than the second\"");
  char *b = record(exp + 1000, ",\"v\":2");
  assert_non_null(a);
  assert_non_null(b);
  set_ok(f->st, "conf-ow", a, exp);
  set_ok(f->st, "conf-ow", b, exp + 1000);
  get_eq(f->st, "conf-ow", b);
  free(a);
  free(b);
}

static void t_missing(void **state) {
  fixture *f = *state;
  get_missing(f->st, "conf-never-set");
  assert_int_equal(csn_store_destroy(f->st, "conf-never-set"), CSN_OK);
  get_missing(f->st, "conf-never-set");
}

static void t_touch_missing(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char *r = record(exp, "");
  int rc;
  assert_non_null(r);
  rc = csn_store_touch(f->st, "conf-touch-none", r, strlen(r), exp);
  free(r);
  if (rc == CSN_ENOTSUP && f->c->no_touch) skip();
  assert_int_equal(rc, CSN_OK);
  /* touch never creates a record. */
  get_missing(f->st, "conf-touch-none");
}

static void t_touch_keeps_data(void **state) {
  fixture *f = *state;
  int64_t now = fx_now(f), exp1 = now + 60000, exp2 = now + 7200000;
  /* 0.1 must come back as written: a store that re-serialises the data
   * would write 0.10000000000000001. */
  char *stored = record(exp1, ",\"user\":\"ann\",\"n\":0.1,\"deep\":{\"a\":[1]}");
  char *fresh = record(exp2, ",\"user\":\"IGNORED\"");
  char *json;
  size_t len;
  json_t *got, *want;
  int rc;
  assert_non_null(stored);
  assert_non_null(fresh);
  set_ok(f->st, "conf-touch", stored, exp1);
  rc = csn_store_touch(f->st, "conf-touch", fresh, strlen(fresh), exp2);
  if (rc == CSN_ENOTSUP && f->c->no_touch) {
    free(stored);
    free(fresh);
    skip();
  }
  assert_int_equal(rc, CSN_OK);
  if (f->c->touch_expiry_only) {
    get_eq(f->st, "conf-touch", stored);
    free(stored);
    free(fresh);
    return;
  }
  assert_int_equal(csn_store_get(f->st, "conf-touch", &json, &len), CSN_OK);
  got = json_loadb(json, len, 0, NULL);
  assert_non_null(got);
  /* The data members are the stored ones... */
  assert_string_equal(json_string_value(json_object_get(got, "user")), "ann");
  assert_non_null(find(json, len, "\"n\":0.1,"));
  assert_non_null(json_object_get(got, "deep"));
  /* ...and the cookie is the one passed to touch. */
  want = json_loads(fresh, 0, NULL);
  assert_non_null(want);
  assert_true(json_equal(json_object_get(got, "cookie"),
                         json_object_get(want, "cookie")));
  json_decref(got);
  json_decref(want);
  csn_free(json);
  free(stored);
  free(fresh);
}

/* touch moves the expiry: to the past (works on any clock), and, where the
 * clock can be moved, beyond the original expiry. */
static void t_touch_expiry(void **state) {
  fixture *f = *state;
  int64_t now = fx_now(f);
  char *r = record(now + 3600000, ",\"k\":1");
  char *past = record(now - 5000, ",\"k\":1");
  int rc;
  assert_non_null(r);
  assert_non_null(past);
  set_ok(f->st, "conf-te", r, now + 3600000);
  rc = csn_store_touch(f->st, "conf-te", past, strlen(past), now - 5000);
  if (rc == CSN_ENOTSUP && f->c->no_touch) {
    free(r);
    free(past);
    skip();
  }
  assert_int_equal(rc, CSN_OK);
  get_missing(f->st, "conf-te");
  if (f->c->advance != NULL) {
    char *soon = record(now + 1000, ",\"k\":2");
    char *later = record(now + 100000, ",\"k\":2");
    assert_non_null(soon);
    assert_non_null(later);
    set_ok(f->st, "conf-te2", soon, now + 1000);
    set_ok(f->st, "conf-te3", soon, now + 1000);
    assert_int_equal(
        csn_store_touch(f->st, "conf-te2", later, strlen(later), now + 100000),
        CSN_OK);
    f->c->advance(f->c->ud, 5000);
    get_eq(f->st, "conf-te2", later);
    get_missing(f->st, "conf-te3"); /* the untouched control expired */
    free(soon);
    free(later);
  }
  free(r);
  free(past);
}

static void t_expired_not_returned(void **state) {
  fixture *f = *state;
  int64_t now = fx_now(f);
  char *old = record(now - 1000, ",\"x\":1");
  char *live = record(now + 3600000, ",\"x\":2");
  size_t n;
  int rc;
  assert_non_null(old);
  assert_non_null(live);
  set_ok(f->st, "conf-exp-old", old, now - 1000);
  set_ok(f->st, "conf-exp-live", live, now + 3600000);
  get_missing(f->st, "conf-exp-old");
  get_eq(f->st, "conf-exp-live", live);
  /* Expired records do not count either. */
  set_ok(f->st, "conf-exp-old2", old, now - 1000);
  rc = csn_store_length(f->st, &n);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    assert_int_equal(n, 1);
  }
  if (f->c->advance != NULL) {
    f->c->advance(f->c->ud, 3600000);
    get_missing(f->st, "conf-exp-live");
  }
  free(old);
  free(live);
}

static void t_time_none_persists(void **state) {
  fixture *f = *state;
  char *r = record(CSN_TIME_NONE, ",\"forever\":true");
  assert_non_null(r);
  set_ok(f->st, "conf-none", r, CSN_TIME_NONE);
  get_eq(f->st, "conf-none", r);
  if (f->c->advance != NULL) {
    f->c->advance(f->c->ud, 3600000);
    get_eq(f->st, "conf-none", r);
  }
  free(r);
}

typedef struct seen {
  int count;
  int ok;      /* every record was the one written for its id */
  int stop_at; /* return non-zero after this many (0: never) */
} seen;

static int each_cb(const char *sid, const char *json, size_t len, void *ud) {
  seen *s = ud;
  char want[96];
  s->count++;
  /* Records are {"cookie":..,"id":"<sid>"}: check they belong together. */
  snprintf(want, sizeof want, "\"id\":\"%s\"", sid);
  if (find(json, len, want) == NULL) s->ok = 0;
  return s->stop_at != 0 && s->count >= s->stop_at;
}

static void t_admin(void **state) {
  fixture *f = *state;
  int64_t now = fx_now(f), exp = now + 3600000;
  const char *ids[] = {"conf-adm-a", "conf-adm-b", "conf-adm-c"};
  seen s;
  size_t n, i;
  int rc;
  char *gone = record(now - 1000, ",\"id\":\"conf-adm-old\"");
  assert_non_null(gone);
  for (i = 0; i < 3; i++) {
    char members[64], *r;
    snprintf(members, sizeof members, ",\"id\":\"%s\"", ids[i]);
    r = record(exp, members);
    assert_non_null(r);
    set_ok(f->st, ids[i], r, exp);
    free(r);
  }
  set_ok(f->st, "conf-adm-old", gone, now - 1000);
  free(gone);

  rc = csn_store_length(f->st, &n);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    assert_int_equal(n, 3);
  }
  memset(&s, 0, sizeof s);
  s.ok = 1;
  rc = csn_store_all(f->st, each_cb, &s);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    assert_int_equal(s.count, 3);
    assert_true(s.ok);
    /* A non-zero return from the callback stops the walk. */
    memset(&s, 0, sizeof s);
    s.ok = 1;
    s.stop_at = 1;
    assert_int_equal(csn_store_all(f->st, each_cb, &s), CSN_OK);
    assert_int_equal(s.count, 1);
  }
  rc = csn_store_clear(f->st);
  if (rc == CSN_ENOTSUP) return;
  assert_int_equal(rc, CSN_OK);
  for (i = 0; i < 3; i++) get_missing(f->st, ids[i]);
  rc = csn_store_length(f->st, &n);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    assert_int_equal(n, 0);
  }
}

/* What a walk saw: each id and its text, copied (the callback must not
 * assert: a longjmp out of the store's walk would skip its clean-up). */
#define WALK_MAX 16
typedef struct got {
  int count;    /* callbacks, including any past WALK_MAX */
  int stop_at;  /* return non-zero after this many (0: never) */
  char *sid[WALK_MAX];
  char *json[WALK_MAX];
} got;

static int got_cb(const char *sid, const char *json, size_t len, void *ud) {
  got *g = ud;
  if (g->count < WALK_MAX) {
    g->sid[g->count] = strdup(sid);
    g->json[g->count] = strndup(json, len);
    /* A text with a NUL in it would be cut short and then not compare
     * equal: the check below catches it. */
    if (g->json[g->count] != NULL && strlen(g->json[g->count]) != len) {
      free(g->json[g->count]);
      g->json[g->count] = NULL;
    }
  }
  g->count++;
  return g->stop_at != 0 && g->count >= g->stop_at;
}

static void got_free(got *g) {
  for (int i = 0; i < WALK_MAX; i++) {
    free(g->sid[i]);
    free(g->json[i]);
  }
  memset(g, 0, sizeof *g);
}

/* The walk saw exactly the n records ids[i] with texts texts[i], once each,
 * in any order. */
static void got_exactly(const got *g, const char *what, const char *const *ids,
                        char *const *texts, int n) {
  if (g->count != n)
    fail_msg("%s: %d records, expected %d", what, g->count, n);
  for (int i = 0; i < n; i++) {
    int hits = 0;
    for (int k = 0; k < g->count; k++) {
      if (g->sid[k] == NULL || strcmp(g->sid[k], ids[i]) != 0) continue;
      hits++;
      if (g->json[k] == NULL || strcmp(g->json[k], texts[i]) != 0)
        fail_msg("%s: %s has the text %s, expected %s", what, ids[i],
                 g->json[k] ? g->json[k] : "(none)", texts[i]);
    }
    if (hits != 1) fail_msg("%s: %s seen %d times", what, ids[i], hits);
  }
}

/* all_expired (a version 3 method): exactly the records still stored whose
 * expiry has passed, with their texts; all() exactly the live ones. Every
 * record is first written live, so that no write happens while one is
 * expired (a store may sweep on writes, as the memory store's inserts do).
 * Then the clock is moved where it can be; otherwise the two doomed
 * records are overwritten with an expiry already in the past (an
 * overwrite, not an insert). all_expired runs before all() and length(),
 * which may remove expired records on the way (the memory store's do). */
static void t_all_expired(void **state) {
  fixture *f = *state;
  int64_t now = fx_now(f), live_exp = now + 3600000;
  int64_t doom = f->c->advance != NULL ? now + 1000 : live_exp;
  const char *live_ids[2] = {"conf-ae-live", "conf-ae-none"};
  const char *old_ids[2] = {"conf-ae-old1", "conf-ae-old2"};
  char *live[2], *old[2];
  got g;
  size_t n;
  int rc;
  memset(&g, 0, sizeof g);
  live[0] = record(live_exp, ",\"id\":\"conf-ae-live\"");
  live[1] = record(CSN_TIME_NONE, ",\"id\":\"conf-ae-none\"");
  old[0] = record(doom, ",\"id\":\"conf-ae-old1\"");
  old[1] = record(doom, ",\"id\":\"conf-ae-old2\"");
  for (int i = 0; i < 2; i++) {
    assert_non_null(live[i]);
    assert_non_null(old[i]);
  }

  rc = csn_store_all_expired(f->st, got_cb, &g);
  if (rc == CSN_ENOTSUP && !f->c->all_expired) {
    print_message("all_expired: this store cannot enumerate expired "
                  "records (CSN_ENOTSUP): skipped\n");
    for (int i = 0; i < 2; i++) {
      free(live[i]);
      free(old[i]);
    }
    skip();
  }
  assert_int_equal(rc, CSN_OK);
  assert_int_equal(g.count, 0); /* a fresh store */
  assert_int_equal(csn_store_all_expired(f->st, NULL, NULL), CSN_EINVAL);

  set_ok(f->st, old_ids[0], old[0], doom);
  set_ok(f->st, live_ids[0], live[0], live_exp);
  set_ok(f->st, old_ids[1], old[1], doom);
  set_ok(f->st, live_ids[1], live[1], CSN_TIME_NONE);
  /* All four live: none is expired yet. */
  rc = csn_store_all_expired(f->st, got_cb, &g);
  assert_int_equal(rc, CSN_OK);
  assert_int_equal(g.count, 0);
  if (f->c->advance != NULL) {
    f->c->advance(f->c->ud, 5000);
  } else {
    for (int i = 0; i < 2; i++) {
      free(old[i]);
      old[i] = record(now - 60000, i == 0 ? ",\"id\":\"conf-ae-old1\""
                                          : ",\"id\":\"conf-ae-old2\"");
      assert_non_null(old[i]);
      set_ok(f->st, old_ids[i], old[i], now - 60000);
    }
  }

  rc = csn_store_all_expired(f->st, got_cb, &g);
  assert_int_equal(rc, CSN_OK);
  got_exactly(&g, "all_expired", old_ids, old, 2);
  got_free(&g);
  /* A non-zero return stops the walk. */
  g.stop_at = 1;
  assert_int_equal(csn_store_all_expired(f->st, got_cb, &g), CSN_OK);
  assert_int_equal(g.count, 1);
  got_free(&g);

  rc = csn_store_all(f->st, got_cb, &g);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    got_exactly(&g, "all", live_ids, live, 2);
  }
  got_free(&g);
  rc = csn_store_length(f->st, &n);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    assert_int_equal(n, 2);
  }

  /* What all_expired showed is what prune removes: afterwards it shows
   * nothing, and the live records are all still there. */
  rc = csn_store_prune(f->st, &n);
  if (rc != CSN_ENOTSUP) {
    assert_int_equal(rc, CSN_OK);
    assert_int_equal(csn_store_all_expired(f->st, got_cb, &g), CSN_OK);
    assert_int_equal(g.count, 0);
    get_eq(f->st, live_ids[0], live[0]);
    get_eq(f->st, live_ids[1], live[1]);
  }
  got_free(&g);
  for (int i = 0; i < 2; i++) {
    free(live[i]);
    free(old[i]);
  }
}

static void t_bad_ids(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char long_id[301];
  const char *bad[] = {"", ".", "..", "../x", "a/b", "a\\b", "a\x01z",
                       "tab\there", "nl\n", "del\x7f", long_id};
  char *r = record(exp, "");
  size_t i, n0 = 0, n1 = 0;
  int has_len;
  assert_non_null(r);
  memset(long_id, 'a', 300);
  long_id[300] = '\0';
  has_len = csn_store_length(f->st, &n0) == CSN_OK;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *json = NULL;
    size_t len;
    assert_int_equal(csn_store_set(f->st, bad[i], r, strlen(r), exp),
                     CSN_EINVAL);
    assert_int_equal(csn_store_get(f->st, bad[i], &json, &len), CSN_EINVAL);
    assert_null(json);
    assert_int_equal(csn_store_destroy(f->st, bad[i]), CSN_EINVAL);
    {
      int rc = csn_store_touch(f->st, bad[i], r, strlen(r), exp);
      assert_true(rc == CSN_EINVAL || rc == CSN_ENOTSUP);
    }
  }
  assert_int_equal(csn_store_set(f->st, NULL, r, strlen(r), exp), CSN_EINVAL);
  /* Nothing was written: the 255-byte limit is the edge, 255 is fine. */
  if (has_len) {
    assert_int_equal(csn_store_length(f->st, &n1), CSN_OK);
    assert_int_equal(n1, n0);
  }
  long_id[255] = '\0';
  set_ok(f->st, long_id, r, exp);
  get_eq(f->st, long_id, r);
  free(r);
}

static void t_large_record(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  size_t big = 1024 * 1024;
  char *members = malloc(big + 32), *r;
  size_t i;
  assert_non_null(members);
  strcpy(members, ",\"blob\":\"");
  for (i = strlen(members); i < big; i++) members[i] = (char)('a' + i % 26);
  strcpy(members + big, "\"");
  r = record(exp, members);
  assert_non_null(r);
  set_ok(f->st, "conf-big", r, exp);
  get_eq(f->st, "conf-big", r);
  free(members);
  free(r);
}

static void t_unicode(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  /* Raw UTF-8 (2, 3 and 4 byte sequences) next to escapes that must stay
   * escapes: the store keeps text, it does not normalise it. */
  char *r = record(exp,
                   ",\"name\":\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\","
                   "\"esc\":\"\\u00e9\\n\\\"q\\\"\",\"\xc3\xa9\":1");
  assert_non_null(r);
  set_ok(f->st, "conf-utf8", r, exp);
  get_eq(f->st, "conf-utf8", r);
  free(r);
}

/* ------------------------------------------------------------------------ */
/* Concurrent writers                                                       */
/* ------------------------------------------------------------------------ */

#define CONC_THREADS 8
#define CONC_OPS 500
#define CONC_SHARED 16

typedef struct worker {
  csn_store *st;
  int id;
  int shared; /* 1: all threads on the same ids */
  int64_t exp;
  int errors; /* failed calls or malformed reads */
} worker;

static void shared_id(char *out, size_t n, int i) {
  snprintf(out, n, "conf-shared-%d", i % CONC_SHARED);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  int i;
  for (i = 0; i < CONC_OPS; i++) {
    char sid[64], members[96], *r, *json;
    size_t len;
    int rc;
    if (w->shared)
      shared_id(sid, sizeof sid, i);
    else
      snprintf(sid, sizeof sid, "conf-t%d-%d", w->id, i % 25);
    snprintf(members, sizeof members, ",\"w\":%d,\"i\":%d,\"sid\":\"%s\"",
             w->id, i, sid);
    r = record(w->exp, members);
    if (r == NULL) {
      w->errors++;
      continue;
    }
    switch (i % 5) {
      case 0:
      case 1:
        if (csn_store_set(w->st, sid, r, strlen(r), w->exp) != CSN_OK)
          w->errors++;
        if (!w->shared) {
          /* Nobody else writes this id: we must read our own write. */
          rc = csn_store_get(w->st, sid, &json, &len);
          if (rc != CSN_OK || len != strlen(r) || memcmp(json, r, len) != 0)
            w->errors++;
          if (rc == CSN_OK) csn_free(json);
        }
        break;
      case 2:
        rc = csn_store_get(w->st, sid, &json, &len);
        if (rc == CSN_OK) {
          /* Whatever we read must be one whole record, never a blend. */
          json_t *j = json_loadb(json, len, 0, NULL);
          char want[96];
          snprintf(want, sizeof want, "\"sid\":\"%s\"", sid);
          if (j == NULL || find(json, len, want) == NULL) w->errors++;
          json_decref(j);
          csn_free(json);
        } else if (rc != CSN_ENOENT) {
          w->errors++;
        }
        break;
      case 3:
        rc = csn_store_touch(w->st, sid, r, strlen(r), w->exp);
        if (rc != CSN_OK && rc != CSN_ENOTSUP) w->errors++;
        break;
      default:
        if (i % 10 == 4 && csn_store_destroy(w->st, sid) != CSN_OK)
          w->errors++;
        break;
    }
    free(r);
  }
  return NULL;
}

static void run_workers(fixture *f, int shared) {
  pthread_t th[CONC_THREADS];
  worker w[CONC_THREADS];
  int i, errors = 0;
  for (i = 0; i < CONC_THREADS; i++) {
    w[i].st = f->st;
    w[i].id = i;
    w[i].shared = shared;
    w[i].exp = fx_now(f) + 3600000;
    w[i].errors = 0;
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (i = 0; i < CONC_THREADS; i++) {
    pthread_join(th[i], NULL);
    errors += w[i].errors;
  }
  assert_int_equal(errors, 0);
}

static void t_concurrent_distinct(void **state) {
  fixture *f = *state;
  int t, k;
  run_workers(f, 0);
  /* Final state is known exactly: the last op on each id of each thread.
   * Ids k = i % 25 for i in [475, 500): i % 5 == 4 with i % 10 == 4 means
   * destroyed; otherwise the last set (possibly touched, same text). */
  for (t = 0; t < CONC_THREADS; t++) {
    for (k = 0; k < 25; k++) {
      char sid[64];
      int i, last_set = -1, destroyed = 0;
      snprintf(sid, sizeof sid, "conf-t%d-%d", t, k);
      for (i = k; i < CONC_OPS; i += 25) {
        if (i % 5 == 0 || i % 5 == 1) {
          last_set = i;
          destroyed = 0;
        } else if (i % 10 == 4) {
          destroyed = 1;
        }
      }
      if (destroyed || last_set < 0) {
        get_missing(f->st, sid);
      } else {
        char *json;
        size_t len;
        char want[96];
        assert_int_equal(csn_store_get(f->st, sid, &json, &len), CSN_OK);
        snprintf(want, sizeof want, "\"w\":%d,\"i\":%d,", t, last_set);
        assert_non_null(find(json, len, want));
        csn_free(json);
      }
    }
  }
}

static void t_concurrent_shared(void **state) {
  fixture *f = *state;
  int k;
  run_workers(f, 1);
  /* Any surviving record is whole and belongs to its id. */
  for (k = 0; k < CONC_SHARED; k++) {
    char sid[64], want[96], *json;
    size_t len;
    int rc;
    shared_id(sid, sizeof sid, k);
    rc = csn_store_get(f->st, sid, &json, &len);
    if (rc == CSN_ENOENT) continue;
    assert_int_equal(rc, CSN_OK);
    {
      json_t *j = json_loadb(json, len, 0, NULL);
      json_int_t w;
      assert_non_null(j);
      w = json_integer_value(json_object_get(j, "w"));
      assert_true(w >= 0 && w < CONC_THREADS);
      json_decref(j);
    }
    snprintf(want, sizeof want, "\"sid\":\"%s\"", sid);
    assert_non_null(find(json, len, want));
    csn_free(json);
  }
}

/* ------------------------------------------------------------------------ */
/* Compare-and-set (version 2 stores that have it)                          */
/* ------------------------------------------------------------------------ */

static int cas_str(csn_store *st, const char *sid, const char *expected,
                   const char *json, int64_t exp) {
  return csn_store_cas(st, sid, expected, strlen(expected), json,
                       strlen(json), exp);
}

static void t_cas_semantics(void **state) {
  fixture *f = *state;
  int64_t now = fx_now(f), exp = now + 3600000;
  char *a = record(exp, ",\"v\":\"a\"");
  char *b = record(exp, ",\"v\":\"b\"");
  char *c = record(exp, ",\"v\":\"c\"");
  char *old = record(now - 1000, ",\"v\":\"old\"");
  char *prefix;
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_non_null(old);
  if (f->c->cas)
    assert_true(csn_store_has_cas(f->st));
  if (!csn_store_has_cas(f->st)) {
    assert_int_equal(cas_str(f->st, "conf-cas", a, b, exp), CSN_ENOTSUP);
    goto out;
  }
  /* Absent: nothing to compare with, nothing created. */
  assert_int_equal(cas_str(f->st, "conf-cas", a, b, exp), CSN_ENOENT);
  get_missing(f->st, "conf-cas");

  set_ok(f->st, "conf-cas", a, exp);
  /* Equal: written. */
  assert_int_equal(cas_str(f->st, "conf-cas", a, b, exp), CSN_OK);
  get_eq(f->st, "conf-cas", b);
  /* Stale expectation: a conflict, and the record stays as it is. */
  assert_int_equal(cas_str(f->st, "conf-cas", a, c, exp), CSN_ECONFLICT);
  get_eq(f->st, "conf-cas", b);
  /* A prefix of the stored text is not the stored text. */
  prefix = strdup(b);
  assert_non_null(prefix);
  prefix[strlen(prefix) - 1] = '\0';
  assert_int_equal(cas_str(f->st, "conf-cas", prefix, c, exp), CSN_ECONFLICT);
  get_eq(f->st, "conf-cas", b);
  free(prefix);

  /* Destroyed meanwhile: a logout wins, nothing comes back. */
  assert_int_equal(csn_store_destroy(f->st, "conf-cas"), CSN_OK);
  assert_int_equal(cas_str(f->st, "conf-cas", b, c, exp), CSN_ENOENT);
  get_missing(f->st, "conf-cas");

  /* Expired counts as gone, whatever its text. */
  set_ok(f->st, "conf-cas-old", old, now - 1000);
  assert_int_equal(cas_str(f->st, "conf-cas-old", old, a, exp), CSN_ENOENT);
  get_missing(f->st, "conf-cas-old");
out:
  free(a);
  free(b);
  free(c);
  free(old);
}

/* A record written by another implementation (Node) with its own spacing
 * and number forms: get() hands back that exact text, so a cas against it
 * succeeds. A store that re-serialised on the way would fail here. */
static void t_cas_foreign_text(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char when[64], foreign[512];
  char *mine = record(exp, ",\"n\":1");
  char *json = NULL;
  size_t len = 0;
  assert_non_null(mine);
  if (!csn_store_has_cas(f->st)) {
    free(mine);
    if (f->c->cas) fail_msg("the store was declared with cas but has none");
    skip();
  }
  iso(exp, when, sizeof when);
  snprintf(foreign, sizeof foreign,
           "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"%s\","
           "\"httpOnly\":true,\"path\":\"/\"},\"n\":0.1,\"big\":1e+21,"
           "\"s\":\"\\u00e9\\n\"}",
           when);
  set_ok(f->st, "conf-cas-node", foreign, exp);
  assert_int_equal(csn_store_get(f->st, "conf-cas-node", &json, &len),
                   CSN_OK);
  assert_int_equal(csn_store_cas(f->st, "conf-cas-node", json, len, mine,
                                 strlen(mine), exp),
                   CSN_OK);
  csn_free(json);
  get_eq(f->st, "conf-cas-node", mine);
  free(mine);
}

/* The property the core's merge relies on: writers that read, change their
 * own member and compare-and-set, retrying on conflict, lose nothing. */
#define CAS_THREADS 8
#define CAS_ROUNDS 50

typedef struct cas_worker {
  csn_store *st;
  int64_t exp;
  int index;
  int failed;
  int conflicts;
} cas_worker;

static void *cas_worker_main(void *arg) {
  cas_worker *w = arg;
  char key[16];
  int round;
  snprintf(key, sizeof key, "k%d", w->index);
  for (round = 0; round < CAS_ROUNDS && !w->failed; round++) {
    for (;;) {
      char *cur = NULL, *next;
      size_t len = 0;
      json_t *j;
      int rc = csn_store_get(w->st, "conf-cas-race", &cur, &len);
      if (rc != CSN_OK) {
        w->failed = 1;
        break;
      }
      j = json_loadb(cur, len, 0, NULL);
      if (j == NULL) {
        csn_free(cur);
        w->failed = 1;
        break;
      }
      json_object_set_new(
          j, key,
          json_integer(json_integer_value(json_object_get(j, key)) + 1));
      next = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
      json_decref(j);
      rc = csn_store_cas(w->st, "conf-cas-race", cur, len, next,
                         strlen(next), w->exp);
      csn_free(cur);
      free(next);
      if (rc == CSN_OK)
        break;
      if (rc != CSN_ECONFLICT) {
        w->failed = 1;
        break;
      }
      w->conflicts++;
    }
  }
  return NULL;
}

static void t_cas_concurrent(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char *base = record(exp, "");
  cas_worker w[CAS_THREADS];
  pthread_t th[CAS_THREADS];
  char *json = NULL;
  size_t len = 0;
  json_t *j;
  int i, conflicts = 0;
  assert_non_null(base);
  if (!csn_store_has_cas(f->st)) {
    free(base);
    if (f->c->cas) fail_msg("the store was declared with cas but has none");
    skip();
  }
  set_ok(f->st, "conf-cas-race", base, exp);
  free(base);
  for (i = 0; i < CAS_THREADS; i++) {
    w[i].st = f->st;
    w[i].exp = exp;
    w[i].index = i;
    w[i].failed = 0;
    w[i].conflicts = 0;
    assert_int_equal(pthread_create(&th[i], NULL, cas_worker_main, &w[i]), 0);
  }
  for (i = 0; i < CAS_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].failed, 0);
    conflicts += w[i].conflicts;
  }
  assert_int_equal(csn_store_get(f->st, "conf-cas-race", &json, &len),
                   CSN_OK);
  j = json_loadb(json, len, 0, NULL);
  csn_free(json);
  assert_non_null(j);
  for (i = 0; i < CAS_THREADS; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    if (json_integer_value(json_object_get(j, key)) != CAS_ROUNDS)
      print_error("%s = %lld, want %d\n", key,
                  (long long)json_integer_value(json_object_get(j, key)),
                  CAS_ROUNDS);
    assert_int_equal(json_integer_value(json_object_get(j, key)), CAS_ROUNDS);
  }
  json_decref(j);
  print_message("cas race: %d conflicts resolved by retry\n", conflicts);
}

/* ------------------------------------------------------------------------ */
/* Across handles, and the workers stores' own tests share                  */
/* ------------------------------------------------------------------------ */

typedef struct counter_worker {
  csn_store *st;
  const char *sid;
  int64_t exp;
  int failed, conflicts;
} counter_worker;

/* Read, add one to "n", compare-and-set; retry on conflict. */
static void *counter_main(void *arg) {
  counter_worker *w = arg;
  int round;
  for (round = 0; round < CSN_CONFORMANCE_CAS_ROUNDS && !w->failed; round++) {
    for (;;) {
      char *cur = NULL, next[64];
      size_t len = 0;
      int rc = csn_store_get(w->st, w->sid, &cur, &len);
      const char *at = rc == CSN_OK ? find(cur, len, "\"n\":") : NULL;
      if (at == NULL) {
        csn_free(cur);
        w->failed = 1;
        break;
      }
      snprintf(next, sizeof next, "{\"cookie\":{},\"n\":%ld}",
               strtol(at + 4, NULL, 10) + 1);
      rc = csn_store_cas(w->st, w->sid, cur, len, next, strlen(next),
                         w->exp);
      csn_free(cur);
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

void csn_conformance_cas_counter(csn_store *a, csn_store *b, const char *sid,
                                 int64_t exp, char *final, size_t n) {
  const char *start = "{\"cookie\":{},\"n\":0}";
  pthread_t th[CSN_CONFORMANCE_CAS_WORKERS];
  counter_worker w[CSN_CONFORMANCE_CAS_WORKERS];
  int i, conflicts = 0;
  set_ok(a, sid, start, exp);
  for (i = 0; i < CSN_CONFORMANCE_CAS_WORKERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].st = i % 2 ? b : a;
    w[i].sid = sid;
    w[i].exp = exp;
    assert_int_equal(pthread_create(&th[i], NULL, counter_main, &w[i]), 0);
  }
  for (i = 0; i < CSN_CONFORMANCE_CAS_WORKERS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].failed, 0);
    conflicts += w[i].conflicts;
  }
  snprintf(final, n, "{\"cookie\":{},\"n\":%d}",
           CSN_CONFORMANCE_CAS_WORKERS * CSN_CONFORMANCE_CAS_ROUNDS);
  get_eq(a, sid, final);
  get_eq(b, sid, final);
  print_message("cas over two handles: %d increments, %d conflicts "
                "retried\n",
                CSN_CONFORMANCE_CAS_WORKERS * CSN_CONFORMANCE_CAS_ROUNDS,
                conflicts);
}

/* Two handles on the same data: what one writes the other reads, and
 * compare-and-set across them loses no update. */
static void t_cas_two_handles(void **state) {
  fixture *f = *state;
  int64_t exp = fx_now(f) + 3600000;
  char *r = record(exp, ",\"h\":\"a\"");
  char final[64];
  csn_store *b;
  assert_non_null(r);
  if (f->c->open_again == NULL) {
    free(r);
    print_message("no second handle on the same data for this store "
                  "(open_again is NULL): skipped\n");
    skip();
  }
  b = f->c->open_again(f->c->ud);
  if (b == NULL) {
    free(r);
    fail_msg("open_again: %s", csn_last_error());
  }
  set_ok(f->st, "conf-two", r, exp);
  get_eq(b, "conf-two", r);
  assert_int_equal(csn_store_destroy(b, "conf-two"), CSN_OK);
  get_missing(f->st, "conf-two");
  free(r);
  if (csn_store_has_cas(f->st))
    csn_conformance_cas_counter(f->st, b, "conf-cas-two", exp, final,
                                sizeof final);
  csn_store_free(b);
}

#define POOL_ERR 256

typedef struct pool_worker {
  csn_store *st;
  int index, rounds, failures;
  char first_error[POOL_ERR];
} pool_worker;

static void *pool_main(void *arg) {
  pool_worker *w = arg;
  char id[32], rec[64];
  int64_t exp = wall_ms() + 300000;
  int i;
  for (i = 0; i < w->rounds; i++) {
    char *got = NULL;
    size_t n = 0;
    int rc;
    snprintf(id, sizeof id, "t%d-%d", w->index, i % 10);
    snprintf(rec, sizeof rec, "{\"t\":%d,\"i\":%d}", w->index, i);
    rc = csn_store_set(w->st, id, rec, strlen(rec), exp);
    if (rc == CSN_OK) rc = csn_store_get(w->st, id, &got, &n);
    if (rc == CSN_OK && (n != strlen(rec) || memcmp(got, rec, n) != 0))
      rc = CSN_ECORRUPT;
    if (rc != CSN_OK && w->failures++ == 0)
      snprintf(w->first_error, sizeof w->first_error, "%s: %s",
               csn_err_name(rc), csn_store_errmsg(w->st));
    csn_free(got);
  }
  return NULL;
}

void csn_conformance_threads(csn_store *st, int threads, int rounds) {
  pthread_t *th = calloc((size_t)threads, sizeof *th);
  pool_worker *w = calloc((size_t)threads, sizeof *w);
  size_t n = 0;
  int i;
  assert_non_null(th);
  assert_non_null(w);
  for (i = 0; i < threads; i++) {
    w[i].st = st;
    w[i].index = i;
    w[i].rounds = rounds;
    assert_int_equal(pthread_create(&th[i], NULL, pool_main, &w[i]), 0);
  }
  for (i = 0; i < threads; i++) pthread_join(th[i], NULL);
  for (i = 0; i < threads; i++)
    if (w[i].failures) {
      char msg[POOL_ERR];
      snprintf(msg, sizeof msg, "%s", w[i].first_error);
      free(th);
      free(w);
      fail_msg("thread %d: %s", i, msg);
    }
  free(th);
  free(w);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, (size_t)threads * 10);
}

typedef struct walk {
  unsigned char *seen;
  int rows, get_every, count, bad, stop_at;
  const char *sep;
  csn_store *st; /* when set, the callback calls the store */
} walk;

static int walk_cb(const char *sid, const char *json, size_t len, void *ud) {
  walk *w = ud;
  char want[64];
  int i;
  w->count++;
  if (sscanf(sid, "k%d", &i) != 1 || i < 0 || i >= w->rows || w->seen[i]) {
    w->bad++;
    return 0;
  }
  w->seen[i] = 1;
  snprintf(want, sizeof want, "{\"i\":%s%d}", w->sep, i);
  if (len != strlen(want) || memcmp(json, want, len) != 0) w->bad++;
  if (w->st != NULL && i % w->get_every == 0) {
    char *got = NULL;
    size_t n;
    if (csn_store_get(w->st, sid, &got, &n) != CSN_OK) w->bad++;
    csn_free(got);
  }
  return w->stop_at != 0 && w->count >= w->stop_at;
}

void csn_conformance_walk(csn_store *st, int rows, const char *sep,
                          int get_every, int stop_at) {
  walk w;
  int i, missing = 0;
  memset(&w, 0, sizeof w);
  w.seen = calloc((size_t)rows, 1);
  assert_non_null(w.seen);
  w.rows = rows;
  w.sep = sep;
  w.get_every = get_every;
  w.st = st;
  assert_int_equal(csn_store_all(st, walk_cb, &w), CSN_OK);
  for (i = 0; i < rows; i++) missing += !w.seen[i];
  free(w.seen);
  assert_int_equal(w.count, rows);
  assert_int_equal(w.bad, 0);
  assert_int_equal(missing, 0);
  /* A non-zero return stops the walk (inside a later batch, too). */
  memset(&w, 0, sizeof w);
  w.seen = calloc((size_t)rows, 1);
  assert_non_null(w.seen);
  w.rows = rows;
  w.sep = sep;
  w.stop_at = stop_at;
  i = csn_store_all(st, walk_cb, &w);
  free(w.seen);
  assert_int_equal(i, CSN_OK);
  assert_int_equal(w.count, stop_at);
}

/* ------------------------------------------------------------------------ */

int csn_conformance_run(const char *group, const csn_conformance *c) {
  static fixture fx;
#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &fx)
  const struct CMUnitTest tests[] = {
      T(t_round_trip),         T(t_len_not_strlen),
      T(t_overwrite),          T(t_missing),
      T(t_touch_missing),      T(t_touch_keeps_data),
      T(t_touch_expiry),       T(t_expired_not_returned),
      T(t_time_none_persists), T(t_admin),
      T(t_all_expired),
      T(t_bad_ids),            T(t_large_record),
      T(t_unicode),            T(t_concurrent_distinct),
      T(t_concurrent_shared),  T(t_cas_semantics),
      T(t_cas_foreign_text),   T(t_cas_concurrent),
      T(t_cas_two_handles),
  };
#undef T
  fx.c = c;
  fx.st = NULL;
  return _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0],
                                 NULL, NULL);
}
