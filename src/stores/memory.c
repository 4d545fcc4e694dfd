/* memory.c - the MemoryStore: csession's in-process store, and the worked
 * example of a production store.
 *
 * OVERVIEW
 *
 * A store is a struct whose first member is `struct csn_store`, a static
 * method table (csn/csn_store.h) and a constructor. This file is all three
 * for the store every context gets when it is given none, as in
 * express-session. Read it top to bottom as a template: the methods come in
 * the order of the table, each with what the contract asks of it, and the
 * data structure they sit on is in memory_table.c, where a network store
 * would have its client library instead. Like a store outside the
 * library, it uses nothing but csn/csn_store.h (and that table). For a
 * first read, examples/store_example.c is the same contract in one file
 * with one lock; this is what it looks like at production scale.
 *
 * What it does:
 *
 *   - express-session's MemoryStore semantics (spec/stores.md section 2):
 *     records are kept as the JSON text the core hands over, get returns a
 *     copy of it byte for byte, an expired record is never returned, touch
 *     replaces only the stored record's "cookie" member.
 *
 *   - Compare-and-set (cas): the record is replaced only if its text is
 *     still the one the caller read. The core uses it to merge concurrent
 *     requests on one session instead of letting the last one win; touch
 *     uses it too, to splice the cookie without holding a lock across two
 *     JSON parses.
 *
 *   - Many worker threads: the table is sharded, one mutex per shard, so a
 *     method locks only the shard of its id (memory_table.h).
 *
 *   - It does not leak, unlike express-session's store, which forgets an
 *     abandoned session only when that id is read again: a background
 *     sweeper (the kit's csn_sweeper_*, on the monotonic clock) removes
 *     expired records every prune interval; with the thread turned off,
 *     every insert sweeps a couple of buckets of its own shard instead, so
 *     the table still stays near its live size. (A full table also sweeps
 *     the whole table before it evicts, at most once a second.)
 *
 *   - A bound: with max_entries set, a new id evicts another entry:
 *     expired ones first, then visitors seen once, and a returning
 *     visitor's entry only when nothing else is left (memory_table.c
 *     explains the tiers and why not refuse).
 *
 *   - Opened from a URL, memory://[?max=N&prune=MS], strictly: the kit
 *     parses the query and rejects unknown, repeated or malformed
 *     parameters, so a typo stops the server at start-up.
 *
 * What it leaves out, which a store you write may need:
 *
 *   - Persistence and sharing. Nothing survives a restart, and two
 *     processes have two stores. That is why its cas can be a mutex and a
 *     memcmp: a shared store must make the compare and the write one atomic
 *     step for every process (a transaction, a conditional UPDATE, a Lua
 *     script or WATCH/MULTI, a lock file).
 *
 *   - Connections. No pool, no reconnect, no timeouts; nothing here can
 *     fail except an allocation. A network store reports its backend's
 *     message with csn_store_set_error() and never echoes a password.
 *
 *   - A limit in bytes. max counts records, not their size.
 *
 *   - A key layout. A store shared with Node must use the layout of the
 *     Node store it replaces (spec/stores.md): a prefix, a table, a
 *     collection; ids are checked by the core before any method sees them.
 *
 *   - Encryption at rest (the file store has it, file_crypt.c). */
#include <stdint.h>
#include <string.h>

#include "csn/csn_store.h"
#include "memory_table.h"

#define PRUNE_DEFAULT_MS 60000
/* touch splices optimistically; after this many lost races it splices
 * under the lock, so that it always ends. */
#define TOUCH_RETRIES 8
/* Bound of the URL's integers: no sensible count or interval is longer. */
#define URL_INT_MAX INT64_C(999999999999999)

typedef struct mem_store {
  csn_store base; /* first: the method table */
  mt_table *table;
  csn_sweeper *sweeper; /* NULL when pruning runs on writes only */
} mem_store;

static mt_table *table_of(csn_store *st) { return ((mem_store *)st)->table; }

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

/* get: a copy of the live record, exactly as stored. */
static int mem_get(csn_store *st, const char *sid, char **json, size_t *len) {
  mt_table *t = table_of(st);
  mt_ref ref;
  mt_entry *e = mt_lock(t, sid, mt_now(t), &ref);
  char *copy = NULL;
  int found = e != NULL;
  /* Read back by a later request: a returning visitor, protected from
   * eviction while visitors seen once remain (memory_table.c). */
  if (found) mt_mark_used(&ref, e);
  if (found && (copy = csn_malloc(e->len + 1)) != NULL) {
    memcpy(copy, e->json, e->len + 1);
    *len = e->len;
  }
  mt_unlock(&ref);
  if (!found) return CSN_ENOENT;
  if (copy == NULL)
    return csn_store_set_error(st, CSN_ENOMEM,
                               "out of memory copying a record");
  *json = copy;
  return CSN_OK;
}

static int mem_set(csn_store *st, const char *sid, const char *json,
                   size_t len, int64_t expires_ms) {
  if (mt_set(table_of(st), sid, json, len, expires_ms) != CSN_OK)
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  return CSN_OK;
}

/* The compare of a cas, on the entry mt_lock() returned. */
static int cas_verdict(const mt_entry *e, const char *expected, size_t n) {
  if (e == NULL) return CSN_ENOENT; /* destroyed or expired: not re-created */
  if (e->len != n || memcmp(e->json, expected, n) != 0)
    return CSN_ECONFLICT; /* another writer got there first */
  return CSN_OK;
}

/* The compare-and-set itself, taking over `text` (cap bytes; freed
 * whatever the outcome). The compare and the write happen under one lock
 * hold: no other writer of this store can come between them. */
static int swap_if(csn_store *st, const char *sid, const char *expected,
                   size_t expected_len, char *text, size_t len, size_t cap,
                   int64_t expires_ms) {
  mt_table *t = table_of(st);
  mt_ref ref;
  mt_entry *e = mt_lock(t, sid, mt_now(t), &ref); /* expired: removed */
  int rc = cas_verdict(e, expected, expected_len);
  if (rc == CSN_OK) {
    mt_replace(&ref, e, text, len, cap, expires_ms);
    text = NULL;
  }
  mt_unlock(&ref);
  csn_free(text);
  return rc;
}

static int mem_cas(csn_store *st, const char *sid, const char *expected,
                   size_t expected_len, const char *json, size_t len,
                   int64_t expires_ms) {
  mt_table *t = table_of(st);
  mt_ref ref;
  mt_entry *e;
  char *copy;
  size_t cap;
  int rc = CSN_OK, done = 1;
  if (len >= SIZE_MAX - 32)
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  /* Nearly every save replaces a record with one of about its size (a
   * counter moved, the expiry pushed out): the new text is written over
   * the stored one, in its memory, under the lock the compare holds
   * anyway - no allocation, no free, and the lock covers no more than it
   * did, since the compare already reads a text of that size. */
  e = mt_lock(t, sid, mt_now(t), &ref); /* expired: removed */
  rc = cas_verdict(e, expected, expected_len);
  if (rc == CSN_OK && !mt_overwrite(&ref, e, json, len, expires_ms))
    done = 0;
  mt_unlock(&ref);
  if (done)
    return rc;
  /* It does not fit: copy with no lock held, as set() does, and compare
   * again, since another writer may have come meanwhile. */
  cap = mt_text_cap(len);
  if ((copy = csn_malloc(cap)) == NULL)
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  memcpy(copy, json, len);
  copy[len] = '\0';
  return swap_if(st, sid, expected, expected_len, copy, len, cap, expires_ms);
}

static int mem_destroy(csn_store *st, const char *sid) {
  mt_delete(table_of(st), sid);
  return CSN_OK;
}

/* touch: keep the stored data, replace its "cookie" member. */
static int splice_failed(csn_store *st, int rc) {
  if (rc == CSN_EINVAL)
    return csn_store_set_error(st, rc, "touch: record has no cookie object");
  if (rc == CSN_ECORRUPT)
    return csn_store_set_error(st, rc,
                               "touch: stored record is not a JSON object");
  return csn_store_set_error(st, rc, "out of memory");
}

/* The last resort of a touch that keeps losing races: splice under the
 * lock, which nobody can overtake. */
static int touch_locked(csn_store *st, const char *sid, const char *json,
                        size_t len, int64_t expires_ms) {
  mt_table *t = table_of(st);
  mt_ref ref;
  mt_entry *e = mt_lock(t, sid, mt_now(t), &ref);
  char *touched = NULL;
  size_t tlen = 0;
  int rc = CSN_OK;
  if (e != NULL) {
    rc = csn_record_splice_cookie(e->json, e->len, json, len, &touched, &tlen);
    if (rc == CSN_OK) mt_replace(&ref, e, touched, tlen, tlen + 1, expires_ms);
  }
  mt_unlock(&ref);
  return rc == CSN_OK ? CSN_OK : splice_failed(st, rc);
}

/* Optimistic: read the record, splice the new cookie into it with no lock
 * held (two JSON parses must not stall the shard), and write it back only
 * if the record did not change meanwhile - a compare-and-set. A missing or
 * expired record is not an error and is not created. */
static int mem_touch(csn_store *st, const char *sid, const char *json,
                     size_t len, int64_t expires_ms) {
  int attempt;
  for (attempt = 0; attempt < TOUCH_RETRIES; attempt++) {
    char *stored = NULL, *touched = NULL;
    size_t slen = 0, tlen = 0;
    int rc = mem_get(st, sid, &stored, &slen);
    if (rc == CSN_ENOENT) return CSN_OK;
    if (rc != CSN_OK) return rc;
    rc = csn_record_splice_cookie(stored, slen, json, len, &touched, &tlen);
    if (rc != CSN_OK) {
      csn_free(stored);
      return splice_failed(st, rc);
    }
    rc = swap_if(st, sid, stored, slen, touched, tlen, tlen + 1, expires_ms);
    csn_free(stored);
    if (rc != CSN_ECONFLICT) return rc == CSN_ENOENT ? CSN_OK : rc;
  }
  return touch_locked(st, sid, json, len, expires_ms);
}

/* ------------------------------------------------------------------------ */
/* Administration                                                           */
/* ------------------------------------------------------------------------ */

static int mem_clear(csn_store *st) {
  mt_clear(table_of(st));
  return CSN_OK;
}

static int mem_length(csn_store *st, size_t *count) {
  mt_table *t = table_of(st);
  *count = mt_length(t, mt_now(t));
  return CSN_OK;
}

/* The callback runs with no lock held, so it may call the store (destroy
 * what it sees, for instance). */
static int mem_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  mt_table *t = table_of(st);
  if (mt_each(t, mt_now(t), 0, fn, userdata) != CSN_OK)
    return csn_store_set_error(st, CSN_ENOMEM,
                               "out of memory listing sessions");
  return CSN_OK;
}

/* The expired entries the table still holds, by its clock. There are few
 * as a rule: a read of the id, length(), all(), the background sweep and
 * every insert's couple of buckets remove them as they come across them. */
static int mem_all_expired(csn_store *st, csn_store_each_fn fn,
                           void *userdata) {
  mt_table *t = table_of(st);
  if (mt_each(t, mt_now(t), 1, fn, userdata) != CSN_OK)
    return csn_store_set_error(st, CSN_ENOMEM,
                               "out of memory listing expired sessions");
  return CSN_OK;
}

static int mem_prune(csn_store *st, size_t *removed) {
  mt_table *t = table_of(st);
  *removed = mt_sweep(t, mt_now(t));
  return CSN_OK;
}

/* The background sweep: one shard at a time, each a few buckets per lock
 * hold, and a look at the stop flag between shards so that closing a big
 * store is prompt. */
static void mem_sweep(csn_sweeper *sw, void *userdata) {
  mem_store *ms = userdata;
  int64_t now = mt_now(ms->table);
  size_t i;
  for (i = 0; i < mt_shards(ms->table) && !csn_sweeper_stopping(sw); i++)
    mt_sweep_shard(ms->table, i, now);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

static void mem_close(csn_store *st) {
  mem_store *ms = (mem_store *)st;
  csn_sweeper_stop(ms->sweeper); /* first: it reads the table */
  mt_free(ms->table);
  csn_free(ms);
}

static const csn_store_methods memory_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "memory",
    .get = mem_get,
    .set = mem_set,
    .destroy = mem_destroy,
    .touch = mem_touch,
    .clear = mem_clear,
    .length = mem_length,
    .all = mem_all,
    .prune = mem_prune,
    .close = mem_close,
    .cas = mem_cas,
    .all_expired = mem_all_expired,
};

/* Both constructors end here; every failure goes through csn_store_fail(),
 * which fills errbuf (when there is one) and csn_last_error(). */
static int mem_new(const csn_memory_options *opts, csn_store **out,
                   char *errbuf, size_t errlen) {
  csn_memory_options o = {0};
  mem_store *ms;
  int rc;
  if (out == NULL)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "memory store: no output pointer");
  *out = NULL;
  if (opts != NULL) o = *opts;
  if (o.prune_interval_ms == 0) o.prune_interval_ms = PRUNE_DEFAULT_MS;
  ms = csn_malloc(sizeof *ms);
  if (ms == NULL)
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                          "memory store: out of memory");
  ms->base.m = &memory_methods;
  ms->sweeper = NULL;
  rc = mt_new(&ms->table, o.max_entries, o.clock, o.clock_userdata);
  if (rc != CSN_OK) {
    csn_free(ms);
    return csn_store_fail(errbuf, errlen, rc, "memory store: %s",
                          rc == CSN_ENOMEM ? "out of memory"
                                           : "no random hash key");
  }
  /* No jitter: an in-process store shares its table with nobody. */
  if (o.prune_interval_ms > 0) {
    rc = csn_sweeper_start(&ms->sweeper, o.prune_interval_ms, 0, mem_sweep,
                           ms);
    if (rc != CSN_OK) {
      mt_free(ms->table);
      csn_free(ms);
      return csn_store_fail(errbuf, errlen, rc,
                            "memory store: cannot start the sweeper thread");
    }
    /* The thread sweeps; inserts need not (memory_table.h). */
    mt_set_insert_sweep(ms->table, 0);
  }
  *out = &ms->base;
  return CSN_OK;
}

int csn_store_memory_new(const csn_memory_options *opts, csn_store **out) {
  return mem_new(opts, out, NULL, 0);
}

/* memory://[?max=N&prune=MS]: no host, no path, only the options. */
int csn_store_memory_open(const char *url, csn_store **out, char *errbuf,
                          size_t errlen) {
  int64_t max = 0, prune = 0;
  const csn_url_option opts[] = {
      {.key = "max", .type = CSN_URL_INT, .min = 0, .max = URL_INT_MAX,
       .out = &max},
      {.key = "prune", .type = CSN_URL_INT, .min = -URL_INT_MAX,
       .max = URL_INT_MAX, .out = &prune},
  };
  csn_memory_options o = {0};
  const char *rest, *query;
  size_t rest_len;
  int rc;
  if (out != NULL) *out = NULL;
  if (url == NULL || out == NULL ||
      csn_url_split(url, "memory", &rest, &rest_len, &query) != CSN_OK)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "memory store URL must start with memory://");
  if (rest_len != 0 || (query != NULL && *query == '\0'))
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "memory store URL takes no host or path, only "
                          "?max=N&prune=MS");
  rc = csn_url_parse_query(query, opts, sizeof opts / sizeof opts[0],
                           "memory store", errbuf, errlen);
  if (rc != CSN_OK) return rc;
  o.max_entries = (size_t)max;
  o.prune_interval_ms = prune;
  return mem_new(&o, out, errbuf, errlen);
}

/* For tests (src/csn_int.h): entries held, expired or not; 0 if st is not
 * a MemoryStore. Lets a test see the background sweep without a read. */
size_t csn__store_memory_raw_count(const csn_store *st) {
  if (st == NULL || st->m != &memory_methods) return 0;
  return mt_count(((const mem_store *)st)->table);
}

size_t csn__store_memory_slots(csn_store *st) {
  if (st == NULL || st->m != &memory_methods) return 0;
  return mt_slots(table_of(st));
}
