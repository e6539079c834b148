//! The request parser from outside: the limits Redis puts on clients that
//! have not authenticated, requests that arrive in pieces, and random and
//! mutated frames sent to ringkv and redis-server side by side.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{encode, encode_into, escape, feed, End, Resp, Rng, Server};

/// How long a connection may stay quiet before we take it that the server
/// waits for more input (both servers answer complete requests in ms).
const IDLE: Duration = Duration::from_millis(500);

/// Runs `f` against ringkv and redis at once and returns (ringkv's result, redis's result).
fn both<T: Send>(ringkv: &Server, redis: &Server, f: impl Fn(&Server) -> T + Sync) -> (T, T) {
    std::thread::scope(|s| {
        let h = s.spawn(|| f(redis));
        let a = f(ringkv);
        (a, h.join().unwrap())
    })
}

/// Sends each case (a list of writes) on its own connection to both servers,
/// `threads` cases at a time, and describes every case whose reply bytes or
/// close differ.
fn differences(ringkv: &Server, redis: &Server, cases: &[Vec<Vec<u8>>], threads: usize) -> String {
    let results: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(threads).max(1))
            .map(|chunk| {
                s.spawn(move || {
                    let mut out = String::new();
                    for case in chunk {
                        let (a, b) = both(ringkv, redis, |srv| feed(srv, case, IDLE));
                        if a != b {
                            let sent: Vec<String> = case.iter().map(|w| escape(w, 120)).collect();
                            out.push_str(&format!(
                                "sent {}\n    ringkv: {} {:?}\n    redis:  {} {:?}\n",
                                sent.join(" | "),
                                escape(&a.0, 300),
                                a.1,
                                escape(&b.0, 300),
                                b.1
                            ));
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    results.concat()
}

/// The server is alive and serves a client that authenticates with `password`.
fn assert_authenticated_serving(server: &mut Server, password: &str) -> common::Conn {
    assert!(server.alive(), "{} exited", server.name());
    let mut c = server.conn();
    assert_eq!(c.cmd(&["AUTH", password]), Resp::ok());
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()), "{} does not answer PING", server.name());
    c
}

fn one_byte_args(command: &str, n: usize) -> Vec<u8> {
    let mut v = format!("*{}\r\n${}\r\n{}\r\n", n + 1, command.len(), command).into_bytes();
    for _ in 0..n {
        v.extend_from_slice(b"$1\r\na\r\n");
    }
    v
}

#[test]
fn unauthenticated_limits_match_redis() {
    let (ringkv, redis) = Server::pair(&["--requirepass", "secret"], &["--shards", "2"]);
    let auth = encode(&["AUTH", "secret"]);
    let big_echo = encode(&["ECHO", &"e".repeat(100_000)]);
    let mut cases: Vec<Vec<Vec<u8>>> = vec![
        vec![b"*11\r\n".to_vec()],
        vec![b"*1048576\r\n".to_vec()],
        vec![b"*1\r\n$16385\r\n".to_vec()],
        vec![b"*2\r\n$4\r\nECHO\r\n$536870912\r\n".to_vec()],
        // At the limits: served (NOAUTH), and the connection stays.
        vec![one_byte_args("ECHO", 9)],
        vec![encode(&["ECHO", &"x".repeat(16384)])],
        // The header in pieces.
        vec![b"*1".to_vec(), b"1\r".to_vec(), b"\n".to_vec()],
        vec![b"*2\r\n$4\r\nECHO\r\n$163".to_vec(), b"85\r\n".to_vec()],
        // Inline requests have only their 64 KiB line limit.
        vec![format!("ECHO {}\r\n", "i".repeat(20_000)).into_bytes()],
        // Commands before the offending one still run.
        vec![[encode(&["PING"]), b"*12\r\n".to_vec()].concat()],
        // AUTH then a big request in the same write: the AUTH counts first.
        vec![[auth.clone(), big_echo.clone(), one_byte_args("ECHO", 20)].concat()],
        // A wrong password does not lift the limits; RESET brings them back.
        vec![[encode(&["AUTH", "wrong"]), big_echo.clone()].concat()],
        vec![[auth.clone(), encode(&["RESET"]), big_echo.clone()].concat()],
        vec![auth.clone(), big_echo.clone()],
    ];
    // A big bulk right after AUTH, streamed in pieces.
    cases.push(vec![auth.clone(), big_echo[..30_000].to_vec(), big_echo[30_000..].to_vec()]);
    let diffs = differences(&ringkv, &redis, &cases, 4);
    let (a, _) = both(&ringkv, &redis, |s| feed(s, &[b"*11\r\n".to_vec()], IDLE));
    assert_eq!(
        a,
        (b"-ERR Protocol error: unauthenticated multibulk length\r\n".to_vec(), End::Closed),
        "ringkv let an unauthenticated client declare 11 arguments"
    );
    let (a, _) = both(&ringkv, &redis, |s| feed(s, &[b"*1\r\n$16385\r\n".to_vec()], IDLE));
    assert_eq!(
        a,
        (b"-ERR Protocol error: unauthenticated bulk length\r\n".to_vec(), End::Closed),
        "ringkv let an unauthenticated client declare a 16385-byte bulk"
    );
    let mut ringkv = ringkv;
    assert_authenticated_serving(&mut ringkv, "secret");
    assert!(diffs.is_empty(), "ringkv (first) and redis-server (second) differ:\n{}", diffs);
}

/// A pipeline of commands of several shapes, cut once at every byte
/// boundary (the two halves in separate writes, so the server sees two
/// receives): every cut gives the same replies as redis-server.
#[test]
fn requests_split_at_every_byte_boundary() {
    let (ringkv, redis) = Server::pair(&[], &["--shards", "2"]);
    let mut input = Vec::new();
    encode_into(&mut input, &["SET", "split:a", "1"]);
    encode_into(&mut input, &["MSET", "split:{x}1", "v1", "split:{y}2", "v2"]);
    encode_into(&mut input, &["MGET", "split:a", "split:{x}1", "split:{y}2"]);
    input.extend_from_slice(b"*0\r\n\r\nECHO \"a b\" 'c'\r\n");
    encode_into(&mut input, &["ECHO", ""]);
    encode_into(&mut input, &["INCR", "split:n"]);
    encode_into(&mut input, &["DEL", "split:a", "split:{x}1", "split:{y}2"]);
    input.extend_from_slice(b"PING\n");
    // The server closes after the replies: no waiting to see that nothing more comes.
    encode_into(&mut input, &["QUIT"]);
    let cases: Vec<Vec<Vec<u8>>> = (1..input.len()).map(|cut| vec![input[..cut].to_vec(), input[cut..].to_vec()]).collect();
    // Sequential: each case increments split:n, which both servers then agree on.
    let diffs = differences(&ringkv, &redis, &cases, 1);
    assert!(diffs.is_empty(), "replies differ for a pipeline cut in two:\n{}", diffs);
}

/// Big requests fed slowly, in pieces the size of one TCP segment with pauses,
/// arrive intact: a 1 MiB value, a 4 MiB MSET, a frame of 100k one-byte
/// arguments, with small requests of other clients served meanwhile.
#[test]
fn big_requests_fed_in_pieces_arrive_intact() {
    let s = Server::ringkv(&["--shards", "2"]);
    let mut rng = Rng::new(42);
    let mut value = vec![0u8; 1 << 20];
    rng.fill(&mut value);
    let mut mset = vec![b"MSET".to_vec()];
    let pairs = 100_000;
    for i in 0..pairs {
        mset.push(format!("piece:{i}").into_bytes());
        mset.push(format!("value-{i:08}-{}", "p".repeat(20)).into_bytes());
    }
    let requests = [encode(&[b"SET".as_slice(), b"piece:big", &value]), encode(&mset), one_byte_args("ECHO", 100_000)];
    let mut c = s.conn();
    let mut other = s.conn();
    for (n, req) in requests.iter().enumerate() {
        for (i, piece) in req.chunks(1460).enumerate() {
            c.send_raw(piece);
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            if i % 512 == 0 {
                assert_eq!(other.cmd(&["PING"]), Resp::Simple("PONG".into()), "another client not served while request {} arrives", n);
            }
        }
    }
    assert_eq!(c.read(), Resp::ok());
    assert_eq!(c.read(), Resp::ok());
    assert_eq!(c.read(), Resp::Error("ERR wrong number of arguments for 'echo' command".into()));
    assert_eq!(c.cmd(&["GET", "piece:big"]).opt_bytes().as_deref(), Some(value.as_slice()), "the 1 MiB value came back changed");
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(pairs as i64 + 1));
    for i in [0, 1, pairs / 2, pairs - 1] {
        assert_eq!(c.cmd(&["GET", &format!("piece:{i}")]), Resp::bulk(format!("value-{i:08}-{}", "p".repeat(20))));
    }
}

/// A bounded differential fuzz run: mutated and random frames, each on its own
/// connection, to ringkv and redis-server; same reply bytes and same close
/// (or wait) for every one. Bytes are drawn from the protocol's own
/// alphabet (digits, `*$\r\n`, quotes, NUL, ...) so that most mutations land
/// on the parser's decisions. `PARSER_FUZZ_CASES` and `PARSER_FUZZ_SEED`
/// make a longer run (perf/README.md).
#[test]
fn random_frames_match_redis() {
    let cases_wanted: usize = std::env::var("PARSER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed: u64 = std::env::var("PARSER_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x9a55);
    let (ringkv, redis) = Server::pair(&["--requirepass", "pw", "--proto-max-bulk-len", "1mb"], &["--shards", "2"]);
    let mut rng = Rng::new(seed);
    // \xad: a byte past ASCII, which "expected '$', got '%c'" echoes raw.
    const ALPHABET: &[u8] = b"0123456789*$\r\n \t\x0b\"'\\x-+:\0aPING\xad";
    let bases: Vec<Vec<u8>> = vec![
        encode(&["AUTH", "pw"]),
        encode(&["PING"]),
        encode(&["PING", "a message"]),
        encode(&["ECHO", "some bytes"]),
        encode(&["ECHO", &"b".repeat(3000)]),
        encode(&["EXISTS", "fuzz:{a}", "fuzz:{b}", "fuzz:{c}"]),
        encode(&["GET", "fuzz:none"]),
        encode(&["GET"]),
        encode(&["NOSUCHCMD", "a", "b"]),
        b"PING\r\n".to_vec(),
        b"ECHO \"quoted \\x41 \\n\" 'single \\' q'\r\n".to_vec(),
        b"AUTH pw\n".to_vec(),
        b"*3\r\n$4\r\nECHO\r\n$1\r\na\r\n".to_vec(),
        b"*-1\r\n*0\r\n".to_vec(),
    ];
    let mut cases = vec![];
    for _ in 0..cases_wanted {
        let mut input = Vec::new();
        for _ in 0..1 + rng.below(4) {
            input.extend_from_slice(&bases[rng.below(bases.len() as u64) as usize]);
        }
        for _ in 0..rng.below(4) {
            let at = rng.below(input.len() as u64 + 1) as usize;
            let byte = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
            match rng.below(4) {
                0 if at < input.len() => input[at] = byte,
                1 => input.insert(at, byte),
                2 if at < input.len() => {
                    input.remove(at);
                }
                _ => input.truncate(at.max(1)),
            }
        }
        // Split into up to three writes, so resumed parsing is fuzzed too.
        let mut writes = vec![];
        let mut rest = input.as_slice();
        for _ in 0..rng.below(3) {
            let cut = rng.below(rest.len() as u64 + 1) as usize;
            writes.push(rest[..cut].to_vec());
            rest = &rest[cut..];
        }
        writes.push(rest.to_vec());
        writes.retain(|w| !w.is_empty());
        if !writes.is_empty() {
            cases.push(writes);
        }
    }
    let diffs = differences(&ringkv, &redis, &cases, 20);
    let mut ringkv = ringkv;
    let mut c = assert_authenticated_serving(&mut ringkv, "pw");
    assert_eq!(c.cmd(&["DBSIZE"]), Resp::Int(0), "a mutated frame ran a write");
    assert!(diffs.is_empty(), "{} cases, seed {:#x}; differences, ringkv first:\n{}", cases.len(), seed, diffs);
}

/// The big-argument path keeps the query-buffer limit: a declared bulk over
/// the limit is not reserved, and the client is closed once it sends more.
#[test]
fn declared_big_bulk_over_the_query_limit_closes_as_redis() {
    let (ringkv, redis) = Server::pair(&["--client-query-buffer-limit", "1mb"], &["--shards", "2"]);
    let run = |s: &Server| {
        let mut c = s.stream();
        let _ = c.write_all(b"*2\r\n$4\r\nECHO\r\n$100000000\r\n");
        let piece = vec![b'z'; 64 * 1024];
        for _ in 0..24 {
            if c.write_all(&piece).is_err() {
                break;
            }
        }
        let (got, end) = common::read_until_close(&mut c, vec![], Duration::from_secs(5));
        let mut other = s.conn();
        (escape(&got, 200), end, other.cmd(&["PING"]) == Resp::Simple("PONG".into()))
    };
    let (a, b) = both(&ringkv, &redis, run);
    assert_eq!(b.1, End::Closed, "redis-server kept the client: {:?}", b);
    assert_eq!(a, b, "ringkv (left) vs redis-server (right): reply, end, other client served");
}
