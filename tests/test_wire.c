/* test_wire.c: the checks readers make of wire records before they walk them (engine/wire.c): a job whose
 * arguments run past its payload, and a segment whose records or failures run past its bytes or leave it,
 * are refused; what the worker and the caller write passes.  fuzz/fuzz_wire_job.c and
 * fuzz/fuzz_wire_segment.c fuzz the same checks. */
#include "mtest.h"
#include "internal.h"
#include "engine/engine.h"

MTEST(jobs_whose_arguments_run_past_their_payload_are_refused) {
  uint64_t p[4] = {3, 5, 0, 0}; /* two items of any size, 3 and 5 bytes, then their 8 bytes */
  wire_job j = {.magic = WIRE_MAGIC, .kind = JOB_BATCH, .count = 2, .var = MPROC__VAR_IN, .payload_len = 24};
  CHECK(mproc__wire_job_ok(&j, (const unsigned char *)p));
  p[1] = 6; /* 9 bytes of items in 8 */
  CHECK(!mproc__wire_job_ok(&j, (const unsigned char *)p));
  p[0] = UINT64_MAX; /* lengths that wrap when summed */
  p[1] = 2;
  CHECK(!mproc__wire_job_ok(&j, (const unsigned char *)p));
  j.count = 4; /* more lengths than the payload holds */
  CHECK(!mproc__wire_job_ok(&j, (const unsigned char *)p));
  j = (wire_job){.magic = WIRE_MAGIC, .kind = JOB_BATCH, .count = 4, .in_size = 8, .payload_len = 32};
  CHECK(mproc__wire_job_ok(&j, (const unsigned char *)p));
  j.count = 5;
  CHECK(!mproc__wire_job_ok(&j, (const unsigned char *)p));
  j.in_addr = 4096; /* in the shared arena: no payload */
  CHECK(mproc__wire_job_ok(&j, (const unsigned char *)p));
  j = (wire_job){.magic = WIRE_MAGIC, .kind = JOB_TASK, .in_len = 33, .payload_len = 32};
  CHECK(!mproc__wire_job_ok(&j, (const unsigned char *)p));
  j.kind = 99;
  j.in_len = 1;
  CHECK(!mproc__wire_job_ok(&j, (const unsigned char *)p));
}

MTEST(segments_that_do_not_hold_their_records_and_failures_are_refused) {
  _Alignas(8) unsigned char buf[64 + sizeof(wire_fail)] = {0};
  uint64_t len = 5;
  memcpy(buf, &len, 8); /* one record of 5 bytes: 16 bytes */
  wire_fail f = {.index = 11, .code = -22};
  snprintf(f.msg, sizeof f.msg, "failed");
  wire_result h = {.magic = WIRE_MAGIC, .kind = JOB_BATCH, .first = 10, .count = 2, .nfail = 1};
  len = 0; /* and one of 0 bytes: 8 */
  memcpy(buf + 16, &len, 8);
  memcpy(buf + 24, &f, sizeof f);
  const unsigned char *recs;
  const wire_fail *fails;
  CHECK(mproc__wire_segment_split(&h, buf, 24 + sizeof f, true, &recs, &fails));
  CHECK(recs == buf && (const unsigned char *)fails == buf + 24);
  CHECK(!mproc__wire_segment_split(&h, buf, 23 + sizeof f, true, &recs, &fails)); /* a byte short */
  h.count = 3; /* a record more than the bytes hold */
  CHECK(!mproc__wire_segment_split(&h, buf, 24 + sizeof f, true, &recs, &fails));
  /* records of a fixed size are read in place: what follows is the failures, exactly */
  h.count = 2;
  memcpy(buf, &f, sizeof f);
  CHECK(mproc__wire_segment_split(&h, buf, sizeof f, false, &recs, &fails));
  CHECK(recs == NULL);
  h.nfail = 2; /* a failure more than the bytes hold: read past them before */
  CHECK(!mproc__wire_segment_split(&h, buf, sizeof f, false, &recs, &fails));
  h.nfail = 1;
  f.index = 12; /* outside the segment [10, 12) */
  memcpy(buf, &f, sizeof f);
  CHECK(!mproc__wire_segment_split(&h, buf, sizeof f, false, &recs, &fails));
  f.index = 10;
  memset(f.msg, 'x', sizeof f.msg); /* a message without its end */
  memcpy(buf, &f, sizeof f);
  CHECK(!mproc__wire_segment_split(&h, buf, sizeof f, false, &recs, &fails));
  /* a dead worker's staging area: its records must fit */
  len = 40;
  memcpy(buf, &len, 8);
  CHECK_INT_EQ(mproc__var_records_span(buf, 48, 1), 48);
  CHECK(mproc__var_records_span(buf, 47, 1) == SIZE_MAX);
  CHECK(mproc__var_records_span(buf, 48, 2) == SIZE_MAX);
}
