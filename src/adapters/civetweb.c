/* civetweb.c - the CivetWeb adapter.
 *
 * Like the libmicrohttpd adapter, this one is thin: it collects the facts
 * the core needs about a request (the Cookie header, the request path,
 * TLS, X-Forwarded-Proto), hands them to csn_request_begin(), and writes
 * back the one Set-Cookie value csn_request_commit() computed. It never
 * parses, signs or dates a cookie: every such decision lives in the core.
 *
 * It uses only the public API, as a user's own adapter would. Its only
 * state is the error responder, attached to the context with
 * csn_ctx_set_ext().
 *
 * CivetWeb's response API has one trap that shapes csn_civetweb_send():
 * once mg_response_header_start() has run, the connection accepts no other
 * status line. So everything that can fail before the response exists -
 * the arguments, then the commit - is done first, and only then is the
 * response built.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "csn/csn.h"
#include "csn/csn_civetweb.h"

typedef struct civetweb_state {
  csn_civetweb_error_fn error_fn;
  void *error_ud;
} civetweb_state;

/* Its address is this adapter's csn_ctx_ext() key. */
static const char civetweb_state_key;

/* The headers csn_civetweb_send() adds beside the caller's: Content-Type,
 * Content-Length, Set-Cookie. CivetWeb buffers at most MG_MAX_HEADERS. */
#define CIVETWEB_OWN_HEADERS 3

/* ------------------------------------------------------------------------ */
/* Request                                                                  */
/* ------------------------------------------------------------------------ */

/* The request's Cookie header. CivetWeb keeps every header line in
 * request_info.http_headers, repeated names included, and mg_get_header()
 * answers the first. Node.js joins repeated Cookie lines with "; " (as an
 * HTTP/2 client sends them), and express-session then takes the first
 * cookie of its name: joining here gives the same answer for the same
 * bytes. *joined is NULL when a header is borrowed as it is, else the
 * joined copy the caller frees. Returns CSN_OK or CSN_ENOMEM. */
static int cookie_header(const struct mg_request_info *ri, const char **out,
                         char **joined) {
  size_t total = 0, n = 0, at = 0;
  const char *first = NULL;
  char *buf;
  int i;

  *out = NULL;
  *joined = NULL;
  for (i = 0; i < ri->num_headers; i++) {
    const struct mg_header *h = &ri->http_headers[i];
    if (h->name == NULL || h->value == NULL ||
        strcasecmp(h->name, "Cookie") != 0)
      continue;
    if (first == NULL)
      first = h->value;
    total += strlen(h->value);
    n++;
  }
  if (n <= 1) {
    *out = first;
    return CSN_OK;
  }
  /* n lines, n-1 separators of two bytes, one NUL. The request headers fit
   * in CivetWeb's max_request_size, so the sum cannot overflow. */
  buf = csn_malloc(total + 2 * (n - 1) + 1);
  if (buf == NULL)
    return CSN_ENOMEM;
  for (i = 0; i < ri->num_headers; i++) {
    const struct mg_header *h = &ri->http_headers[i];
    size_t len;
    if (h->name == NULL || h->value == NULL ||
        strcasecmp(h->name, "Cookie") != 0)
      continue;
    if (at > 0) {
      memcpy(buf + at, "; ", 2);
      at += 2;
    }
    len = strlen(h->value);
    memcpy(buf + at, h->value, len);
    at += len;
  }
  buf[at] = '\0';
  *out = buf;
  *joined = buf;
  return CSN_OK;
}

int csn_civetweb_begin(csn_ctx *ctx, struct mg_connection *conn,
                       csn_request **out) {
  const struct mg_request_info *ri;
  csn_request_info info;
  char *joined = NULL;
  int rc;

  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (ctx == NULL || conn == NULL)
    return CSN_EINVAL;
  ri = mg_get_request_info(conn);
  if (ri == NULL)
    return CSN_EINVAL;

  memset(&info, 0, sizeof info);
  rc = cookie_header(ri, &info.cookie_header, &joined);
  if (rc < 0)
    return rc;
  /* The first X-Forwarded-Proto line: the core trusts only its first
   * entry, which is also the first entry of the lines Node would join. */
  info.forwarded_proto = mg_get_header(conn, "X-Forwarded-Proto");
  /* By the time a handler runs, CivetWeb has cut the query string off
   * request_uri (query_string points past the '?') and, with decode_url
   * on (its default), URL-decoded the path in place. An absolute-form
   * target ("http://host/path") is left whole; the core takes its path. */
  info.url = ri->request_uri;
  info.tls = ri->is_ssl != 0;
  /* CivetWeb's only notion of "secure" is the socket's, so req.secure is
   * the TLS fact (used only with CSN_PROXY_DEFAULT). */
  info.secure = info.tls;
  info.native = conn;
  rc = csn_request_begin(ctx, &info, out);
  /* The core copies what it keeps: the joined header may go now. */
  csn_free(joined);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* The default error responder: a bare 500 that reveals nothing about the
 * failure to the client (the detail goes to the log). */
static int default_error_response(struct mg_connection *conn) {
  static const char body[] = "Internal Server Error\n";
  char len[24];

  snprintf(len, sizeof len, "%zu", sizeof body - 1);
  if (mg_response_header_start(conn, 500) == 0) {
    mg_response_header_add(conn, "Content-Type", "text/plain", -1);
    mg_response_header_add(conn, "Content-Length", len, -1);
    mg_response_header_send(conn);
    mg_write(conn, body, sizeof body - 1);
  }
  /* A response already under way cannot be replaced; 500 still goes to
   * CivetWeb's access log. */
  return 500;
}

/* Log `message` and answer through the error handler. */
static int error_response(csn_ctx *ctx, struct mg_connection *conn, int err,
                          const char *message) {
  csn_civetweb_error_fn fn = NULL;
  void *ud = NULL;

  if (ctx != NULL) {
    const civetweb_state *st = csn_ctx_ext(ctx, &civetweb_state_key);
    csn_ctx_log(ctx, err, "%s", message);
    if (st != NULL) {
      fn = st->error_fn;
      ud = st->error_ud;
    }
  }
  if (conn == NULL)
    return 500;
  if (fn == NULL)
    return default_error_response(conn);
  return fn(conn, err, message, ud);
}

int csn_civetweb_error(csn_ctx *ctx, struct mg_connection *conn, int err) {
  const char *message = csn_last_error();

  /* The thread's last error carries the store's own words; the code's
   * message is the fallback. */
  if (message == NULL || message[0] == '\0')
    message = csn_strerror(err);
  return error_response(ctx, conn, err, message);
}

void csn_civetweb_set_error_handler(csn_ctx *ctx, csn_civetweb_error_fn fn,
                                    void *userdata) {
  civetweb_state *st;
  int rc;

  if (ctx == NULL)
    return;
  st = csn_ctx_ext(ctx, &civetweb_state_key);
  if (st == NULL) {
    if (fn == NULL)
      return;
    st = csn_malloc(sizeof *st);
    if (st == NULL) {
      rc = CSN_ENOMEM;
    } else if ((rc = csn_ctx_set_ext(ctx, &civetweb_state_key, st,
                                     csn_free)) < 0) {
      csn_free(st);
    }
    if (rc < 0) {
      csn_ctx_log(ctx, rc,
                  "csn_civetweb_set_error_handler: cannot attach the "
                  "handler; the default error response stays");
      return;
    }
  }
  st->error_fn = fn;
  st->error_ud = userdata;
}

/* ------------------------------------------------------------------------ */
/* Response                                                                 */
/* ------------------------------------------------------------------------ */

/* A header name or value CivetWeb may write as it is: no control
 * characters (CR and LF would end the header and start another: header
 * injection), tabs allowed in values. A name must also be non-empty and
 * free of ':' and spaces. */
static int header_text_ok(const char *s, int is_name) {
  const unsigned char *p = (const unsigned char *)s;
  if (s == NULL || (is_name && *s == '\0'))
    return 0;
  for (; *p != '\0'; p++) {
    if (*p == 0x7f || (*p < 0x20 && (is_name || *p != '\t')))
      return 0;
    if (is_name && (*p == ':' || *p == ' ' || *p == '\t'))
      return 0;
  }
  return 1;
}

/* Checks every argument that could stop the response from being built, so
 * that nothing is committed for a response that cannot be sent. */
static int send_args_ok(int status, const char *content_type,
                        const char *const *headers) {
  size_t n = 0;

  if (status < 100 || status > 999)
    return 0;
  if (content_type != NULL && !header_text_ok(content_type, 0))
    return 0;
  if (headers != NULL) {
    for (; headers[n] != NULL; n += 2) {
      if (headers[n + 1] == NULL || !header_text_ok(headers[n], 1) ||
          !header_text_ok(headers[n + 1], 0))
        return 0;
    }
  }
  return n / 2 + CIVETWEB_OWN_HEADERS <= MG_MAX_HEADERS;
}

static int is_head(struct mg_connection *conn) {
  const struct mg_request_info *ri = mg_get_request_info(conn);
  return ri != NULL && ri->request_method != NULL &&
         strcmp(ri->request_method, "HEAD") == 0;
}

int csn_civetweb_send(csn_request *req, struct mg_connection *conn,
                      int status, const char *content_type,
                      const char *const *headers, const void *body,
                      size_t len) {
  csn_ctx *ctx;
  char *set_cookie = NULL;
  char clen[24];
  size_t i;
  int rc, failed = 0;

  if (req == NULL || conn == NULL || (body == NULL && len > 0)) {
    ctx = csn_request_ctx(req);
    csn_request_free(req);
    return error_response(ctx, conn, CSN_EINVAL,
                          "csn_civetweb_send: invalid argument");
  }
  ctx = csn_request_ctx(req);
  if (!send_args_ok(status, content_type, headers)) {
    csn_request_free(req);
    /* Not csn_last_error(): no csn_ call failed, and whatever failed
     * earlier in this thread is not the reason. */
    return error_response(ctx, conn, CSN_EINVAL,
                          "csn_civetweb_send: bad status or header (a "
                          "control character, too many); nothing committed");
  }

  rc = csn_request_commit(req, &set_cookie);
  /* Released before anything is sent: the error path needs only the
   * context, and releasing first means no path can leak. */
  csn_request_free(req);
  if (rc < 0)
    return csn_civetweb_error(ctx, conn, rc);

  if (mg_response_header_start(conn, status) != 0) {
    /* Something was sent already: the handler broke the contract. */
    csn_free(set_cookie);
    csn_ctx_log(ctx, CSN_ESTATE,
                "csn_civetweb_send: a response was already started");
    return status;
  }
  snprintf(clen, sizeof clen, "%zu", len);
  if (content_type != NULL)
    failed |= mg_response_header_add(conn, "Content-Type", content_type,
                                      -1) != 0;
  failed |= mg_response_header_add(conn, "Content-Length", clen, -1) != 0;
  for (i = 0; headers != NULL && headers[i] != NULL; i += 2)
    failed |= mg_response_header_add(conn, headers[i], headers[i + 1], -1) != 0;
  /* Last, after any Set-Cookie of the handler's: CivetWeb writes its
   * buffered headers in the order they were added. */
  if (set_cookie != NULL) {
    failed |= mg_response_header_add(conn, "Set-Cookie", set_cookie, -1) != 0;
    csn_free(set_cookie);
  }
  if (failed)
    csn_ctx_log(ctx, CSN_ENOMEM,
                "csn_civetweb_send: CivetWeb could not add a header");
  mg_response_header_send(conn);
  if (len > 0 && !is_head(conn))
    mg_write(conn, body, len);
  return status;
}
