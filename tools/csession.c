/* csession - the operator's command: count, list, show, destroy, purge and
 * clear sessions in any store csession can open, and sign or verify cookie
 * values by hand. tools/csession.1 is its manual.
 *
 *   CSN_STORE=sqlite:///var/lib/app/sessions.db csession count
 *   csession --store redis://127.0.0.1:6379/0 list --json
 *   CSN_SECRET='keyboard cat' csession unsign 's%3Aapple.D8Y...'
 *
 * Options go anywhere on the line ("--" ends them, for an id that starts
 * with "--"). A store URL with a password, or a file store's ?secret=, is
 * best given in $CSN_STORE: argv is visible to every user of the machine.
 * Messages never show a URL's password (csn_url_redact()).
 *
 * Exit status (scripts rely on it; the manual lists it too):
 *   0  success
 *   1  not found: show of an unknown id, unsign of a value that does not
 *      verify
 *   2  usage: bad arguments, no store URL, a malformed URL or an unknown
 *      scheme
 *   3  the store failed: unreachable, refused, an I/O error, out of memory,
 *      or stdout could not be written
 *   4  the store cannot do it: an optional method it lacks (--expired
 *      on a store without all_expired, such as Redis, which removes
 *      expired sessions itself)
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csn/csn.h"
#include "csn/csn_store.h"
#include "csn/csn_stores.h"

#define MAX_SECRETS 16

enum {
  EXIT_OK = 0,
  EXIT_NOTFOUND = 1,
  EXIT_USAGE = 2,
  EXIT_STORE = 3,
  EXIT_NOTSUP = 4
};

/* No expiry (a browser-session cookie) or one we cannot read: sorts last. */
#define NO_EXPIRY INT64_MAX

typedef struct opts {
  const char *url;
  const char *secrets[MAX_SECRETS];
  size_t nsecrets;
  int json, expired, unsorted, yes;
} opts;

static void usage(FILE *f) {
  fprintf(f,
          "usage: csession [OPTIONS] COMMAND [ARGS]   (options go anywhere)\n"
          "\n"
          "store commands (URL from --store or $CSN_STORE):\n"
          "  count            number of live sessions\n"
          "  list             one line per session, soonest expiry first:\n"
          "                   id, expires, bytes\n"
          "  show ID          the stored record (JSON)\n"
          "  destroy ID       remove one session\n"
          "  purge            remove expired sessions now\n"
          "  clear --yes      remove every session\n"
          "\n"
          "cookie commands (--secret S, repeatable, or $CSN_SECRET; the "
          "first signs):\n"
          "  sign ID          the cookie value for ID (URL-encoded)\n"
          "  unsign VALUE     the id inside a cookie value, if it verifies\n"
          "\n"
          "  version          print the library version\n"
          "\n"
          "options:\n"
          "  --store URL      the store (prefer $CSN_STORE for a URL with a "
          "password)\n"
          "  --json           JSON output (list: one object per line)\n"
          "  --unsorted       list in store order, in constant memory\n"
          "  --expired        count/list: the expired sessions the store "
          "still holds\n"
          "                   (what purge would remove), soonest expiry first\n"
          "\n"
          "exit status: 0 ok, 1 not found, 2 usage or bad URL, 3 store "
          "error, 4 not supported\n"
          "store schemes in this build: %s\n",
          csn_stores_schemes());
}

/* ------------------------------------------------------------------------ */
/* Output helpers                                                           */
/* ------------------------------------------------------------------------ */

/* s as a JSON string. Store ids and the record's own text are not
 * guaranteed to be UTF-8; a string that is not gets each byte above 0x7F
 * written as \u00XX, which keeps the line valid JSON (and lossy, visibly). */
static void put_json_string(const char *s, size_t n) {
  json_t *probe = json_stringn(s, n); /* NULL: not valid UTF-8 */
  int utf8 = probe != NULL;
  json_decref(probe);
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* Date.prototype.toISOString()'s form, which is what every store's records
 * carry: YYYY-MM-DDTHH:MM:SS.sssZ (the fraction optional here). Returns 0
 * and the epoch milliseconds, or -1. */
static int parse_iso(const char *s, size_t n, int64_t *out) {
  int v[6], ms = 0;
  const int at[6] = {0, 5, 8, 11, 14, 17}, w[6] = {4, 2, 2, 2, 2, 2};
  const char sep[6] = {'-', '-', 'T', ':', ':', 0};
  size_t i = 19;
  if (n < 20)
    return -1;
  for (int f = 0; f < 6; f++) {
    v[f] = 0;
    for (int k = 0; k < w[f]; k++) {
      char c = s[at[f] + k];
      if (c < '0' || c > '9')
        return -1;
      v[f] = v[f] * 10 + (c - '0');
    }
    if (sep[f] && s[at[f] + w[f]] != sep[f])
      return -1;
  }
  if (s[i] == '.') {
    int digits = 0;
    for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
      if (digits < 3)
        ms = ms * 10 + (s[i] - '0');
    if (digits == 0)
      return -1;
    for (; digits < 3; digits++)
      ms *= 10;
  }
  if (i + 1 != n || s[i] != 'Z' || v[1] < 1 || v[1] > 12 || v[2] < 1 ||
      v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
    return -1;
  /* Days since 1970-01-01 of a proleptic Gregorian date (the civil-from-
   * days algorithm run backwards). */
  int64_t y = v[0] - (v[1] <= 2);
  int64_t era = y / 400;
  int64_t yoe = y - era * 400;
  int64_t mp = (v[1] + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5 + v[2] - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  *out = ((days * 24 + v[3]) * 60 + v[4]) * 60000 + (int64_t)v[5] * 1000 + ms;
  return 0;
}

/* What the command reads from a record: its cookie's expiry, the way every
 * Node store computes it (cookie.expires, an ISO string or null). */
typedef struct rec_info {
  int is_json;         /* the text parses as a JSON object or array */
  char expires[64];    /* cookie.expires as stored, "" when none/odd */
  int64_t exp_ms;      /* parsed, or NO_EXPIRY */
} rec_info;

static void rec_read(const char *json, size_t len, rec_info *ri) {
  /* NUL is legal inside a JSON string ("\u0000"): still a record. */
  json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, NULL);
  json_t *exp = json_object_get(json_object_get(root, "cookie"), "expires");
  ri->is_json = root != NULL;
  ri->expires[0] = '\0';
  ri->exp_ms = NO_EXPIRY;
  if (json_is_string(exp) &&
      json_string_length(exp) < sizeof ri->expires &&
      strlen(json_string_value(exp)) == json_string_length(exp)) {
    memcpy(ri->expires, json_string_value(exp), json_string_length(exp) + 1);
    if (parse_iso(ri->expires, json_string_length(exp), &ri->exp_ms) != 0)
      ri->exp_ms = NO_EXPIRY;
  }
  json_decref(root);
}

/* One session as a JSON object on one line (list --json and show --json):
 *   {"id":"...","expires":"2030-01-01T00:00:00.000Z"|null,"expired":false,
 *    "bytes":N,"session":{...the record...}}
 * "expired" is the store's verdict when it gave one (`expired`: 1 for a
 * session from all_expired), else whether cookie.expires has passed.
 * "session" is the stored text itself, not a re-serialisation (numbers and
 * member order stay as the application wrote them), with line breaks (only
 * ever whitespace in valid JSON) turned into spaces; null when the stored
 * text is not JSON. "expires" is the cookie's text when it is a date. */
static void put_session_json(const char *sid, const char *json, size_t len,
                             const rec_info *ri, int64_t now, int expired) {
  fputs("{\"id\":", stdout);
  put_json_string(sid, strlen(sid));
  fputs(",\"expires\":", stdout);
  if (ri->exp_ms != NO_EXPIRY)
    put_json_string(ri->expires, strlen(ri->expires));
  else
    fputs("null", stdout);
  printf(",\"expired\":%s,\"bytes\":%zu,\"session\":",
         expired || (ri->exp_ms != NO_EXPIRY && ri->exp_ms <= now) ? "true"
                                                                  : "false",
         len);
  if (ri->is_json) {
    for (size_t i = 0; i < len; i++)
      putchar(json[i] == '\n' || json[i] == '\r' ? ' ' : json[i]);
  } else {
    fputs("null", stdout);
  }
  fputs("}\n", stdout);
}

static void put_session_line(const char *sid, const rec_info *ri,
                             size_t len) {
  printf("%s\t%s\t%zu\n", sid, ri->expires[0] ? ri->expires : "-", len);
}

/* ------------------------------------------------------------------------ */
/* Store commands                                                           */
/* ------------------------------------------------------------------------ */

/* A failed store call: the store's message, the URL without its password,
 * and the exit status the failure maps to. */
static int store_fail(csn_store *st, const char *url, const char *what,
                      int rc) {
  char shown[256];
  const char *msg = csn_store_errmsg(st);
  fprintf(stderr, "csession: %s on %s: %s%s%s\n", what,
          csn_url_redact(url, shown, sizeof shown), csn_strerror(rc),
          msg[0] && strcmp(msg, csn_strerror(rc)) ? ": " : "",
          msg[0] && strcmp(msg, csn_strerror(rc)) ? msg : "");
  return rc == CSN_ENOTSUP ? EXIT_NOTSUP : EXIT_STORE;
}

/* A failed --expired walk. A store without all_expired is told apart
 * from a failing one: Redis expires its keys in the server, so there is
 * nothing to enumerate (a fact, not a limitation to work around); any
 * other store without the method cannot enumerate them. */
static int expired_fail(csn_store *st, const opts *o, const char *cmd,
                        int rc) {
  const char *name = csn_store_name(st);
  if (!o->expired || rc != CSN_ENOTSUP)
    return store_fail(st, o->url, cmd, rc);
  if (strcmp(name, "redis") == 0)
    fprintf(stderr, "csession: %s --expired: this store removes expired "
                    "sessions itself (the %s server deletes each key when "
                    "it expires), so it never holds one to %s\n",
            cmd, name, cmd);
  else
    fprintf(stderr, "csession: %s --expired: the %s store cannot enumerate "
                    "expired sessions; purge removes them and says how "
                    "many\n", cmd, name);
  return EXIT_NOTSUP;
}

static int each_count(const char *sid, const char *json, size_t len,
                      void *ud) {
  (void)sid, (void)json, (void)len;
  (*(size_t *)ud)++;
  return 0;
}

/* list keeps one of these per session to sort them: the id, the expiry and
 * the size, never the record (about 100 bytes a session with 32-character
 * ids, plus the pointer array) - except list --expired --json, which keeps
 * the records too: get() cannot read an expired one back. */
typedef struct entry {
  int64_t exp_ms;
  size_t bytes;
  char *rec;        /* the record (list --expired --json), else NULL */
  char expires[32]; /* "" when none; longer texts are not dates anyway */
  char id[];
} entry;

typedef struct walk {
  const opts *o;
  int64_t now;
  entry **v;
  size_t n, cap;
  int nomem;
} walk;

/* The sessions list walks: the live ones, or (--expired) the expired ones
 * the store still holds, which only a store with all_expired can show. */
static int walk_store(csn_store *st, const opts *o, csn_store_each_fn fn,
                      void *ud) {
  return o->expired ? csn_store_all_expired(st, fn, ud)
                    : csn_store_all(st, fn, ud);
}

/* --unsorted: print as the store hands them over, keeping nothing. */
static int each_print(const char *sid, const char *json, size_t len,
                      void *ud) {
  walk *w = ud;
  rec_info ri;
  rec_read(json, len, &ri);
  if (w->o->json)
    put_session_json(sid, json, len, &ri, w->now, w->o->expired);
  else
    put_session_line(sid, &ri, len);
  return 0;
}

static int each_collect(const char *sid, const char *json, size_t len,
                        void *ud) {
  walk *w = ud;
  rec_info ri;
  size_t idlen = strlen(sid);
  entry *e;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 256;
    entry **v = realloc(w->v, cap * sizeof *v);
    if (v == NULL)
      return w->nomem = 1;
    w->v = v;
    w->cap = cap;
  }
  e = malloc(sizeof *e + idlen + 1);
  if (e == NULL)
    return w->nomem = 1;
  e->rec = NULL;
  if (w->o->expired && w->o->json) {
    if ((e->rec = malloc(len + 1)) == NULL) {
      free(e);
      return w->nomem = 1;
    }
    memcpy(e->rec, json, len);
    e->rec[len] = '\0';
  }
  rec_read(json, len, &ri);
  e->exp_ms = ri.exp_ms;
  e->bytes = len;
  e->expires[0] = '\0';
  if (strlen(ri.expires) < sizeof e->expires)
    memcpy(e->expires, ri.expires, strlen(ri.expires) + 1);
  memcpy(e->id, sid, idlen + 1);
  w->v[w->n++] = e;
  return 0;
}

/* Soonest expiry first, no expiry last, ties by id: a stable order. */
static int entry_cmp(const void *a, const void *b) {
  const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
  if (x->exp_ms != y->exp_ms)
    return x->exp_ms < y->exp_ms ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* list, sorted: one walk collects (id, expiry, size), a sort orders them,
 * and the human listing prints from that alone. --json needs each record
 * again, and takes it with get(), one id at a time, so the records are
 * never all in memory; a session destroyed or expired in between is left
 * out (the listing is a snapshot, as any listing of a live store is).
 * get() refuses an expired session, so --expired --json prints the
 * records the walk kept. */
static int list_sorted(csn_store *st, const opts *o, int64_t now) {
  walk w = {o, now, NULL, 0, 0, 0};
  int rc = walk_store(st, o, each_collect, &w), ret = EXIT_OK;
  if (rc < 0) {
    ret = expired_fail(st, o, "list", rc);
  } else if (w.nomem) {
    fprintf(stderr, "csession: list: out of memory after %zu sessions "
                    "(--unsorted needs none)\n", w.n);
    ret = EXIT_STORE;
  } else {
    if (w.n > 1) /* qsort() may not be given NULL, even for 0 items */
      qsort(w.v, w.n, sizeof *w.v, entry_cmp);
    for (size_t i = 0; i < w.n && ret == EXIT_OK; i++) {
      entry *e = w.v[i];
      if (!o->json) {
        rec_info ri = {0, "", e->exp_ms};
        memcpy(ri.expires, e->expires, sizeof e->expires);
        put_session_line(e->id, &ri, e->bytes);
        continue;
      }
      char *json = NULL;
      size_t len = 0;
      if (e->rec != NULL) {
        rec_info ri;
        rec_read(e->rec, e->bytes, &ri);
        put_session_json(e->id, e->rec, e->bytes, &ri, now, 1);
        continue;
      }
      rc = csn_store_get(st, e->id, &json, &len);
      if (rc == CSN_ENOENT)
        continue;
      if (rc < 0) {
        ret = store_fail(st, o->url, "list", rc);
        break;
      }
      rec_info ri;
      rec_read(json, len, &ri);
      put_session_json(e->id, json, len, &ri, now, 0);
      csn_free(json);
    }
  }
  for (size_t i = 0; i < w.n; i++) {
    free(w.v[i]->rec);
    free(w.v[i]);
  }
  free(w.v);
  return ret;
}

static int cmd_store(const opts *o, int argc, char **argv) {
  const char *cmd = argv[0];
  csn_store *st = NULL;
  char err[512], shown[256];
  int rc, ret = EXIT_OK;
  int64_t now;

  if (strcmp(cmd, "show") == 0 || strcmp(cmd, "destroy") == 0) {
    if (argc != 2) {
      fprintf(stderr, "csession: %s takes one session id\n", cmd);
      return EXIT_USAGE;
    }
  } else if (argc != 1) {
    fprintf(stderr, "csession: %s takes no argument\n", cmd);
    return EXIT_USAGE;
  }
  if (strcmp(cmd, "clear") == 0 && !o->yes) {
    fprintf(stderr, "csession: clear removes every session; "
                    "confirm with: csession clear --yes\n");
    return EXIT_USAGE;
  }
  if (o->expired && strcmp(cmd, "count") != 0 && strcmp(cmd, "list") != 0) {
    fprintf(stderr, "csession: --expired goes with count or list\n");
    return EXIT_USAGE;
  }
  if (o->unsorted && strcmp(cmd, "list") != 0) {
    fprintf(stderr, "csession: --unsorted goes with list\n");
    return EXIT_USAGE;
  }
  if (o->url == NULL || o->url[0] == '\0') {
    fprintf(stderr, "csession: %s needs --store URL (or CSN_STORE)\n", cmd);
    return EXIT_USAGE;
  }

  err[0] = '\0';
  rc = csn_store_open(o->url, &st, err, sizeof err);
  if (rc < 0) {
    /* A malformed URL or an unknown scheme is the caller's to fix (2); a
     * store that cannot be reached or opened is the store's failure (3). */
    fprintf(stderr, "csession: cannot open %s: %s\n",
            csn_url_redact(o->url, shown, sizeof shown),
            err[0] ? err : csn_strerror(rc));
    return rc == CSN_EINVAL || rc == CSN_ENOTSUP ? EXIT_USAGE : EXIT_STORE;
  }

  /* --expired: length() and all() see live sessions only (the store
   * contract), so the expired ones come from all_expired(), which a store
   * that never holds an expired session (Redis) lacks: exit 4 there
   * rather than say 0. */
  now = csn_now_ms();
  if (strcmp(cmd, "count") == 0) {
    size_t n = 0;
    rc = o->expired ? csn_store_all_expired(st, each_count, &n)
                    : csn_store_length(st, &n);
    if (rc < 0)
      ret = expired_fail(st, o, "count", rc);
    else
      printf(o->json ? "{\"count\":%zu}\n" : "%zu\n", n);
  } else if (strcmp(cmd, "list") == 0) {
    if (o->unsorted) {
      walk w = {o, now, NULL, 0, 0, 0};
      rc = walk_store(st, o, each_print, &w);
      if (rc < 0)
        ret = expired_fail(st, o, "list", rc);
    } else {
      ret = list_sorted(st, o, now);
    }
  } else if (strcmp(cmd, "show") == 0) {
    char *json = NULL;
    size_t len = 0;
    rc = csn_store_get(st, argv[1], &json, &len);
    if (rc == CSN_ENOENT) {
      fprintf(stderr, "csession: no session %s\n", argv[1]);
      ret = EXIT_NOTFOUND;
    } else if (rc < 0) {
      ret = store_fail(st, o->url, "show", rc);
    } else if (o->json) {
      rec_info ri;
      rec_read(json, len, &ri);
      put_session_json(argv[1], json, len, &ri, now, 0);
    } else {
      fwrite(json, 1, len, stdout);
      putchar('\n');
    }
    csn_free(json);
  } else if (strcmp(cmd, "destroy") == 0) {
    /* A missing id is not an error (the store contract): destroy is
     * idempotent, so a script may repeat it. */
    rc = csn_store_destroy(st, argv[1]);
    if (rc < 0)
      ret = store_fail(st, o->url, "destroy", rc);
  } else if (strcmp(cmd, "purge") == 0) {
    size_t removed = 0;
    rc = csn_store_prune(st, &removed);
    if (rc < 0)
      ret = store_fail(st, o->url, "purge", rc);
    else if (o->json)
      printf("{\"removed\":%zu}\n", removed);
    else
      printf("%zu expired sessions removed\n", removed);
  } else if (strcmp(cmd, "clear") == 0) {
    rc = csn_store_clear(st);
    if (rc < 0)
      ret = store_fail(st, o->url, "clear", rc);
  }
  csn_store_free(st);
  return ret;
}

/* ------------------------------------------------------------------------ */
/* Cookie commands                                                          */
/* ------------------------------------------------------------------------ */

static void put_encoded(const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || strchr("-_.!~*'()", c))
      putchar(c);
    else
      printf("%%%c%c", hex[c >> 4], hex[c & 15]);
  }
}

static int unhex(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int cmd_cookie(const opts *o, int argc, char **argv) {
  if (o->nsecrets == 0) {
    fprintf(stderr, "csession: %s needs --secret S (or CSN_SECRET)\n",
            argv[0]);
    return EXIT_USAGE;
  }
  if (argc != 2) {
    fprintf(stderr, "csession: %s takes one argument\n", argv[0]);
    return EXIT_USAGE;
  }
  if (strcmp(argv[0], "sign") == 0) {
    char out[1024];
    size_t outlen = sizeof out;
    int rc = csn_cookie_sign(argv[1], strlen(argv[1]), o->secrets[0],
                             strlen(o->secrets[0]), out, &outlen);
    if (rc < 0) {
      fprintf(stderr, "csession: sign: %s\n", csn_strerror(rc));
      return EXIT_USAGE; /* the value is too long: the input's fault */
    }
    fputs(o->json ? "{\"value\":\"s%3A" : "s%3A", stdout);
    put_encoded(out, outlen); /* no character that JSON would escape */
    fputs(o->json ? "\"}\n" : "\n", stdout);
    return EXIT_OK;
  } else {
    /* Accept the value as a browser shows it (percent-encoded) or raw. */
    const char *in = argv[1];
    size_t len = strlen(in), n = 0, vlen = 0;
    char *dec = malloc(len + 1);
    int rc;
    if (dec == NULL) {
      fprintf(stderr, "csession: out of memory\n");
      return EXIT_STORE;
    }
    for (size_t i = 0; i < len; i++) {
      if (in[i] == '%' && i + 2 < len && unhex(in[i + 1]) >= 0 &&
          unhex(in[i + 2]) >= 0) {
        dec[n++] = (char)(unhex(in[i + 1]) * 16 + unhex(in[i + 2]));
        i += 2;
      } else {
        dec[n++] = in[i];
      }
    }
    dec[n] = '\0';
    if (n < 2 || dec[0] != 's' || dec[1] != ':') {
      fprintf(stderr, "csession: not a signed value (no s: prefix)\n");
      free(dec);
      return EXIT_NOTFOUND;
    }
    rc = csn_cookie_unsign(dec + 2, n - 2, o->secrets, NULL, o->nsecrets,
                           &vlen);
    if (rc < 0) {
      fprintf(stderr, "csession: signature does not verify\n");
      free(dec);
      return EXIT_NOTFOUND;
    }
    if (o->json) {
      fputs("{\"id\":", stdout);
      put_json_string(dec + 2, vlen);
      printf(",\"secret\":%d}\n", rc + 1);
    } else {
      printf("%.*s\n", (int)vlen, dec + 2);
      if (rc > 0)
        fprintf(stderr, "csession: verified with secret #%d (not the "
                        "signing one)\n", rc + 1);
    }
    free(dec);
    return EXIT_OK;
  }
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/* Options anywhere: every argument that starts with "--" before a bare
 * "--" is one, and the others are the command and its arguments, gathered
 * at the front of argv. A single '-' is not an option marker (generated
 * ids may start with '-'); only -h is. Returns the number of positional
 * arguments, or -1 after a usage message (or -2 for --help). */
static int parse_args(int argc, char **argv, opts *o) {
  int npos = 0, done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (done || a[0] != '-' || (a[1] != '-' && strcmp(a, "-h") != 0)) {
      argv[npos++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      done = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      return -2;
    } else if (strcmp(a, "--json") == 0) {
      o->json = 1;
    } else if (strcmp(a, "--expired") == 0) {
      o->expired = 1;
    } else if (strcmp(a, "--unsorted") == 0) {
      o->unsorted = 1;
    } else if (strcmp(a, "--yes") == 0) {
      o->yes = 1;
    } else if (strcmp(a, "--store") == 0 || strncmp(a, "--store=", 8) == 0 ||
               strcmp(a, "--secret") == 0 ||
               strncmp(a, "--secret=", 9) == 0) {
      int store = a[3] == 't';
      const char *eq = strchr(a, '='), *v;
      if (eq != NULL) {
        v = eq + 1;
      } else if (i + 1 < argc) {
        v = argv[++i];
      } else {
        fprintf(stderr, "csession: %s needs a value\n", a);
        return -1;
      }
      if (store) {
        o->url = v;
      } else if (o->nsecrets == MAX_SECRETS) {
        fprintf(stderr, "csession: at most %d secrets\n", MAX_SECRETS);
        return -1;
      } else {
        o->secrets[o->nsecrets++] = v;
      }
    } else {
      /* The name only: "--store=URL" misspelt must not echo the URL. */
      int len = (int)strcspn(a, "=");
      fprintf(stderr, "csession: unknown option %.*s\n", len, a);
      return -1;
    }
  }
  return npos;
}

int main(int argc, char **argv) {
  opts o = {0};
  const char *env = getenv("CSN_STORE");
  int npos;

  if (env != NULL && env[0] != '\0')
    o.url = env;
  npos = parse_args(argc, argv, &o);
  if (npos == -2) {
    usage(stdout);
    return EXIT_OK;
  }
  if (npos < 0) {
    fputs("(csession --help for usage)\n", stderr);
    return EXIT_USAGE;
  }
  env = getenv("CSN_SECRET");
  if (o.nsecrets == 0 && env != NULL && env[0] != '\0')
    o.secrets[o.nsecrets++] = env;
  if (npos == 0) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (csn_stores_register_all() < 0) {
    fprintf(stderr, "csession: cannot register stores: %s\n",
            csn_last_error());
    return EXIT_STORE;
  }
  if (strcmp(argv[0], "version") == 0) {
    if (npos != 1) {
      fprintf(stderr, "csession: version takes no argument\n");
      return EXIT_USAGE;
    }
    printf(o.json ? "{\"version\":\"%s\"}\n" : "csession %s\n",
           csn_version_string());
  } else if (strcmp(argv[0], "sign") == 0 || strcmp(argv[0], "unsign") == 0) {
    int ret = cmd_cookie(&o, npos, argv);
    if (ret != EXIT_OK)
      return ret;
  } else if (strcmp(argv[0], "count") == 0 || strcmp(argv[0], "list") == 0 ||
             strcmp(argv[0], "show") == 0 ||
             strcmp(argv[0], "destroy") == 0 ||
             strcmp(argv[0], "purge") == 0 || strcmp(argv[0], "clear") == 0) {
    int ret = cmd_store(&o, npos, argv);
    if (ret != EXIT_OK)
      return ret;
  } else {
    fprintf(stderr, "csession: unknown command %s\n", argv[0]);
    usage(stderr);
    return EXIT_USAGE;
  }
  /* A full disk or a closed pipe must not pass for success. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "csession: cannot write the output\n");
    return EXIT_STORE;
  }
  return EXIT_OK;
}
