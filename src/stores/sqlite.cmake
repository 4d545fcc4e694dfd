# SQLite store (connect-sqlite3's table): its own library, so only users who
# want it link libsqlite3.
if(CSN_WITH_SQLITE)
  pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)

  add_library(csn_store_sqlite SHARED ${CMAKE_CURRENT_LIST_DIR}/sqlite.c)
  target_link_libraries(csn_store_sqlite PUBLIC csn PRIVATE PkgConfig::SQLITE3)
  set_target_properties(csn_store_sqlite PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${CSN_MAJOR})
  add_library(csn::store_sqlite ALIAS csn_store_sqlite)

  # Static twin for the tests and for static applications.
  add_library(csn_store_sqlite_static STATIC ${CMAKE_CURRENT_LIST_DIR}/sqlite.c)
  target_link_libraries(csn_store_sqlite_static PUBLIC csn_static PkgConfig::SQLITE3)
  set_target_properties(csn_store_sqlite_static PROPERTIES OUTPUT_NAME csn_store_sqlite)

  list(APPEND CSN_INSTALL_TARGETS csn_store_sqlite csn_store_sqlite_static)
endif()
