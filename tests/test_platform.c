/* test_platform.c: the platform layer's futex waits, robust mutex, shared memory, sockets, descriptors and
 * signals, and a pool whose template protocol meets a failing send. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

MTEST(futex_wait_times_out_and_wakes) {
  int err = 0;
  uint32_t *word = mproc__plat_shm_map_anon(4096, &err);
  CHECK(word != NULL);
  *word = 0;
  CHECK_ERR(mproc__plat_futex_wait(word, 0, 0.02), MPROC_ETIMEDOUT);
  CHECK_OK(mproc__plat_futex_wait(word, 1, 1)); /* value differs: returns at once */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == 0) mproc__plat_futex_wait(word, 0, -1);
    _exit(__atomic_load_n(word, __ATOMIC_ACQUIRE) == 7 ? 0 : 1);
  }
  __atomic_store_n(word, 7, __ATOMIC_RELEASE);
  mproc__plat_futex_wake(word, INT32_MAX);
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK_OK(mproc__plat_shm_unmap(word, 4096));
}

MTEST(robust_mutex_owner_died) {
  int err = 0;
  mproc__plat_mutex *m = mproc__plat_shm_map_anon(4096, &err);
  CHECK(m != NULL);
  CHECK_OK(mproc__plat_mutex_init(m));
  CHECK_OK(mproc__plat_mutex_lock(m, -1));
  CHECK_ERR(mproc__plat_mutex_lock(m, -1), MPROC_EDEADLK);
  CHECK_OK(mproc__plat_mutex_unlock(m));
  CHECK_ERR(mproc__plat_mutex_unlock(m), MPROC_EPERM);
  int gate[2];
  CHECK(pipe(gate) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    mproc__plat_mutex_lock(m, -1);
    if (write(gate[1], "x", 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  char c;
  CHECK_INT_EQ(read(gate[0], &c, 1), 1);
  CHECK_ERR(mproc__plat_mutex_lock(m, 0), MPROC_ETIMEDOUT);
  CHECK_ERR(mproc__plat_mutex_lock(m, 0.02), MPROC_ETIMEDOUT);
  kill(pid, SIGKILL);
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK_ERR(mproc__plat_mutex_lock(m, 1), MPROC_EOWNERDEAD);
  CHECK_OK(mproc__plat_mutex_consistent(m));
  CHECK_OK(mproc__plat_mutex_unlock(m));
  CHECK_OK(mproc__plat_mutex_lock(m, 0));
  CHECK_OK(mproc__plat_mutex_unlock(m));
  mproc__plat_mutex_destroy(m);
  close(gate[0]);
  close(gate[1]);
  CHECK_OK(mproc__plat_shm_unmap(m, 4096));
}

MTEST(memfd_segment_and_fd_passing) {
  int fd = mproc__plat_shm_create_fd("mproc-test", 8192);
  CHECK_INT_CMP(fd, >=, 0);
  CHECK_INT_EQ(mproc__plat_fd_size(fd), 8192);
  int err = 0;
  char *p = mproc__plat_shm_map(fd, 8192, &err);
  CHECK(p != NULL);
  strcpy(p, "shared");
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK_OK(mproc__plat_send_fd(sv[0], fd, "hi", 2));
  int got = -1;
  char data[2];
  CHECK_OK(mproc__plat_recv_fd(sv[1], &got, data, 2));
  CHECK(got >= 0 && got != fd);
  char *q = mproc__plat_shm_map(got, 8192, &err);
  CHECK(q != NULL);
  CHECK_STR_EQ(q, "shared");
  close(sv[0]);
  CHECK_ERR(mproc__plat_recv_fd(sv[1], &got, data, 2), MPROC_ECONNRESET);
  close(sv[1]);
  CHECK_OK(mproc__plat_shm_unmap(q, 8192));
  CHECK_OK(mproc__plat_shm_unmap(p, 8192));
  close(got);
  close(fd);
}

/* How many of the n pages at p are in memory. */
static int resident(void *p, size_t n) {
  unsigned char vec[64];
  if (n > sizeof vec || mincore(p, n * mproc__plat_page_size(), vec) != 0) return -1;
  int k = 0;
  for (size_t i = 0; i < n; i++) k += vec[i] & 1;
  return k;
}

MTEST(prefault_maps_pages_in) {
  size_t page = mproc__plat_page_size();
  int err = 0;
  unsigned char *p = mproc__plat_shm_map_anon(16 * page, &err);
  CHECK(p != NULL);
  CHECK_INT_EQ(resident(p, 16), 0); /* a fresh shared mapping: nothing until touched */
  int r = mproc__plat_prefault(p + page / 2, 8 * page, 1);
  if (r == MPROC_EINVAL) {
    fprintf(stderr, "  (no MADV_POPULATE_* in this kernel: nothing more to check)\n");
  } else {
    CHECK_OK(r);
    CHECK_INT_EQ(resident(p, 9), 9); /* from the page holding the start to the one holding the end */
    CHECK_INT_EQ(resident(p + 9 * page, 7), 0);
    CHECK_OK(mproc__plat_prefault(p + 9 * page, 7 * page, 0));
    CHECK_INT_EQ(resident(p, 16), 16);
    CHECK_INT_EQ(p[3 * page], 0); /* contents untouched */
    CHECK_OK(mproc__plat_prefault(p, 0, 1));
    /* ranges it cannot populate: an error the caller may ignore, nothing else happens */
    CHECK(mprotect(p, page, PROT_READ) == 0);
    CHECK_INT_CMP(mproc__plat_prefault(p, page, 1), <, 0);
    CHECK_OK(mproc__plat_prefault(p, page, 0));
    CHECK_OK(mproc__plat_shm_unmap(p + 8 * page, page));
    CHECK_INT_CMP(mproc__plat_prefault(p + 4 * page, 8 * page, 1), <, 0);
  }
  CHECK_OK(mproc__plat_shm_unmap(p, 8 * page));
  CHECK_OK(mproc__plat_shm_unmap(p + 9 * page, 7 * page));
}

/* The huge-page hint takes any address, as a block from malloc has (it once passed such an address to
 * madvise as it came, which refuses a start inside a page: no large array had huge pages). */
MTEST(advise_huge_takes_a_block_from_malloc) {
  size_t len = (size_t)8 << 20;
  unsigned char *p = malloc(len + 64);
  CHECK(p != NULL);
  int r = mproc__plat_advise_huge(p + 16, len);
  if (r == -EINVAL && access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
    fprintf(stderr, "  (no transparent huge pages in this kernel: nothing more to check)\n");
  } else {
    CHECK_OK(r);
    CHECK_OK(mproc__plat_advise_huge(p + 16, 100)); /* no whole page inside: nothing to do */
    memset(p, 1, len + 64);                         /* still ordinary memory */
    CHECK_INT_EQ(p[len + 63], 1);
  }
  free(p);
}

/* A large array begins on a 2 MiB boundary, so the huge-page hint covers all of it (a block as malloc gives
 * it begins just past a page's start: a quarter of an 8 MiB array had 4 KiB pages, a fault each); growth
 * keeps the bytes wherever the boundary falls in the new block; without memory, nothing changes. */
static size_t fail_from = SIZE_MAX;
static void *big_malloc(size_t n) { return n >= fail_from ? NULL : malloc(n); }
static void *big_realloc(void *q, size_t n) { return n >= fail_from ? NULL : realloc(q, n); }
static void *big_calloc(size_t c, size_t n) { return c * n >= fail_from ? NULL : calloc(c, n); }
MTEST(big_array_begins_on_a_huge_page_boundary) {
  const uintptr_t huge = (uintptr_t)2 << 20;
  mproc__big b = {0};
  CHECK(mproc__big_resize(&b, 1000)); /* small: the block itself */
  CHECK(b.p == b.base && b.bytes == 1000);
  memset(b.p, 7, 1000);
  size_t sizes[] = {(size_t)512 << 10, (size_t)3 << 20, (size_t)8 << 20, (size_t)13 << 20};
  size_t kept = 1000;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    CHECK(mproc__big_resize(&b, sizes[k]));
    CHECK_INT_EQ((uintptr_t)b.p % huge, 0);
    CHECK_INT_EQ(b.bytes, sizes[k]);
    unsigned char *c = b.p;
    for (size_t i = 0; i < kept; i += 4093) CHECK_INT_EQ(c[i], (unsigned char)(7 + i % 3));
    for (size_t i = 0; i < sizes[k]; i++) c[i] = (unsigned char)(7 + i % 3);
    kept = sizes[k];
  }
  /* without memory: false, the array as it was */
  mproc__big before = b;
  fail_from = (size_t)16 << 20;
  CHECK_OK(mproc_replace_allocator(big_malloc, big_realloc, big_calloc, free));
  bool grew = mproc__big_resize(&b, (size_t)20 << 20);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK(!grew);
  CHECK(b.base == before.base && b.p == before.p && b.bytes == before.bytes);
  CHECK_INT_EQ(((unsigned char *)b.p)[kept - 1], (unsigned char)(7 + (kept - 1) % 3));
  /* shrunk below 512 KiB, then grown a little: its first bytes kept (the small block is the array) */
  CHECK(mproc__big_resize(&b, 4096));
  CHECK(b.p == b.base);
  CHECK_INT_EQ(((unsigned char *)b.p)[4095], (unsigned char)(7 + 4095 % 3));
  CHECK(mproc__big_resize(&b, 8192));
  for (size_t i = 0; i < 4096; i += 511) CHECK_INT_EQ(((unsigned char *)b.p)[i], (unsigned char)(7 + i % 3));
  mproc__big_free(&b);
  CHECK(b.base == NULL && b.p == NULL && b.bytes == 0);
  mproc__big_free(&b); /* twice: nothing */
}

MTEST(named_segment) {
  char name[64];
  snprintf(name, sizeof name, "mproc-test-%d", (int)getpid());
  size_t size = 4096;
  int fd = mproc__plat_shm_open_named(name, 1, &size);
  CHECK_INT_CMP(fd, >=, 0);
  CHECK_ERR(mproc__plat_shm_open_named(name, 1, &size), MPROC_EEXIST);
  size_t got = 0;
  int fd2 = mproc__plat_shm_open_named(name, 0, &got);
  CHECK_INT_CMP(fd2, >=, 0);
  CHECK_INT_EQ(got, 4096);
  CHECK_OK(mproc__plat_shm_unlink_named(name));
  CHECK_ERR(mproc__plat_shm_unlink_named(name), MPROC_ENOENT);
  close(fd);
  close(fd2);
}

/* ---- sockets ---- */

static int cloexec_of(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

MTEST(socketpair_kinds) {
  int sv[2];
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv));
  CHECK(cloexec_of(sv[0]) && cloexec_of(sv[1]));
  int type = 0;
  socklen_t tl = sizeof type;
  CHECK(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &tl) == 0);
  CHECK_INT_EQ(type, SOCK_SEQPACKET);
  /* messages keep their bounds */
  CHECK_OK(mproc__plat_send_msg(sv[0], "abc", 3, true));
  CHECK_OK(mproc__plat_send_msg(sv[0], "de", 2, true));
  char buf[16];
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[1], buf, sizeof buf, true), 3);
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[1], buf, sizeof buf, true), 2);
  close(sv[0]);
  close(sv[1]);

  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_STREAM, sv));
  CHECK(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &tl) == 0);
  CHECK_INT_EQ(type, SOCK_STREAM);
  CHECK_OK(mproc__plat_send_msg(sv[1], "xy", 2, true)); /* both ways */
  CHECK_OK(mproc__plat_send_msg(sv[0], "z", 1, true));
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[0], buf, sizeof buf, true), 2);
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[1], buf, sizeof buf, true), 1);
  close(sv[0]);
  close(sv[1]);

  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_ONEWAY, sv));
  CHECK(cloexec_of(sv[0]) && cloexec_of(sv[1]));
  CHECK_OK(mproc__plat_send_msg(sv[1], "q", 1, true));
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[0], buf, sizeof buf, true), 1);
  CHECK_ERR(mproc__plat_send_msg(sv[0], "q", 1, true), -EPIPE); /* the other way is shut */
  close(sv[0]);
  close(sv[1]);

  sv[0] = sv[1] = 99;
  CHECK_ERR(mproc__plat_socketpair(0, sv), MPROC_EINVAL);
  CHECK_ERR(mproc__plat_socketpair(4, sv), MPROC_EINVAL);
  CHECK(sv[0] == 99 && sv[1] == 99);
}

MTEST(socketpair_out_of_descriptors) {
  struct rlimit old, rl;
  CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
  rl = old;
  rl.rlim_cur = 0;
  CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
  int sv[2];
  int r = mproc__plat_socketpair(MPROC__PLAT_SOCK_ONEWAY, sv);
  CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
  CHECK_ERR(r, -EMFILE);
}

MTEST(send_and_recv_msg_errors) {
  int sv[2];
  char buf[8];
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv));
  CHECK_ERR((int)mproc__plat_recv_msg(sv[1], buf, sizeof buf, false), -EAGAIN); /* nothing there */
  /* a full socket: -EAGAIN without waiting */
  static char big[4096];
  int sent = 0, r;
  while ((r = mproc__plat_send_msg(sv[0], big, sizeof big, false)) == 0) sent++;
  CHECK_ERR(r, -EAGAIN);
  CHECK_INT_CMP(sent, >, 0);
  close(sv[0]);
  close(sv[1]);
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv));
  /* the peer closed: messages still queued are read, then end of file; a send fails with -EPIPE and no
   * SIGPIPE (which would end this test process) */
  CHECK_OK(mproc__plat_send_msg(sv[1], "hi", 2, true));
  close(sv[1]);
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[0], buf, sizeof buf, true), 2);
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[0], buf, sizeof buf, true), 0);
  CHECK_ERR(mproc__plat_send_msg(sv[0], "x", 1, true), -EPIPE);
  close(sv[0]);
  /* not a socket, not a descriptor */
  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK_ERR(mproc__plat_send_msg(fds[1], "x", 1, true), -ENOTSOCK);
  CHECK_ERR((int)mproc__plat_recv_msg(fds[0], buf, 1, false), -ENOTSOCK);
  close(fds[0]);
  close(fds[1]);
  CHECK_ERR(mproc__plat_send_msg(-1, "x", 1, true), -EBADF);
  CHECK_ERR((int)mproc__plat_recv_msg(-1, buf, 1, true), -EBADF);
}

/* The send entry of the table: fails with fail_errno for the first fail_times calls, then sends. */
static atomic_int send_calls, fail_times, fail_errno;
static ssize_t flaky_send(int sock, const void *buf, size_t len, int flags) {
  int n = atomic_fetch_add(&send_calls, 1);
  if (n < atomic_load(&fail_times)) {
    errno = atomic_load(&fail_errno);
    return -1;
  }
  return send(sock, buf, len, flags);
}
static void inject_send(int times, int err) {
  atomic_store(&send_calls, 0);
  atomic_store(&fail_times, times);
  atomic_store(&fail_errno, err);
  mproc__plat_sys.send = flaky_send;
}

MTEST(send_msg_retries_eintr_and_reports_the_rest) {
  int sv[2];
  char buf[8];
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv));
  inject_send(3, EINTR);
  CHECK_OK(mproc__plat_send_msg(sv[0], "abc", 3, true));
  CHECK_INT_EQ(atomic_load(&send_calls), 4);
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[1], buf, sizeof buf, false), 3);
  inject_send(1, ENOBUFS);
  CHECK_ERR(mproc__plat_send_msg(sv[0], "abc", 3, true), -ENOBUFS);
  CHECK_INT_EQ(atomic_load(&send_calls), 1);
  CHECK_ERR((int)mproc__plat_recv_msg(sv[1], buf, sizeof buf, false), -EAGAIN); /* nothing went */
  mproc__plat_syscalls_reset();
  CHECK(mproc__plat_sys.send != flaky_send);
  close(sv[0]);
  close(sv[1]);
}

MTEST(sock_at_eof_waits_for_the_last_message) {
  int sv[2];
  char buf[8];
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv));
  CHECK(!mproc__plat_sock_at_eof(sv[0]));
  CHECK_OK(mproc__plat_send_msg(sv[1], "last", 4, true));
  close(sv[1]);
  CHECK(!mproc__plat_sock_at_eof(sv[0])); /* news still unread */
  CHECK(!mproc__plat_sock_at_eof(sv[0])); /* and it only looked */
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[0], buf, sizeof buf, true), 4);
  CHECK(mproc__plat_sock_at_eof(sv[0]));
  close(sv[0]);
  CHECK(!mproc__plat_sock_at_eof(-1));
}

MTEST(send2_nowait_gathers_and_stops_when_full) {
  int sv[2];
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_ONEWAY, sv));
  CHECK_INT_EQ(mproc__plat_send2_nowait(sv[1], "head", 4, "body", 4), 8);
  CHECK_INT_EQ(mproc__plat_send2_nowait(sv[1], "", 0, "tail", 4), 4);
  CHECK_INT_EQ(mproc__plat_send2_nowait(sv[1], "only", 4, NULL, 0), 4);
  char buf[32] = {0};
  size_t got = 0;
  while (got < 16) {
    ssize_t r = mproc__plat_recv_msg(sv[0], buf + got, sizeof buf - 1 - got, true);
    CHECK_INT_CMP(r, >, 0);
    got += (size_t)r;
  }
  CHECK_STR_EQ(buf, "headbodytailonly");
  static char big[65536];
  ssize_t r;
  size_t total = 0;
  while ((r = mproc__plat_send2_nowait(sv[1], big, sizeof big, big, 10)) > 0) total += (size_t)r;
  CHECK_ERR((int)r, -EAGAIN);
  CHECK_INT_CMP(total, >, 0);
  close(sv[0]);
  CHECK_ERR((int)mproc__plat_send2_nowait(sv[1], "x", 1, NULL, 0), -EPIPE);
  close(sv[1]);
  CHECK_ERR((int)mproc__plat_send2_nowait(-1, "x", 1, NULL, 0), -EBADF);
}

MTEST(sock_hangup_reaches_every_copy) {
  int sv[2];
  char buf[4];
  CHECK_OK(mproc__plat_socketpair(MPROC__PLAT_SOCK_MSG, sv));
  int copy = dup(sv[0]); /* as a forked child would hold it */
  CHECK_INT_CMP(copy, >=, 0);
  CHECK_OK(mproc__plat_sock_hangup(sv[0]));
  CHECK_INT_EQ(mproc__plat_recv_msg(sv[1], buf, sizeof buf, true), 0);
  CHECK_ERR(mproc__plat_send_msg(sv[1], "x", 1, true), -EPIPE);
  CHECK_ERR(mproc__plat_send_msg(copy, "x", 1, true), -EPIPE);
  close(copy);
  close(sv[0]);
  close(sv[1]);
  CHECK_ERR(mproc__plat_sock_hangup(-1), -EBADF);
  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK_ERR(mproc__plat_sock_hangup(fds[0]), -ENOTSOCK);
  close(fds[0]);
  close(fds[1]);
}

/* ---- poll, descriptors, signals, exit ---- */

static void on_alarm(int sig) { (void)sig; }

MTEST(poll_many_waits_and_retries_eintr) {
  int a[2], b[2];
  CHECK(pipe(a) == 0 && pipe(b) == 0);
  struct pollfd p[3] = {{.fd = a[0], .events = POLLIN}, {.fd = b[0], .events = POLLIN}, {.fd = -1}};
  CHECK_INT_EQ(mproc__plat_poll(p, 3, 0), 0);
  CHECK(write(b[1], "x", 1) == 1);
  CHECK_INT_EQ(mproc__plat_poll(p, 3, -1), 1);
  CHECK(p[1].revents & POLLIN);
  CHECK_INT_EQ(p[0].revents, 0);
  /* a signal during the wait (a handler without SA_RESTART): the wait goes on to its timeout */
  p[1].fd = -1;
  struct sigaction sa = {.sa_handler = on_alarm}, old;
  sigemptyset(&sa.sa_mask);
  CHECK(sigaction(SIGALRM, &sa, &old) == 0);
  struct itimerval it = {.it_value = {.tv_usec = 20000}};
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
  double t0 = mproc__plat_now();
  CHECK_INT_EQ(mproc__plat_poll(p, 3, 0.2), 0);
  CHECK(mproc__plat_now() - t0 >= 0.19);
  CHECK(sigaction(SIGALRM, &old, NULL) == 0);
  /* a closed descriptor is an event (POLLNVAL), not an error; too many descriptors is */
  close(a[0]);
  p[0].revents = 0;
  CHECK_INT_EQ(mproc__plat_poll(p, 1, 0), 1);
  CHECK(p[0].revents & POLLNVAL);
  /* more descriptors than the process may have (a small array: ThreadSanitizer reads all n) */
  struct rlimit lim, low;
  CHECK(getrlimit(RLIMIT_NOFILE, &lim) == 0);
  low = lim;
  low.rlim_cur = 8;
  CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
  struct pollfd many[9];
  for (int i = 0; i < 9; i++) many[i] = (struct pollfd){.fd = -1};
  int r = mproc__plat_poll(many, 9, 0);
  CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
  CHECK_ERR(r, MPROC_EINVAL);
  close(a[1]);
  close(b[0]);
  close(b[1]);
}

MTEST(set_cloexec_both_ways) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK(!cloexec_of(fds[0]));
  CHECK_OK(mproc__plat_set_cloexec(fds[0], true));
  CHECK(cloexec_of(fds[0]));
  CHECK_OK(mproc__plat_set_cloexec(fds[0], true));
  CHECK(cloexec_of(fds[0]));
  CHECK_OK(mproc__plat_set_cloexec(fds[0], false));
  CHECK(!cloexec_of(fds[0]));
  close(fds[0]);
  close(fds[1]);
  CHECK_ERR(mproc__plat_set_cloexec(fds[0], true), -EBADF);
}

static void *precise_timers_thread(void *arg) {
  *(long *)arg = mproc__plat_precise_timers() == 0 ? prctl(PR_GET_TIMERSLACK) : -1;
  return NULL;
}

/* A thread's naps end when due (1 us of slack), and only that thread's: the caller's stays as it was. */
MTEST(precise_timers_for_the_calling_thread) {
  long before = prctl(PR_GET_TIMERSLACK), in_thread = 0;
  CHECK(before > 1000); /* Linux's default is 50 us */
  pthread_t t;
  CHECK_INT_EQ(pthread_create(&t, NULL, precise_timers_thread, &in_thread), 0);
  CHECK_INT_EQ(pthread_join(t, NULL), 0);
  CHECK_INT_EQ(in_thread, 1000);
  CHECK_INT_EQ(prctl(PR_GET_TIMERSLACK), before);
}

static int exit_pipe = -1;
static void atexit_writes(void) {
  if (write(exit_pipe, "a", 1) != 1) abort();
}

MTEST(ignore_signal_and_exit_in_a_child) {
  CHECK_ERR(mproc__plat_ignore_signal(SIGKILL), MPROC_EINVAL);
  CHECK_ERR(mproc__plat_ignore_signal(0), MPROC_EINVAL);
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    exit_pipe = fds[1];
    atexit(atexit_writes);
    if (mproc__plat_ignore_signal(SIGUSR1) != 0) _exit(1);
    raise(SIGUSR1);      /* would end the child, were it not ignored */
    mproc__plat_exit(7); /* no atexit handler, so nothing on the pipe */
  }
  close(fds[1]);
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_INT_EQ(WEXITSTATUS(st), 7);
  char c;
  CHECK_INT_EQ(read(fds[0], &c, 1), 0);
  close(fds[0]);
}

/* ---- the template protocol when send fails ---- */

static int exit_now(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len, (void)t;
  _exit(42);
}
static int answer(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  int v = 41 + 1;
  return mproc_task_return(t, &v, sizeof v);
}

/* A one-worker pool whose worker then crashes, with send failing from the moment the pool is up: the
 * manager's request for a new worker is the first thing it sends the template. */
static mproc_pool *pool_losing_its_worker(int times, int err) {
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 1, .backend = MPROC_BACKEND_PROCESS}));
  inject_send(times, err);
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, exit_now, NULL, 0, NULL, &f));
  CHECK_ERR(mproc_future_error(f, 10.0), MPROC_ECRASHED);
  mproc_future_release(f);
  return p;
}

/* Without a way to tell the template, the new worker would never come and the task would wait for ever
 * (it does without the hang-up in send_tpl); the pool is lost instead, as when the template dies
 * (docs/pool.md). */
MTEST(template_command_send_fails_the_pool_is_lost) {
  mproc_pool *p = pool_losing_its_worker(1 << 30, EPIPE);
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, answer, NULL, 0, NULL, &f));
  CHECK_ERR(mproc_future_error(f, 10.0), MPROC_ELOST);
  mproc__plat_syscalls_reset();
  CHECK_INT_CMP(atomic_load(&send_calls), >=, 1);
  mproc_outcome o;
  CHECK_OK(mproc_future_outcome(f, &o));
  CHECK_INT_EQ(o.kind, MPROC_OUTCOME_LOST);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, answer, NULL, 0, NULL, &f), MPROC_ELOST);
  mproc_pool_destroy(p);
}

MTEST(template_command_send_interrupted_is_retried) {
  mproc_pool *p = pool_losing_its_worker(2, EINTR);
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, answer, NULL, 0, NULL, &f));
  CHECK_OK(mproc_future_error(f, 10.0));
  mproc__plat_syscalls_reset();
  CHECK_INT_CMP(atomic_load(&send_calls), >=, 3);
  const void *data = NULL;
  size_t n = 0;
  CHECK_OK(mproc_future_result(f, -1, &data, &n));
  CHECK_INT_EQ(n, sizeof(int));
  CHECK_INT_EQ(*(const int *)data, 42);
  mproc_future_release(f);
  mproc_pool_destroy(p);
}

/* The other way: the template cannot tell the manager of the workers it made (send fails in the template,
 * which inherits the table through fork).  Without an end to it, the manager would wait for ever for a
 * worker it never heard of; the template ends instead and the pool is lost. */
MTEST(template_event_send_fails_the_pool_is_lost) {
  inject_send(1 << 30, ENOBUFS);
  mproc_pool *p = NULL;
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2, .backend = MPROC_BACKEND_PROCESS}));
  mproc__plat_syscalls_reset(); /* in this process; the template keeps the failing send */
  mproc_future *f;
  CHECK_OK(mproc_pool_submit(p, answer, NULL, 0, NULL, &f));
  CHECK_ERR(mproc_future_error(f, 10.0), MPROC_ELOST);
  mproc_future_release(f);
  CHECK_ERR(mproc_pool_submit(p, answer, NULL, 0, NULL, &f), MPROC_ELOST);
  mproc_pool_destroy(p);
}
