# (Named to sort after http.cmake, which defines the harness it links.)
# Hardening checks run against the real demo processes (issue 15), each
# program given in CSN_DEMO_BIN:
#   harden_secret_file   csn_secret_read_file() and the demo's
#                        --secret-file / CSN_SECRET_FILE: the secret never
#                        in /proc/PID/cmdline (finding 1); every demo;
#   harden_demo_limits   --per-ip and --timeout against slow connections
#                        from another loopback address (finding 7); the
#                        libmicrohttpd and Ulfius demos (CivetWeb has no
#                        per-address limit: its demo documents that).
if(TARGET csn_http_harness AND TARGET csession-demo)
  foreach(_t secret_file demo_limits)
    if(_t STREQUAL "secret_file")
      set(_src ${CMAKE_CURRENT_LIST_DIR}/test_secret_file.c)
      set(_demos csession-demo csession-ulfius-demo csession-civetweb-demo)
    else()
      set(_src ${CMAKE_CURRENT_LIST_DIR}/test_demo_limits.c)
      set(_demos csession-demo csession-ulfius-demo)
    endif()
    csn_add_unit(harden_${_t} ${_src})
    target_link_libraries(harden_${_t} PRIVATE csn_http_harness)
    foreach(_demo ${_demos})
      if(NOT TARGET ${_demo})
        continue()
      endif()
      # harden_<test> for csession-demo, harden_<server>_<test> for others.
      string(REGEX REPLACE "^csession-(.*)-demo$" "\\1_" _srv ${_demo})
      if(_demo STREQUAL "csession-demo")
        set(_name harden_${_t})
      else()
        set(_name harden_${_srv}${_t})
        add_test(NAME ${_name} COMMAND harden_${_t})
      endif()
      add_dependencies(harden_${_t} ${_demo})
      set_tests_properties(${_name} PROPERTIES TIMEOUT 60
        ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:${_demo}>")
    endforeach()
  endforeach()
endif()
