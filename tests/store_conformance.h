/* store_conformance.h - one behaviour suite for every csn_store.
 *
 * A store's test program fills a csn_conformance with a callback that opens
 * a fresh, empty store and calls csn_conformance_run(); the suite then
 * checks, through the public csn_store_* calls, what express-session
 * expects of any store: round trips, overwrite, not-found, touch semantics,
 * expiry on read, administration, hostile ids, big and non-ASCII records
 * and concurrent writers. Link the `csn_store_conformance` library (see
 * tests/store.cmake). */
#ifndef CSN_STORE_CONFORMANCE_H
#define CSN_STORE_CONFORMANCE_H

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
  void *ud;
  /* 1: the store must implement compare-and-set (its cas tests then fail
   * rather than skip when it is missing). */
  int cas;
  /* 1: touch only moves the expiry and keeps the stored text byte for byte,
   * its old "cookie" included (connect-redis's EXPIRE). 0: touch replaces
   * the stored "cookie" member with the one it is given. */
  int touch_expiry_only;
} csn_conformance;

/* Run the suite as the cmocka group `group`. Returns the number of failed
 * tests (0 = all passed), like cmocka_run_group_tests(). Optional methods
 * (touch, clear, length, all) answering CSN_ENOTSUP are skipped. */
int csn_conformance_run(const char *group, const csn_conformance *c);

#endif /* CSN_STORE_CONFORMANCE_H */
