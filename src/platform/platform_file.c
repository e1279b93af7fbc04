/* platform_file.c: the file-system calls of platform.h (the result cache's), for Linux. */
#include "platform/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "platform/platform.h"

int mproc__plat_openat(int dirfd, const char *path, int flags, mode_t mode) {
  for (;;) {
    int fd = mproc__plat_sys.openat(dirfd, path, flags | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EINTR) return -errno;
  }
}

int mproc__plat_fsync(int fd) {
  for (;;) {
    if (mproc__plat_sys.fsync(fd) == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

int mproc__plat_dir_handle(int dirfd, const char *path) {
  int fd = openat(dirfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

int mproc__plat_fstat(int fd, struct stat *st) { return fstat(fd, st) == 0 ? 0 : -errno; }

int mproc__plat_lstatat(int dirfd, const char *path, struct stat *st) {
  return fstatat(dirfd, path, st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

int mproc__plat_mkdirat(int dirfd, const char *path, mode_t mode) {
  return mkdirat(dirfd, path, mode) == 0 ? 0 : -errno;
}

int mproc__plat_unlinkat(int dirfd, const char *path, int flags) {
  return unlinkat(dirfd, path, flags) == 0 ? 0 : -errno;
}

int mproc__plat_touch(int fd) { return futimens(fd, NULL) == 0 ? 0 : -errno; }

int mproc__plat_dir_each(int dirfd, const char *path, int (*visit)(void *ctx, const char *name), void *ctx) {
  int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  DIR *d = fdopendir(fd);
  if (!d) {
    int e = -errno;
    close(fd);
    return e;
  }
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 && visit(ctx, de->d_name)) break;
  closedir(d);
  return 0;
}

int mproc__plat_replace_fd(int fd, int target) {
  for (;;) {
    if (dup3(fd, target, O_CLOEXEC) >= 0) return 0;
    if (errno != EINTR && errno != EBUSY) return -errno;
  }
}

int mproc__plat_advise_huge(void *addr, size_t len) {
#ifdef MADV_HUGEPAGE
  /* madvise takes whole pages: the ones inside the range (a block from malloc starts past a page's start) */
  uintptr_t page = (uintptr_t)mproc__plat_page_size(), from = ((uintptr_t)addr + page - 1) & ~(page - 1),
            to = ((uintptr_t)addr + len) & ~(page - 1);
  if (to <= from) return 0;
  return madvise((void *)from, to - from, MADV_HUGEPAGE) == 0 ? 0 : -errno;
#else
  (void)addr, (void)len;
  return -ENOSYS;
#endif
}

uid_t mproc__plat_euid(void) { return geteuid(); }
pid_t mproc__plat_pid(void) { return getpid(); }

int64_t mproc__plat_realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void mproc__plat_xfsz_hold(mproc__plat_xfsz_guard *g) {
  sigset_t one, pending;
  sigemptyset(&one);
  sigaddset(&one, SIGXFSZ);
  pthread_sigmask(SIG_BLOCK, &one, &g->old);
  g->held = !sigismember(&g->old, SIGXFSZ);
  g->pending_before = sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ);
}

void mproc__plat_xfsz_release(mproc__plat_xfsz_guard *g) {
  if (!g->held) return; /* the caller blocks it: what is pending is the caller's business */
  sigset_t one, pending;
  sigemptyset(&one);
  sigaddset(&one, SIGXFSZ);
  if (!g->pending_before && sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&one, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
