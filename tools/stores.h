/* stores.h - register every store this build has, for the programs (the
 * demo server and the admin command) that open stores from a URL. */
#ifndef CSN_TOOLS_STORES_H
#define CSN_TOOLS_STORES_H

/* Register file://, sqlite://, redis://, ... as built. Returns 0 or a
 * negative CSN_E* code. */
int csn_app_register_stores(void);

/* The schemes registered, space separated, for help texts. */
const char *csn_app_store_schemes(void);

#endif
