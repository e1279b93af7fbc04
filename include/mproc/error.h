/* mproc/error.h: the error codes of mproc, from one table.
 *
 * Every call that can fail returns 0 (or a documented non-negative value) on success and a negative code on
 * failure.  Codes from the operating system are negative errno values (MPROC_EINVAL == -EINVAL); mproc's own
 * codes live in a reserved range far below errno's (MPROC_ERR_BASE and down) so the two never collide.
 * mproc_strerror() describes any code in words, mproc_err_name() gives its symbolic name. */
#ifndef MPROC_ERROR_H
#define MPROC_ERROR_H

#include <errno.h>
#include <mproc/common.h>

MPROC_EXTERN_C_BEGIN

/* The errno codes that mproc's functions return, named once. */
/* clang-format off */
#define MPROC_ERRNO_CODES(X)                                                                              \
  X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(E2BIG) X(EBADF) X(ECHILD) X(EAGAIN) X(ENOMEM) X(EACCES)   \
  X(EFAULT) X(EBUSY) X(EEXIST) X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(EFBIG) X(ENOSPC)      \
  X(ESPIPE) X(EROFS) X(EPIPE) X(ERANGE) X(EDEADLK) X(ENAMETOOLONG) X(ENOSYS) X(ELOOP) X(EOVERFLOW)        \
  X(EMSGSIZE) X(ENOTSUP) X(ECONNRESET) X(ENOTCONN) X(ETIMEDOUT) X(EALREADY) X(ECANCELED) X(EOWNERDEAD)    \
  X(ENOTRECOVERABLE) X(EDQUOT) X(EBADMSG) X(ENOTSOCK)
/* clang-format on */

/* mproc's own codes: name, value offset below MPROC_ERR_BASE, description. */
#define MPROC_ERR_BASE (-30000)
#define MPROC_OWN_CODES(X)                                                                     \
  X(ECRASHED, 1, "the worker process running the task crashed (killed by a signal or exited)") \
  X(ETASKTIMEOUT, 2, "the task ran past its timeout; its worker was killed")                   \
  X(ETASKFAILED, 3, "the task failed with its own error")                                      \
  X(ELOST, 4, "the task was lost by its backend")                                              \
  X(EBROKEN, 5, "the barrier is broken (aborted, reset, or a wait timed out)")                 \
  X(EEOF, 6, "end of file: the other end is closed or its process died")                       \
  X(EEMPTY, 7, "the queue is empty")                                                           \
  X(EFULL, 8, "the queue is full")                                                             \
  X(ECLOSED, 9, "the object is closed")                                                        \
  X(EBOUND, 10, "released more times than acquired (bounded semaphore)")                       \
  X(ECORRUPT, 11, "corrupt data (checksum or size mismatch)")                                  \
  X(ENOBACKEND, 12, "the requested backend is not available in this build")                    \
  X(ESTATE, 13, "the object is in the wrong state for this call")                              \
  X(EINTERRUPTED, 14, "interrupted by SIGINT (Ctrl-C)")                                        \
  X(ESHUTDOWN, 15, "the queue is shut down")

enum mproc_error_code {
#define MPROC__ERRNO_ENUM(e) MPROC_##e = -(e),
  MPROC_ERRNO_CODES(MPROC__ERRNO_ENUM)
#undef MPROC__ERRNO_ENUM
#define MPROC__OWN_ENUM(name, off, msg) MPROC_##name = MPROC_ERR_BASE - (off),
      MPROC_OWN_CODES(MPROC__OWN_ENUM)
#undef MPROC__OWN_ENUM
};

/* A static string describing code (any errno value or one of mproc's own).  0 gives "success"; an unknown
 * code gives "unknown error".  Never NULL; the string is never freed. */
MPROC_API const char *mproc_strerror(int code);

/* The symbolic name of code, such as "EINVAL" or "ECRASHED"; "OK" for 0, "UNKNOWN" for anything else.
 * Never NULL; static. */
MPROC_API const char *mproc_err_name(int code);

/* A sentence saying why the calling thread's most recent failed call that gives one failed, naming the
 * culprit: today the calls that read a bad environment variable (mproc_pool_create() and everything that
 * makes a pool, with MPROC_WORKERS or MPROC_BACKEND set to a value they refuse; see docs/environment.md),
 * such as: MPROC_WORKERS="abc" is not a number of workers: ...; and the calls a lost pool refuses (submit,
 * map, imap, Parallel's runs), such as: the pool is lost: no worker could be started: ...  "" when no call
 * of this thread has set one.  Like errno, it is not cleared by calls that succeed: read it right after the
 * call that failed.
 * Thread-local; valid until the thread's next call that sets it.  With MPROC_VERBOSE=1 or more in the
 * environment the message is also written on stderr as it is set. */
MPROC_API const char *mproc_last_error_message(void);

MPROC_EXTERN_C_END

#endif
