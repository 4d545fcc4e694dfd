/* test_harden_depth.c - what csn_session_set_json() accepts can be loaded
 * again (issue 15, finding 10).
 *
 * The reader refuses JSON nested deeper than a limit, so hostile records
 * cannot exhaust the stack. csn_session_set_json() used the same limit for
 * the member's own value, but the member sits one level below the record's
 * root: a value at the limit was accepted, saved, and the record then
 * failed every load - that session answered 500 until it expired. One
 * limit now: a record may have CSN__JSON_MAX_DEPTH levels, a member one
 * fewer.
 *
 * The first test does not trust the constant: it probes, around the
 * limit, the deepest value set_json accepts and requires that exactly that
 * one survives a save and a load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"
#include "request_rig.h"

static const char *const KEYS[] = {"keyboard cat"};

static csn_ctx *new_ctx(void) {
  csn_options o;
  csn_ctx *ctx = NULL;
  char err[256];
  csn_options_init(&o);
  o.secrets = KEYS;
  o.n_secrets = 1;
  o.cookie.max_age_ms = 60000;
  if (csn_ctx_new(&ctx, &o, err, sizeof err) != CSN_OK)
    fail_msg("csn_ctx_new: %s", err);
  return ctx;
}

/* JSON with `levels` levels, counting every value: kind 'a' nests arrays
 * around an empty innermost array, 's' arrays around the scalar 1, 'o'
 * objects {"k":...} around an empty object. malloc'd. */
static char *nested(int levels, char kind) {
  size_t cap = (size_t)levels * 8 + 8, o = 0;
  char *s = malloc(cap);
  int opens = kind == 's' ? levels - 1 : levels;
  assert_non_null(s);
  for (int i = 0; i < opens; i++) {
    if (kind == 'o') {
      memcpy(s + o, i + 1 < opens ? "{\"k\":" : "{", i + 1 < opens ? 5 : 1);
      o += i + 1 < opens ? 5 : 1;
    } else {
      s[o++] = '[';
    }
  }
  if (kind == 's')
    s[o++] = '1';
  for (int i = 0; i < opens; i++)
    s[o++] = kind == 'o' ? '}' : ']';
  s[o] = '\0';
  return s;
}

/* Set `text` as member "deep" of a new session and save it; then load it
 * with the cookie and compare. Returns the set_json code; when it is
 * CSN_OK the round trip must have succeeded. */
static int set_save_load(csn_ctx *ctx, const char *text) {
  csn_request *r = rig_begin(ctx, NULL);
  csn_session *s = csn_request_session(r);
  char *sc = NULL, cookie[256], *back = NULL;
  csn_request_info in;
  int rc = csn_session_set_json(s, "deep", text), brc;

  if (rc != CSN_OK) {
    assert_int_equal(rig_commit(r, NULL), CSN_OK);
    return rc;
  }
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  rig_cookie_of(sc, cookie, sizeof cookie);
  csn_free(sc);

  memset(&in, 0, sizeof in);
  in.cookie_header = cookie;
  in.url = "/";
  r = NULL;
  brc = csn_request_begin(ctx, &in, &r);
  if (brc != CSN_OK)
    fail_msg("a value set_json accepted (%zu bytes) could not be loaded: "
             "%s (%s)", strlen(text), csn_err_name(brc), csn_last_error());
  s = csn_request_session(r);
  /* Loaded, not replaced by a fresh session. */
  assert_true(strstr(cookie, csn_session_id(s)) != NULL);
  assert_int_equal(csn_session_get_json(s, "deep", &back), CSN_OK);
  assert_string_equal(back, text);
  csn_free(back);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  return CSN_OK;
}

static void harden_depth_accepted_loads(void **state) {
  static const char kinds[] = {'a', 's', 'o'};
  csn_ctx *ctx = new_ctx();
  (void)state;
  for (size_t k = 0; k < sizeof kinds; k++) {
    int deepest = 0;
    for (int levels = 250; levels <= 260; levels++) {
      char *t = nested(levels, kinds[k]);
      int rc = set_save_load(ctx, t);
      free(t);
      if (rc == CSN_OK)
        deepest = levels;
      else
        assert_int_equal(rc, CSN_EINVAL);
    }
    /* The limit is where it is documented (csn.h: 255 for a member). */
    assert_int_equal(deepest, CSN__JSON_MEMBER_MAX_DEPTH);
  }
  csn_ctx_free(ctx);
}

/* One level deeper is refused when set, with a message that says why. */
static void harden_depth_deeper_refused(void **state) {
  csn_ctx *ctx = new_ctx();
  csn_request *r = rig_begin(ctx, NULL);
  csn_session *s = csn_request_session(r);
  char *ok = nested(CSN__JSON_MEMBER_MAX_DEPTH, 's');
  char *deep = nested(CSN__JSON_MEMBER_MAX_DEPTH + 1, 's');
  (void)state;
  assert_int_equal(csn_session_set_json(s, "x", ok), CSN_OK);
  assert_int_equal(csn_session_set_json(s, "y", deep), CSN_EINVAL);
  assert_non_null(strstr(csn_last_error(), "deeper"));
  assert_false(csn_session_has(s, "y"));
  free(ok);
  free(deep);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  csn_ctx_free(ctx);
}

/* The reader and the writer agree on the record's limit: 256 levels read
 * and write, 257 do neither. */
static void harden_depth_reader_writer_agree(void **state) {
  char *t256 = nested(CSN__JSON_MAX_DEPTH, 'a');
  char *t257 = nested(CSN__JSON_MAX_DEPTH + 1, 'a');
  int err = 0;
  json_t *v = csn__json_parse(t256, strlen(t256), &err), *outer;
  csn__buf b;
  char *text;
  (void)state;

  assert_non_null(v);
  csn__buf_init(&b);
  assert_int_equal(csn__json_dump(&b, v), CSN_OK);
  text = csn__buf_steal(&b, NULL);
  assert_string_equal(text, t256);
  csn__free(text);

  assert_null(csn__json_parse(t257, strlen(t257), &err));
  assert_int_equal(err, CSN_ECORRUPT);
  /* A 257-level value built by hand is not written either. */
  outer = json_array();
  assert_int_equal(json_array_append_new(outer, v), 0);
  csn__buf_init(&b);
  assert_int_equal(csn__json_dump(&b, outer), CSN_ENOMEM);
  csn__buf_free(&b);
  json_decref(outer);
  free(t256);
  free(t257);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(harden_depth_accepted_loads),
      cmocka_unit_test(harden_depth_deeper_refused),
      cmocka_unit_test(harden_depth_reader_writer_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
