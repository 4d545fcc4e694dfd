/* demo_app.c - the demo's command line, start-up and shutdown, shared by
 * every demo program (csession-demo, csession-ulfius-demo,
 * csession-civetweb-demo). See demo_app.h. */
#include "demo_app.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csn/csn_store.h"  /* csn_free_secret */
#include "csn/csn_stores.h" /* every store this build has, by URL */

/* SQLite when this build has it: one file, no server, and a restarted demo
 * keeps its visitors' sessions. */
#ifdef CSN_HAVE_SQLITE
#define DEMO_DEFAULT_STORE "sqlite://./csession-demo.db"
#else
#define DEMO_DEFAULT_STORE "memory://"
#endif

void demo_usage(const char *prog, FILE *f) {
  fprintf(f, "usage: %s [options]\n", prog);
  fputs(
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
      "                         memory:// holds at most 100000 sessions\n"
      "                         unless its max= says otherwise\n"
      "  --secret-file PATH     read a signing secret from PATH (mode 600\n"
      "                         or stricter); repeat to rotate (the first\n"
      "                         signs); default: $CSN_SECRET_FILE, else\n"
      "                         $CSN_SECRET\n"
      "  --secret S             a signing secret given inline (visible to\n"
      "                         every local user in the process list:\n"
      "                         prefer --secret-file or the variables)\n"
      "  --name NAME            cookie name (default connect.sid)\n"
      "  --max-age MS           cookie lifetime in ms (default 86400000)\n"
      "  --lifetime MS          absolute timeout: a session older than MS\n"
      "                         since login/creation starts over, however\n"
      "                         active (default 0: off)\n"
      "  --touch-after MS       skip the store write of an unchanged session\n"
      "                         refreshed less than MS ago (default 0: off)\n"
      "  --rolling              re-send the cookie on every response\n"
      "  --resave               save unmodified sessions too\n"
      "  --save-uninitialized   save new sessions that were not modified\n"
      "  --proxy                trust X-Forwarded-Proto\n"
      "  --secure               send the cookie over HTTPS only\n"
      "  --threads N            worker threads (default: one per core for\n"
      "                         memory://, eight per core and at least 16\n"
      "                         for the stores that block on a disk or a\n"
      "                         server)\n"
      "  --conn-memory KB       memory per connection, which bounds the\n"
      "                         request headers (default 32)\n"
      "  --per-ip N             connections one client address may hold\n"
      "                         (default 64; 0: no limit)\n"
      "  --timeout S            close a connection idle for S seconds\n"
      "                         (default 15; 0: never)\n"
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
      "  GET /health            \"ok\" (no session)\n"
      "  GET /metrics           the session counters, Prometheus text format\n"
      "                         (no session)\n",
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

/* Read one secret from a file (csn_secret_read_file: private to us, or
 * refused) and add it to the rotation. 0, or -1 after a message. */
static int add_secret_file(const char *prog, demo_config *c,
                           const char *path) {
  char err[256] = "";
  char *secret = NULL;
  if (csn_secret_read_file(path, &secret, err, sizeof err) < 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return -1;
  }
  c->owned[c->n_owned++] = secret;
  c->secrets[c->n_secrets++] = secret;
  return 0;
}

void demo_config_free(demo_config *c) {
  for (size_t i = 0; i < c->n_owned; i++)
    csn_free_secret(c->owned[i]);
  c->n_owned = 0;
  c->n_secrets = 0;
}

unsigned int demo_default_threads(const char *store_url) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned int n;
  if (cores < 1) cores = 1;
  if (cores > 64) cores = 64;
  /* The MemoryStore never waits, so a worker per core keeps every core
   * busy and more would only take turns. Every other store blocks its
   * worker for an fsync or a network round trip; the durable stores
   * share one fsync among the saves that wait at once (group commit), so
   * they need many more requests in flight than cores to batch at all
   * (docs/BENCHMARKS.md, "Durable stores": 2 workers against 16). */
  if (store_url != NULL && strncmp(store_url, "memory:", 7) == 0) {
    n = (unsigned int)cores;
    return n < 2 ? 2 : n;
  }
  n = (unsigned int)cores * 8;
  return n < 16 ? 16 : n;
}

/* Returns 0 to run, 1 after --help, 2 on a usage error (message printed). */
int demo_parse_args(const char *prog, int argc, char **argv,
                    demo_config *c) {
  int i, store_given = 0;
  uint64_t v;

  memset(c, 0, sizeof *c);
  c->port = 3000;
  c->bind = "127.0.0.1";
  /* SQLite when this build has it: one file, no server, and a restarted
   * demo keeps its visitors' sessions. */
  c->store_url = DEMO_DEFAULT_STORE;
  c->max_age_ms = 86400000;
  c->threads = 0; /* chosen from the store once it is known */
  c->conn_memory_kb = 32;
  /* A client that opens connections and trickles its headers (slowloris)
   * must not hold every slot: 1,100 such connections from one address
   * kept /health from answering at all. A per-address limit stops one
   * client; the idle timeout reclaims connections a client forgot. Both
   * leave room for a benchmark's 50 connections. Many addresses at once
   * are a proxy's job (README, "The demo server"). */
  c->per_ip = 64;
  c->timeout_s = 15;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    /* Every option that takes a value takes the next argument. */
    int has_value = i + 1 < argc;
    const char *val = has_value ? argv[i + 1] : NULL;

    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      demo_usage(prog, stdout);
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
               strcmp(a, "--secret-file") == 0 ||
               strcmp(a, "--name") == 0 || strcmp(a, "--max-age") == 0 ||
               strcmp(a, "--lifetime") == 0 ||
               strcmp(a, "--touch-after") == 0 ||
               strcmp(a, "--threads") == 0 ||
               strcmp(a, "--conn-memory") == 0 ||
               strcmp(a, "--per-ip") == 0 || strcmp(a, "--timeout") == 0) {
      if (!has_value) {
        fprintf(stderr, "%s: %s needs a value\n", prog, a);
        return 2;
      }
      i++;
      if (strcmp(a, "--port") == 0) {
        if (parse_uint(val, 65535, &v) != 0) {
          fprintf(stderr, "%s: --port: not a port: %s\n", prog,
                  val);
          return 2;
        }
        c->port = (unsigned int)v;
      } else if (strcmp(a, "--bind") == 0) {
        c->bind = val;
      } else if (strcmp(a, "--store") == 0) {
        c->store_url = val;
        store_given = 1;
      } else if (strcmp(a, "--secret") == 0 ||
                 strcmp(a, "--secret-file") == 0) {
        if (c->n_secrets == DEMO_MAX_SECRETS) {
          fprintf(stderr, "%s: at most %d secrets\n", prog,
                  DEMO_MAX_SECRETS);
          return 2;
        }
        if (strcmp(a, "--secret") == 0)
          c->secrets[c->n_secrets++] = val;
        else if (add_secret_file(prog, c, val) != 0)
          return 2;
      } else if (strcmp(a, "--name") == 0) {
        c->name = val;
      } else if (strcmp(a, "--max-age") == 0) {
        if (parse_uint(val, (uint64_t)INT64_MAX, &v) != 0) {
          fprintf(stderr,
                  "%s: --max-age: expected milliseconds "
                  "(digits only), got '%s'\n",
                  prog, val);
          return 2;
        }
        c->max_age_ms = (int64_t)v;
      } else if (strcmp(a, "--lifetime") == 0 ||
                 strcmp(a, "--touch-after") == 0) {
        /* The JavaScript Date range bounds every instant the core keeps. */
        if (parse_uint(val, UINT64_C(8640000000000000), &v) != 0) {
          fprintf(stderr,
                  "%s: %s: expected milliseconds (digits only), got '%s'\n",
                  prog, a, val);
          return 2;
        }
        if (strcmp(a, "--lifetime") == 0)
          c->lifetime_ms = (int64_t)v;
        else
          c->touch_after_ms = (int64_t)v;
      } else if (strcmp(a, "--conn-memory") == 0) {
        if (parse_uint(val, 1024 * 1024, &v) != 0 || v < 8) {
          fprintf(stderr, "%s: --conn-memory: expected KiB, "
                          "8..1048576\n",
                  prog);
          return 2;
        }
        c->conn_memory_kb = (unsigned int)v;
      } else if (strcmp(a, "--per-ip") == 0) {
        if (parse_uint(val, 100000, &v) != 0) {
          fprintf(stderr, "%s: --per-ip: expected 0..100000\n", prog);
          return 2;
        }
        c->per_ip = (unsigned int)v;
      } else if (strcmp(a, "--timeout") == 0) {
        if (parse_uint(val, 86400, &v) != 0) {
          fprintf(stderr, "%s: --timeout: expected seconds, 0..86400\n",
                  prog);
          return 2;
        }
        c->timeout_s = (unsigned int)v;
      } else {
        if (parse_uint(val, 1024, &v) != 0 || v == 0) {
          fprintf(stderr, "%s: --threads: expected 1..1024\n", prog);
          return 2;
        }
        c->threads = (unsigned int)v;
      }
    } else {
      fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog,
              a);
      return 2;
    }
  }

  if (!store_given) {
    const char *env = getenv("CSN_STORE");
    if (env != NULL && *env != '\0')
      c->store_url = env;
  }
  if (c->threads == 0)
    c->threads = demo_default_threads(c->store_url);
  if (c->n_secrets == 0) {
    const char *env = getenv("CSN_SECRET_FILE");
    if (env != NULL && *env != '\0' && add_secret_file(prog, c, env) != 0)
      return 2;
  }
  if (c->n_secrets == 0) {
    const char *env = getenv("CSN_SECRET");
    if (env != NULL && *env != '\0')
      c->secrets[c->n_secrets++] = env;
  }
  if (c->n_secrets == 0) {
    fprintf(stderr, "%s: a secret is required to sign session "
                    "cookies: pass --secret-file PATH, or set CSN_SECRET_FILE or "
                    "CSN_SECRET\n",
            prog);
    return 2;
  }
  return 0;
}


int demo_listen_addr(const char *prog, const demo_config *c,
                     struct sockaddr_storage *ss, socklen_t *len, int *ipv6) {
  struct sockaddr_in *sa4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *)ss;

  memset(ss, 0, sizeof *ss);
  *ipv6 = 0;
  if (inet_pton(AF_INET, c->bind, &sa4->sin_addr) == 1) {
    sa4->sin_family = AF_INET;
    sa4->sin_port = htons((uint16_t)c->port);
    *len = sizeof *sa4;
    return 0;
  }
  if (inet_pton(AF_INET6, c->bind, &sa6->sin6_addr) == 1) {
    sa6->sin6_family = AF_INET6;
    sa6->sin6_port = htons((uint16_t)c->port);
    *len = sizeof *sa6;
    *ipv6 = 1;
    return 0;
  }
  fprintf(stderr, "%s: --bind: not an IP address: %s\n", prog, c->bind);
  return 2;
}

/* The store of --store, with one change: a MemoryStore given no max= gets
 * the library's default bound (CSN_DEFAULT_MEMORY_MAX), as the store a
 * context makes for itself does, so that anonymous traffic cannot grow
 * the demo without limit (issue 15, finding 6). An explicit max=0 still
 * means unbounded. */
static int open_store(const char *url, csn_store **store, char *err,
                      size_t errlen) {
  char bounded[512];
  if (strncmp(url, "memory://", 9) == 0 && strstr(url, "max=") == NULL &&
      strlen(url) + 32 < sizeof bounded) {
    snprintf(bounded, sizeof bounded, "%s%smax=%d", url,
             strchr(url, '?') != NULL ? "&" : "?", CSN_DEFAULT_MEMORY_MAX);
    return csn_store_open(bounded, store, err, errlen);
  }
  return csn_store_open(url, store, err, errlen);
}

int demo_open(const char *prog, const demo_config *c, csn_store **store,
              csn_ctx **ctx) {
  csn_options o;
  char err[256] = "";
  int rc;

  *store = NULL;
  *ctx = NULL;
  rc = csn_stores_register_all();
  if (rc < 0) {
    fprintf(stderr, "%s: cannot register stores: %s\n", prog,
            csn_strerror(rc));
    return 1;
  }
  rc = open_store(c->store_url, store, err, sizeof err);
  if (rc < 0) {
    char shown[256]; /* never the URL's password */
    fprintf(stderr, "%s: --store %s: %s\n", prog,
            csn_url_redact(c->store_url, shown, sizeof shown),
            err[0] ? err : csn_strerror(rc));
    return 2;
  }

  /* The demo's defaults are the ones express-session recommends setting
   * explicitly: no resave, no empty sessions, a one-day cookie. */
  csn_options_init(&o);
  o.secrets = c->secrets;
  o.n_secrets = c->n_secrets;
  if (c->name != NULL)
    o.name = c->name;
  o.resave = c->resave;
  o.save_uninitialized = c->save_uninitialized;
  o.rolling = c->rolling;
  o.proxy = c->proxy ? CSN_PROXY_TRUST : CSN_PROXY_DEFAULT;
  o.cookie.max_age_ms = c->max_age_ms;
  o.lifetime_ms = c->lifetime_ms;
  o.touch_after_ms = c->touch_after_ms;
  o.cookie.secure = c->secure ? CSN_SECURE_ON : CSN_SECURE_OFF;
  o.store = *store;
  rc = csn_ctx_new(ctx, &o, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", prog, err[0] ? err : csn_strerror(rc));
    csn_store_free(*store);
    *store = NULL;
    return 2;
  }
  return 0;
}

void demo_close(csn_store *store, csn_ctx *ctx) {
  /* The context first: it may still refer to the store. */
  csn_ctx_free(ctx);
  csn_store_free(store);
}

void demo_block_stop_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, set, NULL);
}

int demo_wait_stop(const sigset_t *set) {
  int sig = 0;
  return sigwait(set, &sig) == 0 ? 0 : -1;
}

void demo_print_listening(const char *prog, const demo_config *c,
                          unsigned int port, int ipv6) {
  printf("%s listening on http://%s%s%s:%u\n", prog, ipv6 ? "[" : "",
         c->bind, ipv6 ? "]" : "", port);
  fflush(stdout);
}
