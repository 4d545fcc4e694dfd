/* file_crypt.c - session-file-store's `secret` encryption, byte-compatible.
 *
 * The format essay. session-file-store 1.5.0 hands the encoded record P
 * (JSON text) to kruptein 2.x with its defaults, and writes what comes back.
 * Reading kruptein closely, a file is made like this:
 *
 *   1. kruptein JSON.stringify()s its input again, so the plaintext is the
 *      UTF-8 of a JSON string literal whose content is P ("double encoding";
 *      the reader JSON-decodes twice).
 *   2. A fresh 128-byte salt; key = scrypt(secret, salt, N=16384, r=8, p=1,
 *      32 bytes).
 *   3. A 12-byte IV and an AAD of 64 bytes (an HMAC-SHA512 of the plaintext
 *      under a throw-away random key: random in effect, so we draw it
 *      directly).
 *   4. AES-256-GCM over the plaintext with that AAD; a 16-byte tag.
 *   5. Node's "binary" encoding turns byte strings into JS strings whose
 *      code points are the byte values (latin1). The HMAC-SHA512 under the
 *      key is then computed over the ciphertext *string*, which Node feeds
 *      to the hash as UTF-8: every byte >= 0x80 counts as two bytes. We call
 *      that the latin1 view. Hashing the raw bytes instead gives a MAC that
 *      Node rejects as tampering.
 *   6. The file is JSON.stringify({hmac, ct, iv, salt, aad, at}) in that
 *      order: hmac, ct and aad are latin1 strings, iv, salt and at are
 *      Buffers, which serialise as {"type":"Buffer","data":[bytes]}. Written
 *      as UTF-8, a latin1 string's text in the file is exactly its latin1
 *      view, with JSON.stringify's escapes (quote, backslash, and the control
 *      characters below 0x20 as \b \t \n \f \r or \u00xx).
 *
 * On reading, a JSON parser that yields UTF-8 (jansson) therefore hands us
 * the latin1 view of ct directly, which is what the MAC covers; we compare
 * in constant time (Node compares strings) and only then decrypt.
 *
 * The key cache essay. scrypt with these parameters costs about 50 ms of
 * CPU and 16 MiB of memory, and session-file-store pays it on every read and
 * every write, which caps a core at some twenty requests per second. The
 * format only requires that the salt stored in a file derives its key; it
 * does not require a new salt per file. So a sealer draws one write salt,
 * derives its key once, and reuses the pair for many writes, each with a
 * fresh random IV (AES-GCM with random 96-bit IVs is sound far beyond the
 * 2^20 writes after which we draw a new salt anyway). Keys derived for
 * reading are kept in a small cache indexed by salt, so reading back our own
 * files never runs scrypt; a file written by Node carries its own new salt
 * and costs one derivation the first time that version is read. The keys
 * are as sensitive as the secret, which this object holds anyway; both are
 * wiped on free. scrypt runs outside the lock, so a slow derivation never
 * blocks a thread whose key is cached.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "csn_int.h"
#include "file_crypt.h"

#define FC_SALT 128
#define FC_KEY 32
#define FC_IV 12
#define FC_TAG 16
#define FC_AAD 64
#define FC_MAC 64
#define FC_SCRYPT_N 16384
#define FC_SCRYPT_R 8
#define FC_SCRYPT_P 1
#define FC_SCRYPT_MAXMEM (64u * 1024u * 1024u) /* needs 16 MiB */
#define FC_CACHE 64
#define FC_ROTATE (1u << 20) /* writes per write salt */

typedef struct key_slot {
  int used;
  unsigned char salt[FC_SALT];
  unsigned char key[FC_KEY];
} key_slot;

struct csn__fcrypt {
  char *secret;
  size_t secret_len;
  pthread_mutex_t mu; /* guards everything below */
  unsigned char wsalt[FC_SALT];
  unsigned char wkey[FC_KEY];
  uint32_t wuses; /* writes under wkey; 0: none derived yet */
  int deriving;   /* a thread is drawing the next write key */
  key_slot slots[FC_CACHE];
  unsigned next; /* round-robin replacement */
};

int csn__fcrypt_new(const char *secret, csn__fcrypt **out) {
  *out = NULL;
  if (secret == NULL || secret[0] == '\0') return CSN_EINVAL;
  csn__fcrypt *c = csn__calloc(1, sizeof *c);
  if (c == NULL) return CSN_ENOMEM;
  c->secret = csn__strdup(secret);
  if (c->secret == NULL) {
    csn__free(c);
    return CSN_ENOMEM;
  }
  c->secret_len = strlen(secret);
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return CSN_OK;
}

void csn__fcrypt_free(csn__fcrypt *c) {
  if (c == NULL) return;
  pthread_mutex_destroy(&c->mu);
  OPENSSL_cleanse(c->secret, c->secret_len);
  csn__free(c->secret);
  OPENSSL_cleanse(c, sizeof *c);
  csn__free(c);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

static int derive(const csn__fcrypt *c, const unsigned char *salt,
                  unsigned char key[FC_KEY]) {
  /* Node's scryptSync(secret, salt, 32) with its defaults; the secret is a
   * JS string there, i.e. its UTF-8 bytes, which is what we hold. */
  if (EVP_PBE_scrypt(c->secret, c->secret_len, salt, FC_SALT, FC_SCRYPT_N,
                     FC_SCRYPT_R, FC_SCRYPT_P, FC_SCRYPT_MAXMEM, key,
                     FC_KEY) != 1)
    return CSN_EIO;
  return CSN_OK;
}

/* Caller holds mu. */
static void cache_put(csn__fcrypt *c, const unsigned char *salt,
                      const unsigned char *key) {
  key_slot *s = &c->slots[c->next++ % FC_CACHE];
  s->used = 1;
  memcpy(s->salt, salt, FC_SALT);
  memcpy(s->key, key, FC_KEY);
}

/* The key for a stored salt: from the cache, or derived and cached. */
static int read_key(csn__fcrypt *c, const unsigned char *salt,
                    unsigned char key[FC_KEY]) {
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < FC_CACHE; i++) {
    if (c->slots[i].used && memcmp(c->slots[i].salt, salt, FC_SALT) == 0) {
      memcpy(key, c->slots[i].key, FC_KEY);
      pthread_mutex_unlock(&c->mu);
      return CSN_OK;
    }
  }
  pthread_mutex_unlock(&c->mu);
  int rc = derive(c, salt, key);
  if (rc != CSN_OK) return rc;
  pthread_mutex_lock(&c->mu);
  cache_put(c, salt, key);
  pthread_mutex_unlock(&c->mu);
  return CSN_OK;
}

/* The salt and key for the next write. While one thread draws a new pair
 * at rotation, the others keep using the old one rather than queue up
 * behind scrypt. */
static int write_key(csn__fcrypt *c, unsigned char salt[FC_SALT],
                     unsigned char key[FC_KEY]) {
  pthread_mutex_lock(&c->mu);
  if (c->wuses != 0 && (c->wuses < FC_ROTATE || c->deriving)) {
    memcpy(salt, c->wsalt, FC_SALT);
    memcpy(key, c->wkey, FC_KEY);
    c->wuses++;
    pthread_mutex_unlock(&c->mu);
    return CSN_OK;
  }
  c->deriving = 1;
  pthread_mutex_unlock(&c->mu);

  int rc = RAND_bytes(salt, FC_SALT) == 1 ? CSN_OK : CSN_EIO;
  if (rc == CSN_OK) rc = derive(c, salt, key);
  pthread_mutex_lock(&c->mu);
  c->deriving = 0;
  if (rc == CSN_OK) {
    memcpy(c->wsalt, salt, FC_SALT);
    memcpy(c->wkey, key, FC_KEY);
    c->wuses = 1;
    cache_put(c, salt, key);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* JSON pieces, as JSON.stringify writes them                               */
/* ------------------------------------------------------------------------ */

/* A JSON string literal of s[0..n), escaped as JSON.stringify escapes: the
 * quote, the backslash and the controls below 0x20, nothing else. s is
 * UTF-8 (a record, or a latin1 view), so other bytes pass through. */
static void put_js_string(csn__buf *b, const unsigned char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t run = 0; /* start of the pending run of plain bytes */
  csn__buf_putc(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = s[i];
    char esc[7];
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    csn__buf_append(b, (const char *)s + run, i - run);
    run = i + 1;
    esc[0] = '\\';
    esc[2] = '\0';
    switch (ch) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[ch >> 4];
        esc[5] = hex[ch & 15];
        esc[6] = '\0';
        break;
    }
    csn__buf_puts(b, esc);
  }
  csn__buf_append(b, (const char *)s + run, n - run);
  csn__buf_putc(b, '"');
}

/* A Node Buffer's toJSON(). */
static void put_buffer(csn__buf *b, const unsigned char *p, size_t n) {
  csn__buf_puts(b, "{\"type\":\"Buffer\",\"data\":[");
  for (size_t i = 0; i < n; i++)
    csn__buf_printf(b, i ? ",%u" : "%u", (unsigned)p[i]);
  csn__buf_puts(b, "]}");
}

/* The latin1 view of bytes: each byte as the UTF-8 of the code point of the
 * same value. *out has room for 2n bytes; returns the length. */
static size_t latin1_view(const unsigned char *p, size_t n,
                          unsigned char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < 0x80) {
      out[o++] = p[i];
    } else {
      out[o++] = (unsigned char)(0xC0 | (p[i] >> 6));
      out[o++] = (unsigned char)(0x80 | (p[i] & 0x3F));
    }
  }
  return o;
}

/* Back from a latin1 view (valid UTF-8, as jansson guarantees) to bytes;
 * out has room for n bytes. -1 when a code point exceeds 0xFF, which Node's
 * "binary" decoding would silently truncate: not a file kruptein wrote. */
static int latin1_bytes(const unsigned char *s, size_t n, unsigned char *out,
                        size_t *outn) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < 0x80) {
      out[o++] = s[i];
    } else if ((s[i] == 0xC2 || s[i] == 0xC3) && i + 1 < n) {
      out[o++] = (unsigned char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3F));
      i++;
    } else {
      return -1;
    }
  }
  *outn = o;
  return 0;
}

/* A latin1 string member of exactly `want` bytes (0: any length) into a new
 * buffer. */
static int member_latin1(json_t *env, const char *key, size_t want,
                         unsigned char **out, size_t *outn) {
  json_t *v = json_object_get(env, key);
  if (!json_is_string(v)) return CSN_ECORRUPT;
  size_t n = json_string_length(v);
  unsigned char *p = csn__malloc(n ? n : 1);
  if (p == NULL) return CSN_ENOMEM;
  if (latin1_bytes((const unsigned char *)json_string_value(v), n, p, outn) !=
          0 ||
      (want != 0 && *outn != want)) {
    csn__free(p);
    return CSN_ECORRUPT;
  }
  *out = p;
  return CSN_OK;
}

/* A Buffer member ({"type":"Buffer","data":[...]}) of exactly n bytes. */
static int member_buffer(json_t *env, const char *key, unsigned char *out,
                         size_t n) {
  json_t *v = json_object_get(env, key);
  json_t *type = json_object_get(v, "type");
  json_t *data = json_object_get(v, "data");
  if (!json_is_string(type) || strcmp(json_string_value(type), "Buffer") != 0 ||
      !json_is_array(data) || json_array_size(data) != n)
    return CSN_ECORRUPT;
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(data, i);
    if (!json_is_integer(e) || json_integer_value(e) < 0 ||
        json_integer_value(e) > 255)
      return CSN_ECORRUPT;
    out[i] = (unsigned char)json_integer_value(e);
  }
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* AES-256-GCM and the MAC                                                  */
/* ------------------------------------------------------------------------ */

/* enc=1: in -> out and tag; enc=0: in -> out, checked against tag.
 * Returns CSN_OK, CSN_ECORRUPT (tag mismatch), CSN_ENOMEM or CSN_EIO. */
static int gcm(int enc, const unsigned char *key, const unsigned char *iv,
               const unsigned char *aad, size_t aadn, const unsigned char *in,
               size_t n, unsigned char *out, unsigned char *tag) {
  if (n > INT_MAX || aadn > INT_MAX) return CSN_EIO;
  EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
  if (x == NULL) return CSN_ENOMEM;
  int rc = CSN_EIO, len = 0;
  if (EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
      EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, FC_IV, NULL) != 1 ||
      EVP_CipherInit_ex(x, NULL, NULL, key, iv, enc) != 1 ||
      EVP_CipherUpdate(x, NULL, &len, aad, (int)aadn) != 1 ||
      (n > 0 && EVP_CipherUpdate(x, out, &len, in, (int)n) != 1))
    goto done;
  if (enc) {
    if (EVP_CipherFinal_ex(x, out + (n > 0 ? len : 0), &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, FC_TAG, tag) != 1)
      goto done;
  } else {
    if (EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, FC_TAG, tag) != 1)
      goto done;
    /* The final call is where GCM compares tags. */
    if (EVP_CipherFinal_ex(x, out + (n > 0 ? len : 0), &len) != 1) {
      rc = CSN_ECORRUPT;
      goto done;
    }
  }
  rc = CSN_OK;
done:
  EVP_CIPHER_CTX_free(x);
  return rc;
}

static int mac(const unsigned char *key, const unsigned char *view,
               size_t n, unsigned char out[FC_MAC]) {
  unsigned int len = 0;
  if (HMAC(EVP_sha512(), key, FC_KEY, view, n, out, &len) == NULL ||
      len != FC_MAC)
    return CSN_EIO;
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Seal and open                                                            */
/* ------------------------------------------------------------------------ */

int csn__fcrypt_seal(csn__fcrypt *c, const char *plain, size_t n, char **out,
                     size_t *outlen, const char **why) {
  unsigned char salt[FC_SALT], key[FC_KEY], iv[FC_IV], aad[FC_AAD];
  unsigned char tag[FC_TAG], hm[FC_MAC], hv[2 * FC_MAC], av[2 * FC_AAD];
  unsigned char *ct = NULL, *view = NULL;
  csn__buf pt, env;
  int rc;
  *why = "";
  csn__buf_init(&pt);
  csn__buf_init(&env);

  /* Step 1: the plaintext is the record as a JSON string literal. */
  put_js_string(&pt, (const unsigned char *)plain, n);
  if (pt.oom) {
    rc = CSN_ENOMEM;
    goto done;
  }
  /* Steps 2 and 3. */
  rc = write_key(c, salt, key);
  if (rc != CSN_OK) {
    *why = "key derivation (scrypt) failed";
    goto done;
  }
  if (RAND_bytes(iv, FC_IV) != 1 || RAND_bytes(aad, FC_AAD) != 1) {
    *why = "no random bytes";
    rc = CSN_EIO;
    goto done;
  }
  /* Step 4. */
  ct = csn__malloc(pt.len + 1);
  view = csn__malloc(2 * pt.len + 1);
  if (ct == NULL || view == NULL) {
    rc = CSN_ENOMEM;
    goto done;
  }
  rc = gcm(1, key, iv, aad, FC_AAD, (const unsigned char *)pt.data, pt.len,
           ct, tag);
  if (rc != CSN_OK) {
    *why = "AES-256-GCM failed";
    goto done;
  }
  /* Step 5: the MAC covers the ciphertext's latin1 view. */
  size_t vn = latin1_view(ct, pt.len, view);
  rc = mac(key, view, vn, hm);
  if (rc != CSN_OK) {
    *why = "HMAC-SHA512 failed";
    goto done;
  }
  /* Step 6, in kruptein's member order. */
  csn__buf_puts(&env, "{\"hmac\":");
  put_js_string(&env, hv, latin1_view(hm, FC_MAC, hv));
  csn__buf_puts(&env, ",\"ct\":");
  put_js_string(&env, view, vn);
  csn__buf_puts(&env, ",\"iv\":");
  put_buffer(&env, iv, FC_IV);
  csn__buf_puts(&env, ",\"salt\":");
  put_buffer(&env, salt, FC_SALT);
  csn__buf_puts(&env, ",\"aad\":");
  put_js_string(&env, av, latin1_view(aad, FC_AAD, av));
  csn__buf_puts(&env, ",\"at\":");
  put_buffer(&env, tag, FC_TAG);
  csn__buf_putc(&env, '}');
  *out = csn__buf_steal(&env, outlen);
  rc = *out == NULL ? CSN_ENOMEM : CSN_OK;

done:
  OPENSSL_cleanse(key, sizeof key);
  if (pt.data != NULL) OPENSSL_cleanse(pt.data, pt.len);
  csn__buf_free(&pt);
  csn__buf_free(&env);
  csn__free(ct);
  csn__free(view);
  return rc;
}

int csn__fcrypt_open(csn__fcrypt *c, const char *text, size_t n, char **out,
                     size_t *outlen, const char **why) {
  unsigned char salt[FC_SALT], key[FC_KEY], iv[FC_IV], tag[FC_TAG];
  unsigned char hm[FC_MAC];
  unsigned char *want = NULL, *ct = NULL, *aad = NULL, *pt = NULL;
  size_t wantn = 0, ctn = 0, aadn = 0;
  json_t *lit = NULL;
  int rc;
  *why = "";

  /* Ciphertext strings may hold U+0000 (written as \u0000). */
  int perr = CSN_OK;
  json_t *env = csn__json_parse(text, n, &perr);
  if (env == NULL && perr == CSN_ENOMEM)
    return CSN_ENOMEM;
  if (!json_is_object(env) || !json_is_string(json_object_get(env, "ct"))) {
    *why = "not an encrypted session file";
    rc = CSN_ECORRUPT;
    goto done;
  }
  rc = member_latin1(env, "hmac", FC_MAC, &want, &wantn);
  if (rc == CSN_OK) rc = member_latin1(env, "ct", 0, &ct, &ctn);
  if (rc == CSN_OK) rc = member_latin1(env, "aad", 0, &aad, &aadn);
  if (rc == CSN_OK) rc = member_buffer(env, "iv", iv, FC_IV);
  if (rc == CSN_OK) rc = member_buffer(env, "salt", salt, FC_SALT);
  if (rc == CSN_OK) rc = member_buffer(env, "at", tag, FC_TAG);
  if (rc != CSN_OK) {
    if (rc == CSN_ECORRUPT) *why = "malformed encrypted envelope";
    goto done;
  }
  rc = read_key(c, salt, key);
  if (rc != CSN_OK) {
    *why = "key derivation (scrypt) failed";
    goto done;
  }
  /* jansson's UTF-8 text of "ct" is the latin1 view the MAC covers. */
  json_t *jct = json_object_get(env, "ct");
  rc = mac(key, (const unsigned char *)json_string_value(jct),
           json_string_length(jct), hm);
  if (rc != CSN_OK) {
    *why = "HMAC-SHA512 failed";
    goto done;
  }
  if (CRYPTO_memcmp(hm, want, FC_MAC) != 0) {
    *why = "HMAC mismatch (another secret, or the file was altered)";
    rc = CSN_ECORRUPT;
    goto done;
  }
  pt = csn__malloc(ctn + 1);
  if (pt == NULL) {
    rc = CSN_ENOMEM;
    goto done;
  }
  rc = gcm(0, key, iv, aad, aadn, ct, ctn, pt, tag);
  if (rc != CSN_OK) {
    *why = rc == CSN_ECORRUPT ? "AES-GCM authentication failed"
                              : "AES-256-GCM failed";
    goto done;
  }
  /* Undo the double encoding: the plaintext is a JSON string literal. */
  lit = csn__json_parse((const char *)pt, ctn, &perr);
  if (lit == NULL && perr == CSN_ENOMEM) {
    rc = CSN_ENOMEM;
    goto done;
  }
  if (!json_is_string(lit)) {
    *why = "decrypted content is not a JSON string";
    rc = CSN_ECORRUPT;
    goto done;
  }
  /* Copied by length: a record may not hold U+0000, but the parser after
   * us must see every byte to say so. */
  *outlen = json_string_length(lit);
  *out = csn__malloc(*outlen + 1);
  if (*out == NULL) {
    rc = CSN_ENOMEM;
    goto done;
  }
  memcpy(*out, json_string_value(lit), *outlen);
  (*out)[*outlen] = '\0';
  rc = CSN_OK;

done:
  OPENSSL_cleanse(key, sizeof key);
  if (pt != NULL) OPENSSL_cleanse(pt, ctn);
  json_decref(lit);
  json_decref(env);
  csn__free(want);
  csn__free(ct);
  csn__free(aad);
  csn__free(pt);
  return rc;
}
