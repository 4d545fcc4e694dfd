/* redis_proc.c - a private redis-server for a test (see redis_proc.h). */
#include "redis_proc.h"
#include "proc_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *server_bin(void) {
  const char *p = getenv("CSN_REDIS_SERVER");
  return p != NULL && *p != '\0' ? p : "redis-server";
}

/* The last bytes of the server's output, for a failure message. */
static void output_tail(const redis_proc *r, char *buf, size_t size) {
  char path[96];
  snprintf(path, sizeof path, "%s/redis.out", r->dir);
  proc_file_tail(path, buf, size);
}

static int spawn(redis_proc *r) {
  char port[16], out_path[96], conf_path[96];
  const char *argv[16 + REDIS_PROC_MAX_ARGS];
  size_t n = 0, i;
  pid_t parent = getpid();
  int out_fd;

  snprintf(port, sizeof port, "%u", r->port);
  snprintf(out_path, sizeof out_path, "%s/redis.out", r->dir);
  /* The password goes in a private config file, not on the command line
   * (where every user could read it in /proc/PID/cmdline). */
  snprintf(conf_path, sizeof conf_path, "%s/redis.conf", r->dir);
  {
    int cfd = open(conf_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (cfd < 0) {
      snprintf(r->err, sizeof r->err, "cannot write %s: %s", conf_path,
               strerror(errno));
      return -1;
    }
    if (r->password[0] != '\0' &&
        (dprintf(cfd, "requirepass %s\n", r->password) < 0)) {
      close(cfd);
      snprintf(r->err, sizeof r->err, "cannot write %s", conf_path);
      return -1;
    }
    close(cfd);
  }
  argv[n++] = server_bin();
  argv[n++] = conf_path; /* a config file comes first */
  argv[n++] = "--port";
  argv[n++] = port;
  argv[n++] = "--bind";
  argv[n++] = "127.0.0.1";
  argv[n++] = "--dir";
  argv[n++] = r->dir;
  argv[n++] = "--save";
  argv[n++] = "";
  argv[n++] = "--daemonize";
  argv[n++] = "no";
  for (i = 0; i < r->n_extra; i++)
    argv[n++] = r->extra[i];
  argv[n] = NULL;

  out_fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out_fd < 0) {
    snprintf(r->err, sizeof r->err, "cannot open %s: %s", out_path,
             strerror(errno));
    return -1;
  }
  r->pid = fork();
  if (r->pid < 0) {
    r->pid = 0;
    close(out_fd);
    snprintf(r->err, sizeof r->err, "fork: %s", strerror(errno));
    return -1;
  }
  if (r->pid == 0) {
    /* Dies with the test, even when the test crashes. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(125);
    dup2(out_fd, STDOUT_FILENO);
    dup2(out_fd, STDERR_FILENO);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(out_fd);
  return 0;
}

/* Wait until the server answers PING (or has exited). */
static int wait_ready(redis_proc *r, int timeout_ms) {
  double t_end = proc_now_ms() + timeout_ms;
  char reply[128], tail[160];
  int status;

  for (;;) {
    pid_t w = waitpid(r->pid, &status, WNOHANG);
    if (w == r->pid) {
      r->pid = 0;
      output_tail(r, tail, sizeof tail);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(r->err, sizeof r->err,
                 "cannot run %s (is redis-server installed? set "
                 "CSN_REDIS_SERVER): %s",
                 server_bin(), tail);
      else
        snprintf(r->err, sizeof r->err, "%s on port %u exited (status %d): %s",
                 server_bin(), r->port, status, tail);
      return -1;
    }
    if (redis_proc_cmd(r, 0, "PING", reply, sizeof reply, 500) == 0 &&
        strcmp(reply, "+PONG") == 0)
      return 0;
    if (proc_now_ms() > t_end) {
      snprintf(r->err, sizeof r->err,
               "%s on port %u did not answer PING within %d ms (last: %s)",
               server_bin(), r->port, timeout_ms, reply);
      return -1;
    }
    proc_sleep_ms(20);
  }
}

int redis_proc_start(redis_proc *r, const char *const *extra,
                     const char *password) {
  int attempt;
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "/tmp/csn-redis-XXXXXX");
  if (mkdtemp(r->dir) == NULL) {
    snprintf(r->err, sizeof r->err, "mkdtemp: %s", strerror(errno));
    r->dir[0] = '\0';
    return -1;
  }
  if (password != NULL)
    snprintf(r->password, sizeof r->password, "%s", password);
  for (; extra != NULL && extra[r->n_extra] != NULL; r->n_extra++) {
    if (r->n_extra == REDIS_PROC_MAX_ARGS) {
      snprintf(r->err, sizeof r->err, "too many redis-server arguments");
      return -1;
    }
    snprintf(r->extra[r->n_extra], sizeof r->extra[0], "%s",
             extra[r->n_extra]);
  }
  /* Another program may take the port between our look and the server's
   * bind: then it exits, and we try another port. */
  for (attempt = 0; attempt < 5; attempt++) {
    r->port = proc_free_port();
    if (r->port == 0) {
      snprintf(r->err, sizeof r->err, "no free port: %s", strerror(errno));
      return -1;
    }
    if (spawn(r) != 0)
      return -1;
    if (wait_ready(r, 10000) == 0)
      return 0;
    if (strstr(r->err, "cannot run") != NULL)
      return -1;
    if (r->pid != 0) { /* up but not answering: give up */
      kill(r->pid, SIGKILL);
      waitpid(r->pid, NULL, 0);
      r->pid = 0;
      return -1;
    }
  }
  return -1;
}

int redis_proc_restart(redis_proc *r) {
  if (r->pid != 0) {
    snprintf(r->err, sizeof r->err, "restart: the server is still running");
    return -1;
  }
  if (spawn(r) != 0)
    return -1;
  /* An AOF of a few thousand writes loads in milliseconds; be generous
   * for a loaded machine. */
  return wait_ready(r, 20000);
}

int redis_proc_crash(redis_proc *r) {
  if (r->pid == 0) {
    snprintf(r->err, sizeof r->err, "crash: not running");
    return -1;
  }
  if (kill(r->pid, SIGKILL) != 0) {
    snprintf(r->err, sizeof r->err, "kill: %s", strerror(errno));
    return -1;
  }
  waitpid(r->pid, NULL, 0);
  r->pid = 0;
  return 0;
}

int redis_proc_freeze(redis_proc *r) {
  if (r->pid == 0) {
    snprintf(r->err, sizeof r->err, "SIGSTOP: not running");
    return -1;
  }
  return proc_sigstop(r->pid, 5000, r->err, sizeof r->err);
}

int redis_proc_thaw(redis_proc *r) {
  if (r->pid == 0 || kill(r->pid, SIGCONT) != 0) {
    snprintf(r->err, sizeof r->err, "SIGCONT: %s",
             r->pid == 0 ? "not running" : strerror(errno));
    return -1;
  }
  return 0;
}

void redis_proc_cleanup(redis_proc *r) {
  if (r->pid != 0) {
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
  }
  if (r->dir[0] != '\0') {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", r->dir);
    r->dir[0] = '\0';
  }
}

/* ------------------------------------------------------------------------ */
/* A raw RESP client                                                        */
/* ------------------------------------------------------------------------ */

/* Parse one reply at the start of buf[0..len): 1 and *used when complete
 * (text in out), 0 when more bytes are needed, -1 for what this client does
 * not read (arrays). */
static int parse_reply(const char *buf, size_t len, size_t *used, char *out,
                       size_t size) {
  const char *eol = memchr(buf, '\n', len);
  size_t line;
  if (eol == NULL)
    return 0;
  line = (size_t)(eol - buf) + 1; /* with "\r\n" */
  if (line < 3 || buf[line - 2] != '\r')
    return -1;
  if (buf[0] == '+' || buf[0] == '-' || buf[0] == ':') {
    snprintf(out, size, "%.*s", (int)(line - 2), buf);
    *used = line;
    return 1;
  }
  if (buf[0] == '$') {
    long n = strtol(buf + 1, NULL, 10);
    if (n < 0) {
      snprintf(out, size, "(nil)");
      *used = line;
      return 1;
    }
    if (len < line + (size_t)n + 2)
      return 0;
    snprintf(out, size, "%.*s", (int)n, buf + line);
    *used = line + (size_t)n + 2;
    return 1;
  }
  return -1;
}

/* Wait for fd to be ready for `events` until t_end. */
static int wait_fd(int fd, short events, double t_end) {
  for (;;) {
    struct pollfd p = {fd, events, 0};
    double left = t_end - proc_now_ms();
    int rc;
    if (left <= 0)
      return -1;
    rc = poll(&p, 1, (int)left + 1);
    if (rc > 0)
      return 0;
    if (rc < 0 && errno != EINTR)
      return -1;
  }
}

int redis_proc_cmd(redis_proc *r, int db, const char *cmd, char *out,
                   size_t size, int timeout_ms) {
  char req[512], buf[8192], reply[4096];
  size_t req_len = 0, sent = 0, have = 0;
  int fd, n_cmds = 0, got = 0, rc = -1;
  double t_end = proc_now_ms() + timeout_ms;
  struct sockaddr_in sa;

  out[0] = '\0';
  if (r->password[0] != '\0') {
    req_len += (size_t)snprintf(req + req_len, sizeof req - req_len,
                                "AUTH %s\r\n", r->password);
    n_cmds++;
  }
  if (db != 0) {
    req_len += (size_t)snprintf(req + req_len, sizeof req - req_len,
                                "SELECT %d\r\n", db);
    n_cmds++;
  }
  req_len += (size_t)snprintf(req + req_len, sizeof req - req_len, "%s\r\n",
                              cmd);
  n_cmds++;
  if (req_len >= sizeof req) {
    snprintf(r->err, sizeof r->err, "command too long");
    return -1;
  }

  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(r->err, sizeof r->err, "socket: %s", strerror(errno));
    return -1;
  }
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)r->port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = 0;
    socklen_t el = sizeof e;
    if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, t_end) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
      snprintf(r->err, sizeof r->err, "connect to port %u: %s", r->port,
               e != 0 ? strerror(e) : "timed out or refused");
      goto out;
    }
  }
  while (sent < req_len) {
    ssize_t w;
    if (wait_fd(fd, POLLOUT, t_end) != 0) {
      snprintf(r->err, sizeof r->err, "send: timed out");
      goto out;
    }
    w = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      snprintf(r->err, sizeof r->err, "send: %s", strerror(errno));
      goto out;
    }
    if (w > 0)
      sent += (size_t)w;
  }
  while (got < n_cmds) {
    size_t used = 0;
    int p = parse_reply(buf, have, &used, reply, sizeof reply);
    if (p < 0) {
      snprintf(r->err, sizeof r->err, "unexpected reply to %s", cmd);
      goto out;
    }
    if (p == 1) {
      got++;
      memmove(buf, buf + used, have - used);
      have -= used;
      if (got < n_cmds && reply[0] == '-') {
        /* AUTH or SELECT refused: that is the answer. */
        snprintf(out, size, "%s", reply);
        rc = 0;
        goto out;
      }
      continue;
    }
    if (have == sizeof buf) {
      snprintf(r->err, sizeof r->err, "reply too long");
      goto out;
    }
    if (wait_fd(fd, POLLIN, t_end) != 0) {
      snprintf(r->err, sizeof r->err, "no reply to %s within %d ms", cmd,
               timeout_ms);
      goto out;
    }
    {
      ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
      if (n == 0) {
        snprintf(r->err, sizeof r->err, "connection closed");
        goto out;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        snprintf(r->err, sizeof r->err, "recv: %s", strerror(errno));
        goto out;
      }
      if (n > 0)
        have += (size_t)n;
    }
  }
  snprintf(out, size, "%s", reply);
  rc = 0;
out:
  close(fd);
  return rc;
}

int redis_proc_exists(redis_proc *r, int db, const char *key) {
  char cmd[300], reply[64];
  snprintf(cmd, sizeof cmd, "EXISTS %s", key);
  if (redis_proc_cmd(r, db, cmd, reply, sizeof reply, 5000) != 0)
    return -1;
  if (strcmp(reply, ":1") == 0)
    return 1;
  if (strcmp(reply, ":0") == 0)
    return 0;
  snprintf(r->err, sizeof r->err, "EXISTS %s: %s", key, reply);
  return -1;
}
