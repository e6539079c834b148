#!/usr/bin/env bash
# Throughput of ringkv as shards are added, one core per shard.
#
#   perf/scaling.sh                     # shards 1..nproc-1
#   REQUESTS=50000 perf/scaling.sh      # a quick smoke run
#
# For s = 1..N (N = nproc - 1, at least 1): ringkv runs with `--shards s
# --cpu-affinity yes` under `taskset -c 0-(s-1)` (each shard thread pinned to
# its own core), and redis-benchmark runs on the remaining cores with one
# benchmark thread per core (`--threads`), at -P 16, SET then GET.
# For each point it prints ops/s, ops/s per shard, server CPU µs per op and the
# efficiency against one shard.
#
# How to read it: with perfect scaling ops/s grows linearly with s and CPU
# µs/op stays flat. CPU µs/op rising with s is the price of cross-shard work
# (a connection's keys live on other shards: mailbox hops and doorbells). Flat
# ops/s with idle server CPU means the client cores are the bottleneck: the
# load generator needs as many cores as the server, so on a machine with few
# cores the last points under-load the server. On a 2-core machine there is
# exactly one point (1 shard on core 0, the client on core 1): it shows the
# per-shard rate, not scaling.
#
# Environment: REQUESTS=2000000 (per run), CLIENTS=50, KEYSPACE=1000000,
#   VALUE_BYTES=32, PIPELINE=16, MAX_SHARDS=nproc-1.

source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-2000000}"
CLIENTS="${CLIENTS:-50}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
PIPELINE="${PIPELINE:-16}"
MAX_SHARDS="${MAX_SHARDS:-$((NCPU - 1))}"
[ "$MAX_SHARDS" -ge 1 ] || MAX_SHARDS=1
[ "$MAX_SHARDS" -lt "$NCPU" ] || [ "$NCPU" = 1 ] || die "MAX_SHARDS must leave a core for the client"

ensure_ringkv
TS="$(timestamp)"
RAW="$OUT_DIR/scaling-$TS.csv"
echo "shards,test,requests,rps,cpu_us_per_op" >"$RAW"
if [ "$MAX_SHARDS" = 1 ]; then
    echo "note: $NCPU CPU(s): only one point (1 shard); this shows the per-shard rate, not scaling."
fi

for s in $(seq 1 "$MAX_SHARDS"); do
    server_cores="0-$((s - 1))"
    if [ "$NCPU" -gt "$s" ]; then
        client_cores="$s-$((NCPU - 1))"
        client_threads=$((NCPU - s))
    else
        client_cores=0
        client_threads=1
    fi
    PORT="$(free_port)"
    RINGKV_CORES="$server_cores" start_ringkv "$PORT" "$s" "$OUT_DIR/scaling-$TS-$s.log" --cpu-affinity yes
    PID="$SERVER_PID"
    for test in set get; do
        before="$(cpu_usec "$PID")"
        out="$(run taskset -c "$client_cores" redis-benchmark -h 127.0.0.1 -p "$PORT" -t "$test" \
            -n "$REQUESTS" -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$PIPELINE" \
            --threads "$client_threads" --csv 2>&1)"
        after="$(cpu_usec "$PID")"
        fields="$(printf '%s\n' "$out" | python3 "$PERF_DIR/summarize.py" bench-csv "$test")" ||
            die "could not parse redis-benchmark output: $out"
        rps="${fields%%,*}"
        cpu="$(python3 -c "print(f'{($after - $before) / $REQUESTS:.4f}')")"
        echo "$s,$test,$REQUESTS,$rps,$cpu" >>"$RAW"
    done
    stop_pid "$PID"
done

echo
python3 - "$RAW" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base = {r["test"]: float(r["rps"]) for r in rows if r["shards"] == "1"}
print(f"{'shards':>6} {'test':>4} {'ops/s':>12} {'ops/s/shard':>12} {'cpu_us/op':>10} {'efficiency':>10}")
for r in rows:
    s, rps = int(r["shards"]), float(r["rps"])
    eff = rps / (base[r["test"]] * s) if base.get(r["test"]) else 0
    print(f"{s:>6} {r['test']:>4} {rps:>12,.0f} {rps / s:>12,.0f} {float(r['cpu_us_per_op']):>10.3f} {eff:>10.2f}")
print()
print("efficiency = ops/s / (ops/s at 1 shard x shards); 1.00 is linear scaling.")
EOF
echo "raw: $RAW"
