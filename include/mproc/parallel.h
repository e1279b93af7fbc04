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
  size_t total, done, failed; /* items; done counts those that ran, failed ones too (not cancelled ones) */
  size_t in_flight;           /* items handed to workers and not yet back */
  double elapsed;             /* seconds since the call began */
  double rate;                /* items per second so far */
  double eta;                 /* seconds left at that rate; -1 while unknown */
  int workers;
  const double *busy; /* per worker: seconds spent running tasks during this call */
  size_t cancelled;   /* items that will not run: stopped after failures, or Ctrl-C */
} mproc_progress;
typedef void (*mproc_progress_cb)(const mproc_progress *p, void *user);

typedef struct mproc_parallel_opts {
  /* joblib's n_jobs: > 0 that many workers; -1 all CPUs (mproc_cpu_count(); on the MPI backend, the
   * CPUs of every rank but 0, as MPI pools count them); -2 all but one; -k max(1, CPUs + 1 - k); 0:
   * MPROC_WORKERS, else all CPUs. */
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
  /* Progress on stderr.  0: as the environment variable MPROC_VERBOSE says (a number; unset or 0: silent),
   * as for the cache; an explicit value wins: negative silent, >= 1 a one-line bar updated in place when
   * stderr is a terminal, else joblib-style lines "[Parallel(n_jobs=2)]: Done 40 out of 100 | elapsed: 1.0s
   * remaining: 1.5s", at most one per `progress_interval`; >= 10: a line per interval even on a terminal
   * instead of the bar.  "Done" counts items that ran (failed ones too), so the bar reaches 100% only when
   * all did.  The last line says how the run ended: "finished" when every item succeeded, else the counts
   * and why: "finished: 399 ok, 1 failed, 0 cancelled" (on_error CONTINUE), "stopped after 1 failure: 13 ok,
   * 1 failed, 386 cancelled", "interrupted: 98 ok, 0 failed, 302 cancelled" (Ctrl-C). */
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
  /* Where each run keeps its failed items, as mproc_map_opts.failures (the run's report says how many). */
  mproc_item_failure *failures;
  size_t failures_cap;
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

/* The generator forms: a stream of results (see mproc_stream_next()), ordered or in completion order
 * (MPROC_RETURN_GENERATOR or MPROC_RETURN_GENERATOR_UNORDERED; any other order, MPROC_RETURN_LIST too, is
 * -EINVAL).  Errors as mproc_pool_imap(). */
MPROC_API int mproc_parallel_stream(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n,
                                    size_t in_size, size_t out_size, mproc_return_as order,
                                    mproc_stream **out);

MPROC_API void mproc_parallel_destroy(mproc_parallel *par);

/* The one-call form, Parallel(n_jobs=...)(delayed(f)(x) for x in items).  Each call computes on the
 * program's memory as it is at that call, as joblib does: its workers read their inputs from `in`, and
 * what else the task reads (globals, memory reached through pointers) is what the caller has at the call.
 * To keep a loop of small calls from paying the workers' start every time, the library keeps the call's
 * pool for the next calls with the same n_jobs, backend, initializer and init_arg bytes (loky's reusable
 * executor), but only when reuse cannot give other results than a new pool:
 *  - thread and serial backends: the workers see the live memory;
 *  - process backend after mproc_init(): the fork server's workers see the program as at mproc_init()
 *    whatever pool they belong to (see mproc_pool_opts.start_method);
 *  - process backend without mproc_init() (forked workers, a snapshot of the caller when the pool is
 *    made): never kept, every call makes and ends its own pool.  For a loop of many small calls there,
 *    call mproc_init() first, or use mproc_parallel_create(), whose workers see the program as it was
 *    when that object was made.
 * No pool is kept inside a worker (a task calling the one-call form gets a pool of its own for the call).
 * mproc_parallel_shutdown() releases the kept pool (it is also released at exit; call it only while no
 * one-call run is in progress).  Thread-safe: concurrent calls with the same settings share the kept
 * pool; a call with other settings made while the kept pool is busy runs on a pool of its own. */
MPROC_API int mproc_parallel_call(mproc_task_fn fn, const void *in, size_t n, size_t in_size, void *out,
                                  size_t out_size, const mproc_parallel_opts *opts, mproc_map_report *report);
MPROC_API void mproc_parallel_shutdown(void);

MPROC_EXTERN_C_END

#endif
