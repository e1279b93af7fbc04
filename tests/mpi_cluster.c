/* mpi_cluster.c: the MPI backend's tests (ctest label mpi, tests/mpi.cmake).
 *
 * Not an mtest file: under mpirun every rank runs this main, mproc_init() keeps ranks other than 0 as agents,
 * and rank 0 runs the tests one after the other in this process (a forked test process would be a fork of
 * an MPI process, which MPI does not allow).  Without a launcher it checks the other side: the MPI backend
 * is refused with a clear message, and the local backend works.  Each check that fails prints its line and
 * ends the run with status 1 (under mpirun: the whole job fails).  What processes are left after the job is
 * checked by the ctest command (tests/mpi.cmake). */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <mproc.h>

static const char *current = "start";
#ifdef MPI_CLUSTER_OTHER
#define VARIANT "another" /* a build of this file for the ranks of the mismatch test: other bytes */
#else
#define VARIANT "the main"
#endif

#define CHECK(c)                                                                                      \
  do {                                                                                                \
    if (!(c)) {                                                                                       \
      fprintf(stderr, "mpi_cluster: %s: %s:%d: CHECK(%s) failed\n", current, __FILE__, __LINE__, #c); \
      exit(1);                                                                                        \
    }                                                                                                 \
  } while (0)
#define CHECK_EQ(a, b)                                                                                   \
  do {                                                                                                   \
    long long a_ = (long long)(a), b_ = (long long)(b);                                                  \
    if (a_ != b_) {                                                                                      \
      fprintf(stderr, "mpi_cluster: %s: %s:%d: %s == %s failed: %lld != %lld (%s)\n", current, __FILE__, \
              __LINE__, #a, #b, a_, b_, a_ < 0 ? mproc_strerror((int)a_) : "");                          \
      exit(1);                                                                                           \
    }                                                                                                    \
  } while (0)

/* ---- tasks (they run on the agents' workers) ---- */

static int rank_here(void) {
  const char *r = getenv("OMPI_COMM_WORLD_RANK");
  if (!r) r = getenv("PMIX_RANK");
  if (!r) r = getenv("PMI_RANK");
  return r ? atoi(r) : -1;
}

static int square(const void *arg, size_t len, mproc_task *t) {
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* A record: the item's index squared, and the rank that computed it. */
typedef struct rec {
  int64_t sq;
  int32_t rank, pad;
} rec;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Below -99: a slow item (10 ms). */
static int square_where(const void *arg, size_t len, mproc_task *t) {
  int64_t n = *(const int64_t *)arg;
  if (n < -99) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  rec r = {n * n, rank_here(), 0};
  return mproc_task_return(t, &r, sizeof r);
}

/* -1: SIGSEGV, -2: abort, -3: exit(42), -4: hangs; otherwise returns its argument */
static int misbehave(const void *arg, size_t len, mproc_task *t) {
  int64_t n = *(const int64_t *)arg;
  if (n == -1) raise(SIGSEGV);
  if (n == -2) abort();
  if (n == -3) _exit(42);
  if (n == -4)
    for (;;) pause();
  return mproc_task_return(t, &n, sizeof n);
}

static int fails(const void *arg, size_t len, mproc_task *t) { return mproc_task_fail(t, -EDOM, "no %d", 7); }

/* An item of any size: its bytes repeated (its first byte - '0') times, any size back. */
static int repeat(const void *arg, size_t len, mproc_task *t) {
  const char *s = arg;
  int k = len ? s[0] - '0' : 0;
  char *out = malloc(len * (size_t)k + 1);
  if (!out) return -ENOMEM;
  for (int i = 0; i < k; i++) memcpy(out + (size_t)i * len, s, len);
  int r = mproc_task_return(t, out, len * (size_t)k);
  free(out);
  return r;
}

/* A large payload: every byte plus one, the same size back. */
static int plus_one(const void *arg, size_t len, mproc_task *t) {
  unsigned char *out = malloc(len ? len : 1);
  if (!out) return -ENOMEM;
  for (size_t i = 0; i < len; i++) out[i] = (unsigned char)(((const unsigned char *)arg)[i] + 1);
  int r = mproc_task_return(t, out, len);
  free(out);
  return r;
}

/* The parent of process pid (0 when unknown). */
static pid_t parent_of(pid_t pid) {
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int ppid = 0;
  const char *close = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
  if (!close || sscanf(close + 2, "%*c %d", &ppid) != 1) ppid = 0;
  fclose(f);
  return ppid;
}

/* Item 37 sends a signal to the agent rank running it (worker -> template -> fork server -> the rank); every
 * item takes 10 ms, so the map is still running when it happens.  (Workers are copies of their agent, not of
 * the master: what they are told is in their argument and function.) */
static int hurt_agent(int64_t n, int sig, mproc_task *t) {
  if (n == 37) {
    pid_t rank = parent_of(parent_of(getppid()));
    if (rank > 1) kill(rank, sig);
  }
  nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  return mproc_task_return(t, &n, sizeof n);
}
static int kill_agent(const void *arg, size_t len, mproc_task *t) {
  return hurt_agent(*(const int64_t *)arg, SIGKILL, t);
}
static int stop_agent(const void *arg, size_t len, mproc_task *t) {
  return hurt_agent(*(const int64_t *)arg, SIGSTOP, t);
}

/* ---- the tests ---- */

static mproc_pool *mpi_pool(int workers, double task_timeout) {
  mproc_pool *p = NULL;
  CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.workers = workers,
                                                    .backend = MPROC_BACKEND_MPI,
                                                    .task_timeout = task_timeout}),
           0);
  return p;
}

static void futures_round_trip(void) {
  mproc_pool *p = mpi_pool(4, 0);
  CHECK_EQ(mproc_pool_workers(p), 4);
  mproc_future *f[20];
  for (int i = 0; i < 20; i++) CHECK_EQ(mproc_pool_submit(p, square, &i, sizeof i, NULL, &f[i]), 0);
  for (int i = 0; i < 20; i++) {
    const void *data;
    size_t len;
    CHECK_EQ(mproc_future_result(f[i], 30, &data, &len), 0);
    CHECK_EQ(len, sizeof(int));
    CHECK_EQ(*(const int *)data, i * i);
    mproc_future_release(f[i]);
  }
  /* a task's failure and its message travel back */
  mproc_future *g;
  CHECK_EQ(mproc_pool_submit(p, fails, NULL, 0, NULL, &g), 0);
  CHECK_EQ(mproc_future_result(g, 30, NULL, NULL), -EDOM);
  mproc_outcome o;
  CHECK_EQ(mproc_future_outcome(g, &o), 0);
  CHECK(strcmp(o.message, "no 7") == 0);
  mproc_future_release(g);
  mproc_pool_destroy(p);
}

static void map_across_ranks(int ranks) {
  mproc_pool *p = mpi_pool(2 * (ranks - 1), 0);
  enum { N = 10000 };
  static int64_t in[N];
  static rec out[N];
  for (int i = 0; i < N; i++) in[i] = i;
  memset(out, 0, sizeof out);
  mproc_map_report rep;
  CHECK_EQ(mproc_pool_map(p, square_where, in, N, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 50}, &rep),
           0);
  CHECK_EQ(rep.ok, N);
  for (int i = 0; i < N; i++) {
    CHECK_EQ(out[i].sq, (int64_t)i * i);
    CHECK(out[i].rank >= 1 && out[i].rank < ranks);
  }
  /* every agent takes part: small maps of slow items until each rank has run one (whether the first map
   * reaches all depends on how fast the agents' workers start; within 30 s they have) */
  int seen[64] = {0}, missing = ranks - 1;
  double deadline = now() + 30;
  while (missing > 0 && now() < deadline) {
    int64_t slow[16];
    rec where[16];
    for (int i = 0; i < 16; i++) slow[i] = -100 - i;
    CHECK_EQ(mproc_pool_map(p, square_where, slow, 16, sizeof *slow, where, sizeof *where,
                            &(mproc_map_opts){.chunk_size = 1}, NULL),
             0);
    for (int i = 0; i < 16; i++)
      if (where[i].rank >= 1 && where[i].rank < ranks && where[i].rank < 64 && seen[where[i].rank]++ == 0)
        missing--;
  }
  CHECK_EQ(missing, 0);
  /* the automatic chunk size too, and a second map on the same pool */
  CHECK_EQ(mproc_pool_map(p, square_where, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
  for (int i = 0; i < N; i++) CHECK_EQ(out[i].sq, (int64_t)i * i);
  mproc_pool_destroy(p);
}

/* A task that crashes, aborts or exits on a remote rank fails alone, with its signal or exit code; the pool
 * is used again. */
static void remote_faults_fail_alone(void) {
  mproc_pool *p = mpi_pool(2, 0);
  struct {
    int64_t arg;
    int sig, exit_code;
  } cases[] = {{-1, SIGSEGV, -1}, {-2, SIGABRT, -1}, {-3, 0, 42}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    mproc_future *f;
    CHECK_EQ(mproc_pool_submit(p, misbehave, &cases[c].arg, sizeof cases[c].arg, NULL, &f), 0);
    CHECK_EQ(mproc_future_result(f, 30, NULL, NULL), MPROC_ECRASHED);
    mproc_outcome o;
    CHECK_EQ(mproc_future_outcome(f, &o), 0);
    CHECK_EQ(o.kind, MPROC_OUTCOME_CRASHED);
    CHECK_EQ(o.signal, cases[c].sig);
    if (cases[c].exit_code >= 0) CHECK_EQ(o.exit_code, cases[c].exit_code);
    mproc_future_release(f);
    int n = 9, r = 0;
    CHECK_EQ(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL), 0);
    CHECK_EQ(r, 81);
  }
  /* in a map that goes on after a failure: the item that crashes fails, every other item has its result */
  enum { N = 400 };
  static int64_t in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i == 123 ? -1 : i;
  mproc_map_report rep;
  CHECK_EQ(mproc_pool_map(p, misbehave, in, N, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 20, .on_error = MPROC_ON_ERROR_CONTINUE}, &rep),
           MPROC_ECRASHED);
  CHECK_EQ(rep.failed, 1);
  CHECK_EQ(rep.ok, N - 1);
  CHECK_EQ(rep.first_failed_index, 123);
  CHECK_EQ(rep.first_failure.signal, SIGSEGV);
  for (int i = 0; i < N; i++)
    if (i != 123) CHECK_EQ(out[i], i);
  for (int i = 0; i < N; i++) in[i] = i;
  CHECK_EQ(mproc_pool_map(p, misbehave, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
  for (int i = 0; i < N; i++) CHECK_EQ(out[i], i);
  mproc_pool_destroy(p);
}

/* A task that hangs on a remote rank past its timeout is killed there: MPROC_ETASKTIMEOUT. */
static void remote_timeout(void) {
  mproc_pool *p = mpi_pool(2, 0);
  int64_t hang = -4;
  mproc_future *f;
  CHECK_EQ(mproc_pool_submit(p, misbehave, &hang, sizeof hang, &(mproc_submit_opts){.timeout = 0.5}, &f), 0);
  CHECK_EQ(mproc_future_result(f, 30, NULL, NULL), MPROC_ETASKTIMEOUT);
  mproc_future_release(f);
  int n = 5, r = 0;
  CHECK_EQ(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL), 0);
  CHECK_EQ(r, 25);
  mproc_pool_destroy(p);
}

/* Set by the pool's initializer in each worker, from its argument. */
static int init_value;
static int init_worker(const void *arg, size_t len, mproc_task *t) {
  init_value = *(const int *)arg;
  return 0;
}
static int report_init_and_pid(const void *arg, size_t len, mproc_task *t) {
  int v[2] = {init_value, (int)getpid()};
  return mproc_task_return(t, v, sizeof v);
}

/* What the engine does for any backend works on remote workers: the initializer (a function sent as
 * (object, offset), with its argument), max_tasks_per_child (a fresh worker per task), retries of a crash. */
static void engine_features_remote(void) {
  int seven = 7;
  mproc_pool *p = NULL;
  CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2,
                                                    .backend = MPROC_BACKEND_MPI,
                                                    .initializer = init_worker,
                                                    .init_arg = &seven,
                                                    .init_arg_len = sizeof seven,
                                                    .max_tasks_per_child = 1}),
           0);
  int pids[8];
  for (int i = 0; i < 8; i++) {
    int v[2] = {0, 0};
    CHECK_EQ(mproc_pool_apply(p, report_init_and_pid, NULL, 0, v, sizeof v, NULL), 0);
    CHECK_EQ(v[0], 7);
    pids[i] = v[1];
    for (int k = 0; k < i; k++) CHECK(pids[k] != pids[i]); /* one task per worker */
  }
  /* a crash retried once: two attempts, then the crash */
  int64_t crash = -1;
  mproc_future *f;
  CHECK_EQ(mproc_pool_submit(p, misbehave, &crash, sizeof crash, &(mproc_submit_opts){.max_retries = 1}, &f),
           0);
  CHECK_EQ(mproc_future_result(f, 30, NULL, NULL), MPROC_ECRASHED);
  mproc_outcome o;
  CHECK_EQ(mproc_future_outcome(f, &o), 0);
  CHECK_EQ(o.attempts, 2);
  CHECK_EQ(o.signal, SIGSEGV);
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

/* joblib's Parallel on remote workers: its probe and measured batches, results in order. */
static void parallel_remote(void) {
  mproc_parallel *par = NULL;
  CHECK_EQ(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 4, .backend = MPROC_BACKEND_MPI}), 0);
  enum { N = 5000 };
  static int64_t in[N];
  static rec out[N];
  for (int i = 0; i < N; i++) in[i] = i;
  mproc_map_report rep;
  CHECK_EQ(mproc_parallel_run(par, square_where, in, N, sizeof *in, out, sizeof *out, NULL, &rep), 0);
  CHECK_EQ(rep.ok, N);
  for (int i = 0; i < N; i++) CHECK_EQ(out[i].sq, (int64_t)i * i);
  mproc_parallel_destroy(par);
}

/* Items of any size both ways, and an ordered stream (imap) of fixed records. */
static void items_and_streams(void) {
  mproc_pool *p = mpi_pool(4, 0);
  enum { N = 3000 };
  static char buf[N][16];
  static const char *words[N];
  for (int i = 0; i < N; i++) {
    snprintf(buf[i], sizeof buf[i], "%d-item-%d", i % 10, i);
    words[i] = buf[i];
  }
  mproc_items in = mproc_items_strings(words, N);
  mproc_results *res = NULL;
  CHECK_EQ(mproc_pool_map_items(p, repeat, &in, NULL, &res, NULL), 0);
  CHECK_EQ(mproc_results_count(res), N);
  for (int i = 0; i < N; i++) {
    const void *data;
    size_t len, one = strlen(words[i]) + 1;
    CHECK_EQ(mproc_results_get(res, (size_t)i, &data, &len), 0);
    CHECK_EQ(len, one * (size_t)(i % 10));
    for (int k = 0; k < i % 10; k++) CHECK(memcmp((const char *)data + (size_t)k * one, words[i], one) == 0);
  }
  mproc_results_free(res);
  static int64_t nums[N];
  for (int i = 0; i < N; i++) nums[i] = i;
  mproc_stream *st;
  CHECK_EQ(mproc_pool_imap(p, square_where, nums, N, sizeof *nums, sizeof(rec), NULL, &st), 0);
  for (int i = 0; i < N; i++) {
    int64_t index = -1;
    const void *r;
    CHECK_EQ(mproc_stream_next(st, 30, &index, &r, NULL), 0);
    CHECK_EQ(index, i);
    rec got;
    memcpy(&got, r, sizeof got);
    CHECK_EQ(got.sq, (int64_t)i * i);
  }
  int64_t end_index;
  const void *end_result;
  CHECK_EQ(mproc_stream_next(st, 30, &end_index, &end_result, NULL), MPROC_EEOF);
  mproc_stream_destroy(st);
  mproc_pool_destroy(p);
}

/* Payloads of 1 MiB and 64 MiB, each way: far larger than a ring (they stream through it on both ranks).
 * Between them, results whose record (a 64-byte header, then the bytes) is one byte short of an agent's
 * ring (4 MiB), exactly one, one byte more, and two and a byte: whole, or in ring-sized pieces and a last
 * small one. */
static void large_payloads(void) {
  mproc_pool *p = mpi_pool(2, 0);
  const size_t ring = (size_t)4 << 20, hdr = 64;
  size_t sizes[] = {(size_t)1 << 20, ring - hdr - 1,     ring - hdr,
                    ring - hdr + 1,  2 * ring - hdr + 1, (size_t)64 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    unsigned char *in = malloc(n);
    CHECK(in != NULL);
    for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 7 + k);
    mproc_future *f;
    CHECK_EQ(mproc_pool_submit(p, plus_one, in, n, NULL, &f), 0);
    const void *data;
    size_t len;
    CHECK_EQ(mproc_future_result(f, 120, &data, &len), 0);
    CHECK_EQ(len, n);
    const unsigned char *out = data;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += out[i] != (unsigned char)(in[i] + 1);
    CHECK_EQ(bad, 0);
    mproc_future_release(f);
    free(in);
  }
  mproc_pool_destroy(p);
}

/* Whether process pid belongs to this MPI job: its environment has our PMIX_NAMESPACE (what Open MPI and
 * PMIx launchers set; every process of a rank inherits it). */
static bool in_this_job(const char *pid) {
  const char *ns = getenv("PMIX_NAMESPACE");
  if (!ns) return true; /* another launcher: the name alone */
  char path[300], want[128];
  static char env[65536];
  snprintf(path, sizeof path, "/proc/%s/environ", pid);
  snprintf(want, sizeof want, "PMIX_NAMESPACE=%s", ns);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(env, 1, sizeof env - 1, f);
  fclose(f);
  for (size_t at = 0; at < n; at += strlen(env + at) + 1) {
    env[n] = '\0';
    if (strcmp(env + at, want) == 0) return true;
  }
  return false;
}

/* CPU time (seconds) of this job's processes on this machine: every process named as this one with its
 * namespace (the ranks, their fork servers, templates and workers). */
static double job_cpu(int *found) {
  char self[64] = "";
  FILE *c = fopen("/proc/self/comm", "r");
  if (c && fgets(self, sizeof self, c)) self[strcspn(self, "\n")] = '\0';
  if (c) fclose(c);
  double total = 0;
  *found = 0;
  long hz = sysconf(_SC_CLK_TCK);
  DIR *d = opendir("/proc");
  CHECK(d != NULL);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
    char path[300], line[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!ok || !open || !close || (size_t)(close - open - 1) != strlen(self) ||
        strncmp(open + 1, self, strlen(self)) != 0 || !in_this_job(de->d_name))
      continue;
    unsigned long ut, st;
    if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) continue;
    total += (double)(ut + st) / (double)hz;
    (*found)++;
  }
  closedir(d);
  return total;
}

/* With a pool open and nothing to do, no rank burns the CPU: the job's processes together use under 10% of
 * a core per rank over 2 s (issue 18 measured about 2% per rank for this idle policy). */
static void idle_ranks_cost_little(int ranks) {
  mproc_pool *p = mpi_pool(2 * (ranks - 1), 0);
  int n = 2, r = 0;
  CHECK_EQ(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL), 0);
  int found0, found1;
  double before = job_cpu(&found0);
  nanosleep(&(struct timespec){2, 0}, NULL);
  double after = job_cpu(&found1);
  CHECK(found0 >= ranks && found1 >= ranks);
  double per_rank = (after - before) / 2.0 / ranks;
  printf("# idle: %d ranks (%d processes) used %.3f s of CPU in 2 s: %.1f%% of a core per rank\n", ranks,
         found1, after - before, 100 * per_rank);
  CHECK(per_rank < 0.10);
  mproc_pool_destroy(p);
}

/* Without a launcher: the MPI backend is refused with a message that says why; the local one works. */
static void without_launcher(void) {
  current = "without_launcher";
  CHECK_EQ(mproc_backend_available("mpi"), 0);
  CHECK(strstr(mproc_last_error_message(), "MPI") != NULL);
  CHECK_EQ(mproc_backend_available("process"), 1);
  mproc_pool *p = NULL;
  CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.backend = MPROC_BACKEND_MPI}), MPROC_ENOBACKEND);
  CHECK(p == NULL);
  setenv("MPROC_BACKEND", "mpi", 1);
  CHECK_EQ(mproc_pool_create(&p, NULL), MPROC_ENOBACKEND);
  CHECK(strstr(mproc_last_error_message(), "MPROC_BACKEND=\"mpi\"") != NULL);
  fprintf(stderr, "mpi_cluster: as expected: %s\n", mproc_last_error_message());
  unsetenv("MPROC_BACKEND");
  p = NULL;
  CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}), 0);
  int n = 6, r = 0;
  CHECK_EQ(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL), 0);
  CHECK_EQ(r, 36);
  mproc_pool_destroy(p);
}

int main(int argc, char **argv) {
  int r = mproc_init(&argc, &argv); /* ranks other than 0 serve from here, and never return */
  if (argc > 2 && strcmp(argv[2], "mismatch") == 0) {
    /* the other ranks run another build of this program (tests/mpi.cmake): refused at mproc_init() */
    current = "mismatch";
    printf("mpi_cluster: %s build\n", VARIANT);
    CHECK_EQ(r, MPROC_ENOBACKEND);
    CHECK_EQ(mproc_backend_available("mpi"), 0);
    CHECK(strstr(mproc_last_error_message(), "other than rank 0's") != NULL);
    return 0;
  }
  CHECK_EQ(r, 0);
  int ranks = argc > 1 ? atoi(argv[1]) : 0;
  if (ranks == 0) {
    without_launcher();
    printf("mpi_cluster: without a launcher: ok\n");
    return 0;
  }
  CHECK_EQ(mproc_backend_available("mpi"), 1);
  if (argc > 2) {
    /* `kill`: an agent rank is SIGKILLed mid-map; `stop`: one is SIGSTOPped.  Either way the job must end
     * (non-zero, within its bound) and leave no process: the map never returns. */
    current = argv[2];
    mproc_pool *p = mpi_pool(2 * (ranks - 1), 0);
    enum { N = 2000 };
    static int64_t in[N], out[N];
    for (int i = 0; i < N; i++) in[i] = i;
    int mr = mproc_pool_map(p, strcmp(argv[2], "kill") == 0 ? kill_agent : stop_agent, in, N, sizeof *in, out,
                            sizeof *out, &(mproc_map_opts){.chunk_size = 1}, NULL);
    fprintf(stderr, "mpi_cluster: %s: the map returned %d: the job survived a %s rank\n", current, mr,
            argv[2]);
    mproc_pool_destroy(p);
    return 0;
  }
  static const struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {
      {"futures_round_trip", futures_round_trip}, {"remote_faults_fail_alone", remote_faults_fail_alone},
      {"remote_timeout", remote_timeout},         {"engine_features_remote", engine_features_remote},
      {"parallel_remote", parallel_remote},       {"items_and_streams", items_and_streams},
      {"large_payloads", large_payloads}};
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
    current = tests[i].name;
    double t0 = now();
    tests[i].fn();
    printf("ok %s (%.2f s)\n", current, now() - t0);
  }
  current = "map_across_ranks";
  map_across_ranks(ranks);
  printf("ok %s\n", current);
  current = "idle_ranks_cost_little";
  idle_ranks_cost_little(ranks);
  printf("ok %s\n", current);
  /* the backend chosen by the environment, as users do */
  current = "backend_from_environment";
  setenv("MPROC_BACKEND", "mpi", 1);
  mproc_pool *p = NULL;
  CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}), 0);
  int n = 3, sq = 0;
  CHECK_EQ(mproc_pool_apply(p, square, &n, sizeof n, &sq, sizeof sq, NULL), 0);
  CHECK_EQ(sq, 9);
  mproc_pool_destroy(p);
  unsetenv("MPROC_BACKEND");
  printf("ok %s\n", current);
  printf("mpi_cluster: %d ranks: ok\n", ranks);
  return 0;
}
