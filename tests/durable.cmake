# A save acknowledged by a group commit is on disk (tests/test_durable_kill.c):
# a child saves from several threads and is killed with SIGKILL right after
# an acknowledgement; the store is reopened and every acknowledged session
# must be there. For the SQLite store (batched transactions) and the file
# store (shared directory fsyncs), durable and relaxed.
add_executable(store_durable_kill ${CMAKE_CURRENT_LIST_DIR}/test_durable_kill.c)
target_link_libraries(store_durable_kill PRIVATE csn_stores_static PkgConfig::CMOCKA
                      Threads::Threads)
target_include_directories(store_durable_kill PRIVATE ${CMAKE_SOURCE_DIR}/src)
add_test(NAME store_file_durable_kill COMMAND store_durable_kill file)
add_test(NAME store_file_durable_kill_relaxed COMMAND store_durable_kill file "?fsync=0")
set_tests_properties(store_file_durable_kill store_file_durable_kill_relaxed
  PROPERTIES TIMEOUT 120)
if(TARGET csn_store_sqlite_static)
  add_test(NAME store_sqlite_durable_kill COMMAND store_durable_kill sqlite)
  add_test(NAME store_sqlite_durable_kill_relaxed
           COMMAND store_durable_kill sqlite "?synchronous=normal")
  set_tests_properties(store_sqlite_durable_kill store_sqlite_durable_kill_relaxed
    PROPERTIES TIMEOUT 120)
endif()
