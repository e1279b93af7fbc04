# cache_fixtures.cmake: three builds of one function for test_cache's code-change tests, each as
# <variant>/libcachefn.so (same file name, so the same function identity): v1, v1c (comments edited),
# v2 (code edited).  Linked with the shared libmproc for mproc_task_return's slow path.
foreach(v v1 v1c v2)
  add_library(cachefn_${v} SHARED ${CMAKE_CURRENT_SOURCE_DIR}/cachefn/${v}.c)
  target_link_libraries(cachefn_${v} PRIVATE mproc)
  # Their machine code must differ only where the source does: sanitizer instrumentation refers to data
  # holding file names and lines, which a comment-only edit moves.
  target_compile_options(cachefn_${v} PRIVATE -fno-sanitize=all)
  set_target_properties(cachefn_${v} PROPERTIES OUTPUT_NAME cachefn NO_SONAME ON
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/cachefn/${v})
  if(TARGET test_cache)
    add_dependencies(test_cache cachefn_${v})
  endif()
endforeach()
if(TARGET test_cache)
  target_compile_definitions(test_cache PRIVATE CACHEFN_DIR="${CMAKE_CURRENT_BINARY_DIR}/cachefn")
endif()
