/* memory_table.c - the MemoryStore's sharded hash table (memory_table.h).
 *
 * Shards. The table is SHARDS independent hash tables, each behind its own
 * mutex; an id picks its shard from the top bits of a keyed hash (SipHash,
 * random key per table) and its bucket from the low bits, so that neither
 * contention nor collisions can be steered from outside. There is no
 * global lock; the only shared word is an atomic entry count.
 *
 * Not leaking. express-session's store only forgets a session when that id
 * is read again, so abandoned sessions stay forever. Here a sweep removes
 * expired entries a few buckets per lock hold (so requests never wait
 * behind a whole-table scan; memory.c runs one from a background thread),
 * and, where no thread runs, every insert sweeps a couple of buckets of its
 * own shard, so the table still stays near its live size.
 *
 * Capacity (max_entries): when the table is full a new id evicts another
 * entry. Rejecting with CSN_ENOMEM was the alternative, but it would turn a
 * full cache into an outage for new visitors. Which entry goes is a
 * two-tier rule, like a segmented LRU's probation and protected segments:
 *   - an entry no later request has read back (a visitor seen once: every
 *     anonymous hit of a crawler or a flood) is on probation;
 *   - an entry read back at least once (a returning visitor, a logged-in
 *     user) is protected (mt_entry.used, set by the store's get).
 * Expired entries go first, then a probation entry (the oldest, see
 * evict_one), and a protected entry only when no probation entry is left
 * (the soonest to expire of a small sample). Without the
 * tiers, "soonest to expire" always picked the established sessions (their
 * cookies were issued earliest), so anonymous traffic logged real users out:
 * 1,200 anonymous requests left 3 of 20 logged-in sessions of a table of
 * 20 (issue 15, finding 5). What the tiers do not stop: a client that
 * returns with each of its cookies makes its own entries protected too, so
 * bound session creation per client in front of the server as well.
 * Finding the global minimum would mean scanning every shard on every
 * insert, so the choice is made per shard: the inserting shard gives up an
 * entry if it holds at least its fair share (max / SHARDS), otherwise the
 * first shard that does; probation entries are looked for in every shard
 * before any protected one goes. The count can overshoot max by at most
 * the number of threads inserting at the same instant into an otherwise
 * empty table, never more. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "csn_int.h"
#include "memory_table.h"

#define SHARD_BITS 6
#define BUCKETS_MIN 16
/* Buckets examined per lock hold by a sweep. */
#define SWEEP_CHUNK 64
/* Buckets examined by each insert (the amortised sweep). */
#define SWEEP_ON_SET 2
/* A full-table expired sweep on the insert path runs at most this often. */
#define FULL_SWEEP_GAP_MS 1000

_Static_assert(MT_SHARDS == 1 << SHARD_BITS, "MT_SHARDS is 2^SHARD_BITS");

struct mt_shard {
  pthread_mutex_t lock;
  mt_entry **buckets;
  size_t nbuckets; /* a power of two */
  size_t count;
  size_t cursor; /* next bucket for the amortised sweep */
  size_t evict_cursor; /* where the next protected eviction looks */
  /* The probation queue: the entries no later request has read back
   * (!used), oldest first, linked through qprev/qnext. */
  mt_entry *qhead, *qtail;
  /* Keeps two hot shard locks off one cache line. */
  char pad[64];
};

struct mt_table {
  uint64_t k0, k1;
  size_t max_entries;
  atomic_size_t total; /* entries in the table, expired or not */
  _Atomic int64_t last_full_sweep;
  int insert_sweep; /* the amortised sweep on insert (mt_set_insert_sweep) */
  csn_clock_fn clock;
  void *clock_ud;
  mt_shard shards[MT_SHARDS];
};

/* ------------------------------------------------------------------------ */
/* SipHash-1-3 (Aumasson & Bernstein), keyed per table                      */
/*                                                                          */
/* One compression round per 8 bytes and three to finish, the variant     */
/* Python and Rust use for their hash tables: a hash table needs a keyed   */
/* hash whose collisions cannot be found from outside, not a MAC, and      */
/* every get and every save hashes an id (2-4 cost 250 instructions per    */
/* 32-byte id, 1-3 about 150).                                              */
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
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* One load where the byte order allows (every look-up hashes an id). */
  memcpy(&v, p, sizeof v);
#else
  int i;
  for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
#endif
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
    v0 ^= m;
  }
  for (i = 0; i < left; i++) b |= (uint64_t)p[i] << (8 * i);
  v3 ^= b;
  SIPROUND(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  SIPROUND(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

/* The last id this thread hashed, under which key. A request looks its id
 * up twice on one thread (get when it begins, cas or set when it ends), and
 * the second hash is then a comparison instead of a SipHash (about 170
 * instructions for a 32-byte id). Used by the look-ups (mt_lock()). Keyed by the table's hash key rather
 * than by the table: a hash is a function of key and id alone, so the
 * entry stays right whatever table is freed or created meanwhile. Per
 * thread, so no lock; an id longer than the buffer is not remembered. */
static _Thread_local struct {
  int valid;
  uint64_t k0, k1, h;
  size_t n;
  char sid[CSN_ID_MAX + 1];
} last_hash;

static uint64_t sid_hash(const mt_table *t, const char *sid, size_t n) {
  uint64_t h;
  if (last_hash.valid && last_hash.n == n && last_hash.k0 == t->k0 &&
      last_hash.k1 == t->k1 && memcmp(last_hash.sid, sid, n) == 0)
    return last_hash.h;
  h = siphash(t->k0, t->k1, sid, n);
  if (n <= CSN_ID_MAX) {
    memcpy(last_hash.sid, sid, n);
    last_hash.n = n;
    last_hash.k0 = t->k0;
    last_hash.k1 = t->k1;
    last_hash.h = h;
    last_hash.valid = 1;
  }
  return h;
}

/* ------------------------------------------------------------------------ */
/* Shard primitives (all called with the shard locked)                      */
/* ------------------------------------------------------------------------ */

int64_t mt_now(const mt_table *t) {
  return t->clock != NULL ? t->clock(t->clock_ud) : csn__now_ms();
}

void mt_set_insert_sweep(mt_table *t, int on) { t->insert_sweep = on; }

static int expired(const mt_entry *e, int64_t now) {
  return e->expires != CSN_TIME_NONE && e->expires <= now;
}

/* CSN_TIME_NONE is INT64_MIN, which would sort first; it means "never". */
static int64_t expiry_key(const mt_entry *e) {
  return e->expires == CSN_TIME_NONE ? INT64_MAX : e->expires;
}

static size_t shard_index(uint64_t h) { return (size_t)(h >> (64 - SHARD_BITS)); }

static mt_entry **find_slot(mt_shard *sh, uint64_t h, const char *sid,
                            size_t sid_len) {
  mt_entry **pp = &sh->buckets[h & (sh->nbuckets - 1)];
  for (; *pp != NULL; pp = &(*pp)->next) {
    mt_entry *e = *pp;
    if (e->hash == h && e->sid_len == sid_len &&
        memcmp(e->sid, sid, sid_len) == 0)
      return pp;
  }
  return pp;
}

/* The probation queue (see Capacity): a new entry joins at the tail, and
 * leaves when it is read back (mt_mark_used) or unlinked. */
static void queue_push(mt_shard *sh, mt_entry *e) {
  e->qnext = NULL;
  e->qprev = sh->qtail;
  if (sh->qtail != NULL)
    sh->qtail->qnext = e;
  else
    sh->qhead = e;
  sh->qtail = e;
}

static void queue_drop(mt_shard *sh, mt_entry *e) {
  if (e->qprev != NULL)
    e->qprev->qnext = e->qnext;
  else
    sh->qhead = e->qnext;
  if (e->qnext != NULL)
    e->qnext->qprev = e->qprev;
  else
    sh->qtail = e->qprev;
  e->qprev = e->qnext = NULL;
}

/* Unlink *pp onto `dead` (freed by the caller after unlocking). */
static void unlink_entry(mt_table *t, mt_shard *sh, mt_entry **pp,
                         mt_entry **dead) {
  mt_entry *e = *pp;
  if (!e->used) queue_drop(sh, e);
  *pp = e->next;
  e->next = *dead;
  *dead = e;
  sh->count--;
  atomic_fetch_sub(&t->total, 1);
}

static void free_list(mt_entry *e) {
  while (e != NULL) {
    mt_entry *next = e->next;
    csn__free(e->json);
    csn__free(e);
    e = next;
  }
}

/* Double the bucket array once the load factor passes 1. A failed
 * allocation is harmless: the chains just get longer. */
static void maybe_grow(mt_shard *sh) {
  mt_entry **nb;
  size_t n, i;
  if (sh->count <= sh->nbuckets || sh->nbuckets > SIZE_MAX / 2 / sizeof *nb)
    return;
  n = sh->nbuckets * 2;
  nb = csn__calloc(n, sizeof *nb);
  if (nb == NULL) return;
  for (i = 0; i < sh->nbuckets; i++) {
    mt_entry *e = sh->buckets[i];
    while (e != NULL) {
      mt_entry *next = e->next;
      size_t j = e->hash & (n - 1);
      e->next = nb[j];
      nb[j] = e;
      e = next;
    }
  }
  csn__free(sh->buckets);
  /* Atomic stores: prefetch_slot() reads the two without the lock. */
  __atomic_store_n(&sh->buckets, nb, __ATOMIC_RELAXED);
  __atomic_store_n(&sh->nbuckets, n, __ATOMIC_RELAXED);
  sh->cursor &= n - 1;
}

/* Ask the cache for the bucket an insert of hash h will read, before the
 * shard is locked, so that the miss overlaps the insert's own copying: in
 * a table of 100,000 entries that bucket is rarely cached, and waiting for
 * it was a quarter of an insert. Only a hint: the two words are read
 * without the lock (a concurrent growth may make the address stale, and a
 * prefetch never faults), the lookup proper happens under the lock. */
static void prefetch_slot(mt_shard *sh, uint64_t h) {
  mt_entry **b = __atomic_load_n(&sh->buckets, __ATOMIC_RELAXED);
  size_t nb = __atomic_load_n(&sh->nbuckets, __ATOMIC_RELAXED);
  __builtin_prefetch(&b[h & (nb - 1)]);
}

/* Remove expired entries from buckets [from, to). Returns how many. */
static size_t sweep_range(mt_table *t, mt_shard *sh, size_t from, size_t to,
                          int64_t now, mt_entry **dead) {
  size_t removed = 0, i;
  if (to > sh->nbuckets) to = sh->nbuckets;
  for (i = from; i < to; i++) {
    mt_entry **pp = &sh->buckets[i];
    while (*pp != NULL) {
      if (expired(*pp, now)) {
        unlink_entry(t, sh, pp, dead);
        removed++;
      } else {
        pp = &(*pp)->next;
      }
    }
  }
  return removed;
}

/* Evict one entry of `sh`: the oldest probation entry, the head of the
 * queue. A probation entry was saved once and never read back, so its
 * expiry is its save time plus one lifetime: with the one lifetime most
 * applications give every session, the oldest is the soonest to expire,
 * and finding it costs one look at the head and its bucket's chain. (The
 * first version sampled 16 entries for the soonest to expire, one cache
 * miss each: 13% of the demo's CPU for new visitors once full.) Expired
 * entries need no place here: make_room() sweeps the whole table for them
 * first (at most once a second).
 * With no probation entry left and `protected_too`, a protected entry
 * goes: the one that expires soonest among about EVICT_SAMPLE, looked at
 * from where the last such eviction stopped (Redis samples the same way).
 * Returns 1 if one went. */
#define EVICT_SAMPLE 16
static int evict_one(mt_table *t, mt_shard *sh, int protected_too,
                     mt_entry **dead) {
  mt_entry **pp, **best = NULL;
  size_t nb = sh->nbuckets, start = sh->evict_cursor & (nb - 1), seen = 0, i;
  if (sh->qhead != NULL) {
    for (pp = &sh->buckets[sh->qhead->hash & (nb - 1)]; *pp != sh->qhead;
         pp = &(*pp)->next) {
    }
    unlink_entry(t, sh, pp, dead);
    return 1;
  }
  if (!protected_too) return 0;
  for (i = 0; i < nb && seen < EVICT_SAMPLE; i++) {
    for (pp = &sh->buckets[(start + i) & (nb - 1)]; *pp != NULL;
         pp = &(*pp)->next) {
      if (best == NULL || expiry_key(*pp) < expiry_key(*best)) best = pp;
      seen++;
    }
  }
  sh->evict_cursor = (start + i) & (nb - 1);
  if (best == NULL) return 0;
  unlink_entry(t, sh, best, dead);
  return 1;
}

void mt_mark_used(mt_ref *ref, mt_entry *e) {
  if (e->used) return;
  queue_drop(ref->sh, e);
  e->used = 1;
}

/* ------------------------------------------------------------------------ */
/* Locked look-ups                                                          */
/* ------------------------------------------------------------------------ */

mt_entry *mt_lock(mt_table *t, const char *sid, int64_t now, mt_ref *ref) {
  size_t n = strlen(sid);
  uint64_t h = sid_hash(t, sid, n);
  ref->t = t;
  ref->sh = &t->shards[shard_index(h)];
  ref->dead = NULL;
  ref->old = NULL;
  pthread_mutex_lock(&ref->sh->lock);
  ref->slot = find_slot(ref->sh, h, sid, n);
  if (*ref->slot != NULL && expired(*ref->slot, now)) {
    /* Not *ref->slot after the unlink: that is the next entry of the
     * chain now, another id's (a get returned that session's record). */
    unlink_entry(t, ref->sh, ref->slot, &ref->dead);
    return NULL;
  }
  return *ref->slot;
}

void mt_replace(mt_ref *ref, mt_entry *e, char *json, size_t len, size_t cap,
                int64_t expires) {
  csn__free(ref->old); /* a second replace under one lock: rare */
  ref->old = e->json;
  e->json = json;
  e->len = len;
  e->cap = cap;
  e->expires = expires;
}

int mt_overwrite(mt_entry *e, const char *json, size_t len, int64_t expires) {
  /* A text that shrank a lot gets memory of its size instead (the caller
   * then replaces it), so that an entry does not keep its largest size. */
  if (len >= e->cap || e->cap - (len + 1) > 64 + (len + 1) / 2)
    return 0;
  memcpy(e->json, json, len);
  e->json[len] = '\0';
  e->len = len;
  e->expires = expires;
  return 1;
}

void mt_remove(mt_ref *ref) {
  unlink_entry(ref->t, ref->sh, ref->slot, &ref->dead);
}

void mt_unlock(mt_ref *ref) {
  pthread_mutex_unlock(&ref->sh->lock);
  free_list(ref->dead);
  csn__free(ref->old);
  ref->dead = NULL;
  ref->old = NULL;
}

void mt_delete(mt_table *t, const char *sid) {
  mt_ref ref;
  /* INT64_MIN: nothing counts as expired, so the entry is found to go. */
  if (mt_lock(t, sid, INT64_MIN, &ref) != NULL) mt_remove(&ref);
  mt_unlock(&ref);
}

/* ------------------------------------------------------------------------ */
/* Sweeping                                                                 */
/* ------------------------------------------------------------------------ */

/* SWEEP_CHUNK buckets per lock hold. If the shard grows half-way, a few
 * entries move behind the sweep and wait for the next one; that is fine
 * for a cleanup pass. */
size_t mt_sweep_shard(mt_table *t, size_t i, int64_t now) {
  mt_shard *sh = &t->shards[i];
  size_t pos = 0, removed = 0;
  for (;;) {
    mt_entry *dead = NULL;
    int done;
    pthread_mutex_lock(&sh->lock);
    done = pos >= sh->nbuckets;
    if (!done)
      removed += sweep_range(t, sh, pos, pos + SWEEP_CHUNK, now, &dead);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
    if (done) return removed;
    pos += SWEEP_CHUNK;
  }
}

size_t mt_sweep(mt_table *t, int64_t now) {
  size_t removed = 0, i;
  for (i = 0; i < MT_SHARDS; i++) removed += mt_sweep_shard(t, i, now);
  return removed;
}

/* ------------------------------------------------------------------------ */
/* Capacity                                                                 */
/* ------------------------------------------------------------------------ */

/* Take one unit of the max_entries budget, if any is left. */
static int reserve_slot(mt_table *t) {
  size_t n = atomic_load(&t->total);
  while (n < t->max_entries)
    if (atomic_compare_exchange_weak(&t->total, &n, n + 1)) return 1;
  return 0;
}

static int evict_in(mt_table *t, mt_shard *sh, size_t fair, int any,
                    int protected_too) {
  mt_entry *dead = NULL;
  int ok = 0;
  pthread_mutex_lock(&sh->lock);
  if (sh->count > 0 && (any || sh->count >= fair))
    ok = evict_one(t, sh, protected_too, &dead);
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);
  return ok;
}

/* Called with no lock held when the table is full: free one slot and take
 * it. Expired entries go first (a rate-limited full sweep), then a
 * probation entry: of a shard holding at least its fair share, starting
 * with our own (pass 0), then of any shard (pass 1); only then a protected
 * entry, in the same order (passes 2 and 3). If nothing could be evicted
 * (the entries are all in flight in other threads), the slot is taken
 * anyway: the overshoot is bounded by the number of concurrent inserters. */
static void make_room(mt_table *t, size_t own, int64_t now) {
  size_t fair = (t->max_entries + MT_SHARDS - 1) / MT_SHARDS;
  int64_t last = atomic_load(&t->last_full_sweep);
  int pass;
  /* INT64_MIN is "never swept"; compare before subtracting (no overflow). */
  if ((last == INT64_MIN || now < last || now - last >= FULL_SWEEP_GAP_MS) &&
      atomic_compare_exchange_strong(&t->last_full_sweep, &last, now)) {
    mt_sweep(t, now);
    if (reserve_slot(t)) return;
  }
  for (pass = 0; pass < 4; pass++) {
    size_t k;
    for (k = 0; k < MT_SHARDS; k++) {
      mt_shard *sh = &t->shards[(own + k) % MT_SHARDS];
      if (!evict_in(t, sh, fair, pass % 2 == 1, pass >= 2)) continue;
      if (reserve_slot(t)) return;
      k--; /* still full (another thread took the slot): try here again */
    }
  }
  atomic_fetch_add(&t->total, 1);
}

/* ------------------------------------------------------------------------ */
/* Whole operations                                                         */
/* ------------------------------------------------------------------------ */

static void link_new(mt_shard *sh, mt_entry **pp, mt_entry *e) {
  *pp = e;
  queue_push(sh, e);
  sh->count++;
  maybe_grow(sh);
}

int mt_set(mt_table *t, const char *sid, const char *json, size_t len,
           int64_t expires) {
  size_t n = strlen(sid);
  uint64_t h;
  mt_shard *sh;
  mt_entry **pp, *dead = NULL, *e;
  char *copy, *old = NULL;
  size_t cap;
  int64_t now;
  /* Copy and allocate before locking: the lock then covers pointer work
   * only, whatever the record's size. */
  if (len >= SIZE_MAX - 32)
    return CSN_ENOMEM;
  /* Not through sid_hash(): an insert is mostly a new id, which no later
   * look-up on this thread is likely to repeat, so remembering it would
   * only cost the copy. */
  h = siphash(t->k0, t->k1, sid, n);
  sh = &t->shards[shard_index(h)];
  prefetch_slot(sh, h);
  cap = mt_text_cap(len);
  if ((copy = csn__malloc(cap)) == NULL)
    return CSN_ENOMEM;
  memcpy(copy, json, len);
  copy[len] = '\0';
  e = csn__malloc(sizeof *e + n + 1);
  if (e == NULL) {
    csn__free(copy);
    return CSN_ENOMEM;
  }
  e->next = NULL;
  e->hash = h;
  e->expires = expires;
  e->json = copy;
  e->len = len;
  e->cap = cap;
  e->sid_len = n;
  e->used = 0;
  memcpy(e->sid, sid, n + 1);
  now = mt_now(t);

  pthread_mutex_lock(&sh->lock);
  pp = find_slot(sh, h, sid, n);
  if (*pp == NULL) {
    /* The amortised sweep: a few buckets of this shard on every insert. */
    size_t swept = 0;
    if (t->insert_sweep) {
      swept = sweep_range(t, sh, sh->cursor, sh->cursor + SWEEP_ON_SET, now,
                          &dead);
      sh->cursor = (sh->cursor + SWEEP_ON_SET) & (sh->nbuckets - 1);
    }
    if (t->max_entries == 0 || reserve_slot(t)) {
      if (t->max_entries == 0) atomic_fetch_add(&t->total, 1);
      /* Look again if the sweep unlinked anything (it may have been the
       * chain's tail); otherwise the slot found is still the end. */
      link_new(sh, swept > 0 ? find_slot(sh, h, sid, n) : pp, e);
      e = NULL;
    } else {
      /* Full: make room with no lock held (eviction may visit other
       * shards), then look again, since another thread may have inserted
       * this id meanwhile. */
      pthread_mutex_unlock(&sh->lock);
      make_room(t, shard_index(h), now);
      pthread_mutex_lock(&sh->lock);
      pp = find_slot(sh, h, sid, n);
      if (*pp == NULL) {
        link_new(sh, pp, e);
        e = NULL;
      } else {
        atomic_fetch_sub(&t->total, 1); /* give the slot back */
      }
    }
  }
  if (e != NULL) { /* present: replace the text in place */
    old = (*pp)->json;
    (*pp)->json = copy;
    (*pp)->len = len;
    (*pp)->cap = cap;
    (*pp)->expires = expires;
  }
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);
  csn__free(old);
  csn__free(e);
  return CSN_OK;
}

void mt_clear(mt_table *t) {
  size_t i, b;
  for (i = 0; i < MT_SHARDS; i++) {
    mt_shard *sh = &t->shards[i];
    mt_entry *dead = NULL;
    pthread_mutex_lock(&sh->lock);
    for (b = 0; b < sh->nbuckets; b++)
      while (sh->buckets[b] != NULL)
        unlink_entry(t, sh, &sh->buckets[b], &dead);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
  }
}

size_t mt_length(mt_table *t, int64_t now) {
  size_t i, live = 0;
  /* Expired entries are removed on the way, so the count is of live ones
   * and the sweep work is not wasted. */
  for (i = 0; i < MT_SHARDS; i++) {
    mt_shard *sh = &t->shards[i];
    mt_sweep_shard(t, i, now);
    pthread_mutex_lock(&sh->lock);
    live += sh->count;
    pthread_mutex_unlock(&sh->lock);
  }
  return live;
}

size_t mt_count(const mt_table *t) { return atomic_load(&t->total); }

typedef struct snap_item {
  char *sid;
  char *json;
  size_t len;
} snap_item;

int mt_each(mt_table *t, int64_t now, int want_expired, csn_store_each_fn fn,
            void *ud) {
  size_t i;
  for (i = 0; i < MT_SHARDS; i++) {
    mt_shard *sh = &t->shards[i];
    snap_item *items = NULL;
    size_t nitems = 0, k, b;
    int rc = CSN_OK, stop = 0;
    /* The live walk sweeps the shard first (its copy is then smaller);
     * the expired walk must not, it would remove what it is to show. */
    if (!want_expired) mt_sweep_shard(t, i, now);
    pthread_mutex_lock(&sh->lock);
    if (sh->count > 0) {
      items = csn__calloc(sh->count, sizeof *items);
      if (items == NULL) rc = CSN_ENOMEM;
    }
    for (b = 0; rc == CSN_OK && b < sh->nbuckets; b++) {
      mt_entry *e;
      for (e = sh->buckets[b]; e != NULL && rc == CSN_OK; e = e->next) {
        if (expired(e, now) != want_expired) continue;
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
        stop = fn(items[k].sid, items[k].json, items[k].len, ud) != 0;
      csn__free(items[k].sid);
      csn__free(items[k].json);
    }
    csn__free(items);
    if (rc != CSN_OK) return rc;
    if (stop) break;
  }
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

/* Release what was set up; the first `nshards` shards have a lock and
 * buckets. */
static void release(mt_table *t, size_t nshards) {
  size_t i, b;
  for (i = 0; i < nshards; i++) {
    mt_shard *sh = &t->shards[i];
    for (b = 0; b < sh->nbuckets; b++) free_list(sh->buckets[b]);
    csn__free(sh->buckets);
    pthread_mutex_destroy(&sh->lock);
  }
  csn__free(t);
}

void mt_free(mt_table *t) {
  if (t != NULL) release(t, MT_SHARDS);
}

int mt_new(mt_table **out, size_t max_entries, csn_clock_fn clock,
           void *clock_ud) {
  unsigned char key[16];
  mt_table *t;
  size_t i;
  int rc;
  *out = NULL;
  t = csn__calloc(1, sizeof *t);
  if (t == NULL) return CSN_ENOMEM;
  t->max_entries = max_entries;
  t->insert_sweep = 1;
  t->clock = clock;
  t->clock_ud = clock_ud;
  atomic_init(&t->total, 0);
  atomic_init(&t->last_full_sweep, INT64_MIN);
  rc = csn__random_bytes(key, sizeof key);
  if (rc != CSN_OK) {
    csn__free(t);
    return rc;
  }
  t->k0 = load_le64(key);
  t->k1 = load_le64(key + 8);
  for (i = 0; i < MT_SHARDS; i++) {
    mt_shard *sh = &t->shards[i];
    sh->buckets = csn__calloc(BUCKETS_MIN, sizeof *sh->buckets);
    if (sh->buckets == NULL || pthread_mutex_init(&sh->lock, NULL) != 0) {
      csn__free(sh->buckets);
      release(t, i);
      return CSN_ENOMEM;
    }
    sh->nbuckets = BUCKETS_MIN;
  }
  *out = t;
  return CSN_OK;
}
