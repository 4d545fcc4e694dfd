# Benchmark programs (see docs/BENCHMARKS.md; bench/run.sh drives them).
# Included by the top-level CMakeLists.txt when CSN_BENCH and CSN_WITH_MHD are on.

# The ceiling: a libmicrohttpd server with the demo's threading and no session work.
add_executable(csn-bench-bare bench/bare_server.c bench/bare_table.c)
target_link_libraries(csn-bench-bare PRIVATE PkgConfig::MHD Threads::Threads)

# The core alone, no HTTP: begin / modify / commit cycles against a MemoryStore.
add_executable(csn-bench-core bench/core_bench.c)
target_link_libraries(csn-bench-core PRIVATE csn_static)

# The lost-update probe (issue 9): 8 clients on one session cookie, each
# incrementing its own member through GET /inc. Needs libcurl; bench/run.sh
# lost-update drives it against csession-demo and the Node app.
pkg_check_modules(CSN_BENCH_CURL IMPORTED_TARGET libcurl)
if(CSN_BENCH_CURL_FOUND)
  add_executable(csn-lost-update bench/lost_update.c)
  target_link_libraries(csn-lost-update PRIVATE PkgConfig::CSN_BENCH_CURL Threads::Threads)
endif()

# The ceilings of the other servers' demos (bench/adapters.sh): Ulfius and
# CivetWeb started as csession-ulfius-demo and csession-civetweb-demo start
# them, serving bare_server.c's fixed body with no session work. Built
# when the adapter is (src/adapters/<server>.cmake found the library).
if(TARGET csession-ulfius-demo AND TARGET PkgConfig::ULFIUS AND
   TARGET PkgConfig::ULFIUS_MHD)
  add_executable(csn-bench-bare-ulfius bench/bare_ulfius.c)
  target_link_libraries(csn-bench-bare-ulfius PRIVATE PkgConfig::ULFIUS
                        PkgConfig::ULFIUS_MHD Threads::Threads)
endif()
if(TARGET csession-civetweb-demo AND TARGET csn_civetweb_lib)
  add_executable(csn-bench-bare-civetweb bench/bare_civetweb.c)
  target_link_libraries(csn-bench-bare-civetweb PRIVATE csn_civetweb_lib
                        Threads::Threads)
endif()
