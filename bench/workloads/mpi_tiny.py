from _common import sum_squares
from _mpi import mpi4py_case, mproc_case, ratio_goal, raw_case

NAME = "mpi-tiny"
ABOUT = ("n*n over N items on MPI, mpirun --oversubscribe -n 3 (1 master + 2 worker ranks): the cost per task; "
         "each system at its own N, compared per task")
QUICK_REPS = 1  # --quick: one warm-up and one measured round (each case is an mpirun job)
NOTES = ["mproc-mpi: mproc_pool_map on the MPI backend (automatic batches); mproc-mpi:submit: one "
         "mproc_pool_submit() per task, then every result, the like of mpi-raw's one message per task (two in "
         "flight per worker rank)",
         "mpi-raw blocks in MPI_Recv (a whole core per idle rank); mpi-raw:idle polls with mproc's idle budget "
         "(MPI_Improbe, sched_yield for 100 us, then naps doubling from 10 us to 1 ms)",
         "py-mpi4py: mpi4py.futures' MPIPoolExecutor.map (default chunksize 1); :chunksize=100 its best here"]


def cases(quick):
    s = {"mproc-mpi": 10**6, "mproc-mpi:submit": 20_000, "mpi-raw": 100_000, "mpi-raw:idle": 20_000,
         "py-mpi4py": 2_000, "py-mpi4py:chunksize=100": 100_000}
    if quick:
        s = {k: v // 5 if k != "mproc-mpi" else v // 10 for k, v in s.items()}
    out = [mproc_case("tiny", k, s[k], sum_squares(s[k])) for k in ("mproc-mpi", "mproc-mpi:submit")]
    out += [raw_case("tiny", k, s[k], sum_squares(s[k])) for k in (("mpi-raw:idle",) if quick else ("mpi-raw", "mpi-raw:idle"))]
    out += [mpi4py_case("tiny", k, s[k], sum_squares(s[k])) for k in ("py-mpi4py", "py-mpi4py:chunksize=100")]
    return out


def goals(cases):
    return [ratio_goal(cases, "mproc-mpi:submit", "mpi-raw:idle", 1 / 1.5,
                       "within 1.5x of raw MPI with the same idle budget, one task per message"),
            ratio_goal(cases, "mproc-mpi", "py-mpi4py", 50, "50x faster than mpi4py.futures at chunksize 1"),
            ratio_goal(cases, "mproc-mpi", "py-mpi4py:chunksize=100", 1, "ahead of mpi4py.futures at chunksize 100")]
