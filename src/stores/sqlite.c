/* sqlite.c - SQLite store sharing connect-sqlite3's table.
 *
 * The contract is in include/csn/csn_store_sqlite.h; this file explains how.
 *
 * Connections. A sqlite3 handle may be used by one thread at a time (we open
 * with SQLITE_OPEN_NOMUTEX and never share one concurrently), so the store
 * keeps a pool: a worker borrows a connection, runs one statement and gives it
 * back. Connections are opened lazily up to pool_size; a worker finding none
 * free waits on a condition variable. Each connection keeps its own prepared
 * statements, created on first use, so a request costs no SQL parsing.
 *
 * Locking. The database runs in WAL mode: readers never block the writer and
 * the writer never blocks readers. Writers still take turns; every statement
 * here is a single autocommit statement, which SQLite starts as a write
 * transaction when it writes, so a waiting writer goes through the busy
 * handler (sqlite3_busy_timeout) instead of failing with SQLITE_BUSY at once,
 * as an explicit read-then-write transaction could. That is what keeps
 * "database is locked" from surfacing under normal concurrent load, even
 * with a Node process writing the same file.
 *
 * Memory. This file is built into its own library, which sees only the
 * public csession API. Records handed back must be freed with csn_free(), so
 * they are allocated with jansson's allocator functions, which csession
 * points at its own allocator hook (csn_set_allocator sets both).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "csn/csn_store_sqlite.h"

#define SQ_DEFAULT_PRUNE_MS INT64_C(600000)
#define SQ_DEFAULT_BUSY_MS 5000
#define SQ_DEFAULT_POOL 8
#define SQ_DAY_MS INT64_C(86400000)
#define SQ_PRUNE_BATCH 1000
#define SQ_TABLE_MAX 64

enum {
  SQ_GET,
  SQ_SET,
  SQ_DESTROY,
  SQ_TOUCH,
  SQ_CLEAR,
  SQ_LENGTH,
  SQ_ALL,
  SQ_PRUNE,
  SQ_NSTMT
};

typedef struct sq_conn {
  sqlite3 *db;
  sqlite3_stmt *st[SQ_NSTMT];
  struct sq_conn *next;
} sq_conn;

typedef struct sq_store {
  csn_store base; /* first: the vtable pointer */
  char *path;
  char *sql[SQ_NSTMT];
  int busy_ms;
  unsigned pool_max;
  /* The pool: free list, open count, waiters. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_mutex_t wmu; /* one writer at a time in this process */
  sq_conn *free;
  unsigned n_open;
  /* Prune thread. */
  int64_t prune_ms;
  int has_pruner;
  pthread_t pruner;
  int stop; /* under mu; the pruner waits on cv too */
} sq_store;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* This store is its own shared library and cannot reach the core's csn__
 * internals; the public csn_malloc()/csn_free() use the same allocator. */
#define sq_malloc csn_malloc
#define sq_free csn_free

static char *sq_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = sq_malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (errbuf == NULL || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

static int table_name_valid(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > SQ_TABLE_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = t[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && (i == 0 || c < '0' || c > '9')) return 0;
  }
  return 1;
}

static int sq_fail(sq_store *s, sqlite3 *db, const char *what) {
  return csn_store_set_error(&s->base, CSN_EIO, "sqlite %s (%s): %s", what,
                             s->path, db ? sqlite3_errmsg(db) : "no handle");
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static void conn_close(sq_conn *c) {
  if (c == NULL) return;
  for (int i = 0; i < SQ_NSTMT; i++) sqlite3_finalize(c->st[i]);
  sqlite3_close_v2(c->db);
  sq_free(c);
}

static int conn_open(sq_store *s, sq_conn **out) {
  sq_conn *c = sq_malloc(sizeof *c);
  if (c == NULL) return CSN_ENOMEM;
  memset(c, 0, sizeof *c);
  int rc = sqlite3_open_v2(s->path, &c->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    int err = sq_fail(s, c->db, "open");
    conn_close(c);
    return err;
  }
  sqlite3_busy_timeout(c->db, s->busy_ms);
  *out = c;
  return CSN_OK;
}

/* Borrow a connection (opening one if the pool is not full yet). */
static int conn_get(sq_store *s, sq_conn **out) {
  pthread_mutex_lock(&s->mu);
  while (s->free == NULL && s->n_open >= s->pool_max)
    pthread_cond_wait(&s->cv, &s->mu);
  if (s->free != NULL) {
    *out = s->free;
    s->free = s->free->next;
    pthread_mutex_unlock(&s->mu);
    return CSN_OK;
  }
  s->n_open++;
  pthread_mutex_unlock(&s->mu);
  int rc = conn_open(s, out);
  if (rc != CSN_OK) {
    pthread_mutex_lock(&s->mu);
    s->n_open--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  return rc;
}

static void conn_put(sq_store *s, sq_conn *c) {
  pthread_mutex_lock(&s->mu);
  c->next = s->free;
  s->free = c;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* The connection's prepared statement `i`, reset and unbound. */
static sqlite3_stmt *stmt(sq_store *s, sq_conn *c, int i) {
  if (c->st[i] == NULL) {
    if (sqlite3_prepare_v3(c->db, s->sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &c->st[i], NULL) != SQLITE_OK) {
      sq_fail(s, c->db, "prepare");
      return NULL;
    }
  }
  return c->st[i];
}

/* Finish a statement: reset it so it releases its read snapshot at once. */
static void done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/* Run a statement that writes; *changes gets the rows affected.
 *
 * Writers of this process queue on wmu instead of on SQLite's lock. SQLite
 * lets one writer in at a time anyway, but its busy handler polls with
 * sleeps, which is unfair: under steady contention one thread can lose every
 * race until its busy timeout expires and "database is locked" reaches the
 * user. A mutex queues our own writers; the busy timeout is then left to
 * arbitrate with other processes (a Node app on the same file), and one
 * retry covers a lock that another process held for the whole timeout. */
static int run(sq_store *s, sq_conn *c, sqlite3_stmt *st, const char *what,
               int *changes) {
  int rc;
  pthread_mutex_lock(&s->wmu);
  for (int attempt = 0;; attempt++) {
    rc = sqlite3_step(st);
    if ((rc & 0xff) != SQLITE_BUSY || attempt == 1) break;
    sqlite3_reset(st);
  }
  if (changes != NULL && rc == SQLITE_DONE) *changes = sqlite3_changes(c->db);
  pthread_mutex_unlock(&s->wmu);
  done(st);
  if (rc != SQLITE_DONE) return sq_fail(s, c->db, what);
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Store methods                                                            */
/* ------------------------------------------------------------------------ */

static int sq_bad_id(sq_store *s, const char *sid) {
  if (sid != NULL && csn_store_id_valid(sid)) return 0;
  csn_store_set_error(&s->base, CSN_EINVAL, "invalid session id");
  return 1;
}

static int sq_get(csn_store *st, const char *sid, char **json, size_t *len) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  if (sq_bad_id(s, sid)) return CSN_EINVAL;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_GET);
  if (q == NULL) {
    conn_put(s, c);
    return CSN_EIO;
  }
  sqlite3_bind_text(q, 1, sid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, now_ms());
  int step = sqlite3_step(q);
  if (step == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(q, 0);
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    char *copy = t ? sq_malloc(n + 1) : NULL;
    if (t == NULL) {
      rc = csn_store_set_error(st, CSN_ECORRUPT, "session %s has no data",
                               sid);
    } else if (copy == NULL) {
      rc = CSN_ENOMEM;
    } else {
      memcpy(copy, t, n);
      copy[n] = '\0';
      *json = copy;
      if (len != NULL) *len = n;
    }
  } else if (step == SQLITE_DONE) {
    rc = CSN_ENOENT;
  } else {
    rc = sq_fail(s, c->db, "get");
  }
  done(q);
  conn_put(s, c);
  return rc;
}

static int sq_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  if (sq_bad_id(s, sid)) return CSN_EINVAL;
  if (json == NULL || len > (size_t)INT32_MAX)
    return csn_store_set_error(st, CSN_EINVAL, "set: bad record");
  /* connect-sqlite3: the cookie's expiry, or one day for a browser-session
   * cookie. */
  int64_t exp = expires_ms == CSN_TIME_NONE ? now_ms() + SQ_DAY_MS : expires_ms;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_SET);
  if (q == NULL) {
    rc = CSN_EIO;
  } else {
    sqlite3_bind_text(q, 1, sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, exp);
    sqlite3_bind_text(q, 3, json, (int)len, SQLITE_STATIC);
    rc = run(s, c, q, "set", NULL);
  }
  conn_put(s, c);
  return rc;
}

static int sq_destroy(csn_store *st, const char *sid) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  if (sq_bad_id(s, sid)) return CSN_EINVAL;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_DESTROY);
  if (q == NULL) {
    rc = CSN_EIO;
  } else {
    sqlite3_bind_text(q, 1, sid, -1, SQLITE_STATIC);
    rc = run(s, c, q, "destroy", NULL);
  }
  conn_put(s, c);
  return rc;
}

static int sq_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  if (sq_bad_id(s, sid)) return CSN_EINVAL;
  if (len > (size_t)INT32_MAX) return CSN_EINVAL;
  int64_t now = now_ms();
  int64_t exp = expires_ms == CSN_TIME_NONE ? now + SQ_DAY_MS : expires_ms;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_TOUCH);
  if (q == NULL) {
    rc = CSN_EIO;
  } else {
    sqlite3_bind_int64(q, 1, exp);
    sqlite3_bind_text(q, 2, sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, now);
    if (json != NULL)
      sqlite3_bind_text(q, 4, json, (int)len, SQLITE_STATIC);
    else
      sqlite3_bind_null(q, 4);
    rc = run(s, c, q, "touch", NULL);
  }
  conn_put(s, c);
  return rc;
}

static int sq_clear(csn_store *st) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_CLEAR);
  rc = q ? run(s, c, q, "clear", NULL) : CSN_EIO;
  conn_put(s, c);
  return rc;
}

static int sq_length(csn_store *st, size_t *count) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_LENGTH);
  if (q == NULL) {
    rc = CSN_EIO;
  } else {
    sqlite3_bind_int64(q, 1, now_ms());
    if (sqlite3_step(q) == SQLITE_ROW)
      *count = (size_t)sqlite3_column_int64(q, 0);
    else
      rc = sq_fail(s, c->db, "length");
    done(q);
  }
  conn_put(s, c);
  return rc;
}

static int sq_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_ALL);
  if (q == NULL) {
    conn_put(s, c);
    return CSN_EIO;
  }
  /* The callback runs while the statement holds a read snapshot; WAL lets
   * writers proceed meanwhile. */
  sqlite3_bind_int64(q, 1, now_ms());
  for (;;) {
    int step = sqlite3_step(q);
    if (step == SQLITE_DONE) break;
    if (step != SQLITE_ROW) {
      rc = sq_fail(s, c->db, "all");
      break;
    }
    const char *sid = (const char *)sqlite3_column_text(q, 0);
    const char *sess = (const char *)sqlite3_column_text(q, 1);
    size_t n = (size_t)sqlite3_column_bytes(q, 1);
    if (sid == NULL || sess == NULL || !csn_store_id_valid(sid)) continue;
    if (fn(sid, sess, n, userdata) != 0) break;
  }
  done(q);
  conn_put(s, c);
  return rc;
}

/* Delete expired rows in batches, so a long backlog never holds the write
 * lock for long; `stop` (may be NULL) is polled between batches. */
static int prune_batches(sq_store *s, size_t *removed, const int *stop) {
  sq_conn *c;
  size_t total = 0;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_PRUNE);
  if (q == NULL) rc = CSN_EIO;
  while (rc == CSN_OK) {
    int changes = 0;
    sqlite3_bind_int64(q, 1, now_ms());
    sqlite3_bind_int(q, 2, SQ_PRUNE_BATCH);
    rc = run(s, c, q, "prune", &changes);
    total += (size_t)(changes > 0 ? changes : 0);
    if (rc != CSN_OK || changes < SQ_PRUNE_BATCH) break;
    if (stop != NULL) {
      pthread_mutex_lock(&s->mu);
      int halt = s->stop;
      pthread_mutex_unlock(&s->mu);
      if (halt) break;
    }
  }
  conn_put(s, c);
  if (removed != NULL) *removed = total;
  return rc;
}

static int sq_prune(csn_store *st, size_t *removed) {
  return prune_batches((sq_store *)st, removed, NULL);
}

static void *pruner_main(void *arg) {
  sq_store *s = arg;
  for (;;) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(s->prune_ms / 1000);
    ts.tv_nsec += (long)(s->prune_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    /* cv is shared with pool waiters, so wake-ups may be for them: loop
     * until the deadline passes or stop is set. */
    while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {
    }
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop) return NULL;
    prune_batches(s, NULL, &s->stop);
  }
}

static void sq_close(csn_store *st) {
  sq_store *s = (sq_store *)st;
  if (s->has_pruner) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->pruner, NULL);
  }
  /* Closing the last connection checkpoints the WAL. */
  while (s->free != NULL) {
    sq_conn *c = s->free;
    s->free = c->next;
    conn_close(c);
  }
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->wmu);
  pthread_cond_destroy(&s->cv);
  for (int i = 0; i < SQ_NSTMT; i++) sq_free(s->sql[i]);
  sq_free(s->path);
  sq_free(s);
}

static const csn_store_methods sq_methods = {
    CSN_STORE_METHODS_VERSION,
    "sqlite",
    sq_get,
    sq_set,
    sq_destroy,
    sq_touch,
    sq_clear,
    sq_length,
    sq_all,
    sq_prune,
    sq_close,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* The statements, with the (validated) table name quoted in. touch keeps
 * connect-sqlite3's "only while still valid" rule and swaps the stored
 * cookie for the caller's with json_set, leaving the data untouched. */
static const char *const sq_templates[SQ_NSTMT] = {
    "SELECT sess FROM \"%s\" WHERE sid = ?1 AND ?2 <= expired",
    "INSERT OR REPLACE INTO \"%s\" (sid, expired, sess) VALUES (?1, ?2, ?3)",
    "DELETE FROM \"%s\" WHERE sid = ?1",
    "UPDATE \"%s\" SET expired = ?1, sess = CASE WHEN json_valid(sess) AND "
    "json_valid(?4) AND json_type(?4, '$.cookie') = 'object' THEN "
    "json_set(sess, '$.cookie', json(json_extract(?4, '$.cookie'))) ELSE sess "
    "END WHERE sid = ?2 AND ?3 <= expired",
    "DELETE FROM \"%s\"",
    "SELECT count(*) FROM \"%s\" WHERE ?1 <= expired",
    "SELECT sid, sess FROM \"%s\" WHERE ?1 <= expired",
    "DELETE FROM \"%s\" WHERE rowid IN (SELECT rowid FROM \"%s\" WHERE ?1 > "
    "expired LIMIT ?2)",
};

/* Create the schema and switch to WAL (a property of the file, so once). */
static int sq_schema(sq_store *s, const char *table, char *errbuf,
                     size_t errlen) {
  sq_conn *c;
  char sql[512];
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) {
    set_errbuf(errbuf, errlen, "%s", csn_store_errmsg(&s->base));
    return rc;
  }
  snprintf(sql, sizeof sql,
           "PRAGMA journal_mode=WAL;"
           "CREATE TABLE IF NOT EXISTS \"%s\" (sid PRIMARY KEY, expired, "
           "sess);"
           "CREATE INDEX IF NOT EXISTS \"%s_expired_idx\" ON \"%s\" "
           "(expired);",
           table, table, table);
  char *msg = NULL;
  if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    set_errbuf(errbuf, errlen, "sqlite store: cannot set up %s: %s", s->path,
               msg ? msg : sqlite3_errmsg(c->db));
    rc = CSN_EIO;
  }
  sqlite3_free(msg);
  conn_put(s, c);
  return rc;
}

int csn_store_sqlite_new(const csn_sqlite_options *opts, csn_store **out,
                         char *errbuf, size_t errlen) {
  csn_sqlite_options o;
  memset(&o, 0, sizeof o);
  if (opts != NULL) o = *opts;
  if (out == NULL) return CSN_EINVAL;
  *out = NULL;
  if (o.path == NULL || o.path[0] == '\0') o.path = "./sessions.db";
  if (o.table == NULL) o.table = "sessions";
  if (o.prune_interval_ms == 0) o.prune_interval_ms = SQ_DEFAULT_PRUNE_MS;
  if (o.busy_timeout_ms == 0) o.busy_timeout_ms = SQ_DEFAULT_BUSY_MS;
  if (o.pool_size == 0) o.pool_size = SQ_DEFAULT_POOL;
  if (!table_name_valid(o.table) || o.busy_timeout_ms < 0 ||
      o.busy_timeout_ms > INT32_MAX) {
    set_errbuf(errbuf, errlen, "sqlite store: bad table name or timeout");
    return CSN_EINVAL;
  }
  if (!sqlite3_threadsafe()) {
    set_errbuf(errbuf, errlen, "sqlite store: libsqlite3 is not threadsafe");
    return CSN_ENOTSUP;
  }

  sq_store *s = sq_malloc(sizeof *s);
  if (s == NULL) return CSN_ENOMEM;
  memset(s, 0, sizeof *s);
  s->base.m = &sq_methods;
  s->busy_ms = (int)o.busy_timeout_ms;
  s->pool_max = o.pool_size;
  s->prune_ms = o.prune_interval_ms;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->wmu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->path = sq_strdup(o.path);
  int rc = s->path ? CSN_OK : CSN_ENOMEM;
  for (int i = 0; i < SQ_NSTMT && rc == CSN_OK; i++) {
    size_t n = strlen(sq_templates[i]) + 2 * SQ_TABLE_MAX + 1;
    s->sql[i] = sq_malloc(n);
    if (s->sql[i] == NULL)
      rc = CSN_ENOMEM;
    else
      snprintf(s->sql[i], n, sq_templates[i], o.table, o.table);
  }
  if (rc == CSN_OK) rc = sq_schema(s, o.table, errbuf, errlen);
  if (rc == CSN_OK && s->prune_ms > 0) {
    if (pthread_create(&s->pruner, NULL, pruner_main, s) != 0) {
      set_errbuf(errbuf, errlen, "sqlite store: cannot start prune thread");
      rc = CSN_ENOMEM;
    } else {
      s->has_pruner = 1;
    }
  }
  if (rc != CSN_OK) {
    sq_close(&s->base);
    return rc;
  }
  *out = &s->base;
  return CSN_OK;
}

int csn_store_sqlite_open(const char *url, csn_store **out, char *errbuf,
                          size_t errlen) {
  static const char scheme[] = "sqlite://";
  if (url == NULL || out == NULL ||
      strncmp(url, scheme, sizeof scheme - 1) != 0) {
    set_errbuf(errbuf, errlen, "sqlite store: URL must start with sqlite://");
    return CSN_EINVAL;
  }
  const char *path = url + sizeof scheme - 1;
  const char *q = strchr(path, '?');
  size_t plen = q ? (size_t)(q - path) : strlen(path);
  char table[SQ_TABLE_MAX + 1];
  csn_sqlite_options o;
  memset(&o, 0, sizeof o);
  char *p0 = sq_malloc(plen + 1);
  if (p0 == NULL) return CSN_ENOMEM;
  memcpy(p0, path, plen);
  p0[plen] = '\0';
  o.path = plen > 0 ? p0 : NULL;

  int rc = CSN_OK;
  const char *cur = q ? q + 1 : NULL;
  csn_url_param prm;
  int more;
  while (rc == CSN_OK && (more = csn_url_param_next(&cur, &prm)) != 0) {
    int64_t x = 0;
    if (more < 0) {
      rc = CSN_EINVAL;
    } else if (csn_url_param_is(&prm, "table") &&
               prm.value_len <= SQ_TABLE_MAX) {
      memcpy(table, prm.value, prm.value_len);
      table[prm.value_len] = '\0';
      o.table = table;
    } else if (csn_url_param_is(&prm, "prune") &&
               csn_url_param_int(&prm, -1, INT64_C(9000000000000), &x) == 0) {
      o.prune_interval_ms = x <= 0 ? -1 : x * 1000;
    } else if (csn_url_param_is(&prm, "busy") &&
               csn_url_param_int(&prm, 1, INT32_MAX, &x) == 0) {
      o.busy_timeout_ms = x;
    } else if (csn_url_param_is(&prm, "pool") &&
               csn_url_param_int(&prm, 1, 1024, &x) == 0) {
      o.pool_size = (unsigned)x;
    } else {
      rc = CSN_EINVAL;
    }
    if (rc == CSN_EINVAL)
      set_errbuf(errbuf, errlen, "sqlite store: bad URL option '%.*s'",
                 more < 0 ? 1 : (int)(prm.key_len + 1 + prm.value_len > 64
                                          ? 64
                                          : prm.key_len + 1 + prm.value_len),
                 more < 0 ? "?" : prm.key);
  }
  if (rc == CSN_OK) rc = csn_store_sqlite_new(&o, out, errbuf, errlen);
  sq_free(p0);
  return rc;
}
