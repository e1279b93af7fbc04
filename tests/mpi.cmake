# mpi.cmake: the MPI backend's tests (ctest label mpi): mpi_cluster.c without a launcher (the MPI backend
# refused with a clear message, the local one works), and, when the backend is built, under mpirun with 3 and
# 4 ranks (oversubscribed: more ranks than cores), each followed by a check that no process of the job is left.
add_executable(mpi_cluster mpi_cluster.c)
target_link_libraries(mpi_cluster PRIVATE mproc_static m)
target_compile_options(mpi_cluster PRIVATE ${MPROC_WARNINGS} -Wno-missing-prototypes)
target_compile_definitions(mpi_cluster PRIVATE _GNU_SOURCE)
target_link_libraries(mpi_cluster PRIVATE ${CMAKE_DL_LIBS})
add_test(NAME mpi_cluster_local COMMAND mpi_cluster)
set_tests_properties(mpi_cluster_local PROPERTIES LABELS mpi TIMEOUT 120)
if(MPROC_HAVE_MPI AND MPIEXEC_EXECUTABLE)
  # Open MPI's mpirun refuses more ranks than cores without --oversubscribe (MPICH's has no such flag)
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE mpiexec_version ERROR_QUIET)
  set(oversubscribe "")
  if(mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(oversubscribe --oversubscribe)
  endif()
  # mpirun refuses root without the first two (CI runs as root).  Under the sanitizers, the leaks Open MPI
  # leaves at MPI_Finalize are suppressed by name (its components kept loaded, full stacks), mproc's checked.
  set(mpi_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
      "OMPI_MCA_mca_base_component_disable_dlclose=1"
      "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/lsan-mpi.supp:print_suppressions=0")
  if(MPROC_SANITIZE)
    list(APPEND mpi_env "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0")
  endif()
  foreach(n 3 4)
    add_test(NAME mpi_cluster_${n}
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh mpi_cluster ${MPIEXEC_EXECUTABLE} ${oversubscribe}
              ${MPIEXEC_NUMPROC_FLAG} ${n} ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_cluster> ${MPIEXEC_POSTFLAGS} ${n})
    # the check after the job looks for any mpi_cluster process, so the jobs run one at a time
    set_tests_properties(mpi_cluster_${n} PROPERTIES LABELS mpi TIMEOUT 300 RESOURCE_LOCK mpi_cluster
      ENVIRONMENT "${mpi_env}")
  endforeach()
  # ranks 1 and 2 run another build of the program (same name, other build-id): refused before any task
  add_executable(mpi_cluster_other mpi_cluster.c)
  target_link_libraries(mpi_cluster_other PRIVATE mproc_static m)
  target_compile_options(mpi_cluster_other PRIVATE ${MPROC_WARNINGS} -Wno-missing-prototypes)
  target_compile_definitions(mpi_cluster_other PRIVATE _GNU_SOURCE MPI_CLUSTER_OTHER)
  set_target_properties(mpi_cluster_other PROPERTIES OUTPUT_NAME mpi_cluster
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/other)
  add_test(NAME mpi_cluster_mismatch
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh --expect-fail "not rank 0's program" mpi_cluster
            ${MPIEXEC_EXECUTABLE} ${oversubscribe} ${MPIEXEC_NUMPROC_FLAG} 1 ${MPIEXEC_PREFLAGS}
            $<TARGET_FILE:mpi_cluster> 3 mismatch : ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mpi_cluster_other> 3 mismatch)
  set_tests_properties(mpi_cluster_mismatch PROPERTIES LABELS mpi TIMEOUT 120 RESOURCE_LOCK mpi_cluster
    ENVIRONMENT "${mpi_env}")
  # a library built twice (other bytes, other build-ids), in liba/ and libb/, loaded by the program before
  # mproc_init() from LD_LIBRARY_PATH: every rank with liba runs a task that lives in it; agents with libb
  # are refused, naming the file
  foreach(v a b)
    add_library(mpi_cluster_lib_${v} SHARED mpi_cluster_lib.c)
    target_compile_options(mpi_cluster_lib_${v} PRIVATE ${MPROC_WARNINGS})
    set_target_properties(mpi_cluster_lib_${v} PROPERTIES OUTPUT_NAME mpi_cluster_lib
      LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/lib${v})
    add_dependencies(mpi_cluster mpi_cluster_lib_${v})
  endforeach()
  target_compile_definitions(mpi_cluster_lib_b PRIVATE MPI_CLUSTER_LIB_CODE=ERANGE)
  set(lib_a "LD_LIBRARY_PATH=${CMAKE_CURRENT_BINARY_DIR}/liba")
  set(lib_b "LD_LIBRARY_PATH=${CMAKE_CURRENT_BINARY_DIR}/libb")
  add_test(NAME mpi_cluster_library
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh mpi_cluster ${MPIEXEC_EXECUTABLE} ${oversubscribe}
            ${MPIEXEC_NUMPROC_FLAG} 3 ${MPIEXEC_PREFLAGS} env ${lib_a} $<TARGET_FILE:mpi_cluster> 3 lib)
  set_tests_properties(mpi_cluster_library PROPERTIES LABELS mpi TIMEOUT 120 RESOURCE_LOCK mpi_cluster
    ENVIRONMENT "${mpi_env}")
  add_test(NAME mpi_cluster_library_mismatch
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh --expect-fail
            "loads the library [^ ]*/libb/libmpi_cluster_lib.so, build-id [0-9a-f]+, not the one rank 0 loads \\([^ ]*/liba/libmpi_cluster_lib.so"
            mpi_cluster ${MPIEXEC_EXECUTABLE} ${oversubscribe} ${MPIEXEC_NUMPROC_FLAG} 1 ${MPIEXEC_PREFLAGS}
            env ${lib_a} MPI_CLUSTER_EXPECT=refused $<TARGET_FILE:mpi_cluster> 3 lib
            : ${MPIEXEC_NUMPROC_FLAG} 2 env ${lib_b} $<TARGET_FILE:mpi_cluster> 3 lib)
  set_tests_properties(mpi_cluster_library_mismatch PROPERTIES LABELS mpi TIMEOUT 120 RESOURCE_LOCK mpi_cluster
    ENVIRONMENT "${mpi_env}")
  # a rank SIGKILLed mid-map (mpirun ends the job), one SIGSTOPped (the master ends it after its silence)
  if(oversubscribe)
    foreach(how kill stop)
      set(expect "exited on signal 9|killed")
      if(how STREQUAL stop)
        set(expect "has not been heard from")
      endif()
      add_test(NAME mpi_cluster_rank_${how}
        COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh --expect-fail "${expect}" mpi_cluster
                ${MPIEXEC_EXECUTABLE} ${oversubscribe} ${MPIEXEC_NUMPROC_FLAG} 3 ${MPIEXEC_PREFLAGS}
                $<TARGET_FILE:mpi_cluster> ${MPIEXEC_POSTFLAGS} 3 ${how})
      set_tests_properties(mpi_cluster_rank_${how} PROPERTIES LABELS mpi TIMEOUT 120 RESOURCE_LOCK mpi_cluster
        ENVIRONMENT "${mpi_env}")
    endforeach()
  endif()
  # Ctrl-C: SIGINT to the master and an agent (as srun sends it to every task) ends the map with
  # MPROC_EINTERRUPTED and the pool goes on; SIGINT to mpirun (the terminal's Ctrl-C) ends the job at once
  # (Open MPI's mpirun kills every rank; it cannot forward SIGINT)
  if(oversubscribe)
    add_test(NAME mpi_cluster_sigint
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh mpi_cluster ${MPIEXEC_EXECUTABLE} ${oversubscribe}
              ${MPIEXEC_NUMPROC_FLAG} 3 ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_cluster> ${MPIEXEC_POSTFLAGS} 3 sigint)
    add_test(NAME mpi_cluster_sigint_mpirun
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh --expect-fail "" mpi_cluster ${MPIEXEC_EXECUTABLE}
              ${oversubscribe} ${MPIEXEC_NUMPROC_FLAG} 3 ${MPIEXEC_PREFLAGS} $<TARGET_FILE:mpi_cluster>
              ${MPIEXEC_POSTFLAGS} 3 sigint_mpirun)
    set_tests_properties(mpi_cluster_sigint mpi_cluster_sigint_mpirun PROPERTIES LABELS mpi TIMEOUT 120
      RESOURCE_LOCK mpi_cluster ENVIRONMENT "${mpi_env}")
  endif()
  # the result cache when a rank is lost: a map through a cache killed half way (a rank SIGKILLed), then run
  # again (cache_resume); a rank SIGSTOPped: the tasks running elsewhere store their entries (cache_stop)
  if(oversubscribe)
    foreach(how kill stop)
      set(name resume)
      if(how STREQUAL stop)
        set(name stop)
      endif()
      add_test(NAME mpi_cluster_cache_${name}
        COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_cache_resume.sh ${how} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh
                ${MPIEXEC_EXECUTABLE} ${oversubscribe} ${MPIEXEC_NUMPROC_FLAG} 3 ${MPIEXEC_PREFLAGS}
                $<TARGET_FILE:mpi_cluster> ${MPIEXEC_POSTFLAGS} 3)
      set_tests_properties(mpi_cluster_cache_${name} PROPERTIES LABELS mpi TIMEOUT 180
        RESOURCE_LOCK mpi_cluster ENVIRONMENT "${mpi_env}")
    endforeach()
  endif()
  # the example that runs unchanged with and without mpirun (examples/CMakeLists.txt runs it without)
  if(MPROC_BUILD_EXAMPLES)
    add_test(NAME example_cluster_squares_mpi
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh cluster_squares ${MPIEXEC_EXECUTABLE} ${oversubscribe}
              ${MPIEXEC_NUMPROC_FLAG} 4 ${MPIEXEC_PREFLAGS} $<TARGET_FILE:cluster_squares> ${MPIEXEC_POSTFLAGS})
    set_tests_properties(example_cluster_squares_mpi PROPERTIES LABELS mpi TIMEOUT 120 ENVIRONMENT "${mpi_env}"
      PASS_REGULAR_EXPRESSION "on the other MPI ranks" FAIL_REGULAR_EXPRESSION "mpi_run: processes left")
  endif()
  set_tests_properties(mpi_cluster_local PROPERTIES RESOURCE_LOCK mpi_cluster)
endif()
