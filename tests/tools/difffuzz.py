#!/usr/bin/env python3
"""Differential fuzzer: ringkv (--shards 3) against redis-server 7.0, byte for byte.

A development tool, not part of `cargo test`. It starts both servers (or uses
running ones, --ringkv-port/--redis-port with --no-start), sends the same
random command stream to both over raw sockets, on two connections each (one
RESP2, one after HELLO 3), compares every reply byte for byte, and compares
DEBUG DIGEST every --digest-every commands. The seed is printed; the same seed
gives the same command stream (the generator never looks at replies, except
where noted below for commands whose result Redis picks at random).

    python3 tests/tools/difffuzz.py --seed 1 --count 20000
    python3 tests/tools/difffuzz.py --seeds 1-50 --count 5000 --small-encodings
    python3 tests/tools/difffuzz.py --seed 7 --count 3000 --log /tmp/cmds.txt

Replies Redis chooses at random are not compared byte for byte:
  - SRANDMEMBER, HRANDFIELD, ZRANDMEMBER (with or without a count): the reply's
    type and length must match redis-server's, every element must belong to the
    key (checked against redis-server's contents fetched just before), distinct
    where the count is positive; and WITHVALUES/WITHSCORES pairs must be the
    key's own pairs.
  - SPOP: only sent with a count at least the set's size (checked on
    redis-server first) or on a set of at most one member, where the result is
    not random; compared as a set.
  - RANDOMKEY: same reply type, and the key exists on redis-server.
  - SCAN / HSCAN / SSCAN / ZSCAN: iterated to the end on each server (cursors
    are each server's own), the element sets compared.
Replies whose order Redis does not promise (a hash table's order: SMEMBERS,
SINTER/SUNION/SDIFF, HGETALL/HKEYS/HVALS, KEYS, SORT BY nosort of a set) are
compared byte for byte first; when only the order differs the key's encoding on
redis-server decides: a listpack/intset order must match, a hashtable's need not.
SORT ... BY <pattern> ALPHA of a hash-table set or a zset: elements of equal weight
come in the dict's (seeded) order (ALPHA has no tie-break) and LIMIT may pick others
among them: without GET, the weights (read on redis-server) must run in the same
order and every element be the key's; with GET, the same elements (same length with
LIMIT).
TTL, PTTL, EXPIRETIME, PEXPIRETIME (and OBJECT IDLETIME/FREQ, never sent) are
compared with a tolerance of 2 s.

Part 3 (--dump-restore, --rdb-swap): DUMP every key on one server, RESTORE on
the other, DEBUG DIGEST equal; SAVE on one server, restart the other on that
RDB file, DEBUG DIGEST equal; both directions.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

I64_MAX = 9223372036854775807
I64_MIN = -9223372036854775808


# ---------------------------------------------------------------- RESP


class Closed(Exception):
    pass


class Conn:
    """A raw socket; read_frame returns (raw bytes, parsed value) of one reply."""

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode("latin-1")
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _fill(self):
        try:
            d = self.sock.recv(1 << 16)
        except socket.timeout:
            raise Closed("timeout")
        if not d:
            raise Closed("closed")
        self.buf = self.buf[self.pos :] + d
        self.pos = 0

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos : i]
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        d = self.buf[self.pos : self.pos + n]
        self.pos += n + 2
        return d

    def _value(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return ("simple", rest)
        if t == b"-":
            return ("error", rest)
        if t == b":":
            return ("int", int(rest))
        if t == b"$" or t == b"=" or t == b"!":
            n = int(rest)
            if n < 0:
                return ("nil", None)
            kind = {b"$": "bulk", b"=": "verbatim", b"!": "error"}[t]
            return (kind, self._exact(n))
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return ("nil", None)
            kind = {b"*": "array", b"~": "set", b">": "push"}[t]
            return (kind, [self._value() for _ in range(n)])
        if t == b"%" or t == b"|":
            n = int(rest)
            items = []
            for _ in range(n):
                items.append((self._value(), self._value()))
            return ("map" if t == b"%" else "attr", items)
        if t == b"_":
            return ("nil", None)
        if t == b",":
            return ("double", rest)
        if t == b"#":
            return ("bool", rest)
        if t == b"(":
            return ("bigint", rest)
        raise Closed("invalid RESP type byte %r" % line[:20])

    def read_frame(self):
        start = self.pos
        v = self._value()
        raw = self.buf[start : self.pos]
        self.buf = self.buf[self.pos :]
        self.pos = 0
        return raw, v

    def call(self, args):
        self.send(args)
        return self.read_frame()


def show(raw, n=300):
    s = repr(raw)[2:-1]
    return s if len(s) <= n else s[:n] + "...(%d bytes)" % len(raw)


def showcmd(args):
    out = []
    for a in args:
        if isinstance(a, bytes):
            a = a.decode("latin-1")
        if a == "" or any(c in a for c in " \"'\\\n\r\t") or any(ord(c) < 32 or ord(c) > 126 for c in a):
            a = '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else ("\\" + c if c in '"\\' else "\\x%02x" % ord(c)) for c in a) + '"'
        out.append(a)
    return " ".join(out)


def canon(v):
    """A value with every array/set/map sorted (order ignored at every level)."""
    kind, x = v
    if kind in ("array", "set", "push"):
        return ("seq", tuple(sorted((canon(e) for e in x), key=repr)))
    if kind == "map":
        return ("seq", tuple(sorted((("pair", canon(a), canon(b)) for a, b in x), key=repr)))
    if kind == "verbatim":
        return ("bulk", x)
    return (kind, x)


def canon_pairs(v):
    """A flat array of pairs (HGETALL, WITHSCORES in RESP2) or a map, sorted by pair."""
    kind, x = v
    if kind == "map":
        return tuple(sorted((repr(a), repr(b)) for a, b in x))
    if kind in ("array", "set"):
        if x and x[0][0] == "array":  # RESP3 WITHSCORES: nested pairs
            return tuple(sorted(repr(e) for e in x))
        return tuple(sorted((repr(x[i]), repr(x[i + 1])) for i in range(0, len(x) - 1, 2)))
    return (kind, x)


# ---------------------------------------------------------------- servers


class Proc:
    def __init__(self, name, argv, port, workdir):
        self.name, self.argv, self.port, self.workdir = name, argv, port, workdir
        self.proc = None

    def start(self):
        try:
            Conn(self.port, timeout=1).close()
            raise SystemExit("port %d is in use: pick free ones (--ringkv-port/--redis-port)" % self.port)
        except OSError:
            pass
        log = open(os.path.join(self.workdir, self.name + ".log"), "ab")
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = Conn(self.port, timeout=2)
                _, v = c.call(["PING"])
                c.close()
                if v == ("simple", b"PONG"):
                    return
            except (OSError, Closed):
                pass
            if self.proc.poll() is not None:
                raise SystemExit("%s exited at start (see %s.log in %s)" % (self.name, self.name, self.workdir))
            time.sleep(0.05)
        raise SystemExit("%s did not answer PING" % self.name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is None or self.proc.poll() is None


def server_argv(kind, binary, port, workdir, extra_args, shards=3):
    common = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
              "--enable-debug-command", "yes", "--dir", workdir, "--dbfilename", kind + ".rdb"]
    if kind == "ringkv" and not binary.endswith("redis-server"):  # redis-server in ringkv's place: a self-test
        return [binary] + common + ["--shards", str(shards)] + extra_args
    return [binary] + common + extra_args


# ---------------------------------------------------------------- generators

EDGE_INTS = ["0", "1", "-1", "-0", "+1", " 1", "1 ", "0x10", "1e3", "1.5", "", "abc", "00", "007",
             str(I64_MAX), str(I64_MIN), str(I64_MAX + 1), str(I64_MIN - 1), "9223372036854775806",
             "-9223372036854775807", "18446744073709551616", "2147483647", "2147483648", "-2147483649",
             "4294967295", "4294967296", "+inf", "-inf", "1e400", "nan"]
EDGE_FLOATS = ["0", "-0", "+0", "1.5", "-1.5", "inf", "+inf", "-inf", "Infinity", "-Infinity", "1e400",
               "-1e400", "1e-400", "nan", "NaN", "0x10", " 1", "1 ", "", "abc", "1e308", "5e-324", "3.0",
               "1.", ".5", "1e+2", "0.1", "1.7976931348623157e308", "123456789012345678", "1_0", "2e",
               "9007199254740993", "-9223372036854775809"]


class Gen:
    def __init__(self, rnd, opts):
        self.r = rnd
        self.opts = opts
        self.stream_ms = {}

    # ---- basic pieces
    def p(self, x):
        return self.r.random() < x

    def ch(self, xs):
        return xs[self.r.randrange(len(xs))]

    def n(self, lo, hi):
        return str(self.r.randint(lo, hi))

    def int_arg(self, lo=-20, hi=20, edge=0.1):
        if self.p(edge):
            return self.ch(EDGE_INTS)
        return self.n(lo, hi)

    def float_arg(self, edge=0.12):
        if self.p(edge):
            return self.ch(EDGE_FLOATS)
        c = self.r.randrange(4)
        if c == 0:
            return self.n(-10, 10)
        if c == 1:
            return "%.1f" % self.r.uniform(-10, 10)
        if c == 2:
            return repr(self.r.uniform(-100, 100))
        return self.ch(["0.1", "0.2", "0.3", "1e-5", "3.14159", "2.5", "-2.5", "1e10", "10"])

    def key(self, fam):
        """Keys of a family, sometimes another family's (WRONGTYPE), or a key nobody writes."""
        pools = {
            "str": ["s0", "s1", "s2", "{t}s3", "{t}s4"],
            "hash": ["h0", "h1", "h2", "{t}h3"],
            "list": ["l0", "l1", "l2", "{t}l3", "{t}l4"],
            "set": ["S0", "S1", "S2", "S3", "{t}S4", "{t}S5"],
            "zset": ["z0", "z1", "z2", "z3", "{t}z4", "{t}z5"],
            "stream": ["x0", "x1", "{t}x2"],
            "hll": ["p0", "p1", "p2", "{t}p3"],
            "geo": ["g0", "g1", "{t}g2"],
        }
        if self.p(0.04):
            return self.ch(["nokey", "{t}nokey", "empty"])
        if self.p(0.06):
            fam = self.ch(list(pools))
        return self.ch(pools[fam])

    def keys(self, fam, lo=1, hi=4):
        return [self.key(fam) for _ in range(self.r.randint(lo, hi))]

    def value(self):
        c = self.r.randrange(12)
        if c < 4:
            return self.n(-5, 30)
        if c < 8:
            return self.ch(["a", "b", "c", "foo", "bar", "hello", "x", "y", "zz", "abc"])
        if c == 8:
            return ""
        if c == 9:
            return "v" * self.r.randint(60, 70)  # around the listpack value limit (64)
        if c == 10:
            return self.ch(EDGE_INTS)
        return "".join(chr(self.r.randrange(256)) for _ in range(self.r.randint(1, 6)))

    def member(self):
        c = self.r.randrange(10)
        if c < 5:
            return self.n(0, 25)  # intset candidates
        if c < 8:
            return "m" + self.n(0, 12)
        if c == 8:
            return self.ch(["-1", "-0", "01", "9223372036854775807", "9223372036854775808", "", " 1"])
        return "w" * self.r.randint(60, 70)

    def field(self):
        if self.p(0.05):
            return "f" * self.r.randint(60, 70)
        if self.p(0.05):
            return self.ch(["", "0", "-1"])
        return "f" + self.n(0, 15)

    def with_arity_noise(self, args):
        """Sometimes one argument fewer or one more (wrong arity / syntax errors)."""
        if args[0].endswith("*"):
            return args
        if self.p(0.03) and len(args) > 1:
            return args[:-1]
        if self.p(0.02):
            return args + [self.ch(["x", "1", "", "WITHSCORES", "LIMIT"])]
        return args

    # ---- strings and bitmaps
    def g_string(self):
        k = lambda: self.key("str")
        r = self.r.randrange(40)
        if r < 4:
            a = ["SET", k(), self.value()]
            for _ in range(self.r.randint(0, 2)):
                o = self.r.randrange(8)
                if o == 0:
                    a += ["EX", self.ch(["1000", "100000", "0", "-1", "abc", "9223372036854775807"])]
                elif o == 1:
                    a += ["PX", self.ch(["1000000", "0", str(I64_MAX)])]
                elif o == 2:
                    a += ["EXAT", self.ch(["4000000000", "1", "0"])]
                elif o == 3:
                    a += ["PXAT", self.ch(["4000000000000", "1"])]
                elif o == 4:
                    a += [self.ch(["NX", "XX"])]
                elif o == 5:
                    a += ["KEEPTTL"]
                else:
                    a += ["GET"]
            return a
        if r == 4:
            return ["GET", k()]
        if r == 5:
            a = ["GETEX", k()]
            if self.p(0.6):
                a += self.ch([["PERSIST"], ["EX", "5000"], ["PX", "9000000"], ["EXAT", "4000000000"], ["EX", "0"], ["EX", "-5"], ["PERSIST", "EX", "10"]])
            return a
        if r == 6:
            return ["GETDEL", k()]
        if r == 7:
            return ["GETSET", k(), self.value()]
        if r == 8:
            return [self.ch(["SETNX", "APPEND"]), k(), self.value()]
        if r == 9:
            return [self.ch(["SETEX", "PSETEX"]), k(), self.ch(["100000", "1000000", "0", "-1", "x", "9223372036854775807"]), self.value()]
        if r == 10:
            a = [self.ch(["MSET", "MSETNX"])]
            for _ in range(self.r.randint(1, 3)):
                a += [k(), self.value()]
            return a
        if r == 11:
            return ["MGET"] + [k() for _ in range(self.r.randint(1, 4))]
        if r == 12:
            return ["STRLEN", k()]
        if r == 13:
            return [self.ch(["INCR", "DECR"]), k()]
        if r == 14:
            return [self.ch(["INCRBY", "DECRBY"]), k(), self.int_arg(-100, 100, 0.2)]
        if r == 15:
            return ["INCRBYFLOAT", k(), self.float_arg(0.2)]
        if r in (16, 17):
            off = self.ch([self.n(0, 20), self.n(0, 100), "-1", "536870911", "536870912", "4294967296", "abc", str(I64_MAX)])
            if off == "536870911" and self.p(0.9):
                off = "0"
            return ["SETRANGE", k(), off, self.ch([self.value(), ""])]
        if r in (18, 19):
            return [self.ch(["GETRANGE", "SUBSTR"]), k(), self.int_arg(-10, 10, 0.2), self.int_arg(-10, 10, 0.2)]
        if r == 20:
            a = ["LCS", k(), k()]
            o = self.r.randrange(5)
            if o == 1:
                a += ["LEN"]
            elif o == 2:
                a += ["IDX"]
            elif o == 3:
                a += ["IDX", "MINMATCHLEN", self.n(0, 3), "WITHMATCHLEN"]
            elif o == 4:
                a += ["IDX", "WITHMATCHLEN"]
            return a
        if r in (21, 22):
            off = self.ch([self.n(0, 100), self.n(0, 40), "-1", "4294967296", "abc", "4294967295x"])
            return ["SETBIT", k(), off, self.ch(["0", "1", "1", "2", "-1", ""])]
        if r == 23:
            return ["GETBIT", k(), self.ch([self.n(0, 100), "-1", "4294967295", "4294967296", "abc"])]
        if r in (24, 25):
            a = ["BITCOUNT", k()]
            if self.p(0.7):
                a += [self.int_arg(-10, 10, 0.15), self.int_arg(-10, 10, 0.15)]
                if self.p(0.5):
                    a += [self.ch(["BYTE", "BIT", "bit", "WORD"])]
            return a
        if r in (26, 27):
            a = ["BITPOS", k(), self.ch(["0", "1", "1", "2"])]
            if self.p(0.7):
                a += [self.int_arg(-10, 10, 0.15)]
                if self.p(0.6):
                    a += [self.int_arg(-10, 10, 0.15)]
                    if self.p(0.5):
                        a += [self.ch(["BYTE", "BIT", "byte", "XX"])]
            return a
        if r == 28:
            op = self.ch(["AND", "OR", "XOR", "NOT", "and", "NAND"])
            srcs = [k()] if op == "NOT" and self.p(0.8) else [k() for _ in range(self.r.randint(1, 3))]
            return ["BITOP", op, k()] + srcs
        if r in (29, 30, 31):
            return self.g_bitfield(k())
        if r == 32:
            return ["BITFIELD_RO", k()] + sum([["GET", self.bf_type(), self.bf_off()] for _ in range(self.r.randint(0, 2))], [])
        if r == 33:
            return ["SETRANGE", k(), self.n(0, 5), "\x00" * self.r.randint(0, 3) + self.value()]
        if r == 34:
            return ["SET", k(), self.ch(["10", "-5", "9223372036854775807", "-9223372036854775808", "1.5", "3e5", "12345678901234567890", "0"])]
        if r == 35:
            return ["INCRBYFLOAT", k(), self.ch(["1e308", "-1e308", "0.1", "1e-20", "-0", "1e17", "5.0e3"])]
        if r == 36:
            return ["SET", k(), self.ch(["\xff\xf0\x00", "\x0f", "\x80\x00\x00\x01", "\x00\x00", "\xff" * 5])]
        if r == 37:
            return ["GETRANGE", k(), self.ch(["0", "-100", str(I64_MIN), "5"]), self.ch(["-1", str(I64_MAX), "-100", "0"])]
        if r == 38:
            return [self.ch(["INCRBY", "DECRBY"]), k(), self.ch([str(I64_MAX), str(I64_MIN), "1", "-1", str(I64_MIN + 1)])]
        return ["TYPE", k()]

    def bf_type(self):
        if self.p(0.1):
            return self.ch(["i0", "u0", "i65", "u64", "i64", "u63", "x8", "", "i", "u-1"])
        return self.ch(["i", "u"]) + str(self.r.randint(1, 16 if self.p(0.8) else 64))

    def bf_off(self):
        if self.p(0.1):
            return self.ch(["-1", "#-1", "4294967296", "#0", "abc", "", "#", "536870912"])
        if self.p(0.3):
            return "#" + self.n(0, 6)
        return self.n(0, 80)

    def g_bitfield(self, key):
        a = ["BITFIELD", key]
        for _ in range(self.r.randint(0, 4)):
            o = self.r.randrange(7)
            if o < 2:
                a += ["GET", self.bf_type(), self.bf_off()]
            elif o < 4:
                a += ["SET", self.bf_type(), self.bf_off(), self.int_arg(-300, 300, 0.15)]
            elif o < 6:
                a += ["INCRBY", self.bf_type(), self.bf_off(), self.int_arg(-300, 300, 0.15)]
            else:
                a += ["OVERFLOW", self.ch(["WRAP", "SAT", "FAIL", "fail", "NONE"])]
        return a

    # ---- hashes
    def g_hash(self):
        k = lambda: self.key("hash")
        r = self.r.randrange(20)
        if r < 5:
            a = [self.ch(["HSET", "HSET", "HMSET"]), k()]
            for _ in range(self.r.randint(1, 4)):
                a += [self.field(), self.value()]
            return a
        if r == 5:
            return ["HSETNX", k(), self.field(), self.value()]
        if r == 6:
            return ["HGET", k(), self.field()]
        if r == 7:
            return ["HMGET", k()] + [self.field() for _ in range(self.r.randint(1, 4))]
        if r == 8:
            return ["HDEL", k()] + [self.field() for _ in range(self.r.randint(1, 3))]
        if r == 9:
            return [self.ch(["HLEN", "HKEYS", "HVALS", "HGETALL"]), k()]
        if r == 10:
            return [self.ch(["HSTRLEN", "HEXISTS"]), k(), self.field()]
        if r == 11:
            return ["HINCRBY", k(), self.field(), self.int_arg(-50, 50, 0.2)]
        if r == 12:
            return ["HINCRBYFLOAT", k(), self.field(), self.float_arg(0.2)]
        if r == 13:
            a = ["HRANDFIELD", k()]
            if self.p(0.7):
                a += [self.ch([self.n(-8, 8), self.n(-30, 30), "0", "abc", str(I64_MIN), "-9223372036854775808"])]
                if self.p(0.5):
                    a += ["WITHVALUES"]
            return a
        if r == 14:
            return ["HSCAN*", k()]
        if r == 15:
            return ["HSET", k(), self.field(), self.ch(["10", "1.5", "9223372036854775807", "-9223372036854775808", "abc", "1e5", " 2"])]
        if r == 16:
            return ["HINCRBY", k(), self.field(), self.ch([str(I64_MAX), str(I64_MIN), "1", "-1"])]
        if r == 17:
            return ["HINCRBYFLOAT", k(), self.field(), self.ch(["1e308", "0.1", "-0", "1e-20", "5.0e3", "1e400"])]
        if r == 18:
            return ["OBJECT", "ENCODING", k()]
        return ["HGETALL", k()]

    # ---- lists
    def g_list(self):
        k = lambda: self.key("list")
        r = self.r.randrange(24)
        if r < 5:
            return [self.ch(["LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "RPUSH"]), k()] + [self.value() for _ in range(self.r.randint(1, 5))]
        if r == 5:
            a = [self.ch(["LPOP", "RPOP"]), k()]
            if self.p(0.5):
                a += [self.ch([self.n(0, 5), "-1", "abc", str(I64_MAX), "0"])]
            return a
        if r == 6:
            return ["LLEN", k()]
        if r in (7, 8):
            return ["LRANGE", k(), self.int_arg(-8, 8, 0.15), self.int_arg(-8, 8, 0.15)]
        if r == 9:
            return ["LINDEX", k(), self.int_arg(-8, 8, 0.15)]
        if r == 10:
            return ["LSET", k(), self.int_arg(-6, 6, 0.1), self.value()]
        if r == 11:
            return ["LINSERT", k(), self.ch(["BEFORE", "AFTER", "after", "MIDDLE"]), self.value(), self.value()]
        if r == 12:
            return ["LREM", k(), self.int_arg(-3, 3, 0.1), self.value()]
        if r == 13:
            return ["LTRIM", k(), self.int_arg(-8, 8, 0.15), self.int_arg(-8, 8, 0.15)]
        if r in (14, 15):
            a = ["LPOS", k(), self.value()]
            for _ in range(self.r.randint(0, 3)):
                o = self.r.randrange(3)
                if o == 0:
                    a += ["RANK", self.ch([self.n(-3, 3), str(I64_MIN), str(I64_MAX), "-9223372036854775807", "abc"])]
                elif o == 1:
                    a += ["COUNT", self.ch([self.n(0, 4), "-1", "abc"])]
                else:
                    a += ["MAXLEN", self.ch([self.n(0, 6), "-1"])]
            return a
        if r == 16:
            return ["LMOVE", k(), k(), self.ch(["LEFT", "RIGHT"]), self.ch(["LEFT", "RIGHT", "UP"])]
        if r == 17:
            return ["RPOPLPUSH", k(), k()]
        if r in (18, 19):
            ks = self.keys("list", 1, 3)
            nk = str(len(ks)) if self.p(0.9) else self.ch(["0", "-1", "5", "abc"])
            a = ["LMPOP", nk] + ks + [self.ch(["LEFT", "RIGHT", "MIDDLE"])]
            if self.p(0.5):
                a += ["COUNT", self.ch([self.n(1, 5), "0", "-1", "abc"])]
            return a
        if r == 20:
            return ["LRANGE", k(), self.ch(["0", str(I64_MIN), "-100"]), self.ch(["-1", str(I64_MAX), "100"])]
        if r == 21:
            return ["RPUSH", k()] + ["e" + self.n(0, 200) for _ in range(self.r.randint(5, 20))]
        if r == 22:
            return ["OBJECT", "ENCODING", k()]
        return ["SORT", k()] + self.sort_opts()

    def sort_opts(self):
        a = []
        if self.p(0.3):
            a += ["BY", self.ch(["nosort", "s*", "h*->f1", "nokey*", "{t}s*", "w_*"])]
        if self.p(0.3):
            a += ["LIMIT", self.int_arg(-2, 5, 0.1), self.int_arg(-2, 5, 0.1)]
        for _ in range(self.r.randint(0, 2) if self.p(0.3) else 0):
            a += ["GET", self.ch(["#", "s*", "h*->f1", "h*->", "nokey*"])]
        if self.p(0.3):
            a += [self.ch(["ASC", "DESC"])]
        if self.p(0.5):
            a += ["ALPHA"]
        if self.p(0.15):
            # a hash-table set's (seeded) order decides ties (BY nosort, BY a missing key): no BY with STORE
            if "BY" in a:
                j = a.index("BY")
                a = a[:j] + a[j + 2 :]
            a += ["STORE", self.key("list")]
        return a

    # ---- sets
    def g_set(self):
        k = lambda: self.key("set")
        r = self.r.randrange(24)
        if r < 6:
            return ["SADD", k()] + [self.member() for _ in range(self.r.randint(1, 6))]
        if r == 6:
            return ["SREM", k()] + [self.member() for _ in range(self.r.randint(1, 4))]
        if r == 7:
            return ["SCARD", k()]
        if r == 8:
            return ["SISMEMBER", k(), self.member()]
        if r == 9:
            return ["SMISMEMBER", k()] + [self.member() for _ in range(self.r.randint(1, 4))]
        if r == 10:
            return ["SMEMBERS", k()]
        if r in (11, 12):
            return [self.ch(["SINTER", "SUNION", "SDIFF"])] + self.keys("set", 1, 3)
        if r in (13, 14):
            return [self.ch(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), k()] + self.keys("set", 1, 3)
        if r == 15:
            ks = self.keys("set", 1, 3)
            nk = str(len(ks)) if self.p(0.9) else self.ch(["0", "-1", "5", "abc"])
            a = ["SINTERCARD", nk] + ks
            if self.p(0.5):
                a += ["LIMIT", self.ch([self.n(0, 5), "-1", "abc"])]
            return a
        if r == 16:
            return ["SMOVE", k(), k(), self.member()]
        if r == 17:
            return ["SPOP*", k()]
        if r == 18:
            a = ["SRANDMEMBER", k()]
            if self.p(0.8):
                a += [self.ch([self.n(-8, 8), self.n(-40, 40), "0", "abc", str(I64_MIN), "-9223372036854775808"])]
            return a
        if r == 19:
            return ["SSCAN*", k()]
        if r == 20:
            return ["OBJECT", "ENCODING", k()]
        if r == 21:
            return ["SADD", k()] + [self.n(0, 600) for _ in range(self.r.randint(5, 30))]
        if r == 22:
            return ["SORT", k()] + self.sort_opts()
        return ["SORT_RO", k()] + [o for o in self.sort_opts() if o != "STORE"][:0]

    # ---- sorted sets
    def zmember(self):
        if self.p(0.04):
            return "q" * self.r.randint(60, 70)
        return self.ch(["a", "b", "c", "d", "e", "f", "g", "aa", "ab", "", "m1", "m2", "1", "2"])

    def score(self):
        if self.p(0.12):
            return self.ch(EDGE_FLOATS)
        return self.ch([self.n(-5, 5), self.n(0, 3), "%.1f" % self.r.uniform(-5, 5), "0", "1", "inf", "-inf"])

    def score_bound(self):
        c = self.r.randrange(10)
        if c < 4:
            return self.n(-5, 5)
        if c < 6:
            return "(" + self.n(-5, 5)
        if c == 6:
            return self.ch(["inf", "-inf", "+inf", "(inf", "(-inf", "(+inf"])
        if c == 7:
            return self.ch(["abc", "(", "((1", "1e400", "nan", "(nan", "", "-0", "(-0", "0x10"])
        return "%.1f" % self.r.uniform(-5, 5)

    def lex_bound(self):
        c = self.r.randrange(8)
        if c < 5:
            return self.ch(["[", "("]) + self.ch(["a", "b", "c", "d", "aa", "", "m", "z"])
        if c < 7:
            return self.ch(["-", "+"])
        return self.ch(["a", "", "x[", "-a", "+a"])

    def limit(self):
        return ["LIMIT", self.int_arg(-2, 5, 0.1), self.ch([self.n(-2, 5), "-1", "0"])]

    def g_zset(self):
        k = lambda: self.key("zset")
        r = self.r.randrange(40)
        if r < 7:
            a = ["ZADD", k()]
            for f in ["NX", "XX", "GT", "LT", "CH", "INCR"]:
                if self.p(0.12):
                    a.append(f)
            self.r.shuffle(a[2:]) if self.p(0.1) else None
            n = 1 if "INCR" in a and self.p(0.8) else self.r.randint(1, 4)
            for _ in range(n):
                a += [self.score(), self.zmember()]
            return a
        if r == 7:
            return ["ZINCRBY", k(), self.score(), self.zmember()]
        if r == 8:
            return ["ZREM", k()] + [self.zmember() for _ in range(self.r.randint(1, 3))]
        if r == 9:
            return [self.ch(["ZCARD", "OBJECT"]), k()] if self.p(0.5) else ["OBJECT", "ENCODING", k()]
        if r == 10:
            return ["ZSCORE", k(), self.zmember()]
        if r == 11:
            return ["ZMSCORE", k()] + [self.zmember() for _ in range(self.r.randint(1, 3))]
        if r == 12:
            return [self.ch(["ZRANK", "ZREVRANK"]), k(), self.zmember()]
        if r == 13:
            return ["ZCOUNT", k(), self.score_bound(), self.score_bound()]
        if r == 14:
            return ["ZLEXCOUNT", k(), self.lex_bound(), self.lex_bound()]
        if r in (15, 16, 17, 18):
            return self.zrange_like(["ZRANGE", k()])
        if r == 19:
            return self.zrange_like(["ZRANGESTORE", k(), k()])
        if r == 20:
            a = [self.ch(["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]), k(), self.score_bound(), self.score_bound()]
            if self.p(0.4):
                a += ["WITHSCORES"]
            if self.p(0.4):
                a += self.limit()
            return a
        if r == 21:
            a = [self.ch(["ZRANGEBYLEX", "ZREVRANGEBYLEX"]), k(), self.lex_bound(), self.lex_bound()]
            if self.p(0.4):
                a += self.limit()
            return a
        if r == 22:
            a = ["ZREVRANGE", k(), self.int_arg(-6, 6, 0.1), self.int_arg(-6, 6, 0.1)]
            if self.p(0.5):
                a += ["WITHSCORES"]
            return a
        if r == 23:
            return ["ZREMRANGEBYSCORE", k(), self.score_bound(), self.score_bound()]
        if r == 24:
            return ["ZREMRANGEBYRANK", k(), self.int_arg(-6, 6, 0.1), self.int_arg(-6, 6, 0.1)]
        if r == 25:
            return ["ZREMRANGEBYLEX", k(), self.lex_bound(), self.lex_bound()]
        if r in (26, 27, 28):
            return self.zsetop()
        if r == 29:
            ks = self.keys("zset", 1, 3)
            nk = str(len(ks)) if self.p(0.9) else self.ch(["0", "-1", "5"])
            a = ["ZINTERCARD", nk] + ks
            if self.p(0.5):
                a += ["LIMIT", self.ch([self.n(0, 4), "-1"])]
            return a
        if r == 30:
            a = [self.ch(["ZPOPMIN", "ZPOPMAX"]), k()]
            if self.p(0.6):
                a += [self.ch([self.n(0, 4), "-1", "abc", "0"])]
            return a
        if r == 31:
            ks = self.keys("zset", 1, 3)
            nk = str(len(ks)) if self.p(0.9) else self.ch(["0", "-1", "5"])
            a = ["ZMPOP", nk] + ks + [self.ch(["MIN", "MAX", "min", "MID"])]
            if self.p(0.5):
                a += ["COUNT", self.ch([self.n(1, 4), "0", "-1"])]
            return a
        if r == 32:
            a = ["ZRANDMEMBER", k()]
            if self.p(0.8):
                a += [self.ch([self.n(-8, 8), self.n(-30, 30), "0", "abc", str(I64_MIN)])]
                if self.p(0.5):
                    a += ["WITHSCORES"]
            return a
        if r == 33:
            return ["ZSCAN*", k()]
        if r == 34:
            a = ["ZADD", k()]
            for _ in range(self.r.randint(5, 20)):
                a += [self.n(0, 50), "e" + self.n(0, 200)]
            return a
        if r == 35:
            return ["SORT", k()] + self.sort_opts()
        if r == 36:
            return ["ZADD", k(), self.ch(["GT", "LT", "NX", "XX"]), "CH", self.score(), self.zmember(), self.score(), self.zmember()]
        if r == 37:
            return ["ZADD", k()] + self.ch([["INCR"], ["NX", "INCR"], ["XX", "INCR"], ["GT", "INCR"], ["LT", "INCR"], ["GT", "LT"], ["NX", "GT"], ["NX", "XX"], ["LT", "CH"]]) + [self.score(), self.zmember()]
        if r == 38:
            return ["ZINCRBY", k(), self.ch(["inf", "-inf", "1e308", "nan", "1.5"]), self.zmember()]
        return ["ZRANGE", k(), "0", "-1", "WITHSCORES"]

    def zrange_like(self, head):
        mode = self.r.randrange(3)
        if mode == 0:
            a = head + [self.int_arg(-6, 6, 0.1), self.int_arg(-6, 6, 0.1)]
        elif mode == 1:
            a = head + [self.score_bound(), self.score_bound(), "BYSCORE"]
        else:
            a = head + [self.lex_bound(), self.lex_bound(), "BYLEX"]
        if self.p(0.4):
            a += ["REV"]
        if self.p(0.4):
            a += self.limit()
        if head[0] == "ZRANGE" and self.p(0.4):
            a += ["WITHSCORES"]
        if self.p(0.05):
            self.r.shuffle(a[4:])
        return a

    def zsetop(self):
        op = self.ch(["ZUNION", "ZINTER", "ZDIFF", "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
        # sources may be sets too (ZUNION accepts sets)
        ks = [self.key("zset") if self.p(0.8) else self.key("set") for _ in range(self.r.randint(1, 3))]
        nk = str(len(ks)) if self.p(0.92) else self.ch(["0", "-1", str(len(ks) + 1), "abc"])
        a = [op] + ([self.key("zset")] if op.endswith("STORE") else []) + [nk] + ks
        if not op.startswith("ZDIFF") or self.p(0.1):
            if self.p(0.4):
                a += ["WEIGHTS"] + [self.ch(["1", "2", "-1", "0", "0.5", "inf", "-inf", "abc", "nan"]) for _ in range(len(ks) if self.p(0.9) else 1)]
            if self.p(0.4):
                a += ["AGGREGATE", self.ch(["SUM", "MIN", "MAX", "sum", "AVG"])]
        if not op.endswith("STORE") and self.p(0.5):
            a += ["WITHSCORES"]
        return a

    # ---- streams
    def stream_id(self, k):
        ms = self.stream_ms.get(k, 0)
        c = self.r.randrange(10)
        if c < 6:
            ms += self.r.randint(0, 3)
            self.stream_ms[k] = ms
            return "%d-%d" % (ms, self.r.randint(0, 3)) if self.p(0.7) else "%d-*" % ms
        if c < 8:
            return "%d-%d" % (self.r.randint(0, ms + 1), self.r.randint(0, 3))
        return self.ch(["0-0", "0-1", "abc", "18446744073709551615-18446744073709551615", "1-", "-1", "5"])

    def range_id(self):
        return self.ch(["-", "+", "0", "0-1", "1", "2-0", "(1-1", "(0", "5-2", self.n(0, 30), "(" + self.n(0, 30), "abc"])

    def g_stream(self):
        k = lambda: self.key("stream")
        r = self.r.randrange(26)
        if r < 7:
            key = k()
            a = ["XADD", key]
            if self.p(0.1):
                a += ["NOMKSTREAM"]
            if self.p(0.15):
                a += [self.ch(["MAXLEN", "MINID"])] + ([self.ch(["=", "~"])] if self.p(0.5) else []) + [self.n(0, 5)]
            a += [self.stream_id(key)]
            for _ in range(self.r.randint(1, 3)):
                a += [self.ch(["f1", "f2", "name", "v"]), self.value()]
            return a
        if r == 7:
            return ["XLEN", k()]
        if r in (8, 9):
            a = [self.ch(["XRANGE", "XREVRANGE"]), k(), self.range_id(), self.range_id()]
            if self.p(0.4):
                a += ["COUNT", self.ch([self.n(0, 4), "-1"])]
            return a
        if r == 10:
            return ["XDEL", k()] + [self.stream_id(k()) if self.p(0.3) else "%d-%d" % (self.r.randint(0, 20), self.r.randint(0, 3)) for _ in range(self.r.randint(1, 3))]
        if r == 11:
            return ["XTRIM", k(), self.ch(["MAXLEN", "MINID"])] + ([self.ch(["=", "~"])] if self.p(0.4) else []) + [self.ch([self.n(0, 6), "-1", "abc"])] + (["LIMIT", self.n(0, 3)] if self.p(0.15) else [])
        if r == 12:
            ks = self.keys("stream", 1, 2)
            a = ["XREAD"] + (["COUNT", self.n(0, 3)] if self.p(0.5) else []) + ["STREAMS"] + ks + [self.ch(["0", "0-0", "1", "3-1", "$"]) for _ in ks]
            return a
        if r in (13, 14):
            o = self.r.randrange(6)
            if o < 2:
                return ["XGROUP", "CREATE", k(), self.ch(["g1", "g2"]), self.ch(["0", "$", "1-0", "abc"])] + (["MKSTREAM"] if self.p(0.4) else []) + (["ENTRIESREAD", self.n(0, 5)] if self.p(0.2) else [])
            if o == 2:
                return ["XGROUP", "SETID", k(), self.ch(["g1", "g2", "nog"]), self.ch(["0", "$", "2-0"])] + (["ENTRIESREAD", self.n(-1, 5)] if self.p(0.2) else [])
            if o == 3:
                return ["XGROUP", "DESTROY", k(), self.ch(["g1", "g2"])]
            if o == 4:
                return ["XGROUP", "CREATECONSUMER", k(), self.ch(["g1", "g2"]), self.ch(["c1", "c2"])]
            return ["XGROUP", "DELCONSUMER", k(), self.ch(["g1", "g2"]), self.ch(["c1", "c2"])]
        if r in (15, 16):
            key = k()
            return ["XREADGROUP", "GROUP", self.ch(["g1", "g2"]), self.ch(["c1", "c2", "c3"])] + (["COUNT", self.n(1, 3)] if self.p(0.5) else []) + (["NOACK"] if self.p(0.15) else []) + ["STREAMS", key, self.ch([">", ">", "0", "0-0", "2-0"])]
        if r == 17:
            return ["XACK", k(), self.ch(["g1", "g2"])] + ["%d-%d" % (self.r.randint(0, 15), self.r.randint(0, 3)) for _ in range(self.r.randint(1, 3))]
        if r == 18:
            return ["XPENDING", k(), self.ch(["g1", "g2"])]
        if r == 19:
            return ["XCLAIM", k(), self.ch(["g1", "g2"]), self.ch(["c1", "c2"]), "0"] + ["%d-%d" % (self.r.randint(0, 15), self.r.randint(0, 3)) for _ in range(self.r.randint(1, 2))] + (["JUSTID"] if self.p(0.4) else [])
        if r == 20:
            return ["XAUTOCLAIM", k(), self.ch(["g1", "g2"]), self.ch(["c1", "c2"]), "0", self.ch(["0", "0-0", "3-0"])] + (["COUNT", self.n(1, 3)] if self.p(0.4) else []) + (["JUSTID"] if self.p(0.4) else [])
        if r == 21:
            return ["XINFO", self.ch(["STREAM", "GROUPS"]), k()]
        if r == 22:
            return ["XSETID", k(), self.stream_id(k())] + (["ENTRIESADDED", self.n(0, 30), "MAXDELETEDID", "0-1"] if self.p(0.2) else [])
        if r == 23:
            return ["XADD", k(), "*", "f", "v"] if False else ["XLEN", k()]
        return ["XRANGE", k(), "-", "+"]

    # ---- HyperLogLog
    def g_hll(self):
        k = lambda: self.key("hll")
        r = self.r.randrange(8)
        if r < 4:
            return ["PFADD", k()] + [self.ch(["e" + self.n(0, 300), self.value(), "x" + self.n(0, 5000)]) for _ in range(self.r.randint(0, 8))]
        if r == 4:
            return ["PFADD", k()] + ["y%d" % self.r.randrange(100000) for _ in range(self.r.randint(50, 200))]
        if r == 5:
            return ["PFCOUNT"] + self.keys("hll", 1, 3)
        if r == 6:
            return ["PFMERGE", k()] + self.keys("hll", 0, 3)
        return ["PFCOUNT", k()]

    # ---- geo
    def lonlat(self):
        if self.p(0.08):
            return [self.ch(["181", "-181", "abc", "0"]), self.ch(["86", "-85.06", "90", "x"])]
        return ["%.4f" % self.r.uniform(-10, 10), "%.4f" % self.r.uniform(40, 50)]

    def g_geo(self):
        k = lambda: self.key("geo")
        gm = lambda: self.ch(["p1", "p2", "p3", "p4", "p5", "p6", "nosuch"])
        r = self.r.randrange(14)
        if r < 4:
            a = ["GEOADD", k()]
            for f in ["NX", "XX", "CH"]:
                if self.p(0.1):
                    a.append(f)
            for _ in range(self.r.randint(1, 3)):
                a += self.lonlat() + [gm()]
            return a
        if r == 4:
            return ["GEOPOS", k()] + [gm() for _ in range(self.r.randint(1, 3))]
        if r == 5:
            return ["GEODIST", k(), gm(), gm()] + ([self.ch(["m", "km", "mi", "ft", "M", "yd"])] if self.p(0.6) else [])
        if r == 6:
            return ["GEOHASH", k()] + [gm() for _ in range(self.r.randint(0, 3))]
        if r in (7, 8, 9):
            store = self.p(0.25)
            a = ["GEOSEARCHSTORE", self.key("geo"), k()] if store else ["GEOSEARCH", k()]
            a += ["FROMMEMBER", gm()] if self.p(0.5) else ["FROMLONLAT"] + self.lonlat()
            if self.p(0.5):
                a += ["BYRADIUS", self.ch(["100", "500", "1000", "0", "-1", "2000"]), self.ch(["km", "m", "mi"])]
            else:
                a += ["BYBOX", self.ch(["100", "1000", "3000"]), self.ch(["200", "1500"]), self.ch(["km", "mi"])]
            if self.p(0.6):
                a += [self.ch(["ASC", "DESC"])]
            if self.p(0.4):
                a += ["COUNT", self.ch([self.n(1, 4), "0"])]
            if not store:
                for f in ["WITHCOORD", "WITHDIST", "WITHHASH"]:
                    if self.p(0.3):
                        a.append(f)
            elif self.p(0.4):
                a.append("STOREDIST")
            return a
        if r == 10:
            a = ["GEORADIUS", k()] + self.lonlat() + [self.ch(["100", "1000"]), "km"]
            for f in ["WITHCOORD", "WITHDIST", "WITHHASH", "ASC"]:
                if self.p(0.3):
                    a.append(f)
            return a
        if r == 11:
            a = ["GEORADIUSBYMEMBER", k(), gm(), self.ch(["100", "1000"]), "km"]
            if self.p(0.5):
                a += ["ASC", "COUNT", self.n(1, 3)]
            if self.p(0.2):
                a += ["STORE", self.key("geo")]
            return a
        if r == 12:
            return ["ZRANGE", k(), "0", "-1", "WITHSCORES"]
        return ["GEORADIUS_RO", k(), "5", "45", "500", "km", "ASC"]

    # ---- keys
    def anykey(self):
        return self.key(self.ch(["str", "hash", "list", "set", "zset", "stream", "hll", "geo"]))

    def g_keys(self):
        r = self.r.randrange(30)
        if r == 0:
            return [self.ch(["DEL", "UNLINK"])] + [self.anykey() for _ in range(self.r.randint(1, 3))]
        if r == 1:
            return ["EXISTS"] + [self.anykey() for _ in range(self.r.randint(1, 3))]
        if r == 2:
            return ["TYPE", self.anykey()]
        if r in (3, 4):
            k = self.anykey()
            dst = k if self.p(0.1) else self.anykey()
            return [self.ch(["RENAME", "RENAMENX"]), k, dst]
        if r in (5, 6):
            a = ["COPY", self.anykey(), self.anykey()]
            if self.p(0.4):
                a += ["DB", self.ch(["0", "1", "1", "16", "-1", "abc"])]
            if self.p(0.4):
                a += ["REPLACE"]
            return a
        if r == 7:
            return ["MOVE", self.anykey(), self.ch(["1", "1", "0", "16", "abc"])]
        if r in (8, 9, 10):
            a = [self.ch(["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]), self.anykey()]
            c = a[0]
            if c == "EXPIRE":
                t = self.ch(["1000", "2000", "100000", "0", "-1", str(I64_MAX), "abc", "9223372036854775", "4611686018427387904"])
            elif c == "PEXPIRE":
                t = self.ch(["1000000", "5000000", "0", "-5", str(I64_MAX), "9223372036854775"])
            elif c == "EXPIREAT":
                t = self.ch(["4000000000", "4100000000", "1", "0", str(I64_MAX)])
            else:
                t = self.ch(["4000000000000", "4100000000000", "1", str(I64_MAX)])
            a.append(t)
            if self.p(0.5):
                a += [self.ch(["NX", "XX", "GT", "LT", "nx"])]
                if self.p(0.15):
                    a += [self.ch(["NX", "XX", "GT", "LT"])]
            return a
        if r == 11:
            return [self.ch(["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]), self.anykey()]
        if r == 12:
            return ["PERSIST", self.anykey()]
        if r == 13:
            return ["OBJECT", "ENCODING", self.anykey()]
        if r == 14:
            return ["DBSIZE"]
        if r == 15:
            return ["KEYS", self.ch(["*", "s*", "{t}*", "?0", "[hz]*", "*[0-2]", "x\\*", "[^s]*"])]
        if r == 16:
            return ["SCAN*"] + (["MATCH", self.ch(["*", "s*", "*1"])] if self.p(0.3) else []) + (["TYPE", self.ch(["string", "hash", "list", "set", "zset", "stream", "nosuch", "STRING"])] if self.p(0.5) else [])
        if r == 17:
            return ["RANDOMKEY"]
        if r == 18:
            return ["TOUCH"] + [self.anykey() for _ in range(self.r.randint(1, 3))]
        if r == 19:
            return ["SELECT", self.ch(["0", "0", "0", "1"])]
        if r == 20:
            return ["DUMP", self.anykey()]
        if r == 21:
            return ["SWAPDB", self.ch(["0", "1"]), self.ch(["0", "1"])] if self.p(0.3) else ["DBSIZE"]
        if r == 22:
            return ["FLUSHDB"] if self.p(0.05) else ["EXISTS", self.anykey()]
        if r == 23:
            return ["OBJECT", self.ch(["ENCODING", "REFCOUNT", "HELP"]), self.anykey()] if self.p(0.5) else ["OBJECT", "ENCODING", self.anykey()]
        if r == 24:
            return ["GETEX", self.key("str"), self.ch(["EX", "PX", "EXAT"]), self.ch(["0", "-1", "abc", "9223372036854775807"])]
        if r == 25:
            return ["SET", self.key("str"), self.value(), self.ch(["EX", "PX"]), self.ch(["9223372036854775807", "9223372036854776", "0"])]
        return ["TYPE", self.anykey()]

    # ---- misc argument edge cases and arities
    def g_misc(self):
        r = self.r.randrange(8)
        if r == 0:
            return [self.ch(["GET", "SET", "HSET", "LPUSH", "SADD", "ZADD", "XADD", "PFADD", "GEOADD", "EXPIRE", "RENAME", "BITFIELD", "LPOS", "ZRANGE", "SORT", "COPY", "OBJECT", "LMPOP", "ZUNION", "SINTERCARD"])]
        if r == 1:
            return [self.ch(["NOSUCHCMD", "get ", "", "xadd\x00"]), "a"]
        if r == 2:
            return ["ECHO", self.value()]
        if r == 3:
            return ["PING"] + ([self.value()] if self.p(0.5) else [])
        return ["EXISTS", self.anykey()]

    FAMILIES = [("string", 14), ("hash", 9), ("list", 11), ("set", 11), ("zset", 16), ("stream", 7),
                ("hll", 3), ("geo", 5), ("keys", 10), ("misc", 2)]

    def command(self):
        tot = sum(w for _, w in self.FAMILIES)
        x = self.r.randrange(tot)
        for name, w in self.FAMILIES:
            if x < w:
                return self.with_arity_noise(getattr(self, "g_" + name)())
            x -= w
        raise AssertionError

    def transaction(self):
        """[(conn index, args)]: WATCH maybe, MULTI, queued commands, EXEC or DISCARD."""
        c = self.r.randrange(2)
        steps = []
        watched = []
        if self.p(0.4):
            watched = [self.anykey() for _ in range(self.r.randint(1, 2))]
            steps.append((c, ["WATCH"] + watched))
            if self.p(0.5):
                # the other connection may touch a watched key
                other = 1 - c
                k = self.ch(watched)
                steps.append((other, self.ch([["DEL", k], ["EXPIRE", k, "1000"], ["EXISTS", k], ["SET", k, "w"], ["PERSIST", k]])))
        steps.append((c, ["MULTI"]))
        for _ in range(self.r.randint(0, 5)):
            cmd = self.command()
            # no random replies, hash-table orders or lex ranges (undefined over a mixed-score skiplist) in EXEC
            if cmd[0].endswith("*") or cmd[0] in RANDOM_CMDS or cmd[0] in LEX_CMDS or cmd[0] in ("SELECT", "SWAPDB", "MULTI", "KEYS", "DUMP", "SORT", "SORT_RO"):
                cmd = ["INCR", self.key("str")]
            if self.p(0.08):
                cmd = self.ch([["WATCH", "a"], ["MULTI"], ["NOSUCH"], ["GET"], ["SET", "a"]])
            steps.append((c, cmd))
        steps.append((c, ["EXEC"] if self.p(0.85) else ["DISCARD"]))
        return steps


RANDOM_CMDS = {"SRANDMEMBER", "HRANDFIELD", "ZRANDMEMBER", "RANDOMKEY", "SPOP"}
UNORDERED = {"DUMP", "SMEMBERS", "SINTER", "SUNION", "SDIFF", "HGETALL", "HKEYS", "HVALS", "KEYS", "SORT", "SORT_RO"}
LEX_CMDS = {"ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT", "ZREMRANGEBYLEX", "ZRANGE", "ZRANGESTORE"}
TIMES = {"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"}


# ---------------------------------------------------------------- runner


class Fuzzer:
    def __init__(self, opts, ports):
        self.opts = opts
        self.ports = ports  # (ringkv, redis)
        self.found = []
        self.log = open(opts.log, "w") if opts.log else None
        self.conns = None
        self.history = []

    def connect(self):
        if self.conns:
            for pair in self.conns:
                for c in pair:
                    c.close()
        self.conns = []
        self.db = [0, 0]
        if getattr(self, "sides", None):
            for c in self.sides:
                c.close()
        self.sides = [Conn(p) for p in self.ports]
        for proto in (2, 3):
            pair = [Conn(p) for p in self.ports]
            if proto == 3:
                for c in pair:
                    c.call(["HELLO", "3"])
            self.conns.append(pair)

    def both(self, ci, args):
        out = []
        for c in self.conns[ci]:
            c.send(args)
        for c in self.conns[ci]:
            try:
                out.append(c.read_frame())
            except Closed as e:
                out.append((b"<%s>" % str(e).encode(), ("closed", None)))
        return out

    def side(self, ci, which=1):
        """A side connection to one server (1: redis-server, 0: ringkv), in connection ci's
        db: queries that must not land in ci's MULTI or disturb its state."""
        c = self.sides[which]
        c.call(["SELECT", str(self.db[ci])])
        return c

    def redis_side(self, args, ci=0):
        return self.side(ci).call(args)[1]

    def report(self, seed, i, ci, args, ra, rb, why):
        msg = "DIVERGENCE seed=%d cmd#%d resp%d %s: %s\n  ringkv: %s\n  redis:  %s" % (
            seed, i, 2 + ci, why, showcmd(args), show(ra), show(rb))
        print(msg, flush=True)
        self.found.append(msg)
        if self.opts.stop_on_first:
            raise SystemExit(1)

    def scan_all(self, ci, args):
        """SCAN* family: iterate to the end on each server; compare element multisets."""
        cmd = args[0][:-1]
        key = [] if cmd == "SCAN" else [args[1]]
        rest = args[1:] if cmd == "SCAN" else args[2:]
        results = []
        for c in self.conns[ci]:
            cursor = b"0"
            elems = []
            for _ in range(10000):
                raw, v = c.call([cmd] + key + [cursor] + rest + ["COUNT", "3"])
                if v[0] != "array" or len(v[1]) != 2 or v[1][1][0] != "array":
                    elems = [raw]
                    break
                cursor = v[1][0][1]
                elems += [repr(e) for e in v[1][1][1]]
                if cursor == b"0":
                    break
            if cmd in ("HSCAN", "ZSCAN") and elems and isinstance(elems[0], str):
                elems = [(elems[i], elems[i + 1]) for i in range(0, len(elems) - 1, 2)]
            results.append(sorted(elems, key=repr))
        return results

    def random_ok(self, args, va, vb):
        """SRANDMEMBER/HRANDFIELD/ZRANDMEMBER/RANDOMKEY/SPOP replies both servers may choose differently."""
        cmd = args[0].upper()
        if va[0] != vb[0]:
            return False
        if cmd == "RANDOMKEY":
            if va[0] == "nil":
                return True
            return self.redis_side(["EXISTS", va[1]], self.ci) == ("int", 1)
        if va[0] in ("error", "nil", "bulk") and va == vb and cmd != "SRANDMEMBER":
            return True
        if cmd == "SPOP":
            return canon(va) == canon(vb)
        if va[0] == "bulk":  # one member, no count
            return True  # membership checked by the caller's fetch below
        if va[0] not in ("array", "set"):
            return va == vb
        if len(va[1]) != len(vb[1]):
            return False
        count = int(args[2]) if len(args) > 2 else 1
        if count > 0:
            if len(set(repr(e) for e in va[1])) != len(va[1]):
                # WITHSCORES/WITHVALUES pairs flat in RESP2 may repeat a value: check the keys only
                if len(args) <= 3:
                    return False
        return True

    @staticmethod
    def sval(v):
        """A value or score as compared across RESP2 bulk and RESP3 double."""
        if v[0] in ("bulk", "double", "verbatim"):
            try:
                return float(v[1])
            except ValueError:
                return v[1]
        return repr(v)

    def random_members_ok(self, args, va, fetched):
        cmd = args[0].upper()
        if va[0] == "bulk":
            elems = [va]
        elif va[0] in ("array", "set"):
            elems = va[1]
        else:
            return True
        withv = len(args) > 3
        if cmd == "SRANDMEMBER":
            have = set(repr(e[1]) for e in fetched[1]) if fetched[0] in ("array", "set") else set()
            return all(repr(e[1]) in have for e in elems)
        pairs = {}
        if fetched[0] == "array":
            x = fetched[1]
            if x and x[0][0] == "array":
                for p in x:
                    pairs[repr(p[1][0][1])] = self.sval(p[1][1])
            else:
                for j in range(0, len(x) - 1, 2):
                    pairs[repr(x[j][1])] = self.sval(x[j + 1])
        elif fetched[0] == "map":
            for a, b in fetched[1]:
                pairs[repr(a[1])] = self.sval(b)
        if not withv:
            return all(repr(e[1]) in pairs for e in elems)
        if elems and elems[0][0] == "array":  # RESP3 nested pairs
            return all(repr(p[1][0][1]) in pairs and pairs[repr(p[1][0][1])] == self.sval(p[1][1]) for p in elems)
        for j in range(0, len(elems) - 1, 2):
            f, v = repr(elems[j][1]), self.sval(elems[j + 1])
            if pairs.get(f) != v:
                return False
        return True

    def lex_undefined(self, ci, args):
        """Before a lex range command: whether it runs over a skiplist whose scores differ,
        where Redis's answer depends on the skiplist's random levels."""
        cmd = args[0].upper()
        if len(args) < 3 or cmd in ("ZRANGE", "ZRANGESTORE") and "BYLEX" not in [a.upper() for a in args]:
            return False
        src = args[2] if cmd == "ZRANGESTORE" else args[1]
        enc = self.redis_side(["OBJECT", "ENCODING", src], ci)
        if enc != ("bulk", b"skiplist"):
            return False
        v = self.redis_side(["ZRANGE", src, "0", "-1", "WITHSCORES"], ci)
        if v[0] != "array":
            return False
        scores = set(repr(v[1][j]) for j in range(1, len(v[1]), 2))  # the side connection speaks RESP2
        return len(scores) > 1

    def resync(self, ci, key):
        """Copy redis-server's value of key (DUMP/RESTORE) onto ringkv."""
        payload = self.redis_side(["DUMP", key], ci)
        ttl = self.redis_side(["PTTL", key], ci)
        if payload[0] != "bulk":
            self.side(ci, 0).call(["DEL", key])
        else:
            self.side(ci, 0).call(["RESTORE", key, str(max(ttl[1], 0)), payload[1], "REPLACE"])

    def step(self, seed, i, ci, args):
        if self.log:
            self.log.write("%d %s\n" % (ci, showcmd(args)))
        self.history.append((ci, args))
        self.ci = ci
        cmd = args[0].upper()
        if cmd.endswith("*"):
            if cmd == "SPOP*":
                card = self.redis_side(["SCARD", args[1]], ci)
                if card[0] == "int" and card[1] <= 1:
                    args = ["SPOP", args[1]]
                else:
                    args = ["SPOP", args[1], str(card[1] + self.r.randint(0, 2)) if card[0] == "int" else "3"]
                return self.step(seed, i, ci, args)
            ra, rb = self.scan_all(ci, args)
            if ra != rb:
                self.report(seed, i, ci, args, repr(ra).encode(), repr(rb).encode(), "scan sets differ")
            return
        fetched = None
        if cmd in ("SRANDMEMBER", "HRANDFIELD", "ZRANDMEMBER") and len(args) >= 2:
            fetch = {"SRANDMEMBER": ["SMEMBERS", args[1]], "HRANDFIELD": ["HGETALL", args[1]],
                     "ZRANDMEMBER": ["ZRANGE", args[1], "0", "-1", "WITHSCORES"]}[cmd]
            fetched = self.redis_side(fetch, ci)
        lex_undefined = cmd in LEX_CMDS and self.lex_undefined(ci, args)
        (ra, va), (rb, vb) = self.both(ci, args)
        if cmd == "SELECT" and vb == ("simple", b"OK"):
            self.db[ci] = int(args[1])
        if len(args) > 2 and any(a in ("0", "1") for a in args[2:]) and any(a.upper() in ("EXAT", "PXAT", "EXPIREAT", "PEXPIREAT") for a in args):
            # an already-past time: the key goes at the next touch (or active expiry, timing):
            # touch it on both so DBSIZE/SCAN/DIGEST do not depend on the active-expire cycle
            self.both(ci, ["EXISTS", args[1]])
        if ra == rb:
            return
        if va[0] == "closed" or vb[0] == "closed":
            self.report(seed, i, ci, args, ra, rb, "connection")
            self.connect()
            return
        if cmd in RANDOM_CMDS:
            if self.random_ok(args, va, vb) and (fetched is None or self.random_members_ok(args, va, fetched)):
                return
            self.report(seed, i, ci, args, ra, rb, "random reply not acceptable")
            return
        if cmd in TIMES and va[0] == vb[0] == "int" and abs(va[1] - vb[1]) <= (2000 if cmd.startswith("P") else 2):
            return
        if cmd == "DUMP" and va[0] == vb[0] == "bulk":
            # a hash table's DUMP holds its (seeded) order: ringkv's payload restored on
            # redis-server must give the same value
            enc = self.redis_side(["OBJECT", "ENCODING", args[1]], ci)
            if enc == ("bulk", b"hashtable"):
                rc = self.side(ci)
                got = rc.call(["RESTORE", "__fz_tmp", "0", va[1], "REPLACE"])[1]
                d1 = rc.call(["DEBUG", "DIGEST-VALUE", "__fz_tmp"])[1]
                d2 = rc.call(["DEBUG", "DIGEST-VALUE", args[1]])[1]
                rc.call(["DEL", "__fz_tmp"])
                if got == ("simple", b"OK") and d1 == d2:
                    return
        if lex_undefined:
            # not compared; the key written is copied from redis-server
            if cmd in ("ZRANGESTORE", "ZREMRANGEBYLEX"):
                self.resync(ci, args[1])
            return
        if cmd in ("SORT", "SORT_RO") and "nosort" in args and va[0] == vb[0] and va[0] in ("array", "set") and len(va[1]) == len(vb[1]):
            enc = self.redis_side(["OBJECT", "ENCODING", args[1]], ci)
            if enc == ("bulk", b"hashtable"):  # a hash table's order, LIMIT picks any
                return
        if cmd in ("SORT", "SORT_RO") and self.sort_alpha_ties_only(ci, args, va, vb):
            return
        if cmd in UNORDERED and canon(va) == canon(vb):
            if cmd in ("SINTER", "SUNION", "SDIFF", "KEYS"):
                return
            enc = self.redis_side(["OBJECT", "ENCODING", args[1]], ci)
            # SORT of a list or intset is compared in full, ties too (BY ...
            # LIMIT runs Redis's pqsort: commands/pqsort.rs); a zset's ties
            # keep its dict's order (SORT converts it to a skiplist first).
            if enc[0] != "bulk" or enc[1] in (b"hashtable",) or cmd in ("SORT", "SORT_RO") and enc[1] == b"skiplist":
                return
            self.report(seed, i, ci, args, ra, rb, "order differs (%s)" % enc[1].decode())
            return
        if cmd == "EXEC" and va[0] == vb[0] == "array" and len(va[1]) == len(vb[1]):
            # an EXEC's replies hold no random commands (the generator leaves them out);
            # a queued hash-table-ordered reply may differ in order only
            if canon(va) == canon(vb):
                return
        self.report(seed, i, ci, args, ra, rb, "reply")
        if len(args) > 1:
            self.context(ci, args[2] if cmd in ("ZRANGESTORE",) else args[1])

    def sort_alpha_ties_only(self, ci, args, va, vb):
        """SORT ... BY <pattern> ALPHA of a hash-table set or of a zset: redis-server
        fills its vector in the dict's (seeded) order and its sortCompare leaves equal
        weights unordered with ALPHA (no tie-break by element, unlike the numeric
        path), so elements of equal weight come in that order, and LIMIT may pick
        other ones among them. True when the replies have the same length and, where
        the reply is the elements themselves (no GET), every element is the key's and
        the weights read on redis-server run in the same order on both: only ties
        moved. With GET: the same elements without LIMIT, the same length with it.
        A list's or an intset's order is deterministic and compared in full."""
        up = [a.upper() for a in args]
        if "ALPHA" not in up or "BY" not in up[:-1]:
            return False
        pattern = args[up.index("BY") + 1]
        if pattern.lower() == "nosort" or "*" not in pattern:
            return False
        if va[0] != "array" or vb[0] != "array" or len(va[1]) != len(vb[1]):
            return False
        kind = self.redis_side(["TYPE", args[1]], ci)
        enc = self.redis_side(["OBJECT", "ENCODING", args[1]], ci)
        if not (kind == ("simple", b"zset") or kind == ("simple", b"set") and enc == ("bulk", b"hashtable")):
            return False
        if "GET" in up:
            return "LIMIT" in up or canon(va) == canon(vb)
        pairs = self.redis_side(["SORT", args[1], "BY", "nosort", "GET", "#", "GET", pattern], ci)
        if pairs[0] != "array":
            return False
        weight = {}
        for j in range(0, len(pairs[1]) - 1, 2):
            weight[pairs[1][j]] = pairs[1][j + 1]
        if any(e not in weight for e in va[1]):
            return False
        return [weight[e] for e in va[1]] == [weight.get(e) for e in vb[1]]

    def context(self, ci, key):
        """The key's encoding and contents on both servers, after the command."""
        t = self.redis_side(["TYPE", key], ci)
        read = {b"zset": ["ZRANGE", key, "0", "-1", "WITHSCORES"], b"list": ["LRANGE", key, "0", "-1"],
                b"set": ["SMEMBERS", key], b"hash": ["HGETALL", key], b"string": ["GET", key]}.get(t[1])
        for name, c in zip(("ringkv", "redis"), (self.side(ci, 0), self.side(ci, 1))):
            enc = c.call(["OBJECT", "ENCODING", key])[0]
            body = c.call(read)[0] if read else b""
            print("  %s after: %s %s" % (name, show(enc, 40), show(body, 600)), flush=True)

    def differing_keys(self):
        """Keys (db:name) whose DEBUG DIGEST-VALUE differs, or that only one side has."""
        pair = [Conn(p) for p in self.ports]
        bad = []
        for db in ("0", "1"):
            names = set()
            for c in pair:
                c.call(["SELECT", db])
                names |= set(k[1] for k in c.call(["KEYS", "*"])[1][1])
            for k in sorted(names):
                xs = [c.call(["DEBUG", "DIGEST-VALUE", k])[0] for c in pair]
                ts = [c.call(["PTTL", k])[1] for c in pair]
                if xs[0] != xs[1] or (ts[0][1] == -1) != (ts[1][1] == -1):
                    bad.append("%s:%s" % (db, k.decode("latin-1")))
        for c in pair:
            c.close()
        return bad

    def digest_check(self, seed, i):
        (ra, va), (rb, vb) = self.both(0, ["DEBUG", "DIGEST"])
        if va[0] == "closed" or vb[0] == "closed":
            self.report(seed, i, 0, ["DEBUG", "DIGEST"], ra, rb, "connection")
            self.connect()
            return False
        if ra == rb:
            self.history = []
            return True
        msg = "DIGEST MISMATCH seed=%d after cmd#%d: ringkv %s redis %s" % (seed, i, show(ra), show(rb))
        bad = self.differing_keys()
        (ka, _), (kb, _) = self.both(0, ["DBSIZE"])
        msg += "\n  keys differing: %s (dbsize ringkv %s redis %s)\n  commands since the last equal digest:\n" % (bad, show(ka), show(kb))
        msg += "".join("    resp%d %s\n" % (2 + c, showcmd(a)) for c, a in self.history[-40:])
        print(msg, flush=True)
        self.found.append(msg)
        if self.opts.stop_on_first:
            raise SystemExit(1)
        # resynchronise: start both from empty
        self.both(0, ["FLUSHALL"])
        self.history = []
        return False

    def run_seed(self, seed):
        self.r = random.Random(seed)
        g = Gen(random.Random(seed * 7919 + 1), self.opts)
        self.connect()
        for ci in range(2):
            self.both(ci, ["SELECT", "0"])
        self.both(0, ["FLUSHALL"])
        i = 0
        while i < self.opts.count:
            if g.p(0.03):
                steps = g.transaction()
            else:
                steps = [(g.r.randrange(2), g.command())]
            for ci, args in steps:
                self.step(seed, i, ci, args)
                i += 1
                if i % self.opts.digest_every == 0:
                    self.digest_check(seed, i)
            # never stay in MULTI or WATCH across steps
        self.digest_check(seed, i)
        if self.opts.dump_restore:
            self.dump_restore(seed)
        if self.opts.rdb_swap:
            return i
        return i

    # ---- part 3
    def all_keys(self, side):
        c = self.conns[0][side]
        out = {}
        for db in (0, 1):
            c.call(["SELECT", str(db)])
            _, v = c.call(["KEYS", "*"])
            out[db] = [k[1] for k in v[1]]
        c.call(["SELECT", "0"])
        return out

    def dump_restore(self, seed):
        """DUMP every key on one server, RESTORE it (REPLACE, with its PTTL) on the other: digests equal."""
        for src in (0, 1):
            dst = 1 - src
            names = ("ringkv", "redis")
            self.both(0, ["SELECT", "0"])
            self.conns[0][dst].call(["FLUSHALL"])
            keys = self.all_keys(src)
            sc, dc = self.conns[0][src], self.conns[0][dst]
            for db, ks in keys.items():
                sc.call(["SELECT", str(db)])
                dc.call(["SELECT", str(db)])
                for k in ks:
                    _, payload = sc.call(["DUMP", k])
                    _, ttl = sc.call(["PTTL", k])
                    if payload[0] != "bulk":
                        continue
                    t = str(max(ttl[1], 0)) if ttl[0] == "int" else "0"
                    raw, v = dc.call(["RESTORE", k, t, payload[1], "REPLACE"])
                    if v[0] == "error":
                        msg = "RESTORE on %s of %s's DUMP of %r failed: %s" % (names[dst], names[src], k, show(raw))
                        print(msg, flush=True)
                        self.found.append(msg)
            sc.call(["SELECT", "0"])
            dc.call(["SELECT", "0"])
            (ra, _), (rb, _) = self.both(0, ["DEBUG", "DIGEST"])
            print("seed %d: DUMP on %s, RESTORE on %s: digests %s" % (seed, names[src], names[dst], "equal" if ra == rb else "DIFFER"), flush=True)
            if ra != rb:
                self.found.append("DUMP/RESTORE %s->%s seed %d: digest ringkv %s redis %s" % (names[src], names[dst], seed, show(ra), show(rb)))
                bad = self.differing_keys()
                print("  keys differing: %r" % bad, flush=True)
                # both sides back to the source's state for what follows
                return


def rdb_swap(opts, fz, procs, seed):
    """SAVE on one server, restart the other on that file: digests equal; both ways."""
    names = ("ringkv", "redis")
    for src in (0, 1):
        dst = 1 - src
        fz.connect()
        _, v = fz.conns[0][src].call(["SAVE"])
        (ra, _), (rb, _) = fz.both(0, ["DEBUG", "DIGEST"])
        before = ra if src == 0 else rb
        p = procs[dst]
        p.stop()
        srcfile = os.path.join(procs[src].workdir, names[src] + ".rdb")
        shutil.copy(srcfile, os.path.join(p.workdir, names[dst] + ".rdb"))
        p.start()
        fz.connect()
        (ra, _), (rb, _) = fz.both(0, ["DEBUG", "DIGEST"])
        ok = ra == rb
        print("seed %d: SAVE on %s, %s restarted on it: digests %s (%s / %s)" % (seed, names[src], names[dst], "equal" if ok else "DIFFER", show(ra), show(rb)), flush=True)
        if not ok:
            fz.found.append("RDB %s->%s seed %d: digest ringkv %s redis %s" % (names[src], names[dst], seed, show(ra), show(rb)))
            bad = fz.differing_keys()
            print("  keys differing: %r" % bad, flush=True)
            return
        os.unlink(os.path.join(p.workdir, names[dst] + ".rdb"))


def parse_seeds(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        else:
            out.append(int(part))
    return out


def start_servers(opts, extra, prefix):
    """Starts ringkv and redis-server on opts' ports (unless --no-start): (workdir, procs)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    procs = []
    if not opts.no_start:
        for kind, binary, port in (("ringkv", opts.ringkv, opts.ringkv_port), ("redis", opts.redis_server, opts.redis_port)):
            p = Proc(kind, server_argv(kind, binary, port, workdir, extra, opts.shards), port, workdir)
            p.start()
            procs.append(p)
    return workdir, procs


def check_alive(procs, fz, seed, workdir):
    for p in procs:
        if not p.alive():
            print("%s DIED during seed %d (log in %s)" % (p.name, seed, workdir), flush=True)
            fz.found.append("%s died, seed %d" % (p.name, seed))
            raise SystemExit(2)


def stop_servers(procs, fz, workdir):
    """Stops the servers; their logs are kept when something was found."""
    for p in procs:
        p.stop()
    if not fz.found:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print("server logs kept in %s" % workdir)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help="e.g. 1-20 or 3,5,9")
    ap.add_argument("--count", type=int, default=5000, help="commands per seed")
    ap.add_argument("--digest-every", type=int, default=25)
    ap.add_argument("--ringkv", default=os.path.join(ROOT, "target", "release", "ringkv"))
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--ringkv-port", type=int, default=7180)
    ap.add_argument("--redis-port", type=int, default=7280)
    ap.add_argument("--no-start", action="store_true", help="use servers already running on the ports")
    ap.add_argument("--shards", type=int, default=3, help="ringkv's --shards (keys spread over more shards with more)")
    ap.add_argument("--small-encodings", action="store_true", help="small listpack/intset limits, so conversions happen often")
    ap.add_argument("--dump-restore", action="store_true", help="after each seed: DUMP on one side, RESTORE on the other, both ways")
    ap.add_argument("--rdb-swap", action="store_true", help="after each seed: SAVE on one side, restart the other on the file, both ways")
    ap.add_argument("--stop-on-first", action="store_true")
    ap.add_argument("--log", help="write every command sent to this file")
    opts = ap.parse_args()
    seeds = parse_seeds(opts.seeds) if opts.seeds else [opts.seed if opts.seed is not None else random.randrange(1 << 30)]
    extra = []
    if opts.small_encodings:
        extra = ["--hash-max-listpack-entries", "4", "--hash-max-listpack-value", "8", "--set-max-intset-entries", "5",
                 "--zset-max-listpack-entries", "4", "--zset-max-listpack-value", "8", "--list-max-listpack-size", "4"]
    workdir, procs = start_servers(opts, extra, "difffuzz.")
    fz = Fuzzer(opts, (opts.ringkv_port, opts.redis_port))
    total = 0
    try:
        for seed in seeds:
            print("seed %d (%d commands)%s" % (seed, opts.count, " small encodings" if opts.small_encodings else ""), flush=True)
            total += fz.run_seed(seed)
            if opts.rdb_swap and procs:
                rdb_swap(opts, fz, procs, seed)
            check_alive(procs, fz, seed, workdir)
    finally:
        stop_servers(procs, fz, workdir)
    print("seeds %s: %d commands, %d divergences" % (opts.seeds or seeds[0], total, len(fz.found)))
    sys.exit(1 if fz.found else 0)


if __name__ == "__main__":
    main()
