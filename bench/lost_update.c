/* lost_update.c - the lost-update probe (issue 9), against any server that
 * has the route GET /inc?k=NAME[&delay=MS]: csession-demo or the Node
 * reference app (bench/node/app.js).
 *
 *   csn-lost-update [--clients 8] [--requests 100] [--delay MS]
 *                   [--timeout S] http://127.0.0.1:PORT
 *
 * 1. GET / without a cookie; the response's Set-Cookie is the session that
 *    every later request carries (a Cookie header, nothing else: a response
 *    that sets another cookie does not change what the clients send).
 * 2. CLIENTS threads, released together, each send REQUESTS requests
 *    GET /inc?k=k<i>[&delay=MS] on one keep-alive connection of their own.
 *    Client i only ever touches member k<i>, so no increment depends on
 *    another client's: a store that merges concurrent saves keeps them all.
 * 3. When every client is done (so every save has finished: both servers
 *    save before they answer), one more /inc?k=k<i> per key, one at a time,
 *    reads each stored value back: the answer minus 1.
 *
 * Prints one line for scripts and one for people:
 *   LOSTUPDATE kept=K total=T ok=N lost=L non2xx=B failed=F other_cookie=C
 *              codes=503:4,500:1 keys=v0,v1,...
 *   kept K of T increments
 * "ok" counts answers "200 k<i>: N", "lost" the increments that were
 * answered so but are not in the stored value (per key: answers minus the
 * value read back, when positive), "non2xx" answers outside 200-299 (by
 * status in "codes"; the first such answer's body goes to one more line,
 * "NON2XX status: body"), "failed" transfers without an answer (connection
 * refused, timeout) and 2xx answers that do not read "k<i>: N",
 * "other_cookie" answers whose Set-Cookie names another session.
 * Exits 0 when the read-back worked (whatever was kept), 1 when it did not,
 * 2 on a usage error. Every transfer is bounded by --timeout (default 10 s).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* pthread barriers, strncasecmp */
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define MAX_CLIENTS 64
#define COOKIE_MAX 1024

static const char *base_url;
static int n_clients = 8;
static int n_requests = 100;
static long delay_ms = 0;
static long timeout_s = 10;
static char cookie[COOKIE_MAX]; /* "name=value" from the first response */

/* What one transfer brought back. */
typedef struct reply {
  char body[256];
  size_t len;
  char set_cookie[COOKIE_MAX]; /* "name=value" of a Set-Cookie, if any */
} reply;

typedef struct client {
  int index;
  pthread_t thread;
  long ok, non2xx, failed, other_cookie;
} client;

/* Non-2xx answers by status, and the first one's body. */
#define MAX_CODES 16
static pthread_mutex_t codes_lock = PTHREAD_MUTEX_INITIALIZER;
static long code_status[MAX_CODES], code_count[MAX_CODES];
static int n_codes;
static char first_bad_body[128];
static long first_bad_status;

static void note_non2xx(long status, const char *body) {
  int i;
  pthread_mutex_lock(&codes_lock);
  for (i = 0; i < n_codes && code_status[i] != status; i++) {
  }
  if (i == n_codes && n_codes < MAX_CODES) {
    code_status[n_codes] = status;
    code_count[n_codes++] = 0;
  }
  if (i < n_codes)
    code_count[i]++;
  if (first_bad_status == 0) {
    size_t j;
    first_bad_status = status;
    size_t n = strlen(body);
    if (n >= sizeof first_bad_body)
      n = sizeof first_bad_body - 1;
    memcpy(first_bad_body, body, n);
    first_bad_body[n] = '\0';
    for (j = 0; first_bad_body[j] != '\0'; j++)
      if (first_bad_body[j] == '\n' || first_bad_body[j] == '\r')
        first_bad_body[j] = ' ';
  }
  pthread_mutex_unlock(&codes_lock);
}

static pthread_barrier_t start_line;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  reply *r = ud;
  size_t len = size * n, room = sizeof r->body - 1 - r->len;
  memcpy(r->body + r->len, p, len < room ? len : room);
  r->len += len < room ? len : room;
  r->body[r->len] = '\0';
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  reply *r = ud;
  size_t len = size * n, i;
  static const char name[] = "set-cookie:";
  if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
    const char *v = p + sizeof name - 1;
    size_t vl = len - (sizeof name - 1);
    while (vl > 0 && (*v == ' ' || *v == '\t'))
      v++, vl--;
    for (i = 0; i < vl && v[i] != ';' && v[i] != '\r' && v[i] != '\n'; i++) {
    }
    if (i > 0 && i < sizeof r->set_cookie && r->set_cookie[0] == '\0') {
      memcpy(r->set_cookie, v, i);
      r->set_cookie[i] = '\0';
    }
  }
  return len;
}

/* One GET of base_url + path on handle h. Returns the HTTP status, or -1
 * when the transfer failed. */
static long get(CURL *h, const char *path, const char *send_cookie, reply *r) {
  char url[1024];
  long status = -1;
  memset(r, 0, sizeof *r);
  snprintf(url, sizeof url, "%s%s", base_url, path);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_COOKIE, send_cookie); /* NULL: none */
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  if (curl_easy_perform(h) != CURLE_OK)
    return -1;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

/* The value in an answer "k<i>: N", or -1 when the body says otherwise. */
static long long inc_value(const reply *r, int i) {
  char want[32];
  char *end;
  long long v;
  int n = snprintf(want, sizeof want, "k%d: ", i);
  if (strncmp(r->body, want, (size_t)n) != 0)
    return -1;
  errno = 0;
  v = strtoll(r->body + n, &end, 10);
  if (errno != 0 || end == r->body + n || v < 0)
    return -1;
  return v;
}

static void inc_path(char *buf, size_t size, int i) {
  if (delay_ms > 0)
    snprintf(buf, size, "/inc?k=k%d&delay=%ld", i, delay_ms);
  else
    snprintf(buf, size, "/inc?k=k%d", i);
}

static void *client_main(void *arg) {
  client *c = arg;
  CURL *h = curl_easy_init();
  char path[64];
  reply r;
  int n;

  inc_path(path, sizeof path, c->index);
  pthread_barrier_wait(&start_line);
  for (n = 0; n < n_requests; n++) {
    long status = h != NULL ? get(h, path, cookie, &r) : -1;
    if (status < 0) {
      c->failed++;
      continue;
    }
    if (status < 200 || status > 299) {
      c->non2xx++;
      note_non2xx(status, r.body);
      continue;
    }
    if (inc_value(&r, c->index) < 0) {
      c->failed++;
      continue;
    }
    c->ok++;
    if (r.set_cookie[0] != '\0' && strcmp(r.set_cookie, cookie) != 0)
      c->other_cookie++;
  }
  if (h != NULL)
    curl_easy_cleanup(h);
  return NULL;
}

static int usage(FILE *f, int rc) {
  fputs("usage: csn-lost-update [--clients N] [--requests N] [--delay MS]\n"
        "                       [--timeout S] http://127.0.0.1:PORT\n",
        f);
  return rc;
}

static int int_arg(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *s == '\0' || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  static client clients[MAX_CLIENTS];
  long long values[MAX_CLIENTS];
  long ok = 0, non2xx = 0, failed = 0, other = 0, v;
  long long kept = 0, lost = 0;
  int i, readback_ok = 1;
  CURL *h;
  reply r;
  long status;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return usage(stdout, 0);
    if (a[0] == '-' && i + 1 < argc) {
      if (strcmp(a, "--clients") == 0 && int_arg(argv[i + 1], 1, MAX_CLIENTS, &v) == 0)
        n_clients = (int)v;
      else if (strcmp(a, "--requests") == 0 && int_arg(argv[i + 1], 1, 1000000, &v) == 0)
        n_requests = (int)v;
      else if (strcmp(a, "--delay") == 0 && int_arg(argv[i + 1], 0, 60000, &v) == 0)
        delay_ms = v;
      else if (strcmp(a, "--timeout") == 0 && int_arg(argv[i + 1], 1, 3600, &v) == 0)
        timeout_s = v;
      else
        return usage(stderr, 2);
      i++;
    } else if (a[0] != '-' && base_url == NULL) {
      base_url = a;
    } else {
      return usage(stderr, 2);
    }
  }
  if (base_url == NULL)
    return usage(stderr, 2);
  {
    /* "http://host:port/" and "http://host:port" alike. */
    static char trimmed[512];
    snprintf(trimmed, sizeof trimmed, "%s", base_url);
    size_t n = strlen(trimmed);
    while (n > 0 && trimmed[n - 1] == '/')
      trimmed[--n] = '\0';
    base_url = trimmed;
  }

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (h = curl_easy_init()) == NULL) {
    fprintf(stderr, "csn-lost-update: libcurl did not start\n");
    return 1;
  }

  /* 1. One session. */
  status = get(h, "/", NULL, &r);
  if (status != 200 || r.set_cookie[0] == '\0') {
    fprintf(stderr, "csn-lost-update: GET %s/ gave %ld and %s\n", base_url, status,
            r.set_cookie[0] ? "a cookie" : "no cookie");
    return 1;
  }
  snprintf(cookie, sizeof cookie, "%s", r.set_cookie);

  /* 2. The race. */
  if (pthread_barrier_init(&start_line, NULL, (unsigned)n_clients) != 0) {
    fprintf(stderr, "csn-lost-update: pthread_barrier_init failed\n");
    return 1;
  }
  for (i = 0; i < n_clients; i++) {
    clients[i].index = i;
    if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0) {
      fprintf(stderr, "csn-lost-update: pthread_create failed\n");
      return 1; /* the other threads wait at the barrier; exit ends them */
    }
  }
  for (i = 0; i < n_clients; i++) {
    pthread_join(clients[i].thread, NULL);
    ok += clients[i].ok;
    non2xx += clients[i].non2xx;
    failed += clients[i].failed;
    other += clients[i].other_cookie;
  }
  pthread_barrier_destroy(&start_line);

  /* 3. Read back, one key at a time. */
  for (i = 0; i < n_clients; i++) {
    char path[64];
    snprintf(path, sizeof path, "/inc?k=k%d", i);
    status = get(h, path, cookie, &r);
    values[i] = status == 200 ? inc_value(&r, i) : -1;
    if (values[i] < 1) {
      fprintf(stderr, "csn-lost-update: read-back of k%d gave %ld: %.80s\n", i, status,
              r.body);
      readback_ok = 0;
      values[i] = 0;
    } else {
      values[i] -= 1;
    }
    kept += values[i];
    if (clients[i].ok > values[i])
      lost += clients[i].ok - values[i];
  }
  curl_easy_cleanup(h);
  curl_global_cleanup();

  printf("LOSTUPDATE kept=%lld total=%ld ok=%ld lost=%lld non2xx=%ld failed=%ld other_cookie=%ld "
         "codes=",
         kept, (long)n_clients * n_requests, ok, lost, non2xx, failed, other);
  for (i = 0; i < n_codes; i++)
    printf("%s%ld:%ld", i ? "," : "", code_status[i], code_count[i]);
  printf("%s keys=", n_codes ? "" : "-");
  for (i = 0; i < n_clients; i++)
    printf("%s%lld", i ? "," : "", values[i]);
  printf("\n");
  if (first_bad_status != 0)
    printf("NON2XX %ld: %s\n", first_bad_status, first_bad_body);
  printf("kept %lld of %ld increments\n", kept, (long)n_clients * n_requests);
  return readback_ok ? 0 : 1;
}
