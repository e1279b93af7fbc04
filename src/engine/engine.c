/* engine.c: the engine's core: start and stop, the manager thread, dispatch, results, deaths, timeouts.
 * How it works, and the rules it keeps, are in docs/design.md. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "ipc/arena.h"
#include "ipc/spinwait.h"

#define INFLIGHT_PER_WORKER 2
#define INFLIGHT_SHORT_JOBS 16
#define SHORT_JOB_NS 20000.0
#define MANAGER_SPIN_ROUNDS 49 /* of MANAGER_SPIN_PAUSES pauses each, lock dropped, before it sleeps */
#define MANAGER_SPIN_PAUSES 20

void mproc__job_free(mproc__job *j) {
  if (!j) return;
  if (j->kind == JOB_BATCH && j->map) j->map->batches_done++;
  if (j->arg_shared)
    mproc__arena_free(j->arg_owned);
  else
    mproc__free(j->arg_owned);
  mproc__free(j);
}

/* Batches of items of any size are described when they are handed out, in the worker's own block (reused
 * from batch to batch, so a map's items cost no allocation and no first touch of memory per batch): what
 * goes before the items' bytes on the wire, their lengths, or address and length of each when the worker
 * reads them in place (every item for threads; the arena's items for processes, when all of the batch's
 * are there).  After the lengths, for the manager's writes, not sent: the items' addresses, unless they lie
 * one after the other in memory (a packed input, strings carved from one buffer), when the bytes go in one
 * copy from tx_span.  item_at is asked once per item.  False: no memory. */
#define TX_VAR_KEEP ((size_t)1 << 17) /* entries a worker's block keeps between batches (3 MiB) */
static bool var_header(const mproc__items *m, const mproc__job *j, mproc__wstate *w) {
  size_t c = j->count;
  if (w->tx_var_cap < 3 * c) {
    if (!mproc__big_resize(&w->tx_block, 3 * c * sizeof *w->tx_var)) return false;
    w->tx_var = w->tx_block.p;
    w->tx_var_cap = 3 * c;
  }
  uint64_t *h = w->tx_var, *lens = h, *addrs = h + 2 * c, body = 0;
  bool place = m->in_shared || m->in_arena;
  const unsigned char *span = NULL, *next = NULL; /* the first item's bytes, and where the next would be */
  bool contiguous = true;                         /* (empty items may lie anywhere) */
  if (m->items_at) {
    m->items_at(m, j->first, c, lens, addrs);
  } else {
    for (size_t k = 0; k < c; k++) {
      size_t len;
      addrs[k] = (uint64_t)(uintptr_t)m->item_at(m, j->first + (int64_t)k, &len);
      lens[k] = len;
    }
  }
  for (size_t k = 0; k < c; k++) {
    size_t len = (size_t)lens[k];
    const unsigned char *p = (const unsigned char *)(uintptr_t)addrs[k];
    if (len) {
      if (!span)
        span = p;
      else if (p != next)
        contiguous = false;
      next = p + len;
    }
    body += len;
    if (place && !m->in_shared && len) place = mproc__arena_has(p, len);
  }
  if (place) { /* (address, length) pairs over the block's front, from the last (each pair lies at or
                * after the length it replaces) */
    for (size_t k = c; k-- > 0;) {
      uint64_t len = lens[k];
      h[2 * k] = addrs[k];
      h[2 * k + 1] = len;
    }
    body = 0;
  }
  w->tx_arg = h;
  w->tx_arg_len = c * (place ? 2 : 1) * sizeof *h;
  w->tx_in_place = place;
  w->tx_body_len = body;
  w->tx_span = body && contiguous ? span : NULL;
  return true;
}

/* After a batch's record is written: a block much larger than a map's usual batch is not kept. */
static void var_header_done(mproc__wstate *w) {
  if (w->tx_var_cap > 3 * TX_VAR_KEEP) {
    mproc__big_free(&w->tx_block);
    w->tx_var = NULL;
    w->tx_var_cap = 0;
  }
}

mproc__job *mproc__batch_new(mproc__items *m, size_t first, size_t count, double timeout, int retries) {
  mproc__job *j = mproc__calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = JOB_BATCH;
  j->fn = m->fn;
  j->map = m;
  j->first = (int64_t)first;
  j->count = (uint32_t)count;
  j->arg = m->in_size ? m->in + first * m->in_size : NULL;
  j->arg_len = count * m->in_size;
  j->timeout = timeout;
  j->retries_left = retries;
  j->worker = -1;
  return j;
}

void mproc__map_share(const mproc__engine *e, mproc__items *m) {
  bool threads = e->ops && e->ops->shares_memory;
  /* only a pool holding the arena knows its workers have it: the arena cannot change under a reference */
  bool arena = e->arena_ref;
  size_t in_len = m->n * m->in_size, out_len = m->n * m->out_size;
  m->in_shared =
      m->var_in ? threads : m->in && in_len && (threads || (arena && mproc__arena_has(m->in, in_len)));
  m->in_arena = m->var_in && arena;
  m->out_shared =
      m->out && out_len && !m->window && (threads || (arena && mproc__arena_has(m->out, out_len)));
}

bool mproc__engine_needs_manager(const mproc__engine *e) {
  if (e->pend_head || e->timeouts_active || !e->ready) return true;
  for (int i = 0; i < e->nworkers; i++)
    if (e->ws[i].tx_job) return true;
  return false;
}

/* The manager sleeps on the doorbell; its flag says so to the workers' rings (their consumer's side for
 * results, producer's side for room: see start) and to the callers. */
static mproc__bell doorbell(const mproc__engine *e) {
  return (mproc__bell){.word = &e->sh->doorbell, .asleep = &e->sh->manager_sleeping};
}

void mproc__engine_wake_manager(mproc__engine *e) {
  if (e->sh) mproc__bell_ring(doorbell(e), 1);
}

void mproc__engine_enqueue(mproc__engine *e, mproc__job *j, bool front) {
  j->next = NULL;
  if (front) {
    j->next = e->pend_head;
    e->pend_head = j;
    if (!e->pend_tail) e->pend_tail = j;
  } else {
    if (e->pend_tail)
      e->pend_tail->next = j;
    else
      e->pend_head = j;
    e->pend_tail = j;
  }
}

void mproc__engine_queue(mproc__engine *e, mproc__job *j) {
  e->outstanding++; /* its id comes with each hand-out (hand_out) */
  mproc__engine_enqueue(e, j, false);
}

/* A backend without workers: the oldest queued job runs here and now (lock held; the backend drops it while
 * the job's code runs). */
static void run_one_here(mproc__engine *e) {
  mproc__job *j = e->pend_head;
  e->pend_head = j->next;
  if (!e->pend_head) e->pend_tail = NULL;
  j->next = NULL;
  e->ops->run(e, j);
}

void mproc__engine_kick(mproc__engine *e) {
  if (mproc__engine_runs_here(e)) {
    while (e->pend_head && !e->terminating) run_one_here(e);
    return;
  }
  mproc__engine_hand_out(e);
}

int mproc__engine_wait_slow(mproc__engine *e, pthread_cond_t *cv, int *waiters, double deadline,
                            bool (*pred)(void *), void *arg) {
  if (mproc__engine_runs_here(e) && e->pend_head) {
    /* nobody else runs the queued work: this wait does, one job at a time, so that a deadline (a progress
     * tick, a map's timeout) and Ctrl-C are seen between two jobs */
    uint32_t token = mproc__sigint_begin();
    bool stop = false;
    while (!pred(arg) && e->pend_head && !e->terminating && mproc__remaining(deadline) != 0 &&
           !(stop = mproc__sigint_seen(token)))
      run_one_here(e);
    mproc__sigint_end();
    if (stop) return MPROC_EINTERRUPTED;
  }
  return mproc__cond_wait_intr(cv, &e->lock, waiters, deadline, pred, arg);
}

void mproc__engine_hand_out(mproc__engine *e) {
  mproc__engine_dispatch(e);
  /* a job already written whole into a worker's ring needs nothing from the manager until its result
   * comes, and a result wakes a sleeping manager itself: waking it now would cost a system call and a
   * thread competing for the CPU and the lock (most of a round trip) */
  if (mproc__engine_needs_manager(e)) mproc__engine_wake_manager(e);
}

bool mproc__engine_cancel_queued(mproc__engine *e, mproc__job *j) {
  mproc__job **pp = &e->pend_head, *last = NULL;
  while (*pp && *pp != j) {
    last = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp) return false;
  *pp = j->next;
  if (e->pend_tail == j) e->pend_tail = last;
  static const mproc_outcome c = {
      .kind = MPROC_OUTCOME_CANCELLED, .code = MPROC_ECANCELED, .exit_code = -1, .worker = -1};
  mproc__engine_complete_task(e, j, &c, NULL, NULL, 0);
  return true;
}

void mproc__engine_worker_busy_ns(const mproc__engine *e, uint64_t *busy) {
  for (int i = 0; i < e->nworkers; i++) busy[i] = e->ws ? e->ws[i].busy_ns : 0;
}

void mproc__engine_job_started(mproc__job *j, int worker) {
  j->attempts++;
  j->worker = worker;
  if (j->map) j->map->dispatched += j->count;
}

/* ---- completing work ---- */

bool mproc__engine_complete_task(mproc__engine *e, mproc__job *j, const mproc_outcome *o, const char *msg,
                                 void *result, size_t result_len) {
  mproc_outcome oc = *o;
  oc.attempts = j->attempts;
  bool taken = j->task_done(j, &oc, msg, result, result_len);
  e->outstanding--;
  mproc__job_free(j);
  mproc__engine_notify(e);
  return taken;
}

/* Items [first, first + count) of map m failed or were cancelled (lock held): the face is told. */
static void fail_items(mproc__engine *e, mproc__items *m, int64_t first, size_t count, const mproc_outcome *o,
                       const char *msg) {
  m->items_failed(m, first, count, o, msg);
  mproc__engine_notify(e);
}

/* Ends job j with outcome o (lock held): a task's future completes, a batch's items fail; j is freed. */
static void finish_job(mproc__engine *e, mproc__job *j, const mproc_outcome *o, const char *msg) {
  if (j->kind == JOB_TASK) {
    mproc__engine_complete_task(e, j, o, msg, NULL, 0);
    return;
  }
  mproc_outcome bo = *o;
  bo.attempts = j->attempts;
  /* the items its segments completed keep their outcome */
  if (j->done < j->count) fail_items(e, j->map, j->first + j->done, j->count - j->done, &bo, msg);
  e->outstanding--;
  mproc__job_free(j);
}

/* The same for every job of a list linked through next. */
static void finish_jobs(mproc__engine *e, mproc__job *j, const mproc_outcome *o, const char *msg) {
  while (j) {
    mproc__job *next = j->next;
    finish_job(e, j, o, msg);
    j = next;
  }
}

static const mproc_outcome cancelled_outcome = {
    .kind = MPROC_OUTCOME_CANCELLED, .code = MPROC_ECANCELED, .exit_code = -1, .worker = -1};

/* Takes map m's batches out of the queue and cancels their items (lock held). */
static void cancel_queued_batches(mproc__engine *e, mproc__items *m) {
  mproc__job **pp = &e->pend_head, *last = NULL;
  while (*pp) {
    mproc__job *j = *pp;
    if (j->map == m) {
      *pp = j->next;
      finish_job(e, j, &cancelled_outcome, NULL);
    } else {
      last = j;
      pp = &j->next;
    }
  }
  e->pend_tail = last;
}

void mproc__engine_cancel_batches(mproc__engine *e, mproc__items *m) { cancel_queued_batches(e, m); }

static void complete_ranges(mproc__engine *e, mproc__job *j, int64_t first, uint32_t count,
                            const wire_fail *fails, uint32_t nfail, int i);

/* The same for results of any size: each item's record from recs (checked by mproc__wire_segment_split or
 * mproc__var_records_span) goes to the face before the item completes. */
static void complete_var_items(mproc__engine *e, mproc__job *j, int64_t first, uint32_t count,
                               const unsigned char *recs, const wire_fail *fails, uint32_t nfail, int i) {
  mproc__items *m = j->map;
  if (m->items_results) { /* each run of records between the failures at once: a failed item's empty record
                           * is no result (kept, it turned a store of results of one length into one with
                           * an offset and a length per item: items.c) */
    uint32_t at = 0;
    for (uint32_t f = 0;; f++) {
      uint32_t end = f < nfail ? (uint32_t)(fails[f].index - first) : count;
      if (end > at) m->items_results(m, first + at, end - at, recs);
      if (f == nfail) break;
      for (size_t len; at <= end; at++) (void)mproc__var_rec_read(&recs, &len); /* the run and the failure */
    }
  } else { /* one call per item, a failed item's (empty) record skipped */
    uint32_t f = 0;
    for (uint32_t k = 0; k < count; k++) {
      size_t len;
      const unsigned char *data = mproc__var_rec_read(&recs, &len);
      if (f < nfail && fails[f].index == first + k)
        f++;
      else
        m->item_result(m, first + k, data, len);
    }
  }
  complete_ranges(e, j, first, count, fails, nfail, i); /* then the items' ends */
}

/* Items [first, first + count) of job j completed in worker i, all well but the nfail failures listed (in
 * index order); their records are in place, or for results of any size at recs (lock held). */
static void complete_items(mproc__engine *e, mproc__job *j, int64_t first, uint32_t count,
                           const unsigned char *recs, const wire_fail *fails, uint32_t nfail, int i) {
  mproc__items *m = j->map;
  if (m->var_out) {
    complete_var_items(e, j, first, count, recs, fails, nfail, i);
    return;
  }
  complete_ranges(e, j, first, count, fails, nfail, i);
}

/* The ends of items [first, first + count) of job j: the runs between the nfail failures well (lock held). */
static void complete_ranges(mproc__engine *e, mproc__job *j, int64_t first, uint32_t count,
                            const wire_fail *fails, uint32_t nfail, int i) {
  mproc__items *m = j->map;
  j->done += count;
  int64_t at = first, end = first + count;
  for (uint32_t k = 0; k < nfail; k++) {
    if (fails[k].index > at) m->items_ok(m, at, (size_t)(fails[k].index - at));
    mproc_outcome o = {.kind = MPROC_OUTCOME_FAILED,
                       .code = fails[k].code,
                       .exit_code = -1,
                       .worker = i,
                       .attempts = j->attempts};
    m->items_failed(m, fails[k].index, 1, &o, fails[k].msg);
    at = fails[k].index + 1;
  }
  if (end > at) m->items_ok(m, at, (size_t)(end - at));
  if (nfail) mproc__engine_notify(e);
}

static void spawn_worker(mproc__engine *e, int i);

/* ---- dispatch: hand queued jobs to workers with room ---- */

/* Jobs a worker may hold (running and queued in its ring) when j is handed out.  Two keep it busy while a
 * result travels back and bound the imbalance to one queued job; jobs that take microseconds need a
 * deeper queue, or the worker waits for the manager between every two of them.  How long j will take: a
 * batch is judged by its own map's items once one of its batches came back (before that, two: the
 * pool's average came from other work, and a few tiny tasks before a map of long ones once handed every
 * batch out at the start, a static schedule that left a worker idle at the end), a task by the average
 * of the pool's jobs. */
static int inflight_limit(const mproc__engine *e, const mproc__job *j) {
  /* hops: while a worker starts, the others hold one job each; a second one queued behind a long job could
   * not be taken back for the worker that comes up (a pool's first tasks waited a whole task behind others
   * while the workers of the ranks that started last idled) */
  if (e->ops->hop_ns > 0)
    for (int i = 0; i < e->nworkers; i++)
      if (e->ws[i].spawning) return 1;
  double ns = e->job_ns_avg;
  if (j->kind == JOB_BATCH)
    ns = j->map->timed_items ? (double)j->map->busy_ns / (double)j->map->timed_items * (double)j->count : 0;
  if (e->ops->hop_ns > 0 && j->kind != JOB_BATCH) {
    /* a worker behind hops (MPI: a result's way back and the next job's way out take e->ops->hop_ns) is idle
     * that long after each job unless enough are queued there to cover it; they cannot be taken back once
     * the courier has sent them, so no more than that: the work queued beyond the running job is about
     * hop_ns.  Each worker's window (wstate.window) bounds it further.  Not a map's batches: their size
     * already holds enough work (batching.h), and queued 33 deep a map of 10^6 tiny items on MPI took 1.4x
     * as long as with the two below (interleaved A/B, 9 rounds: 48.1 -> 68.4 ms). */
    if (!(ns > 0)) return INFLIGHT_PER_WORKER;
    double k = 1.0 + ceil(e->ops->hop_ns / ns);
    return k >= MPROC__CLAIMS ? MPROC__CLAIMS : k < INFLIGHT_PER_WORKER ? INFLIGHT_PER_WORKER : (int)k;
  }
  return ns > 0 && ns < SHORT_JOB_NS ? INFLIGHT_SHORT_JOBS : INFLIGHT_PER_WORKER;
}

/* Workers with a job in hand: each keeps a core busy. */
static int busy_workers(const mproc__engine *e) {
  int n = 0;
  for (int i = 0; i < e->nworkers; i++) n += e->ws[i].ninflight > 0;
  return n;
}

/* What a job is part of, for the workers' windows: its map's token, 0 for a submitted task. */
static uint64_t work_of(const mproc__job *j) { return j->kind == JOB_BATCH ? j->map->token : 0; }

static int pick_worker(mproc__engine *e, const mproc__job *j) {
  int best = -1;
  int limit = inflight_limit(e, j);
  for (int i = 0; i < e->nworkers; i++) {
    mproc__wstate *w = &e->ws[i];
    if (w->pid == 0 || w->stopping || w->kill_reason) continue;
    if (w->tx_job) continue; /* still writing a record */
    /* the claim word of its next job would be its oldest job's (many were taken back behind that one) */
    if (w->head && w->claim_seq - w->head->claim >= MPROC__CLAIMS) continue;
    if (w->ninflight >= limit) continue;
    /* hops: a worker holds more of a work only as it gives results of that work back (one stuck on a long
     * job gets no short ones queued behind it, where no idle worker could take them back) */
    if (e->ops->hop_ns > 0 && w->ninflight >= INFLIGHT_PER_WORKER &&
        (w->window_of != work_of(j) || w->ninflight >= w->window))
      continue;
    if (e->opts.max_tasks_per_child > 0 && w->jobs_sent >= e->opts.max_tasks_per_child) continue;
    if (best < 0 || w->ninflight < e->ws[best].ninflight) best = i;
  }
  return best;
}

/* Writes as much of worker i's current record as fits.  Returns true when it progressed. */
/* Writes what it can of a batch's items' bytes after their lengths (items of any size), from where it
 * stopped; returns the bytes written.  Small items are gathered into one write of the ring (a write per
 * item cost more than the copy), a large one goes straight from the caller's memory. */
static size_t tx_item_bytes(const mproc__job *j, mproc__wstate *w, mproc__ring *in) {
  if (w->tx_span) { /* one run of bytes: as much of it as the ring takes (tx_item_off counts them all) */
    size_t n = mproc__ring_put_some_quiet(in, w->tx_span + w->tx_item_off, w->tx_body_len - w->tx_item_off);
    w->tx_item_off += n;
    return n;
  }
  const uint64_t *lens = w->tx_var, *addrs = w->tx_var + 2 * (size_t)j->count;
  unsigned char buf[4096];
  size_t wrote = 0, room = mproc__ring_free(in);
  while (w->tx_item < j->count && room > 0) {
    size_t fill = 0;
    while (w->tx_item < j->count && fill < sizeof buf && fill < room) {
      const unsigned char *p = (const unsigned char *)(uintptr_t)addrs[w->tx_item] + w->tx_item_off;
      size_t left = (size_t)lens[w->tx_item] - w->tx_item_off;
      if (fill == 0 && left >= sizeof buf) { /* large: straight into the ring */
        size_t n = mproc__ring_put_some_quiet(in, p, left < room ? left : room);
        wrote += n;
        room -= n;
        w->tx_item_off += n;
        if (n == left) {
          w->tx_item++;
          w->tx_item_off = 0;
        }
        break;
      }
      size_t take = left;
      if (take > sizeof buf - fill) take = sizeof buf - fill;
      if (take > room - fill) take = room - fill;
      if (take) memcpy(buf + fill, p, take);
      fill += take;
      w->tx_item_off += take;
      if (take == left) {
        w->tx_item++;
        w->tx_item_off = 0;
      }
    }
    if (fill) {
      mproc__ring_put_some_quiet(in, buf, fill); /* fits: room was measured, and only we write */
      wrote += fill;
      room -= fill;
    }
  }
  return wrote;
}

static bool tx_progress(mproc__engine *e, int i) {
  mproc__wstate *w = &e->ws[i];
  mproc__job *j = w->tx_job;
  if (!j) return false;
  mproc__ring *in = e->sh->slots[i].in;
  size_t total = sizeof w->tx_hdr + w->tx_hdr.payload_len, before = w->tx_done;
  while (w->tx_done < total) {
    size_t n;
    if (w->tx_done < sizeof w->tx_hdr) {
      const unsigned char *hdr = (const unsigned char *)&w->tx_hdr;
      n = mproc__ring_put_some_quiet(in, hdr + w->tx_done, sizeof w->tx_hdr - w->tx_done);
    } else if (w->tx_done - sizeof w->tx_hdr < w->tx_arg_len) {
      size_t off = w->tx_done - sizeof w->tx_hdr;
      n = mproc__ring_put_some_quiet(in, (const unsigned char *)w->tx_arg + off, w->tx_arg_len - off);
    } else {
      n = tx_item_bytes(j, w, in);
    }
    if (n == 0) break;
    w->tx_done += n;
  }
  if (w->tx_done != before) mproc__ring_wake_if_unread(in); /* one wake for header and payload */
  if (w->tx_done == total) {
    w->tx_job = NULL;
    var_header_done(w);
  }
  /* waiting for space or not; the manager checks the ring again after this store before it sleeps */
  uint32_t *waiting = &e->sh->slots[i].tx_waiting;
  if ((w->tx_job != NULL) != (__atomic_load_n(waiting, __ATOMIC_RELAXED) != 0))
    __atomic_store_n(waiting, w->tx_job != NULL, __ATOMIC_SEQ_CST);
  return w->tx_done != before;
}

static bool hand_out(mproc__engine *e);
static bool take_back_for_idle(mproc__engine *e);

void mproc__engine_dispatch(mproc__engine *e) {
  if (mproc__engine_runs_here(e)) return;
  if (e->pend_head && !e->quitting && !e->terminating) {
    for (int i = 0; i < e->nworkers; i++) {
      if (e->ws[i].dormant) {
        e->ws[i].dormant = false;
        spawn_worker(e, i);
      }
    }
  }
  for (int i = 0; i < e->nworkers; i++) tx_progress(e, i);
  do {
    hand_out(e);
  } while (!e->pend_head && take_back_for_idle(e));
}

/* Hands queued jobs to the workers with room, oldest first; true when it handed out any. */
static bool hand_out(mproc__engine *e) {
  bool any = false;
  while (e->pend_head) {
    int i = pick_worker(e, e->pend_head);
    if (i < 0) break;
    mproc__job *j = e->pend_head;
    e->pend_head = j->next;
    if (!e->pend_head) e->pend_tail = NULL;
    j->next = NULL;
    uint64_t fn = (uint64_t)(uintptr_t)j->fn;
    if (e->sh->objs) { /* an exec pool: the function as (object, offset) */
      char msg[MPROC_TASK_MSG_MAX];
      int r = mproc__fnref_encode(e->sh, &e->fncache, (uintptr_t)j->fn, &fn, msg, sizeof msg);
      if (r < 0) {
        finish_job(e, j,
                   &(mproc_outcome){.kind = MPROC_OUTCOME_FAILED, .code = r, .exit_code = -1, .worker = -1},
                   msg);
        continue;
      }
    }
    mproc__wstate *w = &e->ws[i];
    bool var = j->kind == JOB_BATCH && j->map->var_in;
    w->tx_arg = j->arg;
    w->tx_arg_len = j->arg_len;
    w->tx_body_len = 0;
    if (var && !var_header(j->map, j, w)) {
      finish_job(
          e, j,
          &(mproc_outcome){.kind = MPROC_OUTCOME_FAILED, .code = MPROC_ENOMEM, .exit_code = -1, .worker = -1},
          "no memory for the batch's item lengths");
      continue;
    }
    if (w->tail)
      w->tail->next = j;
    else
      w->head = j;
    w->tail = j;
    w->ninflight++;
    w->jobs_sent++;
    mproc__engine_job_started(j, i);
    if (j->timeout > 0) e->timeouts_active = true;
    /* a new id for each hand-out: a claim word never sees the same id twice (a job taken back and handed to
     * the same worker again, its old record still unread there) */
    j->id = ++e->next_id;
    j->claim = w->claim_seq++;
    /* before the record: the ring's publication of it (a release) makes the word visible first */
    __atomic_store_n(&e->sh->slots[i].claim[j->claim % MPROC__CLAIMS], j->id, __ATOMIC_RELAXED);
    bool in_place = !var && (j->kind == JOB_BATCH ? j->map->in_shared : j->arg_shared);
    w->tx_hdr = (wire_job){.magic = WIRE_MAGIC,
                           .kind = (uint32_t)j->kind,
                           .id = j->id,
                           .fn = fn,
                           .first = j->kind == JOB_BATCH ? j->first : -1,
                           .count = j->count,
                           .attempt = (uint32_t)j->attempts,
                           .timed = j->timeout > 0,
                           .claim = j->claim % MPROC__CLAIMS,
                           .payload_len = in_place ? 0 : w->tx_arg_len + w->tx_body_len,
                           .in_len = w->tx_arg_len,
                           .in_addr = in_place ? (uint64_t)(uintptr_t)j->arg : 0};
    if (j->kind == JOB_BATCH) {
      if (j->map->out_shared) w->tx_hdr.out_addr = (uint64_t)(uintptr_t)mproc__map_out(j->map, j->first);
      w->tx_hdr.token = j->map->token;
      w->tx_hdr.seed = j->map->seed;
      w->tx_hdr.in_size = (uint32_t)j->map->in_size;
      w->tx_hdr.out_size = (uint32_t)j->map->out_size;
      w->tx_hdr.var = (var ? (w->tx_in_place ? MPROC__VAR_IN_PLACE : MPROC__VAR_IN) : 0) |
                      (j->map->var_out ? MPROC__VAR_OUT : 0);
    }
    w->tx_job = j;
    w->tx_done = 0;
    w->tx_item = 0;
    w->tx_item_off = 0;
    mproc__ring *in = e->sh->slots[i].in;
    size_t gap = mproc__ring_pad_gap(in, MPROC__REWIND_FROM, sizeof(wire_job));
    if (gap) {
      wire_job pad = {.magic = WIRE_MAGIC, .kind = JOB_PAD, .payload_len = gap - sizeof pad};
      mproc__ring_put_pad(in, &pad, sizeof pad, gap);
    }
    tx_progress(e, i);
    any = true;
  }
  return any;
}

/* A worker with nothing to do (alive, accepting jobs, none in hand). */
static bool idle_worker(const mproc__engine *e, int i) {
  const mproc__wstate *w = &e->ws[i];
  return w->pid && !w->stopping && !w->kill_reason && !w->tx_job && w->ninflight == 0 &&
         !(e->opts.max_tasks_per_child > 0 && w->jobs_sent >= e->opts.max_tasks_per_child);
}

/* No job handed to a worker waits there while another worker idles: when one idles and the queue is empty,
 * the oldest job that waits behind another in some worker (one written whole into its ring and not started:
 * its claim is still the manager's) is taken back and queued at the front, to go to the idle worker.  A
 * worker's first job is never taken, so a job cannot bounce between two workers.  True when a job was taken
 * back (lock held). */
static bool take_back_for_idle(mproc__engine *e) {
  if (e->quitting) return false;
  int idle = -1;
  for (int i = 0; i < e->nworkers && idle < 0; i++)
    if (idle_worker(e, i)) idle = i;
  if (idle < 0) return false;
  /* from the worker holding the most jobs */
  int victim = -1;
  for (int i = 0; i < e->nworkers; i++) {
    const mproc__wstate *w = &e->ws[i];
    if (i == idle || !w->pid || w->ninflight < 2) continue;
    if (victim < 0 || w->ninflight > e->ws[victim].ninflight) victim = i;
  }
  if (victim < 0) return false;
  mproc__wstate *w = &e->ws[victim];
  mproc__slot *slot = &e->sh->slots[victim];
  /* the worker claims its jobs in order: the first claim still ours is the oldest job not started */
  for (mproc__job *prev = w->head, *j = w->head->next; j && j != w->tx_job; prev = j, j = j->next) {
    uint64_t want = j->id;
    if (!__atomic_compare_exchange_n(&slot->claim[j->claim % MPROC__CLAIMS], &want, MPROC__REVOKED, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      continue;
    prev->next = j->next;
    if (w->tail == j) w->tail = prev;
    j->next = NULL;
    w->ninflight--;
    w->jobs_sent--; /* the worker skips it without counting it */
    j->attempts--;
    if (j->map) j->map->dispatched -= j->count;
    j->worker = -1;
    mproc__engine_enqueue(e, j, true);
    return true;
  }
  return false;
}

/* ---- results ---- */

static void pop_inflight(mproc__wstate *w, mproc__job *j) {
  w->head = j->next;
  if (!w->head) w->tail = NULL;
  w->ninflight--;
  if (w->window_of != work_of(j)) {
    w->window_of = work_of(j);
    w->window = INFLIGHT_PER_WORKER;
  }
  if (w->window < MPROC__CLAIMS) w->window++;
  j->next = NULL;
}

/* ---- result blocks kept for the next result ---- */

/* A task's result reaches its future in the block the manager read it into.  The allocator gives a large
 * block fresh pages each time (glibc maps one of 32 MiB or more anew and unmaps it when freed), and a fresh
 * page costs a fault and the kernel's zeroing at its first touch: 0.2 s for a 64 MiB result where a first
 * touch costs 12 us per 4 KiB (bench/run's probe).  So the block of a released result of SPARE_FROM bytes
 * or more is kept for the next result that fits it (SPARES at most, SPARE_BYTES in all, each freed once
 * unused for SPARE_AGE seconds: the manager looks at least twice a second), while the pool runs.  The bound
 * keeps what a release gives back to the system within reach of a program counting on it. */
#define SPARE_FROM ((size_t)8 << 20)
#define SPARE_BYTES ((size_t)256 << 20)
#define SPARES ((int)(sizeof((mproc__engine *)0)->spares / sizeof((mproc__engine *)0)->spares[0]))
#define SPARE_AGE 1.0

/* Frees the kept blocks given back before `before` (DBL_MAX: all of them).  Lock held. */
static void spares_trim(mproc__engine *e, double before) {
  int k = 0;
  for (int i = 0; i < e->nspares; i++) {
    if (e->spares[i].at < before)
      mproc__free(e->spares[i].p);
    else
      e->spares[k++] = e->spares[i];
  }
  e->nspares = k;
}

void mproc__engine_result_done(mproc__engine *e, void *p, size_t len) {
  if (!p) return;
  /* (quitting first: manager_started is cleared after it, without the lock) */
  if (len < SPARE_FROM || len > SPARE_BYTES || e->quitting || !e->manager_started) {
    mproc__free(p);
    return;
  }
  double now = mproc__plat_now();
  spares_trim(e, now - SPARE_AGE);
  size_t kept = len;
  for (int i = 0; i < e->nspares; i++) kept += e->spares[i].cap;
  while (e->nspares == SPARES || kept > SPARE_BYTES) { /* the oldest go */
    kept -= e->spares[0].cap;
    mproc__free(e->spares[0].p);
    memmove(&e->spares[0], &e->spares[1], (size_t)(e->nspares - 1) * sizeof e->spares[0]);
    e->nspares--;
  }
  e->spares[e->nspares++] = (struct mproc__spare){p, len, now};
}

/* A block for need bytes: the smallest kept one that holds them without wasting more than as much again,
 * or a new one.  Its size in *cap.  Lock held. */
static void *result_block(mproc__engine *e, size_t need, size_t *cap) {
  int best = -1;
  for (int i = 0; i < e->nspares; i++)
    if (e->spares[i].cap >= need && e->spares[i].cap / 2 <= need &&
        (best < 0 || e->spares[i].cap < e->spares[best].cap))
      best = i;
  if (best < 0) {
    *cap = need;
    return mproc__malloc(need);
  }
  void *p = e->spares[best].p;
  *cap = e->spares[best].cap;
  e->spares[best] = e->spares[--e->nspares];
  return p;
}

/* Worker w's block for a result's bytes, need of them.  Its old bytes are not kept: it grows only before
 * the first byte of a result is read into it (rx_read). */
static void *rx_grow(mproc__engine *e, mproc__wstate *w, size_t need) {
  if (need > w->rx_buf_cap) {
    size_t cap;
    void *p = result_block(e, need, &cap);
    if (!p) return NULL;
    mproc__engine_result_done(e, w->rx_buf, w->rx_buf_cap);
    w->rx_buf = p;
    w->rx_buf_cap = cap;
  }
  return w->rx_buf;
}

/* How long jobs take, smoothed: sizes the workers' queues (inflight_limit). */
static void note_job_time(mproc__engine *e, uint64_t ns) {
  e->job_ns_avg = e->job_ns_avg > 0 ? 0.9 * e->job_ns_avg + 0.1 * (double)ns : (double)ns;
}

static void finish_task_result(mproc__engine *e, int i, mproc__job *j) {
  mproc__wstate *w = &e->ws[i];
  wire_result *h = &w->rx_hdr;
  pop_inflight(w, j);
  note_job_time(e, h->busy_ns);
  mproc_outcome o = {.kind = h->code ? MPROC_OUTCOME_FAILED : MPROC_OUTCOME_OK,
                     .code = h->code,
                     .exit_code = -1,
                     .worker = i};
  size_t len = h->code ? 0 : h->payload_len;
  if (mproc__engine_complete_task(e, j, &o, w->rx_msg, len ? w->rx_buf : NULL, len)) {
    w->rx_buf = NULL; /* the future has taken the buffer over */
    w->rx_buf_cap = 0;
  }
}

static void batch_ended(mproc__engine *e, mproc__job *j);

/* A segment of batch j's results has been read (its records are in place); the last one ends the job. */
static void finish_segment(mproc__engine *e, int i, mproc__job *j) {
  mproc__wstate *w = &e->ws[i];
  wire_result *h = &w->rx_hdr;
  if (h->code != 0) {
    /* not run: its map was aborted (cancelled), or the worker could not find its function */
    pop_inflight(w, j);
    mproc_outcome o = {.kind = MPROC_OUTCOME_FAILED, .code = h->code, .exit_code = -1, .worker = i};
    finish_job(e, j, h->code == MPROC_ECANCELED ? &cancelled_outcome : &o,
               h->code == MPROC_ECANCELED ? NULL : w->rx_msg);
    return;
  }
  j->busy_ns += h->busy_ns;
  /* what came after the records read in place (rx_read): results of any size, then the failures */
  size_t nout = j->map->out_shared ? 0 : (size_t)h->count * j->map->out_size;
  const unsigned char *recs;
  const wire_fail *fails;
  if (h->payload_len < nout ||
      !mproc__wire_segment_split(h, w->rx_buf, h->payload_len - nout, j->map->var_out, &recs, &fails)) {
    /* cannot happen with a sane worker: treat it as a crash of that worker */
    mproc__engine_kill_worker(e, i, MPROC_OUTCOME_CRASHED);
    return;
  }
  complete_items(e, j, h->first, h->count, recs, fails, h->nfail, i);
  if (!h->last) return;
  pop_inflight(w, j);
  batch_ended(e, j);
}

void mproc__engine_item_done(mproc__engine *e, mproc__job *j, int64_t index, int code, const char *msg,
                             int worker) {
  if (code == 0 && j->map->var_out) { /* its result went to item_result already */
    j->done++;
    j->map->items_ok(j->map, index, 1);
    return;
  }
  if (code == 0) {
    complete_items(e, j, index, 1, NULL, NULL, 0, worker);
    return;
  }
  j->done++;
  mproc_outcome o = {
      .kind = MPROC_OUTCOME_FAILED, .code = code, .exit_code = -1, .worker = worker, .attempts = j->attempts};
  fail_items(e, j->map, index, 1, &o, msg);
}

void mproc__engine_batch_ran(mproc__engine *e, mproc__job *j, uint64_t busy_ns) {
  if (j->done < j->count) { /* its map stopped: the rest is cancelled */
    finish_job(e, j, &cancelled_outcome, NULL);
    return;
  }
  j->busy_ns = busy_ns;
  batch_ended(e, j);
}

/* Batch j's last segment is in (lock held): its time feeds the sizing of later batches; j is freed. */
static void batch_ended(mproc__engine *e, mproc__job *j) {
  mproc__items *m = j->map;
  note_job_time(e, j->busy_ns);
  m->busy_ns += j->busy_ns;
  m->timed_items += j->count;
  if (j->count > 0) {
    /* the least time per item: a worker's cold first item does not count against the rest */
    double per_item = (double)j->busy_ns / (double)j->count;
    if (m->timed_batches++ == 0 || per_item < m->best_item_ns) m->best_item_ns = per_item;
  }
  e->outstanding--;
  mproc__job_free(j);
  mproc__engine_notify(e);
}

static void finish_result(mproc__engine *e, int i) {
  mproc__wstate *w = &e->ws[i];
  mproc__job *j = w->head;
  w->busy_ns += w->rx_hdr.busy_ns;
  if (j->kind == JOB_TASK)
    finish_task_result(e, i, j);
  else
    finish_segment(e, i, j);
}

/* Reads what worker i has sent, without waking it (rx_progress does, once).  True when it progressed. */
static bool rx_read(mproc__engine *e, int i) {
  mproc__wstate *w = &e->ws[i];
  mproc__ring *out = e->sh->slots[i].out;
  bool progressed = false;
  for (;;) {
    if (w->rx_stage == 0) {
      if (mproc__ring_used(out) < sizeof w->rx_hdr) return progressed;
      mproc__ring_get_some_quiet(out, &w->rx_hdr, sizeof w->rx_hdr);
      progressed = true;
      if (w->rx_hdr.magic == WIRE_MAGIC && w->rx_hdr.kind == JOB_PAD) { /* published whole with its header */
        mproc__ring_skip(out, w->rx_hdr.payload_len);
        continue;
      }
      if (w->rx_hdr.magic != WIRE_MAGIC || !w->head || w->head->id != w->rx_hdr.id ||
          (w->head->kind == JOB_BATCH && w->rx_hdr.code == 0 &&
           (w->rx_hdr.first != w->head->first + w->head->done ||
            w->rx_hdr.count > w->head->count - w->head->done))) {
        /* cannot happen with a sane worker: treat it as a crash of that worker */
        mproc__engine_kill_worker(e, i, MPROC_OUTCOME_CRASHED);
        return progressed;
      }
      w->rx_stage = 1;
      w->rx_done = 0;
      w->rx_msg[0] = '\0';
    }
    if (w->rx_stage == 1) {
      size_t want = w->rx_hdr.msg_len;
      while (w->rx_done < want) {
        char tmp[MPROC_TASK_MSG_MAX];
        size_t left = want - w->rx_done;
        size_t n = mproc__ring_get_some_quiet(out, tmp, left < sizeof tmp ? left : sizeof tmp);
        if (n == 0) return progressed;
        size_t keep = w->rx_done < sizeof w->rx_msg - 1 ? sizeof w->rx_msg - 1 - w->rx_done : 0;
        memcpy(w->rx_msg + w->rx_done, tmp, n < keep ? n : keep);
        w->rx_done += n;
        w->rx_msg[w->rx_done < sizeof w->rx_msg ? w->rx_done : sizeof w->rx_msg - 1] = '\0';
        progressed = true;
      }
      w->rx_stage = 2;
      w->rx_done = 0;
    }
    if (w->rx_stage == 2) {
      mproc__job *j = w->head;
      size_t total = w->rx_hdr.payload_len;
      size_t nout = j->kind == JOB_BATCH && !j->map->out_shared && w->rx_hdr.code == 0
                        ? (size_t)w->rx_hdr.count * j->map->out_size
                        : 0;
      if (j->kind == JOB_TASK && !rx_grow(e, w, total ? total : 1)) return progressed; /* retried later */
      if (j->kind == JOB_BATCH && total > nout && !rx_grow(e, w, total - nout)) return progressed;
      /* the caller's array is copy-on-write since the template's fork: see MPROC__PREFAULT_MIN */
      if (nout >= MPROC__PREFAULT_MIN && w->rx_done == 0)
        (void)mproc__plat_prefault(mproc__map_out(j->map, w->rx_hdr.first), nout, 1);
      while (w->rx_done < total) {
        size_t n;
        if (j->kind == JOB_BATCH && w->rx_done < nout) {
          unsigned char *dst = mproc__map_out(j->map, w->rx_hdr.first) + w->rx_done;
          n = mproc__ring_get_some_quiet(out, dst, nout - w->rx_done);
        } else {
          size_t off = w->rx_done - nout;
          n = mproc__ring_get_some_quiet(out, w->rx_buf + off, total - w->rx_done);
        }
        if (n == 0) return progressed;
        w->rx_done += n;
        progressed = true;
      }
      w->rx_stage = 0;
      finish_result(e, i);
    }
  }
}

/* Reads what worker i has sent; a worker waiting for room in its ring is woken once, after the reads.
 * Returns true when it progressed. */
static bool rx_progress(mproc__engine *e, int i) {
  if (!rx_read(e, i)) return false;
  mproc__ring_wake_producer(e->sh->slots[i].out);
  return true;
}

/* ---- deaths ---- */

void mproc__engine_kill_worker(mproc__engine *e, int i, int reason) {
  if (!e->ops->kill) return; /* a thread cannot be killed: its task runs to the end */
  e->ws[i].kill_reason = reason;
  e->ops->kill(e, i);
}

static void spawn_worker(mproc__engine *e, int i) {
  e->ws[i].spawning = true;
  e->ops->spawn(e, i);
}

static bool rx_progress(mproc__engine *e, int i);

/* What a dead worker's job is told (lock held): the outcome kind and code from why it ended, and a message
 * naming the worker. */
static void death_outcome(const mproc__engine *e, int i, int wstatus, bool init_failed, mproc_outcome *o,
                          char *msg, size_t cap) {
  const mproc__wstate *w = &e->ws[i];
  *o = (mproc_outcome){.kind = MPROC_OUTCOME_CRASHED, .code = MPROC_ECRASHED, .exit_code = -1, .worker = i};
  /* A timeout's kill is SIGKILL: a worker that ended otherwise had crashed before the kill could act, and
   * only its death came late to the manager (an overloaded machine), so it is reported as the crash. */
  bool killed = WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
  if (w->kill_reason == MPROC_OUTCOME_TIMEDOUT && killed) {
    o->kind = MPROC_OUTCOME_TIMEDOUT;
    o->code = MPROC_ETASKTIMEOUT;
    snprintf(msg, cap, "timed out; worker %d (pid %d) killed", i, w->pid);
  } else if (w->kill_reason == MPROC_OUTCOME_CANCELLED || w->kill_reason == KILL_ABORT) {
    o->kind = MPROC_OUTCOME_CANCELLED;
    o->code = MPROC_ECANCELED;
    snprintf(msg, cap, "cancelled; worker %d (pid %d) killed", i, w->pid);
  } else if (init_failed) {
    o->exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    o->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
    snprintf(msg, cap, "worker %d (pid %d): the initializer failed", i, w->pid);
  } else if (WIFSIGNALED(wstatus)) {
    o->signal = WTERMSIG(wstatus);
    snprintf(msg, cap, "worker %d (pid %d) killed by signal %d (%s)", i, w->pid, o->signal,
             strsignal(o->signal));
  } else {
    o->exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    snprintf(msg, cap, "worker %d (pid %d) exited with status %d", i, w->pid, o->exit_code);
  }
}

/* A new batch for items [first, first + count) of j's map, with j's timeout and retries (not queued; NULL
 * without memory).  The one way a batch is split. */
static mproc__job *batch_part(mproc__engine *e, const mproc__job *j, int64_t first, int64_t count) {
  mproc__job *nj = mproc__batch_new(j->map, (size_t)first, (size_t)count, j->timeout, j->retries_left);
  if (!nj) return NULL;
  nj->attempts = j->attempts;
  j->map->batches_sent++;
  e->outstanding++;
  return nj;
}

/* A list of jobs to queue again, in order. */
typedef struct job_list {
  mproc__job *head, *last;
} job_list;
static void list_add(job_list *l, mproc__job *j) {
  j->next = NULL;
  if (l->last)
    l->last->next = j;
  else
    l->head = j;
  l->last = j;
}

/* Items [first, first + count) of j go back to the queue as a batch of their own; they fail as lost if
 * there is no memory for it. */
static void requeue_items(mproc__engine *e, const mproc__job *j, int64_t first, int64_t count, job_list *rq,
                          int i, int attempts) {
  if (count <= 0) return;
  mproc__job *nj = batch_part(e, j, first, count);
  if (!nj) {
    mproc_outcome lost = {.kind = MPROC_OUTCOME_LOST, .code = MPROC_ELOST, .exit_code = -1, .worker = i};
    fail_items(e, j->map, first, (size_t)count, &lost, "out of memory");
    return;
  }
  nj->attempts = attempts;
  list_add(rq, nj);
}

/* The items of running batch j that dead worker i finished and had not sent: their records are in its
 * staging area (or in place), those of the items before items_done, from the first item not yet received
 * on.  Completes them and returns how many (lock held; what the worker sent has all been read, or the part
 * of its last segment it sent is dropped: that segment's records are still in the staging area). */
static uint32_t recover_finished(mproc__engine *e, int i, mproc__job *j, bool clean) {
  mproc__slot *slot = &e->sh->slots[i];
  mproc__items *m = j->map;
  int64_t from = j->first + j->done, end = j->first + j->count;
  int64_t upto = __atomic_load_n(&slot->items_done, __ATOMIC_ACQUIRE);
  if (upto <= from || upto > end || m->aborting) return 0;
  uint32_t n = (uint32_t)(upto - from);
  bool staged = !m->out_shared && m->out_size;
  /* results of any size: their records are in the staging area, unless the last one was too large for it
   * and was being sent alone */
  if (m->var_out && clean) {
    int64_t alone = __atomic_load_n(&slot->sent_alone, __ATOMIC_ACQUIRE);
    clean = !(alone > from && alone <= upto) &&
            mproc__var_records_span(slot->staging, (size_t)slot->staging_size, n) != SIZE_MAX;
  }
  if (!clean || (staged && m->out_size > slot->staging_size)) {
    /* a record too large for the staging area was being sent (or what was sent could not all be read) */
    mproc_outcome lost = {.kind = MPROC_OUTCOME_LOST, .code = MPROC_ELOST, .exit_code = -1, .worker = i};
    fail_items(e, m, from, n, &lost, "the worker died while sending the result");
    j->done += n;
    return n;
  }
  if (staged) memcpy(mproc__map_out(m, from), slot->staging, (size_t)n * m->out_size);
  complete_items(e, j, from, n, m->var_out ? slot->staging : NULL, NULL, 0, i);
  return n;
}

/* Running batch j's worker died: what it finished is kept, the item it was running fails or is retried
 * alone, the items after it go back to the queue (lock held). */
static void running_batch_died(mproc__engine *e, int i, mproc__job *j, bool clean, bool init_failed,
                               mproc_outcome o, const char *msg, job_list *rq) {
  mproc__items *m = j->map;
  if (!init_failed) recover_finished(e, i, j, clean);
  int64_t from = j->first + j->done, end = j->first + j->count;
  int64_t item = __atomic_load_n(&e->sh->slots[i].running_item, __ATOMIC_ACQUIRE);
  /* killed between two items (both words say the next one): none of them crashed */
  bool between = !init_failed && item < from;
  if (init_failed || item < from || item >= end) item = from;
  if (from < end && !between) {
    if (j->retries_left > 0 && o.kind != MPROC_OUTCOME_CANCELLED && !m->stopped) {
      mproc__job *nj = batch_part(e, j, item, 1);
      if (nj) {
        nj->retries_left--;
        list_add(rq, nj);
      }
    } else {
      o.attempts = j->attempts;
      fail_items(e, m, item, 1, &o, msg);
    }
    item++;
  }
  /* what never ran goes back: an attempt is counted only for what ran */
  requeue_items(e, j, item, end - item, rq, i, j->attempts - 1);
  j->done = j->count;
  e->outstanding--;
  mproc__job_free(j);
}

static void worker_died(mproc__engine *e, int i, int wstatus) {
  mproc__wstate *w = &e->ws[i];
  mproc__slot *slot = &e->sh->slots[i];
  /* Whatever the worker published before it ended is final: take those results first, or the jobs they
   * belong to would be run again.  A record it left half-written is dropped with the ring. */
  rx_progress(e, i);
  /* bytes still unread that are not part of the segment it was sending: not expected (the read keeps up) */
  bool clean = w->rx_stage != 0 || mproc__ring_used(slot->out) == 0;
  w->rx_stage = 0;
  uint64_t running = __atomic_load_n(&slot->running_job, __ATOMIC_ACQUIRE);
  bool init_failed = __atomic_load_n(&slot->in_init, __ATOMIC_ACQUIRE) != 0;
  /* A worker whose initializer failed ran nothing: fail the first job handed to it rather than respawn
   * forever (Python's Pool hangs here). */
  if (init_failed && w->head) running = w->head->id;
  mproc_outcome o;
  char msg[MPROC_TASK_MSG_MAX];
  death_outcome(e, i, wstatus, init_failed, &o, msg, sizeof msg);
  bool terminating = w->kill_reason == MPROC_OUTCOME_CANCELLED;
  /* The job it ran (if any) fails or is retried; the ones queued behind it go back to the queue. */
  mproc__job *j = w->head;
  job_list rq = {NULL, NULL};
  bool had_jobs = j != NULL;
  w->head = w->tail = NULL;
  w->ninflight = 0;
  w->window = 0; /* the next worker in the slot earns its own */
  w->tx_job = NULL;
  __atomic_store_n(&e->sh->slots[i].tx_waiting, 0, __ATOMIC_RELAXED);
  while (j) {
    mproc__job *next = j->next;
    j->next = NULL;
    bool was_running = running != 0 && j->id == running;
    if (j->kind == JOB_BATCH && j->map->aborting) {
      finish_job(e, j, &cancelled_outcome, NULL);
    } else if (!was_running && terminating) {
      /* terminate(): what waited behind the killed task is cancelled too, not run again */
      finish_job(e, j, &o, NULL);
    } else if (!was_running) {
      j->attempts--; /* never ran */
      j->worker = -1;
      list_add(&rq, j);
    } else if (j->kind == JOB_TASK) {
      if (j->retries_left > 0 && o.kind != MPROC_OUTCOME_CANCELLED) {
        j->retries_left--;
        j->worker = -1;
        list_add(&rq, j);
      } else {
        mproc__engine_complete_task(e, j, &o, msg, NULL, 0);
      }
    } else {
      running_batch_died(e, i, j, clean, init_failed, o, msg, &rq);
    }
    j = next;
  }
  /* requeued jobs go first, in their order */
  if (rq.head) {
    rq.last->next = e->pend_head;
    if (!e->pend_head) e->pend_tail = rq.last;
    e->pend_head = rq.head;
  }
  w->pid = 0;
  w->kill_reason = 0;
  w->jobs_sent = 0;
  w->rx_stage = 0;
  w->stopping = false;
  if (init_failed && !had_jobs && e->pend_head && !e->draining && !e->quitting) {
    /* it died before it was handed anything: the first queued job takes the failure, so that every failed
     * start consumes one job and nothing waits forever for a worker that can never start */
    mproc__job *q = e->pend_head;
    e->pend_head = q->next;
    if (!e->pend_head) e->pend_tail = NULL;
    q->next = NULL;
    q->attempts++;
    finish_job(e, q, &o, msg);
    had_jobs = true;
  }
  mproc__engine_notify(e);
  if (init_failed && !rq.head && !had_jobs) {
    w->dormant = true; /* no busy loop of failing initializers: wait for work */
  } else if (!e->quitting && !e->draining && !e->terminating) {
    spawn_worker(e, i);
  }
}

static void pool_lost(mproc__engine *e, int code, const char *msg);

static void handle_template(mproc__engine *e) {
  uint32_t ev = __atomic_load_n(&e->sh->template_events, __ATOMIC_ACQUIRE);
  if (ev == e->tpl_seen) return;
  e->tpl_seen = ev;
  tpl_msg m;
  while (mproc__plat_recv_msg(e->tpl_sock, &m, sizeof m, false) == (ssize_t)sizeof m) {
    if (m.slot < 0 || m.slot >= e->nworkers) continue;
    mproc__wstate *w = &e->ws[m.slot];
    if (m.op == TPL_SPAWNED) {
      w->spawning = false;
      w->pid = m.pid;
      e->ready = true;
    } else if (m.op == TPL_SPAWN_FAILED) {
      /* the slot stays empty; when no worker is left or on its way, nothing could ever run */
      w->spawning = false;
      bool any = false;
      for (int k = 0; k < e->nworkers; k++) any = any || e->ws[k].pid || e->ws[k].spawning;
      if (!any && !e->broken) {
        char msg[MPROC_TASK_MSG_MAX];
        snprintf(msg, sizeof msg, "no worker could be started: %s", mproc_strerror(-m.value));
        pool_lost(e, -m.value, msg);
      }
    } else if (m.op == TPL_DIED) {
      if (e->ops->reaped) e->ops->reaped(e, m.slot);
      worker_died(e, m.slot, m.value);
    }
  }
  mproc__engine_notify(e);
}

/* Kills workers whose task ran past its timeout; returns seconds until the next deadline (-1: none). */
static double check_timeouts(mproc__engine *e) {
  if (!e->timeouts_active) return -1;
  double next = -1;
  uint64_t now = mproc__now_ns();
  bool any = false;
  for (int i = 0; i < e->nworkers; i++) {
    mproc__wstate *w = &e->ws[i];
    if (!w->pid || !w->head || w->kill_reason) continue;
    for (mproc__job *j = w->head; j; j = j->next)
      if (j->timeout > 0) any = true;
    mproc__job *j = w->head;
    if (j->timeout <= 0) continue;
    mproc__slot *s = &e->sh->slots[i];
    /* not begun, or its function has returned and its result is on its way: no clock runs */
    bool runs = __atomic_load_n(&s->running_job, __ATOMIC_ACQUIRE) == j->id;
    uint64_t started = runs ? __atomic_load_n(&s->started_ns, __ATOMIC_ACQUIRE) : MPROC__RETURNED;
    if (started == MPROC__RETURNED) {
      next = next < 0 || j->timeout < next ? j->timeout : next;
      continue;
    }
    /* the task may have started after `now` was read: never let the difference wrap */
    int64_t ran_ns = (int64_t)(now - started);
    double ran = ran_ns > 0 ? (double)ran_ns * 1e-9 : 0.0;
    if (ran >= j->timeout) {
      mproc__engine_kill_worker(e, i, MPROC_OUTCOME_TIMEDOUT);
    } else {
      double left = j->timeout - ran;
      if (next < 0 || left < next) next = left;
    }
  }
  if (!any) {
    bool pend = false;
    for (mproc__job *j = e->pend_head; j && !pend; j = j->next) pend = j->timeout > 0;
    e->timeouts_active = pend;
  }
  return next;
}

bool mproc__engine_poll(mproc__engine *e) {
  if (mproc__engine_runs_here(e) || e->quitting) return false;
  bool progressed = false;
  handle_template(e);
  for (int i = 0; i < e->nworkers; i++)
    if (e->ws[i].pid) progressed |= rx_progress(e, i);
  mproc__engine_dispatch(e);
  return progressed;
}

/* Nothing can run any more: the template died (it never does on its own; its workers end with it, and
 * ops->reap_orphans has reaped those that came to us), or no worker could be started (code is then the
 * fork's error).  Everything in flight or queued fails with code, and so does every later submission (lock
 * held). */
static void pool_lost(mproc__engine *e, int code, const char *msg) {
  e->broken = code;
  snprintf(e->broken_msg, sizeof e->broken_msg, "%s", msg);
  e->closed = true;
  mproc_outcome lost = {.kind = MPROC_OUTCOME_LOST, .code = code, .exit_code = -1, .worker = -1};
  for (int i = 0; i < e->nworkers; i++) {
    mproc__wstate *w = &e->ws[i];
    mproc__job *j = w->head;
    w->head = w->tail = NULL;
    w->ninflight = 0;
    w->tx_job = NULL;
    w->pid = 0;
    w->dormant = false;
    finish_jobs(e, j, &lost, msg);
  }
  mproc__job *queued = e->pend_head;
  e->pend_head = e->pend_tail = NULL;
  finish_jobs(e, queued, &lost, msg);
  mproc__engine_notify(e);
}

/* True when the template has news, a worker a result, or a ring room for a record being written. */
static bool anything_ready(mproc__engine *e);

void mproc__engine_poll_begin(mproc__engine *e) {
  if (mproc__engine_runs_here(e) || !e->sh) return;
  if (e->pollers++ == 0 && e->manager_asleep) __atomic_store_n(&e->sh->manager_sleeping, 0, __ATOMIC_SEQ_CST);
}

void mproc__engine_poll_end(mproc__engine *e) {
  if (mproc__engine_runs_here(e) || !e->sh) return;
  if (--e->pollers == 0 && e->manager_asleep) {
    /* Dekker with the workers: they publish then read the flag; we set the flag then read the rings */
    __atomic_store_n(&e->sh->manager_sleeping, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (anything_ready(e)) {
      __atomic_fetch_add(&e->sh->doorbell, 1, __ATOMIC_SEQ_CST);
      mproc__plat_futex_wake(&e->sh->doorbell, 1);
    }
  }
}

static bool results_unread(const mproc__engine *e) {
  for (int i = 0; i < e->nworkers; i++)
    if (mproc__ring_used(e->sh->slots[i].out) > 0) return true;
  return false;
}

void mproc__engine_await_results(mproc__engine *e, int max_spins) {
  if (!e->sh) return;
  mproc__spin spin = {.rounds = max_spins, .pauses = 1};
  while (!results_unread(e) && mproc__spin_once(&spin)) {
  }
}

static bool anything_ready(mproc__engine *e) {
  if (__atomic_load_n(&e->sh->template_events, __ATOMIC_ACQUIRE) != e->tpl_seen) return true;
  for (int i = 0; i < e->nworkers; i++) {
    if (e->ws[i].pid && mproc__ring_used(e->sh->slots[i].out) > 0) return true;
    if (e->ws[i].tx_job && mproc__ring_free(e->sh->slots[i].in) > 0) return true;
  }
  return false;
}

void mproc__engine_defer(mproc__engine *e, mproc__deferred *d) {
  d->next = NULL;
  if (e->deferred_tail)
    e->deferred_tail->next = d;
  else
    e->deferred = d;
  e->deferred_tail = d;
}

void mproc__engine_run_callbacks(mproc__engine *e) {
  while (e->deferred) {
    mproc__deferred *list = e->deferred;
    e->deferred = e->deferred_tail = NULL;
    pthread_mutex_unlock(&e->lock);
    while (list) {
      mproc__deferred *next = list->next;
      list->run(list); /* may free list */
      list = next;
    }
    pthread_mutex_lock(&e->lock);
  }
}

static void *manager_main(void *arg) {
  mproc__engine *e = arg;
  pthread_mutex_lock(&e->lock);
  if (!e->ops->starts_workers)
    for (int i = 0; i < e->nworkers; i++) spawn_worker(e, i);
  mproc__spin spin = {.rounds = MANAGER_SPIN_ROUNDS, .pauses = MANAGER_SPIN_PAUSES};
  while (!e->quitting) {
    bool progressed = false;
    handle_template(e);
    for (int i = 0; i < e->nworkers; i++)
      if (e->ws[i].pid) progressed |= rx_progress(e, i);
    mproc__engine_dispatch(e);
    double next_deadline = check_timeouts(e);
    if (e->deferred) mproc__engine_run_callbacks(e);
    if (progressed) {
      mproc__spin_reset(&spin);
      continue;
    }
    /* spin only while results are due and a core is free for it: an idle manager (also while workers
     * start), or one beside as many busy workers as there are cores, would take the CPU from the
     * processes it waits for */
    if (mproc__spin_due(&spin) && e->pollers == 0 && e->outstanding > 0 && busy_workers(e) < e->ncpus) {
      pthread_mutex_unlock(&e->lock);
      mproc__spin_pause(&spin);
      pthread_mutex_lock(&e->lock);
      continue;
    }
    mproc__spin_reset(&spin);
    /* while a caller polls, results are its to take: workers need not wake us (see poll_end) */
    uint32_t seen = mproc__bell_announce(doorbell(e), e->pollers == 0);
    if ((e->pollers == 0 && anything_ready(e)) || e->quitting) {
      mproc__bell_awake(doorbell(e));
      continue;
    }
    e->manager_asleep = true;
    /* look at the template at least twice a second: if it died, nothing else would ever ring the
     * doorbell (also when idle: a submission does not always wake us, see mproc__engine_needs_manager) */
    double wait = next_deadline >= 0 ? next_deadline + 0.0005 : -1;
    if (wait < 0 || wait > 0.5) wait = 0.5;
    pthread_mutex_unlock(&e->lock);
    int fr = mproc__bell_sleep(doorbell(e), seen, wait);
    pthread_mutex_lock(&e->lock);
    e->manager_asleep = false;
    mproc__bell_awake(doorbell(e));
    if (e->nspares) spares_trim(e, mproc__plat_now() - SPARE_AGE);
    if (fr == MPROC_ETIMEDOUT && !e->broken && e->ops->gone && e->ops->gone(e)) {
      if (e->ops->reap_orphans) e->ops->reap_orphans(e);
      pool_lost(e, MPROC_ELOST, "the pool's template process died");
    }
  }
  pthread_mutex_unlock(&e->lock);
  /* the template reaps its workers and ends before the manager does: nothing outlives the pool */
  if (e->ops->stop_in_manager) e->ops->stop_in_manager(e);
  return NULL;
}

/* ---- start and stop ---- */

static size_t round_pow2(size_t n) {
  size_t p = 4096;
  while (p < n && p < ((size_t)1 << 30)) p <<= 1;
  return p;
}

/* Where things lie in the shared mapping: per worker its two rings and staging area, then the copy of the
 * initializer's argument, then (exec pools) the table of loaded objects. */
typedef struct layout {
  size_t ring_bytes, staging_bytes, per_worker, slots_at, conf_end, objs_at, total;
} layout;

static size_t cacheline_up(size_t n) { return (n + MPROC_CACHELINE - 1) & ~(size_t)(MPROC_CACHELINE - 1); }

static layout plan_layout(const mproc__engine *e, const mproc_pool_opts *opts) {
  layout l;
  l.ring_bytes = cacheline_up(mproc__ring_bytes(e->ring_size));
  /* a worker's staging area: the records of a batch of the automatic size (a quarter of a ring) */
  l.staging_bytes = cacheline_up(e->ring_size / 4);
  l.per_worker = 2 * l.ring_bytes + l.staging_bytes;
  l.slots_at = cacheline_up(sizeof(mproc__shared) + (size_t)e->nworkers * sizeof(mproc__slot));
  l.conf_end = l.slots_at + (size_t)e->nworkers * l.per_worker; /* the initializer's argument follows */
  l.objs_at = cacheline_up(l.conf_end + opts->init_arg_len);
  l.total =
      mproc__engine_fresh_image(e) ? l.objs_at + sizeof(mproc__objtab) : l.conf_end + opts->init_arg_len;
  return l;
}

/* Makes the shared mapping: a memory file when another process must map it too (the fork server's
 * template, a fresh image), anonymous shared memory otherwise.  0 or negative errno. */
static int map_shared(mproc__engine *e) {
  int err = 0;
  if (e->ops->needs_memfd) {
    e->sh_fd = mproc__plat_shm_create_fd("mproc-pool", e->sh_bytes);
    if (e->sh_fd < 0) return e->sh_fd;
    e->sh = mproc__plat_shm_map(e->sh_fd, e->sh_bytes, &err);
    if (!e->sh) {
      mproc__plat_close(e->sh_fd);
      e->sh_fd = -1;
      return err;
    }
    return 0;
  }
  e->sh = mproc__plat_shm_map_anon(e->sh_bytes, &err);
  return e->sh ? 0 : err;
}

/* The workers' configuration, and a copy of the initializer's argument, in the mapping (a worker made by a
 * fork server has none of the caller's heap).  A fresh image finds the initializer and finalizer by
 * (object, offset).  0, or MPROC_ENOTSUP when one of them is in no loaded object. */
static int write_conf(mproc__engine *e, const mproc_pool_opts *opts, const layout *l) {
  e->sh->nworkers = (uint32_t)e->nworkers;
  unsigned char *init_copy = (unsigned char *)e->sh + l->conf_end;
  if (opts->init_arg_len) memcpy(init_copy, opts->init_arg, opts->init_arg_len);
  e->sh->conf = (mproc__wconf){.nworkers = e->nworkers,
                               .max_tasks_per_child = opts->max_tasks_per_child,
                               .keep_thread_env = opts->keep_thread_env,
                               .own_mappings = !e->ops->shares_memory,
                               .initializer = opts->initializer,
                               .finalizer = opts->finalizer,
                               .init_arg = opts->init_arg_len ? init_copy : NULL,
                               .init_arg_len = opts->init_arg_len};
  if (!mproc__engine_fresh_image(e)) return 0;
  /* the template sets the pointers from the references */
  e->sh->objs = (mproc__objtab *)((unsigned char *)e->sh + l->objs_at);
  char msg[MPROC_TASK_MSG_MAX];
  mproc__wconf *c = &e->sh->conf;
  c->initializer = NULL;
  c->finalizer = NULL;
  if ((opts->initializer && mproc__fnref_encode(e->sh, &e->fncache, (uintptr_t)opts->initializer,
                                                &c->initializer_ref, msg, sizeof msg) < 0) ||
      (opts->finalizer && mproc__fnref_encode(e->sh, &e->fncache, (uintptr_t)opts->finalizer,
                                              &c->finalizer_ref, msg, sizeof msg) < 0))
    return MPROC_ENOTSUP;
  return 0;
}

static void init_slots(mproc__engine *e, const layout *l) {
  for (int i = 0; i < e->nworkers; i++) {
    unsigned char *base = (unsigned char *)e->sh + l->slots_at + (size_t)i * l->per_worker;
    mproc__slot *s = &e->sh->slots[i];
    s->in = (mproc__ring *)base;
    s->out = (mproc__ring *)(base + l->ring_bytes);
    s->staging = base + 2 * l->ring_bytes;
    s->staging_size = l->staging_bytes;
    mproc__ring_init(s->in, e->ring_size);
    mproc__ring_init(s->out, e->ring_size);
    /* the manager's side of both rings sleeps on the doorbell */
    mproc__ring_set_consumer_wake(s->out, &e->sh->manager_sleeping, &e->sh->doorbell);
    mproc__ring_set_producer_wake(s->in, &s->tx_waiting, &e->sh->doorbell);
  }
}

/* The backend's start, then the workers' last setting and the manager thread.  The template is made here,
 * in the caller's thread: its errors are this call's, and start-up does not wait for a new thread to be
 * scheduled first.  0 or negative errno (the backend stopped again). */
static int launch(mproc__engine *e, const mproc_pool_opts *opts) {
  int r = e->ops->start(e);
  mproc__plat_close(e->sh_fd); /* the mapping lives on without it */
  e->sh_fd = -1;
  if (r < 0) return r;
  /* worked out while the template forks the first workers, which wait for it (reading the cgroup files
   * takes a tenth of a millisecond: not before the template, nor in each worker) */
  e->ncpus = mproc_cpu_count();
  if (!opts->keep_thread_env && e->ops->kill)
    e->sh->conf.thread_env_n = mproc__thread_env_value(e->ncpus, e->nworkers);
  __atomic_store_n(&e->sh->conf_ready, 1, __ATOMIC_RELEASE);
  mproc__plat_futex_wake(&e->sh->conf_ready, INT32_MAX);
  /* on their way already (before any thread could take their news) */
  for (int i = 0; e->ops->starts_workers && i < e->nworkers; i++) e->ws[i].spawning = true;
  r = -pthread_create(&e->manager, NULL, manager_main, e);
  if (r < 0) {
    if (e->ops->stop_in_manager) e->ops->stop_in_manager(e);
    if (e->ops->stop_after_manager) e->ops->stop_after_manager(e);
  }
  return r;
}

int mproc__engine_start(mproc__engine *e, const mproc_pool_opts *opts) {
  e->opts = *opts;
  pthread_mutex_init(&e->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->done_cv, &ca);
  pthread_condattr_destroy(&ca);
  e->tpl_sock = -1;
  e->sh_fd = -1;
  if (mproc__engine_runs_here(e)) return 0;

  e->ring_size = round_pow2(opts->ring_bytes ? opts->ring_bytes : (size_t)256 * 1024);
  layout l = plan_layout(e, opts);
  e->sh_bytes = l.total;
  int r = map_shared(e);
  if (r < 0) return r;
  r = write_conf(e, opts, &l);
  if (r == 0) {
    init_slots(e, &l);
    e->ws = mproc__calloc((size_t)e->nworkers, sizeof *e->ws);
    r = e->ws ? launch(e, opts) : MPROC_ENOMEM;
  }
  if (r < 0) {
    mproc__plat_close(e->sh_fd);
    e->sh_fd = -1;
    mproc__free(e->ws);
    e->ws = NULL;
    mproc__plat_shm_unmap(e->sh, e->sh_bytes);
    e->sh = NULL;
    return r;
  }
  /* No wait for the workers: tasks queue until one has started, and a caller waiting for a result takes
   * the template's news itself (mproc__engine_poll), so the first result costs the template's fork and a
   * worker's, nothing more. */
  e->manager_started = true;
  return 0;
}

void mproc__engine_abort_map(mproc__engine *e, mproc__items *m) {
  m->aborting = true;
  m->stopped = true;
  cancel_queued_batches(e, m); /* queued batches: cancelled now */
  if (mproc__engine_runs_here(e)) return;
  /* batches in workers' rings are skipped; a worker running one is killed */
  uint32_t k = __atomic_fetch_add(&e->sh->aborted_next, 1, __ATOMIC_SEQ_CST) % 16;
  __atomic_store_n(&e->sh->aborted[k], m->token, __ATOMIC_SEQ_CST);
  for (int i = 0; i < e->nworkers; i++) {
    mproc__wstate *w = &e->ws[i];
    if (!w->pid || w->kill_reason || !w->head) continue;
    uint64_t running = __atomic_load_n(&e->sh->slots[i].running_job, __ATOMIC_ACQUIRE);
    for (mproc__job *j = w->head; j; j = j->next)
      if (j->map == m && (j->id == running || j == w->head)) {
        mproc__engine_kill_worker(e, i, KILL_ABORT);
        break;
      }
  }
}

void mproc__engine_terminate(mproc__engine *e) {
  e->closed = true;
  e->terminating = true; /* a killed worker is not replaced */
  mproc__engine_cancel_pending(e);
  if (mproc__engine_runs_here(e)) return;
  for (int i = 0; i < e->nworkers; i++) {
    mproc__wstate *w = &e->ws[i];
    if (w->pid && w->head && !w->kill_reason) mproc__engine_kill_worker(e, i, MPROC_OUTCOME_CANCELLED);
  }
}

/* Cancels every queued job (lock held). */
void mproc__engine_cancel_pending(mproc__engine *e) {
  mproc__job *j = e->pend_head;
  e->pend_head = e->pend_tail = NULL;
  finish_jobs(e, j, &cancelled_outcome, NULL);
}

void mproc__engine_stop(mproc__engine *e) {
  if (mproc__engine_runs_here(e)) { /* what waits in the queue (a stream's next batches) never runs */
    pthread_mutex_lock(&e->lock);
    e->closed = true;
    e->terminating = true;
    mproc__engine_cancel_pending(e);
    mproc__engine_run_callbacks(e);
    pthread_mutex_unlock(&e->lock);
  }
  if (!mproc__engine_runs_here(e) && e->manager_started) {
    pthread_mutex_lock(&e->lock);
    e->closed = true;
    e->terminating = true;
    mproc__engine_cancel_pending(e);
    /* a grace period for what runs, then the workers are killed with the template */
    double deadline = mproc__deadline(1.0);
    while (e->outstanding > 0 && mproc__remaining(deadline) > 0 && !e->broken)
      mproc__cond_timedwait(&e->done_cv, &e->lock, &e->waiters, deadline);
    /* idle workers are told to stop, so they run their finalizer and exit; what still runs or does not
     * answer within half a second is killed with the template */
    if (e->ops->kill && !e->broken) {
      e->draining = true;
      wire_job stop = {.magic = WIRE_MAGIC, .kind = JOB_STOP};
      double until = mproc__deadline(0.5);
      for (;;) {
        /* a worker being started (a replacement) is told as soon as it exists */
        bool any = false;
        for (int i = 0; i < e->nworkers; i++) {
          mproc__wstate *w = &e->ws[i];
          if (w->pid && !w->stopping && !w->head && !w->tx_job &&
              mproc__ring_free(e->sh->slots[i].in) >= sizeof stop) {
            mproc__ring_put_some(e->sh->slots[i].in, &stop, sizeof stop);
            w->stopping = true;
          }
          any |= w->pid != 0 || w->spawning;
        }
        if (!any || mproc__cond_timedwait(&e->done_cv, &e->lock, &e->waiters, until) == MPROC_ETIMEDOUT)
          break;
      }
    }
    e->quitting = true;
    mproc__engine_run_callbacks(e);
    pthread_mutex_unlock(&e->lock);
    __atomic_fetch_add(&e->sh->doorbell, 1, __ATOMIC_SEQ_CST);
    mproc__plat_futex_wake(&e->sh->doorbell, 1);
    pthread_join(e->manager, NULL); /* it has stopped the template, workers and all */
    e->manager_started = false;
    if (e->ops->stop_after_manager) e->ops->stop_after_manager(e);
    /* whatever was still in flight was killed with its worker */
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->nworkers; i++) {
      mproc__wstate *w = &e->ws[i];
      mproc__job *j = w->head;
      w->head = w->tail = NULL;
      finish_jobs(e, j, &cancelled_outcome, "the pool was destroyed");
      mproc__free(w->rx_buf);
      w->rx_buf = NULL;
      w->rx_buf_cap = 0;
      mproc__big_free(&w->tx_block);
    }
    mproc__engine_cancel_pending(e);
    mproc__engine_run_callbacks(e);
    spares_trim(e, DBL_MAX);
    pthread_mutex_unlock(&e->lock);
  }
  mproc__free(e->ws);
  e->ws = NULL;
  if (e->sh) mproc__plat_shm_unmap(e->sh, e->sh_bytes);
  e->sh = NULL;
}

void mproc__engine_release(mproc__engine *e) {
  pthread_cond_destroy(&e->done_cv);
  pthread_mutex_destroy(&e->lock);
}
