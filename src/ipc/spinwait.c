/* spinwait.c: the generic wait of spinwait.h. */
#include "ipc/spinwait.h"

int mproc__spinwait(mproc__bell b, mproc__spin *spin, bool (*ready)(void *), void *arg, double deadline) {
  for (;;) {
    if (ready(arg)) return 0;
    if (!mproc__spin_once(spin)) break;
  }
  for (;;) {
    uint32_t seen = mproc__bell_announce(b, true);
    if (ready(arg)) {
      mproc__bell_awake(b);
      return 0;
    }
    double left = mproc__remaining(deadline);
    if (left == 0) {
      mproc__bell_awake(b);
      return -ETIMEDOUT;
    }
    int r = mproc__bell_sleep(b, seen, left);
    mproc__bell_awake(b);
    if (ready(arg)) return 0;
    if (r && r != -ETIMEDOUT && r != -EINTR) return r;
  }
}
