/* csn_store_file.h - FileStore: one JSON file per session, in the layout of
 * session-file-store 1.5.0, so a Node app using that package can share the
 * directory with a C server.
 *
 * Layout and expiry (stores.md section 4):
 *   - <dir>/<id><ext>, ext ".json" by default; the content is the record
 *     express-session stores, with "__lastAccess" (epoch ms of the last
 *     write) added as the last member, compact JSON, no trailing newline.
 *   - A record is expired when __lastAccess + L < now, where L is
 *     cookie.originalMaxAge when it is a non-zero number, else ttl
 *     (session-file-store's rule), or, in addition, when cookie.expires has
 *     passed (express-session keeps expires = last access + maxAge, so the
 *     two agree for Node's records). The expires_ms argument of set/touch is
 *     not stored separately: the record's cookie carries it.
 *
 * Where we differ from session-file-store, on purpose:
 *   - get() returns the record without "__lastAccess" (the store's own
 *     bookkeeping); set() stamps a fresh one. A Node reader still sees it.
 *   - Writes are atomic and durable: a temporary file "<id><ext>.<random
 *     u32>" in the same directory, write, fsync, rename, fsync of the
 *     directory (or, since 0.2, a rewrite of the session's spare file and
 *     an atomic swap: "Spare files" below). A crash never tears a session
 *     file that a save has returned for. (Since 0.2 a new session's file,
 *     which no earlier version can stand in for, is moved in before its
 *     fsync, so that one journal commit covers both; a power cut before
 *     that save returns may leave it empty or partial, which reads as
 *     corrupt: not found, and reaped.) Files are created
 *     with mode 0600 (sessions hold user data). destroy() fsyncs the
 *     directory after the unlink too (since 0.2), so a logout survives a
 *     power cut as well.
 *   - Ids are checked with csn_store_id_valid() before they become a path
 *     (CSN_EINVAL otherwise).
 *   - A corrupt or foreign file (not a JSON object, or larger than 16 MiB)
 *     is reported through csn_store_errmsg() and treated as not found: get()
 *     returns CSN_ENOENT and leaves the file in place for inspection; the
 *     next set() of that id replaces it, and the reaper removes it once its
 *     modification time is older than ttl. session-file-store deletes it at
 *     once and fails the request.
 *   - A record without a numeric "__lastAccess" expires from the file's
 *     modification time (session-file-store never expires it).
 *   - touch() of a missing id is not an error (session-file-store answers
 *     ENOENT); touch() of an expired record rewrites it as {cookie,
 *     __lastAccess}, as session-file-store does.
 *   - No read retries (they exist for Windows rename races).
 *   - Reaping runs on a background thread; each pass examines at most
 *     `reap_batch` files between short pauses, so a huge directory never
 *     monopolises a core, and close() stops it promptly.
 *   - length() and all() see live records only (session-file-store's length
 *     counts every file); both read every file.
 *   - Records are edited as text: get() returns the bytes set() was given
 *     (numbers and escapes untouched), touch() swaps only the cookie's text.
 *   - An id too long for a file name (id + ext > 255 bytes) is stored as
 *     "~<sha256 hex><ext>" with the id in a "__csnId" member (stripped by
 *     get() like __lastAccess); no Node store can hold such an id anyway.
 *
 * Encryption (session-file-store's `secret`). With a secret set
 * (csn_file_options.secret or "?secret=") every file is written and read in
 * the format session-file-store 1.5.0 produces with `secret` and its default
 * `crypto` options (kruptein 2.x: AES-256-GCM, key = scrypt N=16384 r=8 p=1
 * over a 128-byte salt stored in the file, HMAC-SHA512; stores.md 4.9), so
 * a Node app and a C server sharing the directory and the secret read each
 * other's sessions. A custom `crypto` object on the Node side (PBKDF2,
 * asn1, another cipher) is not supported. Differences:
 *   - A file that cannot be decrypted (another secret, altered content, or a
 *     plaintext file left from before the secret was set) is reported
 *     through csn_store_errmsg() and treated as not found, like a corrupt
 *     file (above); the reaper removes it once older than ttl.
 *     session-file-store throws there and the Node process crashes.
 *   - Cost: scrypt takes about 50 ms of CPU and 16 MiB per derivation.
 *     session-file-store derives a key on every read and every write. We
 *     derive one write key per store and reuse it (with a fresh IV per file,
 *     and a new salt every 2^20 writes) and cache the keys of the last 64
 *     salts read, so our own files cost no scrypt after the first write;
 *     each new version of a file written by Node still costs one derivation
 *     when first read. The format is unchanged: Node reads our files as its
 *     own.
 *   - Files may be up to 48 MiB (sealing makes a record about 2.6 times
 *     larger) instead of 16 MiB.
 *   - Nothing without the secret can tell an expired file from a live one
 *     (__lastAccess is inside the ciphertext); as in session-file-store,
 *     only a store holding the secret reaps.
 *
 * Durability (since 0.2). By default set, touch, cas and destroy return
 * only once their file and directory entry are on disk (fsync of the file,
 * rename, fsync of the directory). Concurrent writers share the directory
 * fsync: one fsync covers every rename made before it starts, so a burst of
 * N saves costs N file fsyncs (which the file system's journal also
 * batches when they run at once) and a few directory fsyncs, not 2N.
 * Throughput therefore grows with the number of saves in flight: a server
 * on this store wants more worker threads than cores (say 8 to 32), since
 * each blocks for its fsyncs. On ext4 (with or without a journal) a new
 * session costs one fsync, not two: its file is moved in under its name
 * before its fsync, and ext4's fsync of a file just given a name writes
 * that directory entry too (by design: see file_dirsync.c; without a
 * journal it does not write the directory's size, so the store still
 * fsyncs the directory whenever it has grown since its last directory
 * fsync). A returning session whose record keeps its size costs no
 * cache flush of its own on ext4 (since 0.2): its spare file (below) is
 * overwritten in place and its data written without a flush, and one
 * flush then covers every save in flight (with a journal, the directory
 * fsync's; without one, a flush the saves share before their swaps,
 * which the directory fsync's group makes; src/stores/file_spare.c,
 * "The flush"). On ext4 without a journal, where fsyncs share nothing,
 * new sessions saved at once share one syncfs and one cache flush instead
 * of an fsync each (since 0.2; a lone one keeps its fsync). A syncfs also
 * writes what other programs left unwritten on that file system: one that
 * takes longer than 250 ms puts the store back on an fsync per new
 * session for 1 s, each slow one after it for twice as long, up to 30 s.
 * The store recognises ext4 by its mount type and statfs
 * magic, its journal through sysfs and procfs (one on another device is
 * left out); every other file system, and dirsync=always (URL) /
 * .always_dirsync = 1, gets the file and directory fsyncs as POSIX asks
 * (src/stores/file_dirsync.c has the details and how it was checked).
 * With fsync=0 (URL) or .no_fsync = 1 no fsync
 * is made: a write is still atomic (a reader sees the old or the new file,
 * never a torn one) and survives a crash or kill of the process, but
 * acknowledged writes may be lost, or come back after a destroy, in a power
 * cut or OS crash.
 *
 * Spare files (since 0.2). Saving a session again does not free its old
 * file and allocate a new one: the replaced version is kept as the
 * session's spare, "<dir>/.csn-spare/<file name>", and the next save of that
 * session rewrites the spare in place and swaps it with the live file in one
 * atomic rename (renameat2 RENAME_EXCHANGE). Readers still see the old or
 * the new complete file. A spare is only rewritten when no other open file
 * description of it exists in any process (asked with a file lease, taken
 * and released at once), so a reader still holding the old version, ours or
 * session-file-store's, keeps it intact; such a spare is replaced by a new
 * file instead. This saves the freeing and allocating of blocks per save,
 * which on a file system mounted with -o discard costs a discard request
 * per save (docs/BENCHMARKS.md). It costs one more file per session saved
 * twice; destroy, clear and the reaper remove spares with their sessions,
 * and the reaper removes spares whose session file is gone (a Node
 * process's destroy). The directory .csn-spare is created 0700 and used
 * only if it is a directory owned by this user and not writable by group
 * or others. On a file system without leases or RENAME_EXCHANGE (NFS, or
 * a kernel before 3.15), in a read-only directory, or with recycle=0
 * (URL) / .no_recycle = 1, saves rename a new file as described above.
 * Note for applications that handle SIGURG: should another process open a
 * spare in the instant its lease is held, the kernel signals the lease
 * break with SIGURG (ignored by default) rather than SIGIO (which would end
 * the process).
 *
 * Compare-and-set (since 0.2): the store implements csn_store_cas(), so
 * the core merges concurrent requests instead of letting the last save
 * win. It compares `expected` with exactly what get() returns (the record
 * without __lastAccess/__csnId, decrypted); a missing, expired or corrupt
 * file is CSN_ENOENT, a different text CSN_ECONFLICT, and neither writes.
 *
 * Thread-safety and processes: every function may be called from several
 * threads at once, and several processes (each with its own store, or
 * sharing one opened before fork()) may use one directory. Every write of
 * an id (set, touch, destroy, cas, and the unlinks of clear and the reaper)
 * holds a lock on that id that all of them respect: an fcntl byte-range
 * lock (open file description locks where the system has them) in the
 * file "<dir>/.csn.lock", created empty with mode 0600. It is hidden, so it
 * is never a session (not even with an empty extension), and it is not
 * removed by clear(); do not delete it while servers use the directory
 * (those holding the old file would no longer exclude those opening a new
 * one). Reads take no lock. A store that cannot open the lock
 * file (a read-only directory) still reads; its writes fail with CSN_EIO.
 * session-file-store takes no lock, so a Node writer on the same directory
 * is not serialised with ours (its whole-record saves reach the core's
 * merge as conflicts; a Node write landing inside one of our writes of the
 * same id can still be overwritten, as between two Node processes). The
 * background reaper runs every reap interval +-50%, so that processes
 * started together do not reap together.
 *
 * Since 0.1.
 */
#ifndef CSN_STORE_FILE_H
#define CSN_STORE_FILE_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csn_file_options {
  const char *dir;        /* NULL: "./sessions". Created (with parents) if
                             missing. */
  const char *ext;        /* NULL: ".json"; "" makes every entry a session */
  int64_t ttl_ms;         /* 0: 3600000 (session-file-store's ttl 3600 s) */
  int64_t reap_interval_ms; /* 0: 3600000; negative: no reaper thread */
  size_t reap_batch;      /* files per reaper step; 0: 500 */
  /* NULL: plaintext files. Otherwise session-file-store's
   * `secret` (used as its UTF-8 bytes; copied, so the caller may free it
   * after csn_store_file_new returns); "" is CSN_EINVAL. */
  const char *secret;
  /* Since 0.2. 0 (the default): every acknowledged write is durable (see
   * "Durability" above). 1: no fsync at all, fsync=0 in a URL. */
  int no_fsync;
  /* Since 0.2. 0 (the default): spare files where the file system allows
   * them (see "Spare files" above). 1: never, recycle=0 in a URL. */
  int no_recycle;
  /* Since 0.2. 0 (the default): on ext4, a new session's file skips the
   * directory fsync where its own fsync wrote its name, new files saved
   * at once share a syncfs without a journal, and a rewrite of the same
   * size shares its cache flush (see "Durability" above). 1:
   * every save fsyncs its file and the directory, dirsync=always in a
   * URL. */
  int always_dirsync;
} csn_file_options;

/* Open a FileStore. opts may be NULL (all defaults). Fails with CSN_EIO and
 * a message in errbuf when the directory cannot be created, opened or
 * listed; CSN_EINVAL for a bad option. Release with csn_store_free(). */
CSN_API int csn_store_file_new(const csn_file_options *opts, csn_store **out,
                               char *errbuf, size_t errlen);

/* Open a FileStore from a URL: "file://" followed by the directory path.
 *   file:///var/lib/app/sessions   absolute (the path starts with '/')
 *   file://./sessions              relative to the working directory
 *   file://sessions                relative as well
 *   file://                        the default, ./sessions
 * The path is taken literally (no percent-decoding). Query options
 * (csn_url_parse_query(): values are percent-decoded, so write '%' as %25
 * and '&' as %26; each option at most once):
 *   ttl=S     default lifetime in seconds (3600), 1 .. 9e12
 *   reap=S    reaper interval in seconds (3600); -1 or 0 disables it
 *   ext=.json file extension, at most 64 bytes, no '/'
 *   secret_file=PATH
 *             encryption with the secret read from PATH (see above), a
 *             file private to this user (csn_secret_read_file(): mode 600
 *             or stricter, else CSN_EPERM). The way to give the secret in
 *             a URL: the URL may then appear anywhere.
 *   fsync=1|0 1 (the default): durable writes; 0: no fsync (see
 *             "Durability" above); also true/false, yes/no, on/off
 *   recycle=1|0
 *             1 (the default): spare files (see "Spare files" above);
 *             0: every save writes a new file
 *   dirsync=auto|always
 *             auto (the default): on ext4, a new session's save skips
 *             the directory fsync when its file's fsync wrote the entry,
 *             new files saved at once share a syncfs (no journal),
 *             and a same-size rewrite shares its cache flush; always:
 *             every save fsyncs its file and the directory (see
 *             "Durability" above)
 *   secret=.. encryption with this secret given inline; or set
 *             csn_file_options.secret. A URL on a command line exposes it
 *             to every local user (/proc/PID/cmdline): pass such a URL
 *             through the environment (the demo's CSN_STORE), or use
 *             secret_file. At most one of the two. Error messages name the
 *             parameter, never its value.
 * Unknown, repeated or malformed options are CSN_EINVAL. This is the opener
 * csn_store_open() uses for the "file" scheme. (0.1 took the secret
 * literally and let a repeated option override the earlier one.) */
CSN_API int csn_store_file_open(const char *url, csn_store **out,
                                char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_FILE_H */
