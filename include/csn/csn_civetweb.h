/* csn_civetweb.h - csession adapter for CivetWeb.
 *
 * The adapter is thin: it hands the Cookie header, the request URI, TLS and
 * X-Forwarded-Proto to the core, and writes the Set-Cookie header the core
 * computes among your response's headers. A request handler (registered
 * with mg_set_request_handler) looks like:
 *
 *   static int handler(struct mg_connection *conn, void *cbdata)
 *   {
 *     csn_ctx *ctx = cbdata;
 *     csn_request *req;
 *     char body[64];
 *     int rc = csn_civetweb_begin(ctx, conn, &req);
 *     if (rc < 0) return csn_civetweb_error(ctx, conn, rc);   // 500
 *     csn_session *s = csn_request_session(req);
 *     int64_t views = 0;
 *     if (s) csn_session_incr(s, "views", 1, &views);
 *     snprintf(body, sizeof body, "%lld views\n", (long long)views);
 *     // commits (store write), sends status, headers, Set-Cookie and the
 *     // body, frees req; returns the status sent, which is what CivetWeb
 *     // wants back from a handler that answered
 *     return csn_civetweb_send(req, conn, 200, "text/plain", NULL, body,
 *                              strlen(body));
 *   }
 *
 * Headers of your own go in the `headers` argument of csn_civetweb_send():
 *
 *   static const char *const hdrs[] = {"Cache-Control", "no-store",
 *                                      "Set-Cookie", "lang=fr; Path=/",
 *                                      NULL};
 *
 * The session's Set-Cookie is added after them, as express-session appends
 * its cookie after any the application set.
 *
 * A response csn_civetweb_send() cannot express (chunked, streamed from a
 * file) commits first and builds its headers itself; CivetWeb accepts no
 * second status line once mg_response_header_start() has been called, so
 * the commit, which can fail, comes before it:
 *
 *   char *set_cookie = NULL;
 *   rc = csn_request_commit(req, &set_cookie);
 *   csn_request_free(req);
 *   if (rc < 0) return csn_civetweb_error(ctx, conn, rc);
 *   mg_response_header_start(conn, 200);
 *   mg_response_header_add(conn, "Transfer-Encoding", "chunked", -1);
 *   ... your headers ...
 *   if (set_cookie != NULL)
 *     mg_response_header_add(conn, "Set-Cookie", set_cookie, -1);
 *   csn_free(set_cookie);
 *   mg_response_header_send(conn);
 *   ... mg_send_chunk() ...
 *
 * Header injection: the core's Set-Cookie value never holds CR, LF or any
 * other control character (names, paths and domains are validated when
 * the context is made, ids by csn_store_id_valid). CivetWeb writes header
 * values as given, so csn_civetweb_send() refuses (500, nothing committed)
 * a header name or value of yours, or a content type, that holds a control
 * character; when you call mg_response_header_add() yourself, that check
 * is yours.
 *
 * What CivetWeb changes about the request (see csn_civetweb_begin): it
 * URL-decodes the request path in place before any handler runs (unless
 * the "decode_url" option is "no"), so the cookie path check compares a
 * decoded path, where express-session compares the raw one. The two differ
 * only for a cookie path or request path with percent-escapes: set
 * "decode_url" to "no" for express-session's exact answer.
 *
 * Since 0.2.
 */
#ifndef CSN_CIVETWEB_H
#define CSN_CIVETWEB_H

#include <stddef.h>

#include <civetweb.h>

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load the session for this request: reads the Cookie header (several
 * Cookie header lines are joined with "; ", as Node.js joins them, so the
 * first cookie of a name wins as it does for express-session),
 * X-Forwarded-Proto, the request path (mg_request_info.request_uri, for
 * the cookie path check) and whether the connection is TLS
 * (mg_request_info.is_ssl), then calls csn_request_begin(). The
 * csn_request_info's `native` is `conn`, for genid / cookie hooks.
 * On failure *out is NULL: answer with csn_civetweb_error(). */
CSN_API int csn_civetweb_begin(csn_ctx *ctx, struct mg_connection *conn,
                               csn_request **out);

/* Commit the session, then send the whole response: the status line,
 * Content-Type (when content_type is not NULL), Content-Length, your
 * `headers`, the session's Set-Cookie, then `len` bytes of `body` (none
 * for a HEAD request). `headers` is NULL or a NULL-terminated list of
 * name, value pairs; names and values are copied by CivetWeb.
 *
 * Frees `req` in every case. When the commit fails (store failure), or
 * the arguments cannot make a response (status outside 100..999, a control
 * character in a header, more headers than CivetWeb holds: CSN_EINVAL,
 * nothing committed), the error handler's response is sent instead (see
 * csn_civetweb_error). Returns the status sent, which a request handler
 * returns to CivetWeb (a value 1..999 tells CivetWeb the request was
 * answered). Failures after the commit (CivetWeb out of memory adding a
 * header, the client gone) are logged through the context; the response
 * is sent as far as it can be. */
CSN_API int csn_civetweb_send(csn_request *req, struct mg_connection *conn,
                              int status, const char *content_type,
                              const char *const *headers, const void *body,
                              size_t len);

/* Send the error response for `err` through the context's error handler
 * (default: 500, text/plain body "Internal Server Error\n"). The error is
 * also logged through the context's log hook, with the store's message
 * when there is one. Returns the status sent (the handler's return value).
 * Call it before anything of the response was sent: CivetWeb has no way
 * to take back a started response. */
CSN_API int csn_civetweb_error(csn_ctx *ctx, struct mg_connection *conn,
                               int err);

/* Override the error response. The handler must send a complete response
 * on `conn` (e.g. mg_send_http_error, or mg_response_header_start ...) and
 * return its status. `message` names the failure (store message included
 * when there is one). Set it before serving; `fn` NULL restores the
 * default. The handler is kept on the context with csn_ctx_set_ext(); if
 * it cannot be attached (out of memory, every extension slot in use) the
 * failure is logged through the context and the default stays. */
typedef int (*csn_civetweb_error_fn)(struct mg_connection *conn, int err,
                                     const char *message, void *userdata);
CSN_API void csn_civetweb_set_error_handler(csn_ctx *ctx,
                                            csn_civetweb_error_fn fn,
                                            void *userdata);

#ifdef __cplusplus
}
#endif
#endif /* CSN_CIVETWEB_H */
