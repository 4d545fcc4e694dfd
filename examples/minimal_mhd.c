/* minimal_mhd.c - the smallest csession server: a per-visitor counter.
 * Run it, then open http://localhost:3000/ and refresh. */
#include <stdio.h>
#include <string.h>

#include "csn/csn_mhd.h"

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
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
  int rc = csn_mhd_begin(ctx, conn, url, &req);
  if (rc < 0)
    return csn_mhd_error(ctx, conn, rc);
  csn_session *s = csn_request_session(req);
  if (s != NULL)
    csn_session_incr(s, "views", 1, &views);
  snprintf(body, sizeof body, "views: %lld\n", (long long)views);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(body), body, MHD_RESPMEM_MUST_COPY);
  enum MHD_Result ret = csn_mhd_queue_response(req, conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

int main(void) {
  static const char *const secrets[] = {"keyboard cat"};
  csn_options o;
  csn_ctx *ctx;
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  if (csn_ctx_new(&ctx, &o, NULL, 0) < 0)
    return 1;
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 3000, NULL, NULL,
                       handler, ctx, MHD_OPTION_END);
  if (d == NULL)
    return 1;
  puts("listening on http://localhost:3000/ - press Enter to stop");
  getchar();
  MHD_stop_daemon(d);
  csn_ctx_free(ctx);
  return 0;
}
