/* bench_items.h: what the strings and tree workloads' C systems share (mproc_bench.c, anchors.c): the
 * strings, the walk of a tree, and a file's digest.  bench/py/items_data.py makes the same strings. */
#ifndef BENCH_ITEMS_H
#define BENCH_ITEMS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sha256.h"

/* A key=value argument that is a string. */
static inline const char *bench_sarg(int argc, char **argv, const char *key, const char *dflt) {
  size_t k = strlen(key);
  for (int i = 3; i < argc; i++)
    if (strncmp(argv[i], key, k) == 0 && argv[i][k] == '=') return argv[i] + k + 1;
  return dflt;
}

static inline uint64_t bench_splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* String i of the strings workload: 16 to 64 characters of [a-zA-Z0-9-_], written at s (65 bytes of room,
 * NUL-terminated); returns its length. */
static inline size_t bench_string(uint64_t i, char *s) {
  static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  uint64_t x = bench_splitmix64(i), y = x;
  size_t len = 16 + (size_t)(x % 49);
  for (size_t k = 0; k < len; k++) {
    if (k % 8 == 0) y = y * 6364136223846793005ull + 1442695040888963407ull;
    s[k] = alpha[(y >> (8 * (k % 8))) & 63];
  }
  s[len] = '\0';
  return len;
}

/* The n strings one after another, each with its NUL, in one block; (*offsets)[i] is where string i
 * begins, (*offsets)[n] the end (so the packed form's item i is the string without its NUL). */
static inline char *bench_strings(size_t n, size_t **offsets) {
  char *buf = malloc(n * 65 + 1);
  size_t *off = malloc((n + 1) * sizeof *off), at = 0;
  if (!buf || !off) exit(1);
  for (size_t i = 0; i < n; i++) {
    off[i] = at;
    at += bench_string(i, buf + at) + 1;
  }
  off[n] = at;
  *offsets = off;
  return buf;
}

/* The 64-bit hash of each string (its bytes, without the NUL). */
static inline uint64_t bench_string_hash(const void *s, size_t len) { return XXH3_64bits(s, len); }

/* Every regular file under dir (symbolic links not followed), appended to *paths. */
typedef struct bench_paths {
  char **v;
  size_t n, cap;
} bench_paths;

static inline void bench_walk(const char *dir, bench_paths *p) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *path = malloc(len);
    if (!path) exit(1);
    snprintf(path, len, "%s/%s", dir, e->d_name);
    struct stat sb;
    int ok = lstat(path, &sb) == 0;
    if (ok && S_ISDIR(sb.st_mode)) {
      bench_walk(path, p);
    } else if (ok && S_ISREG(sb.st_mode)) {
      if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
        if (!p->v) exit(1);
      }
      p->v[p->n++] = path;
      continue;
    }
    free(path);
  }
  closedir(d);
}

static inline void bench_paths_free(bench_paths *p) {
  for (size_t i = 0; i < p->n; i++) free(p->v[i]);
  free(p->v);
}

/* The digest of a file read with POSIX calls: XXH3-128 (sha256 0) or SHA-256 (sha256 1) into out (16 or 32
 * bytes); returns its length, or -errno. */
static inline int bench_file_digest(const char *path, int sha256, unsigned char *out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  XXH3_state_t xs;
  bench_sha256 ss;
  if (sha256)
    bench_sha256_init(&ss);
  else
    XXH3_128bits_reset(&xs);
  char buf[1 << 16];
  for (;;) {
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (got == 0) break;
    if (sha256)
      bench_sha256_update(&ss, buf, (size_t)got);
    else
      XXH3_128bits_update(&xs, buf, (size_t)got);
  }
  close(fd);
  if (sha256) {
    bench_sha256_final(&ss, out);
    return 32;
  }
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&xs));
  memcpy(out, c.digest, 16);
  return 16;
}

/* The tree rows' checksum term: a digest's first 8 bytes as a big-endian number (summed mod 2^64). */
static inline uint64_t bench_digest_head(const unsigned char *d) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | d[i];
  return v;
}

#endif
