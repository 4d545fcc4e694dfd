/* test_parity_common.c - see test_parity_common.h. */
#define _GNU_SOURCE
#include "test_parity_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const KEYBOARD_CAT[] = {"keyboard cat"};

/* The context's log hook: keep the last message so a case can check what
 * an error said, and keep stderr quiet for the expected failures. */
static void quiet_log(int err, const char *message, void *ud) {
  pt_server *p = ud;
  (void)err;
  snprintf(p->last_log, sizeof p->last_log, "%s", message);
}

/* Errors answer 500 with the message as the body, like the upstream
 * harness's error handler (`res.end(err.message)`). */
static csn_mhd_result error_reply(struct MHD_Connection *conn, int err,
                                  const char *message, void *ud) {
  (void)err;
  (void)ud;
  return http_reply(conn, NULL, 500, message, NULL);
}

pt_server *pt_new(void) {
  pt_server *p = calloc(1, sizeof *p);
  assert_non_null(p);
  p->store = counting_store_new(NULL, 1);
  assert_non_null(p->store);
  csn_options_init(&p->o);
  p->o.secrets = KEYBOARD_CAT;
  p->o.n_secrets = 1;
  p->o.cookie.max_age_ms = 60000;
  p->o.store = &p->store->base;
  p->o.log = quiet_log;
  p->o.log_userdata = p;
  atomic_init(&p->counter, 0);
  atomic_init(&p->calls, 0);
  return p;
}

/* Build the request facts as the adapter does, except that the test may
 * say what the framework's req.secure is (header X-Test-Secure, the
 * stand-in for Express setting req.secure) and what the URL is. */
static int begin(pt_server *p, const http_req *hr, csn_request **out) {
  const char *fake =
      MHD_lookup_connection_value(hr->conn, MHD_HEADER_KIND, "X-Test-Secure");
  csn_request_info info;
  if (fake == NULL && p->url_override == NULL)
    return csn_mhd_begin(p->ctx, hr->conn, hr->url, out);
  memset(&info, 0, sizeof info);
  info.cookie_header = MHD_lookup_connection_value(hr->conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_COOKIE);
  info.forwarded_proto = MHD_lookup_connection_value(
      hr->conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
  info.url = p->url_override ? p->url_override : hr->url;
  info.tls = MHD_get_connection_info(hr->conn, MHD_CONNECTION_INFO_PROTOCOL) !=
             NULL;
  info.secure = fake ? strcmp(fake, "true") == 0 : info.tls;
  info.native = hr->conn;
  return csn_request_begin(p->ctx, &info, out);
}

static csn_mhd_result dispatch(const http_req *hr) {
  pt_server *p = hr->userdata;
  pt_call *c = calloc(1, sizeof *c);
  csn_mhd_result ret;
  struct MHD_Response *resp;

  if (c == NULL)
    return MHD_NO;
  c->p = p;
  c->hr = hr;
  c->url = hr->url;
  c->method = hr->method;
  c->status = 200;
  if (!p->no_middleware) {
    int rc = begin(p, hr, &c->req);
    if (rc < 0) {
      free(c);
      return csn_mhd_error(p->ctx, hr->conn, rc);
    }
    c->s = csn_request_session(c->req);
  }
  if (p->handler)
    p->handler(c);
  /* The body is the handler's bytes exactly (it may hold anything), so the
   * response is built here rather than with http_reply's strlen. */
  resp = MHD_create_response_from_buffer(c->body_len, c->body,
                                         MHD_RESPMEM_MUST_COPY);
  if (resp == NULL) {
    csn_request_free(c->req);
    free(c);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  if (c->extra_header) {
    const char *colon = strchr(c->extra_header, ':');
    char name[128];
    size_t n = colon ? (size_t)(colon - c->extra_header) : 0;
    if (n > 0 && n < sizeof name) {
      memcpy(name, c->extra_header, n);
      name[n] = '\0';
      MHD_add_response_header(resp, name, colon + 1 + (colon[1] == ' '));
    }
  }
  if (c->req)
    ret = csn_mhd_queue_response(c->req, hr->conn, c->status, resp);
  else
    ret = MHD_queue_response(hr->conn, c->status, resp);
  MHD_destroy_response(resp);
  free(c);
  return ret;
}

void pt_start(pt_server *p, pt_handler h, int tls) {
  http_server_opts so;
  char err[256] = "";
  int rc;
  if (p->use_store)
    p->o.store = p->use_store;
  rc = csn_ctx_new(&p->ctx, &p->o, err, sizeof err);
  if (rc != CSN_OK)
    fail_msg("csn_ctx_new: %s", err);
  csn_mhd_set_error_handler(p->ctx, error_reply, p);
  p->handler = h;
  p->tls = tls;
  memset(&so, 0, sizeof so);
  so.ctx = p->ctx;
  so.handler = dispatch;
  so.userdata = p;
  so.tls = tls;
  so.threads = 2;
  assert_int_equal(http_server_start(&so, &p->http), 0);
  p->client = http_client_new(0);
  assert_non_null(p->client);
}

void pt_free(pt_server *p) {
  size_t i;
  if (p == NULL)
    return;
  pt_fault_clear();
  http_server_stop(p->http);
  http_client_free(p->client);
  http_response_free(&p->res);
  csn_ctx_free(p->ctx);
  if (p->use_store)
    csn_store_free(p->use_store);
  csn_store_free(&p->store->base);
  for (i = 0; i < p->n_owned; i++)
    free(p->owned[i]);
  free(p->owned);
  free(p);
}

http_response *pt_req(pt_server *p, const char *method, const char *path,
                      const char *cookie, const char *const *headers) {
  http_request_opts r;
  char url[512];
  http_response_free(&p->res);
  memset(&r, 0, sizeof r);
  r.method = method;
  r.url = http_server_url(p->http, path, url, sizeof url);
  r.cookie = cookie;
  r.headers = headers;
  if (http_request(p->client, &r, &p->res) != 0)
    fail_msg("request %s failed: %s", path, p->res.error);
  return &p->res;
}

http_response *pt_get(pt_server *p, const char *path, const char *cookie) {
  return pt_req(p, NULL, path, cookie, NULL);
}

const char *pt_keep(pt_server *p, char *s) {
  char **n;
  if (s == NULL)
    return NULL;
  n = realloc(p->owned, (p->n_owned + 1) * sizeof *n);
  assert_non_null(n);
  p->owned = n;
  p->owned[p->n_owned++] = s;
  return s;
}

const char *pt_fmt(pt_server *p, const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  assert_non_null(s);
  return pt_keep(p, s);
}

const char *pt_set_cookie_named(pt_server *p, const char *name) {
  size_t i, n = strlen(name);
  for (i = 0; i < p->res.n_set_cookie; i++)
    if (strncmp(p->res.set_cookie[i], name, n) == 0 &&
        p->res.set_cookie[i][n] == '=')
      return pt_keep(p, strdup(p->res.set_cookie[i]));
  return NULL;
}

const char *pt_set_cookie(pt_server *p) {
  return pt_set_cookie_named(p, p->o.name);
}

const char *pt_cookie(pt_server *p) {
  const char *sc = pt_set_cookie(p);
  size_t n;
  if (sc == NULL)
    return NULL;
  n = strcspn(sc, ";");
  return pt_keep(p, strndup(sc, n));
}

const char *pt_sid(pt_server *p) {
  char *v = http_set_cookie_value(&p->res, p->o.name);
  const char *sid;
  if (v == NULL)
    return NULL;
  sid = pt_keep(p, http_cookie_sid(v, "keyboard cat"));
  free(v);
  return sid;
}

int pt_attr(const char *sc, const char *attr) {
  const char *q = sc;
  size_t n = strlen(attr);
  if (sc == NULL)
    return 0;
  while ((q = strstr(q, "; ")) != NULL) {
    q += 2;
    if (strncmp(q, attr, n) == 0 && (q[n] == ';' || q[n] == '\0'))
      return 1;
  }
  return 0;
}

/* An IMF-fixdate ("Thu, 01 Jan 1970 00:00:00 GMT") in epoch ms. */
static int64_t http_date_ms(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) == NULL)
    return PT_NONE;
  return (int64_t)timegm(&tm) * 1000;
}

int64_t pt_expires(const char *sc) {
  const char *q = sc ? strstr(sc, "; Expires=") : NULL;
  return q ? http_date_ms(q + 10) : PT_NONE;
}

const char *pt_header(pt_server *p, const char *name) {
  const char *line = p->res.headers;
  size_t n = strlen(name);
  while (line && *line) {
    const char *end = strstr(line, "\r\n");
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
      const char *v = line + n + 1;
      while (*v == ' ')
        v++;
      return pt_keep(p, strndup(v, (size_t)(line + len - v)));
    }
    line = end ? end + 2 : NULL;
  }
  return NULL;
}

int64_t pt_date(const http_response *r) {
  const char *q = r->headers ? strstr(r->headers, "\r\nDate: ") : NULL;
  return q ? http_date_ms(q + 8) : PT_NONE;
}

const char *pt_stored(pt_server *p, const char *sid) {
  char *json = NULL, *copy;
  size_t len = 0;
  if (sid == NULL || csn_store_get(p->store->inner, sid, &json, &len) != 0)
    return NULL;
  copy = strndup(json, len);
  csn_free(json);
  return pt_keep(p, copy);
}

int64_t pt_stored_expires(pt_server *p, const char *sid) {
  const char *rec = pt_stored(p, sid);
  json_t *root, *exp;
  int64_t ms = PT_NONE;
  if (rec == NULL)
    return PT_NONE;
  root = json_loads(rec, 0, NULL);
  exp = json_object_get(json_object_get(root, "cookie"), "expires");
  if (json_is_string(exp) &&
      csn__parse_iso8601(json_string_value(exp), json_string_length(exp),
                         &ms) != 0)
    ms = PT_NONE;
  json_decref(root);
  return ms;
}

void pt_store_put(pt_server *p, const char *sid, const char *json) {
  assert_int_equal(csn_store_set(p->store->inner, sid, json, strlen(json),
                                 CSN_TIME_NONE),
                   CSN_OK);
}

long pt_store_len(pt_server *p) { return counting_store_length(p->store); }

const char *pt_signed(pt_server *p, const char *name, const char *sid,
                      const char *secret) {
  char sig[512], enc[1100];
  size_t n = sizeof sig, i, o = 0;
  assert_int_equal(
      csn_cookie_sign(sid, strlen(sid), secret, strlen(secret), sig, &n), 0);
  /* encodeURIComponent of "s:" + signed, for the characters that occur. */
  o = (size_t)snprintf(enc, sizeof enc, "s%%3A");
  for (i = 0; i < n && o + 4 < sizeof enc; i++) {
    unsigned char ch = (unsigned char)sig[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || strchr("-_.!~*'()", ch))
      enc[o++] = (char)ch;
    else
      o += (size_t)snprintf(enc + o, sizeof enc - o, "%%%02X", ch);
  }
  enc[o] = '\0';
  return pt_fmt(p, "%s=%s", name, enc);
}

void pt_printf(pt_call *c, const char *fmt, ...) {
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(c->body + c->body_len, sizeof c->body - c->body_len, fmt, ap);
  va_end(ap);
  if (n > 0) {
    c->body_len += (size_t)n;
    if (c->body_len >= sizeof c->body)
      c->body_len = sizeof c->body - 1;
  }
}

/* ------------------------------------------------------------------------ */
/* Store faults                                                             */
/* ------------------------------------------------------------------------ */

typedef struct pt_fault_spec {
  csn_store *st;
  char op[16];
  int err;
  int delay_ms;
} pt_fault_spec;

static pt_fault_spec g_fault;

static int fault_fn(csn_store *st, const char *op, void *ud) {
  pt_fault_spec *f = ud;
  if (st != f->st || strcmp(op, f->op) != 0)
    return 0;
  if (f->delay_ms > 0)
    pt_sleep_ms(f->delay_ms);
  if (f->err < 0)
    return csn_store_set_error(st, f->err, "boom!");
  return 0;
}

void pt_fault(pt_server *p, const char *op, int err, int delay_ms) {
  csn__store_set_fault(NULL, NULL);
  g_fault.st = p->use_store ? p->use_store : &p->store->base;
  snprintf(g_fault.op, sizeof g_fault.op, "%s", op);
  g_fault.err = err;
  g_fault.delay_ms = delay_ms;
  csn__store_set_fault(fault_fn, &g_fault);
}

void pt_fault_clear(void) { csn__store_set_fault(NULL, NULL); }

void pt_sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0)
    ;
}

int64_t pt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pt_run(const char *group, const struct CMUnitTest *tests, size_t n,
           int argc, char **argv) {
  size_t i;
  if (argc > 1) {
    /* A registered name that matches no case must fail, not pass empty. */
    for (i = 0; i < n && strcmp(tests[i].name, argv[1]) != 0; i++)
      ;
    if (i == n) {
      fprintf(stderr, "%s: no case named %s\n", group, argv[1]);
      return 1;
    }
    cmocka_set_test_filter(argv[1]);
  }
  return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}
