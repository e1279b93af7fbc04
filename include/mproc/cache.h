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
/* A handle to one stored entry (joblib's MemorizedResult): load its result later, or clear it. */
typedef struct mproc_cache_entry mproc_cache_entry;

/* What is known of a stored entry without reading its result: given to a validity callback, filled by
 * mproc_cache_list() and mproc_cache_entry_stat(). */
typedef struct mproc_cache_entry_info {
  char key[33];        /* the entry's key: 32 hex digits (its file's name without ".e") */
  uint64_t fn_key;     /* the function's identity: its directory's name is these 16 hex digits */
  uint64_t size;       /* bytes on disk: the header and the stored (maybe compressed) result */
  uint64_t result_len; /* the result's length */
  int64_t created_ns;  /* when it was stored: CLOCK_REALTIME, nanoseconds since the epoch */
  int64_t accessed_ns; /* when it was last stored or hit (the file's mtime: the LRU order) */
  int64_t duration_ns; /* how long computing it took; 0 when not recorded (entries of mproc 0.1.0) */
  int corrupt;         /* mproc_cache_list() only: 1 when its header fails its checks (the other fields
                        * but key, fn_key, size and accessed_ns are then 0); a call recomputes it */
} mproc_cache_entry_info;

/* A validity callback (joblib's cache_validation_callback): called on a hit with the entry's metadata;
 * returns nonzero when the entry may be used, 0 when it is to be recomputed and replaced.  It runs in the
 * calling thread, before the result is read; it must not call the cache. */
typedef int (*mproc_cache_validate_fn)(const mproc_cache_entry_info *entry, void *user);

/* A ready-made validity callback (joblib's expires_after): an entry is valid for *(const double *)seconds
 * seconds after it was stored (its created_ns), then recomputed.  A NULL seconds expires every entry. */
MPROC_API int mproc_cache_expires_after(const mproc_cache_entry_info *entry, void *seconds);

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
  /* Called on every hit of this handle (unless a call's own opts give another): see mproc_cache_validate_fn.
   * NULL: every valid entry is used. */
  mproc_cache_validate_fn validate;
  void *validate_user;
} mproc_cache_opts;

/* A byte range of the argument: [offset, offset + len). */
typedef struct mproc_cache_span {
  size_t offset, len;
} mproc_cache_span;

/* Per-call options (mproc_cache_call_with() and the calls that take them); the zero value (or NULL) means
 * none: the key is made from all the argument's bytes and the handle's validity callback applies.  Give the
 * same options to every call that is to find the same entries. */
typedef struct mproc_cache_call_opts {
  /* The key explicitly (non-NULL, key_len bytes, possibly 0): the entry is found by these bytes and the
   * function's identity, and the argument's bytes do not count.  Keys given this way never match keys made
   * from an argument. */
  const void *key;
  size_t key_len;
  /* Ranges of the argument that do not count for the key (joblib's ignore=[...]), such as a verbosity flag:
   * {offsetof(struct args, verbose), sizeof(int)}.  Each must lie within the argument (else -EINVAL); they
   * may overlap and come in any order (the same set of bytes gives the same key).  Not with key.  Keys made
   * with ignored ranges never match keys made without, or with another set of ranges. */
  const mproc_cache_span *ignore;
  size_t n_ignore;
  /* This call's validity callback, in place of the handle's (NULL: the handle's). */
  mproc_cache_validate_fn validate;
  void *validate_user;
} mproc_cache_call_opts;

/* "No limit" for mproc_cache_reduce_size(): distinct from 0, which empties the cache. */
#define MPROC_CACHE_NO_LIMIT (-1)

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
/* Closes the handle (the directory stays).  Entry handles still held keep its memory, not its descriptors:
 * their calls then return MPROC_ECLOSED, and the last release frees it.  NULL is accepted. */
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
/* mproc_cache_call() with per-call options (NULL: none): an explicit key or ignored ranges of the argument,
 * and a validity callback.  A hit the callback calls invalid is removed, recomputed and stored again.
 * Returns what mproc_cache_call() does, and -EINVAL for options that are inconsistent (key and ignore
 * both, a NULL key or ignore with a nonzero length, a range past the argument's end). */
MPROC_API int mproc_cache_call_with(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                                    const mproc_cache_call_opts *opts, mproc_cache_result **out);
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
 * negative code (-EINVAL, an I/O error).  Does not run fn nor touch the entry's access time.  Its header
 * and checksums are checked, its result is not decompressed: bytes that pass the checksum and then fail to
 * decompress (a forged checksum; the writer never makes them) count here and are recomputed by a call. */
MPROC_API int mproc_cache_contains(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len);
/* Looks up without computing (joblib's check_call_in_cache): returns 1 when a valid entry for (fn, arg,
 * opts) is stored, one that mproc_cache_call_with() would return as a hit (its checksums and the validity
 * callback say so), and then sets *out (when out is not NULL) to a handle to it; returns 0 with *out NULL
 * when there is none (absent, corrupt, or invalid: it is left for the next call to replace; also when the
 * function's directory is another user's or not a directory).  Does not run
 * fn, nor touch the entry's access time, nor remove anything.  Returns -EINVAL (NULL c or fn, NULL arg with
 * len > 0, inconsistent opts), -ENOMEM, or an I/O error. */
MPROC_API int mproc_cache_lookup(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                                 const mproc_cache_call_opts *opts, mproc_cache_entry **out);
/* joblib's call_and_shelve: as mproc_cache_call_with(), but returns a handle to the entry instead of the
 * result (a hit is checked, not loaded into memory).  Returns 0 with *out set; fn's code when fn fails
 * (nothing stored; call mproc_cache_call_with() for its message); the error that made storing fail (the
 * computed result is then dropped: there is no entry to refer to); -EINVAL or -ENOMEM.  *out is NULL on
 * error. */
MPROC_API int mproc_cache_shelve(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                                 const mproc_cache_call_opts *opts, mproc_cache_entry **out);
/* Loads the entry's result (as a hit of mproc_cache_call(): the result is a copy, and the entry's access
 * time is refreshed).  The handle names a key, not one version of its bytes: if the entry was recomputed
 * since, this is the new result.  The validity callback is not consulted.  Returns 0 with *out set;
 * -ENOENT when the entry is gone (cleared, evicted, removed); MPROC_ECORRUPT when it is not a valid entry
 * (it is left for the next call to recompute); MPROC_ECLOSED when its cache was closed; -EINVAL, -ENOMEM,
 * or an I/O error.  *out is NULL on error. */
MPROC_API int mproc_cache_entry_load(mproc_cache_entry *e, mproc_cache_result **out);
/* Removes the entry (joblib's MemorizedResult.clear).  Returns 0, also when it was already gone;
 * MPROC_ECLOSED when its cache was closed; -EINVAL; or the removal's error. */
MPROC_API int mproc_cache_entry_clear(mproc_cache_entry *e);
/* The entry's metadata, from its header (its result is not read).  Returns 0; -ENOENT when it is gone;
 * MPROC_ECORRUPT when its header fails its checks; MPROC_ECLOSED; -EINVAL; or an I/O error. */
MPROC_API int mproc_cache_entry_stat(const mproc_cache_entry *e, mproc_cache_entry_info *out);
/* Frees the handle (the entry stays).  A handle keeps its cache's memory (not its directory descriptors)
 * until it is released, so releasing it after mproc_cache_close() is fine.  NULL is accepted. */
MPROC_API void mproc_cache_entry_release(mproc_cache_entry *e);
/* Lists the entries of fn (NULL: of every function), least recently used first: writes the first
 * min(cap, count) of them to out and sets *count to how many there are.  out may be NULL when cap is 0 (to
 * count them).  An entry whose header fails its checks is listed with .corrupt = 1.  Returns 0, -EINVAL
 * (NULL c or count, NULL out with cap > 0), -ENOMEM, or an error reading the directory. */
MPROC_API int mproc_cache_list(mproc_cache *c, mproc_task_fn fn, mproc_cache_entry_info *out, size_t cap,
                               size_t *count);
/* Removes every entry of the cache.  Returns 0 or the first error met (removal goes on past it). */
MPROC_API int mproc_cache_clear(mproc_cache *c);
/* Removes every entry of fn (all code versions).  Returns 0, -EINVAL, or a removal error. */
MPROC_API int mproc_cache_clear_function(mproc_cache *c, mproc_task_fn fn);
/* Removes entries least recently used first until the entries' total size is at most max_bytes (<0: no
 * size limit), and every entry not used for more than max_age_s seconds (<0 or NaN... : no age limit;
 * NaN is -EINVAL).  Counts removals as evictions.  Also removes the temporary files of writers killed while
 * they wrote (older than 60 s; never a live writer's), as mproc_cache_reduce_size() does.  Returns 0 or a
 * negative code. */
MPROC_API int mproc_cache_reduce(mproc_cache *c, int64_t max_bytes, double max_age_s);
/* joblib's reduce_size(bytes_limit, items_limit, age_limit): removes entries least recently used first
 * while their total size is above bytes_limit or their number above items_limit, and every entry not used
 * for age_limit_s seconds or more.  Each limit is MPROC_CACHE_NO_LIMIT for none (also +INFINITY for the
 * age); 0 is a limit: 0 bytes, 0 items or an age of 0 s empty the cache.  Counts removals as evictions.
 * Also removes the temporary files that writers killed while writing left (those more than 60 s old that no
 * live writer holds; they are not entries and not counted).  Returns 0; -EINVAL for NULL c, a negative limit
 * other than MPROC_CACHE_NO_LIMIT, or a NaN age; or the first error met (removal goes on past it). */
MPROC_API int mproc_cache_reduce_size(mproc_cache *c, int64_t bytes_limit, int64_t items_limit,
                                      double age_limit_s);
/* Copies the handle's counters into *out.  Returns 0 or -EINVAL. */
MPROC_API int mproc_cache_get_stats(const mproc_cache *c, mproc_cache_stats *out);

MPROC_EXTERN_C_END

#endif
