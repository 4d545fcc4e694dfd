/* csn_mhd.h - csession adapter for GNU libmicrohttpd.
 *
 * The adapter is thin: it hands the raw Cookie header, the URL, TLS and
 * X-Forwarded-Proto to the core, and writes the Set-Cookie header the core
 * computes onto your response before it is queued. A handler looks like:
 *
 *   static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
 *                                  const char *url, const char *method, ...)
 *   {
 *     csn_ctx *ctx = cls;
 *     csn_request *req;
 *     int rc = csn_mhd_begin(ctx, c, url, &req);
 *     if (rc < 0) return csn_mhd_error(ctx, c, rc);       // 500
 *     csn_session *s = csn_request_session(req);
 *     int64_t views = 0;
 *     if (s) csn_session_incr(s, "views", 1, &views);
 *     ... build struct MHD_Response *resp ...
 *     enum MHD_Result ret = csn_mhd_queue_response(req, c, MHD_HTTP_OK, resp);
 *     MHD_destroy_response(resp);
 *     return ret;
 *   }
 *
 * Since 0.1.
 */
#ifndef CSN_MHD_H
#define CSN_MHD_H

#include <microhttpd.h>

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

#if MHD_VERSION < 0x00097002
typedef int csn_mhd_result;
#else
typedef enum MHD_Result csn_mhd_result;
#endif

/* Load the session for this connection: reads the Cookie and
 * X-Forwarded-Proto headers and whether the connection is TLS, then calls
 * csn_request_begin(). `url` is the URL libmicrohttpd passed to the handler
 * (used for the cookie path check). On failure *out is NULL: answer with
 * csn_mhd_error(). */
CSN_API int csn_mhd_begin(csn_ctx *ctx, struct MHD_Connection *conn,
                          const char *url, csn_request **out);

/* Commit the session (store save/touch/destroy) and add its Set-Cookie
 * header to `resp` (after any Set-Cookie headers already on it). Does not
 * queue. On a store failure returns the error and adds nothing. */
CSN_API int csn_mhd_commit(csn_request *req, struct MHD_Response *resp);

/* csn_mhd_commit() then MHD_queue_response(). On a commit failure the error
 * handler's response is queued instead of `resp`. Frees `req` in every case;
 * `resp` stays yours (MHD_destroy_response as usual). */
CSN_API csn_mhd_result csn_mhd_queue_response(csn_request *req,
                                              struct MHD_Connection *conn,
                                              unsigned int status,
                                              struct MHD_Response *resp);

/* Queue the error response for `err` through the context's error handler
 * (default: 500, text/plain body "Internal Server Error"). The error is also
 * logged through the context's log hook. */
CSN_API csn_mhd_result csn_mhd_error(csn_ctx *ctx, struct MHD_Connection *conn,
                                     int err);

/* Override the error response. The handler must queue a response on `conn`
 * and return MHD_queue_response()'s result. `message` names the failure
 * (store message included when there is one). Set it before serving; `fn`
 * NULL restores the default. The handler is kept on the context with
 * csn_ctx_set_ext(); if it cannot be attached (out of memory, every
 * extension slot in use) the failure is logged through the context and the
 * default stays. */
typedef csn_mhd_result (*csn_mhd_error_fn)(struct MHD_Connection *conn,
                                           int err, const char *message,
                                           void *userdata);
CSN_API void csn_mhd_set_error_handler(csn_ctx *ctx, csn_mhd_error_fn fn,
                                       void *userdata);

#ifdef __cplusplus
}
#endif
#endif /* CSN_MHD_H */
