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
  /* items of any size (items.h): the input's description, each slot's result (and, for a lazy input, its
   * item copied from the input), buffers kept from item to item */
  bool var, lazy;
  mproc_items input;
  struct slot_buf {
    unsigned char *p;
    size_t len, cap; /* len SIZE_MAX: no memory to keep the result */
  } * slot_out, *slot_in;
  int input_error; /* the lazy input's failure: reported once by next(), then the stream ends */
  bool input_reported;
};

#define OUT_OF_MEMORY SIZE_MAX

static void free_bufs(struct slot_buf *b, size_t n) {
  if (b)
    for (size_t i = 0; i < n; i++) mproc__free(b[i].p);
  mproc__free(b);
}

static void free_stream(mproc_stream *s) {
  free_bufs(s->slot_out, s->m.items.window);
  free_bufs(s->slot_in, s->m.items.window);
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

/* Copies len bytes into b, growing it; false without memory. */
static bool buf_put(struct slot_buf *b, const void *data, size_t len) {
  if (len > b->cap) { /* at least 64 bytes, and doubling: short items of growing length grow it once */
    size_t cap = b->cap * 2 > len ? b->cap * 2 : len;
    if (cap < 64) cap = 64;
    unsigned char *p = mproc__realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  if (len) memcpy(b->p, data, len);
  b->len = len;
  return true;
}

/* A lazy input gives items [first, first + count) into their slots, the lock dropped while it runs (it is
 * the caller's code, and the slots are free: beyond what was handed out, inside the window).  Returns how
 * many came; at the input's end its length becomes the stream's, and on its failure input_error says why
 * (the stream then ends there too). */
static size_t produce(mproc_stream *s, size_t first, size_t count) {
  mproc__engine *e = s->eng;
  size_t got = 0;
  pthread_mutex_unlock(&e->lock);
  int r = 1;
  while (got < count) {
    mproc_item it = {NULL, 0};
    r = s->input.next(s->input.user, (int64_t)(first + got), &it);
    if (r == 1 && !it.data && it.len) r = MPROC_EINVAL;
    if (r != 1) break;
    if (!buf_put(&s->slot_in[(first + got) % s->m.items.window], it.data, it.len)) {
      r = MPROC_ENOMEM;
      break;
    }
    got++;
  }
  pthread_mutex_lock(&e->lock);
  if (r != 1) {
    s->m.items.n = first + got; /* the end, or as far as it went */
    if (r < 0) s->input_error = r;
  }
  return got;
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
    if (first >= s->low + m->items.window) break; /* window full: the usual case, before any sizing */
    size_t count = s->chunk;
    if (s->adaptive) {
      /* measured (face/batching.h); once two batches per worker are timed, only the window bounds what is in
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
    /* without workers the batch runs when the caller waits: one at a time, so that what is asked of the
     * input (and run) is what the consumer needs next */
    if (mproc__engine_runs_here(e) && m->items.batches_sent > m->items.batches_done) break;
    if (s->lazy) {
      count = produce(s, first, count);
      if (count == 0 || s->input_error) break;
    }
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

/* Items of any size: a stream's item_at and item_result (mproc__var_io). */
static const void *stream_item_at(const mproc__items *m, int64_t index, size_t *len) {
  const mproc_stream *s = ((const mproc__map *)m)->var_ctx;
  if (s->lazy) {
    const struct slot_buf *b = &s->slot_in[(size_t)index % m->window];
    *len = b->len;
    return b->p;
  }
  return mproc__items_at(&s->input, (size_t)index, len);
}

static void stream_item_result(mproc__items *m, int64_t index, const void *data, size_t len) {
  mproc_stream *s = ((mproc__map *)m)->var_ctx;
  struct slot_buf *b = &s->slot_out[(size_t)index % m->window];
  if (!buf_put(b, data, len)) b->len = OUT_OF_MEMORY;
}

/* Starts a stream over n records of in_size bytes (results of out_size), or over items (items != NULL:
 * any size, n from the description, or unknown for a lazy input). */
static int start(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                 size_t out_size, const mproc_stream_opts *opts, bool unordered, const mproc_items *items,
                 const mproc_map_opts *mo, mproc_stream **out) {
  static const mproc_stream_opts defaults = {0};
  if (!opts) opts = &defaults;
  if (!pool || !fn || !out || (!in && in_size && n) || !(opts->task_timeout >= 0) || in_size > UINT32_MAX ||
      out_size > UINT32_MAX || opts->max_retries < -1 || !mproc__records_fit(n, in_size, out_size))
    return MPROC_EINVAL;
  if (items) {
    int r = mproc__items_check(items);
    if (r < 0) return r;
    n = items->next ? SIZE_MAX : items->n; /* a lazy input's length is known at its end */
  }
  mproc__engine *e = &pool->eng;
  if (mproc__engine_cannot_kill(e) && opts->task_timeout > 0) return MPROC_ENOTSUP;
  mproc_stream *s = mproc__calloc(1, sizeof *s);
  if (!s) return MPROC_ENOMEM;
  s->eng = e;
  size_t chunk = opts->chunk_size;
  if (chunk > UINT32_MAX) chunk = UINT32_MAX;
  if (chunk > n && n > 0) chunk = n; /* no batch holds more; nor may the window, sized from it below */
  /* by default the window holds up to 64 MiB of results and at most 262144 items (each slot also costs
   * about 22 bytes of bookkeeping), at least 4096: tiny tasks need large batches, and memory stays bounded
   * whatever n is */
  size_t dflt = (64u << 20) / (out_size ? out_size : 1);
  if (dflt > 262144) dflt = 262144;
  if (dflt < 4096 || items) dflt = 4096; /* results of any size: 4096 of them */
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
  if (mo) { /* a map's policy and failures kept (items.c) */
    m->opts.on_error = mo->on_error;
    m->max_failures = mo->max_failures;
    m->opts.failures = mo->failures;
    m->opts.failures_cap = mo->failures_cap;
  }
  m->items.out = mproc__calloc(window, out_size ? out_size : 1);
  m->slot_done = mproc__calloc(window, 1);
  m->slot_code = mproc__calloc(window, sizeof *m->slot_code);
  m->slot_msg = mproc__calloc(window, sizeof *m->slot_msg);
  m->ready = mproc__calloc(window, sizeof *m->ready);
  s->consumed = mproc__calloc(window, 1);
  s->pending_release = -1;
  s->timeout = opts->task_timeout > 0 ? opts->task_timeout : e->opts.task_timeout;
  s->retries = opts->max_retries < 0 ? 0 : (opts->max_retries > 0 ? opts->max_retries : e->opts.max_retries);
  if (items) {
    s->var = true;
    s->lazy = items->next != NULL;
    s->input = *items;
    mproc__var_io io = {.item_at = stream_item_at, .item_result = stream_item_result, .ctx = s};
    mproc__map_set_var(m, &io);
    s->slot_out = mproc__calloc(window, sizeof *s->slot_out);
    if (s->lazy) s->slot_in = mproc__calloc(window, sizeof *s->slot_in);
  }
  if (!m->items.out || !m->slot_done || !m->slot_code || !m->slot_msg || !m->ready || !s->consumed ||
      (items && !s->slot_out) || (s->lazy && !s->slot_in)) {
    free_stream(s);
    return MPROC_ENOMEM;
  }
  mproc__engine_call_begins(e);
  pthread_mutex_lock(&e->lock);
  if (e->closed) {
    int code = mproc__pool_refusal(e);
    pthread_mutex_unlock(&e->lock);
    free_stream(s);
    return code;
  }
  s->sigint = mproc__sigint_begin(); /* ended by destroy */
  e->holders++;                      /* the pool's memory outlives its destroy until the stream's */
  mproc__engine_items_begin(e, &m->items);
  mproc__map_share(e, &m->items);
  /* a stream's results go through the rings into its window, never in place */
  mproc__batching_init(&s->batching, (size_t)e->nworkers, e->ring_size, m->items.in_shared ? 0 : in_size,
                       out_size, window);
  int r = refill(s);
  if (r == 0 && s->input_error) r = s->input_error; /* the input failed at once: the call fails */
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
  return start(pool, fn, in, n, in_size, out_size, opts, false, NULL, NULL, out);
}

int mproc_pool_imap_unordered(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                              size_t out_size, const mproc_stream_opts *opts, mproc_stream **out) {
  return start(pool, fn, in, n, in_size, out_size, opts, true, NULL, NULL, out);
}

int mproc_pool_imap_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                          const mproc_stream_opts *opts, mproc_stream **out) {
  if (!in) return MPROC_EINVAL;
  return start(pool, fn, NULL, 0, 0, 0, opts, false, in, NULL, out);
}

int mproc_pool_imap_unordered_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                                    const mproc_stream_opts *opts, mproc_stream **out) {
  if (!in) return MPROC_EINVAL;
  return start(pool, fn, NULL, 0, 0, 0, opts, true, in, NULL, out);
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

static bool stream_idle(void *arg);

/* Whether nothing more comes: every item yielded, or the map stopped and what it handed out yielded. */
static bool stream_over(const mproc_stream *s) {
  return s->yielded == s->m.items.n || (s->m.items.stopped && s->yielded == s->next_dispatch);
}

/* The next result's index and slot (lock held).  Returns its code (0, or the item's failure), or a code
 * for the call: MPROC_EEOF, MPROC_ECLOSED, MPROC_EINTERRUPTED, -ETIMEDOUT, -ENOMEM, a lazy input's failure
 * (once; the stream then ends). */
static int next_slot(mproc_stream *s, double timeout, int64_t *index, size_t *slot_out,
                     mproc_outcome *outcome) {
  mproc__engine *e = s->eng;
  mproc__map *m = &s->m;
  release_previous(s);
  if (e->destroyed) return MPROC_ECLOSED; /* its pool is gone: nothing more comes */
  if (mproc__sigint_take(&s->sigint)) return MPROC_EINTERRUPTED;
  if (s->input_error && !s->input_reported) {
    /* the input failed: what is in flight is cancelled, the error said once */
    s->input_reported = true;
    if (m->remaining > 0) {
      mproc__engine_abort_map(e, &m->items);
      mproc__cond_wait_until(&m->cv, &e->lock, NULL, INFINITY, stream_idle, m);
    }
    return s->input_error;
  }
  if (s->input_reported || stream_over(s)) return MPROC_EEOF;
  int r = refill(s);
  if (r == 0 && s->input_error && !item_ready(s)) return next_slot(s, timeout, index, slot_out, outcome);
  if (r == 0 && stream_over(s)) return MPROC_EEOF; /* the lazy input ended at the last item yielded */
  if (r == 0) r = mproc__engine_wait(e, &m->cv, NULL, mproc__deadline(timeout), item_ready, s);
  if (r < 0) {
    if (r == MPROC_EINTERRUPTED) mproc__sigint_take(&s->sigint); /* reported once */
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
  if (code == 0 && s->var && s->slot_out[slot].len == OUT_OF_MEMORY) code = MPROC_ENOMEM;
  *index = idx;
  *slot_out = slot;
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
  return code;
}

/* The next result as an item (lock taken here): its record, or its bytes of any size. */
static int next_item(mproc_stream *s, double timeout, int64_t *index, mproc_item *result,
                     mproc_outcome *outcome) {
  *result = (mproc_item){NULL, 0};
  pthread_mutex_lock(&s->eng->lock);
  size_t before = s->yielded, slot = 0;
  int code = next_slot(s, timeout, index, &slot, outcome);
  if (code == 0 && s->yielded != before) { /* an item's result, not the call's end */
    if (!s->var)
      *result = (mproc_item){s->m.items.out + slot * s->m.items.out_size, s->m.items.out_size};
    else if (s->slot_out[slot].len)
      *result = (mproc_item){s->slot_out[slot].p, s->slot_out[slot].len};
    else
      *result = (mproc_item){"", 0};
  }
  pthread_mutex_unlock(&s->eng->lock);
  return code;
}

int mproc_stream_next(mproc_stream *s, double timeout, int64_t *index, const void **result,
                      mproc_outcome *outcome) {
  if (!s || !index || !result || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  mproc_item it;
  int code = next_item(s, timeout, index, &it, outcome);
  *result = it.data;
  return code;
}

int mproc_stream_next_item(mproc_stream *s, double timeout, int64_t *index, mproc_item *result,
                           mproc_outcome *outcome) {
  if (!s || !index || !result || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  return next_item(s, timeout, index, result, outcome);
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

int mproc__stream_start_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                              const mproc_stream_opts *so, const mproc_map_opts *mo, mproc_stream **out) {
  if (mproc__map_opts_check(mo) < 0) return MPROC_EINVAL; /* as every map's (the lazy form's timeout too) */
  return start(pool, fn, NULL, 0, 0, 0, so, false, in, mo, out);
}

const mproc__map *mproc__stream_map(const mproc_stream *s) { return &s->m; }

void mproc__stream_finish(mproc_stream *s, mproc_map_report *report, const mproc__map_hooks *hooks) {
  mproc__engine *e = s->eng;
  pthread_mutex_lock(&e->lock);
  if (s->m.remaining > 0) {
    mproc__engine_abort_map(e, &s->m.items);
    mproc__cond_wait_until(&s->m.cv, &e->lock, NULL, INFINITY, stream_idle, &s->m);
  }
  pthread_mutex_unlock(&e->lock);
  if (hooks) hooks->tick(hooks->ctx, &s->m, true);
  pthread_mutex_lock(&e->lock);
  mproc__map_sort_failures(&s->m);
  mproc__map_report(&s->m, report);
  pthread_mutex_unlock(&e->lock);
}
