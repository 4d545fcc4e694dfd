/* http_harness.c - see http_harness.h. */
#include "http_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Test code: running out of memory is not a condition under test here, so
 * it ends the test loudly instead of threading NULL checks everywhere. */
static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "http_harness: out of memory\n");
    abort();
  }
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (p == NULL) {
    fprintf(stderr, "http_harness: out of memory\n");
    abort();
  }
  return p;
}

static char *xstrndup(const char *s, size_t n) {
  char *p = xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* ------------------------------------------------------------------------ */
/* Self-signed certificate                                                  */
/* ------------------------------------------------------------------------ */

/* PEM text of a BIO's contents (malloc'd). */
static char *bio_text(BIO *bio) {
  char *data = NULL;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0)
    return NULL;
  return xstrndup(data, (size_t)n);
}

/* A fresh P-256 key and a one-day certificate for CN=127.0.0.1, as PEM.
 * Made in memory at every start, so no key material is kept in the tree
 * and nothing is left on disk. */
static int make_cert(char **key_pem, char **cert_pem) {
  EVP_PKEY *pkey = NULL;
  X509 *x = NULL;
  X509_NAME *name;
  BIO *kb = NULL, *cb = NULL;
  int ok = 0;

  *key_pem = *cert_pem = NULL;
  pkey = EVP_EC_gen("P-256");
  x = X509_new();
  kb = BIO_new(BIO_s_mem());
  cb = BIO_new(BIO_s_mem());
  if (pkey == NULL || x == NULL || kb == NULL || cb == NULL)
    goto done;
  if (!X509_set_version(x, 2) ||
      !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
      X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
      X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
      !X509_set_pubkey(x, pkey))
    goto done;
  name = X509_get_subject_name(x);
  if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  (const unsigned char *)"127.0.0.1", -1, -1,
                                  0) ||
      !X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256()))
    goto done;
  if (!PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) ||
      !PEM_write_bio_X509(cb, x))
    goto done;
  *key_pem = bio_text(kb);
  *cert_pem = bio_text(cb);
  ok = *key_pem != NULL && *cert_pem != NULL;
done:
  BIO_free(kb);
  BIO_free(cb);
  X509_free(x);
  EVP_PKEY_free(pkey);
  if (!ok) {
    free(*key_pem);
    free(*cert_pem);
    *key_pem = *cert_pem = NULL;
  }
  return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

struct http_server {
  struct MHD_Daemon *daemon;
  http_server_opts opts;
  uint16_t port;
  char base[64];
  char *key_pem;
  char *cert_pem;
  atomic_ulong requests;
};

/* Per-request state kept in MHD's con_cls between handler calls: the body
 * gathered so far. */
typedef struct req_state {
  char *body;
  size_t len;
} req_state;

/* libmicrohttpd calls the handler once with the headers, then once per
 * chunk of body, then once more with *upload_data_size == 0. Answering on
 * that last call works for every method (0.9.75 closes the connection when
 * a response is queued on the first call of a request with a body). */
static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  http_server *s = cls;
  req_state *st = *con_cls;
  http_req req;

  (void)version;
  if (st == NULL) {
    st = xmalloc(sizeof *st);
    st->body = xmalloc(1);
    st->body[0] = '\0';
    st->len = 0;
    *con_cls = st;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    st->body = xrealloc(st->body, st->len + *upload_data_size + 1);
    memcpy(st->body + st->len, upload_data, *upload_data_size);
    st->len += *upload_data_size;
    st->body[st->len] = '\0';
    *upload_data_size = 0;
    return MHD_YES;
  }
  req.conn = conn;
  req.method = method;
  req.url = url;
  req.body = st->body;
  req.body_len = st->len;
  req.ctx = s->opts.ctx;
  req.userdata = s->opts.userdata;
  atomic_fetch_add(&s->requests, 1);
  return s->opts.handler(&req);
}

static void completed_cb(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe) {
  req_state *st = *con_cls;
  (void)cls;
  (void)conn;
  (void)toe;
  if (st != NULL) {
    free(st->body);
    free(st);
    *con_cls = NULL;
  }
}

int http_server_start(const http_server_opts *o, http_server **out) {
  http_server *s;
  struct sockaddr_in sa;
  const union MHD_DaemonInfo *info;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                       MHD_USE_ERROR_LOG;
  unsigned int threads;
  size_t mem;

  *out = NULL;
  if (o == NULL || o->handler == NULL)
    return -1;
  s = xmalloc(sizeof *s);
  memset(s, 0, sizeof *s);
  s->opts = *o;
  atomic_init(&s->requests, 0);
  threads = o->threads > 1 ? o->threads : 1;
  mem = o->memory_limit ? o->memory_limit : 64 * 1024;

  /* Port 0 on the loopback address: the kernel picks a free port, which
   * MHD_DAEMON_INFO_BIND_PORT reports, so parallel test runs never clash. */
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  if (o->tls) {
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
      fprintf(stderr, "http_harness: libmicrohttpd lacks TLS support\n");
      free(s);
      return -1;
    }
    if (make_cert(&s->key_pem, &s->cert_pem) != 0) {
      fprintf(stderr, "http_harness: cannot make a certificate\n");
      free(s);
      return -1;
    }
    flags |= MHD_USE_TLS;
  }
  /* Options that apply only sometimes go in an MHD_OPTION_ARRAY (MHD
   * warns about a pool size of 1, and key/cert exist only with TLS). */
  {
    struct MHD_OptionItem ops[8];
    size_t n = 0;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &sa};
    ops[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                (intptr_t)mem, NULL};
    if (threads > 1)
      ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                         (intptr_t)threads, NULL};
    if (o->tls) {
      ops[n++] =
          (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem};
      ops[n++] =
          (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem};
    }
    ops[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed_cb, s,
                                 MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
  }
  if (s->daemon == NULL) {
    fprintf(stderr, "http_harness: MHD_start_daemon failed\n");
    free(s->key_pem);
    free(s->cert_pem);
    free(s);
    return -1;
  }
  info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  if (info == NULL || info->port == 0) {
    fprintf(stderr, "http_harness: no bound port\n");
    http_server_stop(s);
    return -1;
  }
  s->port = info->port;
  snprintf(s->base, sizeof s->base, "%s://127.0.0.1:%u",
           o->tls ? "https" : "http", (unsigned)s->port);
  *out = s;
  return 0;
}

void http_server_stop(http_server *s) {
  if (s == NULL)
    return;
  if (s->daemon != NULL)
    MHD_stop_daemon(s->daemon);
  free(s->key_pem);
  free(s->cert_pem);
  free(s);
}

uint16_t http_server_port(const http_server *s) { return s->port; }

const char *http_server_base(const http_server *s) { return s->base; }

const char *http_server_url(const http_server *s, const char *path, char *buf,
                            size_t size) {
  snprintf(buf, size, "%s%s", s->base, path);
  return buf;
}

unsigned long http_server_requests(const http_server *s) {
  return atomic_load(&((http_server *)s)->requests);
}

csn_mhd_result http_reply(struct MHD_Connection *conn, csn_request *sreq,
                          unsigned int status, const char *body,
                          const char *extra_header) {
  struct MHD_Response *resp;
  csn_mhd_result ret;

  resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                         MHD_RESPMEM_MUST_COPY);
  if (resp == NULL) {
    csn_request_free(sreq);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  if (extra_header != NULL) {
    const char *colon = strchr(extra_header, ':');
    if (colon != NULL) {
      char *name = xstrndup(extra_header, (size_t)(colon - extra_header));
      const char *value = colon + 1;
      while (*value == ' ')
        value++;
      MHD_add_response_header(resp, name, value);
      free(name);
    }
  }
  if (sreq != NULL)
    ret = csn_mhd_queue_response(sreq, conn, status, resp);
  else
    ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* Client                                                                   */
/* ------------------------------------------------------------------------ */

struct http_client {
  CURL *curl;
  int jar;
};

/* curl_global_init is not thread-safe; the tests create clients from
 * their main thread, and doing it once here keeps callers simple. */
static void curl_once(void) {
  static int done;
  if (!done) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    done = 1;
  }
}

http_client *http_client_new(int cookie_jar) {
  http_client *c;
  curl_once();
  c = xmalloc(sizeof *c);
  c->curl = curl_easy_init();
  c->jar = cookie_jar;
  if (c->curl == NULL) {
    free(c);
    return NULL;
  }
  /* An empty COOKIEFILE switches the cookie engine on without reading a
   * file: cookies live in this handle, like one browser profile. */
  if (cookie_jar)
    curl_easy_setopt(c->curl, CURLOPT_COOKIEFILE, "");
  return c;
}

void http_client_free(http_client *c) {
  if (c == NULL)
    return;
  curl_easy_cleanup(c->curl);
  free(c);
}

typedef struct sink {
  char *data;
  size_t len;
} sink;

static void sink_add(sink *k, const char *p, size_t n) {
  k->data = xrealloc(k->data, k->len + n + 1);
  memcpy(k->data + k->len, p, n);
  k->len += n;
  k->data[k->len] = '\0';
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud) {
  sink_add(ud, p, size * n);
  return size * n;
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud) {
  sink *k = ud;
  /* A new status line starts a new header block (100 Continue, or a
   * reused handle): keep only the final response's headers. */
  if (size * n >= 5 && strncmp(p, "HTTP/", 5) == 0)
    k->len = 0;
  sink_add(k, p, size * n);
  return size * n;
}

static void add_set_cookie(http_response *r, const char *v, size_t n) {
  r->set_cookie =
      xrealloc(r->set_cookie, (r->n_set_cookie + 1) * sizeof *r->set_cookie);
  r->set_cookie[r->n_set_cookie++] = xstrndup(v, n);
}

/* Collect every Set-Cookie value from a raw header block. */
static void parse_set_cookies(http_response *r, const char *block) {
  const char *line = block;
  while (line != NULL && *line != '\0') {
    const char *end = strstr(line, "\r\n");
    size_t n = end ? (size_t)(end - line) : strlen(line);
    if (n > 11 && strncasecmp(line, "Set-Cookie:", 11) == 0) {
      const char *v = line + 11;
      size_t vn = n - 11;
      while (vn > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vn--;
      }
      add_set_cookie(r, v, vn);
    }
    line = end ? end + 2 : NULL;
  }
}

static void response_init(http_response *r) {
  memset(r, 0, sizeof *r);
}

int http_request(http_client *c, const http_request_opts *o,
                 http_response *out) {
  sink body = {NULL, 0}, head = {NULL, 0};
  struct curl_slist *hdrs = NULL;
  CURLcode rc;
  size_t i;

  response_init(out);
  sink_add(&body, "", 0);
  sink_add(&head, "", 0);
  curl_easy_setopt(c->curl, CURLOPT_URL, o->url);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &head);
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 20L);
  /* The test server's certificate is self-signed and made on the spot. */
  curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
  /* The handle is reused; clear anything the previous request set. */
  curl_easy_setopt(c->curl, CURLOPT_COOKIE, o->cookie);
  if (o->body != NULL) {
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, o->body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)o->body_len);
  } else {
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, o->method);
  if (o->headers != NULL)
    for (i = 0; o->headers[i] != NULL; i++)
      hdrs = curl_slist_append(hdrs, o->headers[i]);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);

  rc = curl_easy_perform(c->curl);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hdrs);
  out->body = body.data;
  out->body_len = body.len;
  out->headers = head.data;
  if (rc != CURLE_OK) {
    snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
    return -1;
  }
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &out->status);
  parse_set_cookies(out, out->headers);
  return 0;
}

int http_get(http_client *c, const char *url, const char *cookie,
             http_response *out) {
  http_request_opts o;
  memset(&o, 0, sizeof o);
  o.url = url;
  o.cookie = cookie;
  return http_request(c, &o, out);
}

void http_response_free(http_response *r) {
  size_t i;
  if (r == NULL)
    return;
  for (i = 0; i < r->n_set_cookie; i++)
    free(r->set_cookie[i]);
  free(r->set_cookie);
  free(r->body);
  free(r->headers);
  response_init(r);
}

char *http_client_cookie(http_client *c, const char *name) {
  struct curl_slist *list = NULL, *it;
  char *found = NULL;

  if (curl_easy_getinfo(c->curl, CURLINFO_COOKIELIST, &list) != CURLE_OK)
    return NULL;
  /* Netscape format: domain, flag, path, secure, expiry, name, value,
   * separated by tabs. */
  for (it = list; it != NULL && found == NULL; it = it->next) {
    const char *f = it->data;
    int field;
    for (field = 0; field < 5 && f != NULL; field++) {
      f = strchr(f, '\t');
      if (f != NULL)
        f++;
    }
    if (f == NULL)
      continue;
    {
      const char *tab = strchr(f, '\t');
      if (tab != NULL && (size_t)(tab - f) == strlen(name) &&
          strncmp(f, name, strlen(name)) == 0)
        found = strdup(tab + 1);
    }
  }
  curl_slist_free_all(list);
  return found;
}

void http_client_clear_cookies(http_client *c) {
  curl_easy_setopt(c->curl, CURLOPT_COOKIELIST, "ALL");
}

/* Find the end of the header block and, if present, Content-Length. */
static int raw_complete(const char *buf, size_t len) {
  const char *end;
  const char *cl;
  size_t hlen;
  unsigned long want;

  end = strstr(buf, "\r\n\r\n");
  if (end == NULL)
    return 0;
  hlen = (size_t)(end - buf) + 4;
  /* strcasestr is a GNU extension; scan the header lines by hand. */
  for (cl = buf; cl != NULL && cl < end; cl = strstr(cl, "\r\n")) {
    cl += 2;
    if (strncasecmp(cl, "Content-Length:", 15) == 0)
      break;
  }
  if (cl == NULL || cl >= end)
    return 0; /* read until the server closes */
  want = strtoul(cl + 15, NULL, 10);
  return len >= hlen + want;
}

int http_raw(uint16_t port, const char *data, size_t len, http_response *out) {
  struct sockaddr_in sa;
  sink buf = {NULL, 0};
  size_t off = 0;
  int fd, rc = -1;

  response_init(out);
  sink_add(&buf, "", 0);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    goto done;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    goto done;
  while (off < len) {
    ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the server may hang up on garbage: read what it said */
    off += (size_t)n;
  }
  for (;;) {
    char tmp[4096];
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;
    if (poll(&p, 1, 10000) <= 0)
      break;
    n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0)
      break;
    sink_add(&buf, tmp, (size_t)n);
    if (raw_complete(buf.data, buf.len))
      break;
  }
  rc = 0;
done:
  if (fd >= 0)
    close(fd);
  if (buf.len >= 12 && strncmp(buf.data, "HTTP/1.", 7) == 0)
    out->status = strtol(buf.data + 9, NULL, 10);
  {
    char *end = strstr(buf.data, "\r\n\r\n");
    size_t hlen = end ? (size_t)(end - buf.data) + 4 : buf.len;
    out->headers = xstrndup(buf.data, hlen);
    out->body = xstrndup(buf.data + hlen, buf.len - hlen);
    out->body_len = buf.len - hlen;
  }
  free(buf.data);
  parse_set_cookies(out, out->headers);
  if (rc != 0)
    snprintf(out->error, sizeof out->error, "%s", strerror(errno));
  return rc;
}

char *http_set_cookie_value(const http_response *r, const char *name) {
  size_t i, nlen = strlen(name);
  for (i = 0; i < r->n_set_cookie; i++) {
    const char *v = r->set_cookie[i];
    if (strncmp(v, name, nlen) == 0 && v[nlen] == '=') {
      const char *start = v + nlen + 1;
      const char *semi = strchr(start, ';');
      return xstrndup(start, semi ? (size_t)(semi - start) : strlen(start));
    }
  }
  return NULL;
}

char *http_cookie_sid(const char *value, const char *secret) {
  char *dec = xmalloc(strlen(value) + 1);
  const char *secrets[1];
  size_t i, o = 0, vlen = 0;
  char *sid = NULL;

  /* Only "%3A", "%2B", "%2F" (and "%3D") occur in an encoded signed id;
   * a small decoder avoids depending on the code under test for it. */
  for (i = 0; value[i] != '\0'; i++) {
    if (value[i] == '%' && value[i + 1] && value[i + 2]) {
      char hex[3] = {value[i + 1], value[i + 2], '\0'};
      dec[o++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      dec[o++] = value[i];
    }
  }
  dec[o] = '\0';
  secrets[0] = secret;
  if (o > 2 && dec[0] == 's' && dec[1] == ':' &&
      csn_cookie_unsign(dec + 2, o - 2, secrets, NULL, 1, &vlen) >= 0)
    sid = xstrndup(dec + 2, vlen);
  free(dec);
  return sid;
}

/* ------------------------------------------------------------------------ */
/* Counting store                                                           */
/* ------------------------------------------------------------------------ */

static counting_store *cs_of(csn_store *st) { return (counting_store *)st; }

static int cs_get(csn_store *st, const char *sid, char **json, size_t *len) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->gets, 1);
  return csn_store_get(cs->inner, sid, json, len);
}

static int cs_set(csn_store *st, const char *sid, const char *json, size_t len,
                  int64_t expires_ms) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->sets, 1);
  return csn_store_set(cs->inner, sid, json, len, expires_ms);
}

static int cs_destroy(csn_store *st, const char *sid) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->destroys, 1);
  return csn_store_destroy(cs->inner, sid);
}

static int cs_touch(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->touches, 1);
  return csn_store_touch(cs->inner, sid, json, len, expires_ms);
}

static int cs_clear(csn_store *st) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->clears, 1);
  return csn_store_clear(cs->inner);
}

static int cs_length(csn_store *st, size_t *count) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->lengths, 1);
  return csn_store_length(cs->inner, count);
}

static int cs_all(csn_store *st, csn_store_each_fn fn, void *ud) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->alls, 1);
  return csn_store_all(cs->inner, fn, ud);
}

static int cs_prune(csn_store *st, size_t *removed) {
  counting_store *cs = cs_of(st);
  atomic_fetch_add(&cs->prunes, 1);
  return csn_store_prune(cs->inner, removed);
}

static void cs_close(csn_store *st) {
  counting_store *cs = cs_of(st);
  if (cs->own_inner)
    csn_store_free(cs->inner);
  free(cs);
}

/* A compare-and-set is the save of a session loaded from the store: it
 * counts as a set, so the parity tests' expectations ("the session was
 * saved once") hold whichever way the core saved. An inner store without
 * compare-and-set gets it emulated (unlocked: the harness's stores are used
 * by one request at a time). */
static int cs_cas(csn_store *st, const char *sid, const char *expected,
                  size_t elen, const char *json, size_t len,
                  int64_t expires_ms) {
  counting_store *cs = cs_of(st);
  char *cur = NULL;
  size_t clen = 0;
  int rc;
  atomic_fetch_add(&cs->sets, 1);
  if (csn_store_has_cas(cs->inner))
    return csn_store_cas(cs->inner, sid, expected, elen, json, len,
                         expires_ms);
  rc = csn_store_get(cs->inner, sid, &cur, &clen);
  if (rc != CSN_OK)
    return rc;
  rc = clen == elen && memcmp(cur, expected, elen) == 0 ? CSN_OK
                                                         : CSN_ECONFLICT;
  csn_free(cur);
  if (rc != CSN_OK)
    return rc;
  return csn_store_set(cs->inner, sid, json, len, expires_ms);
}

static const csn_store_methods counting_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "counting",
    .get = cs_get,
    .set = cs_set,
    .destroy = cs_destroy,
    .touch = cs_touch,
    .clear = cs_clear,
    .length = cs_length,
    .all = cs_all,
    .prune = cs_prune,
    .close = cs_close,
    .cas = cs_cas,
};

counting_store *counting_store_new(csn_store *inner, int own_inner) {
  counting_store *cs = xmalloc(sizeof *cs);
  memset(cs, 0, sizeof *cs);
  if (inner == NULL) {
    if (csn_store_memory_new(NULL, &inner) != CSN_OK) {
      free(cs);
      return NULL;
    }
    own_inner = 1;
  }
  cs->base.m = &counting_methods;
  cs->inner = inner;
  cs->own_inner = own_inner;
  counting_store_reset(cs);
  return cs;
}

void counting_store_reset(counting_store *cs) {
  atomic_store(&cs->gets, 0);
  atomic_store(&cs->sets, 0);
  atomic_store(&cs->touches, 0);
  atomic_store(&cs->destroys, 0);
  atomic_store(&cs->clears, 0);
  atomic_store(&cs->lengths, 0);
  atomic_store(&cs->alls, 0);
  atomic_store(&cs->prunes, 0);
}

long counting_store_length(counting_store *cs) {
  size_t n = 0;
  if (csn_store_length(cs->inner, &n) != CSN_OK)
    return -1;
  return (long)n;
}

int counting_store_has(counting_store *cs, const char *sid) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(cs->inner, sid, &json, &len);
  csn_free(json);
  return rc == CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Misc                                                                     */
/* ------------------------------------------------------------------------ */

csn_ctx *http_ctx_new(csn_options *o) {
  static const char *const default_secret[] = {"keyboard cat"};
  csn_ctx *ctx = NULL;
  char err[256] = "";
  if (o->n_secrets == 0) {
    o->secrets = default_secret;
    o->n_secrets = 1;
  }
  if (csn_ctx_new(&ctx, o, err, sizeof err) != CSN_OK) {
    fprintf(stderr, "http_harness: csn_ctx_new: %s\n", err);
    abort();
  }
  return ctx;
}

int http_regex_match(const char *re, const char *s) {
  regex_t rx;
  int m;
  if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0) {
    fprintf(stderr, "http_harness: bad regex %s\n", re);
    abort();
  }
  m = regexec(&rx, s, 0, NULL, 0) == 0;
  regfree(&rx);
  return m;
}
