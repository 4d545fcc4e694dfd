# Secrets off the command line (issue 15, finding 1): csn_secret_read_file()
# and the demo's --secret-file / CSN_SECRET_FILE, checked against the real
# csession-demo process (its /proc/PID/cmdline).
if(TARGET csn_http_harness AND TARGET csession-demo)
  csn_add_unit(harden_secret_file ${CMAKE_CURRENT_LIST_DIR}/test_secret_file.c)
  target_link_libraries(harden_secret_file PRIVATE csn_http_harness)
  add_dependencies(harden_secret_file csession-demo)
  set_tests_properties(harden_secret_file PROPERTIES TIMEOUT 60
    ENVIRONMENT "CSN_DEMO_BIN=$<TARGET_FILE:csession-demo>")
endif()
