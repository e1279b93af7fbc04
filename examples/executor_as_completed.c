/* executor_as_completed.c: the tutorial's ProcessPoolExecutor + as_completed example, in C.
 *
 *   with concurrent.futures.ProcessPoolExecutor() as executor:
 *       futures = [executor.submit(task, i) for i in range(1, 6)]
 *       for future in concurrent.futures.as_completed(futures):
 *           print(future.result())   # results in completion order
 */
#include <mproc.h>
#include <stdio.h>

static int task(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg, sq = n * n;
  return mproc_task_return(t, &sq, sizeof sq);
}

int main(void) {
  mproc_executor *ex;
  int r = mproc_executor_create(&ex, NULL);
  if (r != 0) {
    fprintf(stderr, "executor: %s\n", mproc_strerror(r));
    return 1;
  }
  mproc_future *futures[5];
  for (int i = 1; i <= 5; i++) {
    r = mproc_executor_submit(ex, task, &i, sizeof i, &futures[i - 1]);
    if (r != 0) {
      fprintf(stderr, "submit: %s\n", mproc_strerror(r));
      return 1;
    }
  }
  mproc_as_completed *it;
  mproc_as_completed_create(&it, futures, 5);
  mproc_future *f;
  int sum = 0;
  while (mproc_as_completed_next(it, MPROC_FOREVER, &f) == 0) {
    const void *data;
    if (mproc_future_result(f, 0, &data, NULL) == 0) {
      printf("%d\n", *(const int *)data);
      sum += *(const int *)data;
    }
  }
  mproc_as_completed_destroy(it);
  for (int i = 0; i < 5; i++) mproc_future_release(futures[i]);
  mproc_executor_shutdown(ex, 1, 0);
  mproc_executor_destroy(ex);
  return sum == 55 ? 0 : 1;
}
