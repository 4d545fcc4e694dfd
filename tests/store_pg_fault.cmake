# PostgreSQL store under faults and across processes, through the real
# csession-demo program, each test with a PostgreSQL server of its own
# (initdb in a fresh /tmp directory, started on a free loopback port by
# tests/pg_proc.c):
#   store_pg_fault  kill -9 of the whole server (postmaster and backends)
#                   and restart on the same port and data under load,
#                   SIGSTOP/SIGCONT of the whole server, and what the demo
#                   logs (names PostgreSQL, never a session id);
#   store_pg_procs  two demo processes on one database: one session, no
#                   lost increments, logout wins.
# PostgreSQL's server binaries are required (CSN_PG_BIN: the directory of
# initdb and postgres; found under /usr/lib/postgresql/<version>/bin or on
# PATH): when they are missing the tests are still registered and fail
# saying so (a skip would hide it).
#
# csn_pg_proc (tests/pg_proc.[ch] + tests/proc_util.c, on libpq) is the
# private server for any test that wants one (tests/store_pg.cmake links
# it too).
if(TARGET csn_store_pg_static)
  add_library(csn_pg_proc STATIC ${CMAKE_CURRENT_LIST_DIR}/pg_proc.c
              ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
  target_link_libraries(csn_pg_proc PUBLIC PkgConfig::LIBPQ)
  target_include_directories(csn_pg_proc PUBLIC ${CMAKE_CURRENT_LIST_DIR})

  if(NOT CSN_PG_BIN)
    file(GLOB _csn_pg_bins LIST_DIRECTORIES true "/usr/lib/postgresql/*/bin")
    if(_csn_pg_bins)
      list(SORT _csn_pg_bins COMPARE NATURAL ORDER DESCENDING)
      list(GET _csn_pg_bins 0 _csn_pg_bin)
    else()
      find_program(_csn_pg_postgres postgres)
      if(_csn_pg_postgres)
        get_filename_component(_csn_pg_bin ${_csn_pg_postgres} DIRECTORY)
      endif()
    endif()
    set(CSN_PG_BIN "${_csn_pg_bin}" CACHE PATH
        "Directory of PostgreSQL's initdb and postgres, for the tests")
  endif()
  if(NOT EXISTS "${CSN_PG_BIN}/postgres")
    message(WARNING "PostgreSQL server binaries not found (CSN_PG_BIN): "
                    "the tests that start a PostgreSQL server will fail")
  endif()
  set(CSN_PG_TEST_ENV "CSN_PG_BIN=${CSN_PG_BIN}")

  if(TARGET csn_demo_client)
    foreach(_t fault procs)
      csn_add_unit(store_pg_${_t}
                   ${CMAKE_CURRENT_LIST_DIR}/test_store_pg_${_t}.c)
      target_link_libraries(store_pg_${_t} PRIVATE csn_demo_client
                            csn_pg_proc)
      add_dependencies(store_pg_${_t} csession-demo)
      set_tests_properties(store_pg_${_t} PROPERTIES
        TIMEOUT 240
        ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>;${CSN_PG_TEST_ENV}")
    endforeach()
  endif()
endif()
