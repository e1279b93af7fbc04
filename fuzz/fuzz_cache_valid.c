/* fuzz_cache_valid.c: the result cache's entry reader behind good checksums: the input is an entry's
 * stored bytes and the harness writes a header whose key, function, header check and checksum are right,
 * so that mutation reaches what comes after them: the sizes' bounds, zstd's frame and decompression, and
 * the result's own mapping (results of 1 KiB or more).  Answers are checked as in fuzz_cache_entry.c.
 *
 * Input: a flags byte (bit 0: zstd; bit 7: an unknown flag), a byte saying what raw_size is (0: the
 * truth, the stored length or the frame's content size; else the 4 bytes that follow, shifted left by
 * this byte % 32), then the stored bytes. */
#include "fuzz_cache.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_cache_setup(0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  unsigned flags = (unsigned)fuzz_u(&in, 1), how = (unsigned)fuzz_u(&in, 1);
  uint64_t claimed = how ? fuzz_u(&in, 4) << (how % 32) : 0;
  size_t n = in.n;
  mproc__entry_header h = fuzz_real;
  h.flags = (uint16_t)(flags & (MPROC__ENTRY_ZSTD | 0x80));
  h.stored_size = n;
  if (how)
    h.raw_size = claimed;
  else if (h.flags & MPROC__ENTRY_ZSTD)
    h.raw_size = ZSTD_getFrameContentSize(in.p, n);
  else
    h.raw_size = n;
  h.checksum = XXH3_64bits(in.p, n);
  h.header_check = mproc__entry_header_check(&h);
  unsigned char *file = malloc(sizeof h + n);
  memcpy(file, &h, sizeof h);
  memcpy(file + sizeof h, in.p, n);
  fuzz_cache_run(file, sizeof h + n);
  free(file);
  return 0;
}
