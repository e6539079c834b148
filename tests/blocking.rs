//! Blocking pops across shards (`--shards 3`): FIFO wake-up order, wake-ups
//! by pushes from other connections (and so other shards), multi-key BLPOP
//! served exactly once under concurrent pushes, timeouts, disconnects,
//! CLIENT UNBLOCK, and BLMOVE across shards seen atomically. Every test
//! also passes against redis-server (`RINGKV_TEST_TARGET=redis`).
//!
//! A connection's shard is the kernel's choice (SO_REUSEPORT), so tests that
//! need a cross-shard wake-up use keys on all three shards: whatever shard
//! the connections land on, most waiter/key/pusher combinations cross.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_blocked, wait_until, Conn, Resp, Server};

const SHARDS: usize = 3;

fn server() -> Server {
    Server::ringkv(&["--shards", &SHARDS.to_string()])
}

fn keys_per_shard(prefix: &str) -> Vec<String> {
    common::keys_per_shard(prefix, SHARDS)
}

fn info_field(c: &mut Conn, name: &str) -> i64 {
    common::clients_info_field(c, name)
}

fn bulk(s: &str) -> Resp {
    Resp::bulk(s)
}

#[test]
fn three_clients_on_one_key_are_woken_first_come_first_served() {
    let s = server();
    let mut admin = s.conn();
    for key in keys_per_shard("fifo") {
        let mut waiters: Vec<Conn> = (0..3).map(|_| s.conn()).collect();
        for (i, w) in waiters.iter_mut().enumerate() {
            w.send(&["BLPOP", &key, "0"]);
            wait_blocked(&mut admin, i as i64 + 1);
        }
        assert_eq!(admin.cmd(&["RPUSH", &key, "a", "b", "c", "d"]).int(), 4);
        for (w, want) in waiters.iter_mut().zip(["a", "b", "c"]) {
            assert_eq!(w.read(), Resp::Array(vec![bulk(&key), bulk(want)]));
        }
        // The fourth element is left for nobody.
        assert_eq!(admin.cmd(&["LRANGE", &key, "0", "-1"]), Resp::Array(vec![bulk("d")]));
        wait_blocked(&mut admin, 0);
        admin.cmd(&["DEL", &key]);
    }
}

#[test]
fn a_push_from_another_connection_wakes_the_waiter_on_every_shard() {
    let s = server();
    let mut admin = s.conn();
    let keys = keys_per_shard("wake");
    let others = keys_per_shard("other");
    for key in &keys {
        for other in &others {
            let mut waiter = s.conn();
            waiter.send(&["BRPOP", key, "0"]);
            wait_blocked(&mut admin, 1);
            let mut pusher = s.conn();
            let t = Instant::now();
            // A push inside a multi-key command too: MSET is not a list
            // push, so the element comes by RPUSH; the other key makes
            // some pushes run on a connection whose shard owns another key.
            pusher.cmd(&["SET", other, "x"]);
            assert_eq!(pusher.cmd(&["RPUSH", key, "e1", "e2"]).int(), 2);
            assert_eq!(waiter.read(), Resp::Array(vec![bulk(key), bulk("e2")]));
            assert!(t.elapsed() < Duration::from_secs(2), "woken after {:?}", t.elapsed());
            assert_eq!(admin.cmd(&["LRANGE", key, "0", "-1"]), Resp::Array(vec![bulk("e1")]));
            admin.cmd(&["DEL", key, other]);
        }
    }
    // A sorted set wakes BZPOPMIN the same way, and ZADD of a new key only.
    let mut waiter = s.conn();
    waiter.send(&["BZPOPMIN", &keys[0], &keys[1], &keys[2], "0"]);
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd(&["ZADD", &keys[2], "2", "b", "1", "a"]).int(), 2);
    let got = waiter.read();
    let a = got.array();
    assert_eq!(a[0], bulk(&keys[2]));
    assert_eq!(a[1], bulk("a"));
}

/// BLPOP over keys on three shards by many clients at once, with pushes
/// to all of them from several connections: every element pushed is
/// popped exactly once or left in its list.
#[test]
fn multi_key_blpop_over_three_shards_serves_each_element_exactly_once() {
    let s = Arc::new(server());
    let keys = Arc::new(keys_per_shard("once"));
    const WAITERS: usize = 6;
    const PUSHERS: usize = 3;
    const PER_PUSHER: usize = 600;
    let done = Arc::new(AtomicBool::new(false));
    let popped_total = Arc::new(AtomicUsize::new(0));
    let mut waiters = vec![];
    for _ in 0..WAITERS {
        let (s, keys, done, total) = (s.clone(), keys.clone(), done.clone(), popped_total.clone());
        waiters.push(std::thread::spawn(move || {
            let mut c = s.conn();
            let mut got = vec![];
            loop {
                let r = c.cmd(&["BLPOP", &keys[0], &keys[1], &keys[2], "0.05"]);
                match r {
                    Resp::Nil => {
                        if done.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    Resp::Array(v) => {
                        let (k, e) = (v[0].opt_bytes().unwrap(), v[1].opt_bytes().unwrap());
                        got.push((String::from_utf8(k).unwrap(), String::from_utf8(e).unwrap()));
                        total.fetch_add(1, Ordering::SeqCst);
                    }
                    other => panic!("BLPOP replied {other:?}"),
                }
            }
            got
        }));
    }
    let mut pushers = vec![];
    for p in 0..PUSHERS {
        let (s, keys) = (s.clone(), keys.clone());
        pushers.push(std::thread::spawn(move || {
            let mut c = s.conn();
            let mut pushed = vec![];
            for i in 0..PER_PUSHER {
                let key = &keys[(i * 7 + p) % SHARDS];
                let e = format!("p{p}-{i}");
                // Sometimes two at once: one may go to a waiter, one stay.
                if i % 5 == 0 {
                    let e2 = format!("p{p}-{i}b");
                    c.cmd(&["RPUSH", key, &e, &e2]);
                    pushed.push((key.clone(), e2));
                } else {
                    c.cmd(&["LPUSH", key, &e]);
                }
                pushed.push((key.clone(), e));
            }
            pushed
        }));
    }
    let mut pushed: Vec<(String, String)> = pushers.into_iter().flat_map(|h| h.join().unwrap()).collect();
    // Let the waiters drain what is left, then stop them.
    let mut admin = s.conn();
    let drained = wait_until(Duration::from_secs(20), || keys.iter().all(|k| admin.cmd(&["LLEN", k]).int() == 0));
    done.store(true, Ordering::SeqCst);
    let mut popped: Vec<(String, String)> = waiters.into_iter().flat_map(|h| h.join().unwrap()).collect();
    for k in keys.iter() {
        for e in admin.cmd(&["LRANGE", k, "0", "-1"]).array() {
            popped.push((k.clone(), String::from_utf8(e.opt_bytes().unwrap()).unwrap()));
        }
    }
    assert!(drained, "the lists were not drained");
    let mut seen: HashMap<&(String, String), usize> = HashMap::new();
    for p in &popped {
        *seen.entry(p).or_default() += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dup.is_empty(), "elements served twice: {dup:?}");
    pushed.sort();
    popped.sort();
    assert_eq!(pushed.len(), popped.len(), "pushed {} elements, found {}", pushed.len(), popped.len());
    assert_eq!(pushed, popped);
    assert_eq!(popped_total.load(Ordering::SeqCst), pushed.len());
}

#[test]
fn timeouts_reply_nil_within_bounds() {
    let s = server();
    let mut c = s.conn();
    for cmd in [
        vec!["BLPOP", "t1", "t2", "0.1"],
        vec!["BRPOP", "t1", "0.1"],
        vec!["BLMOVE", "t1", "t2", "LEFT", "RIGHT", "0.1"],
        vec!["BRPOPLPUSH", "t1", "t2", "0.1"],
        vec!["BLMPOP", "0.1", "2", "t1", "t2", "LEFT"],
        vec!["BZPOPMIN", "t1", "0.1"],
        vec!["BZPOPMAX", "t1", "0.1"],
        vec!["BZMPOP", "0.1", "1", "t1", "MIN", "COUNT", "2"],
    ] {
        let t = Instant::now();
        assert_eq!(c.cmd_raw(&cmd), b"*-1\r\n", "{cmd:?}");
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(95) && took < Duration::from_millis(900), "{cmd:?} took {took:?}");
    }
    // A short one, under the server's 100 ms cron period.
    let t = Instant::now();
    assert_eq!(c.cmd_raw(&["BLPOP", "t1", "0.01"]), b"*-1\r\n");
    assert!(t.elapsed() < Duration::from_millis(500), "took {:?}", t.elapsed());
    // RESP3: a null.
    c.cmd(&["HELLO", "3"]);
    assert_eq!(c.cmd_raw(&["BLPOP", "t1", "0.01"]), b"_\r\n");
    // While blocked, the client's next commands wait in its input.
    c.send_raw(b"*3\r\n$5\r\nBLPOP\r\n$2\r\nt1\r\n$3\r\n0.2\r\n*1\r\n$4\r\nPING\r\n");
    let t = Instant::now();
    assert_eq!(c.read_frame().unwrap(), b"_\r\n");
    assert_eq!(c.read(), Resp::Simple("PONG".into()));
    assert!(t.elapsed() >= Duration::from_millis(190), "took {:?}", t.elapsed());
}

#[test]
fn a_blocked_client_that_disconnects_gets_nothing_popped() {
    let s = server();
    let mut admin = s.conn();
    for key in keys_per_shard("gone") {
        {
            let mut w = s.conn();
            w.send(&["BLPOP", &key, "0"]);
            wait_blocked(&mut admin, 1);
        }
        wait_blocked(&mut admin, 0);
        assert_eq!(admin.cmd(&["RPUSH", &key, "kept"]).int(), 1);
        assert_eq!(admin.cmd(&["LRANGE", &key, "0", "-1"]), Resp::Array(vec![bulk("kept")]));
        // CLIENT KILL of a blocked client too.
        let mut w = s.conn();
        let id = w.cmd(&["CLIENT", "ID"]).int();
        w.send(&["BLPOP", &format!("{key}x"), "0"]);
        wait_blocked(&mut admin, 1);
        assert_eq!(admin.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]).int(), 1);
        // Gone at once: a push right after the kill is not popped for it.
        assert_eq!(admin.cmd(&["RPUSH", &format!("{key}x"), "kept"]).int(), 1);
        wait_blocked(&mut admin, 0);
        assert_eq!(admin.cmd(&["LLEN", &format!("{key}x")]).int(), 1);
    }
}

#[test]
fn client_unblock_timeout_and_error() {
    let s = server();
    let mut admin = s.conn();
    let mut w = s.conn();
    let id = w.cmd(&["CLIENT", "ID"]).int().to_string();
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).int(), 0);
    w.send(&["BLPOP", "u1", "u2", "u3", "0"]);
    wait_blocked(&mut admin, 1);
    let list = admin.cmd(&["CLIENT", "LIST", "ID", &id]).opt_bytes().unwrap();
    assert!(String::from_utf8_lossy(&list).contains(" flags=b "), "{}", String::from_utf8_lossy(&list));
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id]).int(), 1);
    assert_eq!(w.read_frame().unwrap(), b"*-1\r\n");
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id, "TIMEOUT"]).int(), 0);
    w.send(&["BZPOPMAX", "u1", "10"]);
    wait_blocked(&mut admin, 1);
    assert_eq!(info_field(&mut admin, "clients_in_timeout_table"), 1);
    assert_eq!(admin.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]).int(), 1);
    assert_eq!(w.read(), Resp::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()));
    assert_eq!(w.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(info_field(&mut admin, "blocked_clients"), 0);
    // Nothing was popped for it afterwards.
    admin.cmd(&["RPUSH", "u1", "x"]);
    assert_eq!(admin.cmd(&["LLEN", "u1"]).int(), 1);
    // CLIENT UNBLOCK counts as the blocked command's failure, TIMEOUT and
    // ERROR alike, as redis-server 7.0.15 does (unit/info "errorstats:
    // blocking commands"); a command that times out by itself does not.
    let stats = String::from_utf8(admin.cmd(&["INFO", "commandstats"]).opt_bytes().unwrap()).unwrap();
    assert!(stats.contains("cmdstat_bzpopmax:calls=1,"), "{stats}");
    assert!(stats.lines().any(|l| l.starts_with("cmdstat_bzpopmax:") && l.ends_with(",rejected_calls=0,failed_calls=1")), "{stats}");
    assert!(stats.lines().any(|l| l.starts_with("cmdstat_blpop:") && l.ends_with(",rejected_calls=0,failed_calls=1")), "{stats}");
    admin.cmd(&["BRPOP", "nosuchlist", "0.01"]);
    let stats = String::from_utf8(admin.cmd(&["INFO", "commandstats"]).opt_bytes().unwrap()).unwrap();
    assert!(stats.lines().any(|l| l.starts_with("cmdstat_brpop:") && l.ends_with(",rejected_calls=0,failed_calls=0")), "{stats}");
}

/// BLMOVE from a key of one shard to a key of another, served by a push:
/// a concurrent reader of both keys (EXISTS over both: one atomic command)
/// never sees the element in neither list nor in both.
#[test]
fn blmove_across_shards_is_atomic() {
    let s = Arc::new(server());
    let keys = keys_per_shard("mv");
    let (src, dst) = (keys[0].clone(), keys[1].clone());
    let mut admin = s.conn();
    let stop = Arc::new(AtomicBool::new(false));
    // Odd (2 * round + 1): this round's element is pushed and not yet
    // deleted, so it exists in exactly one of the lists.
    let phase = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (s, src, dst, stop, phase) = (s.clone(), src.clone(), dst.clone(), stop.clone(), phase.clone());
        std::thread::spawn(move || {
            let mut c = s.conn();
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let p = phase.load(Ordering::SeqCst);
                let n = c.cmd(&["EXISTS", &src, &dst]).int();
                assert!(n <= 1, "the element is in both lists");
                if p % 2 == 1 && phase.load(Ordering::SeqCst) == p {
                    assert_eq!(n, 1, "the element is in neither list");
                }
                reads += 1;
            }
            reads
        })
    };
    let mut w = s.conn();
    for round in 0..60 {
        let elem = format!("e{round}");
        w.send(&["BLMOVE", &src, &dst, "RIGHT", "LEFT", "0"]);
        wait_blocked(&mut admin, 1);
        admin.cmd(&["RPUSH", &src, &elem]);
        phase.store(2 * round + 1, Ordering::SeqCst);
        assert_eq!(w.read(), bulk(&elem));
        assert_eq!(admin.cmd(&["LRANGE", &dst, "0", "-1"]), Resp::Array(vec![bulk(&elem)]));
        assert_eq!(admin.cmd(&["EXISTS", &src]).int(), 0);
        phase.store(2 * round + 2, Ordering::SeqCst);
        admin.cmd(&["DEL", &dst]);
    }
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    // BRPOPLPUSH, and a destination of the wrong type: WRONGTYPE, the
    // element stays.
    admin.cmd(&["SET", &dst, "string"]);
    w.send(&["BRPOPLPUSH", &src, &dst, "0"]);
    wait_blocked(&mut admin, 1);
    admin.cmd(&["RPUSH", &src, "z"]);
    assert!(matches!(w.read(), Resp::Error(e) if e.starts_with("WRONGTYPE")));
    assert_eq!(admin.cmd(&["LRANGE", &src, "0", "-1"]), Resp::Array(vec![bulk("z")]));
}

/// A blocked client is woken by keys created by RENAME, COPY, MOVE,
/// SORT ... STORE and LMOVE, not only by pushes.
#[test]
fn keys_created_by_other_commands_wake_waiters() {
    let s = server();
    let mut admin = s.conn();
    let keys = keys_per_shard("mk");
    let (a, b) = (&keys[0], &keys[1]);
    let cases: Vec<Vec<String>> = vec![
        vec!["RENAME".into(), format!("{a}src"), b.clone()],
        vec!["COPY".into(), format!("{a}src"), b.clone()],
        vec!["LMOVE".into(), format!("{a}src"), b.clone(), "LEFT".into(), "LEFT".into()],
        vec!["SORT".into(), format!("{a}src"), "ALPHA".into(), "STORE".into(), b.clone()],
    ];
    for cmd in cases {
        admin.cmd(&["RPUSH", &format!("{a}src"), "v"]);
        let mut w = s.conn();
        w.send(&["BLPOP", b, "5"]);
        wait_blocked(&mut admin, 1);
        let r = admin.cmd(&cmd);
        assert!(!matches!(r, Resp::Error(_)), "{cmd:?}: {r:?}");
        assert_eq!(w.read(), Resp::Array(vec![bulk(b), bulk("v")]), "{cmd:?}");
        admin.cmd(&["DEL", &format!("{a}src"), b]);
    }
    // MOVE from another database.
    admin.cmd(&["SELECT", "1"]);
    admin.cmd(&["RPUSH", b, "fromdb1"]);
    let mut w = s.conn();
    w.send(&["BLPOP", b, "5"]);
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd(&["MOVE", b, "0"]).int(), 1);
    assert_eq!(w.read(), Resp::Array(vec![bulk(b), bulk("fromdb1")]));
}

/// Parses an AOF's commands (RESP multibulks) into space-joined strings,
/// without SELECT.
fn aof_commands(bytes: &[u8]) -> Vec<String> {
    let mut out = vec![];
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = common::frame_len(rest).expect("a complete AOF command");
        let cmd = common::decode(&rest[..n]);
        let words: Vec<String> = cmd.array().iter().map(|a| String::from_utf8(a.opt_bytes().unwrap()).unwrap()).collect();
        if !words[0].eq_ignore_ascii_case("select") {
            out.push(words.join(" "));
        }
        rest = &rest[n..];
    }
    out
}

/// What a served blocked client's pop leaves in the AOF: the non-blocking
/// form Redis 7.0 propagates (LPOP, LMOVE with the sides as sent,
/// RPOPLPUSH, LPOP/ZPOPMAX with the count popped), never the blocking one.
#[test]
fn served_pops_are_propagated_in_their_non_blocking_form() {
    let s = Server::ringkv(&["--shards", "3", "--appendonly", "yes", "--appendfsync", "always"]);
    let mut admin = s.conn();
    let keys = keys_per_shard("aof");
    let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
    let serve = |admin: &mut Conn, cmd: &[&str], push: &[&str]| {
        let mut w = s.conn();
        w.send(cmd);
        wait_blocked(admin, 1);
        admin.cmd(push);
        let r = w.read();
        assert!(!matches!(r, Resp::Error(_) | Resp::Nil), "{cmd:?}: {r:?}");
        wait_blocked(admin, 0);
    };
    serve(&mut admin, &["BLPOP", a, b, "0"], &["RPUSH", b, "x1", "x2"]);
    serve(&mut admin, &["BLMOVE", a, c, "left", "RIGHT", "0"], &["RPUSH", a, "y"]);
    assert_eq!(admin.cmd(&["DEL", c]).int(), 1);
    serve(&mut admin, &["BRPOPLPUSH", c, b, "0"], &["LPUSH", c, "z"]);
    serve(&mut admin, &["BLMPOP", "0", "2", &format!("{a}m"), a, "RIGHT", "COUNT", "5"], &["RPUSH", a, "m1", "m2"]);
    serve(&mut admin, &["BZMPOP", "0", "1", c, "MAX", "COUNT", "3"], &["ZADD", c, "1", "p", "2", "q"]);
    serve(&mut admin, &["BZPOPMIN", &format!("{a}z"), c, "0"], &["ZADD", c, "1", "r"]);
    // Everything written is synced (appendfsync always) once replied.
    let incr = std::fs::read(s.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    let cmds = aof_commands(&incr);
    let want = [
        format!("RPUSH {b} x1 x2"),
        format!("LPOP {b}"),
        format!("RPUSH {a} y"),
        format!("LMOVE {a} {c} left RIGHT"),
        format!("LPUSH {c} z"),
        format!("RPOPLPUSH {c} {b}"),
        format!("RPUSH {a} m1 m2"),
        format!("RPOP {a} 2"),
        format!("ZADD {c} 1 p 2 q"),
        format!("ZPOPMAX {c} 2"),
        format!("ZADD {c} 1 r"),
        format!("ZPOPMIN {c}"),
    ];
    // Per key, in order (ringkv's shards write their streams apart: only
    // the order of each key's writes is the execution order).
    let mut at = 0;
    for w in &want {
        let found = cmds[at..].iter().position(|x| x.eq_ignore_ascii_case(w));
        assert!(found.is_some() || cmds.iter().any(|x| x.eq_ignore_ascii_case(w)), "{w} not in the AOF: {cmds:?}");
        if let Some(i) = found {
            at += i + 1;
        }
    }
    assert!(!cmds.iter().any(|x| x.to_ascii_uppercase().starts_with('B')), "a blocking form in the AOF: {cmds:?}");
    for w in &want {
        assert_eq!(cmds.iter().filter(|x| x.eq_ignore_ascii_case(w)).count(), 1, "{w}: {cmds:?}");
    }
}

/// The commands of the slowlog, newest first.
fn slowlog_commands(c: &mut Conn) -> Vec<Vec<Resp>> {
    c.cmd(&["SLOWLOG", "GET", "-1"]).array().iter().map(|e| e.array()[3].array().to_vec()).collect()
}

/// Redis 7.0 logs a command that blocked when its client is served (not
/// when it blocks); one that times out is not logged at all.
#[test]
fn a_blocked_command_is_slowlogged_when_served() {
    let s = server();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), Resp::ok());
    for key in keys_per_shard("slow") {
        assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), Resp::ok());
        assert_eq!(c.cmd(&["BLPOP", "nothing", "0.01"]), Resp::Nil);
        let mut w = s.conn();
        w.send(&["BLPOP", &key, "0"]);
        wait_blocked(&mut c, 1);
        // Queued in a transaction, so the wake-up follows SLOWLOG RESET.
        assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
        c.cmd(&["LPUSH", &key, "v"]);
        c.cmd(&["SLOWLOG", "RESET"]);
        assert_eq!(c.cmd(&["EXEC"]).array().len(), 2);
        assert_eq!(w.read(), Resp::Array(vec![bulk(&key), bulk("v")]));
        let got = slowlog_commands(&mut c);
        assert_eq!(got[got.len() - 2..], [vec![bulk("BLPOP"), bulk(&key), bulk("0")], vec![bulk("SLOWLOG"), bulk("RESET")]], "{key}");
    }
    assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "10000"]), Resp::ok());
}

/// A timeout is never answered early: Redis unblocks at `timeout < now` in
/// whole milliseconds, so a client always waits its full timeout (audit21:
/// ringkv answered at `deadline == now`, up to a millisecond early, e.g. a
/// BLPOP of 0.2 s after 199.4 ms). Fractional and whole-millisecond timeouts
/// over BLPOP, BZPOPMIN and BLMOVE, keys of every shard.
#[test]
fn timeouts_are_never_answered_early() {
    let s = server();
    let keys = keys_per_shard("early");
    let mut c = s.conn();
    let timeouts = ["0.01", "0.013", "0.0205", "0.031", "0.05"];
    for round in 0..8 {
        for (i, t) in timeouts.iter().enumerate() {
            let key = &keys[(round + i) % keys.len()];
            let args: Vec<&str> = match i % 3 {
                0 => vec!["BLPOP", key, t],
                1 => vec!["BZPOPMIN", key, t],
                _ => vec!["BLMOVE", key, "early:dst", "LEFT", "RIGHT", t],
            };
            let start = Instant::now();
            let r = c.cmd(&args);
            let waited = start.elapsed();
            assert_eq!(r, Resp::Nil, "{args:?}");
            let want = Duration::from_secs_f64(t.parse().unwrap());
            assert!(waited >= want, "{args:?} answered after {waited:?}, before its timeout");
        }
    }
}

/// A woken BLMOVE propagates as LMOVE with Redis's own lower-case `left` /
/// `right` (redis-server 7.0.15: sent `rIGHT Left`, its AOF has `right
/// left`), while one served at once keeps the words as sent (audit21:
/// ringkv kept the client's words for both).
#[test]
fn woken_blmove_propagates_redis_side_words() {
    let s = Server::ringkv(&["--shards", "3", "--appendonly", "yes", "--appendfsync", "always"]);
    let mut admin = s.conn();
    let keys = keys_per_shard("sides");
    let (a, c) = (&keys[0], &keys[2]);
    admin.cmd(&["RPUSH", a, "now"]);
    assert_eq!(admin.cmd(&["BLMOVE", a, c, "Left", "RIGHT", "0"]), bulk("now"));
    let mut w = s.conn();
    w.send(&["BLMOVE", a, c, "rIGHT", "Left", "0"]);
    wait_blocked(&mut admin, 1);
    admin.cmd(&["RPUSH", a, "later"]);
    assert_eq!(w.read(), bulk("later"));
    wait_blocked(&mut admin, 0);
    let incr = std::fs::read(s.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    let cmds = aof_commands(&incr);
    assert!(cmds.contains(&format!("LMOVE {a} {c} Left RIGHT")), "{cmds:?}");
    assert!(cmds.contains(&format!("LMOVE {a} {c} right left")), "{cmds:?}");
}
