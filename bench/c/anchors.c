/* anchors.c: the C anchors of the benchmark: serial, OpenMP (static, dynamic), a plain fork + pipe pool,
 * and a raw futex ping-pong between two processes (the floor of a round trip).  Contract: bench_common.h. */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench_common.h"
#include "bench_items.h"

static double g_rate;

enum { W_TINY, W_COMPUTE, W_IRREGULAR, W_LARGE };
static int g_kind;

/* the per-item work of each workload, on item i (the workload is resolved once, not per item) */
static int64_t work(size_t i, double us, const double *dur, const double *array, size_t chunk, size_t array_n,
                    double *fout) {
  switch (g_kind) {
    case W_TINY:
      return (int64_t)i * (int64_t)i;
    case W_COMPUTE:
    case W_IRREGULAR: {
      double d = g_kind == W_COMPUTE ? us : dur[i];
      volatile uint64_t sink = bench_spin((uint64_t)(d * g_rate), (uint64_t)i);
      (void)sink;
      return (int64_t)i;
    }
    default: {
      size_t lo = i * chunk, hi = lo + chunk > array_n ? array_n : lo + chunk;
      double s = 0;
      for (size_t k = lo; k < hi; k++) s += array[k];
      *fout = s;
      return 0;
    }
  }
}

static ssize_t full_io(int fd, void *buf, size_t len, int writing) {
  size_t done = 0;
  while (done < len) {
    ssize_t r =
        writing ? write(fd, (char *)buf + done, len - done) : read(fd, (char *)buf + done, len - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return (ssize_t)done;
}

static long futex(uint32_t *a, int op, uint32_t v) { return syscall(SYS_futex, a, op, v, NULL, NULL, 0); }

/* Waits until *w == want: about 10 us of spinning, then sleep with *sleeping set. */
static void wait_for(uint32_t *w, uint32_t want, uint32_t *sleeping) {
  for (int s = 0; s < 300; s++) {
    if (__atomic_load_n(w, __ATOMIC_ACQUIRE) == want) return;
    __builtin_ia32_pause();
  }
  for (;;) {
    uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
    if (v == want) return;
    __atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(w, __ATOMIC_SEQ_CST) == v) futex(w, FUTEX_WAIT, v);
    __atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
  }
}

/* Stores v and wakes the other side only if it sleeps. */
static void hand_over(uint32_t *w, uint32_t v, uint32_t *other_sleeping) {
  __atomic_store_n(w, v, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(other_sleeping, __ATOMIC_SEQ_CST)) futex(w, FUTEX_WAKE, 1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* `machine probe`: what this machine charges for the things a process pool does more than a loop does:
 * the first touch of a page (a page fault; on some virtual machines the host's work dominates it), the
 * touch of a page already mapped, a forked child's first read of a page its parent had mapped, and a fork:
 * until the child runs, and until it has exited and been waited for.  Medians of a few
 * rounds, printed once at the top of a run (bench/harness.py): figures from machines of different kinds
 * compare only through them. */
static int machine_probe(void) {
  enum { ROUNDS = 7, MIB = 16 };
  const size_t len = (size_t)MIB << 20, pages = len / 4096;
  double first[ROUNDS], again[ROUNDS], runs[ROUNDS], waits[ROUNDS], reads[ROUNDS];
  double *child_t = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (child_t == MAP_FAILED) return 1;
  for (int r = 0; r < ROUNDS; r++) { /* a page's first touch, and a second one */
    volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    double t0 = bench_now();
    for (size_t i = 0; i < len; i += 4096) p[i] = 1;
    double t1 = bench_now();
    for (size_t i = 0; i < len; i += 4096) p[i] = 2;
    double t2 = bench_now();
    munmap((void *)p, len);
    first[r] = (t1 - t0) / (double)pages * 1e6;
    again[r] = (t2 - t1) / (double)pages * 1e6;
  }
  volatile char *seen = NULL;
  for (int r = 0; r < 2 * ROUNDS; r++) { /* a small process forks; then one that has 16 MiB mapped */
    if (r == ROUNDS) {
      seen = malloc(len);
      if (!seen) return 1;
      for (size_t i = 0; i < len; i += 4096) seen[i] = 1;
    }
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      child_t[0] = bench_now();
      char sum = 1;
      for (size_t i = 0; seen && i < len; i += 4096) sum += seen[i];
      child_t[1] = (bench_now() - child_t[0]) / (double)pages * 1e6;
      _exit(sum == 0);
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (r < ROUNDS) {
      waits[r] = (bench_now() - t0) * 1e6;
      runs[r] = (child_t[0] - t0) * 1e6;
    } else {
      reads[r - ROUNDS] = child_t[1];
    }
  }
  munmap(child_t, 4096);
  free((void *)seen);
  double *all[] = {first, again, runs, waits, reads};
  for (size_t k = 0; k < sizeof all / sizeof *all; k++) qsort(all[k], ROUNDS, sizeof(double), cmp_double);
  printf(
      "{\"first_touch_us_per_page\": %.3f, \"touch_us_per_page\": %.4f, \"child_read_us_per_page\": %.3f, "
      "\"fork_child_runs_us\": %.1f, \"fork_exit_wait_us\": %.1f}\n",
      first[ROUNDS / 2], again[ROUNDS / 2], reads[ROUNDS / 2], runs[ROUNDS / 2], waits[ROUNDS / 2]);
  return 0;
}

/* strings: serial, a plain loop over the same strings as the mproc rows, hashing each */
static int strings_anchor(const char *sys, size_t n) {
  if (strcmp(sys, "serial") != 0) return 3;
  size_t *off;
  char *buf = bench_strings(n, &off);
  uint64_t *out = malloc((n ? n : 1) * sizeof *out);
  if (!out) return 1;
  bench_touch(out, (n ? n : 1) * sizeof *out);
  double t0 = bench_now();
  for (size_t i = 0; i < n; i++) out[i] = bench_string_hash(buf + off[i], off[i + 1] - off[i] - 1);
  double dt = bench_now() - t0;
  uint64_t checksum = 0;
  for (size_t i = 0; i < n; i++) checksum += out[i];
  free(out);
  free(off);
  free(buf);
  bench_report(dt, checksum, NULL);
  return 0;
}

/* tree: serial (:sha256), the walk and every file's digest in one process; xargs-sha256sum and
 * xargs-b2sum, `find ROOT -type f -print0 | xargs -0 -P WORKERS sha256sum` (b2sum), reading its lines (a
 * suffix such as :P1 is a label).
 * Checksum: the sum of each digest's first 8 bytes as a big-endian number. */
static int tree_anchor(const char *sys, const char *root, int workers) {
  uint64_t checksum = 0;
  size_t files = 0;
  double t0 = bench_now();
  if (strcmp(sys, "serial") == 0 || strcmp(sys, "serial:sha256") == 0) {
    int sha = strcmp(sys, "serial:sha256") == 0;
    bench_paths paths = {0};
    bench_walk(root, &paths);
    for (size_t i = 0; i < paths.n; i++) {
      unsigned char d[32];
      if (bench_file_digest(paths.v[i], sha, d) < 0) return 1;
      checksum += bench_digest_head(d);
    }
    files = paths.n;
    bench_paths_free(&paths);
  } else if (strncmp(sys, "xargs-sha256sum", 15) == 0 || strncmp(sys, "xargs-b2sum", 11) == 0) {
    if (strchr(root, '\'')) return 1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -print0 | xargs -0 -P %d %s", root, workers,
             strncmp(sys, "xargs-b2sum", 11) == 0 ? "b2sum" : "sha256sum");
    FILE *f = popen(cmd, "r");
    if (!f) return 1;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
      char head[17];
      memcpy(head, line, 16);
      head[16] = '\0';
      checksum += strtoull(head, NULL, 16);
      files++;
    }
    if (pclose(f) != 0) return 1;
  } else {
    return 3;
  }
  double dt = bench_now() - t0;
  char extra[32];
  snprintf(extra, sizeof extra, "\"files\": %zu", files);
  bench_report(dt, checksum, extra);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return 3;
  const char *wl = argv[1], *sys = argv[2];
  if (strcmp(wl, "machine") == 0) return machine_probe();
  size_t n = (size_t)bench_arg(argc, argv, "n", 1000);
  int workers = (int)bench_arg(argc, argv, "workers", 2);
  if (strcmp(wl, "strings") == 0) return strings_anchor(sys, n);
  if (strcmp(wl, "tree") == 0) return tree_anchor(sys, bench_sarg(argc, argv, "root", "."), workers);
  double us = bench_arg(argc, argv, "us", 1000);
  g_rate = bench_calibrate();
  g_kind = strcmp(wl, "compute") == 0       ? W_COMPUTE
           : strcmp(wl, "irregular") == 0   ? W_IRREGULAR
           : strcmp(wl, "large-array") == 0 ? W_LARGE
                                            : W_TINY; /* tiny, roundtrip, startup */
  double *dur =
      strcmp(wl, "irregular") == 0 ? bench_pareto(n, us, (uint64_t)bench_arg(argc, argv, "seed", 42)) : NULL;
  double *array = NULL;
  size_t array_n = 0, chunk = 1;
  if (strcmp(wl, "large-array") == 0) {
    array_n = (size_t)bench_arg(argc, argv, "mib", 64) * (1 << 20) / sizeof(double);
    array = malloc(array_n * sizeof *array);
    for (size_t i = 0; i < array_n; i++) array[i] = (double)(i % 1000);
    chunk = (array_n + n - 1) / n;
  }
  /* output arrays are touched before timing, in every system: first-touch page faults are malloc's cost,
   * not the parallel runtime's */
  int64_t *out = calloc(1, (n ? n : 1) * sizeof *out);
  double *fout = calloc(1, (n ? n : 1) * sizeof *fout);
  bench_touch(out, (n ? n : 1) * sizeof *out);
  bench_touch(fout, (n ? n : 1) * sizeof *fout);
  uint64_t checksum = 0;
  double t0, dt;

  if (strcmp(wl, "roundtrip") == 0 && strcmp(sys, "futex-pingpong") == 0) {
    /* two processes hand a counter back and forth through one shared word; each spins briefly, then
     * sleeps on the futex, and the other wakes it only when it says it sleeps: the floor of a round trip */
    uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint32_t *sleeping = w + 16; /* another cache line: [0] parent, [1] child */
    w[0] = 0;
    pid_t pid = fork();
    if (pid == 0) {
      for (uint32_t k = 1; k < 2 * n; k += 2) {
        wait_for(w, k, &sleeping[1]);
        hand_over(w, k + 1, &sleeping[0]);
      }
      _exit(0);
    }
    t0 = bench_now();
    for (uint32_t k = 0; k < 2 * n; k += 2) {
      hand_over(w, k + 1, &sleeping[1]);
      wait_for(w, k + 2, &sleeping[0]);
      checksum += (uint64_t)(k / 2) * (k / 2);
    }
    dt = bench_now() - t0;
    waitpid(pid, NULL, 0);
    bench_report(dt, checksum, NULL);
    return 0;
  }

  if (strcmp(wl, "queue") == 0 && strcmp(sys, "fork-pipe") == 0) {
    /* the plain-pipe floor for messages: length-prefixed writes to a child; mode=roundtrip echoes back */
    size_t bytes = (size_t)bench_arg(argc, argv, "bytes", 8);
    int roundtrip = bench_arg(argc, argv, "roundtrip", 0) != 0;
    int to[2], back[2];
    if (pipe(to) || pipe(back)) return 1;
    char *buf = calloc(1, bytes + 8);
    pid_t pid = fork();
    if (pid == 0) {
      close(to[1]);
      close(back[0]);
      for (size_t i = 0; i < n; i++) {
        uint64_t len;
        if (full_io(to[0], &len, sizeof len, 0) < 0 || full_io(to[0], buf, len, 0) < 0) _exit(1);
        if (roundtrip && (full_io(back[1], &len, sizeof len, 1) < 0 || full_io(back[1], buf, len, 1) < 0))
          _exit(1);
      }
      _exit(0);
    }
    close(to[0]);
    close(back[1]);
    uint64_t total = 0;
    t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
      uint64_t len = bytes;
      full_io(to[1], &len, sizeof len, 1);
      full_io(to[1], buf, bytes, 1);
      if (roundtrip) {
        full_io(back[0], &len, sizeof len, 0);
        full_io(back[0], buf, len, 0);
      }
      total += bytes;
    }
    close(to[1]);
    waitpid(pid, NULL, 0);
    dt = bench_now() - t0;
    bench_report(dt, total, NULL);
    return 0;
  }

  if (strcmp(sys, "fork-pipe") == 0) {
    /* a plain pool: W forked workers, a pipe each way; the parent hands out chunks [lo, hi) to whichever
     * worker is free and gets the chunk's results back.  Start-up is timed for the startup workload. */
    if (strcmp(wl, "roundtrip") == 0) workers = 1;
    t0 = bench_now();
    int tow[64][2], fromw[64][2];
    pid_t pids[64];
    for (int w = 0; w < workers; w++) {
      if (pipe(tow[w]) || pipe(fromw[w])) return 1;
      pids[w] = fork();
      if (pids[w] == 0) {
        close(tow[w][1]);
        close(fromw[w][0]);
        uint64_t range[2];
        while (full_io(tow[w][0], range, sizeof range, 0) > 0) {
          size_t cnt = (size_t)(range[1] - range[0]);
          int64_t *res = malloc(cnt * sizeof *res + 1);
          double *fres = malloc(cnt * sizeof *fres + 1);
          for (size_t k = 0; k < cnt; k++)
            res[k] = work((size_t)range[0] + k, us, dur, array, chunk, array_n, &fres[k]);
          if (strcmp(wl, "large-array") == 0) memcpy(res, fres, cnt * sizeof *res);
          full_io(fromw[w][1], res, cnt * sizeof *res, 1);
          free(res);
          free(fres);
        }
        _exit(0);
      }
      close(tow[w][0]);
      close(fromw[w][1]);
    }
    if (strcmp(wl, "startup") == 0) {
      uint64_t range[2] = {7, 8};
      int64_t r;
      full_io(tow[0][1], range, sizeof range, 1);
      full_io(fromw[0][0], &r, sizeof r, 0);
      dt = bench_now() - t0;
      checksum = (uint64_t)r;
    } else {
      size_t per = strcmp(wl, "roundtrip") == 0 ? 1 : (n + (size_t)workers * 8 - 1) / ((size_t)workers * 8);
      if (per == 0) per = 1;
      if (strcmp(wl, "compute") == 0 || strcmp(wl, "irregular") == 0) per = 1; /* balance as the others do */
      t0 = bench_now();
      size_t next = 0, busy = 0;
      size_t lo[64];
      struct pollfd pfd[64];
      for (int w = 0; w < workers && next < n; w++) {
        uint64_t range[2] = {next, next + per > n ? n : next + per};
        lo[w] = next;
        next = range[1];
        full_io(tow[w][1], range, sizeof range, 1);
        busy++;
      }
      size_t hi[64];
      for (int w = 0; w < workers; w++) hi[w] = lo[w] + per > n ? n : lo[w] + per;
      while (busy) {
        for (int w = 0; w < workers; w++) pfd[w] = (struct pollfd){.fd = fromw[w][0], .events = POLLIN};
        poll(pfd, (nfds_t)workers, -1);
        for (int w = 0; w < workers; w++) {
          if (!(pfd[w].revents & POLLIN)) continue;
          full_io(fromw[w][0], out + lo[w], (hi[w] - lo[w]) * sizeof *out, 0);
          busy--;
          if (next < n) {
            uint64_t range[2] = {next, next + per > n ? n : next + per};
            lo[w] = next;
            hi[w] = range[1];
            next = range[1];
            full_io(tow[w][1], range, sizeof range, 1);
            busy++;
          }
        }
      }
      dt = bench_now() - t0;
      if (strcmp(wl, "large-array") == 0) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += ((double *)out)[i];
        checksum = (uint64_t)llround(s);
      } else {
        for (size_t i = 0; i < n; i++) checksum += (uint64_t)out[i];
      }
    }
    for (int w = 0; w < workers; w++) close(tow[w][1]);
    for (int w = 0; w < workers; w++) {
      close(fromw[w][0]);
      waitpid(pids[w], NULL, 0);
    }
    bench_report(dt, checksum, NULL);
    return 0;
  }

  if (strcmp(wl, "startup") == 0 || strcmp(wl, "roundtrip") == 0) return 3;
  t0 = bench_now();
  if (strcmp(sys, "serial") == 0) {
    for (size_t i = 0; i < n; i++) out[i] = work(i, us, dur, array, chunk, array_n, &fout[i]);
#ifdef _OPENMP
  } else if (strcmp(sys, "openmp-static") == 0) {
#pragma omp parallel for schedule(static) num_threads(workers)
    for (size_t i = 0; i < n; i++) out[i] = work(i, us, dur, array, chunk, array_n, &fout[i]);
  } else if (strcmp(sys, "openmp-dynamic") == 0) {
#pragma omp parallel for schedule(dynamic) num_threads(workers)
    for (size_t i = 0; i < n; i++) out[i] = work(i, us, dur, array, chunk, array_n, &fout[i]);
  } else if (strcmp(sys, "openmp-tasks") == 0) {
    /* one OpenMP task per item, created by one thread: the tasking runtime's per-task cost */
#pragma omp parallel num_threads(workers)
#pragma omp single
    for (size_t i = 0; i < n; i++) {
#pragma omp task firstprivate(i)
      out[i] = work(i, us, dur, array, chunk, array_n, &fout[i]);
    }
#endif
  } else {
    return 3;
  }
  dt = bench_now() - t0;
  if (strcmp(wl, "large-array") == 0) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fout[i];
    checksum = (uint64_t)llround(s);
  } else {
    for (size_t i = 0; i < n; i++) checksum += (uint64_t)out[i];
  }
  bench_report(dt, checksum, NULL);
  return 0;
}
