/* test_rings.c: the rings between the caller and a worker: rewinding when idle, the pad record; the wait
 * they (and the queue and the manager) wait with (spinwait.h). */
#include <pthread.h>
#include <stdlib.h>

#include "mtest.h"
#include "internal.h"
#include "face/face.h"
#include "ipc/spinwait.h"
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

/* ---- spinwait.h ---- */

static bool flag_set(void *arg) { return __atomic_load_n((uint32_t *)arg, __ATOMIC_ACQUIRE) != 0; }

/* A condition already true ends the wait at once: no round spun, the bell untouched. */
MTEST(spinwait_ready_at_once) {
  uint32_t word = 7, asleep = 0, cond = 1;
  mproc__spin spin = {.rounds = 10, .pauses = 1};
  CHECK_INT_EQ(mproc__spinwait((mproc__bell){&word, &asleep}, &spin, flag_set, &cond, INFINITY), 0);
  CHECK_INT_EQ(spin.done, 0);
  CHECK_INT_EQ(word, 7);
  CHECK_INT_EQ(asleep, 0);
}

/* A condition never true: every round is spun, then the sleep ends at the deadline with -ETIMEDOUT and the
 * flag lowered.  A wait resumed with the same spin does not spin again. */
MTEST(spinwait_times_out) {
  uint32_t word = 0, asleep = 0, cond = 0;
  mproc__spin spin = {.rounds = 50, .pauses = 2, .yield_from = 10, .yield_every = 8};
  double t0 = mproc__plat_now();
  CHECK_INT_EQ(mproc__spinwait((mproc__bell){&word, &asleep}, &spin, flag_set, &cond, t0 + 0.02), -ETIMEDOUT);
  CHECK(mproc__plat_now() >= t0 + 0.02);
  CHECK_INT_EQ(spin.done, 50);
  CHECK_INT_EQ(asleep, 0);
  CHECK_INT_EQ(
      mproc__spinwait((mproc__bell){&word, &asleep}, &spin, flag_set, &cond, mproc__plat_now() + 0.01),
      -ETIMEDOUT);
  CHECK_INT_EQ(spin.done, 50);
  mproc__spin_reset(&spin);
  CHECK_INT_EQ(spin.done, 0);
}

/* A waker that finds nobody asleep makes no change to the word (and no system call). */
MTEST(spinwait_ring_skips_when_nobody_sleeps) {
  uint32_t word = 3, asleep = 0;
  mproc__bell_ring((mproc__bell){&word, &asleep}, 1);
  CHECK_INT_EQ(word, 3);
  asleep = 1;
  mproc__bell_ring((mproc__bell){&word, &asleep}, 1);
  CHECK_INT_EQ(word, 4);
}

typedef struct sleeper {
  uint32_t word, asleep, cond;
  int result;
} sleeper;

static void *sleep_until_set(void *arg) {
  sleeper *s = arg;
  mproc__spin spin = {.rounds = 0};
  s->result = mproc__spinwait((mproc__bell){&s->word, &s->asleep}, &spin, flag_set, &s->cond, INFINITY);
  return NULL;
}

/* A sleeper with no deadline is woken by the waker that makes its condition true and rings: the flag it
 * raised makes the waker bump the word and wake it.  Many rounds, so that the waker also comes between the
 * sleeper's announcement and its sleep. */
MTEST(spinwait_woken_by_ring) {
  for (int i = 0; i < 2000; i++) {
    sleeper s = {0};
    pthread_t th;
    CHECK_INT_EQ(pthread_create(&th, NULL, sleep_until_set, &s), 0);
    if (i % 2 == 0) /* half the time, only once it has said it sleeps */
      while (!__atomic_load_n(&s.asleep, __ATOMIC_ACQUIRE)) mproc__cpu_relax();
    __atomic_store_n(&s.cond, 1, __ATOMIC_RELEASE);
    mproc__bell_ring((mproc__bell){&s.word, &s.asleep}, 1);
    CHECK_INT_EQ(pthread_join(th, NULL), 0);
    CHECK_INT_EQ(s.result, 0);
    CHECK_INT_EQ(s.asleep, 0);
  }
}
