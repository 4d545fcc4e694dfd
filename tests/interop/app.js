// The Node side of the store interop tests: express-session with the real
// session-file-store, connect-sqlite3, connect-redis, connect-pg-simple or
// connect-mongo, sharing secret and store with the C test server.
// Configuration comes from the environment:
//   STORE       "file", "sqlite", "redis", "pg", "mongo" (connect-mongo's
//               default stringify: true) or "mongo-object" (stringify: false)
//   STORE_PATH  the sessions directory (file), the database file (sqlite),
//               the Redis URL, redis://HOST:PORT/DB (redis), the
//               PostgreSQL URL, postgresql://USER@HOST:PORT/DB (pg), or the
//               MongoDB URL with its database, mongodb://HOST:PORT/DB (mongo)
//   PREFIX      optional, redis only: connect-redis's key `prefix` (sess:)
//   PG_TABLE    pg only: connect-pg-simple's `tableName` (the table must
//               exist: no createTableIfMissing)
//   PG_SCHEMA   optional, pg only: connect-pg-simple's `schemaName`
//   PG_TZ       optional, pg only: the TimeZone of the pool's connections
//               (`options: -c TimeZone=...`); without it the server's
//               default, as a plain connect-pg-simple deployment has
//   MONGO_COLLECTION  mongo only: connect-mongo's `collectionName`
//   MONGO_AUTO_REMOVE optional, mongo only: `autoRemove` (native, the
//               default, creates the TTL index on expires at start)
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
let redis = null; // the node-redis client (STORE=redis)
let pool = null; // the node-postgres pool (STORE=pg)
let mongoStore = null; // the connect-mongo store (STORE=mongo*)
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
} else if (kind === 'redis') {
  // connect-redis 9 on the node-redis v5 client, connected before listening.
  const { createClient } = require('redis');
  const { RedisStore } = require('connect-redis');
  redis = createClient({ url: where });
  redis.on('error', (err) => console.error('redis: ' + err.message));
  const opts = { client: redis };
  if (process.env.PREFIX !== undefined) opts.prefix = process.env.PREFIX;
  store = new RedisStore(opts);
} else if (kind === 'pg') {
  // connect-pg-simple 10 on a pg 8 pool of our own (so that PG_TZ can set
  // the connections' TimeZone). No pruning timer: the test owns the table.
  const pg = require('pg');
  const pgSession = require('connect-pg-simple')(session);
  if (!process.env.PG_TABLE) {
    console.error('PG_TABLE is required with STORE=pg');
    process.exit(2);
  }
  const conf = { connectionString: where, max: 4 };
  if (process.env.PG_TZ) conf.options = '-c TimeZone=' + process.env.PG_TZ;
  pool = new pg.Pool(conf);
  pool.on('error', (err) => console.error('pg pool: ' + err.message));
  const opts = {
    pool,
    tableName: process.env.PG_TABLE,
    pruneSessionInterval: false,
  };
  if (process.env.PG_SCHEMA) opts.schemaName = process.env.PG_SCHEMA;
  store = new pgSession(opts);
} else if (kind === 'mongo' || kind === 'mongo-object') {
  // connect-mongo 6 on its own MongoClient (mongoUrl), as a plain
  // deployment has it; the database is the URL's.
  const { MongoStore } = require('connect-mongo');
  if (!process.env.MONGO_COLLECTION) {
    console.error('MONGO_COLLECTION is required with STORE=' + kind);
    process.exit(2);
  }
  const opts = {
    mongoUrl: where,
    collectionName: process.env.MONGO_COLLECTION,
    stringify: kind === 'mongo',
    // Fail fast when the server is not there, rather than after 30 s.
    mongoOptions: { serverSelectionTimeoutMS: 5000 },
  };
  if (process.env.MONGO_AUTO_REMOVE) opts.autoRemove = process.env.MONGO_AUTO_REMOVE;
  mongoStore = MongoStore.create(opts);
  store = mongoStore;
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

let server = null;
function listen() {
  server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log('listening ' + server.address().port);
  });
}
if (redis) {
  redis.connect().then(listen, (err) => {
    console.error('redis connect: ' + err.message);
    process.exit(1);
  });
} else if (pool) {
  // One round trip first, so that "listening" means the database answers
  // in the zone asked for (a bad PG_TZ fails here, not on a request).
  pool.query("SELECT current_setting('TimeZone') AS tz").then((r) => {
    const tz = r.rows[0].tz;
    if (process.env.PG_TZ && tz !== process.env.PG_TZ) {
      console.error('pg TimeZone is ' + tz + ', not ' + process.env.PG_TZ);
      process.exit(1);
    }
    listen();
  }, (err) => {
    console.error('pg connect: ' + err.message);
    process.exit(1);
  });
} else if (mongoStore) {
  // Every store call waits for the connection and for autoRemove's
  // createIndex: one call first, so that "listening" means the TTL index is
  // there (or the app says why it is not: an index on expires with other
  // options makes every call fail).
  mongoStore.length((err) => {
    if (err) {
      console.error('mongo: ' + err.message);
      process.exit(1);
    }
    listen();
  });
} else {
  listen();
}
// process.exit also drops the Redis, PostgreSQL and MongoDB connections.
process.on('SIGTERM', () => {
  if (!server) process.exit(0);
  server.close(() => process.exit(0));
});
