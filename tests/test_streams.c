/* test_streams.c: imap and imap_unordered on every backend: order, bounded memory, faults and timeouts. */
#include <sys/resource.h>

#include "mtest.h"
#include "internal.h"
#include "pool_tasks.h"

/* stream.c (face.h, which would bring the engine's names into this file) */
size_t mproc__stream_batches(const mproc_stream *s);

static void streams(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 5000 };
  static int in[N];
  for (int i = 0; i < N; i++) in[i] = i;
  /* ordered: every index in order, results right; failures come at their place and the stream goes on */
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, fail_on_multiples_of_7, in, N, sizeof *in, sizeof(int),
                           &(mproc_stream_opts){.chunk_size = 16, .max_in_flight = 64}, &s));
  int64_t idx;
  const void *res;
  mproc_outcome o;
  for (int i = 0; i < N; i++) {
    int r = mproc_stream_next(s, MPROC_FOREVER, &idx, &res, &o);
    CHECK_INT_EQ(idx, i);
    if ((i % 7) == 0) {
      CHECK_ERR(r, MPROC_ERANGE);
      CHECK(res == NULL);
      CHECK_INT_EQ(o.kind, MPROC_OUTCOME_FAILED);
      char want[64];
      snprintf(want, sizeof want, "%d is a multiple of 7", i);
      CHECK_STR_EQ(o.message, want);
    } else {
      CHECK_OK(r);
      CHECK_INT_EQ(*(const int *)res, i);
    }
  }
  CHECK_ERR(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  /* unordered: every index exactly once */
  static unsigned char seen[N];
  memset(seen, 0, sizeof seen);
  CHECK_OK(mproc_pool_imap_unordered(p, square, in, N, sizeof *in, sizeof(int), NULL, &s));
  for (int k = 0; k < N; k++) {
    CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK(idx >= 0 && idx < N);
    CHECK_INT_EQ(seen[idx], 0);
    seen[idx] = 1;
    CHECK_INT_EQ(*(const int *)res, (int)(idx * idx));
  }
  CHECK_ERR(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  /* destroyed half-way: nothing left running or queued */
  CHECK_OK(
      mproc_pool_imap(p, square, in, N, sizeof *in, sizeof(int), &(mproc_stream_opts){.chunk_size = 4}, &s));
  for (int k = 0; k < 10; k++) CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
  mproc_stream_destroy(s);
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  /* empty */
  CHECK_OK(mproc_pool_imap(p, square, NULL, 0, sizeof(int), sizeof(int), NULL, &s));
  CHECK_ERR(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}
MTEST(streams_process) { streams(MPROC_BACKEND_PROCESS); }
MTEST(streams_serial) { streams(MPROC_BACKEND_SERIAL); }
MTEST(streams_thread) { streams(MPROC_BACKEND_THREAD); }

static unsigned serial_calls;
static int count_call(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  serial_calls++;
  int64_t v = mproc_task_index(t);
  return mproc_task_return(t, &v, sizeof v);
}

/* On the serial backend a stream runs in the caller's next(), a batch at a time: nothing before the first
 * next(), and what was never asked for never runs. */
MTEST(serial_stream_runs_as_it_is_consumed) {
  mproc_pool *p = make_pool(MPROC_BACKEND_SERIAL, 1, NULL);
  enum { N = 100000 };
  serial_calls = 0;
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, count_call, NULL, N, 0, sizeof(int64_t), NULL, &s));
  CHECK_INT_EQ(serial_calls, 0);
  int64_t idx;
  const void *res;
  for (int64_t k = 0; k < 10; k++) {
    CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK_INT_EQ(idx, k);
    CHECK_INT_EQ(*(const int64_t *)res, k);
  }
  CHECK_INT_CMP(serial_calls, >=, 10);
  CHECK_INT_CMP(serial_calls, <, N);
  mproc_stream_destroy(s);
  unsigned ran = serial_calls;
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  CHECK_INT_EQ(serial_calls, ran);
  mproc_pool_destroy(p);
  CHECK_INT_EQ(serial_calls, ran);
}

static int fill64(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  unsigned char *buf = mproc_task_return_buffer(t, 64);
  if (!buf) return MPROC_ENOMEM;
  memset(buf, (int)(mproc_task_index(t) & 0x7f), 64);
  return 0;
}

/* ThreadSanitizer keeps shadow memory beside every byte the program touches, so the resident size grows
 * more; the scaled bounds still tell a bounded window from n's results all kept (3 x 128 MB). */
#ifdef __SANITIZE_THREAD__
#define RSS_SCALE 3
#else
#define RSS_SCALE 1
#endif

MTEST_TIMEOUT(stream_memory_is_bounded, 120) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  long before = ru.ru_maxrss;
  const size_t n = 2000000; /* 128 MB of results if they were all kept */
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, fill64, NULL, n, 0, 64, &(mproc_stream_opts){.max_in_flight = 8192}, &s));
  int64_t idx;
  const void *res;
  for (size_t k = 0; k < n; k++) {
    CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK_INT_EQ(idx, (int64_t)k);
    CHECK_INT_EQ(((const unsigned char *)res)[63], (int)(k & 0x7f));
  }
  mproc_stream_destroy(s);
  getrusage(RUSAGE_SELF, &ru);
  CHECK_INT_CMP(ru.ru_maxrss - before, <, 16 * 1024 * RSS_SCALE); /* kB: the window (8192 x 64 B), not n */
  /* the default window is bounded too: 64 MiB of results at most, so well below n's 128 MB */
  getrusage(RUSAGE_SELF, &ru);
  before = ru.ru_maxrss;
  CHECK_OK(mproc_pool_imap(p, fill64, NULL, n, 0, 64, NULL, &s));
  for (size_t k = 0; k < n; k++) CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
  mproc_stream_destroy(s);
  getrusage(RUSAGE_SELF, &ru);
  CHECK_INT_CMP(ru.ru_maxrss - before, <, 64 * 1024 * RSS_SCALE);
  mproc_pool_destroy(p);
}

MTEST(stream_faults_and_timeouts) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int in[30];
  for (int i = 0; i < 30; i++) in[i] = i;
  in[12] = -1; /* segfaults */
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, misbehave, in, 30, sizeof *in, sizeof(int),
                           &(mproc_stream_opts){.chunk_size = 5}, &s));
  int64_t idx;
  const void *res;
  mproc_outcome o;
  for (int i = 0; i < 30; i++) {
    int r = mproc_stream_next(s, MPROC_FOREVER, &idx, &res, &o);
    CHECK_INT_EQ(idx, i);
    if (i == 12) {
      CHECK_ERR(r, MPROC_ECRASHED);
      CHECK_INT_EQ(o.kind, MPROC_OUTCOME_CRASHED);
    } else {
      CHECK_OK(r);
      CHECK_INT_EQ(*(const int *)res, i * i);
    }
  }
  mproc_stream_destroy(s);
  /* next() with a timeout on a blocked item; destroy kills what runs */
  CHECK_OK(
      mproc_pool_imap(p, gated, in, 4, sizeof *in, sizeof(int), &(mproc_stream_opts){.chunk_size = 1}, &s));
  CHECK_ERR(mproc_stream_next(s, 0.05, &idx, &res, NULL), MPROC_ETIMEDOUT);
  mproc_stream_destroy(s);
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  /* bad input */
  CHECK_ERR(mproc_pool_imap(NULL, square, in, 1, 4, 4, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_imap(p, NULL, in, 1, 4, 4, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_imap(p, square, NULL, 1, 4, 4, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_imap(p, square, in, 1, 4, 4, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_imap_unordered(p, square, in, 1, 4, 4, &(mproc_stream_opts){.task_timeout = NAN}, &s),
            MPROC_EINVAL);
  CHECK_ERR(mproc_stream_next(NULL, 0, &idx, &res, NULL), MPROC_EINVAL);
  mproc_stream_destroy(NULL);
  CHECK_OK(mproc_pool_close(p));
  CHECK_ERR(mproc_pool_imap(p, square, in, 1, 4, 4, NULL, &s), MPROC_ECLOSED);
  mproc_pool_destroy(p);
  unmap_shared();
}

/* A tiny task whose first call in each worker process is slow, as a cold worker's first item is (its page
 * faults, its code; tens of microseconds under some hypervisors). */
static int cold_first_square(const void *arg, size_t len, mproc_task *t) {
  static bool warm;
  if (!warm) {
    double until = mproc__plat_now() + 2e-3;
    while (mproc__plat_now() < until) {
    }
  }
  warm = true;
  (void)arg, (void)len;
  int64_t n = mproc_task_index(t), sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* A stream's batches are sized past a cold first item: judged by the fastest batch per item, and with at
 * most two batches per worker in flight until two per worker are timed (sized from the first item alone,
 * 2 ms, the stream made 200000 batches of one item; with the hold ended after one timed batch per worker,
 * both of them cold, it made thousands under load). */
MTEST(stream_batching_sees_past_a_cold_first_item) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  enum { N = 200000 };
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_unordered(p, cold_first_square, NULL, N, 0, sizeof(int64_t), NULL, &s));
  int64_t idx, sum = 0, want = 0;
  const void *res;
  for (int i = 0; i < N; i++) {
    CHECK_OK(mproc_stream_next(s, 30.0, &idx, &res, NULL));
    sum += *(const int64_t *)res;
    want += (int64_t)i * i;
  }
  CHECK_INT_EQ(sum, want);
  CHECK_INT_CMP(mproc__stream_batches(s), <, 1000);
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}

/* A stream that outlives its pool: its next call says the pool is gone, and destroying it afterwards
 * touches nothing freed (the pool's memory lives until the stream is released).  The next call crashed
 * before (it handed new batches to workers that were gone). */
MTEST(stream_outlives_its_pool) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  enum { N = 100000 };
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, cold_first_square, NULL, N, 0, sizeof(int64_t),
                           &(mproc_stream_opts){.chunk_size = 8, .max_in_flight = 64}, &s));
  int64_t idx;
  const void *res;
  for (int i = 0; i < 10; i++) CHECK_OK(mproc_stream_next(s, 30.0, &idx, &res, NULL));
  mproc_pool_destroy(p);
  CHECK_ERR(mproc_stream_next(s, 1.0, &idx, &res, NULL), MPROC_ECLOSED);
  mproc_stream_destroy(s);
}
