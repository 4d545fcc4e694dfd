#!/usr/bin/env bash
# test.sh - the project's one test command (also what CI runs, via .ci/run).
#
# On a Debian 12 machine, as root or with sudo, from any directory:
#   scripts/test.sh
#
# 1. installs what the tests need (apt packages when missing, `npm ci` for the
#    Node packages under tests/ and bench/);
# 2. starts Redis and PostgreSQL on loopback (scripts/services.sh) and exports
#    CSN_TEST_REDIS_URL / CSN_TEST_PG_URL;
# 3. build-ci:    -DCSN_WERROR=ON, build, every test;
# 4. build-asan:  the same with AddressSanitizer + UndefinedBehaviorSanitizer;
#    build-tsan:  the same with ThreadSanitizer (tests/tsan.supp: third-party
#                 libraries only), every test but install_cmake;
# 5. the http_ tests of build-ci again under valgrind memcheck;
# 6. build-clang: CC=clang, -DCSN_WERROR=ON, build, every test;
# 7. every libFuzzer target for a short run (clang, build-fuzz).
#
# Every step runs even when an earlier one failed (a build failure skips only
# the steps that need that build), so one run reports everything. The exit
# status is 0 only when every step passed. A skipped test is a failure here:
# the servers are up, so a test that skips has lost its server or its wiring.
#
# Knobs: CSN_TEST_JOBS (parallel tests and build jobs, default 2).

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

# shellcheck source=scripts/deps.sh
. "$ROOT/scripts/deps.sh"
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

JOBS=${CSN_TEST_JOBS:-2}

# Every store and every adapter is built: a fragment under src/stores/ or
# src/adapters/ only exists once its code does, and an option without a
# fragment is ignored.
CONFIG_ARGS=(
  -DCSN_WERROR=ON
  -DCSN_WITH_SQLITE=ON -DCSN_WITH_REDIS=ON -DCSN_WITH_PG=ON -DCSN_WITH_MONGO=ON
  -DCSN_WITH_ULFIUS=ON -DCSN_WITH_CIVETWEB=ON
)

# A test taking longer than this is hung, not slow (valgrind gets more below).
TEST_TIMEOUT=300
MEMCHECK_TIMEOUT=1200

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/csn-test.XXXXXX") || exit 1

SUMMARY=()
FAILED=0
TESTS_PASSED=0
TESTS_FAILED=0

say() { printf '\n=== %s\n' "$*"; }

# record NAME RC START [NOTE]: one summary line per step.
record() {
  local name=$1 rc=$2 start=$3 note=${4:-} secs
  secs=$(($(date +%s) - start))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("PASS  $name (${secs}s)${note:+  $note}")
  else
    SUMMARY+=("FAIL  $name (${secs}s)${note:+  $note}")
    FAILED=1
  fi
}

# run_ctest LOG ARGS...: ctest with the output shown and kept in LOG. Fails
# when ctest fails, when it ran nothing, and when any test was skipped or did
# not run. Adds the per-test results to the totals.
run_ctest() {
  local log=$1 rc pass fail skipped
  shift
  ctest --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # ctest prints one line per test: "  3/12 Test  #3: name ....   Passed  0.01 sec"
  # ("MemCheck #3" under -T memcheck). Anything but Passed is a failure.
  pass=$(grep -Ec '^ *[0-9]+/[0-9]+ (Test|MemCheck) +#[0-9]+: .* Passed +[0-9.]+ sec' "$log")
  fail=$(grep -E '^ *[0-9]+/[0-9]+ (Test|MemCheck) +#[0-9]+: ' "$log" |
           grep -Evc ' Passed +[0-9.]+ sec')
  TESTS_PASSED=$((TESTS_PASSED + pass))
  TESTS_FAILED=$((TESTS_FAILED + fail))
  skipped=$(grep -E '\*\*\*(Skipped|Not Run)|The following tests did not run' "$log" || true)
  if [ -n "$skipped" ]; then
    echo "test.sh: tests were skipped or did not run; that is a failure here:" >&2
    grep -E '\*\*\*(Skipped|Not Run)|\((Skipped|Not Run|Disabled)\)' "$log" >&2 || true
    return 1
  fi
  return "$rc"
}

# build DIR EXTRA_CMAKE_ARGS...: configure and build into ROOT/DIR.
build() {
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$ROOT/$dir" "${CONFIG_ARGS[@]}" "$@" &&
    cmake --build "$ROOT/$dir" -j "$JOBS"
}

# build_and_test DIR TITLE TESTS [CMAKE_ARG...] [-- [VAR=VALUE...] [-- CTEST_ARG...]]
# One build step: configure and build ROOT/DIR (TITLE says how, on the
# progress line), then, if it built, run its tests with the VAR=VALUE
# settings in their environment and CTEST_ARGs added; the summary names the
# tests TESTS, the log is LOGDIR/<DIR without build->.log. Returns the
# build's status: a later step may need the build, not the tests.
build_and_test() {
  local dir=$1 title=$2 tests=$3 t built
  local cmake_args=() test_env=()
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do cmake_args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do test_env+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  say "$dir: configure + build ($title)"
  t=$(date +%s)
  build "$dir" ${cmake_args[@]+"${cmake_args[@]}"}
  built=$?
  record "$dir: build" "$built" "$t"
  [ "$built" -eq 0 ] || return "$built"
  say "$dir: ctest"
  t=$(date +%s)
  # Exported for the tests only, until this function returns.
  [ ${#test_env[@]} -eq 0 ] || local -x "${test_env[@]}"
  run_ctest "$LOGDIR/${dir#build-}.log" --test-dir "$ROOT/$dir" -j "$JOBS" \
    --timeout "$TEST_TIMEOUT" "$@"
  record "$dir: ctest ($tests)" "$?" "$t"
  return 0
}

T0=$(date +%s)

# --- 1. dependencies ------------------------------------------------------
say "dependencies"
t=$(date +%s)
csn_deps_test "$ROOT"
rc=$?
record "dependencies (apt, npm ci)" "$rc" "$t"

# --- 2. servers -----------------------------------------------------------
say "servers (Redis, PostgreSQL on 127.0.0.1)"
t=$(date +%s)
csn_services_start "$ROOT"
rc=$?
record "servers" "$rc" "$t" "${CSN_TEST_REDIS_URL:-} ${CSN_TEST_PG_URL:-} ${CSN_TEST_MONGO_URL:-}"

# --- 3. plain build, all tests --------------------------------------------
build_and_test build-ci "-DCSN_WERROR=ON" "all tests"
ci_built=$?

# --- 4. sanitizers --------------------------------------------------------
build_and_test build-asan "-DCSN_SANITIZE=ON" "all tests" -DCSN_SANITIZE=ON -- \
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# install_cmake builds a consumer project without -fsanitize=thread against
# the instrumented library, which cannot link; build-ci runs it.
build_and_test build-tsan "-DCSN_TSAN=ON" "all tests but install_cmake" -DCSN_TSAN=ON -- \
  "TSAN_OPTIONS=halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp" \
  -- -E '^install_cmake$'

# --- 5. valgrind on the HTTP tests ----------------------------------------
# The http_ tests drive the whole stack (MHD threads, libcurl, the stores), so
# they are the ones worth the 20x slowdown. ctest's memcheck mode runs each
# under valgrind; --error-exitcode makes any error or leak a failed test.
# "Possibly lost" blocks are reported but not counted: they are interior
# pointers that tools and libraries keep on purpose, not leaks.
# The store tests stay out: valgrind (3.19, Debian 12) does not know that
# fcntl(F_OFD_SETLKW) may block, so a thread waiting there for a byte lock
# that another thread of the process holds keeps valgrind's own lock, the
# holder never runs again, and the process stops. store_file's two-handle
# test does exactly that (reproduced with a two-thread program); ASan, UBSan
# and TSan (step 4) run every test instead.
if [ "$ci_built" -eq 0 ]; then
  n_http=$(ctest --test-dir "$ROOT/build-ci" -N -R '^http_' 2>/dev/null |
             sed -n 's/^Total Tests: *\([0-9]*\).*/\1/p')
  if [ "${n_http:-0}" -gt 0 ]; then
    say "valgrind: $n_http http_ test(s) of build-ci"
    t=$(date +%s)
    vg_opts="--leak-check=full --error-exitcode=1 --errors-for-leak-kinds=definite,indirect"
    vg_opts+=" --show-leak-kinds=definite,indirect,possible --num-callers=30"
    vg_opts+=" --track-origins=yes"
    if [ -f "$ROOT/tests/valgrind.supp" ]; then
      vg_opts+=" --suppressions=$ROOT/tests/valgrind.supp"
    fi
    vg_logs="$ROOT/build-ci/Testing/Temporary"
    rm -f "$vg_logs"/MemoryChecker.*.log
    run_ctest "$LOGDIR/memcheck.log" --test-dir "$ROOT/build-ci" -R '^http_' -T memcheck \
      -j "$JOBS" --timeout "$MEMCHECK_TIMEOUT" \
      --overwrite MemoryCheckCommand="$(command -v valgrind)" \
      --overwrite MemoryCheckCommandOptions="$vg_opts"
    rc=$?
    # ctest keeps valgrind's reports in files; show the ones with errors.
    for f in "$vg_logs"/MemoryChecker.*.log; do
      [ -f "$f" ] || continue
      if grep -q 'ERROR SUMMARY: [1-9]' "$f"; then
        printf '\n--- %s\n' "$f"
        cat "$f"
      fi
    done
    record "valgrind: http_ tests" "$rc" "$t"
  else
    SUMMARY+=("----  valgrind: no http_ test exists yet, step not run")
  fi
fi

# --- 6. clang build, all tests --------------------------------------------
# gcc alone hid a missing -lm for a whole release (gcc expands floor()
# inline, clang calls libm), and the two compilers warn about different
# things, so the -Werror build is made with clang too and its tests run.
# CC is read only when build-clang is first configured; the cache keeps it.
CC=clang build_and_test build-clang "CC=clang, -DCSN_WERROR=ON" "all tests"

# Fuzzing: every libFuzzer target for a short, bounded time (the long runs
# are recorded in docs/RELIABILITY.md). CSN_FUZZ_SECONDS overrides 30.
say "fuzz: build (clang, -DCSN_FUZZ=ON)"
t=$(date +%s)
CC=clang cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCSN_FUZZ=ON -DBUILD_TESTING=OFF \
  -DCSN_BENCH=OFF -DCSN_WITH_MHD=OFF >/dev/null &&
  cmake --build "$ROOT/build-fuzz" -j "$JOBS" --target fuzz
fuzz_built=$?
record "fuzz: build" "$fuzz_built" "$t"
if [ "$fuzz_built" -eq 0 ]; then
  say "fuzz: run each target ${CSN_FUZZ_SECONDS:-30}s"
  t=$(date +%s)
  sh "$ROOT/fuzz/run.sh" "${CSN_FUZZ_SECONDS:-30}" "$ROOT/build-fuzz"
  record "fuzz: every target ${CSN_FUZZ_SECONDS:-30}s" "$?" "$t"
fi

csn_services_stop
trap - EXIT INT TERM

# --- summary --------------------------------------------------------------
printf '\n=== csession test summary (%ss, logs in %s)\n' "$(($(date +%s) - T0))" "$LOGDIR"
for line in "${SUMMARY[@]}"; do
  printf '  %s\n' "$line"
done
if [ "$FAILED" -eq 0 ]; then
  echo "  result: all steps passed"
else
  echo "  result: FAILED"
fi
# Counted over the four ctest runs (a test run by two steps counts twice).
echo "tests: $TESTS_PASSED passed, $TESTS_FAILED failed"
exit "$FAILED"
