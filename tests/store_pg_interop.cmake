# Interop of the PostgreSQL store with the real connect-pg-simple 10 on pg 8
# (tests/interop/, the program of tests/store_file.cmake with kind "pg"):
#   store_pg_interop_node   the in-process C server and app.js on one table:
#                           the counter walk both ways, the stored sess text
#                           and expire after every save, the expiry edges,
#                           the slow C save merging Node's writes, and the
#                           connections' TimeZone (both sides in one zone
#                           other than UTC; two different zones pinned down);
#   store_pg_interop_cluster  two csession-demo processes and app.js on one
#                           table, round robin, one continuous session.
# Both need CSN_TEST_PG_URL (scripts/services.sh) and exit 77 (skip) without it,
# which scripts/test.sh counts as a failure. CSN_NODE and the
# csn_interop_node fixture (npm ci) come from tests/store_file.cmake.
if(TARGET csn_store_pg_static AND TARGET csn_http_harness AND
   TEST store_interop_node_setup)
  set(_csn_interop ${CMAKE_CURRENT_LIST_DIR}/interop)
  add_executable(store_pg_interop_node ${_csn_interop}/test_interop_node.c)
  target_compile_definitions(store_pg_interop_node PRIVATE CSN_INTEROP_PG=1)
  target_link_libraries(store_pg_interop_node PRIVATE csn_http_harness
                        csn_store_pg_static csn_stores_static
                        PkgConfig::LIBPQ PkgConfig::CMOCKA)
  target_include_directories(store_pg_interop_node PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})

  add_test(NAME store_pg_interop_node
           COMMAND store_pg_interop_node pg ${CSN_NODE} ${_csn_interop}/app.js)
  set_tests_properties(store_pg_interop_node PROPERTIES
    FIXTURES_REQUIRED csn_interop_node TIMEOUT 180 SKIP_RETURN_CODE 77)

  if(TARGET csession-demo)
    add_dependencies(store_pg_interop_node csession-demo)
    add_test(NAME store_pg_interop_cluster
             COMMAND store_pg_interop_node pg-cluster ${CSN_NODE}
                     ${_csn_interop}/app.js)
    set_tests_properties(store_pg_interop_cluster PROPERTIES
      FIXTURES_REQUIRED csn_interop_node TIMEOUT 120 SKIP_RETURN_CODE 77
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
  endif()
endif()
