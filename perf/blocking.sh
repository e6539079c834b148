#!/usr/bin/env bash
# Blocking pops: wake-up latency from a push to the blocked client's reply.
# One waiter connection blocks in BLPOP on a key, a second connection pushes
# one element to it; the time from just before the RPUSH is sent to the
# waiter's reply arriving is one sample (the RPUSH's own reply is read
# after). Keys alternate between one per shard, so with ringkv --shards 2
# the key's owner, the waiter's shard and the pusher's shard differ in most
# rounds (a connection's shard is the kernel's SO_REUSEPORT choice: the
# script reports how the rounds spread over the keys, not over connections).
# ringkv --shards 2 (cores SERVER_CORES, default 0-1) beside redis-server
# (core 0), the client on the remaining core(s); p50/p90/p99/max in
# microseconds, and server CPU per round (BLPOP + RPUSH + wake-up;
# /proc/PID/stat).
#   ROUNDS=5000 perf/blocking.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${ROUNDS:-5000}"
SHARDS="${SHARDS:-2}"
need_python
ensure_ringkv

measure() { # PORT -> one line of figures
    python3 - "$1" "$ROUNDS" "$SHARDS" <<'PY'
import socket, sys, time
port, rounds, shards = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def conn():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
def cmd(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x if isinstance(x, bytes) else x.encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out
def read_reply(s, buf):
    # Enough RESP for these replies: one line, or an array of two bulks.
    while True:
        if buf.startswith(b"*2\r\n"):
            parts = buf.split(b"\r\n")
            if len(parts) >= 6:
                n = len(b"\r\n".join(parts[:5])) + 2
                return buf[:n], buf[n:]
        elif b"\r\n" in buf and not buf.startswith(b"$") and not buf.startswith(b"*"):
            i = buf.index(b"\r\n") + 2
            return buf[:i], buf[i:]
        elif buf.startswith(b"$") and buf.count(b"\r\n") >= 2:
            i = buf.index(b"\r\n", buf.index(b"\r\n") + 2) + 2
            return buf[:i], buf[i:]
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed")
        buf += d
def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc
def shard(key):
    slot = crc16(key) & 16383
    return next(i for i in range(shards) if slot < ((i + 1) * 16384 + shards - 1) // shards)
keys = []
i = 0
while len(keys) < shards:
    k = b"wake:%d" % i
    if shard(k) == len(keys):
        keys.append(k)
    i += 1
waiter, pusher = conn(), conn()
wb = pb = b""
samples = []
for r in range(rounds):
    key = keys[r % len(keys)]
    waiter.sendall(cmd("BLPOP", key, "0"))
    # Time to block (an INFO poll would hold every ringkv shard and skew
    # the CPU figure; a push that came first is served at once anyway).
    time.sleep(0.002)
    t0 = time.perf_counter_ns()
    pusher.sendall(cmd("RPUSH", key, "x"))
    reply, wb = read_reply(waiter, wb)
    t1 = time.perf_counter_ns()
    _, pb = read_reply(pusher, pb)
    assert reply.endswith(b"$1\r\nx\r\n"), reply
    samples.append((t1 - t0) / 1000)
samples.sort()
q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
print("p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f rounds=%d keys=%s" % (q(0.5), q(0.9), q(0.99), samples[-1], len(samples), b",".join(keys).decode()))
PY
}

declare -A P99
for server in redis ringkv; do
    port=$(free_port)
    if [ "$server" = ringkv ]; then
        RINGKV_CORES="${RINGKV_CORES:-0-$((SHARDS - 1))}" start_named ringkv "$port" "$SHARDS" "$OUT_DIR/blocking-ringkv.log"
    else
        start_named redis "$port" 1 "$OUT_DIR/blocking-redis.log"
    fi
    pid=$SERVER_PID
    cpu0=$(cpu_usec "$pid")
    line=$(taskset -c "$CLIENT_CORES" bash -c "$(declare -f measure); ROUNDS=$ROUNDS SHARDS=$SHARDS measure $port")
    cpu1=$(cpu_usec "$pid")
    label=$server; [ "$server" = ringkv ] && label="ringkv --shards $SHARDS"
    echo "$label: $line server_cpu_us_per_round=$(( (cpu1 - cpu0) / ROUNDS ))"
    P99[$server]=$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$line")
    stop_pid "$pid"
done
python3 -c "import sys; r,k=float(sys.argv[1]),float(sys.argv[2]); print('p99 ratio ringkv/redis: %.2f' % (k / r if r else float('nan')))" "${P99[redis]}" "${P99[ringkv]}"
