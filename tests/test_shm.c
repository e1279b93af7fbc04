/* test_shm.c: shared segments (anonymous, named, passed over a socket), shared arrays and values, atomics. */
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

static void join_ok(pid_t pid) {
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_INT_EQ(WEXITSTATUS(st), 0);
}

MTEST(anonymous_segment_shared_with_children) {
  mproc_shm *seg;
  CHECK_OK(mproc_shm_create(&seg, 1 << 20, NULL));
  CHECK_INT_EQ(mproc_shm_size(seg), 1 << 20);
  CHECK(mproc_shm_name(seg) == NULL);
  unsigned char *p = mproc_shm_addr(seg);
  CHECK_INT_EQ(p[12345], 0); /* zero-filled */
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    memcpy(p + 100, "from the child", 15);
    _exit(0);
  }
  join_ok(pid);
  CHECK_STR_EQ((char *)p + 100, "from the child");
  mproc_shm_destroy(seg);
  mproc_shm_destroy(NULL);
}

MTEST(segment_passed_to_an_unrelated_process) {
  /* the child makes the segment after the fork (the parent cannot have it by inheritance), fills it and
   * sends it over a Unix socket */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(sv[0]);
    mproc_shm *s;
    if (mproc_shm_create(&s, 4096, NULL) != 0) _exit(1);
    strcpy(mproc_shm_addr(s), "made elsewhere");
    if (mproc_shm_send(s, sv[1]) != 0) _exit(2);
    mproc_shm_destroy(s); /* the parent's mapping keeps the memory alive */
    _exit(0);
  }
  close(sv[1]);
  mproc_shm *seg;
  CHECK_OK(mproc_shm_recv(&seg, sv[0]));
  join_ok(pid);
  CHECK_INT_EQ(mproc_shm_size(seg), 4096);
  CHECK_STR_EQ(mproc_shm_addr(seg), "made elsewhere");
  mproc_shm *none;
  CHECK_ERR(mproc_shm_recv(&none, sv[0]), MPROC_ECONNRESET); /* the peer is gone */
  close(sv[0]);
  mproc_shm_destroy(seg);
  CHECK_ERR(mproc_shm_send(NULL, 3), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_recv(NULL, 3), MPROC_EINVAL);
}

MTEST(named_segment_by_name) {
  char name[64];
  snprintf(name, sizeof name, "mproc-test-named-%d", (int)getpid());
  mproc_shm *a, *b, *c;
  CHECK_OK(mproc_shm_create(&a, 8192, &(mproc_shm_opts){.name = name}));
  CHECK_STR_EQ(mproc_shm_name(a), name);
  CHECK_ERR(mproc_shm_create(&c, 8192, &(mproc_shm_opts){.name = name}), MPROC_EEXIST);
  strcpy(mproc_shm_addr(a), "by name");
  CHECK_OK(mproc_shm_open(&b, name));
  CHECK_INT_EQ(mproc_shm_size(b), 8192);
  CHECK_STR_EQ(mproc_shm_addr(b), "by name");
  mproc_shm_destroy(b); /* an opener does not unlink */
  CHECK_OK(mproc_shm_open(&b, name));
  mproc_shm_destroy(b);
  mproc_shm_destroy(a); /* the creator does: the leak check verifies /dev/shm is clean */
  CHECK_ERR(mproc_shm_open(&b, name), MPROC_ENOENT);
  CHECK_ERR(mproc_shm_create(&c, 0, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_create(&c, 10, &(mproc_shm_opts){.name = "a/b"}), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_create(&c, 10, &(mproc_shm_opts){.name = ""}), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_create(&c, 10, &(mproc_shm_opts){.name = "."}), MPROC_EINVAL); /* was -EEXIST */
  CHECK_ERR(mproc_shm_create(&c, 10, &(mproc_shm_opts){.name = ".."}), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&c, "."), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&c, ".."), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_create(NULL, 10, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_shm_open(&c, NULL), MPROC_EINVAL);
  CHECK(mproc_shm_addr(NULL) == NULL);
  CHECK_INT_EQ(mproc_shm_size(NULL), 0);
  CHECK(mproc_shm_name(NULL) == NULL);
}

struct record {
  int64_t count;
  double sum;
};

static mproc_array *arr;
static int64_t *atomic_counter;

static int work(int k) {
  struct record *r = mproc_array_data(arr);
  mproc_lock *l = mproc_array_lock(arr);
  for (int i = 0; i < 50000; i++) {
    if (mproc_lock_acquire(l, MPROC_FOREVER) != 0) return 1;
    r[k % 3].count++;
    r[k % 3].sum += 0.5;
    mproc_lock_release(l);
    mproc_atomic_add_i64(atomic_counter, 1);
  }
  return 0;
}

MTEST(arrays_and_values_across_processes) {
  CHECK_OK(mproc_array_create(&arr, sizeof(struct record), 3, 1));
  CHECK_INT_EQ(mproc_array_length(arr), 3);
  CHECK(((uintptr_t)mproc_array_data(arr) & 63) == 0);
  mproc_array *value;
  CHECK_OK(mproc_array_create(&value, sizeof(int64_t), 1, 0)); /* a Value without a lock */
  CHECK(mproc_array_lock(value) == NULL);
  atomic_counter = mproc_array_data(value);
  pid_t pids[4];
  for (int k = 0; k < 4; k++) {
    pids[k] = fork();
    CHECK(pids[k] >= 0);
    if (pids[k] == 0) _exit(work(k));
  }
  for (int k = 0; k < 4; k++) join_ok(pids[k]);
  struct record *r = mproc_array_data(arr);
  CHECK_INT_EQ(r[0].count + r[1].count + r[2].count, 200000);
  CHECK_INT_EQ(r[0].count, 100000); /* processes 0 and 3 */
  CHECK(r[0].sum == 50000.0);
  CHECK_INT_EQ(mproc_atomic_load_i64(atomic_counter), 200000);
  int64_t expected = 200000;
  CHECK(mproc_atomic_cas_i64(atomic_counter, &expected, 7));
  CHECK(!mproc_atomic_cas_i64(atomic_counter, &expected, 8));
  CHECK_INT_EQ(expected, 7);
  mproc_atomic_store_i64(atomic_counter, 1);
  CHECK_INT_EQ(mproc_atomic_load_i64(atomic_counter), 1);
  mproc_array_destroy(arr);
  mproc_array_destroy(value);
  mproc_array_destroy(NULL);
  mproc_array *bad;
  CHECK_ERR(mproc_array_create(&bad, 0, 1, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_array_create(&bad, 8, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_array_create(&bad, SIZE_MAX / 2, 4, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_array_create(NULL, 8, 1, 0), MPROC_EINVAL);
  CHECK(mproc_array_data(NULL) == NULL);
  CHECK_INT_EQ(mproc_array_length(NULL), 0);
  CHECK(mproc_array_lock(NULL) == NULL);
}
