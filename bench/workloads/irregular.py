from _common import Case, c_anchor, c_mproc, mpi_anchor, py_anchor, sum_range, efficiency, WORKERS as W
from _compute import NOTES  # noqa: F401 (the harness prints NOTES)

NAME = "irregular"
ABOUT = "heavy-tailed task durations (Pareto 1.5, mean 100 us, fixed seed): load balance"
US = 100


def cases(quick):
    n = 400 if quick else 10000
    kw = dict(n=n, us=US, seed=42)
    out = [Case("serial", c_anchor("irregular", "serial", **kw), n, 1, sum_range(n))]
    out += [Case(s, c_mproc("irregular", s, workers=W, **kw), n, W, sum_range(n))
            for s in ("mproc-pool", "mproc-parallel", "mproc-executor:submit")]
    out += [Case(s, c_anchor("irregular", s, workers=W, **kw), n, W, sum_range(n))
            for s in ("openmp-static", "openmp-dynamic", "openmp-tasks", "fork-pipe")]
    out += [Case("mpi-raw", mpi_anchor("irregular", W, **kw), n, W, sum_range(n))]
    out += [Case("py-serial", py_anchor("irregular", "py-serial", workers=1, **kw), n, 1, sum_range(n))]
    out += [Case(s, py_anchor("irregular", s, workers=W, **kw), n, W, sum_range(n)) for s in ("py-pool", "py-joblib")]
    return out


extra_fields = efficiency
