/* cookie.c - reading the request's Cookie header and writing Set-Cookie,
 * both as express-session 1.19.0 does through cookie@0.7.2.
 *
 * The Cookie header is hostile input: it may be huge, hold hundreds of
 * pairs, duplicates, junk bytes, unbalanced quotes or no '=' at all. The
 * scanner below never allocates, never reads past hlen and does a bounded
 * amount of work per byte, and it finds exactly the value cookie@0.7.2's
 * parse() would put under `name`, quirks included:
 *
 *  - It looks for the next '=' from the current position. If there is none,
 *    parsing stops: everything after the last '=' is ignored.
 *  - It looks for the next ';' from the current position. If that ';' comes
 *    before the '=', the pair has no '=': parsing restarts just after the
 *    last ';' that precedes the '=' (so "a; b; c=1" finds c).
 *  - Name and value are trimmed of spaces and tabs only.
 *  - A value that starts and ends with '"' loses those two characters (a
 *    lone '"' becomes the empty string, as JS's slice(1, 0) does).
 *  - The first pair with a given name wins; later ones are ignored. Names
 *    compare byte for byte (case-sensitive).
 *  - A header shorter than 2 bytes has no pairs.
 * Percent-decoding is left to the caller (csn__uri_decode), which keeps the
 * raw value when decoding would throw.
 */
#include <string.h>

#include "csn_int.h"

static int is_ws(char c) { return c == ' ' || c == '\t'; }

/* Index of the first `c` in h[from..to), or `to`. */
static size_t find_from(const char *h, size_t from, size_t to, char c) {
  const char *p;
  if (from >= to)
    return to;
  p = memchr(h + from, c, to - from);
  return p ? (size_t)(p - h) : to;
}

int csn__cookie_header_find(const char *header, size_t hlen, const char *name,
                            size_t nlen, const char **val, size_t *vlen) {
  size_t index = 0;

  if (header == NULL || name == NULL || hlen < 2)
    return 0;
  do {
    size_t eq, end, ks, ke, vs, ve;

    eq = find_from(header, index, hlen, '=');
    if (eq == hlen)
      break; /* no more pairs */
    end = find_from(header, index, hlen, ';');
    if (end < eq) {
      /* Backtrack to just after the last ';' before the '='. Work stays
       * linear: the new index is past `end`, and every later search starts
       * from there. */
      size_t j = eq;
      while (j > index && header[j - 1] != ';')
        j--;
      index = j;
      continue;
    }

    ks = index;
    while (ks < eq && is_ws(header[ks]))
      ks++;
    ke = eq;
    while (ke > ks && is_ws(header[ke - 1]))
      ke--;

    if (ke - ks == nlen && memcmp(header + ks, name, nlen) == 0) {
      vs = eq + 1;
      while (vs < end && is_ws(header[vs]))
        vs++;
      ve = end;
      while (ve > vs && is_ws(header[ve - 1]))
        ve--;
      if (ve > vs && header[vs] == '"' && header[ve - 1] == '"') {
        if (ve - vs >= 2) {
          vs++;
          ve--;
        } else {
          ve = vs; /* a lone quote */
        }
      }
      *val = header + vs;
      *vlen = ve - vs;
      return 1; /* the first occurrence wins */
    }
    index = end + 1;
  } while (index < hlen);
  return 0;
}

/* RFC 6265 token characters: cookie@0.7.2's cookieNameRegExp, as a table
 * (the name is checked on every Set-Cookie). */
#define T1(c) [c] = 1
static const unsigned char token_table[256] = {
    T1('A'), T1('B'), T1('C'), T1('D'), T1('E'), T1('F'), T1('G'), T1('H'),
    T1('I'), T1('J'), T1('K'), T1('L'), T1('M'), T1('N'), T1('O'), T1('P'),
    T1('Q'), T1('R'), T1('S'), T1('T'), T1('U'), T1('V'), T1('W'), T1('X'),
    T1('Y'), T1('Z'), T1('a'), T1('b'), T1('c'), T1('d'), T1('e'), T1('f'),
    T1('g'), T1('h'), T1('i'), T1('j'), T1('k'), T1('l'), T1('m'), T1('n'),
    T1('o'), T1('p'), T1('q'), T1('r'), T1('s'), T1('t'), T1('u'), T1('v'),
    T1('w'), T1('x'), T1('y'), T1('z'), T1('0'), T1('1'), T1('2'), T1('3'),
    T1('4'), T1('5'), T1('6'), T1('7'), T1('8'), T1('9'), T1('!'), T1('#'),
    T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'), T1('.'),
    T1('^'), T1('_'), T1('`'), T1('|'), T1('~'),
};
#undef T1

static int is_token_char(unsigned char c) { return token_table[c]; }

/* The length of name when it is a valid cookie name, else 0: the check
 * and the strlen() the serializer needs, in one pass. */
static size_t token_len(const char *name) {
  const unsigned char *p = (const unsigned char *)name;
  if (name == NULL)
    return 0;
  for (; is_token_char(*p); p++)
    ;
  return *p == '\0' ? (size_t)(p - (const unsigned char *)name) : 0;
}

int csn__cookie_name_valid(const char *name) {
  const unsigned char *p = (const unsigned char *)name;
  if (name == NULL || *p == '\0')
    return 0;
  for (; *p; p++)
    if (!is_token_char(*p))
      return 0;
  return 1;
}

/* pathValueRegExp: 0x20-0x3A and 0x3D-0x7E, so ';' (0x3B), '<' (0x3C),
 * controls and non-ASCII bytes are refused. The empty path is valid (the
 * serializer skips it, as `if (opt.path)` does). */
int csn__cookie_path_valid(const char *path) {
  const unsigned char *p = (const unsigned char *)path;
  if (path == NULL)
    return 0;
  for (; *p; p++)
    if (*p < 0x20 || *p > 0x7E || *p == 0x3B || *p == 0x3C)
      return 0;
  return 1;
}

static int is_alnum_ci(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9');
}

/* domainValueRegExp, case-insensitive:
 *   ^([.]?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)([.][a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$
 * i.e. an optional single leading dot, then dot-separated labels of 1 to 63
 * letters, digits and hyphens that neither start nor end with a hyphen; no
 * empty label and no trailing dot. */
int csn__cookie_domain_valid(const char *domain) {
  const unsigned char *p = (const unsigned char *)domain;
  if (domain == NULL)
    return 0;
  if (*p == '.')
    p++;
  for (;;) {
    size_t len = 0;
    const unsigned char *start = p;
    while (is_alnum_ci(*p) || *p == '-') {
      p++;
      len++;
    }
    if (len == 0 || len > 63 || start[0] == '-' || p[-1] == '-')
      return 0;
    if (*p == '\0')
      return 1;
    if (*p != '.')
      return 0;
    p++;
  }
}

static int fail(const char *msg, const char **errmsg) {
  if (errmsg != NULL)
    *errmsg = msg;
  return CSN_EINVAL;
}

/* cookie@0.7.2 serialize(name, value, cookie.data) as express-session calls
 * it. The attribute order and spelling are fixed; Max-Age is never written
 * because express-session never passes maxAge. Flags that are CSN__ABSENT
 * are off, as `undefined` is falsy. Attributes are validated in the order
 * cookie checks them, so the same bad option produces the same message. On
 * error nothing is left appended to b. */
/* nlen: the length of a name the caller has checked, or 0 to check it
 * here. */
static int serialize(csn__buf *b, const char *name, size_t nlen,
                     const char *value, size_t vlen, int encoded,
                     const csn__cookie *c, const char **errmsg) {
  size_t mark = b->len;
  const char *priority = NULL, *same_site = NULL;
  char date[48];
  int rc;

  if (nlen == 0 && (nlen = token_len(name)) == 0)
    return fail("argument name is invalid", errmsg);
  if (value == NULL && vlen > 0)
    return fail("argument val is invalid", errmsg);
  if (c->domain != NULL && c->domain[0] != '\0' &&
      !csn__cookie_domain_valid(c->domain))
    return fail("option domain is invalid", errmsg);
  if (c->path != NULL && c->path[0] != '\0' &&
      !csn__cookie_path_valid(c->path))
    return fail("option path is invalid", errmsg);
  if (c->expires != CSN_TIME_NONE &&
      csn__fmt_http_date(c->expires, date, sizeof date) != CSN_OK)
    return fail("option expires is invalid", errmsg);

  switch (c->priority) {
  case CSN_PRIORITY_UNSET:
    break;
  case CSN_PRIORITY_LOW:
    priority = "Low";
    break;
  case CSN_PRIORITY_MEDIUM:
    priority = "Medium";
    break;
  case CSN_PRIORITY_HIGH:
    priority = "High";
    break;
  default:
    return fail("option priority is invalid", errmsg);
  }
  /* An unresolved "auto" reaching here is what express does with the
   * function form of `cookie`: serialize() rejects it. */
  switch (c->same_site) {
  case CSN_SAMESITE_UNSET:
    break;
  case CSN_SAMESITE_TRUE:
  case CSN_SAMESITE_STRICT:
    same_site = "Strict";
    break;
  case CSN_SAMESITE_LAX:
    same_site = "Lax";
    break;
  case CSN_SAMESITE_NONE:
    same_site = "None";
    break;
  default:
    return fail("option sameSite is invalid", errmsg);
  }

  /* Everything is valid: write. One reservation covers the whole header
   * (the value at its worst, every byte escaped, when that is modest), so
   * the pieces below are plain copies into the buffer, with no call and
   * no room check each; a longer value is encoded first and the room for
   * the attributes after it reserved again. On failure b->oom is set and
   * nothing is written. */
  {
    size_t dlen = 0, plen = 0, tlen = 0, tail;
    char *o;
    if (c->domain != NULL && c->domain[0] != '\0')
      dlen = strlen(c->domain);
    if (c->path != NULL && c->path[0] != '\0')
      plen = strlen(c->path);
    if (c->expires != CSN_TIME_NONE)
      tlen = strlen(date);
    /* The attributes: at most 9 + dlen + 7 + plen + 10 + tlen, then 10 + 8
     * + 13 + 17 + 17 for the flags, Priority and SameSite. */
    tail = dlen + plen + tlen + 96;
    if (encoded) {
      /* Already in encodeURIComponent form: copied as it is. */
      if (csn__buf_reserve(b, nlen + 1 + vlen + tail) != CSN_OK)
        goto out;
      o = b->data + b->len;
      memcpy(o, name, nlen);
      o[nlen] = '=';
      o += nlen + 1;
      if (vlen > 0)
        memcpy(o, value, vlen);
      o += vlen;
    } else {
      if (csn__buf_reserve(b, nlen + 1 + (vlen <= 4096 ? 3 * vlen : 0) +
                                  tail) != CSN_OK)
        goto out;
      o = b->data + b->len;
      memcpy(o, name, nlen);
      o[nlen] = '=';
      b->len += nlen + 1;
      if (csn__uri_encode(b, value ? value : "", vlen) != CSN_OK ||
          (vlen > 4096 && csn__buf_reserve(b, tail) != CSN_OK))
        goto out;
      o = b->data + b->len;
    }
#define PUT(s, n) (memcpy(o, (s), (n)), o += (n))
    if (dlen > 0) {
      PUT("; Domain=", 9);
      PUT(c->domain, dlen);
    }
    if (plen > 0) {
      PUT("; Path=", 7);
      PUT(c->path, plen);
    }
    if (c->expires != CSN_TIME_NONE) {
      PUT("; Expires=", 10);
      /* Years 0..9999 always give 29 characters: a copy of known size is
       * a few moves instead of a byte loop. */
      if (tlen == 29)
        PUT(date, 29);
      else
        PUT(date, tlen);
    }
    if (c->http_only > 0)
      PUT("; HttpOnly", 10);
    if (c->secure > 0)
      PUT("; Secure", 8);
    if (c->partitioned > 0)
      PUT("; Partitioned", 13);
    if (priority != NULL) {
      PUT("; Priority=", 11);
      PUT(priority, strlen(priority));
    }
    if (same_site != NULL) {
      PUT("; SameSite=", 11);
      PUT(same_site, strlen(same_site));
    }
#undef PUT
    *o = '\0';
    b->len = (size_t)(o - b->data);
  }
out:
  rc = b->oom ? CSN_ENOMEM : CSN_OK;
  if (rc != CSN_OK && b->data != NULL) {
    /* Leave the buffer as it was before the call (it stays in OOM state). */
    b->len = mark;
    b->data[mark] = '\0';
  }
  return rc;
}

int csn__set_cookie_serialize(csn__buf *b, const char *name,
                              const char *value, size_t vlen,
                              const csn__cookie *c, const char **errmsg) {
  return serialize(b, name, 0, value, vlen, 0, c, errmsg);
}

int csn__set_cookie_serialize_encoded(csn__buf *b, const char *name,
                                      size_t nlen, const char *enc,
                                      size_t enclen, const csn__cookie *c,
                                      const char **errmsg) {
  return serialize(b, name, nlen, enc, enclen, 1, c, errmsg);
}
