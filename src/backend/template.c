/* template.c: the template process that forks, reaps and kills the workers of a pool (the fork backend's
 * table, and the protocol the fork-server and exec backends share).
 *
 * The template is forked by the thread that creates the pool and stays single-threaded.  It waits in poll()
 * on its socket to the manager, on one pidfd per worker, and on a pidfd of its parent (it ends with the
 * caller's process, not with the thread that forked it).  Commands: SPAWN a worker in a slot, KILL the
 * worker of a slot with a signal.  Events back: SPAWNED (pid), SPAWN_FAILED (errno), DIED (wait status).
 * After each event it bumps the shared template_events word and rings the manager's doorbell.  When the
 * socket closes (the pool is being destroyed or the caller died) it kills every worker, reaps them and
 * exits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

struct worker_ctx {
  mproc__shared *sh;
  int slot;
  int sock;
};

static void limit_thread_env(int n);

static void worker_entry(void *vctx) {
  struct worker_ctx *c = vctx;
  mproc__plat_close(c->sock);
  /* the caller works out OMP_NUM_THREADS & co while the first workers are forked (reading the cgroup files
   * takes a tenth of a millisecond); they wait for it here, before any user code */
  mproc__shared *sh = c->sh;
  while (__atomic_load_n(&sh->conf_ready, __ATOMIC_ACQUIRE) == 0)
    mproc__plat_futex_wait(&sh->conf_ready, 0, -1);
  if (sh->conf.thread_env_n > 0) limit_thread_env(sh->conf.thread_env_n);
  mproc__worker_main(sh, c->slot);
}

/* Sends an event and rings the manager's doorbell; false when the event could not be sent. */
static bool tell_manager(mproc__shared *sh, int sock, tpl_msg m) {
  int r = mproc__plat_send_msg(sock, &m, sizeof m, true);
  __atomic_fetch_add(&sh->template_events, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&sh->doorbell, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->doorbell, 1);
  return r == 0;
}

void mproc__template_notify(mproc__shared *sh, int sock, tpl_msg m) { (void)tell_manager(sh, sock, m); }

static const char *const thread_vars[] = {"OMP_NUM_THREADS",        "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS",        "BLIS_NUM_THREADS",
                                          "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"};

int mproc__thread_env_value(int cpus, int workers) {
  bool all_set = true;
  for (size_t i = 0; i < sizeof thread_vars / sizeof *thread_vars; i++)
    all_set = all_set && getenv(thread_vars[i]);
  if (all_set) return 0;
  int n = cpus / (workers > 0 ? workers : 1);
  return n > 0 ? n : 1;
}

/* Sets OMP_NUM_THREADS & co to n where the user has not set them. */
static void limit_thread_env(int n) {
  char buf[16];
  snprintf(buf, sizeof buf, "%d", n);
  for (size_t i = 0; i < sizeof thread_vars / sizeof *thread_vars; i++) setenv(thread_vars[i], buf, 0);
}

/* Forks the worker of a slot (empty rings) and tells the manager how it went.  Should this process be
 * killed during the fork, the slot still says that a fork began, and the child, if there is one, puts its
 * pid there itself.  False when the manager could not be told. */
static bool spawn_slot(mproc__shared *sh, int sock, int slot, bool reset_signals, pid_t *pids, int *pidfds) {
  mproc__slot *s = &sh->slots[slot];
  mproc__ring_reset(s->in);
  mproc__ring_reset(s->out);
  s->running_job = 0;
  s->in_init = 0;
  __atomic_store_n(&s->child_pid, MPROC__FORKING, __ATOMIC_RELEASE);
  struct worker_ctx c = {sh, slot, sock};
  pid_t pid;
  int pidfd;
  int r = mproc__plat_spawn_announced(&pid, &pidfd, worker_entry, &c, reset_signals, &s->child_pid);
  if (r < 0) return tell_manager(sh, sock, (tpl_msg){TPL_SPAWN_FAILED, slot, 0, -r});
  pids[slot] = pid;
  pidfds[slot] = pidfd;
  return tell_manager(sh, sock, (tpl_msg){TPL_SPAWNED, slot, pid, 0});
}

void mproc__template_main(mproc__shared *sh, int sock, int owner) {
  mproc__plat_ignore_signal(SIGINT);
  /* a template forked from a process whose caught signals were reset has none; a fresh image (exec) may
   * have had handlers installed by constructors */
  bool reset_signals = sh->objs != NULL;
  int n = sh->conf.nworkers;
  /* no pidfds (an old kernel): a worker's end is told by SIGCHLD instead of its pidfd */
  int chld = owner < 0 ? mproc__plat_child_events_open() : -1;
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  int *pidfds = calloc((size_t)n, sizeof *pidfds);
  struct pollfd *pfd = calloc((size_t)n + 3, sizeof *pfd);
  if (!pids || !pidfds || !pfd) mproc__plat_exit(125);
  for (int i = 0; i < n; i++) pidfds[i] = -1;
  /* An event the manager did not get would leave it waiting for ever (for a worker it never heard of, or
   * for the task of a worker that died).  When one cannot be sent (-EPIPE: the pool is being destroyed;
   * anything else: the socket is unusable) the template ends as when the pool is destroyed, and the manager
   * sees it gone (mproc__template_gone: the pool is lost, MPROC_ELOST). */
  bool told = true;
  /* every worker at once, unasked: the manager may not even be running yet */
  for (int i = 0; i < n && told; i++) told = spawn_slot(sh, sock, i, reset_signals, pids, pidfds);
  while (told) {
    pfd[0] = (struct pollfd){.fd = sock, .events = POLLIN};
    for (int i = 0; i < n; i++) pfd[i + 1] = (struct pollfd){.fd = pidfds[i], .events = POLLIN};
    pfd[n + 1] = (struct pollfd){.fd = owner, .events = POLLIN};
    pfd[n + 2] = (struct pollfd){.fd = chld, .events = POLLIN}; /* -1 (ignored) where there are pidfds */
    if (mproc__plat_poll(pfd, (size_t)n + 3, -1) < 0) break;
    if (pfd[n + 1].revents) break; /* the caller's process ended */
    bool chld_fired = chld >= 0 && pfd[n + 2].revents;
    if (chld_fired) mproc__plat_child_events_drain(chld);
    for (int i = 0; i < n; i++) {
      int st = 0;
      if (!pids[i]) continue;
      if (pidfds[i] >= 0) {
        if (!(pfd[i + 1].revents & (POLLIN | POLLHUP))) continue;
        mproc__plat_wait(pids[i], pidfds[i], -1, &st);
      } else if (!chld_fired || mproc__plat_wait(pids[i], -1, 0, &st) != 0) {
        continue; /* still running */
      }
      mproc__plat_close(pidfds[i]);
      pidfds[i] = -1;
      if (!tell_manager(sh, sock, (tpl_msg){TPL_DIED, i, pids[i], st})) told = false;
      pids[i] = 0;
    }
    if (!told) break;
    if (pfd[0].revents & (POLLHUP | POLLERR)) break;
    if (!(pfd[0].revents & POLLIN)) continue;
    tpl_msg m;
    ssize_t got = mproc__plat_recv_msg(sock, &m, sizeof m, true);
    if (got == 0) break;
    if (got != (ssize_t)sizeof m) continue;
    if (m.slot < 0 || m.slot >= n) continue;
    if (m.op == TPL_SPAWN && pids[m.slot] == 0) {
      told = spawn_slot(sh, sock, m.slot, reset_signals, pids, pidfds);
    } else if (m.op == TPL_KILL && pids[m.slot] == m.pid && pids[m.slot] != 0) {
      mproc__plat_signal(pids[m.slot], pidfds[m.slot], m.value);
    }
  }
  /* The pool is gone: no worker outlives it. */
  for (int i = 0; i < n; i++)
    if (pids[i]) mproc__plat_signal(pids[i], pidfds[i], SIGKILL);
  for (int i = 0; i < n; i++) {
    if (!pids[i]) continue;
    int st;
    mproc__plat_wait(pids[i], pidfds[i], -1, &st);
  }
  free(pfd); /* the exit would free them too; freed, valgrind's leak check finds none */
  free(pidfds);
  free(pids);
  mproc__plat_exit(0);
}

/* ---- the manager's side ---- */

/* A command the template did not get would leave the pool waiting for ever (a slot never refilled, a task
 * past its timeout never killed).  When one cannot be sent (-EPIPE: the template has died; anything else:
 * the socket is unusable) the connection is hung up: the template then kills its workers and ends, and
 * mproc__template_gone() tells the manager, which fails the pool's work with MPROC_ELOST. */
static void send_tpl(mproc__engine *e, tpl_msg m) {
  if (mproc__plat_send_msg(e->tpl_sock, &m, sizeof m, true) < 0) mproc__plat_sock_hangup(e->tpl_sock);
}

void mproc__template_spawn(mproc__engine *e, int i) {
  __atomic_store_n(&e->sh->slots[i].child_pid, 0, __ATOMIC_RELAXED); /* its last worker has been reaped */
  send_tpl(e, (tpl_msg){TPL_SPAWN, i, 0, 0});
}

void mproc__template_kill(mproc__engine *e, int i) {
  send_tpl(e, (tpl_msg){TPL_KILL, i, e->ws[i].pid, SIGKILL});
}

bool mproc__template_gone(mproc__engine *e) {
  if (e->tpl_sock < 0) return false;
  return mproc__plat_sock_at_eof(e->tpl_sock);
}

/* How long the manager waits for the processes a dead template leaves behind: for the template to end, and
 * then for each worker.  They end at once (their parent-death signal, or the check after their fork), so
 * only an overloaded machine could take this long. */
#define ORPHANS_WAIT 2.0
/* How long a fork the template's death cut short may take to show whether it made a child.  Paid only by a
 * child subreaper, and only when the template died during a fork that made none. */
#define FORK_CUT_WAIT 0.5

/* The pid the worker of slot i put in its slot, 0 if it has none (the template has ended). */
static pid_t announced_pid(mproc__engine *e, int i) {
  uint32_t *word = &e->sh->slots[i].child_pid;
  double deadline = mproc__plat_now() + FORK_CUT_WAIT;
  uint32_t v;
  while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) == MPROC__FORKING) {
    double left = deadline - mproc__plat_now();
    if (left <= 0) return 0;
    mproc__plat_futex_wait(word, MPROC__FORKING, left);
  }
  return (pid_t)v;
}

/* The workers of a template that died without killing them (SIGKILL, the OOM killer) end by themselves, as
 * orphans: adopted by init, or by this process when it is a child subreaper, which must then reap them.
 * The template reported every worker but one it was forking when it died: fork() had not returned to it.
 * That child, if the fork made one, told its pid through its slot. */
void mproc__template_reap_orphans(mproc__engine *e) {
  if (!mproc__plat_is_subreaper()) return; /* they go to a reaper above us, or to init */
  double deadline = mproc__plat_now() + ORPHANS_WAIT;
  /* until the template has ended they are its children, not ours */
  mproc__template *t = mproc__template_of(e);
  if (t && t->pidfd >= 0) mproc__plat_poll_fd(t->pidfd, POLLIN, ORPHANS_WAIT);
  for (int i = 0; i < e->nworkers; i++) {
    mproc__wstate *w = &e->ws[i];
    pid_t pid = w->pid ? w->pid : w->spawning ? announced_pid(e, i) : 0;
    w->pid = 0;
    w->spawning = false;
    if (pid <= 0) continue;
    double left = deadline - mproc__plat_now();
    int fd = mproc__plat_pidfd_open(pid), st;
    mproc__plat_wait(pid, fd, left > 0 ? left : 0, &st); /* ECHILD at once if it was not ours */
    mproc__plat_close(fd);
  }
}

/* Closing the socket tells the template to kill and reap every worker and exit; then it is waited for.  A
 * template that had died by itself may leave orphans to reap: its end of the socket is closed (POLLHUP,
 * even with its last news still unread in ours). */
void mproc__template_stop(mproc__engine *e) {
  bool died = e->tpl_sock >= 0 && mproc__plat_poll_fd(e->tpl_sock, 0, 0) > 0;
  if (e->tpl_sock >= 0) {
    mproc__plat_sock_hangup(e->tpl_sock);
    mproc__plat_close(e->tpl_sock);
    e->tpl_sock = -1;
  }
  mproc__template *t = mproc__template_of(e);
  if (!t) return;
  if (t->foreign) {
    /* the fork server's child: wait for it to end (it reaps its workers first); the server reaps it.
     * Without a pidfd, until the server has reaped it: a server stopped meanwhile would kill it in the
     * middle of reaping its workers, and leave them to a subreaper above us, or to us. */
    if (t->pidfd >= 0) {
      mproc__plat_poll_fd(t->pidfd, POLLIN, -1);
    } else if (t->pid > 0) {
      mproc__plat_wait_gone(t->pid, ORPHANS_WAIT);
    }
  } else if (t->pid > 0) {
    int st;
    mproc__plat_wait(t->pid, t->pidfd, -1, &st);
  }
  if (died) mproc__template_reap_orphans(e);
  mproc__template_state_free(e);
}

int mproc__template_await_ready(int sock, double timeout) {
  tpl_msg m = {0, 0, 0, 0};
  ssize_t got = -1;
  if (mproc__plat_poll_fd(sock, POLLIN, timeout) > 0) got = mproc__plat_recv_msg(sock, &m, sizeof m, true);
  if (got == (ssize_t)sizeof m && m.op == TPL_READY) return 0;
  if (got == (ssize_t)sizeof m && m.op == TPL_SPAWN_FAILED && m.value > 0) return -m.value;
  return MPROC_ECONNRESET;
}

struct start_ctx {
  mproc__engine *e;
  int sock, other;
  pid_t caller;
};

static void template_entry(void *vctx) {
  struct start_ctx *c = vctx;
  mproc__plat_close(c->other);
  mproc__template_main(c->e->sh, c->sock, mproc__plat_watch_parent(c->caller));
}

int mproc__template_begin(mproc__engine *e, int sv[2]) {
  int r = mproc__template_state_new(e);
  if (r < 0) return r;
  r = mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv);
  if (r < 0) mproc__template_state_free(e);
  return r;
}

int mproc__template_start(mproc__engine *e) {
  int sv[2];
  int r = mproc__template_begin(e, sv);
  if (r < 0) return r;
  mproc__template *t = mproc__template_of(e);
  struct start_ctx c = {e, sv[1], sv[0], getpid()};
  /* not tied to the creating thread: the pool outlives it (the template watches the caller's process) */
  r = mproc__plat_spawn_unbound(&t->pid, &t->pidfd, template_entry, &c);
  mproc__plat_close(sv[1]);
  if (r < 0) {
    mproc__plat_close(sv[0]);
    mproc__template_state_free(e);
    return r;
  }
  e->tpl_sock = sv[0];
  return 0;
}

int mproc__template_state_new(mproc__engine *e) {
  if (e->backend_state) return 0;
  mproc__template *t = mproc__calloc(1, sizeof *t);
  if (!t) return MPROC_ENOMEM;
  t->pidfd = -1;
  e->backend_state = t;
  return 0;
}

void mproc__template_state_free(mproc__engine *e) {
  mproc__template *t = mproc__template_of(e);
  if (!t) return;
  mproc__plat_close(t->pidfd);
  mproc__free(t);
  e->backend_state = NULL;
}

mproc__template *mproc__template_of(const mproc__engine *e) { return e->backend_state; }

/* The template of a pool of a process-like backend, NULL for any other pool (whose state is not one). */
static const mproc__template *template_if_any(const mproc__engine *e) {
  return e->ops && e->ops->stop_in_manager == mproc__template_stop ? e->backend_state : NULL;
}

pid_t mproc__template_pid(const mproc__engine *e) {
  const mproc__template *t = template_if_any(e);
  return t ? t->pid : 0;
}

bool mproc__template_foreign(const mproc__engine *e) {
  const mproc__template *t = template_if_any(e);
  return t && t->foreign;
}

/* MPROC_START_FORK: the template is forked by the thread creating the pool, a copy of the caller. */
const mproc__backend_ops mproc__backend_fork = {
    .start = mproc__template_start,
    MPROC__TEMPLATE_PROTOCOL,
};
