#!/usr/bin/env python3
"""Load generator for perf/frames.sh (stdlib only): requests that arrive in
many small pieces, the case where a parser that restarts at the frame's first
byte on every receive turns linear work quadratic.

  frames_load.py mset PORT SERVER_PID
      One connection sends MSET_ROUNDS times an MSET of about MSET_BYTES
      (default 4 MiB) in CHUNK-byte writes (1460, one Ethernet MSS, TCP_NODELAY)
      and reads the +OK. Prints the server's CPU time (utime + stime from
      /proc/PID/stat) and the wall time per MSET.

  frames_load.py stream PORT SERVER_PID
      CONNS connections (200) each send one ECHO whose ~STREAM_BYTES (1 MiB)
      are one-byte arguments (ECHO takes one, so both servers answer with the
      arity error without looking at the arguments: what is measured is
      reading and parsing), round-robin in CHUNK-byte writes, while another
      connection sends PING every 5 ms and records the round trips. Prints the
      server's CPU time, the wall time, and the PING latencies (max, p99).
"""

import os
import socket
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
CHUNK = int(os.environ.get("CHUNK", "1460"))


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # After the comm: field 1 is the state; utime and stime are fields 12 and 13.
    return (int(rest[11]) + int(rest[12])) * 1000.0 / CLK_TCK


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_line(s, buf):
    while b"\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    line, _, rest = buf.partition(b"\r\n")
    return line, rest


def mset(port, pid):
    total = int(os.environ.get("MSET_BYTES", str(4 * 1024 * 1024)))
    rounds = int(os.environ.get("MSET_ROUNDS", "3"))
    args = [b"MSET"]
    size = 0
    i = 0
    while size < total:
        k, v = b"key:%08d" % i, b"value-%010d" % i
        args += [k, v]
        size += len(k) + len(v) + 16
        i += 1
    req = encode(args)
    s = connect(port)
    for r in range(rounds):
        c0, t0 = cpu_ms(pid), time.monotonic()
        for off in range(0, len(req), CHUNK):
            s.sendall(req[off : off + CHUNK])
        line, _ = read_line(s, b"")
        assert line == b"+OK", line
        c1, t1 = cpu_ms(pid), time.monotonic()
        print(f"mset round={r} bytes={len(req)} pairs={i} writes={-(-len(req) // CHUNK)} server_cpu_ms={c1 - c0:.0f} wall_ms={(t1 - t0) * 1000:.0f}")
    s.close()


def stream(port, pid):
    conns = int(os.environ.get("CONNS", "200"))
    per_conn = int(os.environ.get("STREAM_BYTES", str(1024 * 1024)))
    argc = per_conn // 7  # "$1\r\na\r\n" is 7 bytes
    req = b"*%d\r\n$4\r\nECHO\r\n" % (argc + 1) + b"$1\r\na\r\n" * argc
    socks = [connect(port) for _ in range(conns)]
    stop = threading.Event()
    pings = []

    def probe():
        p = connect(port)
        while not stop.is_set():
            t = time.monotonic()
            p.sendall(b"PING\r\n")
            line, _ = read_line(p, b"")
            assert line == b"+PONG", line
            pings.append(time.monotonic() - t)
            time.sleep(0.005)
        p.close()

    th = threading.Thread(target=probe)
    c0, t0 = cpu_ms(pid), time.monotonic()
    th.start()
    for off in range(0, len(req), CHUNK):
        piece = req[off : off + CHUNK]
        for s in socks:
            s.sendall(piece)
    sent = time.monotonic()
    for s in socks:
        line, _ = read_line(s, b"")
        assert line == b"-ERR wrong number of arguments for 'echo' command", line
    t1 = time.monotonic()
    stop.set()
    th.join()
    c1 = cpu_ms(pid)
    pings.sort()
    p99 = pings[min(len(pings) - 1, int(len(pings) * 0.99))] if pings else float("nan")
    print(
        f"stream conns={conns} bytes_per_conn={len(req)} args_per_conn={argc + 1} server_cpu_ms={c1 - c0:.0f} "
        f"wall_ms={(t1 - t0) * 1000:.0f} send_ms={(sent - t0) * 1000:.0f} pings={len(pings)} "
        f"ping_max_ms={pings[-1] * 1000 if pings else float('nan'):.1f} ping_p99_ms={p99 * 1000:.1f}"
    )
    for s in socks:
        s.close()


if __name__ == "__main__":
    mode, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    {"mset": mset, "stream": stream}[mode](port, pid)
