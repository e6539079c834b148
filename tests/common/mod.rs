//! Shared helpers for the integration tests: start ringkv and a real
//! redis-server on free ports, talk RESP to them over raw sockets, and run
//! the Redis command-line tools with a time limit.
//!
//! Every server is a child process killed by its PID when its `Server` is
//! dropped (also while a test panics), and, should the test process itself
//! die, by the kernel (`PR_SET_PDEATHSIG`). Every socket has read and write
//! timeouts, so no test can hang forever.

#![allow(dead_code)]

pub mod dump;
pub mod timing;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Read/write timeout of every test socket: a reply slower than this is a failure.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried per start before giving up (a port can be taken between probe and bind).
const START_ATTEMPTS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ringkv,
    Redis,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ringkv => "ringkv",
            Kind::Redis => "redis",
        }
    }
}

/// What a started server must do before `Server::start` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Answer PING with +PONG (or -NOAUTH).
    Pong,
    /// Answer PING at all, -LOADING included.
    Loading,
    /// Take TCP connections.
    Listening,
}

/// A running server process on 127.0.0.1.
pub struct Server {
    child: Child,
    pub kind: Kind,
    pub port: u16,
    /// Working directory (`--dir`), holding the log files.
    pub dir: PathBuf,
    pub log_path: PathBuf,
    stdio_path: PathBuf,
}

impl Server {
    /// Starts the ringkv binary under test with
    /// `--port P --save "" --dir D --logfile L` followed by `extra`
    /// (e.g. `&["--shards", "3"]`).
    ///
    /// With `RINGKV_TEST_TARGET=redis` in the environment, a redis-server takes its place
    /// (ringkv-only options such as `--shards` dropped): every test must pass against real
    /// Redis too, which is how the tests themselves are checked.
    pub fn ringkv(extra: &[&str]) -> Server {
        Server::target(extra, Wait::Pong)
    }

    /// `ringkv`, returning as soon as the server answers at all: a server
    /// still loading its dataset (PING answered `-LOADING`) counts as started.
    pub fn ringkv_loading(extra: &[&str]) -> Server {
        Server::target(extra, Wait::Loading)
    }

    /// `ringkv`, returning as soon as its port takes TCP connections,
    /// before any command is answered (start-up: what a client that
    /// connects at once gets).
    pub fn ringkv_listening(extra: &[&str]) -> Server {
        Server::target(extra, Wait::Listening)
    }

    fn target(extra: &[&str], wait: Wait) -> Server {
        if std::env::var("RINGKV_TEST_TARGET").is_ok_and(|t| t == "redis") {
            let mut args = vec![];
            let mut it = extra.iter();
            while let Some(a) = it.next() {
                if *a == "--shards" || *a == "--cpu-affinity" || *a == "--shard-sched-batch" || *a == "--cross-shard-take-asleep" {
                    it.next();
                } else {
                    args.push(*a);
                }
            }
            require_tool("redis-server");
            return Server::start(Kind::Redis, &args, wait);
        }
        Server::start(Kind::Ringkv, extra, wait)
    }

    /// Starts a real `redis-server --port P --save "" --appendonly no ...`
    /// followed by `extra`. Panics with a clear message when redis-server
    /// is not installed: these tests need it and must not pass silently.
    pub fn redis(extra: &[&str]) -> Server {
        require_tool("redis-server");
        Server::start(Kind::Redis, extra, Wait::Pong)
    }

    /// Starts ringkv and redis-server with the same `common` options; `ringkv_extra` is
    /// appended for ringkv only (`--shards N`).
    pub fn pair(common: &[&str], ringkv_extra: &[&str]) -> (Server, Server) {
        let redis = Server::redis(common);
        let mut args = common.to_vec();
        args.extend_from_slice(ringkv_extra);
        (Server::ringkv(&args), redis)
    }

    fn start(kind: Kind, extra: &[&str], wait: Wait) -> Server {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir = scratch_dir(kind.name(), port);
            let log_path = dir.join(format!("{}.log", kind.name()));
            let stdio_path = dir.join("stdio.log");
            let mut cmd = match kind {
                Kind::Ringkv => Command::new(std::env::var_os("RINGKV_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ringkv").into())),
                Kind::Redis => Command::new("redis-server"),
            };
            cmd.arg("--port").arg(port.to_string()).arg("--save").arg("").arg("--dir").arg(&dir).arg("--logfile").arg(&log_path);
            if kind == Kind::Redis {
                cmd.args(["--appendonly", "no", "--daemonize", "no", "--bind", "127.0.0.1"]);
            }
            cmd.args(extra);
            let out = File::create(&stdio_path).expect("create stdio log");
            cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
            // SAFETY: prctl is async-signal-safe; the closure only asks the kernel to
            // SIGKILL the child when the thread that started it (this test) dies.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::NotFound && kind == Kind::Redis => {
                    panic!("redis-server is not on PATH: install Redis 7.0 (e.g. `apt-get install redis-server`); this test compares ringkv with it")
                }
                Err(e) => panic!("cannot start {}: {}", kind.name(), e),
            };
            let mut server = Server { child, kind, port, dir, log_path, stdio_path };
            match server.wait_ready(wait) {
                Ok(()) => return server,
                Err(Retry::PortTaken(log)) => {
                    last_log = log;
                    continue;
                }
                Err(Retry::Fatal(msg)) => {
                    panic!("{} on port {} did not start: {}", kind.name(), port, msg)
                }
            }
        }
        panic!("{} could not get a free port after {} attempts; last log:\n{}", kind.name(), START_ATTEMPTS, last_log)
    }

    fn wait_ready(&mut self, wait: Wait) -> Result<(), Retry> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.logs();
                if log.contains("in use") || log.contains("Could not create server TCP listening socket") {
                    return Err(Retry::PortTaken(log));
                }
                return Err(Retry::Fatal(format!("exited with {} before answering PING; log:\n{}", status, log)));
            }
            if Instant::now() > deadline {
                return Err(Retry::Fatal(format!("no PONG within {:?}; log:\n{}", START_TIMEOUT, self.logs())));
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr().parse().unwrap(), Duration::from_millis(500)) {
                if wait == Wait::Listening {
                    if self.kind == Kind::Ringkv && !listeners_all_ours(self.port, self.pid()) {
                        return Err(Retry::PortTaken("port shared with another process".into()));
                    }
                    return Ok(());
                }
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                s.set_write_timeout(Some(Duration::from_secs(2))).ok();
                let mut buf = [0u8; 7];
                // A server with `requirepass` answers -NOAUTH: serving all the same.
                if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH") || (wait == Wait::Loading && &buf == b"-LOADIN"))
                {
                    // SO_REUSEPORT (ringkv's listeners) lets another process share the port
                    // silently: make sure every listener on it is ours.
                    if self.kind == Kind::Ringkv && !listeners_all_ours(self.port, self.pid()) {
                        return Err(Retry::PortTaken("port shared with another process".into()));
                    }
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit code once the process has ended by itself (None while it
    /// runs or after a signal).
    #[allow(dead_code)]
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }

    /// Panics (with the server's log) unless the process still runs and answers PING.
    pub fn assert_serving(&mut self) {
        assert!(self.alive(), "{} died; log:\n{}", self.name(), self.logs());
        let mut c = self.conn();
        let r = c.cmd(&["PING"]);
        assert_eq!(r, Resp::Simple("PONG".into()), "{} does not answer PING", self.name());
    }

    /// The server's log file and anything it printed on stdout/stderr.
    pub fn logs(&self) -> String {
        let mut s = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let stdio = std::fs::read_to_string(&self.stdio_path).unwrap_or_default();
        if !stdio.is_empty() {
            s.push_str("\n--- stdout/stderr ---\n");
            s.push_str(&stdio);
        }
        s
    }

    /// A raw TCP connection with timeouts and TCP_NODELAY.
    pub fn stream(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).unwrap_or_else(|e| panic!("connect to {} at {}: {}", self.name(), self.addr(), e));
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// A RESP connection.
    pub fn conn(&self) -> Conn {
        Conn::new(self.stream())
    }

    /// A sync `redis` crate connection (RESP2).
    pub fn redis_client(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        let c = client.get_connection_with_timeout(IO_TIMEOUT).unwrap_or_else(|e| panic!("redis crate connect to {}: {}", self.name(), e));
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        c.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        c
    }
}

enum Retry {
    PortTaken(String),
    Fatal(String),
}

impl Drop for Server {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // Kill exactly our child, by its PID (Child::kill sends SIGKILL to it).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if panicking {
            let log = self.logs();
            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            eprintln!("--- {} (port {}) log tail, full log kept in {} ---\n{}", self.name(), self.port, self.dir.display(), tail);
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        PORTS.lock().unwrap().retain(|&p| p != self.port);
    }
}

/// Ports handed out by this process and not yet released (two tests must not probe the
/// same port free and both start on it).
static PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static PORT_CURSOR: AtomicU32 = AtomicU32::new(0);

/// A port that is free now, taken from 20000-31999 (below Linux's ephemeral range, so
/// outgoing connections and other programs' `bind(0)` never collide with it), starting at
/// an offset derived from our PID so that concurrent test processes spread out.
pub fn free_port() -> u16 {
    const BASE: u32 = 20000;
    const SPAN: u32 = 12000;
    let _ = PORT_CURSOR.compare_exchange(0, 1 + (std::process::id().wrapping_mul(7919) % SPAN), Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let n = PORT_CURSOR.fetch_add(1, Ordering::SeqCst);
        let port = (BASE + n % SPAN) as u16;
        let mut taken = PORTS.lock().unwrap();
        if taken.contains(&port) {
            continue;
        }
        // A plain bind (no SO_REUSEPORT) fails if anyone listens there, even with SO_REUSEPORT.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free port in 20000-31999")
}

fn scratch_dir(name: &str, port: u16) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("ringkv-test-{}-{}-{}-{}", std::process::id(), name, port, n));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// True when every IPv4 listening socket on `port` belongs to process `pid`.
fn listeners_all_ours(port: u16, pid: u32) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let mut inodes = vec![];
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((_, p)) = f[1].split_once(':') else {
            continue;
        };
        if u16::from_str_radix(p, 16).ok() == Some(port) {
            inodes.push(format!("socket:[{}]", f[9]));
        }
    }
    let mut ours = HashSet::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{}/fd", pid)) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_link(e.path()) {
                ours.insert(t.to_string_lossy().into_owned());
            }
        }
    }
    inodes.iter().all(|i| ours.contains(i))
}

/// Panics with an explanation unless `tool` is on PATH.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{}` is not on PATH: install Redis 7.0's tools (e.g. `apt-get install redis-server redis-tools`); this test needs them and does not skip", tool)
}

/// Runs `cmd` with `stdin` fed to it, killing it (by its PID) if it runs longer than `limit`.
pub fn run_with_timeout(cmd: &mut Command, stdin: Option<Vec<u8>>, limit: Duration) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe (kill the tool if this test thread dies).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {:?}: {}", cmd, e));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap();
            panic!("{:?} ran longer than {:?}; output so far:\n{}", cmd, limit, String::from_utf8_lossy(&stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

// ---------------------------------------------------------------------------
// RESP

/// One decoded RESP2/RESP3 reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Nil,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Push(Vec<Resp>),
    Double(String),
    Bool(bool),
    BigNumber(String),
    Verbatim(String, Vec<u8>),
    BlobError(Vec<u8>),
    /// An attribute (`|`) and the reply it annotates.
    Attributed(Vec<(Resp, Resp)>, Box<Resp>),
}

impl Resp {
    pub fn bulk(s: impl AsRef<[u8]>) -> Resp {
        Resp::Bulk(s.as_ref().to_vec())
    }
    pub fn ok() -> Resp {
        Resp::Simple("OK".into())
    }
    pub fn int(&self) -> i64 {
        match self {
            Resp::Int(n) => *n,
            other => panic!("expected an integer reply, got {:?}", other),
        }
    }
    /// A bulk string's bytes, `None` for nil.
    pub fn opt_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Resp::Bulk(b) => Some(b.clone()),
            Resp::Nil => None,
            other => panic!("expected a bulk string or nil, got {:?}", other),
        }
    }
    pub fn array(&self) -> &[Resp] {
        match self {
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => v,
            other => panic!("expected an array reply, got {:?}", other),
        }
    }
}

/// Why a byte string is not (yet) one RESP reply.
#[derive(Debug, PartialEq)]
pub enum FrameError {
    Incomplete,
    Invalid(String),
}

/// Length of the complete reply at the start of `buf`: `Err(Incomplete)` when more bytes
/// are needed, `Err(Invalid)` when the bytes cannot be RESP. This is the incremental
/// reader: callers append what they receive and ask again.
pub fn frame_len(buf: &[u8]) -> Result<usize, FrameError> {
    frame_end(buf, 0, 0)
}

fn line_at(buf: &[u8], pos: usize) -> Result<(&[u8], usize), FrameError> {
    match memchr_crlf(&buf[pos..]) {
        Some(i) => Ok((&buf[pos..pos + i], pos + i + 2)),
        None => Err(FrameError::Incomplete),
    }
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn parse_len(line: &[u8], what: u8) -> Result<i64, FrameError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| FrameError::Invalid(format!("bad length {:?} after '{}'", escape(line, 40), what as char)))
}

fn frame_end(buf: &[u8], pos: usize, depth: usize) -> Result<usize, FrameError> {
    if depth > 64 {
        return Err(FrameError::Invalid("nesting deeper than 64".into()));
    }
    if pos >= buf.len() {
        return Err(FrameError::Incomplete);
    }
    let t = buf[pos];
    let (line, next) = line_at(buf, pos + 1)?;
    match t {
        b'+' | b'-' | b',' | b'(' => Ok(next),
        b':' => parse_len(line, t).map(|_| next),
        b'_' if line.is_empty() => Ok(next),
        b'#' if line == b"t" || line == b"f" => Ok(next),
        b'$' | b'!' | b'=' => {
            let n = parse_len(line, t)?;
            if n == -1 && t == b'$' {
                return Ok(next);
            }
            if n < 0 {
                return Err(FrameError::Invalid(format!("negative length {} after '{}'", n, t as char)));
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Err(FrameError::Incomplete);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(FrameError::Invalid(format!("'{}' payload of {} bytes not followed by CRLF", t as char, n)));
            }
            Ok(end + 2)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_len(line, t)?;
            if n == -1 && t == b'*' {
                return Ok(next);
            }
            if n < 0 {
                return Err(FrameError::Invalid(format!("negative count {} after '{}'", n, t as char)));
            }
            let items = if t == b'%' || t == b'|' { 2 * n } else { n };
            let mut p = next;
            for _ in 0..items {
                p = frame_end(buf, p, depth + 1)?;
            }
            if t == b'|' {
                // An attribute annotates the reply that follows it.
                p = frame_end(buf, p, depth + 1)?;
            }
            Ok(p)
        }
        _ => Err(FrameError::Invalid(format!("unknown RESP type byte {:?} in {:?}", t as char, escape(&buf[pos..], 60)))),
    }
}

/// Decodes one complete reply (as delimited by `frame_len`).
pub fn decode(buf: &[u8]) -> Resp {
    let (r, end) = decode_at(buf, 0);
    assert_eq!(end, buf.len(), "trailing bytes after reply");
    r
}

fn decode_at(buf: &[u8], pos: usize) -> (Resp, usize) {
    let t = buf[pos];
    let (line, next) = line_at(buf, pos + 1).expect("decode of an incomplete frame");
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || std::str::from_utf8(line).unwrap().parse::<i64>().unwrap();
    match t {
        b'+' => (Resp::Simple(text()), next),
        b'-' => (Resp::Error(text()), next),
        b':' => (Resp::Int(int()), next),
        b'_' => (Resp::Nil, next),
        b',' => (Resp::Double(text()), next),
        b'(' => (Resp::BigNumber(text()), next),
        b'#' => (Resp::Bool(line == b"t"), next),
        b'$' | b'!' | b'=' => {
            let n = int();
            if n < 0 {
                return (Resp::Nil, next);
            }
            let data = buf[next..next + n as usize].to_vec();
            let end = next + n as usize + 2;
            match t {
                b'$' => (Resp::Bulk(data), end),
                b'!' => (Resp::BlobError(data), end),
                _ => {
                    let fmt = String::from_utf8_lossy(&data[..3.min(data.len())]).into_owned();
                    (Resp::Verbatim(fmt, data[4.min(data.len())..].to_vec()), end)
                }
            }
        }
        b'*' | b'~' | b'>' => {
            let n = int();
            if n < 0 {
                return (Resp::Nil, next);
            }
            let mut v = vec![];
            let mut p = next;
            for _ in 0..n {
                let (r, q) = decode_at(buf, p);
                v.push(r);
                p = q;
            }
            let r = match t {
                b'*' => Resp::Array(v),
                b'~' => Resp::Set(v),
                _ => Resp::Push(v),
            };
            (r, p)
        }
        b'%' | b'|' => {
            let n = int();
            let mut v = vec![];
            let mut p = next;
            for _ in 0..n {
                let (k, q) = decode_at(buf, p);
                let (val, q) = decode_at(buf, q);
                v.push((k, val));
                p = q;
            }
            if t == b'%' {
                (Resp::Map(v), p)
            } else {
                let (inner, q) = decode_at(buf, p);
                (Resp::Attributed(v, Box::new(inner)), q)
            }
        }
        _ => panic!("decode: unknown type byte {}", t),
    }
}

/// Shape of a reply, for corpus lines compared by shape only: its type byte and, for
/// aggregates, the element count (RESP3 attributes are skipped).
pub fn shape(frame: &[u8]) -> String {
    let mut pos = 0;
    // Skip leading attributes.
    while frame.get(pos) == Some(&b'|') {
        let Ok(after_attr) = attribute_end(frame, pos) else {
            break;
        };
        pos = after_attr;
    }
    let t = frame[pos] as char;
    match t {
        '*' | '~' | '>' | '%' => {
            let (line, _) = line_at(frame, pos + 1).unwrap();
            format!("{}{}", t, String::from_utf8_lossy(line))
        }
        '$' => {
            let (line, _) = line_at(frame, pos + 1).unwrap();
            if line == b"-1" {
                "$-1".into()
            } else {
                "$".into()
            }
        }
        _ => t.to_string(),
    }
}

fn attribute_end(buf: &[u8], pos: usize) -> Result<usize, FrameError> {
    let (line, next) = line_at(buf, pos + 1)?;
    let n = parse_len(line, b'|')?;
    let mut p = next;
    for _ in 0..2 * n {
        p = frame_end(buf, p, 1)?;
    }
    Ok(p)
}

/// RESP multibulk encoding of a command.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    encode_into(&mut out, args);
    out
}

pub fn encode_into<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Printable form of bytes, as redis-cli prints them: `\r`, `\n`, `\t`, `\"`, `\\`,
/// `\xHH` for other non-printables; cut after `max` bytes.
pub fn escape(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{:02x}", c);
            }
        }
    }
    if b.len() > max {
        let _ = write!(s, "...({} bytes)", b.len());
    }
    s
}

/// How a raw read ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The server closed the connection (EOF, or a reset).
    Closed,
    /// Nothing more arrived within the idle time; the connection is open.
    Idle,
}

/// A RESP connection over a blocking socket with timeouts.
pub struct Conn {
    pub stream: TcpStream,
    /// Received bytes not yet returned as replies.
    pending: Vec<u8>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn { stream, pending: Vec::with_capacity(16 * 1024) }
    }

    /// Received bytes beyond the replies returned so far.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let bytes = encode(args);
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap_or_else(|e| panic!("write to server: {}", e));
    }

    /// Reads exactly one complete reply and returns its raw bytes.
    pub fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match frame_len(&self.pending) {
                Ok(n) => {
                    let rest = self.pending.split_off(n);
                    return Ok(std::mem::replace(&mut self.pending, rest));
                }
                Err(FrameError::Invalid(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                Err(FrameError::Incomplete) => {}
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {} unparsed bytes: {}", self.pending.len(), escape(&self.pending, 200)),
                ));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one reply, panicking on I/O errors or bad RESP.
    pub fn read(&mut self) -> Resp {
        let f = self.read_frame().unwrap_or_else(|e| panic!("reading a reply: {}", e));
        decode(&f)
    }

    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.send(args);
        self.read()
    }

    pub fn cmd_raw<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send(args);
        self.read_frame().unwrap_or_else(|e| panic!("reading a reply: {}", e))
    }

    /// Reads everything until the server closes the connection or nothing arrives for
    /// `idle`. Buffered bytes not yet returned as replies come first.
    pub fn read_until_close(&mut self, idle: Duration) -> (Vec<u8>, End) {
        read_until_close(&mut self.stream, std::mem::take(&mut self.pending), idle)
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Sends `chunks` on a fresh connection (pausing between them, so the server sees each in
/// its own read), then returns what the server sent back until it closed the connection or
/// stayed quiet for `idle`. Write errors (the server closed first) are not failures.
pub fn feed(server: &Server, chunks: &[Vec<u8>], idle: Duration) -> (Vec<u8>, End) {
    let mut stream = server.stream();
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
        if stream.write_all(c).is_err() {
            break;
        }
    }
    read_until_close(&mut stream, Vec::new(), idle)
}

/// See `Conn::read_until_close`.
pub fn read_until_close(stream: &mut TcpStream, mut got: Vec<u8>, idle: Duration) -> (Vec<u8>, End) {
    stream.set_read_timeout(Some(idle)).unwrap();
    let mut chunk = [0u8; 64 * 1024];
    let end = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break End::Closed,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break End::Idle,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted) => continue,
            Err(_) => break End::Closed,
        }
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    (got, end)
}

// ---------------------------------------------------------------------------
// Corpus lines

/// Splits a line into arguments as redis-cli and redis.conf do (Redis's `sdssplitargs`):
/// `"..."` with `\n \r \t \b \a \\ \" \xHH` escapes, `'...'` with `\'`. `None` for
/// unbalanced quotes or a closing quote not followed by a space.
pub fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let b = line.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let mut cur = vec![];
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= b.len() {
                    return None;
                }
                if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' && b[i + 2].is_ascii_hexdigit() && b[i + 3].is_ascii_hexdigit() {
                    cur.push(u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).unwrap(), 16).unwrap());
                    i += 3;
                } else if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    cur.push(match b[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if b[i] == b'"' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(b[i]);
                }
            } else if insq {
                if i >= b.len() {
                    return None;
                }
                if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if b[i] == b'\'' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(b[i]);
                }
            } else {
                if i >= b.len() {
                    break;
                }
                match b[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

// ---------------------------------------------------------------------------
// Small utilities

/// xorshift64*: a fixed-seed generator so that failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// CRC16/XMODEM, as Redis Cluster's `crc16()` (written independently of ringkv's).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Redis's `keyHashSlot` (`CLUSTER KEYSLOT`).
pub fn key_slot(key: &[u8]) -> u16 {
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return crc16(&key[open + 1..open + 1 + len]) & 16383;
            }
        }
    }
    crc16(key) & 16383
}

/// The shard owning `slot` when ringkv runs `shards` shards: contiguous slot ranges, as
/// its CLUSTER SLOTS reports.
pub fn slot_shard(slot: u16, shards: usize) -> usize {
    slot as usize * shards / 16384
}

pub fn key_shard(key: &[u8], shards: usize) -> usize {
    slot_shard(key_slot(key), shards)
}

/// One key per shard of `shards`, named `prefix:<i>`, in shard order.
pub fn keys_per_shard(prefix: &str, shards: usize) -> Vec<String> {
    let mut by_shard: Vec<Option<String>> = vec![None; shards];
    let mut i = 0;
    while by_shard.iter().any(|k| k.is_none()) {
        let k = format!("{prefix}:{i}");
        by_shard[key_shard(k.as_bytes(), shards)].get_or_insert(k);
        i += 1;
    }
    by_shard.into_iter().flatten().collect()
}

/// A numeric field of INFO clients (`blocked_clients`, ...).
pub fn clients_info_field(c: &mut Conn, name: &str) -> i64 {
    let info = c.cmd(&["INFO", "clients"]).opt_bytes().unwrap();
    let text = String::from_utf8(info).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

/// Waits until exactly `n` clients are blocked.
pub fn wait_blocked(admin: &mut Conn, n: i64) {
    let ok = wait_until(Duration::from_secs(10), || clients_info_field(admin, "blocked_clients") == n);
    assert!(ok, "blocked_clients never reached {n} (now {})", clients_info_field(admin, "blocked_clients"));
}

/// Waits until `f` is true, up to `limit`.
/// The pid of the server's running child (BGSAVE or rewrite), if any.
pub fn child_pid(s: &Server) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", s.pid())).ok()?;
    tasks.flatten().find_map(|t| std::fs::read_to_string(t.path().join("children")).ok()?.split_whitespace().next()?.parse().ok())
}

pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A copy of `from/appendonlydir` in a fresh `<tmp>/<prefix>-<pid>-<tag>`
/// (the directory a server wrote, for another server to load).
pub fn copy_aof_dir(prefix: &str, from: &Path, tag: &str) -> PathBuf {
    let to = std::env::temp_dir().join(format!("{}-{}-{}", prefix, std::process::id(), tag));
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(to.join("appendonlydir")).unwrap();
    for e in std::fs::read_dir(from.join("appendonlydir")).unwrap().flatten() {
        std::fs::copy(e.path(), to.join("appendonlydir").join(e.file_name())).unwrap();
    }
    to
}

/// A raw SYNC client (Redis's `attach_to_replication_stream`): the master's
/// pings turned off, the RDB payload read and skipped; what the connection
/// reads next is the replication stream.
pub fn attach_sync(server: &Server) -> Conn {
    let mut c = server.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "repl-ping-replica-period", "3600"]), Resp::ok());
    c.send_raw(b"SYNC\r\n");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Newlines keep the link alive while the snapshot is written.
    loop {
        c.stream.read_exact(&mut byte).unwrap();
        if byte[0] != b'\n' {
            break;
        }
    }
    assert_eq!(byte[0], b'$', "SYNC answers a bulk payload");
    loop {
        c.stream.read_exact(&mut byte).unwrap();
        if byte[0] == b'\n' {
            break;
        }
        buf.push(byte[0]);
    }
    let len: usize = String::from_utf8_lossy(&buf).trim_end().parse().unwrap();
    let mut payload = vec![0u8; len];
    c.stream.read_exact(&mut payload).unwrap();
    assert!(payload.starts_with(b"REDIS"), "an RDB file");
    c
}

/// Step `i` of client `t` of a mixed cross-shard write load over `keys`:
/// MSETs and DELs over shards, an EXEC over shards, keys that expire at
/// once, INCR, the two-round hops (MSETNX, RENAME, SMOVE, a watched EXEC,
/// COPY, LMOVE, RPOPLPUSH).
pub fn cross_shard_step(c: &mut Conn, rng: &mut Rng, keys: &[String], t: u64, i: u64) -> Resp {
    let mut key = || keys[rng.below(keys.len() as u64) as usize].clone();
    let (a, b, d) = (key(), key(), key());
    let v = (t * 100_000 + i).to_string();
    match i % 9 {
        0 | 1 => c.cmd(&["MSET", &a, &v, &b, &v, &d, &v]),
        2 => c.cmd(&["DEL", &a, &b]),
        3 => {
            c.cmd(&["MULTI"]);
            c.cmd(&["SET", &a, &v]);
            c.cmd(&["INCR", &b]);
            c.cmd(&["UNLINK", &d]);
            c.cmd(&["EXEC"])
        }
        4 => c.cmd(&["SET", &a, &v, "PX", "1"]),
        5 => c.cmd(&["INCR", &a]),
        // Two-round hops (over two shards, chained): MSETNX, RENAME,
        // RENAMENX or SMOVE, and a watched EXEC (which
        // aborts when another thread wrote a watched key).
        6 if i.is_multiple_of(4) => c.cmd(&["MSETNX", &a, &v, &b, &v]),
        6 if i % 4 == 1 => c.cmd(&["RENAME", &a, &b]),
        6 if i % 4 == 2 => c.cmd(&["RENAMENX", &a, &b]),
        6 => {
            c.cmd(&["DEL", &a]);
            c.cmd(&["SADD", &a, &v, "m"]);
            c.cmd(&["SMOVE", &a, &b, "m"])
        }
        7 => {
            c.cmd(&["WATCH", &a, &b]);
            c.cmd(&["GET", &a]);
            c.cmd(&["MULTI"]);
            c.cmd(&["SET", &a, &v]);
            c.cmd(&["INCR", &d]);
            c.cmd(&["EXEC"])
        }
        // COPY, LMOVE and RPOPLPUSH (chained two-round hops between two
        // shards; their errors when a key holds another type).
        8 if i % 4 == 1 => c.cmd(&["COPY", &a, &b, "REPLACE"]),
        8 if i % 4 == 2 => {
            c.cmd(&["DEL", &a]);
            c.cmd(&["RPUSH", &a, &v, "x"]);
            c.cmd(&["LMOVE", &a, &b, "LEFT", "RIGHT"])
        }
        8 if i % 4 == 3 => {
            c.cmd(&["RPUSH", &a, &v]);
            c.cmd(&["RPOPLPUSH", &a, &b])
        }
        _ => c.cmd(&["MSET", &a, &v, &b, &v]),
    }
}
