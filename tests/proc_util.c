/* proc_util.c - see proc_util.h. */
#include "proc_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double proc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void proc_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

unsigned proc_free_port(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  unsigned port = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

char proc_state(pid_t pid) {
  char path[64], buf[512], *p;
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  f = fopen(path, "r");
  if (f == NULL)
    return 0;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  p = strrchr(buf, ')'); /* the command name may hold spaces */
  return p != NULL && p[1] == ' ' ? p[2] : 0;
}

int proc_sigstop(pid_t pid, int timeout_ms, char *err, size_t errlen) {
  double t_end = proc_now_ms() + timeout_ms;
  if (kill(pid, SIGSTOP) != 0) {
    snprintf(err, errlen, "SIGSTOP: %s", strerror(errno));
    return -1;
  }
  while (proc_state(pid) != 'T') {
    if (proc_now_ms() > t_end) {
      snprintf(err, errlen, "process %ld did not stop (state %c)", (long)pid,
               proc_state(pid));
      return -1;
    }
    proc_sleep_ms(2);
  }
  return 0;
}

void proc_file_tail(const char *path, char *buf, size_t size) {
  FILE *f;
  long end;
  size_t n;
  buf[0] = '\0';
  f = fopen(path, "r");
  if (f == NULL)
    return;
  fseek(f, 0, SEEK_END);
  end = ftell(f);
  fseek(f, end > (long)size - 1 ? end - ((long)size - 1) : 0, SEEK_SET);
  n = fread(buf, 1, size - 1, f);
  buf[n] = '\0';
  fclose(f);
}
