# Redis store (connect-redis's keys and values) on hiredis: its own library,
# so only users who want it link hiredis. CSN_WITH_REDIS: ON requires
# hiredis, AUTO (the default) builds the store when pkg-config finds it.
set(_csn_redis OFF)
if(CSN_WITH_REDIS STREQUAL "AUTO")
  pkg_check_modules(HIREDIS QUIET IMPORTED_TARGET hiredis)
  if(HIREDIS_FOUND)
    set(_csn_redis ON)
  else()
    message(STATUS "csession: hiredis not found, the Redis store is not built")
  endif()
elseif(CSN_WITH_REDIS)
  pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
  set(_csn_redis ON)
endif()

if(_csn_redis)
  add_library(csn_store_redis SHARED ${CMAKE_CURRENT_LIST_DIR}/redis.c)
  target_link_libraries(csn_store_redis PUBLIC csn PRIVATE PkgConfig::HIREDIS)
  set_target_properties(csn_store_redis PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${CSN_MAJOR})
  add_library(csn::store_redis ALIAS csn_store_redis)

  # Static twin for the tests and for static applications.
  add_library(csn_store_redis_static STATIC ${CMAKE_CURRENT_LIST_DIR}/redis.c)
  target_link_libraries(csn_store_redis_static PUBLIC csn_static PkgConfig::HIREDIS)
  set_target_properties(csn_store_redis_static PROPERTIES OUTPUT_NAME csn_store_redis)

  list(APPEND CSN_INSTALL_TARGETS csn_store_redis csn_store_redis_static)
endif()
