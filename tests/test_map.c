/* test_map.c: mproc_pool_map on every backend: ordering, chunking, dynamic batching, per-item errors,
 * the map's timeout, and Ctrl-C ending a map and a wait. */
#include <signal.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "engine/engine.h"
#include "pool_tasks.h"

static int index_times_three(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t v = mproc_task_index(t) * 3;
  return mproc_task_return(t, &v, sizeof v);
}

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
MTEST(map_ordering_serial) { map_ordering(MPROC_BACKEND_SERIAL); }
MTEST(map_ordering_thread) { map_ordering(MPROC_BACKEND_THREAD); }

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
MTEST(map_errors_thread) { map_errors(MPROC_BACKEND_THREAD); }

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

/* The serial backend runs a map in the caller's wait, a slice of a batch at a time: the map's time limit and
 * Ctrl-C are seen between two slices, and what did not run is cancelled.  (They went unseen before the
 * serial backend was one: all 2000 items ran, and the task's SIGINT killed the program.) */
static int one_ms(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  double until = mproc__plat_now() + 0.001;
  while (mproc__plat_now() < until) {
  }
  int v = (int)mproc_task_index(t);
  return mproc_task_return(t, &v, sizeof v);
}
static int ctrl_c_at_10(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_index(t) == 10) raise(SIGINT); /* serial: the caller's own thread */
  return one_ms(arg, len, t);
}

MTEST(serial_map_sees_its_timeout_and_ctrl_c) {
  mproc_pool *p = make_pool(MPROC_BACKEND_SERIAL, 1, NULL);
  enum { N = 2000 };
  static int out[N], codes[N];
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, one_ms, NULL, N, 0, out, sizeof *out,
                           &(mproc_map_opts){.timeout = 0.05, .item_codes = codes}, &rep),
            MPROC_ETIMEDOUT);
  CHECK_INT_CMP(rep.ok, >, 0);
  CHECK_INT_CMP(rep.cancelled, >, 0);
  CHECK_INT_EQ(rep.ok + rep.cancelled, N);
  for (size_t i = 0; i < rep.ok; i++) CHECK_INT_EQ(out[i], (int)i); /* in order: the first ones ran */
  for (size_t i = rep.ok; i < N; i++) CHECK_INT_EQ(codes[i], MPROC_ECANCELED);
  CHECK_ERR(mproc_pool_map(p, ctrl_c_at_10, NULL, N, 0, out, sizeof *out, NULL, &rep), MPROC_EINTERRUPTED);
  CHECK_INT_CMP(rep.ok, >, 10);
  CHECK_INT_CMP(rep.ok, <, N);
  CHECK_INT_EQ(rep.ok + rep.cancelled, N);
  struct sigaction sa; /* outside a wait SIGINT is the program's again */
  sigaction(SIGINT, NULL, &sa);
  CHECK(sa.sa_handler == SIG_DFL);
  /* the pool goes on */
  CHECK_OK(mproc_pool_map(p, one_ms, NULL, 20, 0, out, sizeof *out, NULL, &rep));
  CHECK_INT_EQ(rep.ok, 20);
  mproc_pool_destroy(p);
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
