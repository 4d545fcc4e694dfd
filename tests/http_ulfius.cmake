# The Ulfius adapter (src/adapters/ulfius.cmake): the demo binary suites
# run against csession-ulfius-demo as they run against csession-demo, and
# ulfius_adapter drives the adapter in-process in a real Ulfius instance.
if(TARGET csession-ulfius-demo AND TARGET http_demo_binary)
  add_test(NAME http_ulfius_demo_binary COMMAND http_demo_binary)
  add_test(NAME http_ulfius_concurrency COMMAND http_concurrency)
  add_dependencies(http_demo_binary csession-ulfius-demo)
  add_dependencies(http_concurrency csession-ulfius-demo)
  set_tests_properties(http_ulfius_demo_binary PROPERTIES TIMEOUT 120
    ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-ulfius-demo>")
  set_tests_properties(http_ulfius_concurrency PROPERTIES TIMEOUT 300
    ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-ulfius-demo>")
endif()

if(TARGET csn_ulfius_static AND TARGET csn_http_harness)
  csn_add_unit(ulfius_adapter ${CMAKE_CURRENT_LIST_DIR}/test_ulfius_adapter.c)
  target_link_libraries(ulfius_adapter PRIVATE csn_ulfius_static csn_http_harness)
  set_tests_properties(ulfius_adapter PROPERTIES TIMEOUT 120)
endif()
