/* mproc/process.h: processes, as Python's multiprocessing.Process.  Included by <mproc.h>. */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include <mproc/common.h>

MPROC_EXTERN_C_BEGIN

/* A child process started by mproc.  Opaque; safe to use from several threads of the process that started
 * it.  A copy of the handle inherited by another process (through fork) may only be read (name, pid). */
typedef struct mproc_process mproc_process;

/* What a process runs.  arg points to the child's own copy of the argument bytes given to
 * mproc_process_start() (NULL when arg_len is 0).  The return value becomes the exit code (taken modulo
 * 256, as exit() does).  Standard streams are flushed when it returns, and the child then ends with
 * _exit(): handlers registered with atexit(), the parent's inherited ones and the child's own alike, do
 * not run (CPython's fork method ends a child with os._exit() too; 3.12+ runs the child's own handlers,
 * which C cannot tell apart).  A function that calls exit() itself runs them all.  See docs/processes.md. */
typedef int (*mproc_process_fn)(const void *arg, size_t arg_len);

/* How the child is made.  A process (mproc_process_start) is always forked: the child is a copy of the
 * caller at the moment of the call, so the function pointer and any data the caller had are valid in it.  A
 * process may be started from a program with threads: only the calling thread exists in the child.  The
 * child inherits the caller's descriptors, except the pidfds the caller holds for its other children.  Pools
 * have two more methods (see mproc/pool.h and docs/pool.md); mproc_process_start() refuses them with
 * -EINVAL. */
typedef enum mproc_start_method {
  MPROC_START_DEFAULT = 0,    /* processes: fork; pools: forkserver after mproc_init(), else fork */
  MPROC_START_FORK = 1,       /* a copy of the caller (pools: of the caller at pool creation) */
  MPROC_START_FORKSERVER = 2, /* pools only: from the server mproc_init() started (see mproc/pool.h) */
  MPROC_START_EXEC = 3,       /* pools only: workers run a fresh image of the program (exec of itself) */
} mproc_start_method;

/* Options of mproc_process_start(); all zero means the defaults. */
typedef struct mproc_process_opts {
  /* The process's name, copied; at most 255 bytes.  NULL gives "Process-N", N counting from 1 in the
   * calling process (Python's default names). */
  const char *name;
  /* Nonzero makes a daemon process: when the parent exits normally (return from main or exit()), daemon
   * children are sent SIGTERM and reaped, while the others are waited for, as Python does.  Whatever the
   * flag, every child is killed (SIGKILL) if its parent dies any other way. */
  int daemon;
  mproc_start_method start_method;
} mproc_process_opts;

/* Starts fn(arg, arg_len) in a new process.  The argument bytes are copied for the child: the caller may
 * free or reuse them as soon as this returns.  On success stores the handle in *out (to be released with
 * mproc_process_destroy()) and returns 0.  Errors: -EINVAL (out or fn NULL, arg NULL with arg_len > 0, a
 * name longer than 255 bytes, an unknown start method), -ENOMEM,
 * -EAGAIN (no process could be created); *out is then untouched.  Unlike Python, a daemon may have
 * children of its own: they die with it.
 *
 * Each child receives SIGKILL when the thread that started it ends or its process dies (Linux's
 * PR_SET_PDEATHSIG): start long-lived processes from a thread that outlives them, such as the main thread. */
MPROC_API int mproc_process_start(mproc_process **out, mproc_process_fn fn, const void *arg, size_t arg_len,
                                  const mproc_process_opts *opts);

/* Waits until the process ends, at most timeout seconds (see MPROC_FOREVER), and collects its exit
 * status.  Returns 0 once it has ended (at once if it had), -ETIMEDOUT if it is still running, -EINVAL for
 * a NULL handle or NaN timeout, -ECHILD when called from a process that is not its parent (one that
 * inherited the handle through fork). */
MPROC_API int mproc_process_join(mproc_process *p, double timeout);

/* 1 if the process is running, 0 if it has ended (its status is then collected), negative on error
 * (-EINVAL for NULL). */
MPROC_API int mproc_process_is_alive(mproc_process *p);

/* Sends SIGTERM (terminate), SIGKILL (kill) or any signal (send_signal) to the process.  Returns 0 also when
 * the process has already ended (nothing is sent then); -EINVAL for a NULL handle or a bad signal number,
 * -ECHILD from a process that is not its parent.  None of them waits: join afterwards. */
MPROC_API int mproc_process_terminate(mproc_process *p);
MPROC_API int mproc_process_kill(mproc_process *p);
MPROC_API int mproc_process_send_signal(mproc_process *p, int sig);

/* How a process stands or ended. */
typedef enum mproc_process_state {
  MPROC_PROCESS_RUNNING = 0,  /* not ended yet (or not yet joined and still running) */
  MPROC_PROCESS_EXITED = 1,   /* ended by returning from its function or exit(): see exit_code */
  MPROC_PROCESS_SIGNALED = 2, /* ended by a signal: see signal and core_dumped */
  MPROC_PROCESS_LOST = 3,     /* ended, but its status was collected by someone else (waitpid(-1) or
                                 SIGCHLD set to SIG_IGN): exit_code and signal are unknown (-1) */
} mproc_process_state;

typedef struct mproc_exit_status {
  mproc_process_state state;
  int exit_code;   /* 0..255 when EXITED, else -1 */
  int signal;      /* the signal number when SIGNALED, else 0 */
  int core_dumped; /* 1 when SIGNALED and a core was dumped */
} mproc_exit_status;

/* Fills *status without waiting (Python's exitcode property).  0, or -EINVAL for NULL arguments. */
MPROC_API int mproc_process_exit_status(mproc_process *p, mproc_exit_status *status);

/* Python's exitcode in one int: the exit code (0..255) once exited normally, -N when ended by signal N.
 * Returns 0 and stores it in *code; MPROC_ESTATE if the process is still running; -EINVAL for NULL
 * arguments; MPROC_ESTATE also when its status was lost. */
MPROC_API int mproc_process_exitcode(mproc_process *p, int *code);

/* The process's pid (> 0), or -EINVAL for NULL.  The pid stays reserved for this process until it has been
 * joined. */
MPROC_API int mproc_process_pid(const mproc_process *p);

/* The process's sentinel (Python's Process.sentinel): a descriptor that becomes readable when the process
 * ends and stays readable, for poll(), select() or epoll, or for mproc_wait() (mproc/wait.h) beside pipes
 * and queues.  It is the process's pidfd, owned by the handle: do not close it, nor read from it; it stays
 * valid until mproc_process_destroy() (also after join), and is closed in children started afterwards.
 * Readable means ended, not joined: join (or is_alive) still collects the status.  Returns the descriptor
 * (>= 0); -EINVAL for NULL; -ECHILD from a process that is not its parent (one that inherited the handle
 * through fork); -ENOSYS where the kernel has no pidfds (before Linux 5.3; mproc_wait() still works
 * there, see docs/processes.md). */
MPROC_API int mproc_process_sentinel(const mproc_process *p);

/* The process's name; NULL for NULL.  Valid until the handle is destroyed. */
MPROC_API const char *mproc_process_name(const mproc_process *p);

/* Releases the handle.  A process that is still running is not touched and the call fails with -EBUSY,
 * leaving the handle valid: join, or terminate and join, first.  NULL is accepted (returns 0). */
MPROC_API int mproc_process_destroy(mproc_process *p);

/* The name of the calling process: "MainProcess" in a process not started by mproc, else the name given
 * at its start.  Static; valid for the process's life. */
MPROC_API const char *mproc_current_process_name(void);

MPROC_EXTERN_C_END

#endif
