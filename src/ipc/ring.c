/* ring.c: the SPSC byte ring of ring.h. */
#include "ipc/ring.h"

#include <sched.h>
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
  r->c_sleeping = &r->consumer_sleeping;
  r->c_seq = &r->data_seq;
  r->p_sleeping = &r->producer_sleeping;
  r->p_seq = &r->space_seq;
}

void mproc__ring_set_consumer_wake(mproc__ring *r, uint32_t *sleeping, uint32_t *seq) {
  r->c_sleeping = sleeping;
  r->c_seq = seq;
}

void mproc__ring_set_producer_wake(mproc__ring *r, uint32_t *sleeping, uint32_t *seq) {
  r->p_sleeping = sleeping;
  r->p_seq = seq;
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

static void wake_if_sleeping(uint32_t *sleeping, uint32_t *seq) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(sleeping, __ATOMIC_RELAXED)) {
    __atomic_fetch_add(seq, 1, __ATOMIC_SEQ_CST);
    mproc__plat_futex_wake(seq, 1);
  }
}

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
  if (len) wake_if_sleeping(r->c_sleeping, r->c_seq);
  return len;
}

void mproc__ring_wake_if_unread(mproc__ring *r) {
  if (mproc__ring_used(r) > 0) wake_if_sleeping(r->c_sleeping, r->c_seq);
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

void mproc__ring_wake_producer(mproc__ring *r) { wake_if_sleeping(r->p_sleeping, r->p_seq); }

/* Spins, then sleeps until ready(r, want) holds.  timeout < 0: forever.  Returns 1 ready, 0 timed out. */
static int wait_until(mproc__ring *r, int (*ready)(const mproc__ring *, size_t), size_t want,
                      uint32_t *sleeping, uint32_t *seq, double timeout) {
  for (int i = 0; i < SPIN_ROUNDS; i++) {
    if (ready(r, want)) return 1;
    mproc__cpu_relax();
    if (i >= YIELD_AFTER && i % YIELD_EVERY == 0) sched_yield();
  }
  double deadline = mproc__deadline(timeout);
  for (;;) {
    uint32_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
    __atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (ready(r, want)) {
      __atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
      return 1;
    }
    double left = mproc__remaining(deadline);
    if (left == 0) {
      __atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
      return 0;
    }
    mproc__plat_futex_wait(seq, s, left);
    __atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
    if (ready(r, want)) return 1;
  }
}

static int has_data(const mproc__ring *r, size_t want) { return mproc__ring_used(r) >= want; }
static int has_space(const mproc__ring *r, size_t want) { return mproc__ring_free(r) >= want; }

void mproc__ring_put_all_quiet(mproc__ring *r, const void *src, size_t len) {
  const unsigned char *p = src;
  while (len > 0) {
    size_t n = put_quiet(r, p, len);
    p += n;
    len -= n;
    if (len) {
      wake_if_sleeping(r->c_sleeping, r->c_seq); /* the consumer must make room */
      wait_until(r, has_space, 1, r->p_sleeping, r->p_seq, -1);
    }
  }
}

/* The quiet form wakes the consumer whenever it must wait for room; what remains is the last wake. */
void mproc__ring_put_all(mproc__ring *r, const void *src, size_t len) {
  mproc__ring_put_all_quiet(r, src, len);
  if (len) wake_if_sleeping(r->c_sleeping, r->c_seq);
}

void mproc__ring_get_all_quiet(mproc__ring *r, void *dst, size_t len) {
  unsigned char *p = dst;
  while (len > 0) {
    size_t n = mproc__ring_get_some_quiet(r, p, len);
    p += n;
    len -= n;
    if (len) {
      wake_if_sleeping(r->p_sleeping, r->p_seq); /* the producer may wait for the room just freed */
      wait_until(r, has_data, 1, r->c_sleeping, r->c_seq, -1);
    }
  }
}
