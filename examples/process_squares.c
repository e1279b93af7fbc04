/* process_squares.c: the first example of the multiprocessing tutorial, in C.
 *
 *   def task(n):
 *       print(f"Result: {n * n}")
 *   for i in range(1, 6): Process(target=task, args=(i,)).start() ... join()
 *
 * Five processes each square their number and print it; the order of the lines varies from run to run. */
#include <mproc.h>
#include <stdio.h>
#include <string.h>

static int task(const void *arg, size_t len) {
  int n;
  if (len != sizeof n) return 1;
  memcpy(&n, arg, sizeof n);
  printf("Result: %d (from %s)\n", n * n, mproc_current_process_name());
  return 0;
}

int main(void) {
  mproc_process *processes[5];
  for (int i = 1; i <= 5; i++) {
    int r = mproc_process_start(&processes[i - 1], task, &i, sizeof i, NULL);
    if (r != 0) {
      fprintf(stderr, "cannot start process %d: %s\n", i, mproc_strerror(r));
      return 1;
    }
  }
  int failures = 0;
  for (int i = 0; i < 5; i++) {
    int code = -1;
    mproc_process_join(processes[i], MPROC_FOREVER);
    if (mproc_process_exitcode(processes[i], &code) != 0 || code != 0) failures++;
    mproc_process_destroy(processes[i]);
  }
  return failures ? 1 : 0;
}
