/* shared.h: the layout of a pool's shared mapping.  It is made before any worker exists, so it sits at one
 * address in the caller, the template and every worker (a fork server's template or a fresh image maps it
 * there from a memfd): pointers inside it are valid everywhere.  Per worker slot: two SPSC byte rings (`in`:
 * jobs from the caller's side, `out`: results back), the words that say what the worker runs, and its claim
 * words; then the workers' configuration and, for exec pools, the table of loaded objects. */
#ifndef MPROC_SHARED_H
#define MPROC_SHARED_H

#include "internal.h"
#include "ipc/ring.h"

/* Claim words per slot, used in turn.  A worker is handed no job whose word would be that of the oldest job
 * it holds (so a word is reused only once the worker has read past every job that used it before). */
#define MPROC__CLAIMS 64

/* started_ns once the job's (or item's) function has returned: no timeout applies while its result is sent
 * (a task that ended in time was killed when the deadline fell between its return and the end of that send)
 */
#define MPROC__RETURNED UINT64_MAX

/* One worker's shared slot. */
typedef struct mproc__slot {
  /* read all the time by both sides, written once */
  _Alignas(MPROC_CACHELINE) mproc__ring *in, *out;
  /* Where the worker writes the records of its current batch segment (see worker.c): shared memory that
   * only this worker writes, so its lines stay in the worker's cache as a private buffer would, and that the
   * manager reads only after the worker's death, to keep the results of the items it finished. */
  unsigned char *staging;
  uint64_t staging_size;
  /* 1 while the manager has a job record only partly written into `in` and waits for space: the worker
   * rings the doorbell for freed space only then (not for every job it reads) */
  uint32_t tx_waiting;
  /* written by the worker per item, read by the manager only after a death or for timeouts: a line of its
   * own, or each store would take the line back from a manager reading the ring pointers (this false
   * sharing cost a third of a tiny map's time) */
  _Alignas(MPROC_CACHELINE) uint64_t running_job; /* id of the job it runs, 0 between jobs */
  int64_t running_item;                           /* index of the map item it runs */
  int64_t items_done;  /* items of its batch before this index have their records written (see worker.c) */
  int64_t sent_alone;  /* 1 + the item whose record is too large for staging and is being sent alone, or 0 */
  uint64_t started_ns; /* when that job/item started (monotonic), or MPROC__RETURNED */
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
 *   shared mapping), so a first map over a new arena array would fault on every page in every worker;
 * - the caller's own output array is copy-on-write after the fork of a pool's template, so the manager's
 *   copy of each batch's results would fault on every page of it.
 * Threads share the caller's page tables: nothing to do for them.  The workers map even the records they
 * write for reading: the arena is a shared memory file that asks for no write notification, so a read
 * fault maps its pages writable, and read faults map several pages at a time (the kernel's fault-around)
 * where write faults map one.  The measurements behind this are in BENCHMARKS.md. */
#define MPROC__PREFAULT_MIN ((size_t)64 * 1024)

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

/* worker.c: the loop a worker runs until told to stop or its task quota is reached; returns its exit code
 * (0, or 120 when the initializer failed, 121 out of memory, 122 a corrupt job).  A worker process ends
 * with _exit(code) after it (mproc__worker_main). */
int mproc__worker_loop(mproc__shared *sh, int slot);
void mproc__worker_main(mproc__shared *sh, int slot) __attribute__((noreturn));

static inline uint64_t mproc__now_ns(void) { return (uint64_t)(mproc__plat_now() * 1e9); }

#endif
