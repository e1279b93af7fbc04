/* batching.h: how many items go in the next batch of a map or a stream: the one policy behind pool.c's
 * maps, stream.c's streams, and so behind Parallel's run (a map) and its stream.
 *
 * Every automatic batch is bounded three ways:
 * - the ring cap: no more items than whose records fill a quarter of a worker's ring, so records stream
 *   while the worker computes (records read and written in place do not count; items of any size are
 *   judged by a sample of them, pool.c's var_item_wire);
 * - a stream's window cap: no more than half its window per worker, so every worker has work in it;
 * - the fair share: no more than what is left over twice the workers, so batches shrink toward the end
 *   (guided scheduling) and no worker idles while another finishes a long last batch.
 * Below those caps a batch holds a target number of items, from one of two rules:
 * - a plain map's static chunk (Pool.map's chunksize): about eight batches per worker;
 * - measured (Parallel's run, every stream without a chunk size): the first items go out one per batch,
 *   two per worker (the probe); once a batch is timed, batches hold about 2 ms of work, judged by the
 *   fastest batch per item so far (mproc__map's best_item_ns, which the engine keeps): a worker's first
 *   item is its coldest (page faults of a new process, cold caches, lazy binding), and sized from it alone
 *   the batches of tiny items stay tiny.  A batch costs the engine some microseconds; 2 ms makes that
 *   noise, and is short enough to balance the end.
 * A caller's chunk size is kept as given.
 *
 * Measured sizes are worth little until batches have been timed warm.  A map hands out all its
 * batches at once, so Parallel's run sizes a first wave of two batches per worker from the probe, waits
 * until one per worker is timed, then sizes the rest (mproc__batching_wave).  A stream sizes each batch
 * when it hands it out, and holds at two batches per worker in flight until two per worker are timed
 * (mproc__batching_hold).
 *
 * The sizing functions are inline: a stream asks for every item it hands out, under the engine lock. */
#ifndef MPROC_BATCHING_H
#define MPROC_BATCHING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The work a measured batch should hold, in worker nanoseconds. */
#define MPROC__BATCH_TARGET_NS 2e6

/* The caps of one map or stream. */
typedef struct mproc__batching {
  size_t workers;
  size_t ring_cap;   /* items whose records fill a quarter of a ring (UINT32_MAX: none go through) */
  size_t window_cap; /* a stream's half window per worker (SIZE_MAX: a map, or a window too small) */
} mproc__batching;

/* The caps for a pool of `workers` (at least 1) with rings of ring_size bytes, items whose records take
 * in_wire and out_wire bytes in the rings (0 for arrays used in place), and a stream's window (0: a map). */
void mproc__batching_init(mproc__batching *b, size_t workers, size_t ring_size, size_t in_wire,
                          size_t out_wire, size_t window);

/* What is left over twice the workers, rounded up: the most a batch may take of `left` items. */
static inline size_t mproc__batching_fair_share(const mproc__batching *b, size_t left) {
  size_t two = 2 * (b->workers ? b->workers : 1);
  return (left + two - 1) / two;
}

/* A plain map's target for n items: about eight batches per worker, within the ring cap. */
size_t mproc__batching_static_chunk(const mproc__batching *b, size_t n);

/* A measured target: about MPROC__BATCH_TARGET_NS of work at per_item_ns per item (0, not known: the
 * caps), at least 1, within the ring and window caps. */
static inline size_t mproc__batching_target(const mproc__batching *b, double per_item_ns) {
  size_t cap = b->ring_cap < b->window_cap ? b->ring_cap : b->window_cap;
  if (!(per_item_ns > 0)) return cap;
  double want = MPROC__BATCH_TARGET_NS / per_item_ns;
  if (want < 1) return 1;
  return want >= (double)cap ? cap : (size_t)want;
}
/* A stream's target: 1 (the probe) until a batch has been timed, then mproc__batching_target() of the
 * fastest batch per item. */
static inline size_t mproc__batching_measured(const mproc__batching *b, size_t timed_batches,
                                              double best_item_ns) {
  return timed_batches ? mproc__batching_target(b, best_item_ns) : 1;
}

/* The next batch's size for a target, with `left` (at least 1) items not yet in a batch: the target within
 * the fair share, at least 1, at most left. */
static inline size_t mproc__batching_size(const mproc__batching *b, size_t target, size_t left) {
  size_t share = mproc__batching_fair_share(b, left);
  size_t count = target < share ? target : share;
  if (count < 1) count = 1;
  if (count > left) count = left;
  return count > UINT32_MAX ? UINT32_MAX : count;
}

/* The probe's one-item batches among n items: two per worker. */
size_t mproc__batching_probe(const mproc__batching *b, size_t n);

/* A map's wave after its probe: the items of two batches per worker of `target` items, or 0 when no wave
 * is worth it (the target is already at the caps, so it cannot grow, or the wave would be more than half of
 * the `left` items).  Its batches are then timed before the rest is sized: the map waits until
 * mproc__batching_wave_timed() batches are. */
size_t mproc__batching_wave(const mproc__batching *b, size_t target, size_t left);
/* The timed batches after which a wave that follows `probe` probe batches is measured: every probe batch
 * and one wave batch per worker. */
size_t mproc__batching_wave_timed(const mproc__batching *b, size_t probe);

/* A stream's rule: hand out no more batches while two per worker are in flight and fewer than two per
 * worker have been timed (they carry the timings that size the next ones).  Two per worker, not one: each
 * worker's first batch is cold, so `workers` timed batches may all be first ones, and sized from them
 * alone a stream of tiny items handed out its whole window in one-item batches; among 2 x workers timed
 * batches at least `workers` are not a worker's first. */
static inline bool mproc__batching_hold(const mproc__batching *b, size_t timed_batches, size_t in_flight) {
  return timed_batches < 2 * b->workers && in_flight >= 2 * b->workers;
}

#endif
