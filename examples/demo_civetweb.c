/* demo_civetweb.c - csession-civetweb-demo: the demo application
 * (examples/demo_app.h) on CivetWeb, with the same flags, routes and texts
 * as csession-demo, so the same test suites run against both.
 *
 *   csession-civetweb-demo --secret-file PATH [--port 3000]
 *
 * What the shared flags mean here:
 *   --threads N        CivetWeb's num_threads: N worker threads, each
 *                      serving one connection at a time
 *   --conn-memory KB   CivetWeb's max_request_size: the buffer that holds
 *                      a request's line and headers (a larger request is
 *                      refused), the nearest thing CivetWeb has to
 *                      libmicrohttpd's per-connection memory
 *   --bind ADDR        the address of listening_ports ("[ADDR]:PORT" for
 *                      IPv6, which needs a CivetWeb built with it)
 *   --timeout S        CivetWeb's request_timeout_ms (S * 1000): how long
 *                      a worker waits for a request's bytes
 *   --per-ip N         accepted, but CivetWeb has no per-address
 *                      connection limit: a worker serves one connection at
 *                      a time, so --threads slow clients stall it until
 *                      --timeout. Behind anything public, put a proxy that
 *                      limits clients in front (README, "The demo server").
 *
 * Connections are not kept alive (CivetWeb's default): a CivetWeb worker
 * stays with a kept-alive connection while it is idle, so a few idle
 * clients would hold every worker and stall the others for the keep-alive
 * timeout. One request per connection keeps every worker busy only while
 * it answers. SIGINT or SIGTERM stops the server: mg_stop() joins the
 * workers (a request being handled runs to its end, though its answer may
 * not reach the client), then everything is freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "csn/csn.h"
#include "csn/csn_civetweb.h"
#include "demo_app.h"

static const char prog[] = "csession-civetweb-demo";

/* A reply that carries no session (/health, /metrics). */
static int send_plain(struct mg_connection *conn, const demo_reply *r) {
  char len[24];
  snprintf(len, sizeof len, "%zu", r->body_len);
  mg_response_header_start(conn, (int)r->status);
  mg_response_header_add(conn, "Content-Type", r->content_type, -1);
  mg_response_header_add(conn, "Content-Length", len, -1);
  mg_response_header_send(conn);
  if (strcmp(mg_get_request_info(conn)->request_method, "HEAD") != 0)
    mg_write(conn, r->body, r->body_len);
  return (int)r->status;
}

/* The query arguments of one request, decoded by mg_get_var into buffers
 * that live until the route has answered. A decoded value is never longer
 * than the query string, so one buffer of that size always fits it. */
#define QUERY_MAX_ARGS 4
typedef struct civ_query {
  const char *qs;
  size_t qlen;
  char *vals[QUERY_MAX_ARGS];
  int n;
} civ_query;

static const char *civ_query_get(void *ud, const char *name) {
  civ_query *q = ud;
  char *buf;

  if (q->qs == NULL || q->n == QUERY_MAX_ARGS)
    return NULL;
  buf = malloc(q->qlen + 1);
  if (buf == NULL)
    return NULL;
  if (mg_get_var(q->qs, q->qlen, name, buf, q->qlen + 1) < 0) {
    free(buf);
    return NULL;
  }
  q->vals[q->n++] = buf;
  return buf;
}

static void civ_query_free(civ_query *q) {
  while (q->n > 0)
    free(q->vals[--q->n]);
}

static int handler(struct mg_connection *conn, void *cbdata) {
  csn_ctx *ctx = cbdata;
  const struct mg_request_info *ri = mg_get_request_info(conn);
  civ_query q;
  csn_request *req;
  demo_reply r;
  const char *path;
  int rc, status;

  /* The path without its query (CivetWeb has cut it off), of an
   * absolute-form target too ("GET http://host/inc"); NULL for "*". */
  path = ri->local_uri_raw != NULL ? ri->local_uri_raw : "";

  /* A health check or a metrics scrape must not create sessions. */
  if (demo_is_sessionless(path)) {
    rc = demo_sessionless(ctx, path, &r);
    if (rc < 0)
      return csn_civetweb_error(ctx, conn, rc);
    status = send_plain(conn, &r);
    demo_reply_free(&r);
    return status;
  }

  rc = csn_civetweb_begin(ctx, conn, &req);
  if (rc < 0)
    return csn_civetweb_error(ctx, conn, rc);
  memset(&q, 0, sizeof q);
  q.qs = ri->query_string;
  q.qlen = q.qs != NULL ? strlen(q.qs) : 0;
  rc = demo_route(req, path, civ_query_get, &q, &r);
  civ_query_free(&q);
  if (rc < 0) {
    csn_request_free(req);
    return csn_civetweb_error(ctx, conn, rc);
  }
  /* Commits the session (store write, Set-Cookie) and frees req whatever
   * happens; a failed commit answers through the error handler. */
  status = csn_civetweb_send(req, conn, (int)r.status, r.content_type, NULL,
                             r.body, r.body_len);
  demo_reply_free(&r);
  return status;
}

/* CivetWeb's own complaints (a port in use, a bad option) go to stderr
 * with the program's name. */
static int log_message(const struct mg_connection *conn, const char *msg) {
  (void)conn;
  fprintf(stderr, "%s: civetweb: %s\n", prog, msg);
  return 1;
}

int main(int argc, char **argv) {
  demo_config cfg;
  csn_store *store = NULL;
  csn_ctx *ctx = NULL;
  struct mg_context *mg = NULL;
  struct mg_callbacks cb;
  struct mg_init_data init;
  struct mg_error_data err;
  struct mg_server_port port;
  struct sockaddr_storage ss;
  socklen_t sslen;
  char ports[80], threads[16], reqsize[24], timeout[24], errtext[256] = "";
  unsigned int errcode = 0;
  const char *options[11];
  sigset_t stop;
  int ipv6 = 0, rc, status = 1;

  /* Before any thread exists (the memory store starts a pruning thread,
   * CivetWeb its master and worker threads), so all of them inherit the
   * mask and the signals reach demo_wait_stop() only. */
  demo_block_stop_signals(&stop);

  rc = demo_parse_args(prog, argc, argv, &cfg);
  if (rc == 1) /* --help */
    rc = -1;
  if (rc == 0)
    rc = demo_listen_addr(prog, &cfg, &ss, &sslen, &ipv6);
  if (rc == 0 && ipv6 && mg_check_feature(MG_FEATURES_IPV6) == 0) {
    fprintf(stderr, "%s: --bind %s: this CivetWeb was built without IPv6\n",
            prog, cfg.bind);
    rc = 2;
  }
  if (rc == 0)
    rc = demo_open(prog, &cfg, &store, &ctx);
  if (rc != 0) {
    demo_config_free(&cfg);
    return rc < 0 ? 0 : rc;
  }

  /* Once per process, before mg_start; mg_exit_library() at the end frees
   * what it set up. No TLS: the demo serves plain HTTP. It answers the
   * features it set up, none of them asked for here, so its 0 says
   * nothing: a failure shows as mg_start2's "Library uninitialized". */
  (void)mg_init_library(0);

  snprintf(ports, sizeof ports, "%s%s%s:%u", ipv6 ? "[" : "", cfg.bind,
           ipv6 ? "]" : "", cfg.port);
  snprintf(threads, sizeof threads, "%u", cfg.threads);
  snprintf(reqsize, sizeof reqsize, "%lu",
           (unsigned long)cfg.conn_memory_kb * 1024ul);
  options[0] = "listening_ports";
  options[1] = ports;
  options[2] = "num_threads";
  options[3] = threads;
  options[4] = "max_request_size";
  options[5] = reqsize;
  options[6] = "enable_keep_alive";
  options[7] = "no";
  options[8] = NULL;
  if (cfg.timeout_s > 0) {
    snprintf(timeout, sizeof timeout, "%lu",
             (unsigned long)cfg.timeout_s * 1000ul);
    options[8] = "request_timeout_ms";
    options[9] = timeout;
    options[10] = NULL;
  }

  memset(&cb, 0, sizeof cb);
  cb.log_message = log_message;
  memset(&init, 0, sizeof init);
  init.callbacks = &cb;
  init.configuration_options = options;
  memset(&err, 0, sizeof err);
  err.code = &errcode;
  err.text = errtext;
  err.text_buffer_size = sizeof errtext;
  mg = mg_start2(&init, &err);
  if (mg == NULL) {
    fprintf(stderr, "%s: cannot listen on %s port %u: %s\n", prog, cfg.bind,
            cfg.port, errtext[0] ? errtext : "CivetWeb failed to start");
    goto out;
  }
  /* Every path: the routes are dispatched by demo_route. */
  mg_set_request_handler(mg, "/", handler, ctx);

  memset(&port, 0, sizeof port);
  if (mg_get_server_ports(mg, 1, &port) != 1) {
    fprintf(stderr, "%s: CivetWeb reports no listening port\n", prog);
    goto out;
  }
  demo_print_listening(prog, &cfg, (unsigned int)port.port, ipv6);

  if (demo_wait_stop(&stop) == 0)
    status = 0;
out:
  /* mg_stop waits for the worker threads, so no request can touch the
   * context or the store once it returns. */
  if (mg != NULL)
    mg_stop(mg);
  mg_exit_library();
  demo_close(store, ctx);
  demo_config_free(&cfg);
  return status;
}
