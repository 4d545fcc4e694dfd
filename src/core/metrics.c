/* metrics.c - pass-through until the counters land. */
#include "metrics.h"

int csn__metrics_init(csn_ctx *ctx) { (void)ctx; return CSN_OK; }
void csn__metrics_free(csn_ctx *ctx) { (void)ctx; }
void csn__metrics_event(csn_ctx *ctx, csn__event ev) { (void)ctx; (void)ev; }
int csn__m_store_get(csn_ctx *ctx, const char *sid, char **json, size_t *len) {
  return csn_store_get(ctx->store, sid, json, len);
}
int csn__m_store_set(csn_ctx *ctx, const char *sid, const char *json,
                     size_t len, int64_t expires_ms) {
  return csn_store_set(ctx->store, sid, json, len, expires_ms);
}
int csn__m_store_cas(csn_ctx *ctx, const char *sid, const char *expected,
                     size_t elen, const char *json, size_t len,
                     int64_t expires_ms) {
  return csn_store_cas(ctx->store, sid, expected, elen, json, len, expires_ms);
}
int csn__m_store_touch(csn_ctx *ctx, const char *sid, const char *json,
                       size_t len, int64_t expires_ms) {
  return csn_store_touch(ctx->store, sid, json, len, expires_ms);
}
int csn__m_store_destroy(csn_ctx *ctx, const char *sid) {
  return csn_store_destroy(ctx->store, sid);
}
