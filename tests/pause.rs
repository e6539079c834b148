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

fn expired_keys(c: &mut Conn) -> i64 {
    let info = String::from_utf8(c.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    info.lines().find_map(|l| l.strip_prefix("expired_keys:")).unwrap().trim().parse().unwrap()
}

/// Redis 7.0's `expireIfNeeded` under `checkClientPauseTimeoutAndReturnIfPaused`:
/// while clients are paused an expired key reads as missing everywhere but
/// stays in the keyspace (no deletion, no `expired` event, not counted),
/// and active expiry waits; after the pause a read deletes it.
#[test]
fn expired_keys_stay_while_clients_are_paused() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]), Resp::ok());
    let mut sub = s.conn();
    sub.cmd(&["SUBSCRIBE", "__keyevent@0__:expired"]);
    let before = expired_keys(&mut c);
    // Keys on every shard, set and paused in one transaction so that
    // active expiry cannot take them first.
    let keys: Vec<String> = (0..6).map(|i| format!("gone{i}")).collect();
    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
    for k in &keys {
        c.cmd(&["SET", k, "v", "PX", "30"]);
    }
    c.cmd(&["SET", "live", "1"]);
    c.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]);
    assert_eq!(c.cmd(&["EXEC"]).array().len(), 8);
    std::thread::sleep(Duration::from_millis(300));
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), Resp::Nil);
        assert_eq!(c.cmd(&["EXISTS", k]), Resp::Int(0));
        assert_eq!(c.cmd(&["TTL", k]), Resp::Int(-2));
        assert_eq!(c.cmd(&["TYPE", k]), Resp::Simple("none".into()));
        assert_eq!(c.cmd(&["OBJECT", "ENCODING", k]), Resp::Nil);
        assert_eq!(c.cmd(&["DUMP", k]), Resp::Nil);
        // MEMORY USAGE finds the key in the dictionary itself (Redis 7.0).
        assert!(matches!(c.cmd(&["MEMORY", "USAGE", k]), Resp::Int(n) if n > 0));
    }
    assert_eq!(c.cmd(&["KEYS", "*"]), Resp::Array(vec![Resp::bulk("live")]));
    let mut cursor = "0".to_string();
    let mut scanned = Vec::new();
    loop {
        let reply = c.cmd(&["SCAN", &cursor]);
        cursor = String::from_utf8(reply.array()[0].opt_bytes().unwrap()).unwrap();
        scanned.extend(reply.array()[1].array().iter().cloned());
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(scanned, [Resp::bulk("live")]);
    for _ in 0..20 {
        assert_eq!(c.cmd(&["RANDOMKEY"]), Resp::bulk("live"));
    }
    // Physically still there, and nothing counted or notified.
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(7));
    assert_eq!(expired_keys(&mut c), before);
    assert_eq!(c.cmd(&["CLIENT", "UNPAUSE"]), Resp::ok());
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), Resp::Nil);
    }
    assert_eq!(expired_keys(&mut c), before + 6);
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(1));
    let mut events: Vec<Vec<u8>> = (0..6).map(|_| sub.read().array()[2].opt_bytes().unwrap()).collect();
    events.sort();
    assert_eq!(events, keys.iter().map(|k| k.as_bytes().to_vec()).collect::<Vec<_>>());
}

fn evicted_keys(c: &mut Conn) -> i64 {
    let info = String::from_utf8(c.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    info.lines().find_map(|l| l.strip_prefix("evicted_keys:")).unwrap().trim().parse().unwrap()
}

/// Redis's `isSafeToPerformEvictions`: nothing is evicted while clients are
/// paused (the dataset stays as it is), however far over maxmemory; after
/// the pause the next command evicts.
#[test]
fn no_eviction_while_clients_are_paused() {
    let s = Server::ringkv(&["--shards", "3", "--maxmemory-policy", "allkeys-random"]);
    let mut c = s.conn();
    for chunk in 0..20 {
        let mut args = vec!["MSET".to_string()];
        for i in 0..1000 {
            args.push(format!("key:{chunk}:{i}"));
            args.push("value".repeat(4));
        }
        assert_eq!(c.cmd(&args), Resp::ok());
    }
    assert_eq!(c.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]), Resp::ok());
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "1mb"]), Resp::ok());
    c.cmd(&["GET", "key:0:0"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(20000));
    assert_eq!(evicted_keys(&mut c), 0);
    assert_eq!(c.cmd(&["CLIENT", "UNPAUSE"]), Resp::ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    while evicted_keys(&mut c) == 0 {
        assert!(Instant::now() < deadline, "nothing evicted after the pause");
        c.cmd(&["GET", "key:0:0"]);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]), Resp::ok());
}
