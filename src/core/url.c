/* url.c - the query part of store URLs ("sqlite://./x.db?table=t&prune=60").
 *
 * Every store opener needs the same three things: walk key=value pairs,
 * compare a key, read a bounded integer. They are strict on purpose: a
 * typo in a store URL should stop the server at start-up with a message,
 * not be ignored. */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "csn_int.h"

int csn_url_param_next(const char **cursor, csn_url_param *p) {
  const char *q, *amp, *eq;
  size_t seg;

  if (cursor == NULL || p == NULL)
    return CSN_EINVAL;
  q = *cursor;
  if (q == NULL || *q == '\0')
    return 0;
  amp = strchr(q, '&');
  seg = amp ? (size_t)(amp - q) : strlen(q);
  eq = memchr(q, '=', seg);
  if (seg == 0 || eq == NULL || eq == q)
    /* Not echoed: the text may be part of a secret. */
    return csn__set_error(CSN_EINVAL,
                          "bad URL parameter (empty, or without key=value)");
  p->key = q;
  p->key_len = (size_t)(eq - q);
  p->value = eq + 1;
  p->value_len = seg - p->key_len - 1;
  /* A trailing '&' leaves an empty parameter behind: refuse it next time
   * rather than silently accept "a=1&". */
  *cursor = amp ? amp + 1 : q + seg;
  if (amp && amp[1] == '\0')
    *cursor = amp; /* "&" then end: the next call reports it */
  return 1;
}

int csn_url_param_is(const csn_url_param *p, const char *key) {
  size_t n = strlen(key);
  return p != NULL && p->key_len == n && memcmp(p->key, key, n) == 0;
}

int csn_url_param_int(const csn_url_param *p, int64_t lo, int64_t hi,
                      int64_t *out) {
  const char *s = p->value;
  size_t n = p->value_len, i = 0;
  int neg = 0;
  int64_t v = 0;

  if (n > 0 && s[0] == '-' && lo < 0) {
    neg = 1;
    i = 1;
  }
  /* 18 digits cannot overflow int64. */
  if (i == n || n - i > 18)
    return CSN_EINVAL;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return CSN_EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  if (neg)
    v = -v;
  if (v < lo || v > hi)
    return CSN_EINVAL;
  *out = v;
  return CSN_OK;
}

int csn_url_split(const char *url, const char *scheme, const char **rest,
                  size_t *rest_len, const char **query) {
  size_t sl;
  const char *r, *q;
  if (url == NULL || scheme == NULL || rest == NULL || rest_len == NULL ||
      query == NULL)
    return CSN_EINVAL;
  sl = strlen(scheme);
  if (strncmp(url, scheme, sl) != 0 || strncmp(url + sl, "://", 3) != 0)
    return CSN_EINVAL;
  r = url + sl + 3;
  q = strchr(r, '?');
  *rest = r;
  *rest_len = q ? (size_t)(q - r) : strlen(r);
  *query = q ? q + 1 : NULL;
  return CSN_OK;
}

/* The value of a string option: percent-decoded (a store URL must be able
 * to carry '&', '=' or '#' in a prefix or a path), and refused when the
 * decoding fails or yields a NUL, which no C string option can hold. */
static int url_value_str(const csn_url_param *p, char **out) {
  char *v = csn__malloc(p->value_len + 1);
  size_t n;
  if (v == NULL)
    return CSN_ENOMEM;
  if (memchr(p->value, '%', p->value_len) == NULL) {
    memcpy(v, p->value, p->value_len);
    n = p->value_len;
  } else if (csn__uri_decode(p->value, p->value_len, v, &n) != 0 ||
             memchr(v, '\0', n) != NULL) {
    /* The value may be a secret: leave no copy of it behind. */
    OPENSSL_cleanse(v, p->value_len + 1);
    csn__free(v);
    return CSN_EINVAL;
  }
  v[n] = '\0';
  csn_free_secret(*out);
  *out = v;
  return CSN_OK;
}

static int url_value_bool(const csn_url_param *p, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  size_t i;
  for (i = 0; i < CSN__ARRAY_SIZE(yes); i++) {
    if (p->value_len == strlen(yes[i]) &&
        memcmp(p->value, yes[i], p->value_len) == 0) {
      *out = 1;
      return CSN_OK;
    }
    if (p->value_len == strlen(no[i]) &&
        memcmp(p->value, no[i], p->value_len) == 0) {
      *out = 0;
      return CSN_OK;
    }
  }
  return CSN_EINVAL;
}

int csn_url_parse_query(const char *query, const csn_url_option *opts,
                        size_t n, const char *store, char *errbuf,
                        size_t errlen) {
  const char *cur = query;
  uint64_t seen = 0;
  csn_url_param p;
  int more;

  if (store == NULL)
    store = "store";
  if (n > 64 || (n > 0 && opts == NULL))
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "%s: bad URL option table", store);
  while ((more = csn_url_param_next(&cur, &p)) != 0) {
    size_t i;
    int rc;
    /* A key is echoed only when short and printable; values never are
     * (they may be passwords or keys). */
    int klen = (int)(p.key_len > 32 ? 32 : p.key_len);
    if (more < 0)
      return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                            "%s: empty URL parameter or one without '='",
                            store);
    for (i = 0; i < n; i++)
      if (csn_url_param_is(&p, opts[i].key))
        break;
    if (i == n)
      return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                            "%s: unknown URL parameter '%.*s'", store, klen,
                            p.key);
    if (seen & (UINT64_C(1) << i))
      return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                            "%s: URL parameter '%s' given twice", store,
                            opts[i].key);
    seen |= UINT64_C(1) << i;
    switch (opts[i].type) {
    case CSN_URL_INT:
      rc = csn_url_param_int(&p, opts[i].min, opts[i].max,
                             (int64_t *)opts[i].out);
      if (rc != CSN_OK)
        return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                              "%s: URL parameter '%s' must be an integer "
                              "from %lld to %lld",
                              store, opts[i].key, (long long)opts[i].min,
                              (long long)opts[i].max);
      break;
    case CSN_URL_BOOL:
      if (url_value_bool(&p, (int *)opts[i].out) != CSN_OK)
        return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                              "%s: URL parameter '%s' must be 1/0, "
                              "true/false, yes/no or on/off",
                              store, opts[i].key);
      break;
    case CSN_URL_STR:
      rc = url_value_str(&p, (char **)opts[i].out);
      if (rc == CSN_ENOMEM)
        return csn_store_fail(errbuf, errlen, rc, "%s: out of memory", store);
      if (rc != CSN_OK)
        return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                              "%s: URL parameter '%s' is not a valid "
                              "percent-encoded string",
                              store, opts[i].key);
      break;
    default:
      return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                            "%s: bad URL option table", store);
    }
  }
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Redaction                                                                */
/* ------------------------------------------------------------------------ */

/* Appends to a bounded buffer; what does not fit is dropped. */
typedef struct redact_out {
  char *p;
  size_t cap, n;
} redact_out;

static void redact_put(redact_out *o, const char *s, size_t len) {
  while (len > 0 && o->n + 1 < o->cap) {
    o->p[o->n++] = *s++;
    len--;
  }
}

/* A parameter whose name contains pass, secret, token or key (any case):
 * password, sslpassword, passphrase, secret, api_key ... */
static int redact_secret_key(const char *k, size_t len) {
  static const char *const words[] = {"pass", "secret", "token", "key"};
  size_t i, at;
  for (i = 0; i < sizeof words / sizeof words[0]; i++) {
    size_t w = strlen(words[i]);
    for (at = 0; at + w <= len; at++)
      if (strncasecmp(k + at, words[i], w) == 0) return 1;
  }
  return 0;
}

char *csn_url_redact(const char *url, char *out, size_t outlen) {
  redact_out o = {out, outlen, 0};
  if (out == NULL || outlen == 0) return out;
  if (url == NULL) url = "";
  const char *from = url;
  const char *auth = strstr(url, "://");
  /* The userinfo ends at the last '@' of the whole URL: a password may
   * hold a raw '@', '/' or '?'. In doubt this hides too much (an '@' in a
   * query value), never too little. */
  if (auth != NULL) {
    auth += 3;
    const char *at = strrchr(auth, '@');
    const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth))
                                   : NULL;
    if (colon != NULL) {
      redact_put(&o, url, (size_t)(colon + 1 - url));
      redact_put(&o, "***", 3);
      from = at;
    }
  }
  const char *q = strchr(from, '?');
  const char *end = q != NULL ? q : from + strlen(from);
  redact_put(&o, from, (size_t)(end - from));
  /* The query: key=value pairs split on '&'; secret values hidden. */
  if (q != NULL) {
    const char *p = q + 1;
    redact_put(&o, "?", 1);
    while (*p != '\0') {
      const char *amp = strchr(p, '&');
      size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);
      const char *eq = memchr(p, '=', plen);
      if (eq != NULL && redact_secret_key(p, (size_t)(eq - p))) {
        redact_put(&o, p, (size_t)(eq + 1 - p));
        redact_put(&o, "***", 3);
      } else {
        redact_put(&o, p, plen);
      }
      if (amp == NULL) break;
      redact_put(&o, "&", 1);
      p = amp + 1;
    }
  }
  out[o.n] = '\0';
  return out;
}

int csn_url_partition(const char *url, const char *query,
                      const char *const *keys, size_t n, char **own,
                      char **rest) {
  size_t qlen, head, ol = 0, rl, i;
  const char *cur = query;
  csn_url_param p;
  int r, more = 0;

  if (own != NULL)
    *own = NULL;
  if (rest != NULL)
    *rest = NULL;
  if (url == NULL || own == NULL || rest == NULL)
    return CSN_EINVAL;
  /* Everything before the query ('?' excluded) goes to rest as it is. */
  head = query != NULL ? (size_t)(query - url) - 1 : strlen(url);
  qlen = query != NULL ? strlen(query) : 0;
  *own = csn__malloc(qlen + 1);
  *rest = csn__malloc(head + qlen + 2);
  if (*own == NULL || *rest == NULL) {
    csn__free(*own);
    csn__free(*rest);
    *own = *rest = NULL;
    return CSN_ENOMEM;
  }
  memcpy(*rest, url, head);
  rl = head;
  while ((r = csn_url_param_next(&cur, &p)) == 1) {
    int mine = 0;
    for (i = 0; i < n && !mine; i++)
      mine = csn_url_param_is(&p, keys[i]);
    size_t len = (size_t)(p.value + p.value_len - p.key);
    if (mine) {
      if (ol > 0)
        (*own)[ol++] = '&';
      memcpy(*own + ol, p.key, len);
      ol += len;
    } else {
      (*rest)[rl++] = more ? '&' : '?';
      more = 1;
      memcpy(*rest + rl, p.key, len);
      rl += len;
    }
  }
  (*own)[ol] = '\0';
  (*rest)[rl] = '\0';
  if (r < 0) {
    csn_free_secret(*own);
    csn_free_secret(*rest);
    *own = *rest = NULL;
    return r;
  }
  return CSN_OK;
}
