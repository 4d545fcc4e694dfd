/* store_conformance.h - one behaviour suite for every csn_store.
 *
 * A store's test program fills a csn_conformance with a callback that opens
 * a fresh, empty store and calls csn_conformance_run(); the suite then
 * checks, through the public csn_store_* calls, what express-session
 * expects of any store: round trips, overwrite, not-found, touch semantics,
 * expiry on read, administration, hostile ids, big and non-ASCII records,
 * concurrent writers and compare-and-set across two handles. It also
 * exports the thread workers that stores' own tests share (a pool under
 * more threads than connections, a cas counter over two handles). Link the `csn_store_conformance` library (see
 * tests/store.cmake). */
#ifndef CSN_STORE_CONFORMANCE_H
#define CSN_STORE_CONFORMANCE_H

#include <stddef.h>
#include <stdint.h>

#include "csn/csn.h"

typedef struct csn_conformance {
  /* Required: a new store with no records (called before every test). */
  csn_store *(*open)(void *ud);
  /* Optional: wipe the backend before open (a table, a Redis db...). */
  void (*reset)(void *ud);
  /* Optional: the store's clock in epoch ms. NULL: the system clock. */
  int64_t (*now)(void *ud);
  /* Optional: move the store's clock forward. NULL for real-clock stores:
   * expiry is then checked with instants already in the past, never by
   * sleeping. */
  void (*advance)(void *ud, int64_t ms);
  /* Optional: a second handle on the data of the store open() last
   * returned (same table, key prefix, directory, database file...), for the
   * tests across handles. NULL: the store's handles cannot share data (the
   * memory store); those tests are skipped, saying so. */
  csn_store *(*open_again)(void *ud);
  void *ud;
  /* 1: the store must implement compare-and-set (its cas tests then fail
   * rather than skip when it is missing). */
  int cas;
  /* 1: touch only moves the expiry and keeps the stored text byte for byte,
   * its old "cookie" included (connect-redis's EXPIRE). 0: touch replaces
   * the stored "cookie" member with the one it is given. */
  int touch_expiry_only;
  /* 1: the store has no touch (CSN_ENOTSUP) and the touch tests are
   * skipped; 0 (every store here): a CSN_ENOTSUP touch fails them. */
  int no_touch;
  /* 1: the store must implement all_expired (the expired-records test then
   * fails rather than skips when it answers CSN_ENOTSUP). */
  int all_expired;
} csn_conformance;

/* Run the suite as the cmocka group `group`. Returns the number of failed
 * tests (0 = all passed), like cmocka_run_group_tests(). Optional methods
 * (touch, clear, length, all, all_expired) answering CSN_ENOTSUP are
 * skipped. */
int csn_conformance_run(const char *group, const csn_conformance *c);

/* Shared workers, for a store's own tests (call them from a cmocka test:
 * they assert). */

/* `threads` threads on one handle (a pool smaller than that, say), each
 * setting then reading back its own 10 ids ("t<thread>-<0..9>") `rounds`
 * times: every call succeeds and reads its own write, and afterwards
 * csn_store_length() counts threads * 10 records. */
void csn_conformance_threads(csn_store *st, int threads, int rounds);

/* A counter at `sid` ({"cookie":{},"n":0}, written through a), incremented
 * by four threads, two on each handle, 40 times each by get, +1 and
 * compare-and-set retried on CSN_ECONFLICT: none is lost, both handles
 * read n = 160. `exp`: the expiry of every write. The final text goes to
 * final[0..n). a and b may be the same handle. */
#define CSN_CONFORMANCE_CAS_WORKERS 4
#define CSN_CONFORMANCE_CAS_ROUNDS 40
void csn_conformance_cas_counter(csn_store *a, csn_store *b, const char *sid,
                                 int64_t exp, char *final, size_t n);

/* csn_store_all() over records "k0".."k<rows-1>", each {"i":<sep><i>}
 * (sep: "" or the " " a backend's own JSON writer adds), plus any others
 * that all() must skip: each is seen once with exactly its text, and every
 * `get_every`-th one is read back through the store from inside the
 * callback (no connection may be held then). Then a callback returning
 * non-zero after `stop_at` records ends the walk there. */
void csn_conformance_walk(csn_store *st, int rows, const char *sep,
                          int get_every, int stop_at);

#endif /* CSN_STORE_CONFORMANCE_H */
