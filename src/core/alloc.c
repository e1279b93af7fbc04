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
  allocator.malloc_fn = malloc_fn;
  allocator.realloc_fn = realloc_fn;
  allocator.calloc_fn = calloc_fn;
  allocator.free_fn = free_fn;
  return 0;
}

void *mproc__malloc(size_t n) { return allocator.malloc_fn(n ? n : 1); }
void *mproc__calloc(size_t count, size_t size) {
  return allocator.calloc_fn(count ? count : 1, size ? size : 1);
}
void *mproc__realloc(void *p, size_t n) { return allocator.realloc_fn(p, n ? n : 1); }
void mproc__free(void *p) {
  if (p) allocator.free_fn(p);
}

char *mproc__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = mproc__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}
