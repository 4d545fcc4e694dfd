# Fault injection: allocation failure (every N) and store failures.
# `ctest -R fault_` runs them; under -DCSN_SANITIZE=ON or valgrind they also
# prove that no failure path leaks.
csn_add_unit(fault_alloc ${CMAKE_CURRENT_LIST_DIR}/test_fault_alloc.c)
csn_add_unit(fault_store ${CMAKE_CURRENT_LIST_DIR}/test_fault_store.c)
# The SQLite store joins the allocation-failure loops when it is built.
if(TARGET csn_store_sqlite_static)
  target_link_libraries(fault_alloc PRIVATE csn_store_sqlite_static)
  target_compile_definitions(fault_alloc PRIVATE CSN_HAVE_SQLITE_STORE=1)
endif()
# The huge-record case moves a few tens of megabytes around under ASan.
set_tests_properties(fault_alloc fault_store PROPERTIES TIMEOUT 300)
