//! BGREWRITEAOF against the real thing: the replies of its interplay with
//! BGSAVE byte for byte as redis-server 7.0 gives them, the manifests the
//! same text, a rewrite under writes that loses nothing (ringkv and
//! redis-server load the rewritten directory with the same digest, and
//! redis-check-aof accepts it), a failed rewrite that keeps its incr file,
//! CONFIG SET appendonly yes/no and the automatic rewrite. Rewrites are made
//! long with Redis's own knob, `rdb-key-save-delay` (microseconds per key).

mod common;

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::*;

fn info_field(c: &mut Conn, field: &str) -> String {
    let info = String::from_utf8(c.cmd(&["INFO", "persistence"]).opt_bytes().unwrap()).unwrap();
    let prefix = format!("{field}:");
    info.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {field} in {info}")).to_string()
}

/// Waits until INFO persistence's `field` reads `value`.
fn wait_field(c: &mut Conn, field: &str, value: &str) {
    let t = Instant::now();
    while info_field(c, field) != value {
        assert!(t.elapsed() < Duration::from_secs(60), "{field} never became {value}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_no_child(c: &mut Conn) {
    wait_field(c, "aof_rewrite_in_progress", "0");
    wait_field(c, "rdb_bgsave_in_progress", "0");
    wait_field(c, "aof_rewrite_scheduled", "0");
}

fn manifest_text(s: &Server) -> String {
    std::fs::read_to_string(s.dir.join("appendonlydir/appendonly.aof.manifest")).unwrap_or_default()
}

fn aof_files(s: &Server) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(s.dir.join("appendonlydir")).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

fn set_keys(c: &mut Conn, prefix: &str, n: usize) {
    for i in 0..n {
        assert_eq!(c.cmd(&["SET", &format!("{prefix}{i}"), &format!("v{i}")]), Resp::ok());
    }
}

fn check_aof(dir: &Path) -> String {
    require_tool("redis-check-aof");
    let out = run_with_timeout(Process::new("redis-check-aof").arg(dir.join("appendonlydir/appendonly.aof.manifest")), None, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains("All AOF files and manifest are valid"), "{text}");
    text
}

fn digest(c: &mut Conn) -> Vec<u8> {
    c.cmd_raw(&["DEBUG", "DIGEST"])
}

/// The replies of the BGSAVE/BGREWRITEAOF interplay, raw bytes, the same
/// sequence against ringkv and redis-server: a rewrite refuses a second
/// one and a BGSAVE, schedules BGSAVE SCHEDULE (which then runs when the
/// rewrite ends); a BGSAVE schedules BGREWRITEAOF (twice: still scheduled),
/// which then runs when the save ends. Then the manifests are the same text.
#[test]
fn interplay_replies_and_manifests_match_redis() {
    let common = ["--appendonly", "yes", "--rdb-key-save-delay", "100000"];
    let (rk, redis) = Server::pair(&common, &["--shards", "2"]);
    let run = |s: &Server| -> (Vec<Vec<u8>>, String) {
        let mut c = s.conn();
        set_keys(&mut c, "k", 10);
        let mut replies = vec![
            c.cmd_raw(&["BGREWRITEAOF"]),
            c.cmd_raw(&["BGREWRITEAOF"]),
            c.cmd_raw(&["BGSAVE"]),
            c.cmd_raw(&["BGSAVE", "SCHEDULE"]),
            info_field(&mut c, "aof_rewrite_in_progress").into_bytes(),
        ];
        // The rewrite ends, the scheduled save starts.
        wait_field(&mut c, "rdb_bgsave_in_progress", "1");
        replies.push(info_field(&mut c, "aof_last_bgrewrite_status").into_bytes());
        replies.push(c.cmd_raw(&["BGREWRITEAOF"]));
        replies.push(c.cmd_raw(&["BGREWRITEAOF"]));
        replies.push(info_field(&mut c, "aof_rewrite_scheduled").into_bytes());
        replies.push(c.cmd_raw(&["BGSAVE"]));
        // The save ends, the scheduled rewrite starts and ends.
        wait_field(&mut c, "rdb_bgsave_in_progress", "0");
        wait_field(&mut c, "aof_rewrite_scheduled", "0");
        wait_no_child(&mut c);
        replies.push(info_field(&mut c, "aof_rewrites").into_bytes());
        replies.push(info_field(&mut c, "rdb_last_bgsave_status").into_bytes());
        (replies, manifest_text(s))
    };
    let (ours, our_manifest) = run(&rk);
    let (theirs, their_manifest) = run(&redis);
    let text = |v: &[Vec<u8>]| v.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect::<Vec<_>>();
    assert_eq!(text(&ours), text(&theirs));
    assert_eq!(
        String::from_utf8_lossy(&ours[2]),
        "-ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.\r\n"
    );
    assert_eq!(our_manifest, their_manifest);
    assert_eq!(our_manifest, "file appendonly.aof.3.base.rdb seq 3 type b\nfile appendonly.aof.3.incr.aof seq 3 type i\n");
    // Only the files the manifest names are left.
    assert_eq!(aof_files(&rk), aof_files(&redis));
}

/// Inside EXEC, BGSAVE and BGREWRITEAOF never fork: Redis answers
/// "scheduled" (`server.in_exec`) even with no child running, and the cron
/// starts them after the transaction.
#[test]
fn bgsave_and_bgrewriteaof_inside_exec_are_scheduled() {
    let (rk, redis) = Server::pair(&["--appendonly", "yes"], &["--shards", "2"]);
    let run = |s: &Server| -> Vec<String> {
        let mut c = s.conn();
        set_keys(&mut c, "k", 10);
        let mut replies = vec![];
        for (cmd, counter) in [(&["BGSAVE"][..], "rdb_saves"), (&["BGSAVE", "SCHEDULE"], "rdb_saves"), (&["BGREWRITEAOF"], "aof_rewrites")] {
            wait_no_child(&mut c);
            let before: u64 = info_field(&mut c, counter).parse().unwrap();
            for part in [&["MULTI"][..], cmd, &["EXEC"]] {
                replies.push(String::from_utf8_lossy(&c.cmd_raw(part)).into_owned());
            }
            // The cron runs what EXEC scheduled.
            let t = Instant::now();
            while info_field(&mut c, counter).parse::<u64>().unwrap() == before {
                assert!(t.elapsed() < Duration::from_secs(30), "the scheduled {cmd:?} never ran");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        wait_no_child(&mut c);
        replies.push(info_field(&mut c, "rdb_last_bgsave_status"));
        replies.push(info_field(&mut c, "aof_last_bgrewrite_status"));
        replies
    };
    let ours = run(&rk);
    assert_eq!(ours, run(&redis));
    assert_eq!(ours[2], "*1\r\n+Background saving scheduled\r\n");
    assert_eq!(ours[8], "*1\r\n+Background append only file rewriting scheduled\r\n");
}

/// BGSAVE CANCEL (Valkey 8.1; redis-server 7.0 has no CANCEL) drops a
/// save scheduled during a rewrite: none runs when the rewrite ends.
#[test]
fn bgsave_cancel_drops_a_save_scheduled_during_a_rewrite() {
    if std::env::var("RINGKV_TEST_TARGET").is_ok_and(|t| t == "redis") {
        return;
    }
    let rk = Server::ringkv(&["--appendonly", "yes", "--rdb-key-save-delay", "100000", "--shards", "2"]);
    let mut c = rk.conn();
    set_keys(&mut c, "k", 6);
    assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
    assert_eq!(c.cmd_raw(&["BGSAVE", "SCHEDULE"]), b"+Background saving scheduled\r\n");
    assert_eq!(c.cmd_raw(&["BGSAVE", "CANCEL"]), b"+Scheduled background saving cancelled\r\n");
    wait_no_child(&mut c);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(info_field(&mut c, "rdb_bgsave_in_progress"), "0");
    assert_eq!(info_field(&mut c, "rdb_saves"), "0");
    assert!(!rk.dir.join("dump.rdb").exists());
}

/// Writes before, during and after a rewrite over several shards (with
/// multi-shard MSET and DEL during it): after the rewrite only the new base
/// and the new incr file are left, redis-check-aof accepts the directory,
/// and ringkv and redis-server loading it have the same data (DEBUG DIGEST)
/// as the server that wrote it.
#[test]
fn rewrite_under_writes_loses_nothing() {
    for preamble in ["yes", "no"] {
        let rk = Server::ringkv(&[
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            preamble,
            "--rdb-key-save-delay",
            "3000",
            "--shards",
            "3",
            "--enable-debug-command",
            "yes",
        ]);
        let mut c = rk.conn();
        set_keys(&mut c, "before", 300);
        c.cmd(&["SET", "ttl", "x", "EX", "10000"]);
        c.cmd(&["SELECT", "2"]);
        set_keys(&mut c, "db2-", 20);
        c.cmd(&["SELECT", "0"]);
        assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
        let mut during = 0;
        while info_field(&mut c, "aof_rewrite_in_progress") == "1" {
            c.cmd(&["SET", &format!("during{during}"), "d"]);
            c.cmd(&["MSET", &format!("m{during}"), "1", &format!("n{during}"), "2", &format!("o{during}"), "3"]);
            c.cmd(&["DEL", &format!("before{during}"), &format!("m{}", during / 2)]);
            c.cmd(&["INCR", "counter"]);
            during += 1;
        }
        assert!(during > 5, "the rewrite was too short to write during it ({during})");
        assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
        set_keys(&mut c, "after", 50);
        let expect = digest(&mut c);
        let dbsize = c.cmd(&["DBSIZE"]).int();
        let base = if preamble == "yes" { "appendonly.aof.2.base.rdb" } else { "appendonly.aof.2.base.aof" };
        assert_eq!(manifest_text(&rk), format!("file {base} seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"));
        assert_eq!(aof_files(&rk), vec![base.to_string(), "appendonly.aof.2.incr.aof".into(), "appendonly.aof.manifest".into()], "old files deleted");
        let log = rk.logs();
        let old_base = base.replace(".2.", ".1.");
        assert!(log.contains(&format!("Removing the history file {old_base} in the background")), "{log}");
        assert!(log.contains("Background AOF rewrite finished successfully"), "{log}");
        // The writer runs off the shards: give it the moment it needs.
        std::thread::sleep(Duration::from_millis(300));
        let dir = copy_aof_dir("ringkv-aofrw", &rk.dir, &format!("uw-{preamble}"));
        drop(rk);
        check_aof(&dir);
        let dir_arg = dir.to_string_lossy().into_owned();
        let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--shards", "2", "--enable-debug-command", "yes"]);
        let mut a = again.conn();
        assert_eq!(a.cmd(&["DBSIZE"]).int(), dbsize);
        assert_eq!(digest(&mut a), expect, "ringkv loading the rewritten directory");
        drop(again);
        let redis = Server::redis(&["--appendonly", "yes", "--dir", &dir_arg, "--enable-debug-command", "yes"]);
        assert_eq!(digest(&mut redis.conn()), expect, "redis-server loading the rewritten directory");
        drop(redis);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A rewrite whose child dies (kill -9) fails: aof_last_bgrewrite_status:err
/// and its incr file stays an incr file of the manifest, as Redis 7.0 does;
/// the next rewrite makes both history. Manifests compared with Redis's.
#[test]
fn failed_rewrite_keeps_its_incr_file_as_redis() {
    let common = ["--appendonly", "yes", "--rdb-key-save-delay", "1000000"];
    let (rk, redis) = Server::pair(&common, &["--shards", "2"]);
    let run = |s: &Server| -> Vec<String> {
        let mut c = s.conn();
        set_keys(&mut c, "k", 4);
        assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
        let t = Instant::now();
        let pid = loop {
            if let Some(p) = child_pid(s) {
                break p;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no child");
            std::thread::sleep(Duration::from_millis(10));
        };
        // SAFETY: killing the server's rewrite child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        wait_field(&mut c, "aof_rewrite_in_progress", "0");
        let mut seen = vec![info_field(&mut c, "aof_last_bgrewrite_status"), info_field(&mut c, "aof_rewrites_consecutive_failures"), manifest_text(s)];
        c.cmd(&["SET", "after-failure", "1"]);
        c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
        assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
        wait_field(&mut c, "aof_rewrite_in_progress", "0");
        seen.push(info_field(&mut c, "aof_last_bgrewrite_status"));
        seen.push(manifest_text(s));
        seen.push(aof_files(s).join(","));
        assert!(!s.dir.join(format!("temp-rewriteaof-bg-{pid}.aof")).exists());
        seen
    };
    let ours = run(&rk);
    assert_eq!(ours, run(&redis));
    assert_eq!(ours[0], "err");
    assert_eq!(
        ours[2],
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert_eq!(ours[4], "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.3.incr.aof seq 3 type i\n");
}

/// With the AOF off, BGREWRITEAOF writes a base and a manifest naming only
/// it; CONFIG SET appendonly yes on a server with data then rewrites (INFO
/// shows aof_enabled:1 and the rewrite in progress meanwhile), appends go to
/// a temp incr file renamed into the manifest at the end; CONFIG SET
/// appendonly no stops the appends. Same manifests as redis-server; the
/// directory loads with the same data in both.
#[test]
fn appendonly_off_rewrite_then_config_set_appendonly_yes_and_no() {
    let (rk, redis) = Server::pair(&["--rdb-key-save-delay", "200000", "--enable-debug-command", "yes"], &["--shards", "2"]);
    let run = |s: &Server| -> (Vec<String>, Vec<u8>) {
        let mut c = s.conn();
        set_keys(&mut c, "k", 5);
        c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
        assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
        wait_field(&mut c, "aof_rewrite_in_progress", "0");
        let mut seen = vec![manifest_text(s), aof_files(s).join(",")];
        c.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "200000"]);
        c.cmd(&["SET", "between", "1"]);
        assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), Resp::ok());
        seen.push(info_field(&mut c, "aof_enabled"));
        seen.push(info_field(&mut c, "aof_rewrite_in_progress"));
        c.cmd(&["SET", "while-turning-on", "1"]);
        seen.push(aof_files(s).join(","));
        wait_field(&mut c, "aof_rewrite_in_progress", "0");
        c.cmd(&["SET", "on", "1"]);
        // redis-server deletes history files in a background thread.
        std::thread::sleep(Duration::from_millis(100));
        seen.push(manifest_text(s));
        seen.push(aof_files(s).join(","));
        assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "no"]), Resp::ok());
        seen.push(info_field(&mut c, "aof_enabled"));
        c.cmd(&["SET", "off", "1"]);
        (seen, digest(&mut c))
    };
    let (ours, _) = run(&rk);
    let (theirs, _) = run(&redis);
    assert_eq!(ours, theirs);
    assert_eq!(ours[0], "file appendonly.aof.1.base.rdb seq 1 type b\n");
    assert_eq!(ours[2..4], ["1".to_string(), "1".to_string()]);
    assert!(ours[4].contains("temp-appendonly.aof.incr"), "{}", ours[4]);
    assert_eq!(ours[5], "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    // What the directory holds: everything up to CONFIG SET appendonly no.
    std::thread::sleep(Duration::from_millis(300));
    let dir = copy_aof_dir("ringkv-aofrw", &rk.dir, "onoff");
    check_aof(&dir);
    let dir_arg = dir.to_string_lossy().into_owned();
    let again = Server::ringkv(&["--appendonly", "yes", "--dir", &dir_arg, "--enable-debug-command", "yes"]);
    let mut a = again.conn();
    assert_eq!(a.cmd(&["DBSIZE"]).int(), 8);
    assert_eq!(a.cmd(&["EXISTS", "on", "while-turning-on", "between", "off"]).int(), 3);
    let expect = digest(&mut a);
    drop(again);
    let redis_load = Server::redis(&["--appendonly", "yes", "--dir", &dir_arg, "--enable-debug-command", "yes"]);
    assert_eq!(digest(&mut redis_load.conn()), expect);
    drop(redis_load);
    let _ = std::fs::remove_dir_all(&dir);
}

/// auto-aof-rewrite-percentage/min-size: the AOF grown past both starts a
/// rewrite from the cron, as redis-server does.
#[test]
fn automatic_rewrite_on_growth() {
    let common = ["--appendonly", "yes", "--auto-aof-rewrite-min-size", "4096", "--auto-aof-rewrite-percentage", "100"];
    let (rk, redis) = Server::pair(&common, &["--shards", "2"]);
    for s in [&rk, &redis] {
        let mut c = s.conn();
        assert_eq!(info_field(&mut c, "aof_rewrites"), "0");
        set_keys(&mut c, "grow-the-aof-", 200);
        wait_field(&mut c, "aof_rewrites", "1");
        wait_field(&mut c, "aof_rewrite_in_progress", "0");
        assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
        let log = s.logs();
        assert!(log.contains("Starting automatic rewriting of AOF on"), "{log}");
        assert_eq!(manifest_text(s), "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n");
    }
}

/// A rewrite of an empty dataset leaves a base of about Redis's size (no
/// alignment padding when there are no keys: snapshot.rs `serialize`), so
/// after a small write the AOF stays under a small auto-aof-rewrite-min-size
/// and no automatic rewrite starts, as with redis-server; 1 KB more starts
/// one. (TCL integration/aof-multi-part, "AOF will trigger limit when AOFRW
/// fails many times": with a 4 KiB padded base an automatic rewrite started
/// between its killed ones and took a manifest line.)
#[test]
fn empty_base_keeps_a_small_aof_under_min_size() {
    let (rk, redis) = Server::pair(&["--appendonly", "yes"], &["--shards", "2"]);
    for s in [&rk, &redis] {
        let mut c = s.conn();
        set_keys(&mut c, "k", 10);
        assert_eq!(c.cmd(&["FLUSHALL"]), Resp::ok());
        assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
        wait_no_child(&mut c);
        let base: u64 = info_field(&mut c, "aof_base_size").parse().unwrap();
        assert!(base < 200, "{}: an empty base of {base} bytes", s.name());
        assert_eq!(c.cmd(&["CONFIG", "SET", "auto-aof-rewrite-percentage", "1", "auto-aof-rewrite-min-size", "1kb"]), Resp::ok());
        assert_eq!(c.cmd(&["SET", "k", "v"]), Resp::ok());
        // Five crons at hz 10.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(info_field(&mut c, "aof_rewrites"), "1", "{}: {}", s.name(), s.logs());
        assert!(!s.logs().contains("Starting automatic rewriting"), "{}", s.logs());
        assert_eq!(c.cmd(&["SET", "x", &"x".repeat(1024)]), Resp::ok());
        wait_field(&mut c, "aof_rewrites", "2");
        wait_no_child(&mut c);
        assert!(s.logs().contains("Starting automatic rewriting of AOF on"), "{}", s.logs());
    }
}

/// aof-disable-auto-gc yes keeps the history files (and names them in the
/// manifest); CONFIG SET aof-disable-auto-gc no deletes them at once. The
/// same manifests as redis-server's.
#[test]
fn disable_auto_gc_keeps_history_until_turned_off() {
    let (rk, redis) = Server::pair(&["--appendonly", "yes", "--aof-disable-auto-gc", "yes"], &["--shards", "2"]);
    let run = |s: &Server| -> Vec<String> {
        let mut c = s.conn();
        let mut seen = vec![];
        for i in 0..2 {
            c.cmd(&["SET", &format!("k{i}"), "v"]);
            assert_eq!(c.cmd_raw(&["BGREWRITEAOF"]), b"+Background append only file rewriting started\r\n");
            wait_field(&mut c, "aof_rewrite_in_progress", "0");
        }
        seen.push(manifest_text(s));
        seen.push(aof_files(s).join(","));
        assert_eq!(c.cmd(&["CONFIG", "SET", "aof-disable-auto-gc", "no"]), Resp::ok());
        // redis-server deletes history files in a background thread.
        std::thread::sleep(Duration::from_millis(100));
        seen.push(manifest_text(s));
        seen.push(aof_files(s).join(","));
        seen
    };
    let ours = run(&rk);
    assert_eq!(ours, run(&redis));
    assert_eq!(
        ours[0],
        "file appendonly.aof.3.base.rdb seq 3 type b\nfile appendonly.aof.2.incr.aof seq 2 type h\nfile appendonly.aof.2.base.rdb seq 2 type h\n\
         file appendonly.aof.1.incr.aof seq 1 type h\nfile appendonly.aof.1.base.rdb seq 1 type h\nfile appendonly.aof.3.incr.aof seq 3 type i\n"
    );
    assert_eq!(ours[2], "file appendonly.aof.3.base.rdb seq 3 type b\nfile appendonly.aof.3.incr.aof seq 3 type i\n");
}

/// SHUTDOWN while the first rewrite of an AOF just turned on runs is
/// refused (the data would be lost), as redis-server 7.0 refuses it.
#[test]
fn shutdown_refused_while_writing_the_first_aof() {
    let (rk, redis) = Server::pair(&["--rdb-key-save-delay", "1000000"], &["--shards", "2"]);
    for s in [&rk, &redis] {
        let mut c = s.conn();
        set_keys(&mut c, "k", 4);
        assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), Resp::ok());
        assert_eq!(c.cmd_raw(&["SHUTDOWN"]), b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n", "{}", s.name());
        assert_eq!(c.cmd_raw(&["PING"]), b"+PONG\r\n");
        let log = s.logs();
        assert!(log.contains("Writing initial AOF, can't exit."), "{log}");
    }
}
