//! The correctness oracle: replay every `tests/corpus/*.txt` against ringkv
//! (`--shards 3`) and a real redis-server 7.0, and require byte-identical
//! replies (format in `tests/corpus/README.md`). Then feed both servers the
//! same malformed and inline input over raw sockets and compare replies and
//! whether the connection was closed.
//!
//! `RINGKV_CORPUS=name` (a substring of the file name) replays only matching files.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{escape, shape, split_args, Conn, End, Server};

/// A corpus reply slower than this is reported as a timeout (and both connections renewed).
const CORPUS_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of each reply shown in a mismatch report.
const SHOW_BYTES: usize = 400;

fn corpus_files() -> Vec<PathBuf> {
    files_in(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"))
}

fn files_in(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(dir);
    let filter = std::env::var("RINGKV_CORPUS").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {}", dir.display(), e))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .filter(|p| filter.is_empty() || p.file_name().unwrap().to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    files
}

/// One side of the comparison: a server and the connection the file runs on.
struct Side<'a> {
    server: &'a mut Server,
    conn: Conn,
}

impl<'a> Side<'a> {
    fn new(server: &'a mut Server) -> Side<'a> {
        let conn = connect(server);
        Side { server, conn }
    }

    fn reconnect(&mut self) {
        self.conn = connect(self.server);
    }

    /// Whether the server still answers PING on a new connection.
    fn responsive(&self) -> bool {
        let mut c = connect(self.server);
        c.send(&["PING"]);
        matches!(c.read_frame(), Ok(f) if f == b"+PONG\r\n")
    }

    /// Starts a file: a fresh connection, an empty keyspace and zeroed statistics.
    fn fresh(&mut self) {
        self.reconnect();
        for cmd in [&["FLUSHALL"][..], &["CONFIG", "RESETSTAT"][..]] {
            self.conn.send(cmd);
            let _ = self.conn.read_frame();
        }
    }
}

fn connect(server: &Server) -> Conn {
    let c = server.conn();
    c.stream.set_read_timeout(Some(CORPUS_READ_TIMEOUT)).unwrap();
    c
}

/// The outcome of reading one reply.
#[derive(PartialEq)]
enum Got {
    Reply(Vec<u8>),
    Closed,
    Timeout,
    Invalid(String),
}

impl Got {
    fn show(&self) -> String {
        match self {
            Got::Reply(b) => format!("\"{}\"", escape(b, SHOW_BYTES)),
            Got::Closed => "<connection closed>".into(),
            Got::Timeout => format!("<no reply within {:?}>", CORPUS_READ_TIMEOUT),
            Got::Invalid(e) => format!("<invalid RESP: {}>", e),
        }
    }
}

fn read_one(conn: &mut Conn) -> (Got, usize) {
    let got = match conn.read_frame() {
        Ok(f) => Got::Reply(f),
        Err(e) => match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Got::Timeout,
            std::io::ErrorKind::InvalidData => Got::Invalid(e.to_string()),
            _ => Got::Closed,
        },
    };
    (got, conn.pending_len())
}

/// `read_one` `n` times: the frames' bytes together (the first failure
/// ends it).
fn read_frames(conn: &mut Conn, n: usize) -> (Got, usize) {
    let mut all = Vec::new();
    for _ in 0..n {
        match read_one(conn) {
            (Got::Reply(b), _) => all.extend_from_slice(&b),
            other => return other,
        }
    }
    (Got::Reply(all), conn.pending_len())
}

/// Replays one file; appends its mismatches to `report` and returns how many there were.
fn run_file(path: &PathBuf, ringkv: &mut Server, redis: &mut Server, report: &mut String, wedged: &mut bool) -> usize {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e));
    let mut a = Side::new(ringkv);
    let mut b = Side::new(redis);
    a.fresh();
    b.fresh();
    let mut failures = 0;
    // `!frames N`: the next command's reply is read as N frames (a RESP3
    // client's own event pushes around its reply).
    let mut frames_next = 1usize;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(ms) = line.strip_prefix("!sleep") {
            match ms.trim().parse::<u64>() {
                Ok(ms) => std::thread::sleep(Duration::from_millis(ms)),
                Err(_) => {
                    failures += 1;
                    report.push_str(&format!("{}:{}: bad directive {:?}\n", name, lineno, line));
                }
            }
            continue;
        }
        if let Some(n) = line.strip_prefix("!frames") {
            match n.trim().parse::<usize>() {
                Ok(n) if n >= 1 => frames_next = n,
                _ => {
                    failures += 1;
                    report.push_str(&format!("{}:{}: bad directive {:?}\n", name, lineno, line));
                }
            }
            continue;
        }
        if line.starts_with('!') {
            failures += 1;
            report.push_str(&format!("{}:{}: unknown directive {:?}\n", name, lineno, line));
            continue;
        }
        let (by_shape, command) = match line.strip_prefix("~ ") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some(args) = split_args(command) else {
            failures += 1;
            report.push_str(&format!("{}:{}: unbalanced quotes in {:?}\n", name, lineno, command));
            continue;
        };
        if args.is_empty() {
            continue;
        }
        a.conn.send(&args);
        b.conn.send(&args);
        let frames = std::mem::replace(&mut frames_next, 1);
        let (ra, extra_a) = read_frames(&mut a.conn, frames);
        let (rb, extra_b) = read_frames(&mut b.conn, frames);
        let same = match (&ra, &rb) {
            (Got::Reply(x), Got::Reply(y)) => {
                if by_shape {
                    shape(x) == shape(y)
                } else {
                    x == y
                }
            }
            (x, y) => x == y,
        };
        if !same || extra_a != extra_b {
            failures += 1;
            report.push_str(&format!("{}:{}: {}{}\n", name, lineno, if by_shape { "(shape) " } else { "" }, command));
            if by_shape {
                if let (Got::Reply(x), Got::Reply(y)) = (&ra, &rb) {
                    report.push_str(&format!("    shapes  ringkv {}  redis {}\n", shape(x), shape(y)));
                }
            }
            report.push_str(&format!("    ringkv: {}\n    redis:  {}\n", ra.show(), rb.show()));
            if extra_a != extra_b {
                report.push_str(&format!("    unrequested bytes after the reply: ringkv {}, redis {}\n", extra_a, extra_b));
            }
        }
        // QUIT closes both connections; a timeout or an extra reply leaves a connection out of
        // step. Renew what is unusable so that the rest of the file still compares.
        let quit = args[0].eq_ignore_ascii_case(b"quit");
        let desync = !same || extra_a != extra_b;
        if quit || desync || matches!(ra, Got::Closed | Got::Timeout | Got::Invalid(_)) {
            a.reconnect();
        }
        if quit || desync || matches!(rb, Got::Closed | Got::Timeout | Got::Invalid(_)) {
            b.reconnect();
        }
        if !a.server.alive() {
            failures += 1;
            report.push_str(&format!("{}:{}: ringkv DIED after {:?}; log:\n{}\n", name, lineno, command, a.server.logs()));
            return failures;
        }
        if ra == Got::Timeout && !a.responsive() {
            failures += 1;
            report.push_str(&format!("{}:{}: ringkv STOPPED ANSWERING (even PING) after {:?}; the rest of the corpus is skipped\n", name, lineno, command));
            *wedged = true;
            return failures;
        }
    }
    failures
}

#[test]
fn corpus() {
    let files = corpus_files();
    assert!(!files.is_empty(), "no tests/corpus/*.txt file matches RINGKV_CORPUS");
    let (mut ringkv, mut redis) = Server::pair(&[], &["--shards", "3"]);
    let mut report = String::new();
    let mut failures = 0;
    let mut failed_files = vec![];
    let mut wedged = false;
    for f in &files {
        let n = run_file(f, &mut ringkv, &mut redis, &mut report, &mut wedged);
        if n > 0 {
            failed_files.push(format!("{} ({})", f.file_name().unwrap().to_string_lossy(), n));
        }
        failures += n;
        if wedged || !ringkv.alive() {
            break;
        }
    }
    if failures > 0 {
        panic!(
            "{} mismatch(es) between ringkv and redis-server in {} of {} corpus file(s): {}\n\n{}",
            failures,
            failed_files.len(),
            files.len(),
            failed_files.join(", "),
            report
        );
    }
}

/// CLUSTER commands against a real Redis running in cluster mode as a
/// one-node cluster owning every slot (a standalone Redis answers them all
/// with "cluster support disabled"). Node ids and ports differ, so those
/// lines are compared by shape in the corpus.
#[test]
fn cluster_corpus() {
    let files = files_in(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus-cluster"));
    let nodes = std::env::temp_dir().join(format!("ringkv-cluster-nodes-{}.conf", std::process::id()));
    let _ = std::fs::remove_file(&nodes);
    let nodes_arg = nodes.display().to_string();
    let mut ringkv = Server::ringkv(&["--shards", "3"]);
    let mut redis = Server::redis(&["--cluster-enabled", "yes", "--cluster-config-file", &nodes_arg]);
    {
        let mut c = redis.conn();
        let _ = c.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        let start = std::time::Instant::now();
        loop {
            let info = c.cmd(&["CLUSTER", "INFO"]);
            if info.opt_bytes().is_some_and(|b| String::from_utf8_lossy(&b).contains("cluster_state:ok")) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "redis cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut report = String::new();
    let mut failures = 0;
    let mut wedged = false;
    for f in &files {
        failures += run_file(f, &mut ringkv, &mut redis, &mut report, &mut wedged);
    }
    let _ = std::fs::remove_file(&nodes);
    assert_eq!(failures, 0, "cluster corpus mismatches:\n{}", report);
}

// ---------------------------------------------------------------------------
// Malformed and inline input over raw sockets

fn feed(server: &Server, chunks: &[Vec<u8>]) -> (Vec<u8>, End) {
    common::feed(server, chunks, Duration::from_millis(1500))
}

fn raw_cases() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let one = |s: &[u8]| vec![s.to_vec()];
    let mut cases: Vec<(&'static str, Vec<Vec<u8>>)> = vec![
        ("inline PING", one(b"PING\r\n")),
        ("inline PING with LF only", one(b"PING\n")),
        ("inline lowercase with extra spaces", one(b"  ping   \r\n")),
        ("inline ECHO with double quotes", one(b"ECHO \"hello world\"\r\n")),
        ("inline ECHO with escapes", one(b"ECHO \"a\\x41\\n\\t\\\\b\"\r\n")),
        ("inline ECHO with single quotes", one(b"ECHO 'it''s'\r\n")),
        ("inline single quote escape", one(b"ECHO 'it\\'s'\r\n")),
        ("inline SET and GET with quoted key", one(b"SET \"k x\" 'v y'\r\nGET \"k x\"\r\nDEL \"k x\"\r\n")),
        ("inline two commands one write", one(b"PING\r\nECHO two\r\n")),
        ("inline unknown command", one(b"NOSUCHCMD a b\r\n")),
        ("inline bulk-looking line", one(b"$4\r\nPING\r\n")),
        ("inline unbalanced double quote", one(b"ECHO \"abc\r\n")),
        ("inline unbalanced single quote", one(b"ECHO 'abc\r\n")),
        ("inline closing quote followed by text", one(b"ECHO \"a\"b\r\n")),
        ("inline error after good command", one(b"PING\r\nECHO \"x\r\n")),
        ("empty lines then PING", one(b"\r\n\r\n\n*1\r\n$4\r\nPING\r\n")),
        ("blank inline lines", one(b"   \r\n\t\r\nPING\r\n")),
        ("multibulk PING in 1-byte writes", b"*1\r\n$4\r\nPING\r\n".iter().map(|&c| vec![c]).collect()),
        ("multibulk ECHO split inside bulk", vec![b"*2\r\n$4\r\nEC".to_vec(), b"HO\r\n$5\r\nhel".to_vec(), b"lo\r\n".to_vec()]),
        ("inline PING in 1-byte writes", b"PING\r\n".iter().map(|&c| vec![c]).collect()),
        ("multibulk count not a number", one(b"*x\r\n")),
        ("multibulk count too large", one(b"*2147483648\r\n")),
        ("multibulk count with sign junk", one(b"*1x\r\n")),
        // Redis 7.0 accepts any count up to INT_MAX (argv grows as arguments arrive).
        ("multibulk count above 1M (incomplete)", one(b"*1048577\r\n$4\r\nECHO\r\n")),
        ("multibulk count INT_MAX (incomplete)", one(b"*2147483647\r\n")),
        ("expected $ got :", one(b"*1\r\n:x\r\n")),
        ("expected $ got +", one(b"*2\r\n$4\r\nECHO\r\n+hi\r\n")),
        ("bulk length -1", one(b"*1\r\n$-1\r\n")),
        ("bulk length not a number", one(b"*1\r\n$abc\r\n")),
        ("bulk length with space", one(b"*1\r\n$ 4\r\n")),
        ("bulk length huge", one(b"*1\r\n$999999999999\r\n")),
        ("bulk length above proto-max-bulk-len", one(b"*2\r\n$4\r\nECHO\r\n$1048577\r\n")),
        ("bulk length at proto-max-bulk-len (incomplete)", one(b"*2\r\n$4\r\nECHO\r\n$1048576\r\nabc")),
        ("bulk not followed by CRLF", one(b"*1\r\n$4\r\nPINGxx\r\n")),
        ("empty multibulk then PING", one(b"*0\r\n*1\r\n$4\r\nPING\r\n")),
        ("null multibulk then PING", one(b"*-1\r\n*1\r\n$4\r\nPING\r\n")),
        ("negative multibulk count -5", one(b"*-5\r\nPING\r\n")),
        ("incomplete multibulk (no reply, stays open)", one(b"*2\r\n$4\r\nECHO\r\n$3\r\nab")),
        ("good command then protocol error", one(b"*1\r\n$4\r\nPING\r\n*x\r\n")),
        ("protocol error then more commands", one(b"*x\r\n*1\r\n$4\r\nPING\r\n")),
        ("empty bulk command name", one(b"*1\r\n$0\r\n\r\n")),
        ("multibulk with LF only", one(b"*1\n$4\nPING\n")),
    ];
    // Pipelines longer than the 16 commands the server parses ahead of running them
    // (dispatch.rs): order, empty and inline commands, and an error mid-way. Each case
    // has its own keys (cases run at the same time).
    let long = |prefix: char| {
        let mut out = Vec::new();
        for i in 0..40 {
            out.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$4\r\n{}p{:02}\r\n$1\r\n{}\r\n", prefix, i, i % 10).as_bytes());
            out.extend_from_slice(format!("*2\r\n$4\r\nINCR\r\n$4\r\n{}p{:02}\r\n", prefix, (i + 39) % 40).as_bytes());
            if i % 7 == 0 {
                out.extend_from_slice(b"*0\r\nPING\r\n");
            }
        }
        out
    };
    let mut then_error = long('e');
    then_error.extend_from_slice(b"*1\r\n$4\r\nPING\r\n*x\r\n*1\r\n$4\r\nPING\r\n");
    cases.push(("90 pipelined commands", vec![long('l')]));
    // Multi-shard commands pipelined with single-key ones: a run of them goes under one
    // hold of the other shards (dispatch.rs); replies and effects stay in order.
    let enc = |args: &[&str]| {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
        out
    };
    let mut multi = Vec::new();
    for i in 0..12 {
        let (a, b, c) = (format!("ma{i}"), format!("mb{i}"), format!("mc{i}"));
        multi.extend(enc(&["MSET", &a, "1", &b, "2", &c, "3"]));
        multi.extend(enc(&["INCR", &b]));
        multi.extend(enc(&["MGET", &a, &b, &c, "nokey"]));
        multi.extend(enc(&["RENAME", &a, &format!("mr{i}")]));
        multi.extend(enc(&["EXISTS", &a, &b, &format!("mr{i}")]));
        if i % 4 == 0 {
            multi.extend(enc(&["PING"]));
        }
        multi.extend(enc(&["DEL", &b, &c, &format!("mr{i}")]));
    }
    cases.push(("pipelined multi-shard commands", vec![multi]));
    cases.push(("90 pipelined commands then a protocol error", vec![then_error]));
    // Over 64 KiB without a newline: "too big inline request". Exactly one byte over, so the
    // server has read everything when it closes (unread input would turn the close into a
    // reset that can discard the error reply before we read it).
    cases.push(("inline request too big", vec![vec![b'a'; 64 * 1024 + 1]]));
    let mut mbulk = vec![b'*'];
    mbulk.extend(std::iter::repeat_n(b'1', 64 * 1024 + 1));
    cases.push(("multibulk count string too big", vec![mbulk]));
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(std::iter::repeat_n(b'1', 64 * 1024 + 1));
    cases.push(("bulk count string too big", vec![bulk]));
    cases
}

/// A case's name, then what ringkv and redis-server did with it.
type CaseResult = (&'static str, (Vec<u8>, End), (Vec<u8>, End));

#[test]
fn malformed_and_inline_input() {
    // proto-max-bulk-len at its minimum (1mb) on both, so one case can exceed it cheaply.
    let (ringkv, redis) = Server::pair(&["--proto-max-bulk-len", "1mb"], &["--shards", "3"]);
    let cases = raw_cases();
    // Every case on its own pair of connections, all at once: the slow part is waiting to
    // see that an open connection stays quiet.
    let results: Vec<CaseResult> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(name, chunks)| {
                let (ringkv, redis) = (&ringkv, &redis);
                s.spawn(move || {
                    let ha = s.spawn(move || feed(ringkv, chunks));
                    let b = feed(redis, chunks);
                    (*name, ha.join().unwrap(), b)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut report = String::new();
    let mut failures = 0;
    let verbose = std::env::var_os("RINGKV_VERBOSE").is_some();
    for (name, (ra, ea), (rb, eb)) in &results {
        if verbose {
            eprintln!("{}: redis \"{}\" {:?}; ringkv \"{}\" {:?}", name, escape(rb, 120), eb, escape(ra, 120), ea);
        }
        if ra != rb || ea != eb {
            failures += 1;
            report.push_str(&format!(
                "{}:\n    ringkv: \"{}\" {}\n    redis:  \"{}\" {}\n",
                name,
                escape(ra, SHOW_BYTES),
                if *ea == End::Closed { "then closed" } else { "(connection open)" },
                escape(rb, SHOW_BYTES),
                if *eb == End::Closed { "then closed" } else { "(connection open)" }
            ));
        }
    }
    let mut ringkv = ringkv;
    ringkv.assert_serving();
    if failures > 0 {
        panic!("{} of {} raw inputs differ between ringkv and redis-server:\n{}", failures, results.len(), report);
    }
}

#[test]
fn corpus_line_splitting() {
    let s = |l: &str| split_args(l).map(|v| v.into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect::<Vec<_>>());
    assert_eq!(s("SET a b"), Some(vec!["SET".into(), "a".into(), "b".into()]));
    assert_eq!(s("  SET   \"a b\"  'c d'  "), Some(vec!["SET".into(), "a b".into(), "c d".into()]));
    assert_eq!(s("ECHO \"\\x41\\n\""), Some(vec!["ECHO".into(), "A\n".into()]));
    assert_eq!(s("ECHO 'it\\'s'"), Some(vec!["ECHO".into(), "it's".into()]));
    assert_eq!(s("ECHO \"\""), Some(vec!["ECHO".into(), "".into()]));
    assert_eq!(s("ECHO \"abc"), None);
    assert_eq!(s("ECHO \"a\"b"), None);
    assert_eq!(s(""), Some(vec![]));
}

#[test]
fn resp_reader_all_types() {
    use common::{frame_len, FrameError};
    let complete: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR x\r\n",
        b":-12\r\n",
        b"$3\r\nabc\r\n",
        b"$-1\r\n",
        b"$0\r\n\r\n",
        b"*-1\r\n",
        b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
        b"_\r\n",
        b",3.14\r\n",
        b"#t\r\n",
        b"!5\r\nERR x\r\n",
        b"=7\r\ntxt:abc\r\n",
        b"(123456789012345678901234567890\r\n",
        b"%1\r\n+a\r\n:1\r\n",
        b"~2\r\n+a\r\n+b\r\n",
        b">2\r\n+message\r\n$1\r\nx\r\n",
        b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
    ];
    for f in complete {
        assert_eq!(frame_len(f), Ok(f.len()), "{}", escape(f, 100));
        for cut in 0..f.len() {
            assert_eq!(frame_len(&f[..cut]), Err(FrameError::Incomplete), "{} cut at {}", escape(f, 100), cut);
        }
        let mut two = f.to_vec();
        two.extend_from_slice(b"+next\r\n");
        assert_eq!(frame_len(&two), Ok(f.len()));
        let _ = common::decode(f);
    }
    assert!(matches!(frame_len(b"?\r\n"), Err(FrameError::Invalid(_))));
    assert!(matches!(frame_len(b"$3\r\nabcd\r\n"), Err(FrameError::Invalid(_))));
    assert_eq!(shape(b"*2\r\n:1\r\n:2\r\n"), "*2");
    assert_eq!(shape(b"|1\r\n+a\r\n+b\r\n%1\r\n+k\r\n+v\r\n"), "%1");
}
