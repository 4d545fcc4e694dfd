'use strict';
// The Node reference for csession's benchmark: the demo's visit counter on
// Express + express-session, with the store chosen from the environment.
//
//   STORE   memory | file | redis | postgres | sqlite | mongo | none
//           (default memory)
//           "none" is the same app without the session middleware.
//   PORT    port on 127.0.0.1 (default 3000)
//   SECRET  session secret (default "bench secret")
//   STORE_DIR     file: session directory; sqlite: directory of sessions.db
//   REDIS_URL     redis: e.g. redis://127.0.0.1:6379
//   DATABASE_URL  postgres: e.g. postgres://postgres@127.0.0.1:5432/postgres
//   MONGO_URL     mongo: e.g. mongodb://127.0.0.1:27017/csn_bench (connect-mongo
//                 with its defaults: collection "sessions", stringify true,
//                 autoRemove native)
//
// Options match the C demo: resave false, saveUninitialized false, cookie
// maxAge one day.
//
// Routes (as in examples/demo.c):
//   GET /                         the visit counter
//   GET /inc?k=NAME[&delay=MS]    waits MS ms (0..60000, default 0) after the
//                                 session is loaded, then adds 1 to the integer
//                                 member NAME (absent counts as 0) and answers
//                                 "NAME: N": the lost-update probe's route
//                                 (bench/lost_update.c)

const express = require('express');
const session = require('express-session');

const ONE_DAY_MS = 24 * 60 * 60 * 1000;
const INC_DELAY_MAX_MS = 60000;
const INC_KEY_MAX = 64;
const kind = process.env.STORE || 'memory';
const port = Number(process.env.PORT || 3000);
const secret = process.env.SECRET || 'bench secret';
const storeDir = process.env.STORE_DIR || './sessions';

// Things to close on SIGTERM (database clients).
const closers = [];

async function makeStore() {
  switch (kind) {
    case 'memory':
      return undefined; // express-session's own MemoryStore
    case 'file': {
      const FileStore = require('session-file-store')(session);
      return new FileStore({ path: storeDir, logFn: () => {} });
    }
    case 'redis': {
      const { createClient } = require('redis');
      const { RedisStore } = require('connect-redis');
      const client = createClient({ url: process.env.REDIS_URL || 'redis://127.0.0.1:6379' });
      client.on('error', (err) => console.error('redis:', err.message));
      await client.connect();
      closers.push(() => client.quit());
      return new RedisStore({ client });
    }
    case 'postgres': {
      const pg = require('pg');
      const PgStore = require('connect-pg-simple')(session);
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
      closers.push(() => pool.end());
      return new PgStore({ pool, createTableIfMissing: true });
    }
    case 'mongo': {
      const { MongoStore } = require('connect-mongo');
      const store = MongoStore.create({
        mongoUrl: process.env.MONGO_URL || 'mongodb://127.0.0.1:27017/csn_bench',
      });
      closers.push(() => store.close());
      return store;
    }
    case 'sqlite': {
      const SQLiteStore = require('connect-sqlite3')(session);
      return new SQLiteStore({ dir: storeDir, db: 'sessions.db' });
    }
    default:
      throw new Error(`unknown STORE "${kind}"`);
  }
}

// The demo's key rule: 1..64 bytes, no control characters, not "cookie".
function incKeyOk(k) {
  if (typeof k !== 'string' || k === '' || k === 'cookie') return false;
  if (Buffer.byteLength(k) > INC_KEY_MAX) return false;
  return !/[\x00-\x1f\x7f]/.test(k);
}

// "delay": digits only, capped at the maximum; absent is 0; null if invalid.
function incDelay(d) {
  if (d === undefined) return 0;
  if (typeof d !== 'string' || !/^[0-9]+$/.test(d)) return null;
  return Math.min(Number(d), INC_DELAY_MAX_MS);
}

// GET /inc?k=NAME[&delay=MS]: the read-modify-write that concurrent requests
// on one session race on. express-session loaded the session before this
// handler runs; the delay widens the window between that load and the save
// at the end of the response.
function incRoute(req, res) {
  const text = (code, body) => res.status(code).type('text/plain').send(body);
  const k = req.query.k;
  if (!incKeyOk(k)) return text(400, 'Need ?k=NAME (1-64 characters, not "cookie")\n');
  const ms = incDelay(req.query.delay);
  if (ms === null) return text(400, 'delay: expected milliseconds (digits only)\n');
  const s = req.session;
  if (!s) return text(200, 'No session\n');
  const bump = () => {
    // Only the record's own data members count: "save", "id", "req" and
    // the like are the Session object's, not integers.
    const own = Object.prototype.hasOwnProperty.call(s, k);
    const v = own ? s[k] : (k in s ? null : 0);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      return text(400, 'Not an integer member\n');
    }
    s[k] = v + 1;
    return text(200, `${k}: ${v + 1}\n`);
  };
  if (ms > 0) setTimeout(bump, ms); else bump();
}

async function main() {
  const app = express();
  app.disable('x-powered-by');

  if (kind === 'none') {
    app.get('/', (req, res) => {
      res.type('text/plain').send('Welcome! Refresh the page to count visits.\n');
    });
  } else {
    app.use(session({
      secret,
      store: await makeStore(),
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: ONE_DAY_MS },
    }));
    app.get('/', (req, res) => {
      if (req.session.views) {
        req.session.views++;
        res.type('text/plain').send(`You've visited this page ${req.session.views} times\n`);
      } else {
        req.session.views = 1;
        res.type('text/plain').send('Welcome! Refresh the page to count visits.\n');
      }
    });
    app.get('/inc', incRoute);
  }

  const server = app.listen(port, '127.0.0.1', () => {
    console.error(`node bench app (${kind}) on http://127.0.0.1:${port}/`);
  });
  process.on('SIGTERM', () => {
    server.close();
    Promise.allSettled(closers.map((c) => c())).finally(() => process.exit(0));
    // Keep-alive connections would hold close() open: do not wait for them.
    setTimeout(() => process.exit(0), 500).unref();
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
