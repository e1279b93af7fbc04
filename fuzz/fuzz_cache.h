/* fuzz_cache.h: what the two cache targets share: a cache in a scratch directory holding one real entry,
 * whose file each input replaces; every call that reads an entry (contains, lookup, stat, load, list, call
 * with a validity callback) run over it; and a model of the entry format (cache/entry.h) that says what
 * they must answer: a hit exactly when the file is a valid entry of this key, with the bytes it stores. */
#ifndef MPROC_FUZZ_CACHE_H
#define MPROC_FUZZ_CACHE_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include "cache/entry.h"
#include "fuzz.h"
#include "internal.h"

#define VALUE_LEN 3000
static const char fuzz_arg[] = "fuzz";
static unsigned char fuzz_value[VALUE_LEN]; /* what the function computes: compressible, not constant */
static mproc_cache *fuzz_c;
static char fuzz_dir[256], fuzz_fndir[300], fuzz_path[400];
static mproc__entry_header fuzz_real; /* the real entry's header: this build's key and function */

static int value_fn(const void *arg, size_t len, mproc_task *t) {
  return mproc_task_return(t, fuzz_value, sizeof fuzz_value);
}

static void fuzz_cache_cleanup(void) {
  mproc_cache_clear(fuzz_c);
  mproc_cache_close(fuzz_c);
  char p[400];
  snprintf(p, sizeof p, "%s/info", fuzz_fndir);
  unlink(p);
  snprintf(p, sizeof p, "%s/lock", fuzz_fndir);
  unlink(p);
  rmdir(fuzz_fndir);
  rmdir(fuzz_dir);
}

/* The cache, its real entry and that entry's file; compress: the level (-1: stored as is). */
static void fuzz_cache_setup(int compress) {
  for (int i = 0; i < VALUE_LEN; i++) fuzz_value[i] = (unsigned char)("mproc"[i % 5] + i / 97);
  const char *tmp = getenv("TMPDIR");
  snprintf(fuzz_dir, sizeof fuzz_dir, "%s/mproc-fuzz-cache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL);
  /* results of 1 KiB or more get their own mapping: the mapped path is reached too */
  mproc_cache_opts o = {.compress_level = compress, .mmap_threshold = 1024};
  FUZZ_CHECK(mproc_cache_open(&fuzz_c, fuzz_dir, &o) == 0);
  atexit(fuzz_cache_cleanup);
  mproc_cache_result *r;
  FUZZ_CHECK(mproc_cache_call(fuzz_c, value_fn, fuzz_arg, sizeof fuzz_arg, &r) == 0);
  mproc_cache_result_release(r);
  mproc_cache_entry_info info;
  size_t count;
  FUZZ_CHECK(mproc_cache_list(fuzz_c, value_fn, &info, 1, &count) == 0 && count == 1);
  snprintf(fuzz_fndir, sizeof fuzz_fndir, "%s/%016" PRIx64, fuzz_dir, info.fn_key);
  snprintf(fuzz_path, sizeof fuzz_path, "%s/%s.e", fuzz_fndir, info.key);
  int fd = open(fuzz_path, O_RDONLY);
  FUZZ_CHECK(fd >= 0 && read(fd, &fuzz_real, sizeof fuzz_real) == (ssize_t)sizeof fuzz_real);
  close(fd);
}

static void fuzz_cache_write(const void *bytes, size_t n) {
  int fd = open(fuzz_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  FUZZ_CHECK(fd >= 0 && write(fd, bytes, n) == (ssize_t)n);
  close(fd);
}

/* The model: 0 when the file is not an entry of the key; 1 when its header and checksums are right (what
 * contains and lookup check: they do not decompress); 2 when its result also decompresses as the header
 * says, with *out (malloc'd, *len bytes) the result.  1 alone takes a forged checksum: the writer's zstd
 * always decompresses. */
static int model_entry(const unsigned char *file, size_t n, unsigned char **out, size_t *len) {
  mproc__entry_header h;
  if (n < sizeof h) return 0;
  memcpy(&h, file, sizeof h);
  const unsigned char *stored = file + sizeof h;
  size_t slen = n - sizeof h;
  if (h.magic != MPROC__ENTRY_MAGIC || h.format != MPROC__ENTRY_FORMAT || (h.flags & ~MPROC__ENTRY_ZSTD) ||
      h.header_check != XXH3_64bits(&h, offsetof(mproc__entry_header, header_check)) ||
      h.stored_size != slen || h.fn_key != fuzz_real.fn_key || h.key_seed != fuzz_real.key_seed ||
      h.key_hi != fuzz_real.key_hi || h.key_lo != fuzz_real.key_lo || h.checksum != XXH3_64bits(stored, slen))
    return 0;
  if (!(h.flags & MPROC__ENTRY_ZSTD)) {
    if (h.raw_size != slen) return 0;
    *out = malloc(slen ? slen : 1);
    memcpy(*out, stored, slen);
    *len = slen;
    return 2;
  }
  /* at most 32768 times the stored bytes (a bound the reader keeps), and what the frame says */
  if (h.raw_size / MPROC__ZSTD_MAX_EXPANSION > slen || ZSTD_getFrameContentSize(stored, slen) != h.raw_size)
    return 0;
  *out = malloc(h.raw_size ? h.raw_size : 1);
  size_t got = ZSTD_decompress(*out, h.raw_size, stored, slen);
  if (ZSTD_isError(got) || got != h.raw_size) {
    free(*out);
    *out = NULL;
    return 1;
  }
  *len = got;
  return 2;
}

static int fuzz_validate(const mproc_cache_entry_info *i, void *user) {
  const mproc__entry_header *h = user;
  FUZZ_CHECK(i->result_len == h->raw_size && i->created_ns == h->created_ns && i->fn_key == fuzz_real.fn_key);
  return 1;
}

static void check_result(const mproc_cache_result *r, const unsigned char *want, size_t len) {
  FUZZ_CHECK(mproc_cache_result_len(r) == len && memcmp(mproc_cache_result_data(r), want, len) == 0);
}

/* Writes file as the entry and runs every reader over it, each checked against the model. */
static void fuzz_cache_run(const unsigned char *file, size_t n) {
  unsigned char *want = NULL;
  size_t want_len = 0;
  int model = model_entry(file, n, &want, &want_len), valid = model == 2, checked = model >= 1;
  if (getenv("FUZZ_CACHE_SAY")) printf("entry of %zu bytes: model %d\n", n, model);
  fuzz_cache_write(file, n);

  FUZZ_CHECK(mproc_cache_contains(fuzz_c, value_fn, fuzz_arg, sizeof fuzz_arg) == checked);
  mproc_cache_entry *e = NULL;
  FUZZ_CHECK(mproc_cache_lookup(fuzz_c, value_fn, fuzz_arg, sizeof fuzz_arg, NULL, &e) == checked);
  if (checked) {
    mproc_cache_entry_info info;
    FUZZ_CHECK(mproc_cache_entry_stat(e, &info) == 0);
    mproc_cache_result *r = NULL;
    int rc = mproc_cache_entry_load(e, &r);
    if (valid) {
      FUZZ_CHECK(rc == 0 && info.result_len == want_len);
      check_result(r, want, want_len);
    } else {
      FUZZ_CHECK(rc == MPROC_ECORRUPT && r == NULL);
    }
    mproc_cache_result_release(r);
  }
  mproc_cache_entry_release(e);
  mproc_cache_entry_info info[2];
  size_t count = 0;
  FUZZ_CHECK(mproc_cache_list(fuzz_c, value_fn, info, 2, &count) == 0 && count == 1);
  if (checked) FUZZ_CHECK(!info[0].corrupt);
  if (valid) FUZZ_CHECK(info[0].result_len == want_len);

  mproc__entry_header h = {0};
  memcpy(&h, file, n < sizeof h ? n : sizeof h);
  mproc_cache_result *r;
  mproc_cache_call_opts o = {.validate = fuzz_validate, .validate_user = &h};
  FUZZ_CHECK(mproc_cache_call_with(fuzz_c, value_fn, fuzz_arg, sizeof fuzz_arg, &o, &r) == 0);
  FUZZ_CHECK(mproc_cache_result_hit(r) == valid && mproc_cache_result_store_error(r) == 0);
  if (valid)
    check_result(r, want, want_len);
  else
    check_result(r, fuzz_value, sizeof fuzz_value); /* recomputed */
  mproc_cache_result_release(r);
  free(want);
}

#endif
