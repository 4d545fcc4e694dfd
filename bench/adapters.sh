#!/usr/bin/env bash
# The adapters' benchmark: each server's demo on a MemoryStore beside its
# bare framework serving a fixed body, in one run.
#
#   bench/adapters.sh [--quick] [--runs N] [--duration S] [--warmup S]
#                     [--frameworks "mhd ulfius civetweb"]
#                     [--scenarios "new returning"] [--out FILE]
#
# For each framework, two targets:
#   bare      the framework alone, started as its demo starts it, answering
#             every request with bare_server.c's fixed body:
#             csn-bench-bare (libmicrohttpd), csn-bench-bare-ulfius,
#             csn-bench-bare-civetweb;
#   csession  the framework's demo (csession-demo, csession-ulfius-demo,
#             csession-civetweb-demo) with --store memory://, its defaults
#             otherwise (2 worker threads).
# Each is measured with wrk on loopback with the scenarios of bench/run.sh
# (new: no cookie, every response a new session; returning: a cookie pool,
# the visit counter climbing) and bench/run.sh's load: wrk -t2 -c50
# --timeout 2s, $WARMUP s of warm-up then $DURATION s measured, the server
# on core $SERVER_CPU and wrk on core $CLIENT_CPU. Every round starts each
# target afresh; even rounds go backwards, so drift spreads over all.
# The table gives medians over the rounds and csession/bare for each
# framework and scenario: what the session costs on that server.
#
# --quick: one round of 3 s after 1 s of warm-up, for a smoke test; the
# figures are not worth publishing.
#
# Builds what it needs in Release mode in $BUILD_DIR (default
# build-bench/, shared with bench/run.sh); a framework whose binaries do
# not build (its library is not installed) is left out, saying so. Prints
# the Markdown table and writes it to --out (default
# $BUILD_DIR/adapters-results.md). Exits non-zero if any run failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$root/build-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
FRAMEWORKS=${FRAMEWORKS:-"mhd ulfius civetweb"}
SCENARIOS=${SCENARIOS:-"new returning"}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PORT_BASE=${PORT_BASE:-18740}
OUT=${OUT:-}
SECRET="csession benchmark secret"
# The same load as bench/run.sh.
WRK_ARGS=(-t2 -c50 --timeout 2s)

while [ $# -gt 0 ]; do
  case $1 in
    --quick) RUNS=1; DURATION=3; WARMUP=1; shift ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --frameworks) FRAMEWORKS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "adapters.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$BUILD_DIR/adapters-results.md}

log() { echo "bench: $*" >&2; }
for tool in wrk taskset curl cmake; do
  command -v "$tool" >/dev/null || { log "$tool not found"; exit 1; }
done
for sc in $SCENARIOS; do
  [ -f "$root/bench/$sc.lua" ] || { log "unknown scenario $sc (no bench/$sc.lua)"; exit 2; }
done

# ---------------------------------------------------------------------------
# Build.
# ---------------------------------------------------------------------------
demo_name() {
  case $1 in
    mhd) echo csession-demo ;;
    ulfius) echo csession-ulfius-demo ;;
    civetweb) echo csession-civetweb-demo ;;
    *) return 1 ;;
  esac
}
bare_name() {
  case $1 in
    mhd) echo csn-bench-bare ;;
    ulfius) echo csn-bench-bare-ulfius ;;
    civetweb) echo csn-bench-bare-civetweb ;;
    *) return 1 ;;
  esac
}
fw_label() {
  case $1 in
    mhd) echo libmicrohttpd ;;
    ulfius) echo Ulfius ;;
    civetweb) echo CivetWeb ;;
  esac
}

. "$root/bench/build.sh"
. "$root/bench/lib.sh"
frameworks=()
for fw in $FRAMEWORKS; do
  demo_name "$fw" >/dev/null || { log "unknown framework $fw (mhd, ulfius, civetweb)"; exit 2; }
  csn_bench_build "$root" "$BUILD_DIR" "$(demo_name "$fw")" "$(bare_name "$fw")" || true
  if [ -x "$BUILD_DIR/$(demo_name "$fw")" ] && [ -x "$BUILD_DIR/$(bare_name "$fw")" ]; then
    frameworks+=("$fw")
  else
    log "$(fw_label "$fw"): $(demo_name "$fw") or $(bare_name "$fw") did not build" \
        "(is the library installed?): skipped"
  fi
done
[ ${#frameworks[@]} -gt 0 ] || { log "nothing to measure"; exit 1; }

# ---------------------------------------------------------------------------
# Targets "framework:kind", one port each. Start, wait until it answers,
# stop.
# ---------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/csn-adapters.XXXXXX")
server_pid=

cleanup() {
  [ -n "$server_pid" ] && bench_stop "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

targets=()
for fw in "${frameworks[@]}"; do targets+=("$fw:bare" "$fw:csession"); done

port_of() {
  local i=0 t
  for t in "${targets[@]}"; do
    [ "$t" = "$1" ] && { echo $((PORT_BASE + i)); return; }
    i=$((i + 1))
  done
}

start_target() {
  local fw=${1%%:*} kind=${1#*:} port=$2
  if [ "$kind" = bare ]; then
    taskset -c "$SERVER_CPU" "$BUILD_DIR/$(bare_name "$fw")" --port "$port" \
      >"$work/server.log" 2>&1 &
  else
    CSN_SECRET=$SECRET taskset -c "$SERVER_CPU" "$BUILD_DIR/$(demo_name "$fw")" \
      --port "$port" --store memory:// "${BENCH_DEMO_FLAGS[@]}" >"$work/server.log" 2>&1 &
  fi
  server_pid=$!
  # Up when GET / answers 200 (that request's session is not counted);
  # quiet, since the store probe expects failures.
  bench_wait_up "$port" "$work/server.log" "" "$server_pid" && return 0
  bench_stop "$server_pid"
  server_pid=
  return 1
}

stop_target() {
  [ -n "$server_pid" ] && bench_stop "$server_pid"
  server_pid=
}

round_order() {
  local i
  if [ $(( $1 % 2 )) = 1 ]; then
    printf '%s\n' "${targets[@]}"
  else
    for (( i = ${#targets[@]} - 1; i >= 0; i-- )); do echo "${targets[$i]}"; done
  fi
}

# ---------------------------------------------------------------------------
# Measure. results.tsv: target scenario round rps p50 p99 errors ok
# ---------------------------------------------------------------------------
results=$work/results.tsv
: >"$results"
field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
failed=0
n_sc=$(echo $SCENARIOS | wc -w)
log "${#targets[@]} targets x $n_sc scenarios x $RUNS rounds, ${WARMUP}+${DURATION} s each:" \
    "about $(( ${#targets[@]} * n_sc * RUNS * (WARMUP + DURATION + 1) / 60 + 1 )) min"

for round in $(seq "$RUNS"); do
  mapfile -t order < <(round_order "$round")
  for t in "${order[@]}"; do
    port=$(port_of "$t")
    if ! start_target "$t" "$port"; then
      log "round $round: $t did not start"
      sed 's/^/  | /' "$work/server.log" | head -5 >&2
      for sc in $SCENARIOS; do printf '%s\t%s\t%s\t0\t0\t0\t0\t0\n' "$t" "$sc" "$round" >>"$results"; done
      failed=1
      continue
    fi
    for sc in $SCENARIOS; do
      url=http://127.0.0.1:$port/
      script=$root/bench/$sc.lua
      taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" -s "$script" "$url" >/dev/null 2>&1 || true
      line=$(taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" -d"${DURATION}s" -s "$script" "$url" 2>&1 |
             grep '^CSNBENCH' || true)
      rps=$(field rps); p50=$(field p50_ms); p99=$(field p99_ms); views=$(field max_views)
      errs=$(( $(field socket_errors || echo 0) + $(field non2xx || echo 0) ))
      ok=1
      if [ -z "$line" ]; then
        ok=0; rps=0; p50=0; p99=0; errs=0
        log "round $round: $t $sc: wrk gave no result"
      elif [ "$sc" = returning ] && [ "${t#*:}" = csession ] && [ "${views:-0}" -le 1 ]; then
        # The counter never rose: the cookie round trip is broken, and the
        # figure measures something else.
        ok=0
        log "round $round: $t returning: counter never rose above 1 (max $views)"
      fi
      [ $ok = 1 ] || failed=1
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$sc" "$round" "$rps" "$p50" "$p99" \
        "$errs" "$ok" >>"$results"
      log "round $round: $t $sc: $rps req/s, p99 $p99 ms, errors $errs, max views ${views:-0}"
    done
    stop_target
  done
done

# ---------------------------------------------------------------------------
# Report: medians over the good runs.
# ---------------------------------------------------------------------------
median() {
  awk -F'\t' -v t="$2" -v s="$3" -v c="$1" '$1 == t && $2 == s && $8 == 1 { print $c }' "$results" |
    sort -g | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print ""; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
errors_sum() {
  awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { n += $7 } END { print n + 0 }' "$results"
}
fmt0() { awk -v v="$1" 'BEGIN { if (v == "") print "FAILED"; else printf "%.0f", v }'; }
fmt2() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else printf "%.2f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
version_of() {
  case $1 in
    mhd) pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?' ;;
    ulfius) pkg-config --modversion libulfius 2>/dev/null || echo '?' ;;
    # CivetWeb ships no pkg-config file: its header says.
    civetweb) sed -n 's/^#define CIVETWEB_VERSION "\(.*\)"/\1/p' \
                "$(echo '#include <civetweb.h>' | cpp -H -o /dev/null 2>&1 | awk '/civetweb.h/ { print $2; exit }')" \
                2>/dev/null | head -1 || echo '?' ;;
  esac
}

{
  echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'): $RUNS round(s), wrk ${WRK_ARGS[*]} -d${DURATION}s" \
       "after ${WARMUP} s warm-up; server on core $SERVER_CPU, wrk on core $CLIENT_CPU;" \
       "demos with --store memory:// and their default 2 threads."
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
       "$(uname -sr); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}' || true);" \
       "$(for fw in "${frameworks[@]}"; do printf '%s %s, ' "$(fw_label "$fw")" "$(version_of "$fw")"; done |
          sed 's/, $/./')"
  echo "Tree: $(git -C "$root" log -1 --format='%h "%s"' 2>/dev/null || echo '?')."
  echo
  echo "Medians over the rounds; errors = socket errors + non-2xx, summed over rounds."
  echo "csession/bare: the demo's req/s over its bare framework's, same scenario, same run."
  echo
  echo "| framework | scenario | bare req/s | csession req/s | csession/bare | bare p99 ms | csession p99 ms | errors (bare/csession) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for fw in "${frameworks[@]}"; do
    for sc in $SCENARIOS; do
      b=$(median 4 "$fw:bare" "$sc"); c=$(median 4 "$fw:csession" "$sc")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s/%s |\n' "$(fw_label "$fw")" "$sc" \
        "$(fmt0 "$b")" "$(fmt0 "$c")" "$(ratio "$c" "$b")" \
        "$(fmt2 "$(median 6 "$fw:bare" "$sc")")" "$(fmt2 "$(median 6 "$fw:csession" "$sc")")" \
        "$(errors_sum "$fw:bare" "$sc")" "$(errors_sum "$fw:csession" "$sc")"
    done
  done
} >"$work/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
cat "$work/table.md"
log "table written to $OUT"
exit $failed
