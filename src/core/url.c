/* url.c - the query part of store URLs ("sqlite://./x.db?table=t&prune=60").
 *
 * Every store opener needs the same three things: walk key=value pairs,
 * compare a key, read a bounded integer. They are strict on purpose: a
 * typo in a store URL should stop the server at start-up with a message,
 * not be ignored. */
#include <string.h>

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
    return csn__set_error(CSN_EINVAL, "bad URL parameter '%.*s'",
                          (int)(seg > 64 ? 64 : seg), q);
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
