/* demo.c: the main demonstration of mproc (the README's first command runs it).
 *
 * 1. Pool.map of the tutorial: squares of 1..5.
 * 2. A crash and a hang among good tasks: only those two fail, named with their signal and timeout, and
 *    the pool goes on (Python's Pool would hang, ProcessPoolExecutor would break).
 * 3. Futures with as_completed.
 * 4. joblib-style Parallel over 2 million items with automatic batching and a progress line. */
#include <mproc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int square(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* -1 crashes, -2 hangs, anything else is squared */
static int fragile(const void *arg, size_t len, mproc_task *t) {
  int n = *(const int *)arg;
  if (n == -1) raise(SIGSEGV);
  if (n == -2)
    for (;;) pause();
  return square(arg, len, t);
}

static int index_cube(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t i = mproc_task_index(t), c = i * i * i;
  return mproc_task_return(t, &c, sizeof c);
}

static int fail(const char *what, int r) {
  fprintf(stderr, "%s: %s\n", what, mproc_strerror(r));
  return 1;
}

int main(void) {
  mproc_pool *pool;
  int r = mproc_pool_create(&pool, &(mproc_pool_opts){.task_timeout = 0.5});
  if (r) return fail("pool", r);
  printf("pool of %d workers\n", mproc_pool_workers(pool));

  int in[5] = {1, 2, 3, 4, 5}, out[5];
  if ((r = mproc_pool_map(pool, square, in, 5, sizeof *in, out, sizeof *out, NULL, NULL)))
    return fail("map", r);
  printf("1. map(square, 1..5) = [%d, %d, %d, %d, %d]\n", out[0], out[1], out[2], out[3], out[4]);

  int items[8] = {1, 2, -1, 4, -2, 6, 7, 8}, res[8], codes[8];
  mproc_map_report rep;
  mproc_pool_map(pool, fragile, items, 8, sizeof *items, res, sizeof *res,
                 &(mproc_map_opts){.on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .chunk_size = 1},
                 &rep);
  printf("2. 8 tasks, one segfaults and one hangs: %zu ok, %zu failed; the first failure, item %lld: %s\n",
         rep.ok, rep.failed, (long long)rep.first_failed_index, rep.first_failure.message);
  for (int i = 0; i < 8; i++) {
    if (codes[i] == 0) {
      printf("   item %d: %d\n", i, res[i]);
    } else {
      printf("   item %d: %s (%s)\n", i, mproc_err_name(codes[i]), mproc_strerror(codes[i]));
    }
  }

  mproc_future *fs[5];
  for (int i = 0; i < 5; i++) mproc_pool_submit(pool, square, &in[i], sizeof in[i], NULL, &fs[i]);
  mproc_as_completed *it;
  mproc_as_completed_create(&it, fs, 5);
  mproc_future *f;
  printf("3. as_completed:");
  while (mproc_as_completed_next(it, MPROC_FOREVER, &f) == 0) {
    const void *data;
    if (mproc_future_result(f, 0, &data, NULL) == 0) printf(" %d", *(const int *)data);
  }
  printf("\n");
  mproc_as_completed_destroy(it);
  for (int i = 0; i < 5; i++) mproc_future_release(fs[i]);
  mproc_pool_destroy(pool);

  static int64_t cubes[2000000];
  printf("4. Parallel(n_jobs=-1) over 2,000,000 items:\n");
  fflush(stdout);
  r = mproc_parallel_call(index_cube, NULL, 2000000, 0, cubes, sizeof *cubes,
                          &(mproc_parallel_opts){.n_jobs = -1, .verbose = 1}, &rep);
  if (r) return fail("parallel", r);
  printf("   cubes[1999999] = %lld, in %zu batches\n", (long long)cubes[1999999], rep.batches);
  fflush(stdout);
  mproc_parallel_shutdown();
  return 0;
}
