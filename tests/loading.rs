//! Start-up loading as Redis 7.0 does it: the server listens while the
//! dataset loads (made long with the hidden `key-load-delay`), answers
//! `-LOADING` to the commands not flagged `loading`, shows `loading:1` and
//! the `loading_*` fields in INFO persistence, and has all the data once
//! done. The RDB and the AOF (`appendonly yes`) alike. Run against
//! redis-server too (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::time::Duration;

use common::*;

const LOADING: &[u8] = b"-LOADING Redis is loading the dataset in memory\r\n";

/// Writes `keys` keys of 100-byte values, pipelined.
fn fill(s: &Server, keys: usize) {
    let mut c = s.conn();
    let value = "v".repeat(100);
    for chunk in (0..keys).collect::<Vec<_>>().chunks(500) {
        for i in chunk {
            c.send(&["SET", &format!("key:{i}"), &format!("{i}:{value}")]);
        }
        for _ in chunk {
            assert_eq!(c.read(), Resp::ok());
        }
    }
}

/// The value of `field` in an INFO reply.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
}

fn info_persistence(c: &mut Conn) -> String {
    String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap()
}

/// Checks the server `s`, started on a dataset of `keys` keys with a
/// `key-load-delay`, while it loads and after; `total_bytes` is what it loads.
fn check_loading(s: &Server, total_bytes: u64, keys: usize) {
    let mut c = s.conn();
    // Not flagged `loading`: refused, byte for byte as Redis.
    assert_eq!(c.cmd_raw(&["PING"]), LOADING, "{}", s.name());
    assert_eq!(c.cmd_raw(&["GET", "key:1"]), LOADING);
    assert_eq!(c.cmd_raw(&["SET", "new", "1"]), LOADING);
    assert_eq!(c.cmd_raw(&["DBSIZE"]), LOADING);
    // Flagged `loading`: served.
    assert_eq!(c.cmd(&["ECHO", "hi"]), Resp::bulk("hi"));
    assert_eq!(c.cmd(&["SELECT", "0"]), Resp::ok());
    assert_eq!(c.cmd(&["CONFIG", "GET", "port"]).array().len(), 2);
    let info = info_persistence(&mut c);
    assert_eq!(field(&info, "loading"), Some("1"), "{info}");
    assert_eq!(field(&info, "async_loading"), Some("0"));
    let start: i64 = field(&info, "loading_start_time").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - 60..=now).contains(&start), "{info}");
    assert_eq!(field(&info, "loading_total_bytes").unwrap().parse::<u64>().unwrap(), total_bytes, "{info}");
    field(&info, "loading_rdb_used_mem").unwrap().parse::<u64>().unwrap();
    let loaded: u64 = field(&info, "loading_loaded_bytes").unwrap().parse().unwrap();
    assert!(loaded <= total_bytes, "{info}");
    let perc = field(&info, "loading_loaded_perc").unwrap();
    assert!(perc.split_once('.').is_some_and(|(_, d)| d.len() == 2), "{info}");
    field(&info, "loading_eta_seconds").unwrap().parse::<i64>().unwrap();
    // Redis's order: the loading_* fields close the section.
    let names: Vec<&str> = info.lines().filter_map(|l| l.split_once(':').map(|(k, _)| k)).collect();
    assert_eq!(
        &names[names.len() - 6..],
        ["loading_start_time", "loading_total_bytes", "loading_rdb_used_mem", "loading_loaded_bytes", "loading_loaded_perc", "loading_eta_seconds"]
    );
    assert_eq!(names[0..2], ["loading", "async_loading"]);

    // Once loaded: everything is there, on the same connection.
    assert!(wait_until(Duration::from_secs(60), || c.cmd_raw(&["PING"]) == b"+PONG\r\n"), "{} never finished loading:\n{}", s.name(), s.logs());
    assert_eq!(c.cmd(&["DBSIZE"]).int(), keys as i64);
    let value = "v".repeat(100);
    for i in [0, 1, keys / 2, keys - 1] {
        assert_eq!(c.cmd(&["GET", &format!("key:{i}")]), Resp::bulk(format!("{i}:{value}")));
    }
    let info = info_persistence(&mut c);
    assert_eq!(field(&info, "loading"), Some("0"));
    assert_eq!(field(&info, "loading_start_time"), None);
}

/// A directory holding the dump.rdb of `keys` keys saved by ringkv, and the file's size.
fn saved_rdb_copy(tag: &str, keys: usize) -> (std::path::PathBuf, u64) {
    let src = Server::ringkv(&["--shards", "3"]);
    fill(&src, keys);
    assert_eq!(src.conn().cmd(&["SAVE"]), Resp::ok());
    let copy = std::env::temp_dir().join(format!("ringkv-loading-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    let size = std::fs::copy(src.dir.join("dump.rdb"), copy.join("dump.rdb")).unwrap();
    (copy, size)
}

#[test]
fn rdb_loads_while_listening() {
    const KEYS: usize = 4000;
    let (copy, size) = saved_rdb_copy("rdb", KEYS);
    let dir = path_str(&copy);
    // Redis answers while loading every `loading-process-events-interval-bytes`.
    let s = Server::ringkv_loading(&["--shards", "3", "--dir", &dir, "--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024"]);
    check_loading(&s, size, KEYS);
    let logs = s.logs();
    assert!(logs.contains(&format!("Done loading RDB, keys loaded: {KEYS}, keys expired: 0.")), "{logs}");
    assert!(logs.contains("DB loaded from disk: "), "{logs}");
    assert!(logs.contains("Loading RDB produced by version "), "{logs}");
    drop(s);
    let _ = std::fs::remove_dir_all(&copy);
}

#[test]
fn aof_loads_while_listening() {
    // Redis serves its clients once per 1024 commands of the AOF: enough
    // of them that the checks below (a round trip each) run while it loads.
    const KEYS: usize = 30000;
    let src = Server::ringkv(&["--shards", "3", "--appendonly", "yes", "--appendfsync", "always"]);
    fill(&src, KEYS);
    let dir = copy_aof_dir("ringkv-loading", &src.dir, "aof");
    drop(src);
    let aof_dir = dir.join("appendonlydir");
    let total: u64 = std::fs::read_dir(&aof_dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".manifest"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let s = Server::ringkv_loading(&[
        "--shards",
        "3",
        "--dir",
        &path_str(&dir),
        "--appendonly",
        "yes",
        "--key-load-delay",
        "150",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    // loading_loaded_bytes advances while the commands replay (Redis: every
    // 1024 commands, to the file position).
    let mut seen = 0u64;
    let mut c = s.conn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen == 0 && std::time::Instant::now() < deadline {
        let info = info_persistence(&mut c);
        if field(&info, "loading") != Some("1") {
            break;
        }
        seen = field(&info, "loading_loaded_bytes").unwrap().parse().unwrap();
        assert!(seen <= total, "{info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen > 0 || s.name() == "redis", "loading_loaded_bytes stayed 0 while the AOF loaded");
    drop(c);
    check_loading(&s, total, KEYS);
    assert!(s.logs().contains("DB loaded from append only file: "), "{}", s.logs());
    // The AOF goes on after the load: a write reaches it.
    let mut c = s.conn();
    assert_eq!(c.cmd(&["SET", "after", "1"]), Resp::ok());
    assert_eq!(c.cmd(&["INFO", "persistence"]).opt_bytes().map(|b| String::from_utf8(b).unwrap().contains("aof_enabled:1")), Some(true));
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM while the dataset loads: Redis's own log line, an exit without
/// saving (the shards hold only part of the data: a final save with save
/// points configured would write it over the file being loaded).
#[test]
fn sigterm_during_loading_exits_without_saving() {
    let (copy, _) = saved_rdb_copy("sigterm", 4000);
    let image = std::fs::read(copy.join("dump.rdb")).unwrap();
    let dir = path_str(&copy);
    let mut s = Server::ringkv_loading(&[
        "--shards",
        "3",
        "--dir",
        &dir,
        "--save",
        "3600 1",
        "--key-load-delay",
        "1000",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    let mut c = s.conn();
    assert_eq!(c.cmd_raw(&["PING"]), LOADING, "{}", s.name());
    let status = std::process::Command::new("kill").args(["-TERM", &s.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(wait_until(Duration::from_secs(20), || !s.alive()), "{} still runs after SIGTERM:\n{}", s.name(), s.logs());
    let logs = s.logs();
    assert!(logs.contains("Received shutdown signal during loading, scheduling shutdown."), "{logs}");
    assert!(!logs.contains("Saving the final RDB snapshot"), "{logs}");
    assert!(logs.contains("Redis is now ready to exit, bye bye..."), "{logs}");
    assert_eq!(std::fs::read(copy.join("dump.rdb")).unwrap(), image, "the image being loaded was overwritten");
    drop(s);
    let _ = std::fs::remove_dir_all(&copy);
}

/// A load shorter than one progress step (`loading-process-events-interval-bytes`,
/// 2 MiB by default): Redis reads no client before it ends, so a client
/// that connected while it ran gets +PONG, never -LOADING (the TCL
/// harness connects once the port listens and aborts a unit on -LOADING).
/// The load is made long in time (`key-load-delay`), not in bytes.
#[test]
fn small_load_admits_clients_after_it() {
    const KEYS: usize = 40;
    let (copy, size) = saved_rdb_copy("small", KEYS);
    assert!(size < 2 << 20);
    let dir = path_str(&copy);
    // 40 keys at 25 ms each: a second of loading.
    let s = Server::ringkv_listening(&["--shards", "3", "--dir", &dir, "--key-load-delay", "25000"]);
    let t = std::time::Instant::now();
    let mut c = s.conn();
    assert_eq!(c.cmd_raw(&["PING"]), b"+PONG\r\n", "{}", s.name());
    assert!(t.elapsed() > Duration::from_millis(300), "{} answered before loading: {:?}", s.name(), t.elapsed());
    assert_eq!(c.cmd(&["DBSIZE"]).int(), KEYS as i64);
    assert_eq!(field(&info_persistence(&mut c), "loading"), Some("0"));
    drop(s);
    let _ = std::fs::remove_dir_all(&copy);
}

/// `appendonly yes` with nothing to load (no AOF directory, or an empty
/// one): Redis starts no load at all and writes the base file before it
/// serves anyone, so a client that connected at once gets +OK for a write,
/// which is then in the AOF (TCL integration/aof-multi-part, "Multi Part
/// AOF can start when no aof and no manifest", aborted the unit on -LOADING).
#[test]
fn empty_aof_admits_clients_after_start_up() {
    for (tag, make_dir) in [("no-aof-dir", false), ("empty-aof-dir", true)] {
        let dir = std::env::temp_dir().join(format!("ringkv-loading-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if make_dir {
            std::fs::create_dir_all(dir.join("appendonlydir")).unwrap();
        }
        let s = Server::ringkv_listening(&["--shards", "3", "--dir", &path_str(&dir), "--appendonly", "yes"]);
        let mut c = s.conn();
        assert_eq!(c.cmd_raw(&["SET", "k1", "v1"]), b"+OK\r\n", "{} {tag}", s.name());
        assert_eq!(c.cmd(&["GET", "k1"]), Resp::bulk("v1"));
        drop(c);
        drop(s);
        let s = Server::ringkv(&["--shards", "3", "--dir", &path_str(&dir), "--appendonly", "yes"]);
        assert_eq!(s.conn().cmd(&["GET", "k1"]), Resp::bulk("v1"), "{} {tag}", s.name());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
