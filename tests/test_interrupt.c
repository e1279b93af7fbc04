/* test_interrupt.c: Ctrl-C in loops over results that keep arriving (as_completed, imap, imap_unordered),
 * in a map and in a plain wait; a program's own SIGINT handler. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "engine/engine.h"

enum { N = 400, K = 20 };

/* The task of the issue: 10 ms each, so results keep arriving while the caller loops. */
static int ten_ms(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  int64_t i = mproc_task_index(t);
  return mproc_task_return(t, &i, sizeof i);
}

static mproc_pool *make_pool(mproc_backend b) {
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = b}));
  return p;
}

static void check_sigint_is_default(void) {
  struct sigaction sa;
  CHECK_INT_EQ(sigaction(SIGINT, NULL, &sa), 0);
  CHECK(sa.sa_handler == SIG_DFL);
}

/* A thread that raises SIGINT once the loop has taken K items, then says it has.  A terminal's SIGINT goes
 * to whichever thread Linux picks, often the main one, asynchronously; raise() runs the handler in the
 * signalling thread before it returns, so once `sent` is set the count has moved, and the loop's thread
 * learns of it only through mproc (as when another thread handles a real Ctrl-C). */
static struct { uint32_t taken, sent; } g;

static void *signaller(void *arg) {
  (void)arg;
  for (;;) {
    uint32_t t = __atomic_load_n(&g.taken, __ATOMIC_SEQ_CST);
    if (t >= K) break;
    mproc__plat_futex_wait(&g.taken, t, -1);
  }
  raise(SIGINT);
  __atomic_store_n(&g.sent, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void item_taken(void) {
  __atomic_fetch_add(&g.taken, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&g.taken, INT32_MAX);
}

/* ---- as_completed ---- */

/* Submits N tasks and loops over them as they complete; Ctrl-C comes after K items, from the loop itself
 * (raise) or from a thread.  The call after it returns MPROC_EINTERRUPTED, whatever is ready; the one after
 * that goes on. */
static void as_completed_loop(bool from_thread) {
  memset(&g, 0, sizeof g);
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS);
  static mproc_future *fs[N];
  for (int i = 0; i < N; i++) CHECK_OK(mproc_pool_submit(p, ten_ms, NULL, 0, NULL, &fs[i]));
  mproc_as_completed *it;
  CHECK_OK(mproc_as_completed_create(&it, fs, N));
  pthread_t th;
  if (from_thread) CHECK_INT_EQ(pthread_create(&th, NULL, signaller, NULL), 0);
  size_t taken = 0;
  int r;
  for (;;) {
    bool sent = __atomic_load_n(&g.sent, __ATOMIC_SEQ_CST);
    mproc_future *f;
    r = mproc_as_completed_next(it, MPROC_FOREVER, &f);
    if (sent) CHECK_ERR(r, MPROC_EINTERRUPTED);
    if (r != 0) break;
    taken++;
    if (taken == K && !from_thread) {
      raise(SIGINT);
      __atomic_store_n(&g.sent, 1, __ATOMIC_SEQ_CST);
    }
    if (from_thread) item_taken();
  }
  CHECK_ERR(r, MPROC_EINTERRUPTED);
  CHECK_INT_CMP(taken, <, N);
  if (!from_thread) CHECK_INT_EQ(taken, K);
  if (from_thread) CHECK_INT_EQ(pthread_join(th, NULL), 0);
  /* reported once: the loop can go on */
  mproc_future *f;
  CHECK_OK(mproc_as_completed_next(it, MPROC_FOREVER, &f));
  CHECK_INT_EQ(mproc_future_done(f), 1);
  mproc_as_completed_destroy(it);
  check_sigint_is_default();
  CHECK_OK(mproc_pool_terminate(p));
  for (int i = 0; i < N; i++) mproc_future_release(fs[i]);
  mproc_pool_destroy(p);
}

MTEST(as_completed_ctrl_c_in_the_loop) { as_completed_loop(false); }
MTEST(as_completed_ctrl_c_from_a_thread) { as_completed_loop(true); }

/* ---- imap and imap_unordered ---- */

static void stream_loop(mproc_backend b, bool unordered, bool from_thread) {
  memset(&g, 0, sizeof g);
  mproc_pool *p = make_pool(b);
  mproc_stream *s;
  mproc_stream_opts so = {.chunk_size = 1};
  CHECK_OK(unordered ? mproc_pool_imap_unordered(p, ten_ms, NULL, N, 0, sizeof(int64_t), &so, &s)
                     : mproc_pool_imap(p, ten_ms, NULL, N, 0, sizeof(int64_t), &so, &s));
  pthread_t th;
  if (from_thread) CHECK_INT_EQ(pthread_create(&th, NULL, signaller, NULL), 0);
  size_t taken = 0;
  int r;
  for (;;) {
    bool sent = __atomic_load_n(&g.sent, __ATOMIC_SEQ_CST);
    int64_t idx;
    const void *res;
    r = mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL);
    if (sent) CHECK_ERR(r, MPROC_EINTERRUPTED);
    if (r != 0) break;
    if (!unordered) CHECK_INT_EQ(idx, (int64_t)taken);
    CHECK_INT_EQ(*(const int64_t *)res, idx);
    taken++;
    if (taken == K && !from_thread) {
      raise(SIGINT);
      __atomic_store_n(&g.sent, 1, __ATOMIC_SEQ_CST);
    }
    if (from_thread) item_taken();
  }
  CHECK_ERR(r, MPROC_EINTERRUPTED);
  CHECK_INT_CMP(taken, <, N);
  if (!from_thread) CHECK_INT_EQ(taken, K);
  if (from_thread) CHECK_INT_EQ(pthread_join(th, NULL), 0);
  /* reported once: the stream can go on, in order for imap */
  int64_t idx;
  const void *res;
  CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
  if (!unordered) CHECK_INT_EQ(idx, (int64_t)taken);
  CHECK_INT_EQ(*(const int64_t *)res, idx);
  mproc_stream_destroy(s);
  check_sigint_is_default();
  mproc_pool_destroy(p);
}

MTEST(imap_unordered_ctrl_c_in_the_loop) { stream_loop(MPROC_BACKEND_PROCESS, true, false); }
MTEST(imap_unordered_ctrl_c_from_a_thread) { stream_loop(MPROC_BACKEND_PROCESS, true, true); }
MTEST(imap_ctrl_c_in_the_loop) { stream_loop(MPROC_BACKEND_PROCESS, false, false); }
MTEST(imap_ctrl_c_from_a_thread) { stream_loop(MPROC_BACKEND_PROCESS, false, true); }
MTEST(imap_ctrl_c_thread_backend) { stream_loop(MPROC_BACKEND_THREAD, false, true); }
/* the serial backend runs items in the caller: no wait at all, the next call still reports it */
MTEST(imap_ctrl_c_serial_backend) { stream_loop(MPROC_BACKEND_SERIAL, false, false); }

/* ---- a map and a plain wait ---- */

/* Sends SIGINT every 10 ms until told to stop: a plain wait reacts only to a Ctrl-C that comes while it
 * waits, so one early signal would not do. */
static uint32_t stop_flag;
static void *repeat_sigint(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop_flag, __ATOMIC_SEQ_CST)) {
    kill(getpid(), SIGINT);
    mproc__plat_futex_wait(&stop_flag, 0, 0.01);
  }
  return NULL;
}

static int sleep_long(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  nanosleep(&(struct timespec){20, 0}, NULL);
  return 0;
}

MTEST(map_and_future_wait_still_interrupted) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS);
  /* keep mproc's handler installed for the whole test, so a signal sent between two waits is counted
   * rather than fatal */
  mproc__sigint_begin();
  static int64_t out[N];
  mproc_map_report rep;
  stop_flag = 0;
  pthread_t th;
  CHECK_INT_EQ(pthread_create(&th, NULL, repeat_sigint, NULL), 0);
  CHECK_ERR(mproc_pool_map(p, ten_ms, NULL, N, 0, out, sizeof *out, &(mproc_map_opts){.chunk_size = 1}, &rep),
            MPROC_EINTERRUPTED);
  CHECK_INT_CMP(rep.cancelled, >, 0);
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, sleep_long, NULL, 0, NULL, &f));
  CHECK_ERR(mproc_future_wait(f, MPROC_FOREVER), MPROC_EINTERRUPTED);
  CHECK_INT_EQ(mproc_future_done(f), 0);
  __atomic_store_n(&stop_flag, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&stop_flag, INT32_MAX);
  CHECK_INT_EQ(pthread_join(th, NULL), 0);
  mproc__sigint_end();
  check_sigint_is_default();
  CHECK_OK(mproc_pool_terminate(p));
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

/* ---- a program's own handler ---- */

static volatile sig_atomic_t own_count;
static void own_handler(int sig) {
  (void)sig;
  own_count++;
}

MTEST(own_handler_keeps_sigint) {
  struct sigaction sa = {.sa_handler = own_handler};
  sigemptyset(&sa.sa_mask);
  CHECK_INT_EQ(sigaction(SIGINT, &sa, NULL), 0);
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, ten_ms, NULL, 10, 0, sizeof(int64_t), NULL, &s));
  int64_t idx;
  const void *res;
  CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
  raise(SIGINT);
  CHECK_INT_EQ(own_count, 1);
  /* mproc saw nothing: the stream goes on to the end */
  int taken = 1;
  while (mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL) == 0) taken++;
  CHECK_INT_EQ(taken, 10);
  mproc_stream_destroy(s);
  struct sigaction now;
  CHECK_INT_EQ(sigaction(SIGINT, NULL, &now), 0);
  CHECK(now.sa_handler == own_handler);
  mproc_pool_destroy(p);
  signal(SIGINT, SIG_DFL);
}

/* A handler the program installs while a stream holds mproc's is left in place when the stream ends. */
MTEST(own_handler_installed_meanwhile_is_kept) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, ten_ms, NULL, 4, 0, sizeof(int64_t), NULL, &s));
  struct sigaction sa = {.sa_handler = own_handler};
  sigemptyset(&sa.sa_mask);
  CHECK_INT_EQ(sigaction(SIGINT, &sa, NULL), 0);
  mproc_stream_destroy(s);
  struct sigaction now;
  CHECK_INT_EQ(sigaction(SIGINT, NULL, &now), 0);
  CHECK(now.sa_handler == own_handler);
  mproc_pool_destroy(p);
  signal(SIGINT, SIG_DFL);
}

/* While a stream exists mproc's handler is in place as the program runs its own code: a Ctrl-C during the
 * program's own blocking system call restarts it (SA_RESTART) rather than failing it with EINTR, and the
 * stream's next call reports it. */
static struct {
  pid_t tid;
  pthread_t main;
  int rfd, wfd;
} blocked;

/* Whether thread tid is blocked in the system call nr on descriptor fd (/proc/.../syscall: the number, then
 * the arguments in hex). */
static bool in_syscall(pid_t tid, long nr, int fd) {
  char path[64], buf[64] = "";
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  /* "running" while it runs: only a number is a blocked call */
  char *end;
  bool yes = fgets(buf, sizeof buf, f) && buf[0] >= '0' && buf[0] <= '9' && strtol(buf, &end, 10) == nr &&
             strtol(end, NULL, 16) == fd;
  fclose(f);
  return yes;
}

/* Whether SIGINT is pending for thread tid (not yet delivered). */
static bool sigint_pending(pid_t tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  unsigned long long mask = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "SigPnd: %llx", &mask) == 1) break;
  fclose(f);
  return mask & (1ull << (SIGINT - 1));
}

static void *interrupt_the_read(void *arg) {
  (void)arg;
  while (!in_syscall(blocked.tid, SYS_read, blocked.rfd)) sched_yield();
  pthread_kill(blocked.main, SIGINT);
  /* the byte only once the signal was handled and the read is blocked again: written earlier, it could
   * end the read before the signal is looked at */
  while (sigint_pending(blocked.tid)) sched_yield();
  while (!in_syscall(blocked.tid, SYS_read, blocked.rfd)) sched_yield();
  char c = 'x';
  CHECK_INT_EQ(write(blocked.wfd, &c, 1), 1);
  return NULL;
}

MTEST(ctrl_c_restarts_the_programs_own_calls) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS);
  mproc_stream *s;
  CHECK_OK(mproc_pool_imap(p, ten_ms, NULL, 4, 0, sizeof(int64_t), NULL, &s));
  int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  blocked.tid = (pid_t)syscall(SYS_gettid);
  blocked.main = pthread_self();
  blocked.rfd = fds[0];
  blocked.wfd = fds[1];
  pthread_t th;
  CHECK_INT_EQ(pthread_create(&th, NULL, interrupt_the_read, NULL), 0);
  char c = 0;
  ssize_t got = read(fds[0], &c, 1);
  CHECK_INT_EQ(got, 1);
  CHECK_INT_EQ(c, 'x');
  CHECK_INT_EQ(pthread_join(th, NULL), 0);
  int64_t idx;
  const void *res;
  CHECK_ERR(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL), MPROC_EINTERRUPTED);
  CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
  close(fds[0]);
  close(fds[1]);
  mproc_stream_destroy(s);
  mproc_pool_destroy(p);
}
