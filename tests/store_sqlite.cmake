# SQLite store tests (tests/test_store_sqlite.c): the shared conformance
# suite, connect-sqlite3's table and rules, faults and concurrency, and the
# interop test with the real connect-sqlite3 (tests/interop/).
if(TARGET csn_store_sqlite_static)
  csn_add_unit(store_sqlite ${CMAKE_CURRENT_LIST_DIR}/test_store_sqlite.c)
  target_link_libraries(store_sqlite PRIVATE csn_store_sqlite_static)
  if(TARGET csn_store_conformance)
    target_link_libraries(store_sqlite PRIVATE csn_store_conformance)
    target_compile_definitions(store_sqlite PRIVATE CSN_HAVE_CONFORMANCE=1)
  elseif(EXISTS ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
    target_sources(store_sqlite PRIVATE ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
    target_compile_definitions(store_sqlite PRIVATE CSN_HAVE_CONFORMANCE=1)
  endif()
  set_tests_properties(store_sqlite PROPERTIES TIMEOUT 300)
endif()

# Interop with the real connect-sqlite3 (see tests/store_file.cmake for the
# setup fixture and the shared test program).
if(TARGET csn_store_sqlite_static AND TARGET csn_http_harness)
  set(_csn_interop ${CMAKE_CURRENT_LIST_DIR}/interop)
  add_executable(store_sqlite_interop_node ${_csn_interop}/test_interop_node.c)
  target_compile_definitions(store_sqlite_interop_node PRIVATE CSN_INTEROP_SQLITE=1)
  target_link_libraries(store_sqlite_interop_node PRIVATE csn_http_harness
                        csn_store_sqlite_static csn_stores_static PkgConfig::CMOCKA)
  target_include_directories(store_sqlite_interop_node PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})
  add_test(NAME store_sqlite_interop_node
           COMMAND store_sqlite_interop_node sqlite ${CSN_NODE} ${_csn_interop}/app.js)
  set_tests_properties(store_sqlite_interop_node PROPERTIES
    FIXTURES_REQUIRED csn_interop_node TIMEOUT 120)
endif()
