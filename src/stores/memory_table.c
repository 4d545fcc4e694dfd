/* memory_table.c - the MemoryStore's sharded hash table (memory_table.h).
 *
 * Shards. The table is a set of independent hash tables, each behind its own
 * mutex; an id picks its shard from the top bits of a keyed hash (SipHash,
 * random key per table) and its slot from the low bits, so that neither
 * contention nor collisions can be steered from outside. There is no
 * global lock; the only shared word is an atomic entry count. How many
 * shards: four for each CPU the process may run on when the table is
 * made, at least 8 and at most MT_SHARDS (see shard_bits_for). Enough that
 * two workers rarely want one lock, and no more: an insert reads its
 * shard's lines, the tail of its queue and the entry its last eviction
 * asked the cache for, and with 64 shards on a two-core server each of
 * those had waited through 64 requests, long enough to leave the cache
 * (libmicrohttpd alone clears 32 KiB per request). 8 shards instead of 64
 * made a new visitor 0.1-0.3 us cheaper there (docs/BENCHMARKS.md).
 *
 * Slots. Each shard is an open-addressing table with linear probing: an
 * array of (hash, entry) pairs, at most half full. Looking an id up reads
 * hashes from that array and follows a pointer only when a hash matches,
 * so finding that an id is absent (every new visitor's insert) touches
 * only the array, a cache line or two, and no entry. Chained buckets, the
 * first layout, read every entry of the bucket's chain: for a new visitor
 * a table of 100,000 sessions served that entry from memory, and the wait
 * for it was the largest part of an insert. A removed entry leaves a
 * tombstone, unless the slot after it is empty (then nothing probes past
 * it); tombstones count towards the half, and the array is rebuilt, at a
 * size fit for the live entries, when they would pass it. Nothing ever
 * moves under a lock hold except in that rebuild, which only an insert
 * does, so a slot found stays the entry's until the lock is released.
 *
 * Entries. An entry, its id and its text are one block (mt_set): one
 * allocation and one free per session instead of two, and an eviction
 * frees only memory it has just read. A text that outgrows the room it
 * was written with moves into a block of its own (mt_replace); a set over
 * a present id brings a whole new entry, which takes the old one's slot,
 * queue place and mark (take_place).
 *
 * Not leaking. express-session's store only forgets a session when that id
 * is read again, so abandoned sessions stay forever. Here a sweep removes
 * expired entries a few slots per lock hold (so requests never wait
 * behind a whole-table scan; memory.c runs one from a background thread),
 * and, where no thread runs, every insert sweeps a few slots of its
 * own shard, so the table still stays near its live size. A sweep also
 * rebuilds a shard's array that has grown to 16 times what its entries
 * need, so a burst of sessions gives its memory back once they expire.
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
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "csn_int.h"
#include "memory_table.h"

/* The most shards a table has (MT_SHARDS == 1 << SHARD_BITS) and the
 * fewest (1 << SHARD_BITS_MIN). */
#define SHARD_BITS 6
#define SHARD_BITS_MIN 3
#define SLOTS_MIN 16
/* Slots examined per lock hold by a sweep. */
#define SWEEP_CHUNK 128
/* The amortised sweep: each insert looks at the next SWEEP_ON_SET entries
 * of its shard, passing at most SWEEP_ON_SET_SLOTS slots. Counted in
 * entries, not slots: a pass over the shard then takes as many inserts
 * whatever the array's load. */
#define SWEEP_ON_SET 2
#define SWEEP_ON_SET_SLOTS 16
/* A full-table expired sweep on the insert path runs at most this often. */
#define FULL_SWEEP_GAP_MS 1000

_Static_assert(MT_SHARDS == 1 << SHARD_BITS, "MT_SHARDS is 2^SHARD_BITS");
/* The fields an eviction touches span two cache lines at most, wherever
 * the allocator puts the block, and prefetch_head_of() asks for both: see
 * mt_entry. */
_Static_assert(offsetof(mt_entry, expires) <= 56,
               "the fields an eviction touches fit in 56 bytes");

/* A slot: empty (e NULL), a tombstone (e TOMB) or an entry with its hash. */
struct mt_slot {
  uint64_t hash;
  mt_entry *e;
};

/* The tombstone: an address no entry can have. */
static char tomb_mark;
#define TOMB ((mt_entry *)(void *)&tomb_mark)

static int live(const mt_slot *s) { return s->e != NULL && s->e != TOMB; }

/* A shard is three cache lines, at a line's start: an insert reads and
 * writes the first two (lock, array and count; then the tombstones, the
 * queue's ends and the expiry bounds), which mt_set() asks the cache for
 * before it copies; the third is the sweep's. Unaligned and 200 bytes, it
 * touched up to four lines, the fourth never asked for: the first wait of
 * an insert into a table of 100,000 sessions. Aligned, no two shards'
 * locks share a line either. */
struct mt_shard {
  _Alignas(64) pthread_mutex_t lock;
  mt_slot *slots;
  size_t nslots; /* a power of two */
  size_t count;  /* entries */
  size_t tombs;  /* tombstones */
  /* The probation queue: the entries no later request has read back
   * (!used), oldest first, linked through qprev/qnext. */
  mt_entry *qhead, *qtail;
  /* No entry of the shard expires before min_exp (INT64_MAX: none ever
   * does), so a sweep at an earlier instant has nothing to do and reads
   * no entry (see Sweeping). A lower bound, never more: every expiry
   * written lowers it (note_expiry), and only a complete sweep raises it,
   * to sweep_min, the least expiry it left behind. sweep_gen and rebuilds
   * tell that sweep whether another sweep or an array rebuild came in
   * between, either of which makes its sweep_min incomplete. */
  int64_t min_exp;
  int64_t sweep_min;
  size_t cursor; /* next slot for the amortised sweep */
  /* The low bits of qhead's hash, so that an insert into a full table can
   * ask for the eviction's slot without reading qhead (see
   * prefetch_eviction); mt_entry.qnext_tag carries it along the queue. */
  uint32_t qhead_tag;
  unsigned sweep_gen;
  _Alignas(64) unsigned rebuilds;
  size_t evict_cursor; /* where the next protected eviction looks */
};

struct mt_table {
  void *block; /* what was allocated: the table is its first aligned part */
  uint64_t k0, k1;
  size_t max_entries;
  atomic_size_t total; /* entries in the table, expired or not */
  _Atomic int64_t last_full_sweep;
  int insert_sweep; /* the amortised sweep on insert (mt_set_insert_sweep) */
  unsigned shard_bits; /* shards in use: the first 1 << shard_bits */
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
static int64_t expiry_of(int64_t expires) {
  return expires == CSN_TIME_NONE ? INT64_MAX : expires;
}

static int64_t expiry_key(const mt_entry *e) { return expiry_of(e->expires); }

/* An entry of sh now expires at `expires` (under sh's lock): the shard's
 * bounds must not stay above it (see mt_shard.min_exp). */
static void note_expiry(mt_shard *sh, int64_t expires) {
  int64_t k = expiry_of(expires);
  if (k < sh->min_exp) sh->min_exp = k;
  if (k < sh->sweep_min) sh->sweep_min = k;
}

/* shard_bits is at least SHARD_BITS_MIN, so the shift is below 64. */
static size_t shard_index(const mt_table *t, uint64_t h) {
  return (size_t)(h >> (64 - t->shard_bits));
}

/* sid's slot, or NULL when sid is absent. */
static mt_slot *find_slot(mt_shard *sh, uint64_t h, const char *sid,
                          size_t sid_len) {
  size_t mask = sh->nslots - 1, i = h & mask;
  for (;; i = (i + 1) & mask) {
    mt_slot *s = &sh->slots[i];
    if (s->e == NULL) return NULL;
    if (s->hash == h && s->e != TOMB && s->e->sid_len == sid_len &&
        memcmp(s->e->sid, sid, sid_len) == 0)
      return s;
  }
}

/* qhead, qhead_tag and qtail change only under the shard's lock, but
 * prefetch_eviction() reads them without it: hence the atomic stores. */
static void set_qhead(mt_shard *sh, mt_entry *e, uint32_t tag) {
  __atomic_store_n(&sh->qhead, e, __ATOMIC_RELAXED);
  __atomic_store_n(&sh->qhead_tag, tag, __ATOMIC_RELAXED);
}

/* The same for qtail, which prefetch_eviction() reads too. */
static void set_qtail(mt_shard *sh, mt_entry *e) {
  __atomic_store_n(&sh->qtail, e, __ATOMIC_RELAXED);
}

/* The probation queue (see Capacity): a new entry joins at the tail, and
 * leaves when it is read back (mt_mark_used) or unlinked. The head's qprev
 * is not kept (whether an entry is the head is asked of sh->qhead): the
 * head is what an eviction removes, and clearing the next entry's qprev
 * then was a write to one more cold entry, which the atomic count update
 * after it had to wait for. */
static void queue_push(mt_shard *sh, mt_entry *e) {
  e->qnext = NULL;
  e->qnext_tag = 0;
  e->qprev = sh->qtail;
  if (sh->qtail != NULL) {
    sh->qtail->qnext = e;
    sh->qtail->qnext_tag = (uint32_t)e->hash;
  } else {
    set_qhead(sh, e, (uint32_t)e->hash);
  }
  set_qtail(sh, e);
}

static void queue_drop(mt_shard *sh, mt_entry *e) {
  if (e == sh->qhead) {
    set_qhead(sh, e->qnext, e->qnext_tag);
    if (e->qnext == NULL) set_qtail(sh, NULL);
  } else {
    e->qprev->qnext = e->qnext;
    e->qprev->qnext_tag = e->qnext_tag;
    if (e->qnext != NULL)
      e->qnext->qprev = e->qprev;
    else
      set_qtail(sh, e->qprev);
  }
  e->qprev = e->qnext = NULL;
}

/* Take the entry of slot s out onto `dead` (freed by the caller after
 * unlocking), leaving the table's total to the caller. The slot becomes
 * empty when the next one is (no probe for another id can pass through
 * it), else a tombstone. */
static void unlink_keep_total(mt_shard *sh, mt_slot *s, mt_entry **dead) {
  mt_entry *e = s->e;
  size_t i = (size_t)(s - sh->slots);
  if (!e->used) queue_drop(sh, e);
  if (sh->slots[(i + 1) & (sh->nslots - 1)].e == NULL) {
    s->e = NULL;
  } else {
    s->e = TOMB;
    sh->tombs++;
  }
  e->next = *dead;
  *dead = e;
  sh->count--;
}

static void unlink_entry(mt_table *t, mt_shard *sh, mt_slot *s,
                         mt_entry **dead) {
  unlink_keep_total(sh, s, dead);
  atomic_fetch_sub(&t->total, 1);
}

/* Where an entry's own text room begins: after its id, in its block. */
static char *inline_text(mt_entry *e) { return e->sid + e->sid_len + 1; }

/* Free an entry: its block, and its text when that moved out of it. */
static void entry_free(mt_entry *e) {
  if (e->json != inline_text(e)) csn__free(e->json);
  csn__free(e);
}

static void free_list(mt_entry *e) {
  while (e != NULL) {
    mt_entry *next = e->next;
    entry_free(e);
    e = next;
  }
}

/* Rebuild sh's array with no tombstones, at least four slots per entry
 * and one more (so the next rebuild is a quarter of the array's inserts
 * away, and the work of one is amortised). Reads the hashes in the array,
 * never an entry. Returns 0, or -1 when no memory for the new array was to
 * be had (the old one stays). */
static int rebuild(mt_shard *sh) {
  mt_slot *ns;
  size_t n = SLOTS_MIN, i;
  while (n < SIZE_MAX / 8 / sizeof *ns && n < (sh->count + 1) * 4) n *= 2;
  ns = csn__calloc(n, sizeof *ns);
  if (ns == NULL) return -1;
  for (i = 0; i < sh->nslots; i++) {
    size_t j;
    if (!live(&sh->slots[i])) continue;
    for (j = sh->slots[i].hash & (n - 1); ns[j].e != NULL; j = (j + 1) & (n - 1)) {
    }
    ns[j] = sh->slots[i];
  }
  csn__free(sh->slots);
  /* Atomic stores: the prefetches read the two without the lock. */
  __atomic_store_n(&sh->slots, ns, __ATOMIC_RELAXED);
  __atomic_store_n(&sh->nslots, n, __ATOMIC_RELAXED);
  sh->tombs = 0;
  sh->rebuilds++;
  sh->cursor &= n - 1;
  sh->evict_cursor &= n - 1;
  return 0;
}

/* Make room for one more entry: while entries and tombstones stay at
 * most half the slots, nothing; else rebuild. Returns 0, or -1 when the
 * array is too full to take the entry and no memory for a new one was to
 * be had; below that a failed allocation just leaves the array fuller. */
static int reserve_room(mt_shard *sh) {
  if ((sh->count + sh->tombs + 1) * 2 <= sh->nslots) return 0;
  if (rebuild(sh) == 0) return 0;
  /* One slot must stay empty, or a probe for an absent id would not end. */
  return sh->count + sh->tombs + 2 <= sh->nslots ? 0 : -1;
}

/* After a sweep: an array left at 16 times the slots its entries need (a
 * burst of sessions came and expired) is rebuilt at their size, so that
 * the memory of a peak does not stay with the table. Otherwise only an
 * insert that finds the array over half full (tombstones included)
 * rebuilds it, and a table nobody writes to any more would keep it for
 * good. A failed allocation keeps the big array, which still works. */
static void shrink_if_sparse(mt_shard *sh) {
  if (sh->nslots > SLOTS_MIN && sh->nslots / 16 > sh->count + 1)
    (void)rebuild(sh);
}

/* The address of hash h's home slot, for a prefetch only: the two words
 * are read without the lock, so a concurrent rebuild may make it stale,
 * which a prefetch (it never faults) does not mind. */
static const mt_slot *slot_hint(mt_shard *sh, uint64_t h) {
  mt_slot *b = __atomic_load_n(&sh->slots, __ATOMIC_RELAXED);
  size_t nb = __atomic_load_n(&sh->nslots, __ATOMIC_RELAXED);
  return &b[h & (nb - 1)];
}

/* Ask the cache for the slot an insert of hash h will read, before the
 * shard is locked, so that the miss overlaps the insert's own copying: in
 * a table of 100,000 entries that slot is rarely cached, and waiting for
 * it was a quarter of an insert. The lookup proper happens under the lock. */
static void prefetch_slot(mt_shard *sh, uint64_t h) {
  __builtin_prefetch(slot_hint(sh, h));
}

/* Ask for the bytes of e that an eviction or a queue link touches (the
 * fields before expires, memory_table.h): one line or two, as the
 * allocator placed the block. A hint: e is never dereferenced here. */
static void prefetch_head_of(const mt_entry *e) {
  __builtin_prefetch(e, 1);
  __builtin_prefetch((const char *)e + offsetof(mt_entry, expires) - 1, 1);
}

/* The same for an insert into a full table, which will evict the oldest
 * probation entry, most likely of its own shard (see make_room): ask for
 * that entry and for its slot now, while the insert copies its record.
 * Without this, the eviction waited for both, one after the other: a
 * third of an insert's time once the table had filled. Also the queue's
 * tail, whose link the new entry's arrival writes. Hints again: the
 * entries may be gone by the time the lock is taken, and only addresses
 * are formed here, never dereferenced. */
static void prefetch_eviction(const mt_table *t, mt_shard *sh) {
  mt_entry *e = __atomic_load_n(&sh->qtail, __ATOMIC_RELAXED);
  if (e != NULL) prefetch_head_of(e);
  if (t->max_entries == 0 ||
      atomic_load_explicit(&t->total, memory_order_relaxed) < t->max_entries)
    return;
  e = __atomic_load_n(&sh->qhead, __ATOMIC_RELAXED);
  if (e == NULL) return;
  prefetch_head_of(e);
  __builtin_prefetch(
      slot_hint(sh, __atomic_load_n(&sh->qhead_tag, __ATOMIC_RELAXED)), 1);
}

/* Remove expired entries from slots [from, to). Returns how many. */
static size_t sweep_range(mt_table *t, mt_shard *sh, size_t from, size_t to,
                          int64_t now, mt_entry **dead) {
  size_t removed = 0, i;
  if (to > sh->nslots) to = sh->nslots;
  for (i = from; i < to; i++) {
    mt_slot *s = &sh->slots[i];
    if (!live(s)) continue;
    if (expired(s->e, now)) {
      unlink_entry(t, sh, s, dead);
      removed++;
    } else if (expiry_key(s->e) < sh->sweep_min) {
      sh->sweep_min = expiry_key(s->e);
    }
  }
  return removed;
}

/* The amortised sweep of one insert (see SWEEP_ON_SET), from sh->cursor. */
static void sweep_on_set(mt_table *t, mt_shard *sh, int64_t now,
                         mt_entry **dead) {
  size_t mask = sh->nslots - 1, i = sh->cursor & mask, k, seen = 0;
  if (sh->min_exp > now) return; /* nothing there has expired */
  for (k = 0; k < SWEEP_ON_SET_SLOTS && seen < SWEEP_ON_SET;
       k++, i = (i + 1) & mask) {
    mt_slot *s = &sh->slots[i];
    if (!live(s)) continue;
    seen++;
    if (expired(s->e, now)) unlink_entry(t, sh, s, dead);
  }
  sh->cursor = i;
}

/* Evict one entry of `sh`: the oldest probation entry, the head of the
 * queue. A probation entry was saved once and never read back, so its
 * expiry is its save time plus one lifetime: with the one lifetime most
 * applications give every session, the oldest is the soonest to expire,
 * and finding it costs one look at the head and at its slot. (The
 * first version sampled 16 entries for the soonest to expire, one cache
 * miss each: 13% of the demo's CPU for new visitors once full.) Expired
 * entries need no place here: make_room() sweeps the whole table for them
 * first (at most once a second).
 * With no probation entry left and `protected_too`, a protected entry
 * goes: the one that expires soonest among about EVICT_SAMPLE, looked at
 * from where the last such eviction stopped (Redis samples the same way).
 * Returns 1 if one went. */
#define EVICT_SAMPLE 16

/* Unlink the head of the probation queue, if any, leaving the total to the
 * caller. Returns 1 if one went. */
static int evict_head(mt_shard *sh, mt_entry **dead) {
  size_t mask = sh->nslots - 1, i;
  if (sh->qhead == NULL) return 0;
  /* Its slot: along its probe sequence, by address (no id compared). */
  for (i = sh->qhead->hash & mask; sh->slots[i].e != sh->qhead;
       i = (i + 1) & mask) {
  }
  unlink_keep_total(sh, &sh->slots[i], dead);
  /* The next eviction of this shard takes the new head: ask for it and
   * its slot now, so that it comes from a nearer cache than memory (by
   * then the head has waited through a whole table of inserts). */
  if (sh->qhead != NULL) {
    prefetch_head_of(sh->qhead);
    __builtin_prefetch(&sh->slots[sh->qhead_tag & mask], 1);
  }
  return 1;
}

static int evict_one(mt_table *t, mt_shard *sh, int protected_too,
                     mt_entry **dead) {
  mt_slot *best = NULL;
  size_t nb = sh->nslots, start = sh->evict_cursor & (nb - 1), seen = 0, i;
  if (evict_head(sh, dead)) {
    atomic_fetch_sub(&t->total, 1);
    return 1;
  }
  if (!protected_too) return 0;
  for (i = 0; i < nb && seen < EVICT_SAMPLE; i++) {
    mt_slot *s = &sh->slots[(start + i) & (nb - 1)];
    if (!live(s)) continue;
    if (best == NULL || expiry_key(s->e) < expiry_key(best->e)) best = s;
    seen++;
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
  ref->sh = &t->shards[shard_index(t, h)];
  ref->dead = NULL;
  ref->old = NULL;
  pthread_mutex_lock(&ref->sh->lock);
  ref->slot = find_slot(ref->sh, h, sid, n);
  if (ref->slot == NULL) return NULL;
  if (expired(ref->slot->e, now)) {
    unlink_entry(t, ref->sh, ref->slot, &ref->dead);
    ref->slot = NULL;
    return NULL;
  }
  return ref->slot->e;
}

void mt_replace(mt_ref *ref, mt_entry *e, char *json, size_t len, size_t cap,
                int64_t expires) {
  csn__free(ref->old); /* a second replace under one lock: rare */
  ref->old = e->json != inline_text(e) ? e->json : NULL;
  e->json = json;
  e->len = len;
  e->cap = cap;
  e->expires = expires;
  note_expiry(ref->sh, expires);
}

int mt_overwrite(mt_ref *ref, mt_entry *e, const char *json, size_t len,
                 int64_t expires) {
  /* A text that shrank a lot gets memory of its size instead (the caller
   * then replaces it), so that an entry does not keep its largest size. */
  if (len >= e->cap ||
      (e->json != inline_text(e) && e->cap - (len + 1) > 64 + (len + 1) / 2))
    return 0;
  memcpy(e->json, json, len);
  e->json[len] = '\0';
  e->len = len;
  e->expires = expires;
  note_expiry(ref->sh, expires);
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

/* SWEEP_CHUNK slots per lock hold. If an insert rebuilds the shard's array
 * half-way, a few entries move behind the sweep and wait for the next one;
 * that is fine for a cleanup pass.
 *
 * A shard none of whose entries can have expired yet (min_exp > now) is
 * not read at all: one lock hold instead of a read of every entry. In a
 * table of 100,000 sessions that live a day, that read was 100,000 cache
 * misses for nothing on every sweep (the sweeper's, and the one a full
 * table makes on the insert path at most once a second). A sweep that
 * reads the whole shard learns the least expiry of what it leaves
 * (sweep_min) and makes it the shard's bound, unless another sweep began
 * meanwhile or a rebuild moved entries behind it: then the old bound, a
 * lower one, stays. */
size_t mt_sweep_shard(mt_table *t, size_t i, int64_t now) {
  mt_shard *sh = &t->shards[i];
  size_t pos = 0, removed = 0;
  unsigned gen, rebuilds;
  pthread_mutex_lock(&sh->lock);
  if (sh->min_exp > now) {
    shrink_if_sparse(sh); /* destroys and evictions empty shards too */
    pthread_mutex_unlock(&sh->lock);
    return 0;
  }
  gen = ++sh->sweep_gen;
  rebuilds = sh->rebuilds;
  sh->sweep_min = INT64_MAX;
  pthread_mutex_unlock(&sh->lock);
  for (;;) {
    mt_entry *dead = NULL;
    int done;
    pthread_mutex_lock(&sh->lock);
    done = pos >= sh->nslots;
    if (!done)
      removed += sweep_range(t, sh, pos, pos + SWEEP_CHUNK, now, &dead);
    else {
      if (sh->sweep_gen == gen && sh->rebuilds == rebuilds)
        sh->min_exp = sh->sweep_min;
      shrink_if_sparse(sh);
    }
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
    if (done) return removed;
    pos += SWEEP_CHUNK;
  }
}

size_t mt_sweep(mt_table *t, int64_t now) {
  size_t removed = 0, i;
  for (i = 0; i < mt_shards(t); i++) removed += mt_sweep_shard(t, i, now);
  return removed;
}

/* ------------------------------------------------------------------------ */
/* Capacity                                                                 */
/* ------------------------------------------------------------------------ */

/* A shard's share of max_entries, rounded up: a shift, since the count
 * is a power of two (evict_own asks on every insert into a full table). */
static size_t fair_share(const mt_table *t) {
  return (t->max_entries + mt_shards(t) - 1) >> t->shard_bits;
}

/* Whether make_room() would begin with a sweep of the whole table. */
static int full_sweep_due(mt_table *t, int64_t now) {
  int64_t last = atomic_load(&t->last_full_sweep);
  /* INT64_MIN is "never swept"; compare before subtracting (no overflow). */
  return last == INT64_MIN || now < last || now - last >= FULL_SWEEP_GAP_MS;
}

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
  size_t fair = fair_share(t);
  int64_t last = atomic_load(&t->last_full_sweep);
  int pass;
  if (full_sweep_due(t, now) &&
      atomic_compare_exchange_strong(&t->last_full_sweep, &last, now)) {
    mt_sweep(t, now);
    if (reserve_slot(t)) return;
  }
  for (pass = 0; pass < 4; pass++) {
    size_t k;
    for (k = 0; k < mt_shards(t); k++) {
      mt_shard *sh = &t->shards[(own + k) & (mt_shards(t) - 1)];
      if (!evict_in(t, sh, fair, pass % 2 == 1, pass >= 2)) continue;
      if (reserve_slot(t)) return;
      k--; /* still full (another thread took the slot): try here again */
    }
  }
  atomic_fetch_add(&t->total, 1);
}

/* make_room()'s first step for an insert into shard sh, taken under the
 * lock the insert already holds, when no sweep of the whole table is due:
 * sh's oldest probation entry goes if sh holds its fair share. The entry's
 * unit of the total passes to the insert (no decrement and increment of a
 * counter every worker writes), and the insert needs no second look-up.
 * Returns 1 if one went; 0 leaves it to make_room(). */
static int evict_own(mt_table *t, mt_shard *sh, int64_t now, mt_entry **dead) {
  size_t fair = fair_share(t);
  if (sh->count == 0 || sh->count < fair || full_sweep_due(t, now)) return 0;
  return evict_head(sh, dead);
}

/* ------------------------------------------------------------------------ */
/* Whole operations                                                         */
/* ------------------------------------------------------------------------ */

/* Put e (hash h, absent from the shard) into the array: the first free
 * slot of its probe sequence, a tombstone's if it comes first. 0, or -1
 * when the array is full and cannot grow (e is not linked). */
static int link_new(mt_shard *sh, uint64_t h, mt_entry *e) {
  size_t mask, i;
  if (reserve_room(sh) != 0) return -1;
  mask = sh->nslots - 1;
  for (i = h & mask; live(&sh->slots[i]); i = (i + 1) & mask) {
  }
  if (sh->slots[i].e == TOMB) sh->tombs--;
  sh->slots[i].hash = h;
  sh->slots[i].e = e;
  queue_push(sh, e);
  note_expiry(sh, e->expires);
  sh->count++;
  return 0;
}

/* A set over a present id: the new entry ne (same id and hash) takes the
 * old one's slot, its place in the probation queue and its mark; the old
 * one goes onto `dead`. Its neighbours in the queue are written, which an
 * in-place copy would not do, but a set over a present id is rare: the
 * core saves a loaded session with cas(), which writes in place. */
static void take_place(mt_shard *sh, mt_slot *s, mt_entry *ne,
                       mt_entry **dead) {
  mt_entry *oe = s->e;
  ne->used = oe->used;
  if (!oe->used) {
    ne->qprev = oe->qprev;
    ne->qnext = oe->qnext;
    ne->qnext_tag = oe->qnext_tag;
    if (oe == sh->qhead)
      set_qhead(sh, ne, sh->qhead_tag);
    else
      oe->qprev->qnext = ne;
    if (oe->qnext != NULL)
      oe->qnext->qprev = ne;
    else
      set_qtail(sh, ne);
  }
  s->e = ne;
  oe->next = *dead;
  *dead = oe;
}

int mt_set(mt_table *t, const char *sid, const char *json, size_t len,
           int64_t expires) {
  size_t n = strlen(sid);
  uint64_t h;
  mt_shard *sh;
  mt_slot *s;
  mt_entry *dead = NULL, *e;
  size_t cap;
  int64_t now;
  int rc = 0;
  /* One block for the entry, its id and its text, allocated and filled
   * before locking: the lock then covers pointer work only, whatever the
   * record's size. One allocation instead of two (entry, text) is one
   * malloc and one free fewer per new session, and an eviction frees
   * memory it has just read instead of a text nothing has touched since
   * it was written: in a full table of 100,000 sessions, a cache miss. */
  if (len >= SIZE_MAX / 2 || n >= SIZE_MAX / 4)
    return CSN_ENOMEM;
  /* Not through sid_hash(): an insert is mostly a new id, which no later
   * look-up on this thread is likely to repeat, so remembering it would
   * only cost the copy. */
  h = siphash(t->k0, t->k1, sid, n);
  sh = &t->shards[shard_index(t, h)];
  /* Three steps of asking the cache ahead, each overlapping a copy: the
   * shard's lines (rarely cached when the shards are many and the
   * requests spread), then the slots they point to, then the lock. */
  __builtin_prefetch(sh, 1);
  __builtin_prefetch((const char *)sh + 64, 1);
  cap = mt_text_cap(len);
  if ((e = csn__malloc(sizeof *e + n + 1 + cap)) == NULL)
    return CSN_ENOMEM;
  e->sid_len = n;
  memcpy(e->sid, sid, n + 1);
  e->json = inline_text(e);
  prefetch_slot(sh, h);
  prefetch_eviction(t, sh);
  memcpy(e->json, json, len);
  e->json[len] = '\0';
  e->next = NULL;
  e->hash = h;
  e->expires = expires;
  e->len = len;
  e->cap = cap;
  e->used = 0;
  now = mt_now(t);

  pthread_mutex_lock(&sh->lock);
  s = find_slot(sh, h, sid, n);
  if (s == NULL) {
    if (t->insert_sweep) sweep_on_set(t, sh, now, &dead);
    if (t->max_entries == 0 || reserve_slot(t)) {
      if (t->max_entries == 0) atomic_fetch_add(&t->total, 1);
      rc = link_new(sh, h, e);
    } else if (evict_own(t, sh, now, &dead)) {
      rc = link_new(sh, h, e); /* in the evicted entry's unit of the total */
    } else {
      /* Full: make room with no lock held (eviction may visit other
       * shards), then look again, since another thread may have inserted
       * this id meanwhile. */
      pthread_mutex_unlock(&sh->lock);
      make_room(t, shard_index(t, h), now);
      pthread_mutex_lock(&sh->lock);
      s = find_slot(sh, h, sid, n);
      if (s == NULL)
        rc = link_new(sh, h, e);
      else
        atomic_fetch_sub(&t->total, 1); /* give the slot back */
    }
    if (s == NULL && rc == 0)
      e = NULL;
    else if (s == NULL)
      atomic_fetch_sub(&t->total, 1); /* not linked: no memory to grow */
  }
  if (s != NULL) { /* present: the new entry takes the old one's place */
    take_place(sh, s, e, &dead);
    note_expiry(sh, expires);
    e = NULL;
  }
  pthread_mutex_unlock(&sh->lock);
  free_list(dead);
  csn__free(e); /* NULL unless not linked (rc != 0); its text is inline */
  return rc != 0 ? CSN_ENOMEM : CSN_OK;
}

void mt_clear(mt_table *t) {
  size_t i, b;
  for (i = 0; i < mt_shards(t); i++) {
    mt_shard *sh = &t->shards[i];
    mt_entry *dead = NULL;
    pthread_mutex_lock(&sh->lock);
    for (b = 0; b < sh->nslots; b++)
      if (live(&sh->slots[b])) unlink_entry(t, sh, &sh->slots[b], &dead);
    pthread_mutex_unlock(&sh->lock);
    free_list(dead);
  }
}

size_t mt_length(mt_table *t, int64_t now) {
  size_t i, live = 0;
  /* Expired entries are removed on the way, so the count is of live ones
   * and the sweep work is not wasted. */
  for (i = 0; i < mt_shards(t); i++) {
    mt_shard *sh = &t->shards[i];
    mt_sweep_shard(t, i, now);
    pthread_mutex_lock(&sh->lock);
    live += sh->count;
    pthread_mutex_unlock(&sh->lock);
  }
  return live;
}

size_t mt_count(const mt_table *t) { return atomic_load(&t->total); }

size_t mt_shards(const mt_table *t) { return (size_t)1 << t->shard_bits; }

size_t mt_slots(mt_table *t) {
  size_t i, n = 0;
  for (i = 0; i < mt_shards(t); i++) {
    pthread_mutex_lock(&t->shards[i].lock);
    n += t->shards[i].nslots;
    pthread_mutex_unlock(&t->shards[i].lock);
  }
  return n;
}

typedef struct snap_item {
  char *sid;
  char *json;
  size_t len;
} snap_item;

int mt_each(mt_table *t, int64_t now, int want_expired, csn_store_each_fn fn,
            void *ud) {
  size_t i;
  for (i = 0; i < mt_shards(t); i++) {
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
    for (b = 0; rc == CSN_OK && b < sh->nslots; b++) {
      mt_entry *e = sh->slots[b].e;
      if (!live(&sh->slots[b]) || expired(e, now) != want_expired) continue;
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
 * slots. */
static void release(mt_table *t, size_t nshards) {
  size_t i, b;
  for (i = 0; i < nshards; i++) {
    mt_shard *sh = &t->shards[i];
    for (b = 0; b < sh->nslots; b++)
      if (live(&sh->slots[b])) {
        entry_free(sh->slots[b].e);
      }
    csn__free(sh->slots);
    pthread_mutex_destroy(&sh->lock);
  }
  csn__free(t->block);
}

void mt_free(mt_table *t) {
  if (t != NULL) release(t, mt_shards(t));
}

/* log2 of the shard count for a process that may run on `cpus` CPUs:
 * four shards per CPU, rounded up to a power of two, within
 * [SHARD_BITS_MIN, SHARD_BITS]. */
static unsigned shard_bits_for(long cpus) {
  unsigned bits = SHARD_BITS_MIN;
  while (bits < SHARD_BITS && (1L << bits) < 4 * cpus) bits++;
  return bits;
}

/* The CPUs this process may run on: its affinity mask where there is one
 * (a container or a taskset allows fewer than the machine has), else the
 * online count; 1 when neither answers. */
static long cpus_allowed(void) {
  long n;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
#endif
  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 1;
}

int mt_new(mt_table **out, size_t max_entries, csn_clock_fn clock,
           void *clock_ud) {
  unsigned char key[16];
  mt_table *t;
  size_t i;
  int rc;
  *out = NULL;
  {
    /* Aligned by hand (the shards' lines, above): the allocator is the
     * user's (csn_set_allocator), which promises malloc's alignment. */
    void *block = csn__calloc(1, sizeof *t + _Alignof(mt_table) - 1);
    if (block == NULL) return CSN_ENOMEM;
    t = (mt_table *)(((uintptr_t)block + _Alignof(mt_table) - 1) &
                     ~(uintptr_t)(_Alignof(mt_table) - 1));
    t->block = block;
  }
  t->max_entries = max_entries;
  t->insert_sweep = 1;
  t->clock = clock;
  t->clock_ud = clock_ud;
  t->shard_bits = shard_bits_for(cpus_allowed());
  atomic_init(&t->total, 0);
  atomic_init(&t->last_full_sweep, INT64_MIN);
  rc = csn__random_bytes(key, sizeof key);
  if (rc != CSN_OK) {
    csn__free(t->block);
    return rc;
  }
  t->k0 = load_le64(key);
  t->k1 = load_le64(key + 8);
  for (i = 0; i < mt_shards(t); i++) {
    mt_shard *sh = &t->shards[i];
    sh->slots = csn__calloc(SLOTS_MIN, sizeof *sh->slots);
    if (sh->slots == NULL || pthread_mutex_init(&sh->lock, NULL) != 0) {
      csn__free(sh->slots);
      release(t, i);
      return CSN_ENOMEM;
    }
    sh->nslots = SLOTS_MIN;
    sh->min_exp = INT64_MAX;
    sh->sweep_min = INT64_MAX;
  }
  *out = t;
  return CSN_OK;
}
