# Interop with the real cookie-signature 1.0.7 from npm (tests/node).
# The test command runs `npm ci` in tests/node first; without node or
# without node_modules the test fails rather than skips.
add_executable(test_node_sign_tool ${CMAKE_CURRENT_LIST_DIR}/test_node_sign_tool.c)
target_link_libraries(test_node_sign_tool PRIVATE csn_stores_static)
target_include_directories(test_node_sign_tool PRIVATE ${CMAKE_SOURCE_DIR}/src)

find_program(CSN_NODE node)
if(CSN_NODE)
  add_test(NAME node_cookie_signature
           COMMAND ${CSN_NODE} ${CMAKE_CURRENT_LIST_DIR}/node/interop_signature.js
                   $<TARGET_FILE:test_node_sign_tool>
           WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/node)
else()
  message(WARNING "node not found: node_cookie_signature will fail")
  add_test(NAME node_cookie_signature COMMAND ${CMAKE_COMMAND} -E false)
endif()

# The Cookie header scanner against cookie@0.7.2's parse().
if(CSN_NODE)
  add_test(NAME node_cookie_parse
           COMMAND ${CSN_NODE} ${CMAKE_CURRENT_LIST_DIR}/node/interop_cookie_parse.js
                   $<TARGET_FILE:test_node_sign_tool>
           WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR}/node)
else()
  add_test(NAME node_cookie_parse COMMAND ${CMAKE_COMMAND} -E false)
endif()
