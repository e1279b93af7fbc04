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

/* A block of 8 MiB or more is a payload's bytes (an argument kept for its job, a result on its way to the
 * caller), written whole once: the huge-page hint over its whole 2 MiB spans makes its first touch a fault
 * per 2 MiB rather than per 4 KiB (a 64 MiB result cost 16,384 faults, a quarter of a second where a fault
 * costs 16 us).  Only the spans at its two ends stay 4 KiB pages (mproc__big aligns arrays kept longer). */
#define HINT_FROM ((size_t)8 << 20)
static void *hinted(void *p, size_t n) {
  if (p && n >= HINT_FROM) (void)mproc__plat_advise_huge(p, n);
  return p;
}

void *mproc__malloc(size_t n) {
  return hinted(__atomic_load_n(&allocator.malloc_fn, __ATOMIC_RELAXED)(n ? n : 1), n);
}
void *mproc__calloc(size_t count, size_t size) {
  void *p = __atomic_load_n(&allocator.calloc_fn, __ATOMIC_RELAXED)(count ? count : 1, size ? size : 1);
  return size && count <= SIZE_MAX / size ? hinted(p, count * size) : p;
}
void *mproc__realloc(void *p, size_t n) {
  return hinted(__atomic_load_n(&allocator.realloc_fn, __ATOMIC_RELAXED)(p, n ? n : 1), n);
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
 * than 128 or more).  Growth takes a new block and copies the bytes into it once it is hinted. */
#define HUGE_PAGE ((size_t)2 << 20)
#define BIG_FROM (HUGE_PAGE / 4) /* at most 1.5 MiB more than asked is touched */

/* A block for an array of `bytes` (BIG_FROM or more), from the allocator with a huge page to spare (*base,
 * for the free), zeroed or not; returns the array, on a huge page's boundary and hinted over its whole
 * spans.  NULL without memory. */
static char *huge_block(size_t bytes, bool zeroed, char **base) {
  size_t span = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
  if (span < bytes || span > SIZE_MAX - HUGE_PAGE) return NULL;
  /* calloc writes none of a fresh mapping's pages */
  *base = zeroed ? mproc__calloc(1, span + HUGE_PAGE) : mproc__malloc(span + HUGE_PAGE);
  if (!*base) return NULL;
  char *p = (char *)(((uintptr_t)*base + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
  (void)mproc__plat_advise_huge(p, span);
  return p;
}

bool mproc__big_resize(mproc__big *b, size_t bytes) {
  size_t keep = b->bytes < bytes ? b->bytes : bytes;
  if (bytes < BIG_FROM) { /* small: the block is the array */
    char *nb = b->p == b->base ? mproc__realloc(b->base, bytes) : mproc__malloc(bytes);
    if (!nb) return false;
    if (b->p != b->base) { /* a large one shrunk */
      memcpy(nb, b->p, keep);
      mproc__free(b->base);
    }
    *b = (mproc__big){.base = nb, .p = nb, .bytes = bytes};
    return true;
  }
  /* a new block, hinted before any byte of it is written (pages written before the hint stay 4 KiB ones:
   * a realloc's copy, or a move of the bytes, would write them), then the bytes kept */
  char *nb, *np = huge_block(bytes, false, &nb);
  if (!np) return false;
  if (keep) memcpy(np, b->p, keep);
  mproc__free(b->base);
  *b = (mproc__big){.base = nb, .p = np, .bytes = bytes};
  return true;
}

bool mproc__big_zeroed(mproc__big *b, size_t bytes) {
  char *nb = NULL, *np;
  if (bytes < BIG_FROM) /* as mproc__big_resize: small, the block is the array */
    np = nb = mproc__calloc(1, bytes);
  else
    np = huge_block(bytes, true, &nb);
  if (!np) return false;
  mproc__free(b->base);
  *b = (mproc__big){.base = nb, .p = np, .bytes = bytes};
  return true;
}

void mproc__big_free(mproc__big *b) {
  mproc__free(b->base);
  *b = (mproc__big){0};
}
