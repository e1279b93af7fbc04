/* fuzz.h: what the fuzz targets share: libFuzzer's entry point and a reader that takes values from the
 * front of an input (FuzzedDataProvider's role, for C). */
#ifndef MPROC_FUZZ_H
#define MPROC_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A check of the target's own oracle: a failure is a crash, which libFuzzer reports with the input. */
#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                      \
    }                                                                               \
  } while (0)

typedef struct fuzz_in {
  const uint8_t *p;
  size_t n;
} fuzz_in;

/* The next k bytes (fewer at the end of the input; zeros past it) as a little-endian number. */
static inline uint64_t fuzz_u(fuzz_in *in, int k) {
  uint64_t v = 0;
  for (int i = 0; i < k && in->n; i++, in->p++, in->n--) v |= (uint64_t)*in->p << (8 * i);
  return v;
}

/* The next n bytes (fewer at the end): their address, and *got how many. */
static inline const uint8_t *fuzz_bytes(fuzz_in *in, size_t n, size_t *got) {
  const uint8_t *p = in->p;
  *got = n < in->n ? n : in->n;
  in->p += *got;
  in->n -= *got;
  return p;
}

#endif
