/* test_parent_death.c: issue 17's parent death group: a caller SIGKILLed in the first milliseconds of pool
 * creation and in the middle of a map, for every start method, leaves nothing behind within 1 s.
 *
 * Each run forks a victim (this binary re-executed as helper pd_victim) that makes a pool and maps over it
 * without end, and SIGKILLs it after a delay drawn from the test's seed: in "create" runs a delay from 0 to a
 * little past the time the pool takes to be made (measured by the test's first run), so that the kill lands
 * anywhere from before the first fork to the first map; in "map" runs 0 to 10 ms after the pool was made,
 * while the map runs.  The test process is a child subreaper (mtest.h), so every process the victim made,
 * directly or through the fork server or the pool's template, is its descendant before and after the kill:
 * the live descendants in /proc are exactly the processes of mproc left.  The test waits on their pidfds,
 * looks again (a process may have been forked meanwhile) until none is left, and fails if one still runs
 * 1 s after the kill.  The victim runs in a directory of its own, also its TMPDIR, as a user of its own when
 * the test runs as root (see victim_uid): the library makes no
 * file there nor in /dev/shm (its shared memory is memfds, the exec method's handoff is descriptors named in
 * the environment, the fork server's sockets are socket pairs), and the test checks both stay as they were.
 *
 * Figures for each test (runs, where the kills landed, the largest number of processes found after a kill,
 * the longest time until the last ended) are printed as "#" lines.  --runs N runs each test N times
 * (the long form; see docs/reliability.md). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"

#define DEFAULT_RUNS 30
#define MAP_WINDOW_US 10000 /* "map" runs: the kill comes 0 to 10 ms into the map */
#define CLEAN_LIMIT 1.0     /* the guarantee: nothing left 1 s after the caller's death */
#define MAX_PROCS 256

static int runs_per_test = DEFAULT_RUNS;

/* ---- the victim ---- */

enum method { M_FORK, M_FORKSERVER, M_EXEC, M_THREAD, M_SERIAL };
static const char *const method_names[] = {"fork", "forkserver", "exec", "thread", "serial"};

static int method_of(const char *name) {
  for (int i = 0; i < (int)(sizeof method_names / sizeof *method_names); i++)
    if (strcmp(name, method_names[i]) == 0) return i;
  return -1;
}

/* A task of a few tens of microseconds, so that a map keeps every worker busy and a kill finds tasks at
 * every stage: arriving, running, returning. */
static int spin(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  uint64_t x = *(const uint32_t *)arg;
  for (int i = 0; i < 20000; i++) x = x * 6364136223846793005u + 1442695040888963407u;
  return mproc_task_return(t, &x, sizeof x);
}

/* What the victim tells the test: a mark and the time (CLOCK_MONOTONIC, the same in every process). */
struct mark {
  char c;
  double t;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool send_mark(int fd, char c) {
  struct mark m = {c, now_s()};
  return write(fd, &m, sizeof m) == (ssize_t)sizeof m;
}

/* argv: method, fd.  Sends mark 'c' to fd just before it creates the pool and 'm' just before its first
 * map; then maps until it is killed.  Exit codes say which call failed. */
MTEST_HELPER(pd_victim) {
  if (argc < 3) return 2;
  int m = method_of(argv[1]), fd = atoi(argv[2]);
  if (m < 0) return 2;
  if (m == M_FORKSERVER && mproc_init(NULL, NULL) != 0) return 3;
  mproc_pool_opts o = {.workers = 3};
  if (m == M_FORK) o.start_method = MPROC_START_FORK;
  if (m == M_FORKSERVER) o.start_method = MPROC_START_FORKSERVER;
  if (m == M_EXEC) o.start_method = MPROC_START_EXEC;
  o.backend = m == M_THREAD   ? MPROC_BACKEND_THREAD
              : m == M_SERIAL ? MPROC_BACKEND_SERIAL
                              : MPROC_BACKEND_PROCESS;
  if (!send_mark(fd, 'c')) return 4;
  mproc_pool *p;
  if (mproc_pool_create(&p, &o) != 0) return 5;
  if (!send_mark(fd, 'm')) return 4;
  static uint32_t in[600];
  static uint64_t out[600];
  for (uint32_t i = 0; i < 600; i++) in[i] = i;
  for (;;)
    if (mproc_pool_map(p, spin, in, 600, sizeof *in, out, sizeof *out, NULL, NULL) != 0) return 6;
}

/* ---- the processes below this one ---- */

struct proc {
  pid_t pid, ppid;
  char state;
  char comm[32];
};

/* Reads /proc/PID/stat: "pid (comm) state ppid ..." (comm may itself hold parentheses). */
static bool read_proc(pid_t pid, struct proc *p) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return false;
  bool ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  char *lp = strchr(line, '('), *rp = strrchr(line, ')');
  int ppid;
  if (!ok || !lp || !rp || rp < lp || sscanf(rp + 1, " %c %d", &p->state, &ppid) != 2) return false;
  size_t n = (size_t)(rp - lp - 1) < sizeof p->comm - 1 ? (size_t)(rp - lp - 1) : sizeof p->comm - 1;
  memcpy(p->comm, lp + 1, n);
  p->comm[n] = '\0';
  p->pid = pid;
  p->ppid = ppid;
  return true;
}

/* The live (not ended) descendants of this process: up to cap of them in out; returns how many. */
static int live_descendants(struct proc *out, int cap) {
  static struct proc all[4096];
  int n = 0;
  DIR *d = opendir("/proc");
  CHECK(d != NULL);
  struct dirent *e;
  while ((e = readdir(d)) && n < (int)(sizeof all / sizeof *all)) {
    char *end;
    long pid = strtol(e->d_name, &end, 10);
    if (*end || pid <= 0) continue;
    if (read_proc((pid_t)pid, &all[n])) n++;
  }
  closedir(d);
  /* mark the descendants: a pass per generation, until nothing changes */
  static bool mine[4096];
  pid_t self = getpid();
  for (int i = 0; i < n; i++) mine[i] = all[i].ppid == self;
  for (bool grew = true; grew;) {
    grew = false;
    for (int i = 0; i < n; i++) {
      if (mine[i]) continue;
      for (int j = 0; j < n && !mine[i]; j++) mine[i] = mine[j] && all[j].pid == all[i].ppid;
      grew |= mine[i];
    }
  }
  int m = 0;
  for (int i = 0; i < n; i++)
    if (mine[i] && all[i].state != 'Z' && all[i].state != 'X' && m < cap) out[m++] = all[i];
  return m;
}

/* Waits until no descendant of this process is alive, at most until deadline: pidfds of those found, then
 * a new look (one may have been forked meanwhile).  Returns the time the last one was seen gone, or a
 * negative number when some were still alive at the deadline (listed on stderr).  *most: the largest
 * number found alive at once. */
static double wait_descendants_gone(double deadline, int *most) {
  struct proc ps[MAX_PROCS];
  for (;;) {
    int n = live_descendants(ps, MAX_PROCS);
    if (n > *most) *most = n;
    if (n == 0) return now_s();
    double left = deadline - now_s();
    if (left <= 0) {
      for (int i = 0; i < n; i++)
        fprintf(stderr, "#   left behind: process %d (%s, state %c, parent %d)\n", (int)ps[i].pid, ps[i].comm,
                ps[i].state, (int)ps[i].ppid);
      return -1;
    }
    struct pollfd pfd[MAX_PROCS];
    int k = 0;
    for (int i = 0; i < n; i++) {
      int fd = (int)syscall(SYS_pidfd_open, ps[i].pid, 0);
      if (fd >= 0) pfd[k++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    /* any one ending wakes us; the next look tells which are left (none opened: ended meanwhile) */
    if (k > 0) poll(pfd, (nfds_t)k, (int)(left * 1000) + 1);
    for (int i = 0; i < k; i++) close(pfd[i].fd);
  }
}

/* ---- the files that must not appear ---- */

/* The sorted names in directory path, as one newline-separated string (malloc'ed). */
static char *dir_listing(const char *path) {
  struct dirent **names;
  int n = scandir(path, &names, NULL, alphasort);
  CHECK(n >= 0);
  size_t cap = 1, len = 0;
  for (int i = 0; i < n; i++) cap += strlen(names[i]->d_name) + 1;
  char *s = malloc(cap);
  CHECK(s != NULL);
  for (int i = 0; i < n; i++) {
    const char *nm = names[i]->d_name;
    if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0) len += (size_t)sprintf(s + len, "%s\n", nm);
    free(names[i]);
  }
  free(names);
  s[len] = '\0';
  return s;
}

/* The user the victim runs as: as root, an unused uid, so that what it leaves in /dev/shm, which every
 * program on the machine shares (other tests of the suite, run at the same time, make named segments there;
 * Open MPI makes its own), is told by its owner; otherwise our own (and another program of ours could then
 * be taken for the victim). */
#define VICTIM_UID 64999
static uid_t victim_uid(void) { return getuid() == 0 ? VICTIM_UID : getuid(); }

/* Each name in `after` that is not in `before` (and, with owner_only, belongs to the victim's user), on
 * stderr; returns how many. */
static int new_entries(const char *dir, const char *before, const char *after, bool owner_only) {
  int found = 0;
  for (const char *p = after; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = (size_t)(nl - p);
    bool old = false;
    for (const char *q = before; *q && !old;) {
      const char *qn = strchr(q, '\n');
      old = (size_t)(qn - q) == len && memcmp(p, q, len) == 0;
      q = qn + 1;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%.*s", dir, (int)len, p);
    if (!old && (!owner_only || (lstat(path, &st) == 0 && st.st_uid == victim_uid()))) {
      fprintf(stderr, "#   left behind: %s\n", path);
      found++;
    }
    p = nl + 1;
  }
  return found;
}

/* ---- a run ---- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Sleeps until CLOCK_MONOTONIC time t (seconds). */
static void pause_until(double t) {
  struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* Reads the victim's next mark ('c' or 'm'), waiting at most timeout_ms (0: not at all).  c is 0 when
 * none came. */
static struct mark read_mark(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  struct mark m = {0, 0};
  if (poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) && read(fd, &m, sizeof m) != (ssize_t)sizeof m)
    m.c = 0;
  return m;
}

struct figures {
  int runs, before_pool, most_procs;
  double max_clean, sum_clean, create_s;
};

/* Starts the victim in dir; returns its pid, with the read end of its pipe in *rd. */
static pid_t start_victim(const char *method, const char *dir, int *rd) {
  int fds[2];
  CHECK(pipe2(fds, O_CLOEXEC) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    char a[16];
    int w = dup(fds[1]); /* without O_CLOEXEC: the helper's end */
    snprintf(a, sizeof a, "%d", w);
    if (w < 0 || chdir(dir) != 0 || setenv("TMPDIR", dir, 1) != 0) _exit(126);
    if (getuid() == 0 && (setgid(VICTIM_UID) != 0 || setuid(VICTIM_UID) != 0)) _exit(126);
    execv(mtest_self(), mtest_helper_argv("pd_victim", method, a, NULL));
    _exit(127);
  }
  close(fds[1]);
  *rd = fds[0];
  return pid;
}

/* One run: start the victim, kill it `delay_us` after its mark ('c': before the pool is made; 'm': once it
 * is made, before the map), check that everything it made ends within CLEAN_LIMIT. */
static void one_run(const char *method, const char *dir, char after, long delay_us, struct figures *f) {
  int rd;
  pid_t victim = start_victim(method, dir, &rd);
  struct mark c = read_mark(rd, 30000), m = {0, 0};
  if (c.c != 'c') {
    int st = 0;
    waitpid(victim, &st, 0);
    mtest_fail(__FILE__, __LINE__, "victim (%s) sent no start mark: status 0x%x", method, st);
  }
  if (after == 'm') {
    m = read_mark(rd, 30000);
    CHECK_INT_EQ(m.c, 'm');
    if (f->create_s == 0) f->create_s = m.t - c.t;
  }
  /* the delay is the test's input, not a wait for an event: counted from the victim's own clock reading */
  pause_until((after == 'm' ? m.t : c.t) + (double)delay_us * 1e-6);
  if (after == 'c' && read_mark(rd, 0).c != 'm') f->before_pool++;
  double t0 = now_s();
  CHECK_INT_EQ(kill(victim, SIGKILL), 0);
  int st;
  CHECK_INT_EQ(waitpid(victim, &st, 0), victim);
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
    mtest_fail(__FILE__, __LINE__, "victim (%s) ended before the kill: status 0x%x", method, st);
  close(rd);
  int most = 0;
  double t = wait_descendants_gone(t0 + CLEAN_LIMIT, &most);
  if (t < 0)
    mtest_fail(__FILE__, __LINE__,
               "%s, killed %ld us after '%c': processes still alive %.1f s after the kill", method, delay_us,
               after, CLEAN_LIMIT);
  while (waitpid(-1, &st, 0) > 0 || errno == EINTR) { /* the orphans came to this process: reap them */
  }
  if (most > f->most_procs) f->most_procs = most;
  if (t - t0 > f->max_clean) f->max_clean = t - t0;
  f->sum_clean += t - t0;
  f->runs++;
}

/* Runs runs_per_test runs of the method, killed at delays drawn from the seed; checks the directory and
 * /dev/shm; prints the figures. */
static void parent_death(const char *method, bool mid_map) {
  uint64_t s = mtest_seed();
  char dir[] = "/tmp/mproc-parent-death-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  CHECK_INT_EQ(chown(dir, victim_uid(), (gid_t)-1), 0);
  char *shm_before = dir_listing("/dev/shm");
  struct figures f = {0};
  long window_us = MAP_WINDOW_US;
  if (!mid_map) {
    /* the first run measures how long making the pool takes; the others are killed within that time and
     * a quarter more, most of them before the pool is made */
    one_run(method, dir, 'm', 0, &f);
    window_us = (long)(f.create_s * 1.25e6) + 1;
  }
  while (f.runs < runs_per_test) {
    long delay = (long)(rng_next(&s) % (uint64_t)window_us);
    one_run(method, dir, mid_map ? 'm' : 'c', delay, &f);
  }
  char *tmp_after = dir_listing(dir), *shm_after = dir_listing("/dev/shm");
  int files = new_entries(dir, "", tmp_after, false) + new_entries("/dev/shm", shm_before, shm_after, true);
  printf(
      "# %s, killed %s: %d runs (%d before the pool was made), kill window %.1f ms, up to %d processes "
      "after a kill, all ended within %.1f ms at most (mean %.1f ms); files left: %d\n",
      method, mid_map ? "mid-map" : "while making the pool", f.runs, f.before_pool, (double)window_us / 1e3,
      f.most_procs, f.max_clean * 1e3, f.sum_clean / f.runs * 1e3, files);
  CHECK_INT_EQ(files, 0);
  free(tmp_after);
  free(shm_after);
  free(shm_before);
  CHECK_INT_EQ(rmdir(dir), 0);
}

MTEST_TIMEOUT(fork_caller_killed_making_the_pool, 120) { parent_death("fork", false); }
MTEST_TIMEOUT(fork_caller_killed_mid_map, 120) { parent_death("fork", true); }
MTEST_TIMEOUT(forkserver_caller_killed_making_the_pool, 120) { parent_death("forkserver", false); }
MTEST_TIMEOUT(forkserver_caller_killed_mid_map, 120) { parent_death("forkserver", true); }
MTEST_TIMEOUT(exec_caller_killed_making_the_pool, 120) { parent_death("exec", false); }
MTEST_TIMEOUT(exec_caller_killed_mid_map, 120) { parent_death("exec", true); }
/* no other process: what is checked is that none appears, and the files */
MTEST(thread_caller_killed_mid_map) { parent_death("thread", true); }
MTEST(serial_caller_killed_mid_map) { parent_death("serial", true); }

static const char *opt_runs(const char *v) {
  runs_per_test = atoi(v);
  if (runs_per_test < 1) {
    fprintf(stderr, "--runs: at least 1\n");
    exit(2);
  }
  return NULL;
}

__attribute__((constructor)) static void register_options(void) { mtest_register_option("--runs", opt_runs); }
