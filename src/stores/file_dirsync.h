/* file_dirsync.h - when a new session file needs no directory fsync: the
 * fsync of a file just linked into a directory also makes that entry
 * durable on some file systems (see the essay in file_dirsync.c). Private
 * to src/stores.
 */
#ifndef CSN_FILE_DIRSYNC_H
#define CSN_FILE_DIRSYNC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Per store directory. `covered` is fixed at init; `durable_size` is the
 * directory's size at the start of the last directory fsync that
 * succeeded (-1: none yet). */
typedef struct csn__fdirsync {
  int covered;
  _Atomic int64_t durable_size;
} csn__fdirsync;

/* Set ds up for the directory dirfd: covered when `allow` and the
 * directory is on ext4 (csn__fdirsync_covered()). */
void csn__fdirsync_init(csn__fdirsync *ds, int dirfd, int allow);

/* After a file newly linked into dirfd (created there, or renamed in under
 * a name that did not exist) has been fsynced: 1 when the directory still
 * needs its fsync for that entry to be durable, 0 when the file's fsync
 * made it durable. Thread-safe. */
int csn__fdirsync_needed(csn__fdirsync *ds, int dirfd);

/* The directory's size now, for csn__fdirsync_done(); -1 if unknown. */
int64_t csn__fdirsync_size(int dirfd);

/* A directory fsync that started when the directory had `size_before`
 * bytes (csn__fdirsync_size() just before it) has succeeded. */
void csn__fdirsync_done(csn__fdirsync *ds, int64_t size_before);

/* 1 when the directory dirfd is on ext4 (with or without a journal),
 * recognised by both its mount type in /proc/self/mountinfo and its statfs
 * magic; 0 for every other file system, and whenever the answer cannot be
 * read (no /proc). */
int csn__fdirsync_covered(int dirfd);

/* The journal of dirfd's file system, when it is ext4: CSN_FDIRSYNC_NOJOURNAL
 * or CSN_FDIRSYNC_JOURNAL (kept inside the file system). -1 for anything
 * else: another file system, an ext4 whose journal is on another device
 * (its commits flush that device, not ours), or when sysfs and procfs
 * cannot tell. On both answers a directory fsync always ends in a cache
 * flush of the device holding the files (file_spare.c relies on it). */
#define CSN_FDIRSYNC_NOJOURNAL 0
#define CSN_FDIRSYNC_JOURNAL 1
int csn__fdirsync_journal(int dirfd);

/* Whether entry, a name in /proc/fs/jbd2, is the journal kept inside the
 * file system on block device dev ("vda" and "vda-8"). Exposed for the
 * tests. */
int csn__fdirsync_journal_inside(const char *dev, const char *entry);

/* One line of /proc/self/mountinfo: when its device (third field,
 * "major:minor") is major:minor, copy its file system type (the field
 * after the " - " separator) into type (at most n - 1 bytes, NUL
 * terminated) and return 1; 0 for another device or a line that does not
 * parse. Exposed for the tests. */
int csn__fdirsync_mount_type(const char *line, unsigned major, unsigned minor,
                             char *type, size_t n);

#endif
