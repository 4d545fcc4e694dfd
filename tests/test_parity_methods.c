/* test_parity_methods.c - express-session test/session.js "req.session"
 * blocks (cases 118-132): persistence, Set-Cookie only when modified, the
 * store going away and coming back, and the Session methods destroy,
 * regenerate, reload, save and touch. */
#include "test_parity_common.h"

#include <stdlib.h>
#include <string.h>

static void h_counter(pt_call *c) {
  int64_t n = 0;
  assert_int_equal(csn_session_incr(c->s, "count", 1, &n), CSN_OK);
  pt_printf(c, "%lld", (long long)n);
}

/* 118 */
static void parity_methods_req_session_should_persist(void **st) {
  pt_server *p = pt_new();
  const char *ck, *sid;
  (void)st;
  pt_start(p, h_counter, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "1");
  ck = pt_cookie(p);
  sid = pt_sid(p);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "2");
  assert_non_null(strstr(pt_stored(p, sid), "\"count\":2"));
  pt_free(p);
}

/* Modify only when the URL asks for it. */
static void h_maybe(pt_call *c) {
  if (strcmp(c->url, "/mod") == 0)
    csn_session_incr(c->s, "count", 1, NULL);
}

/* 119 */
static void parity_methods_req_session_should_only_set_cookie_when_modified(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_maybe, 0);
  pt_get(p, "/mod", NULL);
  ck = pt_cookie(p);
  assert_non_null(ck);
  pt_get(p, "/mod", ck);
  assert_non_null(pt_set_cookie(p));
  pt_get(p, "/", ck);
  assert_null(pt_set_cookie(p));
  pt_get(p, "/mod", ck);
  assert_non_null(pt_set_cookie(p));
  assert_non_null(strstr(pt_stored(p, pt_sid(p)), "\"count\":3"));
  pt_free(p);
}

static void h_keys(pt_call *c) {
  char *json = NULL;
  json_t *root;
  const char **keys;
  const char *key;
  json_t *v;
  size_t n = 0, i, j;
  csn_session_set_str(c->s, "foo", "foo");
  csn_session_set_str(c->s, "bar", "bar");
  assert_int_equal(csn_session_to_json(c->s, &json), CSN_OK);
  root = json_loads(json, 0, NULL);
  keys = calloc(json_object_size(root), sizeof *keys);
  assert_non_null(keys);
  json_object_foreach(root, key, v) keys[n++] = key;
  /* for-in order does not matter upstream (it sorts); sort too. */
  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++)
      if (strcmp(keys[j], keys[i]) < 0) {
        const char *t = keys[i];
        keys[i] = keys[j];
        keys[j] = t;
      }
  for (i = 0; i < n; i++)
    pt_printf(c, "%s%s", i ? "," : "", keys[i]);
  free(keys);
  json_decref(root);
  csn_free(json);
}

/* 120 */
static void parity_methods_req_session_should_not_have_enumerable_methods(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_keys, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "bar,cookie,foo");
  pt_free(p);
}

/* 121, 122: C stores have no connect/disconnect events; a store that is
 * down fails its calls. While down: no session and no cookie (500); once it
 * is back, sessions work again. */
static void parity_methods_req_session_should_not_be_set_if_store_is_disconnected(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_counter, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  pt_fault(p, "get", CSN_EIO, 0);
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 500);
  assert_null(pt_set_cookie(p));
  pt_free(p);
}

static void parity_methods_req_session_should_be_set_when_store_reconnects(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_counter, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  pt_fault(p, "get", CSN_EIO, 0);
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 500);
  pt_fault_clear();
  pt_get(p, "/", ck);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "2");
  pt_free(p);
}

static void h_destroy(pt_call *c) {
  csn_session *s = c->s;
  assert_int_equal(csn_session_destroy(s), CSN_OK);
  pt_printf(c, "%s", csn_request_session(c->req) ? "object" : "undefined");
}

/* 123 */
static void parity_methods_destroy_should_destroy_the_previous_session(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_destroy, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "undefined");
  assert_null(pt_set_cookie(p));
  assert_int_equal(pt_store_len(p), 0);
  pt_free(p);
}

static void h_regen(pt_call *c) {
  char *old = csn_session_id_dup(c->s);
  assert_non_null(old);
  assert_int_equal(csn_session_regenerate(c->s), CSN_OK);
  pt_printf(c, "%s", strcmp(old, csn_session_id(c->s)) == 0 ? "true"
                                                              : "false");
  csn_free(old);
}

/* 124 */
static void parity_methods_regenerate_should_destroy_replace_the_previous_session(
    void **st) {
  pt_server *p = pt_new();
  const char *ck, *sid1;
  (void)st;
  pt_start(p, h_regen, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  sid1 = pt_sid(p);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "false");
  assert_non_null(pt_sid(p));
  assert_string_not_equal(pt_sid(p), sid1);
  assert_null(pt_stored(p, sid1));
  pt_free(p);
}

/* 125: another request changes the stored url to /bar while this one runs
 * (done straight on the store: a nested HTTP request could be queued
 * behind this one), then reload() sees it. */
static void h_reload(pt_call *c) {
  const char *u = NULL;
  char *rec;
  if (strcmp(c->url, "/init") == 0) {
    csn_session_set_str(c->s, "url", "/foo");
    return;
  }
  csn_session_set_str(c->s, "url", "/local");
  rec = strdup(pt_stored(c->p, csn_session_id(c->s)));
  assert_non_null(rec);
  assert_non_null(strstr(rec, "\"/foo\""));
  memcpy(strstr(rec, "\"/foo\""), "\"/bar\"", 6);
  pt_store_put(c->p, csn_session_id(c->s), rec);
  free(rec);
  assert_int_equal(csn_session_reload(c->s), CSN_OK);
  csn_session_get_str(c->s, "url", &u, NULL);
  pt_printf(c, "%s", u ? u : "undefined");
}

static void parity_methods_reload_should_reload_session_from_store(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_reload, 0);
  pt_get(p, "/init", NULL);
  ck = pt_cookie(p);
  pt_get(p, "/", ck);
  assert_string_equal(p->res.body, "/bar");
  pt_free(p);
}

static void h_reload_missing(pt_call *c) {
  int i, rc = CSN_OK, n = strcmp(c->url, "/many") == 0 ? 20 : 1;
  if (strcmp(c->url, "/init") == 0) {
    csn_session_set_str(c->s, "x", "y");
    return;
  }
  assert_int_equal(csn_store_clear(c->p->store->inner), CSN_OK);
  for (i = 0; i < n; i++)
    rc = csn_session_reload(c->s);
  if (rc < 0) {
    c->status = n == 1 ? 500 : 200;
    pt_printf(c, "%s", n == 1 ? csn_last_error() : "ok");
  }
}

/* 126 */
static void parity_methods_reload_should_error_is_session_missing(void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_reload_missing, 0);
  pt_get(p, "/init", NULL);
  ck = pt_cookie(p);
  pt_get(p, "/one", ck);
  assert_int_equal(p->res.status, 500);
  assert_true(http_regex_match("failed to load session", p->res.body));
  pt_free(p);
}

/* 127 */
static void parity_methods_reload_should_not_override_an_overridden_reload_in_case_of_errors(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_reload_missing, 0);
  pt_get(p, "/init", NULL);
  ck = pt_cookie(p);
  pt_get(p, "/many", ck);
  assert_int_equal(p->res.status, 200);
  assert_string_equal(p->res.body, "ok");
  pt_free(p);
}

static void h_save(pt_call *c) {
  if (strcmp(c->url, "/reload") == 0)
    assert_int_equal(csn_session_reload(c->s), CSN_OK);
  csn_session_incr(c->s, "hits", 1, NULL);
  assert_int_equal(csn_session_save(c->s), CSN_OK);
  pt_printf(c, "%s",
            pt_stored(c->p, csn_session_id(c->s)) ? "stored" : "missing");
}

/* 128 */
static void parity_methods_save_should_save_session_to_store(void **st) {
  pt_server *p = pt_new();
  (void)st;
  pt_start(p, h_save, 0);
  pt_get(p, "/", NULL);
  assert_string_equal(p->res.body, "stored");
  pt_free(p);
}

static void one_set_each(pt_server *p, const char *path) {
  const char *ck;
  pt_start(p, h_save, 0);
  pt_get(p, path, NULL);
  assert_int_equal(PT_SETS(p), 1);
  ck = pt_cookie(p);
  assert_non_null(ck);
  counting_store_reset(p->store);
  pt_get(p, path, ck);
  assert_int_equal(PT_SETS(p), 1);
}

/* 129 */
static void parity_methods_save_should_prevent_end_of_request_save(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  one_set_each(p, "/");
  pt_free(p);
}

/* 130: reload on the first request needs a stored copy; the first request
 * saves plainly, the second reloads then saves. */
static void parity_methods_save_should_prevent_end_of_request_save_on_reloaded_session(
    void **st) {
  pt_server *p = pt_new();
  const char *ck;
  (void)st;
  pt_start(p, h_save, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  counting_store_reset(p->store);
  pt_get(p, "/reload", ck);
  assert_string_equal(p->res.body, "stored");
  assert_int_equal(PT_SETS(p), 1);
  pt_free(p);
}

/* 131 */
static void parity_methods_save_saveUninitialized_false_should_prevent_end_of_request_save(
    void **st) {
  pt_server *p = pt_new();
  (void)st;
  p->o.save_uninitialized = 0;
  one_set_each(p, "/");
  pt_free(p);
}

static void h_touch(pt_call *c) {
  assert_int_equal(csn_session_touch(c->s), CSN_OK);
}

/* 132 */
static void parity_methods_touch_should_reset_session_expiration(void **st) {
  pt_server *p = pt_new();
  const char *ck, *sid;
  int64_t e1, e2;
  (void)st;
  p->o.resave = 0;
  pt_start(p, h_touch, 0);
  pt_get(p, "/", NULL);
  ck = pt_cookie(p);
  sid = pt_sid(p);
  e1 = pt_stored_expires(p, sid);
  pt_sleep_ms(100);
  pt_get(p, "/", ck);
  e2 = pt_stored_expires(p, sid);
  assert_true(e1 != PT_NONE);
  assert_true(e2 >= e1 + 100);
  assert_int_equal(PT_SETS(p), 1); /* the first request only */
  pt_free(p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parity_methods_req_session_should_persist),
      cmocka_unit_test(parity_methods_req_session_should_only_set_cookie_when_modified),
      cmocka_unit_test(parity_methods_req_session_should_not_have_enumerable_methods),
      cmocka_unit_test(parity_methods_req_session_should_not_be_set_if_store_is_disconnected),
      cmocka_unit_test(parity_methods_req_session_should_be_set_when_store_reconnects),
      cmocka_unit_test(parity_methods_destroy_should_destroy_the_previous_session),
      cmocka_unit_test(parity_methods_regenerate_should_destroy_replace_the_previous_session),
      cmocka_unit_test(parity_methods_reload_should_reload_session_from_store),
      cmocka_unit_test(parity_methods_reload_should_error_is_session_missing),
      cmocka_unit_test(parity_methods_reload_should_not_override_an_overridden_reload_in_case_of_errors),
      cmocka_unit_test(parity_methods_save_should_save_session_to_store),
      cmocka_unit_test(parity_methods_save_should_prevent_end_of_request_save),
      cmocka_unit_test(parity_methods_save_should_prevent_end_of_request_save_on_reloaded_session),
      cmocka_unit_test(parity_methods_save_saveUninitialized_false_should_prevent_end_of_request_save),
      cmocka_unit_test(parity_methods_touch_should_reset_session_expiration),
  };
  return PT_RUN("parity_methods", tests);
}
