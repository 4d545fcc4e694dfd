# MongoDB store under faults and across processes, through the real
# csession-demo program, each test with a MongoDB test server of its own
# (tests/mongo/mongo_server.py, in memory, started on a free loopback port
# by tests/mongo_proc.c):
#   store_mongo_fault  kill -9 and restart of the server under load (its
#                      data is in memory only, so the sessions are gone
#                      afterwards: fresh sessions are what is checked),
#                      SIGSTOP/SIGCONT, and what the demo logs (names
#                      MongoDB, never a session id);
#   store_mongo_procs  two demo processes on one collection: one session,
#                      no lost increments, logout wins.
# The server needs Debian's /usr/bin/python3 with python3-pymongo's bson
# module: when it cannot run the tests are still registered and fail
# saying so (a skip would hide it).
if(TARGET csn_store_mongo_static AND TARGET csn_demo_client AND
   TARGET csession-demo)
  # The raw client the tests look into the server with.
  pkg_check_modules(CSN_MF_MONGOC REQUIRED IMPORTED_TARGET libmongoc-1.0)
  foreach(_t fault procs)
    csn_add_unit(store_mongo_${_t}
                 ${CMAKE_CURRENT_LIST_DIR}/test_store_mongo_${_t}.c
                 ${CMAKE_CURRENT_LIST_DIR}/mongo_proc.c
                 ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
    target_compile_definitions(store_mongo_${_t} PRIVATE
      CSN_MONGO_SERVER_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/mongo/mongo_server.py")
    target_link_libraries(store_mongo_${_t} PRIVATE csn_demo_client
                          PkgConfig::CSN_MF_MONGOC)
    add_dependencies(store_mongo_${_t} csession-demo)
    set_tests_properties(store_mongo_${_t} PROPERTIES
      TIMEOUT 240
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
  endforeach()
endif()
