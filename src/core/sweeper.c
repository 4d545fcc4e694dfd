/* sweeper.c - the background thread every store uses to remove expired
 * records off the request path.
 *
 * Three stores had written their own, and two of them waited on
 * CLOCK_REALTIME: setting the clock back an hour stalled their sweeps for
 * an hour. Here the condition variable is bound to CLOCK_MONOTONIC, so a
 * wait lasts its interval whatever the wall clock does, and stop() wakes
 * the thread at once instead of waiting the interval out.
 *
 * The jitter spreads sweeps of processes started together (a deploy
 * restarts every app server at once) so that they do not all prune a
 * shared store in the same second. */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "csn_int.h"

struct csn_sweeper {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  int64_t interval_ms;
  int jitter_pct;
  csn_sweep_fn fn;
  void *ud;
  int stop; /* under lock */
  int wake; /* under lock */
  uint64_t rng;
  pid_t owner; /* the process whose thread this is */
};

/* xorshift64*: the jitter needs spread, not secrecy. */
static uint64_t next_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * UINT64_C(2685821657736338717);
}

static int64_t next_wait_ms(csn_sweeper *sw) {
  int64_t span, lo;
  if (sw->jitter_pct == 0)
    return sw->interval_ms;
  span = sw->interval_ms / 100 * sw->jitter_pct +
         sw->interval_ms % 100 * sw->jitter_pct / 100;
  lo = sw->interval_ms - span;
  if (span <= 0)
    return sw->interval_ms;
  return lo + (int64_t)(next_rand(&sw->rng) % (uint64_t)(2 * span + 1));
}

static void *sweeper_main(void *arg) {
  csn_sweeper *sw = arg;
  struct timespec ts;
  pthread_mutex_lock(&sw->lock);
  while (!sw->stop) {
    int rc = 0;
    csn__mono_deadline(&ts, next_wait_ms(sw));
    while (!sw->stop && !sw->wake && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&sw->cond, &sw->lock, &ts);
    if (sw->stop)
      break;
    sw->wake = 0;
    /* The sweep runs unlocked: stop() must be able to set the flag that
     * csn_sweeper_stopping() reads while a long sweep is in progress. */
    pthread_mutex_unlock(&sw->lock);
    sw->fn(sw, sw->ud);
    pthread_mutex_lock(&sw->lock);
  }
  pthread_mutex_unlock(&sw->lock);
  return NULL;
}

int csn_sweeper_start(csn_sweeper **out, int64_t interval_ms, int jitter_pct,
                      csn_sweep_fn fn, void *userdata) {
  csn_sweeper *sw;
  pthread_condattr_t ca;
  int rc;
  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (fn == NULL || interval_ms < 1 || jitter_pct < 0 || jitter_pct > 100)
    return csn__set_error(CSN_EINVAL, "sweeper: bad interval or jitter");
  /* Far beyond any sensible interval, and keeps the deadline arithmetic
   * clear of overflow. */
  if (interval_ms > INT64_C(100) * 365 * 24 * 3600 * 1000)
    interval_ms = INT64_C(100) * 365 * 24 * 3600 * 1000;
  sw = csn__calloc(1, sizeof *sw);
  if (sw == NULL)
    return csn__set_error(CSN_ENOMEM, "sweeper: out of memory");
  sw->interval_ms = interval_ms;
  sw->jitter_pct = jitter_pct;
  sw->fn = fn;
  sw->ud = userdata;
  sw->owner = getpid();
  if (csn__random_bytes(&sw->rng, sizeof sw->rng) != CSN_OK || sw->rng == 0)
    sw->rng = (uint64_t)(uintptr_t)sw | 1;

  if (pthread_mutex_init(&sw->lock, NULL) != 0) {
    csn__free(sw);
    return csn__set_error(CSN_ENOMEM, "sweeper: mutex init failed");
  }
  if (pthread_condattr_init(&ca) != 0) {
    pthread_mutex_destroy(&sw->lock);
    csn__free(sw);
    return csn__set_error(CSN_ENOMEM, "sweeper: condattr init failed");
  }
  rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  if (rc == 0)
    rc = pthread_cond_init(&sw->cond, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0) {
    pthread_mutex_destroy(&sw->lock);
    csn__free(sw);
    return csn__set_error(CSN_ENOMEM, "sweeper: cond init failed");
  }
  if (pthread_create(&sw->thread, NULL, sweeper_main, sw) != 0) {
    pthread_cond_destroy(&sw->cond);
    pthread_mutex_destroy(&sw->lock);
    csn__free(sw);
    return csn__set_error(CSN_EIO, "sweeper: cannot start a thread");
  }
  *out = sw;
  return CSN_OK;
}

int csn_sweeper_stopping(csn_sweeper *sw) {
  int stop;
  if (sw == NULL)
    return 1;
  pthread_mutex_lock(&sw->lock);
  stop = sw->stop;
  pthread_mutex_unlock(&sw->lock);
  return stop;
}

void csn_sweeper_wake(csn_sweeper *sw) {
  if (sw == NULL)
    return;
  pthread_mutex_lock(&sw->lock);
  sw->wake = 1;
  pthread_cond_signal(&sw->cond);
  pthread_mutex_unlock(&sw->lock);
}

void csn_sweeper_stop(csn_sweeper *sw) {
  if (sw == NULL)
    return;
  /* A child of fork() has a copy of the struct but not the thread (only
   * the forking thread survives fork): there is nothing to wake or join,
   * and the lock may have been copied held. Release the memory only.
   * (glibc happens to make a join of a pre-fork thread return at once;
   * POSIX leaves it undefined, so no test can show the difference here.) */
  if (sw->owner != getpid()) {
    csn__free(sw);
    return;
  }
  pthread_mutex_lock(&sw->lock);
  sw->stop = 1;
  pthread_cond_signal(&sw->cond);
  pthread_mutex_unlock(&sw->lock);
  pthread_join(sw->thread, NULL);
  pthread_cond_destroy(&sw->cond);
  pthread_mutex_destroy(&sw->lock);
  csn__free(sw);
}
