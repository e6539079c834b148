#!/usr/bin/env python3
"""Pub/sub fan-out load for perf/pubsub.sh: one publisher, N subscribers.

    pubsub_load.py PORT SERVER_PID [SUBSCRIBERS MESSAGES PIPELINE PAYLOAD READER_PROCS [MODE]]
    pubsub_load.py PORT SERVER_PID subscribe-latency [ROUNDS]

MODE `channel` (default): the subscribers SUBSCRIBE to the channel; `pattern`:
they PSUBSCRIBE to `ben*` instead (the messages are then `pmessage`s).
`subscribe-latency`: one connection times ROUNDS (SUBSCRIBE c, UNSUBSCRIBE c)
pairs and ROUNDS (PSUBSCRIBE p, PUNSUBSCRIBE p) pairs, each name new.

The subscribers (split over READER_PROCS processes, each multiplexing its
sockets with select) all SUBSCRIBE to one channel; once every confirmation is
in, one publisher sends MESSAGES `PUBLISH bench <PAYLOAD bytes>` in pipelined
batches of PIPELINE and checks every reply counts all subscribers. Readers do
not parse: each message has a known size, so they count bytes until they
have all of them. Prints one line of key=value: messages delivered, seconds
from the first PUBLISH to the last byte read by the last subscriber,
delivered/s, and the server's CPU (utime+stime from /proc/PID/stat, all
threads) over that window, per delivered message.
"""
import multiprocessing as mp
import os
import select
import socket
import sys
import time

CHANNEL = b"bench"
PATTERN = b"ben*"


def enc(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reader(port, count, expect_bytes, ready, done, pattern):
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(enc(b"PSUBSCRIBE", PATTERN) if pattern else enc(b"SUBSCRIBE", CHANNEL))
        socks.append(s)
    # The confirmation: *3 $9 subscribe $5 bench :1 -> read up to its last CRLF.
    for s in socks:
        buf = b""
        while buf.count(b"\r\n") < 6:
            buf += s.recv(4096)
        assert buf.startswith(b"*3\r\n$10\r\npsubscribe" if pattern else b"*3\r\n$9\r\nsubscribe"), buf
        assert buf.endswith(b"\r\n") and buf.count(b"\r\n") == 6, buf
    ready.put(count)
    left = {s.fileno(): expect_bytes for s in socks}
    by_fd = {s.fileno(): s for s in socks}
    while left:
        r, _, _ = select.select(list(left), [], [], 30)
        if not r:
            raise SystemExit(f"reader stalled with {sum(left.values())} bytes missing")
        for fd in r:
            n = len(by_fd[fd].recv(1 << 20))
            if n == 0:
                raise SystemExit("server closed a subscriber")
            left[fd] -= n
            if left[fd] <= 0:
                assert left[fd] == 0, "more bytes than expected"
                del left[fd]
    done.put(time.time())


def subscribe_latency(port, rounds):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for sub, unsub, name in ((b"SUBSCRIBE", b"UNSUBSCRIBE", b"c"), (b"PSUBSCRIBE", b"PUNSUBSCRIBE", b"p")):
        t0 = time.time()
        for i in range(rounds):
            n = name + b"%d" % i
            for cmd in (sub, unsub):
                s.sendall(enc(cmd, n))
                buf = b""
                while buf.count(b"\r\n") < 6:
                    buf += s.recv(4096)
        out.append(f"{sub.decode().lower()}_pair_usec={(time.time() - t0) * 1e6 / rounds:.1f}")
    print(" ".join(out))


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] == "subscribe-latency":
        return subscribe_latency(port, int(sys.argv[4]) if len(sys.argv) > 4 else 2000)
    subscribers = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    messages = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
    pipeline = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    payload = b"x" * (int(sys.argv[6]) if len(sys.argv) > 6 else 16)
    procs = int(sys.argv[7]) if len(sys.argv) > 7 else 4
    pattern = len(sys.argv) > 8 and sys.argv[8] == "pattern"
    one = len(enc(b"pmessage", PATTERN, CHANNEL, payload) if pattern else enc(b"message", CHANNEL, payload))
    ready, done = mp.Queue(), mp.Queue()
    shares = [subscribers // procs + (1 if i < subscribers % procs else 0) for i in range(procs)]
    workers = [mp.Process(target=reader, args=(port, n, one * messages, ready, done, pattern)) for n in shares if n]
    for w in workers:
        w.start()
    assert sum(ready.get(timeout=60) for _ in workers) == subscribers
    pub = socket.create_connection(("127.0.0.1", port))
    pub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reply = b":%d\r\n" % subscribers
    batch = enc(b"PUBLISH", CHANNEL, payload) * pipeline
    cpu0, t0 = cpu_seconds(pid), time.time()
    sent = 0
    while sent < messages:
        n = min(pipeline, messages - sent)
        pub.sendall(batch if n == pipeline else enc(b"PUBLISH", CHANNEL, payload) * n)
        want, got = len(reply) * n, b""
        while len(got) < want:
            got += pub.recv(want - len(got))
        assert got == reply * n, got[:64]
        sent += n
    t_end = max(done.get(timeout=120) for _ in workers)
    cpu1 = cpu_seconds(pid)
    for w in workers:
        w.join()
    delivered = messages * subscribers
    secs = t_end - t0
    cpu = cpu1 - cpu0
    print(
        f"mode={'pattern' if pattern else 'channel'} subscribers={subscribers} messages={messages} pipeline={pipeline} payload={len(payload)} "
        f"delivered={delivered} seconds={secs:.3f} delivered_per_s={delivered / secs:.0f} "
        f"server_cpu_s={cpu:.2f} server_cpu_ns_per_delivered={cpu * 1e9 / delivered:.0f} "
        f"server_cores_busy={cpu / secs:.2f}"
    )


if __name__ == "__main__":
    main()
