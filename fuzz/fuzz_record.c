/* fuzz_record.c - loading a stored session record.
 *
 * The input is the text a store hands back (it may have been written by
 * another program, or tampered with): any bytes, so huge numbers, deep
 * nesting, invalid UTF-8, a `cookie` member of the wrong type and so on.
 *
 * Three paths are exercised with every input:
 *   0. csn__session_load() - which matches the common record shape and
 *      reads the cookie member by member without building it - against the
 *      plain way (csn__json_parse(), then csn__cookie_from_json() on the
 *      "cookie" member, which is then deleted): the same outcome, error,
 *      "unreadable" verdict, cookie, and data with the same text; and the
 *      data text it cuts from the record, when it gives one, is exactly
 *      what csn__session_data_text() writes.
 *   1. csn__session_from_record() directly. When it accepts the text, the
 *      record it writes back must load again, to the same data and the same
 *      cookie, and writing that second session must give the same bytes
 *      (serialization is a fixed point after one round).
 *   2. A whole request: the text is put in a MemoryStore under a known id,
 *      a request arrives with a validly signed cookie for that id, the
 *      handler sets a value and the request commits. Whatever the text,
 *      begin/commit return OK or a clean error, and a committed record is
 *      itself loadable.
 * The clock is frozen so that a run replays exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

#define FUZZ_NOW INT64_C(1735689600000)
#define FUZZ_SID "fuzz-record-sid"

static csn_ctx *g_ctx;
static csn_store *g_store;
static char g_cookie_header[128];

static int64_t frozen_clock(void *ud) {
  (void)ud;
  return FUZZ_NOW;
}

/* Errors are expected here by the thousand; keep stderr quiet. */
static void quiet_log(int err, const char *msg, void *ud) {
  (void)err;
  (void)msg;
  (void)ud;
}

static void setup(void) {
  static const char *const secrets[] = {"keyboard cat"};
  csn_memory_options mo;
  csn_options o;
  char signed_id[96];
  size_t signed_len = sizeof signed_id;

  memset(&mo, 0, sizeof mo);
  mo.prune_interval_ms = -1; /* no background thread */
  mo.clock = frozen_clock;
  if (csn_store_memory_new(&mo, &g_store) != CSN_OK)
    abort();
  csn_options_init(&o);
  o.secrets = secrets;
  o.n_secrets = 1;
  o.store = g_store;
  o.clock = frozen_clock;
  o.log = quiet_log;
  if (csn_ctx_new(&g_ctx, &o, NULL, 0) != CSN_OK)
    abort();
  if (csn_cookie_sign(FUZZ_SID, strlen(FUZZ_SID), secrets[0],
                      strlen(secrets[0]), signed_id, &signed_len) != CSN_OK)
    abort();
  /* The raw (not percent-encoded) form is accepted, as in express. */
  snprintf(g_cookie_header, sizeof g_cookie_header, "connect.sid=s:%s",
           signed_id);
}

static int same_str(const char *a, const char *b) {
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

static int same_cookie(const csn__cookie *a, const csn__cookie *b) {
  return a->original_max_age == b->original_max_age &&
         a->expires == b->expires && a->http_only == b->http_only &&
         a->secure == b->secure && a->partitioned == b->partitioned &&
         a->same_site == b->same_site && a->priority == b->priority &&
         same_str(a->domain, b->domain) && same_str(a->path, b->path);
}

/* Equal values, keys compared with their length (they may hold NUL, which
 * json_equal() would cut them at). With js_numbers, numbers compare as
 * JavaScript values: JavaScript has one number type, so 3 and 3.0 (and 0
 * and -0) are the same value and JSON text carries no difference between
 * them either. Without it an integer is not a real (both sides come from
 * the same reader). */
static int values_equal(json_t *a, json_t *b, int js_numbers) {
  if (js_numbers && json_is_number(a) && json_is_number(b))
    return json_number_value(a) == json_number_value(b);
  if (json_typeof(a) != json_typeof(b))
    return 0;
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b))
      return 0;
    for (void *it = json_object_iter(a); it != NULL;
         it = json_object_iter_next(a, it)) {
      json_t *w = json_object_getn(b, json_object_iter_key(it),
                                   json_object_iter_key_len(it));
      if (w == NULL ||
          !values_equal(json_object_iter_value(it), w, js_numbers))
        return 0;
    }
    return 1;
  }
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b))
      return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!values_equal(json_array_get(a, i), json_array_get(b, i),
                        js_numbers))
        return 0;
    return 1;
  }
  return json_equal(a, b);
}

static int is_clean_error(int rc) {
  return rc == CSN_ECORRUPT || rc == CSN_ENOMEM || rc == CSN_EINVAL ||
         rc == CSN_ERANGE || rc == CSN_ESTORE;
}

/* The plain way of loading a record (what csn__session_load() must give):
 * CSN_OK with *data and *c filled, or the error and *unreadable. */
static int reference_load(const char *text, size_t len, json_t **data,
                          csn__cookie *c, int *unreadable) {
  json_t *root, *cookie;
  int rc = CSN_OK;
  *unreadable = 0;
  root = csn__json_parse(text, len, &rc);
  if (root == NULL) {
    if (rc == CSN_ENOMEM)
      return rc;
    *unreadable = 1;
    return CSN_ECORRUPT;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    *unreadable = 1;
    return CSN_ECORRUPT;
  }
  cookie = json_object_get(root, "cookie");
  if (!json_is_object(cookie)) {
    json_decref(root);
    return CSN_ECORRUPT;
  }
  rc = csn__cookie_from_json(c, cookie);
  if (rc < 0) {
    json_decref(root);
    return rc;
  }
  json_object_del(root, "cookie");
  *data = root;
  return CSN_OK;
}

static char *dump_text(json_t *j) {
  csn__buf b;
  csn__buf_init(&b);
  csn__json_dump(&b, j);
  return csn__buf_steal(&b, NULL);
}

static void differential(const char *text, size_t len) {
  csn_request r;
  csn__cookie c = {CSN_TIME_NONE, CSN_TIME_NONE, CSN__ABSENT, CSN__ABSENT,
                   CSN__ABSENT,   CSN_SAMESITE_UNSET, CSN_PRIORITY_UNSET,
                   NULL,          NULL};
  json_t *data = NULL;
  char *cut = NULL, *a, *b;
  int un_fast = -1, un_ref = -1, rc_fast, rc_ref;

  memset(&r, 0, sizeof r);
  csn__session_init(&r.sess, &r);
  rc_fast = csn__session_load(&r.sess, text, len, &un_fast, &cut);
  rc_ref = reference_load(text, len, &data, &c, &un_ref);
  /* Out of memory in one of them only (a failing allocator): no verdict. */
  if (rc_fast == CSN_ENOMEM || rc_ref == CSN_ENOMEM)
    goto done;
  if (rc_fast != rc_ref || (rc_fast != CSN_OK && un_fast != un_ref))
    abort();
  if (rc_fast != CSN_OK) {
    if (cut != NULL)
      abort();
    goto done;
  }
  if (!same_cookie(&r.sess.cookie, &c) || !values_equal(r.sess.data, data, 0))
    abort();
  /* The same members in the same order. */
  a = dump_text(r.sess.data);
  b = dump_text(data);
  if (a == NULL || b == NULL || strcmp(a, b) != 0)
    abort();
  csn__free(a);
  csn__free(b);
  if (cut != NULL) {
    char *want = csn__session_data_text(&r.sess);
    if (want == NULL || strcmp(cut, want) != 0)
      abort();
    csn__free(want);
  }
done:
  csn__free(cut);
  json_decref(data);
  csn__cookie_free(&c);
  csn__session_reset(&r.sess);
}

static void direct(const char *text, size_t len) {
  csn_request r1, r2;
  char *rec1, *rec2;
  size_t len1 = 0, len2 = 0;
  int rc;

  memset(&r1, 0, sizeof r1);
  memset(&r2, 0, sizeof r2);
  csn__session_init(&r1.sess, &r1);
  csn__session_init(&r2.sess, &r2);

  rc = csn__session_from_record(&r1.sess, text, len, NULL);
  if (rc != CSN_OK) {
    if (!is_clean_error(rc))
      abort();
    csn__session_reset(&r1.sess);
    return;
  }
  rec1 = csn__session_record(&r1.sess, &len1);
  if (rec1 == NULL)
    abort(); /* a loaded record must be writable again */
  if (csn__session_from_record(&r2.sess, rec1, len1, NULL) != CSN_OK)
    abort();
  if (!values_equal(r1.sess.data, r2.sess.data, 1) &&
      !(json_object_size(r1.sess.data) == 0 &&
        json_object_size(r2.sess.data) == 0))
    abort();
  if (!same_cookie(&r1.sess.cookie, &r2.sess.cookie))
    abort();
  rec2 = csn__session_record(&r2.sess, &len2);
  if (rec2 == NULL || len1 != len2 || memcmp(rec1, rec2, len1) != 0)
    abort();
  csn__free(rec1);
  csn__free(rec2);
  csn__session_reset(&r1.sess);
  csn__session_reset(&r2.sess);
}

static void through_request(const char *text, size_t len) {
  csn_request_info info;
  csn_request *req = NULL;
  csn_session *s;
  char *set_cookie = NULL, *stored = NULL, fresh_id[64] = "";
  size_t stored_len = 0;
  int rc, loaded;

  if (csn_store_set(g_store, FUZZ_SID, text, len, CSN_TIME_NONE) != CSN_OK)
    abort();
  memset(&info, 0, sizeof info);
  info.cookie_header = g_cookie_header;
  info.url = "/";
  rc = csn_request_begin(g_ctx, &info, &req);
  if (rc != CSN_OK) {
    if (!is_clean_error(rc) || req != NULL)
      abort();
    return;
  }
  s = csn_request_session(req);
  /* Text that is no record at all starts a fresh session under a new id
   * (and is left in the store): only a loaded record is written back. */
  loaded = s != NULL && strcmp(csn_session_id(s), FUZZ_SID) == 0;
  if (s != NULL && !loaded)
    snprintf(fresh_id, sizeof fresh_id, "%s", csn_session_id(s));
  if (s != NULL) {
    rc = csn_session_set_int(s, "fuzz", 1);
    if (rc != CSN_OK && rc != CSN_EINVAL)
      abort();
  }
  rc = csn_request_commit(req, &set_cookie);
  if (rc != CSN_OK && (!is_clean_error(rc) || set_cookie != NULL))
    abort();
  /* A stored domain or path is attacker-influenced text: it must never
   * put a control byte (CR LF: header injection) into Set-Cookie. */
  for (const char *p = set_cookie; p != NULL && *p != '\0'; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      abort();
  csn_free(set_cookie);
  csn_request_free(req);

  if (fresh_id[0] != '\0')
    csn_store_destroy(g_store, fresh_id); /* the store stays small */
  /* Whatever was written back must itself be a loadable record. */
  if (rc == CSN_OK && loaded &&
      csn_store_get(g_store, FUZZ_SID, &stored, &stored_len) == CSN_OK) {
    csn_request r;
    memset(&r, 0, sizeof r);
    csn__session_init(&r.sess, &r);
    if (csn__session_from_record(&r.sess, stored, stored_len, NULL) != CSN_OK)
      abort();
    csn__session_reset(&r.sess);
    csn_free(stored);
  }
  csn_store_destroy(g_store, FUZZ_SID);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text;

  if (g_ctx == NULL)
    setup();
  /* An exact-size copy without a NUL: the parser gets a length. */
  text = malloc(size ? size : 1);
  if (text == NULL)
    abort();
  memcpy(text, data, size);
  differential(text, size);
  direct(text, size);
  through_request(text, size);
  free(text);
  return 0;
}
