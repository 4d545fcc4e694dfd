/* test_store_file_spare.c - the FileStore's spare files (file_spare.c):
 * a session's replaced version is rewritten in place by its next save,
 * but never while anyone else holds it open; spares go with their
 * sessions; recycle=0 and a spare directory we do not own switch them
 * off. Real directories under $TMPDIR (or /tmp), a real second process
 * as the reader. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csn/csn.h"
#include "csn/csn_store_file.h"

#define SID "spare-session-0000000000000001"

static char root[256];
static unsigned ndirs;

static void new_dir(char *buf, size_t size) {
  snprintf(buf, size, "%s/d%u", root, ndirs++);
  assert_int_equal(mkdir(buf, 0700), 0);
}

static csn_store *open_dir(const char *dir, const char *query) {
  char url[600], err[256] = "";
  csn_store *st = NULL;
  /* reap=0: no reaper thread; the tests prune when they mean to. */
  snprintf(url, sizeof url, "file://%s?reap=0%s", dir, query);
  int rc = csn_store_file_open(url, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", url, csn_strerror(rc), err);
  return st;
}

/* A record with a visit count, so every version differs. */
static const char *rec(int views) {
  static char buf[256];
  snprintf(buf, sizeof buf,
           "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2030-01-01T00:"
           "00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":%d}",
           views);
  return buf;
}

static void set_views(csn_store *st, const char *sid, int views) {
  const char *r = rec(views);
  assert_int_equal(csn_store_set(st, sid, r, strlen(r), CSN_TIME_NONE),
                   CSN_OK);
}

static void get_views(csn_store *st, const char *sid, int views) {
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_OK);
  assert_string_equal(json, rec(views));
  csn_free(json);
}

/* Inode of dir/name (relative), 0 when it does not exist. */
static ino_t ino_of(const char *dir, const char *name) {
  char path[700];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

static const char *live_name(void) { return SID ".json"; }
static const char *spare_name(void) { return ".csn-spare/" SID ".json"; }

/* Number of entries in dir/.csn-spare (-1 when it does not exist). */
static int spares(const char *dir) {
  char cmd[700], line[64];
  snprintf(cmd, sizeof cmd, "ls -A '%s/.csn-spare' 2>/dev/null | wc -l; "
                            "test -d '%s/.csn-spare' || echo none",
           dir, dir);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  int n = -1;
  if (fgets(line, sizeof line, p) != NULL) n = atoi(line);
  if (fgets(line, sizeof line, p) != NULL && strncmp(line, "none", 4) == 0)
    n = -1;
  pclose(p);
  return n;
}

/* Three saves: the second keeps the first version as the spare, the third
 * rewrites that same file in place and swaps it back in. */
static void store_file_spare_reused(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "");
  struct stat sd;
  char path[700];
  snprintf(path, sizeof path, "%s/.csn-spare", dir);
  assert_int_equal(stat(path, &sd), 0);
  assert_true(S_ISDIR(sd.st_mode));
  assert_int_equal(sd.st_mode & 0777, 0700);

  set_views(st, SID, 1);
  ino_t a = ino_of(dir, live_name());
  assert_true(a != 0);
  assert_int_equal(ino_of(dir, spare_name()), 0);

  set_views(st, SID, 2);
  ino_t b = ino_of(dir, live_name());
  assert_true(b != 0 && b != a);
  assert_int_equal(ino_of(dir, spare_name()), a); /* the old version */

  set_views(st, SID, 3);
  assert_int_equal(ino_of(dir, live_name()), a); /* rewritten in place */
  assert_int_equal(ino_of(dir, spare_name()), b);
  get_views(st, SID, 3);

  /* A shorter record after a longer one: the rewrite is cut to size. */
  set_views(st, SID, 1000000);
  set_views(st, SID, 5);
  assert_int_equal(ino_of(dir, live_name()), a);
  get_views(st, SID, 5);
  /* Spares are not sessions. */
  size_t n = 99;
  assert_int_equal(csn_store_length(st, &n), CSN_OK);
  assert_int_equal(n, 1);
  csn_store_free(st);
}

/* A reader in another process opened the live file and has not read it
 * yet (session-file-store's reads are steps apart on its event loop).
 * Two saves later that version is the spare, but it must not be rewritten
 * under the reader: the reader still gets its whole old version. */
static void store_file_spare_reader_keeps_version(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "");
  set_views(st, SID, 1);
  ino_t a = ino_of(dir, live_name());

  int go[2], back[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(back), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Only the parent's ends stay open in the parent: a failed assertion
     * there then ends the child too (EOF), instead of leaving it waiting. */
    close(go[1]);
    close(back[0]);
    char path[700], buf[512], c;
    snprintf(path, sizeof path, "%s/%s", dir, live_name());
    int fd = open(path, O_RDONLY);
    if (fd < 0 || write(back[1], "o", 1) != 1) _exit(2);
    if (read(go[0], &c, 1) != 1) _exit(3);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) _exit(4);
    if (write(back[1], buf, (size_t)n) != n) _exit(5);
    _exit(0);
  }
  close(go[0]);
  close(back[1]);
  char c;
  assert_int_equal(read(back[0], &c, 1), 1); /* the reader has it open */

  set_views(st, SID, 2); /* version 1 becomes the spare */
  assert_int_equal(ino_of(dir, spare_name()), a);
  set_views(st, SID, 3); /* must not rewrite version 1 */
  ino_t now = ino_of(dir, live_name());
  assert_true(now != 0 && now != a);
  get_views(st, SID, 3);

  assert_int_equal(write(go[1], "g", 1), 1);
  char got[512];
  size_t n = 0;
  ssize_t r;
  while ((r = read(back[0], got + n, sizeof got - 1 - n)) > 0) n += (size_t)r;
  got[n] = '\0';
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* Exactly version 1 as the store wrote it (with __lastAccess). */
  assert_non_null(strstr(got, "\"views\":1,\"__lastAccess\":"));
  assert_true(got[n - 1] == '}');
  close(go[1]);
  close(back[0]);

  /* With the reader gone, recycling resumes. */
  ino_t spare = ino_of(dir, spare_name());
  set_views(st, SID, 4);
  assert_int_equal(ino_of(dir, live_name()), spare);
  get_views(st, SID, 4);
  csn_store_free(st);
}

/* A spare with a second link (planted, or linked out by someone) is not a
 * file we may write through: the other name keeps its content. */
static void store_file_spare_linked_refused(void **state) {
  (void)state;
  char dir[300], spare[700], outside[700];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "");
  set_views(st, SID, 1);
  set_views(st, SID, 2);
  snprintf(spare, sizeof spare, "%s/%s", dir, spare_name());
  snprintf(outside, sizeof outside, "%s/outside-%u", root, ndirs);
  assert_int_equal(link(spare, outside), 0);
  ino_t a = ino_of(root, outside + strlen(root) + 1);
  set_views(st, SID, 3);
  assert_true(ino_of(dir, live_name()) != a);
  get_views(st, SID, 3);
  FILE *f = fopen(outside, "r");
  assert_non_null(f);
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "\"views\":1,"));
  unlink(outside);
  csn_store_free(st);
}

/* Spares leave with their sessions: destroy, clear, and prune of a spare
 * whose session file someone else removed (session-file-store's destroy
 * knows nothing of spares). */
static void store_file_spare_cleanup(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "");
  const char *ids[] = {"spare-a-000000000000000000000001",
                       "spare-b-000000000000000000000002",
                       "spare-c-000000000000000000000003"};
  for (int i = 0; i < 3; i++) {
    set_views(st, ids[i], 1);
    set_views(st, ids[i], 2);
  }
  assert_int_equal(spares(dir), 3);

  assert_int_equal(csn_store_destroy(st, ids[0]), CSN_OK);
  assert_int_equal(spares(dir), 2);

  /* Removed behind the store's back: prune drops the orphan spare and
   * keeps the live session's. */
  char path[700];
  snprintf(path, sizeof path, "%s/%s.json", dir, ids[1]);
  assert_int_equal(unlink(path), 0);
  size_t removed = 9;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 0);
  assert_int_equal(spares(dir), 1);
  get_views(st, ids[2], 2);

  assert_int_equal(csn_store_clear(st), CSN_OK);
  assert_int_equal(spares(dir), 0);
  csn_store_free(st);
}

/* recycle=0: no spare directory, every save a new file; a spare directory
 * someone else may write is not used either. */
static void store_file_spare_off(void **state) {
  (void)state;
  char dir[300], path[700];
  new_dir(dir, sizeof dir);
  csn_store *st = open_dir(dir, "&recycle=0");
  set_views(st, SID, 1);
  set_views(st, SID, 2);
  set_views(st, SID, 3);
  get_views(st, SID, 3);
  assert_int_equal(spares(dir), -1);
  csn_store_free(st);

  new_dir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/.csn-spare", dir);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(chmod(path, 0777), 0);
  st = open_dir(dir, "");
  set_views(st, SID, 1);
  set_views(st, SID, 2);
  set_views(st, SID, 3);
  get_views(st, SID, 3);
  assert_int_equal(spares(dir), 0);
  csn_store_free(st);

  char err[256] = "";
  snprintf(path, sizeof path, "file://%s?recycle=maybe", dir);
  assert_int_equal(csn_store_file_open(path, &st, err, sizeof err),
                   CSN_EINVAL);
  assert_non_null(strstr(err, "recycle"));
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-spare-XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_file_spare_reused),
      cmocka_unit_test(store_file_spare_reader_keeps_version),
      cmocka_unit_test(store_file_spare_linked_refused),
      cmocka_unit_test(store_file_spare_cleanup),
      cmocka_unit_test(store_file_spare_off),
  };
  int failed = cmocka_run_group_tests_name("store_file_spare", tests, NULL,
                                           NULL);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) failed++;
  return failed;
}
