#!/usr/bin/env python3
"""Sampler and report for perf/bgsave.sh (stdlib only).

  bgsave_probe.py probe PORT SERVER_PID OUT_PREFIX STOP_FILE [SAMPLE_MS]
      Runs until STOP_FILE exists. On one connection it issues SET requests back
      to back (a closed-loop latency probe: a stall of the server, such as the
      fork, shows up as one slow request); every SAMPLE_MS (100) it writes a row
      to OUT_PREFIX-samples.csv:
        t (unix s), rss_parent_mib, rss_children_mib, child_count,
        bgsave_in_progress (-1 when INFO is not available), current_cow_size_mib,
        probe_requests, probe_p50_ms, probe_p99_ms, probe_max_ms
      and every single probe latency to OUT_PREFIX-probe.csv (t, latency_us).

  bgsave_probe.py report OUT_PREFIX EVENTS_FILE
      Prints probe latency before / during / after the snapshot window and the
      sampled peaks, using the bgsave_issued / bgsave_done times in EVENTS_FILE.
"""

import os
import socket
import sys
import time


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            return Exception(rest.decode(errors="replace"))
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(f"unexpected reply {line!r}")


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def children_of(pid):
    """PIDs whose parent is `pid` (/proc/PID/task/*/children is not always built in)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            kids.append(int(name))
    return kids


def info_fields(conn, section):
    reply = conn.call("INFO", section)
    if not isinstance(reply, bytes):
        return {}
    out = {}
    for line in reply.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def probe(port, server_pid, prefix, stop_file, sample_ms=100):
    conn = Conn(port)
    info = Conn(port)
    value = b"p" * 64
    samples = open(prefix + "-samples.csv", "w")
    samples.write("t,rss_parent_mib,rss_children_mib,child_count,bgsave_in_progress,"
                  "current_cow_size_mib,probe_requests,probe_p50_ms,probe_p99_ms,probe_max_ms\n")
    raw = open(prefix + "-probe.csv", "w")
    raw.write("t,latency_us\n")
    period = sample_ms / 1000.0
    next_sample = time.time() + period
    window = []
    while not os.path.exists(stop_file):
        t0 = time.perf_counter()
        reply = conn.call("SET", "bgsave:probe", value)
        lat_us = (time.perf_counter() - t0) * 1e6
        if isinstance(reply, Exception):
            sys.exit(f"probe SET failed: {reply}")
        now = time.time()
        window.append(lat_us)
        raw.write(f"{now:.6f},{lat_us:.1f}\n")
        if now >= next_sample:
            kids = children_of(server_pid)
            fields = info_fields(info, "persistence")
            in_progress = int(fields.get("rdb_bgsave_in_progress", -1))
            cow = int(fields.get("current_cow_size", 0)) / 1048576.0
            window.sort()
            samples.write(
                f"{now:.3f},{rss_mib(server_pid):.1f},{sum(rss_mib(k) for k in kids):.1f},"
                f"{len(kids)},{in_progress},{cow:.1f},{len(window)},"
                f"{percentile(window, 50) / 1000:.3f},{percentile(window, 99) / 1000:.3f},"
                f"{window[-1] / 1000:.3f}\n")
            samples.flush()
            window = []
            next_sample = now + period
    samples.close()
    raw.close()


def read_events(path):
    events = {}
    for line in open(path):
        parts = line.split()
        if len(parts) == 2:
            events[parts[0]] = float(parts[1])
    return events


def report(prefix, events_path):
    ev = read_events(events_path)
    start, end = ev.get("bgsave_issued"), ev.get("bgsave_done")
    phases = {"before": [], "during": [], "after": []}
    with open(prefix + "-probe.csv") as f:
        next(f)
        for line in f:
            t, lat = line.split(",")
            t, lat = float(t), float(lat)
            phase = "before" if t < start else ("during" if end is None or t <= end else "after")
            phases[phase].append(lat)
    print("probe latency (one connection, back-to-back SET, closed loop):")
    print(f"  {'phase':8} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}")
    for name, values in phases.items():
        values.sort()
        if not values:
            print(f"  {name:8} {0:>9}")
            continue
        print(f"  {name:8} {len(values):>9} {percentile(values, 50) / 1000:>8.3f} "
              f"{percentile(values, 99) / 1000:>8.3f} {percentile(values, 99.9) / 1000:>9.3f} "
              f"{values[-1] / 1000:>8.3f}")
    peak_parent = peak_children = peak_cow = 0.0
    base_rss = None
    with open(prefix + "-samples.csv") as f:
        header = next(f).strip().split(",")
        for line in f:
            row = dict(zip(header, line.strip().split(",")))
            t = float(row["t"])
            if t < start:
                base_rss = float(row["rss_parent_mib"])
            peak_parent = max(peak_parent, float(row["rss_parent_mib"]))
            peak_children = max(peak_children, float(row["rss_children_mib"]))
            peak_cow = max(peak_cow, float(row["current_cow_size_mib"]))
    print(f"sampled: parent RSS before {base_rss or 0:.1f} MiB, peak {peak_parent:.1f} MiB; "
          f"child RSS peak {peak_children:.1f} MiB; current_cow_size peak {peak_cow:.1f} MiB")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "probe":
        probe(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5],
              int(sys.argv[6]) if len(sys.argv) > 6 else 100)
    elif sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
