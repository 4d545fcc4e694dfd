/* file_spare.h - the FileStore's spare files: the replaced version of a
 * session file, kept to be rewritten in place by the next save of the same
 * session (see the essay in file_spare.c). Private to src/stores.
 *
 * Every function works on descriptors and names only and keeps no state:
 * the caller (file.c) holds the session's lock around take/install/drop,
 * so one spare is only ever used by one writer at a time.
 */
#ifndef CSN_FILE_SPARE_H
#define CSN_FILE_SPARE_H

#include <stddef.h>
#include <sys/types.h>

/* The spare directory's name inside the store's directory. Hidden, so
 * neither our listing nor session-file-store's (names ending in the
 * extension) ever takes it for a session. */
#define CSN_FSPARE_DIR ".csn-spare"

/* Without renameat2 RENAME_EXCHANGE and file leases (not Linux) every
 * function below returns -ENOTSUP and the store saves the plain way. */

/* Open (creating it 0700 if missing) the spare directory under dirfd.
 * 0 with *fd set, or a negative errno: -EPERM when it exists but is not a
 * directory private to this user (it is then not used). */
int csn__fspare_dir_open(int dirfd, int *fd);

/* A descriptor, open for writing, on the spare for `name`: the existing
 * spare when nobody else can read it (*reused = 1, *size its current
 * size), else a new empty file (*reused = 0; an existing spare someone
 * still holds open is unlinked first). 0, or a negative errno; -ENOTSUP
 * when the file system has no leases or the build no recycling (the caller
 * then stops recycling). */
int csn__fspare_take(int sparefd, const char *name, int *fd, int *reused,
                     off_t *size);

/* Put the written spare in place of the live file atomically, the live
 * version becoming the spare (RENAME_EXCHANGE); with no live file, just
 * move it in. With only_new, move it in only if there is no live file (a
 * new session; RENAME_NOREPLACE): -EEXIST, nothing changed, when there
 * is. 0, or a negative errno (-ENOTSUP: the file system cannot exchange
 * or refuse a replace; nothing was changed). */
int csn__fspare_install(int sparefd, int dirfd, const char *name,
                        int only_new);

/* Remove the spare of `name`, if any (a destroy, clear or reap of the
 * session). Errors are ignored: a spare left behind is reaped later. */
void csn__fspare_drop(int sparefd, const char *name);

/* Write the rewritten spare fd's data to the device and wait for the
 * device to complete it, with no cache flush: the caller makes it durable
 * with a flush before the swap can reach the disk (see "The flush" in
 * file_spare.c). 0, or -1 with errno set. */
int csn__fspare_write_out(int fd);

#endif
