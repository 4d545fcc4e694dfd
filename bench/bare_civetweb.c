/* bare_civetweb.c - the CivetWeb benchmark's ceiling: CivetWeb with no
 * session work.
 *
 * It starts CivetWeb exactly as csession-civetweb-demo does with its
 * defaults (two worker threads, a 32 KiB request buffer, no keep-alive)
 * and answers every request with the body of bench/bare_server.c, so the
 * difference between this server and csession-civetweb-demo in one run of
 * bench/adapters.sh is the cost of the session middleware (the adapter and
 * the core) and nothing else.
 *
 *   csn-bench-bare-civetweb [--port N]      (default 8080, binds 127.0.0.1)
 *
 * SIGTERM or SIGINT stops it and it exits with status 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

/* The same bytes as bare_server.c's. */
static const char body[] = "Hello from the bare server.\n";

/* Every path. The headers are built as csn_civetweb_send builds the
 * demo's. */
static int answer(struct mg_connection *conn, void *cbdata) {
  char len[24];
  (void)cbdata;
  snprintf(len, sizeof len, "%zu", sizeof body - 1);
  mg_response_header_start(conn, 200);
  mg_response_header_add(conn, "Content-Type", "text/plain; charset=utf-8",
                         -1);
  mg_response_header_add(conn, "Content-Length", len, -1);
  mg_response_header_send(conn);
  mg_write(conn, body, sizeof body - 1);
  return 200;
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
  fprintf(f, "usage: csn-bench-bare-civetweb [--port N]\n");
}

int main(int argc, char **argv) {
  unsigned short port = 8080;
  char ports[32];
  const char *options[] = {"listening_ports", ports,
                           "num_threads", "2",
                           "max_request_size", "32768",
                           "enable_keep_alive", "no",
                           NULL};
  struct mg_callbacks cb;
  struct mg_context *mg;
  sigset_t stop;
  int i, sig = 0;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      if (parse_port(argv[++i], &port) != 0) {
        fprintf(stderr, "csn-bench-bare-civetweb: bad port '%s'\n", argv[i]);
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

  /* Before CivetWeb starts its threads, so they inherit the mask and only
   * sigwait() below sees the stop signals. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
    fprintf(stderr, "csn-bench-bare-civetweb: cannot block signals\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  snprintf(ports, sizeof ports, "127.0.0.1:%u", (unsigned)port);
  (void)mg_init_library(0);
  memset(&cb, 0, sizeof cb);
  mg = mg_start(&cb, NULL, options);
  if (mg == NULL) {
    fprintf(stderr, "csn-bench-bare-civetweb: cannot listen on %s\n", ports);
    mg_exit_library();
    return 1;
  }
  mg_set_request_handler(mg, "/", answer, NULL);
  fprintf(stderr, "csn-bench-bare-civetweb: listening on http://%s/\n",
          ports);

  if (sigwait(&stop, &sig) != 0)
    sig = 0;
  (void)sig;
  mg_stop(mg);
  mg_exit_library();
  return 0;
}
