"""harness.py: the one place that builds, runs, times and tabulates the benchmark (bench/run calls it).

Each workload is a file in bench/workloads/ with NAME, ABOUT and cases(quick) -> a list of Case.  A case is
one system at one size: a command that prints {"seconds": S, "checksum": C}.  For every workload the cases
run interleaved (A B C A B C ...) after one warm-up round; the table gives the median and min-max of the
seconds, the cost per task, and each system's ratio to the mproc system of reference (> 1: mproc faster).
A checksum that differs from the workload's expected value fails the run."""
import argparse
import functools
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(ROOT, "build-bench")
PY = "/usr/bin/python3"


class Case:
    def __init__(self, system, argv, n, workers, expected, per_task=None, extra=None, group=""):
        self.system, self.argv, self.n, self.workers = system, argv, n, workers
        self.group = group  # rows are compared with the mproc row of the same group
        self.expected, self.per_task = expected, per_task if per_task is not None else n
        self.extra = extra or {}
        self.times, self.rss = [], 0
        self.tree_kb = 0  # peak memory of the whole process tree, when the workload samples it
        self.skipped = None
        self.why = ""  # what a system that is not available here said (exit status 3)


def c_mproc(workload, system, **kw):
    return [os.path.join(BUILD, "bench", "mproc_bench"), workload, system] + [f"{k}={v}" for k, v in kw.items()]


def c_anchor(workload, system, **kw):
    return [os.path.join(BUILD, "bench", "bench_anchors"), workload, system] + [f"{k}={v}" for k, v in kw.items()]


def mpi_anchor(workload, workers, system="mpi-raw", **kw):
    """bench_mpi_raw (mpi-raw, or mpi-raw:idle with mproc's idle policy) under mpirun with one master and
    `workers` worker ranks; None when MPI was not built."""
    if mpi_missing():
        return None
    return (_mpirun(workers) + [os.path.join(BUILD, "bench", "bench_mpi_raw"), workload, system]
            + [f"{k}={v}" for k, v in kw.items()])


def _mpirun(workers):
    """mpirun with one master and `workers` worker ranks (oversubscribed: this machine may have fewer cores)"""
    return ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", str(workers + 1)]


def mpi_missing():
    """Why the MPI rows cannot run here, or None: no mpirun, or CMake found no MPI (bench_mpi_raw is built when
    it does; an mproc built without its MPI backend, -DMPROC_WITH_MPI=OFF, says so itself: exit status 3)."""
    if not shutil.which("mpirun"):
        return "no mpirun (Open MPI not installed)"
    if not os.path.exists(os.path.join(BUILD, "bench", "bench_mpi_raw")):
        return "not built (CMake found no MPI)"
    return None


def mpi_mproc(workload, system, workers, **kw):
    """mproc_bench under mpirun (1 master rank, `workers` agent ranks); None when MPI is missing."""
    if mpi_missing():
        return None
    return _mpirun(workers) + c_mproc(workload, system, workers=workers, **kw)


@functools.lru_cache(maxsize=None)
def mpi4py_missing():
    """Why the mpi4py.futures rows cannot run here, or None."""
    why = mpi_missing()
    if why:
        return why
    probe = subprocess.run([PY, "-c", "import mpi4py.futures"], capture_output=True)
    return None if probe.returncode == 0 else f"{PY} has no mpi4py (Debian: python3-mpi4py)"


def mpi4py_anchor(workload, system, workers, **kw):
    """bench/py/mpi4py_futures.py under `mpirun -n workers+1 python3 -m mpi4py.futures`; None when missing."""
    if mpi4py_missing():
        return None
    return (_mpirun(workers) + [PY, "-m", "mpi4py.futures", os.path.join(HERE, "py", "mpi4py_futures.py"),
                                workload, system] + [f"{k}={v}" for k, v in kw.items()])


def py_anchor(workload, system, **kw):
    return [PY, os.path.join(HERE, "py", "anchors.py"), workload, system] + [f"{k}={v}" for k, v in kw.items()]


def build():
    cfg = ["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Release", "-DMPROC_BUILD_TESTS=OFF",
           "-DMPROC_BUILD_EXAMPLES=OFF", "-DMPROC_BUILD_BENCH=ON"]
    subprocess.run(cfg, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", BUILD, "-j", str(os.cpu_count() or 2)], check=True, stdout=subprocess.DEVNULL)


def _meminfo_kb(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _descendants(root):
    """root and every process under it (from /proc/*/stat's parent field)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                parent[int(d)] = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in tree and p not in tree}
        tree |= more
        grew = bool(more)
    return tree


def tree_memory_kb(root, shmem_base):
    """Memory the process tree holds: the private anonymous memory of each process (Pss_Anon) plus the
    shared memory made since the run began (/proc/meminfo's Shmem: memfds, /dev/shm files such as joblib's
    memory maps, shared anonymous mappings), each page counted once however many processes map it."""
    anon = 0
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss_Anon:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
    return anon + max(0, _meminfo_kb("Shmem") - shmem_base)


def become_subreaper():
    """Makes processes a system leaves behind (joblib's loky workers outlive their parent by seconds) this
    process's children, so that reap_stragglers() can wait for them."""
    import ctypes
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap_stragglers(timeout=60.0):
    """Waits until every process the last system left behind has ended (killed after timeout seconds): they
    would otherwise take the CPU from the next system's timed part (after py-joblib, mproc's start-up
    measured 5 ms instead of 1)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if time.monotonic() > deadline:
            for pid in _descendants(os.getpid()) - {os.getpid()}:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            deadline = float("inf")
        time.sleep(0.005)


def run_once(case, timeout, sample_tree=False):
    """Runs one case; returns (seconds, checksum, peak RSS in kB of the system's own process, peak memory
    of its whole process tree in kB or 0 when not sampled) or None.  Sampling reads /proc every 20 ms."""
    import tempfile
    tree_kb = 0
    shmem_base = _meminfo_kb("Shmem") if sample_tree else 0
    next_sample = 0.0
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        proc = subprocess.Popen(case.argv, stdout=fout, stderr=ferr, text=True)
        deadline = time.monotonic() + timeout
        if not sample_tree:
            # Sleep in wait4 until the case ends: a harness that woke every 2 ms to look took a core from
            # short cases (start-up measured 1.34 ms against 0.9 ms run directly).  A timer kills it on time.
            killer = threading.Timer(timeout, proc.kill)
            killer.start()
            pid, status, usage = os.wait4(proc.pid, 0)
            killer.cancel()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{case.system} timed out after {timeout} s")
        while sample_tree:  # reap it ourselves: wait4 gives this process's own peak RSS
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{case.system} timed out after {timeout} s")
            if now >= next_sample:
                tree_kb = max(tree_kb, tree_memory_kb(proc.pid, shmem_base))
                next_sample = now + 0.02
            time.sleep(0.002)
        proc.returncode = os.waitstatus_to_exitcode(status)
        reap_stragglers()
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    if proc.returncode == 3:  # "not this system": its first line on stderr, if any, says why
        case.why = next((l.strip() for l in err.splitlines() if l.strip()), "")
        return None
    if proc.returncode != 0:
        raise RuntimeError(f"{case.system} failed ({proc.returncode}): {err.strip()[-400:]}")
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    res = json.loads(line)
    return res["seconds"], res["checksum"], usage.ru_maxrss, tree_kb


def machine_probe():
    """Prints and returns what this machine charges for a page's first touch and for a fork (bench_anchors'
    `machine probe`): figures of runs on machines of different kinds compare only through these."""
    try:
        out = subprocess.run(c_anchor("machine", "probe"), capture_output=True, text=True, timeout=60, check=True)
        p = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        print(f"machine: probe failed ({e})")
        return None
    print(f"machine: {os.cpu_count()} CPUs; a page's first touch {p['first_touch_us_per_page']:.2f} us, a touch of a "
          f"mapped page {p['touch_us_per_page']:.3f} us, a forked child's first read of one {p['child_read_us_per_page']:.2f} us; "
          f"a fork: {p['fork_child_runs_us']:.0f} us until the child runs, "
          f"{p['fork_exit_wait_us']:.0f} us until it has exited and been waited for (medians of 7)")
    return p


def load_workloads():
    mods = []
    wdir = os.path.join(HERE, "workloads")
    sys.path.insert(0, wdir)
    for f in sorted(os.listdir(wdir)):
        if f.endswith(".py") and not f.startswith("_"):
            spec = importlib.util.spec_from_file_location(f[:-3], os.path.join(wdir, f))
            m = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(m)
            mods.append(m)
    return mods


def fmt_s(s):
    return f"{s * 1e3:10.3f} ms" if s < 10 else f"{s:10.2f} s "


def main():
    ap = argparse.ArgumentParser(description="mproc's benchmark against its anchors")
    ap.add_argument("--quick", action="store_true", help="small sizes: every workload within about a minute")
    ap.add_argument("--json", metavar="FILE", help="write one object per row to FILE")
    ap.add_argument("--only", metavar="NAME", action="append", help="run only this workload (repeatable)")
    ap.add_argument("--reps", type=int, default=None, help="measured repetitions (default 2 quick, 5 full)")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    reps = a.reps or (2 if a.quick else 5)
    become_subreaper()
    if not a.no_build:
        build()
    rows, failures = [], []
    started = time.time()
    probe = machine_probe()
    if probe:
        rows.append(dict(workload="machine", **probe))
    for w in load_workloads():
        if a.only and w.NAME not in a.only:
            continue
        cases = w.cases(a.quick)
        print(f"\n== {w.NAME}: {w.ABOUT}")
        # a workload whose every case starts whole jobs (mpirun) may ask for fewer rounds in --quick
        w_reps = getattr(w, "QUICK_REPS", reps) if a.quick and not a.reps else reps
        for r in range(w_reps + 1):  # the first round warms up and is not counted
            for c in cases:
                if c.argv is None and not c.skipped:
                    c.skipped = "not built (MPI not found)"
                if c.skipped:
                    continue
                try:
                    res = run_once(c, timeout=300, sample_tree=getattr(w, "TREE_MEMORY", False))
                except RuntimeError as e:
                    failures.append(str(e))
                    c.skipped = "failed"
                    continue
                if res is None:
                    c.skipped = "not available" + (f": {c.why}" if c.why else "")
                    continue
                sec, chk, rss, tree_kb = res
                if c.expected is not None and chk != c.expected:
                    failures.append(f"{w.NAME}/{c.system}: wrong answer {chk}, expected {c.expected}")
                    c.skipped = "WRONG ANSWER"
                    continue
                if r > 0:
                    c.times.append(sec)
                c.rss = max(c.rss, rss)
                c.tree_kb = max(c.tree_kb, tree_kb)
        refs = {}
        for c in cases:
            if c.system.startswith("mproc") and c.times and c.group not in refs:
                refs[c.group] = statistics.median(c.times) / c.per_task
        print(f"{'system':32} {'n':>9} {'w':>2} {'median':>13} {'min-max':>23} {'per task':>12} {'vs mproc':>9}")
        for c in cases:
            if not c.times:
                why = c.skipped or "no result"
                print(f"{c.system:32} {c.n:>9} {c.workers:>2}   ({why})")
                continue
            med = statistics.median(c.times)
            per_us = med / c.per_task * 1e6
            ref_cost = refs.get(c.group)
            ratio = (med / c.per_task) / ref_cost if ref_cost else float("nan")
            row = {"workload": w.NAME, "system": c.system, "n": c.n, "workers": c.workers, "median_s": med,
                   "min_s": min(c.times), "max_s": max(c.times), "per_task_us": per_us, "peak_rss_kb": c.rss,
                   "ratio_to_mproc": ratio, "reps": len(c.times)}
            if c.tree_kb:
                row["tree_peak_mib"] = c.tree_kb / 1024
            row.update(w.extra_fields(c, cases) if hasattr(w, "extra_fields") else {})
            rows.append(row)
            extra = "".join(f"  {k}={v:.3f}" for k, v in row.items() if k in ("efficiency",))
            if c.tree_kb:
                extra += f"  tree peak {c.tree_kb / 1024:.0f} MiB"
            print(f"{c.system:32} {c.n:>9} {c.workers:>2} {fmt_s(med)} {fmt_s(min(c.times))}-{fmt_s(max(c.times)).strip():>10}"
                  f" {per_us:9.3f} us {ratio:8.2f}x{extra}")
        for note in getattr(w, "NOTES", []):
            print(f"   note: {note}")
        # the goals a workload states: one line each (and a JSON row), e.g. "mproc vs raw MPI: 1.2x"
        for g in (w.goals(cases) if hasattr(w, "goals") else []):
            print(f"   goal: {g['text']}")
            rows.append(dict(workload=w.NAME, **g))
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(f"\n{len(rows)} rows in {time.time() - started:.1f} s")
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
