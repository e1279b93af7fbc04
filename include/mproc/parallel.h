/* mproc/parallel.h: joblib's Parallel for C: one call runs a function over many items with sensible
 * defaults, automatic batching, progress output and ordered or unordered results.  Included by <mproc.h>. */
#ifndef MPROC_PARALLEL_H
#define MPROC_PARALLEL_H

#include <mproc/common.h>
#include <mproc/pool.h>

MPROC_EXTERN_C_BEGIN

typedef struct mproc_parallel mproc_parallel;

/* joblib's return_as. */
typedef enum mproc_return_as {
  MPROC_RETURN_LIST = 0,                /* an ordered array (mproc_parallel_run) */
  MPROC_RETURN_GENERATOR = 1,           /* an ordered stream */
  MPROC_RETURN_GENERATOR_UNORDERED = 2, /* a stream in completion order */
} mproc_return_as;

/* What a progress callback receives. */
typedef struct mproc_progress {
  size_t total, done, failed; /* items; done counts failed ones too */
  size_t in_flight;           /* items handed to workers and not yet back */
  double elapsed;             /* seconds since the call began */
  double rate;                /* items per second so far */
  double eta;                 /* seconds left at that rate; -1 while unknown */
  int workers;
  const double *busy; /* per worker: seconds spent running tasks during this call */
} mproc_progress;
typedef void (*mproc_progress_cb)(const mproc_progress *p, void *user);

typedef struct mproc_parallel_opts {
  /* joblib's n_jobs: > 0 that many workers; -1 all CPUs (mproc_cpu_count()); -2 all but one; -k
   * max(1, CPUs + 1 - k); 0: MPROC_WORKERS, else all CPUs. */
  int n_jobs;
  mproc_backend backend;
  /* Items per batch; 0: automatic (start at one item, then size batches toward ~2 ms of work, smaller
   * near the end). */
  size_t batch_size;
  /* Items handed out and not yet collected (joblib's pre_dispatch); 0: as many as 64 MiB of results hold,
   * at most 262144, at least 4096. */
  size_t pre_dispatch;
  /* Per-item time limit in seconds (joblib's timeout); 0: none.  A late item fails with
   * MPROC_ETASKTIMEOUT. */
  double timeout;
  /* 0 silent.  >= 1: progress on stderr: a one-line bar updated in place when stderr is a terminal, else
   * joblib-style lines "[Parallel(n_jobs=2)]: Done 40 out of 100 | elapsed: 1.0s remaining: 1.5s", at
   * most one per `progress_interval`, plus a final "finished" line.  >= 10: a line per interval even
   * on a terminal instead of the bar. */
  int verbose;
  /* Called in the calling thread at most once per progress_interval and once at the end. */
  mproc_progress_cb progress;
  void *progress_user;
  double progress_interval; /* seconds; 0: 0.2 */
  /* By default the first failure cancels the rest and is returned (joblib); CONTINUE runs everything. */
  mproc_error_policy on_error;
  int max_failures;
  /* Run seed for mproc_task_seed(). */
  uint64_t seed;
  /* Per worker, as in mproc_pool_opts. */
  mproc_task_fn initializer;
  const void *init_arg;
  size_t init_arg_len;
} mproc_parallel_opts;

/* Makes a Parallel object with its own pool of workers, reused by every call on it.  0, -EINVAL (bad
 * option, such as init_arg_len > 0 with init_arg or initializer NULL), or the pool's errors. */
MPROC_API int mproc_parallel_create(mproc_parallel **out, const mproc_parallel_opts *opts);
MPROC_API int mproc_parallel_n_jobs(const mproc_parallel *par);

/* Runs fn over the n records of in (in_size bytes each; in may be NULL with in_size 0, tasks then read
 * their index), writing each result into out (out_size bytes per record), in order.  item_codes (may be
 * NULL) receives each item's code.  Returns 0, or the first failure's code by index (details in *report),
 * -ETIMEDOUT never (per-item timeouts are item failures), MPROC_EINTERRUPTED on Ctrl-C, -EINVAL. */
MPROC_API int mproc_parallel_run(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n,
                                 size_t in_size, void *out, size_t out_size, int *item_codes,
                                 mproc_map_report *report);

/* The generator forms: a stream of results (see mproc_stream_next()), ordered or in completion order. */
MPROC_API int mproc_parallel_stream(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n,
                                    size_t in_size, size_t out_size, mproc_return_as order,
                                    mproc_stream **out);

MPROC_API void mproc_parallel_destroy(mproc_parallel *par);

/* The one-call form, Parallel(n_jobs=...)(delayed(f)(x) for x in items): runs on a pool kept by the library
 * between calls with the same n_jobs, backend and initializer (loky's reusable executor), so a loop of
 * small calls pays the workers' start once.  That pool is created at the first call: its workers see the
 * program's memory as it was then, and read their inputs from `in`.  mproc_parallel_shutdown() releases it
 * (it is also released at exit; call it only while no one-call run is in progress).  Thread-safe:
 * concurrent calls with the same settings share the pool; a call with other settings made while the
 * shared pool is busy runs on a pool of its own. */
MPROC_API int mproc_parallel_call(mproc_task_fn fn, const void *in, size_t n, size_t in_size, void *out,
                                  size_t out_size, const mproc_parallel_opts *opts, mproc_map_report *report);
MPROC_API void mproc_parallel_shutdown(void);

MPROC_EXTERN_C_END

#endif
