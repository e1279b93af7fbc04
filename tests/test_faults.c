/* test_faults.c: issue 17's fault-injection group (ctest label faults).  Faults come through the two doors
 * the library keeps for them: the platform layer's system-call table (mproc__plat_sys) and the allocator
 * (mproc_replace_allocator).
 *
 * - Every create or open call of the public headers (one row each in `creates` below) is run once to count
 *   the allocations and the table's calls it makes in the calling thread, then once per site: the k-th
 *   allocation fails, or the k-th call of one table entry fails with the errno it gives in practice.  Each
 *   round must return the injected error (or succeed where the library has a fallback), leave the output
 *   untouched, and leave nothing behind: allocations balanced, no descriptor, child, shared mapping or
 *   /dev/shm entry more than before (mtest_mark).  A last round without faults must then succeed.
 * - EINTR: every table entry that can be interrupted in practice fails with EINTR at every other call, in
 *   the caller and in every process it forks, while a tour of public operations runs; each must succeed.
 * - fork failing with EAGAIN for each start method, when the pool is made and later, when a worker must be
 *   replaced: the create returns the error, or the tasks complete as MPROC_ELOST within a bound, with a
 *   message naming the failure; never a hang with no worker.
 * - The cache's store: write, renameat and fsync failing with ENOSPC and EIO at each of their calls.
 * The injections that exist elsewhere (test_process.c fork_failure_is_reported, test_worker_faults.c
 * fork_failure_leaves_nothing and no_worker_can_start_fails_tasks_not_the_caller, test_queue.c's and
 * test_cache.c's failing mmap, test_shared.c no_memfd, test_platform.c's flaky send, test_cache.c
 * store_failure_keeps_result) stay where they are; this file covers the whole list systematically.
 *
 * `test_faults --figures 1` prints, after each test, the injections made and the sites covered
 * (docs/reliability.md quotes them). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "platform/platform.h"

/* ---- the injector: an allocator and a system-call table that count, and fail on demand ---- */

enum site {
  S_ALLOC, /* mproc__malloc, mproc__calloc, mproc__realloc (through the replaced allocator) */
  S_FORK,
  S_PIPE2,
  S_MMAP,
  S_OPENAT,
  S_READ,
  S_WRITE,
  S_RENAMEAT,
  S_FSYNC,
  S_MEMFD,
  S_FTRUNCATE,
  S_PIDFD,
  S_SEND,
  S_PPOLL, /* from here on: the waits, failed only with EINTR */
  S_WAITPID,
  S_RECV,
  S_RECVMSG,
  S_SENDMSG,
  S_FUTEX,
  S_FUTEXV,
  S_N
};
#define S_FAILABLE ((1u << S_PPOLL) - 1) /* the sites the sweeps fail with an error */
static const char *const site_name[S_N] = {
    "allocation", "fork",  "pipe2",        "mmap",      "openat",     "read",       "write",
    "renameat",   "fsync", "memfd_create", "ftruncate", "pidfd_open", "send",       "ppoll",
    "waitpid",    "recv",  "recvmsg",      "sendmsg",   "futex_wait", "futex_waitv"};
/* The errno each entry fails with when a test fails it: the one it gives in practice. */
static const int site_errno[S_N] = {ENOMEM, EAGAIN, EMFILE, ENOMEM, EMFILE, EIO,     ENOSPC,
                                    EIO,    EIO,    EMFILE, ENOSPC, EMFILE, ENOBUFS, EINTR,
                                    EINTR,  EINTR,  EINTR,  EINTR,  EINTR,  EINTR};
/* The entries whose call can be interrupted by a signal (EINTR): the others never return it. */
static const bool site_interruptible[S_N] = {
    [S_OPENAT] = true,  [S_READ] = true,  [S_WRITE] = true,   [S_FSYNC] = true, [S_FTRUNCATE] = true,
    [S_SEND] = true,    [S_PPOLL] = true, [S_WAITPID] = true, [S_RECV] = true,  [S_RECVMSG] = true,
    [S_SENDMSG] = true, [S_FUTEX] = true, [S_FUTEXV] = true};

enum mode { M_OFF, M_COUNT, M_FAIL, M_EINTR };
static struct {
  pid_t pid;      /* the test's process: calls in the processes it forks are not counted nor failed */
  enum mode mode; /* M_EINTR holds in forked processes too */
  enum site site; /* M_FAIL: which site fails */
  long fail_at;   /* M_FAIL: at its fail_at-th call (1-based) */
  int err;        /* M_FAIL: with this errno (0: the site's own, site_errno) */
  long calls[S_N];
  long injected, eintr_injected;
} inj;
static _Thread_local bool inj_thread; /* counting and failing only in the thread that runs the call */
static atomic_long live_blocks;       /* allocations not yet freed, every thread of the test's process */

static bool inj_fails(enum site s) {
  if (inj.mode == M_EINTR) {
    if (!site_interruptible[s]) return false;
    long k = __atomic_add_fetch(&inj.calls[s], 1, __ATOMIC_RELAXED);
    if (k % 2 == 0) return false;
    __atomic_add_fetch(&inj.eintr_injected, 1, __ATOMIC_RELAXED);
    errno = EINTR;
    return true;
  }
  if (inj.mode == M_OFF || !inj_thread || getpid() != inj.pid) return false;
  long k = ++inj.calls[s];
  if (inj.mode != M_FAIL || s != inj.site || k != inj.fail_at) return false;
  inj.injected++;
  errno = inj.err ? inj.err : site_errno[s];
  return true;
}

static bool counts_live(void) { return getpid() == inj.pid; }
static void *f_malloc(size_t n) {
  if (inj_fails(S_ALLOC)) return NULL;
  void *p = malloc(n);
  if (p && counts_live()) atomic_fetch_add(&live_blocks, 1);
  return p;
}
static void *f_calloc(size_t a, size_t b) {
  if (inj_fails(S_ALLOC)) return NULL;
  void *p = calloc(a, b);
  if (p && counts_live()) atomic_fetch_add(&live_blocks, 1);
  return p;
}
static void *f_realloc(void *old, size_t n) {
  if (inj_fails(S_ALLOC)) return NULL;
  void *p = realloc(old, n);
  if (p && !old && counts_live()) atomic_fetch_add(&live_blocks, 1);
  return p;
}
static void f_free(void *p) {
  if (p && counts_live()) atomic_fetch_sub(&live_blocks, 1);
  free(p);
}

static struct mproc__plat_syscalls real_sys;
static pid_t w_fork(void) { return inj_fails(S_FORK) ? -1 : real_sys.fork(); }
static int w_pipe2(int fds[2], int flags) { return inj_fails(S_PIPE2) ? -1 : real_sys.pipe2(fds, flags); }
static void *w_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off) {
  return inj_fails(S_MMAP) ? MAP_FAILED : real_sys.mmap(a, n, prot, flags, fd, off);
}
static int w_openat(int dir, const char *path, int flags, mode_t mode) {
  return inj_fails(S_OPENAT) ? -1 : real_sys.openat(dir, path, flags, mode);
}
static ssize_t w_read(int fd, void *buf, size_t n) {
  return inj_fails(S_READ) ? -1 : real_sys.read(fd, buf, n);
}
static ssize_t w_write(int fd, const void *buf, size_t n) {
  return inj_fails(S_WRITE) ? -1 : real_sys.write(fd, buf, n);
}
static int w_renameat(int fd1, const char *a, int fd2, const char *b) {
  return inj_fails(S_RENAMEAT) ? -1 : real_sys.renameat(fd1, a, fd2, b);
}
static int w_fsync(int fd) { return inj_fails(S_FSYNC) ? -1 : real_sys.fsync(fd); }
static int w_memfd(const char *name, unsigned flags) {
  return inj_fails(S_MEMFD) ? -1 : real_sys.memfd_create(name, flags);
}
static int w_ftruncate(int fd, off_t n) { return inj_fails(S_FTRUNCATE) ? -1 : real_sys.ftruncate(fd, n); }
static int w_pidfd(pid_t pid, unsigned flags) {
  return inj_fails(S_PIDFD) ? -1 : real_sys.pidfd_open(pid, flags);
}
static ssize_t w_send(int s, const void *buf, size_t n, int flags) {
  return inj_fails(S_SEND) ? -1 : real_sys.send(s, buf, n, flags);
}
static int w_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
  return inj_fails(S_PPOLL) ? -1 : real_sys.ppoll(fds, n, ts, mask);
}
static pid_t w_waitpid(pid_t pid, int *st, int opts) {
  return inj_fails(S_WAITPID) ? -1 : real_sys.waitpid(pid, st, opts);
}
static ssize_t w_recv(int s, void *buf, size_t n, int flags) {
  return inj_fails(S_RECV) ? -1 : real_sys.recv(s, buf, n, flags);
}
static ssize_t w_recvmsg(int s, struct msghdr *m, int flags) {
  return inj_fails(S_RECVMSG) ? -1 : real_sys.recvmsg(s, m, flags);
}
static ssize_t w_sendmsg(int s, const struct msghdr *m, int flags) {
  return inj_fails(S_SENDMSG) ? -1 : real_sys.sendmsg(s, m, flags);
}
static int w_futex(uint32_t *addr, uint32_t expected, const struct timespec *rel) {
  return inj_fails(S_FUTEX) ? -1 : real_sys.futex_wait(addr, expected, rel);
}
static int w_futexv(void *w, unsigned n, const struct timespec *abs) {
  return inj_fails(S_FUTEXV) ? -1 : real_sys.futex_waitv(w, n, abs);
}

/* Puts the counting allocator and table in place (nothing counted nor failed yet). */
static void injector_install(void) {
  inj.pid = getpid();
  inj.mode = M_OFF;
  inj_thread = true;
  mproc__plat_syscalls_reset();
  real_sys = mproc__plat_sys;
  _Static_assert(sizeof(struct mproc__plat_syscalls) == (S_N - 1) * sizeof(void *),
                 "each entry of the table needs its site and wrapper here");
  mproc__plat_sys = (struct mproc__plat_syscalls){
      .fork = w_fork,
      .pipe2 = w_pipe2,
      .mmap = w_mmap,
      .openat = w_openat,
      .read = w_read,
      .write = w_write,
      .renameat = w_renameat,
      .fsync = w_fsync,
      .memfd_create = w_memfd,
      .ftruncate = w_ftruncate,
      .pidfd_open = w_pidfd,
      .send = w_send,
      .ppoll = w_ppoll,
      .waitpid = w_waitpid,
      .recv = w_recv,
      .recvmsg = w_recvmsg,
      .sendmsg = w_sendmsg,
      .futex_wait = w_futex,
      .futex_waitv = w_futexv,
  };
  CHECK_OK(mproc_replace_allocator(f_malloc, f_realloc, f_calloc, f_free));
}
static void injector_remove(void) {
  inj.mode = M_OFF;
  mproc__plat_syscalls_reset();
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
}
static void inj_start(enum mode m, enum site s, long k) {
  memset(inj.calls, 0, sizeof inj.calls);
  inj.site = s;
  inj.fail_at = k;
  inj.mode = m;
}

/* --figures: what each test injected, for docs/reliability.md. */
static bool figures;
static const char *figures_option(const char *value) {
  figures = strcmp(value, "0") != 0;
  return NULL;
}
__attribute__((constructor)) static void register_options(void) {
  mtest_register_option("--figures", figures_option);
}

/* ---- tasks and the rows: every public create/open call ---- */

static int square(const void *arg, size_t len, mproc_task *t) {
  int n = len == sizeof(int) ? *(const int *)arg : 0, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}
static int child_ok(const void *arg, size_t len) {
  (void)arg, (void)len;
  return 0;
}

static char cache_dir[80];

typedef struct create_row {
  const char *name;
  int (*make)(void **out);
  void (*drop)(void *obj);
  bool needs_server; /* mproc_init() first (forkserver rows) */
  bool cold;         /* the first call makes process-wide state (the shared arena): each round runs in a fresh
                        child process, and a successful one may keep that state */
  bool calls_vary;   /* its calls vary with chance: the exec start method makes a fresh image again (another
                        fork) when the pool's address is taken in one, as address-space randomisation may do;
                        the sweep covers the calls of its leanest run */
} create_row;

static int pool_of(void **out, mproc_backend b, mproc_start_method m) {
  return mproc_pool_create((mproc_pool **)out,
                           &(mproc_pool_opts){.workers = 2, .backend = b, .start_method = m});
}
static int mk_pool_fork(void **o) { return pool_of(o, MPROC_BACKEND_PROCESS, MPROC_START_FORK); }
static int mk_pool_fsrv(void **o) { return pool_of(o, MPROC_BACKEND_PROCESS, MPROC_START_FORKSERVER); }
static int mk_pool_exec(void **o) { return pool_of(o, MPROC_BACKEND_PROCESS, MPROC_START_EXEC); }
static int mk_pool_thread(void **o) { return pool_of(o, MPROC_BACKEND_THREAD, 0); }
static int mk_pool_serial(void **o) { return pool_of(o, MPROC_BACKEND_SERIAL, 0); }
static void drop_pool(void *o) { /* works (also after a fallback), then goes */
  int in[4] = {1, 2, 3, 4}, out[4];
  CHECK_OK(mproc_pool_map(o, square, in, 4, sizeof *in, out, sizeof *out, NULL, NULL));
  CHECK_INT_EQ(out[3], 16);
  mproc_pool_destroy(o);
}
static int mk_executor(void **o) {
  return mproc_executor_create((mproc_executor **)o, &(mproc_pool_opts){.workers = 2});
}
static int mk_parallel(void **o) {
  return mproc_parallel_create((mproc_parallel **)o, &(mproc_parallel_opts){.n_jobs = 2});
}
static void drop_parallel(void *o) { mproc_parallel_destroy(o); }
static int with_body(mproc_pool *p, void *user) {
  (void)p;
  return *(int *)user = 1, 0;
}
/* The `with` calls hold nothing after they return: *out gets a marker the drop ignores. */
static int mk_pool_with(void **o) {
  int ran = 0, r = mproc_pool_with(&(mproc_pool_opts){.workers = 2}, with_body, &ran);
  if (r == 0) *o = &cache_dir;
  return r == 0 && !ran ? -1 : r;
}
static int mk_executor_with(void **o) {
  int ran = 0, r = mproc_executor_with(&(mproc_pool_opts){.workers = 2}, with_body, &ran);
  if (r == 0) *o = &cache_dir;
  return r == 0 && !ran ? -1 : r;
}
static void drop_nothing(void *o) { (void)o; }
static int mk_init(void **o) {
  int r = mproc_init(NULL, NULL);
  if (r == 0) *o = &cache_dir;
  return r;
}
static void drop_init(void *o) { (void)o, mproc_shutdown(); }
static int mk_queue(void **o) {
  return mproc_queue_create((mproc_queue **)o, &(mproc_queue_opts){.buffer_bytes = 4096});
}
static int mk_queue_init(void **o) {
  static _Alignas(64) unsigned char mem[16384];
  return mproc_queue_init((mproc_queue **)o, mem, sizeof mem, &(mproc_queue_opts){.buffer_bytes = 4096});
}
static void drop_queue(void *o) { mproc_queue_destroy(o); }
static int mk_pipe(void **o, int duplex) {
  mproc_pipe *a, *b;
  int r = mproc_pipe_create(&a, &b, duplex);
  if (r == 0) {
    mproc_pipe **pair = malloc(2 * sizeof *pair); /* not the library's: neither counted nor failed */
    if (!pair) return mproc_pipe_destroy(a), mproc_pipe_destroy(b), -1;
    pair[0] = a, pair[1] = b;
    *o = pair;
  }
  return r;
}
static int mk_pipe_simplex(void **o) { return mk_pipe(o, 0); }
static int mk_pipe_duplex(void **o) { return mk_pipe(o, 1); }
static void drop_pipe(void *o) {
  mproc_pipe **pair = o;
  mproc_pipe_destroy(pair[0]);
  mproc_pipe_destroy(pair[1]);
  free(pair);
}
static int mk_shm_anon(void **o) { return mproc_shm_create((mproc_shm **)o, 65536, NULL); }
static char shm_name[64], open_name[64];
static int mk_shm_named(void **o) {
  return mproc_shm_create((mproc_shm **)o, 65536, &(mproc_shm_opts){.name = shm_name});
}
static void drop_shm(void *o) { mproc_shm_destroy(o); }
static mproc_shm *shm_to_open;
static int mk_shm_open(void **o) { return mproc_shm_open((mproc_shm **)o, open_name); }
static int shm_socks[2] = {-1, -1};
static int mk_shm_recv(void **o) {
  inj_thread = false; /* the sending side is not under test here */
  CHECK_OK(mproc_shm_send(shm_to_open, shm_socks[0]));
  inj_thread = true;
  int r = mproc_shm_recv((mproc_shm **)o, shm_socks[1]);
  char c;
  while (recv(shm_socks[1], &c, 1, MSG_DONTWAIT) > 0) { /* drain what a failed receive left */
  }
  return r;
}
static int mk_array(void **o) { return mproc_array_create((mproc_array **)o, 8, 100, 1); }
static int mk_array_nolock(void **o) { return mproc_array_create((mproc_array **)o, 8, 100, 0); }
static void drop_array(void *o) { mproc_array_destroy(o); }
static int mk_shared(void **o) { return mproc_shared_alloc(o, 1000); }
static int mk_shared_big(void **o) { return mproc_shared_alloc(o, (size_t)8 << 20); }
static void drop_shared(void *o) { CHECK_OK(mproc_shared_free(o)); }
static int mk_lock(void **o) { return mproc_lock_create((mproc_lock **)o, 0); }
static int mk_rlock(void **o) { return mproc_lock_create((mproc_lock **)o, 1); }
static void drop_lock(void *o) { mproc_lock_destroy(o); }
static int mk_semaphore(void **o) { return mproc_semaphore_create((mproc_semaphore **)o, 1, 2); }
static void drop_semaphore(void *o) { mproc_semaphore_destroy(o); }
static int mk_event(void **o) { return mproc_event_create((mproc_event **)o); }
static void drop_event(void *o) { mproc_event_destroy(o); }
static mproc_lock *cond_lock;
static int mk_condition(void **o) { return mproc_condition_create((mproc_condition **)o, cond_lock); }
static void drop_condition(void *o) { mproc_condition_destroy(o); }
static int mk_barrier(void **o) { return mproc_barrier_create((mproc_barrier **)o, 2, NULL, NULL); }
static void drop_barrier(void *o) { mproc_barrier_destroy(o); }
static int mk_cache(void **o) { return mproc_cache_open((mproc_cache **)o, cache_dir, NULL); }
static void drop_cache(void *o) { mproc_cache_close(o); }
static int process_of(void **o, mproc_start_method m) {
  return mproc_process_start((mproc_process **)o, child_ok, "abc", 3,
                             &(mproc_process_opts){.start_method = m});
}
static int mk_process_fork(void **o) { return process_of(o, MPROC_START_FORK); } /* the one it takes */
static void drop_process(void *o) {
  CHECK_OK(mproc_process_join(o, 10.0));
  CHECK_OK(mproc_process_destroy(o));
}
static mproc_pool *aux_pool; /* the pool of the rows that make something of a pool */
static mproc_future *aux_future;
static int mk_as_completed(void **o) {
  return mproc_as_completed_create((mproc_as_completed **)o, &aux_future, 1);
}
static void drop_as_completed(void *o) { mproc_as_completed_destroy(o); }
static int mk_submit(void **o) {
  int n = 3;
  return mproc_pool_submit(aux_pool, square, &n, sizeof n, NULL, (mproc_future **)o);
}
static void drop_future(void *o) {
  CHECK_OK(mproc_future_wait(o, 10.0));
  mproc_future_release(o);
}
static int imap_in[4] = {1, 2, 3, 4};
static int mk_imap(void **o) {
  return mproc_pool_imap(aux_pool, square, imap_in, 4, sizeof(int), sizeof(int), NULL, (mproc_stream **)o);
}
static void drop_stream(void *o) { mproc_stream_destroy(o); }

static const create_row creates[] = {
    {"pool_create(process, fork)", mk_pool_fork, drop_pool, false, false, false},
    {"pool_create(process, forkserver)", mk_pool_fsrv, drop_pool, true, false, false},
    {"pool_create(process, exec)", mk_pool_exec, drop_pool, false, false, true},
    {"pool_create(thread)", mk_pool_thread, drop_pool, false, false, false},
    {"pool_create(serial)", mk_pool_serial, drop_pool, false, false, false},
    {"executor_create", mk_executor, drop_pool, false, false, false},
    {"parallel_create", mk_parallel, drop_parallel, false, false, false},
    {"pool_with", mk_pool_with, drop_nothing, false, false, false},
    {"executor_with", mk_executor_with, drop_nothing, false, false, false},
    {"init (the fork server)", mk_init, drop_init, false, false, false},
    {"queue_create", mk_queue, drop_queue, false, false, false},
    {"queue_init", mk_queue_init, drop_queue, false, false, false},
    {"pipe_create(simplex)", mk_pipe_simplex, drop_pipe, false, false, false},
    {"pipe_create(duplex)", mk_pipe_duplex, drop_pipe, false, false, false},
    {"shm_create(anonymous)", mk_shm_anon, drop_shm, false, false, false},
    {"shm_create(named)", mk_shm_named, drop_shm, false, false, false},
    {"shm_open", mk_shm_open, drop_shm, false, false, false},
    {"shm_recv", mk_shm_recv, drop_shm, false, false, false},
    {"array_create(lock)", mk_array, drop_array, false, false, false},
    {"array_create(no lock)", mk_array_nolock, drop_array, false, false, false},
    {"shared_alloc(small)", mk_shared, drop_shared, false, false, false},
    {"shared_alloc(8 MiB)", mk_shared_big, drop_shared, false, false, false},
    {"shared_alloc(the arena's first)", mk_shared, drop_shared, false, true, false},
    {"lock_create", mk_lock, drop_lock, false, false, false},
    {"lock_create(recursive)", mk_rlock, drop_lock, false, false, false},
    {"semaphore_create", mk_semaphore, drop_semaphore, false, false, false},
    {"event_create", mk_event, drop_event, false, false, false},
    {"condition_create", mk_condition, drop_condition, false, false, false},
    {"barrier_create", mk_barrier, drop_barrier, false, false, false},
    {"cache_open", mk_cache, drop_cache, false, false, false},
    {"process_start(fork)", mk_process_fork, drop_process, false, false, false},
    {"as_completed_create", mk_as_completed, drop_as_completed, false, false, false},
    {"pool_submit", mk_submit, drop_future, false, false, false},
    {"pool_imap", mk_imap, drop_stream, false, false, false},
};
#define NCREATES (sizeof creates / sizeof *creates)

/* What every row needs around it: a cache directory, a named segment to open, a socket pair, a lock, a pool
 * with a finished future.  Made before the injector counts, released after. */
static char cache_base[64];
static int rm_cb(const char *p, const struct stat *s, int flag, struct FTW *f) {
  (void)s, (void)flag, (void)f;
  return remove(p);
}
static void fixtures_make(void) {
  snprintf(cache_base, sizeof cache_base, "/tmp/mproc_faults.XXXXXX");
  CHECK(mkdtemp(cache_base) != NULL);
  snprintf(cache_dir, sizeof cache_dir, "%s/c", cache_base);
  /* not named mproc*: the other test files' leak checks, running meanwhile, would see them as theirs (the
   * rounds check the named row's name themselves) */
  snprintf(shm_name, sizeof shm_name, "faults_named_%d", (int)getpid());
  snprintf(open_name, sizeof open_name, "faults_open_%d", (int)getpid());
  CHECK_OK(mproc_shm_create(&shm_to_open, 4096, &(mproc_shm_opts){.name = open_name}));
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, shm_socks) == 0);
  CHECK_OK(mproc_lock_create(&cond_lock, 0));
  CHECK_OK(mproc_pool_create(&aux_pool, &(mproc_pool_opts){.workers = 1}));
  int n = 2;
  CHECK_OK(mproc_pool_submit(aux_pool, square, &n, sizeof n, NULL, &aux_future));
  CHECK_OK(mproc_future_wait(aux_future, 10.0));
}
static void fixtures_drop(void) {
  mproc_future_release(aux_future);
  mproc_pool_destroy(aux_pool);
  mproc_lock_destroy(cond_lock);
  close(shm_socks[0]);
  close(shm_socks[1]);
  mproc_shm_destroy(shm_to_open);
  nftw(cache_base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the sweep ---- */

static long total_injections, total_sites, total_rounds;

/* Runs row r once with site s failing at its k-th call (k 0: none); checks the result and that nothing was
 * left.  Returns the call's code. */
static int run_round_here(const create_row *r, enum site s, long k);
static int run_round(const create_row *r, enum site s, long k) {
  if (!r->cold) return run_round_here(r, s, k);
  int fds[2];
  CHECK(pipe2(fds, O_CLOEXEC) == 0);
  fflush(NULL);
  pid_t pid = fork(); /* not through the table: this is the test's own */
  CHECK(pid >= 0);
  if (pid == 0) {
    inj.pid = getpid();
    int rc = run_round_here(r, s, k);
    CHECK(write(fds[1], &rc, sizeof rc) == sizeof rc);
    CHECK(write(fds[1], inj.calls, sizeof inj.calls) == sizeof inj.calls);
    CHECK(write(fds[1], &inj.injected, sizeof inj.injected) == sizeof inj.injected);
    _exit(0);
  }
  close(fds[1]);
  int rc = 0, st = 0;
  bool got = read(fds[0], &rc, sizeof rc) == sizeof rc &&
             read(fds[0], inj.calls, sizeof inj.calls) == sizeof inj.calls &&
             read(fds[0], &inj.injected, sizeof inj.injected) == sizeof inj.injected;
  close(fds[0]);
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(got && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  total_rounds++;
  return rc;
}
static int run_round_here(const create_row *r, enum site s, long k) {
  void *marker = &total_rounds, *obj = marker;
  long live_before = atomic_load(&live_blocks);
  mtest_mark();
  inj_start(k ? M_FAIL : M_COUNT, s, k);
  int rc = r->make(&obj);
  inj.mode = M_OFF;
  total_rounds++;
  if (k == 0) {
    if (rc != 0) mtest_fail(__FILE__, __LINE__, "%s without faults: %s", r->name, mproc_err_name(rc));
    r->drop(obj);
    if (r->cold) return rc;
  } else if (rc == 0) {
    r->drop(obj); /* a fallback took over: fine, as long as nothing is left */
  } else {
    if (obj != marker)
      mtest_fail(__FILE__, __LINE__, "%s, %s %ld failed: the output was written", r->name, site_name[s], k);
    if (rc != -site_errno[s])
      mtest_fail(__FILE__, __LINE__, "%s, %s %ld failing with %s: returned %s (%s)", r->name, site_name[s], k,
                 mproc_err_name(-site_errno[s]), mproc_err_name(rc), mproc_last_error_message());
  }
  long live = atomic_load(&live_blocks) - live_before;
  int leaks = mtest_leaks_since_mark();
  char path[96];
  snprintf(path, sizeof path, "/dev/shm/%s", shm_name);
  if (access(path, F_OK) == 0) {
    fprintf(stderr, "#   leak: %s\n", path);
    leaks++;
  }
  if (live != 0 || leaks != 0)
    mtest_fail(__FILE__, __LINE__,
               "%s, %s %ld failed (returned %s): %ld allocation(s), %d other thing(s) left", r->name,
               site_name[s], k, mproc_err_name(rc), live, leaks);
  return rc;
}

static long count_calls[S_N];
/* Counts row r's calls per site (a round without faults, twice: the counts must not change). */
static void count_row(const create_row *r) {
  if (!r->cold) { /* a first call, unchecked, makes what is made once per process (the shared arena) */
    void *obj;
    CHECK_OK(r->make(&obj));
    r->drop(obj);
  }
  run_round(r, S_ALLOC, 0);
  memcpy(count_calls, inj.calls, sizeof count_calls);
  for (int round = 0; round < (r->calls_vary ? 4 : 1); round++) {
    run_round(r, S_ALLOC, 0);
    for (int s = 0; s < S_N; s++) {
      if (inj.calls[s] != count_calls[s] && !r->calls_vary)
        mtest_fail(__FILE__, __LINE__, "%s: %s calls vary from one run to the next: %ld then %ld", r->name,
                   site_name[s], count_calls[s], inj.calls[s]);
      if (inj.calls[s] < count_calls[s]) count_calls[s] = inj.calls[s];
    }
  }
}

/* Every row, every site in `sites` (a bit per enum site), every call of it. */
static void sweep(unsigned sites) {
  injector_install();
  fixtures_make();
  long injections = 0, nsites = 0, fallbacks = 0;
  for (size_t i = 0; i < NCREATES; i++) {
    const create_row *r = &creates[i];
    if (r->needs_server) CHECK_OK(mproc_init(NULL, NULL));
    count_row(r);
    long n[S_N];
    memcpy(n, count_calls, sizeof n);
    for (int s = 0; s < S_N; s++) {
      if (!(sites & (1u << s))) continue;
      nsites += n[s];
      for (long k = 1; k <= n[s]; k++) {
        long before = inj.injected;
        bool fell_back = run_round(r, (enum site)s, k) == 0;
        fallbacks += fell_back;
        if (figures && fell_back) printf("#     %s %ld failing: succeeded all the same\n", site_name[s], k);
        injections += inj.injected - before;
      }
    }
    run_round(r, S_ALLOC, 0); /* and it works again */
    if (r->needs_server) mproc_shutdown();
    if (figures) {
      printf("#   %-34s", r->name);
      for (int s = 0; s < S_N; s++)
        if ((sites & (1u << s)) && n[s]) printf(" %s %ld", site_name[s], n[s]);
      printf("\n");
    }
  }
  fixtures_drop();
  injector_remove();
  total_injections += injections, total_sites += nsites;
  if (figures)
    printf("#   %zu calls, %ld sites, %ld injections (%ld taken by a fallback), %ld rounds, leaks 0\n",
           NCREATES, nsites, injections, fallbacks, total_rounds);
}

MTEST_TIMEOUT(allocation_failure_at_every_site_of_every_create, 300) { sweep(1u << S_ALLOC); }

MTEST_TIMEOUT(system_call_failure_at_every_site_of_every_create, 300) {
  sweep(S_FAILABLE & ~(1u << S_ALLOC));
}

/* ---- fork failing with EAGAIN, for each start method, at each moment a pool forks ----
 * The fork entry of every process of the test (the caller, the fork server, a template, the workers)
 * obeys a page shared with them all: the first `allow` forks succeed, every later one fails with EAGAIN.
 * An exec start method's template is a fresh image of the program with the real table: there, only the
 * caller's fork (of that image) can be failed. */
static struct forkctl {
  int32_t allow;
  uint32_t failed;
} * forkctl;
static pid_t (*fork_real)(void);
static pid_t counted_fork(void) {
  if (__atomic_sub_fetch(&forkctl->allow, 1, __ATOMIC_SEQ_CST) >= 0) return fork_real();
  __atomic_add_fetch(&forkctl->failed, 1, __ATOMIC_SEQ_CST);
  errno = EAGAIN;
  return -1;
}
static void forkctl_install(void) {
  forkctl = mmap(NULL, sizeof *forkctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(forkctl != MAP_FAILED);
  forkctl->allow = INT32_MAX;
  fork_real = mproc__plat_sys.fork;
  mproc__plat_sys.fork = counted_fork;
}
static void forkctl_remove(void) {
  mproc__plat_syscalls_reset();
  munmap(forkctl, sizeof *forkctl);
}

enum fork_when { AT_CREATE, AT_WORKERS, AT_REPLACEMENT };
static const char *const when_name[] = {"when the pool is made", "for every worker", "for every replacement"};

/* A bound on how long tasks may wait for a pool that cannot start a worker: never a hang. */
#define LOST_BOUND 10.0

static void fork_eagain(mproc_start_method m, enum fork_when when) {
  forkctl_install();
  if (m == MPROC_START_FORKSERVER) CHECK_OK(mproc_init(NULL, NULL)); /* the server has the counted fork */
  mtest_mark();
  /* forks that succeed: none; the template's (by the caller or the server); the template's and the two
   * first workers' (which run one task each, then end and must be replaced) */
  forkctl->allow = when == AT_CREATE ? 0 : when == AT_WORKERS ? 1 : 3;
  mproc_pool *p = NULL;
  int r = mproc_pool_create(
      &p, &(mproc_pool_opts){.workers = 2, .start_method = m, .max_tasks_per_child = when == AT_REPLACEMENT});
  if (when == AT_CREATE) {
    if (r != MPROC_EAGAIN)
      mtest_fail(__FILE__, __LINE__, "start method %d, fork failing %s: create returned %s", (int)m,
                 when_name[when], mproc_err_name(r));
    CHECK(p == NULL);
  } else {
    CHECK_OK(r);
    enum { N = 8 };
    mproc_future *f[N];
    int ok = 0, lost = 0, nf = 0, refused = 0;
    for (int i = 0; i < N; i++) { /* once the pool knows it is lost, it refuses more, saying why */
      int rs = mproc_pool_submit(p, square, &i, sizeof i, NULL, &f[nf]);
      if (rs == 0) {
        nf++;
        continue;
      }
      CHECK_ERR(rs, MPROC_EAGAIN);
      if (!strstr(mproc_last_error_message(), "no worker could be started"))
        mtest_fail(__FILE__, __LINE__, "a refused submission does not say why: \"%s\"",
                   mproc_last_error_message());
      refused++;
    }
    for (int i = 0; i < nf; i++) {
      if (mproc_future_wait(f[i], LOST_BOUND) != 0)
        mtest_fail(__FILE__, __LINE__,
                   "start method %d, fork failing %s: task %d not done after %.0f s (a hang)", (int)m,
                   when_name[when], i, LOST_BOUND);
      mproc_outcome o;
      CHECK_OK(mproc_future_outcome(f[i], &o));
      if (o.kind == MPROC_OUTCOME_OK) {
        ok++;
      } else {
        lost++;
        CHECK_INT_EQ(o.kind, MPROC_OUTCOME_LOST);
        CHECK_ERR(o.code, MPROC_EAGAIN);
        if (!strstr(o.message, "no worker could be started") || !strstr(o.message, mproc_strerror(-EAGAIN)))
          mtest_fail(__FILE__, __LINE__, "the lost task's message does not say why: \"%s\"", o.message);
      }
      mproc_future_release(f[i]);
    }
    CHECK_INT_EQ(ok + lost + refused, N);
    CHECK_INT_CMP(ok, <=, when == AT_WORKERS ? 0 : 2); /* a worker runs one task, then wants a successor */
    CHECK_INT_CMP(lost + refused, >=, 1);
    /* the pool says so from now on, at once */
    int n = 1, out;
    mproc_future *g;
    CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, NULL, &g), MPROC_EAGAIN);
    CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, &out, sizeof out, NULL, NULL), MPROC_EAGAIN);
    mproc_stream *st;
    CHECK_ERR(mproc_pool_imap(p, square, &n, 1, sizeof n, sizeof out, NULL, &st), MPROC_EAGAIN);
    if (!strstr(mproc_last_error_message(), "no worker could be started"))
      mtest_fail(__FILE__, __LINE__, "a refused imap does not say why: \"%s\"", mproc_last_error_message());
    mproc_pool_destroy(p);
  }
  CHECK_INT_CMP(forkctl->failed, >=, 1);
  if (mtest_leaks_since_mark() != 0) mtest_fail(__FILE__, __LINE__, "left behind (see above)");
  if (m == MPROC_START_FORKSERVER) mproc_shutdown();
  forkctl_remove();
}

MTEST(fork_eagain_fork_start) {
  for (int w = AT_CREATE; w <= AT_REPLACEMENT; w++) fork_eagain(MPROC_START_FORK, (enum fork_when)w);
}
MTEST(fork_eagain_forkserver_start) {
  for (int w = AT_CREATE; w <= AT_REPLACEMENT; w++) fork_eagain(MPROC_START_FORKSERVER, (enum fork_when)w);
}
MTEST(fork_eagain_exec_start) { fork_eagain(MPROC_START_EXEC, AT_CREATE); }

/* Parallel and the executor over a pool that cannot fork: the error comes back, nothing hangs. */
MTEST(fork_eagain_parallel_and_executor) {
  forkctl_install();
  forkctl->allow = 0;
  int in[4] = {1, 2, 3, 4}, out[4];
  CHECK_ERR(mproc_parallel_call(square, in, 4, sizeof *in, out, sizeof *out,
                                &(mproc_parallel_opts){.n_jobs = 2}, NULL),
            MPROC_EAGAIN);
  mproc_executor *ex = NULL;
  CHECK_ERR(mproc_executor_create(&ex, &(mproc_pool_opts){.workers = 2}), MPROC_EAGAIN);
  CHECK(ex == NULL);
  forkctl->allow = 1; /* the template, then no worker: the map fails, lost, within the bound */
  mproc_parallel *par;
  CHECK_OK(mproc_parallel_create(&par, &(mproc_parallel_opts){.n_jobs = 2}));
  mproc_map_report rep;
  double t0 = mproc__plat_now();
  CHECK_ERR(mproc_parallel_run(par, square, in, 4, sizeof *in, out, sizeof *out, NULL, &rep), MPROC_EAGAIN);
  CHECK_INT_CMP(mproc__plat_now() - t0, <, LOST_BOUND);
  /* the pool may learn it is lost before the run queues anything (the run is refused, and says why) or
   * after (its items complete as lost, and the report says why) */
  if (!strstr(rep.message, "no worker could be started") &&
      !strstr(mproc_last_error_message(), "no worker could be started"))
    mtest_fail(__FILE__, __LINE__, "neither the report nor the last error says why: \"%s\", \"%s\"",
               rep.message, mproc_last_error_message());
  mproc_parallel_destroy(par);
  forkctl_remove();
}

/* ---- EINTR everywhere ----
 * Every interruptible entry of the table fails with EINTR at every other call (its first, third...), in
 * this process and in every process it forks, while a tour of the public operations runs: each must
 * succeed, and each timed wait must still wait its whole timeout (a wait that took EINTR for a wake-up
 * or for the end of its time would return early). */

static void eintr_begin(void) {
  injector_install();
  inj_start(M_EINTR, S_ALLOC, 0);
}
static long eintr_end(void) {
  long n = inj.eintr_injected;
  injector_remove();
  if (figures) {
    printf("#   EINTR in the test's process, failed/calls:");
    for (int s = 0; s < S_N; s++)
      if (site_interruptible[s] && inj.calls[s])
        printf(" %s %ld/%ld", site_name[s], (inj.calls[s] + 1) / 2, inj.calls[s]);
    printf("\n");
  }
  return n;
}
/* A timed wait that nobody ends: it returns code, and not before its time (less a millisecond for the
 * rounding of the deadline: an early return taken for EINTR comes microseconds after the call). */
#define CHECK_WAITS_ITS_TIME(expr, code, t)                                                  \
  do {                                                                                       \
    double t0_ = mproc__plat_now();                                                          \
    CHECK_ERR(expr, code);                                                                   \
    double took_ = mproc__plat_now() - t0_;                                                  \
    if (took_ < (t)-0.001)                                                                   \
      mtest_fail(__FILE__, __LINE__, "%s returned after %.3f s of %.3f", #expr, took_, (t)); \
  } while (0)

static int crash_on_minus(const void *arg, size_t len, mproc_task *t) {
  int n = len == sizeof(int) ? *(const int *)arg : 0;
  if (n == -1) raise(SIGSEGV);
  if (n == -2)
    for (;;) pause();
  return square(arg, len, t);
}

static void pool_tour(const mproc_pool_opts *o) {
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, o));
  enum { N = 200 };
  int in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], i * i);
  mproc_stream *st;
  CHECK_OK(mproc_pool_imap_unordered(p, square, in, N, sizeof *in, sizeof *out, NULL, &st));
  int64_t idx, sum = 0, seen = 0;
  const void *res;
  while (mproc_stream_next(st, 10.0, &idx, &res, NULL) == 0) sum += *(const int *)res, seen++;
  CHECK_INT_EQ(seen, N);
  CHECK_INT_EQ(sum, (int64_t)(N - 1) * N * (2 * N - 1) / 6);
  mproc_stream_destroy(st);
  int n = 9, sq;
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, &sq, sizeof sq, NULL));
  CHECK_INT_EQ(sq, 81);
  if (o->backend != MPROC_BACKEND_THREAD) { /* a crash and a timeout: worker deaths, waits, replacements */
    mproc_future *f;
    int bad = -1;
    CHECK_OK(mproc_pool_submit(p, crash_on_minus, &bad, sizeof bad, NULL, &f));
    CHECK_ERR(mproc_future_error(f, 10.0), MPROC_ECRASHED);
    mproc_future_release(f);
    bad = -2;
    CHECK_OK(
        mproc_pool_submit(p, crash_on_minus, &bad, sizeof bad, &(mproc_submit_opts){.timeout = 0.05}, &f));
    CHECK_ERR(mproc_future_error(f, 10.0), MPROC_ETASKTIMEOUT);
    mproc_future_release(f);
    CHECK_OK(mproc_pool_apply(p, crash_on_minus, &n, sizeof n, &sq, sizeof sq, NULL));
    CHECK_INT_EQ(sq, 81);
  }
  CHECK_OK(mproc_pool_join(p, 10.0));
  mproc_pool_destroy(p);
}

MTEST_TIMEOUT(eintr_pools, 120) {
  eintr_begin();
  pool_tour(&(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_FORK});
  pool_tour(&(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_EXEC});
  pool_tour(&(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_THREAD});
  CHECK_OK(mproc_init(NULL, NULL));
  pool_tour(&(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_FORKSERVER});
  mproc_shutdown();
  int in[64], out[64];
  for (int i = 0; i < 64; i++) in[i] = i;
  CHECK_OK(mproc_parallel_call(square, in, 64, sizeof *in, out, sizeof *out,
                               &(mproc_parallel_opts){.n_jobs = 2}, NULL));
  CHECK_INT_EQ(out[63], 63 * 63);
  mproc_parallel_shutdown();
  CHECK_INT_CMP(eintr_end(), >, 0);
}

/* The other side of the IPC tour, in a child process (the table, in EINTR mode, comes with it). */
static mproc_queue *tq;
static mproc_pipe *tp_child;
static mproc_event *tev;
static mproc_semaphore *tsem;
static mproc_barrier *tbar;
static mproc_condition *tcond;
static uint32_t *tflag;
static int flag_set(void *u) { return __atomic_load_n((uint32_t *)u, __ATOMIC_ACQUIRE) != 0; }
static int ipc_child(const void *arg, size_t len) {
  (void)arg, (void)len;
  char buf[64];
  size_t n;
  if (mproc_queue_get(tq, buf, sizeof buf, &n, 10.0) != 0 || n != 5) return 1;
  if (mproc_queue_put(tq, "pong", 5, 10.0) != 0) return 2;
  if (mproc_pipe_recv(tp_child, buf, sizeof buf, &n, 10.0) != 0 || n != 3) return 3;
  if (mproc_pipe_send(tp_child, "ok", 3, 10.0) != 0) return 4;
  if (mproc_semaphore_acquire(tsem, 10.0) != 0) return 5;
  if (mproc_barrier_wait(tbar, 10.0) < 0) return 6;
  if (mproc_event_set(tev) != 0) return 7;
  mproc_lock *l = mproc_condition_lock(tcond);
  if (mproc_lock_acquire(l, 10.0) != 0) return 8;
  __atomic_store_n(tflag, 1, __ATOMIC_RELEASE);
  mproc_condition_notify_all(tcond);
  mproc_lock_release(l);
  return 0;
}

MTEST_TIMEOUT(eintr_ipc_sync_and_processes, 60) {
  eintr_begin();
  CHECK_OK(mproc_queue_create(&tq, NULL));
  mproc_pipe *tp;
  CHECK_OK(mproc_pipe_create(&tp, &tp_child, 1));
  CHECK_OK(mproc_event_create(&tev));
  CHECK_OK(mproc_semaphore_create(&tsem, 0, 1));
  CHECK_OK(mproc_barrier_create(&tbar, 2, NULL, NULL));
  CHECK_OK(mproc_condition_create(&tcond, NULL));
  CHECK_OK(mproc_shared_alloc((void **)&tflag, sizeof *tflag));
  *tflag = 0;
  /* timed waits that nobody ends: each waits its whole time */
  char buf[64];
  size_t n;
  CHECK_WAITS_ITS_TIME(mproc_queue_get(tq, buf, sizeof buf, &n, 0.05), -ETIMEDOUT, 0.05);
  CHECK_WAITS_ITS_TIME(mproc_pipe_recv(tp, buf, sizeof buf, &n, 0.05), -ETIMEDOUT, 0.05);
  CHECK_WAITS_ITS_TIME(mproc_event_wait(tev, 0.05), -ETIMEDOUT, 0.05);
  CHECK_WAITS_ITS_TIME(mproc_semaphore_acquire(tsem, 0.05), -ETIMEDOUT, 0.05);
  mproc_lock *l = mproc_condition_lock(tcond);
  CHECK_OK(mproc_lock_acquire(l, 1.0));
  CHECK_WAITS_ITS_TIME(mproc_condition_wait(tcond, 0.05), -ETIMEDOUT, 0.05);
  CHECK_OK(mproc_lock_release(l));
  mproc_waitable wq[2] = {mproc_waitable_queue(tq), mproc_waitable_pipe(tp)};
  CHECK_WAITS_ITS_TIME(mproc_wait(wq, 1, 0.05, NULL), 0, 0.05); /* a queue alone: futex_waitv */
  CHECK_WAITS_ITS_TIME(mproc_wait(wq, 2, 0.05, NULL), 0, 0.05); /* with a pipe: ppoll and a helper thread */
  /* and the same objects with a process at the other end */
  mproc_process *pr;
  CHECK_OK(mproc_process_start(&pr, ipc_child, NULL, 0, NULL));
  CHECK_OK(mproc_queue_put(tq, "ping", 5, 10.0));
  CHECK_OK(mproc_pipe_send(tp, "hi", 3, 10.0));
  CHECK_OK(mproc_semaphore_release(tsem, 1));
  CHECK_INT_CMP(mproc_barrier_wait(tbar, 10.0), >=, 0);
  CHECK_OK(mproc_event_wait(tev, 10.0));
  CHECK_OK(mproc_lock_acquire(l, 10.0));
  CHECK_OK(mproc_condition_wait_for(tcond, flag_set, tflag, 10.0));
  CHECK_OK(mproc_lock_release(l));
  mproc_waitable w[2] = {mproc_waitable_process(pr), mproc_waitable_pipe(tp)};
  size_t ready[2];
  CHECK_INT_CMP(mproc_wait(w, 2, 10.0, ready), >=, 1); /* how many are ready: none would be a timeout */
  CHECK_OK(mproc_queue_get(tq, buf, sizeof buf, &n, 10.0));
  CHECK_STR_EQ(buf, "pong");
  CHECK_OK(mproc_pipe_recv(tp, buf, sizeof buf, &n, 10.0));
  CHECK_STR_EQ(buf, "ok");
  CHECK_OK(mproc_process_join(pr, 10.0));
  int code = -1;
  CHECK_OK(mproc_process_exitcode(pr, &code));
  CHECK_INT_EQ(code, 0);
  CHECK_OK(mproc_process_destroy(pr));
  /* a segment passed over a socket */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  mproc_shm *a, *b;
  CHECK_OK(mproc_shm_create(&a, 4096, NULL));
  memcpy(mproc_shm_addr(a), "seg", 4);
  CHECK_OK(mproc_shm_send(a, sv[0]));
  CHECK_OK(mproc_shm_recv(&b, sv[1]));
  CHECK_STR_EQ(mproc_shm_addr(b), "seg");
  mproc_shm_destroy(b);
  mproc_shm_destroy(a);
  close(sv[0]);
  close(sv[1]);
  CHECK_OK(mproc_shared_free(tflag));
  mproc_condition_destroy(tcond);
  mproc_barrier_destroy(tbar);
  mproc_semaphore_destroy(tsem);
  mproc_event_destroy(tev);
  mproc_pipe_destroy(tp);
  mproc_pipe_destroy(tp_child);
  mproc_queue_destroy(tq);
  CHECK_INT_CMP(eintr_end(), >, 0);
}

static int bytes_of(const void *arg, size_t len, mproc_task *t) {
  size_t n = len == sizeof(size_t) ? *(const size_t *)arg : 0;
  char *buf = malloc(n + 1);
  if (!buf) return mproc_task_fail(t, -ENOMEM, "no memory");
  for (size_t i = 0; i < n + 1; i++) buf[i] = (char)(i * 7);
  int r = mproc_task_return(t, buf, n + 1);
  free(buf);
  return r;
}

static void cache_dir_make(void) {
  snprintf(cache_base, sizeof cache_base, "/tmp/mproc_faults.XXXXXX");
  CHECK(mkdtemp(cache_base) != NULL);
  snprintf(cache_dir, sizeof cache_dir, "%s/c", cache_base);
}

MTEST(eintr_cache) {
  cache_dir_make();
  eintr_begin();
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, cache_dir, &(mproc_cache_opts){.durable = 1}));
  size_t sizes[] = {10, 100000, (size_t)3 << 20}; /* small, compressed, mapped on load */
  for (int hit = 0; hit < 2; hit++)
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      mproc_cache_result *r;
      CHECK_OK(mproc_cache_call(c, bytes_of, &sizes[i], sizeof sizes[i], &r));
      CHECK_INT_EQ(mproc_cache_result_hit(r), hit);
      CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
      CHECK_INT_EQ(mproc_cache_result_len(r), sizes[i] + 1);
      const char *d = mproc_cache_result_data(r);
      for (size_t k = 0; k < sizes[i] + 1; k += 997) CHECK_INT_EQ(d[k], (char)(k * 7));
      mproc_cache_result_release(r);
    }
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.store_failures, 0);
  CHECK_INT_EQ(s.corrupt_recomputed, 0);
  CHECK_INT_EQ(s.hits, 3);
  mproc_cache_close(c);
  CHECK_INT_CMP(eintr_end(), >, 0);
  nftw(cache_base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the cache's store failing: write, renameat, fsync with ENOSPC and EIO, at each of their calls ----
 * For each (entry, errno, k) and each result size (one write, several writes of a large compressed-less
 * result), a miss of a durable cache whose k-th call of that entry fails: the computed result is returned
 * with the error in store_error, nothing is stored (the next call misses again and stores), and no
 * temporary file is left.  A write that stores only half of what it was given (a disk filling up) must be
 * finished by the next write, and the entry stored whole. */

static int files_in(const char *dir, int *tmp_files) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "find '%s' -type f", dir);
  FILE *f = popen(cmd, "r");
  CHECK(f != NULL);
  char line[512];
  int n = 0;
  *tmp_files = 0;
  while (fgets(line, sizeof line, f)) {
    n++;
    if (strstr(line, "/.tmp.")) ++*tmp_files;
  }
  pclose(f);
  return n;
}

/* M_FAIL on S_WRITE: the k-th write stores half, and says so, instead of failing. */
static ssize_t w_write_half(int fd, const void *buf, size_t n) {
  if (inj.mode == M_FAIL && inj_thread && getpid() == inj.pid && ++inj.calls[S_WRITE] == inj.fail_at &&
      n > 1) {
    inj.injected++;
    return real_sys.write(fd, buf, n / 2);
  }
  return real_sys.write(fd, buf, n);
}

/* n + 1 bytes; the key is (n, salt): each round stores a new entry in the function's folder, made (with its
 * info file, whose write may fail: it is informative only) before the rounds count. */
typedef struct sized_key {
  size_t n;
  long salt;
} sized_key;
static int bytes_of_key(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  return bytes_of(&((const sized_key *)arg)->n, sizeof(size_t), t);
}
static long salt;
static mproc_cache_result *cached(mproc_cache *c, size_t n, int hit) {
  mproc_cache_result *r;
  sized_key key = {n, salt};
  CHECK_OK(mproc_cache_call(c, bytes_of_key, &key, sizeof key, &r));
  if (hit >= 0) CHECK_INT_EQ(mproc_cache_result_hit(r), hit);
  CHECK_INT_EQ(mproc_cache_result_len(r), n + 1);
  const char *d = mproc_cache_result_data(r);
  for (size_t k = 0; k < n + 1; k += 101) CHECK_INT_EQ(d[k], (char)(k * 7));
  return r;
}

MTEST_TIMEOUT(cache_store_fails_at_each_call, 120) {
  static const enum site failing[] = {S_WRITE, S_RENAMEAT, S_FSYNC};
  static const int errs[] = {ENOSPC, EIO};
  size_t sizes[] = {100, (size_t)1 << 20}; /* one write; more than one (uncompressed: a write per chunk?) */
  cache_dir_make();
  injector_install();
  long injections = 0, rounds = 0;
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, cache_dir, &(mproc_cache_opts){.durable = 1, .compress_level = -1}));
  mproc_cache_result_release(cached(c, 1, 0)); /* the function's folder */
  for (size_t zi = 0; zi < sizeof sizes / sizeof *sizes; zi++) {
    size_t n = sizes[zi];
    /* how many calls of each entry a store makes */
    salt++;
    inj_start(M_COUNT, S_ALLOC, 0);
    mproc_cache_result_release(cached(c, n, 0));
    inj.mode = M_OFF;
    long calls[S_N];
    memcpy(calls, inj.calls, sizeof calls);
    for (size_t fi = 0; fi < sizeof failing / sizeof *failing; fi++) {
      enum site s = failing[fi];
      CHECK_INT_CMP(calls[s], >=, 1);
      for (size_t ei = 0; ei < sizeof errs / sizeof *errs; ei++)
        for (long k = 1; k <= calls[s]; k++) {
          salt++;
          inj_start(M_FAIL, s, k);
          mproc__plat_sys.write = w_write; /* failing, not halving */
          long before = inj.injected;
          inj.err = errs[ei];
          mproc_cache_result *r = cached(c, n, 0);
          inj.mode = M_OFF;
          inj.err = 0;
          CHECK_INT_EQ(inj.injected - before, 1);
          if (mproc_cache_result_store_error(r) != -errs[ei])
            mtest_fail(__FILE__, __LINE__, "%zu bytes, %s %ld failing with %s: store_error %s", n,
                       site_name[s], k, mproc_err_name(-errs[ei]),
                       mproc_err_name(mproc_cache_result_store_error(r)));
          mproc_cache_result_release(r);
          int tmp;
          if (files_in(cache_dir, &tmp) > 0 && tmp > 0)
            mtest_fail(__FILE__, __LINE__, "%s %ld failing: a temporary file was left", site_name[s], k);
          mproc_cache_result_release(cached(c, n, 0)); /* not stored: a miss, stored now */
          mproc_cache_result_release(cached(c, n, 1));
          injections++, rounds++;
        }
    }
    { /* and writes that store half */
      mproc__plat_sys.write = w_write_half;
      for (long k = 1; k <= calls[S_WRITE]; k++) {
        salt++;
        inj_start(M_FAIL, S_WRITE, k);
        mproc_cache_result *r = cached(c, n, 0);
        inj.mode = M_OFF;
        CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
        mproc_cache_result_release(r);
        mproc_cache_result_release(cached(c, n, 1));
        injections++, rounds++;
      }
      mproc__plat_sys.write = w_write;
    }
    /* and a hit whose k-th read fails with EIO: read again (the load is tried twice) or recomputed; right */
    salt++;
    mproc_cache_result_release(cached(c, n, 0));
    inj_start(M_COUNT, S_ALLOC, 0);
    mproc_cache_result_release(cached(c, n, 1));
    inj.mode = M_OFF;
    long reads = inj.calls[S_READ];
    for (long k = 1; k <= reads; k++) {
      inj_start(M_FAIL, S_READ, k);
      mproc_cache_result *r = cached(c, n, -1);
      inj.mode = M_OFF;
      CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
      mproc_cache_result_release(r);
      mproc_cache_result_release(cached(c, n, 1));
      injections++, rounds++;
    }
    if (figures)
      printf("#   %zu bytes: a store makes %ld write, %ld renameat, %ld fsync; a hit %ld read\n", n,
             calls[S_WRITE], calls[S_RENAMEAT], calls[S_FSYNC], reads);
  }
  mproc_cache_stats st;
  CHECK_OK(mproc_cache_get_stats(c, &st));
  CHECK_INT_EQ(st.corrupt_recomputed, 0);
  mproc_cache_close(c);
  injector_remove();
  nftw(cache_base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  if (figures) printf("#   %ld injections, %ld rounds\n", injections, rounds);
}

/* One worker's fork fails, the other's succeeds: the pool goes on with the one (the slot of the failed
 * fork stays empty), every task completes, nothing is lost, nothing is left. */
MTEST(fork_eagain_for_one_worker_of_two) {
  forkctl_install();
  forkctl->allow = 2; /* the template's, the first worker's */
  mproc_pool *p;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .start_method = MPROC_START_FORK}));
  enum { N = 64 };
  int in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i;
  CHECK_OK(mproc_pool_map(p, square, in, N, sizeof *in, out, sizeof *out, NULL, NULL));
  for (int i = 0; i < N; i++) CHECK_INT_EQ(out[i], i * i);
  CHECK_INT_EQ(forkctl->failed, 1);
  mproc_pool_destroy(p);
  forkctl_remove();
}
