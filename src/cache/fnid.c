/* fnid.c: function identity (object + symbol, not addresses, so it is the same in every process and run)
 * and the hash of the function's machine code.
 *
 * What invalidates: the code hash covers the st_size bytes of the function as loaded.  Editing the function
 * changes them; a comment-only edit does not (same instructions).  Position-dependent bytes are part of
 * the hash: a direct call or a RIP-relative reference whose target moved relative to the function (other
 * code inserted between them) changes a displacement and so invalidates conservatively.  Calls through the
 * PLT in a shared object and code that only moves with the function keep their bytes. */
#include "cache/fnid.h"

#include <stdio.h>
#include <xxhash.h>

#include "platform/platform.h"

int mproc__fnid_get(mproc_task_fn fn, mproc__fnid *out) {
  mproc__plat_fnsym s;
  const void *addr;
  memcpy(&addr, &fn, sizeof addr);
  int rc = mproc__plat_fnsym_lookup(addr, &s);
  if (rc < 0) return rc;
  char ident[sizeof s.object + sizeof s.name + 32];
  int n;
  if (s.name[0])
    n = snprintf(ident, sizeof ident, "%s:%s", s.object, s.name);
  else
    n = snprintf(ident, sizeof ident, "%s:+0x%llx", s.object, (unsigned long long)s.offset);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof ident) n = (int)sizeof ident - 1;
  out->fn_key = XXH3_64bits(ident, (size_t)n);
  out->code_known = s.size > 0;
  out->code_hash = s.size ? XXH3_64bits(s.start, s.size) : 0;
  snprintf(out->label, sizeof out->label, "%s", ident[0] == ':' ? ident + 1 : ident);
  return 0;
}
