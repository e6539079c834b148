//! MIGRATE (Redis's cluster.c migrateCommand) between two servers of the
//! kind under test: keys moved with their TTLs, COPY, REPLACE, KEYS, the
//! target's errors, NOKEY, and the secrets redacted in MONITOR.

mod common;

use common::{Resp, Server};

fn pair() -> (Server, Server) {
    (Server::ringkv(&["--shards", "3"]), Server::ringkv(&["--shards", "2"]))
}

#[test]
fn migrate_moves_copies_and_replaces_keys() {
    let (src, dst) = pair();
    let (mut a, mut b) = (src.conn(), dst.conn());
    let port = dst.port.to_string();
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", &port, "nosuch", "0", "1000"]), Resp::Simple("NOKEY".into()));
    a.cmd(&["SET", "k1", "v1"]);
    a.cmd(&["RPUSH", "k2", "a", "b", "c"]);
    a.cmd(&["SET", "k3", "v3", "PX", "100000"]);
    // One key, into db 3 of the target.
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", &port, "k1", "3", "5000"]), Resp::ok());
    assert_eq!(a.cmd(&["EXISTS", "k1"]), Resp::Int(0));
    assert_eq!(b.cmd(&["SELECT", "3"]), Resp::ok());
    assert_eq!(b.cmd(&["GET", "k1"]), Resp::bulk("v1"));
    // Several keys (on several shards) with COPY: they stay here; the TTL travels.
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", &port, "", "3", "5000", "COPY", "KEYS", "k2", "k3", "nosuch"]), Resp::ok());
    assert_eq!(a.cmd(&["EXISTS", "k2", "k3"]), Resp::Int(2));
    assert_eq!(b.cmd(&["LRANGE", "k2", "0", "-1"]), Resp::Array(vec![Resp::bulk("a"), Resp::bulk("b"), Resp::bulk("c")]));
    let ttl = b.cmd(&["PTTL", "k3"]).int();
    assert!(ttl > 90_000 && ttl <= 100_000, "{ttl}");
    // The target has them now: without REPLACE it refuses, and nothing is deleted here.
    assert_eq!(
        a.cmd(&["MIGRATE", "127.0.0.1", &port, "k2", "3", "5000"]),
        Resp::Error("ERR Target instance replied with error: BUSYKEY Target key name already exists.".into())
    );
    assert_eq!(a.cmd(&["EXISTS", "k2"]), Resp::Int(1));
    a.cmd(&["RPUSH", "k2", "d"]);
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", &port, "", "3", "5000", "REPLACE", "KEYS", "k2", "k3"]), Resp::ok());
    assert_eq!(a.cmd(&["EXISTS", "k2", "k3"]), Resp::Int(0));
    assert_eq!(b.cmd(&["LLEN", "k2"]), Resp::Int(4));
}

#[test]
fn migrate_errors() {
    let (src, dst) = pair();
    let mut a = src.conn();
    let port = dst.port.to_string();
    a.cmd(&["SET", "k", "v"]);
    assert_eq!(
        a.cmd(&["MIGRATE", "127.0.0.1", &port, "k", "0", "1000", "KEYS", "k"]),
        Resp::Error("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string".into())
    );
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", &port, "k", "0", "1000", "AUTH"]), Resp::Error("ERR syntax error".into()));
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", &port, "k", "x", "1000"]), Resp::Error("ERR value is not an integer or out of range".into()));
    // The target has no password: AUTH fails there, the key stays.
    let got = a.cmd(&["MIGRATE", "127.0.0.1", &port, "k", "0", "1000", "AUTH", "secret"]);
    let Resp::Error(e) = got else { panic!("{:?}", got) };
    assert!(e.starts_with("ERR Target instance replied with error: ERR AUTH"), "{e}");
    assert_eq!(a.cmd(&["EXISTS", "k"]), Resp::Int(1));
    // Nobody listens on port 1: Redis's non-blocking connect reports the
    // refusal when it first writes.
    assert_eq!(a.cmd(&["MIGRATE", "127.0.0.1", "1", "k", "0", "1000"]), Resp::Error("IOERR error or timeout writing to target instance".into()));
}

#[test]
fn monitor_and_slowlog_redact_migrate_passwords() {
    let s = Server::ringkv(&[]);
    let mut c = s.conn();
    let mut m = s.conn();
    assert_eq!(m.cmd(&["MONITOR"]), Resp::ok());
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), Resp::ok());
    let port = s.port.to_string();
    c.cmd(&["MIGRATE", "127.0.0.1", &port, "key", "9", "5000", "AUTH", "pw"]);
    c.cmd(&["MIGRATE", "127.0.0.1", &port, "key", "9", "5000", "AUTH2", "user", "pw"]);
    let line = |r: Resp| match r {
        Resp::Simple(s) => s,
        other => panic!("{:?}", other),
    };
    // (CONFIG SET, an admin command, is not shown.)
    let lines = [line(m.read()), line(m.read())];
    assert!(lines[0].ends_with("\"key\" \"9\" \"5000\" \"AUTH\" \"(redacted)\""), "{:?}", lines);
    assert!(lines[1].ends_with("\"key\" \"9\" \"5000\" \"AUTH2\" \"(redacted)\" \"(redacted)\""), "{:?}", lines);
    let log = c.cmd(&["SLOWLOG", "GET", "1"]);
    let args: Vec<Resp> = log.array()[0].array()[3].array().to_vec();
    assert_eq!(args[6..], [Resp::bulk("AUTH2"), Resp::bulk("(redacted)"), Resp::bulk("(redacted)")]);
}
