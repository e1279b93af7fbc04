/* waitable.h: what mproc_wait() (waitables.c) asks of the objects it waits on: processes (process.c),
 * pipe ends (pipe.c) and queues (queue.c).  Not API. */
#ifndef MPROC_WAITABLE_H
#define MPROC_WAITABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

/* A process: 1 when it has ended (known without waiting); 0 while it runs, with *fd its pidfd to poll for
 * POLLIN, or -1 where there is none (the caller asks again later); -ECHILD from a process that is not its
 * parent. */
int mproc__process_wait_fd(mproc_process *p, int *fd);

/* A pipe end: 1 when end of file was already seen; 0 with *fd the socket to poll for POLLIN; -EBADF for an
 * end that cannot receive or is closed. */
int mproc__pipe_wait_fd(mproc_pipe *p, int *fd);

/* A queue.  Whoever waits on queues without holding their get lock (a watcher) registers with
 * mproc__queue_watch(q, true) before it first looks at them, and leaves with mproc__queue_watch(q, false).
 * While registered, every put, close and shutdown bumps the word mproc__queue_word(q) and wakes its
 * sleepers; the watcher reads the word, then checks mproc__queue_ready(q), and sleeps on the value it read.
 * mproc__queue_ready: 1 when a get would not wait now (a record is queued, or the queue is closed or shut
 * down), 0 when it would, -EINVAL for a queue that is not one (destroyed). */
int mproc__queue_ready(mproc_queue *q);
void mproc__queue_watch(mproc_queue *q, bool on);
uint32_t *mproc__queue_word(mproc_queue *q);

#endif
