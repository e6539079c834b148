#!/usr/bin/env python3
"""Concurrency checks from outside: ringkv (--shards N) and redis-server, the same checks on each.

A development tool like difffuzz.py (whose servers, RESP reader and seeds it reuses); a
short fixed-seed run is the integration test tests/concheck.rs. Every check is bounded
in time (--seconds per check) and stops by itself; seeds are fixed (--seed). Checks run
against each server in turn; those whose result is deterministic (keyspace events,
tracking) are also compared byte for byte between the two servers.

  watch     N clients: WATCH k.. / GET or MGET / MULTI / SET k v+1 .. / EXEC on counters of
            several shards, and WATCH k.. / MULTI / INCR k .. / EXEC in one write; each counter
            ends equal to the number of successful EXECs on it.
  torn      writers move value between keys of different shards (MULTI DECRBY/INCRBY EXEC,
            WATCH+EXEC, SMOVE, LMOVE, RENAME of a token, MSETNX/DEL of a pair, COPY .. REPLACE)
            while readers do MGET, EXEC of GETs, SUNION, EXEC of SCARD/LRANGE, EXISTS: every
            read sees the invariant (the sum, the set of elements, one token, equal pairs).
            With --aof (appendonly yes, appendfsync always) the server is then killed
            (SIGKILL) and restarted from the AOF, then SAVEd and restarted from the RDB
            alone: DEBUG DIGEST equal to the one before each restart.
  fanout    publishers on several connections PUBLISH/SPUBLISH tagged messages while
            subscribers on every shard (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE; RESP2 and RESP3)
            read: every subscriber sees every message once, each publisher's in its order,
            all in one same order; PUBLISH's count is the number of receivers.
  keyspace  notify-keyspace-events KEA, three subscribers (one RESP3), one client runs a fixed
            script of multi-shard EXECs, LMOVE, SMOVE, RENAME, MSETNX, COPY, ...: the events
            are compared byte for byte with redis-server's and between subscribers.
  blocking  waiters (BLPOP, BLMOVE, BZPOPMIN, BLMPOP) queue on a key (each seen blocked
            before the next), other clients serve them one element at a time (push, MULTI of
            pushes, RENAME into the key, LMOVE into the key, ZADD): the first waiter gets it
            within --wake-ms (100), the others stay blocked; then producers and consumers
            (BLPOP over four keys, BLMOVE into a sink) run free: nothing lost, nothing twice.
  tracking  CLIENT TRACKING (RESP3 default, BCAST PREFIX, RESP2 REDIRECT) readers; another
            client writes the keys (SET, MSET over shards, EXEC, RENAME, LMOVE, DEL, FLUSHDB):
            the invalidations each step produces are compared byte for byte with redis-server's
            (a BCAST client's by their keys: Redis groups the keys of one event-loop iteration
            in one message, ringkv those of one shard; a known difference).

    python3 tests/tools/concheck.py --seed 1
    python3 tests/tools/concheck.py --seed 2 --shards 5 --checks torn --aof --seconds 10
"""

import argparse
import os
import random
import select
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from difffuzz import ROOT, Closed, Conn, Proc, server_argv, show  # noqa: E402
from fuzzkit import seeds_of  # noqa: E402

CHECKS = ("watch", "torn", "fanout", "keyspace", "blocking", "tracking")


class Target:
    """One server: its name, port, and (when this tool started it) its process."""

    def __init__(self, name, port, proc):
        self.name, self.port, self.proc = name, port, proc

    def conn(self, resp3=False):
        c = Conn(self.port, timeout=20)
        if resp3:
            c.call(["HELLO", "3"])
        return c


class Report:
    def __init__(self, opts):
        self.opts = opts
        self.found = []
        self.lock = threading.Lock()

    def fail(self, check, target, msg):
        with self.lock:
            line = "FAIL %s on %s: %s" % (check, target, msg)
            print(line, flush=True)
            self.found.append(line)


def readable(c, wait):
    if len(c.buf) > c.pos:
        return True
    r, _, _ = select.select([c.sock], [], [], wait)
    return bool(r)


def drain(c, wait):
    """Every frame c receives until it has been quiet for `wait` seconds."""
    out = []
    while readable(c, wait):
        out.append(c.read_frame()[0])
    return out


def run_threads(fns):
    errs = []

    def wrap(f):
        try:
            f()
        except Exception as e:  # a thread's crash is a finding, not a hang
            errs.append("%s: %r" % (f.__name__, e))

    ts = [threading.Thread(target=wrap, args=(f,)) for f in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errs


def client(t, seed, resp3):
    """A seeded generator and a connection (RESP3 or not) for one thread."""
    return random.Random(seed), t.conn(resp3=resp3)


def num(v):
    return int(v[1]) if v[0] == "bulk" else 0


# ---------------------------------------------------------------- watch


def check_watch(t, rep, seed, secs):
    keys = ["cnt:%d" % i for i in range(8)]
    t.conn().call(["DEL"] + keys)
    done = [[0] * len(keys) for _ in range(6)]
    stop = time.time() + secs

    def worker(w):
        def run():
            rng, c = client(t, seed * 1000 + w, w % 2 == 1)
            while time.time() < stop:
                ks = rng.sample(range(len(keys)), rng.choice([1, 1, 2, 3]))
                names = [keys[i] for i in ks]
                if rng.random() < 0.3:
                    # WATCH, MULTI, INCRs and EXEC in one write (ringkv folds
                    # the other shards' WATCH into the EXEC).
                    cmds = [["WATCH"] + names, ["MULTI"]] + [["INCR", k] for k in names] + [["EXEC"]]
                    c.sock.sendall(b"".join(b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x.encode()) for x in a) for a in cmds))
                    r = [c.read_frame()[1] for _ in cmds][-1]
                    if r[0] == "array" and len(r[1]) == len(ks) and all(x[0] == "int" for x in r[1]):
                        for i in ks:
                            done[w][i] += 1
                    elif r[0] != "nil":
                        rep.fail("watch", t.name, "batched EXEC answered %r" % (r,))
                        return
                    continue
                c.call(["WATCH"] + names)
                if rng.random() < 0.5:
                    vals = c.call(["MGET"] + names)[1][1]
                else:
                    vals = [c.call(["GET", k])[1] for k in names]
                if rng.random() < 0.1:
                    c.call(["UNWATCH"])  # then EXEC runs regardless: counted as a success
                    c.call(["WATCH"] + names)
                    vals = c.call(["MGET"] + names)[1][1]
                c.call(["MULTI"])
                for k, v in zip(names, vals):
                    c.call(["SET", k, str(num(v) + 1)])
                _, r = c.call(["EXEC"])
                if r[0] in ("array",) and all(x == ("simple", b"OK") for x in r[1]):
                    for i in ks:
                        done[w][i] += 1
                elif r[0] != "nil":
                    rep.fail("watch", t.name, "EXEC answered %r" % (r,))
                    return
        run.__name__ = "watcher%d" % w
        return run

    errs = run_threads([worker(w) for w in range(6)])
    for e in errs:
        rep.fail("watch", t.name, e)
    final = [num(v) for v in t.conn().call(["MGET"] + keys)[1][1]]
    want = [sum(d[i] for d in done) for i in range(len(keys))]
    if final != want:
        rep.fail("watch", t.name, "counters %r, successful EXECs %r" % (final, want))
    return "EXECs %d" % sum(want)


# ---------------------------------------------------------------- torn reads

ACC = ["acc:%d" % i for i in range(6)]
SETS = ["set:%d" % i for i in range(5)]
LISTS = ["lst:%d" % i for i in range(5)]
TOKS = ["tok:%d" % i for i in range(5)]
ELEMS = ["e%d" % i for i in range(30)]
TOTAL = 100 * len(ACC)


def torn_setup(c):
    c.call(["FLUSHALL"])
    c.call(["MSET"] + [x for k in ACC for x in (k, "100")])
    for i, e in enumerate(ELEMS):
        c.call(["SADD", SETS[i % len(SETS)], e])
        c.call(["RPUSH", LISTS[i % len(LISTS)], e])
    c.call(["SET", TOKS[0], "token"])
    c.call(["MSET", "cp:a", "0", "cp:b", "0"])


def torn_write(c, rng):
    r = rng.randrange(10)
    a, b = rng.sample(range(6), 2)
    x = str(rng.randint(1, 20))
    if r == 0:
        c.call(["MULTI"])
        c.call(["DECRBY", ACC[a], x])
        c.call(["INCRBY", ACC[b], x])
        c.call(["EXEC"])
    elif r == 1:
        c.call(["WATCH", ACC[a], ACC[b]])
        va, vb = c.call(["MGET", ACC[a], ACC[b]])[1][1]
        c.call(["MULTI"])
        c.call(["SET", ACC[a], str(num(va) - int(x))])
        c.call(["SET", ACC[b], str(num(vb) + int(x))])
        c.call(["EXEC"])
    elif r == 2:
        c.call(["SMOVE", SETS[a % 5], SETS[b % 5], rng.choice(ELEMS)])
    elif r == 3:
        c.call(["LMOVE", LISTS[a % 5], LISTS[b % 5], rng.choice(["LEFT", "RIGHT"]), rng.choice(["LEFT", "RIGHT"])])
    elif r == 4:
        c.call(["RPOPLPUSH", LISTS[a % 5], LISTS[b % 5]])
    elif r == 5:
        c.call(["RENAME" if rng.random() < 0.7 else "RENAMENX", TOKS[a % 5], TOKS[b % 5]])
    elif r == 6:
        if c.call(["MSETNX", "mx:a", x, "mx:b", x])[1] != ("int", 1):
            c.call(["DEL", "mx:a", "mx:b"] if rng.random() < 0.5 else ["UNLINK", "mx:b", "mx:a"])
    elif r == 7:
        c.call(["MULTI"])
        c.call(["SET", "cp:a", x])
        c.call(["SET", "cp:b", x])
        c.call(["EXEC"])
    elif r == 8:
        c.call(["COPY", "cp:a", "cp:b", "REPLACE"] if rng.random() < 0.5 else ["COPY", "cp:b", "cp:a", "REPLACE"])
    else:
        c.call(["MULTI"])
        c.call(["SMOVE", SETS[a % 5], SETS[b % 5], rng.choice(ELEMS)])
        c.call(["LMOVE", LISTS[b % 5], LISTS[a % 5], "LEFT", "LEFT"])
        c.call(["EXEC"])


def torn_read(c, rng):
    """One read; a string naming what is torn, or None."""
    r = rng.randrange(8)
    if r == 0:
        v = c.call(["MGET"] + ACC)[1][1]
        s = sum(num(x) for x in v)
        return None if s == TOTAL else "MGET accounts sum %d" % s
    if r == 1:
        c.call(["MULTI"])
        for k in ACC:
            c.call(["GET", k])
        v = c.call(["EXEC"])[1][1]
        s = sum(num(x) for x in v)
        return None if s == TOTAL else "EXEC of GETs sum %d" % s
    if r == 2:
        v = c.call(["SUNION"] + SETS)[1]
        got = sorted(x[1].decode() for x in v[1])
        return None if got == sorted(ELEMS) else "SUNION has %d elements" % len(got)
    if r == 3:
        c.call(["MULTI"])
        for k in SETS:
            c.call(["SCARD", k])
        v = c.call(["EXEC"])[1][1]
        s = sum(x[1] for x in v)
        return None if s == len(ELEMS) else "EXEC of SCARDs sum %d" % s
    if r == 4:
        c.call(["MULTI"])
        for k in LISTS:
            c.call(["LRANGE", k, "0", "-1"])
        v = c.call(["EXEC"])[1][1]
        got = sorted(e[1].decode() for x in v for e in x[1])
        return None if got == sorted(ELEMS) else "EXEC of LRANGEs: %d elements %s" % (len(got), ",".join(got))
    if r == 5:
        n = c.call(["EXISTS"] + TOKS)[1]
        v = c.call(["MGET"] + TOKS)[1][1]
        held = [x for x in v if x[0] == "bulk"]
        if n != ("int", 1):
            return "EXISTS tokens %r" % (n,)
        return None if len(held) == 1 else "MGET tokens: %d held" % len(held)
    if r == 6:
        a, b = c.call(["MGET", "mx:a", "mx:b"])[1][1]
        return None if a == b else "MSETNX pair %r %r" % (a, b)
    a, b = c.call(["MGET", "cp:a", "cp:b"])[1][1]
    return None if a == b else "COPY pair %r %r" % (a, b)


def check_torn(t, rep, seed, secs, aof):
    torn_setup(t.conn())
    stop = time.time() + secs
    counts = {"writes": 0, "reads": 0}

    def writer(w):
        def run():
            rng, c = client(t, seed * 1000 + w, w % 2 == 0)
            while time.time() < stop:
                torn_write(c, rng)
                counts["writes"] += 1
        run.__name__ = "writer%d" % w
        return run

    def reader(w):
        def run():
            rng, c = client(t, seed * 1000 + 100 + w, w % 2 == 1)
            bad = 0
            while time.time() < stop:
                why = torn_read(c, rng)
                counts["reads"] += 1
                if why:
                    bad += 1
                    if bad <= 3:
                        rep.fail("torn", t.name, why)
        run.__name__ = "reader%d" % w
        return run

    errs = run_threads([writer(w) for w in range(4)] + [reader(w) for w in range(3)])
    for e in errs:
        rep.fail("torn", t.name, e)
    c = t.conn()
    for _ in range(16):
        why = torn_read(c, random.Random(0))
        if why:
            rep.fail("torn", t.name, "at rest: " + why)
            break
    note = "%d writes, %d reads" % (counts["writes"], counts["reads"])
    if aof and t.proc:
        note += "; " + restart_checks(t, rep)
    return note


def restart(t, rep):
    """Stops (SIGKILL) and starts t's server; a port still taken after the kill (a fork child
    that kept the listening socket) is a finding, waited out for 10 s."""
    t.proc.stop()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            Conn(t.port, timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    else:
        rep.fail("torn", t.name, "port %d still answers 10 s after SIGKILL" % t.port)
    t.proc.start()


def restart_checks(t, rep):
    """SIGKILL and restart from the AOF (appendfsync always: nothing acknowledged is lost),
    then SAVE and restart from the RDB alone: the digest is unchanged each time."""
    c = t.conn()
    before = c.call(["DEBUG", "DIGEST"])[0]
    c.close()
    restart(t, rep)
    c = t.conn()
    after = c.call(["DEBUG", "DIGEST"])[0]
    if after != before:
        rep.fail("torn", t.name, "digest after AOF restart %s, before %s" % (show(after), show(before)))
    if c.call(["SAVE"])[1] != ("simple", b"OK"):
        rep.fail("torn", t.name, "SAVE failed")
    c.close()
    argv = t.proc.argv
    t.proc.argv = argv + ["--appendonly", "no"]
    try:
        restart(t, rep)
        rdb = t.conn().call(["DEBUG", "DIGEST"])[0]
    finally:
        t.proc.argv = argv
        restart(t, rep)
    if rdb != before:
        rep.fail("torn", t.name, "digest after RDB restart %s, before %s" % (show(rdb), show(before)))
    return "AOF and RDB restarts: digest %s" % ("kept" if after == before == rdb else "CHANGED")


# ---------------------------------------------------------------- fan-out


def check_fanout(t, rep, seed, secs):
    rng = random.Random(seed)
    kinds = [("SUBSCRIBE", "fan"), ("PSUBSCRIBE", "fa*"), ("SSUBSCRIBE", "fan")]
    subs = []
    for i in range(12):
        kind, arg = kinds[i % 3]
        c = t.conn(resp3=(i // 3) % 2 == 1)
        c.call([kind, arg])
        subs.append((kind, c))
    normal = sum(1 for k, _ in subs if k != "SSUBSCRIBE")
    sharded = len(subs) - normal
    npub = 3
    per = 300 if secs < 3 else 1500
    counts = {}

    def publisher(p):
        def run():
            prng, c = client(t, seed * 100 + p, p == 1)
            sent = 0
            while sent < per:
                batch = prng.randint(1, 40)
                msgs = []
                for _ in range(min(batch, per - sent)):
                    cmd = "PUBLISH" if prng.random() < 0.6 else "SPUBLISH"
                    msgs.append((cmd, "p%d:%d" % (p, sent)))
                    sent += 1
                for cmd, m in msgs:
                    c.send([cmd, "fan", m])
                for cmd, m in msgs:
                    _, v = c.read_frame()
                    want = normal if cmd == "PUBLISH" else sharded
                    if v != ("int", want):
                        rep.fail("fanout", t.name, "%s answered %r, %d subscribers" % (cmd, v, want))
                        return
                    counts[cmd] = counts.get(cmd, 0) + 1
        run.__name__ = "publisher%d" % p
        return run

    got = [[] for _ in subs]

    def reader(i):
        def run():
            kind, c = subs[i]
            deadline = time.time() + secs + 30
            while time.time() < deadline:
                if not readable(c, 0.5):
                    if done[0]:
                        break
                    continue
                _, v = c.read_frame()
                got[i].append(v[1][-1][1].decode())
        run.__name__ = "subscriber%d" % i
        return run

    done = [False]
    ts = [threading.Thread(target=reader(i)) for i in range(len(subs))]
    for x in ts:
        x.start()
    errs = run_threads([publisher(p) for p in range(npub)])
    done[0] = True
    for x in ts:
        x.join()
    for e in errs:
        rep.fail("fanout", t.name, e)
    ref = {}
    for i, (kind, _) in enumerate(subs):
        group = "sharded" if kind == "SSUBSCRIBE" else "normal"
        seq = got[i]
        want = counts.get("SPUBLISH" if group == "sharded" else "PUBLISH", 0)
        if len(seq) != want or len(set(seq)) != len(seq):
            rep.fail("fanout", t.name, "subscriber %d (%s) got %d messages (%d distinct), %d published" % (i, kind, len(seq), len(set(seq)), want))
            continue
        for p in range(npub):
            mine = [int(m.split(":")[1]) for m in seq if m.startswith("p%d:" % p)]
            if mine != sorted(mine):
                rep.fail("fanout", t.name, "subscriber %d (%s): publisher %d's messages out of order" % (i, kind, p))
        if group not in ref:
            ref[group] = (i, seq)
        elif ref[group][1] != seq:
            j = next(k for k, (a, b) in enumerate(zip(ref[group][1], seq)) if a != b)
            rep.fail("fanout", t.name, "subscribers %d and %d (%s) differ at message %d: %s / %s" % (ref[group][0], i, kind, j, ref[group][1][j], seq[j]))
    for _, c in subs:
        c.close()
    return "%d PUBLISH, %d SPUBLISH to %d subscribers" % (counts.get("PUBLISH", 0), counts.get("SPUBLISH", 0), len(subs))


# ---------------------------------------------------------------- keyspace events

KS_SCRIPT = [
    ["MULTI"], ["SET", "a", "1"], ["LPUSH", "l", "x", "y", "z"], ["SADD", "s", "m", "n"], ["INCR", "n"],
    ["HSET", "h", "f", "v"], ["EXEC"],
    ["LMOVE", "l", "l2", "LEFT", "RIGHT"], ["RPOPLPUSH", "l", "l2"], ["LMOVE", "l", "l2", "RIGHT", "LEFT"],
    ["SMOVE", "s", "s2", "m"], ["SMOVE", "s", "s2", "n"], ["RENAME", "a", "b"], ["RENAME", "l2", "l3"],
    ["RENAMENX", "b", "h"], ["MSET", "a", "1", "c", "2", "d", "3"], ["MSETNX", "e", "1", "f", "2"],
    ["MSETNX", "e", "1", "g", "2"], ["COPY", "c", "g"], ["COPY", "h", "h2"], ["COPY", "d", "c", "REPLACE"],
    ["WATCH", "a"], ["MULTI"], ["DEL", "a", "c"], ["SUNIONSTORE", "s3", "s", "s2"], ["LMOVE", "l3", "s3", "LEFT", "LEFT"],
    ["EXPIRE", "d", "100"], ["PERSIST", "d"], ["EXEC"],
    ["MULTI"], ["RENAME", "l3", "q"], ["LPUSH", "q", "w"], ["SMOVE", "s2", "s4", "m"], ["INCRBY", "e", "5"], ["EXEC"],
    ["DEL", "e", "f", "g", "nokey"], ["UNLINK", "q", "s4"],
    ["MULTI"], ["SET", "u", "1"], ["GETDEL", "u"], ["RENAME", "h2", "h3"], ["HINCRBY", "h3", "f2", "1"], ["EXEC"],
    ["MULTI"], ["LPUSH", "z1", "a"], ["LMOVE", "z1", "z2", "LEFT", "LEFT"], ["LMOVE", "z2", "z1", "LEFT", "LEFT"],
    ["SET", "s", "x"], ["EXEC"],
    ["ZADD", "zs", "1", "a", "2", "b"], ["ZUNIONSTORE", "zd", "2", "zs", "nokey"], ["ZRANGESTORE", "zr", "zs", "0", "0"],
    ["SWAPDB", "0", "1"], ["SWAPDB", "0", "1"], ["MOVE", "zd", "1"], ["FLUSHDB"],
    # Last, so that it outlives no FLUSHDB: the GET after the script
    # expires it lazily on both servers (in the middle of the script it
    # was flushed by redis-server before active expiry met it, while a
    # slower run let ringkv's active expiry emit `expired` first).
    ["SET", "t", "v", "PX", "1"],
]


def check_keyspace(targets, rep, seed, secs):
    seqs = []
    for t in targets:
        c = t.conn()
        c.call(["FLUSHALL"])
        old = c.call(["CONFIG", "GET", "notify-keyspace-events"])[1][1][1][1]
        c.call(["CONFIG", "SET", "notify-keyspace-events", "KEA"])
        subs = []
        for i in range(3):
            s = t.conn(resp3=i == 2)
            s.call(["PSUBSCRIBE", "__key*__:*"])
            s.call(["SUBSCRIBE", "ks-end"])
            subs.append(s)
        for cmd in KS_SCRIPT:
            c.call(cmd)
        time.sleep(0.005)
        c.call(["GET", "t"])  # expired: its event, lazily
        c.call(["PUBLISH", "ks-end", "."])
        per = []
        for s in subs:
            evs = []
            deadline = time.time() + 5
            while time.time() < deadline:
                raw, v = s.read_frame()
                if b"ks-end" in raw:
                    break
                evs.append(raw)
            per.append(evs)
            s.close()
        c.call(["CONFIG", "SET", "notify-keyspace-events", old.decode()])
        c.call(["FLUSHALL"])
        for i in (1,):
            if per[i] != per[0]:
                rep.fail("keyspace", t.name, "subscribers 0 and %d saw different events" % i)
        seqs.append(per)
    if len(seqs) == 2:
        for i in (0, 2):
            a, b = seqs[0][i], seqs[1][i]
            if a != b:
                j = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                rep.fail("keyspace", "both", "subscriber %d (RESP%d): event %d: %s: %s / %s: %s (of %d / %d)" % (
                    i, 3 if i == 2 else 2, j, targets[0].name, show(a[j]) if j < len(a) else "-", targets[1].name,
                    show(b[j]) if j < len(b) else "-", len(a), len(b)))
    return "%d events" % len(seqs[0][0])


# ---------------------------------------------------------------- blocking


def blocked(side, cid):
    v = side.call(["CLIENT", "LIST", "ID", cid])[1]
    return v[0] == "bulk" and any(f.startswith("flags=") and "b" in f[6:] for f in v[1].decode().split())


def wait_blocked(side, cid):
    deadline = time.time() + 5
    while time.time() < deadline:
        if blocked(side, cid):
            return True
        time.sleep(0.001)
    return False


def check_blocking(t, rep, seed, secs, wake_ms):
    rng = random.Random(seed)
    side = t.conn()
    side.call(["FLUSHALL"])
    feeders = [t.conn(resp3=i % 2 == 1) for i in range(4)]
    pool = [t.conn(resp3=i % 2 == 0) for i in range(9)]
    ids = [str(c.call(["CLIENT", "ID"])[1][1]) for c in pool]
    lat = []
    rounds = 0
    stop = time.time() + secs
    n = 0
    while time.time() < stop or rounds < 4:
        rounds += 1
        zset = rng.random() < 0.25
        key = "bk:%d" % rng.randrange(6)
        waiters = rng.sample(range(len(pool)), 3)
        cmds = []
        for w in waiters:
            if zset:
                cmd = ["BZPOPMIN", key, "0"]
            else:
                cmd = rng.choice([["BLPOP", key, "0"], ["BLMOVE", key, "dst:%d" % w, "LEFT", "RIGHT", "0"],
                                  ["BLMPOP", "0", "2", "nokey", key, "LEFT"], ["BRPOP", "nokey", key, "0"]])
            pool[w].send(cmd)
            if not wait_blocked(side, ids[w]):
                rep.fail("blocking", t.name, "%s not blocked" % cmd[0])
                return "gave up"
            cmds.append(cmd)
        for k, w in enumerate(waiters):
            n += 1
            el = "v%d" % n
            f = rng.choice(feeders)
            how = rng.randrange(5)
            if zset:
                if how in (2, 3):
                    f.call(["ZADD", "zsrc", "1", el])
                    t0 = time.time()
                    f.call(["RENAME", "zsrc", key])
                elif how == 1:
                    t0 = time.time()
                    f.call(["MULTI"])
                    f.call(["ZADD", key, "1", el])
                    f.call(["EXEC"])
                else:
                    t0 = time.time()
                    f.call(["ZADD", key, str(n), el])
            elif how == 0:
                t0 = time.time()
                f.call(["RPUSH", key, el])
            elif how == 1:
                t0 = time.time()
                f.call(["MULTI"])
                f.call(["SET", "other:%d" % n, "x"])
                f.call(["LPUSH", key, el])
                f.call(["EXEC"])
            elif how == 2:
                f.call(["RPUSH", "src:%d" % n, el])
                t0 = time.time()
                f.call(["RENAME", "src:%d" % n, key])
            elif how == 3:
                f.call(["RPUSH", "src:%d" % n, el])
                t0 = time.time()
                f.call(["LMOVE", "src:%d" % n, key, "LEFT", "RIGHT"])
            else:
                t0 = time.time()
                f.call(["EVAL", "return redis.call('RPUSH', KEYS[1], ARGV[1])", "1", key, el])
            c = pool[w]
            if not readable(c, 2.0):
                rep.fail("blocking", t.name, "waiter %d (%s on %s) not woken by push %d" % (k, cmds[k][0], key, how))
                return "gave up"
            ms = (time.time() - t0) * 1000
            lat.append(ms)
            _, v = c.read_frame()
            if el.encode() not in repr(v).encode():
                rep.fail("blocking", t.name, "waiter %d (%s) got %r, expected %s (FCFS)" % (k, cmds[k][0], v, el))
            if ms > wake_ms:
                rep.fail("blocking", t.name, "waiter %d (%s on %s) woken after %.1f ms (push kind %d)" % (k, cmds[k][0], key, ms, how))
            for w2 in waiters[k + 1:]:
                if readable(pool[w2], 0):
                    rep.fail("blocking", t.name, "a later waiter answered before its turn")
    note = "%d wake-ups, max %.1f ms" % (len(lat), max(lat) if lat else 0)
    for c in pool + feeders:
        c.close()
    return note + "; " + blocking_free(t, rep, seed, min(secs, 5))


def blocking_free(t, rep, seed, secs):
    """Producers and consumers run free: every element comes out exactly once."""
    keys = ["q:%d" % i for i in range(4)]
    side = t.conn()
    side.call(["DEL", "sink"] + keys)
    produced = []
    consumed = []
    stop = time.time() + secs
    prod_done = [0]

    def producer(p):
        def run():
            rng, c = client(t, seed * 10 + p, p == 1)
            i = 0
            while time.time() < stop:
                els = ["p%d-%d" % (p, i + j) for j in range(rng.randint(1, 3))]
                i += len(els)
                k = rng.choice(keys)
                r = rng.choice(PRODUCE)
                if r == 0:
                    c.call(["RPUSH", k] + els)
                elif r == 1:
                    c.call(["MULTI"])
                    for e in els:
                        c.call(["LPUSH", rng.choice(keys), e])
                    c.call(["EXEC"])
                else:
                    st = "stage:%d" % p
                    c.call(["RPUSH", st] + els)
                    for _ in els:
                        c.call(["LMOVE", st, rng.choice(keys), "LEFT", "RIGHT"])
                produced.extend(els)
                if rng.random() < 0.3:
                    time.sleep(0.001)
            prod_done[0] += 1
        run.__name__ = "producer%d" % p
        return run

    def consumer(q):
        def run():
            rng, c = client(t, seed * 10 + 50 + q, q % 2 == 0)
            mine = []
            last = [None]
            orig = c.call

            def call(args):
                last[0] = args
                try:
                    return orig(args)
                except Closed as e:
                    raise Closed("%s (no reply to %s)" % (e, " ".join(args)))
            c.call = call
            while True:
                ks = rng.sample(keys, rng.randint(1, 4))
                if q == 0:
                    v = c.call(["BLMOVE", ks[0], "sink", "LEFT", "RIGHT", "0.2"])[1]
                    if v[0] == "bulk":
                        continue  # counted from the sink at the end
                elif q == 1:
                    v = c.call(["BLMPOP", "0.2", str(len(ks))] + ks + ["RIGHT", "COUNT", "2"])[1]
                    if v[0] in ("array", "map") and v[1]:
                        arr = v[1][1][1] if v[0] == "array" else v[1][0][1][1]
                        mine.extend(x[1].decode() for x in arr)
                        continue
                else:
                    v = c.call(["BLPOP"] + ks + ["0.2"])[1]
                    if v[0] in ("array", "map") and v[1]:
                        mine.append((v[1][1] if v[0] == "array" else v[1][0][1])[1].decode())
                        continue
                if v[0] == "nil" and prod_done[0] == 3:
                    break
            consumed.extend(mine)
        run.__name__ = "consumer%d" % q
        return run

    errs = run_threads([producer(p) for p in range(3)] + [consumer(q) for q in range(4)])
    for e in errs:
        rep.fail("blocking", t.name, e)
    left = []
    for k in keys:
        left += [x[1].decode() for x in side.call(["LRANGE", k, "0", "-1"])[1][1]]
    sink = [x[1].decode() for x in side.call(["LRANGE", "sink", "0", "-1"])[1][1]]
    out = consumed + sink + left
    if sorted(out) != sorted(produced):
        lost = set(produced) - set(out)
        twice = len(out) - len(set(out))
        rep.fail("blocking", t.name, "free run: %d produced, %d out (%d lost e.g. %s, %d twice)" % (
            len(produced), len(out), len(lost), sorted(lost)[:3], twice))
    return "free run %d elements" % len(produced)


# ---------------------------------------------------------------- tracking

PRODUCE = (0, 1, 2)  # RPUSH, an EXEC of LPUSHes over shards, LMOVE from a staging list
TR_KEYS = ["tk:%d" % i for i in range(6)]


def tracking_steps():
    k = TR_KEYS
    return [
        ["SET", k[0], "1"], ["MSET", k[1], "1", k[2], "2", k[3], "3"],
        ["MULTI"], ["SET", k[4], "x"], ["INCR", k[1]], ["DEL", k[5]], ["EXEC"],
        ["RENAME", k[2], k[5]], ["RPUSH", "tl", "a"], ["LMOVE", "tl", k[3], "LEFT", "LEFT"],
        ["SET", k[3], "s"], ["DEL", k[0], k[1], k[4]], ["MSETNX", k[0], "1", "other", "2"],
        ["COPY", k[0], k[1]], ["EXPIRE", k[1], "100"], ["SET", "unrelated", "1"], ["FLUSHDB"],
    ]


def tracking_run(t, expect=None):
    """The invalidation frames each reader has after each step of tracking_steps. With
    `expect` (another server's run) a reader is given up to 2 s to get as many frames."""
    c = t.conn()
    c.call(["FLUSHALL"])
    w = t.conn()
    r3 = t.conn(resp3=True)
    r3.call(["CLIENT", "TRACKING", "ON"])
    bc = t.conn(resp3=True)
    bc.call(["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "tk:"])
    redir_sub = t.conn()
    rid = str(redir_sub.call(["CLIENT", "ID"])[1][1])
    redir_sub.call(["SUBSCRIBE", "__redis__:invalidate"])
    r2 = t.conn()
    r2.call(["CLIENT", "TRACKING", "ON", "REDIRECT", rid])
    readers = [("resp3", r3, r3), ("bcast", bc, bc), ("redirect", r2, redir_sub)]
    out = []
    for n, step in enumerate(tracking_steps()):
        if step[0] not in ("MULTI",):
            for k in TR_KEYS:
                for _, rc, _ in readers[::2]:
                    rc.call(["GET", k])
        w.call(step)
        frames = []
        for i, (name, _, sink) in enumerate(readers):
            got = []
            want = len(expect[n][1][i][1]) if expect else 0
            deadline = time.time() + 2
            while len(got) < want and time.time() < deadline:
                if readable(sink, 0.05):
                    got.append(sink.read_frame()[0])
            frames.append((name, got + drain(sink, 0.05)))
        out.append((step, frames))
    for x in (c, w, r3, bc, redir_sub, r2):
        x.close()
    return out


def check_tracking(targets, rep, seed, secs):
    runs = [tracking_run(targets[-1])]
    if len(targets) == 2:
        runs.insert(0, tracking_run(targets[0], runs[0]))
    n = 0
    if len(runs) == 2:
        for (step, fa), (_, fb) in zip(runs[0], runs[1]):
            for (name, a), (_, b) in zip(fa, fb):
                n += len(b)
                # Redis sends a BCAST client the keys of one prefix modified in one event-loop
                # iteration as one invalidation; ringkv, one per shard that modified them: the
                # keys are compared, not how they are grouped (a known difference).
                if a != b and (name != "bcast" or bcast_keys(a) != bcast_keys(b)):
                    rep.fail("tracking", "both", "after %s, %s reader: %s: %s / %s: %s" % (
                        " ".join(step), name, targets[0].name, [show(x) for x in a], targets[1].name, [show(x) for x in b]))
    return "%d invalidation frames" % n


def bcast_keys(frames):
    """The keys of a BCAST client's invalidations, sorted."""
    keys = []
    for f in frames:
        parts = f.split(b"\r\n")
        keys += [p for i, p in enumerate(parts) if i >= 4 and p and not p.startswith((b"$", b"*"))]
    return sorted(keys)


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help="e.g. 1-5 or 3,5")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each timed check")
    ap.add_argument("--checks", default=",".join(CHECKS))
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--aof", action="store_true", help="appendonly yes, appendfsync always; torn then restarts")
    ap.add_argument("--wake-ms", type=float, default=100.0, help="longest wake-up allowed to a blocked client")
    ap.add_argument("--ringkv", default=os.path.join(ROOT, "target", "release", "ringkv"))
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--ringkv-port", type=int, default=7180)
    ap.add_argument("--redis-port", type=int, default=7280)
    ap.add_argument("--only", choices=("ringkv", "redis"), help="run against one server")
    opts = ap.parse_args()
    checks = [c for c in opts.checks.split(",") if c]
    for c in checks:
        if c not in CHECKS:
            ap.error("unknown check %s (%s)" % (c, ", ".join(CHECKS)))
    import tempfile
    import shutil
    workdir = tempfile.mkdtemp(prefix="concheck.")
    extra = ["--appendonly", "yes", "--appendfsync", "always"] if opts.aof else []
    targets = []
    rep = Report(opts)
    try:
        for kind, binary, port in (("ringkv", opts.ringkv, opts.ringkv_port), ("redis", opts.redis_server, opts.redis_port)):
            if opts.only and opts.only != kind:
                continue
            d = os.path.join(workdir, kind)
            os.mkdir(d)
            p = Proc(kind, server_argv(kind, binary, port, d, extra, opts.shards), port, d)
            p.start()
            targets.append(Target(kind, port, p))
        for seed in seeds_of(opts):
            print("seed %d, ringkv --shards %d%s" % (seed, opts.shards, ", AOF always" if opts.aof else ""), flush=True)
            for check in checks:
                if check in ("keyspace", "tracking"):
                    fn = check_keyspace if check == "keyspace" else check_tracking
                    print("  %-9s %s" % (check, fn(targets, rep, seed, opts.seconds)), flush=True)
                    continue
                for t in targets:
                    t0 = time.time()
                    if check == "watch":
                        note = check_watch(t, rep, seed, opts.seconds)
                    elif check == "torn":
                        note = check_torn(t, rep, seed, opts.seconds, opts.aof)
                    elif check == "fanout":
                        note = check_fanout(t, rep, seed, opts.seconds)
                    else:
                        note = check_blocking(t, rep, seed, opts.seconds, opts.wake_ms)
                    print("  %-9s %-6s %s (%.1f s)" % (check, t.name, note, time.time() - t0), flush=True)
                for t in targets:
                    if not t.proc.alive():
                        rep.fail(check, t.name, "server died (log in %s)" % t.proc.workdir)
                        raise SystemExit(2)
    except Closed as e:
        rep.fail("-", "-", "connection: %s" % e)
    finally:
        for t in targets:
            t.proc.stop()
        if rep.found:
            print("server logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("%d findings" % len(rep.found))
    sys.exit(1 if rep.found else 0)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
