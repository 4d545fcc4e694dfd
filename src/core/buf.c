/* buf.c - a growable byte buffer.
 *
 * Builders (Set-Cookie headers, JSON records) append many small pieces and
 * would otherwise check every call. Instead the buffer remembers an
 * allocation failure in `oom`: from then on every append is a no-op that
 * returns CSN_ENOMEM, and csn__buf_steal() hands back NULL, so a builder
 * may check once at the end. The contents are always NUL-terminated when
 * data is not NULL. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "csn_int.h"

#define CSN__BUF_MIN 64

void csn__buf_init(csn__buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->oom = 0;
  b->fixed = 0;
}

void csn__buf_init_fixed(csn__buf *b, char *storage, size_t cap) {
  b->data = storage;
  b->len = 0;
  b->cap = cap;
  b->oom = 0;
  b->fixed = 1;
  storage[0] = '\0';
}

/* Make room for `extra` more bytes plus the terminating NUL. */
int csn__buf_reserve(csn__buf *b, size_t extra) {
  size_t need, cap;
  char *p;

  if (b->oom)
    return CSN_ENOMEM;
  /* len + extra + 1 must not wrap; a request that large is an OOM. */
  if (extra > SIZE_MAX - 1 - b->len) {
    b->oom = 1;
    return CSN_ENOMEM;
  }
  need = b->len + extra + 1;
  if (need <= b->cap)
    return CSN_OK;
  /* Doubling keeps appends amortised O(1); stop doubling before it wraps. */
  cap = b->cap ? b->cap : CSN__BUF_MIN;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (b->fixed) {
    /* Out of the caller's storage: onto the heap, contents and NUL. */
    p = csn__malloc(cap);
    if (p != NULL) {
      memcpy(p, b->data, b->len + 1);
      b->fixed = 0;
    }
  } else {
    p = csn__realloc(b->data, cap);
  }
  if (p == NULL) {
    b->oom = 1;
    return CSN_ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return CSN_OK;
}

/* csn__buf_append() and csn__buf_putc() (csn_int.h) handle the case with
 * room inline and call these for the rest: growing, or failing once the
 * buffer is out of memory. */
int csn__buf_append_slow(csn__buf *b, const char *s, size_t n) {
  int rc = csn__buf_reserve(b, n);
  if (rc != CSN_OK)
    return rc;
  if (n > 0) /* s may be NULL for an empty piece */
    memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return CSN_OK;
}

int csn__buf_putc_slow(csn__buf *b, char c) {
  return csn__buf_append_slow(b, &c, 1);
}

int csn__buf_puts(csn__buf *b, const char *s) {
  return csn__buf_append(b, s, strlen(s));
}

int csn__buf_printf(csn__buf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  size_t room;

  if (b->oom)
    return CSN_ENOMEM;
  /* First try in the room we have; if the text is longer, vsnprintf told us
   * its length, so one reserve and a second pass always suffice. */
  room = b->cap > b->len ? b->cap - b->len : 0;
  va_start(ap, fmt);
  n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n < 0)
    return CSN_EINVAL;
  if ((size_t)n >= room) {
    int rc = csn__buf_reserve(b, (size_t)n);
    if (rc != CSN_OK) {
      /* The first pass may have written a truncated tail; re-terminate. */
      if (b->data != NULL)
        b->data[b->len] = '\0';
      return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
  return CSN_OK;
}

char *csn__buf_steal(csn__buf *b, size_t *len) {
  char *p;

  if (b->oom) {
    csn__buf_free(b);
    return NULL;
  }
  /* An untouched buffer still yields a real (empty) string. */
  if (b->data == NULL && csn__buf_reserve(b, 0) != CSN_OK) {
    csn__buf_free(b);
    return NULL;
  }
  b->data[b->len] = '\0';
  p = b->data;
  if (b->fixed) {
    /* The caller's storage is not ours to hand over: a copy is. */
    if ((p = csn__malloc(b->len + 1)) == NULL) {
      csn__buf_init(b);
      return NULL;
    }
    memcpy(p, b->data, b->len + 1);
  }
  if (len != NULL)
    *len = b->len;
  csn__buf_init(b);
  return p;
}

void csn__buf_free(csn__buf *b) {
  if (!b->fixed)
    csn__free(b->data);
  csn__buf_init(b);
}
