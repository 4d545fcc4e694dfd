// The Node side of the store interop tests: express-session with the real
// session-file-store or connect-sqlite3, sharing secret and store with the
// C test server. Configuration comes from the environment:
//   STORE       "file" or "sqlite"
//   STORE_PATH  the sessions directory (file) or the database file (sqlite)
//   SECRET      the cookie secret
//   PORT        port to bind on 127.0.0.1 (0: any; the chosen one is printed)
//   FILE_SECRET optional, file store only: session-file-store's `secret`
//               (encrypted session files)
// Prints "listening <port>" once ready; exits on SIGTERM.
'use strict';

const path = require('path');
const express = require('express');
const session = require('express-session');

const kind = process.env.STORE;
const where = process.env.STORE_PATH;
const secret = process.env.SECRET;
if (!kind || !where || !secret) {
  console.error('STORE, STORE_PATH and SECRET are required');
  process.exit(2);
}

let store;
if (kind === 'file') {
  const FileStore = require('session-file-store')(session);
  // No read retries: a missing file is simply a new session here.
  const opts = { path: where, retries: 0, logFn: () => {} };
  if (process.env.FILE_SECRET) opts.secret = process.env.FILE_SECRET;
  store = new FileStore(opts);
} else if (kind === 'sqlite') {
  const SQLiteStore = require('connect-sqlite3')(session);
  store = new SQLiteStore({
    db: path.basename(where),
    dir: path.dirname(where),
    table: 'sessions',
    concurrentDb: true,
  });
} else {
  console.error('unknown STORE ' + kind);
  process.exit(2);
}

const app = express();
app.use(session({
  secret,
  store,
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 3600000 },
}));

// The express-session README's view counter.
app.get('/', (req, res) => {
  if (req.session.views) {
    req.session.views++;
    res.type('text').send(`You've visited this page ${req.session.views} times`);
  } else {
    req.session.views = 1;
    res.type('text').send('Welcome! Refresh the page to count visits.');
  }
});

// The demo's increment route: add 1 to integer member k, answer "k: N".
app.get('/inc', (req, res) => {
  const k = String(req.query.k || '');
  if (!k || k === 'cookie') return res.status(400).type('text').send('bad k');
  req.session[k] = (Number(req.session[k]) || 0) + 1;
  res.type('text').send(`${k}: ${req.session[k]}`);
});

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log('listening ' + server.address().port);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
