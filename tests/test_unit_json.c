/* test_unit_json.c - json.c reads and writes JSON as JavaScript does.
 * Expected texts come from node 20 (JSON.stringify / JSON.parse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"

static char *dump(const json_t *j) {
  csn__buf b;
  csn__buf_init(&b);
  assert_int_equal(csn__json_dump(&b, j), CSN_OK);
  return csn__buf_steal(&b, NULL);
}

static void unit_json_numbers_like_javascript(void **state) {
  static const struct {
    double d;
    const char *js;
  } v[] = {
      {0.1, "0.1"},
      {1.5, "1.5"},
      {1e21, "1e+21"},
      {1e-7, "1e-7"},
      {0.000001, "0.000001"},
      {123456789012345680000.0, "123456789012345680000"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {5e-324, "5e-324"},
      {-0.0, "0"},
      {2.5e-5, "0.000025"},
      {100.0, "100"},
      {1e20, "100000000000000000000"},
      {-1.25e-10, "-1.25e-10"},
      {0.30000000000000004, "0.30000000000000004"},
      {4.35, "4.35"},
      {1.0 / 3.0, "0.3333333333333333"},
      {-123.456e5, "-12345600"},
  };
  (void)state;
  for (size_t i = 0; i < CSN__ARRAY_SIZE(v); i++) {
    json_t *j = json_real(v[i].d);
    char *s = dump(j);
    if (strcmp(s, v[i].js) != 0)
      fail_msg("%.17g: got %s, want %s", v[i].d, s, v[i].js);
    csn__free(s);
    json_decref(j);
  }
}

/* Text JSON.stringify wrote reads back and writes out byte for byte. */
static void unit_json_round_trip(void **state) {
  static const char *const texts[] = {
      "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2026-11-26T23:17:25.294Z\",\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"},\"user\":{\"id\":42,\"name\":\"x\"}}",
      "{\"s\":\"a\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f/\xc3\xa9\xe2\x80\xa8\"}",
      "[1,-2,0.5,1e+21,null,true,false,\"\",{},[]]",
      "{\"big\":123456789012345680000,\"i\":9223372036854775807,\"n\":-9223372036854775808}",
      "{\"nul\":\"a\\u0000b\",\"emoji\":\"\xf0\x9f\x98\x80\"}",
      "\"just a string\"",
      "0",
  };
  (void)state;
  for (size_t i = 0; i < CSN__ARRAY_SIZE(texts); i++) {
    int err = 0;
    json_t *j = csn__json_parse(texts[i], strlen(texts[i]), &err);
    char *s;
    if (j == NULL)
      fail_msg("parse failed (%d): %s", err, texts[i]);
    s = dump(j);
    if (strcmp(s, texts[i]) != 0)
      fail_msg("round trip\n got %s\nwant %s", s, texts[i]);
    csn__free(s);
    json_decref(j);
  }
}

static void unit_json_parse_semantics(void **state) {
  int err = 0;
  json_t *j;
  char *s;
  (void)state;
  /* JSON.parse: the last duplicate wins, in the first one's place. */
  j = csn__json_parse("{\"a\":1,\"b\":2,\"a\":3}", 19, &err);
  assert_non_null(j);
  s = dump(j);
  assert_string_equal(s, "{\"a\":3,\"b\":2}");
  csn__free(s);
  json_decref(j);
  /* Escapes decode, a surrogate pair is one code point. */
  j = csn__json_parse("\"\\ud83d\\ude00\\u00e9\\/\"", 22, &err);
  assert_non_null(j);
  assert_string_equal(json_string_value(j), "\xf0\x9f\x98\x80\xc3\xa9/");
  json_decref(j);
  /* Beyond int64: a double, as in JavaScript. */
  j = csn__json_parse("18446744073709551616", 20, &err);
  assert_true(json_is_real(j));
  json_decref(j);
  j = csn__json_parse(" \t\r\n{ \"a\" : [ 1 , 2 ] } \n", 24, &err);
  assert_non_null(j);
  json_decref(j);
}

static void unit_json_rejects(void **state) {
  static const char *const bad[] = {
      "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]",
      "01", "1.", ".5", "+1", "-", "1e", "NaN", "Infinity", "tru", "nul",
      "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"a", "'a'",
      "{\"a\":1} x", "\"\x01\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
      "{a:1}", "[", "]",
  };
  char deep[1200];
  int err;
  (void)state;
  for (size_t i = 0; i < CSN__ARRAY_SIZE(bad); i++) {
    err = 0;
    json_t *j = csn__json_parse(bad[i], strlen(bad[i]), &err);
    if (j != NULL)
      fail_msg("accepted: %s", bad[i]);
    assert_int_equal(err, CSN_ECORRUPT);
  }
  /* Nesting beyond the limit is refused, not a stack overflow. */
  memset(deep, '[', 600);
  memset(deep + 600, ']', 600);
  err = 0;
  assert_null(csn__json_parse(deep, sizeof deep, &err));
  assert_int_equal(err, CSN_ECORRUPT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(unit_json_numbers_like_javascript),
      cmocka_unit_test(unit_json_round_trip),
      cmocka_unit_test(unit_json_parse_semantics),
      cmocka_unit_test(unit_json_rejects),
  };
  return cmocka_run_group_tests_name("unit_json", tests, NULL, NULL);
}
