# (Named to sort after http.cmake, which defines the harness it links.)
# Hardening checks run against the real demo process (issue 15), the
# program in CSN_DEMO_BIN:
#   harden_secret_file   csn_secret_read_file() and the demo's
#                        --secret-file / CSN_SECRET_FILE: the secret never
#                        in /proc/PID/cmdline (finding 1);
#   harden_demo_limits   --per-ip and --timeout against slow connections
#                        from another loopback address (finding 7).
if(TARGET csn_http_harness AND TARGET csession-demo)
  foreach(_t secret_file demo_limits)
    if(_t STREQUAL "secret_file")
      set(_src ${CMAKE_CURRENT_LIST_DIR}/test_secret_file.c)
    else()
      set(_src ${CMAKE_CURRENT_LIST_DIR}/test_demo_limits.c)
    endif()
    csn_add_unit(harden_${_t} ${_src})
    target_link_libraries(harden_${_t} PRIVATE csn_http_harness)
    add_dependencies(harden_${_t} csession-demo)
    set_tests_properties(harden_${_t} PROPERTIES TIMEOUT 60
      ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
  endforeach()
endif()
