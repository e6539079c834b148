#!/usr/bin/env python3
"""Differential argument fuzzer: every command of the table with random
argument counts and edge-case values, ringkv (--shards 3) against
redis-server 7.0, reply bytes compared.

A development tool, not part of `cargo test` (finds go to
tests/corpus/fuzz.txt). Where difffuzz.py sends well-formed commands to reach
deep states, this one sends the ill-formed: the command list and each
command's option tokens come from redis-server's COMMAND and COMMAND DOCS;
each call takes a command, an argument count around its arity (one short,
exact, a few over), and each argument is a key of some type (string, integer,
list, hash, set, zset, stream, HyperLogLog, missing), an edge value (empty,
"-0", "1e400", "inf", "nan", 2^63, -2^63-1, huge and negative counts,
ranges and IDs), one of the command's tokens, or a small number. One RESP2
connection per server; every reply compared byte for byte (element order
ignored for the replies Redis orders by hash table); DEBUG DIGEST compared
before the data set is rebuilt every --reset-every calls. Commands whose
reply is random, time-dependent or describes the process (INFO, CLIENT
LIST, OBJECT IDLETIME, ...) and those that block, change the connection or
the server's state for good (SUBSCRIBE, MULTI, CONFIG SET, SHUTDOWN, ...)
are not sent.

    python3 tests/tools/argfuzz.py --seed 1 --count 20000
    python3 tests/tools/argfuzz.py --seeds 1-10 --count 5000 --only zadd,zrange
"""

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from difffuzz import Closed, Conn, canon, show, showcmd  # noqa: E402
from fuzzkit import common_args, seeds_of, start_pair, stop_pair  # noqa: E402

# Never sent: they block, change the connection or the server for good, or
# answer with what differs by nature (process, time, randomness, docs).
DENY = set("""
shutdown debug monitor subscribe psubscribe ssubscribe unsubscribe punsubscribe sunsubscribe sync psync replconf
replicaof slaveof failover cluster client config save bgsave bgrewriteaof migrate quit reset hello auth acl multi
exec discard watch unwatch blpop brpop blmove brpoplpush bzpopmin bzpopmax blmpop bzmpop wait waitaof info time
lastsave randomkey srandmember hrandfield zrandmember spop object memory latency slowlog command lolwut module
pfdebug pfselftest readonly readwrite asking scan sscan hscan zscan keys xread xreadgroup role
xautoclaim xclaim xinfo xpending restore-asking
""".split())
# Sent, with "*" (an ID the clock picks) never among their arguments.
NO_STAR = {"xadd", "xgroup", "xsetid"}

EDGE = ["", "-0", "0", "1", "-1", "2", "3", "10", "1e400", "-1e400", "inf", "-inf", "+inf", "nan", "1.5", "-1.5",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "4294967296", "99999999999", "-99999999999", "1000", "-1000", "0x10", " 1", "1 ", "abc", "(1", "(", "[a", "[",
        "-", "+", "0-0", "1-1", "0-1", "18446744073709551615-18446744073709551615", "1e3", "1.", ".5", "00", "*",
        "\x00", "a" * 70, "-2147483649", "2147483647"]
KEYS = ["s", "n", "f", "l", "h", "z", "st", "x", "hll", "nokey", "bm"]
# The keys of a command's own type (by its ACL categories), most often taken.
TYPED_KEYS = {"@string": ["s", "n", "f", "nokey"], "@list": ["l", "nokey"], "@hash": ["h", "nokey"], "@set": ["st", "nokey"],
              "@sortedset": ["z", "nokey"], "@stream": ["x", "nokey"], "@hyperloglog": ["hll", "nokey"], "@geo": ["z", "nokey"],
              "@bitmap": ["bm", "s", "nokey"]}


def setup(c):
    c.call(["FLUSHALL"])
    for cmd in (["SET", "s", "hello"], ["SET", "n", "42"], ["SET", "f", "1.5"], ["RPUSH", "l", "a", "b", "1", "a", "-3"],
                ["HSET", "h", "f", "v", "n", "5", "g", "1.5"], ["ZADD", "z", "1", "a", "2", "b", "2", "c", "-inf", "m", "3.5", "d"],
                ["SADD", "st", "a", "1", "b", "2"], ["XADD", "x", "1-1", "a", "1"], ["XADD", "x", "2-2", "b", "2"],
                ["XGROUP", "CREATE", "x", "g", "0"], ["PFADD", "hll", "a", "b", "c"], ["SETBIT", "bm", "13", "1"],
                ["GEOADD", "z", "13.36", "38.11", "pa"]):
        c.call(cmd)


def tokens_of(doc_args, out):
    """Every token of a COMMAND DOCS argument list (nested blocks too)."""
    for a in doc_args:
        d = dict(zip(a[1][0::2], a[1][1::2])) if a[0] in ("array", "map") else {}
        d = {k[1] if isinstance(k, tuple) else k: v for k, v in d.items()}
        tok = d.get(b"token")
        if tok and tok[0] == "bulk" or tok and tok[0] == "simple":
            out.add(tok[1].decode("latin-1"))
        sub = d.get(b"arguments")
        if sub and sub[0] == "array":
            tokens_of(sub[1], out)


def table(c):
    """(name, arity, tokens) of every command redis-server has, subcommands as "name sub"."""
    _, v = c.call(["COMMAND"])
    cmds = []
    for e in v[1]:
        name = e[1][0][1].decode()
        arity = e[1][1][1]
        cats = {x[1].decode() for x in e[1][6][1]}
        subs = e[1][9][1] if len(e[1]) > 9 else []
        if subs:
            for s in subs:
                full = s[1][0][1].decode()  # "container|sub"
                cmds.append((full.replace("|", " "), s[1][1][1], cats))
        else:
            cmds.append((name, arity, cats))
    out = []
    for name, arity, cats in cmds:
        if name.split(" ")[0] in DENY:
            continue
        _, docs = c.call(["COMMAND", "DOCS"] + name.split(" ")[:1])
        toks = set()
        try:
            body = docs[1][0][1][1]
            d = {k[1]: v for k, v in zip(body[0::2], body[1::2])}
            if " " in name:
                subs = d.get(b"subcommands")
                sd = dict(zip([k[1] for k in subs[1][0::2]], subs[1][1::2]))
                sub = sd.get(name.replace(" ", "|").encode())
                d = {k[1]: v for k, v in zip(sub[1][0::2], sub[1][1::2])}
            if b"arguments" in d:
                tokens_of(d[b"arguments"][1], toks)
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
        keys = sorted({k for c in cats for k in TYPED_KEYS.get(c, [])}) or KEYS
        out.append((name, arity, sorted(toks), keys))
    return out


UNORDERED = {"smembers", "sinter", "sunion", "sdiff", "hgetall", "hkeys", "hvals", "sort", "georadius", "georadius_ro",
             "georadiusbymember", "georadiusbymember_ro", "geosearch"}


# Relative TTLs: a small one would expire between the two servers' calls,
# so these commands get a far one in place of any small positive number.
TIMED = {"expire", "pexpire", "setex", "psetex", "getex", "set", "restore"}
# TTL replies are compared with a tolerance (the servers' clocks are read
# some microseconds apart).
TTL_READS = {"ttl": 1, "pttl": 50, "expiretime": 1, "pexpiretime": 50}


def far_ttl(a):
    try:
        v = int(a)
    except ValueError:
        return a
    return "100000000" if 0 < v < 100000000 else a


def gen(rnd, name, arity, toks, keys):
    words = name.split(" ")
    need = abs(arity) - len(words)
    if arity > 0:
        n = need + rnd.choice([0] * 8 + [-1, 1])
    else:
        n = need + rnd.choice([0, 0, 1, 1, 2, 3, 4, 6, 9, 12, -1])
    args = list(words)
    for i in range(max(0, n)):
        k = rnd.random()
        if i == 0 and k < 0.8 or k < 0.25:
            args.append(rnd.choice(keys if rnd.random() < 0.8 else KEYS))
        elif k < 0.55:
            args.append(rnd.choice(EDGE))
        elif k < 0.8 and toks:
            args.append(rnd.choice(toks))
        else:
            args.append(str(rnd.choice([rnd.randrange(-5, 6), rnd.randrange(100)])))
    if words[0].lower() in NO_STAR:
        args = [a if a != "*" else "3-3" for a in args]
    if words[0].lower() in TIMED:
        args = args[:2] + [far_ttl(a) for a in args[2:]]
    return args


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, 7183, 7283)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--reset-every", type=int, default=100)
    ap.add_argument("--only", help="comma-separated command names")
    ap.add_argument("--small-encodings", action="store_true", help="listpack/intset limits of 2, so conversions happen")
    ap.add_argument("--resp3", action="store_true", help="both connections in RESP3 (HELLO 3)")
    ap.add_argument("--digest-each", action="store_true", help="DEBUG DIGEST compared after every call")
    ap.add_argument("--history", action="store_true", help="print the calls since the data set was built with each find")
    opts = ap.parse_args()
    seeds = seeds_of(opts)
    workdir, procs = start_pair(opts, "argfuzz.")
    found = []
    t0 = time.time()
    try:
        rk, rd = Conn(opts.ringkv_port, timeout=10), Conn(opts.redis_port, timeout=10)
        if opts.resp3:
            rk.call(["HELLO", "3"])
            rd.call(["HELLO", "3"])
        if opts.small_encodings:
            for c in (rk, rd):
                for k, v in (("hash-max-listpack-entries", "2"), ("zset-max-listpack-entries", "2"), ("set-max-intset-entries", "2"),
                             ("list-max-listpack-size", "2"), ("stream-node-max-entries", "2")):
                    c.call(["CONFIG", "SET", k, v])
        cmds = table(rd)
        if opts.only:
            keep = set(opts.only.lower().split(","))
            cmds = [c for c in cmds if c[0] in keep or c[0].split(" ")[0] in keep]
        print("%d commands" % len(cmds), flush=True)
        seen = set()
        for seed in seeds:
            rnd = random.Random(seed)
            for i in range(opts.count):
                if i % opts.reset_every == 0:
                    if i:
                        da, db = rk.call(["DEBUG", "DIGEST"])[0], rd.call(["DEBUG", "DIGEST"])[0]
                        if da != db:
                            msg = "DIGEST seed %d before #%d: ringkv=%s redis=%s" % (seed, i, show(da), show(db))
                            print(msg, flush=True)
                            if opts.history:
                                print("  since the data set was built:\n    " + "\n    ".join(history), flush=True)
                            found.append(msg)
                    setup(rk)
                    setup(rd)
                    history = []
                name, arity, toks, keys = rnd.choice(cmds)
                args = gen(rnd, name, arity, toks, keys)
                history.append(showcmd(args))
                try:
                    ra, va = rk.call(args)
                except (Closed, OSError) as e:
                    msg = "RINGKV %s seed %d #%d: %s" % (e, seed, i, showcmd(args))
                    print(msg, flush=True)
                    found.append(msg)
                    if not procs[0].alive():
                        raise SystemExit(2)
                    rk = Conn(opts.ringkv_port, timeout=10)
                    if opts.resp3:
                        rk.call(["HELLO", "3"])
                    rd.call(args)
                    continue
                rb, vb = rd.call(args)
                if opts.digest_each:
                    da, db = rk.call(["DEBUG", "DIGEST"])[0], rd.call(["DEBUG", "DIGEST"])[0]
                    if da != db:
                        msg = "DIGEST after seed %d #%d: %s (replies ringkv %s redis %s)" % (seed, i, showcmd(args), show(ra), show(rb))
                        print(msg, flush=True)
                        found.append(msg)
                        setup(rk)
                        setup(rd)
                        continue
                if ra == rb or (args[0].lower() in UNORDERED and canon(va) == canon(vb)):
                    continue
                cmd = args[0].lower()
                if cmd == "dump" and rd.call(["OBJECT", "ENCODING", args[1]])[1] == ("bulk", b"hashtable"):
                    continue  # a hash table's DUMP is in its table's order
                if cmd in TTL_READS and va[0] == vb[0] == "int" and abs(va[1] - vb[1]) <= TTL_READS[cmd]:
                    continue
                sig = (args[0].lower(), rb[:40])
                msg = "DIFF seed %d #%d: %s\n  ringkv: %s\n  redis:  %s" % (seed, i, showcmd(args), show(ra), show(rb))
                if sig not in seen:
                    print(msg, flush=True)
                    if opts.history:
                        print("  since the data set was built:\n    " + "\n    ".join(history[:-1]), flush=True)
                seen.add(sig)
                found.append(msg)
                if opts.stop_on_first:
                    raise SystemExit(1)
                # Keep the data sets equal after a divergence.
                setup(rk)
                setup(rd)
            print("seed %d done (%.0fs), %d finds" % (seed, time.time() - t0, len(found)), flush=True)
    finally:
        stop_pair(procs, found, workdir)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
