# Compiles each public header alone, as the first and only include of a file, with -Wall -Wextra -Werror:
# as C17 with CC, and as C++17 with CXX when one was found (the headers carry extern "C" guards).  A header
# that leans on another without including it fails here.  Run by ctest (public_headers_alone) with
# -DSRC_DIR (the source tree), -DBUILD_DIR (holding the generated include/mproc/version.h), -DWORK_DIR,
# -DCC and optionally -DCXX.
file(GLOB headers RELATIVE ${SRC_DIR}/include ${SRC_DIR}/include/mproc.h ${SRC_DIR}/include/mproc/*.h)
list(APPEND headers mproc/version.h)
file(MAKE_DIRECTORY ${WORK_DIR})
set(failed "")
foreach(h ${headers})
  string(MAKE_C_IDENTIFIER ${h} id)
  set(src ${WORK_DIR}/${id}.c)
  file(WRITE ${src} "#include <${h}>\nint mproc_header_check_${id}(void);\nint mproc_header_check_${id}(void) { return 0; }\n")
  set(langs "C")
  if(CXX)
    list(APPEND langs "CXX")
  endif()
  foreach(lang ${langs})
    if(lang STREQUAL "C")
      set(cmd ${CC} -std=c17 -x c)
    else()
      set(cmd ${CXX} -std=c++17 -x c++)
    endif()
    execute_process(
      COMMAND ${cmd} -Wall -Wextra -Wpedantic -Werror -I${SRC_DIR}/include -I${BUILD_DIR}/include -fsyntax-only
              ${src}
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
      message("${h} (${lang}) does not compile alone:\n${out}")
      list(APPEND failed "${h} (${lang})")
    endif()
  endforeach()
endforeach()
list(LENGTH headers n)
if(failed)
  message(FATAL_ERROR "public headers that do not compile alone: ${failed}")
endif()
message(STATUS "${n} public headers compile alone (${langs})")
