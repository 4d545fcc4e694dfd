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
 *   get      only rows with now <= expired.
 *   touch    only while the row is still valid: expired = expires_ms (now +
 *            1 day for a browser-session cookie, where connect-sqlite3 does
 *            nothing). Unlike connect-sqlite3 it also replaces
 *            the "cookie" member inside `sess` (the data is left alone), so a
 *            reader sees the refreshed cookie; a missing or expired row is
 *            not an error and is not revived.
 *   destroy  delete by sid.
 *   length, all  live rows only (connect-sqlite3 counts expired rows too).
 *   clear    delete every row.
 *   prune    delete rows with now > expired, in bounded batches, also on a
 *            background thread every `prune` interval.
 *
 * The database runs in WAL mode with a busy timeout; each worker thread
 * borrows a connection from a small pool (prepared statements stay with the
 * connection), so concurrent requests neither share a handle nor surface
 * "database is locked" under normal load.
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
} csn_sqlite_options;

/* Open (creating the file and table if needed). CSN_EIO with a message in
 * errbuf when the database cannot be opened or the schema created;
 * CSN_EINVAL for a bad option. Release with csn_store_free(). */
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
 *   pool=N      connections at most (8)
 * Unknown options are CSN_EINVAL. Loading the library registers this opener
 * for the "sqlite" scheme of csn_store_open(). */
CSN_API int csn_store_sqlite_open(const char *url, csn_store **out,
                                  char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_SQLITE_H */
