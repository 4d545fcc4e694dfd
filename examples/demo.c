/* demo.c - csession-demo: express-session's visit counter, in C.
 *
 *   csession-demo --secret 'keyboard cat' [--port 3000] [--store sqlite://./csession-demo.db]
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
 *
 * A libmicrohttpd server with a small thread pool; SIGINT or SIGTERM stops
 * it cleanly (in-flight requests finish, everything is freed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "csn/csn.h"
#include "csn/csn_mhd.h"

#define MAX_SECRETS 16

/* The tests include this file with CSN_DEMO_NO_MAIN defined to serve the
 * demo's routes (demo_dispatch) from their own server with an
 * instrumented store, so what they check is this code, not a copy. */
#ifndef CSN_DEMO_NO_MAIN
#include "csn/csn_stores.h" /* every store this build has, by URL */

typedef struct demo_config {
  unsigned int port;
  const char *bind;
  const char *store_url;
  const char *secrets[MAX_SECRETS];
  size_t n_secrets;
  const char *name;
  int64_t max_age_ms;
  int rolling;
  int resave;
  int save_uninitialized;
  int proxy;
  int secure;
  unsigned int threads;
  unsigned int conn_memory_kb;
} demo_config;

/* SQLite when this build has it: one file, no server, and a restarted demo
 * keeps its visitors' sessions. */
#ifdef CSN_HAVE_SQLITE
#define DEMO_DEFAULT_STORE "sqlite://./csession-demo.db"
#else
#define DEMO_DEFAULT_STORE "memory://"
#endif

static void usage(FILE *f) {
  fputs(
      "usage: csession-demo [options]\n"
      "\n"
      "  --port N               listen port (default 3000; 0 picks one)\n"
      "  --bind ADDR            listen address (default 127.0.0.1)\n"
      "  --store URL            session store (default: $CSN_STORE, else\n"
      "                         " DEMO_DEFAULT_STORE "; the variable keeps\n"
      "                         a URL's password off the command line)\n"
      "                         (built in: ",
      f);
  fputs(csn_stores_schemes(), f);
  fputs(
      ")\n"
      "  --secret S             signing secret; repeat to rotate (the first\n"
      "                         signs); default: $CSN_SECRET\n"
      "  --name NAME            cookie name (default connect.sid)\n"
      "  --max-age MS           cookie lifetime in ms (default 86400000)\n"
      "  --rolling              re-send the cookie on every response\n"
      "  --resave               save unmodified sessions too\n"
      "  --save-uninitialized   save new sessions that were not modified\n"
      "  --proxy                trust X-Forwarded-Proto\n"
      "  --secure               send the cookie over HTTPS only\n"
      "  --threads N            worker threads (default 2)\n"
      "  --conn-memory KB       memory per connection, which bounds the\n"
      "                         request headers (default 32, libmicrohttpd's)\n"
      "  --help                 this text\n"
      "\n"
      "routes:\n"
      "  GET /                  count visits in the session\n"
      "  GET /login?user=NAME   regenerate the session, then store \"user\"\n"
      "  GET /logout            destroy the session\n"
      "  GET /inc?k=NAME[&delay=MS]\n"
      "                         wait MS ms (0..60000, default 0), then add 1\n"
      "                         to the integer member NAME\n"
      "  GET /session           the session record as JSON\n"
      "  GET /health            \"ok\" (no session)\n",
      f);
}

/* Digits only, no sign, no overflow: "--max-age 1e3" or "-5" is a typo
 * worth stopping for rather than a cookie that silently never expires. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  if (s == NULL || *s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    if (v > (max - (uint64_t)(*s - '0')) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

/* Returns 0 to run, 1 after --help, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, demo_config *c) {
  int i, store_given = 0;
  uint64_t v;

  memset(c, 0, sizeof *c);
  c->port = 3000;
  c->bind = "127.0.0.1";
  /* SQLite when this build has it: one file, no server, and a restarted
   * demo keeps its visitors' sessions. */
  c->store_url = DEMO_DEFAULT_STORE;
  c->max_age_ms = 86400000;
  c->threads = 2;
  c->conn_memory_kb = 32;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    /* Every option that takes a value takes the next argument. */
    int has_value = i + 1 < argc;
    const char *val = has_value ? argv[i + 1] : NULL;

    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 1;
    } else if (strcmp(a, "--rolling") == 0) {
      c->rolling = 1;
    } else if (strcmp(a, "--resave") == 0) {
      c->resave = 1;
    } else if (strcmp(a, "--save-uninitialized") == 0) {
      c->save_uninitialized = 1;
    } else if (strcmp(a, "--proxy") == 0) {
      c->proxy = 1;
    } else if (strcmp(a, "--secure") == 0) {
      c->secure = 1;
    } else if (strcmp(a, "--port") == 0 || strcmp(a, "--bind") == 0 ||
               strcmp(a, "--store") == 0 || strcmp(a, "--secret") == 0 ||
               strcmp(a, "--name") == 0 || strcmp(a, "--max-age") == 0 ||
               strcmp(a, "--threads") == 0 ||
               strcmp(a, "--conn-memory") == 0) {
      if (!has_value) {
        fprintf(stderr, "csession-demo: %s needs a value\n", a);
        return 2;
      }
      i++;
      if (strcmp(a, "--port") == 0) {
        if (parse_uint(val, 65535, &v) != 0) {
          fprintf(stderr, "csession-demo: --port: not a port: %s\n", val);
          return 2;
        }
        c->port = (unsigned int)v;
      } else if (strcmp(a, "--bind") == 0) {
        c->bind = val;
      } else if (strcmp(a, "--store") == 0) {
        c->store_url = val;
        store_given = 1;
      } else if (strcmp(a, "--secret") == 0) {
        if (c->n_secrets == MAX_SECRETS) {
          fprintf(stderr, "csession-demo: at most %d secrets\n", MAX_SECRETS);
          return 2;
        }
        c->secrets[c->n_secrets++] = val;
      } else if (strcmp(a, "--name") == 0) {
        c->name = val;
      } else if (strcmp(a, "--max-age") == 0) {
        if (parse_uint(val, (uint64_t)INT64_MAX, &v) != 0) {
          fprintf(stderr,
                  "csession-demo: --max-age: expected milliseconds "
                  "(digits only), got '%s'\n",
                  val);
          return 2;
        }
        c->max_age_ms = (int64_t)v;
      } else if (strcmp(a, "--conn-memory") == 0) {
        if (parse_uint(val, 1024 * 1024, &v) != 0 || v < 8) {
          fprintf(stderr, "csession-demo: --conn-memory: expected KiB, "
                          "8..1048576\n");
          return 2;
        }
        c->conn_memory_kb = (unsigned int)v;
      } else {
        if (parse_uint(val, 1024, &v) != 0 || v == 0) {
          fprintf(stderr, "csession-demo: --threads: expected 1..1024\n");
          return 2;
        }
        c->threads = (unsigned int)v;
      }
    } else {
      fprintf(stderr, "csession-demo: unknown option '%s' (see --help)\n", a);
      return 2;
    }
  }

  if (!store_given) {
    const char *env = getenv("CSN_STORE");
    if (env != NULL && *env != '\0')
      c->store_url = env;
  }
  if (c->n_secrets == 0) {
    const char *env = getenv("CSN_SECRET");
    if (env != NULL && *env != '\0')
      c->secrets[c->n_secrets++] = env;
  }
  if (c->n_secrets == 0) {
    fprintf(stderr, "csession-demo: a secret is required to sign session "
                    "cookies: pass --secret S or set CSN_SECRET\n");
    return 2;
  }
  return 0;
}

#endif /* CSN_DEMO_NO_MAIN */

/* ------------------------------------------------------------------------ */
/* Request handling                                                         */
/* ------------------------------------------------------------------------ */

/* A body built in a fixed buffer and copied by libmicrohttpd. */
static struct MHD_Response *text_response(const char *body, const char *type) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (r != NULL &&
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) !=
          MHD_YES) {
    MHD_destroy_response(r);
    r = NULL;
  }
  return r;
}

/* Send `body` through the session: csn_mhd_queue_response commits the
 * session (store write, Set-Cookie) and frees req whatever happens. */
static csn_mhd_result reply(csn_ctx *ctx, struct MHD_Connection *conn,
                            csn_request *req, unsigned int status,
                            const char *body, const char *type) {
  struct MHD_Response *resp = text_response(body, type);
  csn_mhd_result ret;
  if (resp == NULL) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, CSN_ENOMEM);
  }
  ret = csn_mhd_queue_response(req, conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static csn_mhd_result route_index(csn_ctx *ctx, struct MHD_Connection *conn,
                                  csn_request *req) {
  csn_session *s = csn_request_session(req);
  int64_t views = 0;
  char body[128];
  int rc;

  if (s == NULL)
    return reply(ctx, conn, req, MHD_HTTP_OK, "No session\n", "text/plain");
  rc = csn_session_incr(s, "views", 1, &views);
  if (rc < 0) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, rc);
  }
  if (views == 1)
    snprintf(body, sizeof body, "Welcome! Refresh the page to count visits.\n");
  else
    snprintf(body, sizeof body, "You've visited this page %" PRId64 " times\n",
             views);
  return reply(ctx, conn, req, MHD_HTTP_OK, body, "text/plain");
}

static csn_mhd_result route_login(csn_ctx *ctx, struct MHD_Connection *conn,
                                  csn_request *req) {
  const char *user =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "user");
  csn_session *s = csn_request_session(req);
  char body[256];
  int rc;

  if (user == NULL || *user == '\0')
    return reply(ctx, conn, req, MHD_HTTP_BAD_REQUEST,
                 "Missing ?user=NAME\n", "text/plain");
  if (s == NULL)
    return reply(ctx, conn, req, MHD_HTTP_OK, "No session\n", "text/plain");
  /* A new id at login: an id planted in the browser before the login
   * (session fixation) is worth nothing afterwards. */
  rc = csn_session_regenerate(s);
  if (rc == CSN_OK)
    rc = csn_session_set_str(s, "user", user);
  if (rc < 0) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, rc);
  }
  snprintf(body, sizeof body, "Logged in as %.200s\n", user);
  return reply(ctx, conn, req, MHD_HTTP_OK, body, "text/plain");
}

static csn_mhd_result route_logout(csn_ctx *ctx, struct MHD_Connection *conn,
                                   csn_request *req) {
  csn_session *s = csn_request_session(req);
  int rc = s != NULL ? csn_session_destroy(s) : CSN_OK;
  if (rc < 0) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, rc);
  }
  return reply(ctx, conn, req, MHD_HTTP_OK, "Logged out\n", "text/plain");
}

/* The longest delay /inc accepts: a probe, not a way to pin a worker
 * thread for ever. */
#define INC_DELAY_MAX_MS 60000
#define INC_KEY_MAX 64

/* A key /inc may touch: 1..64 bytes, no control characters (it is echoed
 * in the answer), and not "cookie", which the session reserves. */
static int inc_key_ok(const char *k) {
  size_t n = 0;
  if (k == NULL || *k == '\0' || strcmp(k, "cookie") == 0)
    return 0;
  for (; k[n] != '\0'; n++)
    if (n == INC_KEY_MAX || (unsigned char)k[n] < 0x20 || k[n] == 0x7f)
      return 0;
  return 1;
}

/* "delay" in milliseconds: digits only, anything above the maximum is the
 * maximum (so a long digit string cannot overflow). Absent is 0. */
static int inc_delay_parse(const char *s, long *ms) {
  long v = 0;
  *ms = 0;
  if (s == NULL)
    return 0;
  if (*s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    if (v <= INC_DELAY_MAX_MS)
      v = v * 10 + (*s - '0');
  }
  *ms = v > INC_DELAY_MAX_MS ? INC_DELAY_MAX_MS : v;
  return 0;
}

/* GET /inc?k=NAME[&delay=MS]: the read-modify-write that concurrent
 * requests on one session race on. The delay sits between loading the
 * session and changing it, which widens the window on purpose: a logout
 * or another increment can land while this request holds a stale copy. */
static csn_mhd_result route_inc(csn_ctx *ctx, struct MHD_Connection *conn,
                                csn_request *req) {
  const char *k =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "k");
  const char *delay =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "delay");
  csn_session *s = csn_request_session(req);
  int64_t v = 0;
  long ms;
  char body[128];
  int rc;

  if (!inc_key_ok(k))
    return reply(ctx, conn, req, MHD_HTTP_BAD_REQUEST,
                 "Need ?k=NAME (1-64 characters, not \"cookie\")\n",
                 "text/plain");
  if (inc_delay_parse(delay, &ms) != 0)
    return reply(ctx, conn, req, MHD_HTTP_BAD_REQUEST,
                 "delay: expected milliseconds (digits only)\n",
                 "text/plain");
  if (s == NULL)
    return reply(ctx, conn, req, MHD_HTTP_OK, "No session\n", "text/plain");
  if (ms > 0) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  rc = csn_session_incr(s, k, 1, &v);
  if (rc == CSN_ETYPE)
    return reply(ctx, conn, req, MHD_HTTP_BAD_REQUEST,
                 "Not an integer member\n", "text/plain");
  if (rc < 0) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, rc);
  }
  snprintf(body, sizeof body, "%s: %" PRId64 "\n", k, v);
  return reply(ctx, conn, req, MHD_HTTP_OK, body, "text/plain");
}

static csn_mhd_result route_session(csn_ctx *ctx, struct MHD_Connection *conn,
                                    csn_request *req) {
  csn_session *s = csn_request_session(req);
  char *json = NULL;
  csn_mhd_result ret;
  int rc;

  if (s == NULL)
    return reply(ctx, conn, req, MHD_HTTP_OK, "{}", "application/json");
  rc = csn_session_to_json(s, &json);
  if (rc < 0) {
    csn_request_free(req);
    return csn_mhd_error(ctx, conn, rc);
  }
  ret = reply(ctx, conn, req, MHD_HTTP_OK, json, "application/json");
  csn_free(json);
  return ret;
}

/* Answer one complete request (headers read, body consumed). */
static csn_mhd_result demo_dispatch(csn_ctx *ctx, struct MHD_Connection *conn,
                                    const char *url) {
  csn_request *req;
  int rc;

  /* A health check must not create sessions. */
  if (strcmp(url, "/health") == 0) {
    struct MHD_Response *r = text_response("ok\n", "text/plain");
    csn_mhd_result ret;
    if (r == NULL)
      return MHD_NO;
    ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
  }

  rc = csn_mhd_begin(ctx, conn, url, &req);
  if (rc < 0)
    return csn_mhd_error(ctx, conn, rc);
  if (strcmp(url, "/") == 0)
    return route_index(ctx, conn, req);
  if (strcmp(url, "/login") == 0)
    return route_login(ctx, conn, req);
  if (strcmp(url, "/logout") == 0)
    return route_logout(ctx, conn, req);
  if (strcmp(url, "/session") == 0)
    return route_session(ctx, conn, req);
  if (strcmp(url, "/inc") == 0)
    return route_inc(ctx, conn, req);
  return reply(ctx, conn, req, MHD_HTTP_NOT_FOUND, "Not Found\n",
               "text/plain");
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

/* ------------------------------------------------------------------------ */
/* Start-up and shutdown                                                    */
/* ------------------------------------------------------------------------ */

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
  struct MHD_OptionItem ops[4];
  size_t n = 0;

  /* A pool of one is no pool: the option is left out (libmicrohttpd warns
   * about a pool size below two). */
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
  ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                     (intptr_t)mem, NULL};
  if (c->threads > 1)
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                       (intptr_t)c->threads, NULL};
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
  demo_config cfg;
  csn_options o;
  csn_store *store = NULL;
  csn_ctx *ctx = NULL;
  struct MHD_Daemon *d = NULL;
  struct sockaddr_in sa4;
  struct sockaddr_in6 sa6;
  const struct sockaddr *sa;
  const union MHD_DaemonInfo *info;
  sigset_t stop;
  char err[256] = "";
  int ipv6 = 0, sig = 0, rc, status = 1;

  /* Block the stop signals before any thread exists (the memory store
   * starts a pruning thread, libmicrohttpd its workers), so every thread
   * inherits the mask and only sigwait() below ever sees them: no
   * async-signal-safety puzzles, and shutdown runs on the main thread. */
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  rc = parse_args(argc, argv, &cfg);
  if (rc == 1)
    return 0;
  if (rc != 0)
    return 2;

  memset(&sa4, 0, sizeof sa4);
  memset(&sa6, 0, sizeof sa6);
  if (inet_pton(AF_INET, cfg.bind, &sa4.sin_addr) == 1) {
    sa4.sin_family = AF_INET;
    sa4.sin_port = htons((uint16_t)cfg.port);
    sa = (const struct sockaddr *)&sa4;
  } else if (inet_pton(AF_INET6, cfg.bind, &sa6.sin6_addr) == 1) {
    sa6.sin6_family = AF_INET6;
    sa6.sin6_port = htons((uint16_t)cfg.port);
    sa = (const struct sockaddr *)&sa6;
    ipv6 = 1;
  } else {
    fprintf(stderr, "csession-demo: --bind: not an IP address: %s\n",
            cfg.bind);
    return 2;
  }

  rc = csn_stores_register_all();
  if (rc < 0) {
    fprintf(stderr, "csession-demo: cannot register stores: %s\n",
            csn_strerror(rc));
    return 1;
  }
  rc = csn_store_open(cfg.store_url, &store, err, sizeof err);
  if (rc < 0) {
    char shown[256]; /* never the URL's password */
    fprintf(stderr, "csession-demo: --store %s: %s\n",
            csn_url_redact(cfg.store_url, shown, sizeof shown),
            err[0] ? err : csn_strerror(rc));
    return 2;
  }

  /* The demo's defaults are the ones express-session recommends setting
   * explicitly: no resave, no empty sessions, a one-day cookie. */
  csn_options_init(&o);
  o.secrets = cfg.secrets;
  o.n_secrets = cfg.n_secrets;
  if (cfg.name != NULL)
    o.name = cfg.name;
  o.resave = cfg.resave;
  o.save_uninitialized = cfg.save_uninitialized;
  o.rolling = cfg.rolling;
  o.proxy = cfg.proxy ? CSN_PROXY_TRUST : CSN_PROXY_DEFAULT;
  o.cookie.max_age_ms = cfg.max_age_ms;
  o.cookie.secure = cfg.secure ? CSN_SECURE_ON : CSN_SECURE_OFF;
  o.store = store;
  rc = csn_ctx_new(&ctx, &o, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "csession-demo: %s\n", err[0] ? err : csn_strerror(rc));
    csn_store_free(store);
    return 2;
  }

  d = start_daemon(&cfg, ctx, sa, ipv6);
  if (d == NULL) {
    fprintf(stderr, "csession-demo: cannot listen on %s port %u: %s\n",
            cfg.bind, cfg.port, strerror(errno));
    goto out;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("csession-demo listening on http://%s%s%s:%u\n", ipv6 ? "[" : "",
         cfg.bind, ipv6 ? "]" : "",
         info != NULL ? (unsigned)info->port : cfg.port);
  fflush(stdout);

  if (sigwait(&stop, &sig) != 0)
    goto out;
  status = 0;
out:
  /* MHD_stop_daemon waits for the worker threads, so no request can touch
   * the context or the store once it returns. */
  if (d != NULL)
    MHD_stop_daemon(d);
  csn_ctx_free(ctx);
  csn_store_free(store);
  return status;
}
#endif /* CSN_DEMO_NO_MAIN */
