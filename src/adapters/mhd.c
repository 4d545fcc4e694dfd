/* mhd.c - the libmicrohttpd adapter.
 *
 * The adapter is deliberately thin. It collects the facts the core needs
 * about a request (the raw Cookie header, the URL, whether the connection
 * is TLS, X-Forwarded-Proto), hands them to csn_request_begin(), and after
 * the handler has built its response it writes back the one Set-Cookie
 * value that csn_request_commit() computed. It never parses, signs or
 * dates a cookie: every such decision lives in the core, so that this
 * adapter and the Ulfius one cannot drift apart from express-session.
 *
 * The adapter uses only the public API, as a user's own adapter would: it
 * is a separate library and must not depend on the core's private layout.
 * Its only state is the error responder, attached to the context with
 * csn_ctx_set_ext() (the core never sees a libmicrohttpd type).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "csn/csn.h"
#include "csn/csn_mhd.h"

/* The adapter's per-context state, allocated on the first
 * csn_mhd_set_error_handler() call and freed by csn_ctx_free(). Absent
 * means the default responder. Holding the function pointer in a struct
 * of our own also keeps it out of any `void *`. */
typedef struct mhd_state {
  csn_mhd_error_fn error_fn;
  void *error_ud;
} mhd_state;

/* Its address is this adapter's csn_ctx_ext() key: unique to us, and no
 * other extension can name it. */
static const char mhd_state_key;

/* Is this connection itself TLS? MHD_CONNECTION_INFO_PROTOCOL answers the
 * TLS protocol version of the connection's GnuTLS session and NULL when
 * there is none (a plain-HTTP connection, or a library built without
 * HTTPS support), which is exactly the question. */
static int connection_is_tls(struct MHD_Connection *conn) {
  return MHD_get_connection_info(conn, MHD_CONNECTION_INFO_PROTOCOL) != NULL;
}

/* Several Cookie headers are read as Node's http module reads them: joined
 * in arrival order with "; " into one value (IncomingMessage joins
 * duplicate "cookie" lines so, where other headers get ", "), which the
 * cookie parser then reads with first-occurrence-wins. A browser sends one
 * Cookie header over HTTP/1.1, but an HTTP/2 front end may pass each
 * cookie crumb as a header of its own, and the session cookie need not be
 * in the first. libmicrohttpd keeps every header line in its
 * per-connection pool, so the total is already bounded by the
 * connection's memory limit; COOKIE_JOIN_MAX bounds our copy on top of
 * that: headers that would take the join beyond it are left out. */
#define COOKIE_JOIN_MAX (64 * 1024)

typedef struct cookie_join {
  size_t count;      /* Cookie headers seen */
  size_t len;        /* joined length so far (without the NUL) */
  char *buf;         /* NULL while counting */
  const char *first; /* the first Cookie header's value */
  const char *proto; /* the first X-Forwarded-Proto header's value */
} cookie_join;

/* Whether key names the header `name` (a lower-case HTTP header name):
 * header names are case-insensitive, and the first letter's test rejects
 * most other headers before strcasecmp() runs. */
static int header_is(const char *key, const char *name) {
  return (key[0] | 0x20) == name[0] && strcasecmp(key, name) == 0;
}

static csn_mhd_result cookie_join_visit(void *cls, enum MHD_ValueKind kind,
                                        const char *key, const char *value) {
  cookie_join *j = cls;
  size_t n, sep;
  (void)kind;
  if (key == NULL || value == NULL)
    return MHD_YES;
  if (!header_is(key, "cookie")) {
    if (j->proto == NULL && header_is(key, "x-forwarded-proto"))
      j->proto = value;
    return MHD_YES;
  }
  n = strlen(value);
  sep = j->count > 0 ? 2 : 0;
  /* Left out when the join would pass the bound: the first header always
   * fits (libmicrohttpd's pool holds it, and this is only a copy). */
  if (j->count > 0 && (n > COOKIE_JOIN_MAX || j->len + sep + n > COOKIE_JOIN_MAX))
    return MHD_YES;
  if (j->buf != NULL) {
    if (sep) {
      j->buf[j->len] = ';';
      j->buf[j->len + 1] = ' ';
    }
    memcpy(j->buf + j->len + sep, value, n);
  }
  if (j->count == 0)
    j->first = value;
  j->len += sep + n;
  j->count++;
  return MHD_YES;
}

/* One walk over the request's headers finds what the core needs from
 * them: the Cookie value and X-Forwarded-Proto (*proto, NULL when absent).
 * The Cookie value is the one header as libmicrohttpd holds it (the usual
 * case, no copy), or several joined into *owned (csn_free), NULL without a
 * Cookie header. Out of memory for the join, the first header alone is
 * used, as before joins were made: a session cookie in a later header is
 * then not seen, and that user gets a fresh session. */
static const char *cookie_header(struct MHD_Connection *conn, char **owned,
                                 const char **proto) {
  cookie_join j;
  *owned = NULL;
  memset(&j, 0, sizeof j);
  MHD_get_connection_values(conn, MHD_HEADER_KIND, cookie_join_visit, &j);
  *proto = j.proto;
  if (j.count > 1 && (j.buf = csn_malloc(j.len + 1)) != NULL) {
    /* The second pass visits the same list, so it writes exactly j.len
     * bytes (what the bound leaves out depends only on what came before). */
    j.len = 0;
    j.count = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, cookie_join_visit, &j);
    j.buf[j.len] = '\0';
    *owned = j.buf;
    return j.buf;
  }
  return j.first;
}

int csn_mhd_begin(csn_ctx *ctx, struct MHD_Connection *conn, const char *url,
                  csn_request **out) {
  csn_request_info info;
  char *owned = NULL;
  int rc;

  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (ctx == NULL || conn == NULL)
    return CSN_EINVAL;

  memset(&info, 0, sizeof info);
  info.cookie_header = cookie_header(conn, &owned, &info.forwarded_proto);
  info.url = url;
  info.tls = connection_is_tls(conn);
  /* libmicrohttpd has no notion of "secure" beyond the socket, so its
   * req.secure is the TLS fact (used only with CSN_PROXY_DEFAULT). */
  info.secure = info.tls;
  info.native = conn;
  rc = csn_request_begin(ctx, &info, out);
  /* The core keeps nothing of info: the id it needs is copied. */
  csn_free(owned);
  return rc;
}

/* csn_mhd_commit(), telling in *why what failed when the failure is the
 * adapter's own (csn_last_error() then says nothing about it), else NULL:
 * the core's failure is described by csn_last_error(). */
static int commit(csn_request *req, struct MHD_Response *resp,
                  const char **why) {
  char *set_cookie = NULL;
  int rc;

  *why = NULL;
  if (req == NULL || resp == NULL) {
    *why = "csn_mhd_commit: no request or no response";
    return CSN_EINVAL;
  }
  rc = csn_request_commit(req, &set_cookie);
  if (rc < 0)
    return rc;
  if (set_cookie == NULL)
    return CSN_OK;
  /* MHD keeps headers in insertion order and emits repeated names as
   * separate lines, so ours comes after any Set-Cookie the handler added,
   * as express-session appends its cookie. */
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie) !=
      MHD_YES) {
    *why = "cannot add the session's Set-Cookie header to the response";
    rc = CSN_ENOMEM;
  }
  csn_free(set_cookie);
  return rc;
}

int csn_mhd_commit(csn_request *req, struct MHD_Response *resp) {
  const char *why;
  return commit(req, resp, &why);
}

/* The default error responder: a bare 500 that reveals nothing about the
 * failure to the client (the detail goes to the log). */
static csn_mhd_result default_error_response(struct MHD_Connection *conn,
                                             int err, const char *message,
                                             void *userdata) {
  static const char body[] = "Internal Server Error\n";
  struct MHD_Response *resp;
  csn_mhd_result ret;

  (void)err;
  (void)message;
  (void)userdata;
  resp = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                         MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                              "text/plain") != MHD_YES) {
    MHD_destroy_response(resp);
    return MHD_NO;
  }
  ret = MHD_queue_response(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* The error response for err, described by `message` when the caller knows
 * better than csn_last_error() (the adapter's own failures). */
static csn_mhd_result mhd_error(csn_ctx *ctx, struct MHD_Connection *conn,
                                int err, const char *message) {
  csn_mhd_error_fn fn = NULL;
  void *ud = NULL;

  /* The thread's last error carries the store's own words ("disk I/O
   * error", "connection refused"); the code's name is the fallback. It
   * belongs to this failure: csn_request_begin() and csn_request_commit()
   * empty it on entry, so a message left by an earlier failure of this
   * thread (another request's) cannot be told as this one's. */
  if (message == NULL)
    message = csn_last_error();
  if (message == NULL || message[0] == '\0')
    message = csn_strerror(err);
  if (ctx != NULL) {
    const mhd_state *st = csn_ctx_ext(ctx, &mhd_state_key);
    csn_ctx_log(ctx, err, "%s", message);
    if (st != NULL) {
      fn = st->error_fn;
      ud = st->error_ud;
    }
  }
  if (fn == NULL)
    return default_error_response(conn, err, message, NULL);
  return fn(conn, err, message, ud);
}

csn_mhd_result csn_mhd_error(csn_ctx *ctx, struct MHD_Connection *conn,
                             int err) {
  return mhd_error(ctx, conn, err, NULL);
}

csn_mhd_result csn_mhd_queue_response(csn_request *req,
                                      struct MHD_Connection *conn,
                                      unsigned int status,
                                      struct MHD_Response *resp) {
  csn_ctx *ctx;
  const char *why;
  int rc;

  if (req == NULL)
    return MHD_NO;
  ctx = csn_request_ctx(req);
  rc = commit(req, resp, &why);
  /* The request is released before queueing anything: the error path
   * needs only the context, and releasing first means no path can leak. */
  csn_request_free(req);
  if (rc < 0)
    return mhd_error(ctx, conn, rc, why);
  return MHD_queue_response(conn, status, resp);
}

void csn_mhd_set_error_handler(csn_ctx *ctx, csn_mhd_error_fn fn,
                               void *userdata) {
  mhd_state *st;
  int rc;

  if (ctx == NULL)
    return;
  st = csn_ctx_ext(ctx, &mhd_state_key);
  if (st == NULL) {
    /* Back to the default with nothing set: nothing to do. */
    if (fn == NULL)
      return;
    st = csn_malloc(sizeof *st);
    if (st == NULL) {
      rc = CSN_ENOMEM;
    } else if ((rc = csn_ctx_set_ext(ctx, &mhd_state_key, st, csn_free)) < 0) {
      csn_free(st);
    }
    if (rc < 0) {
      /* This function returns nothing, and this runs at start-up: say so
       * in the log, and the default 500 stays in place. */
      csn_ctx_log(ctx, rc,
                  "csn_mhd_set_error_handler: cannot attach the handler; "
                  "the default error response stays");
      return;
    }
  }
  st->error_fn = fn;
  st->error_ud = userdata;
}
