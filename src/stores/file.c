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
 * file or the new complete file, and needs no lock. A crash can leave a
 * temporary file behind; its name does not end with the extension, so
 * listing, counting and reaping ignore it, exactly as they ignore
 * session-file-store's leftovers. Every operation works relative to a
 * directory descriptor opened once (openat and friends), so a validated id
 * is the only thing ever joined to it.
 *
 * Where the file system allows it (Linux: leases and RENAME_EXCHANGE) the
 * temporary file is the session's spare instead, and the rename a swap
 * (write_spare(), file_spare.c): the replaced version is kept to be
 * rewritten by the next save rather than freed. A new session's file moves
 * in before its fsync (one journal commit for data and name): there is no
 * older version to protect, and nobody has its id before the save returns.
 *
 * Shared directory fsyncs. A save pays two fsyncs: its own file's (which
 * no other save can do for it) and the directory's (which any later one
 * can). The file fsyncs of concurrent saves already share the file
 * system's journal commits when they run at the same time, so each thread
 * does its own. The directory fsync is shared explicitly, as a group
 * commit (dir_sync()): a writer whose rename is done queues itself; the
 * first to find no directory fsync in flight takes the whole queue, makes
 * one fsync (which covers every rename made before it started) and wakes
 * the others with its result; those queued meanwhile make the next group.
 * A writer waits for it after releasing the id's lock, so the next writer
 * of the same id does not wait for our directory fsync; it is still
 * acknowledged only once its rename is on disk. destroy() makes its unlink
 * durable the same way (a logout must not come back after a power cut).
 * A new session's file on ext4 usually needs no directory fsync at all:
 * its own fsync wrote its entry (file_dirsync.c says when, and why). And
 * on ext4 a spare rewritten at its own size skips its own cache flush:
 * with a journal the directory fsync flushes for it; without one, it
 * queues its swap on the group instead of making it, and the leader
 * flushes once, makes every queued swap, then fsyncs the directory
 * (file_spare.c, "The flush"). Without a journal, new sessions' files
 * share their syncs too: a writer queues its file unsynced, and a leader
 * with two or more makes one syncfs and one flush for them all (a lone
 * one gets its fsync); a slow syncfs, a neighbour's backlog, stops that
 * for a while (share_fresh()).
 * With fsync=0 (URL) neither fsync is made: saves stay atomic (rename) and
 * survive a crash of the process, not a power cut.
 *
 * Locking essay. Reads need no lock, but touch() and cas() read, decide and
 * write, and several processes may share the directory (two app servers,
 * a deploy overlapping the old and the new one, the admin tool). If a cas
 * read the record, another process renamed a new version in, and the cas
 * then wrote, that process's change would be lost without anyone noticing -
 * the very thing cas exists to prevent. So every write of an id (set,
 * touch, destroy, cas, and the reaper's and clear's unlinks) happens under a
 * lock on that id that all processes see:
 *
 *   - one lock file per directory, ".csn.lock" (hidden, so never taken for
 *     a session; created 0600 and empty), and in it one byte per slot:
 *     slot = FNV-1a(file name) % FILE_LOCK_SLOTS. A write locks its slot's
 *     byte with fcntl; ids that share a slot merely wait for each other.
 *     A lock file per id would litter the directory and would need its own
 *     cleanup, racing the very writers it protects.
 *   - OFD locks (F_OFD_SETLKW) belong to the open file description, not to
 *     the process: two stores opened on one directory in one process
 *     exclude each other, and closing one never drops the other's locks
 *     (both are the traps of classic F_SETLKW locks). They die with the
 *     descriptor, so a crashed process holds nothing.
 *   - Threads of one store share the descriptor, and an OFD lock does not
 *     exclude its own description, so a mutex per slot group comes first
 *     (slot % FILE_NLOCKS): a slot's byte is only ever taken under its
 *     mutex, hence by one thread of the store at a time.
 *   - A descriptor inherited through fork() is the same open file
 *     description as the parent's, so a child would share (not contend
 *     for) the parent's locks: the descriptor is reopened in a process
 *     that did not open it (lock_fd()).
 *   - The lock file is opened when the store opens, or on the first write
 *     if the directory is read-only then (reading needs no lock): a store
 *     that cannot lock cannot write, and says so.
 * session-file-store takes no lock, so a Node writer on the same directory
 * is not serialised with ours; its whole-record writes still reach us as
 * conflicts that the core's merge absorbs.
 *
 * Encryption (a secret set) is a layer at the two ends and nothing else:
 * every read of a file goes through open_sealed() right after read_file(),
 * every write through write_buf(), which seals the finished text; get, set,
 * touch, cas, length, all and the reaper all use those two paths, so the
 * record logic in between never sees ciphertext. The format and its costs
 * are in file_crypt.c.
 */
/* F_OFD_SETLKW is a GNU (and POSIX 2024) name. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "file_dirsync.h"
#include "file_spare.h"

#define FILE_DEFAULT_TTL_MS INT64_C(3600000)
#define FILE_DEFAULT_REAP_MS INT64_C(3600000)
#define FILE_DEFAULT_BATCH 500
#define FILE_REAP_JITTER_PCT 50 /* processes sharing a directory spread out */
#define FILE_MAX_RECORD (16u * 1024u * 1024u)
#define FILE_NLOCKS 64
#define FILE_LOCK_SLOTS 1024 /* a multiple of FILE_NLOCKS */
#define FILE_LOCK_NAME ".csn.lock"
#define FILE_EXT_MAX 64

#ifdef F_OFD_SETLKW
#define FILE_SETLKW F_OFD_SETLKW
#define FILE_SETLK F_OFD_SETLK
#else
/* Classic process locks where OFD locks are missing: threads are still
 * serialised by the slot mutexes, processes by the byte locks; only two
 * stores on one directory in one process no longer exclude each other. */
#define FILE_SETLKW F_SETLKW
#define FILE_SETLK F_SETLK
#endif

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
  /* The lock file (see the essay): descriptor and the process that opened
   * it, both written under lockfd_mu. */
  pthread_mutex_t lockfd_mu;
  _Atomic int lockfd;
  _Atomic pid_t lockfd_pid;
  csn_sweeper *reaper; /* NULL: no background reaping */
  int no_fsync;        /* fsync=0: atomic, not durable against power loss */
  /* Spare files (file_spare.c): the spare directory, -1 without; and
   * whether saves use them (cleared when the file system turns out to
   * lack leases or RENAME_EXCHANGE). */
  int sparefd;
  _Atomic int recycle;
  /* The shared directory fsync (see "Shared directory fsyncs" above): a
   * group commit whose run is dir_fsync_once(). */
  csn_group *dsync;
  /* When a new file's own fsync made its name durable (file_dirsync.c). */
  csn__fdirsync dsync_skip;
  /* A spare rewritten at its own size is written out without a cache flush
   * of its own (file_spare.c, "The flush"): FILE_FLUSH_NONE never,
   * FILE_FLUSH_DIR the directory fsync after the swap flushes for it (a
   * journal orders the swap after the flush), FILE_FLUSH_GROUP a flush
   * shared by the rewrites in flight comes first (no journal: nothing else
   * would keep the swap from reaching the disk before the data). */
  int flush_mode;
  /* New sessions' files synced by their group's leader (share_fresh()):
   * csn_mono_ms() until which they are not, after a slow syncfs (0:
   * never was), and for how long the last slow one stopped them (0: the
   * last syncfs was not slow). Written by group leaders only. */
  _Atomic int64_t fresh_off_until;
  _Atomic int64_t fresh_off_ms;
} file_store;

#define FILE_FLUSH_NONE 0
#define FILE_FLUSH_DIR 1
#define FILE_FLUSH_GROUP 2

/* A syncfs for a group of new files slower than this (ms) stops the
 * sharing for a while (share_fresh()): FILE_FRESH_OFF_MIN_MS after a fast
 * one, twice the last pause after a slow one, at most
 * FILE_FRESH_OFF_MAX_MS. Ours alone take a few milliseconds; a slow one
 * met another writer's backlog on the file system, which may have been
 * written out by it (a program that just finished) or may go on. */
#define FILE_FRESH_SLOW_MS 250
#define FILE_FRESH_OFF_MIN_MS 1000
#define FILE_FRESH_OFF_MAX_MS 30000

/* What a write leaves for its caller to finish once the name's lock is
 * released (write_done()). */
typedef struct file_put {
  int old;     /* the replaced version, held open (see write_file()) */
  int wrote;   /* a file was put in place */
  int durable; /* and its name is durable already: no directory fsync */
  int fresh;   /* a new session's file, open and not synced yet (-1: none):
                  its group's leader syncs it (share_fresh()) */
} file_put;

#define FILE_PUT_INIT {-1, 0, 0, -1}

/* A writer waiting for a directory fsync, on its own stack. */
typedef struct group_wait {
  csn_group_member member; /* first: the group's list (next_wait) */
  int err; /* errno of the fsync that covered us, 0 for success */
  /* A rewritten spare for the leader to swap in before the fsync, after a
   * cache flush (FILE_FLUSH_GROUP); NULL: none. Its results: errno of
   * that flush, and the swap's (negative) errno. */
  const char *install;
  int flush_err;
  int install_err;
  /* A new session's file, written and moved in but not synced, for the
   * leader to sync (share_fresh()); -1: none. */
  int fresh_fd;
} group_wait;

/* The writer after m in its group. */
static group_wait *next_wait(const group_wait *m) {
  return (group_wait *)(void *)m->member.next;
}

/* ------------------------------------------------------------------------ */
/* Names and locks                                                          */
/* ------------------------------------------------------------------------ */

/* FNV-1a over the file name (so hashed names and the reaper, which knows
 * only names, agree): spreads files over the lock slots; no security
 * role. */
static uint32_t name_hash(const char *name) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 16777619u;
  }
  return h;
}

/* Open (or create) the lock file: never blocking, and only a regular file
 * (a FIFO planted under its name must not hang the store). -1 with errno
 * set otherwise. */
static int lock_open(file_store *fs) {
  struct stat st;
  int fd = openat(fs->dirfd, FILE_LOCK_NAME,
                  O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) return -1;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

/* The lock file's descriptor for this process, opening it if needed.
 * CSN_EIO with a message when it cannot be opened (a read-only directory
 * without a lock file, or a lock file we may not write). */
static int lock_fd(file_store *fs, int *fd) {
  pid_t me = getpid();
  if (atomic_load(&fs->lockfd) >= 0 && atomic_load(&fs->lockfd_pid) == me) {
    *fd = atomic_load(&fs->lockfd);
    return CSN_OK;
  }
  int rc = CSN_OK;
  pthread_mutex_lock(&fs->lockfd_mu);
  if (atomic_load(&fs->lockfd) < 0 || atomic_load(&fs->lockfd_pid) != me) {
    /* An inherited descriptor shares its locks with the parent: closing
     * our copy leaves the parent's description (and locks) alone. */
    int old = atomic_load(&fs->lockfd);
    int nfd = lock_open(fs);
    if (nfd < 0) {
      rc = csn_store_set_error(&fs->base, CSN_EIO,
                               "cannot open lock file %s/%s: %s", fs->dir,
                               FILE_LOCK_NAME, strerror(errno));
    } else {
      if (old >= 0) close(old);
      atomic_store(&fs->lockfd, nfd);
      atomic_store(&fs->lockfd_pid, me);
    }
  }
  *fd = atomic_load(&fs->lockfd);
  pthread_mutex_unlock(&fs->lockfd_mu);
  return rc;
}

/* A held lock on one file name: its slot mutex and its byte. */
typedef struct name_lock {
  pthread_mutex_t *mu;
  int fd;
  off_t slot;
} name_lock;

static int lock_slot(int fd, short type, off_t slot, int wait) {
  struct flock fl;
  memset(&fl, 0, sizeof fl); /* l_pid must be 0 for OFD locks */
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = slot;
  fl.l_len = 1;
  int rc;
  while ((rc = fcntl(fd, wait ? FILE_SETLKW : FILE_SETLK, &fl)) != 0 &&
         errno == EINTR) {
  }
  return rc;
}

/* Take the write lock of `name` (see the essay): the slot mutex, then the
 * slot's byte in the lock file. CSN_EIO when the lock file is unusable;
 * nothing is held then. */
static int name_lock_take(file_store *fs, const char *name, name_lock *lk) {
  lk->slot = (off_t)(name_hash(name) % FILE_LOCK_SLOTS);
  lk->mu = &fs->locks[lk->slot % FILE_NLOCKS];
  pthread_mutex_lock(lk->mu);
  int rc = lock_fd(fs, &lk->fd);
  if (rc == CSN_OK && lock_slot(lk->fd, F_WRLCK, lk->slot, 1) != 0)
    rc = csn_store_set_error(&fs->base, CSN_EIO, "cannot lock %s/%s: %s",
                             fs->dir, FILE_LOCK_NAME, strerror(errno));
  if (rc != CSN_OK) pthread_mutex_unlock(lk->mu);
  return rc;
}

static void name_lock_release(name_lock *lk) {
  /* Unlocking a range we hold cannot fail short of a bad descriptor. */
  (void)lock_slot(lk->fd, F_UNLCK, lk->slot, 0);
  pthread_mutex_unlock(lk->mu);
}

/* The file name of a session: "<sid><ext>", session-file-store's name.
 * An id too long for that (file names stop at NAME_MAX bytes, 255 on every
 * common file system, while ids may have 255 bytes) is stored as
 * "~<hex SHA-256 of the id><ext>" with the id inside the record (__csnId),
 * so all() can report it. No Node store can hold such an id, so nothing is
 * lost in compatibility. The one name that would be the lock file (an id
 * ".csn.lock" with an empty extension, say) is hashed the same way, so no
 * write can ever replace the lock file. NULL on ENOMEM. */
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
    if (strcmp(s, FILE_LOCK_NAME) != 0) return s;
    csn__free(s);
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

/* Does a directory entry name a session file? Hidden names never do (the
 * lock file is one), and the rest is session-file-store's rule: the name
 * ends with the extension. */
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
 * not a session file we may trust (see below) or too large, CSN_EIO
 * otherwise. *mtime_ms gets the modification time.
 *
 * The directory is ours (checked at open), but a file in it may have been
 * planted before that, or hard-linked from elsewhere. Only a regular file
 * with one link, owned by this process's user, is read: a FIFO would block
 * the open (and the bucket lock with it) for ever, so the open never
 * blocks; a file owned by someone else could be a forged session; a second
 * link means the same inode is reachable from outside the directory. */
static int read_file(file_store *fs, const char *name, char **out,
                     size_t *len, int64_t *mtime_ms) {
  struct stat st;
  int fd =
      openat(fs->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
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
  /* nlink 0 is fine: a writer renamed a new version over the name since
   * our open, and what we read is the whole old version (refusing it lost
   * updates under concurrent writers). */
  if (st.st_uid != geteuid() || st.st_nlink > 1) {
    close(fd);
    return csn_store_set_error(
        &fs->base, CSN_ECORRUPT,
        "%s/%s is refused: %s", fs->dir, name,
        st.st_uid != geteuid() ? "owned by another user"
                               : "it has more than one link");
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

/* The sync of the new sessions' files in a group (share_fresh()): one
 * file is fsynced, as its writer would have; two or more share a syncfs
 * of the file system and one cache flush after it. Returns the errno, 0
 * for success, -1 when the group holds no new file. On success *whole is
 * set when the sync covered the directory as well (a syncfs writes its
 * entries and its inode), *whole stays 0 after a lone file's fsync. */
static int sync_fresh(file_store *fs, group_wait *group, int *whole) {
  group_wait *one = NULL;
  int n = 0;
  for (group_wait *m = group; m != NULL; m = next_wait(m))
    if (m->fresh_fd >= 0) {
      one = m;
      n++;
    }
  *whole = 0;
  if (n == 0) return -1;
  if (n == 1) return fsync(one->fresh_fd) != 0 ? errno : 0;
  /* syncfs() writes every dirty page, inode and metadata block of the
   * file system and waits for them, but on ext4 without a journal its
   * cache flush comes before its last metadata writes (the inode blocks
   * that writing the data dirtied): hence the flush after it. */
#ifndef __linux__
  /* FILE_FLUSH_GROUP is Linux's: no syncfs() elsewhere. */
  for (group_wait *m = group; m != NULL; m = next_wait(m))
    if (m->fresh_fd >= 0 && fsync(m->fresh_fd) != 0) return errno;
  return 0;
#else
  int64_t size = csn__fdirsync_size(fs->dirfd);
  int64_t t0 = csn_mono_ms();
  int err = syncfs(fs->dirfd) != 0 ? errno : 0;
  if (err == 0)
    err = fdatasync(atomic_load(&fs->lockfd)) != 0 ? errno : 0;
  int64_t t1 = csn_mono_ms();
  int64_t off = 0;
  if (t1 - t0 > FILE_FRESH_SLOW_MS) {
    off = atomic_load(&fs->fresh_off_ms) * 2;
    off = off < FILE_FRESH_OFF_MIN_MS   ? FILE_FRESH_OFF_MIN_MS
          : off > FILE_FRESH_OFF_MAX_MS ? FILE_FRESH_OFF_MAX_MS
                                        : off;
    atomic_store(&fs->fresh_off_until, t1 + off);
  }
  atomic_store(&fs->fresh_off_ms, off);
  if (err == 0) {
    csn__fdirsync_done(&fs->dsync_skip, size);
    *whole = 1;
  }
  return err;
#endif
}

/* The sync of a group, which sets each member's err: its new files first
 * (sync_fresh()); then the rewritten spares queued for a swap
 * (FILE_FLUSH_GROUP), swapped in after one cache flush that makes their
 * data durable before any swap can reach the disk (file_spare.c, "The
 * flush"), a flush the new files' sync has made already when there were
 * any; then the directory's fsync, unless the new files' sync covered
 * every member. The flush is an fdatasync of the lock file, which is
 * never written, so on ext4 it writes nothing and flushes (the writers
 * hold their names' locks, so it is open in this process). */
static void dir_fsync_once(file_store *fs, group_wait *group) {
  int whole = 0;
  int fresh_err = sync_fresh(fs, group, &whole);
  int flush_err = fresh_err == 0 ? 0 : -1; /* -1: not flushed yet */
  /* A lone new file's fsync wrote its entry where file_dirsync.c says
   * so. */
  int need_dir = fresh_err == 0 && !whole &&
                 csn__fdirsync_needed(&fs->dsync_skip, fs->dirfd);
  for (group_wait *m = group; m != NULL; m = next_wait(m)) {
    if (m->fresh_fd >= 0) continue;
    need_dir |= !whole; /* a rename or an unlink */
    if (m->install == NULL) continue;
    need_dir = 1; /* a swap made after the sync */
    if (flush_err < 0)
      flush_err = fdatasync(atomic_load(&fs->lockfd)) != 0 ? errno : 0;
    m->flush_err = flush_err;
    m->install_err =
        flush_err != 0
            ? 0
            : csn__fspare_install(fs->sparefd, fs->dirfd, m->install, 0);
  }
  int err = 0;
  if (need_dir) {
    /* EINVAL: a file system that cannot sync directories (and need
     * not). */
    int64_t size = csn__fdirsync_size(fs->dirfd);
    err = fsync(fs->dirfd) != 0 && errno != EINVAL ? errno : 0;
    if (err == 0) csn__fdirsync_done(&fs->dsync_skip, size);
  }
  for (group_wait *m = group; m != NULL; m = next_wait(m))
    m->err = m->fresh_fd >= 0 && fresh_err != 0 ? fresh_err : err;
}

/* The group's run (csn_group_join(): the first writer to find none in
 * flight takes every writer queued, runs this for them and wakes them;
 * those queued meanwhile make the next group). A sync covers what its
 * writers did before they queued, so a writer joins only a group whose
 * sync has not started yet: the leader takes the queue just before it. */
static void run_dir_sync(csn_group_member *group, void *ud) {
  dir_fsync_once(ud, (group_wait *)(void *)group);
}

/* Wait for the sync that covers the caller: the errno of that sync, 0 for
 * success (me, filled in). */
static int group_sync(file_store *fs, group_wait *me) {
  me->err = 0;
  csn_group_join(fs->dsync, &me->member);
  return me->err;
}

/* Wait in the group (me->install set: with a swap for its leader to
 * make); CSN_EIO with a message when the directory fsync failed. */
static int group_dir_sync(file_store *fs, group_wait *me) {
  int err = group_sync(fs, me);
  /* The rename is made but may not survive a crash: the caller must hear
   * of it. */
  if (err != 0)
    return csn_store_set_error(&fs->base, CSN_EIO, "cannot fsync %s: %s",
                               fs->dir, strerror(err));
  return CSN_OK;
}

/* Make every rename and unlink this thread has made in the directory
 * durable: the shared directory fsync described at the top of the file;
 * and the new session's file `fresh` (-1: none) with it (share_fresh()).
 * Call it without holding a name's lock. */
static int dir_sync(file_store *fs, int fresh) {
  if (fs->no_fsync) return CSN_OK;
  group_wait me = {.install = NULL, .fresh_fd = fresh};
  return group_dir_sync(fs, &me);
}

/* Whether a new session's file is left for its group's leader to sync
 * (sync_fresh()) rather than fsynced by its writer. On ext4 without a
 * journal (FILE_FLUSH_GROUP) each fsync writes its own inode block and
 * directory block and flushes the disk cache alone: concurrent fsyncs
 * share nothing, and under load they were a third of a new visitor's CPU.
 * A group of new files synced by one syncfs writes each shared block once
 * and flushes once. But a syncfs also writes whatever else is dirty on the
 * file system: when one takes longer than FILE_FRESH_SLOW_MS (a neighbour
 * with much unwritten data), writers go back to their own fsyncs for a
 * second, then for twice as long each time the next syncfs is slow too,
 * up to FILE_FRESH_OFF_MAX_MS. With a journal, concurrent fsyncs already share its
 * commits; elsewhere nothing was checked: both keep the writer's fsync. */
static int share_fresh(file_store *fs) {
  if (fs->no_fsync || fs->flush_mode != FILE_FLUSH_GROUP) return 0;
  int64_t until = atomic_load_explicit(&fs->fresh_off_until,
                                       memory_order_relaxed);
  return until == 0 || csn_mono_ms() >= until;
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

/* The save through the session's spare (file_spare.c): rewrite it in
 * place, make it durable, swap it with the live file. CSN_OK, an error, or
 * 1: this file system cannot recycle, save the plain way (recycling stays
 * off for the store from now on). */
static int write_spare(file_store *fs, const char *name, const char *data,
                       size_t len, file_put *w) {
  int fd = -1, reused = 0;
  off_t size = 0;
  const char *step = "create";
  int e = csn__fspare_take(fs->sparefd, name, &fd, &reused, &size);
  if (e == -ENOTSUP) goto off;
  if (e != 0) {
    errno = -e;
    goto fail;
  }
  step = "write";
  if (write_all(fd, data, len) != 0) goto fail_fd;
  step = "truncate";
  if (size > (off_t)len && ftruncate(fd, (off_t)len) != 0) goto fail_fd;
  if (!reused) {
    /* A new session: no version of it exists that a crash could cost, so
     * the file moves in first and one fsync then makes the data and the
     * name durable together (one journal commit instead of two). Until it
     * is acknowledged, nobody holds its id. */
    step = "rename";
    e = csn__fspare_install(fs->sparefd, fs->dirfd, name, 1);
    if (e == 0 && share_fresh(fs)) {
      w->fresh = fd; /* write_done() syncs and closes it */
      return CSN_OK;
    }
    if (e == 0) {
      step = "fsync";
      if (!fs->no_fsync && fsync(fd) != 0) goto fail_fd;
      step = "close";
      e = close(fd);
      fd = -1;
      if (e != 0) goto fail;
      /* Where the file system wrote the new entry with the file, the
       * directory fsync can be skipped (file_dirsync.c). */
      w->durable =
          !fs->no_fsync && !csn__fdirsync_needed(&fs->dsync_skip, fs->dirfd);
      return CSN_OK;
    }
    if (e != -EEXIST && e != -ENOTSUP) {
      errno = -e;
      goto fail_fd;
    }
  }
  /* An overwrite of the same blocks needs only its data on disk; at the
   * same size on ext4 without its own cache flush (file_spare.c, "The
   * flush"). */
  step = "fsync";
  int out = !fs->no_fsync && reused && size == (off_t)len &&
            fs->flush_mode != FILE_FLUSH_NONE;
  if (!fs->no_fsync &&
      (out ? csn__fspare_write_out(fd)
           : reused ? fdatasync(fd) : fsync(fd)) != 0)
    goto fail_fd;
  step = "close";
  e = close(fd);
  fd = -1;
  if (e != 0) goto fail; /* errno is close()'s */
  if (out && fs->flush_mode == FILE_FLUSH_GROUP) {
    /* The directory fsync's leader flushes, swaps and syncs for us (so
     * this writer, unlike the others, waits for the directory fsync with
     * its id's lock held: the swap must be made under it). */
    group_wait me = {.install = name, .fresh_fd = -1};
    int rc = group_dir_sync(fs, &me);
    step = "flush before the swap of";
    e = -me.flush_err;
    if (e == 0) {
      step = "rename";
      e = me.install_err;
    }
    if (e == -ENOTSUP) goto off;
    if (e != 0) {
      errno = -e;
      goto fail;
    }
    w->durable = rc == CSN_OK;
    return rc;
  }
  step = "rename";
  e = csn__fspare_install(fs->sparefd, fs->dirfd, name, 0);
  if (e == -ENOTSUP) goto off;
  if (e != 0) {
    errno = -e;
    goto fail;
  }
  /* The caller makes the swap durable (dir_sync()), as for a rename. */
  return CSN_OK;

off:
  atomic_store(&fs->recycle, 0);
  return 1;
fail_fd: {
  int k = errno;
  close(fd);
  errno = k;
}
fail:
  /* The spare may be torn now; it is rewritten whole before any use. */
  return csn_store_set_error(&fs->base, CSN_EIO, "cannot %s %s/%s/%s: %s",
                             step, fs->dir, CSN_FSPARE_DIR, name,
                             strerror(errno));
}

/* The atomic, durable replace described at the top of the file. */
static int write_file(file_store *fs, const char *name, const char *data,
                      size_t len, file_put *w) {
  if (atomic_load_explicit(&fs->recycle, memory_order_relaxed)) {
    int r = write_spare(fs, name, data, len, w);
    if (r != 1) return r;
  }
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
  if (!fs->no_fsync && fsync(fd) != 0) goto fail_fd;
  step = "close";
  if (close(fd) != 0) {
    fd = -1;
    goto fail_unlink;
  }
  fd = -1;
  /* The version being replaced, held open across the rename: a rename
   * frees the inode it replaces while it still holds the directory's lock,
   * and freeing blocks can wait on the disk (a synchronous discard on a
   * file system mounted with -o discard), so every open and rename in the
   * directory would queue behind it. Held open, the inode is freed at our
   * close(), outside that lock (write_done()). Without it, nothing changes
   * but the place of that wait. */
  if (w->old < 0)
    w->old = openat(fs->dirfd, name,
                    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  step = "rename";
  if (renameat(fs->dirfd, tmp, fs->dirfd, name) != 0) goto fail_unlink;
  csn__free(tmp);
  /* The rename is made; the caller makes it durable (dir_sync()) once it
   * has released the id's lock. */
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

/* The end of every record write, once the name's lock is released: make
 * the write durable (unless its own fsync did), then close the replaced
 * version that write_file() kept open (which frees it, see there). */
static int write_done(file_store *fs, int rc, const file_put *w) {
  if (rc == CSN_OK && w->wrote && !w->durable) rc = dir_sync(fs, w->fresh);
  if (w->fresh >= 0 && close(w->fresh) != 0 && rc == CSN_OK)
    rc = csn_store_set_error(&fs->base, CSN_EIO, "cannot close %s: %s",
                             fs->dir, strerror(errno));
  if (w->old >= 0) close(w->old);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

/* Why records are edited as text. The record is the core's serialisation,
 * and the store must hand back exactly those bytes (cas() compares them):
 * re-serialising with jansson would turn 0.1 into 0.10000000000000001 and
 * "\u00e9" into raw UTF-8, and a Node reader would then see different data.
 * So jansson only validates and reads values; touch() swaps the cookie with
 * the kit's csn_record_splice_cookie(), and the two bookkeeping members
 * (__lastAccess, and __csnId for hashed names) are appended as text on
 * write and cut out as text on read.
 *
 * The cutting is the one edit the kit does not offer (it replaces the
 * cookie and nothing else), hence the small scanner below. It runs only on
 * text jansson has already accepted as one JSON object, so it can be
 * simple. Our own writes put the members last, but a record written by
 * Node keeps __lastAccess where it first appeared, data members added by
 * later requests after it, so the member may be anywhere. */

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

/* Find top-level member `key` (compared as raw text between the quotes)
 * and the bytes [*from, *to) to cut: the member plus one comma, so that
 * what is left is still an object. Returns 1 when found. */
static int member_cut(const char *t, size_t n, const char *key, size_t *from,
                      size_t *to) {
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
    i = skip_value(t, n, skip_ws(t, n, i + 1));
    size_t vend = i;
    i = skip_ws(t, n, i);
    int comma = i < n && t[i] == ',';
    if (kend - kstart == klen && memcmp(t + kstart, key, klen) == 0) {
      if (comma) { /* cut "key":value, and the space up to the next key */
        *from = mstart;
        *to = skip_ws(t, n, i + 1);
      } else { /* the last member: cut from the comma before it, if any */
        *from = have_prev ? prev_comma : mstart;
        *to = vend;
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

/* Append t[0..n) to b minus the bookkeeping members __csnId and
 * __lastAccess: what get() returns and cas() compares. */
static void append_stripped(csn__buf *b, const char *t, size_t n) {
  static const char *const keys[] = {"__csnId", "__lastAccess"};
  size_t base = b->len;
  csn__buf_append(b, t, n);
  for (size_t k = 0; k < CSN__ARRAY_SIZE(keys) && !b->oom && b->data; k++) {
    char *s = b->data + base;
    size_t from, to;
    if (member_cut(s, b->len - base, keys[k], &from, &to)) {
      memmove(s + from, s + to, b->len - base - to);
      b->len -= to - from;
    }
  }
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

/* What get() returns for a file, and what cas() compares: the live record
 * without the bookkeeping members. CSN_OK with *out (NUL-terminated, the
 * caller's); CSN_ENOENT when missing or expired (*expired tells which);
 * CSN_ECORRUPT, CSN_ENOMEM or CSN_EIO. */
static int load_stripped(file_store *fs, const char *name, char **out,
                         size_t *len, int *expired) {
  char *text = NULL;
  size_t n = 0;
  json_t *rec = NULL;
  int rc = load_record(fs, name, &text, &n, &rec, expired);
  *out = NULL;
  if (rc == CSN_OK) {
    csn__buf b;
    csn__buf_init(&b);
    append_stripped(&b, text, n);
    *out = csn__buf_steal(&b, len);
    if (*out == NULL) rc = CSN_ENOMEM;
  }
  json_decref(rec);
  csn__free(text);
  return rc;
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
 * is set, then the atomic replace. The caller holds the name's lock. */
static int write_buf(file_store *fs, const char *name, csn__buf *b,
                     file_put *w) {
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
  int rc = write_file(fs, name, out, n, w);
  w->wrote = rc == CSN_OK;
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

/* A record handed to set/cas/touch must be a JSON object (touch's must
 * also carry a cookie object). */
static int check_given(file_store *fs, const char *op, const char *json,
                       size_t len, int need_cookie) {
  json_t *rec = NULL;
  int rc = parse_record(fs, op, json, len, &rec);
  if (rc == CSN_OK && need_cookie &&
      !json_is_object(json_object_get(rec, "cookie")))
    rc = csn_store_set_error(&fs->base, CSN_EINVAL,
                             "%s: record has no cookie", op);
  json_decref(rec);
  if (rc == CSN_ECORRUPT)
    rc = csn_store_set_error(&fs->base, CSN_EINVAL,
                             "%s: record is not a JSON object", op);
  return rc;
}

/* The file content for a record given to set/cas: its text without any
 * bookkeeping members the caller left in, then fresh ones. */
static int build_record(csn__buf *b, const char *json, size_t len,
                        const char *sid, int hashed) {
  csn__buf_init(b);
  append_stripped(b, json, len);
  return finish_record(b, sid, hashed);
}

static int file_get(csn_store *st, const char *sid, char **json,
                    size_t *len) {
  file_store *fs = (file_store *)st;
  int rc = check_sid(fs, sid), expired = 0, hashed = 0;
  if (rc != CSN_OK) return rc;
  char *name = file_name(fs, sid, &hashed);
  if (name == NULL) return CSN_ENOMEM;
  /* No lock: a rename replaces the file whole (see the top of the file). */
  rc = load_stripped(fs, name, json, len, &expired);
  csn__free(name);
  /* A corrupt file is reported (the message stays in csn_store_errmsg())
   * and then treated as absent: the user gets a fresh session, not a 500. */
  return rc == CSN_ECORRUPT ? CSN_ENOENT : rc;
}

static int file_set(csn_store *st, const char *sid, const char *json,
                    size_t len, int64_t expires_ms) {
  file_store *fs = (file_store *)st;
  (void)expires_ms; /* the record's own cookie carries it */
  int rc = check_sid(fs, sid), hashed = 0;
  if (rc == CSN_OK) rc = check_given(fs, "set", json, len, 0);
  if (rc != CSN_OK) return rc;
  char *name = file_name(fs, sid, &hashed);
  if (name == NULL) return CSN_ENOMEM;
  csn__buf b;
  name_lock lk;
  file_put w = FILE_PUT_INIT;
  rc = build_record(&b, json, len, sid, hashed);
  if (rc == CSN_OK && (rc = name_lock_take(fs, name, &lk)) == CSN_OK) {
    rc = write_buf(fs, name, &b, &w);
    name_lock_release(&lk);
    rc = write_done(fs, rc, &w);
  }
  csn__buf_free(&b);
  csn__free(name);
  return rc;
}

/* Compare-and-set: under the name's lock (so no other thread or process
 * can write in between), compare the live record as get() would return it
 * with `expected`, and write as set() does only if they are equal. */
static int file_cas(csn_store *st, const char *sid, const char *expected,
                    size_t expected_len, const char *json, size_t len,
                    int64_t expires_ms) {
  file_store *fs = (file_store *)st;
  (void)expires_ms;
  int rc = check_sid(fs, sid), hashed = 0, expired = 0;
  if (rc == CSN_OK) rc = check_given(fs, "cas", json, len, 0);
  if (rc != CSN_OK) return rc;
  char *name = file_name(fs, sid, &hashed), *cur = NULL;
  if (name == NULL) return CSN_ENOMEM;
  size_t n = 0;
  csn__buf b;
  name_lock lk;
  file_put w = FILE_PUT_INIT;
  rc = build_record(&b, json, len, sid, hashed);
  if (rc == CSN_OK && (rc = name_lock_take(fs, name, &lk)) == CSN_OK) {
    rc = load_stripped(fs, name, &cur, &n, &expired);
    if (rc == CSN_ECORRUPT) rc = CSN_ENOENT; /* as get() reports it */
    if (rc == CSN_OK &&
        (n != expected_len || memcmp(cur, expected, n) != 0))
      rc = CSN_ECONFLICT;
    if (rc == CSN_OK) rc = write_buf(fs, name, &b, &w);
    name_lock_release(&lk);
    rc = write_done(fs, rc, &w);
  }
  csn__free(cur);
  csn__buf_free(&b);
  csn__free(name);
  return rc;
}

static int file_destroy(csn_store *st, const char *sid) {
  file_store *fs = (file_store *)st;
  int rc = check_sid(fs, sid), hashed = 0;
  if (rc != CSN_OK) return rc;
  char *name = file_name(fs, sid, &hashed);
  if (name == NULL) return CSN_ENOMEM;
  name_lock lk;
  int removed = 0;
  if ((rc = name_lock_take(fs, name, &lk)) == CSN_OK) {
    if (unlinkat(fs->dirfd, name, 0) == 0)
      removed = 1;
    else if (errno != ENOENT)
      rc = csn_store_set_error(st, CSN_EIO, "cannot remove %s/%s: %s",
                               fs->dir, name, strerror(errno));
    /* The old version goes too: a logged-out session's data must not
     * linger on disk as a spare. */
    if (rc == CSN_OK) csn__fspare_drop(fs->sparefd, name);
    name_lock_release(&lk);
    if (removed) rc = dir_sync(fs, -1);
  }
  csn__free(name);
  return rc;
}

/* session-file-store's touch: re-read the stored record, give it the
 * caller's cookie and write it back, so data written by a concurrent set in
 * another process is not overwritten with this request's stale copy (under
 * the lock, so none can slip in between either). An expired record
 * restarts as {cookie} (as in session-file-store); a missing one is left
 * missing; a corrupt one is left for set() to replace. */
static int file_touch(csn_store *st, const char *sid, const char *json,
                      size_t len, int64_t expires_ms) {
  file_store *fs = (file_store *)st;
  (void)expires_ms;
  int rc = check_sid(fs, sid), expired = 0, hashed = 0;
  if (rc == CSN_OK) rc = check_given(fs, "touch", json, len, 1);
  if (rc != CSN_OK) return rc;
  char *name = file_name(fs, sid, &hashed), *cur = NULL, *out = NULL;
  if (name == NULL) return CSN_ENOMEM;
  size_t n = 0, olen = 0;
  file_put w = FILE_PUT_INIT;
  name_lock lk;
  if ((rc = name_lock_take(fs, name, &lk)) == CSN_OK) {
    rc = load_stripped(fs, name, &cur, &n, &expired);
    if (rc == CSN_OK || expired) {
      rc = csn_record_splice_cookie(expired ? "{}" : cur, expired ? 2 : n,
                                    json, len, &out, &olen);
      if (rc == CSN_OK) {
        csn__buf b;
        csn__buf_init(&b);
        csn__buf_append(&b, out, olen);
        rc = finish_record(&b, sid, hashed);
        if (rc == CSN_OK) rc = write_buf(fs, name, &b, &w);
        csn__buf_free(&b);
      } else if (rc != CSN_ENOMEM) { /* both texts were checked already */
        rc = csn_store_set_error(st, rc, "touch: cannot splice the cookie");
      }
    } else if (rc == CSN_ENOENT || rc == CSN_ECORRUPT) {
      rc = CSN_OK; /* nothing to touch */
    }
    name_lock_release(&lk);
    rc = write_done(fs, rc, &w);
  }
  csn__free(out);
  csn__free(cur);
  csn__free(name);
  return rc;
}

/* Iterate over the session files; fn returns non-zero to stop (that value
 * is returned). A directory stream of its own per call, on a dup of dirfd,
 * so concurrent listings never share a position. */
typedef int (*each_name_fn)(file_store *fs, const char *name, size_t id_len,
                            void *ud);

static int each_name_in(file_store *fs, int dirfd, each_name_fn fn,
                        void *ud) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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

static int each_name(file_store *fs, each_name_fn fn, void *ud) {
  return each_name_in(fs, fs->dirfd, fn, ud);
}

static int count_one(file_store *fs, const char *name, size_t id_len,
                     void *ud) {
  (void)fs, (void)name, (void)id_len;
  (*(size_t *)ud)++;
  return 0;
}

/* Load the live record behind a directory entry (with want_expired: the
 * expired one), with its id: the name without the extension, or __csnId
 * for a hashed name. CSN_ENOENT for anything that is not a live (an
 * expired) session of a valid id. */
static int load_named(file_store *fs, const char *name, size_t id_len,
                      int want_expired, char sid[CSN_ID_MAX + 1], char **text,
                      size_t *n) {
  json_t *rec = NULL;
  int expired = 0;
  int rc = load_record(fs, name, text, n, &rec, &expired);
  /* The expired walk takes exactly what the live one leaves out as
   * expired; load_record() keeps such a file's text and parse for it. */
  if (want_expired) rc = rc == CSN_OK ? CSN_ENOENT : expired ? CSN_OK : rc;
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
  int rc = load_named(fs, name, id_len, 0, sid, &text, &n);
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

/* Under the lock, so that a cas in flight cannot bring a cleared session
 * back. */
static int clear_one(file_store *fs, const char *name, size_t id_len,
                     void *ud) {
  (void)id_len, (void)ud;
  name_lock lk;
  int rc = name_lock_take(fs, name, &lk);
  if (rc != CSN_OK) return rc;
  if (unlinkat(fs->dirfd, name, 0) != 0 && errno != ENOENT)
    rc = csn_store_set_error(&fs->base, CSN_EIO, "cannot remove %s/%s: %s",
                             fs->dir, name, strerror(errno));
  if (rc == CSN_OK) csn__fspare_drop(fs->sparefd, name);
  name_lock_release(&lk);
  return rc;
}

/* A spare whose session is gone (removed by session-file-store, which
 * knows nothing of spares, or by a clear): drop it. The verdict is taken
 * again under the name's lock, so that a save that is moving its spare in
 * right now is not undone. */
static int orphan_one(file_store *fs, const char *name, size_t id_len,
                      void *ud) {
  (void)id_len, (void)ud;
  struct stat st;
  if (fstatat(fs->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
      errno != ENOENT)
    return 0;
  name_lock lk;
  if (name_lock_take(fs, name, &lk) != CSN_OK) return 0;
  if (fstatat(fs->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
      errno == ENOENT)
    csn__fspare_drop(fs->sparefd, name);
  name_lock_release(&lk);
  return 0;
}

static void drop_orphans(file_store *fs) {
  if (fs->sparefd >= 0) (void)each_name_in(fs, fs->sparefd, orphan_one, NULL);
}

static int file_clear(csn_store *st) {
  file_store *fs = (file_store *)st;
  int rc = each_name(fs, clear_one, NULL);
  if (rc == CSN_OK) drop_orphans(fs);
  return rc;
}

typedef struct all_ctx {
  csn_store_each_fn fn;
  void *ud;
  int want_expired; /* all_expired(): the expired records instead */
  int stopped;
} all_ctx;

static int all_one(file_store *fs, const char *name, size_t id_len,
                   void *ud) {
  all_ctx *a = ud;
  char sid[CSN_ID_MAX + 1], *text = NULL;
  size_t n = 0;
  int rc = load_named(fs, name, id_len, a->want_expired, sid, &text, &n);
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
  all_ctx a = {fn, userdata, 0, 0};
  int rc = each_name((file_store *)st, all_one, &a);
  return a.stopped ? CSN_OK : rc;
}

/* The files the reaper would remove now (record_expired(), the expiry rule
 * get() applies), read without a lock like all(). A corrupt or
 * undecryptable file is no session, expired or not, and is skipped here
 * too, although the reaper removes it once its mtime is older than ttl. */
static int file_all_expired(csn_store *st, csn_store_each_fn fn,
                            void *userdata) {
  all_ctx a = {fn, userdata, 1, 0};
  int rc = each_name((file_store *)st, all_one, &a);
  return a.stopped ? CSN_OK : rc;
}

/* Reaping. One step examines at most `reap_batch` names; the reaper pauses
 * between steps, prune() does not. */
typedef struct prune_ctx {
  size_t removed;
  size_t seen;
  size_t skip;  /* names already handled by earlier steps */
  size_t limit; /* names to examine in this step; 0: no limit */
  int64_t now;
  csn_sweeper *sw; /* the reaper's, to notice close(); NULL for prune() */
} prune_ctx;

/* Should the reaper remove this file? Missing or unreadable: no. */
static int reapable(file_store *fs, const char *name, int64_t now) {
  char *text = NULL;
  size_t n = 0;
  int64_t mtime = 0;
  int drop = 0, rc = read_file(fs, name, &text, &n, &mtime);
  /* An undecryptable file is judged like a corrupt one: by its age. */
  if (rc == CSN_OK && (rc = open_sealed(fs, name, &text, &n)) == CSN_ECORRUPT)
    drop = mtime + fs->ttl_ms < now;
  if (rc == CSN_OK) {
    json_t *rec = NULL;
    if (parse_record(fs, name, text, n, &rec) == CSN_OK)
      drop = record_expired(fs, rec, mtime, now);
    else
      drop = mtime + fs->ttl_ms < now; /* corrupt and old enough */
    json_decref(rec);
    csn__free(text);
  }
  return drop;
}

/* Judge one file, and remove it if expired. The verdict is taken again
 * under the name's lock, so that a record written since the first look is
 * never removed; the first look takes no lock, so that reading the many
 * live files (with a secret, a Node-written one costs a key derivation)
 * never holds up a writer. */
static int prune_one(file_store *fs, const char *name, size_t id_len,
                     void *ud) {
  prune_ctx *p = ud;
  (void)id_len;
  if (p->seen++ < p->skip) return 0;
  if (p->limit != 0 && p->seen > p->skip + p->limit) return 1;
  /* close() must not wait for a whole batch of derivations either. */
  if (p->sw != NULL && csn_sweeper_stopping(p->sw)) return 1;
  if (!reapable(fs, name, p->now)) return 0;

  name_lock lk;
  int rc = name_lock_take(fs, name, &lk);
  if (rc != CSN_OK) return rc;
  if (reapable(fs, name, p->now) && unlinkat(fs->dirfd, name, 0) == 0) {
    p->removed++;
    csn__fspare_drop(fs->sparefd, name);
  }
  name_lock_release(&lk);
  return 0;
}

static int file_prune(csn_store *st, size_t *removed) {
  prune_ctx p = {0, 0, 0, 0, csn__now_ms(), NULL};
  int rc = each_name((file_store *)st, prune_one, &p);
  drop_orphans((file_store *)st);
  if (removed != NULL) *removed = p.removed;
  return rc < 0 ? rc : CSN_OK;
}

/* The reaper (the kit's sweeper: monotonic clock, jittered so that the
 * processes sharing a directory do not all walk it at once): walk the
 * directory in steps of reap_batch names. A step re-lists from the start
 * and skips what earlier steps saw, which keeps no directory stream open
 * across pauses (names may come and go meanwhile; a file missed now is
 * caught next interval). */
static void reap_sweep(csn_sweeper *sw, void *ud) {
  file_store *fs = ud;
  size_t skip = 0;
  for (;;) {
    /* Skipping the names earlier steps handled costs a readdir only. */
    prune_ctx p = {0, 0, skip, fs->reap_batch, csn__now_ms(), sw};
    int rc = each_name(fs, prune_one, &p);
    if (rc < 0 || p.seen <= skip + fs->reap_batch) break;
    skip += fs->reap_batch;
    /* A short breath between steps, so that a huge directory does not
     * hold a core and the disk for the whole walk. */
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
    if (csn_sweeper_stopping(sw)) break;
  }
  if (!csn_sweeper_stopping(sw)) drop_orphans(fs);
}

static void file_close(csn_store *st) {
  file_store *fs = (file_store *)st;
  csn_sweeper_stop(fs->reaper);
  for (int i = 0; i < FILE_NLOCKS; i++) pthread_mutex_destroy(&fs->locks[i]);
  pthread_mutex_destroy(&fs->lockfd_mu);
  csn_group_free(fs->dsync);
  if (atomic_load(&fs->lockfd) >= 0) close(atomic_load(&fs->lockfd));
  if (fs->sparefd >= 0) close(fs->sparefd);
  if (fs->dirfd >= 0) close(fs->dirfd);
  csn__fcrypt_free(fs->crypt);
  csn__free(fs->dir);
  csn__free(fs->ext);
  csn__free(fs);
}

static const csn_store_methods file_methods = {
    .version = CSN_STORE_METHODS_VERSION,
    .name = "file",
    .get = file_get,
    .set = file_set,
    .destroy = file_destroy,
    .touch = file_touch,
    .clear = file_clear,
    .length = file_length,
    .all = file_all,
    .prune = file_prune,
    .close = file_close,
    .cas = file_cas,
    .all_expired = file_all_expired,
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* mkdir -p, as session-file-store does when constructed. CSN_OK,
 * CSN_ENOMEM, or CSN_EIO with errno set. (This returned -1 for a failed
 * mkdir, which is CSN_ENOMEM's value: an uncreatable directory was
 * reported as "out of memory".) */
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
      return CSN_EIO;
    }
    p[i] = c;
  }
  csn__free(p);
  return CSN_OK;
}

/* The directory must be ours alone: owned by this process's user and not
 * writable by group or others. Otherwise whoever else can write it can
 * plant or replace a session file (a directory pre-created in /tmp by
 * another user, say) and become any user of the application without the
 * secret. Not fixed up: a directory someone else set up is theirs to
 * correct. */
static int dir_trusted(file_store *fs, char *errbuf, size_t errlen) {
  struct stat st;
  if (fstat(fs->dirfd, &st) != 0)
    return csn_store_fail(errbuf, errlen, CSN_EIO,
                          "file store: cannot stat %s: %s", fs->dir,
                          strerror(errno));
  if (st.st_uid != geteuid())
    return csn_store_fail(errbuf, errlen, CSN_EPERM,
                          "file store: %s is owned by another user (uid "
                          "%lu); refusing a directory we do not own",
                          fs->dir, (unsigned long)st.st_uid);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return csn_store_fail(errbuf, errlen, CSN_EPERM,
                          "file store: %s is writable by %s (mode %03o); "
                          "refusing it: chmod go-w it, or use a private "
                          "directory",
                          fs->dir,
                          (st.st_mode & S_IWOTH) ? "others" : "its group",
                          (unsigned)(st.st_mode & 0777));
  return CSN_OK;
}

int csn_store_file_new(const csn_file_options *opts, csn_store **out,
                       char *errbuf, size_t errlen) {
  csn_file_options o = {0};
  if (opts != NULL) o = *opts;
  if (out == NULL)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "file store: no output pointer");
  *out = NULL;
  if (o.dir == NULL || o.dir[0] == '\0') o.dir = "./sessions";
  if (o.ext == NULL) o.ext = ".json";
  if (o.ttl_ms == 0) o.ttl_ms = FILE_DEFAULT_TTL_MS;
  if (o.reap_interval_ms == 0) o.reap_interval_ms = FILE_DEFAULT_REAP_MS;
  if (o.reap_batch == 0) o.reap_batch = FILE_DEFAULT_BATCH;
  if (o.ttl_ms < 0 || strlen(o.ext) > FILE_EXT_MAX || strchr(o.ext, '/'))
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "file store: bad ttl or extension");
  /* kruptein refuses an empty secret too ("Must supply a secret!"). */
  if (o.secret != NULL && o.secret[0] == '\0')
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "file store: empty secret");

  file_store *fs = csn__calloc(1, sizeof *fs);
  if (fs == NULL)
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                          "file store: out of memory");
  fs->base.m = &file_methods;
  fs->dirfd = -1;
  fs->sparefd = -1;
  atomic_init(&fs->recycle, 0);
  atomic_init(&fs->lockfd, -1);
  atomic_init(&fs->lockfd_pid, 0);
  fs->dir = csn__strdup(o.dir);
  fs->ext = csn__strdup(o.ext);
  if (fs->dir == NULL || fs->ext == NULL) {
    csn__free(fs->dir);
    csn__free(fs->ext);
    csn__free(fs);
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                          "file store: out of memory");
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
  pthread_mutex_init(&fs->lockfd_mu, NULL);
  fs->no_fsync = o.no_fsync != 0;

  int rc = csn_group_new(&fs->dsync, run_dir_sync, fs);
  if (rc != CSN_OK)
    rc = csn_store_fail(errbuf, errlen, rc,
                        "file store: cannot set up the shared fsync: %s",
                        csn_strerror(rc));
  /* The secret is non-empty, so only memory can fail. */
  if (rc == CSN_OK && o.secret != NULL &&
      csn__fcrypt_new(o.secret, &fs->crypt) != CSN_OK)
    rc = csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                        "file store: out of memory");

  /* Create, open and list the directory now, so a missing permission is a
   * clear error at start-up rather than a 500 on the first request. */
  if (rc == CSN_OK && (rc = make_dirs(fs->dir)) != CSN_OK) {
    if (rc == CSN_ENOMEM)
      rc = csn_store_fail(errbuf, errlen, rc, "file store: out of memory");
    else
      rc = csn_store_fail(errbuf, errlen, CSN_EIO,
                          "file store: cannot create %s: %s", fs->dir,
                          strerror(errno));
  } else if (rc == CSN_OK &&
             (fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) <
                 0) {
    rc = csn_store_fail(errbuf, errlen, CSN_EIO,
                        "file store: cannot open directory %s: %s", fs->dir,
                        strerror(errno));
  } else if (rc == CSN_OK && (rc = dir_trusted(fs, errbuf, errlen)) != CSN_OK) {
    /* dir_trusted() said why. */
  } else if (rc == CSN_OK) {
    size_t n = 0;
    if (each_name(fs, count_one, &n) != CSN_OK)
      rc = csn_store_fail(errbuf, errlen, CSN_EIO,
                          "file store: cannot list directory %s: %s", fs->dir,
                          csn_store_errmsg(&fs->base));
  }
  if (rc == CSN_OK) {
    /* The lock file now if we may; a read-only directory is fine for
     * reading, and lock_fd() tries again at the first write. */
    int fd = lock_open(fs);
    if (fd >= 0) {
      atomic_store(&fs->lockfd, fd);
      atomic_store(&fs->lockfd_pid, getpid());
    }
    /* Spare files where the directory and the file system allow them; a
     * read-only directory, or a spare directory that is not ours alone,
     * leaves saves the plain way (file_spare.c). */
    if (!o.no_recycle && csn__fspare_dir_open(fs->dirfd, &fs->sparefd) == 0)
      atomic_store(&fs->recycle, 1);
    csn__fdirsync_init(&fs->dsync_skip, fs->dirfd, !o.always_dirsync);
    /* The flush before a group's swaps needs the lock file. */
    int journal = o.always_dirsync || fd < 0
                      ? -1
                      : csn__fdirsync_journal(fs->dirfd);
    fs->flush_mode = journal == CSN_FDIRSYNC_JOURNAL     ? FILE_FLUSH_DIR
                     : journal == CSN_FDIRSYNC_NOJOURNAL ? FILE_FLUSH_GROUP
                                                         : FILE_FLUSH_NONE;
  }
  if (rc == CSN_OK && fs->reap_ms > 0 &&
      csn_sweeper_start(&fs->reaper, fs->reap_ms, FILE_REAP_JITTER_PCT,
                        reap_sweep, fs) != CSN_OK)
    rc = csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                        "file store: cannot start the reaper thread");
  if (rc != CSN_OK) {
    file_close(&fs->base);
    return rc;
  }
  *out = &fs->base;
  return CSN_OK;
}

int csn_store_file_open(const char *url, csn_store **out, char *errbuf,
                        size_t errlen) {
  const char *path = NULL, *query = NULL;
  size_t plen = 0;
  if (out != NULL) *out = NULL;
  if (out == NULL || csn_url_split(url, "file", &path, &plen, &query) != 0)
    return csn_store_fail(errbuf, errlen, CSN_EINVAL,
                          "file store: URL must start with file://");
  /* Defaults that say "not given": the options' own zero values. */
  int64_t ttl_s = 0, reap_s = INT64_MIN;
  int do_fsync = 1, do_recycle = 1;
  char *ext = NULL, *secret = NULL, *secret_file = NULL, *dirsync = NULL;
  const csn_url_option opts[] = {
      {"ttl", CSN_URL_INT, 1, INT64_C(9000000000000), &ttl_s},
      {"reap", CSN_URL_INT, -1, INT64_C(9000000000000), &reap_s},
      {"ext", CSN_URL_STR, 0, 0, &ext},
      {"secret", CSN_URL_STR, 0, 0, &secret},
      {"secret_file", CSN_URL_STR, 0, 0, &secret_file},
      {"fsync", CSN_URL_BOOL, 0, 0, &do_fsync},
      {"recycle", CSN_URL_BOOL, 0, 0, &do_recycle},
      {"dirsync", CSN_URL_STR, 0, 0, &dirsync},
  };
  char *dir = csn__strndup(path, plen);
  if (dir == NULL)
    return csn_store_fail(errbuf, errlen, CSN_ENOMEM,
                          "file store: out of memory");
  /* Its messages name a bad parameter, never a value (the secret). */
  int rc = csn_url_parse_query(query, opts, CSN__ARRAY_SIZE(opts),
                               "file store", errbuf, errlen);
  if (rc == CSN_OK && ext != NULL && strlen(ext) > FILE_EXT_MAX)
    rc = csn_store_fail(errbuf, errlen, CSN_EINVAL,
                        "file store: URL parameter 'ext' is longer than %d "
                        "bytes",
                        FILE_EXT_MAX);
  if (rc == CSN_OK && dirsync != NULL && strcmp(dirsync, "auto") != 0 &&
      strcmp(dirsync, "always") != 0)
    rc = csn_store_fail(errbuf, errlen, CSN_EINVAL,
                        "file store: URL parameter 'dirsync' must be auto "
                        "or always");
  /* The key from a private file: a URL with ?secret= on a command line is
   * readable by every local user (/proc/PID/cmdline). */
  if (rc == CSN_OK && secret_file != NULL && secret != NULL)
    rc = csn_store_fail(errbuf, errlen, CSN_EINVAL,
                        "file store: give secret or secret_file, not both");
  else if (rc == CSN_OK && secret_file != NULL) {
    char why[256] = "";
    rc = csn_secret_read_file(secret_file, &secret, why, sizeof why);
    if (rc != CSN_OK)
      csn_store_fail(errbuf, errlen, rc, "file store: %s", why);
  }
  if (rc == CSN_OK) {
    csn_file_options o = {0};
    o.dir = plen > 0 ? dir : NULL;
    o.ext = ext;
    o.ttl_ms = ttl_s * 1000;
    if (reap_s != INT64_MIN) o.reap_interval_ms = reap_s <= 0 ? -1 : reap_s * 1000;
    o.secret = secret;
    o.no_fsync = !do_fsync;
    o.no_recycle = !do_recycle;
    o.always_dirsync = dirsync != NULL && strcmp(dirsync, "always") == 0;
    rc = csn_store_file_new(&o, out, errbuf, errlen);
  }
  if (secret != NULL) {
    /* The store keeps its own copy; do not leave this one in the heap. */
    csn_free_secret(secret);
  }
  csn__free(secret_file);
  csn__free(dirsync);
  csn__free(ext);
  csn__free(dir);
  return rc;
}
