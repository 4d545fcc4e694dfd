#!/bin/sh
# Install the pinned Node packages for the interop tests (idempotent).
# npm does not run install scripts by default, so sqlite3's native module is
# built explicitly afterwards. An install older than package-lock.json (npm
# writes node_modules/.package-lock.json last) is redone.
set -e
cd "$(dirname "$0")"
if [ ! -f node_modules/sqlite3/build/Release/node_sqlite3.node ] ||
   [ ! -d node_modules/session-file-store ] ||
   [ ! -d node_modules/connect-redis ] || [ ! -d node_modules/redis ] ||
   [ ! -d node_modules/connect-pg-simple ] || [ ! -d node_modules/pg ] ||
   [ ! -d node_modules/connect-mongo ] || [ ! -d node_modules/mongodb ] ||
   [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
  npm ci --no-audit --no-fund
  npm rebuild sqlite3 --foreground-scripts
fi
node -e "require('express-session'); require('session-file-store'); require('connect-sqlite3'); require('sqlite3'); require('connect-redis'); require('redis'); require('connect-pg-simple'); require('pg'); require('connect-mongo'); require('mongodb')"
echo "interop node packages ready"
