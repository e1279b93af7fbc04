/* mproc/cache.h: the on-disk result cache (joblib.Memory): a task's result bytes stored under a key made of
 * the function's identity, a hash of its machine code and a hash of its argument bytes.  Included by
 * <mproc.h>.  Reference: docs/cache.md. */
#ifndef MPROC_CACHE_H
#define MPROC_CACHE_H

#include <stdint.h>
#include <mproc/common.h>
#include <mproc/task.h>

MPROC_EXTERN_C_BEGIN

typedef struct mproc_cache mproc_cache;
typedef struct mproc_cache_result mproc_cache_result;

/* Options; the zero value means the defaults. */
typedef struct mproc_cache_opts {
  int compress_level;    /* zstd level: 0 = default (3), -1 = store uncompressed, 1..19 */
  int ignore_code_hash;  /* 1: editing the function does not invalidate its entries */
  const char *version;   /* a string the user bumps to invalidate (NULL = none); copied */
  size_t mmap_threshold; /* loaded results at least this big get their own anonymous mapping (0 = 1 MiB) */
  int no_wait_for_concurrent; /* 1: a miss computes even when another process computes the same entry */
  int verbose;                /* 1: one line on stderr per call saying hit or miss (also MPROC_VERBOSE=1) */
  /* 1: each entry is fsynced before it is renamed into place, so that it survives a power loss; a miss then
   * costs an fsync (0.4 to 8 ms on this project's machines, against about 0.1 ms for the rest of a small
   * miss).  0 (the default, as joblib): after a power loss an entry may be torn; its checksums catch that
   * and it is recomputed, never returned. */
  int durable;
} mproc_cache_opts;

/* Counters of this handle (this process only). */
typedef struct mproc_cache_stats {
  uint64_t hits, misses, stores, store_failures, evictions, corrupt_recomputed, waits;
  uint64_t code_hash_unavailable; /* calls whose function had no known code extent (identity-only key) */
} mproc_cache_stats;

/* Opens (creating with mode 0700 if needed) the cache directory dir and sets *out.  opts may be NULL.  A
 * relative dir is resolved once, here: the handle holds descriptors of the directory and of its parent,
 * so a later chdir() changes nothing.  Returns 0; -EINVAL for NULL/empty arguments or a level above 19;
 * -ELOOP when dir is a symbolic link (also when written "link/" or "link/."); -EPERM when it is owned by
 * another user; -ENOTDIR; -ENOENT when its parent does not exist; or the error of mkdir.  *out is unchanged
 * on error. */
MPROC_API int mproc_cache_open(mproc_cache **out, const char *dir, const mproc_cache_opts *opts);
/* Closes the handle (the directory stays).  NULL is accepted. */
MPROC_API void mproc_cache_close(mproc_cache *c);

/* Returns fn's result for the len bytes at arg: loaded if stored before (a hit), else computed by running
 * fn in this process and stored.  Several processes and threads may call it on one directory at once;
 * when two miss the same entry, one computes and the others wait and then load it (unless
 * no_wait_for_concurrent).  Only a valid entry of this key and function, in a regular file and function
 * directory owned by this user, is a hit: anything else (corrupt, truncated, of another format version, of
 * another key or function, another user's, not a regular file) is recomputed, never returned.  A cache
 * directory removed since open is created again under the same parent with the rules of
 * mproc_cache_open().  On 0, *out is a result handle to release with mproc_cache_result_release(); a
 * failure to store still returns 0 with the computed result and mproc_cache_result_store_error() set (disk
 * full, I/O error, permission denied, -EFBIG past RLIMIT_FSIZE, where SIGXFSZ is blocked in the calling
 * thread during the write and never reaches the process; -EPERM for another user's function directory;
 * -ELOOP when the cache directory was replaced by a symbolic link).  When fn fails, returns its code,
 * nothing is stored, and *out still holds a handle whose message is the task's.  Returns -EINVAL for NULL
 * c/fn/out or NULL arg with len > 0, -ENOMEM (with *out NULL). */
MPROC_API int mproc_cache_call(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                               mproc_cache_result **out);
/* The result bytes (valid until release; a copy in memory, which removing, replacing or truncating the
 * entry file does not affect) and their length. */
MPROC_API const void *mproc_cache_result_data(const mproc_cache_result *r);
MPROC_API size_t mproc_cache_result_len(const mproc_cache_result *r);
/* 1 when the result came from the cache, 0 when computed. */
MPROC_API int mproc_cache_result_hit(const mproc_cache_result *r);
/* 0, or the negative code that made storing the computed result fail. */
MPROC_API int mproc_cache_result_store_error(const mproc_cache_result *r);
/* The failed task's message ("" if none or if the task succeeded). */
MPROC_API const char *mproc_cache_result_message(const mproc_cache_result *r);
/* Frees the handle and its bytes.  NULL is accepted. */
MPROC_API void mproc_cache_result_release(mproc_cache_result *r);

/* Returns 1 when a valid entry for (fn, arg) is stored (a hit of mproc_cache_call()), 0 when not, or a
 * negative code (-EINVAL, an I/O error).  Does not run fn nor touch the entry's access time. */
MPROC_API int mproc_cache_contains(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len);
/* Removes every entry of the cache.  Returns 0 or the first error met (removal goes on past it). */
MPROC_API int mproc_cache_clear(mproc_cache *c);
/* Removes every entry of fn (all code versions).  Returns 0, -EINVAL, or a removal error. */
MPROC_API int mproc_cache_clear_function(mproc_cache *c, mproc_task_fn fn);
/* Removes entries least recently used first until the entries' total size is at most max_bytes (<0: no
 * size limit), and every entry not used for more than max_age_s seconds (<0 or NaN... : no age limit;
 * NaN is -EINVAL).  Counts removals as evictions.  Returns 0 or a negative code. */
MPROC_API int mproc_cache_reduce(mproc_cache *c, int64_t max_bytes, double max_age_s);
/* Copies the handle's counters into *out.  Returns 0 or -EINVAL. */
MPROC_API int mproc_cache_get_stats(const mproc_cache *c, mproc_cache_stats *out);

MPROC_EXTERN_C_END

#endif
