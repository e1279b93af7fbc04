/* platform_sync.c: futex waits, the robust process-shared mutex, and shared memory for Linux. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "platform/platform.h"

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(((mproc__plat_mutex *)0)->opaque),
               "mproc__plat_mutex too small");

bool mproc__plat_rel_timespec(double timeout, struct timespec *ts) {
  if (mproc__plat_timeout_forever(timeout) || !(timeout >= 0)) return false;
  double whole = floor(timeout);
  ts->tv_sec = (time_t)whole;
  ts->tv_nsec = (long)((timeout - whole) * 1e9);
  if (ts->tv_nsec >= 1000000000L) ts->tv_nsec = 999999999L; /* rounding up: stay a valid timespec */
  if (ts->tv_nsec < 0) ts->tv_nsec = 0;
  return true;
}

bool mproc__plat_abs_timespec(double timeout, struct timespec *ts) {
  struct timespec rel;
  if (!mproc__plat_rel_timespec(timeout, &rel)) return false;
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += rel.tv_sec;
  ts->tv_nsec += rel.tv_nsec;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
  return true;
}

int mproc__plat_futex_wait(uint32_t *addr, uint32_t expected, double timeout) {
  struct timespec rel, *tsp = NULL;
  if (mproc__plat_rel_timespec(timeout, &rel)) tsp = &rel;
  long r = mproc__plat_sys.futex_wait(addr, expected, tsp);
  if (r == 0) return 0;
  if (errno == EAGAIN) return 0; /* value already changed */
  if (errno == ETIMEDOUT) return -ETIMEDOUT;
  if (errno == EINTR) return -EINTR;
  return -errno;
}

int mproc__plat_futex_wake(uint32_t *addr, int n) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
  return r < 0 ? -errno : (int)r;
}

int mproc__plat_futex_wait_any(uint32_t *const *words, const uint32_t *expected, size_t n, double timeout) {
#if defined(SYS_futex_waitv) && defined(FUTEX_32)
  if (n > MPROC__PLAT_WAIT_ANY_MAX) return -E2BIG;
  struct futex_waitv w[MPROC__PLAT_WAIT_ANY_MAX];
  for (size_t i = 0; i < n; i++)
    w[i] = (struct futex_waitv){.val = expected[i], .uaddr = (uintptr_t)words[i], .flags = FUTEX_32};
  struct timespec abs, *tsp = NULL;
  if (mproc__plat_abs_timespec(timeout, &abs)) tsp = &abs;
  long r = mproc__plat_sys.futex_waitv(w, (unsigned)n, tsp);
  if (r >= 0) return 0;
  if (errno == EAGAIN) return 0; /* a value had already changed */
  if (errno == ETIMEDOUT) return -ETIMEDOUT;
  if (errno == EINTR) return -EINTR;
  return -errno;
#else
  (void)words, (void)expected, (void)n, (void)timeout;
  return -ENOSYS;
#endif
}

int mproc__plat_event_create(void) {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd >= 0 ? fd : -errno;
}

int mproc__plat_event_signal(int fd) {
  for (;;) {
    if (eventfd_write(fd, 1) == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int mproc__plat_thread_start(pthread_t *t, void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits the mask */
  int r = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return -r;
}

static int mutex_init(mproc__plat_mutex *m, int type) {
  pthread_mutexattr_t a;
  int r = pthread_mutexattr_init(&a);
  if (r) return -r;
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&a, type);
  memset(m, 0, sizeof *m);
  r = pthread_mutex_init((pthread_mutex_t *)(void *)m->opaque, &a);
  pthread_mutexattr_destroy(&a);
  return -r;
}

int mproc__plat_mutex_init(mproc__plat_mutex *m) { return mutex_init(m, PTHREAD_MUTEX_ERRORCHECK); }
int mproc__plat_mutex_init_recursive(mproc__plat_mutex *m) { return mutex_init(m, PTHREAD_MUTEX_RECURSIVE); }

void mproc__plat_mutex_destroy(mproc__plat_mutex *m) {
  pthread_mutex_destroy((pthread_mutex_t *)(void *)m->opaque);
}

int mproc__plat_mutex_lock(mproc__plat_mutex *m, double timeout) {
  pthread_mutex_t *pm = (pthread_mutex_t *)(void *)m->opaque;
  int r;
  struct timespec ts;
  if (!mproc__plat_abs_timespec(timeout, &ts)) {
    r = pthread_mutex_lock(pm);
  } else if (timeout == 0) {
    r = pthread_mutex_trylock(pm);
    if (r == EBUSY) r = ETIMEDOUT;
  } else {
    r = pthread_mutex_trylock(pm);
    if (r == EBUSY) r = pthread_mutex_clocklock(pm, CLOCK_MONOTONIC, &ts);
  }
  return -r;
}

int mproc__plat_mutex_unlock(mproc__plat_mutex *m) {
  return -pthread_mutex_unlock((pthread_mutex_t *)(void *)m->opaque);
}

/* The calling thread's id, cached: gettid() is a system call, and a release asks for it.  A forked child
 * starts from its parent's cache, which the fork handler clears. */
static __thread pid_t tid_cache;
static pthread_once_t tid_once = PTHREAD_ONCE_INIT;
static void tid_forget(void) { tid_cache = 0; }
static void tid_setup(void) { pthread_atfork(NULL, NULL, tid_forget); }

static pid_t my_tid(void) {
  if (!tid_cache) {
    pthread_once(&tid_once, tid_setup);
    tid_cache = gettid();
  }
  return tid_cache;
}

bool mproc__plat_mutex_held(mproc__plat_mutex *m) {
  /* glibc's own test in pthread_mutex_unlock for robust mutexes: the lock word holds the owner's thread
   * id; the kernel clears it when the owner dies */
  const pthread_mutex_t *pm = (const pthread_mutex_t *)(const void *)m->opaque;
  int word = __atomic_load_n(&pm->__data.__lock, __ATOMIC_RELAXED);
  return (word & FUTEX_TID_MASK) == my_tid();
}

int mproc__plat_mutex_consistent(mproc__plat_mutex *m) {
  return -pthread_mutex_consistent((pthread_mutex_t *)(void *)m->opaque);
}

/* ftruncate through mproc__plat_sys, again when a signal interrupted it (it may sleep for memory). */
static int ftruncate_retrying(int fd, off_t size) {
  int r;
  while ((r = mproc__plat_sys.ftruncate(fd, size)) != 0 && errno == EINTR) {
  }
  return r;
}

int mproc__plat_shm_create_fd(const char *debug_name, size_t size) {
  int fd = mproc__plat_sys.memfd_create(debug_name ? debug_name : "mproc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  if (ftruncate_retrying(fd, (off_t)size) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int mproc__plat_shm_open_named(const char *name, int create, size_t *size) {
  char path[256];
  if (snprintf(path, sizeof path, "/%s", name) >= (int)sizeof path) return -ENAMETOOLONG;
  int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0);
  int fd = shm_open(path, flags, 0600);
  if (fd < 0) return -errno;
  if (create) {
    if (ftruncate_retrying(fd, (off_t)*size) != 0) {
      int err = errno;
      close(fd);
      shm_unlink(path);
      return -err;
    }
  } else {
    long long s = mproc__plat_fd_size(fd);
    if (s < 0) {
      close(fd);
      return (int)s;
    }
    *size = (size_t)s;
  }
  return fd;
}

int mproc__plat_shm_unlink_named(const char *name) {
  char path[256];
  if (snprintf(path, sizeof path, "/%s", name) >= (int)sizeof path) return -ENAMETOOLONG;
  return shm_unlink(path) == 0 ? 0 : -errno;
}

void *mproc__plat_shm_map(int fd, size_t size, int *err) {
  void *p = mproc__plat_sys.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    *err = -errno;
    return NULL;
  }
  return p;
}

void *mproc__plat_shm_map_anon(size_t size, int *err) {
  void *p = mproc__plat_sys.mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = -errno;
    return NULL;
  }
  return p;
}

int mproc__plat_shm_unmap(void *addr, size_t size) { return munmap(addr, size) == 0 ? 0 : -errno; }

int mproc__plat_shm_discard(int fd, size_t off, size_t len) {
  if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0) return -errno;
  return 0;
}

int mproc__plat_prefault(void *addr, size_t len, int write) {
  if (len == 0) return 0;
#if defined(MADV_POPULATE_READ) && defined(MADV_POPULATE_WRITE)
  uintptr_t page = (uintptr_t)mproc__plat_page_size(), lo = (uintptr_t)addr & ~(page - 1);
  return madvise((void *)lo, (uintptr_t)addr + len - lo, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) ==
                 0
             ? 0
             : -errno;
#else
  (void)addr, (void)write;
  return -EINVAL;
#endif
}

size_t mproc__plat_phys_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : 0;
}

long long mproc__plat_fd_size(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  return (long long)st.st_size;
}

size_t mproc__plat_page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096;
}

int mproc__plat_send_fds(int sock, const int *fds, int nfds, const void *data, size_t len) {
  if (nfds < 0 || nfds > 4) return -EINVAL;
  char dummy = 0;
  struct iovec iov = {.iov_base = len ? (void *)data : &dummy, .iov_len = len ? len : 1};
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
  }
  for (;;) {
    ssize_t r = mproc__plat_sys.sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (r >= 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int mproc__plat_recv_fds(int sock, int *fds, int *nfds, void *data, size_t len) {
  char dummy;
  struct iovec iov = {.iov_base = len ? data : &dummy, .iov_len = len ? len : 1};
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t r;
  do {
    r = mproc__plat_sys.recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (r == 0) return -ECONNRESET;
  int got = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < n; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof fd);
        if (got < *nfds)
          fds[got++] = fd;
        else
          close(fd);
      }
    }
  }
  *nfds = got;
  return 0;
}

void *mproc__plat_shm_map_at(void *addr, int fd, size_t size, int *err) {
  void *p = mproc__plat_sys.mmap(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  if (p == MAP_FAILED) {
    *err = -errno;
    return NULL;
  }
  if (p != addr) { /* a kernel too old for MAP_FIXED_NOREPLACE treats it as a hint */
    munmap(p, size);
    *err = -EEXIST;
    return NULL;
  }
  return p;
}

int mproc__plat_pidfd_open(pid_t pid) {
  int fd = mproc__plat_sys.pidfd_open(pid, 0);
  return fd >= 0 ? fd : -errno;
}

int mproc__plat_send_fd(int sock, int fd, const void *data, size_t len) {
  return mproc__plat_send_fds(sock, &fd, 1, data, len);
}

int mproc__plat_recv_fd(int sock, int *fd, void *data, size_t len) {
  int n = 1;
  int r = mproc__plat_recv_fds(sock, fd, &n, data, len);
  if (r < 0) return r;
  return n == 1 ? 0 : -EBADMSG; /* a message that carried no descriptor */
}
