"""items_data.py: the data of the strings and tree workloads, for the Python anchors and the workload files:
the same strings as bench/c/bench_items.h's bench_string(), and the generated directory tree."""
import hashlib
import os
import random
import shutil

M64 = (1 << 64) - 1
ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def make_string(i):
    """String i: 16 to 64 characters, as bench_string() makes it."""
    x = splitmix64(i)
    y = x
    out = []
    for k in range(16 + x % 49):
        if k % 8 == 0:
            y = (y * 6364136223846793005 + 1442695040888963407) & M64
        out.append(ALPHA[(y >> (8 * (k % 8))) & 63])
    return "".join(out)


def hash_str(s):
    """The Python rows' 64-bit hash of a string: BLAKE2b with an 8-byte digest (hashlib's C code; Python has
    no XXH3 without a package).  Each row is checked against its own hash's expected sum."""
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def strings_checksum(n):
    return sum(hash_str(make_string(i)) for i in range(n)) & M64


TREE_VERSION = 1


def make_tree(files, root=None):
    """A directory tree of `files` files of 1-16 KiB of pseudo-random bytes (the same every time), 100 per
    directory in two levels, under /tmp; made once (a stamp beside it says it is complete).  Returns its
    path."""
    root = root or f"/tmp/mproc-bench-tree-{files}"
    stamp = root + ".done"
    want = f"{TREE_VERSION} {files}\n"
    if os.path.exists(stamp) and open(stamp).read() == want and os.path.isdir(root):
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(16)
    for i in range(files):
        d = os.path.join(root, f"d{i // 1000:03d}", f"e{(i // 100) % 10}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
            f.write(rng.randbytes(rng.randint(1024, 16384)))
    with open(stamp, "w") as f:
        f.write(want)
    return root


def tree_paths(root):
    """Every regular file under root (symbolic links not followed)."""
    out, stack = [], [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    out.append(e.path)
    return out


def file_head(path, algo="sha256"):
    """The tree rows' checksum term: the file's digest, its first 8 bytes as a big-endian number."""
    with open(path, "rb") as f:
        data = f.read()
    h = hashlib.sha256(data) if algo == "sha256" else hashlib.blake2b(data)
    return int.from_bytes(h.digest()[:8], "big")


def tree_checksum(root, algo="sha256"):
    return sum(file_head(p, algo) for p in tree_paths(root)) & M64
