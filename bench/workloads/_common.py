"""_common.py: what the workload files share (imported by them, not a workload itself)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Case, c_anchor, c_mproc, mpi_anchor, mpi_mproc, mpi4py_anchor, py_anchor  # noqa: E402,F401

M64 = (1 << 64) - 1
WORKERS = 2


def sum_squares(n):
    return (n - 1) * n * (2 * n - 1) // 6 & M64


def sum_range(n):
    return n * (n - 1) // 2


def efficiency(case, cases):
    """serial time / (workers x time), against the serial run in the same language: C's serial for the C
    systems, py-serial (the same Python tasks in one process) for the Python ones, whose busy loop is
    calibrated by Python itself."""
    import statistics
    base = "py-serial" if case.system.startswith("py-") else "serial"
    serial = next((c for c in cases if c.system == base and c.times), None)
    if not serial or not case.times or case.system in ("serial", "py-serial"):
        return {}
    s = statistics.median(serial.times) / serial.n
    t = statistics.median(case.times) / case.n
    return {"efficiency": s / (case.workers * t)}
