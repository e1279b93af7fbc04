/* stream.c: imap and imap_unordered.  A stream is a map whose results land in a window of slots; batches
 * are handed out only for items inside the window [next_unconsumed, next_unconsumed + window), so memory
 * and work in flight stay bounded by the window whatever n is. */
#include <stdio.h>

#include "face/batching.h"
#include "face/face.h"

struct mproc_stream {
  mproc__engine *eng;
  mproc__map m;
  size_t chunk;
  bool adaptive;            /* chunk sized from measured durations */
  mproc__batching batching; /* its caps */
  size_t next_dispatch;     /* first item not yet handed out */
  size_t next_ordered;      /* imap: next index to yield */
  size_t yielded;
  size_t low;              /* lowest item not yet consumed: the window starts here */
  unsigned char *consumed; /* per slot: consumed (for the window's low mark) */
  int64_t pending_release; /* the slot handed out by the last next(), released on the following call */
  double timeout;
  int retries;
  uint32_t sigint; /* Ctrl-C reported up to here (sigint.c) */
};

static void free_stream(mproc_stream *s) {
  if (s->m.slot_msg)
    for (size_t i = 0; i < s->m.items.window; i++) mproc__free(s->m.slot_msg[i]);
  mproc__free(s->m.slot_msg);
  mproc__free(s->m.slot_done);
  mproc__free(s->m.slot_code);
  mproc__free(s->m.ready);
  mproc__free(s->m.items.out);
  mproc__free(s->consumed);
  mproc__map_end(&s->m);
  mproc__free(s);
}

/* Hands out batches while the window has room (lock held).  Returns -ENOMEM if a batch could not be made
 * (what was handed out still runs). */
static int refill(mproc_stream *s) {
  mproc__engine *e = s->eng;
  mproc__map *m = &s->m;
  const mproc__batching *b = &s->batching;
  bool added = false;
  while (s->next_dispatch < m->items.n && !m->items.stopped) {
    size_t first = s->next_dispatch;
    size_t count = s->chunk;
    if (s->adaptive) {
      /* measured (face/batching.h); once each worker has timed a batch, only the window bounds what is in
       * flight */
      if (mproc__batching_hold(b, m->items.timed_batches, m->items.batches_sent - m->items.batches_done))
        break;
      count = mproc__batching_size(
          b, mproc__batching_measured(b, m->items.timed_batches, m->items.best_item_ns), m->items.n - first);
    }
    if (count > m->items.n - first) count = m->items.n - first;
    /* a batch never wraps around the end of the window */
    if (count > m->items.window - first % m->items.window) count = m->items.window - first % m->items.window;
    if (first + count > s->low + m->items.window) break; /* window full */
    mproc__job *j = mproc__batch_new(&m->items, first, count, s->timeout, s->retries);
    if (!j) return MPROC_ENOMEM;
    for (size_t k = 0; k < count; k++) {
      size_t slot = (first + k) % m->items.window;
      m->slot_done[slot] = 0;
      s->consumed[slot] = 0;
    }
    m->remaining += count;
    m->items.batches_sent++;
    mproc__engine_queue(e, j);
    s->next_dispatch += count;
    added = true;
  }
  /* called for every item taken: only new batches need handing out, and the manager only when it has
   * something to do with them (waking it for nothing cost a system call per item) */
  if (added) mproc__engine_hand_out(e);
  return 0;
}

static int start(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                 size_t out_size, const mproc_stream_opts *opts, bool unordered, mproc_stream **out) {
  static const mproc_stream_opts defaults = {0};
  if (!opts) opts = &defaults;
  if (!pool || !fn || !out || (!in && in_size && n) || !(opts->task_timeout >= 0) || in_size > UINT32_MAX ||
      out_size > UINT32_MAX || opts->max_retries < -1)
    return MPROC_EINVAL;
  mproc__engine *e = &pool->eng;
  if (mproc__engine_cannot_kill(e) && opts->task_timeout > 0) return MPROC_ENOTSUP;
  mproc_stream *s = mproc__calloc(1, sizeof *s);
  if (!s) return MPROC_ENOMEM;
  s->eng = e;
  size_t chunk = opts->chunk_size;
  if (chunk > UINT32_MAX) chunk = UINT32_MAX;
  /* by default the window holds up to 64 MiB of results and at most 262144 items (each slot also costs
   * about 22 bytes of bookkeeping), at least 4096: tiny tasks need large batches, and memory stays bounded
   * whatever n is */
  size_t dflt = (64u << 20) / (out_size ? out_size : 1);
  if (dflt > 262144) dflt = 262144;
  if (dflt < 4096) dflt = 4096;
  size_t window = opts->max_in_flight ? opts->max_in_flight : dflt;
  if (window > n && n > 0) window = n;
  if (chunk && window < chunk) window = chunk;
  if (window == 0) window = 1;
  s->chunk = chunk;
  s->adaptive = chunk == 0;
  mproc__map *m = &s->m;
  mproc__map_init(m, e, fn, n);
  m->items.in = in;
  m->items.in_size = in_size;
  m->items.out_size = out_size;
  m->items.window = window;
  m->items.seed = opts->seed;
  m->unordered = unordered;
  m->opts.on_error = MPROC_ON_ERROR_CONTINUE;
  m->items.out = mproc__calloc(window, out_size ? out_size : 1);
  m->slot_done = mproc__calloc(window, 1);
  m->slot_code = mproc__calloc(window, sizeof *m->slot_code);
  m->slot_msg = mproc__calloc(window, sizeof *m->slot_msg);
  m->ready = mproc__calloc(window, sizeof *m->ready);
  s->consumed = mproc__calloc(window, 1);
  s->pending_release = -1;
  s->timeout = opts->task_timeout > 0 ? opts->task_timeout : e->opts.task_timeout;
  s->retries = opts->max_retries < 0 ? 0 : (opts->max_retries > 0 ? opts->max_retries : e->opts.max_retries);
  if (!m->items.out || !m->slot_done || !m->slot_code || !m->slot_msg || !m->ready || !s->consumed) {
    free_stream(s);
    return MPROC_ENOMEM;
  }
  pthread_mutex_lock(&e->lock);
  if (e->closed) {
    pthread_mutex_unlock(&e->lock);
    free_stream(s);
    return MPROC_ECLOSED;
  }
  s->sigint = mproc__sigint_begin(); /* ended by destroy */
  e->holders++;                      /* the pool's memory outlives its destroy until the stream's */
  mproc__engine_items_begin(e, &m->items);
  mproc__map_share(e, &m->items);
  /* a stream's results go through the rings into its window, never in place */
  mproc__batching_init(&s->batching, (size_t)e->nworkers, e->ring_size, m->items.in_shared ? 0 : in_size,
                       out_size, window);
  int r = refill(s);
  pthread_mutex_unlock(&e->lock);
  if (r < 0) {
    mproc_stream_destroy(s);
    return r;
  }
  *out = s;
  return 0;
}

int mproc_pool_imap(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                    size_t out_size, const mproc_stream_opts *opts, mproc_stream **out) {
  return start(pool, fn, in, n, in_size, out_size, opts, false, out);
}

int mproc_pool_imap_unordered(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                              size_t out_size, const mproc_stream_opts *opts, mproc_stream **out) {
  return start(pool, fn, in, n, in_size, out_size, opts, true, out);
}

static bool item_ready(void *arg) {
  mproc_stream *s = arg;
  if (s->m.unordered) return s->m.ready_count > 0;
  return s->m.slot_done[s->next_ordered % s->m.items.window] && s->next_ordered < s->next_dispatch;
}

/* Marks the previously yielded slot consumed and moves the window's low mark (lock held). */
static void release_previous(mproc_stream *s) {
  mproc__map *m = &s->m;
  if (s->pending_release < 0) return;
  size_t slot = (size_t)s->pending_release % m->items.window;
  s->consumed[slot] = 1;
  mproc__free(m->slot_msg[slot]);
  m->slot_msg[slot] = NULL;
  s->pending_release = -1;
  while (s->low < s->next_dispatch && s->consumed[s->low % m->items.window]) s->low++;
}

int mproc_stream_next(mproc_stream *s, double timeout, int64_t *index, const void **result,
                      mproc_outcome *outcome) {
  if (!s || !index || !result || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  *result = NULL;
  mproc__engine *e = s->eng;
  mproc__map *m = &s->m;
  pthread_mutex_lock(&e->lock);
  release_previous(s);
  if (e->destroyed) { /* its pool is gone: nothing more comes */
    pthread_mutex_unlock(&e->lock);
    return MPROC_ECLOSED;
  }
  if (mproc__sigint_take(&s->sigint)) {
    pthread_mutex_unlock(&e->lock);
    return MPROC_EINTERRUPTED;
  }
  if (s->yielded == m->items.n) {
    pthread_mutex_unlock(&e->lock);
    return MPROC_EEOF;
  }
  int r = refill(s);
  if (r == 0) r = mproc__engine_wait(e, &m->cv, NULL, mproc__deadline(timeout), item_ready, s);
  if (r < 0) {
    if (r == MPROC_EINTERRUPTED) mproc__sigint_take(&s->sigint); /* reported once */
    pthread_mutex_unlock(&e->lock);
    return r;
  }
  int64_t idx;
  if (m->unordered) {
    idx = m->ready[m->ready_head];
    m->ready_head = (m->ready_head + 1) % m->items.window;
    m->ready_count--;
  } else {
    idx = (int64_t)s->next_ordered++;
  }
  size_t slot = (size_t)idx % m->items.window;
  int code = m->slot_code[slot];
  *index = idx;
  s->yielded++;
  s->pending_release = idx;
  if (outcome) {
    *outcome = (mproc_outcome){.kind = code == 0                    ? MPROC_OUTCOME_OK
                                       : code == MPROC_ECRASHED     ? MPROC_OUTCOME_CRASHED
                                       : code == MPROC_ETASKTIMEOUT ? MPROC_OUTCOME_TIMEDOUT
                                       : code == MPROC_ECANCELED    ? MPROC_OUTCOME_CANCELLED
                                                                    : MPROC_OUTCOME_FAILED,
                               .code = code,
                               .exit_code = -1,
                               .worker = -1,
                               .message = m->slot_msg[slot] ? m->slot_msg[slot] : ""};
  }
  if (code == 0) *result = m->items.out + slot * m->items.out_size;
  pthread_mutex_unlock(&e->lock);
  return code;
}

static bool stream_idle(void *arg) { return ((mproc__map *)arg)->remaining == 0; }

void mproc_stream_destroy(mproc_stream *s) {
  if (!s) return;
  mproc__engine *e = s->eng;
  pthread_mutex_lock(&e->lock);
  if (s->m.remaining > 0) {
    mproc__engine_abort_map(e, &s->m.items);
    mproc__cond_wait_until(&s->m.cv, &e->lock, NULL, INFINITY, stream_idle, &s->m);
  }
  mproc__engine_run_callbacks(e);
  bool last = mproc__pool_drop_holder(e);
  pthread_mutex_unlock(&e->lock);
  free_stream(s);
  mproc__sigint_end();
  if (last) mproc__pool_free(e);
}

size_t mproc__stream_batches(const mproc_stream *s) { return s ? s->m.items.batches_sent : 0; }
