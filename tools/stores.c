/* stores.c - one place that knows which stores a build includes. The
 * library keeps stores in separate targets so a user links only what they
 * use; the programs shipped with it link everything that was built, and
 * CMake tells this file which (CSN_HAVE_<STORE>). */
#include "stores.h"

#include "csn/csn.h"
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

int csn_app_register_stores(void) {
  int rc = CSN_OK; /* memory:// and file:// are built into the core */
#ifdef CSN_HAVE_SQLITE
  rc = csn_store_register("sqlite", csn_store_sqlite_open);
#endif
#ifdef CSN_HAVE_REDIS
  if (rc == CSN_OK)
    rc = csn_store_register("redis", csn_store_redis_open);
#endif
#ifdef CSN_HAVE_PG
  if (rc == CSN_OK)
    rc = csn_store_register("postgres", csn_store_pg_open);
  if (rc == CSN_OK)
    rc = csn_store_register("postgresql", csn_store_pg_open);
#endif
#ifdef CSN_HAVE_MONGO
  if (rc == CSN_OK)
    rc = csn_store_register("mongodb", csn_store_mongo_open);
#endif
  return rc;
}

const char *csn_app_store_schemes(void) {
  return "memory:// file://"
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
