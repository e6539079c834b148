//! The listpack and intset of `ringkv::types`, byte for byte against a real
//! redis-server 7.0: the same operations are run there and here, Redis's
//! blob is taken out of `DUMP key` (type byte, the RDB object, then the
//! 2-byte RDB version and the 8-byte CRC-64) and out of its RDB string
//! framing (possibly LZF-compressed), and must equal ours; our reader must
//! also read Redis's blob back to the elements Redis replies.

mod common;

use common::dump::{
    dump, dump_list, dump_listpack, read_string, QUICKLIST_NODE_PACKED, TYPE_HASH_LISTPACK, TYPE_LIST_QUICKLIST_2, TYPE_SET_INTSET, TYPE_ZSET_LISTPACK,
};
use common::{Resp, Server};
use ringkv::types::intset::{self, Intset};
use ringkv::types::listpack::{self, Entry, Listpack, Where};

fn bulks(r: &Resp) -> Vec<Vec<u8>> {
    r.array().iter().map(|x| x.opt_bytes().unwrap()).collect()
}

fn elements(lp: &Listpack) -> Vec<Vec<u8>> {
    lp.iter().map(|e| e.to_vec()).collect()
}

/// Reads Redis's blob with our reader: valid, and the same elements both
/// ways as `want`.
fn check_read_back(blob: &[u8], want: &[Vec<u8>]) {
    listpack::validate(blob, true).unwrap();
    let lp = Listpack::from_bytes(blob.to_vec()).unwrap();
    assert_eq!(elements(&lp), want);
    let mut back: Vec<Vec<u8>> = lp.iter().rev().map(|e| e.to_vec()).collect();
    back.reverse();
    assert_eq!(back, want);
    assert_eq!(lp.len(), want.len());
}

fn assert_same_bytes(ours: &[u8], redis: &[u8], what: &str) {
    assert!(ours == redis, "{}: ours {:02x?}\nredis {:02x?}", what, ours, redis);
}

/// Strings that land in every listpack encoding: each integer range edge,
/// strings that look like integers but are not canonical, the string
/// length edges, and entries whose back-length takes 1 and 2 bytes.
fn every_encoding() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "a",
        "0",
        "127",
        "128",
        "-1",
        "4095",
        "-4096",
        "4096",
        "-4097",
        "32767",
        "-32768",
        "32768",
        "-32769",
        "8388607",
        "-8388608",
        "8388608",
        "-8388609",
        "2147483647",
        "-2147483648",
        "2147483648",
        "-2147483649",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-0",
        "007",
        "+1",
        " 1",
        "1.5",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for n in [63, 64, 125, 126, 200] {
        v.push((0..n).map(|i| b'a' + (i % 26) as u8).collect());
    }
    v
}

#[test]
fn list_of_every_encoding_is_redis_bytes() {
    let s = Server::redis(&[]);
    let mut c = s.conn();
    let items = every_encoding();
    let mut args: Vec<&[u8]> = vec![b"RPUSH", b"l"];
    args.extend(items.iter().map(|v| v.as_slice()));
    c.cmd(&args);
    let nodes = dump_list(&mut c, "l");
    assert_eq!(nodes.len(), 1);
    let mut lp = Listpack::new();
    for i in &items {
        lp.append(Entry::Str(i));
    }
    assert_same_bytes(lp.as_bytes(), &nodes[0], "RPUSH of every encoding");
    check_read_back(&nodes[0], &bulks(&c.cmd(&["LRANGE", "l", "0", "-1"])));

    // Integers appended as integers give the same bytes as their text.
    let mut ints = Listpack::new();
    let mut texts = Listpack::new();
    for v in [0i64, 127, 128, -4096, 4096, -32769, 8388608, i64::MIN, i64::MAX] {
        ints.append(Entry::Int(v));
        texts.append(Entry::Str(v.to_string().as_bytes()));
    }
    assert_eq!(ints, texts);
}

#[test]
fn big_strings_and_back_lengths_are_redis_bytes() {
    let s = Server::redis(&[]);
    let mut c = s.conn();
    // 4095/4096: the 12-bit and 32-bit string lengths; 16377/16378: the
    // entry reaches 16383 bytes, Redis's edge for a 3-byte back-length.
    // Each gets a node of its own (over the 8 KiB node size, or alone).
    for n in [4095usize, 4096, 16377, 16378] {
        let key = format!("big{}", n);
        let v: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        c.cmd(&[b"RPUSH", key.as_bytes(), &v]);
        let nodes = dump_list(&mut c, &key);
        let mut lp = Listpack::new();
        lp.append(Entry::Str(&v));
        assert_same_bytes(lp.as_bytes(), &nodes[0], &key);
        check_read_back(&nodes[0], &[v]);
    }
}

/// A small deterministic generator, so a failure replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn list_operations_match_redis_byte_for_byte() {
    let s = Server::redis(&[]);
    let mut c = s.conn();
    let pool = every_encoding();
    let mut rng = Lcg(42);
    let mut lp = Listpack::new();
    let mut model: Vec<Vec<u8>> = vec![];
    // How often each of RPUSH, LPUSH, LINSERT, LSET, LTRIM, LREM ran.
    let mut done = [0usize; 6];
    for step in 0..300 {
        let v = pool[rng.below(pool.len())].clone();
        let n = model.len();
        // Keep one node (under 8 KiB): grow while small, shrink after.
        let grow = lp.total_bytes() < 4000;
        let op = match rng.below(7) {
            0 | 1 if grow => {
                c.cmd(&[b"RPUSH", &b"l"[..], &v]);
                lp.append(Entry::Str(&v));
                model.push(v);
                0
            }
            2 if grow => {
                c.cmd(&[b"LPUSH", &b"l"[..], &v]);
                lp.prepend(Entry::Str(&v));
                model.insert(0, v);
                1
            }
            3 if n > 0 && grow => {
                let pivot = model[rng.below(n)].clone();
                let after = rng.below(2) == 1;
                let side: &[u8] = if after { b"AFTER" } else { b"BEFORE" };
                let r = c.cmd(&[&b"LINSERT"[..], b"l", side, &pivot, &v]);
                assert_eq!(r.int(), n as i64 + 1);
                let i = model.iter().position(|m| *m == pivot).unwrap();
                let off = lp.find(lp.first().unwrap(), &pivot, 0).unwrap();
                lp.insert(off, if after { Where::After } else { Where::Before }, Entry::Str(&v));
                model.insert(i + after as usize, v);
                2
            }
            4 if n > 0 => {
                let i = rng.below(n) as i64 - if rng.below(2) == 1 { n as i64 } else { 0 };
                c.cmd(&[b"LSET", &b"l"[..], i.to_string().as_bytes(), &v]);
                lp.replace(lp.seek(i).unwrap(), Entry::Str(&v));
                let at = if i < 0 { (i + n as i64) as usize } else { i as usize };
                model[at] = v;
                3
            }
            5 if n > 2 => {
                // LTRIM keeps [start, stop]: two range deletions in Redis.
                let start = rng.below(2);
                let stop = n - 1 - rng.below(2);
                c.cmd(&[b"LTRIM", &b"l"[..], start.to_string().as_bytes(), stop.to_string().as_bytes()]);
                lp.delete_range(0, start);
                lp.delete_range(-((n - 1 - stop) as i64), n - 1 - stop);
                model = model[start..=stop].to_vec();
                4
            }
            _ if n > 0 => {
                let target = model[rng.below(n)].clone();
                c.cmd(&[b"LREM", &b"l"[..], b"1", &target]);
                let off = lp.find(lp.first().unwrap(), &target, 0).unwrap();
                lp.delete(off);
                let i = model.iter().position(|m| *m == target).unwrap();
                model.remove(i);
                5
            }
            _ => continue,
        };
        done[op] += 1;
        if model.is_empty() {
            assert_eq!(c.cmd(&["EXISTS", "l"]).int(), 0);
            continue;
        }
        let nodes = dump_list(&mut c, "l");
        assert_eq!(nodes.len(), 1, "step {}", step);
        assert_same_bytes(lp.as_bytes(), &nodes[0], &format!("step {}", step));
        assert_eq!(elements(&lp), model);
    }
    assert!(done.iter().all(|&n| n >= 10), "operations run: {:?}", done);
    check_read_back(&dump_list(&mut c, "l")[0], &bulks(&c.cmd(&["LRANGE", "l", "0", "-1"])));
}

#[test]
fn hash_listpack_matches_redis_byte_for_byte() {
    let s = Server::redis(&[]);
    let mut c = s.conn();
    // Values within hash-max-listpack-value (64 bytes), so it stays a listpack.
    let pool: Vec<Vec<u8>> = every_encoding().into_iter().filter(|v| v.len() <= 64).collect();
    let mut rng = Lcg(7);
    let mut lp = Listpack::new();
    for step in 0..200 {
        let field = pool[rng.below(pool.len())].clone();
        if rng.below(4) == 0 {
            let r = c.cmd(&[b"HDEL", &b"h"[..], &field]).int();
            match lp.find_field(&field) {
                Some((f, _)) => {
                    assert_eq!(r, 1);
                    lp.delete_at(f, 2);
                }
                None => assert_eq!(r, 0),
            }
        } else {
            let value = pool[rng.below(pool.len())].clone();
            c.cmd(&[b"HSET", &b"h"[..], &field, &value]);
            match lp.find_field(&field) {
                Some((_, v)) => lp.replace(v, Entry::Str(&value)),
                None => {
                    lp.append(Entry::Str(&field));
                    lp.append(Entry::Str(&value));
                }
            }
        }
        if lp.is_empty() {
            continue;
        }
        assert_eq!(c.cmd(&["OBJECT", "ENCODING", "h"]), Resp::bulk("listpack"));
        let blob = dump_listpack(&mut c, "h", TYPE_HASH_LISTPACK);
        assert_same_bytes(lp.as_bytes(), &blob, &format!("step {}", step));
    }
    let blob = dump_listpack(&mut c, "h", TYPE_HASH_LISTPACK);
    listpack::validate_unique(&blob, true, true).unwrap();
    check_read_back(&blob, &bulks(&c.cmd(&["HGETALL", "h"])));
    let theirs = Listpack::from_bytes(blob).unwrap();
    for (f, v) in theirs.pairs() {
        assert_eq!(c.cmd(&[b"HGET", &b"h"[..], &f.to_vec()]).opt_bytes(), Some(v.to_vec()));
    }
}

#[test]
fn zset_listpack_matches_redis_byte_for_byte() {
    let s = Server::redis(&[]);
    let mut c = s.conn();
    // Scores whose text is the same however a double is printed.
    let members: Vec<(&str, &str)> =
        vec![("a", "1"), ("b", "2.5"), ("c", "-3"), ("d", "0"), ("e", "100000"), ("f", "-0.5"), ("g", "1"), ("12", "4096"), ("-7", "9007199254740992")];
    let mut args = vec!["ZADD", "z"];
    for (m, sc) in &members {
        args.push(sc);
        args.push(m);
    }
    c.cmd(&args);
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "z"]), Resp::bulk("listpack"));
    let blob = dump_listpack(&mut c, "z", TYPE_ZSET_LISTPACK);
    // Member, score, ordered by score then member.
    let mut sorted = members.clone();
    sorted.sort_by(|x, y| x.1.parse::<f64>().unwrap().total_cmp(&y.1.parse().unwrap()).then(x.0.cmp(y.0)));
    let mut lp = Listpack::new();
    for (m, sc) in &sorted {
        lp.append(Entry::Str(m.as_bytes()));
        lp.append(Entry::Str(sc.as_bytes()));
    }
    assert_same_bytes(lp.as_bytes(), &blob, "ZADD");
    check_read_back(&blob, &bulks(&c.cmd(&["ZRANGE", "z", "0", "-1", "WITHSCORES"])));
    listpack::validate_unique(&blob, true, true).unwrap();
}

#[test]
fn intset_matches_redis_byte_for_byte() {
    let s = Server::redis(&[]);
    let mut c = s.conn();
    let values: Vec<i64> =
        vec![5, -3, 0, i64::from(i16::MAX), i64::from(i16::MIN), i64::from(i16::MAX) + 1, i64::from(i32::MIN), i64::from(i32::MAX) + 1, i64::MIN, i64::MAX];
    let mut rng = Lcg(3);
    let mut ours = Intset::new();
    for step in 0..120 {
        // Mostly narrow values, so each width is seen before the upgrade.
        let v = values[rng.below(if step < 40 {
            5
        } else if step < 80 {
            8
        } else {
            values.len()
        })];
        let vs = v.to_string();
        if rng.below(3) == 0 {
            let r = c.cmd(&["SREM", "s", &vs]).int();
            assert_eq!(r == 1, ours.remove(v));
        } else {
            let r = c.cmd(&["SADD", "s", &vs]).int();
            assert_eq!(r == 1, ours.add(v));
        }
        if ours.is_empty() {
            // Redis deletes the key, and a new one starts at 16 bits.
            ours = Intset::new();
            continue;
        }
        assert_eq!(c.cmd(&["OBJECT", "ENCODING", "s"]), Resp::bulk("intset"));
        let (t, obj) = dump(&mut c, "s");
        assert_eq!(t, TYPE_SET_INTSET);
        let mut pos = 0;
        let blob = read_string(&obj, &mut pos);
        assert_same_bytes(ours.as_bytes(), &blob, &format!("step {}", step));
        intset::validate(&blob, true).unwrap();
        let theirs = Intset::from_bytes(blob).unwrap();
        let mut members: Vec<i64> = bulks(&c.cmd(&["SMEMBERS", "s"])).iter().map(|m| String::from_utf8_lossy(m).parse().unwrap()).collect();
        members.sort();
        assert_eq!(theirs.iter().collect::<Vec<_>>(), members);
    }
}

/// A DUMP payload for RESTORE: the type byte, the blob as a raw RDB
/// string, RDB version 10 and the CRC-64 of all that.
fn payload(rdb_type: u8, blob: &[u8], quicklist: bool) -> Vec<u8> {
    let len = |p: &mut Vec<u8>, n: usize| {
        if n < 64 {
            p.push(n as u8);
        } else if n < 16384 {
            p.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
        } else {
            p.push(0x80);
            p.extend_from_slice(&(n as u32).to_be_bytes());
        }
    };
    let mut p = vec![rdb_type];
    if quicklist {
        len(&mut p, 1);
        len(&mut p, QUICKLIST_NODE_PACKED as usize);
    }
    len(&mut p, blob.len());
    p.extend_from_slice(blob);
    p.extend_from_slice(&[10, 0]);
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Random damage: flipped bytes, maybe a cut, maybe the header's total
/// (and count) made consistent again so the deep checks are reached.
fn corrupt(good: &[u8], rng: &mut Lcg, header_count_at: Option<usize>) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(b.len());
        b[at] = match rng.below(3) {
            0 => rng.next() as u8,
            1 => b[at] ^ (1 << rng.below(8)),
            _ => [0x00, 0x7F, 0x80, 0xBF, 0xC0, 0xE0, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF][rng.below(11)],
        };
    }
    if rng.below(4) == 0 {
        b.truncate(rng.below(b.len() + 1));
    }
    if b.len() >= 8 && rng.below(2) == 0 {
        if let Some(at) = header_count_at {
            // A listpack: total bytes first; sometimes an unknown count.
            let n = b.len() as u32;
            b[..4].copy_from_slice(&n.to_le_bytes());
            if rng.below(3) == 0 {
                b[at..at + 2].copy_from_slice(&[0xFF, 0xFF]);
            }
        }
    }
    b
}

/// Our verdict on damaged blobs is Redis's under `sanitize-dump-payload
/// yes` (RESTORE refuses what lpValidateIntegrity / intsetValidateIntegrity
/// refuse, and an empty collection).
#[test]
fn corrupt_blobs_get_redis_sanitizer_verdicts() {
    let s = Server::redis(&["--sanitize-dump-payload", "yes"]);
    let mut c = s.conn();
    let mut hash = Listpack::new();
    let mut list = Listpack::new();
    for (i, v) in every_encoding().iter().filter(|v| v.len() <= 64).enumerate() {
        hash.append(Entry::Str(format!("f{}", i).as_bytes()));
        hash.append(Entry::Str(v));
        list.append(Entry::Str(v));
    }
    let mut set = Intset::new();
    for v in [-70000, -3, 0, 5, 1 << 20] {
        set.add(v);
    }
    let mut rng = Lcg(99);
    let mut verdicts = [0usize; 2];
    for round in 0..1500 {
        let (rdb_type, good, listpack_header) = match round % 3 {
            0 => (TYPE_HASH_LISTPACK, hash.as_bytes(), Some(4)),
            1 => (TYPE_LIST_QUICKLIST_2, list.as_bytes(), Some(4)),
            _ => (TYPE_SET_INTSET, set.as_bytes(), None),
        };
        let b = corrupt(good, &mut rng, listpack_header);
        let ours = match rdb_type {
            TYPE_HASH_LISTPACK => listpack::validate_unique(&b, true, true).is_ok() && Listpack::from_bytes(b.clone()).is_ok_and(|l| !l.is_empty()),
            TYPE_LIST_QUICKLIST_2 => Listpack::from_bytes(b.clone()).is_ok_and(|l| !l.is_empty()),
            _ => Intset::from_bytes(b.clone()).is_ok(),
        };
        let p = payload(rdb_type, &b, rdb_type == TYPE_LIST_QUICKLIST_2);
        let r = c.cmd(&[&b"RESTORE"[..], b"k", b"0", &p, b"REPLACE"]);
        let theirs = r == Resp::ok();
        assert!(theirs || matches!(r, Resp::Error(_)), "{:?}", r);
        assert_eq!(ours, theirs, "round {}: type {} blob {:02x?}: redis says {:?}", round, rdb_type, b, r);
        verdicts[theirs as usize] += 1;
    }
    // Both verdicts are well represented, or the test proves little.
    assert!(verdicts.iter().all(|&n| n >= 50), "refused/accepted: {:?}", verdicts);
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}
