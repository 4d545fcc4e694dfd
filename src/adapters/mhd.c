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

int csn_mhd_begin(csn_ctx *ctx, struct MHD_Connection *conn, const char *url,
                  csn_request **out) {
  csn_request_info info;

  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (ctx == NULL || conn == NULL)
    return CSN_EINVAL;

  /* libmicrohttpd looks header names up case-insensitively and returns the
   * first occurrence. A browser sends a single Cookie header over
   * HTTP/1.1, and a second one sent by a hostile client is simply not
   * seen: it can only lose its own session, never reach the store. */
  memset(&info, 0, sizeof info);
  info.cookie_header =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
  info.forwarded_proto =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-Proto");
  info.url = url;
  info.tls = connection_is_tls(conn);
  /* libmicrohttpd has no notion of "secure" beyond the socket, so its
   * req.secure is the TLS fact (used only with CSN_PROXY_DEFAULT). */
  info.secure = info.tls;
  info.native = conn;
  return csn_request_begin(ctx, &info, out);
}

int csn_mhd_commit(csn_request *req, struct MHD_Response *resp) {
  char *set_cookie = NULL;
  int rc;

  if (req == NULL || resp == NULL)
    return CSN_EINVAL;
  rc = csn_request_commit(req, &set_cookie);
  if (rc < 0)
    return rc;
  if (set_cookie == NULL)
    return CSN_OK;
  /* MHD keeps headers in insertion order and emits repeated names as
   * separate lines, so ours comes after any Set-Cookie the handler added,
   * as express-session appends its cookie. */
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie) !=
      MHD_YES)
    rc = CSN_ENOMEM;
  csn_free(set_cookie);
  return rc;
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

csn_mhd_result csn_mhd_error(csn_ctx *ctx, struct MHD_Connection *conn,
                             int err) {
  const char *message = csn_last_error();
  csn_mhd_error_fn fn = NULL;
  void *ud = NULL;

  /* The thread's last error carries the store's own words ("disk I/O
   * error", "connection refused"); the code's name is the fallback. */
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

csn_mhd_result csn_mhd_queue_response(csn_request *req,
                                      struct MHD_Connection *conn,
                                      unsigned int status,
                                      struct MHD_Response *resp) {
  csn_ctx *ctx;
  int rc;

  if (req == NULL)
    return MHD_NO;
  ctx = csn_request_ctx(req);
  rc = csn_mhd_commit(req, resp);
  /* The request is released before queueing anything: the error path
   * needs only the context, and releasing first means no path can leak. */
  csn_request_free(req);
  if (rc < 0)
    return csn_mhd_error(ctx, conn, rc);
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
