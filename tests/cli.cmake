# The csession command (tools/csession.c), run as a child process by
# tests/test_cli.c exactly as a script runs it: stdout, stderr and the exit
# status, against stores this process populates through the C API.
#   cli_usage        options, usage errors, cookies, bad and unreachable
#                    store URLs (nothing listens on the ports)
#   cli_file         a file store in a temporary directory
#   cli_sqlite       a SQLite database (when the build has the store)
#   cli_redis / cli_pg / cli_mongo
#                    the servers of CSN_TEST_REDIS_URL, CSN_TEST_PG_URL and
#                    CSN_TEST_MONGO_URL (scripts/services.sh exports them;
#                    without one the test exits 77, a skip that CI counts
#                    as a failure)
# The memory store lives in one process, so the command can only ever see
# an empty one (cli_usage checks that).
add_executable(test_cli ${CMAKE_CURRENT_LIST_DIR}/test_cli.c
               ${CMAKE_CURRENT_LIST_DIR}/proc_util.c)
target_link_libraries(test_cli PRIVATE csn_stores_static PkgConfig::CMOCKA
                      PkgConfig::JANSSON)
target_include_directories(test_cli PRIVATE ${CMAKE_SOURCE_DIR}/src
                           ${CMAKE_CURRENT_LIST_DIR})
add_dependencies(test_cli csession)

set(_csn_cli_kinds usage file)
foreach(_st sqlite redis pg mongo)
  if(TARGET csn_store_${_st}_static)
    string(TOUPPER ${_st} _up)
    target_compile_definitions(test_cli PRIVATE CSN_TEST_HAVE_${_up}=1)
    list(APPEND _csn_cli_kinds ${_st})
  endif()
endforeach()
if(TARGET csn_store_pg_static)
  # To drop the table the test made.
  target_link_libraries(test_cli PRIVATE PkgConfig::LIBPQ)
endif()

foreach(_kind ${_csn_cli_kinds})
  add_test(NAME cli_${_kind} COMMAND test_cli ${_kind})
  set_tests_properties(cli_${_kind} PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 120
    # MONGOC_DISABLE_SHM: libmongoc keeps performance counters in shared
    # memory and, when that fails (as it does under AddressSanitizer),
    # prints "Falling back to malloc for counters" on stderr before any
    # log handler of ours can exist; the tests compare stderr exactly.
    ENVIRONMENT "CSN_CLI_BIN=$<TARGET_FILE:csession>;MONGOC_DISABLE_SHM=1")
endforeach()
