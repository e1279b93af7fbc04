/* platform_linux.c: the Linux implementation of platform.h (pidfd, prctl, affinity, cgroups). */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <stdbool.h>

#include "platform/platform.h"

static int real_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
static int real_openat(int dirfd, const char *path, int flags, mode_t mode) {
  return openat(dirfd, path, flags, mode);
}
static int real_memfd_create(const char *name, unsigned flags) { return memfd_create(name, flags); }
static int real_pidfd_open(pid_t pid, unsigned flags) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, flags);
#else
  (void)pid, (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

static int real_futex_wait(uint32_t *addr, uint32_t expected, const struct timespec *rel) {
  /* Not FUTEX_PRIVATE_FLAG: the word may be shared between processes. */
  return (int)syscall(SYS_futex, addr, FUTEX_WAIT, expected, rel, NULL, 0);
}
static int real_futex_waitv(void *waiters, unsigned n, const struct timespec *abs) {
#ifdef SYS_futex_waitv
  return (int)syscall(SYS_futex_waitv, waiters, n, 0, abs, CLOCK_MONOTONIC);
#else
  (void)waiters, (void)n, (void)abs;
  errno = ENOSYS;
  return -1;
#endif
}

/* The real calls, named once: the table starts with them and a reset puts them back. */
#define REAL_SYSCALLS                                                                                       \
  {                                                                                                         \
    .fork = fork, .pipe2 = real_pipe2, .mmap = mmap, .openat = real_openat, .read = read, .write = write,   \
    .renameat = renameat, .fsync = fsync, .memfd_create = real_memfd_create, .ftruncate = ftruncate,        \
    .pidfd_open = real_pidfd_open, .send = send, .ppoll = ppoll, .waitpid = waitpid, .recv = recv,          \
    .recvmsg = recvmsg, .sendmsg = sendmsg, .futex_wait = real_futex_wait, .futex_waitv = real_futex_waitv, \
  }

struct mproc__plat_syscalls mproc__plat_sys = REAL_SYSCALLS;

void mproc__plat_syscalls_reset(void) {
  /* Entry by entry, and only those that differ: the threads of live pools read the others meanwhile (a
   * manager sleeping in futex_wait), and a write of the same value would still race with those reads. */
  static const struct mproc__plat_syscalls real = REAL_SYSCALLS;
  typedef void (*entry)(void);
  unsigned char *cur = (unsigned char *)&mproc__plat_sys;
  const unsigned char *want = (const unsigned char *)&real;
  for (size_t off = 0; off + sizeof(entry) <= sizeof real; off += sizeof(entry))
    if (memcmp(cur + off, want + off, sizeof(entry)) != 0) memcpy(cur + off, want + off, sizeof(entry));
}

double mproc__plat_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mproc__plat_close(int fd) {
  if (fd < 0) return;
  int saved = errno;
  close(fd);
  errno = saved;
}

/* pidfds are close-on-exec from birth; -1 where the kernel has none */
static int pidfd_open_compat(pid_t pid) {
  int fd = mproc__plat_pidfd_open(pid);
  return fd >= 0 ? fd : -1;
}

/* The descriptor of mproc__plat_child_events_open in this process (-1: none), and whether SIGCHLD was
 * blocked before it blocked it: a child forked afterwards closes the one and restores the other. */
static struct {
  int fd;
  bool was_blocked;
} child_events = {-1, false};

int mproc__plat_child_events_open(void) {
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, &old) != 0) return -errno;
  int fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return -err;
  }
  child_events.fd = fd;
  child_events.was_blocked = sigismember(&old, SIGCHLD) == 1;
  return fd;
}

void mproc__plat_child_events_drain(int fd) {
  struct signalfd_siginfo si[8];
  while (read(fd, si, sizeof si) > 0) {
  }
}

/* Everything the child does before running its function: only async-signal-safe calls until it restores
 * the signal mask, because the parent may have had other threads at the fork. */
static int spawn(pid_t *pid_out, int *pidfd_out, void (*child_fn)(void *ctx), void *ctx, bool reset_signals,
                 bool deathsig, uint32_t *announce) {
  /* Output the caller has buffered would otherwise be copied into the child and written again by it (and
   * by every worker forked from it) when it flushes: write it out once, now. */
  fflush(NULL);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = mproc__plat_sys.fork();
  if (pid < 0) {
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -err;
  }
  if (pid == 0) {
    if (announce) {
      __atomic_store_n(announce, (uint32_t)getpid(), __ATOMIC_RELEASE);
      mproc__plat_futex_wake(announce, INT32_MAX);
    }
    if (deathsig) prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* the parent died before PDEATHSIG took effect: end as if it had fired */
    if (getppid() != parent) raise(SIGKILL);
    for (int sig = 1; reset_signals && sig < NSIG; sig++) {
      struct sigaction sa;
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      if (sigaction(sig, NULL, &sa) != 0) continue;
      if (sa.sa_handler != SIG_IGN && sa.sa_handler != SIG_DFL) {
        sa.sa_handler = SIG_DFL;
        sa.sa_flags = 0;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
      }
    }
    if (child_events.fd >= 0) { /* the parent's, not the child's */
      close(child_events.fd);
      child_events.fd = -1;
      if (!child_events.was_blocked) sigdelset(&old, SIGCHLD);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    child_fn(ctx);
    _exit(0); /* child_fn must not return; be safe if it does */
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  *pid_out = pid;
  *pidfd_out = pidfd_open_compat(pid);
  return 0;
}

int mproc__plat_watch_parent(pid_t parent) {
  int fd = pidfd_open_compat(parent);
  if (fd < 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    return -1;
  }
  /* the pidfd is the parent's only if it was still our parent after it was opened */
  if (getppid() != parent) _exit(0);
  prctl(PR_SET_PDEATHSIG, 0);
  return fd;
}

int mproc__plat_spawn(pid_t *pid, int *pidfd, void (*child_fn)(void *ctx), void *ctx) {
  return spawn(pid, pidfd, child_fn, ctx, true, true, NULL);
}

int mproc__plat_spawn_announced(pid_t *pid, int *pidfd, void (*child_fn)(void *ctx), void *ctx,
                                bool reset_signals, uint32_t *announce) {
  return spawn(pid, pidfd, child_fn, ctx, reset_signals, true, announce);
}

int mproc__plat_spawn_unbound(pid_t *pid, int *pidfd, void (*child_fn)(void *ctx), void *ctx) {
  return spawn(pid, pidfd, child_fn, ctx, true, false, NULL);
}

bool mproc__plat_is_subreaper(void) {
  int on = 0;
  return prctl(PR_GET_CHILD_SUBREAPER, &on) == 0 && on;
}

int mproc__plat_poll_fd(int fd, short events, double timeout) {
  double deadline = mproc__plat_timeout_forever(timeout) ? INFINITY : mproc__plat_now() + timeout;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = events};
    struct timespec ts, *tsp = NULL;
    if (!isinf(deadline)) {
      double left = deadline - mproc__plat_now();
      if (mproc__plat_rel_timespec(left > 0 ? left : 0, &ts)) tsp = &ts;
    }
    int r = mproc__plat_sys.ppoll(&p, 1, tsp, NULL);
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int mproc__plat_wait(pid_t pid, int pidfd, double timeout, int *wstatus) {
  double deadline = mproc__plat_timeout_forever(timeout) ? INFINITY : mproc__plat_now() + timeout;
  double backoff = 0.0005;
  for (;;) {
    int st = 0;
    pid_t r = mproc__plat_sys.waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      *wstatus = st;
      return 0;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    double left = isinf(deadline) ? -1.0 : deadline - mproc__plat_now();
    if (!isinf(deadline) && left <= 0) return -ETIMEDOUT;
    if (pidfd >= 0) {
      int p = mproc__plat_poll_fd(pidfd, POLLIN, left);
      if (p < 0) return p;
      continue; /* readable (ended) or timed out: the next round tells which */
    }
    if (isinf(deadline)) { /* no pidfd (an old kernel) and no deadline: the wait itself blocks */
      r = waitpid(pid, &st, 0);
      if (r == pid) {
        *wstatus = st;
        return 0;
      }
      if (r < 0 && errno != EINTR) return -errno;
      continue;
    }
    /* No pidfd (old kernel): back off between polls, bounded by the deadline. */
    double nap = backoff;
    if (left >= 0 && nap > left) nap = left;
    struct timespec ts;
    if (mproc__plat_rel_timespec(nap, &ts)) nanosleep(&ts, NULL);
    if (backoff < 0.01) backoff *= 2;
  }
}

int mproc__plat_wait_gone(pid_t pid, double timeout) {
  double deadline = mproc__plat_now() + timeout, backoff = 0.0005;
  while (kill(pid, 0) == 0 || errno != ESRCH) {
    double left = deadline - mproc__plat_now();
    if (left <= 0) return -ETIMEDOUT;
    struct timespec ts;
    if (mproc__plat_rel_timespec(backoff < left ? backoff : left, &ts)) nanosleep(&ts, NULL);
    if (backoff < 0.01) backoff *= 2;
  }
  return 0;
}

int mproc__plat_signal(pid_t pid, int pidfd, int sig) {
#ifdef SYS_pidfd_send_signal
  if (pidfd >= 0) {
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) == 0) return 0;
    if (errno != ENOSYS) return -errno;
  }
#endif
  return kill(pid, sig) == 0 ? 0 : -errno;
}

int mproc__plat_affinity_count(void) {
  for (int ncpu = 1024; ncpu <= (1 << 18); ncpu *= 2) {
    cpu_set_t *set = CPU_ALLOC(ncpu);
    if (!set) break;
    size_t size = CPU_ALLOC_SIZE(ncpu);
    CPU_ZERO_S(size, set);
    if (sched_getaffinity(0, size, set) == 0) {
      int n = CPU_COUNT_S(size, set);
      CPU_FREE(set);
      return n > 0 ? n : 1;
    }
    int err = errno;
    CPU_FREE(set);
    if (err != EINVAL) break; /* EINVAL: the mask is too small for this kernel; grow it */
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* Reads a small file whole into buf (NUL-terminated).  0 or -1. */
static int read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, buf + got, cap - 1 - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
    if (got == cap - 1) break;
  }
  close(fd);
  buf[got] = '\0';
  return 0;
}

/* v2: "max 100000" or "QUOTA PERIOD". */
static double parse_cpu_max(const char *text) {
  char quota[32];
  long long period = 0;
  if (sscanf(text, "%31s %lld", quota, &period) != 2 || period <= 0) return 0;
  if (strcmp(quota, "max") == 0) return 0;
  char *end;
  long long q = strtoll(quota, &end, 10);
  if (end == quota || q <= 0) return 0;
  return (double)q / (double)period;
}

/* Walks from dir (an absolute cgroup path under base) up to base, applying read_limit at each level and
 * keeping the smallest positive limit. */
static double walk_up(const char *base, const char *cgpath, double (*read_limit)(const char *dir)) {
  char dir[4096];
  double best = 0;
  if (snprintf(dir, sizeof dir, "%s%s", base, cgpath) >= (int)sizeof dir) return 0;
  size_t base_len = strlen(base);
  for (;;) {
    size_t len = strlen(dir);
    while (len > base_len && dir[len - 1] == '/') dir[--len] = '\0';
    double lim = read_limit(dir);
    if (lim > 0 && (best == 0 || lim < best)) best = lim;
    if (len <= base_len) break;
    char *slash = strrchr(dir + base_len, '/');
    if (!slash) {
      dir[base_len] = '\0';
    } else {
      *slash = '\0';
    }
  }
  return best;
}

static double read_v2_limit(const char *dir) {
  char path[4200], buf[128];
  snprintf(path, sizeof path, "%s/cpu.max", dir);
  if (read_small(path, buf, sizeof buf) != 0) return 0;
  return parse_cpu_max(buf);
}

static double read_v1_limit(const char *dir) {
  char path[4200], buf[64];
  snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
  if (read_small(path, buf, sizeof buf) != 0) return 0;
  long long quota = strtoll(buf, NULL, 10);
  snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
  if (read_small(path, buf, sizeof buf) != 0) return 0;
  long long period = strtoll(buf, NULL, 10);
  if (quota <= 0 || period <= 0) return 0;
  return (double)quota / (double)period;
}

static int dir_exists(const char *path) { return access(path, F_OK) == 0; }

double mproc__plat_cgroup_cpu_limit(const char *proc_cgroup, const char *cgroup_root) {
  char text[8192];
  if (read_small(proc_cgroup, text, sizeof text) != 0) return 0;
  double best = 0;
  /* strtok_r: mproc_cpu_count() runs in any thread (pools made in tasks of the thread backend, say), and
   * strtok keeps its place in one static pointer for the whole process */
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *c1 = strchr(line, ':');
    if (!c1) continue;
    char *c2 = strchr(c1 + 1, ':');
    if (!c2) continue;
    *c1 = '\0';
    *c2 = '\0';
    const char *controllers = c1 + 1, *path = c2 + 1;
    double lim = 0;
    char base[4096];
    if (strcmp(line, "0") == 0 && *controllers == '\0') {
      /* cgroup v2: unified hierarchy at the root, or under unified/ on a hybrid system */
      snprintf(base, sizeof base, "%s", cgroup_root);
      lim = walk_up(base, path, read_v2_limit);
      if (lim == 0) {
        snprintf(base, sizeof base, "%s/unified", cgroup_root);
        if (dir_exists(base)) lim = walk_up(base, path, read_v2_limit);
      }
    } else {
      /* cgroup v1: only the hierarchy that carries the cpu controller */
      char list[256];
      snprintf(list, sizeof list, ",%s,", controllers);
      if (!strstr(list, ",cpu,")) continue;
      static const char *const mounts[] = {"cpu,cpuacct", "cpu", "cpuacct,cpu"};
      for (size_t i = 0; i < sizeof mounts / sizeof *mounts && lim == 0; i++) {
        snprintf(base, sizeof base, "%s/%s", cgroup_root, mounts[i]);
        if (dir_exists(base)) lim = walk_up(base, path, read_v1_limit);
      }
    }
    if (lim > 0 && (best == 0 || lim < best)) best = lim;
  }
  return best;
}

int mproc__plat_cpu_count_combine(int affinity, double limit) {
  int n = affinity > 0 ? affinity : 1;
  if (limit > 0) {
    double c = ceil(limit - 1e-9);
    if (c < 1) c = 1;
    if (c < n) n = (int)c;
  }
  return n;
}

/* ---- a fresh image of the running program ---- */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct exec_ctx {
  char *const *argv, *const *envp;
  const int *keep;
  int nkeep;
  int errfd; /* close-on-exec: the exec's errno is written to it if the exec fails */
};

/* In the child of a possibly multi-threaded parent: async-signal-safe calls only. */
static void exec_self_child(void *vctx) {
  const struct exec_ctx *c = vctx;
  /* nothing of the caller's passes but what is named: mark every descriptor from 3 up close-on-exec */
  long r = -1;
#ifdef SYS_close_range
  r = syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
#endif
  if (r != 0) {
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 65536;
    if (max > 65536) max = 65536;
    for (int fd = 3; fd < max; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  for (int i = 0; i < c->nkeep; i++) fcntl(c->keep[i], F_SETFD, 0);
  execve("/proc/self/exe", c->argv, c->envp);
  int err = errno;
  while (write(c->errfd, &err, sizeof err) < 0 && errno == EINTR) {
  }
  _exit(127);
}

int mproc__plat_spawn_exec_self(pid_t *pid, int *pidfd, const char *env_entry, const int *keep, int nkeep) {
  /* the environment and argv are built before the fork: the child may not allocate */
  extern char **environ;
  const char *eq = strchr(env_entry, '=');
  size_t name_len = eq ? (size_t)(eq - env_entry) : strlen(env_entry);
  size_t n = 0;
  for (char **e = environ; e && *e; e++) n++;
  char **envp = malloc((n + 2) * sizeof *envp);
  if (!envp) return -ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], env_entry, name_len) != 0 || environ[i][name_len] != '=') envp[k++] = environ[i];
  envp[k++] = (char *)env_entry;
  envp[k] = NULL;
  char *argv[2] = {program_invocation_name && *program_invocation_name ? program_invocation_name : "mproc",
                   NULL};
  int ep[2];
  if (mproc__plat_sys.pipe2(ep, O_CLOEXEC) != 0) {
    int err = -errno;
    free(envp);
    return err;
  }
  struct exec_ctx c = {argv, envp, keep, nkeep, ep[1]};
  int r = spawn(pid, pidfd, exec_self_child, &c, true, true, NULL);
  close(ep[1]);
  free(envp);
  if (r < 0) {
    close(ep[0]);
    return r;
  }
  /* end of file: the exec happened (the pipe closed with it); else its errno */
  int err = 0;
  ssize_t got;
  do {
    got = read(ep[0], &err, sizeof err);
  } while (got < 0 && errno == EINTR);
  close(ep[0]);
  if (got == (ssize_t)sizeof err) {
    int st;
    mproc__plat_wait(*pid, *pidfd, -1, &st);
    mproc__plat_close(*pidfd);
    *pidfd = -1;
    *pid = 0;
    return err > 0 ? -err : -ECHILD;
  }
  return 0;
}

/* ---- sockets, descriptors, signals ---- */

int mproc__plat_socketpair(int kind, int sv[2]) {
  int type = kind == MPROC__PLAT_SOCK_MSG ? SOCK_SEQPACKET : SOCK_STREAM;
  if (kind != MPROC__PLAT_SOCK_MSG && kind != MPROC__PLAT_SOCK_STREAM && kind != MPROC__PLAT_SOCK_ONEWAY)
    return -EINVAL;
  if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  if (kind == MPROC__PLAT_SOCK_ONEWAY && (shutdown(sv[0], SHUT_WR) != 0 || shutdown(sv[1], SHUT_RD) != 0)) {
    int err = -errno;
    mproc__plat_close(sv[0]);
    mproc__plat_close(sv[1]);
    sv[0] = sv[1] = -1;
    return err;
  }
  return 0;
}

int mproc__plat_send_msg(int sock, const void *buf, size_t len, bool wait) {
  int flags = MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT);
  for (;;) {
    ssize_t r = mproc__plat_sys.send(sock, buf, len, flags);
    if (r >= 0) return (size_t)r == len ? 0 : -EMSGSIZE;
    if (errno != EINTR) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

ssize_t mproc__plat_recv_msg(int sock, void *buf, size_t len, bool wait) {
  for (;;) {
    ssize_t r = mproc__plat_sys.recv(sock, buf, len, wait ? 0 : MSG_DONTWAIT);
    if (r >= 0) return r;
    if (errno != EINTR) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

bool mproc__plat_sock_at_eof(int sock) {
  char c;
  ssize_t r;
  do {
    r = mproc__plat_sys.recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  return r == 0;
}

ssize_t mproc__plat_send2_nowait(int sock, const void *a, size_t alen, const void *b, size_t blen) {
  struct iovec iov[2];
  int cnt = 0;
  if (alen) iov[cnt++] = (struct iovec){(void *)a, alen};
  if (blen) iov[cnt++] = (struct iovec){(void *)b, blen};
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
  for (;;) {
    ssize_t r = mproc__plat_sys.sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) return r;
    if (errno != EINTR) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  }
}

int mproc__plat_sock_hangup(int sock) { return shutdown(sock, SHUT_RDWR) == 0 ? 0 : -errno; }

int mproc__plat_poll(struct pollfd *fds, size_t n, double timeout) {
  double deadline = timeout < 0 ? INFINITY : mproc__plat_now() + timeout;
  for (;;) {
    struct timespec ts, *tsp = NULL;
    if (!isinf(deadline)) {
      double left = deadline - mproc__plat_now();
      if (left < 0) left = 0;
      ts.tv_sec = (time_t)left;
      ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
      tsp = &ts;
    }
    int r = mproc__plat_sys.ppoll(fds, (nfds_t)n, tsp, NULL);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

int mproc__plat_set_cloexec(int fd, bool on) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return -errno;
  flags = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  return fcntl(fd, F_SETFD, flags) == 0 ? 0 : -errno;
}

int mproc__plat_precise_timers(void) { return prctl(PR_SET_TIMERSLACK, 1000UL) == 0 ? 0 : -errno; }

int mproc__plat_ignore_signal(int sig) {
  struct sigaction sa = {.sa_handler = SIG_IGN};
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL) == 0 ? 0 : -errno;
}

bool mproc__plat_catch_signal_if_default(int sig, void (*handler)(int)) {
  struct sigaction old, sa = {.sa_handler = handler, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_DFL && sigaction(sig, &sa, NULL) == 0;
}

void mproc__plat_uncatch_signal(int sig, void (*handler)(int)) {
  struct sigaction cur, sa = {.sa_handler = SIG_DFL};
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, NULL, &cur) == 0 && cur.sa_handler == handler) sigaction(sig, &sa, NULL);
}

_Noreturn void mproc__plat_exit(int code) { _exit(code); }
