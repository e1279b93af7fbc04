/* wire.c: the checks of what a reader takes from a ring or a dead worker's staging area before it walks
 * it: a job as a worker reads it, a segment of results as the caller reads it, records of results of any
 * size.  Each record is published whole, so a sane writer always passes; these keep an insane one (a
 * worker whose memory was overwritten, a dying one's staging area) from sending a reader out of bounds.
 * fuzz/fuzz_wire_job.c and fuzz/fuzz_wire_segment.c fuzz them. */
#include "engine/engine.h"

size_t mproc__var_records_span(const unsigned char *recs, size_t size, uint32_t count) {
  size_t at = 0;
  for (uint32_t k = 0; k < count; k++) {
    uint64_t n;
    if (size - at < 8) return SIZE_MAX;
    memcpy(&n, recs + at, 8);
    if (n > size - at - 8 || mproc__var_rec_size(n) > size - at) return SIZE_MAX;
    at += mproc__var_rec_size(n);
  }
  return at;
}

bool mproc__wire_job_ok(const wire_job *j, const unsigned char *payload) {
  uint64_t len = j->payload_len;
  if (j->kind == JOB_TASK) return j->in_addr || j->in_len <= len;
  if (j->kind != JOB_BATCH) return false;
  if (!(j->var & (MPROC__VAR_IN | MPROC__VAR_IN_PLACE))) /* fixed-size items: count * in_size bytes */
    return j->in_addr || (uint64_t)j->count * j->in_size <= len;
  if (j->var & MPROC__VAR_IN_PLACE) return (uint64_t)j->count * 16 <= len; /* (address, length) pairs */
  if ((uint64_t)j->count * 8 > len) return false;
  uint64_t left = len - (uint64_t)j->count * 8; /* the lengths, then that many bytes */
  for (uint32_t k = 0; k < j->count; k++) {
    uint64_t n;
    memcpy(&n, payload + 8 * (size_t)k, 8);
    if (n > left) return false;
    left -= n;
  }
  return true;
}

bool mproc__wire_segment_split(const wire_result *h, const unsigned char *buf, size_t len, bool var_out,
                               const unsigned char **recs, const wire_fail **fails) {
  if ((uint64_t)h->nfail > h->count || (uint64_t)h->nfail * sizeof(wire_fail) > len) return false;
  size_t rec_bytes = len - (size_t)h->nfail * sizeof(wire_fail);
  if (var_out ? mproc__var_records_span(buf, rec_bytes, h->count) != rec_bytes : rec_bytes != 0) return false;
  const wire_fail *f = (const wire_fail *)(const void *)(buf + rec_bytes);
  uint64_t next = 0; /* in item order, within the segment (offsets from its first), each message ended */
  for (uint32_t k = 0; k < h->nfail; k++) {
    wire_fail x;
    memcpy(&x, buf + rec_bytes + k * sizeof x, sizeof x);
    uint64_t off = (uint64_t)x.index - (uint64_t)h->first;
    if (x.index < h->first || off < next || off >= h->count || !memchr(x.msg, '\0', sizeof x.msg))
      return false;
    next = off + 1;
  }
  *recs = var_out ? buf : NULL;
  *fails = f;
  return true;
}
