#!/usr/bin/env bash
# Before/after in one run: csession-demo built from the working tree against
# csession-demo built from commit BASE_REV, same flags, same store, the two
# measured back to back in every round (the order alternates by round).
#
#   BASE_REV=354b82a bench/compare.sh [run.sh options]
#
# Defaults: MemoryStore (--stores memory), the returning-visitor scenario
# (--scenarios returning), 3 rounds of 3 s warm-up + 10 s wrk each (--runs,
# --warmup, --duration); about 2 minutes once both binaries are built.
# BASE_REV is built once, in a git worktree under $TMPDIR that is removed
# afterwards (the binary stays in $TMPDIR/csn-bench-base-HASH/ for the next
# run); the working tree's demo in $BUILD_DIR (default build-bench/).
# Prints the table (req/s of both, now/base) and each round's ratio; writes
# it to --out (default $BUILD_DIR/compare-results.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in -h|--help) sed -n '2,15p' "$0"; exit 0 ;; esac
: "${BASE_REV:?set BASE_REV to the commit to compare with, e.g. BASE_REV=354b82a}"
BUILD_DIR=${BUILD_DIR:-$root/build-bench}
export BUILD_DIR
exec "$root/bench/run.sh" --base-rev "$BASE_REV" --targets "csession base" \
  --stores "${STORES:-memory}" --scenarios "${SCENARIOS:-returning}" \
  --out "${OUT:-$BUILD_DIR/compare-results.md}" "$@"
