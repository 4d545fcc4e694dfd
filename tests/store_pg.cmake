# PostgreSQL store tests (tests/test_store_pg.c): the shared conformance
# suite, connect-pg-simple's table read back with raw libpq, time zones,
# SQL injection, create_table, URLs and messages, prune and the sweeper,
# enumeration, the pool, cross-handle compare-and-set, statement timeouts
# and killed backends, on the server of CSN_TEST_PG_URL (scripts/services.sh
# exports it; without it the test exits 77, a skip that CI counts as a
# failure). Restarts and a stopped server: tests/store_pg_fault.cmake.
if(TARGET csn_store_pg_static)
  csn_add_unit(store_pg ${CMAKE_CURRENT_LIST_DIR}/test_store_pg.c)
  target_link_libraries(store_pg PRIVATE csn_store_pg_static PkgConfig::LIBPQ)
  if(TARGET csn_store_conformance)
    target_link_libraries(store_pg PRIVATE csn_store_conformance)
  else()
    target_sources(store_pg PRIVATE ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
  endif()
  set_tests_properties(store_pg PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 120)
endif()
