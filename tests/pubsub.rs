//! Pub/sub across shards: subscribers whose connections live on every shard,
//! a publisher on another, ordering, counts, shard channels, subscribed
//! mode, RESP3 pushes, cleanup on RESET / CLIENT KILL / QUIT / disconnect,
//! and the `pubsub` output-buffer class. Every test also passes against
//! redis-server (`RINGKV_TEST_TARGET=redis`).
//!
//! ringkv spreads accepted connections over its shards (one SO_REUSEPORT
//! listener per shard: the kernel picks by a hash of the address pair), so
//! a test that needs subscribers on every shard opens many: with 3 shards
//! and 24 connections, the chance that one shard gets none is 3·(2/3)^24,
//! below 0.2%; 32 make it 7e-6.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{wait_until, Conn, Resp, Server};

fn server() -> Server {
    Server::ringkv(&["--shards", "3"])
}

fn bulk(s: &str) -> Resp {
    Resp::bulk(s)
}

/// A (p|s)subscribe-style confirmation or message, as strings and ints.
fn words(r: &Resp) -> Vec<String> {
    r.array()
        .iter()
        .map(|e| match e {
            Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Resp::Int(n) => n.to_string(),
            Resp::Nil => "(nil)".into(),
            other => panic!("unexpected element {:?}", other),
        })
        .collect()
}

fn subscribe(c: &mut Conn, cmd: &str, names: &[&str]) -> Vec<i64> {
    let mut args = vec![cmd];
    args.extend_from_slice(names);
    c.send(&args);
    names.iter().map(|_| c.read().array()[2].int()).collect()
}

fn numsub(c: &mut Conn, sub: &str, channel: &str) -> i64 {
    c.cmd(&["PUBSUB", sub, channel]).array()[1].int()
}

#[test]
fn fan_out_reaches_subscribers_on_every_shard_in_publish_order() {
    let s = server();
    let channels = ["news", "sport", "weather", "{x}tech"];
    let mut subs: Vec<(Conn, bool)> = Vec::new();
    for i in 0..32 {
        let mut c = s.conn();
        assert_eq!(subscribe(&mut c, "SUBSCRIBE", &channels), vec![1, 2, 3, 4]);
        // Every other subscriber also takes a pattern over two of the channels.
        let pattern = i % 2 == 0;
        if pattern {
            assert_eq!(subscribe(&mut c, "PSUBSCRIBE", &["[ns]*"]), vec![5]);
        }
        subs.push((c, pattern));
    }
    let mut publisher = s.conn();
    assert_eq!(numsub(&mut publisher, "NUMSUB", "news"), 32);
    assert_eq!(publisher.cmd(&["PUBSUB", "NUMPAT"]).int(), 1);
    const MESSAGES: usize = 3000;
    let mut pipeline = Vec::new();
    for m in 0..MESSAGES {
        common::encode_into(&mut pipeline, &["PUBLISH", channels[m % channels.len()], &m.to_string()]);
    }
    publisher.send_raw(&pipeline);
    for m in 0..MESSAGES {
        // news and sport match the pattern: 32 + 16 receivers.
        let expected = if m % channels.len() < 2 { 48 } else { 32 };
        assert_eq!(publisher.read().int(), expected, "receivers of message {m}");
    }
    for (i, (c, pattern)) in subs.iter_mut().enumerate() {
        let total = if *pattern { MESSAGES + MESSAGES / 2 } else { MESSAGES };
        // Per channel (and per pattern and channel) the messages arrive in
        // publish order, none missing, none twice.
        let mut next: HashMap<(String, String), usize> = HashMap::new();
        for _ in 0..total {
            let w = words(&c.read());
            let (kind, channel, payload) = match w[0].as_str() {
                "message" => ("message", w[1].clone(), &w[2]),
                "pmessage" => {
                    assert_eq!(w[1], "[ns]*");
                    ("pmessage", w[2].clone(), &w[3])
                }
                other => panic!("subscriber {i}: unexpected {other}"),
            };
            let m: usize = payload.parse().unwrap();
            let idx = channels.iter().position(|c| *c == channel).unwrap();
            let want = next.entry((kind.to_string(), channel.clone())).or_insert(idx);
            assert_eq!(m, *want, "subscriber {i}: {kind} on {channel} out of order");
            *want += channels.len();
        }
        assert_eq!(c.pending_len(), 0, "subscriber {i}: nothing more");
    }
}

/// One publisher over channels owned by different shards, waiting for each
/// reply and then pipelining: every subscriber sees the messages in exactly
/// the publish order (Redis's single thread gives it; ringkv runs one
/// connection's publishes in order and its owners' deliveries, sent
/// through different mailboxes, are put back in send order).
#[test]
fn publishes_that_follow_each_other_arrive_in_order_across_owners() {
    let s = server();
    // One channel per shard of a 3-shard ringkv.
    let mut channels: Vec<String> = Vec::new();
    for i in 0.. {
        let name = format!("chan{i}");
        if channels.iter().all(|c| common::key_shard(c.as_bytes(), 3) != common::key_shard(name.as_bytes(), 3)) {
            channels.push(name);
        }
        if channels.len() == 3 {
            break;
        }
    }
    let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let mut subs: Vec<Conn> = (0..24).map(|_| s.conn()).collect();
    for c in subs.iter_mut() {
        subscribe(c, "SUBSCRIBE", &names);
        subscribe(c, "PSUBSCRIBE", &["chan*"]);
    }
    let mut publisher = s.conn();
    const MESSAGES: usize = 600;
    // Half one reply at a time, half pipelined: the order is the same.
    for m in 0..MESSAGES / 2 {
        assert_eq!(publisher.cmd(&["PUBLISH", names[m % 3], &m.to_string()]).int(), 48);
    }
    let mut pipeline = Vec::new();
    for m in MESSAGES / 2..MESSAGES {
        common::encode_into(&mut pipeline, &["PUBLISH", names[m % 3], &m.to_string()]);
    }
    publisher.send_raw(&pipeline);
    for _ in MESSAGES / 2..MESSAGES {
        assert_eq!(publisher.read().int(), 48);
    }
    for (i, c) in subs.iter_mut().enumerate() {
        for m in 0..MESSAGES {
            // Within one PUBLISH, Redis sends the channel message, then the pattern's.
            assert_eq!(words(&c.read()), ["message", names[m % 3], &m.to_string()], "subscriber {i}");
            assert_eq!(words(&c.read()), ["pmessage", "chan*", names[m % 3], &m.to_string()], "subscriber {i}");
        }
    }
}

#[test]
fn publish_counts_introspection_and_disconnect_cleanup() {
    let s = server();
    let mut admin = s.conn();
    let mut a = s.conn();
    let mut b = s.conn();
    assert_eq!(subscribe(&mut a, "SUBSCRIBE", &["c1", "c2", "c1"]), vec![1, 2, 2]);
    assert_eq!(subscribe(&mut b, "SUBSCRIBE", &["c1"]), vec![1]);
    assert_eq!(subscribe(&mut b, "PSUBSCRIBE", &["c*", "d*"]), vec![2, 3]);
    assert_eq!(admin.cmd(&["PUBLISH", "c1", "x"]).int(), 3, "two channel subscribers and one pattern");
    assert_eq!(admin.cmd(&["PUBLISH", "c2", "y"]).int(), 2);
    assert_eq!(admin.cmd(&["PUBLISH", "zz", "y"]).int(), 0);
    assert_eq!(words(&a.read()), ["message", "c1", "x"]);
    assert_eq!(words(&a.read()), ["message", "c2", "y"]);
    assert_eq!(words(&b.read()), ["message", "c1", "x"]);
    assert_eq!(words(&b.read()), ["pmessage", "c*", "c1", "x"]);
    assert_eq!(words(&b.read()), ["pmessage", "c*", "c2", "y"]);
    let r = admin.cmd(&["PUBSUB", "NUMSUB", "c1", "c2", "nope"]);
    assert_eq!(words(&r), ["c1", "2", "c2", "1", "nope", "0"]);
    assert_eq!(admin.cmd(&["PUBSUB", "NUMPAT"]).int(), 2);
    let mut chans = words(&admin.cmd(&["PUBSUB", "CHANNELS"]));
    chans.sort();
    assert_eq!(chans, ["c1", "c2"]);
    assert_eq!(words(&admin.cmd(&["PUBSUB", "CHANNELS", "*2"])), ["c2"]);
    let info = String::from_utf8(admin.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    assert!(info.contains("pubsub_channels:2\r\n") && info.contains("pubsub_patterns:2\r\n"), "{info}");
    // CLIENT LIST shows the subscribed clients with flag P and their counts.
    let list = String::from_utf8(admin.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]).opt_bytes().unwrap()).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().any(|l| l.contains(" flags=P ") && l.contains(" sub=1 psub=2 ssub=0 ")), "{list}");
    assert!(list.lines().any(|l| l.contains(" flags=P ") && l.contains(" sub=2 psub=0 ssub=0 ")), "{list}");
    // Disconnects unsubscribe everywhere: the owners' counts drop to 0.
    drop(a);
    drop(b);
    let gone = wait_until(Duration::from_secs(5), || {
        words(&admin.cmd(&["PUBSUB", "NUMSUB", "c1", "c2"])) == ["c1", "0", "c2", "0"] && admin.cmd(&["PUBSUB", "NUMPAT"]).int() == 0
    });
    assert!(gone, "subscriptions left after disconnect");
    assert_eq!(admin.cmd(&["PUBLISH", "c1", "x"]).int(), 0);
    assert_eq!(admin.cmd(&["PUBSUB", "CHANNELS"]), Resp::Array(vec![]));
    let info = String::from_utf8(admin.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    assert!(info.contains("pubsub_channels:0\r\n") && info.contains("pubsub_patterns:0\r\n"), "{info}");
}

#[test]
fn shard_channels_spublish_ssubscribe() {
    let s = server();
    let mut admin = s.conn();
    let mut subs: Vec<Conn> = (0..12).map(|_| s.conn()).collect();
    for c in subs.iter_mut() {
        assert_eq!(subscribe(c, "SSUBSCRIBE", &["orders", "orders"]), vec![1, 1]);
    }
    let mut plain = s.conn();
    assert_eq!(subscribe(&mut plain, "SUBSCRIBE", &["orders"]), vec![1]);
    // Separate namespaces: SPUBLISH reaches shard subscribers only, PUBLISH the others.
    assert_eq!(admin.cmd(&["SPUBLISH", "orders", "o1"]).int(), 12);
    assert_eq!(admin.cmd(&["PUBLISH", "orders", "o2"]).int(), 1);
    for c in subs.iter_mut() {
        assert_eq!(words(&c.read()), ["smessage", "orders", "o1"]);
    }
    assert_eq!(words(&plain.read()), ["message", "orders", "o2"]);
    assert_eq!(words(&admin.cmd(&["PUBSUB", "SHARDNUMSUB", "orders", "x"])), ["orders", "12", "x", "0"]);
    assert_eq!(words(&admin.cmd(&["PUBSUB", "SHARDCHANNELS"])), ["orders"]);
    assert_eq!(words(&admin.cmd(&["PUBSUB", "SHARDCHANNELS", "x*"])), Vec::<String>::new());
    // SSUBSCRIBE counts shard channels alone; SUNSUBSCRIBE without names drops them all.
    assert_eq!(subscribe(&mut plain, "SSUBSCRIBE", &["s1"]), vec![1]);
    plain.send(&["SUNSUBSCRIBE"]);
    assert_eq!(words(&plain.read()), ["sunsubscribe", "s1", "0"]);
    assert_eq!(words(&plain.cmd(&["SUNSUBSCRIBE"])), ["sunsubscribe", "(nil)", "0"]);
    for c in subs.iter_mut() {
        c.send(&["SUNSUBSCRIBE", "orders"]);
        assert_eq!(words(&c.read()), ["sunsubscribe", "orders", "0"]);
        // Out of subscribed mode: ordinary commands again.
        assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    }
    assert_eq!(admin.cmd(&["SPUBLISH", "orders", "o3"]).int(), 0);
}

#[test]
fn resp2_subscribed_mode_allows_only_the_pubsub_commands() {
    let s = server();
    let mut c = s.conn();
    assert_eq!(subscribe(&mut c, "SUBSCRIBE", &["a"]), vec![1]);
    let refused =
        |cmd: &str| Resp::Error(format!("ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"));
    assert_eq!(c.cmd(&["GET", "k"]), refused("get"));
    assert_eq!(c.cmd(&["PUBLISH", "a", "m"]), refused("publish"));
    assert_eq!(c.cmd(&["CLIENT", "LIST"]), refused("client|list"));
    // Checks before the subscribed-mode one keep their errors.
    assert!(matches!(c.cmd(&["NOSUCHCMD"]), Resp::Error(e) if e.starts_with("ERR unknown command")));
    assert_eq!(c.cmd(&["GET"]), Resp::Error("ERR wrong number of arguments for 'get' command".into()));
    assert_eq!(c.cmd(&["PING"]), Resp::Array(vec![bulk("pong"), bulk("")]));
    assert_eq!(c.cmd(&["PING", "hi"]), Resp::Array(vec![bulk("pong"), bulk("hi")]));
    // Shard channels alone keep the client in subscribed mode too.
    assert_eq!(subscribe(&mut c, "SSUBSCRIBE", &["s"]), vec![1]);
    assert_eq!(words(&c.cmd(&["UNSUBSCRIBE", "a"])), ["unsubscribe", "a", "0"]);
    assert_eq!(c.cmd(&["GET", "k"]), refused("get"));
    // RESET leaves subscribed mode and every subscription, silently.
    assert_eq!(c.cmd(&["RESET"]), Resp::Simple("RESET".into()));
    assert_eq!(c.cmd(&["GET", "k"]), Resp::Nil);
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    let mut admin = s.conn();
    assert_eq!(numsub(&mut admin, "SHARDNUMSUB", "s"), 0);
    // UNSUBSCRIBE when subscribed to nothing still answers.
    assert_eq!(words(&c.cmd(&["UNSUBSCRIBE"])), ["unsubscribe", "(nil)", "0"]);
    assert_eq!(words(&c.cmd(&["PUNSUBSCRIBE"])), ["punsubscribe", "(nil)", "0"]);
    assert_eq!(c.cmd(&["GET", "k"]), Resp::Nil);
}

#[test]
fn resp3_pushes_commands_and_publishing_to_itself() {
    let s = server();
    let mut c = s.conn();
    c.cmd(&["HELLO", "3"]);
    c.send(&["SUBSCRIBE", "me", "other"]);
    for (i, ch) in ["me", "other"].iter().enumerate() {
        assert_eq!(c.read(), Resp::Push(vec![bulk("subscribe"), bulk(ch), Resp::Int(i as i64 + 1)]));
    }
    // Any command runs in RESP3; PING is the plain one.
    assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    // Its own message comes before the count, whichever shard owns the channel.
    for ch in ["me", "other"] {
        c.send(&["PUBLISH", ch, "hello"]);
        assert_eq!(c.read(), Resp::Push(vec![bulk("message"), bulk(ch), bulk("hello")]));
        assert_eq!(c.read(), Resp::Int(1));
    }
    let mut other = s.conn();
    assert_eq!(other.cmd(&["PUBLISH", "other", "x"]).int(), 1);
    assert_eq!(c.read(), Resp::Push(vec![bulk("message"), bulk("other"), bulk("x")]));
    // CLIENT REPLY OFF silences replies, not confirmations or messages.
    c.send(&["CLIENT", "REPLY", "OFF"]);
    c.send(&["PING"]);
    c.send(&["PSUBSCRIBE", "p*"]);
    assert_eq!(c.read(), Resp::Push(vec![bulk("psubscribe"), bulk("p*"), Resp::Int(3)]));
    assert_eq!(other.cmd(&["PUBLISH", "px", "y"]).int(), 1);
    assert_eq!(c.read(), Resp::Push(vec![bulk("pmessage"), bulk("p*"), bulk("px"), bulk("y")]));
    // Publishing to itself: the message comes, the count does not.
    for ch in ["me", "other"] {
        c.send(&["PUBLISH", ch, "quiet"]);
        assert_eq!(c.read(), Resp::Push(vec![bulk("message"), bulk(ch), bulk("quiet")]));
    }
    c.send(&["CLIENT", "REPLY", "ON"]);
    assert_eq!(c.read(), Resp::ok());
    assert_eq!(c.pending_len(), 0);
}

#[test]
fn reset_client_kill_and_quit_unsubscribe_everywhere() {
    let s = server();
    let mut admin = s.conn();
    let subscribe_all = |c: &mut Conn| {
        subscribe(c, "SUBSCRIBE", &["k1", "k2", "k3", "k4"]);
        subscribe(c, "PSUBSCRIBE", &["k*"]);
        subscribe(c, "SSUBSCRIBE", &["sk1", "sk2"]);
    };
    let all_zero = |admin: &mut Conn| {
        words(&admin.cmd(&["PUBSUB", "NUMSUB", "k1", "k2", "k3", "k4"])) == ["k1", "0", "k2", "0", "k3", "0", "k4", "0"]
            && words(&admin.cmd(&["PUBSUB", "SHARDNUMSUB", "sk1", "sk2"])) == ["sk1", "0", "sk2", "0"]
            && admin.cmd(&["PUBSUB", "NUMPAT"]).int() == 0
            && admin.cmd(&["PUBLISH", "k1", "m"]).int() == 0
    };
    // RESET: synchronous.
    let mut c = s.conn();
    subscribe_all(&mut c);
    assert_eq!(admin.cmd(&["PUBLISH", "k1", "m"]).int(), 2);
    assert_eq!(words(&c.read()), ["message", "k1", "m"]);
    assert_eq!(words(&c.read()), ["pmessage", "k*", "k1", "m"]);
    assert_eq!(c.cmd(&["RESET"]), Resp::Simple("RESET".into()));
    assert!(all_zero(&mut admin), "RESET left subscriptions");
    // CLIENT KILL (by id, and by TYPE pubsub).
    for by_type in [false, true] {
        let mut c = s.conn();
        subscribe_all(&mut c);
        let id = {
            let mut probe = s.conn();
            let list = String::from_utf8(probe.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]).opt_bytes().unwrap()).unwrap();
            assert_eq!(list.lines().count(), 1, "{list}");
            list.split(' ').next().unwrap().trim_start_matches("id=").to_string()
        };
        let killed = if by_type { admin.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]) } else { admin.cmd(&["CLIENT", "KILL", "ID", &id]) };
        assert_eq!(killed.int(), 1);
        assert!(wait_until(Duration::from_secs(5), || all_zero(&mut admin)), "CLIENT KILL left subscriptions");
    }
    // QUIT.
    let mut c = s.conn();
    subscribe_all(&mut c);
    assert_eq!(c.cmd(&["QUIT"]), Resp::ok());
    assert!(wait_until(Duration::from_secs(5), || all_zero(&mut admin)), "QUIT left subscriptions");
}

#[test]
fn pubsub_output_buffer_limit_closes_a_subscriber_that_does_not_read() {
    let s = server();
    let mut admin = s.conn();
    // The normal class would close it at 1 MB; a subscriber is held to the pubsub class.
    admin.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0 pubsub 0 0 0"]);
    let mut patient = s.conn();
    subscribe(&mut patient, "SUBSCRIBE", &["flood"]);
    let payload = "x".repeat(16 * 1024);
    const MESSAGES: usize = 600;
    let mut pipeline = Vec::new();
    for _ in 0..MESSAGES {
        common::encode_into(&mut pipeline, &["PUBLISH", "flood", &payload]);
    }
    admin.send_raw(&pipeline);
    for _ in 0..MESSAGES {
        assert_eq!(admin.read().int(), 1);
    }
    for _ in 0..MESSAGES {
        assert_eq!(words(&patient.read())[2].len(), payload.len());
    }
    drop(patient);
    assert!(wait_until(Duration::from_secs(5), || numsub(&mut admin, "NUMSUB", "flood") == 0));
    // Now the pubsub class: 1 MB hard. A subscriber that never reads is closed.
    admin.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0 pubsub 1mb 0 0"]);
    let mut stuck = s.conn();
    subscribe(&mut stuck, "SUBSCRIBE", &["flood"]);
    // 600 x 16 KiB = 9.6 MB: more than the socket buffers and the limit hold.
    admin.send_raw(&pipeline);
    let counts: Vec<i64> = (0..MESSAGES).map(|_| admin.read().int()).collect();
    assert_eq!(counts[0], 1);
    assert_eq!(*counts.last().unwrap(), 0, "the stuck subscriber was closed at its limit");
    assert!(wait_until(Duration::from_secs(5), || numsub(&mut admin, "NUMSUB", "flood") == 0));
    let (_, end) = stuck.read_until_close(Duration::from_secs(10));
    assert_eq!(end, common::End::Closed);
    assert_eq!(admin.cmd(&["PING"]), Resp::Simple("PONG".into()), "the server survives");
}

/// CLIENT KILL of a subscribed client: once KILL has answered, it is no
/// receiver any more and PUBSUB counts it nowhere, as Redis frees it in the
/// command (audit21: its subscriptions stayed until its shard's cron closed
/// it, up to ~100 ms, and a PUBLISH right after the kill counted it).
#[test]
fn client_kill_drops_a_subscriber_at_once() {
    let s = server();
    let channels = common::keys_per_shard("killed", 3);
    let mut admin = s.conn();
    for round in 0..5 {
        let mut sub = s.conn();
        let id = sub.cmd(&["CLIENT", "ID"]).int().to_string();
        let mut args = vec!["SUBSCRIBE"];
        args.extend(channels.iter().map(|c| c.as_str()));
        sub.send(&args);
        for _ in &channels {
            sub.read();
        }
        assert_eq!(words(&sub.cmd(&["PSUBSCRIBE", "killed*"]))[0], "psubscribe");
        assert_eq!(words(&sub.cmd(&["SSUBSCRIBE", &channels[round % 3]]))[0], "ssubscribe");
        assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", &id]), Resp::Int(1));
        for ch in &channels {
            assert_eq!(admin.cmd(&["PUBLISH", ch, "m"]), Resp::Int(0), "round {round}: PUBLISH {ch} right after the kill");
            assert_eq!(admin.cmd(&["PUBSUB", "NUMSUB", ch]), Resp::Array(vec![bulk(ch), Resp::Int(0)]));
        }
        assert_eq!(admin.cmd(&["PUBSUB", "NUMPAT"]), Resp::Int(0));
        assert_eq!(admin.cmd(&["SPUBLISH", &channels[round % 3], "m"]), Resp::Int(0));
    }
}
