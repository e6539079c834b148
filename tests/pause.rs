//! CLIENT PAUSE WRITE holds back what Redis's `is_may_replicate_command`
//! names (writes, PFCOUNT, PUBLISH, scripts not declared no-writes, an
//! EXEC with one of them queued) and counts the held clients in
//! `blocked_clients`; reads, read-only scripts and read-only transactions run.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Resp, Server};

fn blocked_clients(c: &mut Conn) -> i64 {
    let info = String::from_utf8(c.cmd(&["INFO", "clients"]).opt_bytes().unwrap()).unwrap();
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).unwrap().trim().parse().unwrap()
}

fn wait_blocked(c: &mut Conn, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_clients(c) != n {
        assert!(Instant::now() < deadline, "blocked_clients never reached {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pause_write_holds_back_what_may_replicate() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut admin = s.conn();
    admin.cmd(&["PFADD", "hll", "a"]);
    admin.cmd(&["SET", "foo", "bar"]);
    // A transaction with a may-replicate command queued before the pause
    // (queueing one during the pause waits, as in Redis).
    let mut t = s.conn();
    assert_eq!(t.cmd(&["MULTI"]), Resp::ok());
    assert_eq!(t.cmd(&["PFCOUNT", "hll"]), Resp::Simple("QUEUED".into()));
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]), Resp::ok());
    let mut held: Vec<Conn> = Vec::new();
    for cmd in [&["SET", "foo", "baz"][..], &["PFCOUNT", "hll"], &["PUBLISH", "ch", "m"], &["EVAL", "return 1", "0"]] {
        let mut c = s.conn();
        c.send(cmd);
        held.push(c);
        wait_blocked(&mut admin, held.len() as i64);
    }
    let flags = String::from_utf8(admin.cmd(&["CLIENT", "LIST"]).opt_bytes().unwrap()).unwrap();
    assert_eq!(flags.lines().filter(|l| l.contains(" flags=b ")).count(), 4, "{flags}");
    // Reads, a no-writes script and a read-only transaction run.
    let mut r = s.conn();
    assert_eq!(r.cmd(&["GET", "foo"]), Resp::bulk("bar"));
    assert_eq!(r.cmd(&["EVAL", "#!lua flags=no-writes\nreturn 12", "0"]), Resp::Int(12));
    assert_eq!(r.cmd(&["MULTI"]), Resp::ok());
    assert_eq!(r.cmd(&["GET", "foo"]), Resp::Simple("QUEUED".into()));
    assert_eq!(r.cmd(&["EXEC"]), Resp::Array(vec![Resp::bulk("bar")]));
    // The transaction with PFCOUNT waits at EXEC.
    t.send(&["EXEC"]);
    wait_blocked(&mut admin, 5);
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), Resp::ok());
    let replies: Vec<Resp> = held.iter_mut().map(|c| c.read()).collect();
    assert_eq!(replies, [Resp::ok(), Resp::Int(1), Resp::Int(0), Resp::Int(1)]);
    assert_eq!(t.read(), Resp::Array(vec![Resp::Int(1)]));
    assert_eq!(blocked_clients(&mut admin), 0);
}
