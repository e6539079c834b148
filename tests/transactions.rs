//! MULTI/EXEC and WATCH across shards (`--shards 3`): optimistic WATCH
//! increments racing from many connections, atomicity of a cross-shard EXEC
//! under concurrent readers, WATCH invalidated from other connections, by
//! expiry and by FLUSHALL, and an EXEC's writes in the AOF.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{copy_aof_dir, key_shard, path_str, Conn, Resp, Server};

const SHARDS: usize = 3;

fn server() -> Server {
    Server::ringkv(&["--shards", &SHARDS.to_string()])
}

/// A key of shard `shard` (with `--shards 3`), named after `prefix`.
fn key_on(prefix: &str, shard: usize) -> String {
    (0..).map(|i| format!("{prefix}:{i}")).find(|k| key_shard(k.as_bytes(), SHARDS) == shard).unwrap()
}

fn keys_on_every_shard(prefix: &str) -> Vec<String> {
    (0..SHARDS).map(|s| key_on(prefix, s)).collect()
}

fn int_of(r: &Resp) -> i64 {
    match r {
        Resp::Bulk(b) => std::str::from_utf8(b).unwrap().parse().unwrap(),
        Resp::Nil => 0,
        other => panic!("expected a number, got {other:?}"),
    }
}

/// WATCH key...; GET each; MULTI; SET each to its value + 1; EXEC, retried
/// while EXEC answers null. Returns the number of retries.
fn optimistic_increment(c: &mut Conn, keys: &[String]) -> u64 {
    let mut retries = 0;
    loop {
        let mut watch = vec!["WATCH".to_string()];
        watch.extend(keys.iter().cloned());
        assert_eq!(c.cmd(&watch), Resp::ok());
        let values: Vec<i64> = keys.iter().map(|k| int_of(&c.cmd(&["GET", k]))).collect();
        assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
        for (k, v) in keys.iter().zip(&values) {
            assert_eq!(c.cmd(&["SET", k, &(v + 1).to_string()]), Resp::Simple("QUEUED".into()));
        }
        match c.cmd(&["EXEC"]) {
            Resp::Nil => retries += 1,
            Resp::Array(replies) => {
                assert!(replies.iter().all(|r| *r == Resp::ok()), "{replies:?}");
                return retries;
            }
            other => panic!("EXEC replied {other:?}"),
        }
    }
}

/// N connections increment counters on every shard with WATCH/MULTI/EXEC,
/// one key at a time and two keys of different shards at once: no
/// increment is lost or doubled, and the race did make some EXECs fail.
#[test]
fn watch_race_counts_exactly() {
    const CLIENTS: usize = 6;
    const ROUNDS: usize = 60;
    let srv = server();
    let singles = keys_on_every_shard("counter");
    let pair = vec![key_on("pair", 1), key_on("pair", 2)];
    let mut threads = vec![];
    for t in 0..CLIENTS {
        let mut c = srv.conn();
        let (singles, pair) = (singles.clone(), pair.clone());
        threads.push(std::thread::spawn(move || {
            let mut retries = 0;
            for round in 0..ROUNDS {
                retries += optimistic_increment(&mut c, std::slice::from_ref(&singles[(round + t) % singles.len()]));
                retries += optimistic_increment(&mut c, &pair);
            }
            retries
        }));
    }
    let retries: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    let mut c = srv.conn();
    let per_single = (CLIENTS * ROUNDS / singles.len()) as i64;
    for k in &singles {
        assert_eq!(int_of(&c.cmd(&["GET", k])), per_single, "{k}");
    }
    for k in &pair {
        assert_eq!(int_of(&c.cmd(&["GET", k])), (CLIENTS * ROUNDS) as i64, "{k}");
    }
    assert!(retries > 0, "no EXEC ever failed: the clients did not race");
}

/// The same race with every multi-shard WATCH and EXEC forced through hops
/// (`hop-part-delay`, ringkv's own config: each remote part waits 1 ms):
/// WATCH's one-round hop and the watched EXEC's two rounds keep the count
/// exact, and a RENAME and an SMOVE back and forth between the shards
/// lose nothing.
#[test]
fn watch_race_by_hops_counts_exactly() {
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 12;
    let srv = server();
    let mut setup = srv.conn();
    if srv.name() == "ringkv" {
        assert_eq!(setup.cmd(&["CONFIG", "SET", "hop-part-delay", "1"]), Resp::ok());
    }
    let pair = vec![key_on("hpair", 0), key_on("hpair", 2)];
    let (from, to) = (key_on("moved", 1), key_on("moved", 2));
    let (s0, s2) = (key_on("set", 0), key_on("set", 2));
    assert_eq!(setup.cmd(&["SET", &from, "v"]), Resp::ok());
    assert_eq!(setup.cmd(&["SADD", &s0, "m", "n"]), Resp::Int(2));
    let mover = {
        let mut c = srv.conn();
        let (from, to, s0, s2) = (from.clone(), to.clone(), s0.clone(), s2.clone());
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                assert_eq!(c.cmd(&["RENAME", &from, &to]), Resp::ok());
                assert_eq!(c.cmd(&["RENAMENX", &to, &from]), Resp::Int(1));
                assert_eq!(c.cmd(&["SMOVE", &s0, &s2, "m"]), Resp::Int(1));
                assert_eq!(c.cmd(&["SMOVE", &s0, &s2, "x"]), Resp::Int(0));
                assert_eq!(c.cmd(&["SMOVE", &s2, &s0, "m"]), Resp::Int(1));
                assert!(matches!(c.cmd(&["SMOVE", &s0, &from, "m"]), Resp::Error(e) if e.starts_with("WRONGTYPE")));
            }
        })
    };
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = srv.conn();
            let pair = pair.clone();
            std::thread::spawn(move || (0..ROUNDS).map(|_| optimistic_increment(&mut c, &pair)).sum::<u64>())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    mover.join().unwrap();
    for k in &pair {
        assert_eq!(int_of(&setup.cmd(&["GET", k])), (CLIENTS * ROUNDS) as i64, "{k}");
    }
    assert_eq!(setup.cmd(&["GET", &from]).opt_bytes(), Some(b"v".to_vec()));
    assert_eq!(setup.cmd(&["EXISTS", &to, &s2]), Resp::Int(0));
    assert_eq!(setup.cmd(&["SCARD", &s0]), Resp::Int(2));
}

/// WATCH sent with its MULTI ... EXEC in one write (the server folds the
/// other shards' WATCH into the EXEC: `network::rounds`, "WATCH folded into
/// EXEC"): it commits as Redis runs such a batch, without another client in
/// between; the client's own write after WATCH in the same write still
/// fails it (single-shard, multi-shard, expiry set); a WATCH whose EXEC
/// comes in a later write, after another connection's write, fails; and
/// batched transactions racing with INCRs lose no increment.
#[test]
fn watch_batched_with_its_exec() {
    let srv = server();
    let mut c = srv.conn();
    let mut other = srv.conn();
    let keys = keys_on_every_shard("batched");
    let batch = |c: &mut Conn, between: &[Vec<String>], tail: bool| -> Vec<Resp> {
        let mut cmds: Vec<Vec<String>> = vec![["WATCH"].iter().map(|s| s.to_string()).chain(keys.iter().cloned()).collect()];
        cmds.extend(between.iter().cloned());
        cmds.push(vec!["MULTI".into()]);
        cmds.extend(keys.iter().map(|k| vec!["INCR".to_string(), k.clone()]));
        if tail {
            cmds.push(vec!["EXEC".into()]);
        }
        let mut bytes = Vec::new();
        for cmd in &cmds {
            common::encode_into(&mut bytes, cmd);
        }
        c.send_raw(&bytes);
        (0..cmds.len()).map(|_| c.read()).collect()
    };
    let exec_of = |replies: &[Resp]| replies.last().unwrap().clone();
    let counts = |c: &mut Conn| -> Vec<i64> { keys.iter().map(|k| int_of(&c.cmd(&["GET", k]))).collect() };
    let all = |n: i64| Resp::Array(vec![Resp::Int(n); SHARDS]);
    // In one write: it commits.
    assert_eq!(exec_of(&batch(&mut c, &[], true)), all(1));
    // The client's own writes after WATCH fail it, whichever shard.
    for k in &keys {
        for write in [vec!["SET", k, "5"], vec!["DEL", k], vec!["EXPIRE", k, "100"], vec!["MSET", &keys[0], "5", &keys[SHARDS - 1], "5"]] {
            other.cmd(&["SET", k, "1"]);
            let between = vec![write.iter().map(|s| s.to_string()).collect()];
            assert_eq!(exec_of(&batch(&mut c, &between, true)), Resp::Nil, "{write:?} after WATCH");
        }
    }
    // A read between does not; nor one of several shards.
    let reads = vec![vec!["GET".to_string(), keys[SHARDS - 1].clone()], ["MGET"].iter().map(|s| s.to_string()).chain(keys.iter().cloned()).collect()];
    let before = counts(&mut other);
    let replies = batch(&mut c, &reads, true);
    assert!(matches!(exec_of(&replies), Resp::Array(ref v) if v.len() == SHARDS), "{replies:?}");
    assert_eq!(counts(&mut other), before.iter().map(|v| v + 1).collect::<Vec<_>>());
    // EXEC in a later write, after another connection's write: it fails.
    for k in &keys {
        let replies = batch(&mut c, &[], false);
        assert_eq!(replies[0], Resp::ok());
        assert!(other.cmd(&["INCR", k]).int() > 0);
        assert_eq!(c.cmd(&["EXEC"]), Resp::Nil, "INCR {k} between the writes");
        let replies = batch(&mut c, &[], false);
        assert_eq!(replies.len(), SHARDS + 2);
        assert!(other.cmd(&["GET", k]).opt_bytes().is_some());
        assert!(matches!(c.cmd(&["EXEC"]), Resp::Array(_)), "nothing between the writes");
    }
    // DISCARD after WATCH in the same write unwatches: a later write is no concern.
    let mut bytes = Vec::new();
    for cmd in [vec!["WATCH", &keys[0], &keys[SHARDS - 1]], vec!["MULTI"], vec!["DISCARD"]] {
        common::encode_into(&mut bytes, &cmd);
    }
    c.send_raw(&bytes);
    assert_eq!((0..3).map(|_| c.read()).collect::<Vec<_>>(), vec![Resp::ok(); 3]);
    other.cmd(&["INCR", &keys[SHARDS - 1]]);
    assert_eq!(exec_ping(&mut c), pong());
    // Racing: batched transactions and plain INCRs count exactly.
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 100;
    let start = counts(&mut other);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let mut c = srv.conn();
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut commits = 0i64;
                for _ in 0..ROUNDS {
                    if t % 2 == 1 {
                        for k in &keys {
                            assert!(c.cmd(&["INCR", k]).int() > 0);
                        }
                        continue;
                    }
                    let mut bytes = Vec::new();
                    common::encode_into(&mut bytes, &["WATCH".to_string()].into_iter().chain(keys.iter().cloned()).collect::<Vec<_>>());
                    common::encode_into(&mut bytes, &["MULTI"]);
                    for k in &keys {
                        common::encode_into(&mut bytes, &["INCR", k]);
                    }
                    common::encode_into(&mut bytes, &["EXEC"]);
                    c.send_raw(&bytes);
                    let replies: Vec<Resp> = (0..keys.len() + 3).map(|_| c.read()).collect();
                    match replies.last().unwrap() {
                        Resp::Array(v) => {
                            assert_eq!(v.len(), keys.len());
                            commits += 1;
                        }
                        Resp::Nil => {}
                        other => panic!("EXEC replied {other:?}"),
                    }
                }
                commits
            })
        })
        .collect();
    let commits: i64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    let plain = (CLIENTS / 2 * ROUNDS) as i64;
    for (k, (now, was)) in keys.iter().zip(counts(&mut other).iter().zip(&start)) {
        assert_eq!(now - was, commits + plain, "{k}");
    }
}

/// Transactions move amounts between two keys of different shards; readers
/// using MULTI GET GET EXEC and MGET never see a sum other than the total.
#[test]
fn cross_shard_exec_is_atomic_for_readers() {
    const TOTAL: i64 = 2000;
    let srv = server();
    let (a, b) = (key_on("acct", 0), key_on("acct", 1));
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["MSET", &a, "1000", &b, "1000"]), Resp::ok());
    let stop = Arc::new(AtomicBool::new(false));
    let mut movers = vec![];
    for t in 0..3u64 {
        let mut c = srv.conn();
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        movers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let amount = ((n * 7 + t) % 50 + 1).to_string();
                let (from, to) = if n.is_multiple_of(2) { (&a, &b) } else { (&b, &a) };
                c.send(&["MULTI"]);
                c.send(&["DECRBY", from, &amount]);
                c.send(&["INCRBY", to, &amount]);
                c.send(&["EXEC"]);
                assert_eq!(c.read(), Resp::ok());
                assert_eq!(c.read(), Resp::Simple("QUEUED".into()));
                assert_eq!(c.read(), Resp::Simple("QUEUED".into()));
                let replies = c.read();
                assert_eq!(replies.array().len(), 2, "{replies:?}");
                n += 1;
            }
            n
        }));
    }
    let mut readers = vec![];
    for r in 0..4u32 {
        let mut c = srv.conn();
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let values = if r.is_multiple_of(2) {
                    c.send(&["MULTI"]);
                    c.send(&["GET", &a]);
                    c.send(&["GET", &b]);
                    c.send(&["EXEC"]);
                    for _ in 0..3 {
                        c.read();
                    }
                    c.read()
                } else {
                    c.cmd(&["MGET", &a, &b])
                };
                let sum: i64 = values.array().iter().map(int_of).sum();
                assert_eq!(sum, TOTAL, "a reader saw part of a transaction: {values:?}");
                reads += 1;
            }
            reads
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let moves: u64 = movers.into_iter().map(|h| h.join().unwrap()).sum();
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(moves > 10 && reads > 10, "too little ran to mean anything: {moves} moves, {reads} reads");
    let values = c.cmd(&["MGET", &a, &b]);
    assert_eq!(values.array().iter().map(int_of).sum::<i64>(), TOTAL);
}

fn exec_ping(c: &mut Conn) -> Resp {
    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("QUEUED".into()));
    c.cmd(&["EXEC"])
}

fn pong() -> Resp {
    Resp::Array(vec![Resp::Simple("PONG".into())])
}

/// A write from other connections (which the server spreads over its
/// shards) to a watched key of any shard fails the EXEC; a read does not.
#[test]
fn watch_invalidated_from_other_connections() {
    let srv = server();
    let mut watcher = srv.conn();
    let mut others: Vec<Conn> = (0..6).map(|_| srv.conn()).collect();
    for key in keys_on_every_shard("w") {
        for other in &mut others {
            assert_eq!(watcher.cmd(&["WATCH", &key]), Resp::ok());
            other.cmd(&["GET", &key]);
            assert_eq!(exec_ping(&mut watcher), pong(), "a read touched {key}");
            assert_eq!(watcher.cmd(&["WATCH", &key]), Resp::ok());
            assert!(other.cmd(&["INCR", &key]).int() > 0);
            assert_eq!(exec_ping(&mut watcher), Resp::Nil, "INCR {key} from another connection");
            assert_eq!(watcher.cmd(&["WATCH", &key, "unrelated"]), Resp::ok());
            other.cmd(&["DEL", &key]);
            assert_eq!(exec_ping(&mut watcher), Resp::Nil, "DEL {key} from another connection");
            // UNWATCH: a later write is no concern of the watcher's.
            assert_eq!(watcher.cmd(&["WATCH", &key]), Resp::ok());
            assert_eq!(watcher.cmd(&["UNWATCH"]), Resp::ok());
            other.cmd(&["SET", &key, "1"]);
            assert_eq!(exec_ping(&mut watcher), pong());
        }
    }
}

/// A watched key that expires before EXEC fails it, whether the key was
/// deleted meanwhile (active expiry) or not yet (lazy).
#[test]
fn watch_invalidated_by_expiry() {
    let srv = server();
    let mut c = srv.conn();
    for key in keys_on_every_shard("ttl") {
        assert_eq!(c.cmd(&["SET", &key, "v", "PX", "50"]), Resp::ok());
        assert_eq!(c.cmd(&["WATCH", &key]), Resp::ok());
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(exec_ping(&mut c), Resp::Nil, "{key} expired after WATCH");
    }
    // Wait until active expiry deleted the key: the deletion touches it.
    for key in keys_on_every_shard("ttl2") {
        assert_eq!(c.cmd(&["SET", &key, "v", "PX", "30"]), Resp::ok());
        assert_eq!(c.cmd(&["WATCH", &key]), Resp::ok());
        let mut other = srv.conn();
        let deadline = Instant::now() + Duration::from_secs(10);
        while other.cmd(&["DBSIZE"]).int() > 0 {
            assert!(Instant::now() < deadline, "active expiry did not delete {key}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(exec_ping(&mut c), Resp::Nil, "{key} expired by active expiry after WATCH");
    }
}

/// FLUSHALL from another connection touches watched keys that exist, on
/// every shard, and not watched keys that do not.
#[test]
fn watch_invalidated_by_flushall() {
    let srv = server();
    let mut c = srv.conn();
    let mut other = srv.conn();
    for key in keys_on_every_shard("f") {
        assert_eq!(c.cmd(&["SET", &key, "1"]), Resp::ok());
        assert_eq!(c.cmd(&["WATCH", &key]), Resp::ok());
        assert_eq!(other.cmd(&["FLUSHALL"]), Resp::ok());
        assert_eq!(exec_ping(&mut c), Resp::Nil, "FLUSHALL with {key}");
        assert_eq!(c.cmd(&["WATCH", &key]), Resp::ok());
        assert_eq!(other.cmd(&["FLUSHALL"]), Resp::ok());
        assert_eq!(exec_ping(&mut c), pong(), "FLUSHALL without {key}");
    }
}

/// The AOF shows an EXEC of several writes as MULTI ... EXEC, a single
/// write alone, and the writes reload; a MULTI left open at the file's end
/// is reverted (aof-load-truncated).
#[test]
fn exec_writes_reach_the_aof_and_reload() {
    let srv = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--shards", &SHARDS.to_string()]);
    let keys = keys_on_every_shard("aof");
    let mut c = srv.conn();
    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
    c.cmd(&["SET", &keys[0], "1"]);
    c.cmd(&["SET", &keys[1], "2"]);
    c.cmd(&["GET", &keys[2]]);
    c.cmd(&["INCR", &keys[2]]);
    assert_eq!(c.cmd(&["EXEC"]).array().len(), 4);
    assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
    c.cmd(&["SET", "single", "s"]);
    c.cmd(&["GET", "single"]);
    assert_eq!(c.cmd(&["EXEC"]).array().len(), 2);
    let incr = srv.dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let text = String::from_utf8(std::fs::read(&incr).unwrap()).unwrap();
    let resp = |args: &[&str]| String::from_utf8(common::encode(args)).unwrap();
    let unit = [
        resp(&["MULTI"]),
        resp(&["SET", &keys[0], "1"]),
        resp(&["SET", &keys[1], "2"]),
        resp(&["INCR", &keys[2]]),
        resp(&["EXEC"]),
        resp(&["SET", "single", "s"]),
    ];
    let mut at = 0;
    for part in &unit {
        let found = text[at..].find(part.as_str()).unwrap_or_else(|| panic!("{part:?} not in order in the incr file:\n{text}"));
        at += found + part.len();
    }
    assert_eq!(text.matches("MULTI").count(), 1, "the single-write EXEC is not wrapped:\n{text}");
    let dir = copy_aof_dir("ringkv-multi", &srv.dir, "exec");
    drop(srv);
    // A transaction cut short at the end of the file.
    let mut tail = common::encode(&["MULTI"]);
    tail.extend(common::encode(&["SET", "reverted", "1"]));
    let mut file = std::fs::OpenOptions::new().append(true).open(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    std::io::Write::write_all(&mut file, &tail).unwrap();
    drop(file);
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &path_str(&dir), "--shards", "2"]);
    let mut c = again.conn();
    assert_eq!(
        c.cmd(&["MGET", &keys[0], &keys[1], &keys[2], "single", "reverted"]),
        Resp::Array(vec![Resp::bulk("1"), Resp::bulk("2"), Resp::bulk("1"), Resp::bulk("s"), Resp::Nil])
    );
    assert!(again.logs().contains("Revert incomplete MULTI/EXEC transaction in AOF file appendonly.aof.1.incr.aof"), "{}", again.logs());
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CLIENT LIST as another connection sees a client in MULTI (`flags=x`,
/// `multi=` the commands queued) whose watched key was touched (`d`), and
/// after its EXEC was refused (`flags=N multi=-1`).
#[test]
fn client_list_shows_the_transaction() {
    let srv = server();
    let mut a = srv.conn();
    let mut b = srv.conn();
    let key = key_on("cl", 2);
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "txn"]), Resp::ok());
    assert_eq!(a.cmd(&["WATCH", &key]), Resp::ok());
    assert_eq!(a.cmd(&["MULTI"]), Resp::ok());
    a.cmd(&["SET", "a", "1"]);
    a.cmd(&["SET", "b", "1"]);
    assert_eq!(b.cmd(&["SET", &key, "2"]), Resp::ok());
    let line = |b: &mut Conn| {
        let list = String::from_utf8(b.cmd(&["CLIENT", "LIST"]).opt_bytes().unwrap()).unwrap();
        let line = list.lines().find(|l| l.contains(" name=txn ")).unwrap().to_string();
        let field = |f: &str| line.split(' ').find_map(|kv| kv.strip_prefix(f)).unwrap().to_string();
        (field("flags="), field("multi="))
    };
    assert_eq!(line(&mut b), ("xd".to_string(), "2".to_string()));
    assert!(matches!(a.cmd(&["EXEC", "extra"]), Resp::Error(e) if e.starts_with("EXECABORT Transaction discarded because of: wrong number")));
    assert_eq!(line(&mut b), ("N".to_string(), "-1".to_string()));
}

/// (P|S)SUBSCRIBE and UNSUBSCRIBE queued in MULTI run at EXEC on the shards
/// owning their channels: the EXEC holds them (it used to hold only the
/// client's shard, and a channel of another shard panicked that thread).
/// RESP2 and RESP3, channels of every shard, several connections so that
/// the clients land on several shards; a PUBLISH then reaches them.
#[test]
fn subscribe_inside_exec_registers_on_the_channels_shards() {
    let s = server();
    let mut publisher = s.conn();
    let channels = common::keys_per_shard("chan", SHARDS);
    for resp in ["2", "3"] {
        for ch in &channels {
            for _ in 0..3 {
                let mut c = s.conn();
                if resp == "3" {
                    assert!(matches!(c.cmd(&["HELLO", "3"]), Resp::Map(_)));
                }
                assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
                // One confirmation per command: EXEC's `*N` counts commands.
                assert_eq!(c.cmd(&["SUBSCRIBE", ch]), Resp::Simple("QUEUED".into()));
                assert_eq!(c.cmd(&["UNSUBSCRIBE", "other"]), Resp::Simple("QUEUED".into()));
                let confirm = |kind: &str, name: &str, n: i64| {
                    let v = vec![Resp::bulk(kind), Resp::bulk(name), Resp::Int(n)];
                    if resp == "3" {
                        Resp::Push(v)
                    } else {
                        Resp::Array(v)
                    }
                };
                let want = vec![confirm("subscribe", ch, 1), confirm("unsubscribe", "other", 1)];
                assert_eq!(c.cmd(&["EXEC"]), Resp::Array(want), "RESP{resp} {ch}");
                assert_eq!(publisher.cmd(&["PUBLISH", ch, "hi"]).int(), 1, "RESP{resp} {ch}");
                let msg = vec![Resp::bulk("message"), Resp::bulk(ch), Resp::bulk("hi")];
                assert_eq!(c.read(), if resp == "3" { Resp::Push(msg) } else { Resp::Array(msg) });
                // The next PUBLISH counts the next client alone: wait until
                // this one's close is processed (its home shard reads the EOF
                // on its own thread, maybe after the next PUBLISH ran).
                drop(c);
                let gone = (0..500).any(|_| {
                    let n = publisher.cmd(&["PUBSUB", "NUMSUB", ch]);
                    n == Resp::Array(vec![Resp::bulk(ch), Resp::Int(0)]) || {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        false
                    }
                });
                assert!(gone, "RESP{resp} {ch}: the closed subscriber is still counted");
            }
        }
    }
}

/// CLIENT REPLY inside EXEC, bytes as redis-server 7.0.15 sends them
/// (audit21): each reply is written or not by the mode at its time, so an
/// OFF among the queued commands keeps the array header and what came before
/// it (a broken array, as Redis's) and an ON lets the rest through again;
/// with replies off before MULTI only what an ON inside lets through comes;
/// a SKIP queued inside applies to the command after EXEC. Over one shard
/// and over three (the transaction then holds them all).
#[test]
fn client_reply_inside_exec_as_redis() {
    let s = server();
    let k = keys_on_every_shard("reply");
    let cases: Vec<(Vec<Vec<&str>>, &[u8])> = vec![
        (
            vec![
                vec!["MULTI"],
                vec!["PING", "a"],
                vec!["CLIENT", "REPLY", "OFF"],
                vec!["PING", "b"],
                vec!["EXEC"],
                vec!["PING", "x"],
                vec!["CLIENT", "REPLY", "ON"],
                vec!["PING", "y"],
            ],
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n$1\r\na\r\n+OK\r\n$1\r\ny\r\n",
        ),
        (
            vec![
                vec!["CLIENT", "REPLY", "OFF"],
                vec!["MULTI"],
                vec!["PING", "a"],
                vec!["CLIENT", "REPLY", "ON"],
                vec!["PING", "b"],
                vec!["EXEC"],
                vec!["PING", "c"],
            ],
            b"+OK\r\n$1\r\nb\r\n$1\r\nc\r\n",
        ),
        (
            vec![vec!["MULTI"], vec!["CLIENT", "REPLY", "SKIP"], vec!["PING", "a"], vec!["EXEC"], vec!["PING", "x"], vec!["PING", "y"]],
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$1\r\na\r\n$1\r\ny\r\n",
        ),
        (
            vec![
                vec!["MULTI"],
                vec!["SET", &k[0], "1"],
                vec!["SET", &k[1], "2"],
                vec!["SET", &k[2], "3"],
                vec!["CLIENT", "REPLY", "OFF"],
                vec!["GET", &k[0]],
                vec!["EXEC"],
                vec!["CLIENT", "REPLY", "ON"],
                vec!["MGET", &k[0], &k[1], &k[2]],
            ],
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*5\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n",
        ),
    ];
    for (commands, want) in cases {
        let chunks: Vec<Vec<u8>> = commands.iter().map(|c| common::encode(c)).collect();
        let (got, _) = common::feed(&s, &chunks, Duration::from_millis(300));
        assert_eq!(common::escape(&got, 4096), common::escape(want, 4096), "{commands:?}");
    }
}

/// SSUBSCRIBE queued in MULTI is refused when EXEC runs it (Redis 7.0's
/// CLIENT_DENY_BLOCKING inside EXEC), while SUBSCRIBE and PSUBSCRIBE go
/// through; the refused one leaves no subscription (audit21).
#[test]
fn ssubscribe_inside_exec_is_refused() {
    let s = server();
    let k = keys_on_every_shard("deny");
    let mut c = s.conn();
    let mut other = s.conn();
    for keys in [&k[..1], &k[..]] {
        assert_eq!(c.cmd(&["MULTI"]), Resp::ok());
        for key in keys {
            assert_eq!(c.cmd(&["SET", key, "1"]), Resp::Simple("QUEUED".into()));
        }
        assert_eq!(c.cmd(&["SSUBSCRIBE", "sch"]), Resp::Simple("QUEUED".into()));
        assert_eq!(c.cmd(&["PSUBSCRIBE", "p*"]), Resp::Simple("QUEUED".into()));
        let Resp::Array(replies) = c.cmd(&["EXEC"]) else { panic!("EXEC") };
        assert_eq!(replies.len(), keys.len() + 2);
        assert_eq!(replies[keys.len()], Resp::Error("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client".into()), "{keys:?}");
        assert_eq!(replies[keys.len() + 1], Resp::Array(vec![Resp::bulk("psubscribe"), Resp::bulk("p*"), Resp::Int(1)]));
        assert_eq!(other.cmd(&["PUBSUB", "SHARDNUMSUB", "sch"]), Resp::Array(vec![Resp::bulk("sch"), Resp::Int(0)]));
        assert_eq!(c.cmd(&["RESET"]), Resp::Simple("RESET".into()));
    }
}

/// XSETID is a write that touches no WATCH: Redis 7.0's XSETID calls no
/// `signalModifiedKey` (audit21). XADD, beside it, does.
#[test]
fn xsetid_leaves_a_watched_key_untouched() {
    let s = server();
    let mut c = s.conn();
    let mut other = s.conn();
    for key in keys_on_every_shard("xsetid") {
        assert_eq!(c.cmd(&["XADD", &key, "1-1", "f", "v"]), Resp::bulk("1-1"));
        assert_eq!(c.cmd(&["WATCH", &key]), Resp::ok());
        assert_eq!(other.cmd(&["XSETID", &key, "5-5"]), Resp::ok());
        assert_eq!(exec_ping(&mut c), pong(), "{key}: XSETID touched the watched key");
        assert_eq!(c.cmd(&["WATCH", &key]), Resp::ok());
        assert_eq!(other.cmd(&["XADD", &key, "6-1", "f", "v"]), Resp::bulk("6-1"));
        assert_eq!(exec_ping(&mut c), Resp::Nil, "{key}: XADD did not touch the watched key");
    }
}
