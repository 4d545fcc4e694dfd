#!/usr/bin/env bash
# services.sh - throwaway Redis, PostgreSQL and MongoDB (stand-in) servers on
# loopback for tests.
#
# Sourced by scripts/test.sh:
#   . scripts/services.sh
#   csn_services_start      # starts both, exports the URLs, arms the trap
#   ...run tests...
#   csn_services_stop       # also run by the trap on exit or signal
#
# Or executed, to run any command with the servers up:
#   scripts/services.sh run ctest --test-dir build -R store_
#
# Exports for the tests:
#   CSN_TEST_REDIS_URL  redis://127.0.0.1:PORT/0
#   CSN_TEST_PG_URL     postgresql://postgres@127.0.0.1:PORT/csn_test
#   CSN_TEST_MONGO_URL  mongodb://127.0.0.1:PORT/csn_test  (only when a MongoDB
#                       test server script exists, or from MONGODB_URI)
#
# Nothing touches the system's own services: every server gets a fresh data
# directory under /tmp, a free port on 127.0.0.1 and is stopped by pid.

CSN_SVC_DIR=""
CSN_SVC_REDIS_PID=""
CSN_SVC_PG_DIR=""
CSN_SVC_PG_DATA=""
CSN_SVC_PG_BIN=""
CSN_SVC_MONGO_PID=""

csn_svc_log() { printf '[services] %s\n' "$*" >&2; }

# Is something listening on 127.0.0.1:PORT? bash's /dev/tcp connects without
# any extra tool; the subshell keeps the descriptor from leaking.
csn_svc_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free TCP port in 20000..59999. Random rather than sequential so that two
# runs on one machine rarely race for the same port; each start below also
# checks that its own server came up, so a lost race fails loudly.
csn_svc_free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! csn_svc_port_busy "$p"; then
      echo "$p"
      return 0
    fi
  done
  csn_svc_log "no free port found"
  return 1
}

# Wait up to $2 tenths of a second for `$1` (a command) to succeed.
csn_svc_wait() {
  local cmd=$1 n=$2 i
  for ((i = 0; i < n; i++)); do
    if eval "$cmd" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# Run a command as the owner of the PostgreSQL data. PostgreSQL refuses to run
# as root, so as root it runs as the unprivileged `postgres` user; anyone else
# simply runs it as themselves.
csn_svc_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

csn_svc_start_redis() {
  local port
  if ! command -v redis-server >/dev/null 2>&1; then
    csn_svc_log "redis-server not installed"
    return 1
  fi
  port=$(csn_svc_free_port) || return 1
  # --save '' and no AOF: nothing is written to disk; --daemonize no keeps the
  # pid ours to stop.
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$CSN_SVC_DIR" >"$CSN_SVC_DIR/redis.log" 2>&1 &
  CSN_SVC_REDIS_PID=$!
  if ! csn_svc_wait "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG" 100; then
    csn_svc_log "redis-server did not start; its log:"
    cat "$CSN_SVC_DIR/redis.log" >&2
    return 1
  fi
  export CSN_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  csn_svc_log "redis-server pid $CSN_SVC_REDIS_PID at $CSN_TEST_REDIS_URL"
}

csn_svc_start_pg() {
  local port pgdir
  CSN_SVC_PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [ -d "$CSN_SVC_PG_BIN" ] || CSN_SVC_PG_BIN=""
  if [ -z "$CSN_SVC_PG_BIN" ]; then
    csn_svc_log "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)"
    return 1
  fi
  port=$(csn_svc_free_port) || return 1
  # The data and the socket live in their own directory under /tmp, owned by
  # the server's user: the postgres user cannot enter root's private temp dir.
  pgdir=$(mktemp -d /tmp/csn-pg.XXXXXX) || return 1
  CSN_SVC_PG_DIR=$pgdir
  CSN_SVC_PG_DATA="$pgdir/data"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pgdir" || return 1
  fi
  if ! csn_svc_as_pg "$CSN_SVC_PG_BIN/initdb" -D "$CSN_SVC_PG_DATA" -U postgres \
         -A trust -E UTF8 --locale=C -N >"$pgdir/initdb.log" 2>&1; then
    csn_svc_log "initdb failed; its log:"
    cat "$pgdir/initdb.log" >&2
    CSN_SVC_PG_DATA=""
    return 1
  fi
  # fsync off: the data is thrown away, and the tests run faster.
  if ! csn_svc_as_pg "$CSN_SVC_PG_BIN/pg_ctl" -D "$CSN_SVC_PG_DATA" -l "$pgdir/server.log" \
         -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$pgdir -c fsync=off" \
         -w -t 60 start >/dev/null; then
    csn_svc_log "PostgreSQL did not start; its log:"
    cat "$pgdir/server.log" >&2
    return 1
  fi
  if ! csn_svc_as_pg "$CSN_SVC_PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres \
         -d postgres -qAt -c 'CREATE DATABASE csn_test' >/dev/null; then
    csn_svc_log "could not create database csn_test"
    return 1
  fi
  export CSN_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/csn_test"
  csn_svc_log "PostgreSQL ($CSN_SVC_PG_BIN) at $CSN_TEST_PG_URL"
}

# The MongoDB test server (see shared spec mongodb-test-server.md) is a Python
# program of the test suite. A real server given in MONGODB_URI wins. Without
# either, nothing is exported and the Mongo tests (if any) will report a skip,
# which scripts/test.sh counts as a failure.
CSN_SVC_MONGO_SCRIPT="tests/mongo/mongo_server.py"

csn_svc_start_mongo() {
  local root=$1 port
  if [ -n "${MONGODB_URI:-}" ]; then
    export CSN_TEST_MONGO_URL="$MONGODB_URI"
    csn_svc_log "MongoDB from MONGODB_URI: $CSN_TEST_MONGO_URL"
    return 0
  fi
  if [ ! -f "$root/$CSN_SVC_MONGO_SCRIPT" ]; then
    return 0
  fi
  port=$(csn_svc_free_port) || return 1
  # Debian's interpreter: the first python3 on PATH may be another build that
  # does not see python3-bson.
  /usr/bin/python3 "$root/$CSN_SVC_MONGO_SCRIPT" --port "$port" \
    >"$CSN_SVC_DIR/mongo.log" 2>&1 &
  CSN_SVC_MONGO_PID=$!
  if ! csn_svc_wait "csn_svc_port_busy $port" 200; then
    csn_svc_log "MongoDB test server did not start; its log:"
    cat "$CSN_SVC_DIR/mongo.log" >&2
    return 1
  fi
  export CSN_TEST_MONGO_URL="mongodb://127.0.0.1:$port/csn_test"
  csn_svc_log "MongoDB test server pid $CSN_SVC_MONGO_PID at $CSN_TEST_MONGO_URL"
}

# Stop a background server by pid: TERM, up to 10 s, then KILL.
csn_svc_kill() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Safe to call more than once and after a partial start.
csn_services_stop() {
  if [ -n "$CSN_SVC_PG_DATA" ] && [ -f "$CSN_SVC_PG_DATA/postmaster.pid" ]; then
    csn_svc_as_pg "$CSN_SVC_PG_BIN/pg_ctl" -D "$CSN_SVC_PG_DATA" -m fast -w -t 30 \
      stop >/dev/null 2>&1 ||
      csn_svc_as_pg "$CSN_SVC_PG_BIN/pg_ctl" -D "$CSN_SVC_PG_DATA" -m immediate -w \
        stop >/dev/null 2>&1 || true
  fi
  CSN_SVC_PG_DATA=""
  csn_svc_kill "$CSN_SVC_REDIS_PID"
  CSN_SVC_REDIS_PID=""
  csn_svc_kill "$CSN_SVC_MONGO_PID"
  CSN_SVC_MONGO_PID=""
  if [ -n "$CSN_SVC_PG_DIR" ]; then
    rm -rf "$CSN_SVC_PG_DIR"
  fi
  CSN_SVC_PG_DIR=""
  if [ -n "$CSN_SVC_DIR" ]; then
    rm -rf "$CSN_SVC_DIR"
  fi
  CSN_SVC_DIR=""
  unset CSN_TEST_REDIS_URL CSN_TEST_PG_URL CSN_TEST_MONGO_URL
}

# csn_services_start [REPO_ROOT]: start every server; on any failure stop what
# did start and return 1. Arms traps so the servers die with the shell, however
# it ends (normal exit, error under set -e, Ctrl-C, kill).
csn_services_start() {
  local root=${1:-.}
  trap 'csn_services_stop' EXIT
  trap 'csn_services_stop; trap - INT; kill -INT $$' INT
  trap 'csn_services_stop; exit 143' TERM
  CSN_SVC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/csn-svc.XXXXXX") || return 1
  if csn_svc_start_redis && csn_svc_start_pg && csn_svc_start_mongo "$root"; then
    return 0
  fi
  csn_services_stop
  return 1
}

# Executed rather than sourced: `services.sh run CMD...`.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  if [ "${1:-}" != run ] || [ $# -lt 2 ]; then
    echo "usage: $0 run COMMAND [ARG...]" >&2
    exit 2
  fi
  shift
  csn_services_start "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || exit 1
  "$@"
  rc=$?
  csn_services_stop
  exit "$rc"
fi
