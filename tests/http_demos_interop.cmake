# The demo binaries beyond csession-demo (csession-ulfius-demo,
# csession-civetweb-demo: one per server, same flags, routes and texts)
# under the tests that run demo processes.
#
# 1. http_demo_binary (tests/http.cmake) is the whole HTTP suite of a demo
#    binary; tests/http_ulfius.cmake and http_civetweb.cmake register it
#    again for their binaries. Its store-failure case runs the demo on a
#    redis-server of its own (tests/redis_proc.c), so it gets those sources
#    here when the build has the Redis store (every demo links every store
#    of the build, so the define says it for all of them). This fragment
#    sorts after http.cmake, so the target exists.
if(TARGET http_demo_binary AND TARGET csn_store_redis_static)
  target_sources(http_demo_binary PRIVATE
    ${CMAKE_CURRENT_LIST_DIR}/redis_proc.c ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
  target_compile_definitions(http_demo_binary PRIVATE CSN_TEST_HAVE_REDIS=1)
endif()

# 2. The Node interop alternation (tests/interop/test_interop_node.c, kinds
#    redis-cluster and pg-cluster): two demo processes - whichever binary
#    CSN_DEMO_BIN names - and the express app on one store, one cookie jar
#    round robin, the counter up by exactly one on every request, both
#    orders. Registered once per extra binary:
#      http_<server>_interop_node  redis-cluster (needs CSN_TEST_REDIS_URL)
#      http_<server>_interop_pg    pg-cluster (needs CSN_TEST_PG_URL)
#    Like the csession-demo ones (store_redis_interop_cluster,
#    store_pg_interop_cluster) they exit 77 without their server, which
#    scripts/test.sh counts as a failure. The programs come from
#    store_redis_interop.cmake and store_pg_interop.cmake, which sort after
#    this file: the registration waits for the end of the directory.
#    (The file and sqlite kinds serve C from the test process itself, not
#    from a demo binary, so there is no server-free variant.)
function(_csn_http_demos_interop)
  set(_interop ${CMAKE_SOURCE_DIR}/tests/interop)
  foreach(_server ulfius civetweb)
    set(_demo csession-${_server}-demo)
    if(NOT TARGET ${_demo})
      continue()
    endif()
    foreach(_kind redis pg)
      if(_kind STREQUAL "redis")
        set(_name http_${_server}_interop_node)
      else()
        set(_name http_${_server}_interop_pg)
      endif()
      if(NOT TARGET store_${_kind}_interop_node)
        continue()
      endif()
      add_dependencies(store_${_kind}_interop_node ${_demo})
      add_test(NAME ${_name}
               COMMAND store_${_kind}_interop_node ${_kind}-cluster ${CSN_NODE}
                       ${_interop}/app.js)
      set_tests_properties(${_name} PROPERTIES
        FIXTURES_REQUIRED csn_interop_node TIMEOUT 120 SKIP_RETURN_CODE 77
        ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:${_demo}>")
    endforeach()
  endforeach()
endfunction()
cmake_language(DEFER CALL _csn_http_demos_interop)
