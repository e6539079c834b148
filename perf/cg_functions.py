#!/usr/bin/env python3
"""Per-function user instructions per request from callgrind dumps, side by side.

    perf/cg_functions.py REQUESTS DUMP [DUMP ...] [--min N] [--event E]

Each DUMP is a callgrind file (e.g. the ones `CG_KEEP=DIR perf/user_instr.sh`
keeps: DIR/SERVER-TEST.cg). Prints every function whose exclusive Ir per
request reaches N (default 5) in some dump, one column per dump, sorted by
the largest, and the totals: what a command pays beyond another, function by
function (e.g. ringkv-SET.cg against ringkv-LPUSH.cg). Exclusive cost: the
cost lines under `fn=`, not the inclusive `calls=` lines. callgrind_annotate
3.19 mis-reads these dumps' exclusive view (everything under `clone`), hence
this reader. `--event E` reads another of the dump's events than the first
(Ir), e.g. D1mr or DLmr of a dump taken with `--cache-sim=yes`
(`CG_ARGS=--cache-sim=yes perf/user_instr.sh`).
"""
import collections
import os
import re
import sys


def exclusive(path, event=None):
    column = 1
    names = {}
    cost = collections.Counter()
    fn = None
    after_calls = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("events:"):
            events = line.split()[1:]
            if event is not None:
                if event not in events:
                    sys.exit("%s: no event %s (events: %s)" % (path, event, " ".join(events)))
                column = events.index(event) + 1
            continue
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, i, name = m.groups()
            if name:
                names[i] = name
            if kind == "fn":
                fn = names.get(i, i)
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            if after_calls:
                # The inclusive cost of the call above: not this function's.
                after_calls = False
                continue
            parts = line.split()
            if len(parts) > column and fn is not None:
                cost[fn] += int(parts[column])
    return cost


def main():
    args = sys.argv[1:]
    least = 5.0
    if "--min" in args:
        i = args.index("--min")
        least = float(args[i + 1])
        del args[i : i + 2]
    event = None
    if "--event" in args:
        i = args.index("--event")
        event = args[i + 1]
        del args[i : i + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    n = int(args[0])
    dumps = args[1:]
    costs = [exclusive(d, event) for d in dumps]
    keys = {k for c in costs for k, v in c.items() if v / n >= least}
    rows = sorted(keys, key=lambda k: -max(c[k] for c in costs))
    labels = [os.path.basename(d).rsplit(".", 1)[0][-12:] for d in dumps]
    # Misses per request are fractions: two decimals for any event but Ir.
    f = "%13.0f" if event in (None, "Ir") else "%13.2f"
    print("%-80s" % ("function (exclusive %s per request)" % (event or "Ir")) + "".join("%13s" % l for l in labels))
    for k in rows:
        print("%-80s" % k[:80] + "".join(f % (c[k] / n) for c in costs))
    print("%-80s" % "TOTAL" + "".join(f % (sum(c.values()) / n) for c in costs))


if __name__ == "__main__":
    main()
