/* test_interop_node.c - one browser, two servers, one store.
 *
 * A C server (csession + libmicrohttpd) and a Node express app (app.js, with
 * the real session-file-store or connect-sqlite3) share the secret and the
 * store. A libcurl client with a cookie jar alternates between them; the
 * express-session README's visit counter must go up by one on every request,
 * whichever server answers, in both orders (C first, Node first), and after
 * each server has read the other's record.
 *
 * "file-secret" is the file store with session-file-store's `secret` on both
 * sides (encrypted files; app.js reads FILE_SECRET).
 *
 * "redis" is connect-redis 9 on the Redis server of $CSN_TEST_REDIS_URL
 * (scripts/services.sh; without it the test skips with 77). Both sides use
 * a key prefix of their own ("csnio<pid>:") so that parallel tests share
 * the server, and every case deletes its keys. After every request a raw
 * hiredis connection reads the record: a plain string, the JSON exactly as
 * express-session writes it, with a TTL (PTTL) of ceil(maxAge / 1000)
 * seconds whichever side saved.
 *
 * "redis-cluster": two csession-demo processes ($CSN_DEMO_BIN) and the
 * Node app behind an imaginary round-robin load balancer, one Redis, one
 * cookie jar: one continuous session, the counter goes up by exactly one
 * on every request whichever of the three answers.
 *
 * The race: a slow C request (it loads the session, then waits) and Node
 * requests that save the whole record meanwhile. The C save must merge its
 * own change into Node's record, not overwrite it: Node's writes survive.
 * (The other way round cannot be fixed from C: a slow Node request's save
 * overwrites whatever was written since it loaded, as express-session
 * always does.)
 *
 * "pg" is connect-pg-simple 10 (pg 8) on the PostgreSQL server of
 * $CSN_TEST_PG_URL (scripts/services.sh; without it the test skips with
 * 77). Each case gets a schema of its own (csnio_<pid>, dropped after it),
 * where the C store creates the table "Sessions" (create_table=1, checked
 * against connect-pg-simple's DDL); app.js gets PG_SCHEMA and PG_TABLE.
 * After every request a raw libpq connection reads the row: sess exactly
 * express-session's JSON, expire exactly to_timestamp(ceil(expires_ms /
 * 1000)) as the wall clock of the writer's TimeZone. The walk runs in the
 * server's default zone, with both sides in Asia/Tokyo and both in
 * America/Adak (the default of a role made for the zone: ALTER ROLE ...
 * SET TimeZone), and ends with the expiry edges (live 30 s before, gone
 * 2 s after, on both sides; the C store's length and prune). (A TimeZone
 * in the C store's URL options is honoured: store_pg covers it.) Two sides
 * in different zones do not agree - the
 * format's limit, the same for two Node apps: interop_pg_mixed_zones pins
 * down exactly how.
 *
 * "pg-cluster": the redis-cluster walk on one PostgreSQL table (the demos
 * and Node in the server's default zone).
 *
 * "mongo" is connect-mongo 6 (mongodb 6) on the MongoDB server of
 * $CSN_TEST_MONGO_URL (scripts/services.sh: the test server of
 * tests/mongo/, or a real mongod from MONGODB_URI; without it the test
 * skips with 77). Each case gets a collection of its own (csnio_<pid>,
 * dropped before and after it). Both sides keep connect-mongo's default
 * autoRemove "native" (the C store: auto_remove=native), and they start in
 * both orders: the C store first when C answers first, Node first (its
 * TTL index built before "listening") otherwise; each must accept the
 * other's index, and afterwards there is exactly one: {expires: 1},
 * expireAfterSeconds 0, named expires_1. After every request a raw
 * libmongoc client reads the document: exactly _id, session and expires;
 * session exactly express-session's JSON (connect-mongo's stringify:
 * true), expires a BSON Date equal to cookie.expires to the millisecond.
 * The walk ends with the expiry edges (a document expiring in 30 s is live
 * for Node, one expired 2 s ago is gone for C and for Node: each checks
 * expires itself, as a real mongod's TTL monitor lags by up to a minute).
 *
 * "mongo-object": the same with stringify: false on both sides
 * (stringify=0): session is an embedded document whose field types are
 * Node's exactly (cookie.expires a BSON Date, the counters int32); read
 * back as express-session's JSON it is the same record.
 *
 * "mongo-cluster": the redis-cluster walk on one MongoDB collection.
 *
 * Usage: test_interop_node file|file-secret|sqlite|redis|redis-cluster|pg|
 *                          pg-cluster|mongo|mongo-object|mongo-cluster
 *                          <node> <app.js>
 */
#define _XOPEN_SOURCE 700 /* nftw() */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* timegm() */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "csn/csn.h"
#include "csn/csn_store_file.h"
#ifdef CSN_INTEROP_SQLITE
#include "csn/csn_store_sqlite.h"
#endif
#ifdef CSN_INTEROP_REDIS
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "csn/csn_store_redis.h"
#include "demo_proc.h"
#endif
#ifdef CSN_INTEROP_PG
#include <jansson.h>
#include <libpq-fe.h>

#include "csn/csn_store_pg.h"
#include "demo_proc.h"
#endif
#ifdef CSN_INTEROP_MONGO
#include <jansson.h>
#include <mongoc/mongoc.h>

#include "csn/csn_store_mongo.h"
#include "demo_proc.h"
#endif
#include "http_harness.h"

/* The server stores: a raw client checks the stored form, and the cluster
 * cases run csession-demo processes. */
#if defined(CSN_INTEROP_REDIS) || defined(CSN_INTEROP_PG) || \
    defined(CSN_INTEROP_MONGO)
#define CSN_INTEROP_SERVER 1
#endif

#define SECRET "interop keyboard cat"
#define WELCOME "Welcome! Refresh the page to count visits."
/* The store's secret, deliberately not the cookie secret; URL-safe. */
#define FILE_SECRET "interop-file-secret"

/* The cookie's maxAge on every server (app.js: cookie.maxAge). */
#define MAX_AGE_MS 3600000

/* kind is the Node app's STORE ("file", "sqlite", "redis", "pg", "mongo" or
 * "mongo-object"); encrypted is set for "file-secret". */
static const char *kind, *node_bin, *app_js;
static int encrypted;
static char root[256];

#ifdef CSN_INTEROP_REDIS
/* $CSN_TEST_REDIS_URL, this run's key prefix, and the raw connection the
 * test reads the records with. */
static const char *redis_url;
static char prefix[64];
static redisContext *raw;
#endif

#ifdef CSN_INTEROP_PG
/* $CSN_TEST_PG_URL, this run's schema (csnio_<pid>: the table, its index
 * and its key live there, so parallel runs never meet), the table (mixed
 * case: both sides must quote it), the raw connection the test reads the
 * rows with, and the TimeZone of the C store's and of the Node app's
 * connections (NULL: the server's default, else the default of a role
 * made for that zone: ALTER ROLE ... SET TimeZone, see pg_role). */
static const char *pg_url;
static char pg_schema[64];
#define PG_TABLE "Sessions"
static PGconn *pgraw;
static const char *zone_c, *zone_node;
/* The roles made for zones in this case (csnio_<pid>_<i>). */
#define PG_ROLES 2
static const char *role_zone[PG_ROLES];
/* Appended to the C store's URL (NULL: nothing). */
static const char *c_url_extra;
#endif

#ifdef CSN_INTEROP_MONGO
/* $CSN_TEST_MONGO_URL, its database (the URL's path; csn_test when it
 * has none, and then mongo_base gets it), this run's collection, the raw
 * client the test reads documents with, and the session's form:
 * stringify: false ("mongo-object") or the default JSON text. */
static const char *mongo_url;
static char mongo_base[256];
static char mongo_db[64];
static char mongo_coll[64];
static mongoc_client_t *mraw;
static int mongo_object;
/* The Node app opens the store first (and builds the TTL index). */
static int node_opens_first;
#endif

typedef struct node_app {
  pid_t pid;
  int port;
} node_app;

/* Global so that teardown stops them even when an assertion fails midway;
 * node2 is a second Node app (pg: another TimeZone). */
static node_app node, node2;

/* ------------------------------------------------------------------------ */
/* The C server: the same counter as app.js                                 */
/* ------------------------------------------------------------------------ */

static csn_mhd_result counter(const http_req *r) {
  csn_request *sr = NULL;
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &sr);
  if (rc != CSN_OK) return csn_mhd_error(r->ctx, r->conn, rc);
  csn_session *s = csn_request_session(sr);
  char body[128];
  int64_t views = 0;
  if (csn_session_get_int(s, "views", &views) == CSN_OK && views != 0) {
    csn_session_incr(s, "views", 1, &views);
    snprintf(body, sizeof body, "You've visited this page %lld times",
             (long long)views);
  } else {
    csn_session_set_int(s, "views", 1);
    snprintf(body, sizeof body, WELCOME);
  }
  return http_reply(r->conn, sr, 200, body, NULL);
}

/* "/inc?k=NAME&delay=MS": wait after loading, then add 1 to NAME (what
 * the demo's route does, with the delay that opens the race). */
static csn_mhd_result inc(const http_req *r) {
  csn_request *sr = NULL;
  const char *k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                              "k");
  const char *d = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                              "delay");
  char body[128];
  int64_t v = 0;
  int rc = csn_mhd_begin(r->ctx, r->conn, r->url, &sr);
  if (rc != CSN_OK) return csn_mhd_error(r->ctx, r->conn, rc);
  if (d != NULL) {
    long ms = atol(d);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  csn_session_incr(csn_request_session(sr), k ? k : "x", 1, &v);
  snprintf(body, sizeof body, "%s: %lld", k ? k : "x", (long long)v);
  return http_reply(r->conn, sr, 200, body, NULL);
}

static csn_mhd_result route(const http_req *r) {
  if (strncmp(r->url, "/inc", 4) == 0) return inc(r);
  return counter(r);
}

/* ------------------------------------------------------------------------ */
/* The Node app                                                             */
/* ------------------------------------------------------------------------ */

/* pg_zone: the app's PG_TZ (pg only; NULL: the server's default). */
static int node_start_zone(node_app *n, const char *store_path,
                           const char *pg_zone) {
  int out[2];
  (void)pg_zone;
  if (pipe(out) != 0) return -1;
  n->pid = fork();
  if (n->pid < 0) return -1;
  if (n->pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    setenv("STORE", kind, 1);
    setenv("STORE_PATH", store_path, 1);
    setenv("SECRET", SECRET, 1);
    if (encrypted) setenv("FILE_SECRET", FILE_SECRET, 1);
#ifdef CSN_INTEROP_REDIS
    setenv("PREFIX", prefix, 1);
#endif
#ifdef CSN_INTEROP_PG
    setenv("PG_TABLE", PG_TABLE, 1);
    setenv("PG_SCHEMA", pg_schema, 1);
    if (pg_zone != NULL) setenv("PG_TZ", pg_zone, 1);
    /* The process's own zone is not the database session's: Node's clock
     * is epoch milliseconds whatever TZ says. */
    setenv("TZ", "Pacific/Chatham", 1);
#endif
#ifdef CSN_INTEROP_MONGO
    setenv("MONGO_COLLECTION", mongo_coll, 1);
#endif
    setenv("PORT", "0", 1);
    execl(node_bin, node_bin, app_js, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  /* Wait for "listening <port>\n" (node prints nothing else on stdout),
   * 30 s at most: an app that hangs (a Redis that does not answer) fails
   * the case instead of the whole test timing out. */
  char line[128];
  size_t len = 0;
  while (len < sizeof line - 1) {
    struct pollfd pfd = {out[0], POLLIN, 0};
    if (poll(&pfd, 1, 30000) <= 0) break;
    ssize_t r = read(out[0], line + len, 1);
    if (r <= 0) break;
    if (line[len++] == '\n') break;
  }
  line[len] = '\0';
  close(out[0]);
  if (sscanf(line, "listening %d", &n->port) != 1) {
    fprintf(stderr, "node app did not start: '%s'\n", line);
    return -1;
  }
  return 0;
}

static int node_start(node_app *n, const char *store_path) {
  return node_start_zone(n, store_path, NULL);
}

/* SIGTERM, then SIGKILL after 10 s: the test never waits for ever. */
static void node_stop(node_app *n) {
  if (n->pid <= 0) return;
  kill(n->pid, SIGTERM);
  int status;
  for (int i = 0; i < 1000; i++) {
    if (waitpid(n->pid, &status, WNOHANG) != 0) {
      n->pid = 0;
      return;
    }
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "node app %d ignored SIGTERM; killing it\n", (int)n->pid);
  kill(n->pid, SIGKILL);
  waitpid(n->pid, &status, 0);
  n->pid = 0;
}

#ifdef CSN_INTEROP_SERVER
/* ------------------------------------------------------------------------ */
/* The stored record, whatever the store                                    */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (Date#toISOString) to ms since the epoch;
 * -1 for any other shape. */
static int64_t iso_ms(const char *s) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (strlen(s) != sizeof shape - 1) return -1;
  for (size_t i = 0; shape[i] != '\0'; i++)
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
      return -1;
  struct tm tm;
  int ms;
  memset(&tm, 0, sizeof tm);
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* `text` is exactly the JSON express-session writes:
 *   {"cookie":{"originalMaxAge":3600000 (or a little less, see below),
 *   "expires":"<ISO, ms, Z>","httpOnly":true,"path":"/"},<members>}
 * (members: the rest of the record, e.g. "\"views\":3"), saved at about
 * `t` (ms) with expires = then + maxAge. Returns cookie.expires in ms. */
static int64_t check_record(const char *who, const char *text,
                            const char *members, int64_t t) {
  json_error_t jerr;
  json_t *doc = json_loads(text, 0, &jerr);
  if (doc == NULL) fail_msg("after %s: not JSON (%s): %s", who, jerr.text, text);
  json_t *cookie = json_object_get(doc, "cookie");
  const char *expires = json_string_value(json_object_get(cookie, "expires"));
  if (expires == NULL) fail_msg("after %s: no cookie.expires: %s", who, text);
  int64_t exp_ms = iso_ms(expires);
  if (exp_ms < 0) fail_msg("after %s: expires not ISO with ms and Z: %s", who, text);

  /* express-session saves originalMaxAge = expires - Date.now() just after
   * setting expires = Date.now() + originalMaxAge (Cookie's maxAge and
   * expires setters), so a Node save may write maxAge - 1 when the clock
   * ticks in between, and every later save (C keeps what it loaded, as
   * express-session does) carries that on. */
  json_t *oma = json_object_get(cookie, "originalMaxAge");
  if (!json_is_integer(oma) || json_integer_value(oma) > MAX_AGE_MS ||
      json_integer_value(oma) < MAX_AGE_MS - 1000)
    fail_msg("after %s: cookie.originalMaxAge is not about %d: %s", who,
             MAX_AGE_MS, text);
  char want[1024];
  snprintf(want, sizeof want,
           "{\"cookie\":{\"originalMaxAge\":%lld,\"expires\":\"%s\","
           "\"httpOnly\":true,\"path\":\"/\"},%s}",
           (long long)json_integer_value(oma), expires, members);
  if (strcmp(text, want) != 0)
    fail_msg("after %s: stored\n  %s\nwant\n  %s", who, text, want);

  /* Saved a moment ago with expires = then + maxAge. */
  if (exp_ms - t > MAX_AGE_MS || exp_ms - t < MAX_AGE_MS - 2000)
    fail_msg("after %s: expires %s is %lld ms away, want about %d", who,
             expires, (long long)(exp_ms - t), MAX_AGE_MS);
  json_decref(doc);
  return exp_ms;
}
#endif

#ifdef CSN_INTEROP_REDIS
/* ------------------------------------------------------------------------ */
/* Redis, read directly                                                     */
/* ------------------------------------------------------------------------ */

/* The C store's URL: the server's URL with this run's prefix. */
static void redis_store_url(char *url, size_t size) {
  snprintf(url, size, "%s%sprefix=%s", redis_url,
           strchr(redis_url, '?') != NULL ? "&" : "?", prefix);
}

/* Connect the raw client (redis://HOST:PORT[/DB], what services.sh
 * exports). Returns 0 or -1 with a message on stderr. */
static int raw_connect(void) {
  char host[128];
  int port = 6379, db = 0;
  if (sscanf(redis_url, "redis://%127[^:/?]:%d/%d", host, &port, &db) < 1) {
    fprintf(stderr, "cannot parse CSN_TEST_REDIS_URL %s\n", redis_url);
    return -1;
  }
  struct timeval tv = {5, 0};
  raw = redisConnectWithTimeout(host, port, tv);
  if (raw == NULL || raw->err) {
    fprintf(stderr, "cannot connect to %s: %s\n", redis_url,
            raw ? raw->errstr : "out of memory");
    return -1;
  }
  redisSetTimeout(raw, tv);
  if (db != 0) {
    redisReply *r = redisCommand(raw, "SELECT %d", db);
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (!ok) return -1;
  }
  return 0;
}

static redisReply *raw_cmd(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(raw, fmt, ap);
  va_end(ap);
  if (r == NULL) fail_msg("redis: %s", raw->errstr);
  if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
  return r;
}

/* Every key under this run's prefix (SCAN, de-duplicated), at most `max`;
 * returns how many. Keys are malloc'd. */
static size_t raw_keys(char **keys, size_t max) {
  size_t n = 0;
  char cursor[32] = "0";
  do {
    redisReply *r = raw_cmd("SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
      fail_msg("redis: odd SCAN reply");
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    for (size_t i = 0; i < r->element[1]->elements; i++) {
      const char *k = r->element[1]->element[i]->str;
      size_t j = 0;
      while (j < n && strcmp(keys[j], k) != 0) j++;
      if (j < n) continue;
      if (n == max) fail_msg("more than %zu keys under %s", max, prefix);
      keys[n] = strdup(k);
      assert_non_null(keys[n]);
      n++;
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  return n;
}

/* The session's key holds a plain string (NULL when the key is absent). */
static char *raw_get(const char *pfx, const char *sid) {
  redisReply *r = raw_cmd("GET %s%s", pfx, sid);
  char *v = NULL;
  if (r->type == REDIS_REPLY_STRING) {
    v = strdup(r->str);
    assert_non_null(v);
  } else if (r->type != REDIS_REPLY_NIL) {
    fail_msg("GET %s%s: reply type %d, not a string", pfx, sid, r->type);
  }
  freeReplyObject(r);
  return v;
}

static long long raw_pttl(const char *sid) {
  redisReply *r = raw_cmd("PTTL %s%s", prefix, sid);
  if (r->type != REDIS_REPLY_INTEGER) fail_msg("PTTL: not an integer");
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* The record `who` just saved for sid, read straight from Redis:
 *  - a plain string under prefix + sid, nothing under the default "sess:";
 *  - exactly the JSON express-session writes (check_record);
 *  - a TTL (PTTL) of ceil((expires - now) / 1000) seconds: 3598..3600 s
 *    right after a save by either side. */
static void check_stored(const char *who, const char *sid,
                         const char *members) {
  int64_t t = now_ms();
  long long pttl = raw_pttl(sid);
  char *text = raw_get(prefix, sid);
  if (text == NULL) fail_msg("after %s: no key %s%s", who, prefix, sid);
  char *dflt = raw_get("sess:", sid);
  if (dflt != NULL) fail_msg("after %s: a key under sess: too", who);
  int64_t exp_ms = check_record(who, text, members, t);
  /* EX ceil((expires - now) / 1000): whole seconds, at most maxAge. */
  if (pttl > MAX_AGE_MS || pttl < MAX_AGE_MS - 2000)
    fail_msg("after %s: PTTL %lld ms, want %d s (ceil(maxAge / 1000)) less "
             "the time since the save", who, pttl, MAX_AGE_MS / 1000);
  if (pttl < exp_ms - t - 1000 || pttl > exp_ms - t + 1000)
    fail_msg("after %s: PTTL %lld ms but expires in %lld ms", who, pttl,
             (long long)(exp_ms - t));
  free(text);
}

/* Exactly one key under the prefix: the session's. */
static void check_only_key(const char *sid) {
  char *keys[8];
  size_t n = raw_keys(keys, 8);
  char want[256];
  snprintf(want, sizeof want, "%s%s", prefix, sid);
  int ok = n == 1 && strcmp(keys[0], want) == 0;
  for (size_t i = 0; i < n; i++) free(keys[i]);
  if (!ok) fail_msg("%zu keys under %s, want only %s", n, prefix, want);
}
#endif /* CSN_INTEROP_REDIS */

#ifdef CSN_INTEROP_PG
/* ------------------------------------------------------------------------ */
/* PostgreSQL, read directly                                                */
/* ------------------------------------------------------------------------ */

/* One statement on the raw connection with text parameters; fails the
 * case on an error. The caller PQclear()s. */
static PGresult *pg_q(const char *sql, int n, const char *const *params) {
  PGresult *r = PQexecParams(pgraw, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    fail_msg("postgres: %s: %s", sql, PQerrorMessage(pgraw));
  return r;
}

/* The raw connection's TimeZone: `zone`, or the server's default (NULL). */
static void pg_zone(const char *zone) {
  const char *p[] = {zone};
  PQclear(zone ? pg_q("SELECT set_config('TimeZone', $1, false)", 1, p)
               : pg_q("RESET TimeZone", 0, NULL));
}

/* "schema"."Sessions" */
static void pg_table(char *buf, size_t size) {
  snprintf(buf, size, "\"%s\".\"" PG_TABLE "\"", pg_schema);
}

/* A role whose default TimeZone is `zone` (ALTER ROLE ... SET: a server
 * side default, as ALTER DATABASE or postgresql.conf would set it, but
 * private to this run), allowed into this run's schema and table; the
 * table must exist. Made once per case, dropped by the teardown. */
static void pg_role(const char *zone, char *name, size_t size) {
  size_t i = 0;
  while (i < PG_ROLES && role_zone[i] != NULL && strcmp(role_zone[i], zone))
    i++;
  if (i == PG_ROLES) fail_msg("more than %d zones in one case", PG_ROLES);
  snprintf(name, size, "%s_%zu", pg_schema, i);
  if (role_zone[i] != NULL) return;
  char sql[512], tbl[128];
  pg_table(tbl, sizeof tbl);
  snprintf(sql, sizeof sql,
           "CREATE ROLE \"%s\" LOGIN; ALTER ROLE \"%s\" SET TimeZone TO '%s';"
           " GRANT USAGE ON SCHEMA \"%s\" TO \"%s\";"
           " GRANT ALL ON %s TO \"%s\"",
           name, name, zone, pg_schema, name, tbl, name);
  PGresult *r = PQexec(pgraw, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("postgres: %s: %s", sql, PQerrorMessage(pgraw));
  PQclear(r);
  role_zone[i] = zone;
}

/* The server's URL, as the role for `zone` (NULL: as given). */
static void pg_conn_url(char *url, size_t size, const char *zone) {
  char role[96] = "";
  if (zone != NULL) pg_role(zone, role, sizeof role);
  int n = snprintf(url, size, "%s%s%s%s", pg_url,
                   zone == NULL ? "" : strchr(pg_url, '?') != NULL ? "&" : "?",
                   zone == NULL ? "" : "user=", role);
  if (n < 0 || (size_t)n >= size) fail_msg("the server's URL is too long");
}

/* The C store's URL: the server's (as the role for `zone`), this run's
 * table and schema, no prune thread. */
static void pg_store_url(char *url, size_t size, const char *zone) {
  char base[512];
  pg_conn_url(base, sizeof base, zone);
  int n = snprintf(url, size,
                   "%s%stable=" PG_TABLE "&schema=%s&create_table=1&prune=0"
                   "&pool=4%s",
                   base, strchr(base, '?') != NULL ? "&" : "?", pg_schema,
                   c_url_extra != NULL ? c_url_extra : "");
  if (n < 0 || (size_t)n >= size) fail_msg("the store's URL is too long");
}

static long long pg_count(void) {
  char sql[256], tbl[128];
  pg_table(tbl, sizeof tbl);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tbl);
  PGresult *r = pg_q(sql, 0, NULL);
  long long n = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return n;
}

/* The row `who` just saved for sid, written from a connection in `zone`:
 *  - sess is exactly express-session's JSON (check_record): a json
 *    column keeps the text as sent;
 *  - expire, a timestamp without time zone, holds the wall clock of
 *    to_timestamp(ceil(expires_ms / 1000)) in the writer's TimeZone: read
 *    back as an instant in that zone it is exactly that epoch second, and
 *    its text is that second's local time there.
 * Returns the expiry in epoch seconds. */
static long long check_stored_pg(const char *who, const char *sid,
                                 const char *members, const char *zone) {
  int64_t t = now_ms();
  char sql[512], tbl[128];
  pg_table(tbl, sizeof tbl);
  pg_zone(zone);
  snprintf(sql, sizeof sql,
           "SELECT sess::text, extract(epoch from expire::timestamptz)::bigint,"
           " expire::text FROM %s WHERE sid = $1", tbl);
  const char *p[] = {sid};
  PGresult *r = pg_q(sql, 1, p);
  if (PQntuples(r) != 1) fail_msg("after %s: no row for the session", who);
  int64_t exp_ms = check_record(who, PQgetvalue(r, 0, 0), members, t);
  long long want = (long long)((exp_ms + 999) / 1000);
  long long got = atoll(PQgetvalue(r, 0, 1));
  char wall[64];
  snprintf(wall, sizeof wall, "%s", PQgetvalue(r, 0, 2));
  PQclear(r);
  if (got != want)
    fail_msg("after %s: expire is epoch %lld in %s, want %lld "
             "(ceil(cookie.expires / 1000)): %lld s off", who, got,
             zone ? zone : "the default zone", want, got - want);
  /* The same as text: to_timestamp(E) AT TIME ZONE <writer's zone>. */
  char e[32];
  snprintf(e, sizeof e, "%lld", want);
  const char *pw[] = {e};
  r = pg_q("SELECT (to_timestamp($1::bigint) AT TIME ZONE "
           "current_setting('TimeZone'))::text", 1, pw);
  if (strcmp(PQgetvalue(r, 0, 0), wall) != 0)
    fail_msg("after %s: expire '%s', want '%s' (local time in %s)", who, wall,
             PQgetvalue(r, 0, 0), zone ? zone : "the default zone");
  PQclear(r);
  return want;
}

/* Set the stored expiry of sid to now + delta_s, as a writer in `zone`
 * would (the raw connection in that zone, to_timestamp of epoch seconds). */
static void pg_set_expire(const char *sid, long long delta_s,
                          const char *zone) {
  char sql[256], tbl[128], e[32];
  pg_table(tbl, sizeof tbl);
  pg_zone(zone);
  snprintf(e, sizeof e, "%lld", (long long)(now_ms() / 1000) + delta_s);
  snprintf(sql, sizeof sql,
           "UPDATE %s SET expire = to_timestamp($1::bigint) WHERE sid = $2",
           tbl);
  const char *p[] = {e, sid};
  PGresult *r = pg_q(sql, 2, p);
  if (strcmp(PQcmdTuples(r), "1") != 0)
    fail_msg("no row to set the expiry of");
  PQclear(r);
}

/* The table the C store created (create_table=1) is connect-pg-simple's. */
static void check_table_shape(void) {
  const char *p[] = {pg_schema};
  PGresult *r = pg_q(
      "SELECT string_agg(column_name || ' ' || data_type || ' ' ||"
      " coalesce(datetime_precision::text, '-') || ' ' || is_nullable, ', '"
      " ORDER BY ordinal_position) FROM information_schema.columns"
      " WHERE table_schema = $1 AND table_name = '" PG_TABLE "'",
      1, p);
  static const char want[] =
      "sid character varying - NO, sess json - NO, "
      "expire timestamp without time zone 6 NO";
  if (strcmp(PQgetvalue(r, 0, 0), want) != 0)
    fail_msg("table columns: %s\nwant %s", PQgetvalue(r, 0, 0), want);
  PQclear(r);
  r = pg_q("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid ="
           " i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
           " WHERE n.nspname = $1 AND c.relname = '" PG_TABLE "'"
           " AND i.indisprimary", 1, p);
  if (strcmp(PQgetvalue(r, 0, 0), "1") != 0) fail_msg("no primary key");
  PQclear(r);
}

/* connect-pg-simple's table.sql in this run's schema, made by the test
 * (the zone cases: their roles need it before the C store opens). */
static void pg_create_table(void) {
  char sql[512], tbl[128];
  pg_table(tbl, sizeof tbl);
  snprintf(sql, sizeof sql,
           "CREATE TABLE %s (sid varchar NOT NULL COLLATE \"default\","
           " sess json NOT NULL, expire timestamp(6) NOT NULL,"
           " PRIMARY KEY (sid)); CREATE INDEX ON %s (expire)", tbl, tbl);
  PGresult *r = PQexec(pgraw, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("postgres: %s: %s", sql, PQerrorMessage(pgraw));
  PQclear(r);
}

/* This run's schema, fresh (quietly: setup and teardown must not jump). */
static int pg_schema_reset(int create) {
  char sql[256];
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE%s%s%s",
           pg_schema, create ? "; CREATE SCHEMA \"" : "",
           create ? pg_schema : "", create ? "\"" : "");
  PGresult *r = PQexec(pgraw, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) fprintf(stderr, "postgres: %s: %s", sql, PQerrorMessage(pgraw));
  PQclear(r);
  /* The zone roles own nothing: the schema went with all their grants. */
  for (size_t i = 0; i < PG_ROLES; i++) {
    snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS \"%s_%zu\"", pg_schema, i);
    r = PQexec(pgraw, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      fprintf(stderr, "postgres: %s: %s", sql, PQerrorMessage(pgraw));
      ok = 0;
    }
    PQclear(r);
    role_zone[i] = NULL;
  }
  return ok ? 0 : -1;
}
#endif /* CSN_INTEROP_PG */

#ifdef CSN_INTEROP_MONGO
/* ------------------------------------------------------------------------ */
/* MongoDB, read directly                                                   */
/* ------------------------------------------------------------------------ */

/* mongo_base and mongo_db from $CSN_TEST_MONGO_URL: the database is the
 * URL's path (mongodb://HOSTS/DB[?OPTIONS]); a URL without one gets
 * /csn_test, since both sides must use the same database. 0 or -1. */
static int mongo_parse_url(void) {
  const char *hosts = strstr(mongo_url, "://");
  if (hosts == NULL) return -1;
  hosts += 3;
  const char *q = strchr(hosts, '?');
  const char *slash = strchr(hosts, '/');
  if (slash != NULL && q != NULL && slash > q) slash = NULL;
  if (slash != NULL && slash[1] != '\0' && slash[1] != '?') {
    size_t n = strcspn(slash + 1, "?");
    if (n >= sizeof mongo_db) return -1;
    memcpy(mongo_db, slash + 1, n);
    mongo_db[n] = '\0';
    snprintf(mongo_base, sizeof mongo_base, "%s", mongo_url);
  } else {
    const char *end = slash ? slash : q ? q : hosts + strlen(hosts);
    snprintf(mongo_db, sizeof mongo_db, "csn_test");
    snprintf(mongo_base, sizeof mongo_base, "%.*s/csn_test%s",
             (int)(end - mongo_url), mongo_url, q ? q : "");
  }
  return 0;
}

/* The C store's URL: this run's collection, the session's form, and
 * connect-mongo's default TTL index. */
static void mongo_store_url(char *url, size_t size) {
  int n = snprintf(url, size,
                   "%s%scollection=%s&stringify=%d&auto_remove=native&pool=4",
                   mongo_base, strchr(mongo_base, '?') != NULL ? "&" : "?",
                   mongo_coll, mongo_object ? 0 : 1);
  if (n < 0 || (size_t)n >= size) fail_msg("the store's URL is too long");
}

static mongoc_collection_t *mongo_handle(void) {
  return mongoc_client_get_collection(mraw, mongo_db, mongo_coll);
}

/* The document with _id sid, or NULL; bson_destroy() it. */
static bson_t *mongo_find(const char *sid) {
  mongoc_collection_t *c = mongo_handle();
  bson_t *filter = BCON_NEW("_id", BCON_UTF8(sid));
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, filter, NULL,
                                                          NULL);
  const bson_t *doc;
  bson_t *out = NULL;
  bson_error_t err;
  if (mongoc_cursor_next(cur, &doc)) out = bson_copy(doc);
  int bad = mongoc_cursor_error(cur, &err);
  mongoc_cursor_destroy(cur);
  bson_destroy(filter);
  mongoc_collection_destroy(c);
  if (bad) {
    if (out != NULL) bson_destroy(out);
    fail_msg("mongo: find: %s", err.message);
  }
  return out;
}

static long long mongo_count(void) {
  mongoc_collection_t *c = mongo_handle();
  bson_t filter = BSON_INITIALIZER;
  bson_error_t err;
  int64_t n = mongoc_collection_count_documents(c, &filter, NULL, NULL, NULL,
                                                &err);
  bson_destroy(&filter);
  mongoc_collection_destroy(c);
  if (n < 0) fail_msg("mongo: count: %s", err.message);
  return (long long)n;
}

/* Set the stored expires of sid to now + delta_ms (a BSON Date), as the
 * clock moving on would. */
static void mongo_set_expires(const char *sid, int64_t delta_ms) {
  mongoc_collection_t *c = mongo_handle();
  bson_t *filter = BCON_NEW("_id", BCON_UTF8(sid));
  bson_t *update = BCON_NEW("$set", "{", "expires",
                            BCON_DATE_TIME(now_ms() + delta_ms), "}");
  bson_t reply;
  bson_error_t err;
  bool ok = mongoc_collection_update_one(c, filter, update, NULL, &reply,
                                         &err);
  bson_iter_t it;
  int32_t matched = -1;
  if (ok && bson_iter_init_find(&it, &reply, "matchedCount"))
    matched = (int32_t)bson_iter_as_int64(&it);
  bson_destroy(&reply);
  bson_destroy(filter);
  bson_destroy(update);
  mongoc_collection_destroy(c);
  if (!ok) fail_msg("mongo: update: %s", err.message);
  if (matched != 1) fail_msg("no document to set the expiry of");
}

/* Drop this run's collection (and so its indexes), quietly: setup and
 * teardown must not jump. A collection that is not there is fine. */
static void mongo_drop_quiet(void) {
  if (mraw == NULL) return;
  mongoc_collection_t *c = mongo_handle();
  bson_error_t err;
  if (!mongoc_collection_drop(c, &err) && err.code != 26 &&
      strstr(err.message, "ns not found") == NULL)
    fprintf(stderr, "mongo: drop %s.%s: %s\n", mongo_db, mongo_coll,
            err.message);
  mongoc_collection_destroy(c);
}

static const char *bson_type_str(bson_type_t t) {
  switch (t) {
  case BSON_TYPE_UTF8: return "string";
  case BSON_TYPE_INT32: return "int32";
  case BSON_TYPE_INT64: return "int64";
  case BSON_TYPE_DOUBLE: return "double";
  case BSON_TYPE_BOOL: return "bool";
  case BSON_TYPE_NULL: return "null";
  case BSON_TYPE_DATE_TIME: return "date";
  case BSON_TYPE_DOCUMENT: return "object";
  case BSON_TYPE_ARRAY: return "array";
  default: return "other";
  }
}

/* ms since the epoch as Date#toISOString() writes it. */
static void iso_of_ms(int64_t ms, char *buf, size_t size) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char head[32];
  strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, size, "%s.%03dZ", head, (int)(ms % 1000));
}

/* The BSON document (or array) under `it` as the record's JSON (a Date as
 * its ISO string, as JSON.stringify writes it; whole numbers without a
 * fraction), and its shape: every member's name and BSON type, in order,
 * appended to sig ("cookie:object{expires:date,...},views:int32").
 *
 * In the cookie (cookie_nulls), null members are left out of both: the
 * Node driver writes the cookie's undefined members (partitioned,
 * priority, secure, domain, sameSite) as BSON null, which is "not set" for
 * express-session, so a side that writes them and one that does not store
 * the same cookie. */
static json_t *mongo_json(bson_iter_t *it, int array, int depth,
                          int cookie_nulls, char *sig, size_t size) {
  json_t *out = array ? json_array() : json_object();
  int first = 1;
  while (bson_iter_next(it)) {
    const char *key = bson_iter_key(it);
    bson_type_t t = bson_iter_type(it);
    if (cookie_nulls && t == BSON_TYPE_NULL) continue;
    size_t used = strlen(sig);
    snprintf(sig + used, size - used, "%s%s:%s", first ? "" : ",", key,
             bson_type_str(t));
    first = 0;
    json_t *v;
    switch (t) {
    case BSON_TYPE_UTF8: {
      uint32_t n;
      const char *str = bson_iter_utf8(it, &n);
      v = json_stringn(str, n);
      break;
    }
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
      v = json_integer(bson_iter_as_int64(it));
      break;
    case BSON_TYPE_DOUBLE: {
      double d = bson_iter_double(it);
      v = d == (double)(json_int_t)d ? json_integer((json_int_t)d)
                                     : json_real(d);
      break;
    }
    case BSON_TYPE_BOOL:
      v = json_boolean(bson_iter_bool(it));
      break;
    case BSON_TYPE_DATE_TIME: {
      char iso[40];
      iso_of_ms(bson_iter_date_time(it), iso, sizeof iso);
      v = json_string(iso);
      break;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      bson_iter_t sub;
      bson_iter_recurse(it, &sub);
      used = strlen(sig);
      snprintf(sig + used, size - used, "{");
      v = mongo_json(&sub, t == BSON_TYPE_ARRAY, depth + 1,
                     depth == 0 && !array && strcmp(key, "cookie") == 0,
                     sig, size);
      used = strlen(sig);
      snprintf(sig + used, size - used, "}");
      break;
    }
    default:
      v = json_null();
    }
    if (array)
      json_array_append_new(out, v);
    else
      json_object_set_new(out, key, v);
  }
  return out;
}

/* The shape connect-mongo (stringify: false) gives a session whose
 * members are the integers in `members` ("\"views\":1,\"n\":3"): the
 * cookie's toJSON through the driver's BSON (undefined members left out,
 * numbers that fit as int32, the Date a Date), then the members, int32. */
static void object_sig(const char *members, char *sig, size_t size) {
  char text[256];
  snprintf(text, sizeof text, "{%s}", members);
  json_t *m = json_loads(text, JSON_DECODE_ANY, NULL);
  assert_non_null(m);
  snprintf(sig, size,
           "cookie:object{originalMaxAge:int32,expires:date,httpOnly:bool,"
           "path:string}");
  const char *key;
  json_t *v;
  json_object_foreach(m, key, v) {
    size_t used = strlen(sig);
    snprintf(sig + used, size - used, ",%s:int32", key);
  }
  json_decref(m);
}

/* The document `who` just saved for sid, read straight from MongoDB:
 *  - members _id (the id), session and expires, nothing else (no
 *    lastModified: touchAfter is 0 on both sides);
 *  - session exactly express-session's JSON (check_record): the string
 *    itself, or (stringify: false) the embedded document read back the
 *    way JSON.stringify would write it, with Node's field types;
 *  - expires a BSON Date equal to cookie.expires, to the millisecond. */
static void check_stored_mongo(const char *who, const char *sid,
                               const char *members) {
  int64_t t = now_ms();
  bson_t *doc = mongo_find(sid);
  if (doc == NULL)
    fail_msg("after %s: no document %s in %s.%s", who, sid, mongo_db,
             mongo_coll);
  bson_iter_t it;
  char keys[128] = "", sig[512] = "";
  int64_t expires = INT64_MIN;
  char *text = NULL;
  bson_type_t session_type = BSON_TYPE_EOD, expires_type = BSON_TYPE_EOD;
  int id_ok = 0;
  bson_iter_init(&it, doc);
  while (bson_iter_next(&it)) {
    const char *k = bson_iter_key(&it);
    size_t used = strlen(keys);
    snprintf(keys + used, sizeof keys - used, "%s%s", used ? "," : "", k);
    if (strcmp(k, "_id") == 0) {
      id_ok = BSON_ITER_HOLDS_UTF8(&it) &&
              strcmp(bson_iter_utf8(&it, NULL), sid) == 0;
    } else if (strcmp(k, "expires") == 0) {
      expires_type = bson_iter_type(&it);
      if (expires_type == BSON_TYPE_DATE_TIME)
        expires = bson_iter_date_time(&it);
    } else if (strcmp(k, "session") == 0 && text == NULL) {
      session_type = bson_iter_type(&it);
      if (session_type == BSON_TYPE_UTF8) {
        uint32_t n;
        const char *s = bson_iter_utf8(&it, &n);
        text = strndup(s, n);
      } else if (session_type == BSON_TYPE_DOCUMENT) {
        bson_iter_t sub;
        bson_iter_recurse(&it, &sub);
        json_t *j = mongo_json(&sub, 0, 0, 0, sig, sizeof sig);
        text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
      }
    }
  }
  char *dump = bson_as_relaxed_extended_json(doc, NULL);
  bson_destroy(doc);
  if (strlen(keys) != strlen("_id,session,expires") ||
      strstr(keys, "_id") == NULL || strstr(keys, "session") == NULL ||
      strstr(keys, "expires") == NULL || !id_ok)
    fail_msg("after %s: members %s, want _id (the id), session, expires: %s",
             who, keys, dump);
  if (session_type != (mongo_object ? BSON_TYPE_DOCUMENT : BSON_TYPE_UTF8))
    fail_msg("after %s: session is BSON %s, want %s: %s", who,
             bson_type_str(session_type),
             mongo_object ? "an embedded document" : "a string", dump);
  if (expires_type != BSON_TYPE_DATE_TIME)
    fail_msg("after %s: expires is BSON %s, want a Date: %s", who,
             bson_type_str(expires_type), dump);
  if (text == NULL) fail_msg("after %s: cannot read session: %s", who, dump);
  int64_t exp_ms = check_record(who, text, members, t);
  if (expires != exp_ms)
    fail_msg("after %s: expires is %lld ms, cookie.expires %lld ms: %s", who,
             (long long)expires, (long long)exp_ms, dump);
  if (mongo_object) {
    char want[512];
    object_sig(members, want, sizeof want);
    if (strcmp(sig, want) != 0)
      fail_msg("after %s: session's fields\n  %s\nwant (Node's)\n  %s\n%s",
               who, sig, want, dump);
  }
  bson_free(dump);
  free(text);
}

/* connect-mongo's autoRemove "native" index, made by whichever side
 * started first and accepted by the other: exactly one index besides
 * _id's, {expires: 1} with expireAfterSeconds 0, named expires_1. */
static void check_ttl_index(const char *when) {
  mongoc_collection_t *c = mongo_handle();
  mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(c, NULL);
  const bson_t *ix;
  char seen[1024] = "";
  int n = 0, good = 0;
  bson_error_t err;
  while (mongoc_cursor_next(cur, &ix)) {
    bson_iter_t it, key;
    const char *name = "";
    if (bson_iter_init_find(&it, ix, "name") && BSON_ITER_HOLDS_UTF8(&it))
      name = bson_iter_utf8(&it, NULL);
    if (strcmp(name, "_id_") == 0) continue;
    n++;
    char *j = bson_as_relaxed_extended_json(ix, NULL);
    size_t used = strlen(seen);
    snprintf(seen + used, sizeof seen - used, " %s", j);
    bson_free(j);
    int key_ok = 0, ttl_ok = 0;
    if (bson_iter_init_find(&it, ix, "key") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &key) && bson_iter_next(&key)) {
      key_ok = strcmp(bson_iter_key(&key), "expires") == 0 &&
               BSON_ITER_HOLDS_NUMBER(&key) && bson_iter_as_int64(&key) == 1 &&
               !bson_iter_next(&key);
    }
    if (bson_iter_init_find(&it, ix, "expireAfterSeconds") &&
        BSON_ITER_HOLDS_NUMBER(&it))
      ttl_ok = bson_iter_as_int64(&it) == 0;
    good += key_ok && ttl_ok && strcmp(name, "expires_1") == 0;
  }
  int bad = mongoc_cursor_error(cur, &err);
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  if (bad) fail_msg("%s: listIndexes: %s", when, err.message);
  if (n != 1 || good != 1)
    fail_msg("%s: indexes besides _id_:%s; want exactly expires_1 on "
             "{expires: 1} with expireAfterSeconds 0", when,
             n ? seen : " none");
}
#endif /* CSN_INTEROP_MONGO */

/* ------------------------------------------------------------------------ */
/* The walk                                                                 */
/* ------------------------------------------------------------------------ */

static csn_store *open_store(char *store_path, size_t size) {
  char url[512], err[256] = "";
  csn_store *st = NULL;
  int rc;
  if (strcmp(kind, "file") == 0) {
    snprintf(store_path, size, "%s/sessions", root);
    snprintf(url, sizeof url, "file://%s?reap=0%s", store_path,
             encrypted ? "&secret=" FILE_SECRET : "");
    rc = csn_store_file_open(url, &st, err, sizeof err);
  } else if (strcmp(kind, "redis") == 0) {
#ifdef CSN_INTEROP_REDIS
    /* app.js gets the server's URL and PREFIX; the C store the same. */
    snprintf(store_path, size, "%s", redis_url);
    redis_store_url(url, sizeof url);
    rc = csn_store_redis_open(url, &st, err, sizeof err);
#else
    rc = CSN_ENOTSUP;
#endif
  } else if (strcmp(kind, "pg") == 0) {
#ifdef CSN_INTEROP_PG
    /* app.js gets the server's URL (as the role of its zone), PG_TABLE
     * and PG_SCHEMA. */
    if (zone_c != NULL || zone_node != NULL) pg_create_table();
    pg_conn_url(store_path, size, zone_node);
    pg_store_url(url, sizeof url, zone_c);
    rc = csn_store_pg_open(url, &st, err, sizeof err);
#else
    rc = CSN_ENOTSUP;
#endif
  } else if (strncmp(kind, "mongo", 5) == 0) {
#ifdef CSN_INTEROP_MONGO
    /* app.js gets the server's URL (with the database) and
     * MONGO_COLLECTION; the C store the same, and the session's form. */
    snprintf(store_path, size, "%s", mongo_base);
    mongo_store_url(url, sizeof url);
    rc = csn_store_mongo_open(url, &st, err, sizeof err);
#else
    rc = CSN_ENOTSUP;
#endif
  } else {
#ifdef CSN_INTEROP_SQLITE
    snprintf(store_path, size, "%s/sessions.db", root);
    snprintf(url, sizeof url, "sqlite://%s?prune=0", store_path);
    rc = csn_store_sqlite_open(url, &st, err, sizeof err);
#else
    rc = CSN_ENOTSUP;
#endif
  }
  if (rc != CSN_OK) fail_msg("open %s: %s", url, err);
  return st;
}

/* Alternate `steps` requests starting with the C server (c_first) or the
 * Node app, with a fresh browser; the counter must never break. */
/* Both servers on one store: the C server (the same options as app.js)
 * and the Node app. */
typedef struct pair {
  csn_store *st;
  csn_ctx *ctx;
  http_server *srv;
  char store_path[300];
} pair;

static void pair_start(pair *p) {
  static const char *const secrets[] = {SECRET};
  csn_options o;
  http_server_opts so = {0};
#ifdef CSN_INTEROP_MONGO
  /* Node first: its TTL index is there before the C store opens (app.js
   * says "listening" only after connect-mongo's createIndex). */
  if (node_opens_first) {
    assert_int_equal(node_start(&node, mongo_base), 0);
    check_ttl_index("after Node's start");
  }
#endif
  p->st = open_store(p->store_path, sizeof p->store_path);
#ifdef CSN_INTEROP_MONGO
  /* C first: the C store made the index when it opened. */
  if (!node_opens_first) check_ttl_index("after the C store's open");
#endif
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.resave = 0;
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = MAX_AGE_MS;
  o.store = p->st;
  p->ctx = http_ctx_new(&o);
  so.ctx = p->ctx;
  so.handler = route;
  so.threads = 2;
  p->srv = NULL;
  assert_int_equal(http_server_start(&so, &p->srv), 0);
#ifdef CSN_INTEROP_MONGO
  if (node_opens_first) return;
#endif
  assert_int_equal(node_start(&node, p->store_path), 0);
}

static void pair_stop(pair *p) {
  node_stop(&node);
  http_server_stop(p->srv);
  csn_ctx_free(p->ctx);
  csn_store_free(p->st);
}

#if defined(CSN_INTEROP_PG) || defined(CSN_INTEROP_MONGO)
/* One GET with the jar; the body must be `want`. Returns the session id
 * the jar then holds (malloc'd). */
static char *get_sid(http_client *cl, const char *url, const char *who,
                     const char *want) {
  http_response resp;
  int rc = http_get(cl, url, NULL, &resp);
  if (rc != 0 || resp.status != 200 || strcmp(resp.body, want) != 0)
    fail_msg("%s: status %ld %s '%s', want '%s'", who, resp.status,
             resp.error, resp.body ? resp.body : "", want);
  http_response_free(&resp);
  char *cookie = http_client_cookie(cl, "connect.sid");
  assert_non_null(cookie);
  char *sid = http_cookie_sid(cookie, SECRET);
  free(cookie);
  assert_non_null(sid);
  return sid;
}
#endif

#ifdef CSN_INTEROP_MONGO
/* After the walk (8 visits): a document expiring in 30 s is live for
 * Node; one that expired 2 s ago is gone for C and then for Node (each
 * starts a new session), whether or not the server's TTL monitor has
 * removed it yet: both sides compare expires with the time themselves. */
static void mongo_expiry_edges(http_client *cl, const char *c_url,
                               const char *n_url, csn_store *st,
                               const char *sid) {
  mongo_set_expires(sid, 30000);
  char *s1 = get_sid(cl, n_url, "Node, 30 s before the expiry",
                     "You've visited this page 9 times");
  assert_string_equal(s1, sid);
  check_stored_mongo("Node's save", sid, "\"views\":9");

  mongo_set_expires(sid, -2000);
  char *s2 = get_sid(cl, c_url, "C, 2 s after the expiry", WELCOME);
  if (strcmp(s2, sid) == 0) fail_msg("C kept the expired session's id");
  check_stored_mongo("C's new session", s2, "\"views\":1");

  mongo_set_expires(s2, -2000);
  char *s3 = get_sid(cl, n_url, "Node, 2 s after the expiry", WELCOME);
  if (strcmp(s3, s2) == 0 || strcmp(s3, sid) == 0)
    fail_msg("Node kept an expired session's id");
  check_stored_mongo("Node's new session", s3, "\"views\":1");

  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_get(st, s2, &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_get(st, s3, &json, &len), CSN_OK);
  assert_non_null(strstr(json, "\"views\":1"));
  csn_free(json);
  free(s1);
  free(s2);
  free(s3);
}
#endif

#ifdef CSN_INTEROP_PG
/* After the walk (8 visits, both sides in one zone): the expiry is
 * compared in that zone by both. A row expiring in 30 s is live for Node;
 * one that expired 2 s ago is gone for C and then for Node (each starts a
 * new session, the old row stays until a prune); the C store counts only
 * the live row and its prune removes exactly the two expired ones. */
static void pg_expiry_edges(http_client *cl, const char *c_url,
                            const char *n_url, csn_store *st,
                            const char *sid) {
  pg_set_expire(sid, 30, zone_node);
  char *s1 = get_sid(cl, n_url, "Node, 30 s before the expiry",
                     "You've visited this page 9 times");
  assert_string_equal(s1, sid);
  check_stored_pg("Node's save", sid, "\"views\":9", zone_node);

  pg_set_expire(sid, -2, zone_c);
  char *s2 = get_sid(cl, c_url, "C, 2 s after the expiry", WELCOME);
  if (strcmp(s2, sid) == 0) fail_msg("C kept the expired session's id");
  check_stored_pg("C's new session", s2, "\"views\":1", zone_c);

  pg_set_expire(s2, -2, zone_node);
  char *s3 = get_sid(cl, n_url, "Node, 2 s after the expiry", WELCOME);
  if (strcmp(s3, s2) == 0 || strcmp(s3, sid) == 0)
    fail_msg("Node kept an expired session's id");
  check_stored_pg("Node's new session", s3, "\"views\":1", zone_node);

  if (pg_count() != 3) fail_msg("%lld rows, want 3", pg_count());
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  n = 0;
  assert_int_equal(csn_store_prune(st, &n), CSN_OK);
  assert_int_equal(n, 2);
  if (pg_count() != 1) fail_msg("%lld rows after the prune, want 1", pg_count());
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_get(st, s3, &json, &len), CSN_OK);
  csn_free(json);
  free(s1);
  free(s2);
  free(s3);
}
#endif

static void walk(int c_first) {
  pair p;
#ifdef CSN_INTEROP_MONGO
  node_opens_first = !c_first;
#endif
  pair_start(&p);
  csn_store *st = p.st;
  http_server *srv = p.srv;
  const char *store_path = p.store_path;

  char c_url[128], n_url[128];
  http_server_url(srv, "/", c_url, sizeof c_url);
  snprintf(n_url, sizeof n_url, "http://127.0.0.1:%d/", node.port);

  http_client *cl = http_client_new(1);
  char *first_sid = NULL;
  for (int i = 0; i < 8; i++) {
    int on_c = (i % 2 == 0) == (c_first != 0);
    http_response resp;
    int rc = http_get(cl, on_c ? c_url : n_url, NULL, &resp);
    if (rc != 0 || resp.status != 200)
      fail_msg("request %d to %s: status %ld %s %s", i, on_c ? "C" : "Node",
               resp.status, resp.error, resp.body ? resp.body : "");
    char want[128];
    if (i == 0)
      snprintf(want, sizeof want, WELCOME);
    else
      snprintf(want, sizeof want, "You've visited this page %d times", i + 1);
    if (strcmp(resp.body, want) != 0)
      fail_msg("request %d to %s: got '%s', want '%s'", i, on_c ? "C" : "Node",
               resp.body, want);
    http_response_free(&resp);
    /* One session throughout: the id in the jar never changes. */
    char *cookie = http_client_cookie(cl, "connect.sid");
    assert_non_null(cookie);
    char *sid = http_cookie_sid(cookie, SECRET);
    assert_non_null(sid);
    if (first_sid == NULL)
      first_sid = sid;
    else {
      assert_string_equal(sid, first_sid);
      free(sid);
    }
    free(cookie);
#ifdef CSN_INTEROP_REDIS
    if (strcmp(kind, "redis") == 0) {
      char members[32];
      snprintf(members, sizeof members, "\"views\":%d", i + 1);
      check_stored(on_c ? "a C save" : "a Node save", first_sid, members);
    }
#endif
#ifdef CSN_INTEROP_PG
    if (strcmp(kind, "pg") == 0) {
      char members[32];
      snprintf(members, sizeof members, "\"views\":%d", i + 1);
      check_stored_pg(on_c ? "a C save" : "a Node save", first_sid, members,
                      on_c ? zone_c : zone_node);
    }
#endif
#ifdef CSN_INTEROP_MONGO
    if (strncmp(kind, "mongo", 5) == 0) {
      char members[32];
      snprintf(members, sizeof members, "\"views\":%d", i + 1);
      check_stored_mongo(on_c ? "a C save" : "a Node save", first_sid,
                         members);
    }
#endif
  }
#ifdef CSN_INTEROP_REDIS
  if (strcmp(kind, "redis") == 0) check_only_key(first_sid);
#endif
#ifdef CSN_INTEROP_PG
  if (strcmp(kind, "pg") == 0) {
    check_table_shape();
    if (pg_count() != 1) fail_msg("%lld rows, want 1", pg_count());
  }
#endif
#ifdef CSN_INTEROP_MONGO
  if (strncmp(kind, "mongo", 5) == 0) {
    check_ttl_index("after the walk");
    if (mongo_count() != 1)
      fail_msg("%lld documents, want 1", mongo_count());
  }
#endif

  /* The stored record is the last writer's, readable by the C store. */
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, first_sid, &json, &len), CSN_OK);
  assert_non_null(strstr(json, "\"views\":8"));
  csn_free(json);
  if (strcmp(kind, "file") == 0) {
    /* session-file-store's layout: <dir>/<id>.json with __lastAccess. */
    char path[600];
    snprintf(path, sizeof path, "%s/%s.json", store_path, first_sid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (encrypted) {
      /* kruptein's envelope, and nothing of the record in clear. */
      assert_int_equal(strncmp(buf, "{\"hmac\":\"", 9), 0);
      assert_null(strstr(buf, "__lastAccess"));
    } else {
      assert_non_null(strstr(buf, "\"__lastAccess\":"));
    }
  }
#ifdef CSN_INTEROP_PG
  if (strcmp(kind, "pg") == 0) pg_expiry_edges(cl, c_url, n_url, st, first_sid);
#endif
#ifdef CSN_INTEROP_MONGO
  if (strncmp(kind, "mongo", 5) == 0)
    mongo_expiry_edges(cl, c_url, n_url, st, first_sid);
#endif

  free(first_sid);
  http_client_free(cl);
  pair_stop(&p);
}

/* A slow C request races Node requests on one session. */
typedef struct slow_call {
  char url[256];
  char cookie[512];
  http_response resp;
  int rc;
} slow_call;

static void *slow_main(void *arg) {
  slow_call *c = arg;
  http_client *cl = http_client_new(0);
  c->rc = http_get(cl, c->url, c->cookie, &c->resp);
  http_client_free(cl);
  return NULL;
}

static void race(void) {
  pair p;
  pair_start(&p);
  csn_store *st = p.st;
  http_server *srv = p.srv;

  /* A session made by C. */
  char url[256];
  http_client *cl = http_client_new(1);
  http_response resp;
  assert_int_equal(http_get(cl, http_server_url(srv, "/", url, sizeof url),
                            NULL, &resp),
                   0);
  assert_int_equal(resp.status, 200);
  http_response_free(&resp);
  char *value = http_client_cookie(cl, "connect.sid");
  assert_non_null(value);
  char *sid = http_cookie_sid(value, SECRET);
  assert_non_null(sid);

  /* The slow C request loads it and waits... */
  slow_call slow;
  memset(&slow, 0, sizeof slow);
  http_server_url(srv, "/inc?k=c&delay=1500", slow.url, sizeof slow.url);
  snprintf(slow.cookie, sizeof slow.cookie, "connect.sid=%s", value);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, slow_main, &slow), 0);
  struct timespec pause = {0, 300 * 1000000L};
  nanosleep(&pause, NULL);

  /* ...while Node saves the whole record three times. */
  char n_url[128];
  snprintf(n_url, sizeof n_url, "http://127.0.0.1:%d/inc?k=n", node.port);
  for (int i = 1; i <= 3; i++) {
    char want[32];
    assert_int_equal(http_get(cl, n_url, NULL, &resp), 0);
    snprintf(want, sizeof want, "n: %d", i);
    if (resp.status != 200 || strcmp(resp.body, want) != 0)
      fail_msg("Node /inc %d: status %ld '%s'", i, resp.status,
               resp.body ? resp.body : "");
    http_response_free(&resp);
  }
  pthread_join(th, NULL);
  assert_int_equal(slow.rc, 0);
  if (slow.resp.status != 200 || strcmp(slow.resp.body, "c: 1") != 0)
    fail_msg("slow C /inc: status %ld '%s'", slow.resp.status,
             slow.resp.body ? slow.resp.body : "");
  http_response_free(&slow.resp);

  /* Both sides' changes are in the record: the C save merged. */
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
  if (strstr(json, "\"n\":3") == NULL || strstr(json, "\"c\":1") == NULL ||
      strstr(json, "\"views\":1") == NULL)
    fail_msg("a write was lost: %s", json);
  csn_free(json);
#ifdef CSN_INTEROP_PG
  /* The merged row went through the compare-and-set statement: the same
   * text and expiry as a plain save, and no other row. */
  if (strcmp(kind, "pg") == 0) {
    check_stored_pg("the C merge", sid, "\"views\":1,\"n\":3,\"c\":1",
                    zone_c);
    if (pg_count() != 1) fail_msg("%lld rows, want 1", pg_count());
  }
#endif
#ifdef CSN_INTEROP_MONGO
  /* The merged document went through the store's compare-and-set: the
   * same form and expiry as a plain save, and no other document. */
  if (strncmp(kind, "mongo", 5) == 0) {
    check_stored_mongo("the C merge", sid, "\"views\":1,\"n\":3,\"c\":1");
    if (mongo_count() != 1)
      fail_msg("%lld documents, want 1", mongo_count());
  }
#endif
#ifdef CSN_INTEROP_REDIS
  /* The merged record went through the compare-and-set script: the same
   * text and TTL as a plain save. */
  if (strcmp(kind, "redis") == 0) {
    check_stored("the C merge", sid, "\"views\":1,\"n\":3,\"c\":1");
    check_only_key(sid);
  }
#endif

  free(sid);
  free(value);
  http_client_free(cl);
  pair_stop(&p);
}

static void interop_node_writes_survive_slow_c_save(void **state) {
  (void)state;
  race();
}

#ifdef CSN_INTEROP_SERVER
/* ------------------------------------------------------------------------ */
/* The cluster: two csession-demo processes and the Node app                */
/* ------------------------------------------------------------------------ */

/* Global so that the teardown stops them even when an assertion fails. */
static demo_proc demos[2];

/* The store's URL for a demo, and what app.js gets as STORE_PATH. */
static void cluster_store_url(char *url, size_t size) {
#ifdef CSN_INTEROP_MONGO
  if (strncmp(kind, "mongo", 5) == 0) {
    mongo_store_url(url, size);
    return;
  }
#endif
#ifdef CSN_INTEROP_PG
  if (strcmp(kind, "pg") == 0) {
    pg_store_url(url, size, NULL);
    return;
  }
#endif
#ifdef CSN_INTEROP_REDIS
  redis_store_url(url, size);
#endif
}

static const char *cluster_node_path(void) {
#ifdef CSN_INTEROP_MONGO
  if (strncmp(kind, "mongo", 5) == 0) return mongo_base;
#endif
#ifdef CSN_INTEROP_PG
  if (strcmp(kind, "pg") == 0) return pg_url;
#endif
#ifdef CSN_INTEROP_REDIS
  return redis_url;
#else
  return NULL;
#endif
}

/* The record just saved (check_stored / check_stored_pg, the demos and
 * Node in the server's default zone), and it is the only one. */
static void cluster_check(const char *label, const char *sid,
                          const char *members, int only) {
#ifdef CSN_INTEROP_MONGO
  if (strncmp(kind, "mongo", 5) == 0) {
    if (only) {
      if (mongo_count() != 1)
        fail_msg("%lld documents, want 1", mongo_count());
      check_ttl_index("after the cluster walk");
    } else {
      check_stored_mongo(label, sid, members);
    }
    return;
  }
#endif
#ifdef CSN_INTEROP_PG
  if (strcmp(kind, "pg") == 0) {
    if (only) {
      if (pg_count() != 1) fail_msg("%lld rows, want 1", pg_count());
    } else {
      check_stored_pg(label, sid, members, NULL);
    }
    return;
  }
#endif
#ifdef CSN_INTEROP_REDIS
  if (only)
    check_only_key(sid);
  else
    check_stored(label, sid, members);
#endif
}

static void demo_up(demo_proc *d) {
  char url[512], max_age[32];
  cluster_store_url(url, sizeof url);
  snprintf(max_age, sizeof max_age, "%d", MAX_AGE_MS);
  /* app.js's options: same secret, cookie name (connect.sid) and maxAge. */
  /* Secret and store URL in the environment, off the command line. */
  const char *args[] = {"--port", "0", "--threads", "2",
                        "--max-age", max_age, NULL};
  if (demo_proc_bin() == NULL)
    fail_msg("CSN_DEMO_BIN is not set (run through ctest)");
  if (demo_proc_start_env(d, args, SECRET, url, NULL, NULL) != 0)
    fail_msg("the demo did not start; it said: %s", d->line);
}

#define CLUSTER_INCS 30
#define CLUSTER_VIEWS 6

/* Round robin over demo 0, demo 1 and Node (from Node when node_first):
 * 30 x /inc?k=n, then 6 x / (the visit counter), one cookie jar. Every
 * answer is exact (the demo ends its bodies with a newline, app.js does
 * not), the session id never changes, and the stored record is the one
 * just written, with the right TTL (Redis) or expire (PostgreSQL). */
static void cluster(int node_first) {
  char base[3][64];
  demo_up(&demos[0]);
  demo_up(&demos[1]);
  assert_int_equal(node_start(&node, cluster_node_path()), 0);
  snprintf(base[0], sizeof base[0], "%s", demos[0].base);
  snprintf(base[1], sizeof base[1], "%s", demos[1].base);
  snprintf(base[2], sizeof base[2], "http://127.0.0.1:%d", node.port);
  static const char *const names[] = {"demo 1", "demo 2", "Node"};

  http_client *cl = http_client_new(1);
  char *first_sid = NULL;
  for (int i = 0; i < CLUSTER_INCS + CLUSTER_VIEWS; i++) {
    int who = (i + (node_first ? 2 : 0)) % 3;
    const char *nl = who == 2 ? "" : "\n";
    int views = i - CLUSTER_INCS + 1; /* the visit counter's phase: 1.. */
    char url[128], want[128], members[64], label[64];
    if (views <= 0) {
      snprintf(url, sizeof url, "%s/inc?k=n", base[who]);
      snprintf(want, sizeof want, "n: %d%s", i + 1, nl);
      snprintf(members, sizeof members, "\"n\":%d", i + 1);
    } else {
      snprintf(url, sizeof url, "%s/", base[who]);
      if (views == 1)
        snprintf(want, sizeof want, "%s%s", WELCOME, nl);
      else
        snprintf(want, sizeof want, "You've visited this page %d times%s",
                 views, nl);
      snprintf(members, sizeof members, "\"n\":%d,\"views\":%d",
               CLUSTER_INCS, views);
    }
    snprintf(label, sizeof label, "request %d (%s)", i + 1, names[who]);

    http_response resp;
    int rc = http_get(cl, url, NULL, &resp);
    if (rc != 0 || resp.status != 200 || strcmp(resp.body, want) != 0)
      fail_msg("%s %s: status %ld %s '%s', want '%s'", label, url,
               resp.status, resp.error, resp.body ? resp.body : "", want);
    http_response_free(&resp);

    char *cookie = http_client_cookie(cl, "connect.sid");
    assert_non_null(cookie);
    char *sid = http_cookie_sid(cookie, SECRET);
    free(cookie);
    assert_non_null(sid);
    if (first_sid == NULL) {
      first_sid = sid;
    } else {
      if (strcmp(sid, first_sid) != 0)
        fail_msg("%s: a new session %s (was %s)", label, sid, first_sid);
      free(sid);
    }
    cluster_check(label, first_sid, members, 0);
  }

  /* A demo reads the whole record back. */
  char url[128], want[128];
  http_response resp;
  snprintf(url, sizeof url, "%s/session", base[node_first ? 1 : 0]);
  assert_int_equal(http_get(cl, url, NULL, &resp), 0);
  snprintf(want, sizeof want, "\"n\":%d,\"views\":%d", CLUSTER_INCS,
           CLUSTER_VIEWS);
  if (resp.status != 200 || strstr(resp.body, want) == NULL)
    fail_msg("GET /session: status %ld '%s', want it to hold %s", resp.status,
             resp.body ? resp.body : "", want);
  http_response_free(&resp);
  cluster_check("the walk", first_sid, NULL, 1);

  free(first_sid);
  http_client_free(cl);
  node_stop(&node);
  /* A clean exit is part of the check. */
  assert_int_equal(demo_proc_stop(&demos[0]), 0);
  assert_int_equal(demo_proc_stop(&demos[1]), 0);
}

static void interop_cluster_demo_first(void **state) {
  (void)state;
  cluster(0);
}

static void interop_cluster_node_first(void **state) {
  (void)state;
  cluster(1);
}

#endif /* CSN_INTEROP_SERVER */

#ifdef CSN_INTEROP_REDIS
/* Delete this run's keys, never anything else (the server is shared),
 * without failing: a teardown must not jump. */
static void raw_clean_quiet(void) {
  char cursor[32] = "0";
  if (raw == NULL) return;
  do {
    redisReply *r = redisCommand(raw, "SCAN %s MATCH %s* COUNT 1000", cursor,
                                 prefix);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      fprintf(stderr, "cannot clean up the keys under %s\n", prefix);
      if (r) freeReplyObject(r);
      return;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    for (size_t i = 0; i < r->element[1]->elements; i++) {
      redisReply *d = redisCommand(raw, "DEL %s", r->element[1]->element[i]->str);
      if (d) freeReplyObject(d);
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
}
#endif /* CSN_INTEROP_REDIS */

#ifdef CSN_INTEROP_PG
/* ------------------------------------------------------------------------ */
/* PostgreSQL: the TimeZone of the connections                              */
/* ------------------------------------------------------------------------ */

/* Both sides in one zone other than UTC - the default of the role both
 * connect as (ALTER ROLE ... SET TimeZone; the C store takes the server's
 * default as connect-pg-simple does) - and Node's process in yet another
 * TZ: everything as in UTC. */
static void interop_pg_tokyo_c_first(void **state) {
  (void)state;
  zone_c = zone_node = "Asia/Tokyo";
  walk(1);
}

static void interop_pg_adak_node_first(void **state) {
  (void)state;
  zone_c = zone_node = "America/Adak";
  walk(0);
}

#define ZONE_EAST "Pacific/Kiritimati" /* UTC+14 */
#define ZONE_WEST "America/Adak"       /* UTC-10, -9 in summer */

/* connect-pg-simple's expire is a timestamp WITHOUT time zone: a writer
 * stores to_timestamp(E) as the wall clock of its connection's TimeZone,
 * and a reader compares that wall clock with to_timestamp(now) read in ITS
 * TimeZone. Between a +14 and a -10 connection that is a 24 h shift (23 h
 * in Adak's summer): a row written in the east looks 24 h younger in the
 * west, and one written in the west (1 h to live) looks 23 h expired in the
 * east. So "agree whatever the TimeZone" holds for any zone the two sides
 * share, not for two different ones - for two Node instances just as for
 * C and Node, which the second half shows. Here C connects as a role whose
 * default is +14, Node as one whose default is -10; the second Node app
 * sets +14 on its own connections (PG_TZ).
 *
 * The east server (east_url, in ZONE_EAST; C or a second Node app) and the
 * Node app in ZONE_WEST (west_url) on one cookie jar:
 *   east  new session, views 1; its expire read in the west is off by
 *         exactly the zones' offset difference at that instant (>= 23 h);
 *   west  finds it live: views 2, same id;
 *   east  finds nothing (expired 23 h ago for it): a new session and id,
 *         while the west's row is still there, untouched. */
static void east_west(http_client *cl, const char *east_url,
                      const char *west_url, const char *east_name,
                      csn_store *east_store) {
  char who[96];
  snprintf(who, sizeof who, "%s in " ZONE_EAST, east_name);
  char *sid = get_sid(cl, east_url, who, WELCOME);
  long long e = check_stored_pg(who, sid, "\"views\":1", ZONE_EAST);

  char tbl[128], sql[512], es[32];
  pg_table(tbl, sizeof tbl);
  pg_zone(ZONE_WEST);
  snprintf(sql, sizeof sql,
           "SELECT extract(epoch from expire::timestamptz)::bigint FROM %s "
           "WHERE sid = $1", tbl);
  const char *p1[] = {sid};
  PGresult *r = pg_q(sql, 1, p1);
  long long seen = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  snprintf(es, sizeof es, "%lld", e);
  const char *p2[] = {es, ZONE_EAST, ZONE_WEST};
  r = pg_q("SELECT extract(epoch from (to_timestamp($1::bigint) AT TIME ZONE"
           " $2) - (to_timestamp($1::bigint) AT TIME ZONE $3))::bigint",
           3, p2);
  long long diff = atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (diff < 23 * 3600) fail_msg("the zones are only %lld s apart", diff);
  if (seen - e != diff)
    fail_msg("the east's expire read in the west: %lld s off, want %lld",
             seen - e, diff);

  char *s2 = get_sid(cl, west_url, "Node in " ZONE_WEST,
                     "You've visited this page 2 times");
  assert_string_equal(s2, sid);
  check_stored_pg("Node in " ZONE_WEST, sid, "\"views\":2", ZONE_WEST);

  char *s3 = get_sid(cl, east_url, who, WELCOME);
  if (strcmp(s3, sid) == 0) fail_msg("%s kept the session's id", who);
  check_stored_pg("the west's save, after the east's", sid, "\"views\":2",
                  ZONE_WEST);
  if (east_store != NULL) {
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(csn_store_get(east_store, sid, &json, &len), CSN_ENOENT);
  }
  free(sid);
  free(s2);
  free(s3);
}

static void interop_pg_mixed_zones(void **state) {
  (void)state;
  zone_c = ZONE_EAST;
  zone_node = ZONE_WEST;
  pair p;
  pair_start(&p);
  char c_url[128], n_url[128], n2_url[128];
  http_server_url(p.srv, "/", c_url, sizeof c_url);
  snprintf(n_url, sizeof n_url, "http://127.0.0.1:%d/", node.port);
  http_client *cl = http_client_new(1);
  east_west(cl, c_url, n_url, "C", p.st);
  http_client_free(cl);

  /* The same with a second Node app in place of C (+14 by PG_TZ). */
  assert_int_equal(node_start_zone(&node2, pg_url, ZONE_EAST), 0);
  snprintf(n2_url, sizeof n2_url, "http://127.0.0.1:%d/", node2.port);
  cl = http_client_new(1);
  east_west(cl, n2_url, n_url, "a second Node app", NULL);
  http_client_free(cl);
  node_stop(&node2);
  pair_stop(&p);
}
#endif /* CSN_INTEROP_PG */

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static int fresh_root(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-interop-XXXXXX", tmp ? tmp : "/tmp");
#ifdef CSN_INTEROP_REDIS
  raw_clean_quiet(); /* what a crashed run with this pid left */
#endif
#ifdef CSN_INTEROP_PG
  zone_c = zone_node = NULL;
  c_url_extra = NULL;
  if (pgraw != NULL && pg_schema_reset(1) != 0) return -1;
#endif
#ifdef CSN_INTEROP_MONGO
  node_opens_first = 0;
  mongo_drop_quiet(); /* what a crashed run with this pid left */
#endif
  return mkdtemp(root) == NULL ? -1 : 0;
}

static int drop_root(void **state) {
  (void)state;
  node_stop(&node);
  node_stop(&node2);
#ifdef CSN_INTEROP_SERVER
  for (size_t i = 0; i < 2; i++)
    if (demo_proc_stop(&demos[i]) != 0)
      fprintf(stderr, "a demo did not stop cleanly\n");
#endif
#ifdef CSN_INTEROP_PG
  if (pgraw != NULL) pg_schema_reset(0);
#endif
#ifdef CSN_INTEROP_REDIS
  raw_clean_quiet();
#endif
#ifdef CSN_INTEROP_MONGO
  mongo_drop_quiet();
#endif
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}

static void interop_c_first(void **state) {
  (void)state;
  walk(1);
}

static void interop_node_first(void **state) {
  (void)state;
  walk(0);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr,
            "usage: %s file|file-secret|sqlite|redis|redis-cluster|pg|"
            "pg-cluster|mongo|mongo-object|mongo-cluster <node> <app.js>\n",
            argv[0]);
    return 2;
  }
  kind = argv[1];
  int cluster_mode = 0;
  if (strcmp(kind, "file-secret") == 0) {
    kind = "file";
    encrypted = 1;
  } else if (strcmp(kind, "redis-cluster") == 0) {
    kind = "redis";
    cluster_mode = 1;
  } else if (strcmp(kind, "pg-cluster") == 0) {
    kind = "pg";
    cluster_mode = 1;
  } else if (strcmp(kind, "mongo-cluster") == 0) {
    kind = "mongo";
    cluster_mode = 1;
  }
  node_bin = argv[2];
  app_js = argv[3];
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(kind, "redis") == 0) {
#ifdef CSN_INTEROP_REDIS
    redis_url = getenv("CSN_TEST_REDIS_URL");
    if (redis_url == NULL || *redis_url == '\0') {
      printf("SKIP: CSN_TEST_REDIS_URL is not set (scripts/services.sh)\n");
      return 77;
    }
    snprintf(prefix, sizeof prefix, "csnio%ld:", (long)getpid());
    if (raw_connect() != 0) return 1;
#else
    fprintf(stderr, "%s: built without the Redis store\n", argv[0]);
    return 2;
#endif
  }
  if (strcmp(kind, "pg") == 0) {
#ifdef CSN_INTEROP_PG
    pg_url = getenv("CSN_TEST_PG_URL");
    if (pg_url == NULL || *pg_url == '\0') {
      printf("SKIP: CSN_TEST_PG_URL is not set (scripts/services.sh)\n");
      return 77;
    }
    /* libpq takes a connection's TimeZone from PGTZ, node-postgres does
     * not: the cases set every zone themselves. */
    unsetenv("PGTZ");
    snprintf(pg_schema, sizeof pg_schema, "csnio_%ld", (long)getpid());
    pgraw = PQconnectdb(pg_url);
    if (PQstatus(pgraw) != CONNECTION_OK) {
      fprintf(stderr, "cannot connect to %s: %s", pg_url,
              PQerrorMessage(pgraw));
      PQfinish(pgraw);
      return 1;
    }
    PQclear(PQexec(pgraw, "SET client_min_messages = warning"));
#else
    fprintf(stderr, "%s: built without the PostgreSQL store\n", argv[0]);
    return 2;
#endif
  }
  if (strncmp(kind, "mongo", 5) == 0) {
#ifdef CSN_INTEROP_MONGO
    mongo_object = strcmp(kind, "mongo-object") == 0;
    mongo_url = getenv("CSN_TEST_MONGO_URL");
    if (mongo_url == NULL || *mongo_url == '\0') {
      printf("SKIP: CSN_TEST_MONGO_URL is not set (scripts/services.sh)\n");
      return 77;
    }
    if (mongo_parse_url() != 0) {
      fprintf(stderr, "cannot parse CSN_TEST_MONGO_URL\n");
      return 1;
    }
    snprintf(mongo_coll, sizeof mongo_coll, "csnio_%ld", (long)getpid());
    mongoc_init();
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(mongo_base, &err);
    if (uri != NULL) {
      /* Fail in seconds, not the driver's 30 s, when nothing answers. */
      mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                     5000);
      mraw = mongoc_client_new_from_uri_with_error(uri, &err);
      mongoc_uri_destroy(uri);
    }
    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    if (mraw == NULL ||
        !mongoc_client_command_simple(mraw, "admin", ping, NULL, NULL, &err)) {
      fprintf(stderr, "cannot reach the MongoDB server: %s\n", err.message);
      bson_destroy(ping);
      if (mraw != NULL) mongoc_client_destroy(mraw);
      mongoc_cleanup();
      return 1;
    }
    bson_destroy(ping);
#else
    fprintf(stderr, "%s: built without the MongoDB store\n", argv[0]);
    return 2;
#endif
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(interop_c_first, fresh_root, drop_root),
      cmocka_unit_test_setup_teardown(interop_node_first, fresh_root,
                                      drop_root),
      cmocka_unit_test_setup_teardown(interop_node_writes_survive_slow_c_save,
                                      fresh_root, drop_root),
  };
  int rc;
  if (cluster_mode) {
#ifdef CSN_INTEROP_SERVER
    const struct CMUnitTest ctests[] = {
        cmocka_unit_test_setup_teardown(interop_cluster_demo_first,
                                        fresh_root, drop_root),
        cmocka_unit_test_setup_teardown(interop_cluster_node_first,
                                        fresh_root, drop_root),
    };
    rc = cmocka_run_group_tests_name(
        strcmp(kind, "pg") == 0      ? "store_pg_interop_cluster"
        : strcmp(kind, "mongo") == 0 ? "store_mongo_interop_cluster"
                                     : "store_redis_interop_cluster",
        ctests, NULL, NULL);
#else
    rc = 2;
#endif
  } else if (strcmp(kind, "pg") == 0) {
#ifdef CSN_INTEROP_PG
    const struct CMUnitTest ptests[] = {
        tests[0], tests[1], tests[2],
        cmocka_unit_test_setup_teardown(interop_pg_tokyo_c_first, fresh_root,
                                        drop_root),
        cmocka_unit_test_setup_teardown(interop_pg_adak_node_first,
                                        fresh_root, drop_root),
        cmocka_unit_test_setup_teardown(interop_pg_mixed_zones, fresh_root,
                                        drop_root),
    };
    rc = cmocka_run_group_tests_name("store_pg_interop_node", ptests, NULL,
                                     NULL);
#else
    rc = 2;
#endif
  } else {
    char group[64];
    if (strcmp(kind, "mongo-object") == 0)
      snprintf(group, sizeof group, "store_mongo_interop_object");
    else
      snprintf(group, sizeof group, "store_%s_interop_node",
               encrypted ? "file_crypt" : kind);
    rc = cmocka_run_group_tests_name(group, tests, NULL, NULL);
  }
#ifdef CSN_INTEROP_REDIS
  if (raw != NULL) redisFree(raw);
#endif
#ifdef CSN_INTEROP_PG
  if (pgraw != NULL) PQfinish(pgraw);
#endif
#ifdef CSN_INTEROP_MONGO
  if (mraw != NULL) {
    mongoc_client_destroy(mraw);
    mongoc_cleanup();
  }
#endif
  return rc;
}
