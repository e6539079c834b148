#!/usr/bin/env bash
# BGSAVE of issue 12's mixed dataset under a SET load, redis-server and ringkv
# (--shards 1) alternated ROUNDS times (redis, ringkv, redis, ...), each round a
# fresh server filled by perf/bgsave.sh FILL=mixed; then the ratios
# ringkv/redis-server of the fork pause (latest_fork_usec), the BGSAVE wall
# time (polled every 20 ms) and the copy-on-write (rdb_last_cow_size), medians
# over the rounds. Issue 12's targets: fork <= 0.25x, wall <= 0.2x, CoW <= 0.3x.
#
# Env: ROUNDS=2, BEFORE_BIN (a ringkv binary to compare with, e.g. the branch
# point's: a third server "before" in each round, after ringkv), and everything
# perf/bgsave.sh takes (SMALL_HASHES, SMALL, BIG, LOAD_KEYS, LOAD_CLIENTS,
# LOAD_PIPELINE, BEFORE_SECONDS, AFTER_SECONDS, NO_LOAD=1 for the child's own
# copy-on-write with no SET load, COW_BREAKDOWN=1 for its causes, ...).
# LOAD_REQUESTS defaults to 200000 here: one redis-benchmark run spans the
# snapshot (with 20000 the gaps between runs left some snapshots unloaded).
source "$(dirname "$0")/lib.sh"
need_python
ensure_ringkv
ROUNDS="${ROUNDS:-2}"
export LOAD_REQUESTS="${LOAD_REQUESTS:-200000}"
SERVERS=(redis ringkv)
[ -z "${BEFORE_BIN:-}" ] || SERVERS+=(before)
RES="$OUT_DIR/bgsave_mixed.$(timestamp).txt"
: >"$RES"
for round in $(seq 1 "$ROUNDS"); do
    for server in "${SERVERS[@]}"; do
        log "== round $round: $server"
        if [ "$server" = before ]; then
            out="$(RINGKV_BIN="$BEFORE_BIN" FILL=mixed "$PERF_DIR/bgsave.sh" ringkv 2>&1)" || { printf '%s\n' "$out" | tail -20 >&2; die "bgsave.sh before failed"; }
        else
            out="$(FILL=mixed "$PERF_DIR/bgsave.sh" "$server" 2>&1)" || { printf '%s\n' "$out" | tail -20 >&2; die "bgsave.sh $server failed"; }
        fi
        printf '%s\n' "$out" | sed -n '/^== /,$p' | grep -v '^+' >&9 || true
        fork="$(printf '%s\n' "$out" | awk '/^fork \(latest_fork_usec\)/ { print $3 }')"
        wall="$(printf '%s\n' "$out" | awk '/^BGSAVE wall time/ { print $7 }')"
        cow="$(printf '%s\n' "$out" | awk '/^copy-on-write/ { print $3 }')"
        echo "$server $fork $wall $cow" | tee -a "$RES"
    done
done
python3 - "$RES" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for server, fork, wall, cow in rows:
    by.setdefault(server, []).append((float(fork), float(wall), float(cow)))
med = {s: [statistics.median(v[i] for v in vals) for i in range(3)] for s, vals in by.items()}
print("\n| | fork us | BGSAVE wall s | CoW MiB |")
print("|---|---|---|---|")
for s in ("redis", "ringkv", "before"):
    if s in med:
        f, w, c = med[s]
        print(f"| {s} (median of {len(by[s])}) | {f:.0f} | {w:.3f} | {c:.1f} |")
ratio = lambda a, b: f"{a / b:.3f}x" if b > 0 else "-"
for s in ("ringkv", "before"):
    if "redis" in med and s in med:
        r, k = med["redis"], med[s]
        print(f"| ratio {s}/redis (target) | {ratio(k[0], r[0])} (<= 0.25x) | {ratio(k[1], r[1])} (<= 0.2x) | {ratio(k[2], r[2])} (<= 0.3x) |")
PY
