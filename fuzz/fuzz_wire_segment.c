/* fuzz_wire_segment.c: a segment of a batch's results as the caller reads it from a worker's ring
 * (engine.c's finish_segment), and the records of results of any size a dead worker left in its staging
 * area (recover_finished).  mproc__wire_segment_split and mproc__var_records_span must accept only what
 * the caller's walk (complete_items, complete_var_items) can take: every record and failure inside the
 * bytes, failures in item order within the segment, each message ended.  That walk is made here over what
 * they accept.
 *
 * Input: a byte (bit 0: results of any size), the wire_result header, then the bytes after the records
 * read in place (results of any size: the whole payload).  The same bytes are then read as a staging area
 * holding header.count records. */
#include "engine/engine.h"
#include "fuzz.h"

static uint64_t sink;

static void touch(const unsigned char *p, uint64_t n) {
  for (uint64_t k = 0; k < n; k++) sink += p[k];
}

/* complete_var_items' walk: count records, each a length and its bytes padded to 8. */
static const unsigned char *walk_records(const unsigned char *recs, uint32_t count) {
  for (uint32_t k = 0; k < count; k++) {
    uint64_t n;
    memcpy(&n, recs, 8);
    touch(recs + 8, n);
    recs += mproc__var_rec_size(n);
  }
  return recs;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wire_result h;
  if (size < 1 + sizeof h) return 0;
  bool var_out = data[0] & 1;
  memcpy(&h, data + 1, sizeof h);
  size_t len = size - 1 - sizeof h;
  unsigned char *buf = malloc(len ? len : 1); /* exactly its bytes: ASan sees any read past them */
  memcpy(buf, data + 1 + sizeof h, len);

  const unsigned char *recs = NULL;
  const wire_fail *fails = NULL;
  if (mproc__wire_segment_split(&h, buf, len, var_out, &recs, &fails)) {
    const unsigned char *end = buf;
    if (var_out) {
      FUZZ_CHECK(recs == buf);
      end = walk_records(recs, h.count);
    }
    FUZZ_CHECK((const unsigned char *)fails == end && end + (size_t)h.nfail * sizeof(wire_fail) == buf + len);
    int64_t prev = INT64_MIN;
    for (uint32_t k = 0; k < h.nfail; k++) { /* what items_failed takes: index and message */
      wire_fail f;
      memcpy(&f, &fails[k], sizeof f);
      FUZZ_CHECK(f.index >= h.first && (uint64_t)f.index - (uint64_t)h.first < h.count && f.index > prev);
      FUZZ_CHECK(strlen(f.msg) < sizeof f.msg);
      prev = f.index;
    }
  }
  size_t span = mproc__var_records_span(buf, len, h.count);
  if (span != SIZE_MAX) FUZZ_CHECK(span <= len && walk_records(buf, h.count) == buf + span);
  free(buf);
  return 0;
}
