/* http_harness.h - a real libmicrohttpd server and a real libcurl client for
 * the HTTP tests (http_*, and the express-session parity suite).
 *
 * The server listens on 127.0.0.1 on a port the kernel picks, optionally
 * over TLS with a self-signed certificate made at start-up, and hands every
 * complete request (headers and body) to the test's handler. The client is
 * a libcurl easy handle: with its cookie engine on it behaves like a browser
 * keeping a cookie jar, with it off the test writes the Cookie header
 * itself. A counting store wraps a real store and counts the calls the
 * middleware makes, so a test can assert "no store lookup happened".
 *
 * Everything here is test code: it uses malloc and aborts on impossible
 * failures (out of memory), which a test reports as a crash.
 */
#ifndef CSN_HTTP_HARNESS_H
#define CSN_HTTP_HARNESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_mhd.h"

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct http_server http_server;

/* One complete request, as the handler sees it. Strings are borrowed for
 * the duration of the handler call. */
typedef struct http_req {
  struct MHD_Connection *conn;
  const char *method;
  const char *url;     /* the path libmicrohttpd passed to the handler */
  const char *body;    /* request body (NUL-terminated), "" when none */
  size_t body_len;
  csn_ctx *ctx;        /* the server's context (may be NULL) */
  void *userdata;      /* http_server_opts.userdata */
} http_req;

/* Answer the request: queue a response (http_reply() helps) and return the
 * result of MHD_queue_response / csn_mhd_queue_response. */
typedef csn_mhd_result (*http_handler_fn)(const http_req *req);

typedef struct http_server_opts {
  csn_ctx *ctx;            /* borrowed; passed to the handler */
  http_handler_fn handler; /* required */
  void *userdata;
  int tls;                 /* 1: HTTPS with a fresh self-signed certificate */
  unsigned int threads;    /* worker threads; 0 or 1: one polling thread */
  size_t memory_limit;     /* per-connection pool; 0: 64 KiB. MHD's own
                              default (32 KiB) answers 431 to a header of
                              500 cookies, since it parses each one into
                              its pool */
} http_server_opts;

/* Start the server. Returns 0, or -1 with a message on stderr. */
int http_server_start(const http_server_opts *o, http_server **out);
/* Stop it (waits for in-flight requests) and free it. NULL is a no-op. */
void http_server_stop(http_server *s);
uint16_t http_server_port(const http_server *s);
/* "http://127.0.0.1:PORT" or "https://..." (borrowed). */
const char *http_server_base(const http_server *s);
/* base + path in buf; returns buf. */
const char *http_server_url(const http_server *s, const char *path, char *buf,
                            size_t size);
/* Number of requests the handler has answered. */
unsigned long http_server_requests(const http_server *s);

/* Reply with a text/plain body through the session: if sreq is not NULL
 * the response goes through csn_mhd_queue_response() (which commits and
 * frees sreq), else it is queued directly. extra_header may be NULL or
 * "Name: value" added before the session's Set-Cookie. */
csn_mhd_result http_reply(struct MHD_Connection *conn, csn_request *sreq,
                          unsigned int status, const char *body,
                          const char *extra_header);

/* ------------------------------------------------------------------------ */
/* Client                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct http_client http_client;

typedef struct http_response {
  long status;                 /* 0 if the transfer failed */
  char *body;                  /* NUL-terminated */
  size_t body_len;
  char **set_cookie;           /* every Set-Cookie value, in order */
  size_t n_set_cookie;
  char *headers;               /* the raw response header block */
  char error[256];             /* curl's message when status is 0 */
} http_response;

/* cookie_jar = 1: curl's cookie engine keeps cookies between requests of
 * this client (a browser); 0: no cookies unless given explicitly. */
http_client *http_client_new(int cookie_jar);
void http_client_free(http_client *c);

typedef struct http_request_opts {
  const char *method;          /* NULL: GET (POST when body is set) */
  const char *url;             /* full URL */
  const char *cookie;          /* explicit Cookie header value, or NULL */
  const char *const *headers;  /* extra "Name: value" lines, NULL-ended */
  const char *body;
  size_t body_len;
} http_request_opts;

/* Perform one request. Returns 0 when an HTTP response arrived (any
 * status), -1 otherwise (out->error says why). Free out with
 * http_response_free() in both cases. */
int http_request(http_client *c, const http_request_opts *r,
                 http_response *out);
/* GET url, optionally with an explicit Cookie header. */
int http_get(http_client *c, const char *url, const char *cookie,
             http_response *out);
void http_response_free(http_response *r);

/* The value of cookie `name` in the client's jar (malloc'd, free()), or
 * NULL if absent. */
char *http_client_cookie(http_client *c, const char *name);
/* Forget every cookie in the jar. */
void http_client_clear_cookies(http_client *c);

/* Send raw bytes (any bytes, NUL included) to 127.0.0.1:port and read the
 * reply until the server closes or `Content-Length` is satisfied. Fills
 * status (0 if no status line), body and set_cookie. Returns 0 or -1. */
int http_raw(uint16_t port, const char *data, size_t len, http_response *out);

/* The cookie value ("s%3A...") of the response's first Set-Cookie header
 * for `name`, malloc'd, or NULL. */
char *http_set_cookie_value(const http_response *r, const char *name);
/* Unsign a "s%3Aid.sig" / "s:id.sig" value with `secret`; returns the id
 * (malloc'd) or NULL. Uses the library's own csn_cookie_unsign. */
char *http_cookie_sid(const char *value, const char *secret);

/* ------------------------------------------------------------------------ */
/* Counting store                                                           */
/* ------------------------------------------------------------------------ */

/* A csn_store that counts each call and forwards it to `inner`. The
 * counters are atomics: the server's worker threads bump them while the
 * test thread reads them. */
typedef struct counting_store {
  csn_store base; /* first member: a (csn_store *) to this is the store */
  csn_store *inner;
  int own_inner;
  atomic_ulong gets, sets, touches, destroys, clears, lengths, alls, prunes;
} counting_store;

/* Wrap `inner` (owned when own_inner is 1: freed with the wrapper). NULL
 * inner: a fresh memory store is created and owned. */
counting_store *counting_store_new(csn_store *inner, int own_inner);
void counting_store_reset(counting_store *cs);
/* Number of sessions in the inner store (csn_store_length), or -1. */
long counting_store_length(counting_store *cs);
/* Is `sid` in the inner store? (A direct call, not counted.) */
int counting_store_has(counting_store *cs, const char *sid);

/* ------------------------------------------------------------------------ */
/* Misc                                                                     */
/* ------------------------------------------------------------------------ */

/* A context with the given options, or abort. secret may be NULL for
 * "keyboard cat". */
csn_ctx *http_ctx_new(csn_options *o);

/* 1 if `s` matches the POSIX extended regular expression `re`. */
int http_regex_match(const char *re, const char *s);

#endif /* CSN_HTTP_HARNESS_H */
