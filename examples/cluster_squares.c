/* cluster_squares.c: one program for one machine and for a cluster (docs/cluster.md).
 *
 *   ./cluster_squares                  worker processes on this machine
 *   mpirun -n 4 ./cluster_squares      rank 0 runs main, the workers run on ranks 1-3
 *
 * The only lines that know of MPI are mproc_init() (under a launcher, the other ranks serve from inside it)
 * and the choice of backend. */
#include <mproc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int square(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int64_t n = *(const int64_t *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

int main(int argc, char **argv) {
  int r = mproc_init(&argc, &argv); /* first thing in main */
  if (r != 0) fprintf(stderr, "mproc_init: %s\n", mproc_strerror(r));
  int mpi = mproc_backend_available("mpi") == 1;
  mproc_pool *pool;
  r = mproc_pool_create(&pool,
                        &(mproc_pool_opts){.backend = mpi ? MPROC_BACKEND_MPI : MPROC_BACKEND_PROCESS});
  if (r != 0) {
    fprintf(stderr, "pool: %s: %s\n", mproc_strerror(r), mproc_last_error_message());
    return 1;
  }
  enum { N = 100000 };
  static int64_t in[N], out[N];
  for (int64_t i = 0; i < N; i++) in[i] = i;
  r = mproc_pool_map(pool, square, in, N, sizeof *in, out, sizeof *out, NULL, NULL);
  int workers = mproc_pool_workers(pool);
  mproc_pool_destroy(pool);
  if (r != 0) {
    fprintf(stderr, "map: %s\n", mproc_strerror(r));
    return 1;
  }
  int64_t sum = 0;
  for (int i = 0; i < N; i++) sum += out[i];
  printf("sum of the squares below %d: %lld (%d workers, %s)\n", N, (long long)sum, workers,
         mpi ? "on the other MPI ranks" : "on this machine");
  return sum == (int64_t)(N - 1) * N * (2 * N - 1) / 6 ? 0 : 1;
}
