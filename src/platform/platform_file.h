/* platform_file.h: the file-system calls of the result cache (src/cache/cache.c), besides those of the
 * injection table mproc__plat_sys (openat, read, write, renameat, fsync, mmap), which the cache calls
 * directly.  Every function returns 0 (or a descriptor, a count) or a negative errno, and retries EINTR. */
#ifndef MPROC_PLATFORM_FILE_H
#define MPROC_PLATFORM_FILE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* openat through mproc__plat_sys.openat (always close-on-exec).  The descriptor or a negative errno. */
int mproc__plat_openat(int dirfd, const char *path, int flags, mode_t mode);
/* A descriptor that names the directory at path (relative to dirfd) for use as the dirfd of *at calls only:
 * it needs search permission on the path but no read permission on the directory (O_PATH on Linux). */
int mproc__plat_dir_handle(int dirfd, const char *path);
int mproc__plat_fstat(int fd, struct stat *st);
/* The status of path relative to dirfd, not following a final symbolic link. */
int mproc__plat_lstatat(int dirfd, const char *path, struct stat *st);
int mproc__plat_mkdirat(int dirfd, const char *path, mode_t mode);
/* flags: 0 or AT_REMOVEDIR. */
int mproc__plat_unlinkat(int dirfd, const char *path, int flags);
/* Sets the file's access and modification times to now. */
int mproc__plat_touch(int fd);
/* Calls visit(ctx, name) for every name but "." and ".." in the directory at path relative to dirfd (opened
 * without following a final symbolic link); visit returns nonzero to stop.  0 or a negative errno. */
int mproc__plat_dir_each(int dirfd, const char *path, int (*visit)(void *ctx, const char *name), void *ctx);

/* Makes descriptor target refer to what fd refers to, atomically (threads using target see the old file or
 * the new one, never a closed descriptor), close-on-exec; fd stays open.  0 or a negative errno. */
int mproc__plat_replace_fd(int fd, int target);
/* Asks for huge pages for the anonymous mapping [addr, addr+len) (a hint; errors are ignored). */
void mproc__plat_advise_huge(void *addr, size_t len);

uid_t mproc__plat_euid(void);
pid_t mproc__plat_pid(void);
/* CLOCK_REALTIME in nanoseconds since the epoch. */
int64_t mproc__plat_realtime_ns(void);

/* Writing past RLIMIT_FSIZE raises SIGXFSZ, whose default action ends the process; while it is blocked the
 * write fails with EFBIG instead.  mproc__plat_xfsz_hold blocks it in the calling thread (only there: the
 * process's disposition is untouched, so this is thread-safe); mproc__plat_xfsz_release restores the mask,
 * first taking away a SIGXFSZ that became pending meanwhile (one that was already pending, or already
 * blocked by the caller, is left alone). */
typedef struct mproc__plat_xfsz_guard {
  sigset_t old;
  int held, pending_before;
} mproc__plat_xfsz_guard;
void mproc__plat_xfsz_hold(mproc__plat_xfsz_guard *g);
void mproc__plat_xfsz_release(mproc__plat_xfsz_guard *g);

#endif
