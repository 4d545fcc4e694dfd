/* test_clock.h - the clocks and the sleep the tests share: the wall clock
 * in epoch ms (what a store compares expiries with), the monotonic clock in
 * ms (for durations) and a millisecond sleep. Header-only (static inline),
 * for tests only: the library has its own clock (src/core). */
#ifndef CSN_TEST_CLOCK_H
#define CSN_TEST_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds since the epoch (CLOCK_REALTIME). */
static inline int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds on the monotonic clock, for measuring durations. */
static inline int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms milliseconds (resumed after a signal). */
static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

#endif /* CSN_TEST_CLOCK_H */
