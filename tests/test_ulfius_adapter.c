/* test_ulfius_adapter.c - the Ulfius adapter in a real Ulfius instance on
 * loopback, driven by libcurl: the session endpoints around application
 * endpoints at priority 1, the default endpoint reached through the
 * adapter's last endpoint, Set-Cookie after the application's own cookies,
 * store failures answered 500 (or by the configured handler), the secure
 * flag from TLS and from X-Forwarded-Proto, chains that end early, and a
 * client that leaves before the answer (no leak under ASan).
 *
 * The instance runs libmicrohttpd with the flags ulfius_start_framework()
 * uses (a thread per connection) plus TLS when asked, through
 * ulfius_start_framework_with_mhd_options(): that is the one way to listen
 * on a port the kernel picks (Ulfius wants 1-65535 otherwise). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "csn/csn_ulfius.h"
#include "csn_int.h"
#include "http_harness.h"

typedef struct fixture {
  counting_store *store;
  csn_ctx *ctx;
  struct _u_instance inst;
  struct sockaddr_in addr;
  char *key_pem, *cert_pem;
  int tls;
  char base[64];
  http_client *jar;
  atomic_int fail_get, fail_set;
  atomic_int logs, log_err, hook_calls, hook_err;
  atomic_int slow_done;
  char log_msg[512];
  char hook_msg[512];
} fixture;

/* ------------------------------------------------------------------------ */
/* Application endpoints                                                    */
/* ------------------------------------------------------------------------ */

static void say(struct _u_response *resp, unsigned int status,
                const char *body) {
  ulfius_set_string_body_response(resp, status, body);
  u_map_put(resp->map_header, "Content-Type", "text/plain");
}

/* "views=N" after counting the visit in the session ("views=0" without
 * one). */
static void count_visit(const struct _u_request *req,
                        struct _u_response *resp) {
  csn_session *s = csn_ulfius_session(req);
  int64_t views = 0;
  char body[64];
  if (s != NULL)
    assert_int_equal(csn_session_incr(s, "views", 1, &views), CSN_OK);
  snprintf(body, sizeof body, "views=%lld", (long long)views);
  say(resp, 200, body);
}

static int ep_count(const struct _u_request *req, struct _u_response *resp,
                    void *ud) {
  (void)ud;
  count_visit(req, resp);
  return U_CALLBACK_CONTINUE;
}

/* Cookies of its own, each way Ulfius has: a Set-Cookie header in
 * map_header, a cookie in map_cookie, and one in map_cookie under the
 * session cookie's very name. */
static int ep_extra(const struct _u_request *req, struct _u_response *resp,
                    void *ud) {
  (void)ud;
  count_visit(req, resp);
  u_map_put(resp->map_header, "Set-Cookie", "theme=dark");
  ulfius_add_cookie_to_response(resp, "lang", "fr", NULL, 0, NULL, NULL, 0, 0);
  if (u_map_get(req->map_url, "clash") != NULL)
    ulfius_add_cookie_to_response(resp, "connect.sid", "mine", NULL, 0, NULL,
                                  NULL, 0, 0);
  return U_CALLBACK_CONTINUE;
}

/* Ends the chain itself, committing first. */
static int ep_complete(const struct _u_request *req, struct _u_response *resp,
                       void *ud) {
  (void)ud;
  count_visit(req, resp);
  return csn_ulfius_complete(req, resp);
}

/* Ends the chain without committing: an aborted request. */
static int ep_abort(const struct _u_request *req, struct _u_response *resp,
                    void *ud) {
  (void)ud;
  count_visit(req, resp);
  return U_CALLBACK_COMPLETE;
}

static int ep_error(const struct _u_request *req, struct _u_response *resp,
                    void *ud) {
  (void)ud;
  count_visit(req, resp);
  return U_CALLBACK_ERROR;
}

/* Counts the visit, then sleeps: the client has left by the time the
 * adapter commits. */
static int ep_slow(const struct _u_request *req, struct _u_response *resp,
                   void *ud) {
  fixture *f = ud;
  struct timespec ts = {0, 300 * 1000000L};
  count_visit(req, resp);
  nanosleep(&ts, NULL);
  atomic_store(&f->slow_done, 1);
  return U_CALLBACK_CONTINUE;
}

/* The session must be out of reach for a skipped route. */
static int ep_health(const struct _u_request *req, struct _u_response *resp,
                     void *ud) {
  (void)ud;
  say(resp, 200, csn_ulfius_request(req) == NULL ? "ok" : "has a session");
  return U_CALLBACK_CONTINUE;
}

static int skip_health(const struct _u_request *req, void *ud) {
  (void)ud;
  return strcmp(req->url_path, "/health") == 0;
}

/* The default endpoint, with the session loaded around it. */
static int ep_default(const struct _u_request *req, struct _u_response *resp,
                      void *ud) {
  csn_session *s = csn_ulfius_session(req);
  int64_t misses = 0;
  char body[64];
  (void)ud;
  if (s != NULL)
    assert_int_equal(csn_session_incr(s, "misses", 1, &misses), CSN_OK);
  snprintf(body, sizeof body, "default misses=%lld", (long long)misses);
  say(resp, 404, body);
  return U_CALLBACK_CONTINUE;
}

/* ------------------------------------------------------------------------ */
/* Store faults, log, error handler                                         */
/* ------------------------------------------------------------------------ */

static int fault(csn_store *st, const char *op, void *ud) {
  fixture *f = ud;
  if (strcmp(op, "get") == 0 && atomic_load(&f->fail_get))
    return csn_store_set_error(st, CSN_ESTORE, "disk on fire (get)");
  if ((strcmp(op, "set") == 0 || strcmp(op, "cas") == 0) &&
      atomic_load(&f->fail_set))
    return csn_store_set_error(st, CSN_ESTORE, "disk on fire (set)");
  return CSN_OK;
}

/* One request at a time in these tests: the buffers are written by one
 * worker and read after the response. */
static void log_hook(int err, const char *message, void *ud) {
  fixture *f = ud;
  snprintf(f->log_msg, sizeof f->log_msg, "%s", message);
  atomic_store(&f->log_err, err);
  atomic_fetch_add(&f->logs, 1);
}

static void custom_error(const struct _u_request *req,
                         struct _u_response *resp, int err,
                         const char *message, void *ud) {
  fixture *f = ud;
  (void)req;
  snprintf(f->hook_msg, sizeof f->hook_msg, "%s", message);
  atomic_store(&f->hook_err, err);
  atomic_fetch_add(&f->hook_calls, 1);
  /* The response arrives emptied of what the endpoint had put in it. */
  assert_int_equal(resp->nb_cookies, 0);
  assert_null(u_map_get_case(resp->map_header, "Set-Cookie"));
  say(resp, 503, "try again later\n");
}

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

static char *bio_text(BIO *b) {
  char *data = NULL, *out;
  long n = BIO_get_mem_data(b, &data);
  if (n < 0 || (out = malloc((size_t)n + 1)) == NULL)
    return NULL;
  memcpy(out, data, (size_t)n);
  out[n] = '\0';
  return out;
}

/* A throw-away P-256 key and certificate for 127.0.0.1, in memory. */
static void make_cert(fixture *f) {
  EVP_PKEY *pkey = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
  X509_NAME *name;

  assert_true(pkey != NULL && x != NULL && kb != NULL && cb != NULL);
  assert_true(X509_set_version(x, 2));
  assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
  assert_true(X509_set_pubkey(x, pkey));
  name = X509_get_subject_name(x);
  assert_true(X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0));
  assert_true(X509_set_issuer_name(x, name));
  assert_true(X509_sign(x, pkey, EVP_sha256()));
  assert_true(PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL));
  assert_true(PEM_write_bio_X509(cb, x));
  f->key_pem = bio_text(kb);
  f->cert_pem = bio_text(cb);
  assert_true(f->key_pem != NULL && f->cert_pem != NULL);
  BIO_free(kb);
  BIO_free(cb);
  X509_free(x);
  EVP_PKEY_free(pkey);
}

typedef struct start_opts {
  int tls;
  int secure; /* enum csn_secure */
  int proxy;  /* enum csn_proxy */
  int with_default;
} start_opts;

static void add(fixture *f, const char *method, const char *path,
                int (*cb)(const struct _u_request *, struct _u_response *,
                          void *)) {
  assert_int_equal(
      ulfius_add_endpoint_by_val(&f->inst, method, NULL, path, 1, cb, f),
      U_OK);
}

static fixture *start(const start_opts *so) {
  fixture *f = calloc(1, sizeof *f);
  struct MHD_OptionItem ops[8];
  const union MHD_DaemonInfo *info;
  unsigned int flags = MHD_USE_THREAD_PER_CONNECTION |
                       MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  csn_options o;
  size_t n = 0;

  assert_non_null(f);
  f->tls = so->tls;
  f->store = counting_store_new(NULL, 1);
  csn_options_init(&o);
  o.resave = 0;
  o.save_uninitialized = 0;
  o.proxy = so->proxy;
  o.cookie.secure = so->secure;
  o.store = &f->store->base;
  o.log = log_hook;
  o.log_userdata = f;
  f->ctx = http_ctx_new(&o);

  f->addr.sin_family = AF_INET;
  f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  f->addr.sin_port = 0;
  assert_int_equal(ulfius_init_instance(&f->inst, 1, NULL, NULL), U_OK);
  f->inst.port = 0; /* the kernel picks (MHD_OPTION_SOCK_ADDR's port) */
  assert_int_equal(csn_ulfius_install(&f->inst, f->ctx), CSN_OK);
  assert_int_equal(csn_ulfius_set_skip(f->ctx, skip_health, NULL), CSN_OK);
  add(f, "GET", "/", ep_count);
  add(f, "GET", "/extra", ep_extra);
  add(f, "GET", "/complete", ep_complete);
  add(f, "GET", "/abort", ep_abort);
  add(f, "GET", "/error", ep_error);
  add(f, "GET", "/slow", ep_slow);
  add(f, "GET", "/health", ep_health);
  if (so->with_default)
    assert_int_equal(ulfius_set_default_endpoint(&f->inst, ep_default, f),
                     U_OK);

  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                     (intptr_t)mhd_request_completed, NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK,
                                     (intptr_t)ulfius_uri_logger, NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &f->addr};
  if (so->tls) {
    make_cert(f);
    flags |= MHD_USE_TLS;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                       f->key_pem};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                       f->cert_pem};
  }
  ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  assert_int_equal(
      ulfius_start_framework_with_mhd_options(&f->inst, flags, ops), U_OK);
  info = MHD_get_daemon_info(f->inst.mhd_daemon, MHD_DAEMON_INFO_BIND_PORT);
  assert_non_null(info);
  assert_true(info->port != 0);
  snprintf(f->base, sizeof f->base, "%s://127.0.0.1:%u",
           so->tls ? "https" : "http", (unsigned)info->port);
  f->jar = http_client_new(1);
  csn__store_set_fault(fault, f);
  return f;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f == NULL)
    return 0;
  csn__store_set_fault(NULL, NULL);
  http_client_free(f->jar);
  /* Stopping joins the connection threads (their slots go with them)
   * before the context is freed. */
  ulfius_stop_framework(&f->inst);
  ulfius_clean_instance(&f->inst);
  csn_ctx_free(f->ctx);
  csn_store_free(&f->store->base);
  free(f->key_pem);
  free(f->cert_pem);
  free(f);
  *state = NULL;
  return 0;
}

static http_response get_with(fixture *f, const char *path,
                              const char *const *headers) {
  char url[160];
  http_request_opts o;
  http_response r;
  snprintf(url, sizeof url, "%s%s", f->base, path);
  memset(&o, 0, sizeof o);
  o.url = url;
  o.headers = headers;
  if (http_request(f->jar, &o, &r) != 0)
    fail_msg("GET %s failed: %s", path, r.error);
  return r;
}

static http_response get(fixture *f, const char *path) {
  return get_with(f, path, NULL);
}

static void expect(fixture *f, const char *path, long status,
                   const char *body) {
  http_response r = get(f, path);
  assert_int_equal(r.status, status);
  assert_string_equal(r.body, body);
  http_response_free(&r);
}

/* The session cookie exactly as the core writes it (the adapter must not
 * reformat it). */
#define SID_RE "^connect\\.sid=s%3A[A-Za-z0-9_-]{32}\\.[A-Za-z0-9%]+; Path=/; HttpOnly$"

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_counter_with_jar(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r = get(f, "/");

  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=1");
  assert_int_equal(r.n_set_cookie, 1);
  if (!http_regex_match(SID_RE, r.set_cookie[0]))
    fail_msg("Set-Cookie reformatted: %s", r.set_cookie[0]);
  http_response_free(&r);
  expect(f, "/", 200, "views=2");
  r = get(f, "/");
  assert_string_equal(r.body, "views=3");
  /* A browser-session cookie that did not change is not sent again. */
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(counting_store_length(f->store), 1);
}

static void test_unmatched_reaches_default_endpoint(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r = get(f, "/nowhere");

  /* The session endpoints matched and were ignored; the default endpoint
   * answered, with the session loaded before and committed after. */
  assert_int_equal(r.status, 404);
  assert_string_equal(r.body, "default misses=1");
  assert_int_equal(r.n_set_cookie, 1);
  http_response_free(&r);
  expect(f, "/elsewhere/deeper?x=1", 404, "default misses=2");
  /* A method no endpoint has takes the same way. */
  {
    char url[160];
    http_request_opts o;
    snprintf(url, sizeof url, "%s/", f->base);
    memset(&o, 0, sizeof o);
    o.method = "DELETE";
    o.url = url;
    assert_int_equal(http_request(f->jar, &o, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "default misses=3");
    http_response_free(&r);
  }
  /* Matched routes are unaffected. */
  expect(f, "/", 200, "views=1");
}

static void test_unmatched_without_default_is_404(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 0};
  fixture *f = *state = start(&so);
  /* Ulfius's own answer when nothing matches. */
  expect(f, "/nowhere", 404, ULFIUS_HTTP_NOT_FOUND_BODY);
  expect(f, "/", 200, "views=1");
}

static void test_app_cookies_kept_ours_last(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r = get(f, "/extra");

  assert_int_equal(r.status, 200);
  assert_int_equal(r.n_set_cookie, 3);
  assert_string_equal(r.set_cookie[0], "theme=dark");
  assert_string_equal(r.set_cookie[1], "lang=fr");
  if (!http_regex_match(SID_RE, r.set_cookie[2]))
    fail_msg("session cookie: %s", r.set_cookie[2]);
  http_response_free(&r);

  /* A cookie of the application named like the session's: both are
   * sent, the session's last, unchanged. */
  http_client_clear_cookies(f->jar);
  r = get(f, "/extra?clash=1");
  assert_int_equal(r.n_set_cookie, 4);
  assert_string_equal(r.set_cookie[2], "connect.sid=mine");
  if (!http_regex_match(SID_RE, r.set_cookie[3]))
    fail_msg("session cookie: %s", r.set_cookie[3]);
  http_response_free(&r);
}

static void test_commit_failure_is_500(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r;

  atomic_store(&f->fail_set, 1);
  r = get(f, "/extra");
  assert_int_equal(r.status, 500);
  assert_string_equal(r.body, "Internal Server Error\n");
  assert_non_null(strstr(r.headers, "text/plain"));
  /* Nothing was saved: no cookie at all, the application's dropped with
   * the answer it belonged to. */
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(counting_store_length(f->store), 0);
  assert_int_equal(atomic_load(&f->logs), 1);
  assert_int_equal(atomic_load(&f->log_err), CSN_ESTORE);
  if (strstr(f->log_msg, "disk on fire (set)") == NULL)
    fail_msg("log lacks the store's message: %s", f->log_msg);

  /* Through csn_ulfius_complete() too. */
  r = get(f, "/complete");
  assert_int_equal(r.status, 500);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);

  /* A configured handler answers instead. */
  assert_int_equal(csn_ulfius_set_error_handler(f->ctx, custom_error, f),
                   CSN_OK);
  expect(f, "/", 503, "try again later\n");
  assert_int_equal(atomic_load(&f->hook_calls), 1);
  assert_int_equal(atomic_load(&f->hook_err), CSN_ESTORE);
  assert_non_null(strstr(f->hook_msg, "disk on fire (set)"));
  assert_int_equal(csn_ulfius_set_error_handler(f->ctx, NULL, NULL), CSN_OK);

  /* The store recovers: the next request works from scratch. */
  atomic_store(&f->fail_set, 0);
  expect(f, "/", 200, "views=1");
  expect(f, "/", 200, "views=2");
}

static void test_load_failure_is_500(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r;

  expect(f, "/", 200, "views=1");
  atomic_store(&f->fail_get, 1);
  r = get(f, "/");
  assert_int_equal(r.status, 500);
  assert_string_equal(r.body, "Internal Server Error\n");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  if (strstr(f->log_msg, "disk on fire (get)") == NULL)
    fail_msg("log lacks the store's message: %s", f->log_msg);
  atomic_store(&f->fail_get, 0);
  expect(f, "/", 200, "views=2");
}

static void test_secure_cookie_behind_proxy(void **state) {
  static const char *const https[] = {"X-Forwarded-Proto: https", NULL};
  start_opts so = {0, CSN_SECURE_ON, CSN_PROXY_TRUST, 1};
  fixture *f = *state = start(&so);
  http_response r;

  /* Plain HTTP, nothing forwarded: a secure cookie is not sent. */
  r = get(f, "/");
  assert_int_equal(r.status, 200);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);

  r = get_with(f, "/", https);
  assert_int_equal(r.n_set_cookie, 1);
  if (!http_regex_match("^connect\\.sid=s%3A[^;]+; Path=/; HttpOnly; Secure$",
                        r.set_cookie[0]))
    fail_msg("secure cookie: %s", r.set_cookie[0]);
  http_response_free(&r);
}

static void test_forwarded_proto_needs_proxy(void **state) {
  static const char *const https[] = {"X-Forwarded-Proto: https", NULL};
  start_opts so = {0, CSN_SECURE_ON, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  /* Without `proxy` the header is not believed: the instance is plain. */
  http_response r = get_with(f, "/", https);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
}

static void test_tls_instance_is_secure(void **state) {
  start_opts so = {1, CSN_SECURE_ON, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r = get(f, "/");

  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=1");
  assert_int_equal(r.n_set_cookie, 1);
  assert_non_null(strstr(r.set_cookie[0], "; Secure"));
  http_response_free(&r);
  expect(f, "/", 200, "views=2");
}

static void test_chains_that_end_early(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r;

  /* csn_ulfius_complete(): committed by the endpoint itself. */
  r = get(f, "/complete");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=1");
  assert_int_equal(r.n_set_cookie, 1);
  http_response_free(&r);

  /* U_CALLBACK_COMPLETE alone: aborted, the visit is not saved. */
  counting_store_reset(f->store);
  r = get(f, "/abort");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "views=2");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->store->sets), 0);

  /* U_CALLBACK_ERROR: Ulfius's 500, nothing saved. */
  r = get(f, "/error");
  assert_int_equal(r.status, 500);
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  assert_int_equal(atomic_load(&f->store->sets), 0);

  /* Both dropped sessions are gone by now or at the threads' end (ASan
   * would report them); the next request is served normally. */
  expect(f, "/", 200, "views=2");
}

static void test_skip_route_has_no_session(void **state) {
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  http_response r;

  expect(f, "/", 200, "views=1");
  counting_store_reset(f->store);
  r = get(f, "/health");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok");
  assert_int_equal(r.n_set_cookie, 0);
  http_response_free(&r);
  /* Not even a lookup of the cookie the client sent. */
  assert_int_equal(atomic_load(&f->store->gets), 0);
}

/* The client sends its request and closes before the answer: the chain
 * runs to its end all the same, the session is committed, and nothing
 * is left behind (ASan's leak check at exit). */
static void test_client_leaves_early(void **state) {
  static const char req[] =
      "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  start_opts so = {0, CSN_SECURE_OFF, CSN_PROXY_DEFAULT, 1};
  fixture *f = *state = start(&so);
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int fd, i;

  assert_int_equal(getsockname(MHD_get_daemon_info(f->inst.mhd_daemon,
                                                   MHD_DAEMON_INFO_LISTEN_FD)
                                   ->listen_fd,
                               (struct sockaddr *)&sa, &len),
                   0);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
  close(fd);
  for (i = 0; i < 200 && !atomic_load(&f->slow_done); i++)
    usleep(10000);
  assert_true(atomic_load(&f->slow_done));
  /* Wait for the commit the endpoint's return leads to. */
  for (i = 0; i < 200 && counting_store_length(f->store) != 1; i++)
    usleep(10000);
  assert_int_equal(counting_store_length(f->store), 1);
}

static void test_bad_arguments(void **state) {
  struct _u_instance inst;
  csn_options o;
  csn_ctx *ctx;
  (void)state;
  csn_options_init(&o);
  ctx = http_ctx_new(&o);
  assert_int_equal(csn_ulfius_install(NULL, ctx), CSN_EINVAL);
  assert_int_equal(csn_ulfius_install(&inst, NULL), CSN_EINVAL);
  assert_int_equal(csn_ulfius_set_skip(NULL, NULL, NULL), CSN_EINVAL);
  assert_int_equal(csn_ulfius_set_error_handler(NULL, NULL, NULL),
                   CSN_EINVAL);
  /* No request on this thread: nothing to find or commit. */
  assert_null(csn_ulfius_request(NULL));
  assert_null(csn_ulfius_session(NULL));
  assert_int_equal(csn_ulfius_commit(NULL, NULL), CSN_EINVAL);
  csn_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_counter_with_jar, teardown),
      cmocka_unit_test_teardown(test_unmatched_reaches_default_endpoint,
                                teardown),
      cmocka_unit_test_teardown(test_unmatched_without_default_is_404,
                                teardown),
      cmocka_unit_test_teardown(test_app_cookies_kept_ours_last, teardown),
      cmocka_unit_test_teardown(test_commit_failure_is_500, teardown),
      cmocka_unit_test_teardown(test_load_failure_is_500, teardown),
      cmocka_unit_test_teardown(test_secure_cookie_behind_proxy, teardown),
      cmocka_unit_test_teardown(test_forwarded_proto_needs_proxy, teardown),
      cmocka_unit_test_teardown(test_tls_instance_is_secure, teardown),
      cmocka_unit_test_teardown(test_chains_that_end_early, teardown),
      cmocka_unit_test_teardown(test_skip_route_has_no_session, teardown),
      cmocka_unit_test_teardown(test_client_leaves_early, teardown),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
