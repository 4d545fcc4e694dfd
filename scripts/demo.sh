#!/usr/bin/env bash
# demo.sh - build csession and run the demo server on http://127.0.0.1:3000.
#
# On a Debian 12 machine, as root or with sudo, from any directory:
#   scripts/demo.sh [demo flags...]        e.g. scripts/demo.sh --rolling --max-age 60000
#
# Installs the build dependencies when missing, configures and builds into
# build/, then replaces itself with build/csession-demo. Extra arguments go to
# the demo unchanged (build/csession-demo --help lists them).
#
# The secret: CSN_SECRET or CSN_SECRET_FILE when set; otherwise one generated
# on the first run and kept in build/demo-secret (mode 600), so cookies stay
# valid across restarts. It reaches the demo through the environment, never
# its command line.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"

csn_deps_build
cmake -S . -B build
cmake --build build -j 2

# Our defaults come first and only for flags the caller did not give: --secret
# is repeatable (rotation), so adding ours next to the caller's would make the
# demo accept a secret nobody asked for.
has_flag() {
  local want=$1 a
  shift
  for a in "$@"; do
    case "$a" in "$want" | "$want="*) return 0 ;; esac
  done
  return 1
}

args=()
has_flag --port "$@" || args+=(--port 3000)
has_flag --bind "$@" || args+=(--bind 127.0.0.1)
# The secret never goes on the demo's command line, where every local user
# could read it (/proc/PID/cmdline): the demo reads CSN_SECRET or
# CSN_SECRET_FILE itself. Without either (and without a --secret or
# --secret-file of the caller's), one is generated on the first run and kept
# in build/demo-secret, private to its owner, so cookies stay valid across
# restarts.
if ! has_flag --secret "$@" && ! has_flag --secret-file "$@" &&
   [ -z "${CSN_SECRET:-}" ] && [ -z "${CSN_SECRET_FILE:-}" ]; then
  if [ ! -s build/demo-secret ]; then
    # 32 random bytes as hex; umask keeps the file private.
    (umask 077 && head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' \
      >build/demo-secret)
    echo "demo.sh: generated a secret in build/demo-secret" >&2
  fi
  chmod 600 build/demo-secret
  export CSN_SECRET_FILE="$ROOT/build/demo-secret"
fi

port=3000
prev=""
for a in "$@"; do
  case "$a" in --port=*) port=${a#--port=} ;; esac
  [ "$prev" = --port ] && port=$a
  prev=$a
done
echo "demo.sh: starting csession-demo on http://127.0.0.1:$port (Ctrl-C stops it)" >&2
exec "$ROOT/build/csession-demo" "${args[@]}" "$@"
