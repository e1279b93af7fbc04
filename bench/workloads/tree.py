import json
import os
import subprocess
import sys

from _common import Case, c_anchor, c_mproc, py_anchor, WORKERS as W

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "py"))
from items_data import make_tree, tree_checksum  # noqa: E402

NAME = "tree"
ABOUT = ("the digest of every file of a directory tree of 10^4 files of 1-16 KiB (generated once under /tmp, "
         "page cache warm): the whole job timed, walk and pool start-up included")
NOTES = ["mproc-items: tree_digest's way (walk, mproc_pool_map_items over the paths as C strings, each task "
         "reads its file with POSIX calls) with XXH3-128; mproc-items:sha256 the same with a portable C "
         "SHA-256 (bench/c/sha256.h, no SHA instructions, as coreutils' sha256sum)",
         "xargs-*: find ROOT -type f -print0 | xargs -0 -P 2 sha256sum (b2sum: BLAKE2b-512), output read by "
         "the timing program (:P1: one sha256sum at a time, beside serial:sha256 it compares the two SHA-256 "
         "codes); py-pool:sha256: os.scandir walk, Pool.map of hashlib.sha256 over the paths "
         "(OpenSSL's SHA-256, with the CPU's SHA instructions where it has them)",
         "checksum: each digest's first 8 bytes as a big-endian number, summed; SHA-256 and BLAKE2b rows are "
         "checked against hashlib here, the XXH3 rows against the serial loop (run once first)",
         "ratios: within a hash (sha256 rows against mproc-items:sha256, the others against mproc-items)"]


def cases(quick):
    files = 10_000
    root = make_tree(files)
    sha, b2 = tree_checksum(root, "sha256"), tree_checksum(root, "blake2b")
    out = subprocess.run(c_anchor("tree", "serial", root=root), capture_output=True, text=True, check=True)
    xxh = json.loads(out.stdout.strip().splitlines()[-1])["checksum"]
    return [
        Case("mproc-items", c_mproc("tree", "mproc-items", root=root, workers=W), files, W, xxh, group="xxh3"),
        Case("serial", c_anchor("tree", "serial", root=root), files, 1, xxh, group="xxh3"),
        Case("xargs-b2sum", c_anchor("tree", "xargs-b2sum", root=root, workers=W), files, W, b2, group="xxh3"),
        Case("mproc-items:sha256", c_mproc("tree", "mproc-items:sha256", root=root, workers=W), files, W, sha,
             group="sha256"),
        Case("serial:sha256", c_anchor("tree", "serial:sha256", root=root), files, 1, sha, group="sha256"),
        Case("xargs-sha256sum", c_anchor("tree", "xargs-sha256sum", root=root, workers=W), files, W, sha,
             group="sha256"),
        Case("xargs-sha256sum:P1", c_anchor("tree", "xargs-sha256sum:P1", root=root, workers=1), files, 1, sha,
             group="sha256"),
        Case("py-pool:sha256", py_anchor("tree", "py-pool:sha256", root=root, workers=W), files, W, sha,
             group="sha256"),
    ]
