/* ulfius.c - the Ulfius adapter.
 *
 * Thin, like mhd.c: it reads the Cookie header, the URL, TLS and
 * X-Forwarded-Proto, hands them to csn_request_begin(), and writes back
 * the one Set-Cookie value csn_request_commit() computed. It never parses,
 * signs or dates a cookie. It uses only the public API, as a user's own
 * adapter would.
 *
 * Ulfius calls a chain of endpoint callbacks per request and offers no
 * hook after the chain (its shared_data destructor runs once the response
 * is queued, too late for a header). So the adapter is two endpoints
 * matching every request, at the first and the last priority: the first
 * loads the session, the last commits it and completes the request (see
 * csn_ulfius.h for the rules this puts on the application's endpoints).
 *
 * Between the two, the session lives in a per-thread slot: Ulfius runs all
 * the callbacks of a request on one thread, in one call, and a callback
 * only gets the (const) _u_request, which has no room for ours. Keeping it
 * out of response->shared_data leaves that to the application, whose
 * ulfius_set_response_shared_data() would otherwise free our session in
 * the middle of the chain. The slot is released by the commit; a chain
 * that ends early (an endpoint returning U_CALLBACK_ERROR, say) leaves it
 * to the next request on the thread, or to the thread's end through the
 * key's destructor, so no path leaks it.
 *
 * The adapter's state per context (the error handler, the skip
 * predicate, one binding per instance it was installed on) is attached
 * with csn_ctx_set_ext() and freed with the context.
 */
#include <pthread.h>
#include <string.h>

#include "csn/csn.h"
#include "csn/csn_ulfius.h"

/* One instance the context was installed on: the user data of the two
 * endpoints, which need both. */
typedef struct ulf_binding {
  struct ulf_binding *next;
  struct _u_instance *inst;
  csn_ctx *ctx;
  int ready; /* both endpoints are in place */
} ulf_binding;

typedef struct ulf_state {
  csn_ulfius_error_fn error_fn;
  void *error_ud;
  csn_ulfius_skip_fn skip_fn;
  void *skip_ud;
  ulf_binding *bindings;
} ulf_state;

/* Its address is the csn_ctx_ext() key. */
static const char ulf_state_key;

/* The thread's current request. `ureq` and `inst` are set by the first
 * endpoint for every request, `req` when a session was loaded. `ureq` is
 * only ever compared, never followed: a request with a reused address
 * passes the first endpoint, which resets the slot, before anything can
 * look it up. */
typedef struct ulf_slot {
  const struct _u_request *ureq;
  struct _u_instance *inst;
  csn_request *req;
} ulf_slot;

static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static int slot_key_ok;

static void slot_destroy(void *p) {
  ulf_slot *slot = p;
  /* An aborted request's session, released as its thread ends. */
  csn_request_free(slot->req);
  csn_free(slot);
}

static void slot_key_init(void) {
  slot_key_ok = pthread_key_create(&slot_key, slot_destroy) == 0;
}

/* The calling thread's slot; created when `create` is set. NULL when it
 * does not exist (or cannot be made: out of memory). */
static ulf_slot *slot_get(int create) {
  ulf_slot *slot;

  if (pthread_once(&slot_once, slot_key_init) != 0 || !slot_key_ok)
    return NULL;
  slot = pthread_getspecific(slot_key);
  if (slot != NULL || !create)
    return slot;
  slot = csn_malloc(sizeof *slot);
  if (slot == NULL)
    return NULL;
  memset(slot, 0, sizeof *slot);
  if (pthread_setspecific(slot_key, slot) != 0) {
    csn_free(slot);
    return NULL;
  }
  return slot;
}

/* The slot when it belongs to `ureq`, else NULL. */
static ulf_slot *slot_of(const struct _u_request *ureq) {
  ulf_slot *slot = slot_get(0);
  return slot != NULL && ureq != NULL && slot->ureq == ureq ? slot : NULL;
}

/* Drop the request's session without committing (an aborted request). */
static void slot_drop(const struct _u_request *ureq) {
  ulf_slot *slot = slot_of(ureq);
  if (slot != NULL) {
    csn_request_free(slot->req);
    slot->req = NULL;
  }
}

/* ------------------------------------------------------------------------ */
/* Per-context state                                                        */
/* ------------------------------------------------------------------------ */

static void state_free(void *p) {
  ulf_state *st = p;
  while (st->bindings != NULL) {
    ulf_binding *b = st->bindings;
    st->bindings = b->next;
    csn_free(b);
  }
  csn_free(st);
}

/* The context's state, created on first use. */
static int state_get(csn_ctx *ctx, ulf_state **out) {
  ulf_state *st = csn_ctx_ext(ctx, &ulf_state_key);
  int rc;

  if (st == NULL) {
    st = csn_malloc(sizeof *st);
    if (st == NULL)
      return CSN_ENOMEM;
    memset(st, 0, sizeof *st);
    rc = csn_ctx_set_ext(ctx, &ulf_state_key, st, state_free);
    if (rc < 0) {
      csn_free(st);
      return rc;
    }
  }
  *out = st;
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Request facts and the cookie                                             */
/* ------------------------------------------------------------------------ */

/* Was the instance started with TLS? Ulfius keeps no flag of its own;
 * ulfius_start_secure_framework() asks libmicrohttpd for MHD_USE_TLS, and
 * the daemon reports its flags. */
static int instance_tls(const struct _u_instance *inst) {
#if MHD_VERSION >= 0x00096000
  const union MHD_DaemonInfo *di;

  if (inst == NULL || inst->mhd_daemon == NULL)
    return 0;
  di = MHD_get_daemon_info(inst->mhd_daemon, MHD_DAEMON_INFO_FLAGS);
  return di != NULL && (di->flags & MHD_USE_TLS) != 0;
#else
  (void)inst; /* a libmicrohttpd too old to say: plain HTTP */
  return 0;
#endif
}

/* Is `key` (n bytes) already the key of one of the response's cookies? */
static int cookie_key_taken(const struct _u_response *resp, const char *key,
                            size_t n) {
  unsigned int i;
  for (i = 0; i < resp->nb_cookies; i++) {
    const char *k = resp->map_cookie[i].key;
    if (k != NULL && strncmp(k, key, n) == 0 && k[n] == '\0')
      return 1;
  }
  return 0;
}

/* Append the Set-Cookie value `value` ("name=value; Path=/; ...") as it
 * is. Ulfius writes a map_cookie entry with no attributes as "key=value",
 * so splitting the header at an '=' gives back exactly `value`. The first
 * '=' is the natural split; should a cookie of the response already have
 * that key (ulfius_add_cookie_to_response would replace it), a later '='
 * gives a key no cookie has, and both cookies are sent. */
static int add_set_cookie(struct _u_response *resp, const char *value) {
  const char *eq;

  for (eq = strchr(value, '='); eq != NULL; eq = strchr(eq + 1, '=')) {
    size_t n = (size_t)(eq - value);
    char *key;
    int u;

    if (cookie_key_taken(resp, value, n))
      continue;
    key = csn_malloc(n + 1);
    if (key == NULL)
      return CSN_ENOMEM;
    memcpy(key, value, n);
    key[n] = '\0';
    u = ulfius_add_cookie_to_response(resp, key, eq + 1, NULL, 0, NULL, NULL,
                                      0, 0);
    csn_free(key);
    return u == U_OK ? CSN_OK : CSN_ENOMEM;
  }
  /* Every split is some cookie's key: not a response a program makes. */
  return CSN_EINVAL;
}

/* Commit the thread's session for `ureq` into `resp` and free it. *ctx
 * receives the context (for the error path), NULL when there was no
 * session. */
static int commit_slot(const struct _u_request *ureq, struct _u_response *resp,
                       csn_ctx **ctx) {
  ulf_slot *slot = slot_of(ureq);
  csn_request *req;
  char *set_cookie = NULL;
  int rc;

  *ctx = NULL;
  if (slot == NULL || slot->req == NULL)
    return CSN_OK;
  req = slot->req;
  slot->req = NULL; /* freed below whatever happens */
  *ctx = csn_request_ctx(req);
  rc = csn_request_commit(req, &set_cookie);
  csn_request_free(req);
  if (rc < 0)
    return rc;
  if (set_cookie == NULL)
    return CSN_OK;
  rc = add_set_cookie(resp, set_cookie);
  csn_free(set_cookie);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Empty the response of what the chain put in it, keeping the instance's
 * default headers (which Ulfius put there first). */
static void response_reset(struct _u_response *resp,
                           const struct _u_instance *inst) {
  unsigned int i;

  u_map_empty(resp->map_header);
  if (inst != NULL && inst->default_headers != NULL)
    u_map_copy_into(resp->map_header, inst->default_headers);
  for (i = 0; i < resp->nb_cookies; i++)
    ulfius_clean_cookie(&resp->map_cookie[i]);
  u_free(resp->map_cookie);
  resp->map_cookie = NULL;
  resp->nb_cookies = 0;
  ulfius_set_empty_body_response(resp, 500);
}

/* The default error response: a bare 500 that reveals nothing about the
 * failure to the client (the detail goes to the log). */
static void default_error(const struct _u_request *req,
                          struct _u_response *resp, int err,
                          const char *message, void *userdata) {
  (void)req;
  (void)err;
  (void)message;
  (void)userdata;
  ulfius_set_string_body_response(resp, 500, "Internal Server Error\n");
  u_map_put(resp->map_header, "Content-Type", "text/plain");
}

int csn_ulfius_error(csn_ctx *ctx, const struct _u_request *req,
                     struct _u_response *resp, int err) {
  const char *message = csn_last_error();
  csn_ulfius_error_fn fn = default_error;
  void *ud = NULL;
  ulf_slot *slot = slot_of(req);

  /* An error answer ends the request: its session is not committed. */
  if (slot != NULL) {
    csn_request_free(slot->req);
    slot->req = NULL;
  }
  /* The store's own words when there are some, else the code's. */
  if (message == NULL || message[0] == '\0')
    message = csn_strerror(err);
  if (ctx != NULL) {
    const ulf_state *st = csn_ctx_ext(ctx, &ulf_state_key);
    csn_ctx_log(ctx, err, "%s", message);
    if (st != NULL && st->error_fn != NULL) {
      fn = st->error_fn;
      ud = st->error_ud;
    }
  }
  if (resp != NULL) {
    response_reset(resp, slot != NULL ? slot->inst : NULL);
    fn(req, resp, err, message, ud);
  }
  return U_CALLBACK_COMPLETE;
}

/* ------------------------------------------------------------------------ */
/* The endpoints                                                            */
/* ------------------------------------------------------------------------ */

/* First of every chain: load the session. */
static int ulf_begin(const struct _u_request *ureq, struct _u_response *resp,
                     void *user_data) {
  ulf_binding *b = user_data;
  ulf_slot *slot = slot_get(1);
  const ulf_state *st;
  csn_request_info info;
  csn_request *req;
  int rc;

  if (slot != NULL) {
    /* Left over from a chain that ended before the last endpoint. */
    csn_request_free(slot->req);
    slot->req = NULL;
    slot->ureq = ureq;
    slot->inst = b->inst;
  }
  if (!b->ready)
    return U_CALLBACK_IGNORE;
  st = csn_ctx_ext(b->ctx, &ulf_state_key);
  if (st != NULL && st->skip_fn != NULL && st->skip_fn(ureq, st->skip_ud))
    return U_CALLBACK_IGNORE;
  if (slot == NULL)
    return csn_ulfius_error(b->ctx, ureq, resp, CSN_ENOMEM);

  /* Header names are case-insensitive. */
  memset(&info, 0, sizeof info);
  info.cookie_header = u_map_get_case(ureq->map_header, "Cookie");
  info.forwarded_proto = u_map_get_case(ureq->map_header, "X-Forwarded-Proto");
  info.url = ureq->http_url;
  info.tls = instance_tls(b->inst);
  /* Ulfius has no "secure" beyond the transport. */
  info.secure = info.tls;
  info.native = (void *)ureq;
  rc = csn_request_begin(b->ctx, &info, &req);
  if (rc < 0)
    return csn_ulfius_error(b->ctx, ureq, resp, rc);
  slot->req = req;
  /* As if this endpoint were not there: callback_position stays 0, which
   * is how the last endpoint knows whether anything else answered. */
  return U_CALLBACK_IGNORE;
}

/* Last of every chain: the default endpoint when nothing else answered,
 * then the commit. */
static int ulf_end(const struct _u_request *ureq, struct _u_response *resp,
                   void *user_data) {
  ulf_binding *b = user_data;

  if (ureq->callback_position == 0) {
    const struct _u_endpoint *def = b->inst->default_endpoint;
    if (def != NULL && def->callback_function != NULL) {
      int ret = def->callback_function(ureq, resp, def->user_data);
      if (ret != U_CALLBACK_CONTINUE && ret != U_CALLBACK_IGNORE &&
          ret != U_CALLBACK_COMPLETE) {
        /* An error or 401 answer: aborted, as for any endpoint. */
        slot_drop(ureq);
        return ret;
      }
    } else {
      /* What Ulfius answers when no endpoint matches. */
      ulfius_set_string_body_response(resp, 404, ULFIUS_HTTP_NOT_FOUND_BODY);
    }
  }
  return csn_ulfius_complete(ureq, resp);
}

int csn_ulfius_install(struct _u_instance *inst, csn_ctx *ctx) {
  ulf_state *st;
  ulf_binding *b;
  int rc, u;

  if (inst == NULL || ctx == NULL)
    return CSN_EINVAL;
  rc = state_get(ctx, &st);
  if (rc < 0)
    return rc;
  b = csn_malloc(sizeof *b);
  if (b == NULL)
    return CSN_ENOMEM;
  memset(b, 0, sizeof *b);
  b->inst = inst;
  b->ctx = ctx;
  /* Owned by the state from here on: Ulfius keeps a pointer to it even if
   * the second endpoint cannot be added (the first then does nothing, as
   * `ready` stays 0). */
  b->next = st->bindings;
  st->bindings = b;
  u = ulfius_add_endpoint_by_val(inst, "*", NULL, "*",
                                 CSN_ULFIUS_PRIORITY_FIRST, ulf_begin, b);
  if (u == U_OK)
    u = ulfius_add_endpoint_by_val(inst, "*", NULL, "*",
                                   CSN_ULFIUS_PRIORITY_LAST, ulf_end, b);
  if (u != U_OK)
    return u == U_ERROR_MEMORY ? CSN_ENOMEM : CSN_EINVAL;
  b->ready = 1;
  return CSN_OK;
}

csn_request *csn_ulfius_request(const struct _u_request *req) {
  ulf_slot *slot = slot_of(req);
  return slot != NULL ? slot->req : NULL;
}

csn_session *csn_ulfius_session(const struct _u_request *req) {
  csn_request *r = csn_ulfius_request(req);
  return r != NULL ? csn_request_session(r) : NULL;
}

int csn_ulfius_commit(const struct _u_request *req, struct _u_response *resp) {
  csn_ctx *ctx;
  if (req == NULL || resp == NULL)
    return CSN_EINVAL;
  return commit_slot(req, resp, &ctx);
}

int csn_ulfius_complete(const struct _u_request *req,
                        struct _u_response *resp) {
  csn_ctx *ctx;
  int rc;

  if (req == NULL || resp == NULL)
    return U_CALLBACK_ERROR;
  rc = commit_slot(req, resp, &ctx);
  if (rc < 0)
    return csn_ulfius_error(ctx, req, resp, rc);
  return U_CALLBACK_COMPLETE;
}

int csn_ulfius_set_error_handler(csn_ctx *ctx, csn_ulfius_error_fn fn,
                                 void *userdata) {
  ulf_state *st;
  int rc;

  if (ctx == NULL)
    return CSN_EINVAL;
  rc = state_get(ctx, &st);
  if (rc < 0)
    return rc;
  st->error_fn = fn;
  st->error_ud = fn != NULL ? userdata : NULL;
  return CSN_OK;
}

int csn_ulfius_set_skip(csn_ctx *ctx, csn_ulfius_skip_fn fn, void *userdata) {
  ulf_state *st;
  int rc;

  if (ctx == NULL)
    return CSN_EINVAL;
  rc = state_get(ctx, &st);
  if (rc < 0)
    return rc;
  st->skip_fn = fn;
  st->skip_ud = fn != NULL ? userdata : NULL;
  return CSN_OK;
}
