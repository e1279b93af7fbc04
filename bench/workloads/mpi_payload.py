from _common import M64, Case, c_mproc, WORKERS
from _mpi import mpi4py_case, mproc_case, ratio_goal, raw_case

NAME = "mpi-payload"
ABOUT = ("tasks that take MIB MiB in and give MIB MiB back, on MPI, mpirun --oversubscribe -n 3 (64 MiB; 4 MiB "
         "in --quick): the cost per task, the master summing every word it gets back")
QUICK_REPS = 1  # --quick: one warm-up and one measured round (each case is an mpirun job)
NOTES = ["each task's input is the master's buffer of 64-bit words k (word 0: the task's index i), its result "
         "~k + i for every word; mproc and mpi-raw send one task per worker rank at a time, mpi4py's map its "
         "default chunksize (1)",
         "mproc-pool: the same tasks on the local process backend (2 worker processes), for reference"]


def expected(n, mib):
    w = mib * (1 << 20) // 8
    return sum(w * M64 - w * (w - 1) // 2 + w * i for i in range(n)) & M64


def cases(quick):
    n, mib = (2, 4) if quick else (4, 64)
    e = expected(n, mib)
    out = [mproc_case("payload", "mproc-mpi", n, e, mib=mib)]
    if not quick:
        out += [Case("mproc-pool", c_mproc("payload", "mproc-pool", n=n, mib=mib, workers=WORKERS), n, WORKERS, e)]
    out += [raw_case("payload", k, n, e, mib=mib) for k in (("mpi-raw:idle",) if quick else ("mpi-raw", "mpi-raw:idle"))]
    if not quick:
        out += [mpi4py_case("payload", "py-mpi4py", n, e, mib=mib)]
    return out


def goals(cases):
    return [ratio_goal(cases, "mproc-mpi", "mpi-raw:idle", 1 / 1.5,
                       "a payload's cost within 1.5x of raw MPI with the same idle budget (no goal of the issue)")]
