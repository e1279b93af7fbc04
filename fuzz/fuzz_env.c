/* fuzz_env.c: every environment variable mproc parses (core/env.c: MPROC_WORKERS, MPROC_BACKEND,
 * MPROC_SHARED_BYTES, MPROC_VERBOSE; backend/template.c: OMP_NUM_THREADS & co, read for presence).  The
 * exec start method's MPROC_EXEC_TEMPLATE has its own target (fuzz_exec_handoff.c).
 *
 * Input: up to four NUL-separated values, for the four variables in that order; then the same bytes read
 * as numbers that are written out as the variables' documented forms and must read back as themselves. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "core/env.h"
#include "fuzz.h"

#define SHARED_MAX ((size_t)1 << 44) /* the arena's largest (ipc/arena.c) */

static const char *const names[] = {"MPROC_WORKERS", "MPROC_BACKEND", "MPROC_SHARED_BYTES", "MPROC_VERBOSE"};

static void check_workers(const char *v) {
  int w = -1;
  int rc = mproc__env_workers(mproc_cpu_count(), &w);
  if (!v || !*v) FUZZ_CHECK(rc == 0 && w == 0);
  if (rc == 0 && v && *v) FUZZ_CHECK(w >= 1 && w <= 4096);
  if (rc != 0) FUZZ_CHECK(rc == MPROC_EINVAL && w == 0 && mproc_last_error_message()[0]);
}

static void check_backend(const char *v) {
  mproc_backend b = MPROC_BACKEND_DEFAULT;
  int rc = mproc__env_backend(&b);
  if (!v || !*v || strcmp(v, "process") == 0) FUZZ_CHECK(rc == 0 && b == MPROC_BACKEND_PROCESS);
  if (v && strcmp(v, "thread") == 0) FUZZ_CHECK(rc == 0 && b == MPROC_BACKEND_THREAD);
  if (v && strcmp(v, "serial") == 0) FUZZ_CHECK(rc == 0 && b == MPROC_BACKEND_SERIAL);
  if (rc == 0) FUZZ_CHECK(b != MPROC_BACKEND_DEFAULT);
  if (rc != 0) FUZZ_CHECK((rc == MPROC_EINVAL || rc == MPROC_ENOBACKEND) && mproc_last_error_message()[0]);
}

static void check_shared(const char *v, size_t max) {
  size_t bytes = 1;
  bool set = mproc__env_shared_bytes(max, &bytes);
  FUZZ_CHECK(set == (v && *v));
  FUZZ_CHECK(bytes <= max && (set || bytes == 0));
}

static void set_or_unset(const char *name, const char *v) {
  if (v)
    setenv(name, v, 1);
  else
    unsetenv(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  /* the values: each up to the next NUL; a variable past the last one is unset */
  const char *v[4] = {NULL, NULL, NULL, NULL};
  size_t at = 0;
  for (int i = 0; i < 4 && at <= size; i++) {
    v[i] = s + at;
    at += strlen(s + at) + 1;
  }
  for (int i = 0; i < 4; i++) set_or_unset(names[i], v[i]);
  int verbose = mproc__env_verbose();
  FUZZ_CHECK(verbose >= 0);
  /* quiet from here: a verbose value would write every bad value's message on stderr */
  unsetenv("MPROC_VERBOSE");
  check_workers(v[0]);
  check_backend(v[1]);
  check_shared(v[2], SHARED_MAX);
  check_shared(v[2], size > 0 ? (size_t)data[0] << 20 : 0);

  /* OMP_NUM_THREADS & co: set when the first byte's bits say so; the value given to the workers */
  static const char *const thread_vars[] = {"OMP_NUM_THREADS",        "OPENBLAS_NUM_THREADS",
                                            "MKL_NUM_THREADS",        "BLIS_NUM_THREADS",
                                            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"};
  unsigned bits = size > 0 ? data[0] : 0;
  for (int i = 0; i < 6; i++) set_or_unset(thread_vars[i], (bits >> i) & 1 ? (v[0] ? v[0] : "") : NULL);
  fuzz_in in = {data, size};
  int cpus = (int)(fuzz_u(&in, 2) % 4097), workers = (int)(fuzz_u(&in, 2) % 4097);
  int t = mproc__thread_env_value(cpus, workers);
  FUZZ_CHECK(bits % 64 == 63 ? t == 0 : t >= 1);

  /* the documented forms read back as themselves */
  char buf[64];
  long long k = (long long)(int64_t)fuzz_u(&in, 8);
  long long w = k % 8192 - 4096;
  snprintf(buf, sizeof buf, "%lld", w);
  setenv("MPROC_WORKERS", buf, 1);
  int got = -1;
  int rc = mproc__env_workers(mproc_cpu_count(), &got);
  if (w >= 1 && w <= 4096) FUZZ_CHECK(rc == 0 && got == w);
  long long all_but = mproc_cpu_count() + 1 + w;
  if (w < 0) FUZZ_CHECK(rc == 0 && got == (all_but < 1 ? 1 : all_but));
  if (w == 0) FUZZ_CHECK(rc == MPROC_EINVAL);
  static const char suffix[] = "\0kmgtKMGT";
  int sfx = (int)(fuzz_u(&in, 1) % 9), shift = sfx == 0 ? 0 : 10 * ((sfx - 1) % 4 + 1);
  unsigned long long n = (unsigned long long)k >> (k & 63);
  snprintf(buf, sizeof buf, "%llu%c", n, suffix[sfx]);
  setenv("MPROC_SHARED_BYTES", buf, 1);
  size_t bytes = 0;
  FUZZ_CHECK(mproc__env_shared_bytes(SHARED_MAX, &bytes));
  bool fits = n > 0 && n <= (SHARED_MAX >> shift);
  FUZZ_CHECK(bytes == (fits ? (size_t)n << shift : 0));
  snprintf(buf, sizeof buf, "%lld", k);
  setenv("MPROC_VERBOSE", buf, 1);
  FUZZ_CHECK(mproc__env_verbose() == (k < 0 ? 0 : k > INT_MAX ? INT_MAX : (int)k));
  unsetenv("MPROC_VERBOSE");
  free(s);
  return 0;
}
