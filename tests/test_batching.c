/* test_batching.c: the batching policy of maps, streams and Parallel (face/batching.h): its sizes for
 * given measures and caps, and Parallel's run and stream sizing the same tiny work alike. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mtest.h"
#include "internal.h"
#include "face/batching.h"
#include "face/face.h"

enum { RING = 256 * 1024 };

MTEST(caps_from_records_and_window) {
  mproc__batching b;
  /* a quarter of a ring of 8-byte records, whichever way they go; none through the rings: no ring cap */
  mproc__batching_init(&b, 2, RING, 0, 8, 0);
  CHECK_INT_EQ(b.ring_cap, RING / 4 / 8);
  CHECK(b.window_cap == SIZE_MAX);
  mproc__batching_init(&b, 2, RING, 64, 8, 0);
  CHECK_INT_EQ(b.ring_cap, RING / 4 / 64);
  mproc__batching_init(&b, 2, RING, 0, 0, 0);
  CHECK_INT_EQ(b.ring_cap, UINT32_MAX);
  /* a record above a quarter of a ring still goes, one per batch */
  mproc__batching_init(&b, 2, RING, RING, 0, 0);
  CHECK_INT_EQ(b.ring_cap, 1);
  /* a stream's window: half of it per worker; a window under two items per worker bounds itself */
  mproc__batching_init(&b, 4, RING, 0, 8, 4096);
  CHECK_INT_EQ(b.window_cap, 4096 / 8);
  mproc__batching_init(&b, 4, RING, 0, 8, 7);
  CHECK(b.window_cap == SIZE_MAX);
  /* no workers is taken as one (no division by zero) */
  mproc__batching_init(&b, 0, RING, 0, 8, 0);
  CHECK_INT_EQ(b.workers, 1);
}

MTEST(fair_share_and_guided_sizes) {
  mproc__batching b;
  mproc__batching_init(&b, 2, RING, 0, 8, 0);
  /* what is left over twice the workers, rounded up */
  CHECK_INT_EQ(mproc__batching_fair_share(&b, 1000), 250);
  CHECK_INT_EQ(mproc__batching_fair_share(&b, 1001), 251);
  CHECK_INT_EQ(mproc__batching_fair_share(&b, 3), 1);
  CHECK_INT_EQ(mproc__batching_size(&b, 100, 100000), 100);
  CHECK_INT_EQ(mproc__batching_size(&b, 100, 200), 50);
  /* at the end: one item at a time, never more than is left, never none */
  CHECK_INT_EQ(mproc__batching_size(&b, 100, 1), 1);
  CHECK_INT_EQ(mproc__batching_size(&b, 0, 10), 1);
  /* a whole map of guided batches shrinks toward the end and covers every item once */
  size_t left = 100000, batches = 0, last = SIZE_MAX;
  while (left) {
    size_t c = mproc__batching_size(&b, 4096, left);
    CHECK(c >= 1 && c <= left && c <= last);
    last = c;
    left -= c;
    batches++;
  }
  CHECK_INT_EQ(last, 1);
  CHECK_INT_CMP(batches, <, 100000 / 4096 + 40);
}

MTEST(static_chunk_of_a_plain_map) {
  mproc__batching b;
  mproc__batching_init(&b, 2, RING, 8, 8, 0);
  /* about eight batches per worker, within the ring cap */
  CHECK_INT_EQ(mproc__batching_static_chunk(&b, 1600), 100);
  CHECK_INT_EQ(mproc__batching_static_chunk(&b, 10), 1);
  CHECK_INT_EQ(mproc__batching_static_chunk(&b, 1000000), RING / 4 / 8);
  mproc__batching_init(&b, 2, RING, 0, 0, 0); /* in place: no ring cap */
  CHECK_INT_EQ(mproc__batching_static_chunk(&b, 1000000), 62500);
}

MTEST(measured_sizes) {
  mproc__batching b;
  mproc__batching_init(&b, 2, RING, 0, 8, 0);
  /* about 2 ms of work per batch, at least one item, at most the caps */
  CHECK_INT_EQ(mproc__batching_target(&b, 1000), 2000);
  CHECK_INT_EQ(mproc__batching_target(&b, 3e6), 1);
  CHECK_INT_EQ(mproc__batching_target(&b, 10), RING / 4 / 8);
  CHECK_INT_EQ(mproc__batching_target(&b, 0), RING / 4 / 8); /* nothing known: the caps */
  /* a stream's window caps it too */
  mproc__batching_init(&b, 2, RING, 0, 8, 4000);
  CHECK_INT_EQ(mproc__batching_target(&b, 10), 1000);
  /* probing until a batch is timed, then the fastest batch per item */
  CHECK_INT_EQ(mproc__batching_measured(&b, 0, 1000), 1);
  CHECK_INT_EQ(mproc__batching_measured(&b, 1, 2e4), 100);
}

MTEST(probe_wave_and_hold) {
  mproc__batching b;
  mproc__batching_init(&b, 4, RING, 0, 8, 0);
  /* one-item batches, two per worker */
  CHECK_INT_EQ(mproc__batching_probe(&b, 1000), 8);
  CHECK_INT_EQ(mproc__batching_probe(&b, 3), 3);
  /* a wave of two batches per worker when the target could grow and the wave is at most half of what is
   * left; then every probe batch and one wave batch per worker are timed before the rest is sized */
  CHECK_INT_EQ(mproc__batching_wave(&b, 10, 1000), 80);
  CHECK_INT_EQ(mproc__batching_wave(&b, 10, 159), 0);
  CHECK_INT_EQ(mproc__batching_wave(&b, RING / 4 / 8, SIZE_MAX / 2), 0);
  CHECK_INT_EQ(mproc__batching_wave_timed(&b, 8), 12);
  /* a stream holds at two batches per worker in flight until two per worker are timed: `workers` timed
   * batches may all be cold first ones (the hold ended there before, and under load a stream of tiny items
   * then handed out its window in one-item batches: stream_batching_sees_past_a_cold_first_item failed) */
  CHECK(mproc__batching_hold(&b, 0, 8));
  CHECK(!mproc__batching_hold(&b, 0, 7));
  CHECK(mproc__batching_hold(&b, 3, 9));
  CHECK(mproc__batching_hold(&b, 4, 8));
  CHECK(mproc__batching_hold(&b, 7, 100));
  CHECK(!mproc__batching_hold(&b, 8, 100));
}

static int index_square(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t n = mproc_task_index(t), sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* The same tiny work through Parallel's run (a map) and its stream: both measured by the one policy, so
 * their batch counts are of the same order, and both far below one batch per item. */
static void run_and_stream_alike(mproc_backend backend) {
  enum { N = 200000 };
  static int64_t out[N];
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .backend = backend}));
  mproc_map_report rep;
  CHECK_OK(mproc_parallel_run(par, index_square, NULL, N, 0, out, sizeof *out, NULL, &rep));
  CHECK_INT_EQ(rep.ok, N);
  mproc_stream *s;
  CHECK_OK(mproc_parallel_stream(par, index_square, NULL, N, 0, sizeof(int64_t), MPROC_RETURN_GENERATOR, &s));
  int64_t idx;
  const void *res;
  for (int64_t i = 0; i < N; i++) {
    CHECK_OK(mproc_stream_next(s, 30.0, &idx, &res, NULL));
    CHECK_INT_EQ(*(const int64_t *)res, i * i);
  }
  size_t streamed = mproc__stream_batches(s);
  mproc_stream_destroy(s);
  mproc_parallel_destroy(par);
  CHECK_INT_CMP(rep.batches, <, N / 50);
  CHECK_INT_CMP(streamed, <, N / 50);
  CHECK_INT_CMP(rep.batches, <=, 8 * streamed);
  CHECK_INT_CMP(streamed, <=, 8 * rep.batches);
}
MTEST(run_and_stream_size_alike_process) { run_and_stream_alike(MPROC_BACKEND_PROCESS); }
MTEST(run_and_stream_size_alike_thread) { run_and_stream_alike(MPROC_BACKEND_THREAD); }

/* A map over items of any size is bounded by the ring as fixed records are, its items judged by a sample:
 * 100,000 strings of 39 bytes and their NUL (48 bytes each in a ring with their lengths) go in batches of at
 * most a quarter ring's worth (it took 16 batches of 6,250, 300 KB each, before), and items of 64 KiB one
 * per batch.  Every result is there. */
static int length_of(const void *arg, size_t len, mproc_task *t) {
  (void)arg;
  uint64_t l = len;
  return mproc_task_return(t, &l, sizeof l);
}
static void items_bounded_by_the_ring(mproc_backend backend) {
  enum { N = 100000, BIG = 64 * 1024, NBIG = 40 };
  char *buf = malloc((size_t)N * 40);
  const char **strs = malloc(N * sizeof *strs);
  CHECK(buf && strs);
  for (size_t i = 0; i < N; i++) {
    memset(buf + 40 * i, 'a' + (int)(i % 26), 39);
    buf[40 * i + 39] = '\0';
    strs[i] = buf + 40 * i;
  }
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = backend, .ring_bytes = RING}));
  mproc_items in = mproc_items_strings(strs, N);
  mproc_results *res;
  mproc_map_report rep;
  CHECK_OK(mproc_pool_map_items(p, length_of, &in, NULL, &res, &rep));
  size_t wire = backend == MPROC_BACKEND_THREAD ? 16 : 48; /* in place: an address and a length */
  CHECK_INT_CMP(rep.batches, >=, N / (RING / 4 / wire));
  for (size_t i = 0; i < N; i += 101) {
    const void *d;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &d, &len));
    CHECK_INT_EQ(*(const uint64_t *)d, 40);
  }
  mproc_results_free(res);
  char *big = calloc(NBIG, BIG);
  mproc_item *items = malloc(NBIG * sizeof *items);
  CHECK(big && items);
  for (size_t i = 0; i < NBIG; i++) items[i] = (mproc_item){big + i * BIG, BIG};
  in = mproc_items_array(items, NBIG);
  CHECK_OK(mproc_pool_map_items(p, length_of, &in, NULL, &res, &rep));
  if (backend != MPROC_BACKEND_THREAD) CHECK_INT_EQ(rep.batches, NBIG);
  for (size_t i = 0; i < NBIG; i++) {
    const void *d;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &d, &len));
    CHECK_INT_EQ(*(const uint64_t *)d, BIG);
  }
  mproc_results_free(res);
  mproc_pool_destroy(p);
  free(items);
  free(big);
  free(strs);
  free(buf);
}
MTEST(items_bounded_by_the_ring_process) { items_bounded_by_the_ring(MPROC_BACKEND_PROCESS); }
MTEST(items_bounded_by_the_ring_thread) { items_bounded_by_the_ring(MPROC_BACKEND_THREAD); }
