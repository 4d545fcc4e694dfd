/* sqlite.c - SQLite store sharing connect-sqlite3's table.
 *
 * The contract is in include/csn/csn_store_sqlite.h; this file explains how.
 * It uses only the public headers (csn.h and the store kit, csn_store.h):
 * it is built into its own library, as a third-party store would be.
 *
 * Connections. A sqlite3 handle may be used by one thread at a time (we open
 * with SQLITE_OPEN_NOMUTEX and never share one concurrently), so the store
 * keeps a pool: a worker borrows a connection, runs its statements and gives
 * it back. Connections are opened lazily up to pool_size; a worker finding
 * none free waits on a condition variable. Each connection keeps its own
 * prepared statements, created on first use, so a request costs no SQL
 * parsing.
 *
 * Locking. The database runs in WAL mode: readers never block the writer and
 * the writer never blocks readers. Writers still take turns. get, set,
 * destroy, cas and prune are single autocommit statements, which SQLite
 * starts as a write transaction when they write, so a waiting writer goes
 * through the busy handler (sqlite3_busy_timeout) instead of failing with
 * SQLITE_BUSY at once. The one read-then-write, touch, runs in a BEGIN
 * IMMEDIATE transaction: it takes the write lock first (again through the
 * busy handler), so it never has to upgrade a read snapshot to a writer -
 * the case where SQLite answers SQLITE_BUSY without waiting. That is what
 * keeps "database is locked" from surfacing under normal concurrent load,
 * even with a Node process writing the same file.
 *
 * Compare-and-set is one conditional UPDATE (sid, exact stored text, still
 * live): the database's own write lock makes it atomic against every other
 * writer, in this process or another. Only when it changes nothing does a
 * second statement tell "no live row" from "another text" (see sq_cas).
 *
 * Group commit. A durable commit costs one fsync of the WAL, and one writer
 * commits at a time, so a store committing each save on its own is bound
 * to one save per fsync however many requests wait. So the saves (set,
 * destroy, touch, cas) do not commit themselves: each caller queues its
 * operation and waits. The first caller to find no commit in flight
 * becomes the leader: it takes every queued operation, runs them in order
 * in one BEGIN IMMEDIATE transaction on the store's writer connection,
 * commits once (one WAL fsync for the batch) and wakes their callers; the
 * operations queued meanwhile make the next batch, led by one of their own
 * callers (the kit's csn_group_join()). No caller returns before the
 * COMMIT holding its write has returned, and that COMMIT is durable
 * (synchronous=FULL: SQLite fsyncs the WAL at every commit). Each
 * operation runs inside a SAVEPOINT of its own, so one that fails is
 * rolled back alone and fails only its caller;
 * later operations of the batch see the earlier ones' writes (a cas after
 * a set of the same id compares against the set's text), exactly as if
 * they had committed one by one in that order. An error that makes SQLite
 * roll the whole transaction back (disk full, I/O error) fails the
 * operation that met it, and the batch runs again without it. Reads keep
 * using the pool, and the WAL lets them run during a commit.
 *
 * With synchronous=normal (URL option) commits are not fsynced (SQLite's
 * WAL + NORMAL: durable across a crash of the process, not a power cut);
 * batching still applies.
 *
 * Memory. Records handed back must be freed with csn_free(), so they are
 * allocated with csn_malloc(): the same allocator hook as the core's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "csn/csn_store.h"
#include "csn/csn_store_sqlite.h"

#define SQ_DEFAULT_PRUNE_MS INT64_C(600000)
#define SQ_DEFAULT_BUSY_MS 5000
#define SQ_DEFAULT_POOL 8
#define SQ_DAY_MS INT64_C(86400000)
#define SQ_PRUNE_BATCH 1000
#define SQ_TABLE_MAX 64
/* Several processes may share one database file (and all prune it): each
 * waits between 50% and 150% of the interval, so that they drift apart. */
#define SQ_PRUNE_JITTER_PCT 50

enum {
  SQ_GET,
  SQ_SET,
  SQ_DESTROY,
  SQ_TOUCH,
  SQ_CLEAR,
  SQ_LENGTH,
  SQ_ALL,
  SQ_PRUNE,
  SQ_CAS,
  SQ_LIVE,
  SQ_BEGIN,
  SQ_COMMIT,
  SQ_ALL_EXPIRED,
  SQ_SAVEPOINT,
  SQ_RELEASE,
  SQ_ROLLBACK_TO,
  SQ_NSTMT
};

typedef struct sq_conn {
  sqlite3 *db;
  sqlite3_stmt *st[SQ_NSTMT];
  struct sq_conn *next;
} sq_conn;

/* A save waiting for (or in) a group commit (csn_group). It lives on its
 * caller's stack; the leader writes rc and msg before its run returns, and
 * never touches it afterwards (its caller may have returned). */
enum { OP_SET, OP_DESTROY, OP_TOUCH, OP_CAS };
#define SQ_MSG_MAX 320
typedef struct sq_op {
  csn_group_member member; /* first: the batch's list (next_op) */
  int kind;
  const char *sid;
  const char *json; /* set, touch, cas */
  size_t len;
  const char *expected; /* cas */
  size_t expected_len;
  int64_t exp; /* the expiry to write */
  int64_t now; /* the caller's instant, for liveness tests */
  int rc;
  int pending; /* leader only: still to run in this attempt */
  char msg[SQ_MSG_MAX]; /* the message for the caller's thread */
} sq_op;

/* The op after op in its batch. */
static sq_op *next_op(const sq_op *op) {
  return (sq_op *)(void *)op->member.next;
}

typedef struct sq_store {
  csn_store base; /* first: the vtable pointer */
  char *path;
  char *sql[SQ_NSTMT];
  int busy_ms;
  int sync_normal; /* synchronous=NORMAL: commits are not fsynced */
  unsigned pool_max;
  /* The pool: free list, open count, waiters. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_mutex_t wmu; /* one writer at a time in this process */
  sq_conn *free;
  unsigned n_open;
  /* Group commit (see the top of the file); wconn is the leader's
   * connection. */
  csn_group *group;
  sq_conn *wconn;
  int64_t prune_ms;
  csn_sweeper *sweeper; /* NULL when pruning is off */
} sq_store;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* This store is its own shared library and cannot reach the core's csn__
 * internals; the public csn_malloc()/csn_free() use the same allocator. */
#define sq_malloc csn_malloc
#define sq_free csn_free

/* Expiry instants are epoch milliseconds (connect-sqlite3's `expired`), so
 * they are compared with the wall clock (csn_now_ms); only the sweeper's
 * waits are monotonic. */

/* The expiry set, touch and cas write: the cookie's, or connect-sqlite3's
 * one day for a browser-session cookie. */
static int64_t expiry_for(int64_t expires_ms, int64_t now) {
  return expires_ms == CSN_TIME_NONE ? now + SQ_DAY_MS : expires_ms;
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
  if (c == NULL) return csn_store_set_error(&s->base, CSN_ENOMEM, NULL);
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
  /* Per connection, and stated rather than left to the library's build
   * default: FULL makes every WAL commit fsync (durable), NORMAL only
   * checkpoints. */
  if (sqlite3_exec(c->db,
                   s->sync_normal ? "PRAGMA synchronous=NORMAL"
                                  : "PRAGMA synchronous=FULL",
                   NULL, NULL, NULL) != SQLITE_OK) {
    int err = sq_fail(s, c->db, "open");
    conn_close(c);
    return err;
  }
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

/* Step a statement that takes the write lock (an autocommit write, or
 * BEGIN IMMEDIATE). The busy handler has already waited busy_ms when
 * SQLITE_BUSY comes back; one retry covers a lock that another process
 * held for the whole timeout. Caller holds wmu. */
static int step_write(sqlite3_stmt *st) {
  int rc;
  for (int attempt = 0;; attempt++) {
    rc = sqlite3_step(st);
    if ((rc & 0xff) != SQLITE_BUSY || attempt == 1) return rc;
    sqlite3_reset(st);
  }
}

/* Run a statement that writes; *changes gets the rows affected.
 *
 * Writers of this process queue on wmu instead of on SQLite's lock. SQLite
 * lets one writer in at a time anyway, but its busy handler polls with
 * sleeps, which is unfair: under steady contention one thread can lose every
 * race until its busy timeout expires and "database is locked" reaches the
 * user. A mutex queues our own writers; the busy timeout is then left to
 * arbitrate with other processes (another csession process, or a Node app on
 * the same file). */
static int run(sq_store *s, sq_conn *c, sqlite3_stmt *st, const char *what,
               int *changes) {
  pthread_mutex_lock(&s->wmu);
  int rc = step_write(st);
  if (changes != NULL && rc == SQLITE_DONE) *changes = sqlite3_changes(c->db);
  pthread_mutex_unlock(&s->wmu);
  done(st);
  if (rc != SQLITE_DONE) return sq_fail(s, c->db, what);
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Store methods                                                            */
/* ------------------------------------------------------------------------ */

/* The core has already checked each id (csn_store_id_valid), so a method
 * binds it as it is; it only ever reaches SQL as a bound parameter. */

static int sq_get(csn_store *st, const char *sid, char **json, size_t *len) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_GET);
  if (q == NULL) {
    conn_put(s, c);
    return CSN_EIO;
  }
  sqlite3_bind_text(q, 1, sid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, csn_now_ms());
  int step = sqlite3_step(q);
  if (step == SQLITE_ROW) {
    /* The text exactly as stored (cas compares it byte for byte): the
     * column's bytes, not a NUL-terminated view of them. */
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

/* ---- Group commit ------------------------------------------------------ */

/* Record a failure for the op's caller (messages are per thread, so the
 * leader cannot set them for another thread). Returns err. */
static int op_fail(sq_store *s, sq_op *op, int err, sqlite3 *db,
                   const char *what) {
  snprintf(op->msg, sizeof op->msg, "sqlite %s (%s): %s", what, s->path,
           db ? sqlite3_errmsg(db) : "no handle");
  op->rc = err;
  return err;
}

static const char *const op_names[] = {
    [OP_SET] = "set", [OP_DESTROY] = "destroy", [OP_TOUCH] = "touch",
    [OP_CAS] = "cas"};

/* One save, inside the batch's transaction on the writer connection c.
 * Sets op->rc (and op->msg on failure); returns it. */
static int op_exec(sq_store *s, sq_conn *c, sq_op *op) {
  const char *what = op_names[op->kind];
  op->rc = CSN_OK;
  op->msg[0] = '\0';
  switch (op->kind) {
  case OP_SET: {
    sqlite3_stmt *q = stmt(s, c, SQ_SET);
    if (q == NULL) return op_fail(s, op, CSN_EIO, c->db, what);
    sqlite3_bind_text(q, 1, op->sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, op->exp);
    sqlite3_bind_text(q, 3, op->json, (int)op->len, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) op_fail(s, op, CSN_EIO, c->db, what);
    done(q);
    return op->rc;
  }
  case OP_DESTROY: {
    sqlite3_stmt *q = stmt(s, c, SQ_DESTROY);
    if (q == NULL) return op_fail(s, op, CSN_EIO, c->db, what);
    sqlite3_bind_text(q, 1, op->sid, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_DONE) op_fail(s, op, CSN_EIO, c->db, what);
    done(q);
    return op->rc;
  }
  case OP_CAS: {
    /* See sq_cas for the two statements. Inside the batch's transaction
     * the second one answers for the same instant as the first. */
    sqlite3_stmt *q = stmt(s, c, SQ_CAS);
    if (q == NULL) return op_fail(s, op, CSN_EIO, c->db, what);
    sqlite3_bind_text(q, 1, op->json, (int)op->len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, op->exp);
    sqlite3_bind_text(q, 3, op->sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, op->expected, (int)op->expected_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, op->now);
    int step = sqlite3_step(q);
    int changes = step == SQLITE_DONE ? sqlite3_changes(c->db) : 0;
    if (step != SQLITE_DONE) op_fail(s, op, CSN_EIO, c->db, what);
    done(q);
    if (op->rc != CSN_OK || changes > 0) return op->rc;
    sqlite3_stmt *live = stmt(s, c, SQ_LIVE);
    op->rc = CSN_ECONFLICT;
    if (live != NULL) {
      sqlite3_bind_text(live, 1, op->sid, -1, SQLITE_STATIC);
      sqlite3_bind_int64(live, 2, op->now);
      if (sqlite3_step(live) == SQLITE_DONE) op->rc = CSN_ENOENT;
      done(live);
    }
    return op->rc;
  }
  default: /* OP_TOUCH: see sq_touch */
    break;
  }
  sqlite3_stmt *get = stmt(s, c, SQ_GET);
  sqlite3_stmt *upd = get ? stmt(s, c, SQ_TOUCH) : NULL;
  if (upd == NULL) return op_fail(s, op, CSN_EIO, c->db, what);
  char *spliced = NULL;
  size_t slen = 0;
  sqlite3_bind_text(get, 1, op->sid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(get, 2, op->now);
  int step = sqlite3_step(get);
  if (step == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(get, 0);
    size_t n = (size_t)sqlite3_column_bytes(get, 0);
    if (t != NULL && op->json != NULL &&
        csn_record_splice_cookie(t, n, op->json, op->len, &spliced, &slen) ==
            CSN_ENOMEM) {
      op->rc = CSN_ENOMEM;
      snprintf(op->msg, sizeof op->msg, "%s", csn_strerror(CSN_ENOMEM));
    }
    if (slen > (size_t)INT32_MAX) {
      /* The splice outgrew what one bind can take: keep sess as it is. */
      sq_free(spliced);
      spliced = NULL;
    }
  } else if (step != SQLITE_DONE) {
    op_fail(s, op, CSN_EIO, c->db, what);
  }
  done(get);
  if (op->rc == CSN_OK && step == SQLITE_ROW) {
    sqlite3_bind_int64(upd, 1, op->exp);
    sqlite3_bind_text(upd, 2, op->sid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(upd, 3, op->now);
    if (spliced != NULL)
      sqlite3_bind_text(upd, 4, spliced, (int)slen, SQLITE_STATIC);
    else
      sqlite3_bind_null(upd, 4);
    if (sqlite3_step(upd) != SQLITE_DONE) op_fail(s, op, CSN_EIO, c->db, what);
    done(upd);
  }
  sq_free(spliced);
  return op->rc;
}

/* Step one of the transaction-control statements; 0 when it is done. */
static int ctl(sq_store *s, sq_conn *c, int which) {
  sqlite3_stmt *q = stmt(s, c, which);
  if (q == NULL) return -1;
  int rc = which == SQ_BEGIN ? step_write(q) : sqlite3_step(q);
  done(q);
  return rc == SQLITE_DONE ? 0 : -1;
}

/* Fail every op still pending with the writer connection's error. */
static void fail_pending(sq_store *s, sq_op *batch, sqlite3 *db,
                         const char *what) {
  for (sq_op *op = batch; op != NULL; op = next_op(op))
    if (op->pending) {
      op_fail(s, op, CSN_EIO, db, what);
      op->pending = 0;
    }
}

/* Run one batch in one transaction and commit it (leader only; ops are
 * in arrival order). Every op leaves with rc (and msg) final. */
static void run_batch(sq_store *s, sq_op *batch) {
  for (sq_op *op = batch; op != NULL; op = next_op(op)) op->pending = 1;
  if (s->wconn == NULL) {
    /* Open here (not in the pool): only the leader ever uses it. */
    int rc = conn_open(s, &s->wconn);
    if (rc != CSN_OK) {
      for (sq_op *op = batch; op != NULL; op = next_op(op)) {
        op->rc = rc;
        snprintf(op->msg, sizeof op->msg, "%s", csn_store_errmsg(&s->base));
      }
      return;
    }
  }
  sq_conn *c = s->wconn;
  pthread_mutex_lock(&s->wmu);
  for (;;) {
    if (ctl(s, c, SQ_BEGIN) != 0) {
      fail_pending(s, batch, c->db, "begin");
      break;
    }
    int aborted = 0;
    for (sq_op *op = batch; op != NULL && !aborted; op = next_op(op)) {
      if (!op->pending) continue;
      if (ctl(s, c, SQ_SAVEPOINT) != 0) {
        /* Cannot isolate it: fail it alone, let the rest go on. */
        op_fail(s, op, CSN_EIO, c->db, op_names[op->kind]);
        op->pending = 0;
        continue;
      }
      int rc = op_exec(s, c, op);
      if (sqlite3_get_autocommit(c->db)) {
        /* The error rolled the whole transaction back (SQLITE_FULL,
         * IOERR, NOMEM): this op has its answer, the others run again
         * in a new transaction. */
        if (rc == CSN_OK)
          op_fail(s, op, CSN_EIO, c->db, op_names[op->kind]);
        op->pending = 0;
        aborted = 1;
        break;
      }
      /* ECONFLICT and ENOENT wrote nothing; a failure may have. */
      if (rc != CSN_OK && rc != CSN_ECONFLICT && rc != CSN_ENOENT)
        (void)ctl(s, c, SQ_ROLLBACK_TO);
      if (ctl(s, c, SQ_RELEASE) != 0 && rc == CSN_OK) {
        op_fail(s, op, CSN_EIO, c->db, op_names[op->kind]);
        (void)ctl(s, c, SQ_ROLLBACK_TO);
        (void)ctl(s, c, SQ_RELEASE);
      }
      if (sqlite3_get_autocommit(c->db)) { /* as above */
        if (op->rc == CSN_OK)
          op_fail(s, op, CSN_EIO, c->db, op_names[op->kind]);
        op->pending = 0;
        aborted = 1;
      }
    }
    if (aborted) {
      /* Nothing of this attempt was kept: the ops still pending (those
       * before the failure and those after it) run again. Each attempt
       * settles at least one op, so this ends. */
      int left = 0;
      for (sq_op *op = batch; op != NULL; op = next_op(op)) left |= op->pending;
      if (left) continue;
      break;
    }
    /* The ops are decided; the COMMIT makes the successful ones durable.
     * If it fails, none of them happened. */
    if (ctl(s, c, SQ_COMMIT) != 0) {
      for (sq_op *op = batch; op != NULL; op = next_op(op))
        if (op->pending && op->rc == CSN_OK)
          op_fail(s, op, CSN_EIO, c->db, "commit");
    }
    break;
  }
  /* Whatever happened, the writer goes back to autocommit mode. */
  if (!sqlite3_get_autocommit(c->db))
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&s->wmu);
}

/* The group's function: one batch, one transaction. */
static void run_group(csn_group_member *batch, void *ud) {
  run_batch(ud, (sq_op *)(void *)batch);
}

/* Queue a save and return once the commit holding it is done: either as
 * a follower (a leader ran it) or as the leader of the next batch. */
static int submit(sq_store *s, sq_op *op) {
  op->rc = CSN_OK;
  op->msg[0] = '\0';
  op->pending = 0;
  csn_group_join(s->group, &op->member);
  if (op->rc != CSN_OK && op->msg[0] != '\0')
    csn_store_set_error(&s->base, op->rc, "%s", op->msg);
  return op->rc;
}

/* set, touch and cas: a record (and for cas the expected one) with its
 * expiry, queued for the next group commit. SQLite binds text lengths as
 * int. */
static int submit_write(csn_store *st, int kind, const char *sid,
                        const char *expected, size_t expected_len,
                        const char *json, size_t len, int64_t expires_ms) {
  if (len > (size_t)INT32_MAX || expected_len > (size_t)INT32_MAX)
    return csn_store_set_error(st, CSN_EINVAL, "%s: record too large",
                               op_names[kind]);
  sq_op op = {.kind = kind, .sid = sid, .json = json, .len = len,
              .expected = expected, .expected_len = expected_len};
  op.now = csn_now_ms();
  op.exp = expiry_for(expires_ms, op.now);
  return submit((sq_store *)st, &op);
}

static int sq_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  return submit_write(st, OP_SET, sid, NULL, 0, json, len, expires_ms);
}

static int sq_destroy(csn_store *st, const char *sid) {
  sq_op op = {.kind = OP_DESTROY, .sid = sid};
  op.now = csn_now_ms();
  return submit((sq_store *)st, &op);
}

/* touch: the new expiry, and the stored record with only its "cookie"
 * member replaced. SQLite's json_set() would do the replacement in one
 * statement, but it re-serialises the whole record ("a": 0.1 comes back as
 * "a":0.1), so a record written by Node would not keep its text; the kit's
 * splice keeps every other byte. Read, splice and write therefore run in
 * the batch's transaction (BEGIN IMMEDIATE: the write lock is taken first),
 * so that no other writer (a cas from another process) slips in between.
 * A stored text that is not a JSON object, or a caller's text without a
 * cookie, leaves sess as it is; the expiry still moves, as
 * connect-sqlite3's touch does. */
static int sq_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  return submit_write(st, OP_TOUCH, sid, NULL, 0, json, len, expires_ms);
}

/* Compare-and-set is one conditional UPDATE: it writes only a live row
 * whose text is exactly `expected`. SQLite compares TEXT values with the
 * BINARY collation (memcmp), and get() hands back the column's bytes, so
 * "exactly" means byte for byte.
 *
 * When it changes nothing, a second statement in the same transaction asks
 * whether a live row exists: yes means another writer changed it
 * (ECONFLICT), no means it was destroyed or has expired (ENOENT). The core
 * acts very differently on the two answers - on ECONFLICT it re-reads and
 * merges, on ENOENT it drops the save (logout wins) - so when the second
 * statement cannot answer, the answer is ECONFLICT: a needless re-read
 * costs a round trip, a wrong ENOENT would lose the request's changes. */
static int sq_cas(csn_store *st, const char *sid, const char *expected,
                  size_t expected_len, const char *json, size_t len,
                  int64_t expires_ms) {
  return submit_write(st, OP_CAS, sid, expected, expected_len, json, len,
                      expires_ms);
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
    sqlite3_bind_int64(q, 1, csn_now_ms());
    if (sqlite3_step(q) == SQLITE_ROW)
      *count = (size_t)sqlite3_column_int64(q, 0);
    else
      rc = sq_fail(s, c->db, "length");
    done(q);
  }
  conn_put(s, c);
  return rc;
}

/* all() and all_expired(): the rows of statement `which` (SQ_ALL or
 * SQ_ALL_EXPIRED, both bound to now), one callback each. */
static int sq_walk(csn_store *st, int which, const char *what,
                   csn_store_each_fn fn, void *userdata) {
  sq_store *s = (sq_store *)st;
  sq_conn *c;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, which);
  if (q == NULL) {
    conn_put(s, c);
    return CSN_EIO;
  }
  /* The callback runs while the statement holds a read snapshot; WAL lets
   * writers proceed meanwhile. */
  sqlite3_bind_int64(q, 1, csn_now_ms());
  for (;;) {
    int step = sqlite3_step(q);
    if (step == SQLITE_DONE) break;
    if (step != SQLITE_ROW) {
      rc = sq_fail(s, c->db, what);
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

static int sq_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  return sq_walk(st, SQ_ALL, "all", fn, userdata);
}

/* The rows prune would delete now: `expired` before now, the complement
 * of the liveness test, by the same wall clock (epoch ms, as
 * connect-sqlite3 writes `expired`). A row whose `expired` is NULL, which
 * no writer here or in connect-sqlite3 makes, is in neither. */
static int sq_all_expired(csn_store *st, csn_store_each_fn fn,
                          void *userdata) {
  return sq_walk(st, SQ_ALL_EXPIRED, "all_expired", fn, userdata);
}

/* Delete expired rows in batches, so a long backlog never holds the write
 * lock for long; the sweeper (NULL for an explicit prune) is asked between
 * batches whether the store is closing. */
static int prune_batches(sq_store *s, size_t *removed, csn_sweeper *sw) {
  sq_conn *c;
  size_t total = 0;
  int rc = conn_get(s, &c);
  if (rc != CSN_OK) return rc;
  sqlite3_stmt *q = stmt(s, c, SQ_PRUNE);
  if (q == NULL) rc = CSN_EIO;
  while (rc == CSN_OK) {
    int changes = 0;
    sqlite3_bind_int64(q, 1, csn_now_ms());
    sqlite3_bind_int(q, 2, SQ_PRUNE_BATCH);
    rc = run(s, c, q, "prune", &changes);
    total += (size_t)(changes > 0 ? changes : 0);
    if (rc != CSN_OK || changes < SQ_PRUNE_BATCH) break;
    if (sw != NULL && csn_sweeper_stopping(sw)) break;
  }
  conn_put(s, c);
  if (removed != NULL) *removed = total;
  return rc;
}

static int sq_prune(csn_store *st, size_t *removed) {
  return prune_batches((sq_store *)st, removed, NULL);
}

/* The background prune. A failure (the file briefly locked by another
 * process for longer than the busy timeout) is left for the next round. */
static void sq_sweep(csn_sweeper *sw, void *userdata) {
  (void)prune_batches(userdata, NULL, sw);
}

static void sq_close(csn_store *st) {
  sq_store *s = (sq_store *)st;
  csn_sweeper_stop(s->sweeper);
  /* Closing the last connection checkpoints the WAL. */
  conn_close(s->wconn);
  while (s->free != NULL) {
    sq_conn *c = s->free;
    s->free = c->next;
    conn_close(c);
  }
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->wmu);
  pthread_cond_destroy(&s->cv);
  csn_group_free(s->group);
  for (int i = 0; i < SQ_NSTMT; i++) sq_free(s->sql[i]);
  sq_free(s->path);
  sq_free(s);
}

static const csn_store_methods sq_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "sqlite",
    .get = sq_get,
    .set = sq_set,
    .destroy = sq_destroy,
    .touch = sq_touch,
    .clear = sq_clear,
    .length = sq_length,
    .all = sq_all,
    .prune = sq_prune,
    .close = sq_close,
    .cas = sq_cas,
    .all_expired = sq_all_expired,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* The statements, with the (validated) table name quoted in. Liveness is
 * the same test everywhere, `now <= expired` (connect-sqlite3's get), so
 * a row that get() returns is one that touch and cas can write. touch
 * writes sess only when given one (?4), keeping it otherwise. */
static const char *const sq_templates[SQ_NSTMT] = {
    [SQ_GET] = "SELECT sess FROM \"%s\" WHERE sid = ?1 AND ?2 <= expired",
    [SQ_SET] = "INSERT OR REPLACE INTO \"%s\" (sid, expired, sess) VALUES "
               "(?1, ?2, ?3)",
    [SQ_DESTROY] = "DELETE FROM \"%s\" WHERE sid = ?1",
    [SQ_TOUCH] = "UPDATE \"%s\" SET expired = ?1, sess = coalesce(?4, sess) "
                 "WHERE sid = ?2 AND ?3 <= expired",
    [SQ_CLEAR] = "DELETE FROM \"%s\"",
    [SQ_LENGTH] = "SELECT count(*) FROM \"%s\" WHERE ?1 <= expired",
    [SQ_ALL] = "SELECT sid, sess FROM \"%s\" WHERE ?1 <= expired",
    [SQ_PRUNE] = "DELETE FROM \"%s\" WHERE rowid IN (SELECT rowid FROM \"%s\" "
                 "WHERE ?1 > expired LIMIT ?2)",
    [SQ_CAS] = "UPDATE \"%s\" SET sess = ?1, expired = ?2 WHERE sid = ?3 AND "
               "sess = ?4 AND ?5 <= expired",
    [SQ_LIVE] = "SELECT 1 FROM \"%s\" WHERE sid = ?1 AND ?2 <= expired",
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_COMMIT] = "COMMIT",
    /* prune's test: what it shows is what prune would delete now */
    [SQ_ALL_EXPIRED] = "SELECT sid, sess FROM \"%s\" WHERE ?1 > expired",
    /* one per save in a group commit */
    [SQ_SAVEPOINT] = "SAVEPOINT csn_op",
    [SQ_RELEASE] = "RELEASE csn_op",
    [SQ_ROLLBACK_TO] = "ROLLBACK TO csn_op",
};

/* Create the schema and switch to WAL (a property of the file, so once). */
static int sq_schema(sq_store *s, const char *table, char *errbuf,
                     size_t errlen) {
  sq_conn *c;
  char sql[512];
  int rc = conn_get(s, &c);
  if (rc != CSN_OK)
    return csn_store_fail(errbuf, errlen, rc, "sqlite store: %s",
                          csn_store_errmsg(&s->base));
  snprintf(sql, sizeof sql,
           "PRAGMA journal_mode=WAL;"
           "CREATE TABLE IF NOT EXISTS \"%s\" (sid PRIMARY KEY, expired, "
           "sess);"
           "CREATE INDEX IF NOT EXISTS \"%s_expired_idx\" ON \"%s\" "
           "(expired);",
           table, table, table);
  char *msg = NULL;
  if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK)
    rc = csn_store_fail(errbuf, errlen, CSN_EIO,
                        "sqlite store: cannot set up %s: %s", s->path,
                        msg ? msg : sqlite3_errmsg(c->db));
  sqlite3_free(msg);
  conn_put(s, c);
  return rc;
}

/* Create the database file private to the process owner (0600) when it
 * does not exist yet: SQLite would create it with 0666 less the umask,
 * usually 0644, which lets every local user read every session. SQLite
 * gives the -wal and -shm files the main file's mode, so they are private
 * too. An existing file is left as its owner made it. In-memory databases
 * and SQLite URI filenames are SQLite's business. */
static int sq_create_private(const char *path, char *errbuf, size_t errlen) {
  if (strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
    return CSN_OK;
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                0600);
  if (fd >= 0) {
    close(fd);
    return CSN_OK;
  }
  if (errno == EEXIST)
    return CSN_OK;
  return csn_store_fail(errbuf, errlen, CSN_EIO,
                        "sqlite store: cannot create %s: %s", path,
                        strerror(errno));
}

int csn_store_sqlite_new(const csn_sqlite_options *opts, csn_store **out,
                         char *errbuf, size_t errlen) {
  csn_sqlite_options o;
  memset(&o, 0, sizeof o);
  if (opts != NULL) o = *opts;
  if (out == NULL)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL, "sqlite store: no out");
  *out = NULL;
  if (o.path == NULL || o.path[0] == '\0') o.path = "./sessions.db";
  if (o.table == NULL) o.table = "sessions";
  if (o.prune_interval_ms == 0) o.prune_interval_ms = SQ_DEFAULT_PRUNE_MS;
  if (o.busy_timeout_ms == 0) o.busy_timeout_ms = SQ_DEFAULT_BUSY_MS;
  if (o.pool_size == 0) o.pool_size = SQ_DEFAULT_POOL;
  if (!table_name_valid(o.table) || o.busy_timeout_ms < 0 ||
      o.busy_timeout_ms > INT32_MAX)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "sqlite store: bad table name or busy timeout");
  /* Durable unless asked otherwise, and only in words we know. */
  int sync_normal = 0;
  if (o.synchronous != NULL && strcmp(o.synchronous, "normal") == 0)
    sync_normal = 1;
  else if (o.synchronous != NULL && strcmp(o.synchronous, "full") != 0)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "sqlite store: synchronous must be \"full\" "
                          "(durable, the default) or \"normal\"");
  if (!sqlite3_threadsafe())
    return csn_store_fail(errbuf, errlen, CSN_ENOTSUP,
                          "sqlite store: libsqlite3 is not threadsafe");

  sq_store *s = sq_malloc(sizeof *s);
  if (s == NULL)
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                          "sqlite store: out of memory");
  memset(s, 0, sizeof *s);
  s->base.m = &sq_methods;
  s->busy_ms = (int)o.busy_timeout_ms;
  s->sync_normal = sync_normal;
  s->pool_max = o.pool_size;
  s->prune_ms = o.prune_interval_ms;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->wmu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->path = csn_strdup(o.path);
  int rc = s->path ? CSN_OK : CSN_ENOMEM;
  for (int i = 0; i < SQ_NSTMT && rc == CSN_OK; i++) {
    size_t n = strlen(sq_templates[i]) + 2 * SQ_TABLE_MAX + 1;
    s->sql[i] = sq_malloc(n);
    if (s->sql[i] == NULL)
      rc = CSN_ENOMEM;
    else
      snprintf(s->sql[i], n, sq_templates[i], o.table, o.table);
  }
  if (rc != CSN_OK)
    csn_store_fail(errbuf, errlen, rc, "sqlite store: out of memory");
  else if ((rc = csn_group_new(&s->group, run_group, s)) != CSN_OK)
    csn_store_fail(errbuf, errlen, rc,
                   "sqlite store: cannot set up the group commit: %s",
                   csn_strerror(rc));
  else if ((rc = sq_create_private(s->path, errbuf, errlen)) == CSN_OK)
    rc = sq_schema(s, o.table, errbuf, errlen);
  if (rc == CSN_OK && s->prune_ms > 0) {
    rc = csn_sweeper_start(&s->sweeper, s->prune_ms, SQ_PRUNE_JITTER_PCT,
                           sq_sweep, s);
    if (rc != CSN_OK)
      csn_store_fail(errbuf, errlen, rc,
                     "sqlite store: cannot start the prune thread");
  }
  if (rc != CSN_OK) {
    csn_store_free(&s->base);
    return rc;
  }
  *out = &s->base;
  return CSN_OK;
}

int csn_store_sqlite_open(const char *url, csn_store **out, char *errbuf,
                          size_t errlen) {
  const char *path, *query;
  size_t plen;
  /* Absent parameters leave these alone: 0 is "the default" to
   * csn_store_sqlite_new, and INT64_MIN tells an absent prune from
   * prune=0. */
  int64_t prune_s = INT64_MIN, busy = 0, pool = 0;
  char *table = NULL, *sync = NULL;
  const csn_url_option opts[] = {
      {.key = "table", .type = CSN_URL_STR, .out = &table},
      {.key = "synchronous", .type = CSN_URL_STR, .out = &sync},
      {.key = "prune", .type = CSN_URL_INT, .min = -1,
       .max = INT64_C(9000000000000), .out = &prune_s},
      {.key = "busy", .type = CSN_URL_INT, .min = 1, .max = INT32_MAX,
       .out = &busy},
      {.key = "pool", .type = CSN_URL_INT, .min = 1, .max = 1024,
       .out = &pool},
  };
  if (out == NULL ||
      csn_url_split(url, "sqlite", &path, &plen, &query) != CSN_OK)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "sqlite store: URL must start with sqlite://");
  *out = NULL;
  int rc = csn_url_parse_query(query, opts, sizeof opts / sizeof opts[0],
                               "sqlite store", errbuf, errlen);
  /* The path is taken literally (no percent-decoding), up to the '?'. */
  char *p0 = rc == CSN_OK ? sq_malloc(plen + 1) : NULL;
  if (rc == CSN_OK && p0 == NULL)
    rc = csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                        "sqlite store: out of memory");
  if (rc == CSN_OK) {
    csn_sqlite_options o;
    memset(&o, 0, sizeof o);
    memcpy(p0, path, plen);
    p0[plen] = '\0';
    o.path = plen > 0 ? p0 : NULL;
    o.table = table;
    /* prune=0 or -1: no background pruning. */
    if (prune_s != INT64_MIN)
      o.prune_interval_ms = prune_s <= 0 ? -1 : prune_s * 1000;
    o.busy_timeout_ms = busy;
    o.pool_size = (unsigned)pool;
    o.synchronous = sync;
    rc = csn_store_sqlite_new(&o, out, errbuf, errlen);
  }
  sq_free(p0);
  sq_free(table);
  sq_free(sync);
  return rc;
}
