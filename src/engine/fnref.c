/* fnref.c: function identity between images: (loaded object, offset) for workers started by exec.
 *
 * In a fork-based pool a function pointer means the same thing in every process.  A worker of an exec pool
 * runs a fresh image of the program, with every object at a new address, so the caller sends an
 * mproc__fnref instead: an index into the pool's table of objects (paths, in the shared mapping, appended
 * only by the caller under the engine lock and published with a release store of count) and the offset from
 * that object's load bias.  Both sides cache: the caller maps recent function pointers to their refs (a map
 * of one function translates once, not per batch), a worker maps each object index to its load bias once.
 * The OS side (dladdr, dl_iterate_phdr, dlopen) is in platform_fnid.c. */
#include <errno.h>
#include <stdio.h>

#include "engine/engine.h"
#include "platform/platform.h"

#define REF_SHIFT 48
#define REF_OFFSET_MASK ((UINT64_C(1) << REF_SHIFT) - 1)

int mproc__fnref_encode(mproc__shared *sh, mproc__fncache *c, uintptr_t fn, uint64_t *ref, char *msg,
                        size_t cap) {
  for (unsigned i = 0; i < 8; i++)
    if (c->fn[i] == fn && c->ref[i]) {
      *ref = c->ref[i];
      return 0;
    }
  char local[MPROC_FN_PATH];
  uintptr_t off = 0;
  int r = mproc__plat_code_locate((const void *)fn, local, sizeof local, &off);
  if (r < 0) {
    snprintf(msg, cap, "function %p is in no loaded object (JIT code?): an exec pool's worker cannot find it",
             (void *)fn);
    return MPROC_ENOTSUP;
  }
  if ((uint64_t)off > REF_OFFSET_MASK) {
    snprintf(msg, cap, "function %p lies too far into its object for an exec pool", (void *)fn);
    return MPROC_ENOTSUP;
  }
  mproc__objtab *t = sh->objs;
  uint32_t n = t->count, id = 0;
  while (id < n && strcmp(t->path[id], local) != 0) id++;
  if (id == n) {
    if (n == MPROC_FN_OBJECTS) {
      snprintf(msg, cap, "functions from more than %d objects in one exec pool", MPROC_FN_OBJECTS);
      return MPROC_ENOTSUP;
    }
    memcpy(t->path[id], local, strlen(local) + 1);
    __atomic_store_n(&t->count, n + 1, __ATOMIC_RELEASE);
  }
  *ref = ((uint64_t)(id + 1) << REF_SHIFT) | (uint64_t)off;
  c->fn[c->next % 8] = fn;
  c->ref[c->next % 8] = *ref;
  c->next++;
  return 0;
}

/* Load biases of this image's objects, by index in the table of the pool this process serves. */
static struct {
  const mproc__shared *sh;
  uintptr_t base[MPROC_FN_OBJECTS];
  unsigned char known[MPROC_FN_OBJECTS];
} resolved;

uintptr_t mproc__fnref_resolve(const mproc__shared *sh, uint64_t ref, char *msg, size_t cap) {
  if (resolved.sh != sh) {
    memset(&resolved, 0, sizeof resolved);
    resolved.sh = sh;
  }
  uint64_t id1 = ref >> REF_SHIFT;
  uint32_t n = __atomic_load_n(&sh->objs->count, __ATOMIC_ACQUIRE);
  if (id1 == 0 || id1 > n) {
    snprintf(msg, cap, "corrupt function reference %#llx", (unsigned long long)ref);
    return 0;
  }
  uint32_t id = (uint32_t)id1 - 1;
  if (!resolved.known[id]) {
    char err[MPROC_TASK_MSG_MAX];
    if (mproc__plat_code_base(sh->objs->path[id], &resolved.base[id], err, sizeof err) < 0) {
      snprintf(msg, cap, "cannot load %s in the worker: %s", sh->objs->path[id], err);
      return 0;
    }
    resolved.known[id] = 1;
  }
  return resolved.base[id] + (uintptr_t)(ref & REF_OFFSET_MASK);
}
