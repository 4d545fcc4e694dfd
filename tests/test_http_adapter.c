/* test_http_adapter.c - what the libmicrohttpd adapter tells the core:
 * TLS detected from the connection itself (a real HTTPS server with a
 * self-signed certificate), X-Forwarded-Proto passed through for the proxy
 * setting to judge, and the session's Set-Cookie written after the ones
 * the handler added. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_harness.h"

typedef struct fixture {
  counting_store *store;
  csn_ctx *ctx;
  http_server *srv;
} fixture;

/* "/" counts visits; "/extra" also sets a cookie of its own first. */
static csn_mhd_result handler(const http_req *r) {
  csn_request *req;
  csn_session *s;
  int64_t views = 0;
  char body[64];
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &req);
  if (rc < 0)
    return csn_mhd_error(r->ctx, r->conn, rc);
  s = csn_request_session(req);
  if (s != NULL)
    csn_session_incr(s, "views", 1, &views);
  snprintf(body, sizeof body, "views=%lld", (long long)views);
  return http_reply(r->conn, req, MHD_HTTP_OK, body,
                    strcmp(r->url, "/extra") == 0 ? "Set-Cookie: theme=dark"
                                                  : NULL);
}

static void start(fixture *f, int tls, int secure, int proxy) {
  http_server_opts so;
  csn_options o;
  memset(f, 0, sizeof *f);
  f->store = counting_store_new(NULL, 1);
  csn_options_init(&o);
  o.resave = 0;
  o.save_uninitialized = 0;
  o.proxy = proxy;
  o.cookie.secure = secure;
  o.store = &f->store->base;
  f->ctx = http_ctx_new(&o);
  memset(&so, 0, sizeof so);
  so.ctx = f->ctx;
  so.handler = handler;
  so.tls = tls;
  assert_int_equal(http_server_start(&so, &f->srv), 0);
}

static void stop(fixture *f) {
  http_server_stop(f->srv);
  csn_ctx_free(f->ctx);
  csn_store_free(&f->store->base);
}

static http_response get(fixture *f, const char *path, const char *header) {
  const char *headers[] = {header, NULL};
  http_client *c = http_client_new(0);
  http_request_opts o;
  http_response r;
  char url[128];
  memset(&o, 0, sizeof o);
  o.url = http_server_url(f->srv, path, url, sizeof url);
  o.headers = header != NULL ? headers : NULL;
  if (http_request(c, &o, &r) != 0)
    fail_msg("GET %s: %s", url, r.error);
  assert_int_equal(r.status, 200);
  http_client_free(c);
  return r;
}

/* Does the response carry our session cookie, and is it Secure? */
static int session_cookie(const http_response *r, int *secure) {
  size_t i;
  for (i = 0; i < r->n_set_cookie; i++)
    if (strncmp(r->set_cookie[i], "connect.sid=", 12) == 0) {
      *secure = strstr(r->set_cookie[i], "; Secure") != NULL;
      return 1;
    }
  return 0;
}

static void test_tls_is_secure(void **state) {
  fixture f;
  http_response r;
  int secure = 0;
  (void)state;

  if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
    fail_msg("libmicrohttpd was built without TLS");
  /* secure: true over HTTPS: the cookie is sent, marked Secure. */
  start(&f, 1, CSN_SECURE_ON, CSN_PROXY_DEFAULT);
  assert_non_null(strstr(http_server_base(f.srv), "https://"));
  r = get(&f, "/", NULL);
  assert_string_equal(r.body, "views=1");
  assert_true(session_cookie(&r, &secure));
  assert_true(secure);
  http_response_free(&r);
  stop(&f);

  /* secure: 'auto' resolves to Secure on a TLS connection. */
  start(&f, 1, CSN_SECURE_AUTO, CSN_PROXY_NONE);
  r = get(&f, "/", NULL);
  assert_true(session_cookie(&r, &secure));
  assert_true(secure);
  http_response_free(&r);
  stop(&f);
}

static void test_plain_http_is_not_secure(void **state) {
  fixture f;
  http_response r;
  int secure = 0;
  (void)state;

  /* Over plain HTTP a Secure cookie is withheld, but the session is still
   * saved (express-session's behaviour). */
  start(&f, 0, CSN_SECURE_ON, CSN_PROXY_DEFAULT);
  r = get(&f, "/", NULL);
  assert_string_equal(r.body, "views=1");
  assert_false(session_cookie(&r, &secure));
  assert_int_equal(counting_store_length(f.store), 1);
  http_response_free(&r);
  /* Without proxy trust, X-Forwarded-Proto is not believed. */
  r = get(&f, "/", "X-Forwarded-Proto: https");
  assert_false(session_cookie(&r, &secure));
  http_response_free(&r);
  stop(&f);

  /* secure: 'auto' over HTTP: no Secure attribute. */
  start(&f, 0, CSN_SECURE_AUTO, CSN_PROXY_DEFAULT);
  r = get(&f, "/", NULL);
  assert_true(session_cookie(&r, &secure));
  assert_false(secure);
  http_response_free(&r);
  stop(&f);
}

static void test_forwarded_proto_with_proxy(void **state) {
  fixture f;
  http_response r;
  int secure = 0;
  (void)state;

  start(&f, 0, CSN_SECURE_ON, CSN_PROXY_TRUST);
  r = get(&f, "/", "X-Forwarded-Proto: https");
  assert_true(session_cookie(&r, &secure));
  assert_true(secure);
  http_response_free(&r);
  /* The first entry decides, trimmed and in any case. */
  r = get(&f, "/", "X-Forwarded-Proto:  HTTPS , http");
  assert_true(session_cookie(&r, &secure));
  http_response_free(&r);
  r = get(&f, "/", "X-Forwarded-Proto: http, https");
  assert_false(session_cookie(&r, &secure));
  http_response_free(&r);
  r = get(&f, "/", NULL);
  assert_false(session_cookie(&r, &secure));
  http_response_free(&r);
  stop(&f);
}

static void test_handler_cookie_comes_first(void **state) {
  fixture f;
  http_response r;
  (void)state;
  start(&f, 0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT);
  r = get(&f, "/extra", NULL);
  assert_int_equal(r.n_set_cookie, 2);
  assert_string_equal(r.set_cookie[0], "theme=dark");
  assert_int_equal(strncmp(r.set_cookie[1], "connect.sid=s%3A", 16), 0);
  http_response_free(&r);
  stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls_is_secure),
      cmocka_unit_test(test_plain_http_is_not_secure),
      cmocka_unit_test(test_forwarded_proto_with_proxy),
      cmocka_unit_test(test_handler_cookie_comes_first),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
