/* backend_thread.c: workers as threads of the calling process.
 *
 * They run the same worker loop over the same rings as worker processes, and report their end over a
 * socket pair exactly as the template process reports a worker's death, so the engine treats both alike.
 * What threads cannot do: be killed (so task timeouts are refused at submission, and terminate/destroy wait
 * for running tasks) and survive a crash (a task that crashes ends the whole process). */
#include <errno.h>

#include "engine/engine.h"

/* The backend's own state, behind e->backend_state from start to stop. */
typedef struct threads {
  int sock;       /* the end the worker threads report on (the engine reads the other) */
  pthread_t *ids; /* per slot */
  bool *joinable; /* ids[i] was created and not joined yet */
  int seq;        /* stands for a pid: positive, never reused */
} threads;

static threads *state(mproc__engine *e) { return e->backend_state; }

struct thread_arg {
  mproc__engine *e;
  int slot, id;
};

static void report(mproc__engine *e, tpl_msg m) { mproc__template_notify(e->sh, state(e)->sock, m); }

static void *thread_main(void *varg) {
  struct thread_arg *a = varg;
  mproc__engine *e = a->e;
  int slot = a->slot, id = a->id;
  mproc__free(a);
  int code = mproc__worker_loop(e->sh, slot);
  report(e, (tpl_msg){TPL_DIED, slot, id, (code & 0xff) << 8 /* as W_EXITCODE(code, 0) */});
  return NULL;
}

static int threads_start(mproc__engine *e) {
  int sv[2];
  int r = mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv);
  if (r < 0) return r;
  threads *t = mproc__calloc(1, sizeof *t);
  if (t) {
    t->ids = mproc__calloc((size_t)e->nworkers, sizeof *t->ids);
    t->joinable = mproc__calloc((size_t)e->nworkers, sizeof *t->joinable);
  }
  if (!t || !t->ids || !t->joinable) {
    if (t) {
      mproc__free(t->ids);
      mproc__free(t->joinable);
    }
    mproc__free(t);
    mproc__plat_close(sv[0]);
    mproc__plat_close(sv[1]);
    return MPROC_ENOMEM;
  }
  t->sock = sv[1];
  e->tpl_sock = sv[0];
  e->backend_state = t;
  return 0;
}

/* Called by the manager (lock held) where it would ask the template for a worker. */
static void threads_spawn(mproc__engine *e, int slot) {
  mproc__slot *s = &e->sh->slots[slot];
  mproc__ring_reset(s->in);
  mproc__ring_reset(s->out);
  s->running_job = 0;
  s->in_init = 0;
  struct thread_arg *a = mproc__malloc(sizeof *a);
  threads *ts = state(e);
  int id = ++ts->seq;
  int r = a ? 0 : ENOMEM;
  if (a) {
    *a = (struct thread_arg){e, slot, id};
    r = pthread_create(&ts->ids[slot], NULL, thread_main, a);
    if (r)
      mproc__free(a);
    else
      ts->joinable[slot] = true;
  }
  report(e, r ? (tpl_msg){TPL_SPAWN_FAILED, slot, 0, r} : (tpl_msg){TPL_SPAWNED, slot, id, 0});
}

/* After the manager has stopped: tell every worker thread to stop and join it.  Running tasks are waited
 * for: a thread cannot be killed.  Every thread created and not yet joined, also one whose start the
 * manager never heard of (a pool destroyed at once): it may not even have run yet, and must not run
 * after the pool is freed. */
static void threads_stop(mproc__engine *e) {
  threads *t = state(e);
  if (!t) return;
  for (int i = 0; i < e->nworkers; i++) {
    if (!t->joinable[i]) continue;
    wire_job stop = {.magic = WIRE_MAGIC, .kind = JOB_STOP};
    mproc__ring_put_all(e->sh->slots[i].in, &stop, sizeof stop);
  }
  for (int i = 0; i < e->nworkers; i++) {
    if (!t->joinable[i]) continue;
    pthread_join(t->ids[i], NULL);
    t->joinable[i] = false;
    e->ws[i].pid = 0;
  }
  mproc__plat_close(e->tpl_sock);
  mproc__plat_close(t->sock);
  e->tpl_sock = -1;
  mproc__free(t->ids);
  mproc__free(t->joinable);
  mproc__free(t);
  e->backend_state = NULL;
}

/* Called by the manager when a thread's end was reported: it has just ended. */
static void threads_reaped(mproc__engine *e, int slot) {
  threads *t = state(e);
  if (!t->joinable[slot]) return;
  pthread_join(t->ids[slot], NULL);
  t->joinable[slot] = false;
}

const mproc__backend_ops mproc__backend_thread = {
    .shares_memory = true,
    .start = threads_start,
    .spawn = threads_spawn,
    .reaped = threads_reaped,
    .stop_after_manager = threads_stop,
};
