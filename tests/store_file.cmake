# FileStore tests: the shared conformance suite plus layout, expiry, faults
# and kill -9 durability (tests/test_store_file.c), and the interop test with
# the real session-file-store (tests/interop/).
csn_add_unit(store_file ${CMAKE_CURRENT_LIST_DIR}/test_store_file.c)
if(TARGET csn_store_conformance)
  target_link_libraries(store_file PRIVATE csn_store_conformance)
  target_compile_definitions(store_file PRIVATE CSN_HAVE_CONFORMANCE=1)
elseif(EXISTS ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
  target_sources(store_file PRIVATE ${CMAKE_CURRENT_LIST_DIR}/store_conformance.c)
  target_compile_definitions(store_file PRIVATE CSN_HAVE_CONFORMANCE=1)
endif()
set_tests_properties(store_file PROPERTIES TIMEOUT 300)

# Interop with the real Node packages (tests/interop): a C server and an
# express app share the store while one libcurl cookie jar alternates
# between them. The setup test installs the pinned packages (npm ci) when
# they are missing; without node the tests fail rather than skip.
if(TARGET csn_http_harness)
  find_program(CSN_NODE node)
  if(NOT CSN_NODE)
    message(WARNING "node not found: the store interop tests will fail")
    set(CSN_NODE node)
  endif()
  set(_csn_interop ${CMAKE_CURRENT_LIST_DIR}/interop)
  add_test(NAME store_interop_node_setup COMMAND sh ${_csn_interop}/setup.sh)
  set_tests_properties(store_interop_node_setup PROPERTIES
    FIXTURES_SETUP csn_interop_node TIMEOUT 600)

  add_executable(store_file_interop_node ${_csn_interop}/test_interop_node.c)
  target_link_libraries(store_file_interop_node PRIVATE csn_http_harness
                        csn_stores_static PkgConfig::CMOCKA)
  target_include_directories(store_file_interop_node PRIVATE
    ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_LIST_DIR})
  add_test(NAME store_file_interop_node
           COMMAND store_file_interop_node file ${CSN_NODE} ${_csn_interop}/app.js)
  set_tests_properties(store_file_interop_node PROPERTIES
    FIXTURES_REQUIRED csn_interop_node TIMEOUT 120)
endif()

# Spare files (src/stores/file_spare.c): reuse, a reader in another process
# keeps its version, cleanup with the sessions, recycle=0.
csn_add_unit(store_file_spare ${CMAKE_CURRENT_LIST_DIR}/test_store_file_spare.c)
set_tests_properties(store_file_spare PROPERTIES TIMEOUT 120)

# New sessions without a directory fsync where ext4 writes the entry with
# the file (src/stores/file_dirsync.c): the mountinfo parser, the growth
# rule, and the directory fsyncs a store makes, counted.
csn_add_unit(store_file_dirsync ${CMAKE_CURRENT_LIST_DIR}/test_store_file_dirsync.c)
set_tests_properties(store_file_dirsync PROPERTIES TIMEOUT 120)
