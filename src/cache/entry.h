/* entry.h: the layout of a cache entry file (header + stored bytes), shared by cache.c and the tests that
 * forge entries. */
#ifndef MPROC_CACHE_ENTRY_H
#define MPROC_CACHE_ENTRY_H

#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#define MPROC__ENTRY_MAGIC 0x3143504du /* "MPC1" */
/* Bumped whenever the layout or the meaning of a field changes: an entry of another format is never read
 * (it is recomputed and replaced).  1: no key in the header.  duration_ns took the place of a reserved
 * field that every writer of format 2 set to 0, which it reads as "not recorded": both readers accept
 * both writers' entries, so the format stayed 2. */
#define MPROC__ENTRY_FORMAT 2
#define MPROC__ENTRY_ZSTD 1u
/* zstd's largest expansion: a block holds at most 128 KiB and takes at least 4 bytes (an RLE block). */
#define MPROC__ZSTD_MAX_EXPANSION 32768u

typedef struct mproc__entry_header {
  uint32_t magic;
  uint16_t format;
  uint16_t flags;
  uint64_t raw_size;
  uint64_t stored_size;
  uint64_t checksum;  /* XXH3-64 of the stored bytes */
  int64_t created_ns; /* CLOCK_REALTIME at store */
  uint64_t code_hash; /* for inspection */
  uint64_t fn_key;    /* the function's identity (its directory's name) */
  uint64_t key_seed;  /* hash of (code hash or 0, version hash) */
  uint64_t key_hi;    /* XXH3-128 of the argument bytes seeded with key_seed (the file's name) */
  uint64_t key_lo;
  int64_t duration_ns;   /* how long computing the result took (0: not recorded); for validity callbacks */
  uint64_t header_check; /* XXH3-64 of the bytes above */
} mproc__entry_header;
_Static_assert(sizeof(mproc__entry_header) == 96, "entry header is 96 bytes");

static inline uint64_t mproc__entry_header_check(const mproc__entry_header *h) {
  return XXH3_64bits(h, offsetof(mproc__entry_header, header_check));
}

#endif
