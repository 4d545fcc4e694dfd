# install_: `cmake --install` of this build tree into a fresh prefix, then the
# README's libmicrohttpd example built against that install with pkg-config
# (install_pkgconfig) and with find_package(csession) (install_cmake); see
# tests/install_check.sh. Each test installs into a prefix of its own, so
# they run in parallel. They install what the build made, so they run after
# a complete build, as ctest does.
if(CSN_WITH_MHD)
  set(_csn_install_extra "")
  if(CSN_SANITIZE)
    # An instrumented libcsn links only into an instrumented program.
    set(_csn_install_extra "-fsanitize=address,undefined")
  endif()
  foreach(_mode pkgconfig cmake)
    add_test(NAME install_${_mode}
      COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/install_check.sh ${_mode}
              ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} ${CMAKE_C_COMPILER}
              ${CMAKE_COMMAND} ${CMAKE_INSTALL_LIBDIR} ${CMAKE_INSTALL_BINDIR}
              ${CMAKE_INSTALL_MANDIR} ${CMAKE_INSTALL_INCLUDEDIR}
              "${_csn_install_extra}")
    set_tests_properties(install_${_mode} PROPERTIES TIMEOUT 120)
  endforeach()
endif()
