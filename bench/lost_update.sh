#!/usr/bin/env bash
# The lost-update probe (issue 9), two ways:
#
#   bench/lost_update.sh [run.sh options]      the table: csession-demo and
#       express-session on each store, same run (bench/run.sh lost-update;
#       options --runs N, --stores "memory file sqlite", --delays "0 1",
#       --threads N, --out FILE, and BUILD_DIR, as for bench/run.sh)
#   bench/lost_update.sh URL [probe options]   one probe against a server
#       that is already running, e.g. http://127.0.0.1:3000 (options
#       --clients N, --requests N, --delay MS, --timeout S; see
#       bench/lost_update.c)
#
# Either way it builds csn-lost-update (bench/lost_update.c, needs libcurl)
# in $BUILD_DIR (default build-bench/) first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  http://*|https://*)
    BUILD_DIR=${BUILD_DIR:-$root/build-bench}
    . "$root/bench/build.sh"
    csn_bench_build "$root" "$BUILD_DIR" csn-lost-update
    url=$1; shift
    exec "$BUILD_DIR/csn-lost-update" "$@" "$url" ;;
  *) exec "$root/bench/run.sh" lost-update "$@" ;;
esac
