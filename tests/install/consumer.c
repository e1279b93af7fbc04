/* consumer.c: a program built against an installed mproc, both through CMake and through pkg-config. */
#include <mproc.h>
#include <stdio.h>
#include <string.h>

static int square(const void *arg, size_t len) {
  int n;
  if (len != sizeof n) return 1;
  memcpy(&n, arg, sizeof n);
  return n * n;
}

int main(void) {
  mproc_process *p;
  int n = 7, code = -1;
  if (mproc_process_start(&p, square, &n, sizeof n, NULL) != 0) return 1;
  if (mproc_process_join(p, MPROC_FOREVER) != 0 || mproc_process_exitcode(p, &code) != 0) return 1;
  mproc_process_destroy(p);
  printf("mproc %s: 7*7 = %d\n", mproc_version_string(), code);
  return code == 49 ? 0 : 1;
}
