/* parallel_squares.c: the tutorial's joblib example, in C.
 *
 *   results = Parallel(n_jobs=4)(delayed(task)(i) for i in range(1, 11))
 */
#include <mproc.h>
#include <stdio.h>

static int task(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

int main(void) {
  int in[10], out[10];
  for (int i = 0; i < 10; i++) in[i] = i + 1;
  int r = mproc_parallel_call(task, in, 10, sizeof *in, out, sizeof *out, &(mproc_parallel_opts){.n_jobs = 4},
                              NULL);
  if (r != 0) {
    fprintf(stderr, "parallel: %s\n", mproc_strerror(r));
    return 1;
  }
  printf("[");
  for (int i = 0; i < 10; i++) printf("%d%s", out[i], i < 9 ? ", " : "]\n");
  return out[9] == 100 ? 0 : 1;
}
