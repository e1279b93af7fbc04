/* parallel.c: joblib's Parallel: n_jobs, automatic batching (through streams), progress output and
 * callbacks, and a pool reused between one-call runs. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/env.h"
#include "face/face.h"

struct mproc_parallel {
  mproc_parallel_opts opts;
  mproc_pool *pool;
  bool shared; /* the library's reusable pool: not ours to destroy */
};

/* n_jobs as joblib counts it, of the CPUs of the pool's backend: an MPI pool's are the cluster's. */
static int resolve_n_jobs(int n_jobs, mproc_backend backend, int *out) {
  /* MPROC_BACKEND for a default backend; a bad value is the pool's creation's to report */
  if (backend == MPROC_BACKEND_DEFAULT && mproc__env_backend(&backend) < 0) backend = MPROC_BACKEND_PROCESS;
  int cpus = mproc__backend_cpus(backend);
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
  if (!(o->timeout >= 0) || !(o->progress_interval >= 0) ||
      (unsigned)o->on_error > MPROC_ON_ERROR_STOP_AFTER ||
      (o->on_error == MPROC_ON_ERROR_STOP_AFTER && o->max_failures < 1) ||
      (!o->init_arg && o->init_arg_len) || (!o->initializer && o->init_arg_len) ||
      (!o->failures && o->failures_cap))
    return MPROC_EINVAL;
  return 0;
}

static int make_pool(const mproc_parallel_opts *o, mproc_pool **pool) {
  int workers;
  int r = resolve_n_jobs(o->n_jobs, o->backend, &workers);
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
  int verbose;                /* resolved: the option, else MPROC_VERBOSE */
  uint64_t *busy0, *busy_now; /* each worker's busy time at the start, and now (2 x workers) */
  double *busy;
  bool tty;
  bool stopped;       /* the map stopped itself after failures (on_error) */
  bool ended;         /* the final tick came */
  bool unknown_total; /* a lazy input: total is known only at the end */
  mproc_progress end; /* the figures of the final tick, for the last line */
};

/* The level of progress output: an explicit option wins (negative: silent); 0 defers to MPROC_VERBOSE, as
 * the cache does. */
static int resolve_verbose(int opt) {
  if (opt != 0) return opt < 0 ? 0 : opt;
  return mproc__env_verbose();
}

static void format_time(char *buf, size_t cap, double s) {
  if (s < 0) {
    snprintf(buf, cap, "?");
  } else if (s < 60) {
    snprintf(buf, cap, "%.1fs", s);
  } else {
    snprintf(buf, cap, "%dmin %02ds", (int)(s / 60), (int)s % 60);
  }
}

/* The bar: done items only (failed ones ran; cancelled ones did not), so it reaches 100% only when all
 * the work was done. */
static void draw_bar(const struct progress_ctx *p, const mproc_progress *pr, const char *tail) {
  int width = 30, fill = p->total ? (int)((double)pr->done * width / (double)p->total) : width;
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  char el[32];
  format_time(el, sizeof el, pr->elapsed);
  fprintf(stderr, "\r[%s] %3d%% %zu/%zu %.0f it/s elapsed %s%s", bar,
          p->total ? (int)(100.0 * (double)pr->done / (double)p->total) : 100, pr->done, p->total, pr->rate,
          el, tail);
}

static void tick(void *ctx, const mproc__map *m, bool final) {
  struct progress_ctx *p = ctx;
  mproc__engine *e = &p->par->pool->eng;
  if (final && p->unknown_total) p->total = m->ok + m->failed + m->cancelled; /* the input has ended */
  mproc_progress pr = {.total = p->total, .workers = p->workers, .busy = p->busy};
  pthread_mutex_lock(&e->lock);
  size_t completed = m->ok + m->failed + m->cancelled;
  pr.done = m->ok + m->failed;
  pr.failed = m->failed;
  pr.cancelled = m->cancelled;
  pr.in_flight = m->items.dispatched > completed ? m->items.dispatched - completed : 0;
  p->stopped = m->items.stopped;
  mproc__engine_worker_busy_ns(e, p->busy_now);
  for (int i = 0; i < p->workers; i++) p->busy[i] = (double)(p->busy_now[i] - p->busy0[i]) * 1e-9;
  pthread_mutex_unlock(&e->lock);
  if (final) pr.in_flight = 0;
  double now = mproc__plat_now();
  pr.elapsed = now - p->start;
  pr.rate = pr.elapsed > 0 ? (double)pr.done / (double)pr.elapsed : 0;
  size_t left = pr.total - pr.done - pr.cancelled;
  pr.eta = pr.rate > 0 && pr.done > 0 && !p->unknown_total ? (double)left / pr.rate : -1;
  if (final) pr.eta = 0;
  if (p->par->opts.progress) p->par->opts.progress(&pr, p->par->opts.progress_user);
  if (final) {
    p->end = pr; /* the last line waits for the map's return code (finish_line) */
    p->ended = true;
    return;
  }
  if (p->verbose > 0) {
    char el[32], rem[32];
    format_time(el, sizeof el, pr.elapsed);
    format_time(rem, sizeof rem, pr.eta);
    if (p->unknown_total) { /* a lazy input: counts without a total, as joblib prints for a generator */
      fprintf(stderr, "%s[Parallel(n_jobs=%d)]: Done %zu tasks | elapsed: %s%s",
              p->tty && p->verbose < 10 ? "\r" : "", p->workers, pr.done, el,
              p->tty && p->verbose < 10 ? "   " : "\n");
    } else if (p->tty && p->verbose < 10) {
      char tail[64];
      snprintf(tail, sizeof tail, " ETA %s   ", rem);
      draw_bar(p, &pr, tail); /* one line, redrawn in place */
    } else {
      fprintf(stderr, "[Parallel(n_jobs=%d)]: Done %zu out of %zu | elapsed: %s remaining: %s\n", p->workers,
              pr.done, p->total, el, rem);
    }
    fflush(stderr);
  }
}

/* The last line says how the run ended, as GNU parallel's and tqdm's do: joblib's "finished" when every
 * item succeeded, else the counts and why it stopped. */
static void finish_line(struct progress_ctx *p, int code) {
  const mproc_progress *pr = &p->end;
  const mproc_parallel_opts *o = &p->par->opts;
  char how[160], el[32];
  format_time(el, sizeof el, pr->elapsed);
  size_t ok = pr->done - pr->failed;
  if (code == MPROC_EINTERRUPTED) {
    snprintf(how, sizeof how, "interrupted: %zu ok, %zu failed, %zu cancelled", ok, pr->failed,
             pr->cancelled);
  } else if (p->stopped && pr->failed > 0) {
    size_t limit = o->on_error == MPROC_ON_ERROR_STOP_AFTER ? (size_t)o->max_failures : 1;
    snprintf(how, sizeof how, "stopped after %zu failure%s: %zu ok, %zu failed, %zu cancelled", limit,
             limit == 1 ? "" : "s", ok, pr->failed, pr->cancelled);
  } else if (pr->failed > 0 || pr->cancelled > 0) {
    snprintf(how, sizeof how, "finished: %zu ok, %zu failed, %zu cancelled", ok, pr->failed, pr->cancelled);
  } else {
    snprintf(how, sizeof how, "finished");
  }
  if (p->tty && p->verbose < 10) {
    char tail[192];
    snprintf(tail, sizeof tail, " %s\n", how);
    draw_bar(p, pr, tail);
  } else {
    fprintf(stderr, "[Parallel(n_jobs=%d)]: Done %zu out of %zu | elapsed: %s %s\n", p->workers, pr->done,
            p->total, el, how);
  }
  fflush(stderr);
}

/* The list form over n records, or over items (items != NULL: results into *results). */
static int run(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n, size_t in_size, void *out,
               size_t out_size, int *item_codes, mproc_map_report *report, const mproc_items *items,
               mproc_results **results) {
  const mproc_parallel_opts *o = &par->opts;
  struct progress_ctx p = {.par = par,
                           .start = mproc__plat_now(),
                           .total = n,
                           .unknown_total = items && items->next,
                           .workers = mproc_pool_workers(par->pool),
                           .verbose = resolve_verbose(o->verbose)};
  mproc__map_hooks hooks = {.probe = true, .interval = o->progress_interval > 0 ? o->progress_interval : 0.2};
  if (p.verbose > 0 || o->progress) {
    p.busy0 = mproc__calloc(2 * (size_t)p.workers, sizeof *p.busy0);
    p.busy = mproc__calloc((size_t)p.workers, sizeof *p.busy);
    if (!p.busy0 || !p.busy) {
      mproc__free(p.busy0);
      mproc__free(p.busy);
      return MPROC_ENOMEM;
    }
    mproc__engine *e = &par->pool->eng;
    pthread_mutex_lock(&e->lock);
    p.busy_now = p.busy0 + p.workers;
    mproc__engine_worker_busy_ns(e, p.busy0);
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
                       .seed = o->seed,
                       .failures = o->failures,
                       .failures_cap = o->failures_cap};
  int r = items ? mproc__map_items(par->pool, fn, items, &mo, results, report, &hooks)
                : mproc__pool_map_ex(par->pool, fn, in, n, in_size, out, out_size, &mo, report, &hooks);
  /* a call refused before it ran (bad arguments, a closed pool) had no final tick and prints nothing */
  if (p.verbose > 0 && p.ended) finish_line(&p, r);
  mproc__free(p.busy0);
  mproc__free(p.busy);
  return r;
}

int mproc_parallel_run(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, int *item_codes, mproc_map_report *report) {
  if (!par || !fn || (!out && out_size && n)) return MPROC_EINVAL;
  return run(par, fn, in, n, in_size, out, out_size, item_codes, report, NULL, NULL);
}

int mproc_parallel_run_items(mproc_parallel *par, mproc_task_fn fn, const mproc_items *in,
                             mproc_results **out, mproc_map_report *report) {
  if (out) *out = NULL;
  if (!par || !fn || !out || mproc__items_check(in) < 0) return MPROC_EINVAL;
  return run(par, fn, NULL, in->next ? 0 : in->n, 0, NULL, 0, NULL, report, in, out);
}

/* A generator form's stream options from Parallel's: batch size, pre_dispatch, timeout, seed. */
static mproc_stream_opts stream_opts(const mproc_parallel *par) {
  const mproc_parallel_opts *o = &par->opts;
  return (mproc_stream_opts){.chunk_size = o->batch_size,
                             .max_in_flight = o->pre_dispatch,
                             .task_timeout = o->timeout,
                             .seed = o->seed};
}

static bool generator_order(mproc_return_as order) {
  return order == MPROC_RETURN_GENERATOR || order == MPROC_RETURN_GENERATOR_UNORDERED;
}

int mproc_parallel_stream(mproc_parallel *par, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                          size_t out_size, mproc_return_as order, mproc_stream **out) {
  if (!par || !generator_order(order)) return MPROC_EINVAL;
  mproc_stream_opts so = stream_opts(par);
  return order == MPROC_RETURN_GENERATOR
             ? mproc_pool_imap(par->pool, fn, in, n, in_size, out_size, &so, out)
             : mproc_pool_imap_unordered(par->pool, fn, in, n, in_size, out_size, &so, out);
}

/* ---- the reusable pool of the one-call form ---- */

/* Set in a worker's task-running thread: a pool kept there would outlive it (workers leave through _exit,
 * so no atexit runs, and its template would be orphaned), and the thread backend's call would share the
 * pool whose worker it is busy. */

static struct {
  pthread_mutex_t lock;
  mproc_pool *pool;
  int n_jobs;
  mproc_backend backend;
  mproc_task_fn initializer;
  void *init_arg; /* a copy of the bytes: they are part of what must match */
  size_t init_arg_len;
  bool atexit_set;
  pid_t owner;
  int users; /* calls running on it: it is replaced only when none is */
} reusable = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, NULL, 0, false, 0, 0};

/* Forgets the kept pool (lock held), destroying it if this process made it. */
static void drop_reusable(void) {
  if (reusable.pool && reusable.owner == getpid()) mproc_pool_destroy(reusable.pool);
  reusable.pool = NULL;
  reusable.users = 0;
  mproc__free(reusable.init_arg);
  reusable.init_arg = NULL;
  reusable.init_arg_len = 0;
}

void mproc_parallel_shutdown(void) {
  pthread_mutex_lock(&reusable.lock);
  drop_reusable();
  pthread_mutex_unlock(&reusable.lock);
}

static bool reusable_fits(const mproc_parallel_opts *o) {
  /* a fork server's pool only while the server runs: after mproc_shutdown() a new pool is forked from the
   * caller, and sees what the kept one would not */
  return reusable.pool && reusable.n_jobs == o->n_jobs && reusable.backend == o->backend &&
         (reusable.pool->eng.ops != &mproc__backend_forkserver || mproc__forkserver_running()) &&
         reusable.initializer == o->initializer && reusable.init_arg_len == o->init_arg_len &&
         (o->init_arg_len == 0 || memcmp(reusable.init_arg, o->init_arg, o->init_arg_len) == 0);
}

/* Whether a pool may serve later calls without giving stale results: its workers must not hold a copy of
 * the caller's memory taken when it was made.  Threads see the live memory, the serial backend runs in the
 * caller, the fork server's workers see the program as at mproc_init() whatever pool they belong to, and an
 * exec'd image sees only its arguments; a forked template is the one snapshot a new pool would refresh. */
static bool keepable(mproc_pool *pool) { return pool->eng.ops != &mproc__backend_fork; }

/* One call of the one-call form: records (in, n, in_size, out, out_size) or items (into results). */
struct one_call {
  mproc_task_fn fn;
  const void *in;
  size_t n, in_size;
  void *out;
  size_t out_size;
  const mproc_items *items;
  mproc_results **results;
  mproc_map_report *report;
};

static int run_call(mproc_parallel *par, const struct one_call *c) {
  return c->items
             ? mproc_parallel_run_items(par, c->fn, c->items, c->results, c->report)
             : mproc_parallel_run(par, c->fn, c->in, c->n, c->in_size, c->out, c->out_size, NULL, c->report);
}

static int call(const mproc_parallel_opts *opts, const struct one_call *c) {
  static const mproc_parallel_opts defaults = {0};
  if (!opts) opts = &defaults;
  int r = check_opts(opts);
  if (r < 0) return r;
  pthread_mutex_lock(&reusable.lock);
  if (reusable.pool && reusable.owner != getpid()) {
    reusable.pool = NULL; /* inherited through fork: not ours */
    drop_reusable();
  }
  if (!mproc__task_in_worker() && reusable_fits(opts)) {
    reusable.users++;
    mproc_parallel par = {.opts = *opts, .pool = reusable.pool, .shared = true};
    pthread_mutex_unlock(&reusable.lock);
    r = run_call(&par, c);
    pthread_mutex_lock(&reusable.lock);
    reusable.users--;
    pthread_mutex_unlock(&reusable.lock);
    return r;
  }
  pthread_mutex_unlock(&reusable.lock);
  /* a pool for this call, kept afterwards if that is safe and no call runs on the one kept now */
  mproc_parallel *own;
  r = mproc_parallel_create(&own, opts);
  if (r < 0) return r;
  r = run_call(own, c);
  if (mproc__task_in_worker() || !keepable(own->pool)) {
    mproc_parallel_destroy(own);
    return r;
  }
  void *arg = opts->init_arg_len ? mproc__malloc(opts->init_arg_len) : NULL;
  pthread_mutex_lock(&reusable.lock);
  if ((opts->init_arg_len && !arg) || (reusable.pool && reusable.users > 0) || reusable_fits(opts)) {
    pthread_mutex_unlock(&reusable.lock);
    mproc__free(arg);
    mproc_parallel_destroy(own);
    return r;
  }
  drop_reusable();
  if (arg) memcpy(arg, opts->init_arg, opts->init_arg_len);
  reusable.pool = own->pool;
  reusable.n_jobs = opts->n_jobs;
  reusable.backend = opts->backend;
  reusable.initializer = opts->initializer;
  reusable.init_arg = arg;
  reusable.init_arg_len = opts->init_arg_len;
  reusable.owner = getpid();
  if (!reusable.atexit_set) reusable.atexit_set = atexit(mproc_parallel_shutdown) == 0;
  pthread_mutex_unlock(&reusable.lock);
  mproc__free(own); /* the pool is the library's now */
  return r;
}

int mproc_parallel_call(mproc_task_fn fn, const void *in, size_t n, size_t in_size, void *out,
                        size_t out_size, const mproc_parallel_opts *opts, mproc_map_report *report) {
  struct one_call c = {
      .fn = fn, .in = in, .n = n, .in_size = in_size, .out = out, .out_size = out_size, .report = report};
  return call(opts, &c);
}

int mproc_parallel_call_items(mproc_task_fn fn, const mproc_items *in, mproc_results **out,
                              const mproc_parallel_opts *opts, mproc_map_report *report) {
  if (out) *out = NULL;
  if (!fn || !out || mproc__items_check(in) < 0) return MPROC_EINVAL;
  struct one_call c = {.fn = fn, .items = in, .results = out, .report = report};
  return call(opts, &c);
}

int mproc_parallel_stream_items(mproc_parallel *par, mproc_task_fn fn, const mproc_items *in,
                                mproc_return_as order, mproc_stream **out) {
  if (!par || !generator_order(order)) return MPROC_EINVAL;
  mproc_stream_opts so = stream_opts(par);
  return order == MPROC_RETURN_GENERATOR ? mproc_pool_imap_items(par->pool, fn, in, &so, out)
                                         : mproc_pool_imap_unordered_items(par->pool, fn, in, &so, out);
}
