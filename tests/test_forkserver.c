/* test_forkserver.c: pools whose workers come from the fork server of mproc_init(). */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "face/face.h"

static int global_value;

static int read_global(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  return mproc_task_return(t, &global_value, sizeof global_value);
}

static int square(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  if (n == -1) raise(SIGSEGV);
  if (n == -2)
    for (;;) pause();
  int sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

static int report_pid_process(const void *arg, size_t len) {
  (void)arg, (void)len;
  return 0;
}

MTEST(start_method_rules) {
  mproc_pool *p;
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.start_method = MPROC_START_FORKSERVER}), MPROC_ESTATE);
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.start_method = 9}), MPROC_EINVAL);
  mproc_process *proc;
  CHECK_ERR(mproc_process_start(&proc, report_pid_process, NULL, 0,
                                &(mproc_process_opts){.start_method = MPROC_START_FORKSERVER}),
            MPROC_EINVAL); /* processes are forked directly */
  CHECK_OK(mproc_init(NULL, NULL));
  CHECK_ERR(mproc_init(NULL, NULL), MPROC_EALREADY);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
  CHECK(mproc__template_foreign(&p->eng)); /* the default after mproc_init */
  mproc_pool_destroy(p);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_FORK}));
  CHECK(!mproc__template_foreign(&p->eng));
  mproc_pool_destroy(p);
  mproc_shutdown();
  mproc_shutdown(); /* harmless twice */
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.start_method = MPROC_START_FORKSERVER}), MPROC_ESTATE);
}

MTEST(workers_see_the_program_as_at_init) {
  global_value = 1;
  CHECK_OK(mproc_init(NULL, NULL));
  global_value = 2; /* after init, before the pools */
  mproc_pool *fs, *fk;
  CHECK_OK(mproc_pool_create(&fs, &(mproc_pool_opts){.workers = 1, .start_method = MPROC_START_FORKSERVER}));
  CHECK_OK(mproc_pool_create(&fk, &(mproc_pool_opts){.workers = 1, .start_method = MPROC_START_FORK}));
  int v = 0;
  CHECK_OK(mproc_pool_apply(fs, read_global, NULL, 0, &v, sizeof v, NULL));
  CHECK_INT_EQ(v, 1);
  CHECK_OK(mproc_pool_apply(fk, read_global, NULL, 0, &v, sizeof v, NULL));
  CHECK_INT_EQ(v, 2);
  mproc_pool_destroy(fs);
  mproc_pool_destroy(fk);
  mproc_shutdown();
}

MTEST(forkserver_pool_semantics) {
  CHECK_OK(mproc_init(NULL, NULL));
  /* a caller that has grown after init: the pool's start does not copy it */
  size_t big = 64u << 20;
  char *mem = malloc(big);
  CHECK(mem != NULL);
  memset(mem, 1, big);
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .task_timeout = 0.3, .initializer = NULL}));
  CHECK(mproc__template_foreign(&p->eng));
  enum { N = 5000 };
  static int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i % 1000;
  in[100] = -1;
  in[2000] = -2;
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){.on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes}, &rep),
            MPROC_ECRASHED);
  CHECK_INT_EQ(rep.failed, 2);
  CHECK_INT_EQ(codes[100], MPROC_ECRASHED);
  CHECK_INT_EQ(codes[2000], MPROC_ETASKTIMEOUT);
  for (int i = 0; i < N; i++)
    if (i != 100 && i != 2000) CHECK_INT_EQ(out[i], in[i] * in[i]);
  mproc_future *f;
  int n = 12;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  const void *data;
  CHECK_OK(mproc_future_result(f, MPROC_FOREVER, &data, NULL));
  CHECK_INT_EQ(*(const int *)data, 144);
  mproc_future_release(f);
  /* the template dies: tasks are lost, not hung */
  CHECK(kill(mproc__template_pid(&p->eng), SIGKILL) == 0);
  n = -2;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, &(mproc_submit_opts){.timeout = 100}, &f));
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ELOST);
  mproc_future_release(f);
  mproc_pool_destroy(p);
  free(mem);
  mproc_shutdown();
}

/* A template from the server dies in the fork of a worker: its orphans come to the caller, a subreaper,
 * past the server, which is not one.  The server itself is forked before the test's doom is set. */
static mproc_pool *init_then_one_worker_pool(void) {
  CHECK_OK(mproc_init(NULL, NULL));
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1}));
  CHECK(mproc__template_foreign(&p->eng));
  return p;
}

MTEST(template_killed_in_a_fork_leaves_no_orphan) {
  mtest_template_dies_in_a_fork(init_then_one_worker_pool, false);
  mproc_shutdown();
}

/* The fork server is forked by the thread that calls mproc_init(); it lasts as long as the program's
 * process, not that thread (held until the thread has ended: see mtest_in_thread_that_ends). */
static void init_server(void *unused) {
  (void)unused;
  CHECK_OK(mproc_init(NULL, NULL));
}

MTEST(server_outlives_the_thread_that_started_it) {
  mtest_in_thread_that_ends(init_server, NULL);
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_FORKSERVER}));
  int x = 7, r = 0;
  CHECK_OK(mproc_pool_apply(p, square, &x, sizeof x, &r, sizeof r, NULL));
  CHECK_INT_EQ(r, 49);
  mproc_pool_destroy(p);
  mproc_shutdown();
}

MTEST_HELPER(init_pool_then_wait) {
  (void)argc;
  int fd = atoi(argv[1]);
  if (mproc_init(NULL, NULL) != 0) return 2;
  mproc_pool *p;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}) != 0) return 3;
  return mtest_report_pool_pids(p, fd);
}

MTEST(everything_dies_with_the_caller) {
  mtest_check_die_with_caller("init_pool_then_wait", 9, 1000); /* the template and 8 workers' pids */
}
