#!/usr/bin/env bash
# perf/sigterm_loop.sh: does ringkv always exit on its first SIGTERM?
#
# ITER times per (shards, aof) combination: start ringkv on PORT, load KEYS keys, start
# a pipelining redis-benchmark load (SET/GET/LPUSH/MSET, -P 16) and CLIENTS idle
# connections, wait a random 0-1 s, send one SIGTERM, and require the process to be
# gone within LIMIT_S seconds. A survivor is reported with its CPU time and its
# threads' stacks (gdb if present, else /proc/PID/task/*/stack and wchan), then
# killed with SIGKILL. Exit status 1 when any server survived.
#
# Env: BIN (target/release/ringkv), PORT (7175), ITER (50), LIMIT_S (5), KEYS (20000),
#   SHARDS ("1 3"), AOF ("no yes"), DIR (scratch dir, removed per run).
set -u
BIN=${BIN:-target/release/ringkv}
PORT=${PORT:-7175}
ITER=${ITER:-50}
LIMIT_S=${LIMIT_S:-5}
KEYS=${KEYS:-20000}
SHARDS_LIST=${SHARDS:-"1 3"}
AOF_LIST=${AOF:-"no yes"}
DIR=${DIR:-$(mktemp -d)}
survivors=0
runs=0

wait_up() {
    for _ in $(seq 1 100); do
        redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

for shards in $SHARDS_LIST; do
  for aof in $AOF_LIST; do
    for i in $(seq 1 "$ITER"); do
        rm -rf "$DIR/run" && mkdir -p "$DIR/run"
        "$BIN" --port "$PORT" --shards "$shards" --save '' --appendonly "$aof" --dir "$DIR/run" \
            >"$DIR/run/server.log" 2>&1 &
        pid=$!
        if ! wait_up; then
            echo "shards=$shards aof=$aof iter=$i: server did not start"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
            continue
        fi
        redis-benchmark -p "$PORT" -q -n "$KEYS" -r "$KEYS" -t set -P 64 >/dev/null 2>&1
        redis-benchmark -p "$PORT" -q -n 10000000 -r "$KEYS" -c 20 -P 16 -t set,get,lpush,mset >/dev/null 2>&1 &
        bench=$!
        # Idle connections that stay open through the shutdown.
        idle_pids=()
        for _ in 1 2 3; do
            (exec 3<>/dev/tcp/127.0.0.1/"$PORT"; sleep $((LIMIT_S + 5))) 2>/dev/null &
            idle_pids+=($!)
        done
        sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
        kill -TERM $pid
        t0=$(date +%s%N)
        gone=0
        for _ in $(seq 1 $((LIMIT_S * 20))); do
            if ! kill -0 $pid 2>/dev/null; then gone=1; break; fi
            # A reaped zombie still answers kill -0: ask wait.
            if [ "$(ps -o stat= -p $pid 2>/dev/null | cut -c1)" = Z ]; then gone=1; break; fi
            sleep 0.05
        done
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        runs=$((runs + 1))
        if [ $gone = 0 ]; then
            survivors=$((survivors + 1))
            cpu=$(awk '{print $14+$15}' /proc/$pid/stat 2>/dev/null)
            echo "SURVIVOR shards=$shards aof=$aof iter=$i: alive ${ms} ms after SIGTERM, cpu ticks $cpu"
            if command -v gdb >/dev/null 2>&1; then
                gdb -p $pid -batch -ex 'thread apply all bt 12' 2>/dev/null | grep -E '^(Thread|#)' | head -80
            else
                for t in /proc/$pid/task/*; do echo "  $(cat $t/comm) $(cat $t/wchan 2>/dev/null) $(cut -d' ' -f3 $t/stat)"; done
            fi
            tail -5 "$DIR/run/server.log"
            kill -9 $pid 2>/dev/null
        fi
        wait $pid 2>/dev/null
        kill $bench "${idle_pids[@]}" 2>/dev/null
        wait $bench "${idle_pids[@]}" 2>/dev/null
    done
    echo "shards=$shards aof=$aof: $ITER runs done (survivors so far: $survivors)"
  done
done
rm -rf "$DIR"
echo "sigterm_loop: $runs runs, $survivors survived their first SIGTERM for ${LIMIT_S}s"
[ $survivors = 0 ]
