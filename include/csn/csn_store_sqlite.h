/* csn_store_sqlite.h - SQLite store, table-compatible with connect-sqlite3
 * 0.9.x, so a Node app using that package can share the database file.
 *
 * Link csn::store_sqlite (library csn_store_sqlite). Built with
 * -DCSN_WITH_SQLITE=ON.
 *
 * Schema (created if missing; an existing connect-sqlite3 table is used as
 * it is):
 *   CREATE TABLE <table> (sid PRIMARY KEY, expired, sess)
 *   CREATE INDEX <table>_expired_idx ON <table> (expired)
 * `expired` is the expiry instant in epoch milliseconds (integer), `sess` the
 * record's JSON text.
 *
 * Behaviour (stores.md section 8.1):
 *   set      expired = expires_ms, or now + 1 day for a browser-session
 *            cookie; INSERT OR REPLACE.
 *   get      only rows with now <= expired; `sess` exactly as stored.
 *   touch    only while the row is still valid: expired = expires_ms (now +
 *            1 day for a browser-session cookie, where connect-sqlite3 does
 *            nothing). Unlike connect-sqlite3 it also replaces
 *            the "cookie" member inside `sess`, keeping every other byte of
 *            the stored text (csn_record_splice_cookie, in one transaction),
 *            so a reader sees the refreshed cookie and a record written by
 *            Node keeps its text; a `sess` that is not a JSON object is left
 *            as it is. A missing or expired row is not an error and is not
 *            revived.
 *   cas      (Since 0.2) one conditional UPDATE: sess and expired (as set
 *            computes it) are written only if the row is live and its sess
 *            is byte for byte the expected text; CSN_ECONFLICT for a live
 *            row with another text, CSN_ENOENT for none. Atomic against
 *            every writer of the file, other processes included.
 *   destroy  delete by sid.
 *   length, all  live rows only (connect-sqlite3 counts expired rows too).
 *   clear    delete every row.
 *   prune    delete rows with now > expired, in bounded batches, also on a
 *            background thread every `prune` interval, each wait drawn from
 *            50%..150% of it (Since 0.2) so that processes sharing the file
 *            do not prune together; the wait uses the monotonic clock.
 *
 * The database runs in WAL mode with a busy timeout; each worker thread
 * borrows a connection from a small pool for reads (prepared statements
 * stay with the connection), and saves go through one writer connection
 * (see "Durability and group commit"), so concurrent requests neither
 * share a handle nor surface "database is locked" under normal load;
 * several processes (and Node's connect-sqlite3) may share the file.
 *
 * Durability and group commit (since 0.2). By default a save (set, touch,
 * cas, destroy) returns only after the transaction holding it is durable:
 * the store sets PRAGMA synchronous=FULL on its connections, with which
 * SQLite fsyncs the WAL at every commit, so an acknowledged save survives
 * a power cut. Saves that arrive while a commit is in flight are not
 * committed one by one: they wait, and the next commit takes all of them
 * (one writer connection, one transaction, one fsync for the batch), each
 * in a savepoint of its own, in arrival order. A save that fails fails
 * alone and leaves its row as it was; the others of the batch commit; a
 * cas sees the writes queued before it. Throughput therefore grows with
 * the number of saves in flight: give a server on this store more worker
 * threads than cores (say 8 to 32), since each one blocks for the fsync.
 * `synchronous=normal` (URL) or .synchronous = "normal" trades that for
 * speed: commits are no longer fsynced (the WAL is, at checkpoints), so an
 * acknowledged save survives a crash or kill of the process but may be
 * lost, with the saves after it, in a power cut or OS crash. The database
 * stays consistent either way.
 *
 * Thread-safety: every function may be called from several threads at once.
 * Since 0.1.
 */
#ifndef CSN_STORE_SQLITE_H
#define CSN_STORE_SQLITE_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csn_sqlite_options {
  const char *path;          /* database file; NULL: "./sessions.db" */
  const char *table;         /* NULL: "sessions"; [A-Za-z_][A-Za-z0-9_]* */
  int64_t prune_interval_ms; /* 0: 600000 (10 min); negative: no thread */
  int64_t busy_timeout_ms;   /* 0: 5000 */
  unsigned pool_size;        /* connections at most; 0: 8 */
  /* Since 0.2. NULL or "full": every acknowledged save is durable (the
   * default). "normal": SQLite's synchronous=NORMAL, see "Durability"
   * above. Anything else is CSN_EINVAL. */
  const char *synchronous;
} csn_sqlite_options;

/* Open (creating the file and table if needed). CSN_EIO when the database
 * cannot be opened or the schema created; CSN_EINVAL for a bad option; the
 * message is in errbuf (when not NULL) and in csn_last_error(). Release
 * with csn_store_free(). */
CSN_API int csn_store_sqlite_new(const csn_sqlite_options *opts,
                                 csn_store **out, char *errbuf,
                                 size_t errlen);

/* Open from a URL: "sqlite://" followed by the database path.
 *   sqlite:///var/lib/app/sessions.db   absolute (path starts with '/')
 *   sqlite://./sessions.db              relative to the working directory
 *   sqlite://sessions.db                relative as well
 * The path is taken literally (no percent-decoding). Query options:
 *   table=NAME  table name (sessions)
 *   prune=S     prune interval in seconds (600); 0 or -1 disables it
 *   busy=MS     busy timeout in milliseconds (5000)
 *   pool=N      connections at most (8) for reads and administration;
 *               saves use one more, the group commit's writer
 *   synchronous=full|normal
 *               full (the default): a save is durable before it returns;
 *               normal: faster, not fsynced (see "Durability" above)
 * Unknown or repeated options and out-of-range values are CSN_EINVAL, with
 * a message naming the option (errbuf, csn_last_error()). Register this
 * opener for the "sqlite" scheme of csn_store_open() with
 * csn_store_register(), or all stores at once with
 * csn_stores_register_all() (csn/csn_stores.h). */
CSN_API int csn_store_sqlite_open(const char *url, csn_store **out,
                                  char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_SQLITE_H */
