/* task_local.h: running one task in the calling process, with a growable result buffer.  Used by the serial
 * backend, by workers, and by the result cache on a miss. */
#ifndef MPROC_TASK_LOCAL_H
#define MPROC_TASK_LOCAL_H

#include "internal.h"

#define MPROC_TASK_MSG_MAX 256

/* What the engine keeps behind mproc_task.priv_. */
typedef struct mproc__task_priv {
  int fixed;  /* out is a fixed-size record: no growth */
  void *heap; /* growable buffer owned by the runner (mproc__malloc), or NULL */
  size_t heap_cap;
  int fail_code;                /* set by mproc_task_fail */
  uint64_t seed;                /* the run seed of the map or batch */
  char msg[MPROC_TASK_MSG_MAX]; /* its message, "" if none */
} mproc__task_priv;

/* The outcome of a task run in the calling process. */
typedef struct mproc__task_outcome {
  int code; /* 0, or the task's failure code */
  char msg[MPROC_TASK_MSG_MAX];
  void *result; /* result bytes (mproc__malloc'd; the caller frees with mproc__free), NULL if none */
  size_t result_len;
} mproc__task_outcome;

/* Runs fn(arg, len) here with worker_id and index as given.  Fills *out; returns out->code. */
int mproc__task_run_local(mproc_task_fn fn, const void *arg, size_t len, int worker_id, int64_t index,
                          mproc__task_outcome *out);

/* Prepares a context whose result goes into the fixed record buf[cap] (a map's output slot), or into a
 * growable buffer when buf is NULL (priv->heap, starting with a small inline capacity).  Inline: a map
 * calls it once per item. */
static inline void mproc__task_begin(mproc_task *t, mproc__task_priv *priv, void *buf, size_t cap,
                                     int worker_id, int64_t index) {
  priv->fixed = buf != NULL;
  priv->fail_code = 0;
  priv->msg[0] = '\0';
  t->out = buf ? buf : priv->heap;
  t->out_cap = buf ? cap : (priv->heap ? priv->heap_cap : 0);
  t->out_len = 0;
  t->worker_id = worker_id;
  t->attempt = 1;
  t->index = index;
  t->priv_ = priv;
}
/* Marks the calling thread as a worker's (worker.c calls it as the worker begins); whether it is one.  The
 * one-call Parallel keeps no pool in a worker, which could not know when to end it. */
void mproc__task_enter_worker(void);
bool mproc__task_in_worker(void);

/* splitmix64: the mixer behind mproc_task_seed(). */
static inline uint64_t mproc__mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Normalises fn's return value into the outcome code (0 or negative).  A task that called
 * mproc_task_fail() and returned its code keeps its message; any other failure has none. */
static inline int mproc__task_finish_code(mproc_task *t, int ret) {
  if (ret == 0) return 0;
  mproc__task_priv *priv = (mproc__task_priv *)t->priv_;
  if (ret > 0) ret = MPROC_ETASKFAILED;
  if (priv->fail_code != ret) priv->msg[0] = '\0';
  return ret;
}

/* After a task in a map: a short (or no) result leaves the rest of its record zeroed. */
static inline void mproc__task_pad_record(const mproc_task *t, unsigned char *rec, size_t rec_size) {
  if (t->out_len < rec_size) memset(rec + t->out_len, 0, rec_size - t->out_len);
}

#endif
