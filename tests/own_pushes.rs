//! A RESP3 client subscribed to the keyspace events of its own writes gets
//! them where Redis 7.0 writes them (`src/messaging/own_pushes.rs`): before
//! its reply for most commands (SET, DEL, INCR, MSET, RENAME), after it
//! where Redis's handler replies first (LPUSH, EXPIRE), around each element
//! inside EXEC, and a blocked pop's waker's events before the popped reply.
//! At --shards 3 with one key on each shard, so whichever shard the
//! connection is on, most writes run on another one (forwarded, held,
//! hops). The expected bytes are what redis-server 7.0.15 writes
//! (`RINGKV_TEST_TARGET=redis` passes).

mod common;

use std::time::Duration;

use common::{encode, keys_per_shard, Conn, Server};

fn subscriber(server: &Server) -> Conn {
    let mut c = server.conn();
    c.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.cmd(&["HELLO", "3"]);
    c.send(&["PSUBSCRIBE", "__keyspace@0__:*", "__keyevent@0__:*"]);
    c.read_frame().unwrap();
    c.read_frame().unwrap();
    c
}

fn bulk(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// The two pushes of `event` on `key` (keyspace, then keyevent).
fn ev(key: &str, event: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (pattern, channel, message) in
        [("__keyspace@0__:*", format!("__keyspace@0__:{key}"), event), ("__keyevent@0__:*", format!("__keyevent@0__:{event}"), key)]
    {
        out.extend_from_slice(b">4\r\n");
        for part in [&b"pmessage"[..], pattern.as_bytes(), channel.as_bytes(), message.as_bytes()] {
            bulk(&mut out, part);
        }
    }
    out
}

/// Reads exactly `want.len()` bytes and then checks that nothing follows.
fn expect(c: &mut Conn, want: &[u8], what: &str) {
    let mut got = Vec::new();
    while got.len() < want.len() {
        match c.read_frame() {
            Ok(f) => got.extend_from_slice(&f),
            Err(e) => panic!("{what}: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{what}");
    c.stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    assert!(c.read_frame().is_err(), "{what}: more than expected");
    c.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
}

#[test]
fn own_event_pushes_come_where_redis_writes_them() {
    let server = Server::ringkv(&["--shards", "3"]);
    let mut admin = server.conn();
    admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let k = keys_per_shard("own", 3);
    let (a, b, c) = (&k[0][..], &k[1][..], &k[2][..]);
    let mut s = subscriber(&server);

    // One pipeline over the three shards.
    let mut batch = Vec::new();
    for cmd in [
        &["SET", a, "1"][..],
        &["SET", b, "1"],
        &["INCR", c],
        &["GET", a],
        &["LPUSH", "{own:0}l", "x"],
        &["EXPIRE", b, "100"],
        &["DEL", a, b],
        &["MSET", a, "1", b, "2", c, "3"],
        &["RENAME", a, b],
    ] {
        batch.extend(encode(cmd));
    }
    s.send_raw(&batch);
    let la = "{own:0}l";
    let want = [
        ev(a, "set"),
        b"+OK\r\n".to_vec(),
        ev(b, "set"),
        b"+OK\r\n".to_vec(),
        ev(c, "incrby"),
        b":1\r\n".to_vec(),
        b"$1\r\n1\r\n".to_vec(),
        // LPUSH replies, then notifies (Redis's pushGenericCommand).
        b":1\r\n".to_vec(),
        ev(la, "lpush"),
        b":1\r\n".to_vec(),
        ev(b, "expire"),
        [ev(a, "del"), ev(b, "del"), b":2\r\n".to_vec()].concat(),
        [ev(a, "set"), ev(b, "set"), ev(c, "set"), b"+OK\r\n".to_vec()].concat(),
        [ev(a, "rename_from"), ev(b, "rename_to"), b"+OK\r\n".to_vec()].concat(),
    ]
    .concat();
    expect(&mut s, &want, "pipelined writes over three shards");

    // A transaction over the three shards: each element's events around it.
    let mut batch = Vec::new();
    for cmd in [&["MULTI"][..], &["SET", a, "2"], &["RPUSH", "{own:1}l", "y"], &["INCR", c], &["DEL", b], &["EXEC"]] {
        batch.extend(encode(cmd));
    }
    s.send_raw(&batch);
    let want = [
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n".to_vec(),
        ev(a, "set"),
        b"+OK\r\n:1\r\n".to_vec(),
        ev("{own:1}l", "rpush"),
        ev(c, "incrby"),
        b":4\r\n".to_vec(),
        ev(b, "del"),
        b":1\r\n".to_vec(),
    ]
    .concat();
    expect(&mut s, &want, "EXEC over three shards");

    // A blocked pop on each shard, woken by another client's push: the
    // push's events come first, then the popped element, then the pop's.
    for key in [a, b, c] {
        let list = format!("{{{key}}}w");
        s.send(&["BLPOP", &list, "0"]);
        // Blocked before the push (as `blocked_clients` shows).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while common::clients_info_field(&mut admin, "blocked_clients") != 1 {
            assert!(std::time::Instant::now() < deadline, "BLPOP never blocked");
            std::thread::sleep(Duration::from_millis(5));
        }
        admin.cmd(&["RPUSH", &list, "x"]);
        let mut reply = b"*2\r\n".to_vec();
        bulk(&mut reply, list.as_bytes());
        bulk(&mut reply, b"x");
        let want = [ev(&list, "rpush"), reply, ev(&list, "lpop"), ev(&list, "del")].concat();
        expect(&mut s, &want, &format!("BLPOP woken on {list}"));
    }
}

/// CLIENT REPLY OFF drops the replies, not the pushes (Redis 7.0.15's
/// CLIENT_PUSHING): LPUSH's events, which follow its reply, survive the
/// dropped count on every shard.
#[test]
fn dropped_replies_keep_own_event_pushes() {
    let server = Server::ringkv(&["--shards", "3"]);
    server.conn().cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let k = keys_per_shard("off", 3);
    let mut s = subscriber(&server);
    let mut batch = encode(&["CLIENT", "REPLY", "OFF"]);
    for key in &k {
        batch.extend(encode(&["LPUSH", key, "x"]));
        batch.extend(encode(&["SET", &format!("{{{key}}}s"), "x"]));
    }
    batch.extend(encode(&["CLIENT", "REPLY", "ON"]));
    s.send_raw(&batch);
    let mut want = Vec::new();
    for key in &k {
        want.extend(ev(key, "lpush"));
        want.extend(ev(&format!("{{{key}}}s"), "set"));
    }
    want.extend_from_slice(b"+OK\r\n");
    expect(&mut s, &want, "CLIENT REPLY OFF over three shards");
}
