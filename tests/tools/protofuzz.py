#!/usr/bin/env python3
"""Differential protocol fuzzer: hostile RESP against ringkv (--shards 3) and
redis-server 7.0, the reply bytes and the close/keep decision compared.

A development tool, not part of `cargo test` (its finds become cases in
tests/protocol_hostile.rs). Each case is one connection: a random stream of
well-formed commands (RESP multibulk and inline, deterministic replies only)
mixed with hostile pieces (inline commands with quotes, escapes and
unbalanced quotes, empty lines, bare LF, multibulk counts negative, zero,
huge or not numbers, bulk lengths negative, over `proto-max-bulk-len` or
lying, a '$' missing, RESP3 types a client never sends, QUIT with garbage
after it, NUL and random bytes, inline requests and count lines over 64 KB),
cut at random points and sent in pieces with pauses (half-sent commands). All
reply bytes are read until the server closes or goes quiet; both servers must
send the same bytes and make the same close decision. After every case a
fresh connection must get PONG (the server survived), and ringkv's VmHWM
must stay under --max-hwm-mb (big declared bulks must not be reserved
beyond the query buffer limit).

    python3 tests/tools/protofuzz.py --seed 1 --count 500
    python3 tests/tools/protofuzz.py --seeds 1-20 --count 300 --stop-on-first
"""

import argparse
import os
import random
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from difffuzz import Conn, Closed, show  # noqa: E402
from fuzzkit import common_args, hwm_kb, seeds_of, start_pair, stop_pair  # noqa: E402


def mb(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


GOOD = [
    ("PING",), ("PING", "hi"), ("ECHO", "x"), ("ECHO", ""), ("SET", "k", "v"), ("GET", "k"), ("INCR", "n"),
    ("DEL", "k", "n"), ("APPEND", "k", "ab"), ("STRLEN", "k"), ("EXISTS", "k"), ("SET", "k"), ("GET",),
    ("NOSUCHCMD", "a"), ("RPUSH", "l", "a", "b"), ("LRANGE", "l", "0", "-1"), ("MSET", "a", "1", "b", "2"),
    ("MGET", "a", "b", "c"), ("HSET", "h", "f", "v"), ("HGETALL", "h"), ("TYPE", "l"), ("INCRBYFLOAT", "f", "1.5"),
]

INLINE = [
    b"PING\r\n", b"PING\n", b"ECHO hello\r\n", b'ECHO "a b"\r\n', b"ECHO 'a b'\r\n", b'ECHO "\\x41\\n"\r\n',
    b'ECHO "unbalanced\r\n', b"ECHO 'unbalanced\r\n", b'ECHO "a"b\r\n', b"\r\n", b"\n", b"   \r\n",
    b"SET  k   v  \r\n", b"GET k\r\n", b"PING\rPING\n", b"ECHO a\x00b\r\n", b"ping\r\n", b"Ping extra args\r\n",
    b'SET k "\\u1234"\r\n', b"ECHO '\\''\r\n", b'ECHO ""\r\n', b"QUIT\r\nGARBAGE\r\n", b"quit\r\n",
]

HOSTILE = [
    b"*abc\r\n", b"*-1\r\n", b"*-5\r\n", b"*0\r\n", b"*1048576\r\n", b"*1048577\r\n", b"*2147483647\r\n",
    b"*2147483648\r\n", b"*9999999999999999999999\r\n", b"*1\r\n$-1\r\n", b"*1\r\n$-5\r\n", b"*1\r\n$abc\r\n",
    b"*1\r\n$536870912\r\n", b"*1\r\n$536870913\r\n", b"*1\r\n$2147483648\r\n", b"*2\r\n$4\r\nECHO\r\nxyz\r\n",
    b"*2\r\n$4\r\nECHO\r\n$3\r\nabcd\r\n", b"*1\r\n$4\r\nPING", b"*1\r\n$4\r\nPINGxx", b"*1\r\n+PING\r\n",
    b"*1\r\n:1\r\n", b"%1\r\n+a\r\n+b\r\n", b"~1\r\n+a\r\n", b"_\r\n", b"#t\r\n", b",1.5\r\n", b"(123\r\n",
    b"=5\r\ntxt:a\r\n", b">1\r\n+a\r\n", b"|1\r\n+a\r\n+b\r\n", b"!3\r\nerr\r\n", b"+PING\r\n", b"-ERR x\r\n",
    b":5\r\n", b"$4\r\nPING\r\n", b"*1 \r\n$4\r\nPING\r\n", b"* 1\r\n", b"*+1\r\n$4\r\nPING\r\n",
    b"*01\r\n$04\r\nPING\r\n", b"*1\r\n$4 \r\nPING\r\n", b"*1\r\n$+4\r\nPING\r\n", b"*1\n$4\nPING\n",
    b"*1\r\n$4\r\nPING\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + b"x" * 1000, b"*\r\n", b"$\r\n",
    b"*1\r\n$\r\n", b"*1\r\n$0\r\n\r\n", b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", b"\x00\r\n", b"\xff\xfe\r\n",
    b"*1\r\n$3\r\nfoo\r\n\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
]


def piece(rnd):
    k = rnd.random()
    if k < 0.35:
        return mb(*rnd.choice(GOOD))
    if k < 0.55:
        return rnd.choice(INLINE)
    if k < 0.85:
        return rnd.choice(HOSTILE)
    if k < 0.90:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 12)))
    if k < 0.93:
        # An inline request, or a count line, over PROTO_INLINE_MAX_SIZE (64 KB)
        # that never ends (the case's last piece): Redis judges the length
        # only at the end of a read, and its reads grow with its query
        # buffer (sdsMakeRoomFor doubles it), so a long line that does end
        # is refused or served by where the reads happened to stop.
        return rnd.choice([b"a", b"*1", b"$", b"*1\r\n$"]) + b"1" * (100 * 1024)
    if k < 0.96:
        # A well-formed command with one byte of it changed.
        b = bytearray(mb(*rnd.choice(GOOD)))
        b[rnd.randrange(len(b))] = rnd.choice(b"*$\r\n-0123456789 \x00x")
        return bytes(b)
    return mb("QUIT") + bytes(rnd.randrange(256) for _ in range(5))


def case(rnd):
    out = []
    for _ in range(rnd.randrange(1, 8)):
        out.append(piece(rnd))
        if len(out[-1]) > 64 * 1024:
            break
    return b"".join(out)


def drain(sock, quiet):
    """Every byte until the peer closes (True) or is quiet for `quiet` s (False)."""
    out = b""
    sock.settimeout(quiet)
    while True:
        try:
            d = sock.recv(1 << 16)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not d:
            return out, True
        out += d


def run_case(ports, data, rnd, quiet):
    socks = [socket.create_connection(("127.0.0.1", p)) for p in ports]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, rnd.randrange(0, 4)))) if len(data) > 1 else []
    bounds = [0] + cuts + [len(data)]
    sent_ok = [True, True]
    for a, b in zip(bounds, bounds[1:]):
        for i, s in enumerate(socks):
            if sent_ok[i]:
                try:
                    s.sendall(data[a:b])
                except OSError:
                    sent_ok[i] = False
        time.sleep(0.02)
    res = [drain(s, quiet) for s in socks]
    for s in socks:
        s.close()
    return res


def alive(port):
    try:
        c = Conn(port, timeout=5)
        r = c.call(["PING"])[0]
        c.close()
        return r == b"+PONG\r\n"
    except (OSError, Closed):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, 7182, 7282)
    ap.add_argument("--count", type=int, default=300, help="connections per seed")
    ap.add_argument("--quiet", type=float, default=0.25, help="seconds of silence that end a case")
    ap.add_argument("--max-hwm-mb", type=int, default=400)
    opts = ap.parse_args()
    seeds = seeds_of(opts)
    workdir, procs = start_pair(opts, "protofuzz.")
    ports = [opts.ringkv_port, opts.redis_port]
    found = []
    t0 = time.time()
    try:
        for seed in seeds:
            rnd = random.Random(seed)
            for i in range(opts.count):
                data = case(rnd)
                crnd = random.Random(rnd.random())
                for port in ports:
                    c = Conn(port)
                    c.call(["FLUSHALL"])
                    c.close()
                (ra, ca), (rb, cb) = run_case(ports, data, crnd, opts.quiet)
                if ra != rb or ca != cb:
                    # Timing can end a case early: a second try with more patience decides.
                    for port in ports:
                        c = Conn(port)
                        c.call(["FLUSHALL"])
                        c.close()
                    (ra, ca), (rb, cb) = run_case(ports, data, random.Random(0), 1.5)
                if ra != rb or ca != cb:
                    line = "DIFF seed %d #%d sent=%s\n  ringkv(closed=%s)=%s\n  redis (closed=%s)=%s" % (
                        seed, i, show(data, 400), ca, show(ra, 600), cb, show(rb, 600))
                    print(line, flush=True)
                    found.append(line)
                if not alive(opts.ringkv_port):
                    print("ringkv DOWN after seed %d #%d sent=%s" % (seed, i, show(data, 2000)), flush=True)
                    found.append("down")
                    raise SystemExit(2)
                h = hwm_kb(procs[0].proc.pid) or 0
                if h > opts.max_hwm_mb * 1024:
                    print("ringkv VmHWM %d kB after seed %d #%d sent=%s" % (h, seed, i, show(data, 400)), flush=True)
                    found.append("hwm")
                    raise SystemExit(1)
                if found and opts.stop_on_first:
                    raise SystemExit(1)
            print("seed %d done (%.0fs), %d finds" % (seed, time.time() - t0, len(found)), flush=True)
    finally:
        print("ringkv VmHWM %s kB" % hwm_kb(procs[0].proc.pid), flush=True)
        stop_pair(procs, found, workdir)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
