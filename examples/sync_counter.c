/* sync_counter.c: four processes add to one shared counter under its lock and the total is exact.
 *
 *   counter = Value('q', 0)                      # a shared value with a lock
 *   def add(n):
 *       for _ in range(n):
 *           with counter.get_lock(): counter.value += 1
 *   procs = [Process(target=add, args=(100000,)) for _ in range(4)] ... start, join
 *   print(counter.value)                         # 400000 */
#include <mproc.h>
#include <stdio.h>
#include <string.h>

static mproc_array *counter; /* made before the processes: they share it */

static int add(const void *arg, size_t len) {
  (void)len;
  int n = *(const int *)arg;
  int64_t *value = mproc_array_data(counter);
  mproc_lock *lock = mproc_array_lock(counter);
  for (int i = 0; i < n; i++) {
    if (mproc_lock_acquire(lock, MPROC_FOREVER) != 0) return 1;
    *value += 1; /* a read and a write: exact only under the lock */
    mproc_lock_release(lock);
  }
  return 0;
}

int main(void) {
  if (mproc_array_create(&counter, sizeof(int64_t), 1, 1) != 0) return 1;
  mproc_process *procs[4];
  int n = 100000;
  for (int i = 0; i < 4; i++)
    if (mproc_process_start(&procs[i], add, &n, sizeof n, NULL) != 0) return 1;
  for (int i = 0; i < 4; i++) {
    mproc_process_join(procs[i], MPROC_FOREVER);
    mproc_process_destroy(procs[i]);
  }
  int64_t total = *(int64_t *)mproc_array_data(counter);
  printf("total = %lld (expected 400000)\n", (long long)total);
  mproc_array_destroy(counter);
  return total == 400000 ? 0 : 1;
}
