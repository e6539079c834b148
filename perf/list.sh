#!/usr/bin/env bash
# perf/list.sh: lists, ringkv (--shards 1) against redis-server, each pinned
# to one core, side by side in one run.
#
# 1. Memory: used_memory (allocator bytes) and RSS growth while RPUSH builds one list of N (default 1M)
#    `member:<n>` elements (1000 per command, redis-cli --pipe), at
#    list-compress-depth 0 and 1 (list-max-listpack-size -2).
# 2. Throughput: redis-benchmark -t lpush,lrange at -c 50 -P 16 (LPUSH,
#    LRANGE_100/300/500/600 on redis-benchmark's own list), requests/s.
#
# Usage: perf/list.sh [N]   (REQUESTS=... for the benchmark, default 1000000)
source "$(dirname "$0")/lib.sh"
N="${1:-1000000}"
REQUESTS="${REQUESTS:-1000000}"
ensure_ringkv
trap cleanup EXIT

payload="$OUT_DIR/list_rpush_$N.resp"
python3 - "$N" "$payload" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "wb") as f:
    for start in range(0, n, 1000):
        items = [b"member:%d" % i for i in range(start, min(n, start + 1000))]
        parts = [b"RPUSH", b"biglist"] + items
        f.write(b"*%d\r\n" % len(parts))
        for p in parts:
            f.write(b"$%d\r\n%s\r\n" % (len(p), p))
PY

used_memory() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

for depth in 0 1; do
    for server in ringkv redis; do
        port="$(free_port)"
        start_named "$server" "$port" 1 "$OUT_DIR/list_$server.log" --list-compress-depth "$depth"
        sleep 0.5
        before="$(rss_kib "$SERVER_PID")"
        used_before="$(used_memory "$port")"
        run redis-cli -p "$port" --pipe <"$payload" >/dev/null
        sleep 0.5
        after="$(rss_kib "$SERVER_PID")"
        used_after="$(used_memory "$port")"
        llen="$(redis-cli -p "$port" llen biglist)"
        printf 'memory depth=%s %-7s LLEN %s: used_memory +%.2f B/element, RSS +%.2f B/element\n' "$depth" "$server" "$llen" \
            "$(echo "($used_after - $used_before) / $N" | bc -l)" "$(echo "($after - $before) * 1024 / $N" | bc -l)"
        stop_pid "$SERVER_PID"
    done
done

for server in ringkv redis; do
    port="$(free_port)"
    start_named "$server" "$port" 1 "$OUT_DIR/list_$server.log"
    run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" -t lpush,lrange -n "$REQUESTS" -c 50 -P 16 -q |
        tr '\r' '\n' | grep -E 'requests per second' | sed "s/^/$server: /"
    stop_pid "$SERVER_PID"
done
