/* engine.h: the one engine under every face (pool, executor, streams, Parallel): jobs, the manager's view
 * of each worker, and the calls the faces use.  How it works is in docs/design.md; the records on the wire
 * are in wire.h, the shared mapping in shared.h, the backends' interface in backend/backend.h.
 *
 * Threads of the caller.  Any thread holding engine.lock may append jobs to a worker's `in` ring (the lock
 * makes it single-producer); results are read by the manager thread or by a caller polling with the lock,
 * which complete futures and map items; done-callbacks run without the lock.  The manager also enforces
 * timeouts and replaces dead workers.  It sleeps on one futex word, the doorbell, which every event rings
 * only while it sleeps: a result, freed ring space, a submission, a message from the backend.
 *
 * Faults.  When a worker dies, the job it was running completes as CRASHED (or TIMEDOUT when the manager
 * had it killed for its timeout), or is retried; the items of a batch it had finished are kept; the jobs
 * queued behind it go back to the front of the queue; a new worker is started.  Lock order: engine.lock,
 * then nothing (callbacks run unlocked). */
#ifndef MPROC_ENGINE_H
#define MPROC_ENGINE_H

#include <pthread.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "core/task_local.h"
#include "engine/shared.h"
#include "engine/wire.h"
#include "internal.h"

struct mproc__items;
struct mproc__engine;

/* Work a completion defers until the engine lock is dropped (a future's done-callbacks): a node the
 * completing side allocates and frees; the engine links it and calls run(node) without its lock. */
typedef struct mproc__deferred {
  struct mproc__deferred *next;
  void (*run)(struct mproc__deferred *self);
} mproc__deferred;

/* Task arguments and results up to this size live inside the job and the future (the tutorial's tasks
 * take and return a number or two): a round trip then allocates nothing for them. */
#define MPROC__INLINE_BYTES 32

typedef struct mproc__job {
  uint64_t id;
  int kind;
  mproc_task_fn fn;
  const void *arg;
  size_t arg_len;
  void *arg_owned;          /* the copy a submitted task owns, unless it fits arg_inline */
  bool arg_shared;          /* arg_owned is a block of the shared arena: workers read it in place */
  struct mproc__items *map; /* batch: the items of its map or stream */
  int64_t first;
  uint32_t count;
  void *owner; /* task: the face's object it completes (a future) */
  /* task: how it ends (lock held): the face's completion, given the outcome (attempts set), the failure
   * message and the result bytes (len of them at result, or NULL); returns true when it has taken the
   * block over (mproc__free'd by it), false when it copied what it needed */
  bool (*task_done)(struct mproc__job *j, const mproc_outcome *o, const char *msg, void *result, size_t len);
  double timeout;
  int retries_left, attempts;
  int worker;       /* the worker running it, -1 while it waits (set by its creator, then by the engine) */
  uint32_t claim;   /* while handed to a worker: its claim word there (modulo MPROC__CLAIMS) */
  uint32_t done;    /* batch: items already completed (segments received), from first on */
  uint64_t busy_ns; /* batch: worker time of the segments received */
  struct mproc__job *next;
  /* a small task argument's copy: one allocation less per submission */
  _Alignas(16) unsigned char arg_inline[MPROC__INLINE_BYTES];
} mproc__job;

/* The manager's private view of one worker. */
typedef struct mproc__wstate {
  int pid; /* 0 while none runs in the slot */
  bool spawning, stopping;
  bool dormant;            /* its initializer failed: respawned only when there is work for it */
  int jobs_sent;           /* toward max_tasks_per_child */
  uint32_t claim_seq;      /* the claim of the next job handed out (its word: modulo MPROC__CLAIMS) */
  mproc__job *head, *tail; /* in flight, oldest first */
  int ninflight;
  /* backends with hops (hop_ns): how many jobs of the work window_of (a map's token; 0: submitted tasks) it
   * may hold: two, and one more for each job of that work it has given back */
  int window;
  uint64_t window_of;
  /* sending: the job whose record is being written, and how far */
  mproc__job *tx_job;
  wire_job tx_hdr;
  size_t tx_done;     /* bytes of header+payload written */
  const void *tx_arg; /* what follows the header: the job's argument or records, or the lengths below */
  size_t tx_arg_len;
  /* a batch of items of any size, made when it is handed out (var_header): its items' lengths (or
   * address/length pairs when the worker reads them in place), then their addresses; the bytes of the
   * items that follow the lengths, and where they start when they lie one after the other in memory */
  uint64_t *tx_var;
  size_t tx_var_cap;   /* entries */
  mproc__big tx_block; /* where tx_var lies (on huge pages for a map's large batches) */
  uint64_t tx_body_len;
  const unsigned char *tx_span;
  bool tx_in_place;
  uint32_t tx_item; /* the item being written, and how much of it */
  size_t tx_item_off;
  /* receiving */
  int rx_stage; /* 0 header, 1 message, 2 payload */
  wire_result rx_hdr;
  size_t rx_done;
  char rx_msg[MPROC_TASK_MSG_MAX];
  unsigned char *rx_buf; /* task result / batch failures */
  size_t rx_buf_cap;
  int kill_reason;  /* 0, or MPROC_OUTCOME_TIMEDOUT / MPROC_OUTCOME_CANCELLED when we killed it */
  uint64_t busy_ns; /* time its tasks ran, over the pool's life (progress reports) */
} mproc__wstate;

/* A kill reason beside the outcome kinds: a map was aborted; what waited behind its batch runs again. */
enum { KILL_ABORT = 100 };

/* A map's or a stream's items as the engine sees them (its batch jobs point here): where their inputs are and
 * their records go, what the engine measured of them, and how the face is told that items ended.  The face
 * keeps everything else of the map (counts, the error policy, a stream's window of slots). */
typedef struct mproc__items {
  mproc_task_fn fn;
  const unsigned char *in;
  size_t in_size;
  unsigned char *out;
  size_t out_size;
  size_t n;
  size_t window;              /* records go to out[i % window] (a stream's slots), or out[i] when 0 */
  bool in_shared, out_shared; /* workers read in / write out in place (mproc__map_share) */
  bool in_arena;              /* items of any size: those in the shared arena are read in place */
  bool stopped;               /* no batch of it is handed out any more: its face stopped it, or it aborts */
  bool aborting;              /* timed out or interrupted: every batch not done is cancelled */
  uint64_t seed;
  uint64_t token;
  size_t batches_sent, batches_done; /* the face counts what it queues, the engine what it splits and frees */
  size_t dispatched;                 /* items handed to workers (progress reports) */
  uint64_t busy_ns;                  /* worker time spent on its completed batches */
  size_t timed_items;                /* items those batches held */
  size_t timed_batches;              /* how many batches that was */
  double best_item_ns;               /* the least time per item among those batches: sizes the next */
  /* Items of any size (items.h).  var_in: item_at gives item index's bytes (valid while the item is not
   * completed).  var_out: results of any size, given to item_result (lock held) before items_ok. */
  bool var_in, var_out;
  const void *(*item_at)(const struct mproc__items *m, int64_t index, size_t *len);
  void (*item_result)(struct mproc__items *m, int64_t index, const void *data, size_t len);
  /* The same for a run of items at once, where the face has them (may be NULL): items_at fills the lengths
   * and addresses of items [first, first + count); items_results takes count records of results of any size
   * (wire.h's MPROC__VAR_OUT, checked), one per item from first on, none of them failed. */
  void (*items_at)(const struct mproc__items *m, int64_t first, size_t count, uint64_t *lens,
                   uint64_t *addrs);
  void (*items_results)(struct mproc__items *m, int64_t first, size_t count, const unsigned char *recs);
  /* The face's completion (lock held; the engine wakes done_cv after each call).  items_ok: items [first,
   * first + count) ended well, their records in place.  items_failed: they ended with outcome o (attempts
   * set; CANCELLED when they never ran) and message msg (may be NULL). */
  void (*items_ok)(struct mproc__items *m, int64_t first, size_t count);
  void (*items_failed)(struct mproc__items *m, int64_t first, size_t count, const mproc_outcome *o,
                       const char *msg);
} mproc__items;

struct mproc__engine {
  pthread_mutex_t lock;
  pthread_cond_t done_cv; /* broadcast when a task completes while someone waits (waiters > 0) */
  int waiters;            /* threads waiting on done_cv */
  int pollers;            /* threads polling the workers themselves (mproc__engine_poll_begin) */
  bool manager_asleep;    /* the manager sleeps on the doorbell (set and cleared under the lock) */
  uint64_t next_token;
  mproc_pool_opts opts;
  int nworkers;
  int ncpus; /* mproc_cpu_count() at start: whether the manager may spin (a core is free) */
  mproc_backend backend;
  const mproc__backend_ops *ops;
  bool closed, quitting;
  bool draining;    /* destroy: workers are told to stop; none is replaced */
  bool terminating; /* terminate() or destroy began: no worker is started any more */
  /* Futures and iterators the caller still holds: they use the lock, so the engine's memory outlives
   * destroy until the last of them is released (destroyed then says the pool is gone). */
  size_t holders;
  bool destroyed;
  int broken;                          /* nothing can run (see pool_lost): every task fails with this code */
  char broken_msg[MPROC_TASK_MSG_MAX]; /* and this message, which says why */
  uint64_t next_id;
  size_t outstanding; /* jobs submitted and not completed */
  mproc__job *pend_head, *pend_tail;
  /* process backend */
  mproc__shared *sh;
  size_t sh_bytes;
  size_t ring_size;
  mproc__wstate *ws;
  pthread_t manager;
  bool manager_started;
  int tpl_sock;           /* manager's end */
  void *backend_state;    /* the backend's own, from its start to its stop (see backend.h) */
  int sh_fd;              /* forkserver, exec: the memfd behind sh, until the template has mapped it */
  mproc__fncache fncache; /* exec: under lock */
  uint32_t tpl_seen;
  bool ready; /* a worker has started, once (it may be gone again: a failing initializer) */
  mproc__deferred *deferred, *deferred_tail; /* to run once the lock is dropped (done-callbacks) */
  bool timeouts_active;
  bool arena_ref;       /* holds a reference on the shared arena (process backend) */
  double job_ns_avg;    /* moving average of a job's run time in a worker (0: none yet) */
  bool first_wait_done; /* a caller has polled for a result (see poll_briefly in future.c) */
  /* blocks of released large results, kept for the next ones (mproc__engine_result_done), under lock */
  struct mproc__spare {
    void *p;
    size_t cap;
    double at; /* when it was given back */
  } spares[4];
  int nspares;
};

/* Reads the record at *p of the run given to items_results: its result's bytes and their length; *p moves
 * past it. */
static inline const unsigned char *mproc__var_rec_read(const unsigned char **p, size_t *len) {
  uint64_t n;
  memcpy(&n, *p, 8);
  const unsigned char *data = *p + 8;
  *len = (size_t)n;
  *p += mproc__var_rec_size(n);
  return data;
}

/* engine.c */
int mproc__engine_start(mproc__engine *e, const mproc_pool_opts *opts);
/* Stops everything the engine runs; its lock and condition stay usable (futures may still use them). */
void mproc__engine_stop(mproc__engine *e);
/* Destroys the lock and the condition, once nothing can use them. */
void mproc__engine_release(mproc__engine *e);
/* The faces' calls (lock held).  The engine owns job ids (a new one at every hand-out), the count of
 * outstanding jobs and the queue.  mproc__engine_queue: takes job j (a task or a batch), counts it and
 * queues it; then, once after a run of queue calls, mproc__engine_hand_out hands out what the workers can
 * take and wakes the manager if it has work to do, or mproc__engine_kick does the same and also, when the
 * backend has no workers (serial), runs every queued job here and now: a submission's way, where nobody
 * may wait for the result.  Maps and streams hand out and then wait with mproc__engine_wait, which runs
 * queued jobs in the waiting thread when there are no workers.  mproc__engine_cancel_queued: a task's job
 * still queued is taken out and completes as cancelled (true), or false when it is no longer queued.
 * mproc__engine_terminate: closes the engine, starts no worker any more, cancels what is queued and kills the
 * workers running jobs. mproc__engine_worker_busy_ns: each worker's time running jobs over the engine's life,
 * into busy[nworkers]. mproc__engine_outstanding: jobs queued or running. */
void mproc__engine_queue(mproc__engine *e, mproc__job *j);
void mproc__engine_hand_out(mproc__engine *e);
void mproc__engine_kick(mproc__engine *e);
/* Waits on cv (lock held) until pred(arg), the absolute deadline or Ctrl-C, as mproc__cond_wait_intr; with
 * a backend without workers it first runs queued jobs in this thread, one at a time, while pred is false.
 * 0, -ETIMEDOUT or MPROC_EINTERRUPTED. */
int mproc__engine_wait_slow(mproc__engine *e, pthread_cond_t *cv, int *waiters, double deadline,
                            bool (*pred)(void *), void *arg);
/* (What is awaited is often there already: a stream's next item, a future's result.) */
static inline int mproc__engine_wait(mproc__engine *e, pthread_cond_t *cv, int *waiters, double deadline,
                                     bool (*pred)(void *), void *arg) {
  if (pred(arg)) return 0;
  return mproc__engine_wait_slow(e, cv, waiters, deadline, pred, arg);
}
bool mproc__engine_cancel_queued(mproc__engine *e, mproc__job *j);
void mproc__engine_terminate(mproc__engine *e);
void mproc__engine_worker_busy_ns(const mproc__engine *e, uint64_t *busy);
static inline size_t mproc__engine_outstanding(const mproc__engine *e) { return e->outstanding; }
/* Puts a job at the front or the back of the queue (lock held; the engine's own requeues, and a backend's
 * without workers). */
void mproc__engine_enqueue(mproc__engine *e, mproc__job *j, bool front);
void mproc__engine_dispatch(mproc__engine *e);
void mproc__engine_wake_manager(mproc__engine *e);
/* Whether the manager has work now (lock held): jobs waiting for a worker, a record only partly written
 * into a ring, or deadlines to watch. */
bool mproc__engine_needs_manager(const mproc__engine *e);
/* Does the manager's work once from any thread holding the lock: reads results, hands out jobs.  A thread
 * about to wait calls it for a few microseconds first, which saves two sleeping hand-offs per round trip.
 * Returns true when anything moved. */
bool mproc__engine_poll(mproc__engine *e);
/* Around a thread's polling (lock held): while someone polls, workers do not wake the sleeping manager
 * for results the poller will take itself; the last poller to stop restores the doorbell and rings it if
 * anything arrived meanwhile. */
void mproc__engine_poll_begin(mproc__engine *e);
void mproc__engine_poll_end(mproc__engine *e);
/* Spins without the lock until some worker's result ring holds bytes, at most about max_spins pauses.
 * A poller calls it between two polls, so that it takes the lock and polls only when there is something
 * to read.  Only the rings are read (their places never change while the engine lives); a record being
 * written into a full ring or news from the template are seen by the next poll, which comes after
 * max_spins at the latest. */
void mproc__engine_await_results(mproc__engine *e, int max_spins);
/* For a backend that runs jobs in the caller (backend.h's run), lock held.  mproc__engine_job_started: job
 * j begins its next attempt in worker `worker` (also the engine's own hand-out).  mproc__engine_item_done:
 * item index of batch j ended with code (0, or a failure with msg); a batch's items end in order, and a
 * result of any size is given to the map's item_result before.
 * mproc__engine_batch_ran: batch j has run (busy_ns of work): its items not done are cancelled (their map
 * stopped), j is freed. */
void mproc__engine_job_started(mproc__job *j, int worker);
void mproc__engine_item_done(mproc__engine *e, mproc__job *j, int64_t index, int code, const char *msg,
                             int worker);
void mproc__engine_batch_ran(mproc__engine *e, mproc__job *j, uint64_t busy_ns);
/* Lock held: the block of a task's result (taken over by its future from the engine, len bytes or more) is
 * no longer needed: kept for the next large result while the pool runs, freed otherwise. */
void mproc__engine_result_done(mproc__engine *e, void *p, size_t len);
/* Completes a task's job with an outcome and its result (lock held): whether the face took result over
 * (see task_done). */
bool mproc__engine_complete_task(mproc__engine *e, mproc__job *j, const mproc_outcome *o, const char *msg,
                                 void *result, size_t result_len);
void mproc__engine_cancel_pending(mproc__engine *e);
/* Stops a map whose caller gives up (timeout, Ctrl-C): its queued batches are cancelled, workers running
 * its batches are killed, batches waiting in a worker's ring are skipped (lock held). */
void mproc__engine_abort_map(mproc__engine *e, mproc__items *m);
/* A map's or a stream's items get their token, which names their batches to the workers (lock held, before
 * the first batch is queued). */
static inline void mproc__engine_items_begin(mproc__engine *e, mproc__items *m) {
  m->token = ++e->next_token;
}
/* Cancels the map's batches still queued (lock held): what a face does when its map stops on an error. */
void mproc__engine_cancel_batches(mproc__engine *e, mproc__items *m);
/* Has the template SIGKILL worker i; its death is then reported with reason (an mproc_outcome_kind). */
void mproc__engine_kill_worker(mproc__engine *e, int i, int reason);
void mproc__job_free(mproc__job *j);
/* A new batch job for items [first, first+count) of map m (not yet queued: no id), or NULL without memory. */
mproc__job *mproc__batch_new(mproc__items *m, size_t first, size_t count, double timeout, int retries);
/* Decides whether the workers of e read m's input and write its output in place: when they lie in the
 * shared arena, or for any memory with the thread backend (output only for a plain map: streams keep
 * results in their own window). */
void mproc__map_share(const mproc__engine *e, mproc__items *m);
/* Wakes the threads waiting on done_cv, if any (lock held). */
static inline void mproc__engine_notify(mproc__engine *e) {
  if (e->waiters > 0) pthread_cond_broadcast(&e->done_cv);
}

/* Where item `index` of map m puts its result record. */
static inline unsigned char *mproc__map_out(const mproc__items *m, int64_t index) {
  size_t slot = m->window ? (size_t)index % m->window : (size_t)index;
  return m->out + slot * m->out_size;
}

/* Queues d to run once the lock is dropped (lock held). */
void mproc__engine_defer(mproc__engine *e, mproc__deferred *d);
/* Runs and clears the callbacks queued by completions: call with the lock held; it drops and retakes it. */
void mproc__engine_run_callbacks(mproc__engine *e);

/* sigint.c: begin returns a token; seen(token) tells whether Ctrl-C came since.  Pair begin with end. */
uint32_t mproc__sigint_begin(void);
bool mproc__sigint_seen(uint32_t since);
/* Whether Ctrl-C came since *token; if so moves *token up to now (the caller reports it). */
bool mproc__sigint_take(uint32_t *token);
bool mproc__sigint_active(void);
void mproc__sigint_end(void);

/* future.c: one wait on cv (lock held) until woken or the absolute monotonic deadline (INFINITY: none),
 * counted in *waiters (may be NULL) while it sleeps.  0, or -ETIMEDOUT when the deadline had passed. */
int mproc__cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *lock, int *waiters, double deadline);
/* future.c: waits on cv (with lock held) until pred(arg) or the deadline; counts itself in *waiters
 * (may be NULL) while it sleeps.  0 or -ETIMEDOUT. */
int mproc__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *lock, int *waiters, double deadline,
                           bool (*pred)(void *), void *arg);
/* The same, and also returns MPROC_EINTERRUPTED on Ctrl-C (see sigint.c). */
int mproc__cond_wait_intr(pthread_cond_t *cv, pthread_mutex_t *lock, int *waiters, double deadline,
                          bool (*pred)(void *), void *arg);

/* The backend has no workers: jobs run in the threads that kick the engine or wait on it (serial). */
static inline bool mproc__engine_runs_here(const mproc__engine *e) { return e->ops->run != NULL; }
/* Workers run a fresh image of the program (exec): code addresses must be translated (fnref.c). */
static inline bool mproc__engine_fresh_image(const mproc__engine *e) { return e->ops->fresh_image; }
/* A call that will queue jobs begins (see call_begins in backend.h): lock not held. */
static inline void mproc__engine_call_begins(mproc__engine *e) {
  if (e->ops->call_begins) e->ops->call_begins(e);
}
/* Workers that cannot be killed (threads): task timeouts are refused.  Jobs run in the caller accept them
 * and run to the end, as joblib's n_jobs=1 does. */
static inline bool mproc__engine_cannot_kill(const mproc__engine *e) {
  return !e->ops->kill && !mproc__engine_runs_here(e);
}

#endif
