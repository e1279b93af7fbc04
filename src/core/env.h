/* env.h: the MPROC_* environment variables the library reads, parsed in one place.  docs/environment.md
 * lists them, with their defaults, ranges and what a bad value does.  Nothing here is API. */
#ifndef MPROC_CORE_ENV_H
#define MPROC_CORE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <mproc.h>

/* MPROC_WORKERS, read as joblib's n_jobs: 1..4096 that many workers; -1 all CPUs (cpus: the pool's, see
 * mproc__backend_cpus); -k max(1, cpus + 1 - k).  0 and *workers 0 when unset or empty; -EINVAL for
 * anything else, with the last error message set (see mproc__env_error). */
int mproc__env_workers(int cpus, int *workers);

/* MPROC_BACKEND: "process" (also when unset or empty), "thread", "serial", "mpi".  0; -EINVAL for anything
 * else, with the last error message set.  (Whether MPI pools can run is the pool's creation's business.) */
int mproc__env_backend(mproc_backend *backend);

/* MPROC_SHARED_BYTES: a byte count (> 0, at most max) with an optional k, m, g or t suffix.  Returns
 * whether the variable is set (non-empty); *bytes is the count, or 0 when unset or bad.  A bad value is
 * not an error for the caller (the arena takes its default): it is reported when MPROC_VERBOSE is set. */
bool mproc__env_shared_bytes(size_t max, size_t *bytes);

/* MPROC_VERBOSE: a whole number >= 0; 0 when unset, empty or bad. */
int mproc__env_verbose(void);

/* Sets the calling thread's last error message (mproc_last_error_message()) and, when MPROC_VERBOSE is 1 or
 * more, writes it on stderr as "mproc: <message>". */
void mproc__env_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
