/* test_exec.c: pools whose workers are fresh images of the program (MPROC_START_EXEC), and the (object,
 * offset) function identity they need. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"
#include "face/face.h"
#include "platform/platform.h"

static int global_value = 7; /* the caller changes it: an exec'd worker still sees 7 */
static char init_text[64];   /* set by the initializer in each worker */
static char fin_path[256];

static int square(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  if (n == -1) raise(SIGSEGV);
  int sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

typedef struct image_facts {
  int global_value;
  int env_seen;          /* MPROC_EXEC_TEMPLATE still in the environment */
  int leaked_fd_open;    /* the caller's inheritable descriptor is open here */
  uintptr_t square_addr; /* where square is in this image */
  uintptr_t square_off;  /* and its offset in its object */
  char object[64];
} image_facts;

static int facts(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int fd = *(const int *)arg;
  image_facts f = {0};
  f.global_value = global_value;
  f.env_seen = getenv("MPROC_EXEC_TEMPLATE") != NULL;
  f.leaked_fd_open = fcntl(fd, F_GETFD) >= 0;
  f.square_addr = (uintptr_t)square;
  if (mproc__plat_code_locate((const void *)(uintptr_t)square, f.object, sizeof f.object, &f.square_off) != 0)
    return mproc_task_fail(t, -EIO, "square not located");
  return mproc_task_return(t, &f, sizeof f);
}

static int init_copy(const void *arg, size_t len, mproc_task *t) {
  (void)t;
  snprintf(init_text, sizeof init_text, "%.*s", (int)len, (const char *)arg);
  /* the finalizer's file: named in the argument after the text */
  const char *sep = memchr(arg, '|', len);
  if (sep) {
    snprintf(fin_path, sizeof fin_path, "%.*s", (int)(len - (size_t)(sep + 1 - (const char *)arg)), sep + 1);
    init_text[sep - (const char *)arg] = '\0';
  }
  return 0;
}

static int read_init(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  return mproc_task_return(t, init_text, strlen(init_text) + 1);
}

static void append_finalizer(void) {
  int fd = open(fin_path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "f", 1) != 1) _exit(3);
    close(fd);
  }
}

static mproc_pool *exec_pool(int workers, const mproc_pool_opts *extra) {
  mproc_pool_opts o = extra ? *extra : (mproc_pool_opts){0};
  o.workers = workers;
  o.backend = MPROC_BACKEND_PROCESS;
  o.start_method = MPROC_START_EXEC;
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &o));
  CHECK(mproc__engine_fresh_image(&p->eng) && !mproc__template_foreign(&p->eng));
  return p;
}

static int nothing_process(const void *arg, size_t len) {
  (void)arg, (void)len;
  return 0;
}

MTEST(exec_start_method_rules) {
  mproc_pool *p;
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.start_method = 4}), MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(
                &p, &(mproc_pool_opts){.backend = MPROC_BACKEND_THREAD, .start_method = MPROC_START_EXEC}),
            MPROC_EINVAL);
  CHECK_ERR(mproc_pool_create(
                &p, &(mproc_pool_opts){.backend = MPROC_BACKEND_SERIAL, .start_method = MPROC_START_EXEC}),
            MPROC_EINVAL);
  mproc_process *proc;
  CHECK_ERR(mproc_process_start(&proc, nothing_process, NULL, 0,
                                &(mproc_process_opts){.start_method = MPROC_START_EXEC}),
            MPROC_EINVAL);
  /* MPROC_BACKEND=serial switches a program to the serial backend: its exec pools follow */
  setenv("MPROC_BACKEND", "serial", 1);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.start_method = MPROC_START_EXEC}));
  int n = 5, out = 0;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &out, sizeof out, NULL));
  CHECK_INT_EQ(out, 25);
  mproc_pool_destroy(p);
  unsetenv("MPROC_BACKEND");
  /* fork and forkserver pools send plain pointers */
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .start_method = MPROC_START_FORK}));
  CHECK(!mproc__engine_fresh_image(&p->eng) && p->eng.sh->objs == NULL);
  mproc_pool_destroy(p);
}

MTEST(exec_map_and_submit) {
  mproc_pool *p = exec_pool(2, NULL);
  enum { N = 3000 };
  static int in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], i * i);
  /* one object and one function: translated once, whatever the batches */
  CHECK_INT_EQ(p->eng.sh->objs->count, 1);
  CHECK_STR_EQ(p->eng.sh->objs->path[0], "");
  mproc_future *f[8];
  for (int i = 0; i < 8; i++) {
    int n = 100 + i;
    CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f[i]));
  }
  for (int i = 0; i < 8; i++) {
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(f[i], MPROC_FOREVER, &data, &len));
    CHECK_INT_EQ(len, sizeof(int));
    CHECK_INT_EQ(*(const int *)data, (100 + i) * (100 + i));
    mproc_future_release(f[i]);
  }
  mproc_pool_destroy(p);
}

MTEST(exec_workers_are_fresh_images) {
  global_value = 99; /* a forked worker would see this */
  int fds[2];
  CHECK(pipe(fds) == 0); /* inheritable on purpose: it must not reach the exec'd image */
  mproc_pool *p = exec_pool(1, NULL);
  image_facts f;
  CHECK_OK(mproc_pool_apply(p, facts, &fds[1], sizeof fds[1], &f, sizeof f, NULL));
  CHECK_INT_EQ(f.global_value, 7);
  CHECK_INT_EQ(f.env_seen, 0);
  CHECK_INT_EQ(f.leaked_fd_open, 0);
  char obj[64];
  uintptr_t off = 0;
  CHECK_OK(mproc__plat_code_locate((const void *)(uintptr_t)square, obj, sizeof obj, &off));
  CHECK_STR_EQ(f.object, obj);
  CHECK_STR_EQ(obj, ""); /* the test program itself */
  CHECK_INT_EQ(f.square_off, off);
  /* with ASLR on, a PIE program is elsewhere in the new image; not asserted, as ASLR may be off */
  if (f.square_addr != (uintptr_t)square)
    printf("# exec'd image: square at %#lx, here at %#lx\n", (unsigned long)f.square_addr,
           (unsigned long)(uintptr_t)square);
  mproc_pool_destroy(p);
  close(fds[0]);
  close(fds[1]);
  /* a fork pool, for contrast */
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .start_method = MPROC_START_FORK}));
  CHECK(pipe(fds) == 0);
  CHECK_OK(mproc_pool_apply(p, facts, &fds[1], sizeof fds[1], &f, sizeof f, NULL));
  CHECK_INT_EQ(f.global_value, 99);
  CHECK_INT_EQ(f.square_addr, (uintptr_t)square);
  mproc_pool_destroy(p);
  close(fds[0]);
  close(fds[1]);
  global_value = 7;
}

MTEST(exec_initializer_and_finalizer) {
  char path[] = "/tmp/mproc-exec-fin-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  char arg[128];
  int len = snprintf(arg, sizeof arg, "hello|%s", path);
  mproc_pool *p = exec_pool(2, &(mproc_pool_opts){.initializer = init_copy,
                                                  .init_arg = arg,
                                                  .init_arg_len = (size_t)len,
                                                  .finalizer = append_finalizer,
                                                  .max_tasks_per_child = 3});
  char out[6][64];
  CHECK_OK(
      mproc_pool_map(p, read_init, NULL, 6, 0, out, sizeof out[0], &(mproc_map_opts){.chunk_size = 1}, NULL));
  for (int i = 0; i < 6; i++) CHECK_STR_EQ(out[i], "hello");
  mproc_pool_destroy(p);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK_INT_CMP(st.st_size, >=, 2); /* every worker ended normally: retired after 3 tasks, or stopped */
  unlink(path);
}

MTEST(exec_crash_is_reported_and_the_pool_goes_on) {
  mproc_pool *p = exec_pool(2, NULL);
  int n = -1;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ECRASHED);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_CRASHED);
  CHECK_INT_EQ(o.signal, SIGSEGV);
  mproc_future_release(f);
  enum { N = 200 };
  int in[N], out[N], codes[N];
  for (int i = 0; i < N; i++) in[i] = i;
  in[50] = -1;
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){.on_error = MPROC_ON_ERROR_CONTINUE, .item_codes = codes}, &rep),
            MPROC_ECRASHED);
  CHECK_INT_EQ(rep.failed, 1);
  CHECK_INT_EQ(codes[50], MPROC_ECRASHED);
  for (int i = 0; i < N; i++)
    if (i != 50) CHECK_INT_EQ(out[i], i * i);
  mproc_pool_destroy(p);
}

MTEST(exec_function_in_no_object_fails_clearly) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  void *code = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(code != MAP_FAILED);
  mproc_task_fn jit = (mproc_task_fn)(uintptr_t)code; /* never called: no image holds it */
  mproc_pool *p = exec_pool(1, NULL);
  int n = 3;
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, jit, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ENOTSUP);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_FAILED);
  CHECK(strstr(o.message, "no loaded object") != NULL);
  mproc_future_release(f);
  int in[10] = {0}, out[10];
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, jit, in, 10, sizeof *in, out, sizeof *out, NULL, &rep), MPROC_ENOTSUP);
  CHECK(strstr(rep.message, "no loaded object") != NULL);
  /* the pool is unharmed */
  int sq = 0;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &sq, sizeof sq, NULL));
  CHECK_INT_EQ(sq, 9);
  mproc_pool_destroy(p);
  /* an initializer no image holds: the pool is not made */
  mproc_pool *q = NULL;
  CHECK_ERR(mproc_pool_create(
                &q, &(mproc_pool_opts){.workers = 1, .start_method = MPROC_START_EXEC, .initializer = jit}),
            MPROC_ENOTSUP);
  CHECK(q == NULL);
  munmap(code, pg);
}

MTEST(exec_code_locate_and_base_agree) {
  char obj[256];
  uintptr_t off = 0, base = 0;
  char err[128];
  CHECK_OK(mproc__plat_code_locate((const void *)(uintptr_t)square, obj, sizeof obj, &off));
  CHECK_STR_EQ(obj, "");
  CHECK_OK(mproc__plat_code_base(obj, &base, err, sizeof err));
  CHECK_INT_EQ(base + off, (uintptr_t)square);
  /* a function of libc: a named object */
  CHECK_OK(mproc__plat_code_locate((const void *)(uintptr_t)getpid, obj, sizeof obj, &off));
  CHECK(obj[0] != '\0');
  CHECK_OK(mproc__plat_code_base(obj, &base, err, sizeof err));
  CHECK_INT_EQ(base + off, (uintptr_t)getpid);
  CHECK_ERR(mproc__plat_code_locate((const void *)(uintptr_t)getpid, obj, 2, &off), -ENAMETOOLONG);
  CHECK_ERR(mproc__plat_code_base("/nonexistent/libnothing.so", &base, err, sizeof err), -ENOENT);
  CHECK(err[0] != '\0');
}

/* Copies the file at from to to (mode 0755). */
static void copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  CHECK(in >= 0);
  int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  CHECK(out >= 0);
  char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0) CHECK_INT_EQ(write(out, buf, (size_t)n), n);
  close(in);
  close(out);
}

MTEST(exec_function_from_a_library_opened_after_start) {
  mproc_pool *p = exec_pool(2, NULL);
  void *h = dlopen(EXECFN_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!h) fprintf(stderr, "# dlopen: %s\n", dlerror());
  CHECK(h != NULL);
  mproc_task_fn cube = (mproc_task_fn)(uintptr_t)dlsym(h, "execfn_cube");
  CHECK(cube != NULL);
  int n = 4, c = 0;
  CHECK_OK(mproc_pool_apply(p, cube, &n, sizeof n, &c, sizeof c, NULL));
  CHECK_INT_EQ(c, 64);
  enum { N = 500 };
  int in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i % 100;
  CHECK_OK(mproc_pool_map(p, cube, in, N, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], in[i] * in[i] * in[i]);
  /* the main program's functions still resolve beside it */
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &c, sizeof c, NULL));
  CHECK_INT_EQ(c, 16);
  CHECK_INT_EQ(p->eng.sh->objs->count, 2);
  CHECK_STR_EQ(p->eng.sh->objs->path[0], EXECFN_PATH); /* in order of first use */
  CHECK_STR_EQ(p->eng.sh->objs->path[1], "");
  mproc_pool_destroy(p);

  /* a library the workers cannot load (its file is gone): the task fails with the loader's message and the
   * worker goes on */
  char copy[] = "/tmp/mproc-execfn-XXXXXX";
  int fd = mkstemp(copy);
  CHECK(fd >= 0);
  close(fd);
  copy_file(EXECFN_PATH, copy);
  void *h2 = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
  CHECK(h2 != NULL);
  mproc_task_fn cube2 = (mproc_task_fn)(uintptr_t)dlsym(h2, "execfn_cube");
  CHECK(cube2 != NULL);
  unlink(copy);
  p = exec_pool(1, NULL);
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, cube2, &n, sizeof n, NULL, &f));
  CHECK_ERR(mproc_future_error(f, MPROC_FOREVER), MPROC_ENOTSUP);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK(strstr(o.message, "cannot load") != NULL);
  mproc_future_release(f);
  mproc_map_report rep;
  CHECK_ERR(mproc_pool_map(p, cube2, in, 10, sizeof *in, out, sizeof *out,
                           &(mproc_map_opts){.on_error = MPROC_ON_ERROR_CONTINUE}, &rep),
            MPROC_ENOTSUP);
  CHECK_INT_EQ(rep.failed, 10);
  CHECK(strstr(rep.message, "cannot load") != NULL);
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &c, sizeof c, NULL));
  CHECK_INT_EQ(c, 16);
  mproc_pool_destroy(p);
  dlclose(h2);
  dlclose(h);
}

MTEST_HELPER(exec_pool_then_wait) {
  (void)argc;
  int fd = atoi(argv[1]);
  mproc_pool *p;
  if (mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_EXEC}) != 0)
    return 3;
  return mtest_report_pool_pids(p, fd);
}

MTEST(exec_template_and_workers_die_with_the_caller) {
  mtest_check_die_with_caller("exec_pool_then_wait", 9, 2000); /* the template and 8 workers' pids */
}
