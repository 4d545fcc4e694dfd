# Test groups. Each area keeps its own fragment (tests/<area>.cmake), so areas
# grow without touching each other. Test names start with their group
# (parity_, store_memory_, http_, ...) so `ctest -R <group>` selects them.
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# csn_add_unit(name src...): a cmocka test linked against the static core.
function(csn_add_unit name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE csn_stores_static PkgConfig::CMOCKA)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
endfunction()

file(GLOB _csn_test_frags CONFIGURE_DEPENDS "${CMAKE_CURRENT_LIST_DIR}/*.cmake")
list(REMOVE_ITEM _csn_test_frags "${CMAKE_CURRENT_LIST_FILE}")
list(SORT _csn_test_frags)
foreach(_frag ${_csn_test_frags})
  include(${_frag})
endforeach()
