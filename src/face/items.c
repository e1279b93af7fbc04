/* items.c: maps, streams and Parallel over items of any size (mproc/items.h): reading an item in each of
 * the input's forms, and the results store of the all-at-once form. */
#include <stdio.h>

#include "face/face.h"

/* ---- the input's forms ---- */

/* Exactly one form (or none for an empty input), and packed offsets that never decrease. */
int mproc__items_check(const mproc_items *in) {
  if (!in) return MPROC_EINVAL;
  int forms = (in->array != NULL) + (in->strings != NULL) + (in->packed != NULL || in->offsets != NULL) +
              (in->next != NULL);
  if (forms > 1 || (forms == 0 && in->n > 0)) return MPROC_EINVAL;
  if (in->packed || in->offsets) {
    if (!in->offsets || (!in->packed && in->n > 0)) return MPROC_EINVAL;
    for (size_t i = 0; i < in->n; i++)
      if (in->offsets[i + 1] < in->offsets[i]) return MPROC_EINVAL;
  }
  if (in->array)
    for (size_t i = 0; i < in->n; i++)
      if (!in->array[i].data && in->array[i].len) return MPROC_EINVAL;
  if (in->strings)
    for (size_t i = 0; i < in->n; i++)
      if (!in->strings[i]) return MPROC_EINVAL;
  return 0;
}

const void *mproc__items_at(const mproc_items *in, size_t i, size_t *len) {
  if (in->array) {
    *len = in->array[i].len;
    return in->array[i].data;
  }
  if (in->strings) {
    *len = strlen(in->strings[i]) + 1;
    return in->strings[i];
  }
  *len = in->offsets[i + 1] - in->offsets[i];
  return (const unsigned char *)in->packed + in->offsets[i];
}

/* ---- the results store ---- */

/* Where the results' bytes are.  A map over an input of known length keeps them UNIFORM while every result
 * has one length (a hash, a digest, a number: the common case): item i's at buf + i * ulen, nothing per item
 * but a bit.  The first result of another length turns the store GENERAL (an offset and a length per item,
 * the bytes in the order they came after those kept so far, which stay where they are); so is a lazy input's
 * store from the start, and one whose first result is longer than UNIFORM_MAX.  The per-item index was most
 * of the memory a map of short results wrote (16 of 28 bytes per item), and memory first written costs more
 * than the copy on some machines (see docs/design.md). */
enum { STORE_FIRST, STORE_UNIFORM, STORE_GENERAL };
#define UNIFORM_MAX 256

struct mproc_results {
  size_t n;       /* items */
  size_t slots;   /* entries the arrays have room for (a lazy input's grow as items come) */
  int mode;       /* STORE_* */
  size_t ulen;    /* UNIFORM: every result's length */
  uint64_t *kept; /* a bit per item: it ended well and its result is here */
  int *code;      /* 0, or the item's failure code; zeroed when made, written only where an item failed */
  uint64_t *off;  /* GENERAL: where item i's result begins in buf */
  uint64_t *len;  /* and its length */
  unsigned char *buf;
  size_t used, cap;   /* GENERAL: bytes of buf used and allocated */
  bool out_of_memory; /* a result could not be kept: it reads as MPROC_ENOMEM, the map fails with it */
  mproc__big kept_block, code_block, off_block, len_block, buf_block; /* where the arrays live */
};

/* Large arrays of the store are on huge pages from their first byte (mproc__big_resize): they are written
 * once each, in order, and a page fault per 4 KiB was most of a first map's cost. */
static void *store_alloc(mproc__big *b, size_t bytes) { return mproc__big_resize(b, bytes) ? b->p : NULL; }

/* b grown to `bytes` with the new part zeroed (from `had`), or made zeroed without touching its pages when
 * it is new. */
static void *store_zeroed(mproc__big *b, size_t had, size_t bytes) {
  if (had == 0) return mproc__big_zeroed(b, bytes) ? b->p : NULL;
  if (!mproc__big_resize(b, bytes)) return NULL;
  memset((char *)b->p + had, 0, bytes - had);
  return b->p;
}

static size_t kept_words(size_t slots) { return (slots + 63) / 64; }
static bool is_kept(const mproc_results *r, size_t i) { return r->kept[i / 64] >> (i % 64) & 1; }

/* GENERAL's offsets and lengths for `slots` items.  False without memory. */
static bool store_index(mproc_results *r, size_t slots) {
  uint64_t *off = store_alloc(&r->off_block, slots * sizeof *off);
  if (off) r->off = off;
  uint64_t *len = store_alloc(&r->len_block, slots * sizeof *len);
  if (len) r->len = len;
  return off && len;
}

/* Room for `slots` items: the bits and the codes (and GENERAL's index), the new ones zero.  False without
 * memory. */
static bool store_slots(mproc_results *r, size_t slots) {
  uint64_t *kept = store_zeroed(&r->kept_block, kept_words(r->slots) * 8, kept_words(slots) * 8);
  if (kept) r->kept = kept;
  int *code = store_zeroed(&r->code_block, r->slots * sizeof *code, slots * sizeof *code);
  if (code) r->code = code;
  if (!kept || !code || (r->mode == STORE_GENERAL && !store_index(r, slots))) return false;
  r->slots = slots;
  return true;
}

/* A store for n items (0: a lazy input's, which grows). */
static mproc_results *mproc__results_new(size_t n) {
  mproc_results *r = mproc__calloc(1, sizeof *r);
  if (!r) return NULL;
  r->n = n;
  r->mode = n ? STORE_FIRST : STORE_GENERAL;
  if (!store_slots(r, n ? n : 64)) {
    mproc_results_free(r);
    return NULL;
  }
  return r;
}

/* Room for len more bytes of results, GENERAL (lock held).  False when memory ran out. */
static bool results_room(mproc_results *r, size_t len) {
  if (r->cap - r->used < len) {
    size_t cap = r->cap ? r->cap : (r->n > 256 ? r->n * 16 : 4096); /* a guess: short results */
    while (cap - r->used < len) {
      if (cap > SIZE_MAX / 2) return false;
      cap *= 2;
    }
    unsigned char *b = store_alloc(&r->buf_block, cap);
    if (!b) return false;
    r->buf = b;
    r->cap = cap;
  }
  return true;
}

/* The first result is len bytes: UNIFORM when n of them fit in memory, else GENERAL. */
static void store_first(mproc_results *r, size_t len) {
  r->mode = STORE_GENERAL;
  if (len <= UNIFORM_MAX &&
      (len == 0 || (r->n <= SIZE_MAX / len && store_alloc(&r->buf_block, r->n * len)))) {
    r->mode = STORE_UNIFORM;
    r->ulen = len;
    r->buf = len ? r->buf_block.p : NULL;
    return;
  }
  if (!store_index(r, r->slots)) r->mode = STORE_FIRST; /* (tried again with the next result) */
}

/* UNIFORM to GENERAL: every item's offset and length as UNIFORM placed it (read only for items kept), the
 * next results after them.  False without memory (the store stays UNIFORM). */
static bool store_general(mproc_results *r) {
  if (!store_index(r, r->slots)) return false;
  for (size_t i = 0; i < r->n; i++) {
    r->off[i] = (uint64_t)(i * r->ulen);
    r->len[i] = r->ulen;
  }
  r->used = r->cap = r->n * r->ulen;
  r->mode = STORE_GENERAL;
  return true;
}

/* Keeps item i's result (lock held).  False when memory ran out: the item then reads as MPROC_ENOMEM. */
static bool mproc__results_put(mproc_results *r, size_t i, const void *data, size_t len) {
  if (r->mode == STORE_FIRST) store_first(r, len);
  if (r->mode == STORE_UNIFORM && len != r->ulen) (void)store_general(r);
  if (r->mode == STORE_UNIFORM && len == r->ulen) {
    if (len) memcpy(r->buf + i * len, data, len);
  } else if (r->mode == STORE_GENERAL && results_room(r, len)) {
    if (len) memcpy(r->buf + r->used, data, len);
    r->off[i] = r->used;
    r->len[i] = len;
    r->used += len;
  } else {
    r->out_of_memory = true;
    r->code[i] = MPROC_ENOMEM;
    return false;
  }
  r->kept[i / 64] |= (uint64_t)1 << (i % 64);
  return true;
}

/* How item i ended: 0 (its result kept), its failure code, or MPROC_ECANCELED when it did not end. */
static int item_code(const mproc_results *r, size_t i) {
  if (r->code[i]) return r->code[i];
  return is_kept(r, i) ? 0 : MPROC_ECANCELED;
}

size_t mproc_results_count(const mproc_results *r) { return r ? r->n : 0; }

int mproc_results_get(const mproc_results *r, size_t i, const void **data, size_t *len) {
  if (!r || !data || !len || i >= r->n) return MPROC_EINVAL;
  *data = NULL;
  *len = 0;
  int code = item_code(r, i);
  if (code) return code;
  if (r->mode == STORE_UNIFORM) {
    *len = r->ulen;
    *data = r->ulen ? r->buf + i * r->ulen : (const void *)"";
  } else {
    *len = (size_t)r->len[i];
    *data = r->buf ? r->buf + r->off[i] : (const void *)"";
  }
  return 0;
}

void mproc_results_free(mproc_results *r) {
  if (!r) return;
  mproc__big_free(&r->kept_block);
  mproc__big_free(&r->code_block);
  mproc__big_free(&r->off_block);
  mproc__big_free(&r->len_block);
  mproc__big_free(&r->buf_block);
  mproc__free(r);
}

/* Makes room for n items (a lazy input's results, as they come); false without memory. */
static bool results_grow(mproc_results *r, size_t n) {
  if (n > r->slots) {
    size_t slots = r->slots;
    while (slots < n) slots *= 2;
    if (!store_slots(r, slots)) return false;
  }
  if (n > r->n) r->n = n; /* the count is what came; the arrays may hold more */
  return true;
}

/* ---- the all-at-once form over a lazy input: a stream whose results are gathered ---- */

static int map_lazy_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in, const mproc_map_opts *o,
                          mproc_results **out, mproc_map_report *report, const mproc__map_hooks *hooks) {
  if (o->item_codes) return MPROC_EINVAL; /* n codes, for an n nobody knows yet */
  mproc_results *res = mproc__results_new(0);
  if (!res) return MPROC_ENOMEM;
  mproc_stream_opts so = {.chunk_size = o->chunk_size,
                          .task_timeout = o->task_timeout,
                          .max_retries = o->max_retries,
                          .seed = o->seed};
  mproc_stream *s;
  int r = mproc__stream_start_items(pool, fn, in, &so, o, &s);
  if (r < 0) {
    mproc_results_free(res);
    return r;
  }
  double deadline = o->timeout > 0 ? mproc__deadline(o->timeout) : INFINITY;
  bool ticking = hooks && hooks->tick;
  double next_tick = ticking ? mproc__plat_now() + hooks->interval : INFINITY;
  int code = 0;
  for (;;) {
    int64_t idx = -1; /* set only when an item is yielded */
    mproc_item it;
    double until = next_tick < deadline ? next_tick : deadline;
    double left = isinf(until) ? MPROC_FOREVER : until - mproc__plat_now();
    if (left < 0 && !isinf(until)) left = 0;
    int c = mproc_stream_next_item(s, left, &idx, &it, NULL);
    if (c == MPROC_EEOF) break;
    if (c == MPROC_ETIMEDOUT && ticking && until < deadline) {
      hooks->tick(hooks->ctx, mproc__stream_map(s), false);
      next_tick = mproc__plat_now() + hooks->interval;
      continue;
    }
    if (idx < 0) { /* the call's: a timeout, Ctrl-C, the input's failure, no memory */
      code = c;
      break;
    }
    if (!results_grow(res, (size_t)idx + 1)) {
      code = MPROC_ENOMEM;
      break;
    }
    if (c) res->code[idx] = c;
    if (c == 0 && !mproc__results_put(res, (size_t)idx, it.data, it.len)) {
      code = MPROC_ENOMEM;
      break;
    }
  }
  mproc_map_report own;
  if (!report) report = &own;
  mproc__stream_finish(s, report, ticking ? hooks : NULL);
  mproc_stream_destroy(s);
  if (code == 0 && report->failed) code = report->first_failure.code;
  if (code == 0 && report->cancelled) code = MPROC_ECANCELED;
  *out = res;
  return code;
}

/* ---- the all-at-once form over an input of known length ---- */

typedef struct map_ctx {
  const mproc_items *in;
  mproc_results *res;
} map_ctx;

static const void *map_item_at(const mproc__items *m, int64_t index, size_t *len) {
  const map_ctx *c = ((const mproc__map *)m)->var_ctx;
  return mproc__items_at(c->in, (size_t)index, len);
}

static void map_item_result(mproc__items *m, int64_t index, const void *data, size_t len) {
  map_ctx *c = ((mproc__map *)m)->var_ctx;
  (void)mproc__results_put(c->res, (size_t)index, data, len);
}

/* The same for a batch: one call, and a loop for the input's form. */
static void map_items_at(const mproc__items *m, int64_t first, size_t count, uint64_t *lens,
                         uint64_t *addrs) {
  const mproc_items *in = ((const map_ctx *)((const mproc__map *)m)->var_ctx)->in;
  size_t f = (size_t)first;
  if (in->strings) {
    for (size_t k = 0; k < count; k++) {
      const char *s = in->strings[f + k];
      lens[k] = strlen(s) + 1;
      addrs[k] = (uint64_t)(uintptr_t)s;
    }
  } else if (in->array) {
    for (size_t k = 0; k < count; k++) {
      lens[k] = in->array[f + k].len;
      addrs[k] = (uint64_t)(uintptr_t)in->array[f + k].data;
    }
  } else {
    const size_t *off = in->offsets + f;
    const unsigned char *base = in->packed;
    for (size_t k = 0; k < count; k++) {
      lens[k] = off[k + 1] - off[k];
      addrs[k] = (uint64_t)(uintptr_t)(base + off[k]);
    }
  }
}

/* Every record's result into the store. */
static void map_items_results(mproc__items *m, int64_t first, size_t count, const unsigned char *recs) {
  mproc_results *r = ((map_ctx *)((mproc__map *)m)->var_ctx)->res;
  for (size_t k = 0; k < count; k++) {
    size_t len;
    const unsigned char *data = mproc__var_rec_read(&recs, &len);
    (void)mproc__results_put(r, (size_t)first + k, data, len);
  }
}

int mproc__map_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in, const mproc_map_opts *opts,
                     mproc_results **out, mproc_map_report *report, const mproc__map_hooks *hooks) {
  if (out) *out = NULL;
  if (!pool || !fn || !out) return MPROC_EINVAL;
  int r = mproc__items_check(in);
  if (r < 0) return r;
  static const mproc_map_opts defaults = {0};
  mproc_map_opts o = opts ? *opts : defaults;
  if (in->next) return map_lazy_items(pool, fn, in, &o, out, report, hooks);
  int *user_codes = o.item_codes;
  mproc_results *res = mproc__results_new(in->n);
  if (!res) return MPROC_ENOMEM;
  o.item_codes = res->code;
  map_ctx c = {.in = in, .res = res};
  mproc__var_io io = {.item_at = map_item_at,
                      .item_result = map_item_result,
                      .items_at = map_items_at,
                      .items_results = map_items_results,
                      .codes_zeroed = true, /* only failures are written: a map that goes well writes none */
                      .ctx = &c};
  mproc__map_hooks h = hooks ? *hooks : (mproc__map_hooks){0};
  h.var = &io;
  r = mproc__pool_map_ex(pool, fn, NULL, in->n, 0, NULL, 0, &o, report, &h);
  if (user_codes)
    for (size_t i = 0; i < in->n; i++) user_codes[i] = item_code(res, i);
  if (r == 0 && res->out_of_memory) r = MPROC_ENOMEM;
  if (r < 0 && in->n > 0) { /* nothing ran (bad options, a closed pool): no results */
    bool ran = false;
    for (size_t i = 0; i < in->n && !ran; i++) ran = item_code(res, i) != MPROC_ECANCELED;
    if (!ran) {
      mproc_results_free(res);
      return r;
    }
  }
  *out = res;
  return r;
}

int mproc_pool_map_items(mproc_pool *pool, mproc_task_fn fn, const mproc_items *in,
                         const mproc_map_opts *opts, mproc_results **out, mproc_map_report *report) {
  return mproc__map_items(pool, fn, in, opts, out, report, NULL);
}
