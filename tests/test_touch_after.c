/* test_touch_after.c - lazy touch (csn_options.touch_after_ms) on a real
 * store, counted at the store: the store is wrapped by a counting store
 * (tests/life_count_store.h) that forwards every call, so the numbers are
 * the calls the real store received.
 *
 * Usage: test_touch_after memory|file|sqlite|redis|pg|mongo
 * The server stores take their server from CSN_TEST_REDIS_URL,
 * CSN_TEST_PG_URL, CSN_TEST_MONGO_URL (scripts/services.sh); without it
 * the test exits 77 (skip).
 *
 * One session, created at t = 0, then N = 30 requests 10 s apart on the
 * test's clock (the wall clock at the start plus the fake offset, so the
 * real store's own expiry arithmetic stays sane), maxAge one day,
 * touch_after 60 s; the request at t = 150 s changes a member, the others
 * change nothing. The expected writes follow from the rule: an unchanged
 * request writes (touch, or with resave the save) only when the stored
 * expiry was refreshed 60 s or more ago; a change is always saved. For each
 * of resave off / rolling off, resave off / rolling on and resave on:
 *   - without the option every request writes (N writes);
 *   - with it, exactly the writes the rule gives (5 of 30), each at the
 *     request the rule says;
 *   - the Set-Cookie of every request is the same with and without it;
 *   - the change at t = 150 s is stored either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_stores.h"
#include "life_count_store.h"
#ifdef CSN_TA_PG
#include "pg_drop.h"
#endif
#include "request_rig.h"
#include "test_clock.h"

#define N 30
#define STEP_MS INT64_C(10000)
#define TOUCH_AFTER INT64_C(60000)
#define MAX_AGE INT64_C(86400000)
#define CHANGE_AT 15 /* the request (1..N) that changes a member */
#define SECRET "touch after secret"

static const char *kind;
static char url[1024];
static char tmpdir[256];
static int64_t base_ms, fake_now;
static int run_no;

static int64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static const char *const SECRETS[] = {SECRET};

/* Ids unique to this process and run (the server stores are shared). */
static int run_genid(const csn_request_info *req, char *buf, size_t size,
                     void *ud) {
  (void)req, (void)ud;
  snprintf(buf, size, "touchafter%ldx%dxAAAAAAAAAAAAAAAAAAAAAAA",
           (long)getpid(), run_no);
  return CSN_OK;
}

static csn_store *open_real(void) {
  csn_store *st = NULL;
  char err[512] = "";
  if (strcmp(kind, "memory") == 0)
    assert_int_equal(csn_store_memory_new(NULL, &st), CSN_OK);
  else if (csn_store_open(url, &st, err, sizeof err) != CSN_OK)
    fail_msg("open %s store: %s", kind, err);
  return st;
}

/* What one request did at the store. */
typedef struct rec {
  long saves, touches;
  char set_cookie[512]; /* the Set-Cookie without its value, or "" */
} rec;

typedef struct run_opts {
  int resave, rolling;
  int64_t touch_after;
} run_opts;

static void h_change(csn_session *s) {
  assert_int_equal(csn_session_set_str(s, "item", "changed"), CSN_OK);
}

static void h_read(csn_session *s) {
  const char *v = NULL;
  assert_int_equal(csn_session_get_str(s, "item", &v, NULL), CSN_OK);
}

/* "Expires=..." and the rest: the Set-Cookie after its value, which has
 * the per-run id in it. */
static void attrs_of(const char *sc, char *out, size_t size) {
  const char *p = strchr(sc, ';');
  snprintf(out, size, "%s", p ? p : "");
}

/* One run: a fresh context on a fresh wrapper of a fresh store handle. */
static void run(const run_opts *ro, rec recs[N + 1]) {
  life_store *ls = life_store_new(open_real(), 1);
  csn_options o;
  csn_ctx *ctx = NULL;
  char err[256] = "", cookie[512] = "", sid[CSN_ID_MAX + 1];
  csn_request *r;
  char *sc = NULL;

  run_no++;
  csn_options_init(&o);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  o.store = &ls->base;
  o.clock = fake_clock;
  o.genid = run_genid;
  o.resave = ro->resave;
  o.rolling = ro->rolling;
  o.save_uninitialized = 0;
  o.cookie.max_age_ms = MAX_AGE;
  o.touch_after_ms = ro->touch_after;
  if (csn_ctx_new(&ctx, &o, err, sizeof err) != CSN_OK)
    fail_msg("csn_ctx_new: %s", err);

  /* t = 0: the session is created and saved. */
  fake_now = base_ms;
  r = rig_begin(ctx, NULL);
  assert_int_equal(
      csn_session_set_str(csn_request_session(r), "item", "first"), CSN_OK);
  snprintf(sid, sizeof sid, "%s", csn_request_session_id(r));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  rig_cookie_of(sc, cookie, sizeof cookie);
  csn_free(sc);
  memset(recs, 0, sizeof(rec) * (N + 1));

  for (int i = 1; i <= N; i++) {
    long saves0 = atomic_load(&ls->sets) + atomic_load(&ls->cas);
    long touches0 = atomic_load(&ls->touches);
    fake_now = base_ms + i * STEP_MS;
    r = rig_begin(ctx, cookie);
    assert_string_equal(csn_request_session_id(r), sid);
    if (i == CHANGE_AT)
      h_change(csn_request_session(r));
    else
      h_read(csn_request_session(r));
    sc = NULL;
    assert_int_equal(rig_commit(r, &sc), CSN_OK);
    recs[i].saves = atomic_load(&ls->sets) + atomic_load(&ls->cas) - saves0;
    recs[i].touches = atomic_load(&ls->touches) - touches0;
    if (sc != NULL) {
      attrs_of(sc, recs[i].set_cookie, sizeof recs[i].set_cookie);
      /* the browser keeps the same cookie value */
      char c[512];
      rig_cookie_of(sc, c, sizeof c);
      assert_string_equal(c, cookie);
    }
    csn_free(sc);
  }

  /* The change is in the store. */
  {
    char *text = life_stored(ls, sid);
    assert_non_null(text);
    if (strstr(text, "changed") == NULL)
      fail_msg("%s: the change at request %d was not stored: %s", kind,
               CHANGE_AT, text);
    csn_free(text);
  }
  assert_int_equal(csn_store_destroy(ls->inner, sid), CSN_OK);
  csn_ctx_free(ctx);
  csn_store_free(&ls->base);
}

/* The rule: which requests write with touch_after on. */
static void expected_writes(int want[N + 1]) {
  int64_t last = 0;
  for (int i = 1; i <= N; i++) {
    int64_t t = i * STEP_MS;
    want[i] = i == CHANGE_AT || t - last >= TOUCH_AFTER;
    if (want[i])
      last = t;
  }
}

static void check_case(int resave, int rolling) {
  run_opts off = {resave, rolling, 0}, on = {resave, rolling, TOUCH_AFTER};
  rec r_off[N + 1], r_on[N + 1];
  int want[N + 1];
  long total_off = 0, total_on = 0, want_total = 0;

  run(&off, r_off);
  run(&on, r_on);
  expected_writes(want);
  for (int i = 1; i <= N; i++) {
    long w_off = r_off[i].saves + r_off[i].touches;
    long w_on = r_on[i].saves + r_on[i].touches;
    total_off += w_off;
    total_on += w_on;
    want_total += want[i];
    /* Without the option: express-session's decisions, one write each. */
    if (w_off != 1)
      fail_msg("%s resave=%d rolling=%d, option off, request %d: %ld "
               "writes, want 1",
               kind, resave, rolling, i, w_off);
    if (i == CHANGE_AT || resave)
      assert_int_equal(r_off[i].saves, 1);
    else
      assert_int_equal(r_off[i].touches, 1);
    /* With it: exactly where the rule says; the change is a save. */
    if (w_on != want[i])
      fail_msg("%s resave=%d rolling=%d touch_after=%lld, request %d "
               "(t=%llds): %ld writes (%ld saves, %ld touches), want %d",
               kind, resave, rolling, (long long)TOUCH_AFTER, i,
               (long long)(i * STEP_MS / 1000), w_on, r_on[i].saves,
               r_on[i].touches, want[i]);
    if (i == CHANGE_AT)
      assert_int_equal(r_on[i].saves, 1);
    /* The browser's cookie does not care. */
    if (strcmp(r_off[i].set_cookie, r_on[i].set_cookie) != 0)
      fail_msg("%s request %d: Set-Cookie differs: off '%s', on '%s'", kind,
               i, r_off[i].set_cookie, r_on[i].set_cookie);
  }
  /* rolling: a cookie on every response; otherwise only with the change
   * (expires set and modified) */
  for (int i = 1; i <= N; i++)
    assert_int_equal(r_on[i].set_cookie[0] != '\0', rolling || i == CHANGE_AT);
  assert_int_equal(total_off, N);
  assert_int_equal(total_on, want_total);
  assert_true(want_total < N / 3);
  printf("[ %s resave=%d rolling=%d ] store writes over %d requests: "
         "%ld without touch_after, %ld with touch_after=%llds\n",
         kind, resave, rolling, N, total_off, total_on,
         (long long)(TOUCH_AFTER / 1000));
}

static void touch_after_plain(void **state) {
  (void)state;
  check_case(0, 0);
}

static void touch_after_rolling(void **state) {
  (void)state;
  check_case(0, 1);
}

static void touch_after_resave(void **state) {
  (void)state;
  check_case(1, 0);
}

/* A browser-session cookie (no maxAge) has no refresh instant: it is
 * touched every time, option or not. */
static void touch_after_browser_session(void **state) {
  life_store *ls = life_store_new(open_real(), 1);
  csn_options o;
  csn_ctx *ctx = NULL;
  char err[256] = "", cookie[512], sid[CSN_ID_MAX + 1];
  csn_request *r;
  char *sc = NULL;
  (void)state;
  run_no++;
  csn_options_init(&o);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  o.store = &ls->base;
  o.clock = fake_clock;
  o.genid = run_genid;
  o.resave = 0;
  o.save_uninitialized = 0;
  o.touch_after_ms = TOUCH_AFTER;
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_OK);
  fake_now = base_ms;
  r = rig_begin(ctx, NULL);
  assert_int_equal(csn_session_set_int(csn_request_session(r), "n", 1),
                   CSN_OK);
  snprintf(sid, sizeof sid, "%s", csn_request_session_id(r));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  rig_cookie_of(sc, cookie, sizeof cookie);
  csn_free(sc);
  life_store_reset(ls);
  for (int i = 1; i <= 5; i++) {
    fake_now = base_ms + i * STEP_MS;
    r = rig_begin(ctx, cookie);
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
  }
  assert_int_equal(atomic_load(&ls->touches), 5);
  assert_int_equal(csn_store_destroy(ls->inner, sid), CSN_OK);
  csn_ctx_free(ctx);
  csn_store_free(&ls->base);
}

static int rm_tree(void) {
  char cmd[512];
  if (tmpdir[0] == '\0')
    return 0;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd);
}

/* pg's table and mongo's collection, csn_ta_<pid> (cleanup drops pg's). */
static char table_name[32];

/* The server URL with our own key space: a prefix, a table, a
 * collection of this process. */
static int make_url(void) {
  const char *env = NULL, *q;
  long pid = (long)getpid();
  snprintf(table_name, sizeof table_name, "csn_ta_%ld", pid);
  if (strcmp(kind, "memory") == 0)
    return 0;
  if (strcmp(kind, "file") == 0 || strcmp(kind, "sqlite") == 0) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/csn-touch-after-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
      return -1;
    if (strcmp(kind, "file") == 0)
      snprintf(url, sizeof url, "file://%s/sessions?reap=0", tmpdir);
    else
      snprintf(url, sizeof url, "sqlite://%s/s.db?prune=0", tmpdir);
    return 0;
  }
  if (strcmp(kind, "redis") == 0)
    env = getenv("CSN_TEST_REDIS_URL");
  else if (strcmp(kind, "pg") == 0)
    env = getenv("CSN_TEST_PG_URL");
  else if (strcmp(kind, "mongo") == 0)
    env = getenv("CSN_TEST_MONGO_URL");
  else
    return -1;
  if (env == NULL || env[0] == '\0')
    return 77;
  q = strchr(env, '?') ? "&" : "?";
  if (strcmp(kind, "redis") == 0)
    snprintf(url, sizeof url, "%s%sprefix=csnta%ld:", env, q, pid);
  else if (strcmp(kind, "pg") == 0)
    snprintf(url, sizeof url, "%s%stable=%s&create_table=1&prune=0", env, q,
             table_name);
  else
    snprintf(url, sizeof url, "%s%scollection=%s", env, q, table_name);
  return 0;
}

/* Our keys, rows or documents go; pg's table too (pg_drop.h: no store
 * method drops a table). Returns 0, or -1 when the table stayed. */
static int cleanup(void) {
  int rc = 0;
  if (strcmp(kind, "pg") == 0 || strcmp(kind, "mongo") == 0 ||
      strcmp(kind, "redis") == 0) {
    csn_store *st = NULL;
    char err[256];
    if (csn_store_open(url, &st, err, sizeof err) == CSN_OK) {
      (void)csn_store_clear(st);
      csn_store_free(st);
    }
  }
#ifdef CSN_TA_PG
  if (strcmp(kind, "pg") == 0)
    rc = test_pg_drop_table(getenv("CSN_TEST_PG_URL"), table_name);
#endif
  (void)rm_tree();
  return rc;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(touch_after_plain),
      cmocka_unit_test(touch_after_rolling),
      cmocka_unit_test(touch_after_resave),
      cmocka_unit_test(touch_after_browser_session),
  };
  int rc;
  if (argc != 2) {
    fprintf(stderr, "usage: %s memory|file|sqlite|redis|pg|mongo\n",
            argv[0]);
    return 2;
  }
  kind = argv[1];
  csn_stores_register_all();
  rc = make_url();
  if (rc == 77) {
    fprintf(stderr, "touch_after %s: no server URL in the environment "
                    "(run under scripts/services.sh)\n", kind);
    return 77;
  }
  if (rc != 0) {
    fprintf(stderr, "touch_after: unknown store '%s'\n", kind);
    return 2;
  }
  /* Whole seconds: the stored ISO instants and the cookie's Expires are
   * then exact. */
  base_ms = wall_ms() / 1000 * 1000;
  rc = cmocka_run_group_tests_name(kind, tests, NULL, NULL);
  if (cleanup() != 0 && rc == 0)
    rc = 1;
  return rc;
}
