/* ring.h: a single-producer single-consumer byte ring in shared memory, with spin-then-futex waits.
 *
 * head (consumer) and tail (producer) are free-running 64-bit byte counters on their own cache lines;
 * data[] has a power-of-two size.  The producer copies bytes in, then publishes with a release store of
 * tail; the consumer reads up to tail, then releases space with a release store of head.  A side that
 * finds nothing to do spins briefly, then sleeps on its bell (spinwait.h): a futex sequence word that the
 * other side bumps (and wakes) only when the sleeper's flag says it sleeps: no system call while both are
 * busy.
 *
 * Bytes are published in any amounts; record boundaries are the business of the layer above.  Nothing
 * half-written is ever visible: what is past tail does not exist for the consumer, so a producer killed
 * mid-write leaves the ring consistent (the engine then resets it). */
#ifndef MPROC_RING_H
#define MPROC_RING_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "ipc/spinwait.h"

#define MPROC_CACHELINE 64

typedef struct mproc__ring {
  _Alignas(MPROC_CACHELINE) uint64_t tail; /* written by the producer */
  uint32_t data_seq;                       /* bumped by the producer to wake a sleeping consumer */
  uint32_t consumer_sleeping;
  _Alignas(MPROC_CACHELINE) uint64_t head; /* written by the consumer */
  uint32_t space_seq;                      /* bumped by the consumer to wake a sleeping producer */
  uint32_t producer_sleeping;
  _Alignas(MPROC_CACHELINE) uint64_t size; /* bytes in data[], a power of two */
  /* Where each side announces sleep and is woken: the ring's own words by default; the engine points the
   * manager's side at its doorbell, since the manager sleeps on one word for every ring and event.  These
   * are pointers into the same shared mapping, which sits at one address in every process of a pool (it is
   * mapped before the fork). */
  mproc__bell c_bell, p_bell; /* the consumer's (woken for data) and the producer's (woken for room) */
  _Alignas(MPROC_CACHELINE) unsigned char data[];
} mproc__ring;

size_t mproc__ring_bytes(size_t data_size); /* sizeof the whole ring for data_size */
/* Whether the consumer has said it sleeps (it reads nothing until woken). */
static inline bool mproc__ring_consumer_asleep(const mproc__ring *r) {
  return __atomic_load_n(r->c_bell.asleep, __ATOMIC_ACQUIRE) != 0;
}
void mproc__ring_init(mproc__ring *r, size_t data_size);
/* Points the consumer's (or producer's) sleep flag and wake word elsewhere. */
void mproc__ring_set_consumer_wake(mproc__ring *r, uint32_t *sleeping, uint32_t *seq);
void mproc__ring_set_producer_wake(mproc__ring *r, uint32_t *sleeping, uint32_t *seq);
void mproc__ring_reset(mproc__ring *r); /* empty it (only when neither side is active) */

size_t mproc__ring_used(const mproc__ring *r);
size_t mproc__ring_free(const mproc__ring *r);

/* Copies up to len bytes in without waiting and publishes them; returns how many went in.  Wakes a
 * sleeping consumer when it published anything. */
size_t mproc__ring_put_some(mproc__ring *r, const void *src, size_t len);
/* put_some without the wake, for a producer that writes a record in pieces and then wakes the consumer
 * once with mproc__ring_wake_if_unread(). */
size_t mproc__ring_put_some_quiet(mproc__ring *r, const void *src, size_t len);
/* Copies up to len bytes out without waiting and frees their space; returns how many.  Wakes nobody: the
 * consumer reads a record's pieces, then wakes a producer waiting for room once with
 * mproc__ring_wake_producer(). */
size_t mproc__ring_get_some_quiet(mproc__ring *r, void *dst, size_t len);
/* Wakes the producer if it sleeps (waiting for room). */
void mproc__ring_wake_producer(mproc__ring *r);
/* Looks at up to len bytes without consuming them. */
size_t mproc__ring_peek(const mproc__ring *r, void *dst, size_t len);

/* Rewinding an idle ring.  A ring used one small record at a time (a round trip) would otherwise walk
 * through all its pages, faulting each one in on both sides the first time round (6-10 us for the round
 * trip that crosses into a new page, once in 25-35 trips here) and touching new cache lines with every
 * record.  When the ring is empty and its next byte would go at least `from` bytes into data[],
 * mproc__ring_pad_gap() says how many bytes remain to the end of data[] (0: no rewind now, or fewer than
 * min_len remain); mproc__ring_put_pad() then copies a record header of hdr_len bytes there and publishes
 * the whole gap at once, so that the next record starts at data[0].  The record layer marks that header as
 * padding; its consumer skips the gap with mproc__ring_skip(). */
size_t mproc__ring_pad_gap(const mproc__ring *r, size_t from, size_t min_len);
void mproc__ring_put_pad(mproc__ring *r, const void *hdr, size_t hdr_len, size_t gap);
void mproc__ring_skip(mproc__ring *r, size_t len); /* frees len bytes the consumer has (len <= used) */

/* Blocking forms for the worker side: spin, then sleep on the futex until everything is moved. */
void mproc__ring_put_all(mproc__ring *r, const void *src, size_t len);
/* put_all that leaves the consumer asleep (unless it must make room): the producer wakes it later with
 * mproc__ring_wake_if_unread() only if it has not read the bytes by then. */
void mproc__ring_put_all_quiet(mproc__ring *r, const void *src, size_t len);
void mproc__ring_wake_if_unread(mproc__ring *r);
/* Reads len bytes, waiting for them; wakes the producer whenever it must wait for more bytes, not at the
 * end (see mproc__ring_get_some_quiet). */
void mproc__ring_get_all_quiet(mproc__ring *r, void *dst, size_t len);

#endif
