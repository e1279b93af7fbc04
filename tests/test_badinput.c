/* test_badinput.c: every public function called with bad input: NULL, zero, negative, huge (SIZE_MAX,
 * INT_MAX, 1e300), NaN, infinite, and in the wrong state (after close, twice, on a released object where its
 * contract says what happens).  Each call must return its documented code; none may crash, abort, hang or
 * leak (each row runs as its own test, in its own process, with a timeout and the harness's leak check).
 *
 * The table at the end has one row per public function.  Its coverage is checked against the list of every
 * MPROC_API function of the headers in include/mproc/, which the build generates with
 * scripts/public-functions.sh (public_functions.inc): a public function without a row fails the test
 * `coverage_of_public_functions`, which names it.  A function that takes no input that could be bad has a row
 * saying why. */
#include <fcntl.h>
#include <float.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mtest.h"

/* Huge sizes must reach the library's own checks, not the sanitizer's allocator, which by default stops
 * the process at an allocation it cannot make instead of returning NULL as malloc does. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* An mproc call that must fail with one of two codes (where the header allows either, as -EINVAL or -ENOMEM
 * for a size no allocation can hold). */
#define CHECK_ERR2(expr, c1, c2)                                                             \
  do {                                                                                       \
    int mt_r_ = (expr), mt_1_ = (c1), mt_2_ = (c2);                                          \
    if (mt_r_ != mt_1_ && mt_r_ != mt_2_)                                                    \
      mtest_fail(__FILE__, __LINE__, "%s returned %d (%s), expected %s or %s", #expr, mt_r_, \
                 mproc_err_name(mt_r_), mproc_err_name(mt_1_), mproc_err_name(mt_2_));       \
  } while (0)

/* Timeouts that wait forever by the contract (negative, beyond any deadline) and ones that poll. */
static const double forever_timeouts[] = {MPROC_FOREVER, -INFINITY, -DBL_MAX, 1e300, DBL_MAX, INFINITY};
#define N_FOREVER (sizeof forever_timeouts / sizeof *forever_timeouts)

static int nop(const void *arg, size_t len, mproc_task *t) { return 0; }

static int return_int(const void *arg, size_t len, mproc_task *t) {
  int v = 42;
  return mproc_task_return(t, &v, sizeof v);
}

static mproc_pool *serial_pool(void) {
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_SERIAL}));
  return p;
}

static mproc_pool *process_pool(void) {
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_PROCESS}));
  return p;
}

/* A gate in shared memory made before a pool, so its workers see it: tasks wait on it until the test opens
 * it (or kills them). */
static mproc_event *gate;
static int wait_gate(const void *arg, size_t len, mproc_task *t) {
  return mproc_event_wait(gate, MPROC_FOREVER);
}

/* ---- core: version, errors, allocator, CPUs ---- */

static void bad_mproc_version(void) { CHECK_INT_EQ(mproc_version(), MPROC_VERSION_HEX); }
static void bad_mproc_version_string(void) { CHECK_STR_EQ(mproc_version_string(), MPROC_VERSION_STRING); }
static void bad_mproc_cpu_count(void) { CHECK_INT_CMP(mproc_cpu_count(), >=, 1); }
static void bad_mproc_current_process_name(void) {
  CHECK_STR_EQ(mproc_current_process_name(), "MainProcess");
}
static void bad_mproc_last_error_message(void) { CHECK(mproc_last_error_message() != NULL); }

static void bad_mproc_strerror(void) {
  const int codes[] = {INT_MIN, INT_MIN + 1, MPROC_ERR_BASE, MPROC_ERR_BASE - 1000, -4096, -1000000,
                       1,       5000,        INT_MAX};
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) CHECK(mproc_strerror(codes[i]) != NULL);
  CHECK_STR_EQ(mproc_strerror(INT_MIN), "unknown error");
  CHECK_STR_EQ(mproc_strerror(INT_MAX), "unknown error");
  CHECK_STR_EQ(mproc_strerror(MPROC_ERR_BASE), "unknown error");
  CHECK_STR_EQ(mproc_strerror(0), "success");
}

static void bad_mproc_err_name(void) {
  const int codes[] = {INT_MIN, INT_MIN + 1, MPROC_ERR_BASE, MPROC_ERR_BASE - 1000, -4096, 1, INT_MAX};
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) CHECK_STR_EQ(mproc_err_name(codes[i]), "UNKNOWN");
  CHECK_STR_EQ(mproc_err_name(0), "OK");
}

static void bad_mproc_replace_allocator(void) {
  CHECK_ERR(mproc_replace_allocator(NULL, NULL, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(malloc, realloc, calloc, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(NULL, realloc, calloc, free), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(malloc, NULL, calloc, free), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(malloc, realloc, NULL, free), MPROC_EINVAL);
  /* Unchanged after the refusals: mproc still allocates and frees. */
  mproc_queue *q;
  CHECK_OK(mproc_queue_create(&q, NULL));
  CHECK_OK(mproc_queue_put(q, "x", 1, 0));
  void *m = NULL;
  size_t len = 0;
  CHECK_OK(mproc_queue_get_alloc(q, &m, &len, 0));
  mproc_free(m);
  mproc_queue_destroy(q);
}

static void bad_mproc_free(void) { mproc_free(NULL); }

/* ---- the fork server ---- */

static void bad_mproc_init(void) {
  /* argc and argv may be NULL; a second call while the server runs: -EALREADY. */
  CHECK_OK(mproc_init(NULL, NULL));
  CHECK_ERR(mproc_init(NULL, NULL), MPROC_EALREADY);
  int argc = 0;
  char **argv = NULL;
  CHECK_ERR(mproc_init(&argc, &argv), MPROC_EALREADY);
  mproc_shutdown();
}

static void bad_mproc_shutdown(void) {
  mproc_shutdown(); /* none runs */
  CHECK_OK(mproc_init(NULL, NULL));
  mproc_shutdown();
  mproc_shutdown(); /* twice */
  /* A forkserver pool after the server stopped: as without mproc_init(). */
  mproc_pool *p = NULL;
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .start_method = MPROC_START_FORKSERVER}),
            MPROC_ESTATE);
  CHECK(p == NULL);
}

/* ---- tasks ---- */

/* Runs in a task (serial pool): the task calls with bad arguments. */
static volatile size_t huge_len = SIZE_MAX; /* hidden from the compiler, which would warn of the memcpy */

static int task_calls(const void *arg, size_t len, mproc_task *t) {
  int bad = 0;
  if (mproc__task_return_slow(t, NULL, 5) != MPROC_EINVAL) bad |= 1;
  if (mproc__task_return_slow(t, "x", SIZE_MAX) != MPROC_ENOMEM) bad |= 2;
  if (mproc_task_return(t, "x", huge_len) != MPROC_ENOMEM) bad |= 4;
  if (mproc_task_return_buffer(t, SIZE_MAX) != NULL) bad |= 8;
  int r = 0;
  if (mproc_task_return(t, &r, sizeof r) != 0) bad |= 32;
  if (bad) return mproc_task_fail(t, MPROC_EINVAL, "bad %d", bad);
  return 0;
}

/* Runs in a map with 4-byte records: a larger result is -EMSGSIZE, no buffer. */
static int task_calls_fixed(const void *arg, size_t len, mproc_task *t) {
  int bad = 0;
  if (mproc__task_return_slow(t, "12345678", 8) != MPROC_EMSGSIZE) bad |= 1;
  if (mproc_task_return(t, "12345678", huge_len) != MPROC_EMSGSIZE) bad |= 2;
  if (mproc_task_return_buffer(t, 5) != NULL) bad |= 4;
  if (mproc_task_return_buffer(t, SIZE_MAX) != NULL) bad |= 8;
  if (mproc_task_return(t, "1234", 4) != 0) bad |= 16;
  return bad ? mproc_task_fail(t, MPROC_EINVAL, "bad %d", bad) : 0;
}

static void run_task_checks(void) {
  mproc_pool *p = serial_pool();
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, task_calls, NULL, 0, NULL, &f));
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_STR_EQ(o.message, "");
  CHECK_OK(mproc_future_error(f, 0));
  mproc_future_release(f);
  int out[3];
  CHECK_OK(mproc_pool_map(p, task_calls_fixed, NULL, 3, 0, out, sizeof *out, NULL, NULL));
  mproc_pool_destroy(p);
}

static void bad_mproc__task_return_slow(void) {
  CHECK_ERR(mproc__task_return_slow(NULL, "x", 1), MPROC_EINVAL);
  mproc_task t = {0}; /* no engine behind it */
  CHECK_ERR(mproc__task_return_slow(&t, "x", 1), MPROC_EINVAL);
  run_task_checks();
}

static void bad_mproc_task_return_buffer(void) {
  CHECK(mproc_task_return_buffer(NULL, 1) == NULL);
  mproc_task t = {0};
  CHECK(mproc_task_return_buffer(&t, 1) == NULL);
  run_task_checks();
}

static void bad_mproc_task_fail(void) {
  /* Outside a task: the code comes back as it would be recorded. */
  CHECK_ERR(mproc_task_fail(NULL, MPROC_EIO, NULL), MPROC_EIO);
  CHECK_ERR(mproc_task_fail(NULL, 0, NULL), MPROC_ETASKFAILED);
  CHECK_ERR(mproc_task_fail(NULL, INT_MAX, "%s", "x"), MPROC_ETASKFAILED);
  mproc_task t = {0};
  CHECK_ERR(mproc_task_fail(&t, INT_MIN, NULL), INT_MIN);
}

static void bad_mproc_task_seed(void) {
  CHECK_INT_EQ(mproc_task_seed(NULL), 0);
  mproc_task t = {.index = INT64_MIN};
  CHECK(mproc_task_seed(&t) == mproc_seed_for(0, INT64_MIN));
}

static void bad_mproc_seed_for(void) {
  CHECK(mproc_seed_for(0, 0) != mproc_seed_for(0, 1));
  CHECK(mproc_seed_for(UINT64_MAX, INT64_MIN) == mproc_seed_for(UINT64_MAX, INT64_MIN));
  (void)mproc_seed_for(UINT64_MAX, INT64_MAX);
  (void)mproc_seed_for(0, -1);
}

/* ---- processes ---- */

static int exit_7(const void *arg, size_t len) { return 7; }
static int sleep_forever(const void *arg, size_t len) {
  pause(); /* until killed */
  return 0;
}

static mproc_process *started(mproc_process_fn fn);
static mproc_queue *small_queue(size_t max_messages);

static void bad_mproc_process_sentinel(void) {
  CHECK_ERR(mproc_process_sentinel(NULL), MPROC_EINVAL);
  mproc_process *p = started(exit_7);
  int fd = mproc_process_sentinel(p);
  if (fd != MPROC_ENOSYS) CHECK_INT_CMP(fd, >=, 0);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_INT_EQ(mproc_process_sentinel(p), fd); /* the same descriptor after join, until destroy */
  mproc_process_destroy(p);
}

static void bad_mproc_wait(void) {
  size_t ready[2];
  CHECK_ERR(mproc_wait(NULL, 1, 0, ready), MPROC_EINVAL);
  mproc_waitable w[2] = {mproc_waitable_fd(-1), mproc_waitable_fd(-5)};
  CHECK_ERR(mproc_wait(w, 0, 0, ready), MPROC_EINVAL);
  CHECK_ERR(mproc_wait(w, (size_t)INT_MAX + 1, 0, ready), MPROC_EINVAL);
  CHECK_ERR(mproc_wait(w, 1, 0, ready), MPROC_EBADF);
  mproc_waitable none = mproc_waitable_process(NULL);
  CHECK_ERR(mproc_wait(&none, 1, 0, ready), MPROC_EINVAL);
  mproc_waitable kind = mproc_waitable_fd(0);
  kind.kind = (mproc_waitable_kind)99;
  CHECK_ERR(mproc_wait(&kind, 1, 0, ready), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  mproc_waitable wq = mproc_waitable_queue(q);
  CHECK_ERR(mproc_wait(&wq, 1, NAN, ready), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_wait(&wq, 1, 0, NULL), 0); /* empty: a poll times out at once */
  CHECK_INT_EQ(mproc_wait(&wq, 1, 1e-300, ready), 0);
  CHECK_OK(mproc_queue_put(q, "x", 1, 0));
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_INT_EQ(mproc_wait(&wq, 1, forever_timeouts[i], ready), 1);
  mproc_queue_destroy(q);
}

static mproc_process *started(mproc_process_fn fn) {
  mproc_process *p = NULL;
  CHECK_OK(mproc_process_start(&p, fn, NULL, 0, NULL));
  return p;
}

/* A process still running, for the calls that must refuse or poll it. */
static void with_running(void (*check)(mproc_process *p)) {
  mproc_process *p = started(sleep_forever);
  check(p);
  CHECK_OK(mproc_process_kill(p));
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_process_join(p, forever_timeouts[i]));
  CHECK_OK(mproc_process_destroy(p));
}

static void bad_mproc_process_start(void) {
  mproc_process *p = (mproc_process *)&p; /* must stay untouched on error */
  mproc_process *const untouched = p;
  CHECK_ERR(mproc_process_start(NULL, exit_7, NULL, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_start(&p, NULL, NULL, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_start(&p, exit_7, NULL, 1, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_process_start(&p, exit_7, NULL, SIZE_MAX, NULL), MPROC_EINVAL);
  char name[300];
  memset(name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  CHECK_ERR(mproc_process_start(&p, exit_7, NULL, 0, &(mproc_process_opts){.name = name}), MPROC_EINVAL);
  name[256] = '\0';
  CHECK_ERR(mproc_process_start(&p, exit_7, NULL, 0, &(mproc_process_opts){.name = name}), MPROC_EINVAL);
  const mproc_start_method methods[] = {MPROC_START_FORKSERVER, MPROC_START_EXEC, (mproc_start_method)4,
                                        (mproc_start_method)-1, (mproc_start_method)INT_MAX};
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    CHECK_ERR(mproc_process_start(&p, exit_7, NULL, 0, &(mproc_process_opts){.start_method = methods[i]}),
              MPROC_EINVAL);
  CHECK(p == untouched);
  /* An argument no memory can hold. */
  /* Any nonzero daemon flag, a name of exactly 255 bytes: accepted. */
  name[255] = '\0';
  CHECK_OK(mproc_process_start(&p, exit_7, NULL, 0, &(mproc_process_opts){.name = name, .daemon = INT_MIN}));
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(mproc_process_destroy(p));
}

static void join_running(mproc_process *p) {
  CHECK_ERR(mproc_process_join(p, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_process_join(p, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_process_join(p, 1e-300), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_process_join(p, -0.0), MPROC_ETIMEDOUT); /* -0.0 == 0: a poll, not a negative timeout */
}

static void bad_mproc_process_join(void) {
  CHECK_ERR(mproc_process_join(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_process_join(NULL, NAN), MPROC_EINVAL);
  with_running(join_running);
  mproc_process *p = started(exit_7);
  CHECK_ERR(mproc_process_join(p, NAN), MPROC_EINVAL);
  CHECK_OK(mproc_process_join(p, INFINITY));
  CHECK_OK(mproc_process_join(p, INFINITY)); /* joined twice: at once */
  CHECK_OK(mproc_process_join(p, 0));
  CHECK_OK(mproc_process_destroy(p));
}

static void alive_running(mproc_process *p) { CHECK_INT_EQ(mproc_process_is_alive(p), 1); }
static void bad_mproc_process_is_alive(void) {
  CHECK_ERR(mproc_process_is_alive(NULL), MPROC_EINVAL);
  with_running(alive_running);
  mproc_process *p = started(exit_7);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_INT_EQ(mproc_process_is_alive(p), 0);
  CHECK_INT_EQ(mproc_process_is_alive(p), 0);
  CHECK_OK(mproc_process_destroy(p));
}

static void signals_running(mproc_process *p) {
  const int bad[] = {0, -1, NSIG, NSIG + 1, 1000, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK_ERR(mproc_process_send_signal(p, bad[i]), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_process_is_alive(p), 1);
}

static void ended_then(int (*send)(mproc_process *)) {
  mproc_process *p = started(exit_7);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_OK(send(p)); /* ended: nothing sent, 0 */
  CHECK_OK(send(p));
  CHECK_OK(mproc_process_destroy(p));
}

static int send_usr1(mproc_process *p) { return mproc_process_send_signal(p, SIGUSR1); }

static void bad_mproc_process_terminate(void) {
  CHECK_ERR(mproc_process_terminate(NULL), MPROC_EINVAL);
  ended_then(mproc_process_terminate);
}
static void bad_mproc_process_kill(void) {
  CHECK_ERR(mproc_process_kill(NULL), MPROC_EINVAL);
  ended_then(mproc_process_kill);
}
static void bad_mproc_process_send_signal(void) {
  CHECK_ERR(mproc_process_send_signal(NULL, SIGTERM), MPROC_EINVAL);
  CHECK_ERR(mproc_process_send_signal(NULL, 0), MPROC_EINVAL);
  with_running(signals_running);
  ended_then(send_usr1);
}

static void status_running(mproc_process *p) {
  mproc_exit_status st;
  CHECK_OK(mproc_process_exit_status(p, &st));
  CHECK_INT_EQ(st.state, MPROC_PROCESS_RUNNING);
  CHECK_ERR(mproc_process_exit_status(p, NULL), MPROC_EINVAL);
  int code = 12345;
  CHECK_ERR(mproc_process_exitcode(p, &code), MPROC_ESTATE);
  CHECK_ERR(mproc_process_exitcode(p, NULL), MPROC_EINVAL);
}

static void bad_mproc_process_exit_status(void) {
  mproc_exit_status st;
  CHECK_ERR(mproc_process_exit_status(NULL, &st), MPROC_EINVAL);
  CHECK_ERR(mproc_process_exit_status(NULL, NULL), MPROC_EINVAL);
  with_running(status_running);
}

static void bad_mproc_process_exitcode(void) {
  int code;
  CHECK_ERR(mproc_process_exitcode(NULL, &code), MPROC_EINVAL);
  CHECK_ERR(mproc_process_exitcode(NULL, NULL), MPROC_EINVAL);
  with_running(status_running);
  mproc_process *p = started(exit_7);
  CHECK_OK(mproc_process_join(p, MPROC_FOREVER));
  CHECK_ERR(mproc_process_exitcode(p, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_process_exitcode(p, &code));
  CHECK_INT_EQ(code, 7);
  CHECK_OK(mproc_process_destroy(p));
}

static void bad_mproc_process_pid(void) { CHECK_ERR(mproc_process_pid(NULL), MPROC_EINVAL); }
static void bad_mproc_process_name(void) { CHECK(mproc_process_name(NULL) == NULL); }

static void destroy_running(mproc_process *p) {
  CHECK_ERR(mproc_process_destroy(p), MPROC_EBUSY);
  CHECK_ERR(mproc_process_destroy(p), MPROC_EBUSY); /* the handle stays valid */
  CHECK_INT_CMP(mproc_process_pid(p), >, 0);
}
static void bad_mproc_process_destroy(void) {
  CHECK_OK(mproc_process_destroy(NULL));
  with_running(destroy_running);
}

/* ---- queues ---- */

static mproc_queue *small_queue(size_t max_messages) {
  mproc_queue *q = NULL;
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.buffer_bytes = 4096, .max_messages = max_messages}));
  return q;
}

static const mproc_queue_opts bad_queue_opts[] = {
    {.buffer_bytes = 1},
    {.buffer_bytes = MPROC_QUEUE_MIN_BUFFER - 1},
    {.buffer_bytes = ((size_t)1 << 40) + 1},
    {.buffer_bytes = SIZE_MAX},
    {.max_message_bytes = MPROC_QUEUE_MAX_MESSAGE + 1},
    {.max_message_bytes = SIZE_MAX},
};
#define N_BAD_QUEUE_OPTS (sizeof bad_queue_opts / sizeof *bad_queue_opts)

static void bad_mproc_queue_size(void) {
  CHECK_INT_EQ(mproc_queue_size(1), 0);
  CHECK_INT_EQ(mproc_queue_size(MPROC_QUEUE_MIN_BUFFER - 1), 0);
  CHECK_INT_EQ(mproc_queue_size(((size_t)1 << 40) + 1), 0);
  CHECK_INT_EQ(mproc_queue_size(SIZE_MAX), 0);
  CHECK_INT_EQ(mproc_queue_size(SIZE_MAX - 63), 0);
  CHECK(mproc_queue_size(0) > 0);
}

static void bad_mproc_queue_init(void) {
  size_t size = mproc_queue_size(4096);
  CHECK(size > 0);
  void *mem = NULL;
  CHECK_INT_EQ(posix_memalign(&mem, 64, size + 64), 0);
  mproc_queue *q = NULL;
  const mproc_queue_opts o = {.buffer_bytes = 4096};
  CHECK_ERR(mproc_queue_init(NULL, mem, size, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, NULL, size, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, (char *)mem + 8, size, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, mem, size - 1, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, mem, 0, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_init(&q, mem, 0, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_QUEUE_OPTS; i++)
    CHECK_ERR(mproc_queue_init(&q, mem, SIZE_MAX, &bad_queue_opts[i]), MPROC_EINVAL);
  CHECK(q == NULL);
  CHECK_OK(mproc_queue_init(&q, mem, size, &o));
  mproc_queue_destroy(q);
  free(mem);
}

static void bad_mproc_queue_create(void) {
  mproc_queue *q = NULL;
  CHECK_ERR(mproc_queue_create(NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_QUEUE_OPTS; i++)
    CHECK_ERR(mproc_queue_create(&q, &bad_queue_opts[i]), MPROC_EINVAL);
  CHECK(q == NULL);
  /* The largest bound by count: accepted (the buffer bounds it by bytes). */
  CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){.max_messages = SIZE_MAX}));
  mproc_queue_destroy(q);
}

static void bad_mproc_queue_destroy(void) { mproc_queue_destroy(NULL); }

static void put_checks(int (*put)(mproc_queue *, const void *, size_t, double), int nowait) {
  mproc_queue *q = small_queue(1);
  CHECK_ERR(put(NULL, "x", 1, 0), MPROC_EINVAL);
  CHECK_ERR(put(q, NULL, 1, 0), MPROC_EINVAL);
  CHECK_ERR(put(q, NULL, SIZE_MAX, 0), MPROC_EINVAL);
  CHECK_ERR(put(q, "x", SIZE_MAX, 0), MPROC_EMSGSIZE);
  CHECK_ERR(put(q, "x", MPROC_QUEUE_DEFAULT_MAX_MESSAGE + 1, 0), MPROC_EMSGSIZE);
  if (!nowait) CHECK_ERR(put(q, "x", 1, NAN), MPROC_EINVAL);
  CHECK_OK(put(q, NULL, 0, 0)); /* an empty message */
  CHECK_ERR(put(q, "x", 1, 0), MPROC_EFULL);
  if (!nowait) {
    CHECK_ERR(put(q, "x", 1, DBL_MIN), MPROC_ETIMEDOUT);
    CHECK_ERR(put(q, "x", 1, -0.0), MPROC_EFULL);
  }
  CHECK_INT_EQ(mproc_queue_qsize(q), 1);
  CHECK_OK(mproc_queue_close(q));
  CHECK_ERR(put(q, "x", 1, 0), MPROC_ECLOSED);
  if (!nowait)
    for (size_t i = 0; i < N_FOREVER; i++) CHECK_ERR(put(q, "x", 1, forever_timeouts[i]), MPROC_ECLOSED);
  mproc_queue_destroy(q);
}

static int put_nowait_as_put(mproc_queue *q, const void *d, size_t len, double timeout) {
  return mproc_queue_put_nowait(q, d, len);
}
static void bad_mproc_queue_put(void) { put_checks(mproc_queue_put, 0); }
static void bad_mproc_queue_put_nowait(void) { put_checks(put_nowait_as_put, 1); }

static void get_checks(int (*get)(mproc_queue *, void *, size_t, size_t *, double), int nowait) {
  mproc_queue *q = small_queue(0);
  char buf[8];
  size_t len = 0;
  CHECK_ERR(get(NULL, buf, sizeof buf, &len, 0), MPROC_EINVAL);
  CHECK_ERR(get(q, buf, sizeof buf, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(get(q, NULL, 1, &len, 0), MPROC_EINVAL);
  CHECK_ERR(get(q, NULL, SIZE_MAX, &len, 0), MPROC_EINVAL);
  if (!nowait) CHECK_ERR(get(q, buf, sizeof buf, &len, NAN), MPROC_EINVAL);
  CHECK_ERR(get(q, buf, sizeof buf, &len, 0), MPROC_EEMPTY);
  if (!nowait) CHECK_ERR(get(q, buf, sizeof buf, &len, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_queue_put(q, "hello", 5, 0));
  CHECK_ERR(get(q, NULL, 0, &len, 0), MPROC_EMSGSIZE);
  CHECK_INT_EQ(len, 5);
  CHECK_ERR(get(q, buf, 4, &len, 0), MPROC_EMSGSIZE);
  CHECK_INT_EQ(len, 5);
  CHECK_OK(get(q, buf, SIZE_MAX, &len, 0)); /* a capacity beyond the buffer: only what is needed is used */
  CHECK_INT_EQ(len, 5);
  if (!nowait)
    for (size_t i = 0; i < N_FOREVER; i++) {
      CHECK_OK(mproc_queue_put(q, "abc", 3, 0));
      CHECK_OK(get(q, buf, sizeof buf, &len, forever_timeouts[i]));
      CHECK_INT_EQ(len, 3);
    }
  CHECK_OK(mproc_queue_put(q, "z", 1, 0));
  CHECK_OK(mproc_queue_close(q));
  CHECK_OK(get(q, buf, sizeof buf, &len, 0)); /* closed: what is left still comes out */
  CHECK_ERR(get(q, buf, sizeof buf, &len, 0), MPROC_ECLOSED);
  if (!nowait)
    for (size_t i = 0; i < N_FOREVER; i++)
      CHECK_ERR(get(q, buf, sizeof buf, &len, forever_timeouts[i]), MPROC_ECLOSED);
  mproc_queue_destroy(q);
}

static int get_nowait_as_get(mproc_queue *q, void *buf, size_t cap, size_t *len, double timeout) {
  return mproc_queue_get_nowait(q, buf, cap, len);
}
static void bad_mproc_queue_get(void) { get_checks(mproc_queue_get, 0); }
static void bad_mproc_queue_get_nowait(void) { get_checks(get_nowait_as_get, 1); }

static void bad_mproc_queue_get_alloc(void) {
  mproc_queue *q = small_queue(0);
  void *m = (void *)&m;
  size_t len = 77;
  CHECK_ERR(mproc_queue_get_alloc(NULL, &m, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(q, NULL, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(q, &m, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, 0), MPROC_EEMPTY);
  CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK(m == (void *)&m && len == 77); /* untouched on error */
  CHECK_OK(mproc_queue_put(q, NULL, 0, 0));
  CHECK_OK(mproc_queue_get_alloc(q, &m, &len, INFINITY));
  CHECK(m != NULL);
  CHECK_INT_EQ(len, 0);
  mproc_free(m);
  CHECK_OK(mproc_queue_close(q));
  CHECK_ERR(mproc_queue_get_alloc(q, &m, &len, 1e300), MPROC_ECLOSED);
  mproc_queue_destroy(q);
}

static void bad_mproc_queue_qsize(void) {
  CHECK_INT_EQ(mproc_queue_qsize(NULL), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  CHECK_OK(mproc_queue_close(q));
  CHECK_INT_EQ(mproc_queue_qsize(q), 0);
  mproc_queue_destroy(q);
}
static void bad_mproc_queue_empty(void) {
  CHECK_ERR(mproc_queue_empty(NULL), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  CHECK_INT_EQ(mproc_queue_empty(q), 1);
  mproc_queue_destroy(q);
}
static void bad_mproc_queue_full(void) {
  CHECK_ERR(mproc_queue_full(NULL), MPROC_EINVAL);
  mproc_queue *q = small_queue(1);
  CHECK_INT_EQ(mproc_queue_full(q), 0);
  CHECK_OK(mproc_queue_put(q, "x", 1, 0));
  CHECK_INT_EQ(mproc_queue_full(q), 1);
  mproc_queue_destroy(q);
}
static void bad_mproc_queue_shutdown(void) {
  CHECK_ERR(mproc_queue_shutdown(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_queue_shutdown(NULL, 1), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  CHECK_OK(mproc_queue_put(q, "x", 1, 0));
  CHECK_OK(mproc_queue_shutdown(q, 0));
  CHECK_OK(mproc_queue_shutdown(q, 0)); /* again: allowed */
  CHECK_ERR(mproc_queue_put(q, "y", 1, 0), MPROC_ESHUTDOWN);
  CHECK_OK(mproc_queue_close(q)); /* after a shutdown: the shutdown wins */
  char c;
  size_t len;
  CHECK_OK(mproc_queue_get(q, &c, 1, &len, 0)); /* drained */
  CHECK_ERR(mproc_queue_get(q, &c, 1, &len, MPROC_FOREVER), MPROC_ESHUTDOWN);
  CHECK_OK(mproc_queue_shutdown(q, INT32_MIN)); /* any nonzero is immediate */
  mproc_queue_destroy(q);
}
static void bad_mproc_queue_close(void) {
  CHECK_ERR(mproc_queue_close(NULL), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  CHECK_OK(mproc_queue_close(q));
  CHECK_OK(mproc_queue_close(q)); /* idempotent */
  mproc_queue_destroy(q);
}
static void bad_mproc_queue_task_done(void) {
  CHECK_ERR(mproc_queue_task_done(NULL), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND);
  CHECK_OK(mproc_queue_put(q, "x", 1, 0));
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND); /* put, not yet taken */
  char c;
  size_t len;
  CHECK_OK(mproc_queue_get(q, &c, 1, &len, 0));
  CHECK_OK(mproc_queue_task_done(q));
  CHECK_ERR(mproc_queue_task_done(q), MPROC_EBOUND);
  CHECK_OK(mproc_queue_join(q, 0));
  mproc_queue_destroy(q);
}
static void bad_mproc_queue_join(void) {
  CHECK_ERR(mproc_queue_join(NULL, 0), MPROC_EINVAL);
  mproc_queue *q = small_queue(0);
  CHECK_ERR(mproc_queue_join(q, NAN), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_queue_join(q, forever_timeouts[i]));
  CHECK_OK(mproc_queue_put(q, "x", 1, 0));
  CHECK_ERR(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_queue_join(q, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_queue_join(q, NAN), MPROC_EINVAL);
  CHECK_OK(mproc_queue_close(q));
  CHECK_ERR(mproc_queue_join(q, 0), MPROC_ETIMEDOUT); /* closed, a task still unfinished */
  mproc_queue_destroy(q);
}

/* ---- pipes ---- */

static void bad_mproc_pipe_create(void) {
  mproc_pipe *a = (mproc_pipe *)&a, *b = (mproc_pipe *)&b;
  CHECK_ERR(mproc_pipe_create(NULL, &b, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_create(&a, NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_create(NULL, NULL, 0), MPROC_EINVAL);
  CHECK(a == (mproc_pipe *)&a && b == (mproc_pipe *)&b);
  const int duplex[] = {INT_MIN, -1, 2, INT_MAX}; /* any nonzero: duplex */
  for (size_t i = 0; i < sizeof duplex / sizeof *duplex; i++) {
    CHECK_OK(mproc_pipe_create(&a, &b, duplex[i]));
    CHECK_OK(mproc_pipe_send(a, "x", 1, 0));
    CHECK_OK(mproc_pipe_send(b, "y", 1, 0));
    mproc_pipe_destroy(a);
    mproc_pipe_destroy(b);
  }
}

static void bad_mproc_pipe_destroy(void) { mproc_pipe_destroy(NULL); }

static void bad_mproc_pipe_send(void) {
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 0)); /* a receives, b sends */
  CHECK_ERR(mproc_pipe_send(NULL, "x", 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_send(b, NULL, 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_send(b, "x", 1, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_send(b, "x", MPROC_PIPE_MAX_MESSAGE + 1, 0), MPROC_EMSGSIZE);
  CHECK_ERR(mproc_pipe_send(b, "x", SIZE_MAX, 0), MPROC_EMSGSIZE);
  CHECK_ERR(mproc_pipe_send(a, "x", 1, 0), MPROC_EBADF); /* the receive-only end */
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_pipe_send(b, "x", 1, forever_timeouts[i]));
  CHECK_OK(mproc_pipe_send(b, NULL, 0, DBL_MIN));
  mproc_pipe_destroy(a);
  /* The other end closed: MPROC_EEOF, and no SIGPIPE ends the process. */
  CHECK_ERR(mproc_pipe_send(b, "x", 1, 0), MPROC_EEOF);
  CHECK_ERR(mproc_pipe_send(b, "x", 1, INFINITY), MPROC_EEOF);
  mproc_pipe_destroy(b);
}

static void recv_checks(int (*recv)(mproc_pipe *, void *, size_t, size_t *, double)) {
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 0));
  char buf[8];
  size_t len = 0;
  CHECK_ERR(recv(NULL, buf, sizeof buf, &len, 0), MPROC_EINVAL);
  CHECK_ERR(recv(a, buf, sizeof buf, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(recv(a, buf, sizeof buf, &len, NAN), MPROC_EINVAL);
  CHECK_ERR(recv(b, buf, sizeof buf, &len, 0), MPROC_EBADF); /* the send-only end */
  CHECK_ERR(recv(a, buf, sizeof buf, &len, 0), MPROC_EEMPTY);
  CHECK_ERR(recv(a, buf, sizeof buf, &len, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_pipe_send(b, "hello", 5, 0));
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_pipe_send(b, "ab", 2, 0));
  CHECK_ERR(recv(a, buf, 4, &len, 0), MPROC_EMSGSIZE); /* does nothing for recv_alloc's adapter */
  CHECK_INT_EQ(len, 5);
  CHECK_OK(recv(a, buf, sizeof buf, &len, 0));
  CHECK_INT_EQ(len, 5);
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(recv(a, buf, sizeof buf, &len, forever_timeouts[i]));
  mproc_pipe_destroy(b);
  CHECK_ERR(recv(a, buf, sizeof buf, &len, 0), MPROC_EEOF);
  CHECK_ERR(recv(a, buf, sizeof buf, &len, INFINITY), MPROC_EEOF);
  mproc_pipe_destroy(a);
}

static int recv_alloc_as_recv(mproc_pipe *p, void *buf, size_t cap, size_t *len, double timeout) {
  if (cap == 4) { /* the EMSGSIZE case of recv: recv_alloc has no capacity */
    *len = 5;
    return MPROC_EMSGSIZE;
  }
  void *m = NULL;
  int r = mproc_pipe_recv_alloc(p, &m, len, timeout);
  mproc_free(m);
  return r;
}

static void bad_mproc_pipe_recv(void) {
  recv_checks(mproc_pipe_recv);
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  size_t len;
  CHECK_ERR(mproc_pipe_recv(a, NULL, 1, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv(a, NULL, SIZE_MAX, &len, 0), MPROC_EINVAL);
  CHECK_OK(mproc_pipe_send(b, "abc", 3, 0));
  CHECK_ERR(mproc_pipe_recv(a, NULL, 0, &len, 0), MPROC_EMSGSIZE);
  CHECK_INT_EQ(len, 3);
  char buf[4];
  CHECK_OK(mproc_pipe_recv(a, buf, SIZE_MAX, &len, 0));
  CHECK_INT_EQ(len, 3);
  mproc_pipe_destroy(a);
  mproc_pipe_destroy(b);
}

static void bad_mproc_pipe_recv_alloc(void) {
  recv_checks(recv_alloc_as_recv);
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 1));
  size_t len;
  void *m;
  CHECK_ERR(mproc_pipe_recv_alloc(a, NULL, &len, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_recv_alloc(a, &m, NULL, 0), MPROC_EINVAL);
  mproc_pipe_destroy(a);
  mproc_pipe_destroy(b);
}

static void bad_mproc_pipe_poll(void) {
  mproc_pipe *a, *b;
  CHECK_OK(mproc_pipe_create(&a, &b, 0));
  CHECK_ERR(mproc_pipe_poll(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_poll(a, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_pipe_poll(b, 0), MPROC_EBADF);
  CHECK_INT_EQ(mproc_pipe_poll(a, 0), 0);
  CHECK_INT_EQ(mproc_pipe_poll(a, DBL_MIN), 0);
  CHECK_OK(mproc_pipe_send(b, "x", 1, 0));
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_INT_EQ(mproc_pipe_poll(a, forever_timeouts[i]), 1);
  mproc_pipe_destroy(b);
  CHECK_INT_EQ(mproc_pipe_poll(a, INFINITY), 1);
  mproc_pipe_destroy(a);
}

/* ---- sync objects ---- */

/* Memory for the _init calls: aligned, and one byte off. */
static _Alignas(64) unsigned char sync_mem[4096];
#define MISALIGNED ((void *)(sync_mem + 1))

static void bad_mproc_lock_size(void) {
  CHECK(mproc_lock_size() > 0 && mproc_lock_size() <= sizeof sync_mem);
}
static void bad_mproc_semaphore_size(void) {
  CHECK(mproc_semaphore_size() > 0 && mproc_semaphore_size() <= sizeof sync_mem);
}
static void bad_mproc_event_size(void) {
  CHECK(mproc_event_size() > 0 && mproc_event_size() <= sizeof sync_mem);
}
static void bad_mproc_condition_size(void) {
  CHECK(mproc_condition_size() > 0 && mproc_condition_size() <= sizeof sync_mem);
}
static void bad_mproc_barrier_size(void) {
  CHECK(mproc_barrier_size() > 0 && mproc_barrier_size() <= sizeof sync_mem);
}

static void bad_mproc_lock_init(void) {
  mproc_lock *l = NULL;
  CHECK_ERR(mproc_lock_init(NULL, sync_mem, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_init(&l, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_init(&l, MISALIGNED, 0), MPROC_EINVAL);
  CHECK(l == NULL);
  CHECK_OK(mproc_lock_init(&l, sync_mem, INT_MIN)); /* any nonzero: recursive */
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_OK(mproc_lock_release(l));
  CHECK_OK(mproc_lock_release(l));
  CHECK_ERR(mproc_lock_release(l), MPROC_EPERM);
}

static void bad_mproc_lock_create(void) {
  CHECK_ERR(mproc_lock_create(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_create(NULL, 1), MPROC_EINVAL);
}

static void bad_mproc_lock_acquire(void) {
  mproc_lock *l;
  CHECK_OK(mproc_lock_create(&l, 0));
  CHECK_ERR(mproc_lock_acquire(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_acquire(NULL, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_acquire(l, NAN), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++) {
    CHECK_OK(mproc_lock_acquire(l, forever_timeouts[i]));
    CHECK_ERR(mproc_lock_acquire(l, forever_timeouts[i]), MPROC_EDEADLK); /* again, same thread */
    CHECK_ERR(mproc_lock_acquire(l, NAN), MPROC_EINVAL);
    CHECK_OK(mproc_lock_release(l));
  }
  mproc_lock_destroy(l);
}

static void bad_mproc_lock_release(void) {
  mproc_lock *l;
  CHECK_OK(mproc_lock_create(&l, 0));
  CHECK_ERR(mproc_lock_release(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_release(l), MPROC_EPERM);
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_OK(mproc_lock_release(l));
  CHECK_ERR(mproc_lock_release(l), MPROC_EPERM); /* twice */
  mproc_lock_destroy(l);
}

static void bad_mproc_lock_consistent(void) {
  mproc_lock *l;
  CHECK_OK(mproc_lock_create(&l, 0));
  CHECK_ERR(mproc_lock_consistent(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_lock_consistent(l), MPROC_EINVAL); /* not held, no dead holder */
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_ERR(mproc_lock_consistent(l), MPROC_EINVAL); /* held, no dead holder */
  CHECK_OK(mproc_lock_release(l));
  mproc_lock_destroy(l);
}

static void bad_mproc_lock_destroy(void) { mproc_lock_destroy(NULL); }

static void bad_mproc_semaphore_init(void) {
  mproc_semaphore *s = NULL;
  CHECK_ERR(mproc_semaphore_init(NULL, sync_mem, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_init(&s, NULL, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_init(&s, MISALIGNED, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_init(&s, sync_mem, 4, 3), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_init(&s, sync_mem, (unsigned)INT32_MAX + 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_init(&s, sync_mem, UINT_MAX, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_init(&s, sync_mem, 0, UINT_MAX), MPROC_EINVAL);
  CHECK(s == NULL);
  CHECK_OK(mproc_semaphore_init(&s, sync_mem, INT32_MAX, 0));
  CHECK_INT_EQ(mproc_semaphore_value(s), INT32_MAX);
}

static void bad_mproc_semaphore_create(void) {
  mproc_semaphore *s = NULL;
  CHECK_ERR(mproc_semaphore_create(NULL, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_create(&s, 2, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_create(&s, UINT_MAX, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_create(&s, 0, UINT_MAX), MPROC_EINVAL);
  CHECK(s == NULL);
}

static void bad_mproc_semaphore_acquire(void) {
  mproc_semaphore *s;
  CHECK_OK(mproc_semaphore_create(&s, 0, 0));
  CHECK_ERR(mproc_semaphore_acquire(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_acquire(s, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_acquire(s, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_semaphore_acquire(s, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_semaphore_release(s, (unsigned)N_FOREVER));
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_semaphore_acquire(s, forever_timeouts[i]));
  CHECK_INT_EQ(mproc_semaphore_value(s), 0);
  mproc_semaphore_destroy(s);
}

static void bad_mproc_semaphore_release(void) {
  mproc_semaphore *s, *bounded;
  CHECK_OK(mproc_semaphore_create(&s, 0, 0));
  CHECK_OK(mproc_semaphore_create(&bounded, 1, 2));
  CHECK_ERR(mproc_semaphore_release(NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_release(s, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_release(s, (unsigned)INT32_MAX + 1), MPROC_EINVAL);
  CHECK_ERR(mproc_semaphore_release(s, UINT_MAX), MPROC_EINVAL);
  CHECK_OK(mproc_semaphore_release(s, INT32_MAX));
  CHECK_ERR(mproc_semaphore_release(s, 1), MPROC_EBOUND); /* no count above INT32_MAX, bounded or not */
  CHECK_INT_EQ(mproc_semaphore_value(s), INT32_MAX);
  CHECK_ERR(mproc_semaphore_release(bounded, 2), MPROC_EBOUND);
  CHECK_OK(mproc_semaphore_release(bounded, 1));
  CHECK_ERR(mproc_semaphore_release(bounded, 1), MPROC_EBOUND);
  CHECK_INT_EQ(mproc_semaphore_value(bounded), 2);
  mproc_semaphore_destroy(s);
  mproc_semaphore_destroy(bounded);
}

static void bad_mproc_semaphore_value(void) { CHECK_ERR(mproc_semaphore_value(NULL), MPROC_EINVAL); }
static void bad_mproc_semaphore_destroy(void) { mproc_semaphore_destroy(NULL); }

static void bad_mproc_event_init(void) {
  mproc_event *e = NULL;
  CHECK_ERR(mproc_event_init(NULL, sync_mem), MPROC_EINVAL);
  CHECK_ERR(mproc_event_init(&e, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_event_init(&e, MISALIGNED), MPROC_EINVAL);
  CHECK(e == NULL);
}
static void bad_mproc_event_create(void) { CHECK_ERR(mproc_event_create(NULL), MPROC_EINVAL); }
static void bad_mproc_event_set(void) {
  CHECK_ERR(mproc_event_set(NULL), MPROC_EINVAL);
  mproc_event *e;
  CHECK_OK(mproc_event_create(&e));
  CHECK_OK(mproc_event_set(e));
  CHECK_OK(mproc_event_set(e)); /* twice */
  CHECK_INT_EQ(mproc_event_is_set(e), 1);
  mproc_event_destroy(e);
}
static void bad_mproc_event_clear(void) {
  CHECK_ERR(mproc_event_clear(NULL), MPROC_EINVAL);
  mproc_event *e;
  CHECK_OK(mproc_event_create(&e));
  CHECK_OK(mproc_event_clear(e)); /* not set */
  CHECK_OK(mproc_event_clear(e));
  CHECK_INT_EQ(mproc_event_is_set(e), 0);
  mproc_event_destroy(e);
}
static void bad_mproc_event_is_set(void) { CHECK_ERR(mproc_event_is_set(NULL), MPROC_EINVAL); }
static void bad_mproc_event_wait(void) {
  mproc_event *e;
  CHECK_OK(mproc_event_create(&e));
  CHECK_ERR(mproc_event_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_event_wait(e, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_event_wait(e, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_event_wait(e, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_event_wait(e, -0.0), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_event_set(e));
  CHECK_ERR(mproc_event_wait(e, NAN), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_event_wait(e, forever_timeouts[i]));
  mproc_event_destroy(e);
}
static void bad_mproc_event_destroy(void) { mproc_event_destroy(NULL); }

static void bad_mproc_condition_init(void) {
  mproc_condition *c = NULL;
  mproc_lock *rlock;
  CHECK_OK(mproc_lock_create(&rlock, 1));
  CHECK_ERR(mproc_condition_init(NULL, sync_mem, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_init(&c, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_init(&c, MISALIGNED, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_init(&c, sync_mem, rlock), MPROC_EINVAL); /* an RLock */
  CHECK(c == NULL);
  mproc_lock_destroy(rlock);
}
static void bad_mproc_condition_create(void) {
  mproc_condition *c = NULL;
  mproc_lock *rlock;
  CHECK_OK(mproc_lock_create(&rlock, 1));
  CHECK_ERR(mproc_condition_create(NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_create(&c, rlock), MPROC_EINVAL);
  CHECK(c == NULL);
  mproc_lock_destroy(rlock);
}
static void bad_mproc_condition_lock(void) { CHECK(mproc_condition_lock(NULL) == NULL); }

static int always(void *user) { return 1; }
static int never(void *user) { return 0; }

static void bad_mproc_condition_wait(void) {
  mproc_condition *c;
  CHECK_OK(mproc_condition_create(&c, NULL));
  mproc_lock *l = mproc_condition_lock(c);
  CHECK_ERR(mproc_condition_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait(c, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait(c, 0), MPROC_EPERM); /* lock not held */
  CHECK_ERR(mproc_condition_wait(c, INFINITY), MPROC_EPERM);
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_ERR(mproc_condition_wait(c, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait(c, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_condition_wait(c, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_lock_release(l)); /* still held after each of those */
  mproc_condition_destroy(c);
}

static void bad_mproc_condition_wait_for(void) {
  mproc_condition *c;
  CHECK_OK(mproc_condition_create(&c, NULL));
  mproc_lock *l = mproc_condition_lock(c);
  CHECK_ERR(mproc_condition_wait_for(NULL, always, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait_for(c, NULL, NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_condition_wait_for(c, always, NULL, NAN), MPROC_EINVAL);
  /* Not held: -EPERM from the wait (as Python, a timeout of 0 or a true predicate does not wait, so it cannot
   * tell). */
  CHECK_ERR(mproc_condition_wait_for(c, never, NULL, 1), MPROC_EPERM);
  CHECK_ERR(mproc_condition_wait_for(c, never, NULL, INFINITY), MPROC_EPERM);
  CHECK_OK(mproc_lock_acquire(l, 0));
  CHECK_ERR(mproc_condition_wait_for(c, never, NULL, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_condition_wait_for(c, never, NULL, DBL_MIN), MPROC_ETIMEDOUT);
  for (size_t i = 0; i < N_FOREVER; i++)
    CHECK_OK(mproc_condition_wait_for(c, always, NULL, forever_timeouts[i]));
  CHECK_OK(mproc_lock_release(l));
  mproc_condition_destroy(c);
}

static void bad_mproc_condition_notify(void) {
  mproc_condition *c;
  CHECK_OK(mproc_condition_create(&c, NULL));
  CHECK_ERR(mproc_condition_notify(NULL, 1), MPROC_EINVAL);
  CHECK_OK(mproc_condition_notify(c, 0));
  CHECK_OK(mproc_condition_notify(c, UINT_MAX));
  CHECK_OK(mproc_condition_notify(c, (unsigned)INT_MAX + 1));
  mproc_condition_destroy(c);
}
static void bad_mproc_condition_notify_all(void) {
  CHECK_ERR(mproc_condition_notify_all(NULL), MPROC_EINVAL);
}
static void bad_mproc_condition_destroy(void) { mproc_condition_destroy(NULL); }

static int failing_action(void *arg) { return 1; }

static void bad_mproc_barrier_init(void) {
  mproc_barrier *b = NULL;
  CHECK_ERR(mproc_barrier_init(NULL, sync_mem, 1, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_init(&b, NULL, 1, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_init(&b, MISALIGNED, 1, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_init(&b, sync_mem, 0, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_init(&b, sync_mem, (unsigned)INT32_MAX + 1, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_init(&b, sync_mem, UINT_MAX, NULL, NULL), MPROC_EINVAL);
  CHECK(b == NULL);
}
static void bad_mproc_barrier_create(void) {
  mproc_barrier *b = NULL;
  CHECK_ERR(mproc_barrier_create(NULL, 1, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_create(&b, 0, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_create(&b, UINT_MAX, NULL, NULL), MPROC_EINVAL);
  CHECK(b == NULL);
}
static void bad_mproc_barrier_wait(void) {
  mproc_barrier *b, *two, *failing;
  CHECK_OK(mproc_barrier_create(&b, 1, NULL, NULL));
  CHECK_OK(mproc_barrier_create(&two, 2, NULL, NULL));
  CHECK_OK(mproc_barrier_create(&failing, 1, failing_action, NULL));
  CHECK_ERR(mproc_barrier_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_barrier_wait(b, NAN), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_barrier_wait(b, forever_timeouts[i]));
  CHECK_ERR(mproc_barrier_wait(two, NAN), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_barrier_broken(two), 0); /* a refused wait breaks nothing */
  CHECK_OK(mproc_barrier_abort(two));
  CHECK_ERR(mproc_barrier_wait(two, INFINITY), MPROC_EBROKEN);
  CHECK_ERR(mproc_barrier_wait(failing, 0), MPROC_EBROKEN);
  CHECK_ERR(mproc_barrier_wait(failing, INFINITY), MPROC_EBROKEN); /* stays broken */
  mproc_barrier_destroy(b);
  mproc_barrier_destroy(two);
  mproc_barrier_destroy(failing);
}
static void bad_mproc_barrier_abort(void) {
  CHECK_ERR(mproc_barrier_abort(NULL), MPROC_EINVAL);
  mproc_barrier *b;
  CHECK_OK(mproc_barrier_create(&b, 2, NULL, NULL));
  CHECK_OK(mproc_barrier_abort(b));
  CHECK_OK(mproc_barrier_abort(b)); /* twice */
  CHECK_INT_EQ(mproc_barrier_broken(b), 1);
  mproc_barrier_destroy(b);
}
static void bad_mproc_barrier_reset(void) {
  CHECK_ERR(mproc_barrier_reset(NULL), MPROC_EINVAL);
  mproc_barrier *b;
  CHECK_OK(mproc_barrier_create(&b, 1, NULL, NULL));
  CHECK_OK(mproc_barrier_reset(b)); /* not broken */
  CHECK_OK(mproc_barrier_abort(b));
  CHECK_OK(mproc_barrier_reset(b));
  CHECK_OK(mproc_barrier_reset(b));
  CHECK_INT_EQ(mproc_barrier_broken(b), 0);
  CHECK_OK(mproc_barrier_wait(b, 0));
  mproc_barrier_destroy(b);
}
static void bad_mproc_barrier_parties(void) { CHECK_ERR(mproc_barrier_parties(NULL), MPROC_EINVAL); }
static void bad_mproc_barrier_n_waiting(void) { CHECK_ERR(mproc_barrier_n_waiting(NULL), MPROC_EINVAL); }
static void bad_mproc_barrier_broken(void) { CHECK_ERR(mproc_barrier_broken(NULL), MPROC_EINVAL); }
static void bad_mproc_barrier_destroy(void) { mproc_barrier_destroy(NULL); }

/* ---- shared memory ---- */

static void bad_mproc_shm_create(void) {
  mproc_shm *s = NULL;
  CHECK_ERR(mproc_shm_create(NULL, 64, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_create(&s, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_create(&s, 0, &(mproc_shm_opts){.name = "mproc-badinput-zero"}), MPROC_EINVAL);
  char long_name[202];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  const char *bad_names[] = {"", ".", "..", "a/b", "/", "/lead", long_name};
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
    CHECK_ERR(mproc_shm_create(&s, 64, &(mproc_shm_opts){.name = bad_names[i]}), MPROC_EINVAL);
  /* A size no memory holds: refused, nothing left (not in /dev/shm either: the harness checks). */
  int r = mproc_shm_create(&s, SIZE_MAX, NULL);
  CHECK(r == MPROC_EINVAL || r == MPROC_ENOMEM || r == MPROC_EFBIG);
  r = mproc_shm_create(&s, SIZE_MAX, &(mproc_shm_opts){.name = "mproc-badinput-huge"});
  CHECK(r == MPROC_EINVAL || r == MPROC_ENOMEM || r == MPROC_EFBIG);
  CHECK(s == NULL);
}

static void bad_mproc_shm_open(void) {
  mproc_shm *s = NULL;
  CHECK_ERR(mproc_shm_open(NULL, "x"), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&s, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&s, ""), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&s, "a/b"), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&s, ".."), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&s, "mproc-badinput-does-not-exist"), MPROC_ENOENT);
  CHECK(s == NULL);
}

static void bad_mproc_shm_send(void) {
  mproc_shm *s;
  CHECK_OK(mproc_shm_create(&s, 64, NULL));
  int sv[2], pfd[2];
  CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  CHECK_INT_EQ(pipe2(pfd, O_CLOEXEC), 0);
  CHECK_ERR(mproc_shm_send(NULL, sv[0]), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_send(s, -1), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_send(s, INT_MIN), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_send(s, INT_MAX), MPROC_EBADF);
  CHECK_ERR(mproc_shm_send(s, pfd[1]), MPROC_ENOTSOCK);
  close(sv[1]);
  CHECK(mproc_shm_send(s, sv[0]) < 0); /* the peer is gone: an error (EPIPE), and no SIGPIPE */
  close(sv[0]);
  close(pfd[0]);
  close(pfd[1]);
  mproc_shm_destroy(s);
}

static void bad_mproc_shm_recv(void) {
  mproc_shm *s = NULL;
  int sv[2], pfd[2];
  CHECK_INT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  CHECK_INT_EQ(pipe2(pfd, O_CLOEXEC), 0);
  CHECK_ERR(mproc_shm_recv(NULL, sv[0]), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_recv(&s, -1), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_recv(&s, INT_MIN), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_recv(&s, INT_MAX), MPROC_EBADF);
  CHECK_ERR(mproc_shm_recv(&s, pfd[0]), MPROC_ENOTSOCK);
  /* Bytes from a peer that is not mproc_shm_send(): refused, nothing mapped or left open. */
  char junk[64];
  memset(junk, 0xA5, sizeof junk);
  CHECK_INT_EQ(write(sv[1], junk, sizeof junk), (ssize_t)sizeof junk);
  close(sv[1]);
  int r = 0;
  for (int i = 0; i < 100 && r != MPROC_ECONNRESET; i++) {
    r = mproc_shm_recv(&s, sv[0]);
    CHECK(r < 0);
    CHECK(s == NULL);
  }
  CHECK_ERR(r, MPROC_ECONNRESET); /* then the closed peer */
  close(sv[0]);
  close(pfd[0]);
  close(pfd[1]);
}

static void bad_mproc_shm_addr(void) { CHECK(mproc_shm_addr(NULL) == NULL); }
static void bad_mproc_shm_size(void) { CHECK_INT_EQ(mproc_shm_size(NULL), 0); }
static void bad_mproc_shm_name(void) {
  CHECK(mproc_shm_name(NULL) == NULL);
  mproc_shm *s;
  CHECK_OK(mproc_shm_create(&s, 1, NULL));
  CHECK(mproc_shm_name(s) == NULL);
  mproc_shm_destroy(s);
}
static void bad_mproc_shm_destroy(void) { mproc_shm_destroy(NULL); }

static void bad_mproc_array_create(void) {
  mproc_array *a = NULL;
  CHECK_ERR(mproc_array_create(NULL, 8, 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_array_create(&a, 0, 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_array_create(&a, 8, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_array_create(&a, 0, 0, 1), MPROC_EINVAL);
  CHECK_ERR2(mproc_array_create(&a, SIZE_MAX / 2 + 1, 2, 0), MPROC_EINVAL, MPROC_ENOMEM); /* overflows */
  CHECK_ERR2(mproc_array_create(&a, 2, SIZE_MAX / 2 + 1, 1), MPROC_EINVAL, MPROC_ENOMEM);
  CHECK_ERR2(mproc_array_create(&a, 1, SIZE_MAX, 0), MPROC_EINVAL, MPROC_ENOMEM);
  CHECK_ERR2(mproc_array_create(&a, SIZE_MAX, 1, 1), MPROC_EINVAL, MPROC_ENOMEM);
  CHECK(a == NULL);
}
static void bad_mproc_array_data(void) { CHECK(mproc_array_data(NULL) == NULL); }
static void bad_mproc_array_length(void) { CHECK_INT_EQ(mproc_array_length(NULL), 0); }
static void bad_mproc_array_lock(void) { CHECK(mproc_array_lock(NULL) == NULL); }
static void bad_mproc_array_destroy(void) { mproc_array_destroy(NULL); }

static void bad_mproc_shared_alloc(void) {
  void *p = (void *)&p;
  CHECK_ERR(mproc_shared_alloc(NULL, 64), MPROC_EINVAL);
  CHECK_ERR(mproc_shared_alloc(&p, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_shared_alloc(&p, SIZE_MAX), MPROC_ENOMEM);
  CHECK_ERR(mproc_shared_alloc(&p, SIZE_MAX / 2), MPROC_ENOMEM);
  CHECK(p == (void *)&p);
}

static void bad_mproc_shared_free(void) {
  int local;
  CHECK_OK(mproc_shared_free(NULL));
  CHECK_ERR(mproc_shared_free(&local), MPROC_EINVAL);
  void *p;
  CHECK_OK(mproc_shared_alloc(&p, 4096));
  CHECK_ERR(mproc_shared_free(&local), MPROC_EINVAL); /* the arena exists now */
  CHECK_ERR(mproc_shared_free((char *)p + 1), MPROC_EINVAL);
  CHECK_ERR(mproc_shared_free((char *)p + 4096), MPROC_EINVAL);
  void *q;
  CHECK_OK(mproc_shared_alloc(&q, 4096)); /* keeps the arena while p is freed twice */
  CHECK_OK(mproc_shared_free(p));
  CHECK_ERR(mproc_shared_free(p), MPROC_EINVAL); /* twice */
  CHECK_OK(mproc_shared_free(q));
}

static void bad_mproc_shared_contains(void) {
  int local;
  CHECK_INT_EQ(mproc_shared_contains(NULL, 0), 0);
  CHECK_INT_EQ(mproc_shared_contains(NULL, SIZE_MAX), 0);
  CHECK_INT_EQ(mproc_shared_contains(&local, sizeof local), 0);
  void *p;
  CHECK_OK(mproc_shared_alloc(&p, 4096));
  CHECK_INT_EQ(mproc_shared_contains(p, 4096), 1);
  CHECK_INT_EQ(mproc_shared_contains(p, SIZE_MAX), 0); /* past the end, wrapping around */
  CHECK_INT_EQ(mproc_shared_contains((char *)p + 1, SIZE_MAX), 0);
  CHECK_INT_EQ(mproc_shared_contains((void *)UINTPTR_MAX, 2), 0);
  CHECK_INT_EQ(mproc_shared_contains(NULL, SIZE_MAX), 0);
  CHECK_OK(mproc_shared_free(p));
}

/* ---- pools ---- */

static const mproc_pool_opts bad_pool_opts[] = {
    {.workers = -1},
    {.workers = INT_MIN},
    {.workers = 4097}, /* more than any pool may have */
    {.workers = INT_MAX},
    {.max_tasks_per_child = -1},
    {.backend = (mproc_backend)-1},
    {.backend = (mproc_backend)5}, /* one past the last (MPROC_BACKEND_MPI) */
    {.backend = (mproc_backend)INT_MAX},
    {.start_method = (mproc_start_method)-1},
    {.start_method = (mproc_start_method)4},
    {.task_timeout = -1},
    {.task_timeout = -INFINITY},
    {.task_timeout = NAN},
    {.max_retries = -1},
    {.max_retries = INT_MIN},
    {.init_arg_len = 1},                            /* no init_arg, no initializer */
    {.initializer = nop, .init_arg_len = 1},        /* no init_arg */
    {.init_arg = "x", .init_arg_len = 1},           /* no initializer */
    {.initializer = nop, .init_arg_len = SIZE_MAX}, /* no init_arg */
    {.backend = MPROC_BACKEND_THREAD, .start_method = MPROC_START_EXEC},
    {.backend = MPROC_BACKEND_SERIAL, .start_method = MPROC_START_EXEC},
};
#define N_BAD_POOL_OPTS (sizeof bad_pool_opts / sizeof *bad_pool_opts)

static void bad_mproc_pool_create(void) {
  mproc_pool *p = (mproc_pool *)&p;
  mproc_pool *const untouched = p;
  CHECK_ERR(mproc_pool_create(NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_POOL_OPTS; i++) {
    int r = mproc_pool_create(&p, &bad_pool_opts[i]);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_pool_opts[%zu]: %s", i, mproc_err_name(r));
  }
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.start_method = MPROC_START_FORKSERVER}), MPROC_ESTATE);
  CHECK_ERR(mproc_pool_create(
                &p, &(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_THREAD, .task_timeout = 1}),
            MPROC_ENOTSUP);
  /* the MPI backend without a launcher (or without MPI in this build) */
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_MPI}),
            MPROC_ENOBACKEND);
  CHECK(p == untouched);
  /* Accepted: a task timeout beyond any deadline (no limit in effect), a nonzero flag of any value. */
  const mproc_pool_opts fine[] = {
      {.workers = 1, .backend = MPROC_BACKEND_SERIAL, .task_timeout = 1e300},
      {.workers = 1, .backend = MPROC_BACKEND_SERIAL, .task_timeout = INFINITY},
      {.workers = 1, .task_timeout = 1e300, .keep_thread_env = INT_MIN, .max_nbytes = SIZE_MAX},
      {.workers = 1, .task_timeout = INFINITY},
      {.workers = 1, .ring_bytes = SIZE_MAX, .max_tasks_per_child = INT_MAX}, /* a ring as large as allowed */
      {.workers = 1, .ring_bytes = 1, .max_nbytes = 1},                       /* as small as allowed */
  };
  for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
    CHECK_OK(mproc_pool_create(&p, &fine[i]));
    int v = 0;
    CHECK_OK(mproc_pool_apply(p, return_int, NULL, 0, &v, sizeof v, NULL));
    CHECK_INT_EQ(v, 42);
    mproc_pool_destroy(p);
  }
}

static void bad_mproc_backend_available(void) {
  CHECK_ERR(mproc_backend_available(NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_backend_available(""), MPROC_EINVAL);
  CHECK_ERR(mproc_backend_available("Process"), MPROC_EINVAL); /* names are exact */
  CHECK_ERR(mproc_backend_available("quantum"), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_backend_available("serial"), 1);
  CHECK_INT_EQ(mproc_backend_available("mpi"), 0); /* no MPI launcher started the tests */
  CHECK(strstr(mproc_last_error_message(), "MPI") != NULL);
}

static void bad_mproc_pool_workers(void) { CHECK_ERR(mproc_pool_workers(NULL), MPROC_EINVAL); }

static void bad_mproc_pool_close(void) {
  CHECK_ERR(mproc_pool_close(NULL), MPROC_EINVAL);
  mproc_pool *p = serial_pool();
  CHECK_OK(mproc_pool_close(p));
  CHECK_OK(mproc_pool_close(p)); /* twice */
  CHECK_OK(mproc_pool_terminate(p));
  CHECK_OK(mproc_pool_close(p)); /* after terminate */
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_join(void) {
  CHECK_ERR(mproc_pool_join(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_join(NULL, NAN), MPROC_EINVAL);
  CHECK_OK(mproc_event_create(&gate));
  mproc_pool *p = process_pool();
  CHECK_ERR(mproc_pool_join(p, NAN), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++) CHECK_OK(mproc_pool_join(p, forever_timeouts[i])); /* nothing runs */
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, wait_gate, NULL, 0, NULL, &f));
  CHECK_ERR(mproc_pool_join(p, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_join(p, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc_pool_join(p, DBL_MIN), MPROC_ETIMEDOUT);
  CHECK_OK(mproc_pool_terminate(p));
  CHECK_OK(mproc_pool_join(p, INFINITY)); /* terminated: nothing left */
  mproc_future_release(f);
  mproc_pool_destroy(p);
  mproc_event_destroy(gate);
}

static void bad_mproc_pool_terminate(void) {
  CHECK_ERR(mproc_pool_terminate(NULL), MPROC_EINVAL);
  mproc_pool *p = serial_pool();
  CHECK_OK(mproc_pool_terminate(p));
  CHECK_OK(mproc_pool_terminate(p)); /* twice */
  mproc_future *f = (mproc_future *)&f;
  CHECK_ERR(mproc_pool_submit(p, nop, NULL, 0, NULL, &f), MPROC_ECLOSED);
  CHECK(f == (mproc_future *)&f);
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_destroy(void) { mproc_pool_destroy(NULL); }

static int body_ok(mproc_pool *p, void *user) { return 5; }

static void bad_mproc_pool_with(void) {
  CHECK_ERR(mproc_pool_with(NULL, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_with(&(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_SERIAL}, NULL, NULL),
            MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_POOL_OPTS; i++)
    CHECK_ERR(mproc_pool_with(&bad_pool_opts[i], body_ok, NULL), MPROC_EINVAL);
  CHECK_INT_EQ(
      mproc_pool_with(&(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_SERIAL}, body_ok, NULL), 5);
}

static const mproc_submit_opts bad_submit_opts[] = {
    {.timeout = NAN}, {.timeout = -1}, {.timeout = -INFINITY}, {.max_retries = -2}, {.max_retries = INT_MIN},
};
#define N_BAD_SUBMIT_OPTS (sizeof bad_submit_opts / sizeof *bad_submit_opts)

static void bad_mproc_pool_submit(void) {
  mproc_pool *p = serial_pool();
  mproc_future *f = (mproc_future *)&f;
  CHECK_ERR(mproc_pool_submit(NULL, nop, NULL, 0, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, NULL, NULL, 0, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, nop, NULL, 0, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, nop, NULL, 1, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_submit(p, nop, NULL, SIZE_MAX, NULL, &f), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_SUBMIT_OPTS; i++) {
    int r = mproc_pool_submit(p, nop, NULL, 0, &bad_submit_opts[i], &f);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_submit_opts[%zu]: %s", i, mproc_err_name(r));
  }
  char byte = 0;
  CHECK_ERR(mproc_pool_submit(p, nop, &byte, SIZE_MAX, NULL, &f), MPROC_ENOMEM);
  CHECK_ERR(mproc_pool_submit(p, nop, &byte, SIZE_MAX / 2, NULL, &f), MPROC_ENOMEM);
  CHECK(f == (mproc_future *)&f);
  /* Accepted: a timeout beyond any deadline. */
  CHECK_OK(mproc_pool_submit(p, return_int, NULL, 0, &(mproc_submit_opts){.timeout = INFINITY}, &f));
  CHECK_OK(mproc_future_error(f, INFINITY));
  mproc_future_release(f);
  CHECK_OK(mproc_pool_close(p));
  f = (mproc_future *)&f;
  CHECK_ERR(mproc_pool_submit(p, nop, NULL, 0, NULL, &f), MPROC_ECLOSED);
  CHECK(f == (mproc_future *)&f);
  mproc_pool_destroy(p);
  /* The process backend: the same checks before anything is sent. */
  p = process_pool();
  CHECK_ERR(mproc_pool_submit(p, nop, &byte, SIZE_MAX, NULL, &f), MPROC_ENOMEM);
  CHECK_ERR(mproc_pool_submit(p, nop, NULL, 0, &(mproc_submit_opts){.timeout = NAN}, &f), MPROC_EINVAL);
  CHECK_OK(mproc_pool_submit(p, return_int, NULL, 0, &(mproc_submit_opts){.timeout = 1e300}, &f));
  CHECK_OK(mproc_future_error(f, 1e300));
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_apply(void) {
  mproc_pool *p = serial_pool();
  int v = 0;
  size_t len = 0;
  CHECK_ERR(mproc_pool_apply(NULL, return_int, NULL, 0, &v, sizeof v, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, NULL, NULL, 0, &v, sizeof v, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, return_int, NULL, 1, &v, sizeof v, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, return_int, NULL, 0, NULL, sizeof v, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, return_int, NULL, 0, NULL, SIZE_MAX, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply(p, return_int, NULL, 0, &v, 3, &len), MPROC_EMSGSIZE);
  CHECK_INT_EQ(len, sizeof v);
  CHECK_ERR(mproc_pool_apply(p, return_int, NULL, 0, NULL, 0, &len), MPROC_EMSGSIZE);
  CHECK_OK(mproc_pool_apply(p, return_int, NULL, 0, &v, SIZE_MAX, NULL)); /* a capacity beyond the result */
  CHECK_INT_EQ(v, 42);
  CHECK_OK(mproc_pool_apply(p, nop, NULL, 0, NULL, 0, NULL));
  CHECK_OK(mproc_pool_close(p));
  CHECK_ERR(mproc_pool_apply(p, return_int, NULL, 0, &v, sizeof v, &len), MPROC_ECLOSED);
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_apply_async(void) {
  mproc_pool *p = serial_pool();
  mproc_future *f = (mproc_future *)&f;
  CHECK_ERR(mproc_pool_apply_async(NULL, nop, NULL, 0, NULL, NULL, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply_async(p, NULL, NULL, 0, NULL, NULL, NULL, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_apply_async(p, nop, NULL, 1, NULL, NULL, NULL, &f), MPROC_EINVAL);
  CHECK(f == (mproc_future *)&f);
  CHECK_OK(mproc_pool_apply_async(p, nop, NULL, 0, NULL, NULL, NULL, NULL)); /* no callbacks, no future */
  CHECK_OK(mproc_pool_close(p));
  CHECK_ERR(mproc_pool_apply_async(p, nop, NULL, 0, NULL, NULL, NULL, &f), MPROC_ECLOSED);
  CHECK_ERR(mproc_pool_apply_async(p, nop, NULL, 0, NULL, NULL, NULL, NULL), MPROC_ECLOSED);
  mproc_pool_destroy(p);
}

/* ---- futures ---- */

/* A pool with one future done (ok), one cancelled by terminate (it was running), one done in another pool. */
struct futures {
  mproc_pool *pool, *other;
  mproc_future *ok, *cancelled, *foreign;
};

static void futures_make(struct futures *t) {
  CHECK_OK(mproc_event_create(&gate));
  t->pool = process_pool();
  t->other = serial_pool();
  CHECK_OK(mproc_pool_submit(t->pool, return_int, NULL, 0, NULL, &t->ok));
  CHECK_OK(mproc_future_wait(t->ok, MPROC_FOREVER));
  CHECK_OK(mproc_pool_submit(t->pool, wait_gate, NULL, 0, NULL, &t->cancelled));
  CHECK_OK(mproc_pool_terminate(t->pool));
  CHECK_ERR(mproc_future_error(t->cancelled, MPROC_FOREVER), MPROC_ECANCELED);
  CHECK_OK(mproc_pool_submit(t->other, return_int, NULL, 0, NULL, &t->foreign));
}

static void futures_end(struct futures *t) {
  mproc_future_release(t->ok);
  mproc_future_release(t->cancelled);
  mproc_future_release(t->foreign);
  mproc_pool_destroy(t->pool);
  mproc_pool_destroy(t->other);
  mproc_event_destroy(gate);
}

static void bad_mproc_future_wait(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_wait(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_future_wait(t.ok, NAN), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++) {
    CHECK_OK(mproc_future_wait(t.ok, forever_timeouts[i]));
    CHECK_OK(mproc_future_wait(t.cancelled, forever_timeouts[i])); /* done, though not successfully */
  }
  mproc_pool_destroy(t.pool); /* the futures outlive their pool */
  t.pool = NULL;
  CHECK_OK(mproc_future_wait(t.ok, INFINITY));
  CHECK_ERR(mproc_future_wait(t.ok, NAN), MPROC_EINVAL);
  futures_end(&t);
}

static void bad_mproc_future_result(void) {
  struct futures t;
  futures_make(&t);
  const void *data = &data;
  size_t len = 9;
  CHECK_ERR(mproc_future_result(NULL, 0, &data, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_future_result(t.ok, NAN, &data, &len), MPROC_EINVAL);
  CHECK_OK(mproc_future_result(t.ok, INFINITY, NULL, NULL));
  CHECK_OK(mproc_future_result(t.ok, 1e300, &data, &len));
  CHECK_INT_EQ(len, sizeof(int));
  CHECK_ERR(mproc_future_result(t.cancelled, 1e300, &data, &len), MPROC_ECANCELED);
  CHECK(data == NULL && len == 0);
  mproc_pool_destroy(t.pool);
  t.pool = NULL;
  CHECK_OK(mproc_future_result(t.ok, 0, &data, &len)); /* still valid after destroy */
  CHECK_ERR(mproc_future_result(t.cancelled, 0, NULL, NULL), MPROC_ECANCELED);
  futures_end(&t);
}

static void bad_mproc_future_error(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_error(NULL, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_future_error(t.ok, NAN), MPROC_EINVAL);
  CHECK_OK(mproc_future_error(t.ok, -INFINITY));
  CHECK_ERR(mproc_future_error(t.cancelled, INFINITY), MPROC_ECANCELED);
  futures_end(&t);
}

static void bad_mproc_future_outcome(void) {
  struct futures t;
  futures_make(&t);
  mproc_outcome o;
  CHECK_ERR(mproc_future_outcome(NULL, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_future_outcome(t.ok, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_outcome(NULL, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_future_outcome(t.cancelled, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_CANCELLED);
  CHECK(o.message != NULL);
  futures_end(&t);
}

static void bad_mproc_future_cancel(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_cancel(NULL), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_future_cancel(t.ok), 0); /* done */
  CHECK_INT_EQ(mproc_future_cancel(t.ok), 0);
  CHECK_INT_EQ(mproc_future_cancel(t.cancelled), 1); /* already cancelled */
  CHECK_INT_EQ(mproc_future_cancel(t.cancelled), 1);
  CHECK_OK(mproc_future_error(t.ok, 0)); /* unchanged */
  futures_end(&t);
}

static void bad_mproc_future_cancelled(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_cancelled(NULL), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_future_cancelled(t.ok), 0);
  CHECK_INT_EQ(mproc_future_cancelled(t.cancelled), 1);
  futures_end(&t);
}

static void bad_mproc_future_running(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_running(NULL), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_future_running(t.ok), 0);
  CHECK_INT_EQ(mproc_future_running(t.cancelled), 0);
  futures_end(&t);
}

static void bad_mproc_future_done(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_done(NULL), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_future_done(t.ok), 1);
  CHECK_INT_EQ(mproc_future_done(t.cancelled), 1);
  futures_end(&t);
}

static int callback_calls;
static void count_call(mproc_future *f, void *user) { callback_calls++; }

static void bad_mproc_future_add_done_callback(void) {
  struct futures t;
  futures_make(&t);
  CHECK_ERR(mproc_future_add_done_callback(NULL, count_call, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_future_add_done_callback(t.ok, NULL, NULL), MPROC_EINVAL);
  CHECK_INT_EQ(callback_calls, 0);
  CHECK_OK(mproc_future_add_done_callback(t.cancelled, count_call, NULL)); /* done: at once */
  CHECK_INT_EQ(callback_calls, 1);
  futures_end(&t);
}

static void bad_mproc_future_release(void) { mproc_future_release(NULL); }

static void bad_mproc_futures_wait(void) {
  struct futures t;
  futures_make(&t);
  size_t ndone = 99;
  unsigned char flags[3];
  mproc_future *fs[3] = {t.ok, t.cancelled, NULL};
  mproc_future *mixed[2] = {t.ok, t.foreign};
  CHECK_ERR(mproc_futures_wait(NULL, 1, 0, MPROC_ALL_COMPLETED, &ndone, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(NULL, SIZE_MAX, 0, MPROC_ALL_COMPLETED, &ndone, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(fs, 3, 0, MPROC_ALL_COMPLETED, &ndone, flags), MPROC_EINVAL); /* a NULL */
  CHECK_ERR(mproc_futures_wait(mixed, 2, 0, MPROC_ALL_COMPLETED, &ndone, flags), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(fs, 2, NAN, MPROC_ALL_COMPLETED, &ndone, flags), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(fs, 2, 0, (mproc_wait_mode)3, &ndone, flags), MPROC_EINVAL);
  CHECK_ERR(mproc_futures_wait(fs, 2, 0, (mproc_wait_mode)-1, &ndone, flags), MPROC_EINVAL);
  CHECK_OK(mproc_futures_wait(fs, 2, 0, MPROC_ALL_COMPLETED, NULL, NULL));     /* both outputs optional */
  CHECK_OK(mproc_futures_wait(NULL, 0, 0, MPROC_ALL_COMPLETED, &ndone, NULL)); /* nothing to wait for */
  CHECK_INT_EQ(ndone, 0);
  for (size_t i = 0; i < N_FOREVER; i++) {
    CHECK_OK(mproc_futures_wait(fs, 2, forever_timeouts[i], MPROC_FIRST_EXCEPTION, &ndone, flags));
    CHECK_INT_EQ(ndone, 2);
  }
  futures_end(&t);
}

static void bad_mproc_as_completed_create(void) {
  struct futures t;
  futures_make(&t);
  mproc_as_completed *it = (mproc_as_completed *)&it, *it2;
  mproc_future *fs[3] = {t.ok, t.cancelled, NULL};
  mproc_future *mixed[2] = {t.ok, t.foreign};
  CHECK_ERR(mproc_as_completed_create(NULL, fs, 2), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_create(&it, NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_create(&it, NULL, SIZE_MAX), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_create(&it, fs, 3), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_create(&it, mixed, 2), MPROC_EINVAL);
  CHECK(it == (mproc_as_completed *)&it);
  /* The same future twice: once in the iterator, yielded once. */
  mproc_future *twice[2] = {t.ok, t.ok};
  CHECK_OK(mproc_as_completed_create(&it, twice, 2));
  mproc_future *f;
  CHECK_OK(mproc_as_completed_next(it, 0, &f));
  CHECK_ERR(mproc_as_completed_next(it, 0, &f), MPROC_EEOF);
  mproc_as_completed_destroy(it);
  CHECK_OK(mproc_as_completed_create(&it, fs, 2));
  CHECK_ERR(mproc_as_completed_create(&it2, fs, 1), MPROC_EBUSY); /* in another iterator */
  mproc_as_completed_destroy(it);
  CHECK_OK(mproc_as_completed_create(&it2, fs, 1)); /* free again once that one is gone */
  mproc_as_completed_destroy(it2);
  futures_end(&t);
}

static void bad_mproc_as_completed_add(void) {
  struct futures t;
  futures_make(&t);
  mproc_as_completed *it, *other;
  CHECK_OK(mproc_as_completed_create(&it, NULL, 0));
  CHECK_OK(mproc_as_completed_create(&other, &t.cancelled, 1));
  CHECK_ERR(mproc_as_completed_add(NULL, t.ok), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_add(it, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_as_completed_add(it, t.ok));
  CHECK_ERR(mproc_as_completed_add(it, t.foreign), MPROC_EINVAL);  /* another pool */
  CHECK_OK(mproc_as_completed_add(it, t.ok));                      /* twice: still yielded once */
  CHECK_ERR(mproc_as_completed_add(it, t.cancelled), MPROC_EBUSY); /* in the other */
  mproc_as_completed_destroy(it);
  mproc_as_completed_destroy(other);
  futures_end(&t);
}

static void bad_mproc_as_completed_next(void) {
  struct futures t;
  futures_make(&t);
  mproc_as_completed *it;
  mproc_future *f = (mproc_future *)&f;
  CHECK_OK(mproc_as_completed_create(&it, NULL, 0));
  CHECK_ERR(mproc_as_completed_next(NULL, 0, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_next(it, NAN, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_as_completed_next(it, 0, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_FOREVER; i++)
    CHECK_ERR(mproc_as_completed_next(it, forever_timeouts[i], &f), MPROC_EEOF);
  CHECK(f == NULL);
  CHECK_OK(mproc_as_completed_add(it, t.ok));
  CHECK_OK(mproc_as_completed_add(it, t.cancelled));
  CHECK_OK(mproc_as_completed_next(it, INFINITY, &f));
  CHECK(f == t.ok || f == t.cancelled);
  /* The other one released while in the iterator: the iterator ends. */
  if (f == t.ok) {
    mproc_future_release(t.cancelled);
    t.cancelled = NULL;
  } else {
    mproc_future_release(t.ok);
    t.ok = NULL;
  }
  CHECK_ERR(mproc_as_completed_next(it, INFINITY, &f), MPROC_EEOF);
  CHECK_ERR(mproc_as_completed_next(it, 0, &f), MPROC_EEOF);
  mproc_as_completed_destroy(it);
  futures_end(&t);
}

static void bad_mproc_as_completed_destroy(void) { mproc_as_completed_destroy(NULL); }

/* ---- maps and streams ---- */

static const mproc_map_opts bad_map_opts[] = {
    {.task_timeout = NAN},
    {.task_timeout = -1},
    {.max_retries = -2},
    {.max_retries = INT_MIN},
    {.on_error = (mproc_error_policy)3},
    {.on_error = (mproc_error_policy)-1},
    {.on_error = MPROC_ON_ERROR_STOP_AFTER, .max_failures = 0},
    {.on_error = MPROC_ON_ERROR_STOP_AFTER, .max_failures = -1},
    {.timeout = NAN},
    {.timeout = -1},
    {.failures_cap = 1}, /* no failures array */
    {.failures_cap = SIZE_MAX},
};
#define N_BAD_MAP_OPTS (sizeof bad_map_opts / sizeof *bad_map_opts)

typedef int (*map_fn)(mproc_pool *, mproc_task_fn, const void *, size_t, size_t, void *, size_t,
                      const mproc_map_opts *, mproc_map_report *);

static void map_checks(map_fn map) {
  mproc_pool *p = serial_pool();
  int in[4] = {1, 2, 3, 4}, out[4];
  mproc_map_report rep;
  CHECK_ERR(map(NULL, return_int, in, 4, sizeof *in, out, sizeof *out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, NULL, in, 4, sizeof *in, out, sizeof *out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, return_int, NULL, 4, sizeof *in, out, sizeof *out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, return_int, in, 4, sizeof *in, NULL, sizeof *out, NULL, NULL), MPROC_EINVAL);
  /* n * size beyond any memory: refused before anything is read or written */
  CHECK_ERR(map(p, return_int, in, SIZE_MAX, sizeof *in, out, sizeof *out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, return_int, in, SIZE_MAX / 2, 4, out, 4, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, return_int, in, 2, SIZE_MAX, out, 4, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, return_int, in, 2, 4, out, SIZE_MAX, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(map(p, return_int, NULL, SIZE_MAX, 0, out, 4, NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_MAP_OPTS; i++) {
    int r = map(p, return_int, in, 4, sizeof *in, out, sizeof *out, &bad_map_opts[i], &rep);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_map_opts[%zu]: %s", i, mproc_err_name(r));
  }
  /* Accepted: nothing to do; limits beyond any deadline. */
  CHECK_OK(map(p, return_int, NULL, 0, 0, NULL, 0, NULL, NULL));
  CHECK_OK(map(p, return_int, NULL, 0, sizeof *in, NULL, sizeof *out, NULL, &rep));
  CHECK_OK(map(p, return_int, in, 4, sizeof *in, out, sizeof *out,
               &(mproc_map_opts){.timeout = 1e300, .task_timeout = INFINITY, .chunk_size = SIZE_MAX}, &rep));
  CHECK_INT_EQ(out[3], 42);
  CHECK_INT_EQ(rep.ok, 4);
  CHECK_OK(mproc_pool_close(p));
  CHECK_ERR(map(p, return_int, in, 4, sizeof *in, out, sizeof *out, NULL, &rep), MPROC_ECLOSED);
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_map(void) { map_checks(mproc_pool_map); }
static void bad_mproc_executor_map(void) { map_checks(mproc_executor_map); }

static const mproc_stream_opts bad_stream_opts[] = {
    {.task_timeout = NAN},
    {.task_timeout = -1},
    {.max_retries = -2},
    {.max_retries = INT_MIN},
};
#define N_BAD_STREAM_OPTS (sizeof bad_stream_opts / sizeof *bad_stream_opts)

typedef int (*imap_fn)(mproc_pool *, mproc_task_fn, const void *, size_t, size_t, size_t,
                       const mproc_stream_opts *, mproc_stream **);

static void imap_checks(imap_fn imap) {
  mproc_pool *p = serial_pool();
  int in[4] = {1, 2, 3, 4};
  mproc_stream *s = (mproc_stream *)&s;
  CHECK_ERR(imap(NULL, return_int, in, 4, sizeof *in, sizeof(int), NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, NULL, in, 4, sizeof *in, sizeof(int), NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, return_int, in, 4, sizeof *in, sizeof(int), NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(imap(p, return_int, NULL, 4, sizeof *in, sizeof(int), NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, return_int, in, SIZE_MAX, sizeof *in, sizeof(int), NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, return_int, in, 2, SIZE_MAX, sizeof(int), NULL, &s), MPROC_EINVAL);
  CHECK_ERR2(imap(p, return_int, in, 2, sizeof *in, SIZE_MAX, NULL, &s), MPROC_EINVAL, MPROC_ENOMEM);
  for (size_t i = 0; i < N_BAD_STREAM_OPTS; i++) {
    int r = imap(p, return_int, in, 4, sizeof *in, sizeof(int), &bad_stream_opts[i], &s);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_stream_opts[%zu]: %s", i, mproc_err_name(r));
  }
  CHECK(s == (mproc_stream *)&s);
  /* Accepted: huge windows and batches, limits beyond any deadline, no items. */
  CHECK_OK(imap(
      p, return_int, in, 4, sizeof *in, sizeof(int),
      &(mproc_stream_opts){.chunk_size = SIZE_MAX, .max_in_flight = SIZE_MAX, .task_timeout = 1e300}, &s));
  int64_t index;
  const void *res;
  int n = 0;
  while (mproc_stream_next(s, INFINITY, &index, &res, NULL) == 0) n++;
  CHECK_INT_EQ(n, 4);
  mproc_stream_destroy(s);
  CHECK_OK(imap(p, return_int, NULL, 0, 0, 0, NULL, &s));
  CHECK_ERR(mproc_stream_next(s, INFINITY, &index, &res, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  CHECK_OK(mproc_pool_close(p));
  s = (mproc_stream *)&s;
  CHECK_ERR(imap(p, return_int, in, 4, sizeof *in, sizeof(int), NULL, &s), MPROC_ECLOSED);
  CHECK(s == (mproc_stream *)&s);
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_imap(void) { imap_checks(mproc_pool_imap); }
static void bad_mproc_pool_imap_unordered(void) { imap_checks(mproc_pool_imap_unordered); }

static void bad_mproc_stream_next(void) {
  mproc_pool *p = serial_pool();
  int in[2] = {1, 2};
  mproc_stream *s;
  int64_t index;
  const void *res;
  mproc_outcome o;
  CHECK_ERR(mproc_stream_next(NULL, 0, &index, &res, &o), MPROC_EINVAL);
  CHECK_OK(mproc_pool_imap(p, return_int, in, 2, sizeof *in, sizeof(int), NULL, &s));
  CHECK_ERR(mproc_stream_next(s, NAN, &index, &res, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_stream_next(s, 0, NULL, &res, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_stream_next(s, 0, &index, NULL, &o), MPROC_EINVAL);
  CHECK_OK(mproc_stream_next(s, INFINITY, &index, &res, NULL));
  CHECK_OK(mproc_stream_next(s, 1e300, &index, &res, &o));
  for (size_t i = 0; i < N_FOREVER; i++)
    CHECK_ERR(mproc_stream_next(s, forever_timeouts[i], &index, &res, &o), MPROC_EEOF);
  CHECK_ERR(mproc_stream_next(s, NAN, &index, &res, &o), MPROC_EINVAL);
  mproc_stream_destroy(s);
  /* A stream outliving its pool: MPROC_ECLOSED, then still released. */
  CHECK_OK(mproc_pool_imap(p, return_int, in, 2, sizeof *in, sizeof(int), NULL, &s));
  mproc_pool_destroy(p);
  for (size_t i = 0; i < N_FOREVER; i++)
    CHECK_ERR(mproc_stream_next(s, forever_timeouts[i], &index, &res, &o), MPROC_ECLOSED);
  mproc_stream_destroy(s);
}

static void bad_mproc_stream_destroy(void) { mproc_stream_destroy(NULL); }

/* ---- concurrent.futures names ---- */

static void bad_mproc_executor_create(void) {
  mproc_executor *ex = (mproc_executor *)&ex;
  CHECK_ERR(mproc_executor_create(NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_POOL_OPTS; i++)
    CHECK_ERR(mproc_executor_create(&ex, &bad_pool_opts[i]), MPROC_EINVAL);
  CHECK(ex == (mproc_executor *)&ex);
}

static void bad_mproc_executor_submit(void) {
  mproc_executor *ex = serial_pool();
  mproc_future *f = (mproc_future *)&f;
  CHECK_ERR(mproc_executor_submit(NULL, nop, NULL, 0, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_executor_submit(ex, NULL, NULL, 0, &f), MPROC_EINVAL);
  CHECK_ERR(mproc_executor_submit(ex, nop, NULL, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_executor_submit(ex, nop, NULL, 1, &f), MPROC_EINVAL);
  char byte = 0;
  CHECK_ERR(mproc_executor_submit(ex, nop, &byte, SIZE_MAX, &f), MPROC_ENOMEM);
  CHECK_OK(mproc_executor_shutdown(ex, 1, 0));
  CHECK_ERR(mproc_executor_submit(ex, nop, NULL, 0, &f), MPROC_ECLOSED);
  CHECK(f == (mproc_future *)&f);
  mproc_executor_destroy(ex);
}

static void bad_mproc_executor_shutdown(void) {
  CHECK_ERR(mproc_executor_shutdown(NULL, 1, 1), MPROC_EINVAL);
  mproc_executor *ex = serial_pool();
  CHECK_OK(mproc_executor_shutdown(ex, INT_MIN, INT_MAX)); /* any nonzero flag */
  CHECK_OK(mproc_executor_shutdown(ex, 1, 1));             /* twice */
  CHECK_OK(mproc_executor_shutdown(ex, 0, 0));
  mproc_executor_destroy(ex);
}

static void bad_mproc_executor_destroy(void) { mproc_executor_destroy(NULL); }

static void bad_mproc_executor_with(void) {
  CHECK_ERR(mproc_executor_with(NULL, NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_POOL_OPTS; i++)
    CHECK_ERR(mproc_executor_with(&bad_pool_opts[i], body_ok, NULL), MPROC_EINVAL);
  CHECK_INT_EQ(
      mproc_executor_with(&(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_SERIAL}, body_ok, NULL),
      5);
}

/* ---- Parallel ---- */

static const mproc_parallel_opts bad_parallel_opts[] = {
    {.backend = (mproc_backend)-1},
    {.backend = (mproc_backend)5}, /* one past the last (MPROC_BACKEND_MPI) */
    {.timeout = NAN},
    {.timeout = -1},
    {.progress_interval = NAN},
    {.progress_interval = -1},
    {.on_error = (mproc_error_policy)3},
    {.on_error = MPROC_ON_ERROR_STOP_AFTER, .max_failures = 0},
    {.failures_cap = 1},
    {.init_arg_len = 1},
    {.initializer = nop, .init_arg_len = 1},
    {.init_arg = "x", .init_arg_len = 1},
    {.n_jobs = 4097}, /* more workers than a pool may have */
    {.n_jobs = INT_MAX},
};
#define N_BAD_PARALLEL_OPTS (sizeof bad_parallel_opts / sizeof *bad_parallel_opts)

static mproc_parallel *serial_parallel(void) {
  mproc_parallel *par = NULL;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 1, .backend = MPROC_BACKEND_SERIAL}));
  return par;
}

static void bad_mproc_parallel_create(void) {
  mproc_parallel *par = (mproc_parallel *)&par;
  CHECK_ERR(mproc_parallel_create(NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_PARALLEL_OPTS; i++) {
    int r = mproc_parallel_create(&par, &bad_parallel_opts[i]);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_parallel_opts[%zu]: %s", i, mproc_err_name(r));
  }
  CHECK(par == (mproc_parallel *)&par);
  /* n_jobs as joblib reads it: any negative is "all CPUs but k - 1", never fewer than one. */
  const int n_jobs[] = {INT_MIN, INT_MIN + 1, -1000000};
  for (size_t i = 0; i < sizeof n_jobs / sizeof *n_jobs; i++) {
    CHECK_OK(mproc_parallel_create(
        &par, &(mproc_parallel_opts){.n_jobs = n_jobs[i], .backend = MPROC_BACKEND_SERIAL}));
    CHECK_INT_EQ(mproc_parallel_n_jobs(par), 1);
    mproc_parallel_destroy(par);
  }
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 1,
                                                              .backend = MPROC_BACKEND_SERIAL,
                                                              .timeout = INFINITY,
                                                              .progress_interval = 1e300,
                                                              .verbose = INT_MIN}));
  mproc_parallel_destroy(par);
}

static void bad_mproc_parallel_n_jobs(void) { CHECK_ERR(mproc_parallel_n_jobs(NULL), MPROC_EINVAL); }

static void bad_mproc_parallel_run(void) {
  mproc_parallel *par = serial_parallel();
  int in[3] = {1, 2, 3}, out[3], codes[3];
  CHECK_ERR(mproc_parallel_run(NULL, return_int, in, 3, sizeof *in, out, sizeof *out, NULL, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, NULL, in, 3, sizeof *in, out, sizeof *out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, return_int, NULL, 3, sizeof *in, out, sizeof *out, NULL, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, return_int, in, 3, sizeof *in, NULL, sizeof *out, NULL, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, return_int, in, SIZE_MAX, sizeof *in, out, sizeof *out, codes, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, return_int, in, 2, SIZE_MAX, out, sizeof *out, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run(par, return_int, in, 2, sizeof *in, out, SIZE_MAX, NULL, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_parallel_run(par, return_int, NULL, 0, 0, NULL, 0, NULL, NULL));
  CHECK_OK(mproc_parallel_run(par, return_int, in, 3, sizeof *in, out, sizeof *out, codes, NULL));
  mproc_parallel_destroy(par);
}

static void bad_mproc_parallel_stream(void) {
  mproc_parallel *par = serial_parallel();
  int in[3] = {1, 2, 3};
  mproc_stream *s = (mproc_stream *)&s;
  CHECK_ERR(
      mproc_parallel_stream(NULL, return_int, in, 3, sizeof *in, sizeof(int), MPROC_RETURN_GENERATOR, &s),
      MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream(par, NULL, in, 3, sizeof *in, sizeof(int), MPROC_RETURN_GENERATOR, &s),
            MPROC_EINVAL);
  CHECK_ERR(
      mproc_parallel_stream(par, return_int, NULL, 3, sizeof *in, sizeof(int), MPROC_RETURN_GENERATOR, &s),
      MPROC_EINVAL);
  CHECK_ERR(
      mproc_parallel_stream(par, return_int, in, 3, sizeof *in, sizeof(int), MPROC_RETURN_GENERATOR, NULL),
      MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream(par, return_int, in, SIZE_MAX, sizeof *in, sizeof(int),
                                  MPROC_RETURN_GENERATOR, &s),
            MPROC_EINVAL);
  const mproc_return_as bad_order[] = {(mproc_return_as)-1, (mproc_return_as)3, (mproc_return_as)INT_MAX};
  for (size_t i = 0; i < sizeof bad_order / sizeof *bad_order; i++)
    CHECK_ERR(mproc_parallel_stream(par, return_int, in, 3, sizeof *in, sizeof(int), bad_order[i], &s),
              MPROC_EINVAL);
  /* A list is not a generator form: mproc_parallel_run() returns lists. */
  CHECK_ERR(mproc_parallel_stream(par, return_int, in, 3, sizeof *in, sizeof(int), MPROC_RETURN_LIST, &s),
            MPROC_EINVAL);
  CHECK(s == (mproc_stream *)&s);
  mproc_parallel_destroy(par);
}

static void bad_mproc_parallel_destroy(void) { mproc_parallel_destroy(NULL); }

static void bad_mproc_parallel_call(void) {
  int in[3] = {1, 2, 3}, out[3];
  const mproc_parallel_opts serial = {.n_jobs = 1, .backend = MPROC_BACKEND_SERIAL};
  CHECK_ERR(mproc_parallel_call(NULL, in, 3, sizeof *in, out, sizeof *out, &serial, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_call(return_int, NULL, 3, sizeof *in, out, sizeof *out, &serial, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_call(return_int, in, 3, sizeof *in, NULL, sizeof *out, &serial, NULL),
            MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_call(return_int, in, SIZE_MAX, sizeof *in, out, sizeof *out, &serial, NULL),
            MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_PARALLEL_OPTS; i++) {
    int r = mproc_parallel_call(return_int, in, 3, sizeof *in, out, sizeof *out, &bad_parallel_opts[i], NULL);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_parallel_opts[%zu]: %s", i, mproc_err_name(r));
  }
  CHECK_OK(mproc_parallel_call(return_int, NULL, 0, 0, NULL, 0, &serial, NULL));
  mproc_parallel_shutdown();
}

static void bad_mproc_parallel_shutdown(void) {
  mproc_parallel_shutdown(); /* none kept */
  mproc_parallel_shutdown();
}

/* ---- items of any size ---- */

static const mproc_item null_data_item[2] = {{"ab", 2}, {NULL, 3}};
static const char *const null_string[2] = {"ab", NULL};
static const size_t decreasing[3] = {0, 4, 2};
static const mproc_item two_items[2] = {{"ab", 2}, {"c", 1}};

/* Items descriptions every call refuses with -EINVAL. */
static mproc_items bad_items(size_t i) {
  mproc_items in = {0};
  switch (i) {
    case 0:
      in.n = 2;
      break; /* no form */
    case 1:  /* two forms */
      in = mproc_items_array(two_items, 2);
      in.strings = null_string;
      break;
    case 2:
      in = mproc_items_packed("abcd", NULL, 2);
      break; /* no offsets */
    case 3:
      in = mproc_items_packed(NULL, decreasing, 2);
      break;
    case 4:
      in = mproc_items_packed("abcd", decreasing, 2);
      break;
    case 5:
      in = mproc_items_array(null_data_item, 2);
      break;
    case 6:
      in = mproc_items_strings(null_string, 2);
      break;
    case 7: /* a lazy input with another form */
      in = mproc_items_array(two_items, 2);
      in.next = (mproc_input_fn)nop;
      break;
  }
  return in;
}
#define N_BAD_ITEMS 8

static int lazy_fails(void *user, int64_t i, mproc_item *item) {
  if (i == 1) return MPROC_EIO;
  *item = (mproc_item){"x", 1};
  return 1;
}
static int lazy_null_data(void *user, int64_t i, mproc_item *item) {
  *item = (mproc_item){NULL, 5};
  return 1;
}
static int lazy_positive(void *user, int64_t i, mproc_item *item) { return i < 2 ? 1 : INT_MAX; }

static int echo_len(const void *arg, size_t len, mproc_task *t) {
  uint64_t n = len;
  return mproc_task_return(t, &n, sizeof n);
}

static void bad_mproc_pool_map_items(void) {
  mproc_pool *p = serial_pool();
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_results *res = (mproc_results *)&res;
  CHECK_ERR(mproc_pool_map_items(NULL, echo_len, &in, NULL, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map_items(p, NULL, &in, NULL, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map_items(p, echo_len, NULL, NULL, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_map_items(p, echo_len, &in, NULL, NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_ITEMS; i++) {
    mproc_items b = bad_items(i);
    int r = mproc_pool_map_items(p, echo_len, &b, NULL, &res, NULL);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_items(%zu): %s", i, mproc_err_name(r));
  }
  for (size_t i = 0; i < N_BAD_MAP_OPTS; i++) {
    int r = mproc_pool_map_items(p, echo_len, &in, &bad_map_opts[i], &res, NULL);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_map_opts[%zu]: %s", i, mproc_err_name(r));
  }
  int codes[2];
  mproc_items lazy = mproc_items_lazy(lazy_fails, NULL);
  CHECK_ERR(mproc_pool_map_items(p, echo_len, &lazy, &(mproc_map_opts){.item_codes = codes}, &res, NULL),
            MPROC_EINVAL); /* n codes for a lazy input of unknown n */
  /* A lazy input's failure is the call's; an item with no bytes but a length is -EINVAL. */
  CHECK_ERR(mproc_pool_map_items(p, echo_len, &lazy, NULL, &res, NULL), MPROC_EIO);
  mproc_results_free(res);
  lazy = mproc_items_lazy(lazy_null_data, NULL);
  CHECK_ERR(mproc_pool_map_items(p, echo_len, &lazy, NULL, &res, NULL), MPROC_EINVAL);
  mproc_results_free(res);
  /* Any return other than 1 or a negative code ends the input. */
  lazy = mproc_items_lazy(lazy_positive, NULL);
  CHECK_OK(mproc_pool_map_items(p, echo_len, &lazy, NULL, &res, NULL));
  CHECK_INT_EQ(mproc_results_count(res), 2);
  mproc_results_free(res);
  /* No items. */
  mproc_items none = {0};
  CHECK_OK(mproc_pool_map_items(p, echo_len, &none, NULL, &res, NULL));
  CHECK_INT_EQ(mproc_results_count(res), 0);
  mproc_results_free(res);
  CHECK_OK(mproc_pool_close(p));
  res = (mproc_results *)&res;
  CHECK_ERR(mproc_pool_map_items(p, echo_len, &in, NULL, &res, NULL), MPROC_ECLOSED);
  CHECK(res == NULL || res == (mproc_results *)&res);
  mproc_pool_destroy(p);
}

typedef int (*imap_items_fn)(mproc_pool *, mproc_task_fn, const mproc_items *, const mproc_stream_opts *,
                             mproc_stream **);

static void imap_items_checks(imap_items_fn imap) {
  mproc_pool *p = serial_pool();
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_stream *s = (mproc_stream *)&s;
  CHECK_ERR(imap(NULL, echo_len, &in, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, NULL, &in, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, echo_len, NULL, NULL, &s), MPROC_EINVAL);
  CHECK_ERR(imap(p, echo_len, &in, NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_ITEMS; i++) {
    mproc_items b = bad_items(i);
    int r = imap(p, echo_len, &b, NULL, &s);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_items(%zu): %s", i, mproc_err_name(r));
  }
  for (size_t i = 0; i < N_BAD_STREAM_OPTS; i++) {
    int r = imap(p, echo_len, &in, &bad_stream_opts[i], &s);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_stream_opts[%zu]: %s", i, mproc_err_name(r));
  }
  CHECK(s == (mproc_stream *)&s);
  /* A lazy input's failure: its code once, then the end. */
  mproc_items lazy = mproc_items_lazy(lazy_fails, NULL);
  /* A window no memory holds over an input of unknown length: -ENOMEM, nothing started. */
  CHECK_ERR(imap(p, echo_len, &lazy, &(mproc_stream_opts){.max_in_flight = SIZE_MAX}, &s), MPROC_ENOMEM);
  CHECK(s == (mproc_stream *)&s);
  CHECK_OK(imap(p, echo_len, &lazy, NULL, &s));
  int64_t index;
  mproc_item r;
  CHECK_OK(mproc_stream_next_item(s, INFINITY, &index, &r, NULL));
  CHECK_ERR(mproc_stream_next_item(s, INFINITY, &index, &r, NULL), MPROC_EIO);
  CHECK_ERR(mproc_stream_next_item(s, INFINITY, &index, &r, NULL), MPROC_EEOF);
  mproc_stream_destroy(s);
  CHECK_OK(mproc_pool_close(p));
  CHECK_ERR(imap(p, echo_len, &in, NULL, &s), MPROC_ECLOSED);
  mproc_pool_destroy(p);
}

static void bad_mproc_pool_imap_items(void) { imap_items_checks(mproc_pool_imap_items); }
static void bad_mproc_pool_imap_unordered_items(void) { imap_items_checks(mproc_pool_imap_unordered_items); }

static void bad_mproc_stream_next_item(void) {
  mproc_pool *p = serial_pool();
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_stream *s;
  int64_t index;
  mproc_item r;
  mproc_outcome o;
  CHECK_ERR(mproc_stream_next_item(NULL, 0, &index, &r, &o), MPROC_EINVAL);
  CHECK_OK(mproc_pool_imap_items(p, echo_len, &in, NULL, &s));
  CHECK_ERR(mproc_stream_next_item(s, NAN, &index, &r, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_stream_next_item(s, 0, NULL, &r, &o), MPROC_EINVAL);
  CHECK_ERR(mproc_stream_next_item(s, 0, &index, NULL, &o), MPROC_EINVAL);
  CHECK_OK(mproc_stream_next_item(s, INFINITY, &index, &r, NULL));
  CHECK_OK(mproc_stream_next_item(s, -INFINITY, &index, &r, &o));
  for (size_t i = 0; i < N_FOREVER; i++)
    CHECK_ERR(mproc_stream_next_item(s, forever_timeouts[i], &index, &r, &o), MPROC_EEOF);
  mproc_stream_destroy(s);
  /* On a stream of fixed-size records too, and after the pool is gone. */
  int rec[2] = {1, 2};
  CHECK_OK(mproc_pool_imap(p, return_int, rec, 2, sizeof *rec, sizeof(int), NULL, &s));
  mproc_pool_destroy(p);
  CHECK_ERR(mproc_stream_next_item(s, INFINITY, &index, &r, &o), MPROC_ECLOSED);
  mproc_stream_destroy(s);
}

static void bad_mproc_results_count(void) { CHECK_INT_EQ(mproc_results_count(NULL), 0); }

static void bad_mproc_results_get(void) {
  mproc_pool *p = serial_pool();
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_results *res;
  CHECK_OK(mproc_pool_map_items(p, echo_len, &in, NULL, &res, NULL));
  const void *data = &data;
  size_t len = 7;
  CHECK_ERR(mproc_results_get(NULL, 0, &data, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_results_get(res, 0, NULL, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_results_get(res, 0, &data, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_results_get(res, 2, &data, &len), MPROC_EINVAL);
  CHECK_ERR(mproc_results_get(res, SIZE_MAX, &data, &len), MPROC_EINVAL);
  CHECK_OK(mproc_results_get(res, 1, &data, &len));
  CHECK_INT_EQ(len, sizeof(uint64_t));
  mproc_results_free(res);
  mproc_pool_destroy(p);
}

static void bad_mproc_results_free(void) { mproc_results_free(NULL); }

static void bad_mproc_parallel_run_items(void) {
  mproc_parallel *par = serial_parallel();
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_results *res = (mproc_results *)&res;
  CHECK_ERR(mproc_parallel_run_items(NULL, echo_len, &in, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run_items(par, NULL, &in, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run_items(par, echo_len, NULL, &res, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_run_items(par, echo_len, &in, NULL, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_ITEMS; i++) {
    mproc_items b = bad_items(i);
    int r = mproc_parallel_run_items(par, echo_len, &b, &res, NULL);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_items(%zu): %s", i, mproc_err_name(r));
  }
  mproc_items lazy = mproc_items_lazy(lazy_fails, NULL);
  CHECK_ERR(mproc_parallel_run_items(par, echo_len, &lazy, &res, NULL), MPROC_EIO);
  mproc_results_free(res);
  mproc_parallel_destroy(par);
}

static void bad_mproc_parallel_call_items(void) {
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_results *res = (mproc_results *)&res;
  mproc_parallel_opts serial = {.backend = MPROC_BACKEND_SERIAL};
  CHECK_ERR(mproc_parallel_call_items(NULL, &in, &res, &serial, NULL), MPROC_EINVAL);
  CHECK(res == NULL); /* set on every path */
  CHECK_ERR(mproc_parallel_call_items(echo_len, NULL, &res, &serial, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_call_items(echo_len, &in, NULL, &serial, NULL), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_ITEMS; i++) {
    mproc_items b = bad_items(i);
    int r = mproc_parallel_call_items(echo_len, &b, &res, &serial, NULL);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_items(%zu): %s", i, mproc_err_name(r));
  }
  mproc_parallel_opts bad = {.backend = MPROC_BACKEND_SERIAL, .timeout = NAN};
  CHECK_ERR(mproc_parallel_call_items(echo_len, &in, &res, &bad, NULL), MPROC_EINVAL);
  mproc_items lazy = mproc_items_lazy(lazy_fails, NULL);
  CHECK_ERR(mproc_parallel_call_items(echo_len, &lazy, &res, &serial, NULL), MPROC_EIO);
  mproc_results_free(res);
  mproc_parallel_shutdown();
}

static void bad_mproc_parallel_stream_items(void) {
  mproc_parallel *par = serial_parallel();
  mproc_items in = mproc_items_array(two_items, 2);
  mproc_stream *s = (mproc_stream *)&s;
  CHECK_ERR(mproc_parallel_stream_items(NULL, echo_len, &in, MPROC_RETURN_GENERATOR, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream_items(par, NULL, &in, MPROC_RETURN_GENERATOR, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream_items(par, echo_len, NULL, MPROC_RETURN_GENERATOR, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream_items(par, echo_len, &in, MPROC_RETURN_GENERATOR, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream_items(par, echo_len, &in, (mproc_return_as)3, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream_items(par, echo_len, &in, MPROC_RETURN_LIST, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_parallel_stream_items(par, echo_len, &in, (mproc_return_as)-1, &s), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_ITEMS; i++) {
    mproc_items b = bad_items(i);
    int r = mproc_parallel_stream_items(par, echo_len, &b, MPROC_RETURN_GENERATOR_UNORDERED, &s);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_items(%zu): %s", i, mproc_err_name(r));
  }
  CHECK(s == (mproc_stream *)&s);
  mproc_parallel_destroy(par);
}

/* ---- the result cache ---- */

static char cache_dir[256];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

static mproc_cache *cache_make(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(cache_dir, sizeof cache_dir, "%s/mproc-badinput-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  CHECK(mkdtemp(cache_dir) != NULL);
  mproc_cache *c = NULL;
  CHECK_OK(mproc_cache_open(&c, cache_dir, NULL));
  return c;
}

static void cache_end(mproc_cache *c) {
  mproc_cache_close(c);
  CHECK_INT_EQ(nftw(cache_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int fails_task(const void *arg, size_t len, mproc_task *t) {
  return mproc_task_fail(t, MPROC_ERANGE, "no");
}

/* Per-call options every call that takes them refuses with -EINVAL (for a 4-byte argument). */
static const mproc_cache_span span_past_end = {2, 3}, span_wraps = {SIZE_MAX, 2}, span_huge = {0, SIZE_MAX};
static const mproc_cache_call_opts bad_call_opts[] = {
    {.key = "k", .key_len = 1, .ignore = &span_past_end, .n_ignore = 1}, /* key and ignore */
    {.key_len = 1},                                                      /* NULL key, a length */
    {.key_len = SIZE_MAX},
    {.n_ignore = 1}, /* NULL ignore, a count */
    {.ignore = &span_past_end, .n_ignore = 1},
    {.ignore = &span_wraps, .n_ignore = 1},
    {.ignore = &span_huge, .n_ignore = 1},
};
#define N_BAD_CALL_OPTS (sizeof bad_call_opts / sizeof *bad_call_opts)

static void bad_mproc_cache_open(void) {
  mproc_cache *c = (mproc_cache *)&c;
  CHECK_ERR(mproc_cache_open(NULL, "/tmp", NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "", NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "/tmp/mproc-badinput-never", &(mproc_cache_opts){.compress_level = 20}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "/tmp/mproc-badinput-never", &(mproc_cache_opts){.compress_level = INT_MAX}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "/tmp/mproc-badinput-never", &(mproc_cache_opts){.compress_level = -2}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "/tmp/mproc-badinput-never", &(mproc_cache_opts){.compress_level = INT_MIN}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "/nonexistent-mproc-parent/cache", NULL), MPROC_ENOENT);
  CHECK_ERR(mproc_cache_open(&c, "/dev/null", NULL), MPROC_ENOTDIR);
  CHECK(c == (mproc_cache *)&c);
}

static void bad_mproc_cache_close(void) {
  mproc_cache_close(NULL);
  mproc_cache *c = cache_make();
  cache_end(c);
}

typedef int (*cache_call_fn)(mproc_cache *, mproc_task_fn, const void *, size_t,
                             const mproc_cache_call_opts *, mproc_cache_result **);

static int call_no_opts(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                        const mproc_cache_call_opts *opts, mproc_cache_result **out) {
  return mproc_cache_call(c, fn, arg, len, out);
}

static void cache_call_checks(cache_call_fn call, int with_opts) {
  mproc_cache *c = cache_make();
  mproc_cache_result *r = NULL;
  int arg = 5;
  CHECK_ERR(call(NULL, return_int, &arg, sizeof arg, NULL, &r), MPROC_EINVAL);
  CHECK_ERR(call(c, NULL, &arg, sizeof arg, NULL, &r), MPROC_EINVAL);
  CHECK_ERR(call(c, return_int, NULL, 1, NULL, &r), MPROC_EINVAL);
  CHECK_ERR(call(c, return_int, NULL, SIZE_MAX, NULL, &r), MPROC_EINVAL);
  CHECK_ERR(call(c, return_int, &arg, sizeof arg, NULL, NULL), MPROC_EINVAL);
  if (with_opts)
    for (size_t i = 0; i < N_BAD_CALL_OPTS; i++) {
      int e = call(c, return_int, &arg, sizeof arg, &bad_call_opts[i], &r);
      if (e != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_call_opts[%zu]: %s", i, mproc_err_name(e));
      mproc_cache_result_release(r);
      r = NULL;
    }
  CHECK_OK(call(c, return_int, NULL, 0, NULL, &r)); /* an empty argument */
  mproc_cache_result_release(r);
  CHECK_ERR(call(c, fails_task, &arg, sizeof arg, NULL, &r), MPROC_ERANGE);
  CHECK_STR_EQ(mproc_cache_result_message(r), "no");
  mproc_cache_result_release(r);
  cache_end(c);
}

static void bad_mproc_cache_call(void) { cache_call_checks(call_no_opts, 0); }
static void bad_mproc_cache_call_with(void) { cache_call_checks(mproc_cache_call_with, 1); }

static void bad_mproc_cache_result_data(void) { CHECK(mproc_cache_result_data(NULL) == NULL); }
static void bad_mproc_cache_result_len(void) { CHECK_INT_EQ(mproc_cache_result_len(NULL), 0); }
static void bad_mproc_cache_result_hit(void) { CHECK_INT_EQ(mproc_cache_result_hit(NULL), 0); }
static void bad_mproc_cache_result_store_error(void) {
  CHECK_INT_EQ(mproc_cache_result_store_error(NULL), 0);
}
static void bad_mproc_cache_result_message(void) { CHECK_STR_EQ(mproc_cache_result_message(NULL), ""); }
static void bad_mproc_cache_result_release(void) { mproc_cache_result_release(NULL); }

static void bad_mproc_cache_contains(void) {
  mproc_cache *c = cache_make();
  int arg = 5;
  CHECK_ERR(mproc_cache_contains(NULL, return_int, &arg, sizeof arg), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_contains(c, NULL, &arg, sizeof arg), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_contains(c, return_int, NULL, 1), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_contains(c, return_int, NULL, SIZE_MAX), MPROC_EINVAL);
  CHECK_INT_EQ(mproc_cache_contains(c, return_int, &arg, sizeof arg), 0);
  CHECK_INT_EQ(mproc_cache_contains(c, return_int, NULL, 0), 0);
  cache_end(c);
}

typedef int (*entry_fn)(mproc_cache *, mproc_task_fn, const void *, size_t, const mproc_cache_call_opts *,
                        mproc_cache_entry **);

static void entry_call_checks(entry_fn call, int absent_code) {
  mproc_cache *c = cache_make();
  mproc_cache_entry *e = (mproc_cache_entry *)&e;
  int arg = 5;
  CHECK_ERR(call(NULL, return_int, &arg, sizeof arg, NULL, &e), MPROC_EINVAL);
  CHECK_ERR(call(c, NULL, &arg, sizeof arg, NULL, &e), MPROC_EINVAL);
  CHECK_ERR(call(c, return_int, NULL, 1, NULL, &e), MPROC_EINVAL);
  for (size_t i = 0; i < N_BAD_CALL_OPTS; i++) {
    int r = call(c, return_int, &arg, sizeof arg, &bad_call_opts[i], &e);
    if (r != MPROC_EINVAL) mtest_fail(__FILE__, __LINE__, "bad_call_opts[%zu]: %s", i, mproc_err_name(r));
  }
  e = (mproc_cache_entry *)&e;
  CHECK_ERR(call(c, fails_task, &arg, sizeof arg, NULL, &e), absent_code);
  CHECK(e == NULL);
  cache_end(c);
}

static int lookup_no_out(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                         const mproc_cache_call_opts *opts, mproc_cache_entry **out) {
  return out ? mproc_cache_lookup(c, fn, arg, len, opts, out) : MPROC_EINVAL;
}

static void bad_mproc_cache_lookup(void) {
  entry_call_checks(lookup_no_out, 0);
  /* out may be NULL. */
  mproc_cache *c = cache_make();
  int arg = 5;
  CHECK_INT_EQ(mproc_cache_lookup(c, return_int, &arg, sizeof arg, NULL, NULL), 0);
  cache_end(c);
}

static void bad_mproc_cache_shelve(void) {
  entry_call_checks(mproc_cache_shelve, MPROC_ERANGE);
  mproc_cache *c = cache_make();
  int arg = 5;
  CHECK_ERR(mproc_cache_shelve(c, return_int, &arg, sizeof arg, NULL, NULL), MPROC_EINVAL);
  cache_end(c);
}

/* A cache with one stored entry and a handle to it. */
static mproc_cache_entry *shelved(mproc_cache *c) {
  mproc_cache_entry *e = NULL;
  int arg = 5;
  CHECK_OK(mproc_cache_shelve(c, return_int, &arg, sizeof arg, NULL, &e));
  return e;
}

static void bad_mproc_cache_entry_load(void) {
  mproc_cache *c = cache_make();
  mproc_cache_entry *e = shelved(c);
  mproc_cache_result *r = (mproc_cache_result *)&r;
  CHECK_ERR(mproc_cache_entry_load(NULL, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_load(e, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_cache_entry_clear(e));
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT); /* cleared */
  CHECK(r == NULL);
  mproc_cache_close(c); /* the handle outlives its cache */
  r = (mproc_cache_result *)&r;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ECLOSED);
  CHECK(r == NULL);
  mproc_cache_entry_release(e);
  CHECK_INT_EQ(nftw(cache_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void bad_mproc_cache_entry_clear(void) {
  mproc_cache *c = cache_make();
  mproc_cache_entry *e = shelved(c);
  CHECK_ERR(mproc_cache_entry_clear(NULL), MPROC_EINVAL);
  CHECK_OK(mproc_cache_entry_clear(e));
  CHECK_OK(mproc_cache_entry_clear(e)); /* already gone */
  mproc_cache_close(c);
  CHECK_ERR(mproc_cache_entry_clear(e), MPROC_ECLOSED);
  mproc_cache_entry_release(e);
  CHECK_INT_EQ(nftw(cache_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void bad_mproc_cache_entry_stat(void) {
  mproc_cache *c = cache_make();
  mproc_cache_entry *e = shelved(c);
  mproc_cache_entry_info info;
  CHECK_ERR(mproc_cache_entry_stat(NULL, &info), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_stat(e, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_cache_entry_stat(e, &info));
  CHECK_OK(mproc_cache_entry_clear(e));
  CHECK_ERR(mproc_cache_entry_stat(e, &info), MPROC_ENOENT);
  mproc_cache_close(c);
  CHECK_ERR(mproc_cache_entry_stat(e, &info), MPROC_ECLOSED);
  mproc_cache_entry_release(e);
  CHECK_INT_EQ(nftw(cache_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void bad_mproc_cache_entry_release(void) { mproc_cache_entry_release(NULL); }

static void bad_mproc_cache_list(void) {
  mproc_cache *c = cache_make();
  mproc_cache_entry_release(shelved(c));
  mproc_cache_entry_info info[2];
  size_t count = 99;
  CHECK_ERR(mproc_cache_list(NULL, NULL, info, 2, &count), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_list(c, NULL, info, 2, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_list(c, NULL, NULL, 1, &count), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_list(c, NULL, NULL, SIZE_MAX, &count), MPROC_EINVAL);
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &count));
  CHECK_INT_EQ(count, 1);
  CHECK_OK(mproc_cache_list(c, nop, info, 2, &count)); /* a function with no entry */
  CHECK_INT_EQ(count, 0);
  cache_end(c);
}

static void bad_mproc_cache_clear(void) {
  CHECK_ERR(mproc_cache_clear(NULL), MPROC_EINVAL);
  mproc_cache *c = cache_make();
  CHECK_OK(mproc_cache_clear(c)); /* empty */
  CHECK_OK(mproc_cache_clear(c));
  cache_end(c);
}

static void bad_mproc_cache_clear_function(void) {
  mproc_cache *c = cache_make();
  CHECK_ERR(mproc_cache_clear_function(NULL, nop), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_clear_function(c, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_cache_clear_function(c, nop)); /* no entry */
  cache_end(c);
}

static void bad_mproc_cache_reduce(void) {
  mproc_cache *c = cache_make();
  mproc_cache_entry_release(shelved(c));
  CHECK_ERR(mproc_cache_reduce(NULL, -1, -1), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce(c, -1, NAN), MPROC_EINVAL);
  CHECK_OK(mproc_cache_reduce(c, INT64_MIN, -INFINITY));
  CHECK_OK(mproc_cache_reduce(c, INT64_MAX, INFINITY));
  CHECK_OK(mproc_cache_reduce(c, -1, DBL_MAX));
  CHECK_OK(mproc_cache_reduce(c, -1, 1e300));
  size_t count;
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &count));
  CHECK_INT_EQ(count, 1); /* none of those removes anything */
  cache_end(c);
}

static void bad_mproc_cache_reduce_size(void) {
  mproc_cache *c = cache_make();
  mproc_cache_entry_release(shelved(c));
  const int64_t nl = MPROC_CACHE_NO_LIMIT;
  CHECK_ERR(mproc_cache_reduce_size(NULL, nl, nl, nl), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, -2, nl, nl), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, INT64_MIN, nl, nl), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, nl, -2, nl), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, nl, INT64_MIN, nl), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, nl, nl, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, nl, nl, -2), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, nl, nl, -INFINITY), MPROC_EINVAL);
  CHECK_OK(mproc_cache_reduce_size(c, INT64_MAX, INT64_MAX, INFINITY));
  CHECK_OK(mproc_cache_reduce_size(c, nl, nl, 1e300));
  CHECK_OK(mproc_cache_reduce_size(c, nl, nl, DBL_MAX));
  size_t count;
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &count));
  CHECK_INT_EQ(count, 1);
  cache_end(c);
}

static void bad_mproc_cache_get_stats(void) {
  mproc_cache *c = cache_make();
  mproc_cache_stats st;
  CHECK_ERR(mproc_cache_get_stats(NULL, &st), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_get_stats(c, NULL), MPROC_EINVAL);
  cache_end(c);
}

static void bad_mproc_cache_expires_after(void) {
  mproc_cache_entry_info info = {.created_ns = 0};
  double s = 1.0;
  CHECK_INT_EQ(mproc_cache_expires_after(NULL, &s), 0);
  CHECK_INT_EQ(mproc_cache_expires_after(&info, NULL), 0);
  double nan = NAN, inf = INFINITY, huge = 1e300, neg = -1;
  CHECK_INT_EQ(mproc_cache_expires_after(&info, &nan), 0);
  CHECK_INT_EQ(mproc_cache_expires_after(&info, &neg), 0);
  CHECK_INT_EQ(mproc_cache_expires_after(&info, &inf), 1);
  CHECK_INT_EQ(mproc_cache_expires_after(&info, &huge), 1);
  info.created_ns = INT64_MIN;
  CHECK_INT_EQ(mproc_cache_expires_after(&info, &s), 0);
  info.created_ns = INT64_MAX; /* from the future */
  CHECK_INT_EQ(mproc_cache_expires_after(&info, &s), 1);
}
/* ---- the table: one row per public function ---- */

struct row {
  const char *name;
  void (*check)(void);
  const char *no_bad_input; /* why the function takes no input that could be bad (its row still calls it) */
};

#define ROW(name) \
  { #name, bad_##name, NULL }
#define NO_BAD_INPUT(name, why) \
  { #name, bad_##name, why }

static const struct row rows[] = {
    ROW(mproc__task_return_slow),
    ROW(mproc_array_create),
    ROW(mproc_array_data),
    ROW(mproc_array_destroy),
    ROW(mproc_array_length),
    ROW(mproc_array_lock),
    ROW(mproc_as_completed_add),
    ROW(mproc_as_completed_create),
    ROW(mproc_as_completed_destroy),
    ROW(mproc_as_completed_next),
    ROW(mproc_backend_available),
    ROW(mproc_barrier_abort),
    ROW(mproc_barrier_broken),
    ROW(mproc_barrier_create),
    ROW(mproc_barrier_destroy),
    ROW(mproc_barrier_init),
    ROW(mproc_barrier_n_waiting),
    ROW(mproc_barrier_parties),
    ROW(mproc_barrier_reset),
    NO_BAD_INPUT(mproc_barrier_size, "takes nothing"),
    ROW(mproc_barrier_wait),
    ROW(mproc_cache_call),
    ROW(mproc_cache_call_with),
    ROW(mproc_cache_clear),
    ROW(mproc_cache_clear_function),
    ROW(mproc_cache_close),
    ROW(mproc_cache_contains),
    ROW(mproc_cache_entry_clear),
    ROW(mproc_cache_entry_load),
    ROW(mproc_cache_entry_release),
    ROW(mproc_cache_entry_stat),
    ROW(mproc_cache_expires_after),
    ROW(mproc_cache_get_stats),
    ROW(mproc_cache_list),
    ROW(mproc_cache_lookup),
    ROW(mproc_cache_open),
    ROW(mproc_cache_reduce),
    ROW(mproc_cache_reduce_size),
    ROW(mproc_cache_result_data),
    ROW(mproc_cache_result_hit),
    ROW(mproc_cache_result_len),
    ROW(mproc_cache_result_message),
    ROW(mproc_cache_result_release),
    ROW(mproc_cache_result_store_error),
    ROW(mproc_cache_shelve),
    ROW(mproc_condition_create),
    ROW(mproc_condition_destroy),
    ROW(mproc_condition_init),
    ROW(mproc_condition_lock),
    ROW(mproc_condition_notify),
    ROW(mproc_condition_notify_all),
    NO_BAD_INPUT(mproc_condition_size, "takes nothing"),
    ROW(mproc_condition_wait),
    ROW(mproc_condition_wait_for),
    NO_BAD_INPUT(mproc_cpu_count, "takes nothing; never less than 1"),
    NO_BAD_INPUT(mproc_current_process_name, "takes nothing; a static name"),
    ROW(mproc_err_name),
    ROW(mproc_event_clear),
    ROW(mproc_event_create),
    ROW(mproc_event_destroy),
    ROW(mproc_event_init),
    ROW(mproc_event_is_set),
    ROW(mproc_event_set),
    NO_BAD_INPUT(mproc_event_size, "takes nothing"),
    ROW(mproc_event_wait),
    ROW(mproc_executor_create),
    ROW(mproc_executor_destroy),
    ROW(mproc_executor_map),
    ROW(mproc_executor_shutdown),
    ROW(mproc_executor_submit),
    ROW(mproc_executor_with),
    ROW(mproc_free),
    ROW(mproc_future_add_done_callback),
    ROW(mproc_future_cancel),
    ROW(mproc_future_cancelled),
    ROW(mproc_future_done),
    ROW(mproc_future_error),
    ROW(mproc_future_outcome),
    ROW(mproc_future_release),
    ROW(mproc_future_result),
    ROW(mproc_future_running),
    ROW(mproc_future_wait),
    ROW(mproc_futures_wait),
    ROW(mproc_init),
    NO_BAD_INPUT(mproc_last_error_message, "takes nothing; never NULL"),
    ROW(mproc_lock_acquire),
    ROW(mproc_lock_consistent),
    ROW(mproc_lock_create),
    ROW(mproc_lock_destroy),
    ROW(mproc_lock_init),
    ROW(mproc_lock_release),
    NO_BAD_INPUT(mproc_lock_size, "takes nothing"),
    ROW(mproc_parallel_call),
    ROW(mproc_parallel_create),
    ROW(mproc_parallel_destroy),
    ROW(mproc_parallel_n_jobs),
    ROW(mproc_parallel_run),
    ROW(mproc_parallel_call_items),
    ROW(mproc_parallel_run_items),
    NO_BAD_INPUT(mproc_parallel_shutdown, "takes nothing; called with nothing kept, twice"),
    ROW(mproc_parallel_stream),
    ROW(mproc_parallel_stream_items),
    ROW(mproc_pipe_create),
    ROW(mproc_pipe_destroy),
    ROW(mproc_pipe_poll),
    ROW(mproc_pipe_recv),
    ROW(mproc_pipe_recv_alloc),
    ROW(mproc_pipe_send),
    ROW(mproc_pool_apply),
    ROW(mproc_pool_apply_async),
    ROW(mproc_pool_close),
    ROW(mproc_pool_create),
    ROW(mproc_pool_destroy),
    ROW(mproc_pool_imap),
    ROW(mproc_pool_imap_items),
    ROW(mproc_pool_imap_unordered),
    ROW(mproc_pool_imap_unordered_items),
    ROW(mproc_pool_join),
    ROW(mproc_pool_map),
    ROW(mproc_pool_map_items),
    ROW(mproc_pool_submit),
    ROW(mproc_pool_terminate),
    ROW(mproc_pool_with),
    ROW(mproc_pool_workers),
    ROW(mproc_process_destroy),
    ROW(mproc_process_exit_status),
    ROW(mproc_process_exitcode),
    ROW(mproc_process_is_alive),
    ROW(mproc_process_join),
    ROW(mproc_process_sentinel),
    ROW(mproc_process_kill),
    ROW(mproc_process_name),
    ROW(mproc_process_pid),
    ROW(mproc_process_send_signal),
    ROW(mproc_process_start),
    ROW(mproc_process_terminate),
    ROW(mproc_queue_close),
    ROW(mproc_queue_shutdown),
    ROW(mproc_queue_create),
    ROW(mproc_queue_destroy),
    ROW(mproc_queue_empty),
    ROW(mproc_queue_full),
    ROW(mproc_queue_get),
    ROW(mproc_queue_get_alloc),
    ROW(mproc_queue_get_nowait),
    ROW(mproc_queue_init),
    ROW(mproc_queue_join),
    ROW(mproc_queue_put),
    ROW(mproc_queue_put_nowait),
    ROW(mproc_queue_qsize),
    ROW(mproc_queue_size),
    ROW(mproc_queue_task_done),
    ROW(mproc_replace_allocator),
    ROW(mproc_results_count),
    ROW(mproc_results_free),
    ROW(mproc_results_get),
    NO_BAD_INPUT(mproc_seed_for, "every (seed, index) is valid: the extremes are called"),
    ROW(mproc_semaphore_acquire),
    ROW(mproc_semaphore_create),
    ROW(mproc_semaphore_destroy),
    ROW(mproc_semaphore_init),
    ROW(mproc_semaphore_release),
    NO_BAD_INPUT(mproc_semaphore_size, "takes nothing"),
    ROW(mproc_semaphore_value),
    ROW(mproc_shared_alloc),
    ROW(mproc_shared_contains),
    ROW(mproc_shared_free),
    ROW(mproc_shm_addr),
    ROW(mproc_shm_create),
    ROW(mproc_shm_destroy),
    ROW(mproc_shm_name),
    ROW(mproc_shm_open),
    ROW(mproc_shm_recv),
    ROW(mproc_shm_send),
    ROW(mproc_shm_size),
    NO_BAD_INPUT(mproc_shutdown, "takes nothing; called with no server, twice"),
    ROW(mproc_stream_destroy),
    ROW(mproc_stream_next),
    ROW(mproc_stream_next_item),
    ROW(mproc_strerror),
    ROW(mproc_task_fail),
    ROW(mproc_task_return_buffer),
    ROW(mproc_task_seed),
    NO_BAD_INPUT(mproc_version, "takes nothing; returns the library's version"),
    NO_BAD_INPUT(mproc_version_string, "takes nothing; returns a static string"),
    ROW(mproc_wait),
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* Every MPROC_API function of the headers in include/mproc/, generated at build time by
 * scripts/public-functions.sh. */
static const char *const public_functions[] = {
#include "public_functions.inc"
};
#define N_PUBLIC (sizeof public_functions / sizeof *public_functions)

/* Each row runs as its own test, named after its function: its own process, timeout and leak check. */
__attribute__((constructor)) static void register_rows(void) {
  for (size_t i = 0; i < N_ROWS; i++) mtest_register(rows[i].name, rows[i].check, 30.0);
}

MTEST(coverage_of_public_functions) {
  int missing = 0, stale = 0;
  for (size_t i = 0; i < N_PUBLIC; i++) {
    size_t j = 0;
    while (j < N_ROWS && strcmp(rows[j].name, public_functions[i]) != 0) j++;
    if (j == N_ROWS) {
      fprintf(stderr, "#   public function without a row in tests/test_badinput.c: %s\n",
              public_functions[i]);
      missing++;
    }
  }
  for (size_t j = 0; j < N_ROWS; j++) {
    size_t i = 0;
    while (i < N_PUBLIC && strcmp(rows[j].name, public_functions[i]) != 0) i++;
    if (i == N_PUBLIC) {
      fprintf(stderr, "#   row for a function that is not public (any more): %s\n", rows[j].name);
      stale++;
    }
    for (size_t k = 0; k < j; k++)
      if (strcmp(rows[k].name, rows[j].name) == 0) {
        fprintf(stderr, "#   two rows for %s\n", rows[j].name);
        stale++;
      }
    CHECK(rows[j].check != NULL);
    CHECK(rows[j].no_bad_input == NULL || rows[j].no_bad_input[0] != '\0');
  }
  CHECK_INT_CMP(N_PUBLIC, >, 100); /* the generated list is not empty or cut short */
  CHECK_INT_EQ(missing, 0);
  CHECK_INT_EQ(stale, 0);
}
