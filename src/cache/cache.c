/* cache.c: the on-disk result cache (joblib.Memory).
 *
 * Layout: <dir>/<fn_key 16 hex>/ holds one function's entries (every code version), an "info" file naming
 * the function for humans, an empty "lock" file, and per entry <key 32 hex>.e (header + data).  Concurrent
 * misses of one entry are serialised by an OFD byte lock on "lock" at an offset taken from the entry's key
 * (one shared file: creating a lock file per entry costs ~150 us on ext4 here).  key = XXH3-128 of the
 * argument bytes seeded with a hash of (code hash, version string), so a code edit or a version bump makes
 * new keys.
 *
 * Invariants and crashes: an entry appears only by renameat() of a complete temporary file (fsynced first
 * in a durable cache), so readers see all of it or nothing; a reader verifies header magic, format, sizes,
 * the key and function the header names and the XXH3-64 checksum of the stored bytes, and treats any mismatch
 * as corrupt (removed, recomputed).  Only regular files and directories owned by this user are trusted.  A
 * process killed while computing holds only a byte lock, which the kernel releases: the next waiter computes.
 * A killed writer leaves at most a ".tmp." file, removed by clear.  LRU order is the entry file's mtime, set
 * to "now" on every hit.  Every path is resolved from a descriptor the handle holds (the cache directory,
 * and its parent for recreating it), never from the working directory.  Counters are per handle (atomics:
 * a handle may be used by several threads).
 *
 * An entry handle (mproc_cache_entry) names a key, not a file: each of its calls opens the entry anew.  It
 * holds a reference on its cache's memory (refs, under the lock), so that it may outlive
 * mproc_cache_close(), which closes the descriptors at once; its calls then say MPROC_ECLOSED. */
#include "core/env.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#include <zstd.h>

#include "cache/entry.h"
#include "cache/fnid.h"
#include "core/task_local.h"
#include "platform/platform.h"

#define FNID_SLOTS 32
#define READ_CHUNK ((size_t)2 << 20) /* hashed while still in the CPU's cache */
#define HUGE_PAGE ((size_t)2 << 20)

struct mproc_cache {
  char *dir;    /* as given, for messages */
  char *base;   /* its last component, created again under parentfd when it is removed */
  int dirfd;    /* replaced in place (mproc__plat_replace_fd) when the directory is created again */
  int parentfd; /* -1 when dir names no parent ("." or "/") */
  int level;    /* -1 none, else zstd level */
  bool durable; /* fsync entries before the rename */
  int ignore_code_hash, wait, verbose;
  size_t mmap_threshold;
  uint64_t version_hash, max_raw;
  uid_t uid;
  mproc_cache_validate_fn validate; /* the handle's validity callback (NULL: none) */
  void *validate_user;
  pthread_mutex_t lock; /* guards fnids, the recreation of the directory, refs and closed */
  int refs;             /* entry handles not yet released */
  bool closed;          /* mproc_cache_close() was called: the descriptors are closed */
  struct {
    mproc_task_fn fn;
    mproc__fnid id;
  } fnids[FNID_SLOTS];
  int nfnids;
  uint64_t hits, misses, stores, store_failures, evictions, corrupt, waits, nocode;
};

struct mproc_cache_result {
  void *data;
  size_t len;
  size_t map_len; /* > 0: data is an anonymous mapping of map_len bytes */
  int hit, store_error;
  char msg[MPROC_TASK_MSG_MAX];
};

/* Opens the directory base under parentfd, creating it (0700) when missing: refuses a symbolic link
 * (-ELOOP), anything but a directory (-ENOTDIR) and a directory of another user (-EPERM). */
static int open_top(int parentfd, const char *base, uid_t uid) {
  int fd = -ENOENT;
  for (int attempt = 0; attempt < 2; attempt++) {
    fd = mproc__plat_openat(parentfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (fd != -ENOENT || attempt) break;
    int rc = mproc__plat_mkdirat(parentfd, base, 0700);
    if (rc < 0 && rc != -EEXIST) return rc;
  }
  if (fd == -ENOTDIR) { /* O_NOFOLLOW | O_DIRECTORY says ENOTDIR for a symbolic link */
    struct stat st;
    if (mproc__plat_lstatat(parentfd, base, &st) == 0 && S_ISLNK(st.st_mode)) return -ELOOP;
  }
  if (fd < 0) return fd;
  struct stat st;
  int rc = mproc__plat_fstat(fd, &st);
  if (rc == 0 && !S_ISDIR(st.st_mode)) rc = -ENOTDIR;
  if (rc == 0 && st.st_uid != uid) rc = -EPERM;
  if (rc < 0) {
    mproc__plat_close(fd);
    return rc;
  }
  return fd;
}

int mproc_cache_open(mproc_cache **out, const char *dir, const mproc_cache_opts *opts) {
  mproc_cache_opts o = opts ? *opts : (mproc_cache_opts){0};
  if (!out || !dir || !dir[0] || o.compress_level > 19 || o.compress_level < -1) return MPROC_EINVAL;
  mproc_cache *c = mproc__calloc(1, sizeof *c);
  char *d = mproc__strdup(dir), *p = mproc__strdup(dir);
  if (!c || !d || !p) {
    mproc__free(c);
    mproc__free(d);
    mproc__free(p);
    return MPROC_ENOMEM;
  }
  /* "link/" and "link/." would resolve the link before O_NOFOLLOW could see it: the last component is the
   * name itself, without trailing slashes or "." */
  size_t n = strlen(p);
  for (;;) {
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    if (n > 2 && p[n - 1] == '.' && p[n - 2] == '/')
      p[n -= 2] = '\0';
    else
      break;
  }
  char *slash = strrchr(p, '/'), *base = p;
  const char *parent = ".";
  if (slash == p && p[1]) { /* "/name" */
    parent = "/";
    base = p + 1;
  } else if (slash && slash != p) {
    *slash = '\0';
    parent = p;
    base = slash + 1;
  }
  int named = strcmp(base, "/") != 0 && strcmp(base, ".") != 0 && strcmp(base, "..") != 0;
  c->uid = mproc__plat_euid();
  c->parentfd = -1;
  int fd;
  if (named) {
    int pfd = mproc__plat_dir_handle(AT_FDCWD, parent);
    fd = pfd < 0 ? pfd : open_top(pfd, base, c->uid);
    if (fd >= 0)
      c->parentfd = pfd;
    else if (pfd >= 0)
      mproc__plat_close(pfd);
  } else {
    fd = open_top(AT_FDCWD, d, c->uid); /* ".", "/", "..": the last component is no link */
  }
  char *b = named ? mproc__strdup(base) : NULL;
  mproc__free(p);
  if (fd < 0 || (named && !b)) {
    if (fd >= 0) mproc__plat_close(fd);
    mproc__plat_close(c->parentfd);
    mproc__free(b);
    mproc__free(d);
    mproc__free(c);
    return fd < 0 ? fd : MPROC_ENOMEM;
  }
  c->dir = d;
  c->base = b;
  c->dirfd = fd;
  c->level = o.compress_level < 0 ? -1 : (o.compress_level == 0 ? 3 : o.compress_level);
  c->durable = o.durable != 0;
  c->ignore_code_hash = o.ignore_code_hash;
  c->wait = !o.no_wait_for_concurrent;
  c->verbose = o.verbose || mproc__env_verbose() > 0;
  c->mmap_threshold = o.mmap_threshold ? o.mmap_threshold : (size_t)1 << 20;
  c->version_hash = o.version ? XXH3_64bits(o.version, strlen(o.version)) : 0;
  c->validate = o.validate;
  c->validate_user = o.validate_user;
  c->max_raw = mproc__plat_phys_memory();
  if (c->max_raw == 0 || c->max_raw > SIZE_MAX / 2) c->max_raw = SIZE_MAX / 2;
  pthread_mutex_init(&c->lock, NULL);
  *out = c;
  return 0;
}

static void cache_free(mproc_cache *c) {
  pthread_mutex_destroy(&c->lock);
  mproc__free(c->dir);
  mproc__free(c->base);
  mproc__free(c);
}

void mproc_cache_close(mproc_cache *c) {
  if (!c) return;
  pthread_mutex_lock(&c->lock);
  c->closed = true;
  mproc__plat_close(c->dirfd);
  mproc__plat_close(c->parentfd);
  c->dirfd = c->parentfd = -1;
  bool keep = c->refs > 0; /* the last entry handle frees it */
  pthread_mutex_unlock(&c->lock);
  if (!keep) cache_free(c);
}

/* The cache directory was removed (creating in it says ENOENT): creates it again under its parent with
 * the rules of mproc_cache_open, and points the handle's descriptor at it. */
static int recreate_dir(mproc_cache *c) {
  if (c->parentfd < 0) return -ENOENT;
  pthread_mutex_lock(&c->lock);
  struct stat st;
  int rc = 0;
  /* another thread may have done it since */
  if (mproc__plat_fstat(c->dirfd, &st) != 0 || st.st_nlink == 0) {
    int fd = open_top(c->parentfd, c->base, c->uid);
    if (fd < 0) {
      rc = fd;
    } else {
      rc = mproc__plat_replace_fd(fd, c->dirfd);
      mproc__plat_close(fd);
    }
  }
  pthread_mutex_unlock(&c->lock);
  return rc;
}

/* The identity of fn, remembered per handle (ELF lookups read files). */
static int get_fnid(mproc_cache *c, mproc_task_fn fn, mproc__fnid *id) {
  pthread_mutex_lock(&c->lock);
  for (int i = 0; i < c->nfnids; i++)
    if (c->fnids[i].fn == fn) {
      *id = c->fnids[i].id;
      pthread_mutex_unlock(&c->lock);
      return 0;
    }
  pthread_mutex_unlock(&c->lock);
  int rc = mproc__fnid_get(fn, id);
  if (rc < 0) return rc;
  pthread_mutex_lock(&c->lock);
  int slot = c->nfnids < FNID_SLOTS ? c->nfnids++ : (int)(id->fn_key % FNID_SLOTS);
  c->fnids[slot].fn = fn;
  c->fnids[slot].id = *id;
  pthread_mutex_unlock(&c->lock);
  return 0;
}

typedef struct keyinfo {
  mproc__fnid id;
  uint64_t seed;
  XXH128_hash_t h;
  char fndir[17];
  char name[40];     /* <32 hex>.e */
  uint64_t lock_off; /* its byte in the function's lock file */
} keyinfo;

/* Seeds of keys not made from all the argument's bytes: such keys never match those (nor each other). */
#define KEY_TAG_EXPLICIT 0x79656b2d6369786dull /* "mxic-key" */
#define KEY_TAG_IGNORE 0x6e67692d6369786dull   /* "mxic-ign" */

static int span_cmp(const void *a, const void *b) {
  const mproc_cache_span *x = a, *y = b;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  return (x->len > y->len) - (x->len < y->len);
}

/* The key of the argument without the ignored ranges: the ranges sorted and merged (so that any order and
 * overlap of one set of bytes gives one key) go into the seed, the other bytes into the hash. */
static int hash_ignoring(const void *arg, size_t len, const mproc_cache_span *ignore, size_t n,
                         const uint64_t seedin[2], keyinfo *k) {
  mproc_cache_span *v = mproc__malloc(n * sizeof *v);
  if (!v) return MPROC_ENOMEM;
  memcpy(v, ignore, n * sizeof *v);
  qsort(v, n, sizeof *v, span_cmp);
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i].len == 0) continue;
    if (m && v[i].offset <= v[m - 1].offset + v[m - 1].len) {
      size_t end = v[i].offset + v[i].len;
      if (end > v[m - 1].offset + v[m - 1].len) v[m - 1].len = end - v[m - 1].offset;
    } else {
      v[m++] = v[i];
    }
  }
  _Alignas(64) XXH3_state_t st;
  uint64_t head[3] = {seedin[0], seedin[1], KEY_TAG_IGNORE};
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, head, sizeof head);
  for (size_t i = 0; i < m; i++) {
    uint64_t span[2] = {v[i].offset, v[i].len};
    XXH3_64bits_update(&st, span, sizeof span);
  }
  k->seed = XXH3_64bits_digest(&st);
  XXH3_128bits_reset_withSeed(&st, k->seed);
  size_t at = 0;
  for (size_t i = 0; i < m; i++) {
    XXH3_128bits_update(&st, (const char *)arg + at, v[i].offset - at);
    at = v[i].offset + v[i].len;
  }
  if (at < len) XXH3_128bits_update(&st, (const char *)arg + at, len - at);
  k->h = XXH3_128bits_digest(&st);
  mproc__free(v);
  return 0;
}

/* The options' own checks, before any work: -EINVAL when inconsistent. */
static int check_call_opts(const mproc_cache_call_opts *o, size_t len) {
  if (!o) return 0;
  if ((!o->key && o->key_len) || (!o->ignore && o->n_ignore) || (o->key && o->n_ignore)) return MPROC_EINVAL;
  for (size_t i = 0; i < o->n_ignore; i++)
    if (o->ignore[i].offset > len || o->ignore[i].len > len - o->ignore[i].offset) return MPROC_EINVAL;
  return 0;
}

static int make_key(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                    const mproc_cache_call_opts *o, keyinfo *k) {
  int rc = check_call_opts(o, len);
  if (rc < 0) return rc;
  if ((rc = get_fnid(c, fn, &k->id)) < 0) return rc;
  uint64_t seedin[2] = {c->ignore_code_hash ? 0 : k->id.code_hash, c->version_hash};
  if (o && o->key) {
    uint64_t tagged[3] = {seedin[0], seedin[1], KEY_TAG_EXPLICIT};
    k->seed = XXH3_64bits(tagged, sizeof tagged);
    k->h = XXH3_128bits_withSeed(o->key_len ? o->key : "", o->key_len, k->seed);
  } else if (o && o->n_ignore) {
    if ((rc = hash_ignoring(arg, len, o->ignore, o->n_ignore, seedin, k)) < 0) return rc;
  } else {
    k->seed = XXH3_64bits(seedin, sizeof seedin);
    k->h = XXH3_128bits_withSeed(len ? arg : "", len, k->seed);
  }
  snprintf(k->fndir, sizeof k->fndir, "%016" PRIx64, k->id.fn_key);
  snprintf(k->name, sizeof k->name, "%016" PRIx64 "%016" PRIx64 ".e", k->h.high64, k->h.low64);
  k->lock_off = k->h.low64;
  return 0;
}

/* Opens (creating with 0700 if create) the function's directory; writes its info file when created.
 * Refuses a directory of another user (-EPERM): its entries could be anybody's. */
static int open_fndir(mproc_cache *c, const keyinfo *k, int create) {
  int fd = mproc__plat_openat(c->dirfd, k->fndir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  if (fd == -ENOENT && create) { /* the directory's first entry: tried after the open, which hits need */
    int rc = mproc__plat_mkdirat(c->dirfd, k->fndir, 0700);
    if (rc == -ENOENT && (rc = recreate_dir(c)) == 0) rc = mproc__plat_mkdirat(c->dirfd, k->fndir, 0700);
    if (rc < 0 && rc != -EEXIST) return rc;
    fd = mproc__plat_openat(c->dirfd, k->fndir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (rc == 0 && fd >= 0) {
      int i = mproc__plat_openat(fd, "info", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, 0600);
      if (i >= 0) {
        char buf[512];
        int n = snprintf(buf, sizeof buf, "function %s\ncode_hash %016" PRIx64 "%s\n", k->id.label,
                         k->id.code_hash, k->id.code_known ? "" : " (unknown extent)");
        if (n > 0 && mproc__plat_sys.write(i, buf, (size_t)n) < 0) { /* informative only */
        }
        mproc__plat_close(i);
      }
    }
  }
  if (fd < 0) return fd;
  struct stat st;
  int rc = mproc__plat_fstat(fd, &st);
  if (rc == 0 && st.st_uid != c->uid) rc = -EPERM;
  if (rc < 0) {
    mproc__plat_close(fd);
    return rc;
  }
  return fd;
}

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len) {
    ssize_t n = mproc__plat_sys.read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return MPROC_ECORRUPT; /* truncated */
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads len bytes into dst (or through a bounce buffer when dst is NULL) and checks their XXH3-64. */
static int read_hashed(int fd, unsigned char *dst, size_t len, uint64_t want) {
  _Alignas(64) XXH3_state_t st;
  XXH3_64bits_reset(&st);
  unsigned char *bounce = NULL;
  if (!dst && len && !(bounce = mproc__malloc(len < READ_CHUNK ? len : READ_CHUNK))) return MPROC_ENOMEM;
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0;) {
    size_t n = len - off < READ_CHUNK ? len - off : READ_CHUNK;
    unsigned char *p = dst ? dst + off : bounce;
    if ((rc = read_full(fd, p, n)) == 0) XXH3_64bits_update(&st, p, n);
    off += n;
  }
  mproc__free(bounce);
  if (rc == 0 && XXH3_64bits_digest(&st) != want) rc = MPROC_ECORRUPT;
  return rc;
}

/* Memory for a result of n bytes: results of mmap_threshold bytes or more get their own anonymous mapping,
 * whole huge pages aligned as such (where the system gives them: one fault per 2 MiB instead of one per
 * page), smaller ones the heap.  Never a mapping of the entry file, which another process may truncate
 * under the reader (SIGBUS).  *map_len: the mapping's length, 0 for the heap. */
static void *result_alloc(mproc_cache *c, size_t n, size_t *map_len) {
  *map_len = 0;
  if (n && n >= c->mmap_threshold && n <= SIZE_MAX / 2) {
    size_t len = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    char *p = mproc__plat_sys.mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                   -1, 0);
    if (p != MAP_FAILED) {
      char *a = (char *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
      if (a > p) mproc__plat_shm_unmap(p, (size_t)(a - p));
      mproc__plat_shm_unmap(a + len, (size_t)(p + HUGE_PAGE - a));
      mproc__plat_advise_huge(a, len);
      *map_len = len;
      return a;
    }
  }
  return mproc__malloc(n ? n : 1);
}

static void result_free(void *p, size_t map_len) {
  if (map_len)
    mproc__plat_shm_unmap(p, map_len);
  else
    mproc__free(p);
}

/* The header's own checks, whatever key it is read for. */
static int header_sane(const mproc_cache *c, const mproc__entry_header *h, uint64_t file_size) {
  if (h->magic != MPROC__ENTRY_MAGIC || h->format != MPROC__ENTRY_FORMAT ||
      (h->flags & ~MPROC__ENTRY_ZSTD) != 0 || h->header_check != mproc__entry_header_check(h))
    return 0;
  if (file_size < sizeof *h || h->stored_size != file_size - sizeof *h) return 0;
  /* the raw size decides an allocation: no more than the stored bytes can expand to, nor than memory */
  if (h->raw_size > c->max_raw) return 0;
  if (h->flags & MPROC__ENTRY_ZSTD) return h->raw_size / MPROC__ZSTD_MAX_EXPANSION <= h->stored_size;
  return h->raw_size == h->stored_size;
}

static int header_valid(const mproc_cache *c, const keyinfo *k, const mproc__entry_header *h,
                        uint64_t file_size) {
  /* the entry is the one of this key and function, not another's file under this name */
  if (h->fn_key != k->id.fn_key || h->key_seed != k->seed || h->key_hi != k->h.high64 ||
      h->key_lo != k->h.low64)
    return 0;
  return header_sane(c, h, file_size);
}

static int64_t mtime_ns(const struct stat *st) {
  return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* What a validity callback and an entry handle see of a valid entry. */
static void fill_info(mproc_cache_entry_info *i, const char *name, uint64_t fn_key, const struct stat *st,
                      const mproc__entry_header *h) {
  memset(i, 0, sizeof *i);
  memcpy(i->key, name, 32);
  i->fn_key = fn_key;
  i->size = (uint64_t)st->st_size;
  i->accessed_ns = mtime_ns(st);
  i->result_len = h->raw_size;
  i->created_ns = h->created_ns;
  i->duration_ns = h->duration_ns;
}

/* Opens the entry file name and reads its header: 1 with *fdp open (the caller closes it), 0 when absent,
 * MPROC_ECORRUPT (not a regular file of this user, or shorter than a header), or another negative code. */
static int read_header(const mproc_cache *c, int fnfd, const char *name, int *fdp, struct stat *st,
                       mproc__entry_header *h) {
  /* O_NONBLOCK: a FIFO planted under the entry's name would block open() for a writer forever; O_NOCTTY: a
   * terminal planted there would become the controlling terminal of a caller that leads a session */
  int fd = mproc__plat_openat(fnfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
  /* ELOOP: a symbolic link; ENXIO: a socket (or a device without its driver): not an entry */
  if (fd < 0) return fd == -ENOENT ? 0 : fd == -ELOOP || fd == -ENXIO ? MPROC_ECORRUPT : fd;
  int rc = mproc__plat_fstat(fd, st);
  if (rc < 0) goto fail;
  if (!S_ISREG(st->st_mode) || st->st_uid != c->uid || (uint64_t)st->st_size < sizeof *h) {
    rc = MPROC_ECORRUPT;
    goto fail;
  }
  if ((rc = read_full(fd, h, sizeof *h)) < 0) goto fail;
  *fdp = fd;
  return 1;
fail:
  mproc__plat_close(fd);
  return rc;
}

/* load_entry's answer for an entry that its validity callback refused. */
#define LOAD_INVALID 2

typedef struct validity {
  mproc_cache_validate_fn fn;
  void *user;
} validity;

static validity validity_of(const mproc_cache *c, const mproc_cache_call_opts *o) {
  if (o && o->validate) return (validity){o->validate, o->validate_user};
  return (validity){c->validate, c->validate_user};
}

/* Loads the entry: 1 and r filled, 0 when absent, MPROC_ECORRUPT (not a regular file of this user, or not
 * a valid entry of this key), LOAD_INVALID (the validity callback v refused it; v->fn NULL: none), or
 * another negative code.  touch: set the entry's mtime (LRU).  r may be NULL (validate only). */
static int load_entry(mproc_cache *c, int fnfd, const keyinfo *k, mproc_cache_result *r, int touch,
                      const validity *v) {
  struct stat st;
  mproc__entry_header h;
  int fd = -1;
  int rc = read_header(c, fnfd, k->name, &fd, &st, &h);
  if (rc <= 0) return rc;
  unsigned char *stored = NULL, *buf = NULL;
  size_t map_len = 0;
  if (!header_valid(c, k, &h, (uint64_t)st.st_size)) {
    rc = MPROC_ECORRUPT;
    goto out;
  }
  if (v && v->fn) { /* before the result is read: a refused entry costs its header only */
    mproc_cache_entry_info info;
    fill_info(&info, k->name, k->id.fn_key, &st, &h);
    if (!v->fn(&info, v->user)) {
      rc = LOAD_INVALID;
      goto out;
    }
  }
  size_t slen = (size_t)h.stored_size, raw = (size_t)h.raw_size;
  if (h.flags & MPROC__ENTRY_ZSTD) {
    if (!(stored = mproc__malloc(slen))) {
      rc = MPROC_ENOMEM;
      goto out;
    }
    if ((rc = read_hashed(fd, stored, slen, h.checksum)) < 0) goto out;
    if (ZSTD_getFrameContentSize(stored, slen) != h.raw_size) {
      rc = MPROC_ECORRUPT;
      goto out;
    }
    if (r) {
      if (!(buf = result_alloc(c, raw, &map_len))) {
        rc = MPROC_ENOMEM;
        goto out;
      }
      size_t got = ZSTD_decompress(buf, raw, stored, slen);
      if (ZSTD_isError(got) || got != raw) {
        rc = MPROC_ECORRUPT;
        goto out;
      }
    }
  } else {
    if (r && !(buf = result_alloc(c, raw, &map_len))) {
      rc = MPROC_ENOMEM;
      goto out;
    }
    if ((rc = read_hashed(fd, buf, slen, h.checksum)) < 0) goto out;
  }
  if (r) {
    r->data = buf;
    r->len = raw;
    r->map_len = map_len;
    buf = NULL;
  }
  if (touch) mproc__plat_touch(fd);
  rc = 1;
out:
  if (buf) result_free(buf, map_len);
  mproc__free(stored);
  mproc__plat_close(fd);
  return rc;
}

static int write_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = mproc__plat_sys.write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return MPROC_EIO;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Stores data as the entry: temporary file, fsync (durable caches), then rename.  Returns 0 or a negative
 * code, and leaves no temporary file behind on failure. */
static int store_entry(mproc_cache *c, int fnfd, const keyinfo *k, const void *data, size_t len,
                       int64_t duration_ns) {
  static unsigned counter;
  mproc__entry_header h = {.magic = MPROC__ENTRY_MAGIC,
                           .format = MPROC__ENTRY_FORMAT,
                           .raw_size = len,
                           .created_ns = mproc__plat_realtime_ns(),
                           .duration_ns = duration_ns,
                           .code_hash = k->id.code_hash,
                           .fn_key = k->id.fn_key,
                           .key_seed = k->seed,
                           .key_hi = k->h.high64,
                           .key_lo = k->h.low64};
  void *cbuf = NULL;
  const void *sdata = data;
  size_t slen = len;
  if (c->level >= 0 && len > 0) {
    size_t bound = ZSTD_compressBound(len);
    cbuf = mproc__malloc(bound);
    if (!cbuf) return MPROC_ENOMEM;
    size_t n = ZSTD_compress(cbuf, bound, data, len, c->level);
    if (!ZSTD_isError(n) && n < len) {
      sdata = cbuf;
      slen = n;
      h.flags = MPROC__ENTRY_ZSTD;
    }
  }
  h.stored_size = slen;
  h.checksum = XXH3_64bits(sdata, slen);
  h.header_check = mproc__entry_header_check(&h);
  char tmp[96];
  snprintf(tmp, sizeof tmp, ".tmp.%ld.%u.%s", (long)mproc__plat_pid(),
           __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST), k->name);
  /* past RLIMIT_FSIZE a write raises SIGXFSZ, which would end the caller: blocked, the write says EFBIG */
  mproc__plat_xfsz_guard g;
  mproc__plat_xfsz_hold(&g);
  int rc = 0;
  int fd = mproc__plat_openat(fnfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (fd < 0) {
    rc = fd;
    goto out;
  }
  /* held until the file is renamed or removed: a temporary file nobody holds is a killed writer's, which
   * reduce removes (sweep_tmp) */
  mproc__plat_file_lock_byte(fd, 0, 0);
  if ((rc = write_full(fd, &h, sizeof h)) == 0) rc = write_full(fd, sdata, slen);
  /* durable: a power loss after the rename must not leave a name on data never written */
  if (rc == 0 && c->durable) rc = mproc__plat_fsync(fd);
  if (rc == 0 && mproc__plat_sys.renameat(fnfd, tmp, fnfd, k->name) != 0) rc = -errno;
  if (rc < 0) mproc__plat_unlinkat(fnfd, tmp, 0);
  mproc__plat_close(fd);
out:
  mproc__plat_xfsz_release(&g);
  mproc__free(cbuf);
  return rc;
}

static void say(mproc_cache *c, const char *what, const keyinfo *k) {
  if (c->verbose)
    fprintf(stderr, "[mproc cache] %s %s %.32s%s\n", what, k->id.label, k->name,
            k->id.code_known || c->ignore_code_hash ? "" : " (code hash unavailable)");
}

/* The function's lock file, or -1 when it cannot be used (read-only cache, or a file that is not this
 * user's regular file): the caller then computes without waiting. */
static int open_lock(mproc_cache *c, int fnfd) {
  int fd = mproc__plat_openat(fnfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
  if (fd < 0) return -1;
  struct stat st;
  if (mproc__plat_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != c->uid) {
    mproc__plat_close(fd);
    return -1;
  }
  return fd;
}

/* mproc_cache_call_with(), and mproc_cache_shelve() when load is 0 (a hit is checked, not loaded).  *out
 * is set whenever the result handle could be made, also on failure. */
static int cache_run(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                     const mproc_cache_call_opts *opts, int load, keyinfo *kp, mproc_cache_result **out) {
  *out = NULL;
  keyinfo k;
  int rc = make_key(c, fn, arg, len, opts, &k);
  if (rc < 0) return rc;
  validity v = validity_of(c, opts);
  if (!k.id.code_known && !c->ignore_code_hash) __atomic_fetch_add(&c->nocode, 1, __ATOMIC_SEQ_CST);
  mproc_cache_result *r = mproc__calloc(1, sizeof *r);
  if (!r) return MPROC_ENOMEM;
  int fnfd = open_fndir(c, &k, 1), lockfd = -1, store_rc = 0;
  if (fnfd < 0) store_rc = fnfd; /* cannot cache at all: compute anyway */
  for (int attempt = 0; fnfd >= 0 && attempt < 2; attempt++) {
    rc = load_entry(c, fnfd, &k, load ? r : NULL, 1, &v);
    if (rc == 1) {
      __atomic_fetch_add(&c->hits, 1, __ATOMIC_SEQ_CST);
      r->hit = 1;
      say(c, "hit ", &k);
      goto done;
    }
    if (rc == MPROC_ECORRUPT) {
      __atomic_fetch_add(&c->corrupt, 1, __ATOMIC_SEQ_CST);
      mproc__plat_unlinkat(fnfd, k.name, 0);
      say(c, "corrupt entry, recomputing", &k);
    }
    if (rc == LOAD_INVALID) { /* as joblib: an invalid entry is removed, then recomputed */
      mproc__plat_unlinkat(fnfd, k.name, 0);
      say(c, "invalid entry, recomputing", &k);
    }
    if (attempt == 1 || !c->wait) break;
    lockfd = open_lock(c, fnfd);
    if (lockfd < 0) break; /* no lock: compute without waiting */
    if (mproc__plat_file_lock_byte(lockfd, k.lock_off, 0) != 0) {
      __atomic_fetch_add(&c->waits, 1, __ATOMIC_SEQ_CST);
      say(c, "wait", &k);
      if (mproc__plat_file_lock_byte(lockfd, k.lock_off, 1) != 0) {
        mproc__plat_close(lockfd);
        lockfd = -1;
        break;
      }
    } else {
      break; /* we hold the lock and nobody computed it in between our load and now?  check once more */
    }
  }
  if (lockfd >= 0 && !r->hit) { /* holding the lock after a trylock success: a racing store may exist */
    rc = fnfd >= 0 ? load_entry(c, fnfd, &k, load ? r : NULL, 1, &v) : 0;
    if (rc == 1) {
      __atomic_fetch_add(&c->hits, 1, __ATOMIC_SEQ_CST);
      r->hit = 1;
      say(c, "hit ", &k);
      goto done;
    }
    if (rc == LOAD_INVALID) mproc__plat_unlinkat(fnfd, k.name, 0);
  }
  __atomic_fetch_add(&c->misses, 1, __ATOMIC_SEQ_CST);
  say(c, "miss", &k);
  mproc__task_outcome o;
  double t0 = mproc__plat_now();
  rc = mproc__task_run_local(fn, arg, len, -1, -1, &o);
  int64_t duration_ns = (int64_t)((mproc__plat_now() - t0) * 1e9);
  if (rc != 0) {
    memcpy(r->msg, o.msg, sizeof r->msg);
    mproc__free(o.result);
    goto done;
  }
  r->data = o.result;
  r->len = o.result_len;
  if (fnfd >= 0)
    store_rc = store_entry(c, fnfd, &k, r->data ? r->data : "", r->len, duration_ns > 0 ? duration_ns : 1);
  if (store_rc == 0) {
    __atomic_fetch_add(&c->stores, 1, __ATOMIC_SEQ_CST);
  } else {
    __atomic_fetch_add(&c->store_failures, 1, __ATOMIC_SEQ_CST);
    r->store_error = store_rc;
    if (c->verbose) fprintf(stderr, "[mproc cache] store failed: %s\n", mproc_strerror(store_rc));
  }
done:
  mproc__plat_close(lockfd);
  mproc__plat_close(fnfd);
  *out = r;
  if (kp) *kp = k;
  return rc < 0 ? rc : 0;
}

int mproc_cache_call_with(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                          const mproc_cache_call_opts *opts, mproc_cache_result **out) {
  if (!c || !fn || !out || (!arg && len)) return MPROC_EINVAL;
  return cache_run(c, fn, arg, len, opts, 1, NULL, out);
}

int mproc_cache_call(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                     mproc_cache_result **out) {
  return mproc_cache_call_with(c, fn, arg, len, NULL, out);
}

const void *mproc_cache_result_data(const mproc_cache_result *r) { return r ? r->data : NULL; }
size_t mproc_cache_result_len(const mproc_cache_result *r) { return r ? r->len : 0; }
int mproc_cache_result_hit(const mproc_cache_result *r) { return r ? r->hit : 0; }
int mproc_cache_result_store_error(const mproc_cache_result *r) { return r ? r->store_error : 0; }
const char *mproc_cache_result_message(const mproc_cache_result *r) { return r ? r->msg : ""; }

void mproc_cache_result_release(mproc_cache_result *r) {
  if (!r) return;
  result_free(r->data, r->map_len);
  mproc__free(r);
}

struct mproc_cache_entry {
  mproc_cache *c; /* one of its refs */
  keyinfo k;
};

static int entry_new(mproc_cache *c, const keyinfo *k, mproc_cache_entry **out) {
  mproc_cache_entry *e = mproc__malloc(sizeof *e);
  if (!e) return MPROC_ENOMEM;
  e->c = c;
  e->k = *k;
  pthread_mutex_lock(&c->lock);
  c->refs++;
  pthread_mutex_unlock(&c->lock);
  *out = e;
  return 0;
}

int mproc_cache_lookup(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                       const mproc_cache_call_opts *opts, mproc_cache_entry **out) {
  if (out) *out = NULL;
  if (!c || !fn || (!arg && len)) return MPROC_EINVAL;
  keyinfo k;
  int rc = make_key(c, fn, arg, len, opts, &k);
  if (rc < 0) return rc;
  validity v = validity_of(c, opts);
  int fnfd = open_fndir(c, &k, 0);
  /* no directory of this user's there (none, another user's, or something planted in its place, a link
   * included): nothing stored, as a call would find */
  if (fnfd < 0) return fnfd == -ENOENT || fnfd == -EPERM || fnfd == -ENOTDIR ? 0 : fnfd;
  rc = load_entry(c, fnfd, &k, NULL, 0, &v);
  mproc__plat_close(fnfd);
  if (rc < 0 && rc != MPROC_ECORRUPT) return rc;
  if (rc != 1) return 0; /* absent, corrupt or invalid: the next call replaces it */
  if (out && (rc = entry_new(c, &k, out)) < 0) return rc;
  return 1;
}

int mproc_cache_contains(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len) {
  return mproc_cache_lookup(c, fn, arg, len, NULL, NULL);
}

int mproc_cache_shelve(mproc_cache *c, mproc_task_fn fn, const void *arg, size_t len,
                       const mproc_cache_call_opts *opts, mproc_cache_entry **out) {
  if (out) *out = NULL;
  if (!c || !fn || !out || (!arg && len)) return MPROC_EINVAL;
  keyinfo k;
  mproc_cache_result *r;
  int rc = cache_run(c, fn, arg, len, opts, 0, &k, &r);
  if (rc == 0 && r->store_error) rc = r->store_error; /* no entry to refer to */
  mproc_cache_result_release(r);
  if (rc == 0) rc = entry_new(c, &k, out);
  return rc;
}

/* The entry's function directory, for a handle whose cache is still open: a descriptor, or -ENOENT (the
 * directory is gone), MPROC_ECLOSED, -EPERM or another error of open_fndir. */
static int entry_dir(const mproc_cache_entry *e) {
  pthread_mutex_lock(&e->c->lock);
  bool closed = e->c->closed;
  pthread_mutex_unlock(&e->c->lock);
  if (closed) return MPROC_ECLOSED;
  return open_fndir(e->c, &e->k, 0);
}

int mproc_cache_entry_load(mproc_cache_entry *e, mproc_cache_result **out) {
  if (out) *out = NULL;
  if (!e || !out) return MPROC_EINVAL;
  int fnfd = entry_dir(e);
  if (fnfd < 0) return fnfd;
  mproc_cache_result *r = mproc__calloc(1, sizeof *r);
  int rc = r ? load_entry(e->c, fnfd, &e->k, r, 1, NULL) : MPROC_ENOMEM;
  mproc__plat_close(fnfd);
  if (rc == 1) {
    r->hit = 1;
    *out = r;
    return 0;
  }
  mproc_cache_result_release(r);
  return rc == 0 ? MPROC_ENOENT : rc;
}

int mproc_cache_entry_clear(mproc_cache_entry *e) {
  if (!e) return MPROC_EINVAL;
  int fnfd = entry_dir(e);
  if (fnfd < 0) return fnfd == -ENOENT ? 0 : fnfd;
  int rc = mproc__plat_unlinkat(fnfd, e->k.name, 0);
  mproc__plat_close(fnfd);
  return rc == -ENOENT ? 0 : rc;
}

int mproc_cache_entry_stat(const mproc_cache_entry *e, mproc_cache_entry_info *out) {
  if (!e || !out) return MPROC_EINVAL;
  int fnfd = entry_dir(e);
  if (fnfd < 0) return fnfd;
  struct stat st;
  mproc__entry_header h;
  int fd = -1;
  int rc = read_header(e->c, fnfd, e->k.name, &fd, &st, &h);
  mproc__plat_close(fnfd);
  if (rc <= 0) return rc == 0 ? MPROC_ENOENT : rc;
  mproc__plat_close(fd);
  if (!header_valid(e->c, &e->k, &h, (uint64_t)st.st_size)) return MPROC_ECORRUPT;
  fill_info(out, e->k.name, e->k.id.fn_key, &st, &h);
  return 0;
}

void mproc_cache_entry_release(mproc_cache_entry *e) {
  if (!e) return;
  mproc_cache *c = e->c;
  pthread_mutex_lock(&c->lock);
  bool last = --c->refs == 0 && c->closed;
  pthread_mutex_unlock(&c->lock);
  mproc__free(e);
  if (last) cache_free(c);
}

int mproc_cache_expires_after(const mproc_cache_entry_info *entry, void *seconds) {
  if (!entry || !seconds) return 0;
  double s = *(const double *)seconds;
  /* the age in doubles: created_ns may be any value (the caller's own info), and the int64_t difference
   * could overflow */
  return (double)mproc__plat_realtime_ns() - (double)entry->created_ns < s * 1e9; /* NaN: expired */
}

static int is_hex_name(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return s[n] == '\0';
}

typedef struct unlink_ctx {
  int fd, rc;
} unlink_ctx;

static int unlink_visit(void *ctx, const char *name) {
  unlink_ctx *u = ctx;
  int r = mproc__plat_unlinkat(u->fd, name, 0);
  if (r < 0 && r != -ENOENT && u->rc == 0) u->rc = r;
  return 0;
}

/* Removes a function directory and everything in it. */
static int remove_fndir(mproc_cache *c, const char *name) {
  int fd = mproc__plat_openat(c->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  if (fd < 0) return fd == -ENOENT ? 0 : fd;
  unlink_ctx u = {fd, 0};
  int rc = mproc__plat_dir_each(fd, ".", unlink_visit, &u);
  mproc__plat_close(fd);
  if (rc == 0) rc = u.rc;
  int r = mproc__plat_unlinkat(c->dirfd, name, AT_REMOVEDIR);
  if (r < 0 && r != -ENOENT && r != -ENOTEMPTY && rc == 0) rc = r;
  return rc;
}

typedef struct fndir_ctx {
  mproc_cache *c;
  int (*visit)(mproc_cache *, const char *, void *);
  void *ctx;
  int rc;
} fndir_ctx;

static int fndir_visit(void *ctx, const char *name) {
  fndir_ctx *f = ctx;
  if (!is_hex_name(name, 16)) return 0;
  int r = f->visit(f->c, name, f->ctx);
  if (r < 0 && f->rc == 0) f->rc = r;
  return 0;
}

/* Calls visit(c, name, ctx) for every function directory. */
static int each_fndir(mproc_cache *c, int (*visit)(mproc_cache *, const char *, void *), void *ctx) {
  fndir_ctx f = {c, visit, ctx, 0};
  int rc = mproc__plat_dir_each(c->dirfd, ".", fndir_visit, &f);
  return rc < 0 ? rc : f.rc;
}

static int clear_visit(mproc_cache *c, const char *name, void *ctx) {
  (void)ctx;
  return remove_fndir(c, name);
}

int mproc_cache_clear(mproc_cache *c) {
  if (!c) return MPROC_EINVAL;
  return each_fndir(c, clear_visit, NULL);
}

int mproc_cache_clear_function(mproc_cache *c, mproc_task_fn fn) {
  if (!c || !fn) return MPROC_EINVAL;
  mproc__fnid id;
  int rc = get_fnid(c, fn, &id);
  if (rc < 0) return rc;
  char name[17];
  snprintf(name, sizeof name, "%016" PRIx64, id.fn_key);
  return remove_fndir(c, name);
}

typedef struct lru_item {
  char fndir[17];
  char name[40];
  int64_t mtime_ns;
  int64_t size;
  /* when the list reads headers: what they say (created_ns 0 and corrupt 1 when they fail their checks) */
  int64_t created_ns, duration_ns;
  uint64_t result_len;
  int corrupt;
} lru_item;

typedef struct lru_list {
  lru_item *v;
  size_t n, cap;
  int err, fd;
  const char *fndir;
  mproc_cache *c;
  bool headers; /* also read each entry's header (mproc_cache_list) */
  bool sweep;   /* also remove the temporary files of killed writers (reduce) */
} lru_list;

/* A temporary file whose writer is gone is removed: a writer holds a lock on its temporary file from just
 * after creating it until it is renamed or removed, so one that can be locked is a killed writer's, or one
 * created this instant (the age keeps those, also against clocks of network file systems that differ). */
#define TMP_GRACE_NS ((int64_t)60 * 1000000000)
static void sweep_tmp(lru_list *l, const char *name) {
  int fd = mproc__plat_openat(l->fd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0);
  if (fd < 0) return;
  struct stat st;
  if (mproc__plat_fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == l->c->uid &&
      mproc__plat_realtime_ns() - mtime_ns(&st) > TMP_GRACE_NS && mproc__plat_file_lock_byte(fd, 0, 0) == 0)
    mproc__plat_unlinkat(l->fd, name, 0);
  mproc__plat_close(fd);
}

/* What the header of a listed entry says, when it is sane and names this file and directory. */
static void list_header(lru_list *l, const char *name, lru_item *it) {
  struct stat st;
  mproc__entry_header h;
  int fd = -1;
  it->corrupt = 1;
  if (read_header(l->c, l->fd, name, &fd, &st, &h) <= 0) return;
  mproc__plat_close(fd);
  char key[40];
  snprintf(key, sizeof key, "%016" PRIx64 "%016" PRIx64 ".e", h.key_hi, h.key_lo);
  if (!header_sane(l->c, &h, (uint64_t)st.st_size) || h.fn_key != strtoull(l->fndir, NULL, 16) ||
      strcmp(key, name) != 0)
    return;
  it->corrupt = 0;
  it->created_ns = h.created_ns;
  it->duration_ns = h.duration_ns;
  it->result_len = h.raw_size;
}

static int lru_entry(void *ctx, const char *name) {
  lru_list *l = ctx;
  size_t n = strlen(name);
  if (l->sweep && strncmp(name, ".tmp.", 5) == 0) sweep_tmp(l, name);
  if (n != 34 || strcmp(name + 32, ".e") != 0) return 0;
  struct stat st;
  if (mproc__plat_lstatat(l->fd, name, &st) != 0) return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    lru_item *v = mproc__realloc(l->v, cap * sizeof *v);
    if (!v) {
      l->err = MPROC_ENOMEM;
      return 1;
    }
    l->v = v;
    l->cap = cap;
  }
  lru_item *it = &l->v[l->n++];
  memcpy(it->fndir, l->fndir, 17);
  memcpy(it->name, name, n + 1);
  it->mtime_ns = mtime_ns(&st);
  it->size = (int64_t)st.st_size;
  it->created_ns = it->duration_ns = 0;
  it->result_len = 0;
  if (l->headers) list_header(l, name, it);
  return 0;
}

static int lru_visit(mproc_cache *c, const char *fname, void *ctx) {
  lru_list *l = ctx;
  int fd = mproc__plat_openat(c->dirfd, fname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  if (fd < 0) return 0;
  l->fd = fd;
  l->fndir = fname;
  mproc__plat_dir_each(fd, ".", lru_entry, l);
  mproc__plat_close(fd);
  return 0;
}

static int lru_cmp(const void *a, const void *b) {
  const lru_item *x = a, *y = b;
  if (x->mtime_ns != y->mtime_ns) return x->mtime_ns < y->mtime_ns ? -1 : 1;
  int d = strcmp(x->fndir, y->fndir); /* ties in a fixed order: a listing is the same twice */
  return d ? d : strcmp(x->name, y->name);
}

static int evict(mproc_cache *c, const lru_item *it) {
  /* through the directory opened without following links, not through a path "fndir/name" */
  int fd = mproc__plat_openat(c->dirfd, it->fndir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
  if (fd < 0) return fd == -ENOENT ? 0 : fd;
  int rc = mproc__plat_unlinkat(fd, it->name, 0);
  mproc__plat_close(fd);
  if (rc < 0) return rc == -ENOENT ? 0 : rc;
  __atomic_fetch_add(&c->evictions, 1, __ATOMIC_SEQ_CST);
  return 0;
}

/* Every entry (of the function directory fndir, when not NULL), least recently used first. */
static int lru_collect(mproc_cache *c, const char *fndir, bool headers, lru_list *l) {
  *l = (lru_list){.c = c, .headers = headers, .sweep = !headers}; /* reduce reads no headers, and sweeps */
  int rc = fndir ? lru_visit(c, fndir, l) : each_fndir(c, lru_visit, l);
  if (rc == 0) rc = l->err;
  if (rc < 0) {
    mproc__free(l->v);
    l->v = NULL;
    return rc;
  }
  if (l->n) qsort(l->v, l->n, sizeof *l->v, lru_cmp);
  return 0;
}

/* Removes entries least recently used first while above max_bytes or max_items (< 0: no limit), and those
 * whose last use is max_age_s seconds ago (< 0: no limit) or more (more only, when !age_inclusive). */
static int reduce(mproc_cache *c, int64_t max_bytes, int64_t max_items, double max_age_s,
                  bool age_inclusive) {
  lru_list l;
  int rc = lru_collect(c, NULL, false, &l);
  if (rc < 0) return rc;
  int64_t total = 0, count = (int64_t)l.n, now = mproc__plat_realtime_ns();
  for (size_t i = 0; i < l.n; i++) total += l.v[i].size;
  for (size_t i = 0; i < l.n; i++) {
    double age = (double)(now - l.v[i].mtime_ns);
    int old = max_age_s >= 0 && (age_inclusive ? age >= max_age_s * 1e9 : age > max_age_s * 1e9);
    int big = max_bytes >= 0 && total > max_bytes;
    int many = max_items >= 0 && count > max_items;
    if (!old && !big && !many) continue;
    int r = evict(c, &l.v[i]);
    if (r < 0 && rc == 0) rc = r;
    total -= l.v[i].size;
    count--;
  }
  mproc__free(l.v);
  return rc;
}

int mproc_cache_reduce(mproc_cache *c, int64_t max_bytes, double max_age_s) {
  if (!c || isnan(max_age_s)) return MPROC_EINVAL;
  return reduce(c, max_bytes, -1, max_age_s, false);
}

int mproc_cache_reduce_size(mproc_cache *c, int64_t bytes_limit, int64_t items_limit, double age_limit_s) {
  if (!c || isnan(age_limit_s) || (bytes_limit < 0 && bytes_limit != MPROC_CACHE_NO_LIMIT) ||
      (items_limit < 0 && items_limit != MPROC_CACHE_NO_LIMIT) ||
      (age_limit_s < 0 && age_limit_s != MPROC_CACHE_NO_LIMIT))
    return MPROC_EINVAL;
  if (isinf(age_limit_s)) age_limit_s = MPROC_CACHE_NO_LIMIT;
  return reduce(c, bytes_limit, items_limit, age_limit_s, true);
}

int mproc_cache_list(mproc_cache *c, mproc_task_fn fn, mproc_cache_entry_info *out, size_t cap,
                     size_t *count) {
  if (!c || !count || (!out && cap)) return MPROC_EINVAL;
  *count = 0;
  char name[17];
  if (fn) {
    mproc__fnid id;
    int rc = get_fnid(c, fn, &id);
    if (rc < 0) return rc;
    snprintf(name, sizeof name, "%016" PRIx64, id.fn_key);
  }
  lru_list l;
  int rc = lru_collect(c, fn ? name : NULL, true, &l);
  if (rc < 0) return rc;
  for (size_t i = 0; i < l.n && i < cap; i++) {
    const lru_item *it = &l.v[i];
    mproc_cache_entry_info *o = &out[i];
    memset(o, 0, sizeof *o);
    memcpy(o->key, it->name, 32);
    o->fn_key = strtoull(it->fndir, NULL, 16);
    o->size = (uint64_t)it->size;
    o->accessed_ns = it->mtime_ns;
    o->result_len = it->result_len;
    o->created_ns = it->created_ns;
    o->duration_ns = it->duration_ns;
    o->corrupt = it->corrupt;
  }
  *count = l.n;
  mproc__free(l.v);
  return 0;
}

int mproc_cache_get_stats(const mproc_cache *c, mproc_cache_stats *out) {
  if (!c || !out) return MPROC_EINVAL;
  mproc_cache *m = (mproc_cache *)c;
  out->hits = __atomic_load_n(&m->hits, __ATOMIC_SEQ_CST);
  out->misses = __atomic_load_n(&m->misses, __ATOMIC_SEQ_CST);
  out->stores = __atomic_load_n(&m->stores, __ATOMIC_SEQ_CST);
  out->store_failures = __atomic_load_n(&m->store_failures, __ATOMIC_SEQ_CST);
  out->evictions = __atomic_load_n(&m->evictions, __ATOMIC_SEQ_CST);
  out->corrupt_recomputed = __atomic_load_n(&m->corrupt, __ATOMIC_SEQ_CST);
  out->waits = __atomic_load_n(&m->waits, __ATOMIC_SEQ_CST);
  out->code_hash_unavailable = __atomic_load_n(&m->nocode, __ATOMIC_SEQ_CST);
  return 0;
}
