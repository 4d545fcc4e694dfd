/* request_rig.h - requests without HTTP, for tests of the core and of
 * stores: begin one with a Cookie header, commit it, and keep what a
 * browser would send back. Public API only (a store author's tests can use
 * it as they are). Include after <cmocka.h>. */
#ifndef CSN_TEST_REQUEST_RIG_H
#define CSN_TEST_REQUEST_RIG_H

#include <stdio.h>
#include <string.h>

#include "csn/csn.h"

/* Begin a request for "/" with `cookie` as its Cookie header (NULL: none);
 * it must succeed. */
static inline csn_request *rig_begin(csn_ctx *ctx, const char *cookie) {
  csn_request_info in;
  csn_request *r = NULL;
  memset(&in, 0, sizeof in);
  in.cookie_header = cookie;
  in.url = "/";
  assert_int_equal(csn_request_begin(ctx, &in, &r), CSN_OK);
  assert_non_null(r);
  return r;
}

/* Commit and free; returns the commit's code. *sc (when sc is not NULL)
 * gets the Set-Cookie value (csn_free), else it is dropped. */
static inline int rig_commit(csn_request *r, char **sc) {
  /* Straight into *sc: copying a local into it made gcc 12 at -O2 report
   * the caller's cookie as a dangling pointer to that local. */
  char *dropped = NULL;
  int rc = csn_request_commit(r, sc != NULL ? sc : &dropped);
  csn_request_free(r);
  csn_free(dropped);
  return rc;
}

/* "name=value" of a Set-Cookie value: what the browser sends back. */
static inline void rig_cookie_of(const char *set_cookie, char *out,
                                 size_t size) {
  size_t n = strcspn(set_cookie, ";");
  assert_true(n < size);
  memcpy(out, set_cookie, n);
  out[n] = '\0';
}

#endif /* CSN_TEST_REQUEST_RIG_H */
