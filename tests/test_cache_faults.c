/* test_cache_faults.c: issue 17's cache-faults group (ctest label cache-faults): the result cache under
 * real faults.  Writers SIGKILLed mid-write while readers check every byte; bit flips, truncation, appended
 * bytes and emptied files; a full disk (a small tmpfs, a file-size limit) and permission errors (another
 * user, a read-only mount); symbolic links, FIFOs, devices and sockets planted where entries, function
 * directories, the lock or the directory should be; entries copied under another key; a directory others
 * can write to; a relative path after chdir(); the directory deleted under a live handle.  Injected errors
 * (ENOSPC, EIO through mproc__plat_sys) are tests/test_faults.c's and test_cache.c's.
 *
 * Root is needed for some cases (mounting a tmpfs, becoming another user, making device nodes); without it
 * those parts print "# skipped: why" and the rest runs.  Options: --kills N (writers killed; default 1000,
 * divided by MTEST_TIMEOUT_SCALE), --mutations N (corruptions of each entry, the kinds in turn; default 30,
 * divided likewise).  The long form (docs/reliability.md):
 * test_cache_faults --kills 50000 --mutations 2000 --timeout-scale 50. */
#include "mtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "internal.h"

static long opt_kills, opt_mutations; /* 0: the short form's, divided by MTEST_TIMEOUT_SCALE */

static long count_of(long given, long short_form) {
  if (given > 0) return given;
  const char *s = getenv("MTEST_TIMEOUT_SCALE");
  double f = s ? atof(s) : 1;
  long n = (long)((double)short_form / (f >= 1 ? f : 1));
  return n > 0 ? n : 1;
}

static const char *set_kills(const char *v) {
  opt_kills = atol(v);
  if (opt_kills <= 0) {
    fprintf(stderr, "--kills: a count > 0\n");
    exit(2);
  }
  return NULL;
}
static const char *set_mutations(const char *v) {
  opt_mutations = atol(v);
  if (opt_mutations <= 0) {
    fprintf(stderr, "--mutations: a count > 0\n");
    exit(2);
  }
  return NULL;
}
__attribute__((constructor)) static void options(void) {
  mtest_register_option("--kills", set_kills);
  mtest_register_option("--mutations", set_mutations);
}

/* ---- helpers ---- */

static char g_base[64], g_dir[128];
static int g_calls;

static int rm_cb(const char *p, const struct stat *s, int flag, struct FTW *f) {
  (void)s, (void)flag, (void)f;
  return remove(p);
}
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh cache path g_dir (not created) under a fresh directory g_base (0755: other users may look). */
static const char *tmpcache(void) {
  snprintf(g_base, sizeof g_base, "/tmp/mproc_cfault.XXXXXX");
  CHECK(mkdtemp(g_base) != NULL);
  CHECK_INT_EQ(chmod(g_base, 0755), 0);
  snprintf(g_dir, sizeof g_dir, "%s/c", g_base);
  return g_dir;
}
static void cleanup(void) { rm_rf(g_base); }

static int twice(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  int x = len == sizeof(int) ? *(const int *)arg : -1, y = 2 * x;
  return mproc_task_return(t, &y, sizeof y);
}
static int thrice(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  int x = len == sizeof(int) ? *(const int *)arg : -1, y = 3 * x;
  return mproc_task_return(t, &y, sizeof y);
}

/* Calls fn(x) for an int result: the call's code; *y, *hit and *serr (the store error) on success. */
static int call_int(mproc_cache *c, mproc_task_fn fn, int x, int *y, int *hit, int *serr) {
  mproc_cache_result *r;
  int rc = mproc_cache_call(c, fn, &x, sizeof x, &r);
  if (rc == 0) {
    CHECK_INT_EQ(mproc_cache_result_len(r), sizeof(int));
    memcpy(y, mproc_cache_result_data(r), sizeof *y);
    *hit = mproc_cache_result_hit(r);
    *serr = mproc_cache_result_store_error(r);
  }
  mproc_cache_result_release(r);
  return rc;
}

/* twice(x) must be computed or hit (want_hit) with store error want_err. */
static void expect_twice(mproc_cache *c, int x, int want_hit, int want_err) {
  int y = 0, hit = -1, serr = 1;
  CHECK_OK(call_int(c, twice, x, &y, &hit, &serr));
  CHECK_INT_EQ(y, 2 * x);
  CHECK_INT_EQ(hit, want_hit);
  CHECK_INT_EQ(serr, want_err);
}

/* The bytes of key k of the pattern function: its length and content (compressible for even k). */
static size_t pattern_len(uint32_t k) {
  static const size_t sizes[] = {64, 8 << 10, 48 << 10, 160 << 10};
  return sizes[k % 4] + k;
}
static void pattern_fill(uint32_t k, unsigned char *p, size_t n) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (k + 1);
  for (size_t i = 0; i < n; i++) {
    if (k % 2 == 0) {
      p[i] = (unsigned char)(k * 7 + i / 64);
    } else {
      if (i % 8 == 0) s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      p[i] = (unsigned char)(s >> (i % 8 * 8));
    }
  }
}
static int pattern(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  uint32_t k = 0;
  if (len >= sizeof k) memcpy(&k, arg, sizeof k);
  size_t n = len == 8 ? ((const uint32_t *)arg)[1] : pattern_len(k); /* {k, n}: n bytes */
  if (n == 0) return 0;                                              /* an empty result */
  unsigned char *p = mproc_task_return_buffer(t, n);
  if (!p) return MPROC_ENOMEM;
  pattern_fill(k, p, n);
  return 0;
}
/* 1 when r holds exactly the n bytes of pattern key k. */
static int pattern_ok(const mproc_cache_result *r, uint32_t k, size_t n, unsigned char *scratch) {
  if (mproc_cache_result_len(r) != n) return 0;
  if (n == 0) return 1; /* the data of an empty result may be NULL, which memcmp may not be given */
  pattern_fill(k, scratch, n);
  return memcmp(mproc_cache_result_data(r), scratch, n) == 0;
}

/* The path of the entry of (fn, arg, o), which must be stored and valid. */
static void path_of(mproc_cache *c, const char *dir, mproc_task_fn fn, const void *arg, size_t len,
                    const mproc_cache_call_opts *o, char *out, size_t cap) {
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, fn, arg, len, o, &e), 1);
  mproc_cache_entry_info i;
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  mproc_cache_entry_release(e);
  snprintf(out, cap, "%s/%016" PRIx64 "/%s.e", dir, i.fn_key, i.key);
}
static void twice_path(mproc_cache *c, int x, char *out, size_t cap) {
  path_of(c, g_dir, twice, &x, sizeof x, NULL, out, cap);
}
static void parent_of(const char *path, char *out, size_t cap) {
  snprintf(out, cap, "%s", path);
  *strrchr(out, '/') = '\0';
}

static size_t get_file(const char *path, void *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  CHECK(fd >= 0);
  size_t got = 0;
  for (ssize_t n; got < cap && (n = read(fd, (char *)buf + got, cap - got)) > 0;) got += (size_t)n;
  close(fd);
  return got;
}
/* Writes the file in place (as a disk would corrupt it: same inode), or creates it. */
static void set_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  if (len) CHECK_INT_EQ(write(fd, data, len), (ssize_t)len);
  close(fd);
}
/* A valid entry for the key of the entry at from, holding data: what another user could write. */
static void forge(const char *from, const char *to, const void *data, size_t len) {
  static unsigned char buf[sizeof(mproc__entry_header) + 4096];
  CHECK(len <= 4096);
  mproc__entry_header h;
  CHECK_INT_EQ(get_file(from, &h, sizeof h), sizeof h);
  h.flags = 0;
  h.raw_size = h.stored_size = len;
  h.checksum = XXH3_64bits(data, len);
  h.header_check = mproc__entry_header_check(&h);
  memcpy(buf, &h, sizeof h);
  memcpy(buf + sizeof h, data, len);
  set_file(to, buf, sizeof h + len);
}

/* How many names under dir (recursively) start with ".tmp.". */
static int count_tmp(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    if (!strncmp(de->d_name, ".tmp.", 5)) n++;
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
    struct stat st;
    if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) n += count_tmp(sub);
  }
  closedir(d);
  return n;
}

/* Sets the times of every temporary file under dir an hour back (older than reduce's grace). */
static void age_tmp(const char *dir) {
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
    struct stat st;
    CHECK_INT_EQ(lstat(sub, &st), 0);
    if (S_ISDIR(st.st_mode)) age_tmp(sub);
    struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    if (!strncmp(de->d_name, ".tmp.", 5)) CHECK_INT_EQ(utimensat(AT_FDCWD, sub, ts, AT_SYMLINK_NOFOLLOW), 0);
  }
  closedir(d);
}

/* How many entries the cache lists, and how many of them as corrupt. */
static size_t count_entries(mproc_cache *c, size_t *corrupt) {
  static mproc_cache_entry_info v[4096];
  size_t n = 0;
  CHECK_OK(mproc_cache_list(c, NULL, v, 4096, &n));
  CHECK(n <= 4096);
  *corrupt = 0;
  for (size_t i = 0; i < n; i++) *corrupt += v[i].corrupt != 0;
  return n;
}

static uint64_t stat_of(mproc_cache *c, int which) {
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  return which == 0 ? s.corrupt_recomputed : which == 1 ? s.store_failures : s.hits;
}

/* Runs fn in a child process (after it optionally became another user) and checks it exited 0. */
static void in_child(void (*fn)(void *), void *arg, uid_t as) {
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (as != 0 && (setgid(as) != 0 || setuid(as) != 0)) _exit(90);
    fn(arg);
    fflush(NULL);
    _exit(0);
  }
  int st;
  CHECK_INT_EQ(waitpid(pid, &st, 0), pid);
  if (WIFSIGNALED(st)) CHECK_INT_EQ(WTERMSIG(st), 0);
  CHECK_INT_EQ(WEXITSTATUS(st), 0);
}

/* A private mount namespace for this process (its mounts vanish with it); 0, or errno with a note. */
static int private_mounts(const char *what) {
  if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
    int e = errno;
    printf("# skipped: %s: a private mount namespace: %s (needs CAP_SYS_ADMIN)\n", what, strerror(e));
    return e;
  }
  return 0;
}

/* ==== writers SIGKILLed mid-write while readers check every byte ==== */

/* In a reader or a writer: ends with the test's process (killed at its timeout, say), not spinning on. */
static void die_with_test(void) {
  pid_t test = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != test) _exit(79);
}

#define NKEYS 24
#define NREADERS 2

typedef struct kill_board {
  int stop;
  uint64_t reads, bytes, hits, found, gone, waits;
  uint64_t bad; /* wrong or partial results, corrupt entries met: must stay 0 */
  char why[200];
} kill_board;

/* What a writer does before its kill; where it was (a record sent to the parent). */
enum { AT_HEADER, AT_DATA, AT_RENAME, AT_FREE, NWHERE };
typedef struct writer_plan {
  uint64_t cut;  /* bytes of the entry file written before the writer blocks */
  int over;      /* 1: the entry is not seen (openat says ENOENT), so the new one is renamed over it */
  int free_run;  /* 1: no handshake: the parent kills at a random time */
  int where;     /* filled as it blocks */
  int report;    /* the pipe to the parent */
  int tmp_fd;    /* the temporary file being written */
  uint64_t done; /* bytes of it written */
} writer_plan;
static writer_plan g_plan;

static void block_here(int where) {
  g_plan.where = where;
  if (write(g_plan.report, &g_plan.where, sizeof g_plan.where) != sizeof g_plan.where) _exit(80);
  for (;;) pause(); /* SIGKILL comes */
}
static int writer_openat(int dirfd, const char *path, int flags, mode_t mode) {
  size_t n = strlen(path);
  if (g_plan.over && n > 2 && !strcmp(path + n - 2, ".e") && strncmp(path, ".tmp.", 5) &&
      !(flags & O_CREAT)) {
    errno = ENOENT;
    return -1;
  }
  int fd = openat(dirfd, path, flags, mode);
  if (fd >= 0 && !strncmp(path, ".tmp.", 5)) {
    g_plan.tmp_fd = fd;
    g_plan.done = 0;
  }
  return fd;
}
static ssize_t writer_write(int fd, const void *buf, size_t len) {
  if (fd != g_plan.tmp_fd || g_plan.free_run) return write(fd, buf, len);
  if (g_plan.done + len <= g_plan.cut) {
    g_plan.done += len;
    return write(fd, buf, len);
  }
  size_t part = (size_t)(g_plan.cut - g_plan.done);
  if (part && write(fd, buf, part) != (ssize_t)part) _exit(81);
  block_here(g_plan.cut < sizeof(mproc__entry_header) ? AT_HEADER : AT_DATA);
  return -1;
}
static int writer_rename(int a, const char *from, int b, const char *to) {
  if (!g_plan.free_run && !strncmp(from, ".tmp.", 5)) block_here(AT_RENAME);
  return renameat(a, from, b, to);
}
static int always_invalid(const mproc_cache_entry_info *e, void *u) {
  (void)e, (void)u;
  return 0;
}

/* One writer: recomputes and stores keys until it is killed, through a handle of its parent's (opened
 * and used once there, so that the function's identity is known: a writer lives a few milliseconds). */
static void writer(mproc_cache *c, uint64_t seed) {
  mproc__plat_sys.openat = writer_openat;
  mproc__plat_sys.write = writer_write;
  mproc__plat_sys.renameat = writer_rename;
  for (uint64_t i = 0;; i++) {
    uint32_t k = (uint32_t)((seed >> 8) + i) % NKEYS;
    g_plan.tmp_fd = -1;
    /* "over": the old entry stays in place while the new one is written (renamed over it); otherwise it is
     * removed first (an invalid entry), and readers find none, wait for this writer's lock or compute */
    mproc_cache_call_opts o = {.validate = g_plan.over ? NULL : always_invalid};
    mproc_cache_result *r;
    if (mproc_cache_call_with(c, pattern, &k, sizeof k, &o, &r) != 0) _exit(83);
    mproc_cache_result_release(r);
  }
}

static void reader(const char *dir, kill_board *b, uint64_t seed) {
  /* the readers read all the time; the writers' cycle (fork, compute, write, kill) sets the pace */
  if (nice(10) < 0) _exit(72);
  mproc_cache *c;
  /* results from 64 KiB on come in their own mapping: both ways of loading are checked */
  if (mproc_cache_open(&c, dir, &(mproc_cache_opts){.mmap_threshold = 64 << 10}) != 0) _exit(70);
  unsigned char *want[NKEYS];
  for (uint32_t k = 0; k < NKEYS; k++) {
    if (!(want[k] = malloc(pattern_len(k)))) _exit(71);
    pattern_fill(k, want[k], pattern_len(k));
  }
  uint64_t s = seed | 1;
  while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t k = (uint32_t)(s % NKEYS);
    size_t n = pattern_len(k);
    mproc_cache_result *r = NULL;
    int rc, ok = 1, checked = 0;
    if (s & 0x100) { /* a call: hit, or computed (after waiting for a writer's lock, maybe) */
      rc = mproc_cache_call(c, pattern, &k, sizeof k, &r);
      if (rc != 0) {
        ok = 0;
      } else {
        checked = 1;
        ok = mproc_cache_result_len(r) == n && !memcmp(mproc_cache_result_data(r), want[k], n);
        if (mproc_cache_result_hit(r)) __atomic_fetch_add(&b->hits, 1, __ATOMIC_RELAXED);
      }
    } else { /* a lookup, then a load of what it found */
      mproc_cache_entry *e = NULL;
      rc = mproc_cache_lookup(c, pattern, &k, sizeof k, NULL, &e);
      if (rc == 1) {
        rc = mproc_cache_entry_load(e, &r);
        if (rc == 0) {
          checked = 1;
          ok = mproc_cache_result_len(r) == n && !memcmp(mproc_cache_result_data(r), want[k], n);
          __atomic_fetch_add(&b->found, 1, __ATOMIC_RELAXED);
        } else if (rc == MPROC_ENOENT) { /* removed by a writer between the two */
          __atomic_fetch_add(&b->gone, 1, __ATOMIC_RELAXED);
        } else {
          ok = 0;
        }
      } else if (rc != 0) {
        ok = 0;
      }
      mproc_cache_entry_release(e);
    }
    if (checked) {
      __atomic_fetch_add(&b->reads, 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&b->bytes, n, __ATOMIC_RELAXED);
    }
    if (!ok && __atomic_fetch_add(&b->bad, 1, __ATOMIC_RELAXED) == 0)
      snprintf(b->why, sizeof b->why, "key %u: rc %d (%s), length %zu of %zu", k, rc, mproc_err_name(rc),
               r ? mproc_cache_result_len(r) : 0, n);
    mproc_cache_result_release(r);
  }
  mproc_cache_stats st;
  mproc_cache_get_stats(c, &st);
  __atomic_fetch_add(&b->waits, st.waits, __ATOMIC_RELAXED);
  if (st.corrupt_recomputed && __atomic_fetch_add(&b->bad, st.corrupt_recomputed, __ATOMIC_RELAXED) == 0)
    snprintf(b->why, sizeof b->why, "%" PRIu64 " corrupt entries met", st.corrupt_recomputed);
  mproc_cache_close(c);
  for (uint32_t k = 0; k < NKEYS; k++) free(want[k]);
  _exit(0);
}

/* Forks a writer with the plan drawn from s (blocked at its cut, or running free when *at is not NULL and
 * the draw says so, then killed after a random moment) and waits until it is there: *at says where. */
static pid_t spawn_writer(mproc_cache *wc[4], uint64_t s, int *at) {
  uint32_t k = (uint32_t)((s >> 8) % NKEYS);
  int fds[2];
  CHECK_INT_EQ(pipe2(fds, O_CLOEXEC), 0);
  /* the cut: anywhere in the header, the data or past the end (then before the rename); 1 in 8 writers runs
   * free and is killed at a random time instead */
  g_plan = (writer_plan){.cut = (s >> 20) % (pattern_len(k) + 2 * sizeof(mproc__entry_header)),
                         .over = (s >> 4) % 2,
                         .free_run = at && (s >> 12) % 8 == 0,
                         .report = fds[1],
                         .tmp_fd = -1};
  pid_t w = fork();
  CHECK(w >= 0);
  if (w == 0) {
    close(fds[0]);
    die_with_test();
    writer(wc[(s >> 30) % 4], (uint64_t)k << 8 | (s & 0xff));
  }
  close(fds[1]);
  int where = AT_FREE;
  if (g_plan.free_run) {
    struct timespec ts = {0, (long)((s >> 24) % 4000000)}; /* the kill's random moment, not a wait */
    nanosleep(&ts, NULL);
  } else {
    CHECK_INT_EQ(read(fds[0], &where, sizeof where), sizeof where);
  }
  close(fds[0]);
  if (at) *at = where;
  return w;
}

static void kill_writer(pid_t w) {
  CHECK_INT_EQ(kill(w, SIGKILL), 0);
  int st;
  CHECK_INT_EQ(waitpid(w, &st, 0), w);
  if (!WIFSIGNALED(st)) fprintf(stderr, "#   a writer exited %d\n", WEXITSTATUS(st));
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

MTEST_TIMEOUT(writers_killed_mid_write, 300) {
  const char *dir = tmpcache();
  long kills = count_of(opt_kills, 1000);
  uint64_t seed = mtest_seed();
  int err = 0;
  kill_board *b = mproc__plat_shm_map_anon(sizeof *b, &err);
  CHECK(b != NULL);
  memset(b, 0, sizeof *b);
  mproc_cache *c, *wc[4]; /* the writers': compressed or not, durable or not */
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  for (int i = 0; i < 4; i++) {
    uint32_t k = 0;
    CHECK_OK(mproc_cache_open(&wc[i], dir,
                              &(mproc_cache_opts){.compress_level = i % 2 ? -1 : 3, .durable = i / 2}));
    CHECK(mproc_cache_lookup(wc[i], pattern, &k, sizeof k, NULL, NULL) >= 0);
  }
  pid_t readers[NREADERS];
  for (int i = 0; i < NREADERS; i++) {
    readers[i] = fork();
    CHECK(readers[i] >= 0);
    if (readers[i] == 0) {
      die_with_test();
      reader(dir, b, seed * 31 + (uint64_t)i);
    }
  }
  long where[NWHERE] = {0};
  uint64_t s = seed | 1;
  double t0 = mproc__plat_now();
  for (long i = 0; i < kills; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    int at = AT_FREE;
    pid_t w = spawn_writer(wc, s, &at);
    kill_writer(w);
    where[at]++;
    CHECK_INT_EQ(__atomic_load_n(&b->bad, __ATOMIC_ACQUIRE), 0);
  }
  double secs = mproc__plat_now() - t0;
  __atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < NREADERS; i++) {
    int st;
    CHECK_INT_EQ(waitpid(readers[i], &st, 0), readers[i]);
    CHECK(WIFEXITED(st));
    CHECK_INT_EQ(WEXITSTATUS(st), 0);
  }
  if (b->bad) fprintf(stderr, "#   %" PRIu64 " bad reads; first: %s\n", b->bad, b->why);
  CHECK_INT_EQ(b->bad, 0);
  CHECK_INT_CMP(b->reads, >, 0);
  /* afterwards: every entry valid, every key right */
  size_t corrupt, n = count_entries(c, &corrupt);
  CHECK_INT_EQ(corrupt, 0);
  int tmp = count_tmp(dir);
  unsigned char *scratch = malloc(pattern_len(NKEYS - 1) + 1);
  CHECK(scratch != NULL);
  for (uint32_t k = 0; k < NKEYS; k++) {
    mproc_cache_result *r;
    CHECK_OK(mproc_cache_call(c, pattern, &k, sizeof k, &r));
    CHECK(pattern_ok(r, k, pattern_len(k), scratch));
    mproc_cache_result_release(r);
  }
  free(scratch);
  CHECK_INT_EQ(stat_of(c, 0), 0);
  /* reduce removes the temporary files of killed writers, not those of a live one (blocked in its write
   * here), however old they look */
  size_t all = count_entries(c, &corrupt);
  CHECK_INT_EQ(all, NKEYS);
  pid_t live = spawn_writer(wc, 1 << 20 | 1 << 4, NULL); /* cut at 1 byte, the old entry left in place */
  age_tmp(dir);
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT));
  CHECK_INT_EQ(count_tmp(dir), 1);
  CHECK_INT_EQ(count_entries(c, &corrupt), all);
  kill_writer(live);
  CHECK_OK(mproc_cache_reduce(c, -1, -1));
  CHECK_INT_EQ(count_tmp(dir), 0);
  CHECK_INT_EQ(count_entries(c, &corrupt), all);
  printf(
      "# %ld writers SIGKILLed in %.1f s: %ld in the header, %ld in the data, %ld before the rename, %ld at "
      "random times; readers: %" PRIu64 " results checked byte for byte (%" PRIu64 " MB), %" PRIu64
      " hits, %" PRIu64 " loads through a handle, %" PRIu64
      " waits for a killed writer's lock, 0 wrong or "
      "partial; %zu entries after, 0 corrupt; %d temporary files of killed writers, all removed by reduce\n",
      kills, secs, where[AT_HEADER], where[AT_DATA], where[AT_RENAME], where[AT_FREE], b->reads,
      b->bytes >> 20, b->hits, b->found, b->waits, n, tmp);
  mproc_cache_close(c);
  for (int i = 0; i < 4; i++) mproc_cache_close(wc[i]);
  CHECK_OK(mproc__plat_shm_unmap(b, sizeof *b));
  cleanup();
}

/* ==== bit flips, truncation, appended bytes, emptied files ==== */

enum { FLIP_HEADER, FLIP_DATA, FLIP_MANY, TRUNCATE, APPEND, EMPTY, NKINDS };
static const char *kind_name[NKINDS] = {"header bit", "data bit", "bits", "truncated", "appended", "emptied"};

/* Mutates the entry file of (pattern, key) one way and checks the cache sees it: a lookup says absent, an
 * entry handle says MPROC_ECORRUPT, the listing marks it (header and size faults: the listing reads only
 * headers), and a call recomputes the right bytes, after which it is a hit again. */
static void mutate_once(mproc_cache *c, const uint32_t key[2], mproc_cache_entry *e, const char *path,
                        unsigned char *file, size_t cap, int kind, long bit, uint64_t *s,
                        unsigned char *scratch) {
  size_t len = get_file(path, file, cap), hl = sizeof(mproc__entry_header);
  CHECK(len < cap);
  size_t n = key[1];
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  switch (kind) {
    case FLIP_HEADER:
      bit = bit >= 0 ? bit : (long)(*s % (hl * 8));
      file[bit / 8] ^= (unsigned char)(1u << (bit % 8));
      break;
    case FLIP_DATA:
      if (len == hl) { /* an empty result has no data: flip the header */
        file[*s % hl] ^= 1;
        break;
      }
      bit = (long)(hl * 8 + *s % ((len - hl) * 8));
      file[bit / 8] ^= (unsigned char)(1u << (bit % 8));
      break;
    case FLIP_MANY:
      for (size_t i = 0; i < 16; i++) { /* in 16 different bytes, so that no flip undoes another */
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        file[i * (len / 16) + *s % (len / 16)] ^= (unsigned char)(1u << (*s >> 40) % 8);
      }
      break;
    case TRUNCATE:
      len = (size_t)(*s % len);
      break;
    case APPEND: {
      size_t extra = 1 + (size_t)(*s % 4096);
      if (len + extra > cap) extra = cap - len;
      for (size_t i = 0; i < extra; i++) file[len + i] = (unsigned char)(*s >> (i % 8 * 8));
      len += extra;
      break;
    }
    default:
      len = 0;
  }
  set_file(path, file, len);
  uint64_t before = stat_of(c, 0);
  CHECK_INT_EQ(mproc_cache_lookup(c, pattern, key, 8, NULL, NULL), 0);
  mproc_cache_result *r = NULL;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ECORRUPT);
  if (kind != FLIP_DATA && kind != FLIP_MANY) {
    mproc_cache_entry_info info;
    size_t count = 0;
    CHECK_OK(mproc_cache_list(c, pattern, &info, 1, &count));
    CHECK_INT_EQ(count, 1);
    CHECK_INT_EQ(info.corrupt, 1);
  }
  int calls = g_calls;
  CHECK_OK(mproc_cache_call(c, pattern, key, 8, &r));
  if (mproc_cache_result_hit(r)) fprintf(stderr, "#   %s not detected\n", kind_name[kind]);
  CHECK_INT_EQ(mproc_cache_result_hit(r), 0);
  CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
  CHECK(pattern_ok(r, key[0], n, scratch));
  mproc_cache_result_release(r);
  CHECK_INT_EQ(g_calls, calls + 1);
  CHECK_INT_EQ(stat_of(c, 0), before + 1);
  CHECK_OK(mproc_cache_call(c, pattern, key, 8, &r));
  CHECK_INT_EQ(mproc_cache_result_hit(r), 1);
  CHECK(pattern_ok(r, key[0], n, scratch));
  mproc_cache_result_release(r);
}

MTEST_TIMEOUT(corruption_detected_and_recomputed, 300) {
  uint64_t s = mtest_seed() | 1, detected = 0, mutations = 0;
  long per = count_of(opt_mutations, 30);
  if (per < NKINDS) per = NKINDS;
  /* results of 0, 4, 10,000 and 3 MiB bytes (the last in its own mapping), compressible (even key) or not,
   * stored compressed (level 3) or raw */
  static const uint32_t sizes[] = {0, 4, 10000, 3u << 20};
  size_t cap = (3u << 20) + 8192;
  unsigned char *file = malloc(cap), *scratch = malloc(cap);
  CHECK(file && scratch);
  for (int level = -1; level <= 3; level += 4) {
    for (int si = 0; si < 4; si++) {
      for (uint32_t odd = 0; odd < 2; odd++) {
        mproc_cache *c;
        const char *dir = tmpcache();
        CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = level}));
        uint32_t key[2] = {2 * (uint32_t)si + odd, sizes[si]};
        mproc_cache_result *r;
        CHECK_OK(mproc_cache_call(c, pattern, key, 8, &r));
        mproc_cache_result_release(r);
        char path[256];
        path_of(c, dir, pattern, key, 8, NULL, path, sizeof path);
        mproc_cache_entry *e;
        CHECK_INT_EQ(mproc_cache_lookup(c, pattern, key, 8, NULL, &e), 1);
        long m = si == 3 ? NKINDS : per; /* 3 MiB: each kind once */
        for (long i = 0; i < m; i++)
          mutate_once(c, key, e, path, file, cap, (int)(i % NKINDS), -1, &s, scratch);
        mutations += (uint64_t)m;
        if (si == 1 && !odd) /* every bit of the header, once each */
          for (long bit = 0; bit < (long)sizeof(mproc__entry_header) * 8; bit++, mutations++)
            mutate_once(c, key, e, path, file, cap, FLIP_HEADER, bit, &s, scratch);
        detected += stat_of(c, 0);
        mproc_cache_entry_release(e);
        mproc_cache_close(c);
        cleanup();
      }
    }
  }
  free(file);
  free(scratch);
  CHECK_INT_EQ(detected, mutations);
  printf("# %" PRIu64
         " corruptions (bit flips in headers and data, truncations, appended bytes, emptied files) "
         "over 16 kinds of entries: %" PRIu64 " detected and recomputed, 0 returned\n",
         mutations, detected);
}

/* ==== a full disk: a small tmpfs, a file-size limit ==== */

/* After a failed store: the result was right, nothing corrupt is listed and no temporary file is left. */
static void nothing_left(mproc_cache *c, const char *dir) {
  size_t corrupt;
  count_entries(c, &corrupt);
  CHECK_INT_EQ(corrupt, 0);
  CHECK_INT_EQ(count_tmp(dir), 0);
}

/* A big result on a full tmpfs: stored fails, returned anyway. */
static void big_store_fails(mproc_cache *c, const char *dir, uint32_t k, uint32_t n, int want_err) {
  static unsigned char scratch[4 << 20];
  uint32_t key[2] = {k, n};
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call(c, pattern, key, 8, &r));
  CHECK_INT_EQ(mproc_cache_result_hit(r), 0);
  CHECK_INT_EQ(mproc_cache_result_store_error(r), want_err);
  CHECK(pattern_ok(r, k, n, scratch));
  mproc_cache_result_release(r);
  CHECK_INT_EQ(mproc_cache_lookup(c, pattern, key, 8, NULL, NULL), 0);
  nothing_left(c, dir);
}

static void tmpfs_full(void *arg) {
  (void)arg;
  if (private_mounts("the tmpfs part of disk_full") != 0) return;
  char mnt[160];
  snprintf(mnt, sizeof mnt, "%s/mnt", g_base);
  CHECK_INT_EQ(mkdir(mnt, 0700), 0);
  /* 256 KiB of data and 16 inodes */
  if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k,nr_inodes=16,mode=0700") != 0) {
    printf("# skipped: the tmpfs part of disk_full: mount: %s\n", strerror(errno));
    return;
  }
  char dir[200];
  snprintf(dir, sizeof dir, "%s/c", mnt);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = -1, .durable = 1}));
  for (int x = 0; x < 3; x++) expect_twice(c, x, 0, 0);
  /* a result larger than the file system: ENOSPC in the middle of writing it */
  big_store_fails(c, dir, 1, 1 << 20, MPROC_ENOSPC);
  /* fill what is left with a file, then even a small entry does not fit */
  char filler[220];
  snprintf(filler, sizeof filler, "%s/filler", mnt);
  int fd = open(filler, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  static char block[4096];
  while (write(fd, block, sizeof block) > 0) {
  }
  CHECK_INT_EQ(errno, ENOSPC);
  close(fd);
  big_store_fails(c, dir, 3, 5000, MPROC_ENOSPC);
  expect_twice(c, 1, 1, 0); /* what was stored before is still there, and right */
  /* room again: stores work */
  CHECK_INT_EQ(unlink(filler), 0);
  uint32_t key[2] = {3, 5000};
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call(c, pattern, key, 8, &r));
  CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
  mproc_cache_result_release(r);
  CHECK_INT_EQ(mproc_cache_lookup(c, pattern, key, 8, NULL, NULL), 1);
  /* out of inodes: the temporary file cannot be made, nor a new function's directory */
  int made = 0;
  for (;; made++) {
    char p[240];
    snprintf(p, sizeof p, "%s/i%d", mnt, made);
    if ((fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)) < 0) break;
    close(fd);
  }
  CHECK_INT_EQ(errno, ENOSPC);
  expect_twice(c, 10, 0, MPROC_ENOSPC);
  int y, hit, serr;
  CHECK_OK(call_int(c, thrice, 4, &y, &hit, &serr)); /* a function with no directory yet */
  CHECK_INT_EQ(y, 12);
  CHECK_INT_EQ(serr, MPROC_ENOSPC);
  nothing_left(c, dir);
  expect_twice(c, 2, 1, 0);
  mproc_cache_stats st;
  CHECK_OK(mproc_cache_get_stats(c, &st));
  CHECK_INT_EQ(st.store_failures, 4);
  CHECK_INT_EQ(st.corrupt_recomputed, 0);
  mproc_cache_close(c);
  printf(
      "# tmpfs of 256 KiB and 16 inodes: ENOSPC on writing (a result larger than the disk, a full disk) "
      "and on creating (no inode left): 4 stores failed, every result returned, 0 corrupt, 0 temporary "
      "files left\n");
  CHECK_INT_EQ(umount(mnt), 0);
}

static void file_size_limit(void *arg) {
  const char *dir = arg;
  signal(SIGXFSZ, SIG_DFL); /* the default action ends the process: the cache must not let it happen */
  struct rlimit rl;
  CHECK_INT_EQ(getrlimit(RLIMIT_FSIZE, &rl), 0);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = -1}));
  /* the limit below the header (nothing of it written), then inside the data */
  static const rlim_t limits[] = {50, 8192};
  for (int i = 0; i < 2; i++) {
    rl.rlim_cur = limits[i];
    CHECK_INT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
    big_store_fails(c, dir, 5 + (uint32_t)i, 100000, MPROC_EFBIG);
    sigset_t pend;
    CHECK_INT_EQ(sigpending(&pend), 0);
    CHECK(!sigismember(&pend, SIGXFSZ));
  }
  expect_twice(c, 3, 0, 0); /* a small entry still fits */
  expect_twice(c, 3, 1, 0);
  mproc_cache_close(c);
}

/* A full disk (tmpfs; root only) and a file-size limit (anyone): the store fails with a clear error
 * (-ENOSPC, -EFBIG), the computed result is returned, nothing is corrupt, no temporary file is left. */
MTEST(disk_full) {
  const char *dir = tmpcache();
  if (geteuid() == 0)
    in_child(tmpfs_full, NULL, 0);
  else
    printf("# skipped: the tmpfs part of disk_full: mounting needs root\n");
  in_child(file_size_limit, (void *)dir, 0);
  cleanup();
}

/* ==== permission errors ==== */

/* As another user (uid 65534, since root ignores permissions): a read-only cache directory, a read-only
 * function directory, an unreadable entry, a read-only lock file. */
static void as_nobody(void *arg) {
  const char *dir = arg;
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 1, 0, 0);
  char path[256], fndir[256];
  twice_path(c, 1, path, sizeof path);
  parent_of(path, fndir, sizeof fndir);
  /* the function's directory read-only: hits still work, new entries cannot be stored */
  CHECK_INT_EQ(chmod(fndir, 0500), 0);
  expect_twice(c, 1, 1, 0);
  expect_twice(c, 2, 0, MPROC_EACCES);
  nothing_left(c, dir);
  CHECK_INT_EQ(chmod(fndir, 0700), 0);
  /* an entry that cannot be read: recomputed and stored again */
  CHECK_INT_EQ(chmod(path, 0), 0);
  expect_twice(c, 1, 0, 0);
  expect_twice(c, 1, 1, 0);
  /* the lock file read-only: no waiting for others, the rest as usual */
  char lock[300];
  snprintf(lock, sizeof lock, "%s/lock", fndir);
  CHECK_INT_EQ(chmod(lock, 0400), 0);
  expect_twice(c, 3, 0, 0);
  expect_twice(c, 3, 1, 0);
  /* the cache directory read-only: a new function cannot have its directory */
  CHECK_INT_EQ(chmod(dir, 0500), 0);
  int y, hit, serr;
  CHECK_OK(call_int(c, thrice, 2, &y, &hit, &serr));
  CHECK_INT_EQ(y, 6);
  CHECK_INT_EQ(serr, MPROC_EACCES);
  expect_twice(c, 3, 1, 0);
  mproc_cache_stats st;
  CHECK_OK(mproc_cache_get_stats(c, &st));
  CHECK_INT_EQ(st.store_failures, 2);
  CHECK_INT_EQ(st.corrupt_recomputed, 0);
  mproc_cache_close(c);
  CHECK_INT_EQ(chmod(dir, 0700), 0);
}

/* As root, the cache on a read-only mount: hits work, stores fail with -EROFS. */
static void read_only_mount(void *arg) {
  const char *dir = arg;
  if (private_mounts("the read-only mount part of permission_errors") != 0) return;
  CHECK_INT_EQ(mount(dir, dir, NULL, MS_BIND, NULL), 0);
  CHECK_INT_EQ(mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 5, 1, 0);
  expect_twice(c, 6, 0, MPROC_EROFS);
  int y, hit, serr;
  CHECK_OK(call_int(c, thrice, 6, &y, &hit, &serr));
  CHECK_INT_EQ(y, 18);
  CHECK_INT_EQ(serr, MPROC_EROFS);
  nothing_left(c, dir);
  mproc_cache_close(c);
  CHECK_INT_EQ(umount(dir), 0);
}

/* Permission errors: a clear store error (-EACCES, -EROFS), the computed result still returned, nothing
 * corrupt, no temporary file left.  Root only (root ignores file permissions; it becomes uid 65534 in a
 * child, and mounts read-only in another). */
MTEST(permission_errors) {
  if (geteuid() != 0) {
    printf("# skipped: permission_errors: needs root (to become another user, to mount)\n");
    return;
  }
  const char *dir = tmpcache();
  CHECK_INT_EQ(mkdir(dir, 0700), 0);
  CHECK_INT_EQ(chown(dir, 65534, 65534), 0);
  in_child(as_nobody, (void *)dir, 65534);
  rm_rf(dir);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 5, 0, 0);
  mproc_cache_close(c);
  in_child(read_only_mount, (void *)dir, 0);
  cleanup();
}

/* ==== symbolic links, FIFOs, devices and sockets planted where the cache's files should be ==== */

enum { P_SYMLINK, P_DANGLING, P_FIFO, P_DEVICE, P_SOCKET, P_DIR, P_FILE, NPLANTS };
static const char *plant_name[NPLANTS] = {"symlink", "dangling symlink", "FIFO",        "device",
                                          "socket",  "directory",        "regular file"};

/* Plants `what` at path; for a symbolic link, pointing to target.  0, or -1 when it cannot be made here (a
 * device without root). */
static int plant(int what, const char *path, const char *target) {
  switch (what) {
    case P_SYMLINK:
    case P_DANGLING:
      CHECK_INT_EQ(symlink(target, path), 0);
      return 0;
    case P_FIFO:
      CHECK_INT_EQ(mkfifo(path, 0600), 0);
      return 0;
    case P_DEVICE: /* /dev/zero: a read never ends */
      return mknod(path, S_IFCHR | 0600, makedev(1, 5)) == 0 ? 0 : -1;
    case P_SOCKET: {
      int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_un a = {.sun_family = AF_UNIX};
      CHECK(s >= 0 && strlen(path) < sizeof a.sun_path);
      strcpy(a.sun_path, path);
      CHECK_INT_EQ(bind(s, (struct sockaddr *)&a, sizeof a), 0);
      close(s);
      return 0;
    }
    case P_DIR:
      CHECK_INT_EQ(mkdir(path, 0700), 0);
      return 0;
    default:
      set_file(path, "planted", 7);
      return 0;
  }
}

/* The file at path holds exactly want (len bytes). */
static void same_file(const char *path, const void *want, size_t len) {
  static char buf[8192];
  CHECK_INT_EQ(get_file(path, buf, sizeof buf), len);
  CHECK(memcmp(buf, want, len) == 0);
}

/* Under an entry's name: never followed, read or waited on; a call recomputes and replaces it (a
 * directory cannot be replaced: the store says -EISDIR). */
static void planted_entry(int what) {
  mproc_cache *c;
  const char *dir = tmpcache();
  CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = -1}));
  expect_twice(c, 5, 0, 0);
  char path[256], target[160];
  static char valid[4096];
  twice_path(c, 5, path, sizeof path);
  size_t vlen = get_file(path, valid, sizeof valid);
  snprintf(target, sizeof target, "%s/target", g_base);
  if (what == P_SYMLINK) set_file(target, valid, vlen); /* a valid entry, reachable through the link only */
  CHECK_INT_EQ(unlink(path), 0);
  if (plant(what, path, target) != 0) {
    printf("# skipped: a %s as an entry: %s\n", plant_name[what], strerror(errno));
    mproc_cache_close(c);
    cleanup();
    return;
  }
  int x = 5;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  expect_twice(c, 5, 0, what == P_DIR ? MPROC_EISDIR : 0);
  struct stat st;
  CHECK_INT_EQ(lstat(path, &st), 0);
  if (what != P_DIR) {
    CHECK(S_ISREG(st.st_mode)); /* replaced by a real entry, not written through */
    expect_twice(c, 5, 1, 0);
  }
  if (what == P_SYMLINK) same_file(target, valid, vlen);
  if (what == P_DANGLING) CHECK(lstat(target, &st) != 0);
  size_t corrupt;
  count_entries(c, &corrupt);
  CHECK_INT_EQ(corrupt, what == P_DIR); /* the directory stays, listed as not an entry */
  CHECK_INT_EQ(count_tmp(dir), 0);
  mproc_cache_close(c);
  cleanup();
}

/* In place of a function's directory: never followed; calls compute and say why nothing is stored;
 * lookups find nothing; clearing and reducing remove nothing through a link. */
static void planted_fndir(int what) {
  if (what == P_DIR) return; /* a directory is what belongs there */
  mproc_cache *c;
  const char *dir = tmpcache();
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 5, 0, 0);
  char path[256], fndir[256], moved[160], inside[300];
  twice_path(c, 5, path, sizeof path);
  parent_of(path, fndir, sizeof fndir);
  snprintf(moved, sizeof moved, "%s/moved", g_base); /* the real directory, with its valid entry */
  CHECK_INT_EQ(rename(fndir, moved), 0);
  snprintf(inside, sizeof inside, "%s%s", moved, strrchr(path, '/'));
  if (plant(what, fndir, what == P_SYMLINK ? moved : inside) != 0) {
    printf("# skipped: a %s as a function directory: %s\n", plant_name[what], strerror(errno));
    mproc_cache_close(c);
    cleanup();
    return;
  }
  for (int x = 5; x <= 6; x++) {
    CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
    int y, hit, serr;
    CHECK_OK(call_int(c, twice, x, &y, &hit, &serr));
    CHECK_INT_EQ(y, 2 * x);
    CHECK_INT_EQ(hit, 0);
    CHECK_INT_EQ(serr, MPROC_ENOTDIR);
  }
  mproc_cache_clear_function(c, twice);
  mproc_cache_clear(c);
  mproc_cache_reduce_size(c, 0, 0, 0);
  struct stat st;
  CHECK_INT_EQ(lstat(inside, &st), 0); /* the valid entry behind the link is untouched */
  CHECK(S_ISREG(st.st_mode));
  CHECK_INT_EQ(count_tmp(moved), 0);
  CHECK_INT_EQ(count_tmp(dir), 0);
  mproc_cache_close(c);
  cleanup();
}

/* In place of the lock file: no waiting for others (the lock is not used), entries stored as usual, the
 * thing planted left as it was (a link's target neither written nor created). */
static void planted_lock(int what) {
  mproc_cache *c;
  const char *dir = tmpcache();
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 5, 0, 0);
  char path[256], lock[300], target[160];
  twice_path(c, 5, path, sizeof path);
  parent_of(path, lock, sizeof lock);
  strcat(lock, "/lock");
  snprintf(target, sizeof target, "%s/target", g_base);
  if (what == P_SYMLINK) set_file(target, "keep", 4);
  CHECK_INT_EQ(unlink(lock), 0);
  if (plant(what, lock, target) != 0) {
    printf("# skipped: a %s as the lock: %s\n", plant_name[what], strerror(errno));
    mproc_cache_close(c);
    cleanup();
    return;
  }
  expect_twice(c, 7, 0, 0);
  expect_twice(c, 7, 1, 0);
  expect_twice(c, 5, 1, 0);
  struct stat st;
  if (what == P_SYMLINK) same_file(target, "keep", 4);
  if (what == P_DANGLING) CHECK(lstat(target, &st) != 0);
  CHECK_INT_EQ(lstat(lock, &st), 0);
  CHECK(what == P_SYMLINK || what == P_DANGLING ? S_ISLNK(st.st_mode)
                                                : !S_ISREG(st.st_mode) || what == P_FILE);
  mproc_cache_close(c);
  cleanup();
}

/* In place of the cache directory: refused at open (-ELOOP for a link, else -ENOTDIR); under a live handle
 * (the directory removed, then the thing planted), calls compute and say why nothing is stored, and nothing
 * is created through a link. */
static void planted_dir(int what) {
  if (what == P_DIR || what == P_DANGLING) return; /* a directory belongs there; a link is a link */
  const char *dir = tmpcache();
  char target[160];
  snprintf(target, sizeof target, "%s/target", g_base);
  CHECK_INT_EQ(mkdir(target, 0700), 0);
  if (plant(what, dir, target) != 0) {
    printf("# skipped: a %s as the cache directory: %s\n", plant_name[what], strerror(errno));
    cleanup();
    return;
  }
  int want = what == P_SYMLINK ? MPROC_ELOOP : MPROC_ENOTDIR;
  mproc_cache *c = NULL;
  CHECK_ERR(mproc_cache_open(&c, dir, NULL), want);
  CHECK(c == NULL);
  CHECK_INT_EQ(remove(dir), 0);
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 1, 0, 0);
  rm_rf(dir);
  CHECK_INT_EQ(plant(what, dir, target), 0);
  expect_twice(c, 2, 0, want);
  expect_twice(c, 1, 0, want);
  CHECK_INT_EQ(rmdir(target), 0); /* still empty: nothing was made through the link */
  CHECK_INT_EQ(remove(dir), 0);
  expect_twice(c, 2, 0, 0); /* gone: made again */
  expect_twice(c, 2, 1, 0);
  mproc_cache_close(c);
  cleanup();
}

MTEST_TIMEOUT(planted_files, 60) {
  for (int what = 0; what < NPLANTS; what++) {
    planted_entry(what);
    planted_fndir(what);
    planted_lock(what);
    planted_dir(what);
  }
}

/* A terminal planted as an entry or as the lock (here a pseudo-terminal bind-mounted there, as only root
 * can) must not become the controlling terminal of a caller that leads a session without one: opening a
 * terminal without O_NOCTTY does that. */
static void tty_child(void *arg) {
  const char *dir = arg;
  CHECK(setsid() > 0);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  int y, hit, serr;
  CHECK_OK(call_int(c, twice, 5, &y, &hit, &serr)); /* the entry is the terminal */
  CHECK_INT_EQ(y, 10);
  CHECK_INT_EQ(hit, 0);
  int fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) fprintf(stderr, "#   the planted terminal became the controlling terminal\n");
  CHECK(fd < 0);
  CHECK_OK(call_int(c, twice, 6, &y, &hit, &serr)); /* the lock is one too */
  CHECK_INT_EQ(y, 12);
  fd = open("/dev/tty", O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) fprintf(stderr, "#   the planted terminal became the controlling terminal\n");
  CHECK(fd < 0);
  mproc_cache_close(c);
}

static void tty_planted(void *arg) {
  const char *dir = arg;
  if (private_mounts("planted_terminal") != 0) return;
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
    printf("# skipped: planted_terminal: no pseudo-terminal: %s\n", strerror(errno));
    return;
  }
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 5, 0, 0);
  char path[256], lock[300];
  twice_path(c, 5, path, sizeof path);
  parent_of(path, lock, sizeof lock);
  strcat(lock, "/lock");
  mproc_cache_close(c);
  CHECK_INT_EQ(mount(ptsname(m), path, NULL, MS_BIND, NULL), 0);
  CHECK_INT_EQ(mount(ptsname(m), lock, NULL, MS_BIND, NULL), 0);
  in_child(tty_child, arg, 0);
  CHECK_INT_EQ(umount(path), 0);
  CHECK_INT_EQ(umount(lock), 0);
  close(m);
}

MTEST(planted_terminal) {
  if (geteuid() != 0) {
    printf("# skipped: planted_terminal: needs root (to mount a terminal where an entry is)\n");
    return;
  }
  const char *dir = tmpcache();
  in_child(tty_planted, (void *)dir, 0);
  cleanup();
}

/* ==== entries copied under another key ==== */

/* An entry's file copied (or hard-linked) under the name of another key, into another function's
 * directory, or across versions, seeds and explicit keys, is not that entry: recomputed, never returned.
 * Copied into another cache directory under its own name, it is the same entry there: a hit. */
MTEST(entries_copied_under_another_key) {
  mproc_cache_opts o = {.compress_level = -1, .ignore_code_hash = 1}; /* twice and thrice: same names */
  const char *dir = tmpcache();
  mproc_cache *c, *v2;
  CHECK_OK(mproc_cache_open(&c, dir, &o));
  mproc_cache_opts ov = o;
  ov.version = "2";
  CHECK_OK(mproc_cache_open(&v2, dir, &ov));
  int x = 5, other = 6;
  const mproc_cache_call_opts explicit5 = {.key = &x, .key_len = sizeof x};
  const mproc_cache_span pad = {0, 1};
  const mproc_cache_call_opts ignore = {.ignore = &pad, .n_ignore = 1};
  /* sources and destinations: (handle, function, argument, call options) */
  struct site {
    mproc_cache *c;
    mproc_task_fn fn;
    int *arg;
    const mproc_cache_call_opts *o;
    int mult;
  } sites[] = {{c, twice, &x, NULL, 2},  {c, twice, &other, NULL, 2},   {c, thrice, &x, NULL, 3},
               {v2, twice, &x, NULL, 2}, {c, twice, &x, &explicit5, 2}, {c, twice, &x, &ignore, 2}};
  enum { NSITES = sizeof sites / sizeof sites[0] };
  char paths[NSITES][256];
  static char saved[NSITES][4096];
  size_t lens[NSITES];
  for (int i = 0; i < NSITES; i++) {
    mproc_cache_result *r;
    CHECK_OK(mproc_cache_call_with(sites[i].c, sites[i].fn, sites[i].arg, sizeof(int), sites[i].o, &r));
    mproc_cache_result_release(r);
    path_of(sites[i].c, dir, sites[i].fn, sites[i].arg, sizeof(int), sites[i].o, paths[i], sizeof paths[i]);
    lens[i] = get_file(paths[i], saved[i], sizeof saved[i]);
    for (int j = 0; j < i; j++) CHECK(strcmp(paths[i], paths[j]) != 0);
  }
  int copies = 0;
  for (int from = 0; from < NSITES; from++) {
    for (int to = 0; to < NSITES; to++) {
      if (from == to) continue;
      for (int link_it = 0; link_it < 2; link_it++, copies++) {
        struct site *d = &sites[to];
        if (link_it) { /* a hard link: the same file under two names */
          CHECK_INT_EQ(unlink(paths[to]), 0);
          CHECK_INT_EQ(link(paths[from], paths[to]), 0);
        } else {
          set_file(paths[to], saved[from], lens[from]);
        }
        CHECK_INT_EQ(mproc_cache_lookup(d->c, d->fn, d->arg, sizeof(int), d->o, NULL), 0);
        mproc_cache_result *r;
        uint64_t before = stat_of(d->c, 0);
        CHECK_OK(mproc_cache_call_with(d->c, d->fn, d->arg, sizeof(int), d->o, &r));
        CHECK_INT_EQ(mproc_cache_result_hit(r), 0);
        CHECK_INT_EQ(*(const int *)mproc_cache_result_data(r), d->mult * *d->arg);
        mproc_cache_result_release(r);
        CHECK_INT_EQ(stat_of(d->c, 0), before + 1);
        lens[to] = get_file(paths[to], saved[to], sizeof saved[to]);
        same_file(paths[from], saved[from], lens[from]); /* the source, linked or not, is intact */
      }
    }
  }
  /* into another cache directory, under its own name: the same entry, a hit */
  char dir2[160], fn2[400], to[512], rel[200];
  snprintf(dir2, sizeof dir2, "%s/c2", g_base);
  mproc_cache *c2;
  CHECK_OK(mproc_cache_open(&c2, dir2, &o));
  expect_twice(c2, 6, 0, 0);
  parent_of(strstr(paths[0], "/c/") + 2, rel, sizeof rel);
  snprintf(fn2, sizeof fn2, "%s%s", dir2, rel);
  snprintf(to, sizeof to, "%s%s", fn2, strrchr(paths[0], '/'));
  set_file(to, saved[0], lens[0]);
  expect_twice(c2, 5, 1, 0);
  printf(
      "# %d copies and hard links of entries under another key, function, version, seed or explicit key: "
      "%d recomputed, 0 returned\n",
      copies, copies);
  mproc_cache_close(c2);
  mproc_cache_close(v2);
  mproc_cache_close(c);
  cleanup();
}

/* ==== a directory writable by others ==== */

typedef struct intruder {
  const char *dir;    /* the cache directory, 0777 or 1777 */
  const char *fndir;  /* the name of twice's function directory in it */
  const char *entry;  /* the name of the entry of twice(5) */
  const char *forged; /* a forged entry of twice(5) to plant (as the intruder's) */
  size_t forged_len;
  int how;
} intruder;

/* As another user: put a function directory of its own, with a forged valid entry, where twice's goes
 * (how 0: before the owner's exists; 1: after renaming the owner's away; 2: the same, then a link to its
 * own in its place). */
static void intrude(void *arg) {
  intruder *in = arg;
  char fn[300], mine[300], path[400];
  snprintf(fn, sizeof fn, "%s/%s", in->dir, in->fndir);
  snprintf(mine, sizeof mine, "%s/%s.mine", in->dir, in->fndir);
  if (in->how >= 1) { /* the owner's directory moved away first */
    char away[400];
    snprintf(away, sizeof away, "%s.away", fn);
    int r = rename(fn, away);
    if (r != 0) CHECK_INT_EQ(errno, EPERM); /* a sticky directory stops it */
    if (r != 0) return;
  }
  const char *where = in->how == 2 ? mine : fn;
  CHECK_INT_EQ(mkdir(where, 0777), 0);
  snprintf(path, sizeof path, "%s/%s", where, in->entry);
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
  CHECK(fd >= 0);
  CHECK_INT_EQ(write(fd, in->forged, in->forged_len), (ssize_t)in->forged_len);
  close(fd);
  if (in->how == 2) CHECK_INT_EQ(symlink(mine, fn), 0);
}

/* A cache directory others can write to (0777; 1777 as /tmp): another user can stop caching there (their
 * function directory: -EPERM, or a link: -ENOTDIR) or, without the sticky bit, move the owner's entries
 * away, but never have a result of theirs returned.  Root only (becomes uid 65534 in a child). */
MTEST(directory_writable_by_others) {
  if (geteuid() != 0) {
    printf("# skipped: directory_writable_by_others: needs root (to be another user)\n");
    return;
  }
  for (int sticky = 0; sticky < 2; sticky++) {
    for (int how = 0; how < 3; how++) {
      const char *dir = tmpcache();
      CHECK_INT_EQ(mkdir(dir, 0777), 0);
      CHECK_INT_EQ(chmod(dir, sticky ? 01777 : 0777), 0);
      mproc_cache *c;
      CHECK_OK(mproc_cache_open(&c, dir, &(mproc_cache_opts){.compress_level = -1}));
      expect_twice(c, 5, 0, 0);
      char path[256], fndir[256];
      static char entry[4096];
      twice_path(c, 5, path, sizeof path);
      parent_of(path, fndir, sizeof fndir);
      get_file(path, entry, sizeof entry);
      int lie = 666; /* twice(5) is 10 */
      char forged[160];
      snprintf(forged, sizeof forged, "%s/forged", g_base);
      forge(path, forged, &lie, sizeof lie);
      static char fbuf[4096];
      size_t flen = get_file(forged, fbuf, sizeof fbuf);
      if (how == 0) { /* before the owner's first call: its directory not made yet */
        CHECK_INT_EQ(unlink(path), 0);
        rm_rf(fndir);
      }
      intruder in = {dir, strrchr(fndir, '/') + 1, strrchr(path, '/') + 1, fbuf, flen, how};
      in_child(intrude, &in, 65534);
      int x = 5, y, hit, serr;
      int kept = sticky && how >= 1; /* the sticky bit stopped the rename: the owner's entry is there */
      CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), kept);
      CHECK_OK(call_int(c, twice, 5, &y, &hit, &serr));
      CHECK_INT_EQ(y, 10);
      CHECK_INT_EQ(hit, kept);
      CHECK_INT_EQ(serr, kept ? 0 : how == 2 ? MPROC_ENOTDIR : MPROC_EPERM);
      mproc_cache_close(c);
      cleanup();
    }
  }
  /* an entry of another user in the owner's function directory (only root could put it there) */
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), NULL));
  expect_twice(c, 3, 0, 0);
  char path[256];
  twice_path(c, 3, path, sizeof path);
  CHECK_INT_EQ(chown(path, 65534, 65534), 0);
  int x = 3;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  expect_twice(c, 3, 0, 0);
  expect_twice(c, 3, 1, 0);
  mproc_cache_close(c);
  cleanup();
}

/* ==== a relative path after chdir() ==== */

/* A cache opened by a relative path keeps its directory after the process changes its working directory:
 * a directory of the same name under the new one (with a forged entry of the same key) is never used, and
 * a removed cache directory is made again where it was. */
MTEST(relative_path_after_chdir) {
  tmpcache();
  char cwd[4096], elsewhere[160], there[200];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", g_base);
  CHECK_INT_EQ(mkdir(elsewhere, 0700), 0);
  CHECK_INT_EQ(chdir(g_base), 0);
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, "c", NULL));
  expect_twice(c, 6, 0, 0);
  char path[256], rel[300];
  twice_path(c, 6, path, sizeof path);
  /* the same layout under the new working directory, with a forged entry of the key */
  snprintf(there, sizeof there, "%s/c", elsewhere);
  CHECK_INT_EQ(mkdir(there, 0700), 0);
  snprintf(rel, sizeof rel, "%s/c%s", elsewhere, strstr(path, "/c/") + 2);
  char fn[300];
  parent_of(rel, fn, sizeof fn);
  CHECK_INT_EQ(mkdir(fn, 0700), 0);
  int lie = 666;
  forge(path, rel, &lie, sizeof lie);
  CHECK_INT_EQ(chdir(elsewhere), 0);
  expect_twice(c, 6, 1, 0); /* the original entry */
  CHECK_INT_EQ(unlink(path), 0);
  expect_twice(c, 6, 0, 0); /* not the forged one */
  expect_twice(c, 7, 0, 0);
  CHECK_INT_EQ(access(path, F_OK), 0); /* stored where it was opened */
  rm_rf(g_dir);                        /* removed: made again under the parent it was opened in */
  expect_twice(c, 6, 0, 0);
  CHECK_INT_EQ(access(path, F_OK), 0);
  mproc_cache *c2; /* the same relative name now means the other directory */
  CHECK_OK(mproc_cache_open(&c2, "c", NULL));
  int x = 6;
  CHECK_INT_EQ(mproc_cache_contains(c2, twice, &x, sizeof x), 1); /* the forgery is valid there, as forged */
  mproc_cache_close(c2);
  mproc_cache_close(c);
  CHECK_INT_EQ(chdir(cwd), 0);
  cleanup();
}

/* ==== the directory deleted under a live handle ==== */

static int rm_then_rename(int a, const char *from, int b, const char *to) {
  rm_rf(g_dir); /* between the write of the temporary file and its rename */
  return renameat(a, from, b, to);
}

/* The cache directory deleted (or renamed) under a live handle: the next call makes it again (0700, with
 * the rules of open: another user's is refused); a deleted parent makes every store fail with -ENOENT and
 * every result is still returned; entry handles then say -ENOENT; a writer whose directory is deleted in
 * the middle of its write returns its result. */
MTEST(directory_deleted_under_live_handle) {
  const char *dir = tmpcache();
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, dir, NULL));
  expect_twice(c, 1, 0, 0);
  int x = 1;
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  rm_rf(dir);
  mproc_cache_result *r = NULL;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  expect_twice(c, 2, 0, 0);
  struct stat st;
  CHECK_INT_EQ(lstat(dir, &st), 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK_INT_EQ(st.st_mode & 0777, 0700);
  expect_twice(c, 2, 1, 0);
  /* deleted while an entry is written: its rename fails, the result is returned, and the next call makes
   * the directory again */
  mproc__plat_sys.renameat = rm_then_rename;
  expect_twice(c, 4, 0, MPROC_ENOENT);
  mproc__plat_syscalls_reset();
  expect_twice(c, 4, 0, 0);
  expect_twice(c, 4, 1, 0);
  /* renamed away: the handle follows the directory it holds */
  char moved[160];
  snprintf(moved, sizeof moved, "%s/moved", g_base);
  CHECK_INT_EQ(rename(dir, moved), 0);
  expect_twice(c, 4, 1, 0);
  CHECK_INT_EQ(rename(moved, dir), 0);
  /* made again by another user in between: refused */
  if (geteuid() == 0) {
    rm_rf(dir);
    CHECK_INT_EQ(mkdir(dir, 0700), 0);
    CHECK_INT_EQ(chown(dir, 65534, 65534), 0);
    expect_twice(c, 3, 0, MPROC_EPERM);
    rm_rf(dir);
  }
  /* the parent deleted too: nothing can be stored, every result is returned */
  rm_rf(g_base);
  expect_twice(c, 3, 0, MPROC_ENOENT);
  expect_twice(c, 3, 0, MPROC_ENOENT);
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  CHECK_OK(mproc_cache_entry_clear(e));
  mproc_cache_entry_release(e);
  size_t n = 1;
  CHECK(mproc_cache_list(c, NULL, NULL, 0, &n) <= 0);
  CHECK_INT_EQ(n, 0);
  mproc_cache_close(c);
}
