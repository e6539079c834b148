#!/usr/bin/env bash
# HyperLogLog and GEO speed, ringkv (--shards 1) vs redis-server, each pinned
# to core 0, redis-benchmark on core 1, measured alternately (A B A B ...)
# per round. Per workload: requests/s and server CPU per request (utime and
# stime from /proc/PID/stat, user/kernel split), then ringkv/redis ratios.
#   - pfadd:      PFADD hll el:__rand_int__ (-r 1000000: the key goes dense
#                 early, most adds change nothing), -c 50 -P 16;
#   - pfcount:    PFCOUNT hll (the cached cardinality, invalidated by the
#                 adds before), -c 50 -P 16;
#   - pfcount3:   PFCOUNT hll hll2 hll3 (three dense HLLs merged per call), -c 1;
#   - geoadd:     GEOADD geo 13.__rand_int__ 38.__rand_int__ m:__rand_int__
#                 (-r 100000 members in about one degree square), -c 50 -P 16;
#   - geosearch:  GEOSEARCH geo FROMLONLAT 13.5 38.5 BYRADIUS 5 km COUNT 10
#                 ASC over the ~100k points, -c 1.
# Env: ROUNDS=3 PCT=100 (percent of the request counts) K_PORT=7181 R_PORT=7281
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RINGKV_BIN=${RINGKV_BIN:-$ROOT/target/release/ringkv}
REDIS_SERVER_BIN=${REDIS_SERVER_BIN:-redis-server}
ROUNDS=${ROUNDS:-3}
PCT=${PCT:-100}
R_PORT=${R_PORT:-7281}
K_PORT=${K_PORT:-7181}

taskset -c 0 "$REDIS_SERVER_BIN" --port "$R_PORT" --save '' --appendonly no >/dev/null 2>&1 &
R_PID=$!
taskset -c 0 "$RINGKV_BIN" --port "$K_PORT" --shards 1 --save '' >/dev/null 2>&1 &
K_PID=$!
trap 'kill $R_PID $K_PID 2>/dev/null' EXIT
sleep 1

# Three dense HLLs and the GEO set, the same on both servers.
for port in $R_PORT $K_PORT; do
  for k in hll hll2 hll3; do
    taskset -c 1 redis-benchmark -p "$port" -n 20000 -c 20 -P 16 -r 1000000 PFADD "$k" "$k:__rand_int__" >/dev/null 2>&1
  done
  taskset -c 1 redis-benchmark -p "$port" -n 200000 -c 20 -P 16 -r 100000 \
    GEOADD geo 13.__rand_int__ 38.__rand_int__ m:__rand_int__ >/dev/null 2>&1
done

stat_ticks() { awk '{print $14, $15}' /proc/$1/stat; }
tick_ns=$((1000000000 / $(getconf CLK_TCK)))
RESULTS=$(mktemp)
trap 'kill $R_PID $K_PID 2>/dev/null; rm -f "$RESULTS"' EXIT

measure() { # workload server pid port requests -- benchmark args
  local workload=$1 name=$2 pid=$3 port=$4 reqs=$5; shift 6
  local u0 s0 u1 s1 rps
  read -r u0 s0 < <(stat_ticks "$pid")
  rps=$(taskset -c 1 redis-benchmark -p "$port" --csv -n "$reqs" "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"')
  read -r u1 s1 < <(stat_ticks "$pid")
  local user=$(( (u1 - u0) * tick_ns / reqs )) sys=$(( (s1 - s0) * tick_ns / reqs ))
  echo "$workload $name rps=$rps user_ns=$user sys_ns=$sys cpu_ns=$((user + sys))"
  echo "$workload $name $rps $user $sys" >>"$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
  order="redis ringkv"
  [ $((round % 2)) -eq 0 ] && order="ringkv redis"
  for name in $order; do
    if [ "$name" = redis ]; then pid=$R_PID port=$R_PORT; else pid=$K_PID port=$K_PORT; fi
    echo "# round $round $name"
    measure pfadd "$name" "$pid" "$port" $((1000000 * PCT / 100)) -- -c 50 -P 16 -r 1000000 PFADD hll el:__rand_int__
    measure pfcount "$name" "$pid" "$port" $((1000000 * PCT / 100)) -- -c 50 -P 16 PFCOUNT hll
    measure pfcount3 "$name" "$pid" "$port" $((20000 * PCT / 100)) -- -c 1 PFCOUNT hll hll2 hll3
    measure geoadd "$name" "$pid" "$port" $((500000 * PCT / 100)) -- -c 50 -P 16 -r 100000 GEOADD geo 13.__rand_int__ 38.__rand_int__ m:__rand_int__
    measure geosearch "$name" "$pid" "$port" $((20000 * PCT / 100)) -- -c 1 GEOSEARCH geo FROMLONLAT 13.5 38.5 BYRADIUS 5 km COUNT 10 ASC
  done
done

echo "# medians over $ROUNDS rounds; ratio = ringkv / redis"
python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    w, name, rps, user, sys_ = line.split()
    rows[w][name].append((float(rps), int(user), int(sys_)))
for w, by in rows.items():
    med = {n: [statistics.median(x[i] for x in v) for i in range(3)] for n, v in by.items()}
    r, k = med["redis"], med["ringkv"]
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
    print(f"{w:10} rps redis {r[0]:>10.0f} ringkv {k[0]:>10.0f} ({ratio(k[0], r[0])})  "
          f"cpu ns/req redis {r[1]}+{r[2]} ringkv {k[1]}+{k[2]} (user {ratio(k[1], r[1])}, kernel {ratio(k[2], r[2])})")
PY
