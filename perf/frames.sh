#!/usr/bin/env bash
# Requests that arrive in many small pieces, ringkv (--shards 1) and
# redis-server side by side, each pinned to SERVER_CORES, the load on
# CLIENT_CORES: a 4 MiB MSET in 1460-byte writes, and CONNS connections each
# streaming 1 MiB of one-byte arguments while PING is timed. Prints server CPU
# (from /proc/PID/stat) and wall time; see frames_load.py for the knobs
# (MSET_BYTES, MSET_ROUNDS, CONNS, STREAM_BYTES, CHUNK).
#
# Usage: perf/frames.sh [mset|stream|both]   (SERVERS="ringkv redis" by default)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASES="${1:-both}"
[ "$CASES" = both ] && CASES="mset stream"
SERVERS="${SERVERS:-ringkv redis}"
TS="$(date +%Y%m%d-%H%M%S)"

for server in $SERVERS; do
    port="$(free_port)"
    start_named "$server" "$port" 1 "$OUT_DIR/frames-$TS-$server.log"
    pid="$SERVER_PID"
    for case in $CASES; do
        run taskset -c "$CLIENT_CORES" python3 "$PERF_DIR/frames_load.py" "$case" "$port" "$pid" |
            sed "s/^/$server /" | tee -a "$OUT_DIR/frames-$TS.txt"
    done
    stop_pid "$pid"
done
