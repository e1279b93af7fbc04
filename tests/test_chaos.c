/* test_chaos.c: the pool under chaos (issue 17, docs/reliability.md).  Thousands of tasks, of which a seeded
 * random few segfault, abort, _exit, fail or hang past their timeout, go through futures, a map, a map over
 * items of any size and Parallel, with and without a thread that SIGKILLs a random worker every few ms,
 * with and without retries; the thread backend runs the same faces with failures only (a crash there ends
 * the process, a timeout is refused).  Every task must be accounted for exactly once with the outcome its
 * faults call for and its value; done-callbacks run once each; a shared page counts each item's runs (when
 * it starts) and successes (when its value is made): no item whose value was made runs again unless the
 * killer killed the process that made it before it could send it, none runs more than 1 + max_retries
 * times; a watchdog bounds every run; the pool works after; nothing is left behind after each run.
 *
 * Options: --tasks N (tasks per run; default 4000, divided by MTEST_TIMEOUT_SCALE), --seed S (as
 * MTEST_SEED=S), --soak MINUTES (runs chaos_soak alone: every configuration in turn with a new seed and
 * 20,000 tasks, or --tasks, until MINUTES have passed, printing each run's figures and the totals).  Every
 * failure prints the command that replays its run. */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

enum { WORKERS = 4, SHORT_TASKS = 4000, SOAK_TASKS = 20000, MAX_TASKS = 1 << 20, RUN_PIDS = 4 };

/* ---- faults ---- */

typedef enum fault { FT_OK, FT_SEGV, FT_ABRT, FT_EXIT, FT_HANG, FT_FAIL, FT_KINDS } fault;
static const char *const fault_names[FT_KINDS] = {"ok", "segfault", "abort", "_exit", "hang", "fail"};
/* per mille of runs, for process workers (issue 17's rates, and failures) and for thread workers */
static const uint32_t process_rates[FT_KINDS] = {0, 50, 30, 20, 20, 20};
static const uint32_t thread_rates[FT_KINDS] = {0, 0, 0, 0, 0, 100};

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

/* One item's runs, in the page shared with the workers. */
typedef struct item_rec {
  uint32_t runs;         /* runs started */
  uint32_t ok_runs;      /* bit k: run k made its value */
  int32_t pid[RUN_PIDS]; /* the process of run k */
} item_rec;

typedef struct chaos_page {
  uint64_t seed;
  uint32_t rate[FT_KINDS];
  uint32_t var_results; /* results of any size (map over items) */
  int32_t worker_pid[64];
  uint64_t injected[FT_KINDS];
  item_rec items[];
} chaos_page;
static chaos_page *pg;
static size_t pg_bytes;

/* The fault item i's run of the given attempt (1, 2, ...) injects. */
static fault fault_of(uint64_t i, int attempt) {
  uint32_t r = (uint32_t)(mix(pg->seed ^ mix(i * 64 + (uint64_t)attempt)) % 1000), acc = 0;
  for (int k = 1; k < FT_KINDS; k++) {
    acc += pg->rate[k];
    if (r < acc) return (fault)k;
  }
  return FT_OK;
}
static int exit_code_of(uint64_t i, int attempt) {
  return 10 + (int)(mix(pg->seed + i * 64 + (uint64_t)attempt) % 90);
}
static uint64_t value_of(uint64_t i) { return mix(pg->seed ^ (i << 20) ^ 0x5eed); }
/* A map over items: item i is its index and pad_of(i) bytes of a pattern; its result value_of(i) and
 * result_pad_of(i) bytes more (a few larger than a worker's staging area, which are sent alone). */
static size_t pad_of(uint64_t i) {
  uint64_t h = mix(pg->seed ^ i ^ 0xabcdef);
  return h % 200 == 0 ? 20000 + h % 5000 : h % 300;
}
static size_t result_pad_of(uint64_t i) {
  uint64_t h = mix(pg->seed ^ i ^ 0x123456);
  return h % 500 == 0 ? 100000 : h % 48;
}
static bool result_alone(uint64_t i) { return result_pad_of(i) >= 65536; }
static unsigned char pattern(uint64_t i, size_t k) { return (unsigned char)(i * 7 + k); }

static int chaos_task(const void *arg, size_t len, mproc_task *t) {
  uint32_t i;
  if (len < sizeof i) return mproc_task_fail(t, MPROC_EINVAL, "input of %zu bytes", len);
  memcpy(&i, arg, sizeof i);
  if (pg->var_results) {
    const unsigned char *pad = (const unsigned char *)arg + sizeof i;
    if (len != sizeof i + pad_of(i)) return mproc_task_fail(t, MPROC_EINVAL, "item %u: %zu bytes", i, len);
    for (size_t k = 0; k < len - sizeof i; k++)
      if (pad[k] != pattern(i, k)) return mproc_task_fail(t, MPROC_EINVAL, "item %u: byte %zu", i, k);
  }
  int attempt = mproc_task_attempt(t);
  item_rec *r = &pg->items[i];
  uint32_t k = __atomic_fetch_add(&r->runs, 1, __ATOMIC_SEQ_CST);
  int32_t pid = (int32_t)getpid();
  if (k < RUN_PIDS) __atomic_store_n(&r->pid[k], pid, __ATOMIC_SEQ_CST);
  int w = mproc_task_worker_id(t);
  if (w >= 0 && w < 64) __atomic_store_n(&pg->worker_pid[w], pid, __ATOMIC_SEQ_CST);
  fault f = fault_of(i, attempt);
  __atomic_fetch_add(&pg->injected[f], 1, __ATOMIC_SEQ_CST);
  switch (f) {
    case FT_SEGV:
      raise(SIGSEGV);
      break;
    case FT_ABRT:
      abort();
    case FT_EXIT:
      _exit(exit_code_of(i, attempt));
    case FT_HANG:
      for (;;) pause(); /* only its timeout (or the killer) ends it */
    case FT_FAIL:
      return mproc_task_fail(t, MPROC_EIO, "item %u fails", i);
    default:
      break;
  }
  uint64_t v = value_of(i);
  int rc;
  if (pg->var_results) {
    size_t extra = result_pad_of(i);
    unsigned char *out = mproc_task_return_buffer(t, sizeof v + extra);
    if (!out) return mproc_task_fail(t, MPROC_ENOMEM, "no result buffer");
    memcpy(out, &v, sizeof v);
    for (size_t b = 0; b < extra; b++) out[sizeof v + b] = pattern(i, b);
    rc = 0;
  } else {
    rc = mproc_task_return(t, &v, sizeof v);
  }
  __atomic_or_fetch(&r->ok_runs, 1u << (k < 31 ? k : 31), __ATOMIC_SEQ_CST);
  return rc;
}

/* What the pool works with after a run. */
static int square(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

/* ---- configurations ---- */

typedef enum face { FACE_FUTURES, FACE_MAP, FACE_ITEMS, FACE_PARALLEL } face;
static const char *const face_names[] = {"futures", "map", "map over items", "Parallel"};

typedef struct config {
  const char *name;
  face face;
  mproc_backend backend;
  bool kills;  /* a thread SIGKILLs a random worker every few ms */
  int retries; /* max_retries (Parallel has none) */
} config;

#define P MPROC_BACKEND_PROCESS
#define T MPROC_BACKEND_THREAD
static const config configs[] = {
    {"chaos_futures", FACE_FUTURES, P, false, 0},
    {"chaos_futures_retries", FACE_FUTURES, P, false, 2},
    {"chaos_futures_kills", FACE_FUTURES, P, true, 0},
    {"chaos_futures_kills_retries", FACE_FUTURES, P, true, 2},
    {"chaos_map", FACE_MAP, P, false, 0},
    {"chaos_map_retries", FACE_MAP, P, false, 2},
    {"chaos_map_kills", FACE_MAP, P, true, 0},
    {"chaos_map_kills_retries", FACE_MAP, P, true, 2},
    {"chaos_items", FACE_ITEMS, P, false, 0},
    {"chaos_items_retries", FACE_ITEMS, P, false, 2},
    {"chaos_items_kills", FACE_ITEMS, P, true, 0},
    {"chaos_items_kills_retries", FACE_ITEMS, P, true, 2},
    {"chaos_parallel", FACE_PARALLEL, P, false, 0},
    {"chaos_parallel_kills", FACE_PARALLEL, P, true, 0},
    {"chaos_thread_futures", FACE_FUTURES, T, false, 2},
    {"chaos_thread_map", FACE_MAP, T, false, 2},
    {"chaos_thread_items", FACE_ITEMS, T, false, 2},
    {"chaos_thread_parallel", FACE_PARALLEL, T, false, 0},
};
#undef P
#undef T
enum { NCONFIGS = sizeof configs / sizeof configs[0] };

static size_t tasks_option; /* --tasks */
static double soak_minutes; /* --soak */

static double timeout_scale(void) {
  const char *s = getenv("MTEST_TIMEOUT_SCALE");
  double v = s ? atof(s) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

/* ---- one run ---- */

/* How an item ended, as the face told it. */
typedef struct seen {
  int kind, code, signal, exit_code;
  int attempts; /* -1: not told (a map's item that succeeded) */
  bool value_ok;
  bool reported; /* told exactly once */
} seen;

/* What runs add up to. */
typedef struct figures {
  uint64_t runs, tasks, executions, kills;
  uint64_t injected[FT_KINDS];
  uint64_t ok, failed, crashed, killed, timedout, lost;
  double seconds;
} figures;

typedef struct run {
  const config *c;
  uint64_t seed;
  size_t n;
  double task_timeout;
  seen *seen;
  uint32_t *callbacks; /* futures: done-callbacks per task */
  uint32_t callbacks_total;
  /* the killer */
  pthread_t killer;
  uint32_t stop_killer;
  int32_t *killed; /* pids it killed */
  uint32_t nkilled, killed_cap;
  /* the watchdog */
  pthread_t watchdog;
  pthread_mutex_t wd_lock;
  pthread_cond_t wd_cond;
  bool wd_stop;
  double deadline_s;
} run;

static run *current; /* for the callbacks */

__attribute__((format(printf, 3, 4), noreturn)) static void run_fail(const run *r, int line, const char *fmt,
                                                                     ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  mtest_fail(__FILE__, line,
             "%s: %s\n#   run: %s, seed %" PRIu64
             ", %zu tasks; replay: tests/test_chaos --tasks %zu --seed %" PRIu64 " %s",
             r->c->name, msg, face_names[r->c->face], r->seed, r->n, r->n, r->seed, r->c->name);
}
#define RUN_FAIL(r, ...) run_fail(r, __LINE__, __VA_ARGS__)
#define RUN_CHECK(r, cond)                               \
  do {                                                   \
    if (!(cond)) RUN_FAIL(r, "CHECK(%s) failed", #cond); \
  } while (0)
#define RUN_OK(r, expr)                                                                              \
  do {                                                                                               \
    int rc_ = (expr);                                                                                \
    if (rc_ < 0) RUN_FAIL(r, "%s failed: %s (%s)", #expr, mproc_err_name(rc_), mproc_strerror(rc_)); \
  } while (0)

static void *watchdog_main(void *v) {
  run *r = v;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  double end = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + r->deadline_s;
  until.tv_sec = (time_t)end;
  until.tv_nsec = (long)((end - floor(end)) * 1e9);
  pthread_mutex_lock(&r->wd_lock);
  int rc = 0;
  while (!r->wd_stop && rc == 0) rc = pthread_cond_timedwait(&r->wd_cond, &r->wd_lock, &until);
  bool hung = !r->wd_stop;
  pthread_mutex_unlock(&r->wd_lock);
  if (hung) {
    size_t done = 0;
    for (size_t i = 0; i < r->n; i++) done += r->seen[i].reported;
    RUN_FAIL(r, "hang: the run did not end within %.0f s (%zu of %zu items reported so far)", r->deadline_s,
             done, r->n);
  }
  return NULL;
}

/* Whether pid is a worker of a pool of this process: a child of a child (its template). */
static int parent_of(int pid) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  bool got = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  char *rp = got ? strrchr(line, ')') : NULL;
  int ppid = -1;
  if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1) return -1;
  return ppid;
}

static void *killer_main(void *v) {
  run *r = v;
  uint64_t rng = mix(r->seed ^ 0xdead);
  while (!__atomic_load_n(&r->stop_killer, __ATOMIC_ACQUIRE)) {
    rng = mix(rng);
    struct timespec pace = {0, (long)(2000000 + rng % 4000000)}; /* 2 to 6 ms */
    nanosleep(&pace, NULL);
    int pid = __atomic_load_n(&pg->worker_pid[rng % WORKERS], __ATOMIC_SEQ_CST);
    if (pid <= 0) continue;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) continue;
    /* the process the descriptor holds is still alive after its parents were read: they are its own */
    int tpl = parent_of(pid);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (tpl > 0 && parent_of(tpl) == getpid() && poll(&pfd, 1, 0) == 0 &&
        syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) == 0 && r->nkilled < r->killed_cap)
      r->killed[r->nkilled++] = pid;
    close(fd);
  }
  return NULL;
}

static bool was_killed(const run *r, int32_t pid) {
  for (uint32_t k = 0; k < r->nkilled; k++)
    if (r->killed[k] == pid) return true;
  return false;
}

static void on_done(mproc_future *f, void *user) {
  (void)f;
  size_t i = (size_t)(uintptr_t)user;
  __atomic_fetch_add(&current->callbacks[i], 1, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&current->callbacks_total, 1, __ATOMIC_SEQ_CST);
  mproc__plat_futex_wake(&current->callbacks_total, INT32_MAX);
}

static void note(run *r, size_t i, const mproc_outcome *o, bool value_ok) {
  seen *s = &r->seen[i];
  if (s->reported) RUN_FAIL(r, "item %zu reported twice", i);
  *s = (seen){.kind = (int)o->kind,
              .code = o->code,
              .signal = o->signal,
              .exit_code = o->exit_code,
              .attempts = o->attempts,
              .value_ok = value_ok,
              .reported = true};
}

static void note_ok(run *r, size_t i, bool value_ok) {
  mproc_outcome o = {.kind = MPROC_OUTCOME_OK, .exit_code = -1, .attempts = -1};
  note(r, i, &o, value_ok);
}

static mproc_pool *make_run_pool(const run *r) {
  mproc_pool *p;
  RUN_OK(r, mproc_pool_create(&p, &(mproc_pool_opts){.workers = WORKERS,
                                                     .backend = r->c->backend,
                                                     .task_timeout = r->task_timeout,
                                                     .max_retries = r->c->retries}));
  return p;
}

static void pool_still_works(const run *r, mproc_pool *p) {
  int in[64], out[64];
  for (int i = 0; i < 64; i++) in[i] = i;
  RUN_OK(r, mproc_pool_map(p, square, in, 64, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < 64; i++) RUN_CHECK(r, out[i] == i * i);
  int a = 12, b = 0;
  RUN_OK(r, mproc_pool_apply(p, square, &a, sizeof a, &b, sizeof b, NULL));
  RUN_CHECK(r, b == 144);
}

static void start_killer(run *r) {
  if (r->c->kills) RUN_CHECK(r, pthread_create(&r->killer, NULL, killer_main, r) == 0);
}
static void stop_killer(run *r) {
  if (!r->c->kills) return;
  __atomic_store_n(&r->stop_killer, 1, __ATOMIC_RELEASE);
  RUN_CHECK(r, pthread_join(r->killer, NULL) == 0);
}

static void run_futures(run *r) {
  mproc_pool *p = make_run_pool(r);
  mproc_future **fs = calloc(r->n, sizeof *fs);
  RUN_CHECK(r, fs != NULL);
  start_killer(r);
  for (size_t i = 0; i < r->n; i++) {
    uint32_t a = (uint32_t)i;
    RUN_OK(r, mproc_pool_submit(p, chaos_task, &a, sizeof a, NULL, &fs[i]));
    RUN_OK(r, mproc_future_add_done_callback(fs[i], on_done, (void *)(uintptr_t)i));
  }
  for (size_t i = 0; i < r->n; i++) {
    const void *data = NULL;
    size_t len = 0;
    int rc = mproc_future_result(fs[i], MPROC_FOREVER, &data, &len);
    mproc_outcome o;
    RUN_OK(r, mproc_future_outcome(fs[i], &o));
    if ((rc == 0) != (o.kind == MPROC_OUTCOME_OK) || (rc != 0 && rc != o.code))
      RUN_FAIL(r, "item %zu: result %s, outcome kind %d code %s", i, mproc_err_name(rc), (int)o.kind,
               mproc_err_name(o.code));
    uint64_t v = 0;
    if (rc == 0 && len == sizeof v) memcpy(&v, data, sizeof v);
    note(r, i, &o, rc == 0 && len == sizeof v && v == value_of(i));
  }
  stop_killer(r);
  /* a future is done before its callbacks have run (as in concurrent.futures): wait for them */
  for (;;) {
    uint32_t got = __atomic_load_n(&r->callbacks_total, __ATOMIC_SEQ_CST);
    if (got >= r->n) break;
    mproc__plat_futex_wait(&r->callbacks_total, got, 1.0);
  }
  for (size_t i = 0; i < r->n; i++) mproc_future_release(fs[i]);
  free(fs);
  pool_still_works(r, p);
  mproc_pool_destroy(p);
  for (size_t i = 0; i < r->n; i++)
    if (r->callbacks[i] != 1) RUN_FAIL(r, "item %zu: %u done-callbacks", i, r->callbacks[i]);
}

/* A map's outcomes: item_codes for every item, the failures kept for those that failed, the report's
 * counts. */
static void note_map(run *r, int rc, const int *codes, const mproc_item_failure *fails,
                     const mproc_map_report *rep, bool (*value_ok)(run *, size_t)) {
  if (rep->ok + rep->failed != r->n || rep->cancelled != 0)
    RUN_FAIL(r, "map returned %s: %zu ok, %zu failed, %zu cancelled of %zu", mproc_err_name(rc), rep->ok,
             rep->failed, rep->cancelled, r->n);
  if (rep->failures_kept != rep->failed || rep->failures_left_out != 0)
    RUN_FAIL(r, "%zu failures kept, %zu left out, of %zu", rep->failures_kept, rep->failures_left_out,
             rep->failed);
  if ((rc == 0) != (rep->failed == 0))
    RUN_FAIL(r, "map returned %s with %zu failed", mproc_err_name(rc), rep->failed);
  for (size_t k = 0; k < rep->failures_kept; k++) {
    const mproc_item_failure *f = &fails[k];
    if (f->index < 0 || (size_t)f->index >= r->n) RUN_FAIL(r, "failure %zu: index %" PRId64, k, f->index);
    if (k > 0 && f->index <= fails[k - 1].index) RUN_FAIL(r, "failures not sorted at %zu", k);
    if (codes[f->index] != f->outcome.code)
      RUN_FAIL(r, "item %" PRId64 ": item code %s, failure code %s", f->index,
               mproc_err_name(codes[f->index]), mproc_err_name(f->outcome.code));
    note(r, (size_t)f->index, &f->outcome, false);
  }
  for (size_t i = 0; i < r->n; i++) {
    if (codes[i] == 0) {
      note_ok(r, i, value_ok(r, i));
    } else if (!r->seen[i].reported) {
      RUN_FAIL(r, "item %zu: code %s and no failure kept", i, mproc_err_name(codes[i]));
    }
  }
}

static uint64_t *map_out;
static bool map_value_ok(run *r, size_t i) {
  (void)r;
  return map_out[i] == value_of(i);
}

static void run_map(run *r) {
  mproc_pool *p = make_run_pool(r);
  uint32_t *in = malloc(r->n * sizeof *in);
  map_out = malloc(r->n * sizeof *map_out);
  int *codes = malloc(r->n * sizeof *codes);
  mproc_item_failure *fails = malloc(r->n * sizeof *fails);
  RUN_CHECK(r, in && map_out && codes && fails);
  for (size_t i = 0; i < r->n; i++) in[i] = (uint32_t)i;
  memset(map_out, 0, r->n * sizeof *map_out);
  mproc_map_report rep;
  start_killer(r);
  int rc = mproc_pool_map(
      p, chaos_task, in, r->n, sizeof *in, map_out, sizeof *map_out,
      &(mproc_map_opts){
          .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .failures = fails, .failures_cap = r->n},
      &rep);
  stop_killer(r);
  note_map(r, rc, codes, fails, &rep, map_value_ok);
  pool_still_works(r, p);
  mproc_pool_destroy(p);
  free(in);
  free(map_out);
  free(codes);
  free(fails);
}

static mproc_results *items_results;
static bool items_value_ok(run *r, size_t i) {
  const void *data;
  size_t len;
  if (mproc_results_get(items_results, i, &data, &len) != 0) RUN_FAIL(r, "item %zu: code 0, no result", i);
  size_t extra = result_pad_of(i);
  uint64_t v;
  if (len != sizeof v + extra) return false;
  memcpy(&v, data, sizeof v);
  if (v != value_of(i)) return false;
  for (size_t b = 0; b < extra; b++)
    if (((const unsigned char *)data)[sizeof v + b] != pattern(i, b)) return false;
  return true;
}

static void run_items(run *r) {
  mproc_pool *p = make_run_pool(r);
  size_t *offsets = malloc((r->n + 1) * sizeof *offsets);
  RUN_CHECK(r, offsets != NULL);
  offsets[0] = 0;
  for (size_t i = 0; i < r->n; i++) offsets[i + 1] = offsets[i] + sizeof(uint32_t) + pad_of(i);
  unsigned char *buf = malloc(offsets[r->n]);
  int *codes = malloc(r->n * sizeof *codes);
  mproc_item_failure *fails = malloc(r->n * sizeof *fails);
  RUN_CHECK(r, buf && codes && fails);
  for (size_t i = 0; i < r->n; i++) {
    uint32_t a = (uint32_t)i;
    memcpy(buf + offsets[i], &a, sizeof a);
    for (size_t k = 0; k < pad_of(i); k++) buf[offsets[i] + sizeof a + k] = pattern(i, k);
  }
  mproc_items items = mproc_items_packed(buf, offsets, r->n);
  mproc_map_report rep;
  start_killer(r);
  int rc = mproc_pool_map_items(
      p, chaos_task, &items,
      &(mproc_map_opts){
          .on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes, .failures = fails, .failures_cap = r->n},
      &items_results, &rep);
  stop_killer(r);
  RUN_CHECK(r, items_results != NULL && mproc_results_count(items_results) == r->n);
  note_map(r, rc, codes, fails, &rep, items_value_ok);
  mproc_results_free(items_results);
  items_results = NULL;
  pool_still_works(r, p);
  mproc_pool_destroy(p);
  free(offsets);
  free(buf);
  free(codes);
  free(fails);
}

static void run_parallel(run *r) {
  int *codes = malloc(r->n * sizeof *codes);
  mproc_item_failure *fails = malloc(r->n * sizeof *fails);
  uint32_t *in = malloc(r->n * sizeof *in);
  map_out = malloc(r->n * sizeof *map_out);
  RUN_CHECK(r, in && map_out && codes && fails);
  for (size_t i = 0; i < r->n; i++) in[i] = (uint32_t)i;
  memset(map_out, 0, r->n * sizeof *map_out);
  mproc_parallel *par;
  RUN_OK(r, mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = WORKERS,
                                                               .backend = r->c->backend,
                                                               .timeout = r->task_timeout,
                                                               .verbose = -1,
                                                               .on_error = MPROC_ON_ERROR_CONTINUE,
                                                               .failures = fails,
                                                               .failures_cap = r->n}));
  mproc_map_report rep;
  start_killer(r);
  int rc = mproc_parallel_run(par, chaos_task, in, r->n, sizeof *in, map_out, sizeof *map_out, codes, &rep);
  stop_killer(r);
  note_map(r, rc, codes, fails, &rep, map_value_ok);
  /* still works */
  int sq_in[64], sq_out[64];
  for (int i = 0; i < 64; i++) sq_in[i] = i;
  RUN_OK(r, mproc_parallel_run(par, square, sq_in, 64, sizeof *sq_in, sq_out, sizeof *sq_out, NULL, NULL));
  for (int i = 0; i < 64; i++) RUN_CHECK(r, sq_out[i] == i * i);
  mproc_parallel_destroy(par);
  free(in);
  free(map_out);
  free(codes);
  free(fails);
}

/* What item i's outcome must be without the killer: each attempt's fault decides, until one succeeds or
 * fails (failures are not retried) or the budget is spent. */
static fault expected(uint64_t i, int retries, int *attempts) {
  for (int a = 1;; a++) {
    fault f = fault_of(i, a);
    if (f == FT_OK || f == FT_FAIL || a == retries + 1) {
      *attempts = a;
      return f;
    }
  }
}

static const char *kind_name(int kind) {
  static const char *const names[] = {"pending", "ok", "failed", "crashed", "timed out", "cancelled", "lost"};
  return kind >= 0 && kind <= 6 ? names[kind] : "?";
}

/* Checks every item's outcome against its faults and its runs, and adds up the figures. */
static void check_items(run *r, figures *fig) {
  int budget = r->c->face == FACE_PARALLEL ? 0 : r->c->retries;
  for (size_t i = 0; i < r->n; i++) {
    const seen *s = &r->seen[i];
    const item_rec *rec = &pg->items[i];
    uint32_t runs = rec->runs, ok_runs = rec->ok_runs;
    if (!s->reported) RUN_FAIL(r, "item %zu never reported", i);
    fig->executions += runs;
    if (runs > (uint32_t)budget + 1)
      RUN_FAIL(r, "item %zu ran %u times; at most 1 + %d retries allowed", i, runs, budget);
    /* a value made and then run again: only when the killer killed the process that made it */
    for (uint32_t k = 0; k + 1 < runs && k < RUN_PIDS; k++)
      if ((ok_runs >> k & 1) && !(r->c->kills && was_killed(r, rec->pid[k])))
        RUN_FAIL(r, "item %zu made its value in run %u (pid %d) and ran again (%u runs)", i, k + 1,
                 rec->pid[k], runs);
    int a = s->attempts;
    bool known = a >= 1;
    if (known && (a > budget + 1 || (r->c->kills ? (uint32_t)a < runs : (uint32_t)a != runs)))
      RUN_FAIL(r, "item %zu: %d attempts told, %u runs counted, budget 1 + %d", i, a, runs, budget);
    fault f = known ? fault_of(i, a) : FT_OK;
    bool last_attempt = a == budget + 1;
    const char *bad = NULL;
    switch (s->kind) {
      case MPROC_OUTCOME_OK:
        fig->ok++;
        if (!s->value_ok)
          bad = "wrong value";
        else if (runs == 0 || !(ok_runs >> (runs - 1 < 31 ? runs - 1 : 31) & 1))
          bad = "its last run made no value";
        else if (known && f != FT_OK)
          bad = "that attempt was to fault";
        break;
      case MPROC_OUTCOME_FAILED:
        fig->failed++;
        if (s->code != MPROC_EIO || !known || f != FT_FAIL) bad = "not its fault";
        break;
      case MPROC_OUTCOME_CRASHED:
        if (s->signal == SIGKILL) {
          fig->killed++;
          if (!r->c->kills)
            bad = "SIGKILL without the killer";
          else if (!last_attempt)
            bad = "killed before its retries were spent";
          break;
        }
        fig->crashed++;
        if (s->code != MPROC_ECRASHED || !known || !last_attempt)
          bad = "crash before its retries were spent";
        else if (s->signal == SIGSEGV)
          bad = f == FT_SEGV ? NULL : "SIGSEGV not its fault";
        else if (s->signal == SIGABRT)
          bad = f == FT_ABRT ? NULL : "SIGABRT not its fault";
        else if (s->signal != 0)
          bad = "a signal nobody sent";
        else if (f != FT_EXIT || s->exit_code != exit_code_of(i, a))
          bad = "exit not its fault";
        break;
      case MPROC_OUTCOME_TIMEDOUT:
        fig->timedout++;
        if (s->code != MPROC_ETASKTIMEOUT || !known || f != FT_HANG || !last_attempt)
          bad = "timeout not its fault";
        break;
      case MPROC_OUTCOME_LOST:
        fig->lost++;
        /* a result sent alone (larger than the staging area) is lost when its worker dies while sending */
        if (!r->c->kills || r->c->face != FACE_ITEMS || !result_alone(i)) bad = "lost";
        break;
      default:
        bad = "not accounted for";
    }
    if (!bad && !r->c->kills) { /* without the killer the outcome is known in advance */
      int want_a;
      fault want = expected(i, budget, &want_a);
      if (runs != (uint32_t)want_a)
        bad = "not the runs its faults call for";
      else if (known && a != want_a)
        bad = "not the attempts its faults call for";
      else if ((want == FT_OK) != (s->kind == MPROC_OUTCOME_OK))
        bad = "not the outcome its faults call for";
      else if (want != FT_OK && f != want)
        bad = "not the fault its last attempt injects";
    }
    if (bad) {
      int want_a = 0;
      fault want = expected(i, budget, &want_a);
      RUN_FAIL(r,
               "item %zu: %s: outcome %s (code %s, signal %d, exit %d, attempts %d), %u runs (made a value: "
               "0x%x); without kills its faults call for %s after %d attempts",
               i, bad, kind_name(s->kind), mproc_err_name(s->code), s->signal, s->exit_code, a, runs, ok_runs,
               fault_names[want], want_a);
    }
  }
}

/* What this process holds, to check that a run leaves nothing behind. */
typedef struct holdings {
  int fds, children, shared_maps;
} holdings;

static int count_lines(const char *path, const char *must_have_perm_s) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    if (!must_have_perm_s) {
      n++;
      continue;
    }
    char perms[8] = "";
    if (sscanf(line, "%*s %7s", perms) == 1 && perms[3] == 's') n++;
  }
  fclose(f);
  return n;
}

static holdings take_holdings(void) {
  holdings h = {0, 0, 0};
  char cmd[64];
  snprintf(cmd, sizeof cmd, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
  FILE *f = fopen(cmd, "re");
  if (f) {
    int pid;
    while (fscanf(f, "%d", &pid) == 1) h.children++;
    fclose(f);
  }
  h.shared_maps = count_lines("/proc/self/maps", "s");
  for (int fd = 0; fd < 4096; fd++) h.fds += fcntl(fd, F_GETFD) >= 0;
  return h;
}

static void run_one(const config *c, uint64_t seed, size_t n, figures *fig, bool print) {
  const run early = {.c = c, .seed = seed, .n = n};
  RUN_CHECK(&early, sizeof(chaos_page) + n * sizeof(item_rec) <= pg_bytes);
  memset(pg, 0, pg_bytes);
  pg->seed = seed;
  memcpy(pg->rate, c->backend == MPROC_BACKEND_THREAD ? thread_rates : process_rates, sizeof pg->rate);
  pg->var_results = c->face == FACE_ITEMS;
  double scale = timeout_scale();
  run *r = calloc(1, sizeof *r);
  RUN_CHECK(&early, r != NULL);
  *r = (run){.c = c,
             .seed = seed,
             .n = n,
             /* threads refuse timeouts; no thread task hangs */
             .task_timeout = c->backend == MPROC_BACKEND_THREAD ? 0 : 0.1 * scale,
             .seen = calloc(n, sizeof(seen)),
             .callbacks = calloc(n, sizeof(uint32_t)),
             .killed_cap = 1 << 20,
             .killed = malloc((1 << 20) * sizeof(int32_t)),
             .deadline_s = (60 + (double)n * 0.01) * scale};
  RUN_CHECK(r, r->seen && r->callbacks && r->killed);
  pthread_mutex_init(&r->wd_lock, NULL);
  pthread_cond_init(&r->wd_cond, NULL);
  current = r;
  holdings before = take_holdings();
  double t0 = mproc__plat_now();
  RUN_CHECK(r, pthread_create(&r->watchdog, NULL, watchdog_main, r) == 0);
  switch (c->face) {
    case FACE_FUTURES:
      run_futures(r);
      break;
    case FACE_MAP:
      run_map(r);
      break;
    case FACE_ITEMS:
      run_items(r);
      break;
    case FACE_PARALLEL:
      run_parallel(r);
      break;
  }
  double took = mproc__plat_now() - t0;
  pthread_mutex_lock(&r->wd_lock);
  r->wd_stop = true;
  pthread_cond_signal(&r->wd_cond);
  pthread_mutex_unlock(&r->wd_lock);
  RUN_CHECK(r, pthread_join(r->watchdog, NULL) == 0);
  figures f = {.runs = 1, .tasks = n, .kills = r->nkilled, .seconds = took};
  for (int k = 0; k < FT_KINDS; k++) f.injected[k] = pg->injected[k];
  check_items(r, &f);
  holdings after = take_holdings();
  if (after.fds != before.fds || after.children != before.children || after.shared_maps != before.shared_maps)
    RUN_FAIL(r, "left behind: descriptors %d -> %d, children %d -> %d, shared mappings %d -> %d", before.fds,
             after.fds, before.children, after.children, before.shared_maps, after.shared_maps);
  if (print)
    printf("# %-28s seed %20" PRIu64 ": %zu tasks in %5.2f s, %" PRIu64 " runs; injected %" PRIu64
           " segfault %" PRIu64 " abort %" PRIu64 " _exit %" PRIu64 " hang %" PRIu64 " fail, %" PRIu64
           " kills; outcomes %" PRIu64 " ok %" PRIu64 " failed %" PRIu64 " crashed %" PRIu64
           " killed %" PRIu64 " timed out %" PRIu64 " lost\n",
           c->name, seed, n, took, f.executions, f.injected[FT_SEGV], f.injected[FT_ABRT],
           f.injected[FT_EXIT], f.injected[FT_HANG], f.injected[FT_FAIL], f.kills, f.ok, f.failed, f.crashed,
           f.killed, f.timedout, f.lost);
  fig->runs += f.runs;
  fig->tasks += f.tasks;
  fig->executions += f.executions;
  fig->kills += f.kills;
  for (int k = 0; k < FT_KINDS; k++) fig->injected[k] += f.injected[k];
  fig->ok += f.ok;
  fig->failed += f.failed;
  fig->crashed += f.crashed;
  fig->killed += f.killed;
  fig->timedout += f.timedout;
  fig->lost += f.lost;
  fig->seconds += took;
  current = NULL;
  pthread_mutex_destroy(&r->wd_lock);
  pthread_cond_destroy(&r->wd_cond);
  free(r->seen);
  free(r->callbacks);
  free(r->killed);
  free(r);
}

static void map_page(size_t n) {
  int err = 0;
  pg_bytes = sizeof(chaos_page) + n * sizeof(item_rec);
  pg = mproc__plat_shm_map_anon(pg_bytes, &err);
  CHECK(pg != NULL);
}
static void unmap_page(void) {
  CHECK_OK(mproc__plat_shm_unmap(pg, pg_bytes));
  pg = NULL;
}

static size_t short_tasks(void) {
  if (tasks_option) return tasks_option;
  size_t n = (size_t)((double)SHORT_TASKS / timeout_scale());
  return n < 100 ? 100 : n;
}

static void short_run(const char *name) {
  const config *c = NULL;
  for (size_t k = 0; k < NCONFIGS; k++)
    if (strcmp(configs[k].name, name) == 0) c = &configs[k];
  CHECK(c != NULL);
  size_t n = short_tasks();
  map_page(n);
  figures fig = {0};
  run_one(c, mtest_seed(), n, &fig, true);
  unmap_page();
}

MTEST_TIMEOUT(chaos_futures, 120) { short_run("chaos_futures"); }
MTEST_TIMEOUT(chaos_futures_retries, 120) { short_run("chaos_futures_retries"); }
MTEST_TIMEOUT(chaos_futures_kills, 120) { short_run("chaos_futures_kills"); }
MTEST_TIMEOUT(chaos_futures_kills_retries, 120) { short_run("chaos_futures_kills_retries"); }
MTEST_TIMEOUT(chaos_map, 120) { short_run("chaos_map"); }
MTEST_TIMEOUT(chaos_map_retries, 120) { short_run("chaos_map_retries"); }
MTEST_TIMEOUT(chaos_map_kills, 120) { short_run("chaos_map_kills"); }
MTEST_TIMEOUT(chaos_map_kills_retries, 120) { short_run("chaos_map_kills_retries"); }
MTEST_TIMEOUT(chaos_items, 120) { short_run("chaos_items"); }
MTEST_TIMEOUT(chaos_items_retries, 120) { short_run("chaos_items_retries"); }
MTEST_TIMEOUT(chaos_items_kills, 120) { short_run("chaos_items_kills"); }
MTEST_TIMEOUT(chaos_items_kills_retries, 120) { short_run("chaos_items_kills_retries"); }
MTEST_TIMEOUT(chaos_parallel, 120) { short_run("chaos_parallel"); }
MTEST_TIMEOUT(chaos_parallel_kills, 120) { short_run("chaos_parallel_kills"); }
MTEST_TIMEOUT(chaos_thread_futures, 120) { short_run("chaos_thread_futures"); }
MTEST_TIMEOUT(chaos_thread_map, 120) { short_run("chaos_thread_map"); }
MTEST_TIMEOUT(chaos_thread_items, 120) { short_run("chaos_thread_items"); }
MTEST_TIMEOUT(chaos_thread_parallel, 120) { short_run("chaos_thread_parallel"); }

/* ---- the long form ---- */

static void soak(void) {
  size_t n = tasks_option ? tasks_option : SOAK_TASKS;
  uint64_t base = mtest_seed();
  map_page(n);
  figures fig = {0};
  double t0 = mproc__plat_now(), until = t0 + soak_minutes * 60;
  printf("# soak: %.1f minutes, %zu tasks per run, base seed %" PRIu64 "\n", soak_minutes, n, base);
  for (uint64_t k = 0; k == 0 || mproc__plat_now() < until; k++)
    run_one(&configs[k % NCONFIGS], mix(base + k), n, &fig, true);
  printf("# soak total: %" PRIu64 " runs, %" PRIu64 " tasks, %" PRIu64
         " runs of tasks in %.0f s (%.0f s wall)\n"
         "#   faults injected: %" PRIu64 " segfault, %" PRIu64 " abort, %" PRIu64 " _exit, %" PRIu64
         " hang, %" PRIu64 " fail; %" PRIu64
         " workers SIGKILLed by the killer\n"
         "#   outcomes: %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " crashed, %" PRIu64 " killed, %" PRIu64
         " timed out, %" PRIu64 " lost: %" PRIu64 " of %" PRIu64
         " tasks accounted for, each as its faults call for\n"
         "#   left behind after each run: 0 (descriptors, children, shared mappings)\n",
         fig.runs, fig.tasks, fig.executions, fig.seconds, mproc__plat_now() - t0, fig.injected[FT_SEGV],
         fig.injected[FT_ABRT], fig.injected[FT_EXIT], fig.injected[FT_HANG], fig.injected[FT_FAIL],
         fig.kills, fig.ok, fig.failed, fig.crashed, fig.killed, fig.timedout, fig.lost,
         fig.ok + fig.failed + fig.crashed + fig.killed + fig.timedout + fig.lost, fig.tasks);
  unmap_page();
}

static const char *opt_tasks(const char *v) {
  long long n = atoll(v);
  if (n < 1 || n > MAX_TASKS) {
    fprintf(stderr, "--tasks: 1 to %d\n", MAX_TASKS);
    exit(2);
  }
  tasks_option = (size_t)n;
  return NULL;
}
static const char *opt_seed(const char *v) {
  setenv("MTEST_SEED", v, 1);
  return NULL;
}
static const char *opt_soak(const char *v) {
  soak_minutes = atof(v);
  if (!(soak_minutes > 0)) {
    fprintf(stderr, "--soak: minutes > 0\n");
    exit(2);
  }
  mtest_register("chaos_soak", soak, soak_minutes * 60 + 900);
  return "chaos_soak";
}
__attribute__((constructor)) static void register_options(void) {
  mtest_register_option("--tasks", opt_tasks);
  mtest_register_option("--seed", opt_seed);
  mtest_register_option("--soak", opt_soak);
}
