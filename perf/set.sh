#!/usr/bin/env bash
# Sets: memory per member of a 1M-member hash set, and SADD / SISMEMBER speed,
# ringkv (--shards 1) beside redis-server 7.0, both pinned to core 0, the
# client on core 1.
#
#   perf/set.sh            # builds nothing: needs target/release/ringkv
#
# Memory: SADD of MEMBERS members ("member:N", then the integers N*7919, a
# hash set too past set-max-intset-entries) in batches of 1000 through
# `redis-cli --pipe`; `used_memory` growth / members (RSS is reported too, but
# jemalloc returns freed pages late: read it after a pause).
# Speed: redis-benchmark -c 50 -P 16 of SADD and SISMEMBER over 1M random
# members; server CPU (utime+stime) per request, steadier than requests/s on
# a shared machine. Environment: MEMBERS=1000000 REQUESTS=1000000 ROUNDS=2.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS=${MEMBERS:-1000000}; REQUESTS=${REQUESTS:-1000000}; ROUNDS=${ROUNDS:-2}
TMP=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(port); KP=$(port)
taskset -c 0 redis-server --port "$RP" --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 & PIDS+=($!); RPID=$!
taskset -c 0 target/release/ringkv --port "$KP" --save '' --shards 1 --dir "$TMP" >"$TMP/ringkv.log" 2>&1 & PIDS+=($!); KPID=$!
sleep 1
python3 - "$TMP" "$MEMBERS" <<'PY'
import sys
tmp, n = sys.argv[1], int(sys.argv[2])
for name, fmt in (("str", b"member:%d"), ("int", None)):
    with open(f"{tmp}/{name}.resp", "wb") as out:
        for s in range(0, n, 1000):
            args = [b"SADD", name.encode()] + [(fmt % i) if fmt else b"%d" % (i * 7919) for i in range(s, min(n, s + 1000))]
            out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
PY
used() { redis-cli -p "$1" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for key in str int; do
  for s in "redis $RP $RPID" "ringkv $KP $KPID"; do
    set -- $s
    u0=$(used "$2"); r0=$(rss "$3")
    redis-cli -p "$2" --pipe <"$TMP/$key.resp" >/dev/null
    n=$(redis-cli -p "$2" scard "$key")
    echo "memory $1 $key members=$n encoding=$(redis-cli -p "$2" object encoding "$key") used_memory_per_member=$(( ($(used "$2") - u0) / n )) rss_per_member=$(( ($(rss "$3") - r0) / n ))"
  done
done
TCK=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
  for s in "redis $RP $RPID" "ringkv $KP $KPID"; do
    set -- $s
    for cmd in sadd sismember; do
      c0=$(cpu "$3")
      rps=$(taskset -c 1 redis-benchmark -p "$2" -n "$REQUESTS" -r 1000000 -c 50 -P 16 -q $cmd bench element:__rand_int__ | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
      echo "speed round=$round $1 $cmd rps=$rps server_cpu_ns_per_req=$(( ($(cpu "$3") - c0) * 1000000000 / TCK / REQUESTS ))"
    done
  done
done
