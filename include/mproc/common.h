/* mproc/common.h: what every part of the public API shares: the export macro, version queries, timeouts,
 * the allocator hook. Included by <mproc.h>; do not include it on its own. */
#ifndef MPROC_COMMON_H
#define MPROC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <mproc/version.h>

#ifdef __cplusplus
#define MPROC_EXTERN_C_BEGIN extern "C" {
#define MPROC_EXTERN_C_END }
#else
#define MPROC_EXTERN_C_BEGIN
#define MPROC_EXTERN_C_END
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

MPROC_EXTERN_C_BEGIN

/* Timeouts.  Every blocking call of mproc takes its timeout as a double number of seconds:
 *   timeout <  0  waits forever (MPROC_FOREVER reads better),
 *   timeout == 0  does not block: it polls once,
 *   timeout >  0  waits at most that long and then returns -ETIMEDOUT (MPROC_ETIMEDOUT); a timeout
 *                 longer than any deadline the system can represent (over about 292 years, Linux's
 *                 64-bit nanosecond timers: 1e300, DBL_MAX, INFINITY) waits forever.
 * NaN is rejected with -EINVAL. */
#define MPROC_FOREVER (-1.0)

/* The version of the library actually linked, which may differ from the MPROC_VERSION_* macros the caller
 * was compiled with.  mproc_version() returns MPROC_VERSION_HEX of the library; the string is static. */
MPROC_API unsigned mproc_version(void);
MPROC_API const char *mproc_version_string(void);

/* Replace the allocator mproc uses for its own private memory (not for shared memory, which is mapped).
 * All four functions must be given, and must behave as the C library's.  Call it before any other mproc
 * call, or at least while no mproc object exists: memory is freed with the allocator that is current at the
 * time.  (While objects exist, and their threads run, only functions that can free each other's memory may
 * replace the current ones, e.g. wrappers that count calls to the same malloc: the swap itself is
 * thread-safe, the four functions are not swapped as one.)  Returns 0, or -EINVAL when a function is
 * missing (the allocator is then unchanged). */
MPROC_API int mproc_replace_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                                      void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *));

/* The number of CPUs this process may use, as Python 3.13's os.process_cpu_count() and loky's cpu_count():
 * the CPUs in its affinity mask, lowered by a CPU quota of its cgroup (v2 cpu.max, or v1
 * cpu.cfs_quota_us / cpu.cfs_period_us, rounded up).  Never less than 1. */
MPROC_API int mproc_cpu_count(void);

MPROC_EXTERN_C_END

#endif
