from _common import Case, c_anchor, efficiency, py_anchor, sum_range
from _mpi import W, mpi4py_case, mproc_case, raw_case

NAME = "mpi-1ms"
ABOUT = ("compute-bound tasks of 1 ms on MPI, mpirun --oversubscribe -n 3 (2 worker ranks): efficiency = "
         "serial / (worker ranks x time), against the serial loop of the same language")
QUICK_REPS = 1  # --quick: one warm-up and one measured round (each case is an mpirun job)
NOTES = ["mproc-mpi: mproc_pool_map on the MPI backend (its batches measured, as locally); the workers get "
         "the master's calibration through the pool's initializer (they are forked before main calibrates)"]
extra_fields = efficiency


def cases(quick):
    n = W * (50 if quick else 500)
    s = sum_range(n)
    out = [Case("serial", c_anchor("compute", "serial", n=n, us=1000), n, 1, s)]
    # the machine's ceiling: W threads on the same loop with nothing sent at all (the worker ranks share the
    # cores with the master, mpirun and each other as these threads do not)
    out += [Case("openmp-static", c_anchor("compute", "openmp-static", n=n, us=1000, workers=W), n, W, s)]
    out += [mproc_case("compute", k, n, s, us=1000) for k in (("mproc-mpi",) if quick else ("mproc-mpi", "mproc-mpi:submit"))]
    out += [raw_case("compute", k, n, s, us=1000) for k in (("mpi-raw:idle",) if quick else ("mpi-raw", "mpi-raw:idle"))]
    if not quick:
        out += [Case("py-serial", py_anchor("compute", "py-serial", n=n, us=1000, workers=1), n, 1, s)]
        out += [mpi4py_case("compute", k, n, s, us=1000) for k in ("py-mpi4py", "py-mpi4py:chunksize=100")]
    return out


def goals(cases):
    mine = next((c for c in cases if c.system == "mproc-mpi"), None)
    e = efficiency(mine, cases).get("efficiency") if mine else None
    if e is None:
        return [{"goal": "efficiency >= 0.95", "value": None, "met": None,
                 "text": "efficiency of 1 ms tasks across the ranks >= 0.95: not measured"}]
    ceiling = next((c for c in cases if c.system == "openmp-static"), None)
    ce = efficiency(ceiling, cases).get("efficiency") if ceiling else None
    of = f"; the machine's ceiling (openmp-static, no messages) {ce:.3f}, mproc-mpi at {e / ce:.3f} of it" \
        if ce else ""
    return [{"goal": "efficiency >= 0.95", "value": e, "met": e >= 0.95,
             "text": f"efficiency of 1 ms tasks across the ranks, mproc-mpi: {e:.3f} (needs >= 0.95: "
                     f"{'met' if e >= 0.95 else 'NOT met'}){of}"}]
