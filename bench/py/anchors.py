"""anchors.py: the Python anchors of the benchmark (multiprocessing Pool, ProcessPoolExecutor, joblib), on
Debian's /usr/bin/python3.  Run as `anchors.py WORKLOAD SYSTEM key=value...`; prints one JSON line
{"seconds": S, "checksum": C} (see bench/c/bench_common.h for the contract).  Exit 3: not applicable."""
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

def calibrate():
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        x = 0
        for i in range(20000):
            x = (x * 31 + i) & 0xFFFFFFFF
        best = min(best, time.perf_counter() - t0)
    return 20000 / (best * 1e6)


def spin(us, seed, rate):
    x = seed
    for i in range(int(us * rate)):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def tiny(i):
    return i * i


def compute(args):
    i, us, rate = args
    spin(us, i, rate)
    return i


def chunk_sum(a):
    return float(a.sum())


def pareto(n, mean_us, seed):
    """The same heavy-tailed durations as bench_common.h's bench_pareto()."""
    s = seed or 1
    alpha, out = 1.5, []
    xm = mean_us * (alpha - 1) / alpha
    mask = (1 << 64) - 1
    for _ in range(n):
        s ^= s >> 12
        s = (s ^ (s << 25)) & mask
        s ^= s >> 27
        u = ((s * 2685821657736338717) & mask) >> 11
        u /= 9007199254740992.0
        v = xm / (1.0 - u) ** (1.0 / alpha)
        out.append(min(v, mean_us * 200))
    return out


def report(seconds, checksum):
    print(json.dumps({"seconds": seconds, "checksum": int(checksum) & ((1 << 64) - 1)}), flush=True)


def main():
    wl, system = sys.argv[1], sys.argv[2]
    args = dict(a.split("=", 1) for a in sys.argv[3:])
    n = int(float(args.get("n", 1000)))
    workers = int(args.get("workers", 2))
    us = float(args.get("us", 1000))
    kind, _, variant = system.partition(":")

    if wl == "startup":
        t0 = time.perf_counter()
        if kind == "py-pool":
            with mp.Pool(workers) as pool:
                r = pool.apply(tiny, (7,))
                dt = time.perf_counter() - t0
        elif kind == "py-ppe":
            with ProcessPoolExecutor(workers) as ex:
                r = ex.submit(tiny, 7).result()
                dt = time.perf_counter() - t0
        elif kind == "py-joblib":
            from joblib import Parallel, delayed
            from joblib.externals.loky import get_reusable_executor
            r = Parallel(n_jobs=workers)(delayed(tiny)(i) for i in [7])[0]
            dt = time.perf_counter() - t0
            get_reusable_executor().shutdown(wait=True)
        else:
            sys.exit(3)
        return report(dt, r)

    if wl == "respawn":
        # a new worker for every task: n tasks at once, collected in order
        if kind == "py-pool":
            with mp.Pool(workers, maxtasksperchild=1) as pool:
                pool.apply(tiny, (1,))
                t0 = time.perf_counter()
                s = sum(r.get() for r in [pool.apply_async(tiny, (i,)) for i in range(n)])
                dt = time.perf_counter() - t0
        elif kind == "py-ppe":
            # max_tasks_per_child needs Python 3.11; it makes the executor spawn its workers
            with ProcessPoolExecutor(workers, max_tasks_per_child=1) as ex:
                ex.submit(tiny, 1).result()
                t0 = time.perf_counter()
                s = sum(f.result() for f in [ex.submit(tiny, i) for i in range(n)])
                dt = time.perf_counter() - t0
        else:
            sys.exit(3)
        return report(dt, s)

    if wl == "roundtrip":
        if kind == "py-pool":
            with mp.Pool(workers) as pool:
                pool.apply(tiny, (1,))
                t0 = time.perf_counter()
                s = sum(pool.apply_async(tiny, (i,)).get() for i in range(n))
                dt = time.perf_counter() - t0
        elif kind == "py-ppe":
            with ProcessPoolExecutor(workers) as ex:
                ex.submit(tiny, 1).result()
                t0 = time.perf_counter()
                s = sum(ex.submit(tiny, i).result() for i in range(n))
                dt = time.perf_counter() - t0
        else:
            sys.exit(3)
        return report(dt, s)

    if wl == "many":
        # concurrent.futures' as_completed needs every future first: memory grows with n
        if system == "py-ppe:as_completed":
            with ProcessPoolExecutor(workers) as ex:
                ex.submit(tiny, 1).result()
                t0 = time.perf_counter()
                futures = [ex.submit(tiny, i) for i in range(n)]
                s = sum(f.result() for f in as_completed(futures))
                dt = time.perf_counter() - t0
        elif system == "py-pool:imap_unordered":
            with mp.Pool(workers) as pool:
                pool.apply(tiny, (1,))
                t0 = time.perf_counter()
                s = sum(pool.imap_unordered(tiny, range(n), chunksize=64))
                dt = time.perf_counter() - t0
        else:
            sys.exit(3)
        return report(dt, s)

    if wl == "lock":
        lock = mp.Lock()
        if variant == "uncontended":
            t0 = time.perf_counter()
            for _ in range(n):
                lock.acquire()
                lock.release()
            return report(time.perf_counter() - t0, n)
        counter = mp.Value("q", 0, lock=False)
        procs = [mp.Process(target=_locked_adds, args=(lock, counter, n // workers)) for _ in range(workers)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return report(time.perf_counter() - t0, counter.value)

    if wl == "queue":
        size = int(args.get("bytes", 8))
        msg = b"x" * size
        if kind == "py-queue":
            q = mp.Queue()
            p = mp.Process(target=_consume, args=(q, n))
            p.start()
            t0 = time.perf_counter()
            for _ in range(n):
                q.put(msg)
            p.join()
            return report(time.perf_counter() - t0, n * size)
        if kind == "py-pipe":
            a, b = mp.Pipe()
            p = mp.Process(target=_echo, args=(b, n))
            p.start()
            t0 = time.perf_counter()
            total = 0
            for _ in range(n):
                a.send_bytes(msg)
                total += len(a.recv_bytes())
            p.join()
            return report(time.perf_counter() - t0, total)
        sys.exit(3)

    if wl in ("cache-miss", "cache-hit"):
        if kind != "py-joblib":
            sys.exit(3)
        import numpy as np
        from joblib import Memory
        with tempfile.TemporaryDirectory() as d:
            mem = Memory(d, verbose=0)
            f = mem.cache(_cached_result)
            size = int(args.get("bytes", 8000))
            if wl == "cache-hit":
                for i in range(n):
                    f(i, size)
            t0 = time.perf_counter()
            s = 0
            for i in range(n):
                s += int(f(i, size)[0])
            return report(time.perf_counter() - t0, s)

    if wl == "large-array":
        import numpy as np
        mib = int(args.get("mib", 64))
        a = (np.arange(mib * (1 << 20) // 8, dtype=np.float64) % 1000)
        chunk = (len(a) + n - 1) // n
        parts = [a[i * chunk:(i + 1) * chunk] for i in range(n)]
        if kind == "py-joblib":
            from joblib import Parallel, delayed
            with Parallel(n_jobs=workers) as par:  # arrays over 1 MB are memory-mapped, not copied
                par(delayed(chunk_sum)(parts[i]) for i in range(min(n, workers)))
                t0 = time.perf_counter()
                s = sum(par(delayed(chunk_sum)(p) for p in parts))
                dt = time.perf_counter() - t0
        elif kind == "py-pool":
            with mp.Pool(workers) as pool:  # chunks are pickled: copied to the workers
                pool.apply(tiny, (1,))
                t0 = time.perf_counter()
                s = sum(pool.map(chunk_sum, parts))
                dt = time.perf_counter() - t0
        else:
            sys.exit(3)
        return report(dt, round(s))

    if wl == "strings":
        # a map over n short strings (bench_items.h's), each returning a 64-bit hash (items_data.hash_str)
        from items_data import hash_str, make_string
        items = [make_string(i) for i in range(n)]
        if kind == "py-pool":
            with mp.Pool(workers) as pool:
                pool.map(tiny, range(workers * 4))  # warm
                t0 = time.perf_counter()
                s = sum(pool.map(hash_str, items))
                dt = time.perf_counter() - t0
        elif kind == "py-joblib":
            from joblib import Parallel, delayed
            with Parallel(n_jobs=workers) as par:
                par(delayed(tiny)(i) for i in range(workers * 4))
                t0 = time.perf_counter()
                s = sum(par(delayed(hash_str)(it) for it in items))  # a generator, as joblib is used
                dt = time.perf_counter() - t0
        else:
            sys.exit(3)
        return report(dt, s)

    if wl == "tree":
        # the whole job timed, as for find | xargs: walk the tree, start the pool, digest every file
        from items_data import file_head, tree_paths
        if system != "py-pool:sha256":
            sys.exit(3)
        t0 = time.perf_counter()
        paths = tree_paths(args["root"])
        with mp.Pool(workers) as pool:
            s = sum(pool.map(file_head, paths))
        dt = time.perf_counter() - t0
        return report(dt, s)

    # tiny, compute, irregular: a map of n items
    if wl == "tiny":
        fn, items = tiny, range(n)
    elif wl == "compute":
        rate = calibrate()  # in the parent, before timing: every worker uses it
        fn, items = compute, [(i, us, rate) for i in range(n)]
    elif wl == "irregular":
        rate = calibrate()
        fn, items = compute, [(i, d, rate) for i, d in enumerate(pareto(n, us, int(args.get("seed", 42))))]
    else:
        sys.exit(3)
    if kind == "py-serial":
        # the same Python tasks in this one process: the baseline of the Python rows' efficiency
        if wl == "tiny":
            sys.exit(3)
        t0 = time.perf_counter()
        s = sum(map(fn, items))
        dt = time.perf_counter() - t0
    elif kind == "py-pool":
        with mp.Pool(workers) as pool:
            pool.map(tiny, range(workers * 4))  # warm
            t0 = time.perf_counter()
            if variant == "imap_unordered":
                s = sum(pool.imap_unordered(fn, items))
            else:
                s = sum(pool.map(fn, items))
            dt = time.perf_counter() - t0
    elif kind == "py-ppe":
        with ProcessPoolExecutor(workers) as ex:
            list(ex.map(tiny, range(workers * 4)))
            t0 = time.perf_counter()
            if variant == "submit":
                s = sum(f.result() for f in as_completed([ex.submit(fn, it) for it in items]))
            else:
                s = sum(ex.map(fn, items))
            dt = time.perf_counter() - t0
    elif kind == "py-joblib":
        from joblib import Parallel, delayed
        with Parallel(n_jobs=workers) as par:
            par(delayed(tiny)(i) for i in range(workers * 4))
            t0 = time.perf_counter()
            s = sum(par(delayed(fn)(it) for it in items))
            dt = time.perf_counter() - t0
    else:
        sys.exit(3)
    report(dt, s)


def _locked_adds(lock, counter, k):
    for _ in range(k):
        with lock:
            counter.value += 1


def _consume(q, n):
    for _ in range(n):
        q.get()


def _echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def _cached_result(i, size):
    import numpy as np
    return np.full(size // 8, i, dtype=np.float64)


if __name__ == "__main__":
    main()
