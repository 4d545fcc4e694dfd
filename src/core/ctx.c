/* ctx.c - the middleware instance: options, their validation, and the
 * per-secret signing state.
 *
 * express-session checks most options lazily (a bad sameSite or domain
 * only fails when a Set-Cookie is serialized, a bad maxAge when a session is
 * generated). A C server should learn about a typo when it starts, not when
 * the first user arrives, so everything is validated here and a context that
 * exists is known to produce well-formed cookies.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "csn_int.h"
#include "metrics.h"

/* A macro's value as a string literal. */
#define CTX_STR2(x) #x
#define CTX_STR(x) CTX_STR2(x)

void csn_options_init(csn_options *o) {
  memset(o, 0, sizeof *o);
  o->version = CSN_OPTIONS_VERSION;
  o->name = "connect.sid";
  o->resave = 1;             /* express-session's (deprecated) default */
  o->save_uninitialized = 1; /* likewise */
  o->rolling = 0;
  o->unset = CSN_UNSET_KEEP;
  o->proxy = CSN_PROXY_DEFAULT;
  o->cookie.max_age_ms = CSN_TIME_NONE;
  o->cookie.expires_ms = CSN_TIME_NONE;
  o->cookie.http_only = 1;
  o->cookie.secure = CSN_SECURE_OFF;
  o->cookie.same_site = CSN_SAMESITE_UNSET;
  o->cookie.priority = CSN_PRIORITY_UNSET;
  o->cookie.path = "/";
}

static int fail(char *errbuf, size_t errlen, int err, const char *msg) {
  if (errbuf && errlen) {
    snprintf(errbuf, errlen, "%s", msg);
  }
  return csn__set_error(err, "%s", msg);
}

/* Shared by csn_ctx_new() and the per-request cookie function. */
int csn__cookie_options_check(const csn_cookie_options *c, const char **msg) {
  if (c->secure < CSN_SECURE_OFF || c->secure > CSN_SECURE_AUTO) {
    *msg = "option cookie.secure must be off, on or auto";
    return CSN_EINVAL;
  }
  if (c->same_site < CSN_SAMESITE_UNSET || c->same_site > CSN_SAMESITE_AUTO) {
    *msg = "option sameSite is invalid";
    return CSN_EINVAL;
  }
  if (c->priority < CSN_PRIORITY_UNSET || c->priority > CSN_PRIORITY_HIGH) {
    *msg = "option priority is invalid";
    return CSN_EINVAL;
  }
  if (c->path != NULL && (c->path[0] == '\0' || !csn__cookie_path_valid(c->path))) {
    *msg = "option path is invalid";
    return CSN_EINVAL;
  }
  if (c->domain != NULL && !csn__cookie_domain_valid(c->domain)) {
    *msg = "option domain is invalid";
    return CSN_EINVAL;
  }
  /* maxAge: any number of milliseconds is valid (0 and negatives give an
   * already expired cookie, as in express), but the resulting Date must be
   * representable: JavaScript's range is +-8.64e15 ms. */
  if (c->max_age_ms != CSN_TIME_NONE &&
      (c->max_age_ms > CSN__TIME_MAX || c->max_age_ms < -CSN__TIME_MAX)) {
    *msg = "maxAge must be a number of milliseconds within the Date range";
    return CSN_EINVAL;
  }
  if (c->expires_ms != CSN_TIME_NONE &&
      (c->expires_ms > CSN__TIME_MAX || c->expires_ms < -CSN__TIME_MAX)) {
    *msg = "option expires is invalid";
    return CSN_EINVAL;
  }
  return CSN_OK;
}

int csn_ctx_new(csn_ctx **out, const csn_options *o, char *errbuf,
                size_t errlen) {
  csn_ctx *ctx;
  const char *msg = NULL;
  int rc;

  if (out == NULL || o == NULL)
    return fail(errbuf, errlen, CSN_EINVAL, "csn_ctx_new: NULL argument");
  *out = NULL;
  if (o->version < 1 || o->version > CSN_OPTIONS_VERSION)
    return fail(errbuf, errlen, CSN_EINVAL,
                "options not initialised with csn_options_init()");
  if (o->secrets == NULL || o->n_secrets == 0)
    return fail(errbuf, errlen, CSN_ENOSECRET,
                "secret option required for sessions");
  for (size_t i = 0; i < o->n_secrets; i++) {
    size_t len;
    if (o->secrets[i] == NULL)
      return fail(errbuf, errlen, CSN_ENOSECRET,
                  "secret option array must contain one or more strings");
    len = o->secret_lens ? o->secret_lens[i] : strlen(o->secrets[i]);
    if (len == 0)
      return fail(errbuf, errlen, CSN_ENOSECRET,
                  "secret must not be empty");
  }
  if (o->name == NULL || !csn__cookie_name_valid(o->name))
    return fail(errbuf, errlen, CSN_EINVAL, "argument name is invalid");
  if (o->unset != CSN_UNSET_KEEP && o->unset != CSN_UNSET_DESTROY)
    return fail(errbuf, errlen, CSN_EINVAL,
                "unset option must be \"destroy\" or \"keep\"");
  if (o->proxy < CSN_PROXY_DEFAULT || o->proxy > CSN_PROXY_NONE)
    return fail(errbuf, errlen, CSN_EINVAL,
                "proxy option must be CSN_PROXY_DEFAULT, _TRUST or _NONE");
  if ((rc = csn__cookie_options_check(&o->cookie, &msg)) < 0)
    return fail(errbuf, errlen, rc, msg);
  if (o->version >= 2 && (o->lifetime_ms < 0 || o->touch_after_ms < 0 ||
                          o->lifetime_ms > CSN__TIME_MAX ||
                          o->touch_after_ms > CSN__TIME_MAX))
    return fail(errbuf, errlen, CSN_EINVAL,
                "lifetime_ms and touch_after_ms must be 0 (off) or a "
                "positive number of milliseconds");

  ctx = csn__calloc(1, sizeof *ctx);
  if (ctx == NULL)
    return fail(errbuf, errlen, CSN_ENOMEM, "out of memory");
  ctx->nkeys = o->n_secrets;
  ctx->keys = csn__calloc(o->n_secrets, sizeof *ctx->keys);
  ctx->name = csn__strdup(o->name);
  ctx->cookie = o->cookie;
  ctx->cookie.domain = o->cookie.domain ? csn__strdup(o->cookie.domain) : NULL;
  ctx->cookie.path = csn__strdup(o->cookie.path ? o->cookie.path : "/");
  if (ctx->keys == NULL || ctx->name == NULL || ctx->cookie.path == NULL ||
      (o->cookie.domain && ctx->cookie.domain == NULL))
    goto oom;
  for (size_t i = 0; i < o->n_secrets; i++) {
    size_t len = o->secret_lens ? o->secret_lens[i] : strlen(o->secrets[i]);
    if ((rc = csn__hmac_key_init(&ctx->keys[i], o->secrets[i], len)) < 0) {
      csn_ctx_free(ctx);
      return fail(errbuf, errlen, rc, "cannot prepare the HMAC key");
    }
  }
  ctx->name_len = strlen(ctx->name);
  ctx->resave = o->resave ? 1 : 0;
  ctx->save_uninitialized = o->save_uninitialized ? 1 : 0;
  ctx->rolling = o->rolling ? 1 : 0;
  ctx->unset = o->unset;
  ctx->proxy = o->proxy;
  ctx->genid = o->genid;
  ctx->genid_ud = o->genid_userdata;
  ctx->cookie_fn = o->cookie_fn;
  ctx->cookie_fn_ud = o->cookie_fn_userdata;
  ctx->log = o->log;
  ctx->log_ud = o->log_userdata;
  ctx->clock = o->clock;
  ctx->clock_ud = o->clock_userdata;

  /* Fields added in options version 2 are read only from a struct that
   * has them. */
  ctx->last_write_wins = o->version >= 2 && o->last_write_wins ? 1 : 0;
  ctx->lifetime_ms = o->version >= 2 ? o->lifetime_ms : 0;
  ctx->touch_after_ms = o->version >= 2 ? o->touch_after_ms : 0;
  if (csn__metrics_init(ctx) < 0)
    goto oom;

  if (o->store) {
    if ((rc = csn__store_check(o->store)) < 0) {
      csn_ctx_free(ctx);
      return fail(errbuf, errlen, rc,
                  "store has an invalid method table (version or required "
                  "methods)");
    }
    ctx->store = o->store;
  } else {
    /* express-session's default: an in-process store, opened by scheme
     * like any other so that the core names no store. Bounded, unlike
     * express-session's: anonymous traffic alone could otherwise grow it
     * without limit (issue 15, finding 6); the two-tier eviction keeps
     * returning visitors when it is full. */
    rc = csn_store_open("memory://?max=" CTX_STR(CSN_DEFAULT_MEMORY_MAX),
                        &ctx->store, NULL, 0);
    if (rc < 0) {
      csn_ctx_free(ctx);
      return fail(errbuf, errlen, rc, "cannot create the MemoryStore");
    }
    ctx->own_store = 1;
  }
  *out = ctx;
  return CSN_OK;

oom:
  csn_ctx_free(ctx);
  return fail(errbuf, errlen, CSN_ENOMEM, "out of memory");
}

void csn_ctx_free(csn_ctx *ctx) {
  if (ctx == NULL)
    return;
  /* Extensions go first: their data may refer to what the context owns
   * (the store, the application's userdata), never the other way round. */
  for (size_t i = CSN__CTX_EXT_MAX; i-- > 0;) {
    if (ctx->ext[i].key != NULL && ctx->ext[i].free_fn != NULL)
      ctx->ext[i].free_fn(ctx->ext[i].data);
  }
  if (ctx->userdata_free)
    ctx->userdata_free(ctx->userdata);
  if (ctx->own_store)
    csn_store_free(ctx->store);
  if (ctx->keys) {
    for (size_t i = 0; i < ctx->nkeys; i++)
      csn__hmac_key_clear(&ctx->keys[i]);
  }
  csn__free(ctx->keys);
  csn__free(ctx->name);
  csn__free((char *)ctx->cookie.domain);
  csn__free((char *)ctx->cookie.path);
  csn__metrics_free(ctx);
  csn__free(ctx);
}

csn_store *csn_ctx_store(csn_ctx *ctx) {
  return ctx ? ctx->store : NULL;
}

void csn_ctx_set_userdata(csn_ctx *ctx, void *data, void (*free_fn)(void *)) {
  if (ctx == NULL)
    return;
  if (ctx->userdata_free && ctx->userdata != data)
    ctx->userdata_free(ctx->userdata);
  ctx->userdata = data;
  ctx->userdata_free = free_fn;
}

void *csn_ctx_userdata(const csn_ctx *ctx) {
  return ctx ? ctx->userdata : NULL;
}

/* Extension slots. A handful of adapters and extensions at most attach data
 * to one context, so a fixed array searched linearly is both the smallest
 * and the fastest answer; it is written only at start-up, which is why
 * csn_ctx_ext() can read it from worker threads without a lock. */
int csn_ctx_set_ext(csn_ctx *ctx, const void *key, void *data,
                    void (*free_fn)(void *)) {
  size_t i, slot = CSN__CTX_EXT_MAX;

  if (ctx == NULL || key == NULL)
    return csn__set_error(CSN_EINVAL, "csn_ctx_set_ext: NULL argument");
  for (i = 0; i < CSN__CTX_EXT_MAX; i++) {
    if (ctx->ext[i].key == key)
      break;
    if (ctx->ext[i].key == NULL && slot == CSN__CTX_EXT_MAX)
      slot = i;
  }
  if (i < CSN__CTX_EXT_MAX) {
    /* Replace (or remove): the old data's destructor runs once, and not
     * at all when the caller hands the same pointer back. */
    if (ctx->ext[i].free_fn != NULL && ctx->ext[i].data != data)
      ctx->ext[i].free_fn(ctx->ext[i].data);
    if (data == NULL) {
      ctx->ext[i].key = NULL;
      ctx->ext[i].free_fn = NULL;
    } else {
      ctx->ext[i].free_fn = free_fn;
    }
    ctx->ext[i].data = data;
    return CSN_OK;
  }
  if (data == NULL)
    return CSN_OK; /* removing what is not there */
  if (slot == CSN__CTX_EXT_MAX)
    return csn__set_error(CSN_ERANGE,
                          "csn_ctx_set_ext: all %d extension slots in use",
                          CSN__CTX_EXT_MAX);
  ctx->ext[slot].key = key;
  ctx->ext[slot].data = data;
  ctx->ext[slot].free_fn = free_fn;
  return CSN_OK;
}

void *csn_ctx_ext(const csn_ctx *ctx, const void *key) {
  if (ctx == NULL || key == NULL)
    return NULL;
  for (size_t i = 0; i < CSN__CTX_EXT_MAX; i++) {
    if (ctx->ext[i].key == key)
      return ctx->ext[i].data;
  }
  return NULL;
}

int64_t csn__ctx_now(const csn_ctx *ctx) {
  if (ctx && ctx->clock)
    return ctx->clock(ctx->clock_ud);
  return csn__now_ms();
}

/* The default log (stderr) writes at most CSN__LOG_PER_SECOND lines in a
 * second of the monotonic clock: while a store is down every request
 * fails, and a line for each (tens of thousands a second) would cost more
 * than the requests and bury the first ones. The lines left out are
 * counted, and the count is written before the next line that is. A log
 * hook gets every message. Process-wide, as stderr is; the window's reset
 * and its count are not one atomic step, so a line more or less may pass
 * at the turn of a second. */
#define CSN__LOG_PER_SECOND 20
static _Atomic int64_t log_second = -1;
static _Atomic int log_lines;
static _Atomic long log_dropped;

/* 1: write the line, after *dropped lines were left out; 0: leave it
 * out. */
static int log_take(long *dropped) {
  int64_t now = csn_mono_ms() / 1000;
  int64_t cur = atomic_load(&log_second);
  if (cur != now && atomic_compare_exchange_strong(&log_second, &cur, now))
    atomic_store(&log_lines, 0);
  if (atomic_fetch_add(&log_lines, 1) >= CSN__LOG_PER_SECOND) {
    atomic_fetch_add(&log_dropped, 1);
    return 0;
  }
  *dropped = atomic_exchange(&log_dropped, 0);
  return 1;
}

void csn_ctx_log(const csn_ctx *ctx, int err, const char *fmt, ...) {
  long dropped = 0;
  int hook = ctx != NULL && ctx->log != NULL;
  if (!hook && !log_take(&dropped)) return;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (hook) {
    ctx->log(err, msg, ctx->log_ud);
    return;
  }
  if (dropped > 0)
    fprintf(stderr,
            "csession: %ld more errors were not logged (at most %d lines "
            "a second)\n",
            dropped, CSN__LOG_PER_SECOND);
  fprintf(stderr, "csession: %s (%s)\n", msg, csn_err_name(err));
}
