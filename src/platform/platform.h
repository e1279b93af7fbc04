/* platform.h: the one door to the operating system.  Every Linux-specific call of mproc (pidfd, prctl,
 * sched_getaffinity, cgroup files, futex, memfd) sits behind these functions, implemented in
 * platform_linux.c, platform_sync.c, platform_file.c and platform_fnid.c; a macOS or BSD port replaces those
 * files and touches nothing above them.  Only POSIX headers are included here.  scripts/check-raw-calls.sh (a
 * ctest) fails when code outside src/platform/ makes such a call itself. */
#ifndef MPROC_PLATFORM_H
#define MPROC_PLATFORM_H

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The system calls that tests fail on purpose (SQLite's aSyscall[] idea): the library calls them through
 * this table, and a test may point an entry at a function that fails with EINTR, ENOSPC, EIO, EAGAIN...
 * and restore it afterwards.  Entries follow the libc convention: -1 and errno on failure.  The entries
 * after send are the waits a signal interrupts (EINTR), so that tests can check every caller retries. */
struct msghdr;
struct mproc__plat_syscalls {
  pid_t (*fork)(void);
  int (*pipe2)(int fds[2], int flags);
  void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
  int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
  ssize_t (*read)(int fd, void *buf, size_t len);
  ssize_t (*write)(int fd, const void *buf, size_t len);
  int (*renameat)(int fromdir, const char *from, int todir, const char *to);
  int (*fsync)(int fd);
  int (*memfd_create)(const char *name, unsigned flags);
  int (*ftruncate)(int fd, off_t len);
  int (*pidfd_open)(pid_t pid, unsigned flags); /* -1 and ENOSYS where the kernel has none */
  ssize_t (*send)(int sock, const void *buf, size_t len, int flags); /* the template protocol's messages */
  int (*ppoll)(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask);
  pid_t (*waitpid)(pid_t pid, int *status, int options);
  ssize_t (*recv)(int sock, void *buf, size_t len, int flags);
  ssize_t (*recvmsg)(int sock, struct msghdr *msg, int flags);
  ssize_t (*sendmsg)(int sock, const struct msghdr *msg, int flags);
  /* FUTEX_WAIT on a shared word (rel: relative, NULL forever) and futex_waitv (abs: CLOCK_MONOTONIC) */
  int (*futex_wait)(uint32_t *addr, uint32_t expected, const struct timespec *rel);
  int (*futex_waitv)(void *waiters, unsigned n, const struct timespec *abs);
};
extern struct mproc__plat_syscalls mproc__plat_sys;
/* Puts every entry of mproc__plat_sys back to the real call, writing only those that differ (threads of live
 * pools read the others meanwhile). */
void mproc__plat_syscalls_reset(void);

/* Monotonic clock in seconds. */
double mproc__plat_now(void);

/* Timeouts beyond any deadline the system can represent wait forever.  Linux counts a timer in signed
 * 64-bit nanoseconds, about 292 years; a longer timeout (1e300, DBL_MAX, INFINITY) would overflow time_t in
 * a conversion, so it is read as no deadline at all.  Every conversion of a timeout to a timespec goes
 * through the two calls below, and every deadline through mproc__deadline() (internal.h). */
#define MPROC__PLAT_TIMEOUT_MAX 9.2e9
static inline bool mproc__plat_timeout_forever(double timeout) {
  return timeout < 0 || timeout > MPROC__PLAT_TIMEOUT_MAX; /* NaN: not forever; callers reject it */
}
struct timespec;
/* A relative timeout as a timespec: false (ts untouched) when it waits forever. */
bool mproc__plat_rel_timespec(double timeout, struct timespec *ts);
/* The CLOCK_MONOTONIC time timeout seconds from now: false (ts untouched) when it waits forever. */
bool mproc__plat_abs_timespec(double timeout, struct timespec *ts);

/* ---- processes ---- */

/* Forks a child that runs child_fn(ctx) and must never return from it (it ends with _exit).  The caller's
 * stdio buffers are flushed first, so the child cannot write the caller's pending output again.  Signals are
 * blocked across the fork; in the child, caught signals are reset to their default, the caller's signal mask
 * is restored, and the child is set to receive SIGKILL when its parent dies (with a check against the race
 * of a parent that died before that took effect).  On success *pid is the child's pid and *pidfd a
 * close-on-exec pidfd for it, or -1 where the kernel has none.  Returns 0 or a negative errno. */
int mproc__plat_spawn(pid_t *pid, int *pidfd, void (*child_fn)(void *ctx), void *ctx);
/* As mproc__plat_spawn, for a parent that forks the workers of a pool: the child's first act, before
 * anything that could end it, stores its pid at *announce (a word in shared memory) and wakes the futex
 * waiters on it.  A parent killed in the middle of fork() dies before fork returns to it, so it can tell no
 * one of a child that did come to be; the announcement tells whoever inherits that orphan which process to
 * reap.  reset_signals false: the parent's caught signals are already all at their default (a pool's
 * template), so the child skips resetting them, a system call per signal. */
int mproc__plat_spawn_announced(pid_t *pid, int *pidfd, void (*child_fn)(void *ctx), void *ctx,
                                bool reset_signals, uint32_t *announce);
/* Whether this process is a child subreaper (PR_SET_CHILD_SUBREAPER): orphaned descendants then become its
 * children, and it must reap them or they stay zombies. */
bool mproc__plat_is_subreaper(void);
/* As mproc__plat_spawn, but with no parent-death signal: Linux ties that signal to the thread that forked
 * the child, so a child that must outlive that thread (a pool's template, made by whichever thread creates
 * the pool) would be killed if the thread ended before the child could turn the signal off.  The child
 * must call mproc__plat_watch_parent() before anything that must not outlive its parent process. */
int mproc__plat_spawn_unbound(pid_t *pid, int *pidfd, void (*child_fn)(void *ctx), void *ctx);

/* As mproc__plat_spawn, but the child executes the running program afresh (/proc/self/exe, argv[0] kept, no
 * other argument) with env_entry ("NAME=value", replacing any NAME in the environment) added: a new image,
 * laid out anew by ASLR.  Only descriptors 0-2 and the nkeep ones in keep[] pass into it (everything else
 * is made close-on-exec in the child, between fork and exec, where only async-signal-safe calls are made).
 * The parent-death signal is set, tied to the forking thread (see mproc__plat_spawn_unbound), and survives
 * the exec: the caller must wait until the new image has watched its parent (mproc__plat_watch_parent)
 * before that thread may end.  Returns once the exec has happened: 0, or a negative errno (the
 * fork's, or the exec's, the child then being reaped). */
int mproc__plat_spawn_exec_self(pid_t *pid, int *pidfd, const char *env_entry, const int *keep, int nkeep);

/* Waits for child pid to end, at most timeout seconds (< 0 forever, 0 poll).  On return 0, *wstatus holds
 * the waitpid status and the child is reaped.  -ETIMEDOUT when it is still running; -ECHILD when it is not
 * our child (or was reaped by someone else); -EINTR never (retried). */
int mproc__plat_wait(pid_t pid, int pidfd, double timeout, int *wstatus);

/* Sends sig to the child, through its pidfd when there is one (immune to pid reuse).  0 or negative errno. */
int mproc__plat_signal(pid_t pid, int pidfd, int sig);

/* Waits until fd is readable (events as poll's), at most timeout seconds.  1 ready, 0 timed out, <0 error. */
int mproc__plat_poll_fd(int fd, short events, double timeout);

/* Closes fd, keeping errno; ignores -1. */
void mproc__plat_close(int fd);

/* ---- CPUs ---- */

/* CPUs in this process's affinity mask (at least 1). */
int mproc__plat_affinity_count(void);

/* The CPU quota of the cgroup named in proc_cgroup (a file shaped as /proc/self/cgroup), looked up under
 * cgroup_root (as /sys/fs/cgroup), in CPUs (1.5 for "150000 100000"), the smallest along the path from
 * the process's cgroup up to the root; 0 when there is none or nothing can be read.  v2 and v1. */
double mproc__plat_cgroup_cpu_limit(const char *proc_cgroup, const char *cgroup_root);

/* min(affinity, ceil(limit)) but at least 1; limit <= 0 means none. */
int mproc__plat_cpu_count_combine(int affinity, double limit);

/* ---- waiting on a 32-bit word in shared memory (Linux futex) ---- */

/* Sleeps while *addr == expected, at most timeout seconds (< 0 forever).  Returns 0 when woken (or when the
 * value had already changed: callers always re-check), -ETIMEDOUT, or -EINTR when a signal arrived (callers
 * that must not be interrupted loop).  Works across processes on shared mappings. */
int mproc__plat_futex_wait(uint32_t *addr, uint32_t expected, double timeout);
/* Wakes at most n sleepers on addr (INT32_MAX for all).  Returns how many were woken, or negative errno. */
int mproc__plat_futex_wake(uint32_t *addr, int n);
/* Sleeps while every words[i] == expected[i], at most timeout seconds (< 0 forever): one sleep on up to
 * MPROC__PLAT_WAIT_ANY_MAX words (futex_waitv, Linux 5.16), woken by a futex_wake on any of them.  0 when
 * woken (or when a value had already changed), -ETIMEDOUT, -EINTR, -ENOSYS where the kernel has no such
 * call, -E2BIG for more words.  Shared words, as mproc__plat_futex_wait's. */
#define MPROC__PLAT_WAIT_ANY_MAX 128
int mproc__plat_futex_wait_any(uint32_t *const *words, const uint32_t *expected, size_t n, double timeout);

/* An event descriptor (eventfd): readable once signalled, until closed; close-on-exec.  The descriptor or
 * negative errno; mproc__plat_event_signal makes it readable (0 or negative errno). */
int mproc__plat_event_create(void);
int mproc__plat_event_signal(int fd);

/* Starts a thread running fn(arg) with every signal blocked in it, so that signals meant for the program
 * go to its own threads.  0 or negative errno. */
int mproc__plat_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* ---- a robust, process-shared mutex ----
 * Lives in shared memory; sizeof(mproc__plat_mutex) bytes, 8-aligned.  Built on glibc's robust
 * PTHREAD_PROCESS_SHARED mutex, which is futex-based (no system call when uncontended) and is the only way to
 * be on the kernel's robust list, which glibc owns.  When a holder dies, the next locker gets -EOWNERDEAD and
 * holds the lock; it must call mproc__plat_mutex_consistent() before unlocking, or the mutex becomes unusable
 * (-ENOTRECOVERABLE). */
typedef struct mproc__plat_mutex {
  _Alignas(8) unsigned char opaque[48];
} mproc__plat_mutex;
int mproc__plat_mutex_init(mproc__plat_mutex *m);           /* 0 or negative errno */
int mproc__plat_mutex_init_recursive(mproc__plat_mutex *m); /* the same, but its holder may lock it again */
void mproc__plat_mutex_destroy(mproc__plat_mutex *m);
/* 0, -EOWNERDEAD (locked; previous holder died), -ETIMEDOUT, -ENOTRECOVERABLE, -EDEADLK (already held by
 * this thread). */
int mproc__plat_mutex_lock(mproc__plat_mutex *m, double timeout);
int mproc__plat_mutex_unlock(mproc__plat_mutex *m); /* 0, or -EPERM when not held by the caller */
int mproc__plat_mutex_consistent(mproc__plat_mutex *m);
/* Whether the calling thread holds m (a lock that was not unlocked: the kernel forgets a dead holder). */
bool mproc__plat_mutex_held(mproc__plat_mutex *m);

/* ---- shared memory ---- */

/* Creates an anonymous memory file of size bytes (memfd: nothing in /dev/shm, freed with the last mapping
 * and descriptor), close-on-exec.  Returns the descriptor or negative errno. */
int mproc__plat_shm_create_fd(const char *debug_name, size_t size);
/* Creates a named POSIX shared memory object /name (O_EXCL, mode 0600) of size bytes, or opens an existing
 * one (create == 0: *size receives its size).  Returns the descriptor or negative errno. */
int mproc__plat_shm_open_named(const char *name, int create, size_t *size);
int mproc__plat_shm_unlink_named(const char *name); /* 0 or negative errno */
/* Maps size bytes of fd shared, read-write.  Returns the address, or NULL with *err set. */
void *mproc__plat_shm_map(int fd, size_t size, int *err);
/* Maps size bytes of anonymous shared memory (inherited by forked children; no descriptor). */
void *mproc__plat_shm_map_anon(size_t size, int *err);
int mproc__plat_shm_unmap(void *addr, size_t size);
/* Frees the pages of [off, off+len) of a memory file in every process that maps it (they read as zeros
 * again); the file keeps its size.  0 or negative errno. */
int mproc__plat_shm_discard(int fd, size_t off, size_t len);
/* Maps in the pages of [addr, addr+len) of a mapping now, for reading or (write) for writing, so the code
 * that then walks the range takes no page fault per page (MADV_POPULATE_*, Linux 5.14).  A hint: 0, or
 * negative errno (-EINVAL where the kernel lacks it, -EFAULT/-ENOMEM for a range not mapped so), which
 * callers may ignore; the range is then faulted in as it is used. */
int mproc__plat_prefault(void *addr, size_t len, int write);
/* Bytes of physical memory (0 when unknown). */
size_t mproc__plat_phys_memory(void);
/* Size of the file behind fd, or negative errno. */
long long mproc__plat_fd_size(int fd);
size_t mproc__plat_page_size(void);

/* Sends / receives one descriptor over a Unix socket (SCM_RIGHTS), with a few bytes of payload.  0 or
 * negative errno; the received descriptor is close-on-exec. */
int mproc__plat_send_fd(int sock, int fd, const void *data, size_t len);
int mproc__plat_recv_fd(int sock, int *fd, void *data, size_t len);
/* The same with up to 4 descriptors: *nfds is in/out on receive (how many arrived). */
int mproc__plat_send_fds(int sock, const int *fds, int nfds, const void *data, size_t len);
int mproc__plat_recv_fds(int sock, int *fds, int *nfds, void *data, size_t len);
/* Maps size bytes of fd shared at exactly addr, failing with -EEXIST rather than replacing anything. */
void *mproc__plat_shm_map_at(void *addr, int fd, size_t size, int *err);
/* A pidfd for any process (not only a child), or negative errno; through mproc__plat_sys.pidfd_open. */
int mproc__plat_pidfd_open(pid_t pid);
/* For a child of process `parent` (its pid before the fork): a descriptor that becomes readable when that
 * process ends.  A parent-death signal (which Linux ties to the thread that forked the child, not to its
 * process) is turned off, so the child outlives that thread but not the process.  The child exits at once
 * if its parent is already gone.  Where the kernel has no pidfds: -1, and the parent-death signal is set
 * (tied to the forking thread: the best there is). */
int mproc__plat_watch_parent(pid_t parent);
/* For a single-threaded process that waits in poll() for its children to end, where the kernel has no
 * pidfds (before Linux 5.3; also under valgrind 3.19, which does not know the call): blocks SIGCHLD and
 * returns a close-on-exec descriptor (a signalfd) that is readable once a child has ended since the last
 * mproc__plat_child_events_drain(fd); the caller then asks each child with mproc__plat_wait(pid, -1, 0).
 * The children it forks afterwards (mproc__plat_spawn and its kin) do not inherit the descriptor, and get
 * SIGCHLD back as it was blocked or not before.  The descriptor or negative errno. */
int mproc__plat_child_events_open(void);
void mproc__plat_child_events_drain(int fd);
/* Waits until no process has pid any more (ended and reaped by its parent), at most timeout seconds: for a
 * process that is not our child, where there are no pidfds.  It looks again every few milliseconds (a pid
 * reused meanwhile would keep it waiting until the timeout).  0 or -ETIMEDOUT. */
int mproc__plat_wait_gone(pid_t pid, double timeout);

/* ---- sockets between the processes of a pool ---- */

enum {
  MPROC__PLAT_SOCK_MSG = 1,    /* SOCK_SEQPACKET, both ways: each send is one message, whole or not at all */
  MPROC__PLAT_SOCK_STREAM = 2, /* SOCK_STREAM, both ways */
  MPROC__PLAT_SOCK_ONEWAY = 3  /* SOCK_STREAM, sv[0] only receives and sv[1] only sends */
};
/* A connected pair of Unix sockets of the given kind, both close-on-exec.  0 or negative errno (-EINVAL for
 * an unknown kind). */
int mproc__plat_socketpair(int kind, int sv[2]);
/* Sends one message of len bytes (SOCK_MSG: it arrives whole) through mproc__plat_sys.send, retrying on
 * EINTR, never raising SIGPIPE.  wait false: -EAGAIN when the socket's buffer is full instead of waiting.
 * 0, or negative errno: -EPIPE/-ECONNRESET when the peer has closed its end. */
int mproc__plat_send_msg(int sock, const void *buf, size_t len, bool wait);
/* Receives one message (SOCK_MSG) or what is there, up to len bytes (stream), retrying on EINTR.  wait
 * false: -EAGAIN when nothing is there.  Bytes received (a SOCK_MSG message longer than len is cut), 0 at
 * end of file (the peer closed its end and nothing is left), or negative errno. */
ssize_t mproc__plat_recv_msg(int sock, void *buf, size_t len, bool wait);
/* Whether the peer has closed its end and every message it sent has been received (without waiting and
 * without taking anything: a message still unread makes it false). */
bool mproc__plat_sock_at_eof(int sock);
/* Sends, without waiting, as much as the stream socket takes of the bytes of a then the bytes of b (one
 * gather write, no SIGPIPE; EINTR retried).  Bytes sent, or negative errno (-EAGAIN when full). */
ssize_t mproc__plat_send2_nowait(int sock, const void *a, size_t alen, const void *b, size_t blen);
/* Ends both directions of the connection at once, for every process holding a copy of sock (close only
 * drops this one descriptor).  0 or negative errno. */
int mproc__plat_sock_hangup(int sock);

/* Waits for events on n descriptors (poll's), at most timeout seconds (< 0 forever), retrying on EINTR.
 * Returns how many have events, 0 when timed out, or negative errno. */
int mproc__plat_poll(struct pollfd *fds, size_t n, double timeout);
/* Sets or clears fd's close-on-exec flag.  0 or negative errno. */
int mproc__plat_set_cloexec(int fd, bool on);
/* Asks that this thread's timed waits end when due (Linux: a timer slack of 1 us for the calling thread,
 * where the default of 50 us lets a 10 us nap last 60 us).  0 or negative errno. */
int mproc__plat_precise_timers(void);
/* Sets signal sig to be ignored (SIG_IGN): 0 or negative errno. */
int mproc__plat_ignore_signal(int sig);
/* Installs handler for sig (SA_RESTART, nothing masked) only if sig's disposition is the default: true when
 * it did.  A handler the program installed itself is left alone. */
bool mproc__plat_catch_signal_if_default(int sig, void (*handler)(int));
/* Puts sig back to its default disposition only if handler is still the one in place. */
void mproc__plat_uncatch_signal(int sig, void (*handler)(int));
/* Ends this process at once with status code, without running atexit handlers or flushing stdio: what a
 * forked child does. */
_Noreturn void mproc__plat_exit(int code);

/* ---- function identity (dladdr1 + ELF symbol sizes) and the result cache's per-entry file locks ---- */

/* What the dynamic linker knows about a code address. */
typedef struct mproc__plat_fnsym {
  char object[256];  /* basename of the loaded object's file ("" for the main program's own name) */
  char name[128];    /* symbol name, "" if none */
  uintptr_t offset;  /* address minus the object's load base */
  const void *start; /* start of the symbol's code (== the address when found) */
  size_t size;       /* its ELF st_size, 0 when unknown */
} mproc__plat_fnsym;

/* Fills *out for addr: dladdr1(RTLD_DL_SYMENT) for exported symbols, else the object's .symtab read from
 * its file (static functions).  Returns 0, or -ENOENT when addr is in no loaded object. */
int mproc__plat_fnsym_lookup(const void *addr, mproc__plat_fnsym *out);

/* Code addresses between processes that run the same program but not the same image (a process started by
 * exec has every object at new addresses under ASLR): an address travels as (loaded object, offset).
 *
 * mproc__plat_code_locate names the object holding addr: "" for the main program (the first object the
 * dynamic linker lists), else its path as the dynamic linker holds it (what was opened: another process loads
 * the same file by it); *offset is addr minus the object's load bias.  Returns 0, -ENOENT when addr is in no
 * loaded object (JIT or other anonymous code), -ENAMETOOLONG when the path does not fit in cap bytes. */
int mproc__plat_code_locate(const void *addr, char *object, size_t cap, uintptr_t *offset);
/* The load bias of object (named as by mproc__plat_code_locate) in this process, loading it with dlopen when
 * it is not loaded yet (it then stays loaded).  Returns 0, or -ENOENT with the loader's message in err. */
int mproc__plat_code_base(const char *object, uintptr_t *base, char *err, size_t errcap);
/* A loaded object and its GNU build-id (NT_GNU_BUILD_ID, what the linker hashes from its contents). */
typedef struct mproc__plat_objid {
  char path[1024];      /* as the dynamic linker holds it; the main program: its /proc/self/exe link */
  unsigned char id[40]; /* the build-id's first id_len bytes (linkers write 20: a SHA-1) */
  uint32_t id_len;      /* 0: none (the main program only: objects without one are not listed) */
  uint32_t program;     /* 1 for the main program */
} mproc__plat_objid;
/* This process's loaded objects, in the dynamic linker's order: the main program first (always, with or
 * without a build-id), then every shared object that carries a build-id note.  Skipped: the vDSO (the
 * kernel's code, no file: it differs between kernels and no task lives in it) and objects without a
 * build-id (nothing to compare).  Fills out[0..cap) and returns how many objects there are (more than cap:
 * the rest were not written). */
size_t mproc__plat_object_ids(mproc__plat_objid *out, size_t cap);

/* Takes an exclusive open-file-description lock (F_OFD_SETLK[W]) on the one byte at offset off of fd:
 * per open file, so it excludes threads with their own open() as well as processes, and the kernel drops
 * it when the descriptor is closed or its process dies.  wait: block until held, else return -EWOULDBLOCK
 * when another holds it.  Returns 0 or a negative errno. */
int mproc__plat_file_lock_byte(int fd, uint64_t off, int wait);

/* ---- the file-system calls of the result cache (src/cache/cache.c), besides those of the
 * injection table mproc__plat_sys (openat, read, write, renameat, fsync, mmap), which the cache calls
 * directly.  Every function returns 0 (or a descriptor, a count) or a negative errno, and retries EINTR. */

/* openat through mproc__plat_sys.openat (always close-on-exec).  The descriptor or a negative errno. */
int mproc__plat_openat(int dirfd, const char *path, int flags, mode_t mode);
/* fsync through mproc__plat_sys, again when a signal interrupted it.  0 or negative errno. */
int mproc__plat_fsync(int fd);
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
/* Asks for huge pages for the whole pages of the anonymous memory [addr, addr+len) (any address: a block
 * from malloc is fine).  A hint: 0, or a negative errno callers may ignore (-EINVAL where the kernel has
 * no transparent huge pages, -ENOSYS where the system has no such call). */
int mproc__plat_advise_huge(void *addr, size_t len);

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
