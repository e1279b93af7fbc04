/* test_worker_faults.c: the process backend's faults: crashes, hung tasks, retries, failing initializers,
 * max_tasks_per_child, the template's death, failing forks, workers dying with the caller, a pool outliving
 * the thread that created it. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "face/face.h"
#include "pool_tasks.h"

static void check_crash(mproc_future *f, mproc_outcome_kind kind, int code, int sig, int exit_code) {
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), code);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, kind);
  CHECK_INT_EQ(o.signal, sig);
  CHECK_INT_EQ(o.exit_code, exit_code);
  CHECK(strlen(o.message) > 0);
}

MTEST_TIMEOUT(crashes_fail_only_their_task, 60) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.task_timeout = 0});
  enum { N = 300 };
  mproc_future *fs[N];
  int bad[] = {-1, -2, -3, -4};
  int where[] = {10, 100, 200, 250};
  for (int i = 0; i < N; i++) {
    int n = i;
    for (int k = 0; k < 4; k++)
      if (i == where[k]) n = bad[k];
    CHECK_OK(mproc_pool_submit(p, misbehave, &n, sizeof n, NULL, &fs[i]));
  }
  /* the task killed from outside: wait for it to announce itself, then kill its worker */
  await_started(1);
  CHECK(kill(__atomic_load_n(&sh->pids[0], __ATOMIC_SEQ_CST), SIGKILL) == 0);
  check_crash(fs[10], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGSEGV, -1);
  check_crash(fs[100], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGABRT, -1);
  check_crash(fs[200], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, 0, 42);
  check_crash(fs[250], MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGKILL, -1);
  for (int i = 0; i < N; i++) {
    if (i == 10 || i == 100 || i == 200 || i == 250) continue;
    const void *data;
    CHECK_OK(mproc_future_result(fs[i], MPROC_FOREVER, &data, NULL));
    CHECK_INT_EQ(*(const int *)data, i * i);
  }
  for (int i = 0; i < N; i++) mproc_future_release(fs[i]);
  /* the pool is still whole */
  int in[100], out[100];
  for (int i = 0; i < 100; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, 100, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 100; i++) CHECK_INT_EQ(out[i], i * i);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST_TIMEOUT(hung_task_times_out, 60) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc_future *fs[20];
  for (int i = 0; i < 20; i++) {
    int n = i == 5 ? -5 : i;
    CHECK_OK(mproc_pool_submit(p, misbehave, &n, sizeof n,
                               i == 5 ? &(mproc_submit_opts){.timeout = 0.2} : NULL, &fs[i]));
  }
  double t0 = mproc__plat_now();
  check_crash(fs[5], MPROC_OUTCOME_TIMEDOUT, MPROC_ETASKTIMEOUT, 0, -1);
  CHECK(mproc__plat_now() - t0 >= 0.15);
  for (int i = 0; i < 20; i++) {
    if (i == 5) continue;
    const void *data;
    CHECK_OK(mproc_future_result(fs[i], MPROC_FOREVER, &data, NULL));
    CHECK_INT_EQ(*(const int *)data, i * i);
  }
  for (int i = 0; i < 20; i++) mproc_future_release(fs[i]);
  /* a pool-wide timeout on a map item */
  int in[10] = {0, 1, 2, 3, -5, 5, 6, 7, 8, 9}, out[10], codes[10];
  mproc_map_report rep;
  CHECK_ERR(
      mproc_pool_map(
          p, misbehave, in, 10, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){
              .task_timeout = 0.2, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .chunk_size = 5},
          &rep),
      MPROC_ETASKTIMEOUT);
  CHECK_INT_EQ(rep.failed, 1);
  CHECK_INT_EQ(rep.first_failed_index, 4);
  CHECK_INT_EQ(rep.first_failure.kind, MPROC_OUTCOME_TIMEDOUT);
  for (int i = 0; i < 10; i++)
    if (i != 4) CHECK_INT_EQ(out[i], in[i] * in[i]);
  mproc_pool_destroy(p);
}

static int segfault_at_once(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  raise(SIGSEGV);
  return 0;
}

/* A task that crashed at once is reported as the crash, even when its death reaches the manager only after
 * its deadline (an overloaded machine): the template is stopped meanwhile, so the manager, which still sees
 * the task running, asks for its worker to be killed for the timeout; the worker had died of SIGSEGV. */
MTEST_TIMEOUT(crash_seen_after_the_deadline_is_a_crash, 60) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 1, &(mproc_pool_opts){.task_timeout = 0.1});
  int n = 3, sq = 0;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &sq, sizeof sq, NULL)); /* the worker is up */
  pid_t tpl = mproc__template_pid(&p->eng);
  CHECK(kill(tpl, SIGSTOP) == 0);
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, segfault_at_once, NULL, 0, NULL, &f));
  mproc__engine *e = &p->eng;
  uint32_t never = 0;
  for (;;) { /* the manager has decided to kill it for its timeout (nothing signals that: look again) */
    pthread_mutex_lock(&e->lock);
    int reason = e->ws[0].kill_reason;
    pthread_mutex_unlock(&e->lock);
    if (reason == MPROC_OUTCOME_TIMEDOUT) break;
    mproc__plat_futex_wait(&never, 0, 0.005);
  }
  CHECK(kill(tpl, SIGCONT) == 0);
  check_crash(f, MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGSEGV, -1);
  mproc_future_release(f);
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &sq, sizeof sq, NULL));
  CHECK_INT_EQ(sq, 9);
  mproc_pool_destroy(p);
}

MTEST(crash_inside_a_batch_fails_one_item) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  enum { N = 1000 };
  static int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  in[333] = -1; /* segfault */
  in[777] = -2; /* abort */
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, misbehave, in, N, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){
                               .chunk_size = 100, .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes},
                           &rep),
            MPROC_ECRASHED);
  CHECK_INT_EQ(rep.failed, 2);
  CHECK_INT_EQ(rep.ok, N - 2);
  CHECK_INT_EQ(rep.first_failed_index, 333);
  CHECK_INT_EQ(rep.first_failure.signal, SIGSEGV);
  for (int i = 0; i < N; i++) {
    if (i == 333 || i == 777) {
      CHECK_INT_EQ(codes[i], MPROC_ECRASHED);
    } else {
      CHECK_INT_EQ(codes[i], 0);
      CHECK_INT_EQ(out[i], i * i);
    }
  }
  mproc_pool_destroy(p);
}

static int crash_first_attempt(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_attempt(t) < 2) raise(SIGSEGV);
  return square(arg, len, t);
}

MTEST(retries_make_a_flaky_task_succeed) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.max_retries = 2});
  int n = 9;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, crash_first_attempt, &n, sizeof n, NULL, &f));
  const void *data;
  CHECK_OK(mproc_future_result(f, MPROC_FOREVER, &data, NULL));
  CHECK_INT_EQ(*(const int *)data, 81);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.attempts, 2);
  mproc_future_release(f);
  /* without retries it is reported */
  CHECK_OK(
      mproc_pool_submit(p, crash_first_attempt, &n, sizeof n, &(mproc_submit_opts){.max_retries = -1}, &f));
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_ECRASHED);
  mproc_future_release(f);
  /* in a map too */
  int in[50], out[50];
  for (int i = 0; i < 50; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, crash_first_attempt, in, 50, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 10}, NULL));
  for (int i = 0; i < 50; i++) CHECK_INT_EQ(out[i], i * i);
  mproc_pool_destroy(p);
}

/* A map over items of any size: a retried item is told its attempt, as a task and a fixed record are. */
static int crash_first_attempt_tell_it(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int attempt = mproc_task_attempt(t);
  if (attempt < 2) raise(SIGSEGV);
  return mproc_task_return(t, &attempt, sizeof attempt);
}

MTEST(retries_tell_an_item_of_any_size_its_attempt) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.max_retries = 2});
  const char *strings[] = {"a", "bb", "ccc", "dddd", "eeeee", "ffffff"};
  mproc_items in = mproc_items_strings(strings, 6);
  mproc_results *res = NULL;
  CHECK_OK(mproc_pool_map_items(p, crash_first_attempt_tell_it, &in, &(mproc_map_opts){.chunk_size = 3}, &res,
                                NULL));
  for (size_t i = 0; i < 6; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_results_get(res, i, &data, &len));
    CHECK_INT_EQ(len, sizeof(int));
    CHECK_INT_EQ(*(const int *)data, 2);
  }
  mproc_results_free(res);
  mproc_pool_destroy(p);
}

MTEST(failing_initializer_is_a_crash) {
  mproc_pool *p =
      make_pool(MPROC_BACKEND_PROCESS, 1,
                &(mproc_pool_opts){.initializer = initializer, .init_arg = "nope", .init_arg_len = 4});
  mproc_future *f;
  int n = 1;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_ECRASHED);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.exit_code, 120);
  CHECK(strstr(o.message, "initializer failed") != NULL);
  mproc_future_release(f);
  /* each later task fails the same way, quickly, instead of the pool hanging or spinning */
  for (int k = 0; k < 3; k++) {
    CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
    CHECK_ERR(mproc_future_result(f, MPROC_FOREVER, NULL, NULL), MPROC_ECRASHED);
    mproc_future_release(f);
  }
  mproc_pool_destroy(p);
}

static int count_and_report_pid(const void *arg, size_t len, mproc_task *t) {
  __atomic_fetch_add(&sh->started, 1, __ATOMIC_SEQ_CST);
  return mtest_report_pid(arg, len, t);
}

MTEST(max_tasks_per_child) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.max_tasks_per_child = 1});
  enum { N = 12 };
  int pids[N];
  CHECK_OK(mproc_pool_map(p, count_and_report_pid, NULL, N, 0, pids, sizeof *pids,
                          &(mproc_map_opts){.chunk_size = 1}, NULL));
  for (int i = 0; i < N; i++)
    for (int k = i + 1; k < N; k++) CHECK_INT_CMP(pids[i], !=, pids[k]);
  CHECK_INT_EQ(sh->started, N); /* each task ran once: none was lost with its retiring worker */
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST_HELPER(pool_then_wait) {
  (void)argc;
  int fd = atoi(argv[1]);
  mproc_pool *p;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}) != 0)
    return 3;
  return mtest_report_pool_pids(p, fd);
}

MTEST(workers_die_with_the_caller) {
  mtest_check_die_with_caller("pool_then_wait", 9, 1000); /* the template and 8 workers' pids */
}

static int fail_fork(void) {
  errno = EAGAIN;
  return -1;
}

MTEST(fork_failure_leaves_nothing) {
  mproc__plat_sys.fork = (pid_t(*)(void))fail_fork;
  mproc_pool *p = NULL;
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}),
            MPROC_EAGAIN);
  mproc__plat_syscalls_reset();
  CHECK(p == NULL);
}

/* The template is forked by the thread that creates the pool; it must end with the caller's process, not
 * with that thread (Linux ties the parent-death signal to the forking thread).  A template that still had
 * that signal when the thread ended would die (that version fails here 10 runs out of 10). */
static void create_process_pool(void *out) {
  CHECK_OK(mproc_pool_create((mproc_pool **)out,
                             &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}));
}

MTEST(pool_outlives_the_thread_that_created_it) {
  mproc_pool *p = NULL;
  mtest_in_thread_that_ends(create_process_pool, &p);
  int in[64], out[64];
  for (int i = 0; i < 64; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, 64, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 64; i++) CHECK_INT_EQ(out[i], i * i);
  siginfo_t si = {0};
  CHECK(waitid(P_PID, (id_t)mproc__template_pid(&p->eng), &si, WEXITED | WNOHANG | WNOWAIT) == 0);
  CHECK_INT_EQ(si.si_pid, 0); /* the template has not ended */
  mproc_pool_destroy(p);
}

/* The first fork (the template's, in this process) succeeds; every later one, in the template, fails once
 * the test has let it (a byte on the gate pipe each), so that a task is queued before the pool is lost. */
static pid_t (*real_fork)(void);
static int forks_seen, fork_gate[2];
static pid_t fork_once(void) {
  if (forks_seen++ == 0) return real_fork();
  char c;
  while (read(fork_gate[0], &c, 1) < 0 && errno == EINTR) {
  }
  errno = EAGAIN;
  return -1;
}

MTEST(no_worker_can_start_fails_tasks_not_the_caller) {
  real_fork = mproc__plat_sys.fork;
  forks_seen = 0;
  CHECK(pipe(fork_gate) == 0);
  mproc__plat_sys.fork = fork_once;
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc__plat_syscalls_reset();
  int n = 3;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK(write(fork_gate[1], "xx", 2) == 2); /* now both workers' forks fail */
  CHECK_ERR(mproc_future_error(f, 10.0), MPROC_EAGAIN);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_LOST);
  CHECK(strstr(o.message, "no worker could be started") != NULL);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f), MPROC_EAGAIN);
  int out;
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EAGAIN);
  mproc_pool_destroy(p);
  close(fork_gate[0]);
  close(fork_gate[1]);
}

static mproc_pool *one_worker_pool(void) { return make_pool(MPROC_BACKEND_PROCESS, 1, NULL); }

MTEST(template_killed_in_a_fork_that_made_a_child) { mtest_template_dies_in_a_fork(one_worker_pool, false); }
MTEST(template_killed_in_a_fork_that_made_none) { mtest_template_dies_in_a_fork(one_worker_pool, true); }

MTEST(template_death_loses_tasks_not_the_caller) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int n = 2;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &f));
  await_started(1);
  /* the second worker may be running, being forked or not yet asked for: the pool reaps what the
   * template leaves behind in each case, this process being a subreaper */
  CHECK(kill(mproc__template_pid(&p->eng), SIGKILL) == 0); /* as the OOM killer might */
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ELOST);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_LOST);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f), MPROC_ELOST);
  int out;
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_ELOST);
  mproc_pool_destroy(p);
  unmap_shared();
}

/* An idle pool destroyed as soon as its template is killed, before the manager can have noticed: what the
 * template leaves behind is reaped all the same (this process being a subreaper). */
MTEST(pool_destroyed_just_after_its_template_died) {
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int out[8];
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, out, sizeof *out, NULL, NULL));
  CHECK(kill(mproc__template_pid(&p->eng), SIGKILL) == 0);
  mproc_pool_destroy(p);
}

/* Where the kernel has no pidfds (before Linux 5.3; valgrind 3.19 does not know the call either), the
 * template learns of a worker's end by SIGCHLD: a crash is reported and the worker replaced, a closed
 * pool's workers end and are reaped (the join returns), and so with the fork server's templates.  Before,
 * a pool there never saw a worker end: a crash or a join waited for ever. */
static int no_pidfd_open(pid_t pid, unsigned flags) {
  (void)pid, (void)flags;
  errno = ENOSYS;
  return -1;
}

static void pool_without_pidfds(mproc_start_method how) {
  mproc__plat_sys.pidfd_open = no_pidfd_open; /* the template and the server inherit the table */
  if (how == MPROC_START_FORKSERVER) CHECK_OK(mproc_init(NULL, NULL));
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = how}));
  for (int round = 0; round < 3; round++) {
    int n = -1;
    mproc_future *f;
    CHECK_OK(mproc_pool_submit(p, misbehave, &n, sizeof n, NULL, &f));
    check_crash(f, MPROC_OUTCOME_CRASHED, MPROC_ECRASHED, SIGSEGV, -1);
    mproc_future_release(f);
  }
  int in[50], out[50];
  for (int i = 0; i < 50; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, 50, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 50; i++) CHECK_INT_EQ(out[i], i * i);
  CHECK_OK(mproc_pool_close(p));
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  mproc_pool_destroy(p);
  if (how == MPROC_START_FORKSERVER) mproc_shutdown();
  mproc__plat_syscalls_reset();
}

MTEST(pool_without_pidfds_sees_its_workers_end) { pool_without_pidfds(MPROC_START_FORK); }
MTEST(forkserver_pool_without_pidfds_sees_its_workers_end) { pool_without_pidfds(MPROC_START_FORKSERVER); }
