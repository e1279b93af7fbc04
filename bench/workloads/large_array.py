from _common import Case, c_anchor, c_mproc, py_anchor, WORKERS as W

NAME = "large-array"
ABOUT = "sum of a large array of doubles in 64 chunks: mproc reads the caller's array with no copy"
NOTES = ["mproc-pool: the array exists before the pool, workers read it in place (fork snapshot); "
         "py-joblib memory-maps it (max_nbytes), py-pool pickles each chunk (a copy)"]


def expected(mib):
    count = mib * (1 << 20) // 8
    full, rest = divmod(count, 1000)
    return full * 499500 + rest * (rest - 1) // 2


def cases(quick):
    mib = 64 if quick else 1024
    n = 64
    out = [Case("serial", c_anchor("large-array", "serial", n=n, mib=mib), n, 1, expected(mib))]
    out += [Case("mproc-pool", c_mproc("large-array", "mproc-pool", n=n, mib=mib, workers=W), n, W, expected(mib))]
    out += [Case(s, c_anchor("large-array", s, n=n, mib=mib, workers=W), n, W, expected(mib))
            for s in ("openmp-static", "fork-pipe")]
    out += [Case(s, py_anchor("large-array", s, n=n, mib=mib, workers=W), n, W, expected(mib))
            for s in ("py-joblib", "py-pool")]
    return out
