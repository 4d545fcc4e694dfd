/* crypto.c - cookie signatures, session ids, random bytes.
 *
 * How a signature is made, and why it is made this way
 * ----------------------------------------------------
 * express-session signs the session id with cookie-signature 1.0.7:
 *
 *     sign(val, secret) = val + "." + base64(HMAC-SHA256(secret, val))
 *
 * with the standard base64 alphabet and the trailing "=" removed, so the
 * signature is always 43 characters. HMAC (RFC 2104) is
 *
 *     H((K ^ opad) || H((K ^ ipad) || msg))
 *
 * where K is the secret zero-padded to SHA-256's 64-byte block (a longer
 * secret is first replaced by its own SHA-256). The first block of each of
 * the two hashes depends only on the secret, so we absorb K^ipad and K^opad
 * once, when the context is created, and keep the two SHA-256 states in
 * csn__hmac_key. Signing then copies those states and hashes only the
 * message and the 32-byte inner digest: no allocation, no key schedule, no
 * EVP object per request, and the key bytes themselves are not kept.
 *
 * OpenSSL 3 deprecates the low-level SHA256_* functions in favour of EVP,
 * but EVP_MAC would allocate a context per call, and an EVP_MD_CTX cannot be
 * copied without allocating either. The low-level interface is still
 * shipped and is exactly the primitive we need, so we silence the
 * deprecation for this one file.
 *
 * Verification (cookie-signature's unsign) splits the input at its LAST
 * dot, re-signs the part before it and accepts only a byte-exact match of
 * the whole signature; a re-added "=", the URL-safe alphabet or any change
 * of case is a mismatch. 1.0.7 compares SHA-1 digests of the two strings;
 * we compare in constant time (sig_equal, CRYPTO_memcmp's rule a word at
 * a time), which takes the same time wherever the first difference is, so
 * a forger learns nothing from response timing.
 *
 * The two hashes of a signature each take exactly one compression after
 * the key's block (an id and its padding fit one block, and so does the
 * inner digest), so csn__hmac_sha256() pads the block itself and calls
 * SHA256_Transform: OpenSSL's own block function (SHA-NI where the CPU has
 * it), without the Update/Final buffering around it. A SHA-256 written
 * here would not be faster: measured under callgrind, OpenSSL's portable
 * path costs about 2,000 instructions a block, what a C compression needs
 * too, and on real hardware its SHA-NI path is several times faster than
 * any C loop.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "csn_int.h"

static_assert(sizeof(SHA256_CTX) <= sizeof(((csn__hmac_key *)0)->inner),
              "SHA256_CTX must fit in csn__hmac_key");

#define HMAC_BLOCK 64

int csn__hmac_key_init(csn__hmac_key *k, const void *secret, size_t len) {
  unsigned char key[HMAC_BLOCK], pad[HMAC_BLOCK];
  SHA256_CTX ctx;
  size_t i;

  if (secret == NULL && len > 0)
    return CSN_EINVAL;
  memset(key, 0, sizeof key);
  if (len > HMAC_BLOCK) {
    /* Standard HMAC: a key longer than the block is replaced by its hash. */
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, secret, len);
    SHA256_Final(key, &ctx);
  } else if (len > 0) {
    memcpy(key, secret, len);
  }

  memset(k, 0, sizeof *k);
  for (i = 0; i < HMAC_BLOCK; i++)
    pad[i] = key[i] ^ 0x36;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, pad, HMAC_BLOCK);
  memcpy(k->inner, &ctx, sizeof ctx);

  for (i = 0; i < HMAC_BLOCK; i++)
    pad[i] = key[i] ^ 0x5c;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, pad, HMAC_BLOCK);
  memcpy(k->outer, &ctx, sizeof ctx);

  /* Do not leave the secret on the stack. */
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(&ctx, sizeof ctx);
  return CSN_OK;
}

void csn__hmac_key_clear(csn__hmac_key *k) {
  if (k != NULL)
    OPENSSL_cleanse(k, sizeof *k);
}

/* Big-endian store of a 32-bit word. */
static void put_be32(unsigned char *p, SHA_LONG v) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint32_t be = __builtin_bswap32((uint32_t)v);
  memcpy(p, &be, 4);
#else
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
#endif
}

/* The last block of a hash whose first block was the key's: msg (n <= 55
 * bytes), the 0x80 marker, zeros, and the total length in bits (64 + n
 * bytes) in the last two bytes (it is below 2^16). */
static void last_block(unsigned char block[HMAC_BLOCK], const void *msg,
                       size_t n) {
  unsigned bits = (unsigned)(HMAC_BLOCK + n) * 8;
  if (n > 0)
    memcpy(block, msg, n);
  block[n] = 0x80;
  memset(block + n + 1, 0, HMAC_BLOCK - 2 - (n + 1));
  block[HMAC_BLOCK - 2] = (unsigned char)(bits >> 8);
  block[HMAC_BLOCK - 1] = (unsigned char)bits;
}

/* One SHA-256 compression of `block` on top of the state `from` (the
 * precomputed inner or outer state), digest to out. SHA256_Transform runs
 * OpenSSL's block function alone - the same code Update/Final would run,
 * SHA-NI included where the CPU has it - without their buffering and
 * padding logic: we pad ourselves, since the block is always the last.
 * Nothing is wiped afterwards: the local state ends as the digest (the
 * outer one is the public signature; the inner one, H(K^ipad || msg),
 * does not reveal the key), and the key's states stay in *k. */
static void one_block(const unsigned char *from, const unsigned char *block,
                      unsigned char out[32]) {
  SHA256_CTX c;
  int i;
  memcpy(c.h, ((const SHA256_CTX *)(const void *)from)->h, sizeof c.h);
  SHA256_Transform(&c, block);
  for (i = 0; i < 8; i++)
    put_be32(out + 4 * i, c.h[i]);
}

void csn__hmac_sha256(const csn__hmac_key *k, const void *msg, size_t n,
                      unsigned char out[32]) {
  unsigned char inner[SHA256_DIGEST_LENGTH];
  unsigned char block[HMAC_BLOCK];

  /* A session id (32 characters, or any message up to 55 bytes) and its
   * padding fill one block after the key's: one compression for each of
   * the two hashes, nothing else. */
  if (n <= HMAC_BLOCK - 9) {
    last_block(block, msg, n);
    one_block(k->inner, block, inner);
  } else {
    /* The contexts were stored as bytes; copying them back into a properly
     * aligned local keeps the access well-defined. */
    SHA256_CTX ctx;
    memcpy(&ctx, k->inner, sizeof ctx);
    SHA256_Update(&ctx, msg, n);
    SHA256_Final(inner, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
  }
  /* Outer: the 32-byte inner digest after the key's block. */
  last_block(block, inner, sizeof inner);
  one_block(k->outer, block, out);
}

void csn__sign(const csn__hmac_key *k, const char *value, size_t n,
               char sig[CSN__SIG_LEN + 1]) {
  unsigned char mac[SHA256_DIGEST_LENGTH];
  csn__hmac_sha256(k, value, n, mac);
  csn__b64_encode(mac, sizeof mac, sig, 0);
}

/* Do two 43-character signatures match? In constant time, as
 * CRYPTO_memcmp, but a word at a time: every byte is looked at whatever
 * the first difference, and the only branch is on the final result. */
static int sig_equal(const char *a, const char *b) {
  uint64_t x, y, d = 0;
  size_t i;
  for (i = 0; i + 8 <= CSN__SIG_LEN; i += 8) {
    memcpy(&x, a + i, 8);
    memcpy(&y, b + i, 8);
    d |= x ^ y;
  }
  for (; i < CSN__SIG_LEN; i++)
    d |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
  return d == 0;
}

int csn__unsign(const csn__hmac_key *keys, size_t nkeys, const char *input,
                size_t n, size_t *vlen) {
  const char *dot = NULL;
  size_t i, v;
  int found = -1;

  /* The signature follows the last dot (the id itself may contain dots:
   * "a.b.<sig>" -> "a.b") and must be CSN__SIG_LEN long to match, so the
   * last dot must sit exactly CSN__SIG_LEN + 1 from the end. Without a
   * dot 1.0.7 signs input minus its last character and can never match
   * either. */
  if (n < CSN__SIG_LEN + 1 || input[n - CSN__SIG_LEN - 1] != '.' ||
      memchr(input + n - CSN__SIG_LEN, '.', CSN__SIG_LEN) != NULL)
    return CSN_EINVAL;
  dot = input + n - CSN__SIG_LEN - 1;
  v = (size_t)(dot - input);

  /* Every key is tried, even after a match, so the time taken does not tell
   * which secret of the rotation signed the cookie; the first match wins. */
  for (i = 0; i < nkeys; i++) {
    char sig[CSN__SIG_LEN + 1];
    csn__sign(&keys[i], input, v, sig);
    if (sig_equal(sig, dot + 1) && found < 0)
      found = (int)i;
  }
  if (found < 0)
    return CSN_EINVAL;
  *vlen = v;
  return found;
}

int csn__random_bytes(void *buf, size_t n) {
  unsigned char *p = buf;

  /* RAND_bytes takes an int; feed it in chunks. */
  while (n > 0) {
    int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(p, chunk) != 1)
      return csn__set_error(CSN_ECRYPTO, "RAND_bytes failed");
    p += chunk;
    n -= (size_t)chunk;
  }
  return CSN_OK;
}

/* uid-safe's uid(24): 24 random bytes in base64url, which is exactly 32
 * characters with no padding (192 bits; a collision is not a concern). */
/*
 * Where the id's random bytes come from.
 *
 * OpenSSL 3's RAND_bytes costs about 8,000 instructions per call whatever
 * the size (a DRBG reseed check, a cipher re-init, parameter lookups): a
 * third of a new visitor's whole cycle. So each thread draws 4 KiB at a
 * time - 170 ids - and hands them out 24 bytes at a time. The bytes are
 * the same CSPRNG output either way; what needs care is:
 *
 *  - fork: a child inherits its parent's unused bytes, and two processes
 *    handing out the same ids would give two users one session. A
 *    pthread_atfork() child handler empties the pool of the thread that
 *    forked (the only thread the child has), so the child's first id comes
 *    from fresh bytes. Children made without the handlers (a raw clone(),
 *    glibc's _Fork()) are caught by the fork mark below;
 *  - secrecy: bytes handed out are wiped from the pool at once, so a
 *    memory disclosure later cannot reveal ids already issued;
 *  - threads: the pool is thread-local, no lock.
 *
 * The fork mark. A pool remembers the mark of the process that filled it,
 * and is refilled when the mark has changed. The mark is a word in a page
 * the kernel zeroes in every child (MADV_WIPEONFORK, Linux 4.14): the
 * first id drawn after a fork finds 0 there and writes a new mark, one
 * more than any this lineage of processes has used, so no inherited pool
 * matches it. Checking it is one load. Where the page cannot be had, the
 * mark is getpid(), a system call per id (about 0.17 us in a VM, where
 * every system call pays for its mitigations). Pids alone were defeated by
 * pid reuse - a grandchild given its dead grandparent's pid handed out the
 * grandparent's next ids - which the fork handler covers.
 */
#define ID_POOL 4096
static _Thread_local struct {
  unsigned char bytes[ID_POOL];
  size_t used;
  uint64_t mark; /* fork_mark() when filled; 0: none */
} id_pool = {{0}, ID_POOL, 0};

/* The wiped word, or NULL: getpid() is the mark. Set once, at registration,
 * before any pool is filled. */
static _Atomic(uint64_t *) fork_word;
/* The last mark handed out in this lineage (not wiped: a child starts from
 * its parent's). */
static _Atomic uint64_t fork_marks;

/* In the child after fork(), in the thread that called fork(): forget the
 * inherited bytes. Only async-signal-safe work here (a forked child of a
 * threaded parent may call nothing else): a plain memory wipe and a store. */
static void id_pool_atfork_child(void) {
  OPENSSL_cleanse(id_pool.bytes, sizeof id_pool.bytes);
  id_pool.used = ID_POOL;
  id_pool.mark = 0;
}

/* Map the wiped page; NULL where the kernel or the platform has none. */
static uint64_t *fork_word_new(void) {
#ifdef MADV_WIPEONFORK
  long pg = sysconf(_SC_PAGESIZE);
  size_t len = pg > 0 ? (size_t)pg : 4096;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  if (madvise(p, len, MADV_WIPEONFORK) != 0) {
    munmap(p, len);
    return NULL;
  }
  return p;
#else
  return NULL;
#endif
}

/* The current mark. Lock-free, since in a fork child a lock may still be
 * held by a parent thread that the child does not have; threads racing to
 * write the first mark after a fork agree through the compare-and-swap. */
static uint64_t fork_mark(void) {
  _Atomic uint64_t *word = (_Atomic uint64_t *)atomic_load_explicit(
      &fork_word, memory_order_acquire);
  uint64_t m, fresh;
  if (word == NULL)
    return (uint64_t)getpid();
  m = atomic_load_explicit(word, memory_order_acquire);
  if (m != 0)
    return m;
  fresh = atomic_fetch_add(&fork_marks, 1) + 1;
  if (atomic_compare_exchange_strong(word, &m, fresh))
    return fresh;
  return m; /* another thread's, just written */
}

/* Registered before the first id is drawn in any thread, so no pool holds
 * bytes before the handler exists. pthread_atfork() can fail only for lack
 * of memory: that id fails and the next call tries again (pthread_once
 * could not). glibc forgets the handler when a dlopen()ed copy of the
 * library is unloaded. */
static atomic_int id_pool_registered;
static pthread_mutex_t id_pool_register_lock = PTHREAD_MUTEX_INITIALIZER;

static int id_pool_register(void) {
  int ok;
  if (atomic_load_explicit(&id_pool_registered, memory_order_acquire))
    return CSN_OK;
  pthread_mutex_lock(&id_pool_register_lock);
  ok = atomic_load_explicit(&id_pool_registered, memory_order_relaxed);
  if (!ok && pthread_atfork(NULL, NULL, id_pool_atfork_child) == 0) {
    ok = 1;
    if (atomic_load(&fork_word) == NULL)
      atomic_store_explicit(&fork_word, fork_word_new(), memory_order_release);
    atomic_store_explicit(&id_pool_registered, 1, memory_order_release);
  }
  pthread_mutex_unlock(&id_pool_register_lock);
  return ok ? CSN_OK
            : csn__set_error(CSN_ENOMEM,
                             "cannot register the id pool's fork handler");
}

int csn__genid(char out[33]) {
  unsigned char *raw;
  uint64_t mark;
  int rc = id_pool_register();
  if (rc != CSN_OK)
    return rc;
  mark = fork_mark();
  if (id_pool.used + 24 > ID_POOL || id_pool.mark != mark) {
    rc = csn__random_bytes(id_pool.bytes, ID_POOL);
    if (rc != CSN_OK) {
      id_pool.used = ID_POOL;
      return rc;
    }
    id_pool.used = 0;
    id_pool.mark = mark;
  }
  raw = id_pool.bytes + id_pool.used;
  id_pool.used += 24;
  csn__b64_encode(raw, 24, out, 1);
  OPENSSL_cleanse(raw, 24);
  return CSN_OK;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

int csn_cookie_sign(const char *value, size_t value_len, const void *secret,
                    size_t secret_len, char *out, size_t *outlen) {
  csn__hmac_key k;
  size_t need;
  int rc;

  if (outlen == NULL || (value == NULL && value_len > 0) ||
      (secret == NULL && secret_len > 0))
    return CSN_EINVAL;
  if (value_len > SIZE_MAX - (CSN__SIG_LEN + 2))
    return CSN_EINVAL;
  need = value_len + 1 + CSN__SIG_LEN + 1; /* value "." sig NUL */
  if (out == NULL || *outlen < need) {
    *outlen = need;
    return CSN_ENOBUFS;
  }
  if ((rc = csn__hmac_key_init(&k, secret, secret_len)) != CSN_OK)
    return rc;
  if (value_len > 0)
    memmove(out, value, value_len);
  out[value_len] = '.';
  csn__sign(&k, out, value_len, out + value_len + 1);
  csn__hmac_key_clear(&k);
  *outlen = need - 1;
  return CSN_OK;
}

int csn_cookie_unsign(const char *input, size_t input_len,
                      const char *const *secrets, const size_t *secret_lens,
                      size_t n_secrets, size_t *value_len) {
  size_t i, v = 0;
  int found = -1;

  if (input == NULL || secrets == NULL || n_secrets == 0 ||
      value_len == NULL || n_secrets > INT_MAX)
    return CSN_EINVAL;
  /* One key at a time on the stack: this convenience entry point must not
   * allocate. Each key is checked even after a match (see csn__unsign). */
  for (i = 0; i < n_secrets; i++) {
    csn__hmac_key k;
    size_t len, vl;
    if (secrets[i] == NULL)
      return CSN_EINVAL;
    len = secret_lens ? secret_lens[i] : strlen(secrets[i]);
    if (csn__hmac_key_init(&k, secrets[i], len) != CSN_OK)
      return CSN_EINVAL;
    if (csn__unsign(&k, 1, input, input_len, &vl) == 0 && found < 0) {
      found = (int)i;
      v = vl;
    }
    csn__hmac_key_clear(&k);
  }
  if (found < 0)
    return CSN_EINVAL;
  *value_len = v;
  return found;
}

int csn_generate_id(char *buf, size_t size) {
  if (buf == NULL)
    return CSN_EINVAL;
  if (size < 33)
    return CSN_ENOBUFS;
  return csn__genid(buf);
}
