/* worker.c: what a worker process runs: read a job from its ring, run it, write the result back. */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"

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
  for (int k = 0; k < LATE_WAKE_SPINS && !mproc__ring_consumer_asleep(slot->out); k++) {
    if (mproc__ring_used(slot->out) == 0 || mproc__ring_used(slot->in) > 0) break;
    mproc__cpu_relax();
    if (k % 32 == 31) sched_yield(); /* a reader on this CPU reads now: see YIELD_AFTER in ring.c */
  }
  mproc__ring_wake_if_unread(slot->out);
}

static bool batch_aborted(mproc__shared *sh, uint64_t token) {
  for (int k = 0; k < 16; k++)
    if (__atomic_load_n(&sh->aborted[k], __ATOMIC_ACQUIRE) == token) return true;
  return false;
}

/* A batch's items, one after the other: a tiny map's cost is this loop.  The job's fields are copied into
 * locals first: the task function could write anything reachable, so the compiler would read them again
 * from the job after every call.  0, or 121 when the failure list could not grow. */
static int run_items(mproc__slot *slot, mproc_task_fn fn, mproc_task *t, mproc__task_priv *priv,
                     const wire_job *j, const unsigned char *in, unsigned char *out, wire_fail **fails,
                     size_t *fail_cap, size_t *nfail) {
  const size_t in_size = j->in_size, out_size = j->out_size;
  const int64_t first = j->first, end = j->first + j->count;
  const bool timed = j->timed;
  const unsigned char *a = in_size ? in : NULL;
  unsigned char *rec = out;
  for (int64_t index = first; index < end; index++, rec += out_size) {
    /* the clock is read per item only when a timeout needs it: it costs as much as a tiny task */
    if (timed) __atomic_store_n(&slot->started_ns, mproc__now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&slot->running_item, index, __ATOMIC_RELEASE);
    if (out_size) t->out = rec;
    t->out_len = 0;
    t->index = index;
    if (__builtin_expect(priv->fail_code != 0, 0)) { /* left over from an earlier item */
      priv->fail_code = 0;
      priv->msg[0] = '\0';
    }
    int item_code = mproc__task_finish_code(t, fn(a, in_size, t));
    if (a) a += in_size;
    mproc__task_pad_record(t, rec, out_size);
    if (__builtin_expect(item_code != 0, 0)) {
      if (!grow(fails, fail_cap, (*nfail + 1) * sizeof(wire_fail))) return 121;
      wire_fail *f = &(*fails)[(*nfail)++];
      memset(f, 0, sizeof *f);
      f->index = index;
      f->code = item_code;
      snprintf(f->msg, sizeof f->msg, "%.123s", priv->msg);
    }
  }
  return 0;
}

void mproc__worker_main(mproc__shared *sh, int index) {
  signal(SIGINT, SIG_IGN); /* Ctrl-C is the caller's to handle; see docs/pool.md */
  int code = mproc__worker_loop(sh, index);
  fflush(NULL);
  _exit(code);
}

int mproc__worker_loop(mproc__shared *sh, int index) {
  mproc__slot *slot = &sh->slots[index];
  const mproc__wconf *o = &sh->conf;
  int code = 0;
  mproc__parallel_worker_begins();
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
  wire_fail *fails = NULL;
  size_t arg_cap = 0, out_cap = 0, fail_cap = 0;
  mproc__task_priv priv = {0};
  int done = 0;
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
    char fn_err[MPROC_TASK_MSG_MAX];
    mproc_task_fn fn = (mproc_task_fn)mproc__fnref_decode(sh, j.fn, fn_err, sizeof fn_err);
    if (!fn) { /* an exec pool's function not found in this image: the job fails, the worker goes on */
      wire_result fr = {.kind = j.kind, .id = j.id, .code = MPROC_ENOTSUP};
      send_result(slot->out, &fr, fn_err, NULL, 0, NULL, 0);
      wake_late(slot);
      continue;
    }
    /* the arguments: in place in the shared arena, or the payload just read */
    const unsigned char *in = j.in_addr ? (const unsigned char *)(uintptr_t)j.in_addr : arg;
    wire_result r = {.kind = j.kind, .id = j.id};
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
      /* the records: straight into the caller's array when it is shared, else sent back after the batch */
      unsigned char *out = (unsigned char *)(uintptr_t)j.out_addr;
      size_t nout = out ? 0 : (size_t)j.count * j.out_size;
      if (!grow(&outbuf, &out_cap, nout)) {
        code = 121;
        break;
      }
      if (!out) out = outbuf;
      /* records in place in the arena: see MPROC__PREFAULT_MIN */
      if (o->own_mappings && j.in_addr && (size_t)j.count * j.in_size >= MPROC__PREFAULT_MIN)
        (void)mproc__plat_prefault((void *)(uintptr_t)j.in_addr, (size_t)j.count * j.in_size, 0);
      if (o->own_mappings && j.out_addr && (size_t)j.count * j.out_size >= MPROC__PREFAULT_MIN)
        (void)mproc__plat_prefault(out, (size_t)j.count * j.out_size, 0); /* read: see MPROC__PREFAULT_MIN */
      size_t nfail = 0;
      uint64_t t0 = mproc__now_ns();
      __atomic_store_n(&slot->started_ns, t0, __ATOMIC_RELAXED);
      __atomic_store_n(&slot->running_job, j.id, __ATOMIC_RELEASE);
      /* the context is set up once per batch; per item only what changes (this loop is a tiny map's cost) */
      mproc__task_begin(&t, &priv, j.out_size ? out : NULL, j.out_size, index, j.first);
      priv.fixed = 1;
      priv.seed = j.seed;
      t.attempt = (int)j.attempt;
      code = run_items(slot, fn, &t, &priv, &j, in, out, &fails, &fail_cap, &nfail);
      if (code) break;
      r.busy_ns = mproc__now_ns() - t0;
      r.nfail = (uint32_t)nfail;
      send_result(slot->out, &r, NULL, outbuf, nout, fails, nfail * sizeof(wire_fail));
    }
    __atomic_store_n(&slot->running_job, 0, __ATOMIC_RELEASE);
    wake_late(slot);
    done++;
    if (o->max_tasks_per_child > 0 && done >= o->max_tasks_per_child) break;
  }
  if (code == 0 && o->finalizer) o->finalizer();
  mproc__free(arg);
  mproc__free(outbuf);
  mproc__free(fails);
  mproc__free(priv.heap);
  return code;
}
