/* test_items.c: what issue 16 adds for Python users' calls: every failure of a map kept with its message,
 * per-item seeds computed outside a task, and the scoped pool (with Pool() as p). */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

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

/* Item i of a description that is not lazy, as the task receives it. */
static const void *item_of(const mproc_items *in, size_t i, size_t *len) {
  if (in->array) {
    *len = in->array[i].len;
    return in->array[i].data;
  }
  if (in->strings) {
    *len = strlen(in->strings[i]) + 1;
    return in->strings[i];
  }
  *len = in->offsets[i + 1] - in->offsets[i];
  return (const char *)in->packed + in->offsets[i];
}

/* Every result of res is its item reversed (reverse()'s result). */
static void check_all_reversed(const mproc_results *res, const mproc_items *in) {
  CHECK_INT_EQ(mproc_results_count(res), in->n);
  for (size_t i = 0; i < in->n; i++) {
    const void *data;
    size_t len, ilen;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    const void *item = item_of(in, i, &ilen);
    check_reversed(item, ilen, data, len);
  }
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

static void map_items_on(mproc_pool *p, mproc_backend b);
static void map_items_of_any_size(mproc_backend b) { map_items_on(make_pool(b, 2, NULL), b); }

static void map_items_on(mproc_pool *p, mproc_backend b) {
  enum { N = 60 };
  unsigned char *store;
  mproc_item *items = mixed_items(N, &store);
  mproc_items in = mproc_items_array(items, N);
  mproc_results *res;
  mproc_map_report rep;
  CHECK_OK(mproc_pool_map_items(p, reverse, &in, NULL, &res, &rep));
  CHECK_INT_EQ(rep.ok, N);
  CHECK_INT_EQ(mproc_results_count(res), N);
  check_all_reversed(res, &in);
  CHECK_ERR(mproc_results_get(res, N, &(const void *){NULL}, &(size_t){0}), MPROC_EINVAL);
  mproc_results_free(res);
  /* batches of one and of seven: the same */
  for (size_t chunk = 1; chunk <= 7; chunk += 6) {
    CHECK_OK(mproc_pool_map_items(p, reverse, &in, &(mproc_map_opts){.chunk_size = chunk}, &res, NULL));
    check_all_reversed(res, &in);
    mproc_results_free(res);
  }
  /* strings (with their NUL), packed items */
  const char *words[] = {"alpha", "", "gamma delta", "x"};
  mproc_items sw = mproc_items_strings(words, 4);
  CHECK_OK(mproc_pool_map_items(p, reverse, &sw, NULL, &res, NULL));
  check_all_reversed(res, &sw);
  mproc_results_free(res);
  const char *buf = "onetwothree";
  size_t offs[] = {0, 3, 6, 6, 11};
  mproc_items pk = mproc_items_packed(buf, offs, 4);
  CHECK_OK(mproc_pool_map_items(p, reverse, &pk, NULL, &res, NULL));
  check_all_reversed(res, &pk);
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
/* Maps reverse() over in in batches of every size from 1 to in->n: every result right. */
static void reversed_in_every_batch_size(mproc_pool *p, const mproc_items *in) {
  for (size_t chunk = 1; chunk <= in->n; chunk++) {
    mproc_results *res;
    CHECK_OK(mproc_pool_map_items(p, reverse, in, &(mproc_map_opts){.chunk_size = chunk}, &res, NULL));
    check_all_reversed(res, in);
    mproc_results_free(res);
  }
}

/* Items that lie one after the other go to a worker in one copy, the others one by one: a batch that is
 * contiguous, then jumps back, overlaps, repeats an item, holds empty items anywhere (NULL or not), or runs
 * backwards, in batches of every size. */
static void items_apart_and_together(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  static const char buf[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  const mproc_item cases[][8] = {
      {{buf, 3},
       {buf + 3, 3},
       {buf + 6, 4},
       {buf + 10, 1},
       {buf + 11, 5},
       {buf + 16, 2},
       {buf + 18, 9},
       {buf + 27, 9}},
      {{buf, 3},
       {buf + 3, 3},
       {buf + 2, 3},
       {buf + 6, 4},
       {buf + 6, 4},
       {NULL, 0},
       {buf + 10, 2},
       {buf + 12, 1}},
      {{NULL, 0},
       {buf + 30, 0},
       {buf + 4, 2},
       {buf + 6, 0},
       {buf + 6, 3},
       {buf + 1, 0},
       {buf + 9, 1},
       {NULL, 0}},
      {{buf + 30, 6},
       {buf + 24, 6},
       {buf + 18, 6},
       {buf + 12, 6},
       {buf + 6, 6},
       {buf, 6},
       {buf, 6},
       {buf, 36}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    mproc_items in = mproc_items_array(cases[c], 8);
    reversed_in_every_batch_size(p, &in);
  }
  /* C strings carved from one buffer (each with its NUL): one copy per batch */
  char lines[] = "one\0two\0\0three\0four";
  const char *sv[] = {lines, lines + 4, lines + 8, lines + 9, lines + 15, lines + 4};
  mproc_items si = mproc_items_strings(sv, 6);
  reversed_in_every_batch_size(p, &si);
  mproc_pool_destroy(p);
}
MTEST(items_apart_and_together_process) { items_apart_and_together(MPROC_BACKEND_PROCESS); }
MTEST(items_apart_and_together_thread) { items_apart_and_together(MPROC_BACKEND_THREAD); }

/* A batch's item lengths are made as it is handed out: without memory for them its items fail with
 * MPROC_ENOMEM and a message, the map says so, and the pool goes on. */
enum { NOMEM_ITEMS = 200000 };
static size_t nomem_from = SIZE_MAX; /* allocations of this size or more fail */
/* What mproc asks the allocator for an array of `bytes` (src/core/alloc.c, mproc__big_resize): from 512 KiB
 * on, whole 2 MiB spans and 2 MiB to spare, to begin on a 2 MiB boundary. */
static size_t big_request(size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  return bytes < huge / 4 ? bytes : (bytes + huge - 1) / huge * huge + huge;
}
static void *nomem_malloc(size_t n) { return n >= nomem_from ? NULL : malloc(n); }
static void *nomem_realloc(void *q, size_t n) { return n >= nomem_from ? NULL : realloc(q, n); }
static void *nomem_calloc(size_t c, size_t n) { return c * n >= nomem_from ? NULL : calloc(c, n); }
MTEST(items_without_memory_for_a_batch) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc_item *items = malloc(NOMEM_ITEMS * sizeof *items);
  CHECK(items != NULL);
  for (size_t i = 0; i < NOMEM_ITEMS; i++) items[i] = (mproc_item){"xy", 2};
  mproc_items in = mproc_items_array(items, NOMEM_ITEMS);
  /* one batch of every item: its block (24 bytes per item) is the call's largest allocation (the store's
   * arrays take 8, 8, 4 and 16 bytes per item) */
  mproc_map_opts mo = {.chunk_size = NOMEM_ITEMS};
  nomem_from = big_request((size_t)24 * NOMEM_ITEMS);
  CHECK_OK(mproc_replace_allocator(nomem_malloc, nomem_realloc, nomem_calloc, free));
  mproc_results *res = NULL;
  mproc_map_report rep;
  int r = mproc_pool_map_items(p, reverse, &in, &mo, &res, &rep);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(r, MPROC_ENOMEM);
  CHECK_INT_EQ(rep.failed, NOMEM_ITEMS);
  CHECK_INT_EQ(rep.first_failure.code, MPROC_ENOMEM);
  CHECK_STR_EQ(rep.message, "no memory for the batch's item lengths");
  CHECK(res != NULL);
  CHECK_ERR(mproc_results_get(res, 0, &(const void *){NULL}, &(size_t){0}), MPROC_ENOMEM);
  mproc_results_free(res);
  CHECK_OK(mproc_pool_map_items(p, reverse, &in, &mo, &res, NULL)); /* memory again: all well */
  check_all_reversed(res, &in);
  mproc_results_free(res);
  /* no memory for the results' bytes: items of 24 bytes have results of 32, whose block (kept by index, 6.4
   * MB) fails, as does the block of results kept in the order they come (its first size, 16 bytes per item);
   * batches of 1000 and the store's other arrays (8 bytes per item or less) need less.  The map says
   * -ENOMEM and every item reads so: none with bytes it does not have */
  static const char long_item[24] = "a longer item, 24 bytes";
  for (size_t i = 0; i < NOMEM_ITEMS; i++) items[i] = (mproc_item){long_item, sizeof long_item};
  mo.chunk_size = 1000;
  nomem_from = big_request((size_t)16 * NOMEM_ITEMS);
  CHECK_OK(mproc_replace_allocator(nomem_malloc, nomem_realloc, nomem_calloc, free));
  r = mproc_pool_map_items(p, reverse, &in, &mo, &res, &rep);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(r, MPROC_ENOMEM);
  CHECK(res != NULL);
  for (size_t i = 0; i < NOMEM_ITEMS; i += 997) {
    const void *data;
    size_t len;
    CHECK_ERR(mproc_results_get(res, i, &data, &len), MPROC_ENOMEM);
    CHECK(data == NULL);
    CHECK_INT_EQ(len, 0);
  }
  mproc_results_free(res);
  free(items);
  mproc_pool_destroy(p);
}

/* The store keeps results of one length by index (no per-item offset); the first result of another length
 * moves it to an offset and a length per item.  Without memory for those, that result alone is lost: it reads
 * -ENOMEM, the map says so, and the results kept before and after it read as they were. */
static int first_byte(const void *arg, size_t len, mproc_task *t) {
  const unsigned char *a = arg;
  return mproc_task_return(t, a, a[0] == 'L' ? 2 : 1); /* 'L': a result of 2 bytes, else of 1 */
  (void)len;
}
MTEST(results_without_memory_for_their_index) {
  enum { N = 600000, LONG_AT = 300000 }; /* an index of 4.8 MB per array, 2.4 MB of codes, 0.6 MB of bytes */
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc_item *items = malloc(N * sizeof *items);
  CHECK(items != NULL);
  for (size_t i = 0; i < N; i++) items[i] = (mproc_item){i == LONG_AT ? "Lx" : "ab", 2};
  mproc_items in = mproc_items_array(items, N);
  nomem_from = big_request((size_t)8 * N);
  CHECK_OK(mproc_replace_allocator(nomem_malloc, nomem_realloc, nomem_calloc, free));
  mproc_results *res = NULL;
  int r = mproc_pool_map_items(p, first_byte, &in, &(mproc_map_opts){.chunk_size = 1000}, &res, NULL);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_ERR(r, MPROC_ENOMEM);
  CHECK(res != NULL);
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    int c = mproc_results_get(res, i, &data, &len);
    if (i == LONG_AT) {
      CHECK_ERR(c, MPROC_ENOMEM);
      continue;
    }
    if (c != 0 || len != 1 || *(const char *)data != 'a') {
      CHECK_OK(c);
      CHECK_INT_EQ(len, 1);
      CHECK_INT_EQ(*(const char *)data, 'a');
    }
  }
  mproc_results_free(res);
  free(items);
  mproc_pool_destroy(p);
}

/* Results that all have one length, then one of another (kept by index, then by offset from that result
 * on: every one reads back whatever order the batches ended in); empty results, then one that is not; a
 * first result too long to be kept by index; and the item codes the caller asked for (0, a failure's
 * code, -ECANCELED for an item that did not run). */
static void results_of_one_length_then_another(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 5000 };
  static char bytes[N][9];
  mproc_item *items = malloc(N * sizeof *items);
  CHECK(items != NULL);
  for (size_t i = 0; i < N; i++) {
    snprintf(bytes[i], sizeof bytes[i], "%08zu", i);
    items[i] = (mproc_item){bytes[i], i % 997 == 996 ? 3 : 8}; /* results of 16 bytes, every 997th of 11 */
  }
  mproc_items in = mproc_items_array(items, N);
  size_t chunks[] = {0, 1, 7, 1000};
  for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
    mproc_results *res;
    CHECK_OK(mproc_pool_map_items(p, reverse, &in, &(mproc_map_opts){.chunk_size = chunks[c]}, &res, NULL));
    check_all_reversed(res, &in);
    mproc_results_free(res);
  }
  /* empty results ('E'), then one that is not, then empty ones again */
  for (size_t i = 0; i < N; i++) items[i] = (mproc_item){i == 2500 ? "xyz" : "E", i == 2500 ? 3 : 1};
  mproc_results *res;
  CHECK_OK(mproc_pool_map_items(p, reverse, &in, &(mproc_map_opts){.chunk_size = 100}, &res, NULL));
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    CHECK(data != NULL);
    if (i == 2500)
      check_reversed("xyz", 3, data, len);
    else if (len != 0)
      CHECK_INT_EQ(len, 0);
  }
  mproc_results_free(res);
  /* a first result of 308 bytes, then short ones; a failure among them, and the caller's item codes */
  static char big[300];
  memset(big, 'b', sizeof big);
  for (size_t i = 0; i < N; i++) items[i] = (mproc_item){bytes[i], 8};
  items[0] = (mproc_item){big, sizeof big};
  items[10] = (mproc_item){"F", 1};
  int *codes = malloc(N * sizeof *codes);
  CHECK(codes != NULL);
  CHECK_ERR(mproc_pool_map_items(
                p, reverse, &in,
                &(mproc_map_opts){.chunk_size = 1, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes},
                &res, NULL),
            MPROC_ERANGE);
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    int c = mproc_results_get(res, i, &data, &len);
    CHECK_INT_EQ(codes[i], c);
    if (i == 10) {
      CHECK_ERR(c, MPROC_ERANGE);
      continue;
    }
    CHECK_OK(c);
    check_reversed(items[i].data, items[i].len, data, len);
  }
  mproc_results_free(res);
  /* stopped at the first failure: the items after it that did not run read -ECANCELED, in the codes too */
  for (size_t i = 0; i < N; i++) codes[i] = 12345;
  CHECK_ERR(mproc_pool_map_items(p, reverse, &in, &(mproc_map_opts){.chunk_size = 1, .item_codes = codes},
                                 &res, NULL),
            MPROC_ERANGE);
  size_t cancelled = 0;
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    int c = mproc_results_get(res, i, &data, &len);
    CHECK_INT_EQ(codes[i], c);
    if (i == 10) CHECK_ERR(c, MPROC_ERANGE);
    if (i < 10) CHECK_OK(c);
    if (c == MPROC_ECANCELED) cancelled++;
    if (c == 0) check_reversed(items[i].data, items[i].len, data, len);
  }
  CHECK_INT_CMP(cancelled, >, 0);
  mproc_results_free(res);
  free(codes);
  free(items);
  mproc_pool_destroy(p);
}
MTEST(results_of_one_length_then_another_process) {
  results_of_one_length_then_another(MPROC_BACKEND_PROCESS);
}
MTEST(results_of_one_length_then_another_thread) { results_of_one_length_then_another(MPROC_BACKEND_THREAD); }
MTEST(results_of_one_length_then_another_serial) { results_of_one_length_then_another(MPROC_BACKEND_SERIAL); }

MTEST(map_items_process) { map_items_of_any_size(MPROC_BACKEND_PROCESS); }
MTEST(map_items_thread) { map_items_of_any_size(MPROC_BACKEND_THREAD); }
MTEST(map_items_serial) { map_items_of_any_size(MPROC_BACKEND_SERIAL); }
MTEST(map_items_forkserver) {
  CHECK_OK(mproc_init(NULL, NULL));
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_FORKSERVER}));
  map_items_on(p, MPROC_BACKEND_PROCESS);
  mproc_shutdown();
}
MTEST(map_items_exec) {
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_EXEC}));
  map_items_on(p, MPROC_BACKEND_PROCESS);
}

/* Items of 0, 1, 4 KiB, 1 MiB and 64 MiB mixed in one map, with results a little larger than each: the
 * 64 MiB result is larger than the staging area and travels alone. */
static void huge_items(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  static const size_t sizes[] = {0, 1, 4096, 1 << 20, (size_t)64 << 20, 5};
  enum { N = 6 };
  mproc_item items[N];
  for (size_t i = 0; i < N; i++) {
    unsigned char *d = malloc(sizes[i] + 1);
    for (size_t k = 0; k < sizes[i]; k++) d[k] = (unsigned char)(k * 31 + i);
    items[i] = (mproc_item){d, sizes[i]};
  }
  mproc_items in = mproc_items_array(items, N);
  mproc_results *res;
  CHECK_OK(mproc_pool_map_items(p, reverse, &in, &(mproc_map_opts){.chunk_size = 6}, &res, NULL));
  check_all_reversed(res, &in);
  mproc_results_free(res);
  /* and through a stream, unordered */
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_unordered_items(p, reverse, &in, NULL, &s));
  for (size_t k = 0; k < N; k++) {
    int64_t idx;
    mproc_item r;
    CHECK_OK(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &r, NULL));
    check_reversed(items[idx].data, items[idx].len, r.data, r.len);
  }
  mproc_stream_destroy(s);
  for (size_t i = 0; i < N; i++) free((void *)items[i].data);
  mproc_pool_destroy(p);
}
MTEST_TIMEOUT(huge_items_process, 120) { huge_items(MPROC_BACKEND_PROCESS); }
MTEST_TIMEOUT(huge_items_thread, 120) { huge_items(MPROC_BACKEND_THREAD); }
MTEST_TIMEOUT(huge_items_serial, 120) { huge_items(MPROC_BACKEND_SERIAL); }

/* Items in the shared arena are read in place by process workers: the task sees the caller's address. */
static int where(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  uint64_t a = (uint64_t)(uintptr_t)arg;
  return mproc_task_return(t, &a, sizeof a);
}

MTEST(arena_items_are_read_in_place) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  enum { N = 40 };
  char *shared;
  CHECK_OK(mproc_shared_alloc((void **)&shared, N * 16));
  static char priv[N * 16];
  mproc_item in_arena[N], outside[N];
  for (int i = 0; i < N; i++) {
    in_arena[i] = (mproc_item){shared + 16 * i, 5 + (size_t)i % 7};
    outside[i] = (mproc_item){priv + 16 * i, 5 + (size_t)i % 7};
  }
  mproc_items a = mproc_items_array(in_arena, N), o = mproc_items_array(outside, N);
  mproc_results *res;
  CHECK_OK(mproc_pool_map_items(p, where, &a, NULL, &res, NULL));
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    CHECK_INT_EQ(*(const uint64_t *)data, (uint64_t)(uintptr_t)in_arena[i].data);
  }
  mproc_results_free(res);
  /* the caller's own memory travels through the ring: the worker reads a copy */
  CHECK_OK(mproc_pool_map_items(p, where, &o, NULL, &res, NULL));
  for (size_t i = 0; i < N; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    CHECK(*(const uint64_t *)data != (uint64_t)(uintptr_t)outside[i].data);
  }
  mproc_results_free(res);
  mproc_pool_destroy(p);
  mproc_shared_free(shared);
}

/* Ctrl-C during a map over items: MPROC_EINTERRUPTED, what did not run cancelled, the pool goes on. */
static pid_t test_pid;
static int ctrl_c_at_3(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_index(t) == 3) kill(test_pid, SIGINT);
  if (mproc_task_index(t) >= 3) { /* the rest waits to be cancelled */
    double until = mproc__plat_now() + 5;
    while (mproc__plat_now() < until) {
    }
  }
  return reverse(arg, len, t);
}

MTEST(ctrl_c_ends_a_map_over_items) {
  test_pid = getpid();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  const char *words[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
  mproc_items in = mproc_items_strings(words, 8);
  mproc_results *res;
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map_items(p, ctrl_c_at_3, &in, &(mproc_map_opts){.chunk_size = 1}, &res, &rep),
            MPROC_EINTERRUPTED);
  CHECK_INT_CMP(rep.cancelled, >=, 5);
  const void *data;
  size_t len;
  CHECK_ERR(mproc_results_get(res, 7, &data, &len), MPROC_ECANCELED);
  mproc_results_free(res);
  CHECK_OK(mproc_pool_map_items(p, reverse, &in, NULL, &res, NULL));
  mproc_results_free(res);
  mproc_pool_destroy(p);
}

/* ---- streams over items ---- */

static void stream_items(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  enum { N = 300 };
  unsigned char *store;
  mproc_item *items = mixed_items(N, &store);
  mproc_items in = mproc_items_array(items, N);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_items(p, reverse, &in, NULL, &s));
  int64_t idx;
  mproc_item res;
  for (int64_t k = 0; k < N; k++) {
    CHECK_OK(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK_INT_EQ(idx, k);
    check_reversed(items[k].data, items[k].len, res.data, res.len);
  }
  CHECK_ERR(mproc_stream_next_item(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  static unsigned char seen[N];
  memset(seen, 0, sizeof seen);
  CHECK_OK(mproc_pool_imap_unordered_items(p, reverse, &in, &(mproc_stream_opts){.max_in_flight = 16}, &s));
  for (int k = 0; k < N; k++) {
    CHECK_OK(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK(idx >= 0 && idx < N);
    CHECK_INT_EQ(seen[idx], 0);
    seen[idx] = 1;
    check_reversed(items[idx].data, items[idx].len, res.data, res.len);
  }
  CHECK_ERR(mproc_stream_next_item(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  /* next_item on a stream of fixed-size records gives the record and its size */
  int nums[5] = {1, 2, 3, 4, 5};
  CHECK_OK(mproc_pool_imap(p, square, nums, 5, sizeof *nums, sizeof(int), NULL, &s));
  for (int k = 0; k < 5; k++) {
    CHECK_OK(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK_INT_EQ(res.len, sizeof(int));
    CHECK_INT_EQ(*(const int *)res.data, nums[k] * nums[k]);
  }
  mproc_stream_destroy(s);
  CHECK_ERR(mproc_pool_imap_items(p, reverse, NULL, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_stream_next_item(NULL, 0, &idx, &res, NULL), MPROC_EINVAL);
  mproc_pool_destroy(p);
  free(items);
  free(store);
}
MTEST(stream_items_process) { stream_items(MPROC_BACKEND_PROCESS); }
MTEST(stream_items_thread) { stream_items(MPROC_BACKEND_THREAD); }
MTEST(stream_items_serial) { stream_items(MPROC_BACKEND_SERIAL); }

/* ---- lazy inputs ---- */

/* A counting input: item i is the text of i; it checks how far ahead of the consumer it is asked to run,
 * and fails at fail_at (or ends at end). */
struct counter {
  int64_t consumed; /* items the test has received */
  int64_t ahead;    /* the most it may be asked ahead of consumed */
  int64_t max_ahead_seen;
  int64_t end, fail_at;
  int64_t produced;
  char buf[32];
};

static int count_up(void *user, int64_t index, mproc_item *item) {
  struct counter *c = user;
  if (index != c->produced) return MPROC_EINVAL; /* asked out of order */
  if (index - c->consumed > c->max_ahead_seen) c->max_ahead_seen = index - c->consumed;
  if (index == c->fail_at) return MPROC_EIO;
  if (index == c->end) return 0;
  c->produced++;
  int len = snprintf(c->buf, sizeof c->buf, "%lld", (long long)index);
  *item = (mproc_item){c->buf, (size_t)len};
  return 1;
}

/* the item's text parsed back, as a result */
static int parse(const void *arg, size_t len, mproc_task *t) {
  char tmp[32];
  if (len >= sizeof tmp) return MPROC_EINVAL;
  memcpy(tmp, arg, len);
  tmp[len] = '\0';
  int64_t v = strtoll(tmp, NULL, 10);
  return mproc_task_return(t, &v, sizeof v);
}

static void drain(mproc_stream *s, struct counter *c, int64_t expect_upto, bool ordered) {
  int64_t idx;
  mproc_item res;
  for (int64_t k = 0; k < expect_upto; k++) {
    CHECK_OK(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL));
    if (ordered) CHECK_INT_EQ(idx, k);
    CHECK_INT_EQ(res.len, 8);
    CHECK_INT_EQ(*(const int64_t *)res.data, idx);
    c->consumed++;
  }
}

MTEST(lazy_input_alternates_with_one_worker_and_window_one) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  struct counter c = {.end = 200, .fail_at = -1};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_stream *s;
  CHECK_OK(
      mproc_pool_imap_items(p, parse, &in, &(mproc_stream_opts){.chunk_size = 1, .max_in_flight = 1}, &s));
  drain(s, &c, 200, true);
  int64_t idx;
  mproc_item res;
  CHECK_ERR(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL), MPROC_EEOF);
  CHECK_INT_EQ(c.max_ahead_seen, 0); /* item i asked for only once item i - 1 was taken */
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}

static void bounded_ahead(mproc_backend b, size_t chunk, int64_t bound) {
  mproc_pool *p = make_pool(b, 2, NULL);
  struct counter c = {.end = 5000, .fail_at = -1};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_unordered_items(
      p, parse, &in, &(mproc_stream_opts){.chunk_size = chunk, .max_in_flight = (size_t)bound}, &s));
  drain(s, &c, 5000, false);
  CHECK_INT_CMP(c.max_ahead_seen, <, bound); /* never more than the bound produced and not consumed */
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}
MTEST(lazy_input_stays_within_pre_dispatch) {
  bounded_ahead(MPROC_BACKEND_PROCESS, 0, 8);
  bounded_ahead(MPROC_BACKEND_PROCESS, 3, 64);
  bounded_ahead(MPROC_BACKEND_THREAD, 0, 8);
}

MTEST(lazy_input_serial_pulls_one_batch_at_a_time) {
  mproc_pool *p = make_pool(MPROC_BACKEND_SERIAL, 1, NULL);
  struct counter c = {.end = 300, .fail_at = -1};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_items(p, parse, &in, &(mproc_stream_opts){.chunk_size = 1}, &s));
  drain(s, &c, 300, true);
  CHECK_INT_CMP(c.max_ahead_seen, <=, 1); /* the batch asked for, and at most the one queued behind it */
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}

static void failing_input(mproc_backend b, int64_t fail_at) {
  mproc_pool *p = make_pool(b, 2, NULL);
  struct counter c = {.end = -1, .fail_at = fail_at};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_stream *s;
  int r = mproc_pool_imap_items(p, parse, &in, &(mproc_stream_opts){.max_in_flight = 64}, &s);
  if (fail_at == 0) {
    CHECK_ERR(r, MPROC_EIO); /* at once */
  } else {
    CHECK_OK(r);
    int64_t idx, got = 0;
    mproc_item res;
    for (;;) {
      r = mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL);
      if (r != 0) break;
      CHECK_INT_EQ(idx, got);
      got++;
      c.consumed++;
    }
    CHECK_ERR(r, MPROC_EIO); /* once, then the end */
    CHECK_INT_CMP(got, <=, fail_at);
    CHECK_ERR(mproc_stream_next_item(s, 0, &idx, &res, NULL), MPROC_EEOF);
    mproc_stream_destroy(s);
  }
  /* the all-at-once form ends with the input's error too */
  struct counter c2 = {.end = -1, .fail_at = fail_at};
  mproc_items in2 = mproc_items_lazy(count_up, &c2);
  mproc_results *res = NULL;
  CHECK_ERR(mproc_pool_map_items(p, parse, &in2, NULL, &res, NULL), MPROC_EIO);
  mproc_results_free(res);
  /* the pool goes on */
  int v = 7;
  int out;
  size_t len;
  CHECK_OK(mproc_pool_apply(p, square, &v, sizeof v, &out, sizeof out, &len));
  CHECK_INT_EQ(out, 49);
  mproc_pool_destroy(p);
}
MTEST(lazy_input_fails_at_the_start) { failing_input(MPROC_BACKEND_PROCESS, 0); }
MTEST(lazy_input_fails_in_the_middle) { failing_input(MPROC_BACKEND_PROCESS, 500); }
MTEST(lazy_input_fails_at_the_end) { failing_input(MPROC_BACKEND_PROCESS, 999); }
MTEST(lazy_input_fails_serial) { failing_input(MPROC_BACKEND_SERIAL, 500); }

MTEST(unbounded_input_stopped_by_the_caller) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  struct counter c = {.end = -1, .fail_at = -1};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_items(p, parse, &in, &(mproc_stream_opts){.max_in_flight = 100}, &s));
  drain(s, &c, 1000, true);
  mproc_stream_destroy(s);
  CHECK_INT_CMP(c.produced, <=, 1000 + 100);
  mproc_pool_destroy(p);
}

MTEST(map_items_over_a_lazy_input) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  struct counter c = {.end = 3000, .fail_at = -1, .ahead = 0};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_results *res;
  mproc_map_report rep;
  CHECK_OK(mproc_pool_map_items(p, parse, &in, NULL, &res, &rep));
  CHECK_INT_EQ(mproc_results_count(res), 3000);
  CHECK_INT_EQ(rep.ok, 3000);
  for (size_t i = 0; i < 3000; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    CHECK_INT_EQ(*(const int64_t *)data, (int64_t)i);
  }
  mproc_results_free(res);
  /* item codes cannot be given for an input of unknown length */
  int codes[4];
  c = (struct counter){.end = 3, .fail_at = -1};
  CHECK_ERR(mproc_pool_map_items(p, parse, &in, &(mproc_map_opts){.item_codes = codes}, &res, NULL),
            MPROC_EINVAL);
  /* its options are checked as every map's: a NaN time limit is refused (it was taken as none) */
  c = (struct counter){.end = 3, .fail_at = -1};
  CHECK_ERR(mproc_pool_map_items(p, parse, &in, &(mproc_map_opts){.timeout = NAN}, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(
      mproc_pool_map_items(p, parse, &in, &(mproc_map_opts){.on_error = (mproc_error_policy)9}, &res, NULL),
      MPROC_EINVAL);
  mproc_pool_destroy(p);
}

MTEST(parallel_over_items) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2}));
  const char *words[] = {"one", "two", "three", "", "five"};
  mproc_items in = mproc_items_strings(words, 5);
  mproc_results *res;
  CHECK_OK(mproc_parallel_run_items(par, reverse, &in, &res, NULL));
  for (size_t i = 0; i < 5; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    check_reversed(words[i], strlen(words[i]) + 1, data, len);
  }
  mproc_results_free(res);
  /* a generator: counts without a total */
  struct counter c = {.end = 400, .fail_at = -1};
  mproc_items lazy = mproc_items_lazy(count_up, &c);
  CHECK_OK(mproc_parallel_run_items(par, parse, &lazy, &res, NULL));
  CHECK_INT_EQ(mproc_results_count(res), 400);
  mproc_results_free(res);
  mproc_stream *s;
  c = (struct counter){.end = 50, .fail_at = -1};
  CHECK_OK(mproc_parallel_stream_items(par, parse, &lazy, MPROC_RETURN_GENERATOR, &s));
  drain(s, &c, 50, true);
  mproc_stream_destroy(s);
  CHECK_ERR(mproc_parallel_run_items(par, parse, NULL, &res, NULL), MPROC_EINVAL);
  /* the one-call form */
  CHECK_OK(mproc_parallel_call_items(reverse, &in, &res, &(mproc_parallel_opts){.n_jobs = 2}, NULL));
  for (size_t i = 0; i < 5; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    check_reversed(words[i], strlen(words[i]) + 1, data, len);
  }
  mproc_results_free(res);
  c = (struct counter){.end = 30, .fail_at = -1};
  CHECK_OK(mproc_parallel_call_items(parse, &lazy, &res,
                                     &(mproc_parallel_opts){.backend = MPROC_BACKEND_THREAD}, NULL));
  CHECK_INT_EQ(mproc_results_count(res), 30);
  mproc_results_free(res);
  CHECK_ERR(mproc_parallel_call_items(parse, NULL, &res, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_call_items(NULL, &in, &res, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_call_items(parse, &in, NULL, NULL, NULL), MPROC_EINVAL);
  mproc_parallel_shutdown();
  CHECK_ERR(mproc_parallel_stream_items(par, parse, &lazy, MPROC_RETURN_LIST, &s), MPROC_EINVAL);
  mproc_parallel_destroy(par);
}

/* 10^7 items produced lazily through a stream: the resident size stays flat once the window is full (the
 * bound is far below what keeping the items or their results would take: 10^7 x 8-byte results alone are
 * 80 MB, with per-item bookkeeping several times that). */
#if defined(__SANITIZE_THREAD__)
#define RSS_SCALE 3 /* shadow memory beside every byte touched */
#elif defined(__SANITIZE_ADDRESS__)
#define RSS_SCALE 40 /* freed blocks (a batch's job and lengths) wait in ASan's quarantine, up to 256 MB */
#else
#define RSS_SCALE 1
#endif
MTEST_TIMEOUT(lazy_input_memory_is_flat, 300) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  const int64_t n = 10 * 1000 * 1000;
  struct counter c = {.end = n, .fail_at = -1};
  mproc_items in = mproc_items_lazy(count_up, &c);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap_unordered_items(p, parse, &in, NULL, &s));
  struct rusage ru;
  long before = 0;
  int64_t idx;
  mproc_item res;
  int64_t sum = 0;
  for (int64_t k = 0; k < n; k++) {
    CHECK_OK(mproc_stream_next_item(s, MPROC_FOREVER, &idx, &res, NULL));
    CHECK_INT_EQ(res.len, 8);
    int64_t v;
    memcpy(&v, res.data, 8);
    if (v != idx) CHECK_INT_EQ(v, idx);
    sum += v;
    c.consumed++;
    if (k == 100000) { /* the window has filled */
      getrusage(RUSAGE_SELF, &ru);
      before = ru.ru_maxrss;
    }
  }
  CHECK_ERR(mproc_stream_next_item(s, 0, &idx, &res, NULL), MPROC_EEOF);
  CHECK_INT_EQ(sum, n * (n - 1) / 2); /* every item once */
  mproc_stream_destroy(s);
  getrusage(RUSAGE_SELF, &ru);
  CHECK_INT_CMP(ru.ru_maxrss - before, <, 8 * 1024 * RSS_SCALE); /* kB */
  mproc_pool_destroy(p);
}

/* Parallel's progress over a lazy input counts without a total until the input ends. */
struct seen_progress {
  size_t last_total, last_done, calls;
  bool total_before_end;
};
static void on_progress(const mproc_progress *pr, void *user) {
  struct seen_progress *sp = user;
  sp->calls++;
  sp->last_total = pr->total;
  sp->last_done = pr->done;
  if (pr->total && pr->done < 400) sp->total_before_end = true;
}

MTEST(parallel_progress_over_a_lazy_input) {
  struct seen_progress sp = {0};
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(
      &par, &(mproc_parallel_opts){
                .n_jobs = 2, .progress = on_progress, .progress_user = &sp, .progress_interval = 0.001}));
  struct counter c = {.end = 400, .fail_at = -1};
  mproc_items lazy = mproc_items_lazy(count_up, &c);
  mproc_results *res;
  CHECK_OK(mproc_parallel_run_items(par, parse, &lazy, &res, NULL));
  CHECK_INT_CMP(sp.calls, >=, 1);
  CHECK_INT_EQ(sp.last_total, 400); /* known at the end */
  CHECK_INT_EQ(sp.last_done, 400);
  CHECK(!sp.total_before_end);
  mproc_results_free(res);
  mproc_parallel_destroy(par);
}

/* The all-at-once form over a lazy input grows its results store by doubling: it reallocated its arrays at
 * every item before (quadratic in the input's length). */
static size_t reallocs;
static void *counting_realloc(void *p, size_t n) {
  if (p) __atomic_fetch_add(&reallocs, 1, __ATOMIC_RELAXED); /* a block grown (first ones are allocations) */
  return realloc(p, n);
}

MTEST(lazy_map_grows_its_results_by_doubling) {
  mproc_pool *p = make_pool(MPROC_BACKEND_THREAD, 2, NULL);
  struct counter c = {.end = 100000, .fail_at = -1};
  mproc_items in = mproc_items_lazy(count_up, &c);
  CHECK_OK(mproc_replace_allocator(malloc, counting_realloc, calloc, free));
  mproc_results *res;
  int r = mproc_pool_map_items(p, parse, &in, NULL, &res, NULL);
  size_t n = reallocs;
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_OK(r);
  CHECK_INT_EQ(mproc_results_count(res), 100000);
  CHECK_INT_CMP(n, <, 200); /* about 3 x log2(100000 / 64) for the arrays, and the bytes' block */
  mproc_results_free(res);
  mproc_pool_destroy(p);
}
