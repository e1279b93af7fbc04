/* parallel_shared_array.c: large data with no copy (joblib's memory-mapped arrays, in C).
 *
 *   data = np.random.rand(n)                               # made after the workers exist
 *   sums = Parallel(n_jobs=2)(delayed(np.sum)(chunk) for chunk in np.split(data, 64))
 *
 * The array is allocated with mproc_shared_alloc() after the workers have started; each task receives its
 * chunk as a record of the input array and reads it in place (no copy through a pipe or a file), and its
 * sum lands directly in a shared output array.  A second pass writes into the input in place. */
#include <mproc.h>
#include <stdio.h>

#define CHUNKS 64
#define PER_CHUNK (256 * 1024) /* doubles: 2 MiB per chunk, 128 MiB in all */

static int chunk_sum(const void *arg, size_t len, mproc_task *t) {
  const double *x = arg;
  double s = 0;
  for (size_t i = 0; i < len / sizeof *x; i++) s += x[i];
  return mproc_task_return(t, &s, sizeof s);
}

/* A task that scales its chunk where it lies: the argument is the chunk's address inside the arena. */
static int chunk_scale(const void *arg, size_t len, mproc_task *t) {
  (void)len, (void)t;
  double *x = *(double *const *)arg;
  for (size_t i = 0; i < PER_CHUNK; i++) x[i] *= 2;
  return 0;
}

int main(void) {
  mproc_parallel *par;
  int r = mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2});
  if (r != 0) {
    fprintf(stderr, "parallel: %s\n", mproc_strerror(r));
    return 1;
  }
  void *data_block = NULL, *sums_block = NULL, *where_block = NULL;
  r = mproc_shared_alloc(&data_block, (size_t)CHUNKS * PER_CHUNK * sizeof(double));
  if (r == 0) r = mproc_shared_alloc(&sums_block, CHUNKS * sizeof(double));
  if (r == 0) r = mproc_shared_alloc(&where_block, CHUNKS * sizeof(double *));
  if (r != 0) {
    fprintf(stderr, "mproc_shared_alloc: %s\n", mproc_strerror(r));
    return 1;
  }
  double *data = data_block, *sums = sums_block, **where = where_block;
  double want = 0;
  for (size_t i = 0; i < (size_t)CHUNKS * PER_CHUNK; i++) want += data[i] = (double)(i % 100);

  /* each record of `data` (one chunk) is a task's argument, read in place; results land in `sums` */
  r = mproc_parallel_run(par, chunk_sum, data, CHUNKS, PER_CHUNK * sizeof *data, sums, sizeof *sums, NULL,
                         NULL);
  double total = 0;
  for (int c = 0; c < CHUNKS; c++) total += sums[c];
  printf("sum: %.0f\n", total);

  /* the workers write into the caller's array */
  for (int c = 0; c < CHUNKS; c++) where[c] = data + (size_t)c * PER_CHUNK;
  if (r == 0) r = mproc_parallel_run(par, chunk_scale, where, CHUNKS, sizeof *where, NULL, 0, NULL, NULL);
  double total2 = 0;
  for (size_t i = 0; i < (size_t)CHUNKS * PER_CHUNK; i++) total2 += data[i];
  printf("after scaling in place: %.0f\n", total2);

  mproc_shared_free(where);
  mproc_shared_free(sums);
  mproc_shared_free(data);
  mproc_parallel_destroy(par);
  return r == 0 && total == want && total2 == 2 * want ? 0 : 1;
}
