/* life_count_store.h - a store that forwards every call to a real store
 * and counts the calls, for the lifetime / lazy-touch / rotate tests
 * (tests/test_session_lifetime.c, test_session_rotate.c,
 * test_touch_after.c).
 *
 * Unlike the HTTP harness's counting store it needs no libmicrohttpd and it
 * offers compare-and-set only when the wrapped store has it, so the core
 * takes exactly the path it would take with the real store: what is
 * counted here is what the real store was asked to do. Header-only, one
 * translation unit per test; include after <cmocka.h>.
 */
#ifndef CSN_LIFE_COUNT_STORE_H
#define CSN_LIFE_COUNT_STORE_H

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "csn/csn.h"
#include "csn/csn_store.h"

typedef struct life_store {
  csn_store base; /* first member: (csn_store *) of this is the store */
  csn_store *inner;
  int own_inner;
  atomic_long gets, sets, cas, touches, destroys;
} life_store;

static inline life_store *life_of(csn_store *st) { return (life_store *)st; }

static int life_get(csn_store *st, const char *sid, char **json,
                    size_t *len) {
  atomic_fetch_add(&life_of(st)->gets, 1);
  return csn_store_get(life_of(st)->inner, sid, json, len);
}

static int life_set(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  atomic_fetch_add(&life_of(st)->sets, 1);
  return csn_store_set(life_of(st)->inner, sid, json, len, expires_ms);
}

static int life_destroy(csn_store *st, const char *sid) {
  atomic_fetch_add(&life_of(st)->destroys, 1);
  return csn_store_destroy(life_of(st)->inner, sid);
}

static int life_touch(csn_store *st, const char *sid, const char *json,
                      size_t len, int64_t expires_ms) {
  atomic_fetch_add(&life_of(st)->touches, 1);
  return csn_store_touch(life_of(st)->inner, sid, json, len, expires_ms);
}

static int life_cas(csn_store *st, const char *sid, const char *expected,
                    size_t elen, const char *json, size_t len,
                    int64_t expires_ms) {
  atomic_fetch_add(&life_of(st)->cas, 1);
  return csn_store_cas(life_of(st)->inner, sid, expected, elen, json, len,
                       expires_ms);
}

static int life_clear(csn_store *st) {
  return csn_store_clear(life_of(st)->inner);
}

static int life_length(csn_store *st, size_t *count) {
  return csn_store_length(life_of(st)->inner, count);
}

static void life_close(csn_store *st) {
  life_store *ls = life_of(st);
  if (ls->own_inner)
    csn_store_free(ls->inner);
  free(ls);
}

/* Two tables: the core asks csn_store_has_cas(), which looks at the table,
 * so a wrapper of a store without compare-and-set must not claim one. */
static const csn_store_methods life_methods_cas = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "life-count",
    .get = life_get,
    .set = life_set,
    .destroy = life_destroy,
    .touch = life_touch,
    .clear = life_clear,
    .length = life_length,
    .close = life_close,
    .cas = life_cas,
};

static const csn_store_methods life_methods_plain = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "life-count",
    .get = life_get,
    .set = life_set,
    .destroy = life_destroy,
    .touch = life_touch,
    .clear = life_clear,
    .length = life_length,
    .close = life_close,
};

/* Wrap `inner` (freed with the wrapper when own_inner). */
static inline life_store *life_store_new(csn_store *inner, int own_inner) {
  life_store *ls = calloc(1, sizeof *ls);
  assert_non_null(ls);
  ls->base.m = csn_store_has_cas(inner) ? &life_methods_cas
                                        : &life_methods_plain;
  ls->inner = inner;
  ls->own_inner = own_inner;
  return ls;
}

static inline void life_store_reset(life_store *ls) {
  atomic_store(&ls->gets, 0);
  atomic_store(&ls->sets, 0);
  atomic_store(&ls->cas, 0);
  atomic_store(&ls->touches, 0);
  atomic_store(&ls->destroys, 0);
}

/* Every call that writes the record: set, compare-and-set, touch. */
static inline long life_writes(life_store *ls) {
  return atomic_load(&ls->sets) + atomic_load(&ls->cas) +
         atomic_load(&ls->touches);
}

/* The stored text of sid (uncounted; csn_free it), or NULL if absent. */
static inline char *life_stored(life_store *ls, const char *sid) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(ls->inner, sid, &json, &len);
  if (rc == CSN_ENOENT)
    return NULL;
  assert_int_equal(rc, CSN_OK);
  return json;
}

/* A Cookie header for `sid` signed with `secret`, as a browser would send
 * it: "connect.sid=s%3A<id>.<sig>" with the value URL-encoded as
 * express-session's cookie.serialize does. For records put in the store
 * by hand (no Set-Cookie to copy). */
static inline void life_cookie_for(const char *sid, const char *secret,
                                   char *out, size_t size) {
  char signed_[512];
  size_t slen = sizeof signed_ - 1;
  size_t o;
  assert_int_equal(csn_cookie_sign(sid, strlen(sid), secret, strlen(secret),
                                   signed_, &slen),
                   CSN_OK);
  signed_[slen] = '\0';
  o = (size_t)snprintf(out, size, "connect.sid=s%%3A");
  for (size_t i = 0; i < slen; i++) {
    unsigned char c = (unsigned char)signed_[i];
    int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
                c == '~';
    assert_true(o + 4 < size);
    o += (size_t)snprintf(out + o, size - o, plain ? "%c" : "%%%02X", c);
  }
}

/* A context on a fresh MemoryStore behind the counting store, on the
 * test's clock (the store's too), and the browser's cookie: what the
 * lifetime and rotate tests start from. resave and rolling as given,
 * save_uninitialized off, maxAge max_age. */
typedef struct life_rig {
  life_store *ls;
  csn_ctx *ctx;
  char cookie[512];
} life_rig;

static inline void life_rig_open(life_rig *g, csn_clock_fn clock,
                                 const char *const *secrets, int64_t max_age,
                                 int64_t lifetime, int rolling, int resave) {
  csn_memory_options mo = {0};
  csn_store *mem = NULL;
  csn_options o;
  char err[256] = "";
  memset(g, 0, sizeof *g);
  mo.clock = clock;
  mo.prune_interval_ms = -1;
  assert_int_equal(csn_store_memory_new(&mo, &mem), CSN_OK);
  g->ls = life_store_new(mem, 1);
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.store = &g->ls->base;
  o.clock = clock;
  o.resave = resave;
  o.save_uninitialized = 0;
  o.rolling = rolling;
  o.cookie.max_age_ms = max_age;
  o.lifetime_ms = lifetime;
  if (csn_ctx_new(&g->ctx, &o, err, sizeof err) != CSN_OK)
    fail_msg("csn_ctx_new: %s", err);
}

static inline void life_rig_close(life_rig *g) {
  csn_ctx_free(g->ctx);
  csn_store_free(&g->ls->base);
}

/* Does the store hold sid? */
static inline int life_rig_stored(life_rig *g, const char *sid) {
  char *text = life_stored(g->ls, sid);
  csn_free(text);
  return text != NULL;
}

#endif /* CSN_LIFE_COUNT_STORE_H */
