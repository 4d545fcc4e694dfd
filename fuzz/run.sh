#!/bin/sh
# fuzz/run.sh TIME [BUILD_DIR] - run every libFuzzer target for TIME seconds.
#
# Build first:  CC=clang cmake -S . -B build-fuzz -DCSN_FUZZ=ON -DBUILD_TESTING=OFF
#               cmake --build build-fuzz --target fuzz
# Each target starts from its seed corpus (fuzz/corpus/<target>, read only)
# and writes what it discovers to BUILD_DIR/fuzz-corpus/<target>, so runs
# accumulate coverage without touching the committed seeds. A crash leaves
# its input in BUILD_DIR/fuzz-artifacts/ and makes the script fail.
# The summary line per target gives executions, exec/s, coverage (edges)
# and features, taken from libFuzzer's final statistics.
set -u

TIME=${1:?usage: fuzz/run.sh TIME_SECONDS [BUILD_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${2:-${CSN_FUZZ_BUILD:-$HERE/../build-fuzz}}
TARGETS=${FUZZ_TARGETS:-"cookie_header unsign set_cookie record store_url"}
status=0

mkdir -p "$BUILD/fuzz-artifacts" "$BUILD/fuzz-logs"
printf '%-20s %8s %12s %10s %8s %10s %s\n' target seconds executions exec/s cov features result
for t in $TARGETS; do
  exe="$BUILD/fuzz_$t"
  if [ ! -x "$exe" ]; then
    echo "fuzz_$t: not built in $BUILD" >&2
    status=1
    continue
  fi
  work="$BUILD/fuzz-corpus/$t"
  log="$BUILD/fuzz-logs/$t.log"
  mkdir -p "$work"
  # -print_final_stats gives stat::number_of_executed_units; the last
  # "#N ... cov: C ft: F" line gives the coverage reached.
  "$exe" -max_total_time="$TIME" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=4096 -artifact_prefix="$BUILD/fuzz-artifacts/${t}-" \
    "$work" "$HERE/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  if [ "$rc" -eq 0 ]; then res=ok; else res="FAILED (rc $rc, see $log)"; status=1; fi
  printf '%-20s %8s %12s %10s %8s %10s %s\n' "fuzz_$t" "$TIME" "${execs:-?}" \
    "${eps:-?}" "${cov:-?}" "${ft:-?}" "$res"
done
exit $status
