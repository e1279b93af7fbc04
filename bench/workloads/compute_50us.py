from _common import Case, c_anchor, c_mproc, py_anchor, sum_range, efficiency, WORKERS as W

NAME = "compute-50us"
ABOUT = "compute-bound tasks of 50 us (a calibrated busy loop): efficiency = serial / (workers x time)"
US = 50


def cases(quick):
    n = W * (150 if quick else 4000)
    out = [Case("serial", c_anchor("compute", "serial", n=n, us=US), n, 1, sum_range(n))]
    out += [Case(s, c_mproc("compute", s, n=n, us=US, workers=W), n, W, sum_range(n))
            for s in ("mproc-pool", "mproc-parallel")]
    out += [Case(s, c_anchor("compute", s, n=n, us=US, workers=W), n, W, sum_range(n))
            for s in ("openmp-dynamic", "openmp-tasks", "fork-pipe")]
    out += [Case(s, py_anchor("compute", s, n=n, us=US, workers=W), n, W, sum_range(n))
            for s in ("py-pool", "py-ppe:submit", "py-joblib")]
    return out


extra_fields = efficiency
