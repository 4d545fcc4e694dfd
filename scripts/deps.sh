#!/usr/bin/env bash
# deps.sh - install what csession needs on Debian 12, only what is missing.
#
#   scripts/deps.sh build   compiler, CMake and the libraries of the default build
#   scripts/deps.sh test    the above, plus every store library, the servers the
#                           tests start, valgrind, wrk, Node and the npm packages
#
# It can also be sourced (scripts/demo.sh and scripts/test.sh do): then it only
# defines the csn_deps_* functions.
#
# Every package is checked with dpkg first, so a second run installs nothing and
# takes a second. apt-get runs directly as root, through sudo otherwise.

# The default build (tests included: BUILD_TESTING is on by default, and the
# test fragments need cmocka and libcurl).
CSN_DEPS_BUILD=(
  build-essential cmake pkg-config
  libmicrohttpd-dev libjansson-dev libssl-dev libsqlite3-dev
  libcurl4-gnutls-dev libcmocka-dev
)
# libcurl4-gnutls-dev, not -openssl-dev: the two conflict, and Ulfius's
# development package (the test command's) depends on the GnuTLS one, so
# installing both lists would remove one of them every run.

# What scripts/test.sh needs on top: the optional stores' client libraries,
# the other servers the adapters plug into (Ulfius, CivetWeb),
# the servers it starts on loopback, the memory checker, the load generator,
# clang (the build-clang step, and the fuzzers with libclang-rt), the
# locale data the locale test builds de_DE from, and the MongoDB test
# server's pieces: Debian ships no mongod, so tests/mongo/mongo_server.py
# speaks the wire protocol itself over python3-bson (with python3-pymongo,
# which its own smoke test drives); and the Prometheus parser the metrics
# tests check GET /metrics with (tests/metrics_parse.py, /usr/bin/python3).
CSN_DEPS_TEST=(
  libsqlite3-dev libhiredis-dev libpq-dev libmongoc-dev libbson-dev
  libulfius-dev libcivetweb-dev
  redis-server postgresql
  valgrind wrk openssl locales
  clang libclang-rt-14-dev
  python3 python3-pymongo python3-prometheus-client
)

csn_deps_log() { printf '[deps] %s\n' "$*" >&2; }

# Run a command as root: directly, or through sudo when we are not root.
csn_deps_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    csn_deps_log "need root or sudo to run: $*"
    return 1
  fi
}

csn_deps_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# csn_deps_apt PKG...: install the packages that dpkg does not list as
# installed. apt-get update runs first, once, only when something is missing:
# a fresh machine may have no package lists, and old lists fail to download.
csn_deps_apt() {
  local missing=() p
  for p in "$@"; do
    csn_deps_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  csn_deps_log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  csn_deps_as_root apt-get update -q || return 1
  csn_deps_as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Node and npm: these machines carry Node 20 outside dpkg, so look for the
# commands, and fall back to Debian's packages only when they are absent.
csn_deps_node() {
  local pk=()
  command -v node >/dev/null 2>&1 || pk+=(nodejs)
  command -v npm >/dev/null 2>&1 || pk+=(npm)
  if [ "${#pk[@]}" -gt 0 ]; then
    csn_deps_apt "${pk[@]}"
  fi
}

# csn_deps_npm ROOT: `npm ci` in every directory under ROOT/tests that has a
# package-lock.json (bench/run.sh installs the benchmark's own). npm ci wipes node_modules and
# reinstalls, so skip a directory whose install is newer than its lock file
# (npm writes node_modules/.package-lock.json last) to keep reruns fast.
csn_deps_npm() {
  local root=$1 lock dir stamp rc=0
  while IFS= read -r lock; do
    dir=$(dirname "$lock")
    stamp="$dir/node_modules/.package-lock.json"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$lock" ] &&
       [ "$stamp" -nt "$dir/package.json" ]; then
      continue
    fi
    csn_deps_log "npm ci in ${dir#"$root"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || rc=1
  done < <(find "$root/tests" -name package-lock.json \
             -not -path '*/node_modules/*' 2>/dev/null | sort)
  return "$rc"
}

csn_deps_build() {
  csn_deps_apt "${CSN_DEPS_BUILD[@]}"
}

# csn_deps_test ROOT
csn_deps_test() {
  csn_deps_apt "${CSN_DEPS_BUILD[@]}" "${CSN_DEPS_TEST[@]}" &&
    csn_deps_node &&
    csn_deps_npm "$1"
}

# Executed rather than sourced: act on the argument.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  case "${1:-}" in
    build) csn_deps_build ;;
    test) csn_deps_test "$root" ;;
    *)
      echo "usage: $0 build|test" >&2
      exit 2
      ;;
  esac
fi
