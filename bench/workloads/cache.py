from _common import Case, c_mproc, py_anchor, sum_range

NAME = "cache"
ABOUT = "result cache: cache-miss (compute + store) and cache-hit (load) per call, 8 kB results"


def cases(quick):
    n = 100 if quick else 1000
    return [Case("mproc-cache:miss", c_mproc("cache-miss", "mproc-cache", n=n, bytes=8000), n, 1, sum_range(n),
                 group="miss"),
            Case("py-joblib:cache-miss", py_anchor("cache-miss", "py-joblib", n=n), n, 1, sum_range(n), group="miss"),
            Case("mproc-cache:hit", c_mproc("cache-hit", "mproc-cache", n=n, bytes=8000), n, 1, sum_range(n),
                 group="hit"),
            Case("py-joblib:cache-hit", py_anchor("cache-hit", "py-joblib", n=n), n, 1, sum_range(n), group="hit")]
