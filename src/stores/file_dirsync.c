/* file_dirsync.c - when a new session file needs no directory fsync.
 *
 * Why. POSIX promises that fsync() makes a file's data and attributes
 * durable, not the directory entry that names it; so a durable save
 * fsyncs the file and then the directory (file.c), and a new session
 * pays for both. On ext4 without a journal (the machine behind
 * docs/BENCHMARKS.md) the second one, after the file's fsync has written
 * the entry, still writes the directory's inode (its times) and flushes
 * the disk cache (skipping it cut a new visitor's flushes by 44%, its
 * writes by 16%). With a journal, and
 * on XFS, the kernel already finds nothing left to write or flush (counted
 * in /proc/diskstats on loop-mounted file systems), so skipping it there
 * saves only the system call and the wait for the shared fsync.
 *
 * When ext4 writes the entry with the file. Only for a file that was
 * linked into the directory under a new name (a new session's file,
 * moved in with RENAME_NOREPLACE) and fsynced after that:
 *   - With a journal: the rename changes the inode (its ctime) in the same
 *     journal transaction as the directory entry, and fsync() commits the
 *     transaction holding the inode's last change, entry included.
 *   - Without a journal: an inode that has just been given a directory
 *     entry is flagged, and fsync() of a flagged inode also writes the
 *     dirty blocks of its parent directory (ext4_sync_parent(), whose
 *     comment says why: otherwise "a crash may lose the file"; it follows
 *     the dentry, so after a rename the parent is the new directory). It
 *     does not write the directory's inode, though: its times, and its
 *     size and block map, which change only when the directory grows into
 *     a new block (an ext4 directory never shrinks).
 * Traced on this project's machine (block_rq_issue, ext4 without a
 * journal): the file's fsync wrote the data block, the file's inode and
 * the directory block holding the new entry; the directory's fsync then
 * wrote the directory's inode alone.
 *
 * So the rule: a new file needs no directory fsync when the directory is
 * on ext4 and its size is what it was when the last successful directory
 * fsync started (that fsync wrote the inode with at least that size).
 * Any growth, a directory never synced by this store yet, or an unknown
 * size, and the directory fsync is made as before. A replaced session
 * always gets it: its rename (an exchange) links no new name, so nothing
 * flags the inode.
 *
 * Recognising ext4. The statfs magic alone is not enough: ext2, ext3 and
 * ext4 share one, and the old ext2 driver does none of the above. So the
 * mount type the kernel reports for the directory's device in
 * /proc/self/mountinfo must be "ext4" as well. Anything else (XFS, btrfs,
 * tmpfs, NFS, overlayfs, FUSE, no /proc) keeps the directory fsync, as
 * does dirsync=always (csn_store_file.h).
 *
 * Its journal (csn__fdirsync_journal(), for file_spare.c's shared flush,
 * which needs to know whether the directory's blocks reach the disk only
 * through journal commits). ext4 names its journal thread in
 * /sys/fs/ext4/<device>/journal_task, "<none>" without a journal; jbd2
 * lists each journal in /proc/fs/jbd2, one kept in an inode of the file
 * system as "<device>-<inode>", one on a device of its own under that
 * device's bare name. A journal on another device is left out: its commits
 * flush that device, not the one holding the files. Checked on this
 * machine's disk (no journal) and on loop-mounted images with an inside
 * and an external journal; no sysfs or procfs is no answer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#endif

#include "file_dirsync.h"

#define FDIRSYNC_EXT4_MAGIC 0xEF53UL

int csn__fdirsync_mount_type(const char *line, unsigned major, unsigned minor,
                             char *type, size_t n) {
  unsigned ma = 0, mi = 0;
  if (n == 0 || sscanf(line, "%*s %*s %u:%u", &ma, &mi) != 2) return 0;
  if (ma != major || mi != minor) return 0;
  /* Paths escape their spaces (\040), so the first " - " ends the
   * optional fields; the type is the word after it. */
  const char *sep = strstr(line, " - ");
  if (sep == NULL) return 0;
  const char *t = sep + 3;
  size_t len = strcspn(t, " \n");
  if (len == 0 || len >= n) return 0;
  memcpy(type, t, len);
  type[len] = '\0';
  return 1;
}

int csn__fdirsync_journal_inside(const char *dev, const char *entry) {
  size_t n = strlen(dev);
  if (n == 0 || strncmp(entry, dev, n) != 0 || entry[n] != '-') return 0;
  const char *p = entry + n + 1;
  if (*p == '\0') return 0;
  while (*p >= '0' && *p <= '9') p++;
  return *p == '\0';
}

#ifdef __linux__
/* The mount type of device dev, from /proc/self/mountinfo; 0 if none. */
static int mount_type_of(dev_t dev, char *type, size_t n) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL) return 0;
  char *line = NULL;
  size_t cap = 0;
  int found = 0;
  while (!found && getline(&line, &cap, f) > 0)
    found = csn__fdirsync_mount_type(line, major(dev), minor(dev), type, n);
  free(line); /* getline's buffer: libc's allocator, not ours */
  fclose(f);
  return found;
}

int csn__fdirsync_covered(int dirfd) {
  struct stat st;
  struct statfs sf;
  char type[32];
  if (fstat(dirfd, &st) != 0 || fstatfs(dirfd, &sf) != 0) return 0;
  if ((unsigned long)sf.f_type != FDIRSYNC_EXT4_MAGIC) return 0;
  return mount_type_of(st.st_dev, type, sizeof type) &&
         strcmp(type, "ext4") == 0;
}

/* The kernel's name of block device dev ("vda", "sda1", "dm-0"): the last
 * part of where /sys/dev/block/MAJ:MIN points. */
static int block_name(dev_t dev, char *name, size_t n) {
  char link[64], target[512];
  snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(dev), minor(dev));
  ssize_t len = readlink(link, target, sizeof target - 1);
  if (len <= 0) return 0;
  target[len] = '\0';
  const char *base = strrchr(target, '/');
  base = base != NULL ? base + 1 : target;
  return *base != '\0' && (size_t)snprintf(name, n, "%s", base) < n;
}

/* The journal, read from sysfs and procfs: ext4 reports "<none>" as its
 * journal thread when it has none, and jbd2 names a journal kept in an
 * inode of the file system "<device>-<inode>" in /proc/fs/jbd2 (one on
 * another device gets that device's bare name). */
int csn__fdirsync_journal(int dirfd) {
  struct stat st;
  char dev[64], path[160], task[32] = "";
  if (!csn__fdirsync_covered(dirfd) || fstat(dirfd, &st) != 0 ||
      !block_name(st.st_dev, dev, sizeof dev))
    return -1;
  snprintf(path, sizeof path, "/sys/fs/ext4/%s/journal_task", dev);
  FILE *f = fopen(path, "re");
  if (f == NULL) return -1;
  int got = fgets(task, sizeof task, f) != NULL;
  fclose(f);
  if (!got) return -1;
  if (strncmp(task, "<none>", 6) == 0) return CSN_FDIRSYNC_NOJOURNAL;
  DIR *d = opendir("/proc/fs/jbd2");
  if (d == NULL) return -1;
  int inside = 0;
  struct dirent *e;
  while (!inside && (e = readdir(d)) != NULL)
    inside = csn__fdirsync_journal_inside(dev, e->d_name);
  closedir(d);
  return inside ? CSN_FDIRSYNC_JOURNAL : -1;
}
#else
int csn__fdirsync_covered(int dirfd) {
  (void)dirfd;
  return 0; /* ext4 is Linux's */
}

int csn__fdirsync_journal(int dirfd) {
  (void)dirfd;
  return -1;
}
#endif

void csn__fdirsync_init(csn__fdirsync *ds, int dirfd, int allow) {
  ds->covered = allow && csn__fdirsync_covered(dirfd);
  atomic_init(&ds->durable_size, -1);
}

int64_t csn__fdirsync_size(int dirfd) {
  struct stat st;
  return fstat(dirfd, &st) == 0 ? (int64_t)st.st_size : -1;
}

int csn__fdirsync_needed(csn__fdirsync *ds, int dirfd) {
  if (!ds->covered) return 1;
  int64_t durable = atomic_load(&ds->durable_size);
  return durable < 0 || csn__fdirsync_size(dirfd) != durable;
}

void csn__fdirsync_done(csn__fdirsync *ds, int64_t size_before) {
  if (size_before < 0) return;
  /* Sizes only grow, and concurrent leaders cannot finish out of order
   * (one directory fsync at a time, file.c), but keep the larger anyway. */
  int64_t cur = atomic_load(&ds->durable_size);
  while (cur < size_before &&
         !atomic_compare_exchange_weak(&ds->durable_size, &cur, size_before)) {
  }
}
