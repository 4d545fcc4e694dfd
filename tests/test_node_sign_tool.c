/* test_node_sign_tool.c - csn_cookie_sign / csn_cookie_unsign from the
 * command line, so the Node interop test can compare csession with
 * cookie-signature 1.0.7 through the public API.
 *
 *   test_node_sign_tool sign SECRET VALUE        prints VALUE.SIGNATURE
 *   test_node_sign_tool unsign INPUT SECRET...   prints "INDEX VALUE", or
 *                                                "false" and exits 1
 *
 *   test_node_sign_tool parse                    reads lines "HEADER NAME"
 *                                                (both hex), prints the hex
 *                                                of the value the middleware
 *                                                would see, or "-" if absent
 *
 * A SECRET written as "hex:0001ff" stands for those bytes (as in sign.js).
 * The parse mode reaches the internal scanner (csn__cookie_header_find and
 * csn__uri_decode), so this tool links the static library.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

/* Decode "hex:..." in place; returns the byte length. */
static size_t secret_arg(char *s, const char **out) {
  size_t i, n;
  if (strncmp(s, "hex:", 4) != 0) {
    *out = s;
    return strlen(s);
  }
  n = strlen(s + 4) / 2;
  for (i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(s + 4 + 2 * i, "%2x", &v) != 1) {
      fprintf(stderr, "bad hex secret\n");
      exit(2);
    }
    s[i] = (char)v;
  }
  *out = s;
  return n;
}

/* Decode hex text s[0..n) into out; returns the byte count or -1. */
static long unhex(const char *s, size_t n, char *out) {
  size_t i;
  if (n % 2)
    return -1;
  for (i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1)
      return -1;
    out[i] = (char)v;
  }
  return (long)(n / 2);
}

/* What express-session reads: the first value under `name`, percent-decoded
 * when it holds a '%' and decoding succeeds, else raw (cookie@0.7.2). */
static int parse_mode(void) {
  static char line[1 << 16], header[1 << 15], name[1 << 10], dec[1 << 15];
  while (fgets(line, sizeof line, stdin) != NULL) {
    char *sp = strchr(line, ' ');
    const char *val = NULL;
    size_t vlen = 0, i, hn, nn;
    long h, nm;
    if (sp == NULL)
      return 2;
    hn = (size_t)(sp - line);
    nn = strcspn(sp + 1, "\r\n");
    h = unhex(line, hn, header);
    nm = unhex(sp + 1, nn, name);
    if (h < 0 || nm < 0)
      return 2;
    if (!csn__cookie_header_find(header, (size_t)h, name, (size_t)nm, &val,
                                 &vlen)) {
      printf("-\n");
      continue;
    }
    if (memchr(val, '%', vlen) != NULL) {
      size_t dn = 0;
      if (csn__uri_decode(val, vlen, dec, &dn) == 0) {
        val = dec;
        vlen = dn;
      }
    }
    for (i = 0; i < vlen; i++)
      printf("%02x", (unsigned char)val[i]);
    printf("\n");
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "parse") == 0)
    return parse_mode();
  if (argc == 4 && strcmp(argv[1], "sign") == 0) {
    const char *secret;
    size_t slen = secret_arg(argv[2], &secret);
    size_t outlen = 0;
    char *out;
    int rc;
    /* Ask for the size first, to exercise the ENOBUFS contract. */
    rc = csn_cookie_sign(argv[3], strlen(argv[3]), secret, slen, NULL,
                         &outlen);
    if (rc != CSN_ENOBUFS) {
      fprintf(stderr, "size query: %s\n", csn_strerror(rc));
      return 2;
    }
    out = malloc(outlen);
    if (out == NULL)
      return 2;
    rc = csn_cookie_sign(argv[3], strlen(argv[3]), secret, slen, out,
                         &outlen);
    if (rc != CSN_OK) {
      fprintf(stderr, "sign: %s\n", csn_strerror(rc));
      return 2;
    }
    printf("%s\n", out);
    free(out);
    return 0;
  }
  if (argc >= 4 && strcmp(argv[1], "unsign") == 0) {
    size_t n = (size_t)argc - 3, i, vlen = 0;
    const char **secrets = calloc(n, sizeof *secrets);
    size_t *lens = calloc(n, sizeof *lens);
    int rc;
    if (secrets == NULL || lens == NULL)
      return 2;
    for (i = 0; i < n; i++)
      lens[i] = secret_arg(argv[3 + i], &secrets[i]);
    rc = csn_cookie_unsign(argv[2], strlen(argv[2]), secrets, lens, n, &vlen);
    free(secrets);
    free(lens);
    if (rc < 0) {
      printf("false\n");
      return 1;
    }
    printf("%d %.*s\n", rc, (int)vlen, argv[2]);
    return 0;
  }
  fprintf(stderr,
          "usage: %s sign SECRET VALUE | unsign INPUT SECRET... | parse\n",
          argv[0]);
  return 2;
}
