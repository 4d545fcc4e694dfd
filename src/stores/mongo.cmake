# MongoDB store (connect-mongo's collection and documents) on libmongoc: its
# own library, so only users who want it link libmongoc. CSN_WITH_MONGO: ON
# requires libmongoc, AUTO (the default) builds the store when pkg-config
# finds it.
set(_csn_mongo OFF)
if(CSN_WITH_MONGO STREQUAL "AUTO")
  pkg_check_modules(MONGOC QUIET IMPORTED_TARGET libmongoc-1.0)
  if(MONGOC_FOUND)
    set(_csn_mongo ON)
  else()
    message(STATUS "csession: libmongoc not found, the MongoDB store is not built")
  endif()
elseif(CSN_WITH_MONGO)
  pkg_check_modules(MONGOC REQUIRED IMPORTED_TARGET libmongoc-1.0)
  set(_csn_mongo ON)
endif()

if(_csn_mongo)
  add_library(csn_store_mongo SHARED ${CMAKE_CURRENT_LIST_DIR}/mongo.c)
  target_link_libraries(csn_store_mongo PUBLIC csn PRIVATE PkgConfig::MONGOC)
  set_target_properties(csn_store_mongo PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${CSN_MAJOR})
  add_library(csn::store_mongo ALIAS csn_store_mongo)

  # Static twin for the tests and for static applications.
  add_library(csn_store_mongo_static STATIC ${CMAKE_CURRENT_LIST_DIR}/mongo.c)
  target_link_libraries(csn_store_mongo_static PUBLIC csn_static PkgConfig::MONGOC)
  set_target_properties(csn_store_mongo_static PROPERTIES OUTPUT_NAME csn_store_mongo)

  list(APPEND CSN_INSTALL_TARGETS csn_store_mongo csn_store_mongo_static)
endif()
