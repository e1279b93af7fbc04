/* test_pool_basics.c: a pool's life on every backend: create and its options, workers' initializer and
 * finalizer, close/join/terminate/destroy and shutdown, a closed pool, bad input, environment defaults. */
#include <float.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "pool_tasks.h"

static void closed_pool(mproc_backend b) {
  mproc_pool *p = make_pool(b, 2, NULL);
  int n = 3;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_OK(mproc_pool_close(p));
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  CHECK_INT_EQ(mproc_future_done(f), 1);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f), MPROC_ECLOSED);
  int out;
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_ECLOSED);
  CHECK_ERR(mproc_executor_submit(p, square, &n, sizeof n, &f), MPROC_ECLOSED);
  mproc_pool_destroy(p);
}
MTEST(closed_pool_process) { closed_pool(MPROC_BACKEND_PROCESS); }
MTEST(closed_pool_serial) { closed_pool(MPROC_BACKEND_SERIAL); }
MTEST(closed_pool_thread) { closed_pool(MPROC_BACKEND_THREAD); }

static int read_init(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int v = init_calls + mproc_task_worker_id(t);
  return mproc_task_return(t, &v, sizeof v);
}

MTEST(initializer_and_worker_ids) {
  mproc_pool *p =
      make_pool(MPROC_BACKEND_PROCESS, 2,
                &(mproc_pool_opts){.initializer = initializer, .init_arg = "init", .init_arg_len = 4});
  int out[64];
  CHECK_OK(
      mproc_pool_map(p, read_init, NULL, 64, 0, out, sizeof *out, &(mproc_map_opts){.chunk_size = 1}, NULL));
  for (int i = 0; i < 64; i++) CHECK(out[i] == 1000 || out[i] == 1001);
  CHECK_INT_EQ(init_calls, 0); /* the caller's memory is untouched */
  mproc_pool_destroy(p);
}

static void count_finalizer(void) { __atomic_fetch_add(&sh->npids, 1, __ATOMIC_SEQ_CST); }

MTEST(finalizer_runs_when_workers_end_normally) {
  map_shared();
  /* at destroy */
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, &(mproc_pool_opts){.finalizer = count_finalizer});
  int out[8];
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
  CHECK_INT_EQ(sh->npids, 2);
  /* when a worker retires (max_tasks_per_child), and again at destroy for the replacements */
  sh->npids = 0;
  p = make_pool(MPROC_BACKEND_PROCESS, 1,
                &(mproc_pool_opts){.finalizer = count_finalizer, .max_tasks_per_child = 2});
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 7, 0, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 1}, NULL));
  mproc_pool_destroy(p);
  CHECK_INT_EQ(sh->npids, 4); /* three retired after two tasks each; the fourth ran task 6 and is stopped */
  /* the thread backend too */
  sh->npids = 0;
  p = make_pool(MPROC_BACKEND_THREAD, 2, &(mproc_pool_opts){.finalizer = count_finalizer});
  CHECK_OK(mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
  CHECK_INT_EQ(sh->npids, 2);
  unmap_shared();
}

static int read_omp(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  const char *v = getenv("OMP_NUM_THREADS");
  return mproc_task_return(t, v ? v : "", v ? strlen(v) + 1 : 1);
}

MTEST(thread_env_guard) {
  unsetenv("OMP_NUM_THREADS");
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  char buf[16] = "";
  CHECK_OK(mproc_pool_apply(p, read_omp, NULL, 0, buf, sizeof buf, NULL));
  char want[16];
  int n = mproc_cpu_count() / 2;
  snprintf(want, sizeof want, "%d", n > 0 ? n : 1);
  CHECK_STR_EQ(buf, want);
  CHECK(getenv("OMP_NUM_THREADS") == NULL); /* the caller's environment is untouched */
  mproc_pool_destroy(p);
  setenv("OMP_NUM_THREADS", "5", 1);
  p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  CHECK_OK(mproc_pool_apply(p, read_omp, NULL, 0, buf, sizeof buf, NULL));
  CHECK_STR_EQ(buf, "5");
  mproc_pool_destroy(p);
  unsetenv("OMP_NUM_THREADS");
}

MTEST(environment_defaults) {
  mproc_pool *p;
  setenv("MPROC_WORKERS", "3", 1);
  CHECK_OK(mproc_pool_create(&p, NULL));
  CHECK_INT_EQ(mproc_pool_workers(p), 3);
  mproc_pool_destroy(p);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1})); /* options win */
  CHECK_INT_EQ(mproc_pool_workers(p), 1);
  mproc_pool_destroy(p);
  setenv("MPROC_WORKERS", "lots", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_EINVAL);
  unsetenv("MPROC_WORKERS");
  setenv("MPROC_BACKEND", "serial", 1);
  CHECK_OK(mproc_pool_create(&p, NULL));
  int n = 4, r;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL));
  CHECK_INT_EQ(r, 16);
  mproc_pool_destroy(p);
  setenv("MPROC_BACKEND", "mpi", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_ENOBACKEND);
  setenv("MPROC_BACKEND", "quantum", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_EINVAL);
  unsetenv("MPROC_BACKEND");
}

MTEST_TIMEOUT(destroy_does_not_hang, 30) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  mproc_future *fs[6];
  int n = 1;
  for (int i = 0; i < 6; i++) CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[i]));
  await_started(2);
  double t0 = mproc__plat_now();
  mproc_pool_destroy(p); /* gate never opens: running tasks are killed after the grace period */
  CHECK(mproc__plat_now() - t0 < 5);
  for (int i = 0; i < 6; i++) {
    CHECK_INT_EQ(mproc_future_done(fs[i]), 1);
    CHECK_ERR(mproc_future_error(fs[i], 0), MPROC_ECANCELED);
    mproc_future_release(fs[i]);
  }
  unmap_shared();
}

MTEST(shutdown_with_cancel_and_terminate) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  mproc_future *fs[5];
  int n = 2;
  for (int i = 0; i < 5; i++) CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[i]));
  await_started(1);
  CHECK_OK(mproc_executor_shutdown(p, 0, 1)); /* cancel what has not been handed out */
  open_gate();
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_future_error(fs[0], 0));
  int cancelled = 0;
  for (int i = 1; i < 5; i++) cancelled += mproc_future_cancelled(fs[i]);
  CHECK_INT_CMP(cancelled, >=, 3); /* one more may have been handed to the worker already */
  for (int i = 0; i < 5; i++) mproc_future_release(fs[i]);
  mproc_pool_destroy(p);

  /* terminate kills what runs */
  __atomic_store_n(&sh->gate, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&sh->started, 0, __ATOMIC_SEQ_CST);
  p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[0]));
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &fs[1]));
  await_started(1);
  CHECK_OK(mproc_pool_terminate(p));
  CHECK_ERR(mproc_future_error(fs[0], MPROC_FOREVER), MPROC_ECANCELED);
  CHECK_ERR(mproc_future_error(fs[1], MPROC_FOREVER), MPROC_ECANCELED);
  CHECK_OK(mproc_pool_join(p, MPROC_FOREVER));
  mproc_future_release(fs[0]);
  mproc_future_release(fs[1]);
  mproc_pool_destroy(p);
  unmap_shared();
}

MTEST(bad_input) {
  mproc_pool *p = NULL;
  CHECK_ERR(mproc_pool_create(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = -1}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 100000}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.max_retries = -2}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.task_timeout = -1}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.task_timeout = NAN}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.backend = 99}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.init_arg_len = 3}), MPROC_EINVAL);
  /* bytes for no initializer: they would be ignored */
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.init_arg = "abc", .init_arg_len = 3}), MPROC_EINVAL);
  CHECK(p == NULL);
  CHECK_ERR(mproc_pool_workers(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_close(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_join(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_terminate(NULL), MPROC_EINVAL);
  mproc_pool_destroy(NULL);
  mproc_future *f = NULL;
  p = make_pool(MPROC_BACKEND_PROCESS, 1, NULL);
  int n = 1, out;
  CHECK_ERR(mproc_pool_submit(NULL, square, &n, sizeof n, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, NULL, &n, sizeof n, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, square, NULL, 4, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, &(mproc_submit_opts){.timeout = -1}, &f),
            MPROC_EINVAL);
  CHECK(f == NULL);
  CHECK_ERR(mproc_pool_map(NULL, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, NULL, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, NULL, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, NULL, sizeof out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out,
                           &(mproc_map_opts){.on_error = MPROC_ON_ERROR_STOP_AFTER}, NULL),
            MPROC_EINVAL);
  CHECK_ERR(
      mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, &(mproc_map_opts){.on_error = 9}, NULL),
      MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out,
                           &(mproc_map_opts){.task_timeout = NAN}, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, square, &n, sizeof n, NULL, 4, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_future_result(NULL, 0, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_error(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_future_outcome(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_cancel(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_cancelled(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_running(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_done(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_add_done_callback(NULL, on_done, NULL), MPROC_EINVAL);
  mproc_future_release(NULL);
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_wait(f, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_future_add_done_callback(f, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_outcome(f, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(NULL, 1, 0, MPROC_ALL_COMPLETED, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(&f, 1, 0, 7, NULL, NULL), MPROC_EINVAL);
  mproc_future *withnull[2] = {f, NULL};
  CHECK_ERR(mproc_futures_wait(withnull, 2, 0, MPROC_ALL_COMPLETED, NULL, NULL), MPROC_EINVAL);
  size_t nd = 5;
  CHECK_OK(mproc_futures_wait(NULL, 0, 0, MPROC_ALL_COMPLETED, &nd, NULL));
  CHECK_INT_EQ(nd, 0);
  mproc_as_completed *it;
  CHECK_ERR(mproc_as_completed_create(NULL, &f, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_create(&it, withnull, 2), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_next(NULL, 0, &f), MPROC_EINVAL);
  CHECK_OK(mproc_as_completed_create(&it, NULL, 0));
  mproc_future *g;
  CHECK_ERR(mproc_as_completed_next(it, 0, &g), MPROC_EEOF);
  CHECK_ERR(mproc_as_completed_next(it, NAN, &g), MPROC_EINVAL);
  mproc_as_completed_destroy(it);
  mproc_as_completed_destroy(NULL);
  CHECK_ERR(mproc_executor_shutdown(NULL, 1, 1), MPROC_EINVAL);
  CHECK_OK(mproc_future_wait(f, MPROC_FOREVER));
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

MTEST(buffered_output_is_not_repeated_by_workers) {
  /* stdout to a pipe is fully buffered: text printed before the pool must come out once, not once more
   * from every forked worker when it exits */
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stdout);
  int saved = dup(1);
  CHECK(dup2(fds[1], 1) == 1);
  close(fds[1]);
  setvbuf(stdout, NULL, _IOFBF, 4096);
  printf("once");
  mproc_pool *p = make_pool(MPROC_BACKEND_PROCESS, 2, NULL);
  int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
  CHECK_OK(mproc_pool_map(p, square, in, 8, sizeof *in, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
  fflush(stdout);
  CHECK(dup2(saved, 1) == 1);
  close(saved);
  setvbuf(stdout, NULL, _IOLBF, 0);
  char buf[64] = "";
  ssize_t got = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  CHECK(got > 0);
  buf[got] = '\0';
  CHECK_STR_EQ(buf, "once");
}

static int nap_30ms(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  nanosleep(&(struct timespec){0, 30 * 1000 * 1000}, NULL); /* the waits below must still be waiting */
  return 0;
}

/* Timeouts beyond any representable deadline wait forever. */
MTEST(huge_timeouts_wait_forever) {
  const double ts[] = {1e300, DBL_MAX, INFINITY};
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1}));
  for (size_t k = 0; k < 3; k++) {
    mproc_future *f;
    CHECK_OK(mproc_pool_submit(p, nap_30ms, NULL, 0, NULL, &f));
    CHECK_OK(mproc_future_wait(f, ts[k]));
    CHECK_OK(mproc_future_error(f, ts[k]));
    mproc_future_release(f);
    CHECK_OK(mproc_pool_submit(p, nap_30ms, NULL, 0, NULL, &f));
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(f, ts[k], &data, &len));
    mproc_future_release(f);
    CHECK_OK(mproc_pool_submit(p, nap_30ms, NULL, 0, NULL, &f));
    size_t ndone = 0;
    CHECK_OK(mproc_futures_wait(&f, 1, ts[k], MPROC_ALL_COMPLETED, &ndone, NULL));
    CHECK_INT_EQ(ndone, 1);
    mproc_future_release(f);
    CHECK_OK(mproc_pool_submit(p, nap_30ms, NULL, 0, NULL, &f));
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, &f, 1));
    mproc_future *got = NULL;
    CHECK_OK(mproc_as_completed_next(it, ts[k], &got));
    CHECK(got == f);
    mproc_as_completed_destroy(it);
    mproc_future_release(f);
    /* as per-task and per-map time limits: no limit */
    CHECK_OK(mproc_pool_submit(p, nap_30ms, NULL, 0, &(mproc_submit_opts){.timeout = ts[k]}, &f));
    CHECK_OK(mproc_future_error(f, MPROC_FOREVER));
    mproc_future_release(f);
    mproc_map_report rep;
    CHECK_OK(mproc_pool_map(p, nap_30ms, NULL, 2, 0, NULL, 0,
                            &(mproc_map_opts){.timeout = ts[k], .task_timeout = ts[k]}, &rep));
    CHECK_INT_EQ(rep.ok, 2);
    mproc_stream *s;
    CHECK_OK(mproc_pool_imap(p, nap_30ms, NULL, 2, 0, 0, &(mproc_stream_opts){.task_timeout = ts[k]}, &s));
    int64_t index = -1;
    const void *res;
    CHECK_OK(mproc_stream_next(s, ts[k], &index, &res, NULL));
    CHECK_INT_EQ(index, 0);
    CHECK_OK(mproc_stream_next(s, ts[k], &index, &res, NULL));
    CHECK_INT_EQ(index, 1);
    CHECK_ERR(mproc_stream_next(s, ts[k], &index, &res, NULL), MPROC_EEOF);
    mproc_stream_destroy(s);
  }
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, nap_30ms, NULL, 0, NULL, &f));
  CHECK_OK(mproc_pool_close(p));
  CHECK_OK(mproc_pool_join(p, 1e300));
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

/* Creates a thread-backend pool with workers from the environment: its worker count, or the error. */
static int pool_from_env(void) {
  mproc_pool *p = NULL;
  int r = mproc_pool_create(&p, &(mproc_pool_opts){.backend = MPROC_BACKEND_THREAD});
  if (r < 0) return r;
  int n = mproc_pool_workers(p);
  mproc_pool_destroy(p);
  return n;
}

static void *message_in_new_thread(void *arg) {
  (void)arg;
  return (void *)mproc_last_error_message();
}

/* MPROC_WORKERS takes what n_jobs takes; a bad value fails with a message naming the variable and value
 * (it was a bare -EINVAL), also on stderr with MPROC_VERBOSE. */
MTEST(environment_variables_are_checked_and_named) {
  int cpus = mproc_cpu_count();
  setenv("MPROC_WORKERS", "3", 1);
  CHECK_INT_EQ(pool_from_env(), 3);
  setenv("MPROC_WORKERS", "-1", 1);
  CHECK_INT_EQ(pool_from_env(), cpus);
  setenv("MPROC_WORKERS", "-2", 1);
  CHECK_INT_EQ(pool_from_env(), cpus > 1 ? cpus - 1 : 1);
  setenv("MPROC_WORKERS", "-4", 1);
  CHECK_INT_EQ(pool_from_env(), cpus > 3 ? cpus - 3 : 1);
  setenv("MPROC_WORKERS", "", 1); /* empty: unset */
  CHECK_INT_EQ(pool_from_env(), cpus);
  const char *bad[] = {"abc", "0", "100000", "4x", " 4", "99999999999999999999999"};
  for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
    setenv("MPROC_WORKERS", bad[k], 1);
    CHECK_ERR(pool_from_env(), MPROC_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "MPROC_WORKERS=\"%s\"", bad[k]);
    CHECK(strstr(mproc_last_error_message(), want) != NULL);
  }
  /* Parallel's pools read it too */
  setenv("MPROC_WORKERS", "abc", 1);
  mproc_parallel *par = NULL;
  CHECK_ERR(mproc_parallel_create(&par, &(mproc_parallel_opts){.backend = MPROC_BACKEND_THREAD}),
            MPROC_EINVAL);
  CHECK(strstr(mproc_last_error_message(), "MPROC_WORKERS=\"abc\"") != NULL);
  unsetenv("MPROC_WORKERS");
  setenv("MPROC_BACKEND", "proces", 1);
  mproc_pool *p = NULL;
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_EINVAL);
  CHECK(strstr(mproc_last_error_message(), "MPROC_BACKEND=\"proces\"") != NULL);
  setenv("MPROC_BACKEND", "mpi", 1);
  CHECK_ERR(mproc_pool_create(&p, NULL), MPROC_ENOBACKEND);
  CHECK(strstr(mproc_last_error_message(), "MPROC_BACKEND=\"mpi\"") != NULL);
  CHECK(p == NULL);
  /* the message is the calling thread's */
  pthread_t th;
  void *other = NULL;
  CHECK_INT_EQ(pthread_create(&th, NULL, message_in_new_thread, NULL), 0);
  CHECK_INT_EQ(pthread_join(th, &other), 0);
  CHECK_STR_EQ((const char *)other, "");
  /* MPROC_VERBOSE: also on stderr */
  int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  fflush(stderr);
  int saved = dup(2);
  CHECK_INT_EQ(dup2(fds[1], 2), 2);
  setenv("MPROC_VERBOSE", "1", 1);
  setenv("MPROC_BACKEND", "bogus", 1);
  int r = mproc_pool_create(&p, NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fds[1]);
  unsetenv("MPROC_VERBOSE");
  unsetenv("MPROC_BACKEND");
  CHECK_ERR(r, MPROC_EINVAL);
  char buf[512] = {0};
  CHECK_INT_CMP(read(fds[0], buf, sizeof buf - 1), >, 0);
  close(fds[0]);
  CHECK(strstr(buf, "mproc: MPROC_BACKEND=\"bogus\" is not a backend") != NULL);
}
