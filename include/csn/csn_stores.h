/* csn_stores.h - every store this build of csession has, in one call.
 *
 * Each store with dependencies of its own (SQLite, Redis, PostgreSQL,
 * MongoDB) is a library of its own, so that an application links only what
 * it uses and registers it itself:
 *
 *     csn_store_register("sqlite", csn_store_sqlite_open);
 *
 * A program that wants every store the build has (a demo, an admin tool)
 * links libcsn_stores (pkg-config csn_stores) instead and calls
 * csn_stores_register_all() once at start-up.
 *
 * Since 0.2. */
#ifndef CSN_STORES_H
#define CSN_STORES_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Register the opener of every store built into libcsn_stores under its
 * URL schemes ("sqlite", "redis", "postgres" and "postgresql", ...). Not
 * thread-safe: call during start-up, before csn_store_open(). Returns
 * CSN_OK or the first csn_store_register() error. */
CSN_API int csn_stores_register_all(void);

/* The URL forms this build can open, for messages and --help:
 * "memory:// file:// sqlite://" and so on. Static, never NULL. */
CSN_API const char *csn_stores_schemes(void);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORES_H */
