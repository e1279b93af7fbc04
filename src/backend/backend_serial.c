/* backend_serial.c: the serial backend: no workers, no manager, no shared memory; every job runs in the
 * thread that kicks the engine (a submission) or waits on it (a map, a stream, a future), as joblib's
 * n_jobs=1 does.  For debugging a task, and where processes cannot be had. */
#include "backend/backend.h"
#include "core/task_local.h"
#include "engine/engine.h"

static void run_task(mproc__engine *e, mproc__job *j) {
  mproc__engine_job_started(j, 0);
  pthread_mutex_unlock(&e->lock);
  mproc__task_outcome o;
  mproc__task_run_local(j->fn, j->arg, j->arg_len, 0, -1, &o);
  pthread_mutex_lock(&e->lock);
  mproc_outcome oc = {
      .kind = o.code ? MPROC_OUTCOME_FAILED : MPROC_OUTCOME_OK, .code = o.code, .exit_code = -1, .worker = 0};
  if (!mproc__engine_complete_task(e, j, &oc, o.msg, o.result, o.result_len)) mproc__free(o.result);
}

/* How long a batch runs before it goes back to the front of the queue: the waiting thread that runs it
 * then sees its deadline, its progress tick and Ctrl-C at least this often. */
#define SLICE_SECONDS 0.002

/* A batch's items in order, each result written straight into its place in the map's output; the lock is
 * taken between two items, to complete the one before and to see whether the map has stopped.  After a
 * slice the rest of the batch is queued again at the front, as the same job. */
static void run_batch(mproc__engine *e, mproc__job *j) {
  mproc__items *m = j->map;
  if (j->attempts == 0) mproc__engine_job_started(j, 0);
  mproc__task_priv priv = {0}; /* its buffer only for results of any size, freed at the end */
  double t0 = mproc__plat_now(), now = t0;
  for (uint32_t k = 0; k < j->count && !m->stopped; k++) {
    if (k > 0 && now - t0 >= SLICE_SECONDS) {
      j->first += k; /* the items before have completed */
      j->count -= k;
      j->done = 0;
      mproc__engine_enqueue(e, j, true);
      mproc__free(priv.heap);
      return;
    }
    int64_t idx = j->first + k;
    unsigned char *rec = m->out_size ? mproc__map_out(m, idx) : NULL;
    size_t len = m->in_size;
    const void *arg = m->var_in ? m->item_at(m, idx, &len) : m->in_size ? m->in + (size_t)idx * len : NULL;
    pthread_mutex_unlock(&e->lock);
    mproc_task t;
    mproc__task_begin(&t, &priv, rec, m->out_size, 0, idx);
    priv.fixed = !m->var_out; /* else a growable result, its buffer kept from item to item */
    priv.seed = m->seed;
    int code = mproc__task_finish_code(&t, m->fn(len ? arg : NULL, len, &t));
    if (rec) mproc__task_pad_record(&t, rec, m->out_size);
    now = mproc__plat_now();
    pthread_mutex_lock(&e->lock);
    if (code == 0 && m->var_out) m->item_result(m, idx, t.out, t.out_len);
    mproc__engine_item_done(e, j, idx, code, priv.msg, 0);
  }
  mproc__free(priv.heap);
  mproc__engine_batch_ran(e, j, (uint64_t)((now - t0) * 1e9));
}

static void run(mproc__engine *e, mproc__job *j) {
  if (j->kind == JOB_TASK)
    run_task(e, j);
  else
    run_batch(e, j);
}

const mproc__backend_ops mproc__backend_serial = {.shares_memory = true, .run = run};
