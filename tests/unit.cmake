# Core primitives: alloc/buf, encoders, crypto, dates, cookies.
csn_add_unit(unit_alloc ${CMAKE_CURRENT_LIST_DIR}/test_unit_alloc.c)
csn_add_unit(unit_crypto ${CMAKE_CURRENT_LIST_DIR}/test_unit_crypto.c)
csn_add_unit(unit_encode ${CMAKE_CURRENT_LIST_DIR}/test_unit_encode.c)
csn_add_unit(unit_time ${CMAKE_CURRENT_LIST_DIR}/test_unit_time.c)
csn_add_unit(unit_cookie ${CMAKE_CURRENT_LIST_DIR}/test_unit_cookie.c)
csn_add_unit(unit_json ${CMAKE_CURRENT_LIST_DIR}/test_unit_json.c)
csn_add_unit(unit_store_kit ${CMAKE_CURRENT_LIST_DIR}/test_unit_store_kit.c)
csn_add_unit(unit_log ${CMAKE_CURRENT_LIST_DIR}/test_unit_log.c)
