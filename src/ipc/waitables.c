/* waitables.c: mproc_wait(), one wait over processes, pipe ends, queues and descriptors
 * (multiprocessing.connection.wait).
 *
 * Processes (their pidfd), pipe ends (their socket) and raw descriptors are polled.  Queues have no
 * descriptor: a queue is a futex word in shared memory (its data_seq), which its putters bump and wake only
 * while someone sleeps or watches (waitable.h, queue.c), so that a put nobody waits for still reads one
 * word.  So the wait, after a look at everything that finds nothing ready:
 * - only descriptors: one ppoll;
 * - only queues: one futex_waitv over their words (Linux 5.16);
 * - both: a helper thread sleeps in futex_waitv over the queues' words and a stop word, and signals an
 *   eventfd that the calling thread polls beside the descriptors; the caller then stops and joins it.  The
 *   thread exists only while such a wait sleeps.
 * A watcher registers with every queue before its first look (so that no put after the look goes
 * unrung), reads each queue's word before each look, and sleeps on the values read: a put between the look
 * and the sleep has moved a word, and the sleep returns at once.
 *
 * Where the kernel has no futex_waitv, or more than MPROC__PLAT_WAIT_ANY_MAX queues are waited on, or a
 * process has no pidfd (before Linux 5.3), the sleep is cut into slices of SLICE seconds and everything is
 * looked at again between them: ready objects are then seen within SLICE. */
#include <limits.h>
#include <pthread.h>

#include "internal.h"
#include "ipc/waitable.h"

#define SLICE 0.01

typedef struct wait_set {
  mproc_waitable *objs;
  size_t n;
  struct pollfd *fds; /* nfds descriptors, then room for the helper's eventfd */
  size_t *fd_obj;     /* the entry each descriptor belongs to */
  size_t nfds;
  uint32_t **words; /* the queues' words, then room for the stop word */
  uint32_t *seen;
  size_t nq;
  bool sliced; /* something cannot be slept on: sleep in slices */
} wait_set;

/* Checks an entry, and adds its descriptor or word to the set.  0, or a negative code. */
static int add_entry(wait_set *s, size_t i) {
  mproc_waitable *w = &s->objs[i];
  int fd = -1, r;
  switch (w->kind) {
    case MPROC_WAITABLE_PROCESS:
      if (!w->u.process) return MPROC_EINVAL;
      r = mproc__process_wait_fd(w->u.process, &fd);
      if (r < 0) return r;
      if (r == 0 && fd < 0) s->sliced = true;
      break;
    case MPROC_WAITABLE_PIPE:
      if (!w->u.pipe) return MPROC_EINVAL;
      r = mproc__pipe_wait_fd(w->u.pipe, &fd);
      if (r < 0) return r;
      break;
    case MPROC_WAITABLE_QUEUE:
      if (!w->u.queue) return MPROC_EINVAL;
      r = mproc__queue_ready(w->u.queue);
      if (r < 0) return r;
      s->words[s->nq++] = mproc__queue_word(w->u.queue);
      return 0;
    case MPROC_WAITABLE_FD:
      if (w->u.fd < 0) return MPROC_EBADF;
      fd = w->u.fd;
      break;
    default:
      return MPROC_EINVAL;
  }
  if (fd >= 0) {
    s->fds[s->nfds] = (struct pollfd){.fd = fd, .events = POLLIN};
    s->fd_obj[s->nfds++] = i;
  }
  return 0;
}

static void watch_queues(wait_set *s, bool on) {
  for (size_t i = 0; i < s->n; i++)
    if (s->objs[i].kind == MPROC_WAITABLE_QUEUE) mproc__queue_watch(s->objs[i].u.queue, on);
}

/* Looks at every entry once, without waiting: sets ready and returns how many are, or a negative code. */
static int look(wait_set *s) {
  for (size_t k = 0; k < s->nq; k++) s->seen[k] = __atomic_load_n(s->words[k], __ATOMIC_SEQ_CST);
  for (size_t i = 0; i < s->n; i++) s->objs[i].ready = 0;
  if (s->nfds) {
    int r = mproc__plat_poll(s->fds, s->nfds, 0);
    if (r < 0) return r;
    for (size_t j = 0; r > 0 && j < s->nfds; j++) {
      if (s->fds[j].revents & POLLNVAL) return MPROC_EBADF;
      if (s->fds[j].revents) s->objs[s->fd_obj[j]].ready = 1;
    }
  }
  int count = 0;
  for (size_t i = 0; i < s->n; i++) {
    mproc_waitable *w = &s->objs[i];
    int fd;
    if (w->kind == MPROC_WAITABLE_QUEUE) {
      int r = mproc__queue_ready(w->u.queue);
      if (r < 0) return r;
      w->ready = r;
    } else if (w->kind == MPROC_WAITABLE_PROCESS && !w->ready) {
      int r = mproc__process_wait_fd(w->u.process, &fd); /* ended and known, or no pidfd */
      if (r < 0) return r;
      w->ready = r;
    } else if (w->kind == MPROC_WAITABLE_PIPE && !w->ready) {
      w->ready = mproc__pipe_wait_fd(w->u.pipe, &fd) == 1; /* end of file seen before */
    }
    count += w->ready;
  }
  return count;
}

/* The helper of a wait on queues and descriptors: sleeps on the queues' words and the stop word, then
 * signals the eventfd the caller polls. */
typedef struct helper {
  wait_set *s;
  uint32_t stop; /* futex word: 1 once the caller is done */
  int event;
  bool sliced;
} helper;

/* Sleeps on the queues' words (and extra words after them) until one moves: futex_waitv, or slices on the
 * first word where there is none.  0 when woken or sliced, -ETIMEDOUT, or a futex error. */
static int sleep_on_words(uint32_t **words, const uint32_t *seen, size_t n, double timeout, bool *sliced) {
  int r = *sliced ? -ENOSYS : mproc__plat_futex_wait_any(words, seen, n, timeout);
  if (r == -ENOSYS || r == -E2BIG) {
    *sliced = true;
    double t = timeout < 0 || timeout > SLICE ? SLICE : timeout;
    r = mproc__plat_futex_wait(words[0], seen[0], t);
    if (r == -ETIMEDOUT && t < timeout) r = 0;
    if (r == -ETIMEDOUT && timeout < 0) r = 0;
  }
  return r == -EINTR ? 0 : r;
}

static void *helper_main(void *arg) {
  helper *h = arg;
  wait_set *s = h->s;
  s->words[s->nq] = &h->stop;
  s->seen[s->nq] = 0;
  for (;;) {
    bool moved = false;
    for (size_t k = 0; k <= s->nq && !moved; k++)
      moved = __atomic_load_n(s->words[k], __ATOMIC_SEQ_CST) != s->seen[k];
    if (moved) break;
    int r = sleep_on_words(s->words, s->seen, s->nq + 1, MPROC_FOREVER, &h->sliced);
    if (r < 0 && r != -ETIMEDOUT) break;
  }
  mproc__plat_event_signal(h->event);
  return NULL;
}

/* Sleeps until something may have become ready, at most timeout seconds.  0 or a negative code. */
static int sleep_once(wait_set *s, double timeout, int *event) {
  if (s->nq == 0) {
    int r = mproc__plat_poll(s->fds, s->nfds, timeout);
    return r < 0 ? r : 0;
  }
  if (s->nfds == 0) {
    int r = sleep_on_words(s->words, s->seen, s->nq, timeout, &s->sliced);
    return r == -ETIMEDOUT ? 0 : r;
  }
  if (*event < 0) {
    *event = mproc__plat_event_create();
    if (*event < 0) return *event;
  }
  helper h = {.s = s, .stop = 0, .event = *event, .sliced = s->sliced};
  pthread_t th;
  int r = mproc__plat_thread_start(&th, helper_main, &h);
  if (r < 0) return r;
  s->fds[s->nfds] = (struct pollfd){.fd = *event, .events = POLLIN};
  r = mproc__plat_poll(s->fds, s->nfds + 1, timeout);
  __atomic_store_n(&h.stop, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&h.stop, 1);
  pthread_join(th, NULL);
  s->sliced = h.sliced;
  if (s->fds[s->nfds].revents) { /* drain the event for the next round */
    mproc__plat_close(*event);
    *event = -1;
  }
  return r < 0 ? r : 0;
}

int mproc_wait(mproc_waitable *objs, size_t n, double timeout, size_t *ready_out) {
  if (!objs || n == 0 || n > INT_MAX || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  double deadline = mproc__deadline(timeout);
  /* One block: descriptors (+1), their entries, queue words (+1), their values. */
  size_t m = n + 1;
  unsigned char *mem =
      mproc__malloc(m * (sizeof(struct pollfd) + sizeof(size_t) + sizeof(uint32_t *) + sizeof(uint32_t)));
  if (!mem) return MPROC_ENOMEM;
  wait_set s = {.objs = objs, .n = n};
  s.fds = (struct pollfd *)(void *)mem;
  s.fd_obj = (size_t *)(void *)(s.fds + m);
  s.words = (uint32_t **)(void *)(s.fd_obj + m);
  s.seen = (uint32_t *)(void *)(s.words + m);
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++) r = add_entry(&s, i);
  if (r < 0) {
    mproc__free(mem);
    return r;
  }
  bool watching = s.nq > 0 && timeout != 0;
  if (watching) watch_queues(&s, true);
  int event = -1;
  for (;;) {
    r = look(&s);
    if (r != 0) break;
    double left = mproc__remaining(deadline);
    if (left == 0) break;
    if (s.sliced && (left < 0 || left > SLICE)) left = SLICE;
    r = sleep_once(&s, left, &event);
    if (r < 0) break;
  }
  if (watching) watch_queues(&s, false);
  if (event >= 0) mproc__plat_close(event);
  if (r > 0 && ready_out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (objs[i].ready) ready_out[k++] = i;
  }
  mproc__free(mem);
  return r;
}
