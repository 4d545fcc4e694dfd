/* encode.c - base64 and JavaScript's URI component encoding.
 *
 * The cookie value express-session writes is encodeURIComponent("s:" + id +
 * "." + base64(hmac)), and cookie@0.7.2 reads it back with
 * decodeURIComponent, so both functions follow ECMAScript's definitions
 * exactly rather than RFC 3986's: the unreserved set is A-Z a-z 0-9 and
 * - _ . ! ~ * ' ( ), and decoding throws (here: returns -1) on a malformed
 * escape or on escapes that do not form well-formed UTF-8. */
#include <stdint.h>
#include <string.h>

#include "csn_int.h"

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t csn__b64_encode(const unsigned char *in, size_t n, char *out, int url) {
  const char *alpha = url ? b64_url : b64_std;
  size_t i = 0, o = 0;

  /* Whole 3-byte groups become 4 characters. */
  for (; i + 3 <= n; i += 3) {
    unsigned long v = ((unsigned long)in[i] << 16) |
                      ((unsigned long)in[i + 1] << 8) | in[i + 2];
    out[o++] = alpha[(v >> 18) & 63];
    out[o++] = alpha[(v >> 12) & 63];
    out[o++] = alpha[(v >> 6) & 63];
    out[o++] = alpha[v & 63];
  }
  /* A tail of 1 or 2 bytes becomes 2 or 3 characters; the '=' padding that
   * would follow is never written (cookie-signature strips it, uid-safe
   * never has any for 24 bytes). */
  if (n - i == 1) {
    unsigned long v = (unsigned long)in[i] << 16;
    out[o++] = alpha[(v >> 18) & 63];
    out[o++] = alpha[(v >> 12) & 63];
  } else if (n - i == 2) {
    unsigned long v =
        ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8);
    out[o++] = alpha[(v >> 18) & 63];
    out[o++] = alpha[(v >> 12) & 63];
    out[o++] = alpha[(v >> 6) & 63];
  }
  out[o] = '\0';
  return o;
}

/* encodeURIComponent's unreserved set, as a table: this runs over every
 * byte of every Set-Cookie value (a strchr() per byte cost half of the
 * cookie's serialization). */
#define U1(c) [c] = 1
static const unsigned char uri_unreserved[256] = {
    U1('A'), U1('B'), U1('C'), U1('D'), U1('E'), U1('F'), U1('G'), U1('H'),
    U1('I'), U1('J'), U1('K'), U1('L'), U1('M'), U1('N'), U1('O'), U1('P'),
    U1('Q'), U1('R'), U1('S'), U1('T'), U1('U'), U1('V'), U1('W'), U1('X'),
    U1('Y'), U1('Z'), U1('a'), U1('b'), U1('c'), U1('d'), U1('e'), U1('f'),
    U1('g'), U1('h'), U1('i'), U1('j'), U1('k'), U1('l'), U1('m'), U1('n'),
    U1('o'), U1('p'), U1('q'), U1('r'), U1('s'), U1('t'), U1('u'), U1('v'),
    U1('w'), U1('x'), U1('y'), U1('z'), U1('0'), U1('1'), U1('2'), U1('3'),
    U1('4'), U1('5'), U1('6'), U1('7'), U1('8'), U1('9'), U1('-'), U1('_'),
    U1('.'), U1('!'), U1('~'), U1('*'), U1('\''), U1('('), U1(')'),
};
#undef U1

int csn__uri_encode(csn__buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  const unsigned char *p = (const unsigned char *)s;
  size_t i;
  char *o;
  int rc;

  /* One reservation for the worst case (every byte escaped) when it is
   * modest, so the loop below writes straight into the buffer; a huge
   * value is encoded in pieces instead of reserving 3x its size. */
  if (n <= 4096) {
    if ((rc = csn__buf_reserve(b, 3 * n)) != CSN_OK)
      return rc;
    o = b->data + b->len;
    for (i = 0; i < n;) {
      size_t k, m = n - i >= 8 ? 8 : n - i;
      /* Eight unreserved bytes (most of an id and a signature) at once;
       * a group with something to escape goes byte by byte. */
      if (m == 8 && (uri_unreserved[p[i]] & uri_unreserved[p[i + 1]] &
                     uri_unreserved[p[i + 2]] & uri_unreserved[p[i + 3]] &
                     uri_unreserved[p[i + 4]] & uri_unreserved[p[i + 5]] &
                     uri_unreserved[p[i + 6]] & uri_unreserved[p[i + 7]])) {
        memcpy(o, p + i, 8);
        o += 8;
        i += 8;
        continue;
      }
      for (k = 0; k < m; k++) {
        unsigned char c = p[i + k];
        if (uri_unreserved[c]) {
          *o++ = (char)c;
        } else {
          o[0] = '%';
          o[1] = hex[c >> 4];
          o[2] = hex[c & 15];
          o += 3;
        }
      }
      i += m;
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return CSN_OK;
  }
  {
    size_t start = 0;
    /* Runs of unreserved bytes are copied in one append; each other byte
     * becomes %XX (upper-case hex, as JavaScript writes it). */
    for (i = 0; i < n; i++) {
      unsigned char c = p[i];
      char esc[3];
      if (uri_unreserved[c])
        continue;
      if ((rc = csn__buf_append(b, s + start, i - start)) != CSN_OK)
        return rc;
      esc[0] = '%';
      esc[1] = hex[c >> 4];
      esc[2] = hex[c & 15];
      if ((rc = csn__buf_append(b, esc, 3)) != CSN_OK)
        return rc;
      start = i + 1;
    }
    return csn__buf_append(b, s + start, n - start);
  }
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The byte encoded by "%XX" at in[i], or -1 when in[i..] is not one. */
static int escaped_byte(const char *in, size_t n, size_t i) {
  int hi, lo;
  /* i <= n always holds here, so n - i cannot wrap. */
  if (n - i < 3 || in[i] != '%')
    return -1;
  hi = hexval((unsigned char)in[i + 1]);
  lo = hexval((unsigned char)in[i + 2]);
  if (hi < 0 || lo < 0)
    return -1;
  return hi * 16 + lo;
}

/* decodeURIComponent (ECMA-262 "Decode"), on bytes.
 *
 * Bytes that are not part of an escape are copied unchanged. An escape with
 * a byte below 0x80 yields that byte. A byte >= 0x80 must start a UTF-8
 * sequence of 2 to 4 bytes whose continuation bytes are also escaped
 * (%80-%BF); the sequence must decode to a scalar value that is neither
 * overlong, nor a surrogate (U+D800-DFFF), nor above U+10FFFF. Anything else
 * is a URIError in JavaScript, which cookie@0.7.2 catches to keep the raw
 * value; we return -1 and let the caller do the same. */
int csn__uri_decode(const char *in, size_t n, char *out, size_t *outn) {
  size_t i = 0, o = 0;

  while (i < n) {
    int b0, k, len;
    unsigned long cp, min;

    if (in[i] != '%') {
      /* Bytes that are not '%' are copied as they are, eight at a time
       * while none of the eight is a '%' (the word test finds a zero byte
       * in w ^ "%%%%%%%%"). out may be in itself: o <= i always, and each
       * word is loaded before it is stored. */
      while (n - i >= 8) {
        uint64_t w, x;
        memcpy(&w, in + i, 8);
        x = w ^ UINT64_C(0x2525252525252525);
        if (((x - UINT64_C(0x0101010101010101)) & ~x &
             UINT64_C(0x8080808080808080)) != 0)
          break;
        memcpy(out + o, &w, 8);
        o += 8;
        i += 8;
      }
      while (i < n && in[i] != '%')
        out[o++] = in[i++];
      continue;
    }
    if ((b0 = escaped_byte(in, n, i)) < 0)
      return -1;
    i += 3;
    if (b0 < 0x80) {
      out[o++] = (char)b0;
      continue;
    }
    /* Leading byte: its count of high 1 bits is the sequence length. */
    if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      cp = (unsigned long)(b0 & 0x1F);
      min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      cp = (unsigned long)(b0 & 0x0F);
      min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      cp = (unsigned long)(b0 & 0x07);
      min = 0x10000;
    } else {
      return -1; /* a lone continuation byte, or 0xF8-0xFF */
    }
    out[o++] = (char)b0;
    for (k = 1; k < len; k++) {
      int bk = escaped_byte(in, n, i);
      if (bk < 0 || (bk & 0xC0) != 0x80)
        return -1;
      cp = (cp << 6) | (unsigned long)(bk & 0x3F);
      out[o++] = (char)bk;
      i += 3;
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return -1;
  }
  *outn = o;
  return 0;
}

/* Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * above U+10FFFF. jansson checks the same but answers NULL for both "bad
 * text" and "out of memory"; checking first lets callers tell them apart. */
int csn__utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len, k;
    unsigned long cp, min;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i < len)
      return 0;
    for (k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (p[i + k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}
