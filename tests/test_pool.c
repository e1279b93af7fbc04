/* test_pool.c: the pool and executor faces on every backend, and the engine's fault handling. */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "engine/engine.h"

/* A page shared with every worker (mapped before the pool exists): gates that block tasks until the test
 * opens them, and counters tasks bump. */
struct shared {
  uint32_t ack;
  uint32_t gate;
  uint32_t started;
  int32_t pids[64];
  uint32_t npids;
};
static struct shared *sh;

static void map_shared(void) {
  int err = 0;
  sh = mproc__plat_shm_map_anon(4096, &err);
  CHECK(sh != NULL);
  memset(sh, 0, sizeof *sh);
}
static void unmap_shared(void) {
  CHECK_OK(mproc__plat_shm_unmap(sh, 4096));
  sh = NULL;
}
static void open_gate(void) {
  __atomic_store_n(&sh->gate, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->gate, INT32_MAX);
}
/* Waits until `count` tasks have announced that they started. */
static void await_started(uint32_t count) {
  for (;;) {
    uint32_t s = __atomic_load_n(&sh->started, __ATOMIC_ACQUIRE);
    if (s >= count) return;
    mproc__plat_futex_wait(&sh->started, s, 5);
  }
}

static int square(const void *arg, size_t len, mproc_task *t) {
  if (len != sizeof(int)) return mproc_task_fail(t, MPROC_EINVAL, "bad length %zu", len);
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static int index_times_three(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t v = mproc_task_index(t) * 3;
  return mproc_task_return(t, &v, sizeof v);
}

static int fail_on_multiples_of_7(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  if (n % 7 == 0) return mproc_task_fail(t, MPROC_ERANGE, "%d is a multiple of 7", n);
  return mproc_task_return(t, &n, sizeof n);
}

/* Blocks until the gate opens, after announcing its start. */
static int gated(const void *arg, size_t len, mproc_task *t) {
  __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->started, INT32_MAX);
  while (!__atomic_load_n(&sh->gate, __ATOMIC_ACQUIRE)) mproc__plat_futex_wait(&sh->gate, 0, -1);
  return square(arg, len, t);
}

static int echo(const void *arg, size_t len, mproc_task *t) { return mproc_task_return(t, arg, len); }
static int arg_is_null(const void *arg, size_t len, mproc_task *t) {
  unsigned char r = arg == NULL && len == 0;
  return mproc_task_return(t, &r, 1);
}

static mproc_pool *make_pool(mproc_backend b, int workers, const mproc_pool_opts *extra) {
  mproc_pool_opts o = extra ? *extra : (mproc_pool_opts){0};
  o.backend = b;
  o.workers = workers;
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &o));
  CHECK_INT_EQ(mproc_pool_workers(p), b == MPROC_BACKEND_SERIAL ? 1 : workers);
  return p;
}

/* ---- the same semantics on every backend ---- */

static int two_bytes(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  uint16_t v = 0xabcd;
  return mproc_task_return(t, &v, sizeof v);
}

static void map_ordering(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 20000 };
  static int in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i - 5000;
  size_t chunks[] = {0, 1, 7, 4096, N * 2};
  for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
    memset(out, 0xff, sizeof out);
    mproc_map_report rep;
    CHECK_OK(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out,
                            &(mproc_map_opts){.chunk_size = chunks[c]}, &rep));
    for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], in[i] * in[i]);
    CHECK_INT_EQ(rep.ok, N);
    CHECK_INT_EQ(rep.failed, 0);
    CHECK_INT_EQ(rep.first_failed_index, -1);
  }
  /* no input records: tasks read their index */
  static int64_t idx[N];
  CHECK_OK(mproc_pool_map(p, index_times_three, NULL, N, 0, idx, sizeof *idx, NULL, NULL));
  for (int i = 0; i < N; i++) CHECK_INT_EQ(idx[i], (int64_t)i * 3);
  /* an empty map */
  CHECK_OK(mproc_pool_map(p, square, NULL, 0, sizeof(int), NULL, sizeof(int), NULL, NULL));
  /* a result shorter than its record leaves the rest zeroed, whatever was there */
  static uint64_t recs[64];
  memset(recs, 0xff, sizeof recs);
  CHECK_OK(mproc_pool_map(p, two_bytes, NULL, 64, 0, recs, sizeof *recs, NULL, NULL));
  for (int i = 0; i < 64; i++) CHECK_INT_EQ(recs[i], 0xabcd);
  mproc_pool_destroy(p);
}
MTEST(map_ordering_process) { map_ordering(MPROC_BACKEND_PROCESS); }

/* A map of long items is handed out a batch or two per worker at a time, whatever ran before it: after
 * tiny tasks, every batch of a map was once queued to the workers at its start (a static split).  Item 0
 * waits until all but itself and one batch queued behind it are done, which only a dynamic schedule
 * reaches; every other item takes 100 us. */
enum { SCHED_N = 40 };
static uint32_t *g_sched_done; /* shared with the workers */

static int long_or_gated(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  if (mproc_task_index(t) == 0) {
    double deadline = mproc__plat_now() + 10;
    uint32_t done;
    while ((done = __atomic_load_n(g_sched_done, __ATOMIC_ACQUIRE)) < SCHED_N - 2)
      if (mproc__plat_now() > deadline)
        return mproc_task_fail(t, MPROC_ETIMEDOUT, "only %u items done", done);
      else
        sched_yield();
  } else {
    double until = mproc__plat_now() + 100e-6;
    while (mproc__plat_now() < until) {
    }
    __atomic_fetch_add(g_sched_done, 1, __ATOMIC_RELEASE);
  }
  int64_t i = mproc_task_index(t);
  return mproc_task_return(t, &i, sizeof i);
}

static void map_after_tiny_tasks(mproc_backend b) {
  int err = 0;
  g_sched_done = mproc__plat_shm_map_anon(4096, &err);
  CHECK(g_sched_done != NULL);
  mproc_pool *p = make_pool(b, 2, NULL);
  for (int k = 0; k < 8; k++) { /* the pool's jobs so far took well under a microsecond */
    int x = k, r = 0;
    CHECK_OK(mproc_pool_apply(p, square, &x, sizeof x, &r, sizeof r, NULL));
  }
  static int64_t out[SCHED_N];
  mproc_map_report rep;
  int r = mproc_pool_map(p, long_or_gated, NULL, SCHED_N, 0, out, sizeof *out,
                         &(mproc_map_opts){.chunk_size = 1}, &rep);
  if (r) fprintf(stderr, "  item %lld: %s\n", (long long)rep.first_failed_index, rep.message);
  CHECK_OK(r);
  for (int i = 0; i < SCHED_N; i++) CHECK_INT_EQ(out[i], i);
  mproc_pool_destroy(p);
  CHECK_OK(mproc__plat_shm_unmap(g_sched_done, 4096));
}
MTEST(map_after_tiny_tasks_is_scheduled_dynamically_process) { map_after_tiny_tasks(MPROC_BACKEND_PROCESS); }
MTEST(map_after_tiny_tasks_is_scheduled_dynamically_thread) { map_after_tiny_tasks(MPROC_BACKEND_THREAD); }
MTEST(map_ordering_serial) { map_ordering(MPROC_BACKEND_SERIAL); }

static void map_errors(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 100 };
  int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i + 1; /* 7, 14, ..., 98 fail: 14 items */
  mproc_map_report rep;
  /* run everything, failures per item */
  CHECK_ERR(
      mproc_pool_map(
          p, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){.on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .chunk_size = 3}, &rep),
      MPROC_ERANGE);
  CHECK_INT_EQ(rep.failed, 14);
  CHECK_INT_EQ(rep.ok, N - 14);
  CHECK_INT_EQ(rep.cancelled, 0);
  CHECK_INT_EQ(rep.first_failed_index, 6);
  CHECK_INT_EQ(rep.first_failure.kind, MPROC_OUTCOME_FAILED);
  CHECK_STR_EQ(rep.message, "7 is a multiple of 7");
  for (int i = 0; i < N; i++) {
    CHECK_INT_EQ(codes[i], (i + 1) % 7 == 0 ? MPROC_ERANGE : 0);
    if (codes[i] == 0) CHECK_INT_EQ(out[i], i + 1);
  }
  /* stop at the first failure: every item's fate is known and adds up */
  for (int i = 0; i < N; i++) codes[i] = 12345;
  CHECK_ERR(mproc_pool_map(p, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){.item_codes = codes, .chunk_size = 1}, &rep),
            MPROC_ERANGE);
  CHECK_INT_EQ(rep.ok + rep.failed + rep.cancelled, N);
  CHECK_INT_CMP(rep.failed, >=, 1);
  CHECK_INT_CMP(rep.cancelled, >, 0);
  for (int i = 0; i < N; i++) CHECK(codes[i] == 0 || codes[i] == MPROC_ERANGE || codes[i] == MPROC_ECANCELED);
  /* stop after three failures */
  CHECK_ERR(
      mproc_pool_map(
          p, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){.on_error = MPROC_ON_ERROR_STOP_AFTER, .max_failures = 3, .chunk_size = 1}, &rep),
      MPROC_ERANGE);
  CHECK_INT_CMP(rep.failed, >=, 3);
  CHECK_INT_EQ(rep.ok + rep.failed + rep.cancelled, N);
  /* a result larger than its record fails that item */
  char small[N];
  CHECK_ERR(mproc_pool_map(p, square, in, N, sizeof *in, small, 1, NULL, &rep), MPROC_EMSGSIZE);
  mproc_pool_destroy(p);
}
MTEST(map_errors_process) { map_errors(MPROC_BACKEND_PROCESS); }
MTEST(map_errors_serial) { map_errors(MPROC_BACKEND_SERIAL); }

static void submit_results(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 200 };
  mproc_future *fs[N];
  for (int i = 0; i < N; i++) CHECK_OK(mproc_pool_submit(p, square, &i, sizeof i, NULL, &fs[i]));
  for (int i = 0; i < N; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(fs[i], MPROC_FOREVER, &data, &len));
    CHECK_INT_EQ(len, sizeof(int));
    CHECK_INT_EQ(*(const int *)data, i * i);
    CHECK_INT_EQ(mproc_future_done(fs[i]), 1);
    CHECK_INT_EQ(mproc_future_cancelled(fs[i]), 0);
    CHECK_INT_EQ(mproc_future_running(fs[i]), 0);
    CHECK_OK(mproc_future_error(fs[i], 0));
    mproc_outcome o;
    CHECK_OK(mproc_future_outcome(fs[i], &o));
    CHECK_INT_EQ(o.kind, MPROC_OUTCOME_OK);
    CHECK_INT_EQ(o.attempts, 1);
    mproc_future_release(fs[i]);
  }
  /* a failing task: its code and message reach the caller */
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, square, "x", 1, NULL, &f));
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_error(f, 0), MPROC_EINVAL);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_FAILED);
  CHECK_STR_EQ(o.message, "bad length 1");
  mproc_future_release(f);
  /* arguments and results around the size kept inside the job and the future (32 bytes), and empty ones:
   * the bytes come back whole, aligned for any type; an empty result is NULL */
  static const size_t sizes[] = {0, 1, 15, 31, 32, 33, 48, 100};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    unsigned char msg[100];
    for (size_t x = 0; x < sizes[k]; x++) msg[x] = (unsigned char)(k * 17 + x);
    CHECK_OK(mproc_pool_submit(p, echo, sizes[k] ? msg : NULL, sizes[k], NULL, &f));
    memset(msg, 0xee, sizeof msg); /* the submission kept its own copy */
    const void *d;
    size_t l;
    CHECK_OK(mproc_future_result(f, MPROC_FOREVER, &d, &l));
    CHECK_INT_EQ(l, sizes[k]);
    if (sizes[k] == 0)
      CHECK(d == NULL);
    else
      CHECK_INT_EQ((uintptr_t)d % 16, 0);
    for (size_t x = 0; x < l; x++) CHECK_INT_EQ(((const unsigned char *)d)[x], (unsigned char)(k * 17 + x));
    mproc_future_release(f);
  }
  /* an empty argument reaches the task as NULL, even when the submitter passed a pointer */
  unsigned char some[4] = {0};
  unsigned char got = 0;
  CHECK_OK(mproc_pool_apply(p, arg_is_null, NULL, 0, &got, 1, NULL));
  CHECK_INT_EQ(got, 1);
  got = 0;
  CHECK_OK(mproc_pool_apply(p, arg_is_null, some, 0, &got, 1, NULL));
  CHECK_INT_EQ(got, 1);
  /* results and arguments far larger than a ring, both ways */
  size_t big = 3u << 20;
  unsigned char *buf = malloc(big);
  for (size_t i = 0; i < big; i++) buf[i] = (unsigned char)(i * 31 + 7);
  CHECK_OK(mproc_pool_submit(p, echo, buf, big, NULL, &f));
  const void *data;
  size_t len;
  CHECK_OK(mproc_future_result(f, MPROC_FOREVER, &data, &len));
  CHECK_INT_EQ(len, big);
  CHECK(memcmp(data, buf, big) == 0);
  mproc_future_release(f);
  free(buf);
  /* apply */
  int n = 12, r = 0;
  size_t rl = 0;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, &rl));
  CHECK_INT_EQ(r, 144);
  CHECK_INT_EQ(rl, sizeof r);
  char tiny;
  CHECK_ERR(mproc_pool_apply(p, square, &n, sizeof n, &tiny, 1, &rl), MPROC_EMSGSIZE);
  CHECK_INT_EQ(rl, sizeof(int));
  CHECK_ERR(mproc_pool_apply(p, square, "x", 1, &r, sizeof r, NULL), MPROC_EINVAL);
  mproc_pool_destroy(p);
}
MTEST(submit_results_process) { submit_results(MPROC_BACKEND_PROCESS); }

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
MTEST(submit_results_serial) { submit_results(MPROC_BACKEND_SERIAL); }

static uint32_t cb_count;
static int cb_order[8];
static void on_done(mproc_future *f, void *user) {
  (void)f;
  cb_order[__atomic_load_n(&cb_count, __ATOMIC_SEQ_CST)] = (int)(intptr_t)user;
  __atomic_fetch_add(&cb_count, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&cb_count, INT32_MAX);
}
/* Waiters may see a future done before its callbacks ran (as in concurrent.futures): wait for them. */
static void await_callbacks(uint32_t count) {
  for (;;) {
    uint32_t c = __atomic_load_n(&cb_count, __ATOMIC_SEQ_CST);
    if (c >= count) return;
    mproc__plat_futex_wait(&cb_count, c, 5);
  }
}

static void wait_and_as_completed(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 50 };
  mproc_future *fs[N];
  for (int i = 0; i < N; i++) CHECK_OK(mproc_pool_submit(p, square, &i, sizeof i, NULL, &fs[i]));
  size_t ndone = 0;
  unsigned char flags[N];
  CHECK_OK(mproc_futures_wait(fs, N, MPROC_FOREVER, MPROC_ALL_COMPLETED, &ndone, flags));
  CHECK_INT_EQ(ndone, N);
  for (int i = 0; i < N; i++) CHECK_INT_EQ(flags[i], 1);
  mproc_as_completed *it;
  CHECK_OK(mproc_as_completed_create(&it, fs, N));
  mproc_as_completed *it2;
  CHECK_ERR(mproc_as_completed_create(&it2, fs, N), MPROC_EBUSY);
  int seen[N] = {0};
  mproc_future *f;
  for (int k = 0; k < N; k++) {
    CHECK_OK(mproc_as_completed_next(it, MPROC_FOREVER, &f));
    const void *data;
    CHECK_OK(mproc_future_result(f, 0, &data, NULL));
    int v = *(const int *)data;
    int i = 0;
    while (i < N && i * i != v) i++;
    CHECK(i < N);
    seen[i]++;
  }
  CHECK_ERR(mproc_as_completed_next(it, 0, &f), MPROC_EEOF);
  for (int i = 0; i < N; i++) CHECK_INT_EQ(seen[i], 1);
  mproc_as_completed_destroy(it);
  /* callbacks on a done future run at once, in this thread */
  cb_count = 0;
  CHECK_OK(mproc_future_add_done_callback(fs[0], on_done, (void *)1));
  CHECK_INT_EQ(cb_count, 1);
  for (int i = 0; i < N; i++) mproc_future_release(fs[i]);
  mproc_pool_destroy(p);
}
MTEST(wait_and_as_completed_process) { wait_and_as_completed(MPROC_BACKEND_PROCESS); }
MTEST(wait_and_as_completed_serial) { wait_and_as_completed(MPROC_BACKEND_SERIAL); }

/* Live blocks allocated through mproc's allocator (counted by replacing it). */
static long live_blocks, peak_blocks;
static void count_block(long d) {
  long now = __atomic_add_fetch(&live_blocks, d, __ATOMIC_RELAXED);
  long peak = __atomic_load_n(&peak_blocks, __ATOMIC_RELAXED);
  while (now > peak &&
         !__atomic_compare_exchange_n(&peak_blocks, &peak, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}
static void *counting_malloc(size_t n) {
  void *p = malloc(n);
  if (p) count_block(1);
  return p;
}
static void *counting_calloc(size_t c, size_t n) {
  void *p = calloc(c, n);
  if (p) count_block(1);
  return p;
}
static void *counting_realloc(void *q, size_t n) {
  void *p = realloc(q, n);
  if (p && !q) count_block(1);
  return p;
}
static void counting_free(void *p) {
  if (p) count_block(-1);
  free(p);
}

static void as_completed_fed(mproc_backend b) {
  /* 200,000 tasks through one iterator, at most 64 in flight: what mproc holds stays bounded by the 64 */
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = b}));
  mproc_as_completed *it;
  CHECK_OK(mproc_as_completed_create(&it, NULL, 0));
  mproc_future *f = NULL;
  CHECK_ERR(mproc_as_completed_add(NULL, f), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_next(it, 0, &f), MPROC_EEOF); /* empty */
  CHECK_OK(mproc_replace_allocator(counting_malloc, counting_realloc, counting_calloc, counting_free));
  const int64_t N = 200000, K = 64;
  int64_t submitted = 0, seen = 0, sum = 0;
  long base = -1;
  while (seen < N) {
    while (submitted < N && submitted - seen < K) {
      int v = (int)(submitted % 40000);
      CHECK_OK(mproc_pool_submit(p, square, &v, sizeof v, NULL, &f));
      CHECK_OK(mproc_as_completed_add(it, f));
      submitted++;
    }
    if (base < 0) {
      base = __atomic_load_n(&live_blocks, __ATOMIC_RELAXED);
      __atomic_store_n(&peak_blocks, base, __ATOMIC_RELAXED);
    }
    CHECK_OK(mproc_as_completed_next(it, 10.0, &f));
    const int *r;
    CHECK_OK(mproc_future_result(f, 0, (const void **)&r, NULL));
    sum += *r;
    mproc_future_release(f);
    seen++;
  }
  long peak = __atomic_load_n(&peak_blocks, __ATOMIC_RELAXED);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(mproc_as_completed_next(it, 0, &f), MPROC_EEOF);
  int64_t want = 0;
  for (int64_t i = 0; i < N; i++) want += (i % 40000) * (i % 40000);
  CHECK_INT_EQ(sum, want);
  /* a future with its job and result is a few blocks: 200,000 of them would be ~10^6 */
  CHECK_INT_CMP(peak - base, <, 40 * K);
  /* a future of another iterator or pool is refused */
  mproc_pool *q;
  CHECK_OK(mproc_pool_create(&q, &(mproc_pool_opts){.workers = 1, .backend = b}));
  mproc_future *g;
  int two = 2;
  CHECK_OK(mproc_pool_submit(q, square, &two, sizeof two, NULL, &g));
  CHECK_OK(mproc_pool_submit(p, square, &two, sizeof two, NULL, &f));
  CHECK_OK(mproc_as_completed_add(it, f));
  CHECK_ERR(mproc_as_completed_add(it, g), MPROC_EINVAL);
  mproc_as_completed *it2;
  CHECK_OK(mproc_as_completed_create(&it2, NULL, 0));
  CHECK_ERR(mproc_as_completed_add(it2, f), MPROC_EBUSY);
  CHECK_OK(mproc_as_completed_add(it, f)); /* twice: yielded once */
  mproc_future *y;
  CHECK_OK(mproc_as_completed_next(it, 10.0, &y));
  CHECK(y == f);
  CHECK_ERR(mproc_as_completed_next(it, 0, &y), MPROC_EEOF);
  mproc_as_completed_destroy(it2);
  mproc_as_completed_destroy(it);
  mproc_future_release(f);
  mproc_future_release(g);
  mproc_pool_destroy(q);
  mproc_pool_destroy(p);
}
MTEST_TIMEOUT(as_completed_fed_in_bounded_memory_process, 120) { as_completed_fed(MPROC_BACKEND_PROCESS); }
MTEST_TIMEOUT(as_completed_fed_in_bounded_memory_thread, 120) { as_completed_fed(MPROC_BACKEND_THREAD); }
MTEST(as_completed_fed_in_bounded_memory_serial) { as_completed_fed(MPROC_BACKEND_SERIAL); }

static void closed_pool(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  int n = 3;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_OK(mproc_pool_close(p));
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  CHECK_INT_EQ(mproc_future_done(f), 1);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f), MPROC_ECLOSED);
  int out;
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_ECLOSED);
  CHECK_ERR(mproc_executor_submit(p, square, &n, sizeof n, &f), MPROC_ECLOSED);
  mproc_pool_destroy(p);
}
MTEST(closed_pool_process) { closed_pool(MPROC_BACKEND_PROCESS); }
MTEST(closed_pool_serial) { closed_pool(MPROC_BACKEND_SERIAL); }

/* ---- process backend: order of events, cancellation, workers ---- */

static double thread_cpu_seconds(void) {
  struct timespec ts;
  CHECK_OK(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts));
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A caller waiting for a result polls only briefly (a few ms on a new pool's first wait, microseconds
 * later), then sleeps: 0.3 s waits for a task held by the gate cost it far less than 0.3 s of CPU. */
MTEST(waiting_caller_does_not_spin) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  int n = 1;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &f));
  for (int k = 0; k < 3; k++) {
    double cpu = thread_cpu_seconds();
    CHECK_ERR(mproc_future_wait(f, 0.3), MPROC_ETIMEDOUT);
    CHECK_INT_CMP((thread_cpu_seconds() - cpu) * 1e6, <, 50000); /* us */
  }
  open_gate();
  CHECK_OK(mproc_future_result(f, MPROC_FOREVER, NULL, NULL));
  mproc_future_release(f);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST(cancel_before_start_and_callbacks) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  int n = 2;
  mproc_future *running, *queued1, *queued2, *queued3;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &running));
  await_started(1);
  CHECK_INT_EQ(mproc_future_running(running), 1);
  CHECK_INT_EQ(mproc_future_cancel(running), 0);                        /* running: cannot be cancelled */
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &queued1)); /* handed to the worker: running */
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &queued2)); /* waits in the queue */
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &queued3));
  cb_count = 0;
  CHECK_OK(mproc_future_add_done_callback(queued3, on_done, (void *)3));
  CHECK_OK(mproc_future_add_done_callback(running, on_done, (void *)1));
  CHECK_OK(mproc_future_add_done_callback(running, on_done, (void *)2));
  CHECK_INT_EQ(mproc_future_cancel(queued2), 1);
  CHECK_INT_EQ(mproc_future_cancel(queued2), 1); /* again: still cancelled */
  CHECK_INT_EQ(mproc_future_cancelled(queued2), 1);
  CHECK_INT_EQ(mproc_future_done(queued2), 1);
  CHECK_ERR(mproc_future_result(queued2, 0, NULL, NULL), MPROC_ECANCELED);
  /* wait with a timeout: nothing else can finish while the gate is shut */
  mproc_future *all[] = {running, queued1, queued3};
  size_t ndone = 9;
  CHECK_ERR(mproc_futures_wait(all, 3, 0.05, MPROC_FIRST_COMPLETED, &ndone, NULL), MPROC_ETIMEDOUT);
  CHECK_INT_EQ(ndone, 0);
  CHECK_ERR(mproc_future_wait(running, 0.02), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_future_result(running, 0, NULL, NULL), MPROC_ETIMEDOUT);
  mproc_as_completed *it;
  CHECK_OK(mproc_as_completed_create(&it, all, 3));
  mproc_future *f;
  CHECK_ERR(mproc_as_completed_next(it, 0.02, &f), MPROC_ETIMEDOUT);
  open_gate();
  CHECK_OK(mproc_futures_wait(all, 3, MPROC_FOREVER, MPROC_FIRST_COMPLETED, &ndone, NULL));
  CHECK_INT_CMP(ndone, >=, 1);
  CHECK_OK(mproc_futures_wait(all, 3, MPROC_FOREVER, MPROC_ALL_COMPLETED, &ndone, NULL));
  CHECK_INT_EQ(ndone, 3);
  /* completion order is submission order on one worker */
  for (int k = 0; k < 3; k++) {
    CHECK_OK(mproc_as_completed_next(it, MPROC_FOREVER, &f));
    CHECK(f == all[k]);
  }
  mproc_as_completed_destroy(it);
  /* callbacks ran on the manager thread after completion, in the order added */
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  await_callbacks(3);
  CHECK_INT_EQ(cb_count, 3);
  CHECK_INT_EQ(cb_order[0], 1);
  CHECK_INT_EQ(cb_order[1], 2);
  CHECK_INT_EQ(cb_order[2], 3);
  mproc_future_release(running);
  mproc_future_release(queued1);
  mproc_future_release(queued2);
  mproc_future_release(queued3);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST(first_exception_mode) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int good = 3;
  mproc_future *fs[2];
  CHECK_OK(mproc_pool_submit(p, square, "bad", 3, NULL, &fs[0]));
  CHECK_OK(mproc_pool_submit(p, square, &good, sizeof good, NULL, &fs[1]));
  size_t ndone;
  CHECK_OK(mproc_futures_wait(fs, 2, MPROC_FOREVER, MPROC_FIRST_EXCEPTION, &ndone, NULL));
  CHECK_INT_EQ(mproc_future_done(fs[0]), 1);
  CHECK_ERR(mproc_future_error(fs[0], 0), MPROC_EINVAL);
  mproc_future_release(fs[0]);
  mproc_future_release(fs[1]);
  mproc_pool_destroy(p);
}

static int init_calls;
static int initializer(const void *arg, size_t len, mproc_task *t) {
  (void)t;
  if (len != 4 || memcmp(arg, "init", 4) != 0) return MPROC_EINVAL;
  init_calls = 1000; /* in the worker's memory */
  return 0;
}
static int read_init(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int v = init_calls + mproc_task_worker_id(t);
  return mproc_task_return(t, &v, sizeof v);
}

MTEST(initializer_and_worker_ids) {
  mproc_pool *p =
      make_pool(MPROC_BACKEND_PROCESS, 2,
                &(mproc_pool_opts){.initializer = initializer, .init_arg = "init", .init_arg_len = 4});
  int out[64];
  CHECK_OK(
      mproc_pool_map(p, read_init, NULL, 64, 0, out, sizeof *out, &(mproc_map_opts){.chunk_size = 1}, NULL));
  for (int i = 0; i < 64; i++) CHECK(out[i] == 1000 || out[i] == 1001);
  CHECK_INT_EQ(init_calls, 0); /* the caller's memory is untouched */
  mproc_pool_destroy(p);
}

MTEST(failing_initializer_is_a_crash) {
  mproc_pool *p =
      make_pool(MPROC_BACKEND_PROCESS, 1,
                &(mproc_pool_opts){.initializer = initializer, .init_arg = "nope", .init_arg_len = 4});
  mproc_future *f;
  int n = 1;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_ECRASHED);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.exit_code, 120);
  CHECK(strstr(o.message, "initializer failed") != NULL);
  mproc_future_release(f);
  /* each later task fails the same way, quickly, instead of the pool hanging or spinning */
  for (int k = 0; k < 3; k++) {
    CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
    CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_ECRASHED);
    mproc_future_release(f);
  }
  mproc_pool_destroy(p);
}

static int count_and_report_pid(const void *arg, size_t len, mproc_task *t) {
  __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
  return mtest_report_pid(arg, len, t);
}

MTEST(max_tasks_per_child) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.max_tasks_per_child = 1});
  enum { N = 12 };
  int pids[N];
  CHECK_OK(mproc_pool_map(p, count_and_report_pid, NULL, N, 0, pids, sizeof *pids,
                          &(mproc_map_opts){.chunk_size = 1}, NULL));
  for (int i = 0; i < N; i++)
    for (int k = i + 1; k < N; k++) CHECK_INT_CMP(pids[i], !=, pids[k]);
  CHECK_INT_EQ(sh->started, N); /* each task ran once: none was lost with its retiring worker */
  mproc_pool_destroy(p);
  unmap_shared();
}

static int read_omp(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  const char *v = getenv("OMP_NUM_THREADS");
  return mproc_task_return(t, v ? v : "", v ? strlen(v) + 1 : 1);
}

MTEST(thread_env_guard) {
  unsetenv("OMP_NUM_THREADS");
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  char buf[16] = "";
  CHECK_OK(mproc_pool_apply(p, read_omp, NULL, 0, buf, sizeof buf, NULL));
  char want[16];
  int n = mproc_cpu_count() / 2;
  snprintf(want, sizeof want, "%d", n > 0 ? n : 1);
  CHECK_STR_EQ(buf, want);
  CHECK(getenv("OMP_NUM_THREADS") == NULL); /* the caller's environment is untouched */
  mproc_pool_destroy(p);
  setenv("OMP_NUM_THREADS", "5", 1);
  p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  CHECK_OK(mproc_pool_apply(p, read_omp, NULL, 0, buf, sizeof buf, NULL));
  CHECK_STR_EQ(buf, "5");
  mproc_pool_destroy(p);
  unsetenv("OMP_NUM_THREADS");
}

MTEST(environment_defaults) {
  mproc_pool *p;
  setenv("MPROC_WORKERS", "3", 1);
  CHECK_OK(mproc_pool_create(&p, NULL));
  CHECK_INT_EQ(mproc_pool_workers(p), 3);
  mproc_pool_destroy(p);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1})); /* options win */
  CHECK_INT_EQ(mproc_pool_workers(p), 1);
  mproc_pool_destroy(p);
  setenv("MPROC_WORKERS", "lots", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_EINVAL);
  unsetenv("MPROC_WORKERS");
  setenv("MPROC_BACKEND", "serial", 1);
  CHECK_OK(mproc_pool_create(&p, NULL));
  int n = 4, r;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL));
  CHECK_INT_EQ(r, 16);
  mproc_pool_destroy(p);
  setenv("MPROC_BACKEND", "mpi", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_ENOBACKEND);
  setenv("MPROC_BACKEND", "quantum", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_EINVAL);
  unsetenv("MPROC_BACKEND");
}

/* ---- faults ---- */

static int misbehave(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  switch (n) {
    case -1:
      raise(SIGSEGV);
      break;
    case -2:
      abort();
    case -3:
      _exit(42);
    case -4: {
      /* announce our pid, then wait to be killed from outside */
      int pid = getpid();
      __atomic_store_n(&sh->pids[0], pid, __ATOMIC_SEQ_CST);
      __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
      mproc__plat_futex_wake(&sh->started, INT32_MAX);
      for (;;) pause();
    }
    case -5:
      for (;;) pause(); /* hangs: only its timeout ends it */
    default:
      break;
  }
  int sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static void check_crash(mproc_future *f, mproc_outcome_kind kind, int code, int sig, int exit_code) {
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), code);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, kind);
  CHECK_INT_EQ(o.signal, sig);
  CHECK_INT_EQ(o.exit_code, exit_code);
  CHECK(strlen(o.message) > 0);
}

MTEST_TIMEOUT(crashes_fail_only_their_task, 60) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.task_timeout = 0});
  enum { N = 300 };
  mproc_future *fs[N];
  int bad[] = {-1, -2, -3, -4};
  int where[] = {10, 100, 200, 250};
  for (int i = 0; i < N; i++) {
    int n = i;
    for (int k = 0; k < 4; k++)
      if (i == where[k]) n = bad[k];
    CHECK_OK(mproc_pool_submit(p, misbehave, &n, sizeof n, NULL, &fs[i]));
  }
  /* the task killed from outside: wait for it to announce itself, then kill its worker */
  await_started(1);
  CHECK(kill(__atomic_load_n(&sh->pids[0], __ATOMIC_SEQ_CST), SIGKILL) == 0);
  check_crash(fs[10], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGSEGV, -1);
  check_crash(fs[100], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGABRT, -1);
  check_crash(fs[200], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, 0, 42);
  check_crash(fs[250], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGKILL, -1);
  for (int i = 0; i < N; i++) {
    if (i == 10 || i == 100 || i == 200 || i == 250) continue;
    const void *data;
    CHECK_OK(mproc_future_result(fs[i], MPROC_FOREVER, &data, NULL));
    CHECK_INT_EQ(*(const int *)data, i * i);
  }
  for (int i = 0; i < N; i++) mproc_future_release(fs[i]);
  /* the pool is still whole */
  int in[100], out[100];
  for (int i = 0; i < 100; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, 100, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 100; i++) CHECK_INT_EQ(out[i], i * i);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST_TIMEOUT(hung_task_times_out, 60) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc_future *fs[20];
  for (int i = 0; i < 20; i++) {
    int n = i == 5 ? -5 : i;
    CHECK_OK(mproc_pool_submit(p, misbehave, &n, sizeof n,
                               i == 5 ? &(mproc_submit_opts){.timeout = 0.2} : NULL, &fs[i]));
  }
  double t0 = mproc__plat_now();
  check_crash(fs[5], MPROC_OUTCOME_TIMEDOUT, MPROC_ETASKTIMEOUT, 0, -1);
  CHECK(mproc__plat_now() - t0 >= 0.15);
  for (int i = 0; i < 20; i++) {
    if (i == 5) continue;
    const void *data;
    CHECK_OK(mproc_future_result(fs[i], MPROC_FOREVER, &data, NULL));
    CHECK_INT_EQ(*(const int *)data, i * i);
  }
  for (int i = 0; i < 20; i++) mproc_future_release(fs[i]);
  /* a pool-wide timeout on a map item */
  int in[10] = {0, 1, 2, 3, -5, 5, 6, 7, 8, 9}, out[10], codes[10];
  mproc_map_report rep;
  CHECK_ERR(
      mproc_pool_map(
          p, misbehave, in, 10, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){
              .task_timeout = 0.2, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .chunk_size = 5},
          &rep),
      MPROC_ETASKTIMEOUT);
  CHECK_INT_EQ(rep.failed, 1);
  CHECK_INT_EQ(rep.first_failed_index, 4);
  CHECK_INT_EQ(rep.first_failure.kind, MPROC_OUTCOME_TIMEDOUT);
  for (int i = 0; i < 10; i++)
    if (i != 4) CHECK_INT_EQ(out[i], in[i] * in[i]);
  mproc_pool_destroy(p);
}

MTEST(crash_inside_a_batch_fails_one_item) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  enum { N = 1000 };
  static int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  in[333] = -1; /* segfault */
  in[777] = -2; /* abort */
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, misbehave, in, N, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){
                               .chunk_size = 100, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes},
                           &rep),
            MPROC_ECRASHED);
  CHECK_INT_EQ(rep.failed, 2);
  CHECK_INT_EQ(rep.ok, N - 2);
  CHECK_INT_EQ(rep.first_failed_index, 333);
  CHECK_INT_EQ(rep.first_failure.signal, SIGSEGV);
  for (int i = 0; i < N; i++) {
    if (i == 333 || i == 777) {
      CHECK_INT_EQ(codes[i], MPROC_ECRASHED);
    } else {
      CHECK_INT_EQ(codes[i], 0);
      CHECK_INT_EQ(out[i], i * i);
    }
  }
  mproc_pool_destroy(p);
}

static int crash_first_attempt(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_attempt(t) < 2) raise(SIGSEGV);
  return square(arg, len, t);
}

MTEST(retries_make_a_flaky_task_succeed) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.max_retries = 2});
  int n = 9;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, crash_first_attempt, &n, sizeof n, NULL, &f));
  const void *data;
  CHECK_OK(mproc_future_result(f, MPROC_FOREVER, &data, NULL));
  CHECK_INT_EQ(*(const int *)data, 81);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.attempts, 2);
  mproc_future_release(f);
  /* without retries it is reported */
  CHECK_OK(
      mproc_pool_submit(p, crash_first_attempt, &n, sizeof n, &(mproc_submit_opts){.max_retries = -1}, &f));
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_ECRASHED);
  mproc_future_release(f);
  /* in a map too */
  int in[50], out[50];
  for (int i = 0; i < 50; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, crash_first_attempt, in, 50, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 10}, NULL));
  for (int i = 0; i < 50; i++) CHECK_INT_EQ(out[i], i * i);
  mproc_pool_destroy(p);
}

MTEST_TIMEOUT(destroy_does_not_hang, 30) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc_future *fs[6];
  int n = 1;
  for (int i = 0; i < 6; i++) CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[i]));
  await_started(2);
  double t0 = mproc__plat_now();
  mproc_pool_destroy(p); /* gate never opens: running tasks are killed after the grace period */
  CHECK(mproc__plat_now() - t0 < 5);
  for (int i = 0; i < 6; i++) {
    CHECK_INT_EQ(mproc_future_done(fs[i]), 1);
    CHECK_ERR(mproc_future_error(fs[i], 0), MPROC_ECANCELED);
    mproc_future_release(fs[i]);
  }
  unmap_shared();
}

MTEST(shutdown_with_cancel_and_terminate) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  mproc_future *fs[5];
  int n = 2;
  for (int i = 0; i < 5; i++) CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[i]));
  await_started(1);
  CHECK_OK(mproc_executor_shutdown(p, 0, 1)); /* cancel what has not been handed out */
  open_gate();
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_future_error(fs[0], 0));
  int cancelled = 0;
  for (int i = 1; i < 5; i++) cancelled += mproc_future_cancelled(fs[i]);
  CHECK_INT_CMP(cancelled, >=, 3); /* one more may have been handed to the worker already */
  for (int i = 0; i < 5; i++) mproc_future_release(fs[i]);
  mproc_pool_destroy(p);

  /* terminate kills what runs */
  __atomic_store_n(&sh->gate, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&sh->started, 0, __ATOMIC_SEQ_CST);
  p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[0]));
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[1]));
  await_started(1);
  CHECK_OK(mproc_pool_terminate(p));
  CHECK_ERR(mproc_future_error(fs[0], MPROC_FOREVER), MPROC_ECANCELED);
  CHECK_ERR(mproc_future_error(fs[1], MPROC_FOREVER), MPROC_ECANCELED);
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  mproc_future_release(fs[0]);
  mproc_future_release(fs[1]);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST_HELPER(pool_then_wait) {
  (void)argc;
  int fd = atoi(argv[1]);
  mproc_pool *p;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}) != 0)
    return 3;
  return mtest_report_pool_pids(p, fd);
}

MTEST(workers_die_with_the_caller) {
  mtest_check_die_with_caller("pool_then_wait", 9, 1000); /* the template and 8 workers' pids */
}

MTEST(bad_input) {
  mproc_pool *p = NULL;
  CHECK_ERR(mproc_pool_create(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = -1}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 100000}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.max_retries = -2}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.task_timeout = -1}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.task_timeout = NAN}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.backend = 99}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.init_arg_len = 3}), MPROC_EINVAL);
  CHECK(p == NULL);
  CHECK_ERR(mproc_pool_workers(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_close(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_join(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_terminate(NULL), MPROC_EINVAL);
  mproc_pool_destroy(NULL);
  mproc_future *f = NULL;
  p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  int n = 1, out;
  CHECK_ERR(mproc_pool_submit(NULL, square, &n, sizeof n, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, NULL, &n, sizeof n, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, square, NULL, 4, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, &(mproc_submit_opts){.timeout = -1}, &f),
            MPROC_EINVAL);
  CHECK(f == NULL);
  CHECK_ERR(mproc_pool_map(NULL, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, NULL, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, NULL, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, NULL, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out,
                           &(mproc_map_opts){.on_error = MPROC_ON_ERROR_STOP_AFTER}, NULL),
            MPROC_EINVAL);
  CHECK_ERR(
      mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, &(mproc_map_opts){.on_error = 9}, NULL),
      MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out,
                           &(mproc_map_opts){.task_timeout = NAN}, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, square, &n, sizeof n, NULL, 4, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_future_result(NULL, 0, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_error(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_future_outcome(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_cancel(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_cancelled(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_running(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_done(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_add_done_callback(NULL, on_done, NULL), MPROC_EINVAL);
  mproc_future_release(NULL);
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_wait(f, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_future_add_done_callback(f, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_outcome(f, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(NULL, 1, 0, MPROC_ALL_COMPLETED, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(&f, 1, 0, 7, NULL, NULL), MPROC_EINVAL);
  mproc_future *withnull[2] = {f, NULL};
  CHECK_ERR(mproc_futures_wait(withnull, 2, 0, MPROC_ALL_COMPLETED, NULL, NULL), MPROC_EINVAL);
  size_t nd = 5;
  CHECK_OK(mproc_futures_wait(NULL, 0, 0, MPROC_ALL_COMPLETED, &nd, NULL));
  CHECK_INT_EQ(nd, 0);
  mproc_as_completed *it;
  CHECK_ERR(mproc_as_completed_create(NULL, &f, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_create(&it, withnull, 2), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_next(NULL, 0, &f), MPROC_EINVAL);
  CHECK_OK(mproc_as_completed_create(&it, NULL, 0));
  mproc_future *g;
  CHECK_ERR(mproc_as_completed_next(it, 0, &g), MPROC_EEOF);
  CHECK_ERR(mproc_as_completed_next(it, NAN, &g), MPROC_EINVAL);
  mproc_as_completed_destroy(it);
  mproc_as_completed_destroy(NULL);
  CHECK_ERR(mproc_executor_shutdown(NULL, 1, 1), MPROC_EINVAL);
  CHECK_OK(mproc_future_wait(f, MPROC_FOREVER));
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

static int fail_fork(void) {
  errno = EAGAIN;
  return -1;
}

MTEST(fork_failure_leaves_nothing) {
  mproc__plat_sys.fork = (pid_t(*)(void))fail_fork;
  mproc_pool *p = NULL;
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}),
            MPROC_EAGAIN);
  mproc__plat_syscalls_reset();
  CHECK(p == NULL);
}

/* The template is forked by the thread that creates the pool; it must end with the caller's process, not
 * with that thread (Linux ties the parent-death signal to the forking thread).  A template that still had
 * that signal when the thread ended would die (that version fails here 10 runs out of 10). */
static void create_process_pool(void *out) {
  CHECK_OK(mproc_pool_create((mproc_pool **)out,
                             &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}));
}

MTEST(pool_outlives_the_thread_that_created_it) {
  mproc_pool *p = NULL;
  mtest_in_thread_that_ends(create_process_pool, &p);
  int in[64], out[64];
  for (int i = 0; i < 64; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, 64, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 64; i++) CHECK_INT_EQ(out[i], i * i);
  siginfo_t si = {0};
  CHECK(waitid(P_PID, (id_t)p->eng.tpl_pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0);
  CHECK_INT_EQ(si.si_pid, 0); /* the template has not ended */
  mproc_pool_destroy(p);
}

/* The first fork (the template's, in this process) succeeds; every later one, in the template, fails once
 * the test has let it (a byte on the gate pipe each), so that a task is queued before the pool is lost. */
static pid_t (*real_fork)(void);
static int forks_seen, fork_gate[2];
static pid_t fork_once(void) {
  if (forks_seen++ == 0) return real_fork();
  char c;
  while (read(fork_gate[0], &c, 1) < 0 && errno == EINTR) {
  }
  errno = EAGAIN;
  return -1;
}

MTEST(no_worker_can_start_fails_tasks_not_the_caller) {
  real_fork = mproc__plat_sys.fork;
  forks_seen = 0;
  CHECK(pipe(fork_gate) == 0);
  mproc__plat_sys.fork = fork_once;
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc__plat_syscalls_reset();
  int n = 3;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK(write(fork_gate[1], "xx", 2) == 2); /* now both workers' forks fail */
  CHECK_ERR(mproc_future_error(f, 10.0), MPROC_EAGAIN);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_LOST);
  CHECK(strstr(o.message, "no worker could be started") != NULL);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f), MPROC_EAGAIN);
  int out;
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EAGAIN);
  mproc_pool_destroy(p);
  close(fork_gate[0]);
  close(fork_gate[1]);
}

static mproc_pool *one_worker_pool(void) { return make_pool(MPROC_BACKEND_PROCESS, 1, NULL); }

MTEST(template_killed_in_a_fork_that_made_a_child) { mtest_template_dies_in_a_fork(one_worker_pool, false); }
MTEST(template_killed_in_a_fork_that_made_none) { mtest_template_dies_in_a_fork(one_worker_pool, true); }

static uint32_t async_ok, async_err;
static int async_sum;
static void on_result(const void *data, size_t len, void *user) {
  (void)user;
  if (len == sizeof(int)) __atomic_fetch_add(&async_sum, *(const int *)data, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&async_ok, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&async_ok, INT32_MAX);
}
static void on_error(int code, const char *msg, void *user) {
  if (code == MPROC_EINVAL && strcmp(msg, "bad length 1") == 0 && user == (void *)&async_err)
    __atomic_fetch_add(&async_err, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&async_ok, INT32_MAX);
}

static void apply_async(mproc_backend b) {
  async_ok = async_err = 0;
  async_sum = 0;
  mproc_pool *p = make_pool(b, 2, NULL);
  for (int i = 1; i <= 10; i++)
    CHECK_OK(mproc_pool_apply_async(p, square, &i, sizeof i, on_result, on_error, NULL, NULL));
  mproc_future *f;
  CHECK_OK(mproc_pool_apply_async(p, square, "x", 1, on_result, on_error, &async_err, &f));
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_EINVAL); /* AsyncResult.successful() is false */
  CHECK_INT_EQ(mproc_future_done(f), 1);                         /* ready() */
  mproc_future_release(f);
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  for (;;) {
    uint32_t n = __atomic_load_n(&async_ok, __ATOMIC_SEQ_CST);
    if (n >= 10 && __atomic_load_n(&async_err, __ATOMIC_SEQ_CST) == 1) break;
    mproc__plat_futex_wait(&async_ok, n, 1);
  }
  CHECK_INT_EQ(async_sum, 385);
  CHECK_ERR(mproc_pool_apply_async(p, NULL, NULL, 0, NULL, NULL, NULL, NULL), MPROC_EINVAL);
  mproc_pool_destroy(p);
}
MTEST(apply_async_process) { apply_async(MPROC_BACKEND_PROCESS); }
MTEST(apply_async_serial) { apply_async(MPROC_BACKEND_SERIAL); }

static pid_t caller_pid;

/* A child of the test that sends SIGINT to the caller every 10 ms until acknowledged, as a user pressing
 * Ctrl-C during a wait would (the caller keeps mproc's handler installed for the whole test, so a signal
 * that comes before the wait began is counted, not fatal). */
static pid_t start_signaller(void) {
  __atomic_store_n(&sh->ack, 0, __ATOMIC_SEQ_CST);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    while (!__atomic_load_n(&sh->ack, __ATOMIC_SEQ_CST)) {
      kill(caller_pid, SIGINT);
      mproc__plat_futex_wait(&sh->ack, 0, 0.01);
    }
    _exit(0);
  }
  return pid;
}

static void stop_signaller(pid_t pid) {
  __atomic_store_n(&sh->ack, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->ack, INT32_MAX);
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid); /* after this no SIGINT is on its way */
}

MTEST(map_timeout_cancels_the_rest) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int in[40], out[40], codes[40];
  for (int i = 0; i < 40; i++) in[i] = i;
  mproc_map_report rep;
  double t0 = mproc__plat_now();
  CHECK_ERR(mproc_pool_map(p, gated, in, 40, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){.timeout = 0.1, .chunk_size = 2, .item_codes = codes}, &rep),
            MPROC_ETIMEDOUT);
  CHECK(mproc__plat_now() - t0 >= 0.09);
  CHECK_INT_EQ(rep.cancelled, 40);
  for (int i = 0; i < 40; i++) CHECK_INT_EQ(codes[i], MPROC_ECANCELED);
  /* the killed workers were replaced: the pool works */
  open_gate();
  CHECK_OK(mproc_pool_map(p, square, in, 40, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 40; i++) CHECK_INT_EQ(out[i], i * i);
  CHECK_ERR(
      mproc_pool_map(p, square, in, 40, sizeof *in, out, sizeof *out, &(mproc_map_opts){.timeout = -1}, NULL),
      MPROC_EINVAL);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST(ctrl_c_ends_a_map_and_a_wait) {
  map_shared();
  caller_pid = getpid();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  /* keep mproc's handler installed for the whole test, so a signal sent a moment early is counted rather
   * than fatal; each wait still only reacts to signals that come after it began */
  mproc__sigint_begin();
  int in[20], out[20];
  for (int i = 0; i < 20; i++) in[i] = i;
  mproc_map_report rep;
  pid_t sig = start_signaller();
  CHECK_ERR(mproc_pool_map(p, gated, in, 20, sizeof *in, out, sizeof *out, &(mproc_map_opts){.chunk_size = 1},
                           &rep),
            MPROC_EINTERRUPTED);
  stop_signaller(sig);
  CHECK_INT_EQ(rep.ok, 0);
  CHECK_INT_EQ(rep.cancelled, 20);
  /* a future's wait too; the task keeps running until terminate */
  mproc_future *f;
  int n = 3;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &f));
  sig = start_signaller();
  CHECK_ERR(mproc_future_wait(f, MPROC_FOREVER), MPROC_EINTERRUPTED);
  stop_signaller(sig);
  CHECK_INT_EQ(mproc_future_done(f), 0);
  CHECK_OK(mproc_pool_terminate(p));
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ECANCELED);
  mproc_future_release(f);
  mproc__sigint_end();
  /* outside a wait SIGINT is the program's again */
  struct sigaction sa;
  sigaction(SIGINT, NULL, &sa);
  CHECK(sa.sa_handler == SIG_DFL);
  mproc_pool_destroy(p);
  unmap_shared();
}

/* ---- imap / imap_unordered ---- */
#include <sys/resource.h>

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

/* ---- the thread backend runs the same semantic tests ---- */
MTEST(map_ordering_thread) { map_ordering(MPROC_BACKEND_THREAD); }
MTEST(map_errors_thread) { map_errors(MPROC_BACKEND_THREAD); }
MTEST(submit_results_thread) { submit_results(MPROC_BACKEND_THREAD); }
MTEST(rings_rewind_when_idle_thread) { rings_rewind_when_idle(MPROC_BACKEND_THREAD); }

/* A thread pool destroyed right after a submission: its worker thread may not have run yet, and the
 * manager may not have heard of it (the task is then cancelled).  Destroy still stops and joins it, so it
 * never runs on a freed pool (the sanitizers saw that once in ten runs before the fix). */
MTEST(thread_pool_destroyed_at_once) {
  for (int k = 0; k < 40; k++) {
    mproc_pool *p = make_pool(MPROC_BACKEND_THREAD, 1 + k % 2, NULL);
    int two = 2;
    mproc_future *f;
    CHECK_OK(mproc_pool_submit(p, square, &two, sizeof two, NULL, &f));
    mproc_future_release(f);
    mproc_pool_destroy(p);
  }
}
MTEST(wait_and_as_completed_thread) { wait_and_as_completed(MPROC_BACKEND_THREAD); }
MTEST(closed_pool_thread) { closed_pool(MPROC_BACKEND_THREAD); }
MTEST(apply_async_thread) { apply_async(MPROC_BACKEND_THREAD); }
MTEST(streams_thread) { streams(MPROC_BACKEND_THREAD); }

static uint32_t thread_ids_seen;
static int note_thread(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  __atomic_fetch_add(&thread_ids_seen, 1, __ATOMIC_SEQ_CST);
  int w = mproc_task_worker_id(t);
  return mproc_task_return(t, &w, sizeof w);
}

MTEST(thread_backend_specifics) {
  mproc_pool *p = NULL;
  /* timeouts need a worker that can be killed */
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.backend = MPROC_BACKEND_THREAD, .task_timeout = 1}),
            MPROC_ENOTSUP);
  p = make_pool(MPROC_BACKEND_THREAD, 2, &(mproc_pool_opts){.max_tasks_per_child = 3});
  int n = 2;
  mproc_future *f;
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, &(mproc_submit_opts){.timeout = 1}, &f),
            MPROC_ENOTSUP);
  int out[50];
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, out, sizeof *out, &(mproc_map_opts){.task_timeout = 1},
                           NULL),
            MPROC_ENOTSUP);
  /* threads that reach their quota end and are replaced */
  CHECK_OK(mproc_pool_map(p, note_thread, NULL, 50, 0, out, sizeof *out, &(mproc_map_opts){.chunk_size = 1},
                          NULL));
  CHECK_INT_EQ(thread_ids_seen, 50); /* the tasks ran in this process */
  for (int i = 0; i < 50; i++) CHECK(out[i] == 0 || out[i] == 1);
  mproc_pool_destroy(p);
  /* MPROC_BACKEND=thread */
  setenv("MPROC_BACKEND", "thread", 1);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, out, sizeof *out, NULL));
  CHECK_INT_EQ(out[0], 4);
  mproc_pool_destroy(p);
  unsetenv("MPROC_BACKEND");
}

MTEST(thread_backend_blocking_tasks) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_THREAD, 1, NULL);
  int n = 3;
  mproc_future *a, *b, *c;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &a));
  await_started(1);
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &b));
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &c));
  CHECK_INT_EQ(mproc_future_cancel(c), 1);
  CHECK_ERR(mproc_future_wait(a, 0.02), MPROC_ETIMEDOUT);
  open_gate();
  const void *data;
  CHECK_OK(mproc_future_result(a, MPROC_FOREVER, &data, NULL));
  CHECK_INT_EQ(*(const int *)data, 9);
  CHECK_OK(mproc_future_result(b, MPROC_FOREVER, &data, NULL));
  CHECK_ERR(mproc_future_error(c, 0), MPROC_ECANCELED);
  mproc_future_release(a);
  mproc_future_release(b);
  mproc_future_release(c);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST(template_death_loses_tasks_not_the_caller) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int n = 2;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &f));
  await_started(1);
  /* the second worker may be running, being forked or not yet asked for: the pool reaps what the
   * template leaves behind in each case, this process being a subreaper */
  CHECK(kill(p->eng.tpl_pid, SIGKILL) == 0); /* as the OOM killer might */
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ELOST);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_LOST);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f), MPROC_ELOST);
  int out;
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_ELOST);
  mproc_pool_destroy(p);
  unmap_shared();
}

/* An idle pool destroyed as soon as its template is killed, before the manager can have noticed: what the
 * template leaves behind is reaped all the same (this process being a subreaper). */
MTEST(pool_destroyed_just_after_its_template_died) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int out[8];
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, out, sizeof *out, NULL, NULL));
  CHECK(kill(p->eng.tpl_pid, SIGKILL) == 0);
  mproc_pool_destroy(p);
}

static void count_finalizer(void) { __atomic_fetch_add(&sh->npids, 1, __ATOMIC_SEQ_CST); }

MTEST(finalizer_runs_when_workers_end_normally) {
  map_shared();
  /* at destroy */
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.finalizer = count_finalizer});
  int out[8];
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
  CHECK_INT_EQ(sh->npids, 2);
  /* when a worker retires (max_tasks_per_child), and again at destroy for the replacements */
  sh->npids = 0;
  p = make_pool(MPROC_BACKEND_PROCESS, 1,
                &(mproc_pool_opts){.finalizer = count_finalizer, .max_tasks_per_child = 2});
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 7, 0, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 1}, NULL));
  mproc_pool_destroy(p);
  CHECK_INT_EQ(sh->npids, 4); /* three retired after two tasks each; the fourth ran task 6 and is stopped */
  /* the thread backend too */
  sh->npids = 0;
  p = make_pool(MPROC_BACKEND_THREAD, 2, &(mproc_pool_opts){.finalizer = count_finalizer});
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
  CHECK_INT_EQ(sh->npids, 2);
  unmap_shared();
}

MTEST(buffered_output_is_not_repeated_by_workers) {
  /* stdout to a pipe is fully buffered: text printed before the pool must come out once, not once more
   * from every forked worker when it exits */
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stdout);
  int saved = dup(1);
  CHECK(dup2(fds[1], 1) == 1);
  close(fds[1]);
  setvbuf(stdout, NULL, _IOFBF, 4096);
  printf("once");
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
  CHECK_OK(mproc_pool_map(p, square, in, 8, sizeof *in, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
  fflush(stdout);
  CHECK(dup2(saved, 1) == 1);
  close(saved);
  setvbuf(stdout, NULL, _IOLBF, 0);
  char buf[64] = "";
  ssize_t got = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  CHECK(got > 0);
  buf[got] = '\0';
  CHECK_STR_EQ(buf, "once");
}
