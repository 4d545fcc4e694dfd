/* secret.c - reading a secret (a signing secret, a store key) from a file.
 *
 * A secret on the command line is readable by every local user through
 * /proc/PID/cmdline, so programs take it from a file or the environment
 * instead; this is the file half, with the checks that make the file worth
 * using: private to its owner, a regular file, not empty, not huge. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "csn_int.h"

/* Far more than any key needs; a bigger file is a wrong path. */
#define CSN_SECRET_FILE_MAX 4096

int csn_secret_read_file(const char *path, char **out, char *errbuf,
                         size_t errlen) {
  char buf[CSN_SECRET_FILE_MAX + 1];
  struct stat st;
  size_t n = 0;
  int fd, rc = CSN_OK;

  if (out != NULL)
    *out = NULL;
  if (path == NULL || *path == '\0' || out == NULL)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "secret file: no path given");
  /* Never blocks (a FIFO under that name would hang start-up). */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return csn_store_fail(errbuf, errlen, CSN_EIO,
                          "secret file %s: cannot open: %s", path,
                          strerror(errno));
  if (fstat(fd, &st) != 0) {
    rc = csn_store_fail(errbuf, errlen, CSN_EIO, "secret file %s: %s", path,
                        strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    rc = csn_store_fail(errbuf, errlen, CSN_EINVAL,
                        "secret file %s: not a regular file", path);
  } else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    /* Checked on the file itself, so a symbolic link (as Kubernetes
     * mounts secrets) is judged by its target. */
    rc = csn_store_fail(errbuf, errlen, CSN_EPERM,
                        "secret file %s: group or others may access it "
                        "(mode %03o); chmod 600 it",
                        path, (unsigned)(st.st_mode & 0777));
  } else if (st.st_uid != geteuid()) {
    rc = csn_store_fail(errbuf, errlen, CSN_EPERM,
                        "secret file %s: owned by another user", path);
  } else {
    for (;;) {
      ssize_t got = read(fd, buf + n, sizeof buf - n);
      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0) {
        rc = csn_store_fail(errbuf, errlen, CSN_EIO, "secret file %s: %s",
                            path, strerror(errno));
        break;
      }
      if (got == 0)
        break;
      n += (size_t)got;
      if (n == sizeof buf) {
        rc = csn_store_fail(errbuf, errlen, CSN_EINVAL,
                            "secret file %s: longer than %d bytes", path,
                            CSN_SECRET_FILE_MAX);
        break;
      }
    }
  }
  close(fd);
  /* One trailing line end is the editor's, not the secret's. */
  if (rc == CSN_OK && n > 0 && buf[n - 1] == '\n')
    n--;
  if (rc == CSN_OK && n > 0 && buf[n - 1] == '\r')
    n--;
  if (rc == CSN_OK && n == 0)
    rc = csn_store_fail(errbuf, errlen, CSN_EINVAL, "secret file %s: empty",
                        path);
  if (rc == CSN_OK && memchr(buf, '\0', n) != NULL)
    rc = csn_store_fail(errbuf, errlen, CSN_EINVAL,
                        "secret file %s: contains a NUL byte", path);
  if (rc == CSN_OK) {
    *out = csn_malloc(n + 1);
    if (*out == NULL) {
      rc = csn_store_fail(errbuf, errlen, CSN_ENOMEM, "out of memory");
    } else {
      memcpy(*out, buf, n);
      (*out)[n] = '\0';
    }
  }
  OPENSSL_cleanse(buf, sizeof buf);
  return rc;
}
