# The encoders' and date formatters' fast paths (SSE2 URI coding, base64 by
# 12-bit pairs, per-thread date caches) against plain reference versions.
csn_add_unit(encode_fast ${CMAKE_CURRENT_LIST_DIR}/test_encode_fast.c)
