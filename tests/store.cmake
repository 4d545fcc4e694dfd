# Store layer tests. The conformance suite is a small library so every store's
# test program (file, sqlite, redis, postgres, mongo) can link it and call
# csn_conformance_run() with its own opener.
add_library(csn_store_conformance STATIC tests/store_conformance.c)
target_link_libraries(csn_store_conformance PUBLIC csn_stores_static PkgConfig::CMOCKA)
target_include_directories(csn_store_conformance PUBLIC
  ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)

# One program for the MemoryStore; the argument picks the cmocka group, so
# `ctest -R store_memory_` runs them all and each fails on its own.
add_executable(test_store_memory tests/test_store_memory.c)
target_link_libraries(test_store_memory PRIVATE csn_store_conformance)
foreach(_group conformance expiry prune evict url errors)
  add_test(NAME store_memory_${_group} COMMAND test_store_memory ${_group})
endforeach()
