# The worked example of a store (examples/store_example.c, docs/STORES.md),
# built and tested the way a store author outside this tree would do it.
#
# It is compiled once, with include/ as its only csession include directory
# (so a private header such as csn_int.h cannot creep in), and the object
# is then linked twice:
#   - csn_store_example: a shared library against the shared libcsn with no
#     undefined symbols allowed, so a call to a hidden csn__ function fails
#     the build: the example needs nothing beyond the public API;
#   - test_store_example: the shared conformance suite (with cas required),
#     the opener's URL errors, the sweeper, allocation failures, and the
#     middleware driven without HTTP on this store
#     (tests/test_store_example.c).
add_library(csn_store_example_objs OBJECT examples/store_example.c)
target_include_directories(csn_store_example_objs PRIVATE
  ${CMAKE_SOURCE_DIR}/include)
# A store library exports its opener, as any library built outside the tree.
set_target_properties(csn_store_example_objs PROPERTIES
  C_VISIBILITY_PRESET default)

add_library(csn_store_example SHARED $<TARGET_OBJECTS:csn_store_example_objs>)
target_link_libraries(csn_store_example PRIVATE csn Threads::Threads)
# Sanitizer runtimes (CSN_SANITIZE, or -fsanitize= in CMAKE_C_FLAGS) leave
# their own symbols undefined in shared libraries: no check there.
if(NOT APPLE AND NOT CSN_SANITIZE AND NOT CMAKE_C_FLAGS MATCHES "sanitize"
   AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  target_link_options(csn_store_example PRIVATE "LINKER:--no-undefined")
endif()

add_executable(test_store_example tests/test_store_example.c
                                  $<TARGET_OBJECTS:csn_store_example_objs>)
target_include_directories(test_store_example PRIVATE
  ${CMAKE_SOURCE_DIR}/examples)
target_link_libraries(test_store_example PRIVATE csn_store_conformance)
foreach(_group conformance conformance_sweeping url errors sweeper e2e oom)
  add_test(NAME store_example_${_group} COMMAND test_store_example ${_group})
endforeach()
