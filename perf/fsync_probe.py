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
CPU per fsync (user+sys, us): the part of the cost charged to the caller.
Runs alternate the modes (ROUNDS=2 by default) so the disk's drift hits all.
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


def one(mode):
    path = os.path.join(d, "fsync-probe-%d-%s" % (os.getpid(), mode))
    if mode == "overwrite":
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        os.write(fd, b"\0" * (n * size))
        os.fsync(fd)
    else:
        fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_APPEND, 0o644)
        if mode == "falloc":
            if libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 64 << 20) != 0:
                raise OSError(ctypes.get_errno(), "fallocate")
        os.fsync(fd)
    lat = []
    cpu0 = time.thread_time()
    for i in range(n):
        if mode == "overwrite":
            os.pwrite(fd, payload, i * size)
        else:
            os.write(fd, payload)
        t0 = time.perf_counter()
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t0)
    cpu = time.thread_time() - cpu0
    st = os.fstat(fd)
    assert mode == "overwrite" or st.st_size == n * size, "logical size must stay exact"
    os.close(fd)
    os.unlink(path)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e6
    return q(0.5), q(0.9), q(0.99), lat[-1] * 1e6, cpu / n * 1e6


print("%-10s %8s %8s %8s %9s %12s" % ("mode", "p50us", "p90us", "p99us", "max us", "cpu us/fsync"))
for r in range(rounds):
    for mode in ("append", "falloc", "overwrite"):
        print("%-10s %8.0f %8.0f %8.0f %9.0f %12.1f" % ((mode,) + one(mode)), flush=True)
