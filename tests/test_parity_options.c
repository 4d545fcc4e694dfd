/* test_parity_options.c - express-session test/session.js option blocks
 * (cases 48-86): proxy, cookie path, secure and sameSite "auto", the cookie
 * function, genid, key and name.
 *
 * Express's `req.secure` is what the framework believes about the request;
 * libmicrohttpd has no such notion beyond TLS, so the fixture lets a test
 * state it with the X-Test-Secure request header (true/false), which it
 * passes as csn_request_info.secure. The middleware only consults it with
 * CSN_PROXY_DEFAULT, exactly where express consults req.secure. */
#include "test_parity_common.h"

#include <stdlib.h>
#include <string.h>

static const char *const XFP_HTTPS[] = {"X-Forwarded-Proto: https", NULL};
static const char *const XFP_HTTP[] = {"X-Forwarded-Proto: http", NULL};
static const char *const XFP_LIST[] = {"X-Forwarded-Proto: https,http", NULL};
static const char *const REQ_SECURE[] = {"X-Test-Secure: true", NULL};
static const char *const REQ_INSECURE[] = {"X-Test-Secure: false", NULL};

static void h_none(pt_call *c) { (void)c; }

static pt_server *server(int proxy, int secure, int64_t max_age) {
  pt_server *p = pt_new();
  p->o.proxy = proxy;
  p->o.cookie.secure = secure;
  if (max_age != 0)
    p->o.cookie.max_age_ms = max_age;
  return p;
}

/* Start p, make one GET and return its session Set-Cookie (or NULL). */
static const char *cookie_for(pt_server *p, const char *path,
                              const char *const *headers) {
  if (p->http == NULL)
    pt_start(p, h_none, 0);
  pt_req(p, NULL, path, NULL, headers);
  assert_int_equal(p->res.status, 200);
  return pt_set_cookie(p);
}

#define PROXY_CASE(fn, proxy, secure, hdrs, expect)                  \
  static void fn(void **st) {                                        \
    pt_server *p = server(proxy, secure, 5);                         \
    (void)st;                                                        \
    if (expect)                                                      \
      assert_non_null(cookie_for(p, "/", hdrs));                     \
    else                                                             \
      assert_null(cookie_for(p, "/", hdrs));                         \
    pt_free(p);                                                      \
  }

/* 48-50 */
PROXY_CASE(parity_options_proxy_enabled_should_trust_X_Forwarded_Proto_when_string,
           CSN_PROXY_TRUST, CSN_SECURE_ON, XFP_HTTPS, 1)
PROXY_CASE(parity_options_proxy_enabled_should_trust_X_Forwarded_Proto_when_comma_separated_list,
           CSN_PROXY_TRUST, CSN_SECURE_ON, XFP_LIST, 1)
PROXY_CASE(parity_options_proxy_enabled_should_work_when_no_header,
           CSN_PROXY_TRUST, CSN_SECURE_ON, NULL, 0)
/* 51, 52 */
PROXY_CASE(parity_options_proxy_disabled_should_not_trust_X_Forwarded_Proto,
           CSN_PROXY_NONE, CSN_SECURE_ON, XFP_HTTPS, 0)
PROXY_CASE(parity_options_proxy_disabled_should_ignore_req_secure,
           CSN_PROXY_NONE, CSN_SECURE_ON, REQ_SECURE, 0)
/* 53, 54 */
PROXY_CASE(parity_options_proxy_unspecified_should_not_trust_X_Forwarded_Proto,
           CSN_PROXY_DEFAULT, CSN_SECURE_ON, XFP_HTTPS, 0)
PROXY_CASE(parity_options_proxy_unspecified_should_use_req_secure,
           CSN_PROXY_DEFAULT, CSN_SECURE_ON, REQ_SECURE, 1)

/* 55-60: cookie path "/foo/bar" (mounting does not exist in C: the adapter
 * always passes the full original URL, which is what express checks). */
#define PATH_CASE(fn, url, hdrs, expect)                             \
  static void fn(void **st) {                                        \
    pt_server *p = pt_new();                                         \
    (void)st;                                                        \
    p->o.cookie.path = "/foo/bar";                                   \
    if (expect)                                                      \
      assert_non_null(cookie_for(p, url, hdrs));                     \
    else                                                             \
      assert_null(cookie_for(p, url, hdrs));                         \
    pt_free(p);                                                      \
  }

static const char *const HOST_URL[] = {"Host: http://foo/bar", NULL};

PATH_CASE(parity_options_cookie_path_should_not_set_cookie_for_root_request, "/",
          NULL, 0)
PATH_CASE(parity_options_cookie_path_should_not_set_cookie_for_http_foo_bar_request,
          "/", HOST_URL, 0)
PATH_CASE(parity_options_cookie_path_should_set_cookie_for_foo_bar_request,
          "/foo/bar", NULL, 1)
PATH_CASE(parity_options_cookie_path_should_set_cookie_for_foo_bar_baz_request,
          "/foo/bar/baz", NULL, 1)
PATH_CASE(parity_options_cookie_path_mounted_should_set_cookie_for_foo_bar_request,
          "/foo/bar", NULL, 1)
PATH_CASE(parity_options_cookie_path_mounted_should_not_set_cookie_for_foo_foo_bar_request,
          "/foo/foo/bar", NULL, 0)

/* 61-64: secure "auto". expect: 1 Secure, 0 cookie without Secure. */
#define AUTO_CASE(fn, proxy, hdrs, secure_attr)                      \
  static void fn(void **st) {                                        \
    pt_server *p = server(proxy, CSN_SECURE_AUTO, 0);                \
    const char *sc;                                                  \
    (void)st;                                                        \
    sc = cookie_for(p, "/", hdrs);                                   \
    assert_non_null(sc);                                             \
    assert_int_equal(pt_attr(sc, "Secure"), secure_attr);            \
    pt_free(p);                                                      \
  }

AUTO_CASE(parity_options_secure_auto_should_set_secure_when_X_Forwarded_Proto_is_https,
          CSN_PROXY_TRUST, XFP_HTTPS, 1)
AUTO_CASE(parity_options_secure_auto_should_not_set_secure_when_X_Forwarded_Proto_is_https_and_proxy_false,
          CSN_PROXY_NONE, XFP_HTTPS, 0)
AUTO_CASE(parity_options_secure_auto_should_set_secure_if_req_secure_is_true,
          CSN_PROXY_DEFAULT, REQ_SECURE, 1)
AUTO_CASE(parity_options_secure_auto_should_not_set_secure_if_req_secure_is_false,
          CSN_PROXY_DEFAULT, REQ_INSECURE, 0)

/* 65, 66: the cookie option as a function of the request. */
static int fn_calls;

static int cookie_fn_static(const csn_request_info *req,
                            csn_cookie_options *c, void *ud) {
  (void)req;
  (void)ud;
  __atomic_add_fetch(&fn_calls, 1, __ATOMIC_SEQ_CST);
  c->path = "/test";
  c->http_only = 1;
  c->secure = CSN_SECURE_OFF;
  return CSN_OK;
}

static int cookie_fn_url(const csn_request_info *req, csn_cookie_options *c,
                         void *ud) {
  (void)ud;
  c->path = req->url;
  return CSN_OK;
}

static void parity_options_cookie_function_should_call_custom_function_and_apply_cookie_options(
    void **st) {
  pt_server *p = pt_new();
  const char *sc;
  (void)st;
  fn_calls = 0;
  p->o.cookie_fn = cookie_fn_static;
  sc = cookie_for(p, "/test", NULL);
  assert_non_null(sc);
  assert_true(pt_attr(sc, "Path=/test"));
  assert_true(pt_attr(sc, "HttpOnly"));
  assert_false(pt_attr(sc, "Secure"));
  assert_true(__atomic_load_n(&fn_calls, __ATOMIC_SEQ_CST) > 0);
  pt_free(p);
}

static void parity_options_cookie_function_should_provide_req_argument(
    void **st) {
  pt_server *p = pt_new();
  const char *sc;
  (void)st;
  p->o.cookie_fn = cookie_fn_url;
  sc = cookie_for(p, "/test", NULL);
  assert_non_null(sc);
  assert_true(pt_attr(sc, "Path=/test"));
  pt_free(p);
}

/* 67-77: sameSite "auto". want: the SameSite attribute, secure_attr: 1 if
 * Secure must be present, -1 if no cookie at all is expected. */
#define SAMESITE_CASE(fn, proxy, secure, hdrs, want, secure_attr)    \
  static void fn(void **st) {                                        \
    pt_server *p = server(proxy, secure, 0);                         \
    const char *sc;                                                  \
    (void)st;                                                        \
    p->o.cookie.same_site = CSN_SAMESITE_AUTO;                       \
    sc = cookie_for(p, "/", hdrs);                                   \
    if (secure_attr < 0) {                                           \
      assert_null(sc);                                               \
    } else {                                                         \
      assert_non_null(sc);                                           \
      assert_true(pt_attr(sc, want));                                \
      assert_int_equal(pt_attr(sc, "Secure"), secure_attr);          \
    }                                                                \
    pt_free(p);                                                      \
  }

SAMESITE_CASE(parity_options_sameSite_auto_should_set_SameSite_None_for_secure_connections,
              CSN_PROXY_DEFAULT, CSN_SECURE_OFF, REQ_SECURE, "SameSite=None", 0)
SAMESITE_CASE(parity_options_sameSite_auto_should_set_SameSite_Lax_for_insecure_connections,
              CSN_PROXY_DEFAULT, CSN_SECURE_OFF, NULL, "SameSite=Lax", 0)
SAMESITE_CASE(parity_options_sameSite_auto_proxy_should_set_SameSite_None_when_X_Forwarded_Proto_is_https,
              CSN_PROXY_TRUST, CSN_SECURE_OFF, XFP_HTTPS, "SameSite=None", 0)
SAMESITE_CASE(parity_options_sameSite_auto_proxy_should_set_SameSite_Lax_when_X_Forwarded_Proto_is_http,
              CSN_PROXY_TRUST, CSN_SECURE_OFF, XFP_HTTP, "SameSite=Lax", 0)
SAMESITE_CASE(parity_options_sameSite_auto_proxy_false_should_set_SameSite_Lax_when_X_Forwarded_Proto_is_https,
              CSN_PROXY_NONE, CSN_SECURE_OFF, XFP_HTTPS, "SameSite=Lax", 0)
SAMESITE_CASE(parity_options_sameSite_auto_secure_auto_should_set_both_Secure_and_SameSite_None_when_secure,
              CSN_PROXY_DEFAULT, CSN_SECURE_AUTO, REQ_SECURE, "SameSite=None", 1)
SAMESITE_CASE(parity_options_sameSite_auto_secure_auto_should_set_neither_Secure_nor_SameSite_None_when_insecure,
              CSN_PROXY_DEFAULT, CSN_SECURE_AUTO, REQ_INSECURE, "SameSite=Lax", 0)
SAMESITE_CASE(parity_options_sameSite_auto_secure_false_should_set_SameSite_None_without_Secure_when_secure,
              CSN_PROXY_DEFAULT, CSN_SECURE_OFF, REQ_SECURE, "SameSite=None", 0)
SAMESITE_CASE(parity_options_sameSite_auto_secure_false_should_set_SameSite_Lax_without_Secure_when_insecure,
              CSN_PROXY_DEFAULT, CSN_SECURE_OFF, REQ_INSECURE, "SameSite=Lax", 0)
SAMESITE_CASE(parity_options_sameSite_auto_secure_true_should_set_both_Secure_and_SameSite_None_when_secure,
              CSN_PROXY_DEFAULT, CSN_SECURE_ON, REQ_SECURE, "SameSite=None", 1)
SAMESITE_CASE(parity_options_sameSite_auto_secure_true_should_not_set_cookie_when_insecure,
              CSN_PROXY_DEFAULT, CSN_SECURE_ON, REQ_INSECURE, "SameSite=None", -1)

/* 78: genid is a typed function pointer, so a non-function cannot be
 * passed; the remaining misuse, a generator whose answer is no usable id,
 * fails the request instead of storing it. */
static int genid_bogus(const csn_request_info *req, char *buf, size_t size,
                       void *ud) {
  (void)req;
  (void)size;
  (void)ud;
  buf[0] = '\0';
  return CSN_OK;
}

static void parity_options_genid_should_reject_non_function_values(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.genid = genid_bogus;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 500);
  assert_true(http_regex_match("genid", p->res.body));
  assert_null(pt_set_cookie(p));
  assert_int_equal(PT_SETS(p), 0);
  pt_free(p);
}

static void parity_options_genid_should_provide_default_generator(
    void **st) {
  pt_server *p = pt_new();
  const char *sid;
  (void)st;
  assert_non_null(cookie_for(p, "/", NULL));
  sid = pt_sid(p);
  assert_non_null(sid);
  assert_int_equal(strlen(sid), 32);
  pt_free(p);
}

static int genid_fixed(const csn_request_info *req, char *buf, size_t size,
                       void *ud) {
  (void)req;
  snprintf(buf, size, "%s", (const char *)ud);
  return CSN_OK;
}

/* express ids may hold '/', csession's may not (they become store keys and
 * file names): genid(req) returns the URL without its leading slash. */
static int genid_url(const csn_request_info *req, char *buf, size_t size,
                     void *ud) {
  (void)ud;
  snprintf(buf, size, "%s", req->url + (req->url[0] == '/'));
  return CSN_OK;
}

static void genid_case(csn_genid_fn fn, void *ud, const char *path,
                       const char *want) {
  pt_server *p = pt_new();
  char *v;
  p->o.genid = fn;
  p->o.genid_userdata = ud;
  assert_non_null(cookie_for(p, path, NULL));
  v = http_set_cookie_value(&p->res, "connect.sid");
  assert_non_null(v);
  assert_string_equal(v, want);
  free(v);
  pt_free(p);
}

static void parity_options_genid_should_allow_custom_function(void **st) {
  (void)st;
  genid_case(genid_fixed, "apple", "/",
             "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU");
}

static void parity_options_genid_should_encode_unsafe_chars(void **st) {
  (void)st;
  genid_case(genid_fixed, "%", "/",
             "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g");
}

static void parity_options_genid_should_provide_req_argument(void **st) {
  pt_server *p = pt_new();
  char want[256];
  (void)st;
  /* Expected value computed the way express would for id "foo". */
  snprintf(want, sizeof want, "%s",
           strchr(pt_signed(p, "connect.sid", "foo", "keyboard cat"), '=') +
               1);
  pt_free(p);
  genid_case(genid_url, NULL, "/foo", want);
}

/* 83-86: `key` is express's legacy alias of `name`; C has only `name`. */
static void name_case(const char *name, const char *want) {
  pt_server *p = pt_new();
  if (name)
    p->o.name = name;
  cookie_for(p, "/", NULL);
  assert_int_equal(p->res.n_set_cookie, 1);
  assert_non_null(pt_set_cookie_named(p, want));
  pt_free(p);
}

static void parity_options_key_should_default_to_connect_sid(void **st) {
  (void)st;
  name_case(NULL, "connect.sid");
}

static void parity_options_key_should_allow_overriding(void **st) {
  (void)st;
  name_case("session_id", "session_id");
}

static void parity_options_name_should_default_to_connect_sid(void **st) {
  (void)st;
  name_case(NULL, "connect.sid");
}

static void parity_options_name_should_set_the_cookie_name(void **st) {
  (void)st;
  name_case("session_id", "session_id");
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parity_options_proxy_enabled_should_trust_X_Forwarded_Proto_when_string),
      cmocka_unit_test(parity_options_proxy_enabled_should_trust_X_Forwarded_Proto_when_comma_separated_list),
      cmocka_unit_test(parity_options_proxy_enabled_should_work_when_no_header),
      cmocka_unit_test(parity_options_proxy_disabled_should_not_trust_X_Forwarded_Proto),
      cmocka_unit_test(parity_options_proxy_disabled_should_ignore_req_secure),
      cmocka_unit_test(parity_options_proxy_unspecified_should_not_trust_X_Forwarded_Proto),
      cmocka_unit_test(parity_options_proxy_unspecified_should_use_req_secure),
      cmocka_unit_test(parity_options_cookie_path_should_not_set_cookie_for_root_request),
      cmocka_unit_test(parity_options_cookie_path_should_not_set_cookie_for_http_foo_bar_request),
      cmocka_unit_test(parity_options_cookie_path_should_set_cookie_for_foo_bar_request),
      cmocka_unit_test(parity_options_cookie_path_should_set_cookie_for_foo_bar_baz_request),
      cmocka_unit_test(parity_options_cookie_path_mounted_should_set_cookie_for_foo_bar_request),
      cmocka_unit_test(parity_options_cookie_path_mounted_should_not_set_cookie_for_foo_foo_bar_request),
      cmocka_unit_test(parity_options_secure_auto_should_set_secure_when_X_Forwarded_Proto_is_https),
      cmocka_unit_test(parity_options_secure_auto_should_not_set_secure_when_X_Forwarded_Proto_is_https_and_proxy_false),
      cmocka_unit_test(parity_options_secure_auto_should_set_secure_if_req_secure_is_true),
      cmocka_unit_test(parity_options_secure_auto_should_not_set_secure_if_req_secure_is_false),
      cmocka_unit_test(parity_options_cookie_function_should_call_custom_function_and_apply_cookie_options),
      cmocka_unit_test(parity_options_cookie_function_should_provide_req_argument),
      cmocka_unit_test(parity_options_sameSite_auto_should_set_SameSite_None_for_secure_connections),
      cmocka_unit_test(parity_options_sameSite_auto_should_set_SameSite_Lax_for_insecure_connections),
      cmocka_unit_test(parity_options_sameSite_auto_proxy_should_set_SameSite_None_when_X_Forwarded_Proto_is_https),
      cmocka_unit_test(parity_options_sameSite_auto_proxy_should_set_SameSite_Lax_when_X_Forwarded_Proto_is_http),
      cmocka_unit_test(parity_options_sameSite_auto_proxy_false_should_set_SameSite_Lax_when_X_Forwarded_Proto_is_https),
      cmocka_unit_test(parity_options_sameSite_auto_secure_auto_should_set_both_Secure_and_SameSite_None_when_secure),
      cmocka_unit_test(parity_options_sameSite_auto_secure_auto_should_set_neither_Secure_nor_SameSite_None_when_insecure),
      cmocka_unit_test(parity_options_sameSite_auto_secure_false_should_set_SameSite_None_without_Secure_when_secure),
      cmocka_unit_test(parity_options_sameSite_auto_secure_false_should_set_SameSite_Lax_without_Secure_when_insecure),
      cmocka_unit_test(parity_options_sameSite_auto_secure_true_should_set_both_Secure_and_SameSite_None_when_secure),
      cmocka_unit_test(parity_options_sameSite_auto_secure_true_should_not_set_cookie_when_insecure),
      cmocka_unit_test(parity_options_genid_should_reject_non_function_values),
      cmocka_unit_test(parity_options_genid_should_provide_default_generator),
      cmocka_unit_test(parity_options_genid_should_allow_custom_function),
      cmocka_unit_test(parity_options_genid_should_encode_unsafe_chars),
      cmocka_unit_test(parity_options_genid_should_provide_req_argument),
      cmocka_unit_test(parity_options_key_should_default_to_connect_sid),
      cmocka_unit_test(parity_options_key_should_allow_overriding),
      cmocka_unit_test(parity_options_name_should_default_to_connect_sid),
      cmocka_unit_test(parity_options_name_should_set_the_cookie_name),
  };
  return PT_RUN("parity_options", tests);
}
