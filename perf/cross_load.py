#!/usr/bin/env python3
"""Two-key cross-shard load for perf/crossshard.sh: one operation over a key
on shard 0 and a key on shard 1 of a 2-shard ringkv (the same keys on a
1-shard server), each connection one request in flight (-P 1), for DURATION
seconds, CONNS connections in one process. Prints `transactions=N
seconds=S` (N: requests, or transactions for `watch` and `exec`).

Operations (each request's reply is checked byte for byte):
  mset2   MSET k1 v k2 v (+OK): the one-round hop the two-round ones compare with
  msetnx  MSETNX k1 v k2 v (:1), then DEL k1 k2 (:2), alternately
  rename  RENAME k1 k2, then RENAME k2 k1 (+OK each; k1 set first)
  smove   SMOVE s1 s2 m, then SMOVE s2 s1 m (:1 each; s1 = {m} first)
  watch   WATCH k1 k2 / MULTI / SET k1 v / SET k2 v / EXEC in one write
          (one transaction; nobody else touches the keys, so it commits)
  exec    MULTI / SET k1 v / SET k2 v / EXEC in one write (a plain EXEC:
          one transaction, a one-round hop; perf/multi_load.py's `cross`)
  copy    COPY k1 k2 REPLACE, then COPY k2 k1 REPLACE (:1 each; k1 set first)
  lmove   LMOVE l1 l2 LEFT RIGHT, then LMOVE l2 l1 LEFT RIGHT (the element
          each time; l1 = [e] first)
  rpoplpush  RPOPLPUSH l1 l2, then RPOPLPUSH l2 l1 (the same)
  sinterstore  SINTERSTORE d s1 s2 (:1): s1 on shard 0, s2 and d on shard 1

usage: cross_load.py PORT mset2|msetnx|rename|smove|watch|exec|copy|lmove|rpoplpush|sinterstore DURATION CONNS
"""
import selectors
import socket
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from multi_load import drive, resp, shard_of  # noqa: E402


def key_on(prefix: bytes, conn: int, shard: int) -> bytes:
    return next(b"%s%d:%d" % (prefix, conn, i) for i in range(1000) if shard_of(b"%s%d:%d" % (prefix, conn, i), 2) == shard)


def steps(op: str, conn: int):
    """(setup request, [(request, expected reply)...] cycled)."""
    # Keys of their own per operation: a server may serve several in a row.
    k1, k2 = key_on(b"x" + op.encode(), conn, 0), key_on(b"y" + op.encode(), conn, 1)
    if op == "mset2":
        return resp(b"PING"), [(resp(b"MSET", k1, b"v", k2, b"v"), b"+OK\r\n")]
    if op == "msetnx":
        return resp(b"DEL", k1, k2), [(resp(b"MSETNX", k1, b"v", k2, b"v"), b":1\r\n"), (resp(b"DEL", k1, k2), b":2\r\n")]
    if op == "rename":
        return resp(b"SET", k1, b"v"), [(resp(b"RENAME", k1, k2), b"+OK\r\n"), (resp(b"RENAME", k2, k1), b"+OK\r\n")]
    if op == "smove":
        return resp(b"SADD", k1, b"m"), [(resp(b"SMOVE", k1, k2, b"m"), b":1\r\n"), (resp(b"SMOVE", k2, k1, b"m"), b":1\r\n")]
    if op == "watch":
        req = resp(b"WATCH", k1, k2) + resp(b"MULTI") + resp(b"SET", k1, b"v") + resp(b"SET", k2, b"v") + resp(b"EXEC")
        return resp(b"PING"), [(req, b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n")]
    if op == "exec":
        req = resp(b"MULTI") + resp(b"SET", k1, b"v") + resp(b"SET", k2, b"v") + resp(b"EXEC")
        return resp(b"PING"), [(req, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n")]
    if op == "copy":
        return resp(b"SET", k1, b"v"), [(resp(b"COPY", k1, k2, b"REPLACE"), b":1\r\n"), (resp(b"COPY", k2, k1, b"REPLACE"), b":1\r\n")]
    if op == "lmove":
        return resp(b"RPUSH", k1, b"e"), [(resp(b"LMOVE", k1, k2, b"LEFT", b"RIGHT"), b"$1\r\ne\r\n"), (resp(b"LMOVE", k2, k1, b"LEFT", b"RIGHT"), b"$1\r\ne\r\n")]
    if op == "rpoplpush":
        return resp(b"RPUSH", k1, b"e"), [(resp(b"RPOPLPUSH", k1, k2), b"$1\r\ne\r\n"), (resp(b"RPOPLPUSH", k2, k1), b"$1\r\ne\r\n")]
    if op == "sinterstore":
        # Sources on both shards, the destination on shard 1.
        d = key_on(b"z" + op.encode(), conn, 1)
        return resp(b"SADD", k1, b"m", b"n") + resp(b"SADD", k2, b"m"), [(resp(b"SINTERSTORE", d, k1, k2), b":1\r\n")]
    raise SystemExit("unknown operation " + op)


def main():
    port, op, duration, conns = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    sel = selectors.DefaultSelector()
    for c in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup, cycle = steps(op, c)
        s.sendall(setup)
        got = b""
        while got.count(b"\r\n") < setup.count(b"\r\n*") + 1:
            got += s.recv(65536)
        state = {"cycle": cycle, "at": 0, "buf": b""}
        sel.register(s, selectors.EVENT_READ, state)
        s.sendall(cycle[0][0])
    start = time.monotonic()

    def on_reply(key, data):
        st = key.data
        st["buf"] += data
        want = st["cycle"][st["at"]][1]
        if len(st["buf"]) < len(want):
            return 0
        if st["buf"] != want:
            raise SystemExit("unexpected reply to %s: %r" % (op, st["buf"]))
        st["buf"] = b""
        st["at"] = (st["at"] + 1) % len(st["cycle"])
        key.fileobj.sendall(st["cycle"][st["at"]][0])
        return 1

    done = drive(sel, duration, on_reply)
    print("transactions=%d seconds=%.2f" % (done, time.monotonic() - start))


if __name__ == "__main__":
    main()
