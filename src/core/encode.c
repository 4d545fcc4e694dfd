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

/* Both alphabets again, two characters per 12 bits: every cookie verified
 * re-encodes a 32-byte HMAC with the standard one, every new session id is
 * 24 random bytes in the URL-safe one, and a lookup per 12 bits halves the
 * work of one per 6. The tables are written out by the preprocessor from
 * B64_CHAR (an arithmetic form of the alphabets, so it is a constant
 * expression); tests/test_encode_fast.c checks the output against a plain
 * encoder. 8 KiB each, of which one signature touches 22 entries. */
#define B64_CHAR(v, c62, c63)                                               \
  ((v) < 26 ? 'A' + (v)                                                     \
            : (v) < 52 ? 'a' + ((v)-26)                                     \
                       : (v) < 62 ? '0' + ((v)-52) : (v) == 62 ? (c62) : (c63))
#define B64_P1(i, a, b)                                                     \
  {(char)B64_CHAR((i) >> 6, a, b), (char)B64_CHAR((i)&63, a, b)}
#define B64_P4(i, a, b)                                                     \
  B64_P1(i, a, b), B64_P1((i) + 1, a, b), B64_P1((i) + 2, a, b),            \
      B64_P1((i) + 3, a, b)
#define B64_P16(i, a, b)                                                    \
  B64_P4(i, a, b), B64_P4((i) + 4, a, b), B64_P4((i) + 8, a, b),            \
      B64_P4((i) + 12, a, b)
#define B64_P64(i, a, b)                                                    \
  B64_P16(i, a, b), B64_P16((i) + 16, a, b), B64_P16((i) + 32, a, b),       \
      B64_P16((i) + 48, a, b)
#define B64_P256(i, a, b)                                                   \
  B64_P64(i, a, b), B64_P64((i) + 64, a, b), B64_P64((i) + 128, a, b),      \
      B64_P64((i) + 192, a, b)
#define B64_P1024(i, a, b)                                                  \
  B64_P256(i, a, b), B64_P256((i) + 256, a, b), B64_P256((i) + 512, a, b),  \
      B64_P256((i) + 768, a, b)
#define B64_TABLE(a, b)                                                     \
  {B64_P1024(0, a, b), B64_P1024(1024, a, b), B64_P1024(2048, a, b),        \
   B64_P1024(3072, a, b)}
static const char b64_pairs[2][4096][2] = {B64_TABLE('+', '/'),
                                           B64_TABLE('-', '_')};
#undef B64_TABLE
#undef B64_P1024
#undef B64_P256
#undef B64_P64
#undef B64_P16
#undef B64_P4
#undef B64_P1
#undef B64_CHAR

/* Eight bytes at p as a big-endian number. */
static inline uint64_t load_be64(const unsigned char *p) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                         \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t v;
  memcpy(&v, p, 8);
  return __builtin_bswap64(v);
#else
  uint64_t v = 0;
  int k;
  for (k = 0; k < 8; k++)
    v = (v << 8) | p[k];
  return v;
#endif
}

size_t csn__b64_encode(const unsigned char *in, size_t n, char *out, int url) {
  const char *alpha = url ? b64_url : b64_std;
  const char(*pairs)[2] = b64_pairs[url ? 1 : 0];
  size_t i = 0, o = 0;

  /* Six bytes (the top 48 bits of an 8-byte load, so while 8 remain)
   * become 8 characters in four pair lookups. */
  for (; n - i >= 8; i += 6, o += 8) {
    uint64_t v = load_be64(in + i);
    memcpy(out + o, pairs[(v >> 52) & 0xFFF], 2);
    memcpy(out + o + 2, pairs[(v >> 40) & 0xFFF], 2);
    memcpy(out + o + 4, pairs[(v >> 28) & 0xFFF], 2);
    memcpy(out + o + 6, pairs[(v >> 16) & 0xFFF], 2);
  }
  /* Whole 3-byte groups become 4 characters, two lookups. */
  for (; n - i >= 3; i += 3, o += 4) {
    unsigned long v = ((unsigned long)in[i] << 16) |
                      ((unsigned long)in[i + 1] << 8) | in[i + 2];
    memcpy(out + o, pairs[v >> 12], 2);
    memcpy(out + o + 2, pairs[v & 0xFFF], 2);
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

#if defined(__SSE2__) && defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CSN__URI_SSE2 1
#include <emmintrin.h>

/* The unreserved bytes among the 16 in x, one bit each (bit k: byte k),
 * by range compares; SSE2 is part of x86-64 itself, so no CPU check is
 * needed. The compares are signed, which puts every byte >= 0x80 below
 * every bound: those are escaped, as they must be. Letters are folded to
 * lower case first (x | 0x20 is in 'a'..'z' exactly for A-Z and a-z).
 * A byte wrongly called unreserved here would be copied unescaped, so
 * tests/test_encode_fast.c runs every byte value through every lane
 * against a reference encoder. */
static inline unsigned unreserved16(__m128i x) {
  __m128i l = _mm_or_si128(x, _mm_set1_epi8(0x20));
  __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8(0x60)),
                                _mm_cmplt_epi8(l, _mm_set1_epi8(0x7B)));
  __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x2F)),
                                _mm_cmplt_epi8(x, _mm_set1_epi8(0x3A)));
  /* ' ( ) * are 0x27-0x2A, - . are 0x2D-0x2E. */
  __m128i r1 = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x26)),
                             _mm_cmplt_epi8(x, _mm_set1_epi8(0x2B)));
  __m128i r2 = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x2C)),
                             _mm_cmplt_epi8(x, _mm_set1_epi8(0x2F)));
  __m128i one = _mm_or_si128(
      _mm_cmpeq_epi8(x, _mm_set1_epi8('!')),
      _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('_')),
                   _mm_cmpeq_epi8(x, _mm_set1_epi8('~'))));
  __m128i all = _mm_or_si128(_mm_or_si128(alpha, digit),
                             _mm_or_si128(_mm_or_si128(r1, r2), one));
  return (unsigned)_mm_movemask_epi8(all);
}
#endif

static const char hex_upper[] = "0123456789ABCDEF";

/* One byte, escaped or not, at o; returns the next output position. */
static inline char *put_uri_byte(char *o, unsigned char c) {
  if (uri_unreserved[c]) {
    *o++ = (char)c;
  } else {
    o[0] = '%';
    o[1] = hex_upper[c >> 4];
    o[2] = hex_upper[c & 15];
    o += 3;
  }
  return o;
}

int csn__uri_encode(csn__buf *b, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  char *o;
  int rc;

  /* One reservation for the worst case (every byte escaped, plus 16 for
   * the whole-word stores below) when it is modest, so the loops write
   * straight into the buffer; a huge value is encoded in pieces instead of
   * reserving 3x its size. */
  if (n <= 4096) {
    if ((rc = csn__buf_reserve(b, 3 * n + 16)) != CSN_OK)
      return rc;
    o = b->data + b->len;
#ifdef CSN__URI_SSE2
    /* Sixteen bytes a step. A step without a byte to escape is one load
     * and one store; one with an escape stores the 16 bytes (the part
     * before the escape is kept, the rest overwritten later) and writes
     * the escape. The signed cookie value has only a few escapes (':' and
     * the odd '+' or '/' of the signature). The store stays inside the
     * reservation: o is at most 3i past the start and i + 16 <= n. */
    while (n - i >= 16) {
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
      unsigned esc = ~unreserved16(x) & 0xFFFFu;
      unsigned j;
      _mm_storeu_si128((__m128i *)(void *)o, x);
      if (esc == 0) {
        o += 16;
        i += 16;
        continue;
      }
      j = (unsigned)__builtin_ctz(esc);
      o = put_uri_byte(o + j, p[i + j]);
      if ((esc & (esc - 1)) == 0) {
        /* The only escape here: the next step starts right after it. */
        i += j + 1;
        continue;
      }
      {
        /* More escapes in these 16 bytes: the runs between them are
         * copied as the 16 bytes shifted right by the run's start (two
         * 64-bit words, little-endian, as SSE2 implies), so each costs a
         * few operations rather than a step of its own. A store may write
         * up to 16 bytes past o: room that the extra 16 of the reservation
         * provides. */
        uint64_t lo, hi;
        unsigned k = j + 1;
        memcpy(&lo, p + i, 8);
        memcpy(&hi, p + i + 8, 8);
        esc &= esc - 1;
        for (;;) {
          unsigned e = esc ? (unsigned)__builtin_ctz(esc) : 16;
          if (e > k) {
            uint64_t w0, w1;
            if (k < 8) { /* 1 <= k: both shifts are in range */
              w0 = lo >> (8 * k) | hi << (64 - 8 * k);
              w1 = hi >> (8 * k);
            } else {
              w0 = hi >> (8 * (k - 8));
              w1 = 0;
            }
            memcpy(o, &w0, 8);
            memcpy(o + 8, &w1, 8);
            o += e - k;
          }
          if (esc == 0)
            break;
          o = put_uri_byte(o, p[i + e]);
          k = e + 1;
          esc &= esc - 1;
        }
        i += 16;
      }
    }
#endif
    while (n - i >= 8) {
      /* Eight unreserved bytes (most of an id and a signature) at once;
       * a group with something to escape goes byte by byte. */
      if (uri_unreserved[p[i]] & uri_unreserved[p[i + 1]] &
          uri_unreserved[p[i + 2]] & uri_unreserved[p[i + 3]] &
          uri_unreserved[p[i + 4]] & uri_unreserved[p[i + 5]] &
          uri_unreserved[p[i + 6]] & uri_unreserved[p[i + 7]]) {
        memcpy(o, p + i, 8);
        o += 8;
        i += 8;
        continue;
      }
      {
        size_t end = i + 8;
        for (; i < end; i++)
          o = put_uri_byte(o, p[i]);
      }
    }
    for (; i < n; i++)
      o = put_uri_byte(o, p[i]);
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
      esc[1] = hex_upper[c >> 4];
      esc[2] = hex_upper[c & 15];
      if ((rc = csn__buf_append(b, esc, 3)) != CSN_OK)
        return rc;
      start = i + 1;
    }
    return csn__buf_append(b, s + start, n - start);
  }
}

/* Hex digit values plus one (0: not a hex digit), so that the two digits
 * of an escape are two lookups rather than two chains of range tests. */
#define H1(c, v) [c] = (v) + 1
static const unsigned char hex_plus1[256] = {
    H1('0', 0),  H1('1', 1),  H1('2', 2),  H1('3', 3),  H1('4', 4),
    H1('5', 5),  H1('6', 6),  H1('7', 7),  H1('8', 8),  H1('9', 9),
    H1('a', 10), H1('b', 11), H1('c', 12), H1('d', 13), H1('e', 14),
    H1('f', 15), H1('A', 10), H1('B', 11), H1('C', 12), H1('D', 13),
    H1('E', 14), H1('F', 15),
};
#undef H1

static int hexval(unsigned char c) { return (int)hex_plus1[c] - 1; }

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
#ifdef CSN__URI_SSE2
  /* Whether out and in are separate, so that a 16-byte store at out + o
   * cannot overwrite input not yet read (with out in in, it could). */
  int apart = (uintptr_t)out + n <= (uintptr_t)in ||
              (uintptr_t)in + n <= (uintptr_t)out;
#endif

  while (i < n) {
    int b0, k, len;
    unsigned long cp, min;

    if (in[i] != '%') {
#ifdef CSN__URI_SSE2
      /* Sixteen bytes a step up to the next '%'. The store of a step that
       * holds one is kept only for the bytes before it; it stays inside
       * out, since o <= i and i + 16 <= n. */
      while (n - i >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        unsigned pct = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(x, _mm_set1_epi8('%')));
        unsigned j;
        if (pct == 0) {
          _mm_storeu_si128((__m128i *)(void *)(out + o), x);
          o += 16;
          i += 16;
          continue;
        }
        j = (unsigned)__builtin_ctz(pct);
        if (apart) {
          _mm_storeu_si128((__m128i *)(void *)(out + o), x);
          o += j;
          i += j;
        } else {
          while (j-- > 0)
            out[o++] = in[i++];
        }
        break;
      }
      if (i < n && in[i] == '%')
        continue;
#endif
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

/* Upper-case hex digit values plus one (0: anything else, lower-case
 * letters included), for the canonical test below. */
#define H1(c, v) [c] = (v) + 1
static const unsigned char upper_hex_plus1[256] = {
    H1('0', 0),  H1('1', 1),  H1('2', 2),  H1('3', 3),  H1('4', 4),
    H1('5', 5),  H1('6', 6),  H1('7', 7),  H1('8', 8),  H1('9', 9),
    H1('A', 10), H1('B', 11), H1('C', 12), H1('D', 13), H1('E', 14),
    H1('F', 15),
};
#undef H1

/* Is the escape "%XY" at in[i] exactly what encodeURIComponent writes for
 * its byte: two upper-case hex digits, of a byte it does escape? */
static int escape_canonical(const char *in, size_t n, size_t i) {
  unsigned hi, lo;
  if (n - i < 3)
    return 0;
  hi = upper_hex_plus1[(unsigned char)in[i + 1]];
  lo = upper_hex_plus1[(unsigned char)in[i + 2]];
  return hi != 0 && lo != 0 && !uri_unreserved[(hi - 1) * 16 + (lo - 1)];
}

#ifdef CSN__URI_SSE2
/* The bytes of x that are letters, digits, '-', '.', '_' or '%' - the
 * common bytes of an encoded cookie value - one bit each (bit k: byte k),
 * and in *pct its '%' bytes alone. x - lo, with the bias 0x80 folded in,
 * is below the signed bound exactly when x is in [lo, lo + span) as
 * unsigned bytes; letters are folded to lower case first. Inlined, the
 * constants leave the callers' loops. */
static inline unsigned common16(__m128i x, unsigned *pct) {
  const __m128i case_bit = _mm_set1_epi8(0x20);
  const __m128i alpha_lo = _mm_set1_epi8((char)(0x61 - 0x80));
  const __m128i alpha_hi = _mm_set1_epi8((char)(-0x80 + 26));
  const __m128i digit_lo = _mm_set1_epi8((char)(0x30 - 0x80));
  const __m128i digit_hi = _mm_set1_epi8((char)(-0x80 + 10));
  const __m128i dash_lo = _mm_set1_epi8((char)(0x2D - 0x80));
  const __m128i dash_hi = _mm_set1_epi8((char)(-0x80 + 2)); /* - . */
  __m128i alpha = _mm_cmplt_epi8(
      _mm_sub_epi8(_mm_or_si128(x, case_bit), alpha_lo), alpha_hi);
  __m128i digit = _mm_cmplt_epi8(_mm_sub_epi8(x, digit_lo), digit_hi);
  __m128i dash = _mm_cmplt_epi8(_mm_sub_epi8(x, dash_lo), dash_hi);
  __m128i pctv = _mm_cmpeq_epi8(x, _mm_set1_epi8('%'));
  __m128i common = _mm_or_si128(
      _mm_or_si128(alpha, digit),
      _mm_or_si128(dash,
                   _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('_')), pctv)));
  *pct = (unsigned)_mm_movemask_epi8(pctv);
  return (unsigned)_mm_movemask_epi8(common);
}
#endif

/* Every '%' starts a canonical escape and every other byte is one that
 * encodeURIComponent leaves alone. A hex digit of an escape is a letter or
 * a digit, which passes as such, and is never a '%', so the escapes are
 * found without parsing from the start: the blocks below may overlap.
 *
 * This runs on every returning request's cookie value, so the 16-byte
 * step tests only the common bytes (letters, digits, '-', '.', '_' and
 * '%'), a few operations each, and leaves the rest (the rare ! ' ( ) * ~,
 * and the reserved bytes that fail) to the table. A separate pass rather
 * than part of the decoder: there, every escape ends a 16-byte step, and
 * the full unreserved16() test per step cost nearly what encoding the
 * value again does. */
int csn__uri_canonical(const char *s, size_t n) {
  size_t i = 0;
#ifdef CSN__URI_SSE2
  if (n >= 16) {
    for (;;) {
      /* The last block ends at n, overlapping the one before: a byte seen
       * twice gives the same answer twice. */
      size_t at = i + 16 <= n ? i : n - 16;
      __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + at));
      unsigned pct, other = ~common16(x, &pct) & 0xFFFFu;
      for (; other != 0; other &= other - 1)
        if (!uri_unreserved[(unsigned char)
                                s[at + (unsigned)__builtin_ctz(other)]])
          return 0;
      for (; pct != 0; pct &= pct - 1)
        if (!escape_canonical(s, n, at + (unsigned)__builtin_ctz(pct)))
          return 0;
      i += 16;
      if (i >= n)
        return 1;
    }
  }
#endif
  for (; i < n; i++) {
    if (s[i] == '%') {
      if (!escape_canonical(s, n, i))
        return 0;
      i += 2;
    } else if (!uri_unreserved[(unsigned char)s[i]]) {
      return 0;
    }
  }
  return 1;
}

#ifdef CSN__URI_SSE2
/* memcpy() of a run shorter than 16 bytes, inline: two overlapping words
 * (the last run of a cookie value is one of these, every request). */
static inline void copy_short(char *d, const char *s, size_t len) {
  if (len >= 8) {
    uint64_t a, b;
    memcpy(&a, s, 8);
    memcpy(&b, s + len - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + len - 8, &b, 8);
  } else if (len >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + len - 4, 4);
    memcpy(d, &a, 4);
    memcpy(d + len - 4, &b, 4);
  } else {
    while (len-- > 0)
      *d++ = *s++;
  }
}
#endif

/* csn__uri_decode() and csn__uri_canonical() of one value, in one pass
 * when the value has the usual shape of a signed cookie: letters, digits,
 * '-', '.', '_', and escapes in upper-case hex of ASCII bytes that
 * encodeURIComponent escapes ("s%3A...", the odd %2B or %2F of the
 * signature). That is the cookie of every returning request, and the two
 * separate passes cost half as much again as this one (measured under
 * callgrind, 440 against 295 instructions for a value with one escape,
 * 640 against 445 with three): each escape ended a 16-byte step of the
 * decoder, and the canonical test read the value again.
 *
 * Anything else - a shorter value, a rarer unreserved byte (! ' ( ) * ~),
 * a reserved byte left raw, a lower-case or malformed escape, an escape of
 * a byte >= 0x80 or of an unreserved one - sends the whole value through
 * the two general functions from its start, so the results are theirs by
 * construction; the fast pass only ever accepts input on which both agree
 * with it (tests/test_encode_fast.c compares the two on every byte in
 * every lane). out must not overlap in. */
int csn__uri_decode_canonical(const char *in, size_t n, char *out,
                              size_t *outn, int *canonical) {
#ifdef CSN__URI_SSE2
  if (n >= 16) {
    const char *p = in, *stop = in + n;
    char *q = out;
    unsigned ok, pct, hi, lo, c;
    size_t left;
    __m128i x;

/* The escape at p, taken only in its canonical form for ASCII (its hex
 * digits are never a '%'); anything else goes the general way. */
#define ESCAPE()                                                              \
  do {                                                                        \
    if (stop - p < 3)                                                         \
      goto general;                                                           \
    hi = upper_hex_plus1[(unsigned char)p[1]];                                \
    lo = upper_hex_plus1[(unsigned char)p[2]];                                \
    c = (hi - 1) * 16 + (lo - 1);                                             \
    if (hi == 0 || lo == 0 || c >= 0x80 || uri_unreserved[c])                 \
      goto general;                                                           \
    *q++ = (char)c;                                                           \
    p += 3;                                                                   \
  } while (0)

    /* Sixteen bytes a step. Any byte but common16()'s, anywhere in the
     * step, sends the value the general way. The runs between escapes are
     * copied 16 bytes at a time where the input has them, the excess being
     * overwritten later: q - out <= p - in always, so a store at q stays
     * inside out (n bytes) whenever p + 16 <= in + n. */
    while ((left = (size_t)(stop - p)) >= 16) {
      const char *blk = p, *blk_end = p + 16;
      x = _mm_loadu_si128((const __m128i *)(const void *)p);
      ok = common16(x, &pct);
      if (ok != 0xFFFFu)
        goto general;
      _mm_storeu_si128((__m128i *)(void *)q, x);
      if (pct == 0) {
        p += 16;
        q += 16;
        continue;
      }
      /* The escapes of this step in turn; an escape's hex digits are
       * never a '%', so each next bit lies past the one just decoded. */
      do {
        size_t run = (size_t)(blk + __builtin_ctz(pct) - p);
        if (run > 0) {
          if (stop - p >= 16)
            _mm_storeu_si128(
                (__m128i *)(void *)q,
                _mm_loadu_si128((const __m128i *)(const void *)p));
          else
            copy_short(q, p, run);
          p += run;
          q += run;
        }
        ESCAPE();
        pct &= pct - 1;
      } while (pct != 0);
      /* The rest of the step (an escape near its end may reach past it). */
      if (p < blk_end) {
        size_t run = (size_t)(blk_end - p);
        if (stop - p >= 16)
          _mm_storeu_si128((__m128i *)(void *)q,
                           _mm_loadu_si128((const __m128i *)(const void *)p));
        else
          copy_short(q, p, run);
        p += run;
        q += run;
      }
    }
    /* Fewer than 16 left: the 16 bytes that end the value, of which the
     * first 16 - left were done already and drop out of the masks. */
    if (left > 0) {
      const char *blk = p;
      unsigned shift = (unsigned)(16 - left);
      x = _mm_loadu_si128((const __m128i *)(const void *)(stop - 16));
      ok = common16(x, &pct);
      if ((ok >> shift) != (0xFFFFu >> shift))
        goto general;
      for (pct >>= shift; pct != 0; pct &= pct - 1) {
        size_t run = (size_t)(blk + __builtin_ctz(pct) - p);
        copy_short(q, p, run);
        p += run;
        q += run;
        ESCAPE();
      }
      copy_short(q, p, (size_t)(stop - p));
      q += stop - p;
    }
#undef ESCAPE
    *outn = (size_t)(q - out);
    *canonical = 1;
    return 0;
  }
general:
#endif
  if (csn__uri_decode(in, n, out, outn) != 0)
    return -1;
  *canonical = csn__uri_canonical(in, n);
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
