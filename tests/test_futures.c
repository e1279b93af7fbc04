/* test_futures.c: the executor face on every backend: submit and results, wait and as_completed,
 * done-callbacks, cancellation, FIRST_EXCEPTION, apply and apply_async. */
#include <stdlib.h>
#include <time.h>

#include "mtest.h"
#include "internal.h"
#include "pool_tasks.h"

static int arg_is_null(const void *arg, size_t len, mproc_task *t) {
  unsigned char r = arg == NULL && len == 0;
  return mproc_task_return(t, &r, 1);
}

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
MTEST(submit_results_serial) { submit_results(MPROC_BACKEND_SERIAL); }
MTEST(submit_results_thread) { submit_results(MPROC_BACKEND_THREAD); }

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
MTEST(wait_and_as_completed_thread) { wait_and_as_completed(MPROC_BACKEND_THREAD); }

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
MTEST(apply_async_thread) { apply_async(MPROC_BACKEND_THREAD); }

/* ---- large results' blocks ---- */

int mproc__pool_kept_blocks(mproc_pool *p); /* face/pool.c, for this test */

/* A result of *(size_t *)arg bytes: zero, but every 4093rd byte and the last one its offset's low 8 bits
 * plus the second argument word (quick to make under the sanitizers too: the kept blocks are freed after a
 * second unused, and the tests below need the next result sooner). */
static int sized_result(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  const size_t *a = arg;
  unsigned char *out = mproc_task_return_buffer(t, a[0]);
  if (!out) return MPROC_ENOMEM;
  memset(out, 0, a[0]);
  for (size_t i = 0; i < a[0]; i += 4093) out[i] = (unsigned char)(i + a[1]);
  out[a[0] - 1] = (unsigned char)(a[0] - 1 + a[1]);
  return 0;
}

static const void *sized(mproc_pool *p, size_t bytes, size_t salt, mproc_future **f) {
  size_t a[2] = {bytes, salt};
  CHECK_OK(mproc_pool_submit(p, sized_result, a, sizeof a, NULL, f));
  const void *d;
  size_t len;
  CHECK_OK(mproc_future_result(*f, 30, &d, &len));
  CHECK(len == bytes);
  const unsigned char *b = d;
  for (size_t i = 0; i < bytes; i += 4093) CHECK_INT_EQ(b[i], (unsigned char)(i + salt));
  CHECK_INT_EQ(b[bytes - 1], (unsigned char)(bytes - 1 + salt));
  return d;
}

/* The block of a released result of 8 MiB or more serves the next one that fits it (a fresh block costs
 * a fault and the kernel's zeroing per page at its first touch), no more than twice its size, while the
 * pool runs; a result released after the pool's end is freed (the leak checkers see to it). */
static void large_result_blocks(mproc_backend b) {
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .backend = b}));
  const size_t MiB = (size_t)1 << 20;
  mproc_future *f1, *f2, *f3, *f4, *f5;
  const void *d1 = sized(p, 10 * MiB, 1, &f1);
  mproc_future_release(f1);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 1);
  const void *d2 = sized(p, 10 * MiB, 2, &f2); /* the same block, its new bytes checked */
  CHECK(d2 == d1);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 0);
  const void *d3 = sized(p, 9 * MiB, 3, &f3); /* none kept while f2 holds it */
  CHECK(d3 != d2);
  mproc_future_release(f2);
  mproc_future_release(f3);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 2);
  const void *d4 = sized(p, 4 * MiB, 4, &f4); /* not half of either: a block of its own */
  CHECK(d4 != d2 && d4 != d3);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 2);
  const void *d5 = sized(p, 17 * MiB / 2, 5, &f5); /* the smallest that fits: f3's 9 MiB */
  CHECK(d5 == d3);
  mproc_future_release(f4);
  mproc_future_release(f5);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 2); /* f5's (9 MiB) and f2's; f4's 4 MiB was freed */
  /* unused for a second, they are freed (the manager looks at least twice a second) */
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (mproc__pool_kept_blocks(p) > 0) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    CHECK((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) < 10);
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  }
  mproc_future *g1, *g2;
  (void)sized(p, 10 * MiB, 6, &g1);
  mproc_future_release(g1);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 1);
  (void)sized(p, 10 * MiB, 7, &g2); /* takes it */
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 0);
  (void)sized(p, 10 * MiB, 8, &g1);
  mproc_future_release(g1);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 1);
  mproc_pool_destroy(p);    /* the kept one is freed */
  mproc_future_release(g2); /* and this one with its pool */
}

MTEST(large_result_blocks_process) { large_result_blocks(MPROC_BACKEND_PROCESS); }
MTEST(large_result_blocks_thread) { large_result_blocks(MPROC_BACKEND_THREAD); }

/* What is kept stays within 256 MiB: of three released results of 96 MiB, two are kept. */
MTEST(large_result_blocks_bounded) {
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1}));
  const size_t MiB = (size_t)1 << 20;
  mproc_future *f[3];
  for (int k = 0; k < 3; k++) (void)sized(p, 96 * MiB, (size_t)k, &f[k]);
  for (int k = 0; k < 3; k++) mproc_future_release(f[k]);
  CHECK_INT_EQ(mproc__pool_kept_blocks(p), 2);
  mproc_pool_destroy(p);
}
