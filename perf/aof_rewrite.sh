#!/usr/bin/env bash
# BGREWRITEAOF: how long the rewrite of KEYS keys takes, the fork pause and
# the size of the new base, ringkv against redis-server, each on SERVER_CORES
# with the RDB preamble (aof-use-rdb-preamble yes, the default).
#
#   perf/aof_rewrite.sh                      # both servers, KEYS=1000000
#   KEYS=3000000 SHARDS=2 SERVER_CORES=0,1 perf/aof_rewrite.sh
#   PREAMBLE=no perf/aof_rewrite.sh          # the command-form base
#
# Steps, per server: start it with --appendonly yes in a scratch --dir, fill
# KEYS keys of VALUE_BYTES bytes with DEBUG POPULATE (both servers have it),
# then REPEAT times: BGREWRITEAOF, poll aof_rewrite_in_progress every 10 ms
# for the wall time, read latest_fork_usec and aof_last_cow_size, and the
# size of the base file the manifest names.
#
# Environment: KEYS=1000000, VALUE_BYTES=64, REPEAT=3, SHARDS=1 (ringkv),
#   PREAMBLE=yes|no, SERVER_CORES=0, RINGKV_BIN=..., REDIS_SERVER_BIN=...

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEYS="${KEYS:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-64}"
REPEAT="${REPEAT:-3}"
SHARDS="${SHARDS:-1}"
PREAMBLE="${PREAMBLE:-yes}"

for server in redis ringkv; do
    dir="$OUT_DIR/aof-rewrite-$server-$(timestamp)"
    mkdir -p "$dir"
    port="$(free_port)"
    start_named "$server" "$port" "$SHARDS" "$dir/server.log" --dir "$dir" --appendonly yes \
        --aof-use-rdb-preamble "$PREAMBLE" --enable-debug-command yes
    cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
    field() { cli INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"; }
    run cli DEBUG POPULATE "$KEYS" key "$VALUE_BYTES" >/dev/null
    for i in $(seq 1 "$REPEAT"); do
        start=$(date +%s.%N)
        run cli BGREWRITEAOF >/dev/null
        sleep 0.01
        while [ "$(field persistence aof_rewrite_in_progress)" = "1" ]; do sleep 0.01; done
        end=$(date +%s.%N)
        status="$(field persistence aof_last_bgrewrite_status)"
        base="$(sed -n 's/^file \([^ ]*\) seq [0-9]* type b$/\1/p' "$dir/appendonlydir/appendonly.aof.manifest")"
        size=$(stat -c %s "$dir/appendonlydir/$base")
        printf '%-7s keys=%s run=%s rewrite_ms=%.0f fork_usec=%s cow_bytes=%s base=%s base_bytes=%s status=%s\n' \
            "$server" "$KEYS" "$i" "$(echo "($end - $start) * 1000" | bc)" "$(field stats latest_fork_usec)" \
            "$(field persistence aof_last_cow_size)" "$base" "$size" "$status"
    done
    stop_pid "$SERVER_PID"
    rm -rf "$dir/appendonlydir"
done
