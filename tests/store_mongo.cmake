# MongoDB store tests (tests/test_store_mongo.c): the shared conformance
# suite, connect-mongo's documents read back with raw libmongoc in both
# forms (text and stringify=false), a document written as Node writes it,
# touchAfter, the TTL index, the interval remover, URLs and messages, the
# pool, enumeration and cross-handle compare-and-set, on the server of
# CSN_TEST_MONGO_URL (scripts/services.sh exports it; without it the test
# exits 77, a skip that CI counts as a failure); a stopped and a restarted
# server on a private test server (tests/mongo_proc.c, which runs
# tests/mongo/mongo_server.py).
if(TARGET csn_store_mongo_static)
  pkg_check_modules(CSN_MT_MONGOC REQUIRED IMPORTED_TARGET libmongoc-1.0)
  csn_add_unit(store_mongo ${CMAKE_CURRENT_LIST_DIR}/test_store_mongo.c
               ${CMAKE_CURRENT_LIST_DIR}/mongo_proc.c
               ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
  target_compile_definitions(store_mongo PRIVATE
    CSN_MONGO_SERVER_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/mongo/mongo_server.py")
  target_link_libraries(store_mongo PRIVATE csn_store_mongo_static
                        PkgConfig::CSN_MT_MONGOC)
  if(TARGET csn_store_conformance)
    target_link_libraries(store_mongo PRIVATE csn_store_conformance)
  else()
    target_sources(store_mongo PRIVATE ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
  endif()
  set_tests_properties(store_mongo PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 180)
endif()

# The test server itself, driven by pymongo (tests/mongo/smoke.py starts its
# own): the stand-in must behave like mongod where the stores rely on it
# (types, member order, cursors, TTL, errors) or the tests above prove
# nothing. Debian's interpreter, which sees python3-pymongo.
if(TARGET csn_store_mongo_static)
  add_test(NAME store_mongo_server_smoke
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/mongo/smoke.py)
  set_tests_properties(store_mongo_server_smoke PROPERTIES TIMEOUT 120)
endif()
