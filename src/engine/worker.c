/* worker.c: what a worker process runs: read a job from its ring, run it, write the result back. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "ipc/spinwait.h"

/* Grows *p to need bytes; false when memory ran out (*p is kept). */
static bool grow(void *pp, size_t *cap, size_t need) {
  void **p = pp;
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 4096;
  while (c < need) c *= 2;
  void *q = mproc__realloc(*p, c);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

/* Writes a result without waking a sleeping manager: see wake_late(). */
static void send_result(mproc__ring *out, wire_result *h, const char *msg, const void *payload, size_t len,
                        const void *tail, size_t tail_len) {
  size_t gap = mproc__ring_pad_gap(out, MPROC__REWIND_FROM, sizeof(wire_result));
  if (gap) {
    wire_result pad = {.magic = WIRE_MAGIC, .kind = JOB_PAD, .payload_len = gap - sizeof pad};
    mproc__ring_put_pad(out, &pad, sizeof pad, gap);
  }
  h->magic = WIRE_MAGIC;
  h->msg_len = msg ? (uint32_t)strlen(msg) : 0;
  h->payload_len = len + tail_len;
  mproc__ring_put_all_quiet(out, h, sizeof *h);
  if (h->msg_len) mproc__ring_put_all_quiet(out, msg, h->msg_len);
  if (len) mproc__ring_put_all_quiet(out, payload, len);
  if (tail_len) mproc__ring_put_all_quiet(out, tail, tail_len);
}

/* After a result: a caller waiting for it usually polls the ring and takes it within a microsecond or two,
 * so the sleeping manager is woken (a system call, and a thread that competes for the CPU and the engine
 * lock) only if the result is still unread after a short spin, or at once when the next job is already
 * there.  This halves a round trip.  No spin when the manager is asleep and nobody polls: then nobody
 * would read it. */
#define LATE_WAKE_SPINS 100
static void wake_late(mproc__slot *slot) {
  /* a reader on this CPU reads now: see YIELD_AFTER in ring.c */
  mproc__spin spin = {.rounds = LATE_WAKE_SPINS, .pauses = 1, .yield_from = 31, .yield_every = 32};
  while (!mproc__ring_consumer_asleep(slot->out) && mproc__ring_used(slot->out) > 0 &&
         mproc__ring_used(slot->in) == 0 && mproc__spin_once(&spin)) {
  }
  mproc__ring_wake_if_unread(slot->out);
}

static bool batch_aborted(mproc__shared *sh, uint64_t token) {
  for (int k = 0; k < 16; k++)
    if (__atomic_load_n(&sh->aborted[k], __ATOMIC_ACQUIRE) == token) return true;
  return false;
}

/* Items [index, index + count) of a batch, one after the other, their records from rec on (out_size apart):
 * a tiny map's cost is this loop.  The job's fields are copied into locals first: the task function could
 * write anything reachable, so the compiler would read them again from the job after every call.  After each
 * item's record, items_done says so (see running_item), but not after a failed one's: the caller says it once
 * the failure is sent.  Stops after an item that fails, describing it in *fail (fail->code is 0 when none
 * failed).  Returns the number of items run. */
static uint32_t run_items(mproc__slot *slot, mproc_task_fn fn, mproc_task *t, mproc__task_priv *priv,
                          const wire_job *j, int64_t index, uint32_t count, const unsigned char *a,
                          unsigned char *rec, wire_fail *fail) {
  const size_t in_size = j->in_size, out_size = j->out_size;
  const int64_t end = index + count;
  const bool timed = j->timed;
  fail->code = 0;
  for (int64_t i = index; i < end; i++, rec += out_size) {
    /* the clock is read per item only when a timeout needs it: it costs as much as a tiny task */
    if (timed) __atomic_store_n(&slot->started_ns, mproc__now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&slot->running_item, i, __ATOMIC_RELEASE);
    if (out_size) t->out = rec;
    t->out_len = 0;
    t->index = i;
    if (__builtin_expect(priv->fail_code != 0, 0)) { /* left over from an earlier item */
      priv->fail_code = 0;
      priv->msg[0] = '\0';
    }
    int item_code = mproc__task_finish_code(t, fn(a, in_size, t));
    if (timed) __atomic_store_n(&slot->started_ns, MPROC__RETURNED, __ATOMIC_RELEASE);
    if (a) a += in_size;
    mproc__task_pad_record(t, rec, out_size);
    /* a failed item counts as done only once its failure is sent (run_batch): a death before that must not
     * let the manager take its record from the staging area as a success */
    if (__builtin_expect(item_code == 0, 1)) __atomic_store_n(&slot->items_done, i + 1, __ATOMIC_RELEASE);
    if (__builtin_expect(item_code != 0, 0)) {
      memset(fail, 0, sizeof *fail);
      fail->index = i;
      fail->code = item_code;
      snprintf(fail->msg, sizeof fail->msg, "%.123s", priv->msg);
      return (uint32_t)(i - index + 1);
    }
  }
  return count;
}

/* The open segment of a batch's results (see wire_result): items [first, first + count), whose records are
 * in the slot's staging area (or in place) until the segment is sent. */
typedef struct segment {
  mproc__ring *ring;
  uint64_t id;
  size_t rec;     /* bytes per record sent: 0 when records are written in place */
  int64_t first;  /* its first item */
  uint32_t count; /* items in it so far */
  uint64_t t0;    /* when it began */
} segment;

static void segment_open(segment *g, int64_t first) {
  g->first = first;
  g->count = 0;
  g->t0 = mproc__now_ns();
}

/* Sends the segment through the ring (header, records, failure), waiting for room as it goes.  No wake at
 * the end: the job's end wakes the manager (wake_late), and a worker waiting for room wakes it then. */
static void segment_send_bytes(segment *g, bool last, const wire_fail *fail, const unsigned char *records,
                               size_t bytes) {
  bool failed = fail && fail->code;
  size_t gap = mproc__ring_pad_gap(g->ring, MPROC__REWIND_FROM, sizeof(wire_result));
  if (gap) {
    wire_result pad = {.magic = WIRE_MAGIC, .kind = JOB_PAD, .payload_len = gap - sizeof pad};
    mproc__ring_put_pad(g->ring, &pad, sizeof pad, gap);
  }
  wire_result h = {.magic = WIRE_MAGIC,
                   .kind = JOB_BATCH,
                   .id = g->id,
                   .nfail = failed,
                   .last = last,
                   .busy_ns = mproc__now_ns() - g->t0,
                   .first = g->first,
                   .count = g->count,
                   .payload_len = bytes + (failed ? sizeof *fail : 0)};
  mproc__ring_put_all_quiet(g->ring, &h, sizeof h);
  if (bytes) mproc__ring_put_all_quiet(g->ring, records, bytes);
  if (failed) mproc__ring_put_all_quiet(g->ring, fail, sizeof *fail);
}

static void segment_send(segment *g, bool last, const wire_fail *fail, const unsigned char *records) {
  segment_send_bytes(g, last, fail, records, (size_t)g->count * g->rec);
}

/* Runs a batch and sends its results in segments.  Each item's record goes where the manager finds it if
 * this process dies: in place (out != NULL: the caller's array in the arena, or the caller's own memory for
 * threads), or into the slot's staging area, which is sent as a segment when an item fails, when it is full
 * and at the end.  items_done says which items have their record there.  So an item that finished is never
 * run again after a later one crashes: the manager takes what was sent, then the records of the items
 * before items_done from the staging area.  A record larger than the staging area goes through the scratch
 * buffer and is sent alone (a death while it is sent loses that one result).  0, or 121 out of memory. */
static int run_batch(mproc__slot *slot, mproc_task_fn fn, mproc_task *t, mproc__task_priv *priv,
                     const wire_job *j, const unsigned char *in, unsigned char *out, unsigned char **scratch,
                     size_t *scratch_cap) {
  const size_t out_size = j->out_size, in_size = j->in_size;
  const int64_t end = j->first + j->count;
  segment g = {.ring = slot->out, .id = j->id, .rec = out ? 0 : out_size};
  /* items a segment holds */
  const size_t cap = out || !out_size ? SIZE_MAX : slot->staging_size / out_size;
  unsigned char *staging = slot->staging;
  segment_open(&g, j->first);
  bool sent_last = false;
  for (int64_t index = j->first; index < end;) {
    const unsigned char *a = in_size ? in + (size_t)(index - j->first) * in_size : NULL;
    wire_fail fail;
    if (cap == 0) { /* a record larger than the staging area */
      if (!grow(scratch, scratch_cap, out_size)) return 121;
      g.count = run_items(slot, fn, t, priv, j, index, 1, a, *scratch, &fail);
      index++;
      segment_send(&g, index == end, &fail, *scratch);
      if (fail.code) __atomic_store_n(&slot->items_done, index, __ATOMIC_RELEASE);
      sent_last = index == end;
      segment_open(&g, index);
      continue;
    }
    if (g.count == cap) {
      segment_send(&g, false, NULL, staging);
      segment_open(&g, index);
    }
    size_t n = (size_t)(end - index);
    if (n > cap - g.count) n = cap - g.count;
    unsigned char *rec = out ? out + (size_t)(index - j->first) * out_size
                             : (out_size ? staging + (size_t)g.count * out_size : NULL);
    uint32_t ran = run_items(slot, fn, t, priv, j, index, (uint32_t)n, a, rec, &fail);
    g.count += ran;
    index += ran;
    if (__builtin_expect(fail.code != 0, 0)) {
      segment_send(&g, index == end, &fail, staging);
      __atomic_store_n(&slot->items_done, index, __ATOMIC_RELEASE); /* the failure is the manager's now */
      sent_last = index == end;
      if (index < end) segment_open(&g, index);
    }
  }
  if (!sent_last) segment_send(&g, true, NULL, staging);
  return 0;
}

void mproc__worker_main(mproc__shared *sh, int index) {
  mproc__plat_ignore_signal(SIGINT); /* Ctrl-C is the caller's to handle; see docs/pool.md */
  int code = mproc__worker_loop(sh, index);
  fflush(NULL);
  mproc__plat_exit(code);
}

/* What a worker keeps from one job to the next. */
typedef struct worker {
  mproc__slot *slot;
  const mproc__wconf *o;
  int index;
  unsigned char *arg;     /* the payload of the job read last */
  mproc__big arg_block;   /* where it lies: a map's batches of items are megabytes, on huge pages */
  unsigned char *scratch; /* a batch's record larger than the staging area (see run_batch) */
  size_t scratch_cap;
  mproc__task_priv priv;
  bool staging_mapped; /* the staging area has been touched in whole */
} worker;

/* Runs the pool's initializer, if it has one; false when it failed (said on stderr). */
static bool run_initializer(worker *w) {
  const mproc__wconf *o = w->o;
  if (!o->initializer) return true;
  __atomic_store_n(&w->slot->in_init, 1, __ATOMIC_RELEASE);
  mproc__task_outcome init;
  if (mproc__task_run_local(o->initializer, o->init_arg, o->init_arg_len, w->index, -1, &init) != 0) {
    fprintf(stderr, "mproc: worker %d: initializer failed: %s %s\n", w->index, mproc_strerror(init.code),
            init.msg);
    return false;
  }
  mproc__free(init.result);
  __atomic_store_n(&w->slot->in_init, 0, __ATOMIC_RELEASE);
  return true;
}

#define GOT_JOB 0
#define GOT_STOP (-1)

/* Waits for the next job and reads it, its payload into w->arg; padding is skipped.  GOT_JOB, GOT_STOP, or
 * the exit code of a worker that cannot go on: 122 a broken record, 121 out of memory (reported as a crash
 * of the job it had). */
static int next_job(worker *w, wire_job *j) {
  mproc__ring *in = w->slot->in;
  for (;;) {
    mproc__ring_get_all_quiet(in, j, sizeof *j);
    if (j->magic != WIRE_MAGIC) return 122;
    if (j->kind == JOB_STOP) return GOT_STOP;
    if (j->kind != JOB_PAD) break;
    mproc__ring_skip(in, j->payload_len); /* published whole with its header */
  }
  if (j->payload_len > w->arg_block.bytes) { /* doubling, from 4 KiB */
    size_t c = w->arg_block.bytes ? w->arg_block.bytes : 4096;
    while (c < j->payload_len) c = c > SIZE_MAX / 2 ? (size_t)j->payload_len : 2 * c;
    if (!mproc__big_resize(&w->arg_block, c)) return 121;
    w->arg = w->arg_block.p;
  }
  if (j->payload_len) mproc__ring_get_all_quiet(in, w->arg, j->payload_len);
  mproc__ring_wake_producer(in); /* once for header and payload */
  return mproc__wire_job_ok(j, w->arg) ? GOT_JOB : 122;
}

/* Takes the job by swapping its claim word from its id to 0; false when the manager took it back for an
 * idle worker: then it is not ours (see claim[]). */
static bool claim(mproc__slot *slot, const wire_job *j) {
  uint64_t want = j->id;
  return __atomic_compare_exchange_n(&slot->claim[j->claim % MPROC__CLAIMS], &want, 0, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* The result record of a job, before its outcome. */
static wire_result result_of(const wire_job *j) {
  return (wire_result){.kind = j->kind, .id = j->id, .first = j->first, .count = j->count, .last = 1};
}

/* An exec pool's function not found in this image: the job fails, the worker goes on. */
static void fail_unknown_fn(mproc__slot *slot, const wire_job *j, const char *fn_err) {
  wire_result fr = result_of(j);
  fr.code = MPROC_ENOTSUP;
  send_result(slot->out, &fr, fn_err, NULL, 0, NULL, 0);
  wake_late(slot);
}

/* Runs a task and sends its result. */
static void run_task(worker *w, const wire_job *j, mproc_task_fn fn, const unsigned char *in) {
  mproc__slot *slot = w->slot;
  wire_result r = result_of(j);
  mproc_task t;
  uint64_t t0 = mproc__now_ns();
  __atomic_store_n(&slot->running_item, -1, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->started_ns, t0, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->running_job, j->id, __ATOMIC_RELEASE);
  mproc__task_begin(&t, &w->priv, NULL, 0, w->index, -1);
  t.attempt = (int)j->attempt;
  w->priv.seed = j->seed;
  r.code = mproc__task_finish_code(&t, fn(j->in_len ? in : NULL, j->in_len, &t));
  __atomic_store_n(&slot->started_ns, MPROC__RETURNED, __ATOMIC_RELEASE);
  r.busy_ns = mproc__now_ns() - t0;
  send_result(slot->out, &r, r.code ? w->priv.msg : NULL, t.out, r.code ? 0 : t.out_len, NULL, 0);
}

/* A batch of a map that was aborted after it was handed out: none of its items runs. */
static void send_cancelled(mproc__slot *slot, const wire_job *j) {
  wire_result r = result_of(j);
  r.code = MPROC_ECANCELED;
  send_result(slot->out, &r, NULL, NULL, 0, NULL, 0);
}

/* Writes a result of any size as its record (wire.h, MPROC__VAR_OUT) at to. */
static size_t put_var_record(unsigned char *to, const void *data, uint64_t len) {
  memcpy(to, &len, 8);
  if (len) memcpy(to + 8, data, (size_t)len);
  size_t rec = (size_t)mproc__var_rec_size(len);
  memset(to + 8 + len, 0, rec - 8 - (size_t)len);
  return rec;
}

/* A batch of items of any size (wire.h, MPROC__VAR_*): each item read from the payload after the lengths,
 * or in place; each result, of any size, written as a record into the staging area, which is sent as a
 * segment when an item fails, when the next record does not fit, and at the end (items_done counts the
 * records there, as for run_batch).  A record larger than the whole staging area is sent alone from the
 * scratch buffer, sent_alone naming it meanwhile: a death then loses that one result.  0, or 121 out of
 * memory. */
static int run_var_batch(worker *w, const wire_job *j, mproc_task_fn fn) {
  mproc__slot *slot = w->slot;
  const uint32_t count = j->count;
  const bool place = j->var & MPROC__VAR_IN_PLACE;
  const uint64_t *lens = (const uint64_t *)(const void *)w->arg;
  if (count && !lens) return 122;                      /* no lengths: a broken record */
  const unsigned char *a = w->arg + (size_t)count * 8; /* the first item's bytes, when not in place */
  const size_t size = (size_t)slot->staging_size;
  unsigned char *staging = slot->staging;
  if (!w->staging_mapped) {
    (void)mproc__plat_prefault(staging, size, 1);
    w->staging_mapped = true;
  }
  __atomic_store_n(&slot->started_ns, mproc__now_ns(), __ATOMIC_RELAXED);
  __atomic_store_n(&slot->running_item, j->first, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->items_done, j->first, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->sent_alone, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->running_job, j->id, __ATOMIC_RELEASE);
  mproc_task t;
  mproc__task_priv *priv = &w->priv;
  mproc__task_begin(&t, priv, NULL, 0, w->index, j->first);
  priv->seed = j->seed;
  t.attempt = (int)j->attempt;
  segment g = {.ring = slot->out, .id = j->id};
  segment_open(&g, j->first);
  size_t used = 0; /* bytes of records in the staging area */
  for (uint32_t k = 0; k < count; k++) {
    const int64_t idx = j->first + k;
    const bool last = k + 1 == count;
    const void *arg;
    size_t len;
    if (place) {
      arg = (const void *)(uintptr_t)lens[2 * (size_t)k];
      len = (size_t)lens[2 * (size_t)k + 1];
    } else {
      arg = a;
      len = (size_t)lens[k];
      a += len;
    }
    if (j->timed) __atomic_store_n(&slot->started_ns, mproc__now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&slot->running_item, idx, __ATOMIC_RELEASE);
    mproc__task_begin(&t, priv, NULL, 0, w->index, idx); /* a growable result, its buffer kept */
    t.attempt = (int)j->attempt;
    int code = mproc__task_finish_code(&t, fn(len ? arg : NULL, len, &t));
    if (j->timed) __atomic_store_n(&slot->started_ns, MPROC__RETURNED, __ATOMIC_RELEASE);
    wire_fail fail; /* read only when its code is set (no clearing of its message for every item) */
    fail.code = code;
    if (code) {
      memset(&fail, 0, sizeof fail);
      fail.index = idx;
      fail.code = code;
      snprintf(fail.msg, sizeof fail.msg, "%.123s", priv->msg);
    }
    size_t rlen = code ? 0 : t.out_len;
    size_t rec = (size_t)mproc__var_rec_size(rlen);
    if (rec > size) { /* alone, after what is staged */
      if (g.count) {
        segment_send_bytes(&g, false, NULL, staging, used);
        segment_open(&g, idx);
        used = 0;
      }
      if (!grow(&w->scratch, &w->scratch_cap, rec)) return 121;
      put_var_record(w->scratch, t.out, rlen);
      __atomic_store_n(&slot->sent_alone, idx + 1, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->items_done, idx + 1, __ATOMIC_RELEASE);
      g.count = 1;
      segment_send_bytes(&g, last, &fail, w->scratch, rec);
      __atomic_store_n(&slot->sent_alone, 0, __ATOMIC_RELEASE);
      segment_open(&g, idx + 1);
      continue;
    }
    if (size - used < rec) {
      segment_send_bytes(&g, false, NULL, staging, used);
      segment_open(&g, idx);
      used = 0;
    }
    used += put_var_record(staging + used, t.out, rlen);
    /* a failed item counts as done only once its failure is sent (see run_items) */
    if (!code) __atomic_store_n(&slot->items_done, idx + 1, __ATOMIC_RELEASE);
    g.count++;
    if (code || last) {
      segment_send_bytes(&g, last, &fail, staging, used);
      if (code) __atomic_store_n(&slot->items_done, idx + 1, __ATOMIC_RELEASE);
      segment_open(&g, idx + 1);
      used = 0;
    }
  }
  if (count == 0) segment_send_bytes(&g, true, NULL, staging, 0);
  return 0;
}

/* Runs a batch: its memory mapped in first, then its items (run_batch).  0, or 121 out of memory. */
static int run_batch_job(worker *w, const wire_job *j, mproc_task_fn fn, const unsigned char *in) {
  if (j->var) return run_var_batch(w, j, fn);
  mproc__slot *slot = w->slot;
  const mproc__wconf *o = w->o;
  /* the records: straight into the caller's array when it is shared, else into the staging area */
  unsigned char *out = (unsigned char *)(uintptr_t)j->out_addr;
  /* The staging area is mapped in whole before its first use, outside any timed item: its pages are new
   * shared memory, whose first touch costs far more than a task's work on some machines, and a stream
   * sizes its batches from its first items' times. */
  if (!out && j->out_size && !w->staging_mapped) {
    (void)mproc__plat_prefault(slot->staging, (size_t)slot->staging_size, 1);
    w->staging_mapped = true;
  }
  /* records in place in the arena: see MPROC__PREFAULT_MIN */
  if (o->own_mappings && j->in_addr && (size_t)j->count * j->in_size >= MPROC__PREFAULT_MIN)
    (void)mproc__plat_prefault((void *)(uintptr_t)j->in_addr, (size_t)j->count * j->in_size, 0);
  if (o->own_mappings && out && (size_t)j->count * j->out_size >= MPROC__PREFAULT_MIN)
    (void)mproc__plat_prefault(out, (size_t)j->count * j->out_size, 0); /* read: see MPROC__PREFAULT_MIN */
  __atomic_store_n(&slot->started_ns, mproc__now_ns(), __ATOMIC_RELAXED);
  __atomic_store_n(&slot->running_item, j->first, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->items_done, j->first, __ATOMIC_RELAXED);
  __atomic_store_n(&slot->running_job, j->id, __ATOMIC_RELEASE);
  /* the context is set up once per batch; per item only what changes (this loop is a tiny map's cost) */
  mproc_task t;
  mproc__task_begin(&t, &w->priv, NULL, j->out_size, w->index, j->first);
  w->priv.fixed = 1; /* each item's record: t.out is set per item */
  t.out_cap = j->out_size;
  w->priv.seed = j->seed;
  t.attempt = (int)j->attempt;
  return run_batch(slot, fn, &t, &w->priv, j, in, out, &w->scratch, &w->scratch_cap);
}

/* After a job: it no longer runs, and the manager hears of its result (wake_late). */
static void job_done(mproc__slot *slot) {
  __atomic_store_n(&slot->running_job, 0, __ATOMIC_RELEASE);
  wake_late(slot);
}

int mproc__worker_loop(mproc__shared *sh, int index) {
  worker w = {.slot = &sh->slots[index], .o = &sh->conf, .index = index};
  mproc__task_enter_worker();
  if (!run_initializer(&w)) return 120;
  int code, done = 0;
  for (;;) {
    wire_job j;
    code = next_job(&w, &j);
    if (code != GOT_JOB) break;
    if (!claim(w.slot, &j)) continue;
    char fn_err[MPROC_TASK_MSG_MAX];
    mproc_task_fn fn = (mproc_task_fn)mproc__fnref_decode(sh, j.fn, fn_err, sizeof fn_err);
    if (!fn) {
      fail_unknown_fn(w.slot, &j, fn_err);
      continue;
    }
    /* the arguments: in place in the shared arena, or the payload just read */
    const unsigned char *in = j.in_addr ? (const unsigned char *)(uintptr_t)j.in_addr : w.arg;
    if (j.kind == JOB_TASK) {
      run_task(&w, &j, fn, in);
    } else if (batch_aborted(sh, j.token)) {
      send_cancelled(w.slot, &j);
    } else {
      code = run_batch_job(&w, &j, fn, in);
      if (code) break;
    }
    job_done(w.slot);
    done++;
    if (w.o->max_tasks_per_child > 0 && done >= w.o->max_tasks_per_child) break;
  }
  if (code == GOT_STOP) code = 0;
  if (code == 0 && w.o->finalizer) w.o->finalizer();
  mproc__big_free(&w.arg_block);
  mproc__free(w.scratch);
  mproc__free(w.priv.heap);
  return code;
}
