//! Single-shard commands for another shard run on the connection's own
//! shard with that shard taken asleep (`network::dispatch`, "Taken
//! asleep"; `cross-shard-take-asleep`, `auto` where shard threads share a
//! core): what a client sees is what the forward gave. Each test runs with
//! the path forced on (`yes`) and, where it says so, off (`no`), over two
//! and three shards; INFO's `asleep_held_runs` shows the path was taken.
//! Runs against redis-server too (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

fn start(shards: usize, take: &str) -> Server {
    Server::ringkv(&["--shards", &shards.to_string(), "--cross-shard-take-asleep", take])
}

fn info_stat(c: &mut Conn, name: &str) -> u64 {
    let text = String::from_utf8(c.cmd(&["INFO", "stats"]).opt_bytes().unwrap()).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

fn text(r: &Resp) -> String {
    match r {
        Resp::Simple(s) => s.clone(),
        other => String::from_utf8(other.opt_bytes().unwrap()).unwrap(),
    }
}

/// One client at `-P 1` over keys of every shard: strings, counters and
/// lists give the replies a model predicts, and (ringkv, `yes`) most of the
/// other shards' commands ran taken asleep; with `no`, none.
#[test]
fn one_request_at_a_time_over_every_shard() {
    for (shards, take) in [(2, "yes"), (3, "yes"), (2, "no")] {
        let rk = start(shards, take);
        let mut c = rk.conn();
        let strings = keys_per_shard("ta:s", shards);
        let counters = keys_per_shard("ta:n", shards);
        let lists = keys_per_shard("ta:l", shards);
        let mut count = vec![0i64; shards];
        for round in 0..40 {
            for s in 0..shards {
                let v = format!("v{round}");
                assert_eq!(c.cmd(&["SET", &strings[s], &v]), Resp::ok());
                assert_eq!(c.cmd(&["GET", &strings[s]]), Resp::bulk(&v), "{shards} shards, {take}");
                count[s] += 1;
                assert_eq!(c.cmd(&["INCR", &counters[s]]), Resp::Int(count[s]));
                assert_eq!(c.cmd(&["RPUSH", &lists[s], &v]), Resp::Int(round + 1));
                assert_eq!(c.cmd(&["LINDEX", &lists[s], "-1"]), Resp::bulk(&v));
            }
        }
        // An error from the other shard's type check comes back as it is.
        for key in &strings {
            assert!(matches!(c.cmd(&["LPUSH", key, "x"]), Resp::Error(e) if e.starts_with("WRONGTYPE")));
        }
        if rk.name() == "ringkv" {
            let runs = info_stat(&mut c, "asleep_held_runs");
            let cmds = info_stat(&mut c, "asleep_held_commands");
            if take == "yes" {
                // 40 rounds of 5 commands on each other shard (plus the
                // LPUSHes): the other shards sleep between this client's
                // requests, bar a cron turn now and then.
                let others = (shards as u64 - 1) * 200;
                assert!(runs >= others / 2 && cmds >= runs, "{shards} shards: {runs} runs, {cmds} commands of {others}");
            } else {
                assert_eq!((runs, cmds), (0, 0), "cross-shard-take-asleep no takes nothing");
            }
        }
    }
}

/// Pipelined batches of mixed shards: replies in order and values as a
/// model says, and one connection's keyspace events in its command order
/// (two shards: "Order across shards" in `network::dispatch`).
#[test]
fn pipelined_batches_keep_the_connection_order() {
    for shards in [2, 3] {
        let rk = start(shards, "yes");
        let mut c = rk.conn();
        let mut sub = rk.conn();
        assert_eq!(c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]), Resp::ok());
        sub.cmd(&["PSUBSCRIBE", "__keyspace@0__:tp*"]);
        let keys: Vec<String> = (0..12).map(|i| format!("tp:{i}")).collect();
        let mut values = std::collections::HashMap::new();
        let mut events = Vec::new();
        let mut rng = 0x2545f4914f6cdd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut n = 0;
        for size in [1usize, 2, 5, 16, 1, 7, 30, 3, 1, 12] {
            let mut batch = Vec::new();
            let mut want = Vec::new();
            for _ in 0..size {
                let k = keys[(next() % keys.len() as u64) as usize].clone();
                n += 1;
                if next() % 3 == 0 {
                    encode_into(&mut batch, &["GET", &k]);
                    want.push(values.get(&k).map_or(Resp::Nil, |v: &i64| Resp::bulk(v.to_string())));
                } else {
                    encode_into(&mut batch, &["INCRBY", &k, &n.to_string()]);
                    let v = values.entry(k.clone()).or_insert(0);
                    *v += n;
                    want.push(Resp::Int(*v));
                    events.push(k);
                }
            }
            c.send_raw(&batch);
            for (i, w) in want.iter().enumerate() {
                assert_eq!(&c.read(), w, "{shards} shards, batch of {size}, reply {i}");
            }
        }
        let mut seen = Vec::new();
        for _ in 0..events.len() {
            let m = sub.read();
            assert_eq!(text(&m.array()[3]), "incrby");
            seen.push(text(&m.array()[2]).split_once("__:").unwrap().1.to_string());
        }
        if shards == 2 {
            assert_eq!(seen, events, "events in the connection's order");
        } else {
            seen.sort();
            events.sort();
            assert_eq!(seen, events, "every event once");
        }
    }
}

/// CLIENT REPLY SKIP and OFF hold for commands run on a shard taken asleep.
#[test]
fn client_reply_skip_and_off() {
    let rk = start(2, "yes");
    let mut c = rk.conn();
    let k = keys_per_shard("tr", 2);
    for key in &k {
        c.send(&["CLIENT", "REPLY", "SKIP"]);
        c.send(&["SET", key, "skipped"]);
        assert_eq!(c.cmd(&["GET", key]), Resp::bulk("skipped"), "{key}: SKIP answered nothing, GET answers");
    }
    c.send(&["CLIENT", "REPLY", "OFF"]);
    for key in &k {
        c.send(&["SET", key, "off"]);
        c.send(&["GET", key]);
        c.send(&["INCR", key]);
    }
    assert_eq!(c.cmd(&["CLIENT", "REPLY", "ON"]), Resp::ok());
    for key in &k {
        assert_eq!(c.cmd(&["GET", key]), Resp::bulk("off"));
    }
    c.stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(c.read_frame().is_err(), "nothing more was sent");
}

/// MONITOR shows every command once, in the order one client sent them,
/// with its db, whichever shard ran it.
#[test]
fn monitor_sees_each_command_in_order() {
    let rk = start(2, "yes");
    let mut mon = rk.conn();
    assert_eq!(mon.cmd(&["MONITOR"]), Resp::ok());
    let mut c = rk.conn();
    assert_eq!(c.cmd(&["SELECT", "2"]), Resp::ok());
    let k = keys_per_shard("tm", 2);
    let mut sent = Vec::new();
    for i in 0..20 {
        let key = &k[i % 2];
        let v = i.to_string();
        assert_eq!(c.cmd(&["SET", key, &v]), Resp::ok());
        sent.push(format!("\"SET\" \"{key}\" \"{v}\""));
        assert_eq!(c.cmd(&["GET", key]), Resp::bulk(&v));
        sent.push(format!("\"GET\" \"{key}\""));
    }
    let mut lines = Vec::new();
    while lines.len() < sent.len() {
        let line = text(&mon.read());
        if line.contains("\"SELECT\"") {
            continue;
        }
        assert!(line.contains(" [2 127.0.0.1:"), "{line}");
        lines.push(line.split_once("] ").unwrap().1.to_string());
    }
    assert_eq!(lines, sent);
}

/// WATCH sees a write made by another client on a shard taken asleep
/// (the EXEC fails), and not one that never came (it runs).
#[test]
fn watch_sees_writes_run_taken_asleep() {
    for take in ["yes", "no"] {
        let rk = start(2, take);
        let k = keys_per_shard("tw", 2);
        for watched in &k {
            let mut a = rk.conn();
            let mut b = rk.conn();
            assert_eq!(a.cmd(&["WATCH", watched]), Resp::ok());
            assert_eq!(b.cmd(&["SET", watched, "other"]), Resp::ok());
            assert_eq!(a.cmd(&["MULTI"]), Resp::ok());
            assert_eq!(a.cmd(&["SET", &k[0], "mine"]), Resp::Simple("QUEUED".into()));
            assert_eq!(a.cmd(&["EXEC"]), Resp::Nil, "{take}: the watched {watched} changed");
            assert_eq!(a.cmd(&["WATCH", watched]), Resp::ok());
            assert_eq!(b.cmd(&["GET", watched]), Resp::bulk("other"));
            assert_eq!(a.cmd(&["MULTI"]), Resp::ok());
            assert_eq!(a.cmd(&["SET", &k[1], "mine"]), Resp::Simple("QUEUED".into()));
            assert_eq!(a.cmd(&["EXEC"]).array(), &[Resp::ok()], "{take}: a read is no change");
        }
    }
}

/// Clients that close right after their requests (unread replies, a batch
/// cut short) leave a server that serves on, and their writes either ran
/// whole or not at all; many clients at once keep every increment.
#[test]
fn clients_closing_mid_request_and_many_clients() {
    let rk = start(2, "yes");
    let k = keys_per_shard("tc", 2);
    for i in 0..50 {
        let mut s = rk.stream();
        let mut batch = Vec::new();
        for key in &k {
            encode_into(&mut batch, &["INCR", key]);
        }
        // Every other one cut in the middle of its last request.
        let cut = if i % 2 == 0 { batch.len() } else { batch.len() - 3 };
        s.write_all(&batch[..cut]).unwrap();
        drop(s);
    }
    let mut c = rk.conn();
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    std::thread::scope(|scope| {
        for t in 0..8 {
            let mut c = rk.conn();
            let k = &k;
            scope.spawn(move || {
                for i in 0..300 {
                    let key = &k[(i + t) % 2];
                    assert!(c.cmd(&["INCR", &format!("{key}:many")]).int() > 0);
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    // The cut clients' first INCR was whole: it ran, as Redis runs what it
    // read before the connection's end; their last did not.
    assert_eq!(c.cmd(&["GET", &k[0]]), Resp::bulk("50"));
    assert_eq!(c.cmd(&["GET", &k[1]]), Resp::bulk("25"));
    for key in &k {
        assert_eq!(c.cmd(&["GET", &format!("{key}:many")]), Resp::bulk("1200"));
    }
}
