import json
import os
import subprocess
import sys

from _common import Case, c_anchor, c_mproc, py_anchor, WORKERS as W

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "py"))
from items_data import strings_checksum  # noqa: E402

NAME = "strings"
ABOUT = "a map over N strings of 16-64 bytes, each returning a 64-bit hash; Python systems at smaller N, per task"
NOTES = ["mproc-items: mproc_pool_map_items over the strings as C strings (mproc-items:packed: one buffer "
         "and offsets; mproc-items:thread: the thread backend); mproc-items-padded: mproc_pool_map over the "
         "same bytes zero-padded to 64-byte records (the issue's goal: items within 1.2x of it)",
         "the C rows hash with XXH3-64, checked against the serial loop's sum (bench_anchors strings serial, "
         "run once first); the Python rows with BLAKE2b-64 (hashlib), checked against a sum made here",
         "py-pool: Pool.map over a list of str (default chunksize); py-joblib: Parallel over a generator "
         "of delayed calls (batch_size auto)"]


def serial_checksum(n):
    out = subprocess.run(c_anchor("strings", "serial", n=n), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["checksum"]


def cases(quick):
    n = 1_000_000
    py = {"py-pool": 200_000, "py-joblib": 50_000}
    if quick:
        py = {k: v // 5 for k, v in py.items()}
    want = serial_checksum(n)
    out = [Case(s, c_mproc("strings", s, n=n, workers=W), n, W, want)
           for s in ("mproc-items", "mproc-items:packed", "mproc-items:thread", "mproc-items-padded")]
    out.append(Case("serial", c_anchor("strings", "serial", n=n), n, 1, want))
    out += [Case(s, py_anchor("strings", s, n=k, workers=W), k, W, strings_checksum(k)) for s, k in py.items()]
    return out
