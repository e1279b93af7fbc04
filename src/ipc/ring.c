/* ring.c: the SPSC byte ring of ring.h. */
#include "ipc/ring.h"

#include <string.h>

#include "internal.h"

#define SPIN_ROUNDS 300 /* about 10 us of polling (pause is ~30-40 ns) before a futex sleep */
/* A spinner that shares its CPU with the side it waits for (a loaded machine, a pinned program, or a
 * scheduler that woke both onto one CPU) keeps that side from running, and when both wait for each other
 * nothing moves until one sleeps.  So after the first 2 us or so it gives the CPU up every microsecond: when
 * nobody else wants the CPU that costs one system call, and when the other side does, it runs at once
 * (BENCHMARKS.md has the round trips pinned to one CPU with and without).  The same yields are in
 * poll_briefly() (future.c) and wake_late() (worker.c). */
#define YIELD_AFTER 64
#define YIELD_EVERY 32

size_t mproc__ring_bytes(size_t data_size) { return sizeof(mproc__ring) + data_size; }

void mproc__ring_init(mproc__ring *r, size_t data_size) {
  memset(r, 0, sizeof *r);
  r->size = data_size;
  r->c_bell = (mproc__bell){.word = &r->data_seq, .asleep = &r->consumer_sleeping};
  r->p_bell = (mproc__bell){.word = &r->space_seq, .asleep = &r->producer_sleeping};
}

void mproc__ring_set_consumer_wake(mproc__ring *r, uint32_t *sleeping, uint32_t *seq) {
  r->c_bell = (mproc__bell){.word = seq, .asleep = sleeping};
}

void mproc__ring_set_producer_wake(mproc__ring *r, uint32_t *sleeping, uint32_t *seq) {
  r->p_bell = (mproc__bell){.word = seq, .asleep = sleeping};
}

void mproc__ring_reset(mproc__ring *r) {
  __atomic_store_n(&r->head, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&r->tail, 0, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

size_t mproc__ring_used(const mproc__ring *r) {
  return (size_t)(__atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE));
}

size_t mproc__ring_free(const mproc__ring *r) { return (size_t)r->size - mproc__ring_used(r); }

static size_t put_quiet(mproc__ring *r, const void *src, size_t len) {
  uint64_t tail = r->tail; /* only we write it */
  uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
  size_t space = (size_t)(r->size - (tail - head));
  if (len > space) len = space;
  if (len == 0) return 0;
  size_t mask = (size_t)r->size - 1, at = (size_t)tail & mask, first = (size_t)r->size - at;
  if (first > len) first = len;
  memcpy(r->data + at, src, first);
  if (len > first) memcpy(r->data, (const unsigned char *)src + first, len - first);
  __atomic_store_n(&r->tail, tail + len, __ATOMIC_RELEASE);
  return len;
}

size_t mproc__ring_put_some_quiet(mproc__ring *r, const void *src, size_t len) {
  return put_quiet(r, src, len);
}

size_t mproc__ring_put_some(mproc__ring *r, const void *src, size_t len) {
  len = put_quiet(r, src, len);
  if (len) mproc__bell_ring(r->c_bell, 1);
  return len;
}

void mproc__ring_wake_if_unread(mproc__ring *r) {
  if (mproc__ring_used(r) > 0) mproc__bell_ring(r->c_bell, 1);
}

size_t mproc__ring_peek(const mproc__ring *r, void *dst, size_t len) {
  uint64_t head = r->head;
  uint64_t tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
  size_t avail = (size_t)(tail - head);
  if (len > avail) len = avail;
  size_t mask = (size_t)r->size - 1, at = (size_t)head & mask, first = (size_t)r->size - at;
  if (first > len) first = len;
  memcpy(dst, r->data + at, first);
  if (len > first) memcpy((unsigned char *)dst + first, r->data, len - first);
  return len;
}

size_t mproc__ring_get_some_quiet(mproc__ring *r, void *dst, size_t len) {
  len = mproc__ring_peek(r, dst, len);
  if (len) __atomic_store_n(&r->head, r->head + len, __ATOMIC_RELEASE);
  return len;
}

size_t mproc__ring_pad_gap(const mproc__ring *r, size_t from, size_t min_len) {
  uint64_t tail = r->tail; /* the producer's own */
  if (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) != tail) return 0;
  size_t at = (size_t)tail & ((size_t)r->size - 1), gap = (size_t)r->size - at;
  return at >= from && gap >= min_len ? gap : 0;
}

void mproc__ring_put_pad(mproc__ring *r, const void *hdr, size_t hdr_len, size_t gap) {
  memcpy(r->data + ((size_t)r->tail & ((size_t)r->size - 1)), hdr, hdr_len);
  __atomic_store_n(&r->tail, r->tail + gap, __ATOMIC_RELEASE);
}

void mproc__ring_skip(mproc__ring *r, size_t len) {
  __atomic_store_n(&r->head, r->head + len, __ATOMIC_RELEASE);
}

void mproc__ring_wake_producer(mproc__ring *r) { mproc__bell_ring(r->p_bell, 1); }

static bool has_data(void *r) { return mproc__ring_used(r) > 0; }
static bool has_space(void *r) { return mproc__ring_free(r) > 0; }

/* Spins (yielding as said above), then sleeps on the bell until ready(r) holds. */
static void wait_until(mproc__ring *r, bool (*ready)(void *), mproc__bell bell) {
  mproc__spin spin = {
      .rounds = SPIN_ROUNDS, .pauses = 1, .yield_from = YIELD_AFTER, .yield_every = YIELD_EVERY};
  (void)mproc__spinwait(bell, &spin, ready, r, INFINITY);
}

void mproc__ring_put_all_quiet(mproc__ring *r, const void *src, size_t len) {
  const unsigned char *p = src;
  while (len > 0) {
    size_t n = put_quiet(r, p, len);
    p += n;
    len -= n;
    if (len) {
      mproc__bell_ring(r->c_bell, 1); /* the consumer must make room */
      wait_until(r, has_space, r->p_bell);
    }
  }
}

/* The quiet form wakes the consumer whenever it must wait for room; what remains is the last wake. */
void mproc__ring_put_all(mproc__ring *r, const void *src, size_t len) {
  mproc__ring_put_all_quiet(r, src, len);
  if (len) mproc__bell_ring(r->c_bell, 1);
}

void mproc__ring_get_all_quiet(mproc__ring *r, void *dst, size_t len) {
  unsigned char *p = dst;
  while (len > 0) {
    size_t n = mproc__ring_get_some_quiet(r, p, len);
    p += n;
    len -= n;
    if (len) {
      mproc__bell_ring(r->p_bell, 1); /* the producer may wait for the room just freed */
      wait_until(r, has_data, r->c_bell);
    }
  }
}
