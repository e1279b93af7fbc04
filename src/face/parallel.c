/* parallel.c: joblib's Parallel: n_jobs, automatic batching (through streams), progress output and
 * callbacks, and a pool reused between one-call runs. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"

struct mproc_parallel {
  mproc_parallel_opts opts;
  mproc_pool *pool;
  bool shared; /* the library's reusable pool: not ours to destroy */
};

static int resolve_n_jobs(int n_jobs, int *out) {
  int cpus = mproc_cpu_count();
  if (n_jobs > 0) {
    if (n_jobs > 4096) return MPROC_EINVAL;
    *out = n_jobs;
  } else if (n_jobs < 0) {
    int n = cpus + 1 + n_jobs;
    *out = n < 1 ? 1 : n;
  } else {
    *out = 0; /* the pool applies MPROC_WORKERS, else the CPUs */
  }
  return 0;
}

static int check_opts(const mproc_parallel_opts *o) {
  if (!(o->timeout >= 0) || !(o->progress_interval >= 0) || o->verbose < 0 ||
      (unsigned)o->on_error > MPROC_ON_ERROR_STOP_AFTER ||
      (o->on_error == MPROC_ON_ERROR_STOP_AFTER && o->max_failures < 1) ||
      (!o->init_arg && o->init_arg_len) || (!o->initializer && o->init_arg_len))
    return MPROC_EINVAL;
  return 0;
}

static int make_pool(const mproc_parallel_opts *o, mproc_pool **pool) {
  int workers;
  int r = resolve_n_jobs(o->n_jobs, &workers);
  if (r < 0) return r;
  return mproc_pool_create(pool, &(mproc_pool_opts){.workers = workers,
                                                    .backend = o->backend,
                                                    .initializer = o->initializer,
                                                    .init_arg = o->init_arg,
                                                    .init_arg_len = o->init_arg_len});
}

int mproc_parallel_create(mproc_parallel **out, const mproc_parallel_opts *opts) {
  static const mproc_parallel_opts defaults = {0};
  if (!opts) opts = &defaults;
  if (!out) return MPROC_EINVAL;
  int r = check_opts(opts);
  if (r < 0) return r;
  mproc_parallel *par = mproc__calloc(1, sizeof *par);
  if (!par) return MPROC_ENOMEM;
  par->opts = *opts;
  r = make_pool(opts, &par->pool);
  if (r < 0) {
    mproc__free(par);
    return r;
  }
  *out = par;
  return 0;
}

int mproc_parallel_n_jobs(const mproc_parallel *par) {
  return par ? mproc_pool_workers(par->pool) : MPROC_EINVAL;
}

void mproc_parallel_destroy(mproc_parallel *par) {
  if (!par) return;
  if (!par->shared) mproc_pool_destroy(par->pool);
  mproc__free(par);
}

/* ---- progress ---- */

struct progress_ctx {
  mproc_parallel *par;
  double start, interval, last_line;
  size_t total;
  int workers;
  uint64_t *busy0;
  double *busy;
  bool tty;
};

static void format_time(char *buf, size_t cap, double s) {
  if (s < 0) {
    snprintf(buf, cap, "?");
  } else if (s < 60) {
    snprintf(buf, cap, "%.1fs", s);
  } else {
    snprintf(buf, cap, "%dmin %02ds", (int)(s / 60), (int)s % 60);
  }
}

static void tick(void *ctx, const mproc__map *m, bool final) {
  struct progress_ctx *p = ctx;
  mproc__engine *e = &p->par->pool->eng;
  mproc_progress pr = {.total = p->total, .workers = p->workers, .busy = p->busy};
  pthread_mutex_lock(&e->lock);
  pr.done = m->n - m->remaining;
  pr.failed = m->failed;
  pr.in_flight = m->dispatched > pr.done ? m->dispatched - pr.done : 0;
  for (int i = 0; i < p->workers && e->ws; i++) p->busy[i] = (double)(e->ws[i].busy_ns - p->busy0[i]) * 1e-9;
  pthread_mutex_unlock(&e->lock);
  if (final) pr.in_flight = 0;
  double now = mproc__plat_now();
  pr.elapsed = now - p->start;
  pr.rate = pr.elapsed > 0 ? (double)pr.done / pr.elapsed : 0;
  pr.eta = pr.rate > 0 && pr.done > 0 ? (double)(pr.total - pr.done) / pr.rate : -1;
  if (final) pr.eta = 0;
  if (p->par->opts.progress) p->par->opts.progress(&pr, p->par->opts.progress_user);
  int verbose = p->par->opts.verbose;
  if (verbose > 0) {
    char el[32], rem[32];
    format_time(el, sizeof el, pr.elapsed);
    format_time(rem, sizeof rem, pr.eta);
    if (p->tty && verbose < 10) {
      /* one line, redrawn in place */
      int width = 30, fill = p->total ? (int)((double)pr.done * width / (double)p->total) : width;
      char bar[64];
      for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
      bar[width] = '\0';
      fprintf(stderr, "\r[%s] %3d%% %zu/%zu %.0f it/s elapsed %s ETA %s%s", bar,
              p->total ? (int)(100.0 * (double)pr.done / (double)p->total) : 100, pr.done, p->total, pr.rate,
              el, final ? "0s" : rem, final ? "\n" : "   ");
    } else if (final) {
      fprintf(stderr, "[Parallel(n_jobs=%d)]: Done %zu out of %zu | elapsed: %s finished\n", p->workers,
              pr.done, p->total, el);
    } else {
      fprintf(stderr, "[Parallel(n_jobs=%d)]: Done %zu out of %zu | elapsed: %s remaining: %s\n", p->workers,
              pr.done, p->total, el, rem);
    }
    fflush(stderr);
  }
}

int mproc_parallel_run(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, int *item_codes, mproc_map_report *report) {
  if (!par || !fn || (!out && out_size && n)) return MPROC_EINVAL;
  const mproc_parallel_opts *o = &par->opts;
  struct progress_ctx p = {
      .par = par, .start = mproc__plat_now(), .total = n, .workers = mproc_pool_workers(par->pool)};
  mproc__map_hooks hooks = {.probe = true, .interval = o->progress_interval > 0 ? o->progress_interval : 0.2};
  if (o->verbose > 0 || o->progress) {
    p.busy0 = mproc__calloc((size_t)p.workers, sizeof *p.busy0);
    p.busy = mproc__calloc((size_t)p.workers, sizeof *p.busy);
    if (!p.busy0 || !p.busy) {
      mproc__free(p.busy0);
      mproc__free(p.busy);
      return MPROC_ENOMEM;
    }
    mproc__engine *e = &par->pool->eng;
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < p.workers && e->ws; i++) p.busy0[i] = e->ws[i].busy_ns;
    pthread_mutex_unlock(&e->lock);
    p.tty = isatty(STDERR_FILENO);
    hooks.tick = tick;
    hooks.ctx = &p;
  }
  mproc_map_opts mo = {.chunk_size = o->batch_size,
                       .task_timeout = o->timeout,
                       .on_error = o->on_error,
                       .max_failures = o->max_failures,
                       .item_codes = item_codes,
                       .seed = o->seed};
  int r = mproc__pool_map_ex(par->pool, fn, in, n, in_size, out, out_size, &mo, report, &hooks);
  mproc__free(p.busy0);
  mproc__free(p.busy);
  return r;
}

int mproc_parallel_stream(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                          size_t out_size, mproc_return_as order, mproc_stream **out) {
  if (!par || (order != MPROC_RETURN_GENERATOR && order != MPROC_RETURN_GENERATOR_UNORDERED))
    return MPROC_EINVAL;
  const mproc_parallel_opts *o = &par->opts;
  mproc_stream_opts so = {.chunk_size = o->batch_size,
                          .max_in_flight = o->pre_dispatch,
                          .task_timeout = o->timeout,
                          .seed = o->seed};
  return order == MPROC_RETURN_GENERATOR
             ? mproc_pool_imap(par->pool, fn, in, n, in_size, out_size, &so, out)
             : mproc_pool_imap_unordered(par->pool, fn, in, n, in_size, out_size, &so, out);
}

/* ---- the reusable pool of the one-call form ---- */

static struct {
  pthread_mutex_t lock;
  mproc_pool *pool;
  int n_jobs;
  mproc_backend backend;
  mproc_task_fn initializer;
  bool atexit_set;
  pid_t owner;
  int users; /* calls running on it: it is replaced only when none is */
} reusable = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, false, 0, 0};

void mproc_parallel_shutdown(void) {
  pthread_mutex_lock(&reusable.lock);
  if (reusable.pool && reusable.owner == getpid()) mproc_pool_destroy(reusable.pool);
  reusable.pool = NULL;
  reusable.users = 0;
  pthread_mutex_unlock(&reusable.lock);
}

int mproc_parallel_call(mproc_task_fn fn, const void *in, size_t n, size_t in_size, void *out,
                        size_t out_size, const mproc_parallel_opts *opts, mproc_map_report *report) {
  static const mproc_parallel_opts defaults = {0};
  if (!opts) opts = &defaults;
  int r = check_opts(opts);
  if (r < 0) return r;
  pthread_mutex_lock(&reusable.lock);
  if (reusable.pool && reusable.owner != getpid()) {
    reusable.pool = NULL; /* inherited through fork: not ours */
    reusable.users = 0;
  }
  bool fits = reusable.pool && reusable.n_jobs == opts->n_jobs && reusable.backend == opts->backend &&
              reusable.initializer == opts->initializer;
  if (!fits && reusable.pool && reusable.users > 0) {
    /* another call runs on the shared pool with other settings: this one gets a pool of its own */
    pthread_mutex_unlock(&reusable.lock);
    mproc_parallel *own;
    r = mproc_parallel_create(&own, opts);
    if (r < 0) return r;
    r = mproc_parallel_run(own, fn, in, n, in_size, out, out_size, NULL, report);
    mproc_parallel_destroy(own);
    return r;
  }
  if (!fits) {
    if (reusable.pool) mproc_pool_destroy(reusable.pool);
    reusable.pool = NULL;
    r = make_pool(opts, &reusable.pool);
    if (r < 0) {
      reusable.pool = NULL;
      pthread_mutex_unlock(&reusable.lock);
      return r;
    }
    reusable.n_jobs = opts->n_jobs;
    reusable.backend = opts->backend;
    reusable.initializer = opts->initializer;
    reusable.owner = getpid();
    if (!reusable.atexit_set) reusable.atexit_set = atexit(mproc_parallel_shutdown) == 0;
  }
  reusable.users++;
  mproc_parallel par = {.opts = *opts, .pool = reusable.pool, .shared = true};
  pthread_mutex_unlock(&reusable.lock);
  r = mproc_parallel_run(&par, fn, in, n, in_size, out, out_size, NULL, report);
  pthread_mutex_lock(&reusable.lock);
  reusable.users--;
  pthread_mutex_unlock(&reusable.lock);
  return r;
}
