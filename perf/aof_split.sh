#!/usr/bin/env bash
# Where `appendfsync always` spends its time, ringkv beside redis-server:
# SET at -c 50 -P 1 (issue 11's case), each server pinned to one core, the
# AOF in a fresh directory under AOF_DIR.
#
#   perf/aof_split.sh
#   AOF_DIR=/mnt/fast ROUNDS=3 REQUESTS=60000 perf/aof_split.sh
#   BEFORE_BIN=/tmp/ringkv-old perf/aof_split.sh   # a third server, "before"
#   PROFILE=1 perf/aof_split.sh                    # + perf record of the core
#
# Per run (servers alternated each round: ringkv redis [before], then the
# reverse, so a drift of the machine hits each alike):
# - req/s, p50 and p99 (redis-benchmark --csv);
# - the server's CPU per request, precise (schedstat run time, ns), split by
#   thread kind: the shard / redis-server's main thread ("main"), io_uring's
#   io-wq workers ("iou-wrk", which run ringkv's fdatasync), any other thread
#   ("other"), and threads that exited during the run ("exited", from the
#   tick-based utime+stime of the whole process minus the live threads');
# - the server's context switches per request (voluntary + involuntary, all
#   threads) and its kernel share (stime / utime+stime, ticks);
# - the server core's busy share over the run (/proc/stat), which says
#   whether the one core is the bound (near 100%) or the disk is (idle time);
# - fsyncs of the server's incr file (ext4_sync_file tracepoints filtered by
#   its inode), acknowledged writes per fsync, and the fdatasync latency
#   distribution (enter to exit, per thread: p50/p90/p99 in us) with the
#   fsyncs' share of wall time (sum of latencies / run time: 1.0 = always
#   one fsync running).
#
# PROFILE=1 also samples the server's core (`perf record -e cpu-clock -g -C
# SERVER_CORES`) and prints, per run, the shares by thread name and the top
# kernel/user symbols of the server's threads.
#
# VARIANTS="name=path ..." adds more ringkv binaries (or env-setting wrappers).
#
# Environment: POLICY=always (or everysec, no, off), REQUESTS=60000, CLIENTS=50, PIPELINE=1, KEYSPACE=1000000,
#   VALUE_BYTES=32, ROUNDS=2, SHARDS=1, AOF_DIR ($OUT_DIR), PORT_MIN/PORT_MAX.

source "$(dirname "$0")/lib.sh"
need_python

REQUESTS="${REQUESTS:-60000}"
CLIENTS="${CLIENTS:-50}"
PIPELINE="${PIPELINE:-1}"
KEYSPACE="${KEYSPACE:-1000000}"
VALUE_BYTES="${VALUE_BYTES:-32}"
ROUNDS="${ROUNDS:-2}"
SHARDS="${SHARDS:-1}"
AOF_DIR="${AOF_DIR:-$OUT_DIR}"
PROFILE="${PROFILE:-0}"
# POLICY=off: the same load with `--appendonly no` (the request path alone,
# to subtract from `always`'s CPU per request: what the commits cost).
POLICY="${POLICY:-always}"
if [ "$POLICY" = off ]; then AOF_ARGS=(--appendonly no); else AOF_ARGS=(--appendonly yes --appendfsync "$POLICY"); fi
if [ "$NCPU" -gt 1 ]; then CLIENT_CORE="${CLIENT_CORE:-1}"; else CLIENT_CORE="${CLIENT_CORE:-0}"; fi
perf stat -a -e ext4:ext4_sync_file_enter -x, -o /dev/null -- true 2>/dev/null || die "perf cannot read the ext4 tracepoints (run as root)"
TS="$(timestamp)"
RESULTS="$OUT_DIR/aof-split-$TS"
mkdir -p "$RESULTS"

# One line per thread: "tid comm run_ns utime stime vcsw nvcsw".
threads() {
    local t
    for t in /proc/"$1"/task/*; do
        python3 - "$t" <<'PY' 2>/dev/null || true
import sys
t = sys.argv[1]
stat = open(t + "/stat").read()
comm = stat[stat.index("(") + 1:stat.rindex(")")]
f = stat[stat.rindex(")") + 2:].split()
run = open(t + "/schedstat").read().split()[0]
st = {l.split(":")[0]: l.split(":")[1].strip() for l in open(t + "/status") if ":" in l}
print(t.rsplit("/", 1)[1], comm.replace(" ", "_"), run, f[11], f[12], st["voluntary_ctxt_switches"], st["nonvoluntary_ctxt_switches"])
PY
    done
}

cpu_line() { # core -> "busy idle" jiffies
    awk -v c="cpu$1" '$1 == c { idle = $5 + $6; t = 0; for (i = 2; i <= 9; i++) t += $i; print t - idle, idle }' /proc/stat
}

one() { # SERVER ROUND
    local server="$1" r="$2" dir port incr ino tag
    tag="$server-$r"
    dir="$(mktemp -d "$AOF_DIR/aof-split-$server-XXXXXX")"
    port="$(free_port)"
    case "$server" in
    redis | ringkv) start_named "$server" "$port" "$SHARDS" "$dir/server.log" --dir "$dir" "${AOF_ARGS[@]}" ;;
    before) RINGKV_BIN="$BEFORE_BIN" start_named ringkv "$port" "$SHARDS" "$dir/server.log" --dir "$dir" "${AOF_ARGS[@]}" ;;
    *) RINGKV_BIN="$(variant_bin "$server")" start_named ringkv "$port" "$SHARDS" "$dir/server.log" --dir "$dir" "${AOF_ARGS[@]}" ;;
    esac
    ino=0
    if [ "$POLICY" != off ]; then
        incr="$(ls "$dir"/appendonlydir/*.incr.aof | tail -1)"
        ino="$(stat -c %i "$incr")"
    fi
    threads "$SERVER_PID" >"$RESULTS/$tag.threads0"
    cpu_ticks "$SERVER_PID" >"$RESULTS/$tag.ticks0"
    cpu_line "${SERVER_CORES%%[,-]*}" >"$RESULTS/$tag.core0"
    local t0 t1 prof=()
    if [ "$PROFILE" = 1 ]; then
        prof=(perf record -q -e cpu-clock -F 4000 -g -C "$SERVER_CORES" -o "$RESULTS/$tag.prof" --)
    fi
    t0="$(date +%s.%N)"
    run "${prof[@]}" perf record -q -a -e ext4:ext4_sync_file_enter --filter "ino == $ino" -e ext4:ext4_sync_file_exit --filter "ino == $ino" \
        -o "$RESULTS/$tag.fsync" -- taskset -c "$CLIENT_CORE" redis-benchmark -h 127.0.0.1 -p "$port" -t set -n "$REQUESTS" \
        -c "$CLIENTS" -r "$KEYSPACE" -d "$VALUE_BYTES" -P "$PIPELINE" --csv 2>/dev/null | tail -1 >"$RESULTS/$tag.csv"
    t1="$(date +%s.%N)"
    threads "$SERVER_PID" >"$RESULTS/$tag.threads1"
    cpu_ticks "$SERVER_PID" >"$RESULTS/$tag.ticks1"
    cpu_line "${SERVER_CORES%%[,-]*}" >"$RESULTS/$tag.core1"
    echo "$t0 $t1" >"$RESULTS/$tag.wall"
    stop_pid "$SERVER_PID"
    perf script -i "$RESULTS/$tag.fsync" -F tid,time,event 2>/dev/null >"$RESULTS/$tag.fsync.txt" || true
    rm -f "$RESULTS/$tag.fsync"
    if [ "$PROFILE" = 1 ]; then
        perf report -i "$RESULTS/$tag.prof" --no-children --sort comm -q --stdio -g none 2>/dev/null | grep -v '^$' | head -8 >"$RESULTS/$tag.comms" || true
        perf report -i "$RESULTS/$tag.prof" --no-children --pid "$SERVER_PID" --percentage relative --sort comm,sym -q --stdio -g none 2>/dev/null |
            grep -v '^$' | head -"${PROFILE_LINES:-40}" >"$RESULTS/$tag.syms" || true
        rm -f "$RESULTS/$tag.prof"
    fi
    rm -rf "$dir"
    log "  $tag done"
}

# VARIANTS="name=path ...": more ringkv binaries (or wrappers) in each round.
variant_bin() {
    local v
    for v in ${VARIANTS:-}; do
        if [ "${v%%=*}" = "$1" ]; then
            echo "${v#*=}"
            return
        fi
    done
    die "unknown server $1"
}
SERVERS="ringkv redis"
[ -n "${BEFORE_BIN:-}" ] && SERVERS="$SERVERS before"
for v in ${VARIANTS:-}; do SERVERS="$SERVERS ${v%%=*}"; done
for r in $(seq 1 "$ROUNDS"); do
    for s in $(round_order "$r"); do
        one "$s" "$r"
    done
done

python3 - "$RESULTS" "$REQUESTS" "$CLK_TCK" "$ROUNDS" "$SERVERS" "$PROFILE" <<'PY'
import sys, os, statistics
d, requests, tck, rounds, servers, profile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(), sys.argv[6] == "1"

def kind(comm):
    if comm.startswith("iou-wrk"):
        return "iou-wrk"
    if comm.startswith("ringkv-shard") or comm == "redis-server":
        return "main"
    return "other"

def threads(path):
    out = {}
    for line in open(path):
        tid, comm, run, ut, st, v, nv = line.split()
        out[tid] = (comm, int(run), int(ut), int(st), int(v) + int(nv))
    return out

rows = {}
for s in servers:
    for r in range(1, rounds + 1):
        tag = "%s-%d" % (s, r)
        p = lambda ext: os.path.join(d, tag + "." + ext)
        if not os.path.exists(p("csv")):
            continue
        f = [x.strip('"') for x in open(p("csv")).read().strip().split(",")]
        rps, p50, p99 = float(f[1]), float(f[4]), float(f[6])
        t0, t1 = map(float, open(p("wall")).read().split())
        wall = t1 - t0
        a, b = threads(p("threads0")), threads(p("threads1"))
        split = {"main": 0, "iou-wrk": 0, "other": 0}
        cswk = {"main": 0, "iou-wrk": 0, "other": 0}
        csw = 0
        live_ticks = 0
        for tid, (comm, run, ut, st, cs) in b.items():
            comm0, run0, ut0, st0, cs0 = a.get(tid, (comm, 0, 0, 0, 0))
            split[kind(comm)] += run - run0
            csw += cs - cs0
            cswk[kind(comm)] += cs - cs0
            live_ticks += (ut + st) - (ut0 + st0)
        u0, s0 = map(int, open(p("ticks0")).read().split())
        u1, s1 = map(int, open(p("ticks1")).read().split())
        ticks = (u1 + s1) - (u0 + s0)
        exited_ns = max(0, ticks - live_ticks) * 1e9 / tck
        sysshare = (s1 - s0) / ticks if ticks else 0
        c0, c1 = [list(map(int, open(p(x)).read().split())) for x in ("core0", "core1")]
        busy = (c1[0] - c0[0]) / max(1, (c1[0] - c0[0]) + (c1[1] - c0[1]))
        # fsync latencies: enter/exit pairs per thread.
        open_at, lat = {}, []
        for line in open(p("fsync.txt")):
            parts = line.split()
            if len(parts) < 3:
                continue
            tid, ts, ev = parts[0], float(parts[1].rstrip(":")), parts[2]
            if "enter" in ev:
                open_at[tid] = ts
            elif "exit" in ev and tid in open_at:
                lat.append((ts - open_at.pop(tid)) * 1e6)
        lat.sort()
        q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] if lat else 0
        total_ns = sum(split.values()) + exited_ns
        rows.setdefault(s, []).append(dict(
            rps=rps, p50=p50, p99=p99, cpu=total_ns / 1e3 / requests,
            main=split["main"] / 1e3 / requests, iou=split["iou-wrk"] / 1e3 / requests,
            other=split["other"] / 1e3 / requests, exited=exited_ns / 1e3 / requests,
            sys=sysshare, csw=csw / requests, busy=busy, fsyncs=len(lat),
            cswm=cswk["main"] / len(lat) if lat else 0, cswi=cswk["iou-wrk"] / len(lat) if lat else 0,
            per=requests / len(lat) if lat else 0, f50=q(0.5), f90=q(0.9), f99=q(0.99),
            fshare=sum(lat) / 1e6 / wall if wall else 0))

cols = ["rps", "p50", "p99", "cpu", "main", "iou", "other", "exited", "sys", "csw", "cswm", "cswi", "busy", "fsyncs", "per", "f50", "f90", "f99", "fshare"]
fmt = {"rps": "%8.0f", "p50": "%6.2f", "p99": "%6.2f", "cpu": "%6.2f", "main": "%6.2f", "iou": "%6.2f", "other": "%6.2f",
       "exited": "%6.2f", "sys": "%5.2f", "csw": "%5.2f", "cswm": "%5.1f", "cswi": "%5.1f", "busy": "%5.2f", "fsyncs": "%6d", "per": "%5.1f",
       "f50": "%6.0f", "f90": "%6.0f", "f99": "%6.0f", "fshare": "%5.2f"}
print("req/s; p50/p99 ms; cpu us/req (all threads) = main (shard or redis's thread) + iou (io-wq) + other + exited;")
print("sys = kernel share of the CPU; csw = context switches per request, cswm/cswi = per fsync, of the main thread / io-wq;")
print("busy = server core busy share;")
print("fsyncs of the incr file, requests per fsync, fdatasync latency p50/p90/p99 us, fshare = fsync time / wall")
print("%-7s %-5s " % ("server", "round") + " ".join("%8s" % c for c in cols))
for s in servers:
    for i, row in enumerate(rows.get(s, [])):
        print("%-7s %-5s " % (s, i + 1) + " ".join(("%8s" % (fmt[c] % row[c]).strip()) for c in cols))
    if rows.get(s):
        med = {c: statistics.median(r[c] for r in rows[s]) for c in cols}
        print("%-7s %-5s " % (s, "med") + " ".join(("%8s" % (fmt[c] % med[c]).strip()) for c in cols))
        rows[s + ":med"] = med
for other in [x for x in servers if x != "ringkv"]:
    a, b = rows.get("ringkv:med"), rows.get(other + ":med")
    if a and b:
        print("ringkv/%s (medians): req/s %.2fx, cpu/req %.2fx, p99 %.2fx, req per fsync %.2fx" % (
            other, a["rps"] / b["rps"], a["cpu"] / b["cpu"], a["p99"] / b["p99"], a["per"] / b["per"] if b["per"] else 0))
if profile:
    for s in servers:
        for r in range(1, rounds + 1):
            for ext in ("comms", "syms"):
                path = os.path.join(d, "%s-%d.%s" % (s, r, ext))
                if os.path.exists(path):
                    print("--- %s round %d: %s" % (s, r, "core share by thread name" if ext == "comms" else "server's top symbols"))
                    print(open(path).read().rstrip())
PY
echo "raw files: $RESULTS"
