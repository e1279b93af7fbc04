/* mproc/wait.h: one wait over several processes, pipe ends, queues and descriptors at once, as Python's
 * multiprocessing.connection.wait().  Included by <mproc.h>. */
#ifndef MPROC_WAIT_H
#define MPROC_WAIT_H

#include <mproc/common.h>
#include <mproc/process.h>
#include <mproc/queue.h>

MPROC_EXTERN_C_BEGIN

/* What an entry of mproc_wait()'s list is. */
typedef enum mproc_waitable_kind {
  MPROC_WAITABLE_PROCESS = 1, /* ready once the process has ended (its sentinel is readable) */
  MPROC_WAITABLE_PIPE = 2,    /* a receiving end: ready when a message or end of file is waiting */
  MPROC_WAITABLE_QUEUE = 3,   /* ready when a get would not wait: a message is queued, or the queue is
                                 closed or shut down */
  MPROC_WAITABLE_FD = 4,      /* any descriptor: ready when readable, hung up or in error (poll's POLLIN) */
} mproc_waitable_kind;

/* One entry: kind, the object, and ready, which mproc_wait() sets to 1 or 0. */
typedef struct mproc_waitable {
  mproc_waitable_kind kind;
  union {
    mproc_process *process;
    mproc_pipe *pipe;
    mproc_queue *queue;
    int fd;
  } u;
  int ready;
} mproc_waitable;

static inline mproc_waitable mproc_waitable_process(mproc_process *p) {
  mproc_waitable w;
  w.kind = MPROC_WAITABLE_PROCESS;
  w.u.process = p;
  w.ready = 0;
  return w;
}
static inline mproc_waitable mproc_waitable_pipe(mproc_pipe *p) {
  mproc_waitable w;
  w.kind = MPROC_WAITABLE_PIPE;
  w.u.pipe = p;
  w.ready = 0;
  return w;
}
static inline mproc_waitable mproc_waitable_queue(mproc_queue *q) {
  mproc_waitable w;
  w.kind = MPROC_WAITABLE_QUEUE;
  w.u.queue = q;
  w.ready = 0;
  return w;
}
static inline mproc_waitable mproc_waitable_fd(int fd) {
  mproc_waitable w;
  w.kind = MPROC_WAITABLE_FD;
  w.u.fd = fd;
  w.ready = 0;
  return w;
}

/* Waits at most timeout seconds (see MPROC_FOREVER: negative waits forever, 0 polls once; Python's wait()
 * polls for a negative timeout) until at least one of the n objects is ready, then reports every one that
 * is.  Sets objs[i].ready for each, stores the indices of the ready ones in increasing order in ready_out
 * (room for n; NULL when not wanted), and returns how many are ready: 0 when the timeout ran out (Python's
 * empty list).  Ready means that the call would not wait at that moment; another consumer of the same
 * queue or pipe may still take the message first.  A process counts as ready once it has ended, joined or
 * not (wait does not join it).
 *
 * Nothing is consumed, and the objects stay the caller's; they must stay valid during the call.  Queues
 * have no descriptor: a wait registers itself in each queue's shared header while it sleeps, and puts,
 * close and shutdown wake it, from any process (see docs/queues.md for what that costs).
 *
 * Errors: -EINVAL for NULL objs, n 0 or over INT_MAX, a NaN timeout, an unknown kind, a NULL object, a
 * queue that was destroyed; -EBADF for a negative or closed descriptor or a pipe end that cannot receive;
 * -ECHILD for a process this process did not start; -ENOMEM.  On error no entry's ready is meaningful. */
MPROC_API int mproc_wait(mproc_waitable *objs, size_t n, double timeout, size_t *ready_out);

MPROC_EXTERN_C_END

#endif
