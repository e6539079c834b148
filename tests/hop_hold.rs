//! What a connection's output does while a hop it started is in flight
//! (`HopHold::Waiting`, exec18: its replies leave with the hop's, in one
//! send): RESP3 pushes (pub/sub messages, tracking invalidations, keyspace
//! events), CLIENT REPLY OFF/SKIP, MONITOR and blocking commands keep
//! Redis's order, nothing is lost, and nothing waits past the hop's
//! answer. The hop is held in flight with the hidden `hop-part-delay`
//! config (see tests/hops.rs) and `cross-shard-route hops`; against
//! redis-server (`RINGKV_TEST_TARGET=redis`: nothing in flight) the same
//! steps check the replies and their order alone.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Microseconds each remote part of a hop waits: long enough for another
/// client's command to run meanwhile, short enough for the tests.
const DELAY_US: &str = "400000";

/// A two-shard server whose hops wait `DELAY_US` on their remote part;
/// whether it is ringkv.
fn server() -> (Server, bool) {
    let s = Server::ringkv(&["--shards", "2"]);
    let ringkv = s.name() == "ringkv";
    if ringkv {
        let mut c = s.conn();
        assert_eq!(c.cmd(&["CONFIG", "SET", "cross-shard-route", "hops"]), Resp::ok());
        assert_eq!(c.cmd(&["CONFIG", "SET", "hop-part-delay", DELAY_US]), Resp::ok());
        // The delay is read again at most this often (`network::hop`).
        std::thread::sleep(Duration::from_millis(150));
    }
    (s, ringkv)
}

/// A connection that gives up on a read after 5 s (a held output would
/// otherwise hang the test).
fn conn(s: &Server) -> Conn {
    let c = s.conn();
    c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// A RESP3 connection.
fn conn3(s: &Server) -> Conn {
    let mut c = conn(s);
    assert!(matches!(c.cmd(&["HELLO", "3"]), Resp::Map(_)));
    c
}

/// Two keys on shard 0 (the hop's own and an unrelated one) and one on
/// shard 1: an MSET of `a0` and `a1` is a hop over both shards.
fn keys() -> (String, String, String) {
    let [a0, a1]: [String; 2] = keys_per_shard("hh0", 2).try_into().unwrap();
    let u0 = keys_per_shard("hh1", 2).swap_remove(0);
    (a0, a1, u0)
}

fn send_all(c: &mut Conn, cmds: &[&[&str]]) {
    let mut bytes = Vec::new();
    for cmd in cmds {
        encode_into(&mut bytes, cmd);
    }
    c.send_raw(&bytes);
}

fn push(parts: &[&str]) -> Resp {
    Resp::Push(parts.iter().map(Resp::bulk).collect())
}

/// A RESP3 subscriber running a hop: a message published while the hop
/// waits on its other shard arrives after the hop's reply (the MSET ran
/// before the PUBLISH), and the replies ahead of the hop come first.
#[test]
fn a_resp3_subscriber_with_a_hop_in_flight_gets_its_messages_in_order() {
    let (s, _) = server();
    let (a0, a1, _) = keys();
    let mut c = conn3(&s);
    assert_eq!(c.cmd(&["SUBSCRIBE", "hh:ch"]), Resp::Push(vec![Resp::bulk("subscribe"), Resp::bulk("hh:ch"), Resp::Int(1)]));
    send_all(&mut c, &[&["PING"], &["MSET", &a0, "1", &a1, "1"]]);
    std::thread::sleep(Duration::from_millis(100));
    let mut other = conn(&s);
    assert_eq!(other.cmd(&["PUBLISH", "hh:ch", "m1"]), Resp::Int(1));
    assert_eq!(c.read(), Resp::Simple("PONG".into()));
    assert_eq!(c.read(), Resp::ok());
    assert_eq!(c.read(), push(&["message", "hh:ch", "m1"]));
    // Nothing is held once the hop answered: a message now arrives alone.
    assert_eq!(other.cmd(&["PUBLISH", "hh:ch", "m2"]), Resp::Int(1));
    assert_eq!(c.read(), push(&["message", "hh:ch", "m2"]));
}

/// Tracking: the invalidation of a key the client wrote by a hop comes
/// after that hop's reply (Redis 7.0 sends a client's own invalidations
/// after its reply) and before the reply of a later read of the key.
/// (Before, ringkv sent `+OK`, the GET's reply, then the invalidation: the
/// GET ran once the hop's local part let its key go, and the invalidation,
/// published when the last part was back, queued behind the GET's reply;
/// the same on 5f624dd, before exec18's hold. `Hops::own_slot`.)
#[test]
fn a_tracking_client_writing_by_a_hop_gets_the_invalidation_before_its_next_read() {
    let (s, _) = server();
    let (a0, a1, _) = keys();
    let mut setup = conn(&s);
    setup.cmd(&["SET", &a0, "old"]);
    let mut c = conn3(&s);
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]), Resp::ok());
    assert_eq!(c.cmd(&["GET", &a0]), Resp::bulk("old"));
    send_all(&mut c, &[&["MSET", &a0, "new", &a1, "1"], &["GET", &a0]]);
    assert_eq!(c.read(), Resp::ok());
    assert_eq!(c.read(), Resp::Push(vec![Resp::bulk("invalidate"), Resp::Array(vec![Resp::bulk(&a0)])]));
    assert_eq!(c.read(), Resp::bulk("new"));
}

/// Tracking, another client's write while this client's hop is in flight:
/// the invalidation is not lost, and it reaches the client before any read
/// reply that shows the new value (a reply of the old value may come
/// first: the read ran before the write).
#[test]
fn an_invalidation_during_a_hop_precedes_a_read_of_the_new_value() {
    let (s, _) = server();
    let (a0, a1, u0) = keys();
    let mut other = conn(&s);
    other.cmd(&["SET", &u0, "old"]);
    let mut c = conn3(&s);
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]), Resp::ok());
    assert_eq!(c.cmd(&["GET", &u0]), Resp::bulk("old"));
    send_all(&mut c, &[&["MSET", &a0, "1", &a1, "1"], &["GET", &u0]]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(other.cmd(&["SET", &u0, "new"]), Resp::ok());
    assert_eq!(c.read(), Resp::ok());
    let invalidate = Resp::Push(vec![Resp::bulk("invalidate"), Resp::Array(vec![Resp::bulk(&u0)])]);
    let (first, second) = (c.read(), c.read());
    match (&first, &second) {
        (Resp::Bulk(v), p) if v == b"old" => assert_eq!(p, &invalidate),
        (p, Resp::Bulk(v)) if v == b"new" => assert_eq!(p, &invalidate),
        _ => panic!("{first:?} then {second:?}"),
    }
}

/// Tracking with REDIRECT: the redirect target gets the invalidation of a
/// write made by a hop of the tracking client, and one while its own hop
/// is in flight after that hop's reply.
#[test]
fn redirected_invalidations_with_hops_in_flight_arrive() {
    let (s, _) = server();
    let (a0, a1, u0) = keys();
    let mut target = conn3(&s);
    let Resp::Int(target_id) = target.cmd(&["CLIENT", "ID"]) else { panic!() };
    assert!(matches!(target.cmd(&["SUBSCRIBE", "__redis__:invalidate"]), Resp::Push(_)));
    let mut c = conn(&s);
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &target_id.to_string()]), Resp::ok());
    c.cmd(&["SET", &a0, "old"]);
    c.cmd(&["SET", &u0, "old"]);
    assert_eq!(c.cmd(&["GET", &a0]), Resp::bulk("old"));
    assert_eq!(c.cmd(&["GET", &u0]), Resp::bulk("old"));
    // The tracking client's own hop writes a0.
    assert_eq!(c.cmd(&["MSET", &a0, "new", &a1, "1"]), Resp::ok());
    // (A RESP3 target gets the push form, as Redis's sendTrackingMessage.)
    let invalidation = |k: &str| Resp::Push(vec![Resp::bulk("invalidate"), Resp::Array(vec![Resp::bulk(k)])]);
    assert_eq!(target.read(), invalidation(&a0));
    // The target's own hop is in flight when u0 changes.
    send_all(&mut target, &[&["MSET", &a0, "2", &a1, "2"]]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd(&["SET", &u0, "new"]), Resp::ok());
    assert_eq!(target.read(), Resp::ok());
    assert_eq!(target.read(), invalidation(&u0));
}

/// Keyspace events of a hop to a RESP3 subscriber that ran it, as Redis
/// 7.0 writes them: the events of the command first (written while it
/// runs), then its reply; and to another subscriber, all of them.
#[test]
fn keyspace_events_of_a_hop_reach_its_own_subscriber_and_others() {
    let (s, _) = server();
    let (a0, a1, _) = keys();
    let mut setup = conn(&s);
    assert_eq!(setup.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]), Resp::ok());
    let mut watcher = conn(&s);
    assert!(matches!(watcher.cmd(&["PSUBSCRIBE", "__keyspace@0__:hh*"]), Resp::Array(_)));
    let mut c = conn3(&s);
    assert!(matches!(c.cmd(&["PSUBSCRIBE", "__keyspace@0__:hh*"]), Resp::Push(_)));
    send_all(&mut c, &[&["PING"], &["MSET", &a0, "1", &a1, "1"], &["PING"]]);
    let event =
        |k: &str| Resp::Push(vec![Resp::bulk("pmessage"), Resp::bulk("__keyspace@0__:hh*"), Resp::bulk(format!("__keyspace@0__:{k}")), Resp::bulk("set")]);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(c.read());
    }
    let pong = Resp::Simple("PONG".into());
    assert_eq!(got, vec![pong.clone(), event(&a0), event(&a1), Resp::ok(), pong]);
    for k in [&a0, &a1] {
        let Resp::Array(parts) = watcher.read() else { panic!() };
        assert_eq!(parts[2], Resp::bulk(format!("__keyspace@0__:{k}")));
    }
}

/// CLIENT REPLY OFF and SKIP over a hop: its reply is dropped, the replies
/// after it arrive, and a RESP3 client's pushes are not held back while
/// replies are off (Redis writes pushes whatever CLIENT REPLY says).
#[test]
fn client_reply_off_and_skip_over_a_hop() {
    let (s, _) = server();
    let (a0, a1, _) = keys();
    let mut c = conn(&s);
    send_all(&mut c, &[&["CLIENT", "REPLY", "OFF"], &["MSET", &a0, "1", &a1, "1"], &["CLIENT", "REPLY", "ON"], &["GET", &a1]]);
    assert_eq!(c.read(), Resp::ok());
    assert_eq!(c.read(), Resp::bulk("1"));
    send_all(&mut c, &[&["CLIENT", "REPLY", "SKIP"], &["MSET", &a0, "2", &a1, "2"], &["GET", &a0]]);
    assert_eq!(c.read(), Resp::bulk("2"));

    let mut sub = conn3(&s);
    assert!(matches!(sub.cmd(&["SUBSCRIBE", "hh:off"]), Resp::Push(_)));
    send_all(&mut sub, &[&["CLIENT", "REPLY", "OFF"], &["MSET", &a0, "3", &a1, "3"]]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd(&["PUBLISH", "hh:off", "m"]), Resp::Int(1));
    assert_eq!(sub.read(), push(&["message", "hh:off", "m"]));
    sub.send(&["CLIENT", "REPLY", "ON"]);
    assert_eq!(sub.read(), Resp::ok());
}

/// MONITOR sees a hop's command, and a client blocked after a hop got the
/// hop's reply while it waits.
#[test]
fn monitor_and_a_blocking_pop_after_a_hop() {
    let (s, _) = server();
    let (a0, a1, u0) = keys();
    let mut m = conn(&s);
    assert_eq!(m.cmd(&["MONITOR"]), Resp::ok());
    let mut c = conn(&s);
    send_all(&mut c, &[&["MSET", &a0, "1", &a1, "1"], &["BLPOP", &u0, "0"]]);
    let started = Instant::now();
    assert_eq!(c.read(), Resp::ok());
    assert!(started.elapsed() < Duration::from_secs(3));
    let Resp::Simple(line) = m.read() else { panic!() };
    assert!(line.contains("\"MSET\""), "{line}");
    let mut other = conn(&s);
    assert_eq!(other.cmd(&["LPUSH", &u0, "v"]), Resp::Int(1));
    assert_eq!(c.read(), Resp::Array(vec![Resp::bulk(&u0), Resp::bulk("v")]));
}

/// A client that hangs up while its hop is in flight: the hop completes
/// (its writes are made), the server drops the reply, and messages for
/// the closed subscriber go nowhere.
#[test]
fn a_client_gone_with_its_hop_in_flight() {
    let (s, _) = server();
    let (a0, a1, _) = keys();
    let mut other = conn(&s);
    let Resp::Bulk(before) = other.cmd(&["INFO", "clients"]) else { panic!() };
    let clients = |info: &[u8]| String::from_utf8_lossy(info).lines().find(|l| l.starts_with("connected_clients:")).unwrap().to_string();
    {
        let mut c = conn3(&s);
        assert!(matches!(c.cmd(&["SUBSCRIBE", "hh:gone"]), Resp::Push(_)));
        send_all(&mut c, &[&["MSET", &a0, "gone", &a1, "gone"]]);
        std::thread::sleep(Duration::from_millis(50));
    }
    other.cmd(&["PUBLISH", "hh:gone", "m"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Resp::Bulk(now) = other.cmd(&["INFO", "clients"]) else { panic!() };
        let done = other.cmd(&["GET", &a1]) == Resp::bulk("gone") && clients(&now) == clients(&before);
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "{} vs {}", clients(&now), clients(&before));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(other.cmd(&["GET", &a0]), Resp::bulk("gone"));
    assert_eq!(other.cmd(&["PUBLISH", "hh:gone", "m"]), Resp::Int(0));
}
