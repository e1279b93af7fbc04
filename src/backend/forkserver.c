/* forkserver.c: the fork server behind MPROC_START_FORKSERVER and mproc_init().
 *
 * mproc_init() forks the server while the program is small and single-threaded.  For each pool the caller
 * sends it the pool's shared mapping (a memfd, with the address it has in the caller) and one end of a
 * socket; the server forks a template that maps the memfd at that same address (MAP_FIXED_NOREPLACE: the
 * server is a copy of the early program, so the range is almost always free; if not, the pool falls back
 * to forking its template from the caller) and then runs the usual template loop.  The server reaps its
 * templates and kills them if it must end.  Deaths chain as before: caller's main thread -> server ->
 * template -> workers. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "ipc/arena.h"

#define MAX_TEMPLATES 256

typedef struct request {
  int32_t op, pad;
  uint64_t addr, size;
} request;
typedef struct reply {
  int32_t status, pid;
} reply;

static struct {
  pthread_mutex_t lock;
  int sock;
  pid_t pid, owner;
  int pidfd;
  bool atexit_set;
} srv = {PTHREAD_MUTEX_INITIALIZER, -1, 0, 0, -1, false};

struct tctx {
  int server_sock, memfd, tsock;
  void *addr;
  size_t size;
};

static void template_entry(void *vctx) {
  struct tctx *c = vctx;
  mproc__plat_close(c->server_sock);
  int err = 0;
  void *p = mproc__plat_shm_map_at(c->addr, c->memfd, c->size, &err);
  mproc__plat_close(c->memfd);
  /* a send that fails (the caller is gone) is seen there as no answer: MPROC_ECONNRESET */
  if (!p) {
    tpl_msg m = {TPL_SPAWN_FAILED, -1, 0, -err};
    (void)mproc__plat_send_msg(c->tsock, &m, sizeof m, true);
    mproc__plat_exit(1);
  }
  tpl_msg m = {TPL_READY, -1, getpid(), 0};
  if (mproc__plat_send_msg(c->tsock, &m, sizeof m, true) < 0) mproc__plat_exit(1);
  /* the server: single-threaded, so its death signal holds until the watch replaces it */
  mproc__template_main(p, c->tsock, mproc__plat_watch_parent(getppid()));
}

/* owner: a pidfd of the program's process (-1 where the kernel has none: the parent-death signal then) */
static void server_main(int sock, int owner) {
  mproc__plat_ignore_signal(SIGINT);
  static pid_t pids[MAX_TEMPLATES];
  static int pidfds[MAX_TEMPLATES];
  static struct pollfd pfd[MAX_TEMPLATES + 3];
  int n = 0;
  /* no pidfds (an old kernel): a template's end is told by SIGCHLD instead of its pidfd */
  int chld = owner < 0 ? mproc__plat_child_events_open() : -1;
  for (;;) {
    pfd[0] = (struct pollfd){.fd = sock, .events = POLLIN};
    for (int i = 0; i < n; i++) pfd[i + 1] = (struct pollfd){.fd = pidfds[i], .events = POLLIN};
    pfd[n + 1] = (struct pollfd){.fd = owner, .events = POLLIN}; /* ignored when -1 */
    pfd[n + 2] = (struct pollfd){.fd = chld, .events = POLLIN};  /* likewise */
    if (mproc__plat_poll(pfd, (size_t)n + 3, -1) < 0) break;
    if (pfd[n + 1].revents) break; /* the program's process ended (a fork of it may hold the socket) */
    bool chld_fired = chld >= 0 && pfd[n + 2].revents;
    if (chld_fired) mproc__plat_child_events_drain(chld);
    for (int i = n - 1; i >= 0; i--) {
      int st;
      if (pidfds[i] >= 0) {
        if (!(pfd[i + 1].revents & (POLLIN | POLLHUP))) continue;
        mproc__plat_wait(pids[i], pidfds[i], -1, &st);
      } else if (!chld_fired || mproc__plat_wait(pids[i], -1, 0, &st) != 0) {
        continue; /* still running */
      }
      mproc__plat_close(pidfds[i]);
      pids[i] = pids[n - 1];
      pidfds[i] = pidfds[n - 1];
      n--;
    }
    if (!(pfd[0].revents & POLLIN)) {
      if (pfd[0].revents & (POLLHUP | POLLERR)) break;
      continue;
    }
    request req;
    int fds[2], nfds = 2;
    int r = mproc__plat_recv_fds(sock, fds, &nfds, &req, sizeof req);
    if (r == -ECONNRESET) break;
    if (r < 0) continue;
    reply rep = {0, 0};
    if (req.op != 1 || nfds != 2) {
      rep.status = -EINVAL;
    } else if (n == MAX_TEMPLATES) {
      rep.status = -EAGAIN;
    } else {
      struct tctx c = {sock, fds[0], fds[1], (void *)(uintptr_t)req.addr, (size_t)req.size};
      pid_t pid;
      int pidfd;
      rep.status = mproc__plat_spawn(&pid, &pidfd, template_entry, &c);
      if (rep.status == 0) {
        pids[n] = pid;
        pidfds[n] = pidfd;
        n++;
        rep.pid = pid;
      }
    }
    for (int i = 0; i < nfds; i++) mproc__plat_close(fds[i]);
    /* the program is gone if this fails: the next poll sees its end closed, or its pidfd */
    (void)mproc__plat_send_msg(sock, &rep, sizeof rep, true);
  }
  /* the program is gone or shut us down: no template outlives the server */
  for (int i = 0; i < n; i++) mproc__plat_signal(pids[i], pidfds[i], SIGKILL);
  for (int i = 0; i < n; i++) {
    int st;
    mproc__plat_wait(pids[i], pidfds[i], -1, &st);
  }
  mproc__plat_exit(0);
}

struct sctx {
  int sock, other;
  pid_t program;
};

static void server_entry(void *vctx) {
  struct sctx *c = vctx;
  mproc__plat_close(c->other);
  server_main(c->sock, mproc__plat_watch_parent(c->program));
}

int mproc_init(int *argc, char ***argv) {
  pthread_mutex_lock(&srv.lock);
  if (srv.sock >= 0 && srv.owner == getpid()) {
    pthread_mutex_unlock(&srv.lock);
    return MPROC_EALREADY;
  }
  srv.sock = -1; /* a server inherited through fork is not ours */
  /* the shared arena exists before the server, so the server's templates and workers have it; the server
   * holds a reference until mproc_shutdown(); under an MPI launcher, at the address every rank asks for */
  mproc__arena_place_at(mproc__mpi_arena_at());
  int r = mproc__arena_ref();
  if (r < 0) {
    pthread_mutex_unlock(&srv.lock);
    return r;
  }
  int sv[2];
  r = mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv);
  if (r < 0) {
    mproc__arena_unref();
    pthread_mutex_unlock(&srv.lock);
    return r;
  }
  struct sctx c = {sv[1], sv[0], getpid()};
  /* not tied to the calling thread: the server lasts as long as the program (it watches its process) */
  r = mproc__plat_spawn_unbound(&srv.pid, &srv.pidfd, server_entry, &c);
  mproc__plat_close(sv[1]);
  if (r < 0) {
    mproc__plat_close(sv[0]);
    mproc__arena_unref();
    pthread_mutex_unlock(&srv.lock);
    return r;
  }
  srv.sock = sv[0];
  srv.owner = getpid();
  if (!srv.atexit_set) srv.atexit_set = atexit(mproc_shutdown) == 0;
  pthread_mutex_unlock(&srv.lock);
  /* under an MPI launcher: MPI starts after the server, whose children never inherit its state; ranks
   * other than 0 serve the master from here and never return */
  return mproc__mpi_init(argc, argv);
}

bool mproc__forkserver_running(void) {
  pthread_mutex_lock(&srv.lock);
  bool on = srv.sock >= 0 && srv.owner == getpid();
  pthread_mutex_unlock(&srv.lock);
  return on;
}

int mproc__forkserver_request(void *addr, size_t size, int memfd, int tsock, pid_t *pid) {
  pthread_mutex_lock(&srv.lock);
  if (srv.sock < 0 || srv.owner != getpid()) {
    pthread_mutex_unlock(&srv.lock);
    return MPROC_ESTATE;
  }
  request req = {1, 0, (uint64_t)(uintptr_t)addr, size};
  int fds[2] = {memfd, tsock};
  int r = mproc__plat_send_fds(srv.sock, fds, 2, &req, sizeof req);
  reply rep = {MPROC_ECONNRESET, 0};
  if (r == 0) {
    ssize_t got = mproc__plat_recv_msg(srv.sock, &rep, sizeof rep, true);
    if (got != (ssize_t)sizeof rep) rep.status = MPROC_ECONNRESET;
  } else {
    rep.status = r;
  }
  pthread_mutex_unlock(&srv.lock);
  *pid = rep.pid;
  return rep.status;
}

void mproc_shutdown(void) {
  pthread_mutex_lock(&srv.lock);
  if (srv.sock >= 0 && srv.owner == getpid()) {
    mproc__plat_close(srv.sock);
    int st;
    mproc__plat_wait(srv.pid, srv.pidfd, -1, &st);
    mproc__plat_close(srv.pidfd);
    mproc__arena_unref();
  }
  srv.sock = -1;
  srv.pidfd = -1;
  srv.pid = 0;
  pthread_mutex_unlock(&srv.lock);
}

/* ---- the forkserver backend ---- */

/* Gets the template from the fork server (lock held).  When the server could not map the pool at our
 * address, forks one from the caller instead. */
static int forkserver_start(mproc__engine *e) {
  int sv[2];
  int r = mproc__template_begin(e, sv);
  if (r < 0) return r;
  pid_t pid = 0;
  r = mproc__forkserver_request(e->sh, e->sh_bytes, e->sh_fd, sv[1], &pid);
  mproc__plat_close(sv[1]);
  if (r == 0) r = mproc__template_await_ready(sv[0], 10.0);
  if (r < 0) {
    mproc__plat_close(sv[0]);
    if (r == MPROC_EEXIST) return mproc__template_start(e); /* our address is taken in the server */
    mproc__template_state_free(e);
    return r;
  }
  mproc__template *t = mproc__template_of(e);
  e->tpl_sock = sv[0];
  t->pid = pid;
  t->pidfd = mproc__plat_pidfd_open(pid);
  t->foreign = true;
  return 0;
}

/* MPROC_START_FORKSERVER: the template comes from the server mproc_init() started. */
const mproc__backend_ops mproc__backend_forkserver = {
    .needs_memfd = true,
    .start = forkserver_start,
    MPROC__TEMPLATE_PROTOCOL,
};
