//! MEMORY DOCTOR on a fresh instance, MEMORY STATS' fields (its "empty" report, byte for byte
//! as redis-server's, RESP2 bulk and RESP3 verbatim), MEMORY PURGE and
//! MALLOC-STATS. The report's other conditions are unit tests in
//! src/commands/memory_doctor.rs. Passes against redis-server too
//! (`RINGKV_TEST_TARGET=redis cargo test --test memory_doctor`).

mod common;

use common::Server;

const EMPTY: &str = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n";

#[test]
fn doctor_on_an_empty_instance() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    let r = String::from_utf8(c.cmd_raw(&["MEMORY", "DOCTOR"])).unwrap();
    assert_eq!(r, format!("${}\r\n{EMPTY}\r\n", EMPTY.len()));
    let _ = c.cmd_raw(&["HELLO", "3"]);
    let r = String::from_utf8(c.cmd_raw(&["MEMORY", "DOCTOR"])).unwrap();
    assert_eq!(r, format!("={}\r\ntxt:{EMPTY}\r\n", EMPTY.len() + 4));
    assert_eq!(c.cmd_raw(&["MEMORY", "PURGE"]), b"+OK\r\n");
    let r = String::from_utf8_lossy(&c.cmd_raw(&["MEMORY", "MALLOC-STATS"])).into_owned();
    assert!(r.starts_with('=') && r.contains("txt:___ Begin jemalloc statistics ___\n"), "{}", &r[..r.len().min(200)]);
    assert!(r.ends_with("--- End jemalloc statistics ---\n\r\n"), "{}", &r[r.len().saturating_sub(200)..]);
}

/// The field names of a RESP2 MEMORY STATS reply, nested maps flattened.
fn stats_fields(reply: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut names = Vec::new();
    for w in lines.windows(2) {
        if w[0].starts_with('$') && !w[1].starts_with(|c: char| c.is_ascii_digit()) {
            names.push(w[1].to_string());
        }
    }
    names
}

#[test]
fn stats_fields_and_databases() {
    let s = Server::ringkv(&["--shards", "3"]);
    let mut c = s.conn();
    for k in ["a", "b", "c"] {
        assert_eq!(c.cmd_raw(&["SET", k, "v"]), b"+OK\r\n");
    }
    assert_eq!(c.cmd_raw(&["EXPIRE", "a", "100"]), b":1\r\n");
    let r = c.cmd_raw(&["MEMORY", "STATS"]);
    assert!(r.starts_with(b"*56\r\n"), "{}", String::from_utf8_lossy(&r));
    let names = stats_fields(&r);
    let expected = [
        "peak.allocated",
        "total.allocated",
        "startup.allocated",
        "replication.backlog",
        "clients.slaves",
        "clients.normal",
        "cluster.links",
        "aof.buffer",
        "lua.caches",
        "functions.caches",
        "db.0",
        "overhead.hashtable.main",
        "overhead.hashtable.expires",
        "overhead.hashtable.slot-to-keys",
        "overhead.total",
        "keys.count",
        "keys.bytes-per-key",
        "dataset.bytes",
        "dataset.percentage",
        "peak.percentage",
        "allocator.allocated",
        "allocator.active",
        "allocator.resident",
        "allocator-fragmentation.ratio",
        "allocator-fragmentation.bytes",
        "allocator-rss.ratio",
        "allocator-rss.bytes",
        "rss-overhead.ratio",
        "rss-overhead.bytes",
        "fragmentation",
        "fragmentation.bytes",
    ];
    assert_eq!(names, expected);
    let text = String::from_utf8_lossy(&r);
    assert!(text.contains("$10\r\nkeys.count\r\n:3\r\n"), "{text}");
    let _ = c.cmd_raw(&["HELLO", "3"]);
    let r = c.cmd_raw(&["MEMORY", "STATS"]);
    assert!(r.starts_with(b"%28\r\n"), "{}", String::from_utf8_lossy(&r));
}
