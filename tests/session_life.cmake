# Session lifetime features (issue 14): the absolute timeout, rotation and
# lazy touch, tested at the store through a counting wrapper
# (tests/life_count_store.h) on real stores.
#   session_lifetime            lifetime_ms on a MemoryStore and the clock
#                               hook (tests/test_session_lifetime.c)
#   session_rotate              csn_session_rotate() (test_session_rotate.c)
#   session_touch_after_<store> touch_after_ms: store writes over unchanged
#                               requests, with and without it, for every
#                               store of the build (test_touch_after.c);
#                               redis, pg and mongo need CSN_TEST_*_URL
#                               (scripts/services.sh) and exit 77 (skip)
#                               without it, which CI counts as a failure
#   interop_lifetime_node_<store>  a real express-session app (app.js)
#                               saving the same session: the creation stamp
#                               survives and the C side still ends the
#                               session at the lifetime
#                               (test_interop_lifetime.c); file, sqlite,
#                               redis, pg (connect-pg-simple, a table of
#                               the run's own, dropped after) and mongo
#                               (connect-mongo, a collection of its own)
csn_add_unit(session_lifetime ${CMAKE_CURRENT_LIST_DIR}/test_session_lifetime.c)
csn_add_unit(session_rotate ${CMAKE_CURRENT_LIST_DIR}/test_session_rotate.c)

add_executable(session_touch_after ${CMAKE_CURRENT_LIST_DIR}/test_touch_after.c)
target_link_libraries(session_touch_after PRIVATE csn_stores_static
                      PkgConfig::CMOCKA)
target_include_directories(session_touch_after PRIVATE
  ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
if(TARGET csn_store_pg_static)
  # libpq for dropping the run's table at the end (tests/pg_drop.h).
  target_link_libraries(session_touch_after PRIVATE csn_store_pg_static)
  target_compile_definitions(session_touch_after PRIVATE CSN_TA_PG=1)
endif()
foreach(_csn_ta_store memory file sqlite redis pg mongo)
  # Only the stores this build has (csn_stores_static registers them).
  if(_csn_ta_store STREQUAL "sqlite" AND NOT TARGET csn_store_sqlite_static)
    continue()
  elseif(_csn_ta_store STREQUAL "redis" AND NOT TARGET csn_store_redis_static)
    continue()
  elseif(_csn_ta_store STREQUAL "pg" AND NOT TARGET csn_store_pg_static)
    continue()
  elseif(_csn_ta_store STREQUAL "mongo" AND NOT TARGET csn_store_mongo_static)
    continue()
  endif()
  add_test(NAME session_touch_after_${_csn_ta_store}
           COMMAND session_touch_after ${_csn_ta_store})
  set_tests_properties(session_touch_after_${_csn_ta_store} PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()

# With a real Node app (tests/interop/app.js): the npm packages come from
# the csn_interop_node fixture (store_interop_node_setup, defined in
# tests/store_file.cmake, resolved by ctest whatever the include order).
if(TARGET csn_http_harness)
  find_program(CSN_NODE node)
  if(NOT CSN_NODE)
    set(CSN_NODE node)
  endif()
  add_executable(interop_lifetime_node ${CMAKE_CURRENT_LIST_DIR}/test_interop_lifetime.c)
  target_link_libraries(interop_lifetime_node PRIVATE csn_http_harness
                        csn_stores_static PkgConfig::CMOCKA)
  target_include_directories(interop_lifetime_node PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
  set(_csn_life_kinds file)
  if(TARGET csn_store_sqlite_static)
    list(APPEND _csn_life_kinds sqlite)
  endif()
  if(TARGET csn_store_redis_static)
    list(APPEND _csn_life_kinds redis)
  endif()
  if(TARGET csn_store_pg_static)
    # libpq for dropping the run's table at the end (tests/pg_drop.h).
    target_link_libraries(interop_lifetime_node PRIVATE csn_store_pg_static)
    target_compile_definitions(interop_lifetime_node PRIVATE CSN_LIFE_PG=1)
    list(APPEND _csn_life_kinds pg)
  endif()
  if(TARGET csn_store_mongo_static)
    list(APPEND _csn_life_kinds mongo)
  endif()
  foreach(_k ${_csn_life_kinds})
    add_test(NAME interop_lifetime_node_${_k}
             COMMAND interop_lifetime_node ${_k} ${CSN_NODE}
                     ${CMAKE_CURRENT_LIST_DIR}/interop/app.js)
    set_tests_properties(interop_lifetime_node_${_k} PROPERTIES
      FIXTURES_REQUIRED csn_interop_node TIMEOUT 120 SKIP_RETURN_CODE 77)
  endforeach()
endif()
