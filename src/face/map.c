/* map.c: what a map and a stream keep of their items' ends, told by the engine: the counts, the first
 * failure, the caller's item codes, the error policy (stop at the first failure or after N), and a
 * stream's window of result slots. */
#include <stdio.h>

#include "face/face.h"

static mproc__map *map_of(mproc__items *it) { return (mproc__map *)it; } /* items is its first member */

/* A stream's item ended: its slot says how and, unordered, it joins the consumer's FIFO. */
static void slot_done(mproc__map *m, int64_t idx, int code, const char *msg) {
  size_t window = m->items.window, slot = (size_t)idx % window;
  m->slot_done[slot] = 1;
  m->slot_code[slot] = code;
  if (code && msg && *msg) m->slot_msg[slot] = mproc__strdup(msg);
  if (m->unordered) {
    m->ready[(m->ready_head + m->ready_count) % window] = idx;
    m->ready_count++;
  }
}

static void signal_waiter(mproc__map *m) {
  if (m->remaining == 0 || m->items.window || m->notify_each) pthread_cond_signal(&m->cv);
}

static void items_ok(mproc__items *it, int64_t first, size_t count) {
  mproc__map *m = map_of(it);
  if (it->window)
    for (size_t k = 0; k < count; k++) slot_done(m, first + (int64_t)k, 0, NULL);
  if (m->opts.item_codes && !m->codes_zeroed)
    for (size_t k = 0; k < count; k++) m->opts.item_codes[first + (int64_t)k] = 0;
  m->ok += count;
  m->remaining -= count;
  signal_waiter(m);
}

/* opts.failures holds the failures_cap lowest indices that failed: a max-heap by index while the map runs,
 * so a failure with a lower index than the highest kept takes its place whatever order items end in. */
static void heap_down(mproc_item_failure *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, top = i;
    if (l < n && h[l].index > h[top].index) top = l;
    if (r < n && h[r].index > h[top].index) top = r;
    if (top == i) return;
    mproc_item_failure t = h[i];
    h[i] = h[top];
    h[top] = t;
    i = top;
  }
}

static void keep_failure(mproc__map *m, int64_t idx, const mproc_outcome *o, const char *msg) {
  mproc_item_failure *h = m->opts.failures;
  size_t cap = m->opts.failures_cap, n = m->failures_kept;
  if (cap == 0) return;
  mproc_item_failure f = {.index = idx, .outcome = *o};
  snprintf(f.message, sizeof f.message, "%s", msg ? msg : "");
  if (n < cap) { /* sift up */
    size_t i = n;
    while (i > 0 && h[(i - 1) / 2].index < idx) {
      h[i] = h[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    h[i] = f;
    m->failures_kept++;
    return;
  }
  m->failures_left_out++;
  if (idx < h[0].index) { /* the highest kept is left out instead */
    h[0] = f;
    heap_down(h, n, 0);
  }
}

void mproc__map_sort_failures(mproc__map *m) {
  mproc_item_failure *h = m->opts.failures;
  for (size_t n = m->failures_kept; n > 1; n--) { /* heap sort: the largest goes last */
    mproc_item_failure t = h[0];
    h[0] = h[n - 1];
    h[n - 1] = t;
    heap_down(h, n - 1, 0);
  }
  for (size_t i = 0; i < m->failures_kept; i++) h[i].outcome.message = h[i].message;
}

void mproc__map_fail(mproc__map *m, int64_t first, size_t count, const mproc_outcome *o, const char *msg) {
  for (size_t k = 0; k < count; k++) {
    int64_t idx = first + (int64_t)k;
    if (m->items.window) slot_done(m, idx, o->code, msg);
    if (m->opts.item_codes) m->opts.item_codes[idx] = o->code;
    if (o->kind == MPROC_OUTCOME_CANCELLED) {
      m->cancelled++;
    } else {
      m->failed++;
      keep_failure(m, idx, o, msg);
      if (m->first_failed < 0 || idx < m->first_failed) {
        m->first_failed = idx;
        m->first_outcome = *o;
        snprintf(m->first_msg, sizeof m->first_msg, "%s", msg ? msg : "");
      }
    }
  }
  m->remaining -= count;
  if (o->kind != MPROC_OUTCOME_CANCELLED && !m->items.stopped) {
    bool stop = m->opts.on_error == MPROC_ON_ERROR_STOP ||
                (m->opts.on_error == MPROC_ON_ERROR_STOP_AFTER && m->failed >= (size_t)m->max_failures);
    if (stop) {
      m->items.stopped = true;
      mproc__engine_cancel_batches(m->eng, &m->items); /* what has not been handed out */
    }
  }
  signal_waiter(m);
}

static void items_failed(mproc__items *it, int64_t first, size_t count, const mproc_outcome *o,
                         const char *msg) {
  mproc__map_fail(map_of(it), first, count, o, msg);
}

void mproc__map_init(mproc__map *m, mproc__engine *e, mproc_task_fn fn, size_t n) {
  *m = (mproc__map){.items = {.fn = fn, .n = n, .items_ok = items_ok, .items_failed = items_failed},
                    .eng = e,
                    .first_failed = -1};
  m->first_outcome.exit_code = -1;
  m->first_outcome.worker = -1;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->cv, &ca);
  pthread_condattr_destroy(&ca);
}

void mproc__map_end(mproc__map *m) { pthread_cond_destroy(&m->cv); }

int mproc__map_opts_check(const mproc_map_opts *o) {
  if (!(o->task_timeout >= 0) || !(o->timeout >= 0) || (unsigned)o->on_error > MPROC_ON_ERROR_STOP_AFTER ||
      (o->on_error == MPROC_ON_ERROR_STOP_AFTER && o->max_failures < 1) ||
      (!o->failures && o->failures_cap) || o->max_retries < -1)
    return MPROC_EINVAL;
  return 0;
}

void mproc__map_set_var(mproc__map *m, const mproc__var_io *io) {
  m->items.var_in = m->items.var_out = true;
  m->items.item_at = io->item_at;
  m->items.item_result = io->item_result;
  m->items.items_at = io->items_at;
  m->items.items_results = io->items_results;
  m->var_ctx = io->ctx;
  m->codes_zeroed = io->codes_zeroed;
}
