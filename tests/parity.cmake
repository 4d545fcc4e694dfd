# express-session parity: the upstream suite's 160 cases (docs/PARITY.md)
# ported to a real libmicrohttpd server driven by libcurl.
#
# Each tests/test_parity_<group>.c is one binary; every case in it becomes its
# own CTest test named after the case (parity_<group>_<upstream name>), run
# as `<binary> <case>` so the binary executes that case alone. The case names
# are read from the cmocka_unit_test(...) lines of the source, so adding a
# case to a file registers it. `ctest -R parity` runs them all.
if(CSN_WITH_MHD)
  add_library(csn_parity_common STATIC
              ${CMAKE_CURRENT_LIST_DIR}/test_parity_common.c)
  target_link_libraries(csn_parity_common PUBLIC csn_http_harness csn_stores_static
                        PkgConfig::CMOCKA)

  # Cases that show a behaviour difference still under the lead's review:
  # built and listed, not part of the default run (docs/PARITY.md).
  set(CSN_PARITY_DISABLED "")

  file(GLOB _parity_srcs CONFIGURE_DEPENDS
       ${CMAKE_CURRENT_LIST_DIR}/test_parity_*.c)
  list(REMOVE_ITEM _parity_srcs ${CMAKE_CURRENT_LIST_DIR}/test_parity_common.c)
  foreach(_src ${_parity_srcs})
    get_filename_component(_bin ${_src} NAME_WE)
    string(REGEX REPLACE "^test_" "" _bin ${_bin})
    add_executable(${_bin} ${_src})
    target_link_libraries(${_bin} PRIVATE csn_parity_common)
    target_include_directories(${_bin} PRIVATE ${CMAKE_SOURCE_DIR}/src
                               ${CMAKE_SOURCE_DIR}/tests)
    file(STRINGS ${_src} _lines REGEX "^ *(cmocka_unit_test\\()?parity_[A-Za-z0-9_]+\\)")
    foreach(_line ${_lines})
      string(REGEX MATCH "parity_[A-Za-z0-9_]+" _case "${_line}")
      add_test(NAME ${_case} COMMAND ${_bin} ${_case})
      set_tests_properties(${_case} PROPERTIES TIMEOUT 60)
      list(FIND CSN_PARITY_DISABLED ${_case} _off)
      if(NOT _off EQUAL -1)
        set_tests_properties(${_case} PROPERTIES DISABLED TRUE)
      endif()
    endforeach()
  endforeach()
endif()
