/* demo_fault.h - one fault scenario for every server store, through the
 * real csession-demo program (part of the csn_demo_client library): the
 * store's server is killed and restarted under load, then stopped
 * (SIGSTOP) and resumed, and the demo's log is read. The test gives the
 * server (a private redis-server, a private PostgreSQL: callbacks) and
 * the store URL; the scenario does the rest and asserts:
 *
 *   a. 20 sessions, each incremented a few times; counters recorded; each
 *      one is in the server where the test looks (has_session).
 *   b. 4 client threads run /inc on those sessions for some seconds; the
 *      server is killed (crash) in the middle and restarted outage_s
 *      later. Every request is answered 200, or 500 while the server is
 *      away, within max_request_s, never a curl failure; at least one 500
 *      during the outage; each 200's counter is above every earlier 200's
 *      for that session (no acknowledged write lost); the demo stays up;
 *      service is back within recovery_max_s of the server answering
 *      (measured and printed) and full from two seconds later on.
 *   c. After the run every session still holds at least what was
 *      acknowledged, and increments on from there. (A server that keeps
 *      its data in memory only - data_lost_on_crash - has none of them
 *      after the restart: b. then also accepts a fresh session's n: 1 from
 *      the crash on, and c. checks that every old cookie finds nothing and
 *      that new sessions count from 1.)
 *   d. Stopped server: 8 parallel /inc (more than the pool) come back 500 within max_request_s each (printed: each
 *      one's time); /health answers 200 meanwhile; none of them wrote
 *      anything late; after thaw service is back within recovery_max_s.
 *   e. The demo's stderr names the server (one of log_names, any case)
 *      and holds neither the password nor any session id; the demo exits
 *      cleanly.
 *
 * Client threads only record; the main thread asserts (cmocka).
 */
#ifndef CSN_DEMO_FAULT_H
#define CSN_DEMO_FAULT_H

#include "demo_client.h"

#define DEMO_FAULT_SESSIONS 20
#define DEMO_FAULT_CLIENTS 4
#define DEMO_FAULT_FROZEN 8

/* The store's server, as the test runs it. Each call returns 0 or -1
 * (then probe.error() says why). */
typedef struct demo_fault_server {
  demo_store_probe probe; /* name, ctx (the callbacks' argument), where a
                             session is stored, error() */
  int (*crash)(void *ctx);   /* kill -9, collected */
  int (*restart)(void *ctx); /* same port and data, answering on return */
  int (*freeze)(void *ctx);  /* SIGSTOP, stopped on return */
  int (*thaw)(void *ctx);    /* SIGCONT */
  /* Teardown: SIGKILL whatever runs of the server, now (a frozen server
   * would make the demo's shutdown wait for its requests' timeouts). */
  void (*kill_now)(void *ctx);
} demo_fault_server;

typedef struct demo_fault {
  /* Given by the test. */
  demo_fault_server srv;
  const char *secret;
  const char *store_url;
  const char *store_label; /* for the start's failure message */
  const char *err_path;    /* where the demo's stderr goes */
  int threads;             /* the demo's workers; 0: 4 */
  double stagger_s;        /* d. starts request i at i * stagger_s: 0
                              opens all at once, and libmicrohttpd may
                              then hand them all to one worker */
  int timeout_ms;          /* the store's timeout and pool: printed */
  unsigned pool;
  double outage_s;         /* between crash and restart */
  double max_request_s;    /* "not a hang" */
  double recovery_max_s;   /* service back after the server is */
  const char *const *log_names; /* NULL-ended; the log names one */
  const char *password;    /* must not be logged; NULL: none */
  int data_lost_on_crash;  /* the server keeps its data in memory only
                              (the MongoDB test server): kill -9 loses
                              every session, and that is what b. and c.
                              expect */

  /* The scenario's state (zero before demo_fault_run). */
  demo_proc d;
  char *cookie[DEMO_FAULT_SESSIONS + 1]; /* [SESSIONS]: the main probe */
  char *sid[DEMO_FAULT_SESSIONS + 1];
  char *lost_sid[DEMO_FAULT_SESSIONS + 1]; /* data_lost_on_crash: the
                                              sessions the crash took */
  long long recorded[DEMO_FAULT_SESSIONS]; /* after a. */
  long long acked[DEMO_FAULT_SESSIONS + 1]; /* highest counter a 200 said */
  int finished;
} demo_fault;

/* Start the demo on f->store_url and run a. to e. The server
 * must be running. Asserts. */
void demo_fault_run(demo_fault *f);

/* For the test's teardown, whatever happened: kill the server
 * (kill_now), stop the demo, show its stderr when the run did not finish,
 * free the cookies. The server's own cleanup is the test's. */
void demo_fault_teardown(demo_fault *f);

#endif /* CSN_DEMO_FAULT_H */
