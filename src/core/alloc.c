/* alloc.c: the allocator wrapper every part of mproc allocates through, and its replacement hook. */
#include <stdint.h>
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

/* The kernel backs with huge pages only the whole 2 MiB spans inside a hinted range, and a block as malloc
 * gives it begins just past a page's start: an 8 MiB array there had a quarter of its pages as 4 KiB ones,
 * a fault each (12 us apiece on some guests, most of a first map's cost).  So a large array is placed on a
 * 2 MiB boundary inside a block taken from the allocator (a replaced one too) with 2 MiB to spare, and the
 * hint covers it up to its last whole span (from 512 KiB on: such an array is one huge page, a fault, rather
 * than 128 or more).  Growth reallocates the block and moves the bytes when the
 * boundary moved within it. */
bool mproc__big_resize(mproc__big *b, size_t bytes) {
  const size_t huge = (size_t)2 << 20, from = huge / 4; /* at most 1.5 MiB more than asked is touched */
  if (bytes < from && b->bytes < from) {                /* small: the block is the array */
    void *nb = mproc__realloc(b->base, bytes);
    if (!nb) return false;
    *b = (mproc__big){.base = nb, .p = nb, .bytes = bytes};
    return true;
  }
  size_t span = (bytes + huge - 1) / huge * huge;
  if (span < bytes || span > SIZE_MAX - huge) return false;
  size_t old_shift = b->base ? (size_t)((char *)b->p - (char *)b->base) : 0;
  size_t keep = b->bytes < bytes ? b->bytes : bytes;
  char *nb = mproc__realloc(b->base, span + huge);
  if (!nb) return false;
  char *np = (char *)(((uintptr_t)nb + huge - 1) & ~(uintptr_t)(huge - 1));
  if (keep && (size_t)(np - nb) != old_shift) memmove(np, nb + old_shift, keep);
  (void)mproc__plat_advise_huge(np, span);
  *b = (mproc__big){.base = nb, .p = np, .bytes = bytes};
  return true;
}

void mproc__big_free(mproc__big *b) {
  mproc__free(b->base);
  *b = (mproc__big){0};
}
