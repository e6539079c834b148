//! Writes while a snapshot child runs: the server then allocates from another
//! jemalloc arena with its thread cache off, and the child serialises each
//! shard's newest entry chunks first (`persistence::cow`, `snapshot.rs`).
//! Neither may change what is saved or what the server holds: the dump is the
//! dataset at the fork (the same DEBUG DIGEST, in the same server and in
//! redis-server), the writes made meanwhile are all there afterwards, and a
//! second snapshot (the arena reused) saves them.

mod common;

use common::{Resp, Server};
use std::path::Path;
use std::time::{Duration, Instant};

fn persistence_field(c: &mut common::Conn, name: &str) -> String {
    let Resp::Bulk(text) = c.cmd(&["INFO", "persistence"]) else { panic!("INFO persistence") };
    let text = String::from_utf8(text).unwrap();
    let prefix = format!("{name}:");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in INFO")).trim().to_string()
}

fn wait_snapshot(c: &mut common::Conn) {
    let t = Instant::now();
    while persistence_field(c, "rdb_bgsave_in_progress") == "1" {
        assert!(t.elapsed() < Duration::from_secs(120), "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(persistence_field(c, "rdb_last_bgsave_status"), "ok");
}

/// Sends every command, then reads every reply (one round trip a batch).
fn pipeline(c: &mut common::Conn, commands: &[Vec<Vec<u8>>]) -> Vec<Resp> {
    let mut out = Vec::with_capacity(commands.len());
    for batch in commands.chunks(500) {
        let mut bytes = Vec::new();
        for args in batch {
            common::encode_into(&mut bytes, args);
        }
        c.send_raw(&bytes);
        out.extend(batch.iter().map(|_| c.read()));
    }
    out
}

fn args(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_vec()).collect()
}

fn digest(c: &mut common::Conn) -> Resp {
    c.cmd(&["DEBUG", "DIGEST"])
}

/// A server of the kind under test, or redis-server, loading `file` in `dir`.
fn load(dir: &Path, file: &str, redis: bool) -> Server {
    let d = dir.display().to_string();
    let opts = ["--dir", d.as_str(), "--dbfilename", file, "--enable-debug-command", "yes"];
    if redis {
        Server::redis(&opts)
    } else {
        Server::ringkv(&[&opts[..], &["--shards", "2"]].concat())
    }
}

#[test]
fn writes_during_a_snapshot_keep_the_dump_point_in_time_and_the_server_exact() {
    let s = Server::ringkv(&["--shards", "2", "--enable-debug-command", "yes"]);
    let mut c = s.conn();
    // More keys than one chunk of a shard's entry store (4096), strings of
    // several sizes and aggregates, so that the overwrites below free memory
    // from before the fork and allocate new memory of every kind.
    let n = 24_000;
    let mut fill = Vec::new();
    for i in 0..n {
        let k = format!("k:{i}");
        let v = format!("{i}-{}", "v".repeat(i % 97));
        fill.push(args(&[b"SET", k.as_bytes(), v.as_bytes()]));
        if i % 8 == 0 {
            fill.push(args(&[b"HSET", format!("h:{i}").as_bytes(), b"f", v.as_bytes(), b"g", b"1"]));
            fill.push(args(&[b"RPUSH", format!("l:{i}").as_bytes(), b"a", b"b", v.as_bytes()]));
        }
    }
    assert!(pipeline(&mut c, &fill).iter().all(|r| !matches!(r, Resp::Error(_))));
    let at_fork = digest(&mut c);
    // Slow the child down so that the writes below land while it runs.
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "100"]), Resp::ok());
    assert_eq!(c.cmd(&["BGSAVE"]), Resp::Simple("Background saving started".into()));
    let mut writes = Vec::new();
    for i in (0..n).step_by(3) {
        let k = format!("k:{i}");
        match i % 4 {
            0 => writes.push(args(&[b"SET", k.as_bytes(), format!("new-{i}-{}", "w".repeat(i % 131)).as_bytes()])),
            1 => writes.push(args(&[b"APPEND", k.as_bytes(), b"+appended"])),
            2 => writes.push(args(&[b"DEL", k.as_bytes()])),
            _ => writes.push(args(&[b"SET", format!("fresh:{i}").as_bytes(), b"during the child"])),
        }
        if i % 8 == 0 {
            writes.push(args(&[b"HSET", format!("h:{i}").as_bytes(), b"f", b"changed"]));
            writes.push(args(&[b"LPUSH", format!("l:{i}").as_bytes(), b"z"]));
        }
    }
    assert_eq!(persistence_field(&mut c, "rdb_bgsave_in_progress"), "1", "the child ended before the writes: slow it more");
    assert!(pipeline(&mut c, &writes).iter().all(|r| !matches!(r, Resp::Error(_))));
    assert_eq!(persistence_field(&mut c, "rdb_bgsave_in_progress"), "1", "the writes did not all overlap the child");
    wait_snapshot(&mut c);
    std::fs::copy(s.dir.join("dump.rdb"), s.dir.join("first.rdb")).unwrap();

    // The server holds every write, read back after the child is gone.
    for i in (0..n).step_by(3) {
        let k = format!("k:{i}");
        let want = match i % 4 {
            0 => Resp::bulk(format!("new-{i}-{}", "w".repeat(i % 131))),
            1 => Resp::bulk(format!("{i}-{}+appended", "v".repeat(i % 97))),
            2 => Resp::Nil,
            _ => Resp::bulk(format!("{i}-{}", "v".repeat(i % 97))),
        };
        assert_eq!(c.cmd(&["GET", k.as_str()]), want, "{k}");
    }
    assert_eq!(c.cmd(&["HGET", "h:24", "f"]), Resp::bulk("changed"));
    assert_eq!(c.cmd(&["LINDEX", "l:24", "0"]), Resp::bulk("z"));
    let after = digest(&mut c);
    assert_ne!(after, at_fork);

    // A second snapshot (the shards switch to their snapshot arenas again)
    // saves the dataset as it is now.
    assert_eq!(c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]), Resp::ok());
    assert_eq!(c.cmd(&["BGSAVE"]), Resp::Simple("Background saving started".into()));
    wait_snapshot(&mut c);
    assert_eq!(digest(&mut c), after);

    // Both files load, here and in redis-server, to the digest they were taken at.
    for redis in [false, true] {
        let first = load(&s.dir, "first.rdb", redis);
        assert_eq!(digest(&mut first.conn()), at_fork, "first dump loaded by {}", first.name());
        let second = load(&s.dir, "dump.rdb", redis);
        assert_eq!(digest(&mut second.conn()), after, "second dump loaded by {}", second.name());
    }
}
