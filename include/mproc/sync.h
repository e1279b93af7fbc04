/* mproc/sync.h: process-shared synchronisation with Python's semantics: Lock, RLock, Semaphore,
 * BoundedSemaphore, Event, Condition, Barrier.  Included by <mproc.h>.
 *
 * Every object lives in shared memory.  mproc_<x>_create() maps its own (anonymous, shared with every
 * process forked afterwards, as Python's objects are inherited by children); mproc_<x>_size() and
 * mproc_<x>_init(mem) place it in memory of your own, such as a struct in a shared segment (mem 8-aligned,
 * the object then lives as long as the memory; do not destroy it, just stop using it).  All blocking calls
 * take a timeout in seconds (MPROC_FOREVER, 0 to try once) and return -ETIMEDOUT when it passes.
 * Futex-based: an uncontended acquire and release make no system call. */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <mproc/common.h>

MPROC_EXTERN_C_BEGIN

/* ---- Lock and RLock: robust ----
 * If the process holding a lock dies, the next acquirer gets the lock with the code MPROC_EOWNERDEAD (the
 * call succeeded: it holds the lock) and should repair the protected state, then call
 * mproc_lock_consistent(); a lock released without that (for an RLock: its last release) is broken for
 * good: every later acquire, whatever its timeout (forever, timed, or 0 to try), returns -ENOTRECOVERABLE,
 * as do those already waiting for it, and release returns -EPERM (nobody holds it).  Unlike Python's Lock, a
 * Lock is released by the thread that acquired it (-EPERM otherwise), and acquiring it again in the same
 * thread returns -EDEADLK instead of hanging. */
typedef struct mproc_lock mproc_lock;

MPROC_API size_t mproc_lock_size(void);
/* recursive nonzero makes an RLock: its holder may acquire it again, and must release it as often. */
MPROC_API int mproc_lock_init(mproc_lock **out, void *mem, int recursive);
MPROC_API int mproc_lock_create(mproc_lock **out, int recursive);
/* 0, MPROC_EOWNERDEAD (acquired; see above), -ETIMEDOUT, -ENOTRECOVERABLE, -EDEADLK, -EINVAL. */
MPROC_API int mproc_lock_acquire(mproc_lock *l, double timeout);
/* 0, -EPERM when the caller does not hold it (or the lock is broken), -EINVAL. */
MPROC_API int mproc_lock_release(mproc_lock *l);
/* After MPROC_EOWNERDEAD, by its holder: the protected state is repaired.  0, or -EINVAL when there is
 * nothing to mark (no dead holder, already marked, or the caller does not hold the lock). */
MPROC_API int mproc_lock_consistent(mproc_lock *l);
MPROC_API void mproc_lock_destroy(mproc_lock *l);

/* ---- Semaphore and BoundedSemaphore ---- */
typedef struct mproc_semaphore mproc_semaphore;

MPROC_API size_t mproc_semaphore_size(void);
/* value: the initial count.  bound > 0 makes a BoundedSemaphore: releasing above bound fails with
 * MPROC_EBOUND and changes nothing.  -EINVAL for a value above bound (when bounded) or above INT32_MAX. */
MPROC_API int mproc_semaphore_init(mproc_semaphore **out, void *mem, unsigned value, unsigned bound);
MPROC_API int mproc_semaphore_create(mproc_semaphore **out, unsigned value, unsigned bound);
/* Takes one unit, waiting at most timeout: 0 or -ETIMEDOUT. */
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *s, double timeout);
/* Gives n units back (Python 3.9's release(n)): 0, MPROC_EBOUND (above the bound, or a count above
 * INT32_MAX for any semaphore), -EINVAL (n 0 or above INT32_MAX). */
MPROC_API int mproc_semaphore_release(mproc_semaphore *s, unsigned n);
/* The current count (>= 0), or -EINVAL. */
MPROC_API int mproc_semaphore_value(mproc_semaphore *s);
MPROC_API void mproc_semaphore_destroy(mproc_semaphore *s);

/* ---- Event ---- */
typedef struct mproc_event mproc_event;

MPROC_API size_t mproc_event_size(void);
MPROC_API int mproc_event_init(mproc_event **out, void *mem);
MPROC_API int mproc_event_create(mproc_event **out);
MPROC_API int mproc_event_set(mproc_event *e); /* wakes every waiter */
MPROC_API int mproc_event_clear(mproc_event *e);
MPROC_API int mproc_event_is_set(mproc_event *e); /* 1 or 0 (or -EINVAL) */
/* 0 once the flag is set (at once if it is), -ETIMEDOUT. */
MPROC_API int mproc_event_wait(mproc_event *e, double timeout);
MPROC_API void mproc_event_destroy(mproc_event *e);

/* ---- Condition ----
 * Bound to a Lock (not an RLock) that the caller holds around wait and notify.  wait releases the lock,
 * sleeps until notified or the timeout, and takes the lock back before returning (whatever it returns,
 * except -EINVAL and -EPERM).  As in Python, a waiter may wake without a notify: wait_for() loops on its
 * predicate. */
typedef struct mproc_condition mproc_condition;

MPROC_API size_t mproc_condition_size(void);
MPROC_API int mproc_condition_init(mproc_condition **out, void *mem, mproc_lock *lock);
/* lock NULL: the condition makes its own Lock (mproc_condition_lock() returns it). */
MPROC_API int mproc_condition_create(mproc_condition **out, mproc_lock *lock);
MPROC_API mproc_lock *mproc_condition_lock(mproc_condition *c);
/* 0 when woken, -ETIMEDOUT; MPROC_EOWNERDEAD when retaking the lock found its holder dead; -EPERM when
 * the caller does not hold the lock. */
MPROC_API int mproc_condition_wait(mproc_condition *c, double timeout);
/* Waits until pred(user) is true (checked first, then after each wake-up): 0 when it is, -ETIMEDOUT when
 * the timeout passed first (the predicate is false then); MPROC_EOWNERDEAD at once when retaking the lock
 * found its holder dead (the caller holds the lock: repair, mproc_lock_consistent(), then wait again),
 * -ENOTRECOVERABLE when the lock is broken, -EPERM as wait (as in Python, only once it waits: a predicate
 * true at once, or a timeout of 0, does not look at the lock). */
MPROC_API int mproc_condition_wait_for(mproc_condition *c, int (*pred)(void *user), void *user,
                                       double timeout);
/* Wakes at most n waiters (n above INT_MAX: all).  0, or -EINVAL for NULL. */
MPROC_API int mproc_condition_notify(mproc_condition *c, unsigned n);
MPROC_API int mproc_condition_notify_all(mproc_condition *c);
MPROC_API void mproc_condition_destroy(mproc_condition *c);

/* ---- Barrier ----
 * parties processes (or threads) wait; when the last arrives, action(action_arg) runs in it (the function
 * must be valid in every process: a function of the program), then all are released.  wait returns the
 * arrival index, 0 .. parties-1, or MPROC_EBROKEN when the barrier is broken: aborted, reset while
 * waiting, a wait timed out (which breaks it for all, as in Python), or the action failed (returned
 * nonzero).  A broken barrier stays broken until reset. */
typedef struct mproc_barrier mproc_barrier;

MPROC_API size_t mproc_barrier_size(void);
MPROC_API int mproc_barrier_init(mproc_barrier **out, void *mem, unsigned parties, int (*action)(void *),
                                 void *action_arg);
MPROC_API int mproc_barrier_create(mproc_barrier **out, unsigned parties, int (*action)(void *),
                                   void *action_arg);
MPROC_API int mproc_barrier_wait(mproc_barrier *b, double timeout);
MPROC_API int mproc_barrier_abort(mproc_barrier *b);
MPROC_API int mproc_barrier_reset(mproc_barrier *b);
MPROC_API int mproc_barrier_parties(mproc_barrier *b);
MPROC_API int mproc_barrier_n_waiting(mproc_barrier *b);
MPROC_API int mproc_barrier_broken(mproc_barrier *b); /* 1 or 0 */
MPROC_API void mproc_barrier_destroy(mproc_barrier *b);

MPROC_EXTERN_C_END

#endif
