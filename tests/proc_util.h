/* proc_util.h - the small pieces the tests' private servers share
 * (tests/redis_proc.c, tests/pg_proc.c): the monotonic clock, a sleep, a
 * free loopback port, a process's state letter and the end of a log file.
 * Plain C, no cmocka: safe on any thread.
 */
#ifndef CSN_PROC_UTIL_H
#define CSN_PROC_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Milliseconds on the monotonic clock. */
double proc_now_ms(void);
/* Sleep ms milliseconds (resumed after a signal). */
void proc_sleep_ms(long ms);
/* A TCP port the kernel says is free on 127.0.0.1 right now, or 0. */
unsigned proc_free_port(void);
/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z' ...), or 0 when
 * there is no such process. */
char proc_state(pid_t pid);
/* SIGSTOP pid, then wait (timeout_ms at most) until the kernel shows it
 * stopped ('T'): 0, or -1 with the reason in err. */
int proc_sigstop(pid_t pid, int timeout_ms, char *err, size_t errlen);
/* The last size-1 bytes of the file at path into buf ("" when it cannot
 * be read), for a failure message. */
void proc_file_tail(const char *path, char *buf, size_t size);

#endif /* CSN_PROC_UTIL_H */
