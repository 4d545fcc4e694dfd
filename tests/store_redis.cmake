# Redis store tests (tests/test_store_redis.c): the shared conformance
# suite, connect-redis's key and value format read back with raw hiredis,
# SCAN enumeration, URLs and messages, the pool and cross-handle
# compare-and-set on the server of CSN_TEST_REDIS_URL (scripts/services.sh
# exports it; without it the test exits 77, a skip that CI counts as a
# failure), and, on a redis-server of its own (tests/redis_proc.c),
# passwords, a Unix socket, timeouts and restarts.
if(TARGET csn_store_redis_static)
  find_program(CSN_REDIS_SERVER redis-server)
  if(CSN_REDIS_SERVER)
    set(_csn_redis_server_bin ${CSN_REDIS_SERVER})
  else()
    set(_csn_redis_server_bin redis-server)
  endif()
  csn_add_unit(store_redis ${CMAKE_CURRENT_LIST_DIR}/test_store_redis.c
               ${CMAKE_CURRENT_LIST_DIR}/redis_proc.c
               ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
  target_link_libraries(store_redis PRIVATE csn_store_redis_static)
  if(TARGET csn_store_conformance)
    target_link_libraries(store_redis PRIVATE csn_store_conformance)
  else()
    target_sources(store_redis PRIVATE ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
  endif()
  set_tests_properties(store_redis PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 120
    ENVIRONMENT "CSN_REDIS_SERVER=${_csn_redis_server_bin}")
endif()
