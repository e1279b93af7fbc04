/* mproc/pool.h: the pool of workers and its faces: multiprocessing.Pool (map, apply, apply_async) and
 * concurrent.futures (submit, futures, wait, as_completed).  One engine serves them all.  Included by
 * <mproc.h>. */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <mproc/common.h>
#include <mproc/process.h> /* mproc_start_method */
#include <mproc/task.h>

MPROC_EXTERN_C_BEGIN

/* A pool of workers.  Safe to use from several threads of the process that created it. */
typedef struct mproc_pool mproc_pool;
/* concurrent.futures' name for the same engine: every mproc_executor_* call takes a pool. */
typedef struct mproc_pool mproc_executor;
/* The eventual outcome of one submitted task. */
typedef struct mproc_future mproc_future;

/* Where tasks run. */
typedef enum mproc_backend {
  MPROC_BACKEND_DEFAULT = 0, /* MPROC_BACKEND from the environment ("process", "thread", "serial", "mpi"),
                                else process */
  MPROC_BACKEND_PROCESS = 1, /* worker processes forked from a clean single-threaded template process */
  MPROC_BACKEND_SERIAL = 2,  /* no workers: a task runs in the calling thread when submitted, a map's and a
                                stream's items while the caller waits for them (debugging); task timeouts
                                are accepted and not enforced, as joblib's n_jobs=1 */
  MPROC_BACKEND_THREAD = 3,  /* worker threads in the calling process: same semantics, but a crashing task
                                ends the whole process and running tasks cannot be killed, so task
                                timeouts are refused (-ENOTSUP) and terminate/destroy wait for them */
  MPROC_BACKEND_MPI = 4,     /* worker processes on the other ranks of an MPI job (docs/cluster.md): the
                                program runs under mpirun or srun and calls mproc_init() first; rank 0 runs
                                main, the others serve.  Otherwise MPROC_ENOBACKEND, with
                                mproc_last_error_message() saying why.  Default workers: the CPUs of all
                                the other ranks */
} mproc_backend;

/* Whether pools of the backend named `name` ("process", "thread", "serial", "mpi") can be created in this
 * process now: 1 yes, 0 no (then mproc_last_error_message() says why: for "mpi", MPI not in this build, no
 * MPI launcher, mproc_init() not called, or a job of one rank), -EINVAL for NULL or an unknown name. */
MPROC_API int mproc_backend_available(const char *name);

/* Options of mproc_pool_create(); all zero means the defaults. */
typedef struct mproc_pool_opts {
  /* Number of workers: > 0 as given; 0 takes MPROC_WORKERS from the environment (read as joblib's n_jobs:
   * -1 all CPUs, -2 all but one; see docs/environment.md), else mproc_cpu_count().  On the MPI backend
   * "all CPUs" are those of every rank but 0 (docs/cluster.md). */
  int workers;
  mproc_backend backend;
  /* Run once in each worker before its first task (the result is ignored; a failure ends the worker, and
   * its tasks are reported as crashed), with its own copy of the init_arg bytes. */
  mproc_task_fn initializer;
  const void *init_arg;
  size_t init_arg_len;
  /* Run once in each worker when it ends normally (pool shut down, or max_tasks_per_child reached). */
  void (*finalizer)(void);
  /* A worker that has run this many tasks (or batches of a map) is replaced by a fresh one; 0: never. */
  int max_tasks_per_child;
  /* Seconds a task (or one item of a map) may run before its worker is killed and the task completes as
   * MPROC_ETASKTIMEOUT; 0 (the default): no limit.  Per-call options override it. */
  double task_timeout;
  /* How many times a task that crashed or timed out is run again before it is reported; default 0. */
  int max_retries;
  /* Bytes of each worker's ring in each direction (a power of two is used, at least 4 KiB); 0: 256 KiB.
   * Arguments and results of any size pass: larger ones are streamed through. */
  size_t ring_bytes;
  /* Where workers come from.  MPROC_START_FORK: a template process forked from the caller when the pool
   * is created; workers see the caller's memory as it was then, and creating the pool costs a fork of the
   * whole caller (more with a large caller).  MPROC_START_FORKSERVER: the template is forked by the server
   * that mproc_init() started at the top of main; workers see the program as it was at that call, and
   * start-up does not grow with the caller's memory.  MPROC_START_EXEC (process backend only; -EINVAL with
   * an explicit thread or serial backend): the template is a fresh image of the program (an exec of
   * /proc/self/exe that becomes the template before main), so workers see none of the caller's memory,
   * only the bytes of their arguments and init_arg; functions are sent as (loaded object, offset), and one
   * in no loaded object (JIT code) fails its tasks with MPROC_ENOTSUP (as initializer or finalizer: the
   * pool is not created, MPROC_ENOTSUP).  See docs/pool.md.  Default: forkserver when mproc_init() ran,
   * else fork.  Forkserver without mproc_init(): MPROC_ESTATE. */
  mproc_start_method start_method;
  /* By default workers get OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, BLIS_NUM_THREADS and
   * VECLIB_MAXIMUM_THREADS set to max(1, CPUs / workers) unless already set (joblib's guard against
   * oversubscription).  Nonzero leaves the environment alone. */
  int keep_thread_env;
  /* joblib's max_nbytes: a submitted task's argument of at least this many bytes is copied once into the
   * shared arena (see mproc_shared_alloc() in mproc/shm.h), where its worker reads it in place, instead of
   * being streamed through the worker's ring into a second copy.  0: 1 MiB; SIZE_MAX: never.  Process
   * backend only.  (Map and parallel inputs in the arena are always read in place.) */
  size_t max_nbytes;
} mproc_pool_opts;

/* Optional; call it first thing in main, while the program is small and has one thread: starts mproc's
 * fork server, from which pools created later get their workers (MPROC_START_FORKSERVER).  Under an MPI
 * launcher (mpirun, srun) in a build with MPI, it then initialises MPI (given argc and argv, which may be
 * NULL): rank 0 returns as the master, every other rank serves the master's MPI pools from inside this call
 * and leaves the program with exit(0) when the master ends (docs/cluster.md).  Returns 0, -EALREADY when
 * the server already runs, the fork's error, MPROC_ESTATE when MPI was initialised before, or
 * MPROC_ENOBACKEND when the launch is broken (srun without a PMI plugin: every task rank 0 of 1; the message
 * on stderr says what to pass); the server runs in these last two cases.  The server lasts as long as the
 * program's process, whichever thread called this, and is stopped by mproc_shutdown() or at exit. */
MPROC_API int mproc_init(int *argc, char ***argv);
/* Stops the fork server.  Pools made from it must be destroyed first.  Safe to call when none runs. */
MPROC_API void mproc_shutdown(void);

/* Creates a pool and starts its workers.  On success *out is the pool (release with mproc_pool_destroy())
 * and 0 is returned.  Errors: -EINVAL (out NULL, negative workers, retries, timeout or max_tasks_per_child,
 * more than 4096 workers, NaN timeout, bad backend or start method, init_arg_len > 0 with init_arg or
 * initializer NULL, a bad MPROC_WORKERS or MPROC_BACKEND: mproc_last_error_message() names it),
 * MPROC_ESTATE (forkserver without mproc_init()), MPROC_ENOTSUP and MPROC_EEXIST (exec: see start_method),
 * MPROC_ENOBACKEND, -ENOMEM, -EAGAIN (no process or thread could be made); *out is then untouched and
 * nothing is left behind. */
MPROC_API int mproc_pool_create(mproc_pool **out, const mproc_pool_opts *opts);

/* The number of workers (> 0), or -EINVAL for NULL. */
MPROC_API int mproc_pool_workers(const mproc_pool *pool);

/* Python's close(): no more tasks may be submitted (they fail with MPROC_ECLOSED); queued ones still run.
 * 0 or -EINVAL. */
MPROC_API int mproc_pool_close(mproc_pool *pool);

/* Waits until every submitted task has completed, at most timeout seconds.  0, -ETIMEDOUT, -EINVAL. */
MPROC_API int mproc_pool_join(mproc_pool *pool, double timeout);

/* Python's terminate(): tasks not yet started complete as cancelled (-ECANCELED), running ones are killed
 * with their workers and complete as cancelled too; the pool is closed, and no worker is started any more
 * (killed ones are not replaced; idle ones stay until destroy).  Returns 0 or -EINVAL. */
MPROC_API int mproc_pool_terminate(mproc_pool *pool);

/* Ends the pool and frees it.  Queued tasks are cancelled, running ones get a grace period of 1 s (a worker
 * that dies meanwhile is not replaced), then their workers are killed; every worker and the template process
 * are reaped, and all shared memory and descriptors are released.  Futures the caller still holds stay valid
 * (completed) until released.  NULL is accepted. */
MPROC_API void mproc_pool_destroy(mproc_pool *pool);

/* Python's `with Pool() as p:` in one call: creates a pool with opts, runs body(pool, user) in the calling
 * thread, then ends the pool as Python's Pool.__exit__ does, with terminate() (what body left running or
 * queued is cancelled; futures it kept stay valid until released), and destroys it.  Returns what body
 * returned, or mproc_pool_create()'s error (body then does not run); -EINVAL when body is NULL. */
typedef int (*mproc_pool_body)(mproc_pool *pool, void *user);
MPROC_API int mproc_pool_with(const mproc_pool_opts *opts, mproc_pool_body body, void *user);

/* ---- submitting tasks and futures (apply_async / submit) ---- */

/* Per-submission options; all zero means the pool's. */
typedef struct mproc_submit_opts {
  double timeout;  /* per-task timeout in seconds; 0: the pool's */
  int max_retries; /* -1: none; 0: the pool's; > 0: that many (below -1: -EINVAL) */
} mproc_submit_opts;

/* Submits fn(arg, arg_len) to the pool.  The argument bytes are copied.  On success *out receives a new
 * future (release it with mproc_future_release()).  Errors: -EINVAL, MPROC_ECLOSED after close/shutdown,
 * MPROC_ELOST when the pool's template process died or the pool and it could no longer exchange messages,
 * the fork's error (-EAGAIN) when no worker could be started (its tasks then completed as MPROC_OUTCOME_LOST:
 * destroy the pool and make a new one; mproc_last_error_message() says why), -ENOMEM; *out untouched. */
MPROC_API int mproc_pool_submit(mproc_pool *pool, mproc_task_fn fn, const void *arg, size_t arg_len,
                                const mproc_submit_opts *opts, mproc_future **out);

/* Submits and waits: Python's Pool.apply().  The result is copied into out[0..out_cap) and its length stored
 * in *out_len (when out_len is not NULL); -EMSGSIZE when it does not fit (the length is still stored).
 * Returns 0 or the task's failure code (see mproc_future_result()). */
MPROC_API int mproc_pool_apply(mproc_pool *pool, mproc_task_fn fn, const void *arg, size_t arg_len, void *out,
                               size_t out_cap, size_t *out_len);

/* Python's apply_async(fn, args, callback, error_callback): submits, and when the task completes calls
 * callback(result, len, user) on success or error_callback(code, message, user) on failure (either may be
 * NULL), in the thread that completes it (see mproc_future_add_done_callback()).  The result pointer is
 * valid during the call only.  *out receives the future (AsyncResult: ready = mproc_future_done,
 * successful = mproc_future_error(f, 0) == 0, wait = mproc_future_wait, get = mproc_future_result); pass
 * NULL to let the pool release it after the callbacks ran.  Errors as mproc_pool_submit(). */
typedef void (*mproc_result_cb)(const void *result, size_t len, void *user);
typedef void (*mproc_error_cb)(int code, const char *message, void *user);
MPROC_API int mproc_pool_apply_async(mproc_pool *pool, mproc_task_fn fn, const void *arg, size_t arg_len,
                                     mproc_result_cb callback, mproc_error_cb error_callback, void *user,
                                     mproc_future **out);

/* How a task ended. */
typedef enum mproc_outcome_kind {
  MPROC_OUTCOME_PENDING = 0, /* not finished */
  MPROC_OUTCOME_OK = 1,
  MPROC_OUTCOME_FAILED = 2,   /* the task returned a failure code */
  MPROC_OUTCOME_CRASHED = 3,  /* its worker died: signal or exit_code tells how */
  MPROC_OUTCOME_TIMEDOUT = 4, /* it ran past its timeout; its worker was killed */
  MPROC_OUTCOME_CANCELLED = 5,
  MPROC_OUTCOME_LOST = 6, /* the backend failed (no worker could be started) */
} mproc_outcome_kind;

typedef struct mproc_outcome {
  mproc_outcome_kind kind;
  int code;      /* 0 for OK; the task's code; MPROC_ECRASHED, MPROC_ETASKTIMEOUT, -ECANCELED, MPROC_ELOST */
  int signal;    /* CRASHED by a signal: its number, else 0 */
  int exit_code; /* CRASHED by exiting: its exit status, else -1 */
  int attempts;  /* how many times it ran (1 + retries) */
  int worker;    /* the worker that ran it last, or -1 */
  const char *message; /* the task's failure message, or a description of the crash; "" if none.  Valid
                          until the future is released. */
} mproc_outcome;

/* Waits until the future is done, at most timeout seconds.  0 when done, -ETIMEDOUT, -EINVAL. */
MPROC_API int mproc_future_wait(mproc_future *f, double timeout);

/* Waits (as mproc_future_wait()) and gives the result: *data and *len (either may be NULL) point to the
 * result bytes, valid until the future is released.  Returns 0 on success; -ETIMEDOUT if not done in time;
 * otherwise the task's failure: its own code, MPROC_ECRASHED, MPROC_ETASKTIMEOUT, -ECANCELED or MPROC_ELOST
 * (then *data is NULL and *len 0). */
MPROC_API int mproc_future_result(mproc_future *f, double timeout, const void **data, size_t *len);

/* Python's exception(): waits, then returns 0 when the task succeeded, its failure code otherwise, or
 * -ETIMEDOUT.  mproc_future_outcome() tells the details. */
MPROC_API int mproc_future_error(mproc_future *f, double timeout);

/* Fills *o with how the task ended (kind PENDING while it is not done).  0 or -EINVAL. */
MPROC_API int mproc_future_outcome(mproc_future *f, mproc_outcome *o);

/* Cancels the task if it has not been handed to a worker yet: returns 1 when cancelled (or already
 * cancelled), 0 when it is running or done, -EINVAL for NULL.  As in concurrent.futures, a task counts as
 * running as soon as it is handed to a worker (at most two per worker are, or sixteen while the pool's
 * tasks take under 20 us each, so that very short tasks do not wait for the manager between each other). */
MPROC_API int mproc_future_cancel(mproc_future *f);
MPROC_API int mproc_future_cancelled(mproc_future *f); /* 1 or 0 (or -EINVAL) */
MPROC_API int mproc_future_running(mproc_future *f);
MPROC_API int mproc_future_done(mproc_future *f); /* finished, failed, crashed or cancelled */

/* Calls cb(f, user) once the future is done: at once in the calling thread if it already is, otherwise
 * in the pool's manager thread right after completion (keep callbacks short; they may call any mproc_future
 * function but must not wait for other futures of the same pool).  Callbacks run in the order added.
 * Returns 0, -EINVAL, -ENOMEM; if it fails the callback never runs. */
typedef void (*mproc_future_cb)(mproc_future *f, void *user);
MPROC_API int mproc_future_add_done_callback(mproc_future *f, mproc_future_cb cb, void *user);

/* Drops the caller's reference.  The task is not cancelled; NULL is accepted. */
MPROC_API void mproc_future_release(mproc_future *f);

/* concurrent.futures.wait(). */
typedef enum mproc_wait_mode {
  MPROC_ALL_COMPLETED = 0,
  MPROC_FIRST_COMPLETED = 1,
  MPROC_FIRST_EXCEPTION = 2, /* any failure (including crash, timeout, cancel), else all */
} mproc_wait_mode;

/* Waits until the mode is satisfied for futures fs[0..n), at most timeout seconds.  Stores the number of
 * done futures in *ndone and, when done_flags is not NULL, 1 or 0 in done_flags[i] for each (ndone may be
 * NULL too).  Returns 0 when the mode was satisfied, -ETIMEDOUT when not (the outputs are still filled),
 * -EINVAL (NULL fs with n > 0, a NULL future, futures of different pools, an unknown mode, NaN). */
MPROC_API int mproc_futures_wait(mproc_future *const *fs, size_t n, double timeout, mproc_wait_mode mode,
                                 size_t *ndone, unsigned char *done_flags);

/* concurrent.futures.as_completed(): yields each of fs[0..n) once, in the order they complete (those
 * already done first).  A future may be in one iterator at a time. */
typedef struct mproc_as_completed mproc_as_completed;
/* 0, -EINVAL, -ENOMEM, -EBUSY (a future already belongs to another iterator).  While the iterator exists,
 * Ctrl-C is counted for it (docs/pool.md, "Ctrl-C"). */
MPROC_API int mproc_as_completed_create(mproc_as_completed **out, mproc_future *const *fs, size_t n);
/* Adds one more future (of the same pool) to the iterator, which may have been created empty (fs NULL, n
 * 0).  Feeding it while draining it keeps memory bounded by the futures in flight, not by the total: submit
 * and add until K are in flight, then take one with mproc_as_completed_next(), release it, submit the next
 * (docs/pool.md shows the loop; a test runs 200,000 tasks that way in bounded memory).  0, -EINVAL
 * (NULL, a future of another pool), -EBUSY (it belongs to another iterator), -ENOMEM. */
MPROC_API int mproc_as_completed_add(mproc_as_completed *it, mproc_future *f);
/* Stores the next completed future in *f (the iterator keeps no reference: the caller's stays valid; NULL
 * when none is returned) and returns 0; MPROC_EEOF when every future added so far has been yielded (or
 * released); -ETIMEDOUT when none completed in time; MPROC_EINTERRUPTED, whatever is ready, when Ctrl-C came
 * since the iterator was made or since the last call that returned MPROC_EINTERRUPTED (the call after goes
 * on). */
MPROC_API int mproc_as_completed_next(mproc_as_completed *it, double timeout, mproc_future **f);
MPROC_API void mproc_as_completed_destroy(mproc_as_completed *it);

/* ---- map over fixed-size records (Pool.map, Executor.map) ---- */

typedef enum mproc_error_policy {
  MPROC_ON_ERROR_STOP = 0,       /* at the first failure, cancel what has not started (default) */
  MPROC_ON_ERROR_CONTINUE = 1,   /* run every item, report failures per item */
  MPROC_ON_ERROR_STOP_AFTER = 2, /* stop after max_failures failures (GNU parallel's --halt) */
} mproc_error_policy;

/* One failed item of a map, kept in the caller's array (mproc_map_opts.failures). */
typedef struct mproc_item_failure {
  int64_t index;
  mproc_outcome outcome; /* outcome.message points at message below */
  char message[128];     /* the task's message (mproc_task_fail), cut to 127 bytes */
} mproc_item_failure;

typedef struct mproc_map_opts {
  size_t chunk_size;   /* items per batch; 0: automatic */
  double task_timeout; /* per item, seconds; 0: the pool's */
  int max_retries;     /* -1 none, 0 the pool's, > 0 that many (below -1: -EINVAL) */
  mproc_error_policy on_error;
  int max_failures; /* with MPROC_ON_ERROR_STOP_AFTER; at least 1 */
  /* Optional: n codes, one per item: 0, its failure code, or -ECANCELED for items not run. */
  int *item_codes;
  /* The whole map's time limit in seconds (Executor.map's timeout); 0: none.  When it passes, items not
   * done are cancelled (workers running them are killed and replaced) and the map returns -ETIMEDOUT. */
  double timeout;
  uint64_t seed; /* run seed for mproc_task_seed() */
  /* Optional, under any policy: an array of failures_cap entries where the map keeps its failed items
   * (crashed, timed out and failed; not cancelled ones): the failures_cap lowest indices among them,
   * sorted by index when the call returns, however the items were scheduled.  How many were kept and how
   * many left out is in the report. */
  mproc_item_failure *failures;
  size_t failures_cap;
} mproc_map_opts;

/* What a map did. */
typedef struct mproc_map_report {
  size_t ok, failed, cancelled; /* items; failed counts crashes and timeouts too */
  size_t batches;               /* batches handed to workers (automatic batching shows here) */
  int64_t first_failed_index;   /* the lowest index that failed, or -1 */
  mproc_outcome first_failure;  /* its outcome; message points into the report's buffer below */
  char message[256];
  size_t failures_kept;     /* entries filled in opts.failures */
  size_t failures_left_out; /* failed items beyond opts.failures_cap */
} mproc_map_report;

/* Runs fn on each of n records of in_size bytes at in, writing each result into the record of out_size
 * bytes at out (results must fit: a larger one fails its item with -EMSGSIZE; a shorter one leaves the rest
 * of its record as it was).  Results are in input order; nothing is allocated per item.  in may be NULL
 * when in_size is 0 (each task then gets no argument and reads its index with mproc_task_index()); out may
 * be NULL when out_size is 0.  Returns 0 when every item succeeded, else the first failure's code by index
 * (details in *report when not NULL); -EINVAL for bad arguments (also n records of in_size or out_size
 * bytes beyond what memory can hold); MPROC_ECLOSED on a closed pool, a lost one's code as
 * mproc_pool_submit();
 * -ETIMEDOUT when opts->timeout passed; MPROC_EINTERRUPTED on Ctrl-C (see docs/pool.md).  In the last two
 * cases the items not done are cancelled and no worker writes into out any more when the call returns. */
MPROC_API int mproc_pool_map(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                             void *out, size_t out_size, const mproc_map_opts *opts,
                             mproc_map_report *report);

/* ---- streams: imap and imap_unordered ---- */

/* Results of a map, handed out one by one while the rest still runs.  Memory stays bounded by the window
 * of items in flight, however many items there are. */
typedef struct mproc_stream mproc_stream;

typedef struct mproc_stream_opts {
  /* Items per batch; 0: automatic, as joblib's batch_size="auto": batches start at one item and are then
   * sized from the workers' measured compute time toward about 2 ms each, and shrink near the end so that
   * no worker idles while another finishes a large batch. */
  size_t chunk_size;
  size_t max_in_flight; /* items handed out and not yet consumed; 0: as many as 64 MiB of results hold,
                           at most 262144, at least 4096 */
  double task_timeout;  /* per item, seconds; 0: the pool's */
  int max_retries;      /* -1 none, 0 the pool's, > 0 that many (below -1: -EINVAL) */
  uint64_t seed;        /* run seed for mproc_task_seed() */
} mproc_stream_opts;

/* Starts fn over the n records of in (as mproc_pool_map(), results of out_size bytes each); in must stay
 * valid until the stream is destroyed.  imap yields results in input order, imap_unordered as they
 * complete.  On success *out is the stream (release with mproc_stream_destroy()); while it exists, Ctrl-C
 * is counted for it (docs/pool.md, "Ctrl-C").  Errors: -EINVAL, -ENOMEM, MPROC_ECLOSED, a lost pool's code as
 * mproc_pool_submit(). */
MPROC_API int mproc_pool_imap(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                              size_t out_size, const mproc_stream_opts *opts, mproc_stream **out);
MPROC_API int mproc_pool_imap_unordered(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n,
                                        size_t in_size, size_t out_size, const mproc_stream_opts *opts,
                                        mproc_stream **out);

/* The next item: stores its index in *index and a pointer to its out_size result bytes in *result (valid
 * until the next call on the stream), and returns 0.  A failed item is returned too, with its code as the
 * return value (as Python's imap raises at that item and can go on): *result is then NULL and *outcome,
 * when not NULL, tells how it failed (its message is valid until the next call).  MPROC_EEOF when every
 * item has been yielded; -ETIMEDOUT when none came in time; MPROC_EINTERRUPTED, whatever is ready, when
 * Ctrl-C came since the stream was started or since the last call that returned MPROC_EINTERRUPTED (the
 * call after goes on; see docs/pool.md, "Ctrl-C"); -EINVAL. */
MPROC_API int mproc_stream_next(mproc_stream *s, double timeout, int64_t *index, const void **result,
                                mproc_outcome *outcome);

/* Ends the stream: items not run are cancelled, workers still running its items are killed and replaced,
 * and nothing of it runs after the call.  NULL is accepted.  A stream may outlive its pool: after
 * mproc_pool_destroy() its items in flight are cancelled, mproc_stream_next() returns MPROC_ECLOSED, and
 * this call still releases it. */
MPROC_API void mproc_stream_destroy(mproc_stream *s);

/* ---- concurrent.futures names for the same engine ---- */
MPROC_API int mproc_executor_create(mproc_executor **out, const mproc_pool_opts *opts);
MPROC_API int mproc_executor_submit(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t arg_len,
                                    mproc_future **out);
MPROC_API int mproc_executor_map(mproc_executor *ex, mproc_task_fn fn, const void *in, size_t n,
                                 size_t in_size, void *out, size_t out_size, const mproc_map_opts *opts,
                                 mproc_map_report *report);
/* shutdown(wait, cancel_futures): no more submissions; with cancel_futures, tasks not yet started are
 * cancelled; with wait, returns once every task has completed.  The pool must still be destroyed. */
MPROC_API int mproc_executor_shutdown(mproc_executor *ex, int wait, int cancel_futures);
MPROC_API void mproc_executor_destroy(mproc_executor *ex);
/* `with ProcessPoolExecutor() as ex:` in one call: as mproc_pool_with(), but the executor ends as
 * Executor.__exit__ does, with shutdown(wait=1): everything body submitted completes before it returns. */
MPROC_API int mproc_executor_with(const mproc_pool_opts *opts, mproc_pool_body body, void *user);

MPROC_EXTERN_C_END

#endif
