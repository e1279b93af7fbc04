/* mtest.h: mproc's small test harness.
 *
 * A test file defines tests with MTEST(name) (or MTEST_TIMEOUT(name, seconds)) and links mtest.c, which
 * provides main().  Every test runs in its own forked process with a timeout (default 30 s); that process is
 * a child subreaper, so processes orphaned by the test come back to it, and after the test body it checks
 * that nothing was left behind: no child process, no new file descriptor, no new shared memory mapping and
 * no new /dev/shm entry.  The binary re-executes itself for helper processes: MTEST_HELPER(name) defines
 * one, mtest_helper_argv() builds its command line.  Output is one "ok"/"not ok" line per test and a last
 * line "N passed, N failed".  Arguments: test names to run a subset, --list, --timeout-scale F, and the
 * options a test file registers with mtest_register_option(). */
#ifndef MPROC_MTEST_H
#define MPROC_MTEST_H

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mproc.h>

typedef void (*mtest_fn)(void);
typedef int (*mtest_helper_fn)(int argc, char **argv);

void mtest_register(const char *name, mtest_fn fn, double timeout);
void mtest_register_helper(const char *name, mtest_helper_fn fn);
/* A test file's own option: `FLAG VALUE` on the command line calls fn(VALUE) in the runner, before any
 * test runs (so what fn sets is inherited by every test's process).  fn may register tests; the name it
 * returns, when not NULL, is run as if it had been named on the command line.  Register it from a
 * constructor, as MTEST does. */
typedef const char *(*mtest_option_fn)(const char *value);
void mtest_register_option(const char *flag, mtest_option_fn fn);
void mtest_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* The path of the test binary and an argv for running helper `name` with up to 6 more arguments (NULL-
 * terminated, static storage: use before the next call). */
const char *mtest_self(void);
char **mtest_helper_argv(const char *name, const char *a1, const char *a2, const char *a3);

/* For the tests that a pool's processes die with its caller: runs helper `name` in a child process (its one
 * argument: the write end of a pipe), reads the n pids (at most 16) the helper writes there before it
 * waits, kills that child with SIGKILL, and checks that every process listed (a pid listed twice counts
 * once) was alive before and has ended within timeout_ms; then reaps what was orphaned to the test. */
void mtest_check_die_with_caller(const char *name, int n, int timeout_ms);
/* The other side, in such a helper: maps 8 one-item batches of mtest_report_pid over pool p, writes the
 * pool's template pid and the 8 workers' pids to fd (9 ints), then waits for its death.  Returns only on
 * failure: 4 (the map), 5 (the write). */
int mtest_report_pool_pids(mproc_pool *p, int fd);
/* A task that returns the pid (an int) of the process running it. */
int mtest_report_pid(const void *arg, size_t len, mproc_task *t);

/* For the tests that a process the library forks (a pool's template, the fork server) outlives the thread
 * that forked it: runs fn(arg) in a new thread that ends as soon as fn returns, with every process the
 * test forks meanwhile held at its first pidfd_open() (where a child starts to watch its parent's
 * process) until that thread is gone from /proc.  A child that still had a parent-death signal, which
 * Linux ties to the forking thread, dies there.  Returns when the thread is gone. */
void mtest_in_thread_that_ends(void (*fn)(void *), void *arg);

/* For the tests that a pool reaps what its template leaves behind: creates a pool with make() (one worker,
 * forked by its template; no other is left after the crash) and has the template SIGKILLed inside the fork
 * of the replacement of a crashed worker: before the kernel makes the child (early) or after, on its way
 * back from fork(), so that nobody learns the pid of a child that exists.  The test process, a child
 * subreaper, inherits that orphan: the leak check after the test finds it unless the pool reaped it.
 * Checks the crash and that the pool is then lost; destroys the pool. */
void mtest_template_dies_in_a_fork(mproc_pool *(*make)(void), bool early);

/* Runs fn(arg) in a new thread 30 ms from now, for tests that a call waits (the delay is the thing under
 * test: the call must still be waiting then, not have failed or timed out at once).  Join it after. */
typedef struct mtest_later {
  pthread_t th;
  void (*fn)(void *);
  void *arg;
} mtest_later;
void mtest_later_start(mtest_later *l, void (*fn)(void *), void *arg);
void mtest_later_join(mtest_later *l);

/* A seed for randomised tests: MTEST_SEED from the environment, else derived from the clock; printed when
 * the test fails. */
uint64_t mtest_seed(void);

/* The leak check in the middle of a test (for tests that inject a fault many times over and check each
 * round): mtest_mark() records what the process holds (children, descriptors, shared mappings, /dev/shm
 * entries); mtest_leaks_since_mark() prints what it holds beyond that ("#   leak: ...") and returns how
 * many such things there are. */
void mtest_mark(void);
int mtest_leaks_since_mark(void);

/* Marks the leak check off for the current test (only for tests that leak on purpose and clean up
 * themselves, such as the harness's own self-test). */
void mtest_skip_leak_check(void);

#define MTEST_TIMEOUT(name, seconds)                                                                        \
  static void name(void);                                                                                   \
  __attribute__((constructor)) static void mtest_reg_##name(void) { mtest_register(#name, name, seconds); } \
  static void name(void)
#define MTEST(name) MTEST_TIMEOUT(name, 30.0)

#define MTEST_HELPER(name)                                                                                 \
  static int name(int argc, char **argv);                                                                  \
  __attribute__((constructor)) static void mtest_regh_##name(void) { mtest_register_helper(#name, name); } \
  static int name(int argc, char **argv)

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) mtest_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond); \
  } while (0)

#define CHECK_INT_EQ(a, b)                                                                   \
  do {                                                                                       \
    long long mt_a_ = (long long)(a), mt_b_ = (long long)(b);                                \
    if (mt_a_ != mt_b_)                                                                      \
      mtest_fail(__FILE__, __LINE__, "%s == %s failed: %lld != %lld", #a, #b, mt_a_, mt_b_); \
  } while (0)

#define CHECK_INT_CMP(a, op, b)                                                                   \
  do {                                                                                            \
    long long mt_a_ = (long long)(a), mt_b_ = (long long)(b);                                     \
    if (!(mt_a_ op mt_b_))                                                                        \
      mtest_fail(__FILE__, __LINE__, "%s %s %s failed: %lld vs %lld", #a, #op, #b, mt_a_, mt_b_); \
  } while (0)

#define CHECK_STR_EQ(a, b)                                                                                  \
  do {                                                                                                      \
    const char *mt_a_ = (a), *mt_b_ = (b);                                                                  \
    if (!mt_a_ || !mt_b_ || strcmp(mt_a_, mt_b_) != 0)                                                      \
      mtest_fail(__FILE__, __LINE__, "%s == %s failed: \"%s\" != \"%s\"", #a, #b, mt_a_ ? mt_a_ : "(null)", \
                 mt_b_ ? mt_b_ : "(null)");                                                                 \
  } while (0)

/* An mproc call that must succeed (return >= 0). */
#define CHECK_OK(expr)                                                                   \
  do {                                                                                   \
    int mt_r_ = (expr);                                                                  \
    if (mt_r_ < 0)                                                                       \
      mtest_fail(__FILE__, __LINE__, "%s failed: %s (%s)", #expr, mproc_err_name(mt_r_), \
                 mproc_strerror(mt_r_));                                                 \
  } while (0)

/* An mproc call that must fail with exactly `code`. */
#define CHECK_ERR(expr, code)                                                               \
  do {                                                                                      \
    int mt_r_ = (expr), mt_c_ = (code);                                                     \
    if (mt_r_ != mt_c_)                                                                     \
      mtest_fail(__FILE__, __LINE__, "%s returned %d (%s), expected %d (%s)", #expr, mt_r_, \
                 mproc_err_name(mt_r_), mt_c_, mproc_err_name(mt_c_));                      \
  } while (0)

#endif
