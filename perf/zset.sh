#!/usr/bin/env bash
# Sorted sets, ringkv --shards 1 vs redis-server, each pinned to core 0, the
# load generator on core 1:
#   - throughput: redis-benchmark ZADD (random members of one key, which
#     becomes a skiplist/tree), ZRANGE of 10 and 100 elements with scores,
#     ZRANGEBYSCORE LIMIT 10, ZSCORE, ZPOPMIN, at -P 16 -c 50;
#   - memory: RSS growth while loading one zset of 1M members (random
#     scores) and 100k zsets of 10 members (listpacks), by pipelined ZADD.
#   ROUNDS=3 REQUESTS=1000000 perf/zset.sh
set -euo pipefail
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-1000000}"
RINGKV_BIN="${RINGKV_BIN:-target/release/ringkv}"
PORT_R=$((21000 + RANDOM % 4000)); PORT_K=$((PORT_R + 1))
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
start() { # name port -> pid
    if [ "$1" = redis ]; then
        taskset -c 0 redis-server --port "$2" --save '' --appendonly no >/dev/null 2>&1 &
    else
        taskset -c 0 "$RINGKV_BIN" --port "$2" --shards 1 --save '' >/dev/null 2>&1 &
    fi
    echo $!
}
wait_up() { for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done; }
bench() { # port -> "test rps" lines
    local p=$1
    redis-cli -p "$p" flushall >/dev/null
    taskset -c 1 redis-benchmark -p "$p" -c 50 -P 16 -n "$REQUESTS" -r 1000000 -q --csv -t zadd,zpopmin | sed 1d
    # A 10k-member zset for the read tests.
    redis-cli -p "$p" del myzset >/dev/null
    taskset -c 1 redis-benchmark -p "$p" -c 50 -P 16 -n 200000 -r 10000 -q --csv zadd myzset __rand_int__ m:__rand_int__ >/dev/null
    for cmd in "zrange myzset 0 9 withscores" "zrange myzset 0 99 withscores" "zrangebyscore myzset 5000 +inf limit 0 10" "zscore myzset m:000000001234"; do
        taskset -c 1 redis-benchmark -p "$p" -c 50 -P 16 -n "$REQUESTS" -q --csv $cmd | sed 1d
    done
}
# Loads one zset of 1M members with random scores ("big") or 100k zsets of
# ten members ("small") by pipelined ZADD.
load() { # port big|small
    python3 - "$1" "$2" <<'PY'
import random, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def cmd(*a):
    out = b"*%d\r\n" % len(a)
    for x in a:
        x = x.encode()
        out += b"$%d\r\n%s\r\n" % (len(x), x)
    return out
def commands():
    rnd = random.Random(7)
    if sys.argv[2] == "big":
        for i in range(1_000_000):
            yield cmd("ZADD", "big", repr(rnd.random() * 1e6), "member:%d" % i)
    else:
        for k in range(100_000):
            args = ["ZADD", "small:%d" % k]
            for j in range(10):
                args += [str(j * 1.5), "m%d" % j]
            yield cmd(*args)
batch = []
for c in commands():
    batch.append(c)
    if len(batch) == 1000:
        s.sendall(b"".join(batch)); batch = []
        got = b""
        while got.count(b"\r\n") < 1000:
            got += s.recv(1 << 20)
PY
}
load_memory() { # port pid -> "one_big_kb small_kb"
    local p=$1 pid=$2 before after mid
    redis-cli -p "$p" flushall >/dev/null; sleep 0.5
    before=$(rss_kb "$pid")
    load "$p" big
    mid=$(rss_kb "$pid")
    load "$p" small
    after=$(rss_kb "$pid")
    echo "$((mid - before)) $((after - mid))"
}
for round in $(seq "$ROUNDS"); do
    for name in redis ringkv; do
        port=$([ $name = redis ] && echo $PORT_R || echo $PORT_K)
        pid=$(start $name "$port"); wait_up "$port"
        bench "$port" | sed "s/^/$name,round$round,/"
        if [ "$round" = 1 ]; then echo "$name,memory_kb,$(load_memory "$port" "$pid")"; fi
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
