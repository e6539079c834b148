//! Concurrency across shards (`--shards 4`): many connections mutating
//! overlapping keys, atomicity of MSET across shards, and reply order of
//! pipelines whose commands run on different shards.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{key_shard, Conn, Resp, Rng, Server};

const SHARDS: usize = 4;
const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 2000;
const OWN_KEYS: usize = 24;
const SHARED_KEYS: usize = 6;

fn server() -> Server {
    Server::ringkv(&["--shards", &SHARDS.to_string()])
}

/// A thread's own keys: plain ones spread over all shards, and ones whose hashtag is shared
/// with the other threads' keys (same slot, so the same shard, different keys).
fn own_key(thread: usize, j: usize) -> String {
    if j.is_multiple_of(3) {
        format!("{{tag{}}}t{}:{}", j % 4, thread, j)
    } else {
        format!("t{}:{}", thread, j)
    }
}

fn shared_key(j: usize) -> String {
    if j.is_multiple_of(2) {
        format!("shared:{}", j)
    } else {
        format!("{{tag{}}}shared:{}", j % 4, j)
    }
}

/// One thread's operations; every reply is checked against the model of the keys the thread
/// owns (no other thread writes them, so the model is exact). Returns the increments made on
/// each shared key and the values INCR replied there.
fn worker(server: &Server, thread: usize) -> (Vec<u64>, Vec<Vec<i64>>) {
    let mut c = server.conn();
    let mut rng = Rng::new(1000 + thread as u64);
    let mut model: HashMap<String, i64> = HashMap::new();
    let mut incrs = vec![0u64; SHARED_KEYS];
    let mut seen = vec![vec![]; SHARED_KEYS];
    let mut history: Vec<String> = vec![];
    let pick = |rng: &mut Rng| own_key(thread, rng.below(OWN_KEYS as u64) as usize);
    for op in 0..OPS_PER_THREAD {
        let (desc, reply, expected) = match rng.below(10) {
            0 | 1 => {
                let k = pick(&mut rng);
                let v = rng.below(1000) as i64;
                model.insert(k.clone(), v);
                (format!("SET {} {}", k, v), c.cmd(&["SET", &k, &v.to_string()]), Some(Resp::ok()))
            }
            2 | 3 => {
                let k = pick(&mut rng);
                let v = model.get(&k).copied().unwrap_or(0) + 1;
                model.insert(k.clone(), v);
                (format!("INCR {}", k), c.cmd(&["INCR", &k]), Some(Resp::Int(v)))
            }
            4 => {
                let (k1, k2) = (pick(&mut rng), pick(&mut rng));
                let n = model.remove(&k1).is_some() as i64 + (k1 != k2 && model.remove(&k2).is_some()) as i64;
                (format!("DEL {} {}", k1, k2), c.cmd(&["DEL", &k1, &k2]), Some(Resp::Int(n)))
            }
            5 => {
                let mut args = vec!["MSET".to_string()];
                for _ in 0..3 {
                    let k = pick(&mut rng);
                    let v = rng.below(1000) as i64;
                    model.insert(k.clone(), v);
                    args.push(k);
                    args.push(v.to_string());
                }
                (args.join(" "), c.cmd(&args), Some(Resp::ok()))
            }
            6 => {
                let k = pick(&mut rng);
                let want = match model.get(&k) {
                    Some(v) => Resp::bulk(v.to_string()),
                    None => Resp::Nil,
                };
                (format!("GET {}", k), c.cmd(&["GET", &k]), Some(want))
            }
            _ => {
                let j = rng.below(SHARED_KEYS as u64) as usize;
                incrs[j] += 1;
                let r = c.cmd(&["INCR", &shared_key(j)]);
                if let Resp::Int(n) = r {
                    seen[j].push(n);
                }
                (format!("INCR {}", shared_key(j)), r, None)
            }
        };
        if let Some(want) = expected {
            if reply != want {
                let from = history.len().saturating_sub(10);
                panic!("thread {} op {}: {} replied {:?}, expected {:?}; previous ops:\n{}", thread, op, desc, reply, want, history[from..].join("\n"));
            }
        } else {
            assert!(matches!(reply, Resp::Int(_)), "thread {} op {}: {} replied {:?}", thread, op, desc, reply);
        }
        history.push(desc);
    }
    // The final state of this thread's keys.
    for j in 0..OWN_KEYS {
        let k = own_key(thread, j);
        let want = model.get(&k).map(|v| v.to_string().into_bytes());
        assert_eq!(c.cmd(&["GET", &k]).opt_bytes(), want, "thread {}: final value of {}", thread, k);
    }
    (incrs, seen)
}

#[test]
fn concurrent_ops_match_per_key_order() {
    let s = server();
    let results: Vec<(Vec<u64>, Vec<Vec<i64>>)> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = &s;
                scope.spawn(move || worker(s, t))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut c = s.conn();
    for j in 0..SHARED_KEYS {
        let total: u64 = results.iter().map(|r| r.0[j]).sum();
        let got = c.cmd(&["GET", &shared_key(j)]).opt_bytes().map(|b| String::from_utf8(b).unwrap());
        let want = if total == 0 { None } else { Some(total.to_string()) };
        assert_eq!(got, want, "shared counter {} after {} increments", shared_key(j), total);
        // Every INCR got a distinct value, and together they are exactly 1..=total.
        let mut all: Vec<i64> = results.iter().flat_map(|r| r.1[j].iter().copied()).collect();
        all.sort_unstable();
        assert!(all.iter().copied().eq(1..=total as i64), "INCR replies on {} are not a permutation of 1..={}", shared_key(j), total);
    }
    let keys = THREADS * OWN_KEYS + SHARED_KEYS;
    let n = c.cmd(&["DBSIZE"]).int();
    assert!(n as usize <= keys, "DBSIZE {} exceeds the {} keys ever written", n, keys);
}

/// `count` keys with distinct hashtags, each on a different shard.
fn keys_on_distinct_shards(count: usize) -> Vec<String> {
    let mut by_shard: Vec<Option<String>> = vec![None; SHARDS];
    let mut i = 0;
    while by_shard.iter().filter(|k| k.is_some()).count() < count {
        let k = format!("{{m{}}}value", i);
        by_shard[key_shard(k.as_bytes(), SHARDS)].get_or_insert(k);
        i += 1;
    }
    let keys: Vec<String> = by_shard.into_iter().flatten().take(count).collect();
    let shards: std::collections::HashSet<usize> = keys.iter().map(|k| key_shard(k.as_bytes(), SHARDS)).collect();
    assert_eq!(shards.len(), count);
    keys
}

#[test]
fn crc16_matches_redis_cluster_reference() {
    // Reference values from Redis Cluster's specification and CLUSTER KEYSLOT.
    assert_eq!(common::crc16(b"123456789"), 0x31C3);
    assert_eq!(common::key_slot(b"foo"), 12182);
    assert_eq!(common::key_slot(b"{user1000}.following"), common::key_slot(b"{user1000}.followers"));
    assert_eq!(common::key_slot(b"foo{}{bar}"), common::crc16(b"foo{}{bar}") & 16383);
    assert_eq!(common::key_slot(b"foo{{bar}}zap"), common::crc16(b"{bar") & 16383);
    // Independent of ringkv's own implementation, and agreeing with it.
    for k in ["a", "{a}b", "x{y}z", "{}", "{{}}", "shared:3"] {
        assert_eq!(common::key_slot(k.as_bytes()), ringkv::shard::slot::key_slot(k.as_bytes()), "{}", k);
        assert_eq!(common::key_shard(k.as_bytes(), SHARDS), ringkv::shard::slot::key_shard(k.as_bytes(), SHARDS), "{}", k);
    }
}

/// MSET of every key to 1, 2, 3... (at most 3000 of them, until `deadline`).
fn write_increasing_msets(c: &mut Conn, keys: &[String], deadline: Instant) {
    let mut i = 1;
    while i <= 3000 && Instant::now() < deadline {
        let v = i.to_string();
        let mut args = vec!["MSET"];
        for k in keys {
            args.push(k);
            args.push(&v);
        }
        assert_eq!(c.cmd(&args), Resp::ok());
        i += 1;
    }
}

/// `readers` clients each call `read(reader, conn, last)` over and over
/// (`last`: the reader's own running value, from 0) while one client writes
/// increasing MSETs over `keys` for 4 s; every reader must have run.
fn read_during_msets(s: &Server, keys: &[String], readers: usize, read: impl Fn(usize, &mut Conn, &mut i64) + Sync) {
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(4);
    let reads: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let (done, read) = (&done, &read);
                scope.spawn(move || {
                    let mut c = s.conn();
                    let mut last = 0i64;
                    let mut n = 0;
                    // Bounded even if the writer dies without saying so.
                    let give_up = deadline + Duration::from_secs(10);
                    while !done.load(Ordering::Acquire) && Instant::now() < give_up {
                        read(r, &mut c, &mut last);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // Tell the readers to stop however the writer ends (a failed assertion included).
        let _done = Done(&done);
        write_increasing_msets(&mut s.conn(), keys, deadline);
        drop(_done);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(reads.iter().all(|&n| n > 0), "a reader never ran: {:?}", reads);
}

#[test]
fn mset_is_atomic_across_shards() {
    let s = server();
    let keys = keys_on_distinct_shards(SHARDS);
    read_during_msets(&s, &keys, 3, |r, c, last| {
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(|k| k.as_str()));
        let reply = c.cmd(&args);
        let values: Vec<Option<Vec<u8>>> = reply.array().iter().map(|v| v.opt_bytes()).collect();
        assert!(values.iter().all(|v| *v == values[0]), "reader {}: MGET saw a half-applied MSET: {:?}", r, reply);
        if let Some(v) = &values[0] {
            let v: i64 = std::str::from_utf8(v).unwrap().parse().unwrap();
            assert!(v >= *last, "reader {}: value went back from {} to {}", r, last, v);
            *last = v;
        }
    });
}

/// A cross-shard MSET runs as one part per shard, each on its own shard's
/// thread: a client reading the keys one at a time, in either order, must
/// still never see one key of an MSET written and then another key of it
/// unwritten (the keys are marked until their part runs). EXISTS, DEL and
/// MGET across the same shards keep answering meanwhile.
#[test]
fn single_key_reads_never_see_a_cross_shard_mset_half_done() {
    let s = server();
    let keys = keys_on_distinct_shards(SHARDS);
    read_during_msets(&s, &keys, 4, |r, c, last| {
        let mut order: Vec<&String> = keys.iter().collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for k in &order {
            let v = c.cmd(&["GET", k]).opt_bytes().map_or(0, |v| std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap());
            assert!(v >= *last, "reader {r}: {k} read {v} after another key of the same MSETs read {last}");
            *last = v;
        }
        let mut args = vec!["EXISTS"];
        args.extend(order.iter().map(|k| k.as_str()));
        let found = c.cmd(&args).int();
        assert!(found == 0 || found == keys.len() as i64, "reader {r}: EXISTS saw {found} of {} keys", keys.len());
    });
    let mut c = s.conn();
    let mut args = vec!["DEL"];
    args.extend(keys.iter().map(|k| k.as_str()));
    args.push("nosuchkey");
    assert_eq!(c.cmd(&args).int(), keys.len() as i64);
}

#[test]
fn pipelined_set_get_replies_stay_in_request_order() {
    let s = server();
    let mut c = s.conn();
    let mut req = Vec::new();
    for i in 0..1000 {
        common::encode_into(&mut req, &["SET", &format!("k{}", i), &i.to_string()]);
        common::encode_into(&mut req, &["GET", &format!("k{}", i)]);
    }
    c.send_raw(&req);
    for i in 0..1000 {
        assert_eq!(c.read(), Resp::ok(), "reply to SET k{}", i);
        assert_eq!(c.read(), Resp::bulk(i.to_string()), "reply to GET k{}", i);
    }
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

/// Local commands (PING, ECHO) interleaved with keyed ones on every shard and multi-shard
/// EXISTS/DEL, all in one write.
#[test]
fn pipelined_local_remote_and_multishard_replies_stay_in_order() {
    let s = server();
    let mut c = s.conn();
    let mut req = Vec::new();
    for i in 0..1000 {
        common::encode_into(&mut req, &["SET", &format!("k{}", i), &i.to_string()]);
    }
    c.send_raw(&req);
    for _ in 0..1000 {
        assert_eq!(c.read(), Resp::ok());
    }
    let mut req = Vec::new();
    let mut want = vec![];
    for i in 0..500 {
        common::encode_into(&mut req, &["GET", &format!("k{}", i)]);
        want.push(Resp::bulk(i.to_string()));
        common::encode_into(&mut req, &["ECHO", &format!("e{}", i)]);
        want.push(Resp::bulk(format!("e{}", i)));
        common::encode_into(&mut req, &["EXISTS", &format!("k{}", i), &format!("k{}", 999 - i), "nokey"]);
        want.push(Resp::Int(2));
        common::encode_into(&mut req, &["PING"]);
        want.push(Resp::Simple("PONG".into()));
    }
    common::encode_into(&mut req, &["DEL", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"]);
    want.push(Resp::Int(8));
    common::encode_into(&mut req, &["DBSIZE"]);
    want.push(Resp::Int(992));
    c.send_raw(&req);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&c.read(), w, "reply {} of the mixed pipeline", i);
    }
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

/// Several connections pipelining at once to keys on every shard: each sees its own order.
#[test]
fn concurrent_pipelines_keep_order() {
    let s = server();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                let mut c: Conn = s.conn();
                for round in 0..5 {
                    let mut req = Vec::new();
                    for i in 0..400 {
                        let k = format!("p{}:{}", t, i);
                        common::encode_into(&mut req, &["SET", &k, &format!("{}-{}", round, i)]);
                        common::encode_into(&mut req, &["GET", &k]);
                    }
                    c.send_raw(&req);
                    for i in 0..400 {
                        assert_eq!(c.read(), Resp::ok());
                        assert_eq!(c.read(), Resp::bulk(format!("{}-{}", round, i)), "thread {} round {} key {}", t, round, i);
                    }
                }
            });
        }
    });
}

/// CLIENT PAUSE across shards, checked against redis-server with the same
/// script: WRITE holds writes (reads pass), ALL holds everything, and the
/// held commands run when the pause ends or on CLIENT UNPAUSE. The bounds
/// are loose (a held reply must not come before most of the pause has
/// passed); nothing here measures speed.
#[test]
fn client_pause_holds_commands_until_the_deadline_or_unpause() {
    let (ringkv, redis) = Server::pair(&[], &["--shards", "3"]);
    for s in [&ringkv, &redis] {
        let who = s.name();
        let mut admin = s.conn();
        let mut c = s.conn();
        assert_eq!(c.cmd(&["SET", "k", "v0"]), Resp::ok(), "{who}");

        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "600", "WRITE"]), Resp::ok(), "{who}");
        let t = Instant::now();
        assert_eq!(c.cmd(&["GET", "k"]), Resp::bulk("v0"), "{who}: reads pass a WRITE pause");
        c.send(&["SET", "k", "v1"]);
        c.send(&["GET", "k"]);
        assert_eq!(c.read(), Resp::ok(), "{who}");
        assert!(t.elapsed() >= Duration::from_millis(450), "{who}: SET answered during the pause ({:?})", t.elapsed());
        assert_eq!(c.read(), Resp::bulk("v1"), "{who}: the pipeline behind it kept its order");

        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]), Resp::ok(), "{who}");
        let t = Instant::now();
        c.send(&["SET", "k", "v2"]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), Resp::ok(), "{who}");
        assert_eq!(c.read(), Resp::ok(), "{who}");
        assert!(t.elapsed() < Duration::from_secs(30), "{who}: UNPAUSE did not release the client");

        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "600"]), Resp::ok(), "{who}: ALL is the default");
        let t = Instant::now();
        assert_eq!(c.cmd(&["GET", "k"]), Resp::bulk("v2"), "{who}");
        assert!(t.elapsed() >= Duration::from_millis(450), "{who}: GET answered during an ALL pause ({:?})", t.elapsed());

        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "-1"]), Resp::Error("ERR timeout is negative".into()), "{who}");
        assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "10", "READ"]), Resp::Error("ERR CLIENT PAUSE mode must be WRITE or ALL".into()), "{who}");
    }
}

/// A database index above 255 survives the trip to another shard (it was
/// once sent as a byte: `SELECT 256` then a forwarded SET wrote db 0).
#[test]
fn database_index_above_255_reaches_the_owning_shard() {
    let s = Server::ringkv(&["--shards", "2", "--databases", "300"]);
    let mut c = s.conn();
    // Keys on both shards, so some commands run in place and some are forwarded.
    let keys: Vec<String> = (0..16).map(|i| format!("db-key-{}", i)).collect();
    assert!(keys.iter().any(|k| key_shard(k.as_bytes(), 2) == 0) && keys.iter().any(|k| key_shard(k.as_bytes(), 2) == 1));
    assert_eq!(c.cmd(&["SELECT", "256"]), Resp::ok());
    for k in &keys {
        assert_eq!(c.cmd(&["SET", k, "in-256"]), Resp::ok());
    }
    assert_eq!(c.cmd(&["SELECT", "0"]), Resp::ok());
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), Resp::Nil, "{} leaked into db 0", k);
    }
    assert_eq!(c.cmd(&["SELECT", "299"]), Resp::ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(0));
    assert_eq!(c.cmd(&["SELECT", "256"]), Resp::ok());
    for k in &keys {
        assert_eq!(c.cmd(&["GET", k]), Resp::bulk("in-256"));
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(keys.len() as i64));
}

/// More requests for another shard in one write than the mailbox bound lets
/// be outstanding (`REQUESTS_OUTSTANDING_MAX`, 8192): the connection waits
/// for replies instead of queueing without limit, and every reply still
/// comes back, in order.
#[test]
fn a_pipeline_past_the_mailbox_bound_is_answered_in_order() {
    let s = Server::ringkv(&["--shards", "2"]);
    let mut c = s.conn();
    // Keys of both shards: about half of them are forwarded whichever
    // shard serves this connection, more than the bound in one write.
    let n = 20_000;
    let keys: Vec<String> = (0..n).map(|i| format!("bound:{}", i)).collect();
    let mut req = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        common::encode_into(&mut req, &["SET", k, &i.to_string()]);
    }
    for k in &keys {
        common::encode_into(&mut req, &["GET", k]);
    }
    c.send_raw(&req);
    for i in 0..n {
        assert_eq!(c.read(), Resp::ok(), "reply to SET {}", i);
    }
    for i in 0..n {
        assert_eq!(c.read(), Resp::bulk(i.to_string()), "reply to GET {}", i);
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(n as i64));
}

/// `count` hashtags, one per shard of a `shards`-shard server.
fn tags_per_shard(shards: usize) -> Vec<String> {
    let mut by_shard: Vec<Option<String>> = vec![None; shards];
    let mut i = 0;
    while by_shard.iter().any(|t| t.is_none()) {
        let t = format!("{{s{}}}", i);
        by_shard[key_shard(t.as_bytes(), shards)].get_or_insert(t);
        i += 1;
    }
    by_shard.into_iter().flatten().collect()
}

/// MONITOR shows a command after it ran, sent by the shard that ran it: a
/// SET queued behind slow LCS calls on its key's shard appears when they are
/// done, not when the client's shard forwarded it. Run once per shard, so one
/// of the rounds forwards (the client lives on one of the two shards).
#[test]
fn monitor_shows_a_forwarded_command_after_it_ran() {
    const SHARDS: usize = 2;
    let s = Server::ringkv(&["--shards", &SHARDS.to_string()]);
    let mut mon = s.conn();
    assert_eq!(mon.cmd(&["MONITOR"]), Resp::ok());
    let mut w = s.conn();
    let mut rng = Rng::new(7);
    let text = |rng: &mut Rng| -> String { (0..2500).map(|_| (b'a' + rng.below(4) as u8) as char).collect() };
    for tag in tags_per_shard(SHARDS) {
        let (a, b, k) = (format!("{tag}a"), format!("{tag}b"), format!("{tag}k"));
        assert_eq!(w.cmd(&["SET", &a, &text(&mut rng)]), Resp::ok());
        assert_eq!(w.cmd(&["SET", &b, &text(&mut rng)]), Resp::ok());
        // Enough LCS calls for the run to take a while on any machine.
        let mut calls = 8;
        loop {
            let mut req = Vec::new();
            for _ in 0..calls {
                common::encode_into(&mut req, &["LCS", &a, &b, "LEN"]);
            }
            common::encode_into(&mut req, &["SET", &k, &calls.to_string()]);
            let sent = Instant::now();
            w.send_raw(&req);
            let marker = format!("\"SET\" \"{k}\" \"{calls}\"");
            let mut lcs_lines = 0;
            let shown = loop {
                let line = String::from_utf8(mon.read_frame().unwrap()).unwrap();
                if line.contains("\"LCS\"") {
                    lcs_lines += 1;
                }
                if line.contains(&marker) {
                    break Instant::now();
                }
            };
            for _ in 0..calls {
                assert!(matches!(w.read(), Resp::Int(_)));
            }
            assert_eq!(w.read(), Resp::ok());
            let done = Instant::now();
            assert!(lcs_lines >= calls, "the SET's line came before the LCS lines of the commands that ran before it");
            let run = done - sent;
            if run < Duration::from_millis(300) && calls < 512 {
                calls *= 2;
                continue;
            }
            // The line leaves once the SET ran, so after the LCS calls before
            // it: the replies follow it closely. Fed at forwarding time, it
            // came almost the whole run earlier.
            assert!(done - shown < run / 2, "MONITOR showed SET {k} {:?} before its pipeline's replies (run {:?})", done - shown, run);
            break;
        }
    }
}

/// A slowlog entry of a forwarded command names the client (addr and name),
/// as for one run on the client's own shard, and as redis-server does.
#[test]
fn slowlog_of_a_forwarded_command_names_the_client() {
    const SHARDS: usize = 2;
    let ringkv = Server::ringkv(&["--shards", &SHARDS.to_string()]);
    let redis = Server::redis(&[]);
    for s in [&ringkv, &redis] {
        let mut c = s.conn();
        assert_eq!(c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]), Resp::ok());
        assert_eq!(c.cmd(&["CLIENT", "SETNAME", "seam-client"]), Resp::ok());
        let info = String::from_utf8(c.cmd(&["CLIENT", "INFO"]).opt_bytes().unwrap()).unwrap();
        let addr = info.split(' ').find_map(|f| f.strip_prefix("addr=")).unwrap().to_string();
        let keys: Vec<String> = tags_per_shard(SHARDS).iter().map(|t| format!("{t}key")).collect();
        for k in &keys {
            assert_eq!(c.cmd(&["SET", k, "v"]), Resp::ok());
        }
        let got = c.cmd(&["SLOWLOG", "GET", "-1"]);
        for k in &keys {
            let entry = got
                .array()
                .iter()
                .map(|e| e.array())
                .find(|e| e[3].array() == [Resp::bulk("SET"), Resp::bulk(k), Resp::bulk("v")])
                .unwrap_or_else(|| panic!("{}: no slowlog entry for SET {k}: {got:?}", s.name()));
            assert_eq!(entry.len(), 6, "{}: {entry:?}", s.name());
            assert!(entry[0].int() >= 0 && entry[1].int() > 1_600_000_000 && entry[2].int() >= 0, "{}: {entry:?}", s.name());
            assert_eq!(entry[4], Resp::bulk(&addr), "{}: SET {k}", s.name());
            assert_eq!(entry[5], Resp::bulk("seam-client"), "{}: SET {k}", s.name());
        }
    }
}

/// Sets its flag when dropped: readers stop however the writers end (a
/// failed assertion included).
struct Done<'a>(&'a AtomicBool);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// `n` keys on shard `shard` of a `SHARDS`-shard server, named after `name`.
fn keys_on_shard(shard: usize, name: &str, n: usize) -> Vec<String> {
    let mut keys = vec![];
    let mut i = 0;
    while keys.len() < n {
        let k = format!("{{{}{}}}{}", name, i, name);
        if key_shard(k.as_bytes(), SHARDS) == shard {
            keys.push(k);
        }
        i += 1;
    }
    keys
}

/// Writers run cross-shard MSETs over overlapping key sets (each writer's
/// set shares shards and keys with its neighbours'), readers MGET all the
/// keys at once. The keys come in units of two on different shards that
/// every MSET writes together, so a reader that sees the two keys of a unit
/// differ has seen a torn MSET (or a torn MGET). Every writer finishes: the
/// operations over overlapping shard sets never deadlock.
#[test]
fn concurrent_cross_shard_msets_over_overlapping_keys_are_never_torn() {
    const UNITS: usize = SHARDS;
    const WRITES: usize = 400;
    const FILLERS: usize = 200;
    let s = server();
    // Unit u: one key on shard u, one on shard u+1.
    let units: Vec<[String; 2]> =
        (0..UNITS).map(|u| [keys_on_shard(u, &format!("a{u}_"), 1).remove(0), keys_on_shard((u + 1) % SHARDS, &format!("b{u}_"), 1).remove(0)]).collect();
    let all: Vec<&str> = units.iter().flat_map(|u| u.iter().map(|k| k.as_str())).collect();
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let (s, all, done) = (&s, &all, &done);
                scope.spawn(move || {
                    let mut c = s.conn();
                    let mut args = vec!["MGET"];
                    args.extend(all.iter().copied());
                    let mut reads = 0;
                    while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                        let reply = c.cmd(&args);
                        let v: Vec<Option<Vec<u8>>> = reply.array().iter().map(|v| v.opt_bytes()).collect();
                        for u in 0..UNITS {
                            assert_eq!(v[2 * u], v[2 * u + 1], "reader {r}: unit {u} torn: {reply:?}");
                        }
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        let _done = Done(&done);
        let writers: Vec<_> = (0..UNITS)
            .map(|w| {
                let (s, units) = (&s, &units);
                scope.spawn(move || {
                    let mut c = s.conn();
                    let mut rng = Rng::new(77 + w as u64);
                    for i in 0..WRITES {
                        assert!(Instant::now() < deadline, "writer {w}: only {i} MSETs before the deadline");
                        // Units w and w+1, sometimes w+2 too: 3 or 4 shards,
                        // overlapping the neighbours' sets.
                        let width = 2 + rng.below(2) as usize;
                        let v = format!("{w}:{i}");
                        // The first keys of the units, then fillers, then the
                        // second keys: a torn write would stay visible a while.
                        let mut args = vec!["MSET".to_string()];
                        for half in 0..2 {
                            for unit in (0..width).map(|d| &units[(w + d) % UNITS]) {
                                args.push(unit[half].clone());
                                args.push(v.clone());
                            }
                            if half == 0 {
                                for f in 0..FILLERS {
                                    args.push(format!("filler:{w}:{f}"));
                                    args.push(v.clone());
                                }
                            }
                        }
                        assert_eq!(c.cmd(&args), Resp::ok(), "writer {w}");
                    }
                })
            })
            .collect();
        for h in writers {
            h.join().unwrap();
        }
        drop(_done);
        let reads: Vec<usize> = readers.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(reads.iter().all(|&n| n > 0), "a reader never ran: {reads:?}");
    });
    // Cross-shard DEL and EXISTS over the same units: all or nothing.
    let mut c = s.conn();
    let mut args = vec!["EXISTS"];
    args.extend(all.iter().copied());
    assert_eq!(c.cmd(&args), Resp::Int(all.len() as i64));
    args[0] = "DEL";
    assert_eq!(c.cmd(&args), Resp::Int(all.len() as i64));
    args[0] = "EXISTS";
    assert_eq!(c.cmd(&args), Resp::Int(0));
}

/// Clients hammer cross-shard MSETs on shards 0 and 1 while another streams
/// single-shard SET/GET on keys of shards 2 and 3: the stream keeps going
/// (no request of it waits long), and so do the MSETs.
#[test]
fn single_shard_commands_keep_running_during_cross_shard_load_elsewhere() {
    let s = server();
    let (a, b) = (keys_on_shard(0, "x", 4), keys_on_shard(1, "y", 4));
    let quiet: Vec<String> = [keys_on_shard(2, "q", 2), keys_on_shard(3, "r", 2)].concat();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hammers: Vec<_> = (0..4)
            .map(|h| {
                let (s, a, b, done) = (&s, &a, &b, &done);
                scope.spawn(move || {
                    let mut c = s.conn();
                    let mut n = 0u64;
                    let give_up = Instant::now() + Duration::from_secs(30);
                    while !done.load(Ordering::Acquire) && Instant::now() < give_up {
                        let v = format!("{h}:{n}");
                        let mut args = vec!["MSET"];
                        for (ka, kb) in a.iter().zip(b) {
                            args.extend([ka.as_str(), v.as_str(), kb.as_str(), v.as_str()]);
                        }
                        // Pipelined: several intents of one client in flight.
                        for _ in 0..4 {
                            c.send(&args);
                        }
                        for _ in 0..4 {
                            assert_eq!(c.read(), Resp::ok());
                        }
                        n += 4;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut c = s.conn();
        let start = Instant::now();
        let mut worst = Duration::ZERO;
        let mut ops = 0;
        while start.elapsed() < Duration::from_secs(2) {
            for k in &quiet {
                let t = Instant::now();
                assert_eq!(c.cmd(&["SET", k, &ops.to_string()]), Resp::ok());
                assert_eq!(c.cmd(&["GET", k]), Resp::bulk(ops.to_string()));
                worst = worst.max(t.elapsed());
                ops += 1;
            }
        }
        done.store(true, Ordering::Release);
        let msets: Vec<u64> = hammers.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(ops >= 100, "only {ops} single-shard SET/GET pairs in 2 s");
        assert!(worst < Duration::from_millis(500), "a single-shard SET/GET pair waited {worst:?}");
        assert!(msets.iter().all(|&n| n > 0), "a cross-shard writer made no progress: {msets:?}");
    });
}

/// Clients that pipeline cross-shard commands and close without reading
/// leave no intent behind: the shards they queued on serve on at once.
#[test]
fn closed_connections_withdraw_their_queued_multi_shard_commands() {
    let s = server();
    let keys = keys_on_distinct_shards(SHARDS);
    let mut burst = Vec::new();
    for i in 0..200 {
        let v = i.to_string();
        let mut args = vec!["MSET"];
        for k in &keys {
            args.extend([k.as_str(), v.as_str()]);
        }
        common::encode_into(&mut burst, &args);
        let mut mget = vec!["MGET"];
        mget.extend(keys.iter().map(|k| k.as_str()));
        common::encode_into(&mut burst, &mget);
    }
    for _ in 0..3 {
        let streams: Vec<_> = (0..16)
            .map(|_| {
                let mut st = s.stream();
                use std::io::Write;
                let _ = st.write_all(&burst);
                st
            })
            .collect();
        drop(streams);
        let mut c = s.conn();
        let t = Instant::now();
        for k in &keys {
            c.cmd(&["GET", k]);
        }
        let mut mget = vec!["MGET"];
        mget.extend(keys.iter().map(|k| k.as_str()));
        let reply = c.cmd(&mget);
        let v: Vec<Option<Vec<u8>>> = reply.array().iter().map(|v| v.opt_bytes()).collect();
        assert!(v.iter().all(|x| *x == v[0]), "torn: {reply:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "the shards were stuck for {:?}", t.elapsed());
    }
    let mut c = s.conn();
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}
