#!/usr/bin/env bash
# csession's benchmark: one command runs the whole comparison.
#
#   bench/run.sh [--runs N] [--duration S] [--warmup S] [--stores "memory file ..."]
#                [--out FILE]
#
# Builds the benchmark programs (Release, in $BUILD_DIR, default build-bench/),
# installs the Node reference app's packages if they are missing, starts every
# server it needs on 127.0.0.1 (Redis and PostgreSQL in a scratch directory),
# and measures with wrk:
#   targets    bare libmicrohttpd; csession-demo with each store it accepts;
#              Express without sessions; express-session with the same stores
#   scenarios  new (no cookie), returning (cookie pool, see returning.lua)
# Servers (and Redis/PostgreSQL) run on core $SERVER_CPU, wrk on core
# $CLIENT_CPU. Each round starts every target afresh, in turn, so slow drift
# of the machine spreads over all targets; medians over rounds are reported.
# Prints a Markdown table and writes it to --out (default
# $BUILD_DIR/bench-results.md). Exits non-zero if any run failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$root/build-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
STORES=${STORES:-"memory file sqlite redis postgres"}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PORT_BASE=${PORT_BASE:-18700}
OUT=${OUT:-}
SECRET="csession benchmark secret"
WRK_ARGS=(-t2 -c50 --timeout 2s)

while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --stores) STORES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$BUILD_DIR/bench-results.md}

log() { echo "bench: $*" >&2; }
has_store() { case " $STORES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for tool in wrk taskset curl cmake; do
  command -v "$tool" >/dev/null || { log "$tool not found"; exit 1; }
done

# ---------------------------------------------------------------------------
# Build and install.
# ---------------------------------------------------------------------------
. "$root/bench/build.sh"
csn_bench_build "$root" "$BUILD_DIR" csn-bench-bare || true
csn_bench_build "$root" "$BUILD_DIR" csession-demo || true
bare_bin=$BUILD_DIR/csn-bench-bare
demo_bin=$BUILD_DIR/csession-demo
[ -x "$bare_bin" ] || { log "csn-bench-bare did not build"; exit 1; }
[ -x "$demo_bin" ] || { log "csession-demo did not build: csession rows are skipped"; demo_bin=; }

node_dir=$root/bench/node
have_node=0
if command -v node >/dev/null && command -v npm >/dev/null; then
  if [ ! -d "$node_dir/node_modules" ]; then
    log "installing the Node reference app (npm ci)"
    (cd "$node_dir" && npm ci --no-audit --no-fund >/dev/null) || log "npm ci failed"
  fi
  # npm does not run install scripts, so sqlite3's native module is built here.
  if has_store sqlite && ! (cd "$node_dir" && node -e "require('sqlite3')" 2>/dev/null); then
    log "building sqlite3 for connect-sqlite3 (about a minute)"
    (cd "$node_dir" && npm rebuild sqlite3 --foreground-scripts >/dev/null 2>&1) ||
      log "sqlite3 rebuild failed"
  fi
  [ -d "$node_dir/node_modules/express-session" ] && have_node=1
fi
[ $have_node = 1 ] || log "Node app unavailable: Node rows are skipped"

# ---------------------------------------------------------------------------
# Scratch space, and cleanup of everything started here.
# ---------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/csn-bench.XXXXXX")
chmod 755 "$work"
server_pid=
redis_pid=
pg_dir=
pg_user=

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

as_pg() { if [ -n "$pg_user" ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }

cleanup() {
  [ -n "$server_pid" ] && stop_pid "$server_pid"
  [ -n "$redis_pid" ] && stop_pid "$redis_pid"
  [ -n "$pg_dir" ] && as_pg pg_ctl -D "$pg_dir" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Redis and PostgreSQL, on the server's core.
# ---------------------------------------------------------------------------
redis_port=$((PORT_BASE + 90))
pg_port=$((PORT_BASE + 91))
redis_url=redis://127.0.0.1:$redis_port/0
pg_url=postgres://postgres@127.0.0.1:$pg_port/postgres

if has_store redis; then
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    taskset -c "$SERVER_CPU" redis-server --port "$redis_port" --bind 127.0.0.1 \
      --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do
      redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { log "redis-server did not start"; STORES=${STORES//redis/}; }
  else
    log "redis-server not found: redis rows are skipped"; STORES=${STORES//redis/}
  fi
fi

if has_store postgres; then
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v psql >/dev/null; then
    # initdb refuses to run as root; the cluster then belongs to "postgres".
    [ "$(id -u)" = 0 ] && pg_user=postgres
    pg_dir=$work/pg
    mkdir -p "$pg_dir"
    [ -n "$pg_user" ] && chown "$pg_user" "$pg_dir"
    if as_pg initdb -D "$pg_dir" -U postgres --auth=trust --no-locale -E UTF8 \
         >"$work/initdb.log" 2>&1 &&
       as_pg taskset -c "$SERVER_CPU" pg_ctl -D "$pg_dir" -w -l "$pg_dir/server.log" \
         -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $pg_dir" start >/dev/null 2>&1; then
      :
    else
      log "PostgreSQL did not start: postgres rows are skipped"
      tail -n 3 "$work/initdb.log" "$pg_dir/server.log" 2>/dev/null | sed 's/^/  | /' >&2
      pg_dir=; STORES=${STORES//postgres/}
    fi
  else
    log "PostgreSQL not found: postgres rows are skipped"; STORES=${STORES//postgres/}
  fi
fi

# Empty a store's data before a target starts, so every target begins alike.
reset_store() {
  case $1 in
    file) rm -rf "$work/files"; mkdir -p "$work/files" ;;
    sqlite) rm -rf "$work/sqlite"; mkdir -p "$work/sqlite" ;;
    redis) redis-cli -p "$redis_port" flushall >/dev/null ;;
    postgres) psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
                -c 'DROP TABLE IF EXISTS session' >/dev/null 2>&1 || true ;;
  esac
}

c_store_url() {
  case $1 in
    memory) echo "memory://" ;;
    file) echo "file://$work/files" ;;
    sqlite) echo "sqlite://$work/sqlite/sessions.db" ;;
    redis) echo "$redis_url" ;;
    postgres) echo "$pg_url" ;;
  esac
}

# ---------------------------------------------------------------------------
# Targets: "kind:store". Start one, wait until it answers, stop it.
# ---------------------------------------------------------------------------
port_of() {
  local i=0 t
  for t in "${targets[@]}"; do
    [ "$t" = "$1" ] && { echo $((PORT_BASE + i)); return; }
    i=$((i + 1))
  done
  echo $((PORT_BASE + 80))  # a target being probed
}

start_target() {
  local t=$1 port=$2 kind=${1%%:*} store=${1#*:}
  reset_store "$store"
  case $kind in
    bare) taskset -c "$SERVER_CPU" "$bare_bin" --port "$port" >"$work/server.log" 2>&1 & ;;
    csession)
      taskset -c "$SERVER_CPU" "$demo_bin" --port "$port" --store "$(c_store_url "$store")" \
        --secret "$SECRET" >"$work/server.log" 2>&1 & ;;
    node)
      STORE=$store PORT=$port SECRET=$SECRET STORE_DIR=$work/${store/file/files} \
        REDIS_URL=$redis_url DATABASE_URL=$pg_url \
        taskset -c "$SERVER_CPU" node "$node_dir/app.js" >"$work/server.log" 2>&1 & ;;
  esac
  server_pid=$!
  # Up when GET / answers 200 (that request's session is not counted).
  local i code
  for i in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null || true)
    [ "$code" = 200 ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$server_pid"
  server_pid=
  return 1
}

stop_target() {
  [ -n "$server_pid" ] && stop_pid "$server_pid"
  server_pid=
}

targets=("bare:none")
if [ -n "$demo_bin" ]; then
  for s in $STORES; do
    if start_target "csession:$s" "$(port_of probe)"; then
      targets+=("csession:$s")
      stop_target
    else
      log "csession-demo does not start with $(c_store_url "$s"): skipped"
      sed 's/^/  | /' "$work/server.log" | head -5 >&2
    fi
  done
fi
if [ $have_node = 1 ]; then
  targets+=("node:none")
  for s in $STORES; do targets+=("node:$s"); done
fi

label() {
  case $1 in
    bare:none) echo "bare libmicrohttpd" ;;
    node:none) echo "Express, no session" ;;
    csession:*) echo "csession ${1#*:}" ;;
    node:*) echo "express-session ${1#*:}" ;;
  esac
}

# ---------------------------------------------------------------------------
# Measure. results.tsv: target scenario round rps p50 p99 errors ok other quiet
# ---------------------------------------------------------------------------
results=$work/results.tsv
# One key=value field of the wrk script's done() line (in $line).
field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# How quiet was a run? The machine is shared and virtual, so each run also
# measures the CPU that neither the server (with Redis) nor wrk used: busy
# time of all cores from /proc/stat, minus the server's own CPU time
# (/proc/PID/stat) and wrk's (the shell's reaped-children time), plus time
# stolen by the hypervisor. A run is "quiet" when that is at most a quarter
# of a core, as in spec/benchmarks.md; medians use the quiet runs when a
# target has any.
hz=$(getconf CLK_TCK)
QUIET_LIMIT=${QUIET_LIMIT:-0.25}
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
pid_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
ours_ticks() {
  local n
  n=$(pid_ticks "$server_pid")
  [ -n "$redis_pid" ] && n=$(( n + $(pid_ticks "$redis_pid") ))
  echo "$n"
}
# Seconds of CPU used by this shell's reaped children (the second line of
# `times`). `times` must run in this shell, not in a $(...) subshell, which
# would report its own children: hence the file.
kids_secs_to() {
  times >"$work/times"
  tail -n 1 "$work/times" | awk '{ t = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
    print t }' >"$work/$1"
}
: >"$results"
failed=0
n_runs=$(( ${#targets[@]} * 2 * RUNS ))
log "${#targets[@]} targets x 2 scenarios x $RUNS rounds, ${WARMUP}+${DURATION} s each:" \
    "about $(( n_runs * (WARMUP + DURATION + 1) / 60 + 1 )) min"

for round in $(seq "$RUNS"); do
  for t in "${targets[@]}"; do
    port=$(port_of "$t")
    if ! start_target "$t" "$port"; then
      log "round $round: $(label "$t") did not start"
      sed 's/^/  | /' "$work/server.log" | head -5 >&2
      for sc in new returning; do printf '%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t0\n' "$t" "$sc" "$round" >>"$results"; done
      failed=1
      continue
    fi
    for sc in new returning; do
      url=http://127.0.0.1:$port/
      script=$root/bench/$sc.lua
      taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" -s "$script" "$url" >/dev/null 2>&1 || true
      s0=$(sys_ticks); o0=$(ours_ticks); kids_secs_to k0; t0=$(date +%s.%N)
      line=$(taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" -d"${DURATION}s" -s "$script" "$url" 2>&1 |
             grep '^CSNBENCH' || true)
      s1=$(sys_ticks); o1=$(ours_ticks); kids_secs_to k1; t1=$(date +%s.%N)
      other=$(awk -v s="$((s1 - s0))" -v o="$((o1 - o0))" -v k0="$(cat "$work/k0")" -v k1="$(cat "$work/k1")" \
        -v hz="$hz" -v t0="$t0" -v t1="$t1" \
        'BEGIN { v = ((s - o) / hz - (k1 - k0)) / (t1 - t0); printf "%.2f", v < 0 ? 0 : v }')
      quiet=$(awk -v v="$other" -v l="$QUIET_LIMIT" 'BEGIN { print (v <= l) ? 1 : 0 }')
      rps=$(field rps); p50=$(field p50_ms); p99=$(field p99_ms); views=$(field max_views)
      sock=$(field socket_errors); non2xx=$(field non2xx)
      errs=$(( ${sock:-0} + ${non2xx:-0} ))
      ok=1
      if [ -z "$line" ]; then
        ok=0; rps=0; p50=0; p99=0; errs=0
        log "round $round: $(label "$t") $sc: wrk gave no result"
      elif [ "$sc" = returning ] && [ "${t#*:}" != none ] && [ "${views:-0}" -le 1 ]; then
        # The visit counter never rose: the cookie round trip is broken and
        # the figure measures something else.
        ok=0
        log "round $round: $(label "$t") returning: counter never rose above 1 (max $views)"
      fi
      [ $ok = 1 ] || failed=1
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$sc" "$round" "$rps" "$p50" "$p99" \
        "$errs" "$ok" "$other" "$quiet" >>"$results"
      log "round $round: $(label "$t") $sc: $rps req/s, p99 $p99 ms, errors $errs," \
          "max views ${views:-0}, other load $other cores"
    done
    stop_target
  done
done

# ---------------------------------------------------------------------------
# Report: medians over the good runs of each target and scenario.
# ---------------------------------------------------------------------------
# median COLUMN TARGET SCENARIO
median() {
  local q
  q=$(quiet_runs "$2" "$3")
  awk -F'\t' -v t="$2" -v s="$3" -v c="$1" -v q="$q" \
    '$1 == t && $2 == s && $8 == 1 && ($10 == 1 || q == 0) { print $c }' "$results" |
    sort -g | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print ""; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
errors_sum() {
  awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { n += $7 } END { print n + 0 }' "$results"
}
quiet_runs() {
  awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s && $8 == 1 && $10 == 1 { n++ } END { print n + 0 }' "$results"
}
bad_runs() {
  awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s && $8 != 1 { n++ } END { print n + 0 }' "$results"
}
fmt2() { awk -v v="$1" 'BEGIN { if (v == "") print "-"; else printf "%.2f", v }'; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf f, a / b }'; }

{
  echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'): $RUNS rounds, wrk ${WRK_ARGS[*]} -d${DURATION}s" \
       "after ${WARMUP} s warm-up; server on core $SERVER_CPU, wrk on core $CLIENT_CPU."
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
       "$(uname -sr); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')," \
       "libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?')," \
       "node $(node --version 2>/dev/null || echo '-')."
  echo
  echo "Medians over the quiet runs (other load at most $QUIET_LIMIT core) of each row, or over all"
  echo "its runs when none was quiet (marked *). errors = socket errors + non-2xx, summed over runs."
  echo
  echo "| target | scenario | req/s (median) | p50 ms | p99 ms | errors | quiet runs | csession/bare | csession/Node | p99 vs bare |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for t in "${targets[@]}"; do
    for sc in new returning; do
      rps=$(median 4 "$t" "$sc"); p50=$(median 5 "$t" "$sc"); p99=$(median 6 "$t" "$sc")
      rb=-; rn=-; pb=-
      if [ "${t%%:*}" = csession ]; then
        rb=$(ratio "$rps" "$(median 4 bare:none "$sc")" '%.2f')
        rn=$(ratio "$rps" "$(median 4 "node:${t#*:}" "$sc")" '%.1fx')
        pb=$(ratio "$p99" "$(median 6 bare:none "$sc")" '%.2fx')
      fi
      bad=$(bad_runs "$t" "$sc")
      note=; [ "$bad" != 0 ] && note=" ($bad failed)"
      nq=$(quiet_runs "$t" "$sc"); star=; [ "$nq" = 0 ] && star="*"
      printf '| %s | %s | %s%s | %s | %s | %s%s | %s/%s | %s | %s | %s |\n' "$(label "$t")" "$sc" \
        "$(awk -v v="$rps" 'BEGIN { if (v == "") print "FAILED"; else printf "%.0f", v }')" "$star" \
        "$(fmt2 "$p50")" "$(fmt2 "$p99")" "$(errors_sum "$t" "$sc")" "$note" "$nq" "$RUNS" "$rb" "$rn" "$pb"
    done
  done
} >"$work/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
cat "$work/table.md"
log "table written to $OUT"
exit $failed
