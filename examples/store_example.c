/* store_example.c - "listmap://", a complete session store in one sitting.
 *
 * OVERVIEW
 *
 * A csession store keeps one thing per session: the record's JSON text
 * under the session id, until an expiry instant. The core decides when to
 * load, save, touch and destroy, owns the record's format (what Node's
 * express-session writes) and validates every id before a store sees it.
 * A store has to keep text faithfully and answer atomically, from any
 * number of threads at once (csn/csn_store.h has the contract,
 * docs/STORES.md the guide):
 *
 *   - its struct starts with `csn_store base`, whose `m` points at one
 *     static const method table filled with designated initialisers and
 *     .version = CSN_STORE_METHODS_VERSION;
 *   - get() returns the stored text byte for byte, in a copy made with
 *     csn_malloc(); missing or expired is CSN_ENOENT;
 *   - set() keeps the text until expires_ms; CSN_TIME_NONE (a browser-
 *     session cookie) gets the store's default lifetime (here: until
 *     destroyed, as in express-session's MemoryStore);
 *   - touch() moves the expiry and replaces only the record's "cookie",
 *     keeping data another request may have just written; it never
 *     creates a record;
 *   - cas() writes only if the stored text is still what the caller read:
 *     the core merges concurrent requests through it, and a session that
 *     is gone stays gone (a logout wins);
 *   - failures carry a message: csn_store_set_error() in a method,
 *     csn_store_fail() in the opener, and never a secret in either.
 *
 * This store is one mutex around an array of {id, text, expires} kept
 * sorted by id. Lookups are a binary search, and the lock makes every
 * method atomic, including the read-compare-write of cas and touch. The
 * kit in csn/csn_store.h does the rest: csn_record_splice_cookie() for
 * touch, csn_sweeper_start() for a thread that drops expired records,
 * csn_url_split() and csn_url_parse_query() for the URL.
 *
 * What it leaves out, on purpose:
 *   - persistence: records live in this process, a restart logs everyone
 *     out and two processes do not share sessions. src/stores/file.c and
 *     src/stores/sqlite.c keep records on disk, and their cas is atomic
 *     across processes, which an in-process store never needs.
 *   - sharding: one lock for the whole table, held while touch splices
 *     JSON. src/stores/memory.c, the production in-process store, spreads
 *     ids over locked shards by a keyed hash (memory_table.c) and splices
 *     outside the lock.
 *   - eviction: nothing bounds the table but expiry (memory.c's ?max=N
 *     evicts the session closest to expiring).
 *   - scale: an insert or a removal moves the tail of the array and a
 *     sweep holds the lock for a whole pass: fine for thousands of
 *     sessions, not for millions.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <csn/csn.h>
#include <csn/csn_store.h>

#include "store_example.h"

#define SWEEP_DEFAULT_MS 60000
#define SWEEP_JITTER_PCT 10 /* so processes started together sweep apart */
#define ONE_YEAR_MS (INT64_C(365) * 24 * 3600 * 1000)

typedef struct entry {
  char *sid;       /* NUL-terminated */
  char *json;      /* exactly the bytes set() was given, plus a NUL */
  size_t len;      /* of json, without the NUL */
  int64_t expires; /* epoch ms; CSN_TIME_NONE: until destroyed */
} entry;

typedef struct listmap {
  csn_store base;       /* first: the core holds a csn_store * to this */
  pthread_mutex_t lock; /* guards v, n and cap */
  entry *v;             /* sorted by sid */
  size_t n, cap;
  csn_sweeper *sweeper; /* NULL with ?sweep=0 */
} listmap;

/* ---- The table (the functions that take a listmap run under its lock) ---- */

/* Expiry instants are the cookie's "expires", epoch milliseconds, so they
 * are compared with the wall clock (the kit's csn_now_ms). The sweeper's
 * waits, which must not stall when the clock is set back, run on the
 * monotonic clock: the kit again. */

static int expired(const entry *e, int64_t now) {
  return e->expires != CSN_TIME_NONE && e->expires <= now;
}

/* Everything is allocated with csn_malloc(): an application's allocator
 * hook (csn_set_allocator) sees the store's memory too, and get() hands
 * its copy to the core, which releases it with csn_free(). */
static char *dup_bytes(const char *s, size_t n) {
  char *p = n < SIZE_MAX ? csn_malloc(n + 1) : NULL;
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* The index of sid (*found = 1), or where it would be inserted. */
static size_t find(const listmap *lm, const char *sid, int *found) {
  size_t lo = 0, hi = lm->n;
  *found = 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(lm->v[mid].sid, sid);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static void remove_at(listmap *lm, size_t i) {
  csn_free(lm->v[i].sid);
  csn_free(lm->v[i].json);
  memmove(&lm->v[i], &lm->v[i + 1], (lm->n - i - 1) * sizeof *lm->v);
  lm->n--;
}

/* The live record for sid, or NULL. An expired record is removed on the
 * way: to every method it is simply missing. */
static entry *find_live(listmap *lm, const char *sid) {
  int found;
  size_t i = find(lm, sid, &found);
  if (!found) return NULL;
  if (expired(&lm->v[i], csn_now_ms())) {
    remove_at(lm, i);
    return NULL;
  }
  return &lm->v[i];
}

/* Install a new text; returns the old one for the caller to free. */
static char *replace(entry *e, char *json, size_t len, int64_t expires) {
  char *old = e->json;
  e->json = json;
  e->len = len;
  e->expires = expires;
  return old;
}

/* Drop every expired record in one pass; returns how many went. */
static size_t prune_locked(listmap *lm) {
  int64_t now = csn_now_ms();
  size_t i, kept = 0, removed;
  for (i = 0; i < lm->n; i++) {
    if (!expired(&lm->v[i], now)) {
      lm->v[kept++] = lm->v[i];
      continue;
    }
    csn_free(lm->v[i].sid);
    csn_free(lm->v[i].json);
  }
  removed = lm->n - kept;
  lm->n = kept;
  return removed;
}

static int reserve_one(listmap *lm) {
  size_t cap = lm->cap != 0 ? lm->cap * 2 : 16;
  entry *nv;
  if (lm->n < lm->cap) return CSN_OK;
  if (cap > SIZE_MAX / sizeof *nv) return CSN_ENOMEM;
  if ((nv = csn_malloc(cap * sizeof *nv)) == NULL) return CSN_ENOMEM;
  if (lm->n > 0) memcpy(nv, lm->v, lm->n * sizeof *nv);
  csn_free(lm->v);
  lm->v = nv;
  lm->cap = cap;
  return CSN_OK;
}

/* ---- Methods. The core has already checked the arguments and the id. ----- */

static int lm_get(csn_store *st, const char *sid, char **json, size_t *len) {
  listmap *lm = (listmap *)st;
  entry *e;
  int rc = CSN_ENOENT;
  pthread_mutex_lock(&lm->lock);
  if ((e = find_live(lm, sid)) != NULL) {
    *json = dup_bytes(e->json, e->len);
    *len = e->len;
    rc = *json != NULL ? CSN_OK : CSN_ENOMEM;
  }
  pthread_mutex_unlock(&lm->lock);
  if (rc == CSN_ENOMEM)
    return csn_store_set_error(st, rc, "out of memory copying a record");
  return rc; /* CSN_ENOENT is an answer, not a failure: no message */
}

static int lm_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  listmap *lm = (listmap *)st;
  /* Copy before locking: the lock then covers pointer work only. */
  char *text = dup_bytes(json, len), *key = dup_bytes(sid, strlen(sid));
  char *old = NULL;
  int found, rc = CSN_OK;
  size_t i;
  if (text == NULL || key == NULL) {
    csn_free(text);
    csn_free(key);
    return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  }
  pthread_mutex_lock(&lm->lock);
  i = find(lm, sid, &found);
  if (found) {
    old = replace(&lm->v[i], text, len, expires_ms);
    text = NULL; /* the table owns it now */
  } else if ((rc = reserve_one(lm)) == CSN_OK) {
    memmove(&lm->v[i + 1], &lm->v[i], (lm->n - i) * sizeof *lm->v);
    lm->v[i] = (entry){.sid = key, .json = text, .len = len,
                       .expires = expires_ms};
    lm->n++;
    text = key = NULL;
  }
  pthread_mutex_unlock(&lm->lock);
  csn_free(old);
  csn_free(text); /* left over only on failure */
  csn_free(key);  /* ... or when the id was already there */
  if (rc != CSN_OK)
    return csn_store_set_error(st, rc, "out of memory growing the table");
  return CSN_OK;
}

static int lm_destroy(csn_store *st, const char *sid) {
  listmap *lm = (listmap *)st;
  int found;
  size_t i;
  pthread_mutex_lock(&lm->lock);
  i = find(lm, sid, &found);
  if (found) remove_at(lm, i);
  pthread_mutex_unlock(&lm->lock);
  return CSN_OK; /* a missing id is not an error */
}

/* The splice runs under the lock: reading the stored data and writing it
 * back must be one step, or a set() landing in between would be undone.
 * (memory.c splices outside its lock and installs the result only if the
 * record did not change meanwhile, retrying otherwise.) */
static int lm_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  listmap *lm = (listmap *)st;
  char *spliced = NULL;
  size_t slen = 0;
  entry *e;
  int rc = CSN_OK;
  pthread_mutex_lock(&lm->lock);
  if ((e = find_live(lm, sid)) != NULL) { /* missing: nothing is created */
    rc = csn_record_splice_cookie(e->json, e->len, json, len, &spliced,
                                  &slen);
    if (rc == CSN_OK) spliced = replace(e, spliced, slen, expires_ms);
  }
  pthread_mutex_unlock(&lm->lock);
  csn_free(spliced); /* the old text, or NULL */
  if (rc == CSN_EINVAL)
    return csn_store_set_error(st, rc, "the new record has no cookie object");
  if (rc == CSN_ECORRUPT)
    return csn_store_set_error(st, rc, "the stored record is not an object");
  if (rc != CSN_OK) return csn_store_set_error(st, rc, NULL);
  return CSN_OK;
}

/* Compare-and-set, the method that makes concurrent requests safe. Text is
 * compared byte for byte, which is why get() must never re-serialise: a
 * record Node wrote with its own spacing still equals what get() gave.
 * Neither CSN_ECONFLICT nor CSN_ENOENT is a failure: no message. */
static int lm_cas(csn_store *st, const char *sid, const char *expected,
                  size_t expected_len, const char *json, size_t len,
                  int64_t expires_ms) {
  listmap *lm = (listmap *)st;
  char *text = dup_bytes(json, len);
  entry *e;
  int rc;
  if (text == NULL) return csn_store_set_error(st, CSN_ENOMEM, "out of memory");
  pthread_mutex_lock(&lm->lock);
  if ((e = find_live(lm, sid)) == NULL) {
    rc = CSN_ENOENT; /* destroyed or expired since it was read: stays gone */
  } else if (e->len != expected_len ||
             memcmp(e->json, expected, expected_len) != 0) {
    rc = CSN_ECONFLICT; /* another writer won: the core merges and retries */
  } else {
    text = replace(e, text, len, expires_ms); /* now the old text */
    rc = CSN_OK;
  }
  pthread_mutex_unlock(&lm->lock);
  csn_free(text);
  return rc;
}

/* ---- Administration (operators, the `csession` command) ------------------ */

static int lm_clear(csn_store *st) {
  listmap *lm = (listmap *)st;
  pthread_mutex_lock(&lm->lock);
  while (lm->n > 0) remove_at(lm, lm->n - 1);
  pthread_mutex_unlock(&lm->lock);
  return CSN_OK;
}

static int lm_length(csn_store *st, size_t *count) {
  listmap *lm = (listmap *)st;
  pthread_mutex_lock(&lm->lock);
  prune_locked(lm); /* so that only live records are counted */
  *count = lm->n;
  pthread_mutex_unlock(&lm->lock);
  return CSN_OK;
}

static int lm_prune(csn_store *st, size_t *removed) {
  listmap *lm = (listmap *)st;
  pthread_mutex_lock(&lm->lock);
  *removed = prune_locked(lm);
  pthread_mutex_unlock(&lm->lock);
  return CSN_OK;
}

/* Copy under the lock, call back without it: the callback may call the
 * store (destroy what it sees) without deadlocking. */
static int lm_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  listmap *lm = (listmap *)st;
  entry *snap;
  size_t n = 0, i;
  int rc = CSN_OK, stop = 0;
  pthread_mutex_lock(&lm->lock);
  prune_locked(lm);
  if ((snap = csn_malloc((lm->n + 1) * sizeof *snap)) == NULL) rc = CSN_ENOMEM;
  for (i = 0; rc == CSN_OK && i < lm->n; i++) {
    entry *c = &snap[n++]; /* counted first, so a half copy is freed too */
    c->sid = dup_bytes(lm->v[i].sid, strlen(lm->v[i].sid));
    c->json = dup_bytes(lm->v[i].json, lm->v[i].len);
    c->len = lm->v[i].len;
    if (c->sid == NULL || c->json == NULL) rc = CSN_ENOMEM;
  }
  pthread_mutex_unlock(&lm->lock);
  for (i = 0; i < n; i++) {
    if (rc == CSN_OK && !stop)
      stop = fn(snap[i].sid, snap[i].json, snap[i].len, userdata) != 0;
    csn_free(snap[i].sid);
    csn_free(snap[i].json);
  }
  csn_free(snap);
  if (rc != CSN_OK)
    return csn_store_set_error(st, rc, "out of memory listing sessions");
  return CSN_OK;
}

/* ---- Life cycle ---------------------------------------------------------- */

/* On the sweeper's thread, every ?sweep= milliseconds (jittered). One
 * short pass, so there is no need to check csn_sweeper_stopping(). */
static void sweep(csn_sweeper *sw, void *userdata) {
  listmap *lm = userdata;
  (void)sw;
  pthread_mutex_lock(&lm->lock);
  prune_locked(lm);
  pthread_mutex_unlock(&lm->lock);
}

static void lm_close(csn_store *st) {
  listmap *lm = (listmap *)st;
  csn_sweeper_stop(lm->sweeper); /* first: it uses the table (NULL: no-op) */
  lm_clear(st);
  csn_free(lm->v);
  pthread_mutex_destroy(&lm->lock);
  csn_free(lm);
}

/* Named members: a reader sees which method is which, and a member added
 * to the table by a later version is simply left NULL here. */
static const csn_store_methods listmap_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "listmap",
    .get = lm_get,
    .set = lm_set,
    .destroy = lm_destroy,
    .touch = lm_touch,
    .clear = lm_clear,
    .length = lm_length,
    .all = lm_all,
    .prune = lm_prune,
    .close = lm_close,
    .cas = lm_cas, /* version >= 2 */
};

int example_store_open(const char *url, csn_store **out, char *errbuf,
                       size_t errlen) {
  int64_t sweep_ms = SWEEP_DEFAULT_MS; /* defaults first */
  const csn_url_option opts[] = {
      {.key = "sweep", .type = CSN_URL_INT, .max = ONE_YEAR_MS,
       .out = &sweep_ms},
  };
  const char *rest, *query;
  size_t rest_len;
  listmap *lm;
  int rc;

  if (out == NULL)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL, "listmap: no output");
  *out = NULL;
  /* Messages say what is wrong and never echo the URL: other stores' URLs
   * carry passwords, and a habit is easier to keep than an exception. */
  if (csn_url_split(url, "listmap", &rest, &rest_len, &query) != CSN_OK)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "listmap: expected listmap://[?sweep=MS]");
  if (rest_len != 0)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "listmap: nothing may follow listmap:// but '?'");
  rc = csn_url_parse_query(query, opts, sizeof opts / sizeof opts[0],
                           "listmap", errbuf, errlen);
  if (rc != CSN_OK) return rc; /* errbuf and csn_last_error() say why */

  if ((lm = csn_malloc(sizeof *lm)) == NULL)
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM, "listmap: out of memory");
  memset(lm, 0, sizeof *lm);
  lm->base.m = &listmap_methods;
  if (pthread_mutex_init(&lm->lock, NULL) != 0) {
    csn_free(lm);
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                          "listmap: cannot create a mutex");
  }
  if (sweep_ms > 0)
    rc = csn_sweeper_start(&lm->sweeper, sweep_ms, SWEEP_JITTER_PCT, sweep,
                           lm);
  if (rc != CSN_OK) {
    pthread_mutex_destroy(&lm->lock);
    csn_free(lm);
    return csn_store_fail(errbuf, errlen, rc,
                          "listmap: cannot start the sweeper (%s)",
                          csn_strerror(rc));
  }
  *out = &lm->base;
  return CSN_OK;
}
