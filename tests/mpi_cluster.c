/* mpi_cluster.c: the MPI backend's tests (ctest label mpi, tests/mpi.cmake).
 *
 * Not an mtest file: under mpirun every rank runs this main, mproc_init() keeps ranks other than 0 as agents,
 * and rank 0 runs the tests one after the other in this process (a forked test process would be a fork of
 * an MPI process, which MPI does not allow).  Without a launcher it checks the other side: the MPI backend
 * is refused with a clear message, and the local backend works.  Each check that fails prints its line and
 * ends the run with status 1 (under mpirun: the whole job fails).  What processes are left after the job is
 * checked by the ctest command (tests/mpi.cmake). */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Reads part of an array in the master's shared arena (mproc_shared_alloc), through the pointer in its
 * argument: the sum of words [first, first+count), and the rank that read them. */
typedef struct span {
  const uint64_t *words;
  uint64_t first, count;
} span;
typedef struct span_sum {
  uint64_t sum;
  int32_t rank, pad;
} span_sum;

static int sum_span(const void *arg, size_t len, mproc_task *t) {
  span s;
  memcpy(&s, arg, sizeof s);
  span_sum r = {0, rank_here(), 0};
  for (uint64_t i = s.first; i < s.first + s.count; i++) r.sum += s.words[i] * (i | 1);
  return mproc_task_return(t, &r, sizeof r);
}

static uint64_t span_expect(const uint64_t *w, uint64_t first, uint64_t count) {
  uint64_t sum = 0;
  for (uint64_t i = first; i < first + count; i++) sum += w[i] * (i | 1);
  return sum;
}

/* ---- the result cache across ranks (tests/mpi_cache_resume.sh) ---- */

/* Each worker's: the cache (opened by the pool's initializer), its run's log of computations, the run. */
typedef struct cache_conf {
  char dir[200];
  /* 1: the run that is killed (item KILL_AT kills its agent rank), 2: the resume; 3: item STOP_AT stops its
   * agent rank, and each computation takes SLOW_ITEM seconds */
  int32_t run;
  int32_t pad;
} cache_conf;
static cache_conf cconf;
static mproc_cache *cache;
typedef struct cached {
  int64_t sq;
  int32_t hit, pad;
} cached;
enum { CACHE_ITEMS = 1000, KILL_AT = 200, STOP_AT = 5, SLOW_ITEM = 2 };

/* Appends item n's line to one of its run's logs (O_APPEND: whole lines, whichever rank writes). */
static int log_item(const char *what, int64_t n) {
  char path[300], line[64];
  snprintf(path, sizeof path, "%s/%s.%d", cconf.dir, what, (int)cconf.run);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (fd < 0) return -errno;
  /* the index, then for a human who reads a failed run's logs: the rank and the time */
  int k = snprintf(line, sizeof line, "%lld %d %.3f\n", (long long)n, rank_here(), now());
  ssize_t w = write(fd, line, (size_t)k);
  close(fd);
  return w == k ? 0 : -EIO;
}

static int open_cache(const void *arg, size_t len, mproc_task *t) {
  memcpy(&cconf, arg, sizeof cconf);
  char path[300];
  snprintf(path, sizeof path, "%s/cache", cconf.dir);
  return mproc_cache_open(&cache, path, NULL);
}

/* The cached computation (10 ms; SLOW_ITEM s in run 3, which logs its start): each one appends its item's
 * index to its run's log of computations, then returns the square. */
static int compute_item(const void *arg, size_t len, mproc_task *t) {
  int64_t n = *(const int64_t *)arg, sq = n * n;
  int rc = cconf.run == 3 ? log_item("started", n) : 0;
  if (rc) return rc;
  if (cconf.run == 3)
    nanosleep(&(struct timespec){SLOW_ITEM, 0}, NULL);
  else
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  rc = log_item("computed", n);
  return rc ? rc : mproc_task_return(t, &sq, sizeof sq);
}

/* What the pool runs: the cache first.  In the first run, item KILL_AT SIGKILLs its agent rank once its
 * result is stored: mpirun ends the job half way. */
static int cached_item(const void *arg, size_t len, mproc_task *t) {
  if (cconf.run == 3 && *(const int64_t *)arg == STOP_AT) {
    pid_t rank = parent_of(parent_of(getppid()));
    (void)log_item("stopped", 0); /* which rank: the line says */
    if (rank > 1) kill(rank, SIGSTOP);
  }
  mproc_cache_result *r;
  int rc = mproc_cache_call(cache, compute_item, arg, len, &r);
  if (rc == 0 && cconf.run == 1 && *(const int64_t *)arg == KILL_AT) {
    pid_t rank = parent_of(parent_of(getppid()));
    if (rank > 1) kill(rank, SIGKILL);
  }
  cached out = {0, mproc_cache_result_hit(r), 0};
  if (rc == 0) memcpy(&out.sq, mproc_cache_result_data(r), sizeof out.sq);
  mproc_cache_result_release(r);
  return rc ? rc : mproc_task_return(t, &out, sizeof out);
}

/* How many times each item is in one of a run's logs, leaving out the lines of rank skip (-1: none); the
 * rank of its last line, -1 if none. */
static int read_log(const char *dir, const char *what, int run, int *count, int skip) {
  char path[300], line[64];
  snprintf(path, sizeof path, "%s/%s.%d", dir, what, run);
  memset(count, 0, CACHE_ITEMS * sizeof *count);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int rank = -1;
  while (fgets(line, sizeof line, f)) {
    char *end;
    long n = strtol(line, &end, 10);
    rank = (int)strtol(end, NULL, 10);
    CHECK(n >= 0 && n < CACHE_ITEMS);
    if (rank != skip) count[n]++;
  }
  fclose(f);
  return rank;
}

/* run 1: a map over CACHE_ITEMS items through the cache in dir, killed half way (an agent rank SIGKILLed).
 * run 2: the same map again: it must compute exactly the items that no rank stored in run 1, and return
 * every result right. */
static void cache_run(int ranks, const char *dir, int run) {
  cache_conf conf = {.run = run};
  snprintf(conf.dir, sizeof conf.dir, "%s", dir);
  static bool had[CACHE_ITEMS];
  static int count1[CACHE_ITEMS], count2[CACHE_ITEMS];
  int stored = 0;
  if (run == 2) {
    /* what run 1 left: valid entries (the master sees the cache as the workers do: same program) */
    char path[300];
    snprintf(path, sizeof path, "%s/cache", dir);
    mproc_cache *c;
    CHECK_EQ(mproc_cache_open(&c, path, NULL), 0);
    for (int64_t i = 0; i < CACHE_ITEMS; i++) {
      int r = mproc_cache_contains(c, compute_item, &i, sizeof i);
      CHECK(r == 0 || r == 1);
      had[i] = r == 1;
      stored += r == 1;
    }
    mproc_cache_close(c);
  }
  mproc_pool *p = NULL;
  CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2 * (ranks - 1),
                                                    .backend = MPROC_BACKEND_MPI,
                                                    .initializer = open_cache,
                                                    .init_arg = &conf,
                                                    .init_arg_len = sizeof conf}),
           0);
  static int64_t in[CACHE_ITEMS];
  static cached out[CACHE_ITEMS];
  for (int i = 0; i < CACHE_ITEMS; i++) in[i] = i;
  if (run == 3) {
    /* tasks, not a map: a map runs only so far past the items a silent rank holds, and the other ranks'
     * workers must be busy when the job ends */
    static mproc_future *f[CACHE_ITEMS];
    for (int i = 0; i < CACHE_ITEMS; i++)
      CHECK_EQ(mproc_pool_submit(p, cached_item, &in[i], sizeof *in, NULL, &f[i]), 0);
    for (int i = 0; i < CACHE_ITEMS; i++) (void)mproc_future_result(f[i], 120, NULL, NULL);
  }
  int mr = run == 3 ? 0
                    : mproc_pool_map(p, cached_item, in, CACHE_ITEMS, sizeof *in, out, sizeof *out,
                                     &(mproc_map_opts){.chunk_size = 1}, NULL);
  if (run != 2) {
    fprintf(stderr, "mpi_cluster: %s: the map returned %d: the job survived a lost rank\n", current, mr);
    exit(0);
  }
  CHECK_EQ(mr, 0);
  mproc_pool_destroy(p);
  read_log(dir, "computed", 1, count1, -1);
  read_log(dir, "computed", 2, count2, -1);
  int computed1 = 0, computed2 = 0;
  for (int i = 0; i < CACHE_ITEMS; i++) {
    CHECK_EQ(out[i].sq, (int64_t)i * i);
    CHECK_EQ(out[i].hit, had[i]); /* a hit exactly where run 1 stored the entry */
    CHECK(count1[i] <= 1);
    CHECK(!had[i] || count1[i] == 1);    /* an entry is there only if run 1 computed it */
    CHECK_EQ(count2[i], had[i] ? 0 : 1); /* computed again exactly when no rank finished it */
    computed1 += count1[i];
    computed2 += count2[i];
  }
  printf(
      "# cache resume: run 1 computed %d items and stored %d before it was killed; run 2 computed %d "
      "(%d in all, %d items)\n",
      computed1, stored, computed2, computed1 + computed2, CACHE_ITEMS);
  CHECK(stored >= KILL_AT / 2 && stored < CACHE_ITEMS); /* killed half way, not before, not after */
  CHECK_EQ(stored + computed2, CACHE_ITEMS);
}

/* Ctrl-C: item 37 sends SIGINT to the master (its pid in the item) and to its own agent rank, as srun does
 * to every task; with `mpirun`, it sends SIGINT to mpirun (the rank's parent), as the terminal does. */
typedef struct sigint_item {
  int64_t n, master;
} sigint_item;
static int interrupt_ranks(const void *arg, size_t len, mproc_task *t) {
  sigint_item it;
  memcpy(&it, arg, sizeof it);
  if (it.n == 37) {
    pid_t rank = parent_of(parent_of(getppid()));
    if (it.master > 0) {
      kill((pid_t)it.master, SIGINT);
      if (rank > 1) kill(rank, SIGINT);
    } else if (rank > 1 && parent_of(rank) > 1) {
      kill(parent_of(rank), SIGINT);
    }
  }
  if (it.n >= 0) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  return mproc_task_return(t, &it.n, sizeof it.n);
}

/* After run 3 (an agent rank SIGSTOPped; the job ended after its silence): every computation that started
 * on the other ranks finished and stored its entry before the job ended (they were let finish), and none
 * finished without its entry.  The stopped rank's are left out: its workers run on while it is stopped,
 * and the abort's SIGCONT may let it start one more job just before its SIGTERM. */
static void cache_stop_check(const char *dir) {
  static int started[CACHE_ITEMS], computed[CACHE_ITEMS], stopped[CACHE_ITEMS];
  int skip = read_log(dir, "stopped", 3, stopped, -1);
  CHECK(skip > 0);
  read_log(dir, "started", 3, started, skip);
  read_log(dir, "computed", 3, computed, skip);
  char path[300];
  snprintf(path, sizeof path, "%s/cache", dir);
  mproc_cache *c;
  CHECK_EQ(mproc_cache_open(&c, path, NULL), 0);
  int n_started = 0, n_stored = 0;
  for (int64_t i = 0; i < CACHE_ITEMS; i++) {
    int had = mproc_cache_contains(c, compute_item, &i, sizeof i);
    CHECK(had == 0 || had == 1);
    if (had && !started[i]) continue; /* the stopped rank's */
    n_started += started[i];
    n_stored += had;
    if (started[i] != had || computed[i] != had)
      fprintf(stderr, "mpi_cluster: item %lld: started %d times, computed %d, stored %d\n", (long long)i,
              started[i], computed[i], had);
  }
  mproc_cache_close(c);
  printf("# cache after a silent rank: %d computations started on the other ranks, %d stored\n", n_started,
         n_stored);
  CHECK(n_started >= 4); /* the other ranks ran tasks all along */
  CHECK_EQ(n_stored, n_started);
  for (int i = 0; i < CACHE_ITEMS; i++) CHECK_EQ(computed[i], started[i]);
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

/* no_queue_behind_a_long_item's items: item 0 waits until every other item but one has run (one may wait
 * behind it on its worker), 30 s at most; the others (200 us each) append a byte to the file.  The result
 * says where each ran (rank, and pid in pad) and, for item 0, whether it saw them run (sq 1) or gave up. */
typedef struct hold_in {
  int32_t n;
  char path[60];
} hold_in;

static int hold_first(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  hold_in in;
  memcpy(&in, arg, sizeof in);
  rec r = {0, rank_here(), (int32_t)getpid()};
  if (mproc_task_index(t) == 0) {
    /* another rank's items tell it only through the file: it looks every millisecond */
    double until = now() + 30;
    struct stat st;
    while (!(stat(in.path, &st) == 0 && st.st_size >= in.n - 2) && now() < until)
      nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
    r.sq = now() < until ? 1 : -1;
  } else {
    double until = now() + 200e-6;
    while (now() < until) {
    }
    int fd = open(in.path, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, "x", 1) != 1) _exit(3);
    close(fd);
  }
  return mproc_task_return(t, &r, sizeof r);
}

/* The workers' queues on MPI are as deep as the hops need for short jobs (docs/cluster.md, "Speed"), and jobs
 * sent to an agent cannot be taken back for an idle worker: a worker holds more of a map's jobs only as it
 * gives results of that map back.  After many tiny submitted tasks (the pool's average is tiny), a map of
 * short items whose item 0 does not end until all the others but one have run: the worker running item 0
 * holds at most one more item (before, deep queues of the short items waited behind item 0 while the other
 * worker idled, and item 0 waited for them: 30 s). */
static void no_queue_behind_a_long_item(void) {
  mproc_pool *p = mpi_pool(2, 0);
  enum { TASKS = 300, N = 60 };
  static mproc_future *fs[TASKS];
  for (int i = 0; i < TASKS; i++) CHECK_EQ(mproc_pool_submit(p, square, &i, sizeof i, NULL, &fs[i]), 0);
  for (int i = 0; i < TASKS; i++) {
    CHECK_EQ(mproc_future_result(fs[i], 30, NULL, NULL), 0);
    mproc_future_release(fs[i]);
  }
  char path[] = "/tmp/mpi_cluster-hold-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  static hold_in in[N];
  static rec out[N];
  for (int i = 0; i < N; i++) {
    in[i].n = N;
    snprintf(in[i].path, sizeof in[i].path, "%s", path);
  }
  CHECK_EQ(mproc_pool_map(p, hold_first, in, N, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 1}, NULL),
           0);
  unlink(path);
  int behind = 0;
  for (int i = 1; i < N; i++) behind += out[i].rank == out[0].rank && out[i].pad == out[0].pad;
  if (out[0].sq != 1 || behind > 1)
    fprintf(stderr, "mpi_cluster: item 0 %s; %d items ran after it on its worker\n",
            out[0].sq == 1 ? "saw the others run" : "gave up waiting", behind);
  CHECK_EQ(out[0].sq, 1);
  CHECK(behind <= 1);
  mproc_pool_destroy(p);
}

/* A task that sleeps for *in milliseconds and returns when it began and ended (CLOCK_MONOTONIC, one
 * machine's: the test's ranks all run here). */
static int timed_sleep(const void *in, size_t len, mproc_task *t) {
  (void)len;
  int ms = *(const int *)in;
  double when[2] = {now(), 0};
  nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
  when[1] = now();
  return mproc_task_return(t, when, sizeof when);
}

/* As many long tasks as workers, submitted the moment the pool is created, while the workers of some ranks
 * are still starting: each runs on a worker of its own, all at once.  Before, the workers alive first each
 * took two (the depth that covers a hop), and the second waited a whole task behind the first on its agent,
 * which cannot hand it back, while the workers that came up later idled. */
static void no_queue_while_workers_start(void) {
  enum { TASK_MS = 700 };
  int workers = 4;
  mproc_pool *p = mpi_pool(workers, 0);
  mproc_future *f[4];
  int ms = TASK_MS;
  for (int i = 0; i < workers; i++)
    CHECK_EQ(mproc_pool_submit(p, timed_sleep, &ms, sizeof ms, NULL, &f[i]), 0);
  double last_start = 0, first_end = 1e300;
  for (int i = 0; i < workers; i++) {
    const void *d;
    CHECK_EQ(mproc_future_result(f[i], 30, &d, NULL), 0);
    double when[2];
    memcpy(when, d, sizeof when);
    if (when[0] > last_start) last_start = when[0];
    if (when[1] < first_end) first_end = when[1];
    mproc_future_release(f[i]);
  }
  if (last_start >= first_end)
    fprintf(stderr, "mpi_cluster: a task began %.3f s after another ended\n", last_start - first_end);
  CHECK(last_start < first_end);
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

/* The bytes of the shared arena the master has sent to the agents (backend_mpi.c, for this test). */
uint64_t mproc__mpi_arena_sent(void);
uint64_t mproc__mpi_large_blocks(void);

/* A map of tasks that each read a part of words (n of them) in place, chunk size 1: every result checked,
 * every task run on an agent rank; returns how many arena bytes the call sent. */
static uint64_t map_spans(mproc_pool *p, const uint64_t *words, size_t n, int ranks) {
  enum { PARTS = 16 };
  span in[PARTS];
  span_sum out[PARTS];
  for (int k = 0; k < PARTS; k++) in[k] = (span){words, n / PARTS * (uint64_t)k, n / PARTS};
  uint64_t before = mproc__mpi_arena_sent();
  CHECK_EQ(mproc_pool_map(p, sum_span, in, PARTS, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 1}, NULL),
           0);
  for (int k = 0; k < PARTS; k++) {
    CHECK(out[k].sum == span_expect(words, in[k].first, in[k].count));
    CHECK(out[k].rank >= 1 && out[k].rank < ranks);
  }
  return mproc__mpi_arena_sent() - before;
}

/* The shared arena on the agents: a task on a remote rank reads an array the master filled, through a
 * pointer in its argument; the array goes to each agent once per call, not once per task, and only what
 * changed since it was last sent goes again. */
static void shared_arena_remote(int ranks) {
  uint64_t agents = (uint64_t)ranks - 1;
  mproc_pool *p = mpi_pool(2 * (ranks - 1), 0);
  /* 1 MiB, read by a map of 16 tasks: it travels once to each agent */
  size_t n = ((size_t)1 << 20) / sizeof(uint64_t);
  uint64_t *w = NULL;
  CHECK_EQ(mproc_shared_alloc((void **)&w, n * sizeof *w), 0);
  for (size_t i = 0; i < n; i++) w[i] = i * 2654435761u + 1;
  CHECK_EQ(map_spans(p, w, n, ranks), ((uint64_t)1 << 20) * agents);
  /* unchanged: nothing goes */
  CHECK_EQ(map_spans(p, w, n, ranks), 0);
  /* changed between two calls: the second sees the change, and only the changed part travels */
  w[7] = 12345;
  w[n - 1] = 777;
  uint64_t sent = map_spans(p, w, n, ranks);
  CHECK(sent > 0 && sent <= ((uint64_t)1 << 20) * agents);
  /* 64 MiB, read whole by futures: the first call sends it, the next ones (unchanged) nothing */
  size_t big_n = ((size_t)64 << 20) / sizeof(uint64_t);
  uint64_t *big = NULL;
  CHECK_EQ(mproc_shared_alloc((void **)&big, big_n * sizeof *big), 0);
  for (size_t i = 0; i < big_n; i++) big[i] = i ^ 0x5bd1e995u;
  uint64_t expect = span_expect(big, 0, big_n);
  uint64_t before = mproc__mpi_arena_sent();
  enum { TASKS = 6 };
  mproc_future *f[TASKS];
  for (int k = 0; k < TASKS; k++) {
    span s = {big, 0, big_n};
    CHECK_EQ(mproc_pool_submit(p, sum_span, &s, sizeof s, NULL, &f[k]), 0);
  }
  for (int k = 0; k < TASKS; k++) {
    const void *data;
    size_t len;
    CHECK_EQ(mproc_future_result(f[k], 120, &data, &len), 0);
    span_sum r;
    CHECK_EQ(len, sizeof r);
    memcpy(&r, data, sizeof r);
    CHECK(r.sum == expect);
    CHECK(r.rank >= 1 && r.rank < ranks);
    mproc_future_release(f[k]);
  }
  CHECK_EQ(mproc__mpi_arena_sent() - before, ((uint64_t)64 << 20) * agents);
  /* one word of the 64 MiB changed: a small part of it goes again, and the tasks see the change */
  big[big_n / 2] += 1;
  before = mproc__mpi_arena_sent();
  sent = map_spans(p, big, big_n, ranks);
  CHECK(sent > 0 && sent <= ((uint64_t)64 << 20) * agents / 16);
  /* a map whose input and output are in the arena: the input travels in batches, the results come back
   * into the master's memory */
  enum { N = 4096 };
  int64_t *in = NULL;
  rec *out = NULL;
  CHECK_EQ(mproc_shared_alloc((void **)&in, N * sizeof *in), 0);
  CHECK_EQ(mproc_shared_alloc((void **)&out, N * sizeof *out), 0);
  for (int i = 0; i < N; i++) in[i] = i;
  mproc_map_report rep;
  CHECK_EQ(mproc_pool_map(p, square_where, in, N, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 64}, &rep),
           0);
  CHECK_EQ(rep.ok, N);
  for (int i = 0; i < N; i++) {
    CHECK_EQ(out[i].sq, (int64_t)i * i);
    CHECK(out[i].rank >= 1 && out[i].rank < ranks);
  }
  /* a block freed and another made at its place: the new contents are seen */
  CHECK_EQ(mproc_shared_free(w), 0);
  CHECK_EQ(mproc_shared_alloc((void **)&w, n * sizeof *w), 0);
  for (size_t i = 0; i < n; i++) w[i] = i + 3;
  map_spans(p, w, n, ranks);
  mproc_pool_destroy(p);
  CHECK_EQ(mproc_shared_free(w), 0);
  CHECK_EQ(mproc_shared_free(big), 0);
  CHECK_EQ(mproc_shared_free(in), 0);
  CHECK_EQ(mproc_shared_free(out), 0);
}

/* Payloads of 1 MiB and 64 MiB, each way: far larger than a ring (they stream through it on both ranks).
 * Between them, results whose record (a 64-byte header, then the bytes) is one byte short of an agent's
 * ring (4 MiB), exactly one, one byte more, and two and a byte: whole, or in ring-sized pieces and a last
 * small one. */
/* plus_one over n bytes at in, on p: its result (n bytes, checked), valid until *f is released. */
static const unsigned char *plus_one_remote(mproc_pool *p, const unsigned char *in, size_t n,
                                            mproc_future **f) {
  CHECK_EQ(mproc_pool_submit(p, plus_one, in, n, NULL, f), 0);
  const void *data;
  size_t len;
  CHECK_EQ(mproc_future_result(*f, 120, &data, &len), 0);
  CHECK_EQ(len, n);
  return data;
}

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
    const unsigned char *out = plus_one_remote(p, in, n, &f);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += out[i] != (unsigned char)(in[i] + 1);
    CHECK_EQ(bad, 0);
    mproc_future_release(f);
    free(in);
  }
  /* the courier's message blocks are used again: eight more round trips of 16 MiB (a job message, results in
   * four pieces of 4 MiB: five large blocks each) make few new ones (40 when every message had its own) */
  size_t n = (size_t)16 << 20;
  unsigned char *in = calloc(1, n);
  CHECK(in != NULL);
  uint64_t before = mproc__mpi_large_blocks();
  for (int k = 0; k < 8; k++) {
    mproc_future *f;
    CHECK_EQ(plus_one_remote(p, in, n, &f)[n - 1], 1);
    mproc_future_release(f);
  }
  uint64_t made = mproc__mpi_large_blocks() - before;
  if (made > 8) CHECK_EQ(made, 8);
  free(in);
  /* and a 64 MiB result's sixteen pieces, received before the engine's ring takes them: with eight blocks
   * kept, half of them were new for every result (a quarter of a second of first touches per task here) */
  n = (size_t)64 << 20;
  in = calloc(1, n);
  CHECK(in != NULL);
  mproc_future *f;
  CHECK_EQ(plus_one_remote(p, in, n, &f)[n - 1], 1);
  mproc_future_release(f);
  before = mproc__mpi_large_blocks();
  for (int k = 0; k < 4; k++) {
    CHECK_EQ(plus_one_remote(p, in, n, &f)[n - 1], 1);
    mproc_future_release(f);
  }
  made = mproc__mpi_large_blocks() - before;
  if (made > 4) CHECK_EQ(made, 4);
  free(in);
  mproc_pool_destroy(p);
}

/* The rank process pid belongs to in this MPI job, or -1 when it is not of this job: its environment has
 * our PMIX_NAMESPACE (what Open MPI and PMIx launchers set) and the rank in PMIX_RANK or
 * OMPI_COMM_WORLD_RANK; every process of a rank (its fork server, templates and workers) inherits them. */
static int job_rank(const char *pid) {
  const char *ns = getenv("PMIX_NAMESPACE");
  char path[300], want[128];
  static char env[65536];
  snprintf(path, sizeof path, "/proc/%s/environ", pid);
  snprintf(want, sizeof want, "PMIX_NAMESPACE=%s", ns ? ns : "");
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(env, 1, sizeof env - 1, f);
  fclose(f);
  env[n] = '\0';
  bool ours = ns == NULL; /* another launcher: the name alone */
  int rank = -1;
  for (size_t at = 0; at < n; at += strlen(env + at) + 1) {
    const char *e = env + at;
    if (strcmp(e, want) == 0) ours = true;
    if (strncmp(e, "PMIX_RANK=", 10) == 0) rank = atoi(e + 10);
    if (rank < 0 && strncmp(e, "OMPI_COMM_WORLD_RANK=", 21) == 0) rank = atoi(e + 21);
  }
  return ours ? rank : -1;
}

/* CPU time (seconds) of this job's processes on this machine, per rank into cpu[0..ranks): every process
 * named as this one with its namespace (the ranks, their fork servers, templates and workers).  Returns
 * the fewest processes it found of one rank. */
static int job_cpu(double *cpu, int ranks) {
  int found[8] = {0};
  CHECK(ranks <= 8);
  char self[64] = "";
  FILE *c = fopen("/proc/self/comm", "r");
  if (c && fgets(self, sizeof self, c)) self[strcspn(self, "\n")] = '\0';
  if (c) fclose(c);
  for (int r = 0; r < ranks; r++) cpu[r] = 0;
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
        strncmp(open + 1, self, strlen(self)) != 0)
      continue;
    int rank = job_rank(de->d_name);
    if (rank < 0 || rank >= ranks) continue;
    unsigned long ut, st;
    if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) continue;
    cpu[rank] += (double)(ut + st) / (double)hz;
    found[rank]++;
  }
  closedir(d);
  int least = found[0];
  for (int r = 1; r < ranks; r++)
    if (found[r] < least) least = found[r];
  return least;
}

/* With a pool open and nothing to do, no rank burns the CPU: each rank's processes together use under 10%
 * of a core over 2 s (issue 18 measured about 2% per rank for this idle policy). */
static void idle_ranks_cost_little(int ranks) {
  mproc_pool *p = mpi_pool(2 * (ranks - 1), 0);
  int n = 2, r = 0;
  CHECK_EQ(mproc_pool_apply(p, square, &n, sizeof n, &r, sizeof r, NULL), 0);
  double before[8], after[8];
  CHECK(job_cpu(before, ranks) >= 1); /* every rank's processes are seen */
  nanosleep(&(struct timespec){2, 0}, NULL);
  CHECK(job_cpu(after, ranks) >= 1);
  for (int k = 0; k < ranks; k++) {
    double used = (after[k] - before[k]) / 2.0;
    printf("# idle: rank %d used %.3f s of CPU in 2 s: %.1f%% of a core\n", k, after[k] - before[k],
           100 * used);
    CHECK(used < 0.10);
  }
  mproc_pool_destroy(p);
}

int64_t mproc__mpi_rank_naps(int rank, double *at);

/* A task that sleeps for *in milliseconds and returns it. */
static int sleep_ms(const void *in, size_t len, mproc_task *t) {
  (void)len;
  int ms = *(const int *)in;
  nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
  return mproc_task_return(t, &ms, sizeof ms);
}

/* The next heartbeat of agent rank r that comes after `after`: its naps count and, in *at, when it came. */
static int64_t beat_after(int r, double after, double *at) {
  double deadline = now() + 3.0; /* heartbeats come every 0.5 s */
  for (;;) {
    int64_t n = mproc__mpi_rank_naps(r, at);
    CHECK(n >= 0);
    if (*at > after) return n;
    CHECK(now() < deadline);
    nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
  }
}

/* While every worker of an agent runs a long task, the agent naps long (FULL_NAP_MAX, 5 ms): nothing the
 * master sends could run sooner, and the results ring it.  With naps of at most 1 ms (as when a worker is
 * idle), agents woke about 1,000 times a second each, 1-1.7% of a core apiece beside the tasks. */
static void busy_agents_nap_long(int ranks) {
  enum { TASK_MS = 2500 };
  int workers = 2 * (ranks - 1);
  mproc_pool *p = mpi_pool(workers, 0);
  mproc_future *f[16];
  CHECK(workers <= 16);
  int ms = TASK_MS;
  double t0 = now();
  for (int i = 0; i < workers; i++) CHECK_EQ(mproc_pool_submit(p, sleep_ms, &ms, sizeof ms, NULL, &f[i]), 0);
  double a0[8], a1[8];
  int64_t n0[8], n1[8];
  CHECK(ranks <= 8);
  /* two heartbeats of every agent rank, 0.5 s apart */
  for (int r = 1; r < ranks; r++) n0[r] = beat_after(r, t0 + 0.2, &a0[r]); /* the jobs are there by then */
  for (int r = 1; r < ranks; r++) n1[r] = beat_after(r, a0[r], &a1[r]);
  for (int r = 1; r < ranks; r++) {
    CHECK(a1[r] < t0 + TASK_MS / 1000.0); /* both while the tasks ran */
    double rate = (double)(n1[r] - n0[r]) / (a1[r] - a0[r]);
    printf("# rank %d, every worker busy: %.0f naps a second\n", r, rate);
    CHECK(rate < 500);
  }
  for (int i = 0; i < workers; i++) {
    const void *d;
    CHECK_EQ(mproc_future_result(f[i], 30, &d, NULL), 0);
    CHECK_EQ(*(const int *)d, TASK_MS);
    mproc_future_release(f[i]);
  }
  mproc_pool_destroy(p);
}

/* ---- the process backend's semantic tests, on remote workers (modelled on tests/test_futures.c,
 * test_map.c, test_streams.c, test_parallel.c and test_pool_basics.c) ---- */

/* A gate for tasks on other ranks, from two FIFOs in a directory (the job's ranks share this machine): a
 * gated task writes one byte into `started`, then waits for one byte from `gate`.  The master holds both
 * open read-write, so neither open blocks; it opens the gate by writing a byte per task to let through. */
typedef struct gate_arg {
  int64_t n;
  char dir[112];
} gate_arg;

static struct {
  char dir[112];
  int started, gate;
} gate_here;

static void gate_make(void) {
  snprintf(gate_here.dir, sizeof gate_here.dir, "/tmp/mpi_cluster-gate-XXXXXX");
  CHECK(mkdtemp(gate_here.dir) != NULL);
  char path[160];
  snprintf(path, sizeof path, "%s/started", gate_here.dir);
  CHECK(mkfifo(path, 0600) == 0);
  gate_here.started = open(path, O_RDWR | O_CLOEXEC);
  snprintf(path, sizeof path, "%s/gate", gate_here.dir);
  CHECK(mkfifo(path, 0600) == 0);
  gate_here.gate = open(path, O_RDWR | O_CLOEXEC);
  CHECK(gate_here.started >= 0 && gate_here.gate >= 0);
}

static void gate_remove(void) {
  char path[160];
  close(gate_here.started);
  close(gate_here.gate);
  snprintf(path, sizeof path, "%s/started", gate_here.dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/gate", gate_here.dir);
  unlink(path);
  rmdir(gate_here.dir);
}

static gate_arg gated_arg(int64_t n) {
  gate_arg a = {n, ""};
  memcpy(a.dir, gate_here.dir, sizeof a.dir);
  return a;
}

/* Lets k gated tasks through. */
static void gate_open(int k) {
  for (int i = 0; i < k; i++) CHECK(write(gate_here.gate, "g", 1) == 1);
}

/* Waits (30 s at most) until k more gated tasks have started. */
static void await_started(int k) {
  for (int i = 0; i < k; i++) {
    struct pollfd pfd = {gate_here.started, POLLIN, 0};
    CHECK(poll(&pfd, 1, 30000) == 1);
    char c;
    CHECK(read(gate_here.started, &c, 1) == 1);
  }
}

/* Says it started, waits at the gate, returns its number squared. */
static int gated(const void *arg, size_t len, mproc_task *t) {
  const gate_arg *a = arg;
  char path[160];
  snprintf(path, sizeof path, "%s/started", a->dir);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "s", 1) != 1) return mproc_task_fail(t, -EIO, "cannot say it started");
  close(fd);
  snprintf(path, sizeof path, "%s/gate", a->dir);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  char c;
  if (fd < 0 || read(fd, &c, 1) != 1) return mproc_task_fail(t, -EIO, "no way through the gate");
  close(fd);
  int64_t sq = a->n * a->n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static int square64(const void *arg, size_t len, mproc_task *t) {
  int64_t n = *(const int64_t *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* Items whose number is a multiple of 7 fail with a message; the others return their number. */
static int fail_on_multiples_of_7(const void *arg, size_t len, mproc_task *t) {
  int64_t n = *(const int64_t *)arg;
  if (n % 7 == 0) return mproc_task_fail(t, MPROC_ERANGE, "%lld is a multiple of 7", (long long)n);
  return mproc_task_return(t, &n, sizeof n);
}

/* Callbacks: in the order they ran, counted under a lock (they run on the pool's manager thread). */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int count, order[8];
} cbs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};

static void on_done(mproc_future *f, void *user) {
  (void)f;
  pthread_mutex_lock(&cbs.lock);
  if (cbs.count < 8) cbs.order[cbs.count] = (int)(intptr_t)user;
  cbs.count++;
  pthread_cond_broadcast(&cbs.cond);
  pthread_mutex_unlock(&cbs.lock);
}

static void await_callbacks(int n) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&cbs.lock);
  while (cbs.count < n && pthread_cond_timedwait(&cbs.cond, &cbs.lock, &until) == 0) {
  }
  int got = cbs.count;
  pthread_mutex_unlock(&cbs.lock);
  CHECK_EQ(got, n);
}

/* test_futures.c's cancel_before_start_and_callbacks: one worker held at the gate; a task handed to it
 * counts as running, one waiting in the queue is cancelled; waits with timeouts time out; callbacks run
 * after completion in the order added; completion order is submission order on one worker. */
static void cancel_wait_callbacks(void) {
  gate_make();
  mproc_pool *p = mpi_pool(1, 0);
  gate_arg g = gated_arg(2);
  int64_t two = 2;
  mproc_future *running, *queued1, *queued2, *queued3;
  CHECK_EQ(mproc_pool_submit(p, gated, &g, sizeof g, NULL, &running), 0);
  await_started(1);
  CHECK_EQ(mproc_future_running(running), 1);
  CHECK_EQ(mproc_future_cancel(running), 0); /* running: cannot be cancelled */
  CHECK_EQ(mproc_pool_submit(p, square64, &two, sizeof two, NULL, &queued1), 0); /* handed out: running */
  CHECK_EQ(mproc_pool_submit(p, square64, &two, sizeof two, NULL, &queued2), 0); /* waits in the queue */
  CHECK_EQ(mproc_pool_submit(p, square64, &two, sizeof two, NULL, &queued3), 0);
  cbs.count = 0;
  CHECK_EQ(mproc_future_add_done_callback(queued3, on_done, (void *)3), 0);
  CHECK_EQ(mproc_future_add_done_callback(running, on_done, (void *)1), 0);
  CHECK_EQ(mproc_future_add_done_callback(running, on_done, (void *)2), 0);
  CHECK_EQ(mproc_future_cancel(queued2), 1);
  CHECK_EQ(mproc_future_cancel(queued2), 1); /* again: still cancelled */
  CHECK_EQ(mproc_future_cancelled(queued2), 1);
  CHECK_EQ(mproc_future_done(queued2), 1);
  CHECK_EQ(mproc_future_result(queued2, 0, NULL, NULL), MPROC_ECANCELED);
  mproc_outcome o;
  CHECK_EQ(mproc_future_outcome(queued2, &o), 0);
  CHECK_EQ(o.kind, MPROC_OUTCOME_CANCELLED);
  /* waits with a timeout: nothing else can finish while the gate is shut */
  mproc_future *all[] = {running, queued1, queued3};
  size_t ndone = 9;
  CHECK_EQ(mproc_futures_wait(all, 3, 0.05, MPROC_FIRST_COMPLETED, &ndone, NULL), MPROC_ETIMEDOUT);
  CHECK_EQ(ndone, 0);
  CHECK_EQ(mproc_future_wait(running, 0.02), MPROC_ETIMEDOUT);
  CHECK_EQ(mproc_future_result(running, 0, NULL, NULL), MPROC_ETIMEDOUT);
  mproc_as_completed *it;
  CHECK_EQ(mproc_as_completed_create(&it, all, 3), 0);
  mproc_future *f;
  CHECK_EQ(mproc_as_completed_next(it, 0.02, &f), MPROC_ETIMEDOUT);
  gate_open(1);
  CHECK_EQ(mproc_futures_wait(all, 3, 30, MPROC_FIRST_COMPLETED, &ndone, NULL), 0);
  CHECK(ndone >= 1);
  unsigned char flags[3];
  CHECK_EQ(mproc_futures_wait(all, 3, 30, MPROC_ALL_COMPLETED, &ndone, flags), 0);
  CHECK_EQ(ndone, 3);
  for (int k = 0; k < 3; k++) CHECK_EQ(flags[k], 1);
  for (int k = 0; k < 3; k++) { /* completion order is submission order on one worker */
    CHECK_EQ(mproc_as_completed_next(it, 30, &f), 0);
    CHECK(f == all[k]);
  }
  CHECK_EQ(mproc_as_completed_next(it, 0, &f), MPROC_EEOF);
  mproc_as_completed_destroy(it);
  const void *data;
  CHECK_EQ(mproc_future_result(running, 0, &data, NULL), 0);
  CHECK_EQ(*(const int64_t *)data, 4);
  CHECK_EQ(mproc_pool_join(p, 30), 0);
  await_callbacks(3);
  for (int k = 0; k < 3; k++) CHECK_EQ(cbs.order[k], k + 1);
  /* a callback added to a done future runs at once, in this thread */
  CHECK_EQ(mproc_future_add_done_callback(queued1, on_done, (void *)4), 0);
  CHECK_EQ(cbs.count, 4);
  mproc_future_release(running);
  mproc_future_release(queued1);
  mproc_future_release(queued2);
  mproc_future_release(queued3);
  mproc_pool_destroy(p);
  gate_remove();
}

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int ok, err;
  int64_t sum;
} async_seen = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void on_result(const void *data, size_t len, void *user) {
  (void)user;
  pthread_mutex_lock(&async_seen.lock);
  if (len == sizeof(int64_t)) async_seen.sum += *(const int64_t *)data;
  async_seen.ok++;
  pthread_cond_broadcast(&async_seen.cond);
  pthread_mutex_unlock(&async_seen.lock);
}

static void on_error(int code, const char *msg, void *user) {
  pthread_mutex_lock(&async_seen.lock);
  if (code == MPROC_ERANGE && strcmp(msg, "14 is a multiple of 7") == 0 && user == &async_seen)
    async_seen.err++;
  pthread_cond_broadcast(&async_seen.cond);
  pthread_mutex_unlock(&async_seen.lock);
}

/* Every future once in as_completed, wait's FIRST_EXCEPTION, apply_async's callbacks with the failure's
 * code and message. */
static void as_completed_and_wait_modes(void) {
  mproc_pool *p = mpi_pool(4, 0);
  enum { N = 300 };
  mproc_future *fs[N];
  for (int64_t i = 0; i < N; i++) CHECK_EQ(mproc_pool_submit(p, square64, &i, sizeof i, NULL, &fs[i]), 0);
  mproc_as_completed *it;
  CHECK_EQ(mproc_as_completed_create(&it, fs, N), 0);
  static int seen[N];
  memset(seen, 0, sizeof seen);
  for (int k = 0; k < N; k++) {
    mproc_future *f;
    CHECK_EQ(mproc_as_completed_next(it, 30, &f), 0);
    int i = 0;
    while (i < N && fs[i] != f) i++;
    CHECK(i < N);
    seen[i]++;
    const void *data;
    CHECK_EQ(mproc_future_result(f, 0, &data, NULL), 0);
    CHECK_EQ(*(const int64_t *)data, (int64_t)i * i);
  }
  mproc_future *f;
  CHECK_EQ(mproc_as_completed_next(it, 0, &f), MPROC_EEOF);
  for (int i = 0; i < N; i++) CHECK_EQ(seen[i], 1);
  mproc_as_completed_destroy(it);
  size_t ndone = 0;
  CHECK_EQ(mproc_futures_wait(fs, N, 30, MPROC_ALL_COMPLETED, &ndone, NULL), 0);
  CHECK_EQ(ndone, N);
  for (int i = 0; i < N; i++) mproc_future_release(fs[i]);
  /* FIRST_EXCEPTION: returns once the failure is in, whatever the other does */
  int64_t bad = 14, good = 3;
  mproc_future *two[2];
  CHECK_EQ(mproc_pool_submit(p, fail_on_multiples_of_7, &bad, sizeof bad, NULL, &two[0]), 0);
  CHECK_EQ(mproc_pool_submit(p, fail_on_multiples_of_7, &good, sizeof good, NULL, &two[1]), 0);
  CHECK_EQ(mproc_futures_wait(two, 2, 30, MPROC_FIRST_EXCEPTION, &ndone, NULL), 0);
  CHECK_EQ(mproc_future_done(two[0]), 1);
  CHECK_EQ(mproc_future_error(two[0], 0), MPROC_ERANGE);
  mproc_outcome o;
  CHECK_EQ(mproc_future_outcome(two[0], &o), 0);
  CHECK_EQ(o.kind, MPROC_OUTCOME_FAILED);
  CHECK(strcmp(o.message, "14 is a multiple of 7") == 0);
  mproc_future_release(two[0]);
  mproc_future_release(two[1]);
  /* apply_async: a callback per result, the error callback with the code and message */
  for (int64_t i = 1; i <= 10; i++)
    CHECK_EQ(mproc_pool_apply_async(p, fail_on_multiples_of_7, &i, sizeof i, on_result, on_error, NULL, NULL),
             0);
  CHECK_EQ(mproc_pool_apply_async(p, fail_on_multiples_of_7, &bad, sizeof bad, on_result, on_error,
                                  &async_seen, NULL),
           0);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 30;
  pthread_mutex_lock(&async_seen.lock);
  while ((async_seen.ok < 9 || async_seen.err < 1) &&
         pthread_cond_timedwait(&async_seen.cond, &async_seen.lock, &until) == 0) {
  }
  int ok = async_seen.ok, err = async_seen.err;
  int64_t sum = async_seen.sum;
  pthread_mutex_unlock(&async_seen.lock);
  CHECK_EQ(ok, 9); /* 7 failed, without the user pointer the error callback checks for */
  CHECK_EQ(err, 1);
  CHECK_EQ(sum, 55 - 7);
  mproc_pool_destroy(p);
}

/* test_map.c's map_errors and test_streams.c's streams: the three error policies with item codes and the
 * first failure's message; ordered streams with failures in their place; unordered ones with every item
 * once; a stream ended half way. */
static void error_policies_and_streams(void) {
  mproc_pool *p = mpi_pool(2, 0);
  enum { N = 400 };
  static int64_t in[N], out[N];
  static int codes[N];
  for (int i = 0; i < N; i++) in[i] = i + 1; /* 7, 14, ...: 57 items fail */
  mproc_map_report rep;
  CHECK_EQ(
      mproc_pool_map(
          p, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){.on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .chunk_size = 3}, &rep),
      MPROC_ERANGE);
  CHECK_EQ(rep.failed, N / 7);
  CHECK_EQ(rep.ok, N - N / 7);
  CHECK_EQ(rep.cancelled, 0);
  CHECK_EQ(rep.first_failed_index, 6);
  CHECK_EQ(rep.first_failure.kind, MPROC_OUTCOME_FAILED);
  CHECK(strcmp(rep.message, "7 is a multiple of 7") == 0);
  for (int i = 0; i < N; i++) {
    CHECK_EQ(codes[i], (i + 1) % 7 == 0 ? MPROC_ERANGE : 0);
    if (codes[i] == 0) CHECK_EQ(out[i], i + 1);
  }
  /* stop at the first failure: every item's fate is known and adds up */
  for (int i = 0; i < N; i++) codes[i] = 12345;
  CHECK_EQ(mproc_pool_map(p, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.item_codes = codes, .chunk_size = 1}, &rep),
           MPROC_ERANGE);
  CHECK_EQ(rep.ok + rep.failed + rep.cancelled, N);
  CHECK(rep.failed >= 1);
  CHECK(rep.cancelled > 0);
  CHECK_EQ(rep.first_failed_index, 6);
  for (int i = 0; i < N; i++) CHECK(codes[i] == 0 || codes[i] == MPROC_ERANGE || codes[i] == MPROC_ECANCELED);
  /* stop after three failures */
  CHECK_EQ(
      mproc_pool_map(
          p, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out,
          &(mproc_map_opts){.on_error = MPROC_ON_ERROR_STOP_AFTER, .max_failures = 3, .chunk_size = 1}, &rep),
      MPROC_ERANGE);
  CHECK(rep.failed >= 3);
  CHECK(rep.cancelled > 0);
  CHECK_EQ(rep.ok + rep.failed + rep.cancelled, N);
  /* a result larger than its record fails its item */
  static char small[N];
  CHECK_EQ(mproc_pool_map(p, square64, in, N, sizeof *in, small, 1, NULL, &rep), MPROC_EMSGSIZE);
  /* ordered: every index in order, failures at their place with their messages, and the stream goes on */
  mproc_stream *s;
  CHECK_EQ(mproc_pool_imap(p, fail_on_multiples_of_7, in, N, sizeof *in, sizeof(int64_t),
                           &(mproc_stream_opts){.chunk_size = 16, .max_in_flight = 64}, &s),
           0);
  int64_t idx;
  const void *res;
  mproc_outcome o;
  for (int i = 0; i < N; i++) {
    int r = mproc_stream_next(s, 30, &idx, &res, &o);
    CHECK_EQ(idx, i);
    if ((i + 1) % 7 == 0) {
      CHECK_EQ(r, MPROC_ERANGE);
      CHECK(res == NULL);
      CHECK_EQ(o.kind, MPROC_OUTCOME_FAILED);
      char want[64];
      snprintf(want, sizeof want, "%d is a multiple of 7", i + 1);
      CHECK(strcmp(o.message, want) == 0);
    } else {
      CHECK_EQ(r, 0);
      CHECK_EQ(*(const int64_t *)res, i + 1);
    }
  }
  CHECK_EQ(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  /* unordered: every index exactly once */
  enum { M = 5000 };
  static int64_t many[M];
  static unsigned char seen[M];
  for (int i = 0; i < M; i++) many[i] = i;
  memset(seen, 0, sizeof seen);
  CHECK_EQ(mproc_pool_imap_unordered(p, square64, many, M, sizeof *many, sizeof(int64_t), NULL, &s), 0);
  for (int k = 0; k < M; k++) {
    CHECK_EQ(mproc_stream_next(s, 30, &idx, &res, NULL), 0);
    CHECK(idx >= 0 && idx < M);
    CHECK_EQ(seen[idx], 0);
    seen[idx] = 1;
    CHECK_EQ(*(const int64_t *)res, idx * idx);
  }
  CHECK_EQ(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  /* destroyed half way: nothing left running or queued */
  CHECK_EQ(mproc_pool_imap(p, square64, many, M, sizeof *many, sizeof(int64_t),
                           &(mproc_stream_opts){.chunk_size = 4}, &s),
           0);
  for (int k = 0; k < 10; k++) CHECK_EQ(mproc_stream_next(s, 30, &idx, &res, NULL), 0);
  mproc_stream_destroy(s);
  CHECK_EQ(mproc_pool_join(p, 30), 0);
  mproc_pool_destroy(p);
}

/* Timeouts: the caller's wait, an item's (failed alone, then retried), a whole map's (test_map.c's
 * map_timeout_cancels_the_rest: the map aborts, the workers running it are killed on their ranks and
 * replaced), and a stream's next() on an item held at the gate, then ended with it. */
static void timeouts_and_aborts(void) {
  gate_make();
  mproc_pool *p = mpi_pool(2, 0);
  gate_arg g = gated_arg(5);
  mproc_future *f;
  CHECK_EQ(mproc_pool_submit(p, gated, &g, sizeof g, NULL, &f), 0);
  await_started(1);
  CHECK_EQ(mproc_future_result(f, 0.05, NULL, NULL), MPROC_ETIMEDOUT);
  gate_open(1);
  const void *data;
  CHECK_EQ(mproc_future_result(f, 30, &data, NULL), 0);
  CHECK_EQ(*(const int64_t *)data, 25);
  mproc_future_release(f);
  /* an item that hangs past its timeout fails alone, the others of its batch keep their results; retried
   * once, it times out twice */
  enum { N = 40 };
  static int64_t in[N], out[N];
  static int codes[N];
  for (int i = 0; i < N; i++) in[i] = i == 17 ? -4 : i;
  for (int retries = -1; retries <= 1; retries += 2) {
    mproc_map_report rep;
    CHECK_EQ(mproc_pool_map(p, misbehave, in, N, sizeof *in, out, sizeof *out,
                            &(mproc_map_opts){.task_timeout = 0.3,
                                              .max_retries = retries,
                                              .chunk_size = 5,
                                              .on_error = MPROC_ON_ERROR_CONTINUE,
                                              .item_codes = codes},
                            &rep),
             MPROC_ETASKTIMEOUT);
    CHECK_EQ(rep.failed, 1);
    CHECK_EQ(rep.ok, N - 1);
    CHECK_EQ(rep.first_failed_index, 17);
    CHECK_EQ(rep.first_failure.kind, MPROC_OUTCOME_TIMEDOUT);
    CHECK_EQ(rep.first_failure.attempts, retries < 0 ? 1 : 2);
    for (int i = 0; i < N; i++)
      if (i != 17) CHECK_EQ(out[i], i);
  }
  /* the whole map's timeout: every item held at the gate is cancelled, their workers killed */
  static gate_arg held[N];
  static int64_t sq[N];
  for (int i = 0; i < N; i++) held[i] = gated_arg(i);
  mproc_map_report rep;
  double t0 = now();
  CHECK_EQ(mproc_pool_map(p, gated, held, N, sizeof *held, sq, sizeof *sq,
                          &(mproc_map_opts){.timeout = 0.2, .chunk_size = 2, .item_codes = codes}, &rep),
           MPROC_ETIMEDOUT);
  CHECK(now() - t0 >= 0.19);
  CHECK_EQ(rep.cancelled, N);
  for (int i = 0; i < N; i++) CHECK_EQ(codes[i], MPROC_ECANCELED);
  /* the killed workers were replaced: the pool works */
  for (int i = 0; i < N; i++) in[i] = i;
  CHECK_EQ(mproc_pool_map(p, square64, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
  for (int i = 0; i < N; i++) CHECK_EQ(out[i], (int64_t)i * i);
  /* next() with a timeout on an item held at the gate; destroy ends what runs */
  mproc_stream *s;
  CHECK_EQ(mproc_pool_imap(p, gated, held, 4, sizeof *held, sizeof(int64_t),
                           &(mproc_stream_opts){.chunk_size = 1}, &s),
           0);
  int64_t idx;
  const void *res;
  CHECK_EQ(mproc_stream_next(s, 0.05, &idx, &res, NULL), MPROC_ETIMEDOUT);
  mproc_stream_destroy(s);
  CHECK_EQ(mproc_pool_join(p, 30), 0);
  CHECK_EQ(mproc_pool_map(p, square64, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
  mproc_pool_destroy(p);
  gate_remove();
}

/* The finalizer's file, named by the initializer's argument (workers are copies of their agent: what they
 * know of the master comes in arguments). */
static char fin_path[160];
static int init_fin_path(const void *arg, size_t len, mproc_task *t) {
  snprintf(fin_path, sizeof fin_path, "%.*s", (int)len, (const char *)arg);
  return 0;
}
static void append_finalizer(void) {
  int fd = open(fin_path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "f", 1) != 1) _exit(3);
    close(fd);
  }
}

/* test_pool_basics.c's finalizer_runs_when_workers_end_normally: once per worker on its rank, when the pool
 * ends and when a worker retires (max_tasks_per_child); every one before mproc_pool_destroy() returns. */
static void finalizer_remote(void) {
  char path[] = "/tmp/mpi_cluster-fin-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  struct {
    int workers, max_tasks, tasks, want;
  } cases[] = {{2, 0, 8, 2},
               {1, 2, 7, 4}}; /* the second: three retired after two tasks, the fourth stopped */
  for (int c = 0; c < 2; c++) {
    CHECK(truncate(path, 0) == 0);
    mproc_pool *p = NULL;
    CHECK_EQ(mproc_pool_create(&p, &(mproc_pool_opts){.workers = cases[c].workers,
                                                      .backend = MPROC_BACKEND_MPI,
                                                      .initializer = init_fin_path,
                                                      .init_arg = path,
                                                      .init_arg_len = strlen(path),
                                                      .finalizer = append_finalizer,
                                                      .max_tasks_per_child = cases[c].max_tasks}),
             0);
    int64_t in[8], out[8];
    for (int i = 0; i < 8; i++) in[i] = i;
    CHECK_EQ(mproc_pool_map(p, square64, in, (size_t)cases[c].tasks, sizeof *in, out, sizeof *out,
                            &(mproc_map_opts){.chunk_size = 1}, NULL),
             0);
    mproc_pool_destroy(p);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ(st.st_size, cases[c].want);
  }
  unlink(path);
}

static struct {
  int calls;
  mproc_progress last;
} progress_seen;
static void on_progress(const mproc_progress *pr, void *user) {
  (void)user;
  progress_seen.calls++;
  progress_seen.last = *pr;
  progress_seen.last.busy = NULL;
}

/* test_parallel.c's progress_lines_and_callback and errors: Parallel on remote workers reports progress
 * (the callback's last call is the run's end), runs every item under CONTINUE, stops at the first failure
 * by default and returns it. */
static void parallel_progress_and_errors(void) {
  mproc_parallel *par = NULL;
  CHECK_EQ(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 3,
                                                              .backend = MPROC_BACKEND_MPI,
                                                              .progress = on_progress,
                                                              .progress_interval = 0.005,
                                                              .verbose = -1,
                                                              .on_error = MPROC_ON_ERROR_CONTINUE}),
           0);
  enum { N = 600 };
  static int64_t in[N], out[N];
  static int codes[N];
  for (int i = 0; i < N; i++) in[i] = i + 1;
  mproc_map_report rep;
  CHECK_EQ(mproc_parallel_run(par, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out, codes, &rep),
           MPROC_ERANGE);
  CHECK_EQ(rep.failed, N / 7);
  CHECK(strcmp(rep.message, "7 is a multiple of 7") == 0);
  for (int i = 0; i < N; i++) CHECK_EQ(codes[i], (i + 1) % 7 == 0 ? MPROC_ERANGE : 0);
  CHECK(progress_seen.calls >= 1);
  CHECK_EQ(progress_seen.last.total, N);
  CHECK_EQ(progress_seen.last.done, N);
  CHECK_EQ(progress_seen.last.failed, N / 7);
  CHECK_EQ(progress_seen.last.in_flight, 0);
  CHECK_EQ(progress_seen.last.workers, 3);
  CHECK(progress_seen.last.rate > 0);
  mproc_parallel_destroy(par);
  /* by default the first failure stops the run (test_parallel.c's errors_and_timeouts) */
  CHECK_EQ(mproc_parallel_create(
               &par, &(mproc_parallel_opts){.n_jobs = 2, .batch_size = 1, .backend = MPROC_BACKEND_MPI}),
           0);
  CHECK_EQ(mproc_parallel_run(par, fail_on_multiples_of_7, in, N, sizeof *in, out, sizeof *out, codes, &rep),
           MPROC_ERANGE);
  CHECK_EQ(rep.first_failed_index, 6);
  CHECK(strcmp(rep.message, "7 is a multiple of 7") == 0);
  CHECK_EQ(rep.ok + rep.failed + rep.cancelled, N);
  for (int i = 0; i < 6; i++) CHECK_EQ(codes[i], 0);
  mproc_parallel_destroy(par);
  /* a per-item timeout, the rest running: the item is killed on its rank */
  CHECK_EQ(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2,
                                                              .timeout = 0.3,
                                                              .on_error = MPROC_ON_ERROR_CONTINUE,
                                                              .backend = MPROC_BACKEND_MPI}),
           0);
  for (int i = 0; i < 40; i++) in[i] = i == 5 ? -4 : i;
  CHECK_EQ(mproc_parallel_run(par, misbehave, in, 40, sizeof *in, out, sizeof *out, codes, &rep),
           MPROC_ETASKTIMEOUT);
  CHECK_EQ(rep.failed, 1);
  CHECK_EQ(rep.first_failure.kind, MPROC_OUTCOME_TIMEDOUT);
  for (int i = 0; i < 40; i++) {
    CHECK_EQ(codes[i], i == 5 ? MPROC_ETASKTIMEOUT : 0);
    if (i != 5) CHECK_EQ(out[i], i);
  }
  mproc_parallel_destroy(par);
}

/* The executor's names, Parallel's generator forms, close, join and terminate (test_pool_basics.c): an
 * executor shut down with cancel_futures cancels what waits and lets what runs finish; terminate cancels
 * a task held at the gate by killing its worker on its rank; a closed pool refuses new tasks. */
static void executor_terminate_generators(void) {
  gate_make();
  mproc_executor *ex = NULL;
  CHECK_EQ(mproc_executor_create(&ex, &(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_MPI}), 0);
  gate_arg g = gated_arg(3);
  mproc_future *held, *waiting[4];
  CHECK_EQ(mproc_executor_submit(ex, gated, &g, sizeof g, &held), 0);
  await_started(1);
  for (int i = 0; i < 4; i++) {
    int64_t n = i;
    CHECK_EQ(mproc_executor_submit(ex, square64, &n, sizeof n, &waiting[i]), 0);
  }
  CHECK_EQ(mproc_executor_shutdown(ex, 0, 1), 0); /* while the gate holds the first: the rest wait */
  gate_open(1);
  CHECK_EQ(mproc_executor_shutdown(ex, 1, 0), 0); /* returns once every task has completed */
  CHECK_EQ(mproc_future_result(held, 0, NULL, NULL), 0);
  int cancelled = 0;
  for (int i = 0; i < 4; i++) {
    CHECK_EQ(mproc_future_done(waiting[i]), 1);
    int r = mproc_future_result(waiting[i], 0, NULL, NULL);
    CHECK(r == 0 || r == MPROC_ECANCELED);
    cancelled += r == MPROC_ECANCELED;
    mproc_future_release(waiting[i]);
  }
  CHECK(cancelled >= 2); /* at most two tasks are handed to a worker at a time: the others waited */
  mproc_future_release(held);
  mproc_future *late;
  int64_t one = 1;
  CHECK_EQ(mproc_executor_submit(ex, square64, &one, sizeof one, &late), MPROC_ECLOSED);
  mproc_executor_destroy(ex);
  /* terminate: the running task is killed with its worker, the queued one cancelled */
  mproc_pool *p = mpi_pool(1, 0);
  mproc_future *run, *queued;
  CHECK_EQ(mproc_pool_submit(p, gated, &g, sizeof g, NULL, &run), 0);
  await_started(1);
  CHECK_EQ(mproc_pool_submit(p, square64, &one, sizeof one, NULL, &queued), 0);
  CHECK_EQ(mproc_pool_terminate(p), 0);
  CHECK_EQ(mproc_future_result(run, 30, NULL, NULL), MPROC_ECANCELED);
  CHECK_EQ(mproc_future_result(queued, 30, NULL, NULL), MPROC_ECANCELED);
  CHECK_EQ(mproc_pool_submit(p, square64, &one, sizeof one, NULL, &late), MPROC_ECLOSED);
  mproc_future_release(run);
  mproc_future_release(queued);
  mproc_pool_destroy(p);
  /* close: queued tasks still run, new ones are refused; join waits for them */
  p = mpi_pool(2, 0);
  mproc_future *fs[6];
  for (int64_t i = 0; i < 6; i++) CHECK_EQ(mproc_pool_submit(p, square64, &i, sizeof i, NULL, &fs[i]), 0);
  CHECK_EQ(mproc_pool_close(p), 0);
  CHECK_EQ(mproc_pool_submit(p, square64, &one, sizeof one, NULL, &late), MPROC_ECLOSED);
  CHECK_EQ(mproc_pool_join(p, 30), 0);
  for (int i = 0; i < 6; i++) {
    CHECK_EQ(mproc_future_done(fs[i]), 1);
    const void *data;
    CHECK_EQ(mproc_future_result(fs[i], 0, &data, NULL), 0);
    CHECK_EQ(*(const int64_t *)data, (int64_t)i * i);
    mproc_future_release(fs[i]);
  }
  mproc_pool_destroy(p);
  /* Parallel's generators: ordered, and in completion order with every item once */
  mproc_parallel *par = NULL;
  CHECK_EQ(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 3, .backend = MPROC_BACKEND_MPI}), 0);
  enum { N = 2000 };
  static int64_t in[N];
  static unsigned char seen[N];
  for (int i = 0; i < N; i++) in[i] = i;
  for (int order = MPROC_RETURN_GENERATOR; order <= MPROC_RETURN_GENERATOR_UNORDERED; order++) {
    mproc_stream *s;
    CHECK_EQ(
        mproc_parallel_stream(par, square64, in, N, sizeof *in, sizeof(int64_t), (mproc_return_as)order, &s),
        0);
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < N; k++) {
      int64_t idx;
      const void *res;
      CHECK_EQ(mproc_stream_next(s, 30, &idx, &res, NULL), 0);
      if (order == MPROC_RETURN_GENERATOR) CHECK_EQ(idx, k);
      CHECK(idx >= 0 && idx < N);
      CHECK_EQ(seen[idx]++, 0);
      CHECK_EQ(*(const int64_t *)res, idx * idx);
    }
    int64_t idx;
    const void *res;
    CHECK_EQ(mproc_stream_next(s, 0, &idx, &res, NULL), MPROC_EEOF);
    mproc_stream_destroy(s);
  }
  mproc_parallel_destroy(par);
  gate_remove();
}

/* joblib's negative n_jobs count the cluster's CPUs on MPI (the agent ranks', as an MPI pool's default size
 * does), not rank 0's machine's; so does MPROC_WORKERS=-1. */
static void parallel_n_jobs_cluster(void) {
  mproc_pool *p = mpi_pool(0, 0);
  int cluster = mproc_pool_workers(p);
  mproc_pool_destroy(p);
  printf("# the agents' CPUs: %d; this machine's: %d\n", cluster, mproc_cpu_count());
  struct {
    int n_jobs, want;
  } cases[] = {{0, cluster}, {-1, cluster}, {-2, cluster > 1 ? cluster - 1 : 1}};
  for (int c = 0; c < 3; c++) {
    mproc_parallel *par = NULL;
    CHECK_EQ(mproc_parallel_create(
                 &par, &(mproc_parallel_opts){.n_jobs = cases[c].n_jobs, .backend = MPROC_BACKEND_MPI}),
             0);
    CHECK_EQ(mproc_parallel_n_jobs(par), cases[c].want);
    if (c == 1) { /* and it runs */
      int64_t in[64], out[64];
      for (int i = 0; i < 64; i++) in[i] = i;
      CHECK_EQ(mproc_parallel_run(par, square64, in, 64, sizeof *in, out, sizeof *out, NULL, NULL), 0);
      for (int i = 0; i < 64; i++) CHECK_EQ(out[i], (int64_t)i * i);
    }
    mproc_parallel_destroy(par);
  }
  /* the backend from the environment, as users choose it */
  setenv("MPROC_BACKEND", "mpi", 1);
  mproc_parallel *par = NULL;
  CHECK_EQ(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = -1}), 0);
  CHECK_EQ(mproc_parallel_n_jobs(par), cluster);
  mproc_parallel_destroy(par);
  unsetenv("MPROC_BACKEND");
  setenv("MPROC_WORKERS", "-1", 1);
  p = mpi_pool(0, 0);
  CHECK_EQ(mproc_pool_workers(p), cluster);
  mproc_pool_destroy(p);
  unsetenv("MPROC_WORKERS");
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

/* `lib`: the library libmpi_cluster_lib.so, loaded before mproc_init() from LD_LIBRARY_PATH (tests/mpi.cmake
 * gives each rank its directory).  Where every rank loads the same build, a task that lives in it runs on the
 * agents (as (object, offset)); where the agents load another build, mproc_init() refuses. */
static int library_check(int r, void *lib) {
  current = "library";
  CHECK(lib != NULL);
  const char *expect = getenv("MPI_CLUSTER_EXPECT");
  if (expect && strcmp(expect, "refused") == 0) {
    CHECK_EQ(r, MPROC_ENOBACKEND);
    CHECK_EQ(mproc_backend_available("mpi"), 0);
    CHECK(strstr(mproc_last_error_message(), "libraries other than rank 0's") != NULL);
    printf("mpi_cluster: refused as expected\n");
    return 0;
  }
  CHECK_EQ(r, 0);
  mproc_task_fn fn;
  *(void **)&fn = dlsym(lib, "mpi_cluster_lib_task");
  CHECK(fn != NULL);
  mproc_pool *p = mpi_pool(2, 0);
  for (int i = 0; i < 4; i++) CHECK_EQ(mproc_pool_apply(p, fn, NULL, 0, NULL, 0, NULL), -EDOM);
  mproc_pool_destroy(p);
  printf("mpi_cluster: a task from the library ran on the agents\n");
  return 0;
}

/* A Ctrl-C that reaches the ranks ends the map with MPROC_EINTERRUPTED, as on the local backend; the pool
 * is used again.  Reaching mpirun (the terminal's Ctrl-C) the job ends: the map never returns. */
static void ctrl_c(int ranks, bool to_mpirun) {
  mproc_pool *p = mpi_pool(2 * (ranks - 1), 0);
  enum { N = 2000 };
  static sigint_item in[N];
  static int64_t out[N];
  for (int i = 0; i < N; i++) in[i] = (sigint_item){i, to_mpirun ? 0 : (int64_t)getpid()};
  mproc_map_report rep;
  int mr = mproc_pool_map(p, interrupt_ranks, in, N, sizeof *in, out, sizeof *out,
                          &(mproc_map_opts){.chunk_size = 1}, &rep);
  if (to_mpirun) {
    fprintf(stderr, "mpi_cluster: %s: the map returned %d: mpirun's SIGINT did not end the job\n", current,
            mr);
    exit(0);
  }
  CHECK_EQ(mr, MPROC_EINTERRUPTED);
  CHECK(rep.ok < N);
  printf("# ctrl_c: the map ended with MPROC_EINTERRUPTED after %zu of %d items\n", rep.ok, N);
  for (int i = 0; i < N; i++) in[i].n = -1 - i; /* quick, and nobody is interrupted now */
  CHECK_EQ(mproc_pool_map(p, interrupt_ranks, in, N, sizeof *in, out, sizeof *out, NULL, NULL), 0);
  for (int i = 0; i < N; i++) CHECK_EQ(out[i], -1 - i);
  mproc_pool_destroy(p);
}

int main(int argc, char **argv) {
  void *lib = argc > 2 && strcmp(argv[2], "lib") == 0 ? dlopen("libmpi_cluster_lib.so", RTLD_NOW) : NULL;
  int r = mproc_init(&argc, &argv); /* ranks other than 0 serve from here, and never return */
  if (argc > 2 && strcmp(argv[2], "lib") == 0) return library_check(r, lib);
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
  if (argc > 3 && strcmp(argv[2], "cache_stop_check") == 0) {
    current = argv[2];
    cache_stop_check(argv[3]);
    printf("mpi_cluster: %s: ok\n", current);
    return 0;
  }
  if (argc > 3 && strncmp(argv[2], "cache_", 6) == 0) {
    current = argv[2];
    int run = strcmp(argv[2], "cache_kill") == 0 ? 1 : strcmp(argv[2], "cache_stop") == 0 ? 3 : 2;
    cache_run(ranks, argv[3], run);
    printf("mpi_cluster: %s: ok\n", current);
    return 0;
  }
  if (argc > 2 && (strcmp(argv[2], "sigint") == 0 || strcmp(argv[2], "sigint_mpirun") == 0)) {
    current = argv[2];
    ctrl_c(ranks, strcmp(argv[2], "sigint_mpirun") == 0);
    printf("mpi_cluster: %s: ok\n", current);
    return 0;
  }
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
  } tests[] = {{"futures_round_trip", futures_round_trip},
               {"remote_faults_fail_alone", remote_faults_fail_alone},
               {"remote_timeout", remote_timeout},
               {"engine_features_remote", engine_features_remote},
               {"parallel_remote", parallel_remote},
               {"items_and_streams", items_and_streams},
               {"large_payloads", large_payloads},
               {"cancel_wait_callbacks", cancel_wait_callbacks},
               {"as_completed_and_wait_modes", as_completed_and_wait_modes},
               {"error_policies_and_streams", error_policies_and_streams},
               {"timeouts_and_aborts", timeouts_and_aborts},
               {"finalizer_remote", finalizer_remote},
               {"parallel_progress_and_errors", parallel_progress_and_errors},
               {"executor_terminate_generators", executor_terminate_generators},
               {"parallel_n_jobs_cluster", parallel_n_jobs_cluster},
               {"no_queue_behind_a_long_item", no_queue_behind_a_long_item},
               {"no_queue_while_workers_start", no_queue_while_workers_start}};
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
    current = tests[i].name;
    double t0 = now();
    tests[i].fn();
    printf("ok %s (%.2f s)\n", current, now() - t0);
  }
  current = "map_across_ranks";
  map_across_ranks(ranks);
  printf("ok %s\n", current);
  current = "shared_arena_remote";
  shared_arena_remote(ranks);
  printf("ok %s\n", current);
  current = "idle_ranks_cost_little";
  idle_ranks_cost_little(ranks);
  printf("ok %s\n", current);
  current = "busy_agents_nap_long";
  busy_agents_nap_long(ranks);
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
