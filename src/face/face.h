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
