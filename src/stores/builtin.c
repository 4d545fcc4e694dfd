/* builtin.c - the stores that live in libcsn itself, in one table.
 *
 * The core names no store: csn_store_open() looks schemes up in the
 * registry and then here (SQLite's os_unix.c registers its VFSes from an
 * array the same way). Only the MemoryStore is here, because it is the
 * default store of a context created without one, as in express-session,
 * and the file store, which needs nothing the core does not already link
 * (-DCSN_WITH_FILE=OFF leaves it out). Every other store is a library of
 * its own, registered by the application or by csn_stores_register_all()
 * (csn/csn_stores.h). */
#include "csn_int.h"
#ifdef CSN_HAVE_FILE_STORE
#include "csn/csn_store_file.h"
#endif

const csn__store_scheme csn__builtin_stores[] = {
    {"memory", csn_store_memory_open},
#ifdef CSN_HAVE_FILE_STORE
    {"file", csn_store_file_open},
#endif
    {NULL, NULL},
};
