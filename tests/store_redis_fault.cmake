# Redis store under faults and across processes, through the real
# csession-demo program, each test with a redis-server of its own (started
# on a free loopback port by tests/redis_proc.c):
#   store_redis_fault  kill -9 and restart of an AOF (fsync always) Redis
#                      under load, SIGSTOP/SIGCONT, and what the demo logs
#                      (names Redis, never the password or a session id);
#   store_redis_procs  two demo processes on one Redis: one session, no
#                      lost increments, logout wins.
# redis-server is required: when it is missing the tests are still
# registered and fail saying so (a skip would hide it).
if(TARGET csn_store_redis_static AND TARGET csn_demo_client)
  find_program(CSN_REDIS_SERVER redis-server)
  if(CSN_REDIS_SERVER)
    set(_csn_redis_server ${CSN_REDIS_SERVER})
  else()
    message(WARNING "redis-server not found: store_redis_fault and "
                    "store_redis_procs will fail")
    set(_csn_redis_server redis-server)
  endif()
  foreach(_t fault procs)
    csn_add_unit(store_redis_${_t}
                 ${CMAKE_CURRENT_LIST_DIR}/test_store_redis_${_t}.c
                 ${CMAKE_CURRENT_LIST_DIR}/redis_proc.c
                 ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
    target_link_libraries(store_redis_${_t} PRIVATE csn_demo_client)
    add_dependencies(store_redis_${_t} csession-demo)
    set_tests_properties(store_redis_${_t} PROPERTIES
      TIMEOUT 180
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>;CSN_REDIS_SERVER=${_csn_redis_server}")
  endforeach()
endif()
