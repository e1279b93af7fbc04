/* v1.c: version 1 of a cached test function (test_cache builds it as libcachefn.so). */
#include <mproc.h>

int cachefn(const void *arg, size_t len, mproc_task *t);
int cachefn(const void *arg, size_t len, mproc_task *t) {
  int x = len == sizeof(int) ? *(const int *)arg : 0;
  int y = x * 3 + 1;
  return mproc_task_return(t, &y, sizeof y);
}
