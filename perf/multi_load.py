#!/usr/bin/env python3
"""Two-command MULTI/EXEC load for perf/transactions.sh.

Each connection sends MULTI / SET k1 v / SET k2 v / EXEC in one write and
reads the four replies (one round trip per transaction), for DURATION
seconds; PROCS processes of CONNS connections each. Keys: `same` puts both
keys of a connection under one hashtag (one shard), `cross` picks k1 on
shard 0 and k2 on shard 1 of a 2-shard ringkv (Redis Cluster slots, as
ringkv maps them). Prints `transactions=N seconds=S`.

`pair:A:B:N` puts k1 on shard A and k2 on shard B of an N-shard ringkv.

usage: multi_load.py PORT same|cross|pair:A:B:N DURATION PROCS CONNS
"""
import multiprocessing
import selectors
import socket
import sys
import time


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def shard_of(key: bytes, shards: int) -> int:
    s, e = key.find(b"{"), -1
    if s >= 0:
        e = key.find(b"}", s + 1)
    if s >= 0 and e > s + 1:
        key = key[s + 1:e]
    return (crc16(key) % 16384) * shards // 16384


def keys_for(conn: int, mode: str):
    if mode == "same":
        return b"{c%d}a" % conn, b"{c%d}b" % conn
    if mode.startswith("pair:"):
        # pair:A:B:N: k1 on shard A and k2 on shard B of an N-shard ringkv.
        a, b, n = (int(x) for x in mode.split(":")[1:])
        k1 = next(b"x%d:%d" % (conn, i) for i in range(10000) if shard_of(b"x%d:%d" % (conn, i), n) == a)
        k2 = next(b"y%d:%d" % (conn, i) for i in range(10000) if shard_of(b"y%d:%d" % (conn, i), n) == b)
        return k1, k2
    k1 = next(b"x%d:%d" % (conn, i) for i in range(1000) if shard_of(b"x%d:%d" % (conn, i), 2) == 0)
    k2 = next(b"y%d:%d" % (conn, i) for i in range(1000) if shard_of(b"y%d:%d" % (conn, i), 2) == 1)
    return k1, k2


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


# The four replies of a two-SET transaction, always these bytes.
EXPECTED = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n"


def worker(port: int, mode: str, duration: float, first: int, conns: int, out):
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(first, first + conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        k1, k2 = keys_for(i, mode)
        req = resp(b"MULTI") + resp(b"SET", k1, b"v") + resp(b"SET", k2, b"v") + resp(b"EXEC")
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [req, b""])
        s.sendall(req)

    def on_reply(key, data):
        state = key.data
        state[1] += data
        if len(state[1]) < len(EXPECTED):
            return 0
        if state[1] != EXPECTED:
            raise SystemExit("unexpected replies: %r" % state[1])
        state[1] = b""
        key.fileobj.sendall(state[0])
        return 1

    out.put(drive(sel, duration, on_reply))


def drive(sel, duration, on_reply):
    """Reads what the sockets registered in `sel` receive for `duration`
    seconds; `on_reply(key, data)` says how many requests that completed
    (and sends the next). Returns the total."""
    done = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.5):
            data = key.fileobj.recv(65536)
            if not data:
                raise SystemExit("server closed a connection")
            done += on_reply(key, data)
    return done


def main():
    port, mode, duration, procs, conns = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(port, mode, duration, p * conns, conns, q)) for p in range(procs)]
    start = time.monotonic()
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    print("transactions=%d seconds=%.2f" % (total, time.monotonic() - start))


if __name__ == "__main__":
    main()
