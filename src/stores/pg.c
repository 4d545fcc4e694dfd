/* pg.c - PostgreSQL store sharing connect-pg-simple's table.
 *
 * OVERVIEW
 *
 * The contract (table, SQL per method, URL) is in
 * include/csn/csn_store_pg.h; this file explains how. Like redis.c and
 * sqlite.c it uses only the public headers (csn.h and the store kit,
 * csn_store.h) and is built into its own library, on libpq (Debian 12:
 * libpq 15).
 *
 *   - Connection parameters. The conninfo (a URI or "key=value" text) is
 *     parsed once with PQconninfoParse() into keyword/value arrays that
 *     every new connection is made from (PQconnectStartParams(), no
 *     re-parsing), with the store's additions where the user gave none:
 *     client_encoding UTF8 (records travel byte for byte), TCP keepalives
 *     with short intervals, fallback_application_name "csession" and
 *     connect_timeout. A TimeZone given in `options` is taken out (see
 *     "Time zones"). The password, when there is one, is kept only to
 *     scrub it out of any message before it is recorded.
 *
 *   - Time zones. `expire` is a timestamp *without* time zone; to_timestamp()
 *     yields a timestamptz, and the cast between them uses the session's
 *     TimeZone. connect-pg-simple's sessions run in the server's default
 *     zone, so ours must too, or the two writers disagree on every expiry by
 *     the zone offset (stores.md 6.7). Every instant is therefore sent as
 *     epoch seconds through to_timestamp(), never formatted here; TimeZone
 *     is never SET. A TimeZone in the URL's `options` parameter is the
 *     user's explicit choice (to match Node writers whose pg Pool sets the
 *     same `options`) and is kept; a session whose TimeZone comes from the
 *     client in any other way (PGTZ or PGOPTIONS in the environment, which
 *     node-postgres ignores) is refused at open with a message that says
 *     so: that is a mismatch nobody chose.
 *
 *   - The pool. A PGconn is one thread at a time. The store keeps at most
 *     pool_size of them; a worker borrows one per operation. Idle ones sit
 *     in a stack (the most recently used first), new ones are made lazily
 *     up to the limit, and a worker that finds none free waits on a
 *     condition variable (CLOCK_MONOTONIC) for at most `timeout`, then
 *     fails with CSN_ETIMEDOUT rather than queue forever. It is the kit's
 *     pool (csn_pool_*, csn_store.h), shared with the Redis store; this
 *     file supplies the connect, the idle check and the give-back test.
 *
 *   - One round trip to set a connection up. After the (asynchronous)
 *     connect, one simple-protocol query string sets statement_timeout and
 *     PREPAREs every statement of the store (csn_get, csn_set ...). SQL
 *     PREPARE creates the same named statements PQprepare() would, but all
 *     of them in one message; each operation is then one
 *     PQsendQueryPrepared() with parameters: ids and records are never
 *     part of an SQL text. Records go in binary format (for json and text
 *     that is the bytes themselves: no NUL terminator needed, no copy);
 *     instants as decimal text.
 *
 *   - Deadlines. libpq's connect_timeout has a resolution of seconds and
 *     is enforced only by its blocking calls, so connecting runs
 *     PQconnectStartParams()/PQconnectPoll() under poll() with a deadline
 *     in milliseconds: a server that accepts and then hangs mid-handshake
 *     costs connect_timeout, not forever. Statements run in non-blocking
 *     mode: send, then poll() on PQsocket() with what is left of the
 *     deadline, PQconsumeInput(), PQisBusy(), PQgetResult(). The server
 *     also has statement_timeout = `timeout` (a lock wait or a slow plan is
 *     cancelled server-side, SQLSTATE 57014 -> CSN_ETIMEDOUT, and the
 *     connection stays usable); the client's deadline is PG_GRACE_MS later
 *     and catches a server that answers nothing at all (stopped, or the
 *     network gone): that connection is dropped, since a late answer would
 *     otherwise be read as the next statement's.
 *
 *   - Reconnecting. A connection whose status is no longer CONNECTION_OK
 *     after a failure, or that failed with a connection-class SQLSTATE
 *     (08xxx, 57P0x: shutdown, pg_terminate_backend), is dropped instead of
 *     given back; the next borrower connects afresh. An idle connection
 *     that the server closed (restart, terminate) has the server's FATAL
 *     message and EOF waiting in its socket: before a reused connection is
 *     handed out for a cas, or for anything after PG_IDLE_CHECK_MS idle,
 *     it is polled and, when readable, its input consumed; a dead one is
 *     replaced. When an idempotent operation (all but cas) still fails on
 *     a reused connection that turned out dead, it runs once more on a new
 *     one. cas is never replayed: it may have been committed.
 *
 *   - Compare-and-set is one statement (see CAS_SQL): an UPDATE whose
 *     WHERE holds the id, the liveness and the byte comparison
 *     sess::text = expected, plus a FOR UPDATE count of the live row to
 *     tell "other text" from "no row" when nothing was written. Under READ
 *     COMMITTED an UPDATE that meets a row changed by a concurrent
 *     transaction waits for it, then re-evaluates its whole WHERE on the
 *     newest committed version of the row (EvalPlanQual) and holds the row
 *     lock until it commits: the comparison is always against the latest
 *     committed text, and no other writer (C or Node) can slip in between
 *     it and the write. FOR UPDATE re-reads the newest version the same
 *     way, so a row deleted meanwhile counts as gone (CSN_ENOENT).
 *
 *   - Pruning runs on a csn_sweeper thread (waits of 50%..150% of the
 *     interval, as connect-pg-simple) and on request (prune()). length,
 *     all and clear see live rows, all_expired the rows prune would
 *     delete; all() and all_expired() read in keyset batches of
 *     PG_BATCH rows (ORDER BY sid, sid > last) and run the callback with
 *     no connection held.
 *
 *   - SIGPIPE. libpq writes with send(MSG_NOSIGNAL) on Linux (no TLS) and
 *     blocks SIGPIPE itself around TLS writes: no signal reaches the
 *     process when the server goes away.
 *
 * What it leaves out: LISTEN/NOTIFY, server-side cursors, the deprecated
 * `schema"."table` form of connect-pg-simple's tableName, and bounding DNS
 * resolution (libpq resolves host names synchronously while connecting). */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "csn/csn_store.h"
#include "csn/csn_store_pg.h"

#define PG_DEFAULT_TABLE "session"
#define PG_DEFAULT_PRUNE_MS INT64_C(900000)
#define PG_DEFAULT_TTL_S 86400
#define PG_DEFAULT_CONNECT_MS 5000
#define PG_DEFAULT_TIMEOUT_MS 5000
#define PG_DEFAULT_POOL 16
#define PG_POOL_MAX 1024
#define PG_TIMEOUT_MAX INT64_C(86400000)
#define PG_TTL_MAX INT64_C(3155760000) /* 100 years */
/* The last second PostgreSQL's timestamp type and every client agree on
 * (9999-12-31T23:59:59Z): later cookie expiries are cut to it. */
#define PG_EPOCH_MAX INT64_C(253402300799)
#define PG_NAME_MAX 63 /* NAMEDATALEN - 1: longer names would be cut */
#define PG_BATCH 500   /* rows per all() batch */
#define PG_IDLE_CHECK_MS 100
#define PG_PRUNE_JITTER_PCT 50
/* The client deadline trails statement_timeout, so that a server that is
 * merely slow is cancelled server-side (the connection survives) and only
 * a silent one costs a connection. */
#define PG_GRACE_MS 50
#define PG_MSG_MAX 400

/* The prepared statements, in the order of their PREPAREs. */
enum {
  ST_GET,
  ST_SET,
  ST_TOUCH,
  ST_DESTROY,
  ST_CAS,
  ST_PRUNE,
  ST_LENGTH,
  ST_ALL,
  ST_CLEAR,
  ST_ALL_EXPIRED,
  ST_N
};

static const char *const st_name[ST_N] = {
    "csn_get",   "csn_set",    "csn_touch", "csn_destroy", "csn_cas",
    "csn_prune", "csn_length", "csn_all",   "csn_clear",   "csn_all_expired"};

/* "PREPARE name(types) AS " + this, with %1$s the quoted table. Instants
 * are epoch seconds (float8) through to_timestamp(), as connect-pg-simple
 * sends them. */
static const char *const st_sql[ST_N] = {
    /* get: $1 sid, $2 now */
    "(text, float8) AS SELECT sess FROM %1$s "
    "WHERE sid = $1 AND expire >= to_timestamp($2)",
    /* set: $1 sid, $2 sess, $3 expire */
    "(text, json, float8) AS INSERT INTO %1$s (sid, sess, expire) "
    "VALUES ($1, $2, to_timestamp($3)) ON CONFLICT (sid) DO UPDATE "
    "SET sess = EXCLUDED.sess, expire = EXCLUDED.expire",
    /* touch: $1 sid, $2 expire, $3 now; an expired row is not revived */
    "(text, float8, float8) AS UPDATE %1$s SET expire = to_timestamp($2) "
    "WHERE sid = $1 AND expire >= to_timestamp($3)",
    /* destroy: $1 sid */
    "(text) AS DELETE FROM %1$s WHERE sid = $1",
    /* cas: $1 sid, $2 sess, $3 expire, $4 expected, $5 now. Returns
     * (written, live): see the OVERVIEW. COLLATE "C": byte equality
     * whatever the database's collation. */
    "(text, json, float8, text, float8) AS WITH upd AS ("
    "UPDATE %1$s SET sess = $2, expire = to_timestamp($3) "
    "WHERE sid = $1 AND expire >= to_timestamp($5) "
    "AND sess::text = $4 COLLATE \"C\" RETURNING 1) "
    "SELECT (SELECT count(*) FROM upd), "
    "(SELECT count(*) FROM (SELECT 1 FROM %1$s "
    "WHERE sid = $1 AND expire >= to_timestamp($5) FOR UPDATE) AS live)",
    /* prune: $1 now */
    "(float8) AS DELETE FROM %1$s WHERE expire < to_timestamp($1)",
    /* length: $1 now */
    "(float8) AS SELECT count(*) FROM %1$s WHERE expire >= to_timestamp($1)",
    /* all: $1 now, $2 the last sid of the previous batch, $3 batch size */
    "(float8, text, int4) AS SELECT sid, sess FROM %1$s "
    "WHERE expire >= to_timestamp($1) AND sid > $2 ORDER BY sid LIMIT $3",
    /* clear */
    " AS DELETE FROM %1$s",
    /* all_expired: as all, with prune's test (what prune would delete) */
    "(float8, text, int4) AS SELECT sid, sess FROM %1$s "
    "WHERE expire < to_timestamp($1) AND sid > $2 ORDER BY sid LIMIT $3",
};

typedef struct pg_store {
  csn_store base; /* first: the method table */
  /* How to connect; read-only after creation. NULL-terminated arrays of
   * n_params + 1. */
  char **keys, **vals;
  size_t n_params;
  char *password;  /* NULL: none; only for scrubbing messages */
  char where[160]; /* "host:port", for messages */
  int64_t connect_ms, timeout_ms;
  char *setup;   /* SET statement_timeout; PREPARE ... (per connection) */
  char *setup_first; /* the SET alone (the first connection's) */
  int ready;     /* set once the table exists: new connections PREPARE */
  /* The table. */
  char *qname;   /* quoted, schema-qualified */
  char *ddl;     /* CREATE TABLE IF NOT EXISTS ...; CREATE INDEX ... */
  int create_table, disable_touch;
  int explicit_tz; /* the URL's options set TimeZone */
  int64_t ttl_s;
  unsigned pool_max;
  csn_pool *pool; /* of PGconn (the kit's) */
  csn_sweeper *sweeper; /* NULL when pruning is off */
} pg_store;

/* One borrowed connection and what happened on it. */
typedef struct pg_conn {
  PGconn *c;
  int reused; /* came from the idle stack (the server may have gone) */
  int stale;  /* reused, and found dead by the operation */
  int broken; /* dead, or out of step: drop it */
} pg_conn;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Expiry instants are epoch based (connect-pg-simple sends Date.now()):
 * csn_now_ms(). Deadlines run on csn_mono_ms(). */

/* ceil(ms / 1000), also for negative ms (C division truncates toward
 * zero, which is the ceiling there). */
static int64_t ceil_s(int64_t ms) {
  return ms / 1000 + (ms > 0 && ms % 1000 != 0);
}

/* The `expire` connect-pg-simple writes: ceil(expires / 1000) s, or
 * ceil(now / 1000) + ttl for a browser-session cookie; as decimal text. */
static void expire_text(const pg_store *s, int64_t expires_ms, char *out,
                        size_t n) {
  int64_t e = expires_ms == CSN_TIME_NONE ? ceil_s(csn_now_ms()) + s->ttl_s
                                          : ceil_s(expires_ms);
  if (e > PG_EPOCH_MAX) e = PG_EPOCH_MAX;
  if (e < -PG_EPOCH_MAX) e = -PG_EPOCH_MAX;
  snprintf(out, n, "%lld", (long long)e);
}

/* "Now" for get's and friends' liveness test: ceil(now / 1000). */
static void now_text(char *out, size_t n) {
  snprintf(out, n, "%lld", (long long)ceil_s(csn_now_ms()));
}

/* A double-quoted identifier, embedded '"' doubled; appended to out. */
static char *quote_ident(char *out, const char *name) {
  *out++ = '"';
  for (; *name != '\0'; name++) {
    if (*name == '"') *out++ = '"';
    *out++ = *name;
  }
  *out++ = '"';
  *out = '\0';
  return out;
}

/* libpq's text on one line, trailing blanks cut. */
static void flatten(char *msg) {
  char *w = msg;
  for (char *r = msg; *r != '\0'; r++) {
    char c = (*r == '\n' || *r == '\t' || *r == '\r') ? ' ' : *r;
    if (c == ' ' && w > msg && w[-1] == ' ') continue;
    *w++ = c;
  }
  while (w > msg && w[-1] == ' ') w--;
  *w = '\0';
}

/* msg with every occurrence of secret replaced by "***", into out. */
static void scrub(const char *msg, const char *secret, char *out,
                  size_t cap) {
  size_t n = secret != NULL ? strlen(secret) : 0, w = 0;
  while (*msg != '\0' && w + 4 < cap) {
    if (n > 0 && strncmp(msg, secret, n) == 0) {
      memcpy(out + w, "***", 3);
      w += 3;
      msg += n;
    } else {
      out[w++] = *msg++;
    }
  }
  out[w] = '\0';
}

/* Record "postgres WHERE: WHAT: text" for the calling thread: one line,
 * the password (if it ever appeared) replaced. */
static int pg_err(pg_store *s, int rc, const char *what, const char *text) {
  char msg[PG_MSG_MAX], clean[PG_MSG_MAX];
  snprintf(msg, sizeof msg, "%s", text);
  flatten(msg);
  scrub(msg, s->password, clean, sizeof clean);
  return csn_store_set_error(&s->base, rc, "postgres %s: %s: %s", s->where,
                             what, clean);
}

/* ------------------------------------------------------------------------ */
/* Waiting on a socket                                                      */
/* ------------------------------------------------------------------------ */

/* Wait for `events` on the connection's socket until `deadline`
 * (monotonic ms). Returns the revents (> 0), 0 at the deadline, -1 when
 * there is no socket or poll fails. */
static int wait_sock(PGconn *c, short events, int64_t deadline) {
  struct pollfd p;
  p.fd = PQsocket(c);
  if (p.fd < 0) return -1;
  p.events = events;
  for (;;) {
    int64_t left = deadline - csn_mono_ms();
    if (left < 0) left = 0;
    p.revents = 0;
    int n = poll(&p, 1, (int)left);
    if (n > 0) return p.revents;
    if (n == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

/* A failed result: a code, a message (primary text and SQLSTATE only: the
 * DETAIL of e.g. a unique violation would show the id), and whether the
 * connection survived it. */
static int result_error(pg_store *s, pg_conn *cn, const char *what,
                        const PGresult *r) {
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char *prim = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  char text[PG_MSG_MAX];
  int rc = CSN_ESTORE;
  if (prim == NULL) prim = PQresultErrorMessage(r); /* libpq's own */
  if (prim == NULL || prim[0] == '\0') prim = "failed";
  if (PQstatus(cn->c) != CONNECTION_OK || state == NULL ||
      strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0) {
    /* The connection is gone (or, with no SQLSTATE, libpq gave up on it):
     * never give it back. */
    cn->broken = 1;
    if (cn->reused) cn->stale = 1;
    rc = CSN_EIO;
  } else if (strcmp(state, "57014") == 0) {
    rc = CSN_ETIMEDOUT; /* statement_timeout: the connection is fine */
  }
  if (state != NULL)
    snprintf(text, sizeof text, "%s (SQLSTATE %s)", prim, state);
  else
    snprintf(text, sizeof text, "%s", prim);
  return pg_err(s, rc, what, text);
}

/* The query is sent (or queued): flush it, then read every result until
 * libpq has none left, within `deadline`. The last good result goes to
 * *out (NULL when not wanted); the first error decides the return code. A
 * connection that misses the deadline is broken: its answer may still
 * come, and would be read as the next query's. */
static int collect(pg_store *s, pg_conn *cn, const char *what,
                   int64_t deadline, PGresult **out) {
  PGconn *c = cn->c;
  PGresult *keep = NULL;
  int rc = CSN_OK, f;
  if (out != NULL) *out = NULL;
  while ((f = PQflush(c)) == 1) {
    int w = wait_sock(c, POLLIN | POLLOUT, deadline);
    if (w == 0) goto timeout;
    if (w < 0 || ((w & POLLIN) && !PQconsumeInput(c))) goto io;
  }
  if (f < 0) goto io;
  for (;;) {
    while (PQisBusy(c)) {
      int w = wait_sock(c, POLLIN, deadline);
      if (w == 0) goto timeout;
      if (w < 0 || !PQconsumeInput(c)) goto io;
    }
    PGresult *r = PQgetResult(c);
    if (r == NULL) break;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      if (rc == CSN_OK && out != NULL) {
        PQclear(keep);
        keep = r;
        r = NULL;
      }
    } else if (rc == CSN_OK) {
      rc = result_error(s, cn, what, r);
    }
    PQclear(r);
  }
  if (rc != CSN_OK) {
    PQclear(keep);
    return rc;
  }
  if (out != NULL) *out = keep;
  return CSN_OK;
timeout:
  PQclear(keep);
  cn->broken = 1;
  {
    char text[96];
    snprintf(text, sizeof text, "no answer within %lld ms",
             (long long)s->timeout_ms);
    return pg_err(s, CSN_ETIMEDOUT, what, text);
  }
io:
  PQclear(keep);
  cn->broken = 1;
  if (cn->reused) cn->stale = 1;
  return pg_err(s, CSN_EIO, what, PQerrorMessage(c));
}

static int64_t stmt_deadline(const pg_store *s) {
  return csn_mono_ms() + s->timeout_ms + PG_GRACE_MS;
}

/* A text query in the simple protocol (setup, DDL). */
static int simple(pg_store *s, pg_conn *cn, const char *what, const char *sql,
                  int64_t deadline) {
  if (!PQsendQuery(cn->c, sql)) {
    cn->broken = 1;
    return pg_err(s, CSN_EIO, what, PQerrorMessage(cn->c));
  }
  return collect(s, cn, what, deadline, NULL);
}

/* A prepared statement; n parameters, text or (fmts[i] = 1) binary. */
typedef struct pg_call {
  int stmt;
  const char *what;
  int n;
  const char *vals[5];
  int lens[5];
  int fmts[5];
  PGresult *res; /* the result, for the caller (PQclear) */
} pg_call;

static int call(pg_store *s, pg_conn *cn, pg_call *a) {
  a->res = NULL;
  if (!PQsendQueryPrepared(cn->c, st_name[a->stmt], a->n, a->vals, a->lens,
                           a->fmts, 0)) {
    cn->broken = 1;
    if (cn->reused) cn->stale = 1;
    return pg_err(s, CSN_EIO, a->what, PQerrorMessage(cn->c));
  }
  return collect(s, cn, a->what, stmt_deadline(s), &a->res);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

/* Notices (NOTICE, WARNING, and the FATAL a server sends an idle session
 * it is closing) go here instead of libpq's default, which prints them on
 * stderr: a library keeps quiet. They arrive inside PQconsumeInput() or
 * PQgetResult(), on the thread using the connection, so a thread-local
 * flag tells idle_ok() that its connection was told to go away. */
static _Thread_local int tl_fatal;

static void on_notice(void *arg, const PGresult *r) {
  const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  (void)arg;
  if (sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
    tl_fatal = 1;
}

/* A new connection: connect within connect_timeout, then one query string
 * sets statement_timeout and (once the store is ready) PREPAREs. The
 * pool's connect: ud is the store, *out a PGconn. */
static int pg_connect(void *ud, void **out) {
  pg_store *s = ud;
  int64_t deadline = csn_mono_ms() + s->connect_ms;
  PGconn *c = PQconnectStartParams((const char *const *)s->keys,
                                   (const char *const *)s->vals, 0);
  if (c == NULL) return pg_err(s, CSN_ENOMEM, "connect", "out of memory");
  PQsetNoticeReceiver(c, on_notice, NULL);
  PostgresPollingStatusType ps =
      PQstatus(c) == CONNECTION_BAD ? PGRES_POLLING_FAILED
                                    : PGRES_POLLING_WRITING;
  while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
    int w = wait_sock(c, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                      deadline);
    if (w == 0) {
      char text[96];
      PQfinish(c);
      snprintf(text, sizeof text, "no answer within %lld ms",
               (long long)s->connect_ms);
      return pg_err(s, CSN_ETIMEDOUT, "connect", text);
    }
    if (w < 0) break;
    ps = PQconnectPoll(c);
  }
  if (ps != PGRES_POLLING_OK) {
    /* A refusal by the server (authentication, no such database) comes
     * as a FATAL message; anything else is the network's. */
    const char *m = PQerrorMessage(c);
    int rc = strstr(m, "FATAL:") != NULL ? CSN_ESTORE : CSN_EIO;
    rc = pg_err(s, rc, "connect", m[0] ? m : "failed");
    PQfinish(c);
    return rc;
  }
  pg_conn cn = {c, 0, 0, 0};
  int rc = PQsetnonblocking(c, 1) == 0
               ? CSN_OK
               : pg_err(s, CSN_EIO, "connect", PQerrorMessage(c));
  if (rc == CSN_OK) {
    /* The first connection (open, before the table check) gets the SET
     * alone, and its PREPAREs from op_hello. */
    rc = simple(s, &cn, "setup", s->ready ? s->setup : s->setup_first,
                stmt_deadline(s));
  }
  if (rc != CSN_OK) {
    PQfinish(c);
    return rc;
  }
  *out = c;
  return CSN_OK;
}

/* Is an idle connection still good? It has nothing to read between
 * queries unless the server sent something on its own: a NOTICE or a
 * parameter change (harmless, consumed here) or, when it closed the
 * session, a FATAL error and EOF. */
static int idle_ok(void *ud, void *handle) {
  PGconn *c = handle;
  (void)ud;
  for (int i = 0; i < 2; i++) {
    struct pollfd p = {PQsocket(c), POLLIN, 0};
    if (p.fd < 0) return 0;
    if (poll(&p, 1, 0) == 0) return 1;
    tl_fatal = 0;
    /* The FATAL may come before the EOF does: either means dead. */
    if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK || PQisBusy(c) ||
        tl_fatal)
      return 0;
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) PQfreemem(n);
  }
  return PQstatus(c) == CONNECTION_OK;
}

/* The pool's other callbacks (csn_pool_*, see the OVERVIEW). */

/* At give-back: a connection that is dead or left inside a transaction
 * (out of step) is dropped. */
static int pool_usable(void *ud, void *handle) {
  (void)ud;
  return PQstatus(handle) == CONNECTION_OK &&
         PQtransactionStatus(handle) == PQTRANS_IDLE;
}

/* Non-blocking: PQfinish queues a Terminate and closes, never waiting on
 * the peer. */
static void pool_close(void *ud, void *handle) {
  (void)ud;
  PQfinish(handle);
}

static const csn_pool_methods pg_pool_methods = {
    .connect = pg_connect,
    .idle_ok = idle_ok,
    .usable = pool_usable,
    .close = pool_close,
};

/* Run op on a borrowed connection. An idempotent op that failed on a
 * connection found dead runs once more on a new one. */
typedef int (*pg_op)(pg_store *s, pg_conn *cn, void *arg);

typedef struct pg_job {
  pg_op op;
  void *arg;
} pg_job;

static int pg_job_run(void *ud, csn_pool_conn *pc, void *arg) {
  pg_job *j = arg;
  pg_conn cn = {pc->handle, pc->reused, 0, 0};
  int rc = j->op(ud, &cn, j->arg);
  pc->stale = cn.stale;
  pc->broken = cn.broken;
  return rc;
}

static int pg_run(pg_store *s, pg_op op, void *arg, int idempotent) {
  pg_job j = {op, arg};
  return csn_pool_run(s->pool, pg_job_run, &j, idempotent);
}

static int op_call(pg_store *s, pg_conn *cn, void *arg) {
  pg_call *a = arg;
  PQclear(a->res); /* a replay's first result, if any */
  return call(s, cn, a);
}

/* One prepared statement; on success a->res is the caller's. */
static int pg_call_run(pg_store *s, pg_call *a, int idempotent) {
  a->res = NULL;
  int rc = pg_run(s, op_call, a, idempotent);
  if (rc != CSN_OK) {
    PQclear(a->res);
    a->res = NULL;
  }
  return rc;
}

/* A one-row, one-column count (length) or the affected rows (prune). */
static int64_t res_int(const PGresult *r, int row, int col) {
  if (PQntuples(r) <= row || PQnfields(r) <= col) return -1;
  return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* ------------------------------------------------------------------------ */
/* Store methods                                                            */
/* ------------------------------------------------------------------------ */

/* The core has checked each id (csn_store_id_valid); it reaches PostgreSQL
 * only as a parameter. Records are sent as binary json/text parameters:
 * their bytes, with their length, exactly. */

static int pg_get(csn_store *st, const char *sid, char **json, size_t *len) {
  pg_store *s = (pg_store *)st;
  char now[24];
  now_text(now, sizeof now);
  pg_call a = {.stmt = ST_GET, .what = "get", .n = 2, .vals = {sid, now}};
  int rc = pg_call_run(s, &a, 1);
  if (rc != CSN_OK) return rc;
  if (PQntuples(a.res) == 0) {
    PQclear(a.res);
    return CSN_ENOENT;
  }
  size_t n = (size_t)PQgetlength(a.res, 0, 0);
  char *copy = csn_malloc(n + 1);
  if (copy == NULL) {
    PQclear(a.res);
    return csn_store_set_error(st, CSN_ENOMEM, NULL);
  }
  memcpy(copy, PQgetvalue(a.res, 0, 0), n);
  copy[n] = '\0';
  PQclear(a.res);
  *json = copy;
  *len = n;
  return CSN_OK;
}

/* A record's length as libpq's int. */
static int rec_len(pg_store *s, size_t len, int *out) {
  if (len > (size_t)INT_MAX)
    return csn_store_set_error(&s->base, CSN_EINVAL,
                               "postgres %s: record too large", s->where);
  *out = (int)len;
  return CSN_OK;
}

/* set: connect-pg-simple's upsert. An expiry in the past is written as it
 * is (the row is dead for get and goes with the next prune), as Node's
 * store does. */
static int pg_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  pg_store *s = (pg_store *)st;
  char exp[24];
  int jl = 0, rc = rec_len(s, len, &jl);
  if (rc != CSN_OK) return rc;
  expire_text(s, expires_ms, exp, sizeof exp);
  pg_call a = {.stmt = ST_SET,
               .what = "set",
               .n = 3,
               .vals = {sid, json, exp},
               .lens = {0, jl, 0},
               .fmts = {0, 1, 0}};
  rc = pg_call_run(s, &a, 1);
  PQclear(a.res);
  return rc;
}

static int pg_destroy(csn_store *st, const char *sid) {
  pg_call a = {.stmt = ST_DESTROY, .what = "destroy", .n = 1, .vals = {sid}};
  int rc = pg_call_run((pg_store *)st, &a, 1);
  PQclear(a.res);
  return rc;
}

/* touch is connect-pg-simple's: only `expire` moves, the stored text is
 * never rewritten (a concurrent request's newer data survives). Unlike
 * Node's, an expired row is left alone rather than revived. */
static int pg_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  pg_store *s = (pg_store *)st;
  char exp[24], now[24];
  (void)json, (void)len;
  if (s->disable_touch) return CSN_OK;
  expire_text(s, expires_ms, exp, sizeof exp);
  now_text(now, sizeof now);
  pg_call a = {
      .stmt = ST_TOUCH, .what = "touch", .n = 3, .vals = {sid, exp, now}};
  int rc = pg_call_run(s, &a, 1);
  PQclear(a.res);
  return rc;
}

static int pg_cas(csn_store *st, const char *sid, const char *expected,
                  size_t expected_len, const char *json, size_t len,
                  int64_t expires_ms) {
  pg_store *s = (pg_store *)st;
  char exp[24], now[24];
  int jl = 0, el = 0, rc = rec_len(s, len, &jl);
  if (rc == CSN_OK) rc = rec_len(s, expected_len, &el);
  if (rc != CSN_OK) return rc;
  expire_text(s, expires_ms, exp, sizeof exp);
  now_text(now, sizeof now);
  pg_call a = {.stmt = ST_CAS,
               .what = "cas",
               .n = 5,
               .vals = {sid, json, exp, expected, now},
               .lens = {0, jl, 0, el, 0},
               .fmts = {0, 1, 0, 1, 0}};
  /* Not idempotent: replayed after a commit whose answer was lost, it
   * could overwrite what another writer wrote since. */
  rc = pg_call_run(s, &a, 0);
  if (rc != CSN_OK) return rc;
  int64_t written = res_int(a.res, 0, 0), live = res_int(a.res, 0, 1);
  PQclear(a.res);
  if (written == 1) return CSN_OK;
  if (written == 0) return live > 0 ? CSN_ECONFLICT : CSN_ENOENT;
  return csn_store_set_error(st, CSN_ESTORE,
                             "postgres %s: cas: unexpected result", s->where);
}

/* The number of rows a DELETE removed. */
static int pg_delete(pg_store *s, int stmt, const char *what, size_t *removed) {
  char now[24];
  now_text(now, sizeof now);
  pg_call a = {.stmt = stmt, .what = what, .n = stmt == ST_PRUNE,
               .vals = {now}};
  int rc = pg_call_run(s, &a, 1);
  if (rc == CSN_OK && removed != NULL)
    *removed = (size_t)strtoull(PQcmdTuples(a.res), NULL, 10);
  PQclear(a.res);
  return rc;
}

static int pg_prune(csn_store *st, size_t *removed) {
  return pg_delete((pg_store *)st, ST_PRUNE, "prune", removed);
}

static int pg_clear(csn_store *st) {
  return pg_delete((pg_store *)st, ST_CLEAR, "clear", NULL);
}

static int pg_length(csn_store *st, size_t *count) {
  pg_store *s = (pg_store *)st;
  char now[24];
  now_text(now, sizeof now);
  pg_call a = {.stmt = ST_LENGTH, .what = "length", .n = 1, .vals = {now}};
  int rc = pg_call_run(s, &a, 1);
  if (rc != CSN_OK) return rc;
  int64_t n = res_int(a.res, 0, 0);
  PQclear(a.res);
  if (n < 0)
    return csn_store_set_error(st, CSN_ESTORE,
                               "postgres %s: length: unexpected result",
                               s->where);
  *count = (size_t)n;
  return CSN_OK;
}

/* all and all_expired (stmt ST_ALL or ST_ALL_EXPIRED): keyset batches
 * (sid > the last one seen, in sid order), each read with a connection
 * that is given back before the callback runs, so the callback may call
 * the store. */
static int pg_walk(csn_store *st, int stmt, const char *what,
                   csn_store_each_fn fn, void *userdata) {
  pg_store *s = (pg_store *)st;
  char now[24], limit[16], *last = csn_strdup("");
  int rc = CSN_OK, stop = 0;
  if (last == NULL) return csn_store_set_error(st, CSN_ENOMEM, NULL);
  now_text(now, sizeof now); /* one instant for the whole walk */
  snprintf(limit, sizeof limit, "%d", PG_BATCH);
  while (rc == CSN_OK && !stop) {
    pg_call a = {
        .stmt = stmt, .what = what, .n = 3, .vals = {now, last, limit}};
    rc = pg_call_run(s, &a, 1);
    if (rc != CSN_OK) break;
    int rows = PQntuples(a.res);
    for (int i = 0; i < rows && !stop; i++) {
      const char *sid = PQgetvalue(a.res, i, 0);
      if (csn_store_id_valid(sid))
        stop = fn(sid, PQgetvalue(a.res, i, 1),
                  (size_t)PQgetlength(a.res, i, 1), userdata) != 0;
    }
    if (rows > 0) {
      csn_free(last);
      last = csn_strdup(PQgetvalue(a.res, rows - 1, 0));
      if (last == NULL) rc = csn_store_set_error(st, CSN_ENOMEM, NULL);
    }
    if (rows < PG_BATCH) stop = 1;
    PQclear(a.res);
  }
  csn_free(last);
  return rc;
}

static int pg_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  return pg_walk(st, ST_ALL, "all", fn, userdata);
}

/* The rows still in the table whose `expire` has passed: prune's test,
 * `expire < to_timestamp(now)`, the exact complement of get's liveness
 * test. The comparison of `expire` (without time zone) with
 * to_timestamp()'s timestamptz goes through the session's TimeZone, the
 * server's default (see "Time zones"), as in get and prune, and now is
 * the client's wall clock in whole seconds rounded up (now_text()), as get
 * sends it: a row listed here is one get() refuses and prune() deletes. */
static int pg_all_expired(csn_store *st, csn_store_each_fn fn,
                          void *userdata) {
  return pg_walk(st, ST_ALL_EXPIRED, "all_expired", fn, userdata);
}

/* The background prune. A failure (the server briefly away) is left for
 * the next round: nobody waits on this thread's result. */
static void pg_sweep(csn_sweeper *sw, void *userdata) {
  (void)sw;
  (void)pg_prune(userdata, NULL);
}

static void pg_close(csn_store *st) {
  pg_store *s = (pg_store *)st;
  csn_sweeper_stop(s->sweeper); /* waits for a prune: at most `timeout` */
  csn_pool_free(s->pool); /* non-blocking: PQfinish never waits */
  for (size_t i = 0; i < s->n_params; i++) {
    csn_free(s->keys[i]);
    csn_free_secret(s->vals[i]);
  }
  csn_free(s->keys);
  csn_free(s->vals);
  csn_free_secret(s->password);
  csn_free(s->setup);
  csn_free(s->setup_first);
  csn_free(s->qname);
  csn_free(s->ddl);
  csn_free(s);
}

static const csn_store_methods pg_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "postgres",
    .get = pg_get,
    .set = pg_set,
    .destroy = pg_destroy,
    .touch = pg_touch,
    .clear = pg_clear,
    .length = pg_length,
    .all = pg_all,
    .prune = pg_prune,
    .close = pg_close,
    .cas = pg_cas,
    .all_expired = pg_all_expired,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

#define PG_FAIL(rc, ...) csn_store_fail(errbuf, errlen, rc, __VA_ARGS__)

/* The first connection: is the session's TimeZone the server's (see the
 * OVERVIEW), does the table exist (else create it, when asked)? Then the
 * statements are prepared on it, and on every connection after it. */
static int op_hello(pg_store *s, pg_conn *cn, void *arg) {
  const char *vals[1] = {s->qname};
  int64_t deadline = stmt_deadline(s);
  PGresult *r = NULL;
  char create_err[PG_MSG_MAX + 200] = "";
  (void)arg;
  for (int attempt = 0;; attempt++) {
    if (!PQsendQueryParams(cn->c,
                           "SELECT to_regclass($1) IS NOT NULL, (SELECT "
                           "source FROM pg_settings WHERE name = 'TimeZone')",
                           1, NULL, vals, NULL, NULL, 0)) {
      cn->broken = 1;
      return pg_err(s, CSN_EIO, "open", PQerrorMessage(cn->c));
    }
    int rc = collect(s, cn, "open", deadline, &r);
    if (rc != CSN_OK) return rc;
    if (PQntuples(r) != 1 || PQnfields(r) != 2) {
      PQclear(r);
      return pg_err(s, CSN_ESTORE, "open", "unexpected result");
    }
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    int client_tz = strcmp(PQgetvalue(r, 0, 1), "client") == 0;
    PQclear(r);
    if (client_tz && !s->explicit_tz)
      return pg_err(s, CSN_EINVAL, "open",
                    "the session's TimeZone is set by the client (PGTZ or "
                    "PGOPTIONS in the environment?): expire would be "
                    "shifted for every other writer of the table; unset it");
    if (exists) break;
    if (attempt > 0) {
      /* The creation failed and nobody else created it: its error. */
      return csn_store_set_error(&s->base, CSN_ESTORE, "%s", create_err);
    }
    if (!s->create_table)
      return pg_err(s, CSN_ESTORE, "open",
                    "the session table does not exist (create it, or open "
                    "with create_table=1)");
    /* Two processes starting together may both get here: IF NOT EXISTS
     * covers most of it, but PostgreSQL can still fail the slower
     * CREATE TABLE with a duplicate (23505 on pg_type, or 42P07); the
     * check then runs again and finds the table. */
    rc = simple(s, cn, "create table", s->ddl, deadline);
    if (rc != CSN_OK && rc != CSN_ESTORE) return rc;
    if (rc != CSN_OK)
      snprintf(create_err, sizeof create_err, "%s",
               csn_store_errmsg(&s->base));
  }
  return simple(s, cn, "prepare", s->setup + strlen(s->setup_first),
                deadline);
}

/* Does a libpq options string set TimeZone? Its words are separated by
 * blanks (a backslash escapes the next character); "-c name=value",
 * "-cname=value" and "--name=value" set a parameter, names are
 * case-insensitive. out gets the string without
 * those words (escapes kept), NUL-terminated; same size as in. */
static void strip_timezone(const char *in, char *out) {
  const char *p = in;
  char *w = out;
  int pending_c = 0; /* "-c" seen, its argument is next */
  const char *c_start = NULL;
  while (*p != '\0') {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p == '\0') break;
    const char *start = p;
    char word[64];
    size_t n = 0;
    while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r') {
      if (*p == '\\' && p[1] != '\0') p++;
      if (n < sizeof word - 1) {
        char ch = *p;
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        word[n++] = ch;
      }
      p++;
    }
    word[n] = '\0';
    const char *arg = NULL;
    int is_c = 0;
    if (pending_c)
      arg = word;
    else if (strcmp(word, "-c") == 0)
      is_c = 1;
    else if (strncmp(word, "-c", 2) == 0)
      arg = word + 2;
    else if (strncmp(word, "--", 2) == 0)
      arg = word + 2;
    if (is_c) {
      pending_c = 1;
      c_start = start;
      continue;
    }
    int drop = arg != NULL && strncmp(arg, "timezone=", 9) == 0;
    if (!drop) {
      /* Keep the word (and a "-c" held back for it). */
      const char *from = pending_c ? c_start : start;
      if (w > out) *w++ = ' ';
      memcpy(w, from, (size_t)(p - from));
      w += p - from;
    }
    pending_c = 0;
  }
  if (pending_c) { /* a trailing "-c": keep it, libpq's to refuse */
    if (w > out) *w++ = ' ';
    strcpy(w, c_start);
    w += strlen(c_start);
  }
  *w = '\0';
}

/* A message of libpq's about a conninfo it could not parse, with quoted
 * text hidden: it may be a piece of the password. Only the names of
 * unknown parameters are shown. */
static void redact_quoted(char *m) {
  if (strncmp(m, "invalid URI query parameter", 27) == 0 ||
      strncmp(m, "invalid connection option", 25) == 0)
    return;
  char *w = m;
  int in = 0;
  for (char *r = m; *r != '\0'; r++) {
    if (*r == '"') {
      in = !in;
      *w++ = '"';
      if (in) w += sprintf(w, "***");
      continue;
    }
    if (!in) *w++ = *r;
  }
  *w = '\0';
}

/* keyword/value arrays for PQconnectStartParams(): what conninfo sets,
 * with the store's defaults (see the OVERVIEW) where it sets nothing. */
static int build_params(pg_store *s, const char *conninfo,
                        int64_t *conninfo_timeout_s, char *errbuf,
                        size_t errlen) {
  char *perr = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
  if (opts == NULL) {
    char m[256];
    snprintf(m, sizeof m, "%s", perr != NULL ? perr : "out of memory");
    PQfreemem(perr);
    flatten(m);
    redact_quoted(m);
    return PG_FAIL(CSN_EINVAL, "postgres store: bad connection string: %s",
                   m);
  }
  static const char *const extra[][2] = {
      {"client_encoding", "UTF8"},
      {"fallback_application_name", "csession"},
      {"keepalives", "1"},
      {"keepalives_idle", "30"},
      {"keepalives_interval", "10"},
      {"keepalives_count", "3"},
      {"connect_timeout", NULL}, /* filled in below */
  };
  size_t n = 0, cap = 0;
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++) cap++;
  cap += sizeof extra / sizeof extra[0] + 1;
  s->keys = csn_malloc(cap * sizeof *s->keys);
  s->vals = csn_malloc(cap * sizeof *s->vals);
  if (s->keys == NULL || s->vals == NULL) {
    csn_free(s->keys);
    csn_free(s->vals);
    s->keys = s->vals = NULL;
  }
  int rc = CSN_OK;
  const char *host = NULL, *hostaddr = NULL, *port = NULL;
  char cto[24];
  if (s->keys == NULL || s->vals == NULL) goto nomem;
  memset(s->keys, 0, cap * sizeof *s->keys);
  memset(s->vals, 0, cap * sizeof *s->vals);
  s->n_params = cap;
  *conninfo_timeout_s = 0;
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
    if (o->val == NULL) continue;
    const char *k = o->keyword;
    char *v = csn_strdup(o->val);
    s->keys[n] = csn_strdup(k);
    s->vals[n] = v; /* owned by the store from here, also on failure */
    if (s->keys[n] == NULL || v == NULL) goto nomem;
    if (strcmp(k, "options") == 0) {
      /* A TimeZone given here is the user's choice (to match writers
       * configured the same way): kept, and remembered, so that open does
       * not mistake it for one the environment imposes. */
      char *stripped = csn_malloc(strlen(o->val) + 1);
      if (stripped == NULL) goto nomem;
      strip_timezone(o->val, stripped);
      s->explicit_tz = strcmp(stripped, o->val) != 0;
      csn_free(stripped);
    }
    if (strcmp(k, "password") == 0 && o->val[0] != '\0' &&
        (s->password = csn_strdup(o->val)) == NULL)
      goto nomem;
    if (strcmp(k, "host") == 0) host = s->vals[n];
    if (strcmp(k, "hostaddr") == 0) hostaddr = s->vals[n];
    if (strcmp(k, "port") == 0) port = s->vals[n];
    if (strcmp(k, "connect_timeout") == 0)
      *conninfo_timeout_s = strtoll(o->val, NULL, 10);
    n++;
  }
  snprintf(cto, sizeof cto, "%lld", (long long)ceil_s(s->connect_ms));
  for (size_t e = 0; e < sizeof extra / sizeof extra[0]; e++) {
    int have = 0;
    for (size_t i = 0; i < n && !have; i++)
      have = strcmp(s->keys[i], extra[e][0]) == 0;
    if (have) continue;
    s->keys[n] = csn_strdup(extra[e][0]);
    s->vals[n] = csn_strdup(extra[e][1] != NULL ? extra[e][1] : cto);
    n++;
    if (s->keys[n - 1] == NULL || s->vals[n - 1] == NULL) goto nomem;
  }
  /* "host:port" for messages: the first host of a list is enough. */
  if (host == NULL || host[0] == '\0') host = hostaddr;
  if (host == NULL || host[0] == '\0') host = "localhost";
  if (port == NULL || port[0] == '\0') port = "5432";
  snprintf(s->where, sizeof s->where,
           host[0] == '/' ? "%.100s (port %.16s)"
           : strchr(host, ':') != NULL && strchr(host, ',') == NULL
               ? "[%.100s]:%.16s"
               : "%.100s:%.16s",
           host, port);
  PQconninfoFree(opts);
  return rc;
nomem:
  PQconninfoFree(opts);
  return PG_FAIL(CSN_ENOMEM, "postgres store: out of memory");
}

/* The SQL made once per store: the quoted name, the DDL and the
 * per-connection setup. */
static int build_sql(pg_store *s, const char *schema, const char *table) {
  size_t tl = strlen(table), sl = schema ? strlen(schema) : 0;
  char *qt = csn_malloc(2 * tl + 3), *qi = csn_malloc(2 * tl + 20);
  char *qn = csn_malloc(2 * (tl + sl) + 8);
  char *idx = csn_malloc(tl + 16);
  int rc = CSN_ENOMEM;
  if (qt == NULL || qi == NULL || qn == NULL || idx == NULL) goto out;
  quote_ident(qt, table);
  /* connect-pg-simple's index name for its own table; for another table
   * one of its own, since index names are per schema. */
  if (strcmp(table, PG_DEFAULT_TABLE) == 0)
    snprintf(idx, tl + 16, "IDX_session_expire");
  else
    snprintf(idx, tl + 16, "IDX_%s_expire", table);
  quote_ident(qi, idx);
  char *e = qn;
  if (schema != NULL) {
    e = quote_ident(qn, schema);
    *e++ = '.';
  }
  quote_ident(e, table);
  size_t need = 2 * strlen(qn) + strlen(qi) + 256;
  s->ddl = csn_malloc(need);
  if (s->ddl == NULL) goto out;
  snprintf(s->ddl, need,
           "CREATE TABLE IF NOT EXISTS %s (\"sid\" varchar NOT NULL COLLATE "
           "\"default\" PRIMARY KEY, \"sess\" json NOT NULL, \"expire\" "
           "timestamp(6) NOT NULL); CREATE INDEX IF NOT EXISTS %s ON %s "
           "(\"expire\")",
           qn, qi, qn);
  need = 64;
  for (int i = 0; i < ST_N; i++)
    need += strlen(st_sql[i]) + 3 * strlen(qn) + 32;
  s->setup = csn_malloc(need);
  if (s->setup == NULL) goto out;
  size_t at = (size_t)snprintf(s->setup, need,
                               "SET statement_timeout = %lld;",
                               (long long)s->timeout_ms);
  s->setup_first = csn_strdup(s->setup);
  if (s->setup_first == NULL) goto out;
  for (int i = 0; i < ST_N; i++) {
    at += (size_t)snprintf(s->setup + at, need - at, "PREPARE %s",
                           st_name[i]);
    at += (size_t)snprintf(s->setup + at, need - at, st_sql[i], qn);
    at += (size_t)snprintf(s->setup + at, need - at, ";");
  }
  s->qname = qn;
  qn = NULL;
  rc = CSN_OK;
out:
  csn_free(qt);
  csn_free(qi);
  csn_free(qn);
  csn_free(idx);
  return rc;
}

static int name_ok(const char *name) {
  size_t n = strlen(name);
  return n > 0 && n <= PG_NAME_MAX;
}

int csn_store_pg_new(const csn_pg_options *opts, csn_store **out,
                     char *errbuf, size_t errlen) {
  csn_pg_options o;
  memset(&o, 0, sizeof o);
  if (opts != NULL) o = *opts;
  if (out == NULL) return PG_FAIL(CSN_EINVAL, "postgres store: no out");
  *out = NULL;
  if (o.conninfo == NULL) o.conninfo = "";
  if (o.table == NULL) o.table = PG_DEFAULT_TABLE;
  if (o.prune_interval_ms == 0) o.prune_interval_ms = PG_DEFAULT_PRUNE_MS;
  if (o.ttl_s == 0) o.ttl_s = PG_DEFAULT_TTL_S;
  if (o.timeout_ms == 0) o.timeout_ms = PG_DEFAULT_TIMEOUT_MS;
  if (o.pool_size == 0) o.pool_size = PG_DEFAULT_POOL;
  if (!name_ok(o.table))
    return PG_FAIL(CSN_EINVAL, "postgres store: table must be 1..%d bytes",
                   PG_NAME_MAX);
  if (o.schema != NULL && !name_ok(o.schema))
    return PG_FAIL(CSN_EINVAL, "postgres store: schema must be 1..%d bytes",
                   PG_NAME_MAX);
  if (o.ttl_s < 0 || o.ttl_s > PG_TTL_MAX)
    return PG_FAIL(CSN_EINVAL, "postgres store: ttl out of range");
  if (o.connect_timeout_ms < 0 || o.connect_timeout_ms > PG_TIMEOUT_MAX)
    return PG_FAIL(CSN_EINVAL, "postgres store: connect_timeout out of range");
  if (o.timeout_ms < 0 || o.timeout_ms > PG_TIMEOUT_MAX)
    return PG_FAIL(CSN_EINVAL, "postgres store: timeout out of range");
  if (o.pool_size > PG_POOL_MAX)
    return PG_FAIL(CSN_EINVAL, "postgres store: pool must be 1..%d",
                   PG_POOL_MAX);

  pg_store *s = csn_malloc(sizeof *s);
  if (s == NULL) return PG_FAIL(CSN_ENOMEM, "postgres store: out of memory");
  memset(s, 0, sizeof *s);
  s->base.m = &pg_methods;
  s->timeout_ms = o.timeout_ms;
  s->ttl_s = o.ttl_s;
  s->disable_touch = o.disable_touch != 0;
  s->create_table = o.create_table != 0;
  s->pool_max = o.pool_size;
  s->connect_ms = o.connect_timeout_ms ? o.connect_timeout_ms
                                       : PG_DEFAULT_CONNECT_MS;
  int64_t cto_s = 0;
  int rc = build_params(s, o.conninfo, &cto_s, errbuf, errlen);
  if (rc != CSN_OK) {
    csn_store_free(&s->base);
    return rc;
  }
  /* libpq's connect_timeout (seconds; 0 would be "forever") when the
   * options name none. */
  if (o.connect_timeout_ms == 0 && cto_s > 0)
    s->connect_ms = cto_s > PG_TIMEOUT_MAX / 1000 ? PG_TIMEOUT_MAX
                                                  : cto_s * 1000;
  /* The busy message reads as pg_err's: "postgres <where>: pool: ...". */
  char label[sizeof s->where + 24];
  snprintf(label, sizeof label, "postgres %s: pool", s->where);
  if (csn_pool_new(&s->pool, &pg_pool_methods, s, &s->base, label,
                   s->pool_max, s->timeout_ms, PG_IDLE_CHECK_MS) != CSN_OK ||
      build_sql(s, o.schema, o.table) != CSN_OK) {
    csn_store_free(&s->base);
    return PG_FAIL(CSN_ENOMEM, "postgres store: out of memory");
  }
  rc = pg_run(s, op_hello, NULL, 0);
  s->ready = 1;
  if (rc == CSN_OK && o.prune_interval_ms > 0 &&
      csn_sweeper_start(&s->sweeper, o.prune_interval_ms, PG_PRUNE_JITTER_PCT,
                        pg_sweep, s) != CSN_OK)
    rc = csn_store_set_error(&s->base, CSN_EIO,
                             "postgres store: cannot start the prune thread");
  if (rc != CSN_OK) {
    rc = PG_FAIL(rc, "%s", csn_store_errmsg(&s->base));
    csn_store_free(&s->base);
    return rc;
  }
  *out = &s->base;
  return CSN_OK;
}

/* Store options come out of the query; the rest of the URL, with every
 * other parameter as it was, is libpq's. */
int csn_store_pg_open(const char *url, csn_store **out, char *errbuf,
                      size_t errlen) {
  const char *rest, *query;
  size_t rlen;
  if (out == NULL || url == NULL)
    return PG_FAIL(CSN_EINVAL, "postgres store: no URL or no out");
  *out = NULL;
  if (csn_url_split(url, "postgresql", &rest, &rlen, &query) != CSN_OK &&
      csn_url_split(url, "postgres", &rest, &rlen, &query) != CSN_OK)
    return PG_FAIL(CSN_EINVAL, "postgres store: URL must start with "
                               "postgres:// or postgresql://");
  static const char *const store_keys[] = {
      "table", "schema", "create_table", "prune", "ttl",
      "disable_touch", "timeout", "pool"};
  char *mine = NULL, *libpq = NULL;
  char *table = NULL, *schema = NULL;
  (void)rest;
  (void)rlen;
  /* Ours to `mine`, the rest (libpq's) to the URL libpq gets. */
  int rc = csn_url_partition(url, query, store_keys,
                             sizeof store_keys / sizeof store_keys[0], &mine,
                             &libpq);
  if (rc == CSN_ENOMEM) {
    rc = PG_FAIL(CSN_ENOMEM, "postgres store: out of memory");
    goto out;
  }
  if (rc != CSN_OK) {
    rc = PG_FAIL(CSN_EINVAL, "postgres store: empty or malformed query "
                             "parameter");
    goto out;
  }
  int64_t prune = -2, ttl = 0, to = 0, pool = 0;
  int ctable = 0, dtouch = 0;
  const csn_url_option opts[] = {
      {.key = "table", .type = CSN_URL_STR, .out = &table},
      {.key = "schema", .type = CSN_URL_STR, .out = &schema},
      {.key = "create_table", .type = CSN_URL_BOOL, .out = &ctable},
      {.key = "prune", .type = CSN_URL_INT, .min = 0,
       .max = PG_TIMEOUT_MAX / 1000 * 365, .out = &prune},
      {.key = "ttl", .type = CSN_URL_INT, .min = 1, .max = PG_TTL_MAX,
       .out = &ttl},
      {.key = "disable_touch", .type = CSN_URL_BOOL, .out = &dtouch},
      {.key = "timeout", .type = CSN_URL_INT, .min = 1,
       .max = PG_TIMEOUT_MAX, .out = &to},
      {.key = "pool", .type = CSN_URL_INT, .min = 1, .max = PG_POOL_MAX,
       .out = &pool},
  };
  rc = csn_url_parse_query(mine, opts, sizeof opts / sizeof opts[0],
                           "postgres store", errbuf, errlen);
  if (rc == CSN_OK) {
    csn_pg_options o;
    memset(&o, 0, sizeof o);
    o.conninfo = libpq;
    o.table = table;
    o.schema = schema;
    o.create_table = ctable;
    /* prune=0: no background pruning; absent: the default. */
    o.prune_interval_ms = prune == -2 ? 0 : prune == 0 ? -1 : prune * 1000;
    o.ttl_s = ttl;
    o.disable_touch = dtouch;
    o.timeout_ms = to;
    o.pool_size = (unsigned)pool;
    rc = csn_store_pg_new(&o, out, errbuf, errlen);
  }
out:
  csn_free_secret(mine);
  csn_free_secret(libpq);
  csn_free(table);
  csn_free(schema);
  return rc;
}
