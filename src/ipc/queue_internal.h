/* queue_internal.h: test hooks of the queue (not API). */
#ifndef MPROC_QUEUE_INTERNAL_H
#define MPROC_QUEUE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Points in put/get where a test may stop a process to kill it there. */
enum {
  MPROC__QHOOK_PUT_WRITTEN = 1, /* a record is copied and counted but not published */
  MPROC__QHOOK_PUT_PART = 2,    /* a part of a multi-part message is published, more to come */
  MPROC__QHOOK_GET_PART = 3,    /* a consumer took a part of a multi-part message, more to come */
};
/* Called at those points when non-NULL (tests only). */
extern void (*mproc__queue_hook)(int point);

/* For fuzz/fuzz_queue.c: makes n bytes (at most the ring's size) what producers published in an idle
 * queue, from position head on, and tail what they say (it may lie). */
struct mproc_queue;
void mproc__queue_forge(struct mproc_queue *q, uint64_t head, const void *bytes, size_t n, uint64_t tail);

#endif
