# check.cmake: installs the build in BUILD_DIR into WORK_DIR/prefix, then builds and runs consumer.c against
# it with find_package(mproc) and with pkg-config.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/mproc.h include/mproc/version.h include/mproc/process.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "missing after install: ${f}")
  endif()
endforeach()

# 1. CMake package config
run(${CMAKE_COMMAND} -S ${SRC_DIR} -B ${WORK_DIR}/cmake-build -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_C_COMPILER=${CC} "-DCMAKE_C_FLAGS=${EXTRA_FLAGS}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run(${WORK_DIR}/cmake-build/consumer)

# 2. pkg-config (the library directory may be lib or lib/<multiarch>)
file(GLOB_RECURSE pcs ${prefix}/*/mproc.pc)
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND pkg-config --cflags --libs mproc OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not find mproc in ${pcdir}")
endif()
execute_process(COMMAND pkg-config --variable=libdir mproc OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(flag_list UNIX_COMMAND "${flags}")
run(${CC} ${EXTRA_FLAGS} ${SRC_DIR}/consumer.c -o ${WORK_DIR}/consumer-pc ${flag_list} -Wl,-rpath,${libdir})
run(${WORK_DIR}/consumer-pc)
