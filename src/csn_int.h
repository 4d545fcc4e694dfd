/* csn_int.h - csession's private header: shared by src/core, src/stores and
 * src/adapters, never installed. Internal non-static names use csn__. */
#ifndef CSN_INT_H
#define CSN_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "csn/csn.h"
#include "csn/csn_store.h"

#if defined(__GNUC__) || defined(__clang__)
#define CSN__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CSN__UNUSED __attribute__((unused))
#else
#define CSN__PRINTF(a, b)
#define CSN__UNUSED
#endif

#define CSN__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------ */
/* alloc.c: every allocation goes through these (the allocator hook).       */
/* ------------------------------------------------------------------------ */
void *csn__malloc(size_t size);
void *csn__calloc(size_t n, size_t size); /* overflow-checked */
void *csn__realloc(void *ptr, size_t size);
void csn__free(void *ptr);
char *csn__strdup(const char *s);
char *csn__strndup(const char *s, size_t n);

/* error.c: set the thread's csn_last_error() text (printf format); returns
 * err. */
int csn__set_error(int err, const char *fmt, ...) CSN__PRINTF(2, 3);
/* Empty the thread's csn_last_error(): csn_request_begin() and
 * csn_request_commit() start with it, so the message after their failure
 * is about that failure, never an earlier one. */
void csn__clear_error(void);

/* ------------------------------------------------------------------------ */
/* buf.c: a growable byte buffer. After an allocation failure every append  */
/* is a no-op and csn__buf_steal() returns NULL (check once at the end).    */
/* ------------------------------------------------------------------------ */
typedef struct csn__buf {
  char *data;
  size_t len;
  size_t cap;
  int oom;
  /* data is the caller's storage (csn__buf_init_fixed), not ours: growing
   * moves to the heap, free leaves it alone, steal copies it. */
  int fixed;
} csn__buf;

void csn__buf_init(csn__buf *b);
/* Start in the caller's storage[0..cap) (cap >= 1), e.g. a stack array, so
 * that a short text needs no allocation; csn__buf_free() is still due. */
void csn__buf_init_fixed(csn__buf *b, char *storage, size_t cap);
int csn__buf_reserve(csn__buf *b, size_t extra);
/* Out of line: the growth and OOM paths of the two below. */
int csn__buf_append_slow(csn__buf *b, const char *s, size_t n);
int csn__buf_putc_slow(csn__buf *b, char c);
/* Appends are the builders' inner loop (JSON records, Set-Cookie), so the
 * case with room enough is inline; cap > len whenever data is set, and an
 * OOM buffer always takes the slow path. */
static inline int csn__buf_append(csn__buf *b, const char *s, size_t n) {
  if (!b->oom && b->cap - b->len > n) {
    if (n > 0) /* s may be NULL for an empty piece */
      memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CSN_OK;
  }
  return csn__buf_append_slow(b, s, n);
}
static inline int csn__buf_putc(csn__buf *b, char c) {
  if (!b->oom && b->cap - b->len > 1) {
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return CSN_OK;
  }
  return csn__buf_putc_slow(b, c);
}
int csn__buf_puts(csn__buf *b, const char *s);
int csn__buf_printf(csn__buf *b, const char *fmt, ...) CSN__PRINTF(2, 3);
/* Hand over the NUL-terminated contents (csn__free); NULL after OOM. The
 * buffer is reset. */
char *csn__buf_steal(csn__buf *b, size_t *len);
void csn__buf_free(csn__buf *b);

/* ------------------------------------------------------------------------ */
/* encode.c                                                                 */
/* ------------------------------------------------------------------------ */
/* Base64 without padding; url=1 uses the URL-safe alphabet. out must hold
 * CSN__B64_LEN(n) + 1 bytes; returns the length written (NUL added). */
#define CSN__B64_LEN(n) (((n) / 3) * 4 + (((n) % 3) ? ((n) % 3) + 1 : 0))
size_t csn__b64_encode(const unsigned char *in, size_t n, char *out, int url);
/* JavaScript encodeURIComponent over bytes (bytes >= 0x80 are assumed to be
 * UTF-8 and percent-encoded as they are). */
int csn__uri_encode(csn__buf *b, const char *s, size_t n);
/* JavaScript decodeURIComponent: 0 on success (out holds *outn bytes, out
 * must have room for n bytes), -1 when it would throw (bad escape or the
 * result is not valid UTF-8). */
int csn__uri_decode(const char *in, size_t n, char *out, size_t *outn);
/* 1 when s[0..n) is exactly what encodeURIComponent writes for what it
 * decodes to (every literal byte one it leaves alone, every escape
 * upper-case hex of a byte it escapes), else 0. For a value that
 * csn__uri_decode() accepts. */
int csn__uri_canonical(const char *s, size_t n);
/* Both of the above at once: csn__uri_decode(in, n, out, outn), and when
 * it succeeds, *canonical = csn__uri_canonical(in, n). out (room for n
 * bytes) must not overlap in. */
int csn__uri_decode_canonical(const char *in, size_t n, char *out,
                              size_t *outn, int *canonical);
/* 1 if s[0..n) is well-formed UTF-8, else 0. */
int csn__utf8_valid(const char *s, size_t n);

/* ------------------------------------------------------------------------ */
/* crypto.c: HMAC-SHA256 with precomputed per-secret state, ids, random.    */
/* ------------------------------------------------------------------------ */
typedef struct csn__hmac_key {
  /* Inner and outer hash states after absorbing the padded key, so a
   * signature costs two short hash computations and no allocation. */
  unsigned char inner[128];
  unsigned char outer[128];
} csn__hmac_key;

#define CSN__SIG_LEN 43 /* base64 of 32 bytes, no padding */

int csn__hmac_key_init(csn__hmac_key *k, const void *secret, size_t len);
void csn__hmac_key_clear(csn__hmac_key *k);
void csn__hmac_sha256(const csn__hmac_key *k, const void *msg, size_t n,
                      unsigned char out[32]);
/* The 43-char signature of value under k (NUL-terminated). */
void csn__sign(const csn__hmac_key *k, const char *value, size_t n,
               char sig[CSN__SIG_LEN + 1]);
/* Split input at its last '.', verify against each key (constant time).
 * Returns the index of the matching key and sets *vlen, or CSN_EINVAL. */
int csn__unsign(const csn__hmac_key *keys, size_t nkeys, const char *input,
                size_t n, size_t *vlen);
int csn__random_bytes(void *buf, size_t n);
/* 24 random bytes -> 32 chars base64url + NUL. */
int csn__genid(char out[33]);

/* ------------------------------------------------------------------------ */
/* time.c                                                                   */
/* ------------------------------------------------------------------------ */
#define CSN__TIME_MAX INT64_C(8640000000000000) /* JS Date range, ms */
int64_t csn__now_ms(void);
/* *ts = now + ms on CLOCK_MONOTONIC, for pthread_cond_timedwait on a
 * condition variable bound to that clock (the sweeper, the pool). */
void csn__mono_deadline(struct timespec *ts, int64_t ms);
/* "Wdy, DD Mon YYYY HH:MM:SS GMT" (Date#toUTCString, seconds truncated).
 * CSN_ERANGE outside the JS Date range. out >= 40 bytes. */
int csn__fmt_http_date(int64_t ms, char *out, size_t size);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (Date#toISOString, expanded years as
 * +YYYYYY/-YYYYYY). out >= 32 bytes. */
int csn__fmt_iso8601(int64_t ms, char *out, size_t size);
/* Parse what Date#toISOString writes (and the date-only and no-millisecond
 * variants JS accepts). 0 on success, -1 otherwise. */
int csn__parse_iso8601(const char *s, size_t n, int64_t *ms);

/* ------------------------------------------------------------------------ */
/* The session cookie (express-session's Cookie object).                    */
/* ------------------------------------------------------------------------ */
#define CSN__ABSENT (-1) /* tri-state flag member not present */

typedef struct csn__cookie {
  int64_t original_max_age; /* CSN_TIME_NONE = null */
  int64_t expires;          /* CSN_TIME_NONE = null */
  int http_only;            /* 0/1, CSN__ABSENT */
  int secure;               /* 0/1, CSN__ABSENT */
  int partitioned;          /* 0/1, CSN__ABSENT */
  int same_site;            /* enum csn_same_site (UNSET = absent) */
  int priority;             /* enum csn_priority (UNSET = absent) */
  char *domain;             /* NULL = absent; owned */
  char *path;               /* NULL = absent; owned */
} csn__cookie;

/* cookie.c: request Cookie header, Set-Cookie, attribute validation.       */

/* Find `name` in a Cookie header the way cookie@0.7.2 parse() does: pairs
 * split on ';' at the first '=', spaces/tabs trimmed, first occurrence wins,
 * surrounding double quotes removed. Returns 1 and the raw (still
 * percent-encoded) value slice, or 0 when absent. */
int csn__cookie_header_find(const char *header, size_t hlen, const char *name,
                            size_t nlen, const char **val, size_t *vlen);
int csn__cookie_name_valid(const char *name);
int csn__cookie_path_valid(const char *path);
int csn__cookie_domain_valid(const char *domain);
/* Append "name=encodeURIComponent(value); Domain=..; Path=..; Expires=..;
 * HttpOnly; Secure; Partitioned; Priority=..; SameSite=.." (express order).
 * On invalid attributes returns CSN_EINVAL with *errmsg set to express's
 * message ("option expires is invalid", ...). */
int csn__set_cookie_serialize(csn__buf *b, const char *name,
                              const char *value, size_t vlen,
                              const csn__cookie *c, const char **errmsg);
/* The same with the value given already encoded (enc must be exactly
 * encodeURIComponent of the value: it is copied as it is), and name a
 * cookie name of nlen bytes that the caller has validated (the context's,
 * checked at csn_ctx_new()). */
int csn__set_cookie_serialize_encoded(csn__buf *b, const char *name,
                                      size_t nlen, const char *enc,
                                      size_t enclen, const csn__cookie *c,
                                      const char **errmsg);

/* session.c: the cookie as JSON (express key order), and back. */
int csn__cookie_to_json(csn__buf *b, const csn__cookie *c);
/* From the record's "cookie" member. CSN_ECORRUPT if not an object. */
int csn__cookie_from_json(csn__cookie *c, json_t *obj);
void csn__cookie_free(csn__cookie *c);

/* ------------------------------------------------------------------------ */
/* store.c                                                                  */
/* ------------------------------------------------------------------------ */
/* Test-only fault injection: when set, called before every store method
 * with its name; a negative return is returned instead of calling it. */
typedef int (*csn__store_fault_fn)(csn_store *st, const char *op, void *ud);
void csn__store_set_fault(csn__store_fault_fn fn, void *ud);
/* Is the method table usable (version known, required methods present)?
 * CSN_OK, CSN_ENOTSUP (newer version) or CSN_EINVAL. */
int csn__store_check(const csn_store *st);
/* csn_store_id_valid() of sid[0..n) (no NUL needed): the core knows its
 * ids' lengths and skips the strlen. */
int csn__id_valid_n(const char *sid, size_t n);
/* csn_store_get() & co. without the id's validation, for callers whose id
 * is known valid: the core's ids come from a verified cookie (checked
 * once, in request.c), from genid (checked) or from the built-in
 * generator. Everything else those functions check, they still check.
 * Users' calls go through the public, validating functions. */
int csn__store_get_valid(csn_store *st, const char *sid, char **json,
                         size_t *len);
int csn__store_set_valid(csn_store *st, const char *sid, const char *json,
                         size_t len, int64_t expires_ms);
int csn__store_cas_valid(csn_store *st, const char *sid, const char *expected,
                         size_t expected_len, const char *json, size_t len,
                         int64_t expires_ms);
int csn__store_touch_valid(csn_store *st, const char *sid, const char *json,
                           size_t len, int64_t expires_ms);
int csn__store_destroy_valid(csn_store *st, const char *sid);

/* The stores built into this library (src/stores/builtin.c), ending with
 * a NULL scheme: csn_store_open() knows them without registration. */
typedef struct csn__store_scheme {
  const char *scheme;
  csn_store_open_fn open;
} csn__store_scheme;
extern const csn__store_scheme csn__builtin_stores[];
/* memory.c, for tests: entries held, expired or not (0 if `st` is not a
 * MemoryStore). Lets a test see the background sweep without a read. */
size_t csn__store_memory_raw_count(const csn_store *st);
/* memory.c, for tests: the slots of the table's arrays (0 if `st` is not a
 * MemoryStore): what a sweep gives back after a burst. */
size_t csn__store_memory_slots(csn_store *st);

/* ------------------------------------------------------------------------ */
/* Middleware objects (request.c, session.c)                                */
/* ------------------------------------------------------------------------ */
#define CSN__CTX_EXT_MAX 8 /* csn_ctx_set_ext() slots; csn.h says 8 */

struct csn_ctx {
  csn__hmac_key *keys;
  size_t nkeys;
  char *name;
  size_t name_len;
  int resave;
  int save_uninitialized;
  int rolling;
  int unset;
  int proxy;
  int last_write_wins;
  int64_t lifetime_ms;    /* 0: off */
  int64_t touch_after_ms; /* 0: off */
  csn_cookie_options cookie; /* domain/path owned */
  csn_store *store;
  int own_store;
  csn_genid_fn genid;
  void *genid_ud;
  csn_cookie_fn cookie_fn;
  void *cookie_fn_ud;
  csn_log_fn log;
  void *log_ud;
  csn_clock_fn clock;
  void *clock_ud;
  void *userdata;
  void (*userdata_free)(void *);
  /* Counters and store latency (metrics.c); never NULL after creation. */
  struct csn__metrics *metrics;
  /* csn_ctx_set_ext(): adapters' and extensions' data, by key. A free
   * slot has key NULL. Written at start-up only, so reads take no lock. */
  struct {
    const void *key;
    void *data;
    void (*free_fn)(void *);
  } ext[CSN__CTX_EXT_MAX];
};

struct csn_session {
  struct csn_request *req;
  json_t *data; /* the user's members (an object, never "cookie") */
  csn__cookie cookie;
  /* Last: csn__session_init() zeroes the members before it and only the
   * first byte of the id (a string; nothing reads past its NUL). */
  char id[CSN_ID_MAX + 1];
};

struct csn_request {
  csn_ctx *ctx;
  int has_session;  /* req.session is set */
  int destroyed;    /* destroy() or unset */
  int has_sid;      /* req.sessionID is set */
  int secure;       /* issecure(req), computed once */
  int has_cookie_id;
  /* Its signature, when the signing secret (keys[0]) verified it: the
   * Set-Cookie for the same id reuses it instead of computing it again. */
  char cookie_sig[CSN__SIG_LEN + 1];
  /* The length of cookie_raw, or 0 when it holds nothing. */
  size_t cookie_raw_len;
  /* Modification tracking (express hashes the data without "cookie"): the
   * data's text before the first change, the change count, and the text
   * at the last save(). */
  char *orig_text;
  /* Or, while orig_text is NULL: the text at load is "{" followed by
   * orig_tail[0..orig_tail_len), a piece of load_buf (csn__session_load_
   * tail()). Compared in place at commit; copied into orig_text only when
   * a merge has to parse it (csn__request_own_orig()). */
  const char *orig_tail;
  size_t orig_tail_len;
  /* The record the store returned at load, owned here while loaded_text
   * may move on to other texts (a save replaces it) and orig_tail still
   * points into it. loaded_text is either this or a text of its own. */
  char *load_buf;
  unsigned long mut_gen;
  int has_saved;
  unsigned long saved_gen;
  char *saved_text; /* NULL with has_saved: equal to orig_text */
  char *cur_text;   /* cached at commit */
  size_t cur_len;   /* strlen(cur_text) */
  /* During csn_request_commit() only: a buffer on its stack that cur_text
   * may point to (then it is not freed; csn__request_drop_cur()). NULL
   * otherwise, so that nothing keeps pointing into it after commit. */
  char *cur_scratch;
  /* The record exactly as the store returned it, for compare-and-set
   * (merge.c); after each successful save of this request, the record it
   * wrote. NULL for a session this request generated (new or
   * regenerated). */
  char *loaded_text;
  size_t loaded_len;
  int gone; /* a merged save found the record destroyed: logout wins */
  /* When the loaded record's expiry was last refreshed (its expires -
   * originalMaxAge), for touch_after; CSN_TIME_NONE when unknown. */
  int64_t refreshed_at;
  int64_t loaded_max_age; /* the loaded cookie's originalMaxAge */
  int touched;
  int committed;
  csn_cookie_options cookie_opts; /* effective for this request */
  /* The id at begin: sess.id itself until the id changes (regenerate,
   * rotate), then original_own, a copy made just before. Saves a 256-byte
   * buffer per request, the one that kept this struct out of the C
   * library's per-thread cache of small blocks (<= 1032 bytes with glibc),
   * and the comparison while they are one. */
  const char *original_id;
  char *original_own;
  /* rotate(): the id whose record is destroyed once the record under the
   * new id is saved (owned); NULL when none is pending. */
  char *rotated_from;
  /* The id strings come last (sess.id last in sess): csn_request_begin()
   * zeroes only the members before `sess` and the first byte of each id,
   * not the id buffers behind them. Nothing reads an id past its NUL. */
  csn_session sess;
  char cookie_id[CSN_ID_MAX + 1]; /* id from a verified cookie */
  /* The cookie's value as the client sent it, when the signing secret
   * verified it and it is exactly encodeURIComponent of the signed value:
   * then it is byte for byte the value of the Set-Cookie for the same id,
   * which copies it instead of encoding the value again. A longer one
   * (ids up to CSN_ID_MAX are allowed, a default id's value is 80 bytes
   * and a few more per '+' or '/' in the signature) is not kept; 128
   * keeps this struct within glibc's per-thread cache of small blocks
   * (see original_id; the benchmark shows when it does not). */
  char cookie_raw[128];
};

int64_t csn__ctx_now(const csn_ctx *ctx);

/* session.c */
void csn__session_init(csn_session *s, csn_request *r);
void csn__session_reset(csn_session *s);
/* New cookie from options (express `new Cookie(opts)`), resolving auto. */
int csn__session_new_cookie(csn_session *s, const csn_cookie_options *o,
                            int resolve_auto, int secure, int64_t now);
/* Inflate from a stored record. CSN_ECORRUPT on bad JSON / no cookie;
 * *unreadable (when not NULL) is then 1 if the text is no record at all
 * (not JSON, or not an object), 0 for an object without a usable cookie
 * (express-session's inflate error). */
int csn__session_from_record(csn_session *s, const char *json, size_t len,
                             int *unreadable);
/* The same, and when data_text is not NULL: *data_text = the data's
 * compact text (csn__session_data_text()) when it can be cut from the
 * record's text without serializing, else left NULL. */
int csn__session_load(csn_session *s, const char *json, size_t len,
                      int *unreadable, char **data_text);
/* The same, where the data's text may come as a tail instead: when
 * *data_tail is set (and *data_text left NULL), the data's text is "{"
 * followed by the *tail_len bytes at *data_tail, which point into json
 * (so json must outlive their use). Saves the copy on every load. */
int csn__session_load_tail(csn_session *s, const char *json, size_t len,
                           int *unreadable, char **data_text,
                           const char **data_tail, size_t *tail_len);
/* Serialize the record ({"cookie":..., data...}). */
char *csn__session_record(const csn_session *s, size_t *len);
/* The record built from an already serialized data text. */
char *csn__session_record_with(const csn_session *s, const char *data_text,
                               size_t *len);
/* json.c: JSON as JavaScript reads and writes it. Parse returns NULL and
 * *err = CSN_ECORRUPT (not JSON) or CSN_ENOMEM. Dump appends the compact
 * JSON.stringify form of any value (CSN_ENOMEM also for a value nested
 * deeper than the limit). Numbers are read and written in the "C" locale
 * whatever the process locale is.
 *
 * The nesting limit, one for the reader and the writer: every value is a
 * level, scalars included, the root being level 1 ("[[1]]" has 3). A
 * stored record may have CSN__JSON_MAX_DEPTH levels, so a session member,
 * one level below the record's root, may have one fewer:
 * csn_session_set_json() refuses deeper values, and what it accepts always
 * loads again. */
#define CSN__JSON_MAX_DEPTH 256
#define CSN__JSON_MEMBER_MAX_DEPTH (CSN__JSON_MAX_DEPTH - 1)
json_t *csn__json_parse(const char *text, size_t len, int *err);
/* The same with another nesting limit; *err = CSN_ERANGE when the text is
 * JSON nested deeper than max_depth. */
json_t *csn__json_parse_depth(const char *text, size_t len, int max_depth,
                              int *err);
/* A stored record, read in one pass without building its "cookie" member:
 * the members of a root "cookie" object go to `cookie_fn` as scalars (a
 * call with key NULL first, for each "cookie" member met), and the
 * returned object lacks "cookie". The text is checked exactly as
 * csn__json_parse() checks it (same errors). `scan` says where the last
 * "cookie" value is, and whether the text is canonical (an object, written
 * exactly as csn__json_dump() writes what was read); with one "cookie"
 * member, the data's text is then the record's minus [cut_start, cut_end).
 * cookie_fn returns non-zero for out of memory. */
enum {
  CSN__JSON_OTHER, /* an object, array, non-integer or long number, or a
                      string holding NUL: read the cookie the general way */
  CSN__JSON_STR,
  CSN__JSON_INT,
  CSN__JSON_TRUE,
  CSN__JSON_FALSE,
  CSN__JSON_NULL
};
typedef struct csn__json_scalar {
  int type;
  const char *s; /* CSN__JSON_STR: the decoded bytes (not NUL-terminated) */
  size_t n;
  int64_t i; /* CSN__JSON_INT */
} csn__json_scalar;
typedef int (*csn__json_member_fn)(void *ud, const char *key, size_t klen,
                                   const csn__json_scalar *v);
typedef struct csn__record_scan {
  int cookies;          /* "cookie" members at the root */
  int cookie_is_object; /* the last one's value is an object */
  size_t member_start;  /* its key's opening quote */
  size_t cookie_start, cookie_end; /* its value */
  int canonical;
  size_t cut_start, cut_end;
} csn__record_scan;
json_t *csn__json_parse_record(const char *text, size_t len,
                               csn__json_member_fn cookie_fn, void *ud,
                               csn__record_scan *scan, int *err);
/* The object "{" + text (the opening brace implied: text starts at its
 * first member, or at its "}"), read as csn__json_parse_record() reads a
 * record with a hook that ignores the cookie: scan->cookies counts root
 * "cookie" members, scan->canonical says whether "{" + text is exactly what
 * csn__json_dump() writes for the result. Lets a loaded record's data be
 * read in place, without first copying it behind a "{". */
json_t *csn__json_parse_members(const char *text, size_t len,
                                csn__record_scan *scan, int *err);
int csn__json_dump(csn__buf *b, const json_t *j);
void csn__buf_put_int(csn__buf *b, int64_t v);
/* The decimal text of v at p, without NUL (at most CSN__I64_TEXT_MAX
 * bytes); returns its end. */
#define CSN__I64_TEXT_MAX 20
char *csn__i64_text(char *p, int64_t v);
/* The data without cookie, compact (what express hashes). */
char *csn__session_data_text(const csn_session *s);
/* The record of csn__session_record_with() appended to b; data_text is
 * dlen bytes. */
int csn__session_record_into(const csn_session *s, const char *data_text,
                             size_t dlen, csn__buf *b);
/* The same text appended to b (which may start in fixed storage). */
int csn__session_data_text_into(const csn_session *s, csn__buf *b);
/* Call before any change to the data (captures the original text). */
int csn__session_will_change(csn_session *s);
void csn__session_touch_cookie(csn_session *s, int64_t now);

/* request.c: free loaded_text (unless it is load_buf, freed with the
 * request) and set it NULL. */
void csn__request_drop_loaded(csn_request *r);
/* request.c: make orig_text an owned string when it is still a tail
 * (before something needs it NUL-terminated). CSN_OK or CSN_ENOMEM. */
int csn__request_own_orig(csn_request *r);
/* Forget the cached current text (freeing it unless it is the commit's
 * scratch buffer). */
void csn__request_drop_cur(csn_request *r);

/* merge.c: may this request's save be a compare-and-set with merge? */
int csn__request_can_merge(const csn_request *r);
/* Save `record` conditionally on the loaded text, merging on conflicts.
 * CSN_OK with *gone = 1 when the record was destroyed meanwhile (nothing
 * written); CSN_ECONFLICT after too many conflicts; a store error. record
 * is consumed (csn__free), or with `borrowed` left to the caller: that is
 * for the end-of-request save only, since what was written is then not
 * kept as the base of a later save (loaded_text becomes NULL). */
int csn__request_save_merged(csn_request *r, char *record, size_t len,
                             int borrowed, int *gone);

#endif /* CSN_INT_H */
