//! Bad input and limits: truncated and garbage frames, huge declared lengths,
//! deep pipelines, maxclients, query and output buffer limits, idle timeout.
//! Where Redis has the same limit, ringkv is compared with a real redis-server.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{escape, feed, read_until_close, End, Resp, Rng, Server};

fn shards() -> [&'static str; 2] {
    ["--shards", "2"]
}

/// Runs `f` against ringkv and redis at once and returns (ringkv's result, redis's result).
fn both<T: Send>(ringkv: &Server, redis: &Server, f: impl Fn(&Server) -> T + Sync) -> (T, T) {
    std::thread::scope(|s| {
        let h = s.spawn(|| f(redis));
        let a = f(ringkv);
        (a, h.join().unwrap())
    })
}

#[test]
fn truncated_frames_then_close() {
    let mut s = Server::ringkv(&shards());
    let frames: &[&[u8]] = &[
        b"*",
        b"*3",
        b"*3\r",
        b"*3\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$5\r\nab",
        b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\nv\r",
        b"*2\r\n$4\r\nECHO\r\n$100000\r\nabc",
        b"PING",
        b"SET x \"unterminated",
        b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET",
    ];
    for f in frames {
        let mut c = s.stream();
        c.write_all(f).unwrap();
        drop(c);
    }
    // Also close right after a complete command whose reply was never read.
    for _ in 0..20 {
        let mut c = s.stream();
        c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\ny\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\ny\r\n").unwrap();
        drop(c);
    }
    s.assert_serving();
    // The truncated SET never ran.
    let mut c = s.conn();
    assert_eq!(c.cmd(&["EXISTS", "x"]), Resp::Int(0));
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
}

#[test]
fn huge_declared_lengths_match_redis() {
    let (ringkv, redis) = Server::pair(&[], &shards());
    let cases: &[&[u8]] = &[
        b"*1\r\n$999999999999\r\n",
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$9223372036854775807\r\n",
        b"*1\r\n$9223372036854775808\r\n",
        b"*999999999999\r\n",
        b"*9223372036854775808\r\n",
        b"*-9223372036854775808\r\n*1\r\n$4\r\nPING\r\n",
    ];
    let mut diffs = String::new();
    for case in cases {
        let chunks = vec![case.to_vec()];
        let (a, b) = both(&ringkv, &redis, |s| feed(s, &chunks, Duration::from_millis(1000)));
        if a != b {
            diffs.push_str(&format!("{}\n    ringkv: {:?} {:?}\n    redis:  {:?} {:?}\n", escape(case, 80), escape(&a.0, 200), a.1, escape(&b.0, 200), b.1));
        }
    }
    let mut ringkv = ringkv;
    ringkv.assert_serving();
    assert!(diffs.is_empty(), "huge lengths handled differently:\n{}", diffs);
}

#[test]
fn binary_garbage_does_not_hurt_the_server() {
    let mut s = Server::ringkv(&shards());
    let mut rng = Rng::new(0x5eed);
    // Pure noise, noise after a multibulk prefix, and valid pipelines with a few bytes flipped.
    let mut inputs: Vec<Vec<u8>> = vec![];
    for i in 0..40 {
        let len = 1 + rng.below(3000) as usize;
        let mut buf = vec![0u8; len];
        rng.fill(&mut buf);
        match i % 3 {
            0 => inputs.push(buf),
            1 => {
                let mut v = b"*3\r\n$".to_vec();
                v.extend_from_slice(&buf);
                inputs.push(v);
            }
            _ => {
                let mut v = common::encode(&["SET", "garbage-key", "value"]);
                common::encode_into(&mut v, &["GET", "garbage-key"]);
                common::encode_into(&mut v, &["ECHO", "abcdef"]);
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(v.len() as u64) as usize;
                    v[at] = rng.next_u64() as u8;
                }
                inputs.push(v);
            }
        }
    }
    std::thread::scope(|scope| {
        for chunk in inputs.chunks(10) {
            let s = &s;
            scope.spawn(move || {
                for input in chunk {
                    let _ = feed(s, std::slice::from_ref(input), Duration::from_millis(200));
                }
            });
        }
    });
    s.assert_serving();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "after", "garbage"]), Resp::ok());
    assert_eq!(c.cmd(&["GET", "after"]), Resp::bulk("garbage"));
}

/// Sends `req` from a second thread while this one reads `replies` replies (so neither side
/// can block the other on full socket buffers); returns the raw reply bytes.
fn pipeline(server: &Server, req: &[u8], replies: usize) -> Vec<u8> {
    let mut c = server.conn();
    let mut w = c.stream.try_clone().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || w.write_all(req).unwrap());
        let mut out = vec![];
        for i in 0..replies {
            let f = c.read_frame().unwrap_or_else(|e| panic!("{}: reply {} of {}: {}", server.name(), i, replies, e));
            out.extend_from_slice(&f);
        }
        out
    })
}

#[test]
fn ten_thousand_pipelined_commands_in_one_write() {
    let (ringkv, redis) = Server::pair(&[], &shards());
    let mut req = Vec::new();
    for i in 0..2500 {
        common::encode_into(&mut req, &["SET", &format!("pk{}", i), &i.to_string()]);
        common::encode_into(&mut req, &["GET", &format!("pk{}", i)]);
        common::encode_into(&mut req, &["ECHO", &format!("echo-{}", i)]);
        common::encode_into(&mut req, &["EXISTS", &format!("pk{}", i), &format!("pk{}", i / 2), "nokey"]);
    }
    let mut want = Vec::new();
    for i in 0..2500 {
        want.extend_from_slice(b"+OK\r\n");
        let v = i.to_string();
        want.extend_from_slice(format!("${}\r\n{}\r\n", v.len(), v).as_bytes());
        let e = format!("echo-{}", i);
        want.extend_from_slice(format!("${}\r\n{}\r\n", e.len(), e).as_bytes());
        want.extend_from_slice(b":2\r\n");
    }
    let (a, b) = both(&ringkv, &redis, |s| pipeline(s, &req, 10000));
    assert!(b == want, "redis-server itself disagrees with the expected replies");
    if a != want {
        let at = a.iter().zip(&want).position(|(x, y)| x != y).unwrap_or(a.len().min(want.len()));
        let from = at.saturating_sub(40);
        panic!("ringkv's replies differ at byte {}: got \"{}\", want \"{}\"", at, escape(&a[from..], 120), escape(&want[from..], 120));
    }
}

/// Opens a connection and checks it is served (PING); `None` when refused.
fn served(server: &Server) -> Option<std::net::TcpStream> {
    let mut c = server.conn();
    c.send(&["PING"]);
    match c.read_frame() {
        Ok(f) if f == b"+PONG\r\n" => Some(c.stream),
        _ => None,
    }
}

#[test]
fn maxclients_refuses_the_sixth_client() {
    let (ringkv, redis) = Server::pair(&["--maxclients", "5"], &shards());
    let run = |s: &Server| {
        // The start-up probe's connection may still count for a moment: retry briefly.
        let mut open = vec![];
        let deadline = Instant::now() + Duration::from_secs(5);
        while open.len() < 5 {
            match served(s) {
                Some(c) => open.push(c),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                None => panic!("{}: only {} of 5 clients were served", s.name(), open.len()),
            }
        }
        let mut sixth = s.stream();
        let refused = read_until_close(&mut sixth, vec![], Duration::from_secs(3));
        // Once one leaves, a new client gets in again.
        drop(open.pop());
        let again = common::wait_until(Duration::from_secs(5), || served(s).is_some());
        (refused, again)
    };
    let (a, b) = both(&ringkv, &redis, run);
    assert_eq!(b.0, (b"-ERR max number of clients reached\r\n".to_vec(), End::Closed), "redis-server's refusal");
    assert_eq!((escape(&a.0 .0, 200), a.0 .1), (escape(&b.0 .0, 200), b.0 .1), "ringkv's refusal of the 6th client");
    assert!(a.1, "ringkv did not accept a client after one left");
}

#[test]
fn query_buffer_limit_closes_the_client() {
    let (ringkv, redis) = Server::pair(&["--client-query-buffer-limit", "1mb"], &shards());
    let run = |s: &Server| {
        let mut c = s.stream();
        // A 2 MiB + 100 bytes bulk of which 2 MiB is sent: never complete, over the limit.
        let _ = c.write_all(b"*2\r\n$4\r\nECHO\r\n$2097252\r\n");
        let data = vec![b'x'; 64 * 1024];
        let started = Instant::now();
        for _ in 0..32 {
            if c.write_all(&data).is_err() {
                break;
            }
        }
        let (got, end) = read_until_close(&mut c, vec![], Duration::from_secs(5));
        let mut other = s.conn();
        let ok = other.cmd(&["PING"]) == Resp::Simple("PONG".into());
        (escape(&got, 200), end, ok, started.elapsed())
    };
    let (a, b) = both(&ringkv, &redis, run);
    assert_eq!(b.1, End::Closed, "redis-server kept the client open: {:?}", b);
    assert_eq!((a.0.as_str(), a.1, a.2), (b.0.as_str(), b.1, b.2), "ringkv (left) vs redis (right): reply, end, other client served");
}

#[test]
fn output_buffer_limit_disconnects_a_client_that_never_reads() {
    let (ringkv, redis) = Server::pair(&["--client-output-buffer-limit", "normal 1mb 0 0"], &shards());
    const VALUE: usize = 100 * 1024;
    const GETS: usize = 500;
    // Several flooding clients: ringkv spreads connections over its shards, and a reply
    // produced on another shard than the client's must count against the limit too.
    const FLOODERS: usize = 3;
    let run = |s: &Server| {
        let mut setup = s.conn();
        assert_eq!(setup.cmd(&[b"SET".as_slice(), b"big".as_slice(), vec![b'v'; VALUE].as_slice()]), Resp::ok());
        let mut req = Vec::new();
        for _ in 0..GETS {
            common::encode_into(&mut req, &["GET", "big"]);
        }
        let mut floods: Vec<std::net::TcpStream> = (0..FLOODERS).map(|_| s.stream()).collect();
        for c in &mut floods {
            let _ = c.write_all(&req);
        }
        // Do not read: let the server pile up replies, then see what arrives.
        std::thread::sleep(Duration::from_millis(700));
        let ends: Vec<(usize, End)> = floods
            .iter_mut()
            .map(|c| {
                let (got, end) = read_until_close(c, vec![], Duration::from_secs(3));
                (got.len(), end)
            })
            .collect();
        let ok = setup.cmd(&["GET", "big"]).opt_bytes().map(|v| v.len()) == Some(VALUE);
        (ends, ok)
    };
    let (a, b) = both(&ringkv, &redis, run);
    let total = GETS * (VALUE + 11);
    assert!(b.0.iter().all(|&(n, end)| end == End::Closed && n < total), "redis-server did not disconnect every flooding client: {:?}", b);
    for (i, &(n, end)) in a.0.iter().enumerate() {
        assert_eq!(end, End::Closed, "ringkv did not disconnect flooding client {} (it received {} of {} bytes)", i, n, total);
        assert!(n < total, "ringkv sent every reply ({} bytes) to client {} before closing", n, i);
    }
    assert!(a.1, "ringkv stopped serving other clients");
}

#[test]
fn idle_timeout_closes_idle_clients() {
    let (ringkv, redis) = Server::pair(&["--timeout", "1"], &shards());
    let run = |s: &Server| {
        // An idle client is closed after ~1-2 s; a busy one is kept.
        let idle = s.conn();
        let mut busy = s.conn();
        let mut idle_stream = idle.stream;
        let started = Instant::now();
        std::thread::scope(|sc| {
            let h = sc.spawn(|| {
                let (_, end) = read_until_close(&mut idle_stream, vec![], Duration::from_secs(6));
                (end, started.elapsed())
            });
            let mut busy_ok = true;
            while started.elapsed() < Duration::from_millis(2600) {
                busy_ok &= busy.cmd(&["PING"]) == Resp::Simple("PONG".into());
                std::thread::sleep(Duration::from_millis(200));
            }
            let (end, after) = h.join().unwrap();
            (end, after, busy_ok)
        })
    };
    let (a, b) = both(&ringkv, &redis, run);
    assert_eq!(b.0, End::Closed, "redis-server did not close the idle client");
    assert_eq!(a.0, End::Closed, "ringkv did not close the idle client within 6 s");
    assert!(a.1 >= Duration::from_millis(900) && a.1 <= Duration::from_secs(4), "ringkv closed the idle client after {:?} (timeout 1 s)", a.1);
    assert!(a.2 && b.2, "the busy client was not served throughout (ringkv {}, redis {})", a.2, b.2);
}
