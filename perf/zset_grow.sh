#!/usr/bin/env bash
# perf/zset_grow.sh: the slowest single command while one sorted set (TYPE=zset,
# the default), set (TYPE=set) or hash (TYPE=hash) grows to N members by
# one-member ZADDs / SADDs / HSETs (redis-cli --pipe), ringkv (--shards 1) vs
# redis-server, from each server's own SLOWLOG (execution time of the command
# alone: no queueing behind the pipe, no scheduler delay of a client; the
# PING-loop maxima of perf/lazyfree.sh were dominated by the machine's noise).
# SLOWLOG keeps commands slower than SLOWER_US, the slowest RECORD of them
# are reported: max, the count over 1 ms and over 5 ms, and the pipe's wall time.
# Alternated rounds: for each round, each server in SERVERS. A server entry
# "ringkv=PATH" runs another ringkv binary (e.g. the one before a change).
# Env: N (1000000), TYPE (zset), ROUNDS (1), SLOWER_US (500), SERVERS ("redis ringkv"), PORT.
source "$(dirname "$0")/lib.sh"
need_python
N="${N:-1000000}"
ROUNDS="${ROUNDS:-1}"
SLOWER_US="${SLOWER_US:-500}"
SERVERS="${SERVERS:-redis ringkv}"
TYPE="${TYPE:-zset}"
DATA="$OUT_DIR/zset_grow.$$"
trap 'rm -f "$DATA".*; cleanup' EXIT
run python3 - "$N" "$DATA.grow" "$PERF_DIR" "$TYPE" <<'PY'
import sys, random
n, path, kind = int(sys.argv[1]), sys.argv[2], sys.argv[4]
sys.path.insert(0, sys.argv[3])
from mixed_dataset import cmd
rng = random.Random(7)
with open(path, "wb") as f:
    for i in range(n):
        if kind == "set":
            cmd(f, [b"SADD", b"grow", b"member:%d" % i])
        elif kind == "hash":
            cmd(f, [b"HSET", b"grow", b"field:%d" % i, b"value:%d" % i])
        else:
            cmd(f, [b"ZADD", b"grow", repr(rng.random() * 1e6).encode(), b"member:%d" % i])
PY
printf 'type,round,server,pipe_s,slowlog_max_us,over_1ms,over_5ms,slowest_5_us\n'
for round in $(seq 1 "$ROUNDS"); do
    for entry in $SERVERS; do
        server="${entry%%=*}"
        bin="${entry#*=}"
        [ "$bin" = "$entry" ] && bin=""
        port="${PORT:-$(free_port)}"
        if [ -n "$bin" ]; then
            RINGKV_BIN="$bin" start_named "$server" "$port" 1 "$OUT_DIR/zset_grow.$server.log"
        else
            start_named "$server" "$port" 1 "$OUT_DIR/zset_grow.$server.log"
        fi
        redis-cli -p "$port" config set slowlog-log-slower-than "$SLOWER_US" >/dev/null
        redis-cli -p "$port" config set slowlog-max-len 100000 >/dev/null
        redis-cli -p "$port" slowlog reset >/dev/null
        t0=$(date +%s.%N)
        run redis-cli -p "$port" --pipe <"$DATA.grow" >/dev/null
        t1=$(date +%s.%N)
        # SLOWLOG GET: per entry id, timestamp, duration (us), args...
        durations=$(redis-cli -p "$port" slowlog get 100000 | python3 -c '
import sys
lines = [l.strip() for l in sys.stdin]
# redis-cli prints each entry as: id, timestamp, duration, then the args, then client addr and name.
d = []
i = 0
while i + 2 < len(lines):
    if lines[i].isdigit() and lines[i + 1].isdigit() and lines[i + 2].isdigit() and i + 3 < len(lines) and lines[i + 3].upper() in ("ZADD", "SADD", "HSET", "SLOWLOG", "CONFIG", "PING"):
        if lines[i + 3].upper() in ("ZADD", "SADD", "HSET"):
            d.append(int(lines[i + 2]))
        i += 4
    else:
        i += 1
d.sort(reverse=True)
over1 = sum(1 for x in d if x > 1000)
over5 = sum(1 for x in d if x > 5000)
print(d[0] if d else 0, over1, over5, "/".join(map(str, d[:5])) or "-")
')
        read -r mx o1 o5 top <<<"$durations"
        printf '%s,%s,%s,%.1f,%s,%s,%s,%s\n' "$TYPE" "$round" "$entry" "$(python3 -c "print($t1 - $t0)")" "$mx" "$o1" "$o5" "$top"
        stop_pid "$SERVER_PID"
    done
done
