from _common import Case, c_anchor, c_mproc, mpi_anchor, py_anchor, sum_squares, WORKERS as W

NAME = "roundtrip"
ABOUT = "one task at a time: submit, wait for its result, repeat (warm pool); futex-pingpong is the floor"


def cases(quick):
    n, pn = (2_000, 200) if quick else (10_000, 10_000)
    return [
        Case("mproc-executor", c_mproc("roundtrip", "mproc-executor", n=n, workers=W), n, W, sum_squares(n)),
        Case("futex-pingpong", c_anchor("roundtrip", "futex-pingpong", n=n), n, 1, sum_squares(n)),
        Case("fork-pipe", c_anchor("roundtrip", "fork-pipe", n=n), n, 1, sum_squares(n)),
        Case("mpi-raw", mpi_anchor("roundtrip", 1, n=n), n, 1, sum_squares(n)),
        Case("py-pool", py_anchor("roundtrip", "py-pool", n=pn, workers=W), pn, W, sum_squares(pn)),
        Case("py-ppe", py_anchor("roundtrip", "py-ppe", n=pn, workers=W), pn, W, sum_squares(pn)),
    ]
