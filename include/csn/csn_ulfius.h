/* csn_ulfius.h - csession adapter for Ulfius (2.7).
 *
 * Like the libmicrohttpd adapter it is thin: it hands the raw Cookie
 * header, the URL, TLS and X-Forwarded-Proto to the core, and writes the
 * Set-Cookie value the core computes onto your response. Ulfius runs a
 * chain of callbacks per request (every endpoint whose method and URL
 * match, by ascending priority), so the adapter is two endpoints that
 * match every request:
 *
 *   priority 0 (CSN_ULFIUS_PRIORITY_FIRST)  loads the session, then
 *       returns U_CALLBACK_IGNORE so the chain goes on as if it were not
 *       there;
 *   priority UINT_MAX (CSN_ULFIUS_PRIORITY_LAST)  commits it (store
 *       save/touch/destroy), adds Set-Cookie and completes the request.
 *
 * Usage:
 *
 *   static int counter(const struct _u_request *req,
 *                      struct _u_response *resp, void *ud) {
 *     csn_session *s = csn_ulfius_session(req);
 *     int64_t views = 0;
 *     if (s) csn_session_incr(s, "views", 1, &views);
 *     ... ulfius_set_string_body_response(resp, 200, body) ...
 *     return U_CALLBACK_CONTINUE;   // not COMPLETE: see "Ending the chain"
 *   }
 *
 *   ulfius_init_instance(&inst, 3000, NULL, NULL);
 *   csn_ulfius_install(&inst, ctx);
 *   ulfius_add_endpoint_by_val(&inst, "GET", NULL, "/", 1, counter, NULL);
 *   ulfius_start_framework(&inst);
 *   ...
 *   ulfius_stop_framework(&inst);   // before csn_ctx_free(ctx)
 *   ulfius_clean_instance(&inst);
 *   csn_ctx_free(ctx);
 *
 * Priorities. Your endpoints must use priorities from 1 to UINT_MAX - 1.
 * Ulfius orders a request's callbacks with qsort(), which is not stable:
 * an endpoint at priority 0 may run before the session is loaded, one at
 * UINT_MAX after it was committed.
 *
 * Ending the chain. Ulfius 2.7 has no hook that runs after the last
 * callback and before the response is built: whichever callback returns
 * U_CALLBACK_COMPLETE (or is the last to run) sends the response at once.
 * So the session is committed by the callback that ends the chain:
 *   - return U_CALLBACK_CONTINUE from your endpoints: the chain reaches the
 *     adapter's last endpoint, which commits, adds Set-Cookie and returns
 *     U_CALLBACK_COMPLETE; or
 *   - end it yourself with `return csn_ulfius_complete(req, resp);`, which
 *     commits and returns U_CALLBACK_COMPLETE. A callback that sets a
 *     stream (ulfius_set_stream_response) or a websocket also ends the
 *     chain, whatever it returns: call csn_ulfius_commit() before.
 * A chain that ends otherwise (U_CALLBACK_COMPLETE alone,
 * U_CALLBACK_ERROR, U_CALLBACK_UNAUTHORIZED) is an aborted request: its
 * session changes are dropped and no cookie is sent. The session object is
 * freed all the same (see "Lifetime").
 *
 * Unmatched URLs. The adapter's endpoints match every URL, so Ulfius never
 * calls the instance's default endpoint itself (it does so only when no
 * endpoint matches). The adapter's last endpoint does it instead, with the
 * session loaded and committed after it: when no callback before it
 * returned anything but U_CALLBACK_IGNORE (request->callback_position is
 * 0), it calls the default endpoint set with ulfius_set_default_endpoint()
 * and then commits; with no default endpoint it answers Ulfius's own
 * 404 ULFIUS_HTTP_NOT_FOUND_BODY. A default endpoint returning
 * U_CALLBACK_ERROR or U_CALLBACK_UNAUTHORIZED aborts as above.
 *
 * Set-Cookie. A _u_map holds one value per key, so the adapter does not
 * put its cookie in response->map_header (that would replace a Set-Cookie
 * you put there). It appends it to response->map_cookie with
 * ulfius_add_cookie_to_response(), split at an '=' into key and value and
 * with every attribute argument empty: Ulfius writes such a cookie as
 * "key=value", which is exactly the header value the core computed, so
 * nothing is reformatted. Ulfius sends map_header first, then map_cookie
 * in order, so the session cookie comes after any Set-Cookie of yours. (A
 * map_cookie key equal to an existing one would replace that cookie; the
 * adapter then splits at a later '=' - the cookie always carries "Path=" -
 * so the key differs and both are sent.)
 *
 * TLS. Ulfius gives a callback no per-request TLS flag. The adapter takes
 * it from the instance: the flags of its libmicrohttpd daemon
 * (MHD_USE_TLS, set by ulfius_start_secure_framework()). Behind a proxy
 * that terminates TLS, use the `proxy` option (CSN_PROXY_TRUST) so that
 * X-Forwarded-Proto decides.
 *
 * Errors. A store failure while loading the session (first endpoint) or
 * committing it answers through the error handler: by default 500,
 * text/plain "Internal Server Error\n", with whatever the response held
 * (status, body, headers, cookies) replaced; the instance's default
 * headers stay. The failure is logged through the context's log hook.
 *
 * Lifetime. The session belongs to the thread running the request's
 * callbacks (Ulfius runs them all on one thread): csn_ulfius_request() and
 * csn_ulfius_session() answer on that thread only. It is freed when
 * committed; an aborted request's session is freed when the next request
 * begins on that thread or when the thread ends (libmicrohttpd's threads
 * end in ulfius_stop_framework() at the latest). So stop the framework
 * before freeing the context.
 *
 * Requests read from Ulfius: the Cookie header is request->map_header's
 * (Ulfius joins repeated headers with ',' and drops a header that is not
 * UTF-8 when instance->check_utf8 is on, its default); the URL for the
 * cookie path check is request->http_url, undecoded.
 *
 * Functions returning int give CSN_OK or a negative CSN_E* code unless
 * they say otherwise. Since 0.2.
 */
#ifndef CSN_ULFIUS_H
#define CSN_ULFIUS_H

#include <limits.h>

#include <ulfius.h>

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The adapter's priorities; yours lie strictly between them. */
#define CSN_ULFIUS_PRIORITY_FIRST 0u
#define CSN_ULFIUS_PRIORITY_LAST UINT_MAX

/* Install the session endpoints on `inst` (before ulfius_start_*), for
 * every method and URL. The context must outlive the running instance.
 * One context may serve several instances (install on each). Not
 * thread-safe: call it during start-up. CSN_EINVAL for NULL arguments,
 * CSN_ENOMEM, or CSN_ERANGE when the context has no extension slot left
 * (csn_ctx_set_ext). */
CSN_API int csn_ulfius_install(struct _u_instance *inst, csn_ctx *ctx);

/* The request's session state (borrowed), or NULL when there is none: on
 * another thread than the request's, for a skipped request (see
 * csn_ulfius_set_skip), or once committed. */
CSN_API csn_request *csn_ulfius_request(const struct _u_request *req);

/* csn_request_session() of the above: NULL also when the cookie path does
 * not match the URL, or after csn_session_destroy(). */
CSN_API csn_session *csn_ulfius_session(const struct _u_request *req);

/* Commit the session now and append its Set-Cookie to `resp`; the session
 * is freed whatever happens (later callbacks see none). CSN_OK also when
 * the request has no session (nothing to do). On a store failure returns
 * the error and leaves `resp` as it was: answer with csn_ulfius_error().
 * For a callback that ends the chain and must build the error answer
 * itself; csn_ulfius_complete() does both. */
CSN_API int csn_ulfius_commit(const struct _u_request *req,
                              struct _u_response *resp);

/* csn_ulfius_commit(), then on failure the error response; returns
 * U_CALLBACK_COMPLETE for the callback to return. */
CSN_API int csn_ulfius_complete(const struct _u_request *req,
                                struct _u_response *resp);

/* Replace `resp` with the error response for `err` through the context's
 * error handler (see "Errors" above) and log the failure; the request's
 * session, if still there, is dropped without a commit. Returns
 * U_CALLBACK_COMPLETE, for the callback to return. */
CSN_API int csn_ulfius_error(csn_ctx *ctx, const struct _u_request *req,
                             struct _u_response *resp, int err);

/* Override the error response. The handler gets a response emptied of
 * status, body, headers and cookies (the instance's default headers kept)
 * and fills it, e.g. ulfius_set_string_body_response(resp, 503, ...).
 * `message` names the failure (the store's message when there is one).
 * `fn` NULL restores the default. Set it during start-up. CSN_EINVAL,
 * CSN_ENOMEM, CSN_ERANGE as csn_ulfius_install(). */
typedef void (*csn_ulfius_error_fn)(const struct _u_request *req,
                                    struct _u_response *resp, int err,
                                    const char *message, void *userdata);
CSN_API int csn_ulfius_set_error_handler(csn_ctx *ctx, csn_ulfius_error_fn fn,
                                         void *userdata);

/* Requests for which `fn` returns non-zero get no session: no store
 * access, no cookie (a health check, static files). Ulfius offers no place
 * before the adapter's first endpoint, so this is how a route stays
 * outside the session, as one mounted before express-session would.
 * `fn` NULL: every request gets one. Set it during start-up. Errors as
 * csn_ulfius_set_error_handler(). */
typedef int (*csn_ulfius_skip_fn)(const struct _u_request *req,
                                  void *userdata);
CSN_API int csn_ulfius_set_skip(csn_ctx *ctx, csn_ulfius_skip_fn fn,
                                void *userdata);

#ifdef __cplusplus
}
#endif
#endif /* CSN_ULFIUS_H */
