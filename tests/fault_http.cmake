# Real store faults seen through real HTTP (tests/test_fault_http.c): a
# libmicrohttpd server in a child process running as "nobody", whose store
# directory turns read-only or whose writes fail with EFBIG mid-run. One
# ctest entry per store: `ctest -R fault_http` runs both.
#
# This fragment is read before tests/http.cmake (fragments go in name
# order), so the harness target does not exist yet; CSN_WITH_MHD is the
# condition under which http.cmake defines it, and target names in
# target_link_libraries are resolved at generation time.
if(CSN_WITH_MHD)
  add_executable(fault_http ${CMAKE_CURRENT_LIST_DIR}/test_fault_http.c)
  target_link_libraries(fault_http PRIVATE csn_http_harness csn_stores_static
                        PkgConfig::CMOCKA)
  target_include_directories(fault_http PRIVATE ${CMAKE_SOURCE_DIR}/src
                             ${CMAKE_CURRENT_LIST_DIR})
  add_test(NAME fault_http_file COMMAND fault_http "fault_http_file_*")
  set(_csn_fault_http_tests fault_http_file)
  if(TARGET csn_store_sqlite_static)
    target_link_libraries(fault_http PRIVATE csn_store_sqlite_static)
    target_compile_definitions(fault_http PRIVATE CSN_HAVE_SQLITE_STORE=1)
    add_test(NAME fault_http_sqlite COMMAND fault_http "fault_http_sqlite_*")
    list(APPEND _csn_fault_http_tests fault_http_sqlite)
  endif()
  set_tests_properties(${_csn_fault_http_tests} PROPERTIES TIMEOUT 120)
endif()
