/* mproc/items.h: maps, streams and Parallel over items of any size, with results of any size: Python's
 * Pool.map over a list of strings, paths or records of different sizes, and joblib's Parallel over a
 * generator.  Included by <mproc.h>; see docs/items.md. */
#ifndef MPROC_ITEMS_H
#define MPROC_ITEMS_H

#include <stddef.h>
#include <stdint.h>

#include <mproc/common.h>
#include <mproc/parallel.h>
#include <mproc/pool.h>

MPROC_EXTERN_C_BEGIN

/* One item or one result: len bytes at data. */
typedef struct mproc_item {
  const void *data;
  size_t len;
} mproc_item;

/* A lazy input (joblib's generator, imap over an iterator): called in the calling thread for item index
 * (0, 1, 2... in order) when the call is ready to take it.  Sets *item and returns 1; returns 0 (or any
 * other positive value) at the end of the input, or a negative code that ends the call with that code (what
 * is in flight is cancelled, the pool stays usable; an item with NULL data and a nonzero length is
 * -EINVAL).  The bytes need only stay valid until the next call: mproc copies them. */
typedef int (*mproc_input_fn)(void *user, int64_t index, mproc_item *item);

/* The input of a call over items, in one of four forms; use the constructors below.  A task gets an item's
 * bytes as its (arg, len). */
typedef struct mproc_items {
  size_t n;                   /* items (the lazy form counts them as they come) */
  const mproc_item *array;    /* n items, each its own pointer and length */
  const char *const *strings; /* n C strings: item i is strings[i] with its terminating NUL */
  const void *packed;         /* n items in one buffer (read from a file, say): item i is the bytes */
  const size_t *offsets;      /* [offsets[i], offsets[i + 1]) of packed; n + 1 offsets, non-decreasing */
  mproc_input_fn next;        /* lazy: items on demand, how many is not known in advance */
  void *user;                 /* next's argument */
} mproc_items;

/* (Every member is given, so that the header compiles cleanly as C and as C++.) */
static inline mproc_items mproc_items_array(const mproc_item *items, size_t n) {
  mproc_items in = {n, items, NULL, NULL, NULL, NULL, NULL};
  return in;
}
static inline mproc_items mproc_items_strings(const char *const *strings, size_t n) {
  mproc_items in = {n, NULL, strings, NULL, NULL, NULL, NULL};
  return in;
}
static inline mproc_items mproc_items_packed(const void *buf, const size_t *offsets, size_t n) {
  mproc_items in = {n, NULL, NULL, buf, offsets, NULL, NULL};
  return in;
}
static inline mproc_items mproc_items_lazy(mproc_input_fn next, void *user) {
  mproc_items in = {0, NULL, NULL, NULL, NULL, next, user};
  return in;
}

/* The results of a map over items: one block holding every result's bytes, and per item how it ended (a
 * bit, and a code written only for failures) and, once results of different lengths came, where its result
 * is (16 bytes per item). */
typedef struct mproc_results mproc_results;
/* The number of items (also those that failed or were cancelled); 0 for NULL. */
MPROC_API size_t mproc_results_count(const mproc_results *r);
/* Item i's result: 0 with *data and *len set (valid until mproc_results_free(); an empty result has len 0),
 * or the item's failure code (-ECANCELED when it did not run, -ENOMEM when its result could not be kept)
 * with *data NULL and *len 0; -EINVAL for NULL arguments or i out of range. */
MPROC_API int mproc_results_get(const mproc_results *r, size_t i, const void **data, size_t *len);
MPROC_API void mproc_results_free(mproc_results *r);

/* Pool.map / Executor.map over items of any size: runs fn on each item and keeps each result, whatever
 * its size, in input order, in *out (free with mproc_results_free(); set also when the call fails after
 * items ran, to tell which did, else NULL).  Items in the shared arena (mproc_shared_alloc()) are read in
 * place by process workers, any item by thread workers; the others travel through the rings.  Returns as
 * mproc_pool_map() (opts as there; -EINVAL also for an items description with no form or two, or offsets
 * that decrease), or the lazy input's negative code. */
MPROC_API int mproc_pool_map_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                                   const mproc_map_opts *opts, mproc_results **out, mproc_map_report *report);

/* imap / imap_unordered over items: results come out one at a time with mproc_stream_next_item(), memory
 * bounded by opts->max_in_flight items handed out and not consumed (joblib's pre_dispatch: a lazy input is
 * never asked for an item beyond it).  The items description is copied; what it points to must stay valid
 * until the stream is destroyed.  Errors as mproc_pool_imap(). */
MPROC_API int mproc_pool_imap_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                                    const mproc_stream_opts *opts, mproc_stream **out);
MPROC_API int mproc_pool_imap_unordered_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                                              const mproc_stream_opts *opts, mproc_stream **out);
/* As mproc_stream_next(), with the result's length: *result is the result (valid until the next call),
 * {NULL, 0} for a failed item.  Works on every stream (fixed-size results have their record size).  A lazy
 * input's failure ends the stream: its code is returned once, then MPROC_EEOF. */
MPROC_API int mproc_stream_next_item(mproc_stream *s, double timeout, int64_t *index, mproc_item *result,
                                     mproc_outcome *outcome);

/* Parallel over items: the list form into *out (as mproc_pool_map_items()), and the generator forms. */
MPROC_API int mproc_parallel_run_items(mproc_parallel *par, mproc_task_fn fn, const mproc_items *in,
                                       mproc_results **out, mproc_map_report *report);
MPROC_API int mproc_parallel_stream_items(mproc_parallel *par, mproc_task_fn fn, const mproc_items *in,
                                          mproc_return_as order, mproc_stream **out);
/* The one-call form, Parallel(n_jobs=...)(delayed(f)(x) for x in things), over items: as
 * mproc_parallel_call() (its pool kept under the same rules), results into *out. */
MPROC_API int mproc_parallel_call_items(mproc_task_fn fn, const mproc_items *in, mproc_results **out,
                                        const mproc_parallel_opts *opts, mproc_map_report *report);

MPROC_EXTERN_C_END

#endif
