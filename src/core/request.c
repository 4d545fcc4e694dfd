/* request.c - the middleware's request lifecycle (express-session index.js).
 *
 * A request goes through three steps:
 *
 *   csn_request_begin()  the entry guards, the cookie, the store lookup or
 *                        a fresh session (spec section 5.1-5.2);
 *   (the handler reads and changes the session)
 *   csn_request_commit() touch once, then destroy / save / touch in the
 *                        store and the Set-Cookie decision (5.4-5.7).
 *
 * The decisions use express-session's four predicates, computed from a few
 * facts recorded along the way:
 *
 *   NEW         the id did not come from a verified cookie;
 *   isModified  the id changed (regenerate) or the data's text differs
 *               from its text at load;
 *   isSaved     the id is unchanged and the data's text equals its text at
 *               the last save() (or at load when resave is off);
 *
 * and then shouldSave / shouldTouch / shouldSetCookie / shouldDestroy as in
 * spec 5.4. Where express compares SHA-1 hashes of the JSON we compare the
 * texts themselves, and only when something was changed: a request that
 * only reads its session compares nothing and serializes nothing.
 *
 * Errors differ on purpose: express answers 200 and reports a failed
 * store write afterwards; we return the error from commit so the adapter
 * answers 500, and since the failed write changed nothing, the stored
 * record is as it was.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "csn_int.h"
#include "metrics.h"

int csn__cookie_options_check(const csn_cookie_options *c, const char **msg);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* issecure(req) of express-session. */
static int request_is_secure(const csn_ctx *ctx, const csn_request_info *in) {
  const char *p, *end;
  size_t n;

  if (in->tls)
    return 1;
  if (ctx->proxy == CSN_PROXY_NONE)
    return 0;
  if (ctx->proxy == CSN_PROXY_DEFAULT)
    return in->secure ? 1 : 0;
  /* Trusted proxy: the first comma-separated entry, trimmed, any case. */
  p = in->forwarded_proto;
  if (p == NULL)
    return 0;
  end = strchr(p, ',');
  if (end == NULL)
    end = p + strlen(p);
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  n = (size_t)(end - p);
  return n == 5 && strncasecmp(p, "https", 5) == 0;
}

/* The pathname of the request target, as parseurl gives it: the query is
 * cut off, an absolute-form target loses its scheme and authority, and an
 * empty result is "/". Returns a pointer into url and sets *len. */
static const char *request_pathname(const char *url, size_t *len) {
  const char *p = url ? url : "/";
  size_t n;
  /* Nearly every target is origin-form ("/..."): one byte decides. */
  if ((p[0] == 'h' || p[0] == 'H') &&
      (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0)) {
    const char *slash = strchr(strstr(p, "//") + 2, '/');
    p = slash ? slash : "/";
  }
  n = strcspn(p, "?#");
  if (n == 0) {
    p = "/";
    n = 1;
  }
  *len = n;
  return p;
}

/* A NUL inside is refused too: it is one of the forbidden bytes. */
static int id_acceptable(const char *id, size_t len) {
  return csn__id_valid_n(id, len);
}

/* The id from the request's cookie, verified against every secret. Only a
 * value that is signed ("s:" prefix) and verifies is ever used: nothing
 * the client merely claims reaches the store. */
static int cookie_session_id(csn_request *r, const csn_request_info *in) {
  const csn_ctx *ctx = r->ctx;
  const char *val, *raw;
  size_t vlen, idlen, rawlen;
  char stackbuf[512];
  char *dec = stackbuf;
  int k, ok = 0, decoded = 0, canonical = 0;

  if (in->cookie_header == NULL)
    return 0;
  if (!csn__cookie_header_find(in->cookie_header, strlen(in->cookie_header),
                               ctx->name, ctx->name_len, &val, &vlen))
    return 0;
  raw = val;
  rawlen = vlen;
  /* decodeURIComponent only when there is a '%', keeping the raw value when
   * decoding would throw (cookie@0.7.2's tryDecode). A value without one
   * is never canonical: the ':' of "s:" would be escaped. Whether it is
   * canonical is found in the same pass as the decoding. */
  if (memchr(val, '%', vlen) != NULL) {
    size_t dlen;
    if (vlen > sizeof stackbuf && (dec = csn__malloc(vlen)) == NULL)
      return CSN_ENOMEM;
    if (csn__uri_decode_canonical(val, vlen, dec, &dlen, &canonical) == 0) {
      val = dec;
      vlen = dlen;
      decoded = 1;
    }
  }
  if (vlen >= 2 && val[0] == 's' && val[1] == ':') {
    k = csn__unsign(ctx->keys, ctx->nkeys, val + 2, vlen - 2, &idlen);
    if (k >= 0 && id_acceptable(val + 2, idlen)) {
      memcpy(r->cookie_id, val + 2, idlen);
      r->cookie_id[idlen] = '\0';
      r->has_cookie_id = 1;
      /* Only a value the signing secret verified is what the Set-Cookie
       * would carry: one an older secret verified is signed again. */
      if (k == 0 && decoded && canonical && rawlen <= sizeof r->cookie_raw) {
        memcpy(r->cookie_raw, raw, rawlen);
        r->cookie_raw_len = rawlen;
      } else if (k == 0) {
        /* unsign checked it is exactly CSN__SIG_LEN long */
        memcpy(r->cookie_sig, val + 2 + idlen + 1, CSN__SIG_LEN);
        r->cookie_sig[CSN__SIG_LEN] = '\0';
      }
      ok = 1;
    }
  }
  if (dec != stackbuf)
    csn__free(dec);
  return ok;
}

/* The verified cookie names a record that cannot be read (not JSON, or
 * not an object; or the store itself says it is corrupt). It is treated
 * as no session, whatever the store: a fresh session with a new id starts,
 * as when the record is missing, rather than a 500 on every request of
 * that user until the record expires. (A JSON object without a usable
 * "cookie" member is a record, and fails the request with CSN_ECORRUPT as
 * it fails express-session's inflate: parity test 47.) The record itself is
 * left alone: deleting what we cannot read would let one bad reader
 * destroy other writers' sessions, and it goes away when its expiry
 * passes like any other. The log names the store and never the id (an id
 * is a credential; the store's own message, which may quote it, stays in
 * csn_last_error()). */
static void corrupt_record(csn_ctx *ctx) {
  csn_ctx_log(ctx, CSN_ECORRUPT,
              "%s: a stored session record cannot be read; a new session "
              "starts and the record is left in the store",
              csn_store_name(ctx->store));
}

/* A new session id from genid or the default generator; id holds
 * CSN_ID_MAX + 2 bytes. */
static int new_id(csn_request *r, const csn_request_info *in,
                  char id[CSN_ID_MAX + 2]) {
  csn_ctx *ctx = r->ctx;
  int rc;

  if (ctx->genid) {
    csn_request_info none = {0};
    id[0] = '\0';
    rc = ctx->genid(in ? in : &none, id, CSN_ID_MAX + 1, ctx->genid_ud);
    if (rc < 0)
      return csn__set_error(rc, "genid failed");
    id[CSN_ID_MAX + 1] = '\0';
    if (!id_acceptable(id, strlen(id)))
      return csn__set_error(CSN_EINVAL,
                            "genid returned an unusable session id");
  } else if ((rc = csn__genid(id)) < 0) {
    return rc;
  }
  return CSN_OK;
}

/* The id is about to change: original_id gets its own copy first. */
static int keep_original_id(csn_request *r) {
  if (r->original_id != r->sess.id)
    return CSN_OK;
  if ((r->original_own = csn__strdup(r->sess.id)) == NULL)
    return CSN_ENOMEM;
  r->original_id = r->original_own;
  return CSN_OK;
}

/* A fresh session: new id, empty data (but for the creation stamp when
 * lifetime_ms is on), cookie from the options. */
static int generate(csn_request *r, const csn_request_info *in) {
  csn_ctx *ctx = r->ctx;
  csn_session *s = &r->sess;
  char id[CSN_ID_MAX + 2];
  int rc;

  if ((rc = new_id(r, in, id)) < 0)
    return rc;
  json_decref(s->data);
  s->data = json_object();
  if (s->data == NULL)
    return CSN_ENOMEM;
  /* Part of the data from the start, so that it is no modification: an
   * uninitialized session stays uninitialized. */
  if (ctx->lifetime_ms > 0 &&
      json_object_set_new(s->data, CSN_CREATED_MEMBER,
                          json_integer(csn__ctx_now(ctx))) != 0)
    return CSN_ENOMEM;
  rc = csn__session_new_cookie(s, &r->cookie_opts, 1, r->secure,
                               csn__ctx_now(ctx));
  if (rc < 0)
    return rc;
  strcpy(s->id, id);
  r->has_sid = 1;
  r->has_session = 1;
  r->refreshed_at = CSN_TIME_NONE;
  csn__metrics_event(ctx, CSN__EV_CREATED);
  return CSN_OK;
}

/* lifetime_ms: is the loaded session past its absolute timeout? A session
 * without a usable stamp (written before the option was on, or by a Node
 * app that regenerated it) gets one now, which is a change: it is saved at
 * commit. Returns 1 (expired), 0, or CSN_ENOMEM. */
static int lifetime_over(csn_request *r) {
  csn_ctx *ctx = r->ctx;
  csn_session *s = &r->sess;
  int64_t now = csn__ctx_now(ctx);
  int64_t created;
  int rc;

  /* Anything but a number in the JavaScript Date range is no stamp. */
  if (csn_session_created(s, &created) == CSN_OK)
    return now - created >= ctx->lifetime_ms;
  if ((rc = csn__session_will_change(s)) < 0)
    return rc;
  if (json_object_set_new(s->data, CSN_CREATED_MEMBER, json_integer(now)) != 0)
    return CSN_ENOMEM;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Begin                                                                    */
/* ------------------------------------------------------------------------ */

int csn_request_begin(csn_ctx *ctx, const csn_request_info *info,
                      csn_request **out) {
  csn_request *r;
  const char *path, *cpath;
  size_t plen, cplen;
  char *json = NULL;
  size_t jlen = 0;
  int rc, unreadable;

  /* Whatever failed earlier in this thread is not this request's story:
   * an adapter logs csn_last_error() after a failure of ours. */
  csn__clear_error();
  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (ctx == NULL || info == NULL)
    return CSN_EINVAL;

  /* Not calloc: zeroing the id buffers cost more than the rest of the
   * allocation. Everything before `sess` is zeroed, the ids get their
   * first byte (csn_int.h). */
  r = csn__malloc(sizeof *r);
  if (r == NULL)
    return CSN_ENOMEM;
  memset(r, 0, offsetof(csn_request, sess));
  r->ctx = ctx;
  csn__session_init(&r->sess, r);
  r->cookie_id[0] = '\0';
  r->original_id = r->sess.id;
  r->cookie_opts = ctx->cookie;

  /* The function form of the cookie option sees the request first. */
  if (ctx->cookie_fn) {
    const char *msg = "cookie function failed";
    rc = ctx->cookie_fn(info, &r->cookie_opts, ctx->cookie_fn_ud);
    if (rc >= 0)
      rc = csn__cookie_options_check(&r->cookie_opts, &msg);
    if (rc < 0) {
      csn__set_error(rc, "%s", msg);
      goto fail;
    }
  }

  /* Path gate: a raw, case-sensitive prefix test on the undecoded path. */
  path = request_pathname(info->url, &plen);
  cpath = r->cookie_opts.path ? r->cookie_opts.path : "/";
  cplen = strlen(cpath);
  if (plen < cplen || memcmp(path, cpath, cplen) != 0) {
    *out = r; /* no session for this request */
    return CSN_OK;
  }

  r->secure = request_is_secure(ctx, info);

  rc = cookie_session_id(r, info);
  if (rc < 0)
    goto fail;

  if (r->has_cookie_id) {
    rc = csn__m_store_get(ctx, r->cookie_id, &json, &jlen);
    /* Unreadable, by the store's judgement or ours: no session. */
    unreadable = rc == CSN_ECORRUPT;
    if (rc == CSN_OK) {
      /* The data's text at load (express's originalHash) comes with it
       * when it can be cut from the record's text: a first change then
       * serializes nothing, and as a piece of the record nothing is
       * copied either. */
      rc = csn__session_load_tail(&r->sess, json, jlen, &unreadable,
                                  &r->orig_text, &r->orig_tail,
                                  &r->orig_tail_len);
      if (rc < 0) {
        csn__free(json);
        json = NULL;
      }
    }
    if (rc == CSN_ECORRUPT && unreadable) {
      csn__metrics_event(ctx, CSN__EV_UNREADABLE);
      corrupt_record(ctx);
      rc = CSN_ENOENT;
    }
    if (rc == CSN_OK) {
      strcpy(r->sess.id, r->cookie_id);
      /* Kept, not copied: the text a compare-and-set save compares with,
       * and what orig_tail points into. */
      r->load_buf = json;
      r->loaded_text = json;
      r->loaded_len = jlen;
      r->has_sid = 1;
      r->has_session = 1;
      /* With resave off, the loaded state counts as saved. */
      if (!ctx->resave)
        r->has_saved = 1;
      r->loaded_max_age = r->sess.cookie.original_max_age;
      r->refreshed_at = r->sess.cookie.expires != CSN_TIME_NONE &&
                                r->sess.cookie.original_max_age != CSN_TIME_NONE
                            ? r->sess.cookie.expires -
                                  r->sess.cookie.original_max_age
                            : CSN_TIME_NONE;
      csn__metrics_event(ctx, CSN__EV_LOADED);
      if (ctx->lifetime_ms > 0 && (rc = lifetime_over(r)) != 0) {
        if (rc < 0)
          goto fail;
        /* Past its absolute timeout: the record goes (so that no other
         * reader revives it) and a fresh session starts, as for a missing
         * one. A failed destroy fails the request like a failed get. */
        if ((rc = csn__m_store_destroy(ctx, r->cookie_id)) < 0)
          goto fail;
        csn__metrics_event(ctx, CSN__EV_EXPIRED);
        csn__request_drop_loaded(r);
        csn__free(r->orig_text);
        r->orig_text = NULL;
        r->orig_tail = NULL;
        r->mut_gen = 0;
        r->has_saved = 0;
        if ((rc = generate(r, info)) < 0)
          goto fail;
      }
    } else if (rc == CSN_ENOENT) {
      rc = generate(r, info);
      if (rc < 0)
        goto fail;
    } else {
      goto fail;
    }
  } else {
    rc = generate(r, info);
    if (rc < 0)
      goto fail;
  }
  /* original_id is r->sess.id already (set above). */
  *out = r;
  return CSN_OK;

fail:
  csn_request_free(r);
  return rc;
}

/* The way from a request back to its context, which adapters need for
 * csn_ctx_ext() and csn_ctx_log(). */
csn_ctx *csn_request_ctx(const csn_request *r) {
  return r ? r->ctx : NULL;
}

csn_session *csn_request_session(csn_request *r) {
  return r && r->has_session ? &r->sess : NULL;
}

const char *csn_request_session_id(const csn_request *r) {
  return r && r->has_sid ? r->sess.id : NULL;
}

int csn_request_unset(csn_request *r) {
  if (r == NULL)
    return CSN_EINVAL;
  r->has_session = 0;
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Predicates (spec 5.3)                                                    */
/* ------------------------------------------------------------------------ */

/* Bytes of the commit's scratch buffer for the data's text: a session's
 * data is mostly small, and one that does not fit moves to the heap. */
#define CUR_SCRATCH 1024
/* And for the record of the end-of-request save (save_now()). */
#define RECORD_SCRATCH 1536

/* The data's text now; computed at most once per commit. Within commit it
 * is written to the commit's stack buffer when it fits, which saves an
 * allocation per request. */
static const char *current_text(csn_request *r) {
  if (r->cur_text == NULL) {
    if (r->cur_scratch != NULL) {
      csn__buf b;
      csn__buf_init_fixed(&b, r->cur_scratch, CUR_SCRATCH);
      if (csn__session_data_text_into(&r->sess, &b) != CSN_OK) {
        csn__buf_free(&b);
        return NULL;
      }
      r->cur_len = b.len;
      r->cur_text = b.fixed ? b.data : csn__buf_steal(&b, NULL);
    } else {
      r->cur_text = csn__session_data_text(&r->sess);
      if (r->cur_text != NULL)
        r->cur_len = strlen(r->cur_text);
    }
  }
  return r->cur_text;
}

void csn__request_drop_cur(csn_request *r) {
  if (r->cur_text != r->cur_scratch)
    csn__free(r->cur_text);
  r->cur_text = NULL;
}

void csn__request_drop_loaded(csn_request *r) {
  if (r->loaded_text != r->load_buf)
    csn__free(r->loaded_text);
  r->loaded_text = NULL;
}

int csn__request_own_orig(csn_request *r) {
  char *t;
  if (r->orig_text != NULL || r->orig_tail == NULL)
    return CSN_OK;
  if ((t = csn__malloc(r->orig_tail_len + 2)) == NULL)
    return CSN_ENOMEM;
  t[0] = '{';
  memcpy(t + 1, r->orig_tail, r->orig_tail_len);
  t[r->orig_tail_len + 1] = '\0';
  r->orig_text = t;
  r->orig_tail = NULL;
  return CSN_OK;
}

/* Is `cur` (r->cur_len bytes) the data's text at load? */
static int is_orig_text(const csn_request *r, const char *cur) {
  if (r->orig_text != NULL)
    return strcmp(r->orig_text, cur) == 0;
  return cur[0] == '{' && r->cur_len == 1 + r->orig_tail_len &&
         memcmp(cur + 1, r->orig_tail, r->orig_tail_len) == 0;
}

/* Has the data changed since load? Returns 1/0, or CSN_ENOMEM. */
static int data_changed(csn_request *r) {
  const char *cur;
  if (r->mut_gen == 0)
    return 0;
  if ((cur = current_text(r)) == NULL)
    return CSN_ENOMEM;
  return !is_orig_text(r, cur);
}

/* same_id: the id is still original_id (strcmp done once by the caller,
 * which needs it for both predicates). */
static int is_modified(csn_request *r, int same_id) {
  if (!same_id)
    return 1;
  return data_changed(r);
}

/* modified: is_modified(r, same_id), which commit has computed: with the
 * same id it is data_changed(), which is not compared a second time. */
static int is_saved(csn_request *r, int same_id, int modified) {
  const char *cur;
  if (!r->has_saved || !same_id)
    return 0;
  if (r->saved_text == NULL) /* saved state == loaded state */
    return !modified;
  if (r->saved_gen == r->mut_gen)
    return 1;
  if ((cur = current_text(r)) == NULL)
    return CSN_ENOMEM;
  return strcmp(r->saved_text, cur) == 0;
}

static int is_new(const csn_request *r) {
  return !r->has_cookie_id || strcmp(r->cookie_id, r->sess.id) != 0;
}

/* ------------------------------------------------------------------------ */
/* Store writes                                                             */
/* ------------------------------------------------------------------------ */

/* Destroy the record a rotate() left behind, once. */
static int destroy_rotated(csn_request *r) {
  int rc;
  if (r->rotated_from == NULL || strcmp(r->rotated_from, r->sess.id) == 0)
    return CSN_OK;
  rc = csn__m_store_destroy(r->ctx, r->rotated_from);
  if (rc == CSN_OK) {
    csn__free(r->rotated_from);
    r->rotated_from = NULL;
  }
  return rc;
}

/* Write the whole record; on success remember it as saved (unless this is
 * the end-of-request save, after which nothing compares). */
static int save_now(csn_request *r, int remember) {
  csn_session *s = &r->sess;
  const char *txt;
  char *record, *saved = NULL;
  char stackrec[RECORD_SCRATCH];
  size_t len;
  int rc, gone = 0, borrowed = 0;

  if ((txt = current_text(r)) == NULL)
    return CSN_ENOMEM;
  if (!remember) {
    /* The end-of-request save: the store copies the record and nothing
     * keeps it afterwards, so a record that fits is built on the stack,
     * saving an allocation per request. */
    csn__buf b;
    csn__buf_init_fixed(&b, stackrec, sizeof stackrec);
    if (csn__session_record_into(s, txt, r->cur_len, &b) != CSN_OK) {
      csn__buf_free(&b);
      return CSN_ENOMEM;
    }
    borrowed = b.fixed;
    len = b.len;
    record = borrowed ? b.data : csn__buf_steal(&b, NULL);
  } else {
    record = csn__session_record_with(s, txt, &len);
    saved = csn__strdup(txt);
  }
  if (record == NULL || (remember && saved == NULL)) {
    if (!borrowed)
      csn__free(record);
    csn__free(saved);
    return CSN_ENOMEM;
  }
  if (csn__request_can_merge(r)) {
    /* Loaded from a store that can compare-and-set: write only on top of
     * what was loaded, merging with concurrent writers (merge.c). A merge
     * replaces the session's data with what was written. */
    rc = csn__request_save_merged(r, record, len, borrowed, &gone);
    if (rc == CSN_OK && gone)
      r->gone = 1;
    /* adopt() (merge.c) dropped the cached text: what was saved is the
     * merged data now. */
    if (rc == CSN_OK && remember && r->cur_text == NULL) {
      csn__free(saved);
      if ((txt = current_text(r)) == NULL || (saved = csn__strdup(txt)) == NULL)
        return CSN_ENOMEM;
    }
  } else {
    rc = csn__m_store_set(r->ctx, s->id, record, len, s->cookie.expires);
    if (!borrowed)
      csn__free(record);
  }
  /* rotate(): the record under the new id is stored, the old one goes. */
  if (rc == CSN_OK && r->rotated_from != NULL)
    rc = destroy_rotated(r);
  if (rc < 0 || !remember) {
    csn__free(saved);
    return rc;
  }
  csn__free(r->saved_text);
  r->saved_text = saved;
  r->saved_gen = r->mut_gen;
  r->has_saved = 1;
  return CSN_OK;
}

/* A touch carries only the cookie, {"cookie":{...}}: the store refreshes
 * the expiry and the stored cookie but keeps the data members it has, which
 * may have been written by a concurrent request since this one loaded. */
static int touch_now(csn_request *r) {
  csn_session *s = &r->sess;
  char *record;
  size_t len;
  int rc;
  record = csn__session_record_with(s, "{}", &len);
  if (record == NULL)
    return CSN_ENOMEM;
  rc = csn__m_store_touch(r->ctx, s->id, record, len, s->cookie.expires);
  csn__free(record);
  return rc;
}

/* "s:" + id + "." + signature, serialized with the cookie's attributes.
 * isnew: is_new(r), which commit has computed (not new means the id is the
 * verified cookie's). */
static int build_set_cookie(csn_request *r, int isnew, char **out) {
  csn_ctx *ctx = r->ctx;
  csn_session *s = &r->sess;
  char value[2 + CSN_ID_MAX + 1 + CSN__SIG_LEN + 1];
  char sig[CSN__SIG_LEN + 1];
  size_t idlen;
  const char *msg = NULL;
  csn__buf b;
  int rc;

  csn__buf_init(&b);
  if (r->cookie_raw_len > 0 && !isnew) {
    /* The same id as the verified cookie, whose value was already in
     * canonical form: signing and encoding would give it back. */
    rc = csn__set_cookie_serialize_encoded(&b, ctx->name, ctx->name_len,
                                           r->cookie_raw, r->cookie_raw_len,
                                           &s->cookie, &msg);
  } else {
    idlen = strlen(s->id);
    if (r->cookie_sig[0] != '\0' && !isnew)
      memcpy(sig, r->cookie_sig, sizeof sig);
    else
      csn__sign(&ctx->keys[0], s->id, idlen, sig);
    value[0] = 's';
    value[1] = ':';
    memcpy(value + 2, s->id, idlen);
    value[2 + idlen] = '.';
    memcpy(value + 3 + idlen, sig, CSN__SIG_LEN + 1);
    rc = csn__set_cookie_serialize(&b, ctx->name, value,
                                   3 + idlen + CSN__SIG_LEN, &s->cookie,
                                   &msg);
  }
  if (rc < 0) {
    csn__buf_free(&b);
    /* Only a record from another writer can hold such values (options are
     * validated at creation): the response goes on without a cookie, as in
     * express, and the reason is logged. */
    if (rc != CSN_ENOMEM)
      csn_ctx_log(ctx, rc, "cannot serialize the session cookie: %s",
                   msg ? msg : "invalid attribute");
    return rc == CSN_ENOMEM ? rc : CSN_OK;
  }
  *out = csn__buf_steal(&b, NULL);
  return *out ? CSN_OK : CSN_ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Commit                                                                   */
/* ------------------------------------------------------------------------ */

static int commit(csn_request *r, char **set_cookie);

int csn_request_commit(csn_request *r, char **set_cookie) {
  char scratch[CUR_SCRATCH];
  int rc;
  if (r == NULL || r->committed)
    return commit(r, set_cookie);
  /* The data's text may live on this stack while commit runs (see
   * current_text()); nothing may point to it once commit returns. */
  r->cur_scratch = scratch;
  rc = commit(r, set_cookie);
  if (r->cur_text == scratch)
    r->cur_text = NULL;
  r->cur_scratch = NULL;
  return rc;
}

static int commit(csn_request *r, char **set_cookie) {
  csn_ctx *ctx;
  csn_session *s;
  int isnew, same_id, modified, saved, should_save, should_touch;
  int should_cookie, rc;
  char *cookie = NULL;

  /* As in begin: a failure here must not be told with an older message. */
  csn__clear_error();
  if (set_cookie)
    *set_cookie = NULL;
  if (r == NULL)
    return CSN_EINVAL;
  if (r->committed)
    return CSN_OK;
  r->committed = 1;
  ctx = r->ctx;
  s = &r->sess;

  if (!r->has_sid)
    return CSN_OK; /* path did not match: no session at all */

  if (!r->has_session) {
    /* req.session is gone. With unset=destroy the stored copy goes too -
     * but not twice after an explicit destroy(), and not for an id that
     * was never stored (express-session destroys those anyway, see
     * PARITY.md). */
    if (ctx->unset == CSN_UNSET_DESTROY && !r->destroyed &&
        !(is_new(r) && !r->has_saved)) {
      rc = csn__m_store_destroy(ctx, s->id);
      if (rc < 0)
        return rc;
    }
    if (ctx->unset == CSN_UNSET_DESTROY && !r->destroyed)
      return destroy_rotated(r);
    return CSN_OK;
  }

  /* Touch exactly once per request, before any decision (spec 5.5). */
  if (!r->touched) {
    csn__session_touch_cookie(s, csn__ctx_now(ctx));
    r->touched = 1;
  }

  isnew = is_new(r);
  same_id = r->original_id == s->id || strcmp(r->original_id, s->id) == 0;
  if ((modified = is_modified(r, same_id)) < 0)
    return modified;
  if ((saved = is_saved(r, same_id, modified)) < 0)
    return saved;

  if (!ctx->save_uninitialized && !r->has_saved && isnew)
    should_save = modified;
  else
    should_save = !saved;
  should_touch = !isnew && !should_save;
  if (isnew)
    should_cookie = ctx->save_uninitialized || modified;
  else
    should_cookie =
        ctx->rolling || (s->cookie.expires != CSN_TIME_NONE && modified);
  /* A Secure cookie is never sent over an insecure request; the session is
   * still saved (express does the same). */
  if (should_cookie && s->cookie.secure == 1 && !r->secure)
    should_cookie = 0;

  /* touch_after: a request that changed nothing (same id, same data, same
   * maxAge) writes only to push the stored expiry out. Skip that when the
   * stored record was refreshed less than touch_after_ms ago; the cookie
   * decision above stands. */
  if (ctx->touch_after_ms > 0 && (should_save || should_touch) && !isnew &&
      !modified && r->refreshed_at != CSN_TIME_NONE &&
      s->cookie.original_max_age == r->loaded_max_age &&
      csn__ctx_now(ctx) - r->refreshed_at < ctx->touch_after_ms) {
    should_save = should_touch = 0;
    csn__metrics_event(ctx, CSN__EV_TOUCH_SKIPPED);
  }

  /* An explicit save() found the session destroyed by another request
   * (logout wins): nothing more is written and no cookie is sent. */
  if (r->gone)
    return CSN_OK;

  /* The cookie is built before the store is written, so that a failure
   * to build it (out of memory) leaves the stored record as it was. */
  if (should_cookie && (rc = build_set_cookie(r, isnew, &cookie)) < 0)
    return rc;

  if (should_save)
    rc = save_now(r, 0);
  else if (should_touch && ctx->touch_after_ms > 0 &&
           r->refreshed_at != CSN_TIME_NONE && csn__request_can_merge(r))
    /* touch_after reads the last refresh from the stored cookie, and not
     * every store's touch rewrites it (Redis only sends EXPIRE, PostgreSQL
     * and MongoDB only move their expiry column): the refresh that is due
     * is a save of the unchanged data instead, conditional like every
     * save of a loaded session, so that it merges with concurrent writers
     * and never revives a destroyed session. */
    rc = save_now(r, 0);
  else if (should_touch && ctx->store->m->touch != NULL)
    rc = touch_now(r);
  else
    rc = CSN_OK;
  if (rc < 0 || r->gone) {
    /* Failed, or the merged save found the session destroyed meanwhile:
     * a cookie for a session that does not exist is not sent. */
    csn__free(cookie);
    return rc;
  }
  if (set_cookie)
    *set_cookie = cookie;
  else
    csn__free(cookie);
  return CSN_OK;
}

void csn_request_free(csn_request *r) {
  if (r == NULL)
    return;
  csn__free(r->orig_text);
  csn__free(r->saved_text);
  csn__free(r->cur_text);
  csn__request_drop_loaded(r);
  csn__free(r->load_buf);
  csn__free(r->original_own);
  csn__free(r->rotated_from);
  json_decref(r->sess.data);
  csn__cookie_free(&r->sess.cookie);
  csn__free(r);
}

/* ------------------------------------------------------------------------ */
/* Session methods                                                          */
/* ------------------------------------------------------------------------ */

int csn_session_regenerate(csn_session *s) {
  csn_request *r;
  int rc, drc;
  if (s == NULL || s->req == NULL || !s->req->has_sid)
    return CSN_EINVAL;
  r = s->req;
  /* Store.regenerate: destroy the old id, then generate even when the
   * destroy failed, handing its error back. */
  drc = csn__m_store_destroy(r->ctx, s->id);
  /* An id a rotate() left behind goes too: it is the stored one. */
  if (drc == CSN_OK)
    drc = destroy_rotated(r);
  csn__free(r->rotated_from);
  r->rotated_from = NULL;
  if ((rc = keep_original_id(r)) < 0)
    return rc;
  rc = generate(r, NULL);
  if (rc < 0)
    return rc;
  r->destroyed = 0;
  /* The new id was never loaded: its save is a plain write (a login
   * always writes), whatever happened to the old record. */
  csn__request_drop_loaded(r);
  r->gone = 0;
  /* original_id keeps the old id: the new session counts as modified and
   * is always saved with its cookie sent, as in express. */
  return drc;
}

int csn_session_destroy(csn_session *s) {
  csn_request *r;
  int rc;
  if (s == NULL || s->req == NULL)
    return CSN_EINVAL;
  r = s->req;
  if (!r->has_session)
    return CSN_ESTATE;
  r->has_session = 0;
  r->destroyed = 1;
  rc = csn__m_store_destroy(r->ctx, s->id);
  if (rc == CSN_OK)
    rc = destroy_rotated(r);
  return rc;
}

int csn_session_rotate(csn_session *s) {
  csn_request *r;
  char id[CSN_ID_MAX + 2];
  int rc;

  if (s == NULL || s->req == NULL)
    return CSN_EINVAL;
  r = s->req;
  if (!r->has_session)
    return CSN_ESTATE;
  if ((rc = new_id(r, NULL, id)) < 0)
    return rc;
  /* The stored record is the one to destroy once the new one is saved. A
   * rotation still pending keeps its id: the id in between was never
   * stored (a save clears the pending one). A session this request
   * created and never saved has nothing stored. */
  if ((rc = keep_original_id(r)) < 0)
    return rc;
  if (r->rotated_from == NULL && (!is_new(r) || r->has_saved) &&
      (r->rotated_from = csn__strdup(s->id)) == NULL)
    return CSN_ENOMEM;
  strcpy(s->id, id);
  /* Like regenerate: the new id was never loaded, its save is a plain
   * write; original_id keeps the old id, so the session counts as
   * modified, is saved and its cookie sent. */
  csn__request_drop_loaded(r);
  r->gone = 0;
  csn__metrics_event(r->ctx, CSN__EV_ROTATED);
  return CSN_OK;
}

int csn_session_reload(csn_session *s) {
  csn_request *r;
  csn_session fresh;
  char *json = NULL;
  size_t len = 0;
  int rc;

  if (s == NULL || s->req == NULL)
    return CSN_EINVAL;
  r = s->req;
  if (!r->has_session)
    return CSN_ESTATE;
  rc = csn__m_store_get(r->ctx, s->id, &json, &len);
  if (rc == CSN_ENOENT)
    return csn__set_error(CSN_ENOENT, "failed to load session");
  if (rc < 0)
    return rc;
  csn__session_init(&fresh, r);
  rc = csn__session_from_record(&fresh, json, len, NULL);
  if (rc < 0) {
    csn__free(json);
    csn__cookie_free(&fresh.cookie);
    json_decref(fresh.data);
    return rc;
  }
  /* The reloaded text is what a later save builds on. */
  csn__request_drop_loaded(r);
  r->loaded_text = json;
  r->loaded_len = len;
  /* Replacing the data is a change relative to the original. */
  if ((rc = csn__session_will_change(s)) < 0) {
    csn__cookie_free(&fresh.cookie);
    json_decref(fresh.data);
    return rc;
  }
  json_decref(s->data);
  s->data = fresh.data;
  csn__cookie_free(&s->cookie);
  s->cookie = fresh.cookie;
  return CSN_OK;
}

int csn_session_save(csn_session *s) {
  if (s == NULL || s->req == NULL)
    return CSN_EINVAL;
  if (!s->req->has_session)
    return CSN_ESTATE;
  /* After commit the request no longer holds the text it wrote, which a
   * conditional save compares against: a late save could overwrite other
   * requests' changes, so it is refused. */
  if (s->req->committed)
    return csn__set_error(CSN_ESTATE, "csn_session_save after "
                                      "csn_request_commit");
  return save_now(s->req, 1);
}
