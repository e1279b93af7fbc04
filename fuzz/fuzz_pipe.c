/* fuzz_pipe.c: the receiving end of a Pipe (ipc/pipe.c) reading whatever bytes the other process wrote,
 * in whatever pieces they arrive, then its end (the sender closed or died at any byte).  Each message must
 * come out whole and in order, as a model reader of the stream (8-byte length, then the bytes) says: no
 * torn message, a length over MPROC_PIPE_MAX_MESSAGE as MPROC_ECORRUPT, an end inside a message as
 * MPROC_EEOF.
 *
 * Input: a mode byte (bit 0: receive into a new allocation or into a buffer; above: the buffer's size / 4),
 * then pieces: a length byte k and k bytes, written to the socket one piece at a time, each followed by
 * receives (timeout 0) until there is nothing more. */
#include <errno.h>
#include <unistd.h>

#include "fuzz.h"
#include "internal.h"
#include "ipc/waitable.h"

typedef struct model {
  unsigned char *bytes; /* everything written */
  size_t len, pos;      /* pos: where the next message starts */
} model;

/* The next message of the stream: 1 whole (*n its length), 0 not all there, -1 a length over the maximum. */
static int model_next(const model *m, uint64_t *n) {
  if (m->len - m->pos < 8) return 0;
  memcpy(n, m->bytes + m->pos, 8);
  if (*n > MPROC_PIPE_MAX_MESSAGE) return -1;
  return m->len - m->pos - 8 >= *n;
}

/* Receives until the pipe has nothing more (or ended); after the writer closed, until the end. */
static void drain(mproc_pipe *a, model *m, unsigned mode, bool closed, bool *ended) {
  size_t cap = (mode >> 1) * 4;
  unsigned char buf[1024];
  for (int turn = 0; !*ended; turn++) {
    bool alloc = ((mode >> (turn % 8)) & 1) != 0;
    void *got = NULL;
    size_t len = SIZE_MAX;
    int rc = alloc ? mproc_pipe_recv_alloc(a, &got, &len, 0) : mproc_pipe_recv(a, buf, cap, &len, 0);
    uint64_t n = 0;
    int next = model_next(m, &n);
    if (rc == -EMSGSIZE) { /* the message stays: taken next turn into an allocation */
      FUZZ_CHECK(!alloc && next >= 0 && len == n && n > cap && m->len - m->pos >= 8);
      mode |= 0xff;
      continue;
    }
    if (rc == 0) {
      FUZZ_CHECK(next == 1 && len == n && memcmp(alloc ? got : buf, m->bytes + m->pos + 8, n) == 0);
      mproc_free(got);
      m->pos += 8 + n;
      continue;
    }
    if (rc == MPROC_EEMPTY) {
      FUZZ_CHECK(next == 0 && !closed);
      return;
    }
    if (rc == MPROC_ECORRUPT) {
      FUZZ_CHECK(next == -1);
    } else {
      FUZZ_CHECK(rc == MPROC_EEOF && closed && next == 0);
    }
    *ended = true;
    FUZZ_CHECK(mproc_pipe_recv(a, buf, sizeof buf, &len, 0) == MPROC_EEOF); /* and from then on */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mproc_pipe *a, *b;
  if (mproc_pipe_create(&a, &b, 1) != 0) return 0;
  int fd;
  FUZZ_CHECK(mproc__pipe_wait_fd(b, &fd) == 0);
  fuzz_in in = {data, size};
  unsigned mode = (unsigned)fuzz_u(&in, 1);
  model m = {malloc(size ? size : 1), 0, 0};
  bool ended = false;
  while (in.n && m.bytes) {
    size_t k;
    const uint8_t *piece = fuzz_bytes(&in, (size_t)fuzz_u(&in, 1), &k);
    FUZZ_CHECK(write(fd, piece, k) == (ssize_t)k);
    memcpy(m.bytes + m.len, piece, k);
    m.len += k;
    drain(a, &m, mode, false, &ended);
  }
  mproc_pipe_destroy(b);
  drain(a, &m, mode, true, &ended);
  FUZZ_CHECK(ended);
  mproc_pipe_destroy(a);
  free(m.bytes);
  return 0;
}
