#!/usr/bin/env bash
# csession's benchmark: one command runs the whole comparison.
#
#   bench/run.sh [--runs N] [--duration S] [--warmup S] [--stores "memory file ..."]
#                [--scenarios "new returning"] [--targets "bare csession ..."]
#                [--base-rev REV] [--threads N] [--bare-threads N]
#                [--conn-memory KB] [--out FILE]
#   bench/run.sh lost-update [--runs N] [--stores ...] [--delays "0 1"]
#                [--threads N] [--out FILE]
#
# Builds the benchmark programs (Release, in $BUILD_DIR, default build-bench/),
# installs the Node reference app's packages if they are missing, starts every
# server it needs on 127.0.0.1 (Redis and PostgreSQL in a scratch directory;
# for "mongo" the MongoDB test server tests/mongo/mongo_server.py, in memory,
# unless MONGODB_URI names a real server), and measures with wrk:
#   targets    bare libmicrohttpd, alone and with a fixed cookie of csession's
#              size (bare_server.c --cookie), and, when memory is among the
#              stores, with those bytes and a record per visitor in a table
#              of the last 100,000, the demo's memory:// size (--table,
#              bare_table.c);
#              csession-demo with each store it accepts;
#              Express without sessions; express-session with the same stores
#   scenarios  new (no cookie), returning (cookie pool, see returning.lua)
# Servers (and Redis/PostgreSQL) run on core $SERVER_CPU, wrk on core
# $CLIENT_CPU. Each round starts every target afresh, in turn, so slow drift
# of the machine spreads over all targets; medians over rounds are reported.
# Even rounds take the targets in reverse order, so no target always runs
# right after the same other one.
# Prints a Markdown table and writes it to --out (default
# $BUILD_DIR/bench-results.md). Exits non-zero if any run failed.
# Beside req/s, every row has the server's CPU microseconds per request
# (utime + stime of the server process, all threads, from /proc/PID/stat
# before and after the wrk run, over the requests wrk made) and that figure
# over bare's: a comparison of servers that holds when wrk is the
# bottleneck; csession's rows also have it over the bare server's with the
# cookie bytes, which leaves out what libmicrohttpd charges for them.
#
# --targets picks kinds of target: bare, csession, base, express (no
# session), express-session (default: all). --base-rev REV (or BASE_REV)
# also builds csession-demo from commit REV (a git worktree under $TMPDIR,
# removed after the build; the binary is kept in
# $TMPDIR/csn-bench-base-HASH/ for the next run) and measures it as target
# "base" beside the working tree's demo, same flags, same rounds, with a
# "now/base" column and per-round ratios (bench/compare.sh).
# --threads N passes --threads N to every csession-demo (default: the
# demo's own default by store, see its --help; 8 in lost-update mode).
# --bare-threads N passes --threads N to every bare server (default: its 2
# workers). With --threads 1 --bare-threads 1 each server pinned to its core
# has one worker, which never hands the core to another: the figures move
# less between rounds (docs/BENCHMARKS.md, "Connections in turn, not
# workers"), but are not comparable with runs of two workers.
# --conn-memory KB passes --conn-memory KB to every csession-demo and every
# bare server (default: neither gets it, and both use 32 KiB): libmicrohttpd
# clears that memory for every request, so the comparison is made at one
# size for both (docs/BENCHMARKS.md, "libmicrohttpd's connection memory").
#
# lost-update mode (bench/lost_update.sh): for each store, csession-demo
# (--threads 8) and express-session, one after the other, each run
# csn-lost-update (bench/lost_update.c) once per --delays value (default
# "0 1" ms): 8 clients on one session cookie, each adds 1 to its own member
# 100 times through GET /inc?k=k<i>&delay=MS; the table says how many of the
# 800 increments the store kept. Servers are not pinned in this mode
# (SERVER_CPU defaults to every core), so requests really overlap.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
MODE=bench
if [ "${1:-}" = lost-update ]; then MODE=lost-update; shift; fi
BUILD_DIR=${BUILD_DIR:-$root/build-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
STORES=${STORES:-"memory file sqlite redis postgres mongo"}
SCENARIOS=${SCENARIOS:-"new returning"}
# bare:table's size: what the demo's memory:// holds by default (its --help).
BARE_TABLE=100000
TARGETS=${TARGETS:-"bare csession base express express-session"}
BASE_REV=${BASE_REV:-}
DEMO_THREADS=${DEMO_THREADS:-}
BARE_THREADS=${BARE_THREADS:-}
CONN_MEMORY=${CONN_MEMORY:-}
LU_DELAYS=${LU_DELAYS:-"0 1"}
LU_CLIENTS=${LU_CLIENTS:-8}
LU_REQUESTS=${LU_REQUESTS:-100}
server_cpu_given=${SERVER_CPU:+1}
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
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --base-rev) BASE_REV=$2; shift 2 ;;
    --threads) DEMO_THREADS=$2; shift 2 ;;
    --bare-threads) BARE_THREADS=$2; shift 2 ;;
    --conn-memory) CONN_MEMORY=$2; shift 2 ;;
    --delays) LU_DELAYS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,63p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ $MODE = lost-update ]; then
  OUT=${OUT:-$BUILD_DIR/lost-update-results.md}
  DEMO_THREADS=${DEMO_THREADS:-8}
  # Requests must overlap for the race to be real: every core, unless told.
  [ -n "$server_cpu_given" ] || SERVER_CPU=0-$(( $(nproc) - 1 ))
  if [ -n "$BASE_REV" ]; then
    echo "run.sh: --base-rev is for the throughput benchmark; ignored in lost-update mode" >&2
    BASE_REV=
  fi
fi
OUT=${OUT:-$BUILD_DIR/bench-results.md}

log() { echo "bench: $*" >&2; }
has_store() { case " $STORES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
want() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for sc in $SCENARIOS; do
  [ -f "$root/bench/$sc.lua" ] || { log "unknown scenario $sc (no bench/$sc.lua)"; exit 2; }
done
want base || BASE_REV=

tools="taskset curl cmake"
[ $MODE = bench ] && tools="wrk $tools"
[ -n "$BASE_REV" ] && tools="$tools git"
for tool in $tools; do
  command -v "$tool" >/dev/null || { log "$tool not found"; exit 1; }
done

# ---------------------------------------------------------------------------
# Build and install.
# ---------------------------------------------------------------------------
. "$root/bench/build.sh"
. "$root/bench/lib.sh"
bare_bin=
demo_bin=$BUILD_DIR/csession-demo
lu_bin=
if [ $MODE = bench ]; then
  if want bare; then
    csn_bench_build "$root" "$BUILD_DIR" csn-bench-bare || true
    bare_bin=$BUILD_DIR/csn-bench-bare
    [ -x "$bare_bin" ] || { log "csn-bench-bare did not build"; exit 1; }
  fi
else
  csn_bench_build "$root" "$BUILD_DIR" csn-lost-update || true
  lu_bin=$BUILD_DIR/csn-lost-update
  [ -x "$lu_bin" ] || { log "csn-lost-update did not build (it needs libcurl)"; exit 1; }
fi
# The MongoDB store is built only when asked for (CSN_WITH_MONGO): for the
# mongo rows a build directory configured without it is switched to AUTO
# (built when libmongoc is found) before the demo is built.
mongo_build() {
  if has_store mongo && [ -f "$BUILD_DIR/CMakeCache.txt" ] &&
     grep -q '^CSN_WITH_MONGO:STRING=OFF$' "$BUILD_DIR/CMakeCache.txt"; then
    log "configuring $BUILD_DIR with CSN_WITH_MONGO=AUTO for the mongo rows"
    cmake -DCSN_WITH_MONGO=AUTO "$BUILD_DIR" >/dev/null 2>&1 ||
      log "reconfiguring for the MongoDB store failed"
  fi
}
if want csession || [ -n "$BASE_REV" ]; then
  mongo_build
  # A fresh build directory is configured by the first build: look again.
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    csn_bench_build "$root" "$BUILD_DIR" csession-demo || true
    mongo_build
  fi
  csn_bench_build "$root" "$BUILD_DIR" csession-demo || true
  [ -x "$demo_bin" ] || { log "csession-demo did not build: csession rows are skipped"; demo_bin=; }
else
  demo_bin=
fi
want csession || demo_bin=
demo_args=("${BENCH_DEMO_FLAGS[@]}") # bench/lib.sh; the base's own: base_args
[ -n "$DEMO_THREADS" ] && demo_args+=(--threads "$DEMO_THREADS")
[ -n "$CONN_MEMORY" ] && demo_args+=(--conn-memory "$CONN_MEMORY")

# The same tree as what the figures came from, for the table's header.
tree_desc() {
  local d
  d=$(git -C "$root" log -1 --format='%h "%s"' 2>/dev/null) || { echo "?"; return; }
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no -- src include examples CMakeLists.txt 2>/dev/null)" ]; then
    d="$d + uncommitted changes"
  fi
  echo "$d"
}

node_dir=$root/bench/node
have_node=0
if { want express || want express-session; } && command -v node >/dev/null &&
   command -v npm >/dev/null; then
  if [ ! -d "$node_dir/node_modules" ] ||
     { has_store mongo && [ ! -d "$node_dir/node_modules/connect-mongo" ]; }; then
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
if want express || want express-session; then
  [ $have_node = 1 ] || log "Node app unavailable: Node rows are skipped"
else
  have_node=0
fi

# ---------------------------------------------------------------------------
# Scratch space, and cleanup of everything started here.
# ---------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/csn-bench.XXXXXX")
chmod 755 "$work"
server_pid=
redis_pid=
mongo_pid=
pg_dir=
pg_user=
base_wt=


as_pg() { if [ -n "$pg_user" ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }

cleanup() {
  [ -n "$server_pid" ] && bench_stop "$server_pid"
  [ -n "$redis_pid" ] && bench_stop "$redis_pid"
  [ -n "$mongo_pid" ] && bench_stop "$mongo_pid"
  [ -n "$pg_dir" ] && as_pg pg_ctl -D "$pg_dir" -m fast stop >/dev/null 2>&1 || true
  if [ -n "$base_wt" ]; then
    git -C "$root" worktree remove --force "$base_wt" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# The base revision's demo (--base-rev): built once per commit, from a git
# worktree that exists only while it builds.
# ---------------------------------------------------------------------------
base_bin=
base_short=
base_desc=
base_args=()
if [ -n "$BASE_REV" ]; then
  base_hash=$(git -C "$root" rev-parse --verify --quiet "$BASE_REV^{commit}") ||
    { log "--base-rev $BASE_REV: not a commit"; exit 2; }
  base_short=$(git -C "$root" rev-parse --short "$base_hash")
  base_desc="$base_short \"$(git -C "$root" log -1 --format=%s "$base_hash")\""
  base_home=${TMPDIR:-/tmp}/csn-bench-base-$base_hash
  base_bin=$base_home/build/csession-demo
  if [ ! -x "$base_bin" ]; then
    log "building csession-demo at $base_short (a worktree in $base_home/src)"
    mkdir -p "$base_home"
    rm -rf "$base_home/src"
    git -C "$root" worktree prune
    base_wt=$base_home/src
    git -C "$root" worktree add --detach --quiet "$base_wt" "$base_hash" ||
      { log "git worktree add failed"; base_wt=; exit 1; }
    csn_bench_build "$base_wt" "$base_home/build" csession-demo || true
    git -C "$root" worktree remove --force "$base_wt" >/dev/null 2>&1 || true
    base_wt=
  fi
  [ -x "$base_bin" ] || { log "csession-demo at $base_short did not build (logs: $base_home/build-logs)"; exit 1; }
  bench_flags_for "$base_bin" # bench/lib.sh
  base_args=(${bench_flags[@]+"${bench_flags[@]}"})
  [ -n "$DEMO_THREADS" ] && base_args+=(--threads "$DEMO_THREADS")
  [ -n "$CONN_MEMORY" ] && base_args+=(--conn-memory "$CONN_MEMORY")
  [ ${#bench_flags_left[@]} -gt 0 ] &&
    log "csession-demo at $base_short has no ${bench_flags_left[*]}: it runs without"
fi

# ---------------------------------------------------------------------------
# Redis and PostgreSQL, on the server's core.
# ---------------------------------------------------------------------------
redis_port=$((PORT_BASE + 90))
pg_port=$((PORT_BASE + 91))
mongo_port=$((PORT_BASE + 92))
redis_url=redis://127.0.0.1:$redis_port/0
pg_url=postgres://postgres@127.0.0.1:$pg_port/postgres
# Both sides use database csn_bench, collection "sessions" (connect-mongo's
# default), with connect-mongo's TTL index (autoRemove native).
mongo_url=mongodb://127.0.0.1:$mongo_port/csn_bench
mongo_script=$root/tests/mongo/mongo_server.py

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

# MongoDB: a real server from MONGODB_URI (its database csn_bench), else the
# test server (Debian's python3, which sees python3-bson), in memory, on the
# server's core; it is restarted empty before every target.
start_mongo_server() {
  taskset -c "$SERVER_CPU" /usr/bin/python3 "$mongo_script" --port "$mongo_port" \
    >>"$work/mongo.log" 2>&1 &
  mongo_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$mongo_port") 2>/dev/null && return 0
    kill -0 "$mongo_pid" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}
if has_store mongo; then
  if [ -n "${MONGODB_URI:-}" ]; then
    # The URI's hosts and options, database csn_bench.
    mongo_hosts=${MONGODB_URI#mongodb://}
    mongo_opts=
    case $mongo_hosts in *\?*) mongo_opts="?${mongo_hosts#*\?}"; mongo_hosts=${mongo_hosts%%\?*} ;; esac
    mongo_url="mongodb://${mongo_hosts%%/*}/csn_bench$mongo_opts"
    log "MongoDB from MONGODB_URI (database csn_bench)"
  elif [ -x /usr/bin/python3 ] && [ -f "$mongo_script" ]; then
    start_mongo_server || { log "the MongoDB test server did not start: mongo rows are skipped"
                            tail -n 3 "$work/mongo.log" | sed 's/^/  | /' >&2; STORES=${STORES//mongo/}; }
  else
    log "no MongoDB (MONGODB_URI, or /usr/bin/python3 and $mongo_script): mongo rows are skipped"
    STORES=${STORES//mongo/}
  fi
fi

# Drop the benchmark's collection on a real server (MONGODB_URI), with the
# Node driver of the reference app, else pymongo.
drop_mongo_sessions() {
  local js="const {MongoClient}=require('mongodb');(async()=>{const c=await MongoClient.connect(process.env.U);await c.db().collection('sessions').drop().catch(()=>{});await c.close()})().catch(e=>{console.error(e.message);process.exit(1)})"
  if [ -d "$node_dir/node_modules/mongodb" ]; then
    (cd "$node_dir" && U=$mongo_url node -e "$js") >/dev/null 2>&1 && return 0
  fi
  U=$mongo_url /usr/bin/python3 -c "import os, pymongo
pymongo.MongoClient(os.environ['U']).get_default_database().drop_collection('sessions')" \
    >/dev/null 2>&1
}

# Empty a store's data before a target starts, so every target begins alike.
reset_store() {
  case $1 in
    # The previous target's files are set aside, not deleted, until the end
    # (bench_set_aside in lib.sh says why); sync: its writes are on disk now,
    # not during the next target's run.
    file) bench_set_aside "$work/trash" "$work/files"; mkdir -p "$work/files"; sync ;;
    sqlite) bench_set_aside "$work/trash" "$work/sqlite"; mkdir -p "$work/sqlite"; sync ;;
    redis) redis-cli -p "$redis_port" flushall >/dev/null ;;
    postgres) psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
                -c 'DROP TABLE IF EXISTS session' >/dev/null 2>&1 || true ;;
    mongo)
      if [ -n "$mongo_pid" ]; then
        bench_stop "$mongo_pid"; mongo_pid=
        start_mongo_server || log "the MongoDB test server did not restart"
      else
        drop_mongo_sessions || log "could not drop csn_bench.sessions"
      fi ;;
  esac
}

c_store_url() {
  case $1 in
    memory) echo "memory://" ;;
    file) echo "file://$work/files" ;;
    sqlite) echo "sqlite://$work/sqlite/sessions.db" ;;
    redis) echo "$redis_url" ;;
    postgres) echo "$pg_url?create_table=1" ;;
    mongo) case $mongo_url in *\?*) echo "$mongo_url&collection=sessions" ;;
             *) echo "$mongo_url?collection=sessions" ;; esac ;;
  esac
}

# ---------------------------------------------------------------------------
# Targets: "kind:store". Start one, wait until it answers, stop it.
# ---------------------------------------------------------------------------
label() {
  case $1 in
    bare:none) echo "bare libmicrohttpd" ;;
    bare:cookie) echo "bare libmicrohttpd + cookie bytes" ;;
    bare:table) echo "bare libmicrohttpd + cookie + 100k-record table" ;;
    node:none) echo "Express, no session" ;;
    csession:*) echo "csession ${1#*:}" ;;
    base:*) echo "csession ${1#*:} @ $base_short" ;;
    node:*) echo "express-session ${1#*:}" ;;
  esac
}

port_of() {
  local i=0 t
  for t in "${targets[@]}"; do
    [ "$t" = "$1" ] && { echo $((PORT_BASE + i)); return; }
    i=$((i + 1))
  done
  echo $((PORT_BASE + 80))  # a target being probed
}

start_target() {
  local t=$1 port=$2 kind=${1%%:*} store=${1#*:} bin
  reset_store "$store"
  case $kind in
    bare)
      # bare:cookie sends (and so gets back) a cookie of csession's size;
      # bare:table also keeps a record per visitor, as many as the demo's
      # memory:// holds.
      local bare_flags=()
      [ -n "$CONN_MEMORY" ] && bare_flags+=(--conn-memory "$CONN_MEMORY")
      [ -n "$BARE_THREADS" ] && bare_flags+=(--threads "$BARE_THREADS")
      case $store in
        cookie) bare_flags+=(--cookie) ;;
        table) bare_flags+=(--table "$BARE_TABLE") ;;
      esac
      taskset -c "$SERVER_CPU" "$bare_bin" --port "$port" \
        ${bare_flags[@]+"${bare_flags[@]}"} >"$work/server.log" 2>&1 & ;;
    csession|base)
      local args=(${demo_args[@]+"${demo_args[@]}"})
      bin=$demo_bin
      if [ "$kind" = base ]; then bin=$base_bin; args=(${base_args[@]+"${base_args[@]}"}); fi
      # The secret by environment, never on the command line.
      CSN_SECRET=$SECRET taskset -c "$SERVER_CPU" "$bin" --port "$port" \
        --store "$(c_store_url "$store")" \
        ${args[@]+"${args[@]}"} >"$work/server.log" 2>&1 & ;;
    node)
      STORE=$store PORT=$port SECRET=$SECRET STORE_DIR=$work/${store/file/files} \
        REDIS_URL=$redis_url DATABASE_URL=$pg_url MONGO_URL=$mongo_url \
        taskset -c "$SERVER_CPU" node "$node_dir/app.js" >"$work/server.log" 2>&1 & ;;
  esac
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

targets=()
[ -n "$bare_bin" ] && targets+=("bare:none" "bare:cookie")
case " $STORES " in *" memory "*) [ -n "$bare_bin" ] && targets+=("bare:table") ;; esac
for s in $STORES; do
  for kind in csession base; do
    [ $kind = csession ] && [ -z "$demo_bin" ] && continue
    [ $kind = base ] && [ -z "$base_bin" ] && continue
    if start_target "$kind:$s" "$(port_of probe)"; then
      targets+=("$kind:$s")
      stop_target
    else
      log "$(label "$kind:$s") does not start with $(c_store_url "$s"): skipped"
      sed 's/^/  | /' "$work/server.log" | head -5 >&2
    fi
  done
done
if [ $have_node = 1 ]; then
  [ $MODE = bench ] && want express && targets+=("node:none")
  if want express-session; then
    for s in $STORES; do targets+=("node:$s"); done
  fi
fi
[ ${#targets[@]} -gt 0 ] || { log "nothing to measure"; exit 1; }

# CPU us/req of target $1 over target $2's in the same round, for scenario
# $3, round by round, then the median of those ratios: "r1, r2, ...; median m".
paired_cpu() {
  local cells= ratios= round r
  for round in $(seq "$RUNS"); do
    r=$(ratio "$(round_cpu "$1" "$3" "$round")" "$(round_cpu "$2" "$3" "$round")" '%.3f')
    cells="$cells${cells:+, }$r"
    [ "$r" != - ] && ratios="$ratios $r"
  done
  echo "$cells; median $(median_of $ratios)"
}

# Whether target $1 (kind:store) is measured.
has_target() {
  case " ${targets[*]} " in *" $1 "*) return 0 ;; esac
  return 1
}

# The targets of one round: even rounds go backwards.
round_order() {
  local i
  if [ $(( $1 % 2 )) = 1 ]; then
    printf '%s\n' "${targets[@]}"
  else
    for (( i = ${#targets[@]} - 1; i >= 0; i-- )); do echo "${targets[$i]}"; done
  fi
}

# ---------------------------------------------------------------------------
# Measure. results.tsv: target scenario round rps p50 p99 errors ok other quiet
# cpu_us
#   cpu_us: the server process's own CPU time (user + system, all its
#   threads; for Node the node process) during the wrk run, from
#   /proc/PID/stat, divided by the requests wrk made: microseconds per
#   request. Unlike req/s it still compares servers when wrk, not the
#   server, is the bottleneck (the bare server's case).
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
  [ -n "$mongo_pid" ] && n=$(( n + $(pid_ticks "$mongo_pid") ))
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
machine_line() {
  local w=
  [ $MODE = bench ] && w=" wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}' || true),"
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores," \
       "$(uname -sr);$w" \
       "libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?')," \
       "node $(node --version 2>/dev/null || echo '-')."
}

# ---------------------------------------------------------------------------
# lost-update mode: csn-lost-update against each target, once per delay.
# lu.tsv: target delay round kept total ok non2xx failed other_cookie good
#         lost codes
# ---------------------------------------------------------------------------
if [ $MODE = lost-update ]; then
  lu=$work/lu.tsv
  : >"$lu"
  failed=0
  total=$(( LU_CLIENTS * LU_REQUESTS ))
  n_delays=$(echo $LU_DELAYS | wc -w)
  log "${#targets[@]} targets x $n_delays delays x $RUNS rounds:" \
      "$LU_CLIENTS clients x $LU_REQUESTS GET /inc on one session each time"
  for round in $(seq "$RUNS"); do
    mapfile -t order < <(round_order "$round")
    for t in "${order[@]}"; do
      port=$(port_of "$t")
      if ! start_target "$t" "$port"; then
        log "round $round: $(label "$t") did not start"
        sed 's/^/  | /' "$work/server.log" | head -5 >&2
        for d in $LU_DELAYS; do
          printf '%s\t%s\t%s\t0\t%s\t0\t0\t0\t0\t0\n' "$t" "$d" "$round" "$total" >>"$lu"
        done
        failed=1
        continue
      fi
      for d in $LU_DELAYS; do
        # Bounded: every transfer has a 10 s timeout, the whole probe 300 s.
        timeout 300 "$lu_bin" --clients "$LU_CLIENTS" --requests "$LU_REQUESTS" \
          --delay "$d" "http://127.0.0.1:$port/" >"$work/lu.out" 2>"$work/lu.err" || true
        line=$(grep '^LOSTUPDATE' "$work/lu.out" || true)
        good=1
        if [ -z "$line" ] || [ -s "$work/lu.err" ]; then
          good=0; failed=1
          log "round $round: $(label "$t") delay $d: the probe failed"
          sed 's/^/  | /' "$work/lu.err" | head -3 >&2
        fi
        kept=$(field kept); ok=$(field ok); non2xx=$(field non2xx); lost=$(field lost)
        pfail=$(field failed); other=$(field other_cookie); codes=$(field codes)
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$d" "$round" "${kept:-0}" \
          "$total" "${ok:-0}" "${non2xx:-0}" "${pfail:-0}" "${other:-0}" "$good" "${lost:-0}" \
          "${codes:--}" >>"$lu"
        log "round $round: $(label "$t") delay $d ms: kept ${kept:-?} of $total" \
            "(2xx answers ${ok:-0}, of them lost ${lost:-?}; non-2xx ${non2xx:-0} [${codes:--}]," \
            "failed ${pfail:-0}, other session ${other:-0}; keys $(field keys))"
        grep '^NON2XX' "$work/lu.out" | sed 's/^/  | first /' >&2 || true
      done
      stop_target
    done
  done

  # One cell: the kept counts of every round, then any trouble.
  lu_cell() {
    awk -F'\t' -v t="$1" -v d="$2" '$1 == t && $2 == d {
        n++; s = s (n > 1 ? ", " : "") ($10 == 1 ? $4 : "failed")
        bad += $7 + $8; other += $9
        if ($12 != "-" && $12 != "") {
          k = split($12, a, ",")
          for (i = 1; i <= k; i++) { split(a[i], b, ":"); by[b[1]] += b[2] }
        } }
      END {
        if (n == 0) { print "-"; exit }
        if (bad) {
          c = ""
          for (st in by) c = c (c == "" ? "" : ", ") st " x" by[st]
          s = s sprintf(" (%d errors%s)", bad, c == "" ? "" : ": " c)
        }
        if (other) s = s sprintf(" (%d answers on another session)", other)
        print s }' "$lu"
  }
  has_target() { local x; for x in "${targets[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
  {
    echo "Lost-update probe, run of $(date -u '+%Y-%m-%d %H:%M UTC'): $RUNS round(s); each" \
         "probe gets one session cookie from GET /, then $LU_CLIENTS clients, released together," \
         "each send $LU_REQUESTS GET /inc?k=k<i>[&delay=MS] on a keep-alive connection of their own" \
         "with that cookie; the stored k<i> are read back afterwards (bench/lost_update.c)."
    echo "csession-demo ${demo_args[*]} (tree: $(tree_desc)); express-session on node," \
         "one process. Servers on cores $SERVER_CPU, the probe unpinned."
    machine_line
    echo
    echo "Increments kept, of $total, one figure per round. errors = non-2xx answers and failed" \
         "transfers, summed over rounds; \"-\": csession-demo has no such store (or the Node" \
         "app's was not asked for)."
    echo
    echo "| store | delay ms | csession | express-session |"
    echo "|---|---:|---|---|"
    for s in $STORES; do
      has_target "csession:$s" || has_target "node:$s" || continue
      for d in $LU_DELAYS; do
        echo "| $s | $d | $(lu_cell "csession:$s" "$d") | $(lu_cell "node:$s" "$d") |"
      done
    done
    echo
    # Lost: answered "k<i>: N" but missing from the stored value. A request
    # that failed (non-2xx) is not expected to count.
    awk -F'\t' '$1 ~ /^csession:/ && $10 == 1 {
        p++; lost += $11; if ($11 > 0) lp++; err += $7 + $8; if ($7 + $8 > 0) ep++ }
      END {
        if (p == 0) exit
        if (lost == 0) printf "csession lost no answered increment in %d probes.", p
        else printf "csession LOST %d answered increments, in %d of %d probes.", lost, lp, p
        if (err) printf " %d requests failed (non-2xx or no answer) in %d probes;" \
                        " their increments are not counted as lost.", err, ep
        printf "\n" }' "$lu"
  } >"$work/table.md"
  mkdir -p "$(dirname "$OUT")"
  cp "$work/table.md" "$OUT"
  cat "$work/table.md"
  log "table written to $OUT"
  exit $failed
fi

: >"$results"
failed=0
n_sc=$(echo $SCENARIOS | wc -w)
n_runs=$(( ${#targets[@]} * n_sc * RUNS ))
log "${#targets[@]} targets x $n_sc scenarios x $RUNS rounds, ${WARMUP}+${DURATION} s each:" \
    "about $(( n_runs * (WARMUP + DURATION + 1) / 60 + 1 )) min"

for round in $(seq "$RUNS"); do
  mapfile -t order < <(round_order "$round")
  for t in "${order[@]}"; do
    port=$(port_of "$t")
    if ! start_target "$t" "$port"; then
      log "round $round: $(label "$t") did not start"
      sed 's/^/  | /' "$work/server.log" | head -5 >&2
      for sc in $SCENARIOS; do printf '%s\t%s\t%s\t0\t0\t0\t0\t0\t0\t0\t0\n' "$t" "$sc" "$round" >>"$results"; done
      failed=1
      continue
    fi
    for sc in $SCENARIOS; do
      url=http://127.0.0.1:$port/
      script=$root/bench/$sc.lua
      taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" -s "$script" "$url" >/dev/null 2>&1 || true
      s0=$(sys_ticks); o0=$(ours_ticks); p0=$(pid_ticks "$server_pid"); kids_secs_to k0
      t0=$(date +%s.%N)
      line=$(taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" -d"${DURATION}s" -s "$script" "$url" 2>&1 |
             grep '^CSNBENCH' || true)
      s1=$(sys_ticks); o1=$(ours_ticks); p1=$(pid_ticks "$server_pid"); kids_secs_to k1
      t1=$(date +%s.%N)
      other=$(awk -v s="$((s1 - s0))" -v o="$((o1 - o0))" -v k0="$(cat "$work/k0")" -v k1="$(cat "$work/k1")" \
        -v hz="$hz" -v t0="$t0" -v t1="$t1" \
        'BEGIN { v = ((s - o) / hz - (k1 - k0)) / (t1 - t0); printf "%.2f", v < 0 ? 0 : v }')
      quiet=$(awk -v v="$other" -v l="$QUIET_LIMIT" 'BEGIN { print (v <= l) ? 1 : 0 }')
      rps=$(field rps); p50=$(field p50_ms); p99=$(field p99_ms); views=$(field max_views)
      reqs=$(field requests)
      cpu_us=$(awk -v p="$((p1 - p0))" -v n="${reqs:-0}" -v hz="$hz" \
        'BEGIN { if (n > 0) printf "%.2f", p / hz * 1e6 / n; else print 0 }')
      sock=$(field socket_errors); non2xx=$(field non2xx)
      errs=$(( ${sock:-0} + ${non2xx:-0} ))
      ok=1
      if [ -z "$line" ]; then
        ok=0; rps=0; p50=0; p99=0; errs=0
        log "round $round: $(label "$t") $sc: wrk gave no result"
      elif [ "$sc" = returning ] && [ "${t#*:}" != none ] && [ "${t%%:*}" != bare ] &&
           [ "${views:-0}" -le 1 ]; then
        # The visit counter never rose: the cookie round trip is broken and
        # the figure measures something else.
        ok=0
        log "round $round: $(label "$t") returning: counter never rose above 1 (max $views)"
      fi
      [ $ok = 1 ] || failed=1
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$sc" "$round" "$rps" "$p50" "$p99" \
        "$errs" "$ok" "$other" "$quiet" "$cpu_us" >>"$results"
      log "round $round: $(label "$t") $sc: $rps req/s, server CPU $cpu_us us/req, p99 $p99 ms," \
          "errors $errs, max views ${views:-0}, other load $other cores"
      if [ "$errs" -gt 0 ]; then
        # Keep what the server said about them: the work directory goes.
        log "round $round: $(label "$t") $sc: ${sock:-0} socket errors (wrk's" \
            "--timeout included), ${non2xx:-0} non-2xx; the server's last log lines:"
        tail -n 5 "$work/server.log" | sed 's/^/  | /' >&2
      fi
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
# Median req/s over every good run, quiet or not (for now/base: filtering
# one row by quietness and not the other would bias the ratio).
median_all() {
  awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s && $8 == 1 { print $4 }' "$results" |
    sort -g | awk '{ v[NR] = $1 } END {
      if (NR == 0) { print ""; exit }
      if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# One round's req/s of a target and scenario ("" when it failed), and the
# other load during it.
round_rps() {
  awk -F'\t' -v t="$1" -v s="$2" -v r="$3" '$1 == t && $2 == s && $3 == r && $8 == 1 { print $4 }' "$results"
}
round_other() {
  awk -F'\t' -v t="$1" -v s="$2" -v r="$3" '$1 == t && $2 == s && $3 == r { print $9 }' "$results"
}
round_cpu() {
  awk -F'\t' -v t="$1" -v s="$2" -v r="$3" '$1 == t && $2 == s && $3 == r && $8 == 1 { print $11 }' "$results"
}
# The median of the numbers given as arguments, with 3 decimals ("-": none).
median_of() {
  printf '%s\n' "$@" | sort -g | awk 'NF { v[++n] = $1 } END {
    if (n == 0) print "-"; else if (n % 2) printf "%.3f", v[(n + 1) / 2];
    else printf "%.3f", (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

{
  echo "Run of $(date -u '+%Y-%m-%d %H:%M UTC'): $RUNS rounds, wrk ${WRK_ARGS[*]} -d${DURATION}s" \
       "after ${WARMUP} s warm-up; server on core $SERVER_CPU, wrk on core $CLIENT_CPU."
  machine_line
  echo "Tree: $(tree_desc)${demo_args[*]:+; csession-demo ${demo_args[*]}}${BARE_THREADS:+; bare servers --threads $BARE_THREADS}."
  [ -n "$base_bin" ] && echo "Base: csession-demo built from $base_desc, flags ${base_args[*]:-none}" \
       "(rows \"@ $base_short\"); now/base divides the working tree's median req/s by the base's," \
       "both over all their runs, quiet or not."
  echo
  echo "Medians over the quiet runs (other load at most $QUIET_LIMIT core) of each row, or over all"
  echo "its runs when none was quiet (marked *). errors = socket errors + non-2xx, summed over runs."
  echo "CPU us/req = the server process's CPU time (user + system, all threads; Node: the node"
  echo "process) during the run over the requests wrk made; CPU vs bare divides it by bare's, so it"
  echo "compares servers even when wrk, not the server, limits req/s. \"bare libmicrohttpd + cookie"
  echo "bytes\" sends a fixed Set-Cookie of csession's size and so gets back a Cookie header of its"
  echo "size: what libmicrohttpd itself charges for the session's bytes; vs +cookie divides by it."
  echo
  hdr="| target | scenario | req/s (median) | CPU us/req | CPU vs bare | vs +cookie | p50 ms | p99 ms | errors | quiet runs | csession/bare | csession/Node | p99 vs bare |"
  sep="|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  [ -n "$base_bin" ] && { hdr="$hdr now/base |"; sep="$sep---:|"; }
  echo "$hdr"
  echo "$sep"
  for t in "${targets[@]}"; do
    for sc in $SCENARIOS; do
      rps=$(median 4 "$t" "$sc"); p50=$(median 5 "$t" "$sc"); p99=$(median 6 "$t" "$sc")
      cpu=$(median 11 "$t" "$sc")
      rb=-; rn=-; pb=-; vb=-; cb=-; ck=-
      [ "$t" != bare:none ] && cb=$(ratio "$cpu" "$(median 11 bare:none "$sc")" '%.2fx')
      case ${t%%:*} in
        csession|base)
          ck=$(ratio "$cpu" "$(median 11 bare:cookie "$sc")" '%.2fx')
          rb=$(ratio "$rps" "$(median 4 bare:none "$sc")" '%.2f')
          rn=$(ratio "$rps" "$(median 4 "node:${t#*:}" "$sc")" '%.1fx')
          pb=$(ratio "$p99" "$(median 6 bare:none "$sc")" '%.2fx')
          ;;
      esac
      [ "${t%%:*}" = csession ] &&
        vb=$(ratio "$(median_all "$t" "$sc")" "$(median_all "base:${t#*:}" "$sc")" '%.3f')
      bad=$(bad_runs "$t" "$sc")
      note=; [ "$bad" != 0 ] && note=" ($bad failed)"
      nq=$(quiet_runs "$t" "$sc"); star=; [ "$nq" = 0 ] && star="*"
      printf '| %s | %s | %s%s | %s | %s | %s | %s | %s | %s%s | %s/%s | %s | %s | %s |' "$(label "$t")" "$sc" \
        "$(awk -v v="$rps" 'BEGIN { if (v == "") print "FAILED"; else printf "%.0f", v }')" "$star" \
        "$(fmt2 "$cpu")" "$cb" "$ck" \
        "$(fmt2 "$p50")" "$(fmt2 "$p99")" "$(errors_sum "$t" "$sc")" "$note" "$nq" "$RUNS" "$rb" "$rn" "$pb"
      [ -n "$base_bin" ] && printf ' %s |' "$vb"
      echo
    done
  done
  # Before/after, round by round: the two binaries ran back to back in each
  # round, so each round's ratio is the one least moved by drift.
  if [ -n "$base_bin" ]; then
    echo
    echo "Round by round (req/s now / at $base_short = ratio, then the other load in cores during"
    echo "each run; every run, quiet or not):"
    echo
    for s in $STORES; do
      case " ${targets[*]} " in *" csession:$s "*) ;; *) continue ;; esac
      case " ${targets[*]} " in *" base:$s "*) ;; *) continue ;; esac
      for sc in $SCENARIOS; do
        cells=; ratios=
        for round in $(seq "$RUNS"); do
          a=$(round_rps "csession:$s" "$sc" "$round"); b=$(round_rps "base:$s" "$sc" "$round")
          r=$(ratio "$a" "$b" '%.3f')
          cells="$cells${cells:+; }$(awk -v v="$a" 'BEGIN { if (v == "") print "-"; else printf "%.0f", v }')/$(awk -v v="$b" 'BEGIN { if (v == "") print "-"; else printf "%.0f", v }') = $r"
          cells="$cells ($(round_other "csession:$s" "$sc" "$round")/$(round_other "base:$s" "$sc" "$round"))"
          [ "$r" != - ] && ratios="$ratios $r"
        done
        mr=$(median_of $ratios)
        echo "- $s $sc: $cells; median of the round ratios $mr"
      done
    done
  fi
  # CPU against bare, round by round: the servers of one round ran minutes
  # apart at most, so the ratio of their CPU per request is the one least
  # moved by the machine's drift between rounds (which on a shared VM moves
  # every server's figure by 20% or more); the median of those ratios is
  # then the paired estimate, beside the table's ratio of two medians.
  case " ${targets[*]} " in
  *" bare:none "*)
    echo
    echo "CPU us/req over bare's in the same round, round by round, and the median of these"
    echo "paired ratios:"
    echo
    for t in "${targets[@]}"; do
      [ "$t" = bare:none ] && continue
      for sc in $SCENARIOS; do
        echo "- $(label "$t") $sc: $(paired_cpu "$t" bare:none "$sc")"
      done
    done
    ;;
  esac
  # csession's memory store over the bare server that holds as many records
  # and sends the same cookie bytes: what csession costs beyond what any
  # server that keeps the sessions in memory pays.
  if has_target bare:table && has_target csession:memory; then
    echo
    echo "csession memory's CPU us/req over bare + table's, round by round (what csession costs"
    echo "beyond holding the records and sending the cookie's bytes), and the median:"
    echo
    for sc in $SCENARIOS; do
      echo "- $sc: $(paired_cpu csession:memory bare:table "$sc")"
    done
  fi
} >"$work/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
cat "$work/table.md"
log "table written to $OUT"
exit $failed
