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
