/* csn_store_pg.h - PostgreSQL store, table-compatible with
 * connect-pg-simple 10 (stores.md section 6), so C and Node app servers
 * share one database table and one user session.
 *
 * Link csn::store_pg (library csn_store_pg, on libpq). Built when libpq is
 * found (-DCSN_WITH_PG=AUTO, the default; ON requires it).
 *
 * Table (connect-pg-simple's DDL; created only with create_table):
 *   CREATE TABLE "session" (
 *     "sid" varchar NOT NULL COLLATE "default" PRIMARY KEY,
 *     "sess" json NOT NULL,
 *     "expire" timestamp(6) NOT NULL)
 *   CREATE INDEX "IDX_session_expire" ON "session" ("expire")
 * (IF NOT EXISTS both, so processes starting together do not fail). For
 * another table name T the index is "IDX_T_expire" and the primary key
 * "T_pkey": index names are per schema, so two tables cannot share them.
 * Schema and table names are quoted as identifiers (embedded '"' doubled),
 * never pasted into SQL unquoted; ids and records only ever travel as
 * parameters of prepared statements.
 *
 * SQL (every instant from this process's clock, as epoch seconds through
 * to_timestamp(), as connect-pg-simple does, so a C writer and a Node
 * writer agree whatever the server's or the session's TimeZone):
 *   get      SELECT sess WHERE sid = $1 AND expire >= to_timestamp(ceil(now))
 *            - the text exactly as stored (a json column keeps it).
 *   set      INSERT ... ON CONFLICT (sid) DO UPDATE SET sess, expire;
 *            expire = ceil(expires_ms / 1000), or now + ttl for a
 *            browser-session cookie.
 *   touch    UPDATE ... SET expire WHERE sid = $1 AND the row is live
 *            (only the expiry: the stored data is never rewritten; unlike
 *            connect-pg-simple an expired row is not revived); nothing
 *            with disable_touch.
 *   destroy  DELETE WHERE sid = $1.
 *   cas      one statement: sess and expire are written only if the live
 *            row's sess::text is byte for byte the expected text;
 *            CSN_ECONFLICT for a live row with another text, CSN_ENOENT for
 *            none. Atomic against every writer of the table (row lock), so
 *            the merge of concurrent requests works across processes,
 *            machines and Node writers.
 *   prune    DELETE WHERE expire < to_timestamp(now), also on a background
 *            thread every `prune` interval, each wait drawn from 50%..150%
 *            of it, as connect-pg-simple, so that processes sharing the
 *            table do not prune together; never on a request's path.
 *   length, all, clear   live rows (connect-pg-simple has none of them).
 *
 * Time zones: `expire` has no time zone, so every writer must convert in
 * the same TimeZone: connect-pg-simple's sessions use the server's default.
 * The store never formats a timestamp and never SETs TimeZone. A TimeZone
 * in the URL's `options` parameter ("-c TimeZone=..." or "--TimeZone=...")
 * is honoured: it is how to match Node writers whose pg Pool passes the
 * same `options`; give it to every writer or to none. A TimeZone the
 * environment imposes (PGTZ, PGOPTIONS: libpq reads them, node-postgres
 * does not) makes the open fail with CSN_EINVAL. Writers logging in as
 * roles with different ALTER ROLE ... SET TimeZone would still disagree.
 *
 * Connections: a pool of libpq connections (a PGconn is not thread safe);
 * a worker borrows one per operation, so `pool` should be at least the
 * number of the server's worker threads. Each connection gets the connect
 * timeout and statement_timeout; statements run asynchronously with a
 * client-side deadline too, so a server that stops answering costs a
 * request about `timeout` (CSN_ETIMEDOUT), never a stuck worker; when the
 * request also has to make a new connection (the last one broke), add up
 * to the connect timeout (URL: libpq's connect_timeout, in seconds; keep
 * it small where a frozen server must fail fast), and a wait for a free
 * connection counts up to `timeout` more. A broken
 * connection is dropped and replaced on next use: a PostgreSQL restart
 * needs no application restart. Errors name PostgreSQL and the operation,
 * never the password or a session id.
 *
 * Thread-safety: every function may be called from several threads at once.
 * Since 0.2.
 */
#ifndef CSN_STORE_PG_H
#define CSN_STORE_PG_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csn_pg_options {
  /* libpq connection string or URI ("host=... dbname=..." or
   * "postgresql://user@host:5432/db?sslmode=require"); NULL or "": libpq's
   * defaults (PGHOST, PGDATABASE ... from the environment). */
  const char *conninfo;
  const char *table;   /* NULL: "session" */
  const char *schema;  /* NULL: none (the connection's search_path) */
  int create_table;    /* 1: create table and index when missing */
  int64_t prune_interval_ms; /* 0: 900000 (15 min); negative: no thread */
  int64_t ttl_s;       /* lifetime of a browser-session cookie; 0: 86400 */
  int disable_touch;   /* 1: touch does nothing (connect-pg-simple) */
  int64_t connect_timeout_ms; /* 0: 5000 */
  int64_t timeout_ms;  /* each statement (and a wait for a connection);
                          0: 5000 */
  unsigned pool_size;  /* connections at most; 0: 16 */
} csn_pg_options;

/* Create the store and check the database (one connection now, and the
 * table: created when asked, else it must exist), so a wrong password, an
 * unreachable server or a missing table is reported here, not on the first
 * request. CSN_EINVAL for a bad option, CSN_EIO / CSN_ETIMEDOUT when
 * PostgreSQL cannot be reached, CSN_ESTORE when it refuses (authentication,
 * missing table); the message is in errbuf (when not NULL) and in
 * csn_last_error(), and never contains the password. Release with
 * csn_store_free(). */
CSN_API int csn_store_pg_new(const csn_pg_options *opts, csn_store **out,
                             char *errbuf, size_t errlen);

/* Open from a URL: postgres://... or postgresql://... in libpq's URI
 * syntax. Query parameters that are store options are taken out; every
 * other one goes to libpq as it is (sslmode, application_name, options ...).
 * Store options (unknown store options cannot exist: an unknown name is
 * libpq's, and libpq refuses what it does not know):
 *   table=NAME            ("session")
 *   schema=NAME           (none)
 *   create_table=BOOL     (false)
 *   prune=S               prune interval in seconds (900); 0 disables it
 *   ttl=S                 browser-session cookie lifetime (86400)
 *   disable_touch=BOOL    (false)
 *   timeout=MS            statement and pool-wait timeout (5000)
 *   pool=N                (16)
 * libpq's own connect_timeout (seconds) is honoured; without it the store
 * uses 5 s. Register with csn_store_register() for "postgres" and
 * "postgresql", or all stores at once with csn_stores_register_all(). */
CSN_API int csn_store_pg_open(const char *url, csn_store **out, char *errbuf,
                              size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_PG_H */
