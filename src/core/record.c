/* record.c - byte-preserving edits of a stored record, for stores.
 *
 * A touch replaces the record's "cookie" member and must keep every other
 * member exactly as stored (a concurrent request may have written newer
 * data since this one loaded, and a record written by Node must keep its
 * text). Re-serialising with jansson would keep the values but not their
 * text: a number written by Node as 0.1 comes back as 0.10000000000000001,
 * and the record would drift every time it is touched.
 *
 * So both texts are first validated by the JSON reader (the scanner below
 * may then assume well-formed JSON, although it never reads out of bounds
 * either way), the byte span of the top-level "cookie" value is located in
 * each, and the new record is stored[..start) + new cookie + stored[end..).
 * As in JSON.parse, the last of duplicate keys is the one that counts.
 *
 * This used to exist twice (memory and file stores each had a scanner) and
 * would have been written again by every server store. */
#include <string.h>

#include "csn_int.h"

static void skip_ws(const char *s, size_t n, size_t *i) {
  while (*i < n &&
         (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
    (*i)++;
}

/* s[*i] is '"': move past the closing quote. */
static int skip_string(const char *s, size_t n, size_t *i) {
  for ((*i)++; *i < n; (*i)++) {
    if (s[*i] == '\\') {
      (*i)++;
    } else if (s[*i] == '"') {
      (*i)++;
      return 0;
    }
  }
  return -1;
}

static int skip_value(const char *s, size_t n, size_t *i) {
  size_t depth = 0;
  if (*i >= n)
    return -1;
  if (s[*i] == '"')
    return skip_string(s, n, i);
  if (s[*i] != '{' && s[*i] != '[') {
    while (*i < n && strchr(",}] \t\r\n", s[*i]) == NULL)
      (*i)++;
    return 0;
  }
  while (*i < n) {
    char c = s[*i];
    if (c == '"') {
      if (skip_string(s, n, i) != 0)
        return -1;
      continue;
    }
    if (c == '{' || c == '[')
      depth++;
    if (c == '}' || c == ']') {
      depth--;
      if (depth == 0) {
        (*i)++;
        return 0;
      }
    }
    (*i)++;
  }
  return -1;
}

/* Is the raw (still escaped) key text equal to "cookie"? 1, 0, or -1 when
 * out of memory. */
static int key_is_cookie(const char *k, size_t n) {
  json_t *j;
  int eq;
  char *quoted;
  if (memchr(k, '\\', n) == NULL)
    return n == 6 && memcmp(k, "cookie", 6) == 0;
  /* An escaped key ("\u0063ookie") is rare: let the JSON reader decode it. */
  quoted = csn__malloc(n + 2);
  if (quoted == NULL)
    return -1;
  quoted[0] = '"';
  memcpy(quoted + 1, k, n);
  quoted[n + 1] = '"';
  j = csn__json_parse(quoted, n + 2, NULL);
  csn__free(quoted);
  if (j == NULL)
    return -1;
  eq = json_is_string(j) && json_string_length(j) == 6 &&
       memcmp(json_string_value(j), "cookie", 6) == 0;
  json_decref(j);
  return eq;
}

/* Locate the top-level "cookie" value of an object text. *found is 0 if
 * the object has none; *open is the index of its '{'. -1 if malformed. */
static int find_cookie(const char *s, size_t n, size_t *open, int *found,
                       size_t *vs, size_t *ve) {
  size_t i = 0;
  *found = 0;
  skip_ws(s, n, &i);
  if (i >= n || s[i] != '{')
    return -1;
  *open = i++;
  skip_ws(s, n, &i);
  if (i < n && s[i] == '}')
    return 0;
  while (i < n) {
    size_t ks, ke, start;
    int is_cookie;
    if (s[i] != '"')
      return -1;
    ks = i + 1;
    if (skip_string(s, n, &i) != 0)
      return -1;
    ke = i - 1;
    skip_ws(s, n, &i);
    if (i >= n || s[i] != ':')
      return -1;
    i++;
    skip_ws(s, n, &i);
    start = i;
    if (skip_value(s, n, &i) != 0)
      return -1;
    is_cookie = key_is_cookie(s + ks, ke - ks);
    if (is_cookie < 0)
      return -1;
    if (is_cookie) {
      *found = 1;
      *vs = start;
      *ve = i;
    }
    skip_ws(s, n, &i);
    if (i < n && s[i] == ',') {
      i++;
      skip_ws(s, n, &i);
      continue;
    }
    if (i < n && s[i] == '}')
      return 0;
    return -1;
  }
  return -1;
}

/* 1 if the text is a JSON object, 0 if not, CSN_ENOMEM. */
static int is_object_text(const char *s, size_t n) {
  int err = 0;
  json_t *j = csn__json_parse(s, n, &err);
  int ok;
  if (j == NULL)
    return err == CSN_ENOMEM ? CSN_ENOMEM : 0;
  ok = json_is_object(j);
  json_decref(j);
  return ok;
}

int csn_record_splice_cookie(const char *stored, size_t slen,
                             const char *fresh, size_t flen, char **out,
                             size_t *outlen) {
  size_t sopen = 0, svs = 0, sve = 0, fopen = 0, fvs = 0, fve = 0;
  int sfound = 0, ffound = 0, ok;
  csn__buf b;

  if (out == NULL)
    return CSN_EINVAL;
  *out = NULL;
  if (outlen != NULL)
    *outlen = 0;
  if (stored == NULL || fresh == NULL)
    return CSN_EINVAL;
  if ((ok = is_object_text(fresh, flen)) < 0)
    return ok;
  if (!ok || find_cookie(fresh, flen, &fopen, &ffound, &fvs, &fve) != 0 ||
      !ffound || fresh[fvs] != '{')
    return CSN_EINVAL;
  if ((ok = is_object_text(stored, slen)) < 0)
    return ok;
  if (!ok || find_cookie(stored, slen, &sopen, &sfound, &svs, &sve) != 0)
    return CSN_ECORRUPT;

  csn__buf_init(&b);
  if (sfound) {
    csn__buf_append(&b, stored, svs);
    csn__buf_append(&b, fresh + fvs, fve - fvs);
    csn__buf_append(&b, stored + sve, slen - sve);
  } else {
    /* No cookie yet: add it as the first member, where express puts it. */
    size_t j = sopen + 1;
    skip_ws(stored, slen, &j);
    csn__buf_append(&b, stored, sopen + 1);
    csn__buf_puts(&b, "\"cookie\":");
    csn__buf_append(&b, fresh + fvs, fve - fvs);
    if (j < slen && stored[j] != '}')
      csn__buf_putc(&b, ',');
    csn__buf_append(&b, stored + sopen + 1, slen - sopen - 1);
  }
  *out = csn__buf_steal(&b, outlen);
  return *out != NULL ? CSN_OK : CSN_ENOMEM;
}
