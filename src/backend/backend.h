/* backend.h: the interface between the engine and a backend, which makes, kills and stops workers.
 *
 * The contract.  A backend is one table, mproc__backend_ops, and the engine knows nothing else of it:
 * - Workers.  Whatever a worker is (a process forked by a template, a thread, a remote rank), it runs
 *   mproc__worker_loop(sh, slot) over its slot's rings in the pool's shared mapping (shared.h) and nothing
 *   else touches them on its side.  Before a worker is (re)started in a slot, its rings, running_job and
 *   in_init are reset (the backend does it where the worker is made, as spawn_slot() in template.c).
 * - Events.  The backend tells the engine of workers only through messages (tpl_msg, wire.h) on the
 *   engine's event socket e->tpl_sock, each followed by a bump of sh->template_events and a ring of the
 *   doorbell (mproc__template_notify): SPAWNED (slot, pid: any positive id, never reused while the pool
 *   lives), SPAWN_FAILED (slot, errno), DIED (slot, pid, a wait status: WIFSIGNALED with the signal, or
 *   WIFEXITED with the worker's exit code).  One SPAWNED or SPAWN_FAILED answers each spawn, and exactly one
 *   DIED follows each SPAWNED.
 * - Threads.  start runs in the thread creating the pool, before the manager exists; spawn, kill, reaped
 *   and reap_orphans run with the engine lock held, in the manager or in a caller polling, and must not
 *   block; gone is polled by the manager (lock held) about twice a second while it sleeps; stop_in_manager
 *   runs at the end of the manager thread, stop_after_manager after it has been joined, both without the
 *   lock.
 * - A worker's death.  The backend reports it (DIED) once it is certain the worker runs no more (reaped,
 *   joined); the engine then takes what the worker published, fails or retries the job it ran, queues the
 *   rest again and asks for a new worker with spawn, unless the pool is being terminated or destroyed.
 *   kill(i) must end worker i (SIGKILL or equivalent) and lead to its DIED; a backend whose workers cannot
 *   be killed leaves kill NULL (task timeouts are then refused, terminate and destroy wait).
 * - What makes the workers dying (the template killed from outside): gone() says so; the engine then calls
 *   reap_orphans() and fails everything with MPROC_ELOST.
 * - Stop.  After stop_in_manager (and stop_after_manager) no worker of the pool runs, and every process,
 *   thread and descriptor the backend made is released.
 * - No workers.  A backend whose jobs run in the caller's threads (serial) has only run (and the flags): the
 *   engine calls run(j) for a queued job, lock held, from a thread that kicks it (a submission) or waits on
 *   it (a map, a stream, a future, join), one job at a time.  run drops the lock while the job's code runs
 *   and before it returns completes the job as the manager would a worker's results: a task with
 *   mproc__engine_complete_task, a batch item by item with mproc__engine_item_done (stopping when its map
 *   has stopped) and mproc__engine_batch_ran.  Task timeouts are accepted and not enforced.
 * - State.  What a backend keeps for a pool lives behind e->backend_state, which its start sets and its
 *   stop frees (the thread backend's threads and socket, the template's pid and pidfd for the three
 *   process-like backends); the engine never looks inside.
 * A new backend is one file with one table, and one line where pool.c chooses the table (the serial
 * backend is backend_serial.c and that line).
 *
 * Process-like backends (fork, fork server, exec) share the template's protocol (template.c) and differ in
 * how the template comes to be; the thread backend answers the same events from its threads. */
#ifndef MPROC_BACKEND_H
#define MPROC_BACKEND_H

#include <stdbool.h>
#include <sys/types.h>

#include "engine/shared.h"
#include "engine/wire.h"

typedef struct mproc__engine mproc__engine;
struct mproc__job;

typedef struct mproc__backend_ops {
  bool shares_memory;  /* workers see all of the caller's memory (threads): maps use it in place */
  bool needs_memfd;    /* the shared mapping must be a memory file another process can map */
  bool fresh_image;    /* workers are a new image of the program: functions travel as (object, offset) */
  bool starts_workers; /* start() also starts every worker (their SPAWNED events follow): no spawn asked */
  /* How long the way between the engine and a worker takes, a result's back and the next job's out (the MPI
   * backend's hops through its courier, MPI and its agent; 0: none worth counting, the workers are on this
   * machine).  Nonzero: each worker is handed as many jobs as cover that time beyond the one it runs
   * (inflight_limit in engine.c), rather than the local backends' two (sixteen for jobs under 20 us). */
  double hop_ns;
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
  /* In the thread of a call that will queue jobs (a submission, a map, a stream), before it queues any,
   * without the engine lock: what the workers must see of the caller's memory when the call starts (the MPI
   * backend sends the shared arena's changes to its agents).  May be NULL. */
  void (*call_begins)(struct mproc__engine *e);
  /* Only for a backend without workers (then every entry above is NULL): runs queued job j in the calling
   * thread and completes it (see "No workers" above). */
  void (*run)(struct mproc__engine *e, struct mproc__job *j);
} mproc__backend_ops;

/* The tables: template.c (fork), forkserver.c, backend_exec.c, backend_thread.c, backend_serial.c,
 * backend_mpi.c (whose start fails with MPROC_ENOBACKEND in a build without MPI). */
extern const mproc__backend_ops mproc__backend_fork, mproc__backend_forkserver, mproc__backend_exec,
    mproc__backend_thread, mproc__backend_serial, mproc__backend_mpi;

/* backend_mpi.c.  mproc__mpi_init: from mproc_init() once the fork server runs: when an MPI launcher
 * started the program, initialises MPI; rank 0 returns 0 (the master), every other rank serves as an agent
 * and never returns.  Without a launcher (or without MPI in this build) it does nothing and returns 0;
 * MPROC_ENOBACKEND when the launch is broken (srun without PMI: a message on stderr says what to pass).
 * mproc__mpi_usable: 0 when pools of the MPI backend can be created here and now, else MPROC_ENOBACKEND
 * with the last error message (mproc_last_error_message()) saying why, beginning with `asked` (what asked
 * for the backend).  mproc__mpi_default_workers: the
 * agents' CPUs, the default size of an MPI pool. */
int mproc__mpi_init(int *argc, char ***argv);
int mproc__mpi_usable(const char *asked);
int mproc__mpi_default_workers(void);
/* The bytes of the shared arena the master has sent to its agents so far (each agent's copy counted; for
 * tests: tests/mpi_cluster.c), 0 elsewhere. */
uint64_t mproc__mpi_arena_sent(void);
/* The blocks of 256 KiB or more this process allocated for MPI messages (for tests: a thread's freed
 * blocks are used again), 0 without MPI in this build. */
uint64_t mproc__mpi_large_blocks(void);
/* On the master: the naps agent rank `rank` had taken by its last heartbeat, and in *at when that heartbeat
 * came (mproc__plat_now(); 0 before the first); -1 elsewhere (for tests: how often an agent wakes). */
int64_t mproc__mpi_rank_naps(int rank, double *at);
/* Where every rank of an MPI job places its shared arena (ipc/arena.h), so the agents' copies sit at the
 * master's addresses; NULL without a launcher or without MPI in this build. */
void *mproc__mpi_arena_at(void);

/* forkserver.c */
bool mproc__forkserver_running(void);
/* Asks the fork server for a template that maps memfd (size bytes) at addr and talks on tsock; *pid is
 * its pid.  0 or negative errno. */
int mproc__forkserver_request(void *addr, size_t size, int memfd, int tsock, pid_t *pid);

/* backend_exec.c: starts the pool's template as a fresh image of the program (lock held).  0 or negative
 * errno; MPROC_EEXIST when the pool's address stayed taken in three fresh images. */
int mproc__exec_template_start(mproc__engine *e);
/* The exec handoff, MPROC_EXEC_TEMPLATE's value: "1 <ppid> <sock> <n> <tag>:<fd>:<hexaddr>:<size>...", n
 * of them.  The new image reads at most MPROC__EXEC_HANDOFF_CHARS - 1 characters of it. */
#define MPROC__EXEC_HANDOFF_MAX 4
#define MPROC__EXEC_HANDOFF_CHARS (64 + MPROC__EXEC_HANDOFF_MAX * 64)
typedef struct mproc__exec_handoff {
  unsigned tag;
  int fd;
  void *addr;
  size_t size;
} mproc__exec_handoff;
/* Parses s: true with the fields set when it is that (fd, sock >= 0, addr and size not 0, n from 1 to
 * MPROC__EXEC_HANDOFF_MAX), false otherwise (fuzz/fuzz_exec_handoff.c). */
bool mproc__exec_handoff_parse(const char *s, pid_t *ppid, int *sock, mproc__exec_handoff *h, int *n);

/* template.c: the template's loop, and the manager's side of it shared by the process-like
 * backends */
/* The process-like backends' state behind e->backend_state: the template process. */
typedef struct mproc__template {
  pid_t pid;    /* 0 once stopped */
  int pidfd;    /* -1 when none */
  bool foreign; /* the fork server's child, not ours: the server reaps it */
} mproc__template;
/* Makes it (pid 0, no pidfd) unless it exists: the first thing of a process-like backend's start.  0 or
 * MPROC_ENOMEM.  Freed by mproc__template_stop, or by mproc__template_state_free when start fails. */
int mproc__template_state_new(mproc__engine *e);
void mproc__template_state_free(mproc__engine *e);
mproc__template *mproc__template_of(const mproc__engine *e);
/* For tests: the template's pid (0 when the pool has none: threads, serial, stopped) and whether it is the
 * fork server's child. */
pid_t mproc__template_pid(const mproc__engine *e);
bool mproc__template_foreign(const mproc__engine *e);
/* The first step of a process-like backend's start: its state (as mproc__template_state_new) and a socket
 * pair to its template in sv.  0, or negative errno with nothing made. */
int mproc__template_begin(mproc__engine *e, int sv[2]);
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
/* The template's life.  owner: mproc__plat_watch_parent()'s descriptor of the caller's process (-1 where
 * the kernel has none), which the caller of this function opens before it tells anyone the template is
 * ready. */
void mproc__template_main(mproc__shared *sh, int sock, int owner) __attribute__((noreturn));
/* Sends the manager an event on sock, bumps template_events and rings the doorbell: how the template, and
 * the thread backend's workers, report to the manager. */
void mproc__template_notify(mproc__shared *sh, int sock, tpl_msg m);

#endif
