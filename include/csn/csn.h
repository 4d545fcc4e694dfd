/* csn.h - csession: express-session for C web servers.
 *
 * csession gives a C HTTP server what express-session gives Express: a signed
 * session-id cookie, server-side session data (JSON) and pluggable stores. The
 * cookie format, the stored record and the save / touch / Set-Cookie decisions
 * are those of express-session 1.19.0, so a C service and a Node service can
 * share one user session.
 *
 * Layers (see DESIGN.md):
 *   adapter (csn_mhd.h ...)  -> reads Cookie + TLS/proxy facts, writes Set-Cookie
 *   csn_ctx / csn_request     -> the middleware: load, decide, save
 *   csn_session               -> the data the handler reads and changes
 *   csn_store                 -> get/set/destroy/touch of JSON text by id
 *
 * Conventions
 *   - Functions returning int give CSN_OK (0) or a negative CSN_E* code;
 *     csn_strerror() names it. "Absent" is CSN_ENOENT, never a crash.
 *   - Strings returned through `const char **` are borrowed: valid until the
 *     object they came from changes or is freed. Strings returned through
 *     `char **` are yours: release them with csn_free().
 *   - `*_free(NULL)` is always a no-op.
 *   - Thread safety: a csn_ctx and a csn_store may be used from any number of
 *     threads at once. A csn_request (and its csn_session) belongs to the one
 *     request being handled and must not be shared between threads.
 *
 * Since 0.1 unless noted.
 */
#ifndef CSN_H
#define CSN_H

#include <stddef.h>
#include <stdint.h>

#include "csn_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CSN_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define CSN_API __attribute__((visibility("default")))
#else
#define CSN_API
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* XX(name, value, message) */
#define CSN_ERRNO_MAP(XX)                                                  \
  XX(ENOMEM, -1, "out of memory")                                          \
  XX(EINVAL, -2, "invalid argument")                                       \
  XX(ENOENT, -3, "not found")                                              \
  XX(ENOBUFS, -4, "buffer too small")                                      \
  XX(ESTORE, -5, "session store failure")                                  \
  XX(ECRYPTO, -6, "cryptographic failure")                                 \
  XX(ETYPE, -7, "value has another type")                                  \
  XX(ESTATE, -8, "no session: it was destroyed or unset")                  \
  XX(ENOSECRET, -9, "secret option required for sessions")                 \
  XX(ECORRUPT, -10, "stored session record is malformed")                  \
  XX(ETIMEDOUT, -11, "store operation timed out")                          \
  XX(ENOTSUP, -12, "operation not supported")                              \
  XX(EIO, -13, "input/output error")                                       \
  XX(ERANGE, -14, "value out of range")                                   \
  XX(ECONFLICT, -15, "session changed concurrently")                       \
  XX(EPERM, -16, "refused: another user owns or can write it")

typedef enum csn_errno {
  CSN_OK = 0,
#define CSN__ERRNO_ENUM(name, val, msg) CSN_##name = (val),
  CSN_ERRNO_MAP(CSN__ERRNO_ENUM)
#undef CSN__ERRNO_ENUM
} csn_errno;

/* A static English message for `err` ("unknown error" for unknown codes). */
CSN_API const char *csn_strerror(int err);
/* The code's name without prefix, e.g. "ENOENT"; "UNKNOWN" for unknown. */
CSN_API const char *csn_err_name(int err);

/* A message describing the last failure of a csn_ call in this thread
 * (e.g. the store's message behind a CSN_ESTORE), or "". Borrowed until the
 * next failing call in this thread. csn_request_begin() and
 * csn_request_commit() empty it on entry, so after either fails it
 * describes that failure (or is "" when there is nothing to add to the
 * code), never an earlier one. */
CSN_API const char *csn_last_error(void);

/* Library version as CSN_VERSION_HEX; compare with the header's to detect a
 * header/library mismatch. */
CSN_API unsigned int csn_version(void);
CSN_API const char *csn_version_string(void);

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct csn_allocator {
  void *(*malloc_fn)(size_t size);
  void *(*calloc_fn)(size_t n, size_t size);
  void *(*realloc_fn)(void *ptr, size_t size);
  void (*free_fn)(void *ptr);
} csn_allocator;

/* Replace the allocator used by csession (and, through json_set_alloc_funcs,
 * by jansson, which is process-wide). Call it once, before any other csn_
 * call and before other threads run. NULL restores the C library's functions.
 * Returns CSN_EINVAL if a member is NULL. */
CSN_API int csn_set_allocator(const csn_allocator *a);

/* Free memory csession handed to you (every `char **` out-parameter). */
CSN_API void csn_free(void *ptr);
/* Allocate with csession's allocator: store implementations use it for the
 * text a get() hands back (the core releases it with csn_free). */
CSN_API void *csn_malloc(size_t size);

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                           */
/* ------------------------------------------------------------------------ */

typedef struct csn_ctx csn_ctx;         /* one middleware instance */
typedef struct csn_request csn_request; /* one HTTP request's session state */
typedef struct csn_session csn_session; /* req.session */
typedef struct csn_store csn_store;     /* a session store */

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* "No value" for an int64 millisecond field (maxAge / expires). */
#define CSN_TIME_NONE INT64_MIN

enum csn_secure {
  CSN_SECURE_OFF = 0, /* default */
  CSN_SECURE_ON = 1,  /* cookie sent only over secure requests */
  CSN_SECURE_AUTO = 2 /* on a new session: secure iff the request is */
};

enum csn_same_site {
  CSN_SAMESITE_UNSET = 0, /* default: no attribute */
  CSN_SAMESITE_TRUE,      /* express `sameSite: true`: SameSite=Strict */
  CSN_SAMESITE_STRICT,
  CSN_SAMESITE_LAX,
  CSN_SAMESITE_NONE,
  CSN_SAMESITE_AUTO /* new session: None if the request is secure, else Lax */
};

enum csn_priority {
  CSN_PRIORITY_UNSET = 0,
  CSN_PRIORITY_LOW,
  CSN_PRIORITY_MEDIUM,
  CSN_PRIORITY_HIGH
};

enum csn_unset { CSN_UNSET_KEEP = 0, CSN_UNSET_DESTROY = 1 };

enum csn_proxy {
  /* The adapter's own answer (csn_request_info.secure) decides; express's
   * "proxy undefined, use req.secure". */
  CSN_PROXY_DEFAULT = 0,
  /* Trust the first X-Forwarded-Proto entry (express `proxy: true`). */
  CSN_PROXY_TRUST = 1,
  /* Only a TLS connection is secure (express `proxy: false`). */
  CSN_PROXY_NONE = 2
};

/* Cookie settings (express-session's `cookie` option). Strings are copied by
 * csn_ctx_new(). */
typedef struct csn_cookie_options {
  int64_t max_age_ms; /* CSN_TIME_NONE (default): browser-session cookie */
  int64_t expires_ms; /* absolute instant (epoch ms); CSN_TIME_NONE default.
                         When both are set, max_age_ms wins. */
  int http_only;      /* default 1 */
  int secure;         /* enum csn_secure, default CSN_SECURE_OFF */
  int same_site;      /* enum csn_same_site, default unset */
  int partitioned;    /* default 0 */
  int priority;       /* enum csn_priority, default unset */
  const char *domain; /* default NULL */
  const char *path;   /* default "/" */
} csn_cookie_options;

/* What the adapter tells the core about a request. All strings borrowed for
 * the duration of the call that receives them. */
typedef struct csn_request_info {
  const char *cookie_header;   /* raw Cookie header, NULL if none */
  const char *url;             /* original request target, undecoded, may
                                  carry a query; NULL means "/" */
  int tls;                     /* the connection itself is TLS */
  const char *forwarded_proto; /* X-Forwarded-Proto, NULL if absent */
  int secure;                  /* the framework's "req.secure" (used with
                                  CSN_PROXY_DEFAULT); adapters set it to tls */
  void *native;                /* adapter's connection, for user hooks */
} csn_request_info;

/* Custom id generator (express `genid`). Write a NUL-terminated id of at most
 * size-1 bytes into buf and return CSN_OK; any negative return fails the
 * request with that code. Called from worker threads. */
typedef int (*csn_genid_fn)(const csn_request_info *req, char *buf,
                            size_t size, void *userdata);

/* Per-request cookie options (express `cookie` as a function). `cookie` holds
 * the static options on entry; change it in place. Strings you set must stay
 * valid until the request is freed. Called once per request, before the path
 * check. */
typedef int (*csn_cookie_fn)(const csn_request_info *req,
                             csn_cookie_options *cookie, void *userdata);

/* Logged errors: store failures and the like, with the store's message. */
typedef void (*csn_log_fn)(int err, const char *message, void *userdata);

/* A clock in epoch milliseconds (tests freeze time with it). */
typedef int64_t (*csn_clock_fn)(void *userdata);

/* 1: 0.1's fields; 2 (0.2): adds last_write_wins, lifetime_ms and
 * touch_after_ms. */
#define CSN_OPTIONS_VERSION 2

typedef struct csn_options {
  int version; /* CSN_OPTIONS_VERSION; set by csn_options_init() */

  /* Secrets: element 0 signs, every element verifies (rotation). Required.
   * secret_lens may be NULL (each secret is a C string) or give byte lengths
   * for binary secrets. */
  const char *const *secrets;
  const size_t *secret_lens;
  size_t n_secrets;

  const char *name;       /* cookie name, default "connect.sid" */
  int resave;             /* default 1 (express default) */
  int save_uninitialized; /* default 1 (express default) */
  int rolling;            /* default 0 */
  int unset;              /* enum csn_unset, default keep */
  int proxy;              /* enum csn_proxy, default CSN_PROXY_DEFAULT */

  csn_cookie_options cookie;

  /* Store. NULL: the context creates and owns a MemoryStore of at most
   * CSN_DEFAULT_MEMORY_MAX sessions (express-session's is unbounded).
   * Otherwise borrowed: free it after the context. */
  csn_store *store;

  csn_genid_fn genid; /* NULL: 24 random bytes, base64url (32 chars) */
  void *genid_userdata;
  csn_cookie_fn cookie_fn; /* NULL: static `cookie` only */
  void *cookie_fn_userdata;
  csn_log_fn log; /* NULL: errors go to stderr (csn_ctx_log()) */
  void *log_userdata;
  csn_clock_fn clock; /* NULL: the system clock */
  void *clock_userdata;

  /* Since 0.2 (version >= 2). Concurrent requests on one session: by
   * default (0) the save of a session that was loaded from a store with
   * compare-and-set writes only if the stored record is unchanged since
   * this request loaded it; otherwise it re-reads the record, applies this
   * request's own member changes to it and tries again, and a session
   * destroyed meanwhile (logout) stays destroyed. 1 restores
   * express-session's last write wins: the whole record is overwritten. */
  int last_write_wins;

  /* Since 0.2. Absolute timeout: a session older than this
   * since it was created (or regenerated) is expired when a request loads
   * it, however active it was: the old record is destroyed and a fresh
   * session starts. 0 (default): off, as in express-session. The creation
   * instant is kept in the record as the data member CSN_CREATED_MEMBER
   * (epoch ms), which Node's express-session keeps when it loads and saves
   * the session; csn_session_count() and csn_session_clear() leave it out,
   * csn_session_created() reads it. A record without it (written before
   * the option was on, or by a Node app that regenerated the session) is
   * stamped with the time it is first loaded, and saved once. */
  int64_t lifetime_ms;
  /* Since 0.2. Lazy touch (connect-mongo's touchAfter, for every store): a
   * request that changes nothing skips the store write that would only
   * refresh the expiry (the touch, or with resave the save of unchanged
   * data) when the stored expiry was refreshed less than this long ago -
   * known from the stored cookie as expires - originalMaxAge. The cookie
   * sent to the browser is unaffected; the stored expiry may lag it by up
   * to this much, so keep it well below maxAge. 0 (default): off.
   * Browser-session cookies (no maxAge) are always touched. With a store
   * that has compare-and-set, the write that is due is a conditional save
   * of the unchanged data (a touch need not rewrite the stored cookie: in
   * Redis it is EXPIRE alone). */
  int64_t touch_after_ms;
} csn_options;

/* Fill `o` with express-session's defaults (no secret). */
CSN_API void csn_options_init(csn_options *o);

/* Create a middleware instance. Every option is validated here: a missing or
 * empty secret, an unknown enum value, a cookie name that is not an RFC 6265
 * token, a path or domain with forbidden characters. On failure returns a
 * negative code and, if errbuf is not NULL, a message in errbuf.
 * The context copies everything it needs from `o`. Thread-safe after
 * creation. */
CSN_API int csn_ctx_new(csn_ctx **out, const csn_options *o, char *errbuf,
                        size_t errlen);
CSN_API void csn_ctx_free(csn_ctx *ctx);

/* The store in use (borrowed). */
CSN_API csn_store *csn_ctx_store(csn_ctx *ctx);

/* Attach user data with its destructor (called by csn_ctx_free). */
CSN_API void csn_ctx_set_userdata(csn_ctx *ctx, void *data,
                                  void (*free_fn)(void *));
CSN_API void *csn_ctx_userdata(const csn_ctx *ctx);

/* Since 0.2. Extension data: lets an adapter or extension keep its own
 * per-context state without a field in the context (csn_ctx_userdata stays
 * the application's). `key` is the address of an object the caller owns,
 * e.g. a `static const char` in the adapter, so two extensions never
 * collide. Setting a key that is already set replaces its data: the old
 * data's destructor runs first, unless `data` is the same pointer. `data`
 * NULL removes the entry (running the old destructor). `free_fn` (may be
 * NULL) is called once with `data` by csn_ctx_free() or when replaced.
 * Returns CSN_OK, CSN_EINVAL (ctx or key NULL) or CSN_ERANGE (every slot in
 * use; a context holds 8 entries); on failure nothing changes and `data`
 * stays the caller's.
 * Thread-safety: set during start-up, before requests are served; then
 * csn_ctx_ext() may be called from any thread. */
CSN_API int csn_ctx_set_ext(csn_ctx *ctx, const void *key, void *data,
                            void (*free_fn)(void *));
/* Since 0.2. The data set under `key` (borrowed), NULL if none. */
CSN_API void *csn_ctx_ext(const csn_ctx *ctx, const void *key);

/* Report a message through the context's log hook (stderr when there is
 * none), so that adapters and applications log where csession does. The
 * hook gets every message. stderr gets at most 20 lines a second (since
 * 0.2; during a store outage every request fails); the lines left out are
 * counted, and the count is written before the next line that is. */
CSN_API void csn_ctx_log(const csn_ctx *ctx, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* Request lifecycle (what adapters call)                                   */
/* ------------------------------------------------------------------------ */

/* Load the session for a request: parse the Cookie header, verify the
 * signature against every secret, fetch from the store, or generate a new
 * session. An unverifiable cookie never reaches the store.
 * On CSN_OK *out is a request object (even when the path does not match the
 * cookie path: then csn_request_session() is NULL). On failure (store error,
 * a record without a usable cookie (CSN_ECORRUPT, as express-session's
 * inflate), failing genid) *out is NULL and the caller answers 500. A stored
 * text that is no record at all (not JSON, not an object, or corrupt by the
 * store's own judgement) is treated as a missing record: a fresh session
 * with a new id, one line to the log hook naming the store (never the id),
 * and the text left in the store to expire. */
CSN_API int csn_request_begin(csn_ctx *ctx, const csn_request_info *info,
                              csn_request **out);

/* req.session: borrowed, valid until csn_request_free(). NULL when the path
 * did not match, or after csn_session_destroy() / csn_request_unset(). */
CSN_API csn_session *csn_request_session(csn_request *r);

/* req.sessionID (borrowed), NULL when there is none. */
CSN_API const char *csn_request_session_id(const csn_request *r);

/* Since 0.2. The context the request was begun with (borrowed; NULL when
 * r is NULL), so that an adapter holding only the request can reach it. */
CSN_API csn_ctx *csn_request_ctx(const csn_request *r);

/* `req.session = null`: with unset=destroy the store copy is destroyed at
 * commit, with keep it is left alone; either way this request's changes are
 * dropped and no cookie is sent. */
CSN_API int csn_request_unset(csn_request *r);

/* End of request: touch the cookie once, then destroy / save / touch in the
 * store as express-session decides, and compute the Set-Cookie header value.
 * *set_cookie receives the header value (yours, csn_free) or NULL when no
 * cookie is to be sent. On a store failure returns the error, *set_cookie is
 * NULL and the stored record is unchanged: answer 500. Call at most once.
 *
 * Concurrent requests (Since 0.2): when the session was loaded from a store
 * with compare-and-set (memory, file, sqlite, ...) and last_write_wins is
 * off, the save writes this request's changed members on top of whatever
 * other requests stored meanwhile instead of overwriting them; if another
 * request destroyed the session meanwhile (logout), nothing is written and
 * no cookie is sent (CSN_OK). CSN_ECONFLICT: the record kept changing under
 * this request through every bounded retry; nothing was written. */
CSN_API int csn_request_commit(csn_request *r, char **set_cookie);

CSN_API void csn_request_free(csn_request *r);

/* ------------------------------------------------------------------------ */
/* Session data                                                             */
/* ------------------------------------------------------------------------ */

/* The session id (borrowed, valid until regenerate or request free). */
CSN_API const char *csn_session_id(const csn_session *s);
/* A copy of the id; release with csn_free(). NULL on ENOMEM. */
CSN_API char *csn_session_id_dup(const csn_session *s);

/* Typed getters: CSN_ENOENT if the key is absent (out untouched), CSN_ETYPE
 * if it holds another type. get_int accepts a real with an integral value;
 * get_double accepts integers. */
CSN_API int csn_session_get_int(const csn_session *s, const char *key,
                                int64_t *out);
CSN_API int csn_session_get_double(const csn_session *s, const char *key,
                                   double *out);
CSN_API int csn_session_get_bool(const csn_session *s, const char *key,
                                 int *out);
/* Borrowed: valid until the key changes or the request is freed. len may be
 * NULL. */
CSN_API int csn_session_get_str(const csn_session *s, const char *key,
                                const char **out, size_t *len);
/* The member as JSON text (yours, csn_free). */
CSN_API int csn_session_get_json(const csn_session *s, const char *key,
                                 char **out);

/* Setters. Setting a value equal to the current one is not a modification
 * (express-session compares serialized data). The key "cookie" is reserved
 * at the top level: CSN_EINVAL. */
CSN_API int csn_session_set_int(csn_session *s, const char *key, int64_t v);
CSN_API int csn_session_set_double(csn_session *s, const char *key,
                                   double v);
CSN_API int csn_session_set_bool(csn_session *s, const char *key, int v);
CSN_API int csn_session_set_str(csn_session *s, const char *key,
                                const char *v);
CSN_API int csn_session_set_strn(csn_session *s, const char *key,
                                 const char *v, size_t len);
/* Set a member from JSON text (any JSON value). CSN_EINVAL if unparsable,
 * or nested deeper than 255 levels (each value is a level, the outermost
 * counting 1): the stored record holding it may have 256, and a member
 * accepted here always loads again. */
CSN_API int csn_session_set_json(csn_session *s, const char *key,
                                 const char *json);
/* Add delta to an integer member (absent counts as 0); result in *out
 * (may be NULL). CSN_ETYPE if the member is not a number. */
CSN_API int csn_session_incr(csn_session *s, const char *key, int64_t delta,
                             int64_t *out);

CSN_API int csn_session_has(const csn_session *s, const char *key);
/* CSN_ENOENT if absent. */
CSN_API int csn_session_del(csn_session *s, const char *key);
/* Remove every member (the cookie stays). */
CSN_API int csn_session_clear(csn_session *s);
/* Number of data members (the cookie is not counted). */
CSN_API size_t csn_session_count(const csn_session *s);

/* The whole record as express-session stores it, {"cookie":{...},...}
 * (yours, csn_free). */
CSN_API int csn_session_to_json(const csn_session *s, char **out);

/* ------------------------------------------------------------------------ */
/* Session cookie (req.session.cookie)                                      */
/* ------------------------------------------------------------------------ */

/* Current cookie settings. Strings are borrowed from the session. */
CSN_API int csn_session_cookie_get(const csn_session *s,
                                   csn_cookie_options *out);
/* Milliseconds left (expires - now), CSN_ENOENT for a browser-session
 * cookie. */
CSN_API int csn_session_cookie_max_age(const csn_session *s, int64_t *ms);
CSN_API int csn_session_cookie_original_max_age(const csn_session *s,
                                                int64_t *ms);
CSN_API int csn_session_cookie_expires(const csn_session *s, int64_t *ms);

/* cookie.maxAge = ms (CSN_TIME_NONE: browser-session cookie). */
CSN_API int csn_session_cookie_set_max_age(csn_session *s, int64_t ms);
/* cookie.expires = instant (CSN_TIME_NONE clears); also sets originalMaxAge
 * to the time left, as express-session does. */
CSN_API int csn_session_cookie_set_expires(csn_session *s, int64_t epoch_ms);
CSN_API int csn_session_cookie_set_http_only(csn_session *s, int on);
CSN_API int csn_session_cookie_set_secure(csn_session *s, int on);
CSN_API int csn_session_cookie_set_same_site(csn_session *s, int same_site);
CSN_API int csn_session_cookie_set_partitioned(csn_session *s, int on);
CSN_API int csn_session_cookie_set_priority(csn_session *s, int priority);
/* NULL removes the attribute. Validated like the options: CSN_EINVAL. */
CSN_API int csn_session_cookie_set_domain(csn_session *s, const char *domain);
CSN_API int csn_session_cookie_set_path(csn_session *s, const char *path);

/* ------------------------------------------------------------------------ */
/* Session methods (express-session's Session API)                         */
/* ------------------------------------------------------------------------ */

/* The data member holding the creation instant (see lifetime_ms). */
#define CSN_CREATED_MEMBER "__csn_created"

/* When the session was created or last regenerated (epoch ms), as the
 * record keeps it: CSN_ENOENT for a session without the stamp (lifetime_ms
 * off and the record never had one). */
CSN_API int csn_session_created(const csn_session *s, int64_t *ms);

/* Destroy the stored session and start a new one with a new id and empty
 * data (login: prevents session fixation). The new session is always saved
 * and its cookie sent at commit. Returns the store's error from destroying
 * the old id (the new session exists either way). */
CSN_API int csn_session_regenerate(csn_session *s);
/* Give the session a new id and keep everything else: its data, its
 * cookie and its creation instant (scs's RenewToken; what Passport does by
 * hand on login). The record is saved under the new id at commit (or by
 * csn_session_save()) and only then is the old record destroyed, so a
 * failed save leaves the client's old session intact; the new cookie is
 * sent. Use regenerate() when the data must not survive (a login that
 * starts from nothing, as Express apps do), rotate() to change the id on a
 * privilege change without losing the data (a cart, preferences), or
 * periodically to bound how long one id is exposed. Since 0.2. */
CSN_API int csn_session_rotate(csn_session *s);
/* Remove the session from the store; csn_request_session() becomes NULL and
 * no cookie is sent. `s` stays a valid pointer whose getters answer
 * CSN_ESTATE until the request is freed. */
CSN_API int csn_session_destroy(csn_session *s);
/* Replace the data with the stored copy, dropping unsaved changes.
 * CSN_ENOENT ("failed to load session") if the store no longer has it. */
CSN_API int csn_session_reload(csn_session *s);
/* Write the session to the store now. The end-of-request save is skipped
 * when nothing changed after this call. With a compare-and-set store this
 * merges like csn_request_commit(): afterwards the session's data is what
 * was stored, concurrent requests' members included (CSN_ECONFLICT as
 * there). CSN_ESTATE after csn_request_commit(): the request is over. */
CSN_API int csn_session_save(csn_session *s);
/* Reset the cookie's expiry to now + originalMaxAge (also done once per
 * request automatically). */
CSN_API int csn_session_touch(csn_session *s);
CSN_API int csn_session_reset_max_age(csn_session *s);

/* ------------------------------------------------------------------------ */
/* Cookie signing (cookie-signature 1.0.7)                                  */
/* ------------------------------------------------------------------------ */

/* Sign: writes "value.signature" (no "s:" prefix, not URL-encoded) into
 * out. *outlen is the buffer size on entry and the length written (without
 * NUL) on exit; CSN_ENOBUFS sets it to the size needed. */
CSN_API int csn_cookie_sign(const char *value, size_t value_len,
                            const void *secret, size_t secret_len, char *out,
                            size_t *outlen);
/* Verify "value.signature" against each secret (secret_lens may be NULL for
 * C strings). On success returns the index of the matching secret (>= 0) and
 * the unsigned value's length in *value_len (it is input[0..*value_len)).
 * Constant-time compare. CSN_EINVAL if no secret matches. */
CSN_API int csn_cookie_unsign(const char *input, size_t input_len,
                              const char *const *secrets,
                              const size_t *secret_lens, size_t n_secrets,
                              size_t *value_len);

/* Generate a default id (32 chars of base64url from 24 random bytes). buf
 * must hold at least 33 bytes. */
CSN_API int csn_generate_id(char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* Stores                                                                   */
/* ------------------------------------------------------------------------ */

/* Callback for csn_store_all(): return non-zero to stop early. json is not
 * NUL-terminated-guaranteed beyond len; it is borrowed for the call. */
typedef int (*csn_store_each_fn)(const char *sid, const char *json,
                                 size_t len, void *userdata);

/* Writing a store: the method table (struct csn_store_methods), the
 * helpers every store shares and the guide are in csn/csn_store.h and
 * docs/STORES.md. What follows is what applications call. */

/* Open a store from a URL: "memory://" always, and every scheme registered
 * with csn_store_register() (csn_stores_register_all() in csn/csn_stores.h
 * registers every store this build has). Errors: CSN_EINVAL (bad URL,
 * message in errbuf), CSN_ENOTSUP (unknown scheme), or the store's own open
 * error. */
CSN_API int csn_store_open(const char *url, csn_store **out, char *errbuf,
                           size_t errlen);

/* A store URL fit for a log line or an error message: url copied into out
 * (outlen bytes, always NUL-terminated when outlen > 0, cut short if it
 * does not fit) with the password of "scheme://user:password@host" (the
 * userinfo ends at the URL's last '@') and the value of every query
 * parameter whose name contains pass, secret, token or key, in any case
 * (password, sslpassword, api_key ...), replaced by "***". Returns out. Applications that print a
 * store URL print this instead. Since 0.2. */
CSN_API char *csn_url_redact(const char *url, char *out, size_t outlen);

/* Read a secret (a signing secret, a store's key) from the file at `path`,
 * so that it never has to appear on a command line, where every local user
 * can read it (/proc/PID/cmdline). The file must be a regular file (a
 * symbolic link is judged by its target) owned by this process's user and
 * private to it: any group or other permission bit is refused with
 * CSN_EPERM ("chmod 600 it"). One trailing "\n" or "\r\n" is dropped; an
 * empty file, a NUL byte or more than 4096 bytes is CSN_EINVAL; a file that
 * cannot be read is CSN_EIO. On success *out is the secret (release it with
 * csn_free_secret()); on failure *out is NULL and errbuf says why (the
 * path, never the content). Since 0.2. */
CSN_API int csn_secret_read_file(const char *path, char **out, char *errbuf,
                                 size_t errlen);

typedef int (*csn_store_open_fn)(const char *url, csn_store **out,
                                 char *errbuf, size_t errlen);
/* Register an opener for "scheme://..." URLs. Not thread-safe: call during
 * start-up. Re-registering a scheme replaces the opener. */
CSN_API int csn_store_register(const char *scheme, csn_store_open_fn open);

CSN_API void csn_store_free(csn_store *st);
CSN_API const char *csn_store_name(const csn_store *st);

/* The message of the last failed call on `st` in this thread, or "". */
CSN_API const char *csn_store_errmsg(const csn_store *st);

/* Calls through the vtable (NULL-checked: CSN_ENOTSUP when the store lacks
 * the method). These are the calls the middleware itself makes. */
CSN_API int csn_store_get(csn_store *st, const char *sid, char **json,
                          size_t *len);
CSN_API int csn_store_set(csn_store *st, const char *sid, const char *json,
                          size_t len, int64_t expires_ms);
CSN_API int csn_store_destroy(csn_store *st, const char *sid);
CSN_API int csn_store_touch(csn_store *st, const char *sid, const char *json,
                            size_t len, int64_t expires_ms);
CSN_API int csn_store_clear(csn_store *st);
CSN_API int csn_store_length(csn_store *st, size_t *count);
CSN_API int csn_store_all(csn_store *st, csn_store_each_fn fn,
                          void *userdata);
CSN_API int csn_store_prune(csn_store *st, size_t *removed);
/* The expired records the store still holds (csn_store_all() sees live
 * ones only): fn once for each record whose stored expiry instant has
 * passed by the store's clock, until fn returns non-zero. What prune()
 * would remove now. CSN_ENOTSUP when the store cannot enumerate them
 * (Redis removes expired keys itself). Since 0.2. */
CSN_API int csn_store_all_expired(csn_store *st, csn_store_each_fn fn,
                                  void *userdata);
/* Compare-and-set (Since 0.2): write `json` only if the stored record's
 * text is still exactly `expected` (what a get() returned). CSN_OK when
 * written; CSN_ECONFLICT when the stored text differs; CSN_ENOENT when
 * there is no live record (destroyed or expired); CSN_ENOTSUP when the
 * store has no compare-and-set (csn_store_has_cas() says in advance). */
CSN_API int csn_store_cas(csn_store *st, const char *sid, const char *expected,
                          size_t expected_len, const char *json, size_t len,
                          int64_t expires_ms);
/* 1 if the store implements compare-and-set, else 0. Since 0.2. */
CSN_API int csn_store_has_cas(const csn_store *st);

/* Is `sid` acceptable as a store key? Non-empty, at most CSN_ID_MAX bytes,
 * no control characters, no '/' or '\\', not "." or "..". Stores that map
 * ids to paths or keys call this; the core never passes an id that fails. */
#define CSN_ID_MAX 255
CSN_API int csn_store_id_valid(const char *sid);

/* MemoryStore ------------------------------------------------------------ */

/* The size of the MemoryStore a context makes when given no store. */
#define CSN_DEFAULT_MEMORY_MAX 100000

typedef struct csn_memory_options {
  size_t max_entries;      /* 0: unlimited. When full, a new session
                              evicts an expired one, else the soonest to
                              expire of those never read back (visitors
                              seen once), and a returning visitor's only
                              when no other is left: a flood of new
                              visitors cannot log users out. Never
                              refused. */
  int64_t prune_interval_ms; /* background sweep period; 0: default 60000;
                                negative: no thread (amortised pruning on
                                writes only) */
  csn_clock_fn clock;      /* NULL: system clock */
  void *clock_userdata;
} csn_memory_options;

/* A thread-safe in-process store, sharded (four shards for each CPU the
 * process may run on when the store is made, 8 to 64). Expired entries are
 * never returned and are removed in the background and on writes, so unlike
 * express-session's MemoryStore it does not grow without bound. opts may be
 * NULL. URL form: memory://?max=N&prune=MS */
CSN_API int csn_store_memory_new(const csn_memory_options *opts,
                                 csn_store **out);
/* The same from a URL, "memory://[?max=N&prune=MS]", in the shape every
 * store opener has (errbuf may be NULL). Since 0.2. */
CSN_API int csn_store_memory_open(const char *url, csn_store **out,
                                  char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_H */
