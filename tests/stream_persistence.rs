//! Streams through persistence, against a real redis-server 7.0: DUMP
//! payloads moved both ways with equal DEBUG DIGEST-VALUE and XINFO STREAM
//! FULL (groups, PELs, consumers and their times included); redis-server's
//! dump.rdb loaded by ringkv and ringkv's loaded by redis-server (and
//! accepted by redis-check-rdb); the AOF rewrite's commands replayed; a
//! corrupt payload refused without harm.
//!
//! The streams are made in redis-server with its own commands, in every
//! shape: one node, many nodes (`stream-node-max-entries 3`), entries
//! with other fields than the master entry's, deleted entries, trimmed,
//! empty with a group, a group with pending entries of several consumers,
//! a consumer without any, a group never read.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{path_str, Conn, Resp, Server};

const SHARDS: &str = "3";
const KEYS: &[&str] = &["x:one", "x:many", "x:empty", "x:groups", "x:big"];

fn ok(c: &mut Conn, args: &[&str]) {
    let r = c.cmd(args);
    assert!(!matches!(r, Resp::Error(_)), "{:?} -> {:?}", args, r);
}

/// The streams, made with redis-server's commands.
fn populate(c: &mut Conn) {
    ok(c, &["CONFIG", "SET", "stream-node-max-entries", "3"]);
    ok(c, &["XADD", "x:one", "1-1", "a", "1", "b", "hello"]);
    ok(c, &["XADD", "x:one", "2-0", "a", "2", "b", "world"]);
    for i in 1..=20 {
        let id = format!("{}-{}", 100 + i / 3, i);
        if i % 4 == 0 {
            ok(c, &["XADD", "x:many", &id, "other", &i.to_string()]);
        } else {
            ok(c, &["XADD", "x:many", &id, "f", &i.to_string(), "g", "v"]);
        }
    }
    ok(c, &["XDEL", "x:many", "101-3", "103-10", "106-20"]);
    ok(c, &["XTRIM", "x:many", "MAXLEN", "14"]);
    ok(c, &["XGROUP", "CREATE", "x:empty", "g", "$", "MKSTREAM"]);
    ok(c, &["XADD", "x:groups", "1-0", "f", "1"]);
    ok(c, &["XADD", "x:groups", "2-0", "f", "2"]);
    ok(c, &["XADD", "x:groups", "3-0", "f", "3"]);
    ok(c, &["XGROUP", "CREATE", "x:groups", "g1", "0"]);
    ok(c, &["XGROUP", "CREATE", "x:groups", "g2", "$"]);
    ok(c, &["XREADGROUP", "GROUP", "g1", "alice", "COUNT", "2", "STREAMS", "x:groups", ">"]);
    ok(c, &["XREADGROUP", "GROUP", "g1", "bob", "STREAMS", "x:groups", ">"]);
    ok(c, &["XGROUP", "CREATECONSUMER", "x:groups", "g1", "carol"]);
    ok(c, &["XDEL", "x:groups", "2-0"]);
    ok(c, &["CONFIG", "SET", "stream-node-max-entries", "100"]);
    let mut args: Vec<String> = vec!["XADD".into(), "x:big".into(), "*".into()];
    for i in 0..40 {
        args.push(format!("field{}", i));
        args.push("v".repeat(i * 3));
    }
    for _ in 0..30 {
        ok(c, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// What must be equal after a move: each key's DIGEST-VALUE and XINFO
/// STREAM FULL, and the dataset digest.
fn fingerprint(c: &mut Conn) -> (Resp, Vec<(Resp, Resp)>) {
    let per_key = KEYS.iter().map(|k| (c.cmd(&["DEBUG", "DIGEST-VALUE", k]), c.cmd(&["XINFO", "STREAM", k, "FULL", "COUNT", "0"]))).collect();
    (c.cmd(&["DEBUG", "DIGEST"]), per_key)
}

#[test]
fn dump_payloads_move_both_ways() {
    let common = ["--enable-debug-command", "yes", "--sanitize-dump-payload", "yes"];
    let (ringkv, redis) = Server::pair(&common, &["--shards", SHARDS]);
    let (mut rk, mut rd) = (ringkv.conn(), redis.conn());
    populate(&mut rd);
    for key in KEYS {
        let payload = rd.cmd(&["DUMP", key]).opt_bytes().unwrap();
        assert_eq!(rk.cmd(&[&b"RESTORE"[..], key.as_bytes(), b"0", &payload]), Resp::ok(), "RESTORE {} in ringkv", key);
        let back = rk.cmd(&["DUMP", key]).opt_bytes().unwrap();
        let want = (rd.cmd(&["DEBUG", "DIGEST-VALUE", key]), rd.cmd(&["XINFO", "STREAM", key, "FULL"]));
        assert_eq!(rk.cmd(&["DEBUG", "DIGEST-VALUE", key]), want.0, "DIGEST-VALUE of {}", key);
        assert_eq!(rk.cmd(&["XINFO", "STREAM", key, "FULL"]), want.1, "XINFO STREAM FULL of {}", key);
        assert_eq!(rd.cmd(&[&b"RESTORE"[..], key.as_bytes(), b"0", &back, b"REPLACE"]), Resp::ok(), "RESTORE {} in redis-server", key);
        assert_eq!((rd.cmd(&["DEBUG", "DIGEST-VALUE", key]), rd.cmd(&["XINFO", "STREAM", key, "FULL"])), want, "{} after the round trip", key);
        assert_eq!(rk.cmd(&["TYPE", key]), Resp::Simple("stream".into()));
        assert_eq!(rk.cmd(&["OBJECT", "ENCODING", key]), Resp::bulk("stream"));
        let (a, b) = (rk.cmd(&["MEMORY", "USAGE", key]).int(), rd.cmd(&["MEMORY", "USAGE", key]).int());
        // Redis counts its tail node's 4 KiB preallocation; ringkv's tail
        // grows by size class, so it may be well below, never far above.
        assert!(a > 0 && a < b * 2, "MEMORY USAGE {}: ringkv {} redis-server {}", key, a, b);
    }
    assert_eq!(rk.cmd(&["DEBUG", "DIGEST"]), rd.cmd(&["DEBUG", "DIGEST"]), "dataset digests");
}

/// A payload with one byte of a node's listpack changed, the CRC fixed:
/// refused as Redis refuses it, the server unharmed.
#[test]
fn corrupt_stream_payloads_are_refused() {
    let common = ["--enable-debug-command", "yes", "--sanitize-dump-payload", "yes"];
    let (ringkv, redis) = Server::pair(&common, &["--shards", SHARDS]);
    let (mut rk, mut rd) = (ringkv.conn(), redis.conn());
    ok(&mut rd, &["XADD", "s", "1-0", "field", "value", "other", "x"]);
    ok(&mut rd, &["XADD", "s", "2-0", "field", "value2", "other", "y"]);
    let payload = rd.cmd(&["DUMP", "s"]).opt_bytes().unwrap();
    let n = payload.len();
    let crc = |p: &[u8]| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, p);
    let mut refused = 0;
    for at in 1..n - 10 {
        for delta in [1u8, 0x80] {
            let mut p = payload.clone();
            p[at] = p[at].wrapping_add(delta);
            let c = crc(&p[..n - 8]);
            p[n - 8..].copy_from_slice(&c.to_le_bytes());
            let (a, b) = (rk.cmd(&[&b"RESTORE"[..], b"t", b"0", &p, b"REPLACE"]), rd.cmd(&[&b"RESTORE"[..], b"t", b"0", &p, b"REPLACE"]));
            if matches!(b, Resp::Error(_)) {
                refused += 1;
                assert_eq!(a, b, "byte {} + {}: redis-server refused, ringkv said {:?}", at, delta, a);
            }
            if a == Resp::ok() {
                // Whatever it accepted reads back without harm.
                rk.cmd(&["XRANGE", "t", "-", "+"]);
                rk.cmd(&["XINFO", "STREAM", "t", "FULL"]);
                rk.cmd(&["XADD", "t", "*", "a", "b"]);
            }
        }
    }
    assert!(refused > 10, "only {} corruptions refused", refused);
    assert_eq!(rk.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringkv-stream-persistence-{}-{}", std::process::id(), name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_bgsave(c: &mut Conn) {
    let t = Instant::now();
    while c.cmd(&["INFO", "persistence"]).opt_bytes().is_some_and(|i| String::from_utf8_lossy(&i).contains("rdb_bgsave_in_progress:1")) {
        assert!(t.elapsed() < Duration::from_secs(30), "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rdb_files_round_trip_between_redis_and_ringkv() {
    let redis = Server::redis(&["--enable-debug-command", "yes"]);
    let mut rd = redis.conn();
    populate(&mut rd);
    assert_eq!(rd.cmd(&["SAVE"]), Resp::ok());
    let want = fingerprint(&mut rd);
    let from_redis = scratch("from-redis");
    std::fs::copy(redis.dir.join("dump.rdb"), from_redis.join("dump.rdb")).unwrap();
    let ringkv = Server::ringkv(&["--enable-debug-command", "yes", "--dir", &path_str(&from_redis), "--shards", SHARDS]);
    let mut rk = ringkv.conn();
    assert_eq!(fingerprint(&mut rk), want, "ringkv's load of redis-server's dump.rdb");
    assert_eq!(rk.cmd(&["BGSAVE"]), Resp::Simple("Background saving started".into()));
    wait_bgsave(&mut rk);
    let from_ringkv = scratch("from-ringkv");
    std::fs::copy(from_redis.join("dump.rdb"), from_ringkv.join("dump.rdb")).unwrap();
    let check =
        common::run_with_timeout(Command::new(common::require_tool("redis-check-rdb")).arg(from_ringkv.join("dump.rdb")), None, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success() && text.contains("RDB looks OK!"), "redis-check-rdb: {}", text);
    let again = Server::redis(&["--enable-debug-command", "yes", "--dir", &path_str(&from_ringkv)]);
    assert_eq!(fingerprint(&mut again.conn()), want, "redis-server's load of ringkv's dump.rdb");
    for d in [from_redis, from_ringkv] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The AOF rewrite's commands (XADD, XSETID, XGROUP CREATE ENTRIESREAD,
/// XGROUP CREATECONSUMER, XCLAIM ... FORCE) rebuild every stream: a base
/// without the RDB preamble, replayed by a restart.
#[test]
fn aof_rewrite_rebuilds_streams() {
    let dir = scratch("aof");
    let ringkv =
        Server::ringkv(&["--enable-debug-command", "yes", "--dir", &path_str(&dir), "--shards", SHARDS, "--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    let mut rk = ringkv.conn();
    populate(&mut rk);
    let want = fingerprint(&mut rk);
    assert_eq!(rk.cmd(&["BGREWRITEAOF"]), Resp::Simple("Background append only file rewriting started".into()));
    let t = Instant::now();
    while rk.cmd(&["INFO", "persistence"]).opt_bytes().is_some_and(|i| String::from_utf8_lossy(&i).contains("aof_rewrite_in_progress:1")) {
        assert!(t.elapsed() < Duration::from_secs(30), "BGREWRITEAOF did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(rk);
    drop(ringkv);
    // A restart on the same directory replays the rewritten base.
    let again = Server::ringkv(&["--enable-debug-command", "yes", "--dir", &path_str(&dir), "--shards", SHARDS, "--appendonly", "yes"]);
    let got = fingerprint(&mut again.conn());
    // Digests and entries are equal; the groups' delivery times too
    // (XCLAIM ... TIME), not the consumers' seen times, which the replay
    // sets to its own time as in Redis.
    assert_eq!(got.0, want.0, "dataset digest after the AOF replay");
    for (k, (g, w)) in KEYS.iter().zip(got.1.iter().zip(&want.1)) {
        assert_eq!(g.0, w.0, "DIGEST-VALUE of {}", k);
    }
    drop(again);
    let _ = std::fs::remove_dir_all(dir);
}
