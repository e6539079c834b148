#!/usr/bin/env bash
# One connection streaming pipelined commands without waiting for replies
# (`redis-cli --pipe` mass insertion, a bulk loader, a client library's big
# pipeline) over random keys: ringkv --shards 1/2/3 against redis-server.
#
#   ROUNDS=3 perf/stream.sh
#   BINS="before=/tmp/ringkv-dc40b20 after=target/release/ringkv" SHARDS="2 3" perf/stream.sh
#   COMMANDS=200000 ROUNDS=1 perf/stream.sh                     # a quick sanity run
#
# Two RESP files are generated once (in a temporary folder removed on exit):
# `set`: COMMANDS SETs of `key:<n>` (n random in KEYSPACE) to a 3-byte value;
# `mix`: the same count of SET / GET / INCR / LPUSH in turn (random keys,
# each command kind on its own key prefix, so none gets -WRONGTYPE). Each is
# piped through one `redis-cli --pipe` connection (bounded by TIMEOUT_S) into
# a fresh server; printed per round, server and file: replies/s (replies
# counted by redis-cli, wall time of the whole pipe, its last reply
# included), server CPU per request (utime+stime, /proc/PID/stat) and errors.
# Then the medians over rounds. Servers: `redis` and, for each build of BINS
# (NAME=BINARY) and each count of SHARDS, `NAME-sN`; alternated per round.
# The server on SERVER_CORES (default 0: the shard threads share it, as
# perf/pipeline_order.sh), redis-cli on CLIENT_CORES (default 1).
source "$(dirname "$0")/lib.sh"

SERVER_CORES="${SERVER_CORES:-0}"
CLIENT_CORES="${CLIENT_CORES:-1}"
COMMANDS="${COMMANDS:-1000000}"
KEYSPACE="${KEYSPACE:-100000}"
ROUNDS="${ROUNDS:-3}"
TIMEOUT_S="${TIMEOUT_S:-120}"
BINS="${BINS:-ringkv=$RINGKV_BIN}"
SHARDS="${SHARDS:-1 2 3}"
FILES="${FILES:-set mix}"
REDIS="${REDIS:-yes}"

TS="$(timestamp)"
RAW="$OUT_DIR/stream-$TS.csv"
echo "round,server,file,replies,seconds,replies_per_s,cpu_us_per_req,errors" >"$RAW"

DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/stream-XXXXXX")"
trap 'cleanup; rm -rf "$DATA_DIR"' EXIT

gen() { # KIND FILE
    python3 - "$1" "$COMMANDS" "$KEYSPACE" >"$2" <<'EOF'
import random, sys
kind, n, space = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(21)
def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
w = sys.stdout.buffer
chunk = []
for i in range(n):
    r = b"%d" % random.randrange(space)
    if kind == "set":
        chunk.append(cmd(b"SET", b"key:" + r, b"xyz"))
    else:
        k = i % 4
        if k == 0:
            chunk.append(cmd(b"SET", b"key:" + r, b"xyz"))
        elif k == 1:
            chunk.append(cmd(b"GET", b"key:" + r))
        elif k == 2:
            chunk.append(cmd(b"INCR", b"counter:" + r))
        else:
            chunk.append(cmd(b"LPUSH", b"list:" + r, b"xyz"))
    if len(chunk) == 10000:
        w.write(b"".join(chunk))
        chunk = []
w.write(b"".join(chunk))
EOF
}

for f in $FILES; do
    log "generating $f: $COMMANDS commands over $KEYSPACE keys"
    gen "$f" "$DATA_DIR/$f.resp"
done

one() { # ROUND NAME FILE (server started: SERVER_PID, PORT)
    local round="$1" name="$2" file="$3" c0 c1 t0 t1 out replies errors secs
    c0="$(cpu_usec "$SERVER_PID")"
    t0="$(date +%s.%N)"
    out="$(run timeout "$TIMEOUT_S" taskset -c "$CLIENT_CORES" redis-cli -p "$PORT" --pipe <"$DATA_DIR/$file.resp" 2>&1 || true)"
    t1="$(date +%s.%N)"
    c1="$(cpu_usec "$SERVER_PID")"
    replies="$(echo "$out" | sed -n 's/.*replies: \([0-9]*\).*/\1/p' | tail -1)"
    errors="$(echo "$out" | sed -n 's/.*errors: \([0-9]*\),.*/\1/p' | tail -1)"
    [ -n "$replies" ] || { replies=0; errors=timeout; }
    secs="$(echo "$t0 $t1" | awk '{ printf "%.3f", $2 - $1 }')"
    printf '%s,%s,%s,%s,%s,%.0f,%.3f,%s\n' "$round" "$name" "$file" "$replies" "$secs" \
        "$(echo "$replies $secs" | awk '{ print $1 / $2 }')" \
        "$(echo "$c0 $c1 $COMMANDS" | awk '{ print ($2 - $1) / $3 }')" "$errors" | tee -a "$RAW"
}

one_server() { # ROUND NAME (redis | BIN SHARDS)
    local round="$1" name="$2" f log
    log="$OUT_DIR/stream-$TS-$name.log"
    for f in $FILES; do
        # A fresh server per file: the second file does not find the first's keys.
        if [ "$name" = redis ]; then
            PORT="$(PORT_MIN="${REDIS_PORT_MIN:-${PORT_MIN:-20000}}" PORT_MAX="${REDIS_PORT_MAX:-${PORT_MAX:-32767}}" free_port)"
            start_redis "$PORT" "$log"
        else
            PORT="$(free_port)"
            RINGKV_BIN="$3" start_ringkv "$PORT" "$4" "$log"
        fi
        one "$round" "$name" "$f"
        stop_pid "$SERVER_PID"
    done
}

log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r -a builds <<<"$BINS"
servers=()
[ "$REDIS" = yes ] && servers+=("redis")
for b in "${builds[@]}"; do
    for s in $SHARDS; do servers+=("${b%%=*}-s$s=${b#*=}=$s"); done
done
for round in $(seq 1 "$ROUNDS"); do
    order=("${servers[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
    fi
    for s in "${order[@]}"; do
        if [ "$s" = redis ]; then
            one_server "$round" redis
        else
            IFS== read -r name bin shards <<<"$s"
            one_server "$round" "$name" "$bin" "$shards"
        fi
    done
done
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "median over $ROUNDS round(s): server,file,replies_per_s,cpu_us_per_req"
tail -n +2 "$RAW" | awk -F, '
    { key = $2 "," $3; n[key]++; rps[key, n[key]] = $6; cpu[key, n[key]] = $7 }
    function median(arr, key, m,   i, j, t, v) {
        for (i = 1; i <= m; i++) v[i] = arr[key, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    END { for (k in n) printf "%s,%.0f,%.3f\n", k, median(rps, k, n[k]), median(cpu, k, n[k]) }' | sort
echo "raw: $RAW"
