/* merge.c - saves that do not lose concurrent requests' changes.
 *
 * express-session saves the whole record at the end of every request. Two
 * requests on one session (two tabs, an XHR burst) each load the record,
 * each change a different member, and the later save erases the earlier
 * change; a logout racing a slow request is undone by the slow request's
 * save. Every Node store inherits this (express-session #361, #606, #632;
 * connect-redis #75, #328).
 *
 * Here a save of a session that this request loaded from a store with
 * compare-and-set is conditional: it writes only if the stored text is
 * still the text this request loaded (csn_store_cas). When another writer
 * got there first:
 *
 *   1. the fresh record is read;
 *   2. this request's own changes are applied to it: the top-level members
 *      whose value differs between the data as loaded (orig_text, captured
 *      before the first change) and the data now, set or deleted - nothing
 *      else, so members this request only read keep the other writer's
 *      value;
 *   3. the result, with this request's cookie, is written conditionally
 *      on the fresh text, and the loop goes on until a write succeeds or
 *      MERGE_ATTEMPTS are spent (CSN_ECONFLICT, a 500 for the adapter).
 *
 * A record that has disappeared (destroyed by a logout, or expired) stays
 * gone: the save is dropped and no cookie is sent. A request that created
 * or regenerated its session never takes this path (its id was not in the
 * store), so a login still writes.
 *
 * The changes are derived by comparing texts rather than recorded by every
 * setter: the comparison costs nothing on the common path (it runs only on
 * a conflict) and it also covers clear(), reload() and set_json() without
 * each of them having to report what it touched. A member set to the value
 * it had at load counts as unchanged, so a concurrent writer's change to it
 * wins - the outcome that loses no write.
 *
 * Records written by Node (whole-record saves) are simply conflicts that
 * the merge absorbs. The record format is unchanged. */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "csn_int.h"
#include "metrics.h"

/* Bounded so that a pathological store cannot keep a worker forever, and
 * high enough that starvation is out of reach: with w writers on one
 * session a given attempt loses to another with a chance of about
 * (w-1)/w, so 8 writers all retrying give one request a chance of
 * (7/8)^256, about 1e-15, of running out. (At 64 attempts the lost-update
 * probe, 8 clients x 100 requests on the file store, saw a few.) */
#define MERGE_ATTEMPTS 256

/* Between attempts: first just let the winner run; then a short random
 * pause so that writers stop colliding in lockstep. The pause stays short
 * (at most 2 ms, about one durable write): a retrying request must not
 * lose its turn to requests that arrive fresh, and every conflict means
 * some writer succeeded, so there is no livelock to break. */
static void backoff(int attempt) {
  unsigned short rnd = 0;
  struct timespec ts;
  long max_us;
  if (attempt < 4) {
    sched_yield();
    return;
  }
  max_us = attempt * 20L < 2000L ? attempt * 20L : 2000L;
  (void)csn__random_bytes(&rnd, sizeof rnd);
  ts.tv_sec = 0;
  ts.tv_nsec = (long)(rnd % (max_us + 1)) * 1000L;
  nanosleep(&ts, NULL);
}

/* Apply to `fresh` (the other writer's data) the changes between `orig`
 * and `cur` (this request's data at load and now). */
static int apply_changes(json_t *fresh, json_t *orig, json_t *cur) {
  const char *key;
  json_t *v;
  void *tmp;
  json_object_foreach(cur, key, v) {
    json_t *o = json_object_get(orig, key);
    if (o == NULL || !json_equal(o, v))
      if (json_object_set(fresh, key, v) != 0)
        return CSN_ENOMEM;
  }
  json_object_foreach_safe(orig, tmp, key, v) {
    if (json_object_get(cur, key) == NULL)
      json_object_del(fresh, key);
  }
  return CSN_OK;
}

/* Compact data text of a cookie-less object, "{}" when empty. */
static char *data_text_of(json_t *obj) {
  csn__buf b;
  csn__buf_init(&b);
  if (json_object_size(obj) == 0)
    csn__buf_puts(&b, "{}");
  else
    csn__json_dump(&b, obj);
  return csn__buf_steal(&b, NULL);
}

/* One merge step's result: the record to try next, and - for adopting it
 * once written - the merged data and the other writer's data text. */
typedef struct merge_step {
  char *record;
  size_t len;
  json_t *data;     /* merged data (cookie-less object) */
  char *base_text;  /* the fresh record's data text, before our changes */
} merge_step;

static void step_free(merge_step *m) {
  csn__free(m->record);
  json_decref(m->data);
  csn__free(m->base_text);
  memset(m, 0, sizeof *m);
}

/* The record to try next: the fresh record's data with this request's
 * changes, under this request's cookie. CSN_ECORRUPT when the fresh record
 * is unusable (then the caller overwrites it, as a plain save would). */
static int merged_record(csn_request *r, const char *fresh, size_t flen,
                         merge_step *out) {
  json_t *froot, *orig = NULL;
  char *data_text;
  int rc = CSN_OK;

  memset(out, 0, sizeof *out);
  froot = csn__json_parse(fresh, flen, &rc);
  if (froot == NULL)
    return rc == CSN_ENOMEM ? CSN_ENOMEM : CSN_ECORRUPT;
  if (!json_is_object(froot)) {
    json_decref(froot);
    return CSN_ECORRUPT;
  }
  json_object_del(froot, "cookie");
  if ((out->base_text = data_text_of(froot)) == NULL) {
    json_decref(froot);
    return CSN_ENOMEM;
  }

  /* No change since load (a resave, or a touch-like save): nothing to
   * apply, the fresh data is kept as it is. */
  if (r->mut_gen != 0 && (r->orig_text != NULL || r->orig_tail != NULL)) {
    if (csn__request_own_orig(r) != CSN_OK) {
      json_decref(froot);
      step_free(out);
      return CSN_ENOMEM;
    }
    orig = csn__json_parse(r->orig_text, strlen(r->orig_text), &rc);
    if (orig == NULL) {
      json_decref(froot);
      step_free(out);
      return rc == CSN_ENOMEM ? CSN_ENOMEM : CSN_ECORRUPT;
    }
    rc = apply_changes(froot, orig, r->sess.data);
    json_decref(orig);
    if (rc != CSN_OK) {
      json_decref(froot);
      step_free(out);
      return rc;
    }
  }
  out->data = froot;
  if ((data_text = data_text_of(froot)) == NULL) {
    step_free(out);
    return CSN_ENOMEM;
  }
  out->record = csn__session_record_with(&r->sess, data_text, &out->len);
  csn__free(data_text);
  if (out->record == NULL) {
    step_free(out);
    return CSN_ENOMEM;
  }
  return CSN_OK;
}

/* After a merged record was written, the request goes on from it: its data
 * becomes the merged data (it now sees the other writer's members), and
 * the base its own changes are measured from becomes the other writer's
 * data, so that a later save re-applies this request's changes and no
 * more - never an old value of a member it did not change. */
static void adopt(csn_request *r, merge_step *m) {
  json_decref(r->sess.data);
  r->sess.data = m->data;
  m->data = NULL;
  if (r->orig_text != NULL || r->orig_tail != NULL) {
    csn__free(r->orig_text);
    r->orig_text = m->base_text;
    r->orig_tail = NULL;
    m->base_text = NULL;
  }
  csn__request_drop_cur(r);
}

int csn__request_can_merge(const csn_request *r) {
  return !r->ctx->last_write_wins && r->loaded_text != NULL &&
         csn_store_has_cas(r->ctx->store);
}

/* step_free() for a step whose record may be the caller's. */
static void step_release(merge_step *m, const char *borrowed) {
  if (borrowed != NULL && m->record == borrowed)
    m->record = NULL;
  step_free(m);
}

/* Requests of this process that lost a cas on the same session take turns:
 * after its first conflict a request holds its session's stripe for the
 * rest of its attempts. Without it, with a durable store (every write
 * holds the record for an fsync) and 16 workers, one of 8 requests on
 * one session now and then lost all 256 attempts to the others; with it,
 * the losers of one process retry one at a time and only first attempts
 * and other processes race them. First attempts take no lock: the common
 * case, no conflict, stays lock-free. */
#define MERGE_STRIPES 64
static pthread_mutex_t merge_stripe[MERGE_STRIPES];
static pthread_once_t merge_stripe_once = PTHREAD_ONCE_INIT;

static void merge_stripes_init(void) {
  for (int i = 0; i < MERGE_STRIPES; i++)
    pthread_mutex_init(&merge_stripe[i], NULL);
}

/* A child of fork() has only the forking thread: a stripe another thread
 * held is started afresh. */
static void merge_stripes_atfork_child(void) { merge_stripes_init(); }

static void merge_stripes_once(void) {
  merge_stripes_init();
  pthread_atfork(NULL, NULL, merge_stripes_atfork_child);
}

static pthread_mutex_t *merge_stripe_for(const char *sid) {
  uint32_t h = 2166136261u; /* FNV-1a: spreading ids, not a defence */
  for (const unsigned char *p = (const unsigned char *)sid; *p; p++)
    h = (h ^ *p) * 16777619u;
  pthread_once(&merge_stripe_once, merge_stripes_once);
  return &merge_stripe[h % MERGE_STRIPES];
}

static int save_merged(csn_request *r, char *record, size_t len,
                       int borrowed, int *gone, pthread_mutex_t **held);

int csn__request_save_merged(csn_request *r, char *record, size_t len,
                             int borrowed, int *gone) {
  pthread_mutex_t *held = NULL;
  int rc = save_merged(r, record, len, borrowed, gone, &held);
  if (held != NULL)
    pthread_mutex_unlock(held);
  return rc;
}

static int save_merged(csn_request *r, char *record, size_t len,
                       int borrowed, int *gone, pthread_mutex_t **held) {
  const char *mine = borrowed ? record : NULL;
  csn_store *st = r->ctx->store;
  const char *sid = r->sess.id;
  char *expected = r->loaded_text, *owned_expected = NULL;
  size_t elen = r->loaded_len;
  merge_step step;
  int attempt, rc;

  memset(&step, 0, sizeof step);
  step.record = record;
  step.len = len;
  *gone = 0;
  for (attempt = 0; attempt < MERGE_ATTEMPTS; attempt++) {
    char *fresh = NULL;
    size_t flen = 0;
    merge_step next;

    rc = csn__m_store_cas(r->ctx, sid, expected, elen, step.record,
                          step.len, r->sess.cookie.expires);
    if (rc == CSN_OK) {
      /* Written over a concurrent change: a conflict resolved. */
      if (attempt > 0)
        csn__metrics_event(r->ctx, CSN__EV_MERGED);
      /* What is stored now is the base of this request's next save. */
      csn__free(owned_expected);
      csn__request_drop_loaded(r);
      /* A borrowed record is gone with the caller's frame: nothing is
       * kept (no later save follows the end-of-request one). */
      if (step.record != mine) {
        r->loaded_text = step.record;
        r->loaded_len = step.len;
      }
      step.record = NULL;
      if (step.data != NULL)
        adopt(r, &step);
      step_free(&step);
      return CSN_OK;
    }
    if (rc == CSN_ENOENT)
      break;
    if (rc != CSN_ECONFLICT)
      goto fail;
    if (*held == NULL) {
      *held = merge_stripe_for(sid);
      pthread_mutex_lock(*held);
    }

    /* Pause before reading, never between the read and the next cas: a
     * pause there only gives the other writers time to make what was
     * read stale again. With a durable store every write holds the
     * record's lock for an fsync, so the window matters: a CI run saw one
     * of 8 requests on one session (file store, 16 workers) lose 256
     * attempts in a row while the pause sat between read and cas. */
    backoff(attempt);
    rc = csn__m_store_get(r->ctx, sid, &fresh, &flen);
    if (rc == CSN_ENOENT)
      break;
    if (rc < 0)
      goto fail;
    rc = merged_record(r, fresh, flen, &next);
    if (rc == CSN_ECORRUPT) {
      /* The other writer left something that is no session record: there
       * is nothing to merge with, so this request's record replaces it,
       * conditionally still. */
      memset(&next, 0, sizeof next);
      next.record = csn__malloc(step.len + 1);
      if (next.record == NULL) {
        rc = CSN_ENOMEM;
      } else {
        memcpy(next.record, step.record, step.len + 1);
        next.len = step.len;
        rc = CSN_OK;
      }
    }
    if (rc != CSN_OK) {
      csn__free(fresh);
      goto fail;
    }
    step_release(&step, mine);
    step = next;
    csn__free(owned_expected);
    owned_expected = expected = fresh;
    elen = flen;
  }
  csn__free(owned_expected);
  step_release(&step, mine);
  if (attempt < MERGE_ATTEMPTS) {
    /* Destroyed (or expired) since this request loaded it: logout wins. */
    *gone = 1;
    csn__metrics_event(r->ctx, CSN__EV_MERGE_GONE);
    return CSN_OK;
  }
  return csn__set_error(CSN_ECONFLICT,
                        "%s: session changed concurrently %d times in a row; "
                        "not saved",
                        csn_store_name(st), MERGE_ATTEMPTS);

fail:
  csn__free(owned_expected);
  step_release(&step, mine);
  return rc;
}
