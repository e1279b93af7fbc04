from _common import Case, c_anchor, c_mproc, py_anchor, sum_squares, WORKERS as W

NAME = "tiny"
ABOUT = "n*n over N items (per-task overhead); Python systems at smaller N, compared per task"
NOTES = ["mproc-shared: the same map with its input and output arrays in the shared arena "
         "(mproc_shared_alloc): workers read and write them in place, nothing passes through the rings",
         "mproc-pool:forkserver: mproc-pool from the fork server (mproc_init() first): the caller's arrays are "
         "not shared with the template, so the first map copies none of the output array's pages"]


def cases(quick):
    n = 1_000_000
    py = {"py-pool": 200_000, "py-pool:imap_unordered": 5_000, "py-ppe": 2_500, "py-joblib": 50_000}
    if quick:
        py = {k: v // 5 for k, v in py.items()}
    out = [Case(s, c_mproc("tiny", s, n=n, workers=W), n, W, sum_squares(n))
           for s in ("mproc-pool", "mproc-pool:forkserver", "mproc-executor", "mproc-parallel", "mproc-thread",
                     "mproc-shared")]
    out += [Case(s, c_anchor("tiny", s, n=n, workers=W), n, W if s != "serial" else 1, sum_squares(n))
            for s in ("serial", "openmp-static", "openmp-dynamic", "openmp-tasks", "fork-pipe")]
    out += [Case(s, py_anchor("tiny", s, n=k, workers=W), k, W, sum_squares(k)) for s, k in py.items()]
    return out
