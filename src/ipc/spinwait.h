/* spinwait.h: how mproc waits for another thread or process: spin a little, then sleep on a futex word.
 * The rings (ring.c), the queue (queue.c) and the engine's manager and callers (engine.c) all wait this way,
 * each with its own spin (how long, how often it yields) and its own condition.
 *
 * The spin.  A waiter that expects its event within microseconds polls for it between pauses rather than
 * sleeping (a sleep and its wake cost two system calls and a trip through the scheduler).  mproc__spin
 * counts the rounds: each round is `pauses` CPU pauses, and from round `yield_from` on every `yield_every`-th
 * round also gives the CPU up, for a waiter that may share its CPU with the side it waits for (see
 * YIELD_AFTER in ring.c).  The spin is the waiter's to keep: a wait that resumes with the same one spins
 * only what is left of it.
 *
 * The bell.  A sleeper sleeps on a pair of 32-bit words that both sides see (in shared memory for a wait
 * across processes: plain lock-free integers, touched only with the __atomic builtins):
 *   word    the futex word.  A waker bumps it before it wakes anyone, so a sleeper that read it before the
 *           bump does not fall asleep.
 *   asleep  nonzero while someone sleeps on the word, or is about to.  A waker that reads 0 does neither the
 *           bump nor the futex_wake system call: none happens while both sides are busy.  Bit 0 belongs to
 *           the bell's one sleeper at a time, which sets and clears it with an atomic or / and, so the other
 *           bits stay free for others who sleep on the same word and want the waker to ring for them: the
 *           queue counts its watchers (mproc_wait) there, and its putters still read one word.
 * The handshake: the sleeper reads the word and raises asleep (mproc__bell_announce), checks its condition
 * once more, and only then sleeps on the value it read (mproc__bell_sleep), lowering asleep once awake
 * (mproc__bell_awake).  The waker makes the condition true, then calls mproc__bell_ring.  A full fence sits
 * between each side's store and its load: either the sleeper's second look sees the condition, or the
 * waker sees asleep raised and bumps the word after the sleeper read it, so the futex does not sleep.  No
 * wake-up is lost.  The futex calls themselves are the platform layer's (mproc__plat_futex_wait/wake). */
#ifndef MPROC_SPINWAIT_H
#define MPROC_SPINWAIT_H

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

typedef struct mproc__spin {
  int rounds;      /* rounds to spin before sleeping */
  int pauses;      /* CPU pauses per round */
  int yield_from;  /* the first round that also yields the CPU ... */
  int yield_every; /* ... and then every this many rounds (0: never yields) */
  int done;        /* rounds spun so far */
} mproc__spin;

/* Whether rounds are left to spin. */
static inline bool mproc__spin_due(const mproc__spin *s) { return s->done < s->rounds; }

/* Spins one round: its pauses, and the yield when one is due. */
static inline void mproc__spin_pause(mproc__spin *s) {
  for (int k = 0; k < s->pauses; k++) mproc__cpu_relax();
  if (s->yield_every && s->done >= s->yield_from && (s->done - s->yield_from) % s->yield_every == 0)
    sched_yield();
  s->done++;
}

/* Spins one round if any is left; false when the spin is over (then the waiter sleeps, or gives up). */
static inline bool mproc__spin_once(mproc__spin *s) {
  if (!mproc__spin_due(s)) return false;
  mproc__spin_pause(s);
  return true;
}

/* Starts the spin over: for a waiter that made progress and will wait afresh. */
static inline void mproc__spin_reset(mproc__spin *s) { s->done = 0; }

typedef struct mproc__bell {
  uint32_t *word;   /* the futex word */
  uint32_t *asleep; /* nonzero while someone sleeps on it */
} mproc__bell;

/* The waker's side, after it has made the condition true: wakes up to n sleepers, only if one said it
 * sleeps. */
static inline void mproc__bell_ring(mproc__bell b, int n) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(b.asleep, __ATOMIC_RELAXED)) {
    __atomic_fetch_add(b.word, 1, __ATOMIC_SEQ_CST);
    mproc__plat_futex_wake(b.word, n);
  }
}

/* The sleeper's first step: reads the word, then raises its bit of asleep (or lowers it, for a sleeper that
 * wants no waker to ring for it now and relies on its timeout or on someone who bumps the word
 * unconditionally).  Returns the word's value to sleep on; the caller checks its condition once more before
 * it sleeps. */
static inline uint32_t mproc__bell_announce(mproc__bell b, bool announce) {
  uint32_t seen = __atomic_load_n(b.word, __ATOMIC_ACQUIRE);
  if (announce)
    __atomic_fetch_or(b.asleep, 1u, __ATOMIC_SEQ_CST);
  else
    __atomic_fetch_and(b.asleep, ~1u, __ATOMIC_SEQ_CST);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return seen;
}

/* Sleeps while the word still holds seen, at most timeout seconds (< 0: forever): 0 when woken (or when
 * the word had already moved), -ETIMEDOUT, -EINTR.  asleep stays raised: see mproc__bell_awake. */
static inline int mproc__bell_sleep(mproc__bell b, uint32_t seen, double timeout) {
  return mproc__plat_futex_wait(b.word, seen, timeout);
}

/* Lowers asleep: after the sleep, or when the second look found the condition true. */
static inline void mproc__bell_awake(mproc__bell b) { __atomic_fetch_and(b.asleep, ~1u, __ATOMIC_RELAXED); }

/* Waits until ready(arg) is true: checks it between the rounds left in *spin, then sleeps on the bell
 * (announced) until it is, or until deadline (an absolute mproc__plat_now() time; INFINITY: none).  Returns 0
 * when ready, -ETIMEDOUT once the deadline has passed, or a futex error other than a timeout or a signal.
 * ready() runs in the waiter's thread, often: it reads shared words, and may note in *arg why the wait
 * ended. */
int mproc__spinwait(mproc__bell b, mproc__spin *spin, bool (*ready)(void *), void *arg, double deadline);

#endif
