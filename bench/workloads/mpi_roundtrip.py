from _common import sum_squares
from _mpi import mpi4py_case, mproc_case, ratio_goal, raw_case

NAME = "mpi-roundtrip"
ABOUT = ("one task at a time on MPI (submit, wait for its result, repeat), mpirun --oversubscribe -n 3: "
         "the latency of a task through the master and a worker rank")
QUICK_REPS = 1  # --quick: one warm-up and one measured round (each case is an mpirun job)
NOTES = ["mproc-mpi: mproc_pool_submit + mproc_future_result on the MPI backend; mpi-raw(:idle): one message "
         "out and one back; py-mpi4py: executor.submit(...).result()"]


def cases(quick):
    n = 500 if quick else 2_000
    out = [mproc_case("roundtrip", "mproc-mpi", n, sum_squares(n))]
    out += [raw_case("roundtrip", k, n, sum_squares(n)) for k in (("mpi-raw:idle",) if quick else ("mpi-raw", "mpi-raw:idle"))]
    if not quick:
        out += [mpi4py_case("roundtrip", "py-mpi4py", n, sum_squares(n))]
    return out


def goals(cases):
    return [ratio_goal(cases, "mproc-mpi", "mpi-raw:idle", 1 / 1.5,
                       "within 1.5x of raw MPI with the same idle budget, one task at a time (no goal of the "
                       "issue, whose per-task goal is mpi-tiny's: a task here is handed from the caller to the courier, "
                       "the agent and a worker process and back, three hand-offs each way where the raw loop "
                       "has one)")]
