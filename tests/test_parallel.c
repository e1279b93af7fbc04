/* test_parallel.c: joblib's Parallel face: n_jobs, results, automatic batching, progress, seeds, errors,
 * timeouts, the reusable pool, every backend. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "engine/engine.h"

static int square(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int64_t n = *(const int64_t *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static int index_square(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t n = mproc_task_index(t), sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* Burns about `ms` milliseconds of CPU (a calibrated busy loop is what a compute-bound task is). */
static void burn(double ms) {
  double until = mproc__plat_now() + ms * 1e-3;
  volatile uint64_t x = 0;
  while (mproc__plat_now() < until)
    for (int i = 0; i < 1000; i++) x += (uint64_t)i;
}

static int slow_item(const void *arg, size_t len, mproc_task *t) {
  burn(3);
  return index_square(arg, len, t);
}

static int fail_on_13(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_index(t) % 13 == 12)
    return mproc_task_fail(t, MPROC_ERANGE, "item %lld", (long long)mproc_task_index(t));
  return index_square(arg, len, t);
}

static int seeded(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  uint64_t s = mproc_task_seed(t);
  return mproc_task_return(t, &s, sizeof s);
}

static int my_pid(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t pid = getpid();
  return mproc_task_return(t, &pid, sizeof pid);
}

static int hang_on_5(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_index(t) == 5)
    for (;;) pause();
  return index_square(arg, len, t);
}

MTEST(n_jobs_semantics) {
  int cpus = mproc_cpu_count();
  struct {
    int n_jobs, want;
  } cases[] = {{1, 1}, {3, 3}, {-1, cpus}, {-2, cpus > 1 ? cpus - 1 : 1}, {-1000, 1}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mproc_parallel *par;
    CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = cases[i].n_jobs}));
    CHECK_INT_EQ(mproc_parallel_n_jobs(par), cases[i].want);
    mproc_parallel_destroy(par);
  }
  setenv("MPROC_WORKERS", "3", 1);
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, NULL));
  CHECK_INT_EQ(mproc_parallel_n_jobs(par), 3);
  mproc_parallel_destroy(par);
  unsetenv("MPROC_WORKERS");
  CHECK_ERR(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 5000}), MPROC_EINVAL);
}

static void results(mproc_backend b) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .backend = b}));
  enum { N = 100000 };
  static int64_t in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i - 777;
  mproc_map_report rep;
  CHECK_OK(mproc_parallel_run(par, square, in, N, sizeof *in, out, sizeof *out, NULL, &rep));
  for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], in[i] * in[i]);
  CHECK_INT_EQ(rep.ok, N);
  /* generators, ordered and unordered: each item once */
  for (int order = MPROC_RETURN_GENERATOR; order <= MPROC_RETURN_GENERATOR_UNORDERED; order++) {
    mproc_stream *s;
    CHECK_OK(mproc_parallel_stream(par, index_square, NULL, 3000, 0, sizeof(int64_t), order, &s));
    static unsigned char seen[3000];
    memset(seen, 0, sizeof seen);
    int64_t idx;
    const void *res;
    for (int k = 0; k < 3000; k++) {
      CHECK_OK(mproc_stream_next(s, MPROC_FOREVER, &idx, &res, NULL));
      if (order == MPROC_RETURN_GENERATOR) CHECK_INT_EQ(idx, k);
      CHECK_INT_EQ(seen[idx], 0);
      seen[idx] = 1;
      CHECK_INT_EQ(*(const int64_t *)res, idx * idx);
    }
    CHECK_ERR(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
    mproc_stream_destroy(s);
  }
  mproc_stream *s;
  CHECK_ERR(mproc_parallel_stream(par, index_square, NULL, 1, 0, 8, MPROC_RETURN_LIST, &s), MPROC_EINVAL);
  mproc_parallel_destroy(par);
}
MTEST(results_process) { results(MPROC_BACKEND_PROCESS); }
MTEST(results_thread) { results(MPROC_BACKEND_THREAD); }
MTEST(results_serial) { results(MPROC_BACKEND_SERIAL); }

/* 200,000 very short tasks on a new Parallel of 2: batches grow far beyond one item (fewer than N / 50
 * batches).  Leaves the Parallel and its output array for more checks. */
enum { TINY_N = 200000 };
static int64_t tiny_out[TINY_N];
static mproc_parallel *tiny_map_in_few_batches(mproc_task_fn fn) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2}));
  mproc_map_report rep;
  CHECK_OK(mproc_parallel_run(par, fn, NULL, TINY_N, 0, tiny_out, sizeof *tiny_out, NULL, &rep));
  for (int i = 0; i < TINY_N; i++) CHECK_INT_EQ(tiny_out[i], (int64_t)i * i);
  CHECK_INT_EQ(rep.ok, TINY_N);
  CHECK_INT_CMP(rep.batches, <, TINY_N / 50);
  return par;
}

MTEST(auto_batching_converges) {
  mproc_parallel *par = tiny_map_in_few_batches(index_square);
  int64_t *out = tiny_out;
  mproc_map_report rep;
  /* tasks longer than the target batch duration: one item per batch, so the load stays balanced */
  CHECK_OK(mproc_parallel_run(par, slow_item, NULL, 20, 0, out, sizeof *out, NULL, &rep));
  for (int i = 0; i < 20; i++) CHECK_INT_EQ(out[i], (int64_t)i * i);
  CHECK_INT_EQ(rep.batches, 20);
  /* a fixed batch size is kept */
  mproc_parallel_destroy(par);
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .batch_size = 100}));
  CHECK_OK(mproc_parallel_run(par, index_square, NULL, 1000, 0, out, sizeof *out, NULL, &rep));
  CHECK_INT_EQ(rep.batches, 10);
  mproc_parallel_destroy(par);
}

/* A tiny task whose first call in each worker process is slow, as a cold worker's first item is (its page
 * faults, its caches; under some hypervisors tens of microseconds) */
static int cold_first_item(const void *arg, size_t len, mproc_task *t) {
  static bool warm;
  if (!warm) burn(2);
  warm = true;
  return index_square(arg, len, t);
}

MTEST(auto_batching_sees_past_a_cold_first_item) {
  /* sized from the probe alone (each worker's first item, 2 ms) the batches would hold one or two items */
  mproc_parallel_destroy(tiny_map_in_few_batches(cold_first_item));
}

static uint32_t progress_calls;
static mproc_progress last_progress;
static double last_busy_sum;
static void on_progress(const mproc_progress *p, void *user) {
  CHECK(user == &progress_calls);
  progress_calls++;
  last_progress = *p;
  last_busy_sum = 0;
  for (int i = 0; i < p->workers; i++) last_busy_sum += p->busy[i];
}

MTEST(progress_lines_and_callback) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2,
                                                              .verbose = 1,
                                                              .progress = on_progress,
                                                              .progress_user = &progress_calls,
                                                              .progress_interval = 0.005,
                                                              .on_error = MPROC_ON_ERROR_CONTINUE}));
  /* capture stderr (a file: not a terminal, so lines rather than a bar) */
  char path[] = "/tmp/mproc-progress-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  int saved = dup(2);
  CHECK(dup2(fd, 2) == 2);
  int64_t out[60];
  int codes[60];
  int r = mproc_parallel_run(par, fail_on_13, NULL, 60, 0, out, sizeof *out, codes, NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  CHECK_ERR(r, MPROC_ERANGE);
  char text[8192] = "";
  ssize_t got = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  unlink(path);
  CHECK(got > 0);
  text[got] = '\0';
  /* every line is joblib's shape; the last says finished */
  char *last = NULL;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    CHECK(strncmp(line, "[Parallel(n_jobs=2)]: Done ", 27) == 0);
    CHECK(strstr(line, " out of 60 | elapsed: ") != NULL);
    last = line;
  }
  CHECK(last != NULL);
  CHECK(strstr(last, "Done 60 out of 60 | elapsed: ") != NULL);
  CHECK(strstr(last, " finished: 56 ok, 4 failed, 0 cancelled") != NULL);
  /* the callback's last call is the end of the run */
  CHECK_INT_CMP(progress_calls, >=, 1);
  CHECK_INT_EQ(last_progress.total, 60);
  CHECK_INT_EQ(last_progress.done, 60);
  CHECK_INT_EQ(last_progress.failed, 4); /* 12, 25, 38, 51 */
  CHECK_INT_EQ(last_progress.in_flight, 0);
  CHECK_INT_EQ(last_progress.workers, 2);
  CHECK(last_progress.rate > 0);
  CHECK(last_busy_sum >= 0);
  for (int i = 0; i < 60; i++) CHECK_INT_EQ(codes[i], i % 13 == 12 ? MPROC_ERANGE : 0);
  mproc_parallel_destroy(par);
}

/* ---- the last progress line says how the run ended ---- */

/* Runs par over n items of fn with stderr sent to a file (or to a terminal: a pseudo-terminal), and
 * returns what was written, its last line in *last ("" if none). */
static char captured[1 << 16];
static int run_captured(mproc_parallel *par, mproc_task_fn fn, size_t n, mproc_map_report *rep, bool tty,
                        char **last) {
  int fd, reader;
  if (tty) {
    reader = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(reader >= 0);
    CHECK_INT_EQ(grantpt(reader), 0);
    CHECK_INT_EQ(unlockpt(reader), 0);
    fd = open(ptsname(reader), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(fd >= 0);
  } else {
    char path[] = "/tmp/mproc-progress-XXXXXX";
    fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    reader = fd;
  }
  int saved = dup(2);
  CHECK(dup2(fd, 2) == 2);
  static int64_t out[1024];
  CHECK(n <= 1024);
  int r = mproc_parallel_run(par, fn, NULL, n, 0, out, sizeof *out, NULL, rep);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  ssize_t got = 0;
  if (tty) {
    /* everything written is in the master's buffer (the progress interval keeps it short): read it without
     * waiting once it is empty */
    int fl = fcntl(reader, F_GETFL);
    fcntl(reader, F_SETFL, fl | O_NONBLOCK);
    ssize_t k;
    while (got < (ssize_t)sizeof captured - 1 &&
           (k = read(reader, captured + got, sizeof captured - 1 - (size_t)got)) > 0)
      got += k;
    close(fd);
    close(reader);
  } else {
    got = pread(fd, captured, sizeof captured - 1, 0);
    close(fd);
  }
  CHECK(got >= 0);
  captured[got] = '\0';
  /* the last line: after the last \r or \n that is not at the very end */
  size_t len = (size_t)got;
  while (len > 0 && (captured[len - 1] == '\n' || captured[len - 1] == '\r')) captured[--len] = '\0';
  char *l = captured + len;
  while (l > captured && l[-1] != '\n' && l[-1] != '\r') l--;
  *last = l;
  return r;
}

/* Checks that a "<how>: A ok, B failed, C cancelled" tail agrees with the report. */
static void check_counts(const char *last, const char *how, const mproc_map_report *rep) {
  const char *t = strstr(last, how);
  CHECK(t != NULL);
  size_t ok, failed, cancelled;
  char fmt[128];
  snprintf(fmt, sizeof fmt, "%s: %%zu ok, %%zu failed, %%zu cancelled", how);
  CHECK_INT_EQ(sscanf(t, fmt, &ok, &failed, &cancelled), 3);
  CHECK_INT_EQ(ok, rep->ok);
  CHECK_INT_EQ(failed, rep->failed);
  CHECK_INT_EQ(cancelled, rep->cancelled);
}

static int fail_at_12(const void *arg, size_t len, mproc_task *t) {
  if (mproc_task_index(t) >= 12 && mproc_task_index(t) % 13 == 12) {
    burn(1);
    return mproc_task_fail(t, MPROC_ERANGE, "item %lld", (long long)mproc_task_index(t));
  }
  return slow_item(arg, len, t);
}

MTEST(progress_last_line_after_success_and_failures) {
  mproc_parallel *par;
  mproc_map_report rep;
  char *last;
  /* every item succeeded: joblib's line */
  CHECK_OK(
      mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .verbose = 1, .progress_interval = 5}));
  CHECK_OK(run_captured(par, index_square, 40, &rep, false, &last));
  CHECK(strncmp(last, "[Parallel(n_jobs=2)]: Done 40 out of 40 | elapsed: ", 51) == 0);
  CHECK(strcmp(last + strlen(last) - 9, " finished") == 0);
  mproc_parallel_destroy(par);
  /* one failure, on_error CONTINUE: everything ran, one failed */
  CHECK_OK(mproc_parallel_create(
      &par, &(mproc_parallel_opts){
                .n_jobs = 2, .verbose = 1, .progress_interval = 5, .on_error = MPROC_ON_ERROR_CONTINUE}));
  CHECK_ERR(run_captured(par, fail_at_12, 20, &rep, false, &last), MPROC_ERANGE);
  CHECK(strstr(last, "Done 20 out of 20 | elapsed: ") != NULL);
  check_counts(last, " finished", &rep);
  CHECK_INT_EQ(rep.failed, 1);
  mproc_parallel_destroy(par);
  /* stop at the first failure (the default): the rest was cancelled, not done */
  CHECK_OK(mproc_parallel_create(
      &par, &(mproc_parallel_opts){.n_jobs = 2, .verbose = 1, .progress_interval = 5, .batch_size = 1}));
  CHECK_ERR(run_captured(par, fail_at_12, 400, &rep, false, &last), MPROC_ERANGE);
  CHECK_INT_CMP(rep.cancelled, >, 0);
  char want[64];
  snprintf(want, sizeof want, "Done %zu out of 400 | elapsed: ", rep.ok + rep.failed);
  CHECK(strstr(last, want) != NULL);
  check_counts(last, " stopped after 1 failure", &rep);
  mproc_parallel_destroy(par);
  /* stop after two */
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2,
                                                              .verbose = 1,
                                                              .progress_interval = 5,
                                                              .batch_size = 1,
                                                              .on_error = MPROC_ON_ERROR_STOP_AFTER,
                                                              .max_failures = 2}));
  CHECK_ERR(run_captured(par, fail_at_12, 400, &rep, false, &last), MPROC_ERANGE);
  CHECK_INT_CMP(rep.failed, >=, 2);
  CHECK_INT_CMP(rep.cancelled, >, 0);
  check_counts(last, " stopped after 2 failures", &rep);
  mproc_parallel_destroy(par);
}

/* On a terminal the bar ends where the work did: 100% only when every item ran. */
MTEST(progress_bar_on_a_terminal) {
  mproc_parallel *par;
  mproc_map_report rep;
  char *last;
  CHECK_OK(mproc_parallel_create(
      &par, &(mproc_parallel_opts){.n_jobs = 2, .verbose = 1, .progress_interval = 5, .batch_size = 1}));
  CHECK_OK(run_captured(par, index_square, 40, &rep, true, &last));
  CHECK(strncmp(last, "[##############################] 100% 40/40 ", 44) == 0);
  CHECK(strcmp(last + strlen(last) - 9, " finished") == 0);
  CHECK_ERR(run_captured(par, fail_at_12, 400, &rep, true, &last), MPROC_ERANGE);
  CHECK(last[0] == '[');
  CHECK(strstr(last, "100%") == NULL);
  char want[64];
  snprintf(want, sizeof want, "%% %zu/400 ", rep.ok + rep.failed);
  CHECK(strstr(last, want) != NULL);
  check_counts(last, " stopped after 1 failure", &rep);
  mproc_parallel_destroy(par);
}

/* Ctrl-C: the last line says so, with the counts; a thread sends SIGINT every 10 ms until the run
 * returns (mproc's handler stays installed meanwhile, so an early one is counted, not fatal). */
static uint32_t sig_stop;
static void *sigint_until_stopped(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&sig_stop, __ATOMIC_SEQ_CST)) {
    kill(getpid(), SIGINT);
    mproc__plat_futex_wait(&sig_stop, 0, 0.01);
  }
  return NULL;
}
static int ten_ms(const void *arg, size_t len, mproc_task *t) {
  nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  return index_square(arg, len, t);
}

MTEST(progress_last_line_after_ctrl_c) {
  mproc_parallel *par;
  mproc_map_report rep;
  char *last;
  CHECK_OK(mproc_parallel_create(
      &par, &(mproc_parallel_opts){.n_jobs = 2, .verbose = 1, .progress_interval = 5, .batch_size = 1}));
  mproc__sigint_begin();
  sig_stop = 0;
  pthread_t th;
  CHECK_INT_EQ(pthread_create(&th, NULL, sigint_until_stopped, NULL), 0);
  int r = run_captured(par, ten_ms, 400, &rep, false, &last);
  __atomic_store_n(&sig_stop, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&sig_stop, INT32_MAX);
  CHECK_INT_EQ(pthread_join(th, NULL), 0);
  mproc__sigint_end();
  CHECK_ERR(r, MPROC_EINTERRUPTED);
  CHECK_INT_CMP(rep.cancelled, >, 0);
  char want[64];
  snprintf(want, sizeof want, "Done %zu out of 400 | elapsed: ", rep.ok + rep.failed);
  CHECK(strstr(last, want) != NULL);
  check_counts(last, " interrupted", &rep);
  mproc_parallel_destroy(par);
}

/* MPROC_VERBOSE drives the progress output as it drives the cache's; an explicit option wins. */
MTEST(progress_from_mproc_verbose) {
  mproc_parallel *par;
  mproc_map_report rep;
  char *last;
  setenv("MPROC_VERBOSE", "1", 1);
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .progress_interval = 5}));
  CHECK_OK(run_captured(par, index_square, 40, &rep, false, &last));
  CHECK(strncmp(last, "[Parallel(n_jobs=2)]: Done 40 out of 40 | elapsed: ", 51) == 0);
  mproc_parallel_destroy(par);
  /* explicitly silent */
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .verbose = -1}));
  CHECK_OK(run_captured(par, index_square, 40, &rep, false, &last));
  CHECK_STR_EQ(captured, "");
  mproc_parallel_destroy(par);
  /* 10 and more: lines even on a terminal */
  setenv("MPROC_VERBOSE", "10", 1);
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .progress_interval = 5}));
  CHECK_OK(run_captured(par, index_square, 40, &rep, true, &last));
  CHECK(strncmp(last, "[Parallel(n_jobs=2)]: Done 40 out of 40 | elapsed: ", 51) == 0);
  mproc_parallel_destroy(par);
  /* unset, or 0: silent */
  setenv("MPROC_VERBOSE", "0", 1);
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2}));
  CHECK_OK(run_captured(par, index_square, 40, &rep, false, &last));
  CHECK_STR_EQ(captured, "");
  unsetenv("MPROC_VERBOSE");
  CHECK_OK(run_captured(par, index_square, 40, &rep, false, &last));
  CHECK_STR_EQ(captured, "");
  mproc_parallel_destroy(par);
}

MTEST(seeds_do_not_depend_on_scheduling) {
  enum { N = 500 };
  static uint64_t a[N], b[N], c[N];
  mproc_parallel *p1, *p2;
  CHECK_OK(mproc_parallel_create(&p1, &(mproc_parallel_opts){.n_jobs = 1, .batch_size = 1, .seed = 42}));
  CHECK_OK(mproc_parallel_create(&p2, &(mproc_parallel_opts){.n_jobs = 2, .batch_size = 7, .seed = 42}));
  CHECK_OK(mproc_parallel_run(p1, seeded, NULL, N, 0, a, sizeof *a, NULL, NULL));
  CHECK_OK(mproc_parallel_run(p2, seeded, NULL, N, 0, b, sizeof *b, NULL, NULL));
  for (int i = 0; i < N; i++) CHECK(a[i] == b[i]);
  for (int i = 1; i < N; i++) CHECK(a[i] != a[i - 1]);
  mproc_parallel_destroy(p2);
  CHECK_OK(mproc_parallel_create(&p2, &(mproc_parallel_opts){.n_jobs = 2, .seed = 43}));
  CHECK_OK(mproc_parallel_run(p2, seeded, NULL, N, 0, c, sizeof *c, NULL, NULL));
  int same = 0;
  for (int i = 0; i < N; i++) same += a[i] == c[i];
  CHECK_INT_EQ(same, 0);
  mproc_parallel_destroy(p1);
  mproc_parallel_destroy(p2);
}

MTEST(errors_and_timeouts) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .batch_size = 1}));
  int64_t out[40];
  int codes[40];
  mproc_map_report rep;
  /* by default the first failure cancels the rest */
  CHECK_ERR(mproc_parallel_run(par, fail_on_13, NULL, 40, 0, out, sizeof *out, codes, &rep), MPROC_ERANGE);
  CHECK_INT_EQ(rep.first_failed_index, 12);
  CHECK_STR_EQ(rep.message, "item 12");
  CHECK_INT_EQ(rep.ok + rep.failed + rep.cancelled, 40);
  for (int i = 0; i < 12; i++) CHECK_INT_EQ(codes[i], 0);
  mproc_parallel_destroy(par);
  /* a per-item timeout, running the rest */
  CHECK_OK(mproc_parallel_create(
      &par, &(mproc_parallel_opts){.n_jobs = 2, .timeout = 0.2, .on_error = MPROC_ON_ERROR_CONTINUE}));
  CHECK_ERR(mproc_parallel_run(par, hang_on_5, NULL, 40, 0, out, sizeof *out, codes, &rep),
            MPROC_ETASKTIMEOUT);
  CHECK_INT_EQ(rep.failed, 1);
  CHECK_INT_EQ(rep.first_failure.kind, MPROC_OUTCOME_TIMEDOUT);
  for (int i = 0; i < 40; i++) {
    CHECK_INT_EQ(codes[i], i == 5 ? MPROC_ETASKTIMEOUT : 0);
    if (i != 5) CHECK_INT_EQ(out[i], (int64_t)i * i);
  }
  mproc_parallel_destroy(par);
}

/* my_pid once both workers have shown up (a shared pair of pids): otherwise one worker may do a whole call
 * while the other starts, and "the second call ran on the first call's workers" would not follow */
static int64_t *g_seen;

static int my_pid_both_there(const void *arg, size_t len, mproc_task *t) {
  int64_t pid = getpid(), none = 0;
  if (!__atomic_compare_exchange_n(&g_seen[0], &none, pid, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
      none != pid) {
    none = 0;
    __atomic_compare_exchange_n(&g_seen[1], &none, pid, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  }
  double deadline = mproc__plat_now() + 10;
  while (__atomic_load_n(&g_seen[1], __ATOMIC_SEQ_CST) == 0)
    if (mproc__plat_now() > deadline)
      return mproc_task_fail(t, MPROC_ETIMEDOUT, "the other worker never came");
    else
      sched_yield();
  return my_pid(arg, len, t);
}

/* Reuse is kept where it cannot give stale results: here the fork server's workers, which see the program
 * as at mproc_init() whatever pool they belong to. */
MTEST(one_call_form_reuses_its_pool) {
  int64_t pids1[64], pids2[64], pids3[64];
  int err = 0;
  g_seen = mproc__plat_shm_map_anon(4096, &err); /* before the server, so its workers have it */
  CHECK(g_seen != NULL);
  CHECK_OK(mproc_init(NULL, NULL));
  mproc_parallel_opts o = {.n_jobs = 2, .batch_size = 1};
  CHECK_OK(mproc_parallel_call(my_pid_both_there, NULL, 64, 0, pids1, sizeof *pids1, &o, NULL));
  g_seen[0] = g_seen[1] = 0;
  CHECK_OK(mproc_parallel_call(my_pid_both_there, NULL, 64, 0, pids2, sizeof *pids2, &o, NULL));
  /* the second call ran on the same workers */
  for (int i = 0; i < 64; i++) {
    int found = 0;
    for (int k = 0; k < 64 && !found; k++) found = pids2[i] == pids1[k];
    CHECK(found);
  }
  /* after a shutdown (or other settings) the workers are new */
  mproc_parallel_shutdown();
  CHECK_OK(mproc_parallel_call(my_pid, NULL, 64, 0, pids3, sizeof *pids3, &o, NULL));
  for (int i = 0; i < 64; i++)
    for (int k = 0; k < 64; k++) CHECK(pids3[i] != pids1[k]);
  mproc_parallel_shutdown();
  mproc_parallel_shutdown(); /* twice is harmless */
  CHECK_OK(mproc__plat_shm_unmap(g_seen, 4096));
  mproc_shutdown();
}

/* ---- the one-call form never computes on stale memory ---- */

static int64_t g_factor;
static int index_times_factor(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t v[2] = {mproc_task_index(t) * g_factor, getpid()};
  return mproc_task_return(t, v, sizeof v);
}

/* With forked workers (the default without mproc_init()), each call computes on the caller's memory as it
 * is at that call: a global changed between two calls is seen by the second. */
MTEST(one_call_form_sees_memory_changed_between_calls) {
  int64_t out1[40][2], out2[40][2];
  mproc_parallel_opts o = {.n_jobs = 2};
  g_factor = 3;
  CHECK_OK(mproc_parallel_call(index_times_factor, NULL, 40, 0, out1, sizeof *out1, &o, NULL));
  g_factor = 5;
  CHECK_OK(mproc_parallel_call(index_times_factor, NULL, 40, 0, out2, sizeof *out2, &o, NULL));
  for (int i = 0; i < 40; i++) {
    CHECK_INT_EQ(out1[i][0], 3 * i);
    CHECK_INT_EQ(out2[i][0], 5 * i);
  }
  for (int i = 0; i < 40; i++)
    for (int k = 0; k < 40; k++) CHECK(out2[i][1] != out1[k][1]); /* new workers */
  mproc_parallel_shutdown();
}

/* After mproc_shutdown() the fork server's kept pool is not reused: a new pool is forked from the caller
 * as it is then. */
MTEST(one_call_form_after_mproc_shutdown) {
  int64_t out1[40][2], out2[40][2];
  mproc_parallel_opts o = {.n_jobs = 2};
  g_factor = 3;
  CHECK_OK(mproc_init(NULL, NULL));
  g_factor = 4; /* the server's workers see 3 */
  CHECK_OK(mproc_parallel_call(index_times_factor, NULL, 40, 0, out1, sizeof *out1, &o, NULL));
  for (int i = 0; i < 40; i++) CHECK_INT_EQ(out1[i][0], 3 * i);
  mproc_shutdown();
  g_factor = 5;
  CHECK_OK(mproc_parallel_call(index_times_factor, NULL, 40, 0, out2, sizeof *out2, &o, NULL));
  for (int i = 0; i < 40; i++) CHECK_INT_EQ(out2[i][0], 5 * i);
  mproc_parallel_shutdown();
}

/* The thread backend's workers see the live memory: its pool is kept, and still computes on new values. */
static uint32_t g_inits;
static _Thread_local int64_t t_init_value;
static int remember_init_arg(const void *arg, size_t len, mproc_task *t) {
  (void)t;
  CHECK_INT_EQ(len, sizeof(int64_t));
  memcpy(&t_init_value, arg, sizeof t_init_value);
  __atomic_fetch_add(&g_inits, 1, __ATOMIC_SEQ_CST);
  return 0;
}
static int init_value_and_factor(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t v[2] = {t_init_value, mproc_task_index(t) * g_factor};
  return mproc_task_return(t, v, sizeof v);
}

MTEST(one_call_form_init_arg_bytes_must_match) {
  int64_t out[40][2];
  int64_t arg = 11;
  mproc_parallel_opts o = {.n_jobs = 2,
                           .backend = MPROC_BACKEND_THREAD,
                           .initializer = remember_init_arg,
                           .init_arg = &arg,
                           .init_arg_len = sizeof arg};
  g_inits = 0;
  for (int call = 0; call < 3; call++) {
    g_factor = call + 1;
    CHECK_OK(mproc_parallel_call(init_value_and_factor, NULL, 40, 0, out, sizeof *out, &o, NULL));
    for (int i = 0; i < 40; i++) {
      CHECK_INT_EQ(out[i][0], 11);
      CHECK_INT_EQ(out[i][1], (call + 1) * i);
    }
  }
  /* the three calls ran on one pool: each worker ran the initializer once */
  CHECK_INT_CMP(__atomic_load_n(&g_inits, __ATOMIC_SEQ_CST), <=, 2);
  /* other bytes at the same address: a new pool, whose workers were given 22 */
  arg = 22;
  CHECK_OK(mproc_parallel_call(init_value_and_factor, NULL, 40, 0, out, sizeof *out, &o, NULL));
  for (int i = 0; i < 40; i++) CHECK_INT_EQ(out[i][0], 22);
  mproc_parallel_shutdown();
}

/* A one-call run inside a worker keeps no pool there: the worker leaves through _exit, and what it kept
 * (a forked template, threads) would be left behind.  The leak check after the test finds a template that
 * outlived its worker. */
static int threads_here(void) {
  char buf[64];
  snprintf(buf, sizeof buf, "/proc/%d/status", (int)getpid());
  FILE *f = fopen(buf, "r");
  if (!f) return -1;
  char line[256];
  int n = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  fclose(f);
  return n;
}

static int nested_call(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t sum = 0, out[8];
  for (int round = 0; round < 2; round++) {
    int r = mproc_parallel_call(index_square, NULL, 8, 0, out, sizeof *out,
                                &(mproc_parallel_opts){.n_jobs = 1}, NULL);
    if (r < 0) return mproc_task_fail(t, r, "fork call %d", round);
    for (int i = 0; i < 8; i++) sum += out[i];
  }
  int before = threads_here();
  int r = mproc_parallel_call(index_square, NULL, 8, 0, out, sizeof *out,
                              &(mproc_parallel_opts){.n_jobs = 2, .backend = MPROC_BACKEND_THREAD}, NULL);
  if (r < 0) return mproc_task_fail(t, r, "thread call");
  if (threads_here() != before) return mproc_task_fail(t, MPROC_EBUSY, "threads kept: %d", threads_here());
  for (int i = 0; i < 8; i++) sum += out[i];
  return mproc_task_return(t, &sum, sizeof sum);
}

MTEST(one_call_form_in_a_worker_keeps_no_pool) {
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2, .batch_size = 1}));
  int64_t out[4];
  int codes[4];
  CHECK_OK(mproc_parallel_run(par, nested_call, NULL, 4, 0, out, sizeof *out, codes, NULL));
  for (int i = 0; i < 4; i++) CHECK_INT_EQ(out[i], 3 * 140); /* 0 + 1 + 4 + ... + 49 */
  mproc_parallel_destroy(par);
}

/* In the thread backend a task calling the one-call form with its own pool's settings gets a pool of its
 * own: sharing the one whose workers are all busy with the callers would never finish. */
static int nested_same_settings(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int64_t sum = 0, out[8];
  int r = mproc_parallel_call(index_square, NULL, 8, 0, out, sizeof *out,
                              &(mproc_parallel_opts){.n_jobs = 2, .backend = MPROC_BACKEND_THREAD}, NULL);
  if (r < 0) return mproc_task_fail(t, r, "nested");
  for (int i = 0; i < 8; i++) sum += out[i];
  return mproc_task_return(t, &sum, sizeof sum);
}

MTEST(one_call_form_nested_in_its_own_threads) {
  int64_t out[4];
  CHECK_OK(mproc_parallel_call(
      nested_same_settings, NULL, 4, 0, out, sizeof *out,
      &(mproc_parallel_opts){.n_jobs = 2, .backend = MPROC_BACKEND_THREAD, .batch_size = 1}, NULL));
  for (int i = 0; i < 4; i++) CHECK_INT_EQ(out[i], 140);
  mproc_parallel_shutdown();
}

MTEST(bad_input) {
  mproc_parallel *par;
  CHECK_ERR(mproc_parallel_create(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_create(&par, &(mproc_parallel_opts){.timeout = -1}), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_create(&par, &(mproc_parallel_opts){.on_error = MPROC_ON_ERROR_STOP_AFTER}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_create(&par, &(mproc_parallel_opts){.init_arg_len = 2}), MPROC_EINVAL);
  /* bytes for no initializer: they would be ignored */
  const mproc_parallel_opts no_init = {.init_arg = "ab", .init_arg_len = 2};
  CHECK_ERR(mproc_parallel_create(&par, &no_init), MPROC_EINVAL);
  int64_t in1 = 1, out1 = 0;
  CHECK_ERR(mproc_parallel_call(square, &in1, 1, sizeof in1, &out1, sizeof out1, &no_init, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_n_jobs(NULL), MPROC_EINVAL);
  mproc_parallel_destroy(NULL);
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 1}));
  int64_t out[2];
  CHECK_ERR(mproc_parallel_run(NULL, square, NULL, 0, 0, out, 8, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, NULL, NULL, 0, 0, out, 8, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, square, NULL, 2, 8, out, 8, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, square, out, 2, 8, NULL, 8, NULL, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_parallel_run(par, square, NULL, 0, 8, NULL, 8, NULL, NULL));
  CHECK_ERR(mproc_parallel_call(square, NULL, 1, 0, out, 8, &(mproc_parallel_opts){.timeout = NAN}, NULL),
            MPROC_EINVAL);
  mproc_parallel_destroy(par);
}

/* ---- Parallel + the result cache: a rerun computes only what an interrupted run did not ---- */
#include <sys/mman.h>

static char cache_dir[64];
static mproc_cache *worker_cache;
static uint32_t *computations; /* shared with the workers */
static int cut_at;

static int expensive(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  __atomic_fetch_add(computations, 1, __ATOMIC_SEQ_CST);
  int64_t v = *(const int64_t *)arg * 3;
  return mproc_task_return(t, &v, sizeof v);
}

static int through_cache(const void *arg, size_t len, mproc_task *t) {
  if (*(const int64_t *)arg == cut_at) return mproc_task_fail(t, MPROC_EINTR, "cut short");
  mproc_cache_result *r;
  int rc = mproc_cache_call(worker_cache, expensive, arg, len, &r);
  if (rc == 0) rc = mproc_task_return(t, mproc_cache_result_data(r), mproc_cache_result_len(r));
  mproc_cache_result_release(r);
  return rc;
}

static int open_worker_cache(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  return mproc_cache_open(&worker_cache, cache_dir, NULL);
}

MTEST(rerun_computes_only_what_is_not_cached) {
  snprintf(cache_dir, sizeof cache_dir, "/tmp/mproc-resume-XXXXXX");
  CHECK(mkdtemp(cache_dir) != NULL);
  computations = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(computations != MAP_FAILED);
  enum { N = 60 };
  int64_t in[N], out[N];
  int codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  mproc_parallel_opts o = {.n_jobs = 2, .batch_size = 1, .initializer = open_worker_cache};
  /* the first run is cut short at item 37 */
  cut_at = 37;
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &o));
  mproc_map_report rep;
  CHECK_ERR(mproc_parallel_run(par, through_cache, in, N, sizeof *in, out, sizeof *out, codes, &rep),
            MPROC_EINTR);
  mproc_parallel_destroy(par);
  uint32_t first = *computations;
  CHECK_INT_EQ(first, rep.ok);
  CHECK_INT_CMP(first, <, N);
  /* the rerun computes exactly the others, and every answer is right */
  cut_at = -1;
  CHECK_OK(mproc_parallel_create(&par, &o));
  CHECK_OK(mproc_parallel_run(par, through_cache, in, N, sizeof *in, out, sizeof *out, codes, &rep));
  mproc_parallel_destroy(par);
  CHECK_INT_EQ(*computations - first, N - first);
  for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], i * 3);
  /* and a third run computes nothing */
  uint32_t second = *computations;
  CHECK_OK(mproc_parallel_create(&par, &o));
  CHECK_OK(mproc_parallel_run(par, through_cache, in, N, sizeof *in, out, sizeof *out, codes, NULL));
  mproc_parallel_destroy(par);
  CHECK_INT_EQ(*computations, second);
  munmap(computations, 4096);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
  CHECK_INT_EQ(system(cmd), 0);
}
