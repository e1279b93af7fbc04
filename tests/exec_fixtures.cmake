# exec_fixtures.cmake: libexecfn.so, a task function that test_exec opens with dlopen after its exec pool
# started (the workers then load it by path).  Linked with the shared libmproc for mproc_task_return.
add_library(execfn SHARED ${CMAKE_CURRENT_SOURCE_DIR}/execfn/execfn.c)
target_link_libraries(execfn PRIVATE mproc)
target_compile_options(execfn PRIVATE ${MPROC_WARNINGS})
set_target_properties(execfn PROPERTIES NO_SONAME ON LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/execfn)
if(TARGET test_exec)
  add_dependencies(test_exec execfn)
  target_compile_definitions(test_exec PRIVATE EXECFN_PATH="$<TARGET_FILE:execfn>")
endif()
