/* cache_demo.c: joblib.Memory in C: a rerun skips the items already computed.
 *
 *   memory = Memory("cachedir"); f = memory.cache(slow_square)
 *   [f(i) for i in range(5)]     # first run: computes 0..4
 *   [f(i) for i in range(10)]    # rerun, extended: 0..4 come from the cache, 5..9 are computed
 *
 * The cache lives in a temporary directory removed at the end; pass a directory to keep it between runs
 * (run twice: the second run computes nothing). */
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int computed;

static int slow_square(const void *arg, size_t len, mproc_task *t) {
  long n;
  if (len != sizeof n) return mproc_task_fail(t, MPROC_EINVAL, "want a long");
  memcpy(&n, arg, sizeof n);
  computed++;
  long sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static int run(mproc_cache *c, long items) {
  for (long i = 0; i < items; i++) {
    mproc_cache_result *r;
    int rc = mproc_cache_call(c, slow_square, &i, sizeof i, &r);
    if (rc < 0) {
      fprintf(stderr, "item %ld: %s\n", i, mproc_strerror(rc));
      mproc_cache_result_release(r);
      return rc;
    }
    long sq;
    memcpy(&sq, mproc_cache_result_data(r), sizeof sq);
    printf("  %ld -> %ld (%s)\n", i, sq, mproc_cache_result_hit(r) ? "cached" : "computed");
    if (mproc_cache_result_store_error(r))
      printf("  (not stored: %s)\n", mproc_strerror(mproc_cache_result_store_error(r)));
    mproc_cache_result_release(r);
  }
  return 0;
}

int main(int argc, char **argv) {
  char tmp[] = "/tmp/mproc_cache_demo.XXXXXX";
  const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
  if (!dir) return 1;
  mproc_cache *c;
  int rc = mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = 0});
  if (rc < 0) {
    fprintf(stderr, "cache %s: %s\n", dir, mproc_strerror(rc));
    return 1;
  }
  printf("first run:\n");
  if (run(c, 5) < 0) return 1;
  printf("rerun with more items:\n");
  if (run(c, 10) < 0) return 1;
  mproc_cache_stats s;
  mproc_cache_get_stats(c, &s);
  printf("hits %llu, misses %llu, computed %d\n", (unsigned long long)s.hits, (unsigned long long)s.misses,
         computed);
  int ok = argc > 1 || (s.hits == 5 && computed == 10);
  if (argc <= 1) {
    mproc_cache_clear(c);
    rmdir(dir);
  }
  mproc_cache_close(c);
  return ok ? 0 : 1;
}
