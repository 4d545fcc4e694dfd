/* mongo_proc.c - a private MongoDB test server for a test (see
 * mongo_proc.h). */
#include "mongo_proc.h"
#include "proc_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CSN_MONGO_SERVER_SCRIPT
#define CSN_MONGO_SERVER_SCRIPT ""
#endif

static const char *script_path(void) {
  const char *p = getenv("CSN_MONGO_SERVER_SCRIPT");
  return p != NULL && *p != '\0' ? p : CSN_MONGO_SERVER_SCRIPT;
}

static const char *python_bin(void) {
  const char *p = getenv("CSN_MONGO_PYTHON");
  return p != NULL && *p != '\0' ? p : "/usr/bin/python3";
}

static void log_tail(const mongo_proc *m, char *buf, size_t size) {
  char path[96];
  snprintf(path, sizeof path, "%s/mongo.log", m->dir);
  proc_file_tail(path, buf, size);
}

static int spawn(mongo_proc *m) {
  char port[16], log_path[96];
  const char *argv[8];
  pid_t parent = getpid();
  int log_fd;

  if (script_path()[0] == '\0') {
    snprintf(m->err, sizeof m->err,
             "no MongoDB test server script: set CSN_MONGO_SERVER_SCRIPT "
             "(tests/mongo/mongo_server.py)");
    return -1;
  }
  if (access(script_path(), R_OK) != 0) {
    snprintf(m->err, sizeof m->err, "cannot read %s: %s", script_path(),
             strerror(errno));
    return -1;
  }
  snprintf(port, sizeof port, "%u", m->port);
  snprintf(log_path, sizeof log_path, "%s/mongo.log", m->dir);
  argv[0] = python_bin();
  argv[1] = script_path();
  argv[2] = "--port";
  argv[3] = port;
  argv[4] = NULL;

  log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    snprintf(m->err, sizeof m->err, "cannot open %s: %s", log_path,
             strerror(errno));
    return -1;
  }
  m->pid = fork();
  if (m->pid < 0) {
    m->pid = 0;
    close(log_fd);
    snprintf(m->err, sizeof m->err, "fork: %s", strerror(errno));
    return -1;
  }
  if (m->pid == 0) {
    /* Dies with the test, even when the test crashes. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(125);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(log_fd);
  return 0;
}

/* Wait until the server answers a ping (or has exited). */
static int wait_ready(mongo_proc *m, int timeout_ms) {
  double t_end = proc_now_ms() + timeout_ms;
  char tail[256], last[256] = "";
  int status;

  for (;;) {
    pid_t w = waitpid(m->pid, &status, WNOHANG);
    if (w == m->pid) {
      m->pid = 0;
      log_tail(m, tail, sizeof tail);
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(m->err, sizeof m->err,
                 "cannot run %s (set CSN_MONGO_PYTHON): %s", python_bin(),
                 tail);
      else
        snprintf(m->err, sizeof m->err,
                 "MongoDB test server on port %u exited (status %d): %s",
                 m->port, status, tail);
      return -1;
    }
    if (mongo_proc_ping(m, 500) == 0)
      return 0;
    snprintf(last, sizeof last, "%.*s", (int)sizeof last - 1, m->err);
    if (proc_now_ms() > t_end) {
      snprintf(m->err, sizeof m->err,
               "MongoDB test server on port %u did not answer within %d ms "
               "(last: %s)",
               m->port, timeout_ms, last);
      return -1;
    }
    proc_sleep_ms(20);
  }
}

int mongo_proc_start(mongo_proc *m, unsigned port) {
  int attempt;
  memset(m, 0, sizeof *m);
  snprintf(m->dir, sizeof m->dir, "/tmp/csn-mongo-XXXXXX");
  if (mkdtemp(m->dir) == NULL) {
    snprintf(m->err, sizeof m->err, "mkdtemp: %s", strerror(errno));
    m->dir[0] = '\0';
    return -1;
  }
  /* With port 0, another program may take the port between our look and
   * the server's bind: then it exits, and we try another port. */
  for (attempt = 0; attempt < (port == 0 ? 5 : 1); attempt++) {
    m->port = port != 0 ? port : proc_free_port();
    if (m->port == 0) {
      snprintf(m->err, sizeof m->err, "no free port: %s", strerror(errno));
      return -1;
    }
    snprintf(m->url, sizeof m->url, "mongodb://127.0.0.1:%u/csn_test",
             m->port);
    if (spawn(m) != 0)
      return -1;
    if (wait_ready(m, 10000) == 0)
      return 0;
    if (strstr(m->err, "cannot run") != NULL)
      return -1;
    if (m->pid != 0) { /* up but not answering: give up */
      kill(m->pid, SIGKILL);
      waitpid(m->pid, NULL, 0);
      m->pid = 0;
      return -1;
    }
  }
  return -1;
}

const char *mongo_proc_url(const mongo_proc *m) { return m->url; }

pid_t mongo_proc_pid(const mongo_proc *m) { return m->pid; }

int mongo_proc_stop(mongo_proc *m) {
  double t_end = proc_now_ms() + 10000;
  int status;
  if (m->pid == 0) {
    snprintf(m->err, sizeof m->err, "stop: not running");
    return -1;
  }
  kill(m->pid, SIGCONT); /* a frozen server cannot act on SIGTERM */
  if (kill(m->pid, SIGTERM) != 0) {
    snprintf(m->err, sizeof m->err, "SIGTERM: %s", strerror(errno));
    return -1;
  }
  for (;;) {
    pid_t w = waitpid(m->pid, &status, WNOHANG);
    if (w == m->pid)
      break;
    if (proc_now_ms() > t_end) {
      kill(m->pid, SIGKILL);
      waitpid(m->pid, NULL, 0);
      m->pid = 0;
      snprintf(m->err, sizeof m->err,
               "the server did not exit within 10 s of SIGTERM (killed)");
      return -1;
    }
    proc_sleep_ms(10);
  }
  m->pid = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char tail[256];
    log_tail(m, tail, sizeof tail);
    snprintf(m->err, sizeof m->err, "the server exited with status %d: %s",
             status, tail);
    return -1;
  }
  return 0;
}

int mongo_proc_kill9(mongo_proc *m) {
  if (m->pid == 0) {
    snprintf(m->err, sizeof m->err, "kill -9: not running");
    return -1;
  }
  if (kill(m->pid, SIGKILL) != 0) {
    snprintf(m->err, sizeof m->err, "kill: %s", strerror(errno));
    return -1;
  }
  waitpid(m->pid, NULL, 0);
  m->pid = 0;
  return 0;
}

int mongo_proc_restart(mongo_proc *m) {
  if (m->pid != 0) {
    snprintf(m->err, sizeof m->err, "restart: the server is still running");
    return -1;
  }
  if (m->port == 0) {
    snprintf(m->err, sizeof m->err, "restart: never started");
    return -1;
  }
  if (spawn(m) != 0)
    return -1;
  return wait_ready(m, 10000);
}

int mongo_proc_freeze(mongo_proc *m) {
  if (m->pid == 0) {
    snprintf(m->err, sizeof m->err, "SIGSTOP: not running");
    return -1;
  }
  return proc_sigstop(m->pid, 5000, m->err, sizeof m->err);
}

int mongo_proc_thaw(mongo_proc *m) {
  if (m->pid == 0 || kill(m->pid, SIGCONT) != 0) {
    snprintf(m->err, sizeof m->err, "SIGCONT: %s",
             m->pid == 0 ? "not running" : strerror(errno));
    return -1;
  }
  return 0;
}

void mongo_proc_cleanup(mongo_proc *m) {
  if (m->pid != 0) {
    kill(m->pid, SIGCONT);
    kill(m->pid, SIGKILL);
    waitpid(m->pid, NULL, 0);
    m->pid = 0;
  }
  if (m->dir[0] != '\0') {
    /* Tests keep their own files here too (a demo's stderr ...). */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", m->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", m->dir);
    m->dir[0] = '\0';
  }
}

/* ------------------------------------------------------------------------ */
/* A one-message wire client                                                */
/* ------------------------------------------------------------------------ */

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

static void put_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

int mongo_proc_ping(mongo_proc *m, int timeout_ms) {
  /* OP_MSG {ping: 1, $db: "admin"}, built by hand: a helper that checks
   * the server needs no driver (and no driver's retries). */
  static const unsigned char doc[] = {
      30, 0, 0, 0,                          /* document length */
      0x10, 'p', 'i', 'n', 'g', 0, 1, 0, 0, 0, /* int32 ping: 1 */
      0x02, '$', 'd', 'b', 0, 6, 0, 0, 0,   /* string $db: */
      'a', 'd', 'm', 'i', 'n', 0, 0};
  static const unsigned char ok_elem[] = {0x01, 'o', 'k', 0};
  unsigned char req[16 + 5 + sizeof doc], reply[512];
  size_t sent = 0, have = 0, want = 16;
  double t_end = proc_now_ms() + timeout_ms;
  struct sockaddr_in sa;
  int fd, rc = -1;
  const uint32_t req_id = 0x6373; /* any id: we check the reply echoes it */

  put_le32(req, (uint32_t)sizeof req);
  put_le32(req + 4, req_id);
  put_le32(req + 8, 0);
  put_le32(req + 12, 2013); /* OP_MSG */
  put_le32(req + 16, 0);    /* flags */
  req[20] = 0;              /* section kind 0: the body */
  memcpy(req + 21, doc, sizeof doc);

  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(m->err, sizeof m->err, "socket: %s", strerror(errno));
    return -1;
  }
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)m->port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = 0;
    socklen_t el = sizeof e;
    if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, t_end) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
      snprintf(m->err, sizeof m->err, "connect to port %u: %s", m->port,
               e != 0 ? strerror(e) : "timed out or refused");
      goto out;
    }
  }
  while (sent < sizeof req) {
    ssize_t w;
    if (wait_fd(fd, POLLOUT, t_end) != 0) {
      snprintf(m->err, sizeof m->err, "send: timed out");
      goto out;
    }
    w = send(fd, req + sent, sizeof req - sent, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      snprintf(m->err, sizeof m->err, "send: %s", strerror(errno));
      goto out;
    }
    if (w > 0)
      sent += (size_t)w;
  }
  while (have < want) {
    ssize_t n;
    if (wait_fd(fd, POLLIN, t_end) != 0) {
      snprintf(m->err, sizeof m->err, "no reply to ping within %d ms",
               timeout_ms);
      goto out;
    }
    n = recv(fd, reply + have, want - have, 0);
    if (n == 0) {
      snprintf(m->err, sizeof m->err, "connection closed");
      goto out;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      snprintf(m->err, sizeof m->err, "recv: %s", strerror(errno));
      goto out;
    }
    if (n > 0)
      have += (size_t)n;
    if (have == 16 && want == 16) {
      uint32_t len = get_le32(reply);
      if (len < 16 + 5 + 5 || len > sizeof reply ||
          get_le32(reply + 8) != req_id || get_le32(reply + 12) != 2013) {
        snprintf(m->err, sizeof m->err, "unexpected reply header");
        goto out;
      }
      want = len;
    }
  }
  /* The reply body is {ok: 1.0}: find the double "ok" and read it. */
  {
    const unsigned char *p = reply + 21, *end = reply + have;
    double ok = 0;
    for (; p + sizeof ok_elem + 8 <= end; p++) {
      if (memcmp(p, ok_elem, sizeof ok_elem) == 0) {
        uint64_t bits = (uint64_t)get_le32(p + 4) |
                        (uint64_t)get_le32(p + 8) << 32;
        memcpy(&ok, &bits, sizeof ok);
        break;
      }
    }
    if (ok != 1.0) {
      snprintf(m->err, sizeof m->err, "ping reply without ok: 1");
      goto out;
    }
  }
  rc = 0;
out:
  close(fd);
  return rc;
}
