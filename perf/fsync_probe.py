#!/usr/bin/env python3
"""fdatasync cost on the disk a directory lives on, by the ways an AOF could
append: what `appendfsync always` pays per group commit.

    perf/fsync_probe.py [DIR] [ITERATIONS] [BYTES_PER_COMMIT]

Each mode appends BYTES_PER_COMMIT (default 1500: ~25 SETs of 32-byte
values, a redis-server group commit at -c 50) and calls fdatasync,
ITERATIONS times (default 2000), in a fresh file in DIR (default perf/out):

- append:     O_APPEND write, then fdatasync (what ringkv and redis do; the
              file grows, so each fdatasync commits the new i_size and, under
              delayed allocation, the new blocks' extents);
- falloc:     the same, after fallocate(FALLOC_FL_KEEP_SIZE) of 64 MiB
              beyond the tail (blocks reserved, the logical size still
              exact: what redis-check-aof and redis-server see is unchanged);
- overwrite:  writes into a file already written and fsynced to its full
              size (no size or block change: a data-only fdatasync; not an
              option for an AOF, whose logical size must be exact, shown as
              the floor).

Printed per mode: fdatasync latency p50/p90/p99/max (us), and this thread's
CPU per fsync (user+sys, us, write included): the part of the cost charged
to the caller. The modes take turns, one commit each per step (ROUNDS=2
rounds by default), so the disk's drift hits all of them alike.
"""
import ctypes, os, sys, time

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE = 1

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
size = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
rounds = int(os.environ.get("ROUNDS", "2"))
os.makedirs(d, exist_ok=True)
payload = (b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000012345\r\n$32\r\n" + b"x" * 32 + b"\r\n") * (size // 60 + 1)
payload = payload[:size]


MODES = ("append", "falloc", "overwrite")


def open_mode(mode):
    path = os.path.join(d, "fsync-probe-%d-%s" % (os.getpid(), mode))
    if mode == "overwrite":
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        os.write(fd, b"\0" * (n * size))
    else:
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_APPEND, 0o644)
        if mode == "falloc":
            if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 64 << 20) != 0:
                raise OSError(ctypes.get_errno(), "fallocate")
    os.fsync(fd)
    return path, fd


def paired():
    """One round: the modes' files written in turn, one commit each per
    step, so that the disk's drift hits every mode alike."""
    files = {m: open_mode(m) for m in MODES}
    lat = {m: [] for m in MODES}
    cpu = {m: 0.0 for m in MODES}
    for i in range(n):
        for m in MODES:
            fd = files[m][1]
            c0 = time.thread_time()
            if m == "overwrite":
                os.pwrite(fd, payload, i * size)
            else:
                os.write(fd, payload)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            lat[m].append(time.perf_counter() - t0)
            cpu[m] += time.thread_time() - c0
    out = {}
    for m in MODES:
        path, fd = files[m]
        st = os.fstat(fd)
        # The logical size stays exact (what redis-check-aof reads).
        assert m == "overwrite" or st.st_size == n * size, "logical size must stay exact"
        os.close(fd)
        os.unlink(path)
        l = sorted(lat[m])
        q = lambda p: l[min(len(l) - 1, int(p * len(l)))] * 1e6
        out[m] = (q(0.5), q(0.9), q(0.99), l[-1] * 1e6, cpu[m] / n * 1e6)
    return out


print("%-10s %8s %8s %8s %9s %12s" % ("mode", "p50us", "p90us", "p99us", "max us", "cpu us/fsync"))
for r in range(rounds):
    res = paired()
    for mode in MODES:
        print("%-10s %8.0f %8.0f %8.0f %9.0f %12.1f" % ((mode,) + res[mode]), flush=True)
