/* process.c: mproc_process, Python's multiprocessing.Process on top of the platform layer.
 *
 * Every handle created in a process is on one list (registry) so that an atexit handler can do what Python
 * does when the main program ends: SIGTERM and reap daemon children, wait for the others.  A handle is
 * created only by the parent; the copy a child inherits through fork is recognised by its owner pid and
 * left alone.  Lock order: registry.lock, then a handle's lock. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "ipc/waitable.h"

#define NAME_MAX_BYTES 255

struct mproc_process {
  pthread_mutex_t lock;
  pid_t pid;
  int pidfd;
  pid_t owner; /* the process that started it: only it may wait or signal */
  int daemon;
  mproc_exit_status status;
  char *name;
  mproc_process *next, *prev; /* registry list */
};

static struct {
  pthread_mutex_t lock;
  mproc_process *head;
  unsigned counter; /* for default names */
  int atexit_done;
} registry = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

/* Held across a start's fork and around every close of a handle's pidfd, so that the child's copy of the
 * registry names exactly the pidfds it inherited (and not a number closed and reused meanwhile).  Order:
 * registry.lock, then a handle's lock, then this. */
static pthread_mutex_t pidfd_lock = PTHREAD_MUTEX_INITIALIZER;

static void close_pidfd(mproc_process *p) {
  pthread_mutex_lock(&pidfd_lock);
  mproc__plat_close(p->pidfd);
  p->pidfd = -1;
  pthread_mutex_unlock(&pidfd_lock);
}

static const char *current_name = "MainProcess";

const char *mproc_current_process_name(void) { return current_name; }

/* In a child, the registry describes the parent's children: forget it without touching them, but close
 * the pidfds it inherited for them (they would keep nothing alive, but a child has no use for them, and
 * the k-th child of a parent would hold k-1 of them).  The parent held registry.lock and pidfd_lock across
 * the fork, so the list is whole and every pidfd on it is open. */
static void registry_forget_in_child(void) {
  for (mproc_process *p = registry.head; p; p = p->next) {
    mproc__plat_close(p->pidfd);
    p->pidfd = -1; /* destroying the inherited copy must not close the number again */
  }
  registry.head = NULL;
  registry.counter = 0;
  registry.atexit_done = 0;
  pthread_mutex_init(&registry.lock, NULL);
  pthread_mutex_init(&pidfd_lock, NULL);
}

static void record_status(mproc_process *p, int wstatus) {
  if (WIFEXITED(wstatus)) {
    p->status = (mproc_exit_status){MPROC_PROCESS_EXITED, WEXITSTATUS(wstatus), 0, 0};
  } else if (WIFSIGNALED(wstatus)) {
    p->status =
        (mproc_exit_status){MPROC_PROCESS_SIGNALED, -1, WTERMSIG(wstatus), WCOREDUMP(wstatus) ? 1 : 0};
  }
  /* The pidfd stays open until destroy: it is the process's sentinel, readable from now on. */
}

/* Waits with p->lock held.  0 when ended (status recorded), -ETIMEDOUT, or an error. */
static int wait_locked(mproc_process *p, double timeout) {
  if (p->status.state != MPROC_PROCESS_RUNNING) return 0;
  if (p->owner != getpid()) return MPROC_ECHILD;
  int wstatus = 0;
  int r = mproc__plat_wait(p->pid, p->pidfd, timeout, &wstatus);
  if (r == 0) {
    record_status(p, wstatus);
  } else if (r == MPROC_ECHILD) {
    /* Reaped behind our back (waitpid(-1), SIGCHLD ignored): it has ended, its status is gone. */
    p->status = (mproc_exit_status){MPROC_PROCESS_LOST, -1, 0, 0};
    r = 0;
  }
  return r;
}

/* Python's order: first SIGTERM every daemon child, then wait for every child. */
static void at_exit_handler(void) {
  pid_t self = getpid();
  pthread_mutex_lock(&registry.lock);
  for (int pass = 0; pass < 2; pass++) {
    for (mproc_process *p = registry.head; p; p = p->next) {
      if (p->owner != self) continue;
      pthread_mutex_lock(&p->lock);
      if (p->status.state == MPROC_PROCESS_RUNNING) {
        if (pass == 0 && p->daemon) mproc__plat_signal(p->pid, p->pidfd, SIGTERM);
        if (pass == 1) wait_locked(p, MPROC_FOREVER);
      }
      pthread_mutex_unlock(&p->lock);
    }
  }
  pthread_mutex_unlock(&registry.lock);
}

struct child_ctx {
  mproc_process_fn fn;
  const void *arg;
  size_t arg_len;
  const char *name;
};

static void child_main(void *vctx) {
  struct child_ctx *ctx = vctx;
  registry_forget_in_child();
  current_name = ctx->name;
  int code = ctx->fn(ctx->arg_len ? ctx->arg : NULL, ctx->arg_len);
  fflush(NULL);
  mproc__plat_exit(code & 0xff);
}

int mproc_process_start(mproc_process **out, mproc_process_fn fn, const void *arg, size_t arg_len,
                        const mproc_process_opts *opts) {
  static const mproc_process_opts defaults = {0};
  if (!opts) opts = &defaults;
  if (!out || !fn || (!arg && arg_len > 0)) return MPROC_EINVAL;
  if (opts->start_method != MPROC_START_DEFAULT && opts->start_method != MPROC_START_FORK)
    return MPROC_EINVAL; /* forkserver, exec: pools only */
  if (opts->name && strlen(opts->name) > NAME_MAX_BYTES) return MPROC_EINVAL;

  mproc_process *p = mproc__calloc(1, sizeof *p);
  if (!p) return MPROC_ENOMEM;
  pthread_mutex_init(&p->lock, NULL);
  p->pidfd = -1;
  p->owner = getpid();
  p->daemon = opts->daemon != 0;
  p->status = (mproc_exit_status){MPROC_PROCESS_RUNNING, -1, 0, 0};

  pthread_mutex_lock(&registry.lock);
  unsigned number = ++registry.counter;
  if (!registry.atexit_done) {
    registry.atexit_done = atexit(at_exit_handler) == 0;
  }
  pthread_mutex_unlock(&registry.lock);
  if (opts->name) {
    p->name = mproc__strdup(opts->name);
  } else {
    char buf[32];
    snprintf(buf, sizeof buf, "Process-%u", number);
    p->name = mproc__strdup(buf);
  }
  if (!p->name) {
    pthread_mutex_destroy(&p->lock);
    mproc__free(p);
    return MPROC_ENOMEM;
  }

  /* The child gets the argument bytes as the caller's memory was at the fork: that is its own copy. */
  struct child_ctx ctx = {fn, arg, arg_len, p->name};
  pthread_mutex_lock(&registry.lock);
  pthread_mutex_lock(&pidfd_lock);
  int r = mproc__plat_spawn(&p->pid, &p->pidfd, child_main, &ctx);
  pthread_mutex_unlock(&pidfd_lock);
  if (r < 0) {
    pthread_mutex_unlock(&registry.lock);
    mproc__free(p->name);
    pthread_mutex_destroy(&p->lock);
    mproc__free(p);
    return r;
  }

  p->next = registry.head;
  if (registry.head) registry.head->prev = p;
  registry.head = p;
  pthread_mutex_unlock(&registry.lock);
  *out = p;
  return 0;
}

int mproc_process_join(mproc_process *p, double timeout) {
  if (!p || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  pthread_mutex_lock(&p->lock);
  int r = wait_locked(p, timeout);
  pthread_mutex_unlock(&p->lock);
  return r;
}

int mproc_process_is_alive(mproc_process *p) {
  if (!p) return MPROC_EINVAL;
  pthread_mutex_lock(&p->lock);
  int r = wait_locked(p, 0);
  pthread_mutex_unlock(&p->lock);
  if (r == MPROC_ETIMEDOUT) return 1;
  if (r == MPROC_ECHILD && p->owner != getpid()) {
    /* A copy of the handle inherited through fork: not our child, so ask the kernel. */
    return mproc__plat_signal(p->pid, -1, 0) == 0 ? 1 : 0;
  }
  return r < 0 ? r : 0;
}

int mproc_process_send_signal(mproc_process *p, int sig) {
  if (!p || sig <= 0 || sig >= NSIG) return MPROC_EINVAL;
  pthread_mutex_lock(&p->lock);
  int r = 0;
  if (p->owner != getpid()) {
    r = MPROC_ECHILD;
  } else if (p->status.state == MPROC_PROCESS_RUNNING) {
    /* An unreaped child keeps its pid even after it ended, so this cannot hit another process. */
    r = mproc__plat_signal(p->pid, p->pidfd, sig);
    if (r == MPROC_ESRCH) r = 0;
  }
  pthread_mutex_unlock(&p->lock);
  return r;
}

int mproc_process_terminate(mproc_process *p) { return mproc_process_send_signal(p, SIGTERM); }
int mproc_process_kill(mproc_process *p) { return mproc_process_send_signal(p, SIGKILL); }

int mproc_process_exit_status(mproc_process *p, mproc_exit_status *status) {
  if (!p || !status) return MPROC_EINVAL;
  pthread_mutex_lock(&p->lock);
  if (p->owner == getpid()) wait_locked(p, 0);
  *status = p->status;
  pthread_mutex_unlock(&p->lock);
  return 0;
}

int mproc_process_exitcode(mproc_process *p, int *code) {
  mproc_exit_status st;
  if (!code) return MPROC_EINVAL;
  int r = mproc_process_exit_status(p, &st);
  if (r < 0) return r;
  switch (st.state) {
    case MPROC_PROCESS_EXITED:
      *code = st.exit_code;
      return 0;
    case MPROC_PROCESS_SIGNALED:
      *code = -st.signal;
      return 0;
    default:
      return MPROC_ESTATE;
  }
}

int mproc_process_sentinel(const mproc_process *p) {
  if (!p) return MPROC_EINVAL;
  if (p->owner != getpid()) return MPROC_ECHILD;
  return p->pidfd >= 0 ? p->pidfd : MPROC_ENOSYS; /* written only by start and destroy */
}

int mproc__process_wait_fd(mproc_process *p, int *fd) {
  *fd = -1;
  if (p->owner != getpid()) return MPROC_ECHILD;
  if (pthread_mutex_trylock(&p->lock) != 0) {
    /* A join holds the lock while it waits: poll the pidfd, which only start and destroy write. */
    *fd = p->pidfd;
    return 0;
  }
  int r;
  if (p->owner != getpid()) {
    r = MPROC_ECHILD;
  } else if (p->status.state != MPROC_PROCESS_RUNNING) {
    r = 1;
  } else if (p->pidfd >= 0) {
    *fd = p->pidfd;
    r = 0;
  } else { /* no pidfd (an old kernel): ask without waiting */
    r = wait_locked(p, 0);
    r = r == 0 ? 1 : r == MPROC_ETIMEDOUT ? 0 : r;
  }
  pthread_mutex_unlock(&p->lock);
  return r;
}

int mproc_process_pid(const mproc_process *p) { return p ? (int)p->pid : MPROC_EINVAL; }

const char *mproc_process_name(const mproc_process *p) { return p ? p->name : NULL; }

int mproc_process_destroy(mproc_process *p) {
  if (!p) return 0;
  if (p->owner == getpid()) {
    pthread_mutex_lock(&p->lock);
    int r = wait_locked(p, 0);
    pthread_mutex_unlock(&p->lock);
    if (r == MPROC_ETIMEDOUT) return MPROC_EBUSY;
    pthread_mutex_lock(&registry.lock);
    if (p->prev)
      p->prev->next = p->next;
    else if (registry.head == p)
      registry.head = p->next;
    if (p->next) p->next->prev = p->prev;
    pthread_mutex_unlock(&registry.lock);
  }
  /* A copy inherited by a child is not on that child's registry: just free it. */
  close_pidfd(p);
  pthread_mutex_destroy(&p->lock);
  mproc__free(p->name);
  mproc__free(p);
  return 0;
}
