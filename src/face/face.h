/* face.h: what the faces (pool.c, future.c, stream.c, parallel.c) share among themselves; nothing of
 * src/engine/ or src/backend/ uses it. */
#ifndef MPROC_FACE_H
#define MPROC_FACE_H

#include "engine/engine.h"

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
} mproc__map;

/* map.c: makes m a map of n items of fn over e (zeroed but for what a map starts with: no failure yet,
 * the completion calls, its condition); the caller fills in the rest.  mproc__map_end destroys the
 * condition.  mproc__map_fail: items [first, first + count) failed or were cancelled (lock held), as the
 * engine reports them; the map may stop (its error policy). */
void mproc__map_init(mproc__map *m, mproc__engine *e, mproc_task_fn fn, size_t n);
void mproc__map_end(mproc__map *m);
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
} mproc__map_hooks;
int mproc__pool_map_ex(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, const mproc_map_opts *opts, mproc_map_report *report,
                       const mproc__map_hooks *hooks);

/* stream.c: how many batches a stream has made so far (for tests of its sizing). */
size_t mproc__stream_batches(const mproc_stream *s);

#endif
