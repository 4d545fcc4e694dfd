# Install rules for CSN_INSTALL_TARGETS, and the CMake package that lets an
# application write
#
#   find_package(csession 0.2 REQUIRED COMPONENTS mhd store_redis)
#   target_link_libraries(app PRIVATE csession::mhd csession::store_redis)
#
# Every installed library belongs to a component, named after the library:
#
#   csn, csn_static                        -> csn          (the core)
#   csn_stores, csn_stores_static          -> stores       (csn_stores_register_all)
#   csn_store_<s>, csn_store_<s>_static    -> store_<s>    (sqlite, redis, pg, mongo)
#   csn_<a>, csn_<a>_static                -> <a>          (mhd, ulfius, civetweb)
#
# and is exported as csession::<component> (csession::<component>_static for
# the static twin). Each component has an export set and a targets file of
# its own (csessionTargets-<component>.cmake), so the config file loads only
# the components asked for, and knows which ones this build has: asking for
# a store or an adapter that was not built fails at configure time with a
# message saying so, rather than at link time.
#
# What each component needs from outside (PkgConfig::HIREDIS, OpenSSL::Crypto,
# CivetWeb's library, ...) is read from the targets' link libraries here and
# written into the config file, which recreates those imported targets before
# it includes the component's targets file. A store or adapter added later
# (src/stores/<name>.cmake, src/adapters/<name>.cmake) needs no change here
# as long as its libraries follow the naming above.
#
# The same csession::<name> targets exist in the build tree as ALIASes, so a
# superbuild (add_subdirectory) uses the names an installed package has.

include(CMakePackageConfigHelpers)
set(CSN_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/csession)

# _csn_component_of(target out): the component of an installed library.
function(_csn_component_of tgt out)
  string(REGEX REPLACE "_static$" "" base "${tgt}")
  if(base STREQUAL "csn")
    set(${out} csn PARENT_SCOPE)
  elseif(base MATCHES "^csn_(.+)$")
    set(${out} ${CMAKE_MATCH_1} PARENT_SCOPE)
  else()
    message(FATAL_ERROR "csession: installed library ${tgt} is not named csn_<component>")
  endif()
endfunction()

# Programs are installed as they are; libraries go into their component's
# export set.
set(_csn_pkg_components "")
foreach(_t IN LISTS CSN_INSTALL_TARGETS)
  get_target_property(_type ${_t} TYPE)
  if(_type STREQUAL "EXECUTABLE")
    install(TARGETS ${_t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
    continue()
  endif()
  _csn_component_of(${_t} _comp)
  set(_name ${_comp})
  if(_t MATCHES "_static$")
    set(_name ${_comp}_static)
  endif()
  set_target_properties(${_t} PROPERTIES EXPORT_NAME ${_name})
  add_library(csession::${_name} ALIAS ${_t})
  install(TARGETS ${_t} EXPORT csession-${_comp}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  list(APPEND _csn_pkg_targets_${_comp} ${_t})
  if(NOT _comp IN_LIST _csn_pkg_components)
    list(APPEND _csn_pkg_components ${_comp})
  endif()
endforeach()

# What each component needs: other components (_csn_pkg_needs_<c>) and
# outside dependencies (_csn_pkg_deps_<c>), each written as
#   find|<Package>[|<Component>...]      find_package()
#   pkg|<PREFIX>|<module>...             pkg_check_modules(... IMPORTED_TARGET)
#   imported|<target>                    an imported target made in this
#                                        build (CivetWeb's library), copied
set(_csn_pkg_data "")
set(_csn_pkg_imported "")
foreach(_comp IN LISTS _csn_pkg_components)
  set(_csn_pkg_needs_${_comp} "")
  set(_csn_pkg_deps_${_comp} "")
  foreach(_t IN LISTS _csn_pkg_targets_${_comp})
    get_target_property(_l1 ${_t} LINK_LIBRARIES)
    get_target_property(_l2 ${_t} INTERFACE_LINK_LIBRARIES)
    foreach(_item IN LISTS _l1 _l2)
      set(_spec "")
      # What the build alone uses ($<BUILD_INTERFACE:csn_objs>) is not
      # exported; a static library's private dependency is, as LINK_ONLY.
      if(_item MATCHES "^\\$<BUILD_INTERFACE:" OR _item MATCHES "-NOTFOUND$")
        continue()
      endif()
      if(_item MATCHES "^\\$<LINK_ONLY:(.+)>$")
        set(_item "${CMAKE_MATCH_1}")
      endif()
      if(_item MATCHES "^\\$<" OR NOT TARGET "${_item}")
        continue() # a plain library name such as m: nothing to find
      endif()
      get_target_property(_aliased ${_item} ALIASED_TARGET)
      if(_aliased)
        set(_item ${_aliased})
      endif()
      get_target_property(_imp ${_item} IMPORTED)
      if(NOT _imp)
        if(NOT _item IN_LIST CSN_INSTALL_TARGETS)
          message(FATAL_ERROR "csession: ${_t} links ${_item}, which is not installed; "
                              "wrap it in $<BUILD_INTERFACE:...> if only the build needs it")
        endif()
        _csn_component_of(${_item} _dep)
        if(NOT _dep STREQUAL _comp AND NOT _dep IN_LIST _csn_pkg_needs_${_comp})
          list(APPEND _csn_pkg_needs_${_comp} ${_dep})
        endif()
      elseif(_item MATCHES "^PkgConfig::(.+)$")
        set(_prefix ${CMAKE_MATCH_1})
        # FindPkgConfig keeps each prefix's arguments to notice changes.
        set(_mods "${__pkg_config_arguments_${_prefix}}")
        list(REMOVE_ITEM _mods REQUIRED QUIET IMPORTED_TARGET GLOBAL
                              NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH)
        if(NOT _mods)
          message(FATAL_ERROR "csession: cannot tell the pkg-config modules of ${_item} "
                              "(linked by ${_t}) for the CMake package")
        endif()
        string(JOIN "|" _spec pkg ${_prefix} ${_mods})
      elseif(_item STREQUAL "Threads::Threads")
        set(_spec "find|Threads")
      elseif(_item MATCHES "^OpenSSL::(.+)$")
        set(_spec "find|OpenSSL|${CMAKE_MATCH_1}")
      elseif(NOT _item MATCHES "::")
        # Made by a fragment (CivetWeb has no pkg-config file): the config
        # file makes it again from the same properties.
        set(_spec "imported|${_item}")
        if(NOT _item IN_LIST _csn_pkg_imported)
          list(APPEND _csn_pkg_imported ${_item})
          get_target_property(_itype ${_item} TYPE)
          string(REGEX REPLACE "_LIBRARY$" "" _itype "${_itype}") # UNKNOWN, SHARED...
          string(APPEND _csn_pkg_data "set(_csession_imp_${_item}_TYPE \"${_itype}\")\n")
          foreach(_p IMPORTED_LOCATION INTERFACE_INCLUDE_DIRECTORIES
                     INTERFACE_LINK_LIBRARIES INTERFACE_COMPILE_DEFINITIONS)
            get_target_property(_v ${_item} ${_p})
            if(NOT _v)
              set(_v "")
            endif()
            string(APPEND _csn_pkg_data "set(_csession_imp_${_item}_${_p} \"${_v}\")\n")
          endforeach()
        endif()
      else()
        message(FATAL_ERROR "csession: ${_t} links ${_item}; teach "
                            "cmake/csession_package.cmake how the package finds it")
      endif()
      if(_spec AND NOT _spec IN_LIST _csn_pkg_deps_${_comp})
        list(APPEND _csn_pkg_deps_${_comp} "${_spec}")
      endif()
    endforeach()
  endforeach()
endforeach()

# Load order: a component after the components it needs.
set(_csn_pkg_order "")
set(_csn_pkg_left ${_csn_pkg_components})
while(_csn_pkg_left)
  set(_progress FALSE)
  foreach(_comp IN LISTS _csn_pkg_left)
    set(_ready TRUE)
    foreach(_dep IN LISTS _csn_pkg_needs_${_comp})
      if(NOT _dep IN_LIST _csn_pkg_order)
        set(_ready FALSE)
      endif()
    endforeach()
    if(_ready)
      list(APPEND _csn_pkg_order ${_comp})
      list(REMOVE_ITEM _csn_pkg_left ${_comp})
      set(_progress TRUE)
    endif()
  endforeach()
  if(NOT _progress)
    message(FATAL_ERROR "csession: components depend on each other in a cycle: ${_csn_pkg_left}")
  endif()
endwhile()

string(APPEND _csn_pkg_data "set(_csession_components \"${_csn_pkg_order}\")\n")
foreach(_comp IN LISTS _csn_pkg_order)
  string(APPEND _csn_pkg_data
    "set(_csession_needs_${_comp} \"${_csn_pkg_needs_${_comp}}\")\n"
    "set(_csession_deps_${_comp} \"${_csn_pkg_deps_${_comp}}\")\n")
  install(EXPORT csession-${_comp} NAMESPACE csession::
          FILE csessionTargets-${_comp}.cmake
          DESTINATION ${CSN_CMAKE_INSTALL_DIR})
endforeach()
set(CSN_PKG_DATA "${_csn_pkg_data}")

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/csessionConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/csessionConfig.cmake
  INSTALL_DESTINATION ${CSN_CMAKE_INSTALL_DIR})
# Before 1.0 a minor release may change the API (0.2 changed the store
# interface), so 0.2 is not offered to a project that asked for 0.1, nor
# 0.3 to one that asked for 0.2: SameMinorVersion, not SameMajorVersion,
# which would make every 0.x look compatible with every other.
write_basic_package_version_file(
  ${CMAKE_CURRENT_BINARY_DIR}/csessionConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/csessionConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/csessionConfigVersion.cmake
        DESTINATION ${CSN_CMAKE_INSTALL_DIR})
