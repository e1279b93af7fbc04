/* fnid.h: a task function's identity and code hash, the first half of a cache key. */
#ifndef MPROC_FNID_H
#define MPROC_FNID_H

#include "internal.h"
#include <stdint.h>

typedef struct mproc__fnid {
  uint64_t fn_key;    /* hash of (object file name, symbol name or offset): same in every process */
  uint64_t code_hash; /* XXH3-64 of the function's machine code, 0 when its extent is unknown */
  int code_known;     /* 1 when code_hash covers the function's st_size bytes */
  char label[416];    /* "object:symbol" for humans (info file, verbose lines) */
} mproc__fnid;

/* Fills *out for fn.  Returns 0 or -ENOENT (fn is in no loaded object). */
int mproc__fnid_get(mproc_task_fn fn, mproc__fnid *out);

#endif
