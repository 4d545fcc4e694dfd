/* memory.c - the in-process MemoryStore.
 *
 * Semantics are express-session's MemoryStore (spec stores.md section 2):
 * records are kept as JSON text, get returns a copy, an expired record is
 * never returned, touch replaces only the stored record's "cookie". Two
 * things are different on purpose:
 *
 *  - It is built for many worker threads. The table is split into SHARDS
 *    independent hash tables, each behind its own mutex, and an id picks its
 *    shard from a keyed hash (SipHash, random key per store) so that neither
 *    contention nor collisions can be steered from outside. There is no
 *    global lock; the only shared word is an atomic entry count.
 *
 *  - It does not leak. express-session's store only forgets a session when
 *    that id is read again, so abandoned sessions stay forever. Here a
 *    background thread sweeps every shard each prune interval, a few buckets
 *    per lock hold so requests never wait behind a whole-table scan, and
 *    every insert also sweeps a couple of buckets of its own shard, so even
 *    without the thread the table stays near its live size.
 *
 * Capacity (max_entries): when the store is full a new id evicts the entry
 * that expires soonest (already expired entries first, then the ones whose
 * cookie runs out first; CSN_TIME_NONE counts as never). Rejecting with
 * CSN_ENOMEM was the alternative, but it would turn a full cache into an
 * outage for new visitors, while eviction only logs out the session closest
 * to expiring anyway. Finding the global minimum would mean scanning every
 * shard on every insert, so the choice is made per shard: the inserting
 * shard gives up its soonest entry if it holds at least its fair share
 * (max / SHARDS), otherwise the first shard that does gives up its own. The
 * count can overshoot max by at most the number of threads inserting at the
 * same instant into an otherwise empty store, never more. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "csn_int.h"

#define SHARDS 64
#define SHARD_BITS 6
#define BUCKETS_MIN 16
/* Buckets examined per lock hold by the background sweep and by prune(). */
#define SWEEP_CHUNK 64
/* Buckets examined by each insert (the amortised sweep). */
#define SWEEP_ON_SET 2
#define PRUNE_DEFAULT_MS 60000
/* A full-store expired sweep on the insert path runs at most this often. */
#define FULL_SWEEP_GAP_MS 1000
/* An optimistic touch retries this often before merging under the lock. */
#define TOUCH_RETRIES 8

typedef struct mem_entry {
  struct mem_entry *next;
  uint64_t hash;
  int64_t expires; /* epoch ms, CSN_TIME_NONE = never */
  uint64_t ver;    /* bumped on every change (optimistic touch) */
  char *json;      /* NUL-terminated copy of the record */
  size_t len;
  size_t sid_len;
  char sid[]; /* NUL-terminated */
} mem_entry;

typedef struct mem_shard {
  pthread_mutex_t lock;
  mem_entry **buckets;
  size_t nbuckets; /* a power of two */
  size_t count;
  size_t cursor; /* next bucket for the amortised sweep */
  /* Keeps two hot shard locks off one cache line. */
  char pad[64];
} mem_shard;

typedef struct mem_store {
  csn_store base; /* first: the vtable */
  uint64_t k0, k1;
  size_t max_entries;
  atomic_size_t total; /* entries in the table, expired or not */
  _Atomic int64_t last_full_sweep;
  csn_clock_fn clock;
  void *clock_ud;
  int64_t interval_ms;
  /* The background sweeper and what stops it. */
  int has_thread;
  pthread_t thread;
  pthread_mutex_t ctl_lock;
  pthread_cond_t ctl_cond;
  int stop;
  mem_shard shards[SHARDS];
} mem_store;

/* ------------------------------------------------------------------------ */
/* SipHash-2-4 (Aumasson & Bernstein), keyed per store                      */
/* ------------------------------------------------------------------------ */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) \
  do {                           \
    v0 += v1;                    \
    v1 = ROTL(v1, 13);           \
    v1 ^= v0;                    \
    v0 = ROTL(v0, 32);           \
    v2 += v3;                    \
    v3 = ROTL(v3, 16);           \
    v3 ^= v2;                    \
    v0 += v3;                    \
    v3 = ROTL(v3, 21);           \
    v3 ^= v0;                    \
    v2 += v1;                    \
    v1 = ROTL(v1, 17);           \
    v1 ^= v2;                    \
    v2 = ROTL(v2, 32);           \
  } while (0)

static uint64_t load_le64(const unsigned char *p) {
  uint64_t v = 0;
  int i;
  for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t siphash(uint64_t k0, uint64_t k1, const void *data,
                        size_t n) {
  const unsigned char *p = data;
  uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
  uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
  uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
  uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
  uint64_t b = (uint64_t)n << 56;
  size_t left = n & 7, i;
  const unsigned char *end = p + (n - left);
  for (; p != end; p += 8) {
    uint64_t m = load_le64(p);
    v3 ^= m;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
  }
  for (i = 0; i < left; i++) b |= (uint64_t)p[i] << (8 * i);
  v3 ^= b;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

/* ------------------------------------------------------------------------ */
/* Shard primitives (all called with the shard locked)                      */
/* ------------------------------------------------------------------------ */

static int64_t mem_now(const mem_store *ms) {
  return ms->clock != NULL ? ms->clock(ms->clock_ud) : csn__now_ms();
}

static int expired(const mem_entry *e, int64_t now) {
  return e->expires != CSN_TIME_NONE && e->expires <= now;
}

/* CSN_TIME_NONE is INT64_MIN, which would sort first; it means "never". */
static int64_t expiry_key(const mem_entry *e) {
  return e->expires == CSN_TIME_NONE ? INT64_MAX : e->expires;
}

static mem_shard *shard_of(mem_store *ms, uint64_t h) {
  return &ms->shards[h >> (64 - SHARD_BITS)];
}

static mem_entry **find_slot(mem_shard *sh, uint64_t h, const char *sid,
                             size_t sid_len) {
  mem_entry **pp = &sh->buckets[h & (sh->nbuckets - 1)];
  for (; *pp != NULL; pp = &(*pp)->next) {
    mem_entry *e = *pp;
    if (e->hash == h && e->sid_len == sid_len &&
        memcmp(e->sid, sid, sid_len) == 0)
      return pp;
  }
  return pp;
}

/* Unlink *pp onto `dead` (freed by the caller after unlocking, so the lock
 * is never held across free() of a large record). */
static void unlink_entry(mem_store *ms, mem_shard *sh, mem_entry **pp,
                         mem_entry **dead) {
  mem_entry *e = *pp;
  *pp = e->next;
  e->next = *dead;
  *dead = e;
  sh->count--;
  atomic_fetch_sub(&ms->total, 1);
}

static void free_list(mem_entry *e) {
  while (e != NULL) {
    mem_entry *next = e->next;
    csn__free(e->json);
    csn__free(e);
    e = next;
  }
}

/* Double the bucket array once the load factor passes 1. A failed
 * allocation is harmless: the chains just get longer. */
static void maybe_grow(mem_shard *sh) {
  mem_entry **nb;
  size_t n, i;
  if (sh->count <= sh->nbuckets || sh->nbuckets > SIZE_MAX / 2 / sizeof *nb)
    return;
  n = sh->nbuckets * 2;
  nb = csn__calloc(n, sizeof *nb);
  if (nb == NULL) return;
  for (i = 0; i < sh->nbuckets; i++) {
    mem_entry *e = sh->buckets[i];
    while (e != NULL) {
      mem_entry *next = e->next;
      size_t j = e->hash & (n - 1);
      e->next = nb[j];
      nb[j] = e;
      e = next;
    }
  }
  csn__free(sh->buckets);
  sh->buckets = nb;
  sh->nbuckets = n;
  sh->cursor &= n - 1;
}

/* Remove expired entries from buckets [from, to). Returns how many. */
static size_t sweep_range(mem_store *ms, mem_shard *sh, size_t from,
                          size_t to, int64_t now, mem_entry **dead) {
  size_t removed = 0, i;
  if (to > sh->nbuckets) to = sh->nbuckets;
  for (i = from; i < to; i++) {
    mem_entry **pp = &sh->buckets[i];
    while (*pp != NULL) {
      if (expired(*pp, now)) {
        unlink_entry(ms, sh, pp, dead);
        removed++;
      } else {
        pp = &(*pp)->next;
      }
    }
  }
  return removed;
}

/* Evict the entry of `sh` that expires soonest. Returns 1 if one went. */
static int evict_soonest(mem_store *ms, mem_shard *sh, mem_entry **dead) {
  mem_entry **best = NULL;
  size_t i;
  for (i = 0; i < sh->nbuckets; i++) {
    mem_entry **pp;
    for (pp = &sh->buckets[i]; *pp != NULL; pp = &(*pp)->next)
      if (best == NULL || expiry_key(*pp) < expiry_key(*best)) best = pp;
  }
  if (best == NULL) return 0;
  unlink_entry(ms, sh, best, dead);
  return 1;
}

/* Sweep a whole shard for expired entries, SWEEP_CHUNK buckets per lock
 * hold. If the table grows half-way, a few entries move behind the sweep
 * and wait for the next one; that is fine for a cleanup pass. */
static size_t sweep_shard(mem_store *ms, mem_shard *sh, int64_t now) {
  size_t pos = 0, removed = 0;
  for (;;) {
    mem_entry *dead = NULL;
    int done;
    pthread_mutex_lock(&sh->lock);
    done = pos >= sh->nbuckets;
    if (!done) removed += sweep_range(ms, sh, pos, pos + SWEEP_CHUNK, now,
                                      &dead);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
    if (done) return removed;
    pos += SWEEP_CHUNK;
  }
}

static size_t sweep_all(mem_store *ms, int64_t now) {
  size_t removed = 0, i;
  for (i = 0; i < SHARDS; i++) removed += sweep_shard(ms, &ms->shards[i], now);
  return removed;
}

/* ------------------------------------------------------------------------ */
/* Capacity                                                                 */
/* ------------------------------------------------------------------------ */

/* Take one unit of the max_entries budget, if any is left. */
static int reserve_slot(mem_store *ms) {
  size_t n = atomic_load(&ms->total);
  while (n < ms->max_entries)
    if (atomic_compare_exchange_weak(&ms->total, &n, n + 1)) return 1;
  return 0;
}

static int evict_in(mem_store *ms, mem_shard *sh, size_t fair, int any) {
  mem_entry *dead = NULL;
  int ok = 0;
  pthread_mutex_lock(&sh->lock);
  if (sh->count > 0 && (any || sh->count >= fair))
    ok = evict_soonest(ms, sh, &dead);
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);
  return ok;
}

/* Called with no lock held when the store is full: free one slot and take
 * it. Expired entries go first (a rate-limited full sweep), then the
 * soonest-expiring entry of a shard holding at least its fair share,
 * starting with our own. If nothing could be evicted (the entries are all
 * in flight in other threads), the slot is taken anyway: the overshoot is
 * bounded by the number of concurrent inserters. */
static void make_room(mem_store *ms, size_t own, int64_t now) {
  size_t fair = (ms->max_entries + SHARDS - 1) / SHARDS;
  int64_t last = atomic_load(&ms->last_full_sweep);
  int pass;
  /* INT64_MIN is "never swept"; compare before subtracting (no overflow). */
  if ((last == INT64_MIN || now < last || now - last >= FULL_SWEEP_GAP_MS) &&
      atomic_compare_exchange_strong(&ms->last_full_sweep, &last, now)) {
    sweep_all(ms, now);
    if (reserve_slot(ms)) return;
  }
  for (pass = 0; pass < 2; pass++) {
    size_t k;
    for (k = 0; k < SHARDS; k++) {
      mem_shard *sh = &ms->shards[(own + k) % SHARDS];
      if (!evict_in(ms, sh, fair, pass == 1)) continue;
      if (reserve_slot(ms)) return;
      k--; /* still full (another thread took the slot): try here again */
    }
  }
  atomic_fetch_add(&ms->total, 1);
}

/* ------------------------------------------------------------------------ */
/* Methods                                                                  */
/* ------------------------------------------------------------------------ */

static int mem_get(csn_store *st, const char *sid, char **json,
                   size_t *len) {
  mem_store *ms = (mem_store *)st;
  size_t n;
  uint64_t h;
  mem_shard *sh;
  mem_entry **pp, *dead = NULL;
  int64_t now;
  int rc = CSN_ENOENT;
  if (!csn_store_id_valid(sid))
    return csn_store_set_error(st, CSN_EINVAL, "invalid session id");
  n = strlen(sid);
  h = siphash(ms->k0, ms->k1, sid, n);
  sh = shard_of(ms, h);
  now = mem_now(ms);
  pthread_mutex_lock(&sh->lock);
  pp = find_slot(sh, h, sid, n);
  if (*pp != NULL) {
    if (expired(*pp, now)) {
      unlink_entry(ms, sh, pp, &dead);
    } else {
      char *copy = csn__malloc((*pp)->len + 1);
      if (copy == NULL) {
        rc = CSN_ENOMEM;
      } else {
        memcpy(copy, (*pp)->json, (*pp)->len + 1);
        *json = copy;
        *len = (*pp)->len;
        rc = CSN_OK;
      }
    }
  }
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);
  if (rc == CSN_ENOMEM)
    return csn_store_set_error(st, rc, "out of memory copying a record");
  return rc;
}

static mem_entry *entry_new(uint64_t h, const char *sid, size_t n,
                            char *json, size_t len, int64_t expires) {
  mem_entry *e = csn__malloc(sizeof *e + n + 1);
  if (e == NULL) return NULL;
  e->next = NULL;
  e->hash = h;
  e->expires = expires;
  e->ver = 0;
  e->json = json;
  e->len = len;
  e->sid_len = n;
  memcpy(e->sid, sid, n + 1);
  return e;
}

/* Replace an entry's record in place; returns the old text to free. */
static char *entry_replace(mem_entry *e, char *json, size_t len,
                           int64_t expires) {
  char *old = e->json;
  e->json = json;
  e->len = len;
  e->expires = expires;
  e->ver++;
  return old;
}

static int mem_set(csn_store *st, const char *sid, const char *json,
                   size_t len, int64_t expires_ms) {
  mem_store *ms = (mem_store *)st;
  size_t n;
  uint64_t h;
  mem_shard *sh;
  mem_entry **pp, *dead = NULL, *e;
  char *copy, *old = NULL;
  int64_t now;
  if (!csn_store_id_valid(sid))
    return csn_store_set_error(st, CSN_EINVAL, "invalid session id");
  if (len == SIZE_MAX)
    return csn_store_set_error(st, CSN_ENOMEM, "record too large");
  /* Copy and allocate before locking: the lock then covers pointer work
   * only, whatever the record's size. */
  copy = csn__malloc(len + 1);
  if (copy == NULL)
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  memcpy(copy, json, len);
  copy[len] = '\0';
  n = strlen(sid);
  e = entry_new(0, sid, n, copy, len, expires_ms);
  if (e == NULL) {
    csn__free(copy);
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  }
  h = siphash(ms->k0, ms->k1, sid, n);
  e->hash = h;
  sh = shard_of(ms, h);
  now = mem_now(ms);

  pthread_mutex_lock(&sh->lock);
  pp = find_slot(sh, h, sid, n);
  if (*pp != NULL) {
    old = entry_replace(*pp, copy, len, expires_ms);
    pthread_mutex_unlock(&sh->lock);
    csn__free(old);
    csn__free(e);
    return CSN_OK;
  }
  /* The amortised sweep: a few buckets of this shard on every insert. */
  sweep_range(ms, sh, sh->cursor, sh->cursor + SWEEP_ON_SET, now, &dead);
  sh->cursor = (sh->cursor + SWEEP_ON_SET) & (sh->nbuckets - 1);
  if (ms->max_entries == 0 || reserve_slot(ms)) {
    if (ms->max_entries == 0) atomic_fetch_add(&ms->total, 1);
    pp = find_slot(sh, h, sid, n); /* the sweep may have moved the tail */
    *pp = e;
    sh->count++;
    maybe_grow(sh);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
    return CSN_OK;
  }
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);

  /* Full: make room with no lock held (eviction may visit other shards),
   * then look again, since another thread may have inserted this id. */
  make_room(ms, (size_t)(h >> (64 - SHARD_BITS)), now);
  pthread_mutex_lock(&sh->lock);
  pp = find_slot(sh, h, sid, n);
  if (*pp != NULL) {
    old = entry_replace(*pp, copy, len, expires_ms);
    atomic_fetch_sub(&ms->total, 1); /* give the slot back */
    pthread_mutex_unlock(&sh->lock);
    csn__free(old);
    csn__free(e);
    return CSN_OK;
  }
  *pp = e;
  sh->count++;
  maybe_grow(sh);
  pthread_mutex_unlock(&sh->lock);
  return CSN_OK;
}

static int mem_destroy(csn_store *st, const char *sid) {
  mem_store *ms = (mem_store *)st;
  size_t n;
  uint64_t h;
  mem_shard *sh;
  mem_entry **pp, *dead = NULL;
  if (!csn_store_id_valid(sid))
    return csn_store_set_error(st, CSN_EINVAL, "invalid session id");
  n = strlen(sid);
  h = siphash(ms->k0, ms->k1, sid, n);
  sh = shard_of(ms, h);
  pthread_mutex_lock(&sh->lock);
  pp = find_slot(sh, h, sid, n);
  if (*pp != NULL) unlink_entry(ms, sh, pp, &dead);
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* touch: replace the stored record's "cookie", keep everything else        */
/* ------------------------------------------------------------------------ */

/* Why splice text instead of json_dumps()?
 *
 * touch must keep the stored members exactly as they are: that is what
 * makes it safe against the lost update of two concurrent requests (the
 * other request's set() wrote the data; our touch must only move the
 * expiry). Re-serialising with jansson would keep the values but not their
 * text: a number written by Node as 0.1 comes back as 0.10000000000000001,
 * and the record would drift every time it is touched. So both texts are
 * first validated with jansson (the scanner below may then assume
 * well-formed JSON, although it never reads out of bounds either way), the
 * byte span of the top-level "cookie" value is located in each, and the new
 * record is stored[..start) + new cookie + stored[end..). As in JSON.parse,
 * the last of duplicate keys is the one that counts. */

static void skip_ws(const char *s, size_t n, size_t *i) {
  while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' ||
                    s[*i] == '\r'))
    (*i)++;
}

/* s[*i] is '"': move past the closing quote. */
static int skip_string(const char *s, size_t n, size_t *i) {
  for ((*i)++; *i < n; (*i)++) {
    if (s[*i] == '\\') {
      (*i)++;
    } else if (s[*i] == '"') {
      (*i)++;
      return 0;
    }
  }
  return -1;
}

static int skip_value(const char *s, size_t n, size_t *i) {
  size_t depth = 0;
  if (*i >= n) return -1;
  if (s[*i] == '"') return skip_string(s, n, i);
  if (s[*i] != '{' && s[*i] != '[') {
    while (*i < n && strchr(",}] \t\r\n", s[*i]) == NULL) (*i)++;
    return 0;
  }
  while (*i < n) {
    char c = s[*i];
    if (c == '"') {
      if (skip_string(s, n, i) != 0) return -1;
      continue;
    }
    if (c == '{' || c == '[') depth++;
    if (c == '}' || c == ']') {
      depth--;
      if (depth == 0) {
        (*i)++;
        return 0;
      }
    }
    (*i)++;
  }
  return -1;
}

/* Is the raw (still escaped) key text equal to "cookie"? */
static int key_is_cookie(const char *k, size_t n) {
  json_t *j;
  int eq;
  char *quoted;
  if (memchr(k, '\\', n) == NULL) return n == 6 && memcmp(k, "cookie", 6) == 0;
  /* An escaped key ("\u0063ookie") is rare: let the JSON reader decode it. */
  quoted = csn__malloc(n + 2);
  if (quoted == NULL) return -1;
  quoted[0] = '"';
  memcpy(quoted + 1, k, n);
  quoted[n + 1] = '"';
  j = csn__json_parse(quoted, n + 2, NULL);
  csn__free(quoted);
  if (j == NULL) return -1;
  eq = json_is_string(j) && json_string_length(j) == 6 &&
       memcmp(json_string_value(j), "cookie", 6) == 0;
  json_decref(j);
  return eq;
}

/* Locate the top-level "cookie" value of an object text. *found is 0 if
 * the object has none; *open is the index of its '{'. -1 if malformed. */
static int find_cookie(const char *s, size_t n, size_t *open, int *found,
                       size_t *vs, size_t *ve) {
  size_t i = 0;
  *found = 0;
  skip_ws(s, n, &i);
  if (i >= n || s[i] != '{') return -1;
  *open = i++;
  skip_ws(s, n, &i);
  if (i < n && s[i] == '}') return 0;
  while (i < n) {
    size_t ks, ke, start;
    int is_cookie;
    if (s[i] != '"') return -1;
    ks = i + 1;
    if (skip_string(s, n, &i) != 0) return -1;
    ke = i - 1;
    skip_ws(s, n, &i);
    if (i >= n || s[i] != ':') return -1;
    i++;
    skip_ws(s, n, &i);
    start = i;
    if (skip_value(s, n, &i) != 0) return -1;
    is_cookie = key_is_cookie(s + ks, ke - ks);
    if (is_cookie < 0) return -1;
    if (is_cookie) {
      *found = 1;
      *vs = start;
      *ve = i;
    }
    skip_ws(s, n, &i);
    if (i < n && s[i] == ',') {
      i++;
      skip_ws(s, n, &i);
      continue;
    }
    if (i < n && s[i] == '}') return 0;
    return -1;
  }
  return -1;
}

static int is_object_text(const char *s, size_t n) {
  json_t *j = csn__json_parse(s, n, NULL);
  int ok = j != NULL && json_is_object(j);
  json_decref(j);
  return ok;
}

/* Build the touched record from the stored text and the caller's record.
 * Returns CSN_OK with *out (csn__free), CSN_EINVAL for a bad new record,
 * CSN_ECORRUPT for a bad stored one, CSN_ENOMEM. */
static int merge_cookie(csn_store *st, const char *stored, size_t slen,
                        const char *fresh, size_t flen, char **out,
                        size_t *olen) {
  size_t sopen, svs = 0, sve = 0, fopen, fvs = 0, fve = 0;
  int sfound, ffound;
  csn__buf b;
  if (!is_object_text(fresh, flen) ||
      find_cookie(fresh, flen, &fopen, &ffound, &fvs, &fve) != 0 || !ffound)
    return csn_store_set_error(st, CSN_EINVAL,
                               "touch: record has no cookie object");
  if (!is_object_text(stored, slen) ||
      find_cookie(stored, slen, &sopen, &sfound, &svs, &sve) != 0)
    return csn_store_set_error(st, CSN_ECORRUPT,
                               "touch: stored record is not a JSON object");
  csn__buf_init(&b);
  if (sfound) {
    csn__buf_append(&b, stored, svs);
    csn__buf_append(&b, fresh + fvs, fve - fvs);
    csn__buf_append(&b, stored + sve, slen - sve);
  } else {
    /* No cookie yet: add it as the first member, where express puts it. */
    size_t j = sopen + 1;
    skip_ws(stored, slen, &j);
    csn__buf_append(&b, stored, sopen + 1);
    csn__buf_puts(&b, "\"cookie\":");
    csn__buf_append(&b, fresh + fvs, fve - fvs);
    if (j < slen && stored[j] != '}') csn__buf_putc(&b, ',');
    csn__buf_append(&b, stored + sopen + 1, slen - sopen - 1);
  }
  *out = csn__buf_steal(&b, olen);
  if (*out == NULL)
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  return CSN_OK;
}

/* touch is optimistic: the record is copied under the lock, merged without
 * it (two JSON parses must not stall the shard), and installed only if the
 * entry's version did not move meanwhile; otherwise it starts over. After
 * TOUCH_RETRIES lost races it merges under the lock, so it always ends. */
static int mem_touch(csn_store *st, const char *sid, const char *json,
                     size_t len, int64_t expires_ms) {
  mem_store *ms = (mem_store *)st;
  size_t n;
  uint64_t h;
  mem_shard *sh;
  int attempt;
  if (!csn_store_id_valid(sid))
    return csn_store_set_error(st, CSN_EINVAL, "invalid session id");
  n = strlen(sid);
  h = siphash(ms->k0, ms->k1, sid, n);
  sh = shard_of(ms, h);
  for (attempt = 0;; attempt++) {
    int locked_merge = attempt >= TOUCH_RETRIES;
    mem_entry **pp, *dead = NULL;
    char *snap = NULL, *merged = NULL, *old = NULL;
    size_t slen = 0, mlen = 0;
    uint64_t ver = 0;
    int rc = CSN_OK, done = 0;
    int64_t now = mem_now(ms);

    pthread_mutex_lock(&sh->lock);
    pp = find_slot(sh, h, sid, n);
    if (*pp == NULL) {
      done = 1; /* missing: a no-op, as in express-session */
    } else if (expired(*pp, now)) {
      unlink_entry(ms, sh, pp, &dead);
      done = 1;
    } else if (locked_merge) {
      rc = merge_cookie(st, (*pp)->json, (*pp)->len, json, len, &merged,
                        &mlen);
      if (rc == CSN_OK) old = entry_replace(*pp, merged, mlen, expires_ms);
      done = 1;
    } else {
      snap = csn__malloc((*pp)->len + 1);
      if (snap == NULL) {
        rc = csn_store_set_error(st, CSN_ENOMEM, "out of memory");
        done = 1;
      } else {
        memcpy(snap, (*pp)->json, (*pp)->len + 1);
        slen = (*pp)->len;
        ver = (*pp)->ver;
      }
    }
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
    csn__free(old);
    if (done) return rc;

    rc = merge_cookie(st, snap, slen, json, len, &merged, &mlen);
    csn__free(snap);
    if (rc != CSN_OK) return rc;

    pthread_mutex_lock(&sh->lock);
    pp = find_slot(sh, h, sid, n);
    if (*pp == NULL || expired(*pp, mem_now(ms))) {
      done = 1; /* gone meanwhile: nothing to touch */
    } else if ((*pp)->ver == ver) {
      old = entry_replace(*pp, merged, mlen, expires_ms);
      merged = NULL;
      done = 1;
    }
    pthread_mutex_unlock(&sh->lock);
    csn__free(old);
    csn__free(merged);
    if (done) return CSN_OK;
  }
}

/* ------------------------------------------------------------------------ */
/* Administration                                                           */
/* ------------------------------------------------------------------------ */

static int mem_clear(csn_store *st) {
  mem_store *ms = (mem_store *)st;
  size_t i, b;
  for (i = 0; i < SHARDS; i++) {
    mem_shard *sh = &ms->shards[i];
    mem_entry *dead = NULL;
    pthread_mutex_lock(&sh->lock);
    for (b = 0; b < sh->nbuckets; b++)
      while (sh->buckets[b] != NULL) unlink_entry(ms, sh, &sh->buckets[b], &dead);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
  }
  return CSN_OK;
}

static int mem_length(csn_store *st, size_t *count) {
  mem_store *ms = (mem_store *)st;
  int64_t now = mem_now(ms);
  size_t i, live = 0;
  /* Expired entries are removed on the way, so the count is of live ones
   * and the sweep work is not wasted. */
  for (i = 0; i < SHARDS; i++) {
    mem_shard *sh = &ms->shards[i];
    sweep_shard(ms, sh, now);
    pthread_mutex_lock(&sh->lock);
    live += sh->count;
    pthread_mutex_unlock(&sh->lock);
  }
  *count = live;
  return CSN_OK;
}

static int mem_prune(csn_store *st, size_t *removed) {
  mem_store *ms = (mem_store *)st;
  *removed = sweep_all(ms, mem_now(ms));
  return CSN_OK;
}

/* all() copies one shard's live entries under its lock and calls back with
 * no lock held, so a callback may itself call the store (destroy what it
 * sees, for instance) without deadlocking. */
typedef struct snap_item {
  char *sid;
  char *json;
  size_t len;
} snap_item;

static int mem_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  mem_store *ms = (mem_store *)st;
  int64_t now = mem_now(ms);
  size_t i;
  for (i = 0; i < SHARDS; i++) {
    mem_shard *sh = &ms->shards[i];
    snap_item *items = NULL;
    size_t nitems = 0, k, b;
    int rc = CSN_OK, stop = 0;
    sweep_shard(ms, sh, now);
    pthread_mutex_lock(&sh->lock);
    if (sh->count > 0) {
      items = csn__calloc(sh->count, sizeof *items);
      if (items == NULL) rc = CSN_ENOMEM;
    }
    for (b = 0; rc == CSN_OK && b < sh->nbuckets; b++) {
      mem_entry *e;
      for (e = sh->buckets[b]; e != NULL && rc == CSN_OK; e = e->next) {
        if (expired(e, now)) continue;
        items[nitems].sid = csn__strdup(e->sid);
        items[nitems].json = csn__malloc(e->len + 1);
        if (items[nitems].sid == NULL || items[nitems].json == NULL) {
          rc = CSN_ENOMEM;
        } else {
          memcpy(items[nitems].json, e->json, e->len + 1);
          items[nitems].len = e->len;
        }
        nitems++; /* counted even when half-built, so it is freed below */
      }
    }
    pthread_mutex_unlock(&sh->lock);
    for (k = 0; k < nitems; k++) {
      if (rc == CSN_OK && !stop)
        stop = fn(items[k].sid, items[k].json, items[k].len, userdata) != 0;
      csn__free(items[k].sid);
      csn__free(items[k].json);
    }
    csn__free(items);
    if (rc != CSN_OK)
      return csn_store_set_error(st, rc, "out of memory listing sessions");
    if (stop) break;
  }
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Background sweeper                                                       */
/* ------------------------------------------------------------------------ */

static void deadline_after(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Waits on a condition variable rather than sleeping, so close() wakes it
 * at once instead of waiting out the interval. Between shards it checks the
 * stop flag too: a huge store still closes promptly. */
static void *sweeper(void *arg) {
  mem_store *ms = arg;
  struct timespec ts;
  pthread_mutex_lock(&ms->ctl_lock);
  while (!ms->stop) {
    int rc = 0;
    deadline_after(&ts, ms->interval_ms);
    while (!ms->stop && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&ms->ctl_cond, &ms->ctl_lock, &ts);
    if (ms->stop) break;
    pthread_mutex_unlock(&ms->ctl_lock);
    {
      int64_t now = mem_now(ms);
      size_t i;
      for (i = 0; i < SHARDS; i++) {
        int stop;
        pthread_mutex_lock(&ms->ctl_lock);
        stop = ms->stop;
        pthread_mutex_unlock(&ms->ctl_lock);
        if (stop) break;
        sweep_shard(ms, &ms->shards[i], now);
      }
    }
    pthread_mutex_lock(&ms->ctl_lock);
  }
  pthread_mutex_unlock(&ms->ctl_lock);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

static void mem_close(csn_store *st);

static const csn_store_methods memory_methods = {
    CSN_STORE_METHODS_VERSION,
    "memory",
    mem_get,
    mem_set,
    mem_destroy,
    mem_touch,
    mem_clear,
    mem_length,
    mem_all,
    mem_prune,
    mem_close,
};

/* Release what was set up; `nshards` shards have a lock and buckets. */
static void mem_release(mem_store *ms, size_t nshards, int ctl) {
  size_t i;
  for (i = 0; i < nshards; i++) {
    mem_shard *sh = &ms->shards[i];
    size_t b;
    for (b = 0; b < sh->nbuckets; b++) free_list(sh->buckets[b]);
    csn__free(sh->buckets);
    pthread_mutex_destroy(&sh->lock);
  }
  if (ctl) {
    pthread_cond_destroy(&ms->ctl_cond);
    pthread_mutex_destroy(&ms->ctl_lock);
  }
  csn__free(ms);
}

static void mem_close(csn_store *st) {
  mem_store *ms = (mem_store *)st;
  if (ms->has_thread) {
    pthread_mutex_lock(&ms->ctl_lock);
    ms->stop = 1;
    pthread_cond_signal(&ms->ctl_cond);
    pthread_mutex_unlock(&ms->ctl_lock);
    pthread_join(ms->thread, NULL);
  }
  mem_release(ms, SHARDS, 1);
}

int csn_store_memory_new(const csn_memory_options *opts, csn_store **out) {
  mem_store *ms;
  unsigned char key[16];
  pthread_condattr_t ca;
  size_t i;
  int rc;
  if (out == NULL)
    return csn__set_error(CSN_EINVAL, "memory store: no output pointer");
  *out = NULL;
  ms = csn__calloc(1, sizeof *ms);
  if (ms == NULL) return csn__set_error(CSN_ENOMEM, "memory store: out of memory");
  ms->base.m = &memory_methods;
  if (opts != NULL) {
    ms->max_entries = opts->max_entries;
    ms->interval_ms = opts->prune_interval_ms;
    ms->clock = opts->clock;
    ms->clock_ud = opts->clock_userdata;
  }
  if (ms->interval_ms == 0) ms->interval_ms = PRUNE_DEFAULT_MS;
  atomic_init(&ms->total, 0);
  atomic_init(&ms->last_full_sweep, INT64_MIN);

  rc = csn__random_bytes(key, sizeof key);
  if (rc != CSN_OK) {
    csn__free(ms);
    return csn__set_error(rc, "memory store: no random hash key");
  }
  ms->k0 = load_le64(key);
  ms->k1 = load_le64(key + 8);

  for (i = 0; i < SHARDS; i++) {
    mem_shard *sh = &ms->shards[i];
    sh->buckets = csn__calloc(BUCKETS_MIN, sizeof *sh->buckets);
    if (sh->buckets == NULL || pthread_mutex_init(&sh->lock, NULL) != 0) {
      csn__free(sh->buckets);
      sh->buckets = NULL;
      mem_release(ms, i, 0);
      return csn__set_error(CSN_ENOMEM, "memory store: out of memory");
    }
    sh->nbuckets = BUCKETS_MIN;
  }

  /* The sweeper's timed wait runs on the monotonic clock: a wall-clock
   * jump must neither stall it nor make it spin. */
  if (pthread_mutex_init(&ms->ctl_lock, NULL) != 0) {
    mem_release(ms, SHARDS, 0);
    return csn__set_error(CSN_ENOMEM, "memory store: mutex init failed");
  }
  if (pthread_condattr_init(&ca) != 0) {
    pthread_mutex_destroy(&ms->ctl_lock);
    mem_release(ms, SHARDS, 0);
    return csn__set_error(CSN_ENOMEM, "memory store: condattr init failed");
  }
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  rc = pthread_cond_init(&ms->ctl_cond, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0) {
    pthread_mutex_destroy(&ms->ctl_lock);
    mem_release(ms, SHARDS, 0);
    return csn__set_error(CSN_ENOMEM, "memory store: cond init failed");
  }
  if (ms->interval_ms > 0) {
    if (pthread_create(&ms->thread, NULL, sweeper, ms) != 0) {
      mem_release(ms, SHARDS, 1);
      return csn__set_error(CSN_ENOMEM,
                            "memory store: cannot start the sweeper thread");
    }
    ms->has_thread = 1;
  }
  *out = &ms->base;
  return CSN_OK;
}

size_t csn__store_memory_raw_count(const csn_store *st) {
  mem_store *ms = (mem_store *)(void *)(uintptr_t)st;
  if (st == NULL || st->m != &memory_methods) return 0;
  return atomic_load(&ms->total);
}

/* ------------------------------------------------------------------------ */
/* URL: memory://[?max=N&prune=MS]                                          */
/* ------------------------------------------------------------------------ */

/* A decimal integer with an optional '-' (prune only), at most 15 digits:
 * anything longer is no sensible count or interval. */
static int url_fail(char *errbuf, size_t errlen, const char *msg) {
  if (errbuf != NULL && errlen > 0) snprintf(errbuf, errlen, "%s", msg);
  return csn__set_error(CSN_EINVAL, "%s", msg);
}

int csn__store_open_memory(const char *url, csn_store **out, char *errbuf,
                           size_t errlen) {
  static const char prefix[] = "memory://";
  csn_memory_options o;
  const char *q;
  int seen_max = 0, seen_prune = 0;
  if (out != NULL) *out = NULL;
  if (url == NULL || out == NULL || strncmp(url, prefix, sizeof prefix - 1))
    return url_fail(errbuf, errlen, "memory store URL must start with memory://");
  memset(&o, 0, sizeof o);
  q = url + sizeof prefix - 1;
  /* There is no host or path: only an optional query. */
  if (*q != '\0') {
    if (*q != '?' || q[1] == '\0')
      return url_fail(errbuf, errlen,
                      "memory store URL takes no host or path, only "
                      "?max=N&prune=MS");
    q++;
    csn_url_param prm;
    int more;
    while ((more = csn_url_param_next(&q, &prm)) != 0) {
      int64_t v;
      if (more < 0)
        return url_fail(errbuf, errlen, "memory store URL: bad query parameter");
      if (csn_url_param_is(&prm, "max") && !seen_max) {
        if (csn_url_param_int(&prm, 0, INT64_C(999999999999999), &v) != 0)
          return url_fail(errbuf, errlen, "memory store URL: bad max value");
        o.max_entries = (size_t)v;
        seen_max = 1;
      } else if (csn_url_param_is(&prm, "prune") && !seen_prune) {
        if (csn_url_param_int(&prm, -INT64_C(999999999999999),
                              INT64_C(999999999999999), &v) != 0)
          return url_fail(errbuf, errlen, "memory store URL: bad prune value");
        o.prune_interval_ms = v;
        seen_prune = 1;
      } else {
        return url_fail(errbuf, errlen,
                        "memory store URL: unknown or repeated parameter");
      }
    }
  }
  return csn_store_memory_new(&o, out);
}
