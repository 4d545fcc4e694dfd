/* store_example.h - "listmap://", the worked example of a csession store.
 *
 * The whole public surface of a store is one opener in the shape every
 * store has; the application registers it under its URL scheme at
 * start-up and opens it by URL like any other store:
 *
 *     csn_store_register("listmap", example_store_open);
 *     csn_store_open("listmap://?sweep=60000", &st, err, sizeof err);
 *
 * docs/STORES.md walks through examples/store_example.c. */
#ifndef CSN_STORE_EXAMPLE_H
#define CSN_STORE_EXAMPLE_H

#include <stddef.h>

#include <csn/csn.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Open a listmap store: "listmap://[?sweep=MS]". Expired records are
 * removed by a background thread every MS milliseconds (default 60000,
 * jittered by 10%); with sweep=0 there is no thread and they are dropped
 * when read, counted, listed or pruned. A record saved with CSN_TIME_NONE
 * (a browser-session cookie) is kept until destroyed, as in
 * express-session's MemoryStore.
 * Returns CSN_OK with *out (release with csn_store_free), or CSN_EINVAL /
 * CSN_ENOMEM / CSN_EIO with a message in errbuf (may be NULL) and in
 * csn_last_error(). Thread-safe store; the opener itself may be called
 * from any thread. */
int example_store_open(const char *url, csn_store **out, char *errbuf,
                       size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_EXAMPLE_H */
