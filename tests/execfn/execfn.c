/* execfn.c: a task function in a shared object that test_exec loads with dlopen after its pool started, so
 * an exec'd worker must load it too.  Linked with the shared libmproc for mproc_task_return. */
#include <mproc.h>

int execfn_cube(const void *arg, size_t len, mproc_task *t);
int execfn_cube(const void *arg, size_t len, mproc_task *t) {
  (void)len;
  int n = *(const int *)arg;
  int c = n * n * n;
  return mproc_task_return(t, &c, sizeof c);
}
