/* mproc/task.h: the task function, the one signature every face (pool, executor, parallel, cache) runs.
 * Included by <mproc.h>. */
#ifndef MPROC_TASK_H
#define MPROC_TASK_H

#include <string.h>
#include <mproc/common.h>

MPROC_EXTERN_C_BEGIN

/* The context of one running task: where its result goes and who runs it.  Its layout is public only so
 * that mproc_task_return() can be inlined for small results; tasks read the fields through the accessors
 * and never write them. */
typedef struct mproc_task {
  void *out;      /* result buffer: the caller's output record in a map, else a worker-owned buffer */
  size_t out_cap; /* its capacity in bytes */
  size_t out_len; /* bytes of result set so far */
  int worker_id;  /* 0 .. workers-1 inside a pool; -1 when run by the caller itself */
  int attempt;    /* 1 for the first run, 2.. when the engine retries a crashed or timed-out task */
  int64_t index;  /* the item's index in its map or batch, or -1 for a submitted task */
  void *priv_;    /* the engine's */
} mproc_task;

/* A task: reads arg_len bytes at arg (NULL when arg_len is 0; valid only during the call), may set its
 * result with mproc_task_return() or mproc_task_return_buffer(), and returns 0 on success or a negative
 * code on failure (ideally through mproc_task_fail(), which also records a message).  A positive return is
 * treated as failure MPROC_ETASKFAILED.  A task that sets no result has an empty result. */
typedef int (*mproc_task_fn)(const void *arg, size_t arg_len, mproc_task *task);

MPROC_API int mproc__task_return_slow(mproc_task *task, const void *data, size_t len);

/* Sets the task's result to a copy of len bytes at data (replacing any result set before).  Returns 0, or
 * -ENOMEM, or -EMSGSIZE when the task runs in a map whose result records are fixed at fewer bytes. */
static inline int mproc_task_return(mproc_task *task, const void *data, size_t len) {
  if (len <= task->out_cap) {
    if (len) memcpy(task->out, data, len);
    task->out_len = len;
    return 0;
  }
  return mproc__task_return_slow(task, data, len);
}

/* A buffer of len bytes that becomes the task's result, for results built in place (no copy).  Valid until
 * the task function returns.  NULL when it cannot be had (no memory, or len above a map's record size), and
 * possibly for len 0 (the result is then empty all the same). */
MPROC_API void *mproc_task_return_buffer(mproc_task *task, size_t len);

/* Records the task's failure: code (negative; anything else becomes MPROC_ETASKFAILED) and a message made
 * from fmt (printf-style, cut at 255 bytes; fmt may be NULL).  Returns the code, so a task can end with
 * `return mproc_task_fail(task, MPROC_EINVAL, "bad input %d", n);`. */
MPROC_API int mproc_task_fail(mproc_task *task, int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A 64-bit seed for this item, derived from the run's seed (the `seed` option of a map, stream or parallel
 * call) and the item's index only: the same for a given run seed and index whatever the worker count,
 * batching or scheduling, and different from item to item.  For reproducible randomness per item.  0 for
 * NULL. */
MPROC_API uint64_t mproc_task_seed(const mproc_task *task);
/* The same seed computed anywhere, from a run seed and an item's index: mproc_task_seed(t) is
 * mproc_seed_for(run seed, mproc_task_index(t)), so a serial loop can reproduce a parallel run's random
 * numbers. */
MPROC_API uint64_t mproc_seed_for(uint64_t run_seed, int64_t index);

static inline int mproc_task_worker_id(const mproc_task *task) { return task->worker_id; }
static inline int64_t mproc_task_index(const mproc_task *task) { return task->index; }
static inline int mproc_task_attempt(const mproc_task *task) { return task->attempt; }

MPROC_EXTERN_C_END

#endif
