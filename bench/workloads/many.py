from _common import Case, c_mproc, py_anchor, sum_squares, WORKERS as W

NAME = "many"
ABOUT = "n tiny tasks collected in completion order: memory must stay bounded by the tasks in flight, not n"
NOTES = ["mproc-as-completed: submit + mproc_as_completed_add, at most 256 in flight, each future released "
         "when taken; mproc-imap-unordered: a stream over the index range (its default window)",
         "py-ppe:as_completed submits every future first, as concurrent.futures requires; "
         "py-pool:imap_unordered with chunksize 64",
         "tree peak: the whole process tree's memory (see large-array); compare it across n"]
TREE_MEMORY = True


def cases(quick):
    ns = (100_000, 1_000_000) if quick else (1_000_000, 10_000_000)
    pn = (5_000, 20_000) if quick else (10_000, 50_000)
    out = []
    for n in ns:
        out += [Case(f"{s}:n={n}", c_mproc("many", s, n=n, workers=W), n, W, sum_squares(n), group=str(n))
                for s in ("mproc-as-completed", "mproc-imap-unordered")]
    for n in pn:
        out += [Case(f"{s}:n={n}", py_anchor("many", s, n=n, workers=W), n, W, sum_squares(n), group=str(ns[0]))
                for s in ("py-ppe:as_completed", "py-pool:imap_unordered")]
    return out
