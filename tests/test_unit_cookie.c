/* test_unit_cookie.c - Set-Cookie serialization against express-session's
 * verbatim vectors (spec 4.1), the attribute validators, and the Cookie
 * header scanner (cookie@0.7.2 parse, spec 2.4) on normal and hostile
 * headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"

#define NOW INT64_C(1735689600000) /* 2025-01-01T00:00:00Z, frozen */

#define HRU_VALUE                                  \
  "s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."          \
  "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts"
#define APPLE_VALUE "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"

/* An express `new Cookie(opts)` after generation: defaults path "/",
 * httpOnly true, everything else absent. */
static csn__cookie base_cookie(void) {
  csn__cookie c;
  c.original_max_age = CSN_TIME_NONE;
  c.expires = CSN_TIME_NONE;
  c.http_only = 1;
  c.secure = CSN__ABSENT;
  c.partitioned = CSN__ABSENT;
  c.same_site = CSN_SAMESITE_UNSET;
  c.priority = CSN_PRIORITY_UNSET;
  c.domain = NULL;
  c.path = (char *)"/";
  return c;
}

/* Serialize name = "s:" + sign(sid, "keyboard cat") like the middleware. */
static char *serialize(const char *name, const char *sid, const csn__cookie *c,
                       const char **errmsg) {
  csn__hmac_key k;
  char value[128], sig[CSN__SIG_LEN + 1];
  csn__buf b;
  int rc;
  assert_int_equal(csn__hmac_key_init(&k, "keyboard cat", 12), 0);
  csn__sign(&k, sid, strlen(sid), sig);
  snprintf(value, sizeof value, "s:%s.%s", sid, sig);
  csn__buf_init(&b);
  rc = csn__set_cookie_serialize(&b, name, value, strlen(value), c, errmsg);
  if (rc != CSN_OK) {
    assert_int_equal(rc, CSN_EINVAL);
    assert_int_equal(b.len, 0);
    csn__buf_free(&b);
    return NULL;
  }
  return csn__buf_steal(&b, NULL);
}

static void expect(const char *name, const char *sid, const csn__cookie *c,
                   const char *want) {
  const char *err = NULL;
  char *got = serialize(name, sid, c, &err);
  if (got == NULL)
    fail_msg("serialize failed: %s", err ? err : "?");
  assert_string_equal(got, want);
  csn__free(got);
}

static void test_set_cookie_vectors(void **state) {
  const char *H = "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf";
  csn__cookie c;
  (void)state;

  /* defaults */
  c = base_cookie();
  expect("connect.sid", H, &c, "connect.sid=" HRU_VALUE "; Path=/; HttpOnly");
  /* {maxAge:60000} */
  c = base_cookie();
  c.original_max_age = 60000;
  c.expires = NOW + 60000;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Wed, 01 Jan 2025 00:01:00 GMT; HttpOnly");
  /* {maxAge:3600000, domain:'example.com', path:'/'} */
  c = base_cookie();
  c.expires = NOW + 3600000;
  c.domain = (char *)"example.com";
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE "; Domain=example.com; Path=/; "
         "Expires=Wed, 01 Jan 2025 01:00:00 GMT; HttpOnly");
  /* {httpOnly:false} */
  c = base_cookie();
  c.http_only = 0;
  expect("connect.sid", H, &c, "connect.sid=" HRU_VALUE "; Path=/");
  /* {sameSite:true}, 'lax', 'Strict', 'none', 'auto' over http (lax) */
  c = base_cookie();
  c.same_site = CSN_SAMESITE_TRUE;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE "; Path=/; HttpOnly; SameSite=Strict");
  c.same_site = CSN_SAMESITE_LAX;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE "; Path=/; HttpOnly; SameSite=Lax");
  c.same_site = CSN_SAMESITE_STRICT;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE "; Path=/; HttpOnly; SameSite=Strict");
  c.same_site = CSN_SAMESITE_NONE;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE "; Path=/; HttpOnly; SameSite=None");
  /* {secure:'auto'} over http: secure resolved to false */
  c = base_cookie();
  c.secure = 0;
  expect("connect.sid", H, &c, "connect.sid=" HRU_VALUE "; Path=/; HttpOnly");
  /* {partitioned:true, priority:'high'} */
  c = base_cookie();
  c.partitioned = 1;
  c.priority = CSN_PRIORITY_HIGH;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; HttpOnly; Partitioned; Priority=High");
  /* {priority:'Low'} */
  c = base_cookie();
  c.priority = CSN_PRIORITY_LOW;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE "; Path=/; HttpOnly; Priority=Low");
  /* every attribute at once (proxy + https) */
  c = base_cookie();
  c.expires = NOW + 86400000;
  c.domain = (char *)".example.com";
  c.secure = 1;
  c.partitioned = 1;
  c.priority = CSN_PRIORITY_MEDIUM;
  c.same_site = CSN_SAMESITE_NONE;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Domain=.example.com; Path=/; Expires=Thu, 02 Jan 2025 00:00:00 "
         "GMT; HttpOnly; Secure; Partitioned; Priority=Medium; SameSite=None");
  /* {expires: 2030-06-15T12:30:45Z} */
  c = base_cookie();
  c.expires = INT64_C(1907757045000);
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Sat, 15 Jun 2030 12:30:45 GMT; HttpOnly");
  /* {maxAge:1000, expires:2030-01-01} (expires wins) */
  c.expires = INT64_C(1893456000000);
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Tue, 01 Jan 2030 00:00:00 GMT; HttpOnly");
  /* {expires:2030-01-01, maxAge:1000} (maxAge wins) */
  c.expires = NOW + 1000;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Wed, 01 Jan 2025 00:00:01 GMT; HttpOnly");
  /* {maxAge:0} */
  c.expires = NOW;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Wed, 01 Jan 2025 00:00:00 GMT; HttpOnly");
  /* {maxAge:-1000} */
  c.expires = NOW - 1000;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Tue, 31 Dec 2024 23:59:59 GMT; HttpOnly");
  /* {maxAge:1700}: seconds truncated */
  c.expires = NOW + 1700;
  expect("connect.sid", H, &c,
         "connect.sid=" HRU_VALUE
         "; Path=/; Expires=Wed, 01 Jan 2025 00:00:01 GMT; HttpOnly");
  /* name:'sid', key:'legacy.sid' */
  c = base_cookie();
  expect("sid", H, &c, "sid=" HRU_VALUE "; Path=/; HttpOnly");
  expect("legacy.sid", H, &c, "legacy.sid=" HRU_VALUE "; Path=/; HttpOnly");

  /* genid -> apple */
  c = base_cookie();
  c.secure = 1;
  c.same_site = CSN_SAMESITE_NONE;
  expect("connect.sid", "apple", &c,
         "connect.sid=" APPLE_VALUE "; Path=/; HttpOnly; Secure; SameSite=None");
  c.secure = 0;
  c.same_site = CSN_SAMESITE_LAX;
  expect("connect.sid", "apple", &c,
         "connect.sid=" APPLE_VALUE "; Path=/; HttpOnly; SameSite=Lax");
  c = base_cookie();
  c.expires = NOW + INT64_C(3000000000);
  expect("connect.sid", "apple", &c,
         "connect.sid=" APPLE_VALUE
         "; Path=/; Expires=Tue, 04 Feb 2025 17:20:00 GMT; HttpOnly");
  c = base_cookie();
  c.path = (char *)"/admin";
  c.domain = (char *)"sub.example.org";
  c.expires = NOW + 5000;
  c.http_only = 0;
  c.same_site = CSN_SAMESITE_STRICT;
  expect("connect.sid", "apple", &c,
         "connect.sid=" APPLE_VALUE
         "; Domain=sub.example.org; Path=/admin; Expires=Wed, 01 Jan 2025 "
         "00:00:05 GMT; SameSite=Strict");
  c = base_cookie();
  c.expires = 0;
  expect("connect.sid", "apple", &c,
         "connect.sid=" APPLE_VALUE
         "; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly");
}

/* Cookie#serialize on plain values: encodeURIComponent of the value. */
static void test_serialize_plain(void **state) {
  csn__cookie c = base_cookie();
  csn__buf b;
  char *s;
  const char *err = NULL;
  (void)state;
  csn__buf_init(&b);
  c.expires = NOW + 60000;
  assert_int_equal(csn__set_cookie_serialize(&b, "n", "v w", 3, &c, &err), 0);
  s = csn__buf_steal(&b, NULL);
  assert_string_equal(
      s, "n=v%20w; Path=/; Expires=Wed, 01 Jan 2025 00:01:00 GMT; HttpOnly");
  csn__free(s);
  c = base_cookie();
  assert_int_equal(
      csn__set_cookie_serialize(&b, "previous", "cookieValue", 11, &c, &err), 0);
  s = csn__buf_steal(&b, NULL);
  assert_string_equal(s, "previous=cookieValue; Path=/; HttpOnly");
  csn__free(s);
  /* Absent flags are off; an empty domain or path is skipped (falsy). */
  c = base_cookie();
  c.http_only = CSN__ABSENT;
  c.path = (char *)"";
  c.domain = (char *)"";
  assert_int_equal(csn__set_cookie_serialize(&b, "a", "", 0, &c, &err), 0);
  s = csn__buf_steal(&b, NULL);
  assert_string_equal(s, "a=");
  csn__free(s);
}

static void expect_error(const char *name, const csn__cookie *c,
                         const char *msg) {
  const char *err = NULL;
  char *got = serialize(name, "apple", c, &err);
  assert_null(got);
  assert_non_null(err);
  assert_string_equal(err, msg);
}

static void test_serialize_errors(void **state) {
  csn__cookie c;
  csn__buf b;
  const char *err = NULL;
  (void)state;
  c = base_cookie();
  expect_error("bad name", &c, "argument name is invalid");
  expect_error("", &c, "argument name is invalid");
  expect_error("a;b", &c, "argument name is invalid");
  c.domain = (char *)"exa mple.com";
  expect_error("sid", &c, "option domain is invalid");
  c = base_cookie();
  c.path = (char *)"/a;b";
  expect_error("sid", &c, "option path is invalid");
  c.path = (char *)"/a<b";
  expect_error("sid", &c, "option path is invalid");
  c = base_cookie();
  c.expires = CSN__TIME_MAX + 1;
  expect_error("sid", &c, "option expires is invalid");
  c = base_cookie();
  c.priority = 42;
  expect_error("sid", &c, "option priority is invalid");
  c = base_cookie();
  c.same_site = CSN_SAMESITE_AUTO; /* unresolved auto, as express */
  expect_error("sid", &c, "option sameSite is invalid");
  c.same_site = -7;
  expect_error("sid", &c, "option sameSite is invalid");
  /* On error the buffer keeps what it had before the call. */
  csn__buf_init(&b);
  csn__buf_puts(&b, "keep");
  assert_int_equal(csn__set_cookie_serialize(&b, "x y", "v", 1, &c, &err),
                   CSN_EINVAL);
  assert_string_equal(b.data, "keep");
  csn__buf_free(&b);
}

static void test_validators(void **state) {
  (void)state;
  assert_true(csn__cookie_name_valid("connect.sid"));
  assert_true(csn__cookie_name_valid("!#$%&'*+-.^_`|~09AZaz"));
  assert_false(csn__cookie_name_valid(""));
  assert_false(csn__cookie_name_valid(NULL));
  assert_false(csn__cookie_name_valid("a=b"));
  assert_false(csn__cookie_name_valid("a\"b"));
  assert_false(csn__cookie_name_valid("a,b"));
  assert_false(csn__cookie_name_valid("a(b"));
  assert_false(csn__cookie_name_valid("a\tb"));
  assert_false(csn__cookie_name_valid("caf\xc3\xa9"));

  assert_true(csn__cookie_path_valid("/"));
  assert_true(csn__cookie_path_valid(""));
  assert_true(csn__cookie_path_valid("/a b:=>~"));
  assert_false(csn__cookie_path_valid("/a;b"));
  assert_false(csn__cookie_path_valid("/a<b"));
  assert_false(csn__cookie_path_valid("/a\x7f"));
  assert_false(csn__cookie_path_valid("/a\x1f"));
  assert_false(csn__cookie_path_valid("/\xc3\xa9"));

  assert_true(csn__cookie_domain_valid("example.com"));
  assert_true(csn__cookie_domain_valid(".example.com"));
  assert_true(csn__cookie_domain_valid("EXAMPLE.com"));
  assert_true(csn__cookie_domain_valid("localhost"));
  assert_true(csn__cookie_domain_valid("a-b.c1"));
  assert_true(csn__cookie_domain_valid("1.2.3.4"));
  assert_false(csn__cookie_domain_valid(""));
  assert_false(csn__cookie_domain_valid("."));
  assert_false(csn__cookie_domain_valid("..example.com"));
  assert_false(csn__cookie_domain_valid("example.com."));
  assert_false(csn__cookie_domain_valid("-a.com"));
  assert_false(csn__cookie_domain_valid("a-.com"));
  assert_false(csn__cookie_domain_valid("a..com"));
  assert_false(csn__cookie_domain_valid("a_b.com"));
  assert_false(csn__cookie_domain_valid("a.com;x"));
  {
    char label[80];
    memset(label, 'a', 63);
    label[63] = '\0';
    assert_true(csn__cookie_domain_valid(label));
    label[63] = 'a';
    label[64] = '\0';
    assert_false(csn__cookie_domain_valid(label));
  }
}

/* Find `name` in `header`; return the value copied (static) or NULL. */
static const char *find(const char *header, const char *name) {
  static char out[16384];
  const char *v = NULL;
  size_t vlen = 0;
  if (!csn__cookie_header_find(header, strlen(header), name, strlen(name), &v,
                               &vlen))
    return NULL;
  assert_true(vlen < sizeof out);
  assert_true(v >= header && v + vlen <= header + strlen(header));
  memcpy(out, v, vlen);
  out[vlen] = '\0';
  return out;
}

static void test_header_find(void **state) {
  (void)state;
  /* first wins */
  assert_string_equal(find("connect.sid=a; connect.sid=b", "connect.sid"),
                      "a");
  assert_string_equal(find("x=1; connect.sid=b; connect.sid=c", "connect.sid"),
                      "b");
  /* quoted values lose their quotes; a lone or unbalanced quote stays raw */
  assert_string_equal(find("connect.sid=\"s%3Aabc\"", "connect.sid"),
                      "s%3Aabc");
  assert_string_equal(find("connect.sid=\"", "connect.sid"), "");
  assert_string_equal(find("connect.sid=\"abc", "connect.sid"), "\"abc");
  assert_string_equal(find("connect.sid= \"\" ", "connect.sid"), "");
  /* raw, un-encoded signed value */
  assert_string_equal(
      find("connect.sid=s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
           "connect.sid"),
      "s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
  /* spaces and tabs trimmed around names and values */
  assert_string_equal(find(" \tconnect.sid \t= \t v w \t;x=1", "connect.sid"),
                      "v w");
  /* '=' inside a value */
  assert_string_equal(find("connect.sid=a=b==", "connect.sid"), "a=b==");
  /* empty values */
  assert_string_equal(find("connect.sid=; a=1", "connect.sid"), "");
  assert_string_equal(find("a=1;connect.sid=", "connect.sid"), "");
  /* pairs without '=' are skipped by backtracking ... */
  assert_string_equal(find("foo; connect.sid=x", "connect.sid"), "x");
  assert_string_equal(find("a; b; ;; connect.sid=y; c", "connect.sid"), "y");
  /* ... but parsing stops at the first pair with no '=' after it */
  assert_null(find("a=1; connect.sid", "connect.sid"));
  assert_null(find("connect.sid", "connect.sid"));
  assert_null(find("a=1; b; c", "c"));
  /* names are case-sensitive and match whole */
  assert_null(find("Connect.sid=x", "connect.sid"));
  assert_string_equal(find("connect.sidx=1; connect.sid=2", "connect.sid"),
                      "2");
  assert_null(find("xconnect.sid=1", "connect.sid"));
  /* short headers */
  assert_null(find("", "a"));
  assert_null(find("=", ""));
  assert_string_equal(find("a=", "a"), "");
  /* the percent-encoded value is returned raw, invalid or not */
  assert_string_equal(find("connect.sid=s%3Aabc%ZZ", "connect.sid"),
                      "s%3Aabc%ZZ");
}

static void test_header_big(void **state) {
  char *h;
  size_t i, len = 0, cap = 64 * 1024;
  (void)state;
  h = malloc(cap);
  assert_non_null(h);
  /* 500 cookies, with duplicates of a name later in the header. */
  for (i = 0; i < 500; i++)
    len += (size_t)snprintf(h + len, cap - len, "c%zu=v%zu; ", i, i);
  len += (size_t)snprintf(h + len, cap - len, "c7=dup; c499=dup");
  assert_string_equal(find(h, "c0"), "v0");
  assert_string_equal(find(h, "c250"), "v250");
  assert_string_equal(find(h, "c499"), "v499");
  assert_string_equal(find(h, "c7"), "v7");
  assert_null(find(h, "c500"));

  /* A 10 KB header of junk pairs with the session cookie last. */
  len = 0;
  while (len < 10 * 1024)
    len += (size_t)snprintf(h + len, cap - len, "junk%zu=%s; ", len,
                            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  snprintf(h + len, cap - len, "connect.sid=s%%3Aid.sig");
  assert_string_equal(find(h, "connect.sid"), "s%3Aid.sig");

  /* 10 KB without any '=': nothing, and quickly. */
  memset(h, ';', 10 * 1024);
  h[10 * 1024] = '\0';
  assert_null(find(h, "connect.sid"));
  memset(h, 'a', 10 * 1024);
  h[5000] = '=';
  assert_null(find(h, "connect.sid"));
  free(h);
}

/* Arbitrary NUL-free bytes: the scanner must stay within the header, and
 * whatever it returns must be a ';'-free slice that follows name and '='.
 */
static void test_header_junk(void **state) {
  static const char alphabet[] = "ab=; \t\"%\x01\xff\x80s:.";
  char h[600];
  unsigned seed = 12345;
  int iter;
  (void)state;
  for (iter = 0; iter < 20000; iter++) {
    size_t len, i;
    const char *v = NULL;
    size_t vlen = 0;
    seed = seed * 1103515245u + 12345u;
    len = (seed >> 16) % (sizeof h - 1);
    for (i = 0; i < len; i++) {
      seed = seed * 1103515245u + 12345u;
      if ((seed >> 16) % 4 == 0)
        h[i] = (char)(1 + (seed >> 8) % 255); /* any non-NUL byte */
      else
        h[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
    }
    h[len] = '\0';
    if (csn__cookie_header_find(h, len, "a", 1, &v, &vlen)) {
      assert_true(v >= h && v + vlen <= h + len);
      assert_null(memchr(v, ';', vlen));
      /* the value is preceded (after trimming/quotes) by an '=' */
      assert_non_null(memchr(h, '=', (size_t)(v - h)));
    }
  }
}

/* The cookie's JSON (the stored record's "cookie" member): a short plain
 * domain or path is written from the local array, any other through the
 * JSON writer; both must give what JSON.stringify gives, which the JSON
 * writer's dump of the string is. Each string is tried as domain and as
 * path, around the 64-byte bound and with every kind of byte that needs
 * an escape or is not ASCII. */
static void test_cookie_to_json_strings(void **state) {
  char a64[66], a65[67], q63[66];
  const char *strs[] = {"", "/", "/app", a64, a65, q63, "/x\"y", "/x\\y",
                        "/\x01", "/\x7f", "/caf\xc3\xa9", "/tab\there"};
  size_t i, j, k;
  (void)state;
  memset(a64, 'a', 64);
  a64[64] = '\0';
  memset(a65, 'b', 65);
  a65[65] = '\0';
  memset(q63, 'c', 63);
  q63[63] = '"';
  q63[64] = '\0';
  for (i = 0; i < sizeof strs / sizeof strs[0]; i++)
    for (j = 0; j < sizeof strs / sizeof strs[0]; j++)
      for (k = 0; k < 2; k++) {
        csn__cookie c = base_cookie();
        csn__buf got, want;
        json_t *d = json_string(strs[i]), *p = json_string(strs[j]);
        assert_true(d != NULL && p != NULL);
        c.domain = (char *)strs[i];
        c.path = (char *)strs[j];
        c.same_site = k ? CSN_SAMESITE_LAX : CSN_SAMESITE_UNSET;
        csn__buf_init(&got);
        assert_int_equal(csn__cookie_to_json(&got, &c), CSN_OK);
        csn__buf_init(&want);
        csn__buf_puts(&want, "{\"originalMaxAge\":null,\"expires\":null,"
                             "\"httpOnly\":true,\"domain\":");
        csn__json_dump(&want, d);
        csn__buf_puts(&want, ",\"path\":");
        csn__json_dump(&want, p);
        csn__buf_puts(&want, k ? ",\"sameSite\":\"lax\"}" : "}");
        assert_false(want.oom);
        assert_string_equal(got.data, want.data);
        csn__buf_free(&got);
        csn__buf_free(&want);
        json_decref(d);
        json_decref(p);
      }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_set_cookie_vectors),
      cmocka_unit_test(test_serialize_plain),
      cmocka_unit_test(test_cookie_to_json_strings),
      cmocka_unit_test(test_serialize_errors),
      cmocka_unit_test(test_validators),
      cmocka_unit_test(test_header_find),
      cmocka_unit_test(test_header_big),
      cmocka_unit_test(test_header_junk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
