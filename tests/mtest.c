/* mtest.c: the runner behind mtest.h: one forked process per test, a timeout, and the leak check. */
#include "mtest.h"

#include "face/face.h" /* mproc_pool, for its template's pid */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 512
#define MAX_ITEMS 1024

static struct test {
  const char *name;
  mtest_fn fn;
  double timeout;
} tests[MAX_TESTS];
static int ntests;

static struct helper {
  const char *name;
  mtest_helper_fn fn;
} helpers[64];
static int nhelpers;

static struct option {
  const char *flag;
  mtest_option_fn fn;
} options[16];
static int noptions;

static const char *self_path;
static const char *current_test;
static uint64_t seed_value;
static int seed_used;
static int leak_check_on = 1;

void mtest_register(const char *name, mtest_fn fn, double timeout) {
  if (ntests == MAX_TESTS) abort();
  tests[ntests++] = (struct test){name, fn, timeout};
}

void mtest_register_helper(const char *name, mtest_helper_fn fn) {
  if (nhelpers == 64) abort();
  helpers[nhelpers++] = (struct helper){name, fn};
}

void mtest_register_option(const char *flag, mtest_option_fn fn) {
  if (noptions == 16) abort();
  options[noptions++] = (struct option){flag, fn};
}

const char *mtest_self(void) { return self_path; }

char **mtest_helper_argv(const char *name, const char *a1, const char *a2, const char *a3) {
  static char *argv[8];
  argv[0] = (char *)self_path;
  argv[1] = (char *)"--helper";
  argv[2] = (char *)name;
  argv[3] = (char *)a1;
  argv[4] = a1 ? (char *)a2 : NULL;
  argv[5] = a1 && a2 ? (char *)a3 : NULL;
  argv[6] = NULL;
  return argv;
}

void mtest_check_die_with_caller(const char *name, int n, int timeout_ms) {
  CHECK(n > 0 && n <= 16);
  int fds[2];
  CHECK(pipe(fds) == 0);
  char a[16];
  snprintf(a, sizeof a, "%d", fds[1]);
  pid_t caller = fork();
  CHECK(caller >= 0);
  if (caller == 0) {
    close(fds[0]);
    execv(mtest_self(), mtest_helper_argv(name, a, NULL, NULL));
    _exit(127);
  }
  close(fds[1]);
  int pids[16];
  CHECK_INT_EQ(read(fds[0], pids, (size_t)n * sizeof *pids), (long)((size_t)n * sizeof *pids));
  close(fds[0]);
  int pidfds[16], m = 0;
  for (int i = 0; i < n; i++) {
    int dup = 0;
    for (int k = 0; k < i; k++) dup |= pids[k] == pids[i];
    if (dup) continue;
    pidfds[m] = (int)syscall(SYS_pidfd_open, pids[i], 0);
    CHECK(pidfds[m] >= 0);
    m++;
  }
  CHECK(kill(caller, SIGKILL) == 0);
  int st;
  CHECK_INT_EQ(waitpid(caller, &st, 0), caller);
  for (int i = 0; i < m; i++) {
    struct pollfd pfd = {.fd = pidfds[i], .events = POLLIN};
    CHECK_INT_EQ(poll(&pfd, 1, timeout_ms), 1);
    close(pidfds[i]);
  }
  /* the processes were orphaned to this one (a child subreaper): reap them */
  while (waitpid(-1, &st, 0) > 0) {
  }
}

/* ---- processes that outlive the thread that forked them ---- */

static struct {
  pid_t test_pid, tid;
  int here[2]; /* a held child writes a byte here once it is held */
  void (*fn)(void *);
  void *arg;
} hold;

/* Waits until the thread is gone from /proc: pthread_join returns before the kernel has finished the
 * thread's exit, where a parent-death signal would be sent, and nothing tells of that otherwise. */
static void wait_thread_gone(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d", (int)hold.test_pid, (int)hold.tid);
  while (access(path, F_OK) == 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static int held_pidfd_open(pid_t pid, unsigned flags) {
  if (getpid() != hold.test_pid) { /* in a child */
    CHECK(write(hold.here[1], "x", 1) == 1);
    wait_thread_gone();
  }
  return (int)syscall(SYS_pidfd_open, pid, flags);
}

static void *hold_thread(void *unused) {
  (void)unused;
  hold.tid = (pid_t)syscall(SYS_gettid);
  hold.fn(hold.arg);
  char c; /* the child forked by fn is held: end now, before it can have watched anything */
  CHECK(read(hold.here[0], &c, 1) == 1);
  return NULL;
}

void mtest_in_thread_that_ends(void (*fn)(void *), void *arg) {
  hold.test_pid = getpid();
  hold.fn = fn;
  hold.arg = arg;
  CHECK(pipe(hold.here) == 0);
  mproc__plat_sys.pidfd_open = held_pidfd_open;
  pthread_t t;
  CHECK(pthread_create(&t, NULL, hold_thread, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  mproc__plat_syscalls_reset();
  wait_thread_gone();
  close(hold.here[0]);
  close(hold.here[1]);
}

int mtest_report_pid(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int pid = getpid();
  return mproc_task_return(t, &pid, sizeof pid);
}

int mtest_report_pool_pids(mproc_pool *p, int fd) {
  int all[9];
  all[0] = mproc__template_pid(&p->eng);
  mproc_map_opts one_each = {.chunk_size = 1};
  if (mproc_pool_map(p, mtest_report_pid, NULL, 8, 0, all + 1, sizeof *all, &one_each, NULL) != 0) return 4;
  if (write(fd, all, sizeof all) != sizeof all) return 5;
  for (;;) pause();
}

/* ---- a template killed in a fork ---- */

struct doom {
  pid_t victim; /* the process whose forks end it */
  bool early;   /* before the fork, else after the kernel has made the child */
};
static struct doom *doom;
static pid_t (*real_fork)(void);

static pid_t fork_then_die(void) {
  bool doomed = getpid() == __atomic_load_n(&doom->victim, __ATOMIC_ACQUIRE);
  if (doomed && doom->early) raise(SIGKILL);
  pid_t pid = real_fork();
  if (doomed && pid > 0) raise(SIGKILL);
  return pid;
}

static int crash(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  raise(SIGSEGV);
  return 0;
}

void mtest_template_dies_in_a_fork(mproc_pool *(*make)(void), bool early) {
  int err = 0;
  doom = mproc__plat_shm_map_anon(sizeof *doom, &err); /* before the processes that must see it */
  CHECK(doom != NULL);
  *doom = (struct doom){0, early};
  real_fork = mproc__plat_sys.fork;
  mproc__plat_sys.fork = fork_then_die;
  mproc_pool *p = make();
  mproc__plat_syscalls_reset();
  int pid = 0;
  /* the template's first fork is over */
  CHECK_OK(mproc_pool_apply(p, mtest_report_pid, NULL, 0, &pid, sizeof pid, NULL));
  CHECK(pid > 0);
  __atomic_store_n(&doom->victim, mproc__template_pid(&p->eng), __ATOMIC_RELEASE);
  CHECK_ERR(mproc_pool_apply(p, crash, NULL, 0, NULL, 0, NULL), MPROC_ECRASHED);
  /* no worker is left to run it: it waits for the pool to find its template dead */
  mproc_future *f;
  int r = mproc_pool_submit(p, mtest_report_pid, NULL, 0, NULL, &f);
  if (r == 0) {
    CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ELOST);
    mproc_future_release(f);
  } else {
    CHECK_ERR(r, MPROC_ELOST);
  }
  mproc_pool_destroy(p);
  CHECK_OK(mproc__plat_shm_unmap(doom, sizeof *doom));
  doom = NULL;
}

uint64_t mtest_seed(void) {
  if (!seed_used) {
    const char *env = getenv("MTEST_SEED");
    if (env) {
      seed_value = strtoull(env, NULL, 0);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      seed_value = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    }
    seed_used = 1;
  }
  return seed_value;
}

void mtest_skip_leak_check(void) { leak_check_on = 0; }

/* ---- what a process holds: children, descriptors, shared mappings, /dev/shm entries ---- */

struct snapshot {
  int nkids;
  pid_t kids[MAX_ITEMS];
  int nfds;
  int fds[MAX_ITEMS];
  char fd_targets[MAX_ITEMS][128];
  int nmaps;
  char maps[MAX_ITEMS][160];
  int nshm;
  char shm[MAX_ITEMS][64];
};

static int list_children(pid_t *out, int cap) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f) continue;
    long pid;
    while (n < cap && fscanf(f, "%ld", &pid) == 1) out[n++] = (pid_t)pid;
    fclose(f);
  }
  closedir(d);
  return n;
}

/* Whether a /dev/shm name carries this process's pid as a whole number.  mproc names no segment itself (only
 * a caller's mproc_shm_create with a name does), and the tests name theirs with their pid: entries of tests
 * running beside this one (ctest -j) are theirs to check, not leaks of this one. */
static bool names_this_process(const char *name) {
  char pid[24];
  int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
  for (const char *at = strstr(name, pid); at; at = strstr(at + 1, pid)) {
    bool start = at == name || at[-1] < '0' || at[-1] > '9', end = at[n] < '0' || at[n] > '9';
    if (start && end) return true;
  }
  return false;
}

static void take_snapshot(struct snapshot *s) {
  memset(s, 0, sizeof *s);
  s->nkids = list_children(s->kids, MAX_ITEMS);
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int self_fd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) && s->nfds < MAX_ITEMS) {
      if (e->d_name[0] == '.') continue;
      int fd = atoi(e->d_name);
      if (fd == self_fd) continue;
      char path[64];
      snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(path, s->fd_targets[s->nfds], sizeof s->fd_targets[0] - 1);
      s->fd_targets[s->nfds][n > 0 ? n : 0] = '\0';
      s->fds[s->nfds++] = fd;
    }
    closedir(d);
  }
  FILE *f = fopen("/proc/self/maps", "re");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f) && s->nmaps < MAX_ITEMS) {
      char perms[8] = "";
      sscanf(line, "%*s %7s", perms);
      int shared = perms[3] == 's' || strstr(line, "/memfd:") || strstr(line, "/dev/shm/");
      if (!shared) continue;
      line[strcspn(line, "\n")] = '\0';
      snprintf(s->maps[s->nmaps++], sizeof s->maps[0], "%.159s", line);
    }
    fclose(f);
  }
  d = opendir("/dev/shm");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)) && s->nshm < MAX_ITEMS) {
      if (strncmp(e->d_name, "mproc", 5) != 0 || !names_this_process(e->d_name)) continue;
      snprintf(s->shm[s->nshm++], sizeof s->shm[0], "%.63s", e->d_name);
    }
    closedir(d);
  }
}

/* Compares now with before; prints every leak and returns how many there were. */
static int report_leaks(const struct snapshot *before) {
  static struct snapshot now;
  int leaks = 0;
  pid_t kids[MAX_ITEMS];
  int nkids = list_children(kids, MAX_ITEMS);
  for (int i = 0; i < nkids; i++) {
    int known = 0;
    for (int j = 0; j < before->nkids && !known; j++) known = before->kids[j] == kids[i];
    if (known) continue;
    /* "pid (comm) state ...": the name may itself hold parentheses, the state follows the last one */
    char path[64], line[256] = "", *comm = "?", state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", (int)kids[i]);
    FILE *f = fopen(path, "re");
    if (f) {
      if (!fgets(line, sizeof line, f)) line[0] = '\0';
      fclose(f);
    }
    char *lp = strchr(line, '('), *rp = strrchr(line, ')');
    if (lp && rp > lp) {
      *rp = '\0';
      comm = lp + 1;
      if (rp[1] == ' ' && rp[2]) state = rp[2];
    }
    fprintf(stderr, "#   leak: child process %d (%s, state %c%s) left behind\n", (int)kids[i], comm, state,
            state == 'Z' ? ": ended, not reaped" : "");
    leaks++;
  }
  take_snapshot(&now);
  for (int i = 0; i < now.nfds; i++) {
    int found = 0;
    for (int j = 0; j < before->nfds && !found; j++) found = before->fds[j] == now.fds[i];
    if (!found) {
      fprintf(stderr, "#   leak: file descriptor %d -> %s\n", now.fds[i], now.fd_targets[i]);
      leaks++;
    }
  }
  for (int i = 0; i < now.nmaps; i++) {
    int found = 0;
    for (int j = 0; j < before->nmaps && !found; j++) found = strcmp(before->maps[j], now.maps[i]) == 0;
    if (!found) {
      fprintf(stderr, "#   leak: shared mapping %s\n", now.maps[i]);
      leaks++;
    }
  }
  for (int i = 0; i < now.nshm; i++) {
    int found = 0;
    for (int j = 0; j < before->nshm && !found; j++) found = strcmp(before->shm[j], now.shm[i]) == 0;
    if (!found) {
      fprintf(stderr, "#   leak: /dev/shm/%s\n", now.shm[i]);
      leaks++;
    }
  }
  return leaks;
}

/* Kills and reaps every child (after a failure or in the runner after each test). */
static int kill_children(void) {
  pid_t kids[MAX_ITEMS];
  int n = list_children(kids, MAX_ITEMS);
  for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
  int st;
  while (waitpid(-1, &st, 0) > 0 || errno == EINTR) {
  }
  return n;
}

void mtest_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "#   %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  if (seed_used) fprintf(stderr, "#   seed: MTEST_SEED=%" PRIu64 "\n", seed_value);
  fflush(stderr);
  kill_children();
  _exit(1);
}

static struct snapshot baseline, mark;
/* The runner's signal mask as it started, given back to each test's process: the runner itself blocks
 * SIGCHLD, so that where there is no pidfd it can wait for a test's end with sigtimedwait. */
static sigset_t runner_mask;

void mtest_mark(void) { take_snapshot(&mark); }
int mtest_leaks_since_mark(void) { return report_leaks(&mark); }

static int run_in_child(const struct test *t) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  current_test = t->name;
  take_snapshot(&baseline);
  t->fn();
  fflush(NULL);
  if (leak_check_on && report_leaks(&baseline) > 0) {
    kill_children();
    return 1;
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one test in its own process; returns 1 if it passed. */
static int run_test(int index, const struct test *t, double scale) {
  fflush(NULL);
  double start = now_s();
  pid_t pid = fork();
  if (pid < 0) {
    printf("not ok %d - %s: fork failed: %s\n", index, t->name, strerror(errno));
    return 0;
  }
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, &runner_mask, NULL);
    exit(run_in_child(t));
  }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  double limit = t->timeout * scale;
  int st = 0, timed_out = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    double left = limit - (now_s() - start);
    if (left <= 0) {
      timed_out = 1;
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    if (pidfd >= 0) {
      struct pollfd p = {.fd = pidfd, .events = POLLIN};
      poll(&p, 1, (int)(left * 1000) + 1);
    } else { /* no pidfd (an old kernel, or valgrind, which does not know the call): the next SIGCHLD */
      sigset_t chld;
      sigemptyset(&chld);
      sigaddset(&chld, SIGCHLD);
      struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
      sigtimedwait(&chld, NULL, &ts);
    }
  }
  if (pidfd >= 0) close(pidfd);
  int orphans = kill_children(); /* what the test process left behind and was orphaned to us */
  double took = now_s() - start;
  int ok = !timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0 && orphans == 0;
  if (ok) {
    printf("ok %d - %s (%.3f s)\n", index, t->name, took);
  } else if (timed_out) {
    printf("not ok %d - %s: timed out after %.1f s\n", index, t->name, limit);
  } else if (WIFSIGNALED(st)) {
    printf("not ok %d - %s: killed by signal %d (%s)\n", index, t->name, WTERMSIG(st),
           strsignal(WTERMSIG(st)));
  } else if (orphans) {
    printf("not ok %d - %s: %d process(es) left behind after the test ended\n", index, t->name, orphans);
  } else {
    printf("not ok %d - %s (%.3f s)\n", index, t->name, took);
  }
  fflush(stdout);
  return ok;
}

/* Whether argv[*i] is a registered option: runs it (consuming its value) and adds the test it names. */
static bool run_option(char **argv, int argc, int *i, const char **only, int *nonly) {
  for (int k = 0; k < noptions; k++) {
    if (strcmp(argv[*i], options[k].flag) != 0) continue;
    if (*i + 1 >= argc) {
      fprintf(stderr, "%s needs a value\n", argv[*i]);
      exit(2);
    }
    const char *name = options[k].fn(argv[++*i]);
    if (name && *nonly < MAX_TESTS) only[(*nonly)++] = name;
    return true;
  }
  return false;
}

int main(int argc, char **argv) {
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  self_path = n > 0 ? exe : argv[0];
  setvbuf(stdout, NULL, _IOLBF, 0);

  if (argc >= 3 && strcmp(argv[1], "--helper") == 0) {
    for (int i = 0; i < nhelpers; i++)
      if (strcmp(helpers[i].name, argv[2]) == 0) return helpers[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "no helper named %s\n", argv[2]);
    return 2;
  }
  double scale = 1.0;
  const char *env_scale = getenv("MTEST_TIMEOUT_SCALE");
  if (env_scale) scale = atof(env_scale);
  const char *only[MAX_TESTS];
  int nonly = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--list") == 0) {
      for (int j = 0; j < ntests; j++) printf("%s\n", tests[j].name);
      return 0;
    } else if (strcmp(argv[i], "--timeout-scale") == 0 && i + 1 < argc) {
      scale = atof(argv[++i]);
    } else if (!run_option(argv, argc, &i, only, &nonly) && nonly < MAX_TESTS) {
      only[nonly++] = argv[i];
    }
  }
  if (scale <= 0) scale = 1.0;
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &runner_mask);
  int passed = 0, failed = 0, index = 0;
  for (int i = 0; i < ntests; i++) {
    int wanted = nonly == 0;
    for (int j = 0; j < nonly && !wanted; j++) wanted = strcmp(only[j], tests[i].name) == 0;
    if (!wanted) continue;
    if (run_test(++index, &tests[i], scale))
      passed++;
    else
      failed++;
  }
  if (nonly > 0 && index == 0) {
    fprintf(stderr, "no test matched\n");
    return 2;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

static void *later_main(void *v) {
  mtest_later *l = v;
  nanosleep(&(struct timespec){0, 30 * 1000 * 1000}, NULL);
  l->fn(l->arg);
  return NULL;
}

void mtest_later_start(mtest_later *l, void (*fn)(void *), void *arg) {
  l->fn = fn;
  l->arg = arg;
  CHECK_INT_EQ(pthread_create(&l->th, NULL, later_main, l), 0);
}

void mtest_later_join(mtest_later *l) { CHECK_INT_EQ(pthread_join(l->th, NULL), 0); }
