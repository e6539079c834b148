//! `batch-wait-usec` (ringkv's own, `EventLoop::wait` in
//! `network::event_loop`): how long a saturated shard loop waits for its
//! next batch. Its bounds and CONFIG GET/SET, and that it is acted on: a
//! turn that ran a saturated batch (two or more receives, 64+ commands) is
//! followed by a batching wait (INFO's `batch_waits`) only while it is on.
//! ringkv only (redis-server has no such setting).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

fn stats_field(c: &mut Conn, name: &str) -> u64 {
    let info = String::from_utf8(c.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    let line = info.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("no {name} in {info}"));
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

fn config_get(c: &mut Conn, name: &str) -> Resp {
    c.cmd(&["CONFIG", "GET", name])
}

#[test]
fn config_get_set_and_bounds() {
    let s = Server::ringkv(&["--shards", "2"]);
    let mut c = s.conn();
    assert_eq!(config_get(&mut c, "batch-wait-usec"), Resp::Array(vec![Resp::bulk("batch-wait-usec"), Resp::bulk("0")]));
    // Hidden from patterns, as ringkv's other own settings: a tool that
    // sets back everything `CONFIG GET *` lists works as on Redis.
    let all = config_get(&mut c, "*");
    assert!(!all.array().iter().any(|r| *r == Resp::bulk("batch-wait-usec")), "listed by CONFIG GET *");
    assert_eq!(c.cmd(&["CONFIG", "SET", "batch-wait-usec", "1000"]), Resp::ok());
    assert_eq!(config_get(&mut c, "batch-wait-usec").array()[1], Resp::bulk("1000"));
    for bad in ["1001", "-1", "abc", "10.5"] {
        let r = c.cmd(&["CONFIG", "SET", "batch-wait-usec", bad]);
        let Resp::Error(e) = r else { panic!("CONFIG SET batch-wait-usec {bad}: {r:?}") };
        assert!(e.starts_with("ERR CONFIG SET failed (possibly related to argument 'batch-wait-usec')"), "{e}");
    }
    assert_eq!(config_get(&mut c, "batch-wait-usec").array()[1], Resp::bulk("1000"));
    assert_eq!(c.cmd(&["CONFIG", "SET", "batch-wait-usec", "0"]), Resp::ok());
    assert_eq!(config_get(&mut c, "batch-wait-usec").array()[1], Resp::bulk("0"));

    // From the command line too; out of bounds refuses to start.
    let s2 = Server::ringkv(&["--batch-wait-usec", "75"]);
    assert_eq!(config_get(&mut s2.conn(), "batch-wait-usec").array()[1], Resp::bulk("75"));
    let out = run_with_timeout(
        std::process::Command::new(std::env::var_os("RINGKV_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ringkv").into())).args([
            "--port",
            &free_port().to_string(),
            "--save",
            "",
            "--batch-wait-usec",
            "1001",
        ]),
        None,
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("*** FATAL CONFIG FILE ERROR") && err.contains("argument must be between 0 and 1000 inclusive"), "{err}");
}

/// The kernel takes `min_wait_usec` in a wait from 6.12 on; before, the
/// config is accepted and not acted on.
fn kernel_has_min_wait() -> bool {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = r.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (6, 12)
}

/// One saturated turn: while DEBUG SLEEP holds the shard, eight
/// connections each send a pipeline of 100 RPUSHes; the turn after the
/// sleep reaps all eight receives (800 commands). Returns `batch_waits`'
/// growth over that.
fn saturated_turn(s: &Server, admin: &mut Conn) -> u64 {
    let before = stats_field(admin, "batch_waits");
    let mut batch = Vec::new();
    for _ in 0..100 {
        encode_into(&mut batch, &["RPUSH", "batch-wait:list", "x"]);
    }
    let mut conns: Vec<TcpStream> = (0..8).map(|_| s.stream()).collect();
    let mut sleeper = s.stream();
    sleeper.write_all(&encode(&["DEBUG", "SLEEP", "0.3"])).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for c in conns.iter_mut() {
        c.write_all(&batch).unwrap();
    }
    let mut ok = [0u8; 5];
    sleeper.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    for c in conns.iter_mut() {
        // 100 integer replies of up to 4 digits: read until the 100th CRLF.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.iter().filter(|&&b| b == b'\n').count() < 100 {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
    stats_field(admin, "batch_waits") - before
}

#[test]
fn the_wait_follows_saturated_turns_only_while_on() {
    let s = Server::ringkv(&["--shards", "1", "--enable-debug-command", "yes"]);
    let mut admin = s.conn();
    assert_eq!(saturated_turn(&s, &mut admin), 0, "a batching wait with batch-wait-usec 0");
    assert_eq!(admin.cmd(&["CONFIG", "SET", "batch-wait-usec", "200"]), Resp::ok());
    let waits = saturated_turn(&s, &mut admin);
    if kernel_has_min_wait() {
        assert!(waits >= 1, "no batching wait after a saturated turn with batch-wait-usec 200");
    }
    // Unpipelined requests, one connection at a time: never saturated.
    let before = stats_field(&mut admin, "batch_waits");
    let mut c = s.conn();
    for i in 0..200 {
        assert_eq!(c.cmd(&["RPUSH", "batch-wait:other", "x"]).int(), i + 1);
    }
    assert_eq!(stats_field(&mut admin, "batch_waits"), before);
    // Off again: no more.
    assert_eq!(admin.cmd(&["CONFIG", "SET", "batch-wait-usec", "0"]), Resp::ok());
    assert_eq!(saturated_turn(&s, &mut admin), 0);
    assert_eq!(admin.cmd(&["LLEN", "batch-wait:list"]).int(), 2400);
}
