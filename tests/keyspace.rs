//! Rules every key lookup follows, whatever the command (`commands::lookup`).

mod common;

use std::time::{Duration, Instant};

use common::{Resp, Server};

fn idle_seconds(c: &mut common::Conn, key: &str) -> i64 {
    c.cmd(&["OBJECT", "IDLETIME", key]).int()
}

fn bgsave_in_progress(c: &mut common::Conn) -> bool {
    let info = String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
    info.lines().any(|l| l.trim() == "rdb_bgsave_in_progress:1")
}

/// Reads during a BGSAVE leave the key's access time alone (the fork child
/// shares the parent's pages; Redis's lookupKey skips the LRU update while a
/// child exists), and touch it again once the child is gone.
#[test]
fn reads_leave_access_time_alone_while_a_fork_child_exists() {
    let s = Server::ringkv(&["--shards", "2", "--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "POPULATE", "3000", "fill"]), Resp::ok());
    std::thread::sleep(Duration::from_millis(3100));
    let idle_before = idle_seconds(&mut c, "k");
    assert!(idle_before >= 2, "idle {idle_before}s after 3.1 s");
    // 3000 keys at 500 µs each: the child lives about 1.5 s.
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "500"]), Resp::ok());
    assert_eq!(c.cmd(&["BGSAVE"]), Resp::Simple("Background saving started".into()));
    assert!(bgsave_in_progress(&mut c));
    assert_eq!(c.cmd(&["GET", "k"]), Resp::bulk("v"));
    assert_eq!(c.cmd(&["TOUCH", "k"]).int(), 1);
    assert_eq!(c.cmd(&["STRLEN", "k"]).int(), 1);
    let idle_during = idle_seconds(&mut c, "k");
    assert!(bgsave_in_progress(&mut c), "the child ended before the reads were checked");
    assert!(idle_during >= idle_before, "reads during the BGSAVE reset the access time: idle {idle_during}s, was {idle_before}s");
    let deadline = Instant::now() + Duration::from_secs(20);
    while bgsave_in_progress(&mut c) {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.cmd(&["GET", "k"]), Resp::bulk("v"));
    let idle_after = idle_seconds(&mut c, "k");
    assert!(idle_after <= 1, "a read after the BGSAVE did not touch the key: idle {idle_after}s");
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]), Resp::ok());
}

fn changes_since_save(c: &mut common::Conn) -> i64 {
    let info = String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
    let line = info.lines().find_map(|l| l.strip_prefix("rdb_changes_since_last_save:")).expect("rdb_changes_since_last_save");
    line.trim().parse().unwrap()
}

/// Every write counts for the dirty counter (`rdb_changes_since_last_save`)
/// as in redis-server, command by command: one per key changed, one for a
/// RENAME or MOVE (two keys, one write), the number of keys for a flush,
/// nothing for a write that changed nothing. Three shards, so RENAME and
/// MSET cross shards.
#[test]
fn writes_count_for_the_dirty_counter_as_in_redis() {
    let (ringkv, redis) = Server::pair(&[], &["--shards", "3"]);
    let script: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["SET", "a", "2", "EX", "100"],
        &["SET", "a", "3", "NX"],
        &["SETNX", "b", "1"],
        &["SETNX", "b", "2"],
        &["GETSET", "b", "3"],
        &["INCR", "n"],
        &["INCRBY", "n", "5"],
        &["INCR", "a"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["APPEND", "s", "xy"],
        &["SETRANGE", "s", "5", "z"],
        &["SETRANGE", "s", "1", ""],
        &["MSET", "m1", "1", "m2", "2", "m3", "3"],
        &["MSETNX", "m1", "1", "m4", "4"],
        &["MSETNX", "m5", "5", "m6", "6"],
        &["GETEX", "m5", "PX", "100000"],
        &["GETEX", "m5", "PERSIST"],
        &["GETEX", "m5"],
        &["EXPIRE", "m6", "100"],
        &["EXPIRE", "nokey", "100"],
        &["PERSIST", "m6"],
        &["PERSIST", "m6"],
        &["PEXPIREAT", "m4", "1"],
        &["GETDEL", "m3"],
        &["DEL", "m1", "m2", "nokey"],
        &["RENAME", "a", "{x}renamed"],
        &["RENAMENX", "b", "{x}renamed"],
        &["COPY", "n", "{y}copy"],
        &["COPY", "n", "{y}copy", "DB", "2"],
        &["MOVE", "{y}copy", "3"],
        &["SWAPDB", "0", "1"],
        &["SWAPDB", "0", "1"],
        &["SELECT", "3"],
        &["FLUSHDB"],
        &["SELECT", "0"],
        &["FLUSHALL"],
    ];
    let mut c = [ringkv.conn(), redis.conn()];
    for cmd in script {
        let counts: Vec<i64> = c
            .iter_mut()
            .map(|c| {
                c.cmd(cmd);
                changes_since_save(c)
            })
            .collect();
        assert_eq!(counts[0], counts[1], "rdb_changes_since_last_save after {cmd:?}: ringkv {}, redis {}", counts[0], counts[1]);
    }
}

fn stats_fields(c: &mut common::Conn) -> [i64; 3] {
    let info = String::from_utf8(c.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    let field = |name: &str| -> i64 {
        let prefix = format!("{name}:");
        info.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {name}")).trim().parse().unwrap()
    };
    [field("expired_keys"), field("keyspace_hits"), field("keyspace_misses")]
}

/// Lookups count keyspace hits and misses, and a key found expired by a
/// command (lazy expiry: a read, a write over it, DEL) counts in
/// `expired_keys`, command by command as redis-server counts them. Active
/// expiry is off on both, so every expiry here is a lazy one.
#[test]
fn lookups_count_hits_misses_and_lazy_expiry_as_in_redis() {
    let (ringkv, redis) = Server::pair(&["--enable-debug-command", "yes"], &["--shards", "3"]);
    let mut c = [ringkv.conn(), redis.conn()];
    for c in c.iter_mut() {
        assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Resp::ok());
        for k in ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "e10", "e11", "{c}e12"] {
            assert_eq!(c.cmd(&["SET", k, "v", "PX", "30"]), Resp::ok());
        }
        assert_eq!(c.cmd(&["SET", "live", "12"]), Resp::ok());
    }
    std::thread::sleep(Duration::from_millis(100));
    let script: &[&[&str]] = &[
        &["GET", "live"],
        &["GET", "nokey"],
        &["GET", "e1"],
        &["MGET", "live", "e2", "nokey"],
        &["EXISTS", "e3", "live"],
        &["TYPE", "e4"],
        &["TTL", "e5"],
        &["STRLEN", "live"],
        &["GETRANGE", "live", "0", "0"],
        &["TOUCH", "live", "nokey"],
        &["OBJECT", "ENCODING", "live"],
        &["INCR", "e6"],
        &["APPEND", "e7", "x"],
        &["SET", "e8", "new"],
        &["MSET", "e9", "new", "other", "1"],
        &["DEL", "e10", "nokey"],
        &["GETEX", "live", "PERSIST"],
        &["SET", "live", "13", "GET"],
        &["LCS", "live", "nokey"],
        &["RENAME", "live", "moved"],
        &["COPY", "moved", "copied"],
        &["COPY", "e11", "copied2"],
        &["COPY", "moved", "{c}e12"],
    ];
    for cmd in script {
        let got: Vec<[i64; 3]> = c
            .iter_mut()
            .map(|c| {
                c.cmd(cmd);
                stats_fields(c)
            })
            .collect();
        assert_eq!(got[0], got[1], "[expired_keys, keyspace_hits, keyspace_misses] after {cmd:?}: ringkv, redis");
    }
}

/// DEBUG OBJECT and MEMORY USAGE find the key in the dictionary itself, as
/// Redis 7.0's debugCommand and memoryCommand do (`dictFind`): an expired
/// key not yet deleted is shown, stays (DBSIZE counts it), and counts no
/// keyspace hit or miss; a read then deletes it.
#[test]
fn debug_object_and_memory_usage_leave_an_expired_key_in_place() {
    let s = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Resp::ok());
    for key in ["stale{a}", "stale{b}", "stale{c}"] {
        assert_eq!(c.cmd(&["SET", key, "v", "PX", "1"]), Resp::ok());
    }
    std::thread::sleep(Duration::from_millis(20));
    let before = stats_fields(&mut c);
    for key in ["stale{a}", "stale{b}", "stale{c}"] {
        assert!(matches!(c.cmd(&["DEBUG", "OBJECT", key]), Resp::Simple(s) if s.starts_with("Value at:")));
        assert!(matches!(c.cmd(&["MEMORY", "USAGE", key]), Resp::Int(n) if n > 0));
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(3));
    assert_eq!(stats_fields(&mut c), before);
    for key in ["stale{a}", "stale{b}", "stale{c}"] {
        assert_eq!(c.cmd(&["GET", key]), Resp::Nil);
        assert!(matches!(c.cmd(&["DEBUG", "OBJECT", key]), Resp::Error(_)));
        assert_eq!(c.cmd(&["MEMORY", "USAGE", key]), Resp::Nil);
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(0));
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]), Resp::ok());
}
