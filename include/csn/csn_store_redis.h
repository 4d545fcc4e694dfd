/* csn_store_redis.h - Redis store, key- and value-compatible with
 * connect-redis 4.x..10.x (stores.md section 5), so C and Node app servers
 * behind one load balancer share one Redis and one user session.
 *
 * Link csn::store_redis (library csn_store_redis, on hiredis). Built with
 * -DCSN_WITH_REDIS=ON.
 *
 * Format (exactly connect-redis 9.0's):
 *   key      prefix + id (prefix "sess:" by default; "" is honoured)
 *   value    the record's JSON text, a plain Redis string, no envelope
 *   set      SET key value EX ttl, ttl = ceil((expires_ms - now) / 1000)
 *            seconds, or the `ttl` option (86400) for a browser-session
 *            cookie; a ttl <= 0 deletes the key (DEL). With disable_ttl:
 *            SET key value, no expiry.
 *   touch    EXPIRE key ttl only - the stored text is never rewritten (a
 *            concurrent request's newer data stays); skipped entirely with
 *            disable_touch or disable_ttl. A missing key is not created.
 *   get      GET key; nil is CSN_ENOENT. The literal value "TOMBSTONE"
 *            (left by connect-redis 6.1.0 and 6.1.2) reads as not found.
 *   destroy  DEL key
 *   length, all, clear
 *            SCAN cursor MATCH <prefix>* COUNT scan_count until the cursor
 *            is back to 0 (never KEYS, which blocks the server), keys
 *            de-duplicated (SCAN may return one twice); `all` reads the
 *            values in batches (GET each, never one MGET of everything);
 *            `clear` deletes in batches. Glob characters in the prefix are
 *            escaped for MATCH.
 *   prune    nothing to do: Redis expires keys itself (no sweeper thread).
 *   cas      one round trip: a Lua script (EVALSHA, loaded again on
 *            NOSCRIPT) that compares the stored value with the expected
 *            text and only then writes as set() does. Atomic against every
 *            client of the Redis server, so the merge of concurrent
 *            requests (csn.h, last_write_wins) works across processes and
 *            machines, Node writers included.
 *
 * Connections: a pool of hiredis contexts (a context is not thread safe);
 * a worker borrows one per operation, so `pool` should be at least the
 * number of the server's worker threads; a worker finding every context
 * busy waits at most `timeout` for one. Each context has a connect timeout
 * and a command timeout; a Redis that stops answering costs a request
 * about the timeout (CSN_ETIMEDOUT; a new connection's connect and AUTH
 * count separately, a wait for a free context too), never a stuck worker.
 * Idle contexts are checked before reuse and an idempotent command that
 * finds its connection closed is sent once more on a new one, so the first
 * request after a Redis restart succeeds. A context that
 * failed (I/O error, timeout, protocol error) is dropped; the next use
 * connects afresh and re-applies AUTH, SELECT and the timeouts (hiredis
 * 0.14's redisReconnect() re-applies none of them), so a Redis restart
 * needs no application restart. Errors name Redis and the command that
 * failed, never the password or a session id.
 *
 * A timeout on a write (set, cas, destroy) means "outcome unknown", not
 * "not written": the command may already sit in a stalled server's input
 * and run when it resumes, as with any Redis client. The request still
 * fails (500), so the user is never told a change was saved when that is
 * not known; a later request sees whichever record Redis holds.
 *
 * TLS: hiredis 0.14 (Debian 12) has none; a rediss:// URL is refused with
 * CSN_ENOTSUP ("not supported by this build"), never silently downgraded
 * to a plain connection.
 *
 * Thread-safety: every function may be called from several threads at once.
 * Since 0.2.
 */
#ifndef CSN_STORE_REDIS_H
#define CSN_STORE_REDIS_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csn_redis_options {
  const char *host;       /* NULL: "127.0.0.1" (ignored with unix_path) */
  int port;               /* 0: 6379 */
  const char *unix_path;  /* a Unix socket instead of TCP; NULL: TCP */
  const char *username;   /* ACL user (AUTH user pass, Redis 6+); NULL */
  const char *password;   /* NULL: no AUTH. Never logged or echoed */
  int db;                 /* SELECT db when not 0; 0..INT_MAX */
  const char *prefix;     /* NULL: "sess:"; "" is honoured */
  int64_t ttl_s;          /* TTL of a browser-session cookie; 0: 86400 */
  int disable_touch;      /* 1: touch does nothing (connect-redis) */
  int disable_ttl;        /* 1: SET without EX, touch does nothing */
  unsigned scan_count;    /* SCAN COUNT hint; 0: 100 */
  int64_t connect_timeout_ms; /* 0: 2000 */
  int64_t timeout_ms;     /* each command (and a wait for a context); 0: 2000 */
  unsigned pool_size;     /* contexts at most; 0: 16 */
} csn_redis_options;

/* Create the store and check that Redis answers (one connection, AUTH and
 * SELECT are tried now, so a wrong password or an unreachable server is
 * reported here, not on the first request). CSN_EINVAL for a bad option,
 * CSN_EIO (cannot connect) / CSN_ETIMEDOUT / CSN_ESTORE (Redis answered
 * with an error: AUTH or SELECT refused) when Redis cannot be used; the message is in errbuf (when not NULL) and in csn_last_error().
 * Release with csn_store_free(). */
CSN_API int csn_store_redis_new(const csn_redis_options *opts,
                                csn_store **out, char *errbuf, size_t errlen);

/* Open from a URL:
 *   redis://[[user]:password@]host[:port][/db][?options]
 *   unix:///path/redis.sock[?options]        (also redis+unix://)
 *   rediss://...                             CSN_ENOTSUP (no TLS in this
 *                                            build)
 * host may be a name, an IPv4 address or an [IPv6] literal; user and
 * password are percent-decoded. Query options (unknown or repeated options
 * and out-of-range values are CSN_EINVAL, with a message naming the
 * option, never its value):
 *   prefix=STR            key prefix (sess:)
 *   ttl=S                 TTL of a browser-session cookie (86400)
 *   disable_touch=BOOL    (false)
 *   disable_ttl=BOOL      (false)
 *   scan_count=N          (100)
 *   connect_timeout=MS    (2000)
 *   timeout=MS            (2000)
 *   pool=N                (16)
 *   db=N                  (unix:// URLs, which have no path for it)
 *   password=STR          (unix:// URLs; percent-encoded)
 * Register with csn_store_register() for the schemes "redis", "rediss",
 * "unix" and "redis+unix", or all stores at once with
 * csn_stores_register_all() (csn/csn_stores.h). Messages about the URL
 * never contain its password. */
CSN_API int csn_store_redis_open(const char *url, csn_store **out,
                                 char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_REDIS_H */
