//! Replication, master side: a real redis-server replica follows ringkv
//! (`--shards 3`) through a full sync and the live stream of a mixed
//! workload (multi-shard MSET, MULTI/EXEC over shards, expiries, several
//! dbs) and ends with the same DEBUG DIGEST; the SYNC stream's exact
//! contents for Redis's unit/multi cases; WAIT; min-replicas-to-write;
//! REPLICAOF's demotion. Every test passes against redis-server too
//! (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Conn, Resp, Server};

fn info_field(c: &mut Conn, section: &str, field: &str) -> Option<String> {
    let Resp::Bulk(text) = c.cmd(&["INFO", section]) else { panic!("INFO is a bulk string") };
    let text = String::from_utf8(text).unwrap();
    let prefix = format!("{}:", field);
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()).map(|v| v.to_string()))
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {}", what);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn digest(c: &mut Conn) -> String {
    match c.cmd(&["DEBUG", "DIGEST"]) {
        Resp::Simple(d) => d,
        other => panic!("DEBUG DIGEST answered {other:?}"),
    }
}

/// One `\r\n`-terminated line read byte by byte (nothing past it is
/// consumed), skipping the newlines a master sends while it waits.
fn read_line(c: &mut Conn) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        c.stream.read_exact(&mut byte).unwrap();
        if !(line.is_empty() && byte[0] == b'\n') {
            line.push(byte[0]);
        }
    }
    String::from_utf8(line).unwrap()
}

fn ok(c: &mut Conn, args: &[&str]) {
    assert_eq!(c.cmd(args), Resp::ok(), "{:?}", args);
}

/// A replica of `master` (a real redis-server), once its link is up.
fn start_replica(master: &Server) -> Server {
    let port = master.port.to_string();
    let replica = Server::redis(&["--replicaof", "127.0.0.1", &port, "--enable-debug-command", "yes"]);
    let mut r = replica.conn();
    wait_for("the replica's link", Duration::from_secs(20), || info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up"));
    replica
}

#[test]
fn redis_replica_follows_full_sync_and_stream() {
    let master = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"]);
    let mut m = master.conn();
    // Before the replica: what the full sync carries.
    for i in 0..200 {
        ok(&mut m, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    assert_eq!(m.cmd(&["HSET", "h", "a", "1", "b", "2"]).int(), 2);
    assert_eq!(m.cmd(&["RPUSH", "l", "1", "2", "3"]).int(), 3);
    assert_eq!(m.cmd(&["SADD", "s", "1", "2", "3", "4", "5", "6"]).int(), 6);
    assert_eq!(m.cmd(&["ZADD", "z", "1", "a", "2", "b"]).int(), 2);
    ok(&mut m, &["SET", "ttl-long", "x", "EX", "1000"]);
    ok(&mut m, &["SELECT", "3"]);
    ok(&mut m, &["SET", "db3-key", "y"]);
    ok(&mut m, &["SELECT", "0"]);

    let replica = start_replica(&master);
    let mut r = replica.conn();
    assert_eq!(digest(&mut m), digest(&mut r), "after the full sync");

    // The live stream: multi-shard commands, transactions over shards,
    // rewritten forms (EX -> PXAT, INCRBYFLOAT, SPOP), expiries, dbs.
    ok(&mut m, &["MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"]);
    assert_eq!(m.cmd(&["DEL", "k1", "k2", "k3", "nokey"]).int(), 3);
    ok(&mut m, &["MULTI"]);
    for args in [&["SET", "t1", "x"][..], &["INCR", "t2"], &["LPUSH", "l", "0"], &["SET", "k10", "y", "EX", "500"], &["GET", "a"]] {
        assert_eq!(m.cmd(args), Resp::Simple("QUEUED".into()));
    }
    assert_eq!(m.cmd(&["EXEC"]).array().len(), 5);
    assert_eq!(m.cmd(&["INCRBYFLOAT", "f", "1.5"]), Resp::bulk("1.5"));
    assert_eq!(m.cmd(&["SPOP", "s", "2"]).array().len(), 2);
    assert_eq!(m.cmd(&["EXPIRE", "k20", "300"]).int(), 1);
    assert_eq!(m.cmd(&["RENAME", "k30", "renamed"]), Resp::ok());
    for i in 0..20 {
        ok(&mut m, &["SET", &format!("short{i}"), "v", "PX", "30"]);
    }
    ok(&mut m, &["SELECT", "5"]);
    ok(&mut m, &["MSET", "x", "1", "y", "2", "z", "3"]);
    assert_eq!(m.cmd(&["HSET", "h5", "f", "v"]).int(), 1);
    ok(&mut m, &["SELECT", "0"]);
    for i in 0..300 {
        ok(&mut m, &["SET", &format!("k{}", i % 50), &format!("w{i}")]);
    }
    // The short keys expire: active expiry or the reads here delete them
    // on the master, and the DELs reach the replica.
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..20 {
        assert_eq!(m.cmd(&["GET", &format!("short{i}")]), Resp::Nil);
    }
    // WAIT: the replica acknowledged everything written so far.
    assert_eq!(m.cmd(&["WAIT", "1", "5000"]).int(), 1);
    assert_eq!(digest(&mut m), digest(&mut r), "after the live stream");
    let offset = info_field(&mut m, "replication", "master_repl_offset").unwrap();
    assert!(offset.parse::<u64>().unwrap() > 0);
    wait_for("the replica's offset", Duration::from_secs(5), || info_field(&mut r, "replication", "slave_repl_offset").as_deref() == Some(offset.as_str()));
    // INFO and ROLE show the replica online.
    let line = info_field(&mut m, "replication", "slave0").unwrap();
    assert!(line.starts_with(&format!("ip=127.0.0.1,port={},state=online,offset=", replica.port)), "{line}");
    assert_eq!(info_field(&mut m, "replication", "connected_slaves").as_deref(), Some("1"));
    let role = m.cmd(&["ROLE"]);
    let role = role.array();
    assert_eq!(role[0], Resp::bulk("master"));
    assert_eq!(role[2].array()[0].array()[1], Resp::bulk(replica.port.to_string()));
    let list = match m.cmd(&["CLIENT", "LIST", "TYPE", "replica"]) {
        Resp::Bulk(b) | Resp::Verbatim(_, b) => String::from_utf8(b).unwrap(),
        other => panic!("CLIENT LIST answered {other:?}"),
    };
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(" flags=S "), "{list}");
    // The replica refuses writes.
    assert!(matches!(r.cmd(&["SET", "x", "1"]), Resp::Error(e) if e.starts_with("READONLY")));
}

/// A raw SYNC client as Redis's `attach_to_replication_stream`: the RDB
/// payload is skipped; `next` returns the propagated commands.
struct Stream {
    c: Conn,
    buf: Vec<u8>,
}

impl Stream {
    fn attach(server: &Server) -> Stream {
        Stream { c: common::attach_sync(server), buf: Vec::new() }
    }

    /// The next command, lower-cased name first.
    fn next(&mut self) -> Vec<String> {
        loop {
            if let Ok(n) = common::frame_len(&self.buf) {
                let frame: Vec<u8> = self.buf.drain(..n).collect();
                let Resp::Array(args) = common::decode(&frame) else { panic!("a command") };
                let mut v: Vec<String> = args.iter().map(|a| String::from_utf8(a.opt_bytes().unwrap()).unwrap()).collect();
                v[0] = v[0].to_lowercase();
                return v;
            }
            let mut chunk = [0u8; 4096];
            let n = self.c.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "stream closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn expect(&mut self, cmds: &[&[&str]]) {
        for want in cmds {
            let got = self.next();
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(got, want);
        }
    }
}

#[test]
fn sync_stream_has_redis_units() {
    let server = Server::ringkv(&["--shards", "3"]);
    let mut c = server.conn();
    ok(&mut c, &["SELECT", "9"]);
    let mut s = Stream::attach(&server);
    // MULTI / EXEC is not propagated (single write command).
    ok(&mut c, &["MULTI"]);
    c.cmd(&["SET", "foo", "bar"]);
    c.cmd(&["EXEC"]);
    ok(&mut c, &["SET", "foo2", "bar"]);
    s.expect(&[&["select", "9"], &["set", "foo", "bar"], &["set", "foo2", "bar"]]);
    // Multiple commands with SELECT inside.
    ok(&mut c, &["MULTI"]);
    for args in [&["SELECT", "1"][..], &["SET", "foo{t}", "bar"], &["GET", "foo{t}"], &["SELECT", "2"], &["SET", "foo2{t}", "bar2"]] {
        c.cmd(args);
    }
    c.cmd(&["EXEC"]);
    s.expect(&[&["select", "1"], &["multi"], &["set", "foo{t}", "bar"], &["select", "2"], &["set", "foo2{t}", "bar2"], &["exec"]]);
    ok(&mut c, &["SELECT", "9"]);
    // Empty, read-only and no-effect transactions leave nothing.
    ok(&mut c, &["MULTI"]);
    c.cmd(&["EXEC"]);
    ok(&mut c, &["MULTI"]);
    c.cmd(&["GET", "foo"]);
    c.cmd(&["EXEC"]);
    ok(&mut c, &["MULTI"]);
    c.cmd(&["DEL", "nokey"]);
    c.cmd(&["EXEC"]);
    assert_eq!(c.cmd(&["INCR", "counter"]).int(), 1);
    s.expect(&[&["select", "9"], &["incr", "counter"]]);
    // A transaction over several shards is one unit; MSET over shards one command.
    ok(&mut c, &["MULTI"]);
    for k in ["a", "b", "c", "d"] {
        c.cmd(&["SET", k, "1"]);
    }
    c.cmd(&["EXEC"]);
    s.expect(&[&["multi"], &["set", "a", "1"], &["set", "b", "1"], &["set", "c", "1"], &["set", "d", "1"], &["exec"]]);
    ok(&mut c, &["MSET", "a", "2", "b", "2", "c", "2", "d", "2"]);
    s.expect(&[&["mset", "a", "2", "b", "2", "c", "2", "d", "2"]]);
    // PUBLISH goes to replicas (in MULTI too).
    assert_eq!(c.cmd(&["PUBLISH", "ch", "hello"]).int(), 0);
    ok(&mut c, &["MULTI"]);
    c.cmd(&["PUBLISH", "bla", "bla"]);
    c.cmd(&["EXEC"]);
    ok(&mut c, &["SET", "after", "publish"]);
    s.expect(&[&["publish", "ch", "hello"], &["publish", "bla", "bla"], &["set", "after", "publish"]]);
    // Rewritten forms: any expiry as PXAT (a PXAT given too, as 7.0.15),
    // the EXPIRE family as PEXPIREAT.
    ok(&mut c, &["set", "e", "1", "pxat", "4000000000000", "nx"]);
    ok(&mut c, &["set", "e", "1", "ex", "100"]);
    assert_eq!(c.cmd(&["pexpireat", "e", "4000000000000"]).int(), 1);
    let cmd = s.next();
    assert_eq!(cmd, ["set", "e", "1", "PXAT", "4000000000000"]);
    let cmd = s.next();
    assert_eq!(&cmd[..4], ["set", "e", "1", "PXAT"]);
    s.expect(&[&["pexpireat", "e", "4000000000000"]]);
}

/// A transaction that demotes the server is not propagated; a replica
/// refuses writes (READONLY) and, with replica-serve-stale-data no, reads
/// (MASTERDOWN); REPLICAOF NO ONE makes it a master again.
#[test]
fn replicaof_demotes() {
    let server = Server::ringkv(&["--shards", "3"]);
    let mut c = server.conn();
    let mut s = Stream::attach(&server);
    let dead = common::free_port().to_string();
    ok(&mut c, &["SET", "foo", "bar"]);
    ok(&mut c, &["MULTI"]);
    c.cmd(&["SET", "foo2", "bar"]);
    c.cmd(&["REPLICAOF", "127.0.0.1", &dead]);
    c.cmd(&["SET", "foo3", "bar"]);
    c.cmd(&["EXEC"]);
    assert!(matches!(c.cmd(&["SET", "foo4", "bar"]), Resp::Error(e) if e == "READONLY You can't write against a read only replica."));
    s.expect(&[&["select", "0"], &["set", "foo", "bar"]]);
    assert_eq!(info_field(&mut c, "replication", "role").as_deref(), Some("slave"));
    assert_eq!(info_field(&mut c, "replication", "master_link_status").as_deref(), Some("down"));
    let role = c.cmd(&["ROLE"]);
    assert_eq!(&role.array()[..3], &[Resp::bulk("slave"), Resp::bulk("127.0.0.1"), Resp::Int(dead.parse().unwrap())]);
    assert_eq!(c.cmd(&["REPLICAOF", "127.0.0.1", &dead]), Resp::Simple("OK Already connected to specified master".into()));
    assert_eq!(c.cmd(&["GET", "foo"]), Resp::bulk("bar"));
    ok(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    let masterdown = "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
    assert_eq!(c.cmd(&["GET", "foo"]), Resp::Error(masterdown.into()));
    assert_eq!(c.cmd(&["PING"]), Resp::Error(masterdown.into()));
    assert_eq!(c.cmd(&["WAIT", "0", "0"]), Resp::Error(masterdown.into()));
    ok(&mut c, &["REPLICAOF", "NO", "ONE"]);
    ok(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "yes"]);
    // A transaction queued before the demotion aborts at EXEC.
    ok(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "no"]);
    ok(&mut c, &["MULTI"]);
    c.cmd(&["GET", "foo"]);
    let mut other = server.conn();
    ok(&mut other, &["REPLICAOF", "127.0.0.1", &dead]);
    assert!(matches!(c.cmd(&["EXEC"]), Resp::Error(e) if e.starts_with("EXECABORT") && e.contains("MASTERDOWN")));
    ok(&mut other, &["REPLICAOF", "NO", "ONE"]);
    ok(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "yes"]);
    ok(&mut c, &["SET", "foo5", "bar"]);
    assert_eq!(info_field(&mut c, "replication", "role").as_deref(), Some("master"));
    assert_eq!(c.cmd(&["REPLICAOF", "127.0.0.1", "70000"]), Resp::Error("ERR Invalid master port".into()));
}

/// min-replicas-to-write refuses writes (NOREPLICAS), and a transaction
/// with a write at EXEC (EXECABORT); WAIT without replicas times out at 0.
#[test]
fn min_replicas_and_wait_without_replicas() {
    let server = Server::ringkv(&["--shards", "3"]);
    let mut c = server.conn();
    let mut other = server.conn();
    ok(&mut c, &["SET", "xx", "1"]);
    ok(&mut c, &["MULTI"]);
    c.cmd(&["INCR", "xx"]);
    ok(&mut other, &["CONFIG", "SET", "min-replicas-to-write", "2"]);
    assert!(matches!(c.cmd(&["EXEC"]), Resp::Error(e) if e.starts_with("EXECABORT") && e.contains("NOREPLICAS")));
    assert_eq!(c.cmd(&["SET", "xx", "2"]), Resp::Error("NOREPLICAS Not enough good replicas to write.".into()));
    assert_eq!(c.cmd(&["GET", "xx"]), Resp::bulk("1"));
    ok(&mut other, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    ok(&mut c, &["SET", "xx", "2"]);
    assert_eq!(c.cmd(&["WAIT", "0", "0"]).int(), 0);
    let start = Instant::now();
    assert_eq!(c.cmd(&["WAIT", "1", "200"]).int(), 0);
    assert!(start.elapsed() >= Duration::from_millis(190));
    assert_eq!(c.cmd(&["WAIT", "1", "-1"]), Resp::Error("ERR timeout is negative".into()));
    assert_eq!(c.cmd(&["WAIT", "x", "1"]), Resp::Error("ERR value is not an integer or out of range".into()));
    assert_eq!(c.cmd(&["REPLCONF", "listening-port"]), Resp::Error("ERR syntax error".into()));
    assert_eq!(c.cmd(&["REPLCONF", "foo", "bar"]), Resp::Error("ERR Unrecognized REPLCONF option: foo".into()));
    ok(&mut c, &["REPLCONF", "listening-port", "1234", "capa", "eof", "capa", "psync2"]);
}

/// PSYNC with the master's id and an offset inside the backlog continues
/// (+CONTINUE and the bytes from that offset); an unknown id gets a full
/// resync.
#[test]
fn psync_continues_from_the_backlog() {
    let master = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"]);
    let replica = start_replica(&master);
    let mut m = master.conn();
    ok(&mut m, &["SET", "a", "1"]);
    assert_eq!(m.cmd(&["WAIT", "1", "5000"]).int(), 1);
    let replid = info_field(&mut m, "replication", "master_replid").unwrap();
    let offset: u64 = info_field(&mut m, "replication", "master_repl_offset").unwrap().parse().unwrap();
    ok(&mut m, &["SET", "b", "2"]);
    let mut c = master.conn();
    ok(&mut c, &["REPLCONF", "capa", "psync2"]);
    c.send(&["PSYNC", &replid, &(offset + 1).to_string()]);
    assert_eq!(read_line(&mut c), format!("+CONTINUE {replid}\r\n"));
    let mut s = Stream { c, buf: Vec::new() };
    // What followed that offset (pings and GETACKs may come between).
    let want = vec!["set".to_string(), "b".into(), "2".into()];
    let mut seen = Vec::new();
    while seen.last() != Some(&want) {
        assert!(seen.len() < 10, "{seen:?}");
        seen.push(s.next());
    }
    // A full resync for an unknown id.
    let mut f = master.conn();
    f.send(&["PSYNC", "0123456789012345678901234567890123456789", "1"]);
    let line = read_line(&mut f);
    assert!(line.starts_with(&format!("+FULLRESYNC {replid} ")), "{line}");
    drop(replica);
}
