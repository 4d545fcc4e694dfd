/* file.c - FileStore: session-file-store 1.5.0's directory layout.
 *
 * The contract is in include/csn/csn_store_file.h; this file explains how.
 *
 * Durability essay. A session file must never be seen torn or empty, even
 * after a power cut or a kill -9 in the middle of a write. So a write never
 * touches the live file: it creates "<name>.<random u32>" in the same
 * directory (same file system, so rename is atomic), writes the whole record,
 * fsyncs it, renames it over "<name>" and fsyncs the directory so that the
 * rename itself is on disk. A reader therefore sees either the old complete
 * file or the new complete file. A crash can leave a temporary file behind;
 * its name does not end with the extension, so listing, counting and reaping
 * ignore it, exactly as they ignore session-file-store's leftovers. Every
 * operation works relative to a directory descriptor opened once (openat and
 * friends), so a validated id is the only thing ever joined to it.
 *
 * Concurrency: the server calls us from many worker threads. Two writes of
 * the same id would both succeed (last rename wins), but touch() is a
 * read-modify-write, so operations on one id are serialised by one of a
 * small array of mutexes chosen by hashing the id. Different ids never wait
 * for each other beyond a hash collision.
 *
 * Encryption (a secret set) is a layer at the two ends and nothing else:
 * every read of a file goes through open_sealed() right after read_file(),
 * every write through write_buf(), which seals the finished text; get, set,
 * touch, length, all and the reaper all use those two paths, so the record
 * logic in between never sees ciphertext. The format and its costs are in
 * file_crypt.c.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "csn/csn_store_file.h"
#include "csn_int.h"
#include "file_crypt.h"

#define FILE_DEFAULT_TTL_MS INT64_C(3600000)
#define FILE_DEFAULT_REAP_MS INT64_C(3600000)
#define FILE_DEFAULT_BATCH 500
#define FILE_MAX_RECORD (16u * 1024u * 1024u)
#define FILE_NLOCKS 64
#define FILE_EXT_MAX 64

typedef struct file_store {
  csn_store base; /* first: the vtable pointer */
  char *dir;      /* as given, for messages */
  int dirfd;
  char *ext;
  size_t ext_len;
  int64_t ttl_ms;
  int64_t reap_ms;
  size_t reap_batch;
  csn__fcrypt *crypt; /* NULL: plaintext files */
  size_t max_file;    /* largest file read; encryption inflates records */
  pthread_mutex_t locks[FILE_NLOCKS];
  /* Reaper thread and its stop signal. */
  int has_reaper;
  pthread_t reaper;
  pthread_mutex_t stop_mu;
  pthread_cond_t stop_cv;
  int stop;
} file_store;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...)
    CSN__PRINTF(3, 4);
static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (errbuf == NULL || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

/* FNV-1a over the file name (so hashed names and the reaper, which knows
 * only names, agree): spreads files over the lock array; no security role. */
static pthread_mutex_t *lock_for(file_store *fs, const char *name) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 16777619u;
  }
  return &fs->locks[h % FILE_NLOCKS];
}

/* The file name of a session: "<sid><ext>", session-file-store's name.
 * An id too long for that (file names stop at NAME_MAX bytes, 255 on every
 * common file system, while ids may have 255 bytes) is stored as
 * "~<hex SHA-256 of the id><ext>" with the id inside the record (__csnId),
 * so all() can report it. No Node store can hold such an id, so nothing is
 * lost in compatibility. NULL on ENOMEM. */
#define FILE_NAME_MAX 255
static char *file_name(const file_store *fs, const char *sid, int *hashed) {
  size_t n = strlen(sid);
  char *s;
  if (n + fs->ext_len <= FILE_NAME_MAX) {
    s = csn__malloc(n + fs->ext_len + 1);
    if (s == NULL) return NULL;
    memcpy(s, sid, n);
    memcpy(s + n, fs->ext, fs->ext_len + 1);
    *hashed = 0;
    return s;
  }
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)sid, n, md);
  s = csn__malloc(1 + 2 * sizeof md + fs->ext_len + 1);
  if (s == NULL) return NULL;
  s[0] = '~';
  for (size_t i = 0; i < sizeof md; i++)
    snprintf(s + 1 + 2 * i, 3, "%02x", md[i]);
  memcpy(s + 1 + 2 * sizeof md, fs->ext, fs->ext_len + 1);
  *hashed = 1;
  return s;
}

/* Does a directory entry name a session file? Hidden names never do, and the
 * rest is session-file-store's rule: the name ends with the extension. */
static int is_session_name(const file_store *fs, const char *name,
                           size_t *id_len) {
  size_t n = strlen(name);
  if (name[0] == '.' || n <= fs->ext_len) return 0;
  if (memcmp(name + n - fs->ext_len, fs->ext, fs->ext_len) != 0) return 0;
  *id_len = n - fs->ext_len;
  return 1;
}

/* Read a whole file relative to the store's directory. Returns CSN_OK with a
 * NUL-terminated buffer, CSN_ENOENT when absent, CSN_ECORRUPT when it is
 * not a regular file or too large, CSN_EIO otherwise. *mtime_ms gets the
 * modification time. */
static int read_file(file_store *fs, const char *name, char **out,
                     size_t *len, int64_t *mtime_ms) {
  struct stat st;
  int fd = openat(fs->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return CSN_ENOENT;
    if (errno == ELOOP)
      return csn_store_set_error(&fs->base, CSN_ECORRUPT,
                                 "%s/%s is a symbolic link", fs->dir, name);
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot open %s/%s: %s",
                               fs->dir, name, strerror(errno));
  }
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot stat %s/%s: %s",
                               fs->dir, name, strerror(e));
  }
  if (!S_ISREG(st.st_mode) || (uintmax_t)st.st_size > fs->max_file) {
    close(fd);
    return csn_store_set_error(&fs->base, CSN_ECORRUPT,
                               "%s/%s is not a session file (type or size)",
                               fs->dir, name);
  }
  if (mtime_ms != NULL)
    *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
                st.st_mtim.tv_nsec / 1000000;
  /* The size may change under us (another process renaming a new version
   * in keeps our descriptor on the old inode, so it cannot); read up to the
   * stat size plus one byte to notice growth anyway. */
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *buf = csn__malloc(cap + 1);
  if (buf == NULL) {
    close(fd);
    return CSN_ENOMEM;
  }
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      csn__free(buf);
      return csn_store_set_error(&fs->base, CSN_EIO, "cannot read %s/%s: %s",
                                 fs->dir, name, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == cap) {
      close(fd);
      csn__free(buf);
      return csn_store_set_error(&fs->base, CSN_ECORRUPT,
                                 "%s/%s changed while being read", fs->dir,
                                 name);
    }
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return CSN_OK;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The atomic, durable replace described at the top of the file. */
static int write_file(file_store *fs, const char *name, const char *data,
                      size_t len) {
  uint32_t rnd;
  int rc = csn__random_bytes(&rnd, sizeof rnd);
  if (rc != CSN_OK) return rc;
  size_t nlen = strlen(name);
  char *tmp = csn__malloc(nlen + 12);
  if (tmp == NULL) return CSN_ENOMEM;
  snprintf(tmp, nlen + 12, "%s.%u", name, (unsigned)rnd);

  const char *step = "create";
  int fd = openat(fs->dirfd, tmp,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) goto fail;
  step = "write";
  if (write_all(fd, data, len) != 0) goto fail_fd;
  step = "fsync";
  if (fsync(fd) != 0) goto fail_fd;
  step = "close";
  if (close(fd) != 0) {
    fd = -1;
    goto fail_unlink;
  }
  fd = -1;
  step = "rename";
  if (renameat(fs->dirfd, tmp, fs->dirfd, name) != 0) goto fail_unlink;
  csn__free(tmp);
  /* The rename is done; making it durable can still fail (EIO), and the
   * caller must hear of it because the record might not survive a crash. */
  if (fsync(fs->dirfd) != 0 && errno != EINVAL)
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot fsync %s: %s",
                               fs->dir, strerror(errno));
  return CSN_OK;

fail_fd: {
  int e = errno;
  close(fd);
  errno = e;
}
fail_unlink: {
  int e = errno;
  unlinkat(fs->dirfd, tmp, 0);
  errno = e;
}
fail: {
  int e = errno;
  rc = csn_store_set_error(&fs->base, CSN_EIO, "cannot %s %s/%s: %s", step,
                           fs->dir, tmp, strerror(e));
  csn__free(tmp);
  return rc;
}
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

/* Why records are edited as text. The record is the core's serialisation,
 * and the store must hand back exactly those bytes: re-serialising with
 * jansson would turn 0.1 into 0.10000000000000001 and "\u00e9" into raw
 * UTF-8, and a Node reader would then see different data. So jansson only
 * validates and reads values; the two bookkeeping members (__lastAccess, and
 * __csnId for hashed names, below) are removed and appended as text, and
 * touch() swaps the cookie's value text. The scanner below runs only on text
 * jansson has already accepted as one JSON object, so it can be simple. */

/* Skip one JSON value starting at t[i] (no leading whitespace). */
static size_t skip_value(const char *t, size_t n, size_t i) {
  int depth = 0;
  do {
    if (i >= n) return n;
    char c = t[i];
    if (c == '"') {
      for (i++; i < n && t[i] != '"'; i++)
        if (t[i] == '\\') i++;
      i++;
    } else if (c == '{' || c == '[') {
      depth++;
      i++;
    } else if (c == '}' || c == ']') {
      depth--;
      i++;
    } else if (depth > 0) {
      i++; /* ',', ':', whitespace and scalars inside a container */
    } else {
      while (i < n && t[i] != ',' && t[i] != '}' && t[i] != ']' &&
             t[i] != ' ' && t[i] != '\t' && t[i] != '\n' && t[i] != '\r')
        i++;
    }
  } while (depth > 0);
  return i;
}

static size_t skip_ws(const char *t, size_t n, size_t i) {
  while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
    i++;
  return i;
}

typedef struct span {
  size_t cut_from, cut_to; /* the member plus one comma: removing it leaves
                              a valid object */
  size_t val_from, val_to; /* the value's text */
} span;

/* Locate top-level member `key` (compared as raw text between the quotes).
 * Returns 1 when found. */
static int member_span(const char *t, size_t n, const char *key, span *sp) {
  size_t klen = strlen(key), i = skip_ws(t, n, 0), prev_comma = 0;
  int have_prev = 0;
  if (i >= n || t[i] != '{') return 0;
  i = skip_ws(t, n, i + 1);
  while (i < n && t[i] == '"') {
    size_t mstart = i, kstart = i + 1;
    i = skip_value(t, n, i); /* the key string */
    size_t kend = i - 1;
    i = skip_ws(t, n, i);
    if (i >= n || t[i] != ':') return 0;
    i = skip_ws(t, n, i + 1);
    size_t vstart = i;
    i = skip_value(t, n, i);
    size_t vend = i;
    i = skip_ws(t, n, i);
    int comma = i < n && t[i] == ',';
    if (kend - kstart == klen && memcmp(t + kstart, key, klen) == 0) {
      sp->val_from = vstart;
      sp->val_to = vend;
      if (comma) {
        sp->cut_from = mstart;
        sp->cut_to = skip_ws(t, n, i + 1);
      } else if (have_prev) {
        sp->cut_from = prev_comma;
        sp->cut_to = vend;
      } else {
        sp->cut_from = mstart;
        sp->cut_to = vend;
      }
      return 1;
    }
    if (!comma) return 0;
    have_prev = 1;
    prev_comma = i;
    i = skip_ws(t, n, i + 1);
  }
  return 0;
}

/* Append t to b without the top-level member `key`. */
static void append_without(csn__buf *b, const char *t, size_t n,
                           const char *key) {
  span sp;
  if (!member_span(t, n, key, &sp)) {
    csn__buf_append(b, t, n);
    return;
  }
  csn__buf_append(b, t, sp.cut_from);
  csn__buf_append(b, t + sp.cut_to, n - sp.cut_to);
}

/* Append t minus the bookkeeping members __lastAccess and __csnId. */
static void append_stripped(csn__buf *b, const char *t, size_t n) {
  csn__buf tmp;
  csn__buf_init(&tmp);
  append_without(&tmp, t, n, "__csnId");
  if (tmp.oom || tmp.data == NULL)
    b->oom = 1;
  else
    append_without(b, tmp.data, tmp.len, "__lastAccess");
  csn__buf_free(&tmp);
}

/* Parse a stored file into an object. CSN_ECORRUPT (with a message) when it
 * is not a JSON object. */
static int parse_record(file_store *fs, const char *name, const char *text,
                        size_t len, json_t **out) {
  int perr = CSN_OK;
  /* JSON.parse's reading (session-file-store's decoder), see core/json.c. */
  json_t *o = csn__json_parse(text, len, &perr);
  /* Out of memory is not corruption: reporting it as such would turn a
   * transient failure into "session not found" and a lost login. */
  if (o == NULL && perr == CSN_ENOMEM)
    return csn_store_set_error(&fs->base, CSN_ENOMEM, "out of memory");
  if (o == NULL || !json_is_object(o)) {
    json_decref(o);
    return csn_store_set_error(&fs->base, CSN_ECORRUPT,
                               "corrupt session file %s/%s: %s", fs->dir,
                               name, o ? "not an object" : "not JSON");
  }
  *out = o;
  return CSN_OK;
}

static int64_t clamp_ms(double v) {
  if (v > 1e15) return INT64_C(1000000000000000);
  if (v < -1e15) return -INT64_C(1000000000000000);
  return (int64_t)v;
}

/* The expiry rule. session-file-store's: __lastAccess + L < now, L being
 * cookie.originalMaxAge when truthy, else ttl; the file's modification time
 * stands in for a missing __lastAccess. We add one condition: a cookie whose
 * "expires" has passed is expired too. express-session keeps expires equal
 * to last access + maxAge, so for Node's records the two agree; for ours it
 * makes the core's explicit expiry (a session cut short by touch, say) hold
 * on disk as it does in every other store. */
static int record_expired(const file_store *fs, json_t *rec, int64_t mtime,
                          int64_t now) {
  int64_t life = fs->ttl_ms, last = mtime, exp = 0;
  json_t *cookie = json_object_get(rec, "cookie");
  json_t *oma = json_object_get(cookie, "originalMaxAge");
  json_t *la = json_object_get(rec, "__lastAccess");
  json_t *ex = json_object_get(cookie, "expires");
  if (json_is_number(oma) && json_number_value(oma) != 0.0)
    life = clamp_ms(json_number_value(oma));
  if (json_is_number(la)) last = clamp_ms(json_number_value(la));
  if (life == 0) return 1; /* JS: a falsy lifetime means expired */
  if (last + life < now) return 1;
  if (json_is_string(ex) &&
      csn__parse_iso8601(json_string_value(ex), json_string_length(ex),
                         &exp) == 0 &&
      exp < now)
    return 1;
  return 0;
}

/* With a secret, replace the file content in *text by the record it seals.
 * A file that does not open (another secret, altered, or plaintext from
 * before the secret was set) is CSN_ECORRUPT with the reason recorded, so
 * every caller treats it like any corrupt file: not found, never a crash.
 * Without a secret this does nothing. */
static int open_sealed(file_store *fs, const char *name, char **text,
                       size_t *len) {
  if (fs->crypt == NULL) return CSN_OK;
  char *plain = NULL;
  size_t n = 0;
  const char *why = "";
  int rc = csn__fcrypt_open(fs->crypt, *text, *len, &plain, &n, &why);
  csn__free(*text);
  *text = NULL;
  if (rc == CSN_ECORRUPT || rc == CSN_EIO)
    return csn_store_set_error(&fs->base, rc, "cannot decrypt %s/%s: %s",
                               fs->dir, name, why);
  if (rc != CSN_OK) return rc;
  *text = plain;
  *len = n;
  return CSN_OK;
}

/* Load and judge one session file: CSN_OK with the live record's text and
 * parsed form; CSN_ENOENT when missing or expired (*expired tells which);
 * CSN_ECORRUPT. */
static int load_record(file_store *fs, const char *name, char **text,
                       size_t *len, json_t **out, int *expired) {
  int64_t mtime = 0;
  *expired = 0;
  *text = NULL;
  *out = NULL;
  int rc = read_file(fs, name, text, len, &mtime);
  if (rc == CSN_OK) rc = open_sealed(fs, name, text, len);
  if (rc != CSN_OK) return rc;
  rc = parse_record(fs, name, *text, *len, out);
  if (rc != CSN_OK) {
    csn__free(*text);
    *text = NULL;
    return rc;
  }
  if (record_expired(fs, *out, mtime, csn__now_ms())) {
    *expired = 1;
    return CSN_ENOENT;
  }
  return CSN_OK;
}

/* Close the record in b (whose text ends with the object's '}') with the
 * bookkeeping members: b's text minus that brace, then __lastAccess = now
 * and, for hashed names, __csnId. */
static int finish_record(csn__buf *b, const char *sid, int hashed) {
  char stamp[48];
  if (b->oom) return CSN_ENOMEM;
  size_t end = b->len;
  while (end > 0 && b->data[end - 1] != '}') end--;
  assert(end > 0);
  end--;
  size_t i = end;
  while (i > 0 && (b->data[i - 1] == ' ' || b->data[i - 1] == '\n' ||
                   b->data[i - 1] == '\t' || b->data[i - 1] == '\r'))
    i--;
  int empty = b->data[i - 1] == '{';
  b->len = i;
  snprintf(stamp, sizeof stamp, "%s\"__lastAccess\":%lld",
           empty ? "" : ",", (long long)csn__now_ms());
  csn__buf_puts(b, stamp);
  if (hashed) {
    /* Ids are free of control characters and backslashes (and a '"' is
     * escaped here), so this is a valid JSON string. */
    csn__buf_puts(b, ",\"__csnId\":\"");
    for (const char *p = sid; *p; p++) {
      if (*p == '"') csn__buf_putc(b, '\\');
      csn__buf_putc(b, *p);
    }
    csn__buf_putc(b, '"');
  }
  csn__buf_putc(b, '}');
  return b->oom ? CSN_ENOMEM : CSN_OK;
}

/* Every record write ends here: the finished text, sealed when a secret
 * is set, then the atomic replace. */
static int write_buf(file_store *fs, const char *name, csn__buf *b) {
  size_t n = 0;
  char *out = csn__buf_steal(b, &n);
  if (out == NULL) return CSN_ENOMEM;
  if (fs->crypt != NULL) {
    char *sealed = NULL;
    size_t sn = 0;
    const char *why = "";
    int rc = csn__fcrypt_seal(fs->crypt, out, n, &sealed, &sn, &why);
    csn__free(out);
    if (rc == CSN_EIO)
      return csn_store_set_error(&fs->base, rc, "cannot encrypt %s/%s: %s",
                                 fs->dir, name, why);
    if (rc != CSN_OK) return rc;
    out = sealed;
    n = sn;
  }
  int rc = write_file(fs, name, out, n);
  csn__free(out);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Store methods                                                            */
/* ------------------------------------------------------------------------ */

static int check_sid(file_store *fs, const char *sid) {
  if (sid == NULL || !csn_store_id_valid(sid))
    return csn_store_set_error(&fs->base, CSN_EINVAL,
                               "invalid session id for a file name");
  return CSN_OK;
}

static int file_get(csn_store *st, const char *sid, char **json,
                    size_t *len) {
  file_store *fs = (file_store *)st;
  int rc = check_sid(fs, sid), expired = 0, hashed = 0;
  if (rc != CSN_OK) return rc;
  char *name = file_name(fs, sid, &hashed), *text = NULL;
  if (name == NULL) return CSN_ENOMEM;
  size_t n = 0;
  json_t *rec = NULL;
  pthread_mutex_t *mu = lock_for(fs, name);
  pthread_mutex_lock(mu);
  rc = load_record(fs, name, &text, &n, &rec, &expired);
  pthread_mutex_unlock(mu);
  csn__free(name);
  /* A corrupt file is reported (the message stays in csn_store_errmsg())
   * and then treated as absent: the user gets a fresh session, not a 500. */
  if (rc == CSN_ECORRUPT) rc = CSN_ENOENT;
  if (rc == CSN_OK) {
    csn__buf b;
    csn__buf_init(&b);
    append_stripped(&b, text, n);
    *json = csn__buf_steal(&b, len);
    if (*json == NULL) rc = CSN_ENOMEM;
  }
  json_decref(rec);
  csn__free(text);
  return rc;
}

static int file_set(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  file_store *fs = (file_store *)st;
  (void)expires_ms; /* the record's own cookie carries it */
  int rc = check_sid(fs, sid), hashed = 0;
  if (rc != CSN_OK) return rc;
  json_t *rec = NULL;
  rc = parse_record(fs, sid, json, len, &rec);
  json_decref(rec);
  if (rc == CSN_ENOMEM) return rc;
  if (rc != CSN_OK)
    return csn_store_set_error(st, CSN_EINVAL, "set: record is not a JSON "
                                               "object");
  char *name = file_name(fs, sid, &hashed);
  if (name == NULL) return CSN_ENOMEM;
  csn__buf b;
  csn__buf_init(&b);
  append_stripped(&b, json, len);
  rc = finish_record(&b, sid, hashed);
  if (rc == CSN_OK) {
    pthread_mutex_t *mu = lock_for(fs, name);
    pthread_mutex_lock(mu);
    rc = write_buf(fs, name, &b);
    pthread_mutex_unlock(mu);
  }
  csn__buf_free(&b);
  csn__free(name);
  return rc;
}

static int file_destroy(csn_store *st, const char *sid) {
  file_store *fs = (file_store *)st;
  int rc = check_sid(fs, sid);
  if (rc != CSN_OK) return rc;
  int hashed = 0;
  char *name = file_name(fs, sid, &hashed);
  if (name == NULL) return CSN_ENOMEM;
  pthread_mutex_t *mu = lock_for(fs, name);
  pthread_mutex_lock(mu);
  if (unlinkat(fs->dirfd, name, 0) != 0 && errno != ENOENT)
    rc = csn_store_set_error(st, CSN_EIO, "cannot remove %s/%s: %s", fs->dir,
                             name, strerror(errno));
  pthread_mutex_unlock(mu);
  csn__free(name);
  return rc;
}

/* session-file-store's touch: re-read the stored record, give it the
 * caller's cookie and write it back, so data written by a concurrent set in
 * another process is not overwritten with this request's stale copy. An
 * expired record restarts as {cookie} (as in session-file-store); a missing
 * one is left missing; a corrupt one is left for set() to replace. */
static int file_touch(csn_store *st, const char *sid, const char *json,
                      size_t len, int64_t expires_ms) {
  file_store *fs = (file_store *)st;
  (void)expires_ms;
  int rc = check_sid(fs, sid), expired = 0, hashed = 0;
  if (rc != CSN_OK) return rc;
  json_t *given = NULL;
  rc = parse_record(fs, sid, json, len, &given);
  json_decref(given);
  if (rc == CSN_ENOMEM) return rc;
  if (rc != CSN_OK)
    return csn_store_set_error(st, CSN_EINVAL, "touch: record is not a JSON "
                                               "object");
  span cs;
  if (!member_span(json, len, "cookie", &cs))
    return csn_store_set_error(st, CSN_EINVAL, "touch: record has no cookie");
  char *name = file_name(fs, sid, &hashed), *text = NULL;
  if (name == NULL) return CSN_ENOMEM;
  size_t n = 0;
  json_t *rec = NULL;
  csn__buf base, b;
  csn__buf_init(&base);
  csn__buf_init(&b);
  pthread_mutex_t *mu = lock_for(fs, name);
  pthread_mutex_lock(mu);
  rc = load_record(fs, name, &text, &n, &rec, &expired);
  if (rc == CSN_OK || expired) {
    if (expired)
      csn__buf_puts(&base, "{}");
    else
      append_stripped(&base, text, n);
    span old;
    if (!base.oom && member_span(base.data, base.len, "cookie", &old)) {
      /* Swap the value, keep the member where it was. */
      csn__buf_append(&b, base.data, old.val_from);
      csn__buf_append(&b, json + cs.val_from, cs.val_to - cs.val_from);
      csn__buf_append(&b, base.data + old.val_to, base.len - old.val_to);
    } else if (!base.oom) {
      /* No cookie stored: put it first, where express-session has it. */
      size_t i = skip_ws(base.data, base.len, 0) + 1;
      size_t j = skip_ws(base.data, base.len, i);
      csn__buf_append(&b, base.data, i);
      csn__buf_puts(&b, "\"cookie\":");
      csn__buf_append(&b, json + cs.val_from, cs.val_to - cs.val_from);
      if (base.data[j] != '}') csn__buf_putc(&b, ',');
      csn__buf_append(&b, base.data + i, base.len - i);
    }
    rc = base.oom ? CSN_ENOMEM : finish_record(&b, sid, hashed);
    if (rc == CSN_OK) rc = write_buf(fs, name, &b);
  } else if (rc == CSN_ENOENT || rc == CSN_ECORRUPT) {
    rc = CSN_OK; /* nothing to touch */
  }
  pthread_mutex_unlock(mu);
  csn__buf_free(&base);
  csn__buf_free(&b);
  json_decref(rec);
  csn__free(text);
  csn__free(name);
  return rc;
}

/* Iterate over the session files; fn returns non-zero to stop (that value
 * is returned). A directory stream of its own per call, on a dup of dirfd,
 * so concurrent listings never share a position. */
typedef int (*each_name_fn)(file_store *fs, const char *name, size_t id_len,
                            void *ud);

static int each_name(file_store *fs, each_name_fn fn, void *ud) {
  int fd = openat(fs->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot open %s: %s",
                               fs->dir, strerror(errno));
  DIR *d = fdopendir(fd);
  if (d == NULL) {
    int e = errno;
    close(fd);
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot list %s: %s",
                               fs->dir, strerror(e));
  }
  int rc = CSN_OK;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (de == NULL) {
      if (errno != 0)
        rc = csn_store_set_error(&fs->base, CSN_EIO, "cannot list %s: %s",
                                 fs->dir, strerror(errno));
      break;
    }
    size_t id_len;
    if (!is_session_name(fs, de->d_name, &id_len)) continue;
    rc = fn(fs, de->d_name, id_len, ud);
    if (rc != 0) break;
  }
  closedir(d);
  return rc;
}

static int count_one(file_store *fs, const char *name, size_t id_len,
                     void *ud) {
  (void)fs, (void)name, (void)id_len;
  (*(size_t *)ud)++;
  return 0;
}

/* Load the live record behind a directory entry, with its id: the name
 * without the extension, or __csnId for a hashed name. CSN_ENOENT for
 * anything that is not a live session of a valid id. */
static int load_named(file_store *fs, const char *name, size_t id_len,
                      char sid[CSN_ID_MAX + 1], char **text, size_t *n) {
  json_t *rec = NULL;
  int expired = 0;
  pthread_mutex_t *mu = lock_for(fs, name);
  pthread_mutex_lock(mu);
  int rc = load_record(fs, name, text, n, &rec, &expired);
  pthread_mutex_unlock(mu);
  if (rc == CSN_OK) {
    json_t *hid = json_object_get(rec, "__csnId");
    if (name[0] == '~' && id_len == 1 + 2 * SHA256_DIGEST_LENGTH &&
        json_is_string(hid) && json_string_length(hid) <= CSN_ID_MAX) {
      memcpy(sid, json_string_value(hid), json_string_length(hid) + 1);
    } else if (id_len <= CSN_ID_MAX) {
      memcpy(sid, name, id_len);
      sid[id_len] = '\0';
    } else {
      rc = CSN_ENOENT;
    }
    if (rc == CSN_OK && !csn_store_id_valid(sid)) rc = CSN_ENOENT;
  }
  json_decref(rec);
  if (rc != CSN_OK) {
    csn__free(*text);
    *text = NULL;
    /* Gone, expired or corrupt entries are simply not sessions here. */
    if (rc == CSN_ECORRUPT) rc = CSN_ENOENT;
  }
  return rc;
}

static int count_live(file_store *fs, const char *name, size_t id_len,
                      void *ud) {
  char sid[CSN_ID_MAX + 1], *text = NULL;
  size_t n = 0;
  int rc = load_named(fs, name, id_len, sid, &text, &n);
  csn__free(text);
  if (rc == CSN_OK) (*(size_t *)ud)++;
  return rc == CSN_ENOENT ? 0 : rc;
}

/* Live sessions only: reading every file is the price of a count that
 * agrees with get(). */
static int file_length(csn_store *st, size_t *count) {
  size_t n = 0;
  int rc = each_name((file_store *)st, count_live, &n);
  if (rc == CSN_OK) *count = n;
  return rc;
}

static int clear_one(file_store *fs, const char *name, size_t id_len,
                     void *ud) {
  (void)id_len, (void)ud;
  if (unlinkat(fs->dirfd, name, 0) != 0 && errno != ENOENT)
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot remove %s/%s: %s",
                               fs->dir, name, strerror(errno));
  return 0;
}

static int file_clear(csn_store *st) {
  return each_name((file_store *)st, clear_one, NULL);
}

typedef struct all_ctx {
  csn_store_each_fn fn;
  void *ud;
  int stopped;
} all_ctx;

static int all_one(file_store *fs, const char *name, size_t id_len,
                   void *ud) {
  all_ctx *a = ud;
  char sid[CSN_ID_MAX + 1], *text = NULL;
  size_t n = 0;
  int rc = load_named(fs, name, id_len, sid, &text, &n);
  if (rc == CSN_ENOENT) return 0;
  if (rc != CSN_OK) return rc;
  csn__buf b;
  csn__buf_init(&b);
  append_stripped(&b, text, n);
  csn__free(text);
  size_t len = 0;
  char *json = csn__buf_steal(&b, &len);
  if (json == NULL) return CSN_ENOMEM;
  rc = a->fn(sid, json, len, a->ud);
  csn__free(json);
  if (rc != 0) a->stopped = 1;
  return rc != 0 ? 1 : 0;
}

static int file_all(csn_store *st, csn_store_each_fn fn, void *userdata) {
  all_ctx a = {fn, userdata, 0};
  int rc = each_name((file_store *)st, all_one, &a);
  return a.stopped ? CSN_OK : rc;
}

/* Reaping. One step examines at most `reap_batch` names; the reaper thread
 * pauses between steps, prune() does not. */
typedef struct prune_ctx {
  size_t removed;
  size_t seen;
  size_t skip;  /* names already handled by earlier steps */
  size_t limit; /* names to examine in this step; 0: no limit */
  int64_t now;
} prune_ctx;

static int prune_one(file_store *fs, const char *name, size_t id_len,
                     void *ud) {
  prune_ctx *p = ud;
  (void)id_len;
  if (p->seen++ < p->skip) return 0;
  if (p->limit != 0 && p->seen > p->skip + p->limit) return 1;

  pthread_mutex_t *mu = lock_for(fs, name);
  pthread_mutex_lock(mu);
  char *text = NULL;
  size_t n = 0;
  int64_t mtime = 0;
  int rc = read_file(fs, name, &text, &n, &mtime), drop = 0;
  /* An undecryptable file is judged like a corrupt one: by its age. */
  if (rc == CSN_OK && (rc = open_sealed(fs, name, &text, &n)) == CSN_ECORRUPT)
    drop = mtime + fs->ttl_ms < p->now;
  if (rc == CSN_OK) {
    json_t *rec = NULL;
    if (parse_record(fs, name, text, n, &rec) == CSN_OK)
      drop = record_expired(fs, rec, mtime, p->now);
    else
      drop = mtime + fs->ttl_ms < p->now; /* corrupt and old enough */
    json_decref(rec);
    csn__free(text);
  }
  if (drop && unlinkat(fs->dirfd, name, 0) == 0) p->removed++;
  pthread_mutex_unlock(mu);
  return 0;
}

static int file_prune(csn_store *st, size_t *removed) {
  prune_ctx p = {0, 0, 0, 0, csn__now_ms()};
  int rc = each_name((file_store *)st, prune_one, &p);
  if (removed != NULL) *removed = p.removed;
  return rc < 0 ? rc : CSN_OK;
}

/* Wait up to ms for the stop flag; returns non-zero when asked to stop. */
static int reaper_wait(file_store *fs, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&fs->stop_mu);
  while (!fs->stop &&
         pthread_cond_timedwait(&fs->stop_cv, &fs->stop_mu, &ts) == 0) {
  }
  int stop = fs->stop;
  pthread_mutex_unlock(&fs->stop_mu);
  return stop;
}

/* The reaper: every interval, walk the directory in steps of reap_batch
 * names. A step re-lists from the start and skips what earlier steps saw,
 * which keeps no directory stream open across pauses (names may come and go
 * meanwhile; a file missed now is caught next interval). */
static void *reaper_main(void *arg) {
  file_store *fs = arg;
  while (!reaper_wait(fs, fs->reap_ms)) {
    size_t skip = 0;
    for (;;) {
      /* Skipping the names earlier steps handled costs a readdir only. */
      prune_ctx p = {0, 0, skip, fs->reap_batch, csn__now_ms()};
      int rc = each_name(fs, prune_one, &p);
      if (rc < 0 || p.seen <= skip + fs->reap_batch) break;
      skip += fs->reap_batch;
      if (reaper_wait(fs, 10)) return NULL;
    }
  }
  return NULL;
}

static void file_close(csn_store *st) {
  file_store *fs = (file_store *)st;
  if (fs->has_reaper) {
    pthread_mutex_lock(&fs->stop_mu);
    fs->stop = 1;
    pthread_cond_broadcast(&fs->stop_cv);
    pthread_mutex_unlock(&fs->stop_mu);
    pthread_join(fs->reaper, NULL);
  }
  for (int i = 0; i < FILE_NLOCKS; i++) pthread_mutex_destroy(&fs->locks[i]);
  pthread_mutex_destroy(&fs->stop_mu);
  pthread_cond_destroy(&fs->stop_cv);
  if (fs->dirfd >= 0) close(fs->dirfd);
  csn__fcrypt_free(fs->crypt);
  csn__free(fs->dir);
  csn__free(fs->ext);
  csn__free(fs);
}

static const csn_store_methods file_methods = {
    CSN_STORE_METHODS_VERSION,
    "file",
    file_get,
    file_set,
    file_destroy,
    file_touch,
    file_clear,
    file_length,
    file_all,
    file_prune,
    file_close,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* mkdir -p, as session-file-store does when constructed. */
static int make_dirs(const char *path) {
  size_t n = strlen(path);
  char *p = csn__strdup(path);
  if (p == NULL) return CSN_ENOMEM;
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
      int e = errno;
      csn__free(p);
      errno = e;
      return -1;
    }
    p[i] = c;
  }
  csn__free(p);
  return 0;
}

int csn_store_file_new(const csn_file_options *opts, csn_store **out,
                       char *errbuf, size_t errlen) {
  csn_file_options o = {0};
  if (opts != NULL) o = *opts;
  if (out == NULL) return CSN_EINVAL;
  *out = NULL;
  if (o.dir == NULL || o.dir[0] == '\0') o.dir = "./sessions";
  if (o.ext == NULL) o.ext = ".json";
  if (o.ttl_ms == 0) o.ttl_ms = FILE_DEFAULT_TTL_MS;
  if (o.reap_interval_ms == 0) o.reap_interval_ms = FILE_DEFAULT_REAP_MS;
  if (o.reap_batch == 0) o.reap_batch = FILE_DEFAULT_BATCH;
  if (o.ttl_ms < 0 || strlen(o.ext) > FILE_EXT_MAX || strchr(o.ext, '/')) {
    set_errbuf(errbuf, errlen, "file store: bad ttl or extension");
    return CSN_EINVAL;
  }
  if (o.secret != NULL && o.secret[0] == '\0') {
    /* kruptein refuses an empty secret too ("Must supply a secret!"). */
    set_errbuf(errbuf, errlen, "file store: empty secret");
    return CSN_EINVAL;
  }

  file_store *fs = csn__calloc(1, sizeof *fs);
  if (fs == NULL) return CSN_ENOMEM;
  fs->base.m = &file_methods;
  fs->dirfd = -1;
  fs->dir = csn__strdup(o.dir);
  fs->ext = csn__strdup(o.ext);
  if (fs->dir == NULL || fs->ext == NULL) {
    csn__free(fs->dir);
    csn__free(fs->ext);
    csn__free(fs);
    return CSN_ENOMEM;
  }
  fs->ext_len = strlen(fs->ext);
  fs->ttl_ms = o.ttl_ms;
  fs->reap_ms = o.reap_interval_ms;
  fs->reap_batch = o.reap_batch;
  /* A sealed record is about 2.6 times its text (escapes, then the latin1
   * view of the ciphertext), so the size guard grows with it. */
  fs->max_file = o.secret != NULL ? 3 * (size_t)FILE_MAX_RECORD
                                  : FILE_MAX_RECORD;
  for (int i = 0; i < FILE_NLOCKS; i++) pthread_mutex_init(&fs->locks[i], NULL);
  pthread_mutex_init(&fs->stop_mu, NULL);
  pthread_cond_init(&fs->stop_cv, NULL);

  int rc = CSN_OK;
  if (o.secret != NULL && csn__fcrypt_new(o.secret, &fs->crypt) != CSN_OK) {
    file_close(&fs->base);
    return CSN_ENOMEM; /* the secret is non-empty, so only memory fails */
  }

  /* Create, open and list the directory now, so a missing permission is a
   * clear error at start-up rather than a 500 on the first request. */
  rc = make_dirs(fs->dir);
  if (rc == CSN_ENOMEM) {
    set_errbuf(errbuf, errlen, "file store: out of memory");
  } else if (rc != 0) {
    set_errbuf(errbuf, errlen, "file store: cannot create %s: %s", fs->dir,
               strerror(errno));
    rc = CSN_EIO;
  } else if ((fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
             0) {
    set_errbuf(errbuf, errlen, "file store: cannot open directory %s: %s",
               fs->dir, strerror(errno));
    rc = CSN_EIO;
  } else {
    size_t n = 0;
    if (each_name(fs, count_one, &n) != CSN_OK) {
      set_errbuf(errbuf, errlen, "file store: cannot list directory %s: %s",
                 fs->dir, csn_store_errmsg(&fs->base));
      rc = CSN_EIO;
    }
  }
  if (rc == CSN_OK && fs->reap_ms > 0) {
    if (pthread_create(&fs->reaper, NULL, reaper_main, fs) != 0) {
      set_errbuf(errbuf, errlen, "file store: cannot start reaper thread");
      rc = CSN_ENOMEM;
    } else {
      fs->has_reaper = 1;
    }
  }
  if (rc != CSN_OK) {
    file_close(&fs->base);
    return rc;
  }
  *out = &fs->base;
  return CSN_OK;
}

int csn_store_file_open(const char *url, csn_store **out, char *errbuf,
                        size_t errlen) {
  static const char scheme[] = "file://";
  if (url == NULL || out == NULL ||
      strncmp(url, scheme, sizeof scheme - 1) != 0) {
    set_errbuf(errbuf, errlen, "file store: URL must start with file://");
    return CSN_EINVAL;
  }
  const char *path = url + sizeof scheme - 1;
  const char *q = strchr(path, '?');
  size_t plen = q ? (size_t)(q - path) : strlen(path);
  csn_file_options o = {0};
  char ext[FILE_EXT_MAX + 1];
  char *secret = NULL;
  char *dir = csn__strndup(path, plen);
  if (dir == NULL) return CSN_ENOMEM;
  o.dir = plen > 0 ? dir : NULL;

  int rc = CSN_OK;
  const char *cur = q ? q + 1 : NULL;
  csn_url_param prm;
  int more;
  while (rc == CSN_OK && (more = csn_url_param_next(&cur, &prm)) != 0) {
    int64_t s = 0;
    if (more < 0) {
      rc = CSN_EINVAL;
    } else if (csn_url_param_is(&prm, "ttl")) {
      rc = csn_url_param_int(&prm, 1, INT64_C(9000000000000), &s);
      o.ttl_ms = s * 1000;
    } else if (csn_url_param_is(&prm, "reap")) {
      rc = csn_url_param_int(&prm, -1, INT64_C(9000000000000), &s);
      o.reap_interval_ms = s <= 0 ? -1 : s * 1000;
    } else if (csn_url_param_is(&prm, "ext") &&
               prm.value_len <= FILE_EXT_MAX) {
      memcpy(ext, prm.value, prm.value_len);
      ext[prm.value_len] = '\0';
      o.ext = ext;
    } else if (csn_url_param_is(&prm, "secret") && prm.value_len > 0) {
      /* Taken literally, like the path; the last one given wins. */
      csn__free(secret);
      secret = csn__strndup(prm.value, prm.value_len);
      if (secret == NULL) rc = CSN_ENOMEM;
      o.secret = secret;
    } else {
      rc = CSN_EINVAL;
    }
    if (rc == CSN_EINVAL)
      set_errbuf(errbuf, errlen, "file store: bad URL option '%.*s'",
                 more < 0 ? 1 : (int)(prm.key_len + 1 + prm.value_len > 64
                                          ? 64
                                          : prm.key_len + 1 + prm.value_len),
                 more < 0 ? "?" : prm.key);
  }
  if (rc == CSN_OK) rc = csn_store_file_new(&o, out, errbuf, errlen);
  if (secret != NULL) {
    /* The store keeps its own copy; do not leave this one in the heap. */
    OPENSSL_cleanse(secret, strlen(secret));
    csn__free(secret);
  }
  csn__free(dir);
  return rc;
}
