/* test_store_file_crypt.c - the FileStore's session-file-store `secret`
 * encryption: format, wrong secrets, tampering, plaintext leftovers, touch
 * and the reaper through the sealed path, the shared conformance suite on
 * an encrypted store, and files exchanged with the real session-file-store
 * (Node) in both directions.
 *
 * Usage: test_store_file_crypt <node> <tests/interop/file_crypt_peer.js>
 */
#define _XOPEN_SOURCE 700 /* nftw() */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "csn/csn.h"
#include "csn/csn_store_file.h"
#include "csn_int.h"
#include "store_conformance.h"

#define SECRET "file-secret"

static const char REC[] =
    "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"2030-01-01T00:00:"
    "00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":3,\"who\":\"bob\"}";

static const char *node_bin, *peer_js;
static char root[256];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static void new_dir(char *buf, size_t size) {
  static unsigned n;
  snprintf(buf, size, "%s/d%u", root, n++);
  assert_int_equal(mkdir(buf, 0755), 0);
}

/* Open a store on dir; secret NULL means plaintext. */
static csn_store *open_store(const char *dir, const char *secret) {
  csn_file_options o = {0};
  char err[256] = "";
  csn_store *st = NULL;
  o.dir = dir;
  o.reap_interval_ms = -1;
  o.secret = secret;
  int rc = csn_store_file_new(&o, &st, err, sizeof err);
  if (rc != CSN_OK) fail_msg("open %s: %s (%s)", dir, csn_strerror(rc), err);
  return st;
}

static char *slurp(const char *dir, const char *name, size_t *len) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (n + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  fclose(f);
  buf[n] = '\0';
  if (len != NULL) *len = n;
  return buf;
}

static void spit(const char *dir, const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void get_is(csn_store *st, const char *sid, const char *want) {
  char *json = NULL;
  size_t len = 0;
  int rc = csn_store_get(st, sid, &json, &len);
  if (rc != CSN_OK)
    fail_msg("get %s: %s (%s)", sid, csn_strerror(rc), csn_store_errmsg(st));
  assert_int_equal(len, strlen(want));
  assert_string_equal(json, want);
  csn_free(json);
}

/* get must say "not found" and leave `msg` in the store's message. */
static void get_missing_with(csn_store *st, const char *sid, const char *msg) {
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, sid, &json, &len), CSN_ENOENT);
  if (strstr(csn_store_errmsg(st), msg) == NULL)
    fail_msg("message '%s' lacks '%s'", csn_store_errmsg(st), msg);
}

/* ------------------------------------------------------------------------ */
/* Format and round trip                                                    */
/* ------------------------------------------------------------------------ */

static void check_buffer(json_t *env, const char *key, size_t n) {
  json_t *b = json_object_get(env, key);
  assert_string_equal(json_string_value(json_object_get(b, "type")), "Buffer");
  assert_int_equal(json_array_size(json_object_get(b, "data")), n);
}

static void store_file_crypt_round_trip(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_store(dir, SECRET);
  assert_int_equal(csn_store_set(st, "abc", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  get_is(st, "abc", REC);

  /* The file is kruptein's envelope, members in its order, and shows
   * nothing of the record. */
  size_t n = 0;
  char *raw = slurp(dir, "abc.json", &n);
  assert_non_null(raw);
  assert_null(strstr(raw, "views"));
  assert_null(strstr(raw, "__lastAccess"));
  const char *order[] = {"\"hmac\":", "\"ct\":", "\"iv\":", "\"salt\":",
                         "\"aad\":", "\"at\":"};
  const char *prev = raw;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const char *p = strstr(raw, order[i]);
    assert_non_null(p);
    assert_true(p >= prev);
    prev = p;
  }
  json_error_t jerr;
  json_t *env = json_loadb(raw, n, JSON_ALLOW_NUL, &jerr);
  assert_non_null(env);
  assert_int_equal(json_object_size(env), 6);
  check_buffer(env, "iv", 12);
  check_buffer(env, "salt", 128);
  check_buffer(env, "at", 16);
  /* hmac and aad are 64 latin1 characters each. */
  json_t *h = json_object_get(env, "hmac");
  assert_true(json_is_string(h));
  json_decref(env);
  free(raw);

  /* A second store with the same secret (a restarted server) reads it;
   * so does one opened by URL. */
  csn_store_free(st);
  st = open_store(dir, SECRET);
  get_is(st, "abc", REC);
  csn_store_free(st);
  char url[512], err[256] = "";
  snprintf(url, sizeof url, "file://%s?reap=0&secret=%s", dir, SECRET);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_OK);
  get_is(st, "abc", REC);
  size_t count = 0;
  assert_int_equal(csn_store_length(st, &count), CSN_OK);
  assert_int_equal(count, 1);
  csn_store_free(st);

  /* An empty secret is refused, by option and by URL. */
  csn_file_options o = {0};
  o.dir = dir;
  o.secret = "";
  st = NULL;
  assert_int_equal(csn_store_file_new(&o, &st, err, sizeof err), CSN_EINVAL);
  assert_null(st);
  snprintf(url, sizeof url, "file://%s?secret=", dir);
  assert_int_equal(csn_store_file_open(url, &st, err, sizeof err), CSN_EINVAL);
}

/* touch re-reads and rewrites through the sealed path. */
static void store_file_crypt_touch(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_store(dir, SECRET);
  assert_int_equal(csn_store_set(st, "t1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  char *before = slurp(dir, "t1.json", NULL);
  static const char cookie[] =
      "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"2031-01-01T00:"
      "00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"}}";
  assert_int_equal(
      csn_store_touch(st, "t1", cookie, strlen(cookie), CSN_TIME_NONE),
      CSN_OK);
  char *after = slurp(dir, "t1.json", NULL);
  assert_string_not_equal(before, after);
  assert_null(strstr(after, "2031"));
  get_is(st, "t1",
         "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"2031-01-01T00:"
         "00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"views\":3,\"who\":"
         "\"bob\"}");
  free(before);
  free(after);
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* Files that do not open                                                   */
/* ------------------------------------------------------------------------ */

static void store_file_crypt_wrong_secret(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *a = open_store(dir, SECRET);
  csn_store *b = open_store(dir, "another-secret");
  assert_int_equal(csn_store_set(a, "w1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  get_missing_with(b, "w1", "HMAC mismatch");
  size_t count = 9;
  assert_int_equal(csn_store_length(b, &count), CSN_OK);
  assert_int_equal(count, 0);
  /* A touch through the wrong secret changes nothing; the owner still
   * reads its record. */
  assert_int_equal(csn_store_touch(b, "w1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  get_is(a, "w1", REC);
  csn_store_free(a);
  csn_store_free(b);
}

/* Load the envelope, let edit() change it, write it back. */
static void tamper(const char *dir, const char *name,
                   void (*edit)(json_t *env)) {
  size_t n = 0;
  char *raw = slurp(dir, name, &n);
  assert_non_null(raw);
  json_error_t jerr;
  json_t *env = json_loadb(raw, n, JSON_ALLOW_NUL, &jerr);
  assert_non_null(env);
  free(raw);
  edit(env);
  char *out = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
  assert_non_null(out);
  spit(dir, name, out);
  free(out);
  json_decref(env);
}

/* Flip the low bit of the first character of a latin1 string member. */
static void flip_string(json_t *env, const char *key) {
  json_t *s = json_object_get(env, key);
  size_t n = json_string_length(s);
  char *v = malloc(n + 1);
  assert_non_null(v);
  memcpy(v, json_string_value(s), n + 1);
  /* The second byte of a two-byte sequence, or an ASCII byte other than
   * NUL: either way the result is still a latin1 character. */
  size_t i = ((unsigned char)v[0] >= 0xC0) ? 1 : 0;
  v[i] ^= 1;
  if (v[i] == '\0') v[i] = 2;
  assert_int_equal(json_object_set_new(env, key, json_stringn(v, n)), 0);
  free(v);
}

static void flip_buffer(json_t *env, const char *key) {
  json_t *data = json_object_get(json_object_get(env, key), "data");
  json_int_t b = json_integer_value(json_array_get(data, 0));
  assert_int_equal(json_array_set_new(data, 0, json_integer(b ^ 1)), 0);
}

static void edit_ct(json_t *env) { flip_string(env, "ct"); }
static void edit_hmac(json_t *env) { flip_string(env, "hmac"); }
static void edit_aad(json_t *env) { flip_string(env, "aad"); }
static void edit_at(json_t *env) { flip_buffer(env, "at"); }
static void edit_iv(json_t *env) { flip_buffer(env, "iv"); }
static void edit_salt(json_t *env) { flip_buffer(env, "salt"); }
static void edit_drop_at(json_t *env) { json_object_del(env, "at"); }

static void store_file_crypt_tampered(void **state) {
  (void)state;
  static const struct {
    void (*edit)(json_t *);
    const char *msg;
  } cases[] = {
      {edit_ct, "HMAC mismatch"},
      {edit_hmac, "HMAC mismatch"},
      {edit_salt, "HMAC mismatch"}, /* another key */
      {edit_at, "authentication failed"},
      {edit_iv, "authentication failed"},
      {edit_aad, "authentication failed"},
      {edit_drop_at, "malformed encrypted envelope"},
  };
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_store(dir, SECRET);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(csn_store_set(st, "x1", REC, strlen(REC), CSN_TIME_NONE),
                     CSN_OK);
    get_is(st, "x1", REC);
    tamper(dir, "x1.json", cases[i].edit);
    get_missing_with(st, "x1", cases[i].msg);
  }
  /* Garbage is not found either, and never a crash. */
  spit(dir, "x1.json", "{\"hmac\":1,\"ct\":\"\xc4\x80\"}");
  get_missing_with(st, "x1", "cannot decrypt");
  spit(dir, "x1.json", "not json at all");
  get_missing_with(st, "x1", "not an encrypted session file");
  /* The next set replaces the bad file. */
  assert_int_equal(csn_store_set(st, "x1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  get_is(st, "x1", REC);
  csn_store_free(st);
}

static void set_mtime(const char *dir, const char *name, time_t when) {
  char path[600];
  struct timeval tv[2] = {{when, 0}, {when, 0}};
  snprintf(path, sizeof path, "%s/%s", dir, name);
  assert_int_equal(utimes(path, tv), 0);
}

/* A plaintext file left from before the secret was set is not a session;
 * the reaper removes such files once they are older than ttl. */
static void store_file_crypt_plaintext_file(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *plain = open_store(dir, NULL);
  assert_int_equal(csn_store_set(plain, "p1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(csn_store_set(plain, "p2", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  csn_store_free(plain);
  csn_store *st = open_store(dir, SECRET);
  get_missing_with(st, "p1", "not an encrypted session file");

  /* prune: the old undecryptable file goes, the fresh one stays, and so
   * does a live encrypted session. */
  assert_int_equal(csn_store_set(st, "e1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  set_mtime(dir, "p1.json", time(NULL) - 7200);
  size_t removed = 0;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 1);
  assert_null(slurp(dir, "p1.json", NULL));
  char *p2 = slurp(dir, "p2.json", NULL);
  assert_non_null(p2);
  free(p2);
  get_is(st, "e1", REC);
  csn_store_free(st);
}

/* An expired encrypted record is judged from inside the ciphertext. */
static void store_file_crypt_expiry(void **state) {
  (void)state;
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_store(dir, SECRET);
  static const char old[] =
      "{\"cookie\":{\"originalMaxAge\":1000,\"expires\":\"2001-01-01T00:00:"
      "00.000Z\",\"path\":\"/\"},\"views\":1}";
  assert_int_equal(csn_store_set(st, "o1", old, strlen(old), CSN_TIME_NONE),
                   CSN_OK);
  assert_int_equal(csn_store_set(st, "l1", REC, strlen(REC), CSN_TIME_NONE),
                   CSN_OK);
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(csn_store_get(st, "o1", &json, &len), CSN_ENOENT);
  size_t removed = 0;
  assert_int_equal(csn_store_prune(st, &removed), CSN_OK);
  assert_int_equal(removed, 1);
  get_is(st, "l1", REC);
  csn_store_free(st);
}

/* ------------------------------------------------------------------------ */
/* Conformance on an encrypted store                                        */
/* ------------------------------------------------------------------------ */

static char conf_dir[300]; /* the directory conf_open last made */

static csn_store *conf_open(void *ud) {
  (void)ud;
  new_dir(conf_dir, sizeof conf_dir);
  return open_store(conf_dir, SECRET);
}

/* A second handle on the same directory, with the same secret. */
static csn_store *conf_open_again(void *ud) {
  (void)ud;
  return open_store(conf_dir, SECRET);
}

/* ------------------------------------------------------------------------ */
/* The real session-file-store                                              */
/* ------------------------------------------------------------------------ */

/* Run the Node peer; its stdout goes to *out (malloc'd). Returns the exit
 * status. */
static int peer(char **out, const char *cmd, const char *dir, const char *sid,
                const char *json) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl(node_bin, node_bin, peer_js, cmd, dir, SECRET, sid, json,
          (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (;;) {
    if (n + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    ssize_t r = read(fds[0], buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fds[0]);
  buf[n] = '\0';
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  *out = buf;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void assert_same_json(const char *a, const char *b) {
  json_error_t e;
  json_t *ja = json_loads(a, 0, &e), *jb = json_loads(b, 0, &e);
  if (ja == NULL || jb == NULL || !json_equal(ja, jb))
    fail_msg("JSON differs:\n  %s\n  %s", a, b);
  json_decref(ja);
  json_decref(jb);
}

/* Records with everything the double encoding must carry: quotes,
 * backslashes, control characters, 2/3/4-byte UTF-8, escapes. */
static const char NODE_REC[] =
    "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"2030-01-01T00:00:"
    "00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\"q\":\"say \\\"hi\\\" \\\\ "
    "\\n\\t\\u0001\\u001f\",\"u\":\"h\xc3\xa9llo \xe2\x98\x83 "
    "\xf0\x9f\x98\x80\",\"n\":[1,2.5,-3],\"views\":7}";

static void store_file_crypt_node_peer(void **state) {
  (void)state;
  if (node_bin == NULL) fail_msg("usage: test_store_file_crypt <node> <peer.js>");
  char dir[300];
  new_dir(dir, sizeof dir);
  csn_store *st = open_store(dir, SECRET);

  /* C writes, Node reads. */
  assert_int_equal(
      csn_store_set(st, "fromc", NODE_REC, strlen(NODE_REC), CSN_TIME_NONE),
      CSN_OK);
  char *out = NULL;
  int rc = peer(&out, "get", dir, "fromc", NULL);
  assert_int_equal(rc, 0);
  assert_same_json(out, NODE_REC);
  free(out);

  /* Node writes, C reads (twice: the second read hits the key cache). */
  rc = peer(&out, "set", dir, "fromnode", NODE_REC);
  assert_int_equal(rc, 0);
  free(out);
  char *raw = slurp(dir, "fromnode.json", NULL);
  assert_non_null(raw);
  assert_non_null(strstr(raw, "{\"hmac\":\""));
  free(raw);
  for (int i = 0; i < 2; i++) {
    char *json = NULL;
    size_t len = 0;
    rc = csn_store_get(st, "fromnode", &json, &len);
    if (rc != CSN_OK)
      fail_msg("get fromnode: %s (%s)", csn_strerror(rc),
               csn_store_errmsg(st));
    assert_same_json(json, NODE_REC);
    csn_free(json);
  }

  /* C touches Node's file; Node reads the result. */
  assert_int_equal(
      csn_store_touch(st, "fromnode", NODE_REC, strlen(NODE_REC),
                      CSN_TIME_NONE),
      CSN_OK);
  rc = peer(&out, "get", dir, "fromnode", NULL);
  assert_int_equal(rc, 0);
  assert_same_json(out, NODE_REC);
  free(out);
  csn_store_free(st);
}

int main(int argc, char **argv) {
  if (argc == 3) {
    node_bin = argv[1];
    peer_js = argv[2];
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/csn-filecrypt-XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(root) == NULL) return 1;
  chmod(root, 0755);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(store_file_crypt_round_trip),
      cmocka_unit_test(store_file_crypt_touch),
      cmocka_unit_test(store_file_crypt_wrong_secret),
      cmocka_unit_test(store_file_crypt_tampered),
      cmocka_unit_test(store_file_crypt_plaintext_file),
      cmocka_unit_test(store_file_crypt_expiry),
      cmocka_unit_test(store_file_crypt_node_peer),
  };
  int failed = cmocka_run_group_tests_name("store_file_crypt", tests, NULL,
                                           NULL);
  csn_conformance c = {0};
  c.open = conf_open;
  c.open_again = conf_open_again;
  c.cas = 1;
  c.all_expired = 1;
  failed += csn_conformance_run("store_file_crypt_conformance", &c);
  nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return failed;
}
