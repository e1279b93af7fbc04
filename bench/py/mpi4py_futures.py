"""mpi4py_futures.py: the mpi4py.futures anchor (Debian's python3-mpi4py): MPIPoolExecutor on the ranks of an
MPI job, run as `mpirun -n W+1 /usr/bin/python3 -m mpi4py.futures mpi4py_futures.py WORKLOAD SYSTEM k=v...`
(rank 0 runs this script, ranks 1..W serve the executor; nothing is spawned).  Prints one JSON line
{"seconds": S, "checksum": C} (bench/c/bench_common.h's contract); exit 3: not applicable.

Systems: py-mpi4py (executor.map at its default chunksize, 1), py-mpi4py:chunksize=K (map with chunksize
K).  Workloads: tiny (i -> i*i), compute (anchors.py's calibrated busy loop, us microseconds, -> i),
roundtrip (submit one task, wait for its result, repeat), payload (mib MiB in, the same MiB back
transformed as bench/c/mpi_raw.c does, every word summed by rank 0)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from anchors import calibrate, compute, tiny  # noqa: E402  (workers import them by reference)

M64 = (1 << 64) - 1


def payload(i, a):
    """a: the master's buffer of uint64 words k (word 0 is 0); returns ~a + i, as mpi_raw.c's task"""
    import numpy as np
    out = np.invert(a)
    out += np.uint64(i)
    return out


def report(seconds, checksum):
    print(json.dumps({"seconds": seconds, "checksum": int(checksum) & M64}), flush=True)


def main():
    from mpi4py.futures import MPIPoolExecutor
    wl, system = sys.argv[1], sys.argv[2]
    args = dict(a.split("=", 1) for a in sys.argv[3:])
    n = int(float(args.get("n", 1000)))
    kind, _, variant = system.partition(":")
    chunksize = int(variant.split("=", 1)[1]) if variant.startswith("chunksize=") else 1
    if kind != "py-mpi4py" or wl not in ("tiny", "compute", "roundtrip", "payload"):
        sys.exit(3)
    if wl == "payload":
        import numpy as np
        a = np.arange(int(args.get("mib", 64)) * (1 << 20) // 8, dtype=np.uint64)
    elif wl == "compute":
        rate = calibrate()  # here, before timing: every worker uses it (as anchors.py's compute)
        items = [(i, float(args.get("us", 1000)), rate) for i in range(n)]
    with MPIPoolExecutor() as ex:
        ex.bootup(wait=True)  # the worker ranks ready
        list(ex.map(tiny, range(16)))  # warm
        t0 = time.perf_counter()
        if wl == "tiny":
            s = sum(ex.map(tiny, range(n), chunksize=chunksize))
        elif wl == "compute":
            s = sum(ex.map(compute, items, chunksize=chunksize))
        elif wl == "roundtrip":
            s = 0
            for i in range(n):
                s += ex.submit(tiny, i).result()
        else:
            s = 0
            for r in ex.map(payload, range(n), [a] * n, chunksize=chunksize):
                s += int(r.sum(dtype=np.uint64))  # numpy's uint64 sum wraps as C's does
        dt = time.perf_counter() - t0
    report(dt, s)


if __name__ == "__main__":
    main()
