/* cpu.c: mproc_cpu_count(), the CPUs this process may really use. */
#include "internal.h"

int mproc_cpu_count(void) {
  return mproc__plat_cpu_count_combine(mproc__plat_affinity_count(),
                                       mproc__plat_cgroup_cpu_limit("/proc/self/cgroup", "/sys/fs/cgroup"));
}
