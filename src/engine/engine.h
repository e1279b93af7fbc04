/* engine.h: the one engine under every face (pool, executor; parallel later).
 *
 * Design.  A pool has N worker slots.  Each slot owns two SPSC byte rings in one shared mapping made before
 * any fork (so it sits at one address in the caller, the template and every worker): `in` carries jobs
 * (a task, a batch of map items, or STOP) from the caller's side to the worker, `out` carries results back.
 * Jobs and results are records (a fixed header, then bytes) streamed through the ring, so arguments and
 * results of any size pass.  A worker handles its jobs strictly in order, so the manager knows which job a
 * result belongs to (the oldest in flight) and which job a dead worker was running (slot->running_job).
 *
 * Threads of the caller.  Any thread holding engine.lock may append jobs to a worker's `in` ring (the lock
 * makes it single-producer); results are read only by the manager thread, which completes futures and
 * map items, runs done-callbacks (without the lock), enforces timeouts and replaces dead workers.  The
 * manager sleeps on one futex word, the doorbell, which every event rings only while it sleeps: a result,
 * freed ring space, a submission, a message from the template.
 *
 * Processes.  Workers are forked by a template process, itself forked by the thread creating the pool
 * (which then returns at once: the template forks every worker unasked).  The template is single-threaded:
 * every fork from it is clean.  It holds a pidfd per worker, reaps them, reports each death with its exact
 * status over a SOCK_SEQPACKET socket, and kills on request (by pidfd: no pid reuse race).  Caller dies ->
 * template dies (it polls a pidfd of the caller's process; PR_SET_PDEATHSIG would tie it to the forking
 * thread) -> workers die (PDEATHSIG).  The template may instead
 * come from the fork server (forkserver.c) or be a fresh image of the program (backend_exec.c); both map the
 * shared memory from a memfd at the caller's address.  A fresh image has its objects elsewhere, so its
 * functions travel as (object, offset) (fnref.c) instead of pointers.
 *
 * Faults.  When a worker dies, the job it was running completes as CRASHED (or TIMEDOUT when the manager
 * had it killed for its timeout), or is retried; the jobs queued behind it go back to the front of the
 * queue; a batch is split so that only the item that was running fails; rings are reset; a new worker is
 * forked.  Lock order: engine.lock, then nothing (callbacks run unlocked).
 *
 * Backends.  What differs between backends is one table of functions (mproc__backend_ops, below): start
 * what makes workers, spawn, kill, notice that it died, stop.  The fork, forkserver and thread backends
 * are three tables; the engine has no other knowledge of them. */
#ifndef MPROC_ENGINE_H
#define MPROC_ENGINE_H

#include <pthread.h>
#include <stdbool.h>

#include "engine/ring.h"
#include "engine/task_local.h"
#include "internal.h"

/* JOB_PAD: a record of either ring that only rewinds it (mproc__ring_pad_gap): payload_len bytes of
 * nothing follow its header, to the end of the ring's data. */
enum { JOB_TASK = 1, JOB_BATCH = 2, JOB_STOP = 3, JOB_PAD = 4 };
/* Rings are rewound once their next record would start this far in (and they are empty). */
#define MPROC__REWIND_FROM 4096
#define WIRE_MAGIC 0x6d70726fu

/* A job on the wire (caller -> worker), followed by payload_len bytes. */
typedef struct wire_job {
  uint32_t magic, kind;
  uint64_t id;
  uint64_t fn;    /* the task function: its address in forked workers, an mproc__fnref in exec ones */
  int64_t first;  /* batch: index of its first item; task: -1 */
  uint32_t count; /* batch: items */
  uint32_t in_size, out_size;
  uint32_t attempt;
  uint32_t timed; /* 1 when the job has a timeout: the worker then stamps each item's start */
  uint32_t claim; /* the job's word in its slot's claim[] (see mproc__slot) */
  uint64_t token; /* batch: its map's token; the worker skips batches of aborted maps */
  uint64_t seed;  /* the run seed behind mproc_task_seed() */
  uint64_t payload_len;
  /* Arguments in the shared arena (see ipc/arena.h) are read in place: in_addr is then their address and
   * no payload follows; in_len is the argument bytes of a task either way.  out_addr: a batch's records go
   * straight there (its map's output array is in the arena) instead of back through the ring. */
  uint64_t in_addr, in_len, out_addr;
} wire_job;

/* A result on the wire (worker -> caller), followed by msg_len bytes of message, then payload_len bytes:
 * a task's result, or one segment of a batch's results: items [first, first + count), their count*out_size
 * output bytes (none when written in place) followed by nfail wire_fail records.  A batch's segments come in
 * item order; `last` marks the one that ends the job.  A worker ends a segment after each item that fails
 * and when the ring has no room for the next record, so that every item it finished is published or lies
 * in the ring where the manager finds it after a death (see worker.c). */
typedef struct wire_result {
  uint32_t magic, kind;
  uint64_t id;
  int32_t code;
  uint32_t msg_len;
  uint64_t payload_len;
  uint32_t nfail, last;
  uint64_t busy_ns; /* the worker's time computing this job (batch: this segment) */
  int64_t first;    /* batch: the segment's first item */
  uint32_t count;   /* batch: the segment's items */
  uint32_t pad_;
} wire_result;

typedef struct wire_fail {
  int64_t index;
  int32_t code;
  char msg[124];
} wire_fail;

/* What the template and the manager tell each other. */
enum { TPL_SPAWN = 1, TPL_KILL, TPL_SPAWNED, TPL_SPAWN_FAILED, TPL_DIED, TPL_READY };
typedef struct tpl_msg {
  int32_t op, slot, pid, value; /* value: errno for SPAWN_FAILED, wait status for DIED, signal for KILL */
} tpl_msg;

/* Claim words per slot, used in turn.  A worker is handed no job whose word would be that of the oldest job
 * it holds (so a word is reused only once the worker has read past every job that used it before). */
#define MPROC__CLAIMS 64

/* One worker's shared slot. */
typedef struct mproc__slot {
  /* read all the time by both sides, written once */
  _Alignas(MPROC_CACHELINE) mproc__ring *in, *out;
  /* 1 while the manager has a job record only partly written into `in` and waits for space: the worker
   * rings the doorbell for freed space only then (not for every job it reads) */
  uint32_t tx_waiting;
  /* written by the worker per item, read by the manager only after a death or for timeouts: a line of its
   * own, or each store would take the line back from a manager reading the ring pointers (this false
   * sharing cost a third of a tiny map's time) */
  _Alignas(MPROC_CACHELINE) uint64_t running_job; /* id of the job it runs, 0 between jobs */
  int64_t running_item;                           /* index of the map item it runs */
  int64_t items_done;  /* items of its batch before this index have their records written (see worker.c) */
  uint64_t started_ns; /* when that job/item started (monotonic) */
  uint32_t in_init;    /* 1 while the initializer runs */
  /* the worker's pid as the worker itself tells it (see mproc__template_reap_orphans): 0 until the
   * template begins its fork (cleared by the manager when it asks for one), MPROC__FORKING during it */
  uint32_t child_pid;
  /* Who runs a job handed to this worker.  The manager writes the job's id into claim[job's claim index]
   * before the job's record; the worker swaps it for 0 before it starts the job, and the manager may swap
   * it for MPROC__REVOKED while the job waits behind another, to hand it to a worker that has nothing to
   * do.  Exactly one of the two swaps succeeds: a job taken back never runs here, and one that started is
   * never taken back. */
  _Alignas(MPROC_CACHELINE) uint64_t claim[MPROC__CLAIMS];
} mproc__slot;
#define MPROC__FORKING UINT32_MAX
#define MPROC__REVOKED UINT64_MAX

/* Batches whose records are read or written in place over at least this many bytes have their pages
 * mapped in with one system call first (mproc__plat_prefault), not faulted in a page at a time:
 * - a worker process shares no page table entries of the arena with the caller (fork copies none for a
 *   shared mapping), so a first map over a new arena array faulted on every page in every worker;
 * - the caller's own output array is copy-on-write after the fork of a pool's template, so the manager's
 *   copy of each batch's results faulted on every page of it.
 * On the tiny bench (10^6 8-byte records, first map of a new pool), two series of 12 interleaved runs,
 * medians: arena arrays 8.2 -> 6.1 and 7.4 -> 6.3 ns per item, private arrays 18.5 -> 16.0 and 14.9 ->
 * 14.1.  Threads share the caller's page tables: nothing to do for them.
 * The workers map even the records they write for reading: the arena is a shared memory file that asks
 * for no write notification, so a read fault maps its pages writable, and read faults map 16 pages at a
 * time (the kernel's fault-around) where write faults map one.  8 MiB of an existing memory file, mapped
 * into a new process (Linux 6.18 on this project's VM): 1.4-1.6 ms to map for reading, 2.7 ms for
 * writing; the writes that follow take no fault either way.  Where a kernel did ask for notification,
 * the writes would fault one page at a time, as they did before any prefault. */
#define MPROC__PREFAULT_MIN (64 * 1024)

/* What a worker and the template need to know, kept in the shared mapping itself: a worker made by a fork
 * server has none of the caller's heap.  Pointers inside it point into the same mapping. */
typedef struct mproc__wconf {
  int nworkers;
  int max_tasks_per_child;
  int keep_thread_env;
  int own_mappings; /* workers are processes, each with its own page tables: see MPROC__PREFAULT_MIN */
  int thread_env_n; /* the value for OMP_NUM_THREADS & co (0: leave alone), set by the caller while the
                     * template starts; workers of a template wait for conf_ready before reading it */
  mproc_task_fn initializer;
  void (*finalizer)(void);
  const void *init_arg; /* a copy inside the mapping */
  size_t init_arg_len;
  /* exec pools: the two functions as mproc__fnref (0: none); the template sets the pointers above */
  uint64_t initializer_ref, finalizer_ref;
} mproc__wconf;

/* Function identity (fnref.c).  In a pool whose workers are exec'd images, a function travels as an
 * mproc__fnref: (object + 1) << 48 | offset, where object indexes the pool's table of loaded objects (by
 * path, "" for the main program) in the shared mapping, and offset is from that object's load bias. */
#define MPROC_FN_OBJECTS 32
#define MPROC_FN_PATH 4096
typedef struct mproc__objtab {
  uint32_t count; /* entries published (release); only the caller appends */
  char path[MPROC_FN_OBJECTS][MPROC_FN_PATH];
} mproc__objtab;
/* The caller's cache of recent translations: a map of one function translates once. */
typedef struct mproc__fncache {
  uintptr_t fn[8];
  uint64_t ref[8];
  unsigned next;
} mproc__fncache;

typedef struct mproc__shared {
  _Alignas(MPROC_CACHELINE) uint32_t doorbell; /* futex word the manager sleeps on */
  uint32_t manager_sleeping;
  uint32_t template_events; /* bumped by the template after each message */
  uint32_t nworkers;
  uint32_t conf_ready; /* futex word: 1 once conf.thread_env_n is set */
  /* tokens of recently aborted maps: a worker answers their batches as cancelled without running them */
  uint64_t aborted[16];
  uint32_t aborted_next;
  mproc__objtab *objs; /* exec pools: see mproc__fnref; NULL otherwise */
  mproc__wconf conf;
  mproc__slot slots[];
} mproc__shared;

struct mproc__map;

/* Task arguments and results up to this size live inside the job and the future (the tutorial's tasks
 * take and return a number or two): a round trip then allocates nothing for them. */
#define MPROC__INLINE_BYTES 32

typedef struct mproc__job {
  uint64_t id;
  int kind;
  mproc_task_fn fn;
  const void *arg;
  size_t arg_len;
  void *arg_owned;        /* the copy a submitted task owns, unless it fits arg_inline */
  bool arg_shared;        /* arg_owned is a block of the shared arena: workers read it in place */
  struct mproc__map *map; /* batch */
  int64_t first;
  uint32_t count;
  mproc_future *fut; /* task */
  double timeout;
  int retries_left, attempts;
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
  /* sending: the job whose record is being written, and how far */
  mproc__job *tx_job;
  wire_job tx_hdr;
  size_t tx_done; /* bytes of header+payload written */
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

struct mproc_future {
  int refs; /* caller + engine; under engine lock */
  struct mproc__engine *eng;
  int state; /* FUT_PENDING, FUT_RUNNING, FUT_DONE */
  mproc_outcome out;
  char *msg; /* the failure message, allocated only when there is one (NULL: "") */
  void *result;
  size_t result_len;
  struct cb_node *cbs;
  struct mproc_as_completed *iter;
  mproc_future *iter_next;
  size_t iter_index;
  mproc__job *job; /* while queued (for cancel) */
  /* a small result, copied here from the worker's ring instead of into an allocated block (result then
   * points here) */
  _Alignas(16) unsigned char result_inline[MPROC__INLINE_BYTES];
};
enum { FUT_PENDING = 0, FUT_RUNNING = 1, FUT_DONE = 2 };
/* A kill reason beside the outcome kinds: a map was aborted; what waited behind its batch runs again. */
enum { KILL_ABORT = 100 };

typedef struct mproc__map {
  mproc_task_fn fn;
  const unsigned char *in;
  size_t in_size;
  unsigned char *out;
  size_t out_size;
  size_t n;
  size_t remaining;  /* items not yet completed */
  pthread_cond_t cv; /* signalled when remaining reaches 0: only the map's caller waits on it */
  mproc_map_opts opts;
  int max_failures;
  bool stopped;
  bool aborting; /* timed out or interrupted: every batch not done is cancelled */
  /* streams (imap): results go into a window of `window` slots (item i in slot i % window); a plain map
   * has window 0 and writes item i at out[i] */
  size_t window;
  bool unordered;
  bool in_shared, out_shared; /* workers read in / write out in place (mproc__map_share) */
  unsigned char *slot_done;   /* per slot: 1 when its item completed */
  int *slot_code;
  char **slot_msg; /* failure messages, allocated only for failures */
  int64_t *ready;  /* unordered: completed indices, a FIFO of window entries */
  size_t ready_head, ready_count;
  size_t batches_sent, batches_done; /* for streams' bound on batches in flight */
  size_t dispatched;                 /* items handed to workers (progress reports) */
  bool notify_each;                  /* signal cv on every completion, not only the last */
  uint64_t busy_ns;                  /* worker time spent on this map's completed batches */
  size_t timed_items;                /* items those batches held */
  /* Parallel's second sizing (pool.c): the batches from item wave_from on (0: none) are timed apart, and
   * the least time per item among them kept, so that a worker's cold first item does not count */
  int64_t wave_from;
  double wave_best_ns;
  size_t wave_batches; /* how many of them ended timed */
  uint64_t seed;
  uint64_t token;
  size_t ok, failed, cancelled;
  int64_t first_failed;
  mproc_outcome first_outcome;
  char first_msg[MPROC_TASK_MSG_MAX];
} mproc__map;

struct mproc__engine;

/* A backend: how workers are made, killed and stopped.  The engine talks to workers only through their
 * rings and hears of them only through events on its event socket (tpl_sock: SPAWNED, SPAWN_FAILED, DIED,
 * with template_events bumped and the doorbell rung), whatever the backend; the table below is the rest.
 * Process-like backends (fork, forkserver, and later exec and MPI) share the template's protocol and
 * differ in how the template comes to be; threads answer the same protocol themselves.  The serial backend
 * has no workers and no table (the faces run its tasks in the caller). */
typedef struct mproc__backend_ops {
  const char *name;
  bool shares_memory;  /* workers see all of the caller's memory (threads): maps use it in place */
  bool needs_memfd;    /* the shared mapping must be a memory file another process can map */
  bool fresh_image;    /* workers are a new image of the program: functions travel as (object, offset) */
  bool starts_workers; /* start() also starts every worker (their SPAWNED events follow): no spawn asked */
  /* In the thread creating the pool, before the manager exists: makes what makes workers.  0 or negative
   * errno. */
  int (*start)(struct mproc__engine *e);
  /* Lock held: asks for a worker in slot i; the answer comes as an event. */
  void (*spawn)(struct mproc__engine *e, int i);
  /* Lock held: has worker i SIGKILLed; its death comes as an event.  NULL: workers cannot be killed (task
   * timeouts are refused, terminate and destroy wait for running tasks). */
  void (*kill)(struct mproc__engine *e, int i);
  /* Lock held, after worker i's death event: backend bookkeeping (join a thread).  May be NULL. */
  void (*reaped)(struct mproc__engine *e, int i);
  /* Whether what makes workers has died (polled twice a second).  May be NULL. */
  bool (*gone)(struct mproc__engine *e);
  /* Once gone() has said so (lock held), or from stop_in_manager when it finds that true: reaps the
   * workers left behind that come to this process, and forgets them all.  May be NULL. */
  void (*reap_orphans)(struct mproc__engine *e);
  /* At the end of the manager thread, lock not held: stop what start made and every worker with it. */
  void (*stop_in_manager)(struct mproc__engine *e);
  /* After the manager thread has ended, lock not held: stop workers that outlive it (threads). */
  void (*stop_after_manager)(struct mproc__engine *e);
} mproc__backend_ops;

/* backend_process.c, forkserver.c, backend_exec.c, backend_thread.c */
extern const mproc__backend_ops mproc__backend_fork, mproc__backend_forkserver, mproc__backend_exec,
    mproc__backend_thread;

typedef struct mproc__engine {
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
  const mproc__backend_ops *ops; /* NULL for the serial backend */
  bool closed, quitting;
  bool draining;    /* destroy: workers are told to stop; none is replaced */
  bool terminating; /* terminate() or destroy began: no worker is started any more */
  int broken;       /* nothing can run (see pool_lost): every task fails with this code */
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
  int tpl_sock; /* manager's end */
  int thr_sock; /* thread backend: the end worker threads report on */
  pthread_t *threads;
  bool *thread_joinable; /* threads[i] was created and not joined yet */
  int thread_seq;
  pid_t tpl_pid;
  int tpl_pidfd;
  bool tpl_foreign;       /* the template is the fork server's child, not ours */
  int sh_fd;              /* forkserver, exec: the memfd behind sh, until the template has mapped it */
  mproc__fncache fncache; /* exec: under lock */
  uint32_t tpl_seen;
  bool ready;             /* a worker has started, once (it may be gone again: a failing initializer) */
  struct cb_node *cb_run; /* callbacks to run once the lock is dropped */
  bool timeouts_active;
  bool arena_ref;       /* holds a reference on the shared arena (process backend) */
  double job_ns_avg;    /* moving average of a job's run time in a worker (0: none yet) */
  bool first_wait_done; /* a caller has polled for a result (see poll_briefly in future.c) */
} mproc__engine;

struct mproc_pool {
  mproc__engine eng;
};

/* engine.c */
int mproc__engine_start(mproc__engine *e, const mproc_pool_opts *opts);
void mproc__engine_stop(mproc__engine *e);
/* Queues a job (lock held) and hands out what the workers can take. */
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
/* Completes a job's items or task with an outcome (lock held). */
void mproc__engine_complete_task(mproc__engine *e, mproc__job *j, const mproc_outcome *o, const char *msg,
                                 void *result, size_t result_len);
void mproc__engine_fail_items(mproc__engine *e, mproc__map *m, int64_t first, size_t count,
                              const mproc_outcome *o, const char *msg);
void mproc__engine_cancel_pending(mproc__engine *e);
/* Stops a map whose caller gives up (timeout, Ctrl-C): its queued batches are cancelled, workers running
 * its batches are killed, batches waiting in a worker's ring are skipped (lock held). */
void mproc__engine_abort_map(mproc__engine *e, mproc__map *m);
/* Has the template SIGKILL worker i; its death is then reported with reason (an mproc_outcome_kind). */
void mproc__engine_kill_worker(mproc__engine *e, int i, int reason);
void mproc__job_free(mproc__job *j);
/* A new batch job for items [first, first+count) of map m (not yet queued: no id), or NULL without memory. */
mproc__job *mproc__batch_new(mproc__map *m, size_t first, size_t count, double timeout, int retries);
/* Decides whether the workers of e read m's input and write its output in place: when they lie in the
 * shared arena, or for any memory with the thread backend (output only for a plain map: streams keep
 * results in their own window). */
void mproc__map_share(const mproc__engine *e, mproc__map *m);
/* Wakes the threads waiting on done_cv, if any (lock held). */
static inline void mproc__engine_notify(mproc__engine *e) {
  if (e->waiters > 0) pthread_cond_broadcast(&e->done_cv);
}

/* Where item `index` of map m puts its result record. */
static inline unsigned char *mproc__map_out(const mproc__map *m, int64_t index) {
  size_t slot = m->window ? (size_t)index % m->window : (size_t)index;
  return m->out + slot * m->out_size;
}

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

/* pool.c: a map with extras for mproc_parallel_run(): batch sizes measured by a probe (when
 * opts->chunk_size is 0), and a progress tick called without the lock at most once per interval and once at
 * the end. */
typedef struct mproc__map_hooks {
  bool probe;
  void (*tick)(void *ctx, const mproc__map *m, bool final);
  void *ctx;
  double interval;
} mproc__map_hooks;
int mproc__pool_map_ex(mproc_pool *pool, mproc_task_fn fn, const void *in, size_t n, size_t in_size,
                       void *out, size_t out_size, const mproc_map_opts *opts, mproc_map_report *report,
                       const mproc__map_hooks *hooks);

/* worker.c: the loop a worker runs until told to stop or its task quota is reached; returns its exit code
 * (0, or 120 when the initializer failed, 121 out of memory, 122 a corrupt job).  A worker process ends
 * with _exit(code) after it (mproc__worker_main). */
int mproc__worker_loop(mproc__shared *sh, int slot);
void mproc__worker_main(mproc__shared *sh, int slot) __attribute__((noreturn));

static inline bool mproc__engine_has_workers(const mproc__engine *e) { return e->ops != NULL; }
/* Workers run a fresh image of the program (exec): code addresses must be translated (fnref.c). */
static inline bool mproc__engine_fresh_image(const mproc__engine *e) { return e->ops && e->ops->fresh_image; }
/* Workers that cannot be killed (threads): task timeouts are refused. */
static inline bool mproc__engine_cannot_kill(const mproc__engine *e) { return e->ops && !e->ops->kill; }

/* forkserver.c */
bool mproc__forkserver_running(void);
/* parallel.c: called as a worker begins: the one-call form keeps no pool in a worker. */
void mproc__parallel_worker_begins(void);
/* Asks the fork server for a template that maps memfd (size bytes) at addr and talks on tsock; *pid is
 * its pid.  0 or negative errno. */
int mproc__forkserver_request(void *addr, size_t size, int memfd, int tsock, pid_t *pid);

/* fnref.c.  Caller side (lock held, or before the manager starts): fn as an mproc__fnref in *ref, cached;
 * 0, or MPROC_ENOTSUP with a message when fn is in no loaded object another image could load. */
int mproc__fnref_encode(mproc__shared *sh, mproc__fncache *c, uintptr_t fn, uint64_t *ref, char *msg,
                        size_t cap);
/* Worker / template side: ref's address in this image (the object is loaded if need be), cached per
 * object; 0 with a message when it cannot be found. */
uintptr_t mproc__fnref_resolve(const mproc__shared *sh, uint64_t ref, char *msg, size_t cap);
/* A job's function in this worker: as is in a forked worker, resolved in an exec'd one. */
static inline uintptr_t mproc__fnref_decode(const mproc__shared *sh, uint64_t ref, char *msg, size_t cap) {
  return sh->objs ? mproc__fnref_resolve(sh, ref, msg, cap) : (uintptr_t)ref;
}

/* backend_exec.c: starts the pool's template as a fresh image of the program (lock held).  0 or negative
 * errno; MPROC_EEXIST when the pool's address stayed taken in three fresh images. */
int mproc__exec_template_start(mproc__engine *e);

/* backend_process.c: the template's loop, and the manager's side of it shared by the process-like
 * backends */
int mproc__template_start(mproc__engine *e); /* forks a template from the calling thread */
void mproc__template_spawn(mproc__engine *e, int i);
void mproc__template_kill(mproc__engine *e, int i);
bool mproc__template_gone(mproc__engine *e);
void mproc__template_reap_orphans(mproc__engine *e);
void mproc__template_stop(mproc__engine *e);
/* A template made elsewhere (fork server, exec) says first whether it mapped the pool: waits for that word
 * on sock at most timeout seconds.  0 ready, the negative errno it reported, or MPROC_ECONNRESET. */
int mproc__template_await_ready(int sock, double timeout);
/* The members of a backend table that every process-like backend shares: the template protocol. */
#define MPROC__TEMPLATE_PROTOCOL                                                        \
  .starts_workers = true, .spawn = mproc__template_spawn, .kill = mproc__template_kill, \
  .gone = mproc__template_gone, .reap_orphans = mproc__template_reap_orphans,           \
  .stop_in_manager = mproc__template_stop
/* max(1, cpus / workers) for OMP_NUM_THREADS & co, or 0 when the user has set all of them. */
int mproc__thread_env_value(int cpus, int workers);
void mproc__template_main(mproc__shared *sh, int sock, pid_t parent) __attribute__((noreturn));
/* Sends the manager an event on sock, bumps template_events and rings the doorbell: how the template, and
 * the thread backend's workers, report to the manager. */
void mproc__template_notify(mproc__shared *sh, int sock, tpl_msg m);

/* future.c */
mproc_future *mproc__future_new(mproc__engine *e);
void mproc__future_unref_locked(mproc_future *f);
void mproc__future_complete(mproc_future *f, const mproc_outcome *o, const char *msg, void *result,
                            size_t len);

static inline uint64_t mproc__now_ns(void) { return (uint64_t)(mproc__plat_now() * 1e9); }

#endif
