/* pool_tasks.c: what the pool tests share (see pool_tasks.h). */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "pool_tasks.h"

struct shared *sh;

void map_shared(void) {
  int err = 0;
  sh = mproc__plat_shm_map_anon(4096, &err);
  CHECK(sh != NULL);
  memset(sh, 0, sizeof *sh);
}
void unmap_shared(void) {
  CHECK_OK(mproc__plat_shm_unmap(sh, 4096));
  sh = NULL;
}
void open_gate(void) {
  __atomic_store_n(&sh->gate, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->gate, INT32_MAX);
}
/* Waits until `count` tasks have announced that they started. */
void await_started(uint32_t count) {
  for (;;) {
    uint32_t s = __atomic_load_n(&sh->started, __ATOMIC_ACQUIRE);
    if (s >= count) return;
    mproc__plat_futex_wait(&sh->started, s, 5);
  }
}

int square(const void *arg, size_t len, mproc_task *t) {
  if (len != sizeof(int)) return mproc_task_fail(t, MPROC_EINVAL, "bad length %zu", len);
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

int fail_on_multiples_of_7(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  if (n % 7 == 0) return mproc_task_fail(t, MPROC_ERANGE, "%d is a multiple of 7", n);
  return mproc_task_return(t, &n, sizeof n);
}

int gated(const void *arg, size_t len, mproc_task *t) {
  __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sh->started, INT32_MAX);
  while (!__atomic_load_n(&sh->gate, __ATOMIC_ACQUIRE)) mproc__plat_futex_wait(&sh->gate, 0, -1);
  return square(arg, len, t);
}

int echo(const void *arg, size_t len, mproc_task *t) { return mproc_task_return(t, arg, len); }

int misbehave(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  switch (n) {
    case -1:
      raise(SIGSEGV);
      break;
    case -2:
      abort();
    case -3:
      _exit(42);
    case -4: {
      /* announce our pid, then wait to be killed from outside */
      int pid = getpid();
      __atomic_store_n(&sh->pids[0], pid, __ATOMIC_SEQ_CST);
      __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
      mproc__plat_futex_wake(&sh->started, INT32_MAX);
      for (;;) pause();
    }
    case -5:
      for (;;) pause(); /* hangs: only its timeout ends it */
    default:
      break;
  }
  int sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

int init_calls;
int initializer(const void *arg, size_t len, mproc_task *t) {
  (void)t;
  if (len != 4 || memcmp(arg, "init", 4) != 0) return MPROC_EINVAL;
  init_calls = 1000; /* in the worker's memory */
  return 0;
}

mproc_pool *make_pool(mproc_backend b, int workers, const mproc_pool_opts *extra) {
  mproc_pool_opts o = extra ? *extra : (mproc_pool_opts){0};
  o.backend = b;
  o.workers = workers;
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &o));
  CHECK_INT_EQ(mproc_pool_workers(p), b == MPROC_BACKEND_SERIAL ? 1 : workers);
  return p;
}

uint32_t cb_count;
int cb_order[8];
void on_done(mproc_future *f, void *user) {
  (void)f;
  cb_order[__atomic_load_n(&cb_count, __ATOMIC_SEQ_CST)] = (int)(intptr_t)user;
  __atomic_fetch_add(&cb_count, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&cb_count, INT32_MAX);
}
/* Waiters may see a future done before its callbacks ran (as in concurrent.futures): wait for them. */
void await_callbacks(uint32_t count) {
  for (;;) {
    uint32_t c = __atomic_load_n(&cb_count, __ATOMIC_SEQ_CST);
    if (c >= count) return;
    mproc__plat_futex_wait(&cb_count, c, 5);
  }
}
