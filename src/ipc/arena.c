/* arena.c: the shared arena (see arena.h) and mproc_shared_alloc() / mproc_shared_free().
 *
 * Bookkeeping lives in the owner's heap: a sorted array of free extents (first fit, merged on free) and a
 * sorted array of allocated blocks (found by binary search on free).  Offsets are from the arena's base. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/env.h"
#include "internal.h"
#include "ipc/arena.h"

#define ARENA_MIN ((size_t)1 << 30)
#define ARENA_MAX ((size_t)1 << 44)
#define BIG_ALIGN ((size_t)2 << 20)

typedef struct extent {
  size_t off, len;
} extent;

typedef struct vec {
  extent *v;
  size_t n, cap;
} vec;

static struct {
  pthread_mutex_t lock;
  pid_t owner;
  int refs;
  int fd;
  unsigned char *base;
  size_t size;
  vec free_, used;
} A = {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1, NULL, 0, {NULL, 0, 0}, {NULL, 0, 0}};

static void *place_at; /* mproc__arena_place_at(); under A.lock */

static bool vec_insert(vec *x, size_t at, extent e) {
  if (x->n == x->cap) {
    size_t cap = x->cap ? 2 * x->cap : 16;
    extent *v = mproc__realloc(x->v, cap * sizeof *v);
    if (!v) return false;
    x->v = v;
    x->cap = cap;
  }
  memmove(x->v + at + 1, x->v + at, (x->n - at) * sizeof *x->v);
  x->v[at] = e;
  x->n++;
  return true;
}

static void vec_remove(vec *x, size_t at) {
  memmove(x->v + at, x->v + at + 1, (x->n - at - 1) * sizeof *x->v);
  x->n--;
}

/* First index whose off is >= off. */
static size_t vec_lower(const vec *x, size_t off) {
  size_t lo = 0, hi = x->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (x->v[mid].off < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* MPROC_SHARED_BYTES (core/env.c); else, or when it is bad, the machine's memory. */
static size_t arena_size(void) {
  size_t size = 0;
  bool set = mproc__env_shared_bytes(ARENA_MAX, &size);
  if (!size) size = mproc__plat_phys_memory();
  size_t page = mproc__plat_page_size();
  size = (size + BIG_ALIGN - 1) / BIG_ALIGN * BIG_ALIGN;
  if (size < ARENA_MIN && !set) size = ARENA_MIN;
  if (size < page) size = page;
  if (size > ARENA_MAX) size = ARENA_MAX;
  return size;
}

/* In a process forked from the owner, the state describes the parent's arena: the mapping stays (data in
 * it may be in use), the bookkeeping is not ours.  Lock held. */
static void forget_inherited(void) {
  if (A.owner == getpid() || !A.base) return;
  if (A.fd >= 0) mproc__plat_close(A.fd);
  A.fd = -1;
  A.base = NULL;
  A.size = 0;
  A.refs = 0;
  A.free_ = (vec){NULL, 0, 0}; /* the copies of the parent's arrays are left to die with the process */
  A.used = (vec){NULL, 0, 0};
}

static int create_locked(void) {
  size_t size = arena_size();
  int fd = mproc__plat_shm_create_fd("mproc-shared", size);
  if (fd < 0) return fd;
  int err = 0;
  void *p = place_at ? mproc__plat_shm_map_at(place_at, fd, size, &err) : NULL;
  if (!p) p = mproc__plat_shm_map(fd, size, &err);
  if (!p) {
    mproc__plat_close(fd);
    return err;
  }
  if (!vec_insert(&A.free_, 0, (extent){0, size})) {
    mproc__plat_shm_unmap(p, size);
    mproc__plat_close(fd);
    return MPROC_ENOMEM;
  }
  A.fd = fd;
  A.base = p;
  A.size = size;
  A.owner = getpid();
  return 0;
}

static void unref_locked(void) {
  if (--A.refs > 0) return;
  mproc__plat_shm_unmap(A.base, A.size);
  mproc__plat_close(A.fd);
  mproc__free(A.free_.v);
  mproc__free(A.used.v);
  A.free_ = (vec){NULL, 0, 0};
  A.used = (vec){NULL, 0, 0};
  A.fd = -1;
  A.base = NULL;
  A.size = 0;
  A.refs = 0;
}

int mproc__arena_ref(void) {
  pthread_mutex_lock(&A.lock);
  forget_inherited();
  int r = 0;
  if (!A.base) r = create_locked();
  if (r == 0) A.refs++;
  pthread_mutex_unlock(&A.lock);
  return r;
}

void mproc__arena_unref(void) {
  pthread_mutex_lock(&A.lock);
  if (A.owner == getpid() && A.base) unref_locked();
  pthread_mutex_unlock(&A.lock);
}

bool mproc__arena_has(const void *p, size_t len) {
  /* base and size change only while no pool or block exists: a caller asking about its own pool's
   * memory reads stable values */
  const unsigned char *base = __atomic_load_n(&A.base, __ATOMIC_ACQUIRE);
  size_t size = __atomic_load_n(&A.size, __ATOMIC_RELAXED);
  const unsigned char *q = p;
  if (!base || !q || q < base) return false;
  size_t off = (size_t)(q - base);
  return off < size && len <= size - off;
}

void *mproc__arena_alloc(size_t size, int *err) {
  if (size == 0 || size > ARENA_MAX) {
    *err = size ? MPROC_ENOMEM : MPROC_EINVAL;
    return NULL;
  }
  size_t page = mproc__plat_page_size();
  size_t align = size >= BIG_ALIGN ? BIG_ALIGN : page;
  size_t len = (size + page - 1) / page * page;
  pthread_mutex_lock(&A.lock);
  forget_inherited();
  int r = 0;
  if (!A.base) r = create_locked();
  void *p = NULL;
  for (size_t i = 0; r == 0 && i < A.free_.n; i++) {
    extent f = A.free_.v[i];
    uintptr_t base = (uintptr_t)A.base; /* aligned as addresses, not as offsets */
    size_t start = (size_t)((base + f.off + align - 1) / align * align - base);
    if (start < f.off || start - f.off > f.len || f.len - (start - f.off) < len) continue;
    size_t at = vec_lower(&A.used, start);
    if (!vec_insert(&A.used, at, (extent){start, len})) {
      r = MPROC_ENOMEM;
      break;
    }
    /* split f into what lies before and after the block */
    extent before = {f.off, start - f.off}, after = {start + len, f.off + f.len - (start + len)};
    if (before.len && after.len) {
      A.free_.v[i] = before;
      if (!vec_insert(&A.free_, i + 1, after)) {
        A.free_.v[i] = f;
        vec_remove(&A.used, at);
        r = MPROC_ENOMEM;
        break;
      }
    } else if (before.len) {
      A.free_.v[i] = before;
    } else if (after.len) {
      A.free_.v[i] = after;
    } else {
      vec_remove(&A.free_, i);
    }
    p = A.base + start;
    A.refs++;
    break;
  }
  if (!p && r == 0) r = MPROC_ENOMEM;
  if (!p && A.base && A.refs == 0) {
    A.refs = 1; /* made just now and unused: release it again */
    unref_locked();
  }
  pthread_mutex_unlock(&A.lock);
  if (!p) *err = r;
  return p;
}

int mproc__arena_free(void *p) {
  pthread_mutex_lock(&A.lock);
  int r = MPROC_EINVAL;
  if (A.base && A.owner == getpid() && mproc__arena_has(p, 0)) {
    size_t off = (size_t)((unsigned char *)p - A.base);
    size_t at = vec_lower(&A.used, off);
    if (at < A.used.n && A.used.v[at].off == off) {
      extent b = A.used.v[at];
      /* the pages go back to the system in every process that maps them */
      if (mproc__plat_shm_discard(A.fd, b.off, b.len) != 0)
        memset(A.base + b.off, 0, b.len); /* still zeroed */
      vec_remove(&A.used, at);
      size_t i = vec_lower(&A.free_, b.off);
      bool merge_prev = i > 0 && A.free_.v[i - 1].off + A.free_.v[i - 1].len == b.off;
      bool merge_next = i < A.free_.n && b.off + b.len == A.free_.v[i].off;
      if (merge_prev && merge_next) {
        A.free_.v[i - 1].len += b.len + A.free_.v[i].len;
        vec_remove(&A.free_, i);
      } else if (merge_prev) {
        A.free_.v[i - 1].len += b.len;
      } else if (merge_next) {
        A.free_.v[i].off = b.off;
        A.free_.v[i].len += b.len;
      } else if (!vec_insert(&A.free_, i, b)) {
        /* no memory for the bookkeeping: the range stays unusable until the arena goes, nothing worse */
      }
      r = 0;
      unref_locked();
    }
  }
  pthread_mutex_unlock(&A.lock);
  return r;
}

int mproc__arena_mapping(void **addr, size_t *size) {
  pthread_mutex_lock(&A.lock);
  forget_inherited();
  int fd = A.base ? A.fd : -ENOENT;
  if (A.base) {
    *addr = A.base;
    *size = A.size;
  }
  pthread_mutex_unlock(&A.lock);
  return fd;
}

void mproc__arena_place_at(void *addr) {
  pthread_mutex_lock(&A.lock);
  place_at = addr;
  pthread_mutex_unlock(&A.lock);
}

int mproc__arena_blocks(mproc__arena_block **out, size_t *n, void **base, size_t *size) {
  pthread_mutex_lock(&A.lock);
  forget_inherited();
  int r = A.base ? 0 : -ENOENT;
  mproc__arena_block *v = NULL;
  if (r == 0 && A.used.n) {
    v = mproc__malloc(A.used.n * sizeof *v);
    if (!v) r = MPROC_ENOMEM;
    for (size_t i = 0; v && i < A.used.n; i++) v[i] = (mproc__arena_block){A.used.v[i].off, A.used.v[i].len};
  }
  if (r == 0) {
    *out = v;
    *n = v ? A.used.n : 0;
    *base = A.base;
    *size = A.size;
  }
  pthread_mutex_unlock(&A.lock);
  return r;
}

/* ---- the public face ---- */

int mproc_shared_alloc(void **out, size_t size) {
  if (!out) return -EINVAL;
  int err = 0;
  void *p = mproc__arena_alloc(size, &err);
  if (!p) return err < 0 ? err : -ENOMEM;
  *out = p;
  return 0;
}

int mproc_shared_free(void *p) {
  if (!p) return 0;
  return mproc__arena_free(p);
}

int mproc_shared_contains(const void *p, size_t len) {
  pthread_mutex_lock(&A.lock);
  forget_inherited();
  pthread_mutex_unlock(&A.lock);
  return mproc__arena_has(p, len);
}
