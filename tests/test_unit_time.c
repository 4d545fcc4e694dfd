/* test_unit_time.c - Date#toUTCString / Date#toISOString / Date.parse
 * vectors (outputs taken from Node 20). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"

typedef struct {
  int64_t ms;
  const char *http;
  const char *iso;
} date_vector;

static const date_vector vectors[] = {
    {INT64_C(1735689600000), "Wed, 01 Jan 2025 00:00:00 GMT",
     "2025-01-01T00:00:00.000Z"},
    {0, "Thu, 01 Jan 1970 00:00:00 GMT", "1970-01-01T00:00:00.000Z"},
    {-1, "Wed, 31 Dec 1969 23:59:59 GMT", "1969-12-31T23:59:59.999Z"},
    {-1000, "Wed, 31 Dec 1969 23:59:59 GMT", "1969-12-31T23:59:59.000Z"},
    {INT64_C(1735689601700), "Wed, 01 Jan 2025 00:00:01 GMT",
     "2025-01-01T00:00:01.700Z"},
    {INT64_C(1735689599000), "Tue, 31 Dec 2024 23:59:59 GMT",
     "2024-12-31T23:59:59.000Z"},
    {INT64_C(8640000000000000), "Sat, 13 Sep 275760 00:00:00 GMT",
     "+275760-09-13T00:00:00.000Z"},
    {INT64_C(-8640000000000000), "Tue, 20 Apr -271821 00:00:00 GMT",
     "-271821-04-20T00:00:00.000Z"},
    {INT64_C(-62167219200000), "Sat, 01 Jan 0000 00:00:00 GMT",
     "0000-01-01T00:00:00.000Z"},
    {INT64_C(-62198755200000), "Fri, 01 Jan -0001 00:00:00 GMT",
     "-000001-01-01T00:00:00.000Z"},
    {INT64_C(253402300800000), "Sat, 01 Jan 10000 00:00:00 GMT",
     "+010000-01-01T00:00:00.000Z"},
    {INT64_C(1709164800000), "Thu, 29 Feb 2024 00:00:00 GMT",
     "2024-02-29T00:00:00.000Z"},
    {INT64_C(951782400000), "Tue, 29 Feb 2000 00:00:00 GMT",
     "2000-02-29T00:00:00.000Z"},
};

static void test_format(void **state) {
  size_t i;
  char out[48];
  (void)state;
  for (i = 0; i < CSN__ARRAY_SIZE(vectors); i++) {
    assert_int_equal(csn__fmt_http_date(vectors[i].ms, out, 40), 0);
    assert_string_equal(out, vectors[i].http);
    assert_int_equal(csn__fmt_iso8601(vectors[i].ms, out, 32), 0);
    assert_string_equal(out, vectors[i].iso);
  }
}

static void test_range(void **state) {
  char out[48];
  (void)state;
  assert_int_equal(csn__fmt_http_date(CSN__TIME_MAX + 1, out, sizeof out),
                   CSN_ERANGE);
  assert_int_equal(csn__fmt_http_date(-CSN__TIME_MAX - 1, out, sizeof out),
                   CSN_ERANGE);
  assert_int_equal(csn__fmt_iso8601(CSN__TIME_MAX + 1, out, sizeof out),
                   CSN_ERANGE);
  assert_int_equal(csn__fmt_iso8601(CSN_TIME_NONE, out, sizeof out),
                   CSN_ERANGE);
  assert_int_equal(csn__fmt_iso8601(INT64_MAX, out, sizeof out), CSN_ERANGE);
  /* a buffer too small is reported, not overrun */
  assert_int_equal(csn__fmt_iso8601(0, out, 10), CSN_ENOBUFS);
}

static int64_t parse(const char *s) {
  int64_t ms = 12345;
  if (csn__parse_iso8601(s, strlen(s), &ms) != 0)
    return INT64_MIN;
  return ms;
}

static void test_parse(void **state) {
  size_t i;
  (void)state;
  /* every formatted ISO string reads back to its instant */
  for (i = 0; i < CSN__ARRAY_SIZE(vectors); i++)
    assert_int_equal(parse(vectors[i].iso), vectors[i].ms);
  /* forms Date.parse accepts (values from Node 20) */
  assert_int_equal(parse("2025-01-01"), INT64_C(1735689600000));
  assert_int_equal(parse("2025"), INT64_C(1735689600000));
  assert_int_equal(parse("2025-06"), INT64_C(1748736000000));
  assert_int_equal(parse("2025-01-01T00:00Z"), INT64_C(1735689600000));
  assert_int_equal(parse("2025-01-01T00:00:00Z"), INT64_C(1735689600000));
  assert_int_equal(parse("2025-01-01T01:00:00+01:00"), INT64_C(1735689600000));
  assert_int_equal(parse("2025-01-01T00:00:00+23:59"), INT64_C(1735603260000));
  assert_int_equal(parse("2025-01-01T24:00:00Z"), INT64_C(1735776000000));
  assert_int_equal(parse("2025-01-01T00:00:00.1Z"), INT64_C(1735689600100));
  assert_int_equal(parse("2025-01-01T00:00:00.1234Z"),
                   INT64_C(1735689600123));
  assert_int_equal(parse("2025-02-30"), INT64_C(1740873600000));
  assert_int_equal(parse("2025-04-31"), INT64_C(1746057600000));
  /* refused */
  assert_int_equal(parse("+275760-09-13T00:00:00.001Z"), INT64_MIN);
  assert_int_equal(parse("-000000-01-01T00:00:00Z"), INT64_MIN);
  assert_int_equal(parse("2025-02-32"), INT64_MIN);
  assert_int_equal(parse("2025-13-01"), INT64_MIN);
  assert_int_equal(parse("2025-00-01"), INT64_MIN);
  assert_int_equal(parse("2025-01-01T00:00:60Z"), INT64_MIN);
  assert_int_equal(parse("2025-01-01T00:00:00.Z"), INT64_MIN);
  assert_int_equal(parse("2025-01-01T00:00:00+24:00"), INT64_MIN);
  assert_int_equal(parse("2025-01-01T24:00:01Z"), INT64_MIN);
  assert_int_equal(parse("2025-01-01T00:00:00"), INT64_MIN); /* local */
  assert_int_equal(parse("2025-01-01T00:00:00.000Zjunk"), INT64_MIN);
  assert_int_equal(parse("25-01-01"), INT64_MIN);
  assert_int_equal(parse(""), INT64_MIN);
  assert_int_equal(parse("Wed, 01 Jan 2025 00:00:00 GMT"), INT64_MIN);
}

static void test_now(void **state) {
  int64_t now = csn__now_ms();
  (void)state;
  /* after 2024-01-01 and before 2100 */
  assert_true(now > INT64_C(1704067200000));
  assert_true(now < INT64_C(4102444800000));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_range),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_now),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
