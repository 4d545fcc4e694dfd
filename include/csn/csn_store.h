/* csn_store.h - writing a csession store: the method table and the kit.
 *
 * A store is a struct whose first member is `struct csn_store` (its `m`
 * points at a static, const method table) and a few functions. The core
 * calls the methods only through csn_store_get() & co. (csn.h), which check
 * arguments and ids, the table's version and the presence of optional
 * methods, so a method may assume a valid id and non-NULL pointers.
 *
 * The kit below is what every store needs and none should write again:
 *   - csn_store_set_error() / csn_store_fail(): error text, one way;
 *   - csn_record_splice_cookie(): touch without a JSON re-serialisation;
 *   - csn_sweeper_*: a background thread on the monotonic clock;
 *   - csn_group_*: group commit, one expensive step for concurrent writes;
 *   - csn_url_split() / csn_url_parse_query(): store URLs, strictly;
 *   - csn_pool_*: a bounded pool of client connections (a server store);
 *   - csn_strdup(), csn_free_secret(), csn_now_ms(), csn_mono_ms().
 *
 * docs/STORES.md walks through a complete store (examples/store_example.c)
 * written against this header alone; src/stores/memory.c is the production
 * example.
 *
 * Since 0.2 (0.1 declared the method table in csn.h). */
#ifndef CSN_STORE_H
#define CSN_STORE_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* The method table                                                         */
/* ------------------------------------------------------------------------ */

/* 1: get .. close (0.1). 2: adds cas (0.2). 3: adds all_expired. A table
 * only ever grows at the end; the core reads a member added in version N
 * only from a table whose `version` is >= N, so a store built against an
 * older header keeps working. Fill tables with designated initialisers. */
#define CSN_STORE_METHODS_VERSION 3

/* The store vtable (express-session's Store contract, sqlite3_vfs's shape).
 * A store sees only ids, the record's JSON text and its expiry instant.
 * Every method must be safe to call from several threads at once. NULL
 * marks an optional method as absent. On failure a method returns a
 * negative CSN_E* code and records a message with csn_store_set_error()
 * (the core adds the store's name and the operation). */
typedef struct csn_store_methods {
  int version; /* CSN_STORE_METHODS_VERSION when built against this header */
  const char *name;
  /* Required. *json is allocated with the csession allocator (csn_malloc);
   * CSN_ENOENT when missing or expired. The text must be returned exactly
   * as it was stored: cas() compares it byte for byte. */
  int (*get)(csn_store *st, const char *sid, char **json, size_t *len);
  /* Required. expires_ms is cookie.expires (epoch ms) or CSN_TIME_NONE for
   * a browser-session cookie (the store applies its default lifetime). */
  int (*set)(csn_store *st, const char *sid, const char *json, size_t len,
             int64_t expires_ms);
  /* Required. A missing id is not an error. */
  int (*destroy)(csn_store *st, const char *sid);
  /* Optional (recommended): refresh the expiry of an unchanged session.
   * json is {"cookie":{...}} only - the new cookie, no data members: keep
   * the stored data and replace its "cookie" member (a concurrent request
   * may have written newer data; csn_record_splice_cookie() does it). A
   * missing or expired id is not an error and is not created. */
  int (*touch)(csn_store *st, const char *sid, const char *json, size_t len,
               int64_t expires_ms);
  /* Optional administration. */
  int (*clear)(csn_store *st);
  int (*length)(csn_store *st, size_t *count);
  int (*all)(csn_store *st, csn_store_each_fn fn, void *userdata);
  int (*prune)(csn_store *st, size_t *removed);
  /* Required: release everything (stop threads, close connections). */
  void (*close)(csn_store *st);

  /* ---- version >= 2 ---------------------------------------------------- */

  /* Optional: compare-and-set, atomically with respect to every other
   * writer of the same store (other threads, and other processes for a
   * shared store): if the live record for sid has exactly the text
   * `expected` (expected_len bytes, as get() returned it), replace it with
   * json as set() would and return CSN_OK. Return CSN_ECONFLICT when the
   * stored text differs and CSN_ENOENT when there is no live record
   * (destroyed or expired); write nothing in either case. With it the core
   * merges concurrent requests instead of letting the last one win. */
  int (*cas)(csn_store *st, const char *sid, const char *expected,
             size_t expected_len, const char *json, size_t len,
             int64_t expires_ms);

  /* ---- version >= 3 ---------------------------------------------------- */

  /* Optional administration: the other half of all(). Call fn(sid, json,
   * len, userdata) once for each record that is still stored but has
   * expired - its stored expiry instant is in the past by the store's own
   * clock (the clock and the test its get() uses: what get() would refuse
   * as expired, and what prune() would remove now) - and for no live
   * record. Same text as all() hands out, same rules: a non-zero return
   * stops the walk (CSN_OK), fn runs with no lock held and may call the
   * store. A store whose backend deletes expired records itself and never
   * shows them (Redis key expiry) leaves it NULL: the core answers
   * CSN_ENOTSUP. For `csession list --expired` and operators. */
  int (*all_expired)(csn_store *st, csn_store_each_fn fn, void *userdata);
} csn_store_methods;

/* First member of every store's own struct. */
struct csn_store {
  const csn_store_methods *m;
};

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* In a method: record the message for csn_store_errmsg() (printf format;
 * NULL uses csn_strerror(err)). Returns err, so `return
 * csn_store_set_error(st, CSN_EIO, "...")` reads naturally. The message is
 * per thread: a store shared by workers keeps each worker's own. */
CSN_API int csn_store_set_error(csn_store *st, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* In a constructor (csn_store_X_new / csn_store_X_open, which all take
 * `char *errbuf, size_t errlen`): write the message into errbuf (when not
 * NULL) and into csn_last_error(), and return err. Every constructor
 * reports its failures through this one function, so callers may rely on
 * either place. Messages must not contain secrets (passwords, keys): name
 * the parameter, not its value. Since 0.2. */
CSN_API int csn_store_fail(char *errbuf, size_t errlen, int err,
                           const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

/* The touch a store without a JSON engine can do: `stored` with its
 * top-level "cookie" member replaced by the one in `fresh` (a record such
 * as touch() receives), every other byte of `stored` kept as it is (a
 * record written by Node keeps its exact text). A stored record without a
 * cookie gets one as its first member. *out is allocated with csn_malloc
 * (release with csn_free) and NUL-terminated; *outlen may be NULL.
 * Returns CSN_OK, CSN_EINVAL (fresh is not an object with a cookie
 * object), CSN_ECORRUPT (stored is not a JSON object) or CSN_ENOMEM.
 * Since 0.2. */
CSN_API int csn_record_splice_cookie(const char *stored, size_t slen,
                                     const char *fresh, size_t flen,
                                     char **out, size_t *outlen);

/* ------------------------------------------------------------------------ */
/* Background sweeper                                                       */
/* ------------------------------------------------------------------------ */

/* One thread that calls fn(sw, userdata) every interval, for removing
 * expired records off the request path. Waits run on CLOCK_MONOTONIC, so
 * setting the wall clock back or forth neither stalls nor races it. With
 * jitter_pct J (0..100) each wait is drawn uniformly from
 * interval*(1-J/100) .. interval*(1+J/100), so that processes started
 * together do not sweep a shared store together. Since 0.2. */
typedef struct csn_sweeper csn_sweeper;
typedef void (*csn_sweep_fn)(csn_sweeper *sw, void *userdata);

/* interval_ms >= 1. CSN_EINVAL, CSN_ENOMEM or CSN_EIO (no thread). */
CSN_API int csn_sweeper_start(csn_sweeper **out, int64_t interval_ms,
                              int jitter_pct, csn_sweep_fn fn,
                              void *userdata);
/* 1 once csn_sweeper_stop() was called: a long sweep checks it between
 * steps and returns early, so that closing a store is prompt. */
CSN_API int csn_sweeper_stopping(csn_sweeper *sw);
/* Run a sweep now instead of at the end of the current wait (tests, an
 * operator's "prune now"). */
CSN_API void csn_sweeper_wake(csn_sweeper *sw);
/* Stop: wakes the thread, waits for a sweep in progress to return, joins,
 * frees. NULL is a no-op. Never call it from fn. In a child of fork()
 * (which has no copy of the thread) it only frees: closing a store
 * inherited through fork() is safe. */
CSN_API void csn_sweeper_stop(csn_sweeper *sw);

/* ------------------------------------------------------------------------ */
/* Group commit                                                             */
/* ------------------------------------------------------------------------ */

/* Writers that share one expensive step (a transaction's commit, a
 * directory fsync) instead of paying one each. Every writer joins with a
 * member; the first to find no run in flight becomes the leader: it takes
 * every member queued so far, its own included, and calls fn(batch,
 * userdata) with no lock held, while later arrivals queue for the next
 * batch, which one of them leads once this run has returned. A member's
 * own work, done before it joined, is therefore covered by the run that
 * takes it, and csn_group_join() returns only after that run. With one
 * writer at a time every batch has one member; under load a batch holds
 * the writers that arrived during the previous run.
 *
 * A member is the first field of the writer's own record of its write,
 * which lives on its stack for the call: fn finds the records by casting
 * the members of the batch (a list in arrival order through `next`) and
 * writes each one's results into it. fn must not keep a member after it
 * returns, since its writer may return at once. The SQLite store (one
 * transaction per batch) and the file store (one directory fsync per
 * batch) use it. Since 0.2. */
typedef struct csn_group csn_group;
typedef struct csn_group_member {
  struct csn_group_member *next; /* the batch, in arrival order */
  int done_;                     /* the group's: not for fn or the writer */
} csn_group_member;
typedef void (*csn_group_fn)(csn_group_member *batch, void *userdata);

/* A group whose batches run fn(batch, userdata). CSN_EINVAL (fn NULL),
 * CSN_ENOMEM or CSN_EIO (no mutex or condition variable). */
CSN_API int csn_group_new(csn_group **out, csn_group_fn fn, void *userdata);
/* Queue `me` and wait until a run of fn that took it has returned (the
 * caller's own run if it leads). Safe from any number of threads. Never
 * call it from fn. */
CSN_API void csn_group_join(csn_group *g, csn_group_member *me);
/* Free a group no writer is in. NULL is a no-op. */
CSN_API void csn_group_free(csn_group *g);

/* ------------------------------------------------------------------------ */
/* Store URLs                                                               */
/* ------------------------------------------------------------------------ */

/* Split "scheme://rest?query" for an opener: checks that url starts with
 * `scheme` and "://", sets *rest / *rest_len to what lies between "://" and
 * '?' (may be empty) and *query to the text after '?' (NULL when there is
 * no '?'; "" after a bare '?'). CSN_EINVAL otherwise. Since 0.2. */
CSN_API int csn_url_split(const char *url, const char *scheme,
                          const char **rest, size_t *rest_len,
                          const char **query);

/* Query parameters, one at a time ("...?max=100&prune=5000"):
 * csn_url_param_next() walks the query: start with *cursor at the
 * character after '?' (or NULL for none); each call yields the next
 * "key=value" (borrowed slices of the URL) and returns 1, or 0 at the end,
 * or CSN_EINVAL for an empty parameter or one without '='. */
typedef struct csn_url_param {
  const char *key;
  size_t key_len;
  const char *value;
  size_t value_len;
} csn_url_param;
CSN_API int csn_url_param_next(const char **cursor, csn_url_param *p);
/* 1 if the parameter's key is `key`. */
CSN_API int csn_url_param_is(const csn_url_param *p, const char *key);
/* The value as a decimal integer within [lo, hi] (a leading '-' only when
 * lo < 0): CSN_OK, or CSN_EINVAL for anything else. */
CSN_API int csn_url_param_int(const csn_url_param *p, int64_t lo, int64_t hi,
                              int64_t *out);

/* ... or all at once, against a table (the usual way). */
enum csn_url_type {
  CSN_URL_INT = 1, /* out: int64_t *, bounded by [min, max] */
  CSN_URL_BOOL,    /* out: int *; 1/0, true/false, yes/no, on/off */
  CSN_URL_STR      /* out: char **, percent-decoded, NUL-free, yours
                      (csn_free); a value already there is freed first */
};
typedef struct csn_url_option {
  const char *key;
  int type; /* enum csn_url_type */
  int64_t min, max;
  void *out;
} csn_url_option;

/* Parse a query (NULL or "" for none) against opts[0..n): each key must be
 * in the table and appear once; values are checked by type. Outputs of
 * absent keys are left as they are (set defaults first). On failure
 * returns CSN_EINVAL (or CSN_ENOMEM) with "<store>: ..." naming the
 * offending parameter in errbuf and csn_last_error(); no value is echoed.
 * At most 64 options. Since 0.2. */
CSN_API int csn_url_parse_query(const char *query, const csn_url_option *opts,
                                size_t n, const char *store, char *errbuf,
                                size_t errlen);

/* A store on a client library that takes a URL of its own (libpq,
 * libmongoc) reads a few parameters itself and hands the rest on. Split
 * url (whose query starts at `query`, as csn_url_split() found it) by key:
 * *own gets the parameters named in keys[0..n) ("k=v&k2=v2", "" for none;
 * for csn_url_parse_query()), *rest gets url without them (and without the
 * '?' when nothing is left). Both are csn_malloc'd; free them with
 * csn_free_secret(), since either may hold a password. CSN_EINVAL for an
 * empty or malformed parameter (nothing echoed), CSN_ENOMEM; on failure
 * both are NULL. Since 0.2. */
CSN_API int csn_url_partition(const char *url, const char *query,
                              const char *const *keys, size_t n, char **own,
                              char **rest);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* A copy of s allocated with csn_malloc (release with csn_free); NULL for
 * NULL or on ENOMEM. Since 0.2. */
CSN_API char *csn_strdup(const char *s);
/* Zero a NUL-terminated string that may be a secret (a password), then
 * csn_free it, so that no copy is left in freed memory. NULL is a no-op.
 * Since 0.2. */
CSN_API void csn_free_secret(char *s);
/* The wall clock in epoch milliseconds (CLOCK_REALTIME): for expiry
 * instants, which are epoch based like cookie.expires. Since 0.2. */
CSN_API int64_t csn_now_ms(void);
/* A monotonic clock in milliseconds (CLOCK_MONOTONIC, arbitrary origin):
 * for deadlines and ages, which setting the wall clock must not move.
 * Since 0.2. */
CSN_API int64_t csn_mono_ms(void);

/* ------------------------------------------------------------------------ */
/* Connection pool                                                          */
/* ------------------------------------------------------------------------ */

/* The pool a store on a network server (Redis, PostgreSQL, ...) needs when
 * its client library's connection serves one thread at a time. A worker
 * borrows a connection for one operation and gives it back:
 *   - at most `max` connections, opened lazily; idle ones sit in a stack
 *     and the most recently given back is reused first (it is the one most
 *     likely to be alive);
 *   - a worker finding all of them busy waits on CLOCK_MONOTONIC for at
 *     most wait_ms, then fails with CSN_ETIMEDOUT and the message
 *     "<label>: all <max> connections busy for <wait_ms> ms (raise pool=)"
 *     rather than queue forever;
 *   - an idle connection may be dead without knowing it (the server
 *     restarted). Before a reused connection is handed to a
 *     non-idempotent operation, or to any operation after it sat idle for
 *     check_after_ms or more, idle_ok() checks it, and a failed one is
 *     closed and replaced;
 *   - an operation that fails on a reused connection found dead before it
 *     did anything (it sets `stale`) and is idempotent runs once more, on
 *     a new connection. A non-idempotent one is never replayed;
 *   - a connection the operation marked `broken`, or that usable() refuses
 *     at give-back, is closed instead of given back: the next borrower
 *     connects afresh.
 * All functions are safe to call from several threads at once, except
 * csn_pool_free(). Since 0.2. */
typedef struct csn_pool csn_pool;

/* One borrowed connection and what the operation found on it. */
typedef struct csn_pool_conn {
  void *handle; /* the client library's connection */
  int reused;   /* came from the idle stack (the server may have gone) */
  int stale;    /* set by the operation: reused, and found dead before it
                   did anything (an idempotent operation runs again) */
  int broken;   /* set by the operation: dead or out of step, close it */
} csn_pool_conn;

/* The client library, seen by the pool. ud is csn_pool_new()'s. */
typedef struct csn_pool_methods {
  /* Required: open a ready connection into *handle; CSN_OK, or a negative
   * CSN_E* code with the message already recorded (csn_store_set_error).
   * Runs without the pool's lock, so it may block up to its own timeout. */
  int (*connect)(void *ud, void **handle);
  /* Required: 1 if an idle connection is still usable (typically a poll
   * of its socket, which has nothing to read between commands). */
  int (*idle_ok)(void *ud, void *handle);
  /* Optional: at give-back, 0 to close a connection the operation left
   * unusable (a client library's own error state). NULL: all are. */
  int (*usable)(void *ud, void *handle);
  /* Required: free a connection. Must not block on the peer. */
  void (*close)(void *ud, void *handle);
} csn_pool_methods;

/* A pool of at most max (>= 1) connections for store st (which receives
 * the busy message). label starts that message (copied; "redis
 * 127.0.0.1:6379"). wait_ms >= 0 bounds the wait for a busy pool,
 * check_after_ms >= 0 is the idle time after which idle_ok() runs for an
 * idempotent operation. m and ud must outlive the pool. Connects nothing.
 * CSN_OK, CSN_EINVAL or CSN_ENOMEM. */
CSN_API int csn_pool_new(csn_pool **out, const csn_pool_methods *m, void *ud,
                         csn_store *st, const char *label, unsigned max,
                         int64_t wait_ms, int64_t check_after_ms);

/* An operation on a borrowed connection: CSN_OK or a negative CSN_E* code
 * (message recorded); sets c->stale / c->broken as described above. */
typedef int (*csn_pool_op)(void *ud, csn_pool_conn *c, void *arg);

/* Borrow a connection, run op(ud, c, arg) on it, give it back (or close
 * it); replay once on a new connection when idempotent and the first
 * attempt failed stale. Returns op's result, or the connect() or busy
 * error when no connection could be had (op then did not run). */
CSN_API int csn_pool_run(csn_pool *p, csn_pool_op op, void *arg,
                         int idempotent);

/* Close the idle connections and free the pool. Only when no operation
 * runs (a store's close()). NULL is a no-op. */
CSN_API void csn_pool_free(csn_pool *p);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_H */
