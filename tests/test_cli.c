/* test_cli.c - the csession command (tools/csession.c) as scripts use it:
 * the real binary ($CSN_CLI_BIN) run as a child process, its stdout,
 * stderr and exit status checked, against stores populated through the C
 * store API in this process.
 *
 *   test_cli usage    options, usage errors, cookies, bad and unreachable
 *                     URLs (closed ports, with a password that must never
 *                     show), no server needed
 *   test_cli file     a file store in a temporary directory
 *   test_cli sqlite   a SQLite database in a temporary directory
 *   test_cli redis    CSN_TEST_REDIS_URL, keys under a prefix of our own
 *   test_cli pg       CSN_TEST_PG_URL, a table of our own (its name has our
 *                     pid), dropped at the end
 *   test_cli mongo    CSN_TEST_MONGO_URL, a collection of our own
 *
 * A server store without its URL exits 77 (a skip; CI counts it as a
 * failure). The memory store is per process, so the command can only show
 * an empty one (the usage group checks that much).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_stores.h"
#include "proc_util.h"

#ifdef CSN_TEST_HAVE_PG
#include <libpq-fe.h>
#endif

/* A password and a file-store secret that must never reach any output. */
#define PASSWORD "Pw-s3cr3t-9q"
#define FILE_SECRET "Fs-s3cr3t-7z"

static const char *cli_bin;    /* $CSN_CLI_BIN */
static char tmp_dir[512];      /* ours, removed at the end */
static char store_url[1024];   /* the store under test */
static size_t expect_purged;   /* what purge removes in this store */
/* expect_purged for MongoDB: its server's TTL monitor removes expired
 * documents once a minute, so purge finds between 0 and 2 of them. */
#define PURGED_0_TO_2 ((size_t)-1)
/* What --expired does in this store: lists exactly the two expired
 * sessions (file, SQLite, PostgreSQL), or exits 4 saying that the store
 * removes them itself (Redis), or whichever the store says (MongoDB: it
 * has all_expired or not; its TTL monitor may remove them any time). */
enum { EXP_EXACT, EXP_SELF, EXP_PROBE };
static int expired_mode;

/* ------------------------------------------------------------------------ */
/* Running the command                                                      */
/* ------------------------------------------------------------------------ */

typedef struct run_out {
  int status; /* exit status, or 128 + signal */
  char *out, *err;
} run_out;

static void run_free(run_out *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0;
  assert_non_null(f);
  for (;;) {
    if (cap - n < 4096) {
      cap = cap ? cap * 2 : 8192;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* Run csession with the NULL-terminated arguments. env_store is what the
 * child sees as $CSN_STORE (NULL: unset), env_secret its $CSN_SECRET. The
 * outputs go to files, so that a chatty child never blocks on a pipe. */
static void run_env(run_out *r, const char *env_store, const char *env_secret,
                    ...) {
  const char *argv[32];
  char out_path[600], err_path[600];
  va_list ap;
  int argc = 0, st = 0;
  pid_t pid;

  run_free(r);
  argv[argc++] = cli_bin;
  va_start(ap, env_secret);
  for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
    assert_true(argc < 31);
    argv[argc++] = a;
  }
  va_end(ap);
  argv[argc] = NULL;
  snprintf(out_path, sizeof out_path, "%s/out", tmp_dir);
  snprintf(err_path, sizeof err_path, "%s/err", tmp_dir);
  fflush(NULL);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
      _exit(120);
    if (env_store)
      setenv("CSN_STORE", env_store, 1);
    else
      unsetenv("CSN_STORE");
    if (env_secret)
      setenv("CSN_SECRET", env_secret, 1);
    else
      unsetenv("CSN_SECRET");
    execv(cli_bin, (char *const *)argv);
    _exit(121);
  }
  assert_int_equal(waitpid(pid, &st, 0), pid);
  r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r->out = slurp(out_path);
  r->err = slurp(err_path);
}

/* The usual case: the store under test in $CSN_STORE. */
#define RUN(r, ...) run_env((r), store_url, NULL, __VA_ARGS__, (char *)NULL)

/* Exit status and stdout exactly, stderr empty. */
static void expect_ok(const run_out *r, const char *out) {
  if (r->status != 0 || r->err[0] != '\0')
    fprintf(stderr, "status %d, stderr: %s\n", r->status, r->err);
  assert_int_equal(r->status, 0);
  assert_string_equal(r->err, "");
  if (out != NULL)
    assert_string_equal(r->out, out);
}

/* A failure: its status, nothing on stdout, a "csession: " message that
 * contains `part`, and never a secret. */
static void expect_fail(const run_out *r, int status, const char *part) {
  if (r->status != status)
    fprintf(stderr, "status %d, stderr: %s\n", r->status, r->err);
  assert_int_equal(r->status, status);
  assert_string_equal(r->out, "");
  assert_non_null(strstr(r->err, "csession: "));
  if (part != NULL && strstr(r->err, part) == NULL)
    fail_msg("stderr lacks \"%s\": %s", part, r->err);
  assert_null(strstr(r->err, PASSWORD));
  assert_null(strstr(r->err, FILE_SECRET));
}

static json_t *parse(const char *text) {
  json_error_t e;
  json_t *j = json_loads(text, 0, &e);
  if (j == NULL)
    fail_msg("not JSON (%s): %s", e.text, text);
  return j;
}

/* ------------------------------------------------------------------------ */
/* The sessions                                                             */
/* ------------------------------------------------------------------------ */

/* Ids whose alphabetical order is not their expiry order, one starting
 * with '-' (generated ids may) and one with "--" (only after "--"). */
enum { N_LIVE = 4, N_SESS = 6 };
typedef struct sess {
  const char *id;
  int64_t offset_ms; /* from now; 0: no expiry (browser-session cookie) */
  char expires[96];  /* ISO text, "" for none */
  char *json;        /* as written */
} sess;

static sess sessions[N_SESS] = {
    {"a-three-hours", 3 * 3600000, "", NULL},
    {"-dash-no-expiry", 0, "", NULL},
    {"c-two-hours", 2 * 3600000, "", NULL},
    {"b-one-hour", 1 * 3600000, "", NULL},
    {"e-expired", -3600000, "", NULL},
    {"--f-expired", -2 * 3600000, "", NULL},
};
/* The live ones in the order list prints them. */
static const int list_order[N_LIVE] = {3, 2, 0, 1};
/* The expired ones in the order list --expired prints them. */
enum { N_EXPIRED = N_SESS - N_LIVE };
static const int expired_order[N_EXPIRED] = {5, 4};

static void iso(int64_t ms, char *out, size_t n) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ms % 1000));
}

static csn_store *open_store(void) {
  csn_store *st = NULL;
  char err[512] = "";
  int rc = csn_store_open(store_url, &st, err, sizeof err);
  if (rc != CSN_OK)
    fail_msg("open: %s: %s", csn_strerror(rc), err);
  return st;
}

/* Fresh sessions before every test: clear, then write all six. */
static int populate(void **state) {
  csn_store *st = open_store();
  int64_t now = csn_now_ms();
  (void)state;
  assert_int_equal(csn_store_clear(st), CSN_OK);
  for (int i = 0; i < N_SESS; i++) {
    sess *s = &sessions[i];
    char buf[512];
    int64_t exp = CSN_TIME_NONE;
    if (s->offset_ms != 0) {
      exp = now + s->offset_ms;
      iso(exp, s->expires, sizeof s->expires);
      snprintf(buf, sizeof buf,
               "{\"cookie\":{\"originalMaxAge\":%" PRId64 ",\"expires\":\"%s\","
               "\"httpOnly\":true,\"path\":\"/\"},\"n\":%d,\"f\":0.10,"
               "\"s\":\"caf\\u00e9 \\\"q\\\"\"}",
               s->offset_ms > 0 ? s->offset_ms : 60000, s->expires, i);
    } else {
      s->expires[0] = '\0';
      snprintf(buf, sizeof buf,
               "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,"
               "\"httpOnly\":true,\"path\":\"/\"},\"n\":%d}", i);
    }
    free(s->json);
    s->json = strdup(buf);
    assert_int_equal(csn_store_set(st, s->id, buf, strlen(buf), exp), CSN_OK);
  }
  csn_store_free(st);
  return 0;
}

/* The stored text of a live session, as the store returns it. */
static char *stored(const char *id, size_t *len) {
  csn_store *st = open_store();
  char *json = NULL;
  assert_int_equal(csn_store_get(st, id, &json, len), CSN_OK);
  csn_store_free(st);
  return json;
}

/* ------------------------------------------------------------------------ */
/* Store tests                                                              */
/* ------------------------------------------------------------------------ */

static void t_count(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  (void)state;
  RUN(&r, "count");
  expect_ok(&r, "4\n");
  /* --json before and after the command, and --store after it. */
  RUN(&r, "--json", "count");
  expect_ok(&r, "{\"count\":4}\n");
  RUN(&r, "count", "--json");
  expect_ok(&r, "{\"count\":4}\n");
  run_env(&r, NULL, NULL, "count", "--store", store_url, (char *)NULL);
  expect_ok(&r, "4\n");
  /* --store wins over $CSN_STORE. */
  run_env(&r, "nosuch://x", NULL, "--store", store_url, "count", (char *)NULL);
  expect_ok(&r, "4\n");
  run_free(&r);
}

/* Human list: id TAB expires TAB bytes, soonest expiry first, no expiry
 * last, expired sessions absent. */
static void t_list(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char want[4096] = "";
  (void)state;
  for (int k = 0; k < N_LIVE; k++) {
    const sess *s = &sessions[list_order[k]];
    size_t len = 0;
    char line[512];
    csn_free(stored(s->id, &len));
    snprintf(line, sizeof line, "%s\t%s\t%zu\n", s->id,
             s->expires[0] ? s->expires : "-", len);
    strcat(want, line);
  }
  RUN(&r, "list");
  expect_ok(&r, want);
  /* Store order: the same lines, in some order. */
  RUN(&r, "list", "--unsorted");
  expect_ok(&r, NULL);
  assert_int_equal(strlen(r.out), strlen(want));
  for (char *line = want, *nl; (nl = strchr(line, '\n')) != NULL;
       line = nl + 1) {
    char one[512];
    snprintf(one, sizeof one, "%.*s", (int)(nl - line + 1), line);
    if (strstr(r.out, one) == NULL)
      fail_msg("--unsorted lacks %s", one);
  }
  run_free(&r);
}

/* Check JSON Lines output: n lines, each one object describing a live
 * session; in list order when `ordered`. */
static void check_lines(const char *out, int ordered) {
  int seen[N_SESS] = {0}, k = 0;
  const char *line = out;
  for (const char *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1, k++) {
    json_error_t e;
    json_t *j = json_loadb(line, (size_t)(nl - line), 0, &e);
    if (j == NULL)
      fail_msg("line %d is not JSON (%s): %.*s", k, e.text, (int)(nl - line),
               line);
    assert_true(k < N_LIVE);
    const char *id = json_string_value(json_object_get(j, "id"));
    assert_non_null(id);
    int i = -1;
    for (int x = 0; x < N_SESS; x++)
      if (strcmp(sessions[x].id, id) == 0)
        i = x;
    assert_true(i >= 0 && i < N_LIVE); /* never an expired one */
    if (ordered)
      assert_int_equal(i, list_order[k]);
    assert_false(seen[i]);
    seen[i] = 1;
    json_t *exp = json_object_get(j, "expires");
    if (sessions[i].expires[0])
      assert_string_equal(json_string_value(exp), sessions[i].expires);
    else
      assert_true(json_is_null(exp));
    assert_true(json_is_false(json_object_get(j, "expired")));
    /* "session" is the record the store holds, and "bytes" its size. */
    size_t len = 0;
    char *text = stored(id, &len);
    json_t *rec = json_loadb(text, len, 0, NULL);
    assert_non_null(rec);
    assert_true(json_equal(json_object_get(j, "session"), rec));
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), len);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(j, "session"), "n")), i);
    /* The record's own text, not a re-serialisation: 0.10 stays 0.10. */
    if (sessions[i].expires[0]) {
      char *one = strndup(line, (size_t)(nl - line));
      assert_non_null(one);
      assert_non_null(strstr(one, "\"f\":0.10,"));
      free(one);
    }
    json_decref(rec);
    csn_free(text);
    json_decref(j);
  }
  assert_string_equal(line, ""); /* ends with a newline */
  assert_int_equal(k, N_LIVE);
}

static void t_list_json(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  (void)state;
  RUN(&r, "list", "--json");
  expect_ok(&r, NULL);
  check_lines(r.out, 1);
  RUN(&r, "--json", "list");
  expect_ok(&r, NULL);
  check_lines(r.out, 1);
  RUN(&r, "--unsorted", "--json", "list");
  expect_ok(&r, NULL);
  check_lines(r.out, 0);
  run_free(&r);
}

/* list --expired --json: the expired sessions in expiry order, each the
 * record as written (get() cannot read them back to compare), marked
 * expired. */
static void check_expired_lines(const char *out) {
  const char *line = out;
  int k = 0;
  for (const char *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1, k++) {
    assert_true(k < N_EXPIRED);
    const sess *s = &sessions[expired_order[k]];
    json_error_t e;
    json_t *j = json_loadb(line, (size_t)(nl - line), 0, &e);
    if (j == NULL)
      fail_msg("line %d is not JSON (%s): %.*s", k, e.text, (int)(nl - line),
               line);
    assert_string_equal(json_string_value(json_object_get(j, "id")), s->id);
    assert_string_equal(json_string_value(json_object_get(j, "expires")),
                        s->expires);
    assert_true(json_is_true(json_object_get(j, "expired")));
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")),
                     strlen(s->json));
    json_t *rec = parse(s->json);
    assert_true(json_equal(json_object_get(j, "session"), rec));
    json_decref(rec);
    /* The stored text itself: 0.10 stays 0.10. */
    char *one = strndup(line, (size_t)(nl - line));
    assert_non_null(one);
    assert_non_null(strstr(one, "\"f\":0.10,"));
    free(one);
    json_decref(j);
  }
  assert_string_equal(line, "");
  assert_int_equal(k, N_EXPIRED);
}

/* --expired: the expired sessions the store still holds (what purge
 * removes), in expiry order; exit 4 with the reason where the store has
 * none to show. */
static void t_expired(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char want[1024] = "", sorted[1024];
  int mode = expired_mode;
  (void)state;
  RUN(&r, "show", sessions[0].id, "--expired");
  expect_fail(&r, 2, "--expired goes with count or list");
  if (mode == EXP_PROBE) {
    csn_store *st = open_store();
    size_t n = 0;
    int rc = csn_store_all_expired(st, NULL, &n); /* EINVAL if it has it */
    csn_store_free(st);
    if (rc == CSN_ENOTSUP) {
      RUN(&r, "count", "--expired");
      expect_fail(&r, 4, "cannot enumerate expired sessions");
      RUN(&r, "list", "--expired", "--json");
      expect_fail(&r, 4, "list --expired");
    } else {
      /* Whatever it still holds, only expired sessions. */
      RUN(&r, "list", "--expired", "--json", "--unsorted");
      expect_ok(&r, NULL);
      for (const char *line = r.out, *nl; (nl = strchr(line, '\n')) != NULL;
           line = nl + 1)
        assert_true(strstr(line, "\"id\":\"e-expired\"") != NULL ||
                    strstr(line, "\"id\":\"--f-expired\"") != NULL);
    }
    run_free(&r);
    return;
  }
  if (mode == EXP_SELF) {
    /* Redis deletes each key when it expires: nothing to enumerate, and
     * the command says why instead of printing 0. */
    RUN(&r, "count", "--expired");
    expect_fail(&r, 4, "this store removes expired sessions itself");
    RUN(&r, "--expired", "--json", "count");
    expect_fail(&r, 4, "count --expired");
    RUN(&r, "list", "--expired");
    expect_fail(&r, 4, "list --expired: this store removes expired sessions "
                       "itself");
    RUN(&r, "list", "--expired", "--unsorted", "--json");
    expect_fail(&r, 4, "removes expired sessions itself");
    run_free(&r);
    return;
  }

  RUN(&r, "count", "--expired");
  expect_ok(&r, "2\n");
  RUN(&r, "--expired", "--json", "count");
  expect_ok(&r, "{\"count\":2}\n");
  /* The live count is unchanged by looking. */
  RUN(&r, "count");
  expect_ok(&r, "4\n");

  /* id TAB expires TAB bytes, the longest expired first; the bytes are
   * the record as written (the store keeps it byte for byte). */
  for (int k = 0; k < N_EXPIRED; k++) {
    const sess *s = &sessions[expired_order[k]];
    char line[512];
    snprintf(line, sizeof line, "%s\t%s\t%zu\n", s->id, s->expires,
             strlen(s->json));
    strcat(want, line);
  }
  RUN(&r, "list", "--expired");
  expect_ok(&r, want);
  RUN(&r, "--expired", "list", "--unsorted");
  expect_ok(&r, NULL);
  /* Either order, the same two lines. */
  snprintf(sorted, sizeof sorted, "%s", want);
  if (strcmp(r.out, want) != 0) {
    const char *second = strchr(want, '\n') + 1;
    snprintf(sorted, sizeof sorted, "%s%.*s", second,
             (int)(second - want), want);
  }
  assert_string_equal(r.out, sorted);
  RUN(&r, "list", "--expired", "--json");
  expect_ok(&r, NULL);
  check_expired_lines(r.out);

  /* purge removes exactly those: none is left to list, every live one
   * stays. */
  RUN(&r, "purge");
  expect_ok(&r, "2 expired sessions removed\n");
  RUN(&r, "count", "--expired");
  expect_ok(&r, "0\n");
  RUN(&r, "list", "--expired", "--json");
  expect_ok(&r, "");
  RUN(&r, "count");
  expect_ok(&r, "4\n");
  run_free(&r);
}

static void t_show(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char want[1024];
  size_t len = 0;
  (void)state;
  for (int i = 0; i < N_LIVE; i++) {
    char *text = stored(sessions[i].id, &len);
    snprintf(want, sizeof want, "%.*s\n", (int)len, text);
    csn_free(text);
    /* "-dash-no-expiry" is an id, not an option. */
    RUN(&r, "show", sessions[i].id);
    expect_ok(&r, want);
  }
  RUN(&r, "--json", "show", "b-one-hour");
  expect_ok(&r, NULL);
  json_t *j = parse(r.out);
  assert_string_equal(json_string_value(json_object_get(j, "id")),
                      "b-one-hour");
  assert_string_equal(json_string_value(json_object_get(j, "expires")),
                      sessions[3].expires);
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(j, "session"), "n")), 3);
  json_decref(j);
  RUN(&r, "show", "-dash-no-expiry", "--json");
  expect_ok(&r, NULL);
  j = parse(r.out);
  assert_true(json_is_null(json_object_get(j, "expires")));
  json_decref(j);

  /* Unknown and expired ids: 1, nothing on stdout. */
  RUN(&r, "show", "no-such-id");
  expect_fail(&r, 1, "no session no-such-id");
  RUN(&r, "--json", "show", "e-expired");
  expect_fail(&r, 1, "no session e-expired");
  /* An id starting with "--" after "--". */
  RUN(&r, "show", "--", "--f-expired");
  expect_fail(&r, 1, "no session --f-expired");
  RUN(&r, "show", "--f-expired");
  expect_fail(&r, 2, "unknown option --f-expired");
  RUN(&r, "show");
  expect_fail(&r, 2, "show takes one session id");
  RUN(&r, "show", "a", "b");
  expect_fail(&r, 2, "show takes one session id");
  run_free(&r);
}

static void t_destroy_purge_clear(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char want[128];
  (void)state;
  RUN(&r, "destroy", "b-one-hour");
  expect_ok(&r, "");
  RUN(&r, "count");
  expect_ok(&r, "3\n");
  RUN(&r, "show", "b-one-hour");
  expect_fail(&r, 1, "no session");
  RUN(&r, "destroy", "b-one-hour"); /* idempotent */
  expect_ok(&r, "");

  /* purge removes the two expired sessions the store still holds (Redis
   * never holds them) and no live one. */
  if (expect_purged == PURGED_0_TO_2) {
    RUN(&r, "purge", "--json");
    expect_ok(&r, NULL);
    json_t *j = parse(r.out);
    json_t *n = json_object_get(j, "removed");
    int is_int = json_is_integer(n);
    json_int_t removed = json_integer_value(n);
    json_decref(j);
    assert_true(is_int);
    if (removed < 0 || removed > 2)
      fail_msg("purge removed %lld, expected 0 to 2", (long long)removed);
  } else {
    snprintf(want, sizeof want, "%zu expired sessions removed\n",
             expect_purged);
    RUN(&r, "purge");
    expect_ok(&r, want);
  }
  RUN(&r, "purge", "--json");
  expect_ok(&r, "{\"removed\":0}\n");
  RUN(&r, "count");
  expect_ok(&r, "3\n");

  RUN(&r, "clear");
  expect_fail(&r, 2, "clear --yes");
  RUN(&r, "count", "--json");
  expect_ok(&r, "{\"count\":3}\n");
  RUN(&r, "--yes", "clear");
  expect_ok(&r, "");
  RUN(&r, "count");
  expect_ok(&r, "0\n");
  RUN(&r, "list");
  expect_ok(&r, "");
  RUN(&r, "list", "--json");
  expect_ok(&r, "");
  run_free(&r);
}

/* A malformed URL for this store: 2, and the parameter named, not its
 * value. */
static void t_bad_url(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char url[1200];
  (void)state;
  snprintf(url, sizeof url, "%s%cbogus_token=%s", store_url,
           strchr(store_url, '?') ? '&' : '?', PASSWORD);
  run_env(&r, url, NULL, "count", (char *)NULL);
  expect_fail(&r, 2, "bogus");
  run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Usage tests (no store needed)                                            */
/* ------------------------------------------------------------------------ */

static void t_usage(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  (void)state;
  run_env(&r, NULL, NULL, (char *)NULL);
  assert_int_equal(r.status, 2);
  assert_string_equal(r.out, "");
  assert_non_null(strstr(r.err, "usage: csession"));
  run_env(&r, NULL, NULL, "--help", (char *)NULL);
  expect_ok(&r, NULL);
  assert_non_null(strstr(r.out, "usage: csession"));
  assert_non_null(strstr(r.out, "exit status"));
  run_env(&r, NULL, NULL, "frobnicate", (char *)NULL);
  expect_fail(&r, 2, "unknown command frobnicate");
  run_env(&r, NULL, NULL, "count", "--nope", (char *)NULL);
  expect_fail(&r, 2, "unknown option --nope");
  /* A misspelt --store=URL is named, its URL not echoed. */
  run_env(&r, NULL, NULL, "--stor=redis://:" PASSWORD "@h/0", "count",
          (char *)NULL);
  expect_fail(&r, 2, "unknown option --stor\n");
  run_env(&r, NULL, NULL, "count", (char *)NULL);
  expect_fail(&r, 2, "needs --store URL");
  run_env(&r, "", NULL, "list", "--store", (char *)NULL);
  expect_fail(&r, 2, "--store needs a value");
  run_env(&r, "nosuch://user:" PASSWORD "@host", NULL, "count", (char *)NULL);
  expect_fail(&r, 2, "unknown store scheme");
  run_env(&r, "memory://", NULL, "list", "--unsorted", "--expired",
          "--json", "count", (char *)NULL);
  expect_fail(&r, 2, "takes no argument");
  run_env(&r, "memory://", NULL, "count", "--unsorted", (char *)NULL);
  expect_fail(&r, 2, "--unsorted goes with list");
  run_env(&r, "memory://", NULL, "destroy", (char *)NULL);
  expect_fail(&r, 2, "destroy takes one session id");
  /* The memory store is per process: the command sees an empty one. */
  run_env(&r, "memory://", NULL, "count", (char *)NULL);
  expect_ok(&r, "0\n");
  run_env(&r, "memory://", NULL, "--json", "list", (char *)NULL);
  expect_ok(&r, "");
  /* ... and no expired one (it has all_expired: no exit 4). */
  run_env(&r, "memory://", NULL, "count", "--expired", (char *)NULL);
  expect_ok(&r, "0\n");
  run_env(&r, "memory://", NULL, "list", "--expired", (char *)NULL);
  expect_ok(&r, "");
  run_free(&r);
}

static void t_version(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char want[128];
  (void)state;
  snprintf(want, sizeof want, "csession %s\n", csn_version_string());
  run_env(&r, NULL, NULL, "version", (char *)NULL);
  expect_ok(&r, want);
  run_env(&r, NULL, NULL, "version", "--json", (char *)NULL);
  expect_ok(&r, NULL);
  json_t *j = parse(r.out);
  assert_string_equal(json_string_value(json_object_get(j, "version")),
                      csn_version_string());
  json_decref(j);
  run_free(&r);
}

/* sign and unsign, the secret from $CSN_SECRET (off argv). express-
 * session's own example: "apple" with "keyboard cat". */
static void t_cookie(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  const char *cat = "keyboard cat";
  const char *apple =
      "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU";
  char want[256];
  (void)state;
  snprintf(want, sizeof want, "%s\n", apple);
  run_env(&r, NULL, cat, "sign", "apple", (char *)NULL);
  expect_ok(&r, want);
  run_env(&r, NULL, cat, "--json", "sign", "apple", (char *)NULL);
  snprintf(want, sizeof want, "{\"value\":\"%s\"}\n", apple);
  expect_ok(&r, want);
  run_env(&r, NULL, cat, "unsign", apple, (char *)NULL);
  expect_ok(&r, "apple\n");
  run_env(&r, NULL, cat, "unsign", apple, "--json", (char *)NULL);
  expect_ok(&r, "{\"id\":\"apple\",\"secret\":1}\n");
  /* An older secret verifies, and says so. */
  run_env(&r, NULL, NULL, "--secret", "new one", "--secret", cat, "unsign",
          apple, (char *)NULL);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "apple\n");
  assert_non_null(strstr(r.err, "secret #2"));
  /* A value that does not verify is "not found" (1). */
  run_env(&r, NULL, "another secret", "unsign", apple, (char *)NULL);
  expect_fail(&r, 1, "does not verify");
  run_env(&r, NULL, cat, "unsign", "apple", (char *)NULL);
  expect_fail(&r, 1, "not a signed value");
  run_env(&r, NULL, NULL, "sign", "apple", (char *)NULL);
  expect_fail(&r, 2, "needs --secret");
  run_free(&r);
}

/* Stores that cannot be reached: 3, the URL shown with its password
 * replaced, and the password nowhere. */
static void t_unreachable(void **state) {
  static run_out r; /* static: still reachable if an assertion jumps out */
  char url[1200];
  unsigned port = proc_free_port(); /* nothing listens there */
  (void)state;
  assert_true(port != 0);
#ifdef CSN_TEST_HAVE_REDIS
  snprintf(url, sizeof url, "redis://user:%s@127.0.0.1:%u/0", PASSWORD, port);
  run_env(&r, url, NULL, "count", (char *)NULL);
  expect_fail(&r, 3, "redis://user:***@127.0.0.1");
  run_env(&r, NULL, NULL, "list", "--json", "--store", url, (char *)NULL);
  expect_fail(&r, 3, "***");
#endif
#ifdef CSN_TEST_HAVE_PG
  snprintf(url, sizeof url, "postgresql://user:%s@127.0.0.1:%u/db", PASSWORD,
           port);
  run_env(&r, url, NULL, "show", "x", (char *)NULL);
  expect_fail(&r, 3, "postgresql://user:***@127.0.0.1");
#endif
#ifdef CSN_TEST_HAVE_MONGO
  snprintf(url, sizeof url, "mongodb://user:%s@127.0.0.1:%u/db", PASSWORD,
           port);
  run_env(&r, url, NULL, "count", (char *)NULL);
  expect_fail(&r, 3, "***");
#endif
#ifdef CSN_TEST_HAVE_SQLITE
  /* A database in a directory that does not exist. */
  snprintf(url, sizeof url, "sqlite://%s/none/s.db", tmp_dir);
  run_env(&r, url, NULL, "count", (char *)NULL);
  expect_fail(&r, 3, "cannot open");
#endif
  /* A file store whose directory cannot be made (a file is in the way),
   * with a secret in the URL: the secret stays hidden. */
  snprintf(url, sizeof url, "%s/blocker", tmp_dir);
  FILE *f = fopen(url, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(url, sizeof url, "file://%s/blocker/sub?secret=%s", tmp_dir,
           FILE_SECRET);
  run_env(&r, url, NULL, "count", (char *)NULL);
  expect_fail(&r, 3, "secret=***");
  snprintf(url, sizeof url, "file://%s/x?secret=%s&ttl=nope", tmp_dir,
           FILE_SECRET);
  run_env(&r, url, NULL, "list", (char *)NULL);
  expect_fail(&r, 2, "ttl");
  run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void remove_tree(const char *dir) {
  char cmd[700];
  /* Our own mkdtemp() directory only; its name has no quote. */
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "test_cli: could not remove %s\n", dir);
}

static const struct CMUnitTest store_tests[] = {
    cmocka_unit_test_setup(t_count, populate),
    cmocka_unit_test_setup(t_list, populate),
    cmocka_unit_test_setup(t_list_json, populate),
    cmocka_unit_test_setup(t_expired, populate),
    cmocka_unit_test_setup(t_show, populate),
    cmocka_unit_test_setup(t_destroy_purge_clear, populate),
    cmocka_unit_test(t_bad_url),
};

static const struct CMUnitTest usage_tests[] = {
    cmocka_unit_test(t_usage),
    cmocka_unit_test(t_version),
    cmocka_unit_test(t_cookie),
    cmocka_unit_test(t_unreachable),
};

/* The table the pg store made (create_table=1) goes at the end: the
 * database is shared with other tests. */
static void drop_pg_table(const char *table) {
#ifdef CSN_TEST_HAVE_PG
  char sql[256];
  PGconn *c = PQconnectdb(getenv("CSN_TEST_PG_URL"));
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS \"%s\"", table);
  if (PQstatus(c) == CONNECTION_OK)
    PQclear(PQexec(c, sql));
  else
    fprintf(stderr, "test_cli: cannot drop %s: %s", table,
            PQerrorMessage(c));
  PQfinish(c);
#else
  (void)table;
#endif
}

/* The server URL of a store, with our own namespace appended; 77 when it
 * is not set. */
static int server_url(const char *var, const char *query) {
  const char *base = getenv(var);
  if (base == NULL || base[0] == '\0') {
    fprintf(stderr, "test_cli: %s is not set; run it with "
                    "scripts/services.sh run ctest ... (skipped)\n", var);
    return 77;
  }
  snprintf(store_url, sizeof store_url, "%s%c%s", base,
           strchr(base, '?') ? '&' : '?', query);
  return 0;
}

int main(int argc, char **argv) {
  const char *kind = argc > 1 ? argv[1] : "usage";
  const char *tmp = getenv("TMPDIR");
  char ns[128];
  int rc = 0;

  cli_bin = getenv("CSN_CLI_BIN");
  if (cli_bin == NULL || access(cli_bin, X_OK) != 0) {
    fprintf(stderr, "test_cli: CSN_CLI_BIN must name the csession binary\n");
    return 1;
  }
  snprintf(tmp_dir, sizeof tmp_dir, "%s/csn_cli_XXXXXX",
           tmp && tmp[0] ? tmp : "/tmp");
  if (mkdtemp(tmp_dir) == NULL) {
    perror("test_cli: mkdtemp");
    return 1;
  }
  if (csn_stores_register_all() != CSN_OK)
    return 1;
  snprintf(ns, sizeof ns, "csn_cli_%ld", (long)getpid());

  if (strcmp(kind, "usage") == 0) {
    rc = cmocka_run_group_tests_name("cli_usage", usage_tests, NULL, NULL);
  } else {
    if (strcmp(kind, "file") == 0) {
      snprintf(store_url, sizeof store_url, "file://%s/sessions?reap=0",
               tmp_dir);
      expect_purged = 2;
      expired_mode = EXP_EXACT;
    } else if (strcmp(kind, "sqlite") == 0) {
      snprintf(store_url, sizeof store_url, "sqlite://%s/s.db?prune=0",
               tmp_dir);
      expect_purged = 2;
      expired_mode = EXP_EXACT;
    } else if (strcmp(kind, "redis") == 0) {
      char q[160];
      snprintf(q, sizeof q, "prefix=%s:", ns);
      rc = server_url("CSN_TEST_REDIS_URL", q);
      expect_purged = 0; /* Redis drops expired keys itself */
      expired_mode = EXP_SELF;
    } else if (strcmp(kind, "pg") == 0) {
      char q[160];
      snprintf(q, sizeof q, "table=%s&create_table=1&prune=0", ns);
      rc = server_url("CSN_TEST_PG_URL", q);
      expect_purged = 2;
      expired_mode = EXP_EXACT;
    } else if (strcmp(kind, "mongo") == 0) {
      char q[160];
      snprintf(q, sizeof q, "collection=%s", ns);
      rc = server_url("CSN_TEST_MONGO_URL", q);
      expect_purged = PURGED_0_TO_2; /* the TTL index may drop them first */
      expired_mode = EXP_PROBE;
    } else {
      fprintf(stderr, "test_cli: unknown store %s\n", kind);
      rc = 1;
    }
    if (rc == 0) {
      char name[64];
      snprintf(name, sizeof name, "cli_%s", kind);
      rc = cmocka_run_group_tests_name(name, store_tests, NULL, NULL);
      if (strcmp(kind, "pg") == 0)
        drop_pg_table(ns);
    }
  }
  for (int i = 0; i < N_SESS; i++)
    free(sessions[i].json);
  remove_tree(tmp_dir);
  return rc;
}
