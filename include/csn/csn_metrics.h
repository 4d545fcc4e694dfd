/* csn_metrics.h - what the session layer is doing, for operators: counters
 * of sessions and store calls, and the store's latency, per context.
 *
 * Every csn_ctx counts, from its creation, without being asked to:
 *
 *   sessions   created (a new visitor, regenerate), loaded from the store,
 *              saved, touched (expiry refreshed), touch skipped by
 *              touch_after_ms, destroyed, expired on load by lifetime_ms,
 *              rotated (csn_session_rotate), records found unreadable
 *   merges     saves that met a concurrent writer and were written merged
 *              (see last_write_wins in csn.h), saves dropped because the
 *              record had been destroyed meanwhile (logout wins), and the
 *              compare-and-set conflicts themselves
 *   store      per operation (get, set, cas, touch, destroy): calls that
 *              failed, and a latency histogram of every call
 *
 * Counting costs no lock: each counter is an atomic kept in per-thread
 * shards (cache-line separated), summed when they are read. A read
 * (csn_ctx_metrics) may run at any time, from any thread, beside requests.
 *
 *   csn_metrics m = {.version = CSN_METRICS_VERSION};
 *   if (csn_ctx_metrics(ctx, &m) == CSN_OK)
 *     printf("%llu sessions created\n",
 *            (unsigned long long)m.sessions_created);
 *
 *   char *text;                       // for GET /metrics
 *   if (csn_ctx_metrics_prometheus(ctx, NULL, &text) == CSN_OK) {
 *     ... answer 200, Content-Type CSN_METRICS_PROMETHEUS_TYPE ...
 *     csn_free(text);
 *   }
 *
 * Since 0.2. */
#ifndef CSN_METRICS_H
#define CSN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The store operations that are timed and counted, indexes of
 * csn_metrics.store[]. */
typedef enum csn_metrics_op {
  CSN_METRICS_OP_GET,
  CSN_METRICS_OP_SET,
  CSN_METRICS_OP_CAS,
  CSN_METRICS_OP_TOUCH,
  CSN_METRICS_OP_DESTROY,
  CSN_METRICS_OPS /* how many */
} csn_metrics_op;

/* The latency histogram's upper bounds, in seconds: 50 us to 10 s. The
 * count of calls slower than the last bound is csn_metrics_store.calls
 * minus buckets[CSN_METRICS_BUCKETS - 1] (Prometheus' le="+Inf"). */
#define CSN_METRICS_BUCKETS 17

/* 1 (0.2): the members below. A later version only adds members at the
 * end; a program built against this header keeps working with a later
 * library, which fills no more than the version the program asked for. */
#define CSN_METRICS_VERSION 1

/* The Content-Type of csn_metrics_prometheus()'s text. */
#define CSN_METRICS_PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One store operation. Times are from a monotonic clock and cover the
 * whole call through the store's method table, failures included. */
typedef struct csn_metrics_store {
  uint64_t calls;  /* every call, failed or not */
  uint64_t errors; /* calls that failed: any error except "not found"
                      (CSN_ENOENT), a compare-and-set conflict
                      (CSN_ECONFLICT) and, for get, an unreadable record
                      (CSN_ECORRUPT, counted as records_unreadable) */
  uint64_t sum_ns; /* total time spent in the calls, nanoseconds */
  /* Cumulative, like Prometheus' buckets: buckets[i] is the number of
   * calls that took at most csn_metrics_bucket_ns(i). */
  uint64_t buckets[CSN_METRICS_BUCKETS];
} csn_metrics_store;

/* A snapshot of a context's counters, each counted since csn_ctx_new().
 * Every member only grows (until it wraps at 2^64). */
typedef struct csn_metrics {
  int version; /* set to CSN_METRICS_VERSION before csn_ctx_metrics() */

  uint64_t sessions_created;   /* generated: no usable cookie, regenerate */
  uint64_t sessions_loaded;    /* read from the store for a request */
  uint64_t sessions_saved;     /* records written (set, or cas) */
  uint64_t sessions_touched;   /* expiries refreshed (store touch) */
  uint64_t touches_skipped;    /* store writes spared by touch_after_ms */
  uint64_t sessions_destroyed; /* records removed by the core: destroy,
                                  regenerate's and rotate's old ids, expired
                                  on load */
  uint64_t sessions_expired;   /* loaded past lifetime_ms, replaced */
  uint64_t sessions_rotated;   /* csn_session_rotate() */
  uint64_t records_unreadable; /* a stored record that was no session */
  uint64_t merges;             /* saves written merged after a conflict */
  uint64_t merges_gone;        /* saves dropped: the record was destroyed
                                  meanwhile (logout wins) */
  uint64_t cas_conflicts;      /* compare-and-set answered CSN_ECONFLICT */

  csn_metrics_store store[CSN_METRICS_OPS];
} csn_metrics;

/* Fill *out with ctx's counters. out->version must be set (1 ..
 * CSN_METRICS_VERSION); members of a later version than it asks for are
 * left alone. Returns CSN_OK, or CSN_EINVAL (NULL argument, version 0) or
 * CSN_ENOTSUP (a version this library does not know).
 *
 * Thread-safety: safe beside any number of requests on ctx. Each member is
 * exact for the calls that had finished when it was read; the members are
 * not read at one instant, so a request running meanwhile may show in one
 * and not yet in another (the histogram itself is always consistent: its
 * buckets and calls are read together from the same counts). */
CSN_API int csn_ctx_metrics(const csn_ctx *ctx, csn_metrics *out);

/* Bucket i's upper bound in nanoseconds (50000 ... 10000000000), or 0
 * when i >= CSN_METRICS_BUCKETS. */
CSN_API uint64_t csn_metrics_bucket_ns(size_t i);

/* "get", "set", "cas", "touch", "destroy"; NULL for an unknown op. */
CSN_API const char *csn_metrics_op_name(int op);

/* m in the Prometheus text exposition format 0.0.4 (served with
 * CSN_METRICS_PROMETHEUS_TYPE), every metric with its HELP and TYPE lines:
 *
 *   <prefix>_sessions_created_total            counter, and so on for
 *                                              each session member above
 *   <prefix>_store_errors_total{op="get"}      counter, per operation
 *   <prefix>_store_seconds_bucket{op="get",le="5e-05"}   histogram, per
 *   <prefix>_store_seconds_sum{op="get"}       operation, in seconds
 *   <prefix>_store_seconds_count{op="get"}
 *
 * prefix: NULL for "csession"; otherwise a metric name prefix
 * ([a-zA-Z_:][a-zA-Z0-9_:]*, at most 64 characters). The numbers are
 * written without the locale (always '.'). *out receives the text (yours,
 * csn_free), NUL-terminated. Returns CSN_OK, CSN_EINVAL (NULL m or out, a
 * bad prefix, m->version not 1 .. CSN_METRICS_VERSION) or CSN_ENOMEM.
 * Thread-safe (it reads only *m). */
CSN_API int csn_metrics_prometheus(const csn_metrics *m, const char *prefix,
                                   char **out);

/* csn_ctx_metrics() then csn_metrics_prometheus(): what GET /metrics
 * serves. Same results and thread-safety as those two. */
CSN_API int csn_ctx_metrics_prometheus(const csn_ctx *ctx, const char *prefix,
                                       char **out);

#ifdef __cplusplus
}
#endif

#endif /* CSN_METRICS_H */
