/* group.c - group commit for stores (csn_store.h, "Group commit").
 *
 * The SQLite store (one transaction and one WAL fsync per batch of saves)
 * and the file store (one directory fsync per batch of renames) each had
 * this leader-and-followers loop of their own. The queue keeps arrival
 * order, which the SQLite store needs (its batch runs the saves in the
 * order they came).
 *
 * The leader marks a batch done under the mutex, after fn returned, and a
 * writer reads its mark under the same mutex: whatever fn wrote into the
 * writer's record is visible to it when it returns. The leader reads a
 * member's `next` before marking it done, since its writer may return and
 * its stack frame go at once. */
#include <pthread.h>

#include "csn_int.h"

struct csn_group {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  csn_group_member *head, *tail; /* waiting for the next batch */
  int busy;                      /* a batch is running */
  csn_group_fn fn;
  void *ud;
};

int csn_group_new(csn_group **out, csn_group_fn fn, void *userdata) {
  csn_group *g;
  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (fn == NULL)
    return csn__set_error(CSN_EINVAL, "group: no function");
  g = csn__calloc(1, sizeof *g);
  if (g == NULL)
    return csn__set_error(CSN_ENOMEM, "group: out of memory");
  if (pthread_mutex_init(&g->mu, NULL) != 0) {
    csn__free(g);
    return csn__set_error(CSN_EIO, "group: cannot create a mutex");
  }
  if (pthread_cond_init(&g->cv, NULL) != 0) {
    pthread_mutex_destroy(&g->mu);
    csn__free(g);
    return csn__set_error(CSN_EIO, "group: cannot create a condition "
                                   "variable");
  }
  g->fn = fn;
  g->ud = userdata;
  *out = g;
  return CSN_OK;
}

void csn_group_join(csn_group *g, csn_group_member *me) {
  me->next = NULL;
  me->done_ = 0;
  pthread_mutex_lock(&g->mu);
  if (g->tail != NULL)
    g->tail->next = me;
  else
    g->head = me;
  g->tail = me;
  while (!me->done_) {
    csn_group_member *batch;
    if (g->busy) {
      pthread_cond_wait(&g->cv, &g->mu);
      continue;
    }
    /* No run in flight: lead everything queued (ours included); whoever
     * queues from now on waits for the next batch. */
    g->busy = 1;
    batch = g->head;
    g->head = g->tail = NULL;
    pthread_mutex_unlock(&g->mu);
    g->fn(batch, g->ud);
    pthread_mutex_lock(&g->mu);
    while (batch != NULL) {
      csn_group_member *next = batch->next; /* before done: it may return */
      batch->done_ = 1;
      batch = next;
    }
    g->busy = 0;
    pthread_cond_broadcast(&g->cv);
  }
  pthread_mutex_unlock(&g->mu);
}

void csn_group_free(csn_group *g) {
  if (g == NULL)
    return;
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  csn__free(g);
}
