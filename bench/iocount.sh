#!/usr/bin/env bash
# What a durable store asks of the disk: block device requests per HTTP
# request (writes, cache flushes, discards), beside req/s and the server's
# CPU per request, for csession-demo and optionally an older build, in one
# run, targets alternating.
#
#   bench/iocount.sh --demo BIN [--base BIN] [--store file|sqlite]
#                    [--scenarios "new returning"] [--rounds N]
#                    [--duration S] [--warmup S] [--threads N] [--out FILE]
#
# Why: on a shared virtual disk req/s moves by a third between runs, while
# the number of device requests a save costs does not; a change to how a
# store syncs shows there first. Counts come from /proc/diskstats for the
# block device holding $TMPDIR (where the store's scratch directory is),
# before and after each wrk run, over the requests wrk made; everything
# else writing to that device in the meantime is counted too, so run it on
# a quiet machine. Same method as bench/durable.sh otherwise: server on
# core $SERVER_CPU (1), wrk on core $CLIENT_CPU (0), wrk -t2 -c50,
# bench/new.lua and bench/returning.lua, a sync before each target starts.
# Prints a Markdown table of medians over rounds (and writes it to --out).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
DEMO= BASE= STORE=file SCENARIOS="new returning" ROUNDS=3 DURATION=6 WARMUP=2
THREADS=16 OUT=
SERVER_CPU=${SERVER_CPU:-1} CLIENT_CPU=${CLIENT_CPU:-0} PORT=${PORT:-18960}
while [ $# -gt 0 ]; do
  case $1 in
    --demo) DEMO=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --store) STORE=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "iocount.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$DEMO" ] || { echo "iocount.sh: --demo BIN is required" >&2; exit 2; }
[ -z "$BASE" ] || [ -x "$BASE" ] || { echo "iocount.sh: no program $BASE" >&2; exit 2; }
case $STORE in file|sqlite) ;; *) echo "iocount.sh: --store file or sqlite" >&2; exit 2 ;; esac
command -v wrk >/dev/null || { echo "iocount.sh: wrk is not installed" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/csn-iocount.XXXXXX")
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "iocount: $*" >&2; }

# The block device under the scratch directory, by its device number.
dev=$(basename "$(readlink -f "/sys/dev/block/$(stat -c '%Hd:%Ld' "$work")")")
grep -q " $dev " /proc/diskstats || { echo "iocount.sh: no disk statistics for $dev" >&2; exit 2; }
# writes completed, flushes completed, discards completed (fields 8, 19, 15).
disk() { awk -v d="$dev" '$3 == d {print $8, ($19 == "" ? 0 : $19), $15}' /proc/diskstats; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
printf 'iocount bench secret\n' >"$work/secret"
chmod 600 "$work/secret"

start() { # $1 = binary
  bench_set_aside "$work/trash" "$work/store" "$work"/store.db*
  sync
  local url="file://$work/store"
  [ "$STORE" = sqlite ] && url="sqlite://$work/store.db"
  CSN_SECRET_FILE=$work/secret taskset -c "$SERVER_CPU" "$1" --port "$PORT" \
    --store "$url" --threads "$THREADS" >"$work/server.log" 2>&1 &
  server_pid=$!
  bench_wait_up "$PORT" "$work/server.log" "iocount: $1"
}
stop() { bench_stop "$server_pid"; server_pid=; }

targets=(csession)
[ -n "$BASE" ] && targets=(base csession)
res=$work/results.tsv
: >"$res"
for round in $(seq "$ROUNDS"); do
  order=("${targets[@]}")
  [ $((round % 2)) = 0 ] && [ -n "$BASE" ] && order=(csession base)
  for t in "${order[@]}"; do
    bin=$DEMO; [ "$t" = base ] && bin=$BASE
    for sc in $SCENARIOS; do
      start "$bin" || exit 1
      taskset -c "$CLIENT_CPU" wrk -t2 -c50 --timeout 2s -d"${WARMUP}s" -s "$root/bench/$sc.lua" \
        "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
      read -r w0 f0 d0 < <(disk)
      c0=$(cpu_ticks "$server_pid")
      line=$(taskset -c "$CLIENT_CPU" wrk -t2 -c50 --timeout 2s -d"${DURATION}s" \
        -s "$root/bench/$sc.lua" "http://127.0.0.1:$PORT/" 2>&1 | grep '^CSNBENCH' || true)
      read -r w1 f1 d1 < <(disk)
      c1=$(cpu_ticks "$server_pid")
      stop
      n=$(bench_field "$line" requests)
      rps=$(bench_field "$line" rps)
      [ -n "$n" ] && [ "$n" -gt 0 ] || { log "round $round $t $sc: wrk made no requests"; exit 1; }
      row=$(awk -v n="$n" -v w=$((w1 - w0)) -v f=$((f1 - f0)) -v d=$((d1 - d0)) \
                -v c=$((c1 - c0)) -v hz="$hz" -v r="$rps" \
            'BEGIN {printf "%.2f\t%.3f\t%.3f\t%.1f\t%.0f", w/n, f/n, d/n, c*1e6/hz/n, r}')
      printf '%s\t%s\t%s\t%s\n' "$t" "$sc" "$round" "$row" >>"$res"
      log "round $round $t $sc: writes/flushes/discards per request, CPU us/req, req/s: $(echo "$row" | tr '\t' ' ')"
    done
  done
done

cell() { awk -F'\t' -v t="$1" -v s="$2" -v k="$3" '$1==t && $2==s {print $k}' "$res" | bench_median; }
{
  echo "bench/iocount.sh, $(date -u '+%Y-%m-%d %H:%M UTC'): $STORE store on $dev, $ROUNDS rounds," \
       "wrk -t2 -c50 -d${DURATION}s after ${WARMUP}s, $THREADS workers; medians per request."
  echo "demo: $DEMO${BASE:+; base: $BASE}"
  echo
  echo "| target | scenario | writes | flushes | discards | CPU us | req/s |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for t in "${targets[@]}"; do
    for sc in $SCENARIOS; do
      echo "| $t | $sc | $(cell "$t" "$sc" 4) | $(cell "$t" "$sc" 5) | $(cell "$t" "$sc" 6) | $(cell "$t" "$sc" 7) | $(cell "$t" "$sc" 8) |"
    done
  done
} | tee ${OUT:+"$OUT"}
