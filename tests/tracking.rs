//! Client-side caching (CLIENT TRACKING) across connections and shards:
//! invalidation pushes, BCAST prefixes, OPTIN/OPTOUT with CLIENT CACHING,
//! NOLOOP, FLUSHALL, redirection, the tracking table's key limit, a
//! redirect target that goes away, and the cleanup of a client's state.
//!
//! ringkv runs with 3 shards, so tracked keys, the tracking client, the
//! writer and the redirect target are spread over shards. "Nothing more
//! arrived" is checked with a PING: a push sent before the PING reached
//! the server is written before its PONG (as in Redis, which is
//! single-threaded).

mod common;

use std::time::Duration;

use common::{key_shard, wait_until, Conn, Resp, Server};

fn server() -> Server {
    Server::ringkv(&["--shards", "3"])
}

/// A RESP3 connection with tracking enabled by `tracking_args` (after
/// `CLIENT TRACKING ON`).
fn resp3_tracking(s: &Server, tracking_args: &[&str]) -> Conn {
    let mut c = s.conn();
    c.cmd(&["HELLO", "3"]);
    let mut args = vec!["CLIENT", "TRACKING", "ON"];
    args.extend_from_slice(tracking_args);
    assert_eq!(c.cmd(&args), Resp::ok());
    c
}

/// The keys of one `invalidate` push (None for the null "all keys" one).
fn invalidated(frame: Resp) -> Option<Vec<String>> {
    let Resp::Push(items) = frame else { panic!("expected an invalidate push, got {:?}", frame) };
    assert_eq!(items.len(), 2, "{:?}", items);
    assert_eq!(items[0], Resp::bulk("invalidate"));
    match &items[1] {
        Resp::Nil => None,
        Resp::Array(keys) => Some(keys.iter().map(|k| String::from_utf8(k.opt_bytes().unwrap()).unwrap()).collect()),
        other => panic!("unexpected invalidate payload {:?}", other),
    }
}

/// Reads `n` single-key invalidations; returns their keys, sorted.
fn read_invalidated_keys(c: &mut Conn, n: usize) -> Vec<String> {
    let mut keys: Vec<String> = (0..n)
        .map(|_| {
            let k = invalidated(c.read()).expect("a key invalidation");
            assert_eq!(k.len(), 1, "one key per invalidation outside BCAST: {:?}", k);
            k[0].clone()
        })
        .collect();
    keys.sort();
    keys
}

/// A connection (and its id), and a RESP3 client tracking with redirection
/// to it that has read `keys`.
fn redirected_reader(s: &Server, keys: &[&str]) -> (Conn, i64, Conn) {
    let mut r = s.conn();
    let rid = r.cmd(&["CLIENT", "ID"]).int();
    let mut c = resp3_tracking(s, &["REDIRECT", &rid.to_string()]);
    for k in keys {
        c.cmd(&["GET", k]);
    }
    (r, rid, c)
}

/// Nothing is pending on `c`: its next reply is the PING's.
fn assert_nothing_pending(c: &mut Conn) {
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

fn info_field(c: &mut Conn, name: &str) -> i64 {
    let info = match c.cmd(&["INFO", "everything"]) {
        Resp::Bulk(b) => String::from_utf8(b).unwrap(),
        Resp::Verbatim(_, b) => String::from_utf8(b).unwrap(),
        other => panic!("INFO: {:?}", other),
    };
    let line = info.lines().find(|l| l.starts_with(&format!("{}:", name))).unwrap_or_else(|| panic!("no {} in INFO", name));
    line.split_once(':').unwrap().1.trim().parse().unwrap()
}

/// Key names that cover all three shards of ringkv.
fn keys_on_every_shard(prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{}{}", prefix, i)).collect();
    let mut shards: Vec<usize> = keys.iter().map(|k| key_shard(k.as_bytes(), 3)).collect();
    shards.sort();
    shards.dedup();
    assert_eq!(shards.len(), 3, "the keys must cover every shard");
    keys
}

#[test]
fn resp3_client_gets_one_invalidation_per_key_read_on_any_shard() {
    let s = server();
    let mut c = resp3_tracking(&s, &[]);
    let mut w = s.conn();
    let keys = keys_on_every_shard("key:", 12);
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "1"]), Resp::ok());
    }
    // Half read by a multi-key command (every shard), half one by one.
    let mut mget = vec!["MGET"];
    mget.extend(keys[..6].iter().map(|k| k.as_str()));
    assert_eq!(c.cmd(&mget).array().len(), 6);
    for k in &keys[6..] {
        assert_eq!(c.cmd(&["GET", k]), Resp::bulk("1"));
    }
    assert_eq!(info_field(&mut w, "tracking_total_keys"), 12);
    assert_eq!(info_field(&mut w, "tracking_total_items"), 12);
    assert_eq!(info_field(&mut w, "tracking_clients"), 1);
    // A key nobody read is not reported.
    assert_eq!(w.cmd(&["SET", "unread", "1"]), Resp::ok());
    for k in &keys {
        assert_eq!(w.cmd(&["INCR", k]), Resp::Int(2));
    }
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(read_invalidated_keys(&mut c, 12), expected);
    // The table forgot them: writing again tells nothing.
    for k in &keys {
        assert_eq!(w.cmd(&["INCR", k]), Resp::Int(3));
    }
    assert_nothing_pending(&mut c);
    assert_eq!(info_field(&mut w, "tracking_total_keys"), 0);
    assert_eq!(info_field(&mut w, "tracking_total_items"), 0);
}

#[test]
fn own_write_is_reported_after_its_reply_and_noloop_hides_it() {
    let s = server();
    let mut c = resp3_tracking(&s, &[]);
    let keys = keys_on_every_shard("own:", 9);
    for k in &keys {
        c.cmd(&["HSET", k, "f", "1"]);
        c.cmd(&["HGET", k, "f"]);
        // The reply first, then the push (Redis 7.0's pending invalidations).
        assert_eq!(c.cmd(&["HDEL", k, "f"]), Resp::Int(1));
        assert_eq!(invalidated(c.read()), Some(vec![k.clone()]));
    }
    let mut w = s.conn();
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "NOLOOP"]), Resp::ok());
    for k in &keys {
        c.cmd(&["GET", k]);
    }
    for k in &keys[..4] {
        assert_eq!(c.cmd(&["SET", k, "mine"]), Resp::ok());
    }
    for k in &keys[4..] {
        assert_eq!(w.cmd(&["SET", k, "theirs"]), Resp::ok());
    }
    let mut expected: Vec<String> = keys[4..].to_vec();
    expected.sort();
    assert_eq!(read_invalidated_keys(&mut c, keys.len() - 4), expected);
    assert_nothing_pending(&mut c);
}

#[test]
fn bcast_reports_every_key_under_the_prefixes() {
    let s = server();
    let mut c = resp3_tracking(&s, &["BCAST", "PREFIX", "a:", "PREFIX", "b:"]);
    let mut w = s.conn();
    assert_eq!(info_field(&mut w, "tracking_total_prefixes"), 2);
    assert_eq!(w.cmd(&["SET", "a:1", "x"]), Resp::ok());
    assert_eq!(invalidated(c.read()), Some(vec!["a:1".to_string()]));
    assert_eq!(w.cmd(&["SET", "c:1", "x"]), Resp::ok());
    assert_eq!(w.cmd(&["SET", "b:2", "x"]), Resp::ok());
    assert_eq!(invalidated(c.read()), Some(vec!["b:2".to_string()]));
    // One write of several keys of one shard under one prefix: one message.
    assert_eq!(w.cmd(&["MSET", "a:{t}3", "1", "a:{t}1", "2", "c:{t}", "3"]), Resp::ok());
    assert_eq!(invalidated(c.read()), Some(vec!["a:{t}1".to_string(), "a:{t}3".to_string()]));
    // Its own writes too, after their reply (no NOLOOP).
    assert_eq!(c.cmd(&["SET", "b:mine", "1"]), Resp::ok());
    assert_eq!(invalidated(c.read()), Some(vec!["b:mine".to_string()]));
    // Prefixes are added; a second client on the same prefix, with NOLOOP.
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c:"]), Resp::ok());
    let mut d = resp3_tracking(&s, &["BCAST", "PREFIX", "c:", "NOLOOP"]);
    assert_eq!(info_field(&mut w, "tracking_total_prefixes"), 3);
    assert_eq!(d.cmd(&["SET", "c:9", "1"]), Resp::ok());
    assert_eq!(invalidated(c.read()), Some(vec!["c:9".to_string()]));
    assert_nothing_pending(&mut d);
    // A BCAST client that leaves takes its prefixes with it.
    drop(d);
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "OFF"]), Resp::ok());
    assert!(wait_until(Duration::from_secs(5), || info_field(&mut w, "tracking_total_prefixes") == 0));
    assert!(wait_until(Duration::from_secs(5), || info_field(&mut w, "tracking_clients") == 0));
}

#[test]
fn optin_and_optout_follow_client_caching() {
    let s = server();
    let mut c = resp3_tracking(&s, &["OPTIN"]);
    let mut w = s.conn();
    c.cmd(&["GET", "in:1"]);
    assert_eq!(c.cmd(&["CLIENT", "CACHING", "YES"]), Resp::ok());
    c.cmd(&["GET", "in:2"]);
    // CACHING lasts one command.
    c.cmd(&["GET", "in:3"]);
    for k in ["in:1", "in:2", "in:3"] {
        assert_eq!(w.cmd(&["SET", k, "v"]), Resp::ok());
    }
    assert_eq!(invalidated(c.read()), Some(vec!["in:2".to_string()]));
    assert_nothing_pending(&mut c);

    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "OFF"]), Resp::ok());
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "OPTOUT"]), Resp::ok());
    assert_eq!(c.cmd(&["CLIENT", "CACHING", "NO"]), Resp::ok());
    c.cmd(&["GET", "out:1"]);
    c.cmd(&["GET", "out:2"]);
    for k in ["out:1", "out:2"] {
        assert_eq!(w.cmd(&["SET", k, "v"]), Resp::ok());
    }
    assert_eq!(invalidated(c.read()), Some(vec!["out:2".to_string()]));
    assert_nothing_pending(&mut c);
}

#[test]
fn flush_invalidates_everything_with_a_null() {
    let s = server();
    let mut c = resp3_tracking(&s, &[]);
    let mut b = resp3_tracking(&s, &["BCAST"]);
    let mut w = s.conn();
    for k in keys_on_every_shard("f:", 9) {
        c.cmd(&["GET", &k]);
    }
    assert_eq!(w.cmd(&["FLUSHALL"]), Resp::ok());
    // One null per tracking client, however many shards and databases.
    assert_eq!(invalidated(c.read()), None);
    assert_eq!(invalidated(b.read()), None);
    assert_nothing_pending(&mut c);
    assert_nothing_pending(&mut b);
    assert_eq!(info_field(&mut w, "tracking_total_keys"), 0);
    // The flushing client itself: reply first, then the null, byte for byte.
    c.cmd(&["GET", "f:x"]);
    c.send(&["FLUSHDB"]);
    assert_eq!(c.read_frame().unwrap(), b"+OK\r\n");
    assert_eq!(c.read_frame().unwrap(), b">2\r\n$10\r\ninvalidate\r\n_\r\n");
    assert_eq!(invalidated(b.read()), None);
}

#[test]
fn redirect_to_a_resp3_client() {
    let s = server();
    let mut r = s.conn();
    r.cmd(&["HELLO", "3"]);
    let rid = r.cmd(&["CLIENT", "ID"]).int();
    let mut c = s.conn(); // RESP2: it cannot get pushes itself
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &rid.to_string()]), Resp::ok());
    assert_eq!(c.cmd(&["CLIENT", "GETREDIR"]), Resp::Int(rid));
    let list = match c.cmd(&["CLIENT", "INFO"]) {
        Resp::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("{:?}", other),
    };
    assert!(list.contains(" flags=t ") && list.contains(&format!(" redir={} ", rid)), "{}", list);
    let mut w = s.conn();
    let keys = keys_on_every_shard("r:", 9);
    for k in &keys {
        c.cmd(&["GET", k]);
    }
    for k in &keys {
        w.cmd(&["SET", k, "1"]);
    }
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(read_invalidated_keys(&mut r, keys.len()), expected);
    assert_nothing_pending(&mut r);
    assert_nothing_pending(&mut c);
    // Two clients redirecting to the same target.
    let mut d = s.conn();
    assert_eq!(d.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &rid.to_string()]), Resp::ok());
    c.cmd(&["GET", "r:a"]);
    d.cmd(&["GET", "r:b"]);
    w.cmd(&["SET", "r:a", "1"]);
    w.cmd(&["SET", "r:b", "1"]);
    assert_eq!(read_invalidated_keys(&mut r, 2), vec!["r:a".to_string(), "r:b".to_string()]);
}

#[test]
fn redirect_target_that_goes_away_breaks_the_redirection() {
    let s = server();
    let (mut r, rid, mut c) = redirected_reader(&s, &["gone:1", "gone:2"]);
    assert_eq!(r.cmd(&["QUIT"]), Resp::ok());
    let (_, end) = r.read_until_close(Duration::from_secs(5));
    assert_eq!(end, common::End::Closed);
    let mut w = s.conn();
    for k in ["gone:1", "gone:2"] {
        w.cmd(&["SET", k, "1"]);
        // One push per invalidation that could not be delivered.
        assert_eq!(c.read(), Resp::Push(vec![Resp::bulk("tracking-redir-broken"), Resp::Int(rid)]));
    }
    let info = c.cmd(&["CLIENT", "TRACKINGINFO"]);
    let Resp::Map(fields) = info else { panic!("{:?}", info) };
    assert_eq!(fields[0].1, Resp::Set(vec![Resp::bulk("on"), Resp::bulk("broken_redirect")]));
    assert_eq!(fields[1].1, Resp::Int(rid));
    let Resp::Verbatim(_, line) = c.cmd(&["CLIENT", "INFO"]) else { panic!("CLIENT INFO") };
    assert!(String::from_utf8(line).unwrap().contains(" flags=tR "));
    // Redirecting elsewhere repairs it.
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]), Resp::ok());
    c.cmd(&["GET", "gone:1"]);
    w.cmd(&["SET", "gone:1", "2"]);
    assert_eq!(invalidated(c.read()), Some(vec!["gone:1".to_string()]));
}

#[test]
fn table_max_keys_evicts_with_invalidations() {
    let s = server();
    let mut c = resp3_tracking(&s, &[]);
    let mut w = s.conn();
    let keys = keys_on_every_shard("evict:", 30);
    for k in &keys {
        c.cmd(&["GET", k]);
    }
    assert_eq!(info_field(&mut w, "tracking_total_keys"), 30);
    assert_eq!(w.cmd(&["CONFIG", "SET", "tracking-table-max-keys", "5"]), Resp::ok());
    // Exactly the excess is evicted, each with an invalidation.
    let evicted = read_invalidated_keys(&mut c, 25);
    let mut unique = evicted.clone();
    unique.dedup();
    assert_eq!(unique.len(), 25);
    assert!(evicted.iter().all(|k| keys.contains(k)));
    assert!(wait_until(Duration::from_secs(5), || info_field(&mut w, "tracking_total_keys") == 5));
    std::thread::sleep(Duration::from_millis(300));
    assert_nothing_pending(&mut c);
    // The five left still work.
    for k in &keys {
        w.cmd(&["SET", k, "x"]);
    }
    assert_eq!(read_invalidated_keys(&mut c, 5).len(), 5);
    assert_nothing_pending(&mut c);
    assert_eq!(w.cmd(&["CONFIG", "SET", "tracking-table-max-keys", "1000000"]), Resp::ok());
}

/// The table and its limit are the server's, as Redis's one table: keys
/// read on every shard by two clients count once each in
/// `tracking_total_keys` and once per reader in `tracking_total_items`; a
/// lower `tracking-table-max-keys` evicts exactly the excess over the
/// shards, and before the tracking client's next reply (Redis's
/// "Regression test for #11715": the pushes, then QUEUED). On 76697c6 the
/// shards held asleep by CONFIG SET evicted at their next wake-up, after
/// the QUEUED.
#[test]
fn table_limit_is_the_servers_and_applies_before_the_next_reply() {
    let s = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"]);
    let mut w = s.conn();
    // As Redis's test: no cron eviction meanwhile.
    assert_eq!(w.cmd(&["DEBUG", "PAUSE-CRON", "1"]), Resp::ok());
    let keys = keys_on_every_shard("limit:", 9);
    let mut a = resp3_tracking(&s, &[]);
    let mut b = resp3_tracking(&s, &[]);
    for k in &keys {
        a.cmd(&["GET", k]);
    }
    for k in &keys[..3] {
        b.cmd(&["GET", k]);
    }
    assert_eq!(info_field(&mut w, "tracking_total_keys"), 9);
    assert_eq!(info_field(&mut w, "tracking_total_items"), 12);
    for round in 0..2 {
        assert_eq!(a.cmd(&["MULTI"]), Resp::ok());
        let max = if round == 0 { 4 } else { 1 };
        let before = if round == 0 { 9 } else { 4 };
        assert_eq!(w.cmd(&["CONFIG", "SET", "tracking-table-max-keys", &max.to_string()]), Resp::ok());
        a.send(&["PING"]);
        let evicted = read_invalidated_keys(&mut a, before - max);
        assert_eq!(a.read(), Resp::Simple("QUEUED".into()), "round {}", round);
        assert_eq!(a.cmd(&["EXEC"]), Resp::Array(vec![Resp::Simple("PONG".into())]));
        assert!(evicted.windows(2).all(|p| p[0] != p[1]) && evicted.iter().all(|k| keys.contains(k)), "{:?}", evicted);
        let b_evicted = evicted.iter().filter(|k| keys[..3].contains(k)).count();
        assert_eq!(read_invalidated_keys(&mut b, b_evicted).len(), b_evicted);
        assert_nothing_pending(&mut b);
        assert_eq!(info_field(&mut w, "tracking_total_keys"), max as i64);
    }
    // Redis's items: what is left of the 12 (key, reader) pairs.
    let items = info_field(&mut w, "tracking_total_items");
    assert!(items == 1 || items == 2, "{}", items);
    assert_eq!(w.cmd(&["DEBUG", "PAUSE-CRON", "0"]), Resp::ok());
    assert_nothing_pending(&mut a);
}

#[test]
fn tracking_state_is_cleaned_up_by_off_reset_kill_and_disconnect() {
    let s = server();
    let mut w = s.conn();
    let mut a = resp3_tracking(&s, &["BCAST", "PREFIX", "x"]);
    let mut b = resp3_tracking(&s, &[]);
    let c = resp3_tracking(&s, &["BCAST"]);
    let mut d = resp3_tracking(&s, &[]);
    let did = d.cmd(&["CLIENT", "ID"]).int();
    assert_eq!(info_field(&mut w, "tracking_clients"), 4);
    assert_eq!(info_field(&mut w, "tracking_total_prefixes"), 2);
    assert_eq!(a.cmd(&["RESET"]), Resp::Simple("RESET".into()));
    assert_eq!(a.cmd(&["CLIENT", "GETREDIR"]), Resp::Int(-1));
    assert_eq!(b.cmd(&["CLIENT", "TRACKING", "OFF"]), Resp::ok());
    drop(c);
    assert_eq!(w.cmd(&["CLIENT", "KILL", "ID", &did.to_string()]), Resp::Int(1));
    assert!(wait_until(Duration::from_secs(5), || info_field(&mut w, "tracking_clients") == 0));
    assert!(wait_until(Duration::from_secs(5), || info_field(&mut w, "tracking_total_prefixes") == 0));
    // Nobody tracks: writes tell nobody (the reset client is RESP2 again).
    b.cmd(&["GET", "k"]);
    w.cmd(&["SET", "k", "1"]);
    w.cmd(&["SET", "x1", "1"]);
    assert_nothing_pending(&mut a);
    assert_nothing_pending(&mut b);
}

#[test]
fn overlap_after_the_first_given_prefix_errors_then_enables_as_redis() {
    let s = server();
    let mut c = s.conn();
    c.send(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "b", "PREFIX", "bc"]);
    assert_eq!(c.read(), Resp::Error("ERR Prefix 'b' overlaps with another provided prefix 'bc'. Prefixes for a single client must not overlap.".into()));
    assert_eq!(c.read(), Resp::ok());
    let info = c.cmd(&["CLIENT", "TRACKINGINFO"]);
    assert_eq!(info.array()[5], Resp::Array(vec![Resp::bulk("a"), Resp::bulk("b"), Resp::bulk("bc")]));
}

/// A RESP2 redirect target gets invalidations as pub/sub messages on
/// `__redis__:invalidate` while it is subscribed to it.
#[test]
fn resp2_redirect_target_in_pubsub_mode_gets_messages() {
    let s = server();
    let mut r = s.conn();
    let rid = r.cmd(&["CLIENT", "ID"]).int();
    let sub = r.cmd(&["SUBSCRIBE", "__redis__:invalidate"]);
    assert_eq!(sub.array()[0], Resp::bulk("subscribe"));
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &rid.to_string()]), Resp::ok());
    let mut w = s.conn();
    c.cmd(&["GET", "ps:1"]);
    w.cmd(&["SET", "ps:1", "1"]);
    assert_eq!(r.read_frame().unwrap(), b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$4\r\nps:1\r\n");
    c.cmd(&["GET", "ps:2"]);
    w.cmd(&["FLUSHALL"]);
    assert_eq!(r.read_frame().unwrap(), b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
}

/// A write acknowledged to its client has its invalidations already on
/// their way: a command the tracking client sends after that sees the push
/// first (Redis writes the push before the writer's reply), whichever shards
/// hold the key, the writer and the tracking client, in both modes.
#[test]
fn push_comes_before_the_reply_to_a_later_command() {
    let s = server();
    let keys = keys_on_every_shard("order:", 12);
    let mut w = s.conn();
    for bcast in [false, true] {
        // In BCAST mode every client gets every key: one client then.
        let n = if bcast { 1 } else { 3 };
        let mut clients: Vec<Conn> = (0..n).map(|_| resp3_tracking(&s, if bcast { &["BCAST", "PREFIX", "order:"] } else { &[] })).collect();
        for (i, k) in keys.iter().enumerate() {
            let c = &mut clients[i % n];
            if !bcast {
                c.cmd(&["GET", k]);
            }
            assert_eq!(w.cmd(&["SET", k, "v"]), Resp::ok());
            c.send(&["PING"]);
            assert_eq!(invalidated(c.read()), Some(vec![k.clone()]), "bcast={}", bcast);
            assert_eq!(c.read(), Resp::Simple("PONG".into()));
        }
    }
}

/// Expired keys are invalidated as changed by nobody: a BCAST NOLOOP client
/// that wrote them itself is told (active and lazy expiry), while its own
/// plain writes stay hidden; CLIENT INFO shows the `tB` flags.
#[test]
fn expiry_reaches_a_bcast_noloop_client() {
    let s = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"]);
    let mut c = resp3_tracking(&s, &["BCAST", "NOLOOP"]);
    let Resp::Verbatim(_, line) = c.cmd(&["CLIENT", "INFO"]) else { panic!("CLIENT INFO") };
    assert!(String::from_utf8(line).unwrap().contains(" flags=tB "));
    // Active expiry (nobody reads the key).
    assert_eq!(c.cmd(&["SET", "exp:active", "v", "PX", "1"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", "exp:mine", "v"]), Resp::ok());
    assert_eq!(invalidated(c.read()), Some(vec!["exp:active".to_string()]));
    // Lazy expiry, found by the client's own read.
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", "exp:lazy", "v", "PX", "1"]), Resp::ok());
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(c.cmd(&["GET", "exp:lazy"]), Resp::Nil);
    assert_eq!(invalidated(c.read()), Some(vec!["exp:lazy".to_string()]));
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]), Resp::ok());
    assert_nothing_pending(&mut c);
}

/// A redirect target killed with CLIENT KILL is gone for tracking at once.
#[test]
fn killed_redirect_target_breaks_the_redirection() {
    let s = server();
    let (_r, rid, mut c) = redirected_reader(&s, &["killed:1"]);
    let mut w = s.conn();
    assert_eq!(w.cmd(&["CLIENT", "KILL", "ID", &rid.to_string()]), Resp::Int(1));
    w.cmd(&["SET", "killed:1", "1"]);
    assert_eq!(c.read(), Resp::Push(vec![Resp::bulk("tracking-redir-broken"), Resp::Int(rid)]));
    assert_nothing_pending(&mut c);
}

/// Redis's call(): a script that runs a read-only command makes its caller
/// track the keys the script declared (all of them, on any shard); a script
/// that only writes, and EVAL_RO that reads nothing, track nothing.
#[test]
fn scripts_track_their_declared_keys_when_they_read() {
    let s = server();
    let keys = keys_on_every_shard("sk", 6);
    let mut c = resp3_tracking(&s, &[]);
    let mut w = s.conn();
    let eval = |c: &mut Conn, cmd: &str, body: &str| {
        let mut args = vec![cmd, body, "6"];
        args.extend(keys.iter().map(|k| k.as_str()));
        c.cmd(&args)
    };
    // Only a write: nothing tracked.
    eval(&mut c, "EVAL", "redis.call('set', 'other', 'x')");
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "1"]), Resp::ok());
    }
    assert_nothing_pending(&mut c);
    // A read of an undeclared key: every declared key is tracked.
    eval(&mut c, "EVAL", "return redis.call('get', 'other')");
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "2"]), Resp::ok());
    }
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(read_invalidated_keys(&mut c, keys.len()), expected);
    assert_nothing_pending(&mut c);
    // EVAL_RO that runs PING only: nothing tracked; one that reads: all.
    eval(&mut c, "EVAL_RO", "return redis.call('ping')");
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "3"]), Resp::ok());
    }
    assert_nothing_pending(&mut c);
    eval(&mut c, "EVAL_RO", "return redis.call('get', KEYS[1])");
    for k in &keys {
        assert_eq!(w.cmd(&["SET", k, "4"]), Resp::ok());
    }
    assert_eq!(read_invalidated_keys(&mut c, keys.len()), expected);
    assert_nothing_pending(&mut c);
}

/// A write over keys of several shards (MSET, DEL; by the held path and
/// by hops) reaches a BCAST client as one message per prefix holding all
/// its keys, as Redis sends one per prefix per event-loop pass, not one
/// per shard.
#[test]
fn bcast_sends_one_message_per_prefix_for_a_write_over_shards() {
    let s = server();
    let mut c = resp3_tracking(&s, &["BCAST", "PREFIX", "p:", "PREFIX", "q:"]);
    let mut w = s.conn();
    let p = keys_on_every_shard("p:", 6);
    let q = keys_on_every_shard("q:", 6);
    let mut all_p = p.clone();
    all_p.sort();
    let mut all_q = q.clone();
    all_q.sort();
    for route in ["held", "hops"] {
        if s.name() == "ringkv" {
            assert_eq!(w.cmd(&["CONFIG", "SET", "cross-shard-route", route]), Resp::ok());
            // The loops read it at most every 100 ms.
            std::thread::sleep(Duration::from_millis(150));
        }
        let mut mset = vec!["MSET".to_string()];
        for k in p.iter().chain(&q) {
            mset.push(k.clone());
            mset.push("v".to_string());
        }
        assert_eq!(w.cmd(&mset), Resp::ok());
        let mut got = vec![invalidated(c.read()).unwrap(), invalidated(c.read()).unwrap()];
        got.sort();
        assert_eq!(got, vec![all_p.clone(), all_q.clone()], "{route}");
        assert_nothing_pending(&mut c);
        let mut del = vec!["DEL".to_string()];
        del.extend(p.iter().cloned());
        assert_eq!(w.cmd(&del), Resp::Int(6));
        assert_eq!(invalidated(c.read()), Some(all_p.clone()), "{route}");
        assert_nothing_pending(&mut c);
    }
}
