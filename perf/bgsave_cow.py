#!/usr/bin/env python3
"""Where a BGSAVE child's copy-on-write comes from (stdlib only; needs root for
the page frame numbers in /proc/PID/pagemap).

  bgsave_cow.py watch SERVER_PID OUT_FILE READY_FILE STOP_FILE [SAMPLE_MS]

1. Reads the server's page frame numbers (every present page of its writable
   private mappings) from /proc/SERVER_PID/pagemap, then creates READY_FILE:
   the caller issues BGSAVE only after that, so the snapshot is taken a few
   milliseconds before the fork.
2. Waits for the server's child, then every SAMPLE_MS (50) until the child
   exits (or STOP_FILE exists) reads the child's smaps (Private_Dirty per
   mapping) and its pagemap, and classifies every page the child has that it
   does not share with the server any more:
     child-new-mapping   in a mapping the server did not have (the child's
                         own mmaps: thread stacks, io_uring rings, big buffers)
     child-fresh-page    a page not present before the fork (the child's own
                         allocations in the server's arenas, faulted in fresh)
     child-wrote         the child's frame differs from the one before the
                         fork: the child wrote a shared page (its own buffers
                         or allocator metadata in memory it shares)
     parent-wrote        the child still has the frame from before the fork,
                         the server has another one now: the server wrote it
     parent-dropped      the child still has the old frame, the server has no
                         page there now (freed with MADV_DONTNEED, munmapped)
   per mapping label ([heap], [stack], anon mapping start, file).
   With COW_FAST=1 it only reads the child's Private_Dirty (smaps_rollup)
   every millisecond or so and writes its peak and time series: the true
   peak of a short-lived rise.
3. Writes to OUT_FILE the time series of smaps Private_Dirty (the figure Redis
   reports as current_cow_size) and the classification of the last complete
   sample before the child exited (its largest), per class and per mapping.

perf/bgsave.sh runs it when COW_BREAKDOWN=1.
"""

import array
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bgsave_probe import children_of  # noqa: E402

PAGE = 4096
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63


def read_maps(pid):
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5].strip() if len(parts) > 5 else ""
            if "w" in perms and "p" in perms:
                out.append((lo, hi, name))
    return out


def read_pfns(pid, lo, hi, fd=None):
    """array('Q') of pagemap entries for [lo, hi), or None."""
    own = fd is None
    try:
        if own:
            fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
        data = os.pread(fd, (hi - lo) // PAGE * 8, lo // PAGE * 8)
    except OSError:
        return None
    finally:
        if own and fd is not None:
            os.close(fd)
    a = array.array("Q")
    a.frombytes(data[: len(data) // 8 * 8])
    return a


KPF_ZERO_PAGE = 1 << 24


def is_zero_page(kfd, pfn):
    try:
        return int.from_bytes(os.pread(kfd, 8, pfn * 8), "little") & KPF_ZERO_PAGE != 0
    except OSError:
        return False


def snapshot(pid):
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    snap = {}
    try:
        for lo, hi, name in read_maps(pid):
            a = read_pfns(pid, lo, hi, fd)
            if a is not None:
                snap[lo] = (hi, name, a)
    finally:
        os.close(fd)
    return snap


def smaps_private_dirty(pid):
    """[(lo, hi, name, private_dirty_kib)] and the total."""
    rows, total, cur = [], 0, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = [lo, hi, parts[5].strip() if len(parts) > 5 else "", 0]
                rows.append(cur)
            elif first == "Private_Dirty:":
                kib = int(line.split()[1])
                cur[3] = kib
                total += kib
    return rows, total


def label(lo, hi, name):
    if name:
        return name
    return f"anon {lo:#x} ({(hi - lo) >> 20} MiB)"


def classify(child, parent, pre):
    """{class: {label: pages}} for the child's pages not shared with the parent."""
    out = {}
    runs = []
    out["runs"] = runs
    pw = []
    out["parent_wrote"] = pw

    def add(cls, lab, n=1):
        d = out.setdefault(cls, {})
        d[lab] = d.get(lab, 0) + n

    kfd = os.open("/proc/kpageflags", os.O_RDONLY)
    cfd = os.open(f"/proc/{child}/pagemap", os.O_RDONLY)
    pfd = os.open(f"/proc/{parent}/pagemap", os.O_RDONLY)
    try:
        for lo, hi, name in read_maps(child):
            lab = label(lo, hi, name)
            c = read_pfns(child, lo, hi, cfd)
            if c is None:
                continue
            # The pre-fork snapshot's mapping covering lo, if any (mappings may
            # have been split or merged since: look page by page).
            base = None
            for plo, (phi, _pname, pa) in pre.items():
                if plo <= lo < phi:
                    base = (plo, phi, pa)
                    break
            p = read_pfns(parent, lo, hi, pfd)
            if base is None:
                n = sum(1 for e in c if e & PRESENT)
                if n:
                    add("child-new-mapping", lab, n)
                continue
            plo, phi, pa = base
            off = (lo - plo) // PAGE
            for i, e in enumerate(c):
                if not e & PRESENT:
                    continue
                cpfn = e & PFN_MASK
                j = off + i
                before = pa[j] if lo + i * PAGE < phi and j < len(pa) else 0
                now = p[i] if p is not None and i < len(p) else 0
                if now & PRESENT and now & PFN_MASK == cpfn:
                    continue  # still shared
                if is_zero_page(kfd, cpfn):
                    continue  # a read of untouched memory: the zero page, not counted by smaps
                if not before & PRESENT:
                    add("child-fresh-page", lab)
                elif before & PFN_MASK != cpfn:
                    add("child-wrote", lab)
                    addr = lo + i * PAGE
                    if runs and runs[-1][1] == addr:
                        runs[-1][1] = addr + PAGE
                    else:
                        runs.append([addr, addr + PAGE])
                elif now & PRESENT:
                    add("parent-wrote", lab)
                    pw.append(lo + i * PAGE)
                else:
                    add("parent-dropped", lab)
    finally:
        os.close(cfd)
        os.close(pfd)
        os.close(kfd)
    return out


def page_kind(page):
    """A guess at what a page the server rewrote held before the fork, from
    its content (COW_RUNS=1): request bytes (receive buffers), the load's
    values (redis-benchmark's 'x' fill), keyspace slots (many 8-byte -1
    words: the expiry of keys without a TTL), or other."""
    if page.count(b"\r\n$") >= 4:
        return "requests"
    if page.count(b"x") >= len(page) // 2:
        return "values"
    words = array.array("q")
    words.frombytes(page[: len(page) // 8 * 8])
    if sum(1 for w in words if w == -1) >= 16:
        return "slots"
    if page.count(0) >= len(page) * 7 // 8:
        return "mostly-zero"
    return "other"


def rollup_private_dirty_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return 0


def fast_peak(child, out, stop, start):
    """COW_FAST=1: no classification, only the child's Private_Dirty read
    from smaps_rollup as often as it can be (~1-2 ms a read): the true peak,
    which the child's own samples (one per >= 100 ms, rdb_last_cow_size) and
    the classifying loop above (one per few hundred ms) can miss when it is
    short-lived (pages the child gives back once serialised)."""
    series = []
    while not os.path.exists(stop):
        try:
            kib = rollup_private_dirty_kib(child)
        except (OSError, ValueError):
            break
        series.append((time.time() - start, kib))
        time.sleep(0.001)
    if not series:
        out.write("child exited before the first sample\n")
        return
    t, peak = max(series, key=lambda s: s[1])
    out.write(f"fast samples: {len(series)} over {series[-1][0]:.2f} s; peak Private_Dirty {peak / 1024:.2f} MiB at {t:.3f} s; "
              f"last {series[-1][1] / 1024:.2f} MiB\n")
    step = max(1, len(series) // 40)
    out.write("series (s:MiB): " + " ".join(f"{t:.3f}:{k / 1024:.1f}" for t, k in series[::step]) + "\n")
    out.close()


def watch(server, out_path, ready, stop, sample_ms=50):
    t0 = time.time()
    pre = snapshot(server)
    snap_ms = (time.time() - t0) * 1000
    open(ready, "w").close()
    child = None
    deadline = time.time() + 30
    while child is None and time.time() < deadline and not os.path.exists(stop):
        kids = children_of(server)
        child = kids[0] if kids else None
        if child is None:
            time.sleep(0.005)
    out = open(out_path, "w")
    out.write(f"pre-fork snapshot of the server's pages: {sum(len(a) for _, _, a in pre.values())} entries in {snap_ms:.0f} ms\n")
    if child is None:
        out.write("no child seen\n")
        return
    start = time.time()
    series = []
    last = None
    if os.environ.get("COW_FAST"):
        fast_peak(child, out, stop, start)
        return
    while not os.path.exists(stop):
        try:
            rows, total = smaps_private_dirty(child)
            cls = classify(child, server, pre)
        except (OSError, AttributeError, IndexError, ValueError):
            break
        if not os.path.exists(f"/proc/{child}"):
            break
        series.append((time.time() - start, total))
        if os.environ.get("COW_RUNS"):
            top = sorted(cls["runs"], key=lambda r: r[0] - r[1])[:3]
            cls["heads"] = []
            cls["pw_heads"] = []
            pws = cls["parent_wrote"]
            try:
                with open(f"/proc/{child}/mem", "rb") as m:
                    for lo, _hi in top:
                        m.seek(lo)
                        cls["heads"].append((lo, m.read(96)))
                    for a in pws[:: max(1, len(pws) // 12)]:
                        m.seek(a)
                        cls["pw_heads"].append((a, m.read(4096)))
                    kinds = cls["pw_kinds"] = {}
                    for a in pws:
                        m.seek(a)
                        page = m.read(PAGE)
                        k = page_kind(page)
                        kinds[k] = kinds.get(k, 0) + 1
                        if k in ("mostly-zero", "other") and len(cls.setdefault("kind_samples", {}).setdefault(k, [])) < 3:
                            cls["kind_samples"][k].append((a, page))
            except OSError:
                pass
            if not cls["pw_heads"] and last is not None:
                cls["heads"] = last[3].get("heads", [])
                cls["pw_heads"] = last[3].get("pw_heads", [])
        last = (time.time() - start, rows, total, cls)
        time.sleep(sample_ms / 1000.0)
    out.write("child Private_Dirty over time (s, MiB): " +
              " ".join(f"{t:.2f}:{kib / 1024:.1f}" for t, kib in series) + "\n")
    if last is None:
        out.write("child exited before the first sample\n")
        return
    t, rows, total, cls = last
    out.write(f"\nlast complete sample at {t:.2f} s: smaps Private_Dirty {total / 1024:.1f} MiB\n")
    out.write("per mapping (Private_Dirty >= 64 KiB):\n")
    for lo, hi, name, kib in sorted(rows, key=lambda r: -r[3]):
        if kib >= 64:
            out.write(f"  {kib / 1024:8.2f} MiB  {label(lo, hi, name)}\n")
    out.write("pages not shared with the server, by cause (pagemap):\n")
    for c in ("child-new-mapping", "child-fresh-page", "child-wrote", "parent-wrote", "parent-dropped"):
        d = cls.get(c, {})
        n = sum(d.values())
        out.write(f"  {c:18} {n * PAGE / 1048576:8.2f} MiB\n")
        for lab, pages in sorted(d.items(), key=lambda kv: -kv[1])[:6]:
            if pages * PAGE >= 32768:
                out.write(f"      {pages * PAGE / 1048576:8.2f} MiB  {lab}\n")
    runs = sorted(cls.get("runs", []), key=lambda r: r[0] - r[1])
    if runs and os.environ.get("COW_RUNS"):
        out.write("largest runs of child-wrote pages: " + ", ".join(
            f"{lo:#x}+{(hi - lo) >> 10}K" for lo, hi in runs[:8]) + f" ({len(runs)} runs)\n")
        for lo, head in cls.get("heads", []):
            out.write(f"  {lo:#x}: {head!r}\n")
        kinds = cls.get("pw_kinds", {})
        if kinds:
            out.write("pages the server wrote, by their pre-fork content: " + ", ".join(
                f"{k} {v * PAGE / 1048576:.2f} MiB" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) + "\n")
        for k, pages in cls.get("kind_samples", {}).items():
            for a, page in pages:
                words = array.array("Q")
                words.frombytes(page)
                nz = [(i * 8, w) for i, w in enumerate(words) if w]
                out.write(f"  {k} {a:#x}: {len(nz)} non-zero words: " + " ".join(f"+{o}:{w:#x}" for o, w in nz[:12]) + "\n")
        out.write("pages the server wrote (the child's pre-fork copy), sampled:\n")
        for a, page in cls.get("pw_heads", []):
            out.write(f"  {a:#x}: {page[:160]!r}\n")
    out.close()


def main():
    if len(sys.argv) < 6 or sys.argv[1] != "watch":
        sys.exit(__doc__)
    watch(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5],
          int(sys.argv[6]) if len(sys.argv) > 6 else 50)


if __name__ == "__main__":
    main()
