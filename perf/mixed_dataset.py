#!/usr/bin/env python3
"""Issue 12's mixed dataset as `redis-cli --pipe` files, one per part.

    mixed_dataset.py SMALL_HASHES SMALL BIG OUT_PREFIX

writes OUT_PREFIX.<part> for the parts, in this order:
  hashes:  SMALL_HASHES hashes "hash:<i>", 10 fields "field<j>" -> "value<i>" (listpack)
  zsets:   SMALL zsets "zset:<i>", 10 members "member<j>", score j*1.5 (listpack)
  lists:   SMALL lists "list:<i>", 10 elements "element<j>" (quicklist of one listpack)
  intsets: SMALL sets "iset:<i>", 10 integers i*10+j (intset)
  bighash: one hash of BIG fields "field:<n>" -> "value:<n>" (hashtable), 100 a command
  bigzset: one zset of BIG members "member:<n>", pseudo-random scores (skiplist)
  biglist: one list of BIG elements "element:<n>", RPUSH 100 a command
  bigset:  one set of BIG members "member:<n>" (hashtable)
Used by perf/memory.sh (part by part) and perf/bgsave.sh FILL=mixed (all parts);
perf/lazyfree.sh imports `cmd` and `batches`.
"""
import random
import sys

PARTS = ["hashes", "zsets", "lists", "intsets", "bighash", "bigzset", "biglist", "bigset"]


def cmd(f, args):
    f.write(b"*%d\r\n" % len(args))
    for a in args:
        f.write(b"$%d\r\n%s\r\n" % (len(a), a))


def batches(path, n, head, per):
    """One command `head` + per(i) for i in 0..n, 100 elements a command."""
    with open(path, "wb") as f:
        for start in range(0, n, 100):
            args = list(head)
            for i in range(start, min(n, start + 100)):
                args += per(i)
            cmd(f, args)


def main():
    small_hashes, small, big, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with open(out + ".hashes", "wb") as f:
        for i in range(small_hashes):
            args = [b"HSET", b"hash:%d" % i]
            for j in range(10):
                args += [b"field%d" % j, b"value%d" % i]
            cmd(f, args)
    with open(out + ".zsets", "wb") as f:
        for i in range(small):
            args = [b"ZADD", b"zset:%d" % i]
            for j in range(10):
                args += [repr(j * 1.5).encode(), b"member%d" % j]
            cmd(f, args)
    with open(out + ".lists", "wb") as f:
        for i in range(small):
            cmd(f, [b"RPUSH", b"list:%d" % i] + [b"element%d" % j for j in range(10)])
    with open(out + ".intsets", "wb") as f:
        for i in range(small):
            cmd(f, [b"SADD", b"iset:%d" % i] + [b"%d" % (i * 10 + j) for j in range(10)])

    rng = random.Random(12)
    batches(out + ".bighash", big, [b"HSET", b"bighash"], lambda n: [b"field:%d" % n, b"value:%d" % n])
    batches(out + ".bigzset", big, [b"ZADD", b"bigzset"], lambda n: [repr(rng.random() * 1e6).encode(), b"member:%d" % n])
    batches(out + ".biglist", big, [b"RPUSH", b"biglist"], lambda n: [b"element:%d" % n])
    batches(out + ".bigset", big, [b"SADD", b"bigset"], lambda n: [b"member:%d" % n])


if __name__ == "__main__":
    main()
