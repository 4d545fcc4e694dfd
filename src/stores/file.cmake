# FileStore (session-file-store layout): part of the core library, since it
# needs nothing beyond POSIX and jansson.
target_sources(csn_objs PRIVATE ${CMAKE_CURRENT_LIST_DIR}/file.c)
