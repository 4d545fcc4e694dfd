/* bare_table.c - csn-bench-bare --table: see bare_table.h.
 *
 * Built to be cheap, so that what it costs is the table's memory and not
 * its code: keys are already random (a SplitMix64 of a counter), so they
 * are their own hash; the array is open addressing with linear probing,
 * at most a quarter full, and a removal shifts the probe run back instead
 * of leaving a tombstone; the order of arrival is a ring of (key, record),
 * so the oldest is found, and its slot too, without reading any record.
 * It asks the cache ahead as the MemoryStore does: the new key's slot
 * before the lock, the next record to go and its slot one eviction
 * ahead. */
#include "bare_table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The MemoryStore's block for the demo's new session: its entry's fields
 * (80 bytes), the 32-character id and its NUL, and the record's room
 * (mt_text_cap of the 113 bytes below: 128). */
#define BLOCK_SIZE (80 + 33 + 128)
#define ID_LEN BARE_TABLE_ID_LEN

static const char record[] =
    "{\"cookie\":{\"originalMaxAge\":86400000,\"expires\":"
    "\"2026-12-05T19:37:58.144Z\",\"httpOnly\":true,\"path\":\"/\"},"
    "\"views\":1}";

typedef struct block {
  uint64_t key;
  size_t len;
  char id[ID_LEN + 1];
  char text[];
} block;

_Static_assert(sizeof(block) + sizeof record <= BLOCK_SIZE,
               "a record fits its block");

typedef struct slot {
  uint64_t key;
  block *b; /* NULL: empty */
} slot;

static struct {
  pthread_mutex_t lock;
  slot *slots;
  size_t mask;
  slot *ring; /* the records in order of arrival */
  size_t n, head, count;
  atomic_uint_fast64_t counter;
} t = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t splitmix64(uint64_t x) {
  x += UINT64_C(0x9e3779b97f4a7c15);
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

int bare_table_init(size_t n) {
  size_t nslots = 16;
  if (n == 0 || n > SIZE_MAX / 8 / sizeof(slot)) return -1;
  while (nslots < n * 4) nslots *= 2;
  t.slots = calloc(nslots, sizeof *t.slots);
  t.ring = calloc(n, sizeof *t.ring);
  if (t.slots == NULL || t.ring == NULL) {
    bare_table_free();
    return -1;
  }
  t.mask = nslots - 1;
  t.n = n;
  return 0;
}

void bare_table_free(void) {
  size_t i;
  if (t.ring != NULL)
    for (i = 0; i < t.n; i++) free(t.ring[i].b);
  free(t.ring);
  free(t.slots);
  t.ring = NULL;
  t.slots = NULL;
  t.n = t.head = t.count = 0;
}

/* Whether slot j's key, whose home is k, may move back to the hole at i:
 * k must not lie cyclically in (i, j]. */
static int may_fill(size_t i, size_t j, size_t k) {
  return i <= j ? (k <= i || k > j) : (k <= i && k > j);
}

/* Remove key's slot (the key is present), shifting its probe run back. */
static void remove_key(uint64_t key) {
  size_t i = key & t.mask, j;
  while (t.slots[i].key != key || t.slots[i].b == NULL) i = (i + 1) & t.mask;
  for (j = (i + 1) & t.mask; t.slots[j].b != NULL; j = (j + 1) & t.mask) {
    if (may_fill(i, j, t.slots[j].key & t.mask)) {
      t.slots[i] = t.slots[j];
      i = j;
    }
  }
  t.slots[i].b = NULL;
}

static const char digits[] = "0123456789abcdef";

/* An id is its key in hex, twice (a session id's length). */
static void put_id(char *out, uint64_t key) {
  int i;
  for (i = 0; i < ID_LEN; i++) out[i] = digits[(key >> ((i % 16) * 4)) & 15];
  out[ID_LEN] = '\0';
}

/* The key of an id put_id() wrote (at least 16 characters); 0 (no key:
 * SplitMix64 maps only one counter value there) for anything else. */
static uint64_t key_of(const char *id) {
  uint64_t key = 0;
  int i;
  for (i = 15; i >= 0; i--) {
    const char *d = memchr(digits, id[i], 16); /* '\0' is not among them */
    if (d == NULL) return 0;
    key = key << 4 | (uint64_t)(d - digits);
  }
  return key;
}

/* A returning visitor: its record written over in place. 1 if held. */
static int save_over(uint64_t key, char id_out[ID_LEN + 1]) {
  size_t i;
  int found = 0;
  pthread_mutex_lock(&t.lock);
  for (i = key & t.mask; t.slots[i].b != NULL; i = (i + 1) & t.mask) {
    if (t.slots[i].key == key) {
      block *b = t.slots[i].b;
      memcpy(b->text, record, sizeof record);
      b->len = sizeof record - 1;
      memcpy(id_out, b->id, ID_LEN + 1);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&t.lock);
  return found;
}

int bare_table_save(const char *id, char id_out[ID_LEN + 1]) {
  uint64_t key;
  block *b, *old = NULL;
  size_t i;
  if (id != NULL && (key = key_of(id)) != 0 && save_over(key, id_out))
    return 0;
  /* A new visitor. Counter values are never reused, and SplitMix64 is a
   * bijection, so a new key is held by no record. */
  key = splitmix64(atomic_fetch_add(&t.counter, 1));
  __builtin_prefetch(&t.slots[key & t.mask], 1);
  if ((b = malloc(BLOCK_SIZE)) == NULL) return -1;
  b->key = key;
  b->len = sizeof record - 1;
  put_id(b->id, key);
  memcpy(b->text, record, sizeof record);
  memcpy(id_out, b->id, ID_LEN + 1);

  pthread_mutex_lock(&t.lock);
  if (t.count == t.n) {
    old = t.ring[t.head].b;
    remove_key(t.ring[t.head].key);
    t.count--;
  }
  for (i = key & t.mask; t.slots[i].b != NULL; i = (i + 1) & t.mask) {
  }
  t.slots[i].key = key;
  t.slots[i].b = b;
  t.ring[t.head].key = key;
  t.ring[t.head].b = b;
  t.head = t.head + 1 == t.n ? 0 : t.head + 1;
  t.count++;
  /* The next record to go and its slot, one eviction ahead. */
  if (t.count == t.n) {
    __builtin_prefetch(t.ring[t.head].b, 1);
    __builtin_prefetch(&t.slots[t.ring[t.head].key & t.mask], 1);
  }
  pthread_mutex_unlock(&t.lock);
  free(old);
  return 0;
}
