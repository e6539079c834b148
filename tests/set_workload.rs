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
