/* test_rings.c: the rings between the caller and a worker: rewinding when idle, the pad record. */
#include <stdlib.h>

#include "mtest.h"
#include "internal.h"
#include "face/face.h"
#include "pool_tasks.h"

/* One task at a time leaves both rings of a worker empty before each record: once a record would start
 * MPROC__REWIND_FROM bytes or more into a ring, a pad record rewinds it, so a stream of round trips keeps to
 * the first pages of its rings (see ring.h).  3000 trips through 8 KiB rings with arguments and results of
 * 0 to 600 bytes: every result comes back whole, and before every record each ring's next byte sits within
 * REWIND_FROM plus one record of its start (without the rewind it walks the whole ring, past that bound
 * within the first ten trips). */
static void rings_rewind_when_idle(mproc_backend b) {
  mproc_pool *p = make_pool(b, 1, &(mproc_pool_opts){.ring_bytes = 8192});
  mproc__ring *in = p->eng.sh->slots[0].in, *out = p->eng.sh->slots[0].out;
  CHECK_INT_EQ(in->size, 8192);
  size_t bound_in = MPROC__REWIND_FROM + sizeof(wire_job) + 600;
  size_t bound_out = MPROC__REWIND_FROM + sizeof(wire_result) + 600;
  unsigned char msg[600];
  for (int i = 0; i < 3000; i++) {
    size_t n = (size_t)(i * 7) % 601;
    for (size_t x = 0; x < n; x++) msg[x] = (unsigned char)(i + x);
    const void *d;
    size_t l;
    mproc_future *f;
    CHECK_OK(mproc_pool_submit(p, echo, msg, n, NULL, &f));
    CHECK_OK(mproc_future_result(f, MPROC_FOREVER, &d, &l));
    CHECK_INT_EQ(l, n);
    for (size_t x = 0; x < l; x++) CHECK_INT_EQ(((const unsigned char *)d)[x], (unsigned char)(i + x));
    mproc_future_release(f);
    CHECK((__atomic_load_n(&in->tail, __ATOMIC_ACQUIRE) & 8191) < bound_in);
    CHECK((__atomic_load_n(&out->tail, __ATOMIC_ACQUIRE) & 8191) < bound_out);
  }
  /* many times round both rings: the bound above was not met by a short run */
  CHECK(__atomic_load_n(&in->tail, __ATOMIC_ACQUIRE) > 50 * 8192);
  CHECK(__atomic_load_n(&out->tail, __ATOMIC_ACQUIRE) > 50 * 8192);
  mproc_pool_destroy(p);
}
MTEST(rings_rewind_when_idle_process) { rings_rewind_when_idle(MPROC_BACKEND_PROCESS); }
MTEST(rings_rewind_when_idle_thread) { rings_rewind_when_idle(MPROC_BACKEND_THREAD); }

/* The rewind's ring operations alone: no gap while the ring holds bytes, before `from`, or when fewer than
 * min_len bytes remain; a pad publishes the whole gap at once and the next record starts at data[0]. */
MTEST(ring_pad_gap) {
  size_t size = 1024;
  mproc__ring *r = calloc(1, mproc__ring_bytes(size));
  mproc__ring_init(r, size);
  unsigned char rec[300] = {1}, got[300];
  CHECK_INT_EQ(mproc__ring_pad_gap(r, 256, 16), 0); /* at 0 */
  CHECK_INT_EQ(mproc__ring_put_some_quiet(r, rec, sizeof rec), sizeof rec);
  CHECK_INT_EQ(mproc__ring_pad_gap(r, 256, 16), 0); /* not empty */
  CHECK_INT_EQ(mproc__ring_get_some_quiet(r, got, sizeof got), sizeof got);
  CHECK_INT_EQ(mproc__ring_pad_gap(r, 301, 16), 0);  /* before from */
  CHECK_INT_EQ(mproc__ring_pad_gap(r, 300, 725), 0); /* 724 bytes left: fewer than min_len */
  CHECK_INT_EQ(mproc__ring_pad_gap(r, 300, 724), 724);
  uint64_t hdr = 0x1122334455667788ull, h = 0;
  mproc__ring_put_pad(r, &hdr, sizeof hdr, 724);
  CHECK_INT_EQ(mproc__ring_used(r), 724);
  CHECK_INT_EQ(mproc__ring_get_some_quiet(r, &h, sizeof h), sizeof h);
  CHECK(h == hdr);
  mproc__ring_skip(r, 724 - sizeof h);
  CHECK_INT_EQ(mproc__ring_used(r), 0);
  CHECK_INT_EQ(r->tail & (size - 1), 0);
  rec[0] = 42;
  CHECK_INT_EQ(mproc__ring_put_some_quiet(r, rec, 1), 1);
  CHECK_INT_EQ(r->data[0], 42);
  free(r);
}
