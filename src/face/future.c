/* future.c: futures (concurrent.futures.Future, AsyncResult), wait() and as_completed(). */
#include <stdio.h>
#include <sched.h>
#include <time.h>

#include "face/face.h"

/* A done-callback; once its future completes, a deferred run of the engine (the engine calls run_cb without
 * its lock). */
struct cb_node {
  mproc__deferred node; /* first: the engine's list links it */
  mproc_future_cb cb;
  void *user;
  mproc_future *f;
  struct cb_node *next; /* in its future's list, until then */
};

/* Members sit in slots (fs[iter_index]); a slot is freed when its future is yielded or released and reused
 * by the next mproc_as_completed_add(), so an iterator fed as it drains stays as small as its peak number of
 * members, whatever the total. */
struct mproc_as_completed {
  mproc__engine *eng;
  mproc_future **fs;
  size_t cap, used;              /* slots allocated; slots ever handed out (fs[used..cap) never were) */
  size_t *free_slots, nfree;     /* freed slots, to reuse (capacity cap) */
  size_t n, yielded;             /* members added (duplicates included), and yielded or released */
  mproc_future *q_head, *q_tail; /* completed, not yet yielded */
  uint32_t sigint;               /* Ctrl-C reported up to here (sigint.c) */
};

mproc_future *mproc__future_new(mproc__engine *e) {
  mproc_future *f = mproc__calloc(1, sizeof *f);
  if (!f) return NULL;
  f->refs = 2; /* the caller's and the job's */
  f->eng = e;
  f->out = (mproc_outcome){.kind = MPROC_OUTCOME_PENDING, .exit_code = -1, .worker = -1, .message = ""};
  return f;
}

bool mproc__pool_drop_holder(mproc__engine *e) {
  e->holders--;
  return e->destroyed && e->holders == 0;
}

static void future_free(mproc_future *f) {
  struct cb_node *c = f->cbs;
  while (c) {
    struct cb_node *n = c->next;
    mproc__free(c);
    c = n;
  }
  if (f->result != f->result_inline) mproc__engine_result_done(f->eng, f->result, f->result_len);
  mproc__free(f->msg);
  mproc__free(f);
}

bool mproc__future_unref(mproc_future *f) {
  if (--f->refs > 0) return false;
  mproc__engine *e = f->eng;
  future_free(f);
  return mproc__pool_drop_holder(e);
}

static void iter_push(struct mproc_as_completed *it, mproc_future *f) {
  f->iter_next = NULL;
  if (it->q_tail)
    it->q_tail->iter_next = f;
  else
    it->q_head = f;
  it->q_tail = f;
}

/* f leaves its iterator, yielded or released (lock held); its slot is free again. */
static void iter_leave(struct mproc_as_completed *it, mproc_future *f) {
  it->fs[f->iter_index] = NULL;
  it->free_slots[it->nfree++] = f->iter_index;
  it->yielded++;
  f->iter = NULL;
}

void mproc__future_complete(mproc_future *f, const mproc_outcome *o, const char *msg, void *result,
                            size_t len) {
  mproc__engine *e = f->eng;
  f->state = FUT_DONE;
  f->out = *o;
  /* most futures succeed: the message costs memory only when there is one (a future is ~200 bytes) */
  f->msg = msg && *msg ? mproc__strdup(msg) : NULL;
  f->out.message = f->msg ? f->msg : "";
  f->result = result;
  f->result_len = len;
  if (f->iter) iter_push(f->iter, f);
  /* callbacks run later without the lock, each holding a reference */
  struct cb_node *c = f->cbs;
  f->cbs = NULL;
  for (; c;) {
    struct cb_node *next = c->next;
    f->refs++;
    mproc__engine_defer(e, &c->node);
    c = next;
  }
}

/* A task's job has ended (lock held): its future completes and drops the job's reference.  A small result
 * is copied into the future, a larger block taken over. */
bool mproc__future_job_done(mproc__job *j, const mproc_outcome *o, const char *msg, void *result,
                            size_t len) {
  mproc_future *f = j->owner;
  bool taken = len > sizeof f->result_inline;
  if (len && !taken) result = memcpy(f->result_inline, result, len);
  mproc__future_complete(f, o, msg, len ? result : NULL, len);
  f->job = NULL;
  (void)mproc__future_unref(f); /* the caller's reference remains, or the pool is not destroyed yet */
  return taken;
}

static void run_cb(mproc__deferred *d) {
  struct cb_node *c = (struct cb_node *)d;
  c->cb(c->f, c->user);
  mproc__engine *e = c->f->eng;
  pthread_mutex_lock(&e->lock);
  bool last = mproc__future_unref(c->f);
  pthread_mutex_unlock(&e->lock);
  mproc__free(c);
  if (last) mproc__pool_free(e);
}

/* Waits on the engine's condition until pred(f) or the deadline (lock held). 0 or -ETIMEDOUT. */
static int wait_locked(mproc__engine *e, double deadline, bool (*pred)(void *), void *arg) {
  return mproc__engine_wait(e, &e->done_cv, &e->waiters, deadline, pred, arg);
}

static bool is_done(void *arg) { return ((mproc_future *)arg)->state == FUT_DONE; }

int mproc__wait_until(mproc__engine *e, double timeout, bool (*pred)(void *), void *arg) {
  return wait_locked(e, mproc__deadline(timeout), pred, arg);
}

/* Before sleeping, a waiter polls the workers itself for a short while (about 20 us): a result that is
 * about to arrive is then collected without waking the manager and then this thread (lock held).  Between
 * two polls it watches the result rings without the lock and polls again as soon as bytes show: a result
 * is taken within a pause of its arrival, not after a fixed wait. */
#define POLL_SPINS 32              /* at most this many pauses (25-40 ns each) between two polls */
#define POLL_ROUNDS_BEFORE_YIELD 3 /* then it yields the CPU between polls: see YIELD_AFTER in ring.c */
static void poll_briefly(mproc__engine *e, bool (*pred)(void *), void *arg, double deadline) {
  /* The first wait on a new pool polls for up to 3 ms, yielding the CPU between looks: the first result
   * follows the start of two processes (the template, then a worker), and a caller asleep by then would
   * be woken through the manager thread, itself often not yet scheduled.  Once per pool, so a caller that
   * keeps waiting with short timeouts does not spin. */
  bool starting = !e->first_wait_done && e->job_ns_avg == 0;
  e->first_wait_done = true;
  double until = mproc__plat_now() + (starting ? 3e-3 : 20e-6);
  if (until > deadline) until = deadline;
  mproc__engine_poll_begin(e);
  for (int round = 0; !pred(arg); round++) {
    mproc__engine_poll(e);
    if (pred(arg) || mproc__plat_now() >= until) break;
    pthread_mutex_unlock(&e->lock);
    mproc__engine_await_results(e, POLL_SPINS);
    if (starting || round >= POLL_ROUNDS_BEFORE_YIELD) sched_yield();
    pthread_mutex_lock(&e->lock);
  }
  mproc__engine_poll_end(e);
  mproc__engine_run_callbacks(e);
}

int mproc_future_wait(mproc_future *f, double timeout) {
  if (!f || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  mproc__engine *e = f->eng;
  pthread_mutex_lock(&e->lock);
  double deadline = mproc__deadline(timeout);
  if (f->state != FUT_DONE && timeout != 0) poll_briefly(e, is_done, f, deadline);
  int r = wait_locked(e, deadline, is_done, f);
  pthread_mutex_unlock(&e->lock);
  return r;
}

int mproc_future_result(mproc_future *f, double timeout, const void **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  int r = mproc_future_wait(f, timeout);
  if (r < 0) return r;
  if (f->out.code != 0) return f->out.code;
  if (data) *data = f->result;
  if (len) *len = f->result_len;
  return 0;
}

int mproc_future_error(mproc_future *f, double timeout) {
  int r = mproc_future_wait(f, timeout);
  return r < 0 ? r : f->out.code;
}

int mproc_future_outcome(mproc_future *f, mproc_outcome *o) {
  if (!f || !o) return MPROC_EINVAL;
  pthread_mutex_lock(&f->eng->lock);
  *o = f->out;
  o->message = f->msg ? f->msg : "";
  if (f->state != FUT_DONE) {
    o->kind = MPROC_OUTCOME_PENDING;
    o->worker = f->job ? f->job->worker : -1;
  }
  pthread_mutex_unlock(&f->eng->lock);
  return 0;
}

int mproc_future_cancel(mproc_future *f) {
  if (!f) return MPROC_EINVAL;
  mproc__engine *e = f->eng;
  pthread_mutex_lock(&e->lock);
  int r = 0;
  if (f->state == FUT_DONE) {
    r = f->out.kind == MPROC_OUTCOME_CANCELLED;
  } else if (f->job && f->job->worker < 0) {
    r = mproc__engine_cancel_queued(e, f->job); /* only while still queued */
  }
  mproc__engine_run_callbacks(e);
  pthread_mutex_unlock(&e->lock);
  return r;
}

static int state_is(mproc_future *f, int what) {
  if (!f) return MPROC_EINVAL;
  pthread_mutex_lock(&f->eng->lock);
  int r;
  switch (what) {
    case 0:
      r = f->state == FUT_DONE && f->out.kind == MPROC_OUTCOME_CANCELLED;
      break;
    case 1:
      r = f->state != FUT_DONE && f->job && f->job->worker >= 0;
      break;
    default:
      r = f->state == FUT_DONE;
      break;
  }
  pthread_mutex_unlock(&f->eng->lock);
  return r;
}

int mproc_future_cancelled(mproc_future *f) { return state_is(f, 0); }
int mproc_future_running(mproc_future *f) { return state_is(f, 1); }
int mproc_future_done(mproc_future *f) { return state_is(f, 2); }

int mproc_future_add_done_callback(mproc_future *f, mproc_future_cb cb, void *user) {
  if (!f || !cb) return MPROC_EINVAL;
  struct cb_node *c = mproc__calloc(1, sizeof *c);
  if (!c) return MPROC_ENOMEM;
  c->node.run = run_cb;
  c->cb = cb;
  c->user = user;
  c->f = f;
  mproc__engine *e = f->eng;
  pthread_mutex_lock(&e->lock);
  if (f->state == FUT_DONE) {
    pthread_mutex_unlock(&e->lock);
    mproc__free(c);
    cb(f, user);
    return 0;
  }
  struct cb_node **tail = &f->cbs;
  while (*tail) tail = &(*tail)->next;
  *tail = c;
  pthread_mutex_unlock(&e->lock);
  return 0;
}

void mproc_future_release(mproc_future *f) {
  if (!f) return;
  mproc__engine *e = f->eng;
  pthread_mutex_lock(&e->lock);
  if (f->iter) {
    /* drop it from its iterator's queue so the iterator never hands out freed memory */
    struct mproc_as_completed *it = f->iter;
    mproc_future **pp = &it->q_head, *last = NULL;
    while (*pp && *pp != f) last = *pp, pp = &(*pp)->iter_next;
    if (*pp) {
      *pp = f->iter_next;
      if (it->q_tail == f) it->q_tail = last;
    }
    iter_leave(it, f);
  }
  bool last = mproc__future_unref(f);
  pthread_mutex_unlock(&e->lock);
  if (last) mproc__pool_free(e);
}

struct wait_state {
  mproc_future *const *fs;
  size_t n;
  mproc_wait_mode mode;
};

static bool wait_satisfied(void *arg) {
  struct wait_state *w = arg;
  size_t done = 0;
  for (size_t i = 0; i < w->n; i++) {
    mproc_future *f = w->fs[i];
    if (f->state != FUT_DONE) continue;
    done++;
    if (w->mode == MPROC_FIRST_COMPLETED) return true;
    if (w->mode == MPROC_FIRST_EXCEPTION && f->out.code != 0) return true;
  }
  return done == w->n;
}

int mproc_futures_wait(mproc_future *const *fs, size_t n, double timeout, mproc_wait_mode mode, size_t *ndone,
                       unsigned char *done_flags) {
  if ((!fs && n > 0) || !mproc__timeout_valid(timeout) || (unsigned)mode > MPROC_FIRST_EXCEPTION)
    return MPROC_EINVAL;
  if (n == 0) {
    if (ndone) *ndone = 0;
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    if (!fs[i] || fs[i]->eng != fs[0]->eng) return MPROC_EINVAL;
  mproc__engine *e = fs[0]->eng;
  struct wait_state w = {fs, n, mode};
  pthread_mutex_lock(&e->lock);
  int r = wait_locked(e, mproc__deadline(timeout), wait_satisfied, &w);
  size_t done = 0;
  for (size_t i = 0; i < n; i++) {
    int d = fs[i]->state == FUT_DONE;
    done += (size_t)d;
    if (done_flags) done_flags[i] = (unsigned char)d;
  }
  pthread_mutex_unlock(&e->lock);
  if (ndone) *ndone = done;
  return r;
}

/* Makes room for one more member (lock held, if the iterator has futures): false without memory. */
static bool iter_reserve(struct mproc_as_completed *it) {
  if (it->nfree > 0 || it->used < it->cap) return true;
  size_t cap = it->cap ? 2 * it->cap : 16;
  mproc_future **fs = mproc__realloc(it->fs, cap * sizeof(mproc_future *));
  if (!fs) return false;
  it->fs = fs;
  size_t *fr = mproc__realloc(it->free_slots, cap * sizeof *fr);
  if (!fr) return false; /* fs grew, which is harmless */
  it->free_slots = fr;
  it->cap = cap;
  return true;
}

/* Adds f (lock held; room reserved).  A future already in this iterator counts once more but is yielded
 * once; one in another iterator is refused. */
static int iter_add(struct mproc_as_completed *it, mproc_future *f) {
  it->n++;
  if (f->iter == it) {
    it->yielded++; /* the same future twice is yielded once */
    return 0;
  }
  if (f->iter) {
    it->n--;
    return MPROC_EBUSY;
  }
  size_t slot = it->nfree > 0 ? it->free_slots[--it->nfree] : it->used++;
  it->fs[slot] = f;
  f->iter = it;
  f->iter_index = slot;
  if (f->state == FUT_DONE) iter_push(it, f);
  return 0;
}

static void iter_free(struct mproc_as_completed *it) {
  mproc__free(it->fs);
  mproc__free(it->free_slots);
  mproc__free(it);
}

int mproc_as_completed_create(mproc_as_completed **out, mproc_future *const *fs, size_t n) {
  if (!out || (!fs && n > 0)) return MPROC_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!fs[i] || fs[i]->eng != fs[0]->eng) return MPROC_EINVAL;
  mproc_as_completed *it = mproc__calloc(1, sizeof *it);
  if (!it) return MPROC_ENOMEM;
  it->sigint = mproc__sigint_begin(); /* ended by destroy */
  if (n == 0) {
    *out = it;
    return 0;
  }
  it->eng = fs[0]->eng;
  pthread_mutex_lock(&it->eng->lock);
  it->eng->holders++; /* until the iterator is destroyed */
  for (size_t i = 0; i < n; i++) {
    int r = iter_reserve(it) ? iter_add(it, fs[i]) : MPROC_ENOMEM;
    if (r < 0) {
      for (size_t k = 0; k < it->used; k++)
        if (it->fs[k]) it->fs[k]->iter = NULL;
      it->eng->holders--; /* the futures still hold it: it cannot be the last */
      pthread_mutex_unlock(&it->eng->lock);
      iter_free(it);
      mproc__sigint_end();
      return r;
    }
  }
  pthread_mutex_unlock(&it->eng->lock);
  *out = it;
  return 0;
}

int mproc_as_completed_add(mproc_as_completed *it, mproc_future *f) {
  if (!it || !f || (it->eng && it->eng != f->eng)) return MPROC_EINVAL;
  mproc__engine *e = f->eng;
  pthread_mutex_lock(&e->lock);
  int r = iter_reserve(it) ? 0 : MPROC_ENOMEM;
  if (r == 0) r = iter_add(it, f);
  if (r == 0 && !it->eng) {
    it->eng = e;
    e->holders++; /* until the iterator is destroyed */
  }
  pthread_mutex_unlock(&e->lock);
  return r;
}

static bool iter_ready(void *arg) { return ((struct mproc_as_completed *)arg)->q_head != NULL; }

int mproc_as_completed_next(mproc_as_completed *it, double timeout, mproc_future **f) {
  if (!it || !f || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  *f = NULL;
  if (mproc__sigint_take(&it->sigint)) return MPROC_EINTERRUPTED;
  if (it->yielded >= it->n) return MPROC_EEOF;
  pthread_mutex_lock(&it->eng->lock);
  int r = wait_locked(it->eng, mproc__deadline(timeout), iter_ready, it);
  if (r == MPROC_EINTERRUPTED) mproc__sigint_take(&it->sigint); /* reported once */
  if (r == 0) {
    mproc_future *g = it->q_head;
    it->q_head = g->iter_next;
    if (!it->q_head) it->q_tail = NULL;
    iter_leave(it, g);
    *f = g;
  }
  pthread_mutex_unlock(&it->eng->lock);
  return r;
}

void mproc_as_completed_destroy(mproc_as_completed *it) {
  if (!it) return;
  mproc__engine *e = it->eng;
  bool last = false;
  if (e) {
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < it->used; i++)
      if (it->fs[i] && it->fs[i]->iter == it) it->fs[i]->iter = NULL;
    last = mproc__pool_drop_holder(e);
    pthread_mutex_unlock(&e->lock);
  }
  iter_free(it);
  if (last) mproc__pool_free(e);
  mproc__sigint_end();
}
