#!/usr/bin/env bash
# Scripting: EVALSHA of a one-key script (GET then SET of KEYS[1]) through
# redis-benchmark, ringkv --shards 1 and --shards SHARDS beside redis-server
# 7.0, all started at once, each server pinned on SERVER_CORES (ringkv
# --shards N on RINGKV_CORES), the client on CLIENT_CORES; alternated
# rounds (A B C, C B A, ...), pipelines 1 and 16.
#
#   perf/scripting.sh      # ROUNDS=3 REQUESTS=100000 CLIENTS=50 SHARDS=2
#   BASELINE_BIN=/path/to/old/ringkv perf/scripting.sh   # adds "base1": that
#                          # build with --shards 1, in the same rounds
#
# Prints one line per run (requests/s, server CPU per request split user /
# kernel from /proc/PID/stat) and, at the end, each server's median and the
# ratios to redis-server.
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}; REQUESTS=${REQUESTS:-100000}; CLIENTS=${CLIENTS:-50}; SHARDS=${SHARDS:-2}
RINGKV_CORES=${RINGKV_CORES:-$SERVER_CORES}
ensure_ringkv
TMP=$(mktemp -d); trap 'cleanup; rm -rf "$TMP"' EXIT
SCRIPT="local v = redis.call('get', KEYS[1]) redis.call('set', KEYS[1], ARGV[1]) return v"

declare -A PORT PID
port=$(free_port); start_redis "$port" "$TMP/redis.log" --dir "$TMP"; PORT[redis]=$port; PID[redis]=$SERVER_PID
port=$(free_port); RINGKV_CORES=$SERVER_CORES start_ringkv "$port" 1 "$TMP/ringkv1.log" --dir "$TMP"; PORT[ringkv1]=$port; PID[ringkv1]=$SERVER_PID
port=$(free_port); start_ringkv "$port" "$SHARDS" "$TMP/ringkvN.log" --dir "$TMP"; PORT[ringkvN]=$port; PID[ringkvN]=$SERVER_PID
SERVERS="ringkv1 ringkvN redis"
if [ -n "${BASELINE_BIN:-}" ]; then
    port=$(free_port); RINGKV_BIN="$BASELINE_BIN" RINGKV_CORES=$SERVER_CORES start_ringkv "$port" 1 "$TMP/base1.log" --dir "$TMP"; PORT[base1]=$port; PID[base1]=$SERVER_PID
    SERVERS="base1 ringkv1 ringkvN redis"
fi
for s in $SERVERS; do
    sha=$(run redis-cli -p "${PORT[$s]}" script load "$SCRIPT")
done

RESULTS="$TMP/results"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for s in $(round_order "$round"); do
        for pipeline in 1 16; do
            read -r u0 k0 < <(cpu_ticks "${PID[$s]}")
            rps=$(run taskset -c "$CLIENT_CORES" redis-benchmark -p "${PORT[$s]}" -c "$CLIENTS" -P "$pipeline" -n "$REQUESTS" -r 100000 -q \
                evalsha "$sha" 1 'key:__rand_int__' v | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
            read -r u1 k1 < <(cpu_ticks "${PID[$s]}")
            user=$(( (u1 - u0) * 1000000000 / CLK_TCK / REQUESTS ))
            kern=$(( (k1 - k0) * 1000000000 / CLK_TCK / REQUESTS ))
            echo "evalsha $s P=$pipeline round=$round requests_per_s=${rps%.*} server_cpu_ns_per_req=$((user + kern)) user=$user kernel=$kern"
            echo "$s $pipeline ${rps%.*} $((user + kern)) $user $kern" >>"$RESULTS"
        done
    done
done

# Medians per server and pipeline, then the ratios to redis-server.
python3 - "$RESULTS" <<'EOF'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for s in {r[0] for r in rows}:
    for p in {r[1] for r in rows}:
        sel = [r for r in rows if r[0] == s and r[1] == p]
        med[s, p] = [statistics.median(int(r[i]) for r in sel) for i in (2, 3, 4, 5)]
for (s, p), (rps, cpu, u, k) in sorted(med.items()):
    print(f"median {s} P={p} requests_per_s={rps:.0f} server_cpu_ns_per_req={cpu:.0f} user={u:.0f} kernel={k:.0f}")
for (s, p), (rps, cpu, u, k) in sorted(med.items()):
    if s == "redis":
        continue
    r = med["redis", p]
    print(f"ratio {s}/redis P={p} throughput={rps / r[0]:.2f} cpu_per_req={cpu / max(r[1], 1):.2f} user={u / max(r[2], 1):.2f} kernel={k / max(r[3], 1):.2f}")
EOF
