/* test_unit_encode.c - base64, encodeURIComponent, decodeURIComponent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"

static void test_b64(void **state) {
  char out[64];
  (void)state;
  /* RFC 4648 vectors without padding */
  assert_int_equal(csn__b64_encode((const unsigned char *)"", 0, out, 0), 0);
  assert_string_equal(out, "");
  csn__b64_encode((const unsigned char *)"f", 1, out, 0);
  assert_string_equal(out, "Zg");
  csn__b64_encode((const unsigned char *)"fo", 2, out, 0);
  assert_string_equal(out, "Zm8");
  csn__b64_encode((const unsigned char *)"foo", 3, out, 0);
  assert_string_equal(out, "Zm9v");
  assert_int_equal(
      csn__b64_encode((const unsigned char *)"foobar", 6, out, 0), 8);
  assert_string_equal(out, "Zm9vYmFy");
  assert_int_equal(CSN__B64_LEN(32), 43);
  assert_int_equal(CSN__B64_LEN(24), 32);
  assert_int_equal(CSN__B64_LEN(1), 2);
  assert_int_equal(CSN__B64_LEN(2), 3);
  /* 0xfb 0xff: the two alphabets differ exactly at 62 and 63 */
  csn__b64_encode((const unsigned char *)"\xfb\xff", 2, out, 0);
  assert_string_equal(out, "+/8");
  csn__b64_encode((const unsigned char *)"\xfb\xff", 2, out, 1);
  assert_string_equal(out, "-_8");
}

static char *enc(const char *s, size_t n) {
  csn__buf b;
  csn__buf_init(&b);
  assert_int_equal(csn__uri_encode(&b, s, n), 0);
  return csn__buf_steal(&b, NULL);
}

static void test_uri_encode(void **state) {
  char *s;
  (void)state;
  s = enc("AZaz09-_.!~*'()", 15);
  assert_string_equal(s, "AZaz09-_.!~*'()");
  csn__free(s);
  s = enc(" \"#$%&+,/:;<=>?@[\\]^`{|}", 24);
  assert_string_equal(s, "%20%22%23%24%25%26%2B%2C%2F%3A%3B%3C%3D%3E%3F%40%5B"
                         "%5C%5D%5E%60%7B%7C%7D");
  csn__free(s);
  /* UTF-8 bytes pass through as %XX (U+20AC), NUL and DEL too */
  s = enc("\xe2\x82\xac\x00\x7f", 5);
  assert_string_equal(s, "%E2%82%AC%00%7F");
  csn__free(s);
  s = enc("", 0);
  assert_string_equal(s, "");
  csn__free(s);
}

/* Decode s; returns the decoded text (static) or NULL when it throws. */
static const char *dec(const char *s) {
  static char out[256];
  size_t n = 0;
  if (csn__uri_decode(s, strlen(s), out, &n) != 0)
    return NULL;
  out[n] = '\0';
  return out;
}

static void test_uri_decode(void **state) {
  (void)state;
  assert_string_equal(dec("s%3Aabc.x%2By%2Fz"), "s:abc.x+y/z");
  assert_string_equal(dec("plain"), "plain");
  assert_string_equal(dec(""), "");
  assert_string_equal(dec("%e2%82%ac"), "\xe2\x82\xac");
  assert_string_equal(dec("%F0%9F%98%80"), "\xf0\x9f\x98\x80");
  assert_string_equal(dec("%C2%80"), "\xc2\x80");
  assert_string_equal(dec("%F4%8F%BF%BF"), "\xf4\x8f\xbf\xbf");
  /* raw bytes outside escapes are not validated (JS keeps them) */
  assert_string_equal(dec("\xff%41"), "\xff" "A");
  assert_string_equal(dec("a+b"), "a+b");
  /* throws: malformed escapes */
  assert_null(dec("%"));
  assert_null(dec("%4"));
  assert_null(dec("%ZZ"));
  assert_null(dec("abc%G1"));
  /* throws: bad UTF-8 in escapes */
  assert_null(dec("%80"));             /* lone continuation */
  assert_null(dec("%C3"));             /* truncated */
  assert_null(dec("%C3A"));            /* continuation not escaped */
  assert_null(dec("%C3%41"));          /* not a continuation */
  assert_null(dec("%C0%80"));          /* overlong */
  assert_null(dec("%E0%80%AF"));       /* overlong */
  assert_null(dec("%ED%A0%80"));       /* surrogate */
  assert_null(dec("%F4%90%80%80"));    /* above U+10FFFF */
  assert_null(dec("%F8%88%80%80%80")); /* 5-byte form */
  assert_null(dec("%FF"));
  /* in place works (the output never outruns the input) */
  {
    char s[] = "a%20b%E2%82%AC";
    size_t n = 0;
    assert_int_equal(csn__uri_decode(s, strlen(s), s, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "a b\xe2\x82\xac", 6);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b64),
      cmocka_unit_test(test_uri_encode),
      cmocka_unit_test(test_uri_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
