//! The AOF of a running server against the real thing: a directory ringkv
//! wrote (several shards, multi-shard commands, rewritten expiries) passes
//! redis-check-aof and loads in redis-server 7.0 and in ringkv with the same
//! data; a directory redis-server wrote loads in ringkv.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use common::*;

/// db -> key -> (value, has a TTL)
type Dump = BTreeMap<usize, BTreeMap<Vec<u8>, (Vec<u8>, bool)>>;

fn dump(s: &Server) -> Dump {
    let mut c = s.conn();
    let mut out = Dump::new();
    for db in 0..6 {
        c.cmd(&["SELECT", &db.to_string()]);
        let keys = c.cmd(&["KEYS", "*"]);
        for k in keys.array() {
            let k = k.opt_bytes().unwrap();
            let v = c.cmd(&[&b"GET"[..], &k]).opt_bytes().unwrap();
            let ttl = c.cmd(&[&b"PTTL"[..], &k]).int();
            out.entry(db).or_default().insert(k, (v, ttl > 0));
        }
    }
    out
}

fn writes(s: &Server) {
    let mut c = s.conn();
    for i in 0..50 {
        c.cmd(&["SET", &format!("k{i}"), &i.to_string()]);
    }
    c.cmd(&["SET", "ex", "v", "EX", "1000"]);
    c.cmd(&["SETEX", "sx", "1000", "v"]);
    c.cmd(&["MSET", "m1", "1", "m2", "2", "m3", "3", "m4", "4"]);
    c.cmd(&["DEL", "k1", "k2", "k3", "m1"]);
    c.cmd(&["INCRBYFLOAT", "f", "1.25"]);
    c.cmd(&["INCRBYFLOAT", "f", "1e3"]);
    c.cmd(&["EXPIRE", "k4", "500"]);
    c.cmd(&["PERSIST", "ex"]);
    c.cmd(&["GETDEL", "k5"]);
    c.cmd(&["GETEX", "k6", "PX", "900000"]);
    c.cmd(&["SET", "gone", "1", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(5));
    c.cmd(&["GET", "gone"]);
    c.cmd(&["SELECT", "3"]);
    c.cmd(&["SET", "in3", "x"]);
    c.cmd(&["RENAME", "in3", "in3b"]);
    c.cmd(&["APPEND", "in3b", "yz"]);
    c.cmd(&["SELECT", "0"]);
    c.cmd(&["MOVE", "k7", "4"]);
    c.cmd(&["SWAPDB", "4", "5"]);
    c.cmd(&["SET", "k8", "after"]);
}

#[test]
fn ringkv_directory_passes_check_aof_and_loads_in_redis_and_ringkv() {
    require_tool("redis-check-aof");
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--shards", "3"]);
    writes(&rk);
    let expect = dump(&rk);
    assert!(expect[&0].contains_key(&b"m4"[..]) && expect[&5].contains_key(&b"k7"[..]));
    // The writer runs off the shards: give it the moment it needs.
    std::thread::sleep(Duration::from_millis(500));
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, "rk");
    drop(rk);
    let check = run_with_timeout(Process::new("redis-check-aof").arg(dir.join("appendonlydir/appendonly.aof.manifest")), None, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && text.contains("All AOF files and manifest are valid"), "{text}");
    assert!(text.contains("AUX FIELD aof-base = '1'"), "{text}");
    let dir_arg = dir.to_string_lossy().into_owned();
    let redis = Server::redis(&["--appendonly", "yes", "--dir", &dir_arg]);
    assert_eq!(dump(&redis), expect, "redis-server loading ringkv's directory");
    drop(redis);
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--shards", "2"]);
    assert_eq!(dump(&again), expect, "ringkv loading its own directory");
    let log = again.logs();
    assert!(log.contains("DB loaded from append only file"), "{log}");
    assert!(log.contains("Opening AOF incr file appendonly.aof.1.incr.aof on server start"), "{log}");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_directory_loads_in_ringkv() {
    let redis = Server::redis(&["--appendonly", "yes", "--appendfsync", "always"]);
    writes(&redis);
    let expect = dump(&redis);
    let dir = copy_aof_dir("ringkv-aofsrv", &redis.dir, "redis");
    drop(redis);
    let dir_arg = dir.to_string_lossy().into_owned();
    let rk = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--shards", "3"]);
    assert_eq!(dump(&rk), expect);
    drop(rk);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fresh_start_creates_base_and_incr_as_redis() {
    let rk = Server::ringkv(&["--appendonly", "yes"]);
    let log = rk.logs();
    assert!(log.contains("Creating AOF base file appendonly.aof.1.base.rdb on server start"), "{log}");
    assert!(log.contains("Creating AOF incr file appendonly.aof.1.incr.aof on server start"), "{log}");
    let manifest = std::fs::read_to_string(rk.dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(manifest, "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
}

/// appendfsync always under a write load from several connections (keys
/// over every shard, MSETs across shards), then kill -9: every write
/// acknowledged before the kill is in the AOF ringkv loads back.
#[test]
fn kill_9_with_always_loses_no_acknowledged_write() {
    kill_9_under_load("3", 4, 1);
}

/// The same with one shard and more connections: one fsync covers many
/// connections' writes (group commit), none acknowledged before it.
#[test]
fn kill_9_with_always_one_shard_many_connections() {
    kill_9_under_load("1", 16, 1);
}

/// Pipelined writes (8 a round trip) from many connections, one shard and
/// three: a connection's replies then span several group commits (its
/// output gains replies while earlier ones wait for their fsync), and
/// none may leave before the fsync of its own write.
#[test]
fn kill_9_with_always_pipelined_writes() {
    kill_9_under_load("1", 12, 8);
    kill_9_under_load("3", 6, 8);
}

/// appendfsync always, a client that streams SETs without pausing its
/// input (its replies read by another thread): replies go out as each
/// commit ends, while the stream goes on. They were held until the input
/// paused: each loop turn's new output moved the whole buffer's gate to
/// the newest hand-over, which the commit in flight never covers. The
/// stream goes on until 1000 replies came back (8 s at most, so a slow
/// build still gets its first commits done while it runs). One shard,
/// whose backlog is then drained to the last reply; three, where most
/// SETs are forwarded.
#[test]
fn always_replies_flow_while_a_client_streams_writes() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    const WANTED: u64 = 1000;
    for shards in ["1", "3"] {
        let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--shards", shards]);
        let mut writer = rk.stream();
        let mut reader = writer.try_clone().unwrap();
        let streaming = Arc::new(AtomicBool::new(true));
        let got = Arc::new(AtomicU64::new(0));
        let sent_total = Arc::new(AtomicU64::new(u64::MAX));
        let (flag, seen, sent_at_end) = (streaming.clone(), got.clone(), sent_total.clone());
        let mut chunk = Vec::new();
        for i in 0..100 {
            encode_into(&mut chunk, &["SET", &format!("s:{i}"), "v"]);
        }
        let sender = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut sent = 0u64;
            while seen.load(SeqCst) < WANTED && start.elapsed() < Duration::from_secs(8) {
                std::io::Write::write_all(&mut writer, &chunk).unwrap();
                sent += 100;
            }
            sent_at_end.store(sent, SeqCst);
            flag.store(false, SeqCst);
            sent
        });
        let mut during = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut partial = 0usize;
        loop {
            let n = match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => panic!("{shards} shards: connection closed"),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => 0,
                Err(e) => panic!("{shards} shards: {e}"),
            };
            // Read after the data came: what arrived once the stream had
            // ended does not count as during it.
            let still = streaming.load(SeqCst);
            // Every reply is +OK\r\n: checked byte by byte across reads.
            for &b in &buf[..n] {
                assert_eq!(b, b"+OK\r\n"[partial], "{shards} shards: not +OK");
                partial = (partial + 1) % 5;
                if partial == 0 {
                    got.fetch_add(1, SeqCst);
                    during += still as u64;
                }
            }
            if !still && (shards != "1" || got.load(SeqCst) >= sent_total.load(SeqCst) || n == 0) {
                break;
            }
        }
        let sent = sender.join().unwrap();
        let got = got.load(SeqCst);
        assert!(during >= WANTED, "{shards} shards: {during} replies while the client streamed ({sent} SETs sent, {got} replies in all)");
        if shards == "1" {
            assert_eq!(got, sent, "one shard: every reply once the stream ended");
        }
    }
}

/// `connections` clients each send `depth` MSETs (two keys, on different
/// shards mostly) at a time and count those whose +OK came back, until
/// the server is killed; all of them must be in the AOF loaded back.
fn kill_9_under_load(shards: &str, connections: usize, depth: u64) {
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--shards", shards]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = vec![];
    for t in 0..connections {
        let mut c = rk.conn();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut acked = vec![];
            let mut i = 0u64;
            'run: while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch = Vec::new();
                for j in i..i + depth {
                    let (a, b) = (format!("t{t}:{j}"), format!("u{t}:{j}"));
                    encode_into(&mut batch, &["MSET", &a, &j.to_string(), &b, &j.to_string()]);
                }
                // The server may be gone (killed): then this client stops.
                if std::io::Write::write_all(&mut c.stream, &batch).is_err() {
                    break;
                }
                for j in i..i + depth {
                    match c.read_frame() {
                        Ok(f) if f == b"+OK\r\n" => acked.push(j),
                        _ => break 'run,
                    }
                }
                i += depth;
            }
            (t, acked)
        }));
    }
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill(2) on the PID of the child this test started.
    unsafe { libc::kill(rk.pid() as i32, libc::SIGKILL) };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results: Vec<(usize, Vec<u64>)> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, &format!("kill9-{shards}-{depth}"));
    drop(rk);
    let dir_arg = dir.to_string_lossy().into_owned();
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--shards", "2"]);
    let mut c = again.conn();
    let mut total = 0;
    for (t, acked) in &results {
        total += acked.len();
        for i in acked {
            for k in [format!("t{t}:{i}"), format!("u{t}:{i}")] {
                assert_eq!(c.cmd(&["GET", &k]).opt_bytes(), Some(i.to_string().into_bytes()), "acknowledged {k} lost");
            }
        }
    }
    assert!(total > 20, "too few writes acknowledged ({total}) for the test to mean anything");
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SHUTDOWN with appendfsync everysec writes and fsyncs what the writer
/// had not yet: every write before it is loaded back.
#[test]
fn shutdown_flushes_the_aof() {
    shutdown_flushes("2", "everysec");
}

/// The same with one shard, whose loop is the AOF writer (it writes and
/// fsyncs what is left itself, blocking), under both policies.
#[test]
fn shutdown_flushes_the_aof_one_shard() {
    shutdown_flushes("1", "everysec");
    shutdown_flushes("1", "always");
}

fn shutdown_flushes(shards: &str, policy: &str) {
    let mut rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", policy, "--shards", shards]);
    let mut c = rk.conn();
    for i in 0..200 {
        c.send(&["SET", &format!("s{i}"), &i.to_string()]);
    }
    for _ in 0..200 {
        c.read_frame().unwrap();
    }
    c.send(&["SHUTDOWN"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while rk.alive() {
        assert!(std::time::Instant::now() < deadline, "SHUTDOWN did not end the server");
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = rk.logs();
    assert!(log.contains("Calling fsync() on the AOF file."), "{log}");
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, &format!("shutdown-{shards}-{policy}"));
    drop(rk);
    let dir_arg = dir.to_string_lossy().into_owned();
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg]);
    assert_eq!(again.conn().cmd(&["DBSIZE"]).int(), 200);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// INFO persistence's aof_* fields: the same names in the same order as
/// redis-server 7.0 with the AOF on, the same values but for the sizes,
/// and aof_current_size the size of the incr file after a fresh start.
#[test]
fn info_persistence_aof_fields() {
    let (rk, redis) = Server::pair(&["--appendonly", "yes", "--appendfsync", "always"], &["--shards", "2"]);
    let fields = |s: &Server| -> Vec<(String, String)> {
        let mut c = s.conn();
        c.cmd(&["SET", "a", "1"]);
        c.cmd(&["SET", "b", "2"]);
        std::thread::sleep(Duration::from_millis(200));
        let info = String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
        let start = info.find("aof_enabled").unwrap();
        info[start..].lines().filter(|l| !l.is_empty()).map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.to_string())).unwrap()).collect()
    };
    let (ours, theirs) = (fields(&rk), fields(&redis));
    let names = |f: &[(String, String)]| f.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs));
    for ((k, a), (_, b)) in ours.iter().zip(&theirs) {
        if k != "aof_current_size" {
            assert_eq!(a, b, "{k}");
        }
    }
    let incr = std::fs::metadata(rk.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap().len();
    assert_eq!(ours.iter().find(|(k, _)| k == "aof_current_size").unwrap().1, incr.to_string());
}

/// A pre-7.0 single appendonly.aof in `dir` is moved into the AOF
/// directory as its base and loaded, as Redis 7.0 upgrades it (the
/// manifest is the one redis-server 7.0.15 writes for the same case).
#[test]
fn pre_7_0_appendonly_aof_is_upgraded_and_loaded() {
    let dir = std::env::temp_dir().join(format!("ringkv-aofsrv-{}-old", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut old = Vec::new();
    for c in [&["SELECT", "0"][..], &["SET", "a", "1"], &["SET", "b", "2"]] {
        old.extend_from_slice(&encode(c));
    }
    std::fs::write(dir.join("appendonly.aof"), &old).unwrap();
    let dir_arg = dir.to_string_lossy().into_owned();
    let rk = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg]);
    let mut c = rk.conn();
    assert_eq!(c.cmd(&["GET", "a"]).opt_bytes(), Some(b"1".to_vec()));
    assert_eq!(c.cmd(&["GET", "b"]).opt_bytes(), Some(b"2".to_vec()));
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(manifest, "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    assert!(!dir.join("appendonly.aof").exists());
    drop(rk);
    let _ = std::fs::remove_dir_all(&dir);
}

fn info_field(c: &mut Conn, field: &str) -> String {
    let info = String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
    let prefix = format!("{field}:");
    info.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {field} in INFO")).to_string()
}

/// Mounts a tmpfs of `size` at `at`; false (and a message) where mounting
/// is not permitted. Unmounted when the guard drops.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = Process::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &at.display().to_string()]).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                eprintln!("skipped: mounting a tmpfs is not permitted here: {}", String::from_utf8_lossy(&o.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("skipped: no mount(8): {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A disk that fills up under `appendfsync everysec`: the append fails,
/// the short write is cut off the incr file, aof_last_write_status turns
/// err, writes (and PING) are refused with Redis's `-MISCONF Errors writing
/// to the AOF file: No space left on device`, the error is logged; once
/// space returns the write is retried, the status is ok again, "AOF write
/// error looks solved" is logged, and the directory loads with every key.
/// The same steps against redis-server on the same kind of disk.
#[test]
fn a_full_disk_refuses_writes_and_recovers_when_space_returns() {
    let base = std::env::temp_dir().join(format!("ringkv-aofsrv-{}-enospc", std::process::id()));
    for kind in ["redis", "ringkv"] {
        let dir = base.join(kind);
        let Some(_mount) = Tmpfs::mount(&dir, "4m") else { return };
        // Room the test gives back later.
        std::fs::write(dir.join("filler"), vec![7u8; 1 << 20]).unwrap();
        let d = dir.display().to_string();
        let args = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", &d];
        let s = if kind == "redis" { Server::redis(&args) } else { Server::ringkv(&args) };
        let mut c = s.conn();
        let value = "v".repeat(100_000);
        let mut written = 0;
        let refused = loop {
            assert!(written < 100, "{kind}: the disk never filled up");
            match c.cmd(&["SET", &format!("big{written}"), &value]) {
                Resp::Simple(ok) if ok == "OK" => written += 1,
                Resp::Error(e) => break e,
                other => panic!("{kind}: {other:?}"),
            }
            // The write fails off the command path: give it its moment.
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(refused, "MISCONF Errors writing to the AOF file: No space left on device", "{kind}");
        assert_eq!(c.cmd(&["PING"]), Resp::Error("MISCONF Errors writing to the AOF file: No space left on device".into()), "{kind}");
        assert_eq!(c.cmd(&["GET", "big0"]).opt_bytes().map(|v| v.len()), Some(value.len()), "{kind}: reads still served");
        assert_eq!(info_field(&mut c, "aof_last_write_status"), "err", "{kind}");
        let log = s.logs();
        assert!(
            log.contains("Error writing to the AOF file: No space left on device") || log.contains("Short write while writing to the AOF file: (nwritten="),
            "{kind}: {log}"
        );
        std::fs::remove_file(dir.join("filler")).unwrap();
        wait_for("aof_last_write_status:ok", || info_field(&mut c, "aof_last_write_status") == "ok");
        assert_eq!(c.cmd(&["SET", "after", "1"]), Resp::Simple("OK".into()), "{kind}");
        assert!(s.logs().contains("AOF write error looks solved, Redis can write again."), "{kind}");
        c.send(&["SHUTDOWN"]);
        let mut s = s;
        wait_for("the server to shut down", || !s.alive());
        drop(c);
        drop(s);
        let again = if kind == "redis" { Server::redis(&args) } else { Server::ringkv(&args) };
        let mut c = again.conn();
        assert_eq!(c.cmd(&["DBSIZE"]).int(), written + 1, "{kind}: {}", again.logs());
        drop(c);
        drop(again);
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// `appendonly yes` on a disk with no room for the first base file: both
/// servers refuse to start with Redis's `rewriteAppendOnlyFile` line, for the
/// RDB-preamble base (default) as for an empty command base.
#[test]
fn a_full_disk_at_start_refuses_with_redis_line() {
    let base = std::env::temp_dir().join(format!("ringkv-aofsrv-{}-enospc-start", std::process::id()));
    let ringkv = std::env::var_os("RINGKV_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ringkv").into());
    let Some(_mount) = Tmpfs::mount(&base, "1m") else { return };
    // Every byte taken (a tmpfs counts in pages: fill until it refuses).
    {
        use std::io::Write;
        let mut f = std::fs::File::create(base.join("filler")).unwrap();
        while f.write_all(&[7u8; 4096]).is_ok() {}
    }
    for (who, bin) in [("redis-server", "redis-server".as_ref()), ("ringkv", ringkv.as_os_str())] {
        let dir = base.join(who);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Process::new(bin)
            .args(["--port", &free_port().to_string(), "--appendonly", "yes", "--save", "", "--dir", &dir.display().to_string()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{who} started on a full disk");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("# Write error writing append only file on disk: No space left on device\n"), "{who}:\n{text}");
    }
}

/// `appendfsync always` on a disk that fills up: Redis exits there (its
/// replies are already in the output buffers); ringkv has not sent them,
/// so it keeps them until the write is retried and fsynced once space
/// returns, and refuses new writes with MISCONF meanwhile.
#[test]
fn always_holds_the_reply_of_a_write_the_full_disk_refused() {
    if std::env::var("RINGKV_TEST_TARGET").is_ok_and(|t| t == "redis") {
        eprintln!("skipped: redis-server exits on this error under always");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringkv-aofsrv-{}-enospc-always", std::process::id()));
    let Some(_mount) = Tmpfs::mount(&dir, "4m") else { return };
    std::fs::write(dir.join("filler"), vec![7u8; 1 << 20]).unwrap();
    let d = dir.display().to_string();
    let args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", &d];
    let s = Server::ringkv(&args);
    let mut c = s.conn();
    let mut other = s.conn();
    let value = "v".repeat(100_000);
    let mut acked = 0;
    let stuck = loop {
        assert!(acked < 100, "the disk never filled up");
        c.send(&["SET", &format!("big{acked}"), &value]);
        std::thread::sleep(Duration::from_millis(200));
        if info_field(&mut other, "aof_last_write_status") == "err" {
            break acked;
        }
        assert_eq!(c.read(), Resp::Simple("OK".into()));
        acked += 1;
    };
    assert_eq!(other.cmd(&["SET", "x", "1"]), Resp::Error("MISCONF Errors writing to the AOF file: No space left on device".into()));
    std::fs::remove_file(dir.join("filler")).unwrap();
    // The held reply comes once the write is durable.
    assert_eq!(c.read(), Resp::Simple("OK".into()));
    assert_eq!(info_field(&mut other, "aof_last_write_status"), "ok", "{}", s.logs());
    assert_eq!(other.cmd(&["SET", "x", "1"]), Resp::Simple("OK".into()));
    // SAFETY: kill(2) on the PID of the child this test started.
    unsafe { libc::kill(s.pid() as i32, libc::SIGKILL) };
    drop(c);
    drop(other);
    drop(s);
    let again = Server::ringkv(&args);
    assert_eq!(again.conn().cmd(&["DBSIZE"]).int(), stuck as i64 + 2, "{}", again.logs());
}

/// An incr file cut inside its last command: with aof-load-truncated no the
/// server refuses to start with Redis's lines; with yes (the default) it
/// cuts the file at the last whole command, logs it, and loads the rest.
#[test]
fn truncated_tail_refuses_to_start_or_loads_up_to_the_last_command() {
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = rk.conn();
    for i in 0..10 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    drop(c);
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, "trunc-tail");
    drop(rk);
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let bytes = std::fs::read(&incr).unwrap();
    std::fs::write(&incr, &bytes[..bytes.len() - 4]).unwrap();
    let d = dir.display().to_string();
    let log = dir.join("refused.log");
    let out = Process::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["--port", &free_port().to_string(), "--appendonly", "yes", "--aof-load-truncated", "no", "--dir", &d, "--logfile", &log.display().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap_or_default() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Unexpected end of file reading the append only file appendonly.aof.1.incr.aof."), "{text}");
    assert!(text.contains("You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>."), "{text}");
    let again = Server::ringkv(&["--appendonly", "yes", "--aof-load-truncated", "yes", "--dir", &d]);
    let mut c = again.conn();
    assert_eq!(c.cmd(&["DBSIZE"]).int(), 9);
    assert!(again.logs().contains("!!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!"), "{}", again.logs());
    drop(c);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Refusals that name a file or a manifest line, logged as redis-server
/// 7.0 logs them for the same directory: an unknown command names the incr
/// file it is in (after the line of the base file loaded before it), a bad
/// manifest line gets Redis's banner, line and reason.
#[test]
fn refusals_name_the_file_and_the_manifest_line_as_redis() {
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always"]);
    rk.conn().cmd(&["SET", "k", "v"]);
    let unknown = copy_aof_dir("ringkv-aofsrv", &rk.dir, "unknown-cmd");
    let bad_manifest = copy_aof_dir("ringkv-aofsrv", &rk.dir, "bad-manifest");
    drop(rk);
    let append = |path: PathBuf, bytes: &[u8]| {
        let mut all = std::fs::read(&path).unwrap();
        all.extend_from_slice(bytes);
        std::fs::write(path, all).unwrap();
    };
    append(unknown.join("appendonlydir/appendonly.aof.1.incr.aof"), b"*2\r\n$5\r\nFOOBA\r\n$1\r\nx\r\n");
    append(bad_manifest.join("appendonlydir/appendonly.aof.manifest"), b"file foo seq x type q\n");
    let cases: [(&Path, &[&str]); 2] = [
        (
            &unknown,
            &["* DB loaded from base file appendonly.aof.1.base.rdb: ", "# Unknown command 'FOOBA' reading the append only file appendonly.aof.1.incr.aof\n"],
        ),
        (
            &bad_manifest,
            &[
                "*** FATAL AOF MANIFEST FILE ERROR ***\n",
                "# Reading the manifest file, at line 3\n",
                "# >>> 'file foo seq x type q'\n",
                "# Invalid AOF manifest file format\n",
            ],
        ),
    ];
    let ringkv = std::env::var_os("RINGKV_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ringkv").into());
    for (dir, lines) in cases {
        for (who, bin) in [("ringkv", ringkv.as_os_str()), ("redis-server", "redis-server".as_ref())] {
            // A copy per server: a refused start must not change the files.
            let run_dir = copy_aof_dir("ringkv-aofsrv", dir, who);
            let log = run_dir.join("refused.log");
            let out = Process::new(bin)
                .args(["--port", &free_port().to_string(), "--appendonly", "yes", "--save", ""])
                .args(["--dir", &run_dir.display().to_string(), "--logfile", &log.display().to_string()])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{who} started on {}", dir.display());
            let text = std::fs::read_to_string(&log).unwrap_or_default() + &String::from_utf8_lossy(&out.stderr);
            // Each line, in this order.
            let mut from = 0;
            for line in lines {
                let Some(at) = text[from..].find(line) else { panic!("{who} did not log {line:?} (after the previous line):\n{text}") };
                from += at + line.len();
            }
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// aof-timestamp-enabled yes: the incr file holds `#TS:<unix seconds>`
/// annotations (at the start and when the second changed), CONFIG SET
/// turns them off, redis-check-aof accepts the file and it loads back.
#[test]
fn timestamp_annotations_are_written_and_loaded() {
    require_tool("redis-check-aof");
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--aof-timestamp-enabled", "yes", "--shards", "2"]);
    let mut c = rk.conn();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    c.cmd(&["SET", "a", "1"]);
    std::thread::sleep(Duration::from_millis(1100));
    c.cmd(&["SET", "a", "2"]);
    c.cmd(&["SET", "b", "3"]);
    let incr = rk.dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let text = String::from_utf8_lossy(&std::fs::read(&incr).unwrap()).into_owned();
    let stamps: Vec<u64> = text.lines().filter_map(|l| l.strip_prefix("#TS:")).map(|t| t.trim().parse().unwrap()).collect();
    // Two seconds at least (each shard's stream annotates on its own).
    let seconds: std::collections::BTreeSet<u64> = stamps.iter().copied().collect();
    assert!(seconds.len() >= 2 && seconds.iter().all(|&t| t >= before), "{stamps:?} {text:?}");
    assert!(text.starts_with("#TS:"), "{text:?}");
    assert_eq!(c.cmd(&["CONFIG", "SET", "aof-timestamp-enabled", "no"]), Resp::Simple("OK".into()));
    // The shards' cron picks the setting up.
    std::thread::sleep(Duration::from_millis(300));
    let len = std::fs::metadata(&incr).unwrap().len();
    std::thread::sleep(Duration::from_millis(1100));
    c.cmd(&["SET", "c", "4"]);
    let tail = std::fs::read(&incr).unwrap()[len as usize..].to_vec();
    assert!(!tail.windows(4).any(|w| w == b"#TS:"), "{}", String::from_utf8_lossy(&tail));
    let manifest = rk.dir.join("appendonlydir/appendonly.aof.manifest");
    let out = Process::new("redis-check-aof").arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    drop(c);
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, "timestamps");
    drop(rk);
    let d = dir.display().to_string();
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &d]);
    let mut c = again.conn();
    assert_eq!(c.cmd(&["MGET", "a", "b", "c"]), Resp::Array(vec![Resp::bulk("2"), Resp::bulk("3"), Resp::bulk("4")]));
    drop(c);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// aof-timestamp-enabled over three shards, writes to keys of every shard
/// from several connections across a few seconds: every shard's stream
/// annotates each second it writes in, and the merge keeps one annotation
/// per second, as Redis's one `feedAppendOnlyFile` writes it (no `#TS:` of
/// a second not later than the one before it); redis-check-aof accepts the
/// file and redis-server loads it to the same data.
#[test]
fn timestamp_annotations_once_per_second_over_shards() {
    require_tool("redis-check-aof");
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--aof-timestamp-enabled", "yes", "--shards", "3"]);
    let end = std::time::Instant::now() + Duration::from_millis(2600);
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let mut c = rk.conn();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while std::time::Instant::now() < end {
                    // 30 keys: every shard owns some.
                    c.cmd(&["SET", &format!("k{}", (i * 7 + t) % 30), &i.to_string()]);
                    i += 1;
                    if i.is_multiple_of(50) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let expect = dump(&rk);
    assert_eq!(expect[&0].len(), 30);
    let incr = rk.dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let text = String::from_utf8_lossy(&std::fs::read(&incr).unwrap()).into_owned();
    let stamps: Vec<u64> = text.lines().filter_map(|l| l.strip_prefix("#TS:")).map(|t| t.trim().parse().unwrap()).collect();
    assert!(stamps.len() >= 3, "{stamps:?}");
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "a second annotated twice or out of order: {stamps:?}");
    assert!(text.starts_with("#TS:"), "{}", &text[..text.len().min(200)]);
    let manifest = rk.dir.join("appendonlydir/appendonly.aof.manifest");
    let out = Process::new("redis-check-aof").arg(&manifest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, "timestamps3");
    drop(rk);
    let dir_arg = dir.to_string_lossy().into_owned();
    let redis = Server::redis(&["--appendonly", "yes", "--dir", &dir_arg]);
    assert_eq!(dump(&redis), expect, "redis-server loading ringkv's directory");
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under `everysec` (and `no`) a reply leaves only after the AOF's write of
/// what it acknowledges, as Redis writes its AOF buffer before it sends
/// replies: right after each SET's reply the incr file holds the SET
/// (integration/aof's "GETEX should not append to AOF" reads the file size
/// so). One shard (the inline writer) and three (the writer thread).
#[test]
fn a_reply_leaves_after_the_write_of_what_it_acknowledges() {
    for (shards, policy) in [("1", "everysec"), ("3", "everysec"), ("3", "no")] {
        let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", policy, "--shards", shards]);
        let mut c = rk.conn();
        let incr = rk.dir.join("appendonlydir/appendonly.aof.1.incr.aof");
        for i in 0..200 {
            let value = format!("value-{i}-end");
            assert_eq!(c.cmd(&["SET", &format!("key{i}"), &value]), Resp::Simple("OK".into()));
            let bytes = std::fs::read(&incr).unwrap();
            assert!(bytes.windows(value.len()).any(|w| w == value.as_bytes()), "--shards {shards} {policy}: SET {i} acknowledged, not in the file");
        }
        drop(c);
        drop(rk);
    }
}

/// Cross-shard MSETs, DELs and EXECs (hops, each one unit at one cut of
/// the shards' write streams) racing single-key writes, lazily expired
/// keys and each other on a few keys from several connections, AOF on;
/// then kill -9: the directory loads in redis-server and in ringkv (other
/// shard counts) to the digest the server had.
#[test]
fn cross_shard_writes_reload_to_the_same_digest() {
    let rk = Server::ringkv(&["--appendonly", "yes", "--appendfsync", "always", "--shards", "3", "--enable-debug-command", "yes"]);
    let keys: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    let mut threads = vec![];
    for t in 0..4u64 {
        let mut c = rk.conn();
        let keys = keys.clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(t + 1);
            for i in 0..400u64 {
                common::cross_shard_step(&mut c, &mut rng, &keys, t, i);
            }
        }));
    }
    for th in threads {
        th.join().unwrap();
    }
    let mut c = rk.conn();
    std::thread::sleep(Duration::from_millis(20));
    // The keys that expired go now (their DELs propagated), so that the
    // digest is of what a load keeps.
    for k in &keys {
        c.cmd(&["EXISTS", k]);
    }
    let digest = c.cmd(&["DEBUG", "DIGEST"]);
    assert!(c.cmd(&["DBSIZE"]).int() > 0);
    // SAFETY: kill(2) on the PID of the child this test started.
    unsafe { libc::kill(rk.pid() as i32, libc::SIGKILL) };
    let dir = copy_aof_dir("ringkv-aofsrv", &rk.dir, "hops");
    drop(rk);
    let dir_arg = dir.to_string_lossy().into_owned();
    let redis = Server::redis(&["--appendonly", "yes", "--dir", &dir_arg, "--enable-debug-command", "yes"]);
    assert_eq!(redis.conn().cmd(&["DEBUG", "DIGEST"]), digest, "redis-server loading the directory");
    drop(redis);
    for shards in ["1", "3"] {
        let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--shards", shards, "--enable-debug-command", "yes"]);
        assert_eq!(again.conn().cmd(&["DEBUG", "DIGEST"]), digest, "ringkv --shards {shards} loading the directory");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The commands of an incr file, each as its arguments.
fn incr_commands(dir: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = common::frame_len(&bytes[at..]).unwrap_or_else(|e| panic!("incr file at {at}: {e:?}"));
        let args = common::decode(&bytes[at..at + len]);
        out.push(args.array().iter().map(|a| String::from_utf8_lossy(&a.opt_bytes().unwrap()).into_owned()).collect());
        at += len;
    }
    out
}

/// Commands over every shard (FLUSHDB, FLUSHALL, SWAPDB, MSET and DEL
/// over shards, an EXEC over shards, FUNCTION LOAD/DELETE/FLUSH) among
/// single-key writes in several dbs: ringkv's incr file holds the commands
/// redis-server 7.0's does, in the same order, with a SELECT only where the
/// db changes (integration/aof's "FLUSHDB / FLUSHALL should persist in
/// AOF" reads the file so); redis-check-aof accepts it.
#[test]
fn all_shard_commands_go_to_the_incr_file_as_redis_writes_them() {
    require_tool("redis-check-aof");
    let script = |s: &Server| {
        let mut c = s.conn();
        let run = |c: &mut Conn, args: &[&str]| {
            let r = c.cmd(args);
            assert!(!matches!(r, Resp::Error(_)), "{args:?}: {r:?}");
        };
        run(&mut c, &["SELECT", "9"]);
        run(&mut c, &["SET", "key", "value"]);
        run(&mut c, &["FLUSHDB"]);
        run(&mut c, &["SET", "key", "value2"]);
        run(&mut c, &["FLUSHDB"]);
        run(&mut c, &["FLUSHDB"]);
        run(&mut c, &["FLUSHDB", "ASYNC"]);
        run(&mut c, &["SET", "key", "value"]);
        run(&mut c, &["FLUSHALL"]);
        run(&mut c, &["FLUSHALL"]);
        run(&mut c, &["FLUSHALL", "SYNC"]);
        run(&mut c, &["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]);
        run(&mut c, &["DEL", "a", "b", "c", "nokey"]);
        run(&mut c, &["DEL", "nokey1", "nokey2"]);
        run(&mut c, &["SWAPDB", "9", "3"]);
        run(&mut c, &["SWAPDB", "3", "3"]);
        run(&mut c, &["SELECT", "3"]);
        run(&mut c, &["SET", "e", "5"]);
        run(&mut c, &["MULTI"]);
        run(&mut c, &["SET", "a", "x"]);
        run(&mut c, &["SET", "b", "y"]);
        run(&mut c, &["INCR", "c"]);
        run(&mut c, &["EXEC"]);
        run(&mut c, &["SELECT", "9"]);
        run(&mut c, &["FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function(keys, args) return redis.call('set', keys[1], args[1]) end)"]);
        run(&mut c, &["FCALL", "f", "1", "fk", "fv"]);
        run(&mut c, &["FUNCTION", "DELETE", "lib"]);
        run(&mut c, &["FUNCTION", "FLUSH"]);
        run(&mut c, &["SET", "key", "last"]);
        run(&mut c, &["FLUSHALL"]);
        run(&mut c, &["SELECT", "0"]);
        run(&mut c, &["FLUSHALL"]);
        run(&mut c, &["SET", "z", "0"]);
    };
    let args = ["--appendonly", "yes", "--appendfsync", "always", "--shards", "3"];
    let rk = Server::ringkv(&args);
    script(&rk);
    let redis = Server::redis(&args[..4]);
    script(&redis);
    let (got, want) = (incr_commands(&rk.dir), incr_commands(&redis.dir));
    assert_eq!(got, want, "ringkv's incr file (left) against redis-server's");
    let manifest = rk.dir.join("appendonlydir/appendonly.aof.manifest");
    let check = run_with_timeout(Process::new("redis-check-aof").arg(&manifest), None, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && text.contains("All AOF files and manifest are valid"), "{text}");
}

/// Scripts in the AOF of a read-only replica (integration/aof's "EVAL can
/// process writes from AOF in read-only replicas"): the loader's scripts
/// write, as Redis's AOF client is obeyed whatever the replication state
/// (mustObeyClient); a client's script is still refused.
#[test]
fn aof_scripts_write_on_a_read_only_replica() {
    let dir = std::env::temp_dir().join(format!("ringkv-aofsrv-{}-replica", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
    std::fs::write(dir.join("appendonlydir/appendonly.aof.manifest"), "file appendonly.aof.1.incr.aof seq 1 type i\n").unwrap();
    let mut incr = common::encode(&["select", "9"]);
    for body in ["redis.call('set',KEYS[1],'100')", "redis.call('incr',KEYS[1])", "redis.call('incr',KEYS[1])"] {
        incr.extend(common::encode(&["eval", body, "1", "foo"]));
    }
    std::fs::write(dir.join("appendonlydir/appendonly.aof.1.incr.aof"), incr).unwrap();
    let d = dir.display().to_string();
    let rk = Server::ringkv(&["--dir", &d, "--appendonly", "yes", "--replica-read-only", "yes", "--replicaof", "127.0.0.1", "0", "--shards", "2"]);
    let mut c = rk.conn();
    c.cmd(&["SELECT", "9"]);
    assert_eq!(c.cmd(&["GET", "foo"]), Resp::bulk("102"));
    let refused = c.cmd(&["EVAL", "return redis.call('set','bar','1')", "0"]);
    assert!(matches!(&refused, Resp::Error(e) if e.starts_with("READONLY")), "{refused:?}");
    drop(c);
    drop(rk);
    let _ = std::fs::remove_dir_all(&dir);
}
