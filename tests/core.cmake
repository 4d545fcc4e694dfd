# The middleware core without HTTP: vectors, store-call traces, options.
# It borrows the HTTP harness only for its counting store.
if(CSN_WITH_MHD)
  csn_add_unit(core_lifecycle ${CMAKE_CURRENT_LIST_DIR}/test_core_lifecycle.c)
  target_link_libraries(core_lifecycle PRIVATE csn_http_harness)
endif()
# Concurrent requests on one session: the merge and logout-wins races.
if(CSN_WITH_MHD)
  csn_add_unit(core_merge ${CMAKE_CURRENT_LIST_DIR}/test_core_merge.c)
  target_link_libraries(core_merge PRIVATE csn_http_harness)
endif()
