/* test_harden_locale.c - numbers in records do not follow the process
 * locale (issue 15, finding 9).
 *
 * Under de_DE.UTF-8 the decimal separator is ',': snprintf("%e") writes
 * "1,25e-01" and strtod() stops at a '.'. The JSON writer used both, so
 * csn_session_set_double(0.125) was saved as "0.1,25" and the session
 * could never be loaded again. This program switches the whole process to
 * de_DE.UTF-8, as an application calling setlocale(LC_ALL, "") in a German
 * environment does, and checks that doubles are written as JavaScript
 * writes them and read back exactly.
 *
 * The locale must really be in effect, or the test would pass whatever the
 * code does: when de_DE.UTF-8 is not installed, it is compiled with
 * localedef (from the `locales` package's sources) into a temporary
 * directory named by LOCPATH; if that fails too the test fails, it does
 * not skip. And it checks that libc itself now writes "0,5". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <locale.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "csn_int.h"
#include "request_rig.h"

extern char **environ;

static char locdir[64];

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  struct dirent *e;
  if (d == NULL) {
    unlink(path);
    return;
  }
  while ((e = readdir(d)) != NULL) {
    char sub[512];
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    remove_tree(sub);
  }
  closedir(d);
  rmdir(path);
}

/* localedef -i de_DE -f UTF-8 DIR/de_DE.UTF-8; 0 on success. */
static int compile_locale(const char *dir) {
  char out[128];
  char *argv[] = {"localedef", "-i", "de_DE", "-f", "UTF-8", out, NULL};
  pid_t pid;
  int st = 0;
  snprintf(out, sizeof out, "%s/de_DE.UTF-8", dir);
  if (posix_spawnp(&pid, "localedef", NULL, NULL, argv, environ) != 0)
    return -1;
  if (waitpid(pid, &st, 0) != pid)
    return -1;
  /* localedef exits 1 for warnings it still wrote the locale through. */
  return WIFEXITED(st) && WEXITSTATUS(st) <= 1 ? 0 : -1;
}

/* Put the process in a comma-decimal locale, or fail the test. */
static void german_locale(void) {
  char probe[32];
  if (setlocale(LC_ALL, "de_DE.UTF-8") == NULL) {
    strcpy(locdir, "/tmp/csn-locale-XXXXXX");
    if (mkdtemp(locdir) == NULL)
      fail_msg("mkdtemp failed");
    if (compile_locale(locdir) != 0)
      fail_msg("de_DE.UTF-8 is not installed and localedef could not make "
               "it (install the `locales` package)");
    setenv("LOCPATH", locdir, 1);
    if (setlocale(LC_ALL, "de_DE.UTF-8") == NULL)
      fail_msg("de_DE.UTF-8 made by localedef cannot be loaded");
  }
  /* The locale is in effect: libc itself writes a comma. */
  snprintf(probe, sizeof probe, "%.1f", 0.5);
  assert_string_equal(probe, "0,5");
  assert_string_equal(localeconv()->decimal_point, ",");
}

static void still_german(void) {
  char probe[32];
  /* The library switched its own thread's locale and back: the
   * application's formatting is as it set it. */
  snprintf(probe, sizeof probe, "%.2f", 1.25);
  assert_string_equal(probe, "1,25");
  assert_float_equal(strtod("2,5", NULL), 2.5, 0);
}

static int setup(void **state) {
  (void)state;
  german_locale();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  setlocale(LC_ALL, "C");
  if (locdir[0] != '\0')
    remove_tree(locdir);
  return 0;
}

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

static const struct {
  const char *key;
  double d;
  const char *js; /* JSON.stringify's text (node) */
} NUMBERS[] = {
    {"a", 0.125, "0.125"},
    {"b", 1e21, "1e+21"},
    {"c", -0.5, "-0.5"},
    {"d", 1.5e-7, "1.5e-7"},
    {"e", 0.1, "0.1"},
    {"f", 123.456, "123.456"},
};

/* set_double -> to_json -> save -> load -> get_double, exactly. */
static void harden_locale_double_round_trip(void **state) {
  csn_ctx *ctx = new_ctx();
  csn_request *r = rig_begin(ctx, NULL);
  csn_session *s = csn_request_session(r);
  char *json = NULL, *sc = NULL, cookie[256];
  size_t i;
  (void)state;

  for (i = 0; i < CSN__ARRAY_SIZE(NUMBERS); i++)
    assert_int_equal(csn_session_set_double(s, NUMBERS[i].key, NUMBERS[i].d),
                     CSN_OK);
  assert_int_equal(csn_session_to_json(s, &json), CSN_OK);
  for (i = 0; i < CSN__ARRAY_SIZE(NUMBERS); i++) {
    char member[64];
    snprintf(member, sizeof member, "\"%s\":%s", NUMBERS[i].key,
             NUMBERS[i].js);
    if (strstr(json, member) == NULL)
      fail_msg("%s not in %s", member, json);
  }
  csn_free(json);
  assert_int_equal(rig_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  rig_cookie_of(sc, cookie, sizeof cookie);
  csn_free(sc);

  /* Loaded again (strtod on the way in), every value exactly. */
  r = rig_begin(ctx, cookie);
  s = csn_request_session(r);
  for (i = 0; i < CSN__ARRAY_SIZE(NUMBERS); i++) {
    double got = 0;
    assert_int_equal(csn_session_get_double(s, NUMBERS[i].key, &got), CSN_OK);
    if (got != NUMBERS[i].d)
      fail_msg("%s: %.17g read back as %.17g", NUMBERS[i].key, NUMBERS[i].d,
               got);
  }
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  still_german();
  csn_ctx_free(ctx);
}

/* A record written elsewhere (Node) with fractions, read under the German
 * locale: every reading path of a number (short, 19+ digits, very long). */
static void harden_locale_read_fractions(void **state) {
  static const char sid[] = "locale-record-id";
  static const char rec[] =
      "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":"
      "\"2999-01-01T00:00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},"
      "\"price\":2.5,\"small\":1.25e-3,\"neg\":-0.75,"
      "\"big\":12345678901234567890123,\"long\":"
      "0.1250000000000000000000000000000000000000000000000000000000000000001,"
      "\"exp\":1.5E+2}";
  csn_ctx *ctx = new_ctx();
  char signed_v[128], cookie[192];
  size_t n = sizeof signed_v;
  csn_request *r;
  csn_session *s;
  double d = 0;
  char *json = NULL;
  (void)state;

  assert_int_equal(csn_store_set(csn_ctx_store(ctx), sid, rec, strlen(rec),
                                 csn__now_ms() + 60000),
                   CSN_OK);
  assert_int_equal(csn_cookie_sign(sid, strlen(sid), KEYS[0],
                                   strlen(KEYS[0]), signed_v, &n),
                   CSN_OK);
  snprintf(cookie, sizeof cookie, "connect.sid=s%%3A%s", signed_v);
  r = rig_begin(ctx, cookie);
  s = csn_request_session(r);
  assert_string_equal(csn_session_id(s), sid);
  assert_int_equal(csn_session_get_double(s, "price", &d), CSN_OK);
  assert_true(d == 2.5);
  assert_int_equal(csn_session_get_double(s, "small", &d), CSN_OK);
  assert_true(d == 1.25e-3);
  assert_int_equal(csn_session_get_double(s, "neg", &d), CSN_OK);
  assert_true(d == -0.75);
  assert_int_equal(csn_session_get_double(s, "big", &d), CSN_OK);
  assert_true(d == 12345678901234567890123.0);
  assert_int_equal(csn_session_get_double(s, "long", &d), CSN_OK);
  assert_true(d == 0.125);
  assert_int_equal(csn_session_get_double(s, "exp", &d), CSN_OK);
  assert_true(d == 150.0);
  /* And written back as Node would. */
  assert_int_equal(csn_session_get_json(s, "small", &json), CSN_OK);
  assert_string_equal(json, "0.00125");
  csn_free(json);
  assert_int_equal(csn_session_get_json(s, "big", &json), CSN_OK);
  assert_string_equal(json, "1.2345678901234568e+22");
  csn_free(json);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  still_german();
  csn_ctx_free(ctx);
}

/* set_json parses with the same reader: a fraction given as JSON text. */
static void harden_locale_set_json(void **state) {
  csn_ctx *ctx = new_ctx();
  csn_request *r = rig_begin(ctx, NULL);
  csn_session *s = csn_request_session(r);
  char *json = NULL;
  double d = 0;
  (void)state;
  assert_int_equal(csn_session_set_json(s, "v", "[0.375, -2.5e-8]"), CSN_OK);
  assert_int_equal(csn_session_get_json(s, "v", &json), CSN_OK);
  assert_string_equal(json, "[0.375,-2.5e-8]");
  csn_free(json);
  assert_int_equal(csn_session_set_json(s, "w", "4.75"), CSN_OK);
  assert_int_equal(csn_session_get_double(s, "w", &d), CSN_OK);
  assert_true(d == 4.75);
  assert_int_equal(rig_commit(r, NULL), CSN_OK);
  csn_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(harden_locale_double_round_trip),
      cmocka_unit_test(harden_locale_read_fractions),
      cmocka_unit_test(harden_locale_set_json),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
