//! A seeded random workload mixing every type (strings and bitmaps, hashes,
//! lists, sets, sorted sets) and the generic commands (DEL, RENAME, COPY,
//! MOVE, EXPIRE, DUMP/RESTORE, SORT, SCAN...), sent to ringkv (`--shards 3`,
//! so multi-key commands cross shards) and to redis-server 7.0.
//!
//! - Every reply must be the same bytes, except where Redis's own reply is
//!   not deterministic: hashtable-encoded sets and hashes (compared sorted),
//!   random commands (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER: the whole
//!   collection compared sorted, or the count only; RANDOMKEY by shape), SCAN
//!   loops (the keys found, sorted), TTL (its sign). SPOP only pops everything.
//! - After every command DEBUG DIGEST-VALUE of every key (so a divergence is
//!   caught at the command that made it), DEBUG DIGEST after each batch, and
//!   OBJECT ENCODING of every key at the end. The encoding thresholds are low
//!   (CONFIG SET on both servers) so that conversions happen often.
//! - Then ringkv's BGSAVE is loaded by a fresh redis-server, and DEBUG RELOAD
//!   runs on both servers: the same DEBUG DIGEST all three (the digest before
//!   the load, except where Redis's own load changes it: a -0 score in a
//!   small skiplist zset becomes 0), and the same encodings.
//!
//! The seed is printed on failure; `RINGKV_WORKLOAD_SEED=N` (decimal or 0x
//! hex) replays another. A failure names the command's index, the command
//! and both replies, and writes every command sent so far to a file.

mod common;

use std::time::{Duration, Instant};

use common::{decode, escape, Conn, Resp, Rng, Server};

const DEFAULT_SEED: u64 = 0x7E57_0012;
const BATCHES: usize = 8;
const COMMANDS_PER_BATCH: usize = 400;
const KEYS: [&str; 9] = ["a", "b", "c", "d", "e", "{t}x", "{t}y", "{t}z", "n"];

/// How two replies are compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    Exact,
    /// An array whose order is not Redis's to promise: sorted first.
    Sorted,
    /// A flat array of pairs (HGETALL, WITHSCORES) in no promised order.
    SortedPairs,
    /// Only the number of elements (random picks).
    Len,
    /// Only the reply's type (nil or not).
    Shape,
    /// TTL: -2, -1, or some positive number.
    Sign,
}

fn canonical(r: Resp, cmp: Cmp) -> Resp {
    fn key(r: &Resp) -> String {
        format!("{r:?}")
    }
    match (cmp, r) {
        (Cmp::Sorted, Resp::Array(mut v)) => {
            v.sort_by_key(key);
            Resp::Array(v)
        }
        (Cmp::SortedPairs, Resp::Array(v)) => {
            let mut pairs: Vec<Resp> = v.chunks(2).map(|p| Resp::Array(p.to_vec())).collect();
            pairs.sort_by_key(key);
            Resp::Array(pairs)
        }
        (Cmp::Len, Resp::Array(v)) => Resp::Int(v.len() as i64),
        (Cmp::Shape, Resp::Bulk(_)) => Resp::Bulk(vec![]),
        (Cmp::Sign, Resp::Int(n)) => Resp::Int(n.signum()),
        (_, r) => r,
    }
}

struct Run {
    c: [Conn; 2],
    seed: u64,
    history: Vec<Vec<Vec<u8>>>,
    /// Error replies seen (WRONGTYPE and the like), for the summary line.
    errors: usize,
}

impl Run {
    fn fail(&self, what: &str, args: &[Vec<u8>], replies: &[Vec<u8>]) -> ! {
        let path = std::env::temp_dir().join(format!("ringkv-types-workload-{}-{:#x}.txt", std::process::id(), self.seed));
        let mut text = String::new();
        for a in &self.history {
            let words: Vec<String> = a.iter().map(|w| format!("\"{}\"", escape(w, usize::MAX))).collect();
            text.push_str(&words.join(" "));
            text.push('\n');
        }
        let _ = std::fs::write(&path, text);
        panic!(
            "{what}: command #{} {}\n  ringkv: {}\n  redis:  {}\nseed {:#x} (RINGKV_WORKLOAD_SEED={:#x} replays it); every command sent so far: {}",
            self.history.len(),
            show(args),
            escape(&replies[0], 2000),
            escape(&replies[1], 2000),
            self.seed,
            self.seed,
            path.display()
        )
    }

    /// Sends `args` to both servers (each its own arguments when `per_side`
    /// differs) and compares the replies as `cmp` says; returns redis's reply.
    fn step_sides(&mut self, per_side: [&[Vec<u8>]; 2], cmp: Cmp) -> Resp {
        self.history.push(per_side[0].to_vec());
        let raw: Vec<Vec<u8>> = self.c.iter_mut().zip(per_side).map(|(c, a)| c.cmd_raw(a)).collect();
        let same = if cmp == Cmp::Exact { raw[0] == raw[1] } else { canonical(decode(&raw[0]), cmp) == canonical(decode(&raw[1]), cmp) };
        if !same {
            self.fail("replies differ", per_side[0], &raw);
        }
        if raw[1].starts_with(b"-") {
            self.errors += 1;
        }
        decode(&raw[1])
    }

    fn step<A: AsRef<[u8]>>(&mut self, args: &[A], cmp: Cmp) -> Resp {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
        self.step_sides([&args, &args], cmp)
    }

    /// Each server's own reply to `args`, not compared.
    fn each(&mut self, args: &[&str]) -> [Resp; 2] {
        let r: Vec<Resp> = self.c.iter_mut().map(|c| c.cmd(args)).collect();
        [r[0].clone(), r[1].clone()]
    }

    fn encoding(&mut self, key: &str) -> String {
        match self.step(&["OBJECT", "ENCODING", key], Cmp::Exact) {
            Resp::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        }
    }

    /// A whole SCAN-family iteration on each server, the elements found compared sorted.
    fn scan_all(&mut self, head: &[&str], tail: &[&str], pairs: bool) {
        let mut found: Vec<Vec<Resp>> = vec![];
        for c in self.c.iter_mut() {
            let mut cursor = "0".to_string();
            let mut seen = vec![];
            let mut rounds = 0;
            loop {
                let mut args: Vec<&str> = head.to_vec();
                args.push(&cursor);
                args.extend(tail);
                let r = c.cmd(&args);
                let Resp::Array(v) = r else {
                    seen.push(r);
                    break;
                };
                let elems = v[1].array().to_vec();
                if pairs {
                    seen.extend(elems.chunks(2).map(|p| Resp::Array(p.to_vec())));
                } else {
                    seen.extend(elems);
                }
                cursor = String::from_utf8(v[0].opt_bytes().unwrap()).unwrap();
                rounds += 1;
                if cursor == "0" || rounds > 10_000 {
                    break;
                }
            }
            seen.sort_by_key(|r| format!("{r:?}"));
            seen.dedup();
            found.push(seen);
        }
        let mut args: Vec<Vec<u8>> = head.iter().map(|a| a.as_bytes().to_vec()).collect();
        args.push(b"<cursor>".to_vec());
        args.extend(tail.iter().map(|a| a.as_bytes().to_vec()));
        self.history.push(args.clone());
        if found[0] != found[1] {
            let shown: Vec<Vec<u8>> = found.iter().map(|f| format!("{f:?}").into_bytes()).collect();
            self.fail("SCAN found different elements", &args, &shown);
        }
    }

    /// Whether `key` is not a sorted set with two different scores (its
    /// members and scores compared on the way).
    fn one_score(&mut self, key: &str) -> bool {
        match self.step(&["ZRANGE", key, "0", "-1", "WITHSCORES"], Cmp::Exact) {
            Resp::Array(v) => v.iter().step_by(2).skip(1).all(|m| Some(m) == v.get(1)),
            _ => true,
        }
    }

    fn digests(&mut self) {
        let mut args = vec!["DEBUG", "DIGEST-VALUE"];
        args.extend(KEYS);
        self.step(&args, Cmp::Exact);
    }
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter().map(|a| escape(a, 200)).collect::<Vec<_>>().join(" ")
}

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.below(xs.len() as u64) as usize]
}

/// A key for a command of family `fam` (0 strings, 1 hashes, 2 lists, 3
/// sets, 4 sorted sets, 5 generic): mostly one of the family's own three
/// (shared with other families), now and then any key (WRONGTYPE).
fn key(rng: &mut Rng, fam: usize) -> String {
    const OWN: [[&str; 3]; 6] = [["a", "n", "{t}x"], ["b", "{t}y", "e"], ["c", "{t}z", "a"], ["d", "{t}x", "b"], ["e", "{t}y", "{t}z"], ["a", "b", "{t}z"]];
    if fam < 5 && rng.below(5) > 0 {
        pick(rng, &OWN[fam]).to_string()
    } else {
        pick(rng, &KEYS).to_string()
    }
}

fn num(rng: &mut Rng, lo: i64, hi: i64) -> String {
    (lo + rng.below((hi - lo + 1) as u64) as i64).to_string()
}

/// Set members: small integers (intsets), non-canonical integers and words.
fn member(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => format!("m{}", rng.below(6)),
        1 => format!("0{}", rng.below(3)),
        2 => format!("-{}", rng.below(70000)),
        3 => "9223372036854775807".into(),
        _ => rng.below(26).to_string(),
    }
}

/// Hash fields and list/hash/string values; now and then longer than the
/// listpack value limit (16).
fn field(rng: &mut Rng) -> String {
    match rng.below(20) {
        0 => "a-field-name-longer-than-sixteen".into(),
        _ => format!("f{}", rng.below(22)),
    }
}

fn value(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => "a-value-that-is-longer-than-sixteen-bytes".into(),
        1 => "".into(),
        2..=5 => num(rng, -3, 12),
        6 => "3.5".into(),
        _ => pick(rng, &["x", "y", "z", "hello", "w"]).into(),
    }
}

fn zmember(rng: &mut Rng) -> String {
    match rng.below(25) {
        0 => "a-member-longer-than-sixteen-bytes".into(),
        _ => ((b'a' + rng.below(22) as u8) as char).to_string(),
    }
}

fn score(rng: &mut Rng) -> String {
    pick(rng, &["0", "1", "2", "-1", "1.5", "2.5", "-3", "10", "0.5", "1e3", "+inf", "-inf", "4", "7", "-0"]).into()
}

fn lex(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "-".into(),
        1 => "+".into(),
        2 => format!("({}", zmember(rng)),
        _ => format!("[{}", zmember(rng)),
    }
}

fn score_bound(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "-inf".into(),
        1 => "+inf".into(),
        2 => format!("({}", num(rng, -3, 10)),
        _ => num(rng, -3, 10),
    }
}

fn keys_n(rng: &mut Rng, fam: usize, n: usize) -> Vec<String> {
    (0..n).map(|_| key(rng, fam)).collect()
}

fn numkeys(rng: &mut Rng, fam: usize) -> Vec<String> {
    let n = 1 + rng.below(3) as usize;
    let mut v = vec![n.to_string()];
    v.extend(keys_n(rng, fam, n));
    v
}

/// LMPOP / ZMPOP: `numkeys key... end [COUNT n]`.
fn mpop(rng: &mut Rng, fam: usize, cmd: &str, ends: [&str; 2]) -> Vec<String> {
    let mut a = v(&[cmd]);
    a.extend(numkeys(rng, fam));
    a.push(pick(rng, &ends).into());
    if rng.below(2) == 0 {
        a.extend(v(&["COUNT", &num(rng, 1, 5)]));
    }
    a
}

fn v(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// One random step: most are a single command compared as returned; a few
/// are sequences (encoding-dependent reads, DUMP/RESTORE, SCAN loops).
fn random_step(run: &mut Run, rng: &mut Rng) {
    let choice = rng.below(100);
    let fam = match choice {
        0..=12 => 0,
        13..=25 => 1,
        26..=43 => 2,
        44..=57 => 3,
        58..=75 => 4,
        _ => 5,
    };
    let k = key(rng, fam);
    let (args, cmp): (Vec<String>, Cmp) = match choice {
        // --- strings and bitmaps
        0 => {
            let mut a = v(&["SET", &k, &value(rng)]);
            match rng.below(5) {
                0 => a.extend(v(&["EX", "1000"])),
                1 => a.push("KEEPTTL".into()),
                2 => a.push("GET".into()),
                3 => a.push(pick(rng, &["NX", "XX"]).into()),
                _ => {}
            }
            (a, Cmp::Exact)
        }
        1 => (v(&[pick(rng, &["INCR", "DECR"]), &k]), Cmp::Exact),
        2 => (v(&["INCRBY", &k, &num(rng, -100, 100)]), Cmp::Exact),
        3 => (v(&["APPEND", &k, &value(rng)]), Cmp::Exact),
        4 => (v(&["SETRANGE", &k, &num(rng, 0, 20), &value(rng)]), Cmp::Exact),
        5 => (v(&[pick(rng, &["GET", "STRLEN"]), &k]), Cmp::Exact),
        6 => (v(&["GETRANGE", &k, &num(rng, -5, 5), &num(rng, -5, 20)]), Cmp::Exact),
        7 => (v(&["SETBIT", &k, &num(rng, 0, 100), &num(rng, 0, 1)]), Cmp::Exact),
        8 => (v(&["GETBIT", &k, &num(rng, 0, 100)]), Cmp::Exact),
        9 => {
            let mut a = v(&["BITCOUNT", &k]);
            if rng.below(2) == 0 {
                a.extend(v(&[&num(rng, -4, 4), &num(rng, -4, 12), pick(rng, &["BYTE", "BIT"])]));
            }
            (a, Cmp::Exact)
        }
        10 => {
            let mut a = v(&["BITPOS", &k, &num(rng, 0, 1)]);
            if rng.below(2) == 0 {
                a.push(num(rng, -4, 4));
                if rng.below(2) == 0 {
                    a.extend(v(&[&num(rng, -4, 40), pick(rng, &["BYTE", "BIT"])]));
                }
            }
            (a, Cmp::Exact)
        }
        11 => {
            let mut a = v(&["BITFIELD", &k]);
            for _ in 0..1 + rng.below(3) {
                let ty = pick(rng, &["u8", "i5", "u1", "i16", "u63", "i64"]);
                let off = if rng.below(3) == 0 { format!("#{}", rng.below(4)) } else { num(rng, 0, 40) };
                match rng.below(4) {
                    0 => a.extend(v(&["GET", ty, &off])),
                    1 => a.extend(v(&["SET", ty, &off, &num(rng, -200, 300)])),
                    2 => a.extend(v(&["INCRBY", ty, &off, &num(rng, -200, 200)])),
                    _ => a.extend(v(&["OVERFLOW", pick(rng, &["WRAP", "SAT", "FAIL"])])),
                }
            }
            (a, Cmp::Exact)
        }
        12 => {
            let op = pick(rng, &["AND", "OR", "XOR", "NOT"]);
            let n = if op == "NOT" { 1 } else { 1 + rng.below(3) as usize };
            let mut a = v(&["BITOP", op, &k]);
            a.extend(keys_n(rng, fam, n));
            (a, Cmp::Exact)
        }
        // --- hashes
        13..=16 => {
            let mut a = v(&[pick(rng, &["HSET", "HSET", "HMSET"]), &k]);
            for _ in 0..1 + rng.below(3) {
                a.push(field(rng));
                a.push(value(rng));
            }
            (a, Cmp::Exact)
        }
        17 => {
            let mut a = v(&["HDEL", &k]);
            for _ in 0..1 + rng.below(3) {
                a.push(field(rng));
            }
            (a, Cmp::Exact)
        }
        18 => (v(&["HINCRBY", &k, &field(rng), &num(rng, -5, 5)]), Cmp::Exact),
        19 => (v(&["HINCRBYFLOAT", &k, &field(rng), pick(rng, &["1.5", "-0.25", "3", "1e2", "0.5", "-2"])]), Cmp::Exact),
        20 => (v(&["HSETNX", &k, &field(rng), &value(rng)]), Cmp::Exact),
        21 => (v(&[pick(rng, &["HGET", "HEXISTS", "HSTRLEN"]), &k, &field(rng)]), Cmp::Exact),
        22 => (v(&["HMGET", &k, &field(rng), &field(rng)]), Cmp::Exact),
        23 => (v(&["HLEN", &k]), Cmp::Exact),
        24 => {
            let ordered = run.encoding(&k) == "listpack";
            let cmd = pick(rng, &["HGETALL", "HKEYS", "HVALS"]);
            let cmp = match (ordered, cmd) {
                (true, _) => Cmp::Exact,
                (false, "HGETALL") => Cmp::SortedPairs,
                _ => Cmp::Sorted,
            };
            (v(&[cmd, &k]), cmp)
        }
        25 => match rng.below(3) {
            0 => (v(&["HRANDFIELD", &k, "100", "WITHVALUES"]), Cmp::SortedPairs),
            1 => (v(&["HRANDFIELD", &k, &num(rng, -5, 3)]), Cmp::Len),
            _ => (v(&["HRANDFIELD", &k]), Cmp::Shape),
        },
        // --- lists
        26..=29 => {
            let mut a = v(&[pick(rng, &["LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), &k]);
            for _ in 0..1 + rng.below(4) {
                a.push(value(rng));
            }
            (a, Cmp::Exact)
        }
        30 | 31 => {
            let mut a = v(&[pick(rng, &["LPOP", "RPOP"]), &k]);
            if rng.below(2) == 0 {
                a.push(num(rng, 0, 4));
            }
            (a, Cmp::Exact)
        }
        32 => (v(&["LINSERT", &k, pick(rng, &["BEFORE", "AFTER"]), &value(rng), &value(rng)]), Cmp::Exact),
        33 => (v(&["LSET", &k, &num(rng, -4, 4), &value(rng)]), Cmp::Exact),
        34 => (v(&["LREM", &k, &num(rng, -2, 2), &value(rng)]), Cmp::Exact),
        35 => (v(&["LTRIM", &k, &num(rng, -8, 3), &num(rng, -4, 12)]), Cmp::Exact),
        36 => (v(&["LMOVE", &k, &key(rng, fam), pick(rng, &["LEFT", "RIGHT"]), pick(rng, &["LEFT", "RIGHT"])]), Cmp::Exact),
        37 => (v(&["RPOPLPUSH", &k, &key(rng, fam)]), Cmp::Exact),
        38 => (mpop(rng, fam, "LMPOP", ["LEFT", "RIGHT"]), Cmp::Exact),
        39 | 40 => (v(&["LRANGE", &k, &num(rng, -6, 3), &num(rng, -3, 20)]), Cmp::Exact),
        41 => (v(&["LINDEX", &k, &num(rng, -4, 4)]), Cmp::Exact),
        42 => {
            let mut a = v(&["LPOS", &k, &value(rng)]);
            if rng.below(2) == 0 {
                a.extend(v(&["RANK", pick(rng, &["1", "2", "-1", "-2"])]));
            }
            if rng.below(2) == 0 {
                a.extend(v(&["COUNT", &num(rng, 0, 3)]));
            }
            if rng.below(3) == 0 {
                a.extend(v(&["MAXLEN", &num(rng, 0, 6)]));
            }
            (a, Cmp::Exact)
        }
        43 => (v(&["LLEN", &k]), Cmp::Exact),
        // --- sets
        44..=47 => {
            let mut a = v(&[pick(rng, &["SADD", "SADD", "SREM"]), &k]);
            for _ in 0..1 + rng.below(6) {
                a.push(member(rng));
            }
            (a, Cmp::Exact)
        }
        48 => (v(&["SMOVE", &k, &key(rng, fam), &member(rng)]), Cmp::Exact),
        49 | 50 => {
            let mut a = v(&[pick(rng, &["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), &k]);
            {
                let n = 1 + rng.below(3) as usize;
                a.extend(keys_n(rng, fam, n));
            }
            (a, Cmp::Exact)
        }
        51 => {
            let mut a = v(&["SINTERCARD"]);
            a.extend(numkeys(rng, fam));
            if rng.below(2) == 0 {
                a.extend(v(&["LIMIT", &num(rng, 0, 5)]));
            }
            (a, Cmp::Exact)
        }
        52 => {
            let mut a = v(&[pick(rng, &["SINTER", "SUNION", "SDIFF"]), &k]);
            {
                let n = rng.below(3) as usize;
                a.extend(keys_n(rng, fam, n));
            }
            (a, Cmp::Sorted)
        }
        53 => {
            let ordered = run.encoding(&k) == "intset";
            (v(&["SMEMBERS", &k]), if ordered { Cmp::Exact } else { Cmp::Sorted })
        }
        54 => (v(&["SCARD", &k]), Cmp::Exact),
        55 => (v(&["SISMEMBER", &k, &member(rng)]), Cmp::Exact),
        56 => (v(&["SMISMEMBER", &k, &member(rng), &member(rng)]), Cmp::Exact),
        57 => match rng.below(4) {
            0 => (v(&["SPOP", &k, "1000"]), Cmp::Sorted),
            1 => (v(&["SRANDMEMBER", &k, "1000"]), Cmp::Sorted),
            2 => (v(&["SRANDMEMBER", &k, &num(rng, -5, 3)]), Cmp::Len),
            _ => (v(&["SRANDMEMBER", &k]), Cmp::Shape),
        },
        // --- sorted sets
        58..=61 => {
            let mut a = v(&["ZADD", &k]);
            let incr = rng.below(6) == 0;
            for opt in ["NX", "XX", "GT", "LT", "CH"] {
                if rng.below(9) == 0 {
                    a.push(opt.into());
                }
            }
            if incr {
                a.push("INCR".into());
            }
            for _ in 0..if incr { 1 } else { 1 + rng.below(4) } {
                // Key e mostly gets one score: BYLEX ranges are meaningful there.
                a.push(if k == "e" && rng.below(8) > 0 { "0".into() } else { score(rng) });
                a.push(zmember(rng));
            }
            (a, Cmp::Exact)
        }
        62 => (v(&["ZINCRBY", &k, &score(rng), &zmember(rng)]), Cmp::Exact),
        63 => (v(&["ZREM", &k, &zmember(rng), &zmember(rng)]), Cmp::Exact),
        64 => {
            let mut a = v(&[pick(rng, &["ZPOPMIN", "ZPOPMAX"]), &k]);
            if rng.below(2) == 0 {
                a.push(num(rng, 0, 4));
            }
            (a, Cmp::Exact)
        }
        65..=67 => {
            let mut a = v(&["ZRANGE", &k]);
            let by = rng.below(3);
            match by {
                0 => a.extend([num(rng, -5, 3), num(rng, -3, 20)]),
                1 => a.extend([score_bound(rng), score_bound(rng), "BYSCORE".into()]),
                _ => a.extend([lex(rng), lex(rng), "BYLEX".into()]),
            }
            if rng.below(3) == 0 {
                a.push("REV".into());
            }
            if by > 0 && rng.below(3) == 0 {
                a.extend(v(&["LIMIT", &num(rng, 0, 3), &num(rng, -1, 4)]));
            }
            if by < 2 && rng.below(2) == 0 {
                a.push("WITHSCORES".into());
            }
            (a, Cmp::Exact)
        }
        68 => (
            match rng.below(4) {
                0 => v(&["ZRANGEBYSCORE", &k, &score_bound(rng), &score_bound(rng), "WITHSCORES"]),
                1 => v(&["ZREVRANGEBYSCORE", &k, &score_bound(rng), &score_bound(rng)]),
                2 => v(&["ZREVRANGEBYLEX", &k, &lex(rng), &lex(rng)]),
                _ => v(&["ZREVRANGE", &k, &num(rng, -5, 3), &num(rng, -3, 20), "WITHSCORES"]),
            },
            Cmp::Exact,
        ),
        69 | 70 => {
            let cmd = pick(rng, &["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZUNION", "ZINTER", "ZDIFF"]);
            let mut a = v(&[cmd]);
            if cmd.ends_with("STORE") {
                a.push(k.clone());
            }
            let n = 1 + rng.below(3) as usize;
            a.push(n.to_string());
            a.extend(keys_n(rng, fam, n));
            if !cmd.starts_with("ZDIFF") {
                if rng.below(2) == 0 {
                    a.push("WEIGHTS".into());
                    for _ in 0..n {
                        a.push(pick(rng, &["1", "2", "0", "-1", "0.5", "3"]).into());
                    }
                }
                if rng.below(2) == 0 {
                    a.extend(v(&["AGGREGATE", pick(rng, &["SUM", "MIN", "MAX"])]));
                }
            }
            if !cmd.ends_with("STORE") && rng.below(2) == 0 {
                a.push("WITHSCORES".into());
            }
            (a, Cmp::Exact)
        }
        71 => {
            let mut a = v(&["ZRANGESTORE", &k, &key(rng, fam)]);
            match rng.below(3) {
                0 => a.extend([num(rng, -5, 3), num(rng, -3, 20)]),
                1 => a.extend([score_bound(rng), score_bound(rng), "BYSCORE".into()]),
                _ => a.extend([lex(rng), lex(rng), "BYLEX".into()]),
            }
            if rng.below(3) == 0 {
                a.push("REV".into());
            }
            (a, Cmp::Exact)
        }
        72 => (
            match rng.below(3) {
                0 => v(&["ZREMRANGEBYRANK", &k, &num(rng, -4, 2), &num(rng, -3, 3)]),
                1 => v(&["ZREMRANGEBYSCORE", &k, &score_bound(rng), &score_bound(rng)]),
                _ => v(&["ZREMRANGEBYLEX", &k, &lex(rng), &lex(rng)]),
            },
            Cmp::Exact,
        ),
        73 => (mpop(rng, fam, "ZMPOP", ["MIN", "MAX"]), Cmp::Exact),
        74 => (
            match rng.below(7) {
                0 => v(&["ZSCORE", &k, &zmember(rng)]),
                1 => v(&["ZMSCORE", &k, &zmember(rng), &zmember(rng)]),
                2 => v(&[pick(rng, &["ZRANK", "ZREVRANK"]), &k, &zmember(rng)]),
                3 => v(&["ZCARD", &k]),
                4 => v(&["ZCOUNT", &k, &score_bound(rng), &score_bound(rng)]),
                5 => v(&["ZLEXCOUNT", &k, &lex(rng), &lex(rng)]),
                _ => v(&["ZINTERCARD", "2", &k, &key(rng, fam)]),
            },
            Cmp::Exact,
        ),
        75 => match rng.below(2) {
            0 => (v(&["ZRANDMEMBER", &k, "100", "WITHSCORES"]), Cmp::SortedPairs),
            _ => (v(&["ZRANDMEMBER", &k, &num(rng, -5, 3)]), Cmp::Len),
        },
        // --- generic
        76 | 77 => {
            let mut a = v(&[pick(rng, &["DEL", "UNLINK"]), &k]);
            {
                let n = rng.below(2) as usize;
                a.extend(keys_n(rng, fam, n));
            }
            (a, Cmp::Exact)
        }
        78 => {
            let mut a = v(&["EXISTS", &k]);
            {
                let n = rng.below(3) as usize;
                a.extend(keys_n(rng, fam, n));
            }
            (a, Cmp::Exact)
        }
        79 => (v(&["TYPE", &k]), Cmp::Exact),
        80 => (v(&[pick(rng, &["RENAME", "RENAMENX"]), &k, &key(rng, fam)]), Cmp::Exact),
        81 => {
            let mut a = v(&["COPY", &k, &key(rng, fam)]);
            if rng.below(2) == 0 {
                a.push("REPLACE".into());
            }
            if rng.below(4) == 0 {
                a.extend(v(&["DB", "1"]));
            }
            (a, Cmp::Exact)
        }
        82 => {
            if rng.below(2) == 0 {
                (v(&["MOVE", &k, "1"]), Cmp::Exact)
            } else {
                run.step(&["SELECT", "1"], Cmp::Exact);
                run.step(&["MOVE", &k, "0"], Cmp::Exact);
                let t = if rng.below(3) == 0 { "DEL" } else { "EXISTS" };
                run.step(&[t, &k], Cmp::Exact);
                (v(&["SELECT", "0"]), Cmp::Exact)
            }
        }
        83 => {
            let mut a = v(&["EXPIRE", &k, pick(rng, &["1000", "2000", "0", "-5"])]);
            if rng.below(3) == 0 {
                a.push(pick(rng, &["NX", "XX", "GT", "LT"]).into());
            }
            (a, Cmp::Exact)
        }
        84 => (v(&["PERSIST", &k]), Cmp::Exact),
        85 => (v(&["TTL", &k]), Cmp::Sign),
        86 | 87 => {
            // DUMP on both, each payload (or the other server's, or one of
            // them on both) restored into another key.
            let dst = key(rng, fam);
            // A hash-table hash's payload lists its fields in the table's
            // order, which a small restored hash (a listpack) keeps: both
            // servers restore the same payload then.
            let unordered = run.encoding(&k) == "hashtable" && run.step(&["TYPE", &k], Cmp::Exact) == Resp::Simple("hash".into());
            let dumps = run.each(&["DUMP", &k]);
            let (Some(p0), Some(p1)) = (dumps[0].opt_bytes(), dumps[1].opt_bytes()) else {
                run.step(&["EXISTS", &k], Cmp::Exact);
                return;
            };
            let (for0, for1) = match rng.below(4) {
                _ if unordered && rng.below(2) == 0 => (p0.clone(), p0),
                _ if unordered => (p1.clone(), p1),
                0 => (p1, p0),
                1 => (p0.clone(), p0),
                2 => (p1.clone(), p1),
                _ => (p0, p1),
            };
            let head = |p: Vec<u8>| vec![b"RESTORE".to_vec(), dst.as_bytes().to_vec(), b"0".to_vec(), p, b"REPLACE".to_vec()];
            let (a0, a1) = (head(for0), head(for1));
            run.step_sides([&a0, &a1], Cmp::Exact);
            return;
        }
        88 | 89 => {
            let mut a = v(&[pick(rng, &["SORT", "SORT", "SORT_RO"]), &k]);
            if rng.below(4) == 0 {
                a.extend(v(&["BY", "nosort"]));
            }
            if rng.below(3) == 0 {
                a.extend(v(&["LIMIT", &num(rng, 0, 3), &num(rng, -1, 5)]));
            }
            if rng.below(2) == 0 {
                a.push("ALPHA".into());
            }
            if rng.below(3) == 0 {
                a.push("DESC".into());
            }
            if rng.below(4) == 0 {
                a.extend(v(&["GET", "#"]));
            }
            if a[0] == "SORT" && rng.below(2) == 0 {
                a.extend(v(&["STORE", &key(rng, fam)]));
            }
            // BY nosort keeps a set's hash-table order: only its elements compare.
            let unordered = a.iter().any(|w| w == "nosort") && run.encoding(&k) == "hashtable";
            (a, if unordered { Cmp::Len } else { Cmp::Exact })
        }
        90 => {
            let mut tail = vec!["COUNT", pick(rng, &["1", "3", "10"])];
            if rng.below(2) == 0 {
                tail.extend(["TYPE", pick(rng, &["string", "list", "set", "zset", "hash"])]);
            }
            run.scan_all(&["SCAN"], &tail, false);
            return;
        }
        91 => {
            let (cmd, pairs) = match rng.below(3) {
                0 => ("HSCAN", true),
                1 => ("SSCAN", false),
                _ => ("ZSCAN", true),
            };
            run.scan_all(&[cmd, &k], &["COUNT", pick(rng, &["2", "5", "100"])], pairs);
            return;
        }
        92 => (v(&["RANDOMKEY"]), Cmp::Shape),
        93 => (v(&["DBSIZE"]), Cmp::Exact),
        _ => (v(&["OBJECT", "ENCODING", &k]), Cmp::Exact),
    };
    // A lex range over a sorted set with several scores is unspecified (in
    // Redis it depends on the skiplist's random levels): only on one score.
    let lex = args[0].contains("LEX") || args.iter().any(|a| a == "BYLEX");
    if lex {
        let src = if args[0] == "ZRANGESTORE" { args[2].clone() } else { args[1].clone() };
        if !run.one_score(&src) {
            run.step(&["ZCARD", &src], Cmp::Exact);
            return;
        }
    }
    run.step(&args, cmp);
}

fn seed() -> u64 {
    match std::env::var("RINGKV_WORKLOAD_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("RINGKV_WORKLOAD_SEED={s:?} is not a number"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

const LOW_THRESHOLDS: [(&str, &str); 7] = [
    ("hash-max-listpack-entries", "16"),
    ("hash-max-listpack-value", "16"),
    ("zset-max-listpack-entries", "16"),
    ("zset-max-listpack-value", "16"),
    ("set-max-intset-entries", "16"),
    ("list-max-listpack-size", "4"),
    ("list-compress-depth", "1"),
];

fn wait_bgsave(c: &mut Conn) {
    let t = Instant::now();
    loop {
        let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).to_string();
        if info.contains("rdb_bgsave_in_progress:0") {
            assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `OBJECT ENCODING` of every key of db 0 and db 1, on `c`.
fn encodings(c: &mut Conn) -> Vec<Resp> {
    let mut out = vec![];
    for db in ["0", "1"] {
        c.cmd(&["SELECT", db]);
        for k in KEYS {
            out.push(c.cmd(&["OBJECT", "ENCODING", k]));
        }
    }
    c.cmd(&["SELECT", "0"]);
    out
}

#[test]
fn random_mixed_workload_replies_digests_encodings_and_rdb_alike() {
    let started = Instant::now();
    let seed = seed();
    let (ringkv, redis) = Server::pair(&["--enable-debug-command", "yes"], &["--shards", "3"]);
    let mut run = Run { c: [ringkv.conn(), redis.conn()], seed, history: vec![], errors: 0 };
    for (name, value) in LOW_THRESHOLDS {
        run.step(&["CONFIG", "SET", name, value], Cmp::Exact);
    }
    let mut rng = Rng::new(seed);
    for batch in 0..BATCHES {
        for _ in 0..COMMANDS_PER_BATCH {
            random_step(&mut run, &mut rng);
            run.digests();
        }
        run.step(&["DEBUG", "DIGEST"], Cmp::Exact);
        if batch == BATCHES / 2 {
            // Default thresholds for a while: conversions at other sizes.
            for name in ["set-max-intset-entries", "zset-max-listpack-entries", "hash-max-listpack-entries"] {
                run.step(&["CONFIG", "SET", name, "128"], Cmp::Exact);
            }
        }
    }
    for db in ["0", "1"] {
        run.step(&["SELECT", db], Cmp::Exact);
        for k in KEYS {
            run.step(&["OBJECT", "ENCODING", k], Cmp::Exact);
            run.step(&["TYPE", k], Cmp::Exact);
        }
    }
    run.step(&["SELECT", "0"], Cmp::Exact);
    let digest = run.step(&["DEBUG", "DIGEST"], Cmp::Exact);
    let workload_time = started.elapsed();
    // The loads below (a fresh redis-server, DEBUG RELOAD) under the same thresholds.
    let mut fresh_args = vec!["--enable-debug-command".to_string(), "yes".into()];
    for (name, value) in LOW_THRESHOLDS {
        run.step(&["CONFIG", "SET", name, value], Cmp::Exact);
        fresh_args.extend([format!("--{name}"), value.to_string()]);
    }

    // ringkv's RDB, loaded by a fresh redis-server: the same digest.
    assert_eq!(run.c[0].cmd(&["BGSAVE"]), Resp::Simple("Background saving started".into()));
    wait_bgsave(&mut run.c[0]);
    let dir = std::env::temp_dir().join(format!("ringkv-types-workload-{}-rdb", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(ringkv.dir.join("dump.rdb"), dir.join("dump.rdb")).unwrap();
    fresh_args.extend(["--dir".into(), dir.display().to_string()]);
    let fresh = Server::redis(&fresh_args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut f = fresh.conn();
    let loaded_digest = f.cmd(&["DEBUG", "DIGEST"]);
    let loaded_encodings = encodings(&mut f);
    drop(f);
    drop(fresh);
    let _ = std::fs::remove_dir_all(&dir);

    // DEBUG RELOAD on both: the digest kept, the encodings those of a load.
    // A load may change the digest, in Redis too: a small skiplist zset
    // becomes a listpack, where a -0 score is stored as 0. Both servers'
    // reloads must agree, and agree with the fresh redis-server's load.
    run.step(&["DEBUG", "RELOAD"], Cmp::Exact);
    let reloaded = run.step(&["DEBUG", "DIGEST"], Cmp::Exact);
    assert_eq!(loaded_digest, reloaded, "redis-server's load of ringkv's dump.rdb vs DEBUG RELOAD (seed {seed:#x})");
    if reloaded != digest {
        eprintln!("seed {seed:#x}: the load changed the digest (as Redis's own does, e.g. a -0 score in a small skiplist zset), on both servers alike");
    }
    let after_reload = encodings(&mut run.c[0]);
    assert_eq!(after_reload, encodings(&mut run.c[1]), "encodings after DEBUG RELOAD (ringkv, redis), seed {seed:#x}");
    assert_eq!(after_reload, loaded_encodings, "encodings after DEBUG RELOAD vs redis-server loading ringkv's RDB, seed {seed:#x}");
    eprintln!(
        "seed {seed:#x}: {} commands ({} error replies) in {:?} (workload), {:?} in all",
        run.history.len(),
        run.errors,
        workload_time,
        started.elapsed()
    );
}
