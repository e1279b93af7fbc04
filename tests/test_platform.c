/* test_platform.c: the platform layer's futex waits, robust mutex and shared memory. */
#include <signal.h>
#include <sys/mman.h>
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
