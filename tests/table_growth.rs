//! Big sets (`types/set.rs`), hashes (`types/hash.rs`) and sorted sets
//! resizing their member tables (`types/open_table.rs`, both ways):
//!
//! - SSCAN/HSCAN/ZSCAN keep Redis's guarantee while the table grows and
//!   shrinks under the scan: every member present for the whole scan is
//!   returned at least once.
//! - The memory of a set or hash that lost most of its members comes back.
//! - The worst single insert while a set and a hash grow to 2M members, in
//!   CPU time of the inserting thread (`common::timing`; a release-build
//!   measurement, ignored by default; the sorted set's is
//!   `tests/zset_growth.rs`):
//!   `cargo test --release --test table_growth -- --ignored --nocapture`

mod common;

use common::timing::worst_of;
use common::{Resp, Server};
use ringkv::types::{hash, set};
use std::collections::HashSet;

// The server's allocator: a big `Vec`'s growth costs what it costs there.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The members (fields) a SCAN reply's page names: every one for a set,
/// every other for a hash and a sorted set (member, value/score).
fn page(reply: Resp, step: usize) -> (u64, Vec<Vec<u8>>) {
    let Resp::Array(mut parts) = reply else { panic!("{reply:?}") };
    let Resp::Array(items) = parts.pop().expect("items") else { panic!("items") };
    let Resp::Bulk(cursor) = parts.pop().expect("cursor") else { panic!("cursor") };
    let cursor = std::str::from_utf8(&cursor).unwrap().parse().unwrap();
    let names = items
        .into_iter()
        .step_by(step)
        .map(|r| match r {
            Resp::Bulk(b) => b,
            other => panic!("{other:?}"),
        })
        .collect();
    (cursor, names)
}

/// For a set, a hash and a sorted set: 2000 members kept throughout and
/// 20000 passing ones; a scan of COUNT 50 while, between its calls, 40000
/// more passing members come (the table grows twice) and then all passing
/// members go (it shrinks: ringkv's table from 65536 buckets to 4096).
/// Every kept member is returned; the table did grow and shrink.
#[test]
fn scans_return_every_kept_member_across_growth_and_shrink() {
    let s = Server::ringkv(&["--enable-debug-command", "yes"]);
    let ringkv = s.kind == common::Kind::Ringkv;
    let mut c = s.conn();
    let table_size = |c: &mut common::Conn, key: &str| -> u64 {
        let text = match c.cmd(&["DEBUG", "HTSTATS-KEY", key]) {
            Resp::Bulk(b) | Resp::Verbatim(_, b) => String::from_utf8(b).unwrap(),
            other => panic!("{key}: {other:?}"),
        };
        // The table members go into: the rehashing target while resizing.
        let last = text.rsplit("Hash table").next().unwrap();
        let line = last.lines().find(|l| l.trim_start().starts_with("table size")).unwrap_or_else(|| panic!("{text}"));
        line.rsplit(": ").next().unwrap().trim().parse().unwrap()
    };
    let (kept, passing, more) = (2000usize, 20_000usize, 40_000usize);
    let add = |c: &mut common::Conn, key: &str, names: &[String]| {
        for chunk in names.chunks(1000) {
            let mut args = vec![key.to_string()];
            match key {
                "scan{s}" => args.extend(chunk.iter().cloned()),
                "scan{h}" => chunk.iter().for_each(|m| args.extend([m.clone(), "v".into()])),
                _ => chunk.iter().enumerate().for_each(|(i, m)| args.extend([i.to_string(), m.clone()])),
            }
            let cmd = match key {
                "scan{s}" => "SADD",
                "scan{h}" => "HSET",
                _ => "ZADD",
            };
            args.insert(0, cmd.into());
            assert_eq!(c.cmd(&args), Resp::Int(chunk.len() as i64), "{cmd}");
        }
    };
    let remove = |c: &mut common::Conn, key: &str, names: &[String]| {
        let cmd = match key {
            "scan{s}" => "SREM",
            "scan{h}" => "HDEL",
            _ => "ZREM",
        };
        let mut args = vec![cmd.to_string(), key.into()];
        args.extend(names.iter().cloned());
        assert_eq!(c.cmd(&args), Resp::Int(names.len() as i64), "{cmd}");
    };
    for (key, scan, step) in [("scan{s}", "SSCAN", 1), ("scan{h}", "HSCAN", 2), ("scan{z}", "ZSCAN", 2)] {
        let keep: Vec<String> = (0..kept).map(|i| format!("keep:{i}")).collect();
        let pass: Vec<String> = (0..passing + more).map(|i| format!("pass:{i}")).collect();
        add(&mut c, key, &keep);
        add(&mut c, key, &pass[..passing]);
        let (mut grew, mut added, mut removed) = (0u64, passing, 0usize);
        let start_size = table_size(&mut c, key);
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut cursor = 0u64;
        loop {
            let (next, names) = page(c.cmd(&[scan, key, &cursor.to_string(), "COUNT", "50"]), step);
            seen.extend(names);
            cursor = next;
            if cursor == 0 {
                break;
            }
            // Between calls: growth first, then every passing member goes.
            if added < passing + more {
                add(&mut c, key, &pass[added..added + 2000]);
                added += 2000;
                grew = grew.max(table_size(&mut c, key));
            } else if removed < added {
                let to = (removed + 3000).min(added);
                remove(&mut c, key, &pass[removed..to]);
                removed = to;
            }
        }
        // The scan may end before the removals do: they go now.
        if removed < added {
            remove(&mut c, key, &pass[removed..added]);
        }
        let missing: Vec<&String> = keep.iter().filter(|k| !seen.contains(k.as_bytes())).collect();
        assert!(missing.is_empty(), "{scan}: {} kept members never returned, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
        if ringkv {
            let end_size = table_size(&mut c, key);
            assert!(grew >= start_size * 4 && end_size * 8 <= grew, "{scan}: table {start_size} -> {grew} -> {end_size} buckets");
        }
        c.cmd(&["DEL", key]);
    }
}

/// A set and a hash emptied down to a few members give their table's
/// memory back (index and entry vector).
#[test]
fn emptied_tables_give_their_memory_back() {
    let mut s = set::Set::default();
    let mut h = hash::Table::default();
    for i in 0..200_000u32 {
        s.add(format!("member:{i}").as_bytes(), 512);
        h.insert(format!("field:{i}").as_bytes(), b"v");
    }
    let set::Set::Table(st) = &s else { panic!("a hash set") };
    let full = (st.table_bytes(), h.table_bytes());
    for i in 0..199_000u32 {
        assert!(s.remove(format!("member:{i}").as_bytes()));
        assert!(h.swap_remove(format!("field:{i}").as_bytes()));
    }
    let set::Set::Table(st) = &s else { panic!("a hash set") };
    let left = (st.table_bytes(), h.table_bytes());
    // 0.5% of the members left: under 5% of the bytes (each part shrinks
    // below a tenth used, so up to ~10x its members' share stays).
    assert!(left.0 * 20 < full.0, "set table {} -> {} bytes", full.0, left.0);
    assert!(left.1 * 20 < full.1, "hash table {} -> {} bytes", full.1, left.1);
    for i in 199_000..200_000u32 {
        assert!(s.contains(format!("member:{i}").as_bytes()));
        assert!(h.contains(format!("field:{i}").as_bytes()));
    }
}

#[test]
#[ignore = "a release-build measurement: cargo test --release --test table_growth -- --ignored --nocapture"]
fn worst_set_insert_growing_to_2m() {
    let n = 2_000_000u64;
    let mut s = set::Set::default();
    let mut buf = Vec::new();
    worst_of("set insert", n, |i| {
        buf.clear();
        buf.extend_from_slice(format!("member:{}", i).as_bytes());
        s.add(&buf, 512);
    });
    assert_eq!(s.len(), n as usize);
    // And back down to 1000, shrinking: the worst single removal.
    worst_of("set remove", n - 1000, |i| {
        buf.clear();
        buf.extend_from_slice(format!("member:{}", i).as_bytes());
        s.remove(&buf);
    });
    assert_eq!(s.len(), 1000);
}

#[test]
#[ignore = "a release-build measurement: cargo test --release --test table_growth -- --ignored --nocapture"]
fn worst_hash_insert_growing_to_2m() {
    let n = 2_000_000u64;
    let mut h = hash::Table::default();
    worst_of("hash insert", n, |i| {
        let (f, v) = (format!("field:{}", i), format!("value:{}", i));
        h.insert(f.as_bytes(), v.as_bytes());
    });
    assert_eq!(h.len(), n as usize);
}
