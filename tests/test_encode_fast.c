/* test_encode_fast.c - the fast paths of the encoders and date formatters
 * against plain reference versions written here.
 *
 * encode.c classifies sixteen bytes at a time with SSE2 (where available),
 * copies ahead of escapes, encodes base64 twelve bits per lookup from a
 * table written out by the preprocessor; time.c keeps the last second it
 * formatted or parsed per thread. None of that may change a single output
 * byte, so each is compared with a byte-at-a-time reference here: every
 * byte value at every position of short inputs (so that each lane of a
 * 16-byte step and each tail length meets every byte), random inputs
 * skewed toward the interesting bytes, and for the dates, answers taken
 * from a cold cache against answers taken from a warm one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "csn_int.h"

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15);

static uint64_t rnd(void) {
  /* xorshift64: deterministic, so a failure reproduces. */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A byte, mostly from the kinds the encoders treat differently. */
static unsigned char rnd_byte(void) {
  static const char pick[] = "%%%%AZaz09-_.!~*'()+/:;= \"3AFfe8B";
  switch (rnd() % 4) {
  case 0:
    return (unsigned char)(rnd() & 0xFF);
  case 1:
    return (unsigned char)pick[rnd() % (sizeof pick - 1)];
  default:
    return (unsigned char)('a' + rnd() % 26);
  }
}

/* ------------------------------------------------------------------------ */
/* References                                                               */
/* ------------------------------------------------------------------------ */

static int ref_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || (c != '\0' && strchr("-_.!~*'()", c));
}

static size_t ref_encode(const unsigned char *s, size_t n, char *out) {
  size_t o = 0, i;
  for (i = 0; i < n; i++) {
    if (ref_unreserved(s[i]))
      out[o++] = (char)s[i];
    else
      o += (size_t)sprintf(out + o, "%%%02X", s[i]);
  }
  out[o] = '\0';
  return o;
}

static int ref_hex(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* decodeURIComponent one byte at a time; -1 where JavaScript throws. */
static int ref_decode(const unsigned char *s, size_t n, unsigned char *out,
                      size_t *outn) {
  size_t i = 0, o = 0;
  while (i < n) {
    unsigned char b[4];
    int len, k;
    unsigned long cp, min;
    if (s[i] != '%') {
      out[o++] = s[i++];
      continue;
    }
    for (k = 0; k < 4; k++) {
      int hi, lo;
      if (k > 0 && k >= (b[0] >= 0xF0 ? 4 : b[0] >= 0xE0 ? 3 : 2))
        break;
      if (i + 3 > n || s[i] != '%' || (hi = ref_hex(s[i + 1])) < 0 ||
          (lo = ref_hex(s[i + 2])) < 0)
        return -1;
      b[k] = (unsigned char)(hi * 16 + lo);
      i += 3;
      if (k == 0 && b[0] < 0x80)
        break;
      if (k == 0 && (b[0] < 0xC0 || b[0] > 0xF7))
        return -1;
      if (k > 0 && (b[k] & 0xC0) != 0x80)
        return -1;
    }
    if (b[0] < 0x80) {
      out[o++] = b[0];
      continue;
    }
    len = b[0] >= 0xF0 ? 4 : b[0] >= 0xE0 ? 3 : 2;
    cp = b[0] & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
    min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    for (k = 1; k < len; k++)
      cp = (cp << 6) | (b[k] & 0x3Fu);
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return -1;
    memcpy(out + o, b, (size_t)len);
    o += (size_t)len;
  }
  *outn = o;
  return 0;
}

static size_t ref_b64(const unsigned char *in, size_t n, char *out, int url) {
  const char *a =
      url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t bits = n * 8, o = 0, b;
  /* One output character per 6 bits, read straight off the bit string. */
  for (b = 0; b < bits; b += 6) {
    unsigned v = 0, k;
    for (k = 0; k < 6; k++) {
      size_t bit = b + k;
      v <<= 1;
      if (bit < bits)
        v |= (in[bit / 8] >> (7 - bit % 8)) & 1u;
    }
    out[o++] = a[v];
  }
  out[o] = '\0';
  return o;
}

/* ------------------------------------------------------------------------ */
/* Encoders                                                                 */
/* ------------------------------------------------------------------------ */

/* Encode s with csn__uri_encode, after `pre` bytes already in the buffer
 * (the cookie serializer appends to "name="), and compare with ref. */
static void check_encode(const unsigned char *s, size_t n, size_t pre) {
  char *want = malloc(3 * n + 1);
  csn__buf b;
  size_t wn, k;
  assert_non_null(want);
  wn = ref_encode(s, n, want);
  csn__buf_init(&b);
  for (k = 0; k < pre; k++)
    csn__buf_putc(&b, 'x');
  assert_int_equal(csn__uri_encode(&b, (const char *)s, n), CSN_OK);
  assert_int_equal(b.len, pre + wn);
  assert_memory_equal(b.data + pre, want, wn);
  assert_int_equal(b.data[b.len], '\0');
  csn__buf_free(&b);
  free(want);
}

/* Decode s both into a separate buffer and in place; both must agree with
 * the reference, result and bytes. */
static void check_decode(const unsigned char *s, size_t n) {
  unsigned char *want = malloc(n + 1), *sep = malloc(n + 1),
                *inplace = malloc(n + 1);
  size_t wn = 0, gn = 0, pn = 0;
  int wrc, grc, prc;
  assert_true(want != NULL && sep != NULL && inplace != NULL);
  wrc = ref_decode(s, n, want, &wn);
  grc = csn__uri_decode((const char *)s, n, (char *)sep, &gn);
  assert_int_equal(grc, wrc);
  memcpy(inplace, s, n);
  prc = csn__uri_decode((const char *)inplace, n, (char *)inplace, &pn);
  assert_int_equal(prc, wrc);
  if (wrc == 0) {
    assert_int_equal(gn, wn);
    assert_memory_equal(sep, want, wn);
    assert_int_equal(pn, wn);
    assert_memory_equal(inplace, want, wn);
  }
  free(want);
  free(sep);
  free(inplace);
}

static void test_encode_every_byte_every_lane(void **state) {
  unsigned char s[48];
  size_t len, pos;
  unsigned c;
  (void)state;
  for (len = 1; len <= sizeof s; len++)
    for (pos = 0; pos < len; pos++)
      for (c = 0; c < 256; c++) {
        memset(s, 'a', len);
        s[pos] = (unsigned char)c;
        check_encode(s, len, pos % 3);
      }
}

static void test_encode_random(void **state) {
  unsigned char s[5000];
  int iter;
  (void)state;
  for (iter = 0; iter < 20000; iter++) {
    /* Mostly short (a cookie value); now and then past the 4096 bytes
     * where the encoder switches to appending in pieces. */
    size_t n = iter % 100 == 0 ? 4000 + rnd() % 1000 : rnd() % 130, k;
    for (k = 0; k < n; k++)
      s[k] = rnd_byte();
    check_encode(s, n, rnd() % 4);
  }
}

/* The shape the hot path sees: "s:" + id + "." + signature. */
static void test_encode_signed_values(void **state) {
  unsigned char raw[32];
  char id[40], sig[48], value[128];
  int iter, k;
  (void)state;
  for (iter = 0; iter < 2000; iter++) {
    for (k = 0; k < 32; k++)
      raw[k] = (unsigned char)rnd();
    ref_b64(raw, 24, id, 1);
    ref_b64(raw, 32, sig, 0);
    snprintf(value, sizeof value, "s:%s.%s", id, sig);
    check_encode((const unsigned char *)value, strlen(value), 0);
  }
}

/* check(s, len) for every byte value, literal and as the first byte of an
 * escape in upper and in lower case, in every lane of the 16-byte steps and
 * of the overlapping last one; and for a '%' cut short at the end. */
static void each_byte_each_lane(void (*check)(const unsigned char *, size_t)) {
  unsigned char s[40];
  size_t len, pos;
  unsigned c;
  for (len = 1; len <= sizeof s; len++)
    for (pos = 0; pos < len; pos++)
      for (c = 0; c < 256; c++) {
        memset(s, 'b', len);
        s[pos] = (unsigned char)c;
        check(s, len);
        if (pos + 3 <= len) {
          s[pos] = '%';
          s[pos + 1] = "0123456789ABCDEF"[c >> 4];
          s[pos + 2] = "0123456789ABCDEF"[c & 15];
          check(s, len);
          s[pos + 2] = "0123456789abcdef"[c & 15];
          check(s, len);
        } else {
          s[pos] = '%';
          check(s, len);
        }
      }
}

static void test_decode_every_byte_every_lane(void **state) {
  (void)state;
  each_byte_each_lane(check_decode);
}

static void test_decode_random(void **state) {
  unsigned char s[400];
  int iter;
  (void)state;
  for (iter = 0; iter < 30000; iter++) {
    size_t n = rnd() % sizeof s, k;
    for (k = 0; k < n; k++)
      s[k] = rnd_byte();
    check_decode(s, n);
  }
}

/* What the encoder writes must decode back (for valid UTF-8, which
 * random ASCII with escapes of ASCII is). */
static void test_decode_round_trip(void **state) {
  unsigned char s[200];
  int iter;
  (void)state;
  for (iter = 0; iter < 10000; iter++) {
    size_t n = rnd() % sizeof s, k, dn = 0;
    csn__buf b;
    char *d;
    for (k = 0; k < n; k++)
      s[k] = (unsigned char)(rnd_byte() & 0x7F);
    csn__buf_init(&b);
    assert_int_equal(csn__uri_encode(&b, (const char *)s, n), CSN_OK);
    d = malloc(b.len + 1);
    assert_non_null(d);
    assert_int_equal(csn__uri_decode(b.data, b.len, d, &dn), 0);
    assert_int_equal(dn, n);
    assert_memory_equal(d, s, n);
    check_decode((const unsigned char *)b.data, b.len);
    free(d);
    csn__buf_free(&b);
  }
}

/* csn__uri_canonical() against its definition: a value csn__uri_decode()
 * accepts is canonical exactly when encoding what it decodes to gives it
 * back. The request cycle sends such a cookie value back as it is, so a
 * wrong "yes" would send a Set-Cookie express-session does not. */
static void check_canonical(const unsigned char *s, size_t n) {
  unsigned char dec[1200];
  char enc[3600];
  size_t dn = 0, en;
  int want;
  if (ref_decode(s, n, dec, &dn) != 0)
    return; /* only decodable values are asked about */
  en = ref_encode(dec, dn, enc);
  want = en == n && memcmp(enc, s, n) == 0;
  if (csn__uri_canonical((const char *)s, n) != want)
    fail_msg("canonical(%.*s) should be %d", (int)n, (const char *)s, want);
}

static void test_canonical(void **state) {
  unsigned char s[400];
  char enc[1200];
  int iter;
  (void)state;
  each_byte_each_lane(check_canonical);
  for (iter = 0; iter < 30000; iter++) {
    size_t n = rnd() % sizeof s, k;
    for (k = 0; k < n; k++)
      s[k] = rnd_byte();
    check_canonical(s, n);
    /* And what the encoder writes, which is canonical by definition. */
    n = ref_encode(s, n % 150, enc);
    assert_int_equal(csn__uri_canonical(enc, n), 1);
  }
}

/* csn__uri_decode_canonical() must give what the two functions give one
 * after the other: the same result, the same bytes, the same verdict. Its
 * output buffer is exactly n bytes (malloc'd, so ASan sees a store past
 * it), and its input ends at the end of an allocation too. */
static void check_decode_canonical(const unsigned char *s, size_t n) {
  /* No NUL after the input: the fast pass must not read past n. */
  char *in = malloc(n ? n : 1), *out = malloc(n + 1), *got = malloc(n ? n : 1);
  size_t wn = 0, gn = 0;
  int wrc, grc, canon = -1;
  assert_true(in != NULL && out != NULL && got != NULL);
  memcpy(in, s, n);
  wrc = csn__uri_decode(in, n, out, &wn);
  grc = csn__uri_decode_canonical(in, n, got, &gn, &canon);
  assert_int_equal(grc, wrc);
  if (wrc == 0) {
    assert_int_equal(gn, wn);
    assert_memory_equal(got, out, wn);
    if (canon != csn__uri_canonical(in, n))
      fail_msg("decode_canonical(%.*s): canonical %d", (int)n, in, canon);
  }
  free(in);
  free(out);
  free(got);
}

static void test_decode_canonical(void **state) {
  unsigned char s[200], raw[32];
  char enc[600], id[40], sig[48], value[128];
  size_t n, k;
  int iter;
  (void)state;
  each_byte_each_lane(check_decode_canonical);
  for (iter = 0; iter < 30000; iter++) {
    n = rnd() % sizeof s;
    for (k = 0; k < n; k++)
      s[k] = rnd_byte();
    check_decode_canonical(s, n);
    /* What the encoder writes: canonical, and mostly on the fast pass. */
    n = ref_encode(s, n % 120, enc);
    check_decode_canonical((const unsigned char *)enc, n);
  }
  /* The hot path's own shape: encodeURIComponent("s:" + id + "." + sig). */
  for (iter = 0; iter < 5000; iter++) {
    size_t dn = 0;
    char dec[128];
    int canon = 0;
    for (k = 0; k < sizeof raw; k++)
      raw[k] = (unsigned char)rnd();
    ref_b64(raw, 24, id, 1);
    ref_b64(raw, 32, sig, 0);
    snprintf(value, sizeof value, "s:%s.%s", id, sig);
    n = ref_encode((const unsigned char *)value, strlen(value), enc);
    check_decode_canonical((const unsigned char *)enc, n);
    assert_int_equal(csn__uri_decode_canonical(enc, n, dec, &dn, &canon), 0);
    assert_int_equal(canon, 1);
    assert_int_equal(dn, strlen(value));
    assert_memory_equal(dec, value, dn);
  }
}

/* csn__i64_text() (digit count from the bit length, two digits a step)
 * against printf, at every power of ten and its neighbours, both signs,
 * the extremes, and at random. */
static void check_i64(int64_t v) {
  char want[32], got[32];
  char *end;
  memset(got, '#', sizeof got);
  snprintf(want, sizeof want, "%lld", (long long)v);
  end = csn__i64_text(got + 1, v);
  assert_int_equal(got[0], '#'); /* nothing written before */
  assert_int_equal((size_t)(end - (got + 1)), strlen(want));
  assert_int_equal(*end, '#'); /* nor after */
  assert_memory_equal(got + 1, want, strlen(want));
}

static void test_i64_text(void **state) {
  int64_t p = 1;
  int k, iter;
  (void)state;
  check_i64(0);
  check_i64(INT64_MAX);
  check_i64(INT64_MIN);
  check_i64(INT64_MIN + 1);
  for (k = 0;; k++) {
    check_i64(p - 1);
    check_i64(p);
    check_i64(p + 1);
    check_i64(-p + 1);
    check_i64(-p);
    check_i64(-p - 1);
    if (k == 18)
      break; /* 10^18 is the largest power of ten in an int64 */
    p *= 10;
  }
  for (iter = 0; iter < 100000; iter++) {
    uint64_t r = rnd();
    check_i64((int64_t)(r >> (r % 64)));
  }
}

static void test_b64_against_reference(void **state) {
  unsigned char in[64];
  char want[100], got[100];
  int iter, url;
  (void)state;
  for (iter = 0; iter < 20000; iter++) {
    size_t n = iter < 130 ? (size_t)iter % 65 : rnd() % 65, k;
    url = iter & 1;
    for (k = 0; k < n; k++)
      in[k] = (unsigned char)rnd();
    /* Every value of each 12-bit window shows up over the runs. */
    if (iter < 4096 && n >= 2) {
      in[0] = (unsigned char)(iter >> 4);
      in[1] = (unsigned char)((iter & 15) << 4 | (in[1] & 15));
    }
    memset(got, '#', sizeof got);
    assert_int_equal(csn__b64_encode(in, n, got, url), ref_b64(in, n, want, url));
    assert_string_equal(got, want);
  }
}

/* ------------------------------------------------------------------------ */
/* Dates                                                                    */
/* ------------------------------------------------------------------------ */

/* The two formats from gmtime_r, for years 1970..9999 on a 64-bit time_t. */
static void ref_dates(int64_t ms, char *http, char *iso) {
  static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
                                   "Thu", "Fri", "Sat"};
  static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  assert_non_null(gmtime_r(&t, &tm));
  sprintf(http, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday],
          tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
          tm.tm_sec);
  sprintf(iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
          (int)(ms % 1000));
}

static void check_dates(int64_t ms) {
  char http[64], iso[64], rh[64], ri[64];
  int64_t back = -1;
  ref_dates(ms, rh, ri);
  assert_int_equal(csn__fmt_http_date(ms, http, sizeof http), CSN_OK);
  assert_string_equal(http, rh);
  assert_int_equal(csn__fmt_iso8601(ms, iso, sizeof iso), CSN_OK);
  assert_string_equal(iso, ri);
  assert_int_equal(csn__parse_iso8601(iso, strlen(iso), &back), 0);
  assert_int_equal(back, ms);
}

static void test_dates_warm_and_cold(void **state) {
  int iter;
  (void)state;
  for (iter = 0; iter < 20000; iter++) {
    /* 1970 .. 9999, then a few more instants of the same second (warm),
     * then of the neighbouring seconds (cold again). */
    int64_t ms = (int64_t)(rnd() % UINT64_C(253402300799000));
    int64_t sec = ms - ms % 1000;
    int k;
    check_dates(ms);
    for (k = 0; k < 3; k++)
      check_dates(sec + (int64_t)(rnd() % 1000));
    check_dates(sec + 999);
    check_dates(sec);
    if (sec >= 1000)
      check_dates(sec - 1);
    check_dates(sec + 1000);
  }
}

/* A warm cache must not let through what the cold parser refuses, and
 * must not hide the range checks. */
static void test_dates_warm_cache_refusals(void **state) {
  char buf[64];
  int64_t ms = 0;
  char http[64];
  (void)state;
  strcpy(buf, "2025-06-01T12:34:56.789Z");
  assert_int_equal(csn__parse_iso8601(buf, strlen(buf), &ms), 0);
  assert_int_equal(ms, INT64_C(1748781296789));
  /* Same second, bad milliseconds. */
  strcpy(buf, "2025-06-01T12:34:56.7x9Z");
  assert_int_equal(csn__parse_iso8601(buf, strlen(buf), &ms), -1);
  strcpy(buf, "2025-06-01T12:34:56.78/Z");
  assert_int_equal(csn__parse_iso8601(buf, strlen(buf), &ms), -1);
  strcpy(buf, "2025-06-01T12:34:56.789+");
  assert_int_equal(csn__parse_iso8601(buf, strlen(buf), &ms), -1);
  /* Same second, other (valid) shapes go to the general parser. */
  strcpy(buf, "2025-06-01T12:34:56.7Z");
  assert_int_equal(csn__parse_iso8601(buf, strlen(buf), &ms), 0);
  assert_int_equal(ms, INT64_C(1748781296700));
  strcpy(buf, "2025-06-01T12:34:56.012Z");
  assert_int_equal(csn__parse_iso8601(buf, strlen(buf), &ms), 0);
  assert_int_equal(ms, INT64_C(1748781296012));

  /* The top of the range: the second of 8.64e15 is in range only at its
   * first millisecond, whatever was formatted before. */
  assert_int_equal(csn__fmt_http_date(INT64_C(8640000000000000), http,
                                      sizeof http),
                   CSN_OK);
  assert_string_equal(http, "Sat, 13 Sep 275760 00:00:00 GMT");
  assert_int_equal(csn__fmt_http_date(INT64_C(8640000000000001), http,
                                      sizeof http),
                   CSN_ERANGE);
  assert_int_equal(csn__fmt_iso8601(INT64_C(8640000000000001), http,
                                    sizeof http),
                   CSN_ERANGE);
  /* A warm second with a buffer too small is still refused. */
  assert_int_equal(csn__fmt_http_date(INT64_C(1748781296789), http,
                                      sizeof http),
                   CSN_OK);
  assert_int_equal(csn__fmt_http_date(INT64_C(1748781296000), http, 29),
                   CSN_ENOBUFS);
  assert_int_equal(csn__fmt_iso8601(INT64_C(1748781296789), http,
                                    sizeof http),
                   CSN_OK);
  assert_int_equal(csn__fmt_iso8601(INT64_C(1748781296000), http, 24),
                   CSN_ENOBUFS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_every_byte_every_lane),
      cmocka_unit_test(test_encode_random),
      cmocka_unit_test(test_encode_signed_values),
      cmocka_unit_test(test_decode_every_byte_every_lane),
      cmocka_unit_test(test_decode_random),
      cmocka_unit_test(test_decode_round_trip),
      cmocka_unit_test(test_canonical),
      cmocka_unit_test(test_decode_canonical),
      cmocka_unit_test(test_i64_text),
      cmocka_unit_test(test_b64_against_reference),
      cmocka_unit_test(test_dates_warm_and_cold),
      cmocka_unit_test(test_dates_warm_cache_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
