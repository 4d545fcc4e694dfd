# Fault injection: allocation failure (every N) and store failures.
# `ctest -R fault_` runs them; under -DCSN_SANITIZE=ON or valgrind they also
# prove that no failure path leaks.
csn_add_unit(fault_alloc ${CMAKE_CURRENT_LIST_DIR}/test_fault_alloc.c)
csn_add_unit(fault_store ${CMAKE_CURRENT_LIST_DIR}/test_fault_store.c)
# The huge-record case moves a few tens of megabytes around under ASan.
set_tests_properties(fault_alloc fault_store PROPERTIES TIMEOUT 300)
