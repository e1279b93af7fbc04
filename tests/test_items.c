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

/* ---- items of any size ---- */

/* The result: the item's length (8 bytes), then its bytes reversed; items whose first byte is 'F' fail with
 * a message, 'C' crash (process workers only), 'E' return an empty result. */
static int reverse(const void *arg, size_t len, mproc_task *t) {
  const unsigned char *a = arg;
  if (len && a[0] == 'F')
    return mproc_task_fail(t, MPROC_ERANGE, "item %lld asked to fail", (long long)mproc_task_index(t));
  if (len && a[0] == 'C') raise(SIGSEGV);
  if (len && a[0] == 'E') return 0;
  unsigned char *out = mproc_task_return_buffer(t, len + 8);
  if (!out) return MPROC_ENOMEM;
  uint64_t l = len;
  memcpy(out, &l, 8);
  for (size_t i = 0; i < len; i++) out[8 + i] = a[len - 1 - i];
  return 0;
}

static void check_reversed(const void *item, size_t len, const void *res, size_t rlen) {
  CHECK_INT_EQ(rlen, len + 8);
  uint64_t l;
  memcpy(&l, res, 8);
  CHECK_INT_EQ(l, len);
  const unsigned char *a = item, *r = (const unsigned char *)res + 8;
  for (size_t i = 0; i < len; i++)
    if (r[i] != a[len - 1 - i]) CHECK_INT_EQ(r[i], a[len - 1 - i]);
}

/* items of sizes 0, 1, 4 KiB and 1 MiB mixed, each filled with a pattern of its own */
static mproc_item *mixed_items(size_t n, unsigned char **store) {
  static const size_t sizes[] = {0, 1, 4096, 1 << 20, 17, 3};
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += sizes[i % 6];
  *store = malloc(total + 1);
  mproc_item *items = malloc(n * sizeof *items);
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = sizes[i % 6];
    for (size_t k = 0; k < len; k++) (*store)[at + k] = (unsigned char)('a' + (i + k * 7) % 20);
    items[i] = (mproc_item){*store + at, len};
    at += len;
  }
  return items;
}

static void map_items_of_any_size(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 60 };
  unsigned char *store;
  mproc_item *items = mixed_items(N, &store);
  mproc_items in = mproc_items_array(items, N);
  mproc_results *res;
  mproc_map_report rep;
  CHECK_OK(mproc_pool_map_items(p, reverse, &in, NULL, &res, &rep));
  CHECK_INT_EQ(rep.ok, N);
  CHECK_INT_EQ(mproc_results_count(res), N);
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    check_reversed(items[i].data, items[i].len, data, len);
  }
  CHECK_ERR(mproc_results_get(res, N, &(const void *){NULL}, &(size_t){0}), MPROC_EINVAL);
  mproc_results_free(res);
  /* batches of one and of seven: the same */
  for (size_t chunk = 1; chunk <= 7; chunk += 6) {
    CHECK_OK(mproc_pool_map_items(p, reverse, &in, &(mproc_map_opts){.chunk_size = chunk}, &res, NULL));
    for (size_t i = 0; i < N; i++) {
      const void *data;
      size_t len;
      CHECK_OK(mproc_results_get(res, i, &data, &len));
      check_reversed(items[i].data, items[i].len, data, len);
    }
    mproc_results_free(res);
  }
  /* strings (with their NUL), packed items */
  const char *words[] = {"alpha", "", "gamma delta", "x"};
  mproc_items sw = mproc_items_strings(words, 4);
  CHECK_OK(mproc_pool_map_items(p, reverse, &sw, NULL, &res, NULL));
  for (size_t i = 0; i < 4; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    check_reversed(words[i], strlen(words[i]) + 1, data, len);
  }
  mproc_results_free(res);
  const char *buf = "onetwothree";
  size_t offs[] = {0, 3, 6, 6, 11};
  mproc_items pk = mproc_items_packed(buf, offs, 4);
  CHECK_OK(mproc_pool_map_items(p, reverse, &pk, NULL, &res, NULL));
  for (size_t i = 0; i < 4; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    check_reversed(buf + offs[i], offs[i + 1] - offs[i], data, len);
  }
  mproc_results_free(res);
  /* failures, an empty result and (processes) a crash among them, under the continue policy */
  mproc_item odd[6] = {{"ok", 2}, {"Fail", 4}, {"E", 1}, {"C", 1}, {"", 0}, {"zz", 2}};
  if (b != MPROC_BACKEND_PROCESS) odd[3] = (mproc_item){"c", 1};
  mproc_items oi = mproc_items_array(odd, 6);
  mproc_item_failure fails[4];
  CHECK_ERR(
      mproc_pool_map_items(
          p, reverse, &oi,
          &(mproc_map_opts){
              .on_error = MPROC_ON_ERROR_CONTINUE, .chunk_size = 6, .failures = fails, .failures_cap = 4},
          &res, &rep),
      MPROC_ERANGE);
  const void *data;
  size_t len;
  CHECK_OK(mproc_results_get(res, 0, &data, &len));
  check_reversed("ok", 2, data, len);
  CHECK_ERR(mproc_results_get(res, 1, &data, &len), MPROC_ERANGE);
  CHECK(data == NULL && len == 0);
  CHECK_OK(mproc_results_get(res, 2, &data, &len));
  CHECK_INT_EQ(len, 0);
  if (b == MPROC_BACKEND_PROCESS) {
    CHECK_ERR(mproc_results_get(res, 3, &data, &len), MPROC_ECRASHED);
    CHECK_INT_EQ(rep.failures_kept, 2);
    CHECK_INT_EQ(fails[1].outcome.kind, MPROC_OUTCOME_CRASHED);
  }
  CHECK_STR_EQ(fails[0].message, "item 1 asked to fail");
  CHECK_OK(mproc_results_get(res, 4, &data, &len));
  check_reversed("", 0, data, len);
  CHECK_OK(mproc_results_get(res, 5, &data, &len));
  check_reversed("zz", 2, data, len);
  mproc_results_free(res);
  /* bad descriptions */
  mproc_items two = mproc_items_array(items, N);
  two.strings = words;
  CHECK_ERR(mproc_pool_map_items(p, reverse, &two, NULL, &res, NULL), MPROC_EINVAL);
  CHECK(res == NULL);
  size_t back[] = {0, 5, 2};
  mproc_items bad = mproc_items_packed(buf, back, 2);
  CHECK_ERR(mproc_pool_map_items(p, reverse, &bad, NULL, &res, NULL), MPROC_EINVAL);
  mproc_items none = {.n = 3};
  CHECK_ERR(mproc_pool_map_items(p, reverse, &none, NULL, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map_items(p, reverse, NULL, NULL, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map_items(p, reverse, &in, NULL, NULL, NULL), MPROC_EINVAL);
  mproc_items empty = {0};
  CHECK_OK(mproc_pool_map_items(p, reverse, &empty, NULL, &res, NULL));
  CHECK_INT_EQ(mproc_results_count(res), 0);
  mproc_results_free(res);
  mproc_pool_destroy(p);
  free(items);
  free(store);
}
MTEST(map_items_process) { map_items_of_any_size(MPROC_BACKEND_PROCESS); }
MTEST(map_items_thread) { map_items_of_any_size(MPROC_BACKEND_THREAD); }
MTEST(map_items_serial) { map_items_of_any_size(MPROC_BACKEND_SERIAL); }
