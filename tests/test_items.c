/* test_items.c: what issue 16 adds for Python users' calls: every failure of a map kept with its message,
 * per-item seeds computed outside a task, and the scoped pool (with Pool() as p). */
#include <signal.h>

#include "mtest.h"
#include "internal.h"
#include "pool_tasks.h"

/* misbehave()'s codes, placed among ordinary items: item i gets in[i] */
static void fill_inputs(int *in, int n) {
  for (int i = 0; i < n; i++) in[i] = i;
  in[500] = -1; /* SIGSEGV */
}

/* multiples of 7 fail with their message, item 500 crashes (process backend only) */
static int mixed(const void *arg, size_t len, mproc_task *t) {
  int v = *(const int *)arg;
  if (v < 0) return misbehave(arg, len, t);
  return fail_on_multiples_of_7(arg, len, t);
}

static void failures_kept(mproc_backend b) {
  enum { N = 1000, CAP = 10 };
  mproc_pool *p = make_pool(b, 2, NULL);
  static int in[N], out[N];
  fill_inputs(in, N);
  if (b != MPROC_BACKEND_PROCESS) in[500] = 500; /* a crash there would end the test */
  mproc_item_failure fails[CAP + 1];
  memset(fails, 0xee, sizeof fails);
  size_t chunks[] = {0, 1, 3};
  for (size_t c = 0; c < 3; c++) {
    mproc_map_report rep;
    mproc_map_opts mo = {
        .on_error = MPROC_ON_ERROR_CONTINUE, .chunk_size = chunks[c], .failures = fails, .failures_cap = CAP};
    CHECK_ERR(mproc_pool_map(p, mixed, in, N, sizeof *in, out, sizeof *out, &mo, &rep), MPROC_ERANGE);
    size_t failing = N / 7 + 1 + (b == MPROC_BACKEND_PROCESS); /* 0, 7, ..., 994, and the crash */
    CHECK_INT_EQ(rep.failed, failing);
    CHECK_INT_EQ(rep.failures_kept, CAP);
    CHECK_INT_EQ(rep.failures_left_out, failing - CAP);
    /* the lowest indices, in order, whatever order they failed in */
    for (int k = 0; k < CAP; k++) {
      CHECK_INT_EQ(fails[k].index, 7 * k);
      CHECK_INT_EQ(fails[k].outcome.kind, MPROC_OUTCOME_FAILED);
      CHECK_INT_EQ(fails[k].outcome.code, MPROC_ERANGE);
      char want[64];
      snprintf(want, sizeof want, "%d is a multiple of 7", 7 * k);
      CHECK_STR_EQ(fails[k].message, want);
      CHECK(fails[k].outcome.message == fails[k].message);
    }
    CHECK_INT_EQ(fails[CAP].index, (int64_t)0xeeeeeeeeeeeeeeeeull); /* nothing past the cap */
  }
  /* room for all: the crash is among them, with its kind */
  static mproc_item_failure all[N];
  mproc_map_report rep;
  mproc_map_opts mo = {.on_error = MPROC_ON_ERROR_CONTINUE, .failures = all, .failures_cap = N};
  CHECK_ERR(mproc_pool_map(p, mixed, in, N, sizeof *in, out, sizeof *out, &mo, &rep), MPROC_ERANGE);
  CHECK_INT_EQ(rep.failures_left_out, 0);
  CHECK_INT_EQ(rep.failures_kept, rep.failed);
  for (size_t k = 1; k < rep.failures_kept; k++) CHECK(all[k - 1].index < all[k].index);
  if (b == MPROC_BACKEND_PROCESS) {
    size_t k = 0;
    while (all[k].index != 500) k++;
    CHECK_INT_EQ(all[k].outcome.kind, MPROC_OUTCOME_CRASHED);
    CHECK_INT_EQ(all[k].outcome.signal, SIGSEGV);
  }
  /* stop at the first: one kept; cancelled items are not failures */
  mo = (mproc_map_opts){.failures = all, .failures_cap = N, .chunk_size = 1};
  CHECK_ERR(mproc_pool_map(p, mixed, in, N, sizeof *in, out, sizeof *out, &mo, &rep), MPROC_ERANGE);
  CHECK_INT_EQ(rep.failures_kept, rep.failed);
  CHECK_INT_CMP(rep.failures_kept, >=, 1);
  CHECK_INT_EQ(all[0].index, 0);
  /* bad arguments: an array's capacity without the array */
  mo = (mproc_map_opts){.failures_cap = 3};
  CHECK_ERR(mproc_pool_map(p, mixed, in, N, sizeof *in, out, sizeof *out, &mo, &rep), MPROC_EINVAL);
  mproc_pool_destroy(p);
}
MTEST(failures_kept_process) { failures_kept(MPROC_BACKEND_PROCESS); }
MTEST(failures_kept_thread) { failures_kept(MPROC_BACKEND_THREAD); }
MTEST(failures_kept_serial) { failures_kept(MPROC_BACKEND_SERIAL); }

MTEST(parallel_keeps_failures) {
  enum { N = 200 };
  static int in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i;
  mproc_item_failure fails[4];
  mproc_parallel *par;
  mproc_parallel_opts po = {
      .n_jobs = 2, .on_error = MPROC_ON_ERROR_CONTINUE, .failures = fails, .failures_cap = 4};
  CHECK_OK(mproc_parallel_create(&par, &po));
  mproc_map_report rep;
  CHECK_ERR(mproc_parallel_run(par, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out, NULL, &rep),
            MPROC_ERANGE);
  CHECK_INT_EQ(rep.failures_kept, 4);
  CHECK_INT_EQ(rep.failures_left_out, N / 7 + 1 - 4);
  for (int k = 0; k < 4; k++) CHECK_INT_EQ(fails[k].index, 7 * k);
  mproc_parallel_destroy(par);
  po.failures = NULL;
  CHECK_ERR(mproc_parallel_create(&par, &po), MPROC_EINVAL);
}

/* ---- seeds outside a task ---- */

static int seed_of_item(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  uint64_t s = mproc_task_seed(t);
  return mproc_task_return(t, &s, sizeof s);
}

MTEST(seed_for_matches_the_tasks_seeds) {
  enum { N = 5000 };
  static uint64_t out[N];
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  CHECK_OK(
      mproc_pool_map(p, seed_of_item, NULL, N, 0, out, sizeof *out, &(mproc_map_opts){.seed = 12345}, NULL));
  for (int64_t i = 0; i < N; i++) CHECK_INT_EQ(out[i], mproc_seed_for(12345, i));
  CHECK(mproc_seed_for(12345, 0) != mproc_seed_for(12345, 1));
  CHECK(mproc_seed_for(12345, 7) != mproc_seed_for(12346, 7));
  mproc_pool_destroy(p);
}

/* ---- scoped pools ---- */

static int body_maps(mproc_pool *p, void *user) {
  int in[50], out[50];
  for (int i = 0; i < 50; i++) in[i] = i;
  int r = mproc_pool_map(p, square, in, 50, sizeof *in, out, sizeof *out, NULL, NULL);
  if (r < 0) return r;
  for (int i = 0; i < 50; i++)
    if (out[i] != i * i) return -1;
  *(int *)user = mproc_pool_workers(p);
  return 42;
}

/* leaves a task running (blocked at the gate) and one queued, their futures kept */
static mproc_future *left[2];
static int body_leaves_work(mproc_pool *p, void *user) {
  (void)user;
  int n = 1;
  if (mproc_pool_submit(p, gated, &n, sizeof n, NULL, &left[0]) < 0) return -1;
  if (mproc_pool_submit(p, gated, &n, sizeof n, NULL, &left[1]) < 0) return -1;
  await_started(1);
  return 7;
}

static int body_submits(mproc_pool *p, void *user) {
  mproc_future **fs = user;
  for (int i = 0; i < 5; i++) {
    int v = i;
    int r = mproc_pool_submit(p, square, &v, sizeof v, NULL, &fs[i]);
    if (r < 0) return r;
  }
  return 0; /* without waiting */
}

MTEST(scoped_pool_and_executor) {
  map_shared();
  int workers = 0;
  CHECK_INT_EQ(mproc_pool_with(&(mproc_pool_opts){.workers = 3}, body_maps, &workers), 42);
  CHECK_INT_EQ(workers, 3);
  /* the pool ends with terminate(): the running task and the queued one are cancelled */
  CHECK_INT_EQ(mproc_pool_with(&(mproc_pool_opts){.workers = 1}, body_leaves_work, NULL), 7);
  for (int i = 0; i < 2; i++) {
    CHECK_ERR(mproc_future_error(left[i], 0), MPROC_ECANCELED);
    mproc_future_release(left[i]);
  }
  /* the executor ends with shutdown(wait): what body submitted has completed */
  mproc_future *fs[5];
  CHECK_OK(mproc_executor_with(&(mproc_pool_opts){.workers = 2}, body_submits, fs));
  for (int i = 0; i < 5; i++) {
    CHECK_INT_EQ(mproc_future_done(fs[i]), 1);
    const void *res;
    size_t len;
    CHECK_OK(mproc_future_result(fs[i], 0, &res, &len));
    CHECK_INT_EQ(*(const int *)res, i * i);
    mproc_future_release(fs[i]);
  }
  /* errors: no body; the pool cannot be made (the body does not run) */
  CHECK_ERR(mproc_pool_with(NULL, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_executor_with(NULL, NULL, NULL), MPROC_EINVAL);
  workers = -5;
  CHECK_ERR(mproc_pool_with(&(mproc_pool_opts){.workers = -1}, body_maps, &workers), MPROC_EINVAL);
  CHECK_INT_EQ(workers, -5);
  unmap_shared();
}
