/* mongo.c - MongoDB store sharing connect-mongo's collection.
 *
 * OVERVIEW
 *
 * The contract (document, operations, URL) is in
 * include/csn/csn_store_mongo.h; this file explains how. Like redis.c and
 * pg.c it uses only the public headers (csn.h and the store kit,
 * csn_store.h) and is built into its own library, on libmongoc 1.23.
 *
 *   - Clients. A mongoc_client_t serves one thread at a time; libmongoc's
 *     mongoc_client_pool_t hands them out and shares one topology monitor.
 *     The store puts its own gate in front of the pool (a counter and a
 *     condition variable on CLOCK_MONOTONIC): a worker waits at most
 *     `timeout` for a client and then fails with the kit's wording ("all N
 *     connections busy"), and mongoc_client_pool_pop() itself never
 *     blocks because the gate admits no more workers than the pool has
 *     clients.
 *
 *   - Timeouts come from libmongoc's URI options: socketTimeoutMS bounds
 *     every read and write on a connection, serverSelectionTimeoutMS the
 *     wait for a usable server, connectTimeoutMS a new connection. The
 *     store sets them from `timeout` / `connect_timeout` unless the URL
 *     gives them. libmongoc's error text for a socket failure is "socket
 *     error or timeout" either way, so the store tells a timeout from a
 *     dead connection by the time the operation took.
 *
 *   - Reconnecting is libmongoc's: a connection that failed is dropped and
 *     the server re-checked; the next operation connects afresh. The one
 *     that met the broken connection (the first after a server restart)
 *     fails quickly with a network error; every idempotent operation (all
 *     but cas) then runs once more. libmongoc's own retryable reads and
 *     writes need sessions (and, for writes, a replica set), so they are
 *     not relied on.
 *
 *   - Object form (stringify=false). Records are JSON text in and out of
 *     the store, so the store converts: a small JSON reader (below) writes
 *     BSON as the Node driver serializes JSON.parse's result (int32 for an
 *     integer in range except -0, double otherwise, cookie.expires as a
 *     Date), and a writer renders BSON as JSON.stringify would (numbers in
 *     JavaScript's shortest round-trip form, Dates as toISOString()). The
 *     core's records are JSON.stringify output, so they come back byte for
 *     byte. Numbers are formatted and parsed under the "C" locale
 *     (uselocale), whatever the application set.
 *
 *   - Compare-and-set. With a string session, one updateOne whose filter
 *     holds the expected text: the server compares and writes in one
 *     document-level atomic step. When nothing matched, a findOne tells a
 *     conflict from a missing document. With an embedded document the
 *     stored document is read, rendered and compared with the expected text
 *     here, then the update's filter is {session: {$eq: <that document>}}:
 *     the write happens only if nobody changed it since the read.
 *
 *   - touchAfter needs the lastModified that get() saw; the store
 *     interface passes text only, so get() leaves it in a small table keyed
 *     by id (lm_*) for the touch() of the same request. A missing entry
 *     costs one read in touch(), never a wrong decision.
 *
 *   - Messages are libmongoc's with the password and the session id cut
 *     out (a duplicate-key error quotes the key, i.e. the id). libmongoc's
 *     own log goes to a handler that drops it (see the header).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "csn/csn_store.h"
#include "csn/csn_store_mongo.h"

#define MG_DEFAULT_URI "mongodb://127.0.0.1:27017/"
#define MG_DEFAULT_DB "test"
#define MG_DEFAULT_COLL "sessions"
#define MG_DEFAULT_TTL_S INT64_C(1209600)
#define MG_DEFAULT_INTERVAL_MIN 10
#define MG_DEFAULT_POOL 16
#define MG_DEFAULT_TIMEOUT_MS 2000
#define MG_DEFAULT_CONNECT_MS 2000
#define MG_POOL_MAX 1024
#define MG_TIMEOUT_MAX INT64_C(86400000) /* fits libmongoc's int32 options */
#define MG_TTL_MAX INT64_C(3155760000)   /* 100 years */
#define MG_INTERVAL_MAX 71582            /* minutes: connect-mongo's bound */
#define MG_JITTER_PCT 50
#define MG_BATCH 500                     /* documents per all() batch */
#define MG_BATCH_BYTES (4u << 20)        /* ... or about this much text */
#define MG_DEPTH_MAX 100                 /* MongoDB's nesting limit */
#define MG_LM_SLOTS 1024
#define MG_MSG_MAX 300
/* JavaScript's Date range (ms either side of the epoch). */
#define MG_JS_DATE_MAX INT64_C(8640000000000000)

/* A failed libmongoc call: the error is in the bson_error_t. */
#define MG_FAILED 1

/* What touch() needs from the get() before it (see the OVERVIEW). */
typedef struct lm_slot {
  char *sid;  /* NULL: empty */
  int64_t lm; /* lastModified in epoch ms; -1: the document had none */
} lm_slot;

typedef struct mg_store {
  csn_store base; /* first: the method table */
  mongoc_client_pool_t *pool;
  mongoc_uri_t *uri;
  char *db, *coll;
  char where[200];  /* "host:port[,host:port...]" for messages */
  char *password;   /* only to scrub messages; NULL: none */
  int object_form;
  int64_t ttl_ms, touch_after_ms, timeout_ms;
  unsigned pool_max;
  /* The gate in front of the pool. */
  pthread_mutex_t gate_mu;
  pthread_cond_t gate_cv;
  unsigned busy;
  int gate_ready;
  /* lastModified seen by get(), for touch(). */
  pthread_mutex_t lm_mu;
  lm_slot *lm;
  csn_sweeper *sweeper; /* interval mode only */
} mg_store;

/* ------------------------------------------------------------------------ */
/* Process-wide libmongoc state                                             */
/* ------------------------------------------------------------------------ */

static pthread_once_t mg_once = PTHREAD_ONCE_INIT;
static locale_t mg_c_locale = (locale_t)0;

/* libmongoc's default handler prints warnings (which can quote URI options)
 * to stderr: the store's messages go through csn_store_errmsg() instead. */
static void mg_log_drop(mongoc_log_level_t level, const char *domain,
                        const char *message, void *ud) {
  (void)level, (void)domain, (void)message, (void)ud;
}

static void mg_global_init(void) {
  mongoc_log_set_handler(mg_log_drop, NULL);
  mongoc_init();
  mg_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Run with the "C" numeric locale on this thread (strtod, snprintf %e). */
static locale_t c_locale_enter(void) {
  return mg_c_locale != (locale_t)0 ? uselocale(mg_c_locale) : (locale_t)0;
}
static void c_locale_leave(locale_t old) {
  if (old != (locale_t)0) uselocale(old);
}

/* ------------------------------------------------------------------------ */
/* A growable text buffer                                                   */
/* ------------------------------------------------------------------------ */

typedef struct tbuf {
  char *p;
  size_t n, cap;
  int oom;
} tbuf;

static int tb_grow(tbuf *b, size_t more) {
  if (b->oom) return -1;
  if (b->n + more + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + more + 1) cap *= 2;
  char *p = csn_malloc(cap);
  if (p == NULL) {
    b->oom = 1;
    return -1;
  }
  if (b->n) memcpy(p, b->p, b->n);
  csn_free(b->p);
  b->p = p;
  b->cap = cap;
  return 0;
}

static void tb_add(tbuf *b, const char *s, size_t n) {
  if (tb_grow(b, n) != 0) return;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void tb_str(tbuf *b, const char *s) { tb_add(b, s, strlen(s)); }
static void tb_ch(tbuf *b, char c) { tb_add(b, &c, 1); }

/* ------------------------------------------------------------------------ */
/* Numbers and dates as JavaScript writes them                              */
/* ------------------------------------------------------------------------ */

/* Number.prototype.toString(): the shortest digits that read back as d,
 * laid out by ECMA-262's rules (decimal for 1e-7 <= |d| < 1e21). Caller
 * holds the "C" locale. out >= 32 bytes. */
static void js_number(double d, char *out) {
  char tmp[40], digits[24];
  int k = 0, e = 0;
  if (isnan(d) || isinf(d)) {
    strcpy(out, "null"); /* JSON.stringify */
    return;
  }
  if (d == 0) {
    strcpy(out, "0"); /* -0 too */
    return;
  }
  char *o = out;
  if (d < 0) {
    *o++ = '-';
    d = -d;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
    if (strtod(tmp, NULL) == d || prec == 17) break;
  }
  /* tmp = D[.DDD]e[+-]XX: collect the digits and the exponent. */
  const char *p = tmp;
  while (*p && *p != 'e') {
    if (*p >= '0' && *p <= '9') digits[k++] = *p;
    p++;
  }
  if (*p == 'e') e = atoi(p + 1);
  while (k > 1 && digits[k - 1] == '0') k--; /* trailing zeros */
  digits[k] = '\0';
  int n = e + 1; /* value = 0.digits * 10^n */
  if (k <= n && n <= 21) {
    memcpy(o, digits, (size_t)k);
    o += k;
    for (int i = 0; i < n - k; i++) *o++ = '0';
  } else if (0 < n && n <= 21) {
    memcpy(o, digits, (size_t)n);
    o += n;
    *o++ = '.';
    memcpy(o, digits + n, (size_t)(k - n));
    o += k - n;
  } else if (-6 < n && n <= 0) {
    *o++ = '0';
    *o++ = '.';
    for (int i = 0; i < -n; i++) *o++ = '0';
    memcpy(o, digits, (size_t)k);
    o += k;
  } else {
    *o++ = digits[0];
    if (k > 1) {
      *o++ = '.';
      memcpy(o, digits + 1, (size_t)(k - 1));
      o += k - 1;
    }
    o += sprintf(o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
  }
  *o = '\0';
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

/* Date.prototype.toISOString() ("+YYYYYY-..." outside years 0..9999).
 * 0 on success, -1 outside JavaScript's Date range. out >= 32 bytes. */
static int iso_format(int64_t ms, char *out) {
  if (ms > MG_JS_DATE_MAX || ms < -MG_JS_DATE_MAX) return -1;
  int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
  int64_t rem = ms - days * 86400000, y;
  int mo, d;
  civil_from_days(days, &y, &mo, &d);
  int hh = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60),
      ss = (int)(rem / 1000 % 60), msec = (int)(rem % 1000);
  char year[32];
  if (y >= 0 && y <= 9999)
    snprintf(year, sizeof year, "%04d", (int)y);
  else
    snprintf(year, sizeof year, "%c%06lld", y < 0 ? '-' : '+',
             (long long)(y < 0 ? -y : y));
  char tmp[64];
  int n = snprintf(tmp, sizeof tmp, "%s-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
                   mo, d, hh, mi, ss, msec);
  if (n < 0 || n >= 32) return -1;
  memcpy(out, tmp, (size_t)n + 1);
  return 0;
}

/* The inverse, for exactly the text iso_format() writes (so a round trip
 * gives the same bytes back); -1 for anything else. */
static int iso_parse(const char *s, size_t n, int64_t *ms) {
  char buf[40], back[32];
  if (n < 24 || n > 27) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  long long y;
  int mo, d, hh, mi, ss, msec, used = 0;
  const char *p = buf;
  int sign = 1;
  if (*p == '+' || *p == '-') sign = *p++ == '-' ? -1 : 1;
  if (sscanf(p, "%lld-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &hh, &mi,
             &ss, &msec, &used) != 7 ||
      p[used] != '\0')
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 ||
      ss > 59 || hh < 0 || mi < 0 || ss < 0 || msec < 0)
    return -1;
  int64_t t = (days_from_civil(sign * y, mo, d) * 86400 + hh * 3600 +
               mi * 60 + ss) * 1000 + msec;
  if (iso_format(t, back) != 0 || strcmp(back, buf) != 0) return -1;
  *ms = t;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON text -> BSON (object form)                                          */
/* ------------------------------------------------------------------------ */

typedef struct jp {
  const char *p, *end;
  tbuf s; /* decoded string scratch */
} jp;

static void jp_ws(jp *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
                           *j->p == '\r'))
    j->p++;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static void utf8_put(tbuf *b, unsigned cp) {
  char u[4];
  if (cp < 0x80) {
    u[0] = (char)cp;
    tb_add(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3F));
    tb_add(b, u, 2);
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12);
    u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    tb_add(b, u, 3);
  } else {
    u[0] = (char)(0xF0 | cp >> 18);
    u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    tb_add(b, u, 4);
  }
}

/* A string at j->p ('"') decoded into j->s. A lone surrogate becomes
 * U+FFFD, as the Node driver's UTF-8 encoder writes it. */
static int jp_string(jp *j) {
  j->s.n = 0;
  if (tb_grow(&j->s, 16) != 0) return -1;
  j->s.p[0] = '\0';
  j->p++;
  while (j->p < j->end) {
    const char *q = j->p;
    while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
      q++;
    tb_add(&j->s, j->p, (size_t)(q - j->p));
    j->p = q;
    if (q >= j->end || (unsigned char)*q < 0x20) return -1;
    if (*q == '"') {
      j->p++;
      return j->s.oom ? -1 : 0;
    }
    if (q + 1 >= j->end) return -1;
    char c = q[1];
    j->p = q + 2;
    switch (c) {
      case '"': tb_ch(&j->s, '"'); break;
      case '\\': tb_ch(&j->s, '\\'); break;
      case '/': tb_ch(&j->s, '/'); break;
      case 'b': tb_ch(&j->s, '\b'); break;
      case 'f': tb_ch(&j->s, '\f'); break;
      case 'n': tb_ch(&j->s, '\n'); break;
      case 'r': tb_ch(&j->s, '\r'); break;
      case 't': tb_ch(&j->s, '\t'); break;
      case 'u': {
        unsigned cp, lo;
        if (j->end - j->p < 4 || hex4(j->p, &cp) != 0) return -1;
        j->p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && j->end - j->p >= 6 &&
            j->p[0] == '\\' && j->p[1] == 'u' && hex4(j->p + 2, &lo) == 0 &&
            lo >= 0xDC00 && lo <= 0xDFFF) {
          j->p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        utf8_put(&j->s, cp);
        break;
      }
      default:
        return -1;
    }
  }
  return -1;
}

static int jp_value(jp *j, bson_t *b, const char *key, size_t klen, int depth,
                    int in_cookie);

/* The members of an object or the elements of an array into child. */
static int jp_container(jp *j, bson_t *child, int array, int depth,
                        int cookie) {
  char close = array ? ']' : '}';
  uint32_t index = 0;
  j->p++;
  jp_ws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return 0;
  }
  for (;;) {
    char kbuf[16], *key;
    const char *kp;
    size_t klen;
    jp_ws(j);
    if (array) {
      klen = bson_uint32_to_string(index++, &kp, kbuf, sizeof kbuf);
      key = NULL;
    } else {
      if (j->p >= j->end || *j->p != '"' || jp_string(j) != 0) return -1;
      klen = j->s.n;
      if (memchr(j->s.p, '\0', klen) != NULL) return -1; /* not in BSON */
      key = csn_malloc(klen + 1);
      if (key == NULL) return -1;
      memcpy(key, j->s.p, klen + 1);
      kp = key;
      jp_ws(j);
      if (j->p >= j->end || *j->p != ':') {
        csn_free(key);
        return -1;
      }
      j->p++;
    }
    /* The cookie's expires member (depth 2 under "cookie") is a Date. */
    int c = cookie && klen == 7 && memcmp(kp, "expires", 7) == 0 ? 2 : 0;
    if (!array && depth == 0 && klen == 6 && memcmp(kp, "cookie", 6) == 0)
      c = 1;
    int rc = jp_value(j, child, kp, klen, depth + 1, c);
    csn_free(key);
    if (rc != 0) return -1;
    jp_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == close) {
      j->p++;
      return 0;
    }
    return -1;
  }
}

/* in_cookie: 1 for the value of the top-level "cookie", 2 for that
 * object's "expires". */
static int jp_value(jp *j, bson_t *b, const char *key, size_t klen, int depth,
                    int in_cookie) {
  jp_ws(j);
  if (j->p >= j->end || depth > MG_DEPTH_MAX) return -1;
  char c = *j->p;
  if (c == '{' || c == '[') {
    bson_t child;
    int array = c == '[';
    int ok = array ? bson_append_array_begin(b, key, (int)klen, &child)
                   : bson_append_document_begin(b, key, (int)klen, &child);
    if (!ok) return -1;
    int rc = jp_container(j, &child, array, depth, in_cookie == 1 && !array);
    ok = array ? bson_append_array_end(b, &child)
               : bson_append_document_end(b, &child);
    return rc == 0 && ok ? 0 : -1;
  }
  if (c == '"') {
    int64_t ms;
    if (jp_string(j) != 0) return -1;
    if (in_cookie == 2 && iso_parse(j->s.p, j->s.n, &ms) == 0)
      return bson_append_date_time(b, key, (int)klen, ms) ? 0 : -1;
    return bson_append_utf8(b, key, (int)klen, j->s.p, (int)j->s.n) ? 0 : -1;
  }
  if (j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
    j->p += 4;
    return bson_append_bool(b, key, (int)klen, true) ? 0 : -1;
  }
  if (j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
    j->p += 5;
    return bson_append_bool(b, key, (int)klen, false) ? 0 : -1;
  }
  if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
    j->p += 4;
    return bson_append_null(b, key, (int)klen) ? 0 : -1;
  }
  /* A number: JSON's grammar, then strtod on a NUL-terminated copy. */
  const char *q = j->p;
  if (q < j->end && *q == '-') q++;
  if (q >= j->end || !isdigit((unsigned char)*q)) return -1;
  if (*q == '0') q++;
  else while (q < j->end && isdigit((unsigned char)*q)) q++;
  if (q < j->end && *q == '.') {
    q++;
    if (q >= j->end || !isdigit((unsigned char)*q)) return -1;
    while (q < j->end && isdigit((unsigned char)*q)) q++;
  }
  if (q < j->end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < j->end && (*q == '+' || *q == '-')) q++;
    if (q >= j->end || !isdigit((unsigned char)*q)) return -1;
    while (q < j->end && isdigit((unsigned char)*q)) q++;
  }
  size_t n = (size_t)(q - j->p);
  char *num = csn_malloc(n + 1);
  if (num == NULL) return -1;
  memcpy(num, j->p, n);
  num[n] = '\0';
  j->p = q;
  double d = strtod(num, NULL); /* "C" locale: see jp_parse */
  csn_free(num);
  /* js-bson: a safe integer within int32, not -0, is an int32. */
  if (d == floor(d) && d >= INT32_MIN && d <= INT32_MAX &&
      !(d == 0 && signbit(d)))
    return bson_append_int32(b, key, (int)klen, (int32_t)d) ? 0 : -1;
  return bson_append_double(b, key, (int)klen, d) ? 0 : -1;
}

/* The record (a JSON object) as the embedded document `key` of b. */
static int json_to_bson(const char *json, size_t len, bson_t *b,
                        const char *key) {
  jp j = {json, json + len, {NULL, 0, 0, 0}};
  bson_t child;
  locale_t old = c_locale_enter();
  int rc = -1;
  jp_ws(&j);
  if (j.p < j.end && *j.p == '{' &&
      bson_append_document_begin(b, key, -1, &child)) {
    rc = jp_container(&j, &child, 0, 0, 0);
    if (!bson_append_document_end(b, &child)) rc = -1;
    jp_ws(&j);
    if (j.p != j.end) rc = -1;
  }
  c_locale_leave(old);
  csn_free(j.s.p);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* BSON -> JSON text (what JSON.stringify writes for the Node driver's      */
/* reading of the document)                                                 */
/* ------------------------------------------------------------------------ */

static void json_quote(tbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  tb_ch(b, '"');
  size_t from = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\b') esc = "\\b";
    else if (c == '\f') esc = "\\f";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c < 0x20) {
      memcpy(u, "\\u00", 4);
      u[4] = hex[c >> 4];
      u[5] = hex[c & 15];
      u[6] = '\0';
      esc = u;
    }
    if (esc == NULL) continue;
    tb_add(b, s + from, i - from);
    tb_str(b, esc);
    from = i + 1;
  }
  tb_add(b, s + from, n - from);
  tb_ch(b, '"');
}

static void bson_to_json_doc(tbuf *b, const bson_t *doc, int array);

/* One value; returns 0 when JSON.stringify would omit it (undefined, in
 * an object). */
static int bson_value_json(tbuf *b, const bson_iter_t *it, int in_array) {
  char num[40];
  switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: {
      uint32_t n;
      const char *s = bson_iter_type(it) == BSON_TYPE_UTF8
                          ? bson_iter_utf8(it, &n)
                          : bson_iter_symbol(it, &n);
      json_quote(b, s, n);
      return 1;
    }
    case BSON_TYPE_INT32:
      snprintf(num, sizeof num, "%d", (int)bson_iter_int32(it));
      tb_str(b, num);
      return 1;
    case BSON_TYPE_INT64:
      /* The driver's promoteLongs: a JavaScript number. */
      js_number((double)bson_iter_int64(it), num);
      tb_str(b, num);
      return 1;
    case BSON_TYPE_DOUBLE:
      js_number(bson_iter_double(it), num);
      tb_str(b, num);
      return 1;
    case BSON_TYPE_BOOL:
      tb_str(b, bson_iter_bool(it) ? "true" : "false");
      return 1;
    case BSON_TYPE_DATE_TIME:
      if (iso_format(bson_iter_date_time(it), num) != 0) {
        tb_str(b, "null"); /* an invalid Date's toJSON() */
      } else {
        tb_ch(b, '"');
        tb_str(b, num);
        tb_ch(b, '"');
      }
      return 1;
    case BSON_TYPE_OID: {
      char hexid[25];
      bson_oid_to_string(bson_iter_oid(it), hexid);
      json_quote(b, hexid, 24); /* ObjectId#toJSON */
      return 1;
    }
    case BSON_TYPE_DECIMAL128: {
      bson_decimal128_t dec;
      char str[BSON_DECIMAL128_STRING];
      bson_iter_decimal128(it, &dec);
      bson_decimal128_to_string(&dec, str);
      tb_str(b, "{\"$numberDecimal\":");
      json_quote(b, str, strlen(str));
      tb_ch(b, '}');
      return 1;
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
      const uint8_t *data;
      uint32_t len;
      bson_t child;
      if (bson_iter_type(it) == BSON_TYPE_DOCUMENT)
        bson_iter_document(it, &len, &data);
      else
        bson_iter_array(it, &len, &data);
      if (!bson_init_static(&child, data, len)) {
        tb_str(b, "null");
        return 1;
      }
      bson_to_json_doc(b, &child, bson_iter_type(it) == BSON_TYPE_ARRAY);
      return 1;
    }
    case BSON_TYPE_UNDEFINED:
      if (!in_array) return 0;
      tb_str(b, "null");
      return 1;
    case BSON_TYPE_REGEX:
      tb_str(b, "{}"); /* a RegExp has no enumerable members */
      return 1;
    default:
      /* null, and what has no JSON form here (binary, code, timestamp,
       * min/max keys): null. */
      tb_str(b, "null");
      return 1;
  }
}

static void bson_to_json_doc(tbuf *b, const bson_t *doc, int array) {
  bson_iter_t it;
  int first = 1;
  tb_ch(b, array ? '[' : '{');
  if (bson_iter_init(&it, doc)) {
    while (bson_iter_next(&it)) {
      size_t mark = b->n;
      if (!first) tb_ch(b, ',');
      if (!array) {
        json_quote(b, bson_iter_key(&it), bson_iter_key_len(&it));
        tb_ch(b, ':');
      }
      if (bson_value_json(b, &it, array)) {
        first = 0;
      } else {
        b->n = mark; /* omitted member */
        if (b->p) b->p[b->n] = '\0';
      }
    }
  }
  tb_ch(b, array ? ']' : '}');
}

/* The record text of a document's `session` (it points at it). Returns
 * CSN_OK with *out (csn_malloc'd), CSN_ECORRUPT for a session that is
 * neither text nor a document, CSN_ENOMEM. */
static int session_text(const bson_iter_t *it, char **out, size_t *outlen) {
  tbuf b = {NULL, 0, 0, 0};
  if (BSON_ITER_HOLDS_UTF8(it)) {
    uint32_t n;
    const char *s = bson_iter_utf8(it, &n);
    tb_add(&b, s, n);
    if (b.p == NULL && !b.oom) tb_add(&b, "", 0);
  } else if (BSON_ITER_HOLDS_DOCUMENT(it)) {
    locale_t old = c_locale_enter();
    bson_value_json(&b, it, 0);
    c_locale_leave(old);
  } else {
    return CSN_ECORRUPT;
  }
  if (b.oom || b.p == NULL) {
    csn_free(b.p);
    return CSN_ENOMEM;
  }
  *out = b.p;
  *outlen = b.n;
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Replace every `needle` in buf (NUL-terminated, capacity cap) by `with`. */
static void replace_all(char *buf, size_t cap, const char *needle,
                        const char *with) {
  size_t nl = needle ? strlen(needle) : 0, wl = strlen(with);
  if (nl == 0) return;
  char *p = buf;
  while ((p = strstr(p, needle)) != NULL) {
    size_t tail = strlen(p + nl);
    if ((size_t)(p - buf) + wl + tail + 1 > cap) {
      *p = '\0'; /* no room: cut here rather than leak the text */
      return;
    }
    memmove(p + wl, p + nl, tail + 1);
    memcpy(p, with, wl);
    p += wl;
  }
}

/* libmongoc's message without secrets: no password, no session id (a
 * duplicate-key error quotes the key), nothing after a quoted value. */
static void scrub(const mg_store *s, const char *msg, const char *sid,
                  char *out, size_t cap) {
  size_t n0 = strnlen(msg, cap - 1);
  memcpy(out, msg, n0);
  out[n0] = '\0';
  char *cut = strstr(out, " dup key");
  if (cut != NULL) *cut = '\0';
  replace_all(out, cap, s != NULL ? s->password : NULL, "***");
  replace_all(out, cap, sid, "<id>");
  size_t n = strlen(out);
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == ':' ||
                   out[n - 1] == '.'))
    out[--n] = '\0';
}

static int ci_has(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

/* A network failure that was not a timeout: the connection was gone. */
static int is_network(const bson_error_t *e) {
  return e->domain == MONGOC_ERROR_STREAM;
}

/* Map a libmongoc error to a code and a message; `took` is how long the
 * operation ran (libmongoc says "socket error or timeout" either way). */
static int mg_error(mg_store *s, const char *what, const char *sid,
                    const bson_error_t *e, int64_t took) {
  char msg[MG_MSG_MAX];
  int rc = CSN_EIO;
  scrub(s, e->message[0] ? e->message : "failed", sid, msg, sizeof msg);
  int slow = took >= s->timeout_ms - s->timeout_ms / 10;
  switch (e->domain) {
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
      if (ci_has(e->message, "refused")) rc = CSN_EIO;
      else if (slow || ci_has(e->message, "timed out")) rc = CSN_ETIMEDOUT;
      break;
    case MONGOC_ERROR_CLIENT:
      rc = e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE ? CSN_ESTORE : CSN_EIO;
      break;
    case MONGOC_ERROR_BSON:
      rc = CSN_EINVAL;
      break;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_WRITE_CONCERN:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_COLLECTION:
    case MONGOC_ERROR_COMMAND:
      rc = e->code == 50 ? CSN_ETIMEDOUT : CSN_ESTORE; /* MaxTimeMSExpired */
      break;
    default:
      rc = CSN_EIO;
  }
  if (rc == CSN_ETIMEDOUT && !ci_has(msg, "time"))
    return csn_store_set_error(&s->base, rc,
                               "mongodb %s: %s: no answer within %lld ms (%s)",
                               s->where, what, (long long)s->timeout_ms, msg);
  return csn_store_set_error(&s->base, rc, "mongodb %s: %s: %s", s->where,
                             what, msg);
}

static int mg_nomem(mg_store *s, const char *what) {
  return csn_store_set_error(&s->base, CSN_ENOMEM,
                             "mongodb %s: %s: out of memory", s->where, what);
}

/* ------------------------------------------------------------------------ */
/* Running an operation on a pooled client                                  */
/* ------------------------------------------------------------------------ */

/* An operation: CSN_OK, a negative CSN_E* code with the message recorded,
 * or MG_FAILED with *e filled by libmongoc. It may run twice (see mg_run):
 * it resets its own output first. */
typedef int (*mg_op)(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                     void *arg, bson_error_t *e);

static int gate_enter(mg_store *s) {
  struct timespec dl;
  int rc = CSN_OK;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  dl.tv_sec += (time_t)(s->timeout_ms / 1000);
  dl.tv_nsec += (long)(s->timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->gate_mu);
  while (s->busy >= s->pool_max) {
    if (pthread_cond_timedwait(&s->gate_cv, &s->gate_mu, &dl) == ETIMEDOUT &&
        s->busy >= s->pool_max) {
      rc = CSN_ETIMEDOUT;
      break;
    }
  }
  if (rc == CSN_OK) s->busy++;
  pthread_mutex_unlock(&s->gate_mu);
  if (rc != CSN_OK)
    return csn_store_set_error(&s->base, rc,
                               "mongodb %s: all %u connections busy for %lld "
                               "ms (raise pool=)",
                               s->where, s->pool_max,
                               (long long)s->timeout_ms);
  return CSN_OK;
}

static void gate_leave(mg_store *s) {
  pthread_mutex_lock(&s->gate_mu);
  s->busy--;
  pthread_cond_signal(&s->gate_cv);
  pthread_mutex_unlock(&s->gate_mu);
}

/* Run op on a pooled client. An idempotent op that failed on a broken
 * connection (quickly: not a timeout) runs once more; libmongoc has
 * dropped that connection and re-checks the server meanwhile. So does an
 * upsert that lost a race to insert the same _id (E11000). */
static int mg_run(mg_store *s, const char *what, const char *sid, mg_op op,
                  void *arg, int idempotent) {
  int rc = gate_enter(s);
  if (rc != CSN_OK) return rc;
  mongoc_client_t *cl = mongoc_client_pool_pop(s->pool);
  mongoc_collection_t *c =
      cl != NULL ? mongoc_client_get_collection(cl, s->db, s->coll) : NULL;
  if (c == NULL) {
    if (cl != NULL) mongoc_client_pool_push(s->pool, cl);
    gate_leave(s);
    return mg_nomem(s, what);
  }
  for (int attempt = 0;; attempt++) {
    bson_error_t e;
    memset(&e, 0, sizeof e);
    int64_t t0 = csn_mono_ms();
    rc = op(s, cl, c, arg, &e);
    if (rc != MG_FAILED) break;
    int64_t took = csn_mono_ms() - t0;
    int dup = e.code == 11000 && (e.domain == MONGOC_ERROR_SERVER ||
                                  e.domain == MONGOC_ERROR_COLLECTION);
    if (attempt == 0 && idempotent &&
        ((is_network(&e) && took < s->timeout_ms - s->timeout_ms / 10) ||
         dup))
      continue;
    rc = mg_error(s, what, sid, &e, took);
    break;
  }
  mongoc_collection_destroy(c);
  mongoc_client_pool_push(s->pool, cl);
  gate_leave(s);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Filters and updates                                                      */
/* ------------------------------------------------------------------------ */

/* {$or: [{expires: {$exists: false}}, {expires: {$gt: now}}]} into f. */
static void add_live(bson_t *f, int64_t now) {
  bson_t or, a, b, ex;
  bson_append_array_begin(f, "$or", 3, &or);
  bson_append_document_begin(&or, "0", 1, &a);
  bson_append_document_begin(&a, "expires", 7, &ex);
  bson_append_bool(&ex, "$exists", 7, false);
  bson_append_document_end(&a, &ex);
  bson_append_document_end(&or, &a);
  bson_append_document_begin(&or, "1", 1, &b);
  bson_append_document_begin(&b, "expires", 7, &ex);
  bson_append_date_time(&ex, "$gt", 3, now);
  bson_append_document_end(&b, &ex);
  bson_append_document_end(&or, &b);
  bson_append_array_end(f, &or);
}

/* {_id: sid[, live]} */
static void id_filter(bson_t *f, const char *sid, int live, int64_t now) {
  bson_init(f);
  BSON_APPEND_UTF8(f, "_id", sid);
  if (live) add_live(f, now);
}

static int64_t mg_expires(const mg_store *s, int64_t expires_ms,
                          int64_t now) {
  return expires_ms == CSN_TIME_NONE ? now + s->ttl_ms : expires_ms;
}

/* {$set: {session, expires[, lastModified]}} as connect-mongo's set. */
static int set_update(mg_store *s, bson_t *u, const char *json, size_t len,
                      int64_t expires_ms, int64_t now) {
  bson_t set;
  int rc = CSN_OK;
  bson_init(u);
  bson_append_document_begin(u, "$set", 4, &set);
  if (s->object_form) {
    if (json_to_bson(json, len, &set, "session") != 0) rc = CSN_EINVAL;
  } else if (len > INT_MAX ||
             !bson_append_utf8(&set, "session", 7, json, (int)len)) {
    rc = CSN_EINVAL;
  }
  BSON_APPEND_DATE_TIME(&set, "expires", mg_expires(s, expires_ms, now));
  if (s->touch_after_ms > 0) BSON_APPEND_DATE_TIME(&set, "lastModified", now);
  bson_append_document_end(u, &set);
  if (rc != CSN_OK) {
    bson_destroy(u);
    bson_init(u);
    return csn_store_set_error(&s->base, rc,
                               "mongodb %s: set: the record is not a JSON "
                               "object BSON can hold",
                               s->where);
  }
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* lastModified seen by get() (touch_after)                                 */
/* ------------------------------------------------------------------------ */

static size_t lm_slot_of(const char *sid) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)sid; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % MG_LM_SLOTS;
}

static void lm_put(mg_store *s, const char *sid, int64_t lm) {
  lm_slot *e = &s->lm[lm_slot_of(sid)];
  pthread_mutex_lock(&s->lm_mu);
  if (e->sid == NULL || strcmp(e->sid, sid) != 0) {
    char *copy = csn_strdup(sid);
    if (copy != NULL) {
      csn_free(e->sid);
      e->sid = copy;
    }
  }
  if (e->sid != NULL && strcmp(e->sid, sid) == 0) e->lm = lm;
  pthread_mutex_unlock(&s->lm_mu);
}

/* Take (and forget) what get() saw: 1 found, 0 not. */
static int lm_take(mg_store *s, const char *sid, int64_t *lm) {
  lm_slot *e = &s->lm[lm_slot_of(sid)];
  int found = 0;
  pthread_mutex_lock(&s->lm_mu);
  if (e->sid != NULL && strcmp(e->sid, sid) == 0) {
    *lm = e->lm;
    found = 1;
    csn_free(e->sid);
    e->sid = NULL;
  }
  pthread_mutex_unlock(&s->lm_mu);
  return found;
}

/* ------------------------------------------------------------------------ */
/* Store methods                                                            */
/* ------------------------------------------------------------------------ */

/* findOne {_id, live} with a projection. */
typedef struct find_arg {
  const char *sid;
  int fields; /* FIND_* */
  int found;
  int64_t lm;     /* lastModified, -1 none */
  bson_t *doc;    /* a copy of the document, when found */
} find_arg;

enum { FIND_SESSION = 1, FIND_LM = 2 };

static int op_find(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                   void *arg, bson_error_t *e) {
  find_arg *a = arg;
  bson_t f, opts, proj;
  const bson_t *doc;
  (void)cl;
  a->found = 0;
  a->lm = -1;
  if (a->doc != NULL) {
    bson_destroy(a->doc);
    a->doc = NULL;
  }
  id_filter(&f, a->sid, 1, csn_now_ms());
  bson_init(&opts);
  bson_append_document_begin(&opts, "projection", 10, &proj);
  BSON_APPEND_INT32(&proj, "_id", 1);
  if (a->fields & FIND_SESSION) BSON_APPEND_INT32(&proj, "session", 1);
  if (a->fields & FIND_LM) BSON_APPEND_INT32(&proj, "lastModified", 1);
  bson_append_document_end(&opts, &proj);
  BSON_APPEND_INT64(&opts, "limit", 1);
  BSON_APPEND_BOOL(&opts, "singleBatch", true);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &f, &opts, NULL);
  int rc = CSN_OK;
  if (mongoc_cursor_next(cur, &doc)) {
    bson_iter_t it;
    a->found = 1;
    if (bson_iter_init_find(&it, doc, "lastModified") &&
        BSON_ITER_HOLDS_DATE_TIME(&it))
      a->lm = bson_iter_date_time(&it);
    if (a->fields & FIND_SESSION) {
      a->doc = bson_copy(doc);
      if (a->doc == NULL) rc = mg_nomem(s, "get");
    }
  } else if (mongoc_cursor_error(cur, e)) {
    rc = MG_FAILED;
  }
  mongoc_cursor_destroy(cur);
  bson_destroy(&opts);
  bson_destroy(&f);
  return rc;
}

static int mg_get(csn_store *st, const char *sid, char **json, size_t *len) {
  mg_store *s = (mg_store *)st;
  find_arg a = {sid, FIND_SESSION | (s->touch_after_ms > 0 ? FIND_LM : 0),
                0, -1, NULL};
  int rc = mg_run(s, "get", sid, op_find, &a, 1);
  if (rc == CSN_OK && !a.found) rc = CSN_ENOENT;
  if (rc == CSN_OK) {
    bson_iter_t it;
    if (!bson_iter_init_find(&it, a.doc, "session")) {
      rc = csn_store_set_error(st, CSN_ECORRUPT,
                               "mongodb %s: get: document has no session",
                               s->where);
    } else {
      rc = session_text(&it, json, len);
      if (rc == CSN_ECORRUPT)
        csn_store_set_error(st, rc,
                            "mongodb %s: get: session is neither text nor "
                            "a document",
                            s->where);
      else if (rc == CSN_ENOMEM)
        mg_nomem(s, "get");
    }
    if (rc == CSN_OK && s->touch_after_ms > 0) lm_put(s, sid, a.lm);
  }
  if (a.doc != NULL) bson_destroy(a.doc);
  return rc;
}

/* One updateOne; matched count back. */
typedef struct upd_arg {
  const bson_t *filter, *update;
  int upsert;
  int64_t matched;
} upd_arg;

static int op_update(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                     void *arg, bson_error_t *e) {
  upd_arg *a = arg;
  bson_t opts, reply;
  bson_iter_t it;
  (void)s, (void)cl;
  a->matched = 0;
  bson_init(&opts);
  if (a->upsert) BSON_APPEND_BOOL(&opts, "upsert", true);
  bool ok = mongoc_collection_update_one(c, a->filter, a->update, &opts,
                                         &reply, e);
  if (ok && bson_iter_init_find(&it, &reply, "matchedCount"))
    a->matched = bson_iter_as_int64(&it);
  if (ok && a->upsert && bson_iter_init_find(&it, &reply, "upsertedCount"))
    a->matched += bson_iter_as_int64(&it);
  bson_destroy(&reply);
  bson_destroy(&opts);
  return ok ? CSN_OK : MG_FAILED;
}

static int mg_set(csn_store *st, const char *sid, const char *json,
                  size_t len, int64_t expires_ms) {
  mg_store *s = (mg_store *)st;
  bson_t f, u;
  int64_t now = csn_now_ms();
  int rc = set_update(s, &u, json, len, expires_ms, now);
  if (rc != CSN_OK) return rc;
  id_filter(&f, sid, 0, now);
  upd_arg a = {&f, &u, 1, 0};
  rc = mg_run(s, "set", sid, op_update, &a, 1);
  bson_destroy(&f);
  bson_destroy(&u);
  return rc;
}

static int op_delete(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                     void *arg, bson_error_t *e) {
  upd_arg *a = arg; /* filter; `upsert` 1: many; matched: deleted */
  bson_t reply;
  bson_iter_t it;
  (void)s, (void)cl;
  a->matched = 0;
  bool ok = a->upsert
                ? mongoc_collection_delete_many(c, a->filter, NULL, &reply, e)
                : mongoc_collection_delete_one(c, a->filter, NULL, &reply, e);
  if (ok && bson_iter_init_find(&it, &reply, "deletedCount"))
    a->matched = bson_iter_as_int64(&it);
  bson_destroy(&reply);
  return ok ? CSN_OK : MG_FAILED;
}

static int mg_destroy(csn_store *st, const char *sid) {
  mg_store *s = (mg_store *)st;
  bson_t f;
  id_filter(&f, sid, 0, 0);
  upd_arg a = {&f, NULL, 0, 0};
  int rc = mg_run(s, "destroy", sid, op_delete, &a, 1);
  bson_destroy(&f);
  return rc;
}

/* touch: $set expires (and lastModified when the document has one and
 * touch_after is on), on a live document only. With touch_after, nothing
 * at all while the lastModified get() saw is younger than touch_after. */
static int mg_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  mg_store *s = (mg_store *)st;
  int64_t now = csn_now_ms(), lm = -1;
  int has_lm = 0, rc;
  (void)json, (void)len;
  if (s->touch_after_ms > 0) {
    if (!lm_take(s, sid, &lm)) {
      find_arg a = {sid, FIND_LM, 0, -1, NULL};
      rc = mg_run(s, "touch", sid, op_find, &a, 1);
      if (rc != CSN_OK) return rc;
      if (!a.found) return CSN_OK; /* not created */
      lm = a.lm;
    }
    if (lm >= 0 && now - lm < s->touch_after_ms) return CSN_OK;
    has_lm = lm >= 0;
  }
  bson_t f, u, set;
  id_filter(&f, sid, 1, now);
  bson_init(&u);
  bson_append_document_begin(&u, "$set", 4, &set);
  BSON_APPEND_DATE_TIME(&set, "expires", mg_expires(s, expires_ms, now));
  if (has_lm) BSON_APPEND_DATE_TIME(&set, "lastModified", now);
  bson_append_document_end(&u, &set);
  upd_arg a = {&f, &u, 0, 0};
  rc = mg_run(s, "touch", sid, op_update, &a, 1);
  bson_destroy(&f);
  bson_destroy(&u);
  return rc;
}

/* cas, see the OVERVIEW. Never replayed: it may have been applied. */
typedef struct cas_arg {
  const char *sid;
  const char *expected;
  size_t expected_len;
  const bson_t *update;
  int result; /* CSN_OK, CSN_ECONFLICT or CSN_ENOENT */
} cas_arg;

/* Read the live document, compare its rendered session with the expected
 * text, and write only if the stored session is still exactly that. */
static int cas_by_read(mg_store *s, mongoc_collection_t *c, cas_arg *a,
                       bson_error_t *e) {
  find_arg fa = {a->sid, FIND_SESSION, 0, -1, NULL};
  int rc = op_find(s, NULL, c, &fa, e);
  if (rc != CSN_OK) return rc;
  if (!fa.found) {
    a->result = CSN_ENOENT;
    return CSN_OK;
  }
  bson_iter_t it;
  char *text = NULL;
  size_t tlen = 0;
  a->result = CSN_ECONFLICT;
  if (bson_iter_init_find(&it, fa.doc, "session") &&
      session_text(&it, &text, &tlen) == CSN_OK && tlen == a->expected_len &&
      memcmp(text, a->expected, tlen) == 0) {
    bson_t f, eq;
    id_filter(&f, a->sid, 1, csn_now_ms());
    bson_append_document_begin(&f, "session", 7, &eq);
    bson_append_iter(&eq, "$eq", 3, &it);
    bson_append_document_end(&f, &eq);
    upd_arg ua = {&f, a->update, 0, 0};
    rc = op_update(s, NULL, c, &ua, e);
    if (rc == CSN_OK && ua.matched > 0) a->result = CSN_OK;
    bson_destroy(&f);
  }
  csn_free(text);
  bson_destroy(fa.doc);
  return rc;
}

static int op_cas(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                  void *arg, bson_error_t *e) {
  cas_arg *a = arg;
  (void)cl;
  if (s->object_form || a->expected_len > INT_MAX)
    return cas_by_read(s, c, a, e);
  bson_t f;
  id_filter(&f, a->sid, 1, csn_now_ms());
  bson_append_utf8(&f, "session", 7, a->expected, (int)a->expected_len);
  upd_arg ua = {&f, a->update, 0, 0};
  int rc = op_update(s, cl, c, &ua, e);
  bson_destroy(&f);
  if (rc != CSN_OK) return rc;
  if (ua.matched > 0) {
    a->result = CSN_OK;
    return CSN_OK;
  }
  /* Nothing matched: no live document, another text, or a document-form
   * session (written by Node with stringify: false) that renders to the
   * expected text. */
  return cas_by_read(s, c, a, e);
}

static int mg_cas(csn_store *st, const char *sid, const char *expected,
                  size_t expected_len, const char *json, size_t len,
                  int64_t expires_ms) {
  mg_store *s = (mg_store *)st;
  bson_t u;
  int rc = set_update(s, &u, json, len, expires_ms, csn_now_ms());
  if (rc != CSN_OK) return rc;
  cas_arg a = {sid, expected, expected_len, &u, CSN_ECONFLICT};
  rc = mg_run(s, "cas", sid, op_cas, &a, 0);
  bson_destroy(&u);
  return rc != CSN_OK ? rc : a.result;
}

static int mg_delete_many(mg_store *s, const char *what, int expired_only,
                          size_t *removed) {
  bson_t f, lt;
  bson_init(&f);
  if (expired_only) {
    bson_append_document_begin(&f, "expires", 7, &lt);
    BSON_APPEND_DATE_TIME(&lt, "$lt", csn_now_ms());
    bson_append_document_end(&f, &lt);
  }
  upd_arg a = {&f, NULL, 1, 0};
  int rc = mg_run(s, what, NULL, op_delete, &a, 1);
  bson_destroy(&f);
  if (rc == CSN_OK && removed != NULL) *removed = (size_t)a.matched;
  return rc;
}

static int mg_prune(csn_store *st, size_t *removed) {
  return mg_delete_many((mg_store *)st, "prune", 1, removed);
}

static int mg_clear(csn_store *st) {
  return mg_delete_many((mg_store *)st, "clear", 0, NULL);
}

typedef struct count_arg {
  int64_t n;
} count_arg;

static int op_count(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                    void *arg, bson_error_t *e) {
  count_arg *a = arg;
  bson_t f;
  (void)s, (void)cl;
  bson_init(&f);
  add_live(&f, csn_now_ms());
  a->n = mongoc_collection_count_documents(c, &f, NULL, NULL, NULL, e);
  bson_destroy(&f);
  return a->n < 0 ? MG_FAILED : CSN_OK;
}

static int mg_length(csn_store *st, size_t *count) {
  count_arg a = {0};
  int rc = mg_run((mg_store *)st, "length", NULL, op_count, &a, 1);
  if (rc == CSN_OK) *count = (size_t)a.n;
  return rc;
}

/* all: batches in _id order (string ids only: {_id: {$gt: last}}), each
 * collected with the client held and handed to the callback after it is
 * given back, so the callback may call the store. */
typedef struct all_arg {
  char *last; /* NULL: from the start */
  int64_t now;
  int expired; /* 1: the documents whose expiry has passed, else the live */
  char **ids, **texts;
  size_t *lens;
  size_t n;
  int more; /* the batch was full: there may be more */
} all_arg;

static void all_reset(all_arg *a) {
  for (size_t i = 0; i < a->n; i++) {
    csn_free(a->ids[i]);
    csn_free(a->texts[i]);
  }
  a->n = 0;
  a->more = 0;
}

static int op_all(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                  void *arg, bson_error_t *e) {
  all_arg *a = arg;
  bson_t f, idc, opts, sub;
  const bson_t *doc;
  size_t bytes = 0;
  int rc = CSN_OK;
  (void)cl;
  all_reset(a);
  bson_init(&f);
  bson_append_document_begin(&f, "_id", 3, &idc);
  if (a->last != NULL)
    BSON_APPEND_UTF8(&idc, "$gt", a->last);
  else
    BSON_APPEND_UTF8(&idc, "$gte", "");
  bson_append_document_end(&f, &idc);
  if (a->expired) {
    /* The complement of add_live()'s {expires: {$gt: now}}: still stored
     * (the TTL monitor or the remover has not come by yet) but expired. */
    bson_t ex;
    bson_append_document_begin(&f, "expires", 7, &ex);
    bson_append_date_time(&ex, "$lte", 4, a->now);
    bson_append_document_end(&f, &ex);
  } else {
    add_live(&f, a->now);
  }
  bson_init(&opts);
  bson_append_document_begin(&opts, "sort", 4, &sub);
  BSON_APPEND_INT32(&sub, "_id", 1);
  bson_append_document_end(&opts, &sub);
  bson_append_document_begin(&opts, "projection", 10, &sub);
  BSON_APPEND_INT32(&sub, "session", 1);
  bson_append_document_end(&opts, &sub);
  BSON_APPEND_INT64(&opts, "limit", MG_BATCH);
  mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &f, &opts, NULL);
  while (rc == CSN_OK && mongoc_cursor_next(cur, &doc)) {
    bson_iter_t it;
    uint32_t idlen;
    const char *id;
    if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
      continue;
    id = bson_iter_utf8(&it, &idlen);
    char *idc2 = csn_malloc(idlen + 1), *text = NULL;
    size_t tlen = 0;
    if (idc2 == NULL) {
      rc = mg_nomem(s, "all");
      break;
    }
    memcpy(idc2, id, idlen);
    idc2[idlen] = '\0';
    csn_free(a->last);
    a->last = csn_strdup(idc2);
    if (a->last == NULL) {
      csn_free(idc2);
      rc = mg_nomem(s, "all");
      break;
    }
    if (strlen(idc2) != idlen || !csn_store_id_valid(idc2) ||
        !bson_iter_init_find(&it, doc, "session") ||
        session_text(&it, &text, &tlen) != CSN_OK) {
      csn_free(idc2); /* not a session the core could use: skipped */
      a->more = 1;
      continue;
    }
    a->ids[a->n] = idc2;
    a->texts[a->n] = text;
    a->lens[a->n] = tlen;
    a->n++;
    bytes += tlen;
    a->more = 1;
    if (a->n == MG_BATCH || bytes >= MG_BATCH_BYTES) break;
  }
  if (rc == CSN_OK && mongoc_cursor_error(cur, e)) rc = MG_FAILED;
  mongoc_cursor_destroy(cur);
  bson_destroy(&opts);
  bson_destroy(&f);
  return rc;
}

static int mg_walk(csn_store *st, int expired, csn_store_each_fn fn,
                   void *userdata) {
  mg_store *s = (mg_store *)st;
  all_arg a;
  memset(&a, 0, sizeof a);
  a.now = csn_now_ms(); /* one instant for the whole walk */
  a.expired = expired;
  a.ids = csn_malloc(MG_BATCH * sizeof *a.ids);
  a.texts = csn_malloc(MG_BATCH * sizeof *a.texts);
  a.lens = csn_malloc(MG_BATCH * sizeof *a.lens);
  int rc = CSN_OK, stop = 0;
  if (a.ids == NULL || a.texts == NULL || a.lens == NULL)
    rc = mg_nomem(s, "all");
  while (rc == CSN_OK && !stop) {
    rc = mg_run(s, "all", NULL, op_all, &a, 1);
    if (rc != CSN_OK) break;
    for (size_t i = 0; i < a.n && !stop; i++)
      stop = fn(a.ids[i], a.texts[i], a.lens[i], userdata) != 0;
    if (!a.more) stop = 1;
  }
  if (a.ids != NULL && a.texts != NULL) all_reset(&a);
  csn_free(a.ids);
  csn_free(a.texts);
  csn_free(a.lens);
  csn_free(a.last);
  return rc;
}

static int mg_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  return mg_walk(st, 0, fn, userdata);
}

static int mg_all_expired(csn_store *st, csn_store_each_fn fn,
                          void *userdata) {
  return mg_walk(st, 1, fn, userdata);
}

/* The interval remover. A failure (the server briefly away) is left for
 * the next round: nobody waits on this thread's result. */
static void mg_sweep(csn_sweeper *sw, void *userdata) {
  (void)sw;
  (void)mg_prune(userdata, NULL);
}

static void mg_close(csn_store *st) {
  mg_store *s = (mg_store *)st;
  csn_sweeper_stop(s->sweeper); /* waits for a sweep: at most `timeout` */
  if (s->pool != NULL) mongoc_client_pool_destroy(s->pool);
  if (s->uri != NULL) mongoc_uri_destroy(s->uri);
  if (s->lm != NULL) {
    for (size_t i = 0; i < MG_LM_SLOTS; i++) csn_free(s->lm[i].sid);
    csn_free(s->lm);
  }
  if (s->gate_ready) {
    pthread_mutex_destroy(&s->gate_mu);
    pthread_cond_destroy(&s->gate_cv);
    pthread_mutex_destroy(&s->lm_mu);
  }
  csn_free(s->db);
  csn_free(s->coll);
  csn_free_secret(s->password);
  csn_free(s);
}

static const csn_store_methods mg_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "mongodb",
    .get = mg_get,
    .set = mg_set,
    .destroy = mg_destroy,
    .touch = mg_touch,
    .clear = mg_clear,
    .length = mg_length,
    .all = mg_all,
    .prune = mg_prune,
    .close = mg_close,
    .cas = mg_cas,
    .all_expired = mg_all_expired,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

#define MG_FAIL(rc, ...) csn_store_fail(errbuf, errlen, rc, __VA_ARGS__)

static int op_ping(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                   void *arg, bson_error_t *e) {
  bson_t cmd, reply;
  (void)c, (void)arg;
  bson_init(&cmd);
  BSON_APPEND_INT32(&cmd, "ping", 1);
  bool ok = mongoc_client_command_simple(cl, s->db, &cmd, NULL, &reply, e);
  bson_destroy(&reply);
  bson_destroy(&cmd);
  return ok ? CSN_OK : MG_FAILED;
}

/* Is this index's key exactly {expires: 1}? */
static int key_is_expires(const bson_t *idx) {
  bson_iter_t it, k;
  if (!bson_iter_init_find(&it, idx, "key") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
      !bson_iter_recurse(&it, &k) || !bson_iter_next(&k) ||
      strcmp(bson_iter_key(&k), "expires") != 0 ||
      !BSON_ITER_HOLDS_NUMBER(&k) || bson_iter_as_double(&k) != 1.0)
    return 0;
  return !bson_iter_next(&k);
}

/* native autoRemove: find the TTL index, else create it. An index on the
 * same key with other options would make createIndexes fail (and would not
 * expire documents at `expires`): the open fails saying so. */
static int op_index(mg_store *s, mongoc_client_t *cl, mongoc_collection_t *c,
                    void *arg, bson_error_t *e) {
  const bson_t *idx;
  char name[128] = "";
  int found = 0, ttl_ok = 0;
  (void)cl, (void)arg;
  mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(c, NULL);
  while (!found && mongoc_cursor_next(cur, &idx)) {
    bson_iter_t it;
    if (!key_is_expires(idx)) continue;
    found = 1;
    if (bson_iter_init_find(&it, idx, "name") && BSON_ITER_HOLDS_UTF8(&it))
      snprintf(name, sizeof name, "%s", bson_iter_utf8(&it, NULL));
    ttl_ok = bson_iter_init_find(&it, idx, "expireAfterSeconds") &&
             BSON_ITER_HOLDS_NUMBER(&it) && bson_iter_as_double(&it) == 0.0;
  }
  bson_error_t le;
  /* A collection that does not exist yet has no indexes (26). */
  if (mongoc_cursor_error(cur, &le) && le.code != 26) {
    *e = le;
    mongoc_cursor_destroy(cur);
    return MG_FAILED;
  }
  mongoc_cursor_destroy(cur);
  if (found && ttl_ok) return CSN_OK;
  if (found)
    return csn_store_set_error(
        &s->base, CSN_ESTORE,
        "mongodb %s: index: an index on {expires: 1} with other options "
        "exists (%s), so the TTL index (expireAfterSeconds 0) cannot be "
        "created: drop it, or open with auto_remove=interval or disabled",
        s->where, name);
  bson_t cmd, arr, ix, key, reply;
  bson_init(&cmd);
  BSON_APPEND_UTF8(&cmd, "createIndexes", s->coll);
  bson_append_array_begin(&cmd, "indexes", 7, &arr);
  bson_append_document_begin(&arr, "0", 1, &ix);
  bson_append_document_begin(&ix, "key", 3, &key);
  BSON_APPEND_INT32(&key, "expires", 1);
  bson_append_document_end(&ix, &key);
  BSON_APPEND_UTF8(&ix, "name", "expires_1");
  BSON_APPEND_INT32(&ix, "expireAfterSeconds", 0);
  BSON_APPEND_BOOL(&ix, "background", true);
  bson_append_document_end(&arr, &ix);
  bson_append_array_end(&cmd, &arr);
  bool ok = mongoc_collection_write_command_with_opts(c, &cmd, NULL, &reply,
                                                      e);
  bson_destroy(&reply);
  bson_destroy(&cmd);
  if (!ok && (e->code == 85 || e->code == 86)) /* IndexOptions/KeySpecs */
    return csn_store_set_error(
        &s->base, CSN_ESTORE,
        "mongodb %s: index: an index conflicting with expires_1 exists, so "
        "the TTL index (expireAfterSeconds 0) cannot be created: drop it, or "
        "open with auto_remove=interval or disabled",
        s->where);
  return ok ? CSN_OK : MG_FAILED;
}

/* "host:port,host:port" (or the SRV name) for messages. */
static void where_of(const mongoc_uri_t *uri, char *out, size_t cap) {
  const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri);
  size_t n = 0;
  out[0] = '\0';
  if (h == NULL && mongoc_uri_get_srv_hostname(uri) != NULL) {
    snprintf(out, cap, "%s", mongoc_uri_get_srv_hostname(uri));
    return;
  }
  for (; h != NULL && n + 1 < cap; h = h->next) {
    int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", h->host_and_port);
    if (w < 0 || (size_t)w >= cap - n) break;
    n += (size_t)w;
  }
}

/* A libmongoc URI option the store sets unless the URL did. */
static void uri_default(mongoc_uri_t *uri, const char *key, int64_t v) {
  if (!mongoc_uri_has_option(uri, key))
    mongoc_uri_set_option_as_int32(uri, key, (int32_t)v);
}

/* A collection name MongoDB accepts (and the text cannot be misread). */
static int coll_ok(const char *name) {
  size_t n = strlen(name);
  return n > 0 && n < 120 && strchr(name, '$') == NULL;
}

int csn_store_mongo_new(const csn_mongo_options *opts, csn_store **out,
                        char *errbuf, size_t errlen) {
  csn_mongo_options o;
  memset(&o, 0, sizeof o);
  if (opts != NULL) o = *opts;
  if (out == NULL) return MG_FAIL(CSN_EINVAL, "mongodb store: no out");
  *out = NULL;
  if (o.uri == NULL || o.uri[0] == '\0') o.uri = MG_DEFAULT_URI;
  if (o.collection == NULL) o.collection = MG_DEFAULT_COLL;
  if (o.ttl_s == 0) o.ttl_s = MG_DEFAULT_TTL_S;
  if (o.auto_remove_interval_ms == 0)
    o.auto_remove_interval_ms = MG_DEFAULT_INTERVAL_MIN * INT64_C(60000);
  if (o.timeout_ms == 0) o.timeout_ms = MG_DEFAULT_TIMEOUT_MS;
  if (o.connect_timeout_ms == 0) o.connect_timeout_ms = MG_DEFAULT_CONNECT_MS;
  if (!coll_ok(o.collection))
    return MG_FAIL(CSN_EINVAL, "mongodb store: collection must be 1..119 "
                               "bytes without '$'");
  if (o.database != NULL && (o.database[0] == '\0' || strlen(o.database) > 63))
    return MG_FAIL(CSN_EINVAL, "mongodb store: database must be 1..63 bytes");
  if (o.ttl_s < 0 || o.ttl_s > MG_TTL_MAX)
    return MG_FAIL(CSN_EINVAL, "mongodb store: ttl out of range");
  if (o.touch_after_s < 0 || o.touch_after_s > MG_TTL_MAX)
    return MG_FAIL(CSN_EINVAL, "mongodb store: touch_after out of range");
  if (o.auto_remove < CSN_MONGO_REMOVE_NATIVE ||
      o.auto_remove > CSN_MONGO_REMOVE_DISABLED)
    return MG_FAIL(CSN_EINVAL, "mongodb store: unknown auto_remove mode");
  if (o.auto_remove_interval_ms < 0 ||
      o.auto_remove_interval_ms > MG_INTERVAL_MAX * INT64_C(60000))
    return MG_FAIL(CSN_EINVAL,
                   "mongodb store: auto_remove_interval must be 1..%d min",
                   MG_INTERVAL_MAX);
  if (o.timeout_ms < 0 || o.timeout_ms > MG_TIMEOUT_MAX ||
      o.connect_timeout_ms < 0 || o.connect_timeout_ms > MG_TIMEOUT_MAX)
    return MG_FAIL(CSN_EINVAL, "mongodb store: timeout out of range");
  if (o.pool_size > MG_POOL_MAX)
    return MG_FAIL(CSN_EINVAL, "mongodb store: pool must be 1..%d",
                   MG_POOL_MAX);

  pthread_once(&mg_once, mg_global_init);

  bson_error_t be;
  memset(&be, 0, sizeof be);
  mongoc_uri_t *uri = mongoc_uri_new_with_error(o.uri, &be);
  if (uri == NULL) {
    /* libmongoc's text can quote a value ("Unsupported value for x: "..."")
     * or the password: cut at the first quote, scrub what remains. */
    char msg[MG_MSG_MAX];
    size_t ml0 = strnlen(be.message, sizeof msg - 1);
    memcpy(msg, be.message, ml0);
    msg[ml0] = '\0';
    char *q = strchr(msg, '"');
    if (q != NULL && strchr(q + 1, '"') != NULL) {
      char *q2 = strchr(q + 1, '"');
      char *v = strchr(q2 + 1, '"');
      if (v != NULL) *v = '\0';
    }
    if (strchr(o.uri, '@') != NULL) {
      /* The userinfo may be quoted in any form: drop anything after it. */
      const char *rest = strstr(o.uri, "://");
      const char *at = strrchr(o.uri, '@');
      const char *colon = rest ? strchr(rest + 3, ':') : NULL;
      if (colon != NULL && colon < at) {
        char pw[256];
        size_t pl = (size_t)(at - colon - 1);
        if (pl > 0 && pl < sizeof pw) {
          memcpy(pw, colon + 1, pl);
          pw[pl] = '\0';
          replace_all(msg, sizeof msg, pw, "***");
          char *dec = mongoc_uri_unescape(pw);
          if (dec != NULL) {
            replace_all(msg, sizeof msg, dec, "***");
            bson_zero_free(dec, strlen(dec));
          }
        }
      }
    }
    return MG_FAIL(CSN_EINVAL, "mongodb store: invalid URI: %s", msg);
  }

  mg_store *s = csn_malloc(sizeof *s);
  if (s == NULL) {
    mongoc_uri_destroy(uri);
    return MG_FAIL(CSN_ENOMEM, "mongodb store: out of memory");
  }
  memset(s, 0, sizeof *s);
  s->base.m = &mg_methods;
  s->uri = uri;
  s->object_form = o.object_form != 0;
  s->ttl_ms = o.ttl_s * 1000;
  s->touch_after_ms = o.touch_after_s * 1000;
  s->timeout_ms = o.timeout_ms;
  uri_default(uri, MONGOC_URI_SOCKETTIMEOUTMS, o.timeout_ms);
  uri_default(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, o.timeout_ms);
  uri_default(uri, MONGOC_URI_WAITQUEUETIMEOUTMS, o.timeout_ms);
  uri_default(uri, MONGOC_URI_CONNECTTIMEOUTMS, o.connect_timeout_ms);
  s->pool_max = o.pool_size;
  if (s->pool_max == 0) {
    int32_t m = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_MAXPOOLSIZE, 0);
    s->pool_max = m > 0 && m <= MG_POOL_MAX ? (unsigned)m : MG_DEFAULT_POOL;
  }
  where_of(uri, s->where, sizeof s->where);
  const char *db = o.database ? o.database : mongoc_uri_get_database(uri);
  s->db = csn_strdup(db != NULL && db[0] != '\0' ? db : MG_DEFAULT_DB);
  s->coll = csn_strdup(o.collection);
  if (mongoc_uri_get_password(uri) != NULL &&
      mongoc_uri_get_password(uri)[0] != '\0')
    s->password = csn_strdup(mongoc_uri_get_password(uri));
  s->lm = csn_malloc(MG_LM_SLOTS * sizeof *s->lm);
  if (s->db == NULL || s->coll == NULL || s->lm == NULL ||
      (mongoc_uri_get_password(uri) != NULL &&
       mongoc_uri_get_password(uri)[0] != '\0' && s->password == NULL)) {
    mg_close(&s->base);
    return MG_FAIL(CSN_ENOMEM, "mongodb store: out of memory");
  }
  memset(s->lm, 0, MG_LM_SLOTS * sizeof *s->lm);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&s->gate_mu, NULL);
  pthread_cond_init(&s->gate_cv, &ca);
  pthread_mutex_init(&s->lm_mu, NULL);
  pthread_condattr_destroy(&ca);
  s->gate_ready = 1;

  memset(&be, 0, sizeof be);
  s->pool = mongoc_client_pool_new_with_error(uri, &be);
  if (s->pool == NULL) {
    char msg[MG_MSG_MAX];
    scrub(s, be.message[0] ? be.message : "cannot create the client pool",
          NULL, msg, sizeof msg);
    mg_close(&s->base);
    return MG_FAIL(CSN_EINVAL, "mongodb store: %s", msg);
  }
  mongoc_client_pool_set_error_api(s->pool, MONGOC_ERROR_API_VERSION_2);
  mongoc_client_pool_max_size(s->pool, s->pool_max);
  if (mongoc_uri_get_appname(uri) == NULL)
    mongoc_client_pool_set_appname(s->pool, "csession");

  int rc = mg_run(s, "ping", NULL, op_ping, NULL, 1);
  if (rc == CSN_OK && o.auto_remove == CSN_MONGO_REMOVE_NATIVE)
    rc = mg_run(s, "index", NULL, op_index, NULL, 1);
  if (rc == CSN_OK && o.auto_remove == CSN_MONGO_REMOVE_INTERVAL &&
      csn_sweeper_start(&s->sweeper, o.auto_remove_interval_ms,
                        MG_JITTER_PCT, mg_sweep, s) != CSN_OK)
    rc = csn_store_set_error(&s->base, CSN_EIO,
                             "mongodb store: cannot start the remover thread");
  if (rc != CSN_OK) {
    rc = MG_FAIL(rc, "%s", csn_store_errmsg(&s->base));
    mg_close(&s->base);
    return rc;
  }
  *out = &s->base;
  return CSN_OK;
}

/* Options libmongoc takes that are none of int32/int64/bool/utf8. */
static int driver_knows(const char *key) {
  static const char *const special[] = {
      "w",           "readpreferencetags", "authmechanismproperties",
      "authmechanism", "authsource",       "compressors",
      "readconcernlevel", "gssapiservicename"};
  if (mongoc_uri_option_is_int32(key) || mongoc_uri_option_is_int64(key) ||
      mongoc_uri_option_is_bool(key) || mongoc_uri_option_is_utf8(key))
    return 1;
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
    if (strcasecmp(key, special[i]) == 0) return 1;
  return 0;
}

int csn_store_mongo_open(const char *url, csn_store **out, char *errbuf,
                         size_t errlen) {
  const char *rest, *query;
  size_t rlen;
  if (out == NULL || url == NULL)
    return MG_FAIL(CSN_EINVAL, "mongodb store: no URL or no out");
  *out = NULL;
  if (csn_url_split(url, "mongodb", &rest, &rlen, &query) != CSN_OK &&
      csn_url_split(url, "mongodb+srv", &rest, &rlen, &query) != CSN_OK)
    return MG_FAIL(CSN_EINVAL, "mongodb store: URL must start with "
                               "mongodb:// or mongodb+srv://");
  pthread_once(&mg_once, mg_global_init);
  static const char *const store_keys[] = {
      "collection", "stringify", "ttl", "touch_after", "auto_remove",
      "auto_remove_interval", "pool", "timeout", "connect_timeout"};
  char *mine = NULL, *drv = NULL, *coll = NULL, *mode = NULL;
  (void)rest;
  (void)rlen;
  /* Ours to `mine`, the rest to the URI libmongoc gets. */
  int rc = csn_url_partition(url, query, store_keys,
                             sizeof store_keys / sizeof store_keys[0], &mine,
                             &drv);
  if (rc == CSN_ENOMEM) {
    rc = MG_FAIL(CSN_ENOMEM, "mongodb store: out of memory");
    goto out;
  }
  if (rc != CSN_OK) {
    rc = MG_FAIL(CSN_EINVAL, "mongodb store: empty or malformed query "
                             "parameter");
    goto out;
  }
  /* libmongoc ignores (with a warning nobody sees) an option it does not
   * know: a typo in a store option would pass silently. Every key left for
   * it must be one it takes. */
  const char *cur = strchr(drv, '?');
  csn_url_param p;
  if (cur != NULL) cur++;
  while (csn_url_param_next(&cur, &p) == 1) {
    char key[64];
    if (p.key_len >= sizeof key) {
      rc = MG_FAIL(CSN_EINVAL, "mongodb store: unknown option (a name of "
                               "%zu bytes)",
                   p.key_len);
      goto out;
    }
    memcpy(key, p.key, p.key_len);
    key[p.key_len] = '\0';
    for (size_t i = 0; i < p.key_len; i++)
      if (!isalnum((unsigned char)key[i]) && key[i] != '_') {
        rc = MG_FAIL(CSN_EINVAL, "mongodb store: malformed option name");
        goto out;
      }
    if (!driver_knows(key)) {
      rc = MG_FAIL(CSN_EINVAL,
                   "mongodb store: unknown option \"%s\" (neither a store "
                   "option nor one libmongoc knows)",
                   key);
      goto out;
    }
  }
  int64_t ttl = 0, ta = 0, iv = 0, pool = 0, to = 0, cto = 0;
  int stringify = 1;
  const csn_url_option opts[] = {
      {.key = "collection", .type = CSN_URL_STR, .out = &coll},
      {.key = "stringify", .type = CSN_URL_BOOL, .out = &stringify},
      {.key = "ttl", .type = CSN_URL_INT, .min = 1, .max = MG_TTL_MAX,
       .out = &ttl},
      {.key = "touch_after", .type = CSN_URL_INT, .min = 0,
       .max = MG_TTL_MAX, .out = &ta},
      {.key = "auto_remove", .type = CSN_URL_STR, .out = &mode},
      {.key = "auto_remove_interval", .type = CSN_URL_INT, .min = 1,
       .max = MG_INTERVAL_MAX, .out = &iv},
      {.key = "pool", .type = CSN_URL_INT, .min = 1, .max = MG_POOL_MAX,
       .out = &pool},
      {.key = "timeout", .type = CSN_URL_INT, .min = 1,
       .max = MG_TIMEOUT_MAX, .out = &to},
      {.key = "connect_timeout", .type = CSN_URL_INT, .min = 1,
       .max = MG_TIMEOUT_MAX, .out = &cto},
  };
  rc = csn_url_parse_query(mine, opts, sizeof opts / sizeof opts[0],
                           "mongodb store", errbuf, errlen);
  if (rc != CSN_OK) goto out;
  csn_mongo_options o;
  memset(&o, 0, sizeof o);
  if (mode == NULL || strcmp(mode, "native") == 0) {
    o.auto_remove = CSN_MONGO_REMOVE_NATIVE;
  } else if (strcmp(mode, "interval") == 0) {
    o.auto_remove = CSN_MONGO_REMOVE_INTERVAL;
  } else if (strcmp(mode, "disabled") == 0) {
    o.auto_remove = CSN_MONGO_REMOVE_DISABLED;
  } else {
    rc = MG_FAIL(CSN_EINVAL, "mongodb store: auto_remove must be native, "
                             "interval or disabled");
    goto out;
  }
  o.uri = drv;
  o.collection = coll;
  o.object_form = !stringify;
  o.ttl_s = ttl;
  o.touch_after_s = ta;
  o.auto_remove_interval_ms = iv * 60000;
  o.pool_size = (unsigned)pool;
  o.timeout_ms = to;
  o.connect_timeout_ms = cto;
  rc = csn_store_mongo_new(&o, out, errbuf, errlen);
out:
  csn_free_secret(mine);
  csn_free_secret(drv);
  csn_free(coll);
  csn_free(mode);
  return rc;
}
