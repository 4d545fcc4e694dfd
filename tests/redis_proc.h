/* redis_proc.h - a private redis-server for one test: started on a free
 * loopback port with its own data directory, killed, stopped (SIGSTOP),
 * restarted on the same port and directory, and always torn down; plus a
 * tiny raw RESP client to look at the keys without going through the
 * store under test.
 *
 * The server binary is $CSN_REDIS_SERVER (tests/store_redis_fault.cmake
 * sets it), else "redis-server" from PATH. When it cannot be run the start
 * fails with a message saying so: a missing Redis is a failed test, never a
 * skipped or passed one.
 *
 * Test code, no cmocka: each call returns 0 or -1 (with a message in the
 * struct's err) and the test asserts.
 */
#ifndef CSN_REDIS_PROC_H
#define CSN_REDIS_PROC_H

#include <stddef.h>
#include <sys/types.h>

#define REDIS_PROC_MAX_ARGS 12

typedef struct redis_proc {
  pid_t pid;            /* 0: not running (or collected) */
  unsigned port;        /* chosen by the first start, kept by restarts */
  char dir[64];         /* data directory (made by the first start) */
  char password[64];    /* "" : none (--requirepass when set) */
  char extra[REDIS_PROC_MAX_ARGS][64]; /* more server arguments */
  size_t n_extra;
  char err[256];        /* why the last call failed */
} redis_proc;

/* Start a server: a fresh directory under /tmp, a free port on 127.0.0.1,
 * no RDB snapshots, the given extra arguments (NULL-ended, may be NULL) and
 * password (NULL or "": none). Waits (10 s at most) until it answers PING.
 * The server gets SIGKILL when the test process dies. */
int redis_proc_start(redis_proc *r, const char *const *extra,
                     const char *password);
/* Start it again after a kill, on the same port and directory, and wait
 * until it answers (it loads its AOF first). */
int redis_proc_restart(redis_proc *r);
/* kill -9 and collect it. */
int redis_proc_crash(redis_proc *r);
/* SIGSTOP, then wait until the kernel shows it stopped ('T'). */
int redis_proc_freeze(redis_proc *r);
/* SIGCONT. */
int redis_proc_thaw(redis_proc *r);
/* Stop whatever state it is in (SIGCONT, SIGKILL, collect), then remove
 * the directory. Safe to call twice, and on a struct never started (all
 * zero). */
void redis_proc_cleanup(redis_proc *r);

/* Run one command (inline syntax: words without spaces) on a fresh
 * connection, after AUTH (when the server has a password) and SELECT db
 * (when db != 0). The reply goes to out: "+OK" / "-ERR ..." / ":1" as
 * sent, a bulk string's bytes, or "(nil)". Returns 0 when a reply came,
 * -1 otherwise (r->err says why; timeout_ms bounds the whole exchange). */
int redis_proc_cmd(redis_proc *r, int db, const char *cmd, char *out,
                   size_t size, int timeout_ms);
/* EXISTS key in db: 1, 0, or -1 on error. */
int redis_proc_exists(redis_proc *r, int db, const char *key);

#endif /* CSN_REDIS_PROC_H */
