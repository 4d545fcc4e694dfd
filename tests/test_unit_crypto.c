/* test_unit_crypto.c - cookie-signature 1.0.7 vectors (spec 2.3), unsign
 * rules (2.2), rotation, the id mapping of uid-safe (spec 3) and the
 * public csn_cookie_sign/unsign/csn_generate_id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "csn_int.h"

typedef struct {
  const char *secret;
  size_t secret_len;
  const char *sid;
  const char *signed_value; /* "s:..." as cookie-signature writes it */
  const char *encoded;      /* the Set-Cookie value */
} sign_vector;

static const char bin_secret[32] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static const sign_vector vectors[] = {
    {"keyboard cat", 12, "apple",
     "s:apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU",
     "s%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU"},
    {"keyboard cat", 12, "%", "s:%.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa/OTZ01g",
     "s%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g"},
    {"keyboard cat", 12, "/foo",
     "s:/foo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj/MQ",
     "s%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ"},
    {"keyboard cat", 12, "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf",
     "s:hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
     "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6//r/8WnmJts",
     "s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
     "G72sFRqPSUWFyPzllyagmSFtTuzmVxJ6%2F%2Fr%2F8WnmJts"},
    {"nyan cat", 8, "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf",
     "s:hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
     "GaGmJASu2ECNzZ+jes4YeagWGJkYXSx7/iHc5UWNrgE",
     "s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
     "GaGmJASu2ECNzZ%2Bjes4YeagWGJkYXSx7%2FiHc5UWNrgE"},
    {"new", 3, "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf", NULL,
     "s%3AhrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf."
     "iprImqxxKozoPe8Z%2F34BC6KQhOGx94ijDMQDb5J%2BTl8"},
    {"s3cr3t", 6, "abc", "s:abc.57gJGcUThbnobDNjxz+FzQFSIuTU65RQgtYdeyHrgkE",
     "s%3Aabc.57gJGcUThbnobDNjxz%2BFzQFSIuTU65RQgtYdeyHrgkE"},
    {"", 0, "abc", "s:abc./XrbFSwF74Dcz1Ch+kwF1aPsbalVdfwxKufF0JGDY1E",
     "s%3Aabc.%2FXrbFSwF74Dcz1Ch%2BkwF1aPsbalVdfwxKufF0JGDY1E"},
    {"keyboard cat", 12, "", "s:.aJcKKTu8Uv0mRiw7LTI435t+pOa+giU/WLAuLCKGEFc",
     "s%3A.aJcKKTu8Uv0mRiw7LTI435t%2BpOa%2BgiU%2FWLAuLCKGEFc"},
    {"keyboard cat", 12, "a.b",
     "s:a.b.sKNesNyAbFAJ+fsoA7qNx4Tsyo+r5keVpJkZSzFMXZw",
     "s%3Aa.b.sKNesNyAbFAJ%2BfsoA7qNx4Tsyo%2Br5keVpJkZSzFMXZw"},
    {bin_secret, 32, "apple",
     "s:apple.WYwX37lUK1ZJ678SuZkryL7p+0IObdCKdKJxWvnl4gc",
     "s%3Aapple.WYwX37lUK1ZJ678SuZkryL7p%2B0IObdCKdKJxWvnl4gc"},
};

/* "s:" + sid + "." + sig, built with the internal signer. */
static void make_signed(const csn__hmac_key *k, const char *sid, char *out) {
  char sig[CSN__SIG_LEN + 1];
  csn__sign(k, sid, strlen(sid), sig);
  strcpy(out, "s:");
  strcat(out, sid);
  strcat(out, ".");
  strcat(out, sig);
}

static void test_sign_vectors(void **state) {
  size_t i;
  (void)state;
  for (i = 0; i < CSN__ARRAY_SIZE(vectors); i++) {
    const sign_vector *v = &vectors[i];
    csn__hmac_key k;
    char signed_value[256];
    csn__buf b;
    char *enc;

    assert_int_equal(csn__hmac_key_init(&k, v->secret, v->secret_len), 0);
    make_signed(&k, v->sid, signed_value);
    if (v->signed_value != NULL)
      assert_string_equal(signed_value, v->signed_value);
    csn__buf_init(&b);
    assert_int_equal(csn__uri_encode(&b, signed_value, strlen(signed_value)),
                     0);
    enc = csn__buf_steal(&b, NULL);
    assert_non_null(enc);
    assert_string_equal(enc, v->encoded);
    csn__free(enc);
    csn__hmac_key_clear(&k);
  }
}

static void test_raw_hmac(void **state) {
  csn__hmac_key k;
  unsigned char mac[32];
  char b64[64];
  (void)state;
  assert_int_equal(csn__hmac_key_init(&k, "keyboard cat", 12), 0);
  csn__hmac_sha256(&k, "apple", 5, mac);
  csn__b64_encode(mac, 32, b64, 0);
  assert_string_equal(b64, "D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
}

/* RFC 4231 test case 6: a 131-byte key (longer than the block, so it is
 * hashed first) proves the long-key path. */
static void test_long_key(void **state) {
  unsigned char key[131], mac[32];
  static const unsigned char want[32] = {
      0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26,
      0xaa, 0xcb, 0xf5, 0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28,
      0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
  const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
  csn__hmac_key k;
  (void)state;
  memset(key, 0xaa, sizeof key);
  assert_int_equal(csn__hmac_key_init(&k, key, sizeof key), 0);
  csn__hmac_sha256(&k, msg, strlen(msg), mac);
  assert_memory_equal(mac, want, 32);
}

static void test_unsign_cases(void **state) {
  csn__hmac_key k;
  char good[128], bad[160];
  size_t vlen = 99;
  (void)state;
  assert_int_equal(csn__hmac_key_init(&k, "keyboard cat", 12), 0);

  /* correct -> apple (input without the "s:" prefix) */
  strcpy(good, "apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
  assert_int_equal(csn__unsign(&k, 1, good, strlen(good), &vlen), 0);
  assert_int_equal(vlen, 5);

  /* wrong secret */
  {
    csn__hmac_key other;
    assert_int_equal(csn__hmac_key_init(&other, "nyan cat", 8), 0);
    assert_int_equal(csn__unsign(&other, 1, good, strlen(good), &vlen),
                     CSN_EINVAL);
  }
  /* last three characters replaced */
  strcpy(bad, good);
  memcpy(bad + strlen(bad) - 3, "AAA", 3);
  assert_int_equal(csn__unsign(&k, 1, bad, strlen(bad), &vlen), CSN_EINVAL);
  /* '=' appended */
  strcpy(bad, good);
  strcat(bad, "=");
  assert_int_equal(csn__unsign(&k, 1, bad, strlen(bad), &vlen), CSN_EINVAL);
  /* URL-safe alphabet instead of the standard one */
  strcpy(bad, "apple.D8Y-pkTAmeR0PobOhY4G97PRW-j7bUnP_5m6_On1MCU");
  assert_int_equal(csn__unsign(&k, 1, bad, strlen(bad), &vlen), CSN_EINVAL);
  /* case change */
  strcpy(bad, "apple.d8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
  assert_int_equal(csn__unsign(&k, 1, bad, strlen(bad), &vlen), CSN_EINVAL);
  /* no dot */
  strcpy(bad, "appleD8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
  assert_int_equal(csn__unsign(&k, 1, bad, strlen(bad), &vlen), CSN_EINVAL);
  assert_int_equal(csn__unsign(&k, 1, "", 0, &vlen), CSN_EINVAL);
  /* dotted sid: split at the last dot */
  strcpy(good, "a.b.sKNesNyAbFAJ+fsoA7qNx4Tsyo+r5keVpJkZSzFMXZw");
  assert_int_equal(csn__unsign(&k, 1, good, strlen(good), &vlen), 0);
  assert_int_equal(vlen, 3);
  /* empty sid */
  strcpy(good, ".aJcKKTu8Uv0mRiw7LTI435t+pOa+giU/WLAuLCKGEFc");
  vlen = 99;
  assert_int_equal(csn__unsign(&k, 1, good, strlen(good), &vlen), 0);
  assert_int_equal(vlen, 0);
  /* a prefix of the signature (length check) */
  assert_int_equal(csn__unsign(&k, 1, good, strlen(good) - 1, &vlen),
                   CSN_EINVAL);
}

/* ['new', 'old']: element 0 signs, both verify, first match wins. */
static void test_rotation(void **state) {
  csn__hmac_key keys[2], old;
  char cookie[128], sig[CSN__SIG_LEN + 1];
  const char *sid = "hrUjCnwaZpmnU9oJmZTfH4rMSdHuVvyf";
  size_t vlen;
  (void)state;
  assert_int_equal(csn__hmac_key_init(&keys[0], "new", 3), 0);
  assert_int_equal(csn__hmac_key_init(&keys[1], "old", 3), 0);
  csn__sign(&keys[0], sid, strlen(sid), sig);
  assert_string_equal(sig, "iprImqxxKozoPe8Z/34BC6KQhOGx94ijDMQDb5J+Tl8");
  snprintf(cookie, sizeof cookie, "%s.%s", sid, sig);
  assert_int_equal(csn__unsign(keys, 2, cookie, strlen(cookie), &vlen), 0);
  assert_int_equal(vlen, 32);
  /* a cookie signed with the old secret verifies with index 1 */
  old = keys[1];
  csn__sign(&old, sid, strlen(sid), sig);
  snprintf(cookie, sizeof cookie, "%s.%s", sid, sig);
  assert_int_equal(csn__unsign(keys, 2, cookie, strlen(cookie), &vlen), 1);
  /* and is refused when only the new secret is configured */
  assert_int_equal(csn__unsign(keys, 1, cookie, strlen(cookie), &vlen),
                   CSN_EINVAL);
}

static void test_public_sign_unsign(void **state) {
  char out[128];
  size_t outlen = sizeof out, vlen = 0;
  const char *secrets[] = {"new", "keyboard cat"};
  const size_t lens[] = {3, 12};
  (void)state;
  assert_int_equal(
      csn_cookie_sign("apple", 5, "keyboard cat", 12, out, &outlen), 0);
  assert_string_equal(out, "apple.D8Y+pkTAmeR0PobOhY4G97PRW+j7bUnP/5m6/On1MCU");
  assert_int_equal(outlen, strlen(out));
  assert_int_equal(csn_cookie_unsign(out, outlen, secrets, NULL, 2, &vlen), 1);
  assert_int_equal(vlen, 5);
  assert_int_equal(csn_cookie_unsign(out, outlen, secrets, lens, 1, &vlen),
                   CSN_EINVAL);
  assert_int_equal(csn_cookie_unsign(out, outlen, secrets, lens, 0, &vlen),
                   CSN_EINVAL);
  /* Binary secret through the public API. */
  outlen = sizeof out;
  assert_int_equal(csn_cookie_sign("apple", 5, bin_secret, 32, out, &outlen),
                   0);
  assert_string_equal(out, "apple.WYwX37lUK1ZJ678SuZkryL7p+0IObdCKdKJxWvnl4gc");
  {
    const char *bs[] = {bin_secret};
    const size_t bl[] = {32};
    assert_int_equal(csn_cookie_unsign(out, outlen, bs, bl, 1, &vlen), 0);
  }
  /* Too small: ENOBUFS reports the size needed (with the NUL). */
  outlen = 10;
  assert_int_equal(
      csn_cookie_sign("apple", 5, "keyboard cat", 12, out, &outlen),
      CSN_ENOBUFS);
  assert_int_equal(outlen, 5 + 1 + 43 + 1);
  outlen = 50;
  assert_int_equal(
      csn_cookie_sign("apple", 5, "keyboard cat", 12, out, &outlen), 0);
  assert_int_equal(outlen, 49);
}

/* uid-safe's mapping (spec 3): base64url of fixed byte patterns. */
static void test_id_mapping(void **state) {
  unsigned char raw[24];
  char out[33];
  size_t i;
  (void)state;
  for (i = 0; i < 24; i++)
    raw[i] = (unsigned char)i;
  assert_int_equal(csn__b64_encode(raw, 24, out, 1), 32);
  assert_string_equal(out, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
  for (i = 0; i < 24; i += 3) {
    raw[i] = 0xfb;
    raw[i + 1] = 0xff;
    raw[i + 2] = 0xfe;
  }
  assert_int_equal(csn__b64_encode(raw, 24, out, 1), 32);
  assert_string_equal(out, "-__--__--__--__--__--__--__--__-");
  /* the standard alphabet for the same bytes */
  csn__b64_encode(raw, 24, out, 0);
  assert_string_equal(out, "+//++//++//++//++//++//++//++//+");
}

static void test_genid(void **state) {
  char a[33], b[33];
  size_t i;
  (void)state;
  assert_int_equal(csn__genid(a), 0);
  assert_int_equal(csn_generate_id(b, sizeof b), 0);
  assert_int_equal(strlen(a), 32);
  assert_int_equal(strlen(b), 32);
  assert_string_not_equal(a, b);
  for (i = 0; i < 32; i++)
    assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789-_",
                           a[i]));
  assert_int_equal(csn_generate_id(b, 32), CSN_ENOBUFS);
  assert_int_equal(csn_generate_id(NULL, 33), CSN_EINVAL);
}

/* Ids are drawn from a per-thread pool of random bytes: a forked child
 * must not hand out the ids its parent is about to hand out. */
static void test_genid_after_fork(void **state) {
  char parent[33], child[33] = "", first[33];
  int fds[2], status = 0;
  pid_t pid;
  (void)state;
  assert_int_equal(csn__genid(first), CSN_OK); /* fills the pool */
  assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char id[33];
    close(fds[0]);
    if (csn__genid(id) != CSN_OK || write(fds[1], id, 33) != 33)
      _exit(1);
    _exit(0);
  }
  close(fds[1]);
  assert_int_equal(read(fds[0], child, 33), 33);
  close(fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(csn__genid(parent), CSN_OK);
  assert_string_not_equal(parent, child);
  assert_string_not_equal(first, child);
  /* Many ids in a row (several pool refills) never repeat. */
  {
    static char seen[600][33];
    for (int i = 0; i < 600; i++) {
      assert_int_equal(csn__genid(seen[i]), CSN_OK);
      for (int j = 0; j < i; j++)
        assert_string_not_equal(seen[i], seen[j]);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_vectors),
      cmocka_unit_test(test_raw_hmac),
      cmocka_unit_test(test_long_key),
      cmocka_unit_test(test_unsign_cases),
      cmocka_unit_test(test_rotation),
      cmocka_unit_test(test_public_sign_unsign),
      cmocka_unit_test(test_id_mapping),
      cmocka_unit_test(test_genid),
      cmocka_unit_test(test_genid_after_fork),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
