//! Keyspace notifications seen by a real subscriber: one connection
//! PSUBSCRIBEs `__key*__:*`, another runs a script over every command
//! family (keys spread over the shards, two databases, cross-shard RENAME /
//! LMOVE / SMOVE / COPY, lazy and active expiry), and what the subscriber
//! receives is compared with what a redis-server 7.0 subscriber receives
//! for the same script.
//!
//! Per key the messages must come in Redis's order. Across keys ringkv may
//! interleave differently (keys on different shards publish from different
//! threads), so the comparison is per key: a keyspace message belongs to the
//! key in its channel, a keyevent message to the key it carries.
//!
//! Needs PUBLISH/PSUBSCRIBE in the target (the `pubsub` branch).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{key_shard, Conn, Resp, Server};

const SHARDS: usize = 3;

/// The script: one command per line, `SLEEP ms` pauses.
const SCRIPT: &[&str] = &[
    "debug set-active-expire 0",
    "set s:1 v",
    "set s:1 v2 ex 100",
    "incrby n:1 5",
    "append s:2 abc",
    "setrange s:2 1 zz",
    "getdel s:2",
    "mset m:1 a m:2 b m:3 c",
    "msetnx m:1 x m:4 y",
    "hset h:1 a 1 b 2",
    "hincrby h:1 a 5",
    "hincrbyfloat h:1 b 1.5",
    "hdel h:1 a b",
    "rpush l:1 a b c",
    "lpop l:1",
    "linsert l:1 before c x",
    "lmove l:1 l:2 left right",
    "rpoplpush l:2 l:1",
    "ltrim l:1 5 10",
    "sadd t:1 a b c",
    "sadd t:2 c d",
    "sinterstore t:3 t:1 t:2",
    "sunionstore t:4 t:1 t:2",
    "smove t:1 t:2 a",
    "spop t:2",
    "srem t:3 c",
    "zadd z:1 1 a 2 b 3 c",
    "zincrby z:1 5 a",
    "zrem z:1 c",
    "zunionstore z:2 1 z:1",
    "zpopmin z:1 2",
    "zremrangebyscore z:2 0 100",
    "rename s:1 s:9",
    "copy s:9 s:10",
    "del s:9 s:10 nosuch",
    "get missing:1",
    "exists missing:2",
    "expire n:1 100",
    "persist n:1",
    "select 2",
    "set db2:key v",
    "move db2:key 0",
    "select 0",
    "setbit b:1 7 1",
    "bitop not b:2 b:1",
    "rpush so:1 3 1 2",
    "sort so:1 store so:2",
    "flushdb",
    "set lazy:1 v px 30",
    "set lazy:2 v px 30",
    "hset lazy:3 f v",
    "pexpire lazy:3 30",
    "SLEEP 100",
    "get lazy:1",
    "exists lazy:2",
    "hset lazy:3 f v",
    "debug set-active-expire 1",
    "set active:1 v px 30",
    "rpush active:2 a",
    "pexpire active:2 30",
];

/// Keys whose expiry the active cycle must find, untouched by the script.
const ACTIVE_KEYS: &[&str] = &["active:1", "active:2"];

/// The (channel, message) pairs a `__key*__:*` subscriber received while
/// the script ran on `server`.
fn collect(server: &Server) -> Vec<(String, String)> {
    let mut sub = server.conn();
    sub.send(&["psubscribe", "__key*__:*"]);
    let confirm = sub.read();
    assert_eq!(confirm, Resp::Array(vec![Resp::bulk("psubscribe"), Resp::bulk("__key*__:*"), Resp::Int(1)]), "{}", server.name());
    let mut c = server.conn();
    assert_eq!(c.cmd(&["config", "set", "notify-keyspace-events", "AKEmn"]), Resp::ok());
    for line in SCRIPT {
        let words: Vec<&str> = line.split(' ').collect();
        if words[0] == "SLEEP" {
            std::thread::sleep(Duration::from_millis(words[1].parse().unwrap()));
            continue;
        }
        if let Resp::Error(e) = c.cmd(&words) {
            panic!("{}: {:?} failed: {}", server.name(), line, e);
        }
    }
    let mut got = vec![];
    // The active cycle's expirations, then whatever is still in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    let active_done = |got: &[(String, String)]| ACTIVE_KEYS.iter().all(|k| got.iter().any(|(ch, m)| ch == "__keyevent@0__:expired" && m == k));
    while !active_done(&got) && Instant::now() < deadline {
        read_messages(&mut sub, &mut got, Duration::from_millis(100));
    }
    assert!(active_done(&got), "{}: the active expiry of {:?} was not notified within 10 s; got {:?}", server.name(), ACTIVE_KEYS, got);
    read_messages(&mut sub, &mut got, Duration::from_millis(500));
    got
}

/// Appends the messages that arrive on `sub` until none comes for `idle`.
fn read_messages(sub: &mut Conn, out: &mut Vec<(String, String)>, idle: Duration) {
    sub.stream.set_read_timeout(Some(idle)).unwrap();
    while let Ok(frame) = sub.read_frame() {
        let Resp::Array(parts) = common::decode(&frame) else { panic!("not a message: {}", common::escape(&frame, 200)) };
        let text = |r: &Resp| String::from_utf8(r.opt_bytes().unwrap()).unwrap();
        assert_eq!(parts.len(), 4, "{:?}", parts);
        assert_eq!(text(&parts[0]), "pmessage");
        assert_eq!(text(&parts[1]), "__key*__:*");
        out.push((text(&parts[2]), text(&parts[3])));
    }
    sub.stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
}

/// Messages grouped by the key they are about, each group in arrival order.
fn per_key(messages: &[(String, String)]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (channel, message) in messages {
        let (kind, name) = channel.split_once("__:").unwrap_or_else(|| panic!("not a keyspace channel: {}", channel));
        let key = if kind.starts_with("__keyspace@") { name } else { message };
        out.entry(key.to_string()).or_default().push((channel.clone(), message.clone()));
    }
    out
}

#[test]
fn a_subscriber_sees_redis_events_per_key() {
    // The script's keys span every shard (else the test would prove less).
    let keys = ["s:1", "n:1", "h:1", "l:1", "l:2", "t:1", "t:2", "z:1", "s:9", "s:10", "lazy:1", "active:1"];
    for shard in 0..SHARDS {
        assert!(keys.iter().any(|k| key_shard(k.as_bytes(), SHARDS) == shard), "no key on shard {}", shard);
    }
    let (target, redis) = Server::pair(&["--enable-debug-command", "yes"], &["--shards", "3"]);
    let expected = collect(&redis);
    let got = collect(&target);
    let (expected, got) = (per_key(&expected), per_key(&got));
    // Lazy expiry (by a read, a write, EXISTS) and active expiry are in it.
    for key in ["lazy:1", "lazy:2", "lazy:3", "active:1", "active:2"] {
        assert!(expected[key].iter().any(|(_, m)| m == "expired"), "redis did not expire {}: {:?}", key, expected[key]);
    }
    for (key, events) in &expected {
        assert_eq!(got.get(key), Some(events), "{}: the events of key {:?}", target.name(), key);
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{}: events on keys redis did not touch: {:?}",
        target.name(),
        got.keys().filter(|k| !expected.contains_key(*k)).collect::<Vec<_>>()
    );
}
