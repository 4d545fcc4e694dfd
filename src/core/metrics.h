/* metrics.h - the core's private interface to its counters (metrics.c).
 *
 * The request lifecycle reports events and reaches the store through the
 * csn__m_store_*() wrappers, which time every call and count its outcome
 * for the context: saves, touches and destroys are counted there when they
 * succeed, store errors by operation when they fail (CSN_ENOENT and
 * CSN_ECONFLICT are answers, not errors). CSN_ECORRUPT from get is not
 * counted as a store error either: the caller counts it as
 * CSN__EV_UNREADABLE. A conflict answered by cas is counted (cas_conflicts).
 * The counters are read through csn_ctx_metrics() (csn/csn_metrics.h). */
#ifndef CSN_METRICS_INT_H
#define CSN_METRICS_INT_H

#include "csn_int.h"

typedef enum csn__event {
  CSN__EV_CREATED,       /* a fresh session was generated (new, regenerate) */
  CSN__EV_LOADED,        /* a stored session was loaded */
  CSN__EV_EXPIRED,       /* loaded but past lifetime_ms: replaced */
  CSN__EV_TOUCH_SKIPPED, /* touch_after spared a store write */
  CSN__EV_ROTATED,       /* csn_session_rotate() */
  CSN__EV_UNREADABLE,    /* a stored record could not be read */
  CSN__EV_MERGED,        /* merge.c: a save written merged after a conflict */
  CSN__EV_MERGE_GONE,    /* merge.c: save dropped, record destroyed meanwhile */
  CSN__EV_COUNT
} csn__event;

/* ctx.c calls these: init returns CSN_OK or CSN_ENOMEM. */
int csn__metrics_init(csn_ctx *ctx);
void csn__metrics_free(csn_ctx *ctx);

void csn__metrics_event(csn_ctx *ctx, csn__event ev);

int csn__m_store_get(csn_ctx *ctx, const char *sid, char **json, size_t *len);
int csn__m_store_set(csn_ctx *ctx, const char *sid, const char *json,
                     size_t len, int64_t expires_ms);
int csn__m_store_cas(csn_ctx *ctx, const char *sid, const char *expected,
                     size_t elen, const char *json, size_t len,
                     int64_t expires_ms);
int csn__m_store_touch(csn_ctx *ctx, const char *sid, const char *json,
                       size_t len, int64_t expires_ms);
int csn__m_store_destroy(csn_ctx *ctx, const char *sid);

#endif
