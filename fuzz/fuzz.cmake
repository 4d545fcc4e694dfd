# fuzz/fuzz.cmake - libFuzzer targets (configure with CC=clang -DCSN_FUZZ=ON).
#
# Each target is linked with -fsanitize=fuzzer,address,undefined. The library
# code it exercises must carry the coverage instrumentation too, or the
# fuzzer would be blind inside the very functions it is meant to explore, so
# the core sources are compiled a second time into csn_fuzzlib with
# -fsanitize=fuzzer-no-link (instrumented, but without libFuzzer's main).
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "CSN_FUZZ=ON needs clang (configure with CC=clang); "
                      "the compiler is ${CMAKE_C_COMPILER_ID}")
endif()

set(CSN_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined
                   -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)

add_library(csn_fuzzlib STATIC ${CSN_CORE_SOURCES})
target_compile_options(csn_fuzzlib PRIVATE ${CSN_FUZZ_FLAGS})
target_include_directories(csn_fuzzlib PUBLIC
  ${CMAKE_CURRENT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR}/src)
target_link_libraries(csn_fuzzlib PUBLIC PkgConfig::JANSSON OpenSSL::Crypto
                      Threads::Threads)

set(CSN_FUZZ_TARGETS cookie_header unsign set_cookie record store_url)
foreach(_t ${CSN_FUZZ_TARGETS})
  add_executable(fuzz_${_t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${_t}.c)
  target_compile_options(fuzz_${_t} PRIVATE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer -g)
  target_link_options(fuzz_${_t} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_${_t} PRIVATE csn_fuzzlib)
  # With testing on, replay each seed corpus once (no mutation): a quick
  # regression check that every recorded input still passes.
  if(BUILD_TESTING)
    add_test(NAME fuzz_corpus_${_t}
             COMMAND fuzz_${_t} -runs=0
                     ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${_t})
  endif()
endforeach()
list(TRANSFORM CSN_FUZZ_TARGETS PREPEND fuzz_ OUTPUT_VARIABLE _csn_fuzz_exes)
add_custom_target(fuzz DEPENDS ${_csn_fuzz_exes})
