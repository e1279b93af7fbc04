/* queue_workers.c: producers and consumers over a Queue, as in the multiprocessing tutorial.
 *
 *   def producer(q, n): for i in range(n): q.put(...)
 *   def consumer(q, results): while (item := q.get()) is not None: ...; q.task_done()
 *
 * Two producer processes put numbered jobs on a JoinableQueue, three consumer processes square them and put
 * the results on a second queue; the parent joins the job queue, stops the consumers with empty messages
 * and adds the results up. */
#include <mproc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { PRODUCERS = 2, CONSUMERS = 3, JOBS_EACH = 1000 };

static mproc_queue *jobs, *results;

static int producer(const void *arg, size_t len) {
  int id;
  memcpy(&id, arg, sizeof id);
  for (int64_t i = 0; i < JOBS_EACH; i++) {
    int64_t n = (int64_t)id * JOBS_EACH + i + 1;
    if (mproc_queue_put(jobs, &n, sizeof n, MPROC_FOREVER) != 0) return 1;
  }
  return 0;
}

static int consumer(const void *arg, size_t len) {
  for (;;) {
    int64_t n, sq;
    size_t got;
    if (mproc_queue_get(jobs, &n, sizeof n, &got, MPROC_FOREVER) != 0) return 1;
    if (got == 0) { /* the stop message */
      mproc_queue_task_done(jobs);
      return 0;
    }
    sq = n * n;
    if (mproc_queue_put(results, &sq, sizeof sq, MPROC_FOREVER) != 0) return 1;
    mproc_queue_task_done(jobs);
  }
}

int main(void) {
  if (mproc_queue_create(&jobs, &(mproc_queue_opts){.max_messages = 64}) != 0 ||
      mproc_queue_create(&results, NULL) != 0) {
    fprintf(stderr, "cannot create the queues\n");
    return 1;
  }
  mproc_process *procs[PRODUCERS + CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++) mproc_process_start(&procs[i], consumer, NULL, 0, NULL);
  for (int i = 0; i < PRODUCERS; i++)
    mproc_process_start(&procs[CONSUMERS + i], producer, &i, sizeof i, NULL);

  /* Take the results while the work goes on (the results queue is bounded by its buffer). */
  int64_t sum = 0;
  for (int i = 0; i < PRODUCERS * JOBS_EACH; i++) {
    int64_t sq;
    size_t got;
    if (mproc_queue_get(results, &sq, sizeof sq, &got, 30) != 0) {
      fprintf(stderr, "result %d missing\n", i);
      return 1;
    }
    sum += sq;
  }
  mproc_queue_join(jobs, MPROC_FOREVER); /* every job taken and marked done */
  for (int i = 0; i < CONSUMERS; i++) mproc_queue_put(jobs, NULL, 0, MPROC_FOREVER);
  int failures = 0;
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
    int code = -1;
    mproc_process_join(procs[i], MPROC_FOREVER);
    if (mproc_process_exitcode(procs[i], &code) != 0 || code != 0) failures++;
    mproc_process_destroy(procs[i]);
  }
  int64_t n = PRODUCERS * JOBS_EACH, want = n * (n + 1) * (2 * n + 1) / 6;
  printf("sum of squares 1..%lld = %lld (%s)\n", (long long)n, (long long)sum,
         sum == want ? "right" : "WRONG");
  mproc_queue_destroy(jobs);
  mproc_queue_destroy(results);
  return failures || sum != want ? 1 : 0;
}
