/* mpi_raw.c: the "mpi-raw" anchors: a master/worker farm written directly on MPI.  Rank 0 hands out item
 * indices (two in flight per worker; one at a time for the roundtrip workload, one per worker for payload),
 * ranks 1..W run them and send the result back.  Started as `mpirun -n W+1 bench_mpi_raw WORKLOAD SYSTEM
 * key=value...`; the timed part excludes mpirun and MPI_Init.  Contract: bench_common.h.
 *
 * Systems: mpi-raw receives with a blocking MPI_Recv (fastest, but Open MPI spins in it: a whole core per
 * idle rank); mpi-raw:idle gives it the idle-CPU budget of mproc's MPI backend (docs/cluster.md, "Idle
 * policy"): MPI_Improbe with sched_yield for 100 us, then a nanosleep doubling from 10 us to 1 ms, and
 * MPI_Mrecv of the matched message, on both the master and the workers.
 *
 * Workloads: tiny and roundtrip (i -> i*i), compute and irregular (a busy loop, -> i), payload (a task takes
 * `mib` MiB in, the words k of the master's buffer, and gives `mib` MiB back, ~k + i; the master sums every
 * word it gets back, as the other systems of the workload do). */
#define _GNU_SOURCE
#include <mpi.h>
#include <sched.h>

#include "bench_common.h"

enum { TAG_TASK = 1, TAG_STOP = 2, TAG_RESULT = 3 };

static int g_idle; /* mpi-raw:idle */

/* MPI_Recv, or with the idle policy of mproc's backend: poll, yield for 100 us, then nap 10 us .. 1 ms */
static void recv_msg(void *buf, int count, MPI_Datatype type, int source, int tag, MPI_Status *st) {
  if (!g_idle) {
    MPI_Recv(buf, count, type, source, tag, MPI_COMM_WORLD, st);
    return;
  }
  double since = 0, nap = 0;
  for (;;) {
    int found = 0;
    MPI_Message m;
    MPI_Improbe(source, tag, MPI_COMM_WORLD, &found, &m, st);
    if (found) {
      MPI_Mrecv(buf, count, type, &m, st);
      return;
    }
    double now = bench_now();
    if (since == 0) since = now;
    if (now - since < 100e-6) {
      sched_yield();
      continue;
    }
    nap = nap > 0 ? nap * 2 : 10e-6;
    if (nap > 1e-3) nap = 1e-3;
    struct timespec ts = {0, (long)(nap * 1e9)};
    nanosleep(&ts, NULL);
  }
}

/* payload: the task's result, ~in[k] + i for every word */
static void payload_task(const uint64_t *in, uint64_t *out, size_t words, int64_t i) {
  for (size_t k = 0; k < words; k++) out[k] = ~in[k] + (uint64_t)i;
}

static uint64_t sum_words(const uint64_t *p, size_t words) {
  uint64_t s = 0;
  for (size_t k = 0; k < words; k++) s += p[k];
  return s;
}

/* payload: task i is the message of `words` words (word 0 overwritten by i: the master's buffer is the same
 * for every task otherwise); the result is the transformed buffer, summed by the master. */
static int payload(int rank, int workers, size_t n, size_t words) {
  uint64_t *buf = malloc(words * sizeof *buf), *out = malloc(words * sizeof *out);
  if (!buf || !out || words > (size_t)1 << 28) return 1;
  bench_touch(buf, words * sizeof *buf);
  bench_touch(out, words * sizeof *out);
  if (rank != 0) {
    for (;;) {
      MPI_Status st;
      recv_msg(buf, (int)words, MPI_UINT64_T, 0, MPI_ANY_TAG, &st);
      if (st.MPI_TAG == TAG_STOP) break;
      int64_t i = (int64_t)buf[0];
      buf[0] = 0;
      payload_task(buf, out, words, i);
      MPI_Send(out, (int)words, MPI_UINT64_T, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
    return 0;
  }
  for (size_t k = 0; k < words; k++) buf[k] = k;
  size_t sent = 0, got = 0;
  uint64_t sum = 0;
  double t0 = bench_now();
  for (; sent < n && sent < (size_t)workers; sent++) {
    buf[0] = sent;
    MPI_Send(buf, (int)words, MPI_UINT64_T, 1 + (int)sent, TAG_TASK, MPI_COMM_WORLD);
  }
  while (got < n) {
    MPI_Status st;
    recv_msg(out, (int)words, MPI_UINT64_T, MPI_ANY_SOURCE, TAG_RESULT, &st);
    sum += sum_words(out, words);
    got++;
    if (sent < n) {
      buf[0] = sent++;
      MPI_Send(buf, (int)words, MPI_UINT64_T, st.MPI_SOURCE, TAG_TASK, MPI_COMM_WORLD);
    }
  }
  double dt = bench_now() - t0;
  for (int w = 1; w <= workers; w++) MPI_Send(buf, 1, MPI_UINT64_T, w, TAG_STOP, MPI_COMM_WORLD);
  bench_report(dt, sum, NULL);
  free(buf);
  free(out);
  return 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *wl = argc > 1 ? argv[1] : "", *sys = argc > 2 ? argv[2] : "";
  int tiny = strcmp(wl, "tiny") == 0 || strcmp(wl, "roundtrip") == 0;
  int compute = strcmp(wl, "compute") == 0, irregular = strcmp(wl, "irregular") == 0;
  int is_payload = strcmp(wl, "payload") == 0;
  g_idle = strcmp(sys, "mpi-raw:idle") == 0;
  if ((!tiny && !compute && !irregular && !is_payload) || (!g_idle && strcmp(sys, "mpi-raw") != 0) ||
      size < 2) {
    MPI_Finalize();
    return 3;
  }
  size_t n = (size_t)bench_arg(argc, argv, "n", 1000);
  if (is_payload) {
    int rc =
        payload(rank, size - 1, n, (size_t)bench_arg(argc, argv, "mib", 64) * (1 << 20) / sizeof(uint64_t));
    MPI_Finalize();
    return rc;
  }
  double us = bench_arg(argc, argv, "us", 1000);
  double rate = bench_calibrate();
  double *dur = irregular ? bench_pareto(n, us, (uint64_t)bench_arg(argc, argv, "seed", 42)) : NULL;
  if (rank != 0) {
    for (;;) {
      int64_t i;
      MPI_Status st;
      recv_msg(&i, 1, MPI_INT64_T, 0, MPI_ANY_TAG, &st);
      if (st.MPI_TAG == TAG_STOP) break;
      int64_t r = i * i;
      if (!tiny) {
        volatile uint64_t sink = bench_spin((uint64_t)((compute ? us : dur[i]) * rate), (uint64_t)i);
        (void)sink;
        r = i;
      }
      MPI_Send(&r, 1, MPI_INT64_T, 0, TAG_RESULT, MPI_COMM_WORLD);
    }
    MPI_Finalize();
    return 0;
  }
  int workers = size - 1;
  size_t inflight = strcmp(wl, "roundtrip") == 0 ? 1 : 2 * (size_t)workers;
  size_t sent = 0, got = 0;
  uint64_t sum = 0;
  double t0 = bench_now();
  for (; sent < n && sent < inflight; sent++) {
    int64_t i = (int64_t)sent;
    MPI_Send(&i, 1, MPI_INT64_T, 1 + (int)(sent % (size_t)workers), TAG_TASK, MPI_COMM_WORLD);
  }
  while (got < n) {
    int64_t r;
    MPI_Status st;
    recv_msg(&r, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_RESULT, &st);
    sum += (uint64_t)r;
    got++;
    if (sent < n) {
      int64_t i = (int64_t)sent++;
      MPI_Send(&i, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_TASK, MPI_COMM_WORLD);
    }
  }
  double dt = bench_now() - t0;
  for (int w = 1; w <= workers; w++) {
    int64_t stop = -1;
    MPI_Send(&stop, 1, MPI_INT64_T, w, TAG_STOP, MPI_COMM_WORLD);
  }
  bench_report(dt, sum, NULL);
  MPI_Finalize();
  return 0;
}
