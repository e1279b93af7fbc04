/* mpi_raw.c: the "mpi-raw" anchor: a master/worker farm written directly on MPI.  Rank 0 hands out item
 * indices (two in flight per worker; one at a time for the roundtrip workload), ranks 1..W run them and
 * send the result back.  Started as `mpirun -n W+1 bench_mpi_raw WORKLOAD mpi-raw key=value...`; the timed
 * part excludes mpirun and MPI_Init.  Contract: bench_common.h. */
#include <mpi.h>

#include "bench_common.h"

enum { TAG_TASK = 1, TAG_STOP = 2, TAG_RESULT = 3 };

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *wl = argc > 1 ? argv[1] : "";
  int tiny = strcmp(wl, "tiny") == 0 || strcmp(wl, "roundtrip") == 0;
  int compute = strcmp(wl, "compute") == 0, irregular = strcmp(wl, "irregular") == 0;
  if ((!tiny && !compute && !irregular) || size < 2) {
    MPI_Finalize();
    return 3;
  }
  size_t n = (size_t)bench_arg(argc, argv, "n", 1000);
  double us = bench_arg(argc, argv, "us", 1000);
  double rate = bench_calibrate();
  double *dur = irregular ? bench_pareto(n, us, (uint64_t)bench_arg(argc, argv, "seed", 42)) : NULL;
  if (rank != 0) {
    for (;;) {
      int64_t i;
      MPI_Status st;
      MPI_Recv(&i, 1, MPI_INT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
      if (st.MPI_TAG == TAG_STOP) break;
      int64_t r = i * i;
      if (!tiny) {
        volatile uint64_t sink = bench_spin((uint64_t)((compute ? us : dur[i]) * rate), (uint64_t)i);
        (void)sink;
        r = i;
      }
      MPI_Send(&r, 1, MPI_INT64_T, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
  }
  int workers = size - 1;
  size_t inflight = strcmp(wl, "roundtrip") == 0 ? 1 : 2 * (size_t)workers;
  size_t sent = 0, got = 0;
  uint64_t sum = 0;
  double t0 = bench_now();
  for (; sent < n && sent < inflight; sent++) {
    int64_t i = (int64_t)sent;
    MPI_Send(&i, 1, MPI_INT64_T, 1 + (int)(sent % (size_t)workers), TAG_TASK, MPI_COMM_WORLD);
  }
  while (got < n) {
    int64_t r;
    MPI_Status st;
    MPI_Recv(&r, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &st);
    sum += (uint64_t)r;
    got++;
    if (sent < n) {
      int64_t i = (int64_t)sent++;
      MPI_Send(&i, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_TASK, MPI_COMM_WORLD);
    }
  }
  double dt = bench_now() - t0;
  for (int w = 1; w <= workers; w++) {
    int64_t stop = -1;
    MPI_Send(&stop, 1, MPI_INT64_T, w, TAG_STOP, MPI_COMM_WORLD);
  }
  bench_report(dt, sum, NULL);
  MPI_Finalize();
  return 0;
}
