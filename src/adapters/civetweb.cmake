# CivetWeb adapter (csn/csn_civetweb.h) and csession-civetweb-demo: its own
# library, so only users who want it link CivetWeb. CSN_WITH_CIVETWEB: ON
# requires CivetWeb, AUTO (the default) builds the adapter when CivetWeb is
# found, OFF leaves it out.
#
# CivetWeb ships no pkg-config file, and the CMake package some
# distributions install (civetweb-config.cmake) fails hard - a FATAL_ERROR
# that QUIET does not silence - when its civetweb::server program is not
# installed beside the library, as in Debian's libcivetweb-dev. So the
# header and the library are looked for directly; CMAKE_PREFIX_PATH or
# CIVETWEB_ROOT point at another installation.
set(CSN_WITH_CIVETWEB AUTO CACHE STRING "Build the CivetWeb adapter and its demo: ON, OFF or AUTO")

set(_csn_civetweb OFF)
if(CSN_WITH_CIVETWEB STREQUAL "AUTO" OR CSN_WITH_CIVETWEB)
  find_path(CIVETWEB_INCLUDE_DIR civetweb.h HINTS ${CIVETWEB_ROOT}/include)
  find_library(CIVETWEB_LIBRARY civetweb HINTS ${CIVETWEB_ROOT}/lib)
  if(CIVETWEB_INCLUDE_DIR AND CIVETWEB_LIBRARY)
    set(_csn_civetweb ON)
  elseif(CSN_WITH_CIVETWEB STREQUAL "AUTO")
    message(STATUS "csession: CivetWeb not found, the CivetWeb adapter is not built")
  else()
    message(FATAL_ERROR "csession: CSN_WITH_CIVETWEB=${CSN_WITH_CIVETWEB} but CivetWeb "
                        "(civetweb.h, libcivetweb) was not found; set CIVETWEB_ROOT")
  endif()
endif()

if(_csn_civetweb)
  if(NOT TARGET csn_civetweb_lib)
    add_library(csn_civetweb_lib UNKNOWN IMPORTED)
    set_target_properties(csn_civetweb_lib PROPERTIES
      IMPORTED_LOCATION "${CIVETWEB_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CIVETWEB_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()

  # Public headers only, as a user's adapter would: libcsn's usage
  # requirements carry include/ alone.
  add_library(csn_civetweb SHARED ${CMAKE_CURRENT_LIST_DIR}/civetweb.c)
  target_link_libraries(csn_civetweb PUBLIC csn csn_civetweb_lib)
  set_target_properties(csn_civetweb PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${CSN_MAJOR})
  add_library(csn::civetweb ALIAS csn_civetweb)

  add_library(csn_civetweb_static STATIC ${CMAKE_CURRENT_LIST_DIR}/civetweb.c)
  target_link_libraries(csn_civetweb_static PUBLIC csn_static csn_civetweb_lib)
  set_target_properties(csn_civetweb_static PROPERTIES OUTPUT_NAME csn_civetweb)

  add_executable(csession-civetweb-demo ${CMAKE_SOURCE_DIR}/examples/demo_civetweb.c)
  target_link_libraries(csession-civetweb-demo PRIVATE csn_civetweb_static csn_demo_app)

  list(APPEND CSN_INSTALL_TARGETS csn_civetweb csn_civetweb_static csession-civetweb-demo)

  # pkg-config: csn_civetweb.pc. CivetWeb has no module to require, so its
  # flags are spelled out: -lcivetweb in Libs (an application of this
  # adapter calls mg_start and friends itself), and -I/-L only when
  # CivetWeb is not in a directory the compiler searches anyway.
  # CSN_PC_TO_PREFIX is computed with the install rules, after this file
  # runs: the same value is computed here.
  file(RELATIVE_PATH CSN_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" CSN_PC_TO_PREFIX "${CSN_PC_TO_PREFIX}")
  set(CSN_CIVETWEB_PC_CFLAGS "")
  set(CSN_CIVETWEB_PC_LIBS "-lcivetweb")
  if(NOT CIVETWEB_INCLUDE_DIR IN_LIST CMAKE_C_IMPLICIT_INCLUDE_DIRECTORIES)
    set(CSN_CIVETWEB_PC_CFLAGS " -I${CIVETWEB_INCLUDE_DIR}")
  endif()
  get_filename_component(_csn_civ_libdir "${CIVETWEB_LIBRARY}" DIRECTORY)
  if(NOT _csn_civ_libdir IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
    set(CSN_CIVETWEB_PC_LIBS "-L${_csn_civ_libdir} -lcivetweb")
  endif()
  configure_file(${CMAKE_SOURCE_DIR}/csn_civetweb.pc.in
                 ${CMAKE_CURRENT_BINARY_DIR}/csn_civetweb.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/csn_civetweb.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
