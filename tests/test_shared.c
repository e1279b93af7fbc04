/* test_shared.c: the shared arena (mproc_shared_alloc) and the zero-copy paths built on it: arrays made
 * after a pool exists are seen by its workers, maps and parallel runs read inputs and write outputs in
 * place, large task arguments travel through the arena. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "engine/engine.h"

/* A block the test needs: the test fails when it cannot be had. */
static void *shared_alloc(size_t size) {
  void *p = NULL;
  CHECK_OK(mproc_shared_alloc(&p, size));
  CHECK(p != NULL);
  return p;
}

/* Whether p lies in a mapping of the arena's memory file in this process (read from /proc/self/maps): how
 * a worker tells that it reads or writes the caller's shared memory and not a copy. */
static bool in_arena_mapping(const void *p) {
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return false;
  char line[512];
  bool found = false;
  uintptr_t a = (uintptr_t)p;
  while (!found && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
      found = strstr(line, "mproc-shared") != NULL;
  }
  fclose(f);
  return found;
}

MTEST(alloc_free_and_errors) {
  CHECK(!mproc_shared_contains(&errno, 1));
  void *none = &none;
  CHECK_ERR(mproc_shared_alloc(&none, 0), MPROC_EINVAL);
  CHECK(none == &none); /* untouched */
  CHECK_ERR(mproc_shared_alloc(NULL, 10), MPROC_EINVAL);
  unsigned char *a = shared_alloc(10);
  unsigned char *b = shared_alloc(3 << 20);
  CHECK(a && b);
  CHECK_INT_EQ((uintptr_t)a % 4096, 0);
  CHECK_INT_EQ((uintptr_t)b % (2 << 20), 0); /* big blocks are 2 MiB aligned */
  CHECK(mproc_shared_contains(a, 10) && mproc_shared_contains(b, 3 << 20));
  CHECK(in_arena_mapping(a) && in_arena_mapping(b + (3 << 20) - 1));
  for (size_t i = 0; i < (3u << 20); i += 4096) CHECK_INT_EQ(b[i], 0); /* zero-filled */
  memset(b, 0xab, 3 << 20);
  CHECK_ERR(mproc_shared_free(b + 4096), MPROC_EINVAL); /* not the start of a block */
  CHECK_ERR(mproc_shared_free(&errno), MPROC_EINVAL);
  CHECK_OK(mproc_shared_free(b));
  CHECK_ERR(mproc_shared_free(b), MPROC_EINVAL); /* twice */
  CHECK_OK(mproc_shared_free(NULL));
  /* the freed range is handed out again, zeroed */
  unsigned char *c = shared_alloc(3 << 20);
  CHECK(c == b);
  for (size_t i = 0; i < (3u << 20); i += 512) CHECK_INT_EQ(c[i], 0);
  CHECK_OK(mproc_shared_free(c));
  CHECK_OK(mproc_shared_free(a));
  /* with nothing left the arena is gone (the harness checks no shared mapping is left) */
  CHECK(!mproc_shared_contains(a, 1));
}

MTEST(fragmentation_and_merging) {
  enum { N = 64 };
  void *p[N];
  for (int i = 0; i < N; i++) p[i] = shared_alloc((size_t)(i % 5 + 1) * 4096);
  for (int i = 0; i < N; i += 2) CHECK_OK(mproc_shared_free(p[i]));
  for (int i = 1; i < N; i += 2) CHECK_OK(mproc_shared_free(p[i]));
  /* everything merged back: one block as large as the first N allocations fits where the first was */
  void *big = shared_alloc(4096 * 3 * N);
  CHECK(big == p[0]);
  CHECK_OK(mproc_shared_free(big));
}

MTEST(arena_size_from_the_environment) {
  setenv("MPROC_SHARED_BYTES", "64m", 1);
  void *a = shared_alloc(40 << 20);
  CHECK(a != NULL);
  void *none = &none;
  CHECK_ERR(mproc_shared_alloc(&none, 40 << 20), MPROC_ENOMEM); /* 80 MiB do not fit in 64 */
  CHECK(none == &none);
  void *b = shared_alloc(20 << 20);
  CHECK(b != NULL);
  CHECK_OK(mproc_shared_free(a));
  CHECK_OK(mproc_shared_free(b));
  /* a bad value falls back to the default (at least 1 GiB), and MPROC_VERBOSE says so on stderr */
  setenv("MPROC_SHARED_BYTES", "lots", 1);
  setenv("MPROC_VERBOSE", "1", 1);
  int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  fflush(stderr);
  int saved = dup(2);
  CHECK_INT_EQ(dup2(fds[1], 2), 2);
  void *c = shared_alloc((size_t)900 << 20);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fds[1]);
  unsetenv("MPROC_VERBOSE");
  CHECK(c != NULL);
  CHECK_OK(mproc_shared_free(c));
  unsetenv("MPROC_SHARED_BYTES");
  char buf[512] = {0};
  CHECK_INT_CMP(read(fds[0], buf, sizeof buf - 1), >, 0);
  close(fds[0]);
  CHECK(strstr(buf, "mproc: MPROC_SHARED_BYTES=\"lots\" is not a size") != NULL);
}

/* ---- workers and memory made after the pool ---- */

typedef struct view {
  int64_t *data; /* in the arena */
  size_t n;
} view;

static int sum_view(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  const view *v = arg;
  if (!in_arena_mapping(v->data)) return mproc_task_fail(t, MPROC_EINVAL, "not shared");
  int64_t s = 0;
  for (size_t i = 0; i < v->n; i++) s += v->data[i];
  v->data[0] = -1; /* written in place: the caller sees it */
  return mproc_task_return(t, &s, sizeof s);
}

static void pool_sees_later_memory(mproc_backend backend) {
  mproc_pool *pool;
  mproc_pool_opts po = {.workers = 2, .backend = backend};
  CHECK_OK(mproc_pool_create(&pool, &po));
  /* made after the pool and its workers exist */
  for (int round = 0; round < 3; round++) {
    size_t n = (size_t)1 << (16 + round);
    int64_t *data = shared_alloc(n * sizeof *data);
    CHECK(data != NULL);
    for (size_t i = 0; i < n; i++) data[i] = (int64_t)i;
    view v = {data, n};
    int64_t got = 0;
    size_t len = 0;
    CHECK_OK(mproc_pool_apply(pool, sum_view, &v, sizeof v, &got, sizeof got, &len));
    CHECK_INT_EQ(got, (int64_t)(n * (n - 1) / 2));
    CHECK_INT_EQ(data[0], -1);
    CHECK_OK(mproc_shared_free(data));
  }
  mproc_pool_destroy(pool);
}
MTEST(pool_sees_memory_made_after_it_process) { pool_sees_later_memory(MPROC_BACKEND_PROCESS); }

MTEST(replacement_workers_see_it_too) {
  mproc_pool *pool;
  mproc_pool_opts po = {.workers = 1, .max_tasks_per_child = 1};
  CHECK_OK(mproc_pool_create(&pool, &po));
  int64_t *data = shared_alloc(4096);
  CHECK(data != NULL);
  for (int k = 0; k < 4; k++) { /* each task on a fresh worker */
    data[0] = 5;
    data[1] = k;
    view v = {data, 2};
    int64_t got = 0;
    CHECK_OK(mproc_pool_apply(pool, sum_view, &v, sizeof v, &got, sizeof got, NULL));
    CHECK_INT_EQ(got, 5 + k);
  }
  CHECK_OK(mproc_shared_free(data));
  mproc_pool_destroy(pool);
}

/* ---- maps in place ---- */

typedef struct rec {
  const struct rec *self; /* where the caller put this record */
  int64_t *out_at;        /* where the caller expects this item's result */
  int64_t x;
} rec;

static int square_in_place(const void *arg, size_t len, mproc_task *t) {
  const rec *r = arg;
  if (len != sizeof *r) return mproc_task_fail(t, MPROC_EINVAL, "len");
  if (r->self != r) return mproc_task_fail(t, MPROC_EINVAL, "input copied");
  if (t->out != r->out_at) return mproc_task_fail(t, MPROC_EINVAL, "output not in place");
  int64_t y = r->x * r->x;
  return mproc_task_return(t, &y, sizeof y);
}

static int square_read_in_place(const void *arg, size_t len, mproc_task *t) {
  const rec *r = arg;
  if (len != sizeof *r || r->self != r) return mproc_task_fail(t, MPROC_EINVAL, "input copied");
  int64_t y = r->x * r->x;
  return mproc_task_return(t, &y, sizeof y);
}

static int square_copied(const void *arg, size_t len, mproc_task *t) {
  const rec *r = arg;
  if (len != sizeof *r) return mproc_task_fail(t, MPROC_EINVAL, "len");
  if (r->self == r) return mproc_task_fail(t, MPROC_EINVAL, "private input read in place");
  int64_t y = r->x * r->x;
  return mproc_task_return(t, &y, sizeof y);
}

/* Frees a test's input and output arrays, made with mproc_shared_alloc() or malloc(). */
static void free_arrays(bool shared, void *in, void *out) {
  if (shared) {
    CHECK_OK(mproc_shared_free(in));
    CHECK_OK(mproc_shared_free(out));
  } else {
    free(in);
    free(out);
  }
}

static void map_in_place(mproc_backend backend, bool shared) {
  mproc_pool *pool;
  mproc_pool_opts po = {.workers = 2, .backend = backend, .ring_bytes = 4096};
  CHECK_OK(mproc_pool_create(&pool, &po));
  size_t n = 20000;
  rec *in = shared ? shared_alloc(n * sizeof *in) : calloc(n, sizeof *in);
  int64_t *out = shared ? shared_alloc(n * sizeof *out) : calloc(n, sizeof *out);
  CHECK(in && out);
  for (size_t i = 0; i < n; i++) in[i] = (rec){&in[i], &out[i], (int64_t)i};
  mproc_task_fn fn = shared || backend == MPROC_BACKEND_THREAD ? square_in_place : square_copied;
  mproc_map_report rep;
  int r = mproc_pool_map(pool, fn, in, n, sizeof *in, out, sizeof *out, NULL, &rep);
  if (r != 0) fprintf(stderr, "item %lld: %s\n", (long long)rep.first_failed_index, rep.message);
  CHECK_OK(r);
  for (size_t i = 0; i < n; i++) CHECK_INT_EQ(out[i], (int64_t)(i * i));
  /* the streams read in place too (their results stay in the stream's own window) */
  mproc_stream *st;
  CHECK_OK(mproc_pool_imap_unordered(
      pool, shared || backend == MPROC_BACKEND_THREAD ? square_read_in_place : square_copied, in, n,
      sizeof *in, sizeof *out, NULL, &st));
  size_t seen = 0;
  int64_t index;
  const void *res;
  int sr;
  while ((sr = mproc_stream_next(st, 10.0, &index, &res, NULL)) == 0) {
    int64_t y;
    memcpy(&y, res, sizeof y);
    CHECK_INT_EQ(y, index * index);
    seen++;
  }
  CHECK_ERR(sr, MPROC_EEOF);
  CHECK_INT_EQ(seen, n);
  mproc_stream_destroy(st);
  free_arrays(shared, in, out);
  mproc_pool_destroy(pool);
}
MTEST(map_reads_and_writes_shared_arrays_in_place) { map_in_place(MPROC_BACKEND_PROCESS, true); }
MTEST(map_streams_private_arrays) { map_in_place(MPROC_BACKEND_PROCESS, false); }
MTEST(map_in_place_thread_backend) { map_in_place(MPROC_BACKEND_THREAD, false); }

/* Batches of at least MPROC__PREFAULT_MIN bytes have their pages mapped in at once, in the workers (arena
 * arrays) and in the caller (a private output array, copy-on-write since the template's fork). */
static void big_batches(bool shared) {
  size_t n = 40000;
  int64_t *pre =
      shared ? NULL : malloc(n * sizeof *pre); /* touched before the pool: shared with its template */
  if (pre) memset(pre, 0xff, n * sizeof *pre);
  mproc_pool *pool;
  CHECK_OK(mproc_pool_create(&pool, &(mproc_pool_opts){.workers = 2}));
  rec *in = shared ? shared_alloc(n * sizeof *in) : calloc(n, sizeof *in);
  int64_t *out = shared ? shared_alloc(n * sizeof *out) : pre;
  CHECK(in && out);
  for (size_t i = 0; i < n; i++) in[i] = (rec){&in[i], &out[i], (int64_t)i};
  mproc_map_opts mo = {.chunk_size = 10000}; /* 240 KB of arguments, 80 KB of results per batch */
  CHECK_INT_CMP(mo.chunk_size * sizeof *out, >=, MPROC__PREFAULT_MIN);
  mproc_map_report rep;
  CHECK_OK(mproc_pool_map(pool, shared ? square_in_place : square_copied, in, n, sizeof *in, out, sizeof *out,
                          &mo, &rep));
  CHECK_INT_EQ(rep.batches, 4);
  for (size_t i = 0; i < n; i++) CHECK_INT_EQ(out[i], (int64_t)(i * i));
  free_arrays(shared, in, out);
  mproc_pool_destroy(pool);
}
MTEST(big_batches_shared_arrays) { big_batches(true); }
MTEST(big_batches_private_output_after_fork) { big_batches(false); }

MTEST(parallel_run_in_place) {
  mproc_parallel *par;
  mproc_parallel_opts po = {.n_jobs = 2};
  CHECK_OK(mproc_parallel_create(&par, &po));
  size_t n = 50000;
  rec *in = shared_alloc(n * sizeof *in);
  int64_t *out = shared_alloc(n * sizeof *out);
  CHECK(in && out);
  for (size_t i = 0; i < n; i++) in[i] = (rec){&in[i], &out[i], (int64_t)i};
  mproc_map_report rep;
  CHECK_OK(mproc_parallel_run(par, square_in_place, in, n, sizeof *in, out, sizeof *out, NULL, &rep));
  for (size_t i = 0; i < n; i++) CHECK_INT_EQ(out[i], (int64_t)(i * i));
  CHECK_OK(mproc_shared_free(in));
  CHECK_OK(mproc_shared_free(out));
  mproc_parallel_destroy(par);
}

/* ---- large task arguments (max_nbytes) ---- */

static int arg_where(const void *arg, size_t len, mproc_task *t) {
  const unsigned char *a = arg;
  uint64_t sum = 0;
  for (size_t i = 0; i < len; i++) sum += a[i];
  uint64_t res[2] = {sum, in_arena_mapping(arg)};
  return mproc_task_return(t, res, sizeof res);
}

MTEST(large_arguments_travel_through_the_arena) {
  mproc_pool *pool;
  mproc_pool_opts po = {.workers = 2, .max_nbytes = 64 << 10, .ring_bytes = 4096};
  CHECK_OK(mproc_pool_create(&pool, &po));
  size_t sizes[] = {100, (64 << 10) - 1, 64 << 10, 5 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    unsigned char *buf = malloc(sizes[k]);
    CHECK(buf != NULL);
    uint64_t want = 0;
    for (size_t i = 0; i < sizes[k]; i++) want += buf[i] = (unsigned char)(i * 7 + k);
    mproc_future *f;
    CHECK_OK(mproc_pool_submit(pool, arg_where, buf, sizes[k], NULL, &f));
    memset(buf, 0, sizes[k]); /* the argument was copied: the caller may reuse its buffer at once */
    free(buf);
    const uint64_t *res;
    size_t len;
    CHECK_OK(mproc_future_result(f, 10.0, (const void **)&res, &len));
    CHECK_INT_EQ(len, 2 * sizeof(uint64_t));
    CHECK_INT_EQ(res[0], want);
    CHECK_INT_EQ(res[1], sizes[k] >= (64u << 10)); /* in place at and above the threshold */
    mproc_future_release(f);
  }
  /* SIZE_MAX: never */
  mproc_pool_destroy(pool);
  po.max_nbytes = SIZE_MAX;
  CHECK_OK(mproc_pool_create(&pool, &po));
  unsigned char *big = calloc(1, 1 << 20);
  CHECK(big != NULL);
  uint64_t res[2];
  CHECK_OK(mproc_pool_apply(pool, arg_where, big, 1 << 20, res, sizeof res, NULL));
  CHECK_INT_EQ(res[1], 0);
  free(big);
  mproc_pool_destroy(pool);
}

/* A block made now, after pool's workers started, is read and written in place by one of them. */
static void sum_made_after(mproc_pool *pool) {
  int64_t *data = shared_alloc(1 << 20);
  CHECK(data != NULL);
  data[0] = 40;
  data[1] = 2;
  view v = {data, 2};
  int64_t got = 0;
  CHECK_OK(mproc_pool_apply(pool, sum_view, &v, sizeof v, &got, sizeof got, NULL));
  CHECK_INT_EQ(got, 42);
  CHECK_INT_EQ(data[0], -1);
  CHECK_OK(mproc_shared_free(data));
}

MTEST(forkserver_pools_see_it) {
  CHECK_OK(mproc_init(NULL, NULL));
  mproc_pool *pool;
  mproc_pool_opts po = {.workers = 2, .start_method = MPROC_START_FORKSERVER};
  CHECK_OK(mproc_pool_create(&pool, &po));
  sum_made_after(pool);
  mproc_pool_destroy(pool);
  mproc_shutdown();
}

static int no_memfd(const char *name, unsigned flags) {
  (void)name, (void)flags;
  errno = ENOSYS;
  return -1;
}

MTEST(pools_work_without_an_arena) {
  /* where memory files cannot be made, shared allocations fail clearly and pools still work, streaming
   * everything through their rings */
  mproc__plat_sys.memfd_create = no_memfd;
  void *none = NULL;
  CHECK_ERR(mproc_shared_alloc(&none, 4096), -ENOSYS);
  CHECK(none == NULL);
  mproc_pool *pool;
  CHECK_OK(mproc_pool_create(&pool, &(mproc_pool_opts){.workers = 2, .max_nbytes = 1024}));
  size_t n = 1000;
  rec *in = calloc(n, sizeof *in);
  int64_t *out = calloc(n, sizeof *out);
  CHECK(in && out);
  for (size_t i = 0; i < n; i++) in[i] = (rec){&in[i], &out[i], (int64_t)i};
  CHECK_OK(mproc_pool_map(pool, square_copied, in, n, sizeof *in, out, sizeof *out, NULL, NULL));
  for (size_t i = 0; i < n; i++) CHECK_INT_EQ(out[i], (int64_t)(i * i));
  unsigned char big[4096] = {1};
  uint64_t res[2];
  CHECK_OK(mproc_pool_apply(pool, arg_where, big, sizeof big, res, sizeof res, NULL));
  CHECK_INT_EQ(res[0], 1);
  CHECK_INT_EQ(res[1], 0); /* above max_nbytes, but there is no arena: streamed */
  free(in);
  free(out);
  mproc_pool_destroy(pool);
  mproc__plat_syscalls_reset();
}

MTEST(exec_pools_see_it) {
  /* a template started by exec is a fresh image: it is handed the arena's memory file with the pool's */
  mproc_pool *pool;
  CHECK_OK(mproc_pool_create(&pool, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_EXEC}));
  sum_made_after(pool);
  size_t n = 5000;
  rec *in = shared_alloc(n * sizeof *in);
  int64_t *out = shared_alloc(n * sizeof *out);
  CHECK(in && out);
  for (size_t i = 0; i < n; i++) in[i] = (rec){&in[i], &out[i], (int64_t)i};
  CHECK_OK(mproc_pool_map(pool, square_in_place, in, n, sizeof *in, out, sizeof *out, NULL, NULL));
  for (size_t i = 0; i < n; i++) CHECK_INT_EQ(out[i], (int64_t)(i * i));
  CHECK_OK(mproc_shared_free(in));
  CHECK_OK(mproc_shared_free(out));
  mproc_pool_destroy(pool);
}
