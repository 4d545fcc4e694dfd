# HTTP tests: a real libmicrohttpd server on loopback driven by libcurl.
# The harness (tests/http_harness.c) is a small library so the parity suite
# can link it too.
if(CSN_WITH_MHD)
  pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)

  add_library(csn_http_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/http_harness.c)
  target_link_libraries(csn_http_harness PUBLIC csn_mhd_static PkgConfig::CURL
                        OpenSSL::Crypto)
  target_include_directories(csn_http_harness PUBLIC
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})

  foreach(_t adapter demo hostile store_error demo_binary)
    csn_add_unit(http_${_t} ${CMAKE_CURRENT_LIST_DIR}/test_http_${_t}.c)
    target_link_libraries(http_${_t} PRIVATE csn_http_harness)
    set_tests_properties(http_${_t} PROPERTIES TIMEOUT 120)
  endforeach()

  # The demo binary test runs the real program it is given.
  add_dependencies(http_demo_binary csession-demo)
  set_tests_properties(http_demo_binary PROPERTIES
    ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
endif()
