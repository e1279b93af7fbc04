/* wire.h: the records that travel through a worker's rings, and the messages between the manager and the
 * template.  A worker handles its jobs strictly in order, so the manager knows which job a result belongs to
 * (the oldest it holds) and which job a dead worker was running (its slot's running_job). */
#ifndef MPROC_WIRE_H
#define MPROC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JOB_PAD: a record of either ring that only rewinds it (mproc__ring_pad_gap): payload_len bytes of
 * nothing follow its header, to the end of the ring's data. */
enum { JOB_TASK = 1, JOB_BATCH = 2, JOB_STOP = 3, JOB_PAD = 4 };
/* Rings are rewound once their next record would start this far in (and they are empty). */
#define MPROC__REWIND_FROM 4096
#define WIRE_MAGIC 0x6d70726fu

/* A job on the wire (caller -> worker), followed by payload_len bytes. */
typedef struct wire_job {
  uint32_t magic, kind;
  uint64_t id;
  uint64_t fn;    /* the task function: its address in forked workers, an mproc__fnref in exec ones */
  int64_t first;  /* batch: index of its first item; task: -1 */
  uint32_t count; /* batch: items */
  uint32_t in_size, out_size;
  uint32_t attempt;
  uint32_t timed; /* 1 when the job has a timeout: the worker then stamps each item's start */
  uint32_t claim; /* the job's word in its slot's claim[] (see mproc__slot) */
  uint32_t var;   /* batch of items of any size: MPROC__VAR_* */
  uint32_t pad_;
  uint64_t token; /* batch: its map's token; the worker skips batches of aborted maps */
  uint64_t seed;  /* the run seed behind mproc_task_seed() */
  uint64_t payload_len;
  /* Arguments in the shared arena (see ipc/arena.h) are read in place: in_addr is then their address and
   * no payload follows; in_len is the argument bytes of a task either way.  out_addr: a batch's records go
   * straight there (its map's output array is in the arena) instead of back through the ring. */
  uint64_t in_addr, in_len, out_addr;
} wire_job;

/* A batch's items of any size (wire_job.var).  VAR_IN: the payload is `count` uint64_t lengths, then the
 * items' bytes one after the other.  VAR_IN_PLACE: it is `count` pairs of uint64_t (address, length) of
 * items the worker reads in place (threads, the shared arena).  VAR_OUT: results of any size; a segment's
 * records are, per item, a uint64_t length and that many bytes padded to 8 (length 0 for a failed item),
 * then its wire_fail records. */
enum { MPROC__VAR_IN = 1, MPROC__VAR_IN_PLACE = 2, MPROC__VAR_OUT = 4 };
static inline uint64_t mproc__var_rec_size(uint64_t len) { return 8 + ((len + 7) & ~(uint64_t)7); }

/* A result on the wire (worker -> caller), followed by msg_len bytes of message, then payload_len bytes:
 * a task's result, or one segment of a batch's results: items [first, first + count), their count*out_size
 * output bytes (none when written in place) followed by nfail wire_fail records.  A batch's segments come in
 * item order; `last` marks the one that ends the job.  A worker ends a segment after each item that fails
 * and when the ring has no room for the next record, so that every item it finished is published or lies
 * in the ring where the manager finds it after a death (see worker.c). */
typedef struct wire_result {
  uint32_t magic, kind;
  uint64_t id;
  int32_t code;
  uint32_t msg_len;
  uint64_t payload_len;
  uint32_t nfail, last;
  uint64_t busy_ns; /* the worker's time computing this job (batch: this segment) */
  int64_t first;    /* batch: the segment's first item */
  uint32_t count;   /* batch: the segment's items */
  uint32_t pad_;
} wire_result;

typedef struct wire_fail {
  int64_t index;
  int32_t code;
  char msg[124];
} wire_fail;

/* wire.c: the checks a reader makes before it walks what it read (a sane writer always passes them).
 * mproc__var_records_span: the bytes that count whole records of results of any size take at the start of
 * recs[0, size), or SIZE_MAX when they do not fit there (a segment's, or a dead worker's staging area).
 * mproc__wire_job_ok: whether job j's payload (j->payload_len bytes) holds the arguments j says (a worker
 * reads no further).  mproc__wire_segment_split: whether buf[0, len), what follows a batch segment's
 * records of fixed size (read in place) or what is all of its payload (results of any size: var_out),
 * holds exactly its records and its nfail failures (in item order, within the segment, each message
 * ended); then *recs (results of any size; else NULL) and *fails point into buf. */
size_t mproc__var_records_span(const unsigned char *recs, size_t size, uint32_t count);
bool mproc__wire_job_ok(const wire_job *j, const unsigned char *payload);
bool mproc__wire_segment_split(const wire_result *h, const unsigned char *buf, size_t len, bool var_out,
                               const unsigned char **recs, const wire_fail **fails);

/* What the template and the manager tell each other. */
enum { TPL_SPAWN = 1, TPL_KILL, TPL_SPAWNED, TPL_SPAWN_FAILED, TPL_DIED, TPL_READY };
typedef struct tpl_msg {
  int32_t op, slot, pid, value; /* value: errno for SPAWN_FAILED, wait status for DIED, signal for KILL */
} tpl_msg;

#endif
