/* queue.c: the multi-producer multi-consumer byte-message queue in shared memory (Queue, SimpleQueue,
 * JoinableQueue).
 *
 * Design.  A ring of bytes with monotonically increasing 64-bit positions head (consumers) and tail
 * (producers); a record is a 24-byte header {part length, flags FIRST/LAST, message number, total length}
 * then the bytes, padded to 8, and may wrap around the ring's end.  Producers are serialised by the robust
 * put_lock and consumers by the robust get_lock (as Python's Queue has a wlock and an rlock), so between the
 * current producer and the current consumer the ring is single-producer single-consumer: a put copies its
 * record and publishes it with one store to tail; a get copies and frees it with one store to head.  No
 * system call happens unless someone sleeps: the one producer (consumer) that may sleep for room (data)
 * spins, then raises a waiter flag before sleeping on a futex sequence word, and the other side bumps the
 * word and calls futex_wake only when it sees the flag (spinwait.h).  Lock order: never both locks, except a
 * consumer's trylock of put_lock (below).
 *
 * A message longer than the ring goes as parts FIRST..LAST, all from the producer holding put_lock, so they
 * are contiguous and in order in the ring; the consumer holding get_lock takes them all.
 *
 * Counting.  put_count (messages put) is written only under put_lock, got_count (messages taken) only under
 * get_lock, done_count by task_done.  qsize = put_count - got_count; join waits for done_count >=
 * put_count.  A consumer stores got_count = number+1 of the message it takes (an idempotent store, not an
 * increment) before it frees the record, so a consumer dying anywhere leaves got_count right or one behind
 * only until the next message is taken, and never wedges a bounded queue.
 *
 * Processes killed inside a call.
 * - Producer before publishing: its bytes beyond tail are invisible; the next producer gets -EOWNERDEAD,
 *   rolls put_count back if the journal (pend_count, pend_tail) says it was raised for a record that never
 *   got published, clears stream_seq, and goes on.
 * - Producer between the parts of a multi-part message: the parts already published are discarded by the
 *   consumer, which notices because stream_seq no longer names its message (the producer's successor, or
 *   the consumer itself through a trylock of put_lock that returns -EOWNERDEAD, clears it), or because a
 *   FIRST record of another message follows.  The message counts as done for join.
 * - Consumer: the next consumer gets -EOWNERDEAD; nothing needs repair.  A record the dead consumer had
 *   not freed is delivered again (whole, to a live consumer); the parts left of a message it had begun are
 *   discarded (no FIRST record: orphans), so that message is lost, as Python loses it.  No torn message is
 *   ever returned.
 *
 * Ending.  The word `closed` holds flags: Q_CLOSED (close), Q_SHUT (shutdown) and Q_SHUT_NOW (shutdown
 * immediate); a put reads it once, as before.  Closed and shut down queues differ only in the code their
 * calls return (shutdown wins).  An immediate shutdown drops what is queued (drop_queued, under get_lock:
 * each message dropped counts as taken and done), and every getter that finds Q_SHUT_NOW drops what a put
 * racing the shutdown published after that, so no get delivers a message once the shutdown is seen.
 *
 * Watchers.  mproc_wait() waits on queues without taking get_lock: a watcher adds 2 to data_waiters, the
 * word that the consumer's bell keeps its bit 0 in (spinwait.h), and sleeps on data_seq.  A put reads
 * data_waiters once after it publishes, as it did before watchers existed: with nobody asleep and nobody
 * watching, that one load is all it does; otherwise it bumps data_seq and wakes every sleeper on it. */
#include <stdint.h>

#include "internal.h"
#include "ipc/queue_internal.h"
#include "ipc/waitable.h"
#include "ipc/spinwait.h"

void (*mproc__queue_hook)(int point);

#define QMAGIC 0x4d505251u
#define Q_CLOSED 1u
#define Q_SHUT 2u
#define Q_SHUT_NOW 4u
#define WATCHER 2u /* what a watcher adds to data_waiters (bit 0 is the consumer's bell) */
#define REC_HDR 24u
#define F_FIRST 1u
#define F_LAST 2u
#define NONE UINT64_MAX
#define SLICE 0.02     /* seconds between liveness checks of a producer streaming a large message */
#define SPIN_ROUNDS 64 /* pauses before a wait for room or data sleeps */

typedef struct rec_hdr {
  uint32_t len, flags;
  uint64_t seq, total;
} rec_hdr;

struct mproc_queue {
  uint32_t magic;
  uint32_t closed;   /* Q_CLOSED, Q_SHUT, Q_SHUT_NOW */
  uint64_t map_size; /* nonzero when made by mproc_queue_create(): the mapping to unmap */
  uint64_t cap, max_msgs, max_msg;
  mproc__plat_mutex put_lock;
  mproc__plat_mutex get_lock;
  /* producer side, written under put_lock */
  _Alignas(64) uint64_t tail;
  uint64_t put_count;
  uint64_t pend_count, pend_tail; /* journal of the last publish, for recovery */
  uint64_t stream_seq;            /* the multi-part message being streamed, or NONE */
  uint32_t data_seq;              /* futex word: bumped on every publish */
  uint32_t space_waiters;         /* a producer sleeps on space_seq */
  /* consumer side, written under get_lock */
  _Alignas(64) uint64_t head;
  uint64_t got_count;
  uint32_t space_seq;    /* futex word: bumped on every free */
  uint32_t data_waiters; /* bit 0: a consumer sleeps on data_seq; above: WATCHER per watcher */
  uint64_t dropped_seq;  /* the last multi-part message drop_queued dropped the start of, or NONE */
  /* join */
  _Alignas(64) uint64_t done_count;
  uint32_t done_seq;
  uint32_t join_waiters;
  _Alignas(64) unsigned char ring[];
};

/* The shared words are plain integers (lock-free across processes), read and written sequentially
 * consistent. */
#define LDSC(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STSC(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
static uint64_t rec_size(uint64_t len) { return REC_HDR + ((len + 7) & ~(uint64_t)7); }

void mproc_free(void *p) { mproc__free(p); }

static size_t buffer_of(size_t buffer_bytes) {
  if (buffer_bytes == 0) buffer_bytes = MPROC_QUEUE_DEFAULT_BUFFER;
  if (buffer_bytes < MPROC_QUEUE_MIN_BUFFER || buffer_bytes > ((size_t)1 << 40)) return 0;
  return round_up(buffer_bytes, 64);
}

size_t mproc_queue_size(size_t buffer_bytes) {
  size_t b = buffer_of(buffer_bytes);
  return b ? sizeof(struct mproc_queue) + b : 0;
}

static int check_opts(const mproc_queue_opts *o, size_t *buf, uint64_t *max_msg) {
  mproc_queue_opts d = {0};
  if (!o) o = &d;
  *buf = buffer_of(o->buffer_bytes);
  if (!*buf) return -EINVAL;
  *max_msg = o->max_message_bytes ? o->max_message_bytes : MPROC_QUEUE_DEFAULT_MAX_MESSAGE;
  if (*max_msg > MPROC_QUEUE_MAX_MESSAGE) return -EINVAL;
  return 0;
}

static int setup(struct mproc_queue *q, size_t buf, uint64_t max_msg, const mproc_queue_opts *o) {
  memset(q, 0, sizeof *q);
  q->cap = buf;
  q->max_msgs = o ? o->max_messages : 0;
  q->max_msg = max_msg;
  q->stream_seq = NONE;
  q->pend_count = NONE;
  q->dropped_seq = NONE;
  int r = mproc__plat_mutex_init(&q->put_lock);
  if (r) return r;
  r = mproc__plat_mutex_init(&q->get_lock);
  if (r) {
    mproc__plat_mutex_destroy(&q->put_lock);
    return r;
  }
  q->magic = QMAGIC;
  return 0;
}

int mproc_queue_init(mproc_queue **out, void *mem, size_t size, const mproc_queue_opts *opts) {
  size_t buf;
  uint64_t max_msg;
  if (!out || !mem || ((uintptr_t)mem & 63)) return -EINVAL;
  int r = check_opts(opts, &buf, &max_msg);
  if (r) return r;
  if (size < sizeof(struct mproc_queue) + buf) return -EINVAL;
  r = setup(mem, buf, max_msg, opts);
  if (r) return r;
  *out = mem;
  return 0;
}

int mproc_queue_create(mproc_queue **out, const mproc_queue_opts *opts) {
  size_t buf;
  uint64_t max_msg;
  if (!out) return -EINVAL;
  int r = check_opts(opts, &buf, &max_msg);
  if (r) return r;
  size_t total = round_up(sizeof(struct mproc_queue) + buf, mproc__plat_page_size());
  int err = -ENOMEM;
  struct mproc_queue *q = mproc__plat_shm_map_anon(total, &err);
  if (!q) return err;
  r = setup(q, buf, max_msg, opts);
  if (r) {
    mproc__plat_shm_unmap(q, total);
    return r;
  }
  q->map_size = total;
  *out = q;
  return 0;
}

void mproc_queue_destroy(mproc_queue *q) {
  if (!q) return;
  if (q->map_size) {
    mproc__plat_shm_unmap(q, q->map_size);
  } else {
    q->magic = 0;
    mproc__plat_mutex_destroy(&q->put_lock);
    mproc__plat_mutex_destroy(&q->get_lock);
  }
}

/* ---- ring copies (wrap-aware) ---- */

static void ring_write(struct mproc_queue *q, uint64_t pos, const void *src, size_t n) {
  if (n == 0) return; /* src may be NULL */
  size_t off = (size_t)(pos % q->cap), first = q->cap - off < n ? q->cap - off : n;
  memcpy(q->ring + off, src, first);
  if (n > first) memcpy(q->ring, (const char *)src + first, n - first);
}

static void ring_read(struct mproc_queue *q, uint64_t pos, void *dst, size_t n) {
  if (n == 0) return;
  size_t off = (size_t)(pos % q->cap), first = q->cap - off < n ? q->cap - off : n;
  /* dst is NULL only for a 0-byte message (get into no buffer), and then n is 0: a writer never makes a
   * part longer than its message, which the analyzer cannot see */
  memcpy(dst, q->ring + off, first);  // NOLINT(clang-analyzer-core.NonNullParamChecker)
  if (n > first) memcpy((char *)dst + first, q->ring, n - first);
}

/* ---- records ---- */

/* Whether h, read at head, can be a record a producer wrote: whole within the avail bytes published, and
 * for a message's first part, a length within its message and the queue's largest.  Producers publish
 * only whole records, dead or alive, so a record that fails this means the queue's memory was overwritten:
 * its consumer says MPROC_ECORRUPT and drops what is queued, instead of copying out of bounds or walking past
 * tail. */
static bool rec_ok(const struct mproc_queue *q, const rec_hdr *h, uint64_t avail) {
  if (avail > q->cap || rec_size(h->len) > avail) return false;
  if (!(h->flags & F_FIRST)) return true;
  return h->seq != NONE && h->total <= q->max_msg && h->len <= h->total &&
         (!(h->flags & F_LAST) || h->len == h->total);
}

/* ---- waiting ---- */

/* What a call on an ended queue returns: a shutdown wins over a close. */
static int end_code(uint32_t closed) { return (closed & Q_SHUT) ? MPROC_ESHUTDOWN : MPROC_ECLOSED; }

/* A producer sleeps for room on space_seq, a consumer for data on data_seq, each with its flag raised
 * (spinwait.h); one at a time, since each holds its lock. */
static mproc__bell space_bell(struct mproc_queue *q) {
  return (mproc__bell){.word = &q->space_seq, .asleep = &q->space_waiters};
}

static mproc__bell data_bell(struct mproc_queue *q) {
  return (mproc__bell){.word = &q->data_seq, .asleep = &q->data_waiters};
}

/* join's waiters are counted (any number may join), so join sleeps on done_seq in its own loop below. */
static void wake_joiners(struct mproc_queue *q) {
  ADD(&q->done_seq, 1);
  if (LDSC(&q->join_waiters)) mproc__plat_futex_wake(&q->done_seq, INT32_MAX);
}

/* ---- producer ---- */

/* The caller holds put_lock after -EOWNERDEAD: undo what the dead producer left half-done. */
static void recover_put(struct mproc_queue *q) {
  uint64_t tail = q->tail;
  if (q->pend_count != NONE && q->put_count == q->pend_count && tail != q->pend_tail)
    STSC(&q->put_count, q->pend_count - 1); /* raised for a record never published */
  q->pend_count = NONE;
  STSC(&q->stream_seq, NONE);
  mproc__bell_ring(data_bell(q), INT32_MAX);
}

static int lock_put(struct mproc_queue *q, double timeout) {
  int r = mproc__plat_mutex_lock(&q->put_lock, timeout);
  if (r == -EOWNERDEAD) {
    recover_put(q);
    mproc__plat_mutex_consistent(&q->put_lock);
    r = 0;
  }
  return r;
}

static int room_ok(struct mproc_queue *q, uint64_t need, int count_bound) {
  if (q->cap - (q->tail - LDSC(&q->head)) < need) return 0;
  if (!count_bound || !q->max_msgs) return 1;
  int64_t queued = (int64_t)(q->put_count - LDSC(&q->got_count));
  return queued < (int64_t)q->max_msgs;
}

/* What a producer waits for, and how its wait ends: 0 (room), MPROC_ECLOSED, MPROC_ESHUTDOWN, or
 * MPROC_EFULL (no room and no wait wanted). */
typedef struct room_wait {
  struct mproc_queue *q;
  uint64_t need;
  int count_bound;
  bool nowait;
  int result;
} room_wait;

static bool room_or_end(void *arg) {
  room_wait *w = arg;
  uint32_t closed = LDSC(&w->q->closed);
  if (closed)
    w->result = end_code(closed);
  else if (room_ok(w->q, w->need, w->count_bound))
    w->result = 0;
  else if (w->nowait)
    w->result = MPROC_EFULL;
  else
    return false;
  return true;
}

/* Waits until need bytes are free (and, when count_bound, the count bound allows one more message). */
static int wait_room(struct mproc_queue *q, uint64_t need, int count_bound, double deadline, double timeout) {
  room_wait w = {.q = q, .need = need, .count_bound = count_bound, .nowait = timeout == 0};
  mproc__spin spin = {.rounds = SPIN_ROUNDS, .pauses = 1};
  int r = mproc__spinwait(space_bell(q), &spin, room_or_end, &w, deadline);
  return r ? r : w.result;
}

static void publish(struct mproc_queue *q, uint64_t new_tail) {
  STSC(&q->tail, new_tail);
  mproc__bell_ring(data_bell(q), INT32_MAX);
}

int mproc_queue_put(mproc_queue *q, const void *data, size_t len, double timeout) {
  if (!q || q->magic != QMAGIC || (!data && len) || !mproc__timeout_valid(timeout)) return -EINVAL;
  if (len > q->max_msg) return -EMSGSIZE;
  uint32_t closed = LDSC(&q->closed);
  if (closed) return end_code(closed);
  double deadline = mproc__deadline(timeout);
  int r = lock_put(q, timeout);
  if (r == -ETIMEDOUT && timeout == 0) return MPROC_EFULL;
  if (r) return r;
  uint64_t n = q->put_count;
  rec_hdr h = {.seq = n, .total = len, .flags = F_FIRST};
  if (rec_size(len) <= q->cap) {
    r = wait_room(q, rec_size(len), 1, deadline, timeout);
    if (r == 0) {
      h.len = (uint32_t)len;
      h.flags |= F_LAST;
      ring_write(q, q->tail, &h, sizeof h);
      ring_write(q, q->tail + REC_HDR, data, len);
      q->pend_count = n + 1;
      q->pend_tail = q->tail + rec_size(len);
      STSC(&q->put_count, n + 1);
      if (mproc__queue_hook) mproc__queue_hook(MPROC__QHOOK_PUT_WRITTEN);
      publish(q, q->pend_tail);
      q->pend_count = NONE;
    }
  } else {
    /* Stream in parts: each waits for half the ring (or what is left) to be free. */
    size_t off = 0;
    uint64_t half = (q->cap / 2) & ~(uint64_t)7;
    while (off < len) {
      uint64_t left = len - off;
      uint64_t want = rec_size(left) < half ? rec_size(left) : half;
      r = wait_room(q, want, off == 0, deadline, timeout);
      if (r) break;
      uint64_t room = q->cap - (q->tail - LDSC(&q->head)) - REC_HDR;
      uint64_t chunk = left < room ? left : room & ~(uint64_t)7;
      if (chunk > UINT32_MAX - 64) chunk = (UINT32_MAX - 64) & ~(uint64_t)7;
      h.len = (uint32_t)chunk;
      h.flags = (off == 0 ? F_FIRST : 0) | (off + chunk == len ? F_LAST : 0);
      ring_write(q, q->tail, &h, sizeof h);
      ring_write(q, q->tail + REC_HDR, (const char *)data + off, chunk);
      uint64_t nt = q->tail + rec_size(chunk);
      if (off == 0) {
        STSC(&q->stream_seq, n);
        q->pend_count = n + 1;
        q->pend_tail = nt;
        STSC(&q->put_count, n + 1);
      }
      publish(q, nt);
      q->pend_count = NONE;
      off += chunk;
      if (off < len && mproc__queue_hook) mproc__queue_hook(MPROC__QHOOK_PUT_PART);
    }
    STSC(&q->stream_seq, NONE);
    if (r && off > 0) mproc__bell_ring(data_bell(q), INT32_MAX);
  }
  mproc__plat_mutex_unlock(&q->put_lock);
  return r;
}

int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len) {
  return mproc_queue_put(q, data, len, 0);
}

/* ---- consumer ---- */

/* What a consumer waits for, and how its wait ends: 0 (a record), 1 (the stream of message mid_seq was
 * abandoned), MPROC_ECLOSED, MPROC_ESHUTDOWN, or MPROC_EEMPTY (nothing there and no wait wanted). */
typedef struct data_wait {
  struct mproc_queue *q;
  uint64_t mid_seq;
  bool nowait;
  int result;
} data_wait;

static bool data_or_end(void *arg) {
  data_wait *w = arg;
  struct mproc_queue *q = w->q;
  uint32_t closed;
  if (LDSC(&q->tail) != q->head) {
    w->result = 0;
  } else if (w->mid_seq != NONE) {
    if (LDSC(&q->stream_seq) == w->mid_seq) return false;
    w->result = LDSC(&q->tail) != q->head ? 0 : 1; /* finished (then tail moved first) or abandoned */
  } else if ((closed = LDSC(&q->closed)) != 0) {
    w->result = end_code(closed);
  } else if (w->nowait) {
    w->result = MPROC_EEMPTY;
  } else {
    return false;
  }
  return true;
}

/* Waits until the ring holds a record.  mid_seq != NONE: the caller has taken the first parts of message
 * mid_seq and waits for the rest, beyond any deadline, while its producer streams it; returns 1 when the
 * stream was abandoned. */
static int wait_data(struct mproc_queue *q, double deadline, double timeout, uint64_t mid_seq) {
  data_wait w = {.q = q, .mid_seq = mid_seq, .nowait = timeout == 0};
  mproc__spin spin = {.rounds = SPIN_ROUNDS, .pauses = 1};
  if (mid_seq == NONE) {
    int r = mproc__spinwait(data_bell(q), &spin, data_or_end, &w, deadline);
    return r ? r : w.result;
  }
  for (;;) {
    int r = mproc__spinwait(data_bell(q), &spin, data_or_end, &w, mproc__plat_now() + SLICE);
    if (r != -ETIMEDOUT) return r ? r : w.result;
    /* Is the producer alive?  Its put_lock tells: busy means alive. */
    int l = mproc__plat_mutex_lock(&q->put_lock, 0);
    if (l == -EOWNERDEAD) {
      recover_put(q);
      mproc__plat_mutex_consistent(&q->put_lock);
    }
    if (l == 0 || l == -EOWNERDEAD) mproc__plat_mutex_unlock(&q->put_lock);
  }
}

static void free_rec(struct mproc_queue *q, uint64_t size) {
  STSC(&q->head, q->head + size);
  mproc__bell_ring(space_bell(q), INT32_MAX);
}

static void count_done(struct mproc_queue *q) {
  ADD(&q->done_count, 1);
  wake_joiners(q);
}

/* Under get_lock: drops every record queued, as an immediate shutdown does.  A message whose start it
 * drops counts as taken and done at once (Python's shutdown calls task_done for each item it drains); the
 * parts of it that follow later are orphans that count nothing again (dropped_seq). */
static void drop_queued(struct mproc_queue *q) {
  uint64_t tail;
  while ((tail = LDSC(&q->tail)) != q->head) {
    rec_hdr h;
    ring_read(q, q->head, &h, sizeof h);
    if (!rec_ok(q, &h, tail - q->head)) {
      free_rec(q, tail - q->head);
      break;
    }
    free_rec(q, rec_size(h.len));
    if (h.flags & F_FIRST) {
      STSC(&q->got_count, h.seq + 1);
      if (!(h.flags & F_LAST)) q->dropped_seq = h.seq;
      count_done(q);
    } else if ((h.flags & F_LAST) && h.seq != q->dropped_seq) {
      count_done(q);
    }
  }
}

/* The common get: into buf when out is NULL, else into a new allocation. */
static int get_common(struct mproc_queue *q, void *buf, size_t cap, void **out, size_t *len, double timeout) {
  if (!q || q->magic != QMAGIC || !len || (!buf && cap && !out) || !mproc__timeout_valid(timeout))
    return -EINVAL;
  double deadline = mproc__deadline(timeout);
  int r = mproc__plat_mutex_lock(&q->get_lock, timeout);
  if (r == -EOWNERDEAD) {
    mproc__plat_mutex_consistent(&q->get_lock); /* nothing to repair: see the design note */
    r = 0;
  }
  if (r == -ETIMEDOUT && timeout == 0) return MPROC_EEMPTY;
  if (r) return r;
  rec_hdr h;
  for (;;) {
    if (LDSC(&q->closed) & Q_SHUT_NOW) {
      r = MPROC_ESHUTDOWN;
      break;
    }
    r = wait_data(q, deadline, timeout, NONE);
    if (r) break;
    ring_read(q, q->head, &h, sizeof h);
    if (!rec_ok(q, &h, LDSC(&q->tail) - q->head)) {
      r = MPROC_ECORRUPT;
      break;
    }
    if (!(h.flags & F_FIRST)) { /* orphan part of a message whose consumer died, or that a shutdown dropped */
      free_rec(q, rec_size(h.len));
      if ((h.flags & F_LAST) && h.seq != q->dropped_seq) count_done(q);
      continue;
    }
    char *dst = buf;
    if (out) {
      dst = mproc__malloc(h.total ? h.total : 1);
      if (!dst) {
        r = -ENOMEM;
        break;
      }
    } else if (h.total > cap) {
      *len = h.total;
      r = -EMSGSIZE;
      break;
    }
    uint64_t n = h.seq, total = h.total, off = 0;
    STSC(&q->got_count, n + 1);
    int aborted = 0;
    for (;;) {
      ring_read(q, q->head + REC_HDR, dst + off, h.len);
      off += h.len;
      int last = (h.flags & F_LAST) != 0;
      free_rec(q, rec_size(h.len));
      if (last) break;
      if (mproc__queue_hook) mproc__queue_hook(MPROC__QHOOK_GET_PART);
      if (wait_data(q, deadline, timeout, n) == 1) {
        aborted = 1;
        break;
      }
      ring_read(q, q->head, &h, sizeof h);
      if (!rec_ok(q, &h, LDSC(&q->tail) - q->head)) {
        aborted = 2;
        break;
      }
      if ((h.flags & F_FIRST) || h.seq != n || off + h.len > total) { /* a new message: ours was abandoned */
        aborted = 1;
        break;
      }
    }
    if (aborted || off != total) {
      if (out) mproc__free(dst);
      count_done(q);
      if (aborted == 2) {
        r = MPROC_ECORRUPT;
        break;
      }
      continue;
    }
    if (out) *out = dst;
    *len = total;
    r = 0;
    break;
  }
  if (r == MPROC_ESHUTDOWN && (LDSC(&q->closed) & Q_SHUT_NOW)) drop_queued(q);
  if (r == MPROC_ECORRUPT) free_rec(q, LDSC(&q->tail) - q->head); /* what follows cannot be read either */
  mproc__plat_mutex_unlock(&q->get_lock);
  return r;
}

int mproc_queue_get(mproc_queue *q, void *buf, size_t cap, size_t *len, double timeout) {
  return get_common(q, buf, cap, NULL, len, timeout);
}

int mproc_queue_get_nowait(mproc_queue *q, void *buf, size_t cap, size_t *len) {
  return get_common(q, buf, cap, NULL, len, 0);
}

int mproc_queue_get_alloc(mproc_queue *q, void **out, size_t *len, double timeout) {
  if (!out) return -EINVAL;
  return get_common(q, NULL, 0, out, len, timeout);
}

/* ---- state ---- */

long long mproc_queue_qsize(mproc_queue *q) {
  if (!q || q->magic != QMAGIC) return -EINVAL;
  int64_t d = (int64_t)(LDSC(&q->put_count) - LDSC(&q->got_count));
  return d > 0 ? d : 0;
}

int mproc_queue_empty(mproc_queue *q) {
  long long n = mproc_queue_qsize(q);
  return n < 0 ? (int)n : n == 0;
}

int mproc_queue_full(mproc_queue *q) {
  long long n = mproc_queue_qsize(q);
  if (n < 0) return (int)n;
  if (q->max_msgs && (uint64_t)n >= q->max_msgs) return 1;
  return q->cap - (LDSC(&q->tail) - LDSC(&q->head)) < REC_HDR;
}

/* Sets end flags and wakes every sleeper: producers, the consumer and watchers. */
static void end_queue(struct mproc_queue *q, uint32_t flags) {
  __atomic_fetch_or(&q->closed, flags, __ATOMIC_SEQ_CST);
  ADD(&q->data_seq, 1);
  ADD(&q->space_seq, 1);
  mproc__plat_futex_wake(&q->data_seq, INT32_MAX);
  mproc__plat_futex_wake(&q->space_seq, INT32_MAX);
}

int mproc_queue_close(mproc_queue *q) {
  if (!q || q->magic != QMAGIC) return -EINVAL;
  end_queue(q, Q_CLOSED);
  return 0;
}

int mproc_queue_shutdown(mproc_queue *q, int immediate) {
  if (!q || q->magic != QMAGIC) return -EINVAL;
  end_queue(q, Q_SHUT | (immediate ? Q_SHUT_NOW : 0));
  if (!immediate) return 0;
  /* The consumer holding get_lock, if any, was just woken and leaves: it sees the flag, or finishes the
   * message it was taking, whose producer sees the flag before its next part. */
  int r = mproc__plat_mutex_lock(&q->get_lock, MPROC_FOREVER);
  if (r == -EOWNERDEAD) {
    mproc__plat_mutex_consistent(&q->get_lock);
    r = 0;
  }
  if (r) return r;
  drop_queued(q);
  mproc__plat_mutex_unlock(&q->get_lock);
  return 0;
}

void mproc__queue_forge(mproc_queue *q, uint64_t head, const void *bytes, size_t n, uint64_t tail) {
  q->head = head;
  ring_write(q, head, bytes, n < q->cap ? n : q->cap);
  q->tail = tail;
}

/* ---- watchers (mproc_wait) ---- */

int mproc__queue_ready(mproc_queue *q) {
  if (q->magic != QMAGIC) return -EINVAL;
  return LDSC(&q->tail) != LDSC(&q->head) || LDSC(&q->closed) != 0;
}

void mproc__queue_watch(mproc_queue *q, bool on) {
  if (on)
    ADD(&q->data_waiters, WATCHER);
  else
    __atomic_fetch_sub(&q->data_waiters, WATCHER, __ATOMIC_SEQ_CST);
}

uint32_t *mproc__queue_word(mproc_queue *q) { return &q->data_seq; }

int mproc_queue_task_done(mproc_queue *q) {
  if (!q || q->magic != QMAGIC) return -EINVAL;
  uint64_t d = LDSC(&q->done_count);
  do {
    if (d >= LDSC(&q->got_count)) return MPROC_EBOUND;
  } while (!__atomic_compare_exchange_n(&q->done_count, &d, d + 1, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
  wake_joiners(q);
  return 0;
}

int mproc_queue_join(mproc_queue *q, double timeout) {
  if (!q || q->magic != QMAGIC || !mproc__timeout_valid(timeout)) return -EINVAL;
  double deadline = mproc__deadline(timeout);
  for (;;) {
    uint32_t seq = LDSC(&q->done_seq);
    if ((int64_t)(LDSC(&q->done_count) - LDSC(&q->put_count)) >= 0) return 0;
    double left = mproc__remaining(deadline);
    if (left == 0) return -ETIMEDOUT;
    ADD(&q->join_waiters, 1);
    int r = 0;
    if ((int64_t)(LDSC(&q->done_count) - LDSC(&q->put_count)) < 0)
      r = mproc__plat_futex_wait(&q->done_seq, seq, left);
    __atomic_fetch_sub(&q->join_waiters, 1, __ATOMIC_SEQ_CST);
    if (r && r != -ETIMEDOUT && r != -EINTR) return r;
  }
}
