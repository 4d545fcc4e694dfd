/* demo_proc.h - run the real csession-demo program from a test: start it
 * with a command line, read the port it printed, stop it with a signal and
 * collect its exit status. The program's path comes from CMake in
 * CSN_DEMO_BIN (tests/http.cmake sets it for the tests that need it).
 *
 * Test code, no cmocka: each call returns 0 or -1 and the test asserts, so
 * the same helpers serve any test program.
 */
#ifndef CSN_DEMO_PROC_H
#define CSN_DEMO_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct demo_proc {
  pid_t pid;       /* 0: not running (or already collected) */
  int out_fd;      /* the child's stdout */
  char line[512];  /* the last line read from it (the start-up banner) */
  char base[64];   /* "http://127.0.0.1:PORT" after demo_proc_start */
} demo_proc;

/* $CSN_DEMO_BIN, or NULL when it is not set (not run through ctest). */
const char *demo_proc_bin(void);

/* Start the demo with args (NULL-ended, argv[0] excluded; at most 30) and
 * its stdout piped. secret_env sets CSN_SECRET in the child, or unsets it
 * when NULL; cwd is the child's working directory (NULL: inherit). */
int demo_proc_spawn(demo_proc *d, const char *const *args,
                    const char *secret_env, const char *cwd);

/* Read one line of the child's stdout into d->line (timeout_ms at most). */
int demo_proc_read_line(demo_proc *d, int timeout_ms);

/* Spawn, then read the banner "<program> listening on
 * http://127.0.0.1:PORT" (10 s at most) and fill d->base. On failure the
 * child is killed and d->line says what came instead. */
int demo_proc_start(demo_proc *d, const char *const *args,
                    const char *secret_env, const char *cwd);

/* demo_proc_start() with the child's stderr written to the file err_path
 * (created, or truncated) instead of the test's own stderr, so the test can
 * read what the program logged. NULL: inherit, as demo_proc_start(). */
int demo_proc_start_stderr(demo_proc *d, const char *const *args,
                           const char *secret_env, const char *cwd,
                           const char *err_path);

/* demo_proc_start_stderr() with the store URL in the child's CSN_STORE
 * (NULL: unset) instead of on its command line, where a password in it
 * would be visible to every user (/proc/PID/cmdline); the secret likewise
 * goes in CSN_SECRET. */
int demo_proc_start_env(demo_proc *d, const char *const *args,
                        const char *secret_env, const char *store_env,
                        const char *cwd, const char *err_path);

/* Wait for the child (timeout_ms at most). Returns its exit status, -1 if
 * it died from a signal, -2 if it did not exit in time (it is then killed
 * with SIGKILL and collected). */
int demo_proc_wait(demo_proc *d, int timeout_ms);

/* SIGTERM, then demo_proc_wait(d, 10000). A no-op returning 0 when the
 * child is not running. */
int demo_proc_stop(demo_proc *d);

#endif /* CSN_DEMO_PROC_H */
