/* alloc.c - the allocator hook.
 *
 * Every byte csession allocates goes through csn__malloc() & co., so an
 * application can route the library (and jansson, which builds our JSON)
 * into its own allocator, and the tests can make allocation N fail to prove
 * that every path reports CSN_ENOMEM and leaks nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "csn_int.h"

/* The hook is read without locking: csn_set_allocator() is documented as
 * "call once, before other threads run", like hiredis' hiredisSetAllocators.
 */
static csn_allocator csn__alloc = {malloc, calloc, realloc, free};

/* jansson takes a (malloc, free) pair; these forward to whatever hook is in
 * force at the time of the call, so JSON memory follows the same rule as
 * ours. */
static void *json_malloc_hook(size_t size) { return csn__malloc(size); }
static void json_free_hook(void *ptr) { csn__free(ptr); }

int csn_set_allocator(const csn_allocator *a) {
  if (a == NULL) {
    csn__alloc.malloc_fn = malloc;
    csn__alloc.calloc_fn = calloc;
    csn__alloc.realloc_fn = realloc;
    csn__alloc.free_fn = free;
    json_set_alloc_funcs(malloc, free);
    return CSN_OK;
  }
  if (a->malloc_fn == NULL || a->calloc_fn == NULL || a->realloc_fn == NULL ||
      a->free_fn == NULL)
    return csn__set_error(CSN_EINVAL, "allocator has a NULL member");
  csn__alloc = *a;
  json_set_alloc_funcs(json_malloc_hook, json_free_hook);
  return CSN_OK;
}

/* A zero-byte request is turned into one byte so that NULL always means
 * "out of memory" to our callers (malloc(0) may legally return NULL). */
void *csn__malloc(size_t size) {
  return csn__alloc.malloc_fn(size ? size : 1);
}

void *csn__calloc(size_t n, size_t size) {
  if (n == 0 || size == 0) {
    n = 1;
    size = 1;
  }
  /* The C library checks n * size for overflow, a user hook may not. */
  if (size > SIZE_MAX / n)
    return NULL;
  return csn__alloc.calloc_fn(n, size);
}

void *csn__realloc(void *ptr, size_t size) {
  return csn__alloc.realloc_fn(ptr, size ? size : 1);
}

void csn__free(void *ptr) {
  if (ptr != NULL)
    csn__alloc.free_fn(ptr);
}

void csn_free(void *ptr) { csn__free(ptr); }

char *csn__strndup(const char *s, size_t n) {
  char *p;
  if (s == NULL)
    return NULL;
  /* n + 1 cannot wrap for a real object, but a caller's bogus n could. */
  if (n == SIZE_MAX)
    return NULL;
  p = csn__malloc(n + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *csn__strdup(const char *s) {
  if (s == NULL)
    return NULL;
  return csn__strndup(s, strlen(s));
}

void *csn_malloc(size_t size) {
  return csn__malloc(size);
}

char *csn_strdup(const char *s) {
  return csn__strdup(s);
}

void csn_free_secret(char *s) {
  if (s == NULL)
    return;
  OPENSSL_cleanse(s, strlen(s));
  csn_free(s);
}
