/* env.c: the MPROC_* environment variables, parsed in one place (see env.h and docs/environment.md), and
 * the per-thread last error message that names a bad one. */
#include "core/env.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define WORKERS_MAX 4096

static __thread char last_message[256];

const char *mproc_last_error_message(void) { return last_message; }

void mproc__env_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  if (mproc__env_verbose() > 0) fprintf(stderr, "mproc: %s\n", last_message);
}

/* The variable's value, or NULL when unset or empty (both mean: the default). */
static const char *env_value(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* A whole decimal number, all of s, within long: true and *out. */
static bool parse_long(const char *s, long *out) {
  if (isspace((unsigned char)*s)) return false; /* strtol would skip it; a value is written as is */
  char *end;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (end == s || *end || errno == ERANGE) return false;
  *out = n;
  return true;
}

int mproc__env_workers(int cpus, int *workers) {
  *workers = 0;
  const char *v = env_value("MPROC_WORKERS");
  if (!v) return 0;
  long n;
  if (!parse_long(v, &n) || n == 0 || n > WORKERS_MAX || n < INT_MIN) {
    mproc__env_error(
        "MPROC_WORKERS=\"%s\" is not a number of workers: 1 to %d, or as joblib's n_jobs -1 for "
        "all CPUs, -2 for all but one, -k for CPUs + 1 - k",
        v, WORKERS_MAX);
    return MPROC_EINVAL;
  }
  if (n < 0) {
    long k = (long)cpus + 1 + n;
    n = k < 1 ? 1 : k;
  }
  *workers = (int)n;
  return 0;
}

int mproc__env_backend(mproc_backend *backend) {
  const char *v = env_value("MPROC_BACKEND");
  if (!v || strcmp(v, "process") == 0) {
    *backend = MPROC_BACKEND_PROCESS;
  } else if (strcmp(v, "serial") == 0) {
    *backend = MPROC_BACKEND_SERIAL;
  } else if (strcmp(v, "thread") == 0) {
    *backend = MPROC_BACKEND_THREAD;
  } else if (strcmp(v, "mpi") == 0) {
    *backend = MPROC_BACKEND_MPI; /* whether it can run: the pool's creation says (mproc__mpi_usable) */
  } else {
    mproc__env_error("MPROC_BACKEND=\"%s\" is not a backend: process, thread, serial or mpi", v);
    return MPROC_EINVAL;
  }
  return 0;
}

bool mproc__env_shared_bytes(size_t max, size_t *bytes) {
  *bytes = 0;
  const char *s = env_value("MPROC_SHARED_BYTES");
  if (!s) return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  int shift = 0;
  switch (*end) {
    case 'k':
    case 'K':
      shift = 10;
      break;
    case 'm':
    case 'M':
      shift = 20;
      break;
    case 'g':
    case 'G':
      shift = 30;
      break;
    case 't':
    case 'T':
      shift = 40;
      break;
    default:
      break;
  }
  bool whole = end != s && s[0] != '-' && !isspace((unsigned char)s[0]) && errno != ERANGE &&
               (shift ? end[1] == '\0' : *end == '\0');
  if (whole && v > 0 && v <= (max >> shift)) {
    *bytes = (size_t)v << shift;
  } else if (mproc__env_verbose() > 0) {
    fprintf(
        stderr,
        "mproc: MPROC_SHARED_BYTES=\"%s\" is not a size from 1 byte to %zu GiB (a number with an optional k, "
        "m, g or t suffix): the default is used\n",
        s, max >> 30);
  }
  return true;
}

int mproc__env_verbose(void) {
  const char *v = env_value("MPROC_VERBOSE");
  long n;
  if (!v || !parse_long(v, &n) || n < 0) return 0;
  return n > INT_MAX ? INT_MAX : (int)n;
}
