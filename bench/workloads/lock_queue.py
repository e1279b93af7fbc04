from _common import Case, c_anchor, c_mproc, py_anchor

NAME = "lock-queue"
ABOUT = "queue throughput (8 B, 64 KiB; 1 producer, 1 consumer process), pipe round trips, lock pairs (uncontended; 2 processes)"


def cases(quick):
    n = 20_000 if quick else 200_000
    q = 1_000 if quick else 50_000
    big = 300 if quick else 5_000
    return [Case("mproc-queue:8B", c_mproc("queue", "mproc-queue:8B", n=q, bytes=8), q, 2, q * 8, group="q8"),
            Case("py-queue:8B", py_anchor("queue", "py-queue", n=q, bytes=8), q, 2, q * 8, group="q8"),
            Case("mproc-queue:64KiB", c_mproc("queue", "mproc-queue:64KiB", n=big, bytes=65536), big, 2, big * 65536,
                 group="q64k"),
            Case("py-queue:64KiB", py_anchor("queue", "py-queue", n=big, bytes=65536), big, 2, big * 65536,
                 group="q64k"),
            Case("fork-pipe:8B", c_anchor("queue", "fork-pipe", n=q, bytes=8), q, 2, q * 8, group="q8"),
            Case("fork-pipe:64KiB", c_anchor("queue", "fork-pipe", n=big, bytes=65536), big, 2, big * 65536,
                 group="q64k"),
            Case("mproc-pipe:8B:roundtrip", c_mproc("queue", "mproc-pipe:8B", n=q, bytes=8), q, 2, q * 8, group="rt"),
            Case("py-pipe:8B:roundtrip", py_anchor("queue", "py-pipe", n=q, bytes=8), q, 2, q * 8, group="rt"),
            Case("fork-pipe:8B:roundtrip", c_anchor("queue", "fork-pipe", n=q, bytes=8, roundtrip=1), q, 2, q * 8,
                 group="rt"),
            Case("mproc-pipe:64KiB:roundtrip", c_mproc("queue", "mproc-pipe:64KiB", n=big, bytes=65536), big, 2,
                 big * 65536, group="rt64k"),
            Case("py-pipe:64KiB:roundtrip", py_anchor("queue", "py-pipe", n=big, bytes=65536), big, 2, big * 65536,
                 group="rt64k"),
            Case("fork-pipe:64KiB:roundtrip", c_anchor("queue", "fork-pipe", n=big, bytes=65536, roundtrip=1), big,
                 2, big * 65536, group="rt64k"),
            Case("mproc-lock:uncontended", c_mproc("lock", "mproc-lock:uncontended", n=n), n, 1, n, group="lock1"),
            Case("py-lock:uncontended", py_anchor("lock", "py-lock:uncontended", n=n), n, 1, n, group="lock1"),
            Case("mproc-lock:contended", c_mproc("lock", "mproc-lock:contended", n=n, workers=2), n, 2, n,
                 group="lock2"),
            Case("py-lock:contended", py_anchor("lock", "py-lock:contended", n=n, workers=2), n, 2, n, group="lock2")]
