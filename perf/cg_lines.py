#!/usr/bin/env python3
"""Exclusive user instructions per request of one function, source line by line.

    perf/cg_lines.py DUMP REQUESTS PATTERN [TOP]

DUMP is a callgrind file (`CG_KEEP=DIR perf/user_instr.sh` keeps
DIR/SERVER-TEST.cg); every function whose name contains PATTERN is counted,
by (file, line) of the code that ran, inlined code included (the dump's
`fi=`/`fe=` records name the inlined file), so what `perf/cg_functions.py`
shows as one function's cost is split over the lines of what was inlined
into it: e.g. `perf/cg_lines.py DIR/ringkv-LPUSH.cg 16000 push_generic`.
Prints the TOP (40) dearest lines. The inclusive cost of calls is left out.
"""
import collections
import re
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, n, pattern = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    names, files = {}, {}
    cost = collections.Counter()
    fn = fn_file = cur_file = None
    last = 0
    after_calls = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(fl|fi|fe|cfi|cfl)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, i, name = m.groups()
            if name:
                files[i] = name
            if kind == "fl":
                fn_file = cur_file = files.get(i)
            elif kind in ("fi", "fe"):
                cur_file = files.get(i)
            continue
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, i, name = m.groups()
            if name:
                names[i] = name
            if kind == "fn":
                fn = names.get(i, i)
                cur_file = fn_file
            continue
        if line.startswith("calls="):
            after_calls = True
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            p = parts[0]
            ln = last if p == "*" else last + int(p) if p[0] in "+-" else int(p)
            last = ln
            if after_calls:
                after_calls = False
                continue
            if fn is not None and pattern in fn and len(parts) > 1:
                cost[(cur_file, ln)] += int(parts[1])
    print("total %.1f" % (sum(cost.values()) / n))
    for (f, ln), c in sorted(cost.items(), key=lambda kv: -kv[1])[:top]:
        print("%7.1f %s:%d" % (c / n, (f or "?").split("/src/")[-1][-60:], ln))


if __name__ == "__main__":
    main()
