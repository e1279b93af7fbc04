/* test_cache_calls.c: the result cache's calls taken from joblib's Memory (issue 16): ignored ranges of the
 * argument and explicit keys (joblib's ignore), looking up without computing and entry handles
 * (check_call_in_cache, MemorizedResult, call_and_shelve), listing, reduce_size by bytes, items and age,
 * and validity callbacks (cache_validation_callback, expires_after).  Times are set on the entries (their
 * mtime, their header's creation time), never waited for. */
#include "mtest.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/entry.h"
#include "internal.h"

static char g_base[64], g_dir[128];
static int g_calls, g_last_verbose;

static int rm_cb(const char *p, const struct stat *s, int flag, struct FTW *f) {
  (void)s, (void)flag, (void)f;
  return remove(p);
}
static void rm_rf(const char *d) { nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh cache directory path (not created) under a fresh temporary directory. */
static const char *tmpcache(void) {
  snprintf(g_base, sizeof g_base, "/tmp/mproc_cache_calls.XXXXXX");
  CHECK(mkdtemp(g_base) != NULL);
  snprintf(g_dir, sizeof g_dir, "%s/c", g_base);
  return g_dir;
}
static void cleanup(void) { rm_rf(g_base); }

static mproc_cache *open_cache(const mproc_cache_opts *o) {
  mproc_cache *c;
  CHECK_OK(mproc_cache_open(&c, tmpcache(), o));
  return c;
}

/* A call's argument with a field that must not count for the key. */
typedef struct args {
  int x;
  int verbose;
  int y;
} args;

static int sum(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  CHECK_INT_EQ(len, sizeof(args));
  const args *a = arg;
  g_last_verbose = a->verbose; /* the function sees the whole argument */
  int r = a->x + a->y;
  return mproc_task_return(t, &r, sizeof r);
}

static int twice(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  int x = len == sizeof(int) ? *(const int *)arg : -1;
  int y = 2 * x;
  return mproc_task_return(t, &y, sizeof y);
}

static int thrice(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  int x = len == sizeof(int) ? *(const int *)arg : -1;
  int y = 3 * x;
  return mproc_task_return(t, &y, sizeof y);
}

static int g_flaky_fails;
static int flaky(const void *arg, size_t len, mproc_task *t) {
  g_calls++;
  if (g_flaky_fails) return mproc_task_fail(t, MPROC_ERANGE, "failing now");
  return mproc_task_return(t, arg, len);
}

static int failing(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  g_calls++;
  return mproc_task_fail(t, MPROC_ERANGE, "out of range");
}

/* Calls fn on the int x with opts; returns the int result, and whether it was a hit. */
static int call_int(mproc_cache *c, mproc_task_fn fn, int x, const mproc_cache_call_opts *o, int *hit) {
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call_with(c, fn, &x, sizeof x, o, &r));
  CHECK_INT_EQ(mproc_cache_result_len(r), sizeof(int));
  CHECK_INT_EQ(mproc_cache_result_store_error(r), 0);
  int y;
  memcpy(&y, mproc_cache_result_data(r), sizeof y);
  if (hit) *hit = mproc_cache_result_hit(r);
  mproc_cache_result_release(r);
  return y;
}

static int call_args(mproc_cache *c, args a, const mproc_cache_call_opts *o, int *hit) {
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call_with(c, sum, &a, sizeof a, o, &r));
  int y;
  memcpy(&y, mproc_cache_result_data(r), sizeof y);
  *hit = mproc_cache_result_hit(r);
  mproc_cache_result_release(r);
  return y;
}

/* The entry file's path from its metadata. */
static void info_path(const mproc_cache_entry_info *i, char *out, size_t cap) {
  snprintf(out, cap, "%.127s/%016" PRIx64 "/%.32s.e", g_dir, i->fn_key, i->key);
}

/* The path of the stored entry of (fn, x, opts), through a handle. */
static void entry_path(mproc_cache *c, mproc_task_fn fn, int x, const mproc_cache_call_opts *o, char *out,
                       size_t cap) {
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, fn, &x, sizeof x, o, &e), 1);
  mproc_cache_entry_info i;
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  info_path(&i, out, cap);
  mproc_cache_entry_release(e);
}

static void set_mtime_ns(const char *path, int64_t ns) {
  struct timespec ts[2] = {{ns / 1000000000, ns % 1000000000}, {ns / 1000000000, ns % 1000000000}};
  CHECK_INT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}
static void set_mtime(const char *path, time_t t) { set_mtime_ns(path, (int64_t)t * 1000000000); }

/* Rewrites the entry's header with its creation time and duration (a header written by the cache, its
 * check recomputed), as if it had been stored at created_ns after a computation of duration_ns. */
static void forge_times(const char *path, int64_t created_ns, int64_t duration_ns) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  CHECK(fd >= 0);
  mproc__entry_header h;
  CHECK_INT_EQ(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
  h.created_ns = created_ns;
  h.duration_ns = duration_ns;
  h.header_check = mproc__entry_header_check(&h);
  CHECK_INT_EQ(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
  close(fd);
}

static void flip_byte(const char *path, off_t at) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  CHECK(fd >= 0);
  unsigned char b;
  CHECK_INT_EQ(pread(fd, &b, 1, at), 1);
  b ^= 0x5a;
  CHECK_INT_EQ(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* joblib's test_memory_ignore: a flag that does not change the result does not change the key. */
MTEST(ignore_ranges) {
  mproc_cache *c = open_cache(NULL);
  mproc_cache_span verbose = {offsetof(args, verbose), sizeof(int)};
  mproc_cache_call_opts o = {.ignore = &verbose, .n_ignore = 1};
  int hit;
  CHECK_INT_EQ(call_args(c, (args){1, 0, 2}, &o, &hit), 3);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(call_args(c, (args){1, 1, 2}, &o, &hit), 3);
  CHECK_INT_EQ(hit, 1);
  CHECK_INT_EQ(call_args(c, (args){1, 7, 3}, &o, &hit), 4); /* a field that counts */
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(g_last_verbose, 7); /* the function was given every byte */
  CHECK_INT_EQ(g_calls, 2);
  /* the same bytes ignored, given as overlapping ranges in another order: the same key */
  mproc_cache_span parts[] = {{offsetof(args, verbose) + 2, 2}, {offsetof(args, verbose), 3}, {0, 0}};
  mproc_cache_call_opts o2 = {.ignore = parts, .n_ignore = 3};
  CHECK_INT_EQ(call_args(c, (args){1, 9, 2}, &o2, &hit), 3);
  CHECK_INT_EQ(hit, 1);
  args a = {1, 0, 2};
  CHECK_INT_EQ(mproc_cache_lookup(c, sum, &a, sizeof a, &o2, NULL), 1);
  /* keys made without ignoring, or ignoring other bytes, are others */
  CHECK_INT_EQ(mproc_cache_contains(c, sum, &a, sizeof a), 0);
  mproc_cache_span x = {0, sizeof(int)};
  CHECK_INT_EQ(
      mproc_cache_lookup(c, sum, &a, sizeof a, &(mproc_cache_call_opts){.ignore = &x, .n_ignore = 1}, NULL),
      0);
  CHECK_INT_EQ(call_args(c, (args){1, 0, 2}, NULL, &hit), 3);
  CHECK_INT_EQ(hit, 0);
  /* the whole argument ignored: one entry for every argument */
  mproc_cache_span all = {0, sizeof(args)};
  mproc_cache_call_opts oall = {.ignore = &all, .n_ignore = 1};
  CHECK_INT_EQ(call_args(c, (args){5, 0, 5}, &oall, &hit), 10);
  CHECK_INT_EQ(call_args(c, (args){6, 0, 6}, &oall, &hit), 10);
  CHECK_INT_EQ(hit, 1);

  /* error paths: ranges past the end, NULL ranges, ranges with a key */
  mproc_cache_result *r = NULL;
  mproc_cache_span bad[] = {{sizeof(args) - 2, 4}, {sizeof(args) + 1, 0}, {4, SIZE_MAX}, {SIZE_MAX, 2}};
  for (int i = 0; i < 4; i++) {
    mproc_cache_call_opts ob = {.ignore = &bad[i], .n_ignore = 1};
    CHECK_ERR(mproc_cache_call_with(c, sum, &a, sizeof a, &ob, &r), MPROC_EINVAL);
    CHECK_ERR(mproc_cache_lookup(c, sum, &a, sizeof a, &ob, NULL), MPROC_EINVAL);
  }
  CHECK_ERR(mproc_cache_call_with(c, sum, &a, sizeof a, &(mproc_cache_call_opts){.n_ignore = 1}, &r),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call_with(
                c, sum, &a, sizeof a,
                &(mproc_cache_call_opts){.key = "k", .key_len = 1, .ignore = &x, .n_ignore = 1}, &r),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call_with(NULL, sum, &a, sizeof a, &o, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call_with(c, NULL, &a, sizeof a, &o, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call_with(c, sum, NULL, sizeof a, &o, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_call_with(c, sum, &a, sizeof a, &o, NULL), MPROC_EINVAL);
  CHECK(r == NULL);
  CHECK_INT_EQ(g_calls, 4);
  mproc_cache_close(c);
  cleanup();
}

/* An explicit key: the argument's bytes do not count, the function's identity does. */
MTEST(explicit_key) {
  mproc_cache *c = open_cache(NULL);
  mproc_cache_call_opts k1 = {.key = "k1", .key_len = 2};
  int hit;
  CHECK_INT_EQ(call_int(c, twice, 10, &k1, &hit), 20);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(call_int(c, twice, 11, &k1, &hit), 20); /* the key, not the argument, finds the entry */
  CHECK_INT_EQ(hit, 1);
  CHECK_INT_EQ(call_int(c, thrice, 10, &k1, &hit), 30); /* another function: another entry */
  CHECK_INT_EQ(hit, 0);
  int x = 10;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0); /* keys given never match arguments' */
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, NULL, 0, &k1, NULL), 1);
  /* "k1" given as the argument is not the key "k1" */
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_call(c, twice, "k1", 2, &r));
  CHECK_INT_EQ(mproc_cache_result_hit(r), 0);
  mproc_cache_result_release(r);
  /* an empty key is a key */
  mproc_cache_call_opts empty = {.key = ""};
  CHECK_INT_EQ(call_int(c, twice, 1, &empty, &hit), 2);
  CHECK_INT_EQ(call_int(c, twice, 2, &empty, &hit), 2);
  CHECK_INT_EQ(hit, 1);
  CHECK_ERR(mproc_cache_call_with(c, twice, &x, sizeof x, &(mproc_cache_call_opts){.key_len = 2}, &r),
            MPROC_EINVAL);
  CHECK_ERR(mproc_cache_lookup(c, twice, &x, sizeof x, &(mproc_cache_call_opts){.key_len = 2}, NULL),
            MPROC_EINVAL);
  CHECK_INT_EQ(g_calls, 4);
  mproc_cache_close(c);
  cleanup();
}

/* joblib's test_check_call_in_cache and test_call_and_shelve: look up without computing, a handle that
 * loads the result later and clears the entry; after a clear, load says ENOENT and clear is a no-op. */
MTEST(lookup_and_entry_handle) {
  mproc_cache *c = open_cache(NULL);
  int x = 21, hit;
  mproc_cache_entry *e = (mproc_cache_entry *)1;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 0);
  CHECK(e == NULL);
  CHECK_INT_EQ(g_calls, 0);
  int64_t before = now_ns();
  CHECK_INT_EQ(call_int(c, twice, 21, NULL, &hit), 42);
  int64_t after = now_ns();
  char path[512];
  entry_path(c, twice, 21, NULL, path, sizeof path);
  set_mtime(path, 1000000000);
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, NULL), 1);
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  CHECK(e != NULL);
  CHECK_INT_EQ(g_calls, 1);
  struct stat st;
  CHECK_INT_EQ(stat(path, &st), 0);
  CHECK_INT_EQ(st.st_mtime, 1000000000); /* a lookup is no use: the LRU order stays */

  mproc_cache_entry_info i;
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  CHECK_INT_EQ(strlen(i.key), 32);
  char p2[512];
  info_path(&i, p2, sizeof p2);
  CHECK_STR_EQ(p2, path);
  CHECK_INT_EQ(i.result_len, sizeof(int));
  CHECK_INT_EQ(i.size, (uint64_t)st.st_size);
  CHECK_INT_EQ(i.accessed_ns, (int64_t)1000000000 * 1000000000);
  CHECK(i.created_ns >= before && i.created_ns <= after);
  CHECK(i.duration_ns > 0 && i.duration_ns <= after - before);
  CHECK_INT_EQ(i.corrupt, 0);

  mproc_cache_result *r;
  CHECK_OK(mproc_cache_entry_load(e, &r));
  CHECK_INT_EQ(mproc_cache_result_len(r), sizeof(int));
  CHECK_INT_EQ(*(const int *)mproc_cache_result_data(r), 42);
  CHECK_INT_EQ(mproc_cache_result_hit(r), 1);
  mproc_cache_result_release(r);
  CHECK_INT_EQ(stat(path, &st), 0);
  CHECK(st.st_mtime > 1000000000); /* a load is a use */
  CHECK_INT_EQ(g_calls, 1);

  CHECK_OK(mproc_cache_entry_clear(e));
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, NULL), 0);
  r = (mproc_cache_result *)1;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  CHECK(r == NULL);
  CHECK_ERR(mproc_cache_entry_stat(e, &i), MPROC_ENOENT);
  CHECK_OK(mproc_cache_entry_clear(e)); /* already gone */
  /* the handle names the key: computed again, it loads the new entry */
  CHECK_INT_EQ(call_int(c, twice, 21, NULL, &hit), 42);
  CHECK_INT_EQ(hit, 0);
  CHECK_OK(mproc_cache_entry_load(e, &r));
  CHECK_INT_EQ(*(const int *)mproc_cache_result_data(r), 42);
  mproc_cache_result_release(r);
  /* another handle's clear is seen by this one */
  mproc_cache_entry *e2;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e2), 1);
  CHECK_OK(mproc_cache_entry_clear(e2));
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  mproc_cache_entry_release(e2);

  /* error paths */
  CHECK_ERR(mproc_cache_lookup(NULL, twice, &x, sizeof x, NULL, &e2), MPROC_EINVAL);
  CHECK(e2 == NULL);
  CHECK_ERR(mproc_cache_lookup(c, NULL, &x, sizeof x, NULL, &e2), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_lookup(c, twice, NULL, sizeof x, NULL, &e2), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_load(NULL, &r), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_load(e, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_stat(NULL, &i), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_stat(e, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_entry_clear(NULL), MPROC_EINVAL);
  mproc_cache_entry_release(NULL);
  mproc_cache_entry_release(e);
  mproc_cache_close(c);
  cleanup();
}

static int g_fail_errno;
static int failing_rename(int ad, const char *a, int bd, const char *b) {
  (void)ad, (void)a, (void)bd, (void)b;
  errno = g_fail_errno;
  return -1;
}
static ssize_t failing_read(int fd, void *b, size_t n) {
  (void)fd, (void)b, (void)n;
  errno = g_fail_errno;
  return -1;
}

/* joblib's call_and_shelve: computes when needed and hands out a handle, not the result. */
MTEST(shelve) {
  mproc_cache *c = open_cache(NULL);
  int x = 4;
  mproc_cache_entry *e;
  CHECK_OK(mproc_cache_shelve(c, twice, &x, sizeof x, NULL, &e));
  CHECK_INT_EQ(g_calls, 1);
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_entry_load(e, &r));
  CHECK_INT_EQ(*(const int *)mproc_cache_result_data(r), 8);
  mproc_cache_result_release(r);
  mproc_cache_entry *e2;
  CHECK_OK(mproc_cache_shelve(c, twice, &x, sizeof x, NULL, &e2)); /* a hit: nothing computed */
  CHECK_INT_EQ(g_calls, 1);
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.hits, 1);
  CHECK_INT_EQ(s.misses, 1);
  CHECK_OK(mproc_cache_entry_clear(e2));
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  mproc_cache_entry_release(e2);
  mproc_cache_entry_release(e);

  /* a failing function: its code, no handle, nothing stored */
  e = (mproc_cache_entry *)1;
  CHECK_ERR(mproc_cache_shelve(c, failing, &x, sizeof x, NULL, &e), MPROC_ERANGE);
  CHECK(e == NULL);
  CHECK_INT_EQ(mproc_cache_contains(c, failing, &x, sizeof x), 0);
  /* a store that fails: its error, no handle (there is no entry) */
  g_fail_errno = EACCES;
  mproc__plat_sys.renameat = failing_rename;
  x = 5;
  e = (mproc_cache_entry *)1;
  CHECK_ERR(mproc_cache_shelve(c, twice, &x, sizeof x, NULL, &e), MPROC_EACCES);
  mproc__plat_syscalls_reset();
  CHECK(e == NULL);
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  /* error paths */
  CHECK_ERR(mproc_cache_shelve(NULL, twice, &x, sizeof x, NULL, &e), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_shelve(c, NULL, &x, sizeof x, NULL, &e), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_shelve(c, twice, NULL, 1, NULL, &e), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_shelve(c, twice, &x, sizeof x, NULL, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_shelve(c, twice, &x, sizeof x, &(mproc_cache_call_opts){.key_len = 1}, &e),
            MPROC_EINVAL);
  CHECK(e == NULL);
  mproc_cache_close(c);
  cleanup();
}

/* Handles outlive their cache: their calls then say ECLOSED, and the last release frees it (the leak
 * checks of the sanitizer build see the rest). */
MTEST(entry_after_close) {
  mproc_cache *c = open_cache(NULL);
  int hit;
  call_int(c, twice, 1, NULL, &hit);
  int x = 1;
  mproc_cache_entry *e, *e2;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e2), 1);
  mproc_cache_close(c);
  mproc_cache_result *r;
  mproc_cache_entry_info i;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ECLOSED);
  CHECK_ERR(mproc_cache_entry_stat(e, &i), MPROC_ECLOSED);
  CHECK_ERR(mproc_cache_entry_clear(e), MPROC_ECLOSED);
  mproc_cache_entry_release(e);
  CHECK_ERR(mproc_cache_entry_load(e2, &r), MPROC_ECLOSED);
  mproc_cache_entry_release(e2);
  /* the entry stayed: a new handle finds it */
  CHECK_OK(mproc_cache_open(&c, g_dir, NULL));
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 1);
  mproc_cache_close(c);
  cleanup();
}

/* An entry that disappeared (its function's directory removed) or became corrupt under a handle. */
MTEST(entry_gone_or_corrupt) {
  mproc_cache *c = open_cache(&(mproc_cache_opts){.compress_level = -1});
  int hit, x = 3;
  call_int(c, twice, 3, NULL, &hit);
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  mproc_cache_entry_info i;
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  char path[512], fndir[300];
  info_path(&i, path, sizeof path);
  snprintf(fndir, sizeof fndir, "%s/%016" PRIx64, g_dir, i.fn_key);
  rm_rf(fndir);
  mproc_cache_result *r;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  CHECK_ERR(mproc_cache_entry_stat(e, &i), MPROC_ENOENT);
  CHECK_OK(mproc_cache_entry_clear(e));
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, NULL), 0);

  /* corrupt data: load refuses it and leaves it; stat reads only the header; a call recomputes it */
  CHECK_INT_EQ(call_int(c, twice, 3, NULL, &hit), 6);
  CHECK_INT_EQ(hit, 0);
  flip_byte(path, sizeof(mproc__entry_header));
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ECORRUPT);
  CHECK(r == NULL);
  CHECK_INT_EQ(access(path, F_OK), 0);
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, NULL), 0);
  CHECK_INT_EQ(call_int(c, twice, 3, NULL, &hit), 6);
  CHECK_INT_EQ(hit, 0);
  CHECK_OK(mproc_cache_entry_load(e, &r));
  mproc_cache_result_release(r);
  /* a corrupt header */
  flip_byte(path, offsetof(mproc__entry_header, created_ns));
  CHECK_ERR(mproc_cache_entry_stat(e, &i), MPROC_ECORRUPT);
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ECORRUPT);
  /* something else under the entry's name: a FIFO is never opened for reading as an entry */
  CHECK_INT_EQ(unlink(path), 0);
  CHECK_INT_EQ(mkfifo(path, 0600), 0);
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ECORRUPT);
  CHECK_ERR(mproc_cache_entry_stat(e, &i), MPROC_ECORRUPT);
  CHECK_OK(mproc_cache_entry_clear(e));
  CHECK_INT_EQ(access(path, F_OK), -1);
  /* an I/O error reading it */
  CHECK_INT_EQ(call_int(c, twice, 3, NULL, &hit), 6);
  g_fail_errno = EIO;
  mproc__plat_sys.read = failing_read;
  int rc = mproc_cache_entry_load(e, &r);
  mproc__plat_syscalls_reset();
  CHECK_ERR(rc, MPROC_EIO);
  mproc_cache_entry_release(e);
  mproc_cache_close(c);
  cleanup();
}

/* An entry as mproc 0.1.0 wrote it (format 2, no duration recorded: the field was reserved, 0) is used. */
MTEST(entry_without_duration_is_used) {
  mproc_cache *c = open_cache(NULL);
  int hit;
  call_int(c, twice, 8, NULL, &hit);
  char path[512];
  entry_path(c, twice, 8, NULL, path, sizeof path);
  forge_times(path, now_ns(), 0);
  CHECK_INT_EQ(call_int(c, twice, 8, NULL, &hit), 16);
  CHECK_INT_EQ(hit, 1);
  int x = 8;
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  mproc_cache_entry_info i;
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  CHECK_INT_EQ(i.duration_ns, 0);
  mproc_cache_entry_release(e);
  mproc_cache_close(c);
  cleanup();
}

typedef struct seen {
  int calls, answer;
  mproc_cache_entry_info last;
} seen;

static int record_validity(const mproc_cache_entry_info *i, void *user) {
  seen *s = user;
  s->calls++;
  s->last = *i;
  return s->answer;
}

static int long_runs_only(const mproc_cache_entry_info *i, void *user) {
  (void)user;
  return i->duration_ns > 100000000; /* 0.1 s */
}

/* joblib's TestCacheValidationCallback: a constant answer, what the callback is given, a handle's
 * callback and a call's, and results kept only when their computation was long. */
MTEST(validity_callback) {
  seen s = {.answer = 0};
  mproc_cache *c = open_cache(&(mproc_cache_opts){.validate = record_validity, .validate_user = &s});
  int hit;
  CHECK_INT_EQ(call_int(c, twice, 2, NULL, &hit), 4);
  CHECK_INT_EQ(s.calls, 0); /* not called on a miss */
  CHECK_INT_EQ(call_int(c, twice, 2, NULL, &hit), 4);
  CHECK_INT_EQ(hit, 0); /* invalid: recomputed */
  CHECK_INT_EQ(g_calls, 2);
  CHECK_INT_EQ(s.calls, 1);
  char path[512];
  mproc_cache_entry_info i;
  info_path(&s.last, path, sizeof path);
  struct stat st;
  CHECK_INT_EQ(stat(path, &st), 0);
  CHECK_INT_EQ(s.last.size, (uint64_t)st.st_size);
  CHECK_INT_EQ(s.last.result_len, sizeof(int));
  CHECK(s.last.created_ns > 0 && s.last.duration_ns > 0);
  /* lookups ask it too, and leave an invalid entry in place */
  int x = 2;
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 0);
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, NULL), 0);
  CHECK_INT_EQ(s.calls, 3);
  CHECK_INT_EQ(access(path, F_OK), 0);
  s.answer = 1;
  CHECK_INT_EQ(call_int(c, twice, 2, NULL, &hit), 4);
  CHECK_INT_EQ(hit, 1);
  CHECK_INT_EQ(g_calls, 2);
  /* a call's callback in place of the handle's */
  seen s2 = {.answer = 0};
  mproc_cache_call_opts o = {.validate = record_validity, .validate_user = &s2};
  CHECK_INT_EQ(call_int(c, twice, 2, &o, &hit), 4);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(s2.calls, 1);
  CHECK_INT_EQ(s.calls, 4);
  /* handles do not consult it */
  s.answer = 1;
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  s.answer = 0;
  int calls = s.calls;
  mproc_cache_result *r;
  CHECK_OK(mproc_cache_entry_load(e, &r));
  mproc_cache_result_release(r);
  CHECK_OK(mproc_cache_entry_stat(e, &i));
  mproc_cache_entry_release(e);
  CHECK_INT_EQ(s.calls, calls);
  /* an invalid entry is removed even when its recomputation fails (joblib clears it first) */
  CHECK_INT_EQ(call_int(c, flaky, 5, NULL, &hit), 5);
  g_flaky_fails = 1;
  x = 5;
  CHECK_ERR(mproc_cache_call(c, flaky, &x, sizeof x, &r), MPROC_ERANGE);
  mproc_cache_result_release(r);
  g_flaky_fails = 0;
  mproc_cache_close(c);
  CHECK_OK(mproc_cache_open(&c, g_dir, NULL));
  CHECK_INT_EQ(mproc_cache_contains(c, flaky, &x, sizeof x), 0);

  /* joblib's test_memory_only_cache_long_run, with the durations written into the entries */
  mproc_cache_call_opts lo = {.validate = long_runs_only};
  CHECK_INT_EQ(call_int(c, thrice, 1, &lo, &hit), 3);
  CHECK_INT_EQ(call_int(c, thrice, 2, &lo, &hit), 6);
  char p1[512], p2[512];
  entry_path(c, thrice, 1, NULL, p1, sizeof p1);
  entry_path(c, thrice, 2, NULL, p2, sizeof p2);
  forge_times(p1, now_ns(), 10000000);  /* 10 ms: not kept */
  forge_times(p2, now_ns(), 200000000); /* 200 ms: kept */
  int before = g_calls;
  CHECK_INT_EQ(call_int(c, thrice, 1, &lo, &hit), 3);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(call_int(c, thrice, 2, &lo, &hit), 6);
  CHECK_INT_EQ(hit, 1);
  CHECK_INT_EQ(g_calls, before + 1);
  mproc_cache_close(c);
  cleanup();
}

/* joblib's test_memory_expires_after, with the creation time written into the entry. */
MTEST(expires_after) {
  double hour = 3600;
  mproc_cache *c = open_cache(NULL);
  mproc_cache_call_opts o = {.validate = mproc_cache_expires_after, .validate_user = &hour};
  int hit;
  CHECK_INT_EQ(call_int(c, twice, 7, &o, &hit), 14);
  CHECK_INT_EQ(call_int(c, twice, 7, &o, &hit), 14);
  CHECK_INT_EQ(hit, 1);
  char path[512];
  entry_path(c, twice, 7, NULL, path, sizeof path);
  forge_times(path, now_ns() - (int64_t)7200 * 1000000000, 1);
  int x = 7;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, &o, NULL), 0);
  CHECK_INT_EQ(mproc_cache_contains(c, twice, &x, sizeof x), 1); /* no callback: still an entry */
  CHECK_INT_EQ(call_int(c, twice, 7, &o, &hit), 14);
  CHECK_INT_EQ(hit, 0);
  CHECK_INT_EQ(call_int(c, twice, 7, &o, &hit), 14); /* stored anew, with a new creation time */
  CHECK_INT_EQ(hit, 1);
  CHECK_INT_EQ(g_calls, 2);
  /* the callback alone */
  mproc_cache_entry_info i = {.created_ns = now_ns() - (int64_t)10 * 1000000000};
  double five = 5, twenty = 20, nan_s = NAN, inf_s = INFINITY;
  CHECK_INT_EQ(mproc_cache_expires_after(&i, &five), 0);
  CHECK_INT_EQ(mproc_cache_expires_after(&i, &twenty), 1);
  CHECK_INT_EQ(mproc_cache_expires_after(&i, &inf_s), 1);
  CHECK_INT_EQ(mproc_cache_expires_after(&i, &nan_s), 0);
  CHECK_INT_EQ(mproc_cache_expires_after(&i, NULL), 0);
  CHECK_INT_EQ(mproc_cache_expires_after(NULL, &five), 0);
  mproc_cache_close(c);
  cleanup();
}

/* Entries listed least recently used first, with their metadata; one function's; corrupt ones marked. */
MTEST(list_entries) {
  mproc_cache *c = open_cache(&(mproc_cache_opts){.compress_level = -1});
  size_t n = 99;
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &n));
  CHECK_INT_EQ(n, 0);
  int hit;
  for (int i = 0; i < 5; i++) call_int(c, twice, i, NULL, &hit);
  for (int i = 0; i < 2; i++) call_int(c, thrice, i, NULL, &hit);
  time_t now = time(NULL);
  char paths[7][512];
  for (int i = 0; i < 7; i++) {
    /* ages: twice(0) is the oldest, then thrice(0), twice(1), thrice(1), twice(2), twice(3), twice(4) */
    static const int order[7] = {0, 2, 4, 5, 6, 1, 3};
    entry_path(c, i < 5 ? twice : thrice, i < 5 ? i : i - 5, NULL, paths[i], sizeof paths[i]);
    set_mtime(paths[i], now - 1000 + order[i] * 10);
  }
  static const int lru[7] = {0, 5, 1, 6, 2, 3, 4}; /* the entry of each rank */
  mproc_cache_entry_info v[8];
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &n));
  CHECK_INT_EQ(n, 7);
  CHECK_OK(mproc_cache_list(c, NULL, v, 8, &n));
  CHECK_INT_EQ(n, 7);
  uint64_t entry_size = sizeof(mproc__entry_header) + sizeof(int);
  for (int r = 0; r < 7; r++) {
    char p[512];
    info_path(&v[r], p, sizeof p);
    CHECK_STR_EQ(p, paths[lru[r]]);
    CHECK_INT_EQ(v[r].size, entry_size);
    CHECK_INT_EQ(v[r].result_len, sizeof(int));
    CHECK_INT_EQ(v[r].accessed_ns, (int64_t)(now - 1000 + r * 10) * 1000000000);
    CHECK(v[r].created_ns > 0 && v[r].duration_ns > 0);
    CHECK_INT_EQ(v[r].corrupt, 0);
  }
  CHECK(v[0].fn_key != v[1].fn_key);
  /* the first cap of them */
  memset(v, 0, sizeof v);
  CHECK_OK(mproc_cache_list(c, NULL, v, 2, &n));
  CHECK_INT_EQ(n, 7);
  char p[512];
  info_path(&v[1], p, sizeof p);
  CHECK_STR_EQ(p, paths[5]);
  CHECK_INT_EQ(v[2].size, 0);
  /* one function's */
  CHECK_OK(mproc_cache_list(c, thrice, v, 8, &n));
  CHECK_INT_EQ(n, 2);
  info_path(&v[0], p, sizeof p);
  CHECK_STR_EQ(p, paths[5]);
  CHECK_OK(mproc_cache_list(c, failing, v, 8, &n)); /* a function without entries */
  CHECK_INT_EQ(n, 0);
  /* a corrupt header, a FIFO, a truncated file: listed as corrupt, nothing blocks */
  flip_byte(paths[0], offsetof(mproc__entry_header, raw_size));
  CHECK_INT_EQ(truncate(paths[1], 10), 0);
  CHECK_INT_EQ(unlink(paths[2]), 0);
  CHECK_INT_EQ(mkfifo(paths[2], 0600), 0);
  for (int i = 0; i < 3; i++) set_mtime(paths[i], now - 2000 + i);
  CHECK_OK(mproc_cache_list(c, NULL, v, 8, &n));
  CHECK_INT_EQ(n, 7);
  for (int r = 0; r < 3; r++) {
    info_path(&v[r], p, sizeof p);
    CHECK_STR_EQ(p, paths[r]);
    CHECK_INT_EQ(v[r].corrupt, 1);
    CHECK_INT_EQ(v[r].created_ns, 0);
    CHECK_INT_EQ(v[r].accessed_ns, (int64_t)(now - 2000 + r) * 1000000000);
  }
  CHECK_INT_EQ(v[1].size, 10);
  CHECK_INT_EQ(v[3].corrupt, 0);
  /* error paths */
  CHECK_ERR(mproc_cache_list(NULL, NULL, v, 8, &n), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_list(c, NULL, v, 8, NULL), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_list(c, NULL, NULL, 1, &n), MPROC_EINVAL);
  mproc_cache_close(c);
  cleanup();
}

/* Ten entries of one size, last used 1000 - i seconds before now (ns): twice(0) is the least recently
 * used. */
static mproc_cache *toy_cache(int64_t now) {
  mproc_cache *c = open_cache(&(mproc_cache_opts){.compress_level = -1});
  int hit;
  for (int i = 0; i < 10; i++) call_int(c, twice, i, NULL, &hit);
  for (int i = 0; i < 10; i++) {
    char path[512];
    entry_path(c, twice, i, NULL, path, sizeof path);
    set_mtime_ns(path, now - (int64_t)(1000 - i) * 1000000000);
  }
  return c;
}

/* Which of the toy cache's entries are left, as a bit mask. */
static int left(mproc_cache *c) {
  int m = 0;
  for (int i = 0; i < 10; i++) {
    int x = i;
    if (mproc_cache_contains(c, twice, &x, sizeof x) == 1) m |= 1 << i;
  }
  return m;
}

/* joblib's test_memory_reduce_size_{bytes,items,age}_limit: no limit is not 0, 0 empties the cache. */
MTEST(reduce_size_limits) {
  int64_t now = now_ns();
  int64_t entry = sizeof(mproc__entry_header) + sizeof(int);
  mproc_cache *c = toy_cache(now);
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT));
  CHECK_INT_EQ(left(c), 0x3ff);
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, INFINITY));
  CHECK_OK(mproc_cache_reduce_size(c, 10 * entry, 10, 86400));
  CHECK_INT_EQ(left(c), 0x3ff);
  /* items: the two most recently used stay */
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, 2, MPROC_CACHE_NO_LIMIT));
  CHECK_INT_EQ(left(c), 0x300);
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, 0, MPROC_CACHE_NO_LIMIT));
  CHECK_INT_EQ(left(c), 0);
  mproc_cache_stats s;
  CHECK_OK(mproc_cache_get_stats(c, &s));
  CHECK_INT_EQ(s.evictions, 10);
  mproc_cache_close(c);
  cleanup();

  /* bytes: three entries' worth, then less than one */
  c = toy_cache(now);
  CHECK_OK(mproc_cache_reduce_size(c, 3 * entry + entry / 2, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT));
  CHECK_INT_EQ(left(c), 0x380);
  CHECK_OK(mproc_cache_reduce_size(c, entry / 2, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT));
  CHECK_INT_EQ(left(c), 0);
  mproc_cache_close(c);
  cleanup();

  /* age: last used 995.5 s ago or more goes (0 to 4), then 0 s: everything */
  c = toy_cache(now);
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, 995.5));
  CHECK_INT_EQ(left(c), 0x3e0);
  /* limits together: whatever any of them asks */
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, 2, 993.5)); /* age takes 5 and 6, items 7 */
  CHECK_INT_EQ(left(c), 0x300);
  CHECK_OK(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, 0));
  CHECK_INT_EQ(left(c), 0);

  /* error paths: negative limits other than "no limit", NaN */
  CHECK_ERR(mproc_cache_reduce_size(NULL, 0, 0, 0), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, -2, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, INT64_MIN, MPROC_CACHE_NO_LIMIT), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, -0.5), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, -INFINITY), MPROC_EINVAL);
  CHECK_ERR(mproc_cache_reduce_size(c, MPROC_CACHE_NO_LIMIT, MPROC_CACHE_NO_LIMIT, NAN), MPROC_EINVAL);
  mproc_cache_close(c);
  cleanup();
}

/* A cache directory removed under the handle: it lists as empty and reducing it does nothing, until a call
 * creates it anew; a handle to an entry that was in it finds it gone, then finds the new one. */
MTEST(list_reduce_removed_dir) {
  mproc_cache *c = open_cache(NULL);
  int hit;
  call_int(c, twice, 1, NULL, &hit);
  int x = 1;
  mproc_cache_entry *e;
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, &e), 1);
  rm_rf(g_dir);
  size_t n;
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &n));
  CHECK_INT_EQ(n, 0);
  CHECK_OK(mproc_cache_reduce_size(c, 0, 0, 0));
  CHECK_INT_EQ(mproc_cache_lookup(c, twice, &x, sizeof x, NULL, NULL), 0);
  mproc_cache_result *r;
  CHECK_ERR(mproc_cache_entry_load(e, &r), MPROC_ENOENT);
  CHECK_OK(mproc_cache_entry_clear(e));
  call_int(c, twice, 1, NULL, &hit);
  CHECK_INT_EQ(hit, 0);
  CHECK_OK(mproc_cache_list(c, NULL, NULL, 0, &n));
  CHECK_INT_EQ(n, 1);
  CHECK_OK(mproc_cache_entry_load(e, &r));
  mproc_cache_result_release(r);
  mproc_cache_entry_release(e);
  mproc_cache_close(c);
  cleanup();
}

typedef struct thread_arg {
  mproc_cache *c;
  pthread_barrier_t *closed;
  int failures;
} thread_arg;

/* Each thread takes handles, loads through them and releases them; then holds one across the close of
 * the cache by the main thread, and releases it after: the last release frees the cache. */
static void *entry_user(void *p) {
  thread_arg *a = p;
  int x = 1;
  for (int i = 0; i < 200; i++) {
    mproc_cache_entry *e;
    mproc_cache_result *r;
    if (mproc_cache_lookup(a->c, twice, &x, sizeof x, NULL, &e) != 1) {
      a->failures++;
      continue;
    }
    if (mproc_cache_entry_load(e, &r) != 0 || *(const int *)mproc_cache_result_data(r) != 2) a->failures++;
    mproc_cache_result_release(r);
    mproc_cache_entry_release(e);
  }
  mproc_cache_entry *kept;
  if (mproc_cache_lookup(a->c, twice, &x, sizeof x, NULL, &kept) != 1) a->failures++;
  pthread_barrier_wait(a->closed); /* every thread holds one */
  pthread_barrier_wait(a->closed); /* the cache is closed */
  mproc_cache_result *r;
  if (mproc_cache_entry_load(kept, &r) != MPROC_ECLOSED) a->failures++;
  mproc_cache_entry_release(kept);
  return NULL;
}

/* One cache handle shared by threads that take and release entry handles, and close while they hold some
 * (make test-tsan runs this file). */
MTEST(entries_from_threads) {
  mproc_cache *c = open_cache(NULL);
  int hit;
  call_int(c, twice, 1, NULL, &hit);
  enum { N = 4 };
  pthread_barrier_t b;
  pthread_barrier_init(&b, NULL, N + 1);
  pthread_t th[N];
  thread_arg a[N];
  for (int i = 0; i < N; i++) {
    a[i] = (thread_arg){c, &b, 0};
    CHECK_INT_EQ(pthread_create(&th[i], NULL, entry_user, &a[i]), 0);
  }
  pthread_barrier_wait(&b);
  mproc_cache_close(c);
  pthread_barrier_wait(&b);
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    CHECK_INT_EQ(a[i].failures, 0);
  }
  pthread_barrier_destroy(&b);
  cleanup();
}
