/* demo.c - csession-demo: express-session's visit counter, in C, on GNU
 * libmicrohttpd.
 *
 *   csession-demo --secret-file PATH [--port 3000]
 *                 [--store sqlite://./csession-demo.db]
 *
 *   GET /                 counts visits in the session
 *   GET /login?user=NAME  regenerates the session, then stores "user"
 *   GET /logout           destroys the session
 *   GET /inc?k=NAME[&delay=MS]
 *                         waits MS ms (default 0, at most 60000) after
 *                         loading the session, then adds 1 to the integer
 *                         member NAME: the probe for concurrent updates
 *   GET /session          the session record as JSON ({} when none)
 *   GET /health           "ok" (no session)
 *   GET /metrics          the counters, Prometheus text format (no session)
 *
 * The routes, flags and start-up are shared with the Ulfius and CivetWeb
 * demos (demo_app.h); this file is what libmicrohttpd needs. A server with
 * a small thread pool; SIGINT or SIGTERM stops it cleanly: the workers are
 * joined and everything is freed. A request still being handled then runs
 * to its end (its session is saved) but its answer may not reach the
 * client: the connections close with the server. A demo, not a graceful
 * drain (which would wait out every idle kept-alive connection).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csn/csn.h"
#include "csn/csn_mhd.h"
#include "demo_app.h"

/* A body copied by libmicrohttpd. */
static struct MHD_Response *text_response(const char *body, size_t len,
                                          const char *type) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r != NULL &&
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) !=
          MHD_YES) {
    MHD_destroy_response(r);
    r = NULL;
  }
  return r;
}

static const char *mhd_query(void *ud, const char *name) {
  return MHD_lookup_connection_value(ud, MHD_GET_ARGUMENT_KIND, name);
}

/* Answer one complete request (headers read, body consumed). The tests
 * include this file with CSN_DEMO_NO_MAIN defined to serve it from their
 * own server over an instrumented store, so what they check is this code,
 * not a copy. */
static csn_mhd_result demo_dispatch(csn_ctx *ctx, struct MHD_Connection *conn,
                                    const char *url) {
  struct MHD_Response *resp;
  csn_mhd_result ret;
  csn_request *req;
  demo_reply r;
  int rc;

  /* A health check or a metrics scrape must not create sessions. */
  if (demo_is_sessionless(url)) {
    rc = demo_sessionless(ctx, url, &r);
    if (rc < 0)
      return csn_mhd_error(ctx, conn, rc);
    resp = text_response(r.body, r.body_len, r.content_type);
    if (resp == NULL) {
      demo_reply_free(&r);
      return MHD_NO;
    }
    ret = MHD_queue_response(conn, r.status, resp);
    MHD_destroy_response(resp);
    demo_reply_free(&r);
    return ret;
  }

  rc = csn_mhd_begin(ctx, conn, url, &req);
  if (rc < 0)
    return csn_mhd_error(ctx, conn, rc);
  rc = demo_route(req, url, mhd_query, conn, &r);
  if (rc < 0) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, rc);
  }
  resp = text_response(r.body, r.body_len, r.content_type);
  if (resp == NULL) {
    demo_reply_free(&r);
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, CSN_ENOMEM);
  }
  /* Commits the session (store write, Set-Cookie) and frees req whatever
   * happens; a failed commit answers through the error handler. */
  ret = csn_mhd_queue_response(req, conn, r.status, resp);
  MHD_destroy_response(resp);
  demo_reply_free(&r);
  return ret;
}

#ifndef CSN_DEMO_NO_MAIN
static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  static int seen; /* its address marks "headers already seen" */

  (void)method;
  (void)version;
  (void)upload_data;
  /* libmicrohttpd calls once with the headers, then for each body chunk,
   * then with no data: answer on that last call (0.9.75 drops the
   * connection when a response is queued on the first call). */
  if (*con_cls == NULL) {
    *con_cls = &seen;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0; /* no route reads a body */
    return MHD_YES;
  }
  return demo_dispatch(cls, conn, url);
}

static struct MHD_Daemon *start_daemon(const demo_config *c, csn_ctx *ctx,
                                       const struct sockaddr *sa, int ipv6) {
  unsigned int base = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  struct MHD_Daemon *d = NULL;
  /* libmicrohttpd keeps a connection's headers - every cookie of the
   * Cookie header parsed separately - in a pool of this size, and clears
   * the whole pool for each request on a kept-alive connection. So the
   * size is a trade: 32 KiB (libmicrohttpd's default, and the bare
   * benchmark server's) answers 431 to a header of a few hundred cookies;
   * 64 KiB takes those but cost a quarter of the throughput in
   * bench/run.sh. --conn-memory chooses. */
  size_t mem = (size_t)c->conn_memory_kb * 1024;
  struct MHD_OptionItem ops[6];
  size_t n = 0;

  /* A pool of one is no pool: the option is left out (libmicrohttpd warns
   * about a pool size below two). */
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                     (intptr_t)mem, NULL};
  if (c->threads > 1)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                       (intptr_t)c->threads, NULL};
  /* Slowloris: see demo_app.c (--per-ip, --timeout). */
  if (c->per_ip > 0)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                       (intptr_t)c->per_ip, NULL};
  if (c->timeout_s > 0)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                       (intptr_t)c->timeout_s, NULL};
  ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

  if (ipv6)
    base |= MHD_USE_IPv6;
  /* epoll where the library has it, poll() otherwise. */
  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
    d = MHD_start_daemon(base | MHD_USE_EPOLL, 0, NULL, NULL, handler, ctx,
                         MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
  if (d == NULL)
    d = MHD_start_daemon(base | MHD_USE_POLL, 0, NULL, NULL, handler, ctx,
                         MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
  return d;
}

int main(int argc, char **argv) {
  static const char prog[] = "csession-demo";
  demo_config cfg;
  csn_store *store = NULL;
  csn_ctx *ctx = NULL;
  struct MHD_Daemon *d = NULL;
  struct sockaddr_storage ss;
  socklen_t sslen;
  const union MHD_DaemonInfo *info;
  sigset_t stop;
  int ipv6 = 0, rc, status = 1;

  /* Before any thread exists (the memory store starts a pruning thread,
   * libmicrohttpd its workers). */
  demo_block_stop_signals(&stop);

  rc = demo_parse_args(prog, argc, argv, &cfg);
  if (rc == 1) /* --help */
    rc = -1;
  if (rc == 0)
    rc = demo_listen_addr(prog, &cfg, &ss, &sslen, &ipv6);
  if (rc == 0)
    rc = demo_open(prog, &cfg, &store, &ctx);
  if (rc != 0) {
    demo_config_free(&cfg);
    return rc < 0 ? 0 : rc;
  }

  d = start_daemon(&cfg, ctx, (const struct sockaddr *)&ss, ipv6);
  if (d == NULL) {
    fprintf(stderr, "%s: cannot listen on %s port %u: %s\n", prog, cfg.bind,
            cfg.port, strerror(errno));
    goto out;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  demo_print_listening(prog, &cfg, info != NULL ? info->port : cfg.port,
                       ipv6);

  if (demo_wait_stop(&stop) == 0)
    status = 0;
out:
  /* MHD_stop_daemon waits for the worker threads, so no request can touch
   * the context or the store once it returns. */
  if (d != NULL)
    MHD_stop_daemon(d);
  demo_close(store, ctx);
  demo_config_free(&cfg);
  return status;
}
#endif /* CSN_DEMO_NO_MAIN */
