# Metrics (csn/csn_metrics.h): the counters in process, their Prometheus
# text through the real parser (tests/metrics_parse.py runs Debian's
# python3-prometheus-client under /usr/bin/python3; without it the parse
# tests fail, they do not skip), and GET /metrics of each demo binary.
# One program, two tests: its argument picks the group.
add_executable(metrics ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c)
target_link_libraries(metrics PRIVATE csn_stores_static PkgConfig::CMOCKA)
target_include_directories(metrics PRIVATE ${CMAKE_SOURCE_DIR}/src
                           ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(metrics PRIVATE
  CSN_METRICS_PARSE="${CMAKE_CURRENT_LIST_DIR}/metrics_parse.py")
add_test(NAME metrics_counters COMMAND metrics counters)
add_test(NAME metrics_prometheus_parse COMMAND metrics parse)
set_tests_properties(metrics_counters metrics_prometheus_parse PROPERTIES
  TIMEOUT 120)

# Over HTTP: the demo of each server, started as a process on a MemoryStore.
if(TARGET csn_demo_client)
  add_executable(http_metrics ${CMAKE_CURRENT_LIST_DIR}/test_http_metrics.c)
  target_link_libraries(http_metrics PRIVATE csn_demo_client csn_stores_static
                        PkgConfig::CMOCKA)
  target_include_directories(http_metrics PRIVATE ${CMAKE_SOURCE_DIR}/src
                             ${CMAKE_CURRENT_LIST_DIR})
  target_compile_definitions(http_metrics PRIVATE
    CSN_METRICS_PARSE="${CMAKE_CURRENT_LIST_DIR}/metrics_parse.py")
  foreach(_demo demo ulfius civetweb)
    if(_demo STREQUAL "demo")
      set(_bin csession-demo)
      set(_name http_demo_metrics)
    else()
      set(_bin csession-${_demo}-demo)
      set(_name http_${_demo}_metrics)
    endif()
    if(TARGET ${_bin})
      add_dependencies(http_metrics ${_bin})
      add_test(NAME ${_name} COMMAND http_metrics)
      set_tests_properties(${_name} PROPERTIES TIMEOUT 120
        ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:${_bin}>")
    endif()
  endforeach()
endif()
