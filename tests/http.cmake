# HTTP tests: a real libmicrohttpd server on loopback driven by libcurl.
# The harness (tests/http_harness.c) is a small library so the parity suite
# can link it too.
if(CSN_WITH_MHD)
  pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)

  add_library(csn_http_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/http_harness.c
              ${CMAKE_CURRENT_LIST_DIR}/demo_proc.c)
  target_link_libraries(csn_http_harness PUBLIC csn_mhd_static PkgConfig::CURL
                        OpenSSL::Crypto)
  target_include_directories(csn_http_harness PUBLIC
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})

  # The client side of the tests that drive csession-demo processes over
  # HTTP (http_concurrency, store_redis_procs, store_redis_fault): requests,
  # cookies, /session, the lost-update hammer, a request in a thread, and
  # the fault scenario of the server stores (tests/demo_fault.h). It
  # asserts with cmocka, so it is a library of its own beside the harness.
  add_library(csn_demo_client STATIC ${CMAKE_CURRENT_LIST_DIR}/demo_client.c
              ${CMAKE_CURRENT_LIST_DIR}/demo_fault.c)
  target_link_libraries(csn_demo_client PUBLIC csn_http_harness
                        PkgConfig::CMOCKA PkgConfig::JANSSON Threads::Threads)

  foreach(_t adapter demo hostile store_error demo_binary concurrency)
    csn_add_unit(http_${_t} ${CMAKE_CURRENT_LIST_DIR}/test_http_${_t}.c)
    target_link_libraries(http_${_t} PRIVATE csn_http_harness)
    set_tests_properties(http_${_t} PROPERTIES TIMEOUT 120)
  endforeach()

  # http_demo serves the demo's own routes (examples/demo.c, included).
  target_link_libraries(http_demo PRIVATE csn_demo_app)

  # The demo binary tests run the real program they are given.
  foreach(_t demo_binary concurrency)
    add_dependencies(http_${_t} csession-demo)
    set_tests_properties(http_${_t} PROPERTIES
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
  endforeach()

  # No lost updates (issue 9): 8 clients on one session through the demo,
  # per store and with two demo processes: about 4,000 requests, most of
  # them durable writes (6-12 s here, about the same under valgrind, which
  # runs only the clients). The SQLite cases run when the demo has that
  # store, and read its table directly.
  target_link_libraries(http_concurrency PRIVATE csn_demo_client)
  set_tests_properties(http_concurrency PROPERTIES TIMEOUT 300)
  if(TARGET csn_store_sqlite_static)
    target_link_libraries(http_concurrency PRIVATE PkgConfig::SQLITE3)
    target_compile_definitions(http_concurrency PRIVATE CSN_TEST_HAVE_SQLITE=1)
  endif()
endif()
