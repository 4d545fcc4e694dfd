/* error.c - error codes, their names and messages, the per-thread "last
 * error" text, and the library version. */
#include <stdarg.h>
#include <stdio.h>

#include "csn_int.h"

/* One X-macro (CSN_ERRNO_MAP in csn.h) yields the enum, the names and the
 * messages, so the three can never disagree (libuv's UV_ERRNO_MAP). */
const char *csn_strerror(int err) {
  switch (err) {
  case CSN_OK:
    return "success";
#define CSN__STRERROR_CASE(name, val, msg) \
  case CSN_##name:                         \
    return msg;
    CSN_ERRNO_MAP(CSN__STRERROR_CASE)
#undef CSN__STRERROR_CASE
  default:
    return "unknown error";
  }
}

const char *csn_err_name(int err) {
  switch (err) {
  case CSN_OK:
    return "OK";
#define CSN__NAME_CASE(name, val, msg) \
  case CSN_##name:                     \
    return #name;
    CSN_ERRNO_MAP(CSN__NAME_CASE)
#undef CSN__NAME_CASE
  default:
    return "UNKNOWN";
  }
}

/* Each thread has its own text so that a worker's failure message cannot be
 * overwritten by another worker between the failing call and the caller's
 * csn_last_error(). 512 bytes is plenty for a store's one-line message; a
 * longer one is truncated, never overflowed. */
static _Thread_local char csn__last_error[512];

const char *csn_last_error(void) { return csn__last_error; }

int csn__set_error(int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  /* vsnprintf always NUL-terminates within the size it is given. */
  vsnprintf(csn__last_error, sizeof csn__last_error, fmt, ap);
  va_end(ap);
  return err;
}

void csn__clear_error(void) { csn__last_error[0] = '\0'; }

unsigned int csn_version(void) { return CSN_VERSION_HEX; }

const char *csn_version_string(void) { return CSN_VERSION_STRING; }
