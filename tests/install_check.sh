#!/bin/sh
# install_check.sh - install a build tree into a fresh prefix and build the
# README's libmicrohttpd example against that install, as a user would.
#
#   install_check.sh pkgconfig|cmake BUILD_DIR SOURCE_DIR CC CMAKE \
#                    LIBDIR BINDIR MANDIR INCLUDEDIR [EXTRA_CFLAGS]
#
# pkgconfig: cc app.c $(pkg-config --cflags --libs csn_mhd), the pkg-config
#            files taken from the install alone (PKG_CONFIG_PATH).
# cmake:     a project with find_package(csession REQUIRED COMPONENTS mhd)
#            and csession::mhd, found through CMAKE_PREFIX_PATH; plus the
#            component checks (a component the install lacks fails the
#            configure when required, not when optional; versions).
# Both check what the install holds (headers, libraries, pkg-config and
# CMake files, the csession command and its manual, nothing from tests),
# then run the example in a way that needs no port: without a usable secret
# file it must exit 1 with the library's message, which shows it linked and
# loaded the installed libcsn (ldd must resolve libcsn there, not elsewhere).
# EXTRA_CFLAGS carries the build's sanitizer flags: an instrumented libcsn
# links only into an instrumented program.
set -u

mode=$1 build=$2 src=$3 cc=$4 cmake=$5
libdir=$6 bindir=$7 mandir=$8 incdir=$9
shift 9
extra=${1:-}

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/csn-install.XXXXXX") || die "mktemp"
trap 'rm -rf "$tmp"' EXIT INT TERM
P=$tmp/prefix

# --- install --------------------------------------------------------------
"$cmake" --install "$build" --prefix "$P" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; die "cmake --install $build failed (is the build complete?)"; }
ok "cmake --install into a fresh prefix"

# --- what the install holds -----------------------------------------------
for f in "$incdir/csn/csn.h" "$incdir/csn/csn_mhd.h" "$incdir/csn/csn_store.h" \
         "$libdir/libcsn.so" "$libdir/libcsn.a" "$libdir/libcsn_mhd.so" \
         "$libdir/libcsn_stores.so" \
         "$libdir/pkgconfig/csn.pc" "$libdir/pkgconfig/csn_mhd.pc" \
         "$libdir/pkgconfig/csn_stores.pc" \
         "$libdir/cmake/csession/csessionConfig.cmake" \
         "$libdir/cmake/csession/csessionConfigVersion.cmake" \
         "$libdir/cmake/csession/csessionTargets-csn.cmake" \
         "$libdir/cmake/csession/csessionTargets-mhd.cmake" \
         "$mandir/man1/csession.1"; do
  [ -f "$P/$f" ] || fail "not installed: $f"
done
head -n 1 "$P/$mandir/man1/csession.1" 2>/dev/null | grep -q '^\.TH CSESSION 1' ||
  fail "$mandir/man1/csession.1 is not the csession(1) manual"
if [ -x "$P/$bindir/csession" ]; then
  "$P/$bindir/csession" --help >"$tmp/help.out" 2>&1 ||
    fail "installed csession --help exited $?"
  grep -q '^usage: csession' "$tmp/help.out" || fail "csession --help printed no usage"
else
  fail "not installed: $bindir/csession"
fi
# Nothing from tests, benchmarks or fuzzers: programs are csession*.
for f in "$P/$bindir"/*; do
  case ${f##*/} in csession | csession-*) ;; *) fail "unexpected program installed: ${f##*/}" ;; esac
done
if find "$P" \( -name '*test*' -o -name '*cmocka*' -o -name '*harness*' \
                -o -name '*bench*' -o -name '*fuzz*' -o -name 'csn-example*' \) |
   grep . >&2; then
  fail "test, bench or example files installed (above)"
fi
# The package and pkg-config files must not point into the build or the
# sources, nor name the core's object library (not installed).
if grep -rlF -e "$build" -e "$src" -e csn_objs \
     "$P/$libdir/cmake" "$P/$libdir/pkgconfig" >&2; then
  fail "installed CMake/pkg-config files reference the build tree, the sources or csn_objs"
fi
[ "$fails" -eq 0 ] && ok "installed files: headers, libraries, pkg-config, CMake package, csession(1)"

# --- the README's example -------------------------------------------------
# The first ```c block between "## Usage with libmicrohttpd" and the next
# "## " heading.
awk '/^## Usage with libmicrohttpd/ { sec = 1; next }
     sec && /^## / { exit }
     sec && !code && /^```c[ \t]*$/ { code = 1; next }
     code && /^```/ { exit }
     code { print }' "$src/README.md" >"$tmp/app.c"
[ -s "$tmp/app.c" ] || die "no C code block found in README.md's \"Usage with libmicrohttpd\" section"
grep -q 'main(' "$tmp/app.c" || die "README's libmicrohttpd code block has no main()"
# The README shows the example program of the tree, word for word: what is
# built here is what users copy.
cmp -s "$tmp/app.c" "$src/examples/minimal_mhd.c" ||
  die "README's libmicrohttpd example differs from examples/minimal_mhd.c"
ok "README example extracted ($(wc -l <"$tmp/app.c") lines), same as examples/minimal_mhd.c"

# check_run BIN: the example refuses to start without a private secret file
# (exit 1, with csn_secret_read_file's reason), so it runs without a port.
check_run() {
  bin=$1
  # libcsn must come from the install, whatever else the system has.
  ldd "$bin" >"$tmp/ldd.out" 2>&1
  if ! grep -E "libcsn\.so.* => $P/" "$tmp/ldd.out" >/dev/null; then
    cat "$tmp/ldd.out" >&2
    fail "$bin does not load libcsn from the install"
  fi
  printf 'not private\n' >"$tmp/secret-shared"
  chmod 644 "$tmp/secret-shared"
  for case in unset missing shared; do
    case $case in
      unset) set -- env -u CSN_SECRET_FILE "$bin"; want='CSN_SECRET_FILE' ;;
      missing) set -- env CSN_SECRET_FILE="$tmp/no-such-file" "$bin"; want='cannot open' ;;
      shared) set -- env CSN_SECRET_FILE="$tmp/secret-shared" "$bin"; want='group or others' ;;
    esac
    timeout 20 "$@" </dev/null >"$tmp/run.out" 2>&1
    st=$?
    if [ "$st" -ne 1 ]; then
      cat "$tmp/run.out" >&2
      fail "${bin##*/} with secret file $case: exit $st, wanted 1 (is README's example examples/minimal_mhd.c?)"
    elif ! grep -q "$want" "$tmp/run.out"; then
      cat "$tmp/run.out" >&2
      fail "${bin##*/} with secret file $case: no \"$want\" in its message"
    fi
  done
}

cflags="-Wall -Wextra -Werror $extra"

if [ "$mode" = pkgconfig ]; then
  # --- pkg-config -----------------------------------------------------------
  PKG_CONFIG_PATH=$P/$libdir/pkgconfig
  export PKG_CONFIG_PATH
  flags=$(pkg-config --cflags --libs csn_mhd) || die "pkg-config csn_mhd failed"
  case $flags in *"$P/"*) ;; *) fail "pkg-config csn_mhd does not point into the prefix: $flags" ;; esac
  for m in csn csn_stores $(cd "$P/$libdir/pkgconfig" && ls csn_store_*.pc 2>/dev/null | sed 's/\.pc$//'); do
    pkg-config --exists "$m" || fail "pkg-config module $m does not resolve"
  done
  # shellcheck disable=SC2086 # the flags are words
  $cc $cflags -o "$tmp/app" "$tmp/app.c" $flags || die "README example does not build with pkg-config csn_mhd"
  ok "README example built with pkg-config csn_mhd"
  LD_LIBRARY_PATH=$P/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH
  check_run "$tmp/app"
elif [ "$mode" = cmake ]; then
  # --- find_package -----------------------------------------------------------
  # Each configure detects the compiler again (seconds on a loaded machine),
  # so the checks share three projects: one that builds, one that probes
  # find_package's answers, one that must fail.
  cfgdir=$P/$libdir/cmake/csession
  ver=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$cfgdir/csessionConfigVersion.cmake")
  major=${ver%%.*} rest=${ver#*.}
  minor=${rest%%.*}
  [ -n "$ver" ] || die "no PACKAGE_VERSION in csessionConfigVersion.cmake"
  # configure NAME: configure $tmp/NAME (its CMakeLists.txt written by the
  # caller) against the install.
  configure() {
    "$cmake" -S "$tmp/$1" -B "$tmp/$1/build" -DCMAKE_PREFIX_PATH="$P" \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" >"$tmp/$1.log" 2>&1
  }

  # 1. The README example with csession::mhd; and every store through the
  # static twins, whose link interface must carry what a static link needs
  # (jansson, libcrypto, hiredis, libpq, ...) or it does not link.
  mkdir -p "$tmp/use"
  cp "$tmp/app.c" "$tmp/use/app.c"
  cat >"$tmp/use/static.c" <<'END'
#include <stdio.h>
#include <csn/csn_stores.h>
int main(void) {
  if (csn_stores_register_all() != CSN_OK)
    return 2;
  puts(csn_stores_schemes());
  return 0;
}
END
  cat >"$tmp/use/CMakeLists.txt" <<END
cmake_minimum_required(VERSION 3.25)
project(app LANGUAGES C)
find_package(csession $major.$minor REQUIRED COMPONENTS mhd)
add_executable(app app.c)
target_link_libraries(app PRIVATE csession::mhd)
find_package(csession REQUIRED COMPONENTS stores)
add_executable(app_static static.c)
target_link_libraries(app_static PRIVATE csession::stores_static)
END
  if configure use && "$cmake" --build "$tmp/use/build" >>"$tmp/use.log" 2>&1; then
    ok "README example built with find_package(csession $major.$minor REQUIRED COMPONENTS mhd)"
    # No LD_LIBRARY_PATH: CMake's RPATH to the imported libraries.
    check_run "$tmp/use/build/app"
    if ldd "$tmp/use/build/app_static" | grep -q 'libcsn'; then
      fail "the program linked with csession::stores_static loads a shared libcsn"
    fi
    schemes=$("$tmp/use/build/app_static") || fail "static program exited $?"
    for c in sqlite redis pg mongo; do
      [ -f "$cfgdir/csessionTargets-store_$c.cmake" ] || continue
      case $c in pg) c=postgres ;; mongo) c=mongodb ;; esac
      case $schemes in *"$c://"*) ;; *) fail "static csn_stores_register_all lacks $c: $schemes" ;; esac
    done
    ok "linked statically against csession::stores_static: $schemes"
  else
    cat "$tmp/use.log" >&2
    fail "does not build with find_package(csession ...) and csession::mhd, csession::stores_static"
  fi

  # 2. find_package's answers: without components; a component this install
  # lacks (a made-up one, and each optional one the build left out), asked
  # for as required and as optional; versions (0.x minors are not
  # interchangeable: SameMinorVersion).
  absent=bogus_component
  for c in store_sqlite store_redis store_pg store_mongo ulfius civetweb; do
    [ -f "$cfgdir/csessionTargets-$c.cmake" ] || absent="$absent $c"
  done
  mkdir -p "$tmp/probe"
  cat >"$tmp/probe/CMakeLists.txt" <<END
cmake_minimum_required(VERSION 3.25)
project(probe LANGUAGES C)
function(probe_all)
  find_package(csession REQUIRED)
  if(NOT csession_AVAILABLE_COMPONENTS MATCHES "^csn;.*mhd")
    message(SEND_ERROR "csession_AVAILABLE_COMPONENTS: \${csession_AVAILABLE_COMPONENTS}")
  endif()
  foreach(c IN LISTS csession_AVAILABLE_COMPONENTS)
    if(NOT csession_\${c}_FOUND OR NOT TARGET csession::\${c})
      message(SEND_ERROR "find_package(csession) without components did not load \${c}")
    endif()
  endforeach()
endfunction()
function(probe_absent c)
  find_package(csession QUIET COMPONENTS mhd \${c})
  if(csession_FOUND)
    message(SEND_ERROR "COMPONENTS \${c}: found, though the install lacks it")
  elseif(NOT csession_NOT_FOUND_MESSAGE MATCHES "not available: \${c} ")
    message(SEND_ERROR "COMPONENTS \${c}: the message does not name it: \${csession_NOT_FOUND_MESSAGE}")
  endif()
  find_package(csession REQUIRED COMPONENTS mhd OPTIONAL_COMPONENTS \${c})
  if(NOT csession_FOUND OR csession_\${c}_FOUND OR NOT csession_mhd_FOUND)
    message(SEND_ERROR "OPTIONAL_COMPONENTS \${c}: wrong answer")
  endif()
endfunction()
function(probe_version v want)
  find_package(csession \${v} QUIET)
  if(NOT "\${csession_FOUND}" STREQUAL "\${want}")
    message(SEND_ERROR "find_package(csession \${v}) of \${csession_VERSION}: found=\${csession_FOUND}")
  endif()
endfunction()
probe_all()
foreach(c $absent)
  probe_absent(\${c})
endforeach()
probe_version($major.$minor 1)
probe_version($major.$minor.0 1)
probe_version($major.$((minor + 1)) 0)
probe_version($((major + 1)).0 0)
END
  if configure probe; then
    ok "find_package: no components loads all; absent ($absent): required fails, optional does not"
    ok "version $ver: $major.$minor accepted, $major.$((minor + 1)) and $((major + 1)).0 refused"
  else
    cat "$tmp/probe.log" >&2
    fail "find_package(csession) answered wrongly (above)"
  fi

  # 3. A required component the install lacks stops the configure, with a
  # message that names it.
  c=${absent##* }
  mkdir -p "$tmp/req"
  cat >"$tmp/req/CMakeLists.txt" <<END
cmake_minimum_required(VERSION 3.25)
project(req LANGUAGES C)
find_package(csession REQUIRED COMPONENTS mhd $c)
END
  if configure req; then
    fail "find_package(csession REQUIRED COMPONENTS mhd $c) succeeded without $c"
  elif ! grep -q "not available: $c" "$tmp/req.log"; then
    cat "$tmp/req.log" >&2
    fail "find_package(csession REQUIRED COMPONENTS $c) failed without naming $c"
  else
    ok "find_package(csession REQUIRED COMPONENTS mhd $c) stops the configure, naming $c"
  fi
else
  die "unknown mode $mode"
fi

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed" >&2; exit 1; }
echo "all checks passed"
