/* mpi_cluster_lib.c: a small shared library for the MPI backend's build-id test (tests/mpi.cmake builds it
 * twice, in liba/ and libb/, with other bytes: other build-ids) and a task that lives in it. */
#include <errno.h>
#include <stddef.h>

#ifndef MPI_CLUSTER_LIB_CODE
#define MPI_CLUSTER_LIB_CODE EDOM
#endif

typedef struct mproc_task mproc_task;
int mpi_cluster_lib_task(const void *arg, size_t len, mproc_task *t);

/* Fails with -MPI_CLUSTER_LIB_CODE: which build ran it, with no call back into mproc (the executable does
 * not export its symbols to libraries). */
int mpi_cluster_lib_task(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  return -MPI_CLUSTER_LIB_CODE;
}
