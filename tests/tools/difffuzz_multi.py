#!/usr/bin/env python3
"""Differential fuzzer, part 2: several connections, transactions and blocking commands.

A sibling of difffuzz.py (same servers, same RESP reader, same key pools and command
generators), for what one connection cannot show. ringkv runs with --shards 3, so
keys without a hash tag spread over the shards. Four connections per server (0 and
1 in RESP2, 2 and 3 after HELLO 3), with DEBUG SET-ACTIVE-EXPIRE 0 on both servers
(keys expire only when touched, so expiry is deterministic).

The script is one sequence of scenarios, the same on both servers. Connections are
interleaved deterministically: a command is sent on connection A of both servers and
both replies are read before the next command goes anywhere. A blocking command is
sent, then the fuzzer waits until the connection is either answered or listed as
blocked (CLIENT LIST ID .. flags=b) on each server, before anything else is sent; so
the same script gives the same replies in both servers, whatever the shards do.

Scenarios (weights in SCENARIOS):
  - tx: WATCH (sometimes touched by another connection first, sometimes in another
    db), MULTI, queued commands over keys of several shards, with queued errors
    (unknown command, arity) and wrong types at EXEC, SELECT/SWAPDB/MOVE/COPY in the
    queue, blocking commands queued (they do not block in a transaction), EXEC or
    DISCARD; EXEC without MULTI, DISCARD without MULTI, WATCH inside MULTI.
  - serve: one to three connections block (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP,
    BZPOPMIN/MAX, BZMPOP) on keys of any shard, each waited for; then another
    connection writes (a push, a move into the key, a MULTI of pushes, RENAME/COPY/
    MOVE/SWAPDB/SORT STORE/ZUNIONSTORE into the key, a wrong type, a DEL; SWAPDB only
    while the waiters wait on one key: Redis serves the keys SWAPDB fills in its hash
    table's order, seeded at random), maybe
    CLIENT UNBLOCK (TIMEOUT or ERROR) with each server's own client id; every
    waiter's reply is compared. A waiter still blocked on both servers is unblocked
    (CLIENT UNBLOCK, compared) to finish the scenario; one answered by only one
    server is a divergence ("hang").
  - watch_serve: WATCH a key, a blocked client is served from it (or a BLMOVE fills
    it), then MULTI/EXEC on the watching connection (aborted).
  - chain: BLMOVE/BRPOPLPUSH into a key other clients wait on, fed once (maybe in
    a MULTI): the move serves them in turn.
  - timeout: a blocking command with a 10 ms timeout nobody serves (a null reply).
  - db: SELECT, SWAPDB, MOVE, COPY .. DB, FLUSHDB on a connection, then commands.
  - expire: SET/PEXPIRE with 1 ms, a 3 ms pause, then reads and writes of the key.
  - cmd: one random command of difffuzz.py's generators on a random connection.
DEBUG DIGEST is compared after every scenario (--digest-every).

    python3 tests/tools/difffuzz_multi.py --seeds 1-20 --count 400
    python3 tests/tools/difffuzz_multi.py --seed 5 --count 1000 --log /tmp/multi.txt
"""

import argparse
import os
import random
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import difffuzz  # noqa: E402
from difffuzz import Closed, Conn, Gen, canon, show, showcmd  # noqa: E402

NAMES = ("ringkv", "redis")
NCONN = 4

LISTS = ["l0", "l1", "l2", "{t}l3", "{t}l4"]
ZSETS = ["z0", "z1", "z2", "{t}z4", "{t}z5"]
OTHERS = ["s0", "h0", "S0", "{t}s3", "nokey"]


class Multi:
    def __init__(self, opts, ports):
        self.opts = opts
        self.ports = ports
        self.found = []
        self.log = open(opts.log, "w") if opts.log else None
        self.conns = []
        self.sides = []

    # ---- connections
    def connect(self):
        for pair in self.conns:
            for c in pair:
                c.close()
        for c in self.sides:
            c.close()
        self.sides = [Conn(p, timeout=10) for p in self.ports]
        self.conns = []
        self.ids = []
        self.db = [0] * NCONN
        self.multi = [False] * NCONN
        self.tx_select = [False] * NCONN
        for i in range(NCONN):
            pair = [Conn(p, timeout=10) for p in self.ports]
            if i >= 2:
                for c in pair:
                    c.call(["HELLO", "3"])
            self.conns.append(pair)
            self.ids.append([str(c.call(["CLIENT", "ID"])[1][1]) for c in pair])
        for c in self.sides:
            c.call(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])

    def note(self, text):
        if self.log:
            self.log.write(text + "\n")
        self.history.append(text)

    def report(self, why, args, ra, rb):
        args = [a if isinstance(a, str) else "<id>" for a in args]
        msg = "DIVERGENCE seed=%d step#%d %s: %s\n  ringkv: %s\n  redis:  %s\n  script (last 30):\n%s" % (
            self.seed, self.i, why, showcmd(args), show(ra), show(rb), "".join("    %s\n" % h for h in self.history[-30:]))
        print(msg, flush=True)
        self.found.append(msg)
        if self.opts.stop_on_first:
            raise SystemExit(1)

    # ---- one command on connection ci of both servers
    def cmd(self, ci, args, compare=True):
        """Sends args on connection ci of both servers, reads both replies, compares them.
        Per-server arguments: an element that is a tuple holds (ringkv's, redis's)."""
        self.i += 1
        self.note("c%d %s" % (ci, showcmd([a if isinstance(a, str) else "<id>" for a in args])))
        out = []
        for side, c in enumerate(self.conns[ci]):
            c.send([a if isinstance(a, str) else a[side] for a in args])
        for c in self.conns[ci]:
            try:
                out.append(c.read_frame())
            except Closed as e:
                out.append((b"<%s>" % str(e).encode(), ("closed", None)))
        (ra, va), (rb, vb) = out
        up = args[0].upper() if isinstance(args[0], str) else ""
        if vb[0] != "error" or up in ("EXEC",):
            if up == "SELECT" and not self.multi[ci]:
                self.db[ci] = int(args[1])
            if up == "MULTI":
                self.multi[ci] = True
            if up == "SELECT" and self.multi[ci]:
                self.tx_select[ci] = True
        if up in ("EXEC", "DISCARD"):
            self.multi[ci] = False
        if compare and ra != rb and not self.tolerated(ci, args, va, vb):
            if va[0] == "closed" or vb[0] == "closed":
                self.report("connection", args, ra, rb)
                self.connect()
                return out
            self.report("reply (c%d resp%d)" % (ci, 3 if ci >= 2 else 2), args, ra, rb)
        return out

    def tolerated(self, ci, args, va, vb):
        if va[0] != vb[0]:
            return False
        if va[0] in ("array", "set", "map") and canon(va) == canon(vb):
            # a hash table's order (SMEMBERS, HGETALL, KEYS) in a reply or an EXEC
            return True
        return False

    # ---- blocking
    def blocked_on(self, side, ci):
        c = self.sides[side]
        raw, v = c.call(["CLIENT", "LIST", "ID", self.ids[ci][side]])
        if v[0] != "bulk":
            return False
        line = v[1].decode("latin-1")
        for f in line.split():
            if f.startswith("flags="):
                return "b" in f[6:]
        return False

    def readable(self, conn, wait):
        if len(conn.buf) > conn.pos:
            return True
        r, _, _ = select.select([conn.sock], [], [], wait)
        return bool(r)

    def send_block(self, ci, args):
        """Sends a blocking command on ci of both servers; returns once each server has
        either answered or blocked the client. The reply is read by await_reply."""
        self.i += 1
        self.note("c%d %s   (blocking)" % (ci, showcmd(args)))
        for c in self.conns[ci]:
            c.send(args)
        for side, c in enumerate(self.conns[ci]):
            deadline = time.time() + 5
            while time.time() < deadline:
                if self.readable(c, 0.0005) or self.blocked_on(side, ci):
                    break
            else:
                print("  c%d on %s neither answered nor blocked after 5 s" % (ci, NAMES[side]), flush=True)
        self.pending[ci] = args

    def await_reply(self, ci):
        """Reads the pending blocking command's reply on ci of both servers. One still
        blocked on both is unblocked (CLIENT UNBLOCK from the side connections)."""
        args = self.pending.pop(ci)
        conns = self.conns[ci]
        ready = [self.readable(c, 0.15) for c in conns]
        if not any(ready):
            ready = [self.readable(c, 0.3) for c in conns]
        if not all(ready):
            # give the slower one time; then one blocked on both is unblocked on both
            deadline = time.time() + (2.0 if any(ready) else 0)
            while time.time() < deadline and not all(ready):
                ready = [r or self.readable(c, 0.05) for r, c in zip(ready, conns)]
            if not any(ready):
                self.note("   (unblock c%d on both)" % ci)
                for side, c in enumerate(self.sides):
                    c.call(["CLIENT", "UNBLOCK", self.ids[ci][side]])
            elif not all(ready):
                late = NAMES[ready.index(False)]
                got = [c.read_frame()[0] if r else b"<still blocked>" for r, c in zip(ready, conns)]
                self.report("hang: still blocked on %s" % late, args, got[0], got[1])
                for side, c in enumerate(self.sides):
                    if not ready[side]:
                        c.call(["CLIENT", "UNBLOCK", self.ids[ci][side]])
                        conns[side].read_frame()
                return
        out = []
        for c in conns:
            try:
                out.append(c.read_frame())
            except Closed as e:
                out.append((b"<%s>" % str(e).encode(), ("closed", None)))
        (ra, va), (rb, vb) = out
        self.note("   c%d <- %s" % (ci, show(rb, 80)))
        if ra != rb:
            if va[0] == "closed" or vb[0] == "closed":
                self.report("connection", args, ra, rb)
                self.connect()
                return
            self.report("blocked reply (c%d)" % ci, args, ra, rb)

    # ---- generators
    def blocking_cmd(self, g, keys=None):
        r = g.r.randrange(9)
        if keys and g.p(0.9):
            # mostly the command of the keys' type
            r = g.ch([0, 1, 2, 3, 4, 8]) if keys[0] in LISTS else g.ch([5, 6, 7])
        t = g.ch(["0", "0", "5", "0.5"])
        lk = keys or [g.ch(LISTS) for _ in range(g.r.randint(1, 2))]
        zk = keys or [g.ch(ZSETS) for _ in range(g.r.randint(1, 2))]
        if r == 0:
            return ["BLPOP"] + lk + [t]
        if r == 1:
            return ["BRPOP"] + lk + [t]
        if r == 2:
            return ["BRPOPLPUSH", lk[0], g.ch(LISTS + OTHERS[:2]), t]
        if r == 3:
            return ["BLMOVE", lk[0], g.ch(LISTS + OTHERS[:2]), g.ch(["LEFT", "RIGHT"]), g.ch(["LEFT", "RIGHT"]), t]
        if r == 4:
            a = ["BLMPOP", t, str(len(lk))] + lk + [g.ch(["LEFT", "RIGHT"])]
            return a + (["COUNT", g.ch(["1", "2", "5"])] if g.p(0.6) else [])
        if r == 5:
            return ["BZPOPMIN"] + zk + [t]
        if r == 6:
            return ["BZPOPMAX"] + zk + [t]
        if r == 7:
            a = ["BZMPOP", t, str(len(zk))] + zk + [g.ch(["MIN", "MAX"])]
            return a + (["COUNT", g.ch(["1", "3"])] if g.p(0.6) else [])
        return ["BLPOP", g.ch(OTHERS), lk[0], t]

    def feeder(self, g, keys):
        """A write that may serve waiters on keys."""
        k = g.ch(keys)
        lst = k in LISTS or g.p(0.3)
        r = g.r.randrange(14)
        vals = [g.value() for _ in range(g.r.randint(1, 3))]
        if r < 4:
            if lst:
                return [g.ch(["LPUSH", "RPUSH", "RPUSH", "LPUSHX"]), k] + vals
            return ["ZADD", k] + sum(([g.n(-3, 3), g.member()] for _ in range(g.r.randint(1, 3))), [])
        if r == 4:
            return ["LMOVE", g.ch(LISTS), k, g.ch(["LEFT", "RIGHT"]), g.ch(["LEFT", "RIGHT"])]
        if r == 5:
            return ["RENAME", g.ch(LISTS + ZSETS), k]
        if r == 6:
            return ["COPY", g.ch(LISTS + ZSETS), k] + (["REPLACE"] if g.p(0.5) else [])
        if r == 7:
            return ["ZUNIONSTORE", k, "2", g.ch(ZSETS), g.ch(ZSETS)]
        if r == 8:
            return ["SORT", g.ch(LISTS), "ALPHA", "STORE", k]
        if r == 9:
            return ["SET", k, "x"]
        if r == 10:
            return ["DEL", k]
        if r == 11:
            return ["LMPOP", "1", g.ch(LISTS), "LEFT", "COUNT", "2"]
        if r == 12:
            return ["SMOVE", g.ch(["S0", "S1"]), g.ch(["S1", "S2"]), g.member()]
        return ["RPOPLPUSH", g.ch(LISTS), k]

    def fill(self, g, k):
        """A command putting data in k (list or zset)."""
        if k in ZSETS:
            return ["ZADD", k] + sum(([g.n(-3, 3), g.member()] for _ in range(g.r.randint(1, 4))), [])
        return ["RPUSH", k] + [g.value() for _ in range(g.r.randint(1, 4))]

    def plain(self, g):
        cmd = g.command()
        up = cmd[0].upper()
        if up.endswith("*") or up in difffuzz.RANDOM_CMDS or up in difffuzz.LEX_CMDS or up in ("SORT", "SORT_RO", "DUMP", "MULTI", "EXEC", "WATCH", "DISCARD", "KEYS"):
            cmd = ["INCR", g.key("str")]
        return cmd

    def sc_tx(self, g):
        c = g.r.randrange(NCONN)
        other = (c + 1 + g.r.randrange(NCONN - 1)) % NCONN
        if g.p(0.05):
            self.cmd(c, [g.ch(["EXEC", "DISCARD"])])
            return
        if g.p(0.5):
            watched = [g.anykey() for _ in range(g.r.randint(1, 3))]
            self.cmd(c, ["WATCH"] + watched)
            if g.p(0.6):
                k = g.ch(watched)
                touch = g.ch([["DEL", k], ["EXPIRE", k, "1000"], ["SET", k, "w"], ["LPUSH", k, "w"], ["EXISTS", k],
                              ["PERSIST", k], ["RENAME", g.anykey(), k], ["COPY", g.anykey(), k, "REPLACE"],
                              ["FLUSHDB"] if g.p(0.1) else ["GET", k], ["SWAPDB", "0", "1"], ["MOVE", k, "1"],
                              ["PEXPIRE", k, "1"]])
                self.cmd(other, touch)
                if touch[0] == "PEXPIRE":
                    time.sleep(0.003)
            if g.p(0.1):
                self.cmd(c, ["UNWATCH"])
        self.cmd(c, ["MULTI"])
        for _ in range(g.r.randint(0, 6)):
            x = g.r.randrange(20)
            if x == 0:
                a = g.ch([["NOSUCH"], ["GET"], ["SET", "a"], ["WATCH", "a"], ["MULTI"], ["SUBSCRIBE", "ch"]])
            elif x == 1:
                a = self.blocking_cmd(g)
            elif x == 2:
                a = g.ch([["SELECT", g.ch(["0", "1"])], ["SWAPDB", "0", "1"], ["MOVE", g.anykey(), g.ch(["0", "1"])],
                          ["COPY", g.anykey(), g.anykey(), "DB", g.ch(["0", "1"])]])
            elif x == 3:
                a = ["RENAME", g.anykey(), g.anykey()] if g.p(0.5) else ["SMOVE", g.key("set"), g.key("set"), g.member()]
            elif x == 4:
                a = ["LMOVE", g.ch(LISTS), g.ch(LISTS), "LEFT", "RIGHT"]
            elif x == 5:
                a = ["INCR", g.anykey()]  # wrong type at EXEC
            elif x == 6:
                a = ["MSET"] + sum(([g.key("str"), g.value()] for _ in range(g.r.randint(1, 3))), [])
            elif x == 7:
                a = ["MGET"] + [g.anykey() for _ in range(g.r.randint(1, 3))]
            else:
                a = self.plain(g)
            self.cmd(c, a)
        self.cmd(c, ["EXEC"] if g.p(0.85) else ["DISCARD"])
        if self.tx_select[c]:
            # a SELECT run by the EXEC moved the connection: back to a known db
            self.tx_select[c] = False
            self.cmd(c, ["SELECT", "0"])
        if self.db[c] != 0 and g.p(0.5):
            self.cmd(c, ["SELECT", "0"])

    def sc_serve(self, g):
        keys = [g.ch(LISTS + ZSETS) for _ in range(g.r.randint(1, 2))]
        if g.p(0.3):
            db = g.ch(["0", "1"])
        else:
            db = None
        waiters = g.r.sample(range(NCONN), g.r.randint(1, 3))
        feeders = [c for c in range(NCONN) if c not in waiters]
        if db is not None:
            for c in waiters:
                if self.db[c] != int(db):
                    self.cmd(c, ["SELECT", db])
        for c in waiters:
            same = [k for k in keys if (k in LISTS) == (keys[0] in LISTS)]
            self.send_block(c, self.blocking_cmd(g, same if g.p(0.7) else None))
        for _ in range(g.r.randint(1, 3)):
            if not feeders:
                break
            f = g.ch(feeders)
            x = g.r.randrange(12)
            if x >= 10:
                self.cmd(f, self.feeder(g, keys))
            elif x < 5:
                self.cmd(f, self.fill(g, g.ch(keys)) if g.p(0.5) else self.feeder(g, keys))
            elif x == 5:
                self.cmd(f, ["MULTI"])
                for _ in range(g.r.randint(1, 3)):
                    y = g.r.randrange(10)
                    if y < 6:
                        self.cmd(f, self.fill(g, g.ch(keys)))
                    elif y == 6 and self.swapdb_defined():
                        self.cmd(f, ["SWAPDB", "0", "1"])
                    elif y == 7:
                        self.cmd(f, g.ch([["MOVE", g.ch(LISTS + ZSETS), "0"], ["COPY", g.ch(LISTS + ZSETS), g.ch(keys), "DB", g.ch(["0", "1"])]]))
                    else:
                        self.cmd(f, self.feeder(g, keys))
                self.cmd(f, ["EXEC"])
            elif x == 6 and self.swapdb_defined():
                self.cmd(f, ["SWAPDB", "0", "1"])
            elif x == 7:
                k = g.ch(keys)
                self.cmd(f, ["SELECT", "1"])
                self.cmd(f, self.fill(g, k))
                self.cmd(f, ["MOVE", k, "0"] if g.p(0.5) else ["COPY", k, k, "DB", "0"])
                self.cmd(f, ["SELECT", "0"])
            elif x == 9 and g.p(0.5):
                # a list or zset of another key that expired (lazily) is moved into the key
                src = g.ch(LISTS + ZSETS)
                self.cmd(f, self.fill(g, src))
                self.cmd(f, ["PEXPIRE", src, "1"])
                time.sleep(0.003)
                self.cmd(f, g.ch([["RENAME", src, g.ch(keys)], ["LMOVE", src, g.ch(keys), "LEFT", "RIGHT"],
                                  ["COPY", src, g.ch(keys), "REPLACE"], ["EXISTS", src]]))
            elif x == 8 and self.pending:
                w = g.ch(sorted(self.pending))
                self.cmd(f, ["CLIENT", "UNBLOCK", tuple(self.ids[w])] + ([g.ch(["TIMEOUT", "ERROR"])] if g.p(0.7) else []))
            else:
                self.cmd(f, self.fill(g, g.ch(keys)))
        for c in list(waiters):
            if c in self.pending:
                self.await_reply(c)
        for c in waiters:
            if self.db[c] != 0:
                self.cmd(c, ["SELECT", "0"])

    def sc_watch_serve(self, g):
        """WATCH a key a served blocked client pops from (or a BLMOVE fills): EXEC fails."""
        c, w, f = g.r.sample(range(NCONN), 3)
        src = g.ch(LISTS)
        dst = g.ch(LISTS)
        self.cmd(c, ["WATCH", g.ch([src, dst, g.anykey()])])
        self.send_block(w, g.ch([["BLPOP", src, "0"], ["BLMOVE", src, dst, "RIGHT", "LEFT", "0"], ["BRPOPLPUSH", src, dst, "0"]]))
        self.cmd(f, self.fill(g, src))
        self.await_reply(w)
        self.cmd(c, ["MULTI"])
        self.cmd(c, ["LRANGE", src, "0", "-1"])
        self.cmd(c, ["LRANGE", dst, "0", "-1"])
        self.cmd(c, ["EXEC"])

    def sc_chain(self, g):
        """A BLMOVE into a key another client waits on: the move serves it too."""
        a, b, c = g.r.sample(LISTS, 3)
        w1, w2, w3, f = g.r.sample(range(NCONN), 4)
        self.send_block(w1, ["BLMOVE", a, b, g.ch(["LEFT", "RIGHT"]), g.ch(["LEFT", "RIGHT"]), "0"] if g.p(0.5) else ["BRPOPLPUSH", a, b, "0"])
        self.send_block(w2, g.ch([["BLPOP", b, "0"], ["BLMOVE", b, c, "LEFT", "LEFT", "0"], ["BLMPOP", "0", "2", c, b, "LEFT", "COUNT", "2"]]))
        if g.p(0.5):
            self.send_block(w3, g.ch([["BRPOP", c, b, "0"], ["BLPOP", a, "0"]]))
        if g.p(0.3):
            self.cmd(f, ["MULTI"])
            self.cmd(f, self.fill(g, a))
            self.cmd(f, self.fill(g, g.ch([a, b, c])))
            self.cmd(f, ["EXEC"])
        else:
            self.cmd(f, self.fill(g, a))
        for w in (w1, w2, w3):
            if w in self.pending:
                self.await_reply(w)

    def swapdb_defined(self):
        """Whether the blocked clients wait on one key in all: SWAPDB serves the keys it
        fills in the order of Redis's hash table of blocking keys (seeded at random)."""
        keys = set()
        for a in self.pending.values():
            cmd = a[0].upper()
            if cmd in ("BLMPOP", "BZMPOP"):
                keys.update(a[3:3 + int(a[2])])
            elif cmd in ("BLMOVE", "BRPOPLPUSH"):
                keys.add(a[1])
            else:
                keys.update(a[1:-1])
        return len(keys) <= 1

    def sc_timeout(self, g):
        c = g.r.randrange(NCONN)
        a = self.blocking_cmd(g, [g.ch(["nokey", "{t}nokey", "empty"])])
        # the timeout is the last argument but for the M-forms' first
        if a[0] in ("BLMPOP", "BZMPOP"):
            a[1] = "0.01"
        else:
            a[-1] = "0.01"
        self.send_block(c, a)
        self.await_reply(c)

    def sc_db(self, g):
        c = g.r.randrange(NCONN)
        x = g.r.randrange(6)
        if x == 0:
            self.cmd(c, ["SELECT", g.ch(["0", "1", "1", "16", "-1", "x"])])
        elif x == 1:
            self.cmd(c, ["SWAPDB", g.ch(["0", "1"]), g.ch(["0", "1", "2", "99"])])
        elif x == 2:
            self.cmd(c, ["MOVE", g.anykey(), g.ch(["0", "1", "1", "99", "x"])])
        elif x == 3:
            self.cmd(c, ["COPY", g.anykey(), g.anykey(), "DB", g.ch(["0", "1", "99"])] + (["REPLACE"] if g.p(0.5) else []))
        elif x == 4 and g.p(0.2):
            self.cmd(c, ["FLUSHDB"])
        else:
            self.cmd(c, ["DBSIZE"])
        for _ in range(g.r.randint(0, 3)):
            self.cmd(c, self.plain(g))

    def sc_expire(self, g):
        c = g.r.randrange(NCONN)
        k = g.anykey()
        if g.p(0.5):
            self.cmd(c, ["SET", k, g.value(), "PX", "1"])
        else:
            self.cmd(c, self.fill(g, g.ch(LISTS + ZSETS)) if g.p(0.3) else ["PEXPIRE", k, g.ch(["1", "2"])])
        time.sleep(0.004)
        d = (c + 1) % NCONN
        for _ in range(g.r.randint(1, 3)):
            cc = g.ch([c, d])
            self.cmd(cc, g.ch([["EXISTS", k], ["TYPE", k], ["TTL", k], ["GET", k], ["LPUSH", k, "v"], ["RENAME", k, g.anykey()],
                               ["COPY", k, g.anykey()], ["DBSIZE"], ["MOVE", k, "1"], self.plain(g)]))

    SCENARIOS = [("tx", 30), ("serve", 30), ("watch_serve", 6), ("chain", 8), ("timeout", 4), ("db", 8), ("expire", 8), ("cmd", 20)]

    def scenario(self, g):
        tot = sum(w for _, w in self.SCENARIOS)
        x = g.r.randrange(tot)
        for name, w in self.SCENARIOS:
            if x < w:
                if name == "cmd":
                    self.cmd(g.r.randrange(NCONN), self.plain(g))
                else:
                    getattr(self, "sc_" + name)(g)
                return
            x -= w

    def digest_check(self):
        out = []
        for c in self.sides:
            out.append(c.call(["DEBUG", "DIGEST"]))
        (ra, _), (rb, _) = out
        if ra == rb:
            self.history = []
            return
        msg = "DIGEST MISMATCH seed=%d after step#%d: ringkv %s redis %s\n  script since the last equal digest:\n%s" % (
            self.seed, self.i, show(ra), show(rb), "".join("    %s\n" % h for h in self.history[-60:]))
        print(msg, flush=True)
        self.found.append(msg)
        if self.opts.stop_on_first:
            raise SystemExit(1)
        for c in self.sides:
            c.call(["FLUSHALL"])
        self.history = []

    def run_seed(self, seed):
        self.seed = seed
        self.i = 0
        self.history = []
        self.pending = {}
        g = Gen(random.Random(seed * 7919 + 3), self.opts)
        self.connect()
        for c in self.sides:
            c.call(["FLUSHALL"])
        n = 0
        while n < self.opts.count:
            self.scenario(g)
            for ci in list(self.pending):
                self.await_reply(ci)
            for ci in range(NCONN):
                if self.multi[ci]:
                    self.cmd(ci, ["DISCARD"])
                if self.tx_select[ci]:
                    self.tx_select[ci] = False
                    self.cmd(ci, ["SELECT", "0"])
            n += 1
            if n % self.opts.digest_every == 0:
                self.digest_check()
        self.digest_check()
        return self.i


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", help="e.g. 1-20 or 3,5,9")
    ap.add_argument("--count", type=int, default=300, help="scenarios per seed")
    ap.add_argument("--digest-every", type=int, default=1, help="scenarios between DEBUG DIGEST checks")
    ap.add_argument("--ringkv", default=os.path.join(difffuzz.ROOT, "target", "release", "ringkv"))
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--ringkv-port", type=int, default=7180)
    ap.add_argument("--redis-port", type=int, default=7280)
    ap.add_argument("--no-start", action="store_true", help="use servers already running on the ports")
    ap.add_argument("--shards", type=int, default=3, help="ringkv's --shards (keys spread over more shards with more)")
    ap.add_argument("--stop-on-first", action="store_true")
    ap.add_argument("--log", help="write the script to this file")
    opts = ap.parse_args()
    opts.small_encodings = False
    seeds = difffuzz.parse_seeds(opts.seeds) if opts.seeds else [opts.seed if opts.seed is not None else random.randrange(1 << 30)]
    workdir, procs = difffuzz.start_servers(opts, [], "difffuzz_multi.")
    fz = Multi(opts, (opts.ringkv_port, opts.redis_port))
    total = 0
    try:
        for seed in seeds:
            print("seed %d (%d scenarios)" % (seed, opts.count), flush=True)
            total += fz.run_seed(seed)
            difffuzz.check_alive(procs, fz, seed, workdir)
    finally:
        difffuzz.stop_servers(procs, fz, workdir)
    print("seeds %s: %d steps, %d divergences" % (opts.seeds or seeds[0], total, len(fz.found)))
    sys.exit(1 if fz.found else 0)


if __name__ == "__main__":
    main()
