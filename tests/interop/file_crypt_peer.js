// The Node side of store_file_crypt_node_peer: the real session-file-store
// with `secret`, driven from the command line.
//   node file_crypt_peer.js get <dir> <secret> <sid>
//       prints the stored session as JSON (without __lastAccess), or
//       "null" when there is none
//   node file_crypt_peer.js set <dir> <secret> <sid> <json>
//       stores the session <json>
// Exits 0 on success, 1 on a store error (message on stderr).
'use strict';

const session = require('express-session');
const FileStore = require('session-file-store')(session);

const [cmd, dir, secret, sid, json] = process.argv.slice(2);
if (!cmd || !dir || !secret || !sid) {
  console.error('usage: file_crypt_peer.js get|set <dir> <secret> <sid> [json]');
  process.exit(2);
}
// No retries and no reaper: one operation, then exit.
const store = new FileStore({
  path: dir, secret, retries: 0, reapInterval: -1, logFn: () => {},
});

if (cmd === 'get') {
  store.get(sid, (err, sess) => {
    if (err) {
      console.error(String(err));
      process.exit(1);
    }
    if (sess) delete sess.__lastAccess;
    process.stdout.write(JSON.stringify(sess === undefined ? null : sess));
  });
} else if (cmd === 'set') {
  store.set(sid, JSON.parse(json), (err) => {
    if (err) {
      console.error(String(err));
      process.exit(1);
    }
  });
} else {
  console.error('unknown command ' + cmd);
  process.exit(2);
}
