#!/usr/bin/env bash
# maxmemory's cost on the plain GET/SET path: redis-benchmark -c 50 -P 16 of
# SET and GET against ringkv (--shards 1, core 0) with `maxmemory 0` (the
# check is one relaxed load) and with a limit far above use (every command
# reads the used-memory figure, src/shard/memory.rs), beside redis-server
# 7.0 in the same two settings. Server CPU (utime+stime) per request from
# /proc/PID/stat, steadier than requests/s on a shared machine.
#
#   perf/maxmemory.sh      # builds nothing: needs target/release/ringkv
#
# Environment: REQUESTS=1000000 ROUNDS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-1000000}; ROUNDS=${ROUNDS:-2}
TMP=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(port); KP=$(port)
echo "+ taskset -c 0 redis-server --port $RP --save '' --appendonly no"
taskset -c 0 redis-server --port "$RP" --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 & PIDS+=($!); RPID=$!
echo "+ taskset -c 0 target/release/ringkv --port $KP --save '' --shards 1"
taskset -c 0 target/release/ringkv --port "$KP" --save '' --shards 1 --dir "$TMP" >"$TMP/ringkv.log" 2>&1 & PIDS+=($!); KPID=$!
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  for limit in 0 100gb; do
    for s in "redis $RP $RPID" "ringkv $KP $KPID"; do
      set -- $s
      redis-cli -p "$2" config set maxmemory "$limit" >/dev/null
      for cmd in set get; do
        c0=$(cpu "$3")
        rps=$(taskset -c 1 redis-benchmark -p "$2" -n "$REQUESTS" -r 100000 -c 50 -P 16 -q -t $cmd | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
        echo "round=$round maxmemory=$limit $1 $cmd rps=$rps server_cpu_ns_per_req=$(( ($(cpu "$3") - c0) * 1000000000 / TCK / REQUESTS ))"
      done
    done
  done
done
