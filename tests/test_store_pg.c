/* test_store_pg.c - PostgreSQL store: the shared conformance suite, the
 * connect-pg-simple table read back with a raw libpq connection (columns,
 * sess text byte for byte, expire = to_timestamp(ceil(ms / 1000)), the
 * browser-session ttl, touch = expire only, disable_touch, expired rows
 * ignored), time zones of two writers, SQL injection through ids and
 * names, create_table, URL parsing and what messages leave out, prune and
 * the sweeper, length/all/clear in batches, compare-and-set across two
 * handles, the pool under more threads than connections, statement
 * timeouts against a held lock, and a backend killed under the store.
 *
 * The server comes from CSN_TEST_PG_URL (scripts/services.sh); without it
 * the test exits 77 (a skip, which CI counts as a failure). Other tests
 * use the same server at once (ctest -j): every table here is
 * "csn_t_<pid>_<n>", created by the store (create_table=1) and dropped at
 * the end, and only our own backends are ever terminated (found by an
 * application_name with our pid). Restarts and a stopped server are
 * tests/test_store_pg_fault.c's, on a private server.
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

#include <libpq-fe.h>

#include "csn/csn.h"
#include "csn/csn_store_pg.h"
#include "csn/csn_stores.h"
#include "store_conformance.h"
#include "test_clock.h"

static const char REC[] =
    "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00."
    "000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":3}";
/* As Node (or a person) might have written it: spacing, escapes. */
static const char NODE[] = "{\"cookie\":{\"originalMaxAge\":null,\"expires\":"
                           "null}, \"n\": 0.10, \"s\":\"\\u00e9\"}";

static const char *base_url; /* CSN_TEST_PG_URL, no query */
static int table_seq;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static int64_t ceil_s(int64_t ms) { return ms / 1000 + (ms % 1000 != 0); }

static void quiet(void *arg, const char *msg) {
  (void)arg, (void)msg;
}

/* A raw connection, as Node (or psql) would see the data. */
static PGconn *raw_open(void) {
  PGconn *c = PQconnectdb(base_url);
  if (PQstatus(c) != CONNECTION_OK)
    fail_msg("raw connect: %s", PQerrorMessage(c));
  PQsetNoticeProcessor(c, quiet, NULL);
  return c;
}

static PGresult *raw_vexec(PGconn *c, const char *fmt, va_list ap) {
  char sql[2048];
  vsnprintf(sql, sizeof sql, fmt, ap);
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
    fail_msg("raw %s: %s", sql, PQerrorMessage(c));
  return r;
}

static void raw_exec(PGconn *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PQclear(raw_vexec(c, fmt, ap));
  va_end(ap);
}

/* The first cell as text ("" for no row), into out. */
static char *raw_text(PGconn *c, char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PGresult *r = raw_vexec(c, fmt, ap);
  va_end(ap);
  snprintf(out, n, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  return out;
}

static long long raw_int(PGconn *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PGresult *r = raw_vexec(c, fmt, ap);
  va_end(ap);
  if (PQntuples(r) != 1) fail_msg("raw_int: %d rows", PQntuples(r));
  long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

/* A new table name for this run. */
static void new_table(char *out, size_t n) {
  snprintf(out, n, "csn_t_%ld_%d", (long)getpid(), ++table_seq);
}

static csn_store *open_url(const char *url) {
  char err[512] = "";
  csn_store *st = NULL;
  int rc = csn_store_pg_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", url, csn_strerror(rc), err);
  return st;
}

/* The shared server, table t (created when missing), more query ("&..."
 * or ""). */
static csn_store *open_table(const char *t, const char *more) {
  char url[1024];
  snprintf(url, sizeof url, "%s?table=%s&create_table=1%s", base_url, t,
           more);
  return open_url(url);
}

static int open_rc(const char *url, char *err, size_t n) {
  csn_store *st = NULL;
  err[0] = '\0';
  int rc = csn_store_pg_open(url, &st, err, n);
  csn_store_free(st);
  return rc;
}

static void get_eq(csn_store *st, const char *id, const char *want) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, id, &json, &len);
  if (rc != CSN_OK || len != strlen(want) || strcmp(json, want) != 0)
    fail_msg("get %s: %s, %zu bytes %s, want %s", id, csn_err_name(rc), len,
             json != NULL ? json : "(none)", want);
  csn_free(json);
}

static void get_missing(csn_store *st, const char *id) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, id, &json, &len);
  if (rc != CSN_ENOENT)
    fail_msg("get %s: %s, want CSN_ENOENT", id, csn_err_name(rc));
  assert_null(json);
}

static void set_ok(csn_store *st, const char *id, const char *json,
                   int64_t exp) {
  int rc = csn_store_set(st, id, json, strlen(json), exp);
  if (rc != CSN_OK)
    fail_msg("set %s: %s (%s)", id, csn_err_name(rc), csn_store_errmsg(st));
}

/* The stored expire of sid as epoch seconds, read in the raw session's
 * (the server's default) zone, as Node's store would read it. */
static long long raw_expire(PGconn *c, const char *t, const char *sid) {
  return raw_int(c,
                 "SELECT extract(epoch FROM expire::timestamptz)::bigint "
                 "FROM \"%s\" WHERE sid = '%s'",
                 t, sid);
}

static void raw_sess_eq(PGconn *c, const char *t, const char *sid,
                        const char *want) {
  char got[1024];
  raw_text(c, got, sizeof got, "SELECT sess::text FROM \"%s\" WHERE sid = '%s'",
           t, sid);
  assert_string_equal(got, want);
}

static void drop_table(PGconn *c, const char *t) {
  raw_exec(c, "DROP TABLE IF EXISTS \"%s\"", t);
}

/* ------------------------------------------------------------------------ */
/* Conformance                                                              */
/* ------------------------------------------------------------------------ */

static char conf_table[64];

static csn_store *conf_open(void *ud) {
  (void)ud;
  return open_table(conf_table, "&pool=8");
}

/* A second handle on the same table (conformance's cross-handle tests). */
static csn_store *conf_open_again(void *ud) { return conf_open(ud); }

static void conf_reset(void *ud) {
  (void)ud;
  PGconn *c = raw_open();
  PGresult *r = PQexec(c, "SELECT 1"); /* the table may not exist yet */
  PQclear(r);
  char sql[128];
  snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", conf_table);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

/* ------------------------------------------------------------------------ */
/* Format                                                                   */
/* ------------------------------------------------------------------------ */

static void store_pg_format(void **state) {
  (void)state;
  char t[64], buf[256];
  new_table(t, sizeof t);
  csn_store *st = open_table(t, "");
  PGconn *c = raw_open();

  /* connect-pg-simple's columns, types and index. */
  PGresult *r = PQexec(c, "SELECT 1");
  PQclear(r);
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT string_agg(column_name || ' ' || data_type || ' ' || "
           "is_nullable, ', ' ORDER BY ordinal_position) FROM "
           "information_schema.columns WHERE table_name = '%s'",
           t);
  raw_text(c, buf, sizeof buf, "%s", sql);
  assert_string_equal(buf, "sid character varying NO, sess json NO, "
                           "expire timestamp without time zone NO");
  raw_text(c, buf, sizeof buf,
           "SELECT datetime_precision FROM information_schema.columns "
           "WHERE table_name = '%s' AND column_name = 'expire'",
           t);
  assert_string_equal(buf, "6");
  assert_int_equal(raw_int(c,
                           "SELECT count(*) FROM pg_indexes WHERE tablename "
                           "= '%s' AND indexname = 'IDX_%s_expire' AND "
                           "indexdef LIKE '%%(expire)'",
                           t, t),
                   1);
  assert_int_equal(raw_int(c,
                           "SELECT count(*) FROM pg_constraint WHERE conname "
                           "= '%s_pkey' AND contype = 'p'",
                           t),
                   1);

  /* set: sess byte for byte, expire = ceil(expires / 1000) exactly. */
  int64_t exp = wall_ms() + 60200;
  set_ok(st, "a1", REC, exp);
  raw_sess_eq(c, t, "a1", REC);
  assert_int_equal(raw_expire(c, t, "a1"), ceil_s(exp));
  /* ...compared in SQL too: expire = to_timestamp(E) in this zone. */
  assert_int_equal(raw_int(c,
                           "SELECT count(*) FROM \"%s\" WHERE sid = 'a1' AND "
                           "expire = to_timestamp(%lld)::timestamp",
                           t, (long long)ceil_s(exp)),
                   1);
  /* 1.2 s from a whole second: ceil, not round or floor. */
  exp = (wall_ms() / 1000 + 30) * 1000 + 1;
  set_ok(st, "a1", REC, exp);
  assert_int_equal(raw_expire(c, t, "a1"), exp / 1000 + 1);
  exp = (wall_ms() / 1000 + 30) * 1000;
  set_ok(st, "a1", REC, exp);
  assert_int_equal(raw_expire(c, t, "a1"), exp / 1000);
  get_eq(st, "a1", REC);

  /* A browser-session cookie: ceil(now / 1000) + 86400. */
  int64_t lo = ceil_s(wall_ms());
  set_ok(st, "b1", REC, CSN_TIME_NONE);
  int64_t hi = ceil_s(wall_ms());
  long long e = raw_expire(c, t, "b1");
  assert_true(e >= lo + 86400 && e <= hi + 86400);

  /* get reads what Node wrote, byte for byte. */
  raw_exec(c,
           "INSERT INTO \"%s\" VALUES ('n1', '%s', to_timestamp(%lld))", t,
           NODE, (long long)(wall_ms() / 1000 + 600));
  get_eq(st, "n1", NODE);
  /* An expired row still in the table is no session, for get and cas;
   * nor does touch revive it. */
  raw_exec(c, "INSERT INTO \"%s\" VALUES ('old', '%s', to_timestamp(%lld))",
           t, NODE, (long long)(wall_ms() / 1000 - 10));
  get_missing(st, "old");
  assert_int_equal(csn_store_cas(st, "old", NODE, strlen(NODE), REC,
                                 strlen(REC), wall_ms() + 60000),
                   CSN_ENOENT);
  assert_int_equal(
      csn_store_touch(st, "old", REC, strlen(REC), wall_ms() + 600000),
      CSN_OK);
  get_missing(st, "old");
  raw_sess_eq(c, t, "old", NODE);
  /* set with an expiry in the past writes the row (connect-pg-simple), and
   * get ignores it. */
  exp = wall_ms() - 5000;
  set_ok(st, "past", REC, exp);
  assert_int_equal(raw_expire(c, t, "past"), ceil_s(exp));
  get_missing(st, "past");

  /* touch moves only expire: the stored text is Node's, and stays. */
  raw_exec(c, "UPDATE \"%s\" SET sess = '%s' WHERE sid = 'a1'", t, NODE);
  exp = wall_ms() + 3600400;
  assert_int_equal(csn_store_touch(st, "a1", REC, strlen(REC), exp), CSN_OK);
  raw_sess_eq(c, t, "a1", NODE);
  assert_int_equal(raw_expire(c, t, "a1"), ceil_s(exp));
  lo = ceil_s(wall_ms());
  assert_int_equal(csn_store_touch(st, "a1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  e = raw_expire(c, t, "a1");
  assert_true(e >= lo + 86400 && e <= ceil_s(wall_ms()) + 86400);
  /* ...never creates a row. */
  assert_int_equal(
      csn_store_touch(st, "none", REC, strlen(REC), wall_ms() + 60000),
      CSN_OK);
  assert_int_equal(
      raw_int(c, "SELECT count(*) FROM \"%s\" WHERE sid = 'none'", t), 0);

  /* cas writes sess and expire as set does. */
  exp = wall_ms() + 7200700;
  assert_int_equal(csn_store_cas(st, "a1", NODE, strlen(NODE), REC,
                                 strlen(REC), exp),
                   CSN_OK);
  raw_sess_eq(c, t, "a1", REC);
  assert_int_equal(raw_expire(c, t, "a1"), ceil_s(exp));

  /* destroy is DELETE. */
  assert_int_equal(csn_store_destroy(st, "a1"), CSN_OK);
  assert_int_equal(
      raw_int(c, "SELECT count(*) FROM \"%s\" WHERE sid = 'a1'", t), 0);
  assert_int_equal(csn_store_destroy(st, "a1"), CSN_OK);
  csn_store_free(st);

  /* The ttl option; disable_touch. */
  st = open_table(t, "&ttl=600&disable_touch=true");
  lo = ceil_s(wall_ms());
  set_ok(st, "c1", REC, CSN_TIME_NONE);
  e = raw_expire(c, t, "c1");
  assert_true(e >= lo + 600 && e <= ceil_s(wall_ms()) + 600);
  exp = wall_ms() + 60000;
  set_ok(st, "c1", REC, exp);
  assert_int_equal(
      csn_store_touch(st, "c1", REC, strlen(REC), wall_ms() + 3600000),
      CSN_OK);
  assert_int_equal(raw_expire(c, t, "c1"), ceil_s(exp));
  csn_store_free(st);
  drop_table(c, t);
  PQfinish(c);
}

/* ------------------------------------------------------------------------ */
/* Time zones                                                               */
/* ------------------------------------------------------------------------ */

/* Two writers that share one explicit zone through the URL's options (as
 * two Node apps whose pg Pool passes the same options) agree, and the
 * stored expire is the instant as that zone sees it: the zone is honoured,
 * not dropped. (Writers in different zones disagree by the offset, Node's
 * as much as ours: expire has no time zone; the header says so.) */
#define TZ_SQL "'Pacific/Kiritimati'"
static void store_pg_time_zones(void **state) {
  (void)state;
  char t[64];
  new_table(t, sizeof t);
  csn_store *a = open_table(
      t, "&options=-c%20TimeZone%3DPacific/Kiritimati&application_name=tz");
  csn_store *b = open_table(
      t, "&options=--TimeZone%3DPacific/Kiritimati%20-c%20work_mem%3D8MB");
  PGconn *c = raw_open();
  int64_t exp = wall_ms() + 3600000 + 300;
  set_ok(a, "za", REC, exp);
  set_ok(b, "zb", NODE, exp);
  get_eq(b, "za", REC);
  get_eq(a, "zb", NODE);
  const char *in_zone = "SELECT count(*) FROM \"%s\" WHERE expire = "
                        "(to_timestamp(%lld) AT TIME ZONE " TZ_SQL ")";
  assert_int_equal(raw_int(c, in_zone, t, (long long)ceil_s(exp)), 2);
  /* touch and cas through either. */
  exp += 600000;
  assert_int_equal(csn_store_touch(b, "za", REC, strlen(REC), exp), CSN_OK);
  assert_int_equal(csn_store_cas(a, "zb", NODE, strlen(NODE), REC,
                                 strlen(REC), exp),
                   CSN_OK);
  assert_int_equal(raw_int(c, in_zone, t, (long long)ceil_s(exp)), 2);
  /* A row that expired 10 s ago in that zone is dead for both. */
  raw_exec(c,
           "INSERT INTO \"%s\" VALUES ('zo', '{}', to_timestamp(%lld) AT "
           "TIME ZONE " TZ_SQL ")",
           t, (long long)(wall_ms() / 1000 - 10));
  get_missing(a, "zo");
  get_missing(b, "zo");
  csn_store_free(a);
  csn_store_free(b);

  /* A zone the client still imposes (PGTZ) is refused at open, saying
   * why. No other thread runs here, so setenv is safe. */
  char url[512], err[512];
  snprintf(url, sizeof url, "%s?table=%s", base_url, t);
  setenv("PGTZ", "Asia/Tokyo", 1);
  int rc = open_rc(url, err, sizeof err);
  unsetenv("PGTZ");
  assert_int_equal(rc, CSN_EINVAL);
  assert_non_null(strstr(err, "TimeZone"));
  drop_table(c, t);
  PQfinish(c);
}

/* ------------------------------------------------------------------------ */
/* SQL injection                                                            */
/* ------------------------------------------------------------------------ */

static void store_pg_injection(void **state) {
  (void)state;
  char t[64], name[256], buf[256], url[1024];
  new_table(t, sizeof t);
  PGconn *c = raw_open();
  /* A canary the payloads below would drop. */
  raw_exec(c, "CREATE TABLE \"%s_canary\" (x int)", t);

  /* Ids are parameters: quotes and comments are just bytes. */
  csn_store *st = open_table(t, "");
  const char *ids[] = {"x'; DROP TABLE session; --",
                       "x\"; DROP TABLE \"csn\"; --", "' OR '1'='1",
                       "$1", "%s%n", "\xc3\xa9t\xc3\xa9"};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    set_ok(st, ids[i], REC, wall_ms() + 60000);
    get_eq(st, ids[i], REC);
  }
  get_missing(st, "x");
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, sizeof ids / sizeof ids[0]);
  assert_int_equal(raw_int(c,
                           "SELECT count(*) FROM \"%s\" WHERE sid = "
                           "'x''; DROP TABLE session; --'",
                           t),
                   1);
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    assert_int_equal(csn_store_destroy(st, ids[i]), CSN_OK);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  csn_store_free(st);
  drop_table(c, t);

  /* Table and schema names are quoted identifiers: a hostile name is a
   * literal (odd) table name. */
  snprintf(name, sizeof name, "%s\"; DROP TABLE \"%s_canary\"; --", t, t);
  snprintf(url, sizeof url,
           "%s?table=%s%%22%%3B%%20DROP%%20TABLE%%20%%22%s_canary%%22%%3B%%20"
           "--&create_table=1",
           base_url, t, t);
  st = open_url(url);
  set_ok(st, "k", REC, wall_ms() + 60000);
  get_eq(st, "k", REC);
  csn_store_free(st);
  raw_text(c, buf, sizeof buf,
           "SELECT relname FROM pg_class WHERE relname LIKE '%s\"%%' AND "
           "relkind = 'r'",
           t);
  assert_string_equal(buf, name);
  assert_int_equal(
      raw_int(c, "SELECT count(*) FROM \"%s_canary\"", t), 0); /* exists */
  {
    char *q = PQescapeIdentifier(c, name, strlen(name));
    raw_exec(c, "DROP TABLE %s", q);
    PQfreemem(q);
  }
  /* A schema name too (the schema must exist: it is not created). */
  csn_pg_options o;
  memset(&o, 0, sizeof o);
  char schema[96], err[512];
  snprintf(schema, sizeof schema, "%s_s\"x", t);
  raw_exec(c, "CREATE SCHEMA \"%s_s\"\"x\"", t);
  o.conninfo = base_url;
  o.schema = schema;
  o.table = "session";
  o.create_table = 1;
  st = NULL;
  assert_int_equal(csn_store_pg_new(&o, &st, err, sizeof err), CSN_OK);
  set_ok(st, "k", REC, wall_ms() + 60000);
  csn_store_free(st);
  assert_int_equal(
      raw_int(c, "SELECT count(*) FROM \"%s_s\"\"x\".session", t), 1);
  /* connect-pg-simple's own index name for its default table name. */
  assert_int_equal(raw_int(c,
                           "SELECT count(*) FROM pg_indexes WHERE schemaname "
                           "= '%s_s\"x' AND indexname = 'IDX_session_expire'",
                           t),
                   1);
  raw_exec(c, "DROP SCHEMA \"%s_s\"\"x\" CASCADE", t);
  raw_exec(c, "DROP TABLE \"%s_canary\"", t);
  PQfinish(c);
}

/* ------------------------------------------------------------------------ */
/* Opening: create_table, URLs, messages                                    */
/* ------------------------------------------------------------------------ */

typedef struct opener {
  const char *url;
  int rc;
  char err[512];
} opener;

static void *open_main(void *arg) {
  opener *o = arg;
  o->rc = open_rc(o->url, o->err, sizeof o->err);
  return NULL;
}

static void store_pg_create_table(void **state) {
  (void)state;
  char t[64], url[512], err[512];
  new_table(t, sizeof t);
  /* Without create_table a missing table is an error at open. */
  snprintf(url, sizeof url, "%s?table=%s", base_url, t);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_ESTORE);
  assert_non_null(strstr(err, "does not exist"));
  assert_non_null(strstr(err, "create_table"));
  assert_string_equal(csn_last_error(), err);
  /* Four openers at once create it once, and none fails. */
  snprintf(url, sizeof url, "%s?table=%s&create_table=yes&prune=0", base_url,
           t);
  opener o[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    o[i].url = url;
    assert_int_equal(pthread_create(&th[i], NULL, open_main, &o[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    if (o[i].rc != CSN_OK) fail_msg("opener %d: %s", i, o[i].err);
  }
  /* Now it exists, without create_table too. */
  snprintf(url, sizeof url, "%s?table=%s", base_url, t);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_OK);
  PGconn *c = raw_open();
  drop_table(c, t);
  PQfinish(c);
}

static void store_pg_url(void **state) {
  (void)state;
  char t[64], url[1024], err[512], app[64];
  new_table(t, sizeof t);
  snprintf(app, sizeof app, "csn_url_%ld", (long)getpid());
  /* Every store option, and libpq's parameters around them (passed on:
   * application_name shows in pg_stat_activity). */
  snprintf(url, sizeof url,
           "%s?sslmode=disable&table=%s&create_table=1&prune=0&ttl=5&"
           "disable_touch=false&timeout=2000&application_name=%s&pool=2&"
           "connect_timeout=3",
           base_url, t, app);
  csn_store *st = open_url(url);
  assert_string_equal(csn_store_name(st), "postgres");
  assert_int_equal(csn_store_has_cas(st), 1);
  int64_t lo = ceil_s(wall_ms());
  set_ok(st, "x", REC, CSN_TIME_NONE);
  PGconn *c = raw_open();
  long long e = raw_expire(c, t, "x");
  assert_true(e >= lo + 5 && e <= ceil_s(wall_ms()) + 5);
  assert_int_equal(raw_int(c,
                           "SELECT count(*) FROM pg_stat_activity WHERE "
                           "application_name = '%s'",
                           app),
                   1);
  csn_store_free(st);
  /* postgres:// too, and csn_store_open()'s route; a name with a percent
   * escape. */
  assert_int_equal(strncmp(base_url, "postgresql://", 13), 0);
  snprintf(url, sizeof url, "postgres://%s?table=%s", base_url + 13, t);
  csn_store_free(open_url(url));
  assert_int_equal(csn_stores_register_all(), CSN_OK);
  st = NULL;
  assert_int_equal(csn_store_open(url, &st, err, sizeof err), CSN_OK);
  assert_string_equal(csn_store_name(st), "postgres");
  csn_store_free(st);
  /* No application_name given: csession's own fallback. */
  st = open_table(t, "&pool=1");
  set_ok(st, "y", REC, wall_ms() + 60000);
  assert_true(raw_int(c,
                      "SELECT count(*) FROM pg_stat_activity WHERE "
                      "application_name = 'csession' AND datname = "
                      "current_database()") >= 1);
  csn_store_free(st);
  drop_table(c, t);
  PQfinish(c);
}

static void store_pg_url_bad(void **state) {
  (void)state;
  char url[1024], err[512];
  struct {
    const char *query; /* appended to the base URL */
    int rc;
    const char *needle;
  } bad[] = {
      {"?pool=0", CSN_EINVAL, "pool"},
      {"?pool=2000", CSN_EINVAL, "pool"},
      {"?timeout=-5", CSN_EINVAL, "timeout"},
      {"?timeout=abc", CSN_EINVAL, "timeout"},
      {"?ttl=0", CSN_EINVAL, "ttl"},
      {"?prune=-1", CSN_EINVAL, "prune"},
      {"?disable_touch=maybe", CSN_EINVAL, "disable_touch"},
      {"?create_table=2", CSN_EINVAL, "create_table"},
      {"?ttl=1&ttl=2", CSN_EINVAL, "ttl"},
      {"?table=", CSN_EINVAL, "table"},
      {"?table=a%zz", CSN_EINVAL, "table"},
      {"?table="
       "a123456789a123456789a123456789a123456789a123456789a123456789abcd",
       CSN_EINVAL, "table"},
      {"?schema=", CSN_EINVAL, "schema"},
      {"?bogus=1", CSN_EINVAL, "bogus"}, /* libpq's to refuse */
      {"?sslmode=sometimes", CSN_ESTORE, ""},
      {"?a&b=1", CSN_EINVAL, "parameter"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(url, sizeof url, "%s%s", base_url, bad[i].query);
    int rc = open_rc(url, err, sizeof err);
    if ((bad[i].rc != CSN_ESTORE && rc != bad[i].rc) ||
        (bad[i].rc == CSN_ESTORE && rc == CSN_OK) ||
        strstr(err, bad[i].needle) == NULL)
      fail_msg("%s: %s (%s), want %s with '%s'", url, csn_err_name(rc), err,
               csn_err_name(bad[i].rc), bad[i].needle);
    assert_string_equal(csn_last_error(), err);
    /* No store option's value is echoed. */
    assert_null(strstr(err, "maybe"));
  }
  assert_int_equal(open_rc("mysql://x/y", err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "postgres://"));
  /* csn_store_pg_new checks its options too. */
  csn_pg_options o;
  csn_store *st = NULL;
  memset(&o, 0, sizeof o);
  o.conninfo = base_url;
  o.pool_size = 5000;
  assert_int_equal(csn_store_pg_new(&o, &st, err, sizeof err), CSN_EINVAL);
  o.pool_size = 0;
  o.table = "";
  assert_int_equal(csn_store_pg_new(&o, &st, err, sizeof err), CSN_EINVAL);
  o.table = NULL;
  o.timeout_ms = -1;
  assert_int_equal(csn_store_pg_new(&o, &st, err, sizeof err), CSN_EINVAL);
  o.timeout_ms = 0;
  o.conninfo = "host=127.0.0.1 bogus_keyword=1";
  assert_int_equal(csn_store_pg_new(&o, &st, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "bogus_keyword"));
  assert_null(st);
  assert_int_equal(csn_store_pg_new(&o, NULL, NULL, 0), CSN_EINVAL);
}

/* Passwords never show: not for an unreachable server, a refused login,
 * a malformed URL or a bad escape in the password itself. */
static void store_pg_password_hidden(void **state) {
  (void)state;
  char url[1024], err[512];
  const char *urls[] = {
      "postgresql://u:Pw%%2Fs3cr3t@127.0.0.1:1/db?connect_timeout=2",
      "postgresql://u:Pw%%zzs3cr3t@127.0.0.1:1/db",
      "postgresql://u:Pws3cr3t@127.0.0.1:1/db?bogus=Pws3cr3t",
      "postgresql://u:Pws3cr3t@127.0.0.1:1:2/db",
      "postgres://u:Pws3cr3t@127.0.0.1:1/db?pool=x",
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    snprintf(url, sizeof url, urls[i], 0);
    int64_t t0 = mono_ms();
    int rc = open_rc(url, err, sizeof err);
    assert_true(rc != CSN_OK);
    assert_true(mono_ms() - t0 < 3000);
    if (strstr(err, "s3cr3t") != NULL || strstr(csn_last_error(), "s3cr3t"))
      fail_msg("%s: message shows the password: %s", url, err);
  }
  /* The refusal of a server (no such database) is CSN_ESTORE, and the
   * connection failure of a closed port CSN_EIO naming where. */
  snprintf(url, sizeof url, "postgresql://u:Pws3cr3t@127.0.0.1:1/db");
  assert_int_equal(open_rc(url, err, sizeof err), CSN_EIO);
  assert_non_null(strstr(err, "postgres 127.0.0.1:1: connect: "));
  snprintf(url, sizeof url, "%s_no_such_db", base_url);
  assert_int_equal(open_rc(url, err, sizeof err), CSN_ESTORE);
  assert_non_null(strstr(err, "no_such_db"));
}

/* ------------------------------------------------------------------------ */
/* Prune, sweeper, enumeration                                              */
/* ------------------------------------------------------------------------ */

static void store_pg_prune(void **state) {
  (void)state;
  char t[64];
  new_table(t, sizeof t);
  csn_store *st = open_table(t, "&prune=0");
  PGconn *c = raw_open();
  int64_t now = wall_ms();
  set_ok(st, "live1", REC, now + 60000);
  set_ok(st, "live2", REC, CSN_TIME_NONE);
  for (int i = 0; i < 5; i++) {
    char id[16];
    snprintf(id, sizeof id, "dead%d", i);
    set_ok(st, id, REC, now - 2000 - i * 1000);
  }
  assert_int_equal(raw_int(c, "SELECT count(*) FROM \"%s\"", t), 7);
  size_t removed = 99, n = 0;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 5);
  assert_int_equal(raw_int(c, "SELECT count(*) FROM \"%s\"", t), 2);
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 0);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 2);
  csn_store_free(st);

  /* The sweeper: a 200 ms interval (100..300 ms with the jitter). */
  csn_pg_options o;
  memset(&o, 0, sizeof o);
  char err[512];
  o.conninfo = base_url;
  o.table = t;
  o.prune_interval_ms = 200;
  st = NULL;
  assert_int_equal(csn_store_pg_new(&o, &st, err, sizeof err), CSN_OK);
  raw_exec(c, "INSERT INTO \"%s\" VALUES ('dead', '{}', to_timestamp(%lld))",
           t, (long long)(wall_ms() / 1000 - 10));
  int64_t t0 = mono_ms();
  while (raw_int(c, "SELECT count(*) FROM \"%s\"", t) != 2 &&
         mono_ms() - t0 < 5000)
    sleep_ms(20);
  assert_int_equal(raw_int(c, "SELECT count(*) FROM \"%s\"", t), 2);
  /* Close with the thread running: prompt. */
  t0 = mono_ms();
  csn_store_free(st);
  assert_true(mono_ms() - t0 < 1000);
  drop_table(c, t);
  PQfinish(c);
}

#define WALK_ROWS 1203 /* three batches of 500 and a bit */

static void store_pg_enumerate(void **state) {
  (void)state;
  char t[64];
  new_table(t, sizeof t);
  csn_store *st = open_table(t, "&pool=1&prune=0");
  PGconn *c = raw_open();
  /* Rows written raw, in bulk; one expired, one with an id the core would
   * never make (skipped by all, as it could not be named). */
  raw_exec(c,
           "INSERT INTO \"%s\" SELECT 'k' || i, format('{\"i\": %%s}', "
           "i)::json, to_timestamp(%lld) FROM generate_series(0, %d) i",
           t, (long long)(wall_ms() / 1000 + 600), WALK_ROWS - 1);
  raw_exec(c, "INSERT INTO \"%s\" VALUES ('gone', '{}', to_timestamp(%lld))",
           t, (long long)(wall_ms() / 1000 - 10));
  raw_exec(c, "INSERT INTO \"%s\" VALUES ('a/b', '{}', to_timestamp(%lld))",
           t, (long long)(wall_ms() / 1000 + 600));
  size_t n = 0;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, WALK_ROWS + 1); /* live rows */
  /* Every live row once, byte for byte (PostgreSQL's json text keeps the
   * space format() wrote); a get from inside the callback every 97 rows
   * (no connection is held during the callback, even with pool=1); a
   * non-zero return stops the walk inside a later batch. */
  csn_conformance_walk(st, WALK_ROWS, " ", 97, 777);
  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 0);
  assert_int_equal(raw_int(c, "SELECT count(*) FROM \"%s\"", t), 0);
  csn_store_free(st);
  drop_table(c, t);
  PQfinish(c);
}

/* ------------------------------------------------------------------------ */
/* Concurrency: the pool and compare-and-set across handles                 */
/* ------------------------------------------------------------------------ */

#define POOL_THREADS 8
#define POOL_ROUNDS 100

/* The shared workers (store_conformance.c), 8 threads on a pool of 2. */
static void store_pg_pool_threads(void **state) {
  (void)state;
  char t[64];
  new_table(t, sizeof t);
  csn_store *st = open_table(t, "&pool=2");
  csn_conformance_threads(st, POOL_THREADS, POOL_ROUNDS);
  csn_store_free(st);
  PGconn *c = raw_open();
  drop_table(c, t);
  PQfinish(c);
}

typedef struct late {
  csn_store *st;
  const char *cur;
  int rc;
} late;

static void *late_main(void *arg) {
  late *l = arg;
  const char *next = "{\"cookie\":{},\"n\":-1}";
  l->rc = csn_store_cas(l->st, "ctr", l->cur, strlen(l->cur), next,
                        strlen(next), wall_ms() + 300000);
  return NULL;
}

static void store_pg_cas_two_handles(void **state) {
  (void)state;
  char t[64], want[64];
  new_table(t, sizeof t);
  csn_store *a = open_table(t, "&pool=2");
  csn_store *b = open_table(t, "&pool=2");
  /* Two threads per handle increment a counter by get + cas, retrying on
   * conflicts (store_conformance.c): none is lost... */
  csn_conformance_cas_counter(a, b, "ctr", wall_ms() + 300000, want,
                              sizeof want);
  /* ...as the table itself shows. */
  PGconn *c = raw_open();
  raw_sess_eq(c, t, "ctr", want);

  /* Against a transaction holding the row: cas waits for it, then
   * compares with what it committed. Text kept (expire moved): written.
   * Text changed: a conflict, the other's text stays. Deleted: gone. */
  const char *other = "{\"cookie\":{},\"n\":-7}";
  struct {
    const char *sql;
    int rc;
    const char *after; /* sess afterwards; NULL: no row */
  } cases[] = {
      {"UPDATE \"%s\" SET expire = expire + interval '1 hour' WHERE sid = "
       "'ctr'",
       CSN_OK, "{\"cookie\":{},\"n\":-1}"},
      {"UPDATE \"%s\" SET sess = '{\"cookie\":{},\"n\":-7}' WHERE sid = "
       "'ctr'",
       CSN_ECONFLICT, other},
      {"DELETE FROM \"%s\" WHERE sid = 'ctr'", CSN_ENOENT, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    set_ok(a, "ctr", want, wall_ms() + 300000);
    raw_exec(c, "BEGIN");
    raw_exec(c, cases[i].sql, t);
    late l = {b, want, 99};
    pthread_t lt;
    assert_int_equal(pthread_create(&lt, NULL, late_main, &l), 0);
    sleep_ms(150); /* the cas is now waiting for the row */
    raw_exec(c, "COMMIT");
    pthread_join(lt, NULL);
    if (l.rc != cases[i].rc)
      fail_msg("case %zu: %s, want %s", i, csn_err_name(l.rc),
               csn_err_name(cases[i].rc));
    if (cases[i].after != NULL)
      raw_sess_eq(c, t, "ctr", cases[i].after);
    else
      assert_int_equal(
          raw_int(c, "SELECT count(*) FROM \"%s\" WHERE sid = 'ctr'", t), 0);
  }
  drop_table(c, t);
  PQfinish(c);
  csn_store_free(a);
  csn_store_free(b);
}

/* ------------------------------------------------------------------------ */
/* Timeouts and dead connections                                            */
/* ------------------------------------------------------------------------ */

static void store_pg_statement_timeout(void **state) {
  (void)state;
  char t[64];
  new_table(t, sizeof t);
  csn_store *st = open_table(t, "&timeout=200&pool=2&prune=0");
  set_ok(st, "k", REC, wall_ms() + 60000);
  PGconn *c = raw_open();
  raw_exec(c, "BEGIN");
  raw_exec(c, "LOCK TABLE \"%s\" IN ACCESS EXCLUSIVE MODE", t);
  char *json = NULL;
  size_t len = 0;
  int64_t t0 = mono_ms();
  assert_int_equal(csn_store_get(st, "k", &json, &len), CSN_ETIMEDOUT);
  int64_t ms = mono_ms() - t0;
  assert_true(ms >= 150 && ms < 1000);
  const char *msg = csn_store_errmsg(st);
  assert_non_null(strstr(msg, "postgres 127.0.0.1:"));
  assert_non_null(strstr(msg, "get"));
  t0 = mono_ms();
  assert_int_equal(csn_store_set(st, "k", NODE, strlen(NODE), wall_ms()),
                   CSN_ETIMEDOUT);
  assert_true(mono_ms() - t0 < 1000);
  raw_exec(c, "COMMIT");
  get_eq(st, "k", REC);
  csn_store_free(st);
  drop_table(c, t);
  PQfinish(c);
}

/* Terminate the store's backends (ours alone: application_name). */
static int terminate(PGconn *c, const char *app) {
  int n = (int)raw_int(c,
                       "SELECT count(pg_terminate_backend(pid)) FROM "
                       "pg_stat_activity WHERE application_name = '%s'",
                       app);
  int64_t t0 = mono_ms();
  while (raw_int(c,
                 "SELECT count(*) FROM pg_stat_activity WHERE "
                 "application_name = '%s'",
                 app) != 0 &&
         mono_ms() - t0 < 5000)
    sleep_ms(10);
  return n;
}

/* Large writes while the backend is killed: EPIPE, never SIGPIPE (the
 * test runs with SIGPIPE's default action, which would kill it). */
typedef struct big {
  csn_store *st;
  int ok, failed;
} big;

static void *big_writer(void *arg) {
  big *b = arg;
  size_t n = 512 * 1024;
  char *rec = malloc(n + 32);
  if (rec == NULL) return NULL;
  memset(rec, 'x', n + 32);
  memcpy(rec, "{\"cookie\":{},\"b\":\"", 18);
  memcpy(rec + n + 29, "\"}", 3);
  for (int i = 0; i < 40; i++) {
    if (csn_store_set(b->st, "big", rec, n + 31, wall_ms() + 60000) == CSN_OK)
      b->ok++;
    else
      b->failed++;
  }
  free(rec);
  return NULL;
}

static void store_pg_terminated(void **state) {
  (void)state;
  char t[64], app[64], more[128];
  new_table(t, sizeof t);
  snprintf(app, sizeof app, "csn_test_%ld", (long)getpid());
  snprintf(more, sizeof more, "&application_name=%s&pool=1&prune=0", app);
  csn_store *st = open_table(t, more);
  PGconn *c = raw_open();
  set_ok(st, "k", REC, wall_ms() + 60000);
  /* The idle connection is dead: the next operation notices before it
   * sends anything (or replays on a new connection), and succeeds. */
  assert_int_equal(terminate(c, app), 1);
  get_eq(st, "k", REC);
  assert_int_equal(terminate(c, app), 1);
  set_ok(st, "k", NODE, wall_ms() + 60000);
  /* cas is never replayed, so it always checks first: it succeeds too. */
  assert_int_equal(terminate(c, app), 1);
  int rc = csn_store_cas(st, "k", NODE, strlen(NODE), REC, strlen(REC),
                         wall_ms() + 60000);
  if (rc != CSN_OK)
    fail_msg("cas: %s (%s)", csn_err_name(rc), csn_store_errmsg(st));
  /* Right after the kill (within the idle-check window): still fine. */
  assert_int_equal(
      (int)raw_int(c,
                   "SELECT count(pg_terminate_backend(pid)) FROM "
                   "pg_stat_activity WHERE application_name = '%s'",
                   app),
      1);
  get_eq(st, "k", REC);
  /* Killed in the middle of large writes: some fail (CSN_EIO), none
   * raises SIGPIPE, and the store works afterwards. */
  big b = {st, 0, 0};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, big_writer, &b), 0);
  for (int i = 0; i < 5; i++) {
    sleep_ms(30);
    (void)raw_int(c,
                  "SELECT count(pg_terminate_backend(pid)) FROM "
                  "pg_stat_activity WHERE application_name = '%s'",
                  app);
  }
  pthread_join(th, NULL);
  assert_int_equal(b.ok + b.failed, 40);
  set_ok(st, "k", REC, wall_ms() + 60000);
  get_eq(st, "k", REC);
  csn_store_free(st);
  drop_table(c, t);
  PQfinish(c);
}

/* ------------------------------------------------------------------------ */

int main(void) {
  const char *url = getenv("CSN_TEST_PG_URL");
  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "store_pg: CSN_TEST_PG_URL is not set; run it with "
                    "scripts/services.sh run ctest ... (skipped)\n");
    return 77;
  }
  if (strncmp(url, "postgresql://", 13) != 0 || strchr(url, '?') != NULL) {
    fprintf(stderr, "store_pg: CSN_TEST_PG_URL must be postgresql://... "
                    "without a query: %s\n",
            url);
    return 1;
  }
  base_url = url;
  /* A stray SIGPIPE must kill us: the store is responsible for its own. */
  signal(SIGPIPE, SIG_DFL);
  new_table(conf_table, sizeof conf_table);

  csn_conformance conf;
  memset(&conf, 0, sizeof conf);
  conf.open = conf_open;
  conf.open_again = conf_open_again;
  conf.reset = conf_reset;
  conf.cas = 1;
  conf.all_expired = 1;
  conf.touch_expiry_only = 1;
  int failed = csn_conformance_run("store_pg_conformance", &conf);
  {
    PGconn *c = PQconnectdb(base_url);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS \"%s\"", conf_table);
    PQclear(PQexec(c, sql));
    PQfinish(c);
  }

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_pg_format),
      cmocka_unit_test(store_pg_time_zones),
      cmocka_unit_test(store_pg_injection),
      cmocka_unit_test(store_pg_create_table),
      cmocka_unit_test(store_pg_url),
      cmocka_unit_test(store_pg_url_bad),
      cmocka_unit_test(store_pg_password_hidden),
      cmocka_unit_test(store_pg_prune),
      cmocka_unit_test(store_pg_enumerate),
      cmocka_unit_test(store_pg_pool_threads),
      cmocka_unit_test(store_pg_cas_two_handles),
      cmocka_unit_test(store_pg_statement_timeout),
      cmocka_unit_test(store_pg_terminated),
  };
  failed += cmocka_run_group_tests_name("store_pg", tests, NULL, NULL);
  return failed == 0 ? 0 : 1;
}
