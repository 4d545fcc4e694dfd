/* session.c - req.session: the data, the cookie, and the stored record.
 *
 * The record a store holds is exactly what express-session writes:
 *
 *   {"cookie":{"originalMaxAge":60000,"expires":"...Z","httpOnly":true,
 *              "path":"/"},"views":3}
 *
 * The session keeps the user's members in a jansson object (`data`, never
 * holding "cookie") and the cookie as a C struct, and joins them only when
 * a record is written. Keeping them apart matters for modification
 * tracking: express-session hashes the session *without* its cookie, so
 * cookie changes never count as modifications. We do the same by comparing
 * the compact JSON text of `data` before the first change with the text at
 * the end of the request; a request that never calls a setter does no JSON
 * work at all (see csn__session_will_change()).
 */
#include <assert.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "csn_int.h"

/* ------------------------------------------------------------------------ */
/* Cookie <-> JSON                                                          */
/* ------------------------------------------------------------------------ */

static const char *const same_site_names[] = {
    [CSN_SAMESITE_STRICT] = "strict",
    [CSN_SAMESITE_LAX] = "lax",
    [CSN_SAMESITE_NONE] = "none",
};

static const char *const priority_names[] = {
    [CSN_PRIORITY_LOW] = "low",
    [CSN_PRIORITY_MEDIUM] = "medium",
    [CSN_PRIORITY_HIGH] = "high",
};

static void put_json_string(csn__buf *b, const char *s) {
  /* Cookie strings (domain, path) are validated ASCII, but a record from
   * another writer may hold anything: let jansson do the escaping. The
   * common case - printable ASCII without '"' or '\' - is written as it
   * is, which is what jansson and JSON.stringify write for it too. */
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;
  json_t *j;
  while (p[n] >= 0x20 && p[n] < 0x7f && p[n] != '"' && p[n] != '\\')
    n++;
  if (p[n] == '\0') {
    if (csn__buf_reserve(b, n + 2) == CSN_OK) {
      char *o = b->data + b->len;
      o[0] = '"';
      memcpy(o + 1, s, n);
      o[n + 1] = '"';
      o[n + 2] = '\0';
      b->len += n + 2;
    }
    return;
  }
  j = json_string(s);
  if (j == NULL) {
    b->oom = 1;
    return;
  }
  csn__json_dump(b, j);
  json_decref(j);
}

/* Copy a string literal to p and advance p. */
#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

/* `text` is ",\"key\":" - the member's prefix. */
static char *put_bool_member(char *p, const char *text, size_t tlen, int v) {
  if (v == CSN__ABSENT)
    return p;
  memcpy(p, text, tlen);
  p += tlen;
  if (v)
    PUT_LIT(p, "true");
  else
    PUT_LIT(p, "false");
  return p;
}

/* The member `text` (its ",\"key\":" prefix) with the string s as its
 * value, at p, when s is at most SHORT_STRING plain bytes - printable ASCII
 * but '"' and '\\', written as they are, as put_json_string() writes them;
 * NULL, with nothing written, for any other string. */
#define SHORT_STRING 64
static inline char *put_short_string_member(char *p, const char *text,
                                            size_t tlen, const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = 0;
  while (n <= SHORT_STRING && u[n] >= 0x20 && u[n] < 0x7f && u[n] != '"' &&
         u[n] != '\\')
    n++;
  if (n > SHORT_STRING || u[n] != '\0')
    return NULL;
  memcpy(p, text, tlen);
  p += tlen;
  *p++ = '"';
  memcpy(p, s, n);
  p += n;
  *p++ = '"';
  return p;
}

/* The member `text` with the string s at p, in the local array tmp that
 * p points into; a long or unusual s goes to b instead, after what tmp
 * holds so far. Returns where the array goes on. */
static inline char *put_string_member(csn__buf *b, char *tmp, char *p,
                                      const char *text, size_t tlen,
                                      const char *s) {
  char *q = put_short_string_member(p, text, tlen, s);
  if (q != NULL)
    return q;
  csn__buf_append(b, tmp, (size_t)(p - tmp));
  csn__buf_append(b, text, tlen);
  put_json_string(b, s);
  return tmp;
}

/* express-session's Cookie#toJSON order: originalMaxAge, partitioned,
 * priority, expires, secure, httpOnly, domain, path, sameSite. Every
 * record written goes through here, so the text is assembled in a local
 * array and appended at once; only a long or unusual domain or path goes
 * to the buffer on its own (after what the array holds so far). */
int csn__cookie_to_json(csn__buf *b, const csn__cookie *c) {
  /* At most 150 bytes before domain: 18 + 20 (originalMaxAge), 20
   * (partitioned), 20 (priority), 12 + 27 + 1 (expires), 15 (secure), 17
   * (httpOnly); then 11 + 66 (domain), 9 + 66 (path), 21 (sameSite). */
  char tmp[400], *p = tmp;

  PUT_LIT(p, "{\"originalMaxAge\":");
  if (c->original_max_age == CSN_TIME_NONE)
    PUT_LIT(p, "null");
  else
    p = csn__i64_text(p, c->original_max_age);
  p = put_bool_member(p, ",\"partitioned\":", 15, c->partitioned);
  if (c->priority > CSN_PRIORITY_UNSET && c->priority <= CSN_PRIORITY_HIGH) {
    size_t n = strlen(priority_names[c->priority]);
    PUT_LIT(p, ",\"priority\":\"");
    memcpy(p, priority_names[c->priority], n);
    p += n;
    *p++ = '"';
  }
  /* The date is written in place (at most 27 characters and the NUL). */
  PUT_LIT(p, ",\"expires\":\"");
  if (c->expires != CSN_TIME_NONE &&
      csn__fmt_iso8601(c->expires, p, 40) == CSN_OK) {
    p += strlen(p);
    *p++ = '"';
  } else {
    p -= 12; /* back over ",\"expires\":\"": no date */
    PUT_LIT(p, ",\"expires\":null");
  }
  p = put_bool_member(p, ",\"secure\":", 10, c->secure);
  p = put_bool_member(p, ",\"httpOnly\":", 12, c->http_only);
  if (c->domain)
    p = put_string_member(b, tmp, p, ",\"domain\":", 10, c->domain);
  if (c->path)
    p = put_string_member(b, tmp, p, ",\"path\":", 8, c->path);
  if (c->same_site == CSN_SAMESITE_TRUE) {
    PUT_LIT(p, ",\"sameSite\":true}");
  } else if (c->same_site >= CSN_SAMESITE_STRICT &&
             c->same_site <= CSN_SAMESITE_NONE) {
    size_t n = strlen(same_site_names[c->same_site]);
    PUT_LIT(p, ",\"sameSite\":\"");
    memcpy(p, same_site_names[c->same_site], n);
    p += n;
    PUT_LIT(p, "\"}");
  } else {
    *p++ = '}';
  }
  csn__buf_append(b, tmp, (size_t)(p - tmp));
  return b->oom ? CSN_ENOMEM : CSN_OK;
}

#undef PUT_LIT

static int json_flag(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v))
    return CSN__ABSENT;
  if (json_is_boolean(v))
    return json_is_true(v);
  /* JavaScript truthiness for the odd value a hand-written record holds
   * (e.g. secure: "auto" stored through the function form). */
  if (json_is_string(v))
    return json_string_length(v) > 0;
  if (json_is_number(v))
    return json_number_value(v) != 0;
  return 1;
}

/* A number of milliseconds from a JSON number, refusing NaN and values a
 * JS Date could not hold. */
static int json_ms(json_t *v, int64_t *out) {
  double d;
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if (i > CSN__TIME_MAX || i < -CSN__TIME_MAX)
      return -1;
    *out = (int64_t)i;
    return 0;
  }
  if (!json_is_real(v))
    return -1;
  d = json_real_value(v);
  if (!isfinite(d) || d > (double)CSN__TIME_MAX || d < -(double)CSN__TIME_MAX)
    return -1;
  *out = (int64_t)d;
  return 0;
}

static int lookup_name(const char *s, const char *const *names, int lo,
                       int hi) {
  for (int i = lo; i <= hi; i++)
    if (strcasecmp(s, names[i]) == 0)
      return i;
  return 0;
}

/* The path nearly every cookie has, "/": shared by every session that has
 * it and never freed (csn__cookie_free() and the path setter know it), so
 * a request does not allocate and free a copy of it. Nothing writes
 * through a cookie's path. */
static char root_path[] = "/";

/* An owned copy of s[0..n), or the shared "/"; NULL when out of memory. */
static char *path_dup(const char *s, size_t n) {
  if (n == 1 && s[0] == '/')
    return root_path;
  return csn__strndup(s, n);
}

static void path_free(char *p) {
  if (p != root_path)
    csn__free(p);
}

void csn__cookie_free(csn__cookie *c) {
  csn__free(c->domain);
  path_free(c->path);
  c->domain = c->path = NULL;
}

int csn__cookie_from_json(csn__cookie *c, json_t *obj) {
  json_t *v;
  csn__cookie n = {CSN_TIME_NONE, CSN_TIME_NONE, CSN__ABSENT, CSN__ABSENT,
                   CSN__ABSENT,   CSN_SAMESITE_UNSET, CSN_PRIORITY_UNSET,
                   NULL,          NULL};

  if (!json_is_object(obj))
    return CSN_ECORRUPT;

  v = json_object_get(obj, "originalMaxAge");
  if (v && json_ms(v, &n.original_max_age) != 0)
    n.original_max_age = CSN_TIME_NONE;

  /* Stores hand expires back as an ISO string (JSON); a number is accepted
   * as epoch milliseconds for stores that keep dates natively. */
  v = json_object_get(obj, "expires");
  if (json_is_string(v)) {
    if (csn__parse_iso8601(json_string_value(v), json_string_length(v),
                           &n.expires) != 0)
      n.expires = CSN_TIME_NONE;
  } else if (v && json_is_number(v)) {
    if (json_ms(v, &n.expires) != 0)
      n.expires = CSN_TIME_NONE;
  }

  n.http_only = json_flag(obj, "httpOnly");
  n.secure = json_flag(obj, "secure");
  n.partitioned = json_flag(obj, "partitioned");

  v = json_object_get(obj, "sameSite");
  if (json_is_true(v))
    n.same_site = CSN_SAMESITE_TRUE;
  else if (json_is_string(v))
    n.same_site = lookup_name(json_string_value(v), same_site_names,
                              CSN_SAMESITE_STRICT, CSN_SAMESITE_NONE);

  v = json_object_get(obj, "priority");
  if (json_is_string(v))
    n.priority = lookup_name(json_string_value(v), priority_names,
                             CSN_PRIORITY_LOW, CSN_PRIORITY_HIGH);

  v = json_object_get(obj, "domain");
  if (json_is_string(v) && (n.domain = csn__strdup(json_string_value(v))) == NULL)
    goto oom;
  v = json_object_get(obj, "path");
  if (json_is_string(v) &&
      (n.path = path_dup(json_string_value(v),
                         strlen(json_string_value(v)))) == NULL)
    goto oom;

  csn__cookie_free(c);
  *c = n;
  return CSN_OK;
oom:
  csn__cookie_free(&n);
  return CSN_ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Session object                                                           */
/* ------------------------------------------------------------------------ */

void csn__session_init(csn_session *s, csn_request *r) {
  /* The id is a string: its first byte is enough (see csn_int.h). */
  memset(s, 0, offsetof(csn_session, id));
  s->id[0] = '\0';
  s->req = r;
  s->cookie.original_max_age = CSN_TIME_NONE;
  s->cookie.expires = CSN_TIME_NONE;
  s->cookie.http_only = CSN__ABSENT;
  s->cookie.secure = CSN__ABSENT;
  s->cookie.partitioned = CSN__ABSENT;
}

void csn__session_reset(csn_session *s) {
  json_decref(s->data);
  s->data = NULL;
  csn__cookie_free(&s->cookie);
  csn__session_init(s, s->req);
}

/* express `new Cookie(options)`: path "/" and httpOnly true unless told
 * otherwise; maxAge turns into an absolute expires; 'auto' values are
 * resolved against the request (express does this only for the static
 * options object; we do it for the function form too, see PARITY.md). */
int csn__session_new_cookie(csn_session *s, const csn_cookie_options *o,
                            int resolve_auto, int secure, int64_t now) {
  csn__cookie c;

  memset(&c, 0, sizeof c);
  c.original_max_age = CSN_TIME_NONE;
  c.expires = CSN_TIME_NONE;
  if (o->max_age_ms != CSN_TIME_NONE) {
    c.expires = now + o->max_age_ms;
    c.original_max_age = o->max_age_ms;
  } else if (o->expires_ms != CSN_TIME_NONE) {
    c.expires = o->expires_ms;
    c.original_max_age = o->expires_ms - now;
  }
  c.http_only = o->http_only ? 1 : 0;
  if (o->secure == CSN_SECURE_ON)
    c.secure = 1;
  else if (o->secure == CSN_SECURE_AUTO && resolve_auto)
    c.secure = secure ? 1 : 0;
  else if (o->secure == CSN_SECURE_AUTO)
    c.secure = 1;
  else
    c.secure = CSN__ABSENT;
  c.partitioned = o->partitioned ? 1 : CSN__ABSENT;
  c.priority = o->priority;
  c.same_site = o->same_site;
  if (o->same_site == CSN_SAMESITE_AUTO)
    c.same_site = secure ? CSN_SAMESITE_NONE : CSN_SAMESITE_LAX;
  c.domain = NULL;
  c.path = NULL;
  if (o->domain && (c.domain = csn__strdup(o->domain)) == NULL)
    return CSN_ENOMEM;
  if ((c.path = o->path ? path_dup(o->path, strlen(o->path)) : root_path) ==
      NULL) {
    csn__free(c.domain);
    return CSN_ENOMEM;
  }
  csn__cookie_free(&s->cookie);
  s->cookie = c;
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Loading a record                                                         */
/* ------------------------------------------------------------------------ */

/* The cookie read member by member from the record's text (the hook of
 * csn__json_parse_record()), with csn__cookie_from_json()'s rules: `n` is
 * what that function would produce, as long as `other` stays 0. A member
 * that is not a plain scalar sets `other`, and the cookie is then read
 * from its text the general way. */
typedef struct cookie_reader {
  csn__cookie n;
  int other;
} cookie_reader;

static void cookie_reader_reset(cookie_reader *cr) {
  csn__cookie_free(&cr->n);
  cr->n.original_max_age = CSN_TIME_NONE;
  cr->n.expires = CSN_TIME_NONE;
  cr->n.http_only = CSN__ABSENT;
  cr->n.secure = CSN__ABSENT;
  cr->n.partitioned = CSN__ABSENT;
  cr->n.same_site = CSN_SAMESITE_UNSET;
  cr->n.priority = CSN_PRIORITY_UNSET;
  cr->other = 0;
}

#define KEY_IS(lit) (klen == sizeof(lit) - 1 && memcmp(key, lit, klen) == 0)

/* json_flag() of a scalar. */
static int scalar_flag(const csn__json_scalar *v) {
  switch (v->type) {
  case CSN__JSON_NULL:
    return CSN__ABSENT;
  case CSN__JSON_TRUE:
    return 1;
  case CSN__JSON_FALSE:
    return 0;
  case CSN__JSON_STR:
    return v->n > 0;
  default: /* CSN__JSON_INT */
    return v->i != 0;
  }
}

/* lookup_name() of a string of known length (without NUL). */
static int scalar_name(const csn__json_scalar *v, const char *const *names,
                       int lo, int hi) {
  for (int i = lo; i <= hi; i++)
    if (strlen(names[i]) == v->n && strncasecmp(v->s, names[i], v->n) == 0)
      return i;
  return 0;
}

static int set_scalar_string(char **slot, const csn__json_scalar *v) {
  char *copy = NULL;
  if (v->type == CSN__JSON_STR && (copy = csn__strndup(v->s, v->n)) == NULL)
    return -1;
  csn__free(*slot);
  *slot = copy;
  return 0;
}

static int cookie_member(void *ud, const char *key, size_t klen,
                         const csn__json_scalar *v) {
  cookie_reader *cr = ud;
  csn__cookie *n = &cr->n;

  if (key == NULL) { /* a (later) "cookie" object starts: it alone counts */
    cookie_reader_reset(cr);
    return 0;
  }
  if (cr->other)
    return 0;
  /* A member this reader does not interpret is ignored, as
   * csn__cookie_from_json() ignores it; a value it cannot take as a scalar
   * sends the cookie the general way. */
  if (v->type == CSN__JSON_OTHER) {
    if (KEY_IS("originalMaxAge") || KEY_IS("expires") ||
        KEY_IS("httpOnly") || KEY_IS("secure") || KEY_IS("partitioned") ||
        KEY_IS("sameSite") || KEY_IS("priority") || KEY_IS("domain") ||
        KEY_IS("path"))
      cr->other = 1;
    return 0;
  }
  if (KEY_IS("originalMaxAge")) {
    /* json_ms(): an integer in the JS Date range, else null. */
    n->original_max_age = v->type == CSN__JSON_INT && v->i <= CSN__TIME_MAX &&
                                  v->i >= -CSN__TIME_MAX
                              ? v->i
                              : CSN_TIME_NONE;
  } else if (KEY_IS("expires")) {
    if (v->type == CSN__JSON_STR) {
      if (csn__parse_iso8601(v->s, v->n, &n->expires) != 0)
        n->expires = CSN_TIME_NONE;
    } else if (v->type == CSN__JSON_INT && v->i <= CSN__TIME_MAX &&
               v->i >= -CSN__TIME_MAX) {
      n->expires = v->i;
    } else {
      n->expires = CSN_TIME_NONE;
    }
  } else if (KEY_IS("httpOnly")) {
    n->http_only = scalar_flag(v);
  } else if (KEY_IS("secure")) {
    n->secure = scalar_flag(v);
  } else if (KEY_IS("partitioned")) {
    n->partitioned = scalar_flag(v);
  } else if (KEY_IS("sameSite")) {
    if (v->type == CSN__JSON_TRUE)
      n->same_site = CSN_SAMESITE_TRUE;
    else if (v->type == CSN__JSON_STR)
      n->same_site = scalar_name(v, same_site_names, CSN_SAMESITE_STRICT,
                                 CSN_SAMESITE_NONE);
    else
      n->same_site = CSN_SAMESITE_UNSET;
  } else if (KEY_IS("priority")) {
    n->priority = v->type == CSN__JSON_STR
                      ? scalar_name(v, priority_names, CSN_PRIORITY_LOW,
                                    CSN_PRIORITY_HIGH)
                      : CSN_PRIORITY_UNSET;
  } else if (KEY_IS("domain")) {
    return set_scalar_string(&n->domain, v);
  } else if (KEY_IS("path")) {
    char *copy = NULL;
    if (v->type == CSN__JSON_STR && (copy = path_dup(v->s, v->n)) == NULL)
      return -1;
    path_free(n->path);
    n->path = copy;
  }
  return 0;
}

#undef KEY_IS

/* ------------------------------------------------------------------------ */
/* The common record, matched rather than parsed                            */
/* ------------------------------------------------------------------------ */

/* Nearly every record starts the way csn__cookie_to_json() and express's
 * Cookie#toJSON write it: {"cookie":{...}, members in a fixed order, no
 * whitespace, plain strings. match_cookie() checks the text against that
 * shape piece by piece and reads the values as it goes; anything else
 * (another order, whitespace, an escape, a fraction, a member it does not
 * know) is left to the general reader. What it accepts is valid JSON and
 * gives exactly what csn__cookie_from_json() gives for it. */
typedef struct matcher {
  const char *p, *end;
} matcher;

static int lit(matcher *m, const char *s, size_t n) {
  if ((size_t)(m->end - m->p) < n || memcmp(m->p, s, n) != 0)
    return 0;
  m->p += n;
  return 1;
}
#define LIT(m, s) lit((m), (s), sizeof(s) - 1)

/* A JSON integer of at most 16 digits, ending where the next literal
 * starts (a fraction or exponent then fails the next literal). */
static int match_int(matcher *m, int64_t *out) {
  const char *q = m->p, *first, *stop;
  int neg = 0;
  size_t nd;
  int64_t v = 0;
  if (q < m->end && *q == '-') {
    neg = 1;
    q++;
  }
  /* At most 17 digits are read: a 17th one is already too long. */
  first = q;
  stop = m->end - q > 17 ? q + 17 : m->end;
  while (q < stop && (unsigned)(*q - '0') < 10) {
    v = v * 10 + (*q - '0');
    q++;
  }
  nd = (size_t)(q - first);
  if (nd == 0 || nd > 16 || (nd > 1 && *first == '0'))
    return 0; /* none, too long, or a leading zero */
  m->p = q;
  *out = neg ? -v : v;
  return 1;
}

/* Bytes a JSON string holds as they are: ASCII from 0x20 on but '"' and
 * '\\' (a table: the date alone is 24 of them on every load). */
#define PLAIN8(c)                                                        \
  (c) + 0 != '"' && (c) + 0 != '\\', (c) + 1 != '"' && (c) + 1 != '\\',     \
      (c) + 2 != '"' && (c) + 2 != '\\', (c) + 3 != '"' && (c) + 3 != '\\', \
      (c) + 4 != '"' && (c) + 4 != '\\', (c) + 5 != '"' && (c) + 5 != '\\', \
      (c) + 6 != '"' && (c) + 6 != '\\', (c) + 7 != '"' && (c) + 7 != '\\'
static const unsigned char plain_ascii[256] = {
    [0x20] = PLAIN8(0x20), PLAIN8(0x28), PLAIN8(0x30), PLAIN8(0x38),
    PLAIN8(0x40),          PLAIN8(0x48), PLAIN8(0x50), PLAIN8(0x58),
    PLAIN8(0x60),          PLAIN8(0x68), PLAIN8(0x70), PLAIN8(0x78),
};
#undef PLAIN8

/* A string of such bytes (r->p after the opening quote); sets the slice
 * and moves past the closing quote. */
static int match_plain(matcher *m, const char **s, size_t *n) {
  const char *q = m->p, *end = m->end;
  while (q < end && plain_ascii[(unsigned char)*q])
    q++;
  if (q >= end || *q != '"')
    return 0;
  *s = m->p;
  *n = (size_t)(q - m->p);
  m->p = q + 1;
  return 1;
}

/* true, false or null as json_flag() reads them. */
static int match_flag(matcher *m, int *out) {
  if (LIT(m, "true"))
    *out = 1;
  else if (LIT(m, "false"))
    *out = 0;
  else if (LIT(m, "null"))
    *out = CSN__ABSENT;
  else
    return 0;
  return 1;
}

static int match_name(matcher *m, const char *const *names, int lo, int hi,
                      int *out) {
  csn__json_scalar v;
  if (!match_plain(m, &v.s, &v.n))
    return 0;
  *out = scalar_name(&v, names, lo, hi);
  return 1;
}

/* The cookie object at the start of the record into *c; returns 1 and
 * leaves m->p after it, 0 if the text has another shape (c is then to be
 * freed by the caller), -1 when out of memory. */
static int match_cookie(matcher *m, csn__cookie *c) {
  const char *s;
  size_t n;
  int64_t v;

  if (!LIT(m, "{\"cookie\":{\"originalMaxAge\":"))
    return 0;
  if (!LIT(m, "null")) {
    if (!match_int(m, &v))
      return 0;
    c->original_max_age =
        v <= CSN__TIME_MAX && v >= -CSN__TIME_MAX ? v : CSN_TIME_NONE;
  }
  if (LIT(m, ",\"partitioned\":") && !match_flag(m, &c->partitioned))
    return 0;
  if (LIT(m, ",\"priority\":\"") &&
      !match_name(m, priority_names, CSN_PRIORITY_LOW, CSN_PRIORITY_HIGH,
                  &c->priority))
    return 0;
  if (!LIT(m, ",\"expires\":"))
    return 0;
  if (LIT(m, "\"")) {
    /* toISOString's 24 characters and the closing quote: a date the
     * parser takes is made of digits and - : T . Z + only, so the string
     * ends right there and match_plain() would find just this. */
    if (m->end - m->p > 24 && m->p[24] == '"' &&
        csn__parse_iso8601(m->p, 24, &c->expires) == 0) {
      m->p += 25;
    } else {
      if (!match_plain(m, &s, &n))
        return 0;
      if (csn__parse_iso8601(s, n, &c->expires) != 0)
        c->expires = CSN_TIME_NONE;
    }
  } else if (!LIT(m, "null")) {
    return 0;
  }
  if (LIT(m, ",\"secure\":") && !match_flag(m, &c->secure))
    return 0;
  if (LIT(m, ",\"httpOnly\":") && !match_flag(m, &c->http_only))
    return 0;
  if (LIT(m, ",\"domain\":\"")) {
    if (!match_plain(m, &s, &n))
      return 0;
    if ((c->domain = csn__strndup(s, n)) == NULL)
      return -1;
  }
  if (LIT(m, ",\"path\":\"")) {
    if (!match_plain(m, &s, &n))
      return 0;
    if ((c->path = path_dup(s, n)) == NULL)
      return -1;
  }
  if (LIT(m, ",\"sameSite\":")) {
    if (LIT(m, "true"))
      c->same_site = CSN_SAMESITE_TRUE;
    else if (LIT(m, "\"")) {
      if (!match_name(m, same_site_names, CSN_SAMESITE_STRICT,
                      CSN_SAMESITE_NONE, &c->same_site))
        return 0;
    } else if (!LIT(m, "false") && !LIT(m, "null")) {
      return 0;
    }
  }
  return LIT(m, "}") ? 1 : 0;
}

/* The record through match_cookie(), the rest as the data object: after
 * the cookie object the record is either '}' or ',' and more members, so
 * the data's text is "{" and what follows - valid exactly when the record
 * is, and read in place (csn__json_parse_members()). Returns CSN_OK,
 * CSN_ENOMEM, CSN_ECORRUPT (not JSON; *unreadable set), or 1 when the
 * record has another shape (nothing changed). The data's text, when
 * canonical, goes out as a tail of json (data_tail) or else as a copy
 * (data_text). */
static int load_common(csn_session *s, const char *json, size_t len,
                       int *unreadable, char **data_text,
                       const char **data_tail, size_t *tail_len) {
  matcher m = {json, json + len};
  csn__cookie c = {CSN_TIME_NONE, CSN_TIME_NONE, CSN__ABSENT, CSN__ABSENT,
                   CSN__ABSENT,   CSN_SAMESITE_UNSET, CSN_PRIORITY_UNSET,
                   NULL,          NULL};
  csn__record_scan scan;
  const char *rest;
  size_t rlen;
  json_t *data;
  int rc = match_cookie(&m, &c);

  if (rc <= 0) {
    csn__cookie_free(&c);
    return rc < 0 ? CSN_ENOMEM : 1;
  }
  if (m.p < m.end && *m.p == ',') {
    /* A member must follow: ",}" is no JSON, though "{}" would be. */
    const char *q = m.p + 1;
    while (q < m.end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
      q++;
    if (q >= m.end || *q != '"') {
      csn__cookie_free(&c);
      return 1;
    }
    rest = m.p + 1;
  } else if (m.p < m.end && *m.p == '}') {
    rest = m.p;
  } else {
    csn__cookie_free(&c);
    return 1;
  }
  rlen = (size_t)(m.end - rest);
  data = csn__json_parse_members(rest, rlen, &scan, &rc);
  if (data == NULL) {
    csn__cookie_free(&c);
    if (rc == CSN_ENOMEM)
      return rc;
    if (unreadable != NULL)
      *unreadable = 1;
    return csn__set_error(CSN_ECORRUPT, "stored session is not JSON");
  }
  if (scan.cookies > 0) {
    /* A second "cookie" member: the last one counts, as in JSON.parse. */
    json_decref(data);
    csn__cookie_free(&c);
    return 1;
  }
  if (scan.canonical && data_tail != NULL) {
    *data_tail = rest;
    *tail_len = rlen;
  } else if (scan.canonical && data_text != NULL) {
    char *text = csn__malloc(rlen + 2);
    if (text == NULL) {
      json_decref(data);
      csn__cookie_free(&c);
      return CSN_ENOMEM;
    }
    text[0] = '{';
    memcpy(text + 1, rest, rlen);
    text[rlen + 1] = '\0';
    *data_text = text;
  }
  csn__cookie_free(&s->cookie);
  s->cookie = c;
  json_decref(s->data);
  s->data = data;
  return CSN_OK;
}

#undef LIT

/* Parse a stored record (JSON.parse semantics, see json.c). The cookie is
 * read straight from the text as it is parsed (cookie_member), and the
 * data's text, when asked for, is cut from the record's text: a returning
 * visitor's load builds one small object and no cookie object at all. */
int csn__session_load(csn_session *s, const char *json, size_t len,
                      int *unreadable, char **data_text) {
  return csn__session_load_tail(s, json, len, unreadable, data_text, NULL,
                                NULL);
}

int csn__session_load_tail(csn_session *s, const char *json, size_t len,
                           int *unreadable, char **data_text,
                           const char **data_tail, size_t *tail_len) {
  json_t *root;
  csn__record_scan scan;
  cookie_reader cr;
  int rc = CSN_OK;

  if (unreadable != NULL)
    *unreadable = 0;
  if (data_text != NULL)
    *data_text = NULL;
  if (data_tail != NULL) {
    *data_tail = NULL;
    *tail_len = 0;
  }
  if ((rc = load_common(s, json, len, unreadable, data_text, data_tail,
                        tail_len)) <= 0)
    return rc;
  rc = CSN_OK;
  memset(&cr, 0, sizeof cr);
  cookie_reader_reset(&cr);
  root = csn__json_parse_record(json, len, cookie_member, &cr, &scan, &rc);
  if (root == NULL) {
    csn__cookie_free(&cr.n);
    if (rc == CSN_ENOMEM)
      return rc;
    if (unreadable != NULL)
      *unreadable = 1;
    return csn__set_error(CSN_ECORRUPT, "stored session is not JSON");
  }
  if (!json_is_object(root)) {
    json_decref(root);
    csn__cookie_free(&cr.n);
    if (unreadable != NULL)
      *unreadable = 1;
    return csn__set_error(CSN_ECORRUPT, "stored session is not an object");
  }
  if (scan.cookies == 0 || !scan.cookie_is_object) {
    json_decref(root);
    csn__cookie_free(&cr.n);
    return csn__set_error(CSN_ECORRUPT,
                          "stored session has no cookie object");
  }
  if (cr.other) {
    /* A member the scalar reader cannot take: the cookie object's own
     * text, read the general way (it was checked with the record). */
    json_t *cobj = csn__json_parse(json + scan.cookie_start,
                                   scan.cookie_end - scan.cookie_start, &rc);
    csn__cookie_free(&cr.n);
    if (cobj == NULL) {
      json_decref(root);
      return rc == CSN_ENOMEM ? CSN_ENOMEM : CSN_ECORRUPT;
    }
    rc = csn__cookie_from_json(&cr.n, cobj);
    json_decref(cobj);
    if (rc < 0) {
      json_decref(root);
      return rc;
    }
  }
  if (data_text != NULL) {
    *data_text = NULL;
    if (scan.canonical && scan.cookies == 1) {
      size_t head = scan.cut_start, tail = len - scan.cut_end;
      char *t = csn__malloc(head + tail + 1);
      if (t == NULL) {
        json_decref(root);
        csn__cookie_free(&cr.n);
        return CSN_ENOMEM;
      }
      memcpy(t, json, head);
      memcpy(t + head, json + scan.cut_end, tail);
      t[head + tail] = '\0';
      *data_text = t;
    }
  }
  csn__cookie_free(&s->cookie);
  s->cookie = cr.n;
  json_decref(s->data);
  s->data = root;
  return CSN_OK;
}

int csn__session_from_record(csn_session *s, const char *json, size_t len,
                             int *unreadable) {
  return csn__session_load(s, json, len, unreadable, NULL);
}

char *csn__session_data_text(const csn_session *s) {
  csn__buf b;
  if (s->data == NULL || json_object_size(s->data) == 0)
    return csn__strdup("{}");
  csn__buf_init(&b);
  csn__json_dump(&b, s->data);
  return csn__buf_steal(&b, NULL);
}

int csn__session_data_text_into(const csn_session *s, csn__buf *b) {
  if (s->data == NULL || json_object_size(s->data) == 0)
    return csn__buf_append(b, "{}", 2);
  return csn__json_dump(b, s->data);
}

/* {"cookie":{...}} followed by the data members, cookie first as
 * express-session writes new sessions. `data_text` may be passed when the
 * caller already has it. */
int csn__session_record_into(const csn_session *s, const char *data_text,
                             size_t dlen, csn__buf *b) {
  csn__buf_reserve(b, dlen + 200 +
                          (s->cookie.domain ? strlen(s->cookie.domain) : 0) +
                          (s->cookie.path ? strlen(s->cookie.path) : 0));
  csn__buf_append(b, "{\"cookie\":", 10);
  csn__cookie_to_json(b, &s->cookie);
  if (dlen == 2 && data_text[1] == '}') {
    csn__buf_putc(b, '}');
  } else {
    assert(data_text[0] == '{');
    csn__buf_putc(b, ',');
    csn__buf_append(b, data_text + 1, dlen - 1);
  }
  return b->oom ? CSN_ENOMEM : CSN_OK;
}

static char *session_record(const csn_session *s, const char *data_text,
                            size_t *len) {
  csn__buf b;
  char *owned = NULL;

  if (data_text == NULL) {
    owned = csn__session_data_text(s);
    if (owned == NULL)
      return NULL;
    data_text = owned;
  }
  csn__buf_init(&b);
  csn__session_record_into(s, data_text, strlen(data_text), &b);
  csn__free(owned);
  return csn__buf_steal(&b, len);
}

char *csn__session_record(const csn_session *s, size_t *len) {
  return session_record(s, NULL, len);
}

char *csn__session_record_with(const csn_session *s, const char *data_text,
                               size_t *len) {
  return session_record(s, data_text, len);
}

/* Before the first change of a request, remember the data's text: that is
 * express-session's originalHash. Later changes only bump the counter; the
 * comparison happens once, at commit. */
int csn__session_will_change(csn_session *s) {
  csn_request *r = s->req;
  if (!r->has_session)
    return CSN_ESTATE;
  if (s->data == NULL && (s->data = json_object()) == NULL)
    return CSN_ENOMEM;
  if (r->mut_gen == 0 && r->orig_text == NULL && r->orig_tail == NULL) {
    r->orig_text = csn__session_data_text(s);
    if (r->orig_text == NULL)
      return CSN_ENOMEM;
  }
  r->mut_gen++;
  /* A cached "current" text (from an explicit save) is stale now. */
  csn__request_drop_cur(r);
  return CSN_OK;
}

/* resetMaxAge(): expires = now + originalMaxAge, or null. */
void csn__session_touch_cookie(csn_session *s, int64_t now) {
  if (s->cookie.original_max_age != CSN_TIME_NONE)
    s->cookie.expires = now + s->cookie.original_max_age;
  else
    s->cookie.expires = CSN_TIME_NONE;
}

/* ------------------------------------------------------------------------ */
/* Public data API                                                          */
/* ------------------------------------------------------------------------ */

static int live(const csn_session *s) {
  return s != NULL && s->req != NULL && s->req->has_session;
}

static json_t *member(const csn_session *s, const char *key, int *rc) {
  json_t *v;
  if (!live(s) || key == NULL) {
    *rc = s && key ? CSN_ESTATE : CSN_EINVAL;
    return NULL;
  }
  v = s->data ? json_object_get(s->data, key) : NULL;
  *rc = v ? CSN_OK : CSN_ENOENT;
  return v;
}

const char *csn_session_id(const csn_session *s) {
  return s ? s->id : NULL;
}

char *csn_session_id_dup(const csn_session *s) {
  return s ? csn__strdup(s->id) : NULL;
}

int csn_session_get_int(const csn_session *s, const char *key, int64_t *out) {
  int rc;
  json_t *v = member(s, key, &rc);
  if (v == NULL)
    return rc;
  if (json_is_integer(v)) {
    *out = (int64_t)json_integer_value(v);
    return CSN_OK;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    /* JavaScript has one number type: 3.0 written by another writer is 3. */
    if (d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0) {
      *out = (int64_t)d;
      return CSN_OK;
    }
  }
  return CSN_ETYPE;
}

int csn_session_get_double(const csn_session *s, const char *key,
                           double *out) {
  int rc;
  json_t *v = member(s, key, &rc);
  if (v == NULL)
    return rc;
  if (!json_is_number(v))
    return CSN_ETYPE;
  *out = json_number_value(v);
  return CSN_OK;
}

int csn_session_get_bool(const csn_session *s, const char *key, int *out) {
  int rc;
  json_t *v = member(s, key, &rc);
  if (v == NULL)
    return rc;
  if (!json_is_boolean(v))
    return CSN_ETYPE;
  *out = json_is_true(v);
  return CSN_OK;
}

int csn_session_get_str(const csn_session *s, const char *key,
                        const char **out, size_t *len) {
  int rc;
  json_t *v = member(s, key, &rc);
  if (v == NULL)
    return rc;
  if (!json_is_string(v))
    return CSN_ETYPE;
  *out = json_string_value(v);
  if (len)
    *len = json_string_length(v);
  return CSN_OK;
}

int csn_session_get_json(const csn_session *s, const char *key, char **out) {
  int rc;
  csn__buf b;
  json_t *v = member(s, key, &rc);
  if (v == NULL)
    return rc;
  csn__buf_init(&b);
  csn__json_dump(&b, v);
  *out = csn__buf_steal(&b, NULL);
  return *out ? CSN_OK : CSN_ENOMEM;
}

/* Every setter funnels through here: validates the key, records the change
 * and takes ownership of `v` (a new reference) in all cases. */
static int set_member(csn_session *s, const char *key, json_t *v) {
  int rc;
  if (v == NULL)
    return CSN_ENOMEM;
  if (s == NULL || key == NULL || strcmp(key, "cookie") == 0) {
    json_decref(v);
    return CSN_EINVAL;
  }
  if ((rc = csn__session_will_change(s)) < 0) {
    json_decref(v);
    return rc;
  }
  return json_object_set_new(s->data, key, v) == 0 ? CSN_OK : CSN_ENOMEM;
}

int csn_session_set_int(csn_session *s, const char *key, int64_t v) {
  return set_member(s, key, json_integer((json_int_t)v));
}

int csn_session_set_double(csn_session *s, const char *key, double v) {
  /* JSON.stringify writes NaN and Infinity as null. */
  if (!isfinite(v))
    return set_member(s, key, json_null());
  return set_member(s, key, json_real(v));
}

int csn_session_set_bool(csn_session *s, const char *key, int v) {
  return set_member(s, key, json_boolean(v));
}

int csn_session_set_str(csn_session *s, const char *key, const char *v) {
  if (v == NULL)
    return CSN_EINVAL;
  return csn_session_set_strn(s, key, v, strlen(v));
}

int csn_session_set_strn(csn_session *s, const char *key, const char *v,
                         size_t len) {
  json_t *j;
  if (v == NULL)
    return CSN_EINVAL;
  /* A record Node can read holds only well-formed UTF-8. Checked here so
   * that a NULL from jansson below can only mean out of memory. */
  if (!csn__utf8_valid(v, len))
    return csn__set_error(CSN_EINVAL, "string is not valid UTF-8");
  j = json_stringn_nocheck(v, len);
  return set_member(s, key, j);
}

int csn_session_set_json(csn_session *s, const char *key, const char *json) {
  json_t *j;
  int rc = CSN_OK;
  if (json == NULL)
    return CSN_EINVAL;
  /* The member will sit one level below the record's root: a deeper value
   * would be saved and then refused by every load of the record. */
  j = csn__json_parse_depth(json, strlen(json), CSN__JSON_MEMBER_MAX_DEPTH,
                            &rc);
  if (j == NULL && rc == CSN_ERANGE)
    return csn__set_error(CSN_EINVAL,
                          "JSON nested deeper than %d levels",
                          CSN__JSON_MEMBER_MAX_DEPTH);
  if (j == NULL)
    return rc == CSN_ENOMEM ? rc : csn__set_error(CSN_EINVAL, "invalid JSON");
  return set_member(s, key, j);
}

int csn_session_incr(csn_session *s, const char *key, int64_t delta,
                     int64_t *out) {
  int64_t cur = 0;
  int rc;
  json_t *v;

  /* The usual case, a counter that is an integer: changed in place, with
   * no new value, no second look-up and no free. Only when the data alone
   * holds the value (a merge may share values between objects). */
  if (live(s) && key != NULL && s->data != NULL &&
      (v = json_object_get(s->data, key)) != NULL && json_is_integer(v) &&
      v->refcount == 1) {
    cur = (int64_t)json_integer_value(v);
    if ((delta > 0 && cur > INT64_MAX - delta) ||
        (delta < 0 && cur < INT64_MIN - delta))
      return CSN_ERANGE;
    if ((rc = csn__session_will_change(s)) < 0)
      return rc;
    cur += delta;
    json_integer_set(v, (json_int_t)cur);
    if (out)
      *out = cur;
    return CSN_OK;
  }
  rc = csn_session_get_int(s, key, &cur);
  if (rc == CSN_ETYPE) {
    double d;
    if (csn_session_get_double(s, key, &d) != CSN_OK)
      return CSN_ETYPE;
    rc = csn_session_set_double(s, key, d + (double)delta);
    if (rc == CSN_OK && out)
      *out = (int64_t)(d + (double)delta);
    return rc;
  }
  if (rc != CSN_OK && rc != CSN_ENOENT)
    return rc;
  if ((delta > 0 && cur > INT64_MAX - delta) ||
      (delta < 0 && cur < INT64_MIN - delta))
    return CSN_ERANGE;
  cur += delta;
  rc = csn_session_set_int(s, key, cur);
  if (rc == CSN_OK && out)
    *out = cur;
  return rc;
}

int csn_session_has(const csn_session *s, const char *key) {
  int rc;
  return member(s, key, &rc) != NULL;
}

int csn_session_del(csn_session *s, const char *key) {
  int rc;
  if (member(s, key, &rc) == NULL)
    return rc;
  if ((rc = csn__session_will_change(s)) < 0)
    return rc;
  json_object_del(s->data, key);
  return CSN_OK;
}

/* The creation stamp (lifetime_ms) is the session's, not the
 * application's: clear() keeps it and count() leaves it out. */
int csn_session_clear(csn_session *s) {
  json_t *stamp;
  int rc;
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (s->data == NULL || csn_session_count(s) == 0)
    return CSN_OK;
  if ((rc = csn__session_will_change(s)) < 0)
    return rc;
  stamp = json_incref(json_object_get(s->data, CSN_CREATED_MEMBER));
  json_object_clear(s->data);
  if (stamp != NULL &&
      json_object_set_new(s->data, CSN_CREATED_MEMBER, stamp) != 0)
    return CSN_ENOMEM;
  return CSN_OK;
}

size_t csn_session_count(const csn_session *s) {
  size_t n;
  if (!live(s) || s->data == NULL)
    return 0;
  n = json_object_size(s->data);
  if (n > 0 && json_object_get(s->data, CSN_CREATED_MEMBER) != NULL)
    n--;
  return n;
}

int csn_session_created(const csn_session *s, int64_t *ms) {
  json_t *v;
  int rc;
  if (ms == NULL)
    return CSN_EINVAL;
  if ((v = member(s, CSN_CREATED_MEMBER, &rc)) == NULL)
    return rc;
  /* A stamp is a number in the JavaScript Date range; anything else (a
   * record from another writer) is none. */
  if (json_is_integer(v) && json_integer_value(v) >= -CSN__TIME_MAX &&
      json_integer_value(v) <= CSN__TIME_MAX)
    *ms = (int64_t)json_integer_value(v);
  else if (json_is_real(v) && json_real_value(v) >= -(double)CSN__TIME_MAX &&
           json_real_value(v) <= (double)CSN__TIME_MAX)
    *ms = (int64_t)json_real_value(v);
  else
    return CSN_ENOENT;
  return CSN_OK;
}

int csn_session_to_json(const csn_session *s, char **out) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  *out = csn__session_record(s, NULL);
  return *out ? CSN_OK : CSN_ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* Cookie API                                                               */
/* ------------------------------------------------------------------------ */

static int64_t session_now(const csn_session *s) {
  return csn__ctx_now(s->req->ctx);
}

int csn_session_cookie_get(const csn_session *s, csn_cookie_options *out) {
  const csn__cookie *c;
  if (!live(s) || out == NULL)
    return s && out ? CSN_ESTATE : CSN_EINVAL;
  c = &s->cookie;
  memset(out, 0, sizeof *out);
  out->max_age_ms = c->expires == CSN_TIME_NONE
                        ? CSN_TIME_NONE
                        : c->expires - session_now(s);
  out->expires_ms = c->expires;
  out->http_only = c->http_only == 1;
  out->secure = c->secure == 1 ? CSN_SECURE_ON : CSN_SECURE_OFF;
  out->same_site = c->same_site;
  out->partitioned = c->partitioned == 1;
  out->priority = c->priority;
  out->domain = c->domain;
  out->path = c->path;
  return CSN_OK;
}

int csn_session_cookie_max_age(const csn_session *s, int64_t *ms) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (s->cookie.expires == CSN_TIME_NONE)
    return CSN_ENOENT;
  *ms = s->cookie.expires - session_now(s);
  return CSN_OK;
}

int csn_session_cookie_original_max_age(const csn_session *s, int64_t *ms) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (s->cookie.original_max_age == CSN_TIME_NONE)
    return CSN_ENOENT;
  *ms = s->cookie.original_max_age;
  return CSN_OK;
}

int csn_session_cookie_expires(const csn_session *s, int64_t *ms) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (s->cookie.expires == CSN_TIME_NONE)
    return CSN_ENOENT;
  *ms = s->cookie.expires;
  return CSN_OK;
}

int csn_session_cookie_set_max_age(csn_session *s, int64_t ms) {
  int64_t now;
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (ms == CSN_TIME_NONE) {
    s->cookie.expires = CSN_TIME_NONE;
    s->cookie.original_max_age = CSN_TIME_NONE;
    return CSN_OK;
  }
  now = session_now(s);
  if (ms > CSN__TIME_MAX - now || ms < -CSN__TIME_MAX - now)
    return CSN_ERANGE;
  s->cookie.expires = now + ms;
  s->cookie.original_max_age = ms;
  return CSN_OK;
}

int csn_session_cookie_set_expires(csn_session *s, int64_t epoch_ms) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (epoch_ms == CSN_TIME_NONE) {
    s->cookie.expires = CSN_TIME_NONE;
    s->cookie.original_max_age = CSN_TIME_NONE;
    return CSN_OK;
  }
  if (epoch_ms > CSN__TIME_MAX || epoch_ms < -CSN__TIME_MAX)
    return CSN_ERANGE;
  s->cookie.expires = epoch_ms;
  s->cookie.original_max_age = epoch_ms - session_now(s);
  return CSN_OK;
}

int csn_session_cookie_set_http_only(csn_session *s, int on) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  s->cookie.http_only = on ? 1 : 0;
  return CSN_OK;
}

int csn_session_cookie_set_secure(csn_session *s, int on) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  s->cookie.secure = on ? 1 : 0;
  return CSN_OK;
}

int csn_session_cookie_set_same_site(csn_session *s, int same_site) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (same_site == CSN_SAMESITE_AUTO)
    same_site = s->req->secure ? CSN_SAMESITE_NONE : CSN_SAMESITE_LAX;
  if (same_site < CSN_SAMESITE_UNSET || same_site > CSN_SAMESITE_NONE)
    return CSN_EINVAL;
  s->cookie.same_site = same_site;
  return CSN_OK;
}

int csn_session_cookie_set_partitioned(csn_session *s, int on) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  s->cookie.partitioned = on ? 1 : 0;
  return CSN_OK;
}

int csn_session_cookie_set_priority(csn_session *s, int priority) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (priority < CSN_PRIORITY_UNSET || priority > CSN_PRIORITY_HIGH)
    return CSN_EINVAL;
  s->cookie.priority = priority;
  return CSN_OK;
}

static int set_cookie_string(csn_session *s, char **slot, const char *v,
                             int (*valid)(const char *)) {
  char *copy = NULL;
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  if (v != NULL) {
    if (!valid(v))
      return CSN_EINVAL;
    if ((copy = csn__strdup(v)) == NULL)
      return CSN_ENOMEM;
  }
  path_free(*slot); /* the shared "/" is not freed */
  *slot = copy;
  return CSN_OK;
}

int csn_session_cookie_set_domain(csn_session *s, const char *domain) {
  return set_cookie_string(s, s ? &s->cookie.domain : NULL, domain,
                           csn__cookie_domain_valid);
}

int csn_session_cookie_set_path(csn_session *s, const char *path) {
  return set_cookie_string(s, s ? &s->cookie.path : NULL, path,
                           csn__cookie_path_valid);
}

int csn_session_touch(csn_session *s) {
  if (!live(s))
    return s ? CSN_ESTATE : CSN_EINVAL;
  csn__session_touch_cookie(s, session_now(s));
  return CSN_OK;
}

int csn_session_reset_max_age(csn_session *s) {
  return csn_session_touch(s);
}
