# Ulfius adapter (csn/csn_ulfius.h) and csession-ulfius-demo: its own
# library, so only users who want it link Ulfius. CSN_WITH_ULFIUS: ON
# requires libulfius, AUTO (the default) builds the adapter when pkg-config
# finds it, OFF leaves it out.
set(CSN_WITH_ULFIUS AUTO CACHE STRING "Build the Ulfius adapter and its demo: ON, OFF or AUTO")

set(_csn_ulfius OFF)
if(CSN_WITH_ULFIUS STREQUAL "AUTO")
  pkg_check_modules(ULFIUS QUIET IMPORTED_TARGET libulfius)
  # The adapter asks Ulfius's libmicrohttpd daemon whether it runs TLS.
  pkg_check_modules(ULFIUS_MHD QUIET IMPORTED_TARGET libmicrohttpd)
  if(ULFIUS_FOUND AND ULFIUS_MHD_FOUND)
    set(_csn_ulfius ON)
  else()
    message(STATUS "csession: libulfius not found, the Ulfius adapter is not built")
  endif()
elseif(CSN_WITH_ULFIUS)
  pkg_check_modules(ULFIUS REQUIRED IMPORTED_TARGET libulfius)
  pkg_check_modules(ULFIUS_MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
  set(_csn_ulfius ON)
endif()

if(_csn_ulfius)
  # Public headers only, as a user's adapter would: libcsn's usage
  # requirements carry include/ alone, so this fails to build if ulfius.c
  # reaches for src/csn_int.h.
  add_library(csn_ulfius SHARED ${CMAKE_CURRENT_LIST_DIR}/ulfius.c)
  target_link_libraries(csn_ulfius PUBLIC csn PkgConfig::ULFIUS PkgConfig::ULFIUS_MHD)
  set_target_properties(csn_ulfius PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${CSN_MAJOR})
  add_library(csn::ulfius ALIAS csn_ulfius)

  # Static twin for the demo and the tests.
  add_library(csn_ulfius_static STATIC ${CMAKE_CURRENT_LIST_DIR}/ulfius.c)
  target_link_libraries(csn_ulfius_static PUBLIC csn_static PkgConfig::ULFIUS
                        PkgConfig::ULFIUS_MHD)
  set_target_properties(csn_ulfius_static PROPERTIES OUTPUT_NAME csn_ulfius)

  add_executable(csession-ulfius-demo ${CMAKE_SOURCE_DIR}/examples/demo_ulfius.c)
  target_link_libraries(csession-ulfius-demo PRIVATE csn_ulfius_static csn_demo_app)

  list(APPEND CSN_INSTALL_TARGETS csn_ulfius csn_ulfius_static csession-ulfius-demo)

  # pkg-config: csn_ulfius.pc. CSN_PC_TO_PREFIX is computed with the
  # install rules, after this file runs: the same value is computed here.
  file(RELATIVE_PATH CSN_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" CSN_PC_TO_PREFIX "${CSN_PC_TO_PREFIX}")
  configure_file(${CMAKE_SOURCE_DIR}/csn_ulfius.pc.in
                 ${CMAKE_CURRENT_BINARY_DIR}/csn_ulfius.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/csn_ulfius.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
