/* test_parity_common.h - the shared fixture of the express-session parity
 * suite (tests/test_parity_*.c).
 *
 * Every upstream case in express-session's test/session.js builds a small
 * Express app: the middleware with the case's options, a handler, and
 * supertest requests against it. The fixture mirrors that: pt_new() makes
 * the options with the upstream harness defaults (cookie maxAge 60000,
 * secret "keyboard cat", resave and saveUninitialized true) over a counting
 * store wrapping a real MemoryStore, the test adjusts p->o, and pt_start()
 * runs a real libmicrohttpd server whose requests go through csession and
 * then the case's handler. Requests are made with libcurl.
 *
 * Everything a helper returns (strings, responses) is owned by the fixture
 * and released by pt_free(), so a test reads like the upstream one.
 */
#ifndef CSN_TEST_PARITY_COMMON_H
#define CSN_TEST_PARITY_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "csn_int.h"
#include "http_harness.h"

#define PT_NONE INT64_MIN

typedef struct pt_server pt_server;

/* One request as the case's handler sees it. */
typedef struct pt_call {
  pt_server *p;
  const http_req *hr;
  csn_request *req; /* NULL when the server runs without the middleware */
  csn_session *s;   /* req.session: NULL when the path did not match */
  const char *url;
  const char *method;
  unsigned int status;      /* 200 unless the handler says otherwise */
  char body[8192];          /* the response body the handler builds */
  size_t body_len;
  const char *extra_header; /* "Name: value" added before the session's */
} pt_call;

typedef void (*pt_handler)(pt_call *c);

struct pt_server {
  csn_options o;         /* adjust between pt_new() and pt_start() */
  counting_store *store; /* the store the middleware uses */
  csn_store *use_store;  /* when set, used instead of `store` (helpers) */
  csn_ctx *ctx;
  http_server *http;
  http_client *client;
  http_response res;     /* the last response */
  pt_handler handler;
  void *ud;
  int tls;
  int no_middleware;     /* the handler runs without csession */
  const char *url_override; /* what csn_request_info.url says */
  atomic_int counter;    /* the handlers' shared `count` */
  atomic_int calls;      /* handler-specific call counter */
  char last_log[512];    /* the last message of the log hook */
  char **owned;          /* strings released by pt_free() */
  size_t n_owned;
};

/* A fixture with the upstream harness defaults; nothing runs yet. */
pt_server *pt_new(void);
/* Create the context from p->o (aborting the test on error) and serve. */
void pt_start(pt_server *p, pt_handler h, int tls);
void pt_free(pt_server *p);

/* Perform a request; the response stays in p->res until the next one.
 * cookie is an explicit Cookie header or NULL; headers is NULL-ended. */
http_response *pt_req(pt_server *p, const char *method, const char *path,
                      const char *cookie, const char *const *headers);
http_response *pt_get(pt_server *p, const char *path, const char *cookie);

/* The first Set-Cookie of the last response for the context's cookie name
 * (or `name` with the _named form), NULL if none. */
const char *pt_set_cookie(pt_server *p);
const char *pt_set_cookie_named(pt_server *p, const char *name);
/* "name=value" of that Set-Cookie, for the next request's Cookie header. */
const char *pt_cookie(pt_server *p);
/* The session id in that Set-Cookie (unsigned with "keyboard cat"). */
const char *pt_sid(pt_server *p);
/* 1 if the Set-Cookie string carries the attribute (e.g. "HttpOnly",
 * "Path=/", "SameSite=None"). */
int pt_attr(const char *set_cookie, const char *attr);
/* Expires of a Set-Cookie string in epoch ms, PT_NONE if absent. */
int64_t pt_expires(const char *set_cookie);
/* The response's Date header in epoch ms (PT_NONE if absent). */
int64_t pt_date(const http_response *r);
/* A response header's value (owned), NULL if absent. */
const char *pt_header(pt_server *p, const char *name);

/* The stored record of sid in the real inner store (no store call is
 * counted), NULL if absent; and its cookie.expires in epoch ms. */
const char *pt_stored(pt_server *p, const char *sid);
int64_t pt_stored_expires(pt_server *p, const char *sid);
/* Put a raw record into the inner store. */
void pt_store_put(pt_server *p, const char *sid, const char *json);
long pt_store_len(pt_server *p);

/* A fixture-owned copy / formatted string. */
const char *pt_keep(pt_server *p, char *s);
const char *pt_fmt(pt_server *p, const char *fmt, ...);

/* A signed cookie pair "name=s%3A<sid>.<sig>" for sid with secret. */
const char *pt_signed(pt_server *p, const char *name, const char *sid,
                      const char *secret);

/* Append to the response body. */
void pt_printf(pt_call *c, const char *fmt, ...);

/* Store fault: make `op` ("get", "set", "touch", "destroy") on the
 * fixture's store fail with a "boom!" message (err < 0), or succeed after
 * delay_ms (err == 0). Only the middleware's own store is affected. */
void pt_fault(pt_server *p, const char *op, int err, int delay_ms);
void pt_fault_clear(void);

void pt_sleep_ms(int ms);
int64_t pt_now_ms(void);

/* Store call counters. */
#define PT_SETS(p) ((unsigned long)atomic_load(&(p)->store->sets))
#define PT_GETS(p) ((unsigned long)atomic_load(&(p)->store->gets))
#define PT_TOUCHES(p) ((unsigned long)atomic_load(&(p)->store->touches))
#define PT_DESTROYS(p) ((unsigned long)atomic_load(&(p)->store->destroys))

/* Run the cases of a file; argv[1], when given, selects one by name (the
 * CTest registration runs each case on its own). */
int pt_run(const char *group, const struct CMUnitTest *tests, size_t n,
           int argc, char **argv);

#define PT_RUN(group, tests) \
  pt_run(group, tests, sizeof(tests) / sizeof((tests)[0]), argc, argv)

#endif /* CSN_TEST_PARITY_COMMON_H */
