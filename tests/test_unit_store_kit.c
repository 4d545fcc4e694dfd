/* test_unit_store_kit.c - the store-author kit of csn/csn_store.h: the
 * cookie splice, the URL helpers, the constructor error helper and the
 * sweeper thread. Only public headers: this is what a store author sees. */
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kit_splice_keeps_every_other_byte),
      cmocka_unit_test(kit_splice_adds_a_missing_cookie_first),
      cmocka_unit_test(kit_splice_rejects_bad_input),
      cmocka_unit_test(kit_url_split),
      cmocka_unit_test(kit_url_parse_query),
      cmocka_unit_test(kit_url_redact),
      cmocka_unit_test(kit_store_fail_fills_both),
      cmocka_unit_test(kit_sweeper_runs_and_stops),
      cmocka_unit_test(kit_sweeper_stop_interrupts_a_long_sweep),
      cmocka_unit_test(kit_sweeper_rejects_bad_arguments),
  };
  return cmocka_run_group_tests_name("unit_store_kit", tests, NULL, NULL);
}
