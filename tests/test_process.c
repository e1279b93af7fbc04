/* test_process.c: mproc_process: start, join, exit codes, signals, names, daemons, parent death. */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

static int return_arg_byte(const void *arg, size_t len) { return len ? *(const unsigned char *)arg : 99; }

static int sleep_forever(const void *arg, size_t len) {
  (void)arg, (void)len;
  for (;;) pause();
  return 0;
}

static int crash_segv(const void *arg, size_t len) {
  (void)arg, (void)len;
  raise(SIGSEGV);
  return 0;
}

static int do_abort(const void *arg, size_t len) {
  (void)arg, (void)len;
  abort();
}

/* Writes its name and argument bytes back through the pipe whose write end is the first int of arg. */
static int echo_name(const void *arg, size_t len) {
  int fd;
  memcpy(&fd, arg, sizeof fd);
  const char *name = mproc_current_process_name();
  if (write(fd, name, strlen(name)) < 0) return 1;
  if (write(fd, (const char *)arg + sizeof fd, len - sizeof fd) < 0) return 1;
  return 0;
}

static mproc_process *start(mproc_process_fn fn, const void *arg, size_t len, const mproc_process_opts *o) {
  mproc_process *p = NULL;
  CHECK_OK(mproc_process_start(&p, fn, arg, len, o));
  CHECK(p != NULL);
  return p;
}

MTEST(start_join_exit_code) {
  unsigned char code = 42;
  mproc_process *p = start(return_arg_byte, &code, 1, NULL);
  CHECK_INT_CMP(mproc_process_pid(p), >, 0);
  CHECK_INT_CMP(mproc_process_pid(p), !=, getpid());
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  mproc_exit_status st;
  CHECK_OK(mproc_process_exit_status(p, &st));
  CHECK_INT_EQ(st.state, MPROC_PROCESS_EXITED);
  CHECK_INT_EQ(st.exit_code, 42);
  CHECK_INT_EQ(st.signal, 0);
  int code_out = -100;
  CHECK_OK(mproc_process_exitcode(p, &code_out));
  CHECK_INT_EQ(code_out, 42);
  CHECK_INT_EQ(mproc_process_is_alive(p), 0);
  /* joining again returns at once */
  CHECK_OK(mproc_process_join(p, 0));
  CHECK_OK(mproc_process_destroy(p));
}

MTEST(argument_bytes_are_copied) {
  int fds[2];
  CHECK(pipe2(fds, O_CLOEXEC) == 0);
  char arg[sizeof(int) + 6];
  memcpy(arg, &fds[1], sizeof(int));
  memcpy(arg + sizeof(int), "hello!", 6);
  mproc_process *p = start(echo_name, arg, sizeof arg, &(mproc_process_opts){.name = "worker-7"});
  memset(arg, 0, sizeof arg); /* the child has its own copy */
  close(fds[1]);
  CHECK_STR_EQ(mproc_process_name(p), "worker-7");
  char buf[64] = {0};
  size_t got = 0;
  ssize_t r;
  while ((r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
  close(fds[0]);
  CHECK_STR_EQ(buf, "worker-7hello!");
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  int code = -1;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 0);
  CHECK_OK(mproc_process_destroy(p));
}

MTEST(default_names_count_up) {
  CHECK_STR_EQ(mproc_current_process_name(), "MainProcess");
  unsigned char c = 0;
  mproc_process *a = start(return_arg_byte, &c, 1, NULL);
  mproc_process *b = start(return_arg_byte, &c, 1, NULL);
  CHECK(strncmp(mproc_process_name(a), "Process-", 8) == 0);
  int na = atoi(mproc_process_name(a) + 8), nb = atoi(mproc_process_name(b) + 8);
  CHECK_INT_EQ(nb, na + 1);
  CHECK_OK(mproc_process_join(a, MPROC_FOREVER));
  CHECK_OK(mproc_process_join(b, MPROC_FOREVER));
  CHECK_OK(mproc_process_destroy(a));
  CHECK_OK(mproc_process_destroy(b));
}

MTEST(no_argument_gives_null) {
  mproc_process *p = start(return_arg_byte, NULL, 0, NULL);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  int code = 0;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 99);
  CHECK_OK(mproc_process_destroy(p));
}

MTEST(join_timeout_on_sleeping_process) {
  mproc_process *p = start(sleep_forever, NULL, 0, NULL);
  double t0 = mproc__plat_now();
  CHECK_ERR(mproc_process_join(p, 0.05), MPROC_ETIMEDOUT);
  CHECK(mproc__plat_now() - t0 >= 0.045);
  CHECK_ERR(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
  CHECK_INT_EQ(mproc_process_is_alive(p), 1);
  int code;
  CHECK_ERR(mproc_process_exitcode(p, &code), MPROC_ESTATE);
  mproc_exit_status st;
  CHECK_OK(mproc_process_exit_status(p, &st));
  CHECK_INT_EQ(st.state, MPROC_PROCESS_RUNNING);
  /* a running process cannot be destroyed */
  CHECK_ERR(mproc_process_destroy(p), MPROC_EBUSY);
  CHECK_OK(mproc_process_terminate(p));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, -SIGTERM);
  CHECK_OK(mproc_process_destroy(p));
}

MTEST(kill_and_signals) {
  mproc_process *p = start(sleep_forever, NULL, 0, NULL);
  CHECK_OK(mproc_process_kill(p));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  mproc_exit_status st;
  CHECK_OK(mproc_process_exit_status(p, &st));
  CHECK_INT_EQ(st.state, MPROC_PROCESS_SIGNALED);
  CHECK_INT_EQ(st.signal, SIGKILL);
  CHECK_INT_EQ(st.exit_code, -1);
  /* signalling a process that has ended is a no-op, not an error */
  CHECK_OK(mproc_process_terminate(p));
  CHECK_OK(mproc_process_kill(p));
  CHECK_OK(mproc_process_destroy(p));

  p = start(sleep_forever, NULL, 0, NULL);
  CHECK_OK(mproc_process_send_signal(p, SIGUSR1));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  int code = 0;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, -SIGUSR1);
  CHECK_OK(mproc_process_destroy(p));
}

MTEST(crash_and_abort_report_their_signal) {
  mproc_process *p = start(crash_segv, NULL, 0, NULL);
  mproc_process *q = start(do_abort, NULL, 0, NULL);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_join(q, MPROC_FOREVER));
  int code = 0;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, -SIGSEGV);
  CHECK_OK(mproc_process_exitcode(q, &code));
  CHECK_INT_EQ(code, -SIGABRT);
  CHECK_OK(mproc_process_destroy(p));
  CHECK_OK(mproc_process_destroy(q));
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig, got_usr1 = 1; }

static int report_handler(const void *arg, size_t len) {
  (void)arg, (void)len;
  struct sigaction sa;
  sigaction(SIGUSR1, NULL, &sa);
  return sa.sa_handler == SIG_DFL ? 0 : 1;
}

MTEST(child_signal_handlers_are_reset) {
  struct sigaction sa = {.sa_handler = on_usr1};
  sigaction(SIGUSR1, &sa, NULL);
  mproc_process *p = start(report_handler, NULL, 0, NULL);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  int code = -1;
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 0);
  CHECK_OK(mproc_process_destroy(p));
}

/* Starts a child that sleeps, reports its pid on fd argv[1], then waits to be killed. */
MTEST_HELPER(parent_with_child) {
  (void)argc;
  int fd = atoi(argv[1]);
  mproc_process *p = NULL;
  if (mproc_process_start(&p, sleep_forever, NULL, 0, NULL) != 0) return 3;
  int pid = mproc_process_pid(p);
  if (write(fd, &pid, sizeof pid) != sizeof pid) return 4;
  for (;;) pause();
}

MTEST(child_dies_when_parent_is_killed) {
  int fds[2];
  CHECK(pipe2(fds, 0) == 0); /* the write end is inherited by the helper */
  char fdstr[16];
  snprintf(fdstr, sizeof fdstr, "%d", fds[1]);
  pid_t parent = fork();
  CHECK(parent >= 0);
  if (parent == 0) {
    execv(mtest_self(), mtest_helper_argv("parent_with_child", fdstr, NULL, NULL));
    _exit(127);
  }
  close(fds[1]);
  int child = 0;
  CHECK_INT_EQ(read(fds[0], &child, sizeof child), (long)sizeof child);
  close(fds[0]);
  int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
  CHECK(pidfd >= 0);
  CHECK(kill(parent, SIGKILL) == 0);
  int st;
  CHECK_INT_EQ(waitpid(parent, &st, 0), parent);
  /* the grandchild must be gone within a second; it is orphaned to us (a subreaper) */
  struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
  CHECK_INT_EQ(poll(&pfd, 1, 1000), 1);
  close(pidfd);
  CHECK_INT_EQ(waitpid(child, &st, 0), child);
  CHECK(WIFSIGNALED(st));
  CHECK_INT_EQ(WTERMSIG(st), SIGKILL);
}

/* At normal exit a daemon child is terminated, a non-daemon child is waited for.  The helper starts a
 * daemon that sleeps forever and a normal child that waits for a byte on a pipe, reports both pids, then
 * returns from main. */
static int wait_for_byte(const void *arg, size_t len) {
  (void)len;
  int fd;
  memcpy(&fd, arg, sizeof fd);
  char c;
  return read(fd, &c, 1) == 1 ? 7 : 8;
}

MTEST_HELPER(exit_with_children) {
  (void)argc;
  int report = atoi(argv[1]), gate = atoi(argv[2]);
  mproc_process *d = NULL, *n = NULL;
  if (mproc_process_start(&d, sleep_forever, NULL, 0, &(mproc_process_opts){.daemon = 1}) != 0) return 3;
  if (mproc_process_start(&n, wait_for_byte, &gate, sizeof gate, NULL) != 0) return 3;
  int pids[2] = {mproc_process_pid(d), mproc_process_pid(n)};
  if (write(report, pids, sizeof pids) != sizeof pids) return 4;
  close(report);
  return 0; /* exit() runs mproc's handler: SIGTERM the daemon, wait for the other */
}

MTEST(daemon_terminated_and_others_awaited_at_exit) {
  int rep[2], gate[2];
  CHECK(pipe2(rep, 0) == 0 && pipe2(gate, 0) == 0);
  char a[16], b[16];
  snprintf(a, sizeof a, "%d", rep[1]);
  snprintf(b, sizeof b, "%d", gate[0]);
  pid_t parent = fork();
  CHECK(parent >= 0);
  if (parent == 0) {
    close(rep[0]);
    close(gate[1]);
    execv(mtest_self(), mtest_helper_argv("exit_with_children", a, b, NULL));
    _exit(127);
  }
  close(rep[1]);
  close(gate[0]);
  int pids[2];
  CHECK_INT_EQ(read(rep[0], pids, sizeof pids), (long)sizeof pids);
  close(rep[0]);
  int pfd_parent = (int)syscall(SYS_pidfd_open, parent, 0);
  int pfd_daemon = (int)syscall(SYS_pidfd_open, pids[0], 0);
  CHECK(pfd_parent >= 0 && pfd_daemon >= 0);
  /* the daemon ends (SIGTERM from the exiting parent) while the parent still waits for the other child */
  struct pollfd p = {.fd = pfd_daemon, .events = POLLIN};
  CHECK_INT_EQ(poll(&p, 1, 10000), 1);
  p = (struct pollfd){.fd = pfd_parent, .events = POLLIN};
  CHECK_INT_EQ(poll(&p, 1, 0), 0); /* parent still alive, waiting for the non-daemon child */
  CHECK_INT_EQ(write(gate[1], "x", 1), 1);
  close(gate[1]);
  int st;
  CHECK_INT_EQ(waitpid(parent, &st, 0), parent);
  CHECK(WIFEXITED(st));
  CHECK_INT_EQ(WEXITSTATUS(st), 0);
  close(pfd_parent);
  close(pfd_daemon);
}

MTEST(reaped_elsewhere_is_lost_not_hung) {
  unsigned char c = 5;
  mproc_process *p = start(return_arg_byte, &c, 1, NULL);
  int st;
  CHECK_INT_EQ(waitpid(mproc_process_pid(p), &st, 0), mproc_process_pid(p));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  mproc_exit_status es;
  CHECK_OK(mproc_process_exit_status(p, &es));
  CHECK_INT_EQ(es.state, MPROC_PROCESS_LOST);
  int code;
  CHECK_ERR(mproc_process_exitcode(p, &code), MPROC_ESTATE);
  CHECK_OK(mproc_process_destroy(p));
}

static mproc_process *shared_handle;
static int join_other(const void *arg, size_t len) {
  (void)arg, (void)len;
  int r = mproc_process_join(shared_handle, 0);
  int k = mproc_process_kill(shared_handle);
  return (r == MPROC_ECHILD && k == MPROC_ECHILD) ? 0 : 1;
}
MTEST(join_from_wrong_process) {
  /* a sibling's inherited handle: the child is not its parent */
  shared_handle = start(sleep_forever, NULL, 0, NULL);
  mproc_process *q = start(join_other, NULL, 0, NULL);
  CHECK_OK(mproc_process_join(q, MPROC_FOREVER));
  int code = -1;
  CHECK_OK(mproc_process_exitcode(q, &code));
  CHECK_INT_EQ(code, 0);
  CHECK_OK(mproc_process_destroy(q));
  CHECK_OK(mproc_process_kill(shared_handle));
  CHECK_OK(mproc_process_join(shared_handle, MPROC_FOREVER));
  CHECK_OK(mproc_process_destroy(shared_handle));
  shared_handle = NULL;
}

static int return_zero(const void *arg, size_t len) {
  (void)arg, (void)len;
  return 0;
}

MTEST(bad_input) {
  mproc_process *p = NULL;
  CHECK_ERR(mproc_process_start(NULL, return_arg_byte, NULL, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_start(&p, NULL, NULL, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_start(&p, return_arg_byte, NULL, 4, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_start(&p, return_arg_byte, NULL, 0, &(mproc_process_opts){.start_method = 77}),
            MPROC_EINVAL);
  char long_name[300];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  CHECK_ERR(mproc_process_start(&p, return_arg_byte, NULL, 0, &(mproc_process_opts){.name = long_name}),
            MPROC_EINVAL);
  CHECK(p == NULL);
  CHECK_ERR(mproc_process_join(NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_process_is_alive(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_terminate(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_kill(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_send_signal(NULL, SIGTERM), MPROC_EINVAL);
  CHECK_ERR(mproc_process_pid(NULL), MPROC_EINVAL);
  CHECK(mproc_process_name(NULL) == NULL);
  mproc_exit_status st;
  CHECK_ERR(mproc_process_exit_status(NULL, &st), MPROC_EINVAL);
  int code;
  CHECK_ERR(mproc_process_exitcode(NULL, &code), MPROC_EINVAL);
  CHECK_OK(mproc_process_destroy(NULL));

  p = start(return_zero, NULL, 0, NULL);
  CHECK_ERR(mproc_process_join(p, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_process_send_signal(p, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_process_send_signal(p, 100000), MPROC_EINVAL);
  CHECK_ERR(mproc_process_exit_status(p, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_exitcode(p, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_destroy(p));
}

static int fail_fork(void) {
  errno = EAGAIN;
  return -1;
}

MTEST(fork_failure_is_reported) {
  mproc__plat_sys.fork = (pid_t(*)(void))fail_fork;
  mproc_process *p = NULL;
  CHECK_ERR(mproc_process_start(&p, return_arg_byte, NULL, 0, NULL), MPROC_EAGAIN);
  mproc__plat_syscalls_reset();
  CHECK(p == NULL);
}

static int fail_after;
static void *failing_malloc(size_t n) { return fail_after-- > 0 ? malloc(n) : NULL; }
static void *failing_calloc(size_t a, size_t b) { return fail_after-- > 0 ? calloc(a, b) : NULL; }

MTEST(allocation_failure_is_reported) {
  for (int k = 0; k < 2; k++) {
    fail_after = k;
    CHECK_OK(mproc_replace_allocator(failing_malloc, realloc, failing_calloc, free));
    mproc_process *p = NULL;
    CHECK_ERR(mproc_process_start(&p, return_arg_byte, NULL, 0, NULL), MPROC_ENOMEM);
    CHECK(p == NULL);
    CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  }
}

MTEST(many_processes) {
  enum { N = 32 };
  mproc_process *ps[N];
  for (int i = 0; i < N; i++) {
    unsigned char c = (unsigned char)i;
    ps[i] = start(return_arg_byte, &c, 1, NULL);
  }
  for (int i = 0; i < N; i++) {
    CHECK_OK(mproc_process_join(ps[i], MPROC_FOREVER));
    int code = -1;
    CHECK_OK(mproc_process_exitcode(ps[i], &code));
    CHECK_INT_EQ(code, i);
    CHECK_OK(mproc_process_destroy(ps[i]));
  }
}

/* ---- what a child inherits ---- */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static int exit_with_fd_count(const void *arg, size_t len) {
  (void)arg, (void)len;
  return count_fds();
}

/* The parent holds a pidfd per child it has not joined; a later child must not inherit them. */
MTEST(children_do_not_inherit_their_siblings_pidfds) {
  mproc_process *p[4];
  int first = -1;
  for (int k = 0; k < 4; k++) CHECK_OK(mproc_process_start(&p[k], exit_with_fd_count, NULL, 0, NULL));
  for (int k = 0; k < 4; k++) {
    int code = -1;
    CHECK_OK(mproc_process_join(p[k], MPROC_FOREVER));
    CHECK_OK(mproc_process_exitcode(p[k], &code));
    if (k == 0) first = code;
    CHECK_INT_CMP(code, >, 0);
    CHECK_INT_EQ(code, first); /* child k had k more: its elder siblings' pidfds */
    CHECK_OK(mproc_process_destroy(p[k]));
  }
}

static int atexit_fd = -1;
static void parent_handler(void) {
  if (atexit_fd >= 0 && write(atexit_fd, "P", 1) < 0) _exit(90);
}
static void child_handler(void) {
  if (atexit_fd >= 0 && write(atexit_fd, "C", 1) < 0) _exit(91);
}
static int register_and_return(const void *arg, size_t len) {
  (void)arg, (void)len;
  atexit(child_handler);
  return 3;
}
static int register_and_exit(const void *arg, size_t len) {
  (void)arg, (void)len;
  atexit(child_handler);
  exit(4);
}

/* The documented rule (docs/processes.md): a child ends with _exit() once its function returns, so neither
 * the handlers it inherited from its parent nor the ones it registered with atexit() run; a child that
 * calls exit() itself runs them all, its own first. */
MTEST(atexit_handlers_do_not_run_in_a_child_that_returns) {
  int fds[2];
  CHECK_INT_EQ(pipe(fds), 0);
  atexit_fd = fds[1];
  static bool registered;
  if (!registered) registered = atexit(parent_handler) == 0;
  CHECK(registered);
  mproc_process *p;
  int code = -1;
  CHECK_OK(mproc_process_start(&p, register_and_return, NULL, 0, NULL));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 3);
  CHECK_OK(mproc_process_destroy(p));
  CHECK_OK(mproc_process_start(&p, register_and_exit, NULL, 0, NULL));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 4);
  CHECK_OK(mproc_process_destroy(p));
  atexit_fd = -1;
  close(fds[1]);
  char buf[8] = {0};
  CHECK_INT_EQ(read(fds[0], buf, sizeof buf), 2);
  CHECK_STR_EQ(buf, "CP");
  close(fds[0]);
}

static int sleep_50ms_then_exit(const void *arg, size_t len) {
  (void)arg, (void)len;
  nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
  return 6;
}

MTEST(join_with_huge_timeouts_waits_forever) {
  const double ts[] = {1e300, DBL_MAX, INFINITY};
  for (size_t k = 0; k < 3; k++) {
    mproc_process *p;
    int code = -1;
    CHECK_OK(mproc_process_start(&p, sleep_50ms_then_exit, NULL, 0, NULL));
    CHECK_OK(mproc_process_join(p, ts[k]));
    CHECK_OK(mproc_process_exitcode(p, &code));
    CHECK_INT_EQ(code, 6);
    CHECK_OK(mproc_process_destroy(p));
  }
}
