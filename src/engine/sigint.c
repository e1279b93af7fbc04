/* sigint.c: Ctrl-C during a wait or a loop.  While at least one thread waits in the pool or an iterator or a
 * stream exists (a user each), and only if the program's SIGINT disposition was the default when the first
 * user came, mproc installs a handler that counts the signal.  A user keeps a token, the count it has
 * reported up to: a wait takes one as it begins and sleeps in slices of at most 50 ms, so a signal handled
 * by another thread is seen; an iterator or stream takes one when it is made and reports a Ctrl-C at its
 * next call, so one that came while the caller was busy with a result is not lost.  When the last user
 * ends, the default disposition is back (unless the program has put a handler of its own in place
 * meanwhile, which stays), so Ctrl-C outside ends the program as usual. */
#include <pthread.h>
#include <signal.h>

#include "engine/engine.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int users;
static bool installed;
static volatile uint32_t count;

static void on_sigint(int sig) {
  (void)sig;
  __atomic_fetch_add(&count, 1, __ATOMIC_SEQ_CST);
}

uint32_t mproc__sigint_begin(void) {
  pthread_mutex_lock(&lock);
  if (users++ == 0) {
    /* SA_RESTART: with an iterator or stream alive the handler is in place while the program runs its own
     * code too, whose system calls must not start failing with EINTR (mproc's waits poll the count) */
    installed = mproc__plat_catch_signal_if_default(SIGINT, on_sigint);
  }
  uint32_t c = __atomic_load_n(&count, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&lock);
  return c;
}

bool mproc__sigint_seen(uint32_t since) { return __atomic_load_n(&count, __ATOMIC_SEQ_CST) != since; }

bool mproc__sigint_take(uint32_t *token) {
  uint32_t t = __atomic_load_n(token, __ATOMIC_SEQ_CST), c = __atomic_load_n(&count, __ATOMIC_SEQ_CST);
  /* two threads calling the same iterator: one of them reports it */
  return c != t && __atomic_compare_exchange_n(token, &t, c, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

bool mproc__sigint_active(void) { return installed; }

void mproc__sigint_end(void) {
  pthread_mutex_lock(&lock);
  if (--users == 0 && installed) {
    mproc__plat_uncatch_signal(SIGINT, on_sigint);
    installed = false;
  }
  pthread_mutex_unlock(&lock);
}
