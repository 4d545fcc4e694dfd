/* pool.c - the connection pool of the store kit (csn_store.h).
 *
 * The Redis and PostgreSQL stores had each written the same pool: an idle
 * stack with give-back instants, lazy connects up to a limit, a bounded
 * wait on CLOCK_MONOTONIC, a check of an idle connection before reuse and
 * one replay of an idempotent operation that met a stale connection. This
 * is that pool once, with the client library behind four callbacks.
 *
 * n_open counts every connection that exists or is being opened: the idle
 * ones and the borrowed ones. A worker that pops an idle connection keeps
 * its slot, also when it replaces it with a new one; a failed connect
 * gives the slot back and wakes a waiter. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "csn_int.h"

struct csn_pool {
  csn_pool_methods m;
  void *ud;
  csn_store *st;
  char *label;
  int64_t wait_ms, check_after_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a connection was given back or a slot freed */
  void **idle;       /* stack of max */
  int64_t *idle_at;  /* when each was given back (csn_mono_ms) */
  unsigned n_idle, n_open, max;
};

int csn_pool_new(csn_pool **out, const csn_pool_methods *m, void *ud,
                 csn_store *st, const char *label, unsigned max,
                 int64_t wait_ms, int64_t check_after_ms) {
  csn_pool *p;
  pthread_condattr_t ca;
  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (m == NULL || m->connect == NULL || m->idle_ok == NULL ||
      m->close == NULL || st == NULL || label == NULL || max == 0 ||
      wait_ms < 0 || check_after_ms < 0)
    return CSN_EINVAL;
  p = csn_malloc(sizeof *p);
  if (p == NULL)
    return CSN_ENOMEM;
  memset(p, 0, sizeof *p);
  p->m = *m;
  p->ud = ud;
  p->st = st;
  p->max = max;
  p->wait_ms = wait_ms;
  p->check_after_ms = check_after_ms;
  p->label = csn_strdup(label);
  p->idle = csn_malloc(max * sizeof p->idle[0]);
  p->idle_at = csn_malloc(max * sizeof p->idle_at[0]);
  if (p->label == NULL || p->idle == NULL || p->idle_at == NULL) {
    csn_free(p->label);
    csn_free(p->idle);
    csn_free(p->idle_at);
    csn_free(p);
    return CSN_ENOMEM;
  }
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  *out = p;
  return CSN_OK;
}

void csn_pool_free(csn_pool *p) {
  if (p == NULL)
    return;
  for (unsigned i = 0; i < p->n_idle; i++)
    p->m.close(p->ud, p->idle[i]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  csn_free(p->idle);
  csn_free(p->idle_at);
  csn_free(p->label);
  csn_free(p);
}

/* Borrow a connection: an idle one, or a new one while the pool has room;
 * otherwise wait up to wait_ms. `fresh` never hands out an idle one (the
 * retry after a stale one): it replaces it. `check` checks the idle one
 * whatever its age (an operation that is not replayed). */
static int conn_get(csn_pool *p, int fresh, int check, csn_pool_conn *c) {
  struct timespec deadline;
  int waiting = 0;
  void *old = NULL;
  int have_old = 0, rc;
  int64_t idle_ms = 0;
  memset(c, 0, sizeof *c);
  pthread_mutex_lock(&p->mu);
  while (p->n_idle == 0 && p->n_open >= p->max) {
    if (!waiting) { /* the clock is read only when a wait is due */
      csn__mono_deadline(&deadline, p->wait_ms);
      waiting = 1;
    }
    if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT &&
        p->n_idle == 0 && p->n_open >= p->max) {
      pthread_mutex_unlock(&p->mu);
      return csn_store_set_error(
          p->st, CSN_ETIMEDOUT,
          "%s: all %u connections busy for %lld ms (raise pool=)", p->label,
          p->max, (long long)p->wait_ms);
    }
  }
  if (p->n_idle > 0) {
    /* The slot stays counted in n_open: a replacement reuses it. */
    old = p->idle[--p->n_idle];
    idle_ms = csn_mono_ms() - p->idle_at[p->n_idle];
    have_old = 1;
  } else {
    p->n_open++;
  }
  pthread_mutex_unlock(&p->mu);
  /* Checking may cost a syscall. An idempotent operation is replayed if
   * its connection turns out stale, so for it only one idle long enough
   * to be likely dead is checked (saving the wasted round trip); one that
   * is never replayed always checks. */
  if (have_old && !fresh &&
      ((!check && idle_ms < p->check_after_ms) || p->m.idle_ok(p->ud, old))) {
    c->handle = old;
    c->reused = 1;
    return CSN_OK;
  }
  if (have_old)
    p->m.close(p->ud, old);
  rc = p->m.connect(p->ud, &c->handle);
  if (rc != CSN_OK) {
    c->handle = NULL;
    pthread_mutex_lock(&p->mu);
    p->n_open--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  return rc;
}

/* Give a connection back, or close it if it failed. */
static void conn_put(csn_pool *p, csn_pool_conn *c) {
  int drop = c->broken ||
             (p->m.usable != NULL && !p->m.usable(p->ud, c->handle));
  pthread_mutex_lock(&p->mu);
  if (drop) {
    p->n_open--;
  } else {
    p->idle_at[p->n_idle] = csn_mono_ms();
    p->idle[p->n_idle++] = c->handle;
  }
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  if (drop)
    p->m.close(p->ud, c->handle);
  c->handle = NULL;
}

int csn_pool_run(csn_pool *p, csn_pool_op op, void *arg, int idempotent) {
  int rc;
  if (p == NULL || op == NULL)
    return CSN_EINVAL;
  for (int attempt = 0;; attempt++) {
    csn_pool_conn c;
    int again;
    rc = conn_get(p, attempt > 0, !idempotent, &c);
    if (rc != CSN_OK)
      break;
    rc = op(p->ud, &c, arg);
    again = rc != CSN_OK && idempotent && attempt == 0 && c.stale;
    conn_put(p, &c);
    if (!again)
      break;
  }
  return rc;
}
