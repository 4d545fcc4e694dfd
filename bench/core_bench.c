/* core_bench.c - the session core alone, without HTTP.
 *
 * One "cycle" is what the middleware does for one request of the demo:
 *   returning: csn_request_begin() with a Cookie header (parse, verify the
 *              signature, load from the MemoryStore), add 1 to "views",
 *              csn_request_commit() (save, Set-Cookie), free;
 *   new:       the same without a cookie, so a session is generated, saved
 *              and its cookie signed.
 * The options are the demo's: resave and saveUninitialized off, cookie
 * maxAge one day.
 *
 *   csn-bench-core [--iterations N] [--runs R] [--mode returning|new|both]
 *
 * prints nanoseconds per cycle for each mode (median of R timed runs, each
 * of N cycles, clock_gettime(CLOCK_MONOTONIC)). bench/callgrind.sh runs it
 * under callgrind with fixed counts for instruction counts, which do not
 * depend on the machine's load.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csn/csn.h"

#define ONE_DAY_MS (24 * 60 * 60 * 1000LL)
#define MAX_RUNS 64

enum mode { MODE_RETURNING = 1, MODE_NEW = 2, MODE_BOTH = 3 };

static void die(const char *what, int rc) {
  fprintf(stderr, "csn-bench-core: %s: %s (%s)\n", what, csn_strerror(rc),
          csn_last_error());
  exit(1);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Start a request for "/" carrying `cookie` (NULL: none). */
static csn_request *begin(csn_ctx *ctx, const char *cookie) {
  csn_request_info info;
  memset(&info, 0, sizeof info);
  info.cookie_header = cookie;
  info.url = "/";
  csn_request *r = NULL;
  int rc = csn_request_begin(ctx, &info, &r);
  if (rc != CSN_OK)
    die("csn_request_begin", rc);
  return r;
}

/* One request cycle. cookie may be NULL (new visitor). When `keep` is not
 * NULL it receives the "name=value" part of the Set-Cookie header (yours,
 * free()); the timed loops pass NULL and only check that a cookie came. */
static void cycle(csn_ctx *ctx, const char *cookie, char **keep) {
  csn_request *r = begin(ctx, cookie);
  csn_session *s = csn_request_session(r);
  if (s == NULL)
    die("csn_request_session", CSN_ESTATE);
  int rc = csn_session_incr(s, "views", 1, NULL);
  if (rc != CSN_OK)
    die("csn_session_incr", rc);

  char *set_cookie = NULL;
  rc = csn_request_commit(r, &set_cookie);
  if (rc != CSN_OK)
    die("csn_request_commit", rc);
  /* A modified session with an expiry gets its cookie on every response
   * (express-session's shouldSetCookie), new or returning. */
  if (set_cookie == NULL)
    die("no Set-Cookie from commit", CSN_ESTATE);
  if (keep != NULL) {
    size_t n = strcspn(set_cookie, ";");
    *keep = malloc(n + 1);
    if (*keep == NULL)
      die("malloc", CSN_ENOMEM);
    memcpy(*keep, set_cookie, n);
    (*keep)[n] = '\0';
  }
  csn_free(set_cookie);
  csn_request_free(r);
}

/* The visit count the store holds for `cookie`, read through a request that
 * changes nothing (so nothing is saved). */
static int64_t views_of(csn_ctx *ctx, const char *cookie) {
  csn_request *r = begin(ctx, cookie);
  int64_t v = -1;
  csn_session *s = csn_request_session(r);
  if (s == NULL || csn_session_get_int(s, "views", &v) != CSN_OK)
    v = -1;
  char *sc = NULL;
  int rc = csn_request_commit(r, &sc);
  if (rc != CSN_OK)
    die("csn_request_commit", rc);
  csn_free(sc);
  csn_request_free(r);
  return v;
}

static csn_ctx *make_ctx(void) {
  static const char *const secrets[] = {"csession benchmark secret"};
  csn_options o;
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.resave = 0;
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = ONE_DAY_MS;
  /* store NULL: the context creates and owns a MemoryStore. */
  char err[256] = "";
  csn_ctx *ctx = NULL;
  int rc = csn_ctx_new(&ctx, &o, err, sizeof err);
  if (rc != CSN_OK) {
    fprintf(stderr, "csn-bench-core: csn_ctx_new: %s\n", err);
    exit(1);
  }
  return ctx;
}

/* One timed run of `iterations` cycles on a fresh context (so the new
 * visitor runs do not inherit each other's sessions). Returns ns/cycle. */
static double run_once(enum mode m, long iterations) {
  csn_ctx *ctx = make_ctx();
  char *cookie = NULL;
  if (m == MODE_RETURNING)
    cycle(ctx, NULL, &cookie); /* the visitor's first request */

  int64_t t0 = now_ns();
  for (long i = 0; i < iterations; i++)
    cycle(ctx, cookie, NULL);
  int64_t t1 = now_ns();

  /* Prove the cookie round trip: every cycle must have counted. */
  if (m == MODE_RETURNING) {
    int64_t v = views_of(ctx, cookie);
    if (v != iterations + 1) {
      fprintf(stderr,
              "csn-bench-core: views is %" PRId64 ", expected %ld: the "
              "returning cycle did not load the session\n",
              v, iterations + 1);
      exit(1);
    }
  }
  free(cookie);
  csn_ctx_free(ctx);
  return (double)(t1 - t0) / (double)iterations;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void bench(enum mode m, long iterations, int runs) {
  double ns[MAX_RUNS];
  for (int i = 0; i < runs; i++)
    ns[i] = run_once(m, iterations);
  double sorted[MAX_RUNS];
  memcpy(sorted, ns, sizeof(double) * (size_t)runs);
  qsort(sorted, (size_t)runs, sizeof(double), cmp_double);
  double median = runs % 2 ? sorted[runs / 2]
                           : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;

  printf("%-9s %10.0f ns/cycle  (median of %d runs x %ld cycles; min %.0f, "
         "max %.0f)\n",
         m == MODE_RETURNING ? "returning" : "new", median, runs, iterations,
         sorted[0], sorted[runs - 1]);
}

static long parse_long(const char *s, long lo, long hi, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "csn-bench-core: bad %s '%s' (%ld..%ld)\n", what, s, lo,
            hi);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  long iterations = 100000;
  int runs = 5;
  enum mode m = MODE_BOTH;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--iterations") == 0 && v) {
      iterations = parse_long(v, 1, 100000000, "iteration count");
      i++;
    } else if (strcmp(a, "--runs") == 0 && v) {
      runs = (int)parse_long(v, 1, MAX_RUNS, "run count");
      i++;
    } else if (strcmp(a, "--mode") == 0 && v) {
      if (strcmp(v, "returning") == 0)
        m = MODE_RETURNING;
      else if (strcmp(v, "new") == 0)
        m = MODE_NEW;
      else if (strcmp(v, "both") == 0)
        m = MODE_BOTH;
      else {
        fprintf(stderr, "csn-bench-core: bad mode '%s'\n", v);
        return 2;
      }
      i++;
    } else {
      fprintf(stderr, "usage: csn-bench-core [--iterations N] [--runs R] "
                      "[--mode returning|new|both]\n");
      return 2;
    }
  }

  if (m & MODE_RETURNING)
    bench(MODE_RETURNING, iterations, runs);
  if (m & MODE_NEW)
    bench(MODE_NEW, iterations, runs);
  return 0;
}
