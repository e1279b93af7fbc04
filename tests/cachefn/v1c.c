/* v1c.c: version 1 of a cached test function with only its comments changed.
 * (A longer comment here: joblib would invalidate on this edit; mproc must not.) */
#include <mproc.h>

int cachefn(const void *arg, size_t len, mproc_task *t);
int cachefn(const void *arg, size_t len, mproc_task *t) {
  /* the argument is one int */
  int x = len == sizeof(int) ? *(const int *)arg : 0;
  int y = x * 3 + 1; /* three times plus one */
  return mproc_task_return(t, &y, sizeof y);
}
