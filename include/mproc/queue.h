/* mproc/queue.h: queues and pipes carrying byte messages between processes, as Python's multiprocessing
 * Queue, SimpleQueue, JoinableQueue and Pipe.  Included by <mproc.h>. */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <mproc/common.h>

MPROC_EXTERN_C_BEGIN

/* Frees memory that mproc allocated for the caller (the messages of mproc_queue_get_alloc() and
 * mproc_pipe_recv_alloc()).  NULL is accepted.  Uses the allocator current at the time of the call (see
 * mproc_replace_allocator()). */
MPROC_API void mproc_free(void *p);

/* ---- Queue (also SimpleQueue and JoinableQueue) ----
 *
 * A queue of byte messages shared by every process forked after its creation (or mapping the segment it was
 * placed in), for any number of producers and consumers.  Messages come out whole and, from each producer,
 * in the order it put them.  Messages larger than the buffer stream through it in parts, still whole and in
 * order.  The handle may be used from several threads.  See docs/queues.md for what happens when a
 * process is killed inside a call. */
typedef struct mproc_queue mproc_queue;

/* The largest message a queue accepts when max_message_bytes is left 0, and the most it may be set to. */
#define MPROC_QUEUE_DEFAULT_MAX_MESSAGE ((size_t)1 << 30)
#define MPROC_QUEUE_MAX_MESSAGE ((size_t)1 << 40)
/* The ring buffer used when buffer_bytes is 0, and the least accepted. */
#define MPROC_QUEUE_DEFAULT_BUFFER ((size_t)1 << 20)
#define MPROC_QUEUE_MIN_BUFFER ((size_t)256)

/* Options of a queue; all zero means the defaults. */
typedef struct mproc_queue_opts {
  /* Bytes of the ring buffer in shared memory (0: 1 MiB; at least 256, at most 2^40; rounded up to a
   * multiple of 64).  Each message takes 24 bytes of header plus its length rounded up to 8. */
  size_t buffer_bytes;
  /* Python's maxsize: the most messages the queue holds before put blocks; 0 means no bound by count (the
   * buffer still bounds it by bytes). */
  size_t max_messages;
  /* The largest message accepted (0: MPROC_QUEUE_DEFAULT_MAX_MESSAGE = 1 GiB; at most
   * MPROC_QUEUE_MAX_MESSAGE).  Larger puts fail with -EMSGSIZE. */
  size_t max_message_bytes;
} mproc_queue_opts;

/* Bytes of shared memory a queue with this buffer needs (buffer_bytes 0 means the default), for
 * mproc_queue_init(); 0 when buffer_bytes is out of range. */
MPROC_API size_t mproc_queue_size(size_t buffer_bytes);

/* Makes a queue inside mem, size bytes of memory shared by the processes that will use it (size at least
 * mproc_queue_size(opts->buffer_bytes)), 64-byte aligned.  The buffer used is the one opts asks for.  On
 * success *out is the handle (it points into mem; valid in any process mapping mem, at any address) and 0 is
 * returned.  -EINVAL for NULL out or mem, mem misaligned, size too small or bad options.  Call
 * mproc_queue_destroy() once, when no process uses the queue any longer; the memory stays the caller's. */
MPROC_API int mproc_queue_init(mproc_queue **out, void *mem, size_t size, const mproc_queue_opts *opts);

/* Creates a queue in a new anonymous shared mapping, inherited by every process forked afterwards (as
 * Python's Queue is inherited by children).  opts may be NULL.  Returns 0 and stores the handle in *out, or
 * -EINVAL (NULL out, bad options) or -ENOMEM; *out is untouched on error. */
MPROC_API int mproc_queue_create(mproc_queue **out, const mproc_queue_opts *opts);

/* Releases the calling process's use of the queue: unmaps a created queue in this process (other processes
 * keep theirs; the memory goes with the last one), or ends a queue made by mproc_queue_init().  NULL is
 * accepted.  Messages still queued are dropped with the last mapping. */
MPROC_API void mproc_queue_destroy(mproc_queue *q);

/* Puts a copy of len bytes at data (data may be NULL when len is 0), waiting at most timeout seconds for
 * room.  Returns 0 once the whole message is in the queue (a message larger than the buffer is then
 * partly delivered already); MPROC_EFULL when timeout is 0 and there is no room now (or another producer is
 * busy); -ETIMEDOUT when a positive timeout ran out; MPROC_ECLOSED once the queue is closed, MPROC_ESHUTDOWN
 * once it is shut down; -EMSGSIZE
 * for a message over max_message_bytes; -EINVAL for NULL q, NULL data with len > 0 or a NaN timeout.  On
 * any error nothing of the message is delivered (a large message aborted half-way is discarded by its
 * consumer). */
MPROC_API int mproc_queue_put(mproc_queue *q, const void *data, size_t len, double timeout);
/* mproc_queue_put(q, data, len, 0). */
MPROC_API int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len);

/* Takes the oldest message into buf (cap bytes), waiting at most timeout seconds for one.  Returns 0 and
 * its length in *len; -EMSGSIZE when cap is too small: *len is then the length needed and the message stays
 * in the queue; MPROC_EEMPTY when timeout is 0 and the queue is empty (or another consumer is busy);
 * -ETIMEDOUT when a positive timeout ran out; MPROC_ECLOSED when the queue is closed and drained;
 * MPROC_ESHUTDOWN when it is shut down and drained (at once after an immediate shutdown);
 * MPROC_ECORRUPT when the queue's memory holds what no producer wrote (a program wrote over it): what was
 * queued is dropped; -EINVAL for NULL q or len, NULL buf with cap > 0, NaN timeout.  Once the first part
 * of a multi-part message has been taken, get waits for the rest beyond its timeout for as long as the
 * producer lives and goes on (see docs).  On error buf's contents are unspecified. */
MPROC_API int mproc_queue_get(mproc_queue *q, void *buf, size_t cap, size_t *len, double timeout);
/* mproc_queue_get(q, buf, cap, len, 0). */
MPROC_API int mproc_queue_get_nowait(mproc_queue *q, void *buf, size_t cap, size_t *len);
/* As mproc_queue_get() but into a new allocation: on 0, *out holds the message (at least 1 byte allocated
 * even for an empty message) to be freed with mproc_free(), *len its length.  -ENOMEM when it cannot be
 * allocated (the message stays queued).  *out and *len are untouched on error. */
MPROC_API int mproc_queue_get_alloc(mproc_queue *q, void **out, size_t *len, double timeout);

/* The number of messages queued (a message partly streamed counts), 0 or more; approximate while other
 * processes use the queue, as in Python.  -EINVAL for NULL. */
MPROC_API long long mproc_queue_qsize(mproc_queue *q);
/* 1 when qsize is 0, else 0 (-EINVAL for NULL). */
MPROC_API int mproc_queue_empty(mproc_queue *q);
/* 1 when max_messages is set and reached, or when the buffer has no room for even an empty message; else 0
 * (-EINVAL for NULL). */
MPROC_API int mproc_queue_full(mproc_queue *q);

/* Closes the queue for every process: later puts (and puts waiting for room) fail with MPROC_ECLOSED;
 * getters take what is left, then get MPROC_ECLOSED instead of waiting.  Idempotent; 0 or -EINVAL. */
MPROC_API int mproc_queue_close(mproc_queue *q);

/* Shuts the queue down for every process (Python 3.13's Queue.shutdown): later puts, and puts waiting for
 * room, fail with MPROC_ESHUTDOWN.  immediate 0: getters take what is queued, then get MPROC_ESHUTDOWN
 * instead of waiting.  immediate nonzero: what is queued is dropped, each message dropped counting as
 * taken and done for join (as Python calls task_done for each), and every get, waiting or not, returns
 * MPROC_ESHUTDOWN.  Messages already taken still count for join until task_done.  A shutdown wins over a
 * close (calls return MPROC_ESHUTDOWN); shutting down again is allowed, and immediate, once given, stays.
 * An immediate shutdown waits for the consumer inside get, if any, to leave (it is woken).  0 or -EINVAL
 * (NULL, or a queue that was destroyed). */
MPROC_API int mproc_queue_shutdown(mproc_queue *q, int immediate);

/* JoinableQueue: every put adds an unfinished task, task_done() marks one done, join() waits until none is
 * left.  Available on every queue.  task_done returns 0, or MPROC_EBOUND when called more times than
 * messages were taken (nothing changes then); -EINVAL for NULL. */
MPROC_API int mproc_queue_task_done(mproc_queue *q);
/* Waits at most timeout seconds until every message put has been taken and marked done.  0, -ETIMEDOUT
 * (MPROC_ETIMEDOUT also for timeout 0 with tasks unfinished), -EINVAL for NULL or NaN. */
MPROC_API int mproc_queue_join(mproc_queue *q, double timeout);

/* ---- Pipe ----
 *
 * A connection between two processes (Python's Pipe): whole byte messages, in order.  Create it before
 * forking, then keep one end in each process and destroy the other end there: end of file is seen only when
 * every copy of the other end is closed (or its processes died).  One end is meant for one process; two
 * threads may not send (or receive) on one end at once. */
typedef struct mproc_pipe mproc_pipe;

/* The largest message a pipe carries. */
#define MPROC_PIPE_MAX_MESSAGE ((size_t)1 << 30)

/* Creates a pipe.  duplex nonzero: both ends send and receive.  duplex 0: *a only receives and *b only sends
 * (Python's Pipe(duplex=False) order).  Returns 0, or -EINVAL (NULL ends), -EMFILE, -ENOMEM; *a and *b are
 * untouched on error. */
MPROC_API int mproc_pipe_create(mproc_pipe **a, mproc_pipe **b, int duplex);

/* Sends len bytes at data as one message, waiting at most timeout seconds for the first byte to go; once
 * started, the message is sent whole.  0; -ETIMEDOUT (MPROC_EFULL for timeout 0) when nothing could be
 * sent; MPROC_EEOF when the other end is closed; -EMSGSIZE over MPROC_PIPE_MAX_MESSAGE; -EBADF on a
 * receive-only end or a closed one; -EINVAL for NULL p, NULL data with len > 0, NaN timeout. */
MPROC_API int mproc_pipe_send(mproc_pipe *p, const void *data, size_t len, double timeout);

/* Receives the next message into buf (cap bytes), waiting at most timeout seconds.  0 with *len set;
 * -EMSGSIZE with *len the length needed (the message stays); MPROC_EEOF when the other end is closed or
 * its process died and no whole message is left (a message cut short is never delivered); MPROC_EEMPTY
 * for timeout 0 / -ETIMEDOUT for a positive one when none has arrived (bytes already read stay buffered in
 * the end); -EBADF on a send-only end; -EINVAL for NULL p or len, NULL buf with cap > 0, NaN. */
MPROC_API int mproc_pipe_recv(mproc_pipe *p, void *buf, size_t cap, size_t *len, double timeout);
/* As mproc_pipe_recv() into a new allocation freed with mproc_free(); -ENOMEM possible. */
MPROC_API int mproc_pipe_recv_alloc(mproc_pipe *p, void **out, size_t *len, double timeout);

/* Waits at most timeout seconds until recv would not block: 1 (a message or end of file is there), 0 (timed
 * out), or -EBADF / -EINVAL. */
MPROC_API int mproc_pipe_poll(mproc_pipe *p, double timeout);

/* Closes this end in the calling process and frees the handle.  NULL is accepted. */
MPROC_API void mproc_pipe_destroy(mproc_pipe *p);

MPROC_EXTERN_C_END

#endif
