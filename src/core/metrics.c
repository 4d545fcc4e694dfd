/* metrics.c - a context's counters and store latency histograms.
 *
 * Every request passes through here two or three times (the load, the
 * save or touch, events such as "loaded"), from every worker thread at
 * once, so counting must cost next to nothing and take no lock:
 *
 *   - Each counter is a 64-bit atomic incremented with relaxed order: no
 *     fence, one locked add on x86. Nothing is ordered by a counter, and a
 *     reader only needs each value to be exact once the calls counted in it
 *     have returned.
 *   - The counters live in SHARDS copies, each on its own cache lines. A
 *     thread takes a shard index the first time it counts (round robin over
 *     a process-wide sequence) and keeps it, so threads of one server
 *     mostly write cache lines no other thread writes: a single set of
 *     atomics would bounce its one line between the cores on every
 *     request. Two threads that share a shard (more threads than shards)
 *     are still exact, since the adds are atomic.
 *   - A read sums the shards. It is rare (a scrape every few seconds) and
 *     may run beside requests; it sees every add that finished before it.
 *
 * A histogram keeps the calls per bucket, not cumulative, and no separate
 * count: the count and Prometheus' cumulative buckets are computed from the
 * same loaded values, so they always agree (le="+Inf" equals _count, as the
 * format requires), whatever ran during the read.
 *
 * Store calls are timed on CLOCK_MONOTONIC (a vDSO call on Linux, no
 * system call): a wall-clock step must not produce a negative or huge
 * latency. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "csn/csn_metrics.h"
#include "metrics.h"

#define SHARDS 16 /* a power of two */
#define CACHE_LINE 64

/* Counters besides the events: the wrappers' outcomes. */
enum {
  C_SAVED = CSN__EV_COUNT,
  C_TOUCHED,
  C_DESTROYED,
  C_CAS_CONFLICT,
  C_TOTAL
};

typedef struct shard {
  /* The alignment makes the size a multiple of the line too, so that two
   * shards never share one. */
  _Alignas(CACHE_LINE) _Atomic uint64_t count[C_TOTAL];
  _Atomic uint64_t errors[CSN_METRICS_OPS];
  _Atomic uint64_t sum_ns[CSN_METRICS_OPS];
  /* Calls per bucket; the last one holds the calls slower than every
   * bound (only in le="+Inf"). */
  _Atomic uint64_t hist[CSN_METRICS_OPS][CSN_METRICS_BUCKETS + 1];
} shard;

struct csn__metrics {
  shard *shards; /* SHARDS of them, inside this allocation, aligned */
};

/* 50 us .. 10 s: a MemoryStore answers in the first bucket, a server store
 * on the same host in the next few, and the long tail shows a store that
 * is failing or overloaded. */
static const uint64_t bound_ns[CSN_METRICS_BUCKETS] = {
    UINT64_C(50000),      UINT64_C(100000),     UINT64_C(250000),
    UINT64_C(500000),     UINT64_C(1000000),    UINT64_C(2500000),
    UINT64_C(5000000),    UINT64_C(10000000),   UINT64_C(25000000),
    UINT64_C(50000000),   UINT64_C(100000000),  UINT64_C(250000000),
    UINT64_C(500000000),  UINT64_C(1000000000), UINT64_C(2500000000),
    UINT64_C(5000000000), UINT64_C(10000000000)};
/* The same bounds as Prometheus' Go client writes them (%g style): le is
 * a label, compared as text by queries that join several exporters. */
static const char *const bound_le[CSN_METRICS_BUCKETS] = {
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005", "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
    "0.5",   "1",      "2.5",     "5",      "10"};

static const char *const op_names[CSN_METRICS_OPS] = {"get", "set", "cas",
                                                      "touch", "destroy"};

/* ------------------------------------------------------------------------ */
/* Counting                                                                 */
/* ------------------------------------------------------------------------ */

static _Thread_local unsigned tls_shard; /* 1 + index; 0: none yet */
static atomic_uint next_shard;

static inline shard *my_shard(struct csn__metrics *m) {
  unsigned i = tls_shard;
  if (i == 0) {
    i = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
            SHARDS +
        1;
    tls_shard = i;
  }
  return &m->shards[i - 1];
}

static inline void add(_Atomic uint64_t *c, uint64_t v) {
  atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t load(const _Atomic uint64_t *c) {
  return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

static inline uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

int csn__metrics_init(csn_ctx *ctx) {
  struct csn__metrics *m;
  uintptr_t p;
  /* One block: the header, slack for the alignment, the shards. Zeroed
   * memory is a valid zero for lock-free atomics, which these are on every
   * platform we build for. */
  m = csn__calloc(1, sizeof *m + CACHE_LINE + SHARDS * sizeof(shard));
  if (m == NULL)
    return CSN_ENOMEM;
  p = (uintptr_t)(m + 1);
  p = (p + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1);
  m->shards = (shard *)p;
  ctx->metrics = m;
  return CSN_OK;
}

void csn__metrics_free(csn_ctx *ctx) {
  if (ctx == NULL)
    return;
  csn__free(ctx->metrics);
  ctx->metrics = NULL;
}

void csn__metrics_event(csn_ctx *ctx, csn__event ev) {
  if (ctx->metrics != NULL && (unsigned)ev < CSN__EV_COUNT)
    add(&my_shard(ctx->metrics)->count[ev], 1);
}

/* The end of a store call that started at t0 and returned rc: its time in
 * the op's histogram, its success under ok_counter (-1: none), its
 * failure under the op's errors. CSN_ENOENT, CSN_ECONFLICT and `answer`
 * are outcomes, not failures. Inline: each wrapper passes constants for
 * op, ok_counter and answer, and the tests on them fold away. */
static inline void observe(csn_ctx *ctx, int op, uint64_t t0, int rc,
                           int ok_counter, int answer) {
  struct csn__metrics *m = ctx->metrics;
  uint64_t dt = mono_ns() - t0;
  shard *sh;
  size_t b = 0;

  if (m == NULL)
    return;
  sh = my_shard(m);
  while (b < CSN_METRICS_BUCKETS && dt > bound_ns[b])
    b++;
  add(&sh->hist[op][b], 1);
  add(&sh->sum_ns[op], dt);
  if (rc >= 0) {
    if (ok_counter >= 0)
      add(&sh->count[ok_counter], 1);
  } else if (rc == CSN_ECONFLICT) {
    add(&sh->count[C_CAS_CONFLICT], 1);
  } else if (rc != CSN_ENOENT && rc != answer) {
    add(&sh->errors[op], 1);
  }
}

/* The core's ids are valid by construction (csn__store_get_valid), so the
 * wrappers skip the public functions' second check of every id. */
int csn__m_store_get(csn_ctx *ctx, const char *sid, char **json,
                     size_t *len) {
  uint64_t t0 = mono_ns();
  int rc = csn__store_get_valid(ctx->store, sid, json, len);
  /* An unreadable record is the caller's to count (unreadable). */
  observe(ctx, CSN_METRICS_OP_GET, t0, rc, -1, CSN_ECORRUPT);
  return rc;
}

int csn__m_store_set(csn_ctx *ctx, const char *sid, const char *json,
                     size_t len, int64_t expires_ms) {
  uint64_t t0 = mono_ns();
  int rc = csn__store_set_valid(ctx->store, sid, json, len, expires_ms);
  observe(ctx, CSN_METRICS_OP_SET, t0, rc, C_SAVED, CSN_OK);
  return rc;
}

int csn__m_store_cas(csn_ctx *ctx, const char *sid, const char *expected,
                     size_t elen, const char *json, size_t len,
                     int64_t expires_ms) {
  uint64_t t0 = mono_ns();
  int rc = csn__store_cas_valid(ctx->store, sid, expected, elen, json, len,
                               expires_ms);
  observe(ctx, CSN_METRICS_OP_CAS, t0, rc, C_SAVED, CSN_OK);
  return rc;
}

int csn__m_store_touch(csn_ctx *ctx, const char *sid, const char *json,
                       size_t len, int64_t expires_ms) {
  uint64_t t0 = mono_ns();
  int rc = csn__store_touch_valid(ctx->store, sid, json, len, expires_ms);
  observe(ctx, CSN_METRICS_OP_TOUCH, t0, rc, C_TOUCHED, CSN_OK);
  return rc;
}

int csn__m_store_destroy(csn_ctx *ctx, const char *sid) {
  uint64_t t0 = mono_ns();
  int rc = csn__store_destroy_valid(ctx->store, sid);
  observe(ctx, CSN_METRICS_OP_DESTROY, t0, rc, C_DESTROYED, CSN_OK);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

static int version_ok(int version) {
  return version >= 1 && version <= CSN_METRICS_VERSION;
}

int csn_ctx_metrics(const csn_ctx *ctx, csn_metrics *out) {
  uint64_t c[C_TOTAL];
  uint64_t hist[CSN_METRICS_OPS][CSN_METRICS_BUCKETS + 1];
  size_t s, i, op;

  if (ctx == NULL || out == NULL)
    return csn__set_error(CSN_EINVAL, "csn_ctx_metrics: NULL argument");
  if (out->version < 1)
    return csn__set_error(CSN_EINVAL,
                          "csn_ctx_metrics: set version to "
                          "CSN_METRICS_VERSION first");
  if (!version_ok(out->version))
    return csn__set_error(CSN_ENOTSUP,
                          "csn_ctx_metrics: version %d is newer than this "
                          "library's (%d)",
                          out->version, CSN_METRICS_VERSION);

  /* Version 1 is every member; a later version fills its own additions
   * only when out->version asks for them. */
  memset(c, 0, sizeof c);
  memset(hist, 0, sizeof hist);
  memset(out->store, 0, sizeof out->store);
  for (s = 0; ctx->metrics != NULL && s < SHARDS; s++) {
    const shard *sh = &ctx->metrics->shards[s];
    for (i = 0; i < C_TOTAL; i++)
      c[i] += load(&sh->count[i]);
    for (op = 0; op < CSN_METRICS_OPS; op++) {
      out->store[op].errors += load(&sh->errors[op]);
      out->store[op].sum_ns += load(&sh->sum_ns[op]);
      for (i = 0; i <= CSN_METRICS_BUCKETS; i++)
        hist[op][i] += load(&sh->hist[op][i]);
    }
  }
  /* Cumulative buckets and the count, from the same loaded values. */
  for (op = 0; op < CSN_METRICS_OPS; op++) {
    uint64_t run = 0;
    for (i = 0; i < CSN_METRICS_BUCKETS; i++) {
      run += hist[op][i];
      out->store[op].buckets[i] = run;
    }
    out->store[op].calls = run + hist[op][CSN_METRICS_BUCKETS];
  }
  out->sessions_created = c[CSN__EV_CREATED];
  out->sessions_loaded = c[CSN__EV_LOADED];
  out->sessions_saved = c[C_SAVED];
  out->sessions_touched = c[C_TOUCHED];
  out->touches_skipped = c[CSN__EV_TOUCH_SKIPPED];
  out->sessions_destroyed = c[C_DESTROYED];
  out->sessions_expired = c[CSN__EV_EXPIRED];
  out->sessions_rotated = c[CSN__EV_ROTATED];
  out->records_unreadable = c[CSN__EV_UNREADABLE];
  out->merges = c[CSN__EV_MERGED];
  out->merges_gone = c[CSN__EV_MERGE_GONE];
  out->cas_conflicts = c[C_CAS_CONFLICT];
  return CSN_OK;
}

uint64_t csn_metrics_bucket_ns(size_t i) {
  return i < CSN_METRICS_BUCKETS ? bound_ns[i] : 0;
}

const char *csn_metrics_op_name(int op) {
  return op >= 0 && op < CSN_METRICS_OPS ? op_names[op] : NULL;
}

/* ------------------------------------------------------------------------ */
/* Prometheus text exposition format 0.0.4                                  */
/* ------------------------------------------------------------------------ */

#define PREFIX_MAX 64

static int prefix_valid(const char *p) {
  size_t n = 0;
  for (; p[n] != '\0'; n++) {
    char ch = p[n];
    int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                ch == '_' || ch == ':';
    if (n == PREFIX_MAX || !(alpha || (n > 0 && ch >= '0' && ch <= '9')))
      return 0;
  }
  return n > 0;
}

/* Seconds from nanoseconds, exactly and without printf's %f, whose
 * decimal point is the locale's. */
static void put_seconds(csn__buf *b, uint64_t ns) {
  csn__buf_printf(b, "%" PRIu64 ".%09" PRIu64, ns / UINT64_C(1000000000),
                  ns % UINT64_C(1000000000));
}

typedef struct counter_def {
  const char *name; /* after the prefix, without _total */
  const char *help;
  size_t offset;    /* of the uint64_t in csn_metrics */
} counter_def;

#define COUNTER(name, member, help) {name, help, offsetof(csn_metrics, member)}

static const counter_def counters[] = {
    COUNTER("sessions_created", sessions_created,
            "Sessions generated: requests without a usable session cookie, "
            "and regenerate."),
    COUNTER("sessions_loaded", sessions_loaded,
            "Sessions read from the store for a request."),
    COUNTER("sessions_saved", sessions_saved,
            "Session records written to the store (set or compare-and-set)."),
    COUNTER("sessions_touched", sessions_touched,
            "Session expiries refreshed in the store (touch)."),
    COUNTER("sessions_touch_skipped", touches_skipped,
            "Store touches skipped by touch_after_ms."),
    COUNTER("sessions_destroyed", sessions_destroyed,
            "Session records removed from the store by the core."),
    COUNTER("sessions_expired", sessions_expired,
            "Sessions loaded past their absolute lifetime and replaced."),
    COUNTER("sessions_rotated", sessions_rotated,
            "Session ids rotated with the data kept."),
    COUNTER("sessions_unreadable", records_unreadable,
            "Stored records that were no session and were ignored."),
    COUNTER("merge_conflicts_resolved", merges,
            "Saves that met a concurrent change and were written merged."),
    COUNTER("merge_saves_dropped", merges_gone,
            "Saves dropped because the session was destroyed meanwhile."),
    COUNTER("store_cas_conflicts", cas_conflicts,
            "Compare-and-set calls that found the record changed."),
};

int csn_metrics_prometheus(const csn_metrics *m, const char *prefix,
                           char **out) {
  csn__buf b;
  size_t i, op;

  if (out != NULL)
    *out = NULL;
  if (m == NULL || out == NULL)
    return csn__set_error(CSN_EINVAL, "csn_metrics_prometheus: NULL "
                                      "argument");
  if (!version_ok(m->version))
    return csn__set_error(CSN_EINVAL,
                          "csn_metrics_prometheus: unknown version %d",
                          m->version);
  if (prefix == NULL)
    prefix = "csession";
  if (!prefix_valid(prefix))
    return csn__set_error(CSN_EINVAL,
                          "csn_metrics_prometheus: invalid metric prefix");

  csn__buf_init(&b);
  for (i = 0; i < CSN__ARRAY_SIZE(counters); i++) {
    const counter_def *d = &counters[i];
    uint64_t v;
    memcpy(&v, (const char *)m + d->offset, sizeof v);
    csn__buf_printf(&b,
                    "# HELP %s_%s_total %s\n# TYPE %s_%s_total counter\n"
                    "%s_%s_total %" PRIu64 "\n",
                    prefix, d->name, d->help, prefix, d->name, prefix,
                    d->name, v);
  }

  csn__buf_printf(&b,
                  "# HELP %s_store_errors_total Store calls that failed, by "
                  "operation (not found and conflicts are answers, not "
                  "errors).\n# TYPE %s_store_errors_total counter\n",
                  prefix, prefix);
  for (op = 0; op < CSN_METRICS_OPS; op++)
    csn__buf_printf(&b, "%s_store_errors_total{op=\"%s\"} %" PRIu64 "\n",
                    prefix, op_names[op], m->store[op].errors);

  csn__buf_printf(&b,
                  "# HELP %s_store_seconds Store call latency by "
                  "operation.\n# TYPE %s_store_seconds histogram\n",
                  prefix, prefix);
  for (op = 0; op < CSN_METRICS_OPS; op++) {
    const csn_metrics_store *st = &m->store[op];
    for (i = 0; i < CSN_METRICS_BUCKETS; i++)
      csn__buf_printf(&b,
                      "%s_store_seconds_bucket{op=\"%s\",le=\"%s\"} %" PRIu64
                      "\n",
                      prefix, op_names[op], bound_le[i], st->buckets[i]);
    csn__buf_printf(&b,
                    "%s_store_seconds_bucket{op=\"%s\",le=\"+Inf\"} %" PRIu64
                    "\n%s_store_seconds_sum{op=\"%s\"} ",
                    prefix, op_names[op], st->calls, prefix, op_names[op]);
    put_seconds(&b, st->sum_ns);
    csn__buf_printf(&b, "\n%s_store_seconds_count{op=\"%s\"} %" PRIu64 "\n",
                    prefix, op_names[op], st->calls);
  }

  *out = csn__buf_steal(&b, NULL);
  if (*out == NULL)
    return csn__set_error(CSN_ENOMEM, "csn_metrics_prometheus: out of "
                                      "memory");
  return CSN_OK;
}

int csn_ctx_metrics_prometheus(const csn_ctx *ctx, const char *prefix,
                               char **out) {
  csn_metrics m;
  int rc;
  if (out != NULL)
    *out = NULL;
  memset(&m, 0, sizeof m);
  m.version = CSN_METRICS_VERSION;
  if ((rc = csn_ctx_metrics(ctx, &m)) < 0)
    return rc;
  return csn_metrics_prometheus(&m, prefix, out);
}
