/* time.c - the clock and JavaScript's two date formats.
 *
 * express-session writes Expires with Date#toUTCString and stores
 * cookie.expires with Date#toISOString, so we reproduce both exactly,
 * including their behaviour at the edges: a JS Date holds whole
 * milliseconds within +-8.64e15 of the epoch (year -271821 to 275760), and
 * outside that range there is no date at all (toISOString throws a
 * RangeError, toUTCString says "Invalid Date"); we answer CSN_ERANGE.
 *
 * The conversion is plain proleptic-Gregorian arithmetic on day numbers
 * (the days-from-civil method: shift the year to start in March so the
 * leap day is last, then count 400-year eras of 146097 days). It never
 * calls gmtime/timegm, so it does not depend on the TZ variable, on
 * time_t's width or on the C library's year range. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "csn_int.h"

#define MS_PER_DAY INT64_C(86400000)
/* "Thu, 01 Jan 1970 00:00:00 GMT": toUTCString for years 0..9999. */
#define HTTP_DATE_LEN 29

/* Floor division and modulo: JS dates before 1970 round toward the past,
 * so -1 ms is 1969-12-31T23:59:59.999Z, not 1970-01-01T00:00:00. */
static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0)))
    q--;
  return q;
}

static int64_t floor_mod(int64_t a, int64_t b) {
  return a - floor_div(a, b) * b;
}

/* Day number (0 = 1970-01-01) of a civil date; m is 1..12. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy, doe;
  /* Count years from March so February's variable length comes last. */
  y -= m <= 2;
  era = floor_div(y, 400);
  yoe = y - era * 400;                                     /* 0..399 */
  doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   /* 0..365 */
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             /* 0..146096 */
  return era * 146097 + doe - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  int64_t era, doe, yoe, doy, mp;
  z += 719468;
  era = floor_div(z, 146097);
  doe = z - era * 146097;
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153; /* month counted from March, 0..11 */
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

typedef struct {
  int64_t year;
  int mon, day, hour, min, sec, ms, wday;
} civil_time;

/* The last day converted, per thread: every record and Set-Cookie written
 * formats an expiry, and nearly all of them fall on the same day as the
 * one before. */
static _Thread_local struct {
  int valid;
  int64_t days, year;
  int mon, day;
} last_day;

/* And the last instant split: a Set-Cookie and the record it goes with
 * format the same expiry, one as toUTCString, one as toISOString. */
static _Thread_local struct {
  int valid;
  int64_t ms;
  civil_time t;
} last_split;

static int split_ms(int64_t ms, civil_time *t) {
  int64_t days, rem;
  if (ms < -CSN__TIME_MAX || ms > CSN__TIME_MAX)
    return CSN_ERANGE;
  if (last_split.valid && last_split.ms == ms) {
    *t = last_split.t;
    return CSN_OK;
  }
  days = floor_div(ms, MS_PER_DAY);
  rem = ms - days * MS_PER_DAY;
  if (last_day.valid && last_day.days == days) {
    t->year = last_day.year;
    t->mon = last_day.mon;
    t->day = last_day.day;
  } else {
    civil_from_days(days, &t->year, &t->mon, &t->day);
    last_day.days = days;
    last_day.year = t->year;
    last_day.mon = t->mon;
    last_day.day = t->day;
    last_day.valid = 1;
  }
  t->hour = (int)(rem / 3600000);
  t->min = (int)(rem / 60000 % 60);
  t->sec = (int)(rem / 1000 % 60);
  t->ms = (int)(rem % 1000);
  t->wday = (int)floor_mod(days + 4, 7); /* 1970-01-01 was a Thursday */
  last_split.t = *t;
  last_split.ms = ms;
  last_split.valid = 1;
  return CSN_OK;
}

int64_t csn__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t csn_now_ms(void) {
  return csn__now_ms();
}

void csn__mono_deadline(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(ms / 1000);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

int64_t csn_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                 "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Two digits at p (0..99). */
static char *put2(char *p, int v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
  return p + 2;
}

/* Four digits at p (0..9999). */
static char *put4(char *p, int64_t v) {
  p = put2(p, (int)(v / 100));
  return put2(p, (int)(v % 100));
}

/* The last second formatted by each of the two formatters, per thread.
 * Expiries are "now + maxAge", so one second's worth of responses all
 * format the same second: toUTCString's text is then copied whole, and
 * toISOString's is copied up to the '.' with only the milliseconds
 * written. Only years 0..9999 (the hand-written forms) are kept. */
static _Thread_local struct {
  int valid;
  int64_t sec;
  char text[HTTP_DATE_LEN + 1];
} last_http;

static _Thread_local struct {
  int valid;
  int64_t sec;
  char text[20]; /* "YYYY-MM-DDTHH:MM:SS." */
} last_iso;

int csn__fmt_http_date(int64_t ms, char *out, size_t size) {
  civil_time t;
  int n, rc;
  int64_t sec;
  if (ms < -CSN__TIME_MAX || ms > CSN__TIME_MAX)
    return CSN_ERANGE;
  sec = floor_div(ms, 1000);
  if (last_http.valid && last_http.sec == sec &&
      size > HTTP_DATE_LEN) {
    memcpy(out, last_http.text, HTTP_DATE_LEN + 1);
    return CSN_OK;
  }
  if ((rc = split_ms(ms, &t)) != CSN_OK)
    return rc;
  /* Every Set-Cookie with an expiry formats one of these: years 0..9999
   * are written by hand, the rest (never seen in practice) by snprintf. */
  if (t.year >= 0 && t.year <= 9999 && size > HTTP_DATE_LEN) {
    char *p = out;
    memcpy(p, wdays[t.wday], 3);
    p[3] = ',', p[4] = ' ';
    p = put2(p + 5, t.day);
    *p++ = ' ';
    memcpy(p, months[t.mon - 1], 3);
    p[3] = ' ';
    p = put4(p + 4, t.year);
    *p++ = ' ';
    p = put2(p, t.hour);
    *p++ = ':';
    p = put2(p, t.min);
    *p++ = ':';
    p = put2(p, t.sec);
    memcpy(p, " GMT", 5);
    memcpy(last_http.text, out, HTTP_DATE_LEN + 1);
    last_http.sec = sec;
    last_http.valid = 1;
    return CSN_OK;
  }
  /* toUTCString: the year has at least 4 digits and a '-' when negative;
   * milliseconds are dropped (floor, via split_ms). */
  n = snprintf(out, size, "%s, %02d %s %s%04lld %02d:%02d:%02d GMT",
               wdays[t.wday], t.day, months[t.mon - 1], t.year < 0 ? "-" : "",
               (long long)(t.year < 0 ? -t.year : t.year), t.hour, t.min,
               t.sec);
  if (n < 0 || (size_t)n >= size)
    return CSN_ENOBUFS;
  return CSN_OK;
}

int csn__fmt_iso8601(int64_t ms, char *out, size_t size) {
  civil_time t;
  int n, rc;
  char year[24];
  int64_t sec;
  if (ms < -CSN__TIME_MAX || ms > CSN__TIME_MAX)
    return CSN_ERANGE;
  sec = floor_div(ms, 1000);
  if (last_iso.valid && last_iso.sec == sec && size >= 25) {
    int m = (int)(ms - sec * 1000);
    memcpy(out, last_iso.text, 20);
    out[20] = (char)('0' + m / 100);
    put2(out + 21, m % 100);
    memcpy(out + 23, "Z", 2);
    return CSN_OK;
  }
  if ((rc = split_ms(ms, &t)) != CSN_OK)
    return rc;
  if (t.year >= 0 && t.year <= 9999 && size >= 25) {
    char *p = put4(out, t.year);
    *p++ = '-';
    p = put2(p, t.mon);
    *p++ = '-';
    p = put2(p, t.day);
    *p++ = 'T';
    p = put2(p, t.hour);
    *p++ = ':';
    p = put2(p, t.min);
    *p++ = ':';
    p = put2(p, t.sec);
    *p++ = '.';
    *p++ = (char)('0' + t.ms / 100);
    p = put2(p, t.ms % 100);
    memcpy(p, "Z", 2);
    memcpy(last_iso.text, out, 20);
    last_iso.sec = sec;
    last_iso.valid = 1;
    return CSN_OK;
  }
  /* toISOString: years 0..9999 as 4 digits, others as a sign and 6. */
  if (t.year >= 0 && t.year <= 9999)
    snprintf(year, sizeof year, "%04lld", (long long)t.year);
  else
    snprintf(year, sizeof year, "%c%06lld", t.year < 0 ? '-' : '+',
             (long long)(t.year < 0 ? -t.year : t.year));
  n = snprintf(out, size, "%s-%02d-%02dT%02d:%02d:%02d.%03dZ", year, t.mon,
               t.day, t.hour, t.min, t.sec, t.ms);
  if (n < 0 || (size_t)n >= size)
    return CSN_ENOBUFS;
  return CSN_OK;
}

/* Read exactly `count` decimal digits at s[*i]. */
static int digits(const char *s, size_t n, size_t *i, int count,
                  int64_t *out) {
  int64_t v = 0;
  int k;
  if (n - *i < (size_t)count)
    return -1;
  for (k = 0; k < count; k++) {
    char c = s[*i + (size_t)k];
    if (c < '0' || c > '9')
      return -1;
    v = v * 10 + (c - '0');
  }
  *i += (size_t)count;
  *out = v;
  return 0;
}

/* The ECMAScript date-time string format:
 *   YYYY | +YYYYYY | -YYYYYY, then optional -MM, then optional -DD,
 *   then optionally THH:mm, :ss, .sss (we accept 1-9 fraction digits, as V8
 *   does, and keep milliseconds), then Z or +HH:mm / -HH:mm.
 * A date-only form is UTC. A date-time without an offset is local time in
 * JavaScript; we refuse it rather than depend on the machine's time zone
 * (toISOString never writes it). "-000000" is invalid by the spec. */
/* What toISOString writes for years 0..9999, "YYYY-MM-DDTHH:MM:SS.mmmZ":
 * every stored record holds one, read on every load. 1 and *ms on
 * success; 0 when s has another shape (the general parser decides). */
/* The last such string read, per thread: its text up to the '.', already
 * checked, and the instant of that second. Records saved within the same
 * second share it, so most reads only compare it and add the
 * milliseconds. */
static _Thread_local struct {
  int valid;
  char text[20];
  int64_t base;
} last_parse;

static int parse_iso_common(const char *s, size_t n, int64_t *ms) {
#define D(i) ((unsigned)((unsigned char)s[i] - '0'))
  unsigned y, mon, day, hour, min, sec, msec;
  if (n != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[23] != 'Z')
    return 0;
  if (last_parse.valid && memcmp(s, last_parse.text, 20) == 0) {
    if ((D(20) > 9) | (D(21) > 9) | (D(22) > 9))
      return 0;
    *ms = last_parse.base + (int64_t)(D(20) * 100 + D(21) * 10 + D(22));
    return 1;
  }
  /* Each D() is below 10 exactly when its byte is a digit. */
  if ((D(0) > 9) | (D(1) > 9) | (D(2) > 9) | (D(3) > 9) | (D(5) > 9) |
      (D(6) > 9) | (D(8) > 9) | (D(9) > 9) | (D(11) > 9) | (D(12) > 9) |
      (D(14) > 9) | (D(15) > 9) | (D(17) > 9) | (D(18) > 9) | (D(20) > 9) |
      (D(21) > 9) | (D(22) > 9))
    return 0;
  y = D(0) * 1000 + D(1) * 100 + D(2) * 10 + D(3);
  mon = D(5) * 10 + D(6);
  day = D(8) * 10 + D(9);
  hour = D(11) * 10 + D(12);
  min = D(14) * 10 + D(15);
  sec = D(17) * 10 + D(18);
  msec = D(20) * 100 + D(21) * 10 + D(22);
#undef D
  /* The general parser's range rules; 24:00 is left to it. */
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
      sec > 59)
    return 0;
  last_parse.base = days_from_civil((int64_t)y, (int)mon, (int)day) *
                        MS_PER_DAY +
                    (int64_t)hour * 3600000 + (int64_t)min * 60000 +
                    (int64_t)sec * 1000;
  memcpy(last_parse.text, s, 20);
  last_parse.valid = 1;
  *ms = last_parse.base + (int64_t)msec;
  return 1;
}

int csn__parse_iso8601(const char *s, size_t n, int64_t *ms) {
  size_t i = 0;
  int64_t year, v, mon = 1, day = 1, hour = 0, min = 0, sec = 0, frac = 0;
  int64_t offset = 0, days, total;

  if (s == NULL)
    return -1;
  if (parse_iso_common(s, n, ms))
    return 0;
  if (n > 0 && (s[0] == '+' || s[0] == '-')) {
    int neg = s[0] == '-';
    i = 1;
    if (digits(s, n, &i, 6, &year) != 0)
      return -1;
    if (neg && year == 0)
      return -1;
    if (neg)
      year = -year;
  } else if (digits(s, n, &i, 4, &year) != 0) {
    return -1;
  }
  if (i < n && s[i] == '-') {
    i++;
    if (digits(s, n, &i, 2, &mon) != 0 || mon < 1 || mon > 12)
      return -1;
    if (i < n && s[i] == '-') {
      i++;
      /* V8 accepts any day up to 31 and lets it roll over ("2025-02-30"
       * is 2 March), so we do too: days_from_civil is linear in d. */
      if (digits(s, n, &i, 2, &day) != 0 || day < 1 || day > 31)
        return -1;
    }
  }
  if (i < n && s[i] == 'T') {
    i++;
    if (digits(s, n, &i, 2, &hour) != 0 || i >= n || s[i] != ':')
      return -1;
    i++;
    if (digits(s, n, &i, 2, &min) != 0)
      return -1;
    if (i < n && s[i] == ':') {
      i++;
      if (digits(s, n, &i, 2, &sec) != 0)
        return -1;
      if (i < n && s[i] == '.') {
        int nd = 0;
        i++;
        /* Milliseconds are the first three digits; later ones are cut. */
        while (i < n && s[i] >= '0' && s[i] <= '9' && nd < 9) {
          if (nd < 3)
            frac = frac * 10 + (s[i] - '0');
          nd++;
          i++;
        }
        if (nd == 0)
          return -1;
        for (; nd < 3; nd++)
          frac *= 10;
      }
    }
    /* 24:00 (and only 24:00:00.000) is the end of the day. */
    if (min > 59 || sec > 59 || hour > 24 ||
        (hour == 24 && (min || sec || frac)))
      return -1;
    if (i < n && s[i] == 'Z') {
      i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
      int neg = s[i] == '-';
      int64_t oh, om;
      i++;
      if (digits(s, n, &i, 2, &oh) != 0 || i >= n || s[i] != ':')
        return -1;
      i++;
      if (digits(s, n, &i, 2, &om) != 0 || oh > 23 || om > 59)
        return -1;
      offset = (oh * 60 + om) * 60000;
      if (neg)
        offset = -offset;
    } else {
      return -1; /* local time: see above */
    }
  }
  if (i != n)
    return -1;

  /* Years are at most 6 digits, so none of this can overflow int64. */
  days = days_from_civil(year, (int)mon, (int)day);
  total = days * MS_PER_DAY + hour * 3600000 + min * 60000 + sec * 1000 +
          frac - offset;
  if (total < -CSN__TIME_MAX || total > CSN__TIME_MAX)
    return -1;
  v = total;
  *ms = v;
  return 0;
}
