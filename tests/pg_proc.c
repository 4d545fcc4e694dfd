/* pg_proc.c - a private PostgreSQL server for a test (see pg_proc.h). */
#include "pg_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "proc_util.h"

#define PG_USER "postgres"

/* ------------------------------------------------------------------------ */
/* Binaries, user, processes                                                */
/* ------------------------------------------------------------------------ */

/* $CSN_PG_BIN, else the newest /usr/lib/postgresql/<N>/bin, else "". */
static void find_bin(pg_proc *p) {
  const char *env = getenv("CSN_PG_BIN");
  glob_t g;
  size_t i;
  long best = -1;
  p->bin[0] = '\0';
  if (env != NULL && *env != '\0') {
    snprintf(p->bin, sizeof p->bin, "%s", env);
    return;
  }
  if (glob("/usr/lib/postgresql/*/bin", 0, NULL, &g) != 0)
    return;
  for (i = 0; i < g.gl_pathc; i++) {
    long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL, 10);
    if (v > best) {
      best = v;
      snprintf(p->bin, sizeof p->bin, "%s", g.gl_pathv[i]);
    }
  }
  globfree(&g);
}

static void tool_path(const pg_proc *p, const char *tool, char *buf,
                      size_t size) {
  if (p->bin[0] != '\0')
    snprintf(buf, size, "%s/%s", p->bin, tool);
  else
    snprintf(buf, size, "%s", tool);
}

/* Write a message from a forked child (no stdio there: another thread of
 * the test may have held its lock at the fork). */
static void child_say(const char *a, const char *b) {
  ssize_t rc = write(STDERR_FILENO, a, strlen(a));
  rc = write(STDERR_FILENO, b, strlen(b));
  rc = write(STDERR_FILENO, "\n", 1);
  (void)rc;
}

/* The postgres user's ids when we are root (0 and *uid 0 otherwise: run
 * as ourselves); -1 when root and there is no such user. Looked up before
 * the fork: getpwnam is not safe in the child of a threaded program. */
static int server_user(pg_proc *p, uid_t *uid, gid_t *gid) {
  struct passwd *pw;
  *uid = 0;
  *gid = 0;
  if (geteuid() != 0)
    return 0;
  pw = getpwnam(PG_USER);
  if (pw == NULL) {
    snprintf(p->err, sizeof p->err,
             "running as root, and PostgreSQL refuses root: there is no "
             "'%s' user to run it as",
             PG_USER);
    return -1;
  }
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  return 0;
}

/* Start argv in a child with stdout and stderr appended to log_path, in a
 * process group of its own, as the postgres user when we are root. The
 * child gets SIGKILL when this thread ends (set after the user change,
 * which clears it). */
static int spawn(pg_proc *p, const char *const *argv, const char *log_path,
                 pid_t *out) {
  pid_t parent = getpid(), pid;
  uid_t uid;
  gid_t gid;
  int log_fd;
  if (server_user(p, &uid, &gid) != 0)
    return -1;
  log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    snprintf(p->err, sizeof p->err, "cannot open %s: %s", log_path,
             strerror(errno));
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    close(log_fd);
    snprintf(p->err, sizeof p->err, "fork: %s", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    long fd, max_fd = sysconf(_SC_OPEN_MAX);
    int null_fd = open("/dev/null", O_RDONLY);
    setpgid(0, 0);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    if (null_fd >= 0)
      dup2(null_fd, STDIN_FILENO);
    /* None of the test's sockets and pipes in the server. */
    if (max_fd < 0 || max_fd > 65536)
      max_fd = 65536;
    for (fd = 3; fd < max_fd; fd++)
      close((int)fd);
    if (uid != 0 && (setgroups(1, &gid) != 0 || setgid(gid) != 0 ||
                     setuid(uid) != 0)) {
      child_say("pg_proc: cannot become " PG_USER ": ", strerror(errno));
      _exit(126);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(125);
    if (chdir(p->dir) != 0)
      _exit(126);
    execvp(argv[0], (char *const *)argv);
    child_say("pg_proc: cannot run it: ", argv[0]);
    _exit(127);
  }
  setpgid(pid, pid); /* also here: no race with a kill(-pid) right after */
  close(log_fd);
  *out = pid;
  return 0;
}

/* The server's processes: the postmaster and its descendants. PostgreSQL
 * puts every child of the postmaster (backends, checkpointer, WAL writer
 * ...) in a session of its own (setsid), so the postmaster's process group
 * does not reach them: they are found by parent. */
typedef struct tree {
  pid_t *pid;
  size_t n;
} tree;

static void tree_free(tree *t) {
  free(t->pid);
  t->pid = NULL;
  t->n = 0;
}

/* /proc/PID/stat's state and parent; -1 when there is no such process. */
static int stat_of(long pid, char *state, long *ppid) {
  char path[64], buf[512], *q;
  FILE *f;
  size_t len;
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return -1;
  len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = '\0';
  q = strrchr(buf, ')'); /* the command name may hold spaces */
  /* ") S PPID ..." */
  if (q == NULL || sscanf(q + 1, " %c %ld", state, ppid) != 2)
    return -1;
  return 0;
}

/* root and every live (not zombie) descendant of it, root first. */
static int server_tree(pg_proc *p, pid_t root, tree *t) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  long *pids = NULL, *ppids = NULL;
  size_t n = 0, cap = 0, i, k;
  t->n = 0;
  t->pid = NULL;
  if (d == NULL) {
    snprintf(p->err, sizeof p->err, "/proc: %s", strerror(errno));
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    long pid = strtol(e->d_name, NULL, 10), ppid;
    char state;
    if (pid <= 0 || stat_of(pid, &state, &ppid) != 0 || state == 'Z' ||
        state == 'X')
      continue;
    if (n == cap) {
      size_t nc = cap ? 2 * cap : 256;
      long *a = realloc(pids, nc * sizeof *a), *b;
      if (a == NULL)
        break;
      pids = a;
      b = realloc(ppids, nc * sizeof *b);
      if (b == NULL)
        break;
      ppids = b;
      cap = nc;
    }
    pids[n] = pid;
    ppids[n++] = ppid;
  }
  closedir(d);
  t->pid = malloc((n + 1) * sizeof *t->pid);
  if (t->pid == NULL) {
    free(pids);
    free(ppids);
    snprintf(p->err, sizeof p->err, "out of memory");
    return -1;
  }
  t->pid[t->n++] = root;
  /* Breadth first: t->pid[k]'s children are appended behind it. */
  for (k = 0; k < t->n; k++)
    for (i = 0; i < n; i++)
      if (ppids[i] == (long)t->pid[k] && pids[i] != (long)root)
        t->pid[t->n++] = (pid_t)pids[i];
  free(pids);
  free(ppids);
  return 0;
}

static void tree_signal(const tree *t, int sig) {
  size_t i;
  for (i = 0; i < t->n; i++)
    kill(t->pid[i], sig);
}

/* Members of t still alive (not zombies); with stopped_ok, only those
 * not stopped either. */
static int tree_count(const tree *t, int stopped_ok) {
  size_t i;
  int n = 0;
  for (i = 0; i < t->n; i++) {
    char state;
    long ppid;
    if (stat_of(t->pid[i], &state, &ppid) != 0 || state == 'Z' ||
        state == 'X')
      continue;
    if (stopped_ok && (state == 'T' || state == 't'))
      continue;
    n++;
  }
  return n;
}

/* Wait (timeout_ms at most) until no process of t is alive: a new
 * postmaster refuses the data directory while an old backend still holds
 * the shared memory. */
static int wait_tree_gone(pg_proc *p, const tree *t, int timeout_ms) {
  double t_end = proc_now_ms() + timeout_ms;
  int n;
  while ((n = tree_count(t, 0)) > 0) {
    if (proc_now_ms() > t_end) {
      snprintf(p->err, sizeof p->err,
               "%d processes of the server are still alive after %d ms", n,
               timeout_ms);
      return -1;
    }
    proc_sleep_ms(10);
  }
  return 0;
}

/* Stop the postmaster (so that it starts no more children), wait until it
 * shows stopped; 0, or -1 when it does not within 5 s. */
static int stop_postmaster(pg_proc *p) {
  return proc_sigstop(p->pid, 5000, p->err, sizeof p->err);
}

/* SIGKILL the postmaster and every descendant at once (it stopped first,
 * so none is added meanwhile), collect it, wait until all are gone. */
static int kill_server(pg_proc *p) {
  tree t;
  int rc;
  stop_postmaster(p); /* best effort: the kill follows anyway */
  if (server_tree(p, p->pid, &t) != 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
    return -1;
  }
  tree_signal(&t, SIGKILL);
  waitpid(p->pid, NULL, 0);
  p->pid = 0;
  rc = wait_tree_gone(p, &t, 10000);
  tree_free(&t);
  return rc;
}

/* Wait for child pid to exit (timeout_ms at most): 0 and its status, or
 * -1 when it is still running. */
static int wait_exit(pid_t pid, int timeout_ms, int *status) {
  double t_end = proc_now_ms() + timeout_ms;
  for (;;) {
    pid_t w = waitpid(pid, status, WNOHANG);
    if (w == pid || (w < 0 && errno == ECHILD))
      return 0;
    if (proc_now_ms() > t_end)
      return -1;
    proc_sleep_ms(10);
  }
}

/* ------------------------------------------------------------------------ */
/* A libpq client with a deadline                                           */
/* ------------------------------------------------------------------------ */

/* Wait until the connection's socket is ready, until t_end. */
static int wait_sock(PGconn *c, int for_write, double t_end) {
  for (;;) {
    struct pollfd pfd = {PQsocket(c), (short)(for_write ? POLLOUT : POLLIN),
                         0};
    double left = t_end - proc_now_ms();
    int rc;
    if (pfd.fd < 0 || left <= 0)
      return -1;
    rc = poll(&pfd, 1, (int)left + 1);
    if (rc > 0)
      return 0;
    if (rc < 0 && errno != EINTR)
      return -1;
  }
}

static void conn_error(pg_proc *p, PGconn *c, const char *what) {
  const char *m = c != NULL ? PQerrorMessage(c) : "out of memory";
  snprintf(p->err, sizeof p->err, "%s (port %u): %.*s", what, p->port,
           (int)strcspn(m, "\n"), m);
}

static PGconn *connect_db(pg_proc *p, const char *db, double t_end) {
  char port[16];
  const char *kw[] = {"host", "port", "user", "dbname", NULL};
  const char *val[] = {"127.0.0.1", port, PG_USER, db, NULL};
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  PGconn *c;
  snprintf(port, sizeof port, "%u", p->port);
  c = PQconnectStartParams(kw, val, 0);
  if (c == NULL || PQstatus(c) == CONNECTION_BAD) {
    conn_error(p, c, "connect");
    PQfinish(c);
    return NULL;
  }
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED ||
        wait_sock(c, st == PGRES_POLLING_WRITING, t_end) != 0) {
      if (st == PGRES_POLLING_FAILED)
        conn_error(p, c, "connect");
      else
        snprintf(p->err, sizeof p->err,
                 "connect (port %u): no answer in time", p->port);
      PQfinish(c);
      return NULL;
    }
    st = PQconnectPoll(c);
  }
  return c;
}

static int exec_db(pg_proc *p, const char *db, const char *sql,
                   const char *const *params, char *out, size_t size,
                   int timeout_ms) {
  double t_end = proc_now_ms() + timeout_ms;
  int nparams = 0, rows = 0, failed = 1, flushed;
  PGconn *c;
  PGresult *res;

  if (out != NULL && size > 0)
    out[0] = '\0';
  while (params != NULL && params[nparams] != NULL)
    nparams++;
  c = connect_db(p, db, t_end);
  if (c == NULL)
    return -1;
  if (PQsetnonblocking(c, 1) != 0 ||
      !PQsendQueryParams(c, sql, nparams, NULL, (const char *const *)params,
                         NULL, NULL, 0)) {
    conn_error(p, c, "send");
    goto out;
  }
  while ((flushed = PQflush(c)) == 1)
    if (wait_sock(c, 1, t_end) != 0)
      break;
  if (flushed != 0) {
    snprintf(p->err, sizeof p->err, "send (port %u): %s", p->port,
             flushed < 0 ? PQerrorMessage(c) : "timed out");
    goto out;
  }
  failed = 0;
  for (;;) {
    if (!PQconsumeInput(c)) {
      conn_error(p, c, "receive");
      failed = 1;
      break;
    }
    if (PQisBusy(c)) {
      if (wait_sock(c, 0, t_end) != 0) {
        snprintf(p->err, sizeof p->err,
                 "no answer within %d ms from port %u to: %.200s", timeout_ms,
                 p->port, sql);
        failed = 1;
        break;
      }
      continue;
    }
    res = PQgetResult(c);
    if (res == NULL)
      break; /* all results read */
    if (failed) {
      /* Keep the first error; read on to the end. */
    } else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
      rows = PQntuples(res);
      if (out != NULL && size > 0 && rows > 0)
        snprintf(out, size, "%s",
                 PQgetisnull(res, 0, 0) ? "(null)" : PQgetvalue(res, 0, 0));
    } else if (PQresultStatus(res) == PGRES_COMMAND_OK) {
      rows = atoi(PQcmdTuples(res));
    } else {
      const char *m = PQresultErrorMessage(res);
      snprintf(p->err, sizeof p->err, "%.*s (in: %.200s)",
               (int)strcspn(m, "\n"), m, sql);
      failed = 1;
    }
    PQclear(res);
  }
out:
  PQfinish(c);
  return failed ? -1 : rows;
}

int pg_proc_exec(pg_proc *p, const char *sql, const char *const *params,
                 char *out, size_t size, int timeout_ms) {
  if (p->port == 0) {
    snprintf(p->err, sizeof p->err, "exec: the server was never started");
    return -1;
  }
  return exec_db(p, p->dbname, sql, params, out, size, timeout_ms);
}

int pg_proc_exec_sql(pg_proc *p, const char *sql, char *out, size_t size) {
  return pg_proc_exec(p, sql, NULL, out, size, 10000);
}

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

static void log_path(const pg_proc *p, char *buf, size_t size) {
  snprintf(buf, size, "%s/server.log", p->dir);
}

static void exited_error(pg_proc *p, const char *what, int status,
                         const char *log) {
  char tail[300];
  proc_file_tail(log, tail, sizeof tail);
  snprintf(p->err, sizeof p->err, "%s exited (%s %d); its log ends: %s", what,
           WIFSIGNALED(status) ? "signal" : "status",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), tail);
}

static int run_initdb(pg_proc *p) {
  char tool[256], data[96], log[96];
  const char *argv[] = {tool, "-D", data, "-U", PG_USER, "-A", "trust", "-E",
                        "UTF8", "--locale=C", "-N", NULL};
  pid_t pid;
  int status = 0;
  tool_path(p, "initdb", tool, sizeof tool);
  snprintf(data, sizeof data, "%s/data", p->dir);
  snprintf(log, sizeof log, "%s/initdb.log", p->dir);
  if (spawn(p, argv, log, &pid) != 0)
    return -1;
  if (wait_exit(pid, 60000, &status) != 0) {
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    snprintf(p->err, sizeof p->err, "initdb took more than 60 s");
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    exited_error(p, "initdb (is PostgreSQL installed? set CSN_PG_BIN)",
                 status, log);
    return -1;
  }
  return 0;
}

static int spawn_server(pg_proc *p) {
  char tool[256], data[96], port[16], sockdir[96], log[96];
  const char *argv[16 + 2 * PG_PROC_MAX_SETTINGS];
  size_t n = 0, i;
  tool_path(p, "postgres", tool, sizeof tool);
  snprintf(data, sizeof data, "%s/data", p->dir);
  snprintf(port, sizeof port, "%u", p->port);
  snprintf(sockdir, sizeof sockdir, "unix_socket_directories=%s", p->dir);
  log_path(p, log, sizeof log);
  argv[n++] = tool;
  argv[n++] = "-D";
  argv[n++] = data;
  argv[n++] = "-p";
  argv[n++] = port;
  argv[n++] = "-c";
  argv[n++] = "listen_addresses=127.0.0.1";
  argv[n++] = "-c";
  argv[n++] = sockdir;
  for (i = 0; i < p->n_settings; i++) {
    argv[n++] = "-c";
    argv[n++] = p->settings[i];
  }
  argv[n] = NULL;
  return spawn(p, argv, log, &p->pid);
}

/* Wait until the server accepts connections, or has exited. */
static int wait_ready(pg_proc *p, int timeout_ms) {
  double t_end = proc_now_ms() + timeout_ms;
  char conninfo[160], log[96];
  int status;
  PGPing last = PQPING_NO_RESPONSE;
  snprintf(conninfo, sizeof conninfo,
           "host=127.0.0.1 port=%u user=" PG_USER
           " dbname=postgres connect_timeout=2",
           p->port);
  log_path(p, log, sizeof log);
  for (;;) {
    pid_t w = waitpid(p->pid, &status, WNOHANG);
    if (w == p->pid) {
      p->pid = 0;
      exited_error(p, "postgres", status, log);
      return -1;
    }
    last = PQping(conninfo);
    if (last == PQPING_OK)
      return 0;
    if (proc_now_ms() > t_end) {
      char tail[300];
      proc_file_tail(log, tail, sizeof tail);
      snprintf(p->err, sizeof p->err,
               "postgres on port %u did not accept connections within %d ms "
               "(ping %d); its log ends: %s",
               p->port, timeout_ms, (int)last, tail);
      return -1;
    }
    proc_sleep_ms(20);
  }
}

int pg_proc_start(pg_proc *p, const pg_proc_options *opts) {
  static const pg_proc_options defaults = {0, NULL, NULL};
  char sql[128];
  int attempt;
  size_t i;
  uid_t uid;
  gid_t gid;

  memset(p, 0, sizeof *p);
  if (opts == NULL)
    opts = &defaults;
  snprintf(p->dbname, sizeof p->dbname, "%s",
           opts->dbname != NULL ? opts->dbname : "csn_test");
  snprintf(p->settings[0], sizeof p->settings[0], "fsync=%s",
           opts->fsync_off ? "off" : "on");
  p->n_settings = 1;
  for (i = 0; opts->settings != NULL && opts->settings[i] != NULL; i++) {
    if (p->n_settings == PG_PROC_MAX_SETTINGS + 1) {
      snprintf(p->err, sizeof p->err, "too many server settings");
      return -1;
    }
    snprintf(p->settings[p->n_settings++], sizeof p->settings[0], "%s",
             opts->settings[i]);
  }
  find_bin(p);
  snprintf(p->dir, sizeof p->dir, "/tmp/csn-pg-XXXXXX");
  if (mkdtemp(p->dir) == NULL) {
    snprintf(p->err, sizeof p->err, "mkdtemp: %s", strerror(errno));
    p->dir[0] = '\0';
    return -1;
  }
  if (server_user(p, &uid, &gid) != 0)
    return -1;
  if (uid != 0) {
    if (chown(p->dir, uid, gid) != 0) {
      snprintf(p->err, sizeof p->err, "chown %s: %s", p->dir,
               strerror(errno));
      return -1;
    }
  }
  if (run_initdb(p) != 0)
    return -1;
  /* Another program may take the port between our look and the server's
   * bind: then it exits, and we try another port. */
  for (attempt = 0;; attempt++) {
    p->port = proc_free_port();
    if (p->port == 0) {
      snprintf(p->err, sizeof p->err, "no free port: %s", strerror(errno));
      return -1;
    }
    if (spawn_server(p) != 0)
      return -1;
    if (wait_ready(p, 60000) == 0)
      break;
    if (p->pid != 0 || attempt == 4 ||
        strstr(p->err, "could not") == NULL) {
      if (p->pid != 0) { /* up but not answering: give up */
        char why[sizeof p->err];
        memcpy(why, p->err, sizeof why);
        pg_proc_crash(p);
        memcpy(p->err, why, sizeof why);
      }
      return -1;
    }
  }
  snprintf(p->url, sizeof p->url, "postgresql://" PG_USER "@127.0.0.1:%u/%s",
           p->port, p->dbname);
  /* The name is ours (no quoting needed for the default); quote anyway. */
  snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", p->dbname);
  if (exec_db(p, "postgres", sql, NULL, NULL, 0, 30000) < 0)
    return -1;
  return 0;
}

int pg_proc_restart(pg_proc *p) {
  if (p->pid != 0) {
    snprintf(p->err, sizeof p->err, "restart: the server is still running");
    return -1;
  }
  if (p->port == 0) {
    snprintf(p->err, sizeof p->err, "restart: never started");
    return -1;
  }
  if (spawn_server(p) != 0)
    return -1;
  /* Crash recovery replays the WAL since the last checkpoint: a second
   * here, but be generous for a loaded machine. */
  return wait_ready(p, 60000);
}

int pg_proc_crash(pg_proc *p) {
  if (p->pid == 0) {
    snprintf(p->err, sizeof p->err, "crash: not running");
    return -1;
  }
  return kill_server(p);
}

int pg_proc_stop(pg_proc *p) {
  pid_t pm = p->pid;
  tree t;
  int status, rc;
  if (pm == 0) {
    snprintf(p->err, sizeof p->err, "stop: not running");
    return -1;
  }
  if (server_tree(p, pm, &t) != 0)
    return -1;
  tree_signal(&t, SIGCONT);
  if (kill(pm, SIGINT) != 0) {
    snprintf(p->err, sizeof p->err, "SIGINT: %s", strerror(errno));
    tree_free(&t);
    return -1;
  }
  if (wait_exit(pm, 30000, &status) != 0) {
    tree_free(&t);
    kill_server(p);
    snprintf(p->err, sizeof p->err,
             "the server did not shut down within 30 s (killed)");
    return -1;
  }
  p->pid = 0;
  rc = wait_tree_gone(p, &t, 10000);
  tree_free(&t);
  return rc;
}

int pg_proc_pause(pg_proc *p) {
  double t_end = proc_now_ms() + 5000;
  tree t;
  int running;
  if (p->pid == 0) {
    snprintf(p->err, sizeof p->err, "pause: not running");
    return -1;
  }
  if (stop_postmaster(p) != 0 || server_tree(p, p->pid, &t) != 0)
    return -1;
  tree_signal(&t, SIGSTOP);
  while ((running = tree_count(&t, 1)) != 0) {
    if (proc_now_ms() > t_end) {
      snprintf(p->err, sizeof p->err,
               "%d of the server's %zu processes did not stop", running, t.n);
      tree_free(&t);
      return -1;
    }
    proc_sleep_ms(2);
  }
  tree_free(&t);
  return 0;
}

int pg_proc_resume(pg_proc *p) {
  tree t;
  if (p->pid == 0) {
    snprintf(p->err, sizeof p->err, "resume: not running");
    return -1;
  }
  if (server_tree(p, p->pid, &t) != 0)
    return -1;
  /* The postmaster (first) last. */
  while (t.n > 0)
    kill(t.pid[--t.n], SIGCONT);
  tree_free(&t);
  return 0;
}

void pg_proc_cleanup(pg_proc *p) {
  if (p->pid != 0 && kill_server(p) != 0)
    fprintf(stderr, "pg_proc: %s\n", p->err);
  if (p->dir[0] != '\0') {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", p->dir);
    p->dir[0] = '\0';
  }
}
