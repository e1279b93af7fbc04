/* face.h: what the faces (pool.c, future.c, stream.c, parallel.c) share among themselves; nothing of
 * src/engine/ or src/backend/ uses it. */
#ifndef MPROC_FACE_H
#define MPROC_FACE_H

#include "engine/engine.h"
#include "mproc/items.h"

struct mproc_pool {
  mproc__engine eng;
};

struct mproc_future {
  int refs; /* caller + engine; under engine lock */
  struct mproc__engine *eng;
  int state; /* FUT_PENDING (running when job->worker >= 0), then FUT_DONE */
  mproc_outcome out;
  char *msg; /* the failure message, allocated only when there is one (NULL: "") */
  void *result;
  size_t result_len;
  struct cb_node *cbs;
  struct mproc_as_completed *iter;
  mproc_future *iter_next;
  size_t iter_index;
  mproc__job *job; /* until it completes: whether it runs, and where (job->worker), and cancel */
  /* a small result, copied here from the worker's ring instead of into an allocated block (result then
   * points here) */
  _Alignas(16) unsigned char result_inline[MPROC__INLINE_BYTES];
};
enum { FUT_PENDING = 0, FUT_DONE = 1 };

/* A map or a stream while it runs: its items as the engine sees them (first, so the engine's completion
 * calls lead back here), and what the face keeps of their ends (map.c). */
typedef struct mproc__map {
  mproc__items items;
  mproc__engine *eng;
  size_t remaining; /* items not yet completed */
  pthread_cond_t
      cv; /* signalled when remaining reaches 0 (on every completion for streams and notify_each) */
  mproc_map_opts opts;
  int max_failures;
  bool notify_each; /* signal cv on every completion, not only the last */
  /* streams (imap): each item's end is kept in its slot of the window (items.window slots) */
  bool unordered;
  unsigned char *slot_done; /* per slot: 1 when its item completed */
  int *slot_code;
  char **slot_msg; /* failure messages, allocated only for failures */
  int64_t *ready;  /* unordered: completed indices, a FIFO of window entries */
  size_t ready_head, ready_count;
  size_t ok, failed, cancelled;
  int64_t first_failed;
  mproc_outcome first_outcome;
  char first_msg[MPROC_TASK_MSG_MAX];
  size_t failures_kept, failures_left_out; /* in opts.failures: a max-heap by index until the map ends */
  void *var_ctx;     /* items of any size: what items.c keeps for this map (mproc__var_io.ctx) */
  bool codes_zeroed; /* mproc__var_io.codes_zeroed */
} mproc__map;

/* items.c: how a map or a stream over items of any size reads its items and keeps its results (the
 * engine's item_at and item_result), and its context, reached as mproc__map.var_ctx. */
typedef struct mproc__var_io {
  const void *(*item_at)(const mproc__items *m, int64_t index, size_t *len);
  void (*item_result)(mproc__items *m, int64_t index, const void *data, size_t len);
  /* optional: the same for runs of items (see mproc__items) */
  void (*items_at)(const mproc__items *m, int64_t first, size_t count, uint64_t *lens, uint64_t *addrs);
  void (*items_results)(mproc__items *m, int64_t first, size_t count, const unsigned char *recs);
  bool codes_zeroed; /* opts.item_codes came zeroed: an item that ends well leaves its code as it is */
  void *ctx;
} mproc__var_io;
/* Makes m a map over items of any size read and kept through io. */
void mproc__map_set_var(mproc__map *m, const mproc__var_io *io);
/* 0 when in describes items in one form (or none, empty), -EINVAL otherwise.  mproc__items_at: item i of a
 * description that is not lazy. */
int mproc__items_check(const mproc_items *in);
/* The code of a call refused by a closed pool (lock held): MPROC_ECLOSED, or the code of a pool that was
 * lost (no worker could be started, its template died), whose reason then becomes the calling thread's
 * mproc_last_error_message(). */
int mproc__pool_refusal(const mproc__engine *e);
/* What "all CPUs" means for a pool of backend (joblib's n_jobs -1, MPROC_WORKERS=-1, workers 0): the MPI
 * backend's agents' CPUs together (the cluster's, rank 0's aside), else this machine's (mproc_cpu_count()).
 */
int mproc__backend_cpus(mproc_backend backend);
const void *mproc__items_at(const mproc_items *in, size_t i, size_t *len);

/* Whether n records of in_size and of out_size bytes fit in memory, and their indices in an int64_t: a
 * larger n cannot describe the caller's arrays (it would read and write past them). */
static inline bool mproc__records_fit(size_t n, size_t in_size, size_t out_size) {
  return n <= INT64_MAX && (!in_size || n <= SIZE_MAX / in_size) && (!out_size || n <= SIZE_MAX / out_size);
}

/* map.c: makes m a map of n items of fn over e (zeroed but for what a map starts with: no failure yet,
 * the completion calls, its condition); the caller fills in the rest.  mproc__map_end destroys the
 * condition.  mproc__map_fail: items [first, first + count) failed or were cancelled (lock held), as the
 * engine reports them; the map may stop (its error policy). */
void mproc__map_init(mproc__map *m, mproc__engine *e, mproc_task_fn fn, size_t n);
void mproc__map_end(mproc__map *m);
/* 0 when a map's options are valid (timeouts, error policy, failures kept, retries), else -EINVAL: the
 * checks every map shares, whatever its input. */
int mproc__map_opts_check(const mproc_map_opts *o);
/* Sorts the failures kept in opts.failures by index (once the map has ended). */
void mproc__map_sort_failures(mproc__map *m);
void mproc__map_fail(mproc__map *m, int64_t first, size_t count, const mproc_outcome *o, const char *msg);

/* future.c */
mproc_future *mproc__future_new(mproc__engine *e);
void mproc__future_complete(mproc_future *f, const mproc_outcome *o, const char *msg, void *result,
                            size_t len);
/* Drops a reference to f (lock held).  True when that freed the last thing holding a destroyed pool: the
 * caller then calls mproc__pool_free(e) once it has unlocked. */
bool mproc__future_unref(mproc_future *f);
/* One holder of e (a future, an iterator, a stream) less (lock held): true when it was the last of a
 * destroyed pool, which the caller then frees with mproc__pool_free(e) once it has unlocked. */
bool mproc__pool_drop_holder(mproc__engine *e);
/* Frees a destroyed pool whose last future or iterator has gone (lock not held, nothing can use it). */
void mproc__pool_free(mproc__engine *e);
/* The blocks of released large results the pool keeps for the next ones (for tests: tests/test_futures.c). */
int mproc__pool_kept_blocks(mproc_pool *p);
/* A task's job has ended (lock held): its future completes and drops the job's reference (mproc__job's
 * task_done for futures). */
bool mproc__future_job_done(mproc__job *j, const mproc_outcome *o, const char *msg, void *result, size_t len);
/* Waits on the engine's condition until pred(arg) or timeout seconds, reporting Ctrl-C (lock held). */
int mproc__wait_until(mproc__engine *e, double timeout, bool (*pred)(void *), void *arg);

/* pool.c: a map with extras for mproc_parallel_run(): batch sizes measured by a probe (when
 * opts->chunk_size is 0), and a progress tick called without the lock at most once per interval and once at
 * the end. */
typedef struct mproc__map_hooks {
  bool probe;
  void (*tick)(void *ctx, const mproc__map *m, bool final);
  void *ctx;
  double interval;
  const mproc__var_io *var; /* items of any size (NULL: records of in_size and out_size bytes) */
} mproc__map_hooks;
int mproc__pool_map_ex(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, const mproc_map_opts *opts, mproc_map_report *report,
                       const mproc__map_hooks *hooks);

/* items.c: the all-at-once form over items, with Parallel's hooks (may be NULL); over a lazy input it
 * runs as a stream whose results are gathered. */
int mproc__map_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in, const mproc_map_opts *opts,
                     mproc_results **out, mproc_map_report *report, const mproc__map_hooks *hooks);
/* pool.c: a map's report from what it kept (once it has ended). */
void mproc__map_report(const mproc__map *m, mproc_map_report *rep);

/* stream.c, for items.c's all-at-once form over a lazy input: an ordered stream over items with a map's
 * options (error policy, failures kept; not item_codes); the stream's map (for progress ticks); and its
 * end: what is in flight is cancelled, the final tick given (hooks may be NULL), the report filled. */
int mproc__stream_start_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                              const mproc_stream_opts *so, const mproc_map_opts *mo, mproc_stream **out);
const mproc__map *mproc__stream_map(const mproc_stream *s);
void mproc__stream_finish(mproc_stream *s, mproc_map_report *report, const mproc__map_hooks *hooks);

/* stream.c: how many batches a stream has made so far (for tests of its sizing). */
size_t mproc__stream_batches(const mproc_stream *s);

#endif
