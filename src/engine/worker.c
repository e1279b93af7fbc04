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
 * item's record, items_done says so (see running_item).  Stops after an item that fails, describing it in
 * *fail (fail->code is 0 when none failed).  Returns the number of items run. */
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
    if (a) a += in_size;
    mproc__task_pad_record(t, rec, out_size);
    __atomic_store_n(&slot->items_done, i + 1, __ATOMIC_RELEASE);
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
static void segment_send(segment *g, bool last, const wire_fail *fail, const unsigned char *records) {
  bool failed = fail && fail->code;
  size_t gap = mproc__ring_pad_gap(g->ring, MPROC__REWIND_FROM, sizeof(wire_result));
  if (gap) {
    wire_result pad = {.magic = WIRE_MAGIC, .kind = JOB_PAD, .payload_len = gap - sizeof pad};
    mproc__ring_put_pad(g->ring, &pad, sizeof pad, gap);
  }
  size_t bytes = (size_t)g->count * g->rec;
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

int mproc__worker_loop(mproc__shared *sh, int index) {
  mproc__slot *slot = &sh->slots[index];
  const mproc__wconf *o = &sh->conf;
  int code = 0;
  mproc__task_enter_worker();
  if (o->initializer) {
    __atomic_store_n(&slot->in_init, 1, __ATOMIC_RELEASE);
    mproc__task_outcome init;
    if (mproc__task_run_local(o->initializer, o->init_arg, o->init_arg_len, index, -1, &init) != 0) {
      fprintf(stderr, "mproc: worker %d: initializer failed: %s %s\n", index, mproc_strerror(init.code),
              init.msg);
      return 120;
    }
    mproc__free(init.result);
    __atomic_store_n(&slot->in_init, 0, __ATOMIC_RELEASE);
  }
  unsigned char *arg = NULL, *outbuf = NULL;
  size_t arg_cap = 0, out_cap = 0;
  mproc__task_priv priv = {0};
  int done = 0;
  bool staging_mapped = false;
  for (;;) {
    wire_job j;
    mproc__ring_get_all_quiet(slot->in, &j, sizeof j);
    if (j.magic != WIRE_MAGIC) {
      code = 122;
      break;
    }
    if (j.kind == JOB_STOP) break;
    if (j.kind == JOB_PAD) { /* published whole with its header */
      mproc__ring_skip(slot->in, j.payload_len);
      continue;
    }
    if (!grow(&arg, &arg_cap, j.payload_len)) {
      code = 121; /* out of memory: reported as a crash of the job it had */
      break;
    }
    if (j.payload_len) mproc__ring_get_all_quiet(slot->in, arg, j.payload_len);
    mproc__ring_wake_producer(slot->in); /* once for header and payload */
    /* the manager may have taken the job back for an idle worker: then it is not ours (see claim[]) */
    uint64_t want = j.id;
    if (!__atomic_compare_exchange_n(&slot->claim[j.claim % MPROC__CLAIMS], &want, 0, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
      continue;
    char fn_err[MPROC_TASK_MSG_MAX];
    mproc_task_fn fn = (mproc_task_fn)mproc__fnref_decode(sh, j.fn, fn_err, sizeof fn_err);
    if (!fn) { /* an exec pool's function not found in this image: the job fails, the worker goes on */
      wire_result fr = {
          .kind = j.kind, .id = j.id, .code = MPROC_ENOTSUP, .first = j.first, .count = j.count, .last = 1};
      send_result(slot->out, &fr, fn_err, NULL, 0, NULL, 0);
      wake_late(slot);
      continue;
    }
    /* the arguments: in place in the shared arena, or the payload just read */
    const unsigned char *in = j.in_addr ? (const unsigned char *)(uintptr_t)j.in_addr : arg;
    wire_result r = {.kind = j.kind, .id = j.id, .first = j.first, .count = j.count, .last = 1};
    mproc_task t;
    if (j.kind == JOB_TASK) {
      uint64_t t0 = mproc__now_ns();
      __atomic_store_n(&slot->running_item, -1, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->started_ns, t0, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_job, j.id, __ATOMIC_RELEASE);
      mproc__task_begin(&t, &priv, NULL, 0, index, -1);
      t.attempt = (int)j.attempt;
      priv.seed = j.seed;
      r.code = mproc__task_finish_code(&t, fn(j.in_len ? in : NULL, j.in_len, &t));
      r.busy_ns = mproc__now_ns() - t0;
      send_result(slot->out, &r, r.code ? priv.msg : NULL, t.out, r.code ? 0 : t.out_len, NULL, 0);
    } else if (batch_aborted(sh, j.token)) {
      r.code = MPROC_ECANCELED;
      send_result(slot->out, &r, NULL, NULL, 0, NULL, 0);
    } else {
      /* the records: straight into the caller's array when it is shared, else into the staging area */
      unsigned char *out = (unsigned char *)(uintptr_t)j.out_addr;
      /* The staging area is mapped in whole before its first use, outside any timed item: its pages are new
       * shared memory, whose first touch costs far more than a task's work on some machines, and a stream
       * sizes its batches from its first items' times. */
      if (!out && j.out_size && !staging_mapped) {
        (void)mproc__plat_prefault(slot->staging, (size_t)slot->staging_size, 1);
        staging_mapped = true;
      }
      /* records in place in the arena: see MPROC__PREFAULT_MIN */
      if (o->own_mappings && j.in_addr && (size_t)j.count * j.in_size >= MPROC__PREFAULT_MIN)
        (void)mproc__plat_prefault((void *)(uintptr_t)j.in_addr, (size_t)j.count * j.in_size, 0);
      if (o->own_mappings && out && (size_t)j.count * j.out_size >= MPROC__PREFAULT_MIN)
        (void)mproc__plat_prefault(out, (size_t)j.count * j.out_size, 0); /* read: see MPROC__PREFAULT_MIN */
      __atomic_store_n(&slot->started_ns, mproc__now_ns(), __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_item, j.first, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->items_done, j.first, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_job, j.id, __ATOMIC_RELEASE);
      /* the context is set up once per batch; per item only what changes (this loop is a tiny map's cost) */
      mproc__task_begin(&t, &priv, NULL, j.out_size, index, j.first);
      priv.fixed = 1; /* each item's record: t.out is set per item */
      t.out_cap = j.out_size;
      priv.seed = j.seed;
      t.attempt = (int)j.attempt;
      code = run_batch(slot, fn, &t, &priv, &j, in, out, &outbuf, &out_cap);
      if (code) break;
    }
    __atomic_store_n(&slot->running_job, 0, __ATOMIC_RELEASE);
    wake_late(slot);
    done++;
    if (o->max_tasks_per_child > 0 && done >= o->max_tasks_per_child) break;
  }
  if (code == 0 && o->finalizer) o->finalizer();
  mproc__free(arg);
  mproc__free(outbuf);
  mproc__free(priv.heap);
  return code;
}
