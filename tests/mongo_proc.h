/* mongo_proc.h - a private MongoDB test server for one test: the
 * in-memory, wire-compatible tests/mongo/mongo_server.py started as a
 * child of the test on a loopback port, stopped, killed (kill -9),
 * restarted on the same port, paused (SIGSTOP) and resumed, and always
 * torn down.
 *
 * The data lives in the server's memory only: a kill or a stop loses
 * every document, and a restart comes back empty (unlike redis_proc and
 * pg_proc, there is nothing on disk to reload). That is what a test of a
 * store's behaviour across a server crash gets.
 *
 * The script is $CSN_MONGO_SERVER_SCRIPT, else the path the including
 * CMake file compiles in as CSN_MONGO_SERVER_SCRIPT (a string literal);
 * it runs under $CSN_MONGO_PYTHON, else /usr/bin/python3 (Debian's
 * interpreter, which sees the bson module of python3-pymongo; the first
 * python3 on PATH may not). When the server cannot be run the start fails
 * with a message saying so: a missing server is a failed test, never a
 * skipped or passed one.
 *
 * Link: tests/mongo_proc.c and tests/proc_util.c.
 *
 * Test code, no cmocka: each call returns 0 or -1 with a message in the
 * struct's err, and the test asserts. Start and restart from the thread
 * that will outlive the server (the server gets SIGKILL when that thread
 * ends: PR_SET_PDEATHSIG). One mongo_proc is not thread-safe; separate
 * ones are.
 */
#ifndef CSN_MONGO_PROC_H
#define CSN_MONGO_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct mongo_proc {
  pid_t pid;      /* 0: not running (or collected) */
  unsigned port;  /* chosen by the first start, kept by restarts */
  char dir[64];   /* /tmp/csn-mongo-XXXXXX: mongo.log, and room for the
                     test's own files (removed by cleanup) */
  char url[96];   /* "mongodb://127.0.0.1:PORT/csn_test" */
  char err[512];  /* why the last call failed */
} mongo_proc;

/* Start a server on 127.0.0.1:port (0: a free port, chosen here) and wait
 * (10 s at most) until it answers a ping over the wire protocol. m is
 * overwritten. On failure the log directory may exist: call
 * mongo_proc_cleanup() either way. */
int mongo_proc_start(mongo_proc *m, unsigned port);
/* "mongodb://127.0.0.1:PORT/csn_test": borrowed, valid while m lives. */
const char *mongo_proc_url(const mongo_proc *m);
/* The server's pid (0 when not running). */
pid_t mongo_proc_pid(const mongo_proc *m);
/* SIGTERM, then wait (10 s at most) for a clean exit; -1 when it did not
 * exit, or exited with a status other than 0 (then it is killed). */
int mongo_proc_stop(mongo_proc *m);
/* kill -9 and collect it. */
int mongo_proc_kill9(mongo_proc *m);
/* Start it again, on the same port, after a stop or a kill; it comes back
 * empty. Waits until it answers. */
int mongo_proc_restart(mongo_proc *m);
/* SIGSTOP, then wait until the kernel shows it stopped ('T'): its port
 * still accepts connections (the kernel completes them) but nothing is
 * answered until mongo_proc_thaw(). */
int mongo_proc_freeze(mongo_proc *m);
/* SIGCONT. */
int mongo_proc_thaw(mongo_proc *m);
/* Stop whatever state it is in (SIGCONT, SIGKILL, collect), then remove
 * the directory. Safe to call twice, and on a zeroed struct. */
void mongo_proc_cleanup(mongo_proc *m);
/* Send {ping: 1} on a fresh connection and wait (timeout_ms at most) for
 * the reply: 0 when an {ok: 1} reply came, -1 otherwise (err says why).
 * For checks like "the frozen server does not answer". */
int mongo_proc_ping(mongo_proc *m, int timeout_ms);

#endif /* CSN_MONGO_PROC_H */
