/* tree_digest.c: the digest of every regular file under a directory, one process per core.
 *
 *   paths = sorted(p for p in walk(root) if is_regular_file(p))
 *   with multiprocessing.Pool() as pool:
 *       for path, digest in zip(paths, pool.map(xxh3_128_of_file, paths)):
 *           print(digest, path)
 *
 * Usage: tree_digest [DIR]   (default "."): prints "DIGEST  PATH" lines (XXH3 128-bit, the format of
 * `xxhsum -H2`) sorted by path; a file that cannot be read is named on stderr with its error, and the exit
 * status is then 1. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mproc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation per file */
#include <xxhash.h>

/* The task, in a worker: path in (a C string, the item), the file's 16-byte canonical digest out. */
static int digest_file(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  const char *path = arg;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return mproc_task_fail(t, -errno, "%s", strerror(errno));
  XXH3_state_t st;
  XXH3_128bits_reset(&st);
  char buf[1 << 16];
  for (;;) {
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int e = errno;
      close(fd);
      return mproc_task_fail(t, -e, "%s", strerror(e));
    }
    if (got == 0) break;
    XXH3_128bits_update(&st, buf, (size_t)got);
  }
  close(fd);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
  return mproc_task_return(t, c.digest, sizeof c.digest);
}

/* The walk, in the caller: every regular file's path (symbolic links are not followed). */
struct paths {
  char **v;
  size_t n, cap;
};

static int add_path(struct paths *p, const char *path) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 256;
    char **v = realloc(p->v, cap * sizeof *v);
    if (!v) return -1;
    p->v = v;
    p->cap = cap;
  }
  if (!(p->v[p->n] = strdup(path))) return -1;
  p->n++;
  return 0;
}

static int walk(const char *dir, struct paths *p) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "tree_digest: %s: %s\n", dir, strerror(errno));
    return 0; /* as find does: name it and go on */
  }
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *path = malloc(len);
    if (!path) {
      r = -1;
      break;
    }
    snprintf(path, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
      if (S_ISDIR(sb.st_mode))
        r = walk(path, p);
      else if (S_ISREG(sb.st_mode))
        r = add_path(p, path);
    }
    free(path);
  }
  closedir(d);
  return r;
}

static int by_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : ".";
  struct paths p = {0};
  if (walk(root, &p) != 0) {
    fprintf(stderr, "tree_digest: out of memory\n");
    return 2;
  }
  qsort(p.v, p.n, sizeof *p.v, by_path); /* results come back in input order: sorted by path */

  mproc_pool *pool;
  int r = mproc_pool_create(&pool, NULL); /* workers: MPROC_WORKERS, else the usable CPUs */
  if (r != 0) {
    fprintf(stderr, "pool: %s\n", mproc_strerror(r));
    return 2;
  }
  /* every file is digested even when some fail; the first 64 failures keep their messages */
  enum { KEEP = 64 };
  mproc_item_failure failures[KEEP];
  mproc_map_opts opts = {.on_error = MPROC_ON_ERROR_CONTINUE, .failures = failures, .failures_cap = KEEP};
  mproc_items in = mproc_items_strings((const char *const *)p.v, p.n);
  mproc_results *res = NULL;
  mproc_map_report rep = {0};
  r = mproc_pool_map_items(pool, digest_file, &in, &opts, &res, &rep);
  mproc_pool_destroy(pool);
  if (r != 0 && rep.failed == 0) { /* the map itself failed, not some files */
    fprintf(stderr, "map: %s\n", mproc_strerror(r));
    return 2;
  }

  size_t next_failure = 0; /* failures[] is sorted by index, as the results are */
  for (size_t i = 0; i < p.n; i++) {
    const void *data;
    size_t len;
    int code = mproc_results_get(res, i, &data, &len);
    if (code == 0 && len == 16) {
      const unsigned char *d = data;
      char hex[33];
      for (int k = 0; k < 16; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
      printf("%s  %s\n", hex, p.v[i]);
      continue;
    }
    while (next_failure < rep.failures_kept && failures[next_failure].index < (int64_t)i) next_failure++;
    if (next_failure < rep.failures_kept && failures[next_failure].index == (int64_t)i)
      fprintf(stderr, "tree_digest: %s: %s\n", p.v[i], failures[next_failure].message);
    else /* beyond the kept failures: the code is all there is */
      fprintf(stderr, "tree_digest: %s: %s\n", p.v[i], mproc_strerror(code));
  }
  if (rep.failed) fprintf(stderr, "tree_digest: %zu of %zu files could not be read\n", rep.failed, p.n);
  mproc_results_free(res);
  for (size_t i = 0; i < p.n; i++) free(p.v[i]);
  free(p.v);
  return rep.failed ? 1 : 0;
}
