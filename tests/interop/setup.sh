#!/bin/sh
# Install the pinned Node packages for the interop tests (idempotent).
# npm does not run install scripts by default, so sqlite3's native module is
# built explicitly afterwards.
set -e
cd "$(dirname "$0")"
if [ ! -f node_modules/sqlite3/build/Release/node_sqlite3.node ] ||
   [ ! -d node_modules/session-file-store ]; then
  npm ci --no-audit --no-fund
  npm rebuild sqlite3 --foreground-scripts
fi
node -e "require('express-session'); require('session-file-store'); require('connect-sqlite3'); require('sqlite3')"
echo "interop node packages ready"
