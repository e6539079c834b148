//! The latency monitor and per-command latency histograms (LATENCY
//! HISTOGRAM/GRAPH/DOCTOR/LATEST/RESET, Redis's latency.c), and the query
//! buffer fields of CLIENT LIST with their cron trimming (Redis's
//! clientsCronResizeQueryBuffer).

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Resp, Server};

fn server() -> Server {
    Server::ringkv(&["--shards", "3", "--enable-debug-command", "yes"])
}

fn text(r: &Resp) -> String {
    match r {
        Resp::Bulk(b) | Resp::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
        Resp::Simple(s) => s.clone(),
        other => panic!("expected text, got {:?}", other),
    }
}

/// A RESP3 map reply as (key text, value) pairs.
fn map(r: &Resp) -> Vec<(String, Resp)> {
    match r {
        Resp::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        other => panic!("expected a map, got {:?}", other),
    }
}

/// Redis's LATENCY HISTOGRAM levels: the highest value equivalent to
/// 1024 * 2^k ns in its HdrHistogram(1, 1e9, 2), in whole usec.
const LEVELS_USEC: [i64; 20] = [1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056, 2113, 4227, 8454, 16908, 33816, 67633, 135266, 270532, 541065];

fn check_histogram(entry: &Resp, calls: i64) {
    let fields = map(entry);
    assert_eq!(fields[0].0, "calls");
    assert_eq!(fields[0].1, Resp::Int(calls));
    assert_eq!(fields[1].0, "histogram_usec");
    let Resp::Map(buckets) = &fields[1].1 else { panic!("histogram_usec is a map: {:?}", fields[1].1) };
    assert!(!buckets.is_empty());
    let mut last = 0;
    for (usec, count) in buckets {
        assert!(LEVELS_USEC.contains(&usec.int()), "bucket {:?}", usec);
        assert!(count.int() > last, "cumulative counts grow: {:?}", buckets);
        last = count.int();
    }
    assert_eq!(last, calls);
}

#[test]
fn latency_histogram_lists_commands_and_subcommands_that_ran() {
    let s = server();
    let mut c = s.conn();
    assert!(matches!(c.cmd(&["HELLO", "3"]), Resp::Map(_)));
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), Resp::ok());
    // Only CONFIG RESETSTAT itself has run since the reset.
    let all = map(&c.cmd(&["LATENCY", "HISTOGRAM"]));
    assert_eq!(all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["config|resetstat"]);
    for k in ["a", "b"] {
        c.cmd(&["SET", k, "v"]);
    }
    c.cmd(&["CLIENT", "ID"]);
    c.cmd(&["CLIENT", "GETNAME"]);
    let got = map(&c.cmd(&["LATENCY", "HISTOGRAM", "set", "nosuchcommand", "client|id", "get"]));
    assert_eq!(got.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["set", "client|id"]);
    check_histogram(&got[0].1, 2);
    check_histogram(&got[1].1, 1);
    // A container brings its subcommands that ran.
    let mut subs: Vec<String> = map(&c.cmd(&["LATENCY", "HISTOGRAM", "CLIENT"])).into_iter().map(|(k, _)| k).collect();
    subs.sort();
    assert_eq!(subs, ["client|getname", "client|id"]);
    assert_eq!(c.cmd(&["LATENCY", "HISTOGRAM", "blabla"]), Resp::Map(vec![]));
}

#[test]
fn latency_events_graph_doctor_and_reset() {
    let s = server();
    let mut c = s.conn();
    let doctor = text(&c.cmd(&["LATENCY", "DOCTOR"]));
    assert!(doctor.starts_with("I'm sorry, Dave, I can't do that. Latency monitoring is disabled"), "{doctor}");
    assert_eq!(c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "5"]), Resp::ok());
    assert_eq!(c.cmd(&["LATENCY", "GRAPH", "command"]), Resp::Error("ERR No samples available for event 'command'".into()));
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.05"]), Resp::ok());
    let latest = c.cmd(&["LATENCY", "LATEST"]);
    let event = latest.array().iter().find(|e| e.array()[0] == Resp::bulk("command")).expect("a command event").array().to_vec();
    assert!(event[2].int() >= 50 && event[3].int() >= event[2].int(), "{:?}", event);
    let graph = text(&c.cmd(&["LATENCY", "GRAPH", "command"]));
    let lines: Vec<&str> = graph.lines().collect();
    assert!(lines[0].starts_with("command - high ") && lines[0].contains(" ms (all time high "), "{graph}");
    assert_eq!(lines[1], "-".repeat(80));
    // One sample: the lowest bar in the fourth row, then its age ("0s"/"1s") downwards.
    assert_eq!(lines[2..7], [" ", " ", " ", "_", " "]);
    assert!(lines[7].chars().all(|ch| ch.is_ascii_digit()) && lines[8] == "s", "{graph}");
    let doctor = text(&c.cmd(&["LATENCY", "DOCTOR"]));
    assert!(doctor.starts_with("Dave, I have observed latency spikes in this Redis instance."), "{doctor}");
    assert!(doctor.contains("1. command: 1 latency spikes (average "), "{doctor}");
    assert!(doctor.contains("- Check your Slow Log to understand what are the commands you are running which are too slow to execute."), "{doctor}");
    // CONFIG RESETSTAT leaves the latency events alone; LATENCY RESET clears them.
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), Resp::ok());
    assert!(c.cmd(&["LATENCY", "RESET", "nosuchevent", "command"]).int() == 1);
    assert!(c.cmd(&["LATENCY", "HISTORY", "command"]).array().is_empty());
    assert_eq!(c.cmd(&["LATENCY", "HELP", "x"]), Resp::Error("ERR wrong number of arguments for 'latency|help' command".into()));
}

/// `qbuf=` + `qbuf-free=` of the client named `name` in CLIENT LIST.
fn query_buffer_bytes(c: &mut Conn, name: &str) -> usize {
    let list = text(&c.cmd(&["CLIENT", "LIST"]));
    let line = list.lines().find(|l| l.contains(&format!(" name={name} "))).unwrap_or_else(|| panic!("{name} in {list}"));
    let field = |f: &str| -> usize { line.split(' ').find_map(|kv| kv.strip_prefix(f)).unwrap().parse().unwrap() };
    field("qbuf=") + field("qbuf-free=")
}

#[test]
fn query_buffer_of_a_big_argument_is_trimmed_to_the_recent_peak() {
    let s = server();
    let mut big = s.conn();
    let mut observer = s.conn();
    assert_eq!(big.cmd(&["CLIENT", "SETNAME", "big"]), Resp::ok());
    let value = "A".repeat(400_000);
    assert_eq!(big.cmd(&["SET", "x", value.as_str()]), Resp::ok());
    let grown = query_buffer_bytes(&mut observer, "big");
    assert!(grown > 32 * 1024, "a 400 KB argument grew the query buffer: {grown}");
    // Small commands from then on: the cron cuts the buffer down to their
    // peak (Redis keeps room for the recent peak; how much depends on its
    // 16 KiB read size, so only the cut is checked).
    let deadline = Instant::now() + Duration::from_secs(3);
    let trimmed = loop {
        assert_eq!(big.cmd(&["SET", "x", "small"]), Resp::ok());
        let now = query_buffer_bytes(&mut observer, "big");
        if now < grown || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(trimmed < grown, "trimmed {trimmed}, grown {grown}");
}

/// Evicting a big value records `eviction-del` (one victim's deletion) and
/// `eviction-cycle` (the whole eviction before the command), as Redis's evict.c.
#[test]
fn eviction_of_a_big_value_is_a_latency_event() {
    let s = Server::ringkv(&["--shards", "2"]);
    let mut c = s.conn();
    // 300k members: freeing them takes milliseconds on any machine.
    for batch in 0..300 {
        let mut args = vec!["SADD".to_string(), "big".to_string()];
        args.extend((0..1000).map(|i| (batch * 1000 + i).to_string()));
        c.send(&args);
    }
    for _ in 0..300 {
        assert_eq!(c.read(), Resp::Int(1000));
    }
    assert_eq!(c.cmd(&["CONFIG", "SET", "latency-monitor-threshold", "1"]), Resp::ok());
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]), Resp::ok());
    let info = text(&c.cmd(&["INFO", "memory"]));
    let used: u64 = info.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap();
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", &(used - 1000).to_string()]), Resp::ok());
    assert_eq!(c.cmd(&["SET", "x", "y"]), Resp::ok());
    assert_eq!(c.cmd(&["EXISTS", "big"]), Resp::Int(0));
    let latest = c.cmd(&["LATENCY", "LATEST"]);
    let events: Vec<String> = latest.array().iter().map(|e| text(&e.array()[0])).collect();
    assert!(events.contains(&"eviction-del".to_string()) && events.contains(&"eviction-cycle".to_string()), "{:?}", events);
    assert_eq!(c.cmd(&["CONFIG", "SET", "maxmemory", "0"]), Resp::ok());
}
