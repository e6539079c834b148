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
