/* test_session_rotate.c - csn_session_rotate(): a new id, the same data,
 * the old id gone from the store; saved under the new id first and only
 * then the old record destroyed (a failed save leaves the old session as
 * it was); the new cookie sent; the creation stamp (lifetime_ms) kept.
 * A real MemoryStore on the test's clock behind a counting store that can
 * be told to fail its writes (tests/life_count_store.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "life_count_store.h"
#include "request_rig.h"

#define T0 INT64_C(1735689600000) /* 2025-01-01T00:00:00Z */
#define MINUTE INT64_C(60000)
#define MAX_AGE (30 * MINUTE)
#define LIFETIME (120 * MINUTE)
#define SECRET "rotate secret"

static int64_t fake_now;
static int64_t fake_clock(void *ud) {
  (void)ud;
  return fake_now;
}

static const char *const SECRETS[] = {SECRET};

/* A second method table over the counting store whose writes fail, for the
 * "failed save" case: swapped in and out by the test. */
static int fail_set(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  (void)sid, (void)json, (void)len, (void)expires_ms;
  atomic_fetch_add(&life_of(st)->sets, 1);
  return csn_store_set_error(st, CSN_EIO, "injected write failure");
}
static int fail_cas(csn_store *st, const char *sid, const char *expected,
                    size_t elen, const char *json, size_t len,
                    int64_t expires_ms) {
  (void)sid, (void)expected, (void)elen, (void)json, (void)len,
      (void)expires_ms;
  atomic_fetch_add(&life_of(st)->cas, 1);
  return csn_store_set_error(st, CSN_EIO, "injected write failure");
}
static csn_store_methods failing_methods;

typedef life_rig rig;

static void rig_open(rig *g, int64_t lifetime, int resave) {
  life_rig_open(g, fake_clock, SECRETS, MAX_AGE, lifetime, 0, resave);
}

static void rig_close(rig *g) { life_rig_close(g); }

static int stored(rig *g, const char *sid) {
  return life_rig_stored(g, sid);
}

/* The id inside "connect.sid=s%3A<id>.<sig>". */
static void sid_of_cookie(const char *cookie, char *id, size_t size) {
  const char *p = strstr(cookie, "s%3A");
  size_t n;
  assert_non_null(p);
  p += 4;
  n = strcspn(p, ".");
  assert_true(n < size);
  memcpy(id, p, n);
  id[n] = '\0';
}

/* First request: a session with a view count and a cart. */
static void start(rig *g, char *id) {
  csn_request *r = rig_begin(g->ctx, NULL);
  csn_session *s = csn_request_session(r);
  char *sc = NULL;
  assert_int_equal(csn_session_set_int(s, "views", 3), CSN_OK);
  assert_int_equal(csn_session_set_str(s, "cart", "apples"), CSN_OK);
  snprintf(id, CSN_ID_MAX + 1, "%s", csn_session_id(s));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  rig_cookie_of(sc, g->cookie, sizeof g->cookie);
  csn_free(sc);
}

static void check_data(csn_session *s) {
  int64_t views = 0;
  const char *cart = NULL;
  assert_int_equal(csn_session_get_int(s, "views", &views), CSN_OK);
  assert_int_equal(views, 3);
  assert_int_equal(csn_session_get_str(s, "cart", &cart, NULL), CSN_OK);
  assert_string_equal(cart, "apples");
}

static void check_stored_data(rig *g, const char *sid) {
  char *text = life_stored(g->ls, sid);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"views\":3"));
  assert_non_null(strstr(text, "\"cart\":\"apples\""));
  csn_free(text);
}

/* Rotation with nothing else changed (resave off, so only the rotation
 * makes it a save): new id, same data, old id gone, new cookie. */
static void rotate_new_id_same_data(void **state) {
  char id0[CSN_ID_MAX + 1], id1[CSN_ID_MAX + 1], cid[CSN_ID_MAX + 1];
  char old_cookie[512];
  csn_request *r;
  csn_session *s;
  char *sc = NULL;
  rig g;
  (void)state;
  rig_open(&g, 0, 0);
  fake_now = T0;
  start(&g, id0);
  snprintf(old_cookie, sizeof old_cookie, "%s", g.cookie);

  fake_now = T0 + MINUTE;
  life_store_reset(g.ls);
  r = rig_begin(g.ctx, g.cookie);
  s = csn_request_session(r);
  assert_string_equal(csn_session_id(s), id0);
  assert_int_equal(csn_session_rotate(s), CSN_OK);
  snprintf(id1, sizeof id1, "%s", csn_session_id(s));
  assert_string_not_equal(id1, id0);
  assert_string_equal(csn_request_session_id(r), id1);
  assert_int_equal((int)strlen(id1), 32);
  check_data(s);
  /* Nothing is written before commit: the old record is still there. */
  assert_true(stored(&g, id0));
  assert_false(stored(&g, id1));
  assert_int_equal(rig_commit(r, &sc), CSN_OK);

  /* The new cookie goes out. */
  assert_non_null(sc);
  sid_of_cookie(sc, cid, sizeof cid);
  assert_string_equal(cid, id1);
  rig_cookie_of(sc, g.cookie, sizeof g.cookie);
  csn_free(sc);
  /* Stored under the new id, gone under the old. */
  assert_false(stored(&g, id0));
  check_stored_data(&g, id1);
  assert_int_equal(atomic_load(&g.ls->destroys), 1);
  assert_int_equal(atomic_load(&g.ls->sets) + atomic_load(&g.ls->cas), 1);

  /* The new cookie finds the data; the old one finds nothing. */
  fake_now += MINUTE;
  r = rig_begin(g.ctx, g.cookie);
  assert_string_equal(csn_request_session_id(r), id1);
  check_data(csn_request_session(r));
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  r = rig_begin(g.ctx, old_cookie);
  assert_string_not_equal(csn_request_session_id(r), id0);
  assert_string_not_equal(csn_request_session_id(r), id1);
  assert_int_equal(csn_session_has(csn_request_session(r), "cart"), 0);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  assert_false(stored(&g, id0));
  rig_close(&g);
}

/* Rotation, a change, and csn_session_save() inside the handler: the new
 * record is written (with the change) and the old one destroyed by the
 * save itself, before commit. */
static void rotate_then_save(void **state) {
  char id0[CSN_ID_MAX + 1], id1[CSN_ID_MAX + 1];
  csn_request *r;
  csn_session *s;
  char *sc = NULL, *text;
  rig g;
  (void)state;
  rig_open(&g, 0, 1);
  fake_now = T0;
  start(&g, id0);
  fake_now = T0 + MINUTE;
  r = rig_begin(g.ctx, g.cookie);
  s = csn_request_session(r);
  assert_int_equal(csn_session_rotate(s), CSN_OK);
  snprintf(id1, sizeof id1, "%s", csn_session_id(s));
  assert_int_equal(csn_session_set_int(s, "role", 2), CSN_OK);
  assert_int_equal(csn_session_save(s), CSN_OK);
  assert_false(stored(&g, id0));
  check_stored_data(&g, id1);
  text = life_stored(g.ls, id1);
  assert_non_null(strstr(text, "\"role\":2"));
  csn_free(text);
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  {
    char cid[CSN_ID_MAX + 1];
    sid_of_cookie(sc, cid, sizeof cid);
    assert_string_equal(cid, id1);
  }
  csn_free(sc);
  assert_false(stored(&g, id0));
  check_stored_data(&g, id1);
  rig_close(&g);
}

/* The save under the new id fails: commit reports it, and the client's
 * old session is intact (not destroyed, data unchanged); the new id was
 * never stored and no cookie is sent. */
static void rotate_failed_save_keeps_old(void **state) {
  char id0[CSN_ID_MAX + 1], id1[CSN_ID_MAX + 1];
  const csn_store_methods *good;
  csn_request *r;
  csn_session *s;
  char *sc = NULL;
  int rc;
  rig g;
  (void)state;
  rig_open(&g, 0, 0);
  fake_now = T0;
  start(&g, id0);

  good = g.ls->base.m;
  failing_methods = *good;
  failing_methods.set = fail_set;
  if (failing_methods.cas != NULL)
    failing_methods.cas = fail_cas;

  fake_now = T0 + MINUTE;
  life_store_reset(g.ls);
  r = rig_begin(g.ctx, g.cookie);
  s = csn_request_session(r);
  assert_int_equal(csn_session_rotate(s), CSN_OK);
  snprintf(id1, sizeof id1, "%s", csn_session_id(s));
  g.ls->base.m = &failing_methods;
  rc = csn_request_commit(r, &sc);
  csn_request_free(r);
  g.ls->base.m = good;
  assert_int_not_equal(rc, CSN_OK);
  assert_null(sc);
  assert_true(atomic_load(&g.ls->sets) + atomic_load(&g.ls->cas) >= 1);
  assert_int_equal(atomic_load(&g.ls->destroys), 0);
  assert_false(stored(&g, id1));
  check_stored_data(&g, id0);

  /* The browser still has the old cookie, and it still works. */
  r = rig_begin(g.ctx, g.cookie);
  assert_string_equal(csn_request_session_id(r), id0);
  check_data(csn_request_session(r));
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  rig_close(&g);
}

/* With lifetime_ms on, rotation keeps the creation instant: the rotated
 * session ends when the original would have (unlike regenerate, which
 * restarts it: tests/test_session_lifetime.c). */
static void rotate_keeps_lifetime(void **state) {
  char id0[CSN_ID_MAX + 1], id1[CSN_ID_MAX + 1];
  const int64_t T1 = T0 + 90 * MINUTE;
  csn_request *r;
  csn_session *s;
  int64_t created = 0;
  char *sc = NULL, *text;
  char want[64];
  rig g;
  (void)state;
  rig_open(&g, LIFETIME, 0);
  fake_now = T0;
  start(&g, id0);
  /* Activity every 20 minutes keeps it from idling out. */
  for (int64_t t = T0 + 20 * MINUTE; t < T1; t += 20 * MINUTE) {
    fake_now = t;
    r = rig_begin(g.ctx, g.cookie);
    assert_string_equal(csn_request_session_id(r), id0);
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
  }

  fake_now = T1;
  r = rig_begin(g.ctx, g.cookie);
  s = csn_request_session(r);
  assert_int_equal(csn_session_rotate(s), CSN_OK);
  snprintf(id1, sizeof id1, "%s", csn_session_id(s));
  assert_string_not_equal(id1, id0);
  assert_int_equal(csn_session_created(s, &created), CSN_OK);
  assert_int_equal(created, T0);
  check_data(s);
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  rig_cookie_of(sc, g.cookie, sizeof g.cookie);
  csn_free(sc);
  assert_false(stored(&g, id0));
  text = life_stored(g.ls, id1);
  snprintf(want, sizeof want, "\"%s\":%lld", CSN_CREATED_MEMBER,
           (long long)T0);
  assert_non_null(strstr(text, want));
  csn_free(text);

  for (int64_t t = T1 + 20 * MINUTE; t < T0 + LIFETIME; t += 20 * MINUTE) {
    fake_now = t;
    r = rig_begin(g.ctx, g.cookie);
    assert_string_equal(csn_request_session_id(r), id1);
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
  }
  fake_now = T0 + LIFETIME - 1;
  r = rig_begin(g.ctx, g.cookie);
  assert_string_equal(csn_request_session_id(r), id1);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  fake_now = T0 + LIFETIME;
  r = rig_begin(g.ctx, g.cookie);
  assert_string_not_equal(csn_request_session_id(r), id1);
  assert_int_equal(csn_session_has(csn_request_session(r), "cart"), 0);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  assert_false(stored(&g, id1));
  rig_close(&g);
}

/* Rotating twice in one request: one new id at the end, one save, and
 * neither the first nor the intermediate id left in the store. */
static void rotate_twice(void **state) {
  char id0[CSN_ID_MAX + 1], mid[CSN_ID_MAX + 1], id2[CSN_ID_MAX + 1];
  csn_request *r;
  csn_session *s;
  rig g;
  (void)state;
  rig_open(&g, 0, 0);
  fake_now = T0;
  start(&g, id0);
  fake_now += MINUTE;
  r = rig_begin(g.ctx, g.cookie);
  s = csn_request_session(r);
  assert_int_equal(csn_session_rotate(s), CSN_OK);
  snprintf(mid, sizeof mid, "%s", csn_session_id(s));
  assert_int_equal(csn_session_rotate(s), CSN_OK);
  snprintf(id2, sizeof id2, "%s", csn_session_id(s));
  assert_string_not_equal(mid, id2);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  assert_false(stored(&g, id0));
  assert_false(stored(&g, mid));
  check_stored_data(&g, id2);
  rig_close(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rotate_new_id_same_data),
      cmocka_unit_test(rotate_then_save),
      cmocka_unit_test(rotate_failed_save_keeps_old),
      cmocka_unit_test(rotate_keeps_lifetime),
      cmocka_unit_test(rotate_twice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
