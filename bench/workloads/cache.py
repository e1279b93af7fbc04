from _common import Case, py_anchor, sum_range

NAME = "cache"
ABOUT = "result cache: cache-miss (compute + store) and cache-hit (load) per call, 8 kB results"
NOTES = ["mproc side not built yet (the result cache of issue 5): joblib.Memory alone"]


def cases(quick):
    n = 100 if quick else 1000
    return [Case("py-joblib:cache-miss", py_anchor("cache-miss", "py-joblib", n=n), n, 1, sum_range(n)),
            Case("py-joblib:cache-hit", py_anchor("cache-hit", "py-joblib", n=n), n, 1, sum_range(n))]
