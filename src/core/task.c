/* task.c: the task context: results (inline, growable, fixed-record), failures, and local runs. */
#include <stdarg.h>
#include <stdio.h>

#include "core/task_local.h"

static void *grow(mproc_task *t, size_t len) {
  mproc__task_priv *priv = t->priv_;
  if (priv->fixed) return NULL;
  if (len > priv->heap_cap) {
    size_t cap = priv->heap_cap ? priv->heap_cap : 64;
    while (cap < len) cap = cap > SIZE_MAX / 2 ? len : cap * 2;
    void *p = mproc__realloc(priv->heap, cap);
    if (!p) return NULL;
    priv->heap = p;
    priv->heap_cap = cap;
  }
  t->out = priv->heap;
  t->out_cap = priv->heap_cap;
  return priv->heap;
}

int mproc__task_return_slow(mproc_task *t, const void *data, size_t len) {
  if (!t || (!data && len)) return MPROC_EINVAL;
  mproc__task_priv *priv = t->priv_;
  if (!priv) return MPROC_EINVAL;
  if (priv->fixed) return MPROC_EMSGSIZE;
  if (!grow(t, len)) return MPROC_ENOMEM;
  if (len) memcpy(t->out, data, len);
  t->out_len = len;
  return 0;
}

void *mproc_task_return_buffer(mproc_task *t, size_t len) {
  if (!t || !t->priv_) return NULL;
  if (len > t->out_cap && !grow(t, len)) return NULL;
  t->out_len = len;
  return t->out;
}

int mproc_task_fail(mproc_task *t, int code, const char *fmt, ...) {
  if (code >= 0) code = MPROC_ETASKFAILED;
  if (!t || !t->priv_) return code;
  mproc__task_priv *priv = t->priv_;
  priv->fail_code = code;
  priv->msg[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(priv->msg, sizeof priv->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

uint64_t mproc_task_seed(const mproc_task *t) {
  if (!t) return 0;
  const mproc__task_priv *priv = t->priv_;
  return mproc_seed_for(priv ? priv->seed : 0, t->index);
}

uint64_t mproc_seed_for(uint64_t run_seed, int64_t index) {
  return mproc__mix64(mproc__mix64(run_seed) ^ (uint64_t)index);
}

int mproc__task_run_local(mproc_task_fn fn, const void *arg, size_t len, int worker_id, int64_t index,
                          mproc__task_outcome *out) {
  mproc__task_priv priv = {0};
  mproc_task t;
  mproc__task_begin(&t, &priv, NULL, 0, worker_id, index);
  int code = mproc__task_finish_code(&t, fn(len ? arg : NULL, len, &t));
  out->code = code;
  snprintf(out->msg, sizeof out->msg, "%s", priv.msg);
  out->result = NULL;
  out->result_len = 0;
  if (code == 0 && t.out_len > 0) {
    /* hand over the runner's buffer as the result */
    out->result = priv.heap;
    out->result_len = t.out_len;
    priv.heap = NULL;
  }
  mproc__free(priv.heap);
  return code;
}

static _Thread_local bool in_worker;
void mproc__task_enter_worker(void) { in_worker = true; }
bool mproc__task_in_worker(void) { return in_worker; }
