/* test_cache.c: the result cache: hits and misses, code-change invalidation, concurrent processes, a
 * computing process killed, injected storage failures, maintenance.  Corruption, a full disk, permissions,
 * planted files, copied entries, other users, chdir() and a removed directory: test_cache_faults.c. */
#include "mtest.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "cache/entry.h"
#include "internal.h"

static char g_dir[128];
static int g_calls;
static int g_count_fd = -1; /* when >= 0, every computation writes one byte here (O_APPEND) */

static int rm_cb(const char *p, const struct stat *s, int flag, struct FTW *f) {
  (void)s, (void)flag, (void)f;
  return remove(p);
}
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh cache directory path (not created) under a fresh temporary directory. */
static char g_base[64];
static const char *tmpcache(void) {
  char *base = g_base;
  snprintf(base, sizeof g_base, "/tmp/mproc_cache_test.XXXXXX");
  CHECK(mkdtemp(base) != NULL);
  snprintf(g_dir, sizeof g_dir, "%s/c", g_base);
  return g_dir;
}
static void cleanup(void) { rm_rf(g_base); }

static int twice(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  if (g_count_fd >= 0) CHECK_INT_EQ(write(g_count_fd, "x", 1), 1);
  int x = len == sizeof(int) ? *(const int *)arg : -1;
  int y = 2 * x;
  return mproc_task_return(t, &y, sizeof y);
}

static int failing(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  g_calls++;
  return mproc_task_fail(t, MPROC_ERANGE, "out of range");
}

static int bigresult(const void *arg, size_t len, mproc_task *t) {
  size_t n = *(const size_t *)arg;
  (void)len;
  if (n == 0) return 0;
  unsigned char *p = mproc_task_return_buffer(t, n);
  if (!p) return MPROC_ENOMEM;
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i % 251);
  return 0;
}

static int call_int(mproc_cache *c, mproc_task_fn fn, int x, int *y, int *hit) {
  mproc_cache_result *r;
  int rc = mproc_cache_call(c, fn, &x, sizeof x, &r);
  if (rc == 0) {
    CHECK_INT_EQ(mproc_cache_result_len(r), sizeof(int));
    memcpy(y, mproc_cache_result_data(r), sizeof *y);
    *hit = mproc_cache_result_hit(r);
    CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
  }
  mproc_cache_result_release(r);
  return rc;
}

MTEST(open_errors) {
  const char *dir = tmpcache();
  mproc_cache *c = NULL;
  CHECK_ERR(mproc_cache_open(NULL, dir, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, "", NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = 20}), MPROC_EINVAL);
  CHECK(c == NULL);
  char p[128];
  snprintf(p, sizeof p, "%s/link", g_base);
  CHECK_INT_EQ(symlink("/tmp", p), 0);
  CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_ELOOP);
  /* a trailing slash or "/." would make the system follow the link before O_NOFOLLOW sees it */
  snprintf(p, sizeof p, "%s/link/", g_base);
  CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_ELOOP);
  snprintf(p, sizeof p, "%s/link//.//", g_base);
  CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_ELOOP);
  snprintf(p, sizeof p, "%s/file", g_base);
  int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  close(fd);
  CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_ENOTDIR);
  snprintf(p, sizeof p, "%s/file/", g_base);
  CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_ENOTDIR);
  snprintf(p, sizeof p, "%s/none/c", g_base);
  CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_ENOENT);
  snprintf(p, sizeof p, "%s/other", g_base);
  CHECK_INT_EQ(mkdir(p, 0700), 0);
  if (geteuid() == 0) { /* only root can give a directory away */
    CHECK_INT_EQ(chown(p, 65534, 65534), 0);
    CHECK_ERR(mproc_cache_open(&c, p, NULL), MPROC_EPERM);
  }
  CHECK(c == NULL);
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  struct stat st;
  CHECK_INT_EQ(stat(dir, &st), 0);
  CHECK_INT_EQ(st.st_mode & 0777, 0700);
  mproc_cache_close(c);
  mproc_cache_close(NULL);
  cleanup();
}

MTEST(hit_miss_contains_stats) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), NULL));
  int y, hit, x = 21;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  CHECK_OK(call_int(c, twice, 21, &y, &hit));
  CHECK_INT_EQ(y, 42);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 1);
  CHECK_OK(call_int(c, twice, 21, &y, &hit));
  CHECK_INT_EQ(y, 42);
  CHECK_INT_EQ(hit, 1);
  CHECK_OK(call_int(c, twice, 22, &y, &hit));
  CHECK_INT_EQ(y, 44);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(g_calls, 2);
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.hits, 1);
  CHECK_INT_EQ(s.misses, 2);
  CHECK_INT_EQ(s.stores, 2);
  CHECK_INT_EQ(s.store_failures, 0);
  CHECK_INT_EQ(s.code_hash_unavailable, 0); /* a static function: found in /proc/self/exe's .symtab */
  CHECK_ERR(mproc_cache_get_stats(NULL, &s), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_get_stats(c, NULL), MPROC_EINVAL);
  mproc_cache_result *r = NULL;
  CHECK_ERR(mproc_cache_call(NULL, twice, &x, sizeof x, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call(c, NULL, &x, sizeof x, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call(c, twice, NULL, 4, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call(c, twice, &x, sizeof x, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_contains(NULL, twice, &x, sizeof x), MPROC_EINVAL);
  CHECK(r == NULL);
  /* a new handle (as another process would) sees the entries */
  mproc_cache *c2;
  CHECK_OK(mproc_cache_open(&c2, g_dir, NULL));
  CHECK_OK(call_int(c2, twice, 22, &y, &hit));
  CHECK_INT_EQ(hit, 1);
  mproc_cache_close(c2);
  mproc_cache_close(c);
  cleanup();
}

MTEST(failure_not_cached) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), NULL));
  mproc_cache_result *r;
  CHECK_ERR(mproc_cache_call(c, failing, "a", 1, &r), MPROC_ERANGE);
  CHECK_STR_EQ(mproc_cache_result_message(r), "out of range");
  mproc_cache_result_release(r);
  CHECK_INT_EQ(mproc_cache_contains(c, failing, "a", 1), 0);
  CHECK_ERR(mproc_cache_call(c, failing, "a", 1, &r), MPROC_ERANGE);
  mproc_cache_result_release(r);
  CHECK_INT_EQ(g_calls, 2);
  mproc_cache_close(c);
  cleanup();
}

static void check_big(mproc_cache *c, size_t n, int want_hit) {
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call(c, bigresult, &n, sizeof n, &r));
  CHECK_INT_EQ(mproc_cache_result_hit(r), want_hit);
  CHECK_INT_EQ(mproc_cache_result_len(r), n);
  const unsigned char *p = mproc_cache_result_data(r);
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i % 251)) CHECK_INT_EQ(p[i], i % 251);
  mproc_cache_result_release(r);
}

MTEST(compression_and_mmap) {
  for (int level = -1; level <= 19; level += 10) {
    mproc_cache *c;
    CHECK_OK(mproc_cache_open(&c, tmpcache(),
                              &(mproc_cache_opts){.compress_level = level, .mmap_threshold = 4096}));
    size_t sizes[] = {0, 1, 5000, 3 << 20};
    for (int i = 0; i < 4; i++) {
      check_big(c, sizes[i], 0);
      check_big(c, sizes[i], 1);
    }
    mproc_cache_close(c);
    cleanup();
  }
}

/* Loads variant v of libcachefn.so and calls its cachefn through the cache. */
static int call_variant(mproc_cache *c, const char *v, int x, int *y) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/libcachefn.so", CACHEFN_DIR, v);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) fprintf(stderr, "# dlopen: %s\n", dlerror());
  CHECK(h != NULL);
  mproc_task_fn fn;
  void *sym = dlsym(h, "cachefn");
  CHECK(sym != NULL);
  memcpy(&fn, &sym, sizeof fn);
  int hit = -1;
  CHECK_OK(call_int(c, fn, x, y, &hit));
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.code_hash_unavailable, 0);
  dlclose(h);
  return hit;
}

MTEST(code_change_invalidates) {
  const char *dir = tmpcache();
  mproc_cache *c;
  int y;
  /* a fresh handle per load: the handle remembers identities per function pointer */
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  CHECK_INT_EQ(call_variant(c, "v1", 5, &y), 0);
  CHECK_INT_EQ(y, 16);
  mproc_cache_close(c);
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  CHECK_INT_EQ(call_variant(c, "v1c", 5, &y), 1); /* comment-only edit: same entry */
  CHECK_INT_EQ(y, 16);
  mproc_cache_close(c);
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  CHECK_INT_EQ(call_variant(c, "v2", 5, &y), 0); /* code edit: recomputed */
  CHECK_INT_EQ(y, 27);
  mproc_cache_close(c);
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  CHECK_INT_EQ(call_variant(c, "v1", 5, &y), 1); /* the old version's entry is still there */
  CHECK_INT_EQ(y, 16);
  mproc_cache_close(c);
  /* ignore_code_hash: every version shares one entry (stale results are the user's choice) */
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.ignore_code_hash = 1}));
  CHECK_INT_EQ(call_variant(c, "v1", 6, &y), 0);
  mproc_cache_close(c);
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.ignore_code_hash = 1}));
  CHECK_INT_EQ(call_variant(c, "v2", 6, &y), 1);
  CHECK_INT_EQ(y, 19);
  mproc_cache_close(c);
  /* a version string bump invalidates */
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.version = "2"}));
  CHECK_INT_EQ(call_variant(c, "v1", 5, &y), 0);
  mproc_cache_close(c);
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.version = "2"}));
  CHECK_INT_EQ(call_variant(c, "v1c", 5, &y), 1);
  mproc_cache_close(c);
  cleanup();
}

/* The path of the only entry file of the cache (fails the test if not exactly one). */
static void only_entry(char *out, size_t cap) {
  int found = 0;
  DIR *d = opendir(g_dir);
  CHECK(d != NULL);
  struct dirent *de, *fe;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char sub[400];
    snprintf(sub, sizeof sub, "%s/%s", g_dir, de->d_name);
    DIR *f = opendir(sub);
    CHECK(f != NULL);
    while ((fe = readdir(f))) {
      size_t n = strlen(fe->d_name);
      if (n > 2 && strcmp(fe->d_name + n - 2, ".e") == 0) {
        snprintf(out, cap, "%s/%s", sub, fe->d_name);
        found++;
      }
    }
    closedir(f);
  }
  closedir(d);
  CHECK_INT_EQ(found, 1);
}

static int g_fail_errno;
static ssize_t failing_write(int fd, const void *b, size_t n) {
  (void)fd, (void)b, (void)n;
  errno = g_fail_errno;
  return -1;
}
static int failing_rename(int ad, const char *a, int bd, const char *b) {
  (void)ad, (void)a, (void)bd, (void)b;
  errno = g_fail_errno;
  return -1;
}

static void entry_of(const mproc_cache_opts *o, mproc_task_fn fn, int x, char *out, size_t cap);

/* The entry of (twice, x) gets access time t (seconds since the epoch). */
static void set_age(int x, time_t t) {
  char path[1024];
  entry_of(NULL, twice, x, path, sizeof path);
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  CHECK_INT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

MTEST(reduce_clear) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), &(mproc_cache_opts){.compress_level = -1}));
  int y, hit;
  time_t now = time(NULL);
  for (int i = 0; i < 6; i++) CHECK_OK(call_int(c, twice, i, &y, &hit));
  for (int i = 0; i < 6; i++) set_age(i, now - 1000 + i * 100); /* 0 oldest ... 5 newest */
  CHECK_OK(call_int(c, twice, 0, &y, &hit));                    /* a hit makes 0 the most recently used */
  CHECK_INT_EQ(hit, 1);
  int64_t entry = sizeof(mproc__entry_header) + sizeof(int);
  CHECK_OK(mproc_cache_reduce(c, 4 * entry, -1)); /* removes 1 and 2 */
  for (int i = 0; i < 6; i++) {
    int x = i;
    CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), i == 1 || i == 2 ? 0 : 1);
  }
  CHECK_OK(mproc_cache_reduce(c, -1, 650)); /* by age: 3 (700 s) goes, 4 (600 s) stays */
  for (int i = 0; i < 6; i++) {
    int x = i;
    CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), i == 0 || i >= 4);
  }
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.evictions, 3);
  CHECK_ERR(mproc_cache_reduce(c, -1, NAN), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce(NULL, -1, -1), MPROC_EINVAL);
  CHECK_OK(mproc_cache_reduce(c, 0, -1));
  int x = 0;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);

  CHECK_OK(call_int(c, twice, 1, &y, &hit));
  CHECK_OK(call_int(c, twice, 2, &y, &hit));
  size_t n = 10;
  check_big(c, n, 0);
  CHECK_OK(mproc_cache_clear_function(c, twice));
  x = 1;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  CHECK_INT_EQ(mproc_cache_contains(c, bigresult, &n, sizeof n), 1);
  CHECK_ERR(mproc_cache_clear_function(c, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_clear_function(NULL, twice), MPROC_EINVAL);
  CHECK_OK(mproc_cache_clear(c));
  CHECK_INT_EQ(mproc_cache_contains(c, bigresult, &n, sizeof n), 0);
  CHECK_ERR(mproc_cache_clear(NULL), MPROC_EINVAL);
  mproc_cache_close(c);
  cleanup();
}

/* Four processes ask for the same 20 entries at once: each entry is computed exactly once. */
MTEST(concurrent_processes) {
  const char *dir = tmpcache();
  char cnt[128];
  snprintf(cnt, sizeof cnt, "%s/count", g_base);
  g_count_fd = open(cnt, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
  CHECK(g_count_fd >= 0);
  int go[2];
  CHECK_INT_EQ(pipe(go), 0);
  pid_t kids[4];
  for (int k = 0; k < 4; k++) {
    kids[k] = fork();
    CHECK(kids[k] >= 0);
    if (kids[k] == 0) {
      close(go[1]);
      char b;
      if (read(go[0], &b, 1) != 0) _exit(5); /* start together when the parent closes the pipe */
      mproc_cache *c;
      if (mproc_cache_open(&c, dir, NULL) != 0) _exit(3);
      int bad = 0;
      for (int i = 0; i < 20; i++) {
        int x = (i + k * 5) % 20, y, hit;
        if (call_int(c, twice, x, &y, &hit) != 0 || y != 2 * x) bad = 1;
      }
      mproc_cache_close(c);
      _exit(bad ? 4 : 0);
    }
  }
  close(go[0]);
  close(go[1]);
  for (int k = 0; k < 4; k++) {
    int st;
    CHECK_INT_EQ(waitpid(kids[k], &st, 0), kids[k]);
    CHECK(WIFEXITED(st));
    CHECK_INT_EQ(WEXITSTATUS(st), 0);
  }
  close(g_count_fd);
  struct stat st;
  CHECK_INT_EQ(stat(cnt, &st), 0);
  CHECK_INT_EQ(st.st_size, 20);
  cleanup();
}

static int g_started = -1, g_block = -1;
static int blocker(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  if (g_started >= 0) {
    CHECK_INT_EQ(write(g_started, "s", 1), 1);
    char b;
    CHECK_INT_EQ(read(g_block, &b, 1), 1); /* never comes: this process is killed */
  }
  int y = 99;
  return mproc_task_return(t, &y, sizeof y);
}

/* The process computing an entry is SIGKILLed: a process waiting for it takes over and computes. */
MTEST(computing_process_killed) {
  const char *dir = tmpcache();
  int started[2], block[2], res[2];
  CHECK_INT_EQ(pipe(started), 0);
  CHECK_INT_EQ(pipe(block), 0);
  CHECK_INT_EQ(pipe(res), 0);
  pid_t a = fork();
  CHECK(a >= 0);
  if (a == 0) {
    g_started = started[1];
    g_block = block[0];
    mproc_cache *c;
    mproc_cache_result *r;
    if (mproc_cache_open(&c, dir, NULL) == 0) mproc_cache_call(c, blocker, "k", 1, &r);
    _exit(1);
  }
  char b;
  CHECK_INT_EQ(read(started[0], &b, 1), 1); /* a holds the entry's lock and computes */
  pid_t w = fork();
  CHECK(w >= 0);
  if (w == 0) {
    mproc_cache *c;
    mproc_cache_result *r;
    if (mproc_cache_open(&c, dir, NULL) != 0) _exit(3);
    int ok = mproc_cache_call(c, blocker, "k", 1, &r) == 0 && !mproc_cache_result_hit(r) &&
             *(const int *)mproc_cache_result_data(r) == 99;
    mproc_cache_stats s;
    mproc_cache_get_stats(c, &s);
    char out = (char)('0' + (int)s.waits);
    if (write(res[1], &out, 1) != 1) ok = 0;
    mproc_cache_result_release(r);
    mproc_cache_close(c);
    _exit(ok ? 0 : 4);
  }
  CHECK_INT_EQ(kill(a, SIGKILL), 0);
  int st;
  CHECK_INT_EQ(waitpid(a, &st, 0), a);
  CHECK(WIFSIGNALED(st));
  CHECK_INT_EQ(waitpid(w, &st, 0), w);
  CHECK(WIFEXITED(st));
  CHECK_INT_EQ(WEXITSTATUS(st), 0);
  CHECK_INT_EQ(read(res[0], &b, 1), 1);
  CHECK(b == '0' || b == '1'); /* 1 when w arrived before the kill (the usual case), 0 after */
  close(started[0]), close(started[1]), close(block[0]), close(block[1]), close(res[0]), close(res[1]);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  CHECK_INT_EQ(mproc_cache_contains(c, blocker, "k", 1), 1);
  mproc_cache_close(c);
  cleanup();
}

/* Verbose mode says hit or miss on stderr. */
MTEST(verbose_lines) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), &(mproc_cache_opts){.verbose = 1}));
  char log[160];
  snprintf(log, sizeof log, "%s/log", g_base);
  int fd = open(log, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600), saved = dup(2);
  CHECK(fd >= 0 && saved >= 0);
  CHECK_INT_EQ(dup2(fd, 2), 2);
  int y, hit;
  CHECK_OK(call_int(c, twice, 4, &y, &hit));
  CHECK_OK(call_int(c, twice, 4, &y, &hit));
  CHECK_INT_EQ(dup2(saved, 2), 2);
  close(saved);
  char buf[1024] = {0};
  CHECK_INT_CMP(pread(fd, buf, sizeof buf - 1, 0), >, 0);
  close(fd);
  char *miss = strstr(buf, "miss "), *hitl = strstr(buf, "hit ");
  CHECK(miss != NULL && hitl != NULL && miss < hitl);
  CHECK(strstr(buf, "twice") != NULL); /* the function is named */
  mproc_cache_close(c);
  cleanup();
}

/* The path of the entry of (fn, x) among several: the .e file whose removal makes contains() false. */
static void entry_of(const mproc_cache_opts *o, mproc_task_fn fn, int x, char *out, size_t cap) {
  int found = 0;
  DIR *d = opendir(g_dir);
  CHECK(d != NULL);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char sub[400];
    snprintf(sub, sizeof sub, "%s/%s", g_dir, de->d_name);
    DIR *f = opendir(sub);
    struct dirent *fe;
    while (f && (fe = readdir(f))) {
      size_t n = strlen(fe->d_name);
      if (n < 3 || strcmp(fe->d_name + n - 2, ".e") || fe->d_name[0] == '.') continue;
      char path[1024], moved[1100];
      snprintf(path, sizeof path, "%s/%s", sub, fe->d_name);
      snprintf(moved, sizeof moved, "%s.x", path);
      CHECK_INT_EQ(rename(path, moved), 0);
      mproc_cache *c;
      CHECK_OK(mproc_cache_open(&c, g_dir, o));
      int present = mproc_cache_contains(c, fn, &x, sizeof x);
      mproc_cache_close(c);
      CHECK_INT_EQ(rename(moved, path), 0);
      if (!present) {
        snprintf(out, cap, "%s", path);
        found++;
      }
    }
    if (f) closedir(f);
  }
  closedir(d);
  CHECK_INT_EQ(found, 1);
}

/* Writes len bytes to path through a temporary file and rename (as the cache would). */
static void put_file(const char *path, const void *data, size_t len) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.put", path);
  int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  CHECK_INT_EQ(write(fd, data, len), (ssize_t)len);
  close(fd);
  CHECK_INT_EQ(rename(tmp, path), 0);
}

static size_t get_file(const char *path, void *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  ssize_t n = read(fd, buf, cap);
  CHECK(n >= 0);
  close(fd);
  return (size_t)n;
}

/* The layout of format 1 (no key in the header), as written before format 2. */
typedef struct v1_header {
  uint32_t magic;
  uint16_t format, flags;
  uint64_t raw_size, stored_size, checksum;
  int64_t created_ns;
  uint64_t code_hash, reserved, header_check;
} v1_header;

/* An entry of an older format is recomputed, never read with today's layout. */
MTEST(old_format_entry_recomputed) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), &(mproc_cache_opts){.compress_level = -1}));
  int y, hit;
  CHECK_OK(call_int(c, twice, 3, &y, &hit));
  char path[1024];
  only_entry(path, sizeof path);
  struct {
    v1_header h;
    int v;
  } e = {{.magic = MPROC__ENTRY_MAGIC, .format = 1, .raw_size = sizeof(int), .stored_size = sizeof(int)},
         1234};
  e.h.checksum = XXH3_64bits(&e.v, sizeof e.v);
  e.h.header_check = XXH3_64bits(&e.h, offsetof(v1_header, header_check));
  put_file(path, &e, sizeof e.h + sizeof e.v);
  CHECK_OK(call_int(c, twice, 3, &y, &hit));
  CHECK_INT_EQ(y, 6);
  CHECK_INT_EQ(hit, 0);
  CHECK_OK(call_int(c, twice, 3, &y, &hit));
  CHECK_INT_EQ(hit, 1);
  mproc_cache_close(c);
  cleanup();
}

static size_t g_largest;
static void *record_malloc(size_t n) {
  if (n > g_largest) g_largest = n;
  return n > ((size_t)1 << 30) ? NULL : malloc(n);
}
static void *record_calloc(size_t k, size_t n) {
  if (k * n > g_largest) g_largest = k * n;
  return calloc(k, n);
}
static void *record_realloc(void *p, size_t n) {
  if (n > g_largest) g_largest = n;
  return realloc(p, n);
}

/* A header claiming a raw size its payload cannot decompress to is corrupt: it decides no allocation. */
MTEST(raw_size_bounded_by_payload) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), NULL));
  int y, hit, x = 4;
  CHECK_OK(call_int(c, twice, 4, &y, &hit)); /* 4 bytes: stored uncompressed */
  char path[1024];
  only_entry(path, sizeof path);
  struct {
    mproc__entry_header h;
    unsigned char payload[64];
  } e;
  CHECK_INT_EQ(get_file(path, &e, sizeof e), sizeof e.h + sizeof(int));
  size_t n = ZSTD_compress(e.payload, sizeof e.payload, &y, sizeof y, 3);
  CHECK(!ZSTD_isError(n));
  CHECK_INT_EQ(n, 13);
  e.h.flags = MPROC__ENTRY_ZSTD;
  e.h.raw_size = (uint64_t)20 << 30;
  e.h.stored_size = n;
  e.h.checksum = XXH3_64bits(e.payload, n);
  e.h.header_check = XXH3_64bits(&e.h, offsetof(mproc__entry_header, header_check));
  put_file(path, &e, sizeof e.h + n);
  CHECK_OK(mproc_replace_allocator(record_malloc, record_realloc, record_calloc, free));
  CHECK_OK(call_int(c, twice, 4, &y, &hit));
  CHECK_OK(mproc_replace_allocator(malloc, realloc, calloc, free));
  CHECK_INT_CMP(g_largest, <, (size_t)1 << 20);
  CHECK_INT_EQ(y, 8);
  CHECK_INT_EQ(hit, 0);
  put_file(path, &e, sizeof e.h + n);
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.corrupt_recomputed, 1);
  mproc_cache_close(c);
  cleanup();
}

/* A large hit held by the caller survives its file being truncated (no SIGBUS) or replaced. */
MTEST(large_hit_survives_truncation) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), &(mproc_cache_opts){.compress_level = -1}));
  size_t n = (size_t)3 << 20;
  check_big(c, n, 0);
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call(c, bigresult, &n, sizeof n, &r));
  CHECK_INT_EQ(mproc_cache_result_hit(r), 1);
  char path[1024];
  only_entry(path, sizeof path);
  CHECK_INT_EQ(truncate(path, 0), 0);
  const unsigned char *p = mproc_cache_result_data(r);
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i % 251)) CHECK_INT_EQ(p[i], i % 251);
  mproc_cache_result_release(r);
  check_big(c, n, 0); /* the truncated entry is corrupt: recomputed */
  mproc_cache_close(c);
  cleanup();
}

static int failing_fsync(int fd) {
  (void)fd;
  errno = g_fail_errno;
  return -1;
}
static ssize_t failing_read(int fd, void *b, size_t n) {
  (void)fd, (void)b, (void)n;
  errno = g_fail_errno;
  return -1;
}
static const char *g_fail_prefix; /* failing_openat fails the names that start with it */
static int failing_openat(int dirfd, const char *path, int flags, mode_t mode) {
  if (strncmp(path, g_fail_prefix, strlen(g_fail_prefix)) == 0) {
    errno = g_fail_errno;
    return -1;
  }
  return openat(dirfd, path, flags, mode);
}
static void *failing_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off) {
  (void)a, (void)n, (void)prot, (void)flags, (void)fd, (void)off;
  errno = ENOMEM;
  return MAP_FAILED;
}

/* Each step of a store failed through mproc__plat_sys (ENOSPC on write, EACCES on renameat, EIO on fsync,
 * EACCES creating the temporary file): the computed result is returned with the error in store_error,
 * nothing is stored, and no temporary file is left. */
MTEST(store_failure_keeps_result) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), &(mproc_cache_opts){.durable = 1}));
  for (int which = 0; which < 4; which++) {
    switch (which) {
      case 0:
        g_fail_errno = ENOSPC;
        mproc__plat_sys.write = failing_write;
        break;
      case 1:
        g_fail_errno = EACCES;
        mproc__plat_sys.renameat = failing_rename;
        break;
      case 2:
        g_fail_errno = EIO;
        mproc__plat_sys.fsync = failing_fsync;
        break;
      default:
        g_fail_errno = EACCES;
        g_fail_prefix = ".tmp.";
        mproc__plat_sys.openat = failing_openat;
    }
    int x = 7 + which;
    mproc_cache_result *r;
    CHECK_OK(mproc_cache_call(c, twice, &x, sizeof x, &r));
    CHECK_INT_EQ(*(const int *)mproc_cache_result_data(r), 2 * x);
    CHECK_INT_EQ(mproc_cache_result_hit(r), 0);
    CHECK_INT_EQ(mproc_cache_result_store_error(r), -g_fail_errno);
    mproc_cache_result_release(r);
    mproc__plat_syscalls_reset();
    CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  }
  /* no temporary file is left behind (only_entry counts every name ending in .e, .tmp.* ones too) */
  char path[1024];
  int y, hit;
  CHECK_OK(call_int(c, twice, 1, &y, &hit));
  only_entry(path, sizeof path);
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.store_failures, 4);
  CHECK_INT_EQ(s.stores, 1);
  CHECK_INT_EQ(s.corrupt_recomputed, 0);
  mproc_cache_close(c);
  cleanup();
}

/* An entry that cannot be read (EIO on read, EACCES on opening it) is recomputed and stored again; a large
 * hit whose memory mapping fails is read into the heap. */
MTEST(load_failure_recomputes) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), &(mproc_cache_opts){.compress_level = -1}));
  int y, hit;
  for (int which = 0; which < 2; which++) {
    CHECK_OK(call_int(c, twice, 9, &y, &hit));
    if (which == 0) {
      g_fail_errno = EIO;
      mproc__plat_sys.read = failing_read;
    } else {
      g_fail_errno = EACCES;
      static char path[1024];
      only_entry(path, sizeof path);
      g_fail_prefix = strrchr(path, '/') + 1; /* the entry, not its directory nor a temporary file */
      mproc__plat_sys.openat = failing_openat;
    }
    CHECK_OK(call_int(c, twice, 9, &y, &hit)); /* checks store_error == 0 */
    mproc__plat_syscalls_reset();
    CHECK_INT_EQ(y, 18);
    CHECK_INT_EQ(hit, 0);
    CHECK_OK(call_int(c, twice, 9, &y, &hit));
    CHECK_INT_EQ(hit, 1);
  }
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.corrupt_recomputed, 0);
  CHECK_INT_EQ(g_calls, 3);
  size_t n = (size_t)2 << 20;
  check_big(c, n, 0);
  mproc__plat_sys.mmap = failing_mmap;
  check_big(c, n, 1);
  mproc__plat_syscalls_reset();
  mproc_cache_close(c);
  cleanup();
}
