/* test_parity_cookieattrs.c - express-session test/session.js
 * "req.session.cookie" blocks and the synchronous store (cases 133-156):
 * attributes changed by the handler, browser-session cookies, preserved
 * Set-Cookie headers, originalMaxAge (also through a "SmartStore" that hands
 * expires back in another representation), Secure over real TLS, maxAge,
 * expires and partitioned. */
#include "test_parity_common.h"

#include <stdlib.h>
#include <string.h>

static void h_none(pt_call *c) { (void)c; }

static void h_attrs(pt_call *c) {
  csn_session_cookie_set_http_only(c->s, 0);
  csn_session_cookie_set_secure(c->s, 1);
}

/* 133 */
static void parity_cookieattrs_should_serialize_as_parameters(void **st) {
  static const char *const xfp[] = {"X-Forwarded-Proto: https", NULL};
  pt_server *p = pt_new();
  const char *sc;
  (void)st;
  p->o.proxy = CSN_PROXY_TRUST;
  pt_start(p, h_attrs, 0);
  pt_req(p, NULL, "/", NULL, xfp);
  sc = pt_set_cookie(p);
  assert_non_null(sc);
  assert_false(pt_attr(sc, "HttpOnly"));
  assert_true(pt_attr(sc, "Secure"));
  pt_free(p);
}

static pt_server *admin(void) {
  pt_server *p = pt_new();
  p->o.cookie.max_age_ms = CSN_TIME_NONE;
  p->o.cookie.path = "/admin";
  pt_start(p, h_none, 0);
  return p;
}

/* 134 */
static void parity_cookieattrs_should_default_to_a_browser_session_length_cookie(
    void **st) {
  pt_server *p = admin();
  (void)st;
  pt_get(p, "/admin", NULL);
  assert_non_null(pt_set_cookie(p));
  assert_true(pt_expires(pt_set_cookie(p)) == PT_NONE);
  pt_free(p);
}

/* 135 */
static void parity_cookieattrs_should_Set_Cookie_only_once_for_browser_session_cookies(
    void **st) {
  pt_server *p = admin();
  const char *ck;
  (void)st;
  pt_get(p, "/admin/foo", NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  pt_get(p, "/admin/foo", ck);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

static void h_unsecure(pt_call *c) { csn_session_cookie_set_secure(c->s, 0); }

/* 136 */
static void parity_cookieattrs_should_override_defaults(void **st) {
  pt_server *p = pt_new();
  const char *sc;
  (void)st;
  p->o.cookie.http_only = 0;
  p->o.cookie.max_age_ms = 5000;
  p->o.cookie.path = "/admin";
  p->o.cookie.priority = CSN_PRIORITY_HIGH;
  p->o.cookie.secure = CSN_SECURE_ON;
  pt_start(p, h_unsecure, 0);
  pt_get(p, "/admin", NULL);
  sc = pt_set_cookie(p);
  assert_non_null(sc);
  assert_true(pt_expires(sc) != PT_NONE);
  assert_false(pt_attr(sc, "HttpOnly"));
  assert_true(pt_attr(sc, "Path=/admin"));
  assert_false(pt_attr(sc, "Secure"));
  assert_true(pt_attr(sc, "Priority=High"));
  pt_free(p);
}

/* 137: an invalid expires is refused when the context is created. */
static void parity_cookieattrs_should_forward_errors_setting_cookie(
    void **st) {
  pt_server *p = pt_new();
  csn_ctx *ctx = NULL;
  char err[128] = "";
  (void)st;
  p->o.cookie.max_age_ms = CSN_TIME_NONE;
  p->o.cookie.expires_ms = INT64_MAX;
  assert_int_equal(csn_ctx_new(&ctx, &p->o, err, sizeof err), CSN_EINVAL);
  assert_null(ctx);
  assert_string_equal(err, "option expires is invalid");
  pt_free(p);
}

static void h_previous(pt_call *c) {
  c->extra_header = "Set-Cookie: previous=cookieValue";
}

static void preserve(void) {
  pt_server *p = pt_new();
  pt_start(p, h_previous, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.n_set_cookie, 2);
  assert_string_equal(p->res.set_cookie[0], "previous=cookieValue");
  assert_true(strncmp(p->res.set_cookie[1], "connect.sid=", 12) == 0);
  pt_free(p);
}

/* 138, 139: MHD has one way to add a header; ours comes after it. */
static void parity_cookieattrs_should_preserve_cookies_set_before_writeHead_is_called(
    void **st) {
  (void)st;
  preserve();
}

static void parity_cookieattrs_should_preserve_cookies_set_in_writeHead(
    void **st) {
  (void)st;
  preserve();
}

static void h_orig(pt_call *c) {
  int64_t v = 0;
  assert_int_equal(csn_session_cookie_original_max_age(c->s, &v), CSN_OK);
  pt_printf(c, "%lld", (long long)v);
}

static void orig_case(pt_server *p, int twice) {
  const char *ck;
  p->o.cookie.max_age_ms = 2000;
  pt_start(p, h_orig, 0);
  pt_get(p, "/", NULL);
  assert_true(strcmp(p->res.body, "2000") == 0 ||
              strcmp(p->res.body, "1999") == 0);
  if (!twice)
    return;
  ck = pt_cookie(p);
  pt_sleep_ms(100);
  pt_get(p, "/", ck);
  assert_true(strcmp(p->res.body, "2000") == 0 ||
              strcmp(p->res.body, "1999") == 0);
  assert_int_equal(PT_GETS(p), 1);
}

/* 140 */
static void parity_cookieattrs_originalMaxAge_should_equal_original_maxAge(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  orig_case(p, 0);
  pt_free(p);
}

/* 141 */
static void parity_cookieattrs_originalMaxAge_should_equal_original_maxAge_for_all_requests(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  orig_case(p, 1);
  pt_free(p);
}

/* SmartStore: hands cookie.expires back as epoch milliseconds (express's
 * SmartStore returns a Date instead of the JSON string) and prunes expired
 * records itself. It wraps the fixture's counting store. */
typedef struct smart_store {
  csn_store base;
  csn_store *inner;
} smart_store;

static int smart_get(csn_store *st, const char *sid, char **json,
                     size_t *len) {
  smart_store *ss = (smart_store *)st;
  json_t *root, *ck, *exp;
  int64_t ms;
  char *raw = NULL;
  size_t rlen = 0;
  int rc = csn_store_get(ss->inner, sid, &raw, &rlen);
  if (rc != CSN_OK)
    return rc;
  root = json_loadb(raw, rlen, 0, NULL);
  csn_free(raw);
  if (root == NULL)
    return CSN_ECORRUPT;
  ck = json_object_get(root, "cookie");
  exp = json_object_get(ck, "expires");
  if (json_is_string(exp) &&
      csn__parse_iso8601(json_string_value(exp), json_string_length(exp),
                         &ms) == 0) {
    if (ms <= pt_now_ms()) {
      json_decref(root);
      csn_store_destroy(ss->inner, sid);
      return CSN_ENOENT;
    }
    json_object_set_new(ck, "expires", json_integer(ms));
  }
  raw = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (raw == NULL)
    return CSN_ENOMEM;
  *json = csn__strdup(raw);
  *len = strlen(raw);
  free(raw);
  return *json ? CSN_OK : CSN_ENOMEM;
}

static int smart_set(csn_store *st, const char *sid, const char *json,
                     size_t len, int64_t exp) {
  return csn_store_set(((smart_store *)st)->inner, sid, json, len, exp);
}

static int smart_destroy(csn_store *st, const char *sid) {
  return csn_store_destroy(((smart_store *)st)->inner, sid);
}

static void smart_close(csn_store *st) { free(st); }

static const csn_store_methods smart_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "smart",
    .get = smart_get,
    .set = smart_set,
    .destroy = smart_destroy,
    .close = smart_close,
};

/* 142 */
static void
parity_cookieattrs_originalMaxAge_should_equal_original_maxAge_for_all_requests_with_SmartStore(
    void **st) {
  pt_server *p = pt_new();
  smart_store *ss = calloc(1, sizeof *ss);
  (void)st;
  assert_non_null(ss);
  ss->base.m = &smart_methods;
  ss->inner = &p->store->base;
  p->use_store = &ss->base;
  orig_case(p, 1);
  pt_free(p);
}

/* 143, 144: Secure cookies over a real TLS server and over plain HTTP. */
static void parity_cookieattrs_secure_should_set_cookie_when_secure(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.cookie.secure = CSN_SECURE_ON;
  pt_start(p, h_none, 1);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_non_null(pt_set_cookie(p));
  assert_true(pt_attr(pt_set_cookie(p), "Secure"));
  pt_free(p);
}

static void parity_cookieattrs_secure_should_not_set_cookie_when_insecure(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.cookie.secure = CSN_SECURE_ON;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

/* maxAge: the handler sets maxAge from the URL (/5000 ...). */
static void h_maxage(pt_call *c) {
  long long ms = strtoll(c->url + 1, NULL, 10);
  if (ms > 0)
    assert_int_equal(csn_session_cookie_set_max_age(c->s, ms), CSN_OK);
}

/* Expires lies within maxAge of the request's time window (Expires and
 * the Date header have second precision, so the window is widened to the
 * whole seconds around it). */
static void maxage_case(const char *path, int64_t ms) {
  pt_server *p = pt_new();
  int64_t t0, t1, e;
  p->o.cookie.max_age_ms = 2000;
  pt_start(p, h_maxage, 0);
  t0 = pt_now_ms();
  pt_get(p, path, NULL);
  t1 = pt_now_ms();
  e = pt_expires(pt_set_cookie(p));
  assert_true(e != PT_NONE);
  assert_true(e >= (t0 + ms) / 1000 * 1000 && e <= t1 + ms);
  assert_true(pt_date(&p->res) != PT_NONE);
  pt_free(p);
}

/* 145-147 */
static void parity_cookieattrs_maxAge_should_set_cookie_expires_relative_to_maxAge(
    void **st) {
  (void)st;
  maxage_case("/", 2000);
}

static void parity_cookieattrs_maxAge_should_modify_cookie_expires_when_changed(
    void **st) {
  (void)st;
  maxage_case("/5000", 5000);
}

static void parity_cookieattrs_maxAge_should_modify_cookie_expires_when_changed_to_large_value(
    void **st) {
  (void)st;
  maxage_case("/3000000000", INT64_C(3000000000));
}

static void h_expires(pt_call *c) {
  if (strcmp(c->url, "/zero") == 0)
    csn_session_cookie_set_expires(c->s, 0);
  else
    csn_session_cookie_set_expires(c->s, CSN_TIME_NONE);
  if (strcmp(c->url, "/mod") == 0)
    csn_session_incr(c->s, "n", 1, NULL);
}

/* 148 */
static void parity_cookieattrs_expires_Date_should_set_absolute(void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_expires, 0);
  pt_get(p, "/zero", NULL);
  assert_true(pt_attr(pt_set_cookie(p), "Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
  pt_free(p);
}

/* 149 */
static void parity_cookieattrs_expires_null_should_be_a_browser_session_cookie(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_expires, 0);
  pt_get(p, "/", NULL);
  assert_non_null(pt_set_cookie(p));
  assert_true(pt_expires(pt_set_cookie(p)) == PT_NONE);
  pt_free(p);
}

static void expires_null_twice(const char *path) {
  pt_server *p = pt_new();
  const char *ck;
  pt_start(p, h_expires, 0);
  pt_get(p, path, NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  pt_get(p, path, ck);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

/* 150, 151 */
static void parity_cookieattrs_expires_null_should_not_reset_cookie(
    void **st) {
  (void)st;
  expires_null_twice("/");
}

static void parity_cookieattrs_expires_null_should_not_reset_cookie_when_modified(
    void **st) {
  (void)st;
  expires_null_twice("/mod");
}

static void partitioned_case(int set, int value) {
  pt_server *p = pt_new();
  if (set)
    p->o.cookie.partitioned = value;
  pt_start(p, h_none, 0);
  pt_get(p, "/", NULL);
  assert_non_null(pt_set_cookie(p));
  assert_int_equal(pt_attr(pt_set_cookie(p), "Partitioned"), value);
  pt_free(p);
}

/* 152-154 */
static void parity_cookieattrs_partitioned_default_should_not_set_partitioned_attribute(
    void **st) {
  (void)st;
  partitioned_case(0, 0);
}

static void parity_cookieattrs_partitioned_false_should_not_set_partitioned_attribute(
    void **st) {
  (void)st;
  partitioned_case(1, 0);
}

static void parity_cookieattrs_partitioned_true_should_set_partitioned_attribute(
    void **st) {
  (void)st;
  partitioned_case(1, 1);
}

/* 155, 156: every C store is synchronous (express's SyncStore). */
static void h_hits(pt_call *c) {
  int64_t hits = 0;
  csn_session_incr(c->s, "hits", 1, &hits);
  if (strcmp(c->url, "/destroy") == 0) {
    assert_int_equal(csn_request_unset(c->req), CSN_OK);
    pt_printf(c, "destroyed\n");
  }
  pt_printf(c, "hits: %lld", (long long)hits);
}

static void parity_cookieattrs_synchronous_store_should_respond_correctly_on_save(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_hits, 0);
  pt_get(p, "/", NULL);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "hits: 1");
  pt_free(p);
}

static void parity_cookieattrs_synchronous_store_should_respond_correctly_on_destroy(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  p->o.unset = CSN_UNSET_DESTROY;
  pt_start(p, h_hits, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  pt_get(p, "/destroy", ck);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "destroyed\nhits: 2");
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parity_cookieattrs_should_serialize_as_parameters),
      cmocka_unit_test(parity_cookieattrs_should_default_to_a_browser_session_length_cookie),
      cmocka_unit_test(parity_cookieattrs_should_Set_Cookie_only_once_for_browser_session_cookies),
      cmocka_unit_test(parity_cookieattrs_should_override_defaults),
      cmocka_unit_test(parity_cookieattrs_should_forward_errors_setting_cookie),
      cmocka_unit_test(parity_cookieattrs_should_preserve_cookies_set_before_writeHead_is_called),
      cmocka_unit_test(parity_cookieattrs_should_preserve_cookies_set_in_writeHead),
      cmocka_unit_test(parity_cookieattrs_originalMaxAge_should_equal_original_maxAge),
      cmocka_unit_test(parity_cookieattrs_originalMaxAge_should_equal_original_maxAge_for_all_requests),
      cmocka_unit_test(parity_cookieattrs_originalMaxAge_should_equal_original_maxAge_for_all_requests_with_SmartStore),
      cmocka_unit_test(parity_cookieattrs_secure_should_set_cookie_when_secure),
      cmocka_unit_test(parity_cookieattrs_secure_should_not_set_cookie_when_insecure),
      cmocka_unit_test(parity_cookieattrs_maxAge_should_set_cookie_expires_relative_to_maxAge),
      cmocka_unit_test(parity_cookieattrs_maxAge_should_modify_cookie_expires_when_changed),
      cmocka_unit_test(parity_cookieattrs_maxAge_should_modify_cookie_expires_when_changed_to_large_value),
      cmocka_unit_test(parity_cookieattrs_expires_Date_should_set_absolute),
      cmocka_unit_test(parity_cookieattrs_expires_null_should_be_a_browser_session_cookie),
      cmocka_unit_test(parity_cookieattrs_expires_null_should_not_reset_cookie),
      cmocka_unit_test(parity_cookieattrs_expires_null_should_not_reset_cookie_when_modified),
      cmocka_unit_test(parity_cookieattrs_partitioned_default_should_not_set_partitioned_attribute),
      cmocka_unit_test(parity_cookieattrs_partitioned_false_should_not_set_partitioned_attribute),
      cmocka_unit_test(parity_cookieattrs_partitioned_true_should_set_partitioned_attribute),
      cmocka_unit_test(parity_cookieattrs_synchronous_store_should_respond_correctly_on_save),
      cmocka_unit_test(parity_cookieattrs_synchronous_store_should_respond_correctly_on_destroy),
  };
  return PT_RUN("parity_cookieattrs", tests);
}
