#!/usr/bin/env python3
"""Summaries of the side-by-side runs (ringkv, optional base build, redis).

  side_by_side.py cpu RAW.csv         perf/kernel_cpu.sh: user/kernel us per request
  side_by_side.py saturated RAW.csv   perf/saturated.sh: req/s per server core
"""

import csv
import statistics
import sys
from collections import defaultdict


def load(path, key):
    rows = list(csv.DictReader(open(path)))
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return rows, groups


def med(rows, field):
    vals = [float(r[field]) for r in rows if r.get(field, "") not in ("", "-")]
    return statistics.median(vals) if vals else float("nan")


def ratio(a, b):
    return a / b if b else float("nan")


def others(servers):
    return [o for o in ("redis", "base") if o in servers and "ringkv" in servers]


def cpu(path):
    rows, g = load(path, lambda r: (r["test"], int(r["pipeline"]), r["server"]))
    print(f"Medians over {len({r['round'] for r in rows})} rounds (user/kernel = server CPU us per request)")
    faults = all(r.get("faults") for r in rows)
    # perf/kernel_cpu.sh SAMPLE_US=: user/kernel from cpu-clock samples.
    sampled = all(r.get("user_smp") for r in rows)
    print(f"{'test':5} {'P':>3} {'server':7} {'req/s':>10} {'user':>7} {'kernel':>7} {'total':>7} {'sleeps/req':>10}" + (f" {'faults/req':>10}" if faults else "")
          + (f" {'user_smp':>8} {'sys_smp':>8}" if sampled else ""))
    for (test, p, server), rs in sorted(g.items()):
        u, s = med(rs, "user_us"), med(rs, "sys_us")
        f = f" {med(rs, 'faults'):>10.4f}" if faults else ""
        f += f" {med(rs, 'user_smp'):>8.3f} {med(rs, 'sys_smp'):>8.3f}" if sampled else ""
        print(f"{test:5} {p:>3} {server:7} {med(rs, 'rps'):>10,.0f} {u:>7.3f} {s:>7.3f} {u + s:>7.3f} {med(rs, 'sleeps'):>10.3f}" + f)
    if sampled:
        print("(user_smp, sys_smp: us per request from perf's cpu-clock samples, SAMPLE_US; user, kernel: /proc's tick-sampled split)")
    print()
    for other in others({s for _, _, s in g}):
        print(f"ratios ringkv/{other} (medians):")
        for test, p in sorted({(t, p) for t, p, _ in g}):
            a, b = g.get((test, p, "ringkv")), g.get((test, p, other))
            if not a or not b:
                continue
            r = lambda k: ratio(med(a, k), med(b, k))
            tot = ratio(med(a, "user_us") + med(a, "sys_us"), med(b, "user_us") + med(b, "sys_us"))
            smp = f"  sampled user {r('user_smp'):.2f}x  kernel {r('sys_smp'):.2f}x" if sampled else ""
            print(f"  {test} P{p}: req/s {r('rps'):.2f}x  user {r('user_us'):.2f}x  kernel {r('sys_us'):.2f}x  total {tot:.2f}x" + smp)


def saturated(path):
    rows, g = load(path, lambda r: r["server"])
    print(f"Unpipelined, saturating load ({rows[0]['tool']}), medians over {len({r['round'] for r in rows})} rounds")
    print(f"{'server':7} {'req/s':>10} {'server CPU %':>12} {'req/s/core':>11}")
    for s in sorted(g):
        print(f"{s:7} {med(g[s], 'rps'):>10,.0f} {med(g[s], 'cpu_share'):>12.1f} {med(g[s], 'rps_per_core'):>11,.0f}")
    for other in others(set(g)):
        print(f"ringkv/{other}: req/s {ratio(med(g['ringkv'], 'rps'), med(g[other], 'rps')):.2f}x, "
              f"req/s per server core {ratio(med(g['ringkv'], 'rps_per_core'), med(g[other], 'rps_per_core')):.2f}x")


if __name__ == "__main__":
    {"cpu": cpu, "saturated": saturated}[sys.argv[1]](sys.argv[2])
