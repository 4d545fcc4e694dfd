# FileStore encryption (session-file-store's `secret`): format, tampering,
# wrong secrets, the conformance suite on an encrypted store, and files
# exchanged with the real session-file-store through a small Node peer
# (tests/interop/file_crypt_peer.js). Then the browser walk of the store
# interop test, with both servers holding the same store secret.
find_program(CSN_NODE node)
if(NOT CSN_NODE)
  message(WARNING "node not found: the store_file_crypt Node tests will fail")
  set(CSN_NODE node)
endif()
set(_csn_interop ${CMAKE_CURRENT_LIST_DIR}/interop)

add_executable(store_file_crypt ${CMAKE_CURRENT_LIST_DIR}/test_store_file_crypt.c)
target_link_libraries(store_file_crypt PRIVATE csn_store_conformance)
add_test(NAME store_file_crypt
         COMMAND store_file_crypt ${CSN_NODE} ${_csn_interop}/file_crypt_peer.js)
set_tests_properties(store_file_crypt PROPERTIES TIMEOUT 300)
if(TEST store_interop_node_setup)
  set_tests_properties(store_file_crypt PROPERTIES
    FIXTURES_REQUIRED csn_interop_node)
endif()

if(TARGET store_file_interop_node)
  add_test(NAME store_file_crypt_interop_node
           COMMAND store_file_interop_node file-secret ${CSN_NODE}
                   ${_csn_interop}/app.js)
  set_tests_properties(store_file_crypt_interop_node PROPERTIES
    FIXTURES_REQUIRED csn_interop_node TIMEOUT 120)
endif()
