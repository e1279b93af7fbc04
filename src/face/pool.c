/* pool.c: the Pool and Executor faces: create, submit, apply, map, close, join, terminate, destroy. */
#include <stdio.h>
#include <stdlib.h>

#include "core/env.h"
#include "face/batching.h"
#include "face/face.h"
#include "ipc/arena.h"

/* MPROC_WORKERS (as n_jobs, of cpus): 0 when unset, -EINVAL naming the bad value (core/env.c). */
static int env_int(const char *name, int cpus) {
  (void)name;
  int n, r = mproc__env_workers(cpus, &n);
  return r < 0 ? r : n;
}

int mproc__backend_cpus(mproc_backend backend) {
  int n = backend == MPROC_BACKEND_MPI ? mproc__mpi_default_workers() : 0;
  return n > 0 ? n : mproc_cpu_count();
}

static int env_backend(mproc_backend *b) { return mproc__env_backend(b); }

int mproc_pool_create(mproc_pool **out, const mproc_pool_opts *opts) {
  static const mproc_pool_opts defaults = {0};
  if (!opts) opts = &defaults;
  if (!out || opts->workers < 0 || opts->max_tasks_per_child < 0 || opts->max_retries < 0 ||
      !(opts->task_timeout >= 0) || (!opts->init_arg && opts->init_arg_len) || opts->workers > 4096 ||
      (!opts->initializer && opts->init_arg_len))
    return MPROC_EINVAL;
  mproc_backend backend = opts->backend;
  if (backend == MPROC_BACKEND_DEFAULT) {
    int r = env_backend(&backend);
    if (r < 0) return r;
  } else if (backend != MPROC_BACKEND_PROCESS && backend != MPROC_BACKEND_SERIAL &&
             backend != MPROC_BACKEND_THREAD && backend != MPROC_BACKEND_MPI) {
    return MPROC_EINVAL;
  }
  if (backend == MPROC_BACKEND_MPI) {
    /* not built, no launcher, no mproc_init(), one rank: the message says */
    int r = mproc__mpi_usable(opts->backend == MPROC_BACKEND_DEFAULT ? "MPROC_BACKEND=\"mpi\""
                                                                     : "MPROC_BACKEND_MPI");
    if (r < 0) return r;
  }
  if (backend == MPROC_BACKEND_THREAD && opts->task_timeout > 0)
    return MPROC_ENOTSUP; /* threads cannot be killed */
  if ((unsigned)opts->start_method > MPROC_START_EXEC) return MPROC_EINVAL;
  /* exec asks for processes: an explicit thread or serial backend contradicts it (MPROC_BACKEND does not) */
  if (opts->start_method == MPROC_START_EXEC && opts->backend != MPROC_BACKEND_DEFAULT &&
      opts->backend != MPROC_BACKEND_PROCESS)
    return MPROC_EINVAL;
  bool exec = backend == MPROC_BACKEND_PROCESS && opts->start_method == MPROC_START_EXEC;
  bool forkserver = backend == MPROC_BACKEND_PROCESS && mproc__forkserver_running() &&
                    opts->start_method != MPROC_START_FORK && !exec;
  if (backend == MPROC_BACKEND_PROCESS && opts->start_method == MPROC_START_FORKSERVER && !forkserver)
    return MPROC_ESTATE;
  int workers = opts->workers;
  if (workers == 0) {
    workers = env_int("MPROC_WORKERS", mproc__backend_cpus(backend));
    if (workers < 0) return workers;
    if (workers == 0) workers = mproc__backend_cpus(backend);
  }
  mproc_pool *p = mproc__calloc(1, sizeof *p);
  if (!p) return MPROC_ENOMEM;
  p->eng.nworkers = backend == MPROC_BACKEND_SERIAL ? 1 : workers;
  p->eng.backend = backend;
  p->eng.ops = backend == MPROC_BACKEND_THREAD   ? &mproc__backend_thread
               : backend == MPROC_BACKEND_SERIAL ? &mproc__backend_serial
               : backend == MPROC_BACKEND_MPI    ? &mproc__backend_mpi
               : exec                            ? &mproc__backend_exec
               : forkserver                      ? &mproc__backend_forkserver
                                                 : &mproc__backend_fork;
  /* the arena exists before the template is made, so every worker has it (see ipc/arena.h); without one
   * (no memory files here) the pool still works, with nothing read in place */
  if (backend == MPROC_BACKEND_PROCESS) p->eng.arena_ref = mproc__arena_ref() == 0;
  int r = mproc__engine_start(&p->eng, opts);
  if (r < 0) {
    if (p->eng.arena_ref) mproc__arena_unref();
    mproc__free(p);
    return r;
  }
  *out = p;
  return 0;
}

int mproc_backend_available(const char *name) {
  if (!name) return MPROC_EINVAL;
  if (strcmp(name, "process") == 0 || strcmp(name, "thread") == 0 || strcmp(name, "serial") == 0) return 1;
  if (strcmp(name, "mpi") == 0) return mproc__mpi_usable("the MPI backend") == 0;
  return MPROC_EINVAL;
}

int mproc_pool_workers(const mproc_pool *pool) { return pool ? pool->eng.nworkers : MPROC_EINVAL; }

int mproc_pool_close(mproc_pool *pool) {
  if (!pool) return MPROC_EINVAL;
  pthread_mutex_lock(&pool->eng.lock);
  pool->eng.closed = true;
  pthread_mutex_unlock(&pool->eng.lock);
  return 0;
}

static bool nothing_outstanding(void *arg) { return mproc__engine_outstanding(arg) == 0; }

int mproc_pool_join(mproc_pool *pool, double timeout) {
  if (!pool || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  pthread_mutex_lock(&pool->eng.lock);
  int r = mproc__wait_until(&pool->eng, timeout, nothing_outstanding, &pool->eng);
  pthread_mutex_unlock(&pool->eng.lock);
  return r;
}

int mproc_pool_terminate(mproc_pool *pool) {
  if (!pool) return MPROC_EINVAL;
  mproc__engine *e = &pool->eng;
  pthread_mutex_lock(&e->lock);
  mproc__engine_terminate(e);
  mproc__engine_run_callbacks(e);
  pthread_mutex_unlock(&e->lock);
  return 0;
}

int mproc__pool_kept_blocks(mproc_pool *p) {
  pthread_mutex_lock(&p->eng.lock);
  int n = p->eng.nspares;
  pthread_mutex_unlock(&p->eng.lock);
  return n;
}

void mproc__pool_free(mproc__engine *e) {
  mproc__engine_release(e);
  mproc__free((mproc_pool *)((char *)e - offsetof(mproc_pool, eng)));
}

void mproc_pool_destroy(mproc_pool *pool) {
  if (!pool) return;
  mproc__engine *e = &pool->eng;
  mproc__engine_stop(e);
  if (e->arena_ref) mproc__arena_unref();
  e->arena_ref = false;
  /* futures and iterators still held keep the lock they use; the last one released frees the pool */
  pthread_mutex_lock(&e->lock);
  e->destroyed = true;
  bool last = e->holders == 0;
  pthread_mutex_unlock(&e->lock);
  if (last) mproc__pool_free(e);
}

/* ---- submit ---- */

/* Task arguments of at least this many bytes go through the shared arena (process backend only: threads
 * read the job's copy anyway, and the serial backend passes it directly). */
static size_t share_threshold(const mproc__engine *e) {
  if (e->ops->shares_memory || !e->arena_ref) return SIZE_MAX;
  size_t t = e->opts.max_nbytes;
  return t ? t : (size_t)1 << 20;
}

static int resolve_retries(const mproc__engine *e, int r) {
  return r < 0 ? 0 : (r > 0 ? r : e->opts.max_retries);
}

int mproc_pool_submit(mproc_pool *pool, mproc_task_fn fn, const void *arg, size_t arg_len,
                      const mproc_submit_opts *opts, mproc_future **out) {
  static const mproc_submit_opts defaults = {0};
  if (!opts) opts = &defaults;
  if (!pool || !fn || !out || (!arg && arg_len) || !(opts->timeout >= 0) || opts->max_retries < -1)
    return MPROC_EINVAL;
  mproc__engine *e = &pool->eng;
  if (mproc__engine_cannot_kill(e) && opts->timeout > 0) return MPROC_ENOTSUP;
  mproc__job *j = mproc__calloc(1, sizeof *j);
  if (!j) return MPROC_ENOMEM;
  if (arg_len >= share_threshold(e)) {
    /* one copy that the worker reads in place, instead of one streamed through its ring into another */
    int err = 0;
    j->arg_owned = mproc__arena_alloc(arg_len, &err);
    j->arg_shared = j->arg_owned != NULL;
  }
  unsigned char *copy = j->arg_owned;
  if (!copy && arg_len <= sizeof j->arg_inline)
    copy = j->arg_inline;
  else if (!copy)
    copy = j->arg_owned = mproc__malloc(arg_len);
  if (!copy) {
    mproc__free(j);
    return MPROC_ENOMEM;
  }
  if (arg_len) memcpy(copy, arg, arg_len);
  j->kind = JOB_TASK;
  j->fn = fn;
  j->arg = copy;
  j->arg_len = arg_len;
  j->timeout = opts->timeout > 0 ? opts->timeout : e->opts.task_timeout;
  j->retries_left = resolve_retries(e, opts->max_retries);
  j->first = -1;
  mproc_future *f = mproc__future_new(e);
  if (!f) {
    mproc__job_free(j);
    return MPROC_ENOMEM;
  }
  j->owner = f;
  j->task_done = mproc__future_job_done;
  j->worker = -1;
  mproc__engine_call_begins(e);
  pthread_mutex_lock(&e->lock);
  if (e->closed) {
    int code = mproc__pool_refusal(e);
    pthread_mutex_unlock(&e->lock);
    mproc__free(f);
    mproc__job_free(j);
    return code;
  }
  e->holders++; /* the future, until released */
  f->job = j;
  mproc__engine_queue(e, j);
  mproc__engine_kick(e); /* without workers (serial), it runs here and now */
  mproc__engine_run_callbacks(e);
  pthread_mutex_unlock(&e->lock);
  *out = f;
  return 0;
}

int mproc_pool_apply(mproc_pool *pool, mproc_task_fn fn, const void *arg, size_t arg_len, void *out,
                     size_t out_cap, size_t *out_len) {
  if (!out && out_cap) return MPROC_EINVAL;
  mproc_future *f = NULL;
  int r = mproc_pool_submit(pool, fn, arg, arg_len, NULL, &f);
  if (r < 0) return r;
  const void *data;
  size_t len;
  r = mproc_future_result(f, MPROC_FOREVER, &data, &len);
  if (r == 0) {
    if (out_len) *out_len = len;
    if (len > out_cap)
      r = MPROC_EMSGSIZE;
    else if (len)
      memcpy(out, data, len);
  }
  mproc_future_release(f);
  return r;
}

struct async_cbs {
  mproc_result_cb ok;
  mproc_error_cb err;
  void *user;
  bool release;
};

static void async_done(mproc_future *f, void *arg) {
  struct async_cbs *c = arg;
  const void *data;
  size_t len;
  int code = mproc_future_result(f, 0, &data, &len);
  if (code == 0) {
    if (c->ok) c->ok(data, len, c->user);
  } else if (c->err) {
    mproc_outcome o;
    mproc_future_outcome(f, &o);
    c->err(code, o.message, c->user);
  }
  if (c->release) mproc_future_release(f);
  mproc__free(c);
}

int mproc_pool_apply_async(mproc_pool *pool, mproc_task_fn fn, const void *arg, size_t arg_len,
                           mproc_result_cb callback, mproc_error_cb error_callback, void *user,
                           mproc_future **out) {
  struct async_cbs *c = mproc__calloc(1, sizeof *c);
  if (!c) return MPROC_ENOMEM;
  *c = (struct async_cbs){callback, error_callback, user, out == NULL};
  mproc_future *f = NULL;
  int r = mproc_pool_submit(pool, fn, arg, arg_len, NULL, &f);
  if (r < 0) {
    mproc__free(c);
    return r;
  }
  r = mproc_future_add_done_callback(f, async_done, c);
  if (r < 0) {
    /* cannot register: the task still runs, but no callback will; say so */
    mproc__free(c);
    if (!out)
      mproc_future_release(f);
    else
      *out = f;
    return r;
  }
  if (out) *out = f;
  return 0;
}

/* ---- map ---- */

static bool map_done(void *arg) { return ((mproc__map *)arg)->remaining == 0; }

void mproc__map_report(const mproc__map *m, mproc_map_report *rep) {
  if (!rep) return;
  rep->ok = m->ok;
  rep->failed = m->failed;
  rep->cancelled = m->cancelled;
  rep->batches = m->items.batches_sent;
  rep->first_failed_index = m->first_failed;
  rep->first_failure = m->first_outcome;
  snprintf(rep->message, sizeof rep->message, "%s", m->first_msg);
  rep->first_failure.message = rep->message;
  rep->failures_kept = m->failures_kept;
  rep->failures_left_out = m->failures_left_out;
}

/* Frees batches never queued. */
static void free_batches(mproc__job **jobs, size_t nb) {
  for (size_t k = 0; k < nb; k++) {
    mproc__free(jobs[k]->arg_owned);
    mproc__free(jobs[k]);
  }
  mproc__free(jobs);
}

/* Makes the batches for items [first, end) of m, `chunk` items each, or guided sizes when target > 0:
 * about `target` items within the fair share of what is left (mproc__batching_size).  Returns the number
 * made (0 with *err on no memory; nothing is queued). */
static size_t make_batches(const mproc__batching *b, mproc__map *m, size_t first, size_t end, size_t chunk,
                           size_t target, double timeout, int retries, mproc__job ***out, int *err) {
  size_t cap = 16, nb = 0;
  mproc__job **jobs = mproc__malloc(cap * sizeof(mproc__job *));
  if (!jobs) goto oom;
  for (size_t at = first; at < end;) {
    size_t count = target ? mproc__batching_size(b, target, end - at) : chunk;
    if (count > end - at) count = end - at;
    if (count > UINT32_MAX) count = UINT32_MAX;
    if (nb == cap) {
      mproc__job **more = mproc__realloc(jobs, 2 * cap * sizeof(mproc__job *));
      if (!more) goto oom;
      jobs = more;
      cap *= 2;
    }
    mproc__job *j = mproc__batch_new(&m->items, at, count, timeout, retries);
    if (!j) goto oom;
    jobs[nb++] = j;
    at += count;
  }
  *out = jobs;
  return nb;
oom:
  free_batches(jobs, nb);
  *err = MPROC_ENOMEM;
  return 0;
}

/* Queues batches (lock held); the map counts them as sent. */
static void queue_batches(mproc__engine *e, mproc__map *m, mproc__job **jobs, size_t nb) {
  m->items.batches_sent += nb;
  for (size_t b = 0; b < nb; b++) mproc__engine_queue(e, jobs[b]);
  mproc__free(jobs);
  mproc__engine_dispatch(e);
  mproc__engine_wake_manager(e);
}

struct probe_wait {
  mproc__map *m;
  size_t want;
};
static bool probe_done(void *arg) {
  struct probe_wait *p = arg;
  return p->m->items.n - p->m->remaining >= p->want || p->m->items.stopped;
}

struct wave_wait {
  mproc__map *m;
  size_t want;   /* batches to have timed */
  size_t queued; /* items queued so far: once all have ended (failed ones are not timed), wait no more */
};
static bool wave_measured(void *arg) {
  struct wave_wait *w = arg;
  return w->m->items.timed_batches >= w->want || w->m->items.stopped ||
         w->m->items.n - w->m->remaining >= w->queued;
}

/* Waits until pred, ticking progress every interval; MPROC_EINTERRUPTED, -ETIMEDOUT at deadline, or 0. */
static int wait_ticking(mproc__engine *e, mproc__map *m, double deadline, bool (*pred)(void *), void *arg,
                        const mproc__map_hooks *h, double *next_tick) {
  bool ticking = h && h->tick;
  for (;;) {
    double until = ticking && *next_tick < deadline ? *next_tick : deadline;
    int r = mproc__engine_wait(e, &m->cv, NULL, until, pred, arg);
    if (r == MPROC_ETIMEDOUT && ticking && until < deadline) {
      pthread_mutex_unlock(&e->lock);
      h->tick(h->ctx, m, false);
      pthread_mutex_lock(&e->lock);
      *next_tick = mproc__plat_now() + h->interval;
      continue;
    }
    return r;
  }
}

static int check_map_args(const mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                          const void *out, size_t out_size, const mproc_map_opts *opts) {
  if (!pool || !fn || (!in && in_size && n) || (!out && out_size && n) || mproc__map_opts_check(opts) < 0 ||
      in_size > UINT32_MAX || out_size > UINT32_MAX || !mproc__records_fit(n, in_size, out_size))
    return MPROC_EINVAL;
  if (mproc__engine_cannot_kill(&pool->eng) && opts->task_timeout > 0) return MPROC_ENOTSUP;
  return 0;
}

/* A map while it runs: what its steps share. */
typedef struct map_run {
  mproc__engine *e;
  mproc__map *m;
  const mproc__map_hooks *hooks;
  double *next_tick;
  double timeout; /* per task */
  int retries;
  mproc__batching batching; /* its caps */
  double deadline;          /* the whole map's */
} map_run;

/* Parallel's sizing (lock held), measured (face/batching.h): the probe's items are queued; once each
 * worker's first is back, a first wave of two batches per worker is sized from the fastest batch per item,
 * then, once one wave batch per worker is timed, the rest.  A worker's first item is its coldest, so the
 * probe alone can be far too pessimistic for tiny tasks, and the rest is made at once: the wave measures
 * warm batches first.  Returns 0, or what ended the wait (a timeout, Ctrl-C, no memory); what was never
 * queued is then cancelled. */
static int probe_and_size(map_run *r, size_t nprobe) {
  mproc__engine *e = r->e;
  mproc__map *m = r->m;
  const mproc__batching *b = &r->batching;
  size_t n = m->items.n;
  m->notify_each = true;
  /* measured once each worker's first probe item is back: its second keeps it busy meanwhile */
  size_t want = (size_t)e->nworkers < nprobe ? (size_t)e->nworkers : nprobe;
  struct probe_wait pw = {m, want};
  int wr = wait_ticking(e, m, r->deadline, probe_done, &pw, r->hooks, r->next_tick);
  int err = 0;
  size_t queued = nprobe;
  for (int pass = 0; pass < 2 && wr == 0 && !m->items.stopped && !err && queued < n; pass++) {
    /* nothing timed (the probe's workers died): nothing to go by but the caps */
    size_t target = mproc__batching_target(b, m->items.timed_batches ? m->items.best_item_ns : 0);
    size_t wave = pass == 0 ? mproc__batching_wave(b, target, n - queued) : 0;
    size_t end = wave ? queued + wave : n;
    mproc__job **jobs = NULL;
    pthread_mutex_unlock(&e->lock);
    /* the wave's batches all of the target size; the rest guided (shrinking toward the end) */
    size_t nb = make_batches(b, m, queued, end, wave ? target : 0, wave ? 0 : target, r->timeout, r->retries,
                             &jobs, &err);
    pthread_mutex_lock(&e->lock);
    if (err) break;
    queue_batches(e, m, jobs, nb);
    queued = end;
    if (queued == n) break;
    /* the rest of the wave keeps the workers busy while it is measured */
    struct wave_wait ww = {m, mproc__batching_wave_timed(b, nprobe), queued};
    wr = wait_ticking(e, m, r->deadline, wave_measured, &ww, r->hooks, r->next_tick);
  }
  m->notify_each = false;
  if (queued < n) {
    /* the rest was never queued: it is cancelled */
    mproc_outcome c = {
        .kind = MPROC_OUTCOME_CANCELLED, .code = MPROC_ECANCELED, .exit_code = -1, .worker = -1};
    mproc__map_fail(m, (int64_t)queued, n - queued, &c, NULL);
    if (err && !wr) wr = err;
  }
  return wr;
}

/* The bytes an item of a map over items of any size takes in a worker's ring: its address and length when
 * workers read it in place, else its length and its bytes, these judged from up to 64 items spread over
 * the input.  Batches are bounded by it as fixed records are: without the bound a batch of short strings
 * held an eighth of a worker's share (3 MB for a million of them), each worker's argument block and the
 * engine's length block grew to it in memory never touched before, and a map of two million strings wrote
 * more of that than of its results. */
static size_t var_item_wire(const mproc__items *it) {
  if (it->in_shared) return 16;
  size_t n = it->n, k = n < 64 ? n : 64, bytes = 0;
  for (size_t j = 0; j < k; j++) {
    size_t len;
    (void)it->item_at(it, (int64_t)(j * (n / k)), &len);
    bytes += len;
  }
  return 8 + (k ? bytes / k : 0);
}

/* Runs map m: batches (probed and sized for Parallel, else guided or of the caller's size),
 * then the wait.  0, or a code for the whole call: the pool's (closed, lost), no memory, or what ended the
 * wait (a timeout, Ctrl-C), after which nothing of the map runs or writes any more. */
static int run_map(mproc__engine *e, mproc__map *m, const mproc__map_hooks *hooks, double *next_tick) {
  const mproc_map_opts *opts = &m->opts;
  size_t n = m->items.n;
  map_run r = {.e = e,
               .m = m,
               .hooks = hooks,
               .next_tick = next_tick,
               .timeout = opts->task_timeout > 0 ? opts->task_timeout : e->opts.task_timeout,
               .retries = resolve_retries(e, opts->max_retries)};
  mproc__engine_call_begins(e);
  mproc__map_share(e, &m->items);
  size_t in_wire = m->items.var_in ? var_item_wire(&m->items) : m->items.in_shared ? 0 : m->items.in_size;
  mproc__batching_init(&r.batching, (size_t)e->nworkers, e->ring_size, in_wire,
                       m->items.out_shared ? 0 : m->items.out_size, 0);
  bool probe = hooks && hooks->probe && opts->chunk_size == 0 && n > 0;
  /* a probe: one-item batches, two per worker, whose measured durations size the rest */
  size_t nprobe = probe ? mproc__batching_probe(&r.batching, n) : 0;
  size_t chunk = opts->chunk_size ? opts->chunk_size : mproc__batching_static_chunk(&r.batching, n);
  int err = 0;
  mproc__job **jobs = NULL;
  /* an automatic chunk size is a target: batches shrink toward the end (guided), so no worker idles while
   * another finishes a long last batch */
  size_t guided = probe || opts->chunk_size ? 0 : chunk;
  size_t nb = make_batches(&r.batching, m, 0, probe ? nprobe : n, probe ? 1 : chunk, guided, r.timeout,
                           r.retries, &jobs, &err);
  if (err) return err;
  pthread_mutex_lock(&e->lock);
  if (e->closed) {
    int code = mproc__pool_refusal(e);
    pthread_mutex_unlock(&e->lock);
    free_batches(jobs, nb);
    return code;
  }
  mproc__engine_items_begin(e, &m->items);
  queue_batches(e, m, jobs, nb);
  r.deadline = opts->timeout > 0 ? mproc__deadline(opts->timeout) : INFINITY;
  int wr = probe && nprobe < n ? probe_and_size(&r, nprobe) : 0;
  if (wr == 0) wr = wait_ticking(e, m, r.deadline, map_done, m, hooks, next_tick);
  if (wr < 0) {
    /* the caller gives up: nothing of this map may run or write into out once we return */
    mproc__engine_abort_map(e, &m->items);
    mproc__cond_wait_until(&m->cv, &e->lock, NULL, INFINITY, map_done, m);
  }
  mproc__engine_run_callbacks(e);
  pthread_mutex_unlock(&e->lock);
  return wr;
}

int mproc__pool_map_ex(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, const mproc_map_opts *opts, mproc_map_report *report,
                       const mproc__map_hooks *hooks) {
  static const mproc_map_opts defaults = {0};
  if (!opts) opts = &defaults;
  int r = check_map_args(pool, fn, in, n, in_size, out, out_size, opts);
  if (r < 0) return r;
  mproc__engine *e = &pool->eng;
  mproc__map m;
  mproc__map_init(&m, e, fn, n);
  m.items.in = in;
  m.items.in_size = in_size;
  m.items.out = out;
  m.items.out_size = out_size;
  m.items.seed = opts->seed;
  m.remaining = n;
  m.opts = *opts;
  m.max_failures = opts->max_failures;
  if (hooks && hooks->var) mproc__map_set_var(&m, hooks->var);
  double next_tick = hooks && hooks->tick ? mproc__plat_now() + hooks->interval : INFINITY;
  int abort_code = run_map(e, &m, hooks, &next_tick);
  /* nothing ran: the pool's code or no memory, and no progress line */
  if (abort_code < 0 && m.remaining == n && m.items.batches_sent == 0) {
    mproc__map_end(&m);
    return abort_code;
  }
  if (hooks && hooks->tick) hooks->tick(hooks->ctx, &m, true);
  mproc__map_end(&m);
  mproc__map_sort_failures(&m);
  mproc__map_report(&m, report);
  if (abort_code) return abort_code;
  if (m.failed) return m.first_outcome.code;
  if (m.cancelled) return MPROC_ECANCELED;
  return 0;
}

int mproc_pool_map(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size, void *out,
                   size_t out_size, const mproc_map_opts *opts, mproc_map_report *report) {
  return mproc__pool_map_ex(pool, fn, in, n, in_size, out, out_size, opts, report, NULL);
}

/* ---- concurrent.futures names ---- */

int mproc_executor_create(mproc_executor **out, const mproc_pool_opts *opts) {
  return mproc_pool_create(out, opts);
}

int mproc_executor_submit(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t arg_len,
                          mproc_future **out) {
  return mproc_pool_submit(ex, fn, arg, arg_len, NULL, out);
}

int mproc_executor_map(mproc_executor *ex, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, const mproc_map_opts *opts, mproc_map_report *report) {
  return mproc_pool_map(ex, fn, in, n, in_size, out, out_size, opts, report);
}

int mproc_executor_shutdown(mproc_executor *ex, int wait, int cancel_futures) {
  if (!ex) return MPROC_EINVAL;
  mproc__engine *e = &ex->eng;
  pthread_mutex_lock(&e->lock);
  e->closed = true;
  if (cancel_futures) mproc__engine_cancel_pending(e);
  mproc__engine_run_callbacks(e);
  pthread_mutex_unlock(&e->lock);
  return wait ? mproc_pool_join(ex, MPROC_FOREVER) : 0;
}

void mproc_executor_destroy(mproc_executor *ex) { mproc_pool_destroy(ex); }

/* ---- scoped pools ---- */

static int with_pool(const mproc_pool_opts *opts, mproc_pool_body body, void *user, bool wait) {
  if (!body) return MPROC_EINVAL;
  mproc_pool *p;
  int r = mproc_pool_create(&p, opts);
  if (r < 0) return r;
  r = body(p, user);
  if (wait)
    (void)mproc_executor_shutdown(p, 1, 0);
  else
    (void)mproc_pool_terminate(p);
  mproc_pool_destroy(p);
  return r;
}

int mproc_pool_with(const mproc_pool_opts *opts, mproc_pool_body body, void *user) {
  return with_pool(opts, body, user, false);
}

int mproc_executor_with(const mproc_pool_opts *opts, mproc_pool_body body, void *user) {
  return with_pool(opts, body, user, true);
}

int mproc__pool_refusal(const mproc__engine *e) {
  if (!e->broken) return MPROC_ECLOSED;
  mproc__env_error("the pool is lost: %s", e->broken_msg);
  return e->broken;
}
