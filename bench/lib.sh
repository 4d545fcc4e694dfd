# bench/lib.sh - shell helpers shared by the benchmark scripts (run.sh,
# adapters.sh, durable.sh, iocount.sh; sourced, not run).

# Flags every benchmark passes to csession-demo. --per-ip: the demo lets
# one client address hold 64 connections (its slowloris guard), and all of
# wrk's come from 127.0.0.1: 50 for a run, while the 50 of the warm-up run
# before it may still be closing in the server when the store is slow
# (PostgreSQL and MongoDB returning visitors), so the demo refused some and
# wrk counted socket errors that were no store's failure.
BENCH_DEMO_FLAGS=(--per-ip 1000)

# bench_flags_for BIN: the pairs of BENCH_DEMO_FLAGS (each flag takes one
# value) that BIN's --help names, into the array bench_flags, and the ones
# it does not into bench_flags_left. A demo built from an older commit
# (run.sh --base-rev, durable.sh --base) may lack one (--per-ip came on
# 2026-12-02) and would refuse to start with it.
bench_flags_for() {
  local help i
  help=$("$1" --help 2>&1 || true)
  bench_flags=()
  bench_flags_left=()
  for ((i = 0; i + 1 < ${#BENCH_DEMO_FLAGS[@]}; i += 2)); do
    if grep -q -e "${BENCH_DEMO_FLAGS[i]}" <<<"$help"; then
      bench_flags+=("${BENCH_DEMO_FLAGS[i]}" "${BENCH_DEMO_FLAGS[i + 1]}")
    else
      bench_flags_left+=("${BENCH_DEMO_FLAGS[i]}")
    fi
  done
}

# bench_wait_up PORT LOG NAME [PID]: wait (10 s at most) until the server on
# 127.0.0.1:PORT answers / with 200, giving up at once when process PID (if
# given) has exited; otherwise show NAME and the head of its LOG on stderr
# (nothing when NAME is empty: a probe) and return 1.
bench_wait_up() {
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true)" = 200 ] && return 0
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -n "$3" ]; then
    echo "$3 did not start" >&2
    sed 's/^/  | /' "$2" | head -5 >&2
  fi
  return 1
}

# bench_stop PID: SIGTERM, 5 s to exit, then SIGKILL; reaps it.
bench_stop() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# bench_field LINE KEY: the value of KEY=... in bench/wrk_common.lua's
# CSNBENCH line.
bench_field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# The median of the numbers on stdin (0 for none).
bench_median() {
  sort -n | awk '{a[NR]=$1} END{if(NR==0){print 0}else if(NR%2){print a[(NR+1)/2]}else{print (a[NR/2]+a[NR/2+1])/2}}'
}

# bench_set_aside TRASH PATH...: empty a store's files before the next
# target by moving them into the directory TRASH (deleted with the scratch
# space at the end), not by deleting them. On ext4 without a journal every
# file creation scans past the inodes freed in the last 1-5 minutes
# (recently_deleted() in the kernel's inode allocator), so a target that
# starts right after 60,000 files were deleted can run at a third of its
# speed, depending on where its directory lands: an artefact of the order
# of targets, not of the store. Missing paths are skipped.
bench_set_aside() {
  local trash=$1 p
  shift
  mkdir -p "$trash"
  for p in "$@"; do
    [ -e "$p" ] || continue
    mv "$p" "$(mktemp -u "$trash/old.XXXXXXXX")"
  done
}
