/* pipe.c: Pipe, a connection carrying whole byte messages between two processes.
 *
 * A Unix stream socketpair (one-way pipes shut down the unused direction) carries each message as an 8-byte
 * length then the bytes.  A receiver keeps the bytes of a message that has not fully arrived in its handle,
 * so a timeout never loses or tears a message; end of file before the last byte of a message (the sender
 * closed or died mid-send) discards the partial message and reports MPROC_EEOF.  A sender that has begun a
 * message finishes it (its timeout bounds only the wait for the first byte), so a timeout never leaves
 * half a message in the stream. */
#include <errno.h>

#include "internal.h"
#include "ipc/waitable.h"

#define PIPE_SPIN_SECONDS 20e-6
/* What a message's allocation starts at, before its bytes come. */
#define PIPE_FIRST_PIECE ((size_t)64 << 10)

struct mproc_pipe {
  int fd;
  int can_send, can_recv;
  int eof;
  unsigned char hdr[8];
  size_t hdr_got;
  unsigned char *body; /* the part of the current message received so far, when it came in pieces */
  size_t body_got, body_cap;
};

static mproc_pipe *new_end(int fd, int can_send, int can_recv) {
  mproc_pipe *p = mproc__calloc(1, sizeof *p);
  if (p) {
    p->fd = fd;
    p->can_send = can_send;
    p->can_recv = can_recv;
  }
  return p;
}

int mproc_pipe_create(mproc_pipe **a, mproc_pipe **b, int duplex) {
  if (!a || !b) return -EINVAL;
  int sv[2];
  int r = mproc__plat_socketpair(duplex ? MPROC__PLAT_SOCK_STREAM : MPROC__PLAT_SOCK_ONEWAY, sv);
  if (r < 0) return r;
  mproc_pipe *pa = new_end(sv[0], duplex != 0, 1), *pb = new_end(sv[1], 1, duplex != 0);
  if (!pa || !pb) {
    mproc__free(pa);
    mproc__free(pb);
    mproc__plat_close(sv[0]);
    mproc__plat_close(sv[1]);
    return -ENOMEM;
  }
  *a = pa;
  *b = pb;
  return 0;
}

void mproc_pipe_destroy(mproc_pipe *p) {
  if (!p) return;
  mproc__plat_close(p->fd);
  mproc__free(p->body);
  mproc__free(p);
}

/* Waits for events on the socket until deadline: 1 ready, 0 timed out, <0 error. */
static int wait_fd(int fd, short events, double deadline) {
  return mproc__plat_poll_fd(fd, events, mproc__remaining(deadline));
}

int mproc_pipe_send(mproc_pipe *p, const void *data, size_t len, double timeout) {
  if (!p || (!data && len) || !mproc__timeout_valid(timeout)) return -EINVAL;
  if (!p->can_send || p->fd < 0) return -EBADF;
  if (len > MPROC_PIPE_MAX_MESSAGE) return -EMSGSIZE;
  uint64_t n = len;
  unsigned char hdr[8];
  memcpy(hdr, &n, 8);
  size_t total = 8 + len, sent = 0;
  double deadline = mproc__deadline(timeout);
  while (sent < total) {
    size_t doff = sent < 8 ? 0 : sent - 8;
    ssize_t r = mproc__plat_send2_nowait(p->fd, hdr + (sent < 8 ? sent : 8), sent < 8 ? 8 - sent : 0,
                                         (const char *)data + doff, len - doff);
    if (r > 0) {
      sent += (size_t)r;
      continue;
    }
    if (r == -EPIPE || r == -ECONNRESET) return MPROC_EEOF;
    if (r < 0 && r != -EAGAIN) return (int)r;
    /* Full: wait.  Before the first byte the timeout applies; after it the message must go whole. */
    if (sent == 0 && timeout == 0) return MPROC_EFULL;
    int w = mproc__plat_poll_fd(p->fd, POLLOUT, sent == 0 ? mproc__remaining(deadline) : -1.0);
    if (w < 0) return w;
    if (w == 0) return -ETIMEDOUT;
  }
  return 0;
}

/* Reads what is available, up to n bytes into dst, waiting until deadline for something (forever when
 * deadline is infinite).  Returns bytes read (> 0), 0 at end of file, or a negative code. */
static ssize_t read_some(mproc_pipe *p, void *dst, size_t n, double deadline, double timeout) {
  /* an answer often comes within microseconds (request and reply): ask again for a short while before
   * sleeping in poll(), whose sleep and wake-up cost more than the wait */
  double spin_until = timeout == 0 ? 0 : mproc__plat_now() + PIPE_SPIN_SECONDS;
  for (;;) {
    ssize_t r = mproc__plat_recv_msg(p->fd, dst, n, false);
    if (r >= 0) return r;
    if (r == -ECONNRESET) return 0;
    if (r != -EAGAIN) return r;
    if (timeout == 0) return MPROC_EEMPTY;
    if (mproc__plat_now() < spin_until && mproc__plat_now() < deadline) {
      for (int k = 0; k < 16; k++) mproc__cpu_relax();
      continue;
    }
    int w = wait_fd(p->fd, POLLIN, deadline);
    if (w < 0) return w;
    if (w == 0) return -ETIMEDOUT;
  }
}

static void reset_msg(mproc_pipe *p) {
  p->hdr_got = 0;
  mproc__free(p->body);
  p->body = NULL;
  p->body_got = 0;
  p->body_cap = 0;
}

/* Receives into buf (cap bytes), or into a new allocation stored in *out when out is not NULL. */
static int recv_common(mproc_pipe *p, void *buf, size_t cap, void **out, size_t *len, double timeout) {
  if (!p || !len || (!out && !buf && cap) || !mproc__timeout_valid(timeout)) return -EINVAL;
  if (!p->can_recv || p->fd < 0) return -EBADF;
  if (p->eof) return MPROC_EEOF;
  double deadline = mproc__deadline(timeout);
  while (p->hdr_got < 8) {
    ssize_t r = read_some(p, p->hdr + p->hdr_got, 8 - p->hdr_got, deadline, timeout);
    if (r == 0) {
      p->eof = 1;
      reset_msg(p);
      return MPROC_EEOF;
    }
    if (r < 0) return (int)r;
    p->hdr_got += (size_t)r;
  }
  uint64_t n;
  memcpy(&n, p->hdr, 8);
  if (n > MPROC_PIPE_MAX_MESSAGE) {
    p->eof = 1;
    return MPROC_ECORRUPT;
  }
  if (!out && n > cap) {
    *len = (size_t)n;
    return -EMSGSIZE;
  }
  /* The destination: the handle's partial buffer if one exists, else the caller's buffer (or a new
   * allocation), moved into the handle if a timeout strikes mid-message.  An allocation grows with the
   * bytes that arrive: the length is the sender's word, and a sender that dies after it (or lies) must
   * not make this process take a gigabyte for nothing. */
  unsigned char *dst = p->body;
  size_t room = p->body_cap;
  int own = dst != NULL;
  if (!dst) {
    room = out && n > PIPE_FIRST_PIECE ? PIPE_FIRST_PIECE : (size_t)n;
    dst = out ? mproc__malloc(room ? room : 1) : buf;
    if (!dst && (out || n)) return -ENOMEM; /* buf may be NULL (cap 0) for an empty message */
  }
  size_t got = p->body_got;
  int r = 0;
  while (got < n) {
    if (got == room) { /* only an allocation fills before the end: twice as large, or the whole message */
      size_t grow = room > n - room ? (size_t)n : 2 * room;
      unsigned char *g = mproc__realloc(dst, grow);
      if (!g) {
        r = -ENOMEM;
        break;
      }
      dst = g;
      room = grow;
    }
    ssize_t k = read_some(p, dst + got, room - got, deadline, timeout);
    if (k > 0) {
      got += (size_t)k;
      continue;
    }
    if (k == 0) { /* end of file inside a message: it is discarded, never delivered torn */
      if (out || own) mproc__free(dst);
      p->body = NULL; /* freed above (moved, if it grew) */
      p->eof = 1;
      reset_msg(p);
      return MPROC_EEOF;
    }
    r = (int)k;
    break;
  }
  if (r < 0) { /* timed out (or failed) mid-message: keep what arrived in the handle */
    if (out || own) {
      p->body = dst;
      p->body_cap = room;
    } else if (got) {
      p->body = mproc__malloc(got);
      if (!p->body) { /* cannot keep it: the stream is lost */
        p->eof = 1;
        return -ENOMEM;
      }
      memcpy(p->body, dst, got);
      p->body_cap = got;
    }
    p->body_got = got;
    return r;
  }
  if (out) {
    *out = dst;
  } else if (own) {
    memcpy(buf, dst, n);
    mproc__free(dst);
  }
  *len = (size_t)n;
  p->body = NULL; /* given away, or freed above */
  reset_msg(p);
  return 0;
}

int mproc_pipe_recv(mproc_pipe *p, void *buf, size_t cap, size_t *len, double timeout) {
  return recv_common(p, buf, cap, NULL, len, timeout);
}

int mproc_pipe_recv_alloc(mproc_pipe *p, void **out, size_t *len, double timeout) {
  if (!out) return -EINVAL;
  return recv_common(p, NULL, 0, out, len, timeout);
}

int mproc_pipe_poll(mproc_pipe *p, double timeout) {
  if (!p || !mproc__timeout_valid(timeout)) return -EINVAL;
  if (!p->can_recv || p->fd < 0) return -EBADF;
  if (p->eof) return 1;
  return mproc__plat_poll_fd(p->fd, POLLIN, timeout);
}

int mproc__pipe_wait_fd(mproc_pipe *p, int *fd) {
  *fd = -1;
  if (!p->can_recv || p->fd < 0) return -EBADF;
  if (p->eof) return 1;
  *fd = p->fd;
  return 0;
}
