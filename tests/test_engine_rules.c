/* test_engine_rules.c: the engine's three rules: no task handed to a worker waits while another worker is
 * idle, no item whose result was produced runs again (and none more than 1 + max_retries times), and no
 * worker starts once a terminate has begun. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "face/face.h"

/* Shared with every worker (mapped before the pool exists): a gate that holds tasks until the test opens
 * it, a count of tasks that started, per-item run counters, and room for a barrier. */
enum { MAXN = 4096 };
struct shared {
  uint32_t gate;
  uint32_t started;
  uint32_t inits;
  int pid;                    /* the worker that ran a task last */
  uint32_t stop_after_return; /* a_task_that_returned_in_time_is_not_killed: stop the worker then */
  uint32_t returned;
  int fail_at;  /* failure_of_a_worker_killed_while_sending_it: the failing item */
  size_t stage; /* and the staging area's size for results of any size (0: fixed records) */
  uint32_t runs[MAXN];
  _Alignas(64) unsigned char barrier[256];
};
static struct shared *sh;

static void map_shared(void) {
  int err = 0;
  sh = mproc__plat_shm_map_anon(sizeof *sh, &err);
  CHECK(sh != NULL);
  memset(sh, 0, sizeof *sh);
}
static void unmap_shared(void) {
  CHECK_OK(mproc__plat_shm_unmap(sh, sizeof *sh));
  sh = NULL;
}
static void open_gate(void) {
  __atomic_store_n(&sh->gate, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->gate, INT32_MAX);
}
static void await_started(uint32_t count) {
  for (;;) {
    uint32_t s = __atomic_load_n(&sh->started, __ATOMIC_ACQUIRE);
    if (s >= count) return;
    mproc__plat_futex_wait(&sh->started, s, 5);
  }
}

static int square(const void *arg, size_t len, mproc_task *t) {
  int n = *(const int *)arg, sq = n * n;
  (void)len;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* Announces itself, then waits at the gate (at most 30 s). */
static int wait_at_gate(const void *arg, size_t len, mproc_task *t) {
  __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->started, INT32_MAX);
  double until = mproc__plat_now() + 30;
  while (!__atomic_load_n(&sh->gate, __ATOMIC_ACQUIRE) && mproc__plat_now() < until)
    mproc__plat_futex_wait(&sh->gate, 0, 1);
  return square(arg, len, t);
}

/* ---- no worker idles while work waits ---- */

/* A long task, then at once a short one, on a new pool of two: the short one must not wait behind the
 * long one while the other worker idles (fresh pools, since the fault showed while workers were still
 * starting). */
static void short_task_passes_a_long_one(mproc_backend backend) {
  map_shared();
  for (int round = 0; round < 12; round++) {
    __atomic_store_n(&sh->gate, 0, __ATOMIC_SEQ_CST);
    mproc_pool *p;
    CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = backend}));
    int a = 3, b = 4;
    mproc_future *slow, *fast;
    CHECK_OK(mproc_pool_submit(p, wait_at_gate, &a, sizeof a, NULL, &slow));
    CHECK_OK(mproc_pool_submit(p, square, &b, sizeof b, NULL, &fast));
    const void *data;
    int r = mproc_future_result(fast, 10.0, &data, NULL);
    if (r != 0)
      mtest_fail(__FILE__, __LINE__, "round %d: the short task waited: %s", round, mproc_err_name(r));
    CHECK_INT_EQ(*(const int *)data, 16);
    CHECK_INT_EQ(mproc_future_done(slow), 0);
    open_gate();
    CHECK_OK(mproc_future_result(slow, 30.0, &data, NULL));
    CHECK_INT_EQ(*(const int *)data, 9);
    mproc_future_release(slow);
    mproc_future_release(fast);
    mproc_pool_destroy(p);
  }
  unmap_shared();
}
MTEST_TIMEOUT(short_task_passes_a_long_one_process, 120) {
  short_task_passes_a_long_one(MPROC_BACKEND_PROCESS);
}
MTEST_TIMEOUT(short_task_passes_a_long_one_thread, 120) {
  short_task_passes_a_long_one(MPROC_BACKEND_THREAD);
}

static int meet_at_barrier(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  mproc_barrier *b = (mproc_barrier *)sh->barrier;
  int r = mproc_barrier_wait(b, 10.0);
  if (r < 0) return mproc_task_fail(t, r, "barrier: %s", mproc_err_name(r));
  return mproc_task_return(t, &r, sizeof r);
}

/* N tasks that wait for each other on N workers always run together. */
MTEST_TIMEOUT(tasks_that_wait_for_each_other_run_together, 120) {
  map_shared();
  CHECK(mproc_barrier_size() <= sizeof sh->barrier);
  for (int round = 0; round < 12; round++) {
    mproc_barrier *b;
    CHECK_OK(mproc_barrier_init(&b, sh->barrier, 3, NULL, NULL));
    mproc_pool *p;
    CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 3}));
    mproc_future *fs[3];
    for (int i = 0; i < 3; i++) CHECK_OK(mproc_pool_submit(p, meet_at_barrier, NULL, 0, NULL, &fs[i]));
    for (int i = 0; i < 3; i++) {
      int r = mproc_future_result(fs[i], 30.0, NULL, NULL);
      if (r != 0) mtest_fail(__FILE__, __LINE__, "round %d, task %d: %s", round, i, mproc_err_name(r));
      mproc_future_release(fs[i]);
    }
    mproc_pool_destroy(p);
    mproc_barrier_destroy(b);
  }
  unmap_shared();
}

/* An unordered stream: one slow item does not hold back items another worker could finish. */
static int slow_item_zero(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_index(t) == 0) return wait_at_gate(arg, len, t);
  return square(arg, len, t);
}

MTEST_TIMEOUT(unordered_stream_passes_a_slow_item, 120) {
  map_shared();
  enum { N = 8 };
  int in[N];
  for (int i = 0; i < N; i++) in[i] = i;
  for (int round = 0; round < 8; round++) {
    __atomic_store_n(&sh->gate, 0, __ATOMIC_SEQ_CST);
    mproc_pool *p;
    CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
    mproc_stream *s;
    CHECK_OK(mproc_pool_imap_unordered(p, slow_item_zero, in, N, sizeof *in, sizeof(int),
                                       &(mproc_stream_opts){.chunk_size = 1}, &s));
    for (int k = 0; k < N - 1; k++) {
      int64_t idx;
      const void *res;
      int r = mproc_stream_next(s, 10.0, &idx, &res, NULL);
      if (r != 0) mtest_fail(__FILE__, __LINE__, "round %d, item %d: %s", round, k, mproc_err_name(r));
      CHECK(idx != 0);
      CHECK_INT_EQ(*(const int *)res, (int)(idx * idx));
    }
    open_gate();
    int64_t idx;
    const void *res;
    CHECK_OK(mproc_stream_next(s, 30.0, &idx, &res, NULL));
    CHECK_INT_EQ(idx, 0);
    mproc_stream_destroy(s);
    mproc_pool_destroy(p);
  }
  unmap_shared();
}

/* ---- nothing runs twice ---- */

static int crash_at = -1, fail_at = -1, hang_at = -1;

/* Counts its runs per index; crashes, fails or hangs at the chosen indices. */
static int counted(const void *arg, size_t len, mproc_task *t) {
  int64_t i = mproc_task_index(t);
  __atomic_fetch_add(&sh->runs[i], 1, __ATOMIC_SEQ_CST);
  if (i == crash_at) raise(SIGSEGV);
  if (i == fail_at) return mproc_task_fail(t, MPROC_EIO, "item %d failed", (int)i);
  if (i == hang_at)
    for (;;) pause();
  return square(arg, len, t);
}

static void check_runs(int n, int special, uint32_t special_runs) {
  for (int i = 0; i < n; i++) {
    uint32_t want = i == special ? special_runs : 1;
    if (sh->runs[i] != want)
      mtest_fail(__FILE__, __LINE__, "item %d ran %u times, expected %u", i, sh->runs[i], want);
  }
}

/* A map of 1000 items in batches of 100 whose item 550 segfaults: the items of its batch that had
 * finished before it (500-549) keep their results and do not run again, with and without retries, on
 * both process start methods the fork pool has. */
static void crash_in_a_batch(int retries) {
  map_shared();
  enum { N = 1000 };
  static int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  crash_at = 550;
  fail_at = 520;
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .max_retries = retries}));
  mproc_map_report rep;
  int r = mproc_pool_map(
      p, counted, in, N, sizeof *in, out, sizeof *out,
      &(mproc_map_opts){.chunk_size = 100, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes}, &rep);
  CHECK_ERR(r, MPROC_EIO); /* the first failed index is 520 */
  CHECK_INT_EQ(rep.failed, 2);
  CHECK_INT_EQ(rep.ok, N - 2);
  CHECK_INT_EQ(rep.first_failed_index, 520);
  CHECK_STR_EQ(rep.message, "item 520 failed");
  for (int i = 0; i < N; i++) {
    if (i == 550) {
      CHECK_INT_EQ(codes[i], MPROC_ECRASHED);
    } else if (i == 520) {
      CHECK_INT_EQ(codes[i], MPROC_EIO);
    } else {
      CHECK_INT_EQ(codes[i], 0);
      CHECK_INT_EQ(out[i], i * i);
    }
  }
  check_runs(N, 550, 1 + (uint32_t)retries);
  mproc_pool_destroy(p);
  crash_at = fail_at = -1;
  unmap_shared();
}
MTEST_TIMEOUT(crash_in_a_batch_runs_no_finished_item_again, 60) { crash_in_a_batch(0); }
MTEST_TIMEOUT(crash_in_a_batch_with_retries_runs_each_item_at_most_1_plus_retries, 60) {
  crash_in_a_batch(2);
}

/* A hung item past its timeout: the items of its batch that finished before it keep their results. */
MTEST_TIMEOUT(timeout_in_a_batch_runs_no_finished_item_again, 60) {
  map_shared();
  enum { N = 200 };
  static int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  hang_at = 170;
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, counted, in, N, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){.chunk_size = 50,
                                             .task_timeout = 0.3,
                                             .on_error = MPROC_ON_ERROR_CONTINUE,
                                             .item_codes = codes},
                           &rep),
            MPROC_ETASKTIMEOUT);
  CHECK_INT_EQ(rep.failed, 1);
  CHECK_INT_EQ(rep.first_failed_index, 170);
  for (int i = 0; i < N; i++)
    if (i != 170) CHECK_INT_EQ(out[i], i * i);
  check_runs(N, 170, 1);
  mproc_pool_destroy(p);
  hang_at = -1;
  unmap_shared();
}

/* ---- a task that returned in time is not killed for its timeout ---- */

enum { STOPPED_RESULT = 64 << 20 };

/* In the worker: once its task has returned, a millisecond on, stops the whole worker (SIGSTOP).  By then
 * the worker sends the task's 64 MiB result, which takes longer than that through its ring. */
static void *stop_worker_after_return(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&sh->returned, __ATOMIC_ACQUIRE)) sched_yield();
  double t0 = mproc__plat_now();
  while (mproc__plat_now() - t0 < 0.001) sched_yield();
  kill(getpid(), SIGSTOP);
  return NULL;
}

static int big_result(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  sh->pid = getpid();
  if (sh->stop_after_return) {
    pthread_t th;
    if (pthread_create(&th, NULL, stop_worker_after_return, NULL) != 0) return MPROC_ENOMEM;
    pthread_detach(th);
  }
  unsigned char *out = mproc_task_return_buffer(t, STOPPED_RESULT);
  if (!out) return MPROC_ENOMEM;
  memset(out, 7, STOPPED_RESULT);
  __atomic_store_n(&sh->returned, 1, __ATOMIC_RELEASE); /* the last thing it does */
  return 0;
}

/* Process state letter of pid ('T' once stopped), or 0 when it cannot be read. */
static char proc_state(int pid) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char *ok = fgets(line, sizeof line, f);
  fclose(f);
  char *close = ok ? strrchr(line, ')') : NULL;
  return close && close[1] == ' ' ? close[2] : 0;
}

/* The worker stops while it sends the result of a task that returned well before its timeout, and stays
 * stopped past the deadline: the task is not killed, and its result arrives whole once the worker goes on.
 * Before, the deadline killed it (its job still ran until the result was sent). */
MTEST_TIMEOUT(a_task_that_returned_in_time_is_not_killed, 60) {
  map_shared();
  const char *scale = getenv("MTEST_TIMEOUT_SCALE"); /* the sanitizers' builds are slower */
  const double timeout = 1.0 * (scale && atof(scale) > 1 ? atof(scale) : 1);
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1}));
  mproc_future *f;
  const void *d;
  size_t len;
  CHECK_OK(mproc_pool_submit(p, big_result, NULL, 0, NULL, &f)); /* its pages warm: the second is quick */
  CHECK_OK(mproc_future_result(f, 60, &d, &len));
  mproc_future_release(f);
  sh->returned = 0;
  sh->stop_after_return = 1;
  CHECK_OK(mproc_pool_submit(p, big_result, NULL, 0, &(mproc_submit_opts){.timeout = timeout}, &f));
  double until = mproc__plat_now() + 30;
  while (!__atomic_load_n(&sh->returned, __ATOMIC_ACQUIRE) || proc_state(sh->pid) != 'T') {
    CHECK(mproc__plat_now() < until);
    nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
  }
  /* past the task's deadline, counted from before it began */
  double past = timeout + 0.5;
  nanosleep(&(struct timespec){(time_t)past, (long)((past - (double)(time_t)past) * 1e9)}, NULL);
  CHECK_INT_EQ(mproc_future_done(f), 0);
  CHECK_INT_EQ(kill(sh->pid, SIGCONT), 0);
  CHECK_OK(mproc_future_result(f, 30, &d, &len));
  CHECK(len == (size_t)STOPPED_RESULT);
  const unsigned char *b = d;
  CHECK_INT_EQ(b[0], 7);
  CHECK_INT_EQ(b[STOPPED_RESULT - 1], 7);
  mproc_future_release(f);
  mproc_pool_destroy(p);
  unmap_shared();
}

/* Streams too: a crash inside a batch of an ordered stream. */
MTEST_TIMEOUT(crash_in_a_stream_batch_runs_no_finished_item_again, 60) {
  map_shared();
  enum { N = 600 };
  static int in[N];
  for (int i = 0; i < N; i++) in[i] = i;
  crash_at = 250;
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, counted, in, N, sizeof *in, sizeof(int),
                           &(mproc_stream_opts){.chunk_size = 100}, &s));
  for (int k = 0; k < N; k++) {
    int64_t idx;
    const void *res;
    int r = mproc_stream_next(s, 30.0, &idx, &res, NULL);
    CHECK_INT_EQ(idx, k);
    if (k == 250) {
      CHECK_ERR(r, MPROC_ECRASHED);
    } else {
      CHECK_OK(r);
      CHECK_INT_EQ(*(const int *)res, k * k);
    }
  }
  mproc_stream_destroy(s);
  check_runs(N, 250, 1);
  mproc_pool_destroy(p);
  crash_at = -1;
  unmap_shared();
}

/* A batch larger than its worker's ring and staging area: its results go in many segments (the staging
 * area fills, the ring fills and wraps while they stream), and a crash late in it loses no finished item. */
MTEST_TIMEOUT(crash_after_the_ring_filled_runs_no_finished_item_again, 60) {
  map_shared();
  enum { N = 3000 };
  static int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  crash_at = 2500;
  fail_at = 1234;
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .ring_bytes = 4096}));
  mproc_map_report rep;
  CHECK_ERR(
      mproc_pool_map(
          p, counted, in, N, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){.chunk_size = N, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes}, &rep),
      MPROC_EIO);
  CHECK_INT_EQ(rep.failed, 2);
  CHECK_INT_EQ(rep.batches, 2); /* the batch, then what followed the crash */
  for (int i = 0; i < N; i++) {
    if (i == 2500) {
      CHECK_INT_EQ(codes[i], MPROC_ECRASHED);
    } else if (i == 1234) {
      CHECK_INT_EQ(codes[i], MPROC_EIO);
    } else {
      CHECK_INT_EQ(codes[i], 0);
      CHECK_INT_EQ(out[i], i * i);
    }
  }
  check_runs(N, 2500, 1);
  mproc_pool_destroy(p);
  crash_at = fail_at = -1;
  unmap_shared();
}

/* ---- a failure is not a success when its worker dies sending it ---- */

/* A worker whose item failed and that is killed while it sends that failure: the item must not be taken
 * from the staging area as a success (it was, when the worker counted the item done before the failure
 * was sent: `chaos_items_kills` met it as "outcome ok, faults call for fail").  The manager is held off
 * (the test holds the engine's lock) so that the worker's ring fills: items 0..2 each fill a segment of
 * their own (records of the staging area's size, or results of any size as large), and the failing item's
 * segment (with, for results of any size, item 3's record) cannot all go in, so the worker waits in its
 * send; there it is SIGKILLed. */
enum { SEND_N = 8 };
/* (in the shared page: the workers' template was forked before the test sets them) */
#define send_fail_at (sh->fail_at)
#define send_stage (sh->stage)
/* What item i returns for results of any size: records of the staging area's size for the three first,
 * so that each fills a segment, then one 16 bytes short, which the failing item's record joins. */
static size_t send_rlen(int64_t i) { return i < 3 ? send_stage - 8 : i == 3 ? send_stage - 24 : sizeof(int); }
static int fail_while_sending(const void *arg, size_t len, mproc_task *t) {
  int64_t i = mproc_task_index(t);
  (void)arg, (void)len;
  __atomic_store_n(&sh->pid, (int)getpid(), __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&sh->runs[i], 1, __ATOMIC_SEQ_CST);
  if (i == 0 && __atomic_load_n(&sh->runs[0], __ATOMIC_SEQ_CST) == 1) {
    __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
    mproc__plat_futex_wake(&sh->started, INT32_MAX);
    double until = mproc__plat_now() + 30;
    while (!__atomic_load_n(&sh->gate, __ATOMIC_ACQUIRE) && mproc__plat_now() < until)
      mproc__plat_futex_wait(&sh->gate, 0, 1);
  }
  if (i == send_fail_at) return mproc_task_fail(t, MPROC_EIO, "item %d failed", (int)i);
  int v = (int)i * 10;
  if (send_stage) {
    unsigned char *out = mproc_task_return_buffer(t, send_rlen(i));
    if (!out) return MPROC_ENOMEM;
    memcpy(out, &v, sizeof v);
    return 0;
  }
  return mproc_task_return(t, &v, sizeof v);
}

struct send_map {
  mproc_pool *p;
  bool var;
  size_t rec;
  int in[SEND_N], codes[SEND_N];
  unsigned char *out;
  mproc_results *res;
  int r;
};
static void *run_send_map(void *arg) {
  struct send_map *m = arg;
  mproc_map_opts o = {.chunk_size = SEND_N, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = m->codes};
  if (m->var) {
    static mproc_item items[SEND_N];
    for (int i = 0; i < SEND_N; i++) items[i] = (mproc_item){&m->in[i], sizeof m->in[i]};
    mproc_items in = mproc_items_array(items, SEND_N);
    m->r = mproc_pool_map_items(m->p, fail_while_sending, &in, &o, &m->res, NULL);
  } else {
    m->r = mproc_pool_map(m->p, fail_while_sending, m->in, SEND_N, sizeof m->in[0], m->out, m->rec, &o, NULL);
  }
  return NULL;
}

static void failure_of_a_worker_killed_while_sending_it(bool var) {
  map_shared();
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .ring_bytes = 4096}));
  mproc__engine *e = &p->eng;
  mproc__slot *slot = &e->sh->slots[0];
  struct send_map m = {.p = p, .var = var, .rec = (size_t)slot->staging_size};
  send_stage = var ? (size_t)slot->staging_size : 0;
  send_fail_at = var ? 4 : 3; /* fixed records: one per segment (the staging area holds one) */
  m.out = calloc(SEND_N, m.rec);
  CHECK(m.out != NULL);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, run_send_map, &m) == 0);
  await_started(1);
  pthread_mutex_lock(&e->lock); /* the manager reads nothing from here on */
  open_gate();
  /* the failing item ran and its worker waits for room in the full ring */
  double until = mproc__plat_now() + 20;
  while (
      (__atomic_load_n(&sh->runs[send_fail_at], __ATOMIC_SEQ_CST) == 0 || mproc__ring_free(slot->out) > 0) &&
      __atomic_load_n(&sh->runs[send_fail_at + 1], __ATOMIC_SEQ_CST) == 0 && mproc__plat_now() < until)
    sched_yield();
  CHECK_INT_EQ(__atomic_load_n(&sh->runs[send_fail_at + 1], __ATOMIC_SEQ_CST), 0); /* it did wait there */
  CHECK_INT_EQ(mproc__ring_free(slot->out), 0);
  int64_t done = __atomic_load_n(&slot->items_done, __ATOMIC_ACQUIRE); /* checked below */
  CHECK(kill(__atomic_load_n(&sh->pid, __ATOMIC_SEQ_CST), SIGKILL) == 0);
  pthread_mutex_unlock(&e->lock);
  CHECK(pthread_join(th, NULL) == 0);
  /* the item whose failure was lost with its worker: a crash by SIGKILL, never a success */
  CHECK_INT_EQ(m.codes[send_fail_at], MPROC_ECRASHED);
  CHECK_ERR(m.r, MPROC_ECRASHED);
  CHECK_INT_CMP(done, <=, send_fail_at); /* the failure was not sent: the item was not counted done */
  for (int i = 0; i < SEND_N; i++) {
    CHECK_INT_EQ(sh->runs[i], 1);
    if (i == send_fail_at) continue;
    CHECK_INT_EQ(m.codes[i], 0);
    int v;
    if (var) {
      const void *data;
      size_t len;
      CHECK_OK(mproc_results_get(m.res, (size_t)i, &data, &len));
      CHECK_INT_EQ(len, send_rlen(i));
      memcpy(&v, data, sizeof v);
    } else {
      memcpy(&v, m.out + (size_t)i * m.rec, sizeof v);
    }
    CHECK_INT_EQ(v, i * 10);
  }
  mproc_results_free(m.res);
  free(m.out);
  mproc_pool_destroy(p);
  unmap_shared();
}
MTEST_TIMEOUT(failure_of_a_worker_killed_while_sending_it_is_no_success, 60) {
  failure_of_a_worker_killed_while_sending_it(false);
}
MTEST_TIMEOUT(failure_of_an_item_of_any_size_killed_while_sending_it_is_no_success, 60) {
  failure_of_a_worker_killed_while_sending_it(true);
}

/* Records larger than a worker's ring still pass, and a crash after them loses none. */
static int big_record(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t i = mproc_task_index(t);
  __atomic_fetch_add(&sh->runs[i], 1, __ATOMIC_SEQ_CST);
  if (i == crash_at) raise(SIGSEGV);
  unsigned char *out = mproc_task_return_buffer(t, 20000);
  if (!out) return mproc_task_fail(t, MPROC_ENOMEM, "no buffer");
  memset(out, (int)(i & 0xff), 20000);
  return 0;
}

MTEST_TIMEOUT(records_larger_than_the_ring, 60) {
  map_shared();
  enum { N = 12, REC = 20000 };
  unsigned char *out = calloc(N, REC);
  int codes[N];
  crash_at = 7;
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .ring_bytes = 4096}));
  mproc_map_report rep;
  CHECK_ERR(
      mproc_pool_map(
          p, big_record, NULL, N, 0, out, REC,
          &(mproc_map_opts){.chunk_size = 6, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes}, &rep),
      MPROC_ECRASHED);
  for (int i = 0; i < N; i++) {
    if (i == 7) continue;
    CHECK_INT_EQ(codes[i], 0);
    for (int k = 0; k < REC; k += 997) CHECK_INT_EQ(out[(size_t)i * REC + (size_t)k], i & 0xff);
  }
  check_runs(N, 7, 1);
  mproc_pool_destroy(p);
  free(out);
  crash_at = -1;
  unmap_shared();
}

/* ---- no worker starts after terminate ---- */

static int count_init(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  __atomic_fetch_add(&sh->inits, 1, __ATOMIC_SEQ_CST);
  return 0;
}

MTEST_TIMEOUT(terminate_starts_no_worker, 60) {
  map_shared();
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .initializer = count_init}));
  int a = 2;
  mproc_future *fs[2];
  for (int i = 0; i < 2; i++) CHECK_OK(mproc_pool_submit(p, wait_at_gate, &a, sizeof a, NULL, &fs[i]));
  await_started(2);
  CHECK_OK(mproc_pool_terminate(p));
  for (int i = 0; i < 2; i++) {
    CHECK_ERR(mproc_future_result(fs[i], 30.0, NULL, NULL), MPROC_ECANCELED);
    mproc_future_release(fs[i]);
  }
  /* both deaths have been handled (the futures completed with them): nothing was asked to start since */
  mproc__engine *e = &p->eng;
  pthread_mutex_lock(&e->lock);
  for (int i = 0; i < e->nworkers; i++) {
    CHECK_INT_EQ(e->ws[i].spawning, 0);
    CHECK_INT_EQ(e->ws[i].pid, 0);
  }
  pthread_mutex_unlock(&e->lock);
  CHECK_INT_EQ(__atomic_load_n(&sh->inits, __ATOMIC_SEQ_CST), 2);
  CHECK_ERR(mproc_pool_submit(p, square, &a, sizeof a, NULL, &fs[0]), MPROC_ECLOSED);
  mproc_pool_destroy(p);
  CHECK_INT_EQ(__atomic_load_n(&sh->inits, __ATOMIC_SEQ_CST), 2);
  unmap_shared();
}
