# The CivetWeb adapter (src/adapters/civetweb.cmake), when it is built:
#   civetweb_adapter             the adapter in a CivetWeb server of the
#                                test's own, driven with libcurl
#   http_civetweb_demo_binary    http_demo_binary's suite against
#   http_civetweb_concurrency    csession-civetweb-demo, and http_concurrency's
# The client side (csn_http_harness, the demo binary programs) comes from
# http.cmake, which sorts before this file.
if(TARGET csn_civetweb_static AND TARGET csn_http_harness)
  csn_add_unit(civetweb_adapter ${CMAKE_CURRENT_LIST_DIR}/test_civetweb_adapter.c)
  target_link_libraries(civetweb_adapter PRIVATE csn_civetweb_static csn_http_harness)
  set_tests_properties(civetweb_adapter PROPERTIES TIMEOUT 120)
endif()

if(TARGET csession-civetweb-demo AND TARGET http_demo_binary)
  add_dependencies(http_demo_binary csession-civetweb-demo)
  add_test(NAME http_civetweb_demo_binary COMMAND http_demo_binary)
  set_tests_properties(http_civetweb_demo_binary PROPERTIES TIMEOUT 120
    ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-civetweb-demo>")
endif()

if(TARGET csession-civetweb-demo AND TARGET http_concurrency)
  add_dependencies(http_concurrency csession-civetweb-demo)
  add_test(NAME http_civetweb_concurrency COMMAND http_concurrency)
  set_tests_properties(http_civetweb_concurrency PROPERTIES TIMEOUT 300
    ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-civetweb-demo>")
endif()
