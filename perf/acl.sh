#!/usr/bin/env bash
# The ACL check's cost on the command path: server CPU per request of SET and
# GET at -P PIPELINE, as the default user (ringkv: no check, one relaxed load
# and a branch) and as a restricted user (`+@all -flushall ~key:*`: the
# command bit, the key positions and a glob per key are checked), ringkv
# --shards 1 beside redis-server (which checks every command of every user).
#
#   perf/acl.sh                          # 2 rounds, -P 16
#   ROUNDS=4 PIPELINE=1 REQUESTS=200000 perf/acl.sh
#   BASELINE_BIN=/tmp/ringkv-1303edf perf/acl.sh   # + a pre-ACL build, default user
#
# Rounds alternate the servers (A B A B ..., order flipped every round); each
# server is pinned to SERVER_CORES (core 0), redis-benchmark to CLIENT_CORES.
# CPU is utime+stime of the server (all threads, /proc/PID/stat) around each
# redis-benchmark run, divided by the requests. Ratios: restricted/default
# per server, and ringkv/redis per user.
#
# Environment: ROUNDS=2 REQUESTS=1000000 PIPELINE=16 CLIENTS=50 KEYSPACE=100000
#   PORT_MIN/PORT_MAX (ports tried), RINGKV_BIN, REDIS_SERVER_BIN, BASELINE_BIN.

source "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-2}"
REQUESTS="${REQUESTS:-1000000}"
PIPELINE="${PIPELINE:-16}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-100000}"
CSV="$OUT_DIR/acl-$(timestamp).csv"
echo "round,server,user,test,requests,cpu_usec" >"$CSV"

servers=(ringkv redis)
[ -n "${BASELINE_BIN:-}" ] && servers+=(base)

measure() { # SERVER USER PORT ROUND
    local server="$1" user="$2" port="$3" round="$4" t before after auth=()
    [ "$user" = restricted ] && auth=(--user bench -a benchpass)
    for t in set get; do
        before=$(cpu_usec "$SERVER_PID")
        run taskset -c "$CLIENT_CORES" redis-benchmark -p "$port" "${auth[@]}" -n "$REQUESTS" -P "$PIPELINE" \
            -c "$CLIENTS" -r "$KEYSPACE" -t "$t" -q >/dev/null 2>&1
        after=$(cpu_usec "$SERVER_PID")
        echo "$round,$server,$user,$t,$REQUESTS,$((after - before))" >>"$CSV"
    done
}

for round in $(seq 1 "$ROUNDS"); do
    order=("${servers[@]}")
    [ $((round % 2)) -eq 0 ] && order=($(printf '%s\n' "${servers[@]}" | tac))
    for server in "${order[@]}"; do
        port=$(free_port)
        log "round $round: $server on port $port"
        case "$server" in
        ringkv) start_ringkv "$port" 1 "$OUT_DIR/acl-ringkv.log" ;;
        base) RINGKV_BIN="$BASELINE_BIN" start_ringkv "$port" 1 "$OUT_DIR/acl-base.log" ;;
        redis) start_redis "$port" "$OUT_DIR/acl-redis.log" ;;
        esac
        measure "$server" default "$port" "$round"
        if [ "$server" != base ]; then
            redis-cli -p "$port" acl setuser bench on '>benchpass' +@all -flushall '~key:*' >/dev/null
            measure "$server" restricted "$port" "$round"
        fi
        stop_pid "$SERVER_PID"
    done
done

python3 - "$CSV" <<'PY'
import csv, sys, statistics
rows = list(csv.DictReader(open(sys.argv[1])))
med = {}
for key in {(r["server"], r["user"], r["test"]) for r in rows}:
    vals = [int(r["cpu_usec"]) / int(r["requests"]) for r in rows if (r["server"], r["user"], r["test"]) == key]
    med[key] = statistics.median(vals)
print(f"{'test':5} {'server':7} {'user':11} {'cpu us/req':>10}")
for key in sorted(med):
    print(f"{key[2]:5} {key[0]:7} {key[1]:11} {med[key]:10.3f}")
for t in ("set", "get"):
    for s in ("ringkv", "redis"):
        d, r = med.get((s, "default", t)), med.get((s, "restricted", t))
        if d and r:
            print(f"{t}: {s} restricted/default {r / d:.3f}")
    for u in ("default", "restricted"):
        a, b = med.get(("ringkv", u, t)), med.get(("redis", u, t))
        if a and b:
            print(f"{t}: {u} ringkv/redis {a / b:.3f}")
    a, b = med.get(("ringkv", "default", t)), med.get(("base", "default", t))
    if a and b:
        print(f"{t}: default ringkv/base (pre-ACL build) {a / b:.3f}")
print("raw:", sys.argv[1])
PY
