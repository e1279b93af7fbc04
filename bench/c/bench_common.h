/* bench_common.h: what every C system of the benchmark shares: arguments, timing, the calibrated busy
 * loop, the heavy-tailed durations, and the one JSON line a system prints.
 *
 * The contract with bench/harness.py: a system is run as `BINARY WORKLOAD SYSTEM key=value...` (n, workers,
 * us, seed, mib), does the work once, and prints one line {"seconds": S, "checksum": C, ...} where S times
 * only the measured part (start-up is counted where a user pays it, per workload) and C lets the harness
 * check the answer.  Exit status 3 means "this system does not do this workload". */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Makes every page of [p, p+len) resident and zero before timing.  A plain memset(p, 0, len) after calloc()
 * (or after a malloc() the compiler turns into calloc()) is removed as a dead store, which left the first
 * touch of the output arrays, page faults of the kernel, inside every system's timed part. */
static inline void bench_touch(void *p, size_t len) {
  volatile char *c = p;
  for (size_t i = 0; i < len; i += 4096) c[i] = 1;
  if (len) c[len - 1] = 1;
  memset(p, 0, len);
}

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* key=value arguments */
static inline double bench_arg(int argc, char **argv, const char *key, double dflt) {
  size_t k = strlen(key);
  for (int i = 3; i < argc; i++)
    if (strncmp(argv[i], key, k) == 0 && argv[i][k] == '=') return atof(argv[i] + k + 1);
  return dflt;
}

/* The busy loop every compute workload runs: `iters` rounds of a dependent integer recurrence that no
 * compiler can fold.  bench_calibrate() finds the rounds per microsecond on this machine (not timed). */
static inline uint64_t bench_spin(uint64_t iters, uint64_t x) {
  for (uint64_t i = 0; i < iters; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}

static inline double bench_calibrate(void) {
  uint64_t iters = 1 << 20;
  double best = 1e9;
  for (int r = 0; r < 5; r++) {
    double t0 = bench_now();
    volatile uint64_t sink = bench_spin(iters, (uint64_t)r);
    (void)sink;
    double dt = bench_now() - t0;
    if (dt < best) best = dt;
  }
  return (double)iters / (best * 1e6); /* rounds per microsecond */
}

/* Heavy-tailed task durations (Pareto, alpha 1.5, mean `mean_us`), the same for every system given the
 * seed: xorshift64* for the uniform draws. */
static inline double *bench_pareto(size_t n, double mean_us, uint64_t seed) {
  double *d = malloc(n * sizeof *d);
  uint64_t s = seed ? seed : 1;
  const double alpha = 1.5, xm = mean_us * (alpha - 1) / alpha;
  for (size_t i = 0; i < n; i++) {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    double u = (double)((s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
    double v = xm / pow(1.0 - u, 1.0 / alpha);
    d[i] = v > mean_us * 200 ? mean_us * 200 : v; /* cap the tail so a run stays bounded */
  }
  return d;
}

static inline void bench_report(double seconds, uint64_t checksum, const char *extra) {
  printf("{\"seconds\": %.9f, \"checksum\": %llu%s%s}\n", seconds, (unsigned long long)checksum,
         extra ? ", " : "", extra ? extra : "");
  fflush(stdout);
}

#endif
