/* demo_app.h - the demo application, apart from any HTTP server.
 *
 * csession-demo (libmicrohttpd), csession-ulfius-demo and
 * csession-civetweb-demo take the same flags and serve the same routes
 * with the same texts, so one test suite runs against all three. What they
 * share lives here: the command line, opening the store and the context,
 * the stop signals, and the routes themselves. Each demo keeps only what
 * its server needs: reading the request, sending the reply, and the
 * begin/commit calls of its adapter.
 *
 * A route runs between the adapter's begin (which loaded the session into
 * a csn_request) and its commit (which saves it and adds Set-Cookie):
 *
 *   csn_request *req = <adapter begin>;
 *   demo_reply r;
 *   int rc = demo_route(req, path, query_fn, query_ud, &r);
 *   if (rc < 0) -> free req, answer through the adapter's error path (500)
 *   else        -> commit req and send r.status, r.content_type, r.body
 *   demo_reply_free(&r);
 *
 * /health and /metrics never open a session: check demo_is_sessionless()
 * first and answer with demo_sessionless().
 */
#ifndef CSN_DEMO_APP_H
#define CSN_DEMO_APP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "csn/csn.h"

#define DEMO_MAX_SECRETS 16

typedef struct demo_config {
  unsigned int port;
  const char *bind;
  const char *store_url;
  const char *secrets[DEMO_MAX_SECRETS];
  size_t n_secrets;
  const char *name;
  int64_t max_age_ms;
  int64_t lifetime_ms;    /* --lifetime, 0: off */
  int64_t touch_after_ms; /* --touch-after, 0: off */
  int rolling;
  int resave;
  int save_uninitialized;
  int proxy;
  int secure;
  unsigned int threads;
  unsigned int conn_memory_kb;
  unsigned int per_ip;       /* connections per client address; 0: none */
  unsigned int timeout_s;    /* idle connection timeout; 0: none */
  /* Secrets read from files (--secret-file), freed by demo_config_free. */
  char *owned[DEMO_MAX_SECRETS];
  size_t n_owned;
} demo_config;

/* --help text for program `prog`. */
void demo_usage(const char *prog, FILE *f);

/* Parse the command line (and CSN_STORE, CSN_SECRET_FILE, CSN_SECRET).
 * Returns 0 to run, 1 after --help (printed), 2 on a usage error (message
 * on stderr). Whatever the result, release it with demo_config_free(). */
int demo_parse_args(const char *prog, int argc, char **argv, demo_config *c);

/* The worker threads a demo runs when --threads is not given: one per core
 * for memory://, eight per core (at least 16) for the stores that block a
 * worker on an fsync or a server round trip. */
unsigned int demo_default_threads(const char *store_url);

/* Wipe and free the secrets read from files. */
void demo_config_free(demo_config *c);

/* The listen address of --bind and --port: fills *ss and *len, *ipv6.
 * Returns 0, or 2 after printing why the address is not an IP address. */
int demo_listen_addr(const char *prog, const demo_config *c,
                     struct sockaddr_storage *ss, socklen_t *len, int *ipv6);

/* Register the stores, open --store and create the context with the
 * demo's options. Returns 0, or the exit status (after a message on
 * stderr, the URL redacted): 2 for a bad URL or options, 1 otherwise. */
int demo_open(const char *prog, const demo_config *c, csn_store **store,
              csn_ctx **ctx);

/* Free what demo_open() made (either may be NULL). */
void demo_close(csn_store *store, csn_ctx *ctx);

/* Block SIGINT and SIGTERM in the calling thread, before any other thread
 * exists, so every thread inherits the mask and only demo_wait_stop() sees
 * them: shutdown then runs on the main thread, with no async-signal-safety
 * puzzles. */
void demo_block_stop_signals(sigset_t *set);

/* Wait for SIGINT or SIGTERM. Returns 0, or -1 if sigwait failed. */
int demo_wait_stop(const sigset_t *set);

/* The banner the tests read: "<prog> listening on http://ADDR:PORT". */
void demo_print_listening(const char *prog, const demo_config *c,
                          unsigned int port, int ipv6);

/* ---------------------------------------------------------------------- */
/* Routes                                                                 */
/* ---------------------------------------------------------------------- */

/* A query-string argument of the current request by name, decoded, or
 * NULL when absent. */
typedef const char *(*demo_query_fn)(void *ud, const char *name);

typedef struct demo_reply {
  unsigned int status;
  const char *content_type;
  const char *body; /* NUL-terminated; into buf or heap */
  size_t body_len;
  char *heap;       /* csn_malloc'd body (the /session JSON), or NULL */
  char buf[320];
} demo_reply;

/* Is this the /health route (answered "ok\n" without a session)? */
int demo_is_health(const char *path);

/* Fill `out` with the /health answer. */
void demo_health(demo_reply *out);

/* Is this a route answered without a session: /health, /metrics? */
int demo_is_sessionless(const char *path);

/* Answer a route of demo_is_sessionless(): /health "ok\n", /metrics the
 * context's counters in the Prometheus text format (csn/csn_metrics.h).
 * Returns 0 with *out filled (free it with demo_reply_free), or a negative
 * CSN_E* code for the caller's error path (500). */
int demo_sessionless(csn_ctx *ctx, const char *path, demo_reply *out);

/* Serve the session routes (/, /login, /logout, /inc, /session; anything
 * else is 404 "Not Found\n"). Returns 0 with *out filled (free it with
 * demo_reply_free), or a negative CSN_E* code: the session failed, and the
 * caller frees req and answers through its adapter's error path. */
int demo_route(csn_request *req, const char *path, demo_query_fn query,
               void *query_ud, demo_reply *out);

void demo_reply_free(demo_reply *r);

/* /inc's "delay" argument in milliseconds: digits only, clamped to 60000;
 * NULL is 0. Returns 0, or -1 when it is not a number. */
int demo_inc_delay_parse(const char *s, long *ms);

#endif /* CSN_DEMO_APP_H */
