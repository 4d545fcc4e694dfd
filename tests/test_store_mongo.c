/* test_store_mongo.c - MongoDB store: the shared conformance suite (text
 * form), connect-mongo's document read back with a raw libmongoc client in
 * both forms (field types: expires a Date, session a string or an embedded
 * document with Node's number types, lastModified only with touch_after),
 * a document written as Node writes the object form read back as
 * JSON.stringify's text, expired documents present but never returned,
 * touchAfter (no write inside the window, a write after it, no
 * lastModified added to a document without one), the TTL index and a
 * conflicting one, the interval remover, clear keeping the index, URLs
 * (store options out, driver options in, unknown options refused, the
 * password never in a message), 8 threads on a pool of 2, enumeration in
 * batches, compare-and-set across handles in both forms, and, on a
 * private server (tests/mongo_proc.c), a stopped server (timeouts) and a
 * restart.
 *
 * The server comes from CSN_TEST_MONGO_URL (scripts/services.sh); without
 * it the test exits 77 (a skip, which CI counts as a failure). Other tests
 * may use the same server at once: every collection here is
 * "csn_t_<pid>_<n>" and is dropped at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "csn/csn.h"
#include "csn/csn_store_mongo.h"
#include "csn/csn_stores.h"
#include "mongo_proc.h"
#include "store_conformance.h"
#include "test_clock.h"

static const char *base_url; /* CSN_TEST_MONGO_URL */
static int coll_seq;
static mongoc_client_t *raw; /* the raw client (this thread only) */
static char raw_db[128];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void new_coll(char *out, size_t n) {
  snprintf(out, n, "csn_t_%ld_%d", (long)getpid(), ++coll_seq);
}

/* base_url + the store's query (which starts without '?' or '&'). */
static void make_url(char *out, size_t n, const char *query) {
  snprintf(out, n, "%s%s%s", base_url, strchr(base_url, '?') ? "&" : "?",
           query);
}

static csn_store *open_q(const char *query) {
  char url[1024], err[512] = "";
  csn_store *st = NULL;
  make_url(url, sizeof url, query);
  int rc = csn_store_mongo_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", query, csn_strerror(rc), err);
  return st;
}

static csn_store *open_coll(const char *coll, const char *more) {
  char q[512];
  snprintf(q, sizeof q, "collection=%s%s", coll, more);
  return open_q(q);
}

static mongoc_collection_t *raw_coll(const char *coll) {
  return mongoc_client_get_collection(raw, raw_db, coll);
}

static void raw_drop(const char *coll) {
  mongoc_collection_t *c = raw_coll(coll);
  (void)mongoc_collection_drop(c, NULL);
  mongoc_collection_destroy(c);
}

/* The raw document with _id = id (NULL when none): bson_destroy it. */
static bson_t *raw_find(const char *coll, const char *id) {
  mongoc_collection_t *c = raw_coll(coll);
  bson_t f;
  const bson_t *doc;
  bson_t *out = NULL;
  bson_init(&f);
  BSON_APPEND_UTF8(&f, "_id", id);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &f, NULL, NULL);
  if (mongoc_cursor_next(cur, &doc)) out = bson_copy(doc);
  bson_error_t e;
  if (mongoc_cursor_error(cur, &e)) fail_msg("raw find: %s", e.message);
  mongoc_cursor_destroy(cur);
  bson_destroy(&f);
  mongoc_collection_destroy(c);
  return out;
}

static int64_t raw_count(const char *coll) {
  mongoc_collection_t *c = raw_coll(coll);
  bson_t f;
  bson_error_t e;
  bson_init(&f);
  int64_t n = mongoc_collection_count_documents(c, &f, NULL, NULL, NULL, &e);
  if (n < 0) fail_msg("raw count: %s", e.message);
  bson_destroy(&f);
  mongoc_collection_destroy(c);
  return n;
}

static void raw_insert(const char *coll, const bson_t *doc) {
  mongoc_collection_t *c = raw_coll(coll);
  bson_error_t e;
  if (!mongoc_collection_insert_one(c, doc, NULL, NULL, &e))
    fail_msg("raw insert: %s", e.message);
  mongoc_collection_destroy(c);
}

/* Field `key` of doc, which must exist with BSON type `type`. */
static void field(const bson_t *doc, const char *key, bson_type_t type,
                  bson_iter_t *it) {
  if (!bson_iter_init_find(it, doc, key)) fail_msg("no field %s", key);
  if (bson_iter_type(it) != type)
    fail_msg("field %s: type 0x%02x, want 0x%02x", key,
             (unsigned)bson_iter_type(it), (unsigned)type);
}

static int has_field(const bson_t *doc, const char *key) {
  bson_iter_t it;
  return bson_iter_init_find(&it, doc, key);
}

static int64_t date_of(const bson_t *doc, const char *key) {
  bson_iter_t it;
  field(doc, key, BSON_TYPE_DATE_TIME, &it);
  return bson_iter_date_time(&it);
}

static void set_ok(csn_store *st, const char *sid, const char *json,
                   int64_t exp) {
  int rc = csn_store_set(st, sid, json, strlen(json), exp);
  if (rc != CSN_OK)
    fail_msg("set %s: %s (%s)", sid, csn_err_name(rc), csn_store_errmsg(st));
}

static void get_eq(csn_store *st, const char *sid, const char *want) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, sid, &json, &len);
  if (rc != CSN_OK)
    fail_msg("get %s: %s (%s)", sid, csn_err_name(rc), csn_store_errmsg(st));
  if (len != strlen(want) || memcmp(json, want, len) != 0)
    fail_msg("get %s:\n got  %.*s\n want %s", sid, (int)len, json, want);
  csn_free(json);
}

static void get_missing(csn_store *st, const char *sid) {
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_ENOENT);
  assert_null(json);
}

/* "expires" as Date#toISOString writes it. */
static void iso(int64_t ms, char *out, size_t size) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  /* Years 0..9999 only: instants here are near "now". */
  snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ms % 1000));
}

/* An express-style record expiring at exp, with members (",..." or ""). */
static void record(char *out, size_t n, int64_t exp, const char *members) {
  char when[64];
  iso(exp, when, sizeof when);
  snprintf(out, n,
           "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"%s\","
           "\"httpOnly\":true,\"path\":\"/\"}%s}",
           when, members);
}

/* Does the index expires_1 exist with key {expires: 1} and
 * expireAfterSeconds 0? 1 yes, 0 no index of that name, -1 other options. */
static int raw_ttl_index(const char *coll) {
  mongoc_collection_t *c = raw_coll(coll);
  mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(c, NULL);
  const bson_t *idx;
  int found = 0;
  while (mongoc_cursor_next(cur, &idx)) {
    bson_iter_t it, k;
    if (!bson_iter_init_find(&it, idx, "name") ||
        strcmp(bson_iter_utf8(&it, NULL), "expires_1") != 0)
      continue;
    found = -1;
    if (bson_iter_init_find(&it, idx, "key") && bson_iter_recurse(&it, &k) &&
        bson_iter_next(&k) && strcmp(bson_iter_key(&k), "expires") == 0 &&
        bson_iter_as_int64(&k) == 1 && !bson_iter_next(&k) &&
        bson_iter_init_find(&it, idx, "expireAfterSeconds") &&
        BSON_ITER_HOLDS_NUMBER(&it) && bson_iter_as_int64(&it) == 0)
      found = 1;
  }
  mongoc_cursor_destroy(cur);
  mongoc_collection_destroy(c);
  return found;
}

/* ------------------------------------------------------------------------ */
/* Conformance                                                              */
/* ------------------------------------------------------------------------ */

static char conf_coll[64];

/* No TTL index for the suite: its expired records must still be there for
 * the expired walk when it looks (mongod's monitor, and the test server's
 * every second, would delete them at a moment of their choosing). */
static csn_store *conf_open(void *ud) {
  (void)ud;
  return open_coll(conf_coll, "&auto_remove=disabled");
}

static void conf_reset(void *ud) {
  (void)ud;
  mongoc_collection_t *c = raw_coll(conf_coll);
  bson_t f;
  bson_init(&f);
  (void)mongoc_collection_delete_many(c, &f, NULL, NULL, NULL);
  bson_destroy(&f);
  mongoc_collection_destroy(c);
}

/* ------------------------------------------------------------------------ */
/* The document                                                             */
/* ------------------------------------------------------------------------ */

static void store_mongo_format_text(void **state) {
  (void)state;
  char t[64], rec[512];
  new_coll(t, sizeof t);
  csn_store *st = open_coll(t, "&ttl=100");
  int64_t exp = wall_ms() + 3600000 + 123;
  record(rec, sizeof rec, exp, ",\"views\":3,\"n\":0.1");
  set_ok(st, "fmt", rec, exp);
  bson_t *d = raw_find(t, "fmt");
  assert_non_null(d);
  bson_iter_t it;
  field(d, "_id", BSON_TYPE_UTF8, &it);
  assert_string_equal(bson_iter_utf8(&it, NULL), "fmt");
  field(d, "session", BSON_TYPE_UTF8, &it);
  assert_string_equal(bson_iter_utf8(&it, NULL), rec);
  /* expires is cookie.expires to the millisecond, as a Date. */
  assert_int_equal(date_of(d, "expires"), exp);
  assert_false(has_field(d, "lastModified"));
  bson_destroy(d);
  get_eq(st, "fmt", rec);

  /* A browser-session cookie: now + ttl. */
  const char *none = "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,"
                     "\"httpOnly\":true,\"path\":\"/\"}}";
  int64_t before = wall_ms();
  assert_int_equal(csn_store_set(st, "none", none, strlen(none),
                                 CSN_TIME_NONE),
                   CSN_OK);
  int64_t after = wall_ms();
  d = raw_find(t, "none");
  assert_non_null(d);
  int64_t e = date_of(d, "expires");
  assert_true(e >= before + 100000 && e <= after + 100000);
  bson_destroy(d);

  /* touch moves only expires (connect-mongo): the text stays. */
  char fresh[512];
  record(fresh, sizeof fresh, exp + 5000, "");
  assert_int_equal(
      csn_store_touch(st, "fmt", fresh, strlen(fresh), exp + 5000), CSN_OK);
  d = raw_find(t, "fmt");
  assert_int_equal(date_of(d, "expires"), exp + 5000);
  field(d, "session", BSON_TYPE_UTF8, &it);
  assert_string_equal(bson_iter_utf8(&it, NULL), rec);
  bson_destroy(d);
  /* touch of a missing id creates nothing. */
  assert_int_equal(csn_store_touch(st, "nobody", fresh, strlen(fresh), exp),
                   CSN_OK);
  assert_null(raw_find(t, "nobody"));
  csn_store_free(st);
  raw_drop(t);
}

/* The object form: types as the Node driver writes JSON.parse's result. */
static void store_mongo_format_object(void **state) {
  (void)state;
  char t[64], rec[1024];
  new_coll(t, sizeof t);
  csn_store *st = open_coll(t, "&stringify=false");
  int64_t exp = wall_ms() + 3600000 + 7;
  record(rec, sizeof rec, exp,
         ",\"i\":7,\"neg\":-2147483648,\"big\":3000000000,\"f\":0.1,"
         "\"e\":1e+21,\"tiny\":1.5e-7,\"b\":true,\"z\":null,"
         "\"arr\":[1,\"two\",[],{}],\"o\":{\"k\":\"v\"},"
         "\"s\":\"h\xc3\xa9\\n\\\"q\\\"\\u0001\",\"when\":"
         "\"2020-01-01T00:00:00.000Z\"");
  set_ok(st, "obj", rec, exp);
  bson_t *d = raw_find(t, "obj");
  assert_non_null(d);
  bson_iter_t it, s, c;
  field(d, "session", BSON_TYPE_DOCUMENT, &it);
  assert_int_equal(date_of(d, "expires"), exp);
  bson_iter_recurse(&it, &s);
  /* Member order kept, each with the Node driver's type. */
  static const struct {
    const char *key;
    bson_type_t type;
  } want[] = {{"cookie", BSON_TYPE_DOCUMENT}, {"i", BSON_TYPE_INT32},
              {"neg", BSON_TYPE_INT32},       {"big", BSON_TYPE_DOUBLE},
              {"f", BSON_TYPE_DOUBLE},        {"e", BSON_TYPE_DOUBLE},
              {"tiny", BSON_TYPE_DOUBLE},     {"b", BSON_TYPE_BOOL},
              {"z", BSON_TYPE_NULL},          {"arr", BSON_TYPE_ARRAY},
              {"o", BSON_TYPE_DOCUMENT},      {"s", BSON_TYPE_UTF8},
              {"when", BSON_TYPE_UTF8}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_true(bson_iter_next(&s));
    assert_string_equal(bson_iter_key(&s), want[i].key);
    if (bson_iter_type(&s) != want[i].type)
      fail_msg("session.%s: type 0x%02x", want[i].key,
               (unsigned)bson_iter_type(&s));
    if (strcmp(want[i].key, "cookie") == 0) {
      /* cookie.expires is a Date; the other members as they were. */
      bson_iter_t e;
      bson_iter_recurse(&s, &c);
      assert_true(bson_iter_find(&c, "originalMaxAge"));
      assert_int_equal(bson_iter_type(&c), BSON_TYPE_INT32);
      assert_true(bson_iter_recurse(&s, &e) && bson_iter_find(&e, "expires"));
      assert_int_equal(bson_iter_type(&e), BSON_TYPE_DATE_TIME);
      assert_int_equal(bson_iter_date_time(&e), exp);
    }
    if (strcmp(want[i].key, "s") == 0)
      assert_string_equal(bson_iter_utf8(&s, NULL), "h\xc3\xa9\n\"q\"\x01");
    if (strcmp(want[i].key, "big") == 0)
      assert_true(bson_iter_double(&s) == 3000000000.0);
  }
  assert_false(bson_iter_next(&s));
  bson_destroy(d);
  /* And back: exactly the text the core wrote (JSON.stringify's). */
  get_eq(st, "obj", rec);
  /* Not a JSON object: refused, nothing written. */
  assert_int_equal(csn_store_set(st, "bad", "[1]", 3, exp), CSN_EINVAL);
  assert_null(raw_find(t, "bad"));
  csn_store_free(st);
  raw_drop(t);
}

/* A document as connect-mongo (stringify: false) on the Node driver writes
 * it, built here with libbson: read back as JSON.stringify would write the
 * session Node's driver reads, in both store forms; cas against that text
 * succeeds. */
static void store_mongo_node_object(void **state) {
  (void)state;
  char t[64], when[64], want[1024];
  new_coll(t, sizeof t);
  int64_t exp = wall_ms() + 3600000;
  exp -= exp % 1000; /* and a whole second, once */
  iso(exp, when, sizeof when);
  bson_t doc, sess, cookie, arr, nested;
  bson_init(&doc);
  BSON_APPEND_UTF8(&doc, "_id", "node1");
  BSON_APPEND_DOCUMENT_BEGIN(&doc, "session", &sess);
  BSON_APPEND_DOCUMENT_BEGIN(&sess, "cookie", &cookie);
  BSON_APPEND_INT32(&cookie, "originalMaxAge", 60000);
  BSON_APPEND_DATE_TIME(&cookie, "expires", exp);
  BSON_APPEND_BOOL(&cookie, "secure", false);
  BSON_APPEND_BOOL(&cookie, "httpOnly", true);
  BSON_APPEND_UTF8(&cookie, "path", "/");
  BSON_APPEND_UTF8(&cookie, "sameSite", "lax");
  bson_append_document_end(&sess, &cookie);
  BSON_APPEND_INT32(&sess, "views", 41);
  BSON_APPEND_DOUBLE(&sess, "ratio", 0.5);
  BSON_APPEND_DOUBLE(&sess, "big", 1e21);
  BSON_APPEND_DOUBLE(&sess, "whole", 2.0);
  BSON_APPEND_DOUBLE(&sess, "small", 1e-7);
  BSON_APPEND_INT64(&sess, "long", 5000000000);
  BSON_APPEND_ARRAY_BEGIN(&sess, "list", &arr);
  BSON_APPEND_INT32(&arr, "0", 1);
  BSON_APPEND_UTF8(&arr, "1", "a");
  BSON_APPEND_NULL(&arr, "2");
  bson_append_array_end(&sess, &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&sess, "nested", &nested);
  bson_append_document_end(&sess, &nested);
  BSON_APPEND_UTF8(&sess, "s", "\xc3\xa9\t\"\\");
  BSON_APPEND_DATE_TIME(&sess, "at", INT64_C(1577836800123));
  bson_append_document_end(&doc, &sess);
  BSON_APPEND_DATE_TIME(&doc, "expires", exp);
  raw_insert(t, &doc);
  bson_destroy(&doc);
  snprintf(want, sizeof want,
           "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"%s\","
           "\"secure\":false,\"httpOnly\":true,\"path\":\"/\","
           "\"sameSite\":\"lax\"},\"views\":41,\"ratio\":0.5,\"big\":1e+21,"
           "\"whole\":2,\"small\":1e-7,\"long\":5000000000,"
           "\"list\":[1,\"a\",null],\"nested\":{},\"s\":\"\xc3\xa9\\t\\\"\\\\\","
           "\"at\":\"2020-01-01T00:00:00.123Z\"}",
           when);
  csn_store *obj = open_coll(t, "&stringify=0&auto_remove=disabled");
  csn_store *txt = open_coll(t, "&auto_remove=disabled");
  get_eq(obj, "node1", want);
  get_eq(txt, "node1", want); /* a tolerant reader */
  /* cas against the rendered text writes (in the store's own form). */
  char next[512];
  record(next, sizeof next, exp, ",\"views\":42");
  assert_int_equal(csn_store_cas(obj, "node1", want, strlen(want), next,
                                 strlen(next), exp),
                   CSN_OK);
  get_eq(obj, "node1", next);
  bson_t *d = raw_find(t, "node1");
  bson_iter_t it;
  field(d, "session", BSON_TYPE_DOCUMENT, &it);
  bson_destroy(d);
  /* A stale text: conflict. */
  assert_int_equal(csn_store_cas(obj, "node1", want, strlen(want), next,
                                 strlen(next), exp),
                   CSN_ECONFLICT);
  csn_store_free(obj);
  csn_store_free(txt);
  raw_drop(t);
}

/* Expired documents the TTL monitor has not removed yet: never returned,
 * not counted, not enumerated, not touched back to life, gone on prune. */
static void store_mongo_expired_present(void **state) {
  (void)state;
  char t[64], rec[512];
  new_coll(t, sizeof t);
  /* No TTL index: its monitor could remove the document under the test. */
  csn_store *st = open_coll(t, "&auto_remove=disabled");
  int64_t now = wall_ms();
  record(rec, sizeof rec, now - 60000, ",\"x\":1");
  bson_t doc;
  bson_init(&doc);
  BSON_APPEND_UTF8(&doc, "_id", "old");
  BSON_APPEND_UTF8(&doc, "session", rec);
  BSON_APPEND_DATE_TIME(&doc, "expires", now - 60000);
  raw_insert(t, &doc);
  bson_destroy(&doc);
  /* A document with no expires at all is live (connect-mongo's filter). */
  bson_init(&doc);
  BSON_APPEND_UTF8(&doc, "_id", "noexp");
  BSON_APPEND_UTF8(&doc, "session", rec);
  raw_insert(t, &doc);
  bson_destroy(&doc);
  get_missing(st, "old");
  get_eq(st, "noexp", rec);
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  assert_int_equal(csn_store_touch(st, "old", rec, strlen(rec), now + 60000),
                   CSN_OK);
  get_missing(st, "old");
  assert_int_equal(raw_count(t), 2);
  size_t removed = 0;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 1);
  assert_null(raw_find(t, "old"));
  csn_store_free(st);
  raw_drop(t);
}

/* ------------------------------------------------------------------------ */
/* touchAfter                                                               */
/* ------------------------------------------------------------------------ */

static void store_mongo_touch_after(void **state) {
  (void)state;
  char t[64], rec[512], fresh[512];
  new_coll(t, sizeof t);
  csn_store *st = open_coll(t, "&touch_after=2");
  int64_t exp = wall_ms() + 3600000, exp2 = exp + 60000, exp3 = exp + 120000;
  record(rec, sizeof rec, exp, ",\"a\":1");
  int64_t t0 = wall_ms();
  set_ok(st, "ta", rec, exp);
  bson_t *d = raw_find(t, "ta");
  int64_t lm1 = date_of(d, "lastModified");
  assert_true(lm1 >= t0 - 1000 && lm1 <= wall_ms() + 1000);
  bson_destroy(d);

  /* Inside the window: get, then touch writes nothing. */
  record(fresh, sizeof fresh, exp2, "");
  get_eq(st, "ta", rec);
  assert_int_equal(csn_store_touch(st, "ta", fresh, strlen(fresh), exp2),
                   CSN_OK);
  d = raw_find(t, "ta");
  assert_int_equal(date_of(d, "lastModified"), lm1);
  assert_int_equal(date_of(d, "expires"), exp);
  bson_destroy(d);
  /* Without a get first (the store reads lastModified itself): same. */
  assert_int_equal(csn_store_touch(st, "ta", fresh, strlen(fresh), exp2),
                   CSN_OK);
  d = raw_find(t, "ta");
  assert_int_equal(date_of(d, "expires"), exp);
  bson_destroy(d);

  /* After the window: expires and lastModified move. */
  sleep_ms(2100);
  get_eq(st, "ta", rec);
  assert_int_equal(csn_store_touch(st, "ta", fresh, strlen(fresh), exp2),
                   CSN_OK);
  d = raw_find(t, "ta");
  assert_int_equal(date_of(d, "expires"), exp2);
  assert_true(date_of(d, "lastModified") >= lm1 + 2000);
  bson_destroy(d);

  /* A document without lastModified (written before touchAfter was on):
   * every touch writes expires, and none adds lastModified. */
  bson_t doc;
  bson_init(&doc);
  BSON_APPEND_UTF8(&doc, "_id", "plain");
  BSON_APPEND_UTF8(&doc, "session", rec);
  BSON_APPEND_DATE_TIME(&doc, "expires", exp);
  raw_insert(t, &doc);
  bson_destroy(&doc);
  get_eq(st, "plain", rec);
  assert_int_equal(csn_store_touch(st, "plain", fresh, strlen(fresh), exp2),
                   CSN_OK);
  record(fresh, sizeof fresh, exp3, "");
  assert_int_equal(csn_store_touch(st, "plain", fresh, strlen(fresh), exp3),
                   CSN_OK);
  d = raw_find(t, "plain");
  assert_int_equal(date_of(d, "expires"), exp3);
  assert_false(has_field(d, "lastModified"));
  bson_destroy(d);
  /* Missing: nothing created. */
  assert_int_equal(csn_store_touch(st, "gone", fresh, strlen(fresh), exp3),
                   CSN_OK);
  assert_null(raw_find(t, "gone"));
  csn_store_free(st);
  raw_drop(t);
}

/* ------------------------------------------------------------------------ */
/* autoRemove                                                               */
/* ------------------------------------------------------------------------ */

static void store_mongo_ttl_index(void **state) {
  (void)state;
  char t[64], rec[512];
  new_coll(t, sizeof t);
  csn_store *st = open_coll(t, "");
  assert_int_equal(raw_ttl_index(t), 1);
  /* A second opener (another process) finds it and is content. */
  csn_store *st2 = open_coll(t, "");
  record(rec, sizeof rec, wall_ms() + 60000, "");
  set_ok(st, "a", rec, wall_ms() + 60000);
  set_ok(st2, "b", rec, wall_ms() + 60000);
  /* clear deletes the documents, not the collection: the index stays. */
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_int_equal(raw_count(t), 0);
  assert_int_equal(raw_ttl_index(t), 1);
  csn_store_free(st);
  csn_store_free(st2);
  raw_drop(t);

  /* disabled and interval make no index. */
  new_coll(t, sizeof t);
  st = open_coll(t, "&auto_remove=disabled");
  set_ok(st, "a", rec, wall_ms() + 60000);
  assert_int_equal(raw_ttl_index(t), 0);
  csn_store_free(st);
  raw_drop(t);
}

static void store_mongo_index_conflict(void **state) {
  (void)state;
  char t[64], url[1024], err[512] = "";
  new_coll(t, sizeof t);
  /* An index on {expires: 1} without the TTL option. */
  bson_t cmd, arr, ix, key, reply;
  bson_error_t e;
  bson_init(&cmd);
  BSON_APPEND_UTF8(&cmd, "createIndexes", t);
  BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
  BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &ix);
  BSON_APPEND_DOCUMENT_BEGIN(&ix, "key", &key);
  BSON_APPEND_INT32(&key, "expires", 1);
  bson_append_document_end(&ix, &key);
  BSON_APPEND_UTF8(&ix, "name", "expires_1");
  bson_append_document_end(&arr, &ix);
  bson_append_array_end(&cmd, &arr);
  if (!mongoc_client_write_command_with_opts(raw, raw_db, &cmd, NULL, &reply,
                                             &e))
    fail_msg("createIndexes: %s", e.message);
  bson_destroy(&reply);
  bson_destroy(&cmd);
  char q[256];
  snprintf(q, sizeof q, "collection=%s", t);
  make_url(url, sizeof url, q);
  csn_store *st = NULL;
  int rc = csn_store_mongo_open(url, &st, err, sizeof err);
  assert_int_equal(rc, CSN_ESTORE);
  assert_null(st);
  assert_non_null(strstr(err, "index"));
  assert_non_null(strstr(err, "auto_remove"));
  assert_non_null(strstr(csn_last_error(), "index"));
  /* The operator's way out. */
  st = open_coll(t, "&auto_remove=disabled");
  csn_store_free(st);
  raw_drop(t);
}

static void store_mongo_interval(void **state) {
  (void)state;
  char t[64], url[1024], rec[512], err[512];
  new_coll(t, sizeof t);
  csn_mongo_options o;
  memset(&o, 0, sizeof o);
  o.uri = base_url;
  o.collection = t;
  o.auto_remove = CSN_MONGO_REMOVE_INTERVAL;
  o.auto_remove_interval_ms = 200; /* 100..300 ms with the jitter */
  csn_store *st = NULL;
  assert_int_equal(csn_store_mongo_new(&o, &st, err, sizeof err), CSN_OK);
  (void)url;
  assert_int_equal(raw_ttl_index(t), 0);
  int64_t now = wall_ms();
  record(rec, sizeof rec, now + 60000, "");
  set_ok(st, "live", rec, now + 60000);
  for (int i = 0; i < 3; i++) {
    char id[16];
    snprintf(id, sizeof id, "dead%d", i);
    set_ok(st, id, rec, now - 1000);
  }
  int64_t t0 = mono_ms();
  while (raw_count(t) != 1 && mono_ms() - t0 < 5000) sleep_ms(20);
  assert_int_equal(raw_count(t), 1);
  /* Close with the thread running: prompt. */
  t0 = mono_ms();
  csn_store_free(st);
  assert_true(mono_ms() - t0 < 1000);
  bson_t *d = raw_find(t, "live");
  assert_non_null(d);
  bson_destroy(d);
  raw_drop(t);
}

/* ------------------------------------------------------------------------ */
/* URLs and messages                                                        */
/* ------------------------------------------------------------------------ */

static void store_mongo_url(void **state) {
  (void)state;
  char t[64], q[512], rec[512];
  new_coll(t, sizeof t);
  /* Store options out, driver options (any case) in. */
  snprintf(q, sizeof q,
           "appname=csn-test&collection=%s&stringify=false&ttl=50&"
           "serverSelectionTimeoutMS=1500&auto_remove=interval&"
           "auto_remove_interval=5&pool=3&timeout=1000&connect_timeout=500&"
           "touch_after=0&retryWrites=false",
           t);
  csn_store *st = open_q(q);
  record(rec, sizeof rec, wall_ms() + 60000, ",\"k\":1");
  set_ok(st, "u", rec, CSN_TIME_NONE);
  get_eq(st, "u", rec);
  bson_t *d = raw_find(t, "u");
  bson_iter_t it;
  field(d, "session", BSON_TYPE_DOCUMENT, &it); /* stringify=false */
  int64_t e = date_of(d, "expires");
  assert_true(e > wall_ms() + 45000 && e < wall_ms() + 55000); /* ttl=50 */
  bson_destroy(d);
  assert_int_equal(raw_ttl_index(t), 0); /* interval: no index */
  csn_store_free(st);
  raw_drop(t);

  /* The registered scheme opens it too. */
  char url[1024];
  csn_store *s2 = NULL;
  assert_int_equal(csn_stores_register_all(), CSN_OK);
  snprintf(q, sizeof q, "collection=%s", t);
  make_url(url, sizeof url, q);
  assert_int_equal(csn_store_open(url, &s2, NULL, 0), CSN_OK);
  assert_string_equal(csn_store_name(s2), "mongodb");
  csn_store_free(s2);
  raw_drop(t);
}

static void store_mongo_url_bad(void **state) {
  (void)state;
  static const struct {
    const char *url;
    const char *needle; /* in the message */
  } bad[] = {
      {"mongodb://127.0.0.1:1/db?bogus=1", "bogus"},
      {"mongodb://127.0.0.1:1/db?collection=a&collection=b", "collection"},
      {"mongodb://127.0.0.1:1/db?ttl=abc", "ttl"},
      {"mongodb://127.0.0.1:1/db?ttl=0", "ttl"},
      {"mongodb://127.0.0.1:1/db?stringify=maybe", "stringify"},
      {"mongodb://127.0.0.1:1/db?auto_remove=sometimes", "auto_remove"},
      {"mongodb://127.0.0.1:1/db?auto_remove_interval=0", "auto_remove"},
      {"mongodb://127.0.0.1:1/db?pool=0", "pool"},
      {"mongodb://127.0.0.1:1/db?timeout=-5", "timeout"},
      {"mongodb://127.0.0.1:1/db?collection=a$b", "collection"},
      {"mongodb://127.0.0.1:1/db?&", "query"},
      {"mongodb://127.0.0.1:1/db?socketTimeoutMS=abc", "URI"},
      {"redis://127.0.0.1:1/", "mongodb://"},
      {"mongodb://", "URI"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[512] = "";
    csn_store *st = NULL;
    int rc = csn_store_mongo_open(bad[i].url, &st, err, sizeof err);
    if (rc != CSN_EINVAL)
      fail_msg("%s: %s (%s)", bad[i].url, csn_err_name(rc), err);
    assert_null(st);
    if (strstr(err, bad[i].needle) == NULL)
      fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].url, err,
               bad[i].needle);
  }
}

/* The password is never in a message: a bad option, an unreachable
 * server, a URI libmongoc refuses. */
static void store_mongo_password_hidden(void **state) {
  (void)state;
  static const char *const urls[] = {
      "mongodb://ann:Pw%2FSecret9@127.0.0.1:1/db?bogus=1",
      "mongodb://ann:Pw%2FSecret9@127.0.0.1:1/db?ttl=x",
      ("mongodb://ann:Pw%2FSecret9@127.0.0.1:1/db?timeout=300&"
       "connect_timeout=200&auto_remove=disabled"),
      "mongodb://ann:Pw%2FSecret9@127.0.0.1:1/db?authMechanism=NOPE",
      "mongodb://ann:Pw/Secret9@127.0.0.1:1/db",
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    char err[512] = "";
    csn_store *st = NULL;
    int rc = csn_store_mongo_open(urls[i], &st, err, sizeof err);
    assert_true(rc < 0);
    assert_null(st);
    assert_true(err[0] != '\0');
    if (strstr(err, "Secret9") != NULL ||
        strstr(csn_last_error(), "Secret9") != NULL)
      fail_msg("password in the message: %s", err);
    if (i == 2) {
      /* Unreachable: names MongoDB and the host. */
      assert_true(rc == CSN_EIO || rc == CSN_ETIMEDOUT);
      assert_non_null(strstr(err, "mongodb 127.0.0.1:1"));
    }
  }
}

/* The message of a failing operation names the operation, never the id. */
static void store_mongo_errors(void **state) {
  (void)state;
  char rec[512];
  mongo_proc m;
  memset(&m, 0, sizeof m);
  if (mongo_proc_start(&m, 0) != 0) {
    mongo_proc_cleanup(&m);
    fail_msg("private server: %s", m.err);
  }
  char url[256];
  snprintf(url, sizeof url,
           "%s?collection=errs&timeout=500&connect_timeout=300&pool=2&"
           "auto_remove=disabled",
           mongo_proc_url(&m));
  csn_store *st = NULL;
  char err[512];
  int rc = csn_store_mongo_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open: %s", err);
  int64_t exp = wall_ms() + 60000;
  record(rec, sizeof rec, exp, ",\"v\":1");
  set_ok(st, "secret-session-id-1", rec, exp);

  /* Stopped: every operation costs about the timeout, no more. */
  assert_int_equal(mongo_proc_freeze(&m), 0);
  char *json = NULL;
  size_t len;
  int64_t t0 = mono_ms();
  rc = csn_store_get(st, "secret-session-id-1", &json, &len);
  int64_t took = mono_ms() - t0;
  assert_int_equal(rc, CSN_ETIMEDOUT);
  assert_true(took >= 400 && took < 2500);
  const char *msg = csn_store_errmsg(st);
  assert_non_null(strstr(msg, "mongodb 127.0.0.1:"));
  assert_non_null(strstr(msg, "get"));
  assert_null(strstr(msg, "secret-session-id"));
  t0 = mono_ms();
  rc = csn_store_set(st, "secret-session-id-1", rec, strlen(rec), exp);
  assert_true(rc == CSN_ETIMEDOUT || rc == CSN_EIO);
  assert_true(mono_ms() - t0 < 2500);
  assert_null(strstr(csn_store_errmsg(st), "secret-session-id"));
  assert_int_equal(mongo_proc_thaw(&m), 0);
  /* Resumed: the store works again (the data survived a stop). */
  t0 = mono_ms();
  for (;;) {
    rc = csn_store_get(st, "secret-session-id-1", &json, &len);
    if (rc == CSN_OK || mono_ms() - t0 > 5000) break;
    sleep_ms(50);
  }
  assert_int_equal(rc, CSN_OK);
  csn_free(json);

  /* Killed and restarted (empty: it keeps nothing): the first operations
   * after it succeed, without an application restart, and without a
   * SIGPIPE (the default disposition here would kill the test). */
  assert_int_equal(mongo_proc_kill9(&m), 0);
  assert_int_equal(mongo_proc_restart(&m), 0);
  rc = csn_store_set(st, "secret-session-id-1", rec, strlen(rec), exp);
  if (rc != CSN_OK) fail_msg("set after restart: %s", csn_store_errmsg(st));
  get_eq(st, "secret-session-id-1", rec);
  csn_store_free(st);
  mongo_proc_cleanup(&m);
}

/* ------------------------------------------------------------------------ */
/* Concurrency, enumeration, compare-and-set                                */
/* ------------------------------------------------------------------------ */

#define POOL_THREADS 8
#define POOL_ROUNDS 100
#define WALK_ROWS 1203 /* two batches of 500 and a bit */

static void store_mongo_pool_threads(void **state) {
  (void)state;
  char t[64];
  new_coll(t, sizeof t);
  csn_store *st = open_coll(t, "&pool=2");
  csn_conformance_threads(st, POOL_THREADS, POOL_ROUNDS);
  csn_store_free(st);
  raw_drop(t);
}

static void store_mongo_enumerate(void **state) {
  (void)state;
  char t[64];
  new_coll(t, sizeof t);
  /* pool=1: a get from inside the callback would wait for a client held
   * by the walk if it held one. */
  csn_store *st = open_coll(t, "&pool=1&timeout=1500");
  /* Documents all() must skip: a non-string _id, a session that is
   * neither text nor a document. */
  bson_t doc;
  bson_init(&doc);
  BSON_APPEND_INT32(&doc, "_id", 12);
  BSON_APPEND_UTF8(&doc, "session", "{}");
  raw_insert(t, &doc);
  bson_destroy(&doc);
  bson_init(&doc);
  BSON_APPEND_UTF8(&doc, "_id", "weird");
  BSON_APPEND_INT32(&doc, "session", 5);
  raw_insert(t, &doc);
  bson_destroy(&doc);
  int64_t exp = wall_ms() + 600000;
  for (int i = 0; i < WALK_ROWS; i++) {
    char id[16], rec[32];
    snprintf(id, sizeof id, "k%d", i);
    snprintf(rec, sizeof rec, "{\"i\":%d}", i);
    set_ok(st, id, rec, exp);
  }
  /* And an expired one, which all() must not show. */
  set_ok(st, "k-old", "{\"i\":-1}", wall_ms() - 1000);
  /* Every live document once, byte for byte, in batches of 500; a get
   * from inside the callback every 97 (no client held, even with pool=1);
   * a non-zero return stops the walk inside a later batch. */
  csn_conformance_walk(st, WALK_ROWS, "", 97, 777);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  size_t n = 1;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  assert_int_equal(raw_count(t), 0);
  csn_store_free(st);
  raw_drop(t);
}

static void cas_two_handles(const char *form) {
  char t[64], want[64], more[64];
  new_coll(t, sizeof t);
  snprintf(more, sizeof more, "&pool=2%s", form);
  csn_store *a = open_coll(t, more);
  csn_store *b = open_coll(t, more);
  csn_conformance_cas_counter(a, b, "ctr", wall_ms() + 300000, want,
                              sizeof want);
  /* The collection itself shows it. */
  bson_t *d = raw_find(t, "ctr");
  assert_non_null(d);
  bson_iter_t it;
  if (form[0] == '\0') {
    field(d, "session", BSON_TYPE_UTF8, &it);
    assert_string_equal(bson_iter_utf8(&it, NULL), want);
  } else {
    bson_iter_t n;
    field(d, "session", BSON_TYPE_DOCUMENT, &it);
    assert_true(bson_iter_recurse(&it, &n) && bson_iter_find(&n, "n"));
    assert_int_equal(bson_iter_type(&n), BSON_TYPE_INT32);
    assert_int_equal(bson_iter_int32(&n), CSN_CONFORMANCE_CAS_WORKERS *
                                               CSN_CONFORMANCE_CAS_ROUNDS);
  }
  bson_destroy(d);
  /* Logout wins: destroyed through one handle, a cas through the other
   * finds nothing and writes nothing. */
  assert_int_equal(csn_store_destroy(a, "ctr"), CSN_OK);
  const char *next = "{\"cookie\":{},\"n\":-1}";
  assert_int_equal(csn_store_cas(b, "ctr", want, strlen(want), next,
                                 strlen(next), wall_ms() + 300000),
                   CSN_ENOENT);
  assert_null(raw_find(t, "ctr"));
  /* Expired: gone too, whatever its text. */
  set_ok(a, "old", next, wall_ms() - 1000);
  assert_int_equal(csn_store_cas(b, "old", next, strlen(next), want,
                                 strlen(want), wall_ms() + 300000),
                   CSN_ENOENT);
  csn_store_free(a);
  csn_store_free(b);
  raw_drop(t);
}

static void store_mongo_cas_text(void **state) {
  (void)state;
  cas_two_handles("");
}

static void store_mongo_cas_object(void **state) {
  (void)state;
  cas_two_handles("&stringify=false");
}

/* ------------------------------------------------------------------------ */

int main(void) {
  const char *url = getenv("CSN_TEST_MONGO_URL");
  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "store_mongo: CSN_TEST_MONGO_URL is not set; run it with "
                    "scripts/services.sh run ctest ... (skipped)\n");
    return 77;
  }
  base_url = url;
  /* A stray SIGPIPE must kill us: the store is responsible for its own. */
  signal(SIGPIPE, SIG_DFL);
  mongoc_init();
  bson_error_t e;
  mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &e);
  if (uri == NULL) {
    fprintf(stderr, "store_mongo: bad CSN_TEST_MONGO_URL: %s\n", e.message);
    return 1;
  }
  snprintf(raw_db, sizeof raw_db, "%s",
           mongoc_uri_get_database(uri) ? mongoc_uri_get_database(uri)
                                        : "test");
  raw = mongoc_client_new_from_uri(uri);
  mongoc_uri_destroy(uri);
  new_coll(conf_coll, sizeof conf_coll);

  csn_conformance conf;
  memset(&conf, 0, sizeof conf);
  conf.open = conf_open;
  conf.open_again = conf_open;
  conf.reset = conf_reset;
  conf.cas = 1;
  conf.all_expired = 1;
  conf.touch_expiry_only = 1;
  int failed = csn_conformance_run("store_mongo_conformance", &conf);
  raw_drop(conf_coll);

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_mongo_format_text),
      cmocka_unit_test(store_mongo_format_object),
      cmocka_unit_test(store_mongo_node_object),
      cmocka_unit_test(store_mongo_expired_present),
      cmocka_unit_test(store_mongo_touch_after),
      cmocka_unit_test(store_mongo_ttl_index),
      cmocka_unit_test(store_mongo_index_conflict),
      cmocka_unit_test(store_mongo_interval),
      cmocka_unit_test(store_mongo_url),
      cmocka_unit_test(store_mongo_url_bad),
      cmocka_unit_test(store_mongo_password_hidden),
      cmocka_unit_test(store_mongo_pool_threads),
      cmocka_unit_test(store_mongo_enumerate),
      cmocka_unit_test(store_mongo_cas_text),
      cmocka_unit_test(store_mongo_cas_object),
      cmocka_unit_test(store_mongo_errors),
  };
  failed += cmocka_run_group_tests_name("store_mongo", tests, NULL, NULL);
  mongoc_client_destroy(raw);
  return failed == 0 ? 0 : 1;
}
