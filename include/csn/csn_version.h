/* csn_version.h - the one place the csession version is written.
 * CMake parses these three lines; keep their shape. */
#ifndef CSN_VERSION_H
#define CSN_VERSION_H

#define CSN_VERSION_MAJOR 0
#define CSN_VERSION_MINOR 2
#define CSN_VERSION_PATCH 0

#define CSN_VERSION_HEX \
  ((CSN_VERSION_MAJOR << 16) | (CSN_VERSION_MINOR << 8) | (CSN_VERSION_PATCH))

#define CSN__STR2(x) #x
#define CSN__STR(x) CSN__STR2(x)
#define CSN_VERSION_STRING                                    \
  CSN__STR(CSN_VERSION_MAJOR) "." CSN__STR(CSN_VERSION_MINOR) \
  "." CSN__STR(CSN_VERSION_PATCH)

#endif /* CSN_VERSION_H */
