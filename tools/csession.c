/* csession - the operator's command: count, list, show, destroy, purge and
 * clear sessions in any store csession can open, and sign or verify cookie
 * values by hand.
 *
 *   csession --store sqlite:///var/lib/app/sessions.db count
 *   CSN_STORE=redis://127.0.0.1:6379/0 csession list
 *   csession --secret 'keyboard cat' unsign 's%3Aapple.D8Y...'
 *
 * Exit status: 0 on success, 1 when the operation failed (the store's
 * message is printed), 2 on a usage error, 3 when a session is not found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csn/csn.h"
#include "csn/csn_stores.h"

#define MAX_SECRETS 16

static void usage(FILE *f) {
  fprintf(f,
          "usage: csession [--store URL] COMMAND [ARGS]\n"
          "\n"
          "store commands (URL from --store or $CSN_STORE):\n"
          "  count            number of live sessions\n"
          "  list             one line per session: id, expires, size\n"
          "  show ID          the stored record (JSON)\n"
          "  destroy ID       remove one session\n"
          "  purge            remove expired sessions now\n"
          "  clear --yes      remove every session\n"
          "\n"
          "cookie commands (--secret S, repeatable; first signs):\n"
          "  sign ID          the cookie value for ID (URL-encoded)\n"
          "  unsign VALUE     the id inside a cookie value, if it verifies\n"
          "\n"
          "  version          print the library version\n"
          "\n"
          "store schemes in this build: %s\n",
          csn_stores_schemes());
}

static int store_fail(csn_store *st, const char *what, int rc) {
  const char *msg = st ? csn_store_errmsg(st) : "";
  fprintf(stderr, "csession: %s: %s%s%s\n", what, csn_strerror(rc),
          msg[0] ? ": " : "", msg);
  return 1;
}

/* list: the expiry is read from the record's own cookie, the way every
 * Node store computes it. */
static int print_entry(const char *sid, const char *json, size_t len,
                       void *ud) {
  json_t *root = json_loadb(json, len, 0, NULL);
  json_t *exp = root ? json_object_get(json_object_get(root, "cookie"),
                                       "expires")
                     : NULL;
  (void)ud;
  printf("%s\t%s\t%zu\n", sid,
         json_is_string(exp) ? json_string_value(exp) : "-", len);
  json_decref(root);
  return 0;
}

static int cmd_store(const char *url, int argc, char **argv) {
  const char *cmd = argv[0];
  csn_store *st = NULL;
  char err[512];
  int rc, ret = 0;

  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "csession: %s needs --store URL (or CSN_STORE)\n", cmd);
    return 2;
  }
  if (strcmp(cmd, "show") == 0 || strcmp(cmd, "destroy") == 0) {
    if (argc != 2) {
      fprintf(stderr, "csession: %s takes one session id\n", cmd);
      return 2;
    }
  } else if (strcmp(cmd, "clear") == 0) {
    if (argc != 2 || strcmp(argv[1], "--yes") != 0) {
      fprintf(stderr, "csession: clear removes every session; "
                      "confirm with: csession clear --yes\n");
      return 2;
    }
  } else if (argc != 1) {
    fprintf(stderr, "csession: %s takes no argument\n", cmd);
    return 2;
  }

  rc = csn_store_open(url, &st, err, sizeof err);
  if (rc < 0) {
    char shown[256]; /* never the URL's password */
    fprintf(stderr, "csession: cannot open %s: %s\n",
            csn_url_redact(url, shown, sizeof shown),
            err[0] ? err : csn_strerror(rc));
    return 1;
  }

  if (strcmp(cmd, "count") == 0) {
    size_t n = 0;
    rc = csn_store_length(st, &n);
    if (rc < 0)
      ret = store_fail(st, "count", rc);
    else
      printf("%zu\n", n);
  } else if (strcmp(cmd, "list") == 0) {
    rc = csn_store_all(st, print_entry, NULL);
    if (rc < 0)
      ret = store_fail(st, "list", rc);
  } else if (strcmp(cmd, "show") == 0) {
    char *json = NULL;
    size_t len = 0;
    rc = csn_store_get(st, argv[1], &json, &len);
    if (rc == CSN_ENOENT) {
      fprintf(stderr, "csession: no session %s\n", argv[1]);
      ret = 3;
    } else if (rc < 0) {
      ret = store_fail(st, "show", rc);
    } else {
      fwrite(json, 1, len, stdout);
      putchar('\n');
      csn_free(json);
    }
  } else if (strcmp(cmd, "destroy") == 0) {
    rc = csn_store_destroy(st, argv[1]);
    if (rc < 0)
      ret = store_fail(st, "destroy", rc);
  } else if (strcmp(cmd, "purge") == 0) {
    size_t removed = 0;
    rc = csn_store_prune(st, &removed);
    if (rc < 0)
      ret = store_fail(st, "purge", rc);
    else
      printf("%zu expired sessions removed\n", removed);
  } else if (strcmp(cmd, "clear") == 0) {
    rc = csn_store_clear(st);
    if (rc < 0)
      ret = store_fail(st, "clear", rc);
  }
  csn_store_free(st);
  return ret;
}

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

static int cmd_cookie(const char *const *secrets, size_t n, int argc,
                      char **argv) {
  if (n == 0) {
    fprintf(stderr, "csession: %s needs --secret S\n", argv[0]);
    return 2;
  }
  if (argc != 2) {
    fprintf(stderr, "csession: %s takes one argument\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[0], "sign") == 0) {
    char out[1024];
    size_t outlen = sizeof out;
    int rc = csn_cookie_sign(argv[1], strlen(argv[1]), secrets[0],
                             strlen(secrets[0]), out, &outlen);
    if (rc < 0) {
      fprintf(stderr, "csession: sign: %s\n", csn_strerror(rc));
      return 1;
    }
    fputs("s%3A", stdout);
    put_encoded(out, outlen);
    putchar('\n');
    return 0;
  } else {
    /* Accept the value as a browser shows it (percent-encoded) or raw. */
    const char *in = argv[1];
    size_t len = strlen(in), o = 0, vlen = 0;
    char *dec = malloc(len + 1);
    int rc;
    if (dec == NULL)
      return 1;
    for (size_t i = 0; i < len; i++) {
      if (in[i] == '%' && i + 2 < len && unhex(in[i + 1]) >= 0 &&
          unhex(in[i + 2]) >= 0) {
        dec[o++] = (char)(unhex(in[i + 1]) * 16 + unhex(in[i + 2]));
        i += 2;
      } else {
        dec[o++] = in[i];
      }
    }
    dec[o] = '\0';
    if (o < 2 || dec[0] != 's' || dec[1] != ':') {
      fprintf(stderr, "csession: not a signed value (no s: prefix)\n");
      free(dec);
      return 1;
    }
    rc = csn_cookie_unsign(dec + 2, o - 2, secrets, NULL, n, &vlen);
    if (rc < 0) {
      fprintf(stderr, "csession: signature does not verify\n");
      free(dec);
      return 1;
    }
    printf("%.*s\n", (int)vlen, dec + 2);
    if (rc > 0)
      fprintf(stderr, "csession: verified with secret #%d (not the "
                      "signing one)\n", rc + 1);
    free(dec);
    return 0;
  }
}

int main(int argc, char **argv) {
  const char *url = getenv("CSN_STORE");
  const char *secrets[MAX_SECRETS];
  size_t nsecrets = 0;
  int i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
      url = argv[++i];
    } else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc) {
      if (nsecrets == MAX_SECRETS) {
        fprintf(stderr, "csession: at most %d secrets\n", MAX_SECRETS);
        return 2;
      }
      secrets[nsecrets++] = argv[++i];
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      fprintf(stderr, "csession: unknown option %s\n", argv[i]);
      usage(stderr);
      return 2;
    } else {
      break;
    }
  }
  if (nsecrets == 0 && getenv("CSN_SECRET"))
    secrets[nsecrets++] = getenv("CSN_SECRET");
  if (i >= argc) {
    usage(stderr);
    return 2;
  }
  if (csn_stores_register_all() < 0) {
    fprintf(stderr, "csession: cannot register stores: %s\n",
            csn_last_error());
    return 1;
  }
  if (strcmp(argv[i], "version") == 0) {
    printf("csession %s\n", csn_version_string());
    return 0;
  }
  if (strcmp(argv[i], "sign") == 0 || strcmp(argv[i], "unsign") == 0)
    return cmd_cookie(secrets, nsecrets, argc - i, argv + i);
  if (strcmp(argv[i], "count") == 0 || strcmp(argv[i], "list") == 0 ||
      strcmp(argv[i], "show") == 0 || strcmp(argv[i], "destroy") == 0 ||
      strcmp(argv[i], "purge") == 0 || strcmp(argv[i], "clear") == 0)
    return cmd_store(url, argc - i, argv + i);
  fprintf(stderr, "csession: unknown command %s\n", argv[i]);
  usage(stderr);
  return 2;
}
