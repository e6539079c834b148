#!/usr/bin/env python3
"""Differential RESTORE fuzzer: mutated DUMP payloads against ringkv and
redis-server 7.0 (`sanitize-dump-payload yes`).

A development tool, not part of `cargo test` (its finds become cases in
tests/restore_hostile.rs). It builds valid payloads of every type and
encoding on redis-server (DUMP of strings raw/int/LZF, list listpack and
quicklist 2 with compressed nodes, set intset/hashtable, zset listpack/
skiplist, hash listpack/hashtable, streams with several listpacks, deleted
entries, consumer groups and a PEL) plus payloads it writes itself for the
encodings Redis 7.0 no longer writes (plain list/set/zset/hash, zipmap,
ziplists, quicklist 1 of ziplists) and for types 7.0 does not know (module 2,
stream listpacks 3, the hash-field-expiry types of 7.4). Each is mutated (bit
flips, bytes set to edge values, truncation, insertion, deletion, a length
field set huge, a chunk duplicated), the CRC is fixed up so the parser is
reached, and RESTORE is sent to both servers. The verdicts must agree: the
same error text, or both OK and then the same TYPE, DEBUG DIGEST-VALUE and
replies of the type's read commands. ringkv must survive every payload, and
its peak RSS (VmHWM) must stay bounded (--max-hwm-mb).

    python3 tests/tools/restorefuzz.py --seed 1 --count 20000
    python3 tests/tools/restorefuzz.py --seeds 1-20 --count 5000 --stop-on-first
"""

import argparse
import os
import random
import shutil
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from difffuzz import Closed, Conn, show  # noqa: E402
from fuzzkit import common_args, hwm_kb, seeds_of, start_pair, stop_pair  # noqa: E402

# ---------------------------------------------------------------- CRC-64 (Jones, reflected), Redis's crc64.c

_POLY = 0x95AC9329AC4BC9B5
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc64(data, crc=0):
    t = _TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def footer(body, version=10):
    b = body + struct.pack("<H", version)
    return b + struct.pack("<Q", crc64(b))


# ---------------------------------------------------------------- RDB encoders for the old encodings


def rdb_len(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def rdb_str(s):
    return rdb_len(len(s)) + s


def zl_entry(prevlen, v):
    pre = bytes([prevlen]) if prevlen < 254 else b"\xfe" + struct.pack("<I", prevlen)
    try:
        n = int(v)
        if str(n).encode() != v:
            raise ValueError
    except ValueError:
        n = None
    if n is not None and -(1 << 63) <= n < (1 << 63):
        if 0 <= n <= 12:
            enc = bytes([0xF1 + n])
        elif -128 <= n < 128:
            enc = b"\xfe" + struct.pack("<b", n)
        elif -32768 <= n < 32768:
            enc = b"\xc0" + struct.pack("<h", n)
        elif -(1 << 23) <= n < (1 << 23):
            enc = b"\xf0" + struct.pack("<i", n)[:3]
        elif -(1 << 31) <= n < (1 << 31):
            enc = b"\xd0" + struct.pack("<i", n)
        else:
            enc = b"\xe0" + struct.pack("<q", n)
    elif len(v) < 64:
        enc = bytes([len(v)]) + v
    elif len(v) < 16384:
        enc = bytes([0x40 | (len(v) >> 8), len(v) & 0xFF]) + v
    else:
        enc = b"\x80" + struct.pack(">I", len(v)) + v
    return pre + enc


def ziplist(items):
    body = b""
    prev = 0
    tail = 10
    for v in items:
        e = zl_entry(prev, v)
        tail = 10 + len(body)
        body += e
        prev = len(e)
    total = 10 + len(body) + 1
    return struct.pack("<IIH", total, tail, min(len(items), 65535)) + body + b"\xff"


def zipmap(pairs):
    out = bytes([min(len(pairs), 254)])
    for f, v in pairs:
        out += bytes([len(f)]) + f + bytes([len(v)]) + b"\x00" + v
    return out + b"\xff"


def intset(vals):
    w = 2
    for v in vals:
        if not -(1 << 15) <= v < (1 << 15):
            w = max(w, 4)
        if not -(1 << 31) <= v < (1 << 31):
            w = 8
    fmt = {2: "<h", 4: "<i", 8: "<q"}[w]
    vals = sorted(set(vals))
    return struct.pack("<II", w, len(vals)) + b"".join(struct.pack(fmt, v) for v in vals)


def handmade():
    """Payloads of the encodings and types Redis 7.0 does not write."""
    items = [b"a", b"12", b"-5", b"300", b"70000", b"5000000000", b"x" * 70, b"", b"hello"]
    out = {}
    out["list-plain"] = b"\x01" + rdb_len(len(items)) + b"".join(rdb_str(v) for v in items)
    out["set-plain"] = b"\x02" + rdb_len(4) + b"".join(rdb_str(v) for v in [b"a", b"b", b"1", b"zz"])
    out["zset-plain"] = b"\x03" + rdb_len(3) + b"".join(rdb_str(m) + rdb_str(s) for m, s in [(b"a", b"1.5"), (b"b", b"inf"), (b"c", b"-3")])
    out["hash-plain"] = b"\x04" + rdb_len(2) + rdb_str(b"f") + rdb_str(b"v") + rdb_str(b"g") + rdb_str(b"1")
    out["zipmap"] = b"\x09" + rdb_str(zipmap([(b"f1", b"v1"), (b"f2", b"22"), (b"name", b"x" * 20)]))
    out["list-ziplist"] = b"\x0a" + rdb_str(ziplist(items))
    out["set-intset"] = b"\x0b" + rdb_str(intset([1, -7, 300, 70000]))
    out["set-intset64"] = b"\x0b" + rdb_str(intset([5, 1 << 40, -(1 << 62)]))
    out["zset-ziplist"] = b"\x0c" + rdb_str(ziplist([b"a", b"1", b"b", b"2.5", b"c", b"100"]))
    out["hash-ziplist"] = b"\x0d" + rdb_str(ziplist([b"f", b"v", b"n", b"12", b"long", b"y" * 80]))
    out["list-quicklist1"] = b"\x0e" + rdb_len(2) + rdb_str(ziplist(items[:4])) + rdb_str(ziplist(items[4:]))
    out["module2"] = b"\x07" + rdb_len(0x1234567890ABC00) + b"\x05\x02\x00"
    out["hash-meta"] = b"\x18" + rdb_len(1) + rdb_str(b"f") + rdb_str(b"v")
    out["hash-lpex"] = b"\x19" + rdb_len(0) + rdb_str(b"\x00")
    out["hash-meta-pre"] = b"\x16" + rdb_len(1) + rdb_str(b"f") + rdb_str(b"v")
    out["hash-lpex-pre"] = b"\x17" + rdb_str(b"\x00")
    out["set-listpack"] = b"\x14" + rdb_str(b"\x0a\x00\x00\x00\x01\x00\x81a\x02\xff")
    return {k: footer(v) for k, v in out.items()}


# ---------------------------------------------------------------- valid payloads from redis-server


def redis_made(c):
    """DUMP payloads of every type and encoding Redis 7.0 writes."""
    return dict(redis_made_keys(c, keep=False))


def redis_made_keys(c, keep=True):
    """(name, DUMP payload) of every type and encoding Redis 7.0 writes; with
    `keep`, each value also stays in redis-server under its name."""
    out = {}

    def cfg(k, v):
        c.call(["CONFIG", "SET", k, v])

    def dump(name, *cmds):
        c.call(["DEL", "src"])
        for cmd in cmds:
            c.call(list(cmd))
        raw, v = c.call(["DUMP", "src"])
        assert v[0] == "bulk", (name, raw)
        out[name] = v[1]
        if keep:
            c.call(["RENAME", "src", name])

    rnd = random.Random(99)
    dump("str-raw", ["SET", "src", "hello world"])
    dump("str-int", ["SET", "src", "-123456"])
    dump("str-bigint", ["SET", "src", "9223372036854775807"])
    dump("str-lzf", ["SET", "src", "abcdefgh" * 40])
    dump("str-bin", ["SET", "src", bytes(rnd.randrange(256) for _ in range(40))])
    mixed = ["a", "12", "-5", "300", "70000", "5000000000", "x" * 70, "", "y" * 300, "-9223372036854775808"]
    dump("list-lp", ["RPUSH", "src"] + mixed)
    cfg("list-max-listpack-size", "3")
    cfg("list-compress-depth", "1")
    dump("list-ql", ["RPUSH", "src"] + [("v%03d" % i) * (1 + i % 9) for i in range(25)])
    cfg("list-max-listpack-size", "-2")
    cfg("list-compress-depth", "0")
    dump("list-plain-node", ["RPUSH", "src", "a", "z" * 9000, "b"])
    dump("set-intset", ["SADD", "src", "1", "-7", "300", "70000", "5000000000"])
    dump("set-ht", ["SADD", "src", "a", "b", "c", "12", "x" * 30])
    dump("zset-lp", ["ZADD", "src", "1", "a", "2.5", "b", "-inf", "c", "1e300", "d"])
    cfg("zset-max-listpack-entries", "0")
    dump("zset-sl", ["ZADD", "src", "1", "a", "2.5", "b", "-inf", "c", "3", "d"])
    cfg("zset-max-listpack-entries", "128")
    dump("hash-lp", ["HSET", "src", "f", "v", "n", "12", "big", "z" * 100, "neg", "-1"])
    cfg("hash-max-listpack-entries", "0")
    dump("hash-ht", ["HSET", "src", "f", "v", "n", "12", "g", "w"])
    cfg("hash-max-listpack-entries", "128")
    cfg("stream-node-max-entries", "3")
    dump("stream-simple", ["XADD", "src", "1-1", "a", "1", "b", "2"], ["XADD", "src", "1-2", "a", "3", "b", "4"], ["XADD", "src", "2-0", "c", "x"])
    cmds = [["XADD", "src", "%d-%d" % (i // 2 + 1, i % 2), "f", str(i), "g" if i % 3 else "h", "v" * (i % 4)] for i in range(10)]
    cmds += [["XDEL", "src", "2-1", "3-0"], ["XGROUP", "CREATE", "src", "g1", "0"], ["XGROUP", "CREATE", "src", "g2", "$"],
             ["XREADGROUP", "GROUP", "g1", "alice", "COUNT", "3", "STREAMS", "src", ">"],
             ["XREADGROUP", "GROUP", "g1", "bob", "COUNT", "2", "STREAMS", "src", ">"], ["XACK", "src", "g1", "1-0"],
             ["XGROUP", "CREATECONSUMER", "src", "g2", "carol"]]
    dump("stream-groups", *cmds)
    cfg("stream-node-max-entries", "100")
    dump("stream-empty", ["XADD", "src", "MAXLEN", "0", "5-5", "a", "b"])
    c.call(["DEL", "src"])
    return sorted(out.items())


# ---------------------------------------------------------------- mutations

EDGE_BYTES = [0x00, 0xFF, 0x7F, 0x80, 0xFE, 0x01, 0x40, 0xC0, 0xF0, 0xF1, 0xFD, 0x3F, 0xE0, 0xD0]


def mutate(rnd, payload):
    """A mutated copy of payload's body (the footer's CRC is recomputed unless asked)."""
    body = bytearray(payload[:-10])
    version = struct.unpack("<H", payload[-10:-8])[0]
    fix_crc = rnd.random() < 0.97
    for _ in range(rnd.choice([1, 1, 1, 2, 3, 5])):
        k = rnd.randrange(10)
        n = len(body)
        if n == 0:
            body += bytes([rnd.randrange(256)])
            continue
        i = rnd.randrange(n)
        if k == 0:
            body[i] ^= 1 << rnd.randrange(8)
        elif k == 1:
            body[i] = rnd.choice(EDGE_BYTES)
        elif k == 2:
            body[i] = rnd.randrange(256)
        elif k == 3:
            del body[rnd.randrange(1, n + 1) if rnd.random() < 0.5 else i:]
            if not body:
                body += b"\x00"
        elif k == 4:
            body[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 5)))
        elif k == 5:
            del body[i : i + rnd.randrange(1, 5)]
        elif k == 6:
            # A 32-bit little-endian length (listpack/ziplist/intset headers) set large.
            v = rnd.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000000, n + 1, n - 1, 0, rnd.randrange(1 << 32)])
            body[i : i + 4] = struct.pack("<I", v & 0xFFFFFFFF)
        elif k == 7:
            # An RDB length field set huge.
            body[i : i + 1] = rnd.choice([b"\x80\xff\xff\xff\xff", b"\x81" + b"\x7f" + b"\xff" * 7, b"\xbf\xff", b"\x80\x10\x00\x00\x00"])
        elif k == 8:
            j = rnd.randrange(n)
            ln = rnd.randrange(1, 16)
            body[i:i] = body[j : j + ln]
        else:
            # A 16-bit count (ziplist zllen, listpack count) nudged.
            v = struct.unpack("<H", bytes(body[i : i + 2]).ljust(2, b"\0"))[0]
            body[i : i + 2] = struct.pack("<H", (v + rnd.choice([1, -1, 2, 0x8000])) & 0xFFFF)
    if rnd.random() < 0.02:
        version = rnd.choice([9, 11, 12, 0])
    out = bytes(body) + struct.pack("<H", version)
    crc = crc64(out) if fix_crc else rnd.randrange(1 << 64)
    return out + struct.pack("<Q", crc)


# ---------------------------------------------------------------- comparison

READS = {
    b"string": [["GET", "k"], ["STRLEN", "k"]],
    b"list": [["LRANGE", "k", "0", "-1"], ["LLEN", "k"], ["LINDEX", "k", "-1"]],
    b"set": [["SMEMBERS", "k"], ["SCARD", "k"], ["SISMEMBER", "k", "1"]],
    b"zset": [["ZRANGE", "k", "0", "-1", "WITHSCORES"], ["ZCARD", "k"], ["ZREVRANGE", "k", "0", "0"]],
    b"hash": [["HGETALL", "k"], ["HLEN", "k"], ["HGET", "k", "f"]],
    b"stream": [["XRANGE", "k", "-", "+"], ["XREVRANGE", "k", "+", "-"], ["XLEN", "k"], ["XINFO", "STREAM", "k", "FULL"], ["XINFO", "GROUPS", "k"]],
}
UNORDERED = {("SMEMBERS",), ("HGETALL",)}


def norm(args, v):
    kind, x = v
    if args[0] == "SMEMBERS" and kind in ("array", "set"):
        return (kind, tuple(sorted(repr(e) for e in x)))
    if args[0] == "HGETALL" and kind == "array":
        return (kind, tuple(sorted(repr((x[i], x[i + 1])) for i in range(0, len(x) - 1, 2))))
    return v


class Fuzz:
    def __init__(self, opts, rk, rd, rk_pid):
        self.opts, self.rk, self.rd, self.rk_pid = opts, rk, rd, rk_pid
        self.found = []
        self.stats = {"both-ok": 0, "both-err": 0, "diff": 0}

    def report(self, what, payload, detail):
        line = "%s payload=%s %s" % (what, payload.hex(), detail)
        print(line, flush=True)
        self.found.append(line)

    def one(self, payload):
        args = ["RESTORE", "k", "0", payload, "REPLACE"]
        ra, va = self.rk.call(args)
        try:
            rb, vb = self.rd.call(args)
        except Closed:
            # redis-server can take long on a huge declared count (it sizes
            # its table first): not a find, a fresh connection goes on.
            self.rd = Conn(self.rd.port)
            self.rk.call(["DEL", "k"])
            return
        oka, okb = va == ("simple", b"OK"), vb == ("simple", b"OK")
        if ra != rb:
            self.stats["diff"] += 1
            what = "ACCEPTED-BY-RINGKV-ONLY" if oka else ("REFUSED-BY-RINGKV-ONLY" if okb else "ERROR-TEXT")
            self.report(what, payload, "ringkv=%s redis=%s" % (show(ra), show(rb)))
            self.rk.call(["DEL", "k"])
            self.rd.call(["DEL", "k"])
            return
        if not oka:
            self.stats["both-err"] += 1
            return
        self.stats["both-ok"] += 1
        ta = self.rk.call(["TYPE", "k"])[0]
        tb = self.rd.call(["TYPE", "k"])[0]
        checks = [["TYPE", "k"], ["DEBUG", "DIGEST-VALUE", "k"], ["OBJECT", "ENCODING", "k"]]
        checks += READS.get(tb[1:-2], [])
        if ta != tb:
            self.report("TYPE", payload, "ringkv=%s redis=%s" % (show(ta), show(tb)))
            return
        for c in checks:
            xa, ya = self.rk.call(c)
            xb, yb = self.rd.call(c)
            if xa != xb and norm(c, ya) != norm(c, yb):
                self.report("READ " + " ".join(c), payload, "ringkv=%s redis=%s" % (show(xa), show(xb)))
                break
        # A restored value must DUMP and restore again on ringkv itself.
        _, d = self.rk.call(["DUMP", "k"])
        if d[0] == "bulk":
            r, v = self.rk.call(["RESTORE", "k2", "0", d[1], "REPLACE"])
            if v != ("simple", b"OK"):
                self.report("REDUMP", payload, "ringkv's own DUMP refused: %s" % show(r))


# ---------------------------------------------------------------- whole RDB files at start-up


def start_on(argv, port, timeout=10.0):
    """Starts a server on an RDB file: ("up", digest, dbsize) or ("exit", code, last log line)."""
    import subprocess

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read().decode("latin-1").strip().splitlines()
                return ("exit", proc.returncode, out[-1] if out else "")
            try:
                c = Conn(port, timeout=2)
                r = c.call(["PING"])[0]
                if r == b"+PONG\r\n":
                    d = c.call(["DEBUG", "DIGEST"])[0]
                    n = c.call(["DBSIZE"])[0]
                    c.close()
                    return ("up", d, n)
                c.close()
            except (OSError, Closed):
                pass
            time.sleep(0.02)
        return ("hang", None, None)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def rdb_cases(opts, rd, workdir, seeds):
    """Mutated copies of an RDB file holding every type, loaded at start-up by both servers."""
    rd.call(["FLUSHALL"])
    redis_made_keys(rd)
    rd.call(["SAVE"])
    with open(os.path.join(workdir, "redis.rdb"), "rb") as f:
        valid = f.read()
    found = []
    path = os.path.join(workdir, "case.rdb")
    argv = {
        "redis": [opts.redis_server, "--port", str(opts.redis_port + 5), "--save", "", "--dir", workdir, "--dbfilename", "case.rdb",
                  "--sanitize-dump-payload", "yes", "--enable-debug-command", "yes", "--logfile", ""],
        "ringkv": [opts.ringkv, "--port", str(opts.ringkv_port + 5), "--save", "", "--dir", workdir, "--dbfilename", "case.rdb",
                   "--sanitize-dump-payload", "yes", "--enable-debug-command", "yes", "--shards", "3"],
    }
    for seed in seeds:
        rnd = random.Random(seed)
        for i in range(opts.rdb):
            body = bytearray(valid[:-8])
            # The header and aux fields are left alone half the time: the keys are the target.
            lo = 9 if rnd.random() < 0.5 else valid.find(b"\xfe")
            for _ in range(rnd.choice([1, 1, 2, 3])):
                j = rnd.randrange(lo, len(body))
                k = rnd.randrange(4)
                if k == 0:
                    body[j] ^= 1 << rnd.randrange(8)
                elif k == 1:
                    body[j] = rnd.choice(EDGE_BYTES)
                elif k == 2:
                    del body[j:]
                else:
                    body[j:j] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 4)))
            data = bytes(body) + struct.pack("<Q", crc64(bytes(body))) if rnd.random() < 0.95 else bytes(body) + b"\0" * 8
            with open(path, "wb") as f:
                f.write(data)
            a = start_on(argv["ringkv"], opts.ringkv_port + 5)
            b = start_on(argv["redis"], opts.redis_port + 5)
            same = a[0] == b[0] and (a[0] != "up" or a[1:] == b[1:]) and (a[0] != "exit" or a[1] == b[1])
            if not same:
                line = "RDB seed %d #%d: ringkv %s / redis %s (file kept: %s)" % (seed, i, a, b, path + ".%d.%d" % (seed, i))
                print(line, flush=True)
                found.append(line)
                os.rename(path, path + ".%d.%d" % (seed, i))
                if opts.stop_on_first:
                    break
        print("rdb seed %d done, %d finds" % (seed, len(found)), flush=True)
    return found


# ---------------------------------------------------------------- AOF directories at start-up


def aof_cases(opts, workdir, seeds):
    """A multi-part AOF directory written by redis-server (RDB-preamble base,
    one incr file), mutated (the incr file truncated, bytes flipped or
    inserted; the manifest's lines changed or dropped; a file removed), loaded
    at start-up by both servers, each on its own copy, under
    aof-load-truncated yes and no: the same exit code, or both up with the
    same DEBUG DIGEST."""
    import subprocess

    src = os.path.join(workdir, "aofsrc")
    os.mkdir(src)
    port = opts.redis_port + 6
    argv = [opts.redis_server, "--port", str(port), "--save", "", "--dir", src, "--appendonly", "yes", "--appendfsync", "always"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                c = Conn(port, timeout=2)
                break
            except OSError:
                time.sleep(0.05)
        c.call(["SET", "before", "rewrite"])
        c.call(["BGREWRITEAOF"])
        time.sleep(1)
        for i in range(30):
            c.call(["SET", "k%d" % i, "v" * i])
            c.call(["RPUSH", "l", str(i)])
            c.call(["HSET", "h", "f%d" % (i % 5), str(i)])
            if i % 7 == 0:
                c.call(["MULTI"])
                c.call(["INCR", "n"])
                c.call(["ZADD", "z", str(i), "m%d" % i])
                c.call(["EXEC"])
        c.call(["EXPIRE", "k3", "100000"])
        c.close()
    finally:
        proc.kill()
        proc.wait()
    aofdir = os.path.join(src, "appendonlydir")
    names = sorted(os.listdir(aofdir))
    manifest = [n for n in names if n.endswith(".manifest")][0]
    incr = [n for n in names if n.endswith(".incr.aof")][0]
    found = []
    stats = {}
    for seed in seeds:
        rnd = random.Random(seed)
        for i in range(opts.aof):
            files = {n: open(os.path.join(aofdir, n), "rb").read() for n in names}
            k = rnd.randrange(10)
            target = manifest if k >= 8 else incr
            b = bytearray(files[target])
            if k < 4:
                del b[rnd.randrange(len(b)):]
            elif k < 6:
                b[rnd.randrange(len(b))] = rnd.choice(EDGE_BYTES + list(b"*$\r\n0123456789"))
            elif k < 7:
                j = rnd.randrange(len(b))
                b[j:j] = rnd.choice([b"\r\n", b"*", b"$", b"#TS:1\r\n", b"garbage"])
            elif k < 8:
                files.pop(rnd.choice(names))
            else:
                lines = bytes(b).split(b"\n")
                j = rnd.randrange(len(lines))
                if rnd.random() < 0.5:
                    del lines[j]
                else:
                    w = lines[j].split(b" ")
                    w[rnd.randrange(len(w))] = rnd.choice([b"", b"x", b"b", b"i", b"h", b"0", b"-1", b"seq", b"type", b"file", b"99"])
                    lines[j] = b" ".join(w)
                b = bytearray(b"\n".join(lines))
            if target in files:
                files[target] = bytes(b)
            truncated = rnd.choice(["yes", "no"])
            verdicts = []
            for kind, binary, p in (("ringkv", opts.ringkv, opts.ringkv_port + 6), ("redis", opts.redis_server, opts.redis_port + 7)):
                d = os.path.join(workdir, "aof-" + kind)
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(os.path.join(d, "appendonlydir"))
                for n, data in files.items():
                    with open(os.path.join(d, "appendonlydir", n), "wb") as f:
                        f.write(data)
                a = [binary, "--port", str(p), "--save", "", "--dir", d, "--appendonly", "yes", "--aof-load-truncated", truncated,
                     "--enable-debug-command", "yes"] + (["--shards", "3"] if kind == "ringkv" else [])
                verdicts.append(start_on(a, p))
            ra, rb = verdicts
            stats[rb[0]] = stats.get(rb[0], 0) + 1
            same = ra[0] == rb[0] and (ra[0] != "up" or ra[1:] == rb[1:]) and (ra[0] != "exit" or ra[1] == rb[1])
            if not same:
                keep = os.path.join(workdir, "aofcase.%d.%d" % (seed, i))
                shutil.copytree(os.path.join(workdir, "aof-redis"), keep)
                line = "AOF seed %d #%d (%s, aof-load-truncated %s): ringkv %s / redis %s (redis's copy after: %s)" % (
                    seed, i, target if target in files else "removed", truncated, ra, rb, keep)
                print(line, flush=True)
                found.append(line)
                if opts.stop_on_first:
                    break
        print("aof seed %d done, %d finds (redis-server's verdicts: %s)" % (seed, len(found), stats), flush=True)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, 7181, 7281)
    ap.add_argument("--count", type=int, default=5000, help="payloads per seed")
    ap.add_argument("--max-hwm-mb", type=int, default=512, help="ringkv's VmHWM bound")
    ap.add_argument("--only", help="comma-separated seed payload names")
    ap.add_argument("--aof", type=int, default=0, help="then this many mutated AOF directories per seed, loaded at start-up")
    ap.add_argument("--rdb", type=int, default=0, help="then this many mutated RDB files per seed, loaded at start-up")
    opts = ap.parse_args()
    seeds = seeds_of(opts)
    workdir, procs = start_pair(opts, "restorefuzz.", ["--sanitize-dump-payload", "yes"])
    rk, rd = Conn(opts.ringkv_port), Conn(opts.redis_port)
    base = redis_made(rd)
    base.update(handmade())
    if opts.only:
        base = {k: v for k, v in base.items() if k in opts.only.split(",")}
    fz = Fuzz(opts, rk, rd, procs[0].proc.pid)
    # The unmutated payloads first: the verdicts must already agree.
    for name, p in sorted(base.items()):
        before = len(fz.found)
        fz.one(p)
        if len(fz.found) > before:
            print("  (unmutated %s)" % name, flush=True)
    names = sorted(base)
    t0 = time.time()
    try:
        for seed in seeds:
            rnd = random.Random(seed)
            for i in range(opts.count):
                name = rnd.choice(names)
                p = mutate(rnd, base[name])
                before = len(fz.found)
                try:
                    fz.one(p)
                except (Closed, OSError) as e:
                    fz.report("RINGKV-CONN-LOST(%s)" % e, p, "seed %d #%d from %s" % (seed, i, name))
                    if not procs[0].alive():
                        print("ringkv DIED (log in %s)" % workdir, flush=True)
                        raise SystemExit(2)
                    rk, rd = Conn(opts.ringkv_port), Conn(opts.redis_port)
                    fz.rk, fz.rd = rk, rd
                if len(fz.found) > before:
                    print("  (seed %d #%d from %s)" % (seed, i, name), flush=True)
                    if opts.stop_on_first:
                        raise SystemExit(1)
                if i % 500 == 0:
                    h = hwm_kb(fz.rk_pid)
                    if h is not None and h > opts.max_hwm_mb * 1024:
                        fz.report("HWM", p, "ringkv VmHWM %d kB > %d MB" % (h, opts.max_hwm_mb))
                        raise SystemExit(1)
            print("seed %d done: %s (%.0fs)" % (seed, fz.stats, time.time() - t0), flush=True)
        if opts.rdb:
            fz.found += rdb_cases(opts, rd, workdir, seeds)
        if opts.aof:
            fz.found += aof_cases(opts, workdir, seeds)
    finally:
        print("ringkv VmHWM %s kB; %d finds" % (hwm_kb(fz.rk_pid), len(fz.found)), flush=True)
        stop_pair(procs, fz.found, workdir)
    sys.exit(1 if fz.found else 0)


if __name__ == "__main__":
    main()
