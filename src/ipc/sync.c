/* sync.c: Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier in shared memory.
 *
 * Locks are the platform's robust process-shared mutex (futex-based, no system call when uncontended;
 * a dead holder is reported to the next acquirer).  The others are 32-bit futex words with a count of
 * sleepers, so that release/set/notify make a wake-up call only when someone sleeps.  A handle is the
 * address of the object in its shared memory: valid in every process that has that memory at the same
 * address (children forked after it was made).  What happens when a process dies:
 *   - holding a Lock/RLock: the next acquirer gets MPROC_EOWNERDEAD and holds it;
 *   - holding semaphore units: they are gone (semaphores have no owner), as in Python;
 *   - waiting on a Condition, Event or Semaphore: nothing is held while sleeping, the others go on;
 *   - waiting at a Barrier: the others wait for it until their timeout, which breaks the barrier.
 * The Barrier's own bookkeeping is under a robust mutex: a process killed inside it does not wedge it. */
#include "internal.h"

#include <limits.h>

/* A holder's death is tracked here rather than left to glibc's robust mutex: glibc marks the mutex
 * consistent again only when told, and one left inconsistent misbehaves in its timed and try paths (a
 * timed acquire returned -ENOTRECOVERABLE once, then -EDEADLK; a release after it crashed in
 * pthread_mutex_unlock; a recursive one was handed out again).  So the acquirer that gets EOWNERDEAD makes
 * the mutex consistent at once and records LOCK_INCONSISTENT; the holder's last release of it in that state
 * records LOCK_BROKEN, which every acquire checks first (and again once it holds the mutex, for those that
 * were already waiting). */
enum { LOCK_OK = 0, LOCK_INCONSISTENT = 1, LOCK_BROKEN = 2 };

struct mproc_lock {
  mproc__plat_mutex m;
  uint32_t recursive;
  uint32_t mapped; /* made by create: destroy unmaps it */
  uint32_t state;  /* LOCK_*: written by the holder, read by anyone */
  uint32_t depth;  /* the holder's acquisitions not yet released: read and written by the holder only */
};

struct mproc_semaphore {
  _Alignas(8) uint32_t value;
  uint32_t sleepers;
  uint32_t bound; /* 0: unbounded */
  uint32_t mapped;
};

struct mproc_event {
  _Alignas(8) uint32_t flag;
  uint32_t sleepers;
  uint32_t mapped;
};

struct mproc_condition {
  _Alignas(8) uint32_t seq;
  uint32_t sleepers;
  mproc_lock *lock; /* an address in shared memory, the same in every process */
  struct mproc_lock own;
  uint32_t mapped;
};

struct mproc_barrier {
  mproc__plat_mutex m;
  uint32_t gen;         /* futex word: moves on when a generation ends, passed or broken */
  uint32_t last_passed; /* the last generation that passed normally */
  uint32_t count, parties, broken;
  int (*action)(void *);
  void *action_arg;
  uint32_t mapped;
};

/* create = map anonymous shared memory + init; destroy unmaps what create mapped. */
static void *map_object(size_t size, int *err) { return mproc__plat_shm_map_anon(size, err); }

static int wait_word(uint32_t *word, uint32_t expected, uint32_t *sleepers, double deadline) {
  double left = mproc__remaining(deadline);
  if (left == 0) return MPROC_ETIMEDOUT;
  __atomic_fetch_add(sleepers, 1, __ATOMIC_SEQ_CST);
  int r = mproc__plat_futex_wait(word, expected, left);
  __atomic_fetch_sub(sleepers, 1, __ATOMIC_SEQ_CST);
  return r == MPROC_ETIMEDOUT ? r : 0;
}

static void wake_word(uint32_t *word, uint32_t *sleepers, int n) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST)) mproc__plat_futex_wake(word, n);
}

/* ---- Lock / RLock ---- */

size_t mproc_lock_size(void) { return sizeof(struct mproc_lock); }

int mproc_lock_init(mproc_lock **out, void *mem, int recursive) {
  if (!out || !mem || ((uintptr_t)mem & 7)) return MPROC_EINVAL;
  mproc_lock *l = mem;
  memset(l, 0, sizeof *l);
  int r = recursive ? mproc__plat_mutex_init_recursive(&l->m) : mproc__plat_mutex_init(&l->m);
  if (r < 0) return r;
  l->recursive = recursive != 0;
  *out = l;
  return 0;
}

int mproc_lock_create(mproc_lock **out, int recursive) {
  if (!out) return MPROC_EINVAL;
  int err = 0;
  void *mem = map_object(sizeof(struct mproc_lock), &err);
  if (!mem) return err;
  int r = mproc_lock_init(out, mem, recursive);
  if (r < 0) {
    mproc__plat_shm_unmap(mem, sizeof(struct mproc_lock));
    return r;
  }
  (*out)->mapped = 1;
  return 0;
}

static bool lock_broken(mproc_lock *l) { return __atomic_load_n(&l->state, __ATOMIC_ACQUIRE) == LOCK_BROKEN; }

int mproc_lock_acquire(mproc_lock *l, double timeout) {
  if (!l || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  if (lock_broken(l)) return MPROC_ENOTRECOVERABLE;
  int r = mproc__plat_mutex_lock(&l->m, timeout);
  if (r == MPROC_EOWNERDEAD) {
    mproc__plat_mutex_consistent(&l->m);
    if (lock_broken(l)) { /* the dead holder was the one that broke it */
      mproc__plat_mutex_unlock(&l->m);
      return MPROC_ENOTRECOVERABLE;
    }
    __atomic_store_n(&l->state, LOCK_INCONSISTENT, __ATOMIC_RELEASE);
    l->depth = 1; /* whatever the dead holder's count was, this one holds it once */
    return MPROC_EOWNERDEAD;
  }
  if (r < 0) return r;
  if (lock_broken(l)) { /* broken while this one waited */
    mproc__plat_mutex_unlock(&l->m);
    return MPROC_ENOTRECOVERABLE;
  }
  l->depth++;
  return 0;
}

int mproc_lock_release(mproc_lock *l) {
  if (!l) return MPROC_EINVAL;
  if (lock_broken(l) || !mproc__plat_mutex_held(&l->m)) return MPROC_EPERM;
  if (--l->depth == 0 && __atomic_load_n(&l->state, __ATOMIC_ACQUIRE) == LOCK_INCONSISTENT)
    __atomic_store_n(&l->state, LOCK_BROKEN, __ATOMIC_RELEASE);
  return mproc__plat_mutex_unlock(&l->m);
}

int mproc_lock_consistent(mproc_lock *l) {
  if (!l) return MPROC_EINVAL;
  if (__atomic_load_n(&l->state, __ATOMIC_ACQUIRE) != LOCK_INCONSISTENT || !mproc__plat_mutex_held(&l->m))
    return MPROC_EINVAL;
  __atomic_store_n(&l->state, LOCK_OK, __ATOMIC_RELEASE);
  return 0;
}

void mproc_lock_destroy(mproc_lock *l) {
  if (!l) return;
  mproc__plat_mutex_destroy(&l->m);
  if (l->mapped) mproc__plat_shm_unmap(l, sizeof *l);
}

/* ---- Semaphore / BoundedSemaphore ---- */

size_t mproc_semaphore_size(void) { return sizeof(struct mproc_semaphore); }

int mproc_semaphore_init(mproc_semaphore **out, void *mem, unsigned value, unsigned bound) {
  if (!out || !mem || ((uintptr_t)mem & 7) || value > INT32_MAX || bound > INT32_MAX ||
      (bound && value > bound))
    return MPROC_EINVAL;
  mproc_semaphore *s = mem;
  memset(s, 0, sizeof *s);
  s->value = value;
  s->bound = bound;
  *out = s;
  return 0;
}

int mproc_semaphore_create(mproc_semaphore **out, unsigned value, unsigned bound) {
  if (!out) return MPROC_EINVAL;
  int err = 0;
  void *mem = map_object(sizeof(struct mproc_semaphore), &err);
  if (!mem) return err;
  int r = mproc_semaphore_init(out, mem, value, bound);
  if (r < 0) {
    mproc__plat_shm_unmap(mem, sizeof(struct mproc_semaphore));
    return r;
  }
  (*out)->mapped = 1;
  return 0;
}

static bool sem_try(mproc_semaphore *s) {
  uint32_t v = __atomic_load_n(&s->value, __ATOMIC_ACQUIRE);
  while (v > 0)
    if (__atomic_compare_exchange_n(&s->value, &v, v - 1, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      return true;
  return false;
}

int mproc_semaphore_acquire(mproc_semaphore *s, double timeout) {
  if (!s || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  for (int i = 0; i < 100; i++) {
    if (sem_try(s)) return 0;
    mproc__cpu_relax();
  }
  double deadline = mproc__deadline(timeout);
  for (;;) {
    if (sem_try(s)) return 0;
    if (wait_word(&s->value, 0, &s->sleepers, deadline) == MPROC_ETIMEDOUT)
      return sem_try(s) ? 0 : MPROC_ETIMEDOUT;
  }
}

int mproc_semaphore_release(mproc_semaphore *s, unsigned n) {
  if (!s || n == 0 || n > INT32_MAX) return MPROC_EINVAL;
  uint32_t v = __atomic_load_n(&s->value, __ATOMIC_ACQUIRE);
  for (;;) {
    uint64_t next = (uint64_t)v + n;
    if ((s->bound && next > s->bound) || next > INT32_MAX) return MPROC_EBOUND;
    if (__atomic_compare_exchange_n(&s->value, &v, (uint32_t)next, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      break;
  }
  wake_word(&s->value, &s->sleepers, (int)n);
  return 0;
}

int mproc_semaphore_value(mproc_semaphore *s) {
  return s ? (int)__atomic_load_n(&s->value, __ATOMIC_ACQUIRE) : MPROC_EINVAL;
}

void mproc_semaphore_destroy(mproc_semaphore *s) {
  if (s && s->mapped) mproc__plat_shm_unmap(s, sizeof *s);
}

/* ---- Event ---- */

size_t mproc_event_size(void) { return sizeof(struct mproc_event); }

int mproc_event_init(mproc_event **out, void *mem) {
  if (!out || !mem || ((uintptr_t)mem & 7)) return MPROC_EINVAL;
  memset(mem, 0, sizeof(struct mproc_event));
  *out = mem;
  return 0;
}

int mproc_event_create(mproc_event **out) {
  if (!out) return MPROC_EINVAL;
  int err = 0;
  void *mem = map_object(sizeof(struct mproc_event), &err);
  if (!mem) return err;
  mproc_event_init(out, mem);
  (*out)->mapped = 1;
  return 0;
}

int mproc_event_set(mproc_event *e) {
  if (!e) return MPROC_EINVAL;
  __atomic_store_n(&e->flag, 1, __ATOMIC_SEQ_CST);
  wake_word(&e->flag, &e->sleepers, INT_MAX);
  return 0;
}

int mproc_event_clear(mproc_event *e) {
  if (!e) return MPROC_EINVAL;
  __atomic_store_n(&e->flag, 0, __ATOMIC_SEQ_CST);
  return 0;
}

int mproc_event_is_set(mproc_event *e) {
  return e ? (int)__atomic_load_n(&e->flag, __ATOMIC_ACQUIRE) : MPROC_EINVAL;
}

int mproc_event_wait(mproc_event *e, double timeout) {
  if (!e || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  double deadline = mproc__deadline(timeout);
  while (!__atomic_load_n(&e->flag, __ATOMIC_ACQUIRE))
    if (wait_word(&e->flag, 0, &e->sleepers, deadline) == MPROC_ETIMEDOUT)
      return __atomic_load_n(&e->flag, __ATOMIC_ACQUIRE) ? 0 : MPROC_ETIMEDOUT;
  return 0;
}

void mproc_event_destroy(mproc_event *e) {
  if (e && e->mapped) mproc__plat_shm_unmap(e, sizeof *e);
}

/* ---- Condition ---- */

size_t mproc_condition_size(void) { return sizeof(struct mproc_condition); }

int mproc_condition_init(mproc_condition **out, void *mem, mproc_lock *lock) {
  if (!out || !mem || ((uintptr_t)mem & 7) || (lock && lock->recursive)) return MPROC_EINVAL;
  mproc_condition *c = mem;
  memset(c, 0, sizeof *c);
  if (!lock) {
    int r = mproc_lock_init(&lock, &c->own, 0);
    if (r < 0) return r;
  }
  c->lock = lock;
  *out = c;
  return 0;
}

int mproc_condition_create(mproc_condition **out, mproc_lock *lock) {
  if (!out) return MPROC_EINVAL;
  int err = 0;
  void *mem = map_object(sizeof(struct mproc_condition), &err);
  if (!mem) return err;
  int r = mproc_condition_init(out, mem, lock);
  if (r < 0) {
    mproc__plat_shm_unmap(mem, sizeof(struct mproc_condition));
    return r;
  }
  (*out)->mapped = 1;
  return 0;
}

mproc_lock *mproc_condition_lock(mproc_condition *c) { return c ? c->lock : NULL; }

int mproc_condition_wait(mproc_condition *c, double timeout) {
  if (!c || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  /* the sequence is read under the lock, so a notify after the release below changes it */
  uint32_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
  __atomic_fetch_add(&c->sleepers, 1, __ATOMIC_SEQ_CST);
  int r = mproc_lock_release(c->lock);
  if (r < 0) {
    __atomic_fetch_sub(&c->sleepers, 1, __ATOMIC_SEQ_CST);
    return r; /* -EPERM: the caller did not hold it */
  }
  int w = MPROC_ETIMEDOUT;
  if (timeout != 0) {
    /* a signal is no notify: sleep again for the time left (Python's wait() never wakes spuriously) */
    double deadline = mproc__deadline(timeout);
    do {
      w = mproc__plat_futex_wait(&c->seq, seq, mproc__remaining(deadline));
    } while (w == -EINTR);
  }
  __atomic_fetch_sub(&c->sleepers, 1, __ATOMIC_SEQ_CST);
  r = mproc_lock_acquire(c->lock, MPROC_FOREVER);
  if (r < 0) return r;
  if (r == MPROC_EOWNERDEAD) return r;
  if (w == MPROC_ETIMEDOUT && __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) == seq) return MPROC_ETIMEDOUT;
  return 0;
}

int mproc_condition_wait_for(mproc_condition *c, int (*pred)(void *user), void *user, double timeout) {
  if (!c || !pred || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  double deadline = mproc__deadline(timeout);
  while (!pred(user)) {
    double left = mproc__remaining(deadline);
    if (left == 0) return MPROC_ETIMEDOUT;
    int r = mproc_condition_wait(c, left);
    /* a dead holder goes back to the caller, who alone can repair and mark it */
    if (r == MPROC_EPERM || r == MPROC_EINVAL || r == MPROC_ENOTRECOVERABLE || r == MPROC_EOWNERDEAD)
      return r;
  }
  return 0;
}

int mproc_condition_notify(mproc_condition *c, unsigned n) {
  if (!c) return MPROC_EINVAL;
  if (n > INT_MAX) n = INT_MAX; /* more than can sleep: all of them */
  __atomic_fetch_add(&c->seq, 1, __ATOMIC_SEQ_CST);
  if (n) wake_word(&c->seq, &c->sleepers, (int)n);
  return 0;
}

int mproc_condition_notify_all(mproc_condition *c) { return mproc_condition_notify(c, INT_MAX); }

void mproc_condition_destroy(mproc_condition *c) {
  if (!c) return;
  if (c->lock == &c->own) mproc__plat_mutex_destroy(&c->own.m);
  if (c->mapped) mproc__plat_shm_unmap(c, sizeof *c);
}

/* ---- Barrier ---- */

size_t mproc_barrier_size(void) { return sizeof(struct mproc_barrier); }

int mproc_barrier_init(mproc_barrier **out, void *mem, unsigned parties, int (*action)(void *),
                       void *action_arg) {
  if (!out || !mem || ((uintptr_t)mem & 7) || parties == 0 || parties > INT32_MAX) return MPROC_EINVAL;
  mproc_barrier *b = mem;
  memset(b, 0, sizeof *b);
  int r = mproc__plat_mutex_init(&b->m);
  if (r < 0) return r;
  b->parties = parties;
  b->last_passed = UINT32_MAX;
  b->action = action;
  b->action_arg = action_arg;
  *out = b;
  return 0;
}

int mproc_barrier_create(mproc_barrier **out, unsigned parties, int (*action)(void *), void *action_arg) {
  if (!out) return MPROC_EINVAL;
  int err = 0;
  void *mem = map_object(sizeof(struct mproc_barrier), &err);
  if (!mem) return err;
  int r = mproc_barrier_init(out, mem, parties, action, action_arg);
  if (r < 0) {
    mproc__plat_shm_unmap(mem, sizeof(struct mproc_barrier));
    return r;
  }
  (*out)->mapped = 1;
  return 0;
}

/* Takes the barrier's own lock; a holder that died left nothing half-done that matters (lock held). */
static int barrier_lock(mproc_barrier *b) {
  int r = mproc__plat_mutex_lock(&b->m, MPROC_FOREVER);
  if (r == MPROC_EOWNERDEAD) {
    mproc__plat_mutex_consistent(&b->m);
    r = 0;
  }
  return r;
}

/* Ends the current generation as broken and wakes its waiters (lock held). */
static void barrier_break(mproc_barrier *b, int keep_broken) {
  b->broken = keep_broken != 0;
  b->count = 0;
  __atomic_fetch_add(&b->gen, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&b->gen, INT_MAX);
}

int mproc_barrier_wait(mproc_barrier *b, double timeout) {
  if (!b || !mproc__timeout_valid(timeout)) return MPROC_EINVAL;
  int r = barrier_lock(b);
  if (r < 0) return r;
  if (b->broken) {
    mproc__plat_mutex_unlock(&b->m);
    return MPROC_EBROKEN;
  }
  uint32_t gen = b->gen;
  int index = (int)b->count++;
  if (b->count == b->parties) {
    if (b->action && b->action(b->action_arg) != 0) {
      barrier_break(b, 1);
      mproc__plat_mutex_unlock(&b->m);
      return MPROC_EBROKEN;
    }
    b->count = 0;
    b->last_passed = gen;
    __atomic_fetch_add(&b->gen, 1, __ATOMIC_SEQ_CST);
    mproc__plat_futex_wake(&b->gen, INT_MAX);
    mproc__plat_mutex_unlock(&b->m);
    return index;
  }
  mproc__plat_mutex_unlock(&b->m);
  double deadline = mproc__deadline(timeout);
  for (;;) {
    if (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) != gen) break;
    double left = mproc__remaining(deadline);
    if (left > 0 || isinf(deadline)) {
      mproc__plat_futex_wait(&b->gen, gen, left);
      continue;
    }
    /* timed out: break the barrier for everyone, unless it moved on meanwhile */
    if ((r = barrier_lock(b)) < 0) return r;
    if (b->gen == gen) barrier_break(b, 1);
    mproc__plat_mutex_unlock(&b->m);
    break;
  }
  return __atomic_load_n(&b->last_passed, __ATOMIC_ACQUIRE) == gen ? index : MPROC_EBROKEN;
}

int mproc_barrier_abort(mproc_barrier *b) {
  if (!b) return MPROC_EINVAL;
  int r = barrier_lock(b);
  if (r < 0) return r;
  barrier_break(b, 1);
  mproc__plat_mutex_unlock(&b->m);
  return 0;
}

int mproc_barrier_reset(mproc_barrier *b) {
  if (!b) return MPROC_EINVAL;
  int r = barrier_lock(b);
  if (r < 0) return r;
  barrier_break(b, 0); /* the waiters of this generation get EBROKEN; the barrier is whole again */
  mproc__plat_mutex_unlock(&b->m);
  return 0;
}

int mproc_barrier_parties(mproc_barrier *b) { return b ? (int)b->parties : MPROC_EINVAL; }

int mproc_barrier_n_waiting(mproc_barrier *b) {
  if (!b) return MPROC_EINVAL;
  int r = barrier_lock(b);
  if (r < 0) return r;
  int n = (int)b->count;
  mproc__plat_mutex_unlock(&b->m);
  return n;
}

int mproc_barrier_broken(mproc_barrier *b) {
  return b ? (int)__atomic_load_n(&b->broken, __ATOMIC_ACQUIRE) : MPROC_EINVAL;
}

void mproc_barrier_destroy(mproc_barrier *b) {
  if (!b) return;
  mproc__plat_mutex_destroy(&b->m);
  if (b->mapped) mproc__plat_shm_unmap(b, sizeof *b);
}
