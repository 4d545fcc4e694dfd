/* demo_routes.c - the demo's routes, written once for every server: each
 * route reads the session of a csn_request and its query arguments, and
 * says what to answer; the demo program of each server sends it. See
 * demo_app.h. */
#include "demo_app.h"

#include "csn/csn_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

/* A reply whose body is a constant or sits in r->buf. */
static int say(demo_reply *r, unsigned int status, const char *body) {
  r->status = status;
  r->content_type = "text/plain";
  r->body = body;
  r->body_len = strlen(body);
  return 0;
}

static int say_buf(demo_reply *r, unsigned int status) {
  return say(r, status, r->buf);
}

/* A 200 reply "<head><n><tail>" in r->buf, without stdio: the visit
 * counter answers every benchmark request, and printf's machinery is a
 * larger share of that request's instructions than the session's own JSON
 * work. head and tail are short constants, so the sum always fits. */
static int say_count(demo_reply *r, const char *head, int64_t n,
                     const char *tail) {
  char digits[24], *d = digits + sizeof digits;
  uint64_t u = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
  size_t hl = strlen(head), tl = strlen(tail), dl;

  do {
    *--d = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (n < 0)
    *--d = '-';
  dl = (size_t)(digits + sizeof digits - d);
  if (hl + dl + tl >= sizeof r->buf)
    return say(r, 500, "reply too long\n");
  memcpy(r->buf, head, hl);
  memcpy(r->buf + hl, d, dl);
  memcpy(r->buf + hl + dl, tail, tl + 1);
  return say_buf(r, 200);
}

static int route_index(csn_session *s, demo_reply *r) {
  int64_t views = 0;
  int rc;

  if (s == NULL)
    return say(r, 200, "No session\n");
  rc = csn_session_incr(s, "views", 1, &views);
  if (rc < 0)
    return rc;
  if (views == 1)
    return say(r, 200, "Welcome! Refresh the page to count visits.\n");
  return say_count(r, "You've visited this page ", views, " times\n");
}

static int route_login(csn_session *s, const char *user, demo_reply *r) {
  int rc;

  if (user == NULL || *user == '\0')
    return say(r, 400, "Missing ?user=NAME\n");
  if (s == NULL)
    return say(r, 200, "No session\n");
  /* A new id at login: an id planted in the browser before the login
   * (session fixation) is worth nothing afterwards. */
  rc = csn_session_regenerate(s);
  if (rc == CSN_OK)
    rc = csn_session_set_str(s, "user", user);
  if (rc < 0)
    return rc;
  snprintf(r->buf, sizeof r->buf, "Logged in as %.200s\n", user);
  return say_buf(r, 200);
}

static int route_logout(csn_session *s, demo_reply *r) {
  int rc = s != NULL ? csn_session_destroy(s) : CSN_OK;
  if (rc < 0)
    return rc;
  return say(r, 200, "Logged out\n");
}

/* The longest delay /inc accepts: a probe, not a way to pin a worker
 * thread for ever. */
#define INC_DELAY_MAX_MS 60000
#define INC_KEY_MAX 64

/* A key /inc may touch: 1..64 bytes, no control characters (it is echoed
 * in the answer), and not "cookie", which the session reserves. */
static int inc_key_ok(const char *k) {
  size_t n = 0;
  if (k == NULL || *k == '\0' || strcmp(k, "cookie") == 0)
    return 0;
  for (; k[n] != '\0'; n++)
    if (n == INC_KEY_MAX || (unsigned char)k[n] < 0x20 || k[n] == 0x7f)
      return 0;
  return 1;
}

/* "delay" in milliseconds: digits only, anything above the maximum is the
 * maximum (so a long digit string cannot overflow). Absent is 0. */
int demo_inc_delay_parse(const char *s, long *ms) {
  long v = 0;
  *ms = 0;
  if (s == NULL)
    return 0;
  if (*s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    if (v <= INC_DELAY_MAX_MS)
      v = v * 10 + (*s - '0');
  }
  *ms = v > INC_DELAY_MAX_MS ? INC_DELAY_MAX_MS : v;
  return 0;
}

/* GET /inc?k=NAME[&delay=MS]: the read-modify-write that concurrent
 * requests on one session race on. The delay sits between loading the
 * session and changing it, which widens the window on purpose: a logout
 * or another increment can land while this request holds a stale copy. */
static int route_inc(csn_session *s, const char *k, const char *delay,
                     demo_reply *r) {
  int64_t v = 0;
  long ms;
  int rc;

  if (!inc_key_ok(k))
    return say(r, 400, "Need ?k=NAME (1-64 characters, not \"cookie\")\n");
  if (demo_inc_delay_parse(delay, &ms) != 0)
    return say(r, 400, "delay: expected milliseconds (digits only)\n");
  if (s == NULL)
    return say(r, 200, "No session\n");
  if (ms > 0) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  rc = csn_session_incr(s, k, 1, &v);
  if (rc == CSN_ETYPE)
    return say(r, 400, "Not an integer member\n");
  if (rc < 0)
    return rc;
  snprintf(r->buf, sizeof r->buf, "%s: %" PRId64 "\n", k, v);
  return say_buf(r, 200);
}

static int route_session(csn_session *s, demo_reply *r) {
  int rc;

  if (s == NULL) {
    say(r, 200, "{}");
  } else {
    rc = csn_session_to_json(s, &r->heap);
    if (rc < 0)
      return rc;
    say(r, 200, r->heap);
  }
  r->content_type = "application/json";
  return 0;
}

int demo_is_health(const char *path) {
  return path != NULL && strcmp(path, "/health") == 0;
}

void demo_health(demo_reply *out) {
  memset(out, 0, sizeof *out);
  say(out, 200, "ok\n");
}

int demo_is_sessionless(const char *path) {
  return demo_is_health(path) ||
         (path != NULL && strcmp(path, "/metrics") == 0);
}

/* GET /metrics: the context's counters for a Prometheus scrape. A scraper
 * sends no cookie, so serving it through a session would count a created
 * session on every scrape: the route stays out of the session. */
int demo_sessionless(csn_ctx *ctx, const char *path, demo_reply *out) {
  int rc;

  if (demo_is_health(path)) {
    demo_health(out);
    return 0;
  }
  memset(out, 0, sizeof *out);
  if (path == NULL || strcmp(path, "/metrics") != 0)
    return say(out, 404, "Not Found\n");
  rc = csn_ctx_metrics_prometheus(ctx, NULL, &out->heap);
  if (rc < 0)
    return rc;
  say(out, 200, out->heap);
  out->content_type = CSN_METRICS_PROMETHEUS_TYPE;
  return 0;
}

int demo_route(csn_request *req, const char *path, demo_query_fn query,
               void *query_ud, demo_reply *out) {
  csn_session *s = csn_request_session(req);

  memset(out, 0, sizeof *out);
  if (strcmp(path, "/") == 0)
    return route_index(s, out);
  if (strcmp(path, "/login") == 0)
    return route_login(s, query(query_ud, "user"), out);
  if (strcmp(path, "/logout") == 0)
    return route_logout(s, out);
  if (strcmp(path, "/session") == 0)
    return route_session(s, out);
  if (strcmp(path, "/inc") == 0)
    return route_inc(s, query(query_ud, "k"), query(query_ud, "delay"), out);
  return say(out, 404, "Not Found\n");
}

void demo_reply_free(demo_reply *r) {
  if (r == NULL)
    return;
  csn_free(r->heap);
  r->heap = NULL;
  r->body = NULL;
}
