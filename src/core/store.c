/* store.c - the store layer: opening stores by URL, the scheme registry,
 * per-thread error messages and the checked calls through the vtable.
 *
 * Everything the middleware asks of a store goes through csn_store_get() &
 * co. below, so this is the one place that checks arguments, validates ids
 * before they can become a path or a key, injects test faults and turns a
 * store's own message into csn_last_error(). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "csn_int.h"

/* ------------------------------------------------------------------------ */
/* Scheme registry                                                          */
/* ------------------------------------------------------------------------ */

/* A fixed table: there are only a handful of store kinds, and a table that
 * never moves cannot be torn by a reader. The mutex makes a late
 * registration safe as well, although the header only promises start-up
 * registration; opening a store is rare, so the lock costs nothing. */
#define SCHEME_MAX 32
#define REGISTRY_SIZE 32
/* An URL longer than this is not a store address but an attack or a bug. */
#define URL_MAX 4096

typedef struct scheme_entry {
  char scheme[SCHEME_MAX + 1];
  csn_store_open_fn open;
} scheme_entry;

static scheme_entry registry[REGISTRY_SIZE];
static size_t registry_len;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/* scheme = [a-z][a-z0-9+.-]* (RFC 3986 in lower case only: we are strict, an
 * upper-case scheme is reported rather than guessed at). Returns its length,
 * or 0 if `s` does not start with a valid scheme of at most SCHEME_MAX
 * characters. */
static size_t scheme_span(const char *s, size_t n) {
  size_t i = 0;
  if (n == 0 || s[0] < 'a' || s[0] > 'z') return 0;
  for (i = 1; i < n; i++) {
    char c = s[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
        c == '.' || c == '-')
      continue;
    break;
  }
  return i <= SCHEME_MAX ? i : 0;
}

static int scheme_valid(const char *scheme) {
  size_t n = strlen(scheme);
  return n > 0 && scheme_span(scheme, n) == n;
}

int csn_store_register(const char *scheme, csn_store_open_fn open) {
  size_t i;
  int rc = CSN_OK;
  if (scheme == NULL || open == NULL || !scheme_valid(scheme))
    return csn__set_error(CSN_EINVAL, "invalid store scheme");
  pthread_mutex_lock(&registry_lock);
  for (i = 0; i < registry_len; i++)
    if (strcmp(registry[i].scheme, scheme) == 0) break;
  if (i < registry_len) {
    registry[i].open = open; /* re-registering replaces the opener */
  } else if (registry_len < REGISTRY_SIZE) {
    memcpy(registry[registry_len].scheme, scheme, strlen(scheme) + 1);
    registry[registry_len].open = open;
    registry_len++;
  } else {
    rc = CSN_ERANGE;
  }
  pthread_mutex_unlock(&registry_lock);
  if (rc != CSN_OK)
    return csn__set_error(rc, "store scheme registry is full (%d schemes)",
                          REGISTRY_SIZE);
  return CSN_OK;
}

static csn_store_open_fn registry_find(const char *scheme) {
  csn_store_open_fn fn = NULL;
  size_t i;
  pthread_mutex_lock(&registry_lock);
  for (i = 0; i < registry_len; i++) {
    if (strcmp(registry[i].scheme, scheme) == 0) {
      fn = registry[i].open;
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  /* Stores that live in this library answer without registration (the
   * table is src/stores/builtin.c); a registered opener overrides them.
   * Stores in their own libraries are registered by the application, or
   * all at once by csn_stores_register_all() (libcsn_stores). */
  for (i = 0; fn == NULL && csn__builtin_stores[i].scheme != NULL; i++)
    if (strcmp(csn__builtin_stores[i].scheme, scheme) == 0)
      fn = csn__builtin_stores[i].open;
  return fn;
}

static int open_fail(int err, char *errbuf, size_t errlen, const char *msg,
                     const char *scheme) {
  if (scheme != NULL)
    return csn_store_fail(errbuf, errlen, err, "%s '%s'", msg, scheme);
  return csn_store_fail(errbuf, errlen, err, "%s", msg);
}

int csn_store_open(const char *url, csn_store **out, char *errbuf,
                   size_t errlen) {
  char scheme[SCHEME_MAX + 1];
  csn_store_open_fn fn;
  size_t n, i, slen;
  int rc;
  if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
  if (out == NULL)
    return open_fail(CSN_EINVAL, errbuf, errlen, "no output pointer", NULL);
  *out = NULL;
  if (url == NULL)
    return open_fail(CSN_EINVAL, errbuf, errlen, "no store URL", NULL);
  /* Bound the scan: strnlen never reads past URL_MAX + 1 bytes. */
  n = strnlen(url, URL_MAX + 1);
  if (n > URL_MAX)
    return open_fail(CSN_EINVAL, errbuf, errlen, "store URL is too long",
                     NULL);
  /* Control bytes have no business in an address, and letting them through
   * would put them into log lines and error messages. */
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c < 0x20 || c == 0x7f)
      return open_fail(CSN_EINVAL, errbuf, errlen,
                       "store URL contains a control character", NULL);
  }
  slen = scheme_span(url, n);
  if (slen == 0 || n - slen < 3 || memcmp(url + slen, "://", 3) != 0)
    return open_fail(CSN_EINVAL, errbuf, errlen,
                     "invalid store URL (expected scheme://...)", NULL);
  memcpy(scheme, url, slen);
  scheme[slen] = '\0';
  fn = registry_find(scheme);
  if (fn == NULL)
    return open_fail(CSN_ENOTSUP, errbuf, errlen, "unknown store scheme",
                     scheme);
  rc = fn(url, out, errbuf, errlen);
  if (rc == CSN_OK && (rc = csn__store_check(*out)) != CSN_OK) {
    /* An opener that hands back an unusable table is a bug in the store;
     * report it rather than crash on the first request. */
    csn_store *bad = *out;
    *out = NULL;
    if (bad != NULL && bad->m != NULL && bad->m->close != NULL)
      bad->m->close(bad);
    return open_fail(rc, errbuf, errlen, "store has an invalid method table",
                     scheme);
  }
  return rc;
}

int csn__store_check(const csn_store *st) {
  const csn_store_methods *m;
  if (st == NULL || (m = st->m) == NULL)
    return CSN_EINVAL;
  if (m->version < 1 || m->version > CSN_STORE_METHODS_VERSION)
    return CSN_ENOTSUP;
  if (m->get == NULL || m->set == NULL || m->destroy == NULL ||
      m->close == NULL)
    return CSN_EINVAL;
  return CSN_OK;
}

int csn_store_fail(char *errbuf, size_t errlen, int err, const char *fmt,
                   ...) {
  char tmp[512];
  va_list ap;
  if (fmt == NULL) {
    snprintf(tmp, sizeof tmp, "%s", csn_strerror(err));
  } else {
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
  }
  if (errbuf != NULL && errlen > 0)
    snprintf(errbuf, errlen, "%s", tmp);
  return csn__set_error(err, "%s", tmp);
}

/* ------------------------------------------------------------------------ */
/* Per-thread store messages                                                */
/* ------------------------------------------------------------------------ */

/* The message lives in the calling thread, not in the store: a store is
 * shared by every worker thread, and one thread's failure must not rewrite
 * the text another thread is about to log. It is keyed by the store that
 * failed so that csn_store_errmsg(b) does not show a's message. `gen` lets a
 * dispatch wrapper see whether the method recorded a message itself. */
#define STORE_MSG_MAX 512

typedef struct store_msg {
  const csn_store *st;
  unsigned long gen;
  char text[STORE_MSG_MAX];
} store_msg;

static _Thread_local store_msg tls_msg;

static void msg_vset(const csn_store *st, const char *fmt, va_list ap) {
  vsnprintf(tls_msg.text, sizeof tls_msg.text, fmt, ap);
  tls_msg.st = st;
  tls_msg.gen++;
}

static void msg_set(const csn_store *st, const char *fmt, ...)
    CSN__PRINTF(2, 3);
static void msg_set(const csn_store *st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  msg_vset(st, fmt, ap);
  va_end(ap);
}

int csn_store_set_error(csn_store *st, int err, const char *fmt, ...) {
  va_list ap;
  if (fmt == NULL) {
    msg_set(st, "%s", csn_strerror(err));
    return err;
  }
  va_start(ap, fmt);
  msg_vset(st, fmt, ap);
  va_end(ap);
  return err;
}

const char *csn_store_errmsg(const csn_store *st) {
  if (st == NULL || tls_msg.st != st) return "";
  return tls_msg.text;
}

const char *csn_store_name(const csn_store *st) {
  if (st == NULL || st->m == NULL || st->m->name == NULL) return "";
  return st->m->name;
}

void csn_store_free(csn_store *st) {
  if (st == NULL) return;
  /* A later store may be allocated at the same address; it must not
   * inherit this one's message. */
  if (tls_msg.st == st) {
    tls_msg.st = NULL;
    tls_msg.text[0] = '\0';
  }
  if (st->m != NULL && st->m->close != NULL) st->m->close(st);
}

/* ------------------------------------------------------------------------ */
/* Ids                                                                      */
/* ------------------------------------------------------------------------ */

/* Bytes an id may not contain: NUL and the other control characters, DEL,
 * and the path separators. The table serves ids shorter than a word and
 * the scalar fallback below. */
static const unsigned char id_forbidden[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1,
    [0x06] = 1, [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1,
    [0x0c] = 1, [0x0d] = 1, [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1,
    [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1, [0x16] = 1, [0x17] = 1,
    [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1, [0x1d] = 1,
    [0x1e] = 1, [0x1f] = 1, [0x7f] = 1, ['/'] = 1, ['\\'] = 1,
};

/* Eight bytes at a time ("SWAR"): a byte-by-byte table walk cost about 200
 * instructions per 32-byte id, and every request checks at least one id
 * (each store call checks it again). For a word x,
 *   (x - ONES * n) & ~x & HIGH  is non-zero iff some byte of x is < n
 * (n <= 0x80; a borrow only leaves a byte that is itself below n, so the
 * test as a whole is exact), and a byte equal to c is a byte of x ^ ONES*c
 * below 1. */
#define ID_ONES UINT64_C(0x0101010101010101)
#define ID_HIGH UINT64_C(0x8080808080808080)
static int id_word_bad(uint64_t x) {
  uint64_t dl = x ^ (ID_ONES * 0x7f), sl = x ^ (ID_ONES * '/'),
           bs = x ^ (ID_ONES * '\\');
  uint64_t t = ((x - ID_ONES * 0x20) & ~x) | ((dl - ID_ONES) & ~dl) |
               ((sl - ID_ONES) & ~sl) | ((bs - ID_ONES) & ~bs);
  return (t & ID_HIGH) != 0;
}

int csn__id_valid_n(const char *sid, size_t n) {
  const unsigned char *p = (const unsigned char *)sid;
  size_t i;
  if (n == 0 || n > CSN_ID_MAX) return 0;
  /* "." and "..": forbidden as whole ids (they are directory names). */
  if (p[0] == '.' && (n == 1 || (n == 2 && p[1] == '.'))) return 0;
  if (n < 8) {
    for (i = 0; i < n; i++)
      if (id_forbidden[p[i]]) return 0;
    return 1;
  }
#ifdef __SSE2__
  /* Sixteen bytes per step where SSE2 is there (every x86-64): a byte is
   * at least 0x20 iff the unsigned maximum of it and 0x20 is itself. */
  if (n >= 16) {
    const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f),
                  sl = _mm_set1_epi8('/'), bs = _mm_set1_epi8('\\');
    __m128i ok = _mm_cmpeq_epi8(sp, sp), bad = _mm_setzero_si128();
    for (i = 0;; i += 16) {
      /* The last block overlaps what was checked: in bounds, and a byte
       * checked twice changes nothing. */
      __m128i x = _mm_loadu_si128(
          (const __m128i *)(const void *)(p + (i + 16 <= n ? i : n - 16)));
      ok = _mm_and_si128(ok, _mm_cmpeq_epi8(_mm_max_epu8(x, sp), x));
      bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, del));
      bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, sl));
      bad = _mm_or_si128(bad, _mm_cmpeq_epi8(x, bs));
      if (i + 16 >= n)
        break;
    }
    return _mm_movemask_epi8(ok) == 0xffff && _mm_movemask_epi8(bad) == 0;
  }
#endif
  for (i = 0; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, p + i, sizeof x);
    if (id_word_bad(x)) return 0;
  }
  if (i < n) {
    /* The last word, overlapping bytes already checked: still in bounds,
     * and checking a byte twice changes nothing. */
    uint64_t x;
    memcpy(&x, p + n - 8, sizeof x);
    if (id_word_bad(x)) return 0;
  }
  return 1;
}

int csn_store_id_valid(const char *sid) {
  /* strnlen: a string longer than CSN_ID_MAX is refused without reading
   * it to its end. */
  return sid != NULL && csn__id_valid_n(sid, strnlen(sid, CSN_ID_MAX + 1));
}

/* ------------------------------------------------------------------------ */
/* Fault injection and the checked calls                                    */
/* ------------------------------------------------------------------------ */

/* Tests install the hook while no store call is in flight; the atomics only
 * make the unsynchronised read in every call well defined. */
static _Atomic(csn__store_fault_fn) fault_fn;
static _Atomic(void *) fault_ud;

void csn__store_set_fault(csn__store_fault_fn fn, void *ud) {
  atomic_store(&fault_ud, ud);
  atomic_store(&fault_fn, fn);
}

/* Common prologue: a usable store, the method present, and the fault hook
 * consulted. Returns CSN_OK to go ahead, or the code to return. */
static int pre_call(csn_store *st, int present, const char *op) {
  csn__store_fault_fn fn;
  int rc;
  if (st == NULL || st->m == NULL)
    return csn__set_error(CSN_EINVAL, "store %s: no store", op);
  if (!present) {
    msg_set(st, "%s", csn_strerror(CSN_ENOTSUP));
    return csn__set_error(CSN_ENOTSUP, "%s %s: operation not supported",
                          csn_store_name(st), op);
  }
  fn = atomic_load(&fault_fn);
  if (fn != NULL) {
    unsigned long gen = tls_msg.gen;
    rc = fn(st, op, atomic_load(&fault_ud));
    if (rc < 0) {
      if (tls_msg.gen == gen || tls_msg.st != st)
        msg_set(st, "injected fault: %s", csn_strerror(rc));
      return csn__set_error(rc, "%s %s: %s", csn_store_name(st), op,
                            tls_msg.text);
    }
  }
  return CSN_OK;
}

/* Epilogue for a method that failed: make sure csn_store_errmsg() says
 * something about this failure (not a stale message) and mirror it into
 * csn_last_error(). */
static int post_fail(csn_store *st, const char *op, unsigned long gen,
                     int rc) {
  if (tls_msg.gen == gen || tls_msg.st != st)
    msg_set(st, "%s", csn_strerror(rc));
  return csn__set_error(rc, "%s %s: %s", csn_store_name(st), op,
                        tls_msg.text);
}

static int bad_id(csn_store *st, const char *op) {
  msg_set(st, "invalid session id");
  return csn__set_error(CSN_EINVAL, "%s %s: invalid session id",
                        csn_store_name(st), op);
}

/* Each checked call below has a body taking `check`: 0 skips the id's
 * validation, for the core's calls through csn__store_*_valid() with an
 * id it validated once already (csn_int.h). */
static int store_get(csn_store *st, const char *sid, char **json,
                     size_t *len, int check) {
  size_t dummy;
  unsigned long gen;
  int rc;
  if (json != NULL) *json = NULL;
  if (len != NULL) *len = 0;
  rc = pre_call(st, st != NULL && st->m != NULL && st->m->get != NULL, "get");
  if (rc != CSN_OK) return rc;
  if (json == NULL)
    return csn__set_error(CSN_EINVAL, "%s get: no output pointer",
                          csn_store_name(st));
  if (check && !csn_store_id_valid(sid)) return bad_id(st, "get");
  gen = tls_msg.gen;
  rc = st->m->get(st, sid, json, len != NULL ? len : &dummy);
  /* Not found is an answer, not a failure: it must not clobber the
   * thread's last error. */
  if (rc < 0 && rc != CSN_ENOENT) return post_fail(st, "get", gen, rc);
  return rc;
}

static int store_set(csn_store *st, const char *sid, const char *json,
                     size_t len, int64_t expires_ms, int check) {
  unsigned long gen;
  int rc =
      pre_call(st, st != NULL && st->m != NULL && st->m->set != NULL, "set");
  if (rc != CSN_OK) return rc;
  if (json == NULL)
    return csn__set_error(CSN_EINVAL, "%s set: no record",
                          csn_store_name(st));
  if (check && !csn_store_id_valid(sid)) return bad_id(st, "set");
  gen = tls_msg.gen;
  rc = st->m->set(st, sid, json, len, expires_ms);
  if (rc < 0) return post_fail(st, "set", gen, rc);
  return rc;
}

static int store_destroy(csn_store *st, const char *sid, int check) {
  unsigned long gen;
  int rc = pre_call(st, st != NULL && st->m != NULL && st->m->destroy != NULL,
                    "destroy");
  if (rc != CSN_OK) return rc;
  if (check && !csn_store_id_valid(sid)) return bad_id(st, "destroy");
  gen = tls_msg.gen;
  rc = st->m->destroy(st, sid);
  if (rc < 0) return post_fail(st, "destroy", gen, rc);
  return rc;
}

static int store_touch(csn_store *st, const char *sid, const char *json,
                       size_t len, int64_t expires_ms, int check) {
  unsigned long gen;
  int rc = pre_call(st, st != NULL && st->m != NULL && st->m->touch != NULL,
                    "touch");
  if (rc != CSN_OK) return rc;
  if (json == NULL)
    return csn__set_error(CSN_EINVAL, "%s touch: no record",
                          csn_store_name(st));
  if (check && !csn_store_id_valid(sid)) return bad_id(st, "touch");
  gen = tls_msg.gen;
  rc = st->m->touch(st, sid, json, len, expires_ms);
  if (rc < 0) return post_fail(st, "touch", gen, rc);
  return rc;
}

int csn_store_get(csn_store *st, const char *sid, char **json, size_t *len) {
  return store_get(st, sid, json, len, 1);
}

int csn__store_get_valid(csn_store *st, const char *sid, char **json,
                         size_t *len) {
  return store_get(st, sid, json, len, 0);
}

int csn_store_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  return store_set(st, sid, json, len, expires_ms, 1);
}

int csn__store_set_valid(csn_store *st, const char *sid, const char *json,
                         size_t len, int64_t expires_ms) {
  return store_set(st, sid, json, len, expires_ms, 0);
}

int csn_store_destroy(csn_store *st, const char *sid) {
  return store_destroy(st, sid, 1);
}

int csn__store_destroy_valid(csn_store *st, const char *sid) {
  return store_destroy(st, sid, 0);
}

int csn_store_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  return store_touch(st, sid, json, len, expires_ms, 1);
}

int csn__store_touch_valid(csn_store *st, const char *sid, const char *json,
                           size_t len, int64_t expires_ms) {
  return store_touch(st, sid, json, len, expires_ms, 0);
}

int csn_store_clear(csn_store *st) {
  unsigned long gen;
  int rc = pre_call(st, st != NULL && st->m != NULL && st->m->clear != NULL,
                    "clear");
  if (rc != CSN_OK) return rc;
  gen = tls_msg.gen;
  rc = st->m->clear(st);
  if (rc < 0) return post_fail(st, "clear", gen, rc);
  return rc;
}

int csn_store_length(csn_store *st, size_t *count) {
  unsigned long gen;
  int rc = pre_call(st, st != NULL && st->m != NULL && st->m->length != NULL,
                    "length");
  if (rc != CSN_OK) return rc;
  if (count == NULL)
    return csn__set_error(CSN_EINVAL, "%s length: no output pointer",
                          csn_store_name(st));
  *count = 0;
  gen = tls_msg.gen;
  rc = st->m->length(st, count);
  if (rc < 0) return post_fail(st, "length", gen, rc);
  return rc;
}

int csn_store_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  unsigned long gen;
  int rc =
      pre_call(st, st != NULL && st->m != NULL && st->m->all != NULL, "all");
  if (rc != CSN_OK) return rc;
  if (fn == NULL)
    return csn__set_error(CSN_EINVAL, "%s all: no callback",
                          csn_store_name(st));
  gen = tls_msg.gen;
  rc = st->m->all(st, fn, userdata);
  if (rc < 0) return post_fail(st, "all", gen, rc);
  return rc;
}

int csn_store_prune(csn_store *st, size_t *removed) {
  size_t dummy = 0;
  unsigned long gen;
  int rc = pre_call(st, st != NULL && st->m != NULL && st->m->prune != NULL,
                    "prune");
  if (rc != CSN_OK) return rc;
  if (removed != NULL) *removed = 0;
  gen = tls_msg.gen;
  rc = st->m->prune(st, removed != NULL ? removed : &dummy);
  if (rc < 0) return post_fail(st, "prune", gen, rc);
  return rc;
}

/* all_expired is a version 3 member: as for cas below, a table built
 * against an older header ends before it, so the version is checked
 * before the pointer is read. */
int csn_store_all_expired(csn_store *st, csn_store_each_fn fn,
                          void *userdata) {
  unsigned long gen;
  int rc = pre_call(st,
                    st != NULL && st->m != NULL && st->m->version >= 3 &&
                        st->m->all_expired != NULL,
                    "all_expired");
  if (rc != CSN_OK) return rc;
  if (fn == NULL)
    return csn__set_error(CSN_EINVAL, "%s all_expired: no callback",
                          csn_store_name(st));
  gen = tls_msg.gen;
  rc = st->m->all_expired(st, fn, userdata);
  if (rc < 0) return post_fail(st, "all_expired", gen, rc);
  return rc;
}

/* Compare-and-set is a version 2 member: a table built against 0.1's header
 * ends before it, so the version is checked before the pointer is read. */
int csn_store_has_cas(const csn_store *st) {
  return st != NULL && st->m != NULL && st->m->version >= 2 &&
         st->m->cas != NULL;
}

static int store_cas(csn_store *st, const char *sid, const char *expected,
                     size_t expected_len, const char *json, size_t len,
                     int64_t expires_ms, int check) {
  unsigned long gen;
  int rc = pre_call(st, csn_store_has_cas(st), "cas");
  if (rc != CSN_OK) return rc;
  if (json == NULL || expected == NULL)
    return csn__set_error(CSN_EINVAL, "%s cas: no record",
                          csn_store_name(st));
  if (check && !csn_store_id_valid(sid)) return bad_id(st, "cas");
  gen = tls_msg.gen;
  rc = st->m->cas(st, sid, expected, expected_len, json, len, expires_ms);
  /* A conflict and a vanished record are answers the core acts on, not
   * failures to report. */
  if (rc < 0 && rc != CSN_ECONFLICT && rc != CSN_ENOENT)
    return post_fail(st, "cas", gen, rc);
  return rc;
}

int csn_store_cas(csn_store *st, const char *sid, const char *expected,
                  size_t expected_len, const char *json, size_t len,
                  int64_t expires_ms) {
  return store_cas(st, sid, expected, expected_len, json, len, expires_ms, 1);
}

int csn__store_cas_valid(csn_store *st, const char *sid, const char *expected,
                         size_t expected_len, const char *json, size_t len,
                         int64_t expires_ms) {
  return store_cas(st, sid, expected, expected_len, json, len, expires_ms, 0);
}
