/* test_thread_backend.c: what is particular to the thread backend: no timeouts, threads replaced at their
 * quota, MPROC_BACKEND=thread, blocking tasks, a pool destroyed at once. */
#include <stdlib.h>

#include "mtest.h"
#include "internal.h"
#include "pool_tasks.h"

/* A thread pool destroyed right after a submission: its worker thread may not have run yet, and the
 * manager may not have heard of it (the task is then cancelled).  Destroy still stops and joins it, so it
 * never runs on a freed pool (the sanitizers saw that once in ten runs before the fix). */
MTEST(thread_pool_destroyed_at_once) {
  for (int k = 0; k < 40; k++) {
    mproc_pool *p = make_pool(MPROC_BACKEND_THREAD, 1 + k % 2, NULL);
    int two = 2;
    mproc_future *f;
    CHECK_OK(mproc_pool_submit(p, square, &two, sizeof two, NULL, &f));
    mproc_future_release(f);
    mproc_pool_destroy(p);
  }
}

static uint32_t thread_ids_seen;
static int note_thread(const void *arg, size_t len, mproc_task *t) {
  (void)arg, (void)len;
  __atomic_fetch_add(&thread_ids_seen, 1, __ATOMIC_SEQ_CST);
  int w = mproc_task_worker_id(t);
  return mproc_task_return(t, &w, sizeof w);
}

MTEST(thread_backend_specifics) {
  mproc_pool *p = NULL;
  /* timeouts need a worker that can be killed */
  CHECK_ERR(mproc_pool_create(&p, &(mproc_pool_opts){.backend = MPROC_BACKEND_THREAD, .task_timeout = 1}),
            MPROC_ENOTSUP);
  p = make_pool(MPROC_BACKEND_THREAD, 2, &(mproc_pool_opts){.max_tasks_per_child = 3});
  int n = 2;
  mproc_future *f;
  CHECK_ERR(mproc_pool_submit(p, square, &n, sizeof n, &(mproc_submit_opts){.timeout = 1}, &f),
            MPROC_ENOTSUP);
  int out[50];
  CHECK_ERR(mproc_pool_map(p, square, &n, 1, sizeof n, out, sizeof *out, &(mproc_map_opts){.task_timeout = 1},
                           NULL),
            MPROC_ENOTSUP);
  /* threads that reach their quota end and are replaced */
  CHECK_OK(mproc_pool_map(p, note_thread, NULL, 50, 0, out, sizeof *out, &(mproc_map_opts){.chunk_size = 1},
                          NULL));
  CHECK_INT_EQ(thread_ids_seen, 50); /* the tasks ran in this process */
  for (int i = 0; i < 50; i++) CHECK(out[i] == 0 || out[i] == 1);
  mproc_pool_destroy(p);
  /* MPROC_BACKEND=thread */
  setenv("MPROC_BACKEND", "thread", 1);
  CHECK_OK(mproc_pool_create(&p, &(mproc_pool_opts){.workers = 2}));
  CHECK_OK(mproc_pool_apply(p, square, &n, sizeof n, out, sizeof *out, NULL));
  CHECK_INT_EQ(out[0], 4);
  mproc_pool_destroy(p);
  unsetenv("MPROC_BACKEND");
}

MTEST(thread_backend_blocking_tasks) {
  map_shared();
  mproc_pool *p = make_pool(MPROC_BACKEND_THREAD, 1, NULL);
  int n = 3;
  mproc_future *a, *b, *c;
  CHECK_OK(mproc_pool_submit(p, gated, &n, sizeof n, NULL, &a));
  await_started(1);
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &b));
  CHECK_OK(mproc_pool_submit(p, square, &n, sizeof n, NULL, &c));
  CHECK_INT_EQ(mproc_future_cancel(c), 1);
  CHECK_ERR(mproc_future_wait(a, 0.02), MPROC_ETIMEDOUT);
  open_gate();
  const void *data;
  CHECK_OK(mproc_future_result(a, MPROC_FOREVER, &data, NULL));
  CHECK_INT_EQ(*(const int *)data, 9);
  CHECK_OK(mproc_future_result(b, MPROC_FOREVER, &data, NULL));
  CHECK_ERR(mproc_future_error(c, 0), MPROC_ECANCELED);
  mproc_future_release(a);
  mproc_future_release(b);
  mproc_future_release(c);
  mproc_pool_destroy(p);
  unmap_shared();
}
