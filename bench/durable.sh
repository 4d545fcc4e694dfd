#!/usr/bin/env bash
# The durable stores under load: csession's file and SQLite stores, durable
# and relaxed, at several worker thread counts, beside express-session on
# the same store and (optionally) csession-demo of an older build, in one
# run, targets interleaved (even rounds reversed), medians over rounds.
#
#   bench/durable.sh --demo BIN [--base BIN] [--node-modules DIR]
#                    [--stores "file sqlite"] [--threads "2 8 16 32"]
#                    [--relaxed-threads "16"] [--base-threads "2 16"]
#                    [--runs N] [--duration S] [--warmup S] [--out FILE]
#
# Same method as bench/run.sh (spec/benchmarks.md): server on core
# $SERVER_CPU (1), wrk on core $CLIENT_CPU (0), wrk -t2 -c50 --timeout 2s,
# bench/new.lua and bench/returning.lua, each store emptied before each
# target starts. The relaxed modes are the stores' URL options
# (file: fsync=0; sqlite: synchronous=normal). Node runs bench/node/app.js
# with node_modules from --node-modules (default: bench/node/node_modules,
# else tests/interop/node_modules, which pins the same packages). Prints a
# Markdown table (and writes it to --out) with req/s and x express-session.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
DEMO= BASE= NODE_MODULES=
STORES="file sqlite" THREADS="2 8 16 32" RELAXED_THREADS="16" BASE_THREADS="2 16"
RUNS=2 DURATION=10 WARMUP=3 OUT=
SERVER_CPU=${SERVER_CPU:-1} CLIENT_CPU=${CLIENT_CPU:-0} PORT=${PORT:-18950}
SECRET="csession benchmark secret"
while [ $# -gt 0 ]; do
  case $1 in
    --demo) DEMO=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --node-modules) NODE_MODULES=$2; shift 2 ;;
    --stores) STORES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --relaxed-threads) RELAXED_THREADS=$2; shift 2 ;;
    --base-threads) BASE_THREADS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "durable.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$DEMO" ] || { echo "durable.sh: --demo BIN is required" >&2; exit 2; }
if [ -z "$NODE_MODULES" ]; then
  for d in "$root/bench/node/node_modules" "$root/tests/interop/node_modules"; do
    [ -d "$d/express-session" ] && { NODE_MODULES=$d; break; }
  done
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/csn-durable.XXXXXX")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
if [ -n "$NODE_MODULES" ]; then
  mkdir -p "$work/node"
  cp "$root/bench/node/app.js" "$work/node/app.js"
  ln -s "$NODE_MODULES" "$work/node/node_modules"
fi
log() { echo "durable: $*" >&2; }

# target = kind:store:mode:threads  (kind: csession | base | node)
targets=()
for s in $STORES; do
  [ -n "$NODE_MODULES" ] && targets+=("node:$s:-:-")
  if [ -n "$BASE" ]; then for t in $BASE_THREADS; do targets+=("base:$s:durable:$t"); done; fi
  for t in $THREADS; do targets+=("csession:$s:durable:$t"); done
  for t in $RELAXED_THREADS; do targets+=("csession:$s:relaxed:$t"); done
done

url_of() { # store mode
  local q=
  case $1 in
    file) [ "$2" = relaxed ] && q="?fsync=0"; echo "file://$work/files$q" ;;
    sqlite) [ "$2" = relaxed ] && q="?synchronous=normal"; echo "sqlite://$work/sqlite/sessions.db$q" ;;
  esac
}

start() {
  IFS=: read -r kind store mode threads <<<"$1"
  bench_set_aside "$work/trash" "$work/files" "$work/sqlite"
  mkdir -p "$work/files" "$work/sqlite"
  sync
  case $kind in
    node) STORE=$store PORT=$PORT SECRET=$SECRET STORE_DIR=$work/${store/file/files} \
            taskset -c "$SERVER_CPU" node "$work/node/app.js" >"$work/server.log" 2>&1 & ;;
    csession|base)
      local bin=$DEMO; [ "$kind" = base ] && bin=$BASE
      bench_flags_for "$bin" # bench/lib.sh: an older base may lack one
      CSN_SECRET=$SECRET taskset -c "$SERVER_CPU" "$bin" --port "$PORT" \
        --store "$(url_of "$store" "$mode")" --threads "$threads" \
        ${bench_flags[@]+"${bench_flags[@]}"} >"$work/server.log" 2>&1 & ;;
  esac
  server_pid=$!
  bench_wait_up "$PORT" "$work/server.log" "durable: $1"
}
stop() { bench_stop "$server_pid"; server_pid=; }

res=$work/results.tsv
: >"$res"
for round in $(seq "$RUNS"); do
  order=("${targets[@]}")
  if [ $((round % 2)) = 0 ]; then
    order=(); for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[$i]}"); done
  fi
  for t in "${order[@]}"; do
    for sc in new returning; do
      start "$t" || { printf '%s\t%s\t%s\t0\tfailed\n' "$t" "$sc" "$round" >>"$res"; continue; }
      taskset -c "$CLIENT_CPU" wrk -t2 -c50 --timeout 2s -d"${WARMUP}s" -s "$root/bench/$sc.lua" \
        "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
      line=$(taskset -c "$CLIENT_CPU" wrk -t2 -c50 --timeout 2s -d"${DURATION}s" \
        -s "$root/bench/$sc.lua" "http://127.0.0.1:$PORT/" 2>&1 | grep '^CSNBENCH' || true)
      stop
      rps=$(bench_field "$line" rps)
      sock=$(bench_field "$line" socket_errors)
      non2xx=$(bench_field "$line" non2xx)
      errs="socket ${sock:-?}, non-2xx ${non2xx:-?}"
      views=$(bench_field "$line" max_views)
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$sc" "$round" "${rps:-0}" "${sock:-0}" "${non2xx:-0}" >>"$res"
      log "round $round $t $sc: ${rps:-?} req/s (errors: $errs; max views ${views:-?})"
    done
  done
done

cell() { awk -F'\t' -v t="$1" -v s="$2" '$1==t && $2==s {print $4}' "$res" | bench_median; }
{
  echo "bench/durable.sh, $(date -u '+%Y-%m-%d %H:%M UTC'): $RUNS rounds, wrk -t2 -c50 -d${DURATION}s" \
       "after ${WARMUP}s warm-up; server on core $SERVER_CPU, wrk on core $CLIENT_CPU; medians; req/s."
  echo "demo: $DEMO${BASE:+; base: $BASE}"
  echo
  echo "| store | target | mode | threads | new | returning | new x node | returning x node | each round: new; returning |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---|"
  for s in $STORES; do
    nn=$(cell "node:$s:-:-" new); nr=$(cell "node:$s:-:-" returning)
    for t in "${targets[@]}"; do
      IFS=: read -r kind store mode threads <<<"$t"
      [ "$store" = "$s" ] || continue
      a=$(cell "$t" new); b=$(cell "$t" returning)
      rr=$(awk -F'\t' -v t="$t" '$1==t && $2=="new" {a = a (a=="" ? "" : ", ") int($4)}
             $1==t && $2=="returning" {b = b (b=="" ? "" : ", ") int($4)}
             $1==t {e += $5 + $6} END {printf "%s; %s%s", a, b, e ? sprintf(" (%d errors)", e) : ""}' "$res")
      label=$kind; [ $kind = node ] && label=express-session
      [ $kind = base ] && label="csession (before)"
      awk -v s="$s" -v l="$label" -v m="$mode" -v th="$threads" -v a="$a" -v b="$b" -v nn="$nn" -v nr="$nr" -v rr="$rr" \
        'BEGIN { printf "| %s | %s | %s | %s | %.0f | %.0f | %s | %s | %s |\n", s, l, m, th, a, b,
                 (nn > 0 ? sprintf("%.1fx", a / nn) : "-"), (nr > 0 ? sprintf("%.1fx", b / nr) : "-"), rr }'
    done
  done
} | tee "${OUT:-/dev/null}"
