# Benchmark programs (see docs/BENCHMARKS.md; bench/run.sh drives them).
# Included by the top-level CMakeLists.txt when CSN_BENCH and CSN_WITH_MHD are on.

# The ceiling: a libmicrohttpd server with the demo's threading and no session work.
add_executable(csn-bench-bare bench/bare_server.c)
target_link_libraries(csn-bench-bare PRIVATE PkgConfig::MHD Threads::Threads)

# The core alone, no HTTP: begin / modify / commit cycles against a MemoryStore.
add_executable(csn-bench-core bench/core_bench.c)
target_link_libraries(csn-bench-core PRIVATE csn_static)
