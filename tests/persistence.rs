//! BGSAVE/SAVE/loading against the real thing: round trips, redis-server and
//! redis-check-rdb on our files, our loader on redis-server's files, faults
//! (killed child, vanished dir, corrupt and truncated dumps), CANCEL, and a
//! point-in-time check under a concurrent multi-shard write load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }
    fn cmd(&mut self, args: &[&[u8]]) -> Resp {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).unwrap();
        self.read()
    }
    fn c(&mut self, line: &str) -> Resp {
        let parts: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        self.cmd(&parts)
    }
    fn read(&mut self) -> Resp {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let (t, rest) = line.split_at(1);
        let rest = rest.trim_end_matches("\r\n");
        match t {
            "+" => Resp::Simple(rest.into()),
            "-" => Resp::Error(rest.into()),
            ":" => Resp::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Resp::Bulk(None);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b).unwrap();
                b.truncate(n as usize);
                Resp::Bulk(Some(b))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Resp::Array(None);
                }
                Resp::Array(Some((0..n).map(|_| self.read()).collect()))
            }
            other => panic!("unexpected reply type {other:?} in {line:?}"),
        }
    }
    fn info_field(&mut self, field: &str) -> String {
        let Resp::Bulk(Some(b)) = self.c("INFO persistence") else { panic!("INFO failed") };
        let text = String::from_utf8(b).unwrap();
        text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field} in INFO")).trim().to_string()
    }
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_ready(port: u16, child: &mut Child) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server exited early: {status}");
        }
        // Serving once PING answers +PONG: while the dump loads, the server
        // (ringkv and Redis alike) may answer -LOADING.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let mut buf = [0u8; 7];
            if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server on port {port} did not start");
}

fn ringkv(dir: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let log = dir.join(format!("ringkv-{port}.log"));
    let mut args: Vec<String> =
        vec!["--port".into(), port.to_string(), "--dir".into(), dir.display().to_string(), "--logfile".into(), log.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkv")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_ready(port, &mut child);
    Server { child, port, log }
}

fn redis(dir: &Path, dbfilename: &str) -> Server {
    let port = free_port();
    let log = dir.join(format!("redis-{port}.log"));
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--dir",
            &dir.display().to_string(),
            "--dbfilename",
            dbfilename,
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            &log.display().to_string(),
        ])
        .spawn()
        .expect("redis-server must be installed (tests/run-all.sh installs it)");
    wait_ready(port, &mut child);
    Server { child, port, log }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringkv-test-{}-{}", name, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wait_bgsave_done(c: &mut Conn) {
    let t = Instant::now();
    while c.info_field("rdb_bgsave_in_progress") == "1" {
        assert!(t.elapsed() < Duration::from_secs(60), "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The dataset of the round-trip tests: binary, empty, integers, long
/// compressible strings, TTLs, several dbs.
fn fill_mixed(c: &mut Conn) -> Vec<(usize, Vec<u8>, Vec<u8>, bool)> {
    let mut keys = vec![];
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let samples: Vec<(Vec<u8>, Vec<u8>, bool)> = vec![
        (b"empty".to_vec(), vec![], false),
        (b"int-small".to_vec(), b"12".to_vec(), false),
        (b"int-neg".to_vec(), b"-70000".to_vec(), false),
        (b"int-big".to_vec(), b"9223372036854775807".to_vec(), true),
        (b"not-int".to_vec(), b"007".to_vec(), false),
        (vec![0, 1, 2, 255], all_bytes.clone(), true),
        (b"long-compressible".to_vec(), b"abcabcabc".repeat(2000), false),
        (b"long-random".to_vec(), (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), true),
    ];
    for db in [0usize, 3] {
        c.c(&format!("SELECT {db}"));
        for (k, v, ttl) in &samples {
            assert_eq!(c.cmd(&[b"SET", k, v]), Resp::Simple("OK".into()));
            if *ttl {
                assert_eq!(c.cmd(&[b"PEXPIRE", k, b"600000"]), Resp::Int(1));
            }
            keys.push((db, k.clone(), v.clone(), *ttl));
        }
        for i in 0..2000 {
            let k = format!("key:{i:06}");
            let v = format!("value-{i}-{}", "x".repeat(i % 64));
            c.cmd(&[b"SET", k.as_bytes(), v.as_bytes()]);
            keys.push((db, k.into_bytes(), v.into_bytes(), false));
        }
    }
    c.c("SELECT 0");
    keys
}

fn check_same(c: &mut Conn, keys: &[(usize, Vec<u8>, Vec<u8>, bool)]) {
    for (db, k, v, ttl) in keys {
        c.c(&format!("SELECT {db}"));
        assert_eq!(c.cmd(&[b"GET", k]), Resp::Bulk(Some(v.clone())), "key {:?} db {db}", String::from_utf8_lossy(k));
        let Resp::Int(pttl) = c.cmd(&[b"PTTL", k]) else { panic!() };
        if *ttl {
            assert!(pttl > 500_000 && pttl <= 600_000, "ttl of {:?}: {pttl}", String::from_utf8_lossy(k));
        } else {
            assert_eq!(pttl, -1);
        }
    }
    c.c("SELECT 0");
}

#[test]
fn bgsave_round_trip_and_redis_compatibility() {
    let dir = tempdir("roundtrip");
    let keys;
    {
        let s = ringkv(&dir, &["--shards", "3", "--save", ""]);
        let mut c = Conn::open(s.port);
        keys = fill_mixed(&mut c);
        assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
        wait_bgsave_done(&mut c);
        assert_eq!(c.info_field("rdb_last_bgsave_status"), "ok");
        assert_eq!(c.info_field("rdb_saves"), "1");
        let log = std::fs::read_to_string(&s.log).unwrap();
        assert!(log.contains("Background saving started by pid"), "{log}");
        assert!(log.contains("DB saved on disk"), "{log}");
        assert!(log.contains("Background saving terminated with success"), "{log}");
    }
    let dump = dir.join("dump.rdb");
    let out = Command::new("redis-check-rdb").arg(&dump).output().expect("redis-check-rdb must be installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("RDB looks OK"), "{text}");
    // ringkv restarted on the file (with another shard count).
    {
        let s = ringkv(&dir, &["--shards", "2", "--save", ""]);
        let mut c = Conn::open(s.port);
        check_same(&mut c, &keys);
        assert_eq!(c.info_field("rdb_last_load_keys_loaded"), keys.len().to_string());
    }
    // redis-server 7.0 on the same file.
    {
        let s = redis(&dir, "dump.rdb");
        let mut c = Conn::open(s.port);
        check_same(&mut c, &keys);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn loads_a_dump_written_by_redis() {
    let dir = tempdir("fromredis");
    let keys;
    {
        let s = redis(&dir, "dump.rdb");
        let mut c = Conn::open(s.port);
        keys = fill_mixed(&mut c);
        assert_eq!(c.c("SAVE"), Resp::Simple("OK".into()));
    }
    let s = ringkv(&dir, &["--shards", "3", "--save", ""]);
    let mut c = Conn::open(s.port);
    check_same(&mut c, &keys);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_corrupt_and_truncated_dumps() {
    let dir = tempdir("corrupt");
    {
        let s = ringkv(&dir, &["--save", ""]);
        let mut c = Conn::open(s.port);
        for i in 0..500 {
            c.c(&format!("SET k{i} {}", "v".repeat(i % 50)));
        }
        assert_eq!(c.c("SAVE"), Resp::Simple("OK".into()));
    }
    let good = std::fs::read(dir.join("dump.rdb")).unwrap();
    for (name, bytes) in [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("corrupt", {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0xff;
            b
        }),
    ] {
        std::fs::write(dir.join("dump.rdb"), &bytes).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ringkv")).args(["--port", &free_port().to_string(), "--dir", &dir.display().to_string()]).output().unwrap();
        assert!(!out.status.success(), "{name}: ringkv started on a bad dump");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("offset"), "{name}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn child_pid(log: &Path) -> i32 {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().rev().find(|l| l.contains("Background saving started by pid")) {
            return line.rsplit(' ').next().unwrap().trim().parse().unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no child pid in log");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn faults_killed_child_cancel_and_missing_dir() {
    let dir = tempdir("faults");
    // rdb-key-save-delay (µs per key, as in Redis's own tests) keeps each save running for
    // about a second, so the child can be killed or cancelled mid-save on any machine.
    let s = ringkv(&dir, &["--shards", "2", "--save", "3600 1", "--enable-debug-command", "yes"]);
    let mut c = Conn::open(s.port);
    c.c("SET before 1");
    assert_eq!(c.c("SAVE"), Resp::Simple("OK".into()));
    let before = std::fs::read(dir.join("dump.rdb")).unwrap();
    assert_eq!(c.c("DEBUG POPULATE 20000 key 100"), Resp::Simple("OK".into()));
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 100"), Resp::Simple("OK".into()));

    // kill -9 the child mid-save.
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    assert_eq!(c.c("BGSAVE"), Resp::Error("ERR Background save already in progress".into()));
    let pid = child_pid(&s.log);
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    wait_bgsave_done(&mut c);
    assert_eq!(c.info_field("rdb_last_bgsave_status"), "err");
    assert_eq!(std::fs::read(dir.join("dump.rdb")).unwrap(), before, "old dump must be intact");
    assert!(!dir.join(format!("temp-{pid}.rdb")).exists(), "temp file must be removed");
    // With a save point set, writes are refused (MISCONF) until a good save; so is PING,
    // as in Redis 7.0 (a health check must see the failed save).
    let Resp::Error(e) = c.c("SET x 1") else { panic!("expected MISCONF") };
    assert!(e.starts_with("MISCONF "), "{e}");
    let Resp::Error(e) = c.c("PING") else { panic!("expected MISCONF for PING") };
    assert!(e.starts_with("MISCONF "), "{e}");
    assert_eq!(c.c("GET before"), Resp::Bulk(Some(b"1".to_vec())));

    // CANCEL: not an error status, temp file removed.
    assert_eq!(c.c("BGSAVE CANCEL"), Resp::Error("ERR Background saving is currently not in progress or scheduled".into()));
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    let pid = child_pid(&s.log);
    assert_eq!(c.c("BGSAVE CANCEL"), Resp::Simple("Background saving cancelled".into()));
    wait_bgsave_done(&mut c);
    assert!(!dir.join(format!("temp-{pid}.rdb")).exists());

    // A good save clears MISCONF.
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 0"), Resp::Simple("OK".into()));
    assert_eq!(c.c("SAVE"), Resp::Simple("OK".into()));
    assert_eq!(c.info_field("rdb_last_bgsave_status"), "ok");
    assert_eq!(c.c("SET x 1"), Resp::Simple("OK".into()));

    // The directory vanishes: the save fails, is logged, and recovers when it is back.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    wait_bgsave_done(&mut c);
    assert_eq!(c.info_field("rdb_last_bgsave_status"), "err");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    wait_bgsave_done(&mut c);
    assert_eq!(c.info_field("rdb_last_bgsave_status"), "ok");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys that land on different shards of 4 (by hash slot), as hashtags.
fn spread_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{tag{i}}}:counter")).collect()
}

#[test]
fn snapshot_is_point_in_time_under_multishard_load() {
    let dir = tempdir("pit");
    let s = ringkv(&dir, &["--shards", "4", "--save", ""]);
    let port = s.port;
    let keys = spread_keys(32);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Writers: MSET every key to the same generation number, over and over.
    let mut writers = vec![];
    for w in 0..2 {
        let keys = keys.clone();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            let mut c = Conn::open(port);
            let mut g = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && g < 200_000 {
                g += 1;
                let v = format!("{w}-{g}");
                let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
                for k in &keys {
                    args.push(k.clone().into_bytes());
                    args.push(v.clone().into_bytes());
                }
                let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                assert_eq!(c.cmd(&refs), Resp::Simple("OK".into()));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut c = Conn::open(port);
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    wait_bgsave_done(&mut c);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    drop(c);
    drop(s);
    // Every key in the dump holds the same generation: one instant.
    let r = redis(&dir, "dump.rdb");
    let mut c = Conn::open(r.port);
    let values: Vec<Resp> = keys.iter().map(|k| c.cmd(&[b"GET", k.as_bytes()])).collect();
    assert!(matches!(values[0], Resp::Bulk(Some(_))), "{:?}", values[0]);
    assert!(values.iter().all(|v| *v == values[0]), "torn snapshot: {values:?}");
    drop(r);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_saves_with_save_points_and_flushall_writes_an_empty_dump() {
    let dir = tempdir("shutdown");
    // Default save points: SHUTDOWN saves; the server exits.
    {
        let mut s = ringkv(&dir, &["--shards", "2"]);
        let mut c = Conn::open(s.port);
        c.c("SET survivor yes");
        c.w.write_all(b"*1\r\n$8\r\nSHUTDOWN\r\n").unwrap();
        let t = Instant::now();
        while s.child.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "SHUTDOWN did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(&s.log).unwrap();
        assert!(log.contains("Saving the final RDB snapshot before exiting."), "{log}");
        assert!(log.contains("DB saved on disk"), "{log}");
    }
    {
        let s = ringkv(&dir, &["--shards", "2"]);
        let mut c = Conn::open(s.port);
        assert_eq!(c.c("GET survivor"), Resp::Bulk(Some(b"yes".to_vec())));
        // FLUSHALL with save points configured saves the (empty) dataset at once.
        assert_eq!(c.c("FLUSHALL"), Resp::Simple("OK".into()));
    }
    {
        let s = ringkv(&dir, &["--shards", "2", "--save", ""]);
        let mut c = Conn::open(s.port);
        assert_eq!(c.c("DBSIZE"), Resp::Int(0));
        c.c("SET k v");
        // SHUTDOWN NOSAVE leaves the dump as it was.
        c.w.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = ringkv(&dir, &["--save", ""]);
    let mut c = Conn::open(s.port);
    assert_eq!(c.c("DBSIZE"), Resp::Int(0));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn proc_status_field(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status")).trim().to_string()
}

/// `disable-thp` (ringkv's default `no`: the keyspace in huge pages keeps
/// fork short, the BGSAVE child without them) and `bgsave_cpulist` (where the
/// child runs), both acted on.
#[test]
fn huge_pages_and_child_cpu_affinity() {
    let dir = tempdir("thp-affinity");
    let s = ringkv(&dir, &["--shards", "2", "--save", "", "--enable-debug-command", "yes", "--bgsave_cpulist", "0"]);
    let mut c = Conn::open(s.port);
    assert_eq!(c.c("CONFIG GET disable-thp"), Resp::Array(Some(vec![Resp::Bulk(Some(b"disable-thp".to_vec())), Resp::Bulk(Some(b"no".to_vec()))])));
    assert_eq!(proc_status_field(s.child.id(), "THP_enabled"), "1");
    assert_eq!(c.c("DEBUG POPULATE 200000 key 100"), Resp::Simple("OK".into()));
    let thp_mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if !thp_mode.contains("[never]") {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", s.child.id())).unwrap();
        let huge_kib: u64 = rollup.lines().find_map(|l| l.strip_prefix("AnonHugePages:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap();
        assert!(huge_kib >= 2048, "keyspace not in huge pages (THP {thp_mode}): {rollup}");
    }
    // The child runs where bgsave_cpulist says, whatever the server's affinity.
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 100"), Resp::Simple("OK".into()));
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    let pid = child_pid(&s.log) as u32;
    let t = Instant::now();
    // The child sets its affinity first thing; allow it a moment to get there.
    while proc_status_field(pid, "Cpus_allowed_list") != "0" && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(proc_status_field(pid, "Cpus_allowed_list"), "0");
    // The child itself faults in no huge pages (its buffers would each take
    // 2 MiB of copy-on-write); it set this before its affinity.
    assert_eq!(proc_status_field(pid, "THP_enabled"), "0");
    assert_eq!(c.c("BGSAVE CANCEL"), Resp::Simple("Background saving cancelled".into()));
    wait_bgsave_done(&mut c);
    drop(s);

    // disable-thp yes: no huge pages for this process, as redis-server by default.
    let s = ringkv(&dir, &["--save", "", "--disable-thp", "yes"]);
    let mut c = Conn::open(s.port);
    assert_eq!(proc_status_field(s.child.id(), "THP_enabled"), "0");
    assert_eq!(c.c("CONFIG GET disable-thp"), Resp::Array(Some(vec![Resp::Bulk(Some(b"disable-thp".to_vec())), Resp::Bulk(Some(b"yes".to_vec()))])));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// ringkv or redis-server (`kind`) on `port` in `dir`, logging to its own file.
fn start_on(kind: &str, dir: &Path, port: u16, extra: &[&str]) -> Server {
    let log = dir.join(format!("{kind}-{port}.log"));
    let mut args: Vec<String> =
        vec!["--port".into(), port.to_string(), "--dir".into(), dir.display().to_string(), "--logfile".into(), log.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let bin = if kind == "ringkv" { env!("CARGO_BIN_EXE_ringkv") } else { "redis-server" };
    let mut child = Command::new(bin).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_ready(port, &mut child);
    Server { child, port, log }
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success(), "kill {sig} {pid}");
}

/// Waits (bounded) for the server to exit; its exit code.
fn wait_exit(s: &mut Server, limit: Duration) -> Option<i32> {
    let t = Instant::now();
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(t.elapsed() < limit, "server did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_log(log: &Path, text: &str) {
    let t = Instant::now();
    while !std::fs::read_to_string(log).unwrap_or_default().contains(text) {
        assert!(t.elapsed() < Duration::from_secs(20), "no {text:?} in the log");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts the lines appear in the log in this order.
fn assert_log_order(log: &str, lines: &[&str]) {
    let mut at = 0;
    for l in lines {
        match log[at..].find(l) {
            Some(i) => at += i + l.len(),
            None => panic!("{l:?} missing or out of order in:\n{log}"),
        }
    }
}

/// SIGTERM with save points saves the final snapshot (the write after the
/// last SAVE survives), with Redis's log lines; `shutdown-on-sigterm nosave`
/// does not save. Same for ringkv and redis-server.
#[test]
fn sigterm_shuts_down_as_redis_with_the_configured_flags() {
    for kind in ["ringkv", "redis"] {
        let dir = tempdir(&format!("sigterm-{kind}"));
        for (flags, expect) in [("default", "2"), ("nosave", "1")] {
            let mut s = start_on(kind, &dir, free_port(), &["--save", "3600 1", "--shutdown-on-sigterm", flags]);
            let mut c = Conn::open(s.port);
            c.c("SET marker 1");
            assert_eq!(c.c("SAVE"), Resp::Simple("OK".into()));
            c.c("SET marker 2");
            signal(s.child.id(), "-TERM");
            assert_eq!(wait_exit(&mut s, Duration::from_secs(20)), Some(0), "{kind} {flags}");
            let log = std::fs::read_to_string(&s.log).unwrap();
            let at = log.find("Received SIGTERM").unwrap_or_else(|| panic!("{kind}: {log}"));
            let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let tail = &log[line_start..];
            assert!(tail.lines().next().unwrap().contains(":signal-handler ("), "{kind}: {tail}");
            if flags == "default" {
                assert_log_order(
                    tail,
                    &[
                        "Received SIGTERM scheduling shutdown...",
                        "# User requested shutdown...",
                        "* Saving the final RDB snapshot before exiting.",
                        "* DB saved on disk",
                        "# Redis is now ready to exit, bye bye...",
                    ],
                );
            } else {
                assert_log_order(tail, &["# User requested shutdown...", "# Redis is now ready to exit, bye bye..."]);
                assert!(!tail.contains("Saving the final"), "{kind}: {tail}");
            }
            drop(s);
            let s = start_on(kind, &dir, free_port(), &["--save", ""]);
            assert_eq!(Conn::open(s.port).c("GET marker"), Resp::Bulk(Some(expect.as_bytes().to_vec())), "{kind} {flags}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A BGSAVE still running at SIGTERM is killed (its temp file removed)
/// before the final save, so it cannot rename an older image over it.
#[test]
fn sigterm_kills_a_running_bgsave_before_the_final_save() {
    let dir = tempdir("sigterm-child");
    let mut s = ringkv(&dir, &["--shards", "2", "--save", "3600 1", "--enable-debug-command", "yes"]);
    let mut c = Conn::open(s.port);
    assert_eq!(c.c("DEBUG POPULATE 20000 key 10"), Resp::Simple("OK".into()));
    c.c("SET marker 1");
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 200"), Resp::Simple("OK".into()));
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    let pid = child_pid(&s.log);
    c.c("SET marker 2");
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 0"), Resp::Simple("OK".into()));
    signal(s.child.id(), "-TERM");
    assert_eq!(wait_exit(&mut s, Duration::from_secs(30)), Some(0));
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert_log_order(
        &log,
        &[
            "Received SIGTERM",
            "There is a child saving an .rdb. Killing it!",
            "Saving the final RDB snapshot before exiting.",
            "DB saved on disk",
            "ready to exit",
        ],
    );
    assert!(!dir.join(format!("temp-{pid}.rdb")).exists(), "the child's temp file is left");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the child outlived the shutdown");
    drop(s);
    let s = ringkv(&dir, &["--save", ""]);
    let mut c = Conn::open(s.port);
    assert_eq!(c.c("GET marker"), Resp::Bulk(Some(b"2".to_vec())));
    assert_eq!(c.c("DBSIZE"), Resp::Int(20001));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second SIGINT while the final save runs exits at once (status 1),
/// removing the save's temp file, as Redis ("You insist... exiting now.").
#[test]
fn a_second_sigint_during_the_final_save_exits_at_once() {
    let dir = tempdir("sigint-twice");
    let mut s = ringkv(&dir, &["--shards", "1", "--save", "3600 1", "--enable-debug-command", "yes"]);
    let mut c = Conn::open(s.port);
    assert_eq!(c.c("DEBUG POPULATE 20000 key 10"), Resp::Simple("OK".into()));
    // 20000 keys at 1 ms each: the final save would take 20 s.
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 1000"), Resp::Simple("OK".into()));
    let pid = s.child.id();
    signal(pid, "-INT");
    wait_log(&s.log, "Saving the final RDB snapshot before exiting.");
    std::thread::sleep(Duration::from_millis(200));
    assert!(dir.join(format!("temp-{pid}.rdb")).exists(), "the final save is not writing its temp file");
    let t = Instant::now();
    signal(pid, "-INT");
    assert_eq!(wait_exit(&mut s, Duration::from_secs(5)), Some(1));
    assert!(t.elapsed() < Duration::from_secs(2), "the second SIGINT did not exit at once");
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert_log_order(&log, &["Received SIGINT scheduling shutdown...", "Saving the final RDB snapshot", ":signal-handler (", "You insist... exiting now."]);
    assert!(!log.contains("DB saved on disk"), "{log}");
    assert!(!dir.join(format!("temp-{pid}.rdb")).exists(), "temp file left behind");
    assert!(!dir.join("dump.rdb").exists(), "a partial dump was renamed into place");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills `pid` (ours, an orphaned save child) with SIGKILL when dropped.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0.to_string()]).status();
    }
}

/// The save child closes what it inherits: after kill -9 of the parent in
/// the middle of a long BGSAVE, a new server starts at once on the same
/// port and answers (the orphan no longer holds the listener).
#[test]
fn an_orphaned_save_child_does_not_hold_the_port() {
    let dir = tempdir("orphan");
    let port = free_port();
    let mut s = start_on("ringkv", &dir, port, &["--shards", "2", "--save", "", "--enable-debug-command", "yes"]);
    let mut c = Conn::open(port);
    assert_eq!(c.c("DEBUG POPULATE 20000 key 10"), Resp::Simple("OK".into()));
    assert_eq!(c.c("CONFIG SET rdb-key-save-delay 1000"), Resp::Simple("OK".into()));
    assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()));
    let child = KillOnDrop(child_pid(&s.log));
    // What the child has open, once it runs: none of the parent's sockets,
    // eventfds or pidfds, and one ring (its writer's), not the shards' two.
    let inherited = |fds: &[String]| {
        fds.iter().any(|f| f.starts_with("socket:") || f.contains("eventfd") || f.contains("pidfd"))
            || fds.iter().filter(|f| f.contains("io_uring")).count() > 1
    };
    let t = Instant::now();
    loop {
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", child.0))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        if !inherited(&fds) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "the child keeps what it inherited: {fds:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    signal(s.child.id(), "-9");
    let _ = s.child.wait();
    assert!(Path::new(&format!("/proc/{}", child.0)).exists(), "the child should still be saving");
    let mut s2 = start_on("ringkv", &dir, port, &["--save", ""]);
    // For a few milliseconds after kill -9 the dead server's listener may
    // still take connections (the kernel drops its rings in a worker) and
    // reset them: ask again until the new server answers, bounded.
    let t = Instant::now();
    loop {
        assert!(s2.child.try_wait().unwrap().is_none(), "the new server exited: {}", std::fs::read_to_string(&s2.log).unwrap());
        let pong = TcpStream::connect(("127.0.0.1", port)).ok().and_then(|mut st| {
            st.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            st.write_all(b"PING\r\n").ok()?;
            let mut buf = [0u8; 7];
            st.read_exact(&mut buf).ok()?;
            Some(buf)
        });
        if pong == Some(*b"+PONG\r\n") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no PONG from the new server on port {port}");
    }
    drop(s2);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Mounts a tmpfs of `size` at `at`; false (and a message) where mounting
/// is not permitted.
fn mount_tmpfs(at: &Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &at.display().to_string()]).output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!("skipped: mounting a tmpfs is not permitted here: {}", String::from_utf8_lossy(&o.stderr).trim());
            false
        }
        Err(e) => {
            eprintln!("skipped: no mount(8): {e}");
            false
        }
    }
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("temp-")).collect()
}

/// A full disk fails every save (never hangs): status err, temp file
/// removed, writes refused with MISCONF, the OS error in the log. Checked
/// against redis-server on the same kind of disk.
#[test]
fn a_full_disk_fails_each_bgsave_and_never_hangs() {
    let base = tempdir("fulldisk");
    for kind in ["redis", "ringkv"] {
        let dir = base.join(kind);
        if !mount_tmpfs(&dir, "4m") {
            return;
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
        let _unmount = Unmount(dir.clone());
        let log_dir = base.join(format!("{kind}-log"));
        std::fs::create_dir_all(&log_dir).unwrap();
        let port = free_port();
        let log = log_dir.join("server.log");
        let bin = if kind == "ringkv" { env!("CARGO_BIN_EXE_ringkv") } else { "redis-server" };
        let mut args = vec!["--port".to_string(), port.to_string(), "--dir".into(), dir.display().to_string(), "--logfile".into(), log.display().to_string()];
        args.extend(["--save", "3600 1", "--enable-debug-command", "yes", "--rdbcompression", "no"].map(String::from));
        let mut child = Command::new(bin).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_ready(port, &mut child);
        let s = Server { child, port, log };
        let mut c = Conn::open(port);
        assert_eq!(c.c("DEBUG POPULATE 300000"), Resp::Simple("OK".into()));
        let rounds = if kind == "ringkv" { 8 } else { 1 };
        for round in 0..rounds {
            assert_eq!(c.c("BGSAVE"), Resp::Simple("Background saving started".into()), "{kind} round {round}");
            wait_bgsave_done(&mut c);
            assert_eq!(c.info_field("rdb_last_bgsave_status"), "err", "{kind} round {round}");
            assert_eq!(temp_files(&dir), Vec::<String>::new(), "{kind} round {round}: temp file left");
            let Resp::Error(e) = c.c("SET x 1") else { panic!("{kind}: a write was accepted after a failed save") };
            assert!(e.starts_with("MISCONF "), "{e}");
        }
        let text = std::fs::read_to_string(&s.log).unwrap();
        let failures = text.lines().filter(|l| l.contains("Write error saving DB on disk(") && l.ends_with("): No space left on device")).count();
        assert_eq!(failures, rounds, "{kind}: {text}");
        assert!(text.contains("Background saving error"), "{kind}: {text}");
        assert!(!text.contains("short write"), "{kind}: {text}");
        drop(c);
        drop(s);
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// The same corrupt files refused by ringkv and redis-server with the same
/// log lines (Redis's "Internal error in RDB reading offset ..." and
/// checksum lines, expected = computed, got = stored).
#[test]
fn corrupt_dumps_are_refused_in_redis_words() {
    let dir = tempdir("corrupt-words");
    {
        let s = redis(&dir, "dump.rdb");
        let mut c = Conn::open(s.port);
        c.c("SET a 1");
        c.cmd(&[b"SET", &[b'b'; 52], &[b'x'; 300]]);
        assert_eq!(c.c("SAVE"), Resp::Simple("OK".into()));
    }
    let good = std::fs::read(dir.join("dump.rdb")).unwrap();
    let lzf = good.iter().position(|&b| b == 0xc3).expect("an LZF string");
    let no_crc = |mut b: Vec<u8>| {
        let n = b.len();
        b[n - 8..].fill(0);
        b
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 20].to_vec(), "function at rdb.c:N -> Unexpected EOF reading RDB file"),
        (
            "crc",
            {
                let mut b = good.clone();
                let n = b.len();
                b[n - 3] ^= 0xff;
                b
            },
            "function at rdb.c:N -> RDB CRC error",
        ),
        (
            "encoding",
            no_crc({
                let mut b = good.clone();
                b[lzf] = 0xc5;
                b
            }),
            "function at rdb.c:N -> Unknown RDB string encoding type 5",
        ),
        (
            "lzf",
            no_crc({
                let mut b = good.clone();
                b[lzf + 2] += 1;
                b
            }),
            "function at rdb.c:N -> Invalid LZF compressed string",
        ),
        (
            "signature",
            {
                let mut b = good.clone();
                b[0] = b'X';
                b
            },
            "Wrong signature trying to load DB from file",
        ),
    ];
    for (name, bytes, expect) in cases {
        std::fs::write(dir.join("dump.rdb"), &bytes).unwrap();
        let mut lines = vec![];
        for bin in [env!("CARGO_BIN_EXE_ringkv"), "redis-server"] {
            let mut cmd = Command::new("timeout");
            cmd.args(["10", bin, "--port", &free_port().to_string(), "--dir", &dir.display().to_string(), "--save", ""]);
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{bin} {name}: must refuse the file");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            // Without the "pid:role date" prefix.
            let ours: Vec<String> = text
                .lines()
                .filter(|l| {
                    l.contains(" # ")
                        && !l.contains("WARNING")
                        && !l.contains("Redis is starting")
                        && !l.contains("Redis version")
                        && !l.contains("Configuration loaded")
                        && !l.contains("Server initialized")
                        && !l.contains("ringkv:")
                })
                .filter_map(|l| l.split_once(" # ").map(|(_, m)| without_line_numbers(m)))
                .collect();
            assert!(ours.iter().any(|l| l.contains(expect)), "{bin} {name}: {text}");
            lines.push(ours);
        }
        assert_eq!(lines[0], lines[1], "{name}: ringkv and redis-server log differently");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rdb.c:3249` -> `rdb.c:N`: the source line redis-server names is its
/// build's (Debian's 7.0.15-1~deb12u7 names 3241 where upstream 7.0.15,
/// which ringkv follows, names 3249); the function and the message are
/// what must match.
fn without_line_numbers(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("rdb.c:") {
        out.push_str(&rest[..at + "rdb.c:".len()]);
        rest = rest[at + "rdb.c:".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('N');
    }
    out.push_str(rest);
    out
}
