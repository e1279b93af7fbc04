/* fuzz_queue.c: a queue's consumer (ipc/queue.c) reading records from shared memory that others write: the
 * ring's published bytes are the input.  Producers, dead or alive, publish only whole records; these bytes
 * may be anything (a program that wrote over the queue's memory), and the consumer must neither copy out of
 * bounds, nor walk past tail, nor loop: each get returns a message within the queue's largest, or a code;
 * once the bytes are taken or dropped, the queue is empty and works.  An immediate shutdown drops the same
 * bytes and must end too.
 *
 * Input: a byte for the largest message (max_message_bytes: 1 + 64 * b), a mode byte (bit 0: tail claims
 * more than the ring holds; the rest: which get each call is), the 8-byte position of head, then the ring's
 * bytes from head on (the ring is 256 bytes, and wraps). */
#include <errno.h>
#include <stdalign.h>

#include "fuzz.h"
#include "internal.h"
#include "ipc/queue_internal.h"

#define RING 256

static alignas(64) unsigned char mem[4096];

static mproc_queue *make(uint64_t max_msg) {
  mproc_queue *q;
  mproc_queue_opts o = {.buffer_bytes = RING, .max_message_bytes = max_msg};
  FUZZ_CHECK(mproc_queue_size(RING) <= sizeof mem);
  FUZZ_CHECK(mproc_queue_init(&q, mem, sizeof mem, &o) == 0);
  return q;
}

/* Takes messages until the queue says it is empty. */
static void drain(mproc_queue *q, uint64_t max_msg, unsigned mode) {
  unsigned char buf[RING * 2];
  for (int turn = 0;; turn++) {
    FUZZ_CHECK(turn < 1000); /* every get frees a record at least: a ring of 256 bytes holds at most 10 */
    unsigned m = (mode >> (turn % 6)) & 3;
    size_t len = SIZE_MAX, cap = m == 1 ? sizeof buf : m == 2 ? 16 : 0;
    void *got = NULL;
    int rc = m == 3 ? mproc_queue_get_alloc(q, &got, &len, 0) : mproc_queue_get_nowait(q, buf, cap, &len);
    if (rc == 0) {
      FUZZ_CHECK(len <= max_msg && (m == 3 || len <= cap));
      if (got) memset(got, 0, len); /* all of it is the caller's */
      mproc_free(got);
      continue;
    }
    if (rc == -EMSGSIZE) {
      FUZZ_CHECK(m != 3 && len > cap && len <= max_msg);
      mode = ~0u; /* the rest into allocations */
      continue;
    }
    if (rc == MPROC_ECORRUPT) continue; /* dropped: the next get finds the queue empty */
    FUZZ_CHECK(rc == MPROC_EEMPTY);
    return;
  }
}

/* The queue works after it: a message put is the message got. */
static void works(mproc_queue *q, uint64_t max_msg) {
  char buf[8];
  size_t len, n = max_msg < 5 ? (size_t)max_msg : 5;
  FUZZ_CHECK(mproc_queue_put(q, "works", n, 0) == 0);
  FUZZ_CHECK(mproc_queue_get_nowait(q, buf, sizeof buf, &len) == 0 && len == n &&
             memcmp(buf, "works", n) == 0);
  FUZZ_CHECK(mproc_queue_get_nowait(q, buf, sizeof buf, &len) == MPROC_EEMPTY);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  uint64_t max_msg = 1 + 64 * fuzz_u(&in, 1);
  unsigned mode = (unsigned)fuzz_u(&in, 1);
  uint64_t head = fuzz_u(&in, 8);
  size_t n;
  const uint8_t *bytes = fuzz_bytes(&in, RING, &n);
  size_t claimed = n + ((mode & 1) ? RING + 1 : 0);

  mproc_queue *q = make(max_msg);
  mproc__queue_forge((struct mproc_queue *)q, head, bytes, n, head + claimed);
  drain(q, max_msg, mode >> 1);
  works(q, max_msg);
  mproc_queue_destroy(q);

  q = make(max_msg);
  mproc__queue_forge((struct mproc_queue *)q, head, bytes, n, head + claimed);
  FUZZ_CHECK(mproc_queue_shutdown(q, 1) == 0);
  size_t len;
  FUZZ_CHECK(mproc_queue_get_nowait(q, NULL, 0, &len) == MPROC_ESHUTDOWN);
  mproc_queue_destroy(q);
  return 0;
}
