/* fuzz_wire_job.c: a job as a worker reads it from its ring (engine/wire.h, worker.c's next_job): the
 * header, then payload_len bytes, which mproc__wire_job_ok must find to hold the arguments the header
 * says before the worker walks them.  When it accepts, the walk the worker makes (a task's in_len bytes;
 * a batch's count * in_size; items of any size: count lengths, then the items one after the other; in
 * place: count (address, length) pairs) is made here over the payload, and must stay inside it.
 * Addresses (in_addr, out_addr, pairs in place) are the caller's pointers into shared memory: trusted by
 * design, not fuzzed (in_addr is read only as zero or not).
 *
 * Input: the wire_job header (its payload_len is replaced by the length of what follows), then the
 * payload. */
#include "engine/engine.h"
#include "fuzz.h"

static uint64_t sink;

static void touch(const unsigned char *p, uint64_t n) {
  for (uint64_t k = 0; k < n; k++) sink += p[k];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wire_job j;
  if (size < sizeof j) return 0;
  memcpy(&j, data, sizeof j);
  size_t len = size - sizeof j;
  unsigned char *payload = malloc(len ? len : 1); /* exactly its bytes: ASan sees any read past them */
  memcpy(payload, data + sizeof j, len);
  j.payload_len = len;
  if (mproc__wire_job_ok(&j, payload)) {
    FUZZ_CHECK(j.kind == JOB_TASK || j.kind == JOB_BATCH);
    if (j.kind == JOB_TASK) {
      if (!j.in_addr) touch(payload, j.in_len);
    } else if (j.var & MPROC__VAR_IN_PLACE) {
      FUZZ_CHECK((uint64_t)j.count * 16 <= len);
      touch(payload, (uint64_t)j.count * 16);
    } else if (j.var & MPROC__VAR_IN) {
      const unsigned char *a = payload + (size_t)j.count * 8;
      for (uint32_t k = 0; k < j.count; k++) {
        uint64_t n;
        memcpy(&n, payload + 8 * (size_t)k, 8);
        touch(a, n);
        a += n;
      }
      FUZZ_CHECK(a <= payload + len);
    } else if (!j.in_addr) {
      touch(payload, (uint64_t)j.count * j.in_size);
    }
  }
  free(payload);
  return 0;
}
