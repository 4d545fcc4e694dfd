/* fuzz_cookie_header.c - the Cookie request header parser.
 *
 * Input layout: byte 0 selects the cookie name (one of a few fixed names, or
 * the next (byte0 & 15) + 1 input bytes); the rest is the header, passed
 * with its length and without a terminating NUL so that ASan catches any
 * read past the end.
 *
 * Besides "no crash", the harness checks the answer against a small model of
 * cookie@0.7.2 parse() written from the spec (section 2.4) and from that
 * package's loop: find '=' from the current index, find ';', backtrack to
 * the last ';' before the '=' when the '=' lies beyond it, trim spaces and
 * tabs, keep the first occurrence, strip one pair of surrounding double
 * quotes. Any disagreement aborts, so the fuzzer reports it as a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

static const char *const fixed_names[] = {"connect.sid", "sid", "a", "s"};

static int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

/* Index of c in s[from, n), or -1 (String#indexOf). */
static long index_of(const char *s, size_t n, size_t from, char c) {
  for (size_t i = from; i < n; i++)
    if (s[i] == c)
      return (long)i;
  return -1;
}

/* The model. Returns 1 with the value's offset and length, or 0. */
static int model_find(const char *h, size_t len, const char *name,
                      size_t nlen, size_t *voff, size_t *vlen) {
  size_t index = 0;
  if (len < 2)
    return 0;
  do {
    long eq = index_of(h, len, index, '=');
    long semi;
    size_t end, ks, ke, vs, ve;
    if (eq < 0)
      break;
    semi = index_of(h, len, index, ';');
    if (semi < 0) {
      end = len;
    } else if (eq > semi) {
      /* Backtrack: restart just after the last ';' before the '='. */
      long i = eq - 1;
      while (i >= 0 && h[i] != ';')
        i--;
      index = (size_t)(i + 1);
      continue;
    } else {
      end = (size_t)semi;
    }
    /* Key: trim from the left (startIndex) and right (endIndex). */
    ks = index;
    while (ks < (size_t)eq && is_ws((unsigned char)h[ks]))
      ks++;
    ke = (size_t)eq;
    while (ke > ks && is_ws((unsigned char)h[ke - 1]))
      ke--;
    if (ke - ks == nlen && memcmp(h + ks, name, nlen) == 0) {
      vs = (size_t)eq + 1;
      while (vs < end && is_ws((unsigned char)h[vs]))
        vs++;
      ve = end;
      while (ve > vs && is_ws((unsigned char)h[ve - 1]))
        ve--;
      /* JS reads h[vs] and h[ve - 1] even when the value is empty; with
       * vs == ve, h[vs] is ';' or past the end, never a quote. A single
       * '"' (ve == vs + 1) yields slice(vs + 1, vs), which is "". */
      if (vs < ve && h[vs] == '"' && h[ve - 1] == '"') {
        vs++;
        ve = ve - 1 > vs ? ve - 1 : vs;
      }
      *voff = vs;
      *vlen = ve - vs;
      return 1;
    }
    index = end + 1;
  } while (index < len);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *name;
  size_t nlen;
  char namebuf[17];
  const char *hdr, *val = NULL;
  size_t hlen, vlen = 0, moff = 0, mlen = 0;
  char *copy;
  int got, want;

  if (size < 1)
    return 0;
  if (data[0] & 0x80) {
    nlen = (size_t)(data[0] & 15) + 1;
    if (size < 1 + nlen)
      return 0;
    memcpy(namebuf, data + 1, nlen);
    namebuf[nlen] = '\0';
    /* A name with a NUL inside cannot be asked for through a C string. */
    if (memchr(namebuf, '\0', nlen) != NULL)
      return 0;
    name = namebuf;
    data += 1 + nlen;
    size -= 1 + nlen;
  } else {
    name = fixed_names[data[0] % CSN__ARRAY_SIZE(fixed_names)];
    nlen = strlen(name);
    data += 1;
    size -= 1;
  }

  /* An exact-size heap copy: one byte too far is an ASan report. */
  copy = malloc(size ? size : 1);
  if (copy == NULL)
    return 0;
  memcpy(copy, data, size);
  hdr = copy;
  hlen = size;

  got = csn__cookie_header_find(hdr, hlen, name, nlen, &val, &vlen);
  want = model_find(hdr, hlen, name, nlen, &moff, &mlen);
  if (got != want)
    abort();
  if (got) {
    /* The slice must lie inside the header and equal the model's. */
    if (val < hdr || val > hdr + hlen || vlen > (size_t)(hdr + hlen - val))
      abort();
    if (vlen != mlen || (vlen > 0 && memcmp(val, hdr + moff, vlen) != 0))
      abort();
  }
  free(copy);
  return 0;
}
