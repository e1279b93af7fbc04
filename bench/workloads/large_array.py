from _common import Case, c_anchor, c_mproc, py_anchor, WORKERS as W

NAME = "large-array"
ABOUT = "sum of a large array of doubles in 64 chunks: mproc reads the caller's array with no copy"
NOTES = ["mproc-shared: the pool exists first, then the array is made with mproc_shared_alloc() and filled; "
         "tasks get (pointer, count) spans and read it in place",
         "mproc-parallel-shared: the same array handed to mproc_parallel_run() as 64 records, read in place; "
         "mproc-parallel-private: a malloc'd array made after the pool, its records stream through the rings",
         "mproc-pool: the array exists before the pool, workers read it in place (fork snapshot); "
         "py-joblib memory-maps it (max_nbytes), py-pool pickles each chunk (a copy)",
         "tree peak: the most memory the whole process tree held (private anonymous memory of every "
         "process plus the shared memory made since the start, each page once), sampled every 20 ms"]
TREE_MEMORY = True


def expected(mib):
    count = mib * (1 << 20) // 8
    full, rest = divmod(count, 1000)
    return full * 499500 + rest * (rest - 1) // 2


def cases(quick):
    mib = 64 if quick else 1024
    n = 64
    out = [Case("serial", c_anchor("large-array", "serial", n=n, mib=mib), n, 1, expected(mib))]
    out += [Case(s, c_mproc("large-array", s, n=n, mib=mib, workers=W), n, W, expected(mib))
            for s in ("mproc-shared", "mproc-parallel-shared", "mproc-parallel-private", "mproc-pool")]
    out += [Case(s, c_anchor("large-array", s, n=n, mib=mib, workers=W), n, W, expected(mib))
            for s in ("openmp-static", "fork-pipe")]
    out += [Case(s, py_anchor("large-array", s, n=n, mib=mib, workers=W), n, W, expected(mib))
            for s in ("py-joblib", "py-pool")]
    return out
