# Regression tests for the hardening findings of issue 15 (an adversarial
# review) in the core and the libmicrohttpd adapter; each fails on the code
# before its fix.
#   harden_fork     the id pool is emptied in a fork child, even when the
#                   child sees its parent's pid (pid reuse, simulated by
#                   wrapping getpid() for the library's objects only), and
#                   in a _Fork() child, which runs no fork handler;
#   harden_fork_nowipe  the same where madvise(MADV_WIPEONFORK) fails (the
#                   test's wrap refuses it): getpid() and the handler alone;
#   harden_locale   numbers are written and read the same under a
#                   comma-decimal locale (de_DE.UTF-8, compiled into a
#                   temporary directory when it is not installed);
#   harden_depth    the deepest value csn_session_set_json() accepts is
#                   saved and loaded again, one level more is refused;
#   harden_corrupt  an unreadable record is no session, in the memory, file
#                   and SQLite stores alike, and is logged without its id;
#   harden_mhd      every Cookie header is read, and the error log tells
#                   each failure with its own message.
csn_add_unit(harden_fork ${CMAKE_CURRENT_LIST_DIR}/test_harden_fork.c)
# --wrap sends the library's own calls of getpid() (resolved in this static
# link) to the test's __wrap_getpid; libc and OpenSSL keep theirs.
target_link_options(harden_fork PRIVATE -Wl,--wrap=getpid -Wl,--wrap=madvise)
csn_add_unit(harden_fork_nowipe ${CMAKE_CURRENT_LIST_DIR}/test_harden_fork.c)
target_compile_definitions(harden_fork_nowipe PRIVATE HARDEN_NO_WIPE=1)
target_link_options(harden_fork_nowipe PRIVATE -Wl,--wrap=getpid
                    -Wl,--wrap=madvise)

csn_add_unit(harden_locale ${CMAKE_CURRENT_LIST_DIR}/test_harden_locale.c)
set_tests_properties(harden_locale PROPERTIES TIMEOUT 120)

csn_add_unit(harden_depth ${CMAKE_CURRENT_LIST_DIR}/test_harden_depth.c)

csn_add_unit(harden_corrupt ${CMAKE_CURRENT_LIST_DIR}/test_harden_corrupt.c)
if(TARGET csn_store_sqlite_static)
  target_link_libraries(harden_corrupt PRIVATE csn_store_sqlite_static
                        PkgConfig::SQLITE3)
  target_compile_definitions(harden_corrupt PRIVATE CSN_TEST_HAVE_SQLITE=1)
endif()

if(CSN_WITH_MHD)
  csn_add_unit(harden_mhd ${CMAKE_CURRENT_LIST_DIR}/test_harden_mhd.c)
  target_link_libraries(harden_mhd PRIVATE csn_http_harness)
  set_tests_properties(harden_mhd PROPERTIES TIMEOUT 120)
endif()
