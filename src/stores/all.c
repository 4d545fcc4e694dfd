/* all.c - libcsn_stores: the one table of every store this build has.
 *
 * CMake compiles this file with CSN_HAVE_<STORE> for each store library it
 * built and links those libraries, so the table below is the single place
 * that maps URL schemes to store openers. The stores inside libcsn itself
 * (memory://, file://) need no entry: csn_store_open() knows them. */
#include "csn/csn.h"
#include "csn/csn_stores.h"
#ifdef CSN_HAVE_SQLITE
#include "csn/csn_store_sqlite.h"
#endif
#ifdef CSN_HAVE_REDIS
#include "csn/csn_store_redis.h"
#endif
#ifdef CSN_HAVE_PG
#include "csn/csn_store_pg.h"
#endif
#ifdef CSN_HAVE_MONGO
#include "csn/csn_store_mongo.h"
#endif

typedef struct store_entry {
  const char *scheme;
  csn_store_open_fn open;
} store_entry;

static const store_entry stores[] = {
#ifdef CSN_HAVE_SQLITE
    {"sqlite", csn_store_sqlite_open},
#endif
#ifdef CSN_HAVE_REDIS
    {"redis", csn_store_redis_open},
    {"unix", csn_store_redis_open},
    {"redis+unix", csn_store_redis_open},
    {"rediss", csn_store_redis_open},
#endif
#ifdef CSN_HAVE_PG
    {"postgres", csn_store_pg_open},
    {"postgresql", csn_store_pg_open},
#endif
#ifdef CSN_HAVE_MONGO
    {"mongodb", csn_store_mongo_open},
#endif
    {NULL, NULL},
};

int csn_stores_register_all(void) {
  size_t i;
  for (i = 0; stores[i].scheme != NULL; i++) {
    int rc = csn_store_register(stores[i].scheme, stores[i].open);
    if (rc != CSN_OK)
      return rc;
  }
  return CSN_OK;
}

const char *csn_stores_schemes(void) {
  return "memory://"
#ifdef CSN_HAVE_FILE_STORE
         " file://"
#endif
#ifdef CSN_HAVE_SQLITE
         " sqlite://"
#endif
#ifdef CSN_HAVE_REDIS
         " redis://"
#endif
#ifdef CSN_HAVE_PG
         " postgres://"
#endif
#ifdef CSN_HAVE_MONGO
         " mongodb://"
#endif
      ;
}
