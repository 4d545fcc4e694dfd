/* test_session_lifetime.c - the absolute timeout (csn_options.lifetime_ms)
 * in-process: a real MemoryStore on the test's clock, wrapped by a counting
 * store (tests/life_count_store.h), and requests without HTTP.
 *
 *   - with rolling on and a request every five minutes of fake time the
 *     session never idles out, yet it ends exactly at the lifetime: the
 *     request one millisecond before keeps the id, the one at the lifetime
 *     gets a new, empty session and the old record is gone from the store
 *     (the same walk with the option off keeps the id: the control that
 *     shows it is the lifetime, not the idle timeout, that ends it);
 *   - regenerate() restarts the lifetime;
 *   - a record without the stamp is stamped when first loaded and saved
 *     once, then expires a lifetime later;
 *   - the stamp is part of the record but not of count(), and clear()
 *     keeps it; an untouched new session stays uninitialized;
 *   - negative options are refused.
 * Rotation's effect on the lifetime is in tests/test_session_rotate.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "life_count_store.h"
#include "request_rig.h"

#define T0 INT64_C(1735689600000) /* 2025-01-01T00:00:00Z */
#define MINUTE INT64_C(60000)
#define MAX_AGE (30 * MINUTE)  /* idle timeout, refreshed by rolling */
#define LIFETIME (120 * MINUTE) /* absolute timeout */
#define SECRET "lifetime secret"

static int64_t fake_now;
static int64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static const char *const SECRETS[] = {SECRET};

typedef life_rig rig;

static void rig_open(rig *g, int64_t lifetime, int rolling) {
  life_rig_open(g, fake_clock, SECRETS, MAX_AGE, lifetime, rolling, 0);
}

static void rig_close(rig *g) { life_rig_close(g); }

typedef void (*handler_fn)(csn_session *s, void *ud);

/* One request with the browser's cookie; the handler acts on the session.
 * The id the request ended with goes to id_out; a Set-Cookie replaces the
 * browser's cookie. Returns 1 when a Set-Cookie was sent. */
static int step(rig *g, handler_fn fn, void *ud, char *id_out) {
  csn_request *r = rig_begin(g->ctx, g->cookie[0] ? g->cookie : NULL);
  csn_session *s = csn_request_session(r);
  char *sc = NULL;
  int sent;
  assert_non_null(s);
  if (fn != NULL)
    fn(s, ud);
  if (id_out != NULL)
    snprintf(id_out, CSN_ID_MAX + 1, "%s", csn_request_session_id(r));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  sent = sc != NULL;
  if (sc != NULL)
    rig_cookie_of(sc, g->cookie, sizeof g->cookie);
  csn_free(sc);
  return sent;
}

/* The activity of a signed-in user: each request counts a view. */
static void h_view(csn_session *s, void *ud) {
  int64_t *views = ud;
  assert_int_equal(csn_session_incr(s, "views", 1, views), CSN_OK);
}

static void h_read(csn_session *s, void *ud) {
  int64_t *views = ud;
  *views = -1;
  (void)csn_session_get_int(s, "views", views);
}

static int64_t created_of(rig *g, const char *sid) {
  char *text = life_stored(g->ls, sid);
  const char *p;
  long long v = 0;
  assert_non_null(text);
  p = strstr(text, "\"" CSN_CREATED_MEMBER "\":");
  if (p == NULL) {
    csn_free(text);
    return CSN_TIME_NONE;
  }
  assert_int_equal(sscanf(p + strlen(CSN_CREATED_MEMBER) + 3, "%lld", &v), 1);
  csn_free(text);
  return v;
}

static int stored(rig *g, const char *sid) {
  return life_rig_stored(g, sid);
}

/* Requests every 5 minutes from `from` (exclusive) up to `until`
 * (exclusive), each one counting a view; the id must stay `sid`. Returns
 * the views count. */
static int64_t steady(rig *g, int64_t from, int64_t until, const char *sid) {
  char id[CSN_ID_MAX + 1];
  int64_t views = 0;
  for (int64_t t = from + 5 * MINUTE; t < until; t += 5 * MINUTE) {
    fake_now = t;
    /* rolling: every response refreshes the idle timeout */
    assert_true(step(g, h_view, &views, id));
    if (strcmp(id, sid) != 0)
      fail_msg("at +%lld min the id changed", (long long)((t - from) / MINUTE));
  }
  return views;
}

/* ---------------------------------------------------------------------- */

static void lifetime_rolling_ends_at_lifetime(void **state) {
  char id0[CSN_ID_MAX + 1], id[CSN_ID_MAX + 1];
  int64_t views = 0;
  long destroys;
  rig g;
  (void)state;
  rig_open(&g, LIFETIME, 1);

  fake_now = T0;
  assert_true(step(&g, h_view, &views, id0));
  assert_int_equal(views, 1);
  assert_int_equal(created_of(&g, id0), T0);

  views = steady(&g, T0, T0 + LIFETIME, id0);
  assert_int_equal(views, 24); /* T0, T0+5 .. T0+115 min */

  /* The last instant of its life: still the same session. */
  fake_now = T0 + LIFETIME - 1;
  assert_true(step(&g, h_view, &views, id));
  assert_string_equal(id, id0);
  assert_int_equal(views, 25);

  /* At the lifetime: a fresh session, the old record destroyed. */
  destroys = atomic_load(&g.ls->destroys);
  fake_now = T0 + LIFETIME;
  assert_true(step(&g, h_view, &views, id));
  assert_string_not_equal(id, id0);
  assert_int_equal(views, 1);
  assert_false(stored(&g, id0));
  assert_int_equal(atomic_load(&g.ls->destroys), destroys + 1);
  assert_int_equal(created_of(&g, id), T0 + LIFETIME);

  /* The old cookie is dead for good, and the new session lives on. */
  {
    char newc[512];
    csn_request *r;
    snprintf(newc, sizeof newc, "%s", g.cookie);
    life_cookie_for(id0, SECRET, g.cookie, sizeof g.cookie);
    fake_now += MINUTE;
    r = rig_begin(g.ctx, g.cookie);
    assert_string_not_equal(csn_request_session_id(r), id0);
    assert_int_equal(csn_session_has(csn_request_session(r), "views"), 0);
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
    snprintf(g.cookie, sizeof g.cookie, "%s", newc);
  }
  assert_true(step(&g, h_read, &views, id));
  assert_int_equal(views, 1);
  rig_close(&g);
}

/* The control: the same walk with the option off never ends (so the test
 * above is about the lifetime, not about the idle timeout), and no stamp
 * is written. */
static void lifetime_off_walk_continues(void **state) {
  char id0[CSN_ID_MAX + 1], id[CSN_ID_MAX + 1];
  int64_t views = 0;
  rig g;
  (void)state;
  rig_open(&g, 0, 1);
  fake_now = T0;
  assert_true(step(&g, h_view, &views, id0));
  assert_int_equal(created_of(&g, id0), CSN_TIME_NONE);
  steady(&g, T0, T0 + 2 * LIFETIME, id0);
  fake_now = T0 + 2 * LIFETIME;
  assert_true(step(&g, h_view, &views, id));
  assert_string_equal(id, id0);
  assert_int_equal(views, 49);
  assert_int_equal(created_of(&g, id0), CSN_TIME_NONE);
  rig_close(&g);
}

/* The idle timeout still applies with the lifetime on. */
static void lifetime_idle_still_applies(void **state) {
  char id0[CSN_ID_MAX + 1], id[CSN_ID_MAX + 1];
  int64_t views = 0;
  rig g;
  (void)state;
  rig_open(&g, LIFETIME, 1);
  fake_now = T0;
  assert_true(step(&g, h_view, &views, id0));
  fake_now = T0 + MAX_AGE + 1;
  assert_true(step(&g, h_view, &views, id));
  assert_string_not_equal(id, id0);
  assert_int_equal(views, 1);
  rig_close(&g);
}

static void h_regenerate(csn_session *s, void *ud) {
  int64_t created = 0;
  (void)ud;
  assert_int_equal(csn_session_regenerate(s), CSN_OK);
  assert_int_equal(csn_session_created(s, &created), CSN_OK);
  assert_int_equal(created, fake_now);
  assert_int_equal(csn_session_set_int(s, "views", 1), CSN_OK);
}

/* regenerate() (a login) starts a new lifetime. */
static void lifetime_regenerate_restarts(void **state) {
  char id0[CSN_ID_MAX + 1], id1[CSN_ID_MAX + 1], id[CSN_ID_MAX + 1];
  int64_t views = 0;
  const int64_t T1 = T0 + 90 * MINUTE;
  rig g;
  (void)state;
  rig_open(&g, LIFETIME, 1);
  fake_now = T0;
  assert_true(step(&g, h_view, &views, id0));
  steady(&g, T0, T1, id0);

  fake_now = T1;
  assert_true(step(&g, h_regenerate, NULL, id1));
  assert_string_not_equal(id1, id0);
  assert_false(stored(&g, id0));
  assert_int_equal(created_of(&g, id1), T1);

  /* Past the first session's end it lives on ... */
  views = steady(&g, T1, T1 + LIFETIME, id1);
  assert_int_equal(views, 24);
  fake_now = T1 + LIFETIME - 1;
  assert_true(step(&g, h_view, &views, id));
  assert_string_equal(id, id1);
  assert_int_equal(created_of(&g, id1), T1);
  /* ... until its own lifetime is over. */
  fake_now = T1 + LIFETIME;
  assert_true(step(&g, h_view, &views, id));
  assert_string_not_equal(id, id1);
  assert_int_equal(views, 1);
  assert_false(stored(&g, id1));
  rig_close(&g);
}

/* "2025-01-01T00:30:00.000Z" of epoch ms. */
static void iso_of(int64_t ms, char *buf, size_t size) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* A record written before the option was on (or by a Node app that
 * regenerated the session) has no stamp: it gets the time it is first
 * loaded, is saved once for that, and ends a lifetime later. */
static void lifetime_unstamped_record(void **state) {
  static const char SID[] = "legacyLegacyLegacyLegacyLegacy01";
  const int64_t T1 = T0 + 10 * MINUTE;
  char iso[64], json[512], id[CSN_ID_MAX + 1];
  int64_t views = 0;
  rig g;
  (void)state;
  rig_open(&g, LIFETIME, 0);
  iso_of(T0 + MAX_AGE, iso, sizeof iso);
  snprintf(json, sizeof json,
           "{\"cookie\":{\"originalMaxAge\":%lld,\"expires\":\"%s\","
           "\"httpOnly\":true,\"path\":\"/\"},\"views\":5}",
           (long long)MAX_AGE, iso);
  fake_now = T0;
  assert_int_equal(csn_store_set(g.ls->inner, SID, json, strlen(json),
                                 T0 + MAX_AGE),
                   CSN_OK);
  life_cookie_for(SID, SECRET, g.cookie, sizeof g.cookie);

  /* First load: the data is there, the stamp is added and saved once. */
  fake_now = T1;
  life_store_reset(g.ls);
  step(&g, h_read, &views, id);
  assert_string_equal(id, SID);
  assert_int_equal(views, 5);
  assert_int_equal(atomic_load(&g.ls->sets) + atomic_load(&g.ls->cas), 1);
  assert_int_equal(created_of(&g, SID), T1);
  {
    char *text = life_stored(g.ls, SID);
    assert_non_null(strstr(text, "\"views\":5"));
    csn_free(text);
  }

  /* Then it is an ordinary session: no save when nothing changes. */
  fake_now = T1 + 5 * MINUTE;
  life_store_reset(g.ls);
  step(&g, h_read, &views, id);
  assert_string_equal(id, SID);
  assert_int_equal(atomic_load(&g.ls->sets) + atomic_load(&g.ls->cas), 0);
  assert_int_equal(created_of(&g, SID), T1);

  /* Kept alive (by views) until T1 + LIFETIME, not T0 + LIFETIME. */
  for (int64_t t = T1 + 25 * MINUTE; t < T1 + LIFETIME; t += 25 * MINUTE) {
    fake_now = t;
    step(&g, h_view, &views, id);
    assert_string_equal(id, SID);
  }
  fake_now = T0 + LIFETIME; /* the record's own age, were T0 its birth */
  step(&g, h_read, &views, id);
  assert_string_equal(id, SID);
  fake_now = T1 + LIFETIME;
  step(&g, h_read, &views, id);
  assert_string_not_equal(id, SID);
  assert_int_equal(views, -1);
  assert_false(stored(&g, SID));
  rig_close(&g);
}

typedef struct count_case {
  int64_t created;
} count_case;

static void h_count_clear(csn_session *s, void *ud) {
  count_case *c = ud;
  int64_t created = 0;
  assert_int_equal(csn_session_count(s), 0);
  assert_int_equal(csn_session_set_int(s, "a", 1), CSN_OK);
  assert_int_equal(csn_session_set_str(s, "b", "two"), CSN_OK);
  assert_int_equal(csn_session_count(s), 2);
  assert_int_equal(csn_session_created(s, &created), CSN_OK);
  assert_int_equal(created, c->created);
  assert_int_equal(csn_session_clear(s), CSN_OK);
  assert_int_equal(csn_session_count(s), 0);
  assert_int_equal(csn_session_created(s, &created), CSN_OK);
  assert_int_equal(created, c->created);
  assert_int_equal(csn_session_set_int(s, "c", 3), CSN_OK);
  assert_int_equal(csn_session_count(s), 1);
}

static void h_nothing(csn_session *s, void *ud) {
  int64_t created = 0;
  (void)ud;
  /* The stamp is there from the start, yet the session is untouched. */
  assert_int_equal(csn_session_created(s, &created), CSN_OK);
  assert_int_equal(created, fake_now);
  assert_int_equal(csn_session_count(s), 0);
}

static void h_no_stamp(csn_session *s, void *ud) {
  int64_t created = 0;
  (void)ud;
  assert_int_equal(csn_session_created(s, &created), CSN_ENOENT);
  assert_int_equal(csn_session_set_int(s, "a", 1), CSN_OK);
  assert_int_equal(csn_session_count(s), 1);
}

/* count() leaves the stamp out, clear() keeps it, and a new session that
 * only has the stamp is not saved (saveUninitialized off). */
static void lifetime_count_and_clear(void **state) {
  char id[CSN_ID_MAX + 1];
  count_case c = {T0};
  rig g;
  (void)state;
  rig_open(&g, LIFETIME, 0);
  fake_now = T0;
  assert_false(step(&g, h_nothing, NULL, id));
  assert_int_equal(life_writes(g.ls), 0);
  assert_false(stored(&g, id));

  g.cookie[0] = '\0';
  assert_true(step(&g, h_count_clear, &c, id));
  assert_int_equal(created_of(&g, id), T0);
  {
    char *text = life_stored(g.ls, id);
    assert_null(strstr(text, "\"a\""));
    assert_non_null(strstr(text, "\"c\":3"));
    csn_free(text);
  }
  /* Loaded again later: the stamp is still the creation time. */
  fake_now = T0 + MINUTE;
  {
    csn_request *r = rig_begin(g.ctx, g.cookie);
    int64_t created = 0;
    assert_string_equal(csn_request_session_id(r), id);
    assert_int_equal(csn_session_count(csn_request_session(r)), 1);
    assert_int_equal(csn_session_created(csn_request_session(r), &created),
                     CSN_OK);
    assert_int_equal(created, T0);
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
  }
  rig_close(&g);

  /* Option off: no stamp at all. */
  rig_open(&g, 0, 0);
  assert_true(step(&g, h_no_stamp, NULL, id));
  assert_int_equal(created_of(&g, id), CSN_TIME_NONE);
  rig_close(&g);
}

static int ctx_with(int64_t lifetime, int64_t touch_after, char *err,
                    size_t errlen) {
  csn_options o;
  csn_ctx *ctx = NULL;
  int rc;
  csn_options_init(&o);
  assert_int_equal(o.version, CSN_OPTIONS_VERSION);
  assert_int_equal(o.lifetime_ms, 0);
  assert_int_equal(o.touch_after_ms, 0);
  o.secrets = SECRETS;
  o.n_secrets = 1;
  o.lifetime_ms = lifetime;
  o.touch_after_ms = touch_after;
  err[0] = '\0';
  rc = csn_ctx_new(&ctx, &o, err, errlen);
  csn_ctx_free(ctx);
  return rc;
}

static void lifetime_options_validated(void **state) {
  char err[256];
  (void)state;
  assert_int_equal(ctx_with(0, 0, err, sizeof err), CSN_OK);
  assert_int_equal(ctx_with(LIFETIME, 60000, err, sizeof err), CSN_OK);
  assert_int_equal(ctx_with(-1, 0, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "lifetime"));
  assert_int_equal(ctx_with(INT64_MIN, 0, err, sizeof err), CSN_EINVAL);
  assert_int_equal(ctx_with(0, -1, err, sizeof err), CSN_EINVAL);
  assert_non_null(strstr(err, "touch"));

  /* Options of version 1 have no such fields: whatever lies there is not
   * read, so no stamp is written. */
  {
    csn_options o;
    csn_ctx *ctx = NULL;
    csn_request *r;
    int64_t created = 0;
    csn_options_init(&o);
    o.version = 1;
    o.secrets = SECRETS;
    o.n_secrets = 1;
    o.lifetime_ms = -5; /* would be refused if it were read */
    assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_OK);
    r = rig_begin(ctx, NULL);
    assert_int_equal(csn_session_created(csn_request_session(r), &created),
                     CSN_ENOENT);
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
    csn_ctx_free(ctx);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lifetime_rolling_ends_at_lifetime),
      cmocka_unit_test(lifetime_off_walk_continues),
      cmocka_unit_test(lifetime_idle_still_applies),
      cmocka_unit_test(lifetime_regenerate_restarts),
      cmocka_unit_test(lifetime_unstamped_record),
      cmocka_unit_test(lifetime_count_and_clear),
      cmocka_unit_test(lifetime_options_validated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
