/* test_store_redis.c - Redis store: the shared conformance suite, the
 * connect-redis format read back with a raw hiredis connection (key, value
 * bytes, TTL rule, touch = EXPIRE only, TOMBSTONE), SCAN enumeration with a
 * glob-laden prefix, URL parsing and what error messages leave out, a Unix
 * socket, the connection pool under more threads than connections,
 * compare-and-set across two store handles, and, on a private redis-server,
 * timeouts (SIGSTOP), a crash and a restart with AUTH and SELECT re-applied.
 *
 * The shared server comes from CSN_TEST_REDIS_URL (scripts/services.sh);
 * without it the test exits 77 (a skip, which CI counts as a failure).
 * Several tests run against that server at once (ctest -j): every key here
 * has a prefix with our pid, and nothing server-wide (FLUSHALL, CONFIG SET,
 * DEBUG SLEEP) is ever sent to it. What disturbs a server runs on one of
 * our own (tests/redis_proc.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "csn/csn.h"
#include "csn/csn_store_redis.h"
#include "csn/csn_stores.h"
#include "redis_proc.h"
#include "store_conformance.h"
#include "test_clock.h"

static const char REC[] =
    "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00."
    "000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":3}";

/* The shared server. */
static char shared_url[256]; /* redis://host:port/db, no query */
static char shared_host[64];
static int shared_port, shared_db;
static char run[48]; /* "csntest:<pid>:": every key we write starts so */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* A raw connection, as Node (or redis-cli) would see the data. */
static redisContext *raw_open(const char *host, int port, const char *pw,
                              int db) {
  struct timeval tv = {5, 0};
  redisContext *c = redisConnectWithTimeout(host, port, tv);
  assert_non_null(c);
  if (c->err) fail_msg("raw connect %s:%d: %s", host, port, c->errstr);
  redisSetTimeout(c, tv);
  if (pw != NULL) {
    redisReply *r = redisCommand(c, "AUTH %s", pw);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
  }
  redisReply *r = redisCommand(c, "SELECT %d", db);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  return c;
}

static redisContext *raw_shared(void) {
  return raw_open(shared_host, shared_port, NULL, shared_db);
}

static redisReply *raw(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (r == NULL) fail_msg("raw command: %s", c->errstr);
  return r;
}

/* An integer reply (TTL, PTTL, EXISTS, DBSIZE...). */
static long long raw_int(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (r == NULL) fail_msg("raw command: %s", c->errstr);
  if (r->type != REDIS_REPLY_INTEGER) fail_msg("not an integer: %d", r->type);
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

/* GET key: the value must be `want` byte for byte (NULL: no key). */
static void raw_get_eq(redisContext *c, const char *key, const char *want) {
  redisReply *r = raw(c, "GET %s", key);
  if (want == NULL) {
    assert_int_equal(r->type, REDIS_REPLY_NIL);
  } else {
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, strlen(want));
    assert_memory_equal(r->str, want, r->len);
  }
  freeReplyObject(r);
}

/* Delete every key starting with prefix (glob characters escaped). */
static void raw_clear(redisContext *c, const char *prefix) {
  char match[256], *m = match;
  for (const char *p = prefix; *p; p++) {
    if (strchr("*?[]\\", *p)) *m++ = '\\';
    *m++ = *p;
  }
  *m++ = '*';
  *m = '\0';
  char cursor[32] = "0";
  do {
    redisReply *r = raw(c, "SCAN %s MATCH %s COUNT 1000", cursor, match);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    for (size_t i = 0; i < r->element[1]->elements; i++)
      freeReplyObject(raw(c, "DEL %b", r->element[1]->element[i]->str,
                          r->element[1]->element[i]->len));
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
}

/* A test's end on the raw connection: its keys deleted, c closed. */
static void raw_done(redisContext *c, const char *prefix) {
  raw_clear(c, prefix);
  redisFree(c);
}

/* A prefix of our own for one test: "csntest:<pid>:<name>:". */
static void test_prefix(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s%s:", run, name);
}

static csn_store *open_url(const char *url) {
  char err[512] = "";
  csn_store *st = NULL;
  int rc = csn_store_redis_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open: %s (%s)", csn_strerror(rc), err);
  return st;
}

/* The shared server with a query ("prefix=...&ttl=..."). */
static csn_store *open_shared(const char *query) {
  char url[768];
  snprintf(url, sizeof url, "%s%s%s", shared_url, query ? "?" : "",
           query ? query : "");
  return open_url(url);
}

/* The shared server, keys under prefix p; more: further query ("&ttl=5"),
 * or "". */
static csn_store *open_prefixed(const char *p, const char *more) {
  char q[256];
  snprintf(q, sizeof q, "prefix=%s%s", p, more);
  return open_shared(q);
}

static csn_store *new_shared(csn_redis_options *o) {
  char err[512] = "";
  csn_store *st = NULL;
  o->host = shared_host;
  o->port = shared_port;
  o->db = shared_db;
  int rc = csn_store_redis_new(o, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("new: %s (%s)", csn_strerror(rc), err);
  return st;
}

static int open_rc(const char *url, char *err, size_t n) {
  csn_store *st = NULL;
  err[0] = '\0';
  int rc = csn_store_redis_open(url, &st, err, n);
  csn_store_free(st);
  return rc;
}

/* The store's get of id must answer want, byte for byte. */
static void get_eq(csn_store *st, const char *id, const char *want) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, id, &json, &len);
  if (rc != CSN_OK || len != strlen(want) || strcmp(json, want) != 0)
    fail_msg("get %s: %s, %zu bytes %s, want %s", id, csn_err_name(rc), len,
             json != NULL ? json : "(none)", want);
  csn_free(json);
}

/* ------------------------------------------------------------------------ */
/* Conformance                                                              */
/* ------------------------------------------------------------------------ */

static char conf_prefix[96];

static csn_store *conf_open(void *ud) {
  (void)ud;
  return open_prefixed(conf_prefix, "&pool=8");
}

/* A second handle on the same prefix (conformance's cross-handle tests). */
static csn_store *conf_open_again(void *ud) { return conf_open(ud); }

static void conf_reset(void *ud) {
  (void)ud;
  raw_done(raw_shared(), conf_prefix);
}

/* ------------------------------------------------------------------------ */
/* Format                                                                   */
/* ------------------------------------------------------------------------ */

static void store_redis_format(void **state) {
  (void)state;
  char p[96], key[160];
  test_prefix(p, sizeof p, "fmt");
  csn_store *st = open_prefixed(p, "");
  redisContext *c = raw_shared();

  /* key = prefix + id, value = the JSON text exactly. */
  snprintf(key, sizeof key, "%sa1", p);
  int64_t now = wall_ms();
  assert_int_equal(csn_store_set(st, "a1", REC, strlen(REC), now + 60500),
                   CSN_OK);
  raw_get_eq(c, key, REC);
  long long ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl == 60 || ttl == 61);

  /* TTL = ceil: 1.2 s left is EX 2 (floor or round would give 1). */
  assert_int_equal(
      csn_store_set(st, "a1", REC, strlen(REC), wall_ms() + 1200), CSN_OK);
  long long pttl = raw_int(c, "PTTL %s", key);
  assert_true(pttl > 1500 && pttl <= 2000);

  /* A browser-session cookie: the ttl option, 86400 s by default. */
  assert_int_equal(csn_store_set(st, "a1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  pttl = raw_int(c, "PTTL %s", key);
  assert_true(pttl > 86399000 && pttl <= 86400000);

  /* An expiry in the past deletes the key. */
  assert_int_equal(csn_store_set(st, "a1", REC, strlen(REC), wall_ms() - 1),
                   CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);

  /* get reads what Node wrote, byte for byte; destroy is DEL. */
  const char *node = "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null},"
                     "\"n\":0.1, \"s\":\"\\u00e9\"}";
  freeReplyObject(raw(c, "SET %s %s EX 100", key, node));
  get_eq(st, "a1", node);
  assert_int_equal(csn_store_destroy(st, "a1"), CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  assert_int_equal(csn_store_destroy(st, "a1"), CSN_OK);

  /* touch: EXPIRE only, the stored text is not rewritten. */
  freeReplyObject(raw(c, "SET %s %s EX 10", key, node));
  assert_int_equal(
      csn_store_touch(st, "a1", REC, strlen(REC), wall_ms() + 3600000),
      CSN_OK);
  raw_get_eq(c, key, node);
  ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 3599 && ttl <= 3600);
  assert_int_equal(csn_store_touch(st, "a1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 86399 && ttl <= 86400);
  /* ...never creates a key, and deletes one whose cookie has expired. */
  snprintf(key, sizeof key, "%snone", p);
  assert_int_equal(
      csn_store_touch(st, "none", REC, strlen(REC), wall_ms() + 3600000),
      CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  snprintf(key, sizeof key, "%sa1", p);
  assert_int_equal(csn_store_touch(st, "a1", REC, strlen(REC), wall_ms() - 1),
                   CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  csn_store_free(st);

  /* The ttl option for browser-session cookies. */
  st = open_prefixed(p, "&ttl=600");
  assert_int_equal(csn_store_set(st, "a1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 599 && ttl <= 600);
  csn_store_free(st);

  /* disable_ttl: SET without EX; touch does nothing; past expiry: DEL. */
  st = open_prefixed(p, "&disable_ttl=true");
  assert_int_equal(
      csn_store_set(st, "a1", REC, strlen(REC), wall_ms() + 60000), CSN_OK);
  assert_int_equal(raw_int(c, "TTL %s", key), -1);
  raw_get_eq(c, key, REC);
  assert_int_equal(csn_store_touch(st, "a1", REC, strlen(REC), wall_ms() - 1),
                   CSN_OK);
  assert_int_equal(raw_int(c, "TTL %s", key), -1);
  /* cas under disable_ttl writes without expiry too. */
  assert_int_equal(csn_store_cas(st, "a1", REC, strlen(REC), node,
                                 strlen(node), wall_ms() + 60000),
                   CSN_OK);
  assert_int_equal(raw_int(c, "TTL %s", key), -1);
  raw_get_eq(c, key, node);
  assert_int_equal(csn_store_set(st, "a1", REC, strlen(REC), wall_ms() - 1),
                   CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  csn_store_free(st);

  /* disable_touch: the TTL stays as set. */
  st = open_prefixed(p, "&disable_touch=1");
  assert_int_equal(
      csn_store_set(st, "a1", REC, strlen(REC), wall_ms() + 60000), CSN_OK);
  assert_int_equal(
      csn_store_touch(st, "a1", REC, strlen(REC), wall_ms() + 3600000),
      CSN_OK);
  ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 59 && ttl <= 60);
  /* cas writes with EX like set. */
  assert_int_equal(csn_store_cas(st, "a1", REC, strlen(REC), node,
                                 strlen(node), wall_ms() + 1200),
                   CSN_OK);
  pttl = raw_int(c, "PTTL %s", key);
  assert_true(pttl > 1500 && pttl <= 2000);
  /* cas with an expired cookie deletes, as set does. */
  assert_int_equal(csn_store_cas(st, "a1", node, strlen(node), REC,
                                 strlen(REC), wall_ms() - 1),
                   CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  csn_store_free(st);
  raw_done(c, p);
}

/* set id, read key raw (the record), destroy id, key gone; then free st. */
static void set_destroy_free(csn_store *st, redisContext *c, const char *id,
                             const char *key) {
  assert_int_equal(
      csn_store_set(st, id, REC, strlen(REC), wall_ms() + 60000), CSN_OK);
  raw_get_eq(c, key, REC);
  assert_int_equal(csn_store_destroy(st, id), CSN_OK);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  csn_store_free(st);
}

/* The default prefix "sess:", and "" honoured. Unique ids: the shared
 * server may hold other tests' sess: keys. */
static void store_redis_prefix_default_and_empty(void **state) {
  (void)state;
  char id[64], key[96];
  redisContext *c = raw_shared();
  snprintf(id, sizeof id, "csntest-%ld-dflt", (long)getpid());
  snprintf(key, sizeof key, "sess:%s", id);
  set_destroy_free(open_shared(NULL), c, id, key);

  snprintf(id, sizeof id, "csntest-%ld-bare", (long)getpid());
  set_destroy_free(open_prefixed("", ""), c, id, id);
  redisFree(c);
}

/* connect-redis 6.1.0/6.1.2 left "TOMBSTONE" values: no session. */
static void store_redis_tombstone(void **state) {
  (void)state;
  char p[96], key[160];
  test_prefix(p, sizeof p, "tomb");
  snprintf(key, sizeof key, "%sgone", p);
  csn_store *st = open_prefixed(p, "");
  redisContext *c = raw_shared();
  freeReplyObject(raw(c, "SET %s TOMBSTONE EX 300", key));
  char *json = (char *)"untouched";
  size_t len = 0;
  assert_int_equal(csn_store_get(st, "gone", &json, &len), CSN_ENOENT);
  assert_int_equal(csn_store_cas(st, "gone", "TOMBSTONE", 9, REC, strlen(REC),
                                 wall_ms() + 60000),
                   CSN_ENOENT);
  raw_get_eq(c, key, "TOMBSTONE");
  raw_done(c, p);
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* SCAN: length, all, clear                                                 */
/* ------------------------------------------------------------------------ */

#define SCAN_KEYS 250

static void store_redis_scan(void **state) {
  (void)state;
  char base[96], p[128], other[160], sibling[160], rec[64], id[16];
  test_prefix(base, sizeof base, "scan");
  /* Glob characters in the prefix must match literally: unescaped, "g[ab]"
   * would also match the sibling keys below. */
  snprintf(p, sizeof p, "%sg[ab]*?\\:", base);
  snprintf(sibling, sizeof sibling, "%sga-sibling", base);
  snprintf(other, sizeof other, "%sother:k1", base);
  redisContext *c = raw_shared();
  freeReplyObject(raw(c, "SET %s x EX 300", sibling));
  freeReplyObject(raw(c, "SET %s x EX 300", other));

  csn_redis_options o;
  memset(&o, 0, sizeof o);
  o.prefix = p;
  o.scan_count = 10;
  o.pool_size = 1;
  csn_store *st = new_shared(&o);
  int64_t exp = wall_ms() + 300000;
  for (int i = 0; i < SCAN_KEYS; i++) {
    snprintf(id, sizeof id, "k%d", i);
    snprintf(rec, sizeof rec, "{\"i\":%d}", i);
    assert_int_equal(csn_store_set(st, id, rec, strlen(rec), exp), CSN_OK);
  }
  /* A TOMBSTONE is no session for all(). */
  char tkey[200];
  snprintf(tkey, sizeof tkey, "%stomb", p);
  freeReplyObject(raw(c, "SET %s TOMBSTONE EX 300", tkey));
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, SCAN_KEYS + 1); /* length counts keys */
  freeReplyObject(raw(c, "DEL %s", tkey));
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, SCAN_KEYS);
  freeReplyObject(raw(c, "SET %s TOMBSTONE EX 300", tkey));
  /* Nor is a key of another type: all() skips it instead of failing. */
  char hkey[200];
  snprintf(hkey, sizeof hkey, "%shash", p);
  freeReplyObject(raw(c, "HSET %s f v", hkey));

  /* Every key once, byte for byte, each read back from inside the
   * callback (no connection is held then, even with pool=1); a non-zero
   * return stops the walk. */
  csn_conformance_walk(st, SCAN_KEYS, "", 1, 7);

  size_t removed = 99;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 0); /* Redis expires keys itself */
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  assert_int_equal(raw_int(c, "EXISTS %s", tkey), 0);
  assert_int_equal(raw_int(c, "EXISTS %s", hkey), 0);
  /* Keys with another prefix survive. */
  assert_int_equal(raw_int(c, "EXISTS %s", sibling), 1);
  assert_int_equal(raw_int(c, "EXISTS %s", other), 1);
  csn_store_free(st);
  raw_done(c, base);
}

/* ------------------------------------------------------------------------ */
/* URLs and messages                                                        */
/* ------------------------------------------------------------------------ */

static void store_redis_url_good(void **state) {
  (void)state;
  char url[512];
  csn_store *st;
  snprintf(url, sizeof url,
           "%s?prefix=%su%%3A&ttl=5&disable_touch=true&disable_ttl=0&"
           "scan_count=7&connect_timeout=500&timeout=500&pool=3",
           shared_url, run);
  st = open_url(url);
  assert_string_equal(csn_store_name(st), "redis");
  assert_int_equal(csn_store_has_cas(st), 1);
  assert_int_equal(
      csn_store_set(st, "x", REC, strlen(REC), CSN_TIME_NONE), CSN_OK);
  redisContext *c = raw_shared();
  char key[128];
  snprintf(key, sizeof key, "%su:x", run); /* %3A decoded */
  long long ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 4 && ttl <= 5);
  freeReplyObject(raw(c, "DEL %s", key));
  redisFree(c);
  csn_store_free(st);

  /* No db path, a trailing '/', a name, and the csn_store_open() route. */
  snprintf(url, sizeof url, "redis://%s:%d", shared_host, shared_port);
  csn_store_free(open_url(url));
  snprintf(url, sizeof url, "redis://%s:%d/", shared_host, shared_port);
  csn_store_free(open_url(url));
  snprintf(url, sizeof url, "redis://localhost:%d/%d", shared_port,
           shared_db);
  csn_store_free(open_url(url));
  assert_int_equal(csn_stores_register_all(), CSN_OK);
  char err[256];
  st = NULL;
  assert_int_equal(csn_store_open(shared_url, &st, err, sizeof err), CSN_OK);
  assert_string_equal(csn_store_name(st), "redis");
  csn_store_free(st);
}

static void store_redis_url_bad(void **state) {
  (void)state;
  char url[512], err[512];
  struct {
    const char *fmt; /* %s host, %d port */
    int rc;
    const char *needle;
  } bad[] = {
      /* %1$s the host, %2$d the port */
      {"redis://%1$s:%2$d/0?bogus=1", CSN_EINVAL, "bogus"},
      {"redis://%1$s:%2$d/0?pool=0", CSN_EINVAL, "pool"},
      {"redis://%1$s:%2$d/0?timeout=-5", CSN_EINVAL, "timeout"},
      {"redis://%1$s:%2$d/0?disable_ttl=maybe", CSN_EINVAL, "disable_ttl"},
      {"redis://%1$s:%2$d/0?ttl=1&ttl=2", CSN_EINVAL, "ttl"},
      {"redis://%1$s:%2$d/0?db=1", CSN_EINVAL, "db"}, /* unix:// only */
      {"redis://%1$s:%2$d/0?password=x", CSN_EINVAL, "password"},
      {"redis://%1$s:99999/0", CSN_EINVAL, "port"},
      {"redis://%1$s:0/0", CSN_EINVAL, "port"},
      {"redis://%1$s:%2$dx/0", CSN_EINVAL, "port"},
      {"redis://%1$s:/0", CSN_EINVAL, "port"},
      {"redis://%1$s:%2$d/x", CSN_EINVAL, "database"},
      {"redis://%1$s:%2$d/-1", CSN_EINVAL, "database"},
      {"redis://user@%1$s:%2$d/0", CSN_EINVAL, "password"},
      {"redis://[::1:%2$d/0", CSN_EINVAL, "IPv6"},
      {"redis://[::1]x:%2$d/0", CSN_EINVAL, "IPv6"},
      {"rediss://%1$s:%2$d/0", CSN_ENOTSUP, "TLS"},
      {"rediss://:pw@%1$s:%2$d/0", CSN_ENOTSUP, "not supported by this build"},
      {"http://%1$s:%2$d/0", CSN_EINVAL, "redis://"},
      {"unix://", CSN_EINVAL, "socket path"},
      {"unix://relative/r.sock", CSN_EINVAL, "socket path"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(url, sizeof url, bad[i].fmt, shared_host, shared_port);
    int rc = open_rc(url, err, sizeof err);
    if (rc != bad[i].rc || strstr(err, bad[i].needle) == NULL)
      fail_msg("%s: %s (%s), want %s with '%s'", url, csn_err_name(rc), err,
               csn_err_name(bad[i].rc), bad[i].needle);
    assert_string_equal(csn_last_error(), err);
  }
  /* csn_store_redis_new checks its options too. */
  csn_redis_options o;
  csn_store *st = NULL;
  memset(&o, 0, sizeof o);
  o.port = 70000;
  assert_int_equal(csn_store_redis_new(&o, &st, err, sizeof err), CSN_EINVAL);
  o.port = 0;
  o.pool_size = 5000;
  assert_int_equal(csn_store_redis_new(&o, &st, err, sizeof err), CSN_EINVAL);
  o.pool_size = 0;
  o.username = "u";
  assert_int_equal(csn_store_redis_new(&o, &st, err, sizeof err), CSN_EINVAL);
  assert_null(st);
  assert_int_equal(csn_store_redis_new(&o, NULL, NULL, 0), CSN_EINVAL);
}

/* Nothing listens: CSN_EIO at open, naming Redis and where, quickly. */
static void store_redis_unreachable(void **state) {
  (void)state;
  char url[256], err[512];
  snprintf(url, sizeof url, "redis://127.0.0.1:1/0?connect_timeout=500");
  int64_t t0 = mono_ms();
  assert_int_equal(open_rc(url, err, sizeof err), CSN_EIO);
  assert_true(mono_ms() - t0 < 2000);
  assert_non_null(strstr(err, "redis 127.0.0.1:1: connect: "));
  /* An IPv6 literal parses: the error names it as [addr]:port. */
  snprintf(url, sizeof url, "redis://[::1]:1/0?connect_timeout=500");
  int rc = open_rc(url, err, sizeof err);
  assert_int_equal(rc, CSN_EIO);
  assert_non_null(strstr(err, "[::1]:1"));
}

/* ------------------------------------------------------------------------ */
/* Pool and compare-and-set across handles                                  */
/* ------------------------------------------------------------------------ */

#define POOL_THREADS 8
#define POOL_ROUNDS 150

/* The shared workers (store_conformance.c), 8 threads on a pool of 2. */
static void store_redis_pool_threads(void **state) {
  (void)state;
  char p[96];
  test_prefix(p, sizeof p, "pool");
  csn_store *st = open_prefixed(p, "&pool=2");
  csn_conformance_threads(st, POOL_THREADS, POOL_ROUNDS);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  csn_store_free(st);
}

static void store_redis_cas_two_handles(void **state) {
  (void)state;
  char p[96], key[160];
  test_prefix(p, sizeof p, "cas2");
  csn_store *a = open_prefixed(p, "&pool=2");
  csn_store *b = open_prefixed(p, "&pool=2");
  /* Two threads per handle increment a counter by get + cas, retrying on
   * conflicts (store_conformance.c): none is lost... */
  char want[64];
  csn_conformance_cas_counter(a, b, "ctr", wall_ms() + 300000, want,
                              sizeof want);
  /* ...as the key itself shows. */
  redisContext *c = raw_shared();
  snprintf(key, sizeof key, "%sctr", p);
  raw_get_eq(c, key, want);
  /* The script survives SCRIPT FLUSH? Not on a shared server: the NOSCRIPT
   * fallback is tested after a restart, on our own server. */
  raw_done(c, p);
  csn_store_free(a);
  csn_store_free(b);
}

/* ------------------------------------------------------------------------ */
/* A private server: passwords, Unix socket, timeouts, restart              */
/* ------------------------------------------------------------------------ */

#define PW "s3cr3t@Pass"    /* as the server knows it */
#define PW_URL "s3cr3t%%40Pass" /* in a URL (a printf format) */

static redis_proc srv;
static char sock_dir[64], sock_path[96];

static int private_setup(void **state) {
  (void)state;
  snprintf(sock_dir, sizeof sock_dir, "/tmp/csn-rsock-XXXXXX");
  if (mkdtemp(sock_dir) == NULL) return -1;
  snprintf(sock_path, sizeof sock_path, "%s/r.sock", sock_dir);
  const char *extra[] = {"--appendonly", "no", "--unixsocket", sock_path,
                         "--unixsocketperm", "700", NULL};
  if (redis_proc_start(&srv, extra, PW) != 0) {
    print_error("redis-server: %s\n", srv.err);
    return -1;
  }
  return 0;
}

static int private_teardown(void **state) {
  (void)state;
  redis_proc_cleanup(&srv);
  unlink(sock_path);
  rmdir(sock_dir);
  return 0;
}

/* The private server, with the right password, in db `db`. */
static csn_store *open_private(int db, const char *query) {
  char url[512];
  snprintf(url, sizeof url, "redis://:" PW_URL "@127.0.0.1:%u/%d?%s",
           srv.port, db, query);
  return open_url(url);
}

static void store_redis_auth(void **state) {
  (void)state;
  char url[512], err[512];
  /* A wrong password: refused at open, and no message shows it. */
  snprintf(url, sizeof url, "redis://:wr0ng%%40Secret@127.0.0.1:%u/0",
           srv.port);
  int rc = open_rc(url, err, sizeof err);
  assert_int_equal(rc, CSN_ESTORE);
  assert_non_null(strstr(err, "AUTH"));
  assert_non_null(strstr(err, "redis 127.0.0.1:"));
  assert_null(strstr(err, "wr0ng"));
  assert_null(strstr(csn_last_error(), "wr0ng"));
  /* Nor with a user name (ACL form), nor a password with no server one. */
  snprintf(url, sizeof url, "redis://default:wr0ng%%40Secret@127.0.0.1:%u",
           srv.port);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_ESTORE);
  assert_null(strstr(err, "wr0ng"));
  assert_null(strstr(csn_last_error(), "wr0ng"));
  /* No password at all: the first command is refused (NOAUTH). */
  snprintf(url, sizeof url, "redis://127.0.0.1:%u/0", srv.port);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_ESTORE);
  assert_non_null(strstr(err, "NOAUTH"));
  /* A password with a bad escape: EINVAL, value not echoed. */
  snprintf(url, sizeof url, "redis://:wr0ng%%zz@127.0.0.1:%u/0", srv.port);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_EINVAL);
  assert_null(strstr(err, "wr0ng"));

  /* The right one, percent-decoded; with and without a user name; db 2. */
  csn_store *st = open_private(2, "prefix=a:");
  assert_int_equal(csn_store_set(st, "k", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  csn_store_free(st);
  snprintf(url, sizeof url,
           "redis://default:" PW_URL "@127.0.0.1:%u/2?prefix=b:", srv.port);
  st = open_url(url);
  assert_int_equal(csn_store_set(st, "k", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  csn_store_free(st);
  redisContext *c = raw_open("127.0.0.1", (int)srv.port, PW, 2);
  raw_get_eq(c, "a:k", REC);
  raw_get_eq(c, "b:k", REC);
  freeReplyObject(raw(c, "SELECT 0"));
  raw_get_eq(c, "a:k", NULL);
  redisFree(c);
}

static void store_redis_unix_socket(void **state) {
  (void)state;
  char url[512], err[512];
  snprintf(url, sizeof url,
           "unix://%s?db=3&password=" PW_URL "&prefix=u:&pool=2", sock_path);
  csn_store *st = open_url(url);
  assert_int_equal(
      csn_store_set(st, "k", REC, strlen(REC), wall_ms() + 60000), CSN_OK);
  get_eq(st, "k", REC);
  csn_store_free(st);
  snprintf(url, sizeof url,
           "redis+unix://%s?db=3&password=" PW_URL "&prefix=v:", sock_path);
  st = open_url(url);
  assert_int_equal(
      csn_store_set(st, "k", REC, strlen(REC), wall_ms() + 60000), CSN_OK);
  csn_store_free(st);
  redisContext *c = raw_open("127.0.0.1", (int)srv.port, PW, 3);
  raw_get_eq(c, "u:k", REC);
  raw_get_eq(c, "v:k", REC);
  redisFree(c);
  /* A socket that is not there: EIO naming the path; a wrong password is
   * not echoed. */
  snprintf(url, sizeof url, "unix://%s.missing", sock_path);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_EIO);
  assert_non_null(strstr(err, ".missing"));
  snprintf(url, sizeof url, "unix://%s?password=wr0ngpw", sock_path);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_ESTORE);
  assert_null(strstr(err, "wr0ngpw"));
}

typedef struct slow_op {
  csn_store *st;
  int rc;
  int64_t ms;
} slow_op;

static void *slow_get(void *arg) {
  slow_op *o = arg;
  char *json = NULL;
  size_t len;
  int64_t t0 = mono_ms();
  o->rc = csn_store_get(o->st, "k", &json, &len);
  o->ms = mono_ms() - t0;
  csn_free(json);
  return NULL;
}

/* A frozen server: every call ends within about the timeout with
 * CSN_ETIMEDOUT, including one waiting for the only connection; after
 * SIGCONT the store works again. */
static void store_redis_timeout(void **state) {
  (void)state;
  csn_store *st =
      open_private(1, "prefix=t:&timeout=300&connect_timeout=300&pool=1");
  assert_int_equal(
      csn_store_set(st, "k", REC, strlen(REC), wall_ms() + 60000), CSN_OK);
  assert_int_equal(redis_proc_freeze(&srv), 0);
  slow_op a = {st, 0, 0}, b = {st, 0, 0};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, slow_get, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, slow_get, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  assert_int_equal(a.rc, CSN_ETIMEDOUT);
  assert_int_equal(b.rc, CSN_ETIMEDOUT);
  /* One waits for the command, the other for the connection, then maybe
   * its own connect (300 ms each): well under 2 s either way. */
  assert_true(a.ms < 2000 && b.ms < 2000);
  int64_t t0 = mono_ms();
  int rc = csn_store_set(st, "k", REC, strlen(REC), wall_ms() + 60000);
  assert_int_equal(rc, CSN_ETIMEDOUT);
  assert_true(mono_ms() - t0 < 2000);
  const char *msg = csn_store_errmsg(st);
  assert_non_null(strstr(msg, "redis 127.0.0.1:"));
  assert_null(strstr(msg, "t:k"));
  assert_null(strstr(msg, "s3cr3t"));
  assert_int_equal(redis_proc_thaw(&srv), 0);
  get_eq(st, "k", REC);
  csn_store_free(st);
}

/* Large writes while the server is killed: EPIPE, never SIGPIPE (the test
 * runs with SIGPIPE's default action, which would kill it). */
static void *big_writer(void *arg) {
  csn_store *st = arg;
  size_t n = 512 * 1024;
  char *big = malloc(n + 32);
  if (big == NULL) return NULL;
  memset(big, 'x', n + 32);
  memcpy(big, "{\"cookie\":{},\"b\":\"", 18);
  memcpy(big + n + 29, "\"}", 3);
  for (int i = 0; i < 60; i++)
    (void)csn_store_set(st, "big", big, n + 31, wall_ms() + 60000);
  free(big);
  return NULL;
}

/* kill -9 and restart on the same port: the first operation after the
 * restart succeeds, with AUTH and SELECT 3 applied to the new connection
 * (checked with a raw connection), and cas reloads its script (NOSCRIPT
 * then EVAL). While the server is down, calls fail fast with CSN_EIO. */
static void store_redis_restart(void **state) {
  (void)state;
  csn_store *st = open_private(
      3, "prefix=r:&timeout=2000&connect_timeout=1000&pool=4");
  assert_int_equal(
      csn_store_set(st, "k", REC, strlen(REC), wall_ms() + 60000), CSN_OK);

  pthread_t tw;
  assert_int_equal(pthread_create(&tw, NULL, big_writer, st), 0);
  sleep_ms(50);
  assert_int_equal(redis_proc_crash(&srv), 0);
  pthread_join(tw, NULL);
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, NULL, &mask);
  assert_int_equal(sigismember(&mask, SIGPIPE), 0); /* mask restored */

  char *json = NULL;
  size_t len;
  int64_t t0 = mono_ms();
  assert_int_equal(csn_store_get(st, "k", &json, &len), CSN_EIO);
  assert_true(mono_ms() - t0 < 1500);
  const char *msg = csn_store_errmsg(st);
  assert_non_null(strstr(msg, "redis 127.0.0.1:"));
  assert_null(strstr(msg, "s3cr3t"));

  /* Idle connections go stale across the restart: open a few first. */
  assert_int_equal(redis_proc_restart(&srv), 0);
  {
    slow_op ops[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
      ops[i].st = st;
      assert_int_equal(pthread_create(&th[i], NULL, slow_get, &ops[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      assert_int_equal(ops[i].rc, CSN_ENOENT); /* no AOF: data is gone */
    }
  }
  assert_int_equal(redis_proc_crash(&srv), 0);
  assert_int_equal(redis_proc_restart(&srv), 0);
  /* No call in between: every pooled connection is dead. The first call
   * is a cas, which is never replayed: the dead connections must be found
   * before anything is sent. The script is gone with the old server
   * (NOSCRIPT, then EVAL). */
  redisContext *c = raw_open("127.0.0.1", (int)srv.port, PW, 3);
  freeReplyObject(raw(c, "SET r:k %s EX 60", REC));
  const char *next = "{\"cookie\":{},\"after\":\"restart\"}";
  assert_int_equal(csn_store_cas(st, "k", REC, strlen(REC), next,
                                 strlen(next), wall_ms() + 60000),
                   CSN_OK);
  raw_get_eq(c, "r:k", next);
  assert_int_equal(redis_proc_crash(&srv), 0);
  assert_int_equal(redis_proc_restart(&srv), 0);
  redisFree(c);
  /* And a set, after the same; written to db 3 with AUTH re-applied. */
  assert_int_equal(
      csn_store_set(st, "k", next, strlen(next), wall_ms() + 60000), CSN_OK);
  c = raw_open("127.0.0.1", (int)srv.port, PW, 3);
  raw_get_eq(c, "r:k", next);
  freeReplyObject(raw(c, "SELECT 0"));
  raw_get_eq(c, "r:k", NULL);
  redisFree(c);
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */

int main(void) {
  const char *url = getenv("CSN_TEST_REDIS_URL");
  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "store_redis: CSN_TEST_REDIS_URL is not set; run it "
                    "with scripts/services.sh run ctest ... (skipped)\n");
    return 77;
  }
  if (sscanf(url, "redis://%63[^:/]:%d/%d", shared_host, &shared_port,
             &shared_db) < 2) {
    fprintf(stderr, "store_redis: cannot parse CSN_TEST_REDIS_URL %s\n", url);
    return 1;
  }
  snprintf(shared_url, sizeof shared_url, "redis://%s:%d/%d", shared_host,
           shared_port, shared_db);
  snprintf(run, sizeof run, "csntest:%ld:", (long)getpid());
  snprintf(conf_prefix, sizeof conf_prefix, "%sconf:", run);
  /* A stray SIGPIPE must kill us: the store is responsible for its own. */
  signal(SIGPIPE, SIG_DFL);

  csn_conformance conf;
  memset(&conf, 0, sizeof conf);
  conf.open = conf_open;
  conf.open_again = conf_open_again;
  conf.reset = conf_reset;
  conf.cas = 1;
  conf.touch_expiry_only = 1;
  int failed = csn_conformance_run("store_redis_conformance", &conf);
  conf_reset(NULL);

  const struct CMUnitTest shared_tests[] = {
      cmocka_unit_test(store_redis_format),
      cmocka_unit_test(store_redis_prefix_default_and_empty),
      cmocka_unit_test(store_redis_tombstone),
      cmocka_unit_test(store_redis_scan),
      cmocka_unit_test(store_redis_url_good),
      cmocka_unit_test(store_redis_url_bad),
      cmocka_unit_test(store_redis_unreachable),
      cmocka_unit_test(store_redis_pool_threads),
      cmocka_unit_test(store_redis_cas_two_handles),
  };
  failed += cmocka_run_group_tests_name("store_redis", shared_tests, NULL,
                                        NULL);
  const struct CMUnitTest private_tests[] = {
      cmocka_unit_test(store_redis_auth),
      cmocka_unit_test(store_redis_unix_socket),
      cmocka_unit_test(store_redis_timeout),
      cmocka_unit_test(store_redis_restart),
  };
  failed += cmocka_run_group_tests_name("store_redis_private", private_tests,
                                        private_setup, private_teardown);
  return failed == 0 ? 0 : 1;
}
