//! One causal order for the replication stream and the AOF across shards
//! (`persistence::lanes`): a write whose reply a client saw comes, in the
//! replication stream and in the incr file, before every write that client
//! sent afterwards, on whatever shard. Redis has one total order; a replica
//! (or an AOF cut short by a crash) must never show a state the master never
//! had, such as a client's second write without its first.
//!
//! Also: a real redis-server replica of ringkv (`--shards 3`) under a mixed
//! multi-shard load from several clients ends with the master's DEBUG
//! DIGEST, and the AOF ringkv wrote meanwhile loads in redis-server to it.
//! Every test passes against redis-server too (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Conn, Resp, Rng, Server};

const SHARDS: usize = 3;
const CLIENTS: usize = 8;
/// Rounds of each client: one SET of each of its keys per round.
const ROUNDS: usize = 60;

fn ok(c: &mut Conn, args: &[&str]) {
    assert_eq!(c.cmd(args), Resp::ok(), "{:?}", args);
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info_field(c: &mut Conn, section: &str, field: &str) -> Option<String> {
    let Resp::Bulk(text) = c.cmd(&["INFO", section]) else { panic!("INFO is a bulk string") };
    let text = String::from_utf8(text).unwrap();
    let prefix = format!("{field}:");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str()).map(|v| v.to_string()))
}

/// The keys of client `c`: one on each shard, in shard order (so that
/// consecutive writes of a client always change shard).
fn client_keys(c: usize) -> Vec<String> {
    common::keys_per_shard(&format!("o{c}"), SHARDS)
}

/// Every client writes round after round `k0=n, k1=n, k2=n` (keys of
/// different shards), each SET sent after the previous reply.
fn run_counter_clients(server: &Server) {
    let mut threads = Vec::new();
    for c in 0..CLIENTS {
        let mut conn = server.conn();
        threads.push(std::thread::spawn(move || {
            let keys = client_keys(c);
            for n in 1..=ROUNDS {
                for k in &keys {
                    ok(&mut conn, &["SET", k, &n.to_string()]);
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}

/// Checks the SETs of `cmds` (in stream order): each client's writes come
/// exactly in the order it sent them (each after the previous reply), so
/// no prefix has a client's later write without its earlier ones. Returns
/// how many SETs of the clients it saw.
fn check_causal(cmds: &[Vec<Vec<u8>>], what: &str) -> usize {
    let keys: Vec<Vec<String>> = (0..CLIENTS).map(client_keys).collect();
    // Per client: how many of its writes the stream has shown so far.
    let mut seen = [0usize; CLIENTS];
    let mut total = 0;
    for (i, cmd) in cmds.iter().enumerate() {
        if !cmd[0].eq_ignore_ascii_case(b"SET") {
            continue;
        }
        let key = String::from_utf8_lossy(&cmd[1]).into_owned();
        let Some(c) = keys.iter().position(|ks| ks.contains(&key)) else { continue };
        let n = seen[c];
        let want_key = &keys[c][n % SHARDS];
        let want_value = (n / SHARDS + 1).to_string();
        assert!(
            &key == want_key && cmd[2] == want_value.as_bytes(),
            "{what}: command {i} is SET {key} {} but client {c}'s next write (number {}) was SET {want_key} {want_value}: \
             a write came before one whose reply its client had seen first",
            String::from_utf8_lossy(&cmd[2]),
            n + 1
        );
        seen[c] += 1;
        total += 1;
    }
    total
}

/// The commands of a RESP byte stream, in order (a cut-off tail ignored).
fn parse_commands(mut buf: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while let Ok(n) = common::frame_len(buf) {
        if let Resp::Array(args) = common::decode(&buf[..n]) {
            out.push(args.iter().map(|a| a.opt_bytes().unwrap()).collect());
        }
        buf = &buf[n..];
    }
    out
}

/// The incr files of `dir/appendonlydir` as one stream of commands.
fn incr_commands(dir: &Path) -> Vec<Vec<Vec<u8>>> {
    let aof_dir = dir.join("appendonlydir");
    let mut names: Vec<String> =
        std::fs::read_dir(&aof_dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".incr.aof")).collect();
    names.sort();
    let mut bytes = Vec::new();
    for n in names {
        bytes.extend(std::fs::read(aof_dir.join(n)).unwrap());
    }
    parse_commands(&bytes)
}

/// Reads the stream until `done` says its commands are all there.
fn read_stream_until(c: &mut Conn, done: impl Fn(&[Vec<Vec<u8>>]) -> bool) -> Vec<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    c.stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    loop {
        let cmds = parse_commands(&buf);
        if done(&cmds) {
            return cmds;
        }
        assert!(Instant::now() < deadline, "the stream has only {} commands", cmds.len());
        let mut chunk = [0u8; 65536];
        match c.stream.read(&mut chunk) {
            Ok(0) => panic!("stream closed"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
}

/// Many clients each write a sequence over keys of different shards, each
/// write after the previous reply: the replication stream (read raw, as a
/// replica) and the incr file (`appendfsync everysec`) both have every
/// client's writes in the order it sent them. (The merge before took each
/// shard's batches lane by lane: under load a client's write on shard 0
/// came out before its earlier write on shard 2.)
#[test]
fn stream_and_aof_keep_each_clients_order_across_shards() {
    let server = Server::ringkv(&["--shards", "3", "--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut sync = common::attach_sync(&server);
    run_counter_clients(&server);
    let want = CLIENTS * ROUNDS * SHARDS;
    let cmds = read_stream_until(&mut sync, |cmds| cmds.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET") && c[1].starts_with(b"o")).count() >= want);
    assert_eq!(check_causal(&cmds, "replication stream"), want);
    let mut c = server.conn();
    let mut aof = Vec::new();
    wait_for("the incr file to hold every write", Duration::from_secs(20), || {
        c.cmd(&["PING"]);
        aof = incr_commands(&server.dir);
        aof.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")).count() >= want
    });
    assert_eq!(check_causal(&aof, "incr file"), want);
}

/// Writers each count up one key (keys of every shard); readers read all
/// of them with one MGET (a hop over the shards) and then write what they
/// saw. A reader's write comes, in the replication stream and in the incr
/// file, after every write whose value it saw: a read is a cause too (its
/// part answers only after its shard handed the write it read over).
#[test]
fn a_write_after_a_read_follows_what_was_read() {
    const WRITERS: usize = 4;
    const READERS: usize = 4;
    const STEPS: usize = 150;
    let server = Server::ringkv(&["--shards", "3", "--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut sync = common::attach_sync(&server);
    let keys: Vec<String> = (0..WRITERS).map(|i| common::keys_per_shard(&format!("w{i}"), SHARDS)[i % SHARDS].clone()).collect();
    let mut threads = Vec::new();
    for key in keys.clone() {
        let mut c = server.conn();
        threads.push(std::thread::spawn(move || {
            for n in 1..=STEPS {
                ok(&mut c, &["SET", &key, &n.to_string()]);
            }
        }));
    }
    for r in 0..READERS {
        let mut c = server.conn();
        let keys = keys.clone();
        threads.push(std::thread::spawn(move || {
            let mut mget = vec!["MGET".to_string()];
            mget.extend(keys.iter().cloned());
            for n in 0..STEPS {
                let seen: Vec<String> = c.cmd(&mget).array().iter().map(|v| v.opt_bytes().map_or("0".into(), |b| String::from_utf8(b).unwrap())).collect();
                ok(&mut c, &["SET", &format!("seen{r}:{n}"), &seen.join(",")]);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let check = |cmds: &[Vec<Vec<u8>>], what: &str| {
        let mut latest = [0usize; WRITERS];
        let mut reads = 0;
        for cmd in cmds.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")) {
            let key = String::from_utf8_lossy(&cmd[1]).into_owned();
            let value = String::from_utf8_lossy(&cmd[2]).into_owned();
            if let Some(w) = keys.iter().position(|k| *k == key) {
                latest[w] = value.parse().unwrap();
            } else if key.starts_with("seen") {
                reads += 1;
                for (w, v) in value.split(',').enumerate() {
                    let v: usize = v.parse().unwrap();
                    assert!(v <= latest[w], "{what}: SET {key} {value} (it read {} = {v}) comes when the stream had {} = {} only", keys[w], keys[w], latest[w]);
                }
            }
        }
        reads
    };
    let cmds = read_stream_until(&mut sync, |cmds| cmds.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")).count() >= (WRITERS + READERS) * STEPS);
    assert_eq!(check(&cmds, "replication stream"), READERS * STEPS);
    let mut c = server.conn();
    let mut aof = Vec::new();
    wait_for("the incr file to hold every write", Duration::from_secs(20), || {
        c.cmd(&["PING"]);
        aof = incr_commands(&server.dir);
        aof.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")).count() >= (WRITERS + READERS) * STEPS
    });
    assert_eq!(check(&aof, "incr file"), READERS * STEPS);
}

/// A client that hears of a write by a keyspace notification and then
/// writes: its write follows the one it heard of, in the replication
/// stream and in the incr file (the notification is a reply of sorts: the
/// shard hands its stream over before a delivery leaves for another shard).
#[test]
fn a_write_after_a_notification_follows_the_write_notified() {
    const STEPS: usize = 200;
    let server = Server::ringkv(&["--shards", "3", "--appendonly", "yes", "--appendfsync", "everysec"]);
    let mut c = server.conn();
    ok(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "K$"]);
    let mut sync = common::attach_sync(&server);
    let keys = common::keys_per_shard("n", SHARDS);
    let mut sub = server.conn();
    sub.send(&["psubscribe", "__keyspace@0__:n:*"]);
    assert_eq!(sub.read().array().len(), 3);
    let mut listener_writes = server.conn();
    let listener = {
        let keys = keys.clone();
        std::thread::spawn(move || {
            let mut heard = [0usize; SHARDS];
            for _ in 0..STEPS * SHARDS {
                let msg = sub.read();
                let parts = msg.array();
                let channel = String::from_utf8(parts[2].opt_bytes().unwrap()).unwrap();
                let key = channel.strip_prefix("__keyspace@0__:").unwrap();
                let i = keys.iter().position(|k| k == key).unwrap();
                heard[i] += 1;
                ok(&mut listener_writes, &["SET", &format!("heard:{key}"), &heard[i].to_string()]);
            }
        })
    };
    let mut writers = Vec::new();
    for key in keys.clone() {
        let mut w = server.conn();
        writers.push(std::thread::spawn(move || {
            for n in 1..=STEPS {
                ok(&mut w, &["SET", &key, &n.to_string()]);
            }
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    listener.join().unwrap();
    let check = |cmds: &[Vec<Vec<u8>>], what: &str| {
        let mut latest = [0usize; SHARDS];
        let mut heard = 0;
        for cmd in cmds.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")) {
            let key = String::from_utf8_lossy(&cmd[1]).into_owned();
            let value: usize = String::from_utf8_lossy(&cmd[2]).parse().unwrap();
            if let Some(i) = keys.iter().position(|k| *k == key) {
                latest[i] = value;
            } else if let Some(i) = key.strip_prefix("heard:").and_then(|k| keys.iter().position(|x| x == k)) {
                heard += 1;
                assert!(value <= latest[i], "{what}: SET {key} {value} comes when the stream had {} = {} only", keys[i], latest[i]);
            }
        }
        heard
    };
    let total = 2 * STEPS * SHARDS;
    let cmds = read_stream_until(&mut sync, |cmds| cmds.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")).count() >= total);
    assert_eq!(check(&cmds, "replication stream"), STEPS * SHARDS);
    let mut aof = Vec::new();
    wait_for("the incr file to hold every write", Duration::from_secs(20), || {
        c.cmd(&["PING"]);
        aof = incr_commands(&server.dir);
        aof.iter().filter(|c| c[0].eq_ignore_ascii_case(b"SET")).count() >= total
    });
    assert_eq!(check(&aof, "incr file"), STEPS * SHARDS);
}

/// A real redis-server replica (REPLICAOF, as `--replicaof`) of ringkv
/// `--shards 3` under a mixed multi-shard load from several clients (MSET
/// and DEL over shards, EXECs over shards, MSETNX/RENAME/SMOVE, a watched
/// EXEC, keys that expire, INCR, lists) ends with the master's DEBUG DIGEST; the AOF ringkv wrote
/// meanwhile (`always`) loads in redis-server to the same digest.
#[test]
fn redis_replica_and_aof_match_after_mixed_multishard_load() {
    let master = Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes", "--appendonly", "yes", "--appendfsync", "always"]);
    let port = master.port.to_string();
    let replica = Server::redis(&["--enable-debug-command", "yes"]);
    let mut r = replica.conn();
    ok(&mut r, &["REPLICAOF", "127.0.0.1", &port]);
    wait_for("the replica's link", Duration::from_secs(20), || info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up"));
    let keys: Vec<String> = (0..12).map(|i| format!("x{i}")).collect();
    let mut threads = vec![];
    for t in 0..4u64 {
        let mut c = master.conn();
        let keys = keys.clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(t + 7);
            for i in 0..300u64 {
                // Besides the mixed steps: expiries kept, lists.
                match i % 11 {
                    9 => c.cmd(&["SET", &keys[i as usize % keys.len()], "e", "EX", "1000"]),
                    10 => c.cmd(&["RPUSH", &format!("list{}", i % 5), &i.to_string()]),
                    _ => common::cross_shard_step(&mut c, &mut rng, &keys, t, i),
                };
            }
        }));
    }
    for th in threads {
        th.join().unwrap();
    }
    let mut m = master.conn();
    std::thread::sleep(Duration::from_millis(20));
    // Keys that expired go now, their DELs propagated.
    for k in &keys {
        m.cmd(&["EXISTS", k]);
    }
    let digest = m.cmd(&["DEBUG", "DIGEST"]);
    assert!(m.cmd(&["DBSIZE"]).int() > 0);
    assert_eq!(m.cmd(&["WAIT", "1", "10000"]).int(), 1);
    assert_eq!(r.cmd(&["DEBUG", "DIGEST"]), digest, "the replica");
    // SAFETY: kill(2) on the PID of the child this test started.
    unsafe { libc::kill(master.pid() as i32, libc::SIGKILL) };
    let dir = common::copy_aof_dir("ringkv-replorder", &master.dir, "mixed");
    drop(master);
    let dir_arg = dir.to_string_lossy().into_owned();
    let loaded = Server::redis(&["--appendonly", "yes", "--dir", &dir_arg, "--enable-debug-command", "yes"]);
    assert_eq!(loaded.conn().cmd(&["DEBUG", "DIGEST"]), digest, "redis-server loading the AOF");
    drop(loaded);
    let _ = std::fs::remove_dir_all(&dir);
}
