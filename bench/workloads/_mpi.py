"""_mpi.py: what the MPI workloads (mpi-tiny, mpi-roundtrip, mpi-1ms, mpi-payload) share: every system runs
under `mpirun --oversubscribe -n 3`, one master rank and WORKERS worker ranks.

Systems: mproc-mpi (mproc_bench on MPROC_BACKEND_MPI: a map, or for roundtrip and payload one submitted task
at a time), mproc-mpi:submit (one mproc_pool_submit() per task, then every result), mpi-raw (bench_mpi_raw,
blocking MPI_Recv: Open MPI spins in it, a whole core per idle rank), mpi-raw:idle (the same loop with the
idle budget of mproc's backend: MPI_Improbe with sched_yield for 100 us, then a nap doubling from 10 us to
1 ms), py-mpi4py (mpi4py.futures' MPIPoolExecutor.map at its default chunksize, 1) and
py-mpi4py:chunksize=100.  Rows that cannot run say why (no mpirun, no MPI at build time, no mpi4py)."""
import statistics

from _common import Case, WORKERS, mpi4py_anchor, mpi_anchor, mpi_mproc  # noqa: F401
from harness import mpi4py_missing, mpi_missing  # noqa: F401

W = WORKERS  # worker ranks: mpirun -n 3


def mproc_case(workload, system, n, expected, **kw):
    c = Case(system, mpi_mproc(workload, system, W, n=n, **kw), n, W, expected)
    c.skipped = mpi_missing()
    return c


def raw_case(workload, system, n, expected, **kw):
    c = Case(system, mpi_anchor(workload, W, system=system, n=n, **kw), n, W, expected)
    c.skipped = mpi_missing()
    return c


def mpi4py_case(workload, system, n, expected, **kw):
    c = Case(system, mpi4py_anchor(workload, system, W, n=n, **kw), n, W, expected)
    c.skipped = mpi4py_missing()
    return c


def per_task(cases, system):
    c = next((c for c in cases if c.system == system and c.times), None)
    return statistics.median(c.times) / c.per_task if c else None


def ratio_goal(cases, mine, other, least, text):
    """A goal on the cost per task of `mine` against `other`: r = other's cost / mine's (above 1: mine is
    faster) must be at least `least`.  A JSON row; "value" is None when either row has no figure."""
    a, b = per_task(cases, mine), per_task(cases, other)
    if a is None or b is None:
        return {"goal": text, "value": None, "met": None,
                "text": f"{text}: not measured ({mine if a is None else other} has no figure)"}
    r = b / a
    return {"goal": text, "value": r, "met": r >= least,
            "text": f"{text}: {mine} {a * 1e6:.3f} us, {other} {b * 1e6:.3f} us per task, "
                    f"{other}/{mine} = {r:.2f} (needs >= {least:g}: {'met' if r >= least else 'NOT met'})"}
