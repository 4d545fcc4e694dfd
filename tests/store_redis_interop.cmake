# Interop of the Redis store with the real connect-redis 9 (tests/interop/,
# the program of tests/store_file.cmake with kind "redis"):
#   store_redis_interop_node     the in-process C server and app.js on one
#                                Redis: the counter walk both ways, the
#                                stored text and TTL after every save, and
#                                the slow C save merging Node's writes;
#   store_redis_interop_cluster  two csession-demo processes and app.js,
#                                round robin, one continuous session.
# Both need CSN_TEST_REDIS_URL (scripts/services.sh) and exit 77 (skip)
# without it, which scripts/test.sh counts as a failure. CSN_NODE and the
# csn_interop_node fixture (npm ci) come from tests/store_file.cmake.
if(TARGET csn_store_redis_static AND TARGET csn_http_harness AND
   TEST store_interop_node_setup)
  set(_csn_interop ${CMAKE_CURRENT_LIST_DIR}/interop)
  add_executable(store_redis_interop_node ${_csn_interop}/test_interop_node.c)
  target_compile_definitions(store_redis_interop_node PRIVATE CSN_INTEROP_REDIS=1)
  target_link_libraries(store_redis_interop_node PRIVATE csn_http_harness
                        csn_store_redis_static csn_stores_static
                        PkgConfig::HIREDIS PkgConfig::CMOCKA)
  target_include_directories(store_redis_interop_node PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})

  add_test(NAME store_redis_interop_node
           COMMAND store_redis_interop_node redis ${CSN_NODE} ${_csn_interop}/app.js)
  set_tests_properties(store_redis_interop_node PROPERTIES
    FIXTURES_REQUIRED csn_interop_node TIMEOUT 120 SKIP_RETURN_CODE 77)

  if(TARGET csession-demo)
    add_dependencies(store_redis_interop_node csession-demo)
    add_test(NAME store_redis_interop_cluster
             COMMAND store_redis_interop_node redis-cluster ${CSN_NODE}
                     ${_csn_interop}/app.js)
    set_tests_properties(store_redis_interop_cluster PROPERTIES
      FIXTURES_REQUIRED csn_interop_node TIMEOUT 120 SKIP_RETURN_CODE 77
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
  endif()
endif()
