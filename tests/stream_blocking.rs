//! Blocking XREAD and XREADGROUP across shards (`--shards 3`): woken by an
//! XADD from another connection whatever the shards of reader, key and
//! writer; several streams at once served from the one that got data;
//! XREADGROUP failed when its group or key goes; CLIENT UNBLOCK; no block
//! inside MULTI; timeouts. Every test also passes against redis-server
//! (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::time::{Duration, Instant};

use common::{wait_blocked, Resp, Server};

const SHARDS: usize = 3;

fn server() -> Server {
    Server::ringkv(&["--shards", &SHARDS.to_string()])
}

fn keys_per_shard(prefix: &str) -> Vec<String> {
    common::keys_per_shard(prefix, SHARDS)
}

/// `[[key, [[id, [f, v]]]]]`, XREAD's reply of one entry.
fn one_entry(key: &str, id: &str, f: &str, v: &str) -> Resp {
    Resp::Array(vec![Resp::Array(vec![Resp::bulk(key), Resp::Array(vec![Resp::Array(vec![Resp::bulk(id), Resp::Array(vec![Resp::bulk(f), Resp::bulk(v)])])])])])
}

#[test]
fn xread_block_is_woken_by_xadd_from_any_shard() {
    let s = server();
    let mut admin = s.conn();
    for key in keys_per_shard("xr") {
        admin.cmd(&["XADD", &key, "1-0", "a", "1"]);
        let mut reader = s.conn();
        reader.send(&["XREAD", "BLOCK", "0", "STREAMS", &key, "$"]);
        wait_blocked(&mut admin, 1);
        // An XADD that does not pass the reader's ID would not wake it:
        // only a new entry does.
        let mut writer = s.conn();
        assert_eq!(writer.cmd(&["XADD", &key, "2-0", "b", "2"]), Resp::bulk("2-0"));
        assert_eq!(reader.read(), one_entry(&key, "2-0", "b", "2"));
        wait_blocked(&mut admin, 0);
    }
}

#[test]
fn xread_on_several_streams_replies_with_the_one_that_got_data() {
    let s = server();
    let mut admin = s.conn();
    let keys = keys_per_shard("multi");
    for target in &keys {
        let mut reader = s.conn();
        let mut args: Vec<&str> = vec!["XREAD", "COUNT", "5", "BLOCK", "0", "STREAMS"];
        args.extend(keys.iter().map(String::as_str));
        args.extend(keys.iter().map(|_| "$"));
        reader.send(&args);
        wait_blocked(&mut admin, 1);
        let id = admin.cmd(&["XADD", target, "*", "f", "v"]).opt_bytes().unwrap();
        let id = String::from_utf8(id).unwrap();
        assert_eq!(reader.read(), one_entry(target, &id, "f", "v"));
    }
}

#[test]
fn xreadgroup_block_gets_new_entries_and_fails_when_the_group_or_key_goes() {
    let s = server();
    let mut admin = s.conn();
    for key in keys_per_shard("grp") {
        admin.cmd(&["XGROUP", "CREATE", &key, "g", "$", "MKSTREAM"]);
        let mut reader = s.conn();
        reader.send(&["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", &key, ">"]);
        wait_blocked(&mut admin, 1);
        admin.cmd(&["XADD", &key, "5-0", "f", "v"]);
        assert_eq!(reader.read(), one_entry(&key, "5-0", "f", "v"));
        // Delivered: pending for alice.
        let pending = admin.cmd(&["XPENDING", &key, "g"]);
        assert_eq!(
            pending,
            Resp::Array(vec![Resp::Int(1), Resp::bulk("5-0"), Resp::bulk("5-0"), Resp::Array(vec![Resp::Array(vec![Resp::bulk("alice"), Resp::bulk("1")])])])
        );

        reader.send(&["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", &key, ">"]);
        wait_blocked(&mut admin, 1);
        assert_eq!(admin.cmd(&["XGROUP", "DESTROY", &key, "g"]), Resp::Int(1));
        assert_eq!(reader.read(), Resp::Error("NOGROUP the consumer group this client was blocked on no longer exists".into()));

        admin.cmd(&["XGROUP", "CREATE", &key, "g", "$"]);
        reader.send(&["XREADGROUP", "GROUP", "g", "alice", "BLOCK", "0", "STREAMS", &key, ">"]);
        wait_blocked(&mut admin, 1);
        admin.cmd(&["DEL", &key]);
        assert_eq!(reader.read(), Resp::Error("UNBLOCKED the stream key no longer exists".into()));
    }
}

#[test]
fn unblock_timeout_and_multi() {
    let s = server();
    let mut admin = s.conn();
    let mut reader = s.conn();
    let id = reader.cmd(&["CLIENT", "ID"]).int().to_string();
    reader.send(&["XREAD", "BLOCK", "0", "STREAMS", "nokey", "$"]);
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]), Resp::Int(1));
    assert_eq!(reader.read(), Resp::Nil);
    reader.send(&["XREAD", "BLOCK", "0", "STREAMS", "nokey", "$"]);
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), Resp::Int(1));
    assert_eq!(reader.read(), Resp::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()));
    let t = Instant::now();
    assert_eq!(reader.cmd(&["XREAD", "BLOCK", "100", "STREAMS", "nokey", "$"]), Resp::Nil);
    assert!(t.elapsed() >= Duration::from_millis(90), "timed out after {:?}", t.elapsed());
    assert_eq!(reader.cmd(&["MULTI"]), Resp::ok());
    assert_eq!(reader.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "nokey", "$"]), Resp::Simple("QUEUED".into()));
    assert_eq!(reader.cmd(&["EXEC"]), Resp::Array(vec![Resp::Nil]));
}
