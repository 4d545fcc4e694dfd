/* test_core_lifecycle.c - the middleware core without HTTP: Set-Cookie and
 * stored-record vectors of express-session (spec 4.1) with a frozen clock,
 * the store-call traces of spec section 7, and option validation.
 *
 * The store is a real MemoryStore wrapped by the harness's counting store,
 * so every assertion about "which store calls happened" is about real
 * calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csn_int.h"
#include "http_harness.h"

#define FROZEN INT64_C(1735689600000) /* 2025-01-01T00:00:00Z */
#define SID "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf"
#define SIGNED_SID                                                     \
  "connect.sid=s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."                  \
  "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts"
#define APPLE "connect.sid=s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"

static int64_t frozen_clock(void *ud) {
  (void)ud;
  return FROZEN;
}

static int fixed_id(const csn_request_info *req, char *buf, size_t size,
                    void *ud) {
  (void)req;
  snprintf(buf, size, "%s", (const char *)ud);
  return CSN_OK;
}

/* Counter genid: sid1, sid2, ... (spec section 7 traces). */
static int counter_id(const csn_request_info *req, char *buf, size_t size,
                      void *ud) {
  int *n = ud;
  (void)req;
  snprintf(buf, size, "sid%d", ++*n);
  return CSN_OK;
}

static const char *const KEYBOARD[] = {"keyboard cat"};

static void base_opts(csn_options *o, csn_store *st) {
  csn_options_init(o);
  o->secrets = KEYBOARD;
  o->n_secrets = 1;
  o->store = st;
}

/* One request: begin, let `fn` act on the session, commit. Returns the
 * Set-Cookie (caller frees) or NULL; *rc gets the first error. */
typedef void (*handler_fn)(csn_request *r, void *ud);

static char *run(csn_ctx *ctx, const char *cookie, const char *url,
                 const char *xfp, handler_fn fn, void *ud, int *rc_out) {
  csn_request_info in = {0};
  csn_request *r = NULL;
  char *sc = NULL;
  int rc;

  in.cookie_header = cookie;
  in.url = url ? url : "/";
  in.forwarded_proto = xfp;
  rc = csn_request_begin(ctx, &in, &r);
  if (rc == CSN_OK) {
    if (fn)
      fn(r, ud);
    rc = csn_request_commit(r, &sc);
    csn_request_free(r);
  }
  if (rc_out)
    *rc_out = rc;
  return sc;
}

/* "name=value" of a Set-Cookie header: what a browser sends back. */
static char *cookie_of(const char *set_cookie) {
  size_t n = strcspn(set_cookie, ";");
  char *c = malloc(n + 1);
  memcpy(c, set_cookie, n);
  c[n] = '\0';
  return c;
}

/* ---------------------------------------------------------------------- */
/* Spec 4.1 vectors                                                       */
/* ---------------------------------------------------------------------- */

typedef struct vector {
  const char *what;
  void (*setup)(csn_options *o);
  const char *url;
  const char *xfp;
  const char *set_cookie;
  const char *json; /* the record before commit (cookie only), or NULL */
} vector;

static void v_defaults(csn_options *o) { (void)o; }
static void v_max_age(csn_options *o) { o->cookie.max_age_ms = 60000; }
static void v_domain(csn_options *o) {
  o->cookie.max_age_ms = 3600000;
  o->cookie.domain = "example.com";
}
static void v_http_only_off(csn_options *o) { o->cookie.http_only = 0; }
static void v_ss_true(csn_options *o) { o->cookie.same_site = CSN_SAMESITE_TRUE; }
static void v_ss_lax(csn_options *o) { o->cookie.same_site = CSN_SAMESITE_LAX; }
static void v_ss_strict(csn_options *o) { o->cookie.same_site = CSN_SAMESITE_STRICT; }
static void v_ss_none(csn_options *o) { o->cookie.same_site = CSN_SAMESITE_NONE; }
static void v_ss_auto(csn_options *o) { o->cookie.same_site = CSN_SAMESITE_AUTO; }
static void v_sec_auto(csn_options *o) { o->cookie.secure = CSN_SECURE_AUTO; }
static void v_part_prio(csn_options *o) {
  o->cookie.partitioned = 1;
  o->cookie.priority = CSN_PRIORITY_HIGH;
}
static void v_prio_low(csn_options *o) { o->cookie.priority = CSN_PRIORITY_LOW; }
static void v_full(csn_options *o) {
  o->proxy = CSN_PROXY_TRUST;
  o->cookie.max_age_ms = 86400000;
  o->cookie.domain = ".example.com";
  o->cookie.secure = CSN_SECURE_ON;
  o->cookie.partitioned = 1;
  o->cookie.priority = CSN_PRIORITY_MEDIUM;
  o->cookie.same_site = CSN_SAMESITE_NONE;
}
static void v_expires_2030(csn_options *o) {
  o->cookie.expires_ms = INT64_C(1907757045000); /* 2030-06-15T12:30:45Z */
}
static void v_max_age_0(csn_options *o) { o->cookie.max_age_ms = 0; }
static void v_max_age_neg(csn_options *o) { o->cookie.max_age_ms = -1000; }
static void v_max_age_1700(csn_options *o) { o->cookie.max_age_ms = 1700; }
static void v_name_sid(csn_options *o) { o->name = "sid"; }

static const vector VECTORS[] = {
    {"defaults", v_defaults, NULL, NULL, SIGNED_SID "; Path=/; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"httpOnly\":true,\"path\":\"/\"}}"},
    {"maxAge 60000", v_max_age, NULL, NULL,
     SIGNED_SID "; Path=/; Expires=Wed, 01 Jan 2025 00:01:00 GMT; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2025-01-01T00:01:00.000Z\",\"httpOnly\":true,\"path\":\"/\"}}"},
    {"domain", v_domain, NULL, NULL,
     SIGNED_SID "; Domain=example.com; Path=/; Expires=Wed, 01 Jan 2025 01:00:00 GMT; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"2025-01-01T01:00:00.000Z\",\"httpOnly\":true,\"domain\":\"example.com\",\"path\":\"/\"}}"},
    {"httpOnly false", v_http_only_off, NULL, NULL, SIGNED_SID "; Path=/", NULL},
    {"sameSite true", v_ss_true, NULL, NULL,
     SIGNED_SID "; Path=/; HttpOnly; SameSite=Strict", NULL},
    {"sameSite lax", v_ss_lax, NULL, NULL, SIGNED_SID "; Path=/; HttpOnly; SameSite=Lax", NULL},
    {"sameSite strict", v_ss_strict, NULL, NULL,
     SIGNED_SID "; Path=/; HttpOnly; SameSite=Strict", NULL},
    {"sameSite none", v_ss_none, NULL, NULL, SIGNED_SID "; Path=/; HttpOnly; SameSite=None", NULL},
    {"sameSite auto over http", v_ss_auto, NULL, NULL,
     SIGNED_SID "; Path=/; HttpOnly; SameSite=Lax",
     "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"}}"},
    {"secure auto over http", v_sec_auto, NULL, NULL, SIGNED_SID "; Path=/; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"secure\":false,\"httpOnly\":true,\"path\":\"/\"}}"},
    {"partitioned + priority high", v_part_prio, NULL, NULL,
     SIGNED_SID "; Path=/; HttpOnly; Partitioned; Priority=High",
     "{\"cookie\":{\"originalMaxAge\":null,\"partitioned\":true,\"priority\":\"high\",\"expires\":null,\"httpOnly\":true,\"path\":\"/\"}}"},
    {"priority low", v_prio_low, NULL, NULL, SIGNED_SID "; Path=/; HttpOnly; Priority=Low", NULL},
    {"proxy + XFP https, everything", v_full, NULL, "https",
     SIGNED_SID "; Domain=.example.com; Path=/; Expires=Thu, 02 Jan 2025 00:00:00 GMT; HttpOnly; Secure; Partitioned; Priority=Medium; SameSite=None",
     "{\"cookie\":{\"originalMaxAge\":86400000,\"partitioned\":true,\"priority\":\"medium\",\"expires\":\"2025-01-02T00:00:00.000Z\",\"secure\":true,\"httpOnly\":true,\"domain\":\".example.com\",\"path\":\"/\",\"sameSite\":\"none\"}}"},
    {"expires 2030", v_expires_2030, NULL, NULL,
     SIGNED_SID "; Path=/; Expires=Sat, 15 Jun 2030 12:30:45 GMT; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":172067445000,\"expires\":\"2030-06-15T12:30:45.000Z\",\"httpOnly\":true,\"path\":\"/\"}}"},
    {"maxAge 0", v_max_age_0, NULL, NULL,
     SIGNED_SID "; Path=/; Expires=Wed, 01 Jan 2025 00:00:00 GMT; HttpOnly", NULL},
    {"maxAge -1000", v_max_age_neg, NULL, NULL,
     SIGNED_SID "; Path=/; Expires=Tue, 31 Dec 2024 23:59:59 GMT; HttpOnly", NULL},
    {"maxAge 1700", v_max_age_1700, NULL, NULL,
     SIGNED_SID "; Path=/; Expires=Wed, 01 Jan 2025 00:00:01 GMT; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":1700,\"expires\":\"2025-01-01T00:00:01.700Z\",\"httpOnly\":true,\"path\":\"/\"}}"},
    {"name sid", v_name_sid, NULL, NULL,
     "sid=s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf.G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts; Path=/; HttpOnly",
     NULL},
};

static void capture_json(csn_request *r, void *ud) {
  char **out = ud;
  assert_int_equal(csn_session_to_json(csn_request_session(r), out), CSN_OK);
}

static void core_set_cookie_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < CSN__ARRAY_SIZE(VECTORS); i++) {
    const vector *v = &VECTORS[i];
    counting_store *cs = counting_store_new(NULL, 1);
    csn_options o;
    csn_ctx *ctx;
    char *json = NULL, *sc;
    int rc;

    base_opts(&o, &cs->base);
    o.clock = frozen_clock;
    o.genid = fixed_id;
    o.genid_userdata = (void *)SID;
    v->setup(&o);
    assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
    sc = run(ctx, NULL, v->url, v->xfp, capture_json, &json, &rc);
    assert_int_equal(rc, CSN_OK);
    if (sc == NULL || strcmp(sc, v->set_cookie) != 0)
      fail_msg("%s: got %s\nwant %s", v->what, sc ? sc : "(none)",
               v->set_cookie);
    if (v->json && strcmp(json, v->json) != 0)
      fail_msg("%s: json %s\nwant %s", v->what, json, v->json);
    /* saveUninitialized defaults to true: the new session was stored. */
    assert_int_equal(atomic_load(&cs->sets), 1);
    csn_free(json);
    csn_free(sc);
    csn_ctx_free(ctx);
    csn_store_free(&cs->base);
  }
}

/* "stored:" vectors: the record MemoryStore keeps (genid apple). */
typedef struct stored_vector {
  const char *what;
  void (*setup)(csn_options *o);
  const char *url;
  const char *xfp;
  const char *set_cookie;
  const char *stored;
} stored_vector;

static void s_auto(csn_options *o) {
  o->proxy = CSN_PROXY_TRUST;
  o->cookie.secure = CSN_SECURE_AUTO;
  o->cookie.same_site = CSN_SAMESITE_AUTO;
}
static void s_big(csn_options *o) { o->cookie.max_age_ms = INT64_C(3000000000); }
static void s_admin(csn_options *o) {
  o->cookie.path = "/admin";
  o->cookie.domain = "sub.example.org";
  o->cookie.max_age_ms = 5000;
  o->cookie.http_only = 0;
  o->cookie.same_site = CSN_SAMESITE_STRICT;
}
static void s_epoch(csn_options *o) { o->cookie.expires_ms = 0; }

static const stored_vector STORED[] = {
    {"auto, https", s_auto, NULL, "https",
     APPLE "; Path=/; HttpOnly; Secure; SameSite=None",
     "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"secure\":true,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"none\"}}"},
    {"auto, http", s_auto, NULL, "http", APPLE "; Path=/; HttpOnly; SameSite=Lax",
     "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"secure\":false,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"}}"},
    {"maxAge 3e9", s_big, NULL, NULL,
     APPLE "; Path=/; Expires=Tue, 04 Feb 2025 17:20:00 GMT; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":3000000000,\"expires\":\"2025-02-04T17:20:00.000Z\",\"httpOnly\":true,\"path\":\"/\"}}"},
    {"admin path", s_admin, "/admin/x", NULL,
     APPLE "; Domain=sub.example.org; Path=/admin; Expires=Wed, 01 Jan 2025 00:00:05 GMT; SameSite=Strict",
     "{\"cookie\":{\"originalMaxAge\":5000,\"expires\":\"2025-01-01T00:00:05.000Z\",\"httpOnly\":false,\"domain\":\"sub.example.org\",\"path\":\"/admin\",\"sameSite\":\"strict\"}}"},
    {"expires epoch", s_epoch, NULL, NULL,
     APPLE "; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly",
     "{\"cookie\":{\"originalMaxAge\":-1735689600000,\"expires\":\"1970-01-01T00:00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"}}"},
};

static void core_stored_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < CSN__ARRAY_SIZE(STORED); i++) {
    const stored_vector *v = &STORED[i];
    csn_memory_options mo = {0};
    csn_store *st;
    csn_options o;
    csn_ctx *ctx;
    char *sc, *stored = NULL, *json;
    size_t len;
    int rc;

    /* The expires-epoch record is already expired for a live clock: give
     * the store the frozen clock too... which is later than 1970 anyway,
     * so read it back through all() before expiry is checked on get. */
    mo.clock = frozen_clock;
    mo.prune_interval_ms = -1;
    assert_int_equal(csn_store_memory_new(&mo, &st), CSN_OK);
    base_opts(&o, st);
    o.clock = frozen_clock;
    o.genid = fixed_id;
    o.genid_userdata = (void *)"apple";
    v->setup(&o);
    assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
    sc = run(ctx, NULL, v->url, v->xfp, NULL, NULL, &rc);
    assert_int_equal(rc, CSN_OK);
    if (sc == NULL || strcmp(sc, v->set_cookie) != 0)
      fail_msg("%s: got %s\nwant %s", v->what, sc ? sc : "(none)",
               v->set_cookie);
    rc = csn_store_get(st, "apple", &json, &len);
    if (rc == CSN_OK) {
      stored = strndup(json, len);
      csn_free(json);
    } else {
      /* Expired on arrival (Date(0)): express still saved it. */
      assert_int_equal(rc, CSN_ENOENT);
      assert_true(v->setup == s_epoch);
      stored = NULL;
    }
    if (stored && strcmp(stored, v->stored) != 0)
      fail_msg("%s: stored %s\nwant %s", v->what, stored, v->stored);
    free(stored);
    csn_free(sc);
    csn_ctx_free(ctx);
    csn_store_free(st);
  }
}

/* ---------------------------------------------------------------------- */
/* Spec section 7 traces                                                  */
/* ---------------------------------------------------------------------- */

typedef struct fixture {
  counting_store *cs;
  csn_ctx *ctx;
  int counter;
} fixture;

static void fx_open(fixture *f, void (*setup)(csn_options *o)) {
  csn_options o;
  memset(f, 0, sizeof *f);
  f->cs = counting_store_new(NULL, 1);
  base_opts(&o, &f->cs->base);
  o.genid = counter_id;
  o.genid_userdata = &f->counter;
  if (setup)
    setup(&o);
  assert_int_equal(csn_ctx_new(&f->ctx, &o, NULL, 0), CSN_OK);
}

static void fx_close(fixture *f) {
  csn_ctx_free(f->ctx);
  csn_store_free(&f->cs->base);
}

#define COUNTS(f, g, s, t, d)                                  \
  do {                                                         \
    assert_int_equal(atomic_load(&(f)->cs->gets), (g));        \
    assert_int_equal(atomic_load(&(f)->cs->sets), (s));        \
    assert_int_equal(atomic_load(&(f)->cs->touches), (t));     \
    assert_int_equal(atomic_load(&(f)->cs->destroys), (d));    \
  } while (0)

static void h_incr(csn_request *r, void *ud) {
  (void)ud;
  assert_int_equal(csn_session_incr(csn_request_session(r), "n", 1, NULL),
                   CSN_OK);
}

static void h_same(csn_request *r, void *ud) {
  (void)ud;
  assert_int_equal(csn_session_set_int(csn_request_session(r), "n", 1),
                   CSN_OK);
}

static void o_resave_true_max(csn_options *o) { o->cookie.max_age_ms = 60000; }
static void o_lazy(csn_options *o) {
  o->resave = 0;
  o->save_uninitialized = 0;
}
static void o_lazy_max(csn_options *o) {
  o_lazy(o);
  o->cookie.max_age_ms = 60000;
}
static void o_rolling(csn_options *o) {
  o_lazy(o);
  o->rolling = 1;
}

static void core_trace_resave_default(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, o_resave_true_max);
  sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
  assert_non_null(sc);
  assert_true(strncmp(sc, "connect.sid=s%3Asid1.4YoJZnIqpgrlGg6oZVxeULvHSSb4XBMun30z1slizIo; Path=/; Expires=", 82) == 0);
  COUNTS(&f, 0, 1, 0, 0);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, NULL, NULL, NULL);
  assert_null(sc); /* unmodified, not rolling: no cookie */
  COUNTS(&f, 1, 1, 0, 0); /* resave: set again */
  free(c);
  fx_close(&f);
}

static void core_trace_lazy_untouched(void **state) {
  fixture f;
  char *sc;
  (void)state;
  fx_open(&f, o_lazy);
  for (int i = 0; i < 3; i++) {
    sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
    assert_null(sc);
  }
  COUNTS(&f, 0, 0, 0, 0);
  fx_close(&f);
}

static void core_trace_lazy_modified_once(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, o_lazy);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  assert_non_null(sc);
  COUNTS(&f, 0, 1, 0, 0);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, NULL, NULL, NULL);
  assert_null(sc);
  COUNTS(&f, 1, 0, 1, 0); /* get | touch */
  free(c);
  fx_close(&f);
}

static void core_trace_modified_every_request(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  /* With maxAge: the cookie is re-sent (same value, new Expires). */
  fx_open(&f, o_lazy_max);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_incr, NULL, NULL);
  assert_non_null(sc);
  assert_true(strncmp(sc, c, strlen(c)) == 0);
  COUNTS(&f, 1, 1, 0, 0);
  csn_free(sc);
  free(c);
  fx_close(&f);

  /* Without maxAge: saved, but no cookie. */
  fx_open(&f, o_lazy);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_incr, NULL, NULL);
  assert_null(sc);
  COUNTS(&f, 1, 1, 0, 0);
  free(c);
  fx_close(&f);
}

static void core_trace_equal_value_not_modified(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, o_lazy_max);
  sc = run(f.ctx, NULL, NULL, NULL, h_same, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_same, NULL, NULL);
  assert_null(sc); /* n = 1 again: not a modification */
  COUNTS(&f, 1, 0, 1, 0);
  free(c);
  fx_close(&f);
}

static void core_trace_rolling(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, o_rolling);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, NULL, NULL, NULL);
  assert_non_null(sc);
  COUNTS(&f, 1, 0, 1, 0); /* get | touch + Set-Cookie */
  csn_free(sc);
  free(c);
  fx_close(&f);
}

static void core_trace_untrusted_cookies(void **state) {
  static const char *const bad[] = {
      "connect.sid=sid999", /* unsigned */
      "connect.sid=s%3Asid1.4YoJZnIqpgrlGg6oZVxeULvHSSb4XBMun30z1slizIx",
      "connect.sid=s%3Asid2.4YoJZnIqpgrlGg6oZVxeULvHSSb4XBMun30z1slizIo",
      "connect.sid=", "connect.sid=s%3A", "connect.sid=%E0%A4%A",
      "connect.sid=s:%00.abc",
  };
  fixture f;
  (void)state;
  fx_open(&f, NULL);
  for (size_t i = 0; i < CSN__ARRAY_SIZE(bad); i++) {
    char *sc = run(f.ctx, bad[i], NULL, NULL, NULL, NULL, NULL);
    assert_non_null(sc); /* a new session (saveUninitialized) */
    csn_free(sc);
  }
  COUNTS(&f, 0, CSN__ARRAY_SIZE(bad), 0, 0);
  fx_close(&f);
}

static void core_trace_wrong_secret_and_rotation(void **state) {
  static const char *const rotated[] = {"new", "keyboard cat"};
  static const char *const other[] = {"nyan cat"};
  fixture f;
  csn_options o;
  csn_ctx *ctx2;
  char *sc, *c;
  (void)state;
  fx_open(&f, o_lazy);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);

  /* A server with another secret never looks the id up. */
  base_opts(&o, &f.cs->base);
  o.secrets = other;
  assert_int_equal(csn_ctx_new(&ctx2, &o, NULL, 0), CSN_OK);
  counting_store_reset(f.cs);
  sc = run(ctx2, c, NULL, NULL, NULL, NULL, NULL);
  csn_free(sc);
  assert_int_equal(atomic_load(&f.cs->gets), 0);
  csn_ctx_free(ctx2);

  /* A rotated list accepts the old secret and signs with the new one. */
  base_opts(&o, &f.cs->base);
  o.secrets = rotated;
  o.n_secrets = 2;
  o.rolling = 1;
  assert_int_equal(csn_ctx_new(&ctx2, &o, NULL, 0), CSN_OK);
  counting_store_reset(f.cs);
  sc = run(ctx2, c, NULL, NULL, NULL, NULL, NULL);
  assert_int_equal(atomic_load(&f.cs->gets), 1);
  assert_non_null(sc);
  assert_true(strncmp(sc, "connect.sid=s%3Asid1.", 21) == 0);
  assert_true(strncmp(sc, c, strlen(c)) != 0); /* re-signed */
  csn_free(sc);
  csn_ctx_free(ctx2);
  free(c);
  fx_close(&f);
}

/* A returning request's Set-Cookie carries the incoming value back as it
 * is when that is already what express would write (request.c skips
 * encoding it again). Every other spelling of the same signed value must
 * still get express's own, encodeURIComponent("s:" + id + "." + sig). */
static void h_incr_get(csn_request *r, void *ud) {
  assert_int_equal(
      csn_session_incr(csn_request_session(r), "n", 1, (int64_t *)ud),
      CSN_OK);
}

static void core_set_cookie_canonical_value(void **state) {
  static const char *const spellings[] = {
      /* canonical: sent back as it is */
      SIGNED_SID,
      /* quoted */
      "connect.sid=\"s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
      "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts\"",
      /* lower-case hex */
      "connect.sid=s%3ahrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
      "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2f%2Fr%2F8WnmJts",
      /* an escape of a byte encodeURIComponent leaves alone ('h', 'A') */
      "connect.sid=s%3A%68rUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
      "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts",
      "connect.sid=s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
      "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts%41",
      /* literal '/' that encodeURIComponent escapes */
      "connect.sid=s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
      "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6//r%2F8WnmJts",
      /* a literal ':' */
      "connect.sid=s:hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
      "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts",
  };
  counting_store *cs = counting_store_new(NULL, 1);
  csn_options o;
  csn_ctx *ctx;
  char *sc, want[200];
  int64_t n = 0, expect = 1;
  size_t i;
  (void)state;
  base_opts(&o, &cs->base);
  o.genid = fixed_id;
  o.genid_userdata = (void *)SID;
  o_lazy_max(&o);
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  snprintf(want, sizeof want, "%s; Path=/; Expires=", SIGNED_SID);
  sc = run(ctx, NULL, NULL, NULL, h_incr_get, &n, NULL);
  assert_non_null(sc);
  assert_true(strncmp(sc, want, strlen(want)) == 0);
  csn_free(sc);
  for (i = 0; i < CSN__ARRAY_SIZE(spellings); i++) {
    const char *value = strchr(spellings[i], '=') + 1;
    /* The "%41" spelling signs another value ("...JtsA"): it does not
     * verify, a new session starts and the count starts over. */
    int verifies = strstr(value, "%41") == NULL;
    sc = run(ctx, spellings[i], NULL, NULL, h_incr_get, &n, NULL);
    assert_non_null(sc);
    expect = verifies ? expect + 1 : 1;
    if (n != expect)
      fail_msg("%s: n is %lld, want %lld (not loaded?)", spellings[i],
               (long long)n, (long long)expect);
    if (strncmp(sc, want, strlen(want)) != 0)
      fail_msg("%s: Set-Cookie %s\nwant %s...", spellings[i], sc, want);
    csn_free(sc);
  }
  csn_ctx_free(ctx);
  csn_store_free(&cs->base);
}

/* The data's text and the record are built on commit's stack when they
 * fit (request.c) and on the heap when not: a session grows past both
 * sizes and shrinks back, and every request reads what the one before
 * wrote. */
static void h_grow(csn_request *r, void *ud) {
  csn_session *s = csn_request_session(r);
  size_t *want = ud, n;
  const char *got = NULL;
  size_t glen = 0;
  char *v;
  if (*want > 0) { /* what the previous request stored */
    assert_int_equal(csn_session_get_str(s, "blob", &got, &glen), CSN_OK);
    assert_int_equal(glen, *want);
  }
  n = *want < 4000 ? *want + 700 : 10;
  v = malloc(n + 1);
  assert_non_null(v);
  memset(v, 'x', n);
  v[n] = '\0';
  assert_int_equal(csn_session_set_str(s, "blob", v), CSN_OK);
  free(v);
  *want = n;
}

static void core_big_session_records(void **state) {
  fixture f;
  char *sc, *c;
  size_t want = 0;
  int i;
  (void)state;
  fx_open(&f, o_lazy_max);
  sc = run(f.ctx, NULL, NULL, NULL, h_grow, &want, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  for (i = 0; i < 8; i++) {
    sc = run(f.ctx, c, NULL, NULL, h_grow, &want, NULL);
    assert_non_null(sc);
    csn_free(sc);
  }
  free(c);
  fx_close(&f);
}

/* A cookie an older secret verified is signed again with the first one,
 * even when its value is canonical. */
/* csn_request_commit() ends the request: a later csn_session_save() is
 * refused (the request no longer holds the text a conditional save
 * compares against), and the stored record is what commit wrote. */
static void core_save_after_commit_refused(void **state) {
  csn_options o;
  csn_ctx *ctx;
  csn_request_info in;
  csn_request *r = NULL;
  csn_session *s;
  char *sc = NULL, *json = NULL;
  size_t len = 0;
  (void)state;
  csn_options_init(&o);
  static const char *const secrets[] = {"keyboard cat"};
  o.secrets = secrets;
  o.n_secrets = 1;
  o.genid = fixed_id;
  o.genid_userdata = (void *)SID;
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  memset(&in, 0, sizeof in);
  in.url = "/";
  assert_int_equal(csn_request_begin(ctx, &in, &r), CSN_OK);
  s = csn_request_session(r);
  assert_int_equal(csn_session_set_int(s, "n", 1), CSN_OK);
  assert_int_equal(csn_request_commit(r, &sc), CSN_OK);
  assert_non_null(sc);
  assert_int_equal(csn_session_set_int(s, "n", 2), CSN_OK);
  assert_int_equal(csn_session_save(s), CSN_ESTATE);
  assert_int_equal(csn_store_get(csn_ctx_store(ctx), SID, &json, &len),
                   CSN_OK);
  assert_non_null(strstr(json, "\"n\":1"));
  csn_free(json);
  csn_free(sc);
  csn_request_free(r);
  csn_ctx_free(ctx);
}

static void core_set_cookie_rotated_secret(void **state) {
  static const char *const rotated[] = {"new secret", "keyboard cat"};
  counting_store *cs = counting_store_new(NULL, 1);
  csn_options o;
  csn_ctx *ctx;
  char *sc, sig[CSN__SIG_LEN + 1], want[200];
  csn__hmac_key k;
  int64_t n = 0;
  csn__buf b;
  (void)state;
  base_opts(&o, &cs->base);
  o.genid = fixed_id;
  o.genid_userdata = (void *)SID;
  o_lazy_max(&o);
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  sc = run(ctx, NULL, NULL, NULL, h_incr_get, &n, NULL);
  csn_free(sc);
  csn_ctx_free(ctx);

  o.secrets = rotated;
  o.n_secrets = 2;
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);
  /* What express writes: the id signed with "new secret". */
  assert_int_equal(csn__hmac_key_init(&k, "new secret", 10), CSN_OK);
  csn__sign(&k, SID, strlen(SID), sig);
  csn__hmac_key_clear(&k);
  csn__buf_init(&b);
  csn__buf_puts(&b, "connect.sid=s%3A" SID ".");
  assert_int_equal(csn__uri_encode(&b, sig, strlen(sig)), CSN_OK);
  snprintf(want, sizeof want, "%s; Path=/; Expires=", b.data);
  csn__buf_free(&b);
  sc = run(ctx, SIGNED_SID, NULL, NULL, h_incr_get, &n, NULL);
  assert_non_null(sc);
  assert_int_equal(n, 2); /* loaded through the second secret */
  if (strncmp(sc, want, strlen(want)) != 0)
    fail_msg("Set-Cookie %s\nwant %s...", sc, want);
  csn_free(sc);
  csn_ctx_free(ctx);
  csn_store_free(&cs->base);
}

static void core_trace_unknown_sid(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, NULL);
  sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  assert_int_equal(csn_store_clear(f.cs->inner), CSN_OK);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, NULL, NULL, NULL);
  assert_non_null(sc);
  assert_true(strncmp(sc, "connect.sid=s%3Asid2.", 21) == 0);
  COUNTS(&f, 1, 1, 0, 0);
  csn_free(sc);
  free(c);
  fx_close(&f);
}

static int fail_get(csn_store *st, const char *op, void *ud) {
  (void)st;
  (void)ud;
  return strcmp(op, "get") == 0 ? CSN_ESTORE : 0;
}

static void core_trace_store_get_error(void **state) {
  fixture f;
  char *sc, *c;
  int rc;
  (void)state;
  fx_open(&f, NULL);
  sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  csn__store_set_fault(fail_get, NULL);
  sc = run(f.ctx, c, NULL, NULL, NULL, NULL, &rc);
  csn__store_set_fault(NULL, NULL);
  assert_null(sc);
  assert_true(rc < 0);
  free(c);
  fx_close(&f);
}

static void h_reload(csn_request *r, void *ud) {
  csn_session *s = csn_request_session(r);
  int64_t v = 0;
  (void)ud;
  assert_int_equal(csn_session_set_int(s, "n", 99), CSN_OK);
  assert_int_equal(csn_session_reload(s), CSN_OK);
  assert_int_equal(csn_session_get_int(s, "n", &v), CSN_OK);
  assert_int_equal(v, 1);
}

static void core_trace_reload(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, o_lazy);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_reload, NULL, NULL);
  assert_null(sc);
  COUNTS(&f, 2, 0, 1, 0); /* get | get(reload) | touch */
  free(c);
  fx_close(&f);
}

static void h_destroy(csn_request *r, void *ud) {
  (void)ud;
  assert_int_equal(csn_session_destroy(csn_request_session(r)), CSN_OK);
  assert_null(csn_request_session(r));
}

static void h_regenerate(csn_request *r, void *ud) {
  char **old = ud;
  csn_session *s = csn_request_session(r);
  *old = csn_session_id_dup(s);
  assert_int_equal(csn_session_regenerate(s), CSN_OK);
  assert_string_not_equal(csn_session_id(s), *old);
  assert_int_equal(csn_session_count(s), 0); /* old data gone */
}

static void core_trace_destroy_and_regenerate(void **state) {
  fixture f;
  char *sc, *c, *old = NULL;
  (void)state;
  fx_open(&f, o_lazy);
  sc = run(f.ctx, NULL, NULL, NULL, h_incr, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);

  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_regenerate, &old, NULL);
  assert_non_null(sc);
  assert_true(strncmp(sc, "connect.sid=s%3Asid2.", 21) == 0);
  COUNTS(&f, 1, 1, 0, 1); /* get | destroy(sid1) | set(sid2) */
  assert_false(counting_store_has(f.cs, "sid1"));
  assert_true(counting_store_has(f.cs, "sid2"));
  csn_free(old);
  free(c);
  c = cookie_of(sc);
  csn_free(sc);

  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_destroy, NULL, NULL);
  assert_null(sc);
  COUNTS(&f, 1, 0, 0, 1);
  assert_false(counting_store_has(f.cs, "sid2"));
  free(c);
  fx_close(&f);
}

static void h_unset(csn_request *r, void *ud) {
  (void)ud;
  assert_int_equal(csn_request_unset(r), CSN_OK);
}

static void o_unset_destroy(csn_options *o) { o->unset = CSN_UNSET_DESTROY; }

static void core_trace_unset(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  /* keep: the stored copy stays */
  fx_open(&f, NULL);
  sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  sc = run(f.ctx, c, NULL, NULL, h_unset, NULL, NULL);
  assert_null(sc);
  assert_int_equal(counting_store_length(f.cs), 1);
  free(c);
  fx_close(&f);

  /* destroy: the stored copy goes; a new never-stored id is not destroyed */
  fx_open(&f, o_unset_destroy);
  sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_unset, NULL, NULL);
  assert_null(sc);
  assert_int_equal(counting_store_length(f.cs), 0);
  COUNTS(&f, 1, 0, 0, 1);
  counting_store_reset(f.cs);
  sc = run(f.ctx, NULL, NULL, NULL, h_unset, NULL, NULL);
  assert_null(sc);
  COUNTS(&f, 0, 0, 0, 0);
  free(c);
  fx_close(&f);
}

static void o_secure(csn_options *o) { o->cookie.secure = CSN_SECURE_ON; }

static void core_trace_secure_over_http(void **state) {
  fixture f;
  char *sc;
  (void)state;
  fx_open(&f, o_secure);
  sc = run(f.ctx, NULL, NULL, NULL, NULL, NULL, NULL);
  assert_null(sc);
  COUNTS(&f, 0, 1, 0, 0); /* still saved */
  fx_close(&f);
}

static void h_save(csn_request *r, void *ud) {
  (void)ud;
  h_incr(r, NULL);
  assert_int_equal(csn_session_save(csn_request_session(r)), CSN_OK);
}

static void core_trace_explicit_save(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, NULL);
  sc = run(f.ctx, NULL, NULL, NULL, h_save, NULL, NULL);
  COUNTS(&f, 0, 1, 0, 0); /* exactly one set */
  c = cookie_of(sc);
  csn_free(sc);
  counting_store_reset(f.cs);
  sc = run(f.ctx, c, NULL, NULL, h_save, NULL, NULL);
  COUNTS(&f, 1, 1, 1, 0); /* explicit set, then touch (no change after) */
  csn_free(sc);
  free(c);
  fx_close(&f);
}

static void o_path_admin(csn_options *o) { o->cookie.path = "/admin"; }

static void core_path_gate(void **state) {
  fixture f;
  char *sc;
  csn_request_info in = {0};
  csn_request *r;
  (void)state;
  fx_open(&f, o_path_admin);
  in.url = "/";
  assert_int_equal(csn_request_begin(f.ctx, &in, &r), CSN_OK);
  assert_null(csn_request_session(r));
  assert_int_equal(csn_request_commit(r, &sc), CSN_OK);
  assert_null(sc);
  csn_request_free(r);
  in.url = "/adminx?y=1"; /* raw prefix match, as in express */
  assert_int_equal(csn_request_begin(f.ctx, &in, &r), CSN_OK);
  assert_non_null(csn_request_session(r));
  csn_request_free(r);
  in.url = "/ADMIN";
  assert_int_equal(csn_request_begin(f.ctx, &in, &r), CSN_OK);
  assert_null(csn_request_session(r));
  csn_request_free(r);
  fx_close(&f);
}

/* ---------------------------------------------------------------------- */
/* Session data and options                                               */
/* ---------------------------------------------------------------------- */

static void h_types(csn_request *r, void *ud) {
  csn_session *s = csn_request_session(r);
  int64_t i = 0;
  double d = 0;
  int b = 0;
  const char *str;
  size_t n;
  char *j;
  (void)ud;
  assert_int_equal(csn_session_get_int(s, "missing", &i), CSN_ENOENT);
  assert_int_equal(csn_session_set_int(s, "i", 42), CSN_OK);
  assert_int_equal(csn_session_set_double(s, "d", 1.5), CSN_OK);
  assert_int_equal(csn_session_set_bool(s, "b", 1), CSN_OK);
  assert_int_equal(csn_session_set_str(s, "s", "h\xc3\xa9llo"), CSN_OK);
  assert_int_equal(csn_session_set_json(s, "j", "{\"a\":[1,2]}"), CSN_OK);
  assert_int_equal(csn_session_set_json(s, "bad", "{"), CSN_EINVAL);
  assert_int_equal(csn_session_set_int(s, "cookie", 1), CSN_EINVAL);
  assert_int_equal(csn_session_set_strn(s, "x", "\xff", 1), CSN_EINVAL);
  assert_int_equal(csn_session_get_int(s, "i", &i), CSN_OK);
  assert_int_equal(i, 42);
  assert_int_equal(csn_session_get_double(s, "i", &d), CSN_OK);
  assert_true(d == 42.0);
  assert_int_equal(csn_session_get_int(s, "d", &i), CSN_ETYPE);
  assert_int_equal(csn_session_get_bool(s, "b", &b), CSN_OK);
  assert_int_equal(b, 1);
  assert_int_equal(csn_session_get_str(s, "s", &str, &n), CSN_OK);
  assert_int_equal(n, 6);
  assert_int_equal(csn_session_get_str(s, "i", &str, &n), CSN_ETYPE);
  assert_int_equal(csn_session_get_json(s, "j", &j), CSN_OK);
  assert_string_equal(j, "{\"a\":[1,2]}");
  csn_free(j);
  assert_int_equal(csn_session_count(s), 5);
  assert_int_equal(csn_session_del(s, "b"), CSN_OK);
  assert_int_equal(csn_session_del(s, "b"), CSN_ENOENT);
  assert_int_equal(csn_session_has(s, "b"), 0);
  assert_int_equal(csn_session_incr(s, "i", 1, &i), CSN_OK);
  assert_int_equal(i, 43);
  assert_int_equal(csn_session_to_json(s, &j), CSN_OK);
  assert_true(strstr(j, ",\"i\":43,\"d\":1.5,\"s\":\"h\xc3\xa9llo\",\"j\":{\"a\":[1,2]}}") != NULL);
  csn_free(j);
}

static void h_check_loaded(csn_request *r, void *ud) {
  csn_session *s = csn_request_session(r);
  int64_t i = 0;
  (void)ud;
  assert_int_equal(csn_session_get_int(s, "i", &i), CSN_OK);
  assert_int_equal(i, 43);
  assert_int_equal(csn_session_clear(s), CSN_OK);
  assert_int_equal(csn_session_count(s), 0);
}

static void core_session_data(void **state) {
  fixture f;
  char *sc, *c;
  (void)state;
  fx_open(&f, NULL);
  sc = run(f.ctx, NULL, NULL, NULL, h_types, NULL, NULL);
  c = cookie_of(sc);
  csn_free(sc);
  sc = run(f.ctx, c, NULL, NULL, h_check_loaded, NULL, NULL);
  csn_free(sc);
  free(c);
  fx_close(&f);
}

static void core_options_validation(void **state) {
  static const char *const empty[] = {""};
  csn_options o;
  csn_ctx *ctx = (csn_ctx *)1;
  char err[256];
  (void)state;

  csn_options_init(&o);
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_ENOSECRET);
  assert_null(ctx);
  assert_non_null(strstr(err, "secret option required"));

  o.secrets = empty;
  o.n_secrets = 1;
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_ENOSECRET);

  base_opts(&o, NULL);
  o.cookie.same_site = 42;
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_EINVAL);
  assert_string_equal(err, "option sameSite is invalid");

  base_opts(&o, NULL);
  o.name = "bad name";
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_EINVAL);
  assert_string_equal(err, "argument name is invalid");

  base_opts(&o, NULL);
  o.cookie.path = "/a;b";
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_EINVAL);

  base_opts(&o, NULL);
  o.cookie.domain = "exa mple.com";
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_EINVAL);

  base_opts(&o, NULL);
  o.cookie.max_age_ms = INT64_C(9000000000000000);
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_EINVAL);

  base_opts(&o, NULL);
  o.unset = 7;
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_EINVAL);

  base_opts(&o, NULL); /* private MemoryStore */
  assert_int_equal(csn_ctx_new(&ctx, &o, err, sizeof err), CSN_OK);
  assert_non_null(csn_ctx_store(ctx));
  csn_ctx_free(ctx);
  csn_ctx_free(NULL);
}

/* An object without a usable cookie fails as express-session's inflate
 * does; text that is no record at all (not JSON, not an object) is no
 * session: the request goes on with a fresh one (tests/test_harden_corrupt.c
 * covers that in every store). */
static void core_corrupt_record(void **state) {
  static const char *const bad[] = {
      "{\"foo\":\"bar\"}", "[1,2]", "not json", "{\"cookie\":\"x\"}", "",
  };
  static const int fails[] = {1, 0, 0, 1, 0};
  fixture f;
  int rc;
  char *sc;
  (void)state;
  fx_open(&f, NULL);
  for (size_t i = 0; i < CSN__ARRAY_SIZE(bad); i++) {
    char sig[CSN__SIG_LEN + 1], cookie[256];
    csn__hmac_key k;
    csn__hmac_key_init(&k, "keyboard cat", 12);
    csn__sign(&k, "victim", 6, sig);
    snprintf(cookie, sizeof cookie, "connect.sid=s:victim.%s", sig);
    assert_int_equal(csn_store_set(f.cs->inner, "victim", bad[i],
                                   strlen(bad[i]), CSN_TIME_NONE),
                     CSN_OK);
    sc = run(f.ctx, cookie, NULL, NULL, NULL, NULL, &rc);
    if (fails[i]) {
      assert_null(sc);
      assert_int_equal(rc, CSN_ECORRUPT);
    } else {
      assert_int_equal(rc, CSN_OK);
      /* A new session, never the unreadable record's id. */
      assert_true(sc == NULL || strstr(sc, "victim") == NULL);
      csn_free(sc);
    }
  }
  fx_close(&f);
}

/* csn_ctx_set_ext()'s destructor for an int counter: counts its calls. */
static void ext_count_free(void *p) {
  (*(int *)p)++;
}

static void core_ctx_ext(void **state) {
  static const char key_a, key_b, fill_keys[CSN__CTX_EXT_MAX];
  int ca = 0, cb = 0, cc = 0, cd = 0, fill[CSN__CTX_EXT_MAX] = {0};
  csn_options o;
  csn_ctx *ctx;
  size_t i, n;
  (void)state;
  base_opts(&o, NULL);
  assert_int_equal(csn_ctx_new(&ctx, &o, NULL, 0), CSN_OK);

  /* A NULL key or context is rejected; lookups of nothing find nothing. */
  assert_int_equal(csn_ctx_set_ext(ctx, NULL, &ca, ext_count_free), CSN_EINVAL);
  assert_int_equal(csn_ctx_set_ext(NULL, &key_a, &ca, ext_count_free),
                   CSN_EINVAL);
  assert_null(csn_ctx_ext(ctx, NULL));
  assert_null(csn_ctx_ext(NULL, &key_a));
  assert_null(csn_ctx_ext(ctx, &key_a));
  assert_int_equal(ca, 0);

  /* Set, set the same pointer again (no destructor), replace (the old
   * destructor runs once), a second key, then remove. */
  assert_int_equal(csn_ctx_set_ext(ctx, &key_a, &ca, ext_count_free), CSN_OK);
  assert_ptr_equal(csn_ctx_ext(ctx, &key_a), &ca);
  assert_int_equal(csn_ctx_set_ext(ctx, &key_a, &ca, ext_count_free), CSN_OK);
  assert_int_equal(ca, 0);
  assert_int_equal(csn_ctx_set_ext(ctx, &key_a, &cb, ext_count_free), CSN_OK);
  assert_int_equal(ca, 1);
  assert_int_equal(cb, 0);
  assert_ptr_equal(csn_ctx_ext(ctx, &key_a), &cb);
  assert_int_equal(csn_ctx_set_ext(ctx, &key_b, &cc, ext_count_free), CSN_OK);
  assert_ptr_equal(csn_ctx_ext(ctx, &key_b), &cc);
  assert_ptr_equal(csn_ctx_ext(ctx, &key_a), &cb);
  assert_int_equal(csn_ctx_set_ext(ctx, &key_a, NULL, NULL), CSN_OK);
  assert_int_equal(cb, 1);
  assert_null(csn_ctx_ext(ctx, &key_a));
  assert_int_equal(csn_ctx_set_ext(ctx, &key_a, NULL, NULL), CSN_OK);

  /* Fill every slot (key_b holds one): the next new key gets CSN_ERANGE
   * and its data is left alone, while replacing a key still works. */
  for (n = 0; n < CSN__CTX_EXT_MAX; n++) {
    int rc = csn_ctx_set_ext(ctx, &fill_keys[n], &fill[n], ext_count_free);
    if (rc == CSN_ERANGE)
      break;
    assert_int_equal(rc, CSN_OK);
  }
  assert_int_equal(n, CSN__CTX_EXT_MAX - 1);
  assert_int_equal(csn_ctx_set_ext(ctx, &key_a, &cd, ext_count_free),
                   CSN_ERANGE);
  assert_null(csn_ctx_ext(ctx, &key_a));
  assert_int_equal(csn_ctx_set_ext(ctx, &key_b, &cc, ext_count_free), CSN_OK);
  assert_int_equal(cc, 0);

  /* csn_ctx_free runs each remaining destructor exactly once. */
  csn_ctx_free(ctx);
  assert_int_equal(ca, 1);
  assert_int_equal(cb, 1);
  assert_int_equal(cc, 1);
  assert_int_equal(cd, 0);
  for (i = 0; i < CSN__CTX_EXT_MAX; i++)
    assert_int_equal(fill[i], i < n ? 1 : 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(core_set_cookie_vectors),
      cmocka_unit_test(core_stored_vectors),
      cmocka_unit_test(core_trace_resave_default),
      cmocka_unit_test(core_trace_lazy_untouched),
      cmocka_unit_test(core_trace_lazy_modified_once),
      cmocka_unit_test(core_trace_modified_every_request),
      cmocka_unit_test(core_trace_equal_value_not_modified),
      cmocka_unit_test(core_trace_rolling),
      cmocka_unit_test(core_trace_untrusted_cookies),
      cmocka_unit_test(core_trace_wrong_secret_and_rotation),
      cmocka_unit_test(core_trace_unknown_sid),
      cmocka_unit_test(core_trace_store_get_error),
      cmocka_unit_test(core_trace_reload),
      cmocka_unit_test(core_trace_destroy_and_regenerate),
      cmocka_unit_test(core_trace_unset),
      cmocka_unit_test(core_trace_secure_over_http),
      cmocka_unit_test(core_trace_explicit_save),
      cmocka_unit_test(core_path_gate),
      cmocka_unit_test(core_session_data),
      cmocka_unit_test(core_options_validation),
      cmocka_unit_test(core_corrupt_record),
      cmocka_unit_test(core_ctx_ext),
      cmocka_unit_test(core_set_cookie_canonical_value),
      cmocka_unit_test(core_big_session_records),
      cmocka_unit_test(core_set_cookie_rotated_secret),
      cmocka_unit_test(core_save_after_commit_refused),
  };
  return cmocka_run_group_tests_name("core_lifecycle", tests, NULL, NULL);
}
