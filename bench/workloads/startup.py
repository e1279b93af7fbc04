from _common import Case, c_anchor, c_mproc, py_anchor, WORKERS as W

NAME = "startup"
ABOUT = "pool creation to first result, 2 workers; mib=N: the caller holds N MiB first"


def cases(quick):
    out = [Case("mproc-pool", c_mproc("startup", "mproc-pool", workers=W), 1, W, 49),
           Case("mproc-pool:forkserver", c_mproc("startup", "mproc-pool:forkserver", workers=W), 1, W, 49),
           Case("mproc-pool:mib=512", c_mproc("startup", "mproc-pool", workers=W, mib=512), 1, W, 49),
           Case("mproc-pool:forkserver:mib=512", c_mproc("startup", "mproc-pool:forkserver", workers=W, mib=512), 1, W, 49),
           Case("fork-pipe", c_anchor("startup", "fork-pipe", workers=W), 1, W, 49)]
    out += [Case(s, py_anchor("startup", s, workers=W), 1, W, 49) for s in ("py-pool", "py-ppe", "py-joblib")]
    return out
