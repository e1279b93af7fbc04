/* batching.c: the batching policy of maps, streams and Parallel (see batching.h). */
#include "face/batching.h"

#include <stdint.h>

void mproc__batching_init(mproc__batching *b, size_t workers, size_t ring_size, size_t in_wire,
                          size_t out_wire, size_t window) {
  b->workers = workers ? workers : 1;
  size_t rec = in_wire > out_wire ? in_wire : out_wire;
  size_t cap = rec && ring_size ? ring_size / 4 / rec : UINT32_MAX;
  if (cap < 1) cap = 1;
  b->ring_cap = cap > UINT32_MAX ? UINT32_MAX : cap;
  /* a window smaller than two items per worker bounds its batches by itself (stream.c) */
  size_t half = window / (2 * b->workers);
  b->window_cap = half ? half : SIZE_MAX;
}

size_t mproc__batching_static_chunk(const mproc__batching *b, size_t n) {
  size_t chunk = n / (b->workers * 8);
  if (chunk < 1) chunk = 1;
  return chunk > b->ring_cap ? b->ring_cap : chunk;
}

size_t mproc__batching_probe(const mproc__batching *b, size_t n) {
  size_t probe = 2 * b->workers;
  return probe < n ? probe : n;
}

size_t mproc__batching_wave(const mproc__batching *b, size_t target, size_t left) {
  size_t cap = b->ring_cap < b->window_cap ? b->ring_cap : b->window_cap;
  if (target >= cap || target > left / (4 * b->workers)) return 0;
  return 2 * b->workers * target;
}

size_t mproc__batching_wave_timed(const mproc__batching *b, size_t probe) { return probe + b->workers; }
