/* fuzz_cache_entry.c: the result cache's entry reader (cache/cache.c) over any file under an entry's name:
 * what a crash, a disk, another program or another version left there.  Every reader must answer as the
 * model of the format says (fuzz_cache.h): a hit only for a valid entry of the key, with its bytes; anything
 * else recomputed, never returned.
 *
 * Input: the file.  An input whose header carries a good header check is made this build's: its key and
 * function fields (which depend on where the program lies) become this build's and the check is written
 * again, so that a corpus made by one build reaches past the header in every other.  Its stored bytes keep
 * their own checksum: fuzz_cache_valid.c is the target that mutates behind good checksums. */
#include "fuzz_cache.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_cache_setup(0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char *file = malloc(size ? size : 1);
  memcpy(file, data, size);
  mproc__entry_header h;
  if (size >= sizeof h) {
    memcpy(&h, file, sizeof h);
    if (h.header_check == mproc__entry_header_check(&h)) {
      h.fn_key = fuzz_real.fn_key;
      h.key_seed = fuzz_real.key_seed;
      h.key_hi = fuzz_real.key_hi;
      h.key_lo = fuzz_real.key_lo;
      h.header_check = mproc__entry_header_check(&h);
      memcpy(file, &h, sizeof h);
    }
  }
  fuzz_cache_run(file, size);
  free(file);
  return 0;
}
