/* pool_map_squares.c: the tutorial's Pool.map example, in C.
 *
 *   with multiprocessing.Pool() as pool:
 *       results = pool.map(task, range(1, 6))   # [1, 4, 9, 16, 25]
 */
#include <mproc.h>
#include <stdio.h>

static int task(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

int main(void) {
  mproc_pool *pool;
  int r = mproc_pool_create(&pool, NULL); /* workers: MPROC_WORKERS, else the usable CPUs */
  if (r != 0) {
    fprintf(stderr, "pool: %s\n", mproc_strerror(r));
    return 1;
  }
  int in[5] = {1, 2, 3, 4, 5}, out[5];
  r = mproc_pool_map(pool, task, in, 5, sizeof *in, out, sizeof *out, NULL, NULL);
  mproc_pool_destroy(pool);
  if (r != 0) {
    fprintf(stderr, "map: %s\n", mproc_strerror(r));
    return 1;
  }
  printf("[%d, %d, %d, %d, %d]\n", out[0], out[1], out[2], out[3], out[4]);
  return out[4] == 25 ? 0 : 1;
}
