/* backend_process.c: the template process that forks, reaps and kills the workers of a pool.
 *
 * The template is forked by the pool's manager thread and stays single-threaded.  It waits in poll() on
 * its socket to the manager and on one pidfd per worker.  Commands: SPAWN a worker in a slot, KILL the
 * worker of a slot with a signal.  Events back: SPAWNED (pid), SPAWN_FAILED (errno), DIED (wait status).
 * After each event it bumps the shared template_events word and rings the manager's doorbell.  When the
 * socket closes (the pool is being destroyed or the caller died) it kills every worker, reaps them and
 * exits. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"

struct worker_ctx {
  mproc__shared *sh;
  int slot;
  int sock;
};

static void worker_entry(void *vctx) {
  struct worker_ctx *c = vctx;
  close(c->sock);
  mproc__worker_main(c->sh, c->slot);
}

static void notify(mproc__shared *sh, int sock, tpl_msg m) {
  while (send(sock, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
  __atomic_fetch_add(&sh->template_events, 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&sh->doorbell, 1, __ATOMIC_SEQ_CST);
  mproc__futex_wake(&sh->doorbell, 1);
}

static const char *const thread_vars[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                          "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"};

int mproc__thread_env_value(int workers) {
  bool all_set = true;
  for (size_t i = 0; i < sizeof thread_vars / sizeof *thread_vars; i++) all_set = all_set && getenv(thread_vars[i]);
  if (all_set) return 0;
  int n = mproc_cpu_count() / (workers > 0 ? workers : 1);
  return n > 0 ? n : 1;
}

/* Sets OMP_NUM_THREADS & co to n where the user has not set them. */
static void limit_thread_env(int n) {
  char buf[16];
  snprintf(buf, sizeof buf, "%d", n);
  for (size_t i = 0; i < sizeof thread_vars / sizeof *thread_vars; i++) setenv(thread_vars[i], buf, 0);
}

void mproc__template_main(mproc__shared *sh, int sock) {
  signal(SIGINT, SIG_IGN);
  if (sh->conf.thread_env_n > 0) limit_thread_env(sh->conf.thread_env_n);
  int n = sh->conf.nworkers;
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  int *pidfds = calloc((size_t)n, sizeof *pidfds);
  struct pollfd *pfd = calloc((size_t)n + 1, sizeof *pfd);
  if (!pids || !pidfds || !pfd) _exit(125);
  for (int i = 0; i < n; i++) pidfds[i] = -1;
  for (;;) {
    pfd[0] = (struct pollfd){.fd = sock, .events = POLLIN};
    for (int i = 0; i < n; i++) pfd[i + 1] = (struct pollfd){.fd = pidfds[i], .events = POLLIN};
    if (poll(pfd, (nfds_t)n + 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; i++) {
      if (pidfds[i] < 0 || !(pfd[i + 1].revents & (POLLIN | POLLHUP))) continue;
      int st = 0;
      pid_t r;
      do {
        r = waitpid(pids[i], &st, 0);
      } while (r < 0 && errno == EINTR);
      close(pidfds[i]);
      pidfds[i] = -1;
      notify(sh, sock, (tpl_msg){TPL_DIED, i, pids[i], st});
      pids[i] = 0;
    }
    if (pfd[0].revents & (POLLHUP | POLLERR)) break;
    if (!(pfd[0].revents & POLLIN)) continue;
    tpl_msg m;
    ssize_t got = recv(sock, &m, sizeof m, 0);
    if (got == 0) break;
    if (got != (ssize_t)sizeof m) continue;
    if (m.slot < 0 || m.slot >= n) continue;
    if (m.op == TPL_SPAWN && pids[m.slot] == 0) {
      /* the worker starts with empty rings */
      mproc__ring_reset(sh->slots[m.slot].in);
      mproc__ring_reset(sh->slots[m.slot].out);
      sh->slots[m.slot].running_job = 0;
      sh->slots[m.slot].in_init = 0;
      struct worker_ctx c = {sh, m.slot, sock};
      pid_t pid;
      int pidfd;
      int r = mproc__plat_spawn(&pid, &pidfd, worker_entry, &c);
      if (r < 0) {
        notify(sh, sock, (tpl_msg){TPL_SPAWN_FAILED, m.slot, 0, -r});
      } else {
        pids[m.slot] = pid;
        pidfds[m.slot] = pidfd;
        notify(sh, sock, (tpl_msg){TPL_SPAWNED, m.slot, pid, 0});
      }
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
    while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR) {
    }
  }
  _exit(0);
}
