from _common import Case, py_anchor

NAME = "lock-queue"
ABOUT = "lock pairs (uncontended, 2 processes contended) and queue/pipe messages of 8 B and 64 KiB"
NOTES = ["mproc side not built yet (locks and queues of issue 3): Python's multiprocessing alone"]


def cases(quick):
    n = 20_000 if quick else 200_000
    q = 1_000 if quick else 50_000
    big = 300 if quick else 5_000
    return [Case("py-lock:uncontended", py_anchor("lock", "py-lock:uncontended", n=n), n, 1, n),
            Case("py-lock:contended", py_anchor("lock", "py-lock:contended", n=n, workers=2), n, 2, n),
            Case("py-queue:8B", py_anchor("queue", "py-queue", n=q, bytes=8), q, 2, q * 8),
            Case("py-queue:64KiB", py_anchor("queue", "py-queue", n=big, bytes=65536), big, 2, big * 65536),
            Case("py-pipe:8B:roundtrip", py_anchor("queue", "py-pipe", n=q, bytes=8), q, 2, q * 8)]
