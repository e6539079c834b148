#!/bin/bash
# Stands in for src/redis-server in Redis's TCL harness in its own-server mode
# (tests/test_helper.tcl --single UNIT, without --host/--port), so units whose
# external:skip blocks start their own servers run against ringkv:
#
#   ln -sf "$PWD/tests/tools/tcl_own_server.sh" TREE/src/redis-server
#   cd TREE && RINGKV_BIN=/path/to/ringkv tclsh8.6 tests/test_helper.tcl \
#       --single integration/rdb --clients 1 --baseport B --portcount 100 --timeout 60
#
# The harness learns the server's pid from a " PID: <pid>" line in its stdout
# (Redis's logo, printed once it listens) and later kills that pid, or looks
# for its forked children (get_child_pid: `pgrep -P`, the first one). So this
# script execs ringkv (same pid) with its stdout through tcl_own_server_filter.py,
# which writes that line first once the port listens, or when the server ended
# (a failed start: its error lines come after it, as after Redis's logo).
# The filter is started orphaned (not the server's child): a child of ours
# left under the server would be what get_child_pid finds instead of a BGSAVE
# child (the tests that kill -9 the child then wait for a save that never ends).
# The command-line error tests run it without a config file and with no
# usable port (`--port`, `--port --bla`): the filter then waits for the
# server's output to end instead of a port.
port=""
[ -f "$1" ] && port=$(awk '$1=="port"{p=$2} END{print p}' "$1")
for ((i = 2; i <= $#; i++)); do
    if [ "${!i}" = "--port" ]; then j=$((i + 1)); port=${!j}; fi
done
fifo=${TMPDIR:-/tmp}/tcl_own_server.$$.fifo
mkfifo "$fifo" || exit 1
( python3 "$(dirname "$(readlink -f "$0")")/tcl_own_server_filter.py" "$fifo" "$port" $$ & )
exec "${RINGKV_BIN:?set RINGKV_BIN to the ringkv binary}" "$@" >"$fifo"
