/* mproc_bench.c: the mproc systems of the benchmark (mproc-pool, mproc-executor, mproc-parallel,
 * mproc-thread, and mproc-pool:forkserver for start-up; mproc-mpi, mproc-mpi:submit and mproc-mpi:executor
 * on the MPI backend, run under mpirun).  See bench_common.h for the contract. */
#include <mproc.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "bench_items.h"

#include <stdbool.h>
#include <sys/mman.h>

/* A page shared with processes forked afterwards. */
static void *mproc__bench_shared_page(int *err) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = 1;
    return NULL;
  }
  memset(p, 0, 4096);
  return p;
}

/* A block of the shared arena, or NULL when it cannot be had (the caller treats it as malloc's NULL). */
static void *shared_or_null(size_t size) {
  void *p = NULL;
  return mproc_shared_alloc(&p, size) == 0 ? p : NULL;
}

static double g_rate;       /* busy-loop rounds per microsecond */
static double g_us;         /* compute: each task's duration */
static double *g_durations; /* irregular: per item */
static double *g_array;     /* large-array: made before the pool, so workers read it with no copy */
static size_t g_array_n, g_chunk;

static int tiny(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int64_t n = *(const int64_t *)arg, r = n * n;
  return mproc_task_return(t, &r, sizeof r);
}

/* Item i of compute or irregular: a busy loop of `us` microseconds, returning i. */
static int busy(int64_t i, double us, mproc_task *t) {
  volatile uint64_t sink = bench_spin((uint64_t)(us * g_rate), (uint64_t)i);
  (void)sink;
  return mproc_task_return(t, &i, sizeof i);
}

static int compute(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  return busy(mproc_task_index(t), g_us, t);
}

static int irregular(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t i = mproc_task_index(t);
  return busy(i, g_durations[i], t);
}

/* compute and irregular as submitted tasks: the index travels as the argument */
static int busy_submitted(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int64_t i = *(const int64_t *)arg;
  return busy(i, g_durations ? g_durations[i] : g_us, t);
}

/* MPI workers are forked on other ranks from the fork server mproc_init() started, before main set g_rate
 * and g_us: the pool's initializer gives them the master's values (the same machine calibrated them). */
typedef struct compute_setup {
  double rate, us;
} compute_setup;

static int compute_init(const void *arg, size_t len, mproc_task *t) {
  (void)t;
  if (len != sizeof(compute_setup)) return 1;
  const compute_setup *c = arg;
  g_rate = c->rate, g_us = c->us;
  return 0;
}

/* payload: `mib` MiB in (word 0 the task's index, word k = k), `mib` MiB back: ~in[k] + i for every word, as
 * bench/c/mpi_raw.c's payload task */
static int payload_task(const void *arg, size_t len, mproc_task *t) {
  size_t words = len / sizeof(uint64_t);
  uint64_t *out = mproc_task_return_buffer(t, words * sizeof *out);
  if (!out) return MPROC_ENOMEM;
  uint64_t i;
  memcpy(&i, arg, sizeof i);
  const uint64_t *in = arg;
  out[0] = ~(uint64_t)0 + i;
  for (size_t k = 1; k < words; k++) out[k] = ~in[k] + i;
  return 0;
}

/* n payload tasks submitted (each its own copy of the buffer with word 0 set), collected in order, every word
 * of every result summed (inside the timed part, as mpi-raw does) */
static int payload_workload(mproc_pool *p, size_t n, size_t mib) {
  size_t words = mib * (1 << 20) / sizeof(uint64_t);
  uint64_t *buf = malloc((words ? words : 1) * sizeof *buf);
  mproc_future **fs = malloc((n ? n : 1) * sizeof *fs);
  if (!buf || !fs || !words) return 1;
  for (size_t k = 0; k < words; k++) buf[k] = k;
  uint64_t sum = 0;
  double t0 = bench_now();
  for (size_t i = 0; i < n; i++) {
    buf[0] = i;
    if (mproc_pool_submit(p, payload_task, buf, words * sizeof *buf, NULL, &fs[i])) return 1;
  }
  for (size_t i = 0; i < n; i++) {
    const void *d;
    size_t len;
    int rc = mproc_future_result(fs[i], MPROC_FOREVER, &d, &len);
    if (rc || len != words * sizeof *buf) {
      fprintf(stderr, "payload: %s\n", rc ? mproc_strerror(rc) : "a result of the wrong size");
      return 1;
    }
    const uint64_t *r = d;
    for (size_t k = 0; k < words; k++) sum += r[k];
    mproc_future_release(fs[i]);
  }
  double dt = bench_now() - t0;
  free(fs);
  free(buf);
  bench_report(dt, sum, NULL);
  return 0;
}

static int chunk_sum(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  size_t c = (size_t)mproc_task_index(t), lo = c * g_chunk, hi = lo + g_chunk;
  if (hi > g_array_n) hi = g_array_n;
  double s = 0;
  for (size_t i = lo; i < hi; i++) s += g_array[i];
  return mproc_task_return(t, &s, sizeof s);
}

static int usage(void) { return 3; }

/* concurrent.futures' idiom: fn(i) submitted as its own task for every i in [0, n), its index as its
 * argument, then every result waited for in order into out[i].  0, or 1 on an error (the run fails). */
static int submit_then_collect(mproc_pool *p, mproc_task_fn fn, size_t n, int64_t *out) {
  mproc_future **fs = malloc((n ? n : 1) * sizeof *fs);
  if (!fs) return 1;
  for (size_t i = 0; i < n; i++) {
    int64_t v = (int64_t)i;
    if (mproc_pool_submit(p, fn, &v, sizeof v, NULL, &fs[i])) return 1;
  }
  for (size_t i = 0; i < n; i++) {
    const void *d;
    if (mproc_future_result(fs[i], MPROC_FOREVER, &d, NULL)) return 1;
    out[i] = *(const int64_t *)d;
    mproc_future_release(fs[i]);
  }
  free(fs);
  return 0;
}

static int index_square(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t i = mproc_task_index(t), r = i * i;
  return mproc_task_return(t, &r, sizeof r);
}

/* ---- many: n submitted tasks collected in completion order, in bounded memory ---- */

/* mproc-as-completed: submit and feed an as_completed iterator, at most 256 in flight, release each
 * future as it is taken.  mproc-imap-unordered: the same over an index range as a stream. */
static int many_tasks(const char *sys, size_t n, int workers) {
  mproc_pool *p;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = workers})) return 1;
  uint64_t sum = 0;
  double t0 = bench_now();
  if (strcmp(sys, "mproc-as-completed") == 0) {
    mproc_as_completed *it;
    if (mproc_as_completed_create(&it, NULL, 0)) return 1;
    size_t next = 0;
    for (size_t done = 0; done < n; done++) {
      for (; next < n && next - done < 256; next++) {
        mproc_future *f;
        int64_t x = (int64_t)next;
        if (mproc_pool_submit(p, tiny, &x, sizeof x, NULL, &f) || mproc_as_completed_add(it, f)) return 1;
      }
      mproc_future *f;
      const void *d;
      if (mproc_as_completed_next(it, MPROC_FOREVER, &f) || mproc_future_result(f, 0, &d, NULL)) return 1;
      sum += (uint64_t) * (const int64_t *)d;
      mproc_future_release(f);
    }
    mproc_as_completed_destroy(it);
  } else if (strcmp(sys, "mproc-imap-unordered") == 0) {
    mproc_stream *s;
    if (mproc_pool_imap_unordered(p, index_square, NULL, n, 0, sizeof(int64_t), NULL, &s)) return 1;
    int64_t index;
    const void *d;
    while (mproc_stream_next(s, MPROC_FOREVER, &index, &d, NULL) == 0) sum += (uint64_t) * (const int64_t *)d;
    mproc_stream_destroy(s);
  } else {
    return usage();
  }
  double dt = bench_now() - t0;
  mproc_pool_destroy(p);
  bench_report(dt, sum, NULL);
  return 0;
}

/* ---- large-array with the array made after the pool ---- */

typedef struct span {
  const double *p;
  size_t count;
} span;

static int span_sum(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  const span *sp = arg;
  double s = 0;
  for (size_t i = 0; i < sp->count; i++) s += sp->p[i];
  return mproc_task_return(t, &s, sizeof s);
}

static int record_sum(const void *arg, size_t len, mproc_task *t) {
  const double *p = arg;
  double s = 0;
  for (size_t i = 0; i < len / sizeof *p; i++) s += p[i];
  return mproc_task_return(t, &s, sizeof s);
}

/* mproc-shared: a pool map whose tasks get spans of an array in the shared arena, made after the pool.
 * mproc-parallel-shared: a Parallel run over the array itself as n records, read in place.
 * mproc-parallel-private: the same over a malloc'd array made after the pool: the records stream through
 * the workers' rings (copied piecewise, never duplicated as a whole). */
static int large_array_after(const char *sys, size_t n, size_t mib, int workers) {
  mproc_parallel *par = NULL;
  mproc_pool *pool = NULL;
  bool parallel = strncmp(sys, "mproc-parallel", 14) == 0, shared = strstr(sys, "private") == NULL;
  if (parallel ? mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = workers})
               : mproc_pool_create(&pool, &(mproc_pool_opts){.workers = workers}))
    return 1;
  size_t count = mib * (1 << 20) / sizeof(double), chunk = count / n;
  if (chunk * n != count) return usage();
  double *a = shared ? shared_or_null(count * sizeof *a) : malloc(count * sizeof *a);
  double *out = shared ? shared_or_null(n * sizeof *out) : malloc(n * sizeof *out);
  span *spans = malloc(n * sizeof *spans);
  if (!a || !out || !spans) return 1;
  for (size_t i = 0; i < count; i++) a[i] = (double)(i % 1000);
  for (size_t c = 0; c < n; c++) spans[c] = (span){a + c * chunk, chunk};
  double t0 = bench_now();
  int rc = parallel
               ? mproc_parallel_run(par, record_sum, a, n, chunk * sizeof *a, out, sizeof *out, NULL, NULL)
               : mproc_pool_map(pool, span_sum, spans, n, sizeof *spans, out, sizeof *out, NULL, NULL);
  double dt = bench_now() - t0;
  if (rc) {
    fprintf(stderr, "map: %s\n", mproc_strerror(rc));
    return 1;
  }
  double s = 0;
  for (size_t c = 0; c < n; c++) s += out[c];
  if (shared) {
    mproc_shared_free(a);
    mproc_shared_free(out);
  } else {
    free(a);
    free(out);
  }
  free(spans);
  mproc_parallel_destroy(par);
  mproc_pool_destroy(pool);
  bench_report(dt, (uint64_t)llround(s), NULL);
  return 0;
}

/* ---- queue and pipe (the lock-queue workload) ---- */
static mproc_queue *g_queue;
static mproc_pipe *g_pipe_child;
static size_t g_msgs, g_bytes;

static int consume(const void *arg, size_t len) {
  (void)arg, (void)len;
  char *buf = malloc(g_bytes + 1);
  size_t got;
  for (size_t i = 0; i < g_msgs; i++)
    if (mproc_queue_get(g_queue, buf, g_bytes + 1, &got, MPROC_FOREVER) != 0 || got != g_bytes) return 1;
  return 0;
}

static int echo(const void *arg, size_t len) {
  (void)arg, (void)len;
  char *buf = malloc(g_bytes + 1);
  size_t got;
  for (size_t i = 0; i < g_msgs; i++) {
    if (mproc_pipe_recv(g_pipe_child, buf, g_bytes + 1, &got, MPROC_FOREVER) != 0) return 1;
    if (mproc_pipe_send(g_pipe_child, buf, got, MPROC_FOREVER) != 0) return 1;
  }
  return 0;
}

/* ---- locks (the lock-queue workload) ---- */
static mproc_lock *g_lock;
static int64_t *g_counter;

static int locked_adds(const void *arg, size_t len) {
  (void)len;
  size_t k = *(const size_t *)arg;
  for (size_t i = 0; i < k; i++) {
    if (mproc_lock_acquire(g_lock, MPROC_FOREVER) != 0) return 1;
    (*g_counter)++;
    mproc_lock_release(g_lock);
  }
  return 0;
}

static int lock_workload(const char *variant, size_t n, int workers) {
  if (mproc_lock_create(&g_lock, 0)) return 1;
  int err = 0;
  g_counter = mproc__bench_shared_page(&err);
  if (!g_counter) return 1;
  double t0, dt;
  if (strcmp(variant, "uncontended") == 0) {
    t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
      mproc_lock_acquire(g_lock, MPROC_FOREVER);
      (*g_counter)++;
      mproc_lock_release(g_lock);
    }
    dt = bench_now() - t0;
  } else {
    mproc_process *ps[64];
    size_t k = n / (size_t)workers;
    t0 = bench_now();
    for (int w = 0; w < workers; w++)
      if (mproc_process_start(&ps[w], locked_adds, &k, sizeof k, NULL)) return 1;
    for (int w = 0; w < workers; w++) {
      mproc_process_join(ps[w], MPROC_FOREVER);
      mproc_process_destroy(ps[w]);
    }
    dt = bench_now() - t0;
  }
  bench_report(dt, (uint64_t)*g_counter, NULL);
  mproc_lock_destroy(g_lock);
  return 0;
}

/* ---- the result cache (the cache workload) ---- */
static size_t g_result_bytes;

static int cached_result(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int64_t i = *(const int64_t *)arg;
  double *v = mproc_task_return_buffer(t, g_result_bytes);
  if (!v) return MPROC_ENOMEM;
  for (size_t k = 0; k < g_result_bytes / sizeof *v; k++) v[k] = (double)i;
  return 0;
}

static int cache_workload(const char *wl, size_t n, size_t bytes) {
  g_result_bytes = bytes;
  char dir[] = "/tmp/mproc-bench-cache-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  mproc_cache *c;
  if (mproc_cache_open(&c, dir, NULL)) return 1;
  mproc_cache_result *r;
  if (strcmp(wl, "cache-hit") == 0) /* fill it first, untimed */
    for (int64_t i = 0; i < (int64_t)n; i++) {
      if (mproc_cache_call(c, cached_result, &i, sizeof i, &r)) return 1;
      mproc_cache_result_release(r);
    }
  uint64_t sum = 0;
  double t0 = bench_now();
  for (int64_t i = 0; i < (int64_t)n; i++) {
    if (mproc_cache_call(c, cached_result, &i, sizeof i, &r)) return 1;
    sum += (uint64_t)((const double *)mproc_cache_result_data(r))[0];
    mproc_cache_result_release(r);
  }
  double dt = bench_now() - t0;
  mproc_cache_close(c);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) return 1;
  bench_report(dt, sum, NULL);
  return 0;
}

static int queue_workload(const char *sys, size_t n, size_t bytes) {
  g_msgs = n;
  g_bytes = bytes;
  char *msg = calloc(1, bytes + 1);
  mproc_process *child;
  uint64_t total = 0;
  double t0, dt;
  if (strcmp(sys, "mproc-queue") == 0) {
    /* one producer (this process) and one consumer process, as the Python anchor does */
    if (mproc_queue_create(&g_queue, &(mproc_queue_opts){.buffer_bytes = 1 << 20})) return 1;
    if (mproc_process_start(&child, consume, NULL, 0, NULL)) return 1;
    t0 = bench_now();
    for (size_t i = 0; i < n; i++)
      if (mproc_queue_put(g_queue, msg, bytes, MPROC_FOREVER)) return 1;
    mproc_process_join(child, MPROC_FOREVER);
    dt = bench_now() - t0;
    int code = -1;
    mproc_process_exitcode(child, &code);
    if (code != 0) return 1;
    total = (uint64_t)n * bytes;
    mproc_process_destroy(child);
    mproc_queue_destroy(g_queue);
  } else if (strcmp(sys, "mproc-pipe") == 0) {
    mproc_pipe *a, *b;
    if (mproc_pipe_create(&a, &b, 1)) return 1;
    g_pipe_child = b;
    if (mproc_process_start(&child, echo, NULL, 0, NULL)) return 1;
    char *buf = malloc(bytes + 1);
    size_t got;
    t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
      if (mproc_pipe_send(a, msg, bytes, MPROC_FOREVER) ||
          mproc_pipe_recv(a, buf, bytes + 1, &got, MPROC_FOREVER))
        return 1;
      total += got;
    }
    dt = bench_now() - t0;
    mproc_process_join(child, MPROC_FOREVER);
    mproc_process_destroy(child);
    mproc_pipe_destroy(a);
    mproc_pipe_destroy(b);
  } else {
    return usage();
  }
  bench_report(dt, total, NULL);
  return 0;
}

/* ---- strings and tree: items of any size ---- */

/* a string (with its NUL) in, its 64-bit hash out */
static int hash_string(const void *arg, size_t len, mproc_task *t) {
  uint64_t h = bench_string_hash(arg, len - 1);
  return mproc_task_return(t, &h, sizeof h);
}

/* the same string zero-padded to a 64-byte record */
static int hash_padded(const void *arg, size_t len, mproc_task *t) {
  uint64_t h = bench_string_hash(arg, strnlen(arg, len));
  return mproc_task_return(t, &h, sizeof h);
}

/* mproc-items: mproc_pool_map_items over the strings as C strings (:packed: one buffer and offsets;
 * :thread: the thread backend); mproc-items-padded: mproc_pool_map over the same bytes in 64-byte records.
 * The pool is made and warmed before timing, as in tiny. */
static int strings_workload(const char *sys, size_t n, int workers) {
  size_t *off;
  char *buf = bench_strings(n, &off);
  const char **ptrs = malloc((n ? n : 1) * sizeof *ptrs);
  if (!ptrs) return 1;
  for (size_t i = 0; i < n; i++) ptrs[i] = buf + off[i];
  bool padded = strcmp(sys, "mproc-items-padded") == 0, packed = strcmp(sys, "mproc-items:packed") == 0;
  if (!padded && !packed && strcmp(sys, "mproc-items") != 0 && strcmp(sys, "mproc-items:thread") != 0)
    return usage();
  char *records = NULL;
  uint64_t *out = NULL;
  if (padded) {
    records = calloc(n ? n : 1, 64);
    out = malloc((n ? n : 1) * sizeof *out);
    if (!records || !out) return 1;
    for (size_t i = 0; i < n; i++) memcpy(records + 64 * i, ptrs[i], off[i + 1] - off[i] - 1);
    bench_touch(out, (n ? n : 1) * sizeof *out);
  }
  mproc_pool *p;
  mproc_backend b = strcmp(sys, "mproc-items:thread") == 0 ? MPROC_BACKEND_THREAD : MPROC_BACKEND_PROCESS;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = workers, .backend = b})) return 1;
  int64_t x = 1, r;
  if (mproc_pool_apply(p, tiny, &x, sizeof x, &r, sizeof r, NULL)) return 1;
  mproc_items in = packed ? mproc_items_packed(buf, off, n) : mproc_items_strings(ptrs, n);
  mproc_results *res = NULL;
  double t0 = bench_now();
  int rc = padded ? mproc_pool_map(p, hash_padded, records, n, 64, out, sizeof *out, NULL, NULL)
                  : mproc_pool_map_items(p, hash_string, &in, NULL, &res, NULL);
  double dt = bench_now() - t0;
  if (rc) {
    fprintf(stderr, "map: %s\n", mproc_strerror(rc));
    return 1;
  }
  uint64_t checksum = 0;
  for (size_t i = 0; i < n; i++) {
    if (padded) {
      checksum += out[i];
      continue;
    }
    const void *d;
    size_t len;
    if (mproc_results_get(res, i, &d, &len) || len != 8) return 1;
    uint64_t h;
    memcpy(&h, d, 8);
    checksum += h;
  }
  mproc_results_free(res);
  mproc_pool_destroy(p);
  free(records);
  free(out);
  free(ptrs);
  free(off);
  free(buf);
  bench_report(dt, checksum, NULL);
  return 0;
}

static int g_sha256; /* tree: SHA-256 rather than XXH3-128 */

/* a path in, its file's digest out (tree_digest's task) */
static int digest_file(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  unsigned char d[32];
  int r = bench_file_digest(arg, g_sha256, d);
  if (r < 0) return mproc_task_fail(t, r, "%s", strerror(-r));
  return mproc_task_return(t, d, (size_t)r);
}

/* mproc-items (:sha256): the whole job as a user runs it, timed: walk the tree, make a pool, map over the
 * paths as C strings, destroy the pool (find | xargs pays its walk and its processes too). */
static int tree_workload(const char *sys, const char *root, int workers) {
  if (strcmp(sys, "mproc-items") != 0 && strcmp(sys, "mproc-items:sha256") != 0) return usage();
  g_sha256 = strcmp(sys, "mproc-items:sha256") == 0;
  double t0 = bench_now();
  bench_paths paths = {0};
  bench_walk(root, &paths);
  mproc_pool *p;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = workers})) return 1;
  mproc_items in = mproc_items_strings((const char *const *)paths.v, paths.n);
  mproc_results *res = NULL;
  int rc = mproc_pool_map_items(p, digest_file, &in, NULL, &res, NULL);
  mproc_pool_destroy(p);
  double dt = bench_now() - t0;
  if (rc) {
    fprintf(stderr, "map: %s\n", mproc_strerror(rc));
    return 1;
  }
  uint64_t checksum = 0;
  for (size_t i = 0; i < paths.n; i++) {
    const void *d;
    size_t len;
    if (mproc_results_get(res, i, &d, &len) || len != (g_sha256 ? 32u : 16u)) return 1;
    checksum += bench_digest_head(d);
  }
  mproc_results_free(res);
  char extra[32];
  snprintf(extra, sizeof extra, "\"files\": %zu", paths.n);
  bench_paths_free(&paths);
  bench_report(dt, checksum, extra);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  /* mproc-mpi...: the MPI backend, under mpirun.  mproc_init() comes first: on ranks other than 0 it serves
   * the master's pools and never returns. */
  bool mpi = strncmp(argv[2], "mproc-mpi", 9) == 0;
  if (mpi && (mproc_init(&argc, &argv) != 0 || mproc_backend_available("mpi") != 1)) {
    fprintf(stderr, "mproc-mpi: the MPI backend cannot run here: %s\n", mproc_last_error_message());
    return 3;
  }
  const char *wl = argv[1], *sys = argv[2];
  size_t n = (size_t)bench_arg(argc, argv, "n", 1000);
  int workers = (int)bench_arg(argc, argv, "workers", 2);
  if (strcmp(wl, "strings") == 0) return strings_workload(sys, n, workers);
  if (strcmp(wl, "tree") == 0) return tree_workload(sys, bench_sarg(argc, argv, "root", "."), workers);
  mproc_backend backend = MPROC_BACKEND_PROCESS;
  if (mpi) {
    /* the MPI systems run the paths of their local twins: mproc-mpi maps as mproc-pool (and runs roundtrip
     * and payload as it), :submit is mproc-executor:submit, :executor is mproc-executor */
    backend = MPROC_BACKEND_MPI;
    sys = strcmp(sys, "mproc-mpi") == 0            ? "mproc-pool"
          : strcmp(sys, "mproc-mpi:submit") == 0   ? "mproc-executor:submit"
          : strcmp(sys, "mproc-mpi:executor") == 0 ? "mproc-executor"
                                                   : "?";
    if (*sys == '?') return usage();
  } else if (strcmp(sys, "mproc-thread") == 0)
    backend = MPROC_BACKEND_THREAD;
  else if (strncmp(sys, "mproc-", 6) != 0)
    return usage();
  const char *colon = strchr(sys, ':'); /* "mproc-queue:8B" and the like: the suffix is a label */
  static char base[64];
  if (colon && strncmp(sys, "mproc-pool:", 11) != 0 && strcmp(sys, "mproc-executor:submit") != 0) {
    snprintf(base, sizeof base, "%.*s", (int)(colon - sys), sys);
    sys = base;
  }
  if (strcmp(sys, "mproc-pool:forkserver") == 0) mproc_init(&argc, &argv);
  mproc_pool_opts po = {.workers = workers, .backend = backend};

  if (strcmp(wl, "queue") == 0) return queue_workload(sys, n, (size_t)bench_arg(argc, argv, "bytes", 8));
  if (strcmp(wl, "lock") == 0) {
    if (strcmp(sys, "mproc-lock") != 0 || !colon) return usage();
    return lock_workload(colon + 1, n, workers);
  }
  if (strcmp(wl, "cache-hit") == 0 || strcmp(wl, "cache-miss") == 0)
    return strcmp(sys, "mproc-cache") == 0
               ? cache_workload(wl, n, (size_t)bench_arg(argc, argv, "bytes", 8000))
               : usage();
  if (strcmp(wl, "startup") == 0) {
    if (strcmp(sys, "mproc-pool") != 0 && strcmp(sys, "mproc-pool:forkserver") != 0) return usage();
    /* a caller of some size, as in real programs: `mib` MiB touched before the pool */
    size_t mib = (size_t)bench_arg(argc, argv, "mib", 0);
    char *ballast = mib ? malloc(mib << 20) : NULL;
    if (ballast) memset(ballast, 1, mib << 20);
    double t0 = bench_now();
    mproc_pool *p;
    if (mproc_pool_create(&p, &po)) return 1;
    int64_t x = 7, r = 0;
    mproc_pool_apply(p, tiny, &x, sizeof x, &r, sizeof r, NULL);
    double dt = bench_now() - t0;
    mproc_pool_destroy(p);
    free(ballast);
    bench_report(dt, (uint64_t)r, NULL);
    return 0;
  }

  if (strcmp(wl, "respawn") == 0) {
    /* replacement workers: each worker retires after one task, so every task waits for a new worker; n tasks
     * submitted at once, collected in order (the time per task is what a replacement costs, two at a time) */
    if (strcmp(sys, "mproc-pool") != 0 && strcmp(sys, "mproc-pool:forkserver") != 0) return usage();
    size_t mib = (size_t)bench_arg(argc, argv, "mib", 0);
    char *ballast = mib ? malloc(mib << 20) : NULL;
    if (ballast) memset(ballast, 1, mib << 20);
    po.max_tasks_per_child = 1;
    mproc_pool *p;
    if (mproc_pool_create(&p, &po)) return 1;
    int64_t x = 1, r;
    if (mproc_pool_apply(p, tiny, &x, sizeof x, &r, sizeof r, NULL)) return 1;
    int64_t *res = malloc((n ? n : 1) * sizeof *res);
    if (!res) return 1;
    double t0 = bench_now();
    if (submit_then_collect(p, tiny, n, res)) return 1;
    double dt = bench_now() - t0;
    uint64_t checksum = 0;
    for (size_t i = 0; i < n; i++) checksum += (uint64_t)res[i];
    mproc_pool_destroy(p);
    free(res);
    free(ballast);
    bench_report(dt, checksum, NULL);
    return 0;
  }

  if (strcmp(wl, "many") == 0) return many_tasks(sys, n, workers);

  if (strcmp(wl, "payload") == 0) {
    if (strcmp(sys, "mproc-pool") != 0) return usage();
    mproc_pool *p;
    if (mproc_pool_create(&p, &po)) return 1;
    int64_t x = 1, r;
    if (mproc_pool_apply(p, tiny, &x, sizeof x, &r, sizeof r, NULL)) return 1;
    int rc = payload_workload(p, n, (size_t)bench_arg(argc, argv, "mib", 64));
    mproc_pool_destroy(p);
    return rc;
  }

  if (strcmp(wl, "large-array") == 0 &&
      (strcmp(sys, "mproc-shared") == 0 || strncmp(sys, "mproc-parallel-", 15) == 0))
    return large_array_after(sys, n, (size_t)bench_arg(argc, argv, "mib", 64), workers);

  g_rate = bench_calibrate();
  g_us = bench_arg(argc, argv, "us", 1000);
  compute_setup setup = {g_rate, g_us};
  if (mpi) po.initializer = compute_init, po.init_arg = &setup, po.init_arg_len = sizeof setup;
  /* mproc-shared (tiny): input and output in the shared arena, which workers use in place */
  bool arena = strcmp(sys, "mproc-shared") == 0;
  int64_t *in = NULL,
          *out = arena ? shared_or_null((n ? n : 1) * sizeof *out) : malloc((n ? n : 1) * sizeof *out);
  if (strcmp(wl, "tiny") == 0 || strcmp(wl, "roundtrip") == 0) {
    in = arena ? shared_or_null((n ? n : 1) * sizeof *in) : malloc((n ? n : 1) * sizeof *in);
    for (size_t i = 0; i < n; i++) in[i] = (int64_t)i;
  }
  bench_touch(out, (n ? n : 1) * sizeof *out); /* touched before timing, as in every system (anchors.c) */
  if (strcmp(wl, "irregular") == 0)
    g_durations =
        bench_pareto(n, bench_arg(argc, argv, "us", 100), (uint64_t)bench_arg(argc, argv, "seed", 42));
  if (strcmp(wl, "large-array") == 0) {
    g_array_n = (size_t)bench_arg(argc, argv, "mib", 64) * (1 << 20) / sizeof(double);
    g_array = malloc(g_array_n * sizeof *g_array);
    for (size_t i = 0; i < g_array_n; i++) g_array[i] = (double)(i % 1000);
    g_chunk = (g_array_n + n - 1) / n; /* n chunks */
  }
  /* mproc-parallel maps through a Parallel's own pool, the others through p */
  mproc_pool *p = NULL;
  mproc_parallel *par = NULL;
  if (strcmp(sys, "mproc-parallel") == 0
          ? mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = workers})
          : mproc_pool_create(&p, &po))
    return 1;
  /* warm the workers up (pages, caches), not timed */
  int64_t x = 1, r;
  if (par ? mproc_parallel_run(par, tiny, &x, 1, sizeof x, &r, sizeof r, NULL, NULL)
          : mproc_pool_apply(p, tiny, &x, sizeof x, &r, sizeof r, NULL))
    return 1;
  int64_t warm[64];
  if (mpi && mproc_pool_map(p, index_square, NULL, 64, 0, warm, sizeof *warm,
                            &(mproc_map_opts){.chunk_size = 1}, NULL))
    return 1;

  mproc_task_fn fn = strcmp(wl, "tiny") == 0          ? tiny
                     : strcmp(wl, "compute") == 0     ? compute
                     : strcmp(wl, "irregular") == 0   ? irregular
                     : strcmp(wl, "large-array") == 0 ? chunk_sum
                                                      : tiny;
  const void *arg = strcmp(wl, "tiny") == 0 ? in : NULL;
  size_t in_size = strcmp(wl, "tiny") == 0 ? sizeof *in : 0;
  uint64_t checksum = 0;
  double t0 = bench_now(), dt;
  int rc = 0;
  if (strcmp(wl, "roundtrip") == 0) {
    if (strcmp(sys, "mproc-executor") == 0 || strcmp(sys, "mproc-pool") == 0 ||
        strcmp(sys, "mproc-thread") == 0) {
      for (size_t i = 0; i < n; i++) {
        mproc_future *f;
        const void *d;
        if (mproc_pool_submit(p, tiny, &in[i], sizeof in[i], NULL, &f)) return 1;
        if (mproc_future_result(f, MPROC_FOREVER, &d, NULL)) return 1;
        checksum += (uint64_t) * (const int64_t *)d;
        mproc_future_release(f);
      }
    } else {
      return usage();
    }
    dt = bench_now() - t0;
  } else if (strcmp(sys, "mproc-executor:submit") == 0) {
    /* concurrent.futures' idiom, as py-ppe:submit: one submit per task, then every result */
    if (strcmp(wl, "compute") != 0 && strcmp(wl, "irregular") != 0 && strcmp(wl, "tiny") != 0) return usage();
    if (submit_then_collect(p, strcmp(wl, "tiny") == 0 ? tiny : busy_submitted, n, out)) return 1;
    dt = bench_now() - t0;
    for (size_t i = 0; i < n; i++) checksum += (uint64_t)out[i];
  } else {
    if (par) {
      rc = mproc_parallel_run(par, fn, arg, n, in_size, out, sizeof *out, NULL, NULL);
    } else if (strcmp(sys, "mproc-executor") == 0) {
      rc = mproc_executor_map(p, fn, arg, n, in_size, out, sizeof *out, NULL, NULL);
    } else {
      rc = mproc_pool_map(p, fn, arg, n, in_size, out, sizeof *out, NULL, NULL);
    }
    dt = bench_now() - t0;
    if (rc) {
      fprintf(stderr, "map: %s\n", mproc_strerror(rc));
      return 1;
    }
    if (strcmp(wl, "large-array") == 0) {
      double s = 0;
      for (size_t i = 0; i < n; i++) s += ((double *)out)[i];
      checksum = (uint64_t)llround(s);
    } else {
      for (size_t i = 0; i < n; i++) checksum += (uint64_t)out[i];
    }
  }
  mproc_parallel_destroy(par);
  mproc_pool_destroy(p);
  bench_report(dt, checksum, NULL);
  return 0;
}
