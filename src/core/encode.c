/* encode.c - base64 and JavaScript's URI component encoding.
 *
 * The cookie value express-session writes is encodeURIComponent("s:" + id +
 * "." + base64(hmac)), and cookie@0.7.2 reads it back with
 * decodeURIComponent, so both functions follow ECMAScript's definitions
 * exactly rather than RFC 3986's: the unreserved set is A-Z a-z 0-9 and
 * - _ . ! ~ * ' ( ), and decoding throws (here: returns -1) on a malformed
 * escape or on escapes that do not form well-formed UTF-8. */
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

/* encodeURIComponent's unreserved set. */
static int uri_unreserved(unsigned char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c != '\0' && strchr("-_.!~*'()", c) != NULL;
}

int csn__uri_encode(csn__buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i, start = 0;
  int rc;

  /* Runs of unreserved bytes are copied in one append; each other byte
   * becomes %XX (upper-case hex, as JavaScript writes it). */
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[3];
    if (uri_unreserved(c))
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
  /* Always append (even zero bytes) so an empty value still allocates and an
   * earlier OOM is reported. */
  return csn__buf_append(b, s + start, n - start);
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
