# Sourced by bench/run.sh and bench/callgrind.sh: configure and build the
# benchmark programs in Release mode, in $BUILD_DIR (default: build-bench at
# the top of the source tree), only re-running what changed.

csn_bench_build() {
  local root=$1 build=$2
  shift 2
  # Logs go next to the build, in a directory build*/ that git ignores.
  local logs=$build-logs
  mkdir -p "$logs"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    # Ask for the optional stores whose libraries are installed; when one of
    # them cannot be configured, fall back to the core and the MemoryStore.
    if ! cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_TESTING=OFF -DCSN_WITH_SQLITE=ON -DCSN_WITH_REDIS=ON \
        -DCSN_WITH_PG=ON >"$logs/configure.log" 2>&1; then
      echo "bench: configuring with the optional stores failed (see $logs/configure.log);" \
           "trying without them" >&2
      rm -rf "$build"
      cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_TESTING=OFF >"$logs/configure.log" 2>&1 || {
        echo "bench: cmake configure failed, see $logs/configure.log" >&2
        return 1
      }
    fi
  fi
  # Targets are built one by one so that a missing one (the demo, say) does
  # not stop the others.
  local t rc=0
  for t in "$@"; do
    if ! cmake --build "$build" -j"$(nproc)" --target "$t" >"$logs/build-$t.log" 2>&1; then
      echo "bench: building $t failed, see $logs/build-$t.log" >&2
      rc=1
    fi
  done
  return $rc
}
