/* fuzz_store_url.c - opening a store from a URL.
 *
 * Only the schemes that need no server and touch no file system are
 * reachable in this process ("memory://"; "file://" is overridden by a
 * stub, see no_disk()), so the fuzzer
 * explores the URL parser, the scheme lookup and the memory store's query
 * options (max=, prune=) without side effects. Byte 0 picks the size of the
 * error buffer (including 0 and 1) to exercise message truncation.
 * Properties: no crash or leak; a success yields a store that works (one
 * set/get/destroy), a failure leaves *out NULL and a NUL-terminated message
 * that fits the buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

/* "file://" is built into csn_store_open, and a fuzzed path would create
 * directories anywhere on the machine (it did: the first 10-minute run
 * left thousands under / and the working directory). A registered opener
 * overrides a built-in one, so the scheme is taken away here. */
static int no_disk(const char *url, csn_store **out, char *errbuf,
                   size_t errlen) {
  (void)url;
  *out = NULL;
  if (errbuf != NULL && errlen > 0) {
    strncpy(errbuf, "file store disabled in this fuzzer", errlen - 1);
    errbuf[errlen - 1] = '\0';
  }
  return CSN_ENOTSUP;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t errsizes[] = {0, 1, 2, 16, 256};
  static int registered;
  char errbuf[256 + 8];
  size_t errlen;
  char *url;
  csn_store *st = (csn_store *)&errbuf; /* must be overwritten */
  int rc;

  if (!registered) {
    if (csn_store_register("file", no_disk) != CSN_OK)
      abort();
    registered = 1;
  }
  if (size < 1)
    return 0;
  errlen = errsizes[data[0] % CSN__ARRAY_SIZE(errsizes)];
  /* Guard bytes after the declared buffer catch an overlong message. */
  memset(errbuf, 'G', sizeof errbuf);
  url = malloc(size);
  if (url == NULL)
    abort();
  memcpy(url, data + 1, size - 1);
  url[size - 1] = '\0';

  rc = csn_store_open(url, &st, errlen ? errbuf : NULL, errlen);
  for (size_t i = errlen; i < sizeof errbuf; i++)
    if (errbuf[i] != 'G')
      abort();
  if (rc == CSN_OK) {
    char *json = NULL;
    size_t len = 0;
    if (st == NULL)
      abort();
    if (csn_store_set(st, "abc", "{}", 2, CSN_TIME_NONE) != CSN_OK ||
        csn_store_get(st, "abc", &json, &len) != CSN_OK || len != 2 ||
        memcmp(json, "{}", 2) != 0 || csn_store_destroy(st, "abc") != CSN_OK)
      abort();
    csn_free(json);
    csn_store_free(st);
  } else {
    if (rc >= 0 || st != NULL)
      abort();
    if (errlen > 0 && memchr(errbuf, '\0', errlen) == NULL)
      abort();
  }
  free(url);
  return 0;
}
