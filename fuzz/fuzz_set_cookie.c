/* fuzz_set_cookie.c - Set-Cookie serialization of arbitrary cookie values.
 *
 * Input layout (a reader that yields zeros once the input runs out):
 *   8 bytes originalMaxAge, 8 bytes expires (either may become "none"),
 *   1 byte of flags (httpOnly / secure / partitioned, each absent, 0 or 1),
 *   1 byte sameSite, 1 byte priority (in range or not),
 *   then four length-prefixed strings: name, domain, path, value
 *   (a length byte of 0xff means NULL for domain and path).
 * Properties checked:
 *   - never a crash, a leak or undefined behaviour, whatever the values;
 *   - a success yields a header line without CR, LF, NUL or other control
 *     bytes (no header injection through domain or path), which starts with
 *     "name=" and whose first pair, read back with csn__cookie_header_find(),
 *     is exactly encodeURIComponent(value); decoding it gives the value back
 *     when the value is valid UTF-8;
 *   - a failure returns CSN_EINVAL with a message, or CSN_ENOMEM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t rd_byte(reader *r) {
  uint8_t b = 0;
  if (r->n > 0) {
    b = *r->p++;
    r->n--;
  }
  return b;
}

static int64_t rd_i64(reader *r) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | rd_byte(r);
  return (int64_t)v;
}

/* A length-prefixed byte string, malloc'ed and NUL-terminated; *len is the
 * byte count (a NUL inside is kept: the C-string API will see a prefix). */
static char *rd_str(reader *r, int nullable, size_t *len) {
  uint8_t l = rd_byte(r);
  char *s;
  if (nullable && l == 0xff)
    return NULL;
  if (l > r->n)
    l = (uint8_t)r->n;
  s = malloc((size_t)l + 1);
  if (s == NULL)
    abort();
  memcpy(s, r->p, l);
  s[l] = '\0';
  r->p += l;
  r->n -= l;
  *len = l;
  return s;
}

/* Interesting instants: none, the JS Date limits and beyond, 0, and the
 * raw 64-bit pattern (mostly far out of range). */
static int64_t pick_time(int64_t raw) {
  switch ((uint64_t)raw & 7) {
  case 0:
    return CSN_TIME_NONE;
  case 1:
    return CSN__TIME_MAX;
  case 2:
    return -CSN__TIME_MAX;
  case 3:
    return CSN__TIME_MAX + 1;
  case 4:
    return raw % (INT64_C(4) * CSN__TIME_MAX); /* both sides of the range */
  case 5:
    return 1735689600000 + (raw >> 3) % 100000000000;
  default:
    return raw;
  }
}

static int tri(uint8_t v) { return v % 3 == 2 ? CSN__ABSENT : v % 3; }

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t k;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      k = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      k = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (n - i <= k)
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
      return 0;
    i += k + 1;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reader rd = {data, size};
  csn__cookie c;
  uint8_t flags;
  char *name, *value, *out;
  size_t name_len, value_len, dlen = 0, plen = 0, out_len = 0;
  const char *errmsg = NULL;
  csn__buf b;
  int rc;

  memset(&c, 0, sizeof c);
  c.original_max_age = pick_time(rd_i64(&rd));
  c.expires = pick_time(rd_i64(&rd));
  flags = rd_byte(&rd);
  c.http_only = tri(flags);
  c.secure = tri((uint8_t)(flags / 3));
  c.partitioned = tri((uint8_t)(flags / 9));
  /* Mostly valid enum values, sometimes out of range on either side. */
  c.same_site = (int)(int8_t)rd_byte(&rd) % 8;
  c.priority = (int)(int8_t)rd_byte(&rd) % 6;
  name = rd_str(&rd, 0, &name_len);
  c.domain = rd_str(&rd, 1, &dlen);
  c.path = rd_str(&rd, 1, &plen);
  value = rd_str(&rd, 0, &value_len);
  if ((flags & 0x80) == 0) {
    /* Half the runs use the real cookie name so that the attribute code,
     * not the name check, gets the fuzzer's attention. */
    free(name);
    name = strdup("connect.sid");
    if (name == NULL)
      abort();
  }

  csn__buf_init(&b);
  rc = csn__set_cookie_serialize(&b, name, value, value_len, &c, &errmsg);
  if (rc == CSN_OK) {
    const char *found = NULL;
    size_t nl = strlen(name), found_len = 0;
    csn__buf enc;
    char *want;
    size_t want_len = 0;

    out = csn__buf_steal(&b, &out_len);
    if (out == NULL)
      abort(); /* only an allocation failure may lose the text */
    for (size_t i = 0; i < out_len; i++) {
      unsigned char ch = (unsigned char)out[i];
      if (ch < 0x20 || ch == 0x7f)
        abort(); /* CTL in a header: injection or a broken line */
    }
    if (!csn__cookie_name_valid(name))
      abort(); /* an invalid name must have been refused */
    if (out_len < nl + 1 || memcmp(out, name, nl) != 0 || out[nl] != '=')
      abort();
    if (!csn__cookie_header_find(out, out_len, name, nl, &found, &found_len))
      abort();
    /* The value as the encoder writes it, which the browser sends back. */
    csn__buf_init(&enc);
    if (csn__uri_encode(&enc, value, value_len) != CSN_OK)
      abort();
    want = csn__buf_steal(&enc, &want_len);
    if (want == NULL || found_len != want_len ||
        memcmp(found, want, want_len) != 0)
      abort();
    if (utf8_valid((const unsigned char *)value, value_len)) {
      char *dec = malloc(found_len ? found_len : 1);
      size_t dec_len = 0;
      if (dec == NULL)
        abort();
      if (csn__uri_decode(found, found_len, dec, &dec_len) != 0 ||
          dec_len != value_len || memcmp(dec, value, value_len) != 0)
        abort();
      free(dec);
    }
    csn__free(want);
    csn__free(out);
  } else {
    if (rc != CSN_EINVAL && rc != CSN_ENOMEM)
      abort();
    if (rc == CSN_EINVAL && (errmsg == NULL || errmsg[0] == '\0'))
      abort();
  }
  csn__buf_free(&b);
  free(name);
  free(value);
  free(c.domain);
  free(c.path);
  return 0;
}
