/* test_memory.c: issue 17's memory group: 10^7 items through imap, imap_unordered, Parallel's stream and a
 * fed as_completed, with the resident size flat once the window (or the futures in flight) has filled.  A
 * kept result would take 8 bytes each (80 MB for 10^7) and a kept future about 200: any growth with n shows
 * far above the bounds below. */
#include <sys/resource.h>

#include "mtest.h"
#include "internal.h"

#if defined(__SANITIZE_THREAD__)
#define RSS_SCALE 3 /* shadow memory beside every byte touched */
#elif defined(__SANITIZE_ADDRESS__)
#define RSS_SCALE 40 /* freed blocks wait in ASan's quarantine, up to 256 MB */
#else
#define RSS_SCALE 1
#endif

/* 10^7 in the plain build; a tenth under the sanitizers, which run every item many times slower */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define N_ITEMS 1000000
#else
#define N_ITEMS 10000000
#endif

static long rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static int index_value(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t v = mproc_task_index(t);
  return mproc_task_return(t, &v, sizeof v);
}

static mproc_pool *pool2(void) {
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
  return p;
}

/* Drains a stream of N_ITEMS index values: every index once (their sum), the resident size measured once
 * the window has filled and at the end. */
static void drain_flat(mproc_stream *s) {
  int64_t idx, sum = 0;
  const void *res;
  long filled = 0;
  for (int64_t k = 0; k < N_ITEMS; k++) {
    CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
    int64_t v;
    memcpy(&v, res, sizeof v);
    if (v != idx) CHECK_INT_EQ(v, idx);
    sum += v;
    if (k == 300000) filled = rss_kb(); /* past the largest default window (262144) */
  }
  int64_t n = N_ITEMS;
  CHECK_INT_EQ(sum, n * (n - 1) / 2);
  CHECK_ERR(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
  CHECK_INT_CMP(rss_kb() - filled, <, 8 * 1024 * RSS_SCALE); /* kB */
}

/* imap or imap_unordered over N_ITEMS index values, drained with drain_flat(). */
static void stream_flat(bool unordered) {
  mproc_pool *p = pool2();
  mproc_stream *s;
  CHECK_OK(unordered ? mproc_pool_imap_unordered(p, index_value, NULL, N_ITEMS, 0, sizeof(int64_t), NULL, &s)
                     : mproc_pool_imap(p, index_value, NULL, N_ITEMS, 0, sizeof(int64_t), NULL, &s));
  drain_flat(s);
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}
MTEST_TIMEOUT(imap_memory_is_flat, 300) { stream_flat(false); }
MTEST_TIMEOUT(imap_unordered_memory_is_flat, 300) { stream_flat(true); }

MTEST_TIMEOUT(parallel_stream_memory_is_flat, 300) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2}));
  mproc_stream *s;
  CHECK_OK(mproc_parallel_stream(par, index_value, NULL, N_ITEMS, 0, sizeof(int64_t),
                                 MPROC_RETURN_GENERATOR_UNORDERED, &s));
  drain_flat(s);
  mproc_stream_destroy(s);
  mproc_parallel_destroy(par);
}

/* An as_completed iterator fed as it drains, 256 futures in flight, each released when taken: its slots are
 * reused, so memory stays that of 256 futures.  A future costs a round trip (about 1.5 us here), so this
 * one runs a tenth of N_ITEMS to stay within CI's time. */
MTEST_TIMEOUT(fed_as_completed_memory_is_flat, 300) {
  mproc_pool *p = pool2();
  mproc_as_completed *it;
  CHECK_OK(mproc_as_completed_create(&it, NULL, 0));
  const size_t n = N_ITEMS / 10;
  size_t next = 0;
  int64_t sum = 0;
  long filled = 0;
  for (size_t done = 0; done < n; done++) {
    for (; next < n && next - done < 256; next++) {
      mproc_future *f;
      int64_t x = (int64_t)next;
      CHECK_OK(mproc_pool_submit(p, index_value, &x, sizeof x, NULL, &f));
      CHECK_OK(mproc_as_completed_add(it, f));
    }
    mproc_future *f;
    CHECK_OK(mproc_as_completed_next(it, MPROC_FOREVER, &f));
    CHECK_OK(mproc_future_error(f, 0));
    sum += 1;
    mproc_future_release(f);
    if (done == 10000) filled = rss_kb();
  }
  CHECK_INT_EQ(sum, (int64_t)n);
  CHECK_INT_CMP(rss_kb() - filled, <, 4 * 1024 * RSS_SCALE); /* kB */
  mproc_as_completed_destroy(it);
  mproc_pool_destroy(p);
}
