/* demo_ulfius.c - csession-ulfius-demo: the csession demo on Ulfius.
 *
 *   csession-ulfius-demo --secret-file PATH [--port 3000] [...]
 *
 * Same flags, routes and answers as csession-demo (demo_app.h): this file
 * is only what Ulfius needs. The session endpoints of the adapter
 * (csn_ulfius_install) frame one application endpoint for every method
 * and URL, at priority 1, which serves the shared routes and returns
 * U_CALLBACK_CONTINUE so that the adapter's last endpoint commits the
 * session and sends the answer. /health is kept out of the session with
 * csn_ulfius_set_skip().
 *
 * Ulfius runs on libmicrohttpd. The demo starts it with
 * ulfius_start_framework_with_mhd_options() rather than
 * ulfius_start_framework() (one thread per connection, port 1-65535), so
 * that the flags mean what they mean for csession-demo: --threads is the
 * size of the worker pool, --conn-memory the memory per connection, and
 * --port 0 lets the kernel pick the port, read back from the daemon.
 *
 * Differences left to Ulfius: the route is request->url_path, not decoded
 * (libmicrohttpd hands csession-demo a decoded path), and a query
 * argument given twice reads as both values joined with ',' (csession-demo
 * sees the first).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "csn/csn.h"
#include "csn/csn_ulfius.h"
#include "demo_app.h"

static const char *ulfius_query(void *ud, const char *name) {
  return u_map_get(ud, name);
}

static void send_reply(struct _u_response *resp, const demo_reply *r) {
  if (r->body_len > 0)
    ulfius_set_binary_body_response(resp, r->status, r->body, r->body_len);
  else
    ulfius_set_empty_body_response(resp, r->status);
  u_map_put(resp->map_header, "Content-Type", r->content_type);
}

/* /health and /metrics never open a session. */
static int skip_health(const struct _u_request *req, void *ud) {
  (void)ud;
  return demo_is_sessionless(req->url_path);
}

/* Every route. The session was loaded by the adapter's first endpoint; it
 * is committed by its last one, which this endpoint reaches by returning
 * U_CALLBACK_CONTINUE. */
static int demo_endpoint(const struct _u_request *ureq,
                         struct _u_response *resp, void *user_data) {
  csn_ctx *ctx = user_data;
  csn_request *req;
  demo_reply r;
  int rc;

  if (demo_is_sessionless(ureq->url_path)) {
    rc = demo_sessionless(ctx, ureq->url_path, &r);
    if (rc < 0)
      return csn_ulfius_error(ctx, ureq, resp, rc);
    send_reply(resp, &r);
    demo_reply_free(&r);
    return U_CALLBACK_CONTINUE;
  }
  req = csn_ulfius_request(ureq);
  if (req == NULL) /* not on a skipped route: cannot happen */
    return csn_ulfius_error(ctx, ureq, resp, CSN_ESTATE);
  rc = demo_route(req, ureq->url_path, ulfius_query, ureq->map_url, &r);
  if (rc < 0)
    return csn_ulfius_error(ctx, ureq, resp, rc);
  send_reply(resp, &r);
  demo_reply_free(&r);
  return U_CALLBACK_CONTINUE;
}

/* Start Ulfius's libmicrohttpd daemon with the demo's flags. Ulfius needs
 * its two hooks in the option list (see ulfius_start_framework_with_mhd_
 * options in ulfius.h). */
static int start(struct _u_instance *inst, const demo_config *c,
                 const struct sockaddr *sa, int ipv6) {
  unsigned int base = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  /* See csession-demo (demo.c) for the trade this size makes. */
  size_t mem = (size_t)c->conn_memory_kb * 1024;
  struct MHD_OptionItem ops[8];
  size_t n = 0;

  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                     (intptr_t)mhd_request_completed, NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK,
                                     (intptr_t)ulfius_uri_logger, NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                     (intptr_t)mem, NULL};
  /* A pool of one is no pool (libmicrohttpd warns below two). */
  if (c->threads > 1)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                       (intptr_t)c->threads, NULL};
  /* Slow clients: see demo_app.c (--per-ip, --timeout). */
  if (c->per_ip > 0)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                       (intptr_t)c->per_ip, NULL};
  if (c->timeout_s > 0)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                       (intptr_t)c->timeout_s, NULL};
  ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

  if (ipv6)
    base |= MHD_USE_IPv6;
  if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES &&
      ulfius_start_framework_with_mhd_options(inst, base | MHD_USE_EPOLL,
                                              ops) == U_OK)
    return 0;
  return ulfius_start_framework_with_mhd_options(inst, base | MHD_USE_POLL,
                                                 ops) == U_OK
             ? 0
             : -1;
}

int main(int argc, char **argv) {
  static const char prog[] = "csession-ulfius-demo";
  demo_config cfg;
  csn_store *store = NULL;
  csn_ctx *ctx = NULL;
  struct _u_instance inst;
  int inst_ready = 0, started = 0;
  struct sockaddr_storage ss;
  socklen_t sslen;
  const union MHD_DaemonInfo *info;
  sigset_t stop;
  int ipv6 = 0, rc, status = 1;

  /* Before any thread exists (the memory store's pruner, the workers). */
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

  /* Ulfius wants a port from 1 to 65535 here. The daemon listens on the
   * address given to it (MHD_OPTION_SOCK_ADDR), whose port may be 0, and
   * gets the port from inst.port: set to the real one afterwards, so that
   * libmicrohttpd reports the port the kernel picked. */
  if (ulfius_init_instance(&inst, cfg.port != 0 ? cfg.port : 1, NULL, NULL) !=
      U_OK) {
    fprintf(stderr, "%s: cannot initialise Ulfius\n", prog);
    goto out;
  }
  inst.port = cfg.port;
  inst_ready = 1;
  rc = csn_ulfius_install(&inst, ctx);
  if (rc == CSN_OK)
    rc = csn_ulfius_set_skip(ctx, skip_health, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", prog, csn_strerror(rc));
    goto out;
  }
  if (ulfius_add_endpoint_by_val(&inst, "*", NULL, "*", 1, demo_endpoint,
                                 ctx) != U_OK) {
    fprintf(stderr, "%s: cannot add the endpoint\n", prog);
    goto out;
  }

  if (start(&inst, &cfg, (const struct sockaddr *)&ss, ipv6) != 0) {
    fprintf(stderr, "%s: cannot listen on %s port %u: %s\n", prog, cfg.bind,
            cfg.port, strerror(errno));
    goto out;
  }
  started = 1;
  info = MHD_get_daemon_info(inst.mhd_daemon, MHD_DAEMON_INFO_BIND_PORT);
  demo_print_listening(prog, &cfg, info != NULL ? info->port : cfg.port,
                       ipv6);

  if (demo_wait_stop(&stop) == 0)
    status = 0;
out:
  /* Stopping joins the worker threads: no request touches the context or
   * the store afterwards, and a session left by an aborted request is
   * freed as its thread ends (csn_ulfius.h, "Lifetime"). */
  if (started)
    ulfius_stop_framework(&inst);
  if (inst_ready)
    ulfius_clean_instance(&inst);
  demo_close(store, ctx);
  demo_config_free(&cfg);
  return status;
}
