/* demo_proc.c - start, read and stop the real csession-demo program (see
 * demo_proc.h). */
#include "demo_proc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *demo_proc_bin(void) {
  const char *p = getenv("CSN_DEMO_BIN");
  return p != NULL && *p != '\0' ? p : NULL;
}

/* The child's stderr goes to err_path when it is not NULL. */
static int spawn(demo_proc *d, const char *const *args,
                 const char *secret_env, const char *store_env,
                 const char *cwd, const char *err_path) {
  const char *argv[32];
  int fds[2], err_fd = -1;
  size_t i;

  memset(d, 0, sizeof *d);
  d->out_fd = -1;
  argv[0] = demo_proc_bin();
  if (argv[0] == NULL)
    return -1;
  for (i = 0; args[i] != NULL && i < 30; i++)
    argv[i + 1] = args[i];
  argv[i + 1] = NULL;
  if (err_path != NULL) {
    err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
                  0600);
    if (err_fd < 0)
      return -1;
  }
  if (pipe(fds) != 0) {
    if (err_fd >= 0)
      close(err_fd);
    return -1;
  }
  d->pid = fork();
  if (d->pid < 0) {
    d->pid = 0;
    close(fds[0]);
    close(fds[1]);
    if (err_fd >= 0)
      close(err_fd);
    return -1;
  }
  if (d->pid == 0) {
    /* The child: only async-signal-safe work until execv, then 126/127
     * tell the parent which step failed. */
    /* Die with the test: a crashed test must not leave a demo behind for
     * ctest to wait on. (The signal follows the thread that forked: spawn
     * from the test's main thread.) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], STDOUT_FILENO);
    if (err_fd >= 0)
      dup2(err_fd, STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    if (cwd != NULL && chdir(cwd) != 0)
      _exit(126);
    if (store_env != NULL)
      setenv("CSN_STORE", store_env, 1);
    else
      unsetenv("CSN_STORE");
    if (secret_env != NULL)
      setenv("CSN_SECRET", secret_env, 1);
    else
      unsetenv("CSN_SECRET");
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  if (err_fd >= 0)
    close(err_fd);
  d->out_fd = fds[0];
  return 0;
}

int demo_proc_spawn(demo_proc *d, const char *const *args,
                    const char *secret_env, const char *cwd) {
  return spawn(d, args, secret_env, NULL, cwd, NULL);
}

int demo_proc_read_line(demo_proc *d, int timeout_ms) {
  size_t n = 0;
  while (n + 1 < sizeof d->line) {
    struct pollfd p = {d->out_fd, POLLIN, 0};
    ssize_t r;
    if (poll(&p, 1, timeout_ms) <= 0)
      return -1;
    r = read(d->out_fd, d->line + n, 1);
    if (r <= 0)
      return -1;
    if (d->line[n] == '\n')
      break;
    n++;
  }
  d->line[n] = '\0';
  return 0;
}

int demo_proc_start(demo_proc *d, const char *const *args,
                    const char *secret_env, const char *cwd) {
  return demo_proc_start_stderr(d, args, secret_env, cwd, NULL);
}

int demo_proc_start_stderr(demo_proc *d, const char *const *args,
                           const char *secret_env, const char *cwd,
                           const char *err_path) {
  return demo_proc_start_env(d, args, secret_env, NULL, cwd, err_path);
}

int demo_proc_start_env(demo_proc *d, const char *const *args,
                        const char *secret_env, const char *store_env,
                        const char *cwd, const char *err_path) {
  unsigned int port = 0;
  const char *banner;
  if (spawn(d, args, secret_env, store_env, cwd, err_path) != 0)
    return -1;
  /* "<program> listening on http://127.0.0.1:PORT": every demo (one per
   * server) prints it, each with its own name. */
  if (demo_proc_read_line(d, 10000) != 0 ||
      (banner = strstr(d->line, " listening on http://127.0.0.1:")) == NULL ||
      sscanf(banner, " listening on http://127.0.0.1:%u", &port) != 1 ||
      port == 0 || port > 65535) {
    kill(d->pid, SIGKILL);
    demo_proc_wait(d, 10000);
    return -1;
  }
  snprintf(d->base, sizeof d->base, "http://127.0.0.1:%u", port);
  return 0;
}

int demo_proc_wait(demo_proc *d, int timeout_ms) {
  int status = 0, waited = 0, rc;
  pid_t r = 0;

  if (d->pid == 0)
    return 0;
  while ((r = waitpid(d->pid, &status, WNOHANG)) == 0 &&
         waited < timeout_ms) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    waited += 10;
  }
  if (r == 0) {
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    rc = -2;
  } else {
    rc = r > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  d->pid = 0;
  if (d->out_fd >= 0)
    close(d->out_fd);
  d->out_fd = -1;
  return rc;
}

int demo_proc_stop(demo_proc *d) {
  if (d->pid == 0)
    return 0;
  if (kill(d->pid, SIGTERM) != 0)
    return -1;
  return demo_proc_wait(d, 10000);
}
