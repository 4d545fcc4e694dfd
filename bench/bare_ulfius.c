/* bare_ulfius.c - the Ulfius benchmark's ceiling: Ulfius with no session
 * work.
 *
 * It starts Ulfius's libmicrohttpd daemon exactly as csession-ulfius-demo
 * does with its defaults (internal polling thread, epoll, a pool of two
 * threads, 32 KiB per connection) and answers every request with the body
 * of bench/bare_server.c, so the difference between this server and
 * csession-ulfius-demo in one run of bench/adapters.sh is the cost of the
 * session middleware (the adapter's two endpoints and the core) and
 * nothing else.
 *
 *   csn-bench-bare-ulfius [--port N]      (default 8080, binds 127.0.0.1)
 *
 * SIGTERM or SIGINT stops it and it exits with status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ulfius.h>

/* The same bytes as bare_server.c's. */
static const char body[] = "Hello from the bare server.\n";

/* Every method and URL. ulfius_set_binary_body_response copies the body,
 * as the demo's answers are copied. */
static int answer(const struct _u_request *req, struct _u_response *resp,
                  void *ud) {
  (void)req;
  (void)ud;
  ulfius_set_binary_body_response(resp, 200, body, sizeof body - 1);
  u_map_put(resp->map_header, "Content-Type", "text/plain; charset=utf-8");
  return U_CALLBACK_COMPLETE;
}

static int parse_port(const char *s, unsigned short *out) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535)
    return -1;
  *out = (unsigned short)v;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: csn-bench-bare-ulfius [--port N]\n");
}

int main(int argc, char **argv) {
  unsigned short port = 8080;
  struct _u_instance inst;
  struct sockaddr_in addr;
  struct MHD_OptionItem ops[6];
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  sigset_t stop;
  size_t n = 0;
  int i, sig = 0, started;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      if (parse_port(argv[++i], &port) != 0) {
        fprintf(stderr, "csn-bench-bare-ulfius: bad port '%s'\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }

  /* Before libmicrohttpd starts its threads, so they inherit the mask and
   * only sigwait() below sees the stop signals. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
    fprintf(stderr, "csn-bench-bare-ulfius: cannot block signals\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  if (ulfius_init_instance(&inst, port, NULL, NULL) != U_OK) {
    fprintf(stderr, "csn-bench-bare-ulfius: cannot initialise Ulfius\n");
    return 1;
  }
  if (ulfius_add_endpoint_by_val(&inst, "*", NULL, "*", 1, answer, NULL) !=
      U_OK) {
    fprintf(stderr, "csn-bench-bare-ulfius: cannot add the endpoint\n");
    ulfius_clean_instance(&inst);
    return 1;
  }

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* The demo's options (examples/demo_ulfius.c): Ulfius's two hooks, the
   * address, 32 KiB per connection, a pool of two. */
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                     (intptr_t)mhd_request_completed, NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK,
                                     (intptr_t)ulfius_uri_logger, NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                     (intptr_t)(32 * 1024), NULL};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, 2, NULL};
  ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  started = MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES &&
            ulfius_start_framework_with_mhd_options(
                &inst, flags | MHD_USE_EPOLL, ops) == U_OK;
  if (!started)
    started = ulfius_start_framework_with_mhd_options(
                  &inst, flags | MHD_USE_POLL, ops) == U_OK;
  if (!started) {
    fprintf(stderr, "csn-bench-bare-ulfius: cannot listen on "
                    "127.0.0.1:%u\n",
            (unsigned)port);
    ulfius_clean_instance(&inst);
    return 1;
  }
  fprintf(stderr, "csn-bench-bare-ulfius: listening on "
                  "http://127.0.0.1:%u/\n",
          (unsigned)port);

  if (sigwait(&stop, &sig) != 0)
    sig = 0;
  (void)sig;
  ulfius_stop_framework(&inst);
  ulfius_clean_instance(&inst);
  return 0;
}
