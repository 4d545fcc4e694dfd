/* file_spare.c - spare files: saving a returning session without freeing
 * and allocating a file each time.
 *
 * Why. A durable save replaces the session file by renaming a new file
 * over it (file.c). The rename frees the replaced file's inode and blocks,
 * and the next save allocates new ones. On a file system mounted with
 * -o discard (common on SSDs and cloud disks) every freed block becomes a
 * discard request that the journal commit waits for, so each save of a
 * returning visitor costs a discard on top of its two fsyncs; on the
 * machine behind docs/BENCHMARKS.md that halved the store's throughput.
 * Allocating and freeing also dirties the bitmaps that every commit writes.
 *
 * What. The replaced version is not freed but kept as the session's spare,
 * "<dir>/.csn-spare/<name>". The next save of the same session rewrites
 * the spare in place (same inode, same blocks: an fdatasync of an
 * overwrite needs no journal commit), then swaps it with the live file in
 * one atomic renameat2(RENAME_EXCHANGE): the new version becomes live and
 * the old one becomes the spare again. A reader opening the live name
 * sees the old or the new complete file, as with a plain rename, and a
 * crash in the middle of the rewrite tears only the spare, which nobody
 * reads.
 *
 * The danger, and the lease. A reader that opened the live file before a
 * swap still holds the old version, now the spare. Rewriting the spare in
 * place while it reads would hand it a torn or newer file: our own
 * readers would see a corrupt record, and session-file-store deletes a
 * file it cannot parse. (Its reads are several steps apart on the event
 * loop, so a busy Node process can hold a file open for a long time.) So
 * a spare is reused only when nobody else has it open, which Linux can
 * tell: a write lease (F_SETLEASE F_WRLCK) is granted only when no other
 * open file description of the inode exists, in any process. The lease is
 * taken and released at once; it is a question, not a lock. A spare that
 * is open elsewhere is unlinked instead (the reader keeps its copy, freed
 * at its close) and a new file is written, as a plain save would.
 *
 * Nobody can open the spare after the question either: its only name is
 * in a directory private to us, which no reader looks into. Were some
 * program (a backup, say) to open it in the instant the lease is held,
 * the kernel would send our process the lease-break signal; it is set to
 * SIGURG, whose default action is to ignore it, instead of SIGIO, whose
 * default would end the process.
 *
 * Limits. Leases exist on local file systems only (not NFS) and only for
 * files we own; without them, or without RENAME_EXCHANGE, take() and
 * install() return -ENOTSUP and the store saves the plain way from then
 * on. A spare costs one inode (a block) per session that was saved twice;
 * the store drops it with the session (destroy, clear, the reaper) and the
 * reaper drops spares whose session is gone (removed by Node, say).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_spare.h"

#if defined(RENAME_EXCHANGE) && defined(F_SETLEASE) && defined(F_SETSIG)
#define FSPARE_OK 1
#else
#define FSPARE_OK 0
#endif

int csn__fspare_dir_open(int dirfd, int *fd) {
  *fd = -1;
  if (!FSPARE_OK) return -ENOTSUP; /* and never a spare directory */
  if (mkdirat(dirfd, CSN_FSPARE_DIR, 0700) != 0 && errno != EEXIST)
    return -errno;
  int d = openat(dirfd, CSN_FSPARE_DIR,
                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (d < 0) return -errno;
  /* Ours alone, like the store's directory: whoever else could write it
   * could plant a spare that becomes a live session at our next swap. */
  struct stat st;
  if (fstat(d, &st) != 0 || st.st_uid != geteuid() ||
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    close(d);
    return -EPERM;
  }
  *fd = d;
  return 0;
}

#if FSPARE_OK
/* Is the spare open fd ours to rewrite? 1 yes, 0 no (someone else has it
 * open, or it is not a plain file of ours), -ENOTSUP when the file system
 * cannot answer. */
static int spare_reusable(int fd, off_t *size) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
      st.st_uid != geteuid())
    return 0;
  /* The lease-break signal, were one to come (see the essay). */
  if (fcntl(fd, F_SETSIG, SIGURG) != 0) return -ENOTSUP;
  if (fcntl(fd, F_SETLEASE, F_WRLCK) != 0) {
    /* EAGAIN/EBUSY: open elsewhere. Anything else: no leases here. */
    return errno == EAGAIN || errno == EBUSY ? 0 : -ENOTSUP;
  }
  (void)fcntl(fd, F_SETLEASE, F_UNLCK);
  *size = st.st_size;
  return 1;
}

#endif

int csn__fspare_take(int sparefd, const char *name, int *fd, int *reused,
                     off_t *size) {
  *fd = -1;
  *reused = 0;
  *size = 0;
#if !FSPARE_OK
  (void)sparefd, (void)name;
  return -ENOTSUP;
#else
  /* O_NONBLOCK: a FIFO planted here would otherwise block the open, and
   * an open must never wait for a lease someone else holds. */
  int f = openat(sparefd, name,
                 O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (f >= 0) {
    int ok = spare_reusable(f, size);
    if (ok == 1) {
      *fd = f;
      *reused = 1;
      return 0;
    }
    close(f);
    if (ok < 0) return ok;
  }
  /* One we must not touch (or could not open) goes first; with no spare
   * at all (a new session) there is nothing to remove. */
  if ((f >= 0 || errno != ENOENT) && unlinkat(sparefd, name, 0) != 0 &&
      errno != ENOENT)
    return -errno;
  /* A new file in its place. */
  f = openat(sparefd, name,
             O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (f < 0) return -errno;
  *fd = f;
  return 0;
#endif
}

int csn__fspare_install(int sparefd, int dirfd, const char *name,
                        int only_new) {
#if !FSPARE_OK
  (void)sparefd, (void)dirfd, (void)name, (void)only_new;
  return -ENOTSUP;
#else
  unsigned how = only_new ? RENAME_NOREPLACE : RENAME_EXCHANGE;
  if (renameat2(sparefd, name, dirfd, name, how) == 0) return 0;
  if (errno == EINVAL || errno == ENOSYS) return -ENOTSUP;
  if (only_new || errno != ENOENT) return -errno;
  /* No live file (a new session, or one removed meanwhile): move in. */
  if (renameat(sparefd, name, dirfd, name) != 0) return -errno;
  return 0;
#endif
}

void csn__fspare_drop(int sparefd, const char *name) {
  if (sparefd >= 0) (void)unlinkat(sparefd, name, 0);
}

/* The flush a rewrite shares. A returning session's save made two syncs
 * one after the other: the spare's data (fdatasync), then, after the
 * swap, the directory (fsync, shared by the saves in flight, file.c).
 * Each ends in a cache flush of the device, and a flush makes durable
 * every write the device completed before it. When the rewrite needs
 * nothing but its data blocks on disk - an overwrite of blocks already
 * allocated and written, at the file's own size, so neither the inode nor
 * the block map changes - it is enough to write them and wait for the
 * device to complete them (sync_file_range WAIT_BEFORE|WRITE|WAIT_AFTER,
 * which writes no metadata and flushes nothing), provided a flush comes
 * after that and before the swap can reach the disk. The swap must not
 * get there first: a crash would then leave the live name on the spare's
 * older contents, losing the version acknowledged last.
 *
 *   - ext4 with its journal inside the file system: the swap is a journal
 *     transaction, and nothing of it reaches its place on disk before its
 *     commit, which starts with a flush (or, when the commit is already
 *     done, fsync flushes by itself). So the directory fsync after the
 *     swap is the flush: file.c's FILE_FLUSH_DIR.
 *   - ext4 without a journal: the directory's block is written in place,
 *     by our directory fsync or by writeback at any moment after the
 *     swap. So the flush must come before the swap. The saves in flight
 *     share it: each queues its written spare on the directory fsync's
 *     group, and the group's leader flushes once, swaps every queued spare
 *     in, then fsyncs the directory (FILE_FLUSH_GROUP). A group of n
 *     rewrites costs two flushes instead of n + 1.
 *
 * That leans on what the file system does, so file.c takes this way only
 * where it was read and checked: ext4, told apart by file_dirsync.c
 * (csn__fdirsync_journal(); a journal on another device flushes that
 * device, not ours, and is left out). Spares are plain files written
 * through the page cache (never fallocated, so no unwritten extents to
 * convert) and ext4 overwrites such blocks in place. On a copy-on-write
 * file system (btrfs, or XFS with shared extents) an overwrite moves the
 * blocks and the new block map needs the file's own sync: there, at a
 * different size, and with dirsync=always, the rewrite keeps its
 * fdatasync. Where sync_file_range is missing this is an fdatasync.
 * Measured in docs/BENCHMARKS.md ("Device requests per request"). */
int csn__fspare_write_out(int fd) {
#if FSPARE_OK && defined(SYNC_FILE_RANGE_WRITE)
  return sync_file_range(fd, 0, 0,
                         SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                             SYNC_FILE_RANGE_WAIT_AFTER);
#else
  return fdatasync(fd);
#endif
}
