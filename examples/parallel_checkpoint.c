/* parallel_checkpoint.c: Parallel + the result cache = checkpoint and resume for free.
 *
 * A long run over 40 items is cut short (item 25 fails, as a power cut or a killed job would end it).
 * The rerun computes only the items that were not finished: the others come from the cache.  Each worker
 * opens the cache in its initializer; the task asks the cache first.  In Python:
 *     f = Memory("cachedir").cache(simulate);  Parallel(n_jobs=2)(delayed(f)(i) for i in range(40))
 * The cache lives in a temporary directory removed at the end. */
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cache_dir[] = "/tmp/mproc-checkpoint-XXXXXX";
static mproc_cache *cache; /* one per worker process */
static int fail_at = -1;   /* the first run's "power cut" */

/* The expensive computation: a stand-in that sums a series. */
static int simulate(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int i = *(const int *)arg;
  double x = 0;
  for (int k = 1; k < 200000; k++) x += 1.0 / ((double)k * (k + i));
  return mproc_task_return(t, &x, sizeof x);
}

struct answer {
  double value;
  int from_cache;
};

/* What the pool runs: the cache first, the computation on a miss. */
static int cached_simulate(const void *arg, size_t len, mproc_task *t) {
  if (*(const int *)arg == fail_at) return mproc_task_fail(t, MPROC_EINTR, "the run was cut short here");
  mproc_cache_result *r;
  int rc = mproc_cache_call(cache, simulate, arg, len, &r);
  if (rc != 0) {
    mproc_cache_result_release(r);
    return mproc_task_fail(t, rc, "simulate failed");
  }
  struct answer a = {0, mproc_cache_result_hit(r)};
  memcpy(&a.value, mproc_cache_result_data(r), sizeof a.value);
  mproc_cache_result_release(r);
  return mproc_task_return(t, &a, sizeof a);
}

static int open_cache(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  return mproc_cache_open(&cache, cache_dir, NULL);
}

static int run(const char *title) {
  int items[40];
  struct answer out[40];
  int codes[40];
  for (int i = 0; i < 40; i++) items[i] = i;
  mproc_parallel *par;
  /* a new pool for each run: its workers see fail_at as it is now */
  int r = mproc_parallel_create(
      &par, &(mproc_parallel_opts){.n_jobs = 2, .initializer = open_cache, .batch_size = 1});
  if (r != 0) return r;
  mproc_map_report rep;
  r = mproc_parallel_run(par, cached_simulate, items, 40, sizeof *items, out, sizeof *out, codes, &rep);
  mproc_parallel_destroy(par);
  int computed = 0, cached = 0;
  for (int i = 0; i < 40; i++)
    if (codes[i] == 0) out[i].from_cache ? cached++ : computed++;
  printf("%s: %d computed, %d from the cache, %zu failed, %zu not run", title, computed, cached, rep.failed,
         rep.cancelled);
  if (r != 0) printf(" (stopped at item %lld: %s)", (long long)rep.first_failed_index, rep.message);
  printf("\n");
  return r;
}

int main(void) {
  if (!mkdtemp(cache_dir)) return 1;
  fail_at = 25;
  run("first run, cut short");
  fail_at = -1;
  int r = run("rerun");
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
  if (system(cmd) != 0) return 1;
  return r == 0 ? 0 : 1;
}
