"""_compute.py: the compute-bound workloads (compute-1ms, compute-50us) differ only in duration and size."""
from _common import Case, c_anchor, c_mproc, mpi_anchor, py_anchor, sum_range, WORKERS as W

NOTES = ["mproc-executor:submit: one mproc_pool_submit() per task, then every result in order, as py-ppe:submit "
         "(one submit per task, then as_completed); the other systems map"]


def make_cases(us, quick_per_worker, full_per_worker):
    def cases(quick):
        n = W * (quick_per_worker if quick else full_per_worker)
        out = [Case("serial", c_anchor("compute", "serial", n=n, us=us), n, 1, sum_range(n))]
        out += [Case(s, c_mproc("compute", s, n=n, us=us, workers=W), n, W, sum_range(n))
                for s in ("mproc-pool", "mproc-parallel", "mproc-executor:submit")]
        out += [Case(s, c_anchor("compute", s, n=n, us=us, workers=W), n, W, sum_range(n))
                for s in ("openmp-dynamic", "openmp-tasks", "fork-pipe")]
        out += [Case("mpi-raw", mpi_anchor("compute", W, n=n, us=us), n, W, sum_range(n))]
        out += [Case("py-serial", py_anchor("compute", "py-serial", n=n, us=us, workers=1), n, 1, sum_range(n))]
        out += [Case(s, py_anchor("compute", s, n=n, us=us, workers=W), n, W, sum_range(n))
                for s in ("py-pool", "py-ppe:submit", "py-joblib")]
        return out
    return cases
