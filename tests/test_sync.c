/* test_sync.c: Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier across processes. */
#include <pthread.h>
#include <sched.h>
#include <float.h>
#include <limits.h>
#include <signal.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

/* A shared page for counters the processes update. */
struct page {
  int64_t counter;
  uint32_t flags[8];
  int64_t round_seen[4];
};

static struct page *page_new(void) {
  struct page *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  memset(p, 0, sizeof *p);
  return p;
}

static pid_t spawn(int (*fn)(int k), int k) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) _exit(fn(k));
  return pid;
}

static void join_ok(pid_t pid) {
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_INT_EQ(WEXITSTATUS(st), 0);
}

static mproc_lock *lock;
static struct page *pg;

static int add_many(int k) {
  (void)k;
  for (int i = 0; i < 200000; i++) {
    if (mproc_lock_acquire(lock, MPROC_FOREVER) != 0) return 1;
    pg->counter++; /* not atomic: only the lock makes it exact */
    if (mproc_lock_release(lock) != 0) return 2;
  }
  return 0;
}

MTEST_TIMEOUT(lock_stress_four_processes, 120) {
  pg = page_new();
  CHECK_OK(mproc_lock_create(&lock, 0));
  pid_t pids[4];
  for (int k = 0; k < 4; k++) pids[k] = spawn(add_many, k);
  for (int k = 0; k < 4; k++) join_ok(pids[k]);
  CHECK_INT_EQ(pg->counter, 800000);
  mproc_lock_destroy(lock);
  munmap(pg, 4096);
}

static int hold_and_wait(int k) {
  (void)k;
  if (mproc_lock_acquire(lock, MPROC_FOREVER) != 0) return 1;
  __atomic_store_n(&pg->flags[0], 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&pg->flags[0], 1);
  for (;;) pause();
}

static void wait_flag(uint32_t *f) {
  while (!__atomic_load_n(f, __ATOMIC_SEQ_CST)) mproc__plat_futex_wait(f, 0, 1);
}

MTEST(lock_holder_killed) {
  pg = page_new();
  for (int recursive = 0; recursive < 2; recursive++) {
    pg->flags[0] = 0;
    CHECK_OK(mproc_lock_create(&lock, recursive));
    pid_t pid = spawn(hold_and_wait, 0);
    wait_flag(&pg->flags[0]);
    CHECK_ERR(mproc_lock_acquire(lock, 0), MPROC_ETIMEDOUT);
    CHECK_ERR(mproc_lock_acquire(lock, 0.02), MPROC_ETIMEDOUT);
    CHECK_ERR(mproc_lock_release(lock), MPROC_EPERM); /* not ours */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK_ERR(mproc_lock_acquire(lock, 1), MPROC_EOWNERDEAD); /* acquired; the holder died */
    CHECK_OK(mproc_lock_consistent(lock));
    CHECK_OK(mproc_lock_release(lock));
    CHECK_OK(mproc_lock_acquire(lock, 0)); /* and it works on */
    CHECK_OK(mproc_lock_release(lock));
    mproc_lock_destroy(lock);
  }
  /* not marked consistent: broken for good */
  pg->flags[0] = 0;
  CHECK_OK(mproc_lock_create(&lock, 0));
  pid_t pid = spawn(hold_and_wait, 0);
  wait_flag(&pg->flags[0]);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  CHECK_ERR(mproc_lock_acquire(lock, 1), MPROC_EOWNERDEAD);
  CHECK_OK(mproc_lock_release(lock));
  CHECK_ERR(mproc_lock_acquire(lock, 0), MPROC_ENOTRECOVERABLE);
  mproc_lock_destroy(lock);
  munmap(pg, 4096);
}

/* A Lock or RLock left inconsistent (MPROC_EOWNERDEAD, released without mproc_lock_consistent()) is broken
 * for good: every form of acquire says so, again and again, and release fails without touching it. */
static void *acquire_forever_thread(void *arg) {
  __atomic_store_n(&pg->flags[1], 1, __ATOMIC_SEQ_CST);
  return (void *)(intptr_t)mproc_lock_acquire(arg, MPROC_FOREVER);
}

static void make_owner_die(int recursive) {
  pg->flags[0] = 0;
  CHECK_OK(mproc_lock_create(&lock, recursive));
  pid_t pid = spawn(hold_and_wait, 0);
  wait_flag(&pg->flags[0]);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

MTEST(lock_not_made_consistent_is_broken_for_every_acquire) {
  pg = page_new();
  const double timeouts[] = {MPROC_FOREVER, 0, 5, 0.01, 1e300, INFINITY};
  for (int recursive = 0; recursive < 2; recursive++) {
    for (size_t first = 0; first < sizeof timeouts / sizeof *timeouts; first++) {
      make_owner_die(recursive);
      CHECK_ERR(mproc_lock_acquire(lock, 1), MPROC_EOWNERDEAD);
      if (recursive) { /* broken by the last release only */
        CHECK_OK(mproc_lock_acquire(lock, 0));
        CHECK_OK(mproc_lock_release(lock));
      }
      CHECK_OK(mproc_lock_release(lock));
      CHECK_ERR(mproc_lock_release(lock), MPROC_EPERM);
      for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < sizeof timeouts / sizeof *timeouts; k++) {
          double t = timeouts[(first + k) % (sizeof timeouts / sizeof *timeouts)];
          CHECK_ERR(mproc_lock_acquire(lock, t), MPROC_ENOTRECOVERABLE);
          CHECK_ERR(mproc_lock_release(lock), MPROC_EPERM);
        }
      }
      CHECK_ERR(mproc_lock_consistent(lock), MPROC_EINVAL);
      mproc_lock_destroy(lock);
    }
  }
  /* a thread already waiting when the lock breaks learns it too */
  for (int recursive = 0; recursive < 2; recursive++) {
    make_owner_die(recursive);
    pg->flags[1] = 0;
    CHECK_ERR(mproc_lock_acquire(lock, 1), MPROC_EOWNERDEAD);
    pthread_t th;
    CHECK_INT_EQ(pthread_create(&th, NULL, acquire_forever_thread, lock), 0);
    while (!__atomic_load_n(&pg->flags[1], __ATOMIC_SEQ_CST)) sched_yield();
    CHECK_OK(mproc_lock_release(lock));
    void *res;
    CHECK_INT_EQ(pthread_join(th, &res), 0);
    CHECK_ERR((int)(intptr_t)res, MPROC_ENOTRECOVERABLE);
    CHECK_ERR(mproc_lock_acquire(lock, 0), MPROC_ENOTRECOVERABLE);
    mproc_lock_destroy(lock);
  }
  /* a Condition on a broken lock: wait cannot take it back */
  make_owner_die(0);
  mproc_condition *c;
  CHECK_OK(mproc_condition_create(&c, lock));
  CHECK_ERR(mproc_lock_acquire(lock, 1), MPROC_EOWNERDEAD);
  CHECK_OK(mproc_lock_release(lock));
  CHECK_ERR(mproc_condition_wait(c, 0.01), MPROC_EPERM);
  mproc_condition_destroy(c);
  mproc_lock_destroy(lock);
  munmap(pg, 4096);
}

MTEST(lock_and_rlock_semantics) {
  mproc_lock *l, *r;
  CHECK_OK(mproc_lock_create(&l, 0));
  CHECK_OK(mproc_lock_acquire(l, MPROC_FOREVER));
  CHECK_ERR(mproc_lock_acquire(l, MPROC_FOREVER), MPROC_EDEADLK); /* Python would hang */
  CHECK_OK(mproc_lock_release(l));
  CHECK_ERR(mproc_lock_release(l), MPROC_EPERM);
  CHECK_ERR(mproc_lock_consistent(l), MPROC_EINVAL);
  CHECK_OK(mproc_lock_create(&r, 1));
  CHECK_OK(mproc_lock_acquire(r, 0));
  CHECK_OK(mproc_lock_acquire(r, 0));
  CHECK_OK(mproc_lock_acquire(r, MPROC_FOREVER));
  CHECK_OK(mproc_lock_release(r));
  CHECK_OK(mproc_lock_release(r));
  CHECK_OK(mproc_lock_release(r));
  CHECK_ERR(mproc_lock_release(r), MPROC_EPERM); /* released more than acquired */
  /* placed in memory of our own */
  uint64_t mem[16];
  CHECK_INT_CMP(mproc_lock_size(), <=, sizeof mem);
  mproc_lock *placed;
  CHECK_OK(mproc_lock_init(&placed, mem, 0));
  CHECK_OK(mproc_lock_acquire(placed, 0));
  CHECK_OK(mproc_lock_release(placed));
  mproc_lock_destroy(placed);
  CHECK_ERR(mproc_lock_init(&placed, (char *)mem + 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_init(NULL, mem, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_create(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_acquire(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_acquire(l, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_release(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_consistent(NULL), MPROC_EINVAL);
  mproc_lock_destroy(NULL);
  mproc_lock_destroy(l);
  mproc_lock_destroy(r);
}

static mproc_semaphore *sem;
static int take_units(int k) {
  (void)k;
  for (int i = 0; i < 5000; i++) {
    if (mproc_semaphore_acquire(sem, MPROC_FOREVER) != 0) return 1;
    __atomic_fetch_add(&pg->counter, 1, __ATOMIC_SEQ_CST);
  }
  return 0;
}

MTEST(semaphores) {
  pg = page_new();
  CHECK_OK(mproc_semaphore_create(&sem, 0, 0));
  pid_t pids[2] = {spawn(take_units, 0), spawn(take_units, 1)};
  for (int i = 0; i < 10000; i++) CHECK_OK(mproc_semaphore_release(sem, 1));
  join_ok(pids[0]);
  join_ok(pids[1]);
  CHECK_INT_EQ(pg->counter, 10000);
  CHECK_INT_EQ(mproc_semaphore_value(sem), 0);
  CHECK_ERR(mproc_semaphore_acquire(sem, 0), MPROC_ETIMEDOUT);
  double t0 = mproc__plat_now();
  CHECK_ERR(mproc_semaphore_acquire(sem, 0.03), MPROC_ETIMEDOUT);
  CHECK(mproc__plat_now() - t0 >= 0.025);
  CHECK_OK(mproc_semaphore_release(sem, 3)); /* release(n) */
  CHECK_INT_EQ(mproc_semaphore_value(sem), 3);
  mproc_semaphore_destroy(sem);
  /* bounded */
  CHECK_OK(mproc_semaphore_create(&sem, 2, 2));
  CHECK_ERR(mproc_semaphore_release(sem, 1), MPROC_EBOUND);
  CHECK_INT_EQ(mproc_semaphore_value(sem), 2);
  CHECK_OK(mproc_semaphore_acquire(sem, 0));
  CHECK_OK(mproc_semaphore_release(sem, 1));
  CHECK_ERR(mproc_semaphore_release(sem, 5), MPROC_EBOUND);
  mproc_semaphore_destroy(sem);
  CHECK_ERR(mproc_semaphore_create(&sem, 3, 2), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_create(NULL, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_acquire(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_release(NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_value(NULL), MPROC_EINVAL);
  mproc_semaphore_destroy(NULL);
  munmap(pg, 4096);
}

static mproc_event *ev;
static int wait_event(int k) {
  (void)k;
  __atomic_fetch_add(&pg->flags[1], 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&pg->flags[1], 1);
  return mproc_event_wait(ev, MPROC_FOREVER) == 0 && mproc_event_is_set(ev) == 1 ? 0 : 1;
}

MTEST(events) {
  pg = page_new();
  CHECK_OK(mproc_event_create(&ev));
  CHECK_INT_EQ(mproc_event_is_set(ev), 0);
  CHECK_ERR(mproc_event_wait(ev, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_event_wait(ev, 0.02), MPROC_ETIMEDOUT);
  pid_t pids[3];
  for (int k = 0; k < 3; k++) pids[k] = spawn(wait_event, k);
  while (__atomic_load_n(&pg->flags[1], __ATOMIC_SEQ_CST) < 3)
    mproc__plat_futex_wait(&pg->flags[1], pg->flags[1], 1);
  CHECK_OK(mproc_event_set(ev));
  for (int k = 0; k < 3; k++) join_ok(pids[k]);
  CHECK_OK(mproc_event_wait(ev, 0));
  CHECK_OK(mproc_event_clear(ev));
  CHECK_INT_EQ(mproc_event_is_set(ev), 0);
  CHECK_ERR(mproc_event_create(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_event_set(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_event_clear(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_event_is_set(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_event_wait(NULL, 0), MPROC_EINVAL);
  mproc_event_destroy(ev);
  mproc_event_destroy(NULL);
  munmap(pg, 4096);
}

static mproc_condition *cond;
static int counter_at_least_5(void *user) { return ((struct page *)user)->counter >= 5; }

static int consumer(int k) {
  (void)k;
  mproc_lock *l = mproc_condition_lock(cond);
  if (mproc_lock_acquire(l, MPROC_FOREVER) != 0) return 1;
  __atomic_fetch_add(&pg->flags[2], 1, __ATOMIC_SEQ_CST);
  int r = mproc_condition_wait_for(cond, counter_at_least_5, pg, MPROC_FOREVER);
  pg->flags[3]++; /* under the lock */
  mproc_lock_release(l);
  return r == 0 ? 0 : 2;
}

MTEST(conditions) {
  pg = page_new();
  CHECK_OK(mproc_condition_create(&cond, NULL));
  mproc_lock *l = mproc_condition_lock(cond);
  pid_t pids[2] = {spawn(consumer, 0), spawn(consumer, 1)};
  /* wait until both wait (they announce it under the lock, then wait_for releases it) */
  for (;;) {
    CHECK_OK(mproc_lock_acquire(l, MPROC_FOREVER));
    uint32_t in = pg->flags[2];
    CHECK_OK(mproc_lock_release(l));
    if (in == 2) break;
    mproc__plat_futex_wait(&pg->flags[2], in, 0.01);
  }
  for (int i = 0; i < 5; i++) {
    CHECK_OK(mproc_lock_acquire(l, MPROC_FOREVER));
    pg->counter++;
    CHECK_OK(mproc_condition_notify_all(cond));
    CHECK_OK(mproc_lock_release(l));
  }
  join_ok(pids[0]);
  join_ok(pids[1]);
  CHECK_INT_EQ(pg->flags[3], 2);
  /* timeouts, and waiting without the lock */
  CHECK_OK(mproc_lock_acquire(l, MPROC_FOREVER));
  CHECK_ERR(mproc_condition_wait(cond, 0.02), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_condition_wait(cond, 0), MPROC_ETIMEDOUT);
  pg->counter = 0;
  CHECK_ERR(mproc_condition_wait_for(cond, counter_at_least_5, pg, 0.02), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_condition_notify(cond, 1));        /* nobody waits: fine */
  CHECK_OK(mproc_condition_notify(cond, UINT_MAX)); /* more than INT_MAX: all (it was -EINVAL) */
  CHECK_OK(mproc_lock_release(l));
  CHECK_ERR(mproc_condition_wait(cond, 0.01), MPROC_EPERM);
  /* bad input: an RLock, NULLs */
  mproc_lock *rl;
  CHECK_OK(mproc_lock_create(&rl, 1));
  mproc_condition *c2;
  CHECK_ERR(mproc_condition_create(&c2, rl), MPROC_EINVAL);
  mproc_lock_destroy(rl);
  CHECK_ERR(mproc_condition_create(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait_for(cond, NULL, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_notify(NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_notify_all(NULL), MPROC_EINVAL);
  CHECK(mproc_condition_lock(NULL) == NULL);
  mproc_condition_destroy(cond);
  mproc_condition_destroy(NULL);
  munmap(pg, 4096);
}

static int never(void *user) {
  (void)user;
  return 0;
}

static int take_notify_and_die(int k) {
  (void)k;
  if (mproc_lock_acquire(mproc_condition_lock(cond), MPROC_FOREVER) != 0) return 1;
  mproc_condition_notify_all(cond);
  raise(SIGKILL); /* dies holding the lock the waiter takes back */
  return 2;
}

/* wait_for hands the dead holder's lock back at once, so that the caller repairs and marks it, instead of
 * looping on the predicate until its timeout and then, unaware, breaking the lock with its release. */
MTEST(condition_wait_for_reports_a_dead_holder) {
  CHECK_OK(mproc_condition_create(&cond, NULL));
  mproc_lock *l = mproc_condition_lock(cond);
  CHECK_OK(mproc_lock_acquire(l, MPROC_FOREVER));
  pid_t pid = spawn(take_notify_and_die, 0);
  CHECK_ERR(mproc_condition_wait_for(cond, never, NULL, 20), MPROC_EOWNERDEAD);
  CHECK_OK(mproc_lock_consistent(l));
  CHECK_OK(mproc_lock_release(l));
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_OK(mproc_lock_release(l));
  mproc_condition_destroy(cond);
}

static mproc_barrier *bar;
enum { ROUNDS = 10000 };
static int action_calls(void *arg) {
  ((struct page *)arg)->flags[4]++; /* runs in one process per round, before anyone is released */
  return 0;
}
static int barrier_rounds(int k) {
  for (int64_t r = 0; r < ROUNDS; r++) {
    __atomic_fetch_add(&pg->counter, 1, __ATOMIC_SEQ_CST);
    int idx = mproc_barrier_wait(bar, 30);
    if (idx < 0 || idx >= 4) return 1;
    /* everyone arrived: the counter holds 4 per finished round, at least */
    if (__atomic_load_n(&pg->counter, __ATOMIC_SEQ_CST) < 4 * (r + 1)) return 2;
    pg->round_seen[k] = r + 1;
    if (mproc_barrier_wait(bar, 30) < 0) return 3; /* nobody starts round r+1 before all checked round r */
  }
  return 0;
}

MTEST_TIMEOUT(barrier_four_processes_many_rounds, 120) {
  pg = page_new();
  CHECK_OK(mproc_barrier_create(&bar, 4, action_calls, pg));
  CHECK_INT_EQ(mproc_barrier_parties(bar), 4);
  pid_t pids[4];
  for (int k = 0; k < 4; k++) pids[k] = spawn(barrier_rounds, k);
  for (int k = 0; k < 4; k++) join_ok(pids[k]);
  CHECK_INT_EQ(pg->counter, 4 * ROUNDS);
  CHECK_INT_EQ(pg->flags[4], 2 * ROUNDS);
  for (int k = 0; k < 4; k++) CHECK_INT_EQ(pg->round_seen[k], ROUNDS);
  CHECK_INT_EQ(mproc_barrier_broken(bar), 0);
  mproc_barrier_destroy(bar);
  munmap(pg, 4096);
}

static int barrier_once(int k) {
  (void)k;
  __atomic_fetch_add(&pg->flags[5], 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&pg->flags[5], 1);
  return mproc_barrier_wait(bar, MPROC_FOREVER) == MPROC_EBROKEN ? 0 : 1;
}
static int failing_action(void *arg) {
  (void)arg;
  return -1;
}

MTEST(barrier_broken_states) {
  pg = page_new();
  /* a wait that times out breaks it for all */
  CHECK_OK(mproc_barrier_create(&bar, 2, NULL, NULL));
  CHECK_ERR(mproc_barrier_wait(bar, 0.02), MPROC_EBROKEN);
  CHECK_INT_EQ(mproc_barrier_broken(bar), 1);
  CHECK_ERR(mproc_barrier_wait(bar, 1), MPROC_EBROKEN); /* stays broken */
  CHECK_OK(mproc_barrier_reset(bar));
  CHECK_INT_EQ(mproc_barrier_broken(bar), 0);
  /* abort wakes a waiter in another process with EBROKEN */
  pid_t pid = spawn(barrier_once, 0);
  while (mproc_barrier_n_waiting(bar) < 1) mproc__plat_futex_wait(&pg->flags[5], 0, 0.01);
  CHECK_OK(mproc_barrier_abort(bar));
  join_ok(pid);
  CHECK_INT_EQ(mproc_barrier_broken(bar), 1);
  /* reset also releases waiters as broken, and leaves the barrier whole */
  CHECK_OK(mproc_barrier_reset(bar));
  pg->flags[5] = 0;
  pid = spawn(barrier_once, 0);
  while (mproc_barrier_n_waiting(bar) < 1) mproc__plat_futex_wait(&pg->flags[5], 0, 0.01);
  CHECK_OK(mproc_barrier_reset(bar));
  join_ok(pid);
  CHECK_INT_EQ(mproc_barrier_broken(bar), 0);
  CHECK_INT_EQ(mproc_barrier_n_waiting(bar), 0);
  mproc_barrier_destroy(bar);
  /* an action that fails breaks it */
  CHECK_OK(mproc_barrier_create(&bar, 1, failing_action, NULL));
  CHECK_ERR(mproc_barrier_wait(bar, 1), MPROC_EBROKEN);
  mproc_barrier_destroy(bar);
  /* one party: passes at once, index 0 */
  CHECK_OK(mproc_barrier_create(&bar, 1, NULL, NULL));
  CHECK_INT_EQ(mproc_barrier_wait(bar, 0), 0);
  mproc_barrier_destroy(bar);
  CHECK_ERR(mproc_barrier_create(&bar, 0, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_create(NULL, 2, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_abort(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_reset(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_parties(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_n_waiting(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_broken(NULL), MPROC_EINVAL);
  mproc_barrier_destroy(NULL);
  munmap(pg, 4096);
}

/* ---- timeouts beyond any representable deadline wait forever ---- */

static const double huge_timeouts[] = {1e300, DBL_MAX, INFINITY};

static void release_lock(void *arg) { mproc_lock_release(arg); }
static void release_unit(void *arg) { mproc_semaphore_release(arg, 1); }
static void set_event(void *arg) { mproc_event_set(arg); }
static void notify_cond(void *arg) {
  mproc_condition *c = arg;
  mproc_lock_acquire(mproc_condition_lock(c), MPROC_FOREVER);
  __atomic_store_n(&pg->counter, 5, __ATOMIC_SEQ_CST);
  mproc_condition_notify_all(c);
  mproc_lock_release(mproc_condition_lock(c));
}
static void barrier_arrive(void *arg) { mproc_barrier_wait(arg, MPROC_FOREVER); }

struct hold_then_release {
  mproc_lock *l;
  uint32_t held;
};
static void *hold_lock_30ms(void *v) {
  struct hold_then_release *h = v;
  if (mproc_lock_acquire(h->l, MPROC_FOREVER) != 0) return NULL;
  __atomic_store_n(&h->held, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&h->held, 1);
  nanosleep(&(struct timespec){0, 30 * 1000 * 1000}, NULL);
  release_lock(h->l);
  return NULL;
}

MTEST(huge_timeouts_wait_forever) {
  pg = page_new();
  for (size_t k = 0; k < sizeof huge_timeouts / sizeof *huge_timeouts; k++) {
    double t = huge_timeouts[k];
    /* Lock and RLock held by another thread (a lock is released by its holder) */
    for (int recursive = 0; recursive < 2; recursive++) {
      struct hold_then_release h = {0};
      CHECK_OK(mproc_lock_create(&h.l, recursive));
      pthread_t th;
      CHECK_INT_EQ(pthread_create(&th, NULL, hold_lock_30ms, &h), 0);
      while (!__atomic_load_n(&h.held, __ATOMIC_SEQ_CST)) mproc__plat_futex_wait(&h.held, 0, -1);
      CHECK_OK(mproc_lock_acquire(h.l, t));
      CHECK_OK(mproc_lock_release(h.l));
      CHECK_INT_EQ(pthread_join(th, NULL), 0);
      mproc_lock_destroy(h.l);
    }
    mtest_later l;
    mproc_semaphore *s;
    CHECK_OK(mproc_semaphore_create(&s, 0, 0));
    mtest_later_start(&l, release_unit, s);
    CHECK_OK(mproc_semaphore_acquire(s, t));
    mtest_later_join(&l);
    mproc_semaphore_destroy(s);
    mproc_event *e;
    CHECK_OK(mproc_event_create(&e));
    mtest_later_start(&l, set_event, e);
    CHECK_OK(mproc_event_wait(e, t));
    mtest_later_join(&l);
    mproc_event_destroy(e);
    mproc_condition *c;
    CHECK_OK(mproc_condition_create(&c, NULL));
    for (int form = 0; form < 2; form++) {
      pg->counter = 0;
      CHECK_OK(mproc_lock_acquire(mproc_condition_lock(c), MPROC_FOREVER));
      mtest_later_start(&l, notify_cond, c);
      if (form == 0) {
        int r;
        do /* a waiter may wake without a notify */
          r = mproc_condition_wait(c, t);
        while (r == 0 && __atomic_load_n(&pg->counter, __ATOMIC_SEQ_CST) != 5);
        CHECK_OK(r);
      } else {
        CHECK_OK(mproc_condition_wait_for(c, counter_at_least_5, pg, t));
      }
      CHECK_OK(mproc_lock_release(mproc_condition_lock(c)));
      mtest_later_join(&l);
    }
    mproc_condition_destroy(c);
    mproc_barrier *b;
    CHECK_OK(mproc_barrier_create(&b, 2, NULL, NULL));
    mtest_later_start(&l, barrier_arrive, b);
    CHECK_INT_CMP(mproc_barrier_wait(b, t), >=, 0);
    mtest_later_join(&l);
    mproc_barrier_destroy(b);
  }
  munmap(pg, 4096);
}
