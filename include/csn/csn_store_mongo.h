/* csn_store_mongo.h - MongoDB store, document-compatible with
 * connect-mongo 6.0 (stores.md section 7), so C and Node app servers share
 * one collection and one user session.
 *
 * Link csn::store_mongo (library csn_store_mongo, on libmongoc 1.23+).
 * Built when libmongoc is found (-DCSN_WITH_MONGO=AUTO, the default; ON
 * requires it).
 *
 * Document (exactly connect-mongo's, one per session, in collection
 * `collection` of the URL's database, "test" when the URL names none, as
 * the Node driver's default):
 *   _id           the session id
 *   session       the record's JSON text (stringify=true, the default), or
 *                 with stringify=false an embedded document: JSON numbers
 *                 that are integers in the int32 range become int32, other
 *                 numbers double (what the Node driver writes for a JS
 *                 number), session.cookie.expires a BSON Date, everything
 *                 else as JSON has it, member order kept
 *   expires       BSON Date: cookie.expires, or now + ttl for a
 *                 browser-session cookie
 *   lastModified  BSON Date of the last write, only with touch_after > 0
 *
 * Operations (`live` = no `expires`, or `expires` later than now):
 *   get      findOne {_id, live}: an expired document still stored (the
 *            TTL monitor runs once a minute) is never returned. The text
 *            comes back exactly as stored; in object form it is what
 *            Node's JSON.stringify writes for the document (Dates as ISO
 *            text, numbers in JavaScript's shortest form).
 *   set      updateOne {_id} {$set: {session, expires[, lastModified]}}
 *            with upsert, as connect-mongo.
 *   touch    updateOne {_id, live} {$set: {expires[, lastModified]}}: the
 *            stored session is never rewritten (a concurrent request's
 *            newer data stays). A missing or expired document is not an
 *            error and is neither created nor revived (connect-mongo fails
 *            with "Unable to find the session to touch", which
 *            express-session turns into an error after the response).
 *            With touch_after > 0, connect-mongo's touchAfter: no write at
 *            all while the lastModified that get() saw is younger than
 *            touch_after seconds; a document without lastModified gets none
 *            from touch. The lastModified each get() reads is kept in a
 *            small per-store table keyed by id (1024 entries, overwritten
 *            on collision) that the following touch() consumes; when the
 *            entry is gone, touch reads lastModified back first (one more
 *            round trip, same outcome).
 *   destroy  deleteOne {_id}.
 *   cas      an updateOne whose filter holds _id, live, and the session
 *            exactly as it was read: {session: <the expected text>}, or in
 *            object form {session: {$eq: <the stored document>}} after a
 *            read that checked the document renders to the expected text.
 *            A single-document update is atomic on the server, so the
 *            compare and the write are one step for every client (Node's
 *            included). No match: CSN_ECONFLICT when a live document is
 *            there, CSN_ENOENT when it is not (destroyed: a logout wins).
 *   length   countDocuments {live} (connect-mongo counts expired ones too).
 *   all      the live documents, read in batches by _id with no
 *            connection held while the callback runs.
 *   clear    deleteMany {} (not a drop: the TTL index stays).
 *   prune    deleteMany {expires: {$lt: now}}.
 *
 * Removal of expired documents (auto_remove):
 *   native    (default) at open, the TTL index {expires: 1} named
 *             expires_1 with expireAfterSeconds 0 is created (or found);
 *             MongoDB's TTL monitor deletes, up to a minute late. An index
 *             on {expires: 1} with other options makes the open fail with
 *             CSN_ESTORE, saying so (not every request, as in Node).
 *   interval  a background thread deletes expired documents every
 *             auto_remove_interval minutes, each wait drawn from 50%..150%
 *             of it so that processes do not delete together.
 *   disabled  nothing (prune() still works on request).
 *
 * Connections: a mongoc_client_pool_t of at most `pool` clients; a worker
 * borrows one per operation and waits at most `timeout` for a free one
 * (CSN_ETIMEDOUT, "all N connections busy"). Unless the URL sets them,
 * socketTimeoutMS, serverSelectionTimeoutMS and waitQueueTimeoutMS are
 * `timeout` and connectTimeoutMS is `connect_timeout`, so a server that
 * stops answering costs a request about the timeout, never a stuck worker.
 * libmongoc reconnects by itself after a server restart; the first
 * operation on a connection the restart broke fails, so every operation
 * but cas runs once more after a network error (cas is never replayed: it
 * may have been applied). Errors read "mongodb <hosts>: <operation>:
 * <reason>" and never contain the password or a session id.
 *
 * Process-wide libmongoc state: the first store calls mongoc_init() (once,
 * thread-safe) and no store ever calls mongoc_cleanup(), which would break
 * every other libmongoc user in the process; an application may call it
 * itself at exit after freeing its stores. The first store also installs a
 * libmongoc log handler that drops every message (libmongoc's default
 * handler prints warnings that can quote URI options to stderr); an
 * application that wants libmongoc's log installs its own handler after
 * opening the first store. SIGPIPE: libmongoc 1.23 sends with MSG_NOSIGNAL
 * on Linux, so a vanished server never raises it.
 *
 * Thread-safety: every function may be called from several threads at once.
 * Since 0.2.
 */
#ifndef CSN_STORE_MONGO_H
#define CSN_STORE_MONGO_H

#include "csn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* auto_remove modes (connect-mongo's autoRemove). */
enum {
  CSN_MONGO_REMOVE_NATIVE = 0, /* TTL index (the default) */
  CSN_MONGO_REMOVE_INTERVAL,   /* background deleteMany */
  CSN_MONGO_REMOVE_DISABLED    /* nothing */
};

typedef struct csn_mongo_options {
  /* A libmongoc connection string ("mongodb://user:pw@h1,h2/db?
   * replicaSet=rs0"): any option libmongoc knows, none of the store's.
   * NULL: "mongodb://127.0.0.1:27017". */
  const char *uri;
  const char *database;   /* NULL: the URI's, else "test" */
  const char *collection; /* NULL: "sessions" */
  int object_form;        /* 1: connect-mongo's stringify: false */
  int64_t ttl_s;          /* lifetime of a browser-session cookie;
                             0: 1209600 (14 days) */
  int64_t touch_after_s;  /* connect-mongo's touchAfter; 0: off */
  int auto_remove;        /* CSN_MONGO_REMOVE_*; 0: native */
  int64_t auto_remove_interval_ms; /* interval mode; 0: 600000 (10 min) */
  unsigned pool_size;     /* clients at most; 0: 16 */
  int64_t timeout_ms;     /* each operation (and a wait for a client);
                             0: 2000 */
  int64_t connect_timeout_ms; /* 0: 2000 */
} csn_mongo_options;

/* Create the store and check the server now (a ping, and with native
 * auto_remove the TTL index), so an unreachable server, a refused login or
 * a conflicting index is reported here, not on the first request.
 * CSN_EINVAL for a bad option or URI, CSN_EIO / CSN_ETIMEDOUT when MongoDB
 * cannot be reached, CSN_ESTORE when it refuses; the message is in errbuf
 * (when not NULL) and in csn_last_error(), and never contains the
 * password. Release with csn_store_free(). */
CSN_API int csn_store_mongo_new(const csn_mongo_options *opts,
                                csn_store **out, char *errbuf,
                                size_t errlen);

/* Open from a URL:
 *   mongodb://[user:password@]host[:port][,host2[:port]...][/db][?options]
 *   (also mongodb+srv://). The query's store options are taken out; every
 * other parameter goes to libmongoc as it is (replicaSet, authSource, tls,
 * readPreference, w, ...). A parameter that is neither a store option nor
 * one libmongoc knows is CSN_EINVAL, as are bad values; messages name the
 * option, never its value or the password. Store options:
 *   collection=NAME           ("sessions")
 *   stringify=BOOL            (true; false: object form)
 *   ttl=S                     browser-session cookie lifetime (1209600)
 *   touch_after=S             (0)
 *   auto_remove=native|interval|disabled   (native)
 *   auto_remove_interval=MIN  (10)
 *   pool=N                    (16)
 *   timeout=MS                (2000)
 *   connect_timeout=MS        (2000)
 * Register with csn_store_register() for "mongodb", or all stores at once
 * with csn_stores_register_all() (csn/csn_stores.h). */
CSN_API int csn_store_mongo_open(const char *url, csn_store **out,
                                 char *errbuf, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* CSN_STORE_MONGO_H */
