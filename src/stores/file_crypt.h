/* file_crypt.h - the FileStore's encryption: session-file-store 1.5.0's
 * `secret` format (kruptein 2.x defaults), private to src/stores.
 *
 * A sealer holds the secret and a small cache of derived keys (see the
 * essay in file_crypt.c). Every function is thread-safe.
 */
#ifndef CSN_FILE_CRYPT_H
#define CSN_FILE_CRYPT_H

#include <stddef.h>

typedef struct csn__fcrypt csn__fcrypt;

/* A sealer for `secret` (a non-empty string, copied). CSN_EINVAL for an
 * empty secret, CSN_ENOMEM. Release with csn__fcrypt_free(). */
int csn__fcrypt_new(const char *secret, csn__fcrypt **out);

/* Wipes the secret and the cached keys; NULL is a no-op. */
void csn__fcrypt_free(csn__fcrypt *c);

/* Encrypt the record text plain[0..n) into the file content Node's store
 * writes: the JSON envelope {hmac, ct, iv, salt, aad, at}. *out is
 * NUL-terminated and the caller's (csn__free). CSN_OK, CSN_ENOMEM, or
 * CSN_EIO (OpenSSL failed; *why says where). */
int csn__fcrypt_seal(csn__fcrypt *c, const char *plain, size_t n, char **out,
                     size_t *outlen, const char **why);

/* Decrypt file content text[0..n) back into the record text (*out,
 * NUL-terminated, the caller's). CSN_ECORRUPT with a static reason in *why
 * when the file is not an envelope, was written with another secret or was
 * altered; CSN_ENOMEM; CSN_EIO when OpenSSL itself fails. */
int csn__fcrypt_open(csn__fcrypt *c, const char *text, size_t n, char **out,
                     size_t *outlen, const char **why);

#endif /* CSN_FILE_CRYPT_H */
