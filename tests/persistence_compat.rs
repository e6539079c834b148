//! Persistence details where ringkv differed from redis-server 7.0 (the
//! TCL units integration/rdb, integration/aof and unit/shutdown): SAVE
//! writes keys whose TTL has passed and a load counts them, `#TS:`
//! annotations start with the first write after CONFIG SET, and DEBUG
//! PAUSE-CRON holds a signal's shutdown. Each passes against redis-server
//! (`RINGKV_TEST_TARGET=redis`).

mod common;

use std::time::{Duration, Instant};

use common::*;

fn info_field(c: &mut Conn, section: &str, field: &str) -> String {
    let info = String::from_utf8(c.cmd(&["INFO", section]).opt_bytes().unwrap()).unwrap();
    let prefix = format!("{field}:");
    info.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {field} in INFO")).to_string()
}

/// Keys whose TTL passed (active expiry off, never looked up) are in the
/// dump SAVE writes, as Redis's rdbSave writes them; a master loading it
/// drops and counts them: `rdb_last_load_keys_expired` after DEBUG RELOAD
/// and after a restart (integration/rdb "Test RDB load info").
#[test]
fn save_writes_expired_keys_and_a_load_counts_them() {
    let mut s = Server::ringkv(&["--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), Resp::ok());
    for j in 0..40 {
        c.cmd(&["SELECT", &(j % 16).to_string()]);
        assert_eq!(c.cmd(&["SET", &format!("k{j}"), "v", "PX", "10"]), Resp::ok());
    }
    c.cmd(&["SELECT", "0"]);
    assert_eq!(c.cmd(&["SET", "live", "1"]), Resp::ok());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(c.cmd(&["SAVE"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "RELOAD"]), Resp::ok());
    assert_eq!(info_field(&mut c, "persistence", "rdb_last_load_keys_expired"), "40");
    assert_eq!(info_field(&mut c, "persistence", "rdb_last_load_keys_loaded"), "1");
    assert_eq!(c.cmd(&["DBSIZE"]).int(), 1);
    // The reload dropped them: the next dump holds the live key alone.
    assert_eq!(c.cmd(&["DEBUG", "RELOAD"]), Resp::ok());
    assert_eq!(info_field(&mut c, "persistence", "rdb_last_load_keys_expired"), "0");
    assert_eq!(info_field(&mut c, "persistence", "rdb_last_load_keys_loaded"), "1");
    s.assert_serving();
}

/// The incr file of the AOF starts with a `#TS:<unix>` annotation when the
/// first write after CONFIG SET aof-timestamp-enabled yes lands (Redis's
/// feedAppendOnlyFile), not only after the next cron; the directory loads
/// back (DEBUG LOADAOF). integration/aof "Generate timestamp annotations".
#[test]
fn timestamp_annotation_from_the_first_write_after_config_set() {
    let s = Server::ringkv(&["--appendonly", "yes", "--enable-debug-command", "yes", "--hz", "1"]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "aof-timestamp-enabled", "yes"]), Resp::ok());
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(c.cmd(&["SET", "foo", "bar"]), Resp::ok());
    let incr = s.dir.join("appendonlydir").join("appendonly.aof.1.incr.aof");
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read(&incr).unwrap_or_default();
        if text.ends_with(b"bar\r\n") || Instant::now() > deadline {
            break String::from_utf8_lossy(&text).into_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let first = text.lines().next().unwrap_or_default();
    let ts: u64 = first.strip_prefix("#TS:").and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("first line {first:?} of {text:?}"));
    assert!(ts >= before && ts <= before + 5, "{ts} vs {before}");
    assert_eq!(c.cmd(&["DEBUG", "LOADAOF"]), Resp::ok());
    assert_eq!(c.cmd(&["GET", "foo"]).opt_bytes(), Some(b"bar".to_vec()));
}

/// DEBUG PAUSE-CRON 1 stops the cron, where a SIGTERM's shutdown is taken
/// up: the server keeps serving, SHUTDOWN ABORT cancels the request, and
/// with the cron running again the server stays up (unit/shutdown "SHUTDOWN
/// ABORT can cancel SIGTERM"). A wrong arity is refused as Redis refuses it.
#[test]
fn pause_cron_holds_a_signals_shutdown() {
    let mut s = Server::ringkv(&["--enable-debug-command", "yes"]);
    let mut c = s.conn();
    let err = c.cmd(&["DEBUG", "PAUSE-CRON"]);
    assert!(matches!(&err, Resp::Error(e) if e.starts_with("ERR unknown subcommand")), "{err:?}");
    assert_eq!(c.cmd(&["DEBUG", "PAUSE-CRON", "1"]), Resp::ok());
    let status = std::process::Command::new("kill").args(["-TERM", &s.pid().to_string()]).status().unwrap();
    assert!(status.success());
    // Several cron periods (hz 10) pass: nothing acts on the signal.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(c.cmd(&["SHUTDOWN", "ABORT"]), Resp::ok());
    assert_eq!(c.cmd(&["DEBUG", "PAUSE-CRON", "0"]), Resp::ok());
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert!(s.logs().contains("Shutdown manually aborted"), "{}", s.logs());
    s.assert_serving();
}

/// A failed foreground save (SAVE, SHUTDOWN's final save) leaves
/// `rdb_last_bgsave_status` as it was, as Redis's rdbSave does: with a save
/// point set, PING and writes are still served (no MISCONF), and SHUTDOWN
/// refuses to exit (unit/shutdown "SHUTDOWN will abort if rdb save failed on
/// shutdown command").
#[test]
fn a_failed_foreground_save_brings_no_misconf() {
    let mut s = Server::ringkv(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "save", "900 1"]), Resp::ok());
    assert_eq!(c.cmd(&["SET", "a", "1"]), Resp::ok());
    // A directory where the dump goes: the rename of the temp file fails.
    let blocker = s.dir.join("dump.rdb");
    std::fs::create_dir_all(&blocker).unwrap();
    assert_eq!(c.cmd(&["SAVE"]), Resp::Error("ERR".into()));
    assert_eq!(info_field(&mut c, "persistence", "rdb_last_bgsave_status"), "ok");
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(c.cmd(&["SET", "b", "2"]), Resp::ok());
    assert_eq!(c.cmd(&["SHUTDOWN"]), Resp::Error("ERR Errors trying to SHUTDOWN. Check logs.".into()));
    assert_eq!(c.cmd(&["PING"]), Resp::Simple("PONG".into()));
    std::fs::remove_dir(&blocker).unwrap();
    s.assert_serving();
}
