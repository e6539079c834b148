#!/usr/bin/env python3
"""Summaries and output parsers for the perf/ scripts (stdlib only).

  summarize.py compare RAW.csv          medians per (tool, test, pipeline, proto, server)
                                        and the ringkv/redis ratios
  summarize.py bench-csv TEST           one redis-benchmark --csv result on stdin -> CSV fields
  summarize.py memtier                  memtier_benchmark text output on stdin -> CSV fields
  summarize.py syscalls [REQUESTS]      strace -c / perf trace -s output on stdin -> calls
                                        per syscall (per request when REQUESTS is given)
"""

import csv
import re
import statistics
import sys
from collections import defaultdict

COMPARE_FIELDS = [
    "tool", "round", "server", "test", "pipeline", "proto", "requests",
    "rps", "p50_ms", "p99_ms", "p999_ms", "max_ms", "cpu_us_per_req",
]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def fmt(v, digits=2):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def compare(path):
    rows = list(csv.DictReader(open(path)))
    if not rows:
        print("no results")
        return
    groups = defaultdict(list)
    for r in rows:
        groups[(r["tool"], r["test"], int(r["pipeline"]), r["proto"], r["server"])].append(r)
    rounds = len({r["round"] for r in rows})
    print(f"Medians over {rounds} round(s); cpu_us/req = server CPU (user+sys) per request.")
    print()
    header = ["tool", "test", "P", "proto", "server", "runs", "req/s", "cpu_us/req",
              "p50_ms", "p99_ms", "p99.9_ms", "max_ms"]
    table = [header]
    med = {}
    for key in sorted(groups):
        g = groups[key]
        m = {f: median([num(r[f]) for r in g]) for f in
             ("rps", "cpu_us_per_req", "p50_ms", "p99_ms", "p999_ms", "max_ms")}
        med[key] = m
        tool, test, pipeline, proto, server = key
        table.append([tool, test, str(pipeline), proto, server, str(len(g)), fmt(m["rps"]),
                      fmt(m["cpu_us_per_req"], 3), fmt(m["p50_ms"], 3), fmt(m["p99_ms"], 3),
                      fmt(m["p999_ms"], 3), fmt(m["max_ms"], 3)])
    print_table(table)
    print()
    ratios = [["tool", "test", "P", "proto", "req/s ringkv/redis", "cpu/req ringkv/redis",
               "p99 ringkv/redis"]]
    for key, m in sorted(med.items()):
        tool, test, pipeline, proto, server = key
        if server != "ringkv":
            continue
        other = med.get((tool, test, pipeline, proto, "redis"))
        if not other:
            continue
        ratios.append([tool, test, str(pipeline), proto, ratio(m["rps"], other["rps"]),
                       ratio(m["cpu_us_per_req"], other["cpu_us_per_req"]),
                       ratio(m["p99_ms"], other["p99_ms"])])
    if len(ratios) > 1:
        print("Ratios (req/s: higher is better for ringkv; cpu/req and p99: lower is better):")
        print_table(ratios)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def print_table(table):
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        print("  ".join(c.rjust(w) if n and i >= 3 and num(c.replace(",", "")) is not None
                        else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def bench_csv(test):
    """redis-benchmark 7 --csv: "test","rps","avg_latency_ms","min_latency_ms",
    "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"."""
    rows = [r for r in csv.reader(l for l in sys.stdin if l.startswith('"'))]
    if not rows:
        sys.exit("no CSV lines in redis-benchmark output")
    header, data = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    for r in data:
        if r[0].upper().startswith(test.upper()):
            get = lambda n: r[col[n]] if n in col else ""
            # rps, p50, p99, p99.9 (redis-benchmark has none), max
            print(",".join([get("rps"), get("p50_latency_ms"), get("p99_latency_ms"), "",
                            get("max_latency_ms")]))
            return
    sys.exit(f"test {test} not found in redis-benchmark output")


def memtier():
    """memtier_benchmark's ALL STATS table: header 'Type  Ops/sec ... p50 Latency ...',
    then one row per command and 'Totals'. Uses the last table printed."""
    header, totals = None, None
    for line in sys.stdin:
        if line.startswith("Type "):
            header = re.split(r"\s{2,}", line.strip())
        elif line.startswith("Totals") and header:
            totals = dict(zip(header, line.split()))
    if not totals:
        sys.exit("no Totals line in memtier output")
    out = [totals.get("Ops/sec", ""), totals.get("p50 Latency", ""),
           totals.get("p99 Latency", ""), totals.get("p99.9 Latency", ""),
           totals.get("Max Latency", "")]
    print(",".join(out))


def syscalls(requests=None):
    """Sums calls per syscall name over every table in strace -c -f or
    perf trace -s output (perf prints one table per thread); with `requests`,
    prints them per request."""
    counts = defaultdict(int)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        # strace -c: % time, seconds, usecs/call, calls, [errors], syscall
        if re.match(r"^[\d.]+$", parts[0]) and len(parts) >= 5 and not parts[-1][0].isdigit():
            if parts[-1] == "total":
                continue
            try:
                counts[parts[-1]] += int(parts[3])
            except ValueError:
                pass
            continue
        # perf trace -s: syscall, calls, errors, total, min, avg, max, stddev
        if len(parts) >= 7 and re.match(r"^[a-z_0-9]+$", parts[0]) and parts[1].isdigit():
            counts[parts[0]] += int(parts[1])
    rows = sorted(counts.items(), key=lambda kv: -kv[1])
    if requests is None:
        for name, n in rows:
            print(name, n)
        return
    total = sum(n for _, n in rows)
    print(f"{'syscall':24} {'calls':>10} {'per request':>12}")
    for name, n in rows[:15]:
        print(f"{name:24} {n:>10} {n / requests:12.4f}")
    print(f"{'all syscalls':24} {total:>10} {total / requests:12.4f}")
    enter = counts.get("io_uring_enter", 0)
    print()
    print(f"io_uring_enter per request: {enter / requests:.4f} "
          "(target: well under 1 at 50 connections, -P 1)")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "compare":
        compare(sys.argv[2])
    elif cmd == "bench-csv":
        bench_csv(sys.argv[2])
    elif cmd == "memtier":
        memtier()
    elif cmd == "syscalls":
        syscalls(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
