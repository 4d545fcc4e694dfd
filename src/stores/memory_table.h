/* memory_table.h - the MemoryStore's data structure (private to
 * src/stores/memory*.c).
 *
 * A hash table from session id to (record text, expiry), built for many
 * worker threads: SHARDS independent tables, each behind its own mutex, an
 * id's shard and slot picked by SipHash under a random per-table key (so
 * that neither contention nor collisions can be steered from outside), an
 * atomic entry count, and the two clean-ups a table that must not leak
 * needs: sweeping expired entries and evicting when full. memory.c builds
 * the store's methods on it; memory_table.c explains the capacity rule.
 *
 * Two ways in:
 *   - whole operations (mt_set, mt_sweep, mt_length, mt_each, mt_clear),
 *     each taking and releasing the locks it needs;
 *   - a locked look-up for a method that decides itself what to do with an
 *     entry (get, cas, touch): mt_lock() finds the live entry with its
 *     shard locked, mt_replace() / mt_remove() change it, mt_unlock()
 *     releases the lock and only then frees what was replaced or removed,
 *     so the lock is never held across free() of a large record. */
#ifndef CSN_MEMORY_TABLE_H
#define CSN_MEMORY_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "csn/csn_store.h"

/* The most shards a table has; mt_shards() tells how many one uses. */
#define MT_SHARDS 64

typedef struct mt_table mt_table;
typedef struct mt_shard mt_shard;
typedef struct mt_slot mt_slot;

typedef struct mt_entry {
  /* What an eviction reads and writes comes first, in the block's first
   * 56 bytes (memory_table.c, evict_head): the entry that goes is the
   * oldest of its shard and long out of the cache, and each line of it
   * that the eviction touches is a wait. Before, its queue links were in
   * a second line that nothing had asked the cache for. */
  struct mt_entry *next; /* a list of removed entries, freed after unlocking */
  uint64_t hash;
  /* While !used: the shard's probation queue, oldest first (Capacity). */
  struct mt_entry *qnext, *qprev;
  /* NUL-terminated copy of the record, as stored: in the entry's own block
   * after sid (memory_table.c, mt_set) until a text that does not fit there
   * replaces it (mt_replace: then a block of its own). */
  char *json;
  size_t sid_len;
  /* The low bits of qnext's hash: the queue's new head hands its slot to
   * the eviction prefetch without a read of the new head itself
   * (memory_table.c, prefetch_eviction). */
  uint32_t qnext_tag;
  /* 1 once a later request read the entry back (a returning visitor);
   * eviction spares such entries while any other is left (memory_table.c,
   * Capacity). Set by mt_mark_used(); read under the shard's lock. */
  unsigned char used;
  int64_t expires; /* epoch ms, CSN_TIME_NONE = never */
  size_t len;
  size_t cap; /* bytes allocated at json: more than len (mt_text_cap) */
  char sid[]; /* NUL-terminated */
} mt_entry;

/* A look-up in progress: filled by mt_lock(), consumed by mt_unlock(). */
typedef struct mt_ref {
  mt_table *t;
  mt_shard *sh;
  struct mt_slot *slot; /* the entry's slot; NULL when none was found */
  mt_entry *dead;  /* removed entries, freed after unlocking */
  char *old;       /* replaced text, freed after unlocking */
} mt_ref;

/* A table whose count is kept near max_entries (0: unbounded), on `clock`
 * (NULL: the system clock). CSN_ENOMEM, or CSN_ECRYPTO without a random
 * hash key; the caller words the message. */
int mt_new(mt_table **out, size_t max_entries, csn_clock_fn clock,
           void *clock_ud);
void mt_free(mt_table *t);
/* Whether each insert also sweeps a couple of buckets of its shard for
 * expired entries (on, the default): what keeps a table with no
 * background sweep near its live size. A table that has one turns it off
 * (each insert then touches fewer cold entries). Call before the table is
 * shared. */
void mt_set_insert_sweep(mt_table *t, int on);
/* The table's clock, epoch ms. */
int64_t mt_now(const mt_table *t);

/* Lock sid's shard and return its live entry, or NULL. An entry that
 * expired by `now` is removed on the way (a read never returns it, and the
 * table should not keep it). Always follow with mt_unlock(). */
mt_entry *mt_lock(mt_table *t, const char *sid, int64_t now, mt_ref *ref);
/* Give the locked entry e the text json (taken over: csn_malloc'd with
 * cap bytes, NUL-terminated at len) and the expiry. The count does not
 * change. */
void mt_replace(mt_ref *ref, mt_entry *e, char *json, size_t len, size_t cap,
                int64_t expires);
/* Write json (len bytes) over the text of e, the entry locked by ref, in
 * the memory it has, and set the expiry: returns 1, or 0 when the text
 * does not fit (or, in a block of its own, would leave most of that block
 * unused) and nothing was changed. */
int mt_overwrite(mt_ref *ref, mt_entry *e, const char *json, size_t len,
                 int64_t expires);

/* Bytes to allocate for a stored text of len bytes (len < SIZE_MAX - 32):
 * its NUL and a little room, rounded to 16, so that a record that grows by
 * a few bytes (a counter gaining a digit) can still be written over in
 * place (mt_overwrite). */
static inline size_t mt_text_cap(size_t len) {
  return (len + 1 + 8 + 15) & ~(size_t)15;
}
/* The locked entry e was read back by a later request: protect it from
 * eviction while entries seen once remain (memory_table.c, Capacity). */
void mt_mark_used(mt_ref *ref, mt_entry *e);
/* Unlink the locked entry that mt_lock() returned. */
void mt_remove(mt_ref *ref);
void mt_unlock(mt_ref *ref);

/* Store a copy of json under sid: replaced in place if present, else
 * inserted, evicting if the table is full. Copies before locking. 0 or
 * CSN_ENOMEM. */
int mt_set(mt_table *t, const char *sid, const char *json, size_t len,
           int64_t expires);
/* Remove sid if present. */
void mt_delete(mt_table *t, const char *sid);

/* Remove what expired by `now` from shard i (0 <= i < mt_shards(t)), a few
 * buckets per lock hold; or from every shard. Return how many went. */
size_t mt_sweep_shard(mt_table *t, size_t i, int64_t now);
size_t mt_sweep(mt_table *t, int64_t now);
/* Live entries (expired ones are swept on the way). */
size_t mt_length(mt_table *t, int64_t now);
/* Call fn for each live entry (want_expired 0; expired ones are swept on
 * the way), or for each entry that expired by `now` and is still held
 * (want_expired 1; nothing is swept), with no lock held (fn may call the
 * table): one shard's entries are copied under its lock, then handed out.
 * Stops when fn returns non-zero. 0 or CSN_ENOMEM. */
int mt_each(mt_table *t, int64_t now, int want_expired, csn_store_each_fn fn,
            void *ud);
void mt_clear(mt_table *t);
/* Entries held, expired or not (for tests). */
size_t mt_count(const mt_table *t);
/* How many shards t uses (fixed when it is made, a power of two). */
size_t mt_shards(const mt_table *t);
/* Slots in the shards' arrays, all shards together (for tests). */
size_t mt_slots(mt_table *t);

/* memory.c, for tests: the table's mt_count() and mt_slots() behind a
 * csn_store (0 if it is not a MemoryStore). Declared in src/csn_int.h too;
 * memory_table.c includes both headers, so the two declarations cannot
 * drift apart. */
size_t csn__store_memory_raw_count(const csn_store *st);
size_t csn__store_memory_slots(csn_store *st);

#endif /* CSN_MEMORY_TABLE_H */
