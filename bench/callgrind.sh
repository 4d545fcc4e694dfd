#!/usr/bin/env bash
# Instructions per request cycle of the session core, under callgrind.
#
#   bench/callgrind.sh            (env: BUILD_DIR, N1, N2)
#
# Runs csn-bench-core twice per mode, with N1 and N2 cycles, and divides the
# difference of the two instruction totals by N2 - N1: start-up, the first
# request and the shutdown cancel out, leaving the cost of one cycle. Unlike
# time, the count does not move with the machine's load, so a change in the
# hot path shows up as a change in this number.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$root/build-bench}
N1=${N1:-2000}
N2=${N2:-12000}

. "$root/bench/build.sh"
csn_bench_build "$root" "$BUILD_DIR" csn-bench-core
bin=$BUILD_DIR/csn-bench-core

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not found" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/csn-callgrind.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Total instructions (Ir) of one run.
total_ir() {
  local mode=$1 n=$2 out=$work/cg.$1.$2
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" --mode "$mode" --runs 1 --iterations "$n" >/dev/null 2>"$work/log" || {
    cat "$work/log" >&2
    exit 1
  }
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

echo "| cycle | instructions per cycle |"
echo "|---|---:|"
for mode in returning new; do
  a=$(total_ir "$mode" "$N1")
  b=$(total_ir "$mode" "$N2")
  echo "| $mode | $(( (b - a) / (N2 - N1) )) |"
done
