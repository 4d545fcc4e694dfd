/* redis.c - Redis store sharing connect-redis's keys and values.
 *
 * OVERVIEW
 *
 * The contract (the commands each method sends, the TTL rule, the URL) is
 * in include/csn/csn_store_redis.h; this file explains how. Like
 * sqlite.c it uses only the public headers (csn.h and the store kit,
 * csn_store.h) and is built into its own library on hiredis 0.14, the
 * version Debian 12 ships: blocking contexts, no TLS.
 *
 *   - The pool. A redisContext is one socket and one reply parser: one
 *     thread at a time. The store keeps at most pool_size of them; a worker
 *     borrows one for an operation and gives it back. The idle ones sit in
 *     a stack (the most recently used is reused first: it is the one most
 *     likely to be alive), connections are opened lazily up to the limit,
 *     and a worker finding all of them busy waits on a condition variable
 *     (on CLOCK_MONOTONIC) for at most the command timeout, then fails with
 *     CSN_ETIMEDOUT rather than queue forever. It is the kit's pool
 *     (csn_pool_*, csn_store.h), shared with the PostgreSQL store; this
 *     file supplies the connect, the idle check and the give-back test.
 *
 *   - Timeouts. Every context gets the connect timeout when it connects and
 *     the command timeout afterwards (redisSetTimeout: SO_RCVTIMEO and
 *     SO_SNDTIMEO). A Redis that stops answering costs a request about
 *     `timeout`, and its context is dropped: a reply that arrives late
 *     would otherwise be read as the answer to the next command.
 *
 *   - Reconnecting. A context that saw an error of its own (I/O, EOF,
 *     timeout, a protocol error: hiredis sets c->err and the context is
 *     then unusable) is freed instead of being given back, so the next
 *     borrower connects afresh, with AUTH, SELECT and the timeouts applied
 *     again. An error *reply* (WRONGTYPE, OOM, READONLY) is only
 *     CSN_ESTORE: the connection is fine. When Redis restarts, every idle
 *     context is dead without knowing it; two things keep that from
 *     reaching a request. Before a reused context is handed out for a
 *     cas, or for anything after it sat idle for RD_IDLE_CHECK_MS, it is
 *     polled: an idle RESP connection never has anything to read, so a
 *     readable one has seen EOF (or is out of step) and is replaced. And
 *     when a command still fails on a reused context before any reply
 *     arrived (the peer went away between the poll and the write), an
 *     idempotent operation (GET, SET, EXPIRE, DEL, SCAN) is run once more
 *     on a new connection. cas is never replayed: the script may have run,
 *     and the core treats its CSN_EIO as a failed save.
 *
 *   - Compare-and-set is a Lua script (CAS_SCRIPT below), atomic against
 *     every client of the server, Node's included. Its SHA1 comes from
 *     SCRIPT LOAD when the store opens; cas sends EVALSHA, and after a
 *     NOSCRIPT answer (the server restarted or its script cache was
 *     flushed) EVAL with the body, which caches it again. The TTL is worked
 *     out here and passed in, so the script writes exactly what set() would.
 *
 *   - SIGPIPE. hiredis writes with write(), and a write to a socket whose
 *     peer is gone raises SIGPIPE, which kills a process that did not ask
 *     to ignore it. The store lets hiredis queue a command but sends the
 *     queue itself with send(MSG_NOSIGNAL) (rd_flush): the write fails with
 *     EPIPE instead, and no signal mask or disposition is touched.
 *
 *   - Enumeration (length, all, clear) SCANs with MATCH on the escaped
 *     prefix, collects the keys, sorts them and drops duplicates (SCAN may
 *     return a key twice). all() then reads values in pipelined batches of
 *     GETs, giving the connection back between batches so the callback
 *     never holds one; clear() deletes in batches of DELs.
 *
 * What it leaves out: TLS (refused with CSN_ENOTSUP, never downgraded),
 * Redis Cluster and Sentinel, and RESP3. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "csn/csn_store.h"
#include "csn/csn_store_redis.h"

#define RD_DEFAULT_PREFIX "sess:"
#define RD_DEFAULT_HOST "127.0.0.1"
#define RD_DEFAULT_PORT 6379
#define RD_DEFAULT_TTL_S 86400
#define RD_DEFAULT_SCAN 100
#define RD_DEFAULT_CONNECT_MS 2000
#define RD_DEFAULT_TIMEOUT_MS 2000
#define RD_DEFAULT_POOL 16
#define RD_POOL_MAX 1024
#define RD_SCAN_MAX 1000000
/* A day of milliseconds is already long for one command; a bound keeps
 * the timeval and deadline arithmetic far from overflow. */
#define RD_TIMEOUT_MAX INT64_C(86400000)
/* 100 years: Redis refuses an EX whose instant overflows its clock. */
#define RD_TTL_MAX INT64_C(3155760000)
/* Keys per pipelined GET batch (all) and per DEL (clear). */
#define RD_BATCH 100
#define RD_TOMBSTONE "TOMBSTONE"
/* An idle context older than this is polled before an idempotent
 * operation uses it (csn_pool_new's check_after_ms); cas polls any idle
 * context. */
#define RD_IDLE_CHECK_MS 100

/* The compare-and-set. KEYS[1] the key; ARGV[1] the expected text, ARGV[2]
 * the new one, ARGV[3] the TTL in seconds: > 0 SET EX, 0 DEL (the cookie
 * has expired), -1 SET without expiry (disable_ttl). connect-redis 6.1's
 * TOMBSTONE is no record. Returns 1 written, 0 no record, -1 conflict. */
static const char CAS_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v or v == 'TOMBSTONE' then return 0 end\n"
    "if v ~= ARGV[1] then return -1 end\n"
    "local ttl = tonumber(ARGV[3])\n"
    "if ttl > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
    "elseif ttl < 0 then redis.call('SET', KEYS[1], ARGV[2])\n"
    "else redis.call('DEL', KEYS[1]) end\n"
    "return 1\n";

typedef struct rd_store {
  csn_store base; /* first: the method table */
  /* Where and how to connect; read-only after creation. */
  char *host;      /* TCP host (brackets removed from an IPv6 literal) */
  int port;
  char *unix_path; /* NULL: TCP */
  char *username;  /* NULL: AUTH with the password alone */
  char *password;  /* NULL: no AUTH */
  int db;
  char where[300]; /* "host:port" or the socket path, for messages */
  struct timeval connect_tv, command_tv;
  int64_t timeout_ms;
  /* The format. */
  char *prefix;
  size_t prefix_len;
  char *match; /* the prefix with glob characters escaped, then '*' */
  int64_t ttl_s;
  int disable_touch, disable_ttl;
  char scan_count[24];
  char sha[41]; /* CAS_SCRIPT's SHA1, "" when SCRIPT LOAD was refused */
  unsigned pool_max;
  csn_pool *pool; /* of redisContext (the kit's) */
} rd_store;

/* One borrowed context and what happened on it. */
typedef struct rd_conn {
  redisContext *c;
  int reused;  /* came from the idle stack (the server may have restarted) */
  int replies; /* replies read so far */
  int stale;   /* the connection was gone before the first reply */
  int broken;  /* left out of step (replies unread): do not give back */
} rd_conn;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static struct timeval ms_tv(int64_t ms) {
  struct timeval tv;
  tv.tv_sec = (time_t)(ms / 1000);
  tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
  return tv;
}

/* connect-redis's TTL in seconds: ceil((expires - now) / 1000), or the ttl
 * option for a browser-session cookie. <= 0 means "already expired". */
static int64_t rd_ttl(const rd_store *s, int64_t expires_ms) {
  if (expires_ms == CSN_TIME_NONE) return s->ttl_s;
  /* TTLs are relative to the wall clock (cookie.expires is epoch ms). */
  int64_t now = csn_now_ms();
  if (expires_ms <= now) return 0;
  int64_t d = expires_ms - now;
  int64_t t = d / 1000 + (d % 1000 != 0);
  return t > RD_TTL_MAX ? RD_TTL_MAX : t;
}

/* prefix + id, NUL-terminated (csn_free). */
static char *rd_key(const rd_store *s, const char *sid, size_t *len) {
  size_t n = strlen(sid);
  char *k = csn_malloc(s->prefix_len + n + 1);
  if (k == NULL) return NULL;
  memcpy(k, s->prefix, s->prefix_len);
  memcpy(k + s->prefix_len, sid, n + 1);
  *len = s->prefix_len + n;
  return k;
}

/* ------------------------------------------------------------------------ */
/* Writing without SIGPIPE                                                  */
/* ------------------------------------------------------------------------ */

/* hiredis queues a command in c->obuf and writes it with write(), which
 * raises SIGPIPE on a socket whose peer is gone. The store sends the queue
 * itself with send(MSG_NOSIGNAL) instead: the write fails with EPIPE, the
 * process lives, and no signal mask is touched (two fewer syscalls per
 * command than blocking and restoring SIGPIPE, on machines where a syscall
 * is the dearest thing a request does). redisGetReply() then finds nothing
 * left to write and only reads. c->obuf is a public member of hiredis
 * 0.14's redisContext; sdsclear() is its documented way to empty it. */
static int rd_flush(redisContext *c) {
  size_t len = sdslen(c->obuf), off = 0;
  while (off < len) {
    ssize_t n = send(c->fd, c->obuf + off, len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EPIPE;
      c->err = REDIS_ERR_IO;
      snprintf(c->errstr, sizeof c->errstr, "%s", strerror(e));
      errno = e;
      return REDIS_ERR;
    }
    off += (size_t)n;
  }
  sdsclear(c->obuf);
  return REDIS_OK;
}

/* redisCommandArgv() without its write(): queue, send, read one reply. */
static redisReply *rd_command_argv(redisContext *c, int argc,
                                   const char **argv, const size_t *lens) {
  void *r = NULL;
  if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) return NULL;
  if (rd_flush(c) != REDIS_OK) return NULL;
  if (redisGetReply(c, &r) != REDIS_OK) return NULL;
  return r;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static int has_text(const char *errstr, int code) {
  return strstr(errstr, strerror(code)) != NULL;
}

/* A command got no reply: the context is dead (hiredis set c->err). Map it
 * to a code and a message naming the server and the command - never the
 * key, which holds a session id. `e` is errno right after the call. */
static int rd_io_error(rd_store *s, rd_conn *cn, const char *what, int e) {
  redisContext *c = cn->c;
  char text[sizeof c->errstr];
  int rc = CSN_EIO;
  snprintf(text, sizeof text, "%s", c->err ? c->errstr : "no reply");
  /* "Connection refused" -> "connection refused", as the rest reads. */
  if (text[0] >= 'A' && text[0] <= 'Z' && text[1] >= 'a' && text[1] <= 'z')
    text[0] = (char)(text[0] - 'A' + 'a');
  if (c->err == REDIS_ERR_OOM) {
    rc = CSN_ENOMEM;
  } else if (c->err == REDIS_ERR_IO &&
             (e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT ||
              e == EINPROGRESS || has_text(c->errstr, EAGAIN) ||
              has_text(c->errstr, ETIMEDOUT))) {
    return csn_store_set_error(&s->base, CSN_ETIMEDOUT,
                               "redis %s: %s: no answer within the timeout",
                               s->where, what);
  } else if (c->err == REDIS_ERR_EOF ||
             (c->err == REDIS_ERR_IO &&
              (e == ECONNRESET || e == EPIPE || has_text(c->errstr, EPIPE) ||
               has_text(c->errstr, ECONNRESET)))) {
    if (cn->reused && cn->replies == 0) cn->stale = 1;
  }
  return csn_store_set_error(&s->base, rc, "redis %s: %s: %s", s->where, what,
                             text);
}

/* Take a reply: NULL is a dead context, an error reply is CSN_ESTORE (the
 * connection stays usable), anything else goes to *out. */
static int rd_reply(rd_store *s, rd_conn *cn, const char *what,
                    redisReply *r, int e, redisReply **out) {
  *out = NULL;
  if (r == NULL) return rd_io_error(s, cn, what, e);
  cn->replies++;
  if (r->type == REDIS_REPLY_ERROR) {
    int rc = csn_store_set_error(&s->base, CSN_ESTORE, "redis %s: %s: %.200s",
                                 s->where, what, r->str);
    freeReplyObject(r);
    return rc;
  }
  *out = r;
  return CSN_OK;
}

/* One command, binary-safe. */
static int rd_call(rd_store *s, rd_conn *cn, const char *what, int argc,
                   const char **argv, const size_t *lens, redisReply **out) {
  errno = 0;
  redisReply *r = rd_command_argv(cn->c, argc, argv, lens);
  return rd_reply(s, cn, what, r, errno, out);
}

static int rd_unexpected(rd_store *s, const char *what, redisReply *r) {
  freeReplyObject(r);
  return csn_store_set_error(&s->base, CSN_ESTORE,
                             "redis %s: %s: unexpected reply", s->where, what);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

/* A simple reply that must be +OK (AUTH, SELECT). */
static int rd_expect_ok(rd_store *s, rd_conn *cn, const char *what, int argc,
                        const char **argv, const size_t *lens) {
  redisReply *r;
  int rc = rd_call(s, cn, what, argc, argv, lens, &r);
  if (rc != CSN_OK) return rc;
  if (r->type != REDIS_REPLY_STATUS) return rd_unexpected(s, what, r);
  freeReplyObject(r);
  return CSN_OK;
}

/* A new connection with the timeouts, AUTH and SELECT applied (the pool's
 * connect: ud is the store, *out a redisContext). */
static int rd_connect(void *ud, void **out) {
  rd_store *s = ud;
  rd_conn cn;
  memset(&cn, 0, sizeof cn);
  errno = 0;
  cn.c = s->unix_path
             ? redisConnectUnixWithTimeout(s->unix_path, s->connect_tv)
             : redisConnectWithTimeout(s->host, s->port, s->connect_tv);
  int e = errno, rc = CSN_OK;
  if (cn.c == NULL)
    return csn_store_set_error(&s->base, CSN_ENOMEM,
                               "redis %s: connect: out of memory", s->where);
  if (cn.c->err) rc = rd_io_error(s, &cn, "connect", e);
  if (rc == CSN_OK && redisSetTimeout(cn.c, s->command_tv) != REDIS_OK)
    rc = csn_store_set_error(&s->base, CSN_EIO,
                             "redis %s: connect: cannot set the timeout",
                             s->where);
  if (rc == CSN_OK && s->password != NULL) {
    const char *argv[3] = {"AUTH", s->username, s->password};
    size_t lens[3] = {4, s->username ? strlen(s->username) : 0,
                      strlen(s->password)};
    if (s->username == NULL) {
      argv[1] = s->password;
      lens[1] = lens[2];
    }
    rc = rd_expect_ok(s, &cn, "AUTH", s->username ? 3 : 2, argv, lens);
  }
  if (rc == CSN_OK && s->db != 0) {
    char db[16];
    int n = snprintf(db, sizeof db, "%d", s->db);
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, (size_t)n};
    rc = rd_expect_ok(s, &cn, "SELECT", 2, argv, lens);
  }
  if (rc != CSN_OK) {
    redisFree(cn.c);
    return rc;
  }
  *out = cn.c;
  return CSN_OK;
}

/* Is an idle context still good? It never has anything to read between
 * commands, so readable means EOF (the server went away) or stray bytes;
 * either way it must not carry a command. */
static int rd_idle_ok(void *ud, void *handle) {
  redisContext *c = handle;
  struct pollfd p;
  (void)ud;
  p.fd = c->fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, 0) == 0;
}

/* The pool's other callbacks (csn_pool_*, see the OVERVIEW). */

/* A context that saw an error of its own is dropped at give-back. */
static int pool_usable(void *ud, void *handle) {
  (void)ud;
  return ((redisContext *)handle)->err == 0;
}

/* Closing a socket sends at most a FIN: a hung server cannot block it. */
static void pool_close(void *ud, void *handle) {
  (void)ud;
  redisFree(handle);
}

static const csn_pool_methods rd_pool_methods = {
    .connect = rd_connect,
    .idle_ok = rd_idle_ok,
    .usable = pool_usable,
    .close = pool_close,
};

/* Run op on a borrowed context. An idempotent op that failed on a stale
 * context (see the OVERVIEW) runs once more on a new connection; its first
 * error message is then replaced or moot. */
typedef int (*rd_op)(rd_store *s, rd_conn *cn, void *arg);

typedef struct rd_job {
  rd_op op;
  void *arg;
} rd_job;

static int rd_job_run(void *ud, csn_pool_conn *pc, void *arg) {
  rd_job *j = arg;
  rd_conn cn = {pc->handle, pc->reused, 0, 0, 0};
  int rc = j->op(ud, &cn, j->arg);
  pc->stale = cn.stale;
  pc->broken = cn.broken;
  return rc;
}

static int rd_run(rd_store *s, rd_op op, void *arg, int idempotent) {
  rd_job j = {op, arg};
  return csn_pool_run(s->pool, rd_job_run, &j, idempotent);
}

/* The common case: one command, its reply handed back to the caller. */
typedef struct rd_cmd {
  const char *what;
  int argc;
  const char **argv;
  const size_t *lens;
  redisReply *reply;
} rd_cmd;

static int op_cmd(rd_store *s, rd_conn *cn, void *arg) {
  rd_cmd *a = arg;
  return rd_call(s, cn, a->what, a->argc, a->argv, a->lens, &a->reply);
}

static int rd_command(rd_store *s, rd_cmd *a, int idempotent) {
  a->reply = NULL;
  return rd_run(s, op_cmd, a, idempotent);
}

/* ------------------------------------------------------------------------ */
/* Store methods                                                            */
/* ------------------------------------------------------------------------ */

/* The core has checked each id (csn_store_id_valid); it reaches Redis
 * only as an argument, never inside a command text. */

/* One command on one session's key: "VERB key", "VERB key ttl" (ttl > 0,
 * no value), "SET key value" or "SET key value EX ttl". Idempotent, all of
 * them. The reply goes to *reply when wanted, else it is freed. */
static int rd_keyed(rd_store *s, const char *verb, const char *sid,
                    const char *value, size_t vlen, int64_t ttl,
                    redisReply **reply) {
  const char *argv[5];
  size_t lens[5], klen;
  char ex[24];
  int argc = 0;
  char *key = rd_key(s, sid, &klen);
  if (key == NULL) return csn_store_set_error(&s->base, CSN_ENOMEM, NULL);
  argv[argc] = verb;
  lens[argc++] = strlen(verb);
  argv[argc] = key;
  lens[argc++] = klen;
  if (value != NULL) {
    argv[argc] = value;
    lens[argc++] = vlen;
    if (ttl > 0) {
      argv[argc] = "EX";
      lens[argc++] = 2;
    }
  }
  if (ttl > 0) {
    argv[argc] = ex;
    lens[argc++] = (size_t)snprintf(ex, sizeof ex, "%lld", (long long)ttl);
  }
  rd_cmd cmd = {verb, argc, argv, lens, NULL};
  int rc = rd_command(s, &cmd, 1);
  csn_free(key);
  if (reply != NULL)
    *reply = cmd.reply;
  else
    freeReplyObject(cmd.reply);
  return rc;
}

static int rd_get(csn_store *st, const char *sid, char **json, size_t *len) {
  rd_store *s = (rd_store *)st;
  redisReply *r = NULL; /* set by rd_keyed on success; gcc -O2 cannot see it */
  int rc = rd_keyed(s, "GET", sid, NULL, 0, 0, &r);
  if (rc != CSN_OK) return rc;
  if (r->type == REDIS_REPLY_NIL ||
      (r->type == REDIS_REPLY_STRING && r->len == sizeof RD_TOMBSTONE - 1 &&
       memcmp(r->str, RD_TOMBSTONE, r->len) == 0)) {
    freeReplyObject(r);
    return CSN_ENOENT;
  }
  if (r->type != REDIS_REPLY_STRING) return rd_unexpected(s, "GET", r);
  char *copy = csn_malloc(r->len + 1);
  if (copy == NULL) {
    freeReplyObject(r);
    return csn_store_set_error(st, CSN_ENOMEM, NULL);
  }
  memcpy(copy, r->str, r->len);
  copy[r->len] = '\0';
  *json = copy;
  *len = r->len;
  freeReplyObject(r);
  return CSN_OK;
}

/* set: SET EX, SET alone with disable_ttl; an expired cookie is a DEL. */
static int rd_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  rd_store *s = (rd_store *)st;
  int64_t ttl = rd_ttl(s, expires_ms);
  if (ttl <= 0) return rd_keyed(s, "DEL", sid, NULL, 0, 0, NULL);
  return rd_keyed(s, "SET", sid, json, len, s->disable_ttl ? 0 : ttl, NULL);
}

static int rd_destroy(csn_store *st, const char *sid) {
  return rd_keyed((rd_store *)st, "DEL", sid, NULL, 0, 0, NULL);
}

/* touch is connect-redis's: EXPIRE only. The stored text is left as it is
 * (so its "cookie" keeps the old expires); a concurrent request's newer
 * data is never overwritten, and a missing key is not created. */
static int rd_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  rd_store *s = (rd_store *)st;
  (void)json, (void)len;
  if (s->disable_touch || s->disable_ttl) return CSN_OK;
  int64_t ttl = rd_ttl(s, expires_ms);
  return rd_keyed(s, ttl > 0 ? "EXPIRE" : "DEL", sid, NULL, 0, ttl, NULL);
}

/* cas: EVALSHA, or EVAL when the server does not know the script (after a
 * restart or SCRIPT FLUSH; EVAL also caches it for the next EVALSHA). */
typedef struct rd_cas_arg {
  const char *argv[7];
  size_t lens[7];
  long long result;
} rd_cas_arg;

static int op_cas(rd_store *s, rd_conn *cn, void *arg) {
  rd_cas_arg *a = arg;
  redisReply *r = NULL;
  int rc = CSN_ENOENT; /* "no SHA yet": straight to EVAL */
  if (s->sha[0] != '\0') {
    a->argv[0] = "EVALSHA";
    a->lens[0] = 7;
    a->argv[1] = s->sha;
    a->lens[1] = 40;
    errno = 0;
    r = rd_command_argv(cn->c, 7, a->argv, a->lens);
    int e = errno;
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0) {
      cn->replies++;
      freeReplyObject(r);
      r = NULL;
    } else {
      rc = rd_reply(s, cn, "EVALSHA", r, e, &r);
      if (rc != CSN_OK) return rc;
    }
  }
  if (r == NULL) {
    a->argv[0] = "EVAL";
    a->lens[0] = 4;
    a->argv[1] = CAS_SCRIPT;
    a->lens[1] = sizeof CAS_SCRIPT - 1;
    rc = rd_call(s, cn, "EVAL", 7, a->argv, a->lens, &r);
    if (rc != CSN_OK) return rc;
  }
  if (r->type != REDIS_REPLY_INTEGER) return rd_unexpected(s, "EVALSHA", r);
  a->result = r->integer;
  freeReplyObject(r);
  return CSN_OK;
}

static int rd_cas(csn_store *st, const char *sid, const char *expected,
                  size_t expected_len, const char *json, size_t len,
                  int64_t expires_ms) {
  rd_store *s = (rd_store *)st;
  int64_t ttl = rd_ttl(s, expires_ms);
  char ttlbuf[24];
  size_t klen;
  /* The script's third argument: as set() does, DEL for an expired cookie
   * (with disable_ttl too), SET without EX for disable_ttl. */
  int64_t mode = ttl <= 0 ? 0 : s->disable_ttl ? -1 : ttl;
  int n = snprintf(ttlbuf, sizeof ttlbuf, "%lld", (long long)mode);
  char *key = rd_key(s, sid, &klen);
  if (key == NULL) return csn_store_set_error(st, CSN_ENOMEM, NULL);
  rd_cas_arg a = {
      .argv = {NULL, NULL, "1", key, expected, json, ttlbuf},
      .lens = {0, 0, 1, klen, expected_len, len, (size_t)n},
      .result = 0,
  };
  /* Not idempotent: a replay could overwrite what another writer wrote
   * after our script ran. */
  int rc = rd_run(s, op_cas, &a, 0);
  csn_free(key);
  if (rc != CSN_OK) return rc;
  if (a.result == 1) return CSN_OK;
  if (a.result == 0) return CSN_ENOENT;
  if (a.result == -1) return CSN_ECONFLICT;
  return csn_store_set_error(st, CSN_ESTORE,
                             "redis %s: EVALSHA: unexpected result", s->where);
}

/* ------------------------------------------------------------------------ */
/* Enumeration: SCAN, then batches                                          */
/* ------------------------------------------------------------------------ */

typedef struct rd_keys {
  char **v;
  size_t n, cap;
} rd_keys;

static void keys_free(rd_keys *k) {
  for (size_t i = 0; i < k->n; i++) csn_free(k->v[i]);
  csn_free(k->v);
  memset(k, 0, sizeof *k);
}

static int keys_push(rd_keys *k, const char *key, size_t len) {
  if (k->n == k->cap) {
    size_t cap = k->cap ? k->cap * 2 : 64;
    char **v = csn_malloc(cap * sizeof *v);
    if (v == NULL) return CSN_ENOMEM;
    if (k->n > 0) memcpy(v, k->v, k->n * sizeof *v);
    csn_free(k->v);
    k->v = v;
    k->cap = cap;
  }
  char *p = csn_malloc(len + 1);
  if (p == NULL) return CSN_ENOMEM;
  memcpy(p, key, len);
  p[len] = '\0';
  k->v[k->n++] = p;
  return CSN_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* SCAN ... MATCH prefix* to cursor 0: every key with the prefix, sorted,
 * each once. A key holding a NUL cannot be named in C and is skipped. */
static int op_scan(rd_store *s, rd_conn *cn, void *arg) {
  rd_keys *k = arg;
  char cursor[32] = "0";
  keys_free(k); /* a retried scan starts over */
  do {
    const char *argv[6] = {"SCAN", cursor, "MATCH", s->match,
                           "COUNT", s->scan_count};
    size_t lens[6] = {4, strlen(cursor), 5, strlen(s->match), 5,
                      strlen(s->scan_count)};
    redisReply *r;
    int rc = rd_call(s, cn, "SCAN", 6, argv, lens, &r);
    if (rc != CSN_OK) return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof cursor ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
      return rd_unexpected(s, "SCAN", r);
    memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
    redisReply *list = r->element[1];
    for (size_t i = 0; i < list->elements; i++) {
      redisReply *e = list->element[i];
      if (e->type != REDIS_REPLY_STRING || e->len < s->prefix_len ||
          memchr(e->str, '\0', e->len) != NULL ||
          memcmp(e->str, s->prefix, s->prefix_len) != 0)
        continue;
      if (keys_push(k, e->str, e->len) != CSN_OK) {
        freeReplyObject(r);
        return csn_store_set_error(&s->base, CSN_ENOMEM, NULL);
      }
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  if (k->n > 1) {
    size_t w = 1;
    qsort(k->v, k->n, sizeof k->v[0], cmp_str);
    for (size_t i = 1; i < k->n; i++) {
      if (strcmp(k->v[i], k->v[w - 1]) == 0)
        csn_free(k->v[i]);
      else
        k->v[w++] = k->v[i];
    }
    k->n = w;
  }
  return CSN_OK;
}

static int rd_scan(rd_store *s, rd_keys *k) {
  memset(k, 0, sizeof *k);
  int rc = rd_run(s, op_scan, k, 1);
  if (rc != CSN_OK) keys_free(k);
  return rc;
}

/* A key whose id part is one the core could have written. */
static int key_is_session(const rd_store *s, const char *key) {
  return csn_store_id_valid(key + s->prefix_len);
}

static int rd_length(csn_store *st, size_t *count) {
  rd_store *s = (rd_store *)st;
  rd_keys k;
  int rc = rd_scan(s, &k);
  if (rc != CSN_OK) return rc;
  size_t n = 0;
  for (size_t i = 0; i < k.n; i++) n += (size_t)key_is_session(s, k.v[i]);
  *count = n;
  keys_free(&k);
  return CSN_OK;
}

/* One pipelined batch of GETs. Every reply is read, so the connection
 * stays in step. An error reply (WRONGTYPE: a hash or a list someone keeps
 * under the prefix) is no session and is skipped, as connect-redis's MGET
 * returns nil for it. */
typedef struct rd_batch {
  char **keys;
  size_t n;
  redisReply **replies;
} rd_batch;

static int op_get_batch(rd_store *s, rd_conn *cn, void *arg) {
  rd_batch *b = arg;
  for (size_t i = 0; i < b->n; i++) {
    const char *argv[2] = {"GET", b->keys[i]};
    size_t lens[2] = {3, strlen(b->keys[i])};
    if (redisAppendCommandArgv(cn->c, 2, argv, lens) != REDIS_OK) {
      cn->broken = 1; /* some commands queued, some not */
      return csn_store_set_error(&s->base, CSN_ENOMEM, NULL);
    }
  }
  errno = 0;
  if (rd_flush(cn->c) != REDIS_OK)
    return rd_reply(s, cn, "GET", NULL, errno, &b->replies[0]);
  for (size_t i = 0; i < b->n; i++) {
    void *r = NULL;
    errno = 0;
    if (redisGetReply(cn->c, &r) != REDIS_OK)
      return rd_reply(s, cn, "GET", NULL, errno, &b->replies[i]);
    (void)rd_reply(s, cn, "GET", r, 0, &b->replies[i]);
  }
  return CSN_OK;
}

static int rd_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  rd_store *s = (rd_store *)st;
  rd_keys k;
  redisReply *replies[RD_BATCH];
  int rc = rd_scan(s, &k), stop = 0;
  /* Sessions only; the others are dropped up front. */
  size_t w = 0;
  for (size_t i = 0; rc == CSN_OK && i < k.n; i++) {
    if (key_is_session(s, k.v[i]))
      k.v[w++] = k.v[i];
    else
      csn_free(k.v[i]);
  }
  if (rc == CSN_OK) k.n = w;
  for (size_t at = 0; rc == CSN_OK && !stop && at < k.n; at += RD_BATCH) {
    rd_batch b = {k.v + at, k.n - at < RD_BATCH ? k.n - at : RD_BATCH,
                  replies};
    memset(replies, 0, sizeof replies);
    rc = rd_run(s, op_get_batch, &b, 1);
    /* The callback runs with no connection held: it may call the store. */
    for (size_t i = 0; i < b.n; i++) {
      redisReply *r = replies[i];
      if (rc == CSN_OK && !stop && r != NULL &&
          r->type == REDIS_REPLY_STRING &&
          !(r->len == sizeof RD_TOMBSTONE - 1 &&
            memcmp(r->str, RD_TOMBSTONE, r->len) == 0))
        stop = fn(b.keys[i] + s->prefix_len, r->str, r->len, userdata) != 0;
      freeReplyObject(r);
    }
  }
  keys_free(&k);
  return rc;
}

/* clear: every key with the prefix (connect-redis's), in DELs of RD_BATCH
 * keys so no one command blocks the server for long. */
static int rd_clear(csn_store *st) {
  rd_store *s = (rd_store *)st;
  rd_keys k;
  const char *argv[RD_BATCH + 1];
  size_t lens[RD_BATCH + 1];
  int rc = rd_scan(s, &k);
  for (size_t at = 0; rc == CSN_OK && at < k.n; at += RD_BATCH) {
    size_t n = k.n - at < RD_BATCH ? k.n - at : RD_BATCH;
    argv[0] = "DEL";
    lens[0] = 3;
    for (size_t i = 0; i < n; i++) {
      argv[i + 1] = k.v[at + i];
      lens[i + 1] = strlen(k.v[at + i]);
    }
    rd_cmd cmd = {"DEL", (int)n + 1, argv, lens, NULL};
    rc = rd_command(s, &cmd, 1);
    freeReplyObject(cmd.reply);
  }
  keys_free(&k);
  return rc;
}

/* Redis expires keys itself: there is never anything to prune. (Defined
 * rather than left NULL so that "purge now" succeeds.) */
static int rd_prune(csn_store *st, size_t *removed) {
  (void)st;
  if (removed != NULL) *removed = 0;
  return CSN_OK;
}

static void rd_close(csn_store *st) {
  rd_store *s = (rd_store *)st;
  csn_pool_free(s->pool);
  csn_free(s->host);
  csn_free(s->unix_path);
  csn_free_secret(s->username);
  csn_free_secret(s->password);
  csn_free(s->prefix);
  csn_free(s->match);
  csn_free(s);
}

static const csn_store_methods rd_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "redis",
    .get = rd_get,
    .set = rd_set,
    .destroy = rd_destroy,
    .touch = rd_touch,
    .clear = rd_clear,
    .length = rd_length,
    .all = rd_all,
    .prune = rd_prune,
    .close = rd_close,
    .cas = rd_cas,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* The prefix for SCAN's MATCH: glob characters escaped, '*' appended. */
static char *glob_escape(const char *prefix) {
  size_t n = strlen(prefix);
  char *m = csn_malloc(2 * n + 2), *p = m;
  if (m == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (strchr("*?[]\\", prefix[i]) != NULL) *p++ = '\\';
    *p++ = prefix[i];
  }
  *p++ = '*';
  *p = '\0';
  return m;
}

/* The first connection: it proves the server, the password and the db
 * (PING: a server wanting a password we lack answers NOAUTH), and loads
 * the CAS script (a server that refuses SCRIPT LOAD, e.g. by ACL, gets
 * EVAL each time instead). */
static int op_hello(rd_store *s, rd_conn *cn, void *arg) {
  const char *ping[1] = {"PING"};
  size_t ping_len[1] = {4};
  const char *argv[3] = {"SCRIPT", "LOAD", CAS_SCRIPT};
  size_t lens[3] = {6, 4, sizeof CAS_SCRIPT - 1};
  redisReply *r;
  (void)arg;
  int rc = rd_expect_ok(s, cn, "PING", 1, ping, ping_len);
  if (rc != CSN_OK) return rc;
  rc = rd_call(s, cn, "SCRIPT LOAD", 3, argv, lens, &r);
  if (rc == CSN_ESTORE) return CSN_OK;
  if (rc != CSN_OK) return rc;
  if (r->type == REDIS_REPLY_STRING && r->len == 40)
    memcpy(s->sha, r->str, 41);
  freeReplyObject(r);
  return CSN_OK;
}

#define RD_FAIL(rc, ...) csn_store_fail(errbuf, errlen, rc, __VA_ARGS__)

int csn_store_redis_new(const csn_redis_options *opts, csn_store **out,
                        char *errbuf, size_t errlen) {
  csn_redis_options o;
  memset(&o, 0, sizeof o);
  if (opts != NULL) o = *opts;
  if (out == NULL) return RD_FAIL(CSN_EINVAL, "redis store: no out");
  *out = NULL;
  if (o.host == NULL || o.host[0] == '\0') o.host = RD_DEFAULT_HOST;
  if (o.port == 0) o.port = RD_DEFAULT_PORT;
  if (o.prefix == NULL) o.prefix = RD_DEFAULT_PREFIX;
  if (o.ttl_s == 0) o.ttl_s = RD_DEFAULT_TTL_S;
  if (o.scan_count == 0) o.scan_count = RD_DEFAULT_SCAN;
  if (o.connect_timeout_ms == 0) o.connect_timeout_ms = RD_DEFAULT_CONNECT_MS;
  if (o.timeout_ms == 0) o.timeout_ms = RD_DEFAULT_TIMEOUT_MS;
  if (o.pool_size == 0) o.pool_size = RD_DEFAULT_POOL;
  if (o.port < 1 || o.port > 65535)
    return RD_FAIL(CSN_EINVAL, "redis store: port must be 1..65535");
  if (o.db < 0) return RD_FAIL(CSN_EINVAL, "redis store: db must be >= 0");
  if (o.ttl_s < 0 || o.ttl_s > RD_TTL_MAX)
    return RD_FAIL(CSN_EINVAL, "redis store: ttl out of range");
  if (o.scan_count > RD_SCAN_MAX)
    return RD_FAIL(CSN_EINVAL, "redis store: scan_count out of range");
  if (o.connect_timeout_ms < 0 || o.connect_timeout_ms > RD_TIMEOUT_MAX ||
      o.timeout_ms < 0 || o.timeout_ms > RD_TIMEOUT_MAX)
    return RD_FAIL(CSN_EINVAL, "redis store: timeout out of range");
  if (o.pool_size > RD_POOL_MAX)
    return RD_FAIL(CSN_EINVAL, "redis store: pool must be 1..%d",
                   RD_POOL_MAX);
  if (o.username != NULL && o.password == NULL)
    return RD_FAIL(CSN_EINVAL, "redis store: a username needs a password");
  if (o.unix_path != NULL && o.unix_path[0] == '\0')
    return RD_FAIL(CSN_EINVAL, "redis store: empty socket path");

  rd_store *s = csn_malloc(sizeof *s);
  if (s == NULL) return RD_FAIL(CSN_ENOMEM, "redis store: out of memory");
  memset(s, 0, sizeof *s);
  s->base.m = &rd_methods;
  s->port = o.port;
  s->db = o.db;
  s->connect_tv = ms_tv(o.connect_timeout_ms);
  s->command_tv = ms_tv(o.timeout_ms);
  s->timeout_ms = o.timeout_ms;
  s->ttl_s = o.ttl_s;
  s->disable_touch = o.disable_touch != 0;
  s->disable_ttl = o.disable_ttl != 0;
  snprintf(s->scan_count, sizeof s->scan_count, "%u", o.scan_count);
  s->pool_max = o.pool_size;
  s->prefix_len = strlen(o.prefix);
  s->host = csn_strdup(o.host);
  s->unix_path = csn_strdup(o.unix_path);
  s->username = csn_strdup(o.username);
  s->password = csn_strdup(o.password);
  s->prefix = csn_strdup(o.prefix);
  s->match = glob_escape(o.prefix);
  if (o.unix_path != NULL)
    snprintf(s->where, sizeof s->where, "%s", o.unix_path);
  else if (strchr(o.host, ':') != NULL)
    snprintf(s->where, sizeof s->where, "[%s]:%d", o.host, o.port);
  else
    snprintf(s->where, sizeof s->where, "%s:%d", o.host, o.port);
  char label[sizeof s->where + 8];
  snprintf(label, sizeof label, "redis %s", s->where);
  if (s->host == NULL || (o.unix_path && !s->unix_path) ||
      (o.username && !s->username) || (o.password && !s->password) ||
      s->prefix == NULL || s->match == NULL ||
      csn_pool_new(&s->pool, &rd_pool_methods, s, &s->base, label,
                   s->pool_max, s->timeout_ms,
                   RD_IDLE_CHECK_MS) != CSN_OK) {
    csn_store_free(&s->base);
    return RD_FAIL(CSN_ENOMEM, "redis store: out of memory");
  }
  int rc = rd_run(s, op_hello, NULL, 0);
  if (rc != CSN_OK) {
    rc = RD_FAIL(rc, "%s", csn_store_errmsg(&s->base));
    csn_store_free(&s->base);
    return rc;
  }
  *out = &s->base;
  return CSN_OK;
}

/* The userinfo's user and password, percent-decoded by the kit: they go
 * through csn_url_parse_query() as "user=..&password=..", with '&' (legal
 * in userinfo, a separator in a query) written as %26 first. */
static int decode_userinfo(const char *ui, size_t n, char **user,
                           char **pass, char *errbuf, size_t errlen) {
  const char *colon = memchr(ui, ':', n);
  char *q = csn_malloc(3 * n + 32), *p = q;
  if (q == NULL) return RD_FAIL(CSN_ENOMEM, "redis store: out of memory");
  p += sprintf(p, "user=");
  for (size_t i = 0; i < n; i++) {
    if (ui + i == colon) {
      p += sprintf(p, "&password=");
      continue;
    }
    if (ui[i] == '&')
      p += sprintf(p, "%%26");
    else
      *p++ = ui[i];
  }
  *p = '\0';
  const csn_url_option opts[] = {
      {.key = "user", .type = CSN_URL_STR, .out = user},
      {.key = "password", .type = CSN_URL_STR, .out = pass},
  };
  int rc = csn_url_parse_query(q, opts, 2, "redis store (user info)", errbuf,
                               errlen);
  csn_free_secret(q);
  return rc;
}

/* host[:port] or [v6]:port; *host is yours. */
static int parse_hostport(const char *h, size_t n, char **host, int *port,
                          char *errbuf, size_t errlen) {
  const char *colon = NULL;
  size_t hlen = n;
  const char *hs = h;
  if (n > 0 && h[0] == '[') {
    const char *close = memchr(h, ']', n);
    if (close == NULL)
      return RD_FAIL(CSN_EINVAL, "redis store: unterminated [IPv6] host");
    hs = h + 1;
    hlen = (size_t)(close - hs);
    if (close + 1 < h + n) {
      if (close[1] != ':')
        return RD_FAIL(CSN_EINVAL, "redis store: bad text after [IPv6] host");
      colon = close + 1;
    }
  } else {
    colon = memchr(h, ':', n);
    if (colon != NULL) hlen = (size_t)(colon - h);
  }
  if (colon != NULL) {
    int64_t v;
    csn_url_param p = {"port", 4, colon + 1, (size_t)(h + n - colon - 1)};
    if (csn_url_param_int(&p, 1, 65535, &v) != CSN_OK)
      return RD_FAIL(CSN_EINVAL, "redis store: port must be 1..65535");
    *port = (int)v;
  }
  for (size_t i = 0; i < hlen; i++)
    if (hs[i] == '/' || hs[i] == '@' || hs[i] == '[' || hs[i] == ']' ||
        (unsigned char)hs[i] <= ' ')
      return RD_FAIL(CSN_EINVAL, "redis store: bad host name");
  if (hlen == 0) return CSN_OK; /* the default host */
  *host = csn_malloc(hlen + 1);
  if (*host == NULL) return RD_FAIL(CSN_ENOMEM, "redis store: out of memory");
  memcpy(*host, hs, hlen);
  (*host)[hlen] = '\0';
  return CSN_OK;
}

int csn_store_redis_open(const char *url, csn_store **out, char *errbuf,
                         size_t errlen) {
  const char *rest, *query;
  size_t rlen;
  int unix_sock = 0;
  if (out == NULL || url == NULL)
    return RD_FAIL(CSN_EINVAL, "redis store: no URL or no out");
  *out = NULL;
  if (strncmp(url, "rediss://", 9) == 0)
    return RD_FAIL(CSN_ENOTSUP,
                   "redis store: TLS (rediss://) is not supported by this "
                   "build (hiredis without TLS)");
  if (csn_url_split(url, "redis", &rest, &rlen, &query) != CSN_OK) {
    unix_sock = 1;
    if (csn_url_split(url, "unix", &rest, &rlen, &query) != CSN_OK &&
        csn_url_split(url, "redis+unix", &rest, &rlen, &query) != CSN_OK)
      return RD_FAIL(CSN_EINVAL, "redis store: URL must start with redis://, "
                                 "unix:// or redis+unix://");
  }

  csn_redis_options o;
  memset(&o, 0, sizeof o);
  char *prefix = NULL, *user = NULL, *pass = NULL, *host = NULL, *path = NULL;
  int64_t ttl = 0, scan = 0, cto = 0, to = 0, pool = 0, db = 0;
  int dtouch = 0, dttl = 0;
  const csn_url_option opts[] = {
      {.key = "prefix", .type = CSN_URL_STR, .out = &prefix},
      {.key = "ttl", .type = CSN_URL_INT, .min = 0, .max = RD_TTL_MAX,
       .out = &ttl},
      {.key = "disable_touch", .type = CSN_URL_BOOL, .out = &dtouch},
      {.key = "disable_ttl", .type = CSN_URL_BOOL, .out = &dttl},
      {.key = "scan_count", .type = CSN_URL_INT, .min = 1,
       .max = RD_SCAN_MAX, .out = &scan},
      {.key = "connect_timeout", .type = CSN_URL_INT, .min = 1,
       .max = RD_TIMEOUT_MAX, .out = &cto},
      {.key = "timeout", .type = CSN_URL_INT, .min = 1,
       .max = RD_TIMEOUT_MAX, .out = &to},
      {.key = "pool", .type = CSN_URL_INT, .min = 1, .max = RD_POOL_MAX,
       .out = &pool},
      /* unix:// only: a socket URL has no path or userinfo for them. */
      {.key = "db", .type = CSN_URL_INT, .min = 0, .max = INT_MAX,
       .out = &db},
      {.key = "password", .type = CSN_URL_STR, .out = &pass},
  };
  size_t nopts = sizeof opts / sizeof opts[0] - (unix_sock ? 0 : 2);
  int rc = csn_url_parse_query(query, opts, nopts, "redis store", errbuf,
                               errlen);

  if (rc == CSN_OK && unix_sock) {
    /* The path is taken literally, up to the '?'. */
    if (rlen == 0 || rest[0] != '/') {
      rc = RD_FAIL(CSN_EINVAL,
                   "redis store: unix:// needs an absolute socket path");
    } else if ((path = csn_malloc(rlen + 1)) == NULL) {
      rc = RD_FAIL(CSN_ENOMEM, "redis store: out of memory");
    } else {
      memcpy(path, rest, rlen);
      path[rlen] = '\0';
    }
  } else if (rc == CSN_OK) {
    /* [userinfo@]host[:port][/db]; the last '@' ends the userinfo, so an
     * unencoded '@' in a password still parses. */
    const char *end = rest + rlen, *at = NULL;
    for (const char *p = rest; p < end; p++)
      if (*p == '@') at = p;
    const char *h = at ? at + 1 : rest;
    const char *slash = memchr(h, '/', (size_t)(end - h));
    const char *hend = slash ? slash : end;
    if (at != NULL)
      rc = decode_userinfo(rest, (size_t)(at - rest), &user, &pass, errbuf,
                           errlen);
    if (rc == CSN_OK)
      rc = parse_hostport(h, (size_t)(hend - h), &host, &o.port, errbuf,
                          errlen);
    if (rc == CSN_OK && slash != NULL && slash + 1 < end) {
      csn_url_param p = {"db", 2, slash + 1, (size_t)(end - slash - 1)};
      if (csn_url_param_int(&p, 0, INT_MAX, &db) != CSN_OK)
        rc = RD_FAIL(CSN_EINVAL,
                     "redis store: the URL path must be a database number");
    }
    if (rc == CSN_OK && user != NULL && user[0] == '\0') {
      csn_free(user); /* ":password@": the default user */
      user = NULL;
    }
    if (rc == CSN_OK && user != NULL && pass == NULL)
      rc = RD_FAIL(CSN_EINVAL,
                   "redis store: a user name in the URL needs a password "
                   "(redis://user:password@host)");
  }
  if (rc == CSN_OK) {
    o.host = host;
    o.unix_path = path;
    o.username = user;
    o.password = pass;
    o.db = (int)db;
    o.prefix = prefix;
    o.ttl_s = ttl;
    o.disable_touch = dtouch;
    o.disable_ttl = dttl;
    o.scan_count = (unsigned)scan;
    o.connect_timeout_ms = cto;
    o.timeout_ms = to;
    o.pool_size = (unsigned)pool;
    rc = csn_store_redis_new(&o, out, errbuf, errlen);
  }
  csn_free(prefix);
  csn_free(host);
  csn_free(path);
  csn_free_secret(user);
  csn_free_secret(pass);
  return rc;
}
