/* minimal_mhd.c - the smallest csession server: a per-visitor counter.
 *
 *   CSN_SECRET_FILE=secret.txt ./csn-example-minimal   (secret.txt: mode 600)
 *
 * then open http://127.0.0.1:3000/ and refresh. It listens on loopback
 * only, takes its secret from a private file (never from the command line
 * or the source), keeps at most CSN_DEFAULT_MEMORY_MAX sessions (the
 * context's own MemoryStore), and limits what one client can hold: 64
 * connections per address, closed after 15 idle seconds. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csn/csn_mhd.h>
#include <csn/csn_store.h> /* csn_free_secret */

static csn_mhd_result handler(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
  static int seen;
  csn_ctx *ctx = cls;
  csn_request *req;
  int64_t views = 0;
  char body[64];
  (void)method, (void)version, (void)upload, (void)upload_size;
  if (*con_cls == NULL) { /* first call: headers only, answer on the next */
    *con_cls = &seen;
    return MHD_YES;
  }
  int rc = csn_mhd_begin(ctx, conn, url, &req); /* cookie -> store */
  if (rc < 0)
    return csn_mhd_error(ctx, conn, rc); /* store failure: 500 */
  csn_session *s = csn_request_session(req);
  if (s != NULL)
    csn_session_incr(s, "views", 1, &views); /* req.session.views++ */
  snprintf(body, sizeof body, "views: %lld\n", (long long)views);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(body), body, MHD_RESPMEM_MUST_COPY);
  /* Saves or touches the session, adds Set-Cookie, queues, frees req. */
  csn_mhd_result ret = csn_mhd_queue_response(req, conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

int main(void) {
  const char *path = getenv("CSN_SECRET_FILE");
  char *secret = NULL, err[256] = "";
  if (path == NULL ||
      csn_secret_read_file(path, &secret, err, sizeof err) < 0) {
    fprintf(stderr, "set CSN_SECRET_FILE to a file only you can read: %s\n",
            err);
    return 1;
  }
  const char *secrets[] = {secret};
  csn_options o;
  csn_ctx *ctx;
  csn_options_init(&o); /* express-session's defaults */
  o.secrets = secrets;
  o.n_secrets = 1;
  o.cookie.max_age_ms = 24 * 3600 * 1000;
  if (csn_ctx_new(&ctx, &o, err, sizeof err) < 0) { /* options checked */
    fprintf(stderr, "csession: %s\n", err);
    return 1;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(3000)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, ctx,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, 64u,
      MHD_OPTION_CONNECTION_TIMEOUT, 15u, MHD_OPTION_END);
  if (d != NULL) {
    puts("listening on http://127.0.0.1:3000/ - press Enter to stop");
    getchar();
    MHD_stop_daemon(d);
  }
  csn_ctx_free(ctx); /* also frees the MemoryStore it created */
  csn_free_secret(secret);
  return d != NULL ? 0 : 1;
}
