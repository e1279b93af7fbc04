/* alloc.c: the allocator wrapper every part of mproc allocates through, and its replacement hook. */
#include <stdlib.h>
#include "internal.h"

static struct {
  void *(*malloc_fn)(size_t);
  void *(*realloc_fn)(void *, size_t);
  void *(*calloc_fn)(size_t, size_t);
  void (*free_fn)(void *);
} allocator = {malloc, realloc, calloc, free};

int mproc_replace_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                            void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *)) {
  if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn) return MPROC_EINVAL;
  /* atomic: a pool's threads (manager, thread workers) read these while the caller may replace them */
  __atomic_store_n(&allocator.malloc_fn, malloc_fn, __ATOMIC_RELAXED);
  __atomic_store_n(&allocator.realloc_fn, realloc_fn, __ATOMIC_RELAXED);
  __atomic_store_n(&allocator.calloc_fn, calloc_fn, __ATOMIC_RELAXED);
  __atomic_store_n(&allocator.free_fn, free_fn, __ATOMIC_RELAXED);
  return 0;
}

void *mproc__malloc(size_t n) { return __atomic_load_n(&allocator.malloc_fn, __ATOMIC_RELAXED)(n ? n : 1); }
void *mproc__calloc(size_t count, size_t size) {
  return __atomic_load_n(&allocator.calloc_fn, __ATOMIC_RELAXED)(count ? count : 1, size ? size : 1);
}
void *mproc__realloc(void *p, size_t n) {
  return __atomic_load_n(&allocator.realloc_fn, __ATOMIC_RELAXED)(p, n ? n : 1);
}
void mproc__free(void *p) {
  if (p) __atomic_load_n(&allocator.free_fn, __ATOMIC_RELAXED)(p);
}

char *mproc__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = mproc__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}
