//! A random workload of set commands sent to ringkv (`--shards 3`, so
//! SMOVE and the *STORE commands cross shards) and to redis-server 7.0:
//! every reply the same bytes (only commands whose replies do not depend on
//! a hash table's order or on chance), OBJECT ENCODING the same (conversions
//! at the same points, `set-max-intset-entries` small so they happen often),
//! and DEBUG DIGEST equal after each batch.

mod common;

use common::{Conn, Rng, Server};

const BATCHES: usize = 6;
const COMMANDS_PER_BATCH: usize = 300;

/// Both servers' replies to `args`, which must be the same bytes.
fn same<A: AsRef<[u8]>>(c: &mut [Conn; 2], args: &[A]) -> Vec<u8> {
    let replies: Vec<Vec<u8>> = c.iter_mut().map(|c| c.cmd_raw(args)).collect();
    let shown: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect();
    assert_eq!(String::from_utf8_lossy(&replies[0]), String::from_utf8_lossy(&replies[1]), "reply to {shown:?} (ringkv, redis)");
    replies.into_iter().next().unwrap()
}

/// Members: small integers (an intset), a few strings (a hash table), and
/// integers that are not canonical (strings too).
fn member(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => format!("m{}", rng.below(6)),
        1 => format!("0{}", rng.below(3)),
        2 => format!("-{}", rng.below(40000)),
        _ => rng.below(24).to_string(),
    }
}

fn random_command(rng: &mut Rng, keys: &[&str]) -> Vec<String> {
    let key = |rng: &mut Rng| keys[rng.below(keys.len() as u64) as usize].to_string();
    let mut args: Vec<String> = match rng.below(16) {
        0..=4 => vec!["SADD".into(), key(rng)],
        5 | 6 => vec!["SREM".into(), key(rng)],
        7 => vec!["SMOVE".into(), key(rng), key(rng), member(rng)],
        8 => vec!["SINTERSTORE".into(), key(rng), key(rng), key(rng)],
        9 => vec!["SUNIONSTORE".into(), key(rng), key(rng), key(rng)],
        10 => vec!["SDIFFSTORE".into(), key(rng), key(rng), key(rng), key(rng)],
        11 => vec!["SINTERCARD".into(), "2".into(), key(rng), key(rng), "LIMIT".into(), rng.below(4).to_string()],
        12 => vec!["SCARD".into(), key(rng)],
        13 => vec!["SMISMEMBER".into(), key(rng)],
        14 => vec!["OBJECT".into(), "ENCODING".into(), key(rng)],
        _ => vec!["DEL".into(), key(rng)],
    };
    if matches!(args[0].as_str(), "SADD" | "SREM" | "SMISMEMBER") {
        for _ in 0..1 + rng.below(6) {
            args.push(member(rng));
        }
    }
    args
}

#[test]
fn random_set_workload_replies_encodings_and_digests_alike() {
    let (ringkv, redis) = Server::pair(&["--enable-debug-command", "yes"], &["--shards", "3"]);
    let mut c = [ringkv.conn(), redis.conn()];
    same(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "6"]);
    let keys = ["s1", "s2", "s3", "s4", "s5", "{t}a", "{t}b", "str"];
    same(&mut c, &["SET", "str", "x"]);
    let mut rng = Rng::new(0x5E7_5E7);
    for batch in 0..BATCHES {
        for _ in 0..COMMANDS_PER_BATCH {
            same(&mut c, &random_command(&mut rng, &keys));
        }
        same(&mut c, &["DEBUG", "DIGEST"]);
        let mut args = vec!["DEBUG", "DIGEST-VALUE"];
        args.extend(keys);
        same(&mut c, &args);
        if batch == BATCHES / 2 {
            same(&mut c, &["CONFIG", "SET", "set-max-intset-entries", "512"]);
        }
    }
}

/// Pipelined SADD and HSET runs on one big hash-table set and hash (past
/// the 16k members at which ringkv looks a batch's members up ahead,
/// `network::prefetch::warm_batch_members`), mixed with runs on other keys, a
/// string, small sets and a wrong arity in the same batches: the same reply bytes as
/// redis-server's and the same digests. With one shard the batches' keys
/// are the connection's own (looked up ahead); with three, some are not.
#[test]
fn pipelined_member_writes_on_big_tables_reply_alike() {
    for shards in ["1", "3"] {
        pipelined_member_writes(shards);
    }
}

fn pipelined_member_writes(shards: &str) {
    let (ringkv, redis) = Server::pair(&["--enable-debug-command", "yes"], &["--shards", shards]);
    let mut c = [ringkv.conn(), redis.conn()];
    same(&mut c, &["SET", "str", "x"]);
    // 17k members and fields to start from (the members of the batches
    // below are drawn from 24k, so about two thirds are there already).
    for chunk in 0..17 {
        let mut sadd = vec!["SADD".to_string(), "big:s".into()];
        let mut hset = vec!["HSET".to_string(), "big:h".into()];
        for i in chunk * 1000..(chunk + 1) * 1000 {
            sadd.push(format!("element:{:012}", i));
            hset.extend([format!("element:{:012}", i), i.to_string()]);
        }
        same(&mut c, &sadd);
        same(&mut c, &hset);
    }
    let mut rng = Rng::new(0xB16_5E7);
    let mut batch = Vec::new();
    for round in 0..300 {
        batch.clear();
        let mut n = 0;
        // A run on the big set or hash, then a few others, 16 commands in all.
        for i in 0..16 {
            let m = format!("element:{:012}", rng.below(24000));
            let args: Vec<String> = match (round % 3, i) {
                (_, 13) => vec!["SADD".into(), "str".into(), m],
                (_, 14) => vec!["SADD".into(), format!("small{}", rng.below(3)), m],
                (_, 15) => vec!["HSET".into(), "big:h".into(), m],
                (0 | 1, _) => vec!["SADD".into(), "big:s".into(), m],
                _ => vec!["HSET".into(), "big:h".into(), m, rng.below(100).to_string()],
            };
            common::encode_into(&mut batch, &args);
            n += 1;
        }
        let replies: Vec<Vec<u8>> = c
            .iter_mut()
            .map(|c| {
                c.send_raw(&batch);
                (0..n).flat_map(|_| c.read_frame().unwrap()).collect()
            })
            .collect();
        assert_eq!(String::from_utf8_lossy(&replies[0]), String::from_utf8_lossy(&replies[1]), "round {round}, {shards} shard(s)");
    }
    assert!(common::decode(&same(&mut c, &["SCARD", "big:s"])).int() > 17000);
    same(&mut c, &["OBJECT", "ENCODING", "big:h"]);
    same(&mut c, &["DEBUG", "DIGEST-VALUE", "big:s", "big:h", "small0", "small1", "small2", "str"]);
}
