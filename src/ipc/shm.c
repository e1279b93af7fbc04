/* shm.c: shared memory segments, shared arrays and values, on the platform's memfd and shm_open calls. */
#include "internal.h"

struct mproc_shm {
  void *addr;
  size_t size;
  int fd;      /* kept for mproc_shm_send; -1 once unused */
  char *name;  /* named segments */
  int creator; /* unlinks the name on destroy */
};

/* "." and ".." would name /dev/shm itself and its parent (glibc's shm_open adds no check of its own). */
static int valid_name(const char *name) {
  size_t n = strlen(name);
  return n > 0 && n <= 200 && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int wrap(mproc_shm **out, int fd, size_t size, const char *name, int creator) {
  int err = 0;
  void *addr = mproc__plat_shm_map(fd, size, &err);
  if (!addr) return err;
  mproc_shm *s = mproc__calloc(1, sizeof *s);
  char *nm = name ? mproc__strdup(name) : NULL;
  if (!s || (name && !nm)) {
    mproc__free(s);
    mproc__free(nm);
    mproc__plat_shm_unmap(addr, size);
    return MPROC_ENOMEM;
  }
  *s = (mproc_shm){addr, size, fd, nm, creator};
  *out = s;
  return 0;
}

int mproc_shm_create(mproc_shm **out, size_t size, const mproc_shm_opts *opts) {
  if (!out || size == 0 || (opts && opts->name && !valid_name(opts->name))) return MPROC_EINVAL;
  const char *name = opts ? opts->name : NULL;
  int fd = name ? mproc__plat_shm_open_named(name, 1, &size) : mproc__plat_shm_create_fd("mproc-shm", size);
  if (fd < 0) return fd;
  int r = wrap(out, fd, size, name, 1);
  if (r < 0) {
    mproc__plat_close(fd);
    if (name) mproc__plat_shm_unlink_named(name);
  }
  return r;
}

int mproc_shm_open(mproc_shm **out, const char *name) {
  if (!out || !name || !valid_name(name)) return MPROC_EINVAL;
  size_t size = 0;
  int fd = mproc__plat_shm_open_named(name, 0, &size);
  if (fd < 0) return fd;
  if (size == 0) {
    mproc__plat_close(fd);
    return MPROC_EINVAL;
  }
  int r = wrap(out, fd, size, name, 0);
  if (r < 0) mproc__plat_close(fd);
  return r;
}

int mproc_shm_send(mproc_shm *seg, int sock) {
  if (!seg || sock < 0) return MPROC_EINVAL;
  uint64_t size = seg->size;
  return mproc__plat_send_fd(sock, seg->fd, &size, sizeof size);
}

int mproc_shm_recv(mproc_shm **out, int sock) {
  if (!out || sock < 0) return MPROC_EINVAL;
  int fd = -1;
  uint64_t size = 0;
  int r = mproc__plat_recv_fd(sock, &fd, &size, sizeof size);
  if (r < 0) return r;
  long long real = mproc__plat_fd_size(fd);
  if (real < 0 || (uint64_t)real < size || size == 0) {
    mproc__plat_close(fd);
    return MPROC_EBADMSG;
  }
  r = wrap(out, fd, (size_t)size, NULL, 0);
  if (r < 0) mproc__plat_close(fd);
  return r;
}

void *mproc_shm_addr(const mproc_shm *seg) { return seg ? seg->addr : NULL; }
size_t mproc_shm_size(const mproc_shm *seg) { return seg ? seg->size : 0; }
const char *mproc_shm_name(const mproc_shm *seg) { return seg ? seg->name : NULL; }

void mproc_shm_destroy(mproc_shm *seg) {
  if (!seg) return;
  mproc__plat_shm_unmap(seg->addr, seg->size);
  mproc__plat_close(seg->fd);
  if (seg->name && seg->creator) mproc__plat_shm_unlink_named(seg->name);
  mproc__free(seg->name);
  mproc__free(seg);
}

/* ---- arrays and values: [header with the optional lock][data, 64-aligned] in one shared mapping ---- */

struct mproc_array {
  _Alignas(64) size_t elem_size, n, bytes;
  mproc_lock *lock; /* inside the mapping, or NULL */
  _Alignas(64) unsigned char lock_mem[128];
  _Alignas(64) unsigned char data[];
};

int mproc_array_create(mproc_array **out, size_t elem_size, size_t n, int with_lock) {
  if (!out || elem_size == 0 || n == 0 || n > (SIZE_MAX - sizeof(struct mproc_array)) / elem_size)
    return MPROC_EINVAL;
  _Static_assert(sizeof(((struct mproc_array *)0)->lock_mem) >= 64, "lock space");
  if (mproc_lock_size() > sizeof(((struct mproc_array *)0)->lock_mem)) return MPROC_ENOMEM;
  size_t bytes = sizeof(struct mproc_array) + elem_size * n;
  int err = 0;
  mproc_array *a = mproc__plat_shm_map_anon(bytes, &err);
  if (!a) return err;
  a->elem_size = elem_size;
  a->n = n;
  a->bytes = bytes;
  if (with_lock) {
    int r = mproc_lock_init(&a->lock, a->lock_mem, 0);
    if (r < 0) {
      mproc__plat_shm_unmap(a, bytes);
      return r;
    }
  }
  *out = a;
  return 0;
}

void *mproc_array_data(const mproc_array *a) { return a ? (void *)a->data : NULL; }
size_t mproc_array_length(const mproc_array *a) { return a ? a->n : 0; }
mproc_lock *mproc_array_lock(const mproc_array *a) { return a ? a->lock : NULL; }

void mproc_array_destroy(mproc_array *a) {
  if (!a) return;
  if (a->lock) mproc_lock_destroy(a->lock);
  mproc__plat_shm_unmap(a, a->bytes);
}
