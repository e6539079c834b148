//! DEBUG DIGEST and DEBUG DIGEST-VALUE against redis-server: the same
//! workload sent to ringkv (`--shards 3`, so the keys of every database are
//! spread over three shards) and to redis-server must leave equal digests,
//! reply for reply, byte for byte. Later tests use DEBUG DIGEST as their
//! oracle for whole datasets, so this one checks the oracle itself.
//!
//! TTLs here are all far in the future: Redis digests a key whose TTL has
//! passed until it is reclaimed, and when that happens differs between two
//! servers, so an expiring key would make the comparison racy.

mod common;

use common::{key_shard, Conn, Rng, Server};

const SHARDS: usize = 3;
/// Databases the workload writes to (of the default 16).
const DATABASES: u64 = 4;
const BATCHES: usize = 8;
const COMMANDS_PER_BATCH: usize = 150;

fn pair() -> (Server, Server) {
    Server::pair(&["--enable-debug-command", "yes"], &["--shards", &SHARDS.to_string()])
}

/// Sends `args` to both servers and returns ringkv's raw reply after
/// checking that redis-server's is the same bytes.
fn both<A: AsRef<[u8]>>(c: &mut [Conn; 2], args: &[A]) -> Vec<u8> {
    let ringkv = c[0].cmd_raw(args);
    let redis = c[1].cmd_raw(args);
    assert_eq!(
        String::from_utf8_lossy(&ringkv),
        String::from_utf8_lossy(&redis),
        "reply to {:?} (ringkv, redis)",
        args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect::<Vec<_>>()
    );
    ringkv
}

/// Switches both connections to RESP3 (HELLO's reply names the server, so
/// it differs).
fn resp3(c: &mut [Conn; 2]) {
    for c in c.iter_mut() {
        c.cmd(&["HELLO", "3"]);
    }
}

const ZERO_STATUS: &[u8] = b"+0000000000000000000000000000000000000000\r\n";

#[test]
fn empty_dataset_missing_keys_and_arity() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    assert_eq!(both(&mut c, &["DEBUG", "DIGEST"]), ZERO_STATUS);
    let missing = both(&mut c, &["DEBUG", "DIGEST-VALUE", "nokey", "{a}x", "b"]);
    assert_eq!(missing, [&b"*3\r\n"[..], ZERO_STATUS, ZERO_STATUS, ZERO_STATUS].concat());
    both(&mut c, &["DEBUG", "DIGEST-VALUE"]);
    both(&mut c, &["debug", "digest"]);
    both(&mut c, &["DEBUG", "DIGEST", "extra"]);
    both(&mut c, &["DEBUG", "DIGEST-VALUES", "k"]);
    // A database that held keys and was emptied is skipped again.
    both(&mut c, &["SELECT", "5"]);
    both(&mut c, &["SET", "k", "v"]);
    both(&mut c, &["DEL", "k"]);
    assert_eq!(both(&mut c, &["DEBUG", "DIGEST"]), ZERO_STATUS);
    both(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert_ne!(both(&mut c, &["DEBUG", "DIGEST"]), ZERO_STATUS);
    both(&mut c, &["FLUSHALL"]);
    assert_eq!(both(&mut c, &["DEBUG", "DIGEST"]), ZERO_STATUS);
    // RESP3 changes nothing: both are status replies in an array.
    resp3(&mut c);
    both(&mut c, &["SET", "a", "1", "EX", "1000"]);
    both(&mut c, &["DEBUG", "DIGEST"]);
    both(&mut c, &["DEBUG", "DIGEST-VALUE", "a", "nokey"]);
}

/// The workload's keys: plain ones and hashtagged ones, spread over every
/// shard (checked), so MSET and the digest both cross shards.
fn keys() -> Vec<String> {
    let keys: Vec<String> = (0..30).map(|i| if i % 5 == 0 { format!("{{t{}}}k{}", i % 3, i) } else { format!("k{}", i) }).collect();
    for s in 0..SHARDS {
        assert!(keys.iter().any(|k| key_shard(k.as_bytes(), SHARDS) == s), "no workload key on shard {s}");
    }
    keys
}

/// A value: integers (canonical, so int-encoded, and not), empty, binary,
/// short and longer than Redis's embstr limit.
fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(7) {
        0 => rng.below(1000).to_string().into_bytes(),
        1 => format!("-{}", rng.below(1 << 40)).into_bytes(),
        2 => format!("00{}", rng.below(100)).into_bytes(),
        3 => Vec::new(),
        4 => {
            let mut b = vec![0u8; 1 + rng.below(12) as usize];
            rng.fill(&mut b);
            b
        }
        5 => vec![b'x'; 40 + rng.below(20) as usize],
        _ => format!("v{}", rng.below(100)).into_bytes(),
    }
}

fn random_command(rng: &mut Rng, keys: &[String]) -> Vec<Vec<u8>> {
    let key = |rng: &mut Rng| keys[rng.below(keys.len() as u64) as usize].clone().into_bytes();
    let k = key(rng);
    let ttl = (1000 + rng.below(100_000)).to_string().into_bytes();
    match rng.below(14) {
        0 | 1 => vec![b"SET".to_vec(), k, value(rng)],
        2 => vec![b"SET".to_vec(), k, value(rng), b"EX".to_vec(), ttl],
        3 => vec![b"SET".to_vec(), k, value(rng), b"PX".to_vec(), [ttl, b"000".to_vec()].concat()],
        4 => vec![b"SET".to_vec(), k, value(rng), b"KEEPTTL".to_vec()],
        5 => vec![b"INCR".to_vec(), k],
        6 => vec![b"APPEND".to_vec(), k, value(rng)],
        7 => vec![b"SETRANGE".to_vec(), k, rng.below(60).to_string().into_bytes(), value(rng)],
        8 => vec![b"DEL".to_vec(), k, key(rng)],
        9 => vec![b"EXPIRE".to_vec(), k, ttl],
        10 => vec![b"PERSIST".to_vec(), k],
        11 => vec![b"SELECT".to_vec(), rng.below(DATABASES).to_string().into_bytes()],
        _ => {
            let mut args = vec![b"MSET".to_vec()];
            for _ in 0..1 + rng.below(5) {
                args.push(key(rng));
                args.push(value(rng));
            }
            args
        }
    }
}

#[test]
fn random_workloads_digest_alike_across_shards_and_databases() {
    let (ringkv, redis) = pair();
    let mut c = [ringkv.conn(), redis.conn()];
    let keys = keys();
    let mut rng = Rng::new(0xD16E57);
    for batch in 0..BATCHES {
        for _ in 0..COMMANDS_PER_BATCH {
            both(&mut c, &random_command(&mut rng, &keys));
        }
        let digest = both(&mut c, &["DEBUG", "DIGEST"]);
        assert_ne!(digest, ZERO_STATUS, "batch {batch} left no key");
        // Every database in turn (the workload goes on from the last one).
        for db in 0..DATABASES {
            both(&mut c, &["SELECT", &db.to_string()]);
            let mut args = vec!["DEBUG".to_string(), "DIGEST-VALUE".to_string()];
            args.extend((0..8).map(|_| keys[rng.below(keys.len() as u64) as usize].clone()));
            args.push("never-set".to_string());
            both(&mut c, &args);
        }
        if batch == BATCHES / 2 {
            resp3(&mut c);
        }
    }
}
