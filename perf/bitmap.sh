#!/usr/bin/env bash
# Bitmap speed, ringkv (--shards 1) vs redis-server, each pinned to core 0,
# redis-benchmark on core 1, measured alternately (A B A B ...) per round:
#   - BITCOUNT over a 1 MiB string (random bytes), one client, -P 1:
#     server CPU per request (utime+stime from /proc/PID/stat), requests/s;
#   - SETBIT over 100k random keys at bit 1000 (redis-benchmark zero-pads
#     __rand_int__, which a bit offset refuses, so the key varies), -c 50 -P 16:
#     requests/s and server CPU per request.
# Env: ROUNDS=3 BITCOUNT_REQUESTS=5000 SETBIT_REQUESTS=2000000 PORT_BASE=24100
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RINGKV_BIN=${RINGKV_BIN:-$ROOT/target/release/ringkv}
REDIS_SERVER_BIN=${REDIS_SERVER_BIN:-redis-server}
ROUNDS=${ROUNDS:-3}
BITCOUNT_REQUESTS=${BITCOUNT_REQUESTS:-5000}
SETBIT_REQUESTS=${SETBIT_REQUESTS:-2000000}
PORT_BASE=${PORT_BASE:-24100}
R_PORT=$((PORT_BASE)); K_PORT=$((PORT_BASE + 1))

taskset -c 0 "$REDIS_SERVER_BIN" --port $R_PORT --save '' --appendonly no >/dev/null 2>&1 &
R_PID=$!
taskset -c 0 "$RINGKV_BIN" --port $K_PORT --shards 1 --save '' >/dev/null 2>&1 &
K_PID=$!
trap 'kill $R_PID $K_PID 2>/dev/null' EXIT
sleep 1

cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
tick_ns=$((1000000000 / $(getconf CLK_TCK)))

for port in $R_PORT $K_PORT; do
  python3 - "$port" <<'PY'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
v = os.urandom(1 << 20)
s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % len(v) + v + b"\r\n")
assert s.recv(100).startswith(b"+OK")
PY
done

run() { # name pid port -- benchmark args
  local name=$1 pid=$2 port=$3; shift 4
  local before after rps
  before=$(cpu_ticks "$pid")
  rps=$(taskset -c 1 redis-benchmark -p "$port" --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"')
  after=$(cpu_ticks "$pid")
  echo "$name rps=$rps cpu_ns_per_req=$(( (after - before) * tick_ns / REQS ))"
}

for round in $(seq 1 "$ROUNDS"); do
  for target in "redis $R_PID $R_PORT" "ringkv $K_PID $K_PORT"; do
    set -- $target
    REQS=$BITCOUNT_REQUESTS run "round $round bitcount-1MiB $1" "$2" "$3" -- -n "$BITCOUNT_REQUESTS" -c 1 BITCOUNT big
    REQS=$SETBIT_REQUESTS run "round $round setbit-P16 $1" "$2" "$3" -- -n "$SETBIT_REQUESTS" -c 50 -P 16 -r 100000 SETBIT bm:__rand_int__ 1000 1
  done
done
