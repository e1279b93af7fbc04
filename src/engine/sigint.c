/* sigint.c: Ctrl-C during a wait.  While at least one thread waits in the pool, and only if the program has
 * no SIGINT handler of its own, mproc installs one that counts the signal; waits sleep in slices of at
 * most 50 ms and return MPROC_EINTERRUPTED when the count moved.  Once no one waits, the default
 * disposition is back, so a second Ctrl-C outside a wait ends the program as usual. */
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
    struct sigaction old, sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    installed =
        sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler == SIG_DFL && sigaction(SIGINT, &sa, NULL) == 0;
  }
  uint32_t c = __atomic_load_n(&count, __ATOMIC_SEQ_CST);
  pthread_mutex_unlock(&lock);
  return c;
}

bool mproc__sigint_seen(uint32_t since) { return __atomic_load_n(&count, __ATOMIC_SEQ_CST) != since; }

bool mproc__sigint_active(void) { return installed; }

void mproc__sigint_end(void) {
  pthread_mutex_lock(&lock);
  if (--users == 0 && installed) {
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    installed = false;
  }
  pthread_mutex_unlock(&lock);
}
