/* json.c - JSON text <-> jansson values, the way JavaScript does it.
 *
 * Why not json_loadb()/json_dumps()? Two reasons, both measured:
 *
 * 1. Compatibility. express-session writes records with JSON.stringify and
 *    reads them with JSON.parse. jansson prints reals with 17 significant
 *    digits (0.1 becomes 0.10000000000000001), refuses integers beyond 64
 *    bits, and refuses "\u0000". A record that went through C and came back
 *    to Node should look as if Node had written it. So numbers are printed
 *    as Number#toString prints them (the shortest text that reads back to
 *    the same double), integers that fit int64 stay integers, larger ones
 *    become doubles, and escapes follow JSON.stringify.
 *
 * 2. Speed. Loading the record is on every request's path. jansson's
 *    reader validates and copies each character through a stream layer and
 *    cost about 20k instructions for a 130-byte session; this reader works
 *    on the buffer in place and builds the same jansson values.
 *
 * The reader is strict RFC 8259 (what JSON.parse accepts), with a nesting
 * limit so hostile input cannot exhaust the stack; duplicate keys keep the
 * last value, as JSON.parse does.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

/* ------------------------------------------------------------------------ */
/* Numbers without the process locale                                       */
/* ------------------------------------------------------------------------ */

/* snprintf("%e") and strtod() follow LC_NUMERIC: once an application calls
 * setlocale(LC_ALL, "") under de_DE.UTF-8, 0.125 is written "1,25e-01",
 * which put_double() used to turn into "0.1,25" - a record no JSON reader
 * accepts, so the session was lost for good. A library must not call
 * setlocale() (it is process-wide and not thread-safe), so the few lines
 * that format or read a double switch this thread alone to the "C" locale
 * with uselocale() and back. The locale object is made once; glibc hands
 * out a static one for "C" without allocating. uselocale() costs two
 * thread-local stores, and only non-integer numbers come here: integers
 * (every number of a plain session record) are read and written digit by
 * digit without any libc call. If newlocale() fails (another libc, out of
 * memory) the numbers follow the process locale as before. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void) {
  c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Switch this thread to the "C" locale; returns what to restore with
 * c_locale_end(), or (locale_t)0 when nothing was switched. */
static locale_t c_locale_begin(void) {
  pthread_once(&c_locale_once, c_locale_init);
  if (c_locale == (locale_t)0)
    return (locale_t)0;
  return uselocale(c_locale);
}

static void c_locale_end(locale_t old) {
  if (old != (locale_t)0)
    uselocale(old);
}

/* strtod() of a NUL-terminated JSON number, whatever the locale. */
static double c_strtod(const char *s) {
  locale_t old = c_locale_begin();
  double d = strtod(s, NULL);
  c_locale_end(old);
  return d;
}

typedef struct reader {
  const char *text; /* where the text starts */
  const char *p;
  const char *end;
  int depth;
  int max_depth;
  int too_deep;
  int oom;
  /* Validate only: values are checked as strictly but not built (every
   * value read is json_null(), which allocates nothing). */
  int nobuild;
  /* Set when the text is not exactly what csn__json_dump() would write for
   * the values read (whitespace, an escape, a non-integer or long number,
   * "-0", a duplicate key): see csn__json_parse_record(). */
  int noncanon;
  /* csn__json_parse_record() only: the record's "cookie" member. */
  csn__json_member_fn cookie_fn;
  void *cookie_ud;
  csn__record_scan *scan;
  csn__buf scratch; /* decoded string bytes */
} reader;

static void skip_ws(reader *r) {
  const char *p = r->p;
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
    r->p++;
  if (r->p != p)
    r->noncanon = 1;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static void put_utf8(csn__buf *b, unsigned long cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  csn__buf_append(b, u, n);
}

/* Bytes a string holds as they are: printable ASCII but '"' and '\\'. */
#define PLAIN8(c)                                                        \
  (c) + 0 != '"' && (c) + 0 != '\\', (c) + 1 != '"' && (c) + 1 != '\\',     \
      (c) + 2 != '"' && (c) + 2 != '\\', (c) + 3 != '"' && (c) + 3 != '\\', \
      (c) + 4 != '"' && (c) + 4 != '\\', (c) + 5 != '"' && (c) + 5 != '\\', \
      (c) + 6 != '"' && (c) + 6 != '\\', (c) + 7 != '"' && (c) + 7 != '\\'
static const unsigned char plain_byte[256] = {
    [0x20] = PLAIN8(0x20), PLAIN8(0x28), PLAIN8(0x30), PLAIN8(0x38),
    PLAIN8(0x40),          PLAIN8(0x48), PLAIN8(0x50), PLAIN8(0x58),
    PLAIN8(0x60),          PLAIN8(0x68), PLAIN8(0x70), PLAIN8(0x78),
};
#undef PLAIN8

/* A string token (r->p at the opening quote). On success the decoded bytes
 * are in *s and *n: a slice of the input when there was no escape (the common
 * case, no copy), else of r->scratch. */
static int read_string(reader *r, const char **s, size_t *n) {
  const char *start = ++r->p, *run;
  int escaped = 0;

  r->scratch.len = 0;
  run = start;
  /* The bulk of every string, in a local pointer: the plain run up to the
   * closing quote. Only a string that has no escape and no byte outside
   * printable ASCII ends here. */
  {
    const char *p = start, *end = r->end;
    while (p < end && plain_byte[(unsigned char)*p])
      p++;
    if (p < end && *p == '"') {
      *s = start;
      *n = (size_t)(p - start);
      r->p = p + 1;
      return 0;
    }
    r->p = p;
  }
  while (r->p < r->end) {
    unsigned char c = (unsigned char)*r->p;
    if (plain_byte[c]) {
      r->p++;
      while (r->p < r->end && plain_byte[(unsigned char)*r->p])
        r->p++;
      continue;
    }
    if (c == '"') {
      if (!escaped) {
        *s = start;
        *n = (size_t)(r->p - start);
      } else {
        csn__buf_append(&r->scratch, run, (size_t)(r->p - run));
        if (r->scratch.oom) {
          r->oom = 1;
          return -1;
        }
        *s = r->scratch.data ? r->scratch.data : "";
        *n = r->scratch.len;
      }
      r->p++;
      return 0;
    }
    if (c < 0x20)
      return -1; /* raw control characters are not JSON */
    if (c == '\\') {
      unsigned cp, lo;
      escaped = 1;
      r->noncanon = 1;
      csn__buf_append(&r->scratch, run, (size_t)(r->p - run));
      if (r->end - r->p < 2)
        return -1;
      switch (r->p[1]) {
      case '"': csn__buf_putc(&r->scratch, '"'); break;
      case '\\': csn__buf_putc(&r->scratch, '\\'); break;
      case '/': csn__buf_putc(&r->scratch, '/'); break;
      case 'b': csn__buf_putc(&r->scratch, '\b'); break;
      case 'f': csn__buf_putc(&r->scratch, '\f'); break;
      case 'n': csn__buf_putc(&r->scratch, '\n'); break;
      case 'r': csn__buf_putc(&r->scratch, '\r'); break;
      case 't': csn__buf_putc(&r->scratch, '\t'); break;
      case 'u':
        if (r->end - r->p < 6 || hex4(r->p + 2, &cp) != 0)
          return -1;
        r->p += 4;
        /* A surrogate pair is one code point; a lone surrogate has no
         * UTF-8 form, so the record cannot be represented: refuse it. */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (r->end - r->p < 8 || r->p[2] != '\\' || r->p[3] != 'u' ||
              hex4(r->p + 4, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return -1;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          r->p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return -1;
        }
        put_utf8(&r->scratch, cp);
        break;
      default:
        return -1;
      }
      r->p += 2;
      run = r->p;
      continue;
    }
    if (c >= 0x80) {
      /* Validate one UTF-8 sequence in place. */
      size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4 : 0;
      if (len == 0 || (size_t)(r->end - r->p) < len ||
          !csn__utf8_valid(r->p, len))
        return -1;
      r->p += len;
      continue;
    }
    r->p++;
  }
  return -1; /* unterminated */
}

/* A number value; a NULL from jansson here can only mean out of memory. */
static json_t *oom_check(reader *r, json_t *j) {
  if (j == NULL)
    r->oom = 1;
  return j;
}

/* The number token at r->p, checked against the JSON grammar and passed
 * over. Returns its length (0: not a number) and sets *is_int (no fraction,
 * no exponent). */
static size_t scan_number(reader *r, int *is_int) {
  const char *s = r->p;
  *is_int = 1;
  if (r->p < r->end && *r->p == '-')
    r->p++;
  if (r->p >= r->end)
    return 0;
  if (*r->p == '0') {
    r->p++;
  } else if (*r->p >= '1' && *r->p <= '9') {
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
      r->p++;
  } else {
    return 0;
  }
  if (r->p < r->end && *r->p == '.') {
    *is_int = 0;
    r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
      return 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
      r->p++;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    *is_int = 0;
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
      r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
      return 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
      r->p++;
  }
  return (size_t)(r->p - s);
}

/* The value of an integer token of at most 18 digits (no overflow). */
static int64_t short_int(const char *s, size_t n) {
  int64_t v = 0;
  const char *q = s + (*s == '-'), *end = s + n;
  for (; q < end; q++)
    v = v * 10 + (*q - '0');
  return *s == '-' ? -v : v;
}

static json_t *read_number(reader *r) {
  const char *s = r->p;
  int is_int;
  char tmp[64];
  size_t n = scan_number(r, &is_int);

  if (n == 0)
    return NULL;
  /* What the writer prints back differs from this text: a fraction or an
   * exponent, a long integer, or -0 (written "0"). */
  if (!is_int || n > 18 || (n == 2 && s[0] == '-' && s[1] == '0'))
    r->noncanon = 1;
  if (r->nobuild)
    return json_null();
  if (is_int && n <= 18) /* at most 18 digits: fits int64 */
    return oom_check(r, json_integer(short_int(s, n)));
  if (n >= sizeof tmp) {
    /* Absurdly long numbers: JavaScript still reads them as a double. */
    char *big = csn__strndup(s, n);
    double d;
    json_t *j;
    if (big == NULL) {
      r->oom = 1;
      return NULL;
    }
    d = c_strtod(big);
    csn__free(big);
    j = json_real(isfinite(d) ? d : (d > 0 ? 1.7976931348623157e308
                                           : -1.7976931348623157e308));
    if (j == NULL)
      r->oom = 1;
    return j;
  }
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  if (is_int) {
    /* 19+ digits: an int64 if it fits, else a double as in JavaScript. */
    long long v;
    errno = 0;
    v = strtoll(tmp, NULL, 10);
    if (errno != ERANGE)
      return oom_check(r, json_integer((json_int_t)v));
  }
  {
    double d = c_strtod(tmp);
    /* JSON.parse gives Infinity for 1e400; JSON.stringify then writes
     * null. The closest thing a JSON value can carry is the largest double;
     * jansson has no infinity. */
    if (!isfinite(d))
      d = d > 0 ? 1.7976931348623157e308 : -1.7976931348623157e308;
    return oom_check(r, json_real(d));
  }
}

static json_t *read_value(reader *r);
static int read_root_cookie(reader *r, const char *kstart);

/* An object. Without r->nobuild it is built (a jansson object), else only
 * checked (json_null() stands for it). In csn__json_parse_record() the
 * root's "cookie" member goes to read_root_cookie() instead. */
static json_t *read_members(reader *r);

static json_t *read_object(reader *r) {
  r->p++; /* '{' */
  return read_members(r);
}

/* An object's members and its closing brace, the opening one read (or, in
 * csn__json_parse_members(), implied). */
static json_t *read_members(reader *r) {
  json_t *obj = NULL;
  if (!r->nobuild && (obj = json_object()) == NULL) {
    r->oom = 1;
    return NULL;
  }
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return obj ? obj : json_null();
  }
  for (;;) {
    const char *k, *kstart;
    size_t kn;
    json_t *v;
    char stackkey[128], *key = NULL;

    skip_ws(r);
    kstart = r->p;
    if (r->p >= r->end || *r->p != '"' || read_string(r, &k, &kn) != 0)
      goto fail;
    if (r->scan != NULL && r->depth == 1 && !r->nobuild && kn == 6 &&
        memcmp(k, "cookie", 6) == 0) {
      skip_ws(r);
      if (r->p >= r->end || *r->p != ':')
        goto fail;
      r->p++;
      if (read_root_cookie(r, kstart) != 0)
        goto fail;
      goto next;
    }
    if (!r->nobuild) {
      /* The key must outlive the value's parse (which reuses scratch). */
      key = kn < sizeof stackkey ? stackkey : csn__malloc(kn + 1);
      if (key == NULL) {
        r->oom = 1;
        goto fail;
      }
      memcpy(key, k, kn);
      key[kn] = '\0';
    }
    skip_ws(r);
    if (r->p >= r->end || *r->p != ':') {
      if (key != stackkey)
        csn__free(key);
      goto fail;
    }
    r->p++;
    v = read_value(r);
    if (v == NULL) {
      if (key != stackkey)
        csn__free(key);
      goto fail;
    }
    if (!r->nobuild) {
      size_t before = json_object_size(obj);
      if (json_object_setn_new_nocheck(obj, key, kn, v) != 0) {
        r->oom = 1;
        if (key != stackkey)
          csn__free(key);
        goto fail;
      }
      /* A duplicate key replaced a value: the text has a member the
       * object does not. */
      if (json_object_size(obj) == before)
        r->noncanon = 1;
    }
    if (key != stackkey)
      csn__free(key);
  next:
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
      r->p++;
      continue;
    }
    if (r->p < r->end && *r->p == '}') {
      r->p++;
      return obj ? obj : json_null();
    }
    goto fail;
  }
fail:
  json_decref(obj);
  return NULL;
}

static json_t *read_array(reader *r) {
  json_t *arr = NULL;
  if (!r->nobuild && (arr = json_array()) == NULL) {
    r->oom = 1;
    return NULL;
  }
  r->p++; /* '[' */
  skip_ws(r);
  if (r->p < r->end && *r->p == ']') {
    r->p++;
    return arr ? arr : json_null();
  }
  for (;;) {
    json_t *v = read_value(r);
    if (v == NULL)
      goto fail;
    if (!r->nobuild && json_array_append_new(arr, v) != 0) {
      r->oom = 1;
      goto fail;
    }
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
      r->p++;
      continue;
    }
    if (r->p < r->end && *r->p == ']') {
      r->p++;
      return arr ? arr : json_null();
    }
    goto fail;
  }
fail:
  json_decref(arr);
  return NULL;
}

static int literal(reader *r, const char *word, size_t n) {
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
    return 0;
  r->p += n;
  return 1;
}

static json_t *read_value(reader *r) {
  json_t *v = NULL;
  skip_ws(r);
  if (r->p >= r->end)
    return NULL;
  /* Every value counts as a level, scalars included: the root alone is
   * depth 1 (see CSN__JSON_MAX_DEPTH). */
  if (++r->depth > r->max_depth) {
    r->too_deep = 1;
    return NULL;
  }
  switch (*r->p) {
  case '{':
    v = read_object(r);
    break;
  case '[':
    v = read_array(r);
    break;
  case '"': {
    const char *s;
    size_t n;
    if (read_string(r, &s, &n) == 0) {
      if (r->nobuild)
        v = json_null();
      else if ((v = json_stringn_nocheck(s, n)) == NULL)
        r->oom = 1;
    }
    break;
  }
  case 't':
    v = literal(r, "true", 4) ? json_true() : NULL;
    break;
  case 'f':
    v = literal(r, "false", 5) ? json_false() : NULL;
    break;
  case 'n':
    v = literal(r, "null", 4) ? json_null() : NULL;
    break;
  default:
    v = read_number(r);
    break;
  }
  r->depth--;
  return v;
}

/* ------------------------------------------------------------------------ */
/* Records: the "cookie" member without building it                          */
/* ------------------------------------------------------------------------ */

/* One member value of the cookie object, as a scalar for the hook: a
 * string without NUL, an integer of at most 18 digits, true, false or
 * null. Anything else is checked like any value and reported as
 * CSN__JSON_OTHER (the caller then reads the cookie the general way). */
static int read_scalar(reader *r, csn__json_scalar *v) {
  int ok = 0, is_int;
  size_t n;
  const char *s;

  memset(v, 0, sizeof *v);
  skip_ws(r);
  if (r->p >= r->end)
    return -1;
  if (++r->depth > r->max_depth) {
    r->too_deep = 1;
    return -1;
  }
  switch (*r->p) {
  case '"':
    if (read_string(r, &v->s, &v->n) == 0) {
      ok = 1;
      v->type = memchr(v->s, '\0', v->n) ? CSN__JSON_OTHER : CSN__JSON_STR;
    }
    break;
  case 't':
    ok = literal(r, "true", 4);
    v->type = CSN__JSON_TRUE;
    break;
  case 'f':
    ok = literal(r, "false", 5);
    v->type = CSN__JSON_FALSE;
    break;
  case 'n':
    ok = literal(r, "null", 4);
    v->type = CSN__JSON_NULL;
    break;
  case '{':
  case '[':
    /* read_value counts this level itself. */
    r->depth--;
    r->nobuild++;
    ok = read_value(r) != NULL;
    r->nobuild--;
    r->depth++;
    v->type = CSN__JSON_OTHER;
    break;
  default:
    s = r->p;
    n = scan_number(r, &is_int);
    ok = n > 0;
    if (ok && is_int && n <= 18) {
      v->type = CSN__JSON_INT;
      v->i = short_int(s, n);
    } else {
      v->type = CSN__JSON_OTHER;
    }
    break;
  }
  r->depth--;
  return ok ? 0 : -1;
}

/* The members of a cookie object, each handed to the hook (r->p at '{').
 * Keys of 64 bytes or more are checked but not reported: no member the
 * hook knows is that long. */
static int read_cookie_object(reader *r) {
  r->p++; /* '{' */
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return 0;
  }
  for (;;) {
    const char *k;
    size_t kn;
    char key[64];
    int report;
    csn__json_scalar v;

    skip_ws(r);
    if (r->p >= r->end || *r->p != '"' || read_string(r, &k, &kn) != 0)
      return -1;
    /* Copied: the value's string may reuse the scratch buffer. */
    report = kn < sizeof key;
    if (report) {
      memcpy(key, k, kn);
      key[kn] = '\0';
    }
    skip_ws(r);
    if (r->p >= r->end || *r->p != ':')
      return -1;
    r->p++;
    if (read_scalar(r, &v) != 0)
      return -1;
    if (report && r->cookie_fn(r->cookie_ud, key, kn, &v) != 0) {
      r->oom = 1;
      return -1;
    }
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
      r->p++;
      continue;
    }
    if (r->p < r->end && *r->p == '}') {
      r->p++;
      return 0;
    }
    return -1;
  }
}

/* The root's "cookie" member (r->p after its ':'); kstart is its key's
 * opening quote. An object value goes member by member to the hook, which
 * first hears of it by a call with key NULL (a later duplicate "cookie"
 * replaces an earlier one entirely, as in JSON.parse); any other value is
 * only checked. Either way the member stays out of the built object, and
 * the scan records where it is. */
static int read_root_cookie(reader *r, const char *kstart) {
  csn__record_scan *sc = r->scan;
  const char *vstart;

  skip_ws(r);
  vstart = r->p;
  if (r->p < r->end && *r->p == '{') {
    if (++r->depth > r->max_depth) {
      r->too_deep = 1;
      return -1;
    }
    if (r->cookie_fn(r->cookie_ud, NULL, 0, NULL) != 0) {
      r->oom = 1;
      return -1;
    }
    if (read_cookie_object(r) != 0)
      return -1;
    r->depth--;
    sc->cookie_is_object = 1;
  } else {
    json_t *v;
    r->nobuild++;
    v = read_value(r);
    r->nobuild--;
    if (v == NULL)
      return -1;
    sc->cookie_is_object = 0;
  }
  sc->cookies++;
  sc->member_start = (size_t)(kstart - r->text);
  sc->cookie_start = (size_t)(vstart - r->text);
  sc->cookie_end = (size_t)(r->p - r->text);
  return 0;
}

static json_t *parse(reader *r, const char *text, size_t len, int max_depth,
                     int *err, int *too_deep) {
  json_t *v;

  r->p = r->text = text;
  r->end = text + len;
  r->max_depth = max_depth;
  csn__buf_init(&r->scratch);
  v = read_value(r);
  skip_ws(r);
  if (v != NULL && r->p != r->end) {
    json_decref(v);
    v = NULL;
  }
  if (v == NULL && err)
    *err = (r->oom || r->scratch.oom) ? CSN_ENOMEM : CSN_ECORRUPT;
  if (too_deep)
    *too_deep = v == NULL && r->too_deep && !(r->oom || r->scratch.oom);
  csn__buf_free(&r->scratch);
  return v;
}

json_t *csn__json_parse(const char *text, size_t len, int *err) {
  reader r;
  memset(&r, 0, sizeof r);
  return parse(&r, text, len, CSN__JSON_MAX_DEPTH, err, NULL);
}

json_t *csn__json_parse_depth(const char *text, size_t len, int max_depth,
                              int *err) {
  reader r;
  int deep = 0;
  json_t *v;
  memset(&r, 0, sizeof r);
  v = parse(&r, text, len, max_depth, err, &deep);
  if (v == NULL && deep && err)
    *err = CSN_ERANGE;
  return v;
}

json_t *csn__json_parse_record(const char *text, size_t len,
                               csn__json_member_fn cookie_fn, void *ud,
                               csn__record_scan *scan, int *err) {
  reader r;
  json_t *v;

  memset(scan, 0, sizeof *scan);
  memset(&r, 0, sizeof r);
  r.cookie_fn = cookie_fn;
  r.cookie_ud = ud;
  r.scan = scan;
  v = parse(&r, text, len, CSN__JSON_MAX_DEPTH, err, NULL);
  if (v == NULL || !json_is_object(v) || r.noncanon)
    return v;
  scan->canonical = 1;
  if (scan->cookies != 1)
    return v;
  /* The text is what the writer prints, so the data's text is the record's
   * without the cookie member and the comma that joined it. */
  scan->cut_start = scan->member_start;
  scan->cut_end = scan->cookie_end;
  if (text[scan->cut_start - 1] == ',')
    scan->cut_start--;
  else if (text[scan->cut_end] == ',')
    scan->cut_end++;
  return v;
}

/* A root "cookie" member met by csn__json_parse_members() is only counted
 * (scan->cookies): its caller then reads the record another way. */
static int ignore_cookie(void *ud, const char *key, size_t klen,
                         const csn__json_scalar *v) {
  (void)ud, (void)key, (void)klen, (void)v;
  return 0;
}

json_t *csn__json_parse_members(const char *text, size_t len,
                                csn__record_scan *scan, int *err) {
  reader r;
  json_t *v;

  memset(scan, 0, sizeof *scan);
  memset(&r, 0, sizeof r);
  r.cookie_fn = ignore_cookie;
  r.scan = scan;
  r.p = r.text = text;
  r.end = text + len;
  r.max_depth = CSN__JSON_MAX_DEPTH;
  /* The object is the root: level 1, as read_value() would have counted
   * it for "{" + text. */
  r.depth = 1;
  csn__buf_init(&r.scratch);
  v = read_members(&r);
  skip_ws(&r);
  if (v != NULL && r.p != r.end) {
    json_decref(v);
    v = NULL;
  }
  if (v == NULL && err)
    *err = (r.oom || r.scratch.oom) ? CSN_ENOMEM : CSN_ECORRUPT;
  csn__buf_free(&r.scratch);
  if (v != NULL && !r.noncanon)
    scan->canonical = 1;
  return v;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

/* Two digits per division: every record written has two or three
 * integers (the cookie's maxAge, counters in the data). */
static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* 10^k for k = 0..19. */
static const uint64_t powers_of_ten[20] = {
    UINT64_C(1),
    UINT64_C(10),
    UINT64_C(100),
    UINT64_C(1000),
    UINT64_C(10000),
    UINT64_C(100000),
    UINT64_C(1000000),
    UINT64_C(10000000),
    UINT64_C(100000000),
    UINT64_C(1000000000),
    UINT64_C(10000000000),
    UINT64_C(100000000000),
    UINT64_C(1000000000000),
    UINT64_C(10000000000000),
    UINT64_C(100000000000000),
    UINT64_C(1000000000000000),
    UINT64_C(10000000000000000),
    UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

/* The number of decimal digits of u. */
static size_t digit_count(uint64_t u) {
#if defined(__GNUC__)
  /* log10 from the bit length (1233 / 4096 is just above log10(2)), off by
   * one at most, which the table settles. u | 1 has the digits of u (a
   * power of ten above 1 is even) and makes 0 one digit long. */
  uint64_t w = u | 1;
  unsigned t = ((64u - (unsigned)__builtin_clzll(w)) * 1233u) >> 12;
  return (size_t)t + 1 - (w < powers_of_ten[t]);
#else
  size_t n = 1;
  while (n < 20 && u >= powers_of_ten[n])
    n++;
  return n;
#endif
}

char *csn__i64_text(char *p, int64_t v) {
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  char *q, *end;
  if (v < 0)
    *p++ = '-';
  /* Counted first, so that the digits go straight to their place. */
  end = q = p + digit_count(u);
  while (u >= 100) {
    unsigned d = (unsigned)(u % 100);
    u /= 100;
    q -= 2;
    memcpy(q, digit_pairs + 2 * d, 2);
  }
  if (u >= 10) {
    q -= 2;
    memcpy(q, digit_pairs + 2 * u, 2);
  } else {
    *--q = (char)('0' + u);
  }
  return end;
}

static void put_int(csn__buf *b, int64_t v) {
  if (csn__buf_reserve(b, CSN__I64_TEXT_MAX) != CSN_OK)
    return;
  b->len = (size_t)(csn__i64_text(b->data + b->len, v) - b->data);
  b->data[b->len] = '\0';
}

/* Number#toString: the shortest digits that read back to d, placed as
 * ECMA-262 Number::toString places them (plain up to 1e21, "0.000001"
 * down to 1e-6, exponential beyond). */
static void put_double(csn__buf *b, double d) {
  char digits[32], out[40];
  int prec, exp10 = 0, k = 0, n;
  size_t o = 0;
  locale_t old;

  if (!isfinite(d)) {
    csn__buf_puts(b, "null"); /* JSON.stringify(NaN) */
    return;
  }
  if (d == 0) {
    csn__buf_putc(b, '0'); /* also -0, as in JavaScript */
    return;
  }
  if (d == floor(d) && fabs(d) < 9007199254740992.0) {
    put_int(b, (int64_t)d);
    return;
  }
  old = c_locale_begin();
  for (prec = 1; prec <= 17; prec++) {
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
    if (strtod(tmp, NULL) == d || prec == 17) {
      /* tmp: [-]D[.DDD]e[+-]XX */
      const char *q = tmp;
      if (*q == '-')
        q++;
      k = 0;
      for (; *q && *q != 'e'; q++)
        if (*q != '.')
          digits[k++] = *q;
      exp10 = atoi(q + 1);
      break;
    }
  }
  c_locale_end(old);
  while (k > 1 && digits[k - 1] == '0')
    k--;
  n = exp10 + 1; /* value = 0.d1..dk x 10^n */
  if (d < 0)
    out[o++] = '-';
  if (k <= n && n <= 21) {
    memcpy(out + o, digits, (size_t)k);
    o += (size_t)k;
    for (int i = 0; i < n - k; i++)
      out[o++] = '0';
  } else if (0 < n && n <= 21) {
    memcpy(out + o, digits, (size_t)n);
    o += (size_t)n;
    out[o++] = '.';
    memcpy(out + o, digits + n, (size_t)(k - n));
    o += (size_t)(k - n);
  } else if (-6 < n && n <= 0) {
    out[o++] = '0';
    out[o++] = '.';
    for (int i = 0; i < -n; i++)
      out[o++] = '0';
    memcpy(out + o, digits, (size_t)k);
    o += (size_t)k;
  } else {
    out[o++] = digits[0];
    if (k > 1) {
      out[o++] = '.';
      memcpy(out + o, digits + 1, (size_t)(k - 1));
      o += (size_t)(k - 1);
    }
    o += (size_t)snprintf(out + o, sizeof out - o, "e%c%d",
                          n - 1 < 0 ? '-' : '+', abs(n - 1));
  }
  csn__buf_append(b, out, o);
}

/* JSON.stringify's string escapes: the two-character forms it uses, \u00xx
 * (lowercase) for the other control characters, everything else raw. */
static void put_string(csn__buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0, i = 0;
  const unsigned char *us = (const unsigned char *)s;
  while (i < n && us[i] >= 0x20 && us[i] != '"' && us[i] != '\\')
    i++;
  if (csn__buf_reserve(b, n + 2) != CSN_OK)
    return;
  if (i == n) { /* nothing to escape: the common case, one copy */
    char *o = b->data + b->len;
    o[0] = '"';
    if (n > 0)
      memcpy(o + 1, s, n);
    o[n + 1] = '"';
    o[n + 2] = '\0';
    b->len += n + 2;
    return;
  }
  csn__buf_putc(b, '"');
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[6];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    csn__buf_append(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default:
      u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0';
      u[4] = hex[c >> 4], u[5] = hex[c & 15];
      csn__buf_append(b, u, 6);
      continue;
    }
    csn__buf_puts(b, esc);
  }
  csn__buf_append(b, s + run, n - run);
  csn__buf_putc(b, '"');
}

/* depth counts as the reader counts: the root value is depth 1. */
static void put_value(csn__buf *b, const json_t *j, int depth) {
  if (depth > CSN__JSON_MAX_DEPTH) {
    b->oom = 1; /* cannot happen for values we parsed; refuse anyway */
    return;
  }
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    void *it = json_object_iter((json_t *)j);
    int first = 1;
    csn__buf_putc(b, '{');
    /* Insertion order, as JavaScript keeps it; keys may hold NUL. */
    while (it != NULL) {
      if (!first)
        csn__buf_putc(b, ',');
      first = 0;
      put_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
      csn__buf_putc(b, ':');
      put_value(b, json_object_iter_value(it), depth + 1);
      it = json_object_iter_next((json_t *)j, it);
    }
    csn__buf_putc(b, '}');
    break;
  }
  case JSON_ARRAY: {
    size_t i;
    json_t *v;
    csn__buf_putc(b, '[');
    json_array_foreach(j, i, v) {
      if (i > 0)
        csn__buf_putc(b, ',');
      put_value(b, v, depth + 1);
    }
    csn__buf_putc(b, ']');
    break;
  }
  case JSON_STRING:
    put_string(b, json_string_value(j), json_string_length(j));
    break;
  case JSON_INTEGER:
    put_int(b, (int64_t)json_integer_value(j));
    break;
  case JSON_REAL:
    put_double(b, json_real_value(j));
    break;
  case JSON_TRUE:
    csn__buf_puts(b, "true");
    break;
  case JSON_FALSE:
    csn__buf_puts(b, "false");
    break;
  default:
    csn__buf_puts(b, "null");
    break;
  }
}

int csn__json_dump(csn__buf *b, const json_t *j) {
  put_value(b, j, 1);
  return b->oom ? CSN_ENOMEM : CSN_OK;
}

void csn__buf_put_int(csn__buf *b, int64_t v) {
  put_int(b, v);
}
