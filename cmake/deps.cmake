# deps.cmake: the result cache's dependencies, xxHash and zstd, plus libdl for dladdr1.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(MPROC_XXHASH QUIET libxxhash)
  pkg_check_modules(MPROC_ZSTD QUIET libzstd)
endif()
find_path(MPROC_XXHASH_INCLUDE xxhash.h HINTS ${MPROC_XXHASH_INCLUDE_DIRS} REQUIRED)
find_library(MPROC_XXHASH_LIB NAMES xxhash HINTS ${MPROC_XXHASH_LIBRARY_DIRS} REQUIRED)
find_path(MPROC_ZSTD_INCLUDE zstd.h HINTS ${MPROC_ZSTD_INCLUDE_DIRS} REQUIRED)
find_library(MPROC_ZSTD_LIB NAMES zstd HINTS ${MPROC_ZSTD_LIBRARY_DIRS} REQUIRED)

target_include_directories(mproc_objects PRIVATE ${MPROC_XXHASH_INCLUDE} ${MPROC_ZSTD_INCLUDE})
target_link_libraries(mproc PRIVATE ${MPROC_XXHASH_LIB} ${MPROC_ZSTD_LIB} ${CMAKE_DL_LIBS})
# A static archive carries no dependencies: consumers link them, named in the exported target by file name
# (the bare "-l" form survives installing on another machine with the same packages).
target_link_libraries(mproc_static PUBLIC $<BUILD_INTERFACE:${MPROC_XXHASH_LIB}> $<BUILD_INTERFACE:${MPROC_ZSTD_LIB}>
  $<INSTALL_INTERFACE:xxhash> $<INSTALL_INTERFACE:zstd> ${CMAKE_DL_LIBS})

if(PKG_CONFIG_FOUND AND MPROC_XXHASH_FOUND AND MPROC_ZSTD_FOUND)
  string(APPEND MPROC_PC_REQUIRES " libxxhash libzstd")
  string(APPEND MPROC_PC_LIBS_PRIVATE " -ldl")
else()
  string(APPEND MPROC_PC_LIBS_PRIVATE " -lxxhash -lzstd -ldl")
endif()
string(STRIP "${MPROC_PC_REQUIRES}" MPROC_PC_REQUIRES)
