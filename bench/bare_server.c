/* bare_server.c - the benchmark's ceiling: libmicrohttpd with no session work.
 *
 * It runs the same threading as the demo server (internal polling thread,
 * epoll, a pool of two threads unless --threads says otherwise) and answers
 * every request with a fixed body,
 * so the difference between this server and csession-demo in one benchmark
 * run is the cost of the session middleware and nothing else.
 *
 *   csn-bench-bare [--port N] [--cookie] [--table N] [--conn-memory KB]
 *                  [--threads N]       (default 8080, binds 127.0.0.1)
 *
 * --cookie adds to every response a Set-Cookie header of the size and shape
 * csession-demo sends (a fixed value: no signing, no store). wrk's returning
 * scenario sends it back, so this server then also reads a Cookie header of
 * csession's size: the row tells what libmicrohttpd itself charges for the
 * session's bytes, which no session library on it can avoid.
 *
 * --table N keeps, as csession-demo on memory:// does, a record of the
 * demo's size for each visitor in a table of the last N (bare_table.c),
 * and sends the cookie bytes of --cookie with the record's id in them: a
 * request without that cookie inserts a record (evicting the oldest once N
 * are held), one with it writes its record over in place. What is left
 * between this server and csession-demo is csession's own work (signing,
 * parsing, the record's JSON, its store's bookkeeping); between it and
 * the bare server, what holding N sessions in memory costs any server.
 *
 * --conn-memory KB sets libmicrohttpd's memory per connection, as the
 * demo's flag of that name does (default 32, libmicrohttpd's and the
 * demo's default): libmicrohttpd clears it for every request, so a run
 * comparing the two servers at another size passes it to both (run.sh
 * --conn-memory).
 *
 * --threads N sets the worker pool (default 2, 1..64), for a run that gives
 * the demo the same count (run.sh --threads N --bare-threads N): with one
 * worker each, a server pinned to one core never hands it to its other
 * worker, and figures move less between rounds (docs/BENCHMARKS.md,
 * "Connections in turn, not workers").
 *
 * SIGTERM or SIGINT stops the daemon and exits with status 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bare_table.h"

#if MHD_VERSION < 0x00097002
typedef int bare_result;
#else
typedef enum MHD_Result bare_result;
#endif

static const char body[] = "Hello from the bare server.\n";

/* What csession-demo sends, byte for byte in length: "s:" + a 32-character
 * id + "." + a 43-character signature, URI-encoded, and the default
 * attributes with a one-day Expires. */
static const char fixed_cookie[] =
    "connect.sid=s%3AtSO1O3vDwKQZBAVBgKAglj3IBFYNINeS."
    "GqG2H3JtaNZFV%2FD7t0Eagzi1H1e7O%2BZmCbida%2Flt0F0; Path=/; "
    "Expires=Fri, 04 Dec 2026 21:55:01 GMT; HttpOnly";
static int send_cookie;
/* Where fixed_cookie's id begins, after "connect.sid=s%3A". */
static const size_t cookie_id_at = 16;
static int use_table;

/* Any non-NULL address marks "first call seen" in *req_cls. */
static int first_call_marker;

static bare_result handler(void *cls, struct MHD_Connection *conn,
                           const char *url, const char *method,
                           const char *version, const char *upload_data,
                           size_t *upload_data_size, void **req_cls) {
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;

  /* libmicrohttpd 0.9.75 closes the connection when a handler answers on its
   * very first call for a request, which would turn the benchmark into a
   * connect() benchmark; the demo answers on the second call, so do we. */
  if (*req_cls == NULL) {
    *req_cls = &first_call_marker;
    return MHD_YES;
  }
  /* A request body is read and dropped; the answer comes after it. */
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }

  char cookie[sizeof fixed_cookie];
  const char *set_cookie = send_cookie ? fixed_cookie : NULL;
  if (use_table) {
    /* The id sits where csession's does: after "s%3A" in the value. */
    const char *v =
        MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, "connect.sid");
    const char *id = v != NULL && strncmp(v, "s%3A", 4) == 0 &&
                             strlen(v) >= 4 + BARE_TABLE_ID_LEN
                         ? v + 4
                         : NULL;
    char out[BARE_TABLE_ID_LEN + 1];
    if (bare_table_save(id, out) != 0)
      return MHD_NO;
    memcpy(cookie, fixed_cookie, sizeof cookie);
    memcpy(cookie + cookie_id_at, out, BARE_TABLE_ID_LEN);
    set_cookie = cookie;
  }

  /* A response per request, as the demo builds one: the buffer is static so
   * nothing is copied. */
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                              "text/plain; charset=utf-8") != MHD_YES ||
      (set_cookie != NULL &&
       MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie) !=
           MHD_YES)) {
    MHD_destroy_response(resp);
    return MHD_NO;
  }
  bare_result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* A decimal number in [lo, hi], digits only (strtoull would take a sign
 * or leading spaces, and wrap "-1"). 0, or -1 for anything else. */
static int parse_num(const char *s, unsigned long long lo,
                     unsigned long long hi, unsigned long long *out) {
  char *end;
  unsigned long long v;
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: csn-bench-bare [--port N] [--cookie] [--table N] "
             "[--conn-memory KB] [--threads N]\n");
}

int main(int argc, char **argv) {
  unsigned short port = 8080;
  size_t conn_memory = 32 * 1024;
  unsigned int threads = 2;

  for (int i = 1; i < argc; i++) {
    unsigned long long n;
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      if (parse_num(argv[++i], 1, 65535, &n) != 0) {
        fprintf(stderr, "csn-bench-bare: bad port '%s'\n", argv[i]);
        return 2;
      }
      port = (unsigned short)n;
    } else if (strcmp(argv[i], "--cookie") == 0) {
      send_cookie = 1;
    } else if (strcmp(argv[i], "--table") == 0 && i + 1 < argc) {
      if (use_table || parse_num(argv[++i], 1, SIZE_MAX / 64, &n) != 0 ||
          bare_table_init((size_t)n) != 0) {
        fprintf(stderr,
                "csn-bench-bare: bad, too large or repeated --table '%s'\n",
                argv[i]);
        return 2;
      }
      use_table = 1;
    } else if (strcmp(argv[i], "--conn-memory") == 0 && i + 1 < argc) {
      if (parse_num(argv[++i], 8, 1024 * 1024, &n) != 0) {
        fprintf(stderr, "csn-bench-bare: --conn-memory: expected KiB, "
                        "8..1048576\n");
        return 2;
      }
      conn_memory = (size_t)n * 1024;
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      if (parse_num(argv[++i], 1, 64, &n) != 0) {
        fprintf(stderr, "csn-bench-bare: --threads: expected 1..64\n");
        return 2;
      }
      threads = (unsigned int)n;
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }

  /* Block the stop signals before libmicrohttpd starts its threads, so the
   * threads inherit the mask and only sigwait() below ever sees them. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
    fprintf(stderr, "csn-bench-bare: cannot block signals\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, port, NULL, NULL,
      handler, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, conn_memory, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "csn-bench-bare: cannot listen on 127.0.0.1:%u\n",
            (unsigned)port);
    return 1;
  }
  fprintf(stderr, "csn-bench-bare: listening on http://127.0.0.1:%u/\n",
          (unsigned)port);

  int sig = 0;
  if (sigwait(&stop, &sig) != 0)
    sig = 0;
  MHD_stop_daemon(d);
  bare_table_free();
  (void)sig;
  return 0;
}
