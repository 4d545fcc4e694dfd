# Interop of the MongoDB store with the real connect-mongo 6 on the mongodb
# 6 driver (tests/interop/, the program of tests/store_file.cmake with kind
# "mongo", "mongo-object" or "mongo-cluster"):
#   store_mongo_interop_node     the in-process C server and app.js on one
#                                collection (connect-mongo's stringify:
#                                true): the counter walk both ways, with
#                                the two sides starting in both orders (the
#                                TTL index made by one, accepted by the
#                                other), the stored document after every
#                                save (session text byte for byte, expires
#                                a Date equal to cookie.expires), the
#                                expiry edges, and the slow C save merging
#                                Node's writes;
#   store_mongo_interop_object   the same with stringify: false on both
#                                sides (session an embedded document with
#                                Node's field types, Dates as Dates);
#   store_mongo_interop_cluster  two csession-demo processes and app.js on
#                                one collection, round robin, one
#                                continuous session.
# All need CSN_TEST_MONGO_URL (scripts/services.sh) and exit 77 (skip)
# without it, which scripts/test.sh counts as a failure. CSN_NODE and the
# csn_interop_node fixture (npm ci) come from tests/store_file.cmake.
if(TARGET csn_store_mongo_static AND TARGET csn_http_harness AND
   TEST store_interop_node_setup)
  # The raw client the test reads documents with (the store links it too).
  pkg_check_modules(CSN_MI_MONGOC REQUIRED IMPORTED_TARGET libmongoc-1.0)
  set(_csn_interop ${CMAKE_CURRENT_LIST_DIR}/interop)
  add_executable(store_mongo_interop_node ${_csn_interop}/test_interop_node.c)
  target_compile_definitions(store_mongo_interop_node PRIVATE
                             CSN_INTEROP_MONGO=1)
  target_link_libraries(store_mongo_interop_node PRIVATE csn_http_harness
                        csn_store_mongo_static csn_stores_static
                        PkgConfig::CSN_MI_MONGOC PkgConfig::JANSSON
                        PkgConfig::CMOCKA)
  target_include_directories(store_mongo_interop_node PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})

  add_test(NAME store_mongo_interop_node
           COMMAND store_mongo_interop_node mongo ${CSN_NODE}
                   ${_csn_interop}/app.js)
  add_test(NAME store_mongo_interop_object
           COMMAND store_mongo_interop_node mongo-object ${CSN_NODE}
                   ${_csn_interop}/app.js)
  set_tests_properties(store_mongo_interop_node store_mongo_interop_object
    PROPERTIES FIXTURES_REQUIRED csn_interop_node TIMEOUT 180
               SKIP_RETURN_CODE 77)

  if(TARGET csession-demo)
    add_dependencies(store_mongo_interop_node csession-demo)
    add_test(NAME store_mongo_interop_cluster
             COMMAND store_mongo_interop_node mongo-cluster ${CSN_NODE}
                     ${_csn_interop}/app.js)
    set_tests_properties(store_mongo_interop_cluster PROPERTIES
      FIXTURES_REQUIRED csn_interop_node TIMEOUT 120 SKIP_RETURN_CODE 77
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
  endif()
endif()
