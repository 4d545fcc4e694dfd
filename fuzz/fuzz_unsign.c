/* fuzz_unsign.c - signature verification with several secrets.
 *
 * Input layout: byte 0 = mode, byte 1 = secret selection, the rest = text.
 *   mode even: the text itself is verified (what an attacker sends).
 *   mode odd:  the text is signed with one of the secrets, then byte 2
 *              chooses an edit (none, flip a byte, truncate, append '='),
 *              so the fuzzer reaches the "valid signature" paths that random
 *              bytes never would.
 * Properties checked (cookie-signature 1.0.7 semantics, spec 2.2):
 *   - an accepted input is exactly sign(value, secret[i]) + nothing else,
 *     value being everything before the last '.', and i is the first secret
 *     that signs it;
 *   - a rejected input is signed by none of the secrets (no false negative);
 *   - the public csn_cookie_unsign() and the internal csn__unsign() with
 *     precomputed keys agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csn_int.h"

/* Secrets include an empty one, a binary one with a NUL inside and one
 * longer than the SHA-256 block (64 bytes), which HMAC hashes first. */
static const char *const all_secrets[] = {
    "keyboard cat", "nyan cat", "", "bin\0ary",
    "a-secret-that-is-longer-than-one-sha256-block-of-sixty-four-bytes!!"};
static const size_t all_lens[] = {12, 8, 0, 7, 67};

/* The signature that `secret` gives `value`: "value.sig", malloc'ed. */
static char *sign_with(const char *value, size_t n, const char *secret,
                       size_t slen, size_t *outlen) {
  size_t cap = n + CSN__SIG_LEN + 2;
  char *out = malloc(cap);
  *outlen = cap;
  if (out == NULL || csn_cookie_sign(value, n, secret, slen, out, outlen) !=
                         CSN_OK)
    abort();
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *secrets[5];
  size_t lens[5], n = 0, vlen = 0, vlen2 = 0, ilen;
  csn__hmac_key keys[5];
  char *input;
  int r, r2;
  size_t last_dot;
  int has_dot = 0;

  if (size < 3)
    return 0;
  /* Choose 1..5 secrets, in an order set by the selection byte. */
  for (size_t i = 0; i < CSN__ARRAY_SIZE(all_secrets); i++) {
    size_t k = (i + data[1]) % CSN__ARRAY_SIZE(all_secrets);
    if (i > 0 && !((data[1] >> (3 + i % 5)) & 1))
      continue;
    secrets[n] = all_secrets[k];
    lens[n] = all_lens[k];
    n++;
  }

  if (data[0] & 1) {
    size_t sk = data[2] % n;
    char *signed_text =
        sign_with((const char *)data + 3, size - 3, secrets[sk], lens[sk],
                  &ilen);
    switch ((data[2] >> 4) & 3) {
    case 1: /* flip one bit somewhere */
      if (ilen > 0)
        signed_text[(data[0] >> 1) % ilen] ^= (char)(1u << (data[2] & 7));
      break;
    case 2: /* drop the last character */
      if (ilen > 0)
        ilen--;
      break;
    case 3: /* re-add base64 padding, which 1.0.7 rejects */
      signed_text = realloc(signed_text, ilen + 1);
      if (signed_text == NULL)
        abort();
      signed_text[ilen++] = '=';
      break;
    default:
      break;
    }
    input = malloc(ilen ? ilen : 1);
    if (input == NULL)
      abort();
    memcpy(input, signed_text, ilen);
    free(signed_text);
  } else {
    ilen = size - 3;
    input = malloc(ilen ? ilen : 1);
    if (input == NULL)
      abort();
    memcpy(input, data + 3, ilen);
  }

  r = csn_cookie_unsign(input, ilen, secrets, lens, n, &vlen);

  for (size_t i = 0; i < ilen; i++)
    if (input[i] == '.') {
      last_dot = i;
      has_dot = 1;
    }

  /* The model: first secret whose signature of input[0..last '.')
   * reproduces the whole input. */
  {
    int want = CSN_EINVAL;
    for (size_t i = 0; has_dot && i < n && want < 0; i++) {
      size_t sl;
      char *s = sign_with(input, last_dot, secrets[i], lens[i], &sl);
      if (sl == ilen && memcmp(s, input, ilen) == 0)
        want = (int)i;
      free(s);
    }
    if (r != want)
      abort();
    if (r >= 0 && vlen != last_dot)
      abort();
  }

  /* The internal entry point with precomputed keys must agree. */
  for (size_t i = 0; i < n; i++)
    if (csn__hmac_key_init(&keys[i], secrets[i], lens[i]) != CSN_OK)
      abort();
  r2 = csn__unsign(keys, n, input, ilen, &vlen2);
  if (r2 != r || (r >= 0 && vlen2 != vlen))
    abort();
  for (size_t i = 0; i < n; i++)
    csn__hmac_key_clear(&keys[i]);

  free(input);
  return 0;
}
