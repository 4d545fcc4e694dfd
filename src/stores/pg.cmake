# PostgreSQL store (connect-pg-simple's table) on libpq: its own library, so
# only users who want it link libpq. CSN_WITH_PG: ON requires libpq, AUTO
# (the default) builds the store when pkg-config finds it.
set(_csn_pg OFF)
if(CSN_WITH_PG STREQUAL "AUTO")
  pkg_check_modules(LIBPQ QUIET IMPORTED_TARGET libpq)
  if(LIBPQ_FOUND)
    set(_csn_pg ON)
  else()
    message(STATUS "csession: libpq not found, the PostgreSQL store is not built")
  endif()
elseif(CSN_WITH_PG)
  pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
  set(_csn_pg ON)
endif()

if(_csn_pg)
  add_library(csn_store_pg SHARED ${CMAKE_CURRENT_LIST_DIR}/pg.c)
  target_link_libraries(csn_store_pg PUBLIC csn PRIVATE PkgConfig::LIBPQ)
  set_target_properties(csn_store_pg PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${CSN_MAJOR})
  add_library(csn::store_pg ALIAS csn_store_pg)

  # Static twin for the tests and for static applications.
  add_library(csn_store_pg_static STATIC ${CMAKE_CURRENT_LIST_DIR}/pg.c)
  target_link_libraries(csn_store_pg_static PUBLIC csn_static PkgConfig::LIBPQ)
  set_target_properties(csn_store_pg_static PROPERTIES OUTPUT_NAME csn_store_pg)

  list(APPEND CSN_INSTALL_TARGETS csn_store_pg csn_store_pg_static)
endif()
