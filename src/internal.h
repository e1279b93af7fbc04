/* internal.h: the private umbrella header of mproc's sources: the public API, the platform layer, the
 * allocator wrapper and small helpers every layer uses.  Nothing here is API. */
#ifndef MPROC_INTERNAL_H
#define MPROC_INTERNAL_H

#include <mproc.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include "platform/platform.h"

/* Allocation goes through these, so a replaced allocator and the tests' failure injection see it all. */
void *mproc__malloc(size_t n);
void *mproc__calloc(size_t count, size_t size);
void *mproc__realloc(void *p, size_t n);
void mproc__free(void *p);
char *mproc__strdup(const char *s);

/* A large array written once in order (a results store's): from 512 KiB on, it begins on a 2 MiB boundary
 * with the huge-page hint over all of it (see alloc.c).  Zero-initialised {0} is empty. */
typedef struct mproc__big {
  void *base;   /* the allocator's block */
  void *p;      /* the array, inside it */
  size_t bytes; /* the array's size */
} mproc__big;
/* Resizes b to `bytes`, keeping the first min(old, new) bytes; false without memory (b unchanged). */
bool mproc__big_resize(mproc__big *b, size_t bytes);
/* b made a new array of `bytes` zero bytes (its old one freed), whose pages are not touched until written:
 * an array written only here and there costs only the pages written.  False without memory (b unchanged). */
bool mproc__big_zeroed(mproc__big *b, size_t bytes);
void mproc__big_free(mproc__big *b);

/* Rejects a NaN timeout; every other value is valid (see mproc/common.h). */
static inline bool mproc__timeout_valid(double timeout) { return !isnan(timeout); }

/* The absolute monotonic time at which a timeout ends: INFINITY for a negative timeout, and for one beyond
 * any representable deadline (see MPROC__PLAT_TIMEOUT_MAX). */
static inline double mproc__deadline(double timeout) {
  return mproc__plat_timeout_forever(timeout) ? INFINITY : mproc__plat_now() + timeout;
}

/* Seconds left until deadline: -1 (forever) for an infinite one, never below 0 otherwise. */
static inline double mproc__remaining(double deadline) {
  if (isinf(deadline)) return -1.0;
  double left = deadline - mproc__plat_now();
  return left > 0 ? left : 0.0;
}

#define MPROC_UNUSED(x) ((void)(x))

/* A pause for spin-waiting loops: lets the other hyperthread run and saves power. */
static inline void mproc__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif
