/* test_core.c: error codes and their words, version, allocator hook, CPU count. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mtest.h"
#include "internal.h"

MTEST(error_codes_and_words) {
  CHECK_INT_EQ(MPROC_EINVAL, -EINVAL);
  CHECK_INT_EQ(MPROC_ETIMEDOUT, -ETIMEDOUT);
  CHECK_STR_EQ(mproc_err_name(0), "OK");
  CHECK_STR_EQ(mproc_strerror(0), "success");
  CHECK_STR_EQ(mproc_err_name(MPROC_EINVAL), "EINVAL");
  CHECK_STR_EQ(mproc_strerror(MPROC_EINVAL), strerror(EINVAL));
  CHECK_STR_EQ(mproc_err_name(MPROC_ECRASHED), "ECRASHED");
  CHECK(strstr(mproc_strerror(MPROC_ECRASHED), "crashed") != NULL);
  CHECK_STR_EQ(mproc_err_name(12345), "UNKNOWN");
  CHECK_STR_EQ(mproc_strerror(12345), "unknown error");
  CHECK_STR_EQ(mproc_strerror(-4000), "unknown error");
  CHECK_STR_EQ(mproc_err_name(MPROC_ERR_BASE - 999), "UNKNOWN");
  /* mproc's own codes are outside errno's range and all distinct, with a name and words each */
  int own[] = {
#define OWN(name, off, msg) MPROC_##name,
      MPROC_OWN_CODES(OWN)
#undef OWN
  };
  size_t n = sizeof own / sizeof *own;
  for (size_t i = 0; i < n; i++) {
    CHECK_INT_CMP(own[i], <, -4095);
    CHECK(strcmp(mproc_err_name(own[i]), "UNKNOWN") != 0);
    CHECK(strcmp(mproc_strerror(own[i]), "unknown error") != 0);
    for (size_t j = i + 1; j < n; j++) CHECK_INT_CMP(own[i], !=, own[j]);
  }
  /* every errno code in the table has its symbolic name */
#define ERRNO_NAME(e) CHECK_STR_EQ(mproc_err_name(-(e)), #e);
  MPROC_ERRNO_CODES(ERRNO_NAME)
#undef ERRNO_NAME
}

MTEST(version) {
  CHECK_INT_EQ(mproc_version(), MPROC_VERSION_HEX);
  CHECK_STR_EQ(mproc_version_string(), MPROC_VERSION_STRING);
  char buf[32];
  snprintf(buf, sizeof buf, "%d.%d.%d", MPROC_VERSION_MAJOR, MPROC_VERSION_MINOR, MPROC_VERSION_PATCH);
  CHECK_STR_EQ(mproc_version_string(), buf);
}

static int counted;
static void *counting_malloc(size_t n) {
  counted++;
  return malloc(n);
}

MTEST(replace_allocator) {
  CHECK_ERR(mproc_replace_allocator(NULL, realloc, calloc, free), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(malloc, NULL, calloc, free), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(malloc, realloc, NULL, free), MPROC_EINVAL);
  CHECK_ERR(mproc_replace_allocator(malloc, realloc, calloc, NULL), MPROC_EINVAL);
  CHECK_OK(mproc_replace_allocator(counting_malloc, realloc, calloc, free));
  char *s = mproc__strdup("abc");
  CHECK_STR_EQ(s, "abc");
  mproc__free(s);
  CHECK_INT_EQ(counted, 1);
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
}

MTEST(cpu_count_follows_affinity) {
  cpu_set_t set;
  CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
  int n = CPU_COUNT(&set);
  int count = mproc_cpu_count();
  CHECK_INT_CMP(count, >=, 1);
  CHECK_INT_CMP(count, <=, n);
  /* narrow the mask to the first allowed CPU: the count follows */
  int first = -1;
  for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
    if (CPU_ISSET(i, &set)) first = i;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  CHECK(sched_setaffinity(0, sizeof one, &one) == 0);
  CHECK_INT_EQ(mproc_cpu_count(), 1);
  CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
  CHECK_INT_EQ(mproc_cpu_count(), count);
}

/* Builds a fake /proc/self/cgroup and cgroup tree under a temporary directory. */
static char root[256];

static void put(const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
    *s = '\0';
    mkdir(path, 0700);
    *s = '/';
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0);
  CHECK_INT_EQ(write(fd, text, strlen(text)), (long)strlen(text));
  close(fd);
}

static void make_root(void) {
  snprintf(root, sizeof root, "/tmp/mproc-cg-XXXXXX");
  CHECK(mkdtemp(root) != NULL);
}

static void remove_root(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  CHECK_INT_EQ(system(cmd), 0);
}

static double limit_of(void) {
  char proc[300], fs[300];
  snprintf(proc, sizeof proc, "%s/proc_cgroup", root);
  snprintf(fs, sizeof fs, "%s/fs", root);
  return mproc__plat_cgroup_cpu_limit(proc, fs);
}

MTEST(cgroup_v2_quota) {
  make_root();
  put("proc_cgroup", "0::/user.slice/job\n");
  put("fs/user.slice/job/cpu.max", "150000 100000\n");
  CHECK(fabs(limit_of() - 1.5) < 1e-9);
  /* a tighter parent wins */
  put("fs/user.slice/cpu.max", "50000 100000\n");
  CHECK(fabs(limit_of() - 0.5) < 1e-9);
  /* "max" means none */
  put("fs/user.slice/cpu.max", "max 100000\n");
  put("fs/user.slice/job/cpu.max", "max 100000\n");
  CHECK(limit_of() == 0);
  /* garbage is ignored */
  put("fs/user.slice/job/cpu.max", "lots\n");
  CHECK(limit_of() == 0);
  remove_root();
}

MTEST(cgroup_v2_hybrid_unified) {
  make_root();
  put("proc_cgroup", "1:cpu:/\n0::/a\n");
  put("fs/unified/a/cpu.max", "200000 100000\n");
  CHECK(fabs(limit_of() - 2.0) < 1e-9);
  remove_root();
}

MTEST(cgroup_v1_quota) {
  make_root();
  put("proc_cgroup", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n");
  put("fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
  put("fs/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  CHECK(fabs(limit_of() - 2.5) < 1e-9);
  put("fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
  CHECK(limit_of() == 0);
  remove_root();
  make_root();
  put("proc_cgroup", "2:cpu:/\n");
  put("fs/cpu/cpu.cfs_quota_us", "100000\n");
  put("fs/cpu/cpu.cfs_period_us", "100000\n");
  CHECK(fabs(limit_of() - 1.0) < 1e-9);
  remove_root();
}

/* Threads reading cgroup files at once each get their own answer (mproc_cpu_count() runs in any thread; the
 * parser kept its place in strtok's one static pointer, so threads read each other's lines). */
static void *limit_many_times(void *arg) {
  long bad = 0;
  for (int k = 0; k < 3000; k++)
    if (fabs(limit_of() - 2.5) > 1e-9) bad++;
  *(long *)arg = bad;
  return NULL;
}

MTEST(cgroup_limit_in_many_threads) {
  make_root();
  /* several lines: the parser walks them all, the v1 cpu line last */
  put("proc_cgroup", "12:pids:/a\n11:memory:/b\n10:blkio:/c\n9:devices:/d\n3:cpu,cpuacct:/docker/abc\n");
  put("fs/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
  put("fs/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  CHECK(fabs(limit_of() - 2.5) < 1e-9);
  enum { T = 4 };
  pthread_t th[T];
  long bad[T];
  for (int i = 0; i < T; i++) CHECK_INT_EQ(pthread_create(&th[i], NULL, limit_many_times, &bad[i]), 0);
  long total = 0;
  for (int i = 0; i < T; i++) {
    CHECK_INT_EQ(pthread_join(th[i], NULL), 0);
    total += bad[i];
  }
  CHECK_INT_EQ(total, 0);
  remove_root();
}

MTEST(cgroup_missing_files) {
  CHECK(mproc__plat_cgroup_cpu_limit("/nonexistent/cgroup", "/nonexistent") == 0);
}

MTEST(cpu_count_combine) {
  CHECK_INT_EQ(mproc__plat_cpu_count_combine(8, 0), 8);
  CHECK_INT_EQ(mproc__plat_cpu_count_combine(8, 1.5), 2);
  CHECK_INT_EQ(mproc__plat_cpu_count_combine(8, 2.0), 2);
  CHECK_INT_EQ(mproc__plat_cpu_count_combine(8, 0.2), 1);
  CHECK_INT_EQ(mproc__plat_cpu_count_combine(2, 16), 2);
  CHECK_INT_EQ(mproc__plat_cpu_count_combine(0, 0), 1);
}

static void *last_message(void *arg) {
  (void)arg;
  return (void *)mproc_last_error_message();
}

/* Never NULL: "" in a thread where no call has set one (the pool tests set it). */
MTEST(last_error_message_starts_empty) {
  CHECK_STR_EQ(mproc_last_error_message(), "");
  pthread_t th;
  void *m = NULL;
  CHECK_INT_EQ(pthread_create(&th, NULL, last_message, NULL), 0);
  CHECK_INT_EQ(pthread_join(th, &m), 0);
  CHECK_STR_EQ((const char *)m, "");
}
