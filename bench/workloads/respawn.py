from _common import Case, c_mproc, py_anchor, sum_squares, WORKERS as W

NAME = "respawn"
ABOUT = ("replacement workers: every worker retires after one task (max tasks per child 1), n tasks at once; "
         "per task = a replacement's cost with two made at a time; mib=N: the caller holds N MiB first")


def cases(quick):
    n, n_big, n_py, n_ppe = (40, 10, 20, 4) if quick else (400, 40, 100, 20)
    out = [Case("mproc-pool", c_mproc("respawn", "mproc-pool", n=n, workers=W), n, W, sum_squares(n)),
           Case("mproc-pool:forkserver", c_mproc("respawn", "mproc-pool:forkserver", n=n, workers=W), n, W,
                sum_squares(n)),
           Case("mproc-pool:mib=512", c_mproc("respawn", "mproc-pool", n=n_big, workers=W, mib=512), n_big, W,
                sum_squares(n_big)),
           Case("mproc-pool:forkserver:mib=512",
                c_mproc("respawn", "mproc-pool:forkserver", n=n_big, workers=W, mib=512), n_big, W,
                sum_squares(n_big))]
    out += [Case("py-pool", py_anchor("respawn", "py-pool", n=n_py, workers=W), n_py, W, sum_squares(n_py)),
            Case("py-ppe", py_anchor("respawn", "py-ppe", n=n_ppe, workers=W), n_ppe, W, sum_squares(n_ppe))]
    return out
