//! Hops (`network::hop`): a multi-shard command still pending on a shard
//! holds up no single-shard command on that shard's other keys, and one on
//! its own keys waits for it and sees all of it. The pending state is held
//! with the hidden `hop-part-delay` config (ringkv's own, like Redis's
//! `key-load-delay`): a part from another shard waits that long before it
//! runs. Against redis-server (no such config, nothing pending) the same
//! steps check the replies alone.

mod common;

use std::io::ErrorKind;

use common::*;

/// Microseconds each remote part waits: far longer than a GET takes.
const DELAY_US: &str = "3000000";

/// Two keys of each of the two shards: (operation's, unrelated).
fn keys() -> [(String, String); 2] {
    let mut out: [(Option<String>, Option<String>); 2] = Default::default();
    for i in 0.. {
        let k = format!("hk{i}");
        let s = key_shard(k.as_bytes(), 2);
        match &mut out[s] {
            (None, _) => out[s].0 = Some(k),
            (Some(_), None) => out[s].1 = Some(k),
            _ => {}
        }
        if out.iter().all(|(a, b)| a.is_some() && b.is_some()) {
            break;
        }
    }
    out.map(|(a, b)| (a.unwrap(), b.unwrap()))
}

/// Whether `c` has no reply to read yet.
fn no_reply_yet(c: &mut Conn) -> bool {
    c.stream.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = c.stream.peek(&mut b);
    c.stream.set_nonblocking(false).unwrap();
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock) && c.pending_len() == 0
}

fn check_pending_hop(extra: &[&str]) {
    let mut args = vec!["--shards", "2"];
    args.extend_from_slice(extra);
    let rk = Server::ringkv(&args);
    let ringkv = rk.name() == "ringkv";
    let mut setup = rk.conn();
    if ringkv {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", DELAY_US]), Resp::ok());
    }
    let [(a0, u0), (a1, u1)] = keys();
    setup.cmd(&["SET", &u0, "x0"]);
    setup.cmd(&["SET", &u1, "x1"]);
    let mut op = rk.conn();
    let mut other = rk.conn();
    // (what the operation sends first, what it sends last, its reply, the
    // value it leaves); the WATCHed EXEC and MSETNX run in two rounds.
    type Step<'a> = (Vec<Vec<&'a str>>, Vec<&'a str>, &'a [u8], Option<&'a str>);
    let exec = |v| vec![vec!["MULTI"], vec!["SET", a0.as_str(), v], vec!["SET", a1.as_str(), v]];
    let steps: [Step<'_>; 6] = [
        (vec![], vec!["MSET", &a0, "1", &a1, "1"], b"+OK\r\n", Some("1")),
        (exec("2"), vec!["EXEC"], b"*2\r\n+OK\r\n+OK\r\n", Some("2")),
        (vec![], vec!["DEL", &a0, &a1], b":2\r\n", None),
        (vec![], vec!["MSETNX", &a0, "3", &a1, "3"], b":1\r\n", Some("3")),
        ([vec![vec!["WATCH", &a0, &a1]], exec("4")].concat(), vec!["EXEC"], b"*2\r\n+OK\r\n+OK\r\n", Some("4")),
        // RENAME across the two shards: the source's shard takes the value
        // in round 1, the destination's writes it in round 2.
        (vec![], vec!["RENAME", &a0, &a1], b"+OK\r\n", None),
    ];
    for (before, cmd, reply, value) in steps {
        for c in &before {
            op.cmd(c);
        }
        op.send(&cmd);
        // Give the server time to read it (its remote part then waits 3 s):
        // under a loaded CI machine the other connection's reads below could
        // otherwise reach the server before this command, and see its keys
        // untouched for that reason alone (seen once in .ci/run at load ~10).
        std::thread::sleep(std::time::Duration::from_millis(100));
        // The other keys of both shards are answered at once...
        assert_eq!(other.cmd(&["GET", &u0]).opt_bytes(), Some(b"x0".to_vec()));
        assert_eq!(other.cmd(&["GET", &u1]).opt_bytes(), Some(b"x1".to_vec()));
        assert_eq!(other.cmd(&["SET", &u1, "x1"]), Resp::ok());
        // ...while the operation is still pending (its remote part waits).
        if ringkv {
            assert!(no_reply_yet(&mut op), "{cmd:?} answered before its delayed part ran");
        }
        // Its own keys wait for it, and then show all of it.
        for k in [&a1, &a0] {
            let want = if cmd[0] == "RENAME" && k == &a1 { Some("4") } else { value };
            assert_eq!(other.cmd(&["GET", k]).opt_bytes(), want.map(|v| v.as_bytes().to_vec()), "{cmd:?}");
        }
        assert_eq!(op.read_frame().unwrap(), reply, "{cmd:?}");
    }
}

#[test]
fn pending_hop_serves_other_keys() {
    check_pending_hop(&[]);
}

/// With the AOF on the operation's coordinator carries its replay unit and
/// runs its own part last: still nothing else waits.
#[test]
fn pending_hop_serves_other_keys_with_aof() {
    check_pending_hop(&["--appendonly", "yes"]);
}

/// The two-round hops over two shards, from connections of either shard
/// (the coordinator holds the source or the destination: over two shards
/// the other shard runs both its rounds in one part, `network::rounds`,
/// "The chain"), each outcome of MSETNX, RENAME, RENAMENX and SMOVE, with
/// every part delayed (so every one goes by hops), against the replies
/// Redis gives.
fn check_two_key_hops(extra: &[&str]) {
    let mut args = vec!["--shards", "2"];
    args.extend_from_slice(extra);
    let rk = Server::ringkv(&args);
    let mut setup = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "1000"]), Resp::ok());
    }
    let [(a, _), (b, _)] = keys();
    let (a, b) = (a.as_str(), b.as_str());
    let steps: &[(&[&str], &[u8])] = &[
        (&["SET", a, "va"], b"+OK\r\n"),
        (&["RENAME", a, b], b"+OK\r\n"),
        (&["MGET", a, b], b"*2\r\n$-1\r\n$2\r\nva\r\n"),
        (&["RENAME", a, b], b"-ERR no such key\r\n"),
        (&["RENAME", b, a], b"+OK\r\n"),
        (&["SET", b, "vb"], b"+OK\r\n"),
        (&["RENAMENX", a, b], b":0\r\n"),
        (&["RENAMENX", b, a], b":0\r\n"),
        (&["MGET", a, b], b"*2\r\n$2\r\nva\r\n$2\r\nvb\r\n"),
        (&["DEL", b], b":1\r\n"),
        (&["PEXPIRE", a, "100000"], b":1\r\n"),
        (&["RENAMENX", a, b], b":1\r\n"),
        (&["MGET", a, b], b"*2\r\n$-1\r\n$2\r\nva\r\n"),
        (&["PTTL", b], b""),
        (&["RENAMENX", a, b], b"-ERR no such key\r\n"),
        (&["MSETNX", a, "1", b, "2"], b":0\r\n"),
        (&["MSETNX", b, "1", a, "2"], b":0\r\n"),
        (&["MGET", a, b], b"*2\r\n$-1\r\n$2\r\nva\r\n"),
        (&["DEL", b], b":1\r\n"),
        (&["MSETNX", a, "1", b, "2"], b":1\r\n"),
        (&["MSETNX", a, "3", b, "4"], b":0\r\n"),
        (&["MGET", a, b], b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"),
        (&["DEL", a, b], b":2\r\n"),
        (&["SADD", a, "m", "n"], b":2\r\n"),
        (&["SMOVE", a, b, "m"], b":1\r\n"),
        (&["SMOVE", a, b, "zz"], b":0\r\n"),
        (&["SMOVE", b, a, "m"], b":1\r\n"),
        (&["SET", b, "str"], b"+OK\r\n"),
        (&["SMOVE", a, b, "m"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["SMOVE", b, a, "m"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["SMOVE", a, b, "zz"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["DEL", b], b":1\r\n"),
        (&["SMOVE", a, b, "n"], b":1\r\n"),
        (&["SMOVE", a, b, "m"], b":1\r\n"),
        (&["MGET", a, b], b"*2\r\n$-1\r\n$-1\r\n"),
        (&["SCARD", b], b":2\r\n"),
        (&["SMOVE", a, b, "m"], b":0\r\n"),
        (&["DEL", b], b":1\r\n"),
        // COPY, LMOVE and RPOPLPUSH (`network::rounds_move`).
        (&["SET", a, "va"], b"+OK\r\n"),
        (&["COPY", a, b], b":1\r\n"),
        (&["COPY", a, b], b":0\r\n"),
        (&["COPY", b, a, "REPLACE"], b":1\r\n"),
        (&["DEL", a], b":1\r\n"),
        (&["COPY", a, b], b":0\r\n"),
        (&["PEXPIRE", b, "100000"], b":1\r\n"),
        (&["COPY", b, a], b":1\r\n"),
        (&["PTTL", a], b""),
        (&["MGET", a, b], b"*2\r\n$2\r\nva\r\n$2\r\nva\r\n"),
        (&["DEL", a, b], b":2\r\n"),
        (&["RPUSH", a, "1", "2", "3"], b":3\r\n"),
        (&["LMOVE", a, b, "LEFT", "RIGHT"], b"$1\r\n1\r\n"),
        (&["RPOPLPUSH", a, b], b"$1\r\n3\r\n"),
        (&["LMOVE", b, a, "RIGHT", "LEFT"], b"$1\r\n1\r\n"),
        (&["LRANGE", a, "0", "-1"], b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"),
        (&["LRANGE", b, "0", "-1"], b"*1\r\n$1\r\n3\r\n"),
        (&["SET", b, "s"], b"+OK\r\n"),
        (&["LMOVE", a, b, "LEFT", "LEFT"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["RPOPLPUSH", b, a], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["LLEN", a], b":2\r\n"),
        (&["DEL", b], b":1\r\n"),
        (&["RPOPLPUSH", b, a], b"$-1\r\n"),
        (&["LMOVE", a, b, "LEFT", "LEFT"], b"$1\r\n1\r\n"),
        (&["LMOVE", a, b, "LEFT", "LEFT"], b"$1\r\n2\r\n"),
        (&["EXISTS", a], b":0\r\n"),
        (&["COPY", b, a], b":1\r\n"),
        (&["LMOVE", a, b, "RIGHT", "RIGHT"], b"$1\r\n1\r\n"),
        (&["LRANGE", b, "0", "-1"], b"*3\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n1\r\n"),
        (&["LRANGE", a, "0", "-1"], b"*1\r\n$1\r\n2\r\n"),
        (&["COPY", a, b], b":0\r\n"),
        (&["SADD", b, "m"], b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["DEL", a, b], b":2\r\n"),
    ];
    // Connections land on either shard: a few of them, each the whole script.
    for round in 0..6 {
        let mut c = rk.conn();
        for (cmd, want) in steps {
            let got = c.cmd_raw(cmd);
            if cmd[0] == "PTTL" {
                // The TTL went along with the value.
                let ttl = decode(&got).int();
                assert!(ttl > 90_000 && ttl <= 100_000, "round {round}: {cmd:?} -> {ttl}");
            } else {
                assert_eq!(escape(&got, 200), escape(want, 200), "round {round}: {cmd:?}");
            }
        }
    }
    assert_eq!(setup.cmd(&["DBSIZE"]).int(), 0);
}

#[test]
fn two_key_hops_from_either_shard() {
    check_two_key_hops(&[]);
}

#[test]
fn two_key_hops_from_either_shard_with_aof() {
    check_two_key_hops(&["--appendonly", "yes"]);
}

/// A watched EXEC over two shards whose client's connection fails (a reset)
/// before the decision (its other shard's round-1 part is delayed) is still
/// decided and applied, as Redis runs an EXEC it read before it saw the
/// peer go.
#[test]
fn watched_exec_of_a_reset_connection_is_applied() {
    let mut rk = Server::ringkv(&["--shards", "2"]);
    let mut other = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(other.cmd(&["CONFIG", "SET", "hop-part-delay", "200000"]), Resp::ok());
    }
    let [(a0, _), (a1, _)] = keys();
    for _ in 0..2 {
        let mut op = rk.conn();
        assert_eq!(op.cmd(&["WATCH", &a0, &a1]), Resp::ok());
        op.cmd(&["MULTI"]);
        op.cmd(&["SET", &a0, "v"]);
        op.cmd(&["INCR", &a1]);
        op.send(&["EXEC"]);
        // Read by the server (its other shard's part waits 200 ms), then a
        // reset: the connection fails under the pending EXEC (a clean
        // close, EOF, already let it finish).
        std::thread::sleep(std::time::Duration::from_millis(50));
        reset_on_close(&op.stream);
        drop(op);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = (other.cmd(&["GET", &a0]).opt_bytes(), other.cmd(&["GET", &a1]).opt_bytes());
            if got == (Some(b"v".to_vec()), Some(b"1".to_vec())) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the EXEC was not applied: {got:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(other.cmd(&["DEL", &a0, &a1]).int(), 2);
    }
    rk.assert_serving();
}

/// Makes closing `s` send a reset (SO_LINGER with a zero timeout).
fn reset_on_close(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket descriptor and a `linger` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_LINGER");
}

/// RENAME, SMOVE, LMOVE and RPOPLPUSH moving a value, a member and list
/// elements back and forth between two shards (two-round hops, chained:
/// each shard applies its half at its own time) are never seen half done by
/// multi-key readers: an EXEC over both keys and an MGET always find the
/// value under exactly one name, the member in exactly one set and the two
/// elements in the two lists; a COPY's destination is there when it replies.
#[test]
fn moves_between_two_shards_are_never_seen_half_done() {
    let rk = Server::ringkv(&["--shards", "2"]);
    let [(a, sa), (b, sb)] = keys();
    // Lists and COPY's keys, one of each pair on each shard.
    let (la, lb) = (format!("{{{a}}}:l"), format!("{{{b}}}:l"));
    let mut setup = rk.conn();
    assert_eq!(setup.cmd(&["SET", &a, "v"]), Resp::ok());
    assert_eq!(setup.cmd(&["SADD", &sa, "m"]).int(), 1);
    assert_eq!(setup.cmd(&["RPUSH", &la, "e1", "e2"]).int(), 2);
    let listed = std::sync::atomic::AtomicUsize::new(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let renamed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..3 {
            let mut c = rk.conn();
            let (a, b, sa, sb, renamed, la, lb, listed) = (&a, &b, &sa, &sb, &renamed, &la, &lb, &listed);
            s.spawn(move || {
                let mut moves = 0;
                while std::time::Instant::now() < deadline {
                    // Whichever way the value is now (another mover may
                    // have moved it first: then "no such key" / 0).
                    let (from, to) = if (moves + t) % 2 == 0 { (a, b) } else { (b, a) };
                    let r = c.cmd_raw(&["RENAME", from, to]);
                    assert!(r == b"+OK\r\n" || r == b"-ERR no such key\r\n", "{}", escape(&r, 100));
                    if r == b"+OK\r\n" {
                        renamed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let (from, to) = if (moves + t) % 2 == 0 { (sa, sb) } else { (sb, sa) };
                    let r = c.cmd_raw(&["SMOVE", from, to, "m"]);
                    assert!(r == b":1\r\n" || r == b":0\r\n", "{}", escape(&r, 100));
                    let (from, to) = if (moves + t) % 2 == 0 { (la, lb) } else { (lb, la) };
                    let r = if moves % 3 == 0 { c.cmd(&["RPOPLPUSH", from, to]) } else { c.cmd(&["LMOVE", from, to, "LEFT", "RIGHT"]) };
                    if r.opt_bytes().is_some() {
                        listed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // This client's own copy is there once COPY replies.
                    let (ca, cb) = if t % 2 == 0 { (a, b) } else { (b, a) };
                    let (ca, cb) = (format!("{{{ca}}}:c{t}"), format!("{{{cb}}}:c{t}"));
                    c.cmd(&["SET", &ca, &moves.to_string()]);
                    assert_eq!(c.cmd(&["COPY", &ca, &cb, "REPLACE"]).int(), 1);
                    assert_eq!(c.cmd(&["GET", &cb]).opt_bytes(), Some(moves.to_string().into_bytes()));
                    moves += 1;
                }
            });
        }
        for _ in 0..2 {
            let mut c = rk.conn();
            let (a, b, sa, sb, la, lb) = (&a, &b, &sa, &sb, &la, &lb);
            s.spawn(move || {
                while std::time::Instant::now() < deadline {
                    c.cmd(&["MULTI"]);
                    for cmd in [
                        vec!["EXISTS", a.as_str()],
                        vec!["EXISTS", b],
                        vec!["SISMEMBER", sa, "m"],
                        vec!["SISMEMBER", sb, "m"],
                        vec!["LLEN", la],
                        vec!["LLEN", lb],
                    ] {
                        c.cmd(&cmd);
                    }
                    let r = c.cmd(&["EXEC"]);
                    let n: Vec<i64> = r.array().iter().map(|x| x.int()).collect();
                    assert_eq!((n[0] + n[1], n[2] + n[3], n[4] + n[5]), (1, 1, 2), "EXEC saw a move half done: {n:?}");
                    let r = c.cmd(&["MGET", a, b]);
                    let found = r.array().iter().filter(|x| x.opt_bytes().is_some()).count();
                    assert_eq!(found, 1, "MGET saw a RENAME half done: {r:?}");
                }
            });
        }
    });
    let r = setup.cmd(&["MGET", &a, &b]);
    assert_eq!(r.array().iter().filter(|x| x.opt_bytes().is_some()).count(), 1);
    assert!(renamed.into_inner() >= 20, "too few moves to tell");
    assert!(listed.into_inner() >= 20, "too few list moves to tell");
    let r = setup.cmd(&["MULTI"]);
    assert_eq!(r, Resp::ok());
    setup.cmd(&["LLEN", &la]);
    setup.cmd(&["LLEN", &lb]);
    let n: Vec<i64> = setup.cmd(&["EXEC"]).array().iter().map(|x| x.int()).collect();
    assert_eq!(n[0] + n[1], 2);
}

/// Waits until `c`'s server reports `n` blocked clients.
fn wait_blocked(c: &mut Conn, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&c.cmd(&["INFO", "clients"]).opt_bytes().unwrap_or_default()).contains(&want) {
        assert!(std::time::Instant::now() < deadline, "never {want:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The (event, key) pairs of the next `n` keyspace-event messages on `sub`.
fn events(sub: &mut Conn, n: usize) -> Vec<(String, String)> {
    messages(sub, n, |m| {
        let channel = text(&m[2]);
        (channel.rsplit(':').next().unwrap().to_string(), text(&m[3]))
    })
}

/// `pair` of each of the next `n` messages on `sub`.
fn messages(sub: &mut Conn, n: usize, pair: impl Fn(&[Resp]) -> (String, String)) -> Vec<(String, String)> {
    (0..n).map(|_| pair(sub.read().array())).collect()
}

fn text(r: &Resp) -> String {
    String::from_utf8(r.opt_bytes().unwrap()).unwrap()
}

/// Sets the path ringkv's commands over several shards take: `hops` (each
/// remote part delayed 1 ms: a test's hops stay hops) or `held`
/// (`cross-shard-route`, `network::route`). Nothing against redis-server.
fn route(rk: &Server, c: &mut Conn, path: &str) {
    if rk.name() != "ringkv" {
        return;
    }
    match path {
        "hops" => assert_eq!(c.cmd(&["CONFIG", "SET", "hop-part-delay", "1000"]), Resp::ok()),
        _ => assert_eq!(c.cmd(&["CONFIG", "SET", "cross-shard-route", path]), Resp::ok()),
    }
    // The loops read these at most every 100 ms.
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// LMOVE and RPOPLPUSH over two shards by hops (`network::rounds_move`)
/// into a list another client blocks on serve it (BLPOP, and a BLMOVE that
/// moves the element on), and each move's keyspace events come in Redis's
/// order (the destination's push, the source's pop, its `del` when
/// emptied; COPY's `copy_to`), and a WATCH of either key sees the move,
/// from connections on either shard.
#[test]
fn list_moves_serve_blocked_clients_and_notify_in_order() {
    check_list_moves("hops");
}

/// The same on the held path (`network::held`): the events of the held
/// shards reach the subscriber in the command's order (`messaging::held_order`).
#[test]
fn list_moves_serve_blocked_clients_and_notify_in_order_when_held() {
    check_list_moves("held");
}

/// The same under `cross-shard-route measured` (the rule `auto` had before
/// moves19: two-round commands held unless holds have been slow lately).
#[test]
fn list_moves_serve_blocked_clients_and_notify_in_order_when_measured() {
    check_list_moves("measured");
}

/// A 2-shard server on `path` (`route`) with every keyspace event on, a
/// connection, and a subscriber to every keyevent channel.
fn event_server(path: &str) -> (Server, Conn, Conn) {
    let rk = Server::ringkv(&["--shards", "2"]);
    let mut setup = rk.conn();
    route(&rk, &mut setup, path);
    assert_eq!(setup.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]), Resp::ok());
    let mut sub = rk.conn();
    sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    (rk, setup, sub)
}

fn check_list_moves(path: &str) {
    let (rk, mut setup, mut sub) = event_server(path);
    let [(a, a2), (b, _)] = keys();
    let ev = |list: &[(&str, &str)]| list.iter().map(|(e, k)| (e.to_string(), k.to_string())).collect::<Vec<_>>();
    for round in 0..4 {
        let mut c = rk.conn();
        let mut w = rk.conn();
        w.send(&["BLPOP", &b, "5"]);
        wait_blocked(&mut setup, 1);
        assert_eq!(c.cmd(&["RPUSH", &a, "x"]).int(), 1);
        assert_eq!(events(&mut sub, 1), ev(&[("rpush", &a)]));
        assert_eq!(c.cmd_raw(&["LMOVE", &a, &b, "LEFT", "RIGHT"]), b"$1\r\nx\r\n", "round {round}");
        assert_eq!(w.read(), Resp::Array(vec![Resp::bulk(&b), Resp::bulk("x")]), "round {round}");
        // The push, the source's pop and deletion, then the waiter's pop.
        assert_eq!(events(&mut sub, 5), ev(&[("rpush", &b), ("lpop", &a), ("del", &a), ("lpop", &b), ("del", &b)]), "round {round}");
        assert_eq!(c.cmd(&["EXISTS", &a, &b]).int(), 0);
        // A BLMOVE served from the hop moves the element on.
        w.send(&["BLMOVE", &b, &a2, "LEFT", "LEFT", "5"]);
        wait_blocked(&mut setup, 1);
        assert_eq!(c.cmd(&["RPUSH", &a, "y", "z"]).int(), 2);
        assert_eq!(events(&mut sub, 1), ev(&[("rpush", &a)]));
        assert_eq!(c.cmd(&["RPOPLPUSH", &a, &b]).opt_bytes(), Some(b"z".to_vec()));
        assert_eq!(w.read().opt_bytes(), Some(b"z".to_vec()), "round {round}");
        // The served BLMOVE's push comes from the shard of its own
        // destination: in any place after the RPOPLPUSH's events, which
        // come first, in Redis's order, then the served pop's.
        let mut got = events(&mut sub, 5);
        let pushed = got.iter().position(|e| *e == ("lpush".to_string(), a2.clone()));
        assert!(pushed.is_some_and(|p| p >= 2), "round {round}: {got:?}");
        got.remove(pushed.unwrap());
        assert_eq!(got, ev(&[("lpush", &b), ("rpop", &a), ("lpop", &b), ("del", &b)]), "round {round}");
        assert_eq!(c.cmd(&["LRANGE", &a2, "0", "-1"]), Resp::Array(vec![Resp::bulk("z")]));
        // COPY's event, from the destination; a WATCH of the destination
        // (COPY) and of the source (LMOVE) sees the move.
        let mut x = rk.conn();
        x.cmd(&["WATCH", &b]);
        assert_eq!(c.cmd(&["COPY", &a, &b]).int(), 1);
        assert_eq!(events(&mut sub, 1), ev(&[("copy_to", &b)]), "round {round}");
        x.cmd(&["MULTI"]);
        x.cmd(&["PING"]);
        assert_eq!(x.cmd_raw(&["EXEC"]), b"*-1\r\n", "round {round}");
        x.cmd(&["WATCH", &a]);
        assert_eq!(c.cmd(&["LMOVE", &a, &b, "LEFT", "LEFT"]).opt_bytes(), Some(b"y".to_vec()));
        assert_eq!(events(&mut sub, 3), ev(&[("lpush", &b), ("lpop", &a), ("del", &a)]), "round {round}");
        x.cmd(&["MULTI"]);
        x.cmd(&["PING"]);
        assert_eq!(x.cmd_raw(&["EXEC"]), b"*-1\r\n", "round {round}");
        assert_eq!(c.cmd(&["LRANGE", &b, "0", "-1"]), Resp::Array(vec![Resp::bulk("y"), Resp::bulk("y")]));
        assert_eq!(c.cmd(&["DEL", &a, &b, &a2]).int(), 2);
        assert_eq!(events(&mut sub, 2).len(), 2);
    }
}

/// An LMOVE whose source's TTL passes between its rounds (the other
/// shard's part delayed past it) moves as decided: the element the source's
/// round-1 look saw goes (or, when the source's look runs on the other
/// shard after the TTL, nothing: the null of a source that expired first),
/// and the server lives (the pop in round 2 does not expire the marked key).
#[test]
fn a_list_source_expiring_between_the_rounds_moves_as_decided() {
    let mut rk = Server::ringkv(&["--shards", "2", "--enable-debug-command", "yes"]);
    let mut setup = rk.conn();
    // Only the lookups expire keys: the key is there, expired, at round 2.
    assert_eq!(setup.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Resp::ok());
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "100000"]), Resp::ok());
    }
    let [(a, _), (b, _)] = keys();
    for round in 0..4 {
        let mut c = rk.conn();
        assert_eq!(c.cmd(&["RPUSH", &a, "e1", "e2"]).int(), 2);
        assert_eq!(c.cmd(&["PEXPIRE", &a, "30"]).int(), 1);
        let moved = c.cmd(&["LMOVE", &a, &b, "LEFT", "RIGHT"]).opt_bytes();
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(c.cmd(&["EXISTS", &a]).int(), 0, "round {round}");
        match moved {
            Some(v) => {
                assert_eq!(v, b"e1", "round {round}");
                assert_eq!(c.cmd(&["LRANGE", &b, "0", "-1"]), Resp::Array(vec![Resp::bulk("e1")]), "round {round}");
                assert_eq!(c.cmd(&["DEL", &b]).int(), 1);
            }
            None => assert!(rk.name() == "ringkv" && c.cmd(&["EXISTS", &b]).int() == 0, "round {round}"),
        }
    }
    rk.assert_serving();
}

/// SMOVE's halves run as decided: a source whose TTL ends between the
/// rounds loses the member and stays for its own expiry (counted, with its
/// DEL), as after Redis's SMOVE; it used to be deleted silently by round 2's
/// lookup (no `expired_keys`, no DEL in the write stream).
#[test]
fn a_set_source_expiring_between_the_rounds_moves_as_decided() {
    let mut rk = Server::ringkv(&["--shards", "2", "--enable-debug-command", "yes"]);
    let mut setup = rk.conn();
    assert_eq!(setup.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Resp::ok());
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "100000"]), Resp::ok());
    }
    let expired_keys = |c: &mut Conn| -> i64 {
        let info = String::from_utf8(c.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
        info.lines().find_map(|l| l.strip_prefix("expired_keys:")).unwrap().trim().parse().unwrap()
    };
    let [(a, _), (b, _)] = keys();
    for (round, (src, dst)) in [(&a, &b), (&b, &a), (&a, &b), (&b, &a)].into_iter().enumerate() {
        let mut c = rk.conn();
        assert_eq!(c.cmd(&["SADD", src, "m1", "m2"]).int(), 2);
        assert_eq!(c.cmd(&["PEXPIRE", src, "30"]).int(), 1);
        let before = expired_keys(&mut c);
        let moved = c.cmd(&["SMOVE", src, dst, "m1"]).int();
        std::thread::sleep(std::time::Duration::from_millis(60));
        if moved == 1 {
            assert_eq!(c.cmd(&["SMEMBERS", dst]), Resp::Array(vec![Resp::bulk("m1")]), "round {round}");
            assert_eq!(c.cmd(&["DEL", dst]).int(), 1);
        } else {
            // The source's own look was the delayed part: it found the key
            // expired (and expired it, counted), so nothing moved.
            assert!(rk.name() == "ringkv" && c.cmd(&["EXISTS", dst]).int() == 0, "round {round}");
        }
        assert_eq!(c.cmd(&["EXISTS", src]).int(), 0, "round {round}");
        assert_eq!(expired_keys(&mut c), before + 1, "round {round}: the source expires once, counted, after the move");
    }
    rk.assert_serving();
}

/// Fills `src` (a list or a set of m1, m2) with a TTL of `pexpire` ms and
/// sends the move of m1 to `dst` (LMOVE or SMOVE), not reading its reply.
fn send_move(c: &mut Conn, list: bool, src: &str, dst: &str, pexpire: &str) {
    let fill = if list { "RPUSH" } else { "SADD" };
    assert_eq!(c.cmd(&[fill, src, "m1", "m2"]).int(), 2);
    assert_eq!(c.cmd(&["PEXPIRE", src, pexpire]).int(), 1);
    if list {
        c.send(&["LMOVE", src, dst, "LEFT", "RIGHT"]);
    } else {
        c.send(&["SMOVE", src, dst, "m1"]);
    }
}

/// DEBUG LOADAOF gives back the dataset DEBUG DIGEST saw before it.
fn assert_aof_loads_back(rk: &Server, c: &mut Conn, round: usize) {
    let digest = c.cmd(&["DEBUG", "DIGEST"]);
    assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok(), "{}", rk.logs());
    assert_eq!(c.cmd(&["DEBUG", "DIGEST"]), digest, "round {round}: the AOF loads back another dataset");
}

/// Active expiry spares the keys a pending two-round hop marked: an SMOVE's
/// or LMOVE's source whose TTL ends between the rounds is not deleted by
/// the expiry cycle before round 2 moves its member (the DEL would go into
/// the AOF ahead of the move, whose replay would then move nothing). The
/// AOF loaded back gives the same dataset after every move.
#[test]
fn active_expiry_spares_a_pending_hops_keys() {
    let mut rk = Server::ringkv(&["--shards", "2", "--appendonly", "yes", "--enable-debug-command", "yes", "--hz", "100"]);
    let mut setup = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "100000"]), Resp::ok());
    }
    let [(a, _), (b, _)] = keys();
    for (round, (src, dst)) in [(&a, &b), (&b, &a)].into_iter().cycle().take(8).enumerate() {
        let mut c = rk.conn();
        let list = round >= 4;
        send_move(&mut c, list, src, dst, "30");
        c.read();
        // Round 2 has run (the delayed part: 100 ms), and active expiry
        // (hz 100) has had its chances meanwhile and after.
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(c.cmd(&["EXISTS", src]).int(), 0, "round {round}");
        assert_aof_loads_back(&rk, &mut c, round);
        c.cmd(&["DEL", dst]);
    }
    rk.assert_serving();
}

/// Eviction spares the keys a pending two-round hop marked, as active
/// expiry does: an SMOVE's or LMOVE's source evicted between the rounds
/// (before a command of another client of its shard, or by the eviction
/// time proc) would put its DEL in the AOF ahead of the move, whose replay
/// would then move nothing (or the move would find no source). Under
/// `volatile-ttl` the source, the only key with a TTL, is the one victim;
/// other clients' writes take used memory over the limit while the move is
/// pending (its other shard's part waits 100 ms). The move answers as
/// decided, the source goes after it, and the AOF loaded back gives the
/// same dataset after every move.
#[test]
fn eviction_spares_a_pending_hops_keys() {
    let mut rk = Server::ringkv(&["--shards", "2", "--appendonly", "yes", "--enable-debug-command", "yes", "--maxmemory-policy", "volatile-ttl"]);
    let mut setup = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "100000"]), Resp::ok());
    }
    let [(a, _), (b, _)] = keys();
    // Clients of both shards (connections are spread over them).
    let mut pokers: Vec<Conn> = (0..4).map(|_| rk.conn()).collect();
    let big = "x".repeat(50_000);
    for (round, (src, dst)) in [(&a, &b), (&b, &a)].into_iter().cycle().take(8).enumerate() {
        let mut c = rk.conn();
        let list = round >= 4;
        let info = String::from_utf8(setup.cmd(&["INFO", "memory"]).opt_bytes().unwrap()).unwrap();
        let used: u64 = info.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().parse().unwrap();
        assert_eq!(setup.cmd(&["CONFIG", "SET", "maxmemory", &(used + 1_000_000).to_string()]), Resp::ok());
        send_move(&mut c, list, src, dst, "1000000");
        std::thread::sleep(std::time::Duration::from_millis(10));
        // 2 MB of values without a TTL: over the limit while the move is
        // pending, every command evicts first (those may be refused -OOM
        // once nothing is left to evict).
        for i in 0..10 {
            for (n, p) in pokers.iter_mut().enumerate() {
                p.cmd(&["SET", &format!("big:{n}:{i}"), &big]);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let reply = c.read();
        if list {
            assert_eq!(reply.opt_bytes(), Some(b"m1".to_vec()), "round {round}");
        } else {
            assert_eq!(reply.int(), 1, "round {round}");
        }
        // The source goes after the move: evicted before the next commands.
        for p in &mut pokers {
            p.cmd(&["PING"]);
        }
        assert_eq!(c.cmd(&["EXISTS", src]).int(), 0, "round {round}");
        assert_eq!(setup.cmd(&["CONFIG", "SET", "maxmemory", "0"]), Resp::ok());
        assert_aof_loads_back(&rk, &mut c, round);
        assert_eq!(c.cmd(&["FLUSHALL"]), Resp::ok());
    }
    rk.assert_serving();
}

/// A watched EXEC over two shards, from connections of either shard, every
/// remote part delayed (so each goes by hops: over two shards by the chain,
/// the other shard's look, decision and commands in one part,
/// `network::rounds`): it commits with its replies in queue order across
/// the shards, and aborts (null, nothing written) when a watched key of
/// either shard was written by another client or expired since WATCH.
fn check_watched_exec_chain(extra: &[&str]) {
    let mut args = vec!["--shards", "2"];
    args.extend_from_slice(extra);
    let mut rk = Server::ringkv(&args);
    let mut other = rk.conn();
    if rk.name() == "ringkv" {
        assert_eq!(other.cmd(&["CONFIG", "SET", "hop-part-delay", "1000"]), Resp::ok());
    }
    let [(a0, _), (a1, _)] = keys();
    let (a0, a1) = (a0.as_str(), a1.as_str());
    let transaction = |c: &mut Conn| -> Vec<u8> {
        assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
        for cmd in [&["SET", a0, "x"][..], &["INCR", a1], &["GET", a0], &["INCR", a1]] {
            assert_eq!(c.cmd(cmd), Resp::Simple("QUEUED".into()));
        }
        c.cmd_raw(&["EXEC"])
    };
    for round in 0..4 {
        let mut c = rk.conn();
        assert_eq!(other.cmd(&["SET", a1, "10"]), Resp::ok());
        // Commits: each shard's commands, their replies in queue order.
        assert_eq!(c.cmd(&["WATCH", a0, a1]), Resp::ok());
        assert_eq!(escape(&transaction(&mut c), 100), escape(b"*4\r\n+OK\r\n:11\r\n$1\r\nx\r\n:12\r\n", 100), "round {round}");
        // Aborts: a watched key of either shard written by another client.
        for touched in [a0, a1] {
            assert_eq!(c.cmd(&["WATCH", a0, a1]), Resp::ok());
            assert_eq!(other.cmd(&["SET", touched, "5"]), Resp::ok());
            assert_eq!(transaction(&mut c), b"*-1\r\n", "round {round}: {touched} written");
            assert_eq!(
                other.cmd(&["MGET", a0, a1]),
                Resp::Array(vec![
                    Resp::Bulk(if touched == a0 { b"5".to_vec() } else { b"x".to_vec() }),
                    Resp::Bulk(if touched == a1 { b"5".to_vec() } else { b"12".to_vec() })
                ])
            );
            assert_eq!(other.cmd(&["MSET", a0, "x", a1, "12"]), Resp::ok());
        }
        // Aborts: a watched key of either shard expired since WATCH (Redis's
        // isWatchedKeyExpired), deleted or not yet. (A delayed part runs at
        // its shard's next cron, up to 100 ms late: the TTL outlasts it, or
        // the key would be expired already when watched, which is no change.)
        for expiring in [a0, a1] {
            assert_eq!(other.cmd(&["PEXPIRE", expiring, "400"]), Resp::Int(1));
            assert_eq!(c.cmd(&["WATCH", a0, a1]), Resp::ok());
            std::thread::sleep(std::time::Duration::from_millis(600));
            assert_eq!(transaction(&mut c), b"*-1\r\n", "round {round}: {expiring} expired");
            assert_eq!(other.cmd(&["EXISTS", expiring]), Resp::Int(0));
            assert_eq!(other.cmd(&["MSET", a0, "x", a1, "12"]), Resp::ok());
        }
        // WATCH then UNWATCH: no abort however the keys change.
        assert_eq!(c.cmd(&["WATCH", a0, a1]), Resp::ok());
        assert_eq!(c.cmd(&["UNWATCH"]), Resp::ok());
        assert_eq!(other.cmd(&["SET", a1, "0"]), Resp::ok());
        assert_eq!(transaction(&mut c), b"*4\r\n+OK\r\n:1\r\n$1\r\nx\r\n:2\r\n", "round {round}");
        assert_eq!(other.cmd(&["DEL", a0, a1]), Resp::Int(2));
    }
    rk.assert_serving();
}

#[test]
fn watched_exec_over_two_shards_commits_and_aborts_as_redis() {
    check_watched_exec_chain(&[]);
}

#[test]
fn watched_exec_over_two_shards_commits_and_aborts_as_redis_with_aof() {
    check_watched_exec_chain(&["--appendonly", "yes"]);
}

/// The keyspace messages (channel's key, event) of the next `n` messages
/// of an exact-channel subscriber.
fn keyspace_messages(sub: &mut Conn, n: usize) -> Vec<(String, String)> {
    messages(sub, n, |m| (text(&m[1]).split_once("__:").unwrap().1.to_string(), text(&m[2])))
}

/// The keys of the next `n` invalidation messages of a RESP2 client
/// subscribed to `__redis__:invalidate` (one key each).
fn invalidated(sub: &mut Conn, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let m = sub.read();
            let keys = m.array()[2].array().to_vec();
            assert_eq!(keys.len(), 1, "{keys:?}");
            text(&keys[0])
        })
        .collect()
}

/// RENAME, SMOVE, COPY, MSETNX and LMOVE over two shards, both ways: their
/// keyspace events reach a pattern subscriber and the subscriber of both
/// keys' channels, and their invalidations a tracking client's redirect
/// target, in Redis's execution order, whichever shard each key is on.
fn check_two_key_order(path: &str) {
    let (rk, _setup, mut psub) = event_server(path);
    let [(a, a2), (b, b2)] = keys();
    let mut sub = rk.conn();
    for k in [&a, &b, &a2, &b2] {
        sub.cmd(&["SUBSCRIBE", &format!("__keyspace@0__:{k}")]);
    }
    let mut redir = rk.conn();
    let redir_id = redir.cmd(&["CLIENT", "ID"]).int().to_string();
    redir.cmd(&["SUBSCRIBE", "__redis__:invalidate"]);
    let mut tracker = rk.conn();
    assert_eq!(tracker.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &redir_id]), Resp::ok());
    let ev = |list: &[(&str, &str)]| list.iter().map(|(e, k)| (e.to_string(), k.to_string())).collect::<Vec<_>>();
    let ks = |list: &[(&str, &str)]| list.iter().map(|(e, k)| (k.to_string(), e.to_string())).collect::<Vec<_>>();
    // The keys' channels' subscriber (by hops too: `messaging::hop_order`).
    let mut ks_check = |n: usize, want: Option<Vec<(String, String)>>, round: usize| {
        let got = keyspace_messages(&mut sub, n);
        if let Some(want) = want {
            assert_eq!(got, want, "round {round}");
        }
    };
    let mut c = rk.conn();
    for (round, (x, y)) in [(&a, &b), (&b, &a), (&a, &b)].into_iter().enumerate() {
        let (x, y) = (x.as_str(), y.as_str());
        c.cmd(&["SET", x, "1"]);
        c.cmd(&["SET", y, "2"]);
        assert_eq!(events(&mut psub, 2), ev(&[("set", x), ("set", y)]), "round {round}");
        ks_check(2, Some(ks(&[("set", x), ("set", y)])), round);
        tracker.cmd(&["GET", x]);
        tracker.cmd(&["GET", y]);
        assert_eq!(c.cmd(&["RENAME", x, y]), Resp::ok());
        let want = [("rename_from", x), ("rename_to", y)];
        assert_eq!(events(&mut psub, 2), ev(&want), "round {round}");
        ks_check(2, Some(ks(&want)), round);
        assert_eq!(invalidated(&mut redir, 2), [x, y], "round {round}");

        assert_eq!(c.cmd(&["SADD", x, "m"]).int(), 1);
        assert_eq!(events(&mut psub, 1), ev(&[("sadd", x)]), "round {round}");
        ks_check(1, Some(ks(&[("sadd", x)])), round);
        assert_eq!(c.cmd(&["DEL", y]).int(), 1);
        assert_eq!(events(&mut psub, 1), ev(&[("del", y)]), "round {round}");
        ks_check(1, Some(ks(&[("del", y)])), round);
        tracker.cmd(&["SISMEMBER", x, "m"]);
        tracker.cmd(&["SISMEMBER", y, "m"]);
        assert_eq!(c.cmd(&["SMOVE", x, y, "m"]).int(), 1);
        let want = [("srem", x), ("del", x), ("sadd", y)];
        assert_eq!(events(&mut psub, 3), ev(&want), "round {round}");
        ks_check(3, Some(ks(&want)), round);
        assert_eq!(invalidated(&mut redir, 2), [x, y], "round {round}");

        assert_eq!(c.cmd(&["COPY", y, x]).int(), 1);
        assert_eq!(events(&mut psub, 1), ev(&[("copy_to", x)]), "round {round}");
        ks_check(1, Some(ks(&[("copy_to", x)])), round);
        c.cmd(&["DEL", x]);
        c.cmd(&["DEL", y]);
        assert_eq!(events(&mut psub, 2), ev(&[("del", x), ("del", y)]), "round {round}");
        ks_check(2, Some(ks(&[("del", x), ("del", y)])), round);

        assert_eq!(c.cmd(&["MSETNX", x, "1", y, "2"]).int(), 1);
        let want = [("set", x), ("set", y)];
        assert_eq!(events(&mut psub, 2), ev(&want), "round {round}");
        ks_check(2, Some(ks(&want)), round);
        c.cmd(&["DEL", x]);
        c.cmd(&["DEL", y]);
        assert_eq!(events(&mut psub, 2).len(), 2);
        ks_check(2, None, round);

        assert_eq!(c.cmd(&["RPUSH", x, "e"]).int(), 1);
        assert_eq!(c.cmd(&["RPUSH", y, "f"]).int(), 1);
        assert_eq!(events(&mut psub, 2).len(), 2);
        ks_check(2, None, round);
        tracker.cmd(&["LRANGE", x, "0", "-1"]);
        tracker.cmd(&["LRANGE", y, "0", "-1"]);
        assert_eq!(c.cmd(&["LMOVE", x, y, "LEFT", "RIGHT"]).opt_bytes(), Some(b"e".to_vec()));
        let want = [("rpush", y), ("lpop", x), ("del", x)];
        assert_eq!(events(&mut psub, 3), ev(&want), "round {round}");
        ks_check(3, Some(ks(&want)), round);
        assert_eq!(invalidated(&mut redir, 2), [y, x], "round {round}");
        c.cmd(&["DEL", y]);
        assert_eq!(events(&mut psub, 1), ev(&[("del", y)]), "round {round}");
        ks_check(1, Some(ks(&[("del", y)])), round);
    }

    // MSET, DEL and an EXEC over both shards, keys interleaved: in key
    // (queue) order, to a RESP3 tracking client too.
    let mut resp3 = rk.conn();
    resp3.cmd(&["HELLO", "3"]);
    assert_eq!(resp3.cmd(&["CLIENT", "TRACKING", "ON"]), Resp::ok());
    let order = [b.as_str(), a.as_str(), b2.as_str(), a2.as_str()];
    let read_all = |t: &mut Conn, r: &mut Conn| {
        for k in order {
            t.cmd(&["GET", k]);
            r.cmd(&["GET", k]);
        }
    };
    let pushed = |r: &mut Conn, n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let m = r.read();
                let m = m.array();
                assert_eq!(text(&m[0]), "invalidate");
                text(&m[1].array()[0])
            })
            .collect()
    };
    for round in 0..2 {
        let mset = vec!["MSET", order[0], "1", order[1], "1", order[2], "1", order[3], "1"];
        let del = vec!["DEL", order[0], order[1], order[2], order[3]];
        for (cmd, event, reply) in [(mset, "set", Resp::ok()), (del, "del", Resp::Int(4))] {
            read_all(&mut tracker, &mut resp3);
            assert_eq!(c.cmd(&cmd), reply);
            let want: Vec<(&str, &str)> = order.iter().map(|k| (event, *k)).collect();
            assert_eq!(events(&mut psub, 4), ev(&want), "{} round {round}", cmd[0]);
            ks_check(4, Some(ks(&want)), round);
            assert_eq!(invalidated(&mut redir, 4), order, "{} round {round}", cmd[0]);
            assert_eq!(pushed(&mut resp3, 4), order, "{} round {round}", cmd[0]);
        }

        read_all(&mut tracker, &mut resp3);
        c.cmd(&["MULTI"]);
        for k in order {
            c.cmd(&["SET", k, "2"]);
        }
        c.cmd(&["DEL", order[1]]);
        assert_eq!(c.cmd(&["EXEC"]).array().len(), 5);
        let mut want: Vec<(&str, &str)> = order.iter().map(|k| ("set", *k)).collect();
        want.push(("del", order[1]));
        assert_eq!(events(&mut psub, 5), ev(&want), "EXEC round {round}");
        ks_check(5, Some(ks(&want)), round);
        assert_eq!(invalidated(&mut redir, 4), order, "EXEC round {round}");
        assert_eq!(pushed(&mut resp3, 4), order, "EXEC round {round}");
        c.cmd(&["DEL", order[0], order[2], order[3]]);
        assert_eq!(events(&mut psub, 3).len(), 3);
        ks_check(3, None, round);
    }
}

#[test]
fn two_key_commands_notify_and_invalidate_in_order_when_held() {
    check_two_key_order("held");
}

/// By hops each part runs on its key's shard: its events and invalidations
/// still reach every subscriber in the command's order (`messaging::hop_order`).
#[test]
fn two_key_commands_notify_and_invalidate_in_order_by_hops() {
    check_two_key_order("hops");
}

/// A batch whose last command is a hop leaves in one send, as Redis writes
/// a read batch's replies at once: a plain MULTI / SET / SET / EXEC over two
/// shards, and a GET pipelined ahead of an MSET over two shards, send
/// nothing (not the `+OK`, `+QUEUED`s or the GET's reply, ready at once)
/// while the hop's remote part waits; then every reply, in order. A
/// connection with no hop in flight is answered at once meanwhile.
#[test]
fn replies_ahead_of_a_hop_leave_with_its_reply() {
    let rk = Server::ringkv(&["--shards", "2"]);
    let ringkv = rk.name() == "ringkv";
    let mut setup = rk.conn();
    let [(a0, _), (a1, _)] = keys();
    setup.cmd(&["SET", &a0, "x"]);
    if ringkv {
        // The plain EXEC and MSET go by hops whatever the other shard does.
        assert_eq!(setup.cmd(&["CONFIG", "SET", "cross-shard-route", "hops"]), Resp::ok());
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", DELAY_US]), Resp::ok());
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    let mut op = rk.conn();
    // (the batch, its replies)
    type Batch<'a> = (Vec<Vec<&'a str>>, Vec<&'a [u8]>);
    let batches: [Batch<'_>; 2] = [
        (
            vec![vec!["MULTI"], vec!["SET", &a0, "1"], vec!["SET", &a1, "1"], vec!["EXEC"]],
            vec![b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n", b"*2\r\n+OK\r\n+OK\r\n"],
        ),
        (vec![vec!["GET", &a0], vec!["MSET", &a0, "2", &a1, "2"]], vec![b"$1\r\n1\r\n", b"+OK\r\n"]),
    ];
    for (cmds, replies) in batches {
        let mut bytes = Vec::new();
        for c in &cmds {
            encode_into(&mut bytes, c);
        }
        op.send_raw(&bytes);
        // Another connection's command runs and is answered meanwhile.
        assert_eq!(setup.cmd(&["PING"]), Resp::Simple("PONG".into()));
        if ringkv {
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(no_reply_yet(&mut op), "{cmds:?}: a reply left before the hop's");
        }
        for want in replies {
            assert_eq!(op.read_frame().unwrap(), want, "{cmds:?}");
        }
    }
}
