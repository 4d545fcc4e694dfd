/* pg_proc.h - a private PostgreSQL server for one test: initdb in a fresh
 * directory under /tmp, the postmaster started as a child of the test on a
 * free loopback port, killed, stopped, restarted on the same port and data
 * directory, always torn down; plus a small libpq client with a deadline
 * to look at the tables without going through the store under test.
 *
 * "The server" is the postmaster and all its descendants (backends,
 * checkpointer, WAL writer ...). PostgreSQL gives each child of the
 * postmaster a session of its own (setsid), so no process group holds
 * them all: a crash or a pause stops the postmaster first (it forks no
 * more), then signals every descendant, found by parent in /proc.
 *
 * The server binaries (initdb, postgres) come from $CSN_PG_BIN (a
 * directory; tests/store_pg_fault.cmake sets it), else the newest
 * /usr/lib/postgresql/<version>/bin, else PATH. PostgreSQL refuses to run
 * as root: when the test runs as root, initdb and the postmaster run as
 * the `postgres` user (fork, setgid/setuid, exec: the pid we hold is the
 * postmaster's). When the server cannot be run the start fails with a
 * message saying so: a missing PostgreSQL is a failed test, never a
 * skipped or passed one.
 *
 * Link: tests/pg_proc.c and tests/proc_util.c with libpq - the CMake
 * target csn_pg_proc (tests/store_pg_fault.cmake) has them.
 *
 * Test code, no cmocka: each call returns 0 (or a count) or -1 with a
 * message in the struct's err, and the test asserts. Start, restart and
 * crash from the thread that will outlive the server (the postmaster gets
 * SIGKILL when the thread that started it ends: PR_SET_PDEATHSIG).
 */
#ifndef CSN_PG_PROC_H
#define CSN_PG_PROC_H

#include <stddef.h>
#include <sys/types.h>

#define PG_PROC_MAX_SETTINGS 8

typedef struct pg_proc_options {
  /* 1: fsync=off (faster; a kill -9 of the server still keeps every
   * commit, only an OS crash would not). 0 (the default): fsync=on. */
  int fsync_off;
  /* The database the test uses, created after the first start; NULL:
   * "csn_test". */
  const char *dbname;
  /* More server settings "name=value" (each passed as -c name=value),
   * NULL-ended; NULL: none. */
  const char *const *settings;
} pg_proc_options;

typedef struct pg_proc {
  pid_t pid;          /* the postmaster (our child);
                         0: not running (or collected) */
  unsigned port;      /* chosen by the first start, kept by restarts */
  char dir[64];       /* /tmp/csn-pg-XXXXXX: data/, server.log, socket */
  char bin[192];      /* the directory of initdb and postgres ("": PATH) */
  char dbname[64];
  char url[192];      /* "postgresql://postgres@127.0.0.1:PORT/DBNAME" */
  char settings[PG_PROC_MAX_SETTINGS + 1][96]; /* -c ...; [0] is fsync */
  size_t n_settings;
  char err[512];      /* why the last call failed */
} pg_proc;

/* initdb a fresh directory, start the server on a free port of 127.0.0.1
 * (another port when the first is taken meanwhile), wait until it accepts
 * connections (60 s at most for all) and create the database. opts may be
 * NULL (defaults). */
int pg_proc_start(pg_proc *p, const pg_proc_options *opts);

/* Start it again after a crash or stop, on the same port and data
 * directory, and wait until it accepts connections (crash recovery first;
 * 60 s at most). */
int pg_proc_restart(pg_proc *p);

/* SIGKILL to the postmaster and every descendant at once, collect the
 * postmaster and wait until none of them is left. */
int pg_proc_crash(pg_proc *p);

/* Fast shutdown (SIGINT: running transactions are rolled back, a
 * checkpoint is written); SIGKILL after 30 s. */
int pg_proc_stop(pg_proc *p);

/* SIGSTOP to the postmaster and every descendant, then wait until all
 * show stopped ('T'). */
int pg_proc_pause(pg_proc *p);

/* SIGCONT to every descendant, then the postmaster. */
int pg_proc_resume(pg_proc *p);

/* Kill whatever runs (as pg_proc_crash), remove the directory. Safe to call twice, and on a zeroed struct never started. */
void pg_proc_cleanup(pg_proc *p);

/* Run one SQL statement on a fresh connection to the test database, with
 * the parameters params (NULL-ended, may be NULL: $1, $2 ... as text).
 * The whole exchange is bounded by timeout_ms (a stopped server is an
 * error, never a hang). Returns the number of rows (0 for a command), and
 * the first column of the first row into out (when out is not NULL;
 * "(null)" for NULL, "" when there is no row); -1 on any error, with
 * PostgreSQL's message in p->err. */
int pg_proc_exec(pg_proc *p, const char *sql, const char *const *params,
                 char *out, size_t size, int timeout_ms);

/* pg_proc_exec without parameters, with a 10 s deadline. */
int pg_proc_exec_sql(pg_proc *p, const char *sql, char *out, size_t size);

#endif /* CSN_PG_PROC_H */
