/* wait.c: waiting on a condition variable with a deadline, and with Ctrl-C (sigint.c) taken into account:
 * what every wait of the engine and the faces is built on. */
#include <time.h>

#include "engine/engine.h"

int mproc__cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *lock, int *waiters, double deadline) {
  if (waiters) (*waiters)++;
  if (isinf(deadline)) {
    pthread_cond_wait(cv, lock);
  } else {
    double left = mproc__remaining(deadline);
    if (left <= 0) {
      if (waiters) (*waiters)--;
      return MPROC_ETIMEDOUT;
    }
    struct timespec ts;
    if (mproc__plat_abs_timespec(left, &ts))
      pthread_cond_timedwait(cv, lock, &ts);
    else
      pthread_cond_wait(cv, lock);
  }
  if (waiters) (*waiters)--;
  return 0;
}

int mproc__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *lock, int *waiters, double deadline,
                           bool (*pred)(void *), void *arg) {
  while (!pred(arg))
    if (mproc__cond_timedwait(cv, lock, waiters, deadline) == MPROC_ETIMEDOUT) return MPROC_ETIMEDOUT;
  return 0;
}

int mproc__cond_wait_intr(pthread_cond_t *cv, pthread_mutex_t *lock, int *waiters, double deadline,
                          bool (*pred)(void *), void *arg) {
  if (pred(arg)) return 0;
  uint32_t token = mproc__sigint_begin();
  int r;
  for (;;) {
    /* with our handler in place, sleep in slices so a Ctrl-C delivered to another thread is seen */
    double slice = mproc__sigint_active() ? mproc__plat_now() + 0.05 : INFINITY;
    r = mproc__cond_wait_until(cv, lock, waiters, slice < deadline ? slice : deadline, pred, arg);
    if (r == 0) break;
    if (mproc__sigint_seen(token)) {
      r = MPROC_EINTERRUPTED;
      break;
    }
    if (mproc__remaining(deadline) == 0) break;
  }
  /* a Ctrl-C that came with what was awaited is reported all the same: the next wait would not see it */
  if (r == 0 && mproc__sigint_seen(token)) r = MPROC_EINTERRUPTED;
  mproc__sigint_end();
  return r;
}
