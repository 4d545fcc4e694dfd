/* test_unit_alloc.c - the allocator hook, OOM behaviour of the buffer and
 * the encoders (fail the Nth allocation for rising N: every failure must
 * surface as CSN_ENOMEM / NULL and leave nothing allocated), error names
 * and the thread-local last error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "csn_int.h"

/* A counting allocator that fails exactly the fail_at-th allocation. */
static long n_allocs;  /* allocations attempted */
static long fail_at;   /* 0: never fail */
static long live;      /* blocks currently allocated */

static int should_fail(void) {
  n_allocs++;
  return fail_at != 0 && n_allocs == fail_at;
}

static void *t_malloc(size_t n) {
  void *p;
  if (should_fail())
    return NULL;
  p = malloc(n);
  if (p)
    live++;
  return p;
}

static void *t_calloc(size_t n, size_t s) {
  void *p;
  if (should_fail())
    return NULL;
  p = calloc(n, s);
  if (p)
    live++;
  return p;
}

static void *t_realloc(void *old, size_t n) {
  void *p;
  if (should_fail())
    return NULL;
  p = realloc(old, n);
  if (p && old == NULL)
    live++;
  return p;
}

static void t_free(void *p) {
  if (p)
    live--;
  free(p);
}

static const csn_allocator counting = {t_malloc, t_calloc, t_realloc, t_free};

static int setup(void **state) {
  (void)state;
  n_allocs = fail_at = live = 0;
  return csn_set_allocator(&counting);
}

static int teardown(void **state) {
  (void)state;
  return csn_set_allocator(NULL);
}

/* Run op with allocation N failing, N = 1, 2, ... until it succeeds; it
 * must fail cleanly before that and succeed eventually. */
static void oom_loop(int (*op)(char **out), const char *want) {
  long n;
  for (n = 1; n < 10000; n++) {
    char *out = NULL;
    int rc;
    n_allocs = 0;
    live = 0;
    fail_at = n;
    rc = op(&out);
    fail_at = 0;
    if (rc == CSN_OK) {
      assert_non_null(out);
      assert_string_equal(out, want);
      csn__free(out);
      assert_int_equal(live, 0);
      assert_true(n > 1); /* at least one failure was exercised */
      return;
    }
    assert_int_equal(rc, CSN_ENOMEM);
    assert_null(out);
    assert_int_equal(live, 0);
  }
  fail_msg("never succeeded");
}

static char big[5000];

static int op_buf(char **out) {
  csn__buf b;
  size_t i;
  csn__buf_init(&b);
  for (i = 0; i < 40; i++) {
    csn__buf_puts(&b, "0123456789");
    csn__buf_printf(&b, "[%zu]", i);
  }
  csn__buf_putc(&b, '!');
  *out = csn__buf_steal(&b, NULL);
  return *out ? CSN_OK : CSN_ENOMEM;
}

static int op_uri(char **out) {
  csn__buf b;
  int rc;
  csn__buf_init(&b);
  rc = csn__uri_encode(&b, big, sizeof big - 1);
  *out = csn__buf_steal(&b, NULL);
  if (rc != CSN_OK && *out != NULL)
    fail_msg("encode failed but steal gave data");
  return *out ? CSN_OK : CSN_ENOMEM;
}

static int op_set_cookie(char **out) {
  csn__buf b;
  csn__cookie c;
  const char *err = NULL;
  int rc;
  memset(&c, 0, sizeof c);
  c.original_max_age = CSN_TIME_NONE;
  c.expires = 0;
  c.http_only = 1;
  c.secure = 1;
  c.partitioned = 1;
  c.same_site = CSN_SAMESITE_LAX;
  c.priority = CSN_PRIORITY_HIGH;
  c.domain = (char *)"example.com";
  c.path = (char *)"/some/long/path/to/make/it/grow/beyond/sixty/four/bytes";
  csn__buf_init(&b);
  rc = csn__set_cookie_serialize(&b, "connect.sid", "s:a/b", 5, &c, &err);
  *out = csn__buf_steal(&b, NULL);
  if (rc == CSN_OK && *out == NULL)
    fail_msg("serialize succeeded but steal failed");
  return *out ? CSN_OK : CSN_ENOMEM;
}

static int op_strdup(char **out) {
  *out = csn__strdup("hello");
  return *out ? CSN_OK : CSN_ENOMEM;
}

static void test_oom_buf(void **state) {
  char want[1024];
  size_t i, len = 0;
  (void)state;
  for (i = 0; i < 40; i++)
    len += (size_t)snprintf(want + len, sizeof want - len, "0123456789[%zu]",
                            i);
  snprintf(want + len, sizeof want - len, "!");
  oom_loop(op_buf, want);
}

static void test_oom_uri(void **state) {
  char *want;
  size_t i;
  (void)state;
  for (i = 0; i < sizeof big - 1; i++)
    big[i] = (i % 3) ? 'a' : '/';
  want = malloc(3 * sizeof big);
  assert_non_null(want);
  want[0] = '\0';
  for (i = 0; i < sizeof big - 1; i++)
    strcat(want, (i % 3) ? "a" : "%2F");
  oom_loop(op_uri, want);
  free(want);
}

static void test_oom_set_cookie(void **state) {
  (void)state;
  oom_loop(op_set_cookie,
           "connect.sid=s%3Aa%2Fb; Domain=example.com; "
           "Path=/some/long/path/to/make/it/grow/beyond/sixty/four/bytes; "
           "Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; "
           "Partitioned; Priority=High; SameSite=Lax");
}

static void test_oom_strdup(void **state) {
  (void)state;
  oom_loop(op_strdup, "hello");
}

/* After an OOM the buffer stays failed: no half-built header escapes. */
static void test_buf_latch(void **state) {
  csn__buf b;
  (void)state;
  csn__buf_init(&b);
  fail_at = 1;
  n_allocs = 0;
  assert_int_equal(csn__buf_puts(&b, "abc"), CSN_ENOMEM);
  fail_at = 0;
  assert_int_equal(csn__buf_puts(&b, "def"), CSN_ENOMEM);
  assert_int_equal(csn__buf_printf(&b, "%d", 1), CSN_ENOMEM);
  assert_null(csn__buf_steal(&b, NULL));
  assert_int_equal(live, 0);
  /* the buffer is reusable after steal */
  assert_int_equal(csn__buf_printf(&b, "%s-%d", "x", 42), 0);
  {
    size_t len = 0;
    char *s = csn__buf_steal(&b, &len);
    assert_string_equal(s, "x-42");
    assert_int_equal(len, 4);
    csn__free(s);
  }
  /* an untouched buffer steals as "" */
  {
    char *s = csn__buf_steal(&b, NULL);
    assert_string_equal(s, "");
    csn__free(s);
  }
  assert_int_equal(live, 0);
}

/* A buffer in the caller's storage: no allocation while the text fits;
 * growing moves it (contents kept) to the heap, OOM then latches; steal
 * always hands out a heap copy, and free never frees the storage. */
static void test_buf_fixed(void **state) {
  char store[8];
  csn__buf b;
  char *s;
  (void)state;
  n_allocs = 0;
  csn__buf_init_fixed(&b, store, sizeof store);
  assert_int_equal(csn__buf_puts(&b, "abcdefg"), CSN_OK); /* 7 + NUL */
  assert_ptr_equal(b.data, store);
  assert_int_equal(n_allocs, 0);
  s = csn__buf_steal(&b, NULL);
  assert_non_null(s);
  assert_true(s != store);
  assert_string_equal(s, "abcdefg");
  csn__free(s);

  csn__buf_init_fixed(&b, store, sizeof store);
  assert_int_equal(csn__buf_puts(&b, "abcd"), CSN_OK);
  assert_int_equal(csn__buf_puts(&b, "efghij"), CSN_OK);
  assert_true(b.data != store);
  assert_int_equal(b.fixed, 0);
  assert_string_equal(b.data, "abcdefghij");
  csn__buf_free(&b);
  assert_int_equal(live, 0);

  /* The move itself fails: the storage keeps what it had, the buffer is
   * failed, and nothing leaks. */
  csn__buf_init_fixed(&b, store, sizeof store);
  assert_int_equal(csn__buf_puts(&b, "abc"), CSN_OK);
  n_allocs = 0;
  fail_at = 1;
  assert_int_equal(csn__buf_puts(&b, "defghijk"), CSN_ENOMEM);
  fail_at = 0;
  assert_string_equal(store, "abc");
  assert_null(csn__buf_steal(&b, NULL));
  csn__buf_free(&b);
  assert_int_equal(live, 0);
}

/* jansson allocates through the hook too. */
static void test_jansson_hook(void **state) {
  json_t *o;
  (void)state;
  n_allocs = 0;
  o = json_object();
  assert_non_null(o);
  assert_true(n_allocs > 0);
  assert_true(live > 0);
  json_decref(o);
  assert_int_equal(live, 0);
  /* and its failures are ours */
  fail_at = n_allocs + 1;
  assert_null(json_object());
  fail_at = 0;
}

static void test_calloc_overflow(void **state) {
  (void)state;
  assert_null(csn__calloc(SIZE_MAX / 2, 3));
  {
    void *p = csn__calloc(0, 8);
    assert_non_null(p);
    csn__free(p);
  }
  csn__free(NULL);
  csn_free(NULL);
  assert_int_equal(live, 0);
}

static void test_set_allocator_invalid(void **state) {
  csn_allocator a = counting;
  (void)state;
  a.free_fn = NULL;
  assert_int_equal(csn_set_allocator(&a), CSN_EINVAL);
}

static void test_errors(void **state) {
  (void)state;
  assert_string_equal(csn_strerror(CSN_ENOMEM), "out of memory");
  assert_string_equal(csn_strerror(CSN_ERANGE), "value out of range");
  assert_string_equal(csn_strerror(-999), "unknown error");
  assert_string_equal(csn_err_name(CSN_ENOENT), "ENOENT");
  assert_string_equal(csn_err_name(CSN_ECORRUPT), "ECORRUPT");
  assert_string_equal(csn_err_name(12), "UNKNOWN");
  assert_int_equal(csn_version(), CSN_VERSION_HEX);
  assert_string_equal(csn_version_string(), CSN_VERSION_STRING);
}

static void *other_thread(void *arg) {
  char *seen = arg;
  /* A fresh thread starts with "" and its own message. */
  strcpy(seen, csn_last_error());
  csn__set_error(CSN_EIO, "thread %d", 2);
  return NULL;
}

static void test_last_error_thread_local(void **state) {
  pthread_t t;
  char seen[600] = "x";
  char long_msg[2000];
  (void)state;
  assert_int_equal(csn__set_error(CSN_ESTORE, "store said %s", "no"),
                   CSN_ESTORE);
  assert_string_equal(csn_last_error(), "store said no");
  assert_int_equal(pthread_create(&t, NULL, other_thread, seen), 0);
  pthread_join(t, NULL);
  assert_string_equal(seen, "");
  assert_string_equal(csn_last_error(), "store said no");
  /* long messages are truncated, not overflowed */
  memset(long_msg, 'm', sizeof long_msg - 1);
  long_msg[sizeof long_msg - 1] = '\0';
  csn__set_error(CSN_EIO, "%s", long_msg);
  assert_int_equal(strlen(csn_last_error()), 511);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_oom_buf, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_uri, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_set_cookie, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oom_strdup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_buf_latch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_buf_fixed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_jansson_hook, setup, teardown),
      cmocka_unit_test_setup_teardown(test_calloc_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_set_allocator_invalid, setup,
                                      teardown),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_last_error_thread_local),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
