/* backend_mpi.c: the cluster backend (MPROC_BACKEND_MPI): a pool's workers are processes of the other MPI
 * ranks.  Every MPI call of mproc is in this file.
 *
 * Ranks.  mproc_init() starts the fork server first, then, only when an MPI launcher started the program
 * (launched(): its variables are set before MPI_Init), initialises MPI (MPI_THREAD_SERIALIZED: the thread
 * that calls mproc_init() and the courier thread below take turns, never at once).  Rank 0 returns into
 * main as the master; every other rank becomes an agent in agent_main() and leaves with exit(0) when the
 * master ends.  Without a launcher MPI_Init is never called and nothing here runs.
 *
 * The master.  A pool of this backend is an engine like any other: its slots have rings in the pool's
 * shared mapping and the engine reads and writes them as for local workers.  What sits at the far end of a
 * slot's rings is not a worker but the courier, one thread per process that makes every MPI call of the
 * master: it takes each job record the engine writes into a slot's `in` ring, claims it there as a worker
 * would (so a job still in the ring can be taken back for an idle worker), and sends it as one message
 * (fixed header + the record's bytes) to the agent rank that hosts the slot; it writes what the agent sends
 * back (result records, one per message, and deaths) into the slot's `out` ring, and tells the engine of
 * workers' births and deaths through the event socket as the template does (SPAWNED, SPAWN_FAILED, DIED
 * with the wait status).  Master slot i runs on rank 1 + i % A, as worker i / A there (A agents).
 *
 * The agents.  An agent runs, per pool, mproc's own local process pool machinery: a shared mapping laid
 * out as the engine's (slots with rings and staging areas, the workers' configuration, a table of loaded
 * objects) and a template from the fork server, which mproc_init() started *before* MPI_Init, so no worker
 * ever inherits MPI state.  The agent is a relay: a job message is written as is into its worker's `in`
 * ring (an agent's rings are at least AGENT_RING), the worker's result records are sent back as they are
 * (one larger than a ring in ring-sized pieces), and when the template reports a worker's
 * death the agent sends what is left in the `out` ring, then the death with the words the engine reads
 * after one (running_job, running_item, items_done, sent_alone, in_init) and the staging area.  The master
 * writes those into its own slot before it reports DIED, so the engine's fault handling (what finished is
 * kept, the running job or item is retried or fails as MPROC_ECRASHED with its signal, the rest is queued
 * again, a new worker is asked for) works unchanged for remote workers.  Jobs that reach an agent for a
 * dead worker are dropped: the engine has queued them again, and MPI keeps the order of two messages
 * between two ranks, so they all come before the SPAWN that starts the next worker in the slot.  Functions
 * travel as (loaded object, offset) as for exec pools (fresh_image): the courier sends the table of
 * objects' paths to the agents before the first job that uses an entry; an offset means the same code
 * only in the same build, so mproc_init() first compares every rank's program and libraries with rank 0's
 * by build-id (same_objects()).  For task timeouts, an agent sends
 * the running job and item of a slot, and how long it has run, whenever they change while the slot has a
 * timed job; the courier writes them into its slot, where the engine's timeout check reads them.
 *
 * Messages: msg_hdr then bytes, tag TAG on a duplicate of MPI_COMM_WORLD (the program's own MPI traffic
 * never matches ours).  Receives are MPI_Improbe + MPI_Mrecv (any size); sends are MPI_Isend, completed by
 * MPI_Test in the loop (a blocking send of a large message could wait for a peer that is itself blocked
 * sending).  Neither side blocks in MPI: idle, they yield the CPU for IDLE_YIELD seconds, then nap, the nap
 * doubling up to IDLE_NAP_MAX (issue 18 measured 8-13 us per task at 2% idle CPU with this policy, where a
 * blocking receive costs a core per idle rank).  The nap is on a futex word that the napper's own rings
 * and template ring (idle_wait), so it delays only what comes by MPI; while a message is due, it is short.
 *
 * The end.  At exit (atexit, in the thread that initialised MPI) the master's courier sends STOP to every
 * agent, which closes its pools (its templates kill and reap their workers), sends BYE and finalises; the
 * courier waits for every BYE, so that no send of either side is left unmatched, and ends; then the
 * master finalises.  A rank that dies ends the whole job (Open MPI's mpirun; Debian's Open MPI has no
 * ULFM): nothing here can survive it yet.  A rank silent for SILENCE_LIMIT ends it too (check_silence), but
 * first the other agents drain: they start no job and let the running ones end, for DRAIN_GRACE at most, so
 * that the result cache's entries their tasks are writing land; then MPI_Abort.
 *
 * Lock order: the engine lock, then mpi.lock (start, spawn, kill and stop queue commands for the courier
 * under it); the courier takes no engine lock. */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/env.h"
#include "engine/engine.h"
#include "ipc/arena.h"

/* Whether an MPI launcher started this process: the variables mpirun (Open MPI, MPICH's Hydra: PMI_RANK),
 * PMIx launchers and srun (its task id beside the task count) set before MPI_Init.  A batch script's shell
 * has SLURM_NTASKS but no SLURM_PROCID: a program run there directly is not launched. */
static bool launched(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE") ||
         (getenv("SLURM_NTASKS") && getenv("SLURM_PROCID"));
}

#if MPROC_HAVE_MPI
#include <mpi.h>

#define TAG 0x6d70
#define IDLE_YIELD 100e-6
#define IDLE_NAP_FIRST 10e-6
#define IDLE_NAP_MAX 1e-3
/* An agent whose every worker holds a job naps up to this long: nothing the master sends unasked can run
 * sooner (a kill, a drain or the end wait this much longer), and its results ring it.  With 1 ms tasks on
 * both cores, each agent woke 700-800 times a second at 1-1.7% of a core (schedstat) with naps of at most
 * IDLE_NAP_MAX, about 340 times at 0.5-0.6% with this. */
#define FULL_NAP_MAX 5e-3
/* While a message is due from another rank (a job in flight whose result has not come back), the nap is
 * this fraction of the time waited so far (within IDLE_NAP_FIRST and IDLE_NAP_MAX), not the doubling one:
 * a result comes at most an eighth of its wait late, and a long task costs no more polls than idleness. */
#define BUSY_NAP_SHARE 0.125
/* Agents send a heartbeat this often; the master ends the job when a rank has been silent this long. */
#define HEARTBEAT_EVERY 0.5
/* An agent that has sent a result expects a job back for this long (the master answers a result with the
 * next job when it has one): its nap meanwhile is the busy one (BUSY_NAP_SHARE), not the doubling one.
 * Measured with 1 ms tasks one submit each: a worker ran out of jobs after a quarter of its results, and the
 * next job then waited 1-2.5 ms on average for the agent's doubling nap to end. */
#define RESULT_ANSWER 0.01
#define SILENCE_LIMIT 10.0
/* The engine's idea of how long a result's way back and the next job's way out take (its depth of jobs per
 * worker: hop_ns in backend.h): with mpirun -n 3 on 2 cores, tiny tasks one submit each, both ways took
 * 0.5 ms; with 1 ms tasks keeping both cores busy, 2-2.5 ms (a message waits for its receiver's nap, and a
 * napper that wakes waits for a core). */
#define HOP_NS 2.5e6
/* The agents' rings (in and out, per worker) are at least this large (pages are touched as records use
 * them); a result record larger than one goes to the master in pieces of this size. */
#define AGENT_RING ((size_t)4 << 20)
/* How long the master's end waits for the agents' BYE, and a pool's close for the agents' CLOSED. */
#define BYE_WAIT 30.0
#define CLOSE_WAIT 30.0
/* After a rank's silence, how long the tasks running on the other ranks get to finish (and store their
 * results in the result cache) before the job ends; an agent counts its workers idle once none has run a
 * job for DRAIN_SETTLE: a worker that claimed a job just before it was taken back says it runs it a few
 * instructions later, but a loaded machine may not run it for milliseconds (2 ms was seen to be too short
 * under the sanitizers with a load of 20 on 2 cores). */
#define DRAIN_GRACE 5.0
#define DRAIN_SETTLE 0.1

enum {
  /* master -> agent */
  M_OPEN = 1, /* a pool: open_conf, then the initializer's argument */
  M_OBJS,     /* value: index in the table of objects; bytes: the path */
  M_JOB,      /* one job record of the `in` ring */
  M_SPAWN,
  M_KILL,  /* value: the signal */
  M_ABORT, /* value: the token of an aborted map */
  M_CLOSE,
  M_STOP,
  /* agent -> master */
  M_SPAWNED,
  M_SPAWN_FAILED, /* value: errno */
  M_RESULT,       /* bytes of the `out` ring; flags: F_RECORD when they begin a record */
  M_DIED,         /* value: wait status; bytes: death, then the staging area */
  M_STATE,        /* bytes: state */
  M_CLOSED,
  M_BYE,
  M_HEARTBEAT,
  /* master -> agent */
  M_ARENA, /* bytes: arena_piece, then its bytes unless flags has F_ZERO */
  /* agent -> master */
  M_ARENA_DONE, /* a piece of the arena is in place */
  M_DRAIN,      /* master -> agent: start no job, let the running ones end (DRAIN_GRACE at most), answer */
  M_DRAINED,    /* agent -> master: value: its workers still running a job (0: all ended) */
};
enum { F_RECORD = 1, F_ZERO = 2 };

typedef struct msg_hdr {
  uint32_t kind, pool;
  int32_t slot;  /* the master's slot index */
  int32_t local; /* the worker's index on its agent */
  int64_t value;
  uint64_t flags;
} msg_hdr;

typedef struct open_conf {
  uint64_t ring_size, init_arg_len, initializer_ref, finalizer_ref;
  int32_t nlocal, max_tasks_per_child, keep_thread_env;
  uint32_t nobjs; /* paths of the table of objects after the initializer's argument, each with its NUL */
} open_conf;

/* What the engine reads of a slot after its worker's death (see worker_died in engine.c). */
typedef struct death {
  uint64_t running_job;
  int64_t running_item, items_done, sent_alone;
  uint32_t in_init, pad_;
  uint64_t staging_len;
} death;

/* What its timeout check reads while a timed job runs. */
typedef struct state {
  uint64_t running_job;
  int64_t running_item;
  uint64_t ran_ns; /* since the job or item started; UINT64_MAX: its function returned (MPROC__RETURNED) */
} state;

/* A message received or to send: the header and the bytes right after it. */
typedef struct msg {
  struct msg *next;
  size_t len; /* of the bytes */
  size_t cap; /* the bytes its block has room for (msg_block) */
  int src;    /* received: the sender's rank */
  MPI_Request req;
  msg_hdr h;
  unsigned char bytes[]; /* right after h: one block on the wire (read with memcpy: no alignment) */
} msg;
_Static_assert(offsetof(msg, bytes) == offsetof(msg, h) + sizeof(msg_hdr), "msg: header and bytes apart");

/* A slot's queue of messages (a master slot's results to write, an agent slot's jobs): m at its end. */
static void queue_push(msg **head, msg **tail, msg *m) {
  m->next = NULL;
  if (*tail)
    (*tail)->next = m;
  else
    *head = m;
  *tail = m;
}

/* ---- message blocks ---- */

/* The blocks of large messages a thread frees (the courier's, an agent's: each allocates and frees its
 * own) are kept for its next ones: a 64 MiB payload travels in 4 MiB pieces, and a new block for every piece
 * was a first touch of each of its pages (16 us a page on some guests: a quarter of a second per direction
 * of a 64 MiB task).  At most SPARES blocks of SPARE_FROM bytes or more, SPARE_BYTES in all, are kept, and
 * given back after SPARE_IDLE seconds without work (idle_wait) and when the thread ends.  The courier
 * receives a 64 MiB result's sixteen pieces before the engine's ring has taken them: with 8 blocks kept,
 * half were new for every result (one 64 MiB result at a time: 187-227 ms per task, 56-60 with 32). */
#define SPARE_FROM ((size_t)256 << 10)
#define SPARES 32
#define SPARE_BYTES ((size_t)160 << 20)
#define SPARE_IDLE 1.0
static _Thread_local msg *spares[SPARES];
static _Thread_local size_t nspares, spare_bytes;
static uint64_t large_blocks; /* large message blocks this process allocated (mproc__mpi_large_blocks) */

/* A message block with room for len bytes (m->len set), a kept one when one fits (at most twice as large:
 * a 64 MiB job's block taken for a 4 MiB piece of a result left the next 64 MiB job a new block); NULL
 * without memory. */
static msg *msg_block(size_t len) {
  if (len >= SPARE_FROM) {
    size_t best = SPARES;
    for (size_t k = 0; k < nspares; k++)
      if (spares[k]->cap >= len && spares[k]->cap / 2 <= len &&
          (best == SPARES || spares[k]->cap < spares[best]->cap))
        best = k;
    if (best < SPARES) {
      msg *m = spares[best];
      spares[best] = spares[--nspares];
      spare_bytes -= m->cap;
      m->len = len;
      return m;
    }
  }
  msg *m = mproc__malloc(sizeof *m + len);
  if (m) m->cap = m->len = len;
  if (m && len >= SPARE_FROM) __atomic_fetch_add(&large_blocks, 1, __ATOMIC_RELAXED);
  return m;
}

/* The smallest block kept (nspares > 0). */
static size_t least_spare(void) {
  size_t least = 0;
  for (size_t k = 1; k < nspares; k++)
    if (spares[k]->cap < spares[least]->cap) least = k;
  return least;
}

/* Frees m, or keeps its block for the thread's next large message (in place of a smaller one kept). */
static void msg_free(msg *m) {
  if (!m) return;
  if (m->cap >= SPARE_FROM && m->cap <= SPARE_BYTES) {
    while (nspares > 0 && (nspares == SPARES || spare_bytes + m->cap > SPARE_BYTES)) {
      size_t least = least_spare(); /* a smaller block kept makes room */
      if (spares[least]->cap >= m->cap) break;
      spare_bytes -= spares[least]->cap;
      mproc__free(spares[least]);
      spares[least] = spares[--nspares];
    }
    if (nspares < SPARES && spare_bytes + m->cap <= SPARE_BYTES) {
      spares[nspares++] = m;
      spare_bytes += m->cap;
      return;
    }
  }
  mproc__free(m);
}

/* Gives back every block the thread keeps. */
static void spares_drop(void) {
  while (nspares > 0) mproc__free(spares[--nspares]);
  spare_bytes = 0;
}

/* Frees every message of a queue and leaves it empty. */
static void queue_drop(msg **head, msg **tail) {
  for (msg *m = *head, *next; m; m = next) {
    next = m->next;
    mproc__free(m);
  }
  *head = *tail = NULL;
}

static struct {
  int state; /* OFF, MASTER, AGENT, FAILED */
  char why[256];
  MPI_Comm comm;
  int rank, size, agents, total_cpus;
  char (*hosts)[MPI_MAX_PROCESSOR_NAME]; /* master: each rank's processor name */
  double *heard;                         /* master: when the courier last had a message from each rank */
  struct beat {
    double at;    /* when the courier had the rank's last heartbeat, 0 before the first */
    int64_t naps; /* what it said: the naps the rank had taken (mproc__mpi_rank_naps) */
  } * beats;      /* master: each rank's */
  /* the master's courier */
  pthread_mutex_t lock;
  uint32_t bell;     /* bumped to wake the courier */
  uint32_t sleeping; /* the courier naps on bell: the engine's rings ring it (mpi_start) */
  struct cmd *cmd_head, *cmd_tail;
  bool stop, courier_running;
  pthread_t courier;
  uint32_t next_pool;
  /* sends not yet complete (the courier's, or the agent's) */
  msg *sends;
} mpi = {.lock = PTHREAD_MUTEX_INITIALIZER};
enum { OFF = 0, MASTER, AGENT, FAILED };

static unsigned char *msg_data(msg *m) { return m->bytes; }

/* Out of memory where the job cannot go on (a peer would wait for ever for what was lost): ends it. */
static _Noreturn void die(const char *what, size_t bytes) {
  fprintf(stderr, "mproc: MPI rank %d: out of memory for %s (%zu bytes): the job ends\n", mpi.rank, what,
          bytes);
  MPI_Abort(MPI_COMM_WORLD, 1);
  abort(); /* MPI_Abort does not return */
}

/* A message of len bytes to fill; dies without memory (see post). */
static msg *msg_new(size_t len) {
  msg *m = msg_block(len);
  if (!m) die("a message to send", len);
  return m;
}

/* Sends message m (its bytes filled) with header h without waiting, and frees it once the send completes
 * (progress_sends). */
static void post_msg(int dest, msg_hdr h, msg *m) {
  m->h = h;
  /* header and bytes are one block: sizeof h is a multiple of 8 and bytes follows it */
  MPI_Isend(&m->h, (int)(sizeof m->h + m->len), MPI_BYTE, dest, TAG, mpi.comm, &m->req);
  m->next = mpi.sends;
  mpi.sends = m;
}

/* Sends a message (the header, then len bytes from data) without waiting; it completes in progress_sends.
 * No memory: the job cannot go on (its peers would wait for ever), so it ends. */
static void post(int dest, msg_hdr h, const void *data, size_t len, const void *data2, size_t len2) {
  msg *m = msg_new(len + len2);
  if (len) memcpy(m->bytes, data, len);
  if (len2) memcpy(m->bytes + len, data2, len2);
  post_msg(dest, h, m);
}

/* Skips the pad record whose header (magic, kind, payload_len) was peeked at the head of ring r: the record
 * layer's rewind of an idle ring (mproc__ring_pad_gap); hdr_len: the header's size.  True when it was one. */
static bool skip_pad(mproc__ring *r, uint32_t magic, uint32_t kind, size_t hdr_len, uint64_t payload_len) {
  if (magic != WIRE_MAGIC || kind != JOB_PAD) return false;
  mproc__ring_skip(r, hdr_len + (size_t)payload_len); /* published whole by mproc__ring_put_pad */
  return true;
}

/* Completes what it can of the sends; true when none is left. */
static bool progress_sends(void) {
  for (msg **p = &mpi.sends; *p;) {
    int done = 0;
    MPI_Test(&(*p)->req, &done, MPI_STATUS_IGNORE);
    if (done) {
      msg *m = *p;
      *p = m->next;
      msg_free(m);
    } else {
      p = &(*p)->next;
    }
  }
  return mpi.sends == NULL;
}

/* The next message from src (MPI_ANY_SOURCE for any), or NULL when none has arrived. */
static msg *receive(int src) {
  int flag = 0;
  MPI_Message mm;
  MPI_Status st;
  MPI_Improbe(src, TAG, mpi.comm, &flag, &mm, &st);
  if (!flag) return NULL;
  int count = 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  size_t len = (size_t)count >= sizeof(msg_hdr) ? (size_t)count - sizeof(msg_hdr) : 0;
  msg *m = msg_block(len);
  if (!m) die("a message received", len);
  MPI_Mrecv(&m->h, count, MPI_BYTE, &mm, &st);
  m->src = st.MPI_SOURCE;
  m->next = NULL;
  return m;
}

/* ---- waiting when idle ---- */

typedef struct idle {
  double since, nap;
  double cap; /* the longest nap: IDLE_NAP_MAX when 0 */
} idle;

static void idle_reset(idle *d) { d->since = 0, d->nap = 0; }

static int64_t naps; /* how many naps this process's waiting loop took (an agent's heartbeat tells them) */

/* One wait of a loop that found nothing to do: a yield of the CPU for IDLE_YIELD, then a nap on bell,
 * doubling from IDLE_NAP_FIRST to IDLE_NAP_MAX.  busy: a message is due from another rank, which no bell
 * announces (MPI cannot wake a sleeper: only a poll finds it), so the nap is BUSY_NAP_SHARE of the wait so
 * far.  What this process's own rings and template publish rings bell (they point their wake at it), so a
 * nap never delays them; work() looks once more after the nap is announced (spinwait.h's handshake), NULL
 * when nothing rings bell. */
static void idle_wait(idle *d, mproc__bell bell, bool busy, bool (*work)(void)) {
  double now = mproc__plat_now();
  if (d->since == 0) d->since = now;
  if (now - d->since < IDLE_YIELD) {
    sched_yield();
    return;
  }
  d->nap = d->nap > 0 ? d->nap * 2 : IDLE_NAP_FIRST;
  if (busy) d->nap = BUSY_NAP_SHARE * (now - d->since);
  if (d->nap < IDLE_NAP_FIRST) d->nap = IDLE_NAP_FIRST;
  double cap = d->cap > 0 ? d->cap : IDLE_NAP_MAX;
  if (d->nap > cap) d->nap = cap;
  if (!busy && now - d->since >= SPARE_IDLE) spares_drop();
  uint32_t seen = mproc__bell_announce(bell, true);
  if (!work || !work()) {
    naps++;
    mproc__bell_sleep(bell, seen, d->nap);
  }
  mproc__bell_awake(bell);
}

/* ---- the master: pools, commands, the courier ---- */

enum { S_SPAWNING = 0, S_ALIVE, S_DEAD };

typedef struct mslot {
  int rank, local, state;
  int32_t pid;  /* what the engine was told */
  int inflight; /* jobs sent to the agent whose last result has not come back */
  bool timed_seen;
  /* the job record being read from the `in` ring into its message: tx->len bytes in all, tx_len read */
  msg *tx;
  size_t tx_len;
  /* what the agent sent, in order, still to be written into the `out` ring */
  msg *q_head, *q_tail;
  size_t q_off;
} mslot;

typedef struct mpool {
  mproc__engine *e;
  mproc__shared *sh;
  uint32_t id;
  int sock; /* the end the courier reports on */
  int n;
  mslot *slots;
  uint32_t objs_sent, aborted_seen;
  int32_t pid_seq;
  int closes_due;
  bool closing;
  uint32_t closed; /* futex word: 1 once every agent has closed it (the courier has let go of it) */
  msg *open;       /* the M_OPEN message's bytes (open_conf, initializer's argument, objects' paths) */
  struct mpool *next;
} mpool;

typedef struct cmd {
  struct cmd *next;
  int kind; /* M_OPEN, M_SPAWN, M_KILL, M_CLOSE */
  mpool *p;
  int slot, value;
} cmd;

static mproc__bell courier_bell(void) { return (mproc__bell){.word = &mpi.bell, .asleep = &mpi.sleeping}; }

static void wake_courier(void) {
  __atomic_fetch_add(&mpi.bell, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&mpi.bell, 1);
}

/* Queues a command for the courier (from the engine: lock order engine, then mpi.lock).  False without
 * memory. */
static bool command(int kind, mpool *p, int slot, int value) {
  cmd *c = mproc__malloc(sizeof *c);
  if (!c) return false;
  *c = (cmd){NULL, kind, p, slot, value};
  pthread_mutex_lock(&mpi.lock);
  if (mpi.cmd_tail)
    mpi.cmd_tail->next = c;
  else
    mpi.cmd_head = c;
  mpi.cmd_tail = c;
  pthread_mutex_unlock(&mpi.lock);
  wake_courier();
  return true;
}

static mpool *pools; /* the courier's */

static msg_hdr hdr(int kind, const mpool *p, int slot, int local, int64_t value) {
  return (msg_hdr){(uint32_t)kind, p ? p->id : 0, slot, local, value, 0};
}

static void report(mpool *p, tpl_msg m) { mproc__template_notify(p->sh, p->sock, m); }

/* Hosts of the pool: the agents that run at least one of its workers (ranks 1 to hosts). */
static int hosts(const mpool *p) { return p->n < mpi.agents ? p->n : mpi.agents; }

/* The table of objects' paths, sent to every agent up to what the engine has published. */
static void sync_objs(mpool *p) {
  uint32_t n = __atomic_load_n(&p->sh->objs->count, __ATOMIC_ACQUIRE);
  for (; p->objs_sent < n; p->objs_sent++) {
    const char *path = p->sh->objs->path[p->objs_sent];
    for (int r = 1; r <= hosts(p); r++)
      post(r, hdr(M_OBJS, p, -1, -1, p->objs_sent), path, strlen(path) + 1, NULL, 0);
  }
}

/* Maps aborted since the last look: the agents' workers skip their batches too. */
static void sync_aborted(mpool *p) {
  uint32_t next = __atomic_load_n(&p->sh->aborted_next, __ATOMIC_ACQUIRE);
  for (; p->aborted_seen != next; p->aborted_seen++) {
    uint64_t token = __atomic_load_n(&p->sh->aborted[p->aborted_seen % 16], __ATOMIC_ACQUIRE);
    for (int r = 1; r <= hosts(p); r++) post(r, hdr(M_ABORT, p, -1, -1, (int64_t)token), NULL, 0, NULL, 0);
  }
}

/* ---- the shared arena on the agents ----
 *
 * Every rank maps its shared arena (ipc/arena.h) at ARENA_AT (mproc_init() asks for it before MPI starts),
 * so an agent's arena, which its fork server, templates and workers share, sits at the master's addresses.
 * Nothing on an agent allocates from it: it holds a copy of the master's blocks.  When a call begins on
 * the master (arena_call_begins: a submission, a map, a stream, in the caller's thread, before it queues
 * any job), the caller compares each block, chunk by chunk, with what the agents were last sent (a 64-bit
 * hash per ARENA_CHUNK) and queues the chunks that changed (runs of them, up to ARENA_PIECE_MAX bytes per
 * message), the ranges of blocks freed since (to be zeroed there), and the zero chunks of blocks that
 * changed (zeroed rather than sent); a block new since then is sent but for its zero chunks (an agent's
 * copy is zero wherever no block was sent).  The courier sends every queued piece to every agent before it
 * forwards another job (arena_flush), and MPI keeps the order of two messages between two ranks: the tasks
 * of a call read, on every rank, what the master's arena held when the call began.  What tasks write into
 * the arena on an agent stays there. */
/* 32 TiB: far from programs, heaps, libraries and stacks (x86-64 and arm64, 47- and 48-bit address spaces),
 * and above AddressSanitizer's shadow memory (which ends near 16 TiB on x86-64) */
#define ARENA_AT ((uintptr_t)1 << 45)
#define ARENA_CHUNK ((size_t)1 << 20)
#define ARENA_PIECE_MAX ((size_t)8 << 20)
/* Pieces sent to an agent and not yet in place there, at most: all at once, a large arena's pieces would
 * share the link and each be done only near the end, the agent silent meanwhile (its loop receives them one
 * after the other). */
#define ARENA_WINDOW 2

typedef struct arena_piece {
  uint64_t base, size; /* the master's arena */
  uint64_t off, len;   /* the range, from its base */
} arena_piece;

typedef struct sent_block {
  size_t off, len;
  uint64_t *hash; /* of each chunk, as last sent */
} sent_block;

static struct {
  pthread_mutex_t lock; /* callers: one sync at a time */
  sent_block *v;        /* what the agents hold, in address order */
  size_t n;
  uintptr_t base;
  size_t size;
  bool warned;
  msg *head, *tail; /* pieces for the courier (under mpi.lock) */
  uint32_t queued;  /* pieces queued so far (written under mpi.lock, read by the courier without) */
  uint32_t taken;   /* the courier's from here on: pieces taken from the queue */
  msg *list, *last; /* pieces taken, not yet sent to every agent */
  msg **next;       /* per rank: the next piece of the list to send it (NULL: none) */
  int *out;         /* per rank: pieces sent it and not yet in place */
  uint64_t sent;    /* bytes sent, each agent's copy counted */
} asy = {.lock = PTHREAD_MUTEX_INITIALIZER};

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* A 64-bit hash of len bytes (a multiple of 32: chunks of page-sized blocks), four lanes as in xxHash64;
 * *zero: whether every byte is 0. */
static uint64_t chunk_hash(const unsigned char *p, size_t len, bool *zero) {
  const uint64_t P1 = 0x9E3779B185EBCA87u, P2 = 0xC2B2AE3D27D4EB4Fu, P3 = 0x165667B19E3779F9u,
                 P4 = 0x85EBCA77C2B2AE63u;
  uint64_t a = P1 + P2, b = P2, c = 0, d = 0 - P1, any = 0;
  for (size_t i = 0; i + 32 <= len; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, sizeof w);
    any |= w[0] | w[1] | w[2] | w[3];
    a = rotl64(a + w[0] * P2, 31) * P1;
    b = rotl64(b + w[1] * P2, 31) * P1;
    c = rotl64(c + w[2] * P2, 31) * P1;
    d = rotl64(d + w[3] * P2, 31) * P1;
  }
  uint64_t h = rotl64(a, 1) + rotl64(b, 7) + rotl64(c, 12) + rotl64(d, 18);
  uint64_t lanes[4] = {a, b, c, d};
  for (int k = 0; k < 4; k++) h = (h ^ (rotl64(lanes[k] * P2, 31) * P1)) * P1 + P4;
  h += len;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  *zero = any == 0;
  return h;
}

/* Appends a piece at *tail: [off, off+len) of the arena, its bytes (copied now) unless zero. */
static void arena_piece_add(msg ***tail, uintptr_t base, size_t size, size_t off, size_t len, bool zero,
                            size_t *count) {
  arena_piece a = {base, size, off, len};
  size_t bytes = sizeof a + (zero ? 0 : len);
  msg *m = msg_block(bytes);
  if (!m) die("a piece of the shared arena", bytes);
  m->next = NULL;
  m->h = (msg_hdr){M_ARENA, 0, -1, -1, 0, zero ? F_ZERO : 0};
  memcpy(m->bytes, &a, sizeof a);
  if (!zero) memcpy(m->bytes + sizeof a, (const unsigned char *)base + off, len);
  **tail = m;
  *tail = &m->next;
  (*count)++;
}

static void sent_free(sent_block *v, size_t n) {
  for (size_t i = 0; i < n; i++) mproc__free(v[i].hash);
  mproc__free(v);
}

/* The backend's call_begins: queues for the agents what changed in the arena since they were last sent it
 * (see above). */
static void arena_call_begins(mproc__engine *e) {
  (void)e;
  if (mpi.state != MASTER || mpi.agents == 0) return;
  pthread_mutex_lock(&asy.lock);
  mproc__arena_block *b = NULL;
  size_t nb = 0, size = 0;
  void *basep = NULL;
  if (mproc__arena_blocks(&b, &nb, &basep, &size) != 0) { /* no arena now: the agents' copies go */
    basep = (void *)asy.base;
    size = asy.size;
  }
  uintptr_t base = (uintptr_t)basep;
  if (nb == 0 && asy.n == 0) { /* nothing any task can read, nothing to take back */
    pthread_mutex_unlock(&asy.lock);
    return;
  }
  if (base != ARENA_AT) {
    if (!asy.warned)
      fprintf(
          stderr,
          "mproc: the shared arena (mproc_shared_alloc) is at %p, not where the MPI agents have theirs (its "
          "address was taken, or it was made before mproc_init()): tasks on other ranks cannot read it\n",
          basep);
    asy.warned = true;
    mproc__free(b);
    pthread_mutex_unlock(&asy.lock);
    return;
  }
  msg *head = NULL, **tail = &head;
  size_t count = 0;
  if (base != asy.base || size != asy.size) {
    /* another arena than the one last sent (made anew at the same place, of another size): what the agents
     * hold of the old one goes, and every block is sent anew */
    for (size_t i = 0; i < asy.n; i++)
      if (asy.v[i].off < size && asy.v[i].len <= size - asy.v[i].off)
        arena_piece_add(&tail, base, size, asy.v[i].off, asy.v[i].len, true, &count);
    sent_free(asy.v, asy.n);
    asy.v = NULL;
    asy.n = 0;
    asy.base = base;
    asy.size = size;
  }
  sent_block *nv = nb ? mproc__calloc(nb, sizeof *nv) : NULL;
  if (nb && !nv) die("the shared arena's table", nb * sizeof *nv);
  /* blocks sent before and gone now (freed, or another block at their place): zeroed on the agents first */
  for (size_t i = 0, k = 0; i < asy.n; i++) {
    while (k < nb && b[k].off < asy.v[i].off) k++;
    if (k < nb && b[k].off == asy.v[i].off && b[k].len == asy.v[i].len) continue;
    arena_piece_add(&tail, base, size, asy.v[i].off, asy.v[i].len, true, &count);
  }
  for (size_t k = 0, i = 0; k < nb; k++) {
    while (i < asy.n && asy.v[i].off < b[k].off) i++;
    const sent_block *old =
        i < asy.n && asy.v[i].off == b[k].off && asy.v[i].len == b[k].len ? &asy.v[i] : NULL;
    size_t chunks = (b[k].len + ARENA_CHUNK - 1) / ARENA_CHUNK;
    nv[k] = (sent_block){b[k].off, b[k].len, mproc__malloc(chunks * sizeof(uint64_t))};
    if (!nv[k].hash) die("the shared arena's table", chunks * sizeof(uint64_t));
    size_t run_off = 0, run_len = 0; /* chunks to send, not yet queued */
    for (size_t c = 0; c < chunks; c++) {
      size_t off = b[k].off + c * ARENA_CHUNK, len = b[k].len - c * ARENA_CHUNK;
      if (len > ARENA_CHUNK) len = ARENA_CHUNK;
      bool zero = false;
      uint64_t h = chunk_hash((const unsigned char *)base + off, len, &zero);
      nv[k].hash[c] = h;
      bool changed = old ? old->hash[c] != h : !zero;
      if (changed && !zero && run_len + len <= ARENA_PIECE_MAX) {
        if (run_len == 0) run_off = off;
        run_len += len;
        continue;
      }
      if (run_len) arena_piece_add(&tail, base, size, run_off, run_len, false, &count);
      run_len = 0;
      if (changed && zero) {
        arena_piece_add(&tail, base, size, off, len, true, &count);
      } else if (changed) { /* the run was full: this chunk begins the next */
        run_off = off;
        run_len = len;
      }
    }
    if (run_len) arena_piece_add(&tail, base, size, run_off, run_len, false, &count);
  }
  mproc__free(b);
  sent_free(asy.v, asy.n);
  asy.v = nv;
  asy.n = nb;
  if (head) {
    pthread_mutex_lock(&mpi.lock);
    if (asy.tail)
      asy.tail->next = head;
    else
      asy.head = head;
    for (asy.tail = head; asy.tail->next;) asy.tail = asy.tail->next;
    __atomic_store_n(&asy.queued, asy.queued + (uint32_t)count, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&mpi.lock);
    wake_courier();
  }
  pthread_mutex_unlock(&asy.lock);
}

/* The courier: sends the pieces of the arena queued so far to every agent, at most ARENA_WINDOW at a time
 * unless all (a job of a call whose pieces are not all sent must wait for them, or take them along).  True
 * when every piece has been sent to every agent. */
static bool arena_flush(bool all) {
  if (__atomic_load_n(&asy.queued, __ATOMIC_ACQUIRE) != asy.taken) {
    if (!asy.next) {
      asy.next = mproc__calloc((size_t)mpi.size, sizeof(msg *));
      asy.out = mproc__calloc((size_t)mpi.size, sizeof(int));
      if (!asy.next || !asy.out) die("the shared arena's table", (size_t)mpi.size * sizeof(msg *));
    }
    pthread_mutex_lock(&mpi.lock);
    msg *m = asy.head;
    asy.head = asy.tail = NULL;
    asy.taken = __atomic_load_n(&asy.queued, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&mpi.lock);
    if (m) {
      if (asy.last)
        asy.last->next = m;
      else
        asy.list = m;
      for (int r = 1; r < mpi.size; r++)
        if (!asy.next[r]) asy.next[r] = m;
      for (asy.last = m; asy.last->next;) asy.last = asy.last->next;
    }
  }
  if (!asy.list) return true;
  bool done = true;
  for (int r = 1; r < mpi.size; r++) {
    for (msg *m; (m = asy.next[r]) && (all || asy.out[r] < ARENA_WINDOW);) {
      msg *copy = msg_block(m->len);
      if (!copy) die("a piece of the shared arena", m->len);
      size_t cap = copy->cap;
      memcpy(copy, m, sizeof *copy + m->len);
      copy->cap = cap;
      post_msg(r, copy->h, copy);
      asy.out[r]++;
      if (!(m->h.flags & F_ZERO))
        __atomic_fetch_add(&asy.sent, m->len - sizeof(arena_piece), __ATOMIC_RELAXED);
      asy.next[r] = m->next;
    }
    done &= asy.next[r] == NULL;
  }
  /* the pieces every agent has been sent */
  while (asy.list) {
    bool pending = false;
    for (int r = 1; r < mpi.size; r++) pending |= asy.next[r] == asy.list;
    if (pending) break;
    msg *m = asy.list;
    asy.list = m->next;
    if (!asy.list) asy.last = NULL;
    msg_free(m);
  }
  return done;
}

/* The courier: an agent has a piece in place. */
static void arena_done(int rank) {
  if (asy.out && rank > 0 && rank < mpi.size && asy.out[rank] > 0) asy.out[rank]--;
}

/* Takes the job records the engine wrote into slot i's `in` ring and sends each whole to its agent. */
static bool forward_jobs(mpool *p, int i) {
  mslot *s = &p->slots[i];
  mproc__slot *slot = &p->sh->slots[i];
  mproc__ring *in = slot->in;
  bool progressed = false;
  if (!arena_flush(false)) return false; /* jobs wait for the arena's pieces queued before them */
  for (;;) {
    if (!s->tx) {
      wire_job h;
      if (mproc__ring_used(in) < sizeof h) break;
      mproc__ring_peek(in, &h, sizeof h);
      if (skip_pad(in, h.magic, h.kind, sizeof h, h.payload_len)) {
        progressed = true;
        continue;
      }
      /* read straight into the message that carries it (a large one is not copied again) */
      s->tx = msg_new(sizeof h + h.payload_len);
      s->tx_len = 0;
    }
    size_t n = mproc__ring_get_some_quiet(in, s->tx->bytes + s->tx_len, s->tx->len - s->tx_len);
    if (n == 0) break;
    progressed = true;
    s->tx_len += n;
    if (s->tx_len < s->tx->len) continue;
    msg *m = s->tx;
    s->tx = NULL;
    wire_job j;
    memcpy(&j, m->bytes, sizeof j);
    if (j.kind == JOB_TASK || j.kind == JOB_BATCH) {
      /* claimed here for the remote worker: a job still in the ring could be taken back for an idle worker,
       * one that has left cannot */
      uint64_t want = j.id;
      if (!__atomic_compare_exchange_n(&slot->claim[j.claim % MPROC__CLAIMS], &want, 0, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        msg_free(m);
        continue;
      }
      if (j.timed) s->timed_seen = true;
      s->inflight++;
      sync_objs(p);
    }
    arena_flush(true); /* what the arena held when the job's call began, before the job */
    post_msg(s->rank, hdr(M_JOB, p, i, s->local, 0), m);
  }
  if (progressed) mproc__ring_wake_producer(in);
  return progressed;
}

/* Writes what slot i's agent sent into its `out` ring, in order; a death once all before it is written. */
static bool deliver(mpool *p, int i) {
  mslot *s = &p->slots[i];
  mproc__slot *slot = &p->sh->slots[i];
  mproc__ring *out = slot->out;
  bool wrote = false, progressed = false;
  while (s->q_head) {
    msg *m = s->q_head;
    if (m->h.kind == M_RESULT) {
      if (s->q_off == 0 && (m->h.flags & F_RECORD)) {
        wire_result r;
        if (m->len >= sizeof r) {
          memcpy(&r, msg_data(m), sizeof r);
          if (r.last && s->inflight > 0) s->inflight--;
        }
        size_t gap = mproc__ring_pad_gap(out, MPROC__REWIND_FROM, sizeof(wire_result));
        if (gap) {
          wire_result pad = {.magic = WIRE_MAGIC, .kind = JOB_PAD, .payload_len = gap - sizeof pad};
          mproc__ring_put_pad(out, &pad, sizeof pad, gap);
        }
      }
      size_t n = mproc__ring_put_some_quiet(out, msg_data(m) + s->q_off, m->len - s->q_off);
      s->q_off += n;
      wrote |= n > 0;
      if (s->q_off < m->len) break; /* the ring is full: the engine reads it */
    } else if (m->h.kind == M_STATE && m->len >= sizeof(state)) {
      state st;
      memcpy(&st, msg_data(m), sizeof st);
      __atomic_store_n(&slot->started_ns,
                       st.ran_ns == UINT64_MAX ? MPROC__RETURNED : mproc__now_ns() - st.ran_ns,
                       __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_item, st.running_item, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_job, st.running_job, __ATOMIC_RELEASE);
    } else if (m->h.kind == M_DIED) {
      if (wrote) mproc__ring_wake_if_unread(out);
      wrote = false;
      death d = {0};
      if (m->len >= sizeof d) memcpy(&d, msg_data(m), sizeof d);
      size_t staged = m->len >= sizeof d + d.staging_len ? (size_t)d.staging_len : 0;
      if (staged > slot->staging_size) staged = (size_t)slot->staging_size;
      if (staged) memcpy(slot->staging, msg_data(m) + sizeof d, staged);
      __atomic_store_n(&slot->running_item, d.running_item, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->items_done, d.items_done, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->sent_alone, d.sent_alone, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->in_init, d.in_init, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_job, d.running_job, __ATOMIC_RELEASE);
      s->state = S_DEAD;
      msg_free(s->tx); /* the rest of the record went with the ring (the engine resets it) */
      s->tx = NULL;
      s->timed_seen = false;
      s->inflight = 0;
      report(p, (tpl_msg){TPL_DIED, i, s->pid, (int32_t)m->h.value});
    }
    s->q_head = m->next;
    if (!s->q_head) s->q_tail = NULL;
    s->q_off = 0;
    msg_free(m);
    progressed = true;
  }
  if (wrote) mproc__ring_wake_if_unread(out);
  return progressed;
}

static mpool *pool_by_id(uint32_t id) {
  for (mpool *p = pools; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

/* A message from an agent. */
static void master_receive(msg *m) {
  if (m->h.kind == M_HEARTBEAT && m->src > 0 && m->src < mpi.size) {
    pthread_mutex_lock(&mpi.lock);
    mpi.beats[m->src] = (struct beat){mproc__plat_now(), m->h.value};
    pthread_mutex_unlock(&mpi.lock);
    msg_free(m);
    return;
  }
  if (m->h.kind == M_ARENA_DONE) {
    arena_done(m->src);
    msg_free(m);
    return;
  }
  mpool *p = pool_by_id(m->h.pool);
  int i = m->h.slot;
  if (m->h.kind == M_BYE || !p || (m->h.kind != M_CLOSED && (p->closing || i < 0 || i >= p->n))) {
    msg_free(m);
    return;
  }
  mslot *s = i >= 0 && i < p->n ? &p->slots[i] : NULL;
  switch (m->h.kind) {
    case M_SPAWNED:
      s->state = S_ALIVE;
      /* a pid for the engine: positive and never reused while the pool lives */
      s->pid = ++p->pid_seq;
      report(p, (tpl_msg){TPL_SPAWNED, i, s->pid, 0});
      msg_free(m);
      return;
    case M_SPAWN_FAILED:
      s->state = S_DEAD;
      report(p, (tpl_msg){TPL_SPAWN_FAILED, i, 0, (int32_t)m->h.value});
      msg_free(m);
      return;
    case M_RESULT:
    case M_DIED:
    case M_STATE:
      queue_push(&s->q_head, &s->q_tail, m);
      return;
    case M_CLOSED:
      msg_free(m);
      if (--p->closes_due > 0) return;
      /* the pool's workers are gone on every rank: its stop may free it */
      for (mpool **q = &pools; *q; q = &(*q)->next)
        if (*q == p) {
          *q = p->next;
          break;
        }
      __atomic_store_n(&p->closed, 1, __ATOMIC_RELEASE);
      mproc__plat_futex_wake(&p->closed, INT32_MAX);
      return;
    default:
      msg_free(m);
  }
}

static void run_command(cmd *c) {
  mpool *p = c->p;
  if (c->kind == M_OPEN) {
    p->next = pools;
    pools = p;
    open_conf oc;
    memcpy(&oc, msg_data(p->open), sizeof oc);
    for (int r = 1; r <= hosts(p); r++) {
      oc.nlocal = (p->n - (r - 1) + mpi.agents - 1) / mpi.agents;
      post(r, hdr(M_OPEN, p, -1, -1, 0), &oc, sizeof oc, msg_data(p->open) + sizeof oc,
           p->open->len - sizeof oc);
    }
  } else if (c->kind == M_SPAWN) {
    mslot *s = &p->slots[c->slot];
    s->state = S_SPAWNING;
    post(s->rank, hdr(M_SPAWN, p, c->slot, s->local, 0), NULL, 0, NULL, 0);
  } else if (c->kind == M_KILL) {
    mslot *s = &p->slots[c->slot];
    if (s->state != S_DEAD) post(s->rank, hdr(M_KILL, p, c->slot, s->local, c->value), NULL, 0, NULL, 0);
  } else if (c->kind == M_CLOSE) {
    p->closing = true;
    p->closes_due = hosts(p);
    for (int r = 1; r <= hosts(p); r++) post(r, hdr(M_CLOSE, p, -1, -1, 0), NULL, 0, NULL, 0);
  }
  mproc__free(c);
}

/* Before the job ends for a silent rank: every rank still heard from starts no job and lets the running ones
 * end, for DRAIN_GRACE at most, so that what they store (the result cache's entries, written by the tasks
 * themselves) lands; the courier waits for their answers (M_DRAINED), dropping what else they send. */
static void drain(double now) {
  int due = 0, running = 0;
  for (int r = 1; r < mpi.size; r++) {
    /* a silent rank too: should it wake (the abort's SIGCONT), it starts no job; its answer is not awaited */
    post(r, hdr(M_DRAIN, NULL, -1, -1, 0), NULL, 0, NULL, 0);
    due += now - mpi.heard[r] < SILENCE_LIMIT;
  }
  const int asked = due;
  double deadline = now + DRAIN_GRACE + 1.0; /* the agents' grace, and time for their answers */
  idle d = {0};
  while (due > 0 && mproc__plat_now() < deadline) {
    msg *m = receive(MPI_ANY_SOURCE);
    progress_sends();
    if (!m) {
      idle_wait(&d, courier_bell(), true, NULL); /* answers are due */
      continue;
    }
    idle_reset(&d);
    if (m->h.kind == M_DRAINED) {
      due--;
      running += (int)m->h.value;
    }
    msg_free(m);
  }
  fprintf(
      stderr,
      "mproc: the tasks running on the %d other agent ranks were given %.0f s to end: %d workers still ran "
      "one, %d ranks did not answer (%.1f s)\n",
      asked, DRAIN_GRACE, running, due, mproc__plat_now() - now);
}

/* A rank silent for SILENCE_LIMIT (stopped, hung, its node gone) would leave the program waiting for ever
 * for what it holds: the job ends, saying which rank and which of the pools' workers were there.  A rank
 * that dies ends the job without this (Open MPI's mpirun aborts it; no ULFM: see docs/cluster.md). */
static void check_silence(double now) {
  for (int r = 1; r < mpi.size; r++) {
    if (now - mpi.heard[r] < SILENCE_LIMIT) continue;
    fprintf(stderr,
            "mproc: MPI rank %d (host %s) has not been heard from for %.0f s: it is stopped, hung or lost;"
            " the job ends.",
            r, mpi.hosts[r], now - mpi.heard[r]);
    for (mpool *p = pools; p; p = p->next) {
      int workers = 0, held = 0;
      for (int i = 0; i < p->n; i++) {
        if (p->slots[i].rank != r) continue;
        workers++;
        held += p->slots[i].inflight;
      }
      fprintf(stderr, " Pool %u: its %d workers there held %d jobs (tasks or batches).", p->id, workers,
              held);
    }
    fprintf(stderr, "\n");
    drain(now);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

/* What the courier's next round would find without MPI: a command, a job in a ring, room the engine made
 * for a result that waits. */
static bool courier_work(void) {
  pthread_mutex_lock(&mpi.lock);
  bool any = mpi.cmd_head || mpi.stop || __atomic_load_n(&asy.queued, __ATOMIC_ACQUIRE) != asy.taken;
  pthread_mutex_unlock(&mpi.lock);
  for (mpool *p = pools; p && !any; p = p->next)
    for (int i = 0; i < p->n && !p->closing && !any; i++)
      any = (p->slots[i].state == S_ALIVE && mproc__ring_used(p->sh->slots[i].in) > 0) ||
            (p->slots[i].q_head && mproc__ring_free(p->sh->slots[i].out) > 0);
  return any;
}

/* Whether a message is due from an agent (a job in flight) or a send is not complete. */
static bool courier_busy(void) {
  if (mpi.sends || asy.list) return true; /* (pieces of the arena wait for their M_ARENA_DONE) */
  for (mpool *p = pools; p; p = p->next)
    for (int i = 0; i < p->n; i++)
      if (p->slots[i].inflight > 0) return true;
  return false;
}

/* At the master's end: every agent is told to stop; the courier receives (and drops) all they still send
 * up to their BYE, so that every send of theirs and ours is matched. */
static void say_goodbye(void) {
  for (int r = 1; r < mpi.size; r++) post(r, hdr(M_STOP, NULL, -1, -1, 0), NULL, 0, NULL, 0);
  int byes = 0;
  double deadline = mproc__plat_now() + BYE_WAIT;
  idle d = {0};
  while (byes < mpi.size - 1 && mproc__plat_now() < deadline) {
    msg *m = receive(MPI_ANY_SOURCE);
    progress_sends();
    if (!m) {
      idle_wait(&d, courier_bell(), true, NULL);
      continue;
    }
    idle_reset(&d);
    byes += m->h.kind == M_BYE;
    msg_free(m);
  }
  deadline = mproc__plat_now() + BYE_WAIT;
  while (!progress_sends() && mproc__plat_now() < deadline) idle_wait(&d, courier_bell(), true, NULL);
  if (byes < mpi.size - 1)
    fprintf(stderr, "mproc: %d MPI agent ranks did not answer the end\n", mpi.size - 1 - byes);
}

static void *courier_main(void *arg) {
  (void)arg;
  mproc__plat_precise_timers(); /* see agent_main */
  idle d = {0};
  for (int r = 0; r < mpi.size; r++) mpi.heard[r] = mproc__plat_now();
  for (;;) {
    bool progressed = false;
    pthread_mutex_lock(&mpi.lock);
    cmd *c = mpi.cmd_head;
    mpi.cmd_head = mpi.cmd_tail = NULL;
    bool stop = mpi.stop;
    pthread_mutex_unlock(&mpi.lock);
    while (c) {
      cmd *next = c->next;
      run_command(c);
      c = next;
      progressed = true;
    }
    if (stop) break;
    /* what came first: a result is in the engine's ring in this round */
    double t = mproc__plat_now();
    for (int k = 0; k < 64; k++) {
      msg *m = receive(MPI_ANY_SOURCE);
      if (!m) break;
      if (m->src > 0 && m->src < mpi.size) mpi.heard[m->src] = t;
      master_receive(m);
      progressed = true;
    }
    arena_flush(false);
    for (mpool *p = pools; p; p = p->next) {
      if (p->closing) continue;
      sync_aborted(p);
      for (int i = 0; i < p->n; i++) {
        if (p->slots[i].state == S_ALIVE) progressed |= forward_jobs(p, i);
        progressed |= deliver(p, i);
      }
    }
    check_silence(t);
    progress_sends();
    if (progressed)
      idle_reset(&d);
    else
      idle_wait(&d, courier_bell(), courier_busy(), courier_work);
  }
  say_goodbye();
  spares_drop();
  return NULL;
}

/* At exit, in the thread that called mproc_init() (MPI_Finalize's place). */
static void master_end(void) {
  if (mpi.state != MASTER) return;
  pthread_mutex_lock(&mpi.lock);
  mpi.stop = true;
  pthread_mutex_unlock(&mpi.lock);
  wake_courier();
  if (mpi.courier_running) pthread_join(mpi.courier, NULL);
  mpi.courier_running = false;
  mpi.state = FAILED;
  snprintf(mpi.why, sizeof mpi.why, "MPI has ended (the program is exiting)");
  MPI_Comm_free(&mpi.comm);
  MPI_Finalize();
}

/* ---- the backend's table (master) ---- */

static mpool *pool_of(mproc__engine *e) { return e->backend_state; }

static void pool_free(mpool *p) {
  for (int i = 0; p->slots && i < p->n; i++) {
    mproc__free(p->slots[i].tx);
    queue_drop(&p->slots[i].q_head, &p->slots[i].q_tail);
  }
  mproc__free(p->slots);
  mproc__free(p->open);
  mproc__free(p);
}

static int mpi_start(mproc__engine *e) {
  if (mpi.state != MASTER) return MPROC_ENOBACKEND;
  const mproc__wconf *conf = &e->sh->conf;
  mpool *p = mproc__calloc(1, sizeof *p);
  if (!p) return MPROC_ENOMEM;
  p->e = e;
  p->sh = e->sh;
  p->n = e->nworkers;
  p->slots = mproc__calloc((size_t)p->n, sizeof *p->slots);
  /* the table of objects so far (the initializer's and finalizer's): later entries go as M_OBJS */
  uint32_t nobjs = __atomic_load_n(&e->sh->objs->count, __ATOMIC_ACQUIRE);
  size_t paths = 0;
  for (uint32_t k = 0; k < nobjs; k++) paths += strlen(e->sh->objs->path[k]) + 1;
  p->open = mproc__malloc(sizeof(msg) + sizeof(open_conf) + conf->init_arg_len + paths);
  int sv[2] = {-1, -1};
  int r = p->slots && p->open ? mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv) : MPROC_ENOMEM;
  if (r < 0) {
    pool_free(p);
    return r;
  }
  for (int i = 0; i < p->n; i++) {
    p->slots[i] = (mslot){.rank = 1 + i % mpi.agents, .local = i / mpi.agents, .state = S_SPAWNING};
    /* the courier is the far side of both rings: the engine's writes and reads wake its nap */
    mproc__ring_set_consumer_wake(e->sh->slots[i].in, &mpi.sleeping, &mpi.bell);
    mproc__ring_set_producer_wake(e->sh->slots[i].out, &mpi.sleeping, &mpi.bell);
  }
  open_conf oc = {.ring_size = e->ring_size,
                  .init_arg_len = conf->init_arg_len,
                  .initializer_ref = conf->initializer_ref,
                  .finalizer_ref = conf->finalizer_ref,
                  .max_tasks_per_child = conf->max_tasks_per_child,
                  .keep_thread_env = conf->keep_thread_env,
                  .nobjs = nobjs};
  p->open->len = sizeof oc + conf->init_arg_len + paths;
  unsigned char *at = msg_data(p->open);
  memcpy(at, &oc, sizeof oc);
  at += sizeof oc;
  if (conf->init_arg_len) memcpy(at, conf->init_arg, conf->init_arg_len);
  at += conf->init_arg_len;
  for (uint32_t k = 0; k < nobjs; k++) {
    size_t len = strlen(e->sh->objs->path[k]) + 1;
    memcpy(at, e->sh->objs->path[k], len);
    at += len;
  }
  p->objs_sent = nobjs;
  pthread_mutex_lock(&mpi.lock);
  p->id = ++mpi.next_pool;
  pthread_mutex_unlock(&mpi.lock);
  p->sock = sv[1];
  if (!command(M_OPEN, p, -1, 0)) {
    mproc__plat_close(sv[0]);
    mproc__plat_close(sv[1]);
    pool_free(p);
    return MPROC_ENOMEM;
  }
  e->tpl_sock = sv[0];
  e->backend_state = p;
  return 0;
}

/* Lock held, after the worker's death was reported: the courier no longer touches the slot. */
static void mpi_spawn(mproc__engine *e, int i) {
  mproc__slot *s = &e->sh->slots[i];
  mproc__ring_reset(s->in);
  mproc__ring_reset(s->out);
  s->running_job = 0;
  s->in_init = 0;
  if (!command(M_SPAWN, pool_of(e), i, 0)) report(pool_of(e), (tpl_msg){TPL_SPAWN_FAILED, i, 0, ENOMEM});
}

static void mpi_kill(mproc__engine *e, int i) {
  /* without memory the kill is lost: the job runs to its end, as on a thread */
  (void)command(M_KILL, pool_of(e), i, SIGKILL);
}

static void mpi_stop(mproc__engine *e) {
  mpool *p = pool_of(e);
  if (!p) return;
  bool closed = false;
  if (command(M_CLOSE, p, -1, 0)) {
    double deadline = mproc__plat_now() + CLOSE_WAIT;
    while (!(closed = __atomic_load_n(&p->closed, __ATOMIC_ACQUIRE)) && mpi.courier_running &&
           mproc__plat_now() < deadline)
      mproc__plat_futex_wait(&p->closed, 0, deadline - mproc__plat_now());
  }
  mproc__plat_close(e->tpl_sock);
  e->tpl_sock = -1;
  e->backend_state = NULL;
  if (!closed) {
    /* the courier may still hold it: leak it rather than free what another thread uses */
    fprintf(stderr, "mproc: an MPI pool's agents did not confirm its end within %.0f s\n", CLOSE_WAIT);
    return;
  }
  mproc__plat_close(p->sock);
  pool_free(p);
}

const mproc__backend_ops mproc__backend_mpi = {
    .fresh_image = true,
    .starts_workers = true,
    .hop_ns = HOP_NS,
    .start = mpi_start,
    .spawn = mpi_spawn,
    .kill = mpi_kill,
    .stop_in_manager = mpi_stop,
    .call_begins = arena_call_begins,
};

/* ---- the agent ---- */

enum { A_SPAWNING = 0, A_ALIVE, A_DEAD };

typedef struct aslot {
  int state, slot; /* slot: the master's index */
  pid_t pid;
  msg *q_head, *q_tail; /* job records to write into the `in` ring */
  size_t q_off;
  int held;          /* jobs written into the `in` ring whose last result has not been sent */
  bool timed;        /* a timed job was written: the master follows the running job (M_STATE) */
  uint64_t sent_job; /* what M_STATE said last */
  int64_t sent_item;
  bool sent_returned;
  uint64_t rec_left; /* bytes of the record being read from the `out` ring still to come */
  msg *rx;           /* the message being filled from the `out` ring: rx->len bytes, rx_len of them read */
  size_t rx_len;
  uint64_t rx_flags;
} aslot;

typedef struct apool {
  uint32_t id;
  mproc__shared *sh;
  size_t bytes;
  size_t ring_size;
  int tsock, tpidfd;
  pid_t tpid;
  uint32_t tpl_seen;
  int n;
  aslot *slots;
  struct apool *next;
} apool;

static apool *apools;
static double result_sent_at; /* when the agent last sent a result (RESULT_ANSWER) */

/* An agent told to drain (M_DRAIN): until when, since when all its workers are idle, whether it answered. */
static struct {
  bool on, answered;
  double until, idle_since;
} draining;

static apool *apool_by_id(uint32_t id) {
  for (apool *p = apools; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

static msg_hdr ahdr(int kind, const apool *p, int local, int64_t value) {
  return (msg_hdr){(uint32_t)kind, p->id, p->slots[local].slot, local, value, 0};
}

static size_t cacheline_up(size_t n) { return (n + MPROC_CACHELINE - 1) & ~(size_t)(MPROC_CACHELINE - 1); }

/* The pool's shared mapping as the engine lays it out (engine.c's plan_layout: the same slots and staging
 * size, so the master's staging area takes a copy of ours; rings of at least AGENT_RING: a large record
 * passes them in fewer hand-offs between the agent and its worker), then the configuration; 0 or negative
 * errno.  *memfd: the file for the fork server's template. */
static int apool_map(apool *p, const open_conf *oc, const void *init_arg, int *memfd) {
  p->ring_size = oc->ring_size > AGENT_RING ? (size_t)oc->ring_size : AGENT_RING;
  size_t ring_bytes = cacheline_up(mproc__ring_bytes(p->ring_size));
  size_t staging = cacheline_up(oc->ring_size / 4), per = 2 * ring_bytes + staging;
  size_t slots_at = cacheline_up(sizeof(mproc__shared) + (size_t)p->n * sizeof(mproc__slot));
  size_t conf_end = slots_at + (size_t)p->n * per;
  size_t objs_at = cacheline_up(conf_end + oc->init_arg_len);
  p->bytes = objs_at + sizeof(mproc__objtab);
  *memfd = mproc__plat_shm_create_fd("mproc-mpi-pool", p->bytes);
  if (*memfd < 0) return *memfd;
  int err = 0;
  p->sh = mproc__plat_shm_map(*memfd, p->bytes, &err);
  if (!p->sh) return err;
  mproc__shared *sh = p->sh;
  sh->nworkers = (uint32_t)p->n;
  for (int i = 0; i < p->n; i++) {
    unsigned char *base = (unsigned char *)sh + slots_at + (size_t)i * per;
    mproc__slot *s = &sh->slots[i];
    s->in = (mproc__ring *)base;
    s->out = (mproc__ring *)(base + ring_bytes);
    s->staging = base + 2 * ring_bytes;
    s->staging_size = staging;
    mproc__ring_init(s->in, p->ring_size);
    mproc__ring_init(s->out, p->ring_size);
    /* the agent naps on the doorbell as a manager does: results and freed room wake it */
    mproc__ring_set_consumer_wake(s->out, &sh->manager_sleeping, &sh->doorbell);
    mproc__ring_set_producer_wake(s->in, &s->tx_waiting, &sh->doorbell);
  }
  unsigned char *arg = (unsigned char *)sh + conf_end;
  if (oc->init_arg_len) memcpy(arg, init_arg, oc->init_arg_len);
  sh->objs = (mproc__objtab *)((unsigned char *)sh + objs_at);
  const char *path = (const char *)init_arg + oc->init_arg_len;
  for (uint32_t k = 0; k < oc->nobjs && k < MPROC_FN_OBJECTS; k++) {
    snprintf(sh->objs->path[k], MPROC_FN_PATH, "%s", path);
    path += strlen(path) + 1;
  }
  sh->objs->count = oc->nobjs < MPROC_FN_OBJECTS ? oc->nobjs : MPROC_FN_OBJECTS;
  sh->conf = (mproc__wconf){.nworkers = p->n,
                            .max_tasks_per_child = oc->max_tasks_per_child,
                            .keep_thread_env = oc->keep_thread_env,
                            .own_mappings = 1,
                            .init_arg = oc->init_arg_len ? arg : NULL,
                            .init_arg_len = oc->init_arg_len,
                            .initializer_ref = oc->initializer_ref,
                            .finalizer_ref = oc->finalizer_ref};
  if (!oc->keep_thread_env) sh->conf.thread_env_n = mproc__thread_env_value(mproc_cpu_count(), p->n);
  return 0;
}

/* The workers' initializer and finalizer in this image (the fork server's workers are copies of it). */
static int apool_resolve_conf(apool *p) {
  char msg_[MPROC_TASK_MSG_MAX];
  mproc__wconf *c = &p->sh->conf;
  if (c->initializer_ref) {
    uintptr_t fn = mproc__fnref_resolve(p->sh, c->initializer_ref, msg_, sizeof msg_);
    if (!fn) fprintf(stderr, "mproc: MPI rank %d: %s\n", mpi.rank, msg_);
    if (!fn) return MPROC_ENOTSUP;
    c->initializer = (mproc_task_fn)fn;
  }
  if (c->finalizer_ref) {
    uintptr_t fn = mproc__fnref_resolve(p->sh, c->finalizer_ref, msg_, sizeof msg_);
    if (!fn) fprintf(stderr, "mproc: MPI rank %d: %s\n", mpi.rank, msg_);
    if (!fn) return MPROC_ENOTSUP;
    c->finalizer = (void (*)(void))fn;
  }
  return 0;
}

static void apool_close(apool *p) {
  if (p->tsock >= 0) {
    /* the template kills and reaps its workers and ends; the fork server reaps it */
    mproc__plat_sock_hangup(p->tsock);
    mproc__plat_close(p->tsock);
    if (p->tpidfd >= 0) mproc__plat_poll_fd(p->tpidfd, POLLIN, -1);
  }
  mproc__plat_close(p->tpidfd);
  for (int i = 0; p->slots && i < p->n; i++) {
    queue_drop(&p->slots[i].q_head, &p->slots[i].q_tail);
    mproc__free(p->slots[i].rx);
  }
  if (p->sh) mproc__plat_shm_unmap(p->sh, p->bytes);
  mproc__free(p->slots);
  mproc__free(p);
}

static void agent_open(msg *m) {
  open_conf oc;
  if (m->len < sizeof oc) return;
  memcpy(&oc, msg_data(m), sizeof oc);
  if (oc.init_arg_len > m->len - sizeof oc) return;
  /* the paths must end within the message: a NUL at its end */
  if (oc.nobjs && msg_data(m)[m->len - 1] != '\0') return;
  apool *p = mproc__calloc(1, sizeof *p);
  if (!p) die("a pool", sizeof *p);
  p->id = m->h.pool;
  p->n = oc.nlocal;
  p->tsock = p->tpidfd = -1;
  p->slots = mproc__calloc((size_t)p->n, sizeof *p->slots);
  if (!p->slots) die("a pool's slots", (size_t)p->n * sizeof *p->slots);
  for (int w = 0; w < p->n; w++)
    p->slots[w] = (aslot){.state = A_SPAWNING, .slot = mpi.rank - 1 + w * mpi.agents};
  p->next = apools;
  apools = p;
  int memfd = -1;
  int r = apool_map(p, &oc, msg_data(m) + sizeof oc, &memfd);
  if (r == 0) r = apool_resolve_conf(p);
  int sv[2] = {-1, -1};
  if (r == 0) r = mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv);
  if (r == 0) {
    __atomic_store_n(&p->sh->conf_ready, 1, __ATOMIC_RELEASE);
    r = mproc__forkserver_request(p->sh, p->bytes, memfd, sv[1], &p->tpid);
    mproc__plat_close(sv[1]);
    if (r == 0) r = mproc__template_await_ready(sv[0], 10.0);
    if (r == 0) {
      p->tsock = sv[0];
      p->tpidfd = mproc__plat_pidfd_open(p->tpid);
    } else {
      mproc__plat_close(sv[0]);
    }
  }
  mproc__plat_close(memfd);
  if (r < 0) {
    fprintf(stderr, "mproc: MPI rank %d: no workers for a pool: %s\n", mpi.rank, mproc_strerror(r));
    for (int w = 0; w < p->n; w++) {
      p->slots[w].state = A_DEAD;
      post(0, ahdr(M_SPAWN_FAILED, p, w, -r), NULL, 0, NULL, 0);
    }
  }
}

/* Queues a job record for worker w; dropped when the worker that was sent it has died. */
static void agent_job(apool *p, int w, msg *m) {
  aslot *s = &p->slots[w];
  if (s->state != A_ALIVE || draining.on) {
    msg_free(m);
    return;
  }
  queue_push(&s->q_head, &s->q_tail, m);
}

/* Writes the queued job records into worker w's `in` ring, as much as fits. */
static bool write_jobs(apool *p, int w) {
  aslot *s = &p->slots[w];
  mproc__slot *slot = &p->sh->slots[w];
  mproc__ring *in = slot->in;
  bool wrote = false;
  while (s->q_head) {
    msg *m = s->q_head;
    if (s->q_off == 0) {
      wire_job j;
      if (m->len < sizeof j) { /* not a record: dropped */
        s->q_head = m->next;
        if (!s->q_head) s->q_tail = NULL;
        msg_free(m);
        continue;
      }
      memcpy(&j, msg_data(m), sizeof j);
      if (mproc__ring_free(in) < sizeof j) break;
      size_t gap = mproc__ring_pad_gap(in, MPROC__REWIND_FROM, sizeof j);
      if (gap) {
        wire_job pad = {.magic = WIRE_MAGIC, .kind = JOB_PAD, .payload_len = gap - sizeof pad};
        mproc__ring_put_pad(in, &pad, sizeof pad, gap);
      }
      /* the worker claims it from this word, as from the manager's (the ring's publication orders them) */
      if (j.kind == JOB_TASK || j.kind == JOB_BATCH) {
        __atomic_store_n(&slot->claim[j.claim % MPROC__CLAIMS], j.id, __ATOMIC_RELAXED);
        s->held++;
      }
      if (j.timed) s->timed = true;
    }
    size_t n = mproc__ring_put_some_quiet(in, msg_data(m) + s->q_off, m->len - s->q_off);
    s->q_off += n;
    wrote |= n > 0;
    if (s->q_off < m->len) break;
    s->q_head = m->next;
    if (!s->q_head) s->q_tail = NULL;
    s->q_off = 0;
    msg_free(m);
  }
  if (wrote) mproc__ring_wake_if_unread(in);
  /* waiting for room: the worker rings the doorbell when it frees some (the agent looks again before it naps)
   */
  if ((s->q_head != NULL) != (__atomic_load_n(&slot->tx_waiting, __ATOMIC_RELAXED) != 0))
    __atomic_store_n(&slot->tx_waiting, s->q_head != NULL, __ATOMIC_SEQ_CST);
  return wrote;
}

/* Sends worker w's result records to the master: each record whole in one message, except one larger than
 * half the ring, which goes in pieces as it comes.  all: the worker has died, everything it published goes
 * (a record it left half-written too: the engine drops it with the ring). */
static bool send_results(apool *p, int w, bool all) {
  aslot *s = &p->slots[w];
  mproc__ring *out = p->sh->slots[w].out;
  bool progressed = false;
  for (;;) {
    if (!s->rx) {
      size_t used = mproc__ring_used(out);
      if (used == 0) break;
      s->rx_flags = 0;
      if (s->rec_left == 0) { /* a record begins */
        wire_result h;
        if (used < sizeof h) {
          if (!all) break;
          s->rec_left = used; /* a dead worker's torn header: it goes as it is */
        } else {
          mproc__ring_peek(out, &h, sizeof h);
          if (skip_pad(out, h.magic, h.kind, sizeof h, h.payload_len)) {
            progressed = true;
            continue;
          }
          s->rx_flags = F_RECORD;
          if (h.last && s->held > 0) s->held--;
          s->rec_left = sizeof h + h.msg_len + h.payload_len;
        }
      }
      /* read straight into its message: a record whole, one larger than a ring in ring-sized pieces */
      s->rx = msg_new(s->rec_left < p->ring_size ? (size_t)s->rec_left : p->ring_size);
      s->rx_len = 0;
    }
    size_t n = mproc__ring_get_some_quiet(out, s->rx->bytes + s->rx_len, s->rx->len - s->rx_len);
    s->rx_len += n;
    s->rec_left -= n;
    progressed |= n > 0;
    if (s->rx_len < s->rx->len) {
      if (!all) break; /* the rest once the worker has written it */
      /* the worker has died: what it published goes (the engine drops a half-written record with the ring) */
      s->rx->len = s->rx_len;
      s->rec_left = 0;
    }
    msg_hdr h = ahdr(M_RESULT, p, w, 0);
    if (s->rx_flags & F_RECORD) result_sent_at = mproc__plat_now();
    h.flags = s->rx_flags;
    s->rx_flags = 0;
    if (s->rx->len)
      post_msg(0, h, s->rx);
    else
      mproc__free(s->rx);
    s->rx = NULL;
    if (all && n == 0) break;
  }
  if (progressed) mproc__ring_wake_producer(out);
  return progressed;
}

/* While a timed job may run: tells the master which job and item run, and since when. */
static void send_state(apool *p, int w) {
  aslot *s = &p->slots[w];
  mproc__slot *slot = &p->sh->slots[w];
  uint64_t job = __atomic_load_n(&slot->running_job, __ATOMIC_ACQUIRE);
  int64_t item = __atomic_load_n(&slot->running_item, __ATOMIC_ACQUIRE);
  uint64_t started = __atomic_load_n(&slot->started_ns, __ATOMIC_ACQUIRE), now = mproc__now_ns();
  bool returned = started == MPROC__RETURNED; /* no timeout applies while its result is sent */
  if (job == s->sent_job && item == s->sent_item && returned == s->sent_returned) return;
  state st = {job, item, returned ? UINT64_MAX : now > started ? now - started : 0};
  s->sent_job = job;
  s->sent_item = item;
  s->sent_returned = returned;
  post(0, ahdr(M_STATE, p, w, 0), &st, sizeof st, NULL, 0);
}

/* Worker w has died: what it published, then the death with what the engine reads after one. */
static void agent_died(apool *p, int w, int status) {
  aslot *s = &p->slots[w];
  mproc__slot *slot = &p->sh->slots[w];
  send_results(p, w, true);
  death d = {.running_job = __atomic_load_n(&slot->running_job, __ATOMIC_ACQUIRE),
             .running_item = __atomic_load_n(&slot->running_item, __ATOMIC_ACQUIRE),
             .items_done = __atomic_load_n(&slot->items_done, __ATOMIC_ACQUIRE),
             .sent_alone = __atomic_load_n(&slot->sent_alone, __ATOMIC_ACQUIRE),
             .in_init = __atomic_load_n(&slot->in_init, __ATOMIC_ACQUIRE),
             .staging_len = slot->staging_size};
  post(0, ahdr(M_DIED, p, w, status), &d, sizeof d, slot->staging, (size_t)slot->staging_size);
  s->state = A_DEAD;
  s->pid = 0;
  s->rec_left = 0;
  mproc__free(s->rx);
  s->rx = NULL;
  s->q_off = 0;
  s->held = 0;
  s->timed = false;
  s->sent_job = 0;
  s->sent_item = 0;
  s->sent_returned = false;
  queue_drop(&s->q_head, &s->q_tail);
  __atomic_store_n(&slot->tx_waiting, 0, __ATOMIC_RELAXED); /* nothing waits for room in its ring now */
}

/* The template's news (its SPAWNED, SPAWN_FAILED and DIED); true when there was any. */
static bool template_news(apool *p) {
  if (p->tsock < 0) return false;
  uint32_t ev = __atomic_load_n(&p->sh->template_events, __ATOMIC_ACQUIRE);
  if (ev == p->tpl_seen) return false;
  p->tpl_seen = ev;
  tpl_msg t;
  ssize_t got;
  while ((got = mproc__plat_recv_msg(p->tsock, &t, sizeof t, false)) == (ssize_t)sizeof t) {
    if (t.slot < 0 || t.slot >= p->n) continue;
    aslot *s = &p->slots[t.slot];
    if (t.op == TPL_SPAWNED) {
      s->state = A_ALIVE;
      s->pid = t.pid;
      post(0, ahdr(M_SPAWNED, p, t.slot, 0), NULL, 0, NULL, 0);
    } else if (t.op == TPL_SPAWN_FAILED) {
      s->state = A_DEAD;
      post(0, ahdr(M_SPAWN_FAILED, p, t.slot, t.value), NULL, 0, NULL, 0);
    } else if (t.op == TPL_DIED) {
      agent_died(p, t.slot, t.value);
    }
  }
  if (got == 0) {
    /* the template has died (killed from outside): its workers die with it, and none can be made */
    for (int w = 0; w < p->n; w++)
      if (p->slots[w].state == A_ALIVE) agent_died(p, w, SIGKILL /* as W_TERMSIG: killed */);
    mproc__plat_close(p->tsock);
    p->tsock = -1;
  }
  return true;
}

/* A piece of the master's arena: into this rank's arena, at the same place (see arena_call_begins). */
static void agent_arena(msg *m) {
  /* done, whatever became of it: the master sends the next (and hears from this rank after each) */
  post(0, (msg_hdr){M_ARENA_DONE, 0, -1, -1, 0, 0}, NULL, 0, NULL, 0);
  static bool warned;
  arena_piece a;
  if (m->len < sizeof a) return;
  memcpy(&a, msg_data(m), sizeof a);
  bool zero = m->h.flags & F_ZERO;
  void *addr = NULL;
  size_t size = 0;
  int fd = mproc__arena_mapping(&addr, &size);
  if (fd < 0 || (uintptr_t)addr != a.base || a.off > size || a.len > size - a.off ||
      (!zero && m->len - sizeof a != a.len)) {
    if (!warned)
      fprintf(stderr,
              "mproc: MPI rank %d: the master's shared arena (mproc_shared_alloc, %#llx bytes at %#llx) "
              "cannot be "
              "placed here (this rank's is %zu bytes at %p): tasks on this rank cannot read it\n",
              mpi.rank, (unsigned long long)a.size, (unsigned long long)a.base, size, addr);
    warned = true;
    return;
  }
  unsigned char *at = (unsigned char *)addr + a.off;
  if (!zero)
    memcpy(at, msg_data(m) + sizeof a, a.len);
  else if (mproc__plat_shm_discard(fd, a.off, a.len) != 0)
    memset(at, 0, a.len);
}

static void agent_receive(msg *m) {
  if (m->h.kind == M_ARENA) {
    agent_arena(m);
    msg_free(m);
    return;
  }
  if (m->h.kind == M_OPEN) {
    agent_open(m);
    msg_free(m);
    return;
  }
  apool *p = apool_by_id(m->h.pool);
  int w = m->h.local;
  bool has_slot = p && w >= 0 && w < p->n;
  switch (m->h.kind) {
    case M_OBJS:
      if (p && m->len > 0 && m->len <= MPROC_FN_PATH && m->h.value == (int64_t)p->sh->objs->count &&
          m->h.value < MPROC_FN_OBJECTS) {
        memcpy(p->sh->objs->path[m->h.value], msg_data(m), m->len);
        p->sh->objs->path[m->h.value][m->len - 1] = '\0';
        __atomic_store_n(&p->sh->objs->count, (uint32_t)m->h.value + 1, __ATOMIC_RELEASE);
      }
      break;
    case M_JOB:
      if (has_slot) {
        agent_job(p, w, m);
        return;
      }
      break;
    case M_SPAWN:
      if (has_slot && p->slots[w].state == A_DEAD) {
        if (p->tsock >= 0) {
          p->slots[w].state = A_SPAWNING;
          tpl_msg t = {TPL_SPAWN, w, 0, 0};
          if (mproc__plat_send_msg(p->tsock, &t, sizeof t, true) < 0) p->slots[w].state = A_DEAD;
        }
        if (p->slots[w].state == A_DEAD) post(0, ahdr(M_SPAWN_FAILED, p, w, EPIPE), NULL, 0, NULL, 0);
      }
      break;
    case M_KILL:
      if (has_slot && p->slots[w].state == A_ALIVE && p->tsock >= 0) {
        tpl_msg t = {TPL_KILL, w, p->slots[w].pid, (int32_t)m->h.value};
        (void)mproc__plat_send_msg(p->tsock, &t, sizeof t, true); /* a dead template: its news says so */
      }
      break;
    case M_ABORT:
      if (p) {
        uint32_t k = __atomic_fetch_add(&p->sh->aborted_next, 1, __ATOMIC_SEQ_CST) % 16;
        __atomic_store_n(&p->sh->aborted[k], (uint64_t)m->h.value, __ATOMIC_SEQ_CST);
      }
      break;
    case M_CLOSE:
      if (p) {
        for (apool **q = &apools; *q; q = &(*q)->next)
          if (*q == p) {
            *q = p->next;
            break;
          }
        uint32_t id = p->id;
        apool_close(p);
        post(0, (msg_hdr){M_CLOSED, id, -1, -1, 0, 0}, NULL, 0, NULL, 0);
      }
      break;
    default:
      break;
  }
  msg_free(m);
}

/* M_DRAIN: the job ends soon (a rank is silent).  No job starts from now: those queued here are dropped and
 * those in the workers' rings taken back (a worker skips a job whose claim word no longer names it, as when
 * the engine gives it to an idle worker); the running ones go on, for DRAIN_GRACE at most. */
static void agent_drain(void) {
  draining.on = true;
  draining.until = mproc__plat_now() + DRAIN_GRACE;
  for (apool *p = apools; p; p = p->next)
    for (int w = 0; w < p->n; w++) {
      aslot *s = &p->slots[w];
      queue_drop(&s->q_head, &s->q_tail);
      s->q_off = 0; /* a record left half-written: the worker waits for the rest, never runs it */
      for (int k = 0; k < MPROC__CLAIMS; k++)
        __atomic_store_n(&p->sh->slots[w].claim[k], 0, __ATOMIC_SEQ_CST);
    }
}

/* While draining: once every worker has been idle for DRAIN_SETTLE, or the grace is over, the master hears
 * how many still run a job. */
static void drain_check(double now) {
  int running = 0;
  for (apool *p = apools; p; p = p->next)
    for (int w = 0; w < p->n; w++)
      running +=
          p->slots[w].state == A_ALIVE && __atomic_load_n(&p->sh->slots[w].running_job, __ATOMIC_ACQUIRE);
  if (running)
    draining.idle_since = 0;
  else if (draining.idle_since == 0)
    draining.idle_since = now;
  if ((draining.idle_since > 0 && now - draining.idle_since >= DRAIN_SETTLE) || now >= draining.until) {
    post(0, (msg_hdr){M_DRAINED, 0, -1, -1, running, 0}, NULL, 0, NULL, 0);
    draining.answered = true;
  }
}

/* What the agent's next round would find without MPI: a result, room for a job that waits, the template's
 * news. */
static bool agent_work(void) {
  for (apool *p = apools; p; p = p->next) {
    if (p->tsock >= 0 && __atomic_load_n(&p->sh->template_events, __ATOMIC_ACQUIRE) != p->tpl_seen)
      return true;
    for (int w = 0; w < p->n; w++)
      if (p->slots[w].state == A_ALIVE && (mproc__ring_used(p->sh->slots[w].out) > 0 ||
                                           (p->slots[w].q_head && mproc__ring_free(p->sh->slots[w].in) > 0)))
        return true;
  }
  return false;
}

/* Whether a message is due from the master: a result was sent lately (the next job may come back) or a send
 * is not complete.  A worker that holds a job is not a reason: its result rings the agent's bell, and the
 * master sends nothing else but in answer to a result (a submit, a kill, the end come when they come, within
 * the nap's cap).  Counting it kept the busy ramp through every long job, which takes about 37 naps from
 * IDLE_YIELD to the cap where the doubling one takes 7. */
static bool agent_busy(void) { return mpi.sends || mproc__plat_now() - result_sent_at < RESULT_ANSWER; }

/* Whether every live worker of every pool holds a job (and there is one): the agent's naps may be
 * FULL_NAP_MAX. */
static bool agent_full(void) {
  bool any = false;
  for (apool *p = apools; p; p = p->next)
    for (int w = 0; w < p->n; w++) {
      if (p->slots[w].state != A_ALIVE) continue;
      if (p->slots[w].held == 0) return false;
      any = true;
    }
  return any;
}

/* Where the agent naps: the doorbell of its newest pool (its rings and template ring it; another pool's are
 * seen at the end of the nap), or its own word when it has none. */
static mproc__bell agent_bell(uint32_t *own) {
  if (apools) return (mproc__bell){.word = &apools->sh->doorbell, .asleep = &apools->sh->manager_sleeping};
  return (mproc__bell){.word = own, .asleep = own + 1};
}

static _Noreturn void agent_main(void) {
  /* Ctrl-C is the master's to handle, as on the local backend (its workers and templates ignore it too):
   * srun sends SIGINT to every task, and an agent it ended would end the job */
  mproc__plat_ignore_signal(SIGINT);
  /* a nap ends when due: with Linux's default timer slack (50 us), one-at-a-time submits on 2 cores took
   * 348 us a round trip, 131 us with 1 us (7 rounds interleaved) */
  mproc__plat_precise_timers();
  idle d = {0};
  uint32_t own[2] = {0, 0}; /* a bell nobody rings, for the nap without pools */
  bool stopping = false;
  double beat = 0;
  while (!stopping) {
    bool progressed = false;
    double t = mproc__plat_now();
    if (t - beat >= HEARTBEAT_EVERY) { /* also while busy: the loop never blocks for long */
      post(0, (msg_hdr){M_HEARTBEAT, 0, -1, -1, naps, 0}, NULL, 0, NULL, 0);
      beat = t;
    }
    for (int k = 0; k < 64 && !stopping; k++) {
      msg *m = receive(0);
      if (!m) break;
      progressed = true;
      if (m->h.kind == M_STOP) {
        stopping = true;
        msg_free(m);
      } else if (m->h.kind == M_DRAIN) {
        if (!draining.on) agent_drain();
        msg_free(m);
      } else {
        agent_receive(m);
      }
    }
    for (apool *p = apools; p && !stopping; p = p->next) {
      progressed |= template_news(p);
      for (int w = 0; w < p->n; w++) {
        aslot *s = &p->slots[w];
        if (s->state != A_ALIVE) continue;
        progressed |= write_jobs(p, w);
        progressed |= send_results(p, w, false);
        if (s->timed) send_state(p, w);
      }
    }
    if (draining.on && !draining.answered) drain_check(mproc__plat_now());
    progress_sends();
    if (progressed)
      idle_reset(&d);
    else {
      d.cap = agent_full() ? FULL_NAP_MAX : IDLE_NAP_MAX;
      idle_wait(&d, agent_bell(own), agent_busy(), agent_work);
    }
  }
  /* the master ends: every pool's workers with it; then BYE, the last message, and the end of MPI */
  while (apools) {
    apool *p = apools;
    apools = p->next;
    apool_close(p);
  }
  post(0, (msg_hdr){M_BYE, 0, -1, -1, 0, 0}, NULL, 0, NULL, 0);
  while (!progress_sends()) idle_wait(&d, agent_bell(own), true, NULL);
  spares_drop();
  MPI_Comm_free(&mpi.comm);
  MPI_Finalize();
  exit(0);
}

/* ---- start ---- */

static void hex(char *out, const unsigned char *id, uint32_t len) {
  out[0] = '\0';
  for (uint32_t k = 0; k < len; k++) snprintf(out + 2 * (size_t)k, 3, "%02x", id[k]);
}

static const char *file_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Whether every rank runs rank 0's program and loads rank 0's libraries, by their build-ids: functions
 * travel as (object, offset), which another build would run as anything.  Rank 0 sends its list of loaded
 * objects (mproc__plat_object_ids: the program, then every library with a build-id; not the vDSO, not
 * objects without a build-id); each agent compares its program, and each of rank 0's libraries with its own
 * of the same path, else of the same file name (another directory, as another LD_LIBRARY_PATH would load).
 * A library rank 0 has and an agent has not loaded is not compared: a task's worker there would load rank
 * 0's path.  A rank that differs says so, naming each file, and every rank learns whether any did. */
static bool same_objects(const char *host) {
  size_t n = mproc__plat_object_ids(NULL, 0);
  mproc__plat_objid *mine = mproc__calloc(n ? n : 1, sizeof *mine);
  if (!mine) die("the list of loaded objects", n * sizeof *mine);
  size_t now_n = mproc__plat_object_ids(mine, n); /* one loaded in between: left out */
  if (now_n < n) n = now_n;
  uint32_t count = (uint32_t)n;
  MPI_Bcast(&count, 1, MPI_UINT32_T, 0, mpi.comm);
  mproc__plat_objid *master = mine;
  if (mpi.rank > 0) {
    master = mproc__calloc(count ? count : 1, sizeof *master);
    if (!master) die("rank 0's list of loaded objects", count * sizeof *master);
  }
  MPI_Bcast(master, (int)(count * sizeof *master), MPI_BYTE, 0, mpi.comm);
  int differs = 0, any = 0;
  char a[2 * sizeof mine->id + 1], b[2 * sizeof mine->id + 1];
  for (uint32_t k = 0; mpi.rank > 0 && k < count; k++) {
    const mproc__plat_objid *m = &master[k], *own = NULL;
    for (size_t i = 0; i < n && !own; i++)
      if (mine[i].program ? m->program : !m->program && strcmp(mine[i].path, m->path) == 0) own = &mine[i];
    for (size_t i = 0; i < n && !own && !m->program; i++)
      if (!mine[i].program && strcmp(file_name(mine[i].path), file_name(m->path)) == 0) own = &mine[i];
    if (!own || (own->id_len == m->id_len && memcmp(own->id, m->id, m->id_len) == 0)) continue;
    differs = 1;
    hex(a, own->id, own->id_len);
    hex(b, m->id, m->id_len);
    if (m->program)
      fprintf(stderr,
              "mproc: MPI rank %d (host %s) runs %s, build-id %s, not rank 0's program (build-id %s): every "
              "rank must run the same binary\n",
              mpi.rank, host, own->path[0] ? own->path : "(unknown)", a[0] ? a : "none", b[0] ? b : "none");
    else
      fprintf(stderr,
              "mproc: MPI rank %d (host %s) loads the library %s, build-id %s, not the one rank 0 loads (%s, "
              "build-id %s): every rank must load the same libraries\n",
              mpi.rank, host, own->path, a, m->path, b);
  }
  if (master != mine) mproc__free(master);
  mproc__free(mine);
  MPI_Allreduce(&differs, &any, 1, MPI_INT, MPI_MAX, mpi.comm);
  return !any;
}

int mproc__mpi_init(int *argc, char ***argv) {
  if (mpi.state != OFF) return 0;
  if (!launched()) return 0;
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) {
    mpi.state = FAILED;
    snprintf(mpi.why, sizeof mpi.why, "MPI was initialised before mproc_init(): call mproc_init() first");
    fprintf(stderr, "mproc: %s\n", mpi.why);
    return MPROC_ESTATE;
  }
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    mpi.state = FAILED;
    snprintf(mpi.why, sizeof mpi.why, "MPI_Init_thread failed");
    return MPROC_ENOBACKEND;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &mpi.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &mpi.size);
  if (provided < MPI_THREAD_SERIALIZED) {
    if (mpi.rank == 0)
      fprintf(stderr, "mproc: this MPI library gives thread level %d, below MPI_THREAD_SERIALIZED\n",
              provided);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const char *ntasks = getenv("SLURM_NTASKS");
  if (mpi.size == 1 && ntasks && atoi(ntasks) > 1) {
    /* srun without a PMI plugin its MPI understands starts each task as a singleton */
    mpi.state = FAILED;
    snprintf(mpi.why, sizeof mpi.why,
             "srun started %s tasks, but each is rank 0 of 1: run srun --mpi=pmix (see srun --mpi=list)",
             ntasks);
    fprintf(stderr, "mproc: %s\n", mpi.why);
    MPI_Finalize();
    return MPROC_ENOBACKEND;
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &mpi.comm);
  mpi.agents = mpi.size - 1;
  /* each rank's CPUs: the default number of workers is all the agents' */
  int cpus = mproc_cpu_count(), total = 0;
  MPI_Reduce(&cpus, &total, 1, MPI_INT, MPI_SUM, 0, mpi.comm);
  mpi.total_cpus = total - cpus;
  char name[MPI_MAX_PROCESSOR_NAME] = "";
  int name_len = 0;
  MPI_Get_processor_name(name, &name_len);
  if (mpi.rank == 0) {
    mpi.hosts = mproc__calloc((size_t)mpi.size, sizeof *mpi.hosts);
    mpi.heard = mproc__calloc((size_t)mpi.size, sizeof *mpi.heard);
    mpi.beats = mproc__calloc((size_t)mpi.size, sizeof *mpi.beats);
    if (!mpi.hosts || !mpi.heard || !mpi.beats) die("the ranks' table", (size_t)mpi.size * sizeof *mpi.hosts);
  }
  MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, mpi.hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0,
             mpi.comm);
  if (!same_objects(name)) {
    /* refused before any task runs: every rank leaves MPI; the master goes on without the backend */
    mpi.state = FAILED;
    snprintf(mpi.why, sizeof mpi.why,
             "ranks run a program or libraries other than rank 0's (each such rank said which file on "
             "stderr)");
    MPI_Comm_free(&mpi.comm);
    MPI_Finalize();
    if (mpi.rank > 0) exit(1);
    fprintf(stderr, "mproc: %s: the MPI backend is off\n", mpi.why);
    return MPROC_ENOBACKEND;
  }
  if (mpi.rank > 0) {
    mpi.state = AGENT;
    agent_main();
  }
  mpi.state = MASTER;
  if (mpi.agents == 0)
    snprintf(mpi.why, sizeof mpi.why,
             "the MPI job has one rank: no agent ranks to run workers (mpirun -n 4 ./prog)");
  int r = pthread_create(&mpi.courier, NULL, courier_main, NULL);
  if (r != 0) {
    fprintf(stderr, "mproc: cannot start the MPI courier thread: %s\n", mproc_strerror(-r));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  mpi.courier_running = true;
  atexit(master_end);
  return 0;
}

int mproc__mpi_usable(const char *asked) {
  if (mpi.state == MASTER && mpi.agents > 0) return 0;
  if (mpi.state == OFF)
    mproc__env_error("%s: the MPI backend needs %s", asked,
                     launched()
                         ? "mproc_init(&argc, &argv) called first thing in main"
                         : "the program started by an MPI launcher (mpirun -n 4 ./prog, srun --mpi=pmix "
                           "./prog) and mproc_init(&argc, &argv) called first thing in main");
  else
    mproc__env_error("%s: the MPI backend cannot run: %s", asked, mpi.why);
  return MPROC_ENOBACKEND;
}

int mproc__mpi_default_workers(void) { return mpi.total_cpus > 0 ? mpi.total_cpus : mpi.agents; }

uint64_t mproc__mpi_arena_sent(void) { return __atomic_load_n(&asy.sent, __ATOMIC_RELAXED); }

uint64_t mproc__mpi_large_blocks(void) { return __atomic_load_n(&large_blocks, __ATOMIC_RELAXED); }

int64_t mproc__mpi_rank_naps(int rank, double *at) {
  *at = 0;
  if (mpi.state != MASTER || rank <= 0 || rank >= mpi.size) return -1;
  pthread_mutex_lock(&mpi.lock);
  struct beat b = mpi.beats[rank];
  pthread_mutex_unlock(&mpi.lock);
  *at = b.at;
  return b.naps;
}

void *mproc__mpi_arena_at(void) { return launched() ? (void *)ARENA_AT : NULL; }

#else /* no MPI in this build */

int mproc__mpi_init(int *argc, char ***argv) {
  (void)argc, (void)argv;
  return 0;
}

int mproc__mpi_usable(const char *asked) {
  mproc__env_error("%s: the MPI backend is not in this build (mproc was built without MPI)%s", asked,
                   launched() ? "" : ", and no MPI launcher started this program");
  return MPROC_ENOBACKEND;
}

int mproc__mpi_default_workers(void) { return 1; }

uint64_t mproc__mpi_arena_sent(void) { return 0; }

uint64_t mproc__mpi_large_blocks(void) { return 0; }

int64_t mproc__mpi_rank_naps(int rank, double *at) {
  (void)rank;
  *at = 0;
  return -1;
}

void *mproc__mpi_arena_at(void) { return NULL; }

static int mpi_start(mproc__engine *e) {
  (void)e;
  return MPROC_ENOBACKEND;
}

const mproc__backend_ops mproc__backend_mpi = {.start = mpi_start};

#endif
